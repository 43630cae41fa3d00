//! Connection tracking and persistence: a tracked flow keeps its real server without
//! scheduling; persistence keeps a client (masked address) on one real server per service.
//! The rules are `lb_ebpf::ct`; this module applies them to the maps.

use lb_common::{
    FlowKey, FlowKey4, FlowValue, NatRev, PersistKey, PersistValue, RealDef, ServiceKey, SvcConf,
    consts::{CT_CLOSING, CT_EST, FAMILY_V4, NO_REAL, REAL_PRESENT, SCHED_LBLC, SCHED_LC, SCHED_WLC},
};
use lb_ebpf::{
    ct::{self, Hit, NS},
    decision::Decision,
    mem::{copy, ipv4_part, same_addr},
    persist::mask_prefix,
};

use crate::{
    maps::{
        lb_conntrack, lb_conntrack4, lb_halfopen, lb_halfopen_rev, lb_nat_rev, lb_persist, lb_real_conns, lb_real_rev,
        lb_real_rev4, lb_reals, lb_svc_conf, lb_svc_gen,
    },
    sched,
    scratch::{self, Frame},
    stats::{TableChange, count_table},
};

/// Whether `real` still belongs to service `svc` (a removed real server's flows move on).
#[inline(always)]
pub fn real_live(real: u32, svc: u32) -> bool {
    lb_reals.get(real).is_some_and(|r| r.flags & REAL_PRESENT != 0 && r.svc_id == svc)
}

/// The live generation of service `svc`'s configuration, and the generation (0/1).
#[inline(always)]
pub fn conf(svc: u32) -> Option<(&'static SvcConf, u32)> {
    let generation = lb_svc_gen.get(svc).copied().unwrap_or(0) & 1;
    lb_svc_conf.get(svc * 2 + generation).map(|c| (c, generation))
}

/// Moves the flow `v` points at from state `from` to `to`; false when another CPU changed the
/// state first. The state byte shares its aligned 32-bit word with zeroed padding, so one
/// compare-and-exchange of that word is the transition: exactly one CPU wins it, and only the
/// winner adjusts the connection count.
#[inline(always)]
fn transition(v: *mut FlowValue, from: u8, to: u8) -> bool {
    // SAFETY: `state` starts an aligned word of a live map value (checked below).
    let word = unsafe { (&raw mut (*v).state).cast::<u32>() };
    // SAFETY: as above; a BPF_CMPXCHG (ISA v3).
    let (_, won) = unsafe {
        core::intrinsics::atomic_cxchg::<
            u32,
            { core::intrinsics::AtomicOrdering::Relaxed },
            { core::intrinsics::AtomicOrdering::Relaxed },
        >(word, u32::from(from), u32::from(to))
    };
    won
}

const _: () = assert!(core::mem::offset_of!(FlowValue, state) % 4 == 0);
const _: () = assert!(core::mem::offset_of!(FlowValue, pad16) == core::mem::offset_of!(FlowValue, state) + 2);

/// The established flow `key` names (a live map value): IPv4 flows are in `lb_conntrack4`,
/// by their narrow key, IPv6 flows in `lb_conntrack`.
#[inline(always)]
fn established(key: &FlowKey) -> Option<*mut FlowValue> {
    if key.family == FAMILY_V4 { lb_conntrack4.get_ptr_mut(&narrow(key)) } else { lb_conntrack.get_ptr_mut(key) }
}

/// Records flow `key` as established; false if `flags` forbade it (`BPF_NOEXIST`: it is there).
#[inline(always)]
fn establish(key: &FlowKey, value: &FlowValue, flags: u64) -> bool {
    if key.family == FAMILY_V4 {
        lb_conntrack4.insert(&narrow(key), value, flags).is_ok()
    } else {
        lb_conntrack.insert(key, value, flags).is_ok()
    }
}

/// Deletes established flow `key`; false if another CPU did first.
#[inline(always)]
fn forget_established(key: &FlowKey) -> bool {
    if key.family == FAMILY_V4 { lb_conntrack4.remove(&narrow(key)).is_ok() } else { lb_conntrack.remove(key).is_ok() }
}

/// An IPv4 flow's key in `lb_conntrack4` (`FlowKey::narrow`, in word copies).
#[inline(always)]
fn narrow(key: &FlowKey) -> FlowKey4 {
    let mut k =
        FlowKey4 { src: [0; 4], dst: [0; 4], sport: key.sport, dport: key.dport, proto: key.proto, pad8: 0, pad16: 0 };
    copy(&mut k.src, ipv4_part(&key.src));
    copy(&mut k.dst, ipv4_part(&key.dst));
    k
}

