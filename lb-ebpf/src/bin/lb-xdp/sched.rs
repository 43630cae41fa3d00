//! Picking a real server for a new flow. Userspace has built everything (sequences, hash
//! tables, Maglev tables, real lists); this is flat lookups and one bounded scan.

use aya_ebpf::helpers::{bpf_get_smp_processor_id, bpf_loop};
use lb_common::{
    PersistKey, RealConns, SvcConf,
    consts::{
        MAX_SCAN, NO_REAL, REAL_PRESENT, SCHED_DH, SCHED_LBLC, SCHED_LC, SCHED_MH, SCHED_RR, SCHED_SH, SCHED_WLC,
        SCHED_WRR, SVC_HASH_PORT, SYN_WINDOW_SHIFT,
    },
};
use lb_ebpf::hash::{hash_addr, hash_addr_port};

use crate::{
    maps::{lb_lblc, lb_real_conns, lb_real_expired, lb_real_syns, lb_reals, lb_rr, lb_tables},
    scratch::Frame,
    time::now,
};

#[inline(always)]
fn table(off: u32, idx: u32) -> u32 {
    lb_tables.get(off + idx).copied().unwrap_or(NO_REAL)
}

/// Live established flows of `real` (`u64::MAX` when it has no slot).
#[inline(always)]
fn conns(real: u32) -> u64 {
    let (Some(a), Some(e)) = (lb_real_conns.get_ptr_mut(real), lb_real_expired.get(real)) else { return u64::MAX };
    // SAFETY: an aligned u64 of a live array slot; a plain 8-byte load is atomic here.
    let active = unsafe { core::ptr::read_volatile(a.cast::<u64>()) };
    RealConns::live(active, e.active)
}

/// Counts a SYN sent to `real` in the current window (see `RealSyns`).
#[inline(always)]
pub fn count_syn(real: u32, t: u64) {
    let Some(s) = lb_real_syns.get_ptr_mut(real) else { return };
    // SAFETY: a live array slot; racing CPUs can at worst lose a count or a rotation.
    let s = unsafe { &mut *s };
    let epoch = t >> SYN_WINDOW_SHIFT;
    if s.epoch != epoch {
        s.prev = if s.epoch + 1 == epoch { s.cur } else { 0 };
        s.cur = 0;
        s.epoch = epoch;
    }
    // SAFETY: aligned u64 in a live array slot.
    unsafe {
        core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(&raw mut s.cur, 1)
    };
}

/// SYNs sent to `real` in this window and the one before.
#[inline(always)]
fn recent_syns(real: u32) -> u64 {
    // SAFETY: copied out at once.
    let Some(s) = lb_real_syns.get(real).copied() else { return 0 };
    let epoch = now() >> SYN_WINDOW_SHIFT;
    if s.epoch == epoch {
        s.cur + s.prev
    } else if s.epoch + 1 == epoch {
        s.cur
    } else {
        0
    }
}

/// State of a least-connections scan, passed to the `bpf_loop` callback.
#[repr(C)]
struct Scan {
    off: u32,
    pairs: u32,
    weighted: u32,
    best: u32,
    best_conns: u64,
    best_w: u64,
}

/// One step of the scan over the (real, weight) pairs. A `bpf_loop` callback: the verifier
/// checks it once instead of once per iteration and path.
#[inline(never)]
extern "C" fn scan_step(i: u64, ctx: *mut core::ffi::c_void) -> i64 {
    // SAFETY: `ctx` is the `Scan` on the caller's stack, alive for the whole loop.
    let s = unsafe { &mut *ctx.cast::<Scan>() };
    let i = i as u32;
    if i >= s.pairs {
        return 1;
    }
    let real = table(s.off, i * 2);
    let w = u64::from(table(s.off, i * 2 + 1));
    if real == NO_REAL || w == 0 {
        return 0;
    }
    let w = if s.weighted != 0 { w } else { 1 };
    // IPVS's overhead: active connections × 256 + inactive ones (here: recent SYNs, so a
    // burst of new connections spreads before their handshakes complete).
    let c = conns(real).saturating_mul(256).saturating_add(recent_syns(real));
    // c/w < best_conns/best_w without division.
    if s.best == NO_REAL || c * s.best_w < s.best_conns * w {
        s.best = real;
        s.best_conns = c;
        s.best_w = w;
    }
    0
}

/// Least (weighted) connections over the (real, weight) pairs of the table: the real whose
/// conns/weight is lowest (lc ignores weights but skips weight 0), as IPVS's lc/wlc.
#[inline(never)]
fn least_conns(conf: &SvcConf, weighted: bool) -> u32 {
    let pairs = (conf.table_len / 2).min(MAX_SCAN);
    let mut s =
        Scan { off: conf.table_off, pairs, weighted: u32::from(weighted), best: NO_REAL, best_conns: 0, best_w: 1 };
    // SAFETY: `scan_step` matches bpf_loop's callback type; `s` outlives the call.
    unsafe {
        bpf_loop(pairs, scan_step as *mut core::ffi::c_void, (&mut s as *mut Scan).cast(), 0);
    }
    s.best
}

/// The real server for a new flow of service `svc`, or `NO_REAL` when none is live.
#[inline(never)]
pub fn pick(svc: u32, conf: &SvcConf, f: &Frame) -> u32 {
    if conf.table_len == 0 {
        return NO_REAL;
    }
    match conf.sched {
        SCHED_RR | SCHED_WRR => {
            let Some(pos) = lb_rr.get_ptr_mut(svc) else { return NO_REAL };
            // SAFETY: per-CPU slot; nothing else on this CPU touches it meanwhile.
            let pos = unsafe { &mut *pos };
            // Each CPU keeps its own position; starting them apart keeps the CPUs from all
            // sending their first flows to the same real server.
            let cpu = unsafe { bpf_get_smp_processor_id() };
            let idx = pos.wrapping_add(cpu) % conf.table_len;
            *pos = pos.wrapping_add(1);
            table(conf.table_off, idx)
        }
        SCHED_SH | SCHED_MH => {
            // sh-port / mh-port: the source port too. (A fallback has no code here: the
            // daemon's table already sends a weight-0 real server's buckets elsewhere.)
            let h = if conf.flags & SVC_HASH_PORT != 0 { hash_addr_port(&f.src, f.sport) } else { hash_addr(&f.src) };
            table(conf.table_off, h % conf.table_len)
        }
        SCHED_DH => table(conf.table_off, hash_addr(&f.dst) % conf.table_len),
        SCHED_LC => least_conns(conf, false),
        SCHED_WLC => least_conns(conf, true),
        SCHED_LBLC => lblc(svc, conf, f),
        _ => NO_REAL,
    }
}

/// Locality-based least connections: a destination keeps its real server unless that one
/// is gone, drained or overloaded (more active connections than twice its weight), as
/// IPVS's lblc.
#[inline(always)]
fn lblc(svc: u32, conf: &SvcConf, f: &Frame) -> u32 {
    let key = PersistKey { addr: f.dst, svc_id: svc, pad: 0 };
    // SAFETY: copied out at once.
    if let Some(real) = unsafe { lb_lblc.get(&key) }.copied() {
        if let Some(r) = lb_reals.get(real) {
            let w = u64::from(r.weight);
            if r.flags & REAL_PRESENT != 0 && r.svc_id == svc && w > 0 && conns(real) <= 2 * w {
                return real;
            }
        }
    }
    let real = least_conns(conf, true);
    if real != NO_REAL {
        let _ = lb_lblc.insert(&key, &real, 0);
    }
    real
}
