//! Connection tracking and persistence: a tracked flow keeps its real server without
//! scheduling; persistence keeps a client (masked address) on one real server per service.

use aya_ebpf::helpers::bpf_ktime_get_coarse_ns;
use lb_common::{
    FlowKey, FlowValue, PersistKey, PersistValue, SvcConf,
    consts::{
        CT_CLOSING, CT_EST, CT_SYN, CT_UDP, FAMILY_V4, IPPROTO_TCP, NO_REAL, REAL_PRESENT, SCHED_LBLC, SCHED_LC,
        SCHED_WLC, TCP_CLOSE_TIMEOUT, TCP_EST_TIMEOUT, TCP_SYN_TIMEOUT, UDP_TIMEOUT,
    },
};

use crate::{
    maps::{CONNTRACK, HALFOPEN, PERSIST, REAL_CONNS, REALS_MAP, SVC_CONF, SVC_GEN},
    parse::Frame,
    sched,
};

const NS: u64 = 1_000_000_000;
const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;
/// Refresh a hit entry's timestamp at most this often: saves a write per packet.
const TOUCH_NS: u64 = NS;

#[inline(always)]
pub fn now() -> u64 {
    unsafe { bpf_ktime_get_coarse_ns() }
}

#[inline(always)]
pub fn flow_key(f: &Frame) -> FlowKey {
    FlowKey { src: f.src, dst: f.dst, sport: f.sport, dport: f.dport, proto: f.proto, family: f.family, pad: [0; 2] }
}

#[inline(always)]
fn timeout_ns(state: u8) -> u64 {
    NS * match state {
        CT_SYN => TCP_SYN_TIMEOUT,
        CT_EST => TCP_EST_TIMEOUT,
        CT_CLOSING => TCP_CLOSE_TIMEOUT,
        _ => UDP_TIMEOUT,
    }
}

/// Whether `real` still belongs to service `svc` (a removed real server's flows move on).
#[inline(always)]
pub fn real_live(real: u32, svc: u32) -> bool {
    REALS_MAP.get(real).is_some_and(|r| r.flags & REAL_PRESENT != 0 && r.svc_id == svc)
}

#[inline(always)]
fn add_conns(real: u32, delta: i64) {
    if let Some(p) = REAL_CONNS.get_ptr_mut(real) {
        // SAFETY: aligned u64 in a live array slot; all writers use atomic adds.
        unsafe {
            core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(
                p.cast(),
                delta as u64,
            )
        };
    }
}

/// The outcome of `decide`, packed in one register (see `Verdict` for why): the real
/// server, the forwarding method, and whether the flow is new.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct Decision(u64);

const D_OK: u64 = 1 << 40;
const D_NEW: u64 = 1 << 41;
/// The flow is half-open: its NAT reply tuple goes to `lb_halfopen_rev`.
const D_HALF: u64 = 1 << 42;
/// The flow just left the half-open table: its NAT reply tuple goes to `lb_nat_rev` now.
const D_PROMOTED: u64 = 1 << 43;

impl Decision {
    #[inline(always)]
    fn new(real: u32, fwd: u8, new: bool) -> Self {
        let ok = if real == NO_REAL { 0 } else { D_OK };
        Self(u64::from(real) | u64::from(fwd) << 32 | ok | if new { D_NEW } else { 0 })
    }

    #[inline(always)]
    fn with(self, flag: u64) -> Self {
        Self(self.0 | flag)
    }

    #[inline(always)]
    pub fn half_open(self) -> bool {
        self.0 & D_HALF != 0
    }

    #[inline(always)]
    pub fn promoted(self) -> bool {
        self.0 & D_PROMOTED != 0
    }

    #[inline(always)]
    pub fn real(self) -> u32 {
        self.0 as u32
    }

    #[inline(always)]
    pub fn fwd(self) -> u8 {
        (self.0 >> 32) as u8
    }

    #[inline(always)]
    pub fn ok(self) -> bool {
        self.0 & D_OK != 0
    }

    #[inline(always)]
    pub fn is_new(self) -> bool {
        self.0 & D_NEW != 0
    }
}

