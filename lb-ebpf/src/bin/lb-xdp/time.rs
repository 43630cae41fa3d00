//! The clock flows are timed by.

use crate::scratch::Frame;

/// Nanoseconds since boot, coarse (jiffy resolution): cheaper than the precise clock, and
/// flow timeouts are seconds.
#[inline(always)]
pub fn now() -> u64 {
    // SAFETY: a helper with no arguments.
    unsafe { aya_ebpf::helpers::bpf_ktime_get_coarse_ns() }
}

/// Sets `f.now` to the coarse clock, read at most once per jiffy on each CPU: the coarse
/// clock only moves when jiffies do, and the verifier turns `bpf_jiffies64` into one load, so
/// a frame in the same jiffy as this CPU's last read (all but one a jiffy under load) takes
/// the clock from `f` (per-CPU, kept between runs) without a helper call. The value is the
/// same coarse clock, up to about two ticks behind it (a tick moves jiffies before the clock,
/// so a read in between keeps the older value for the whole jiffy).
#[inline(always)]
pub fn tick(f: &mut Frame) {
    // SAFETY: a helper with no arguments (inlined by the verifier on 64-bit JITs).
    let jiffy = unsafe { aya_ebpf::helpers::bpf_jiffies64() };
    if jiffy != f.now_jiffy {
        f.now = now();
        f.now_jiffy = jiffy;
    }
}
