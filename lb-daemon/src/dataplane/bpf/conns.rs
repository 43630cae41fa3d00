//! The flow tables read from the pins for `lb-daemon conns` (with or without a running
//! daemon): `lb_conntrack4` / `lb_conntrack` and `lb_halfopen` (a flow's real server and state), `lb_nat_rev` and
//! `lb_halfopen_rev` (reply translations). Real server ids are named through `lb_reals`,
//! service ids through `lb_services`; "expires in" follows the data plane's own rule
//! (`flow_timeout_secs` after the entry's last-seen time, on the coarse monotonic clock).

use std::{collections::BTreeMap, path::Path};

use anyhow::{Context as _, Result};
use aya::maps::{Array, HashMap};
use lb_common::{FlowKey, FlowValue, NatRev, RealDef, ServiceKey, ServiceValue, consts::*};

use super::{maps::pinned, monotonic_ns};
use crate::dataplane::{
    conns::{Conn, Endpoint, Table},
    services,
};

const NS: u64 = 1_000_000_000;

/// What ids name: real servers (`lb_reals`, present or not: a flow may outlive its real
/// server's removal by a moment) and services (`lb_services`).
#[derive(Default)]
pub struct Names {
    pub reals: BTreeMap<u32, RealDef>,
    pub services: BTreeMap<u32, ServiceKey>,
}

fn endpoint(addr: &[u8; 16], family: u8, port: u16) -> Endpoint {
    Endpoint { ip: services::ip_of(addr, family), port }
}

fn real_of(names: &Names, id: u32) -> Option<Endpoint> {
    // A cleared slot (a removed real server's, after its grace period) has no address.
    names.reals.get(&id).filter(|r| r.family != 0).map(|r| endpoint(&r.addr, r.family, r.port))
}

/// `lb_conntrack4`/`lb_conntrack`'s or `lb_halfopen`'s states as `ipvsadm -Lnc` would say them.
fn state_name(table: Table, state: u8, proto: u8) -> &'static str {
    match (table, state) {
        (_, CT_SYN) => "SYN_RECV",
        (_, CT_EST) => "ESTABLISHED",
        (_, CT_CLOSING) => "CLOSING",
        (Table::Halfopen, _) => "UDP_NEW",
        _ if proto == IPPROTO_UDP => "UDP",
        _ => "UNKNOWN",
    }
}

/// A tracked (or half-open) flow at time `now` (`bpf_ktime_get_coarse_ns`'s clock). The data
/// plane keeps an entry while `now - last_ns <= timeout`; a timestamp ahead of `now` (another
/// CPU's coarse clock) counts as fresh, as there.
pub fn flow(table: Table, k: &FlowKey, v: &FlowValue, now: u64, names: &Names) -> Conn {
    let idle = now.saturating_sub(v.last_ns);
    let timeout = flow_timeout_secs(v.state) * NS;
    Conn {
        table,
        protocol: services::proto_name(k.proto),
        client: endpoint(&k.src, k.family, k.sport),
        vip: endpoint(&k.dst, k.family, k.dport),
        real: real_of(names, v.real_id),
        real_id: Some(v.real_id),
        service: names.services.get(&v.svc_id).map(services::describe),
        state: state_name(table, v.state, k.proto).to_string(),
        expires_in_s: Some(timeout.saturating_sub(idle) / NS),
        idle_s: Some(idle / NS),
    }
}

/// A NAT reply translation: the key is the reply's 5-tuple (real server → client). It has no
/// timeout: it answers until the LRU evicts it or a new flow's entry replaces it.
pub fn reverse(table: Table, k: &FlowKey, v: &NatRev, now: u64, names: &Names) -> Conn {
    Conn {
        table,
        protocol: services::proto_name(k.proto),
        client: endpoint(&k.dst, k.family, k.dport),
        vip: endpoint(&v.vip, k.family, v.vport),
        real: Some(endpoint(&k.src, k.family, k.sport)),
        real_id: Some(v.real_id),
        service: names.services.get(&v.svc_id).map(services::describe),
        state: "NAT_REPLY".to_string(),
        expires_in_s: None,
        idle_s: Some(now.saturating_sub(v.last_ns) / NS),
    }
}

/// Drops `lb_halfopen_rev` entries that `lb_nat_rev` has too: the copy a flow left there when
/// it was promoted ages out unused (replies look in `lb_nat_rev` first).
pub fn drop_shadowed(revs: &mut Vec<(Table, FlowKey, NatRev)>) {
    let promoted: std::collections::HashSet<FlowKey> =
        revs.iter().filter(|(t, _, _)| *t == Table::NatRev).map(|(_, k, _)| *k).collect();
    revs.retain(|(t, k, _)| *t != Table::HalfopenRev || !promoted.contains(k));
}