#[inline(always)]
fn add_conns(real: u32, delta: i64) {
    if let Some(p) = lb_real_conns.get_ptr_mut(real) {
        // SAFETY: aligned u64 in a live array slot; all writers use atomic adds.
        unsafe {
            core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(
                p.cast(),
                delta as u64,
            )
        };
    }
}

/// The real server for this packet of service `svc`: the tracked one, or a new choice
/// (persistence first, then the scheduler, then the sorry server) recorded for the flow's
/// next packets.
///
/// A flow opened by a bare SYN or a UDP datagram is recorded in `lb_halfopen`, not
/// `lb_conntrack`, and moves there with the client's next packet (a TCP handshake's ACK):
/// spoofed floods, which never get that far, only ever evict each other, never an established
/// flow. A bare SYN to a hashing scheduler (sh, dh, mh) records nothing: the ACK gets the same
/// answer and records the flow (`ct::opens_without_state`). Live connection counts (lc/wlc) follow IPVS's active connections: established flows
/// only. Every change of a flow's state is one compare-and-exchange (`transition`) or one
/// delete, so two CPUs racing on one flow count it once.
#[inline(never)]
pub fn decide(svc: u32, f: &Frame) -> Decision {
    let Some((conf, generation)) = conf(svc) else { return Decision::none() };
    decide_with(svc, conf, f).with_generation(generation)
}

/// `decide` with the service's live configuration.
#[inline(always)]
fn decide_with(svc: u32, conf: &SvcConf, f: &Frame) -> Decision {
    let key = f.flow_key();
    let t = f.now;
    let p = f.packet();
    // An entry found and replaced (expired, its real server gone, its ports reused): the flow
    // is scheduled anew and counts as new.
    let mut replaced = false;
    if let Some(v) = established(&key) {
        // SAFETY: a live map value; the state changes only by compare-and-exchange, and a
        // concurrent writer can at worst tear the timestamp, which only affects its expiry.
        let entry = unsafe { &mut *v };
        let real = entry.real_id;
        match ct::on_hit(entry.state, entry.last_ns, t, real_live(real, svc), p) {
            Hit::Use => return Decision::new(real, conf.fwd, false),
            Hit::Touch => {
                entry.last_ns = t;
                return Decision::new(real, conf.fwd, false);
            }
            Hit::Close => {
                if transition(v, CT_EST, CT_CLOSING) {
                    add_conns(real, -1);
                }
                entry.last_ns = t;
                return Decision::new(real, conf.fwd, false);
            }
            // The entry is replaced below: an expired open flow leaves its real server's
            // count now (the daemon only deletes expired entries nobody touches any more).
            Hit::Reschedule { release } => {
                if release && transition(v, entry.state, CT_CLOSING) {
                    add_conns(real, -1);
                }
            }
        }
        // The old entry must not answer for the new flow: whichever CPU inserts the new one
        // first (`track`) decides for all.
        if forget_established(&key) {
            count_table(TableChange::CtDelete);
        }
        replaced = true;
    // SAFETY: copied out at once.
    } else if let Some(h) = unsafe { lb_halfopen.get(&key) }.copied() {
        if t.saturating_sub(h.last_ns) <= ct::timeout_ns(h.state) && real_live(h.real_id, svc) {
            if !p.completes_half_open() {
                // A retransmitted SYN: same real server, still half-open.
                return Decision::new(h.real_id, conf.fwd, false).half_open();
            }
            // Into the main table first: a reply meanwhile finds the flow in one table or the
            // other (`nat_reply_of`). Two CPUs racing insert once (`track`) and delete once.
            let real = track(&key, h.real_id, svc, t, p.new_state());
            if lb_halfopen.remove(&key).is_ok() {
                count_table(TableChange::HalfOpenDelete);
            }
            return Decision::new(real, conf.fwd, false).promoted();
        }
    }
    let mut real = persisted(svc, conf, f, t);
    if real == NO_REAL {
        real = sched::pick(svc, conf, f);
    }
    if real == NO_REAL {
        // All real servers down: the sorry server takes new flows (untracked).
        let sorry = if real_live(conf.sorry_real, svc) { conf.sorry_real } else { NO_REAL };
        return Decision::new(sorry, conf.fwd, true).untracked();
    }
    if conf.persist_timeout != 0 {
        remember_persist(svc, conf, f, real, t);
    }
    if ct::opens_without_state(conf.sched, p) {
        return Decision::new(real, conf.fwd, true).half_open().untracked();
    }
    if p.opens_half_open() {
        let value = FlowValue {
            real_id: real,
            svc_id: svc,
            last_ns: t,
            state: p.half_open_state(),
            pad8: 0,
            pad16: 0,
            pad32: 0,
        };
        // Only an insert of a new key counts (an expired entry's key is overwritten): the
        // eviction count is inserts - deletions - occupancy.
        if lb_halfopen.insert(&key, &value, BPF_NOEXIST).is_ok() {
            count_table(TableChange::HalfOpenInsert);
        } else {
            let _ = lb_halfopen.insert(&key, &value, 0);
        }
        // Only the least-connection schedulers read the counts of new flows.
        if matches!(conf.sched, SCHED_LC | SCHED_WLC | SCHED_LBLC) {
            sched::count_syn(real, t);
        }
        return Decision::new(real, conf.fwd, true).half_open();
    }
    let tracked = track(&key, real, svc, t, p.new_state());
    if !replaced && ct::completes_stateless_open(conf.sched, p) {
        return Decision::new(tracked, conf.fwd, false).promoted();
    }
    Decision::new(tracked, conf.fwd, tracked == real)
}

