//! Baselines for `cargo xtask bench`'s per-packet costs: the cheapest possible XDP programs,
//! run through `BPF_PROG_TEST_RUN` beside `lb_xdp`. Never attached by the daemon.

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

#[xdp]
pub fn bench_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

#[xdp]
pub fn bench_drop(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_DROP
}