/// Every entry of the four flow tables pinned under `pin_dir` (less shadowed reply entries).
pub fn read_conns(pin_dir: &Path) -> Result<Vec<Conn>> {
    let open = |name: &str| pinned(&pin_dir.join(name));
    let svc: HashMap<_, ServiceKey, ServiceValue> = HashMap::try_from(open(MAP_SERVICES)?)?;
    let reals: Array<_, RealDef> = Array::try_from(open(MAP_REALS)?)?;
    let mut names = Names::default();
    for entry in svc.iter() {
        let (k, v) = entry.context("reading lb_services")?;
        names.services.entry(v.id).or_insert(k);
    }
    let established = super::conntrack::Conntrack::open(pin_dir)?.entries();
    let mut flows: Vec<(Table, FlowKey, FlowValue)> =
        established.into_iter().map(|(k, v)| (Table::Conntrack, k, v)).collect();
    let halfopen: HashMap<_, FlowKey, FlowValue> = HashMap::try_from(open(MAP_HALFOPEN)?)?;
    // An entry deleted between the key walk and its lookup is skipped.
    flows.extend(halfopen.iter().filter_map(|e| e.ok()).map(|(k, v)| (Table::Halfopen, k, v)));
    let mut revs: Vec<(Table, FlowKey, NatRev)> = Vec::new();
    for (table, name) in [(Table::NatRev, MAP_NAT_REV), (Table::HalfopenRev, MAP_HALFOPEN_REV)] {
        let map: HashMap<_, FlowKey, NatRev> = HashMap::try_from(open(name)?)?;
        revs.extend(map.iter().filter_map(|e| e.ok()).map(|(k, v)| (table, k, v)));
    }
    drop_shadowed(&mut revs);
    // Only the real servers flows name: one lookup each, not a walk of all 65,536 slots.
    let ids = flows.iter().map(|(_, _, v)| v.real_id).chain(revs.iter().map(|(_, _, v)| v.real_id));
    for id in ids {
        if let std::collections::btree_map::Entry::Vacant(slot) = names.reals.entry(id)
            && let Ok(r) = reals.get(&id, 0)
        {
            slot.insert(r);
        }
    }
    let now = monotonic_ns();
    let mut out: Vec<Conn> = flows.iter().map(|(t, k, v)| flow(*t, k, v, now, &names)).collect();
    out.extend(revs.iter().map(|(t, k, v)| reverse(*t, k, v, now, &names)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, proto: u8) -> FlowKey {
        let (mut s, mut d) = ([0u8; 16], [0u8; 16]);
        s[..4].copy_from_slice(&src);
        d[..4].copy_from_slice(&dst);
        FlowKey { src: s, dst: d, sport, dport, proto, family: FAMILY_V4, pad: [0; 2] }
    }

    fn names() -> Names {
        let mut n = Names::default();
        let mut addr = [0u8; 16];
        addr[..4].copy_from_slice(&[198, 51, 100, 11]);
        n.reals.insert(
            7,
            RealDef { addr, port: 8080, family: FAMILY_V4, flags: REAL_PRESENT, svc_id: 2, ..Default::default() },
        );
        n.reals.insert(8, RealDef::default());
        n.services.insert(2, ServiceKey::v4([203, 0, 113, 10], 80, IPPROTO_TCP));
        n
    }

    fn value(real_id: u32, last_ns: u64, state: u8) -> FlowValue {
        FlowValue { real_id, svc_id: 2, last_ns, state, ..Default::default() }
    }

    #[test]
    fn an_established_flow_names_its_real_server_service_and_expiry() {
        let now = 5_000 * NS;
        let k = key([192, 0, 2, 2], 40000, [203, 0, 113, 10], 80, IPPROTO_TCP);
        let c = flow(Table::Conntrack, &k, &value(7, now - 3 * NS - NS / 2, CT_EST), now, &names());
        assert_eq!(c.client.to_string(), "192.0.2.2:40000");
        assert_eq!(c.vip.to_string(), "203.0.113.10:80");
        assert_eq!(c.real.map(|e| e.to_string()).as_deref(), Some("198.51.100.11:8080"));
        assert_eq!(c.service.as_deref(), Some("203.0.113.10:80/tcp"));
        assert_eq!((c.protocol.as_str(), c.state.as_str()), ("tcp", "ESTABLISHED"));
        // 900 s less 3.5 s idle: 896.5 s left, whole seconds as ipvsadm shows them.
        assert_eq!((c.expires_in_s, c.idle_s), (Some(896), Some(3)));
    }

    #[test]
    fn states_timeouts_and_unknown_real_servers() {
        let now = 5_000 * NS;
        let n = names();
        let tcp = key([192, 0, 2, 2], 1, [203, 0, 113, 10], 80, IPPROTO_TCP);
        let udp = key([192, 0, 2, 2], 1, [203, 0, 113, 10], 53, IPPROTO_UDP);
        let cases = [
            (Table::Halfopen, tcp, CT_SYN, "SYN_RECV", TCP_SYN_TIMEOUT),
            (Table::Halfopen, udp, CT_UDP, "UDP_NEW", UDP_TIMEOUT),
            (Table::Conntrack, udp, CT_UDP, "UDP", UDP_TIMEOUT),
            (Table::Conntrack, tcp, CT_CLOSING, "CLOSING", TCP_CLOSE_TIMEOUT),
        ];
        for (table, k, state, name, timeout) in cases {
            let c = flow(table, &k, &value(7, now, state), now, &n);
            assert_eq!((c.state.as_str(), c.expires_in_s), (name, Some(timeout)), "{name}");
        }
        // Past its timeout: 0 left (the data plane replaces it at the next packet).
        let c = flow(Table::Conntrack, &tcp, &value(7, now - 11 * NS, CT_CLOSING), now, &n);
        assert_eq!(c.expires_in_s, Some(0));
        // A timestamp from a CPU whose coarse clock is ahead: fresh, the full timeout.
        let c = flow(Table::Conntrack, &tcp, &value(7, now + NS, CT_EST), now, &n);
        assert_eq!((c.expires_in_s, c.idle_s), (Some(TCP_EST_TIMEOUT), Some(0)));
        // A cleared real server slot and an id never read: the id stays, the address is unknown.
        for id in [8, 9] {
            let c = flow(Table::Conntrack, &tcp, &value(id, now, CT_EST), now, &n);
            assert_eq!((c.real, c.real_id), (None, Some(id)));
        }
    }

    #[test]
    fn a_nat_reply_entry_is_read_back_as_its_flow() {
        let now = 5_000 * NS;
        // The reply's 5-tuple: real server 198.51.100.11:8080 -> client 192.0.2.2:40000.
        let k = key([198, 51, 100, 11], 8080, [192, 0, 2, 2], 40000, IPPROTO_TCP);
        let mut vip = [0u8; 16];
        vip[..4].copy_from_slice(&[203, 0, 113, 10]);
        let v = NatRev { vip, vport: 80, svc_id: 2, real_id: 7, last_ns: now - 75 * NS, ..Default::default() };
        let c = reverse(Table::NatRev, &k, &v, now, &names());
        assert_eq!(
            (c.client.to_string(), c.vip.to_string(), c.real.map(|e| e.to_string())),
            ("192.0.2.2:40000".into(), "203.0.113.10:80".into(), Some("198.51.100.11:8080".into()))
        );
        assert_eq!((c.expires_in_s, c.idle_s, c.state.as_str()), (None, Some(75), "NAT_REPLY"));
    }

    #[test]
    fn a_promoted_flows_half_open_reply_entry_is_not_listed() {
        let a = key([198, 51, 100, 11], 8080, [192, 0, 2, 2], 40000, IPPROTO_TCP);
        let b = key([198, 51, 100, 11], 8080, [192, 0, 2, 2], 40001, IPPROTO_TCP);
        let v = NatRev::default();
        let mut revs =
            vec![(Table::NatRev, a, v), (Table::HalfopenRev, a, v), (Table::HalfopenRev, b, v), (Table::NatRev, b, v)];
        drop_shadowed(&mut revs);
        let left: Vec<(Table, u16)> = revs.iter().map(|(t, k, _)| (*t, k.dport)).collect();
        assert_eq!(left, [(Table::NatRev, 40000), (Table::NatRev, 40001)]);
        let mut half = vec![(Table::HalfopenRev, a, v)];
        drop_shadowed(&mut half);
        assert_eq!(half.len(), 1, "a flow still half-open keeps its entry");
    }

    #[test]
    fn ipv6_flows_keep_all_sixteen_bytes() {
        let src: std::net::Ipv6Addr = "2001:db8:c::2".parse().unwrap();
        let dst: std::net::Ipv6Addr = "2001:db8:f::10".parse().unwrap();
        let k = FlowKey {
            src: src.octets(),
            dst: dst.octets(),
            sport: 5353,
            dport: 53,
            proto: IPPROTO_UDP,
            family: FAMILY_V6,
            pad: [0; 2],
        };
        let c = flow(Table::Conntrack, &k, &value(9, 0, CT_UDP), 0, &Names::default());
        assert_eq!(
            (c.client.to_string(), c.vip.to_string()),
            ("[2001:db8:c::2]:5353".into(), "[2001:db8:f::10]:53".into())
        );
    }
}
