//! The clock flows are timed by.

/// Nanoseconds since boot, coarse (jiffy resolution): cheaper than the precise clock, and
/// flow timeouts are seconds.
#[inline(always)]
pub fn now() -> u64 {
    // SAFETY: a helper with no arguments.
    unsafe { aya_ebpf::helpers::bpf_ktime_get_coarse_ns() }
}
