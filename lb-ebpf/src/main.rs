//! The load balancer's data plane.
//!
//! `lb_xdp` runs on every frame received on the load balancer's interfaces: it parses
//! Ethernet (+ up to two VLAN tags), IPv4/IPv6 and TCP/UDP/ICMP, and for a virtual service
//! (`lb_services`) finds the flow's real server (conntrack, persistence, then the scheduler)
//! and forwards by NAT, DR or TUN; a NAT real server's reply gets the VIP back as source.
//! Everything else passes to the stack untouched. Every frame is counted once per verdict and
//! once per reason (`lb_common::GlobalStats`). `lb_decap` (TC) is for real servers.
#![no_std]
#![no_main]
// Atomic add on the shared connection counters: core has no atomics for the BPF target.
#![feature(core_intrinsics)]
#![allow(internal_features)]

mod bench;
mod csum;
mod decap;
mod flow;
mod fwd;
mod maps;
mod parse;
mod sched;
mod stats;

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use lb_common::{
    NatRev, ServiceKey,
    consts::{FWD_DR, FWD_NAT, FWD_TUN},
};

use crate::{
    maps::{HALFOPEN_REV, NAT_REV, REALS_MAP, SCRATCH, SERVICES},
    parse::{Frame, Parsed},
    stats::{Reason, Verdict},
};

/// Zeroes `n` 8-byte words at `p` (8-byte aligned) with volatile stores, which LLVM neither
/// merges into a `memset` call nor drops.
#[inline(always)]
pub(crate) fn zero_words(p: *mut u64, n: usize) {
    for i in 0..n {
        // SAFETY: callers pass an aligned pointer to at least `n` words they own.
        unsafe { core::ptr::write_volatile(p.add(i), 0) };
    }
}

#[xdp]
pub fn lb_xdp(ctx: XdpContext) -> u32 {
    let ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
    let len = parse::frame_len(&ctx) as u64;
    let v = classify(&ctx, ifindex);
    stats::count(v, len);
    v.action()
}

/// Decides what happens to one frame and why.
#[inline(always)]
fn classify(ctx: &XdpContext, ifindex: u32) -> Verdict {
    let Some(f) = SCRATCH.get_ptr_mut(0) else { return Verdict::new(xdp_action::XDP_PASS, Reason::NotIp) };
    // SAFETY: this CPU's slot; nothing else runs on this CPU while this program does.
    let f = unsafe { &mut *f };
    match parse::parse(ctx, f) {
        Ok(Parsed::Ports) => {}
        Ok(Parsed::Icmp) => return Verdict::new(xdp_action::XDP_PASS, Reason::Icmp),
        Ok(Parsed::IcmpError) => {
            f.ifindex = ifindex;
            return icmp_error(ctx, f);
        }
        Err(reason) => return Verdict::new(reason.action(), reason),
    };
    f.ifindex = ifindex;
    let key = ServiceKey { addr: f.dst, port: f.dport, proto: f.proto, family: f.family };
    // SAFETY: copied out at once; `lb_services` values never change in place.
    if let Some(svc) = unsafe { SERVICES.get(&key) }.map(|v| v.id) {
        return forward(ctx, svc, f);
    }
    let flow = flow::flow_key(f);
    // SAFETY: read at once; an LRU entry could be reused under us only after eviction.
    if let Some(rev) = unsafe { NAT_REV.get(&flow) } {
        return reply(ctx, f, rev);
    }
    // A half-open NAT flow's SYN-ACK.
    // SAFETY: as above.
    if let Some(rev) = unsafe { HALFOPEN_REV.get(&flow) } {
        return reply(ctx, f, rev);
    }
    Verdict::new(xdp_action::XDP_PASS, Reason::NoService)
}

/// A packet for service `svc`: to its flow's real server. The decision (`flow::decide`)
/// and the rewrite (`fwd::*`) are separate calls so their stack frames never nest: the
/// verifier allows 512 bytes for the deepest call chain.
#[inline(always)]
fn forward(ctx: &XdpContext, svc: u32, f: &Frame) -> Verdict {
    let len = parse::frame_len(ctx);
    let d = flow::decide(svc, f);
    let real_id = d.real();
    let Some(real) = REALS_MAP.get(real_id).filter(|_| d.ok()) else {
        stats::count_service(svc, None, len, false, true);
        return Verdict::new(xdp_action::XDP_DROP, Reason::NoReal);
    };
    stats::count_flow(d.is_new());
    stats::count_service(svc, Some(real_id), len, d.is_new(), false);
    match d.fwd() {
        FWD_NAT => {
            if d.is_new() || d.promoted() {
                remember_reply(f, real, d);
            }
            fwd::nat(ctx, f, real)
        }
        FWD_DR => fwd::dr(ctx, f, real),
        FWD_TUN => fwd::tun(ctx, f, real),
        _ => Verdict::new(xdp_action::XDP_DROP, Reason::NoReal),
    }
}

/// An ICMP error about a tracked flow (e.g. "fragmentation needed" from the client's path)
/// goes to that flow's real server; any other ICMP passes.
#[inline(never)]
fn icmp_error(ctx: &XdpContext, f: &Frame) -> Verdict {
    let key = ServiceKey { addr: f.dst, port: f.dport, proto: f.proto, family: f.family };
    // SAFETY: copied out at once.
    let Some(svc) = (unsafe { SERVICES.get(&key) }).map(|v| v.id) else {
        return Verdict::new(xdp_action::XDP_PASS, Reason::Icmp);
    };
    let d = flow::tracked(svc, f);
    let Some(real) = REALS_MAP.get(d.real()).filter(|_| d.ok()) else {
        return Verdict::new(xdp_action::XDP_PASS, Reason::Icmp);
    };
    stats::count_service(svc, Some(d.real()), parse::frame_len(ctx), false, false);
    let v = match d.fwd() {
        FWD_NAT => {
            if !fwd::icmp_nat_rewrite(ctx, f, real) {
                return Verdict::new(xdp_action::XDP_PASS, Reason::Icmp);
            }
            fwd::dr(ctx, f, real)
        }
        FWD_DR => fwd::dr(ctx, f, real),
        FWD_TUN => fwd::tun(ctx, f, real),
        _ => return Verdict::new(xdp_action::XDP_PASS, Reason::Icmp),
    };
    v.with_reason_if_forwarded(Reason::IcmpFwd)
}

/// Records where a new NAT flow's replies go back from: the reply's 5-tuple → VIP (in the
/// half-open table until the handshake completes; the stale copy there ages out).
#[inline(never)]
fn remember_reply(f: &Frame, real: &lb_common::RealDef, d: flow::Decision) {
    let rev_key = lb_common::FlowKey {
        src: real.addr,
        dst: f.src,
        sport: real.port,
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
        last_ns: flow::now(),
    };
    let _ = if d.half_open() { HALFOPEN_REV.insert(&rev_key, &rev, 0) } else { NAT_REV.insert(&rev_key, &rev, 0) };
}

/// A NAT real server's reply: back to the client from the VIP.
#[inline(never)]
fn reply(ctx: &XdpContext, f: &Frame, rev: &NatRev) -> Verdict {
    let len = parse::frame_len(ctx);
    stats::count_service(rev.svc_id, Some(rev.real_id), len, false, false);
    fwd::nat_reply(ctx, f, &rev.vip, rev.vport)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // No panics survive the verifier; this only satisfies no_std.
    loop {}
}