/// Records an established flow (`established`) unless another CPU just did (only the inserting CPU
/// counts an open flow on its real server); the real server the flow has.
#[inline(always)]
fn track(key: &FlowKey, real: u32, svc: u32, t: u64, state: u8) -> u32 {
    let value = FlowValue { real_id: real, svc_id: svc, last_ns: t, state, pad8: 0, pad16: 0, pad32: 0 };
    if establish(key, &value, BPF_NOEXIST) {
        count_table(TableChange::CtInsert);
        if state != CT_CLOSING {
            add_conns(real, 1);
        }
        return real;
    }
    // SAFETY: copied out at once.
    established(key).map_or(real, |v| unsafe { (*v).real_id })
}

/// `bpf_map_update_elem` flag: only create.
const BPF_NOEXIST: u64 = 1;

#[inline(never)]
fn remember_persist(svc: u32, conf: &SvcConf, f: &Frame, real: u32, t: u64) {
    let pk = persist_key(svc, conf, f);
    let _ = lb_persist.insert(&pk, &PersistValue { real_id: real, pad: 0, last_ns: t }, 0);
}

/// The client's address masked to the service's persistence granularity.
#[inline(always)]
fn persist_key(svc: u32, conf: &SvcConf, f: &Frame) -> PersistKey {
    let bits =
        u32::from(if f.family == FAMILY_V4 { conf.persist_prefix.min(32) } else { conf.persist_prefix.min(128) });
    PersistKey { addr: mask_prefix(&f.src, bits), svc_id: svc, pad: 0 }
}

/// The real server this client was given within the persistence timeout, if it is still
/// live and not drained (weight 0 takes no new flows, persistent or not).
#[inline(never)]
fn persisted(svc: u32, conf: &SvcConf, f: &Frame, t: u64) -> u32 {
    if conf.persist_timeout == 0 {
        return NO_REAL;
    }
    let key = persist_key(svc, conf, f);
    let Some(v) = lb_persist.get_ptr_mut(&key) else { return NO_REAL };
    // SAFETY: as in `decide`: only the timestamp is written, and a torn one only moves expiry.
    let v = unsafe { &mut *v };
    if t.saturating_sub(v.last_ns) > u64::from(conf.persist_timeout) * NS || !real_live(v.real_id, svc) {
        return NO_REAL;
    }
    if lb_reals.get(v.real_id).is_none_or(|r| r.weight == 0) {
        return NO_REAL;
    }
    v.last_ns = t;
    v.real_id
}

/// The tracked real server of the flow `f` describes (no scheduling, no new entry): for ICMP
/// errors about a flow, which must reach the same real server as the flow.
#[inline(never)]
pub fn tracked(svc: u32, f: &Frame) -> Decision {
    let Some((conf, generation)) = conf(svc) else { return Decision::none() };
    let key = f.flow_key();
    // SAFETY: copied out at once.
    let v = established(&key).map(|v| unsafe { &*v }).or_else(|| unsafe { lb_halfopen.get(&key) });
    let d = match v {
        Some(v) if real_live(v.real_id, svc) => Decision::new(v.real_id, conf.fwd, false),
        _ => Decision::new(NO_REAL, conf.fwd, false),
    };
    d.with_generation(generation)
}

/// NAT real server `addr`:`port` (`proto`, `family`)'s entry in `lb_real_rev`: IPv4 ones by
/// their narrow key, in `lb_real_rev4`. Read at once: the maps are not preallocated, so an
/// entry lives while it is read, and the daemon replaces one only once its flows are gone.
#[inline(always)]
fn real_rev(addr: &[u8; 16], port: u16, proto: u8, family: u8) -> Option<&'static NatRev> {
    if family == FAMILY_V4 {
        // SAFETY: as above.
        unsafe { lb_real_rev4.get(&scratch::service_key4(addr, port, proto)) }
    } else {
        // SAFETY: as above.
        unsafe { lb_real_rev.get(&ServiceKey { addr: *addr, port, proto, family, pad: 0 }) }
    }
}

