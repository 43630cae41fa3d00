//! Connection tracking and persistence: a tracked flow keeps its real server without
//! scheduling; persistence keeps a client (masked address) on one real server per service.

use aya_ebpf::helpers::bpf_ktime_get_coarse_ns;
use lb_common::{
    FlowKey, FlowValue, PersistKey, PersistValue, SvcConf,
    consts::{
        CT_CLOSING, CT_EST, CT_SYN, CT_UDP, FAMILY_V4, IPPROTO_TCP, NO_REAL, REAL_PRESENT, TCP_CLOSE_TIMEOUT,
        TCP_EST_TIMEOUT, TCP_SYN_TIMEOUT, UDP_TIMEOUT,
    },
};

use crate::{
    maps::{CONNTRACK, PERSIST, REAL_CONNS, REALS_MAP, SVC_CONF, SVC_GEN},
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

impl Decision {
    #[inline(always)]
    fn new(real: u32, fwd: u8, new: bool) -> Self {
        let ok = if real == NO_REAL { 0 } else { D_OK };
        Self(u64::from(real) | u64::from(fwd) << 32 | ok | if new { D_NEW } else { 0 })
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
#[inline(never)]
pub fn decide(svc: u32, f: &Frame) -> Decision {
    let generation = SVC_GEN.get(svc).copied().unwrap_or(0) & 1;
    let Some(conf) = SVC_CONF.get(svc * 2 + generation) else { return Decision::new(NO_REAL, 0, false) };
    let key = flow_key(f);
    let t = now();
    let tcp = f.proto == IPPROTO_TCP;
    let closing = tcp && f.tcp_flags & (TCP_FIN | TCP_RST) != 0;
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
            } else if tcp && v.state == CT_SYN && f.tcp_flags & TCP_ACK != 0 && f.tcp_flags & TCP_SYN == 0 {
                v.state = CT_EST;
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
    let state = match (tcp, f.tcp_flags & TCP_SYN != 0, closing) {
        (false, _, _) => CT_UDP,
        (true, _, true) => CT_CLOSING,
        (true, true, false) => CT_SYN,
        // Mid-flow packet with no entry (table lost or evicted): keep it going.
        (true, false, false) => CT_EST,
    };
    let value = FlowValue { real_id: real, svc_id: svc, last_ns: t, state, pad8: 0, pad16: 0, pad32: 0 };
    let _ = CONNTRACK.insert(&key, &value, 0);
    if state != CT_CLOSING {
        add_conns(real, 1);
    }
    if conf.persist_timeout != 0 {
        remember_persist(svc, conf, f, real, t);
    }
    Decision::new(real, conf.fwd, true)
}

#[inline(never)]
fn remember_persist(svc: u32, conf: &SvcConf, f: &Frame, real: u32, t: u64) {
    let pk = persist_key(svc, conf, f);
    let _ = PERSIST.insert(&pk, &PersistValue { real_id: real, pad: 0, last_ns: t }, 0);
}

/// The client's address masked to the persistence granularity.
#[inline(always)]
fn persist_key(svc: u32, conf: &SvcConf, f: &Frame) -> PersistKey {
    let bits = if f.family == FAMILY_V4 { conf.persist_prefix.min(32) } else { conf.persist_prefix.min(128) } as usize;
    let mut addr = [0u8; 16];
    for (i, byte) in addr.iter_mut().enumerate() {
        let keep = bits.saturating_sub(i * 8).min(8);
        let mask = if keep == 0 { 0 } else { 0xffu8 << (8 - keep) };
        *byte = f.src[i] & mask;
    }
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
    match unsafe { CONNTRACK.get(&key) } {
        Some(v) if real_live(v.real_id, svc) => Decision::new(v.real_id, conf.fwd, false),
        _ => Decision::new(NO_REAL, conf.fwd, false),
    }
}
