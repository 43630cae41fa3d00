//! Between the data plane's flow entries (internal service and real server ids, `CT_*`
//! states) and IPVS sync entries (addresses, ports, IPVS states, forwarding flags), and which
//! flows a sync master sends at each scan. Pure: no maps, no sockets.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
};

use lb_common::{FlowKey, FlowValue, NatRev, ServiceKey, consts::*};

use super::msg::{self, Entry, tcp};
use crate::{config::ForwardMethod, dataplane::services};

const NS: u64 = 1_000_000_000;

/// What the programmed services' ids mean, as the sync needs them (built from the data
/// plane's book after each change).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Directory {
    /// Service key → (service id, forwarding method).
    pub services: HashMap<ServiceKey, (u32, ForwardMethod)>,
    /// Service id → forwarding method.
    pub fwd: HashMap<u32, ForwardMethod>,
    /// Real server id → its address (port 0: the virtual port).
    pub reals: HashMap<u32, SocketAddr>,
    /// (service id, real server address) → real server id.
    pub by_addr: HashMap<(u32, SocketAddr), u32>,
}

impl Directory {
    /// Adds one service: its keys, method and real servers (address → id).
    pub fn add(&mut self, id: u32, keys: &[ServiceKey], fwd: ForwardMethod, reals: &[(SocketAddr, u32)]) {
        for k in keys {
            self.services.insert(*k, (id, fwd));
        }
        self.fwd.insert(id, fwd);
        for (addr, rid) in reals {
            self.reals.insert(*rid, *addr);
            self.by_addr.insert((id, *addr), *rid);
        }
    }
}

fn fwd_flag(f: ForwardMethod) -> u32 {
    match f {
        ForwardMethod::Nat => msg::F_MASQ,
        ForwardMethod::Dr => msg::F_DROUTE,
        ForwardMethod::Tun => msg::F_TUNNEL,
    }
}

/// A flow's state as IPVS names it (ip_vs_proto_tcp.c): the data plane sees the client's side
/// only, as IPVS does with DR and TUN, so a handshake in progress is SYN_RECV and a flow
/// that saw a FIN or RST is FIN_WAIT. UDP has one state (IP_VS_UDP_S_NORMAL).
pub fn ipvs_state(proto: u8, state: u8) -> u16 {
    match (proto, state) {
        (IPPROTO_TCP, CT_EST) => tcp::ESTABLISHED,
        (IPPROTO_TCP, CT_SYN) => tcp::SYN_RECV,
        (IPPROTO_TCP, _) => tcp::FIN_WAIT,
        _ => 0,
    }
}

/// The data plane's state for an IPVS state; None for states it has no flow for (NONE,
/// LISTEN, unknown numbers) and for protocols other than TCP and UDP.
pub fn ct_state(proto: u8, state: u16) -> Option<u8> {
    match proto {
        IPPROTO_TCP => match state {
            tcp::ESTABLISHED => Some(CT_EST),
            tcp::SYN_SENT | tcp::SYN_RECV | tcp::SYNACK => Some(CT_SYN),
            tcp::FIN_WAIT | tcp::TIME_WAIT | tcp::CLOSE | tcp::CLOSE_WAIT | tcp::LAST_ACK => Some(CT_CLOSING),
            _ => None,
        },
        IPPROTO_UDP => Some(CT_UDP),
        _ => None,
    }
}

/// The sync entry for a tracked flow; None when its ids no longer name a programmed service
/// and real server.
pub fn to_entry(k: &FlowKey, v: &FlowValue, dir: &Directory) -> Option<Entry> {
    let fwd = *dir.fwd.get(&v.svc_id)?;
    let real = *dir.reals.get(&v.real_id)?;
    let caddr = services::ip_of(&k.src, k.family);
    let vaddr = services::ip_of(&k.dst, k.family);
    if real.ip().is_ipv6() != vaddr.is_ipv6() {
        return None;
    }
    let inactive = if v.state == CT_EST || k.proto != IPPROTO_TCP { 0 } else { msg::F_INACTIVE };
    Some(Entry {
        protocol: k.proto,
        flags: fwd_flag(fwd) | inactive,
        state: ipvs_state(k.proto, v.state),
        cport: k.sport,
        vport: k.dport,
        dport: if real.port() == 0 { k.dport } else { real.port() },
        fwmark: 0,
        timeout: flow_timeout_secs(v.state) as u32,
        caddr,
        vaddr,
        daddr: real.ip(),
    })
}

