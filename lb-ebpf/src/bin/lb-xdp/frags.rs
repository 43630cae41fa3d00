//! Fragmented datagrams to a service or from a NAT real server, balanced as IPVS balances
//! them (it reassembles first; every fragment reaches one real server either way): the first
//! fragment carries the L4 header and decides like any packet, and that decision is recorded
//! by (source, destination, identification, protocol) in `lb_frags`; later fragments follow
//! it. A first fragment that is not ours records that too, so its later fragments pass to
//! the stack at once. A later fragment that arrives before its first is held: handed to the
//! daemon, which replays it shortly (`punt`); if the daemon gives up, the replay passes it.

use aya_ebpf::programs::XdpContext;
use lb_common::{
    FragValue, NatRev, Reason,
    consts::{FRAG_NAT_REPLY, FRAG_PASS, FRAG_TIMEOUT, FRAG_TO_REAL, NO_REAL, PUNT_EARLY_FRAGMENT},
};
use lb_ebpf::{
    ct::NS,
    mem::zeroed,
    verdict::{Verdict, XDP_PASS},
};

use crate::{
    maps::{lb_frag_giveup, lb_frags, lb_stats},
    punt,
    scratch::Frame,
    time::now,
};

/// Records that `f`'s datagram goes to real server `real` of service `svc` by `fwd`.
#[inline(never)]
pub fn record_to_real(f: &Frame, svc: u32, real: u32, fwd: u8) {
    let mut v = empty();
    (v.action, v.fwd, v.svc_id, v.real_id) = (FRAG_TO_REAL, fwd, svc, real);
    record(f, v);
}

/// Records that `f`'s datagram is a NAT reply translated by `rev`.
#[inline(never)]
pub fn record_nat_reply(f: &Frame, rev: &NatRev) {
    let mut v = empty();
    (v.action, v.vport, v.svc_id, v.vip) = (FRAG_NAT_REPLY, rev.vport, rev.svc_id, rev.vip);
    // SAFETY: a field of a live map value. Volatile: read with `svc_id` as one 8-byte word,
    // it would be stored as one at a 4-byte-aligned stack offset, which the verifier refuses
    // (the object allows misaligned accesses: see xtask's `build.rs`).
    v.real_id = unsafe { core::ptr::read_volatile(&rev.real_id) };
    record(f, v);
}

/// Records that `f`'s datagram is not ours: its later fragments pass to the stack.
#[inline(never)]
pub fn record_pass(f: &Frame) {
    let mut v = empty();
    v.action = FRAG_PASS;
    record(f, v);
}

#[inline(always)]
fn empty() -> FragValue {
    // SAFETY: `FragValue` is plain data.
    let mut v: FragValue = unsafe { zeroed() };
    v.real_id = NO_REAL;
    v
}

#[inline(always)]
fn record(f: &Frame, mut value: FragValue) {
    value.last_ns = now();
    let _ = lb_frags.insert(&f.frag_key(), &value, 0);
    count(true);
}

/// What a later fragment does: what its datagram's first fragment decided, or `None` when
/// that is not known (yet).
#[inline(never)]
pub fn find(f: &Frame) -> Option<&'static FragValue> {
    // SAFETY: read at once by the caller; an LRU entry is reused only after eviction.
    let e = unsafe { lb_frags.get(&f.frag_key()) }?;
    if now().saturating_sub(e.last_ns) > FRAG_TIMEOUT * NS {
        return None;
    }
    count(false);
    Some(e)
}

/// A later fragment whose datagram's first has not decided: held (handed to the daemon), or
/// passed to the stack once the daemon has given up waiting.
#[inline(never)]
pub fn hold(ctx: &XdpContext, f: &Frame) -> Verdict {
    if lb_frag_giveup.remove(&f.frag_key()).is_ok() {
        return Verdict::new(XDP_PASS, Reason::Fragment);
    }
    punt::hand_over(ctx, f, PUNT_EARLY_FRAGMENT, 0)
}

#[inline(always)]
fn count(first: bool) {
    if let Some(s) = lb_stats.get_ptr_mut(0) {
        // SAFETY: this CPU's counters.
        let s = unsafe { &mut *s };
        if first {
            s.frags_first += 1;
        } else {
            s.frags_followed += 1;
        }
    }
}
