//! `lb-daemon trace`: one record per frame in `lb_trace` while a tracer runs, for the frames
//! its filter in `lb_trace_cfg` matches. With no tracer the cost is the array lookup and the
//! branch in `emit`; everything else is out of line.

use aya_ebpf::{
    helpers::{bpf_get_smp_processor_id, bpf_ktime_get_ns, bpf_xdp_load_bytes},
    programs::XdpContext,
};
use lb_common::{
    TraceCfg,
    consts::{TRACE_BY_CLIENT, TRACE_BY_SERVICE, TRACE_SNAP},
};
use lb_ebpf::{mem::same_addr, verdict::Verdict};

use crate::{
    maps::{lb_scratch, lb_trace, lb_trace_cfg},
    parse::frame_len,
    scratch::Frame,
};

/// Records the frame's decision when a tracer runs and its filter matches.
///
/// The verdict reaches `record` through this CPU's `Frame`, not as arguments: the
/// counters index by the verdict's reason, which makes the verifier track it exactly, and
/// with the verdict live inside `record` the 6.1 verifier walked `record` again for every
/// distinct verdict of every path (149k instructions instead of 86k). Read back from memory
/// it is one unknown value, and `record` is verified about once.
#[inline(always)]
pub fn emit(ctx: &XdpContext, v: Verdict) {
    let Some(cfg) = lb_trace_cfg.get_ptr(0) else { return };
    // SAFETY: a live array slot; the tracer rewrites it whole, and a torn read only mixes
    // an old filter with a new one for a frame or two.
    if unsafe { (*cfg).enabled } == 0 {
        return;
    }
    let Some(f) = lb_scratch.get_ptr_mut(0) else { return };
    // SAFETY: this CPU's slot; nothing else runs on this CPU while this program does.
    unsafe { (*f).trace_verdict = v.bits() };
    record(ctx, cfg);
}

#[inline(always)]
fn matches(cfg: &TraceCfg, f: &Frame, v: Verdict) -> bool {
    if cfg.reasons & (1u64 << (v.reason_index() as u64 & 63)) == 0 {
        return false;
    }
    if cfg.filters & TRACE_BY_SERVICE != 0 && f.trace_svc != cfg.svc_id {
        return false;
    }
    if cfg.filters & TRACE_BY_CLIENT != 0
        && (f.family != cfg.client_family || !(same_addr(&f.src, &cfg.client) || same_addr(&f.dst, &cfg.client)))
    {
        return false;
    }
    true
}

const _: () = assert!(TRACE_SNAP.is_power_of_two());

#[inline(never)]
fn record(ctx: &XdpContext, cfg: *const TraceCfg) {
    let Some(f) = lb_scratch.get_ptr(0) else { return };
    // SAFETY: this CPU's slot as the program left it; the filter as above.
    let (f, cfg) = unsafe { (&*f, &*cfg) };
    let v = Verdict::from_bits(f.trace_verdict);
    if !matches(cfg, f, v) {
        return;
    }
    let Some(mut entry) = lb_trace.reserve(0) else {
        // SAFETY: an aligned u64 of a live array slot; every writer adds atomically.
        unsafe {
            core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(
                (&raw const cfg.lost).cast_mut(),
                1,
            )
        };
        return;
    };
    let rec = entry.as_mut_ptr();
    let len_out = frame_len(ctx) as u32;
    let mut cap = u64::from(if len_out > TRACE_SNAP as u32 { TRACE_SNAP as u32 } else { len_out });
    // SAFETY: a register move. It hides `cap`'s range from LLVM, which would otherwise drop
    // the mask below as a no-op; the verifier needs it to bound the copy's length.
    unsafe { core::arch::asm!("{0} = {0}", inout(reg) cap) };
    // SAFETY: `rec` is the reserved record; each field is written once, field by field (a
    // struct literal would be built on the stack and copied, zeroing `frame` by memset).
    unsafe {
        (*rec).ts_ns = bpf_ktime_get_ns();
        (*rec).src = f.src;
        (*rec).dst = f.dst;
        (*rec).sport = f.sport;
        (*rec).dport = f.dport;
        (*rec).family = f.family;
        (*rec).proto = f.proto;
        (*rec).action = v.action() as u8;
        (*rec).reason = v.reason_index() as u8;
        (*rec).ifindex = f.ifindex;
        (*rec).svc_id = f.trace_svc;
        (*rec).real_id = f.trace_real;
        (*rec).cpu = bpf_get_smp_processor_id();
        (*rec).flow = f.trace_flow;
        (*rec).pad = [0; 3];
        (*rec).len_in = f.len_in;
        (*rec).len_out = len_out;
        (*rec).cap_len = 0;
    }
    if cap > 0 {
        // 1..=TRACE_SNAP in a form the verifier can follow (the identity on that range).
        let n = (((cap - 1) & (TRACE_SNAP as u64 - 1)) + 1) as u32;
        // SAFETY: the helper checks the frame holds `n` bytes; `frame` has room for TRACE_SNAP.
        if unsafe { bpf_xdp_load_bytes(ctx.ctx, 0, (&raw mut (*rec).frame).cast(), n) } == 0 {
            // SAFETY: as above.
            unsafe { (*rec).cap_len = n };
        }
    }
    entry.submit(0);
}