/// Why a received entry is not applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// Not TCP or UDP, or a state with no flow.
    State,
    /// No programmed service has this virtual address, port and protocol.
    Service,
    /// The service has no such real server.
    Real,
    /// The entry's forwarding method is not the service's here.
    Method,
}

/// What a received entry becomes: the `lb_conntrack4`/`lb_conntrack` entry, and for NAT services the
/// `lb_nat_rev` entry replies are translated by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Apply {
    pub key: FlowKey,
    pub value: FlowValue,
    pub nat_rev: Option<(FlowKey, NatRev)>,
}

/// Translates a received entry for this node's services, with `now` as its last-seen time
/// (`bpf_ktime_get_coarse_ns`'s clock), marked `FLOW_SYNCED` so that this node's own master
/// (active-active) does not send it back.
pub fn from_entry(e: &Entry, dir: &Directory, now: u64) -> Result<Apply, Skip> {
    let state = ct_state(e.protocol, e.state).ok_or(Skip::State)?;
    let (src, family) = services::addr_bytes(e.caddr);
    let (dst, vfamily) = services::addr_bytes(e.vaddr);
    if vfamily != family {
        return Err(Skip::Service);
    }
    let skey = ServiceKey { addr: dst, port: e.vport, proto: e.protocol, family, pad: 0 };
    let &(svc_id, fwd) = dir.services.get(&skey).ok_or(Skip::Service)?;
    if fwd_flag(fwd) != e.flags & msg::F_FWD_MASK {
        return Err(Skip::Method);
    }
    let exact = SocketAddr::new(e.daddr, e.dport);
    let real_id = match dir.by_addr.get(&(svc_id, exact)) {
        Some(id) => *id,
        // A real server configured without a port takes the virtual one.
        None if e.dport == e.vport => *dir.by_addr.get(&(svc_id, SocketAddr::new(e.daddr, 0))).ok_or(Skip::Real)?,
        None => return Err(Skip::Real),
    };
    let key = FlowKey { src, dst, sport: e.cport, dport: e.vport, proto: e.protocol, family, pad: [0; 2] };
    let value = FlowValue { real_id, svc_id, last_ns: now, state, pad32: synced_mark(now), ..Default::default() };
    let nat_rev = (fwd == ForwardMethod::Nat).then(|| {
        let (raddr, _) = services::addr_bytes(e.daddr);
        let rkey =
            FlowKey { src: raddr, dst: src, sport: e.dport, dport: e.cport, proto: e.protocol, family, pad: [0; 2] };
        let rev = NatRev { vip: dst, vport: e.vport, svc_id, real_id, last_ns: now, ..Default::default() };
        (rkey, rev)
    });
    Ok(Apply { key, value, nat_rev })
}

/// How a received flow replacing `before` (None: new here) changes the live connection
/// counts lc/wlc read, as (real server id, change): open flows count on their real server, as
/// the data plane counts those it tracks; the same flow replaced keeps its count, a new or
/// reopened one adds one, one now closing (or moved to another real server) gives it back.
pub fn credits(before: Option<&FlowValue>, after: &FlowValue) -> Vec<(u32, i64)> {
    let open = |v: &FlowValue| v.state != CT_CLOSING;
    match (before.filter(|v| open(v)), open(after)) {
        (Some(old), true) if old.real_id != after.real_id => vec![(old.real_id, -1), (after.real_id, 1)],
        (Some(old), false) => vec![(old.real_id, -1)],
        (None, true) => vec![(after.real_id, 1)],
        _ => Vec::new(),
    }
}