/// Records where a new NAT flow's replies go back from, unless `lb_real_rev` already says
/// it for a flow a table holds: the reply's 5-tuple → VIP (in the half-open table until the
/// handshake completes; the stale copy there ages out).
#[inline(never)]
pub fn remember_nat_reply(f: &Frame, real: &RealDef, d: Decision) {
    if let Some(r) = real_rev(&real.addr, real.port, f.proto, f.family) {
        if r.vport == f.dport && same_addr(&r.vip, &f.dst) {
            if !d.is_untracked() && r.real_id == d.real() {
                return;
            }
        } else {
            forget_stale_forward(f, r);
        }
    }
    let rev_key = FlowKey {
        src: real.addr,
        dst: f.src,
        sport: if real.port == 0 { f.dport } else { real.port },
        dport: f.sport,
        proto: f.proto,
        family: f.family,
        pad: [0; 2],
    };
    let rev = NatRev {
        vip: f.dst,
        vport: f.dport,
        pad: [0; 2],
        svc_id: real.svc_id,
        real_id: d.real(),
        pad2: 0,
        last_ns: f.now,
    };
    let _ =
        if d.is_half_open() { lb_halfopen_rev.insert(&rev_key, &rev, 0) } else { lb_nat_rev.insert(&rev_key, &rev, 0) };
}

/// A new flow to a real server whose `lb_real_rev` entry names another VIP or port: its
/// replies have the same 5-tuple as an earlier flow from the same client port to that VIP
/// would have. Such a flow is over (the real server holds one connection per tuple), but its
/// entry may linger in the forward tables, and `nat_reply_of` would find it before this
/// flow's own reverse entry: it goes.
#[inline(always)]
fn forget_stale_forward(f: &Frame, r: &NatRev) {
    let stale = FlowKey {
        src: f.src,
        dst: r.vip,
        sport: f.sport,
        dport: r.vport,
        proto: f.proto,
        family: f.family,
        pad: [0; 2],
    };
    if let Some(v) = established(&stale) {
        // SAFETY: a live map value, read once; its state changes only by compare-and-exchange.
        let (real, state) = unsafe { ((*v).real_id, (*v).state) };
        if real == r.real_id {
            // As a rescheduled flow: an open one leaves its real server's count first.
            if state != CT_CLOSING && transition(v, state, CT_CLOSING) {
                add_conns(real, -1);
            }
            if forget_established(&stale) {
                count_table(TableChange::CtDelete);
            }
        }
    }
    // SAFETY: read at once.
    if unsafe { lb_halfopen.get(&stale) }.is_some_and(|v| v.real_id == r.real_id) && lb_halfopen.remove(&stale).is_ok()
    {
        count_table(TableChange::HalfOpenDelete);
    }
}

/// The NAT reply translation for a packet from a real server, if it belongs to a NAT flow:
/// its real server's (`lb_real_rev`) when the forward tables hold that flow for that real
/// server, else the flow's own reverse entry. The check keeps the real server's other
/// traffic (its health checks, clients that reach it directly) untranslated. A SYN-ACK
/// answers a half-open flow, so it looks in the half-open tables first. Not inlined: its
/// keys' stack must not add to `reply`'s chain of calls (6.1 allows 512 bytes for the deepest).
#[inline(never)]
pub fn nat_reply_of(f: &Frame) -> Option<&'static NatRev> {
    let by_real = real_rev(&f.src, f.sport, f.proto, f.family);
    let forward = by_real.map(|rev| FlowKey {
        src: f.dst,
        dst: rev.vip,
        sport: f.dport,
        dport: rev.vport,
        proto: f.proto,
        family: f.family,
        pad: [0; 2],
    });
    let flow = f.flow_key();
    // `lb_real_rev`'s entry, if the forward entry found holds the flow for its real server.
    let vouched = |entry: Option<&FlowValue>| by_real.filter(|r| entry.is_some_and(|v| v.real_id == r.real_id));
    // SAFETY (each lookup): read at once; an LRU entry could be reused under us only after
    // eviction.
    let in_conntrack = || vouched(forward.as_ref().and_then(|k| established(k).map(|v| unsafe { &*v })));
    let half_open = || vouched(forward.as_ref().and_then(|k| unsafe { lb_halfopen.get(k) }));
    if f.packet().syn_ack() {
        return half_open()
            .or_else(|| unsafe { lb_halfopen_rev.get(&flow) })
            .or_else(in_conntrack)
            .or_else(|| unsafe { lb_nat_rev.get(&flow) });
    }
    in_conntrack()
        .or_else(half_open)
        .or_else(|| unsafe { lb_nat_rev.get(&flow) })
        .or_else(|| unsafe { lb_halfopen_rev.get(&flow) })
}
