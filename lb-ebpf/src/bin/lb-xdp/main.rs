//! `lb_xdp`: the load balancer's data plane, run on every frame received on the load
//! balancer's interfaces. It parses Ethernet (+ up to two VLAN tags), IPv4/IPv6 and
//! TCP/UDP/ICMP; a frame for a virtual service (`lb_services`) goes to its flow's real server
//! (conntrack, persistence, then the scheduler) by NAT, DR or TUN, and a NAT real server's
//! reply gets the VIP back as source. Everything else passes to the stack untouched. Every
//! frame is counted once per verdict and once per reason (`lb_common::GlobalStats`).
//!
//! Modules import one way, each only from those above it:
//! `scratch` → `maps` → `time` → `parse` → `stats` → `sched` → `flow` → `nexthop` → `nat`,
//! `dr` → `icmp` → `tun` → this entry point; the pure rules come from the `lb_ebpf` library.
#![no_std]
#![no_main]
// Atomic adds on the shared connection counters: core has no atomics for the BPF target.
#![feature(core_intrinsics)]
#![allow(internal_features)]

mod dr;
mod flow;
mod icmp;
mod maps;
mod nat;
mod nexthop;
mod parse;
mod sched;
mod scratch;
mod stats;
mod time;
mod tun;

use aya_ebpf::{macros::xdp, programs::XdpContext};
use lb_common::{
    NatRev, Reason,
    consts::{FWD_DR, FWD_NAT, FWD_TUN},
};
use lb_ebpf::verdict::{Verdict, XDP_DROP, XDP_PASS, parse_stop_action};

use crate::{
    maps::{lb_reals, lb_scratch, lb_services},
    parse::Parsed,
    scratch::Frame,
};

#[xdp]
pub fn lb_xdp(ctx: XdpContext) -> u32 {
    // SAFETY: the context pointer is valid for the program's run.
    let ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
    let len = parse::frame_len(&ctx) as u64;
    let v = classify(&ctx, ifindex);
    stats::count(v, len);
    v.action()
}

/// Decides what happens to one frame and why.
#[inline(always)]
fn classify(ctx: &XdpContext, ifindex: u32) -> Verdict {
    let Some(f) = lb_scratch.get_ptr_mut(0) else { return Verdict::new(XDP_PASS, Reason::NotIp) };
    // SAFETY: this CPU's slot; nothing else runs on this CPU while this program does.
    let f = unsafe { &mut *f };
    match parse::parse(ctx, f) {
        Ok(Parsed::Ports) => {}
        Ok(Parsed::Icmp) => return Verdict::new(XDP_PASS, Reason::Icmp),
        Ok(Parsed::IcmpError) => {
            f.ifindex = ifindex;
            return icmp_error(ctx, f);
        }
        Err(reason) => return Verdict::new(parse_stop_action(reason), reason),
    };
    f.ifindex = ifindex;
    // SAFETY: copied out at once; `lb_services` values never change in place.
    if let Some(svc) = unsafe { lb_services.get(&f.service_key()) }.map(|v| v.id) {
        return forward(ctx, svc, f);
    }
    if let Some(rev) = flow::nat_reply_of(f) {
        return reply(ctx, f, rev);
    }
    Verdict::new(XDP_PASS, Reason::NoService)
}

/// A packet for service `svc`: to its flow's real server. The decision (`flow::decide`)
/// and the rewrite (`nat`, `dr`, `tun`) are separate calls so their stack frames never nest:
/// the verifier allows 512 bytes for the deepest call chain.
#[inline(always)]
fn forward(ctx: &XdpContext, svc: u32, f: &Frame) -> Verdict {
    let len = parse::frame_len(ctx);
    let d = flow::decide(svc, f);
    let real_id = d.real();
    let Some(real) = lb_reals.get(real_id).filter(|_| d.ok()) else {
        stats::count_service(svc, None, len, false, true);
        return Verdict::new(XDP_DROP, Reason::NoReal);
    };
    stats::count_flow(d.is_new());
    stats::count_service(svc, Some(real_id), len, d.is_new(), false);
    match d.fwd() {
        FWD_NAT => {
            if d.is_new() || d.is_promoted() {
                flow::remember_nat_reply(f, real, d);
            }
            nat::nat(ctx, f, real)
        }
        FWD_DR => dr::dr(ctx, f, real),
        FWD_TUN => tun::tun(ctx, f, real),
        _ => Verdict::new(XDP_DROP, Reason::NoReal),
    }
}

/// An ICMP error about a tracked flow (e.g. "fragmentation needed" from the client's path)
/// goes to that flow's real server; any other ICMP passes.
#[inline(never)]
fn icmp_error(ctx: &XdpContext, f: &Frame) -> Verdict {
    // SAFETY: copied out at once.
    let Some(svc) = (unsafe { lb_services.get(&f.service_key()) }).map(|v| v.id) else {
        return Verdict::new(XDP_PASS, Reason::Icmp);
    };
    let d = flow::tracked(svc, f);
    let Some(real) = lb_reals.get(d.real()).filter(|_| d.ok()) else {
        return Verdict::new(XDP_PASS, Reason::Icmp);
    };
    stats::count_service(svc, Some(d.real()), parse::frame_len(ctx), false, false);
    let v = match d.fwd() {
        FWD_NAT => {
            if !icmp::nat_rewrite(ctx, f, real) {
                return Verdict::new(XDP_PASS, Reason::Icmp);
            }
            dr::dr(ctx, f, real)
        }
        FWD_DR => dr::dr(ctx, f, real),
        FWD_TUN => tun::tun(ctx, f, real),
        _ => return Verdict::new(XDP_PASS, Reason::Icmp),
    };
    v.with_reason_if_forwarded(Reason::IcmpFwd)
}

/// A NAT real server's reply: back to the client from the VIP.
#[inline(never)]
fn reply(ctx: &XdpContext, f: &Frame, rev: &NatRev) -> Verdict {
    let len = parse::frame_len(ctx);
    stats::count_service(rev.svc_id, Some(rev.real_id), len, false, false);
    nat::nat_reply(ctx, f, &rev.vip, rev.vport)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // No panics survive the verifier; this only satisfies no_std.
    loop {}
}