/// `FlowValue::pad32` for a flow applied from sync at `now`: `FLOW_SYNCED` and the second
/// it was applied (the bits above it).
pub fn synced_mark(now: u64) -> u32 {
    FLOW_SYNCED | ((now / NS) as u32) << 1
}

/// Whether this node's master sends flow `v`: its own (decided here), or one received from
/// sync that this node has forwarded since (the data plane moved its last-seen time over a
/// second past when it was applied, which it does only for a packet): ECMP moved the flow
/// here, so this node takes over keeping the others' copies, and a second node loss or a
/// node's return finds it. A copy nothing forwards here stays the origin's to send.
pub fn sent_from_here(v: &FlowValue) -> bool {
    if v.pad32 & FLOW_SYNCED == 0 {
        return true;
    }
    // Applied by a daemon before applied times were kept (the flag alone): the origin's.
    if v.pad32 == FLOW_SYNCED {
        return false;
    }
    let applied = u64::from(v.pad32 >> 1) * NS;
    v.last_ns > applied + NS
}

/// What the master last sent for each flow, to send only what is new or changed, and to
/// refresh the backup's copy before it would expire there.
#[derive(Default)]
pub struct Sent {
    flows: HashMap<FlowKey, (u32, u8, u64)>,
}

impl Sent {
    /// The flows of one scan (`lb_conntrack4`/`lb_conntrack` at `now`) to send: new ones, those whose real
    /// server or state changed, and those last sent over half their timeout ago. Expired
    /// entries are not sent; flows gone from the table are forgotten. At most `limit`.
    ///
    /// Flows received from another node (`FLOW_SYNCED`) are sent only once this node forwards
    /// them (`sent_from_here`): nodes that run master and backup together would otherwise
    /// echo every flow between them for ever. The origin keeps the others' copies fresh while
    /// it forwards the flow; the node ECMP moves it to takes over.
    pub fn due(&mut self, flows: &[(FlowKey, FlowValue)], now: u64, limit: usize) -> Vec<(FlowKey, FlowValue)> {
        let mut out = Vec::new();
        let mut seen: HashMap<FlowKey, (u32, u8, u64)> = HashMap::with_capacity(flows.len());
        for (k, v) in flows {
            let timeout = flow_timeout_secs(v.state) * NS;
            if !sent_from_here(v) || now.saturating_sub(v.last_ns) > timeout {
                continue;
            }
            let prev = self.flows.get(k).copied();
            let send = out.len() < limit
                && match prev {
                    None => true,
                    Some((real, state, at)) => {
                        real != v.real_id || state != v.state || now.saturating_sub(at) > timeout / 2
                    }
                };
            if send {
                out.push((*k, *v));
                seen.insert(*k, (v.real_id, v.state, now));
            } else if let Some(p) = prev {
                seen.insert(*k, p);
            }
        }
        self.flows = seen;
        out
    }
}

/// Whether a datagram with `got` as sync id is for a backup with `mine`: as the kernel, a
/// backup with sync id 0 takes any.
pub fn sync_id_matches(mine: u8, got: u8) -> bool {
    mine == 0 || mine == got
}