/// The real server for this packet of service `svc`: the tracked one, or a new choice
/// (persistence first, then the scheduler, then the sorry server) recorded for the flow's
/// next packets.
///
/// A TCP flow opened by a bare SYN is recorded in `lb_halfopen`, not `lb_conntrack`, and
/// moves there with the client's first non-SYN packet (the handshake's ACK): spoofed SYNs,
/// which never get that far, only ever evict each other, never an established flow. Live
/// connection counts (lc/wlc) follow IPVS's active connections: established flows only.
#[inline(never)]
pub fn decide(svc: u32, f: &Frame) -> Decision {
    let generation = SVC_GEN.get(svc).copied().unwrap_or(0) & 1;
    let Some(conf) = SVC_CONF.get(svc * 2 + generation) else { return Decision::new(NO_REAL, 0, false) };
    let key = flow_key(f);
    let t = now();
    let tcp = f.proto == IPPROTO_TCP;
    let closing = tcp && f.tcp_flags & (TCP_FIN | TCP_RST) != 0;
    let bare_syn = tcp && f.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN;
    if let Some(v) = CONNTRACK.get_ptr_mut(&key) {
        // SAFETY: the entry is only written through this pointer by this packet; a concurrent
        // writer can at worst tear the timestamp, which only affects its expiry.
        let v = unsafe { &mut *v };
        let fresh = t.saturating_sub(v.last_ns) <= timeout_ns(v.state);
        // A new SYN on a closed flow is a new connection reusing the ports.
        let reused = tcp && v.state == CT_CLOSING && f.tcp_flags & TCP_SYN != 0;
        if fresh && !reused && real_live(v.real_id, svc) {
            let real = v.real_id;
            if closing && v.state != CT_CLOSING {
                v.state = CT_CLOSING;
                add_conns(real, -1);
                v.last_ns = t;
            } else if t.saturating_sub(v.last_ns) > TOUCH_NS {
                v.last_ns = t;
            }
            return Decision::new(real, conf.fwd, false);
        }
        // The entry is replaced below: an expired open flow leaves its real server's count
        // now (the daemon only deletes expired entries nobody touches any more).
        if !fresh && v.state != CT_CLOSING && real_live(v.real_id, svc) {
            add_conns(v.real_id, -1);
        }
        // A bare SYN goes to the half-open table below; the old entry must not answer for
        // the new connection's next packets.
        if bare_syn {
            let _ = CONNTRACK.remove(&key);
        }
    // SAFETY: copied out at once.
    } else if tcp && let Some(h) = unsafe { HALFOPEN.get(&key) }.copied() {
        if t.saturating_sub(h.last_ns) <= timeout_ns(CT_SYN) && real_live(h.real_id, svc) {
            if bare_syn {
                // A retransmitted SYN: same real server, still half-open.
                return Decision::new(h.real_id, conf.fwd, false).with(D_HALF);
            }
            let _ = HALFOPEN.remove(&key);
            let state = if closing { CT_CLOSING } else { CT_EST };
            track(&key, h.real_id, svc, t, state);
            return Decision::new(h.real_id, conf.fwd, false).with(D_PROMOTED);
        }
    }
    let mut real = persisted(svc, conf, f, t);
    if real == NO_REAL {
        real = sched::pick(svc, conf, f);
    }
    if real == NO_REAL {
        // All real servers down: the sorry server takes new flows (untracked).
        let sorry = if real_live(conf.sorry_real, svc) { conf.sorry_real } else { NO_REAL };
        return Decision::new(sorry, conf.fwd, true);
    }
    if conf.persist_timeout != 0 {
        remember_persist(svc, conf, f, real, t);
    }
    if bare_syn {
        let value = FlowValue { real_id: real, svc_id: svc, last_ns: t, state: CT_SYN, pad8: 0, pad16: 0, pad32: 0 };
        let _ = HALFOPEN.insert(&key, &value, 0);
        // Only the least-connection schedulers read the SYN counts.
        if matches!(conf.sched, SCHED_LC | SCHED_WLC | SCHED_LBLC) {
            sched::count_syn(real, t);
        }
        return Decision::new(real, conf.fwd, true).with(D_HALF);
    }
    let state = match (tcp, closing) {
        (false, _) => CT_UDP,
        (true, true) => CT_CLOSING,
        // Mid-flow packet with no entry (table lost or evicted, or a SYN-ACK): keep it going.
        (true, false) => CT_EST,
    };
    track(&key, real, svc, t, state);
    Decision::new(real, conf.fwd, true)
}

