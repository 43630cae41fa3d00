//! The load balancer's data plane.
//!
//! `lb_xdp` runs on every frame received on the load balancer's interfaces. It parses
//! Ethernet (+ up to two VLAN tags), IPv4/IPv6 and TCP/UDP/ICMP with bounds checks the
//! verifier can follow, looks the destination up in `lb_services`, and counts every frame once
//! per verdict and once per reason (`lb_common::GlobalStats`). Forwarding to real servers is
//! not programmed yet: a service hit is counted and passed to the stack.
#![no_std]
#![no_main]

mod maps;
mod parse;
mod stats;

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

use crate::{
    parse::{Frame, L4},
    stats::Reason,
};

#[xdp]
pub fn lb_xdp(ctx: XdpContext) -> u32 {
    let len = (ctx.data_end() - ctx.data()) as u64;
    let (action, reason) = classify(&ctx);
    stats::count(action, reason, len);
    action
}

/// Decides what happens to one frame and why.
#[inline(always)]
fn classify(ctx: &XdpContext) -> (u32, Reason) {
    let frame = match parse::parse(ctx) {
        Ok(frame) => frame,
        Err(reason) => return (reason.action(), reason),
    };
    let Frame { mut key, l4 } = frame;
    match l4 {
        L4::Ports { dst_port } => key.port = dst_port,
        L4::Icmp => return (xdp_action::XDP_PASS, Reason::Icmp),
    }
    // SAFETY: the value is copied out before any other map operation in this program.
    match unsafe { maps::SERVICES.get(&key) } {
        Some(svc) => {
            stats::count_service(svc.id, ctx.data_end() - ctx.data());
            (xdp_action::XDP_PASS, Reason::ServiceHit)
        }
        None => (xdp_action::XDP_PASS, Reason::NoService),
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // No panics survive the verifier; this only satisfies no_std.
    loop {}
}