/// A flow key's source and destination addresses.
pub fn ip(k: &FlowKey) -> (IpAddr, IpAddr) {
    (services::ip_of(&k.src, k.family), services::ip_of(&k.dst, k.family))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> Directory {
        let mut d = Directory::default();
        d.add(
            2,
            &[ServiceKey::v4([203, 0, 113, 10], 80, IPPROTO_TCP)],
            ForwardMethod::Dr,
            &[("198.51.100.11:80".parse().unwrap(), 7), ("198.51.100.12:80".parse().unwrap(), 8)],
        );
        d.add(
            3,
            &[ServiceKey::v4([203, 0, 113, 11], 8080, IPPROTO_TCP)],
            ForwardMethod::Nat,
            &[("198.51.100.21:9000".parse().unwrap(), 9)],
        );
        d.add(
            4,
            &[ServiceKey::v4([203, 0, 113, 12], 53, IPPROTO_UDP)],
            ForwardMethod::Tun,
            &[("198.51.100.31:0".parse().unwrap(), 10)],
        );
        d
    }

    fn key(dst: [u8; 4], dport: u16, proto: u8) -> FlowKey {
        let (mut s, mut d) = ([0u8; 16], [0u8; 16]);
        s[..4].copy_from_slice(&[192, 0, 2, 2]);
        d[..4].copy_from_slice(&dst);
        FlowKey { src: s, dst: d, sport: 40000, dport, proto, family: FAMILY_V4, pad: [0; 2] }
    }

    #[test]
    fn flows_become_entries_and_back() {
        let d = dir();
        let now = 1_000 * NS;
        for (k, svc, real, state, flags, ipvs) in [
            (key([203, 0, 113, 10], 80, IPPROTO_TCP), 2, 8, CT_EST, msg::F_DROUTE, tcp::ESTABLISHED),
            (key([203, 0, 113, 10], 80, IPPROTO_TCP), 2, 7, CT_SYN, msg::F_DROUTE | msg::F_INACTIVE, tcp::SYN_RECV),
            (key([203, 0, 113, 11], 8080, IPPROTO_TCP), 3, 9, CT_CLOSING, msg::F_INACTIVE, tcp::FIN_WAIT),
            (key([203, 0, 113, 12], 53, IPPROTO_UDP), 4, 10, CT_UDP, msg::F_TUNNEL, 0),
        ] {
            let v = FlowValue { real_id: real, svc_id: svc, last_ns: now - NS, state, ..Default::default() };
            let e = to_entry(&k, &v, &d).unwrap();
            assert_eq!((e.flags, e.state, e.timeout), (flags, ipvs, flow_timeout_secs(state) as u32));
            assert_eq!(e.daddr, d.reals[&real].ip());
            let a = from_entry(&e, &d, now).unwrap();
            assert_eq!(a.key, k);
            assert_eq!(a.value, FlowValue { last_ns: now, pad32: synced_mark(now), ..v });
            assert_eq!(a.nat_rev.is_some(), svc == 3);
        }
        // A real server without a port: the virtual port goes on the wire.
        let v = FlowValue { real_id: 10, svc_id: 4, state: CT_UDP, ..Default::default() };
        assert_eq!(to_entry(&key([203, 0, 113, 12], 53, IPPROTO_UDP), &v, &d).unwrap().dport, 53);
        // Ids no longer programmed.
        let v = FlowValue { real_id: 99, svc_id: 2, ..Default::default() };
        assert_eq!(to_entry(&key([203, 0, 113, 10], 80, IPPROTO_TCP), &v, &d), None);
    }

    #[test]
    fn nat_flows_get_their_reply_entry() {
        let d = dir();
        let k = key([203, 0, 113, 11], 8080, IPPROTO_TCP);
        let v = FlowValue { real_id: 9, svc_id: 3, state: CT_EST, ..Default::default() };
        let a = from_entry(&to_entry(&k, &v, &d).unwrap(), &d, 5).unwrap();
        let (rk, rv) = a.nat_rev.unwrap();
        assert_eq!(ip(&rk), ("198.51.100.21".parse().unwrap(), "192.0.2.2".parse().unwrap()));
        assert_eq!((rk.sport, rk.dport, rk.proto), (9000, 40000, IPPROTO_TCP));
        assert_eq!((rv.vip, rv.vport, rv.svc_id, rv.real_id, rv.last_ns), (k.dst, 8080, 3, 9, 5));
    }

    #[test]
    fn unknown_services_reals_methods_and_states_are_skipped() {
        let d = dir();
        let k = key([203, 0, 113, 10], 80, IPPROTO_TCP);
        let v = FlowValue { real_id: 7, svc_id: 2, state: CT_EST, ..Default::default() };
        let e = to_entry(&k, &v, &d).unwrap();
        let other_vip = Entry { vaddr: "203.0.113.99".parse().unwrap(), ..e };
        assert_eq!(from_entry(&other_vip, &d, 0), Err(Skip::Service));
        let other_real = Entry { daddr: "198.51.100.99".parse().unwrap(), ..e };
        assert_eq!(from_entry(&other_real, &d, 0), Err(Skip::Real));
        assert_eq!(from_entry(&Entry { flags: msg::F_TUNNEL, ..e }, &d, 0), Err(Skip::Method));
        for s in [tcp::NONE, tcp::LISTEN, 11, 400] {
            assert_eq!(from_entry(&Entry { state: s, ..e }, &d, 0), Err(Skip::State), "{s}");
        }
        assert_eq!(from_entry(&Entry { protocol: IPPROTO_SCTP_FOR_TEST, ..e }, &d, 0), Err(Skip::State));
        // IPVS states map onto ours.
        let states = [
            (tcp::SYN_SENT, CT_SYN),
            (tcp::SYNACK, CT_SYN),
            (tcp::TIME_WAIT, CT_CLOSING),
            (tcp::CLOSE, CT_CLOSING),
            (tcp::CLOSE_WAIT, CT_CLOSING),
            (tcp::LAST_ACK, CT_CLOSING),
        ];
        for (s, ct) in states {
            assert_eq!(from_entry(&Entry { state: s, ..e }, &d, 0).unwrap().value.state, ct);
        }
    }

    const IPPROTO_SCTP_FOR_TEST: u8 = 132;

    #[test]
    fn a_scan_sends_new_changed_and_aging_flows_only() {
        let mut sent = Sent::default();
        let k1 = key([203, 0, 113, 10], 80, IPPROTO_TCP);
        let k2 = FlowKey { sport: 40001, ..k1 };
        let t0 = 10_000 * NS;
        let v = FlowValue { real_id: 7, svc_id: 2, last_ns: t0, state: CT_SYN, ..Default::default() };
        let keys = |x: Vec<(FlowKey, FlowValue)>| x.iter().map(|(k, _)| k.sport).collect::<Vec<_>>();
        assert_eq!(keys(sent.due(&[(k1, v), (k2, v)], t0, 10)), [40000, 40001]);
        // Nothing changed a second later.
        assert!(sent.due(&[(k1, v), (k2, v)], t0 + NS, 10).is_empty());
        // k1 established: sent again.
        let est = FlowValue { state: CT_EST, ..v };
        assert_eq!(keys(sent.due(&[(k1, est), (k2, v)], t0 + 2 * NS, 10)), [40000]);
        // Past half of SYN's 60 s since last sent, k2 (still fresh) is refreshed.
        let v2 = FlowValue { last_ns: t0 + 30 * NS, ..v };
        let est2 = FlowValue { last_ns: t0 + 30 * NS, ..est };
        assert_eq!(keys(sent.due(&[(k1, est2), (k2, v2)], t0 + 31 * NS, 10)), [40001]);
        // An expired entry is not sent; a flow that left and came back is new.
        assert!(sent.due(&[(k1, est2)], t0 + 2000 * NS, 10).is_empty());
        assert_eq!(keys(sent.due(&[(k2, FlowValue { last_ns: t0 + 2000 * NS, ..v })], t0 + 2000 * NS, 10)), [40001]);
        // The limit holds what is left for the next scan.
        let many: Vec<(FlowKey, FlowValue)> =
            (0..5u16).map(|i| (FlowKey { sport: i, ..k1 }, FlowValue { last_ns: t0, ..v })).collect();
        let mut s = Sent::default();
        assert_eq!(s.due(&many, t0, 3).len(), 3);
        assert_eq!(s.due(&many, t0, 3).len(), 2);
    }

    /// The loop rule of active-active sync: what a node applied from sync is not in its own
    /// master's send set, neither at once nor as it ages here untouched; once this node
    /// forwards it (a packet over a second after it was applied moves its last-seen time),
    /// it is; the same key decided here again (the data plane's new entry has the flag
    /// clear) is this node's own.
    #[test]
    fn synced_flows_are_sent_back_only_once_forwarded_here() {
        let d = dir();
        let t0 = 10_000 * NS;
        let own = key([203, 0, 113, 10], 80, IPPROTO_TCP);
        let theirs = from_entry(
            &to_entry(&FlowKey { sport: 40001, ..own }, &FlowValue { real_id: 8, svc_id: 2, ..Default::default() }, &d)
                .unwrap(),
            &d,
            t0,
        )
        .unwrap();
        assert_eq!(theirs.value.pad32 & FLOW_SYNCED, FLOW_SYNCED);
        let mine = FlowValue { real_id: 7, svc_id: 2, last_ns: t0, state: CT_EST, ..Default::default() };
        let mut sent = Sent::default();
        let due = sent.due(&[(own, mine), (theirs.key, theirs.value)], t0, 10);
        assert_eq!(due, [(own, mine)]);
        // Untouched here, also past half its timeout: not sent.
        let later = t0 + 100 * NS;
        assert!(sent.due(&[(own, mine), (theirs.key, theirs.value)], later, 10).iter().all(|(k, _)| *k == own));
        // Closing within the second it was applied: not proof of a packet here yet.
        let closing = FlowValue { state: CT_CLOSING, last_ns: t0 + NS, ..theirs.value };
        assert!(sent.due(&[(theirs.key, closing)], t0 + NS, 10).is_empty());
        // A packet here later: sent, then as an own flow (on changes and refreshes only).
        let forwarded = FlowValue { last_ns: t0 + 2 * NS + 1, ..theirs.value };
        assert_eq!(sent.due(&[(theirs.key, forwarded)], t0 + 2 * NS + 1, 10), [(theirs.key, forwarded)]);
        assert!(sent.due(&[(theirs.key, forwarded)], t0 + 3 * NS, 10).is_empty());
        // Applied again (its origin's refresh): the origin's to send until forwarded here.
        let again = from_entry(&to_entry(&theirs.key, &forwarded, &d).unwrap(), &d, later).unwrap();
        assert!(!sent_from_here(&again.value));
        // Rescheduled here (a new entry, flag clear): this node's own flow now.
        let local = FlowValue { pad32: 0, ..again.value };
        assert!(sent_from_here(&local));
        // Applied by an older daemon (the flag without its time): never taken as forwarded.
        assert!(!sent_from_here(&FlowValue { pad32: FLOW_SYNCED, ..forwarded }));
    }

    #[test]
    fn received_flows_count_once_on_their_real_server() {
        let v = |real_id, state| FlowValue { real_id, svc_id: 2, state, ..Default::default() };
        assert_eq!(credits(None, &v(7, CT_EST)), [(7, 1)]);
        assert_eq!(credits(None, &v(7, CT_SYN)), [(7, 1)]);
        assert!(credits(None, &v(7, CT_CLOSING)).is_empty());
        assert!(credits(Some(&v(7, CT_SYN)), &v(7, CT_EST)).is_empty(), "a refresh counts nothing");
        assert_eq!(credits(Some(&v(7, CT_EST)), &v(7, CT_CLOSING)), [(7, -1)]);
        assert!(credits(Some(&v(7, CT_CLOSING)), &v(7, CT_CLOSING)).is_empty());
        assert_eq!(credits(Some(&v(7, CT_CLOSING)), &v(8, CT_EST)), [(8, 1)], "reopened");
        assert_eq!(credits(Some(&v(7, CT_EST)), &v(8, CT_EST)), [(7, -1), (8, 1)]);
    }

    #[test]
    fn sync_id_zero_takes_any() {
        assert!(sync_id_matches(0, 9) && sync_id_matches(9, 9) && !sync_id_matches(9, 8));
    }
}