/// Records a flow in `lb_conntrack`; an open one counts on its real server.
#[inline(always)]
fn track(key: &FlowKey, real: u32, svc: u32, t: u64, state: u8) {
    let value = FlowValue { real_id: real, svc_id: svc, last_ns: t, state, pad8: 0, pad16: 0, pad32: 0 };
    let _ = CONNTRACK.insert(key, &value, 0);
    if state != CT_CLOSING {
        add_conns(real, 1);
    }
}

#[inline(never)]
fn remember_persist(svc: u32, conf: &SvcConf, f: &Frame, real: u32, t: u64) {
    let pk = persist_key(svc, conf, f);
    let _ = PERSIST.insert(&pk, &PersistValue { real_id: real, pad: 0, last_ns: t }, 0);
}

/// The client's address masked to the persistence granularity. Two 64-bit masks, no loop:
/// a per-byte loop with a variable prefix gives the verifier a state per byte and prefix,
/// which on 6.1 ran past its million-instruction budget.
#[inline(always)]
fn persist_key(svc: u32, conf: &SvcConf, f: &Frame) -> PersistKey {
    let bits =
        u32::from(if f.family == FAMILY_V4 { conf.persist_prefix.min(32) } else { conf.persist_prefix.min(128) });
    let s = &f.src;
    let hi = u64::from_be_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]]);
    let lo = u64::from_be_bytes([s[8], s[9], s[10], s[11], s[12], s[13], s[14], s[15]]);
    let (mhi, mlo) = match bits {
        0 => (0, 0),
        1..=63 => (u64::MAX << (64 - bits), 0),
        64 => (u64::MAX, 0),
        _ => (u64::MAX, u64::MAX << (128 - bits)),
    };
    let (h, l) = ((hi & mhi).to_be_bytes(), (lo & mlo).to_be_bytes());
    let addr = [h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], l[0], l[1], l[2], l[3], l[4], l[5], l[6], l[7]];
    PersistKey { addr, svc_id: svc }
}

/// The real server this client was given within the persistence timeout, if it is still
/// live and not drained (weight 0 takes no new flows, persistent or not).
#[inline(never)]
fn persisted(svc: u32, conf: &SvcConf, f: &Frame, t: u64) -> u32 {
    if conf.persist_timeout == 0 {
        return NO_REAL;
    }
    let key = persist_key(svc, conf, f);
    let Some(v) = PERSIST.get_ptr_mut(&key) else { return NO_REAL };
    // SAFETY: see `lookup`.
    let v = unsafe { &mut *v };
    if t.saturating_sub(v.last_ns) > u64::from(conf.persist_timeout) * NS || !real_live(v.real_id, svc) {
        return NO_REAL;
    }
    if REALS_MAP.get(v.real_id).is_none_or(|r| r.weight == 0) {
        return NO_REAL;
    }
    v.last_ns = t;
    v.real_id
}

/// The tracked real server of the flow `f` describes (no scheduling, no new entry): for ICMP
/// errors about a flow, which must reach the same real server as the flow.
#[inline(never)]
pub fn tracked(svc: u32, f: &Frame) -> Decision {
    let generation = SVC_GEN.get(svc).copied().unwrap_or(0) & 1;
    let Some(conf) = SVC_CONF.get(svc * 2 + generation) else { return Decision::new(NO_REAL, 0, false) };
    let key = flow_key(f);
    // SAFETY: copied out at once.
    let v = unsafe { CONNTRACK.get(&key) }.or_else(|| unsafe { HALFOPEN.get(&key) });
    match v {
        Some(v) if real_live(v.real_id, svc) => Decision::new(v.real_id, conf.fwd, false),
        _ => Decision::new(NO_REAL, conf.fwd, false),
    }
}
