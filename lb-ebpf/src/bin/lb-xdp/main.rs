//! `lb_xdp`: the load balancer's data plane, run on every frame received on the load
//! balancer's interfaces. It parses Ethernet (+ up to two VLAN tags), IPv4/IPv6 and
//! TCP/UDP/ICMP; a frame for a virtual service (`lb_services`) goes to its flow's real server
//! (conntrack, persistence, then the scheduler) by NAT, DR or TUN, and a NAT real server's
//! reply gets the VIP back as source. Everything else passes to the stack untouched. Every
//! frame is counted once per verdict and once per reason (`lb_common::GlobalStats`), and,
//! while `lb-daemon trace` runs, traced (`trace`).
//!
//! Modules import one way, each only from those before it: `scratch` → `maps` → `time` →
//! `parse` → `stats` → `sched` → `flow` → `nexthop` → `offload` → `punt` → `icmp` → `nat` →
//! `dr` → `tun` → `frags` → `trace` → this entry point; the pure rules come from the `lb_ebpf`
//! library.
#![no_std]
#![no_main]
// Atomic adds on the shared connection counters: core has no atomics for the BPF target.
#![feature(core_intrinsics)]
// Empty `asm!` as an optimisation barrier (`parse::bounded`).
#![feature(asm_experimental_arch)]
#![allow(internal_features)]

mod dr;
mod flow;
mod frags;
mod icmp;
mod maps;
mod nat;
mod nexthop;
mod offload;
mod parse;
mod punt;
mod sched;
mod scratch;
mod stats;
mod time;
mod trace;
mod tun;

use aya_ebpf::{macros::xdp, programs::XdpContext};
use lb_common::{
    LocalMac, NatRev, RealDef, Reason,
    consts::{
        FAMILY_V4, FENCE_BACKUP, FENCE_NO_ACCEPT, FRAG_NAT_REPLY, FRAG_TO_REAL, FWD_DR, FWD_NAT, FWD_TUN, NO_REAL,
        TRACE_FLOW_FOUND, TRACE_FLOW_FRAGMENT, TRACE_FLOW_REPLY,
    },
    is_vrrp_vmac,
};
use lb_ebpf::{
    decision::Decision,
    verdict::{Verdict, XDP_DROP, XDP_PASS, parse_stop_action},
};

use crate::{
    maps::{lb_iface_mac, lb_ifaces, lb_local_macs, lb_reals, lb_scratch, lb_services, lb_services4, lb_svc_fence},
    offload::Checksum,
    parse::Parsed,
    scratch::{Frame, frag},
};

#[xdp]
pub fn lb_xdp(ctx: XdpContext) -> u32 {
    // SAFETY: the context pointer is valid for the program's run.
    let ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
    // Before any rewrite: the frame is counted as it arrived.
    let len = parse::frame_len(&ctx) as u32;
    let v = classify(&ctx, ifindex, len);
    stats::count(v, u64::from(len));
    let mut action = v.action();
    // SAFETY: a register move. The action gets a register of its own, so `v`, which the
    // verifier tracks exactly since the counters index by its reason, is dead past here (see
    // `trace::emit`).
    unsafe { core::arch::asm!("{0} = {0}", inout(reg) action) };
    trace::emit(&ctx, v);
    action
}

/// Decides what happens to one frame and why.
#[inline(always)]
fn classify(ctx: &XdpContext, ifindex: u32, len: u32) -> Verdict {
    let v = dispatch(ctx, ifindex, len);
    if !v.is_oversized() {
        return v;
    }
    let Some(f) = lb_scratch.get_ptr(0) else { return v.flow_onto(Verdict::new(XDP_DROP, Reason::TooBig)) };
    // SAFETY: this CPU's slot, as `dispatch` left it.
    v.flow_onto(icmp::oversized(ctx, unsafe { &*f }, nexthop::mtu()))
}

/// Decides what happens to one frame; a frame too big for its path comes back as
/// `Verdict::oversized` for `classify` to answer.
#[inline(always)]
fn dispatch(ctx: &XdpContext, ifindex: u32, len: u32) -> Verdict {
    let Some(f) = lb_scratch.get_ptr_mut(0) else { return Verdict::new(XDP_PASS, Reason::NotIp) };
    // SAFETY: this CPU's slot; nothing else runs on this CPU while this program does.
    let f = unsafe { &mut *f };
    let parsed = parse::parse(ctx, f);
    f.ifindex = ifindex;
    f.len_in = len;
    f.iface = lb_ifaces.get(ifindex).copied().unwrap_or(0);
    if parsed.is_ok() {
        let bits = not_ours(ctx, ifindex);
        if bits != 0 {
            return Verdict::from_bits(bits);
        }
    }
    let v = match parsed {
        Ok(Parsed::Ports) => ports(ctx, f),
        Ok(Parsed::LaterFragment) => return later_fragment(ctx, f),
        Ok(Parsed::Icmp) => Verdict::new(XDP_PASS, Reason::Icmp),
        Ok(Parsed::IcmpError) => icmp_error(ctx, f),
        Err(reason) => Verdict::new(parse_stop_action(reason), reason),
    };
    // A first fragment the program did not take: its later fragments go to the stack too.
    // (Rewritten ones the FIB could not route yet recorded their decision already.)
    if f.frag == frag::FIRST && v.action() == XDP_PASS && v.reason_index() != Reason::NoRoute as usize {
        frags::record_pass(f);
    }
    v
}

/// Why an IP frame is not ours to load-balance, judged by its destination MAC: broadcast or
/// multicast, or unicast to another host than the ingress interface (whose MAC the daemon
/// wrote in `lb_iface_mac`; an interface it did not write is not checked). The kernel drops
/// another host's frames (PACKET_OTHERHOST) before IPVS could see them; so do we. With
/// `use_vmac` the VIPs' frames come to the VRRP virtual MAC, which the kernel takes (its
/// macvlan's), and so do we where the daemon set `vrrp_vmac`; likewise a macvlan's own MAC
/// (`lb_local_macs`: a VMAC with a MAC of its own).
/// The verdict's bits, or 0 when the frame is ours.
#[inline(always)]
fn not_ours(ctx: &XdpContext, ifindex: u32) -> u32 {
    // `parse` found the Ethernet header within the frame.
    let Some(dst) = parse::ptr_at::<[u8; 6]>(ctx, 0) else { return 0 };
    // SAFETY: bounds checked by `ptr_at`.
    let dst = unsafe { *dst };
    if dst[0] & 1 != 0 {
        return Verdict::new(XDP_PASS, Reason::L2Multicast).bits();
    }
    match lb_iface_mac.get(ifindex) {
        Some(ours)
            if ours.known != 0
                && ours.mac != dst
                && !(ours.vrrp_vmac != 0 && is_vrrp_vmac(&dst))
                && !macvlan_mac(ifindex, dst) =>
        {
            Verdict::new(XDP_PASS, Reason::NotOurMac).bits()
        }
        _ => 0,
    }
}

/// Whether `mac` is a macvlan's on `ifindex` (`lb_local_macs`): only frames to neither the
/// interface's MAC nor a VRRP one pay this lookup.
#[inline(always)]
fn macvlan_mac(ifindex: u32, mac: [u8; 6]) -> bool {
    let key = LocalMac { ifindex, mac, pad: 0 };
    // SAFETY: only tested for presence.
    unsafe { lb_local_macs.get(&key) }.is_some()
}

/// VRRP's word on service `svc` (`lb_svc_fence`): None while this node load-balances it. A
/// service fenced as a backup's whose VIP the kernel holds all the same is load-balanced: the
/// instance became MASTER and added its VIPs a moment before the daemon lifted the fence
/// (IPVS would see its frames from then on; the kernel, without a listener, would refuse them).
#[inline(always)]
fn fenced(ctx: &XdpContext, f: &Frame, svc: u32) -> Option<Verdict> {
    // The common case, no fence, without a call.
    let word = lb_svc_fence.get(svc).copied().unwrap_or(0);
    if word == 0 {
        return None;
    }
    let bits = fence(ctx, f, word);
    (bits != 0).then(|| Verdict::from_bits(bits))
}

/// `fenced`'s verdict bits (0: not fenced) for fence word `word`, in a call of its own:
/// inlined, its FIB lookup made `icmp_error`'s frame too big for 6.1's 512-byte limit on the
/// deepest call chain.
#[inline(never)]
fn fence(ctx: &XdpContext, f: &Frame, word: u32) -> u32 {
    match word {
        FENCE_BACKUP if nexthop::destination_is_local(ctx, f) => 0,
        FENCE_BACKUP => Verdict::new(XDP_PASS, Reason::VrrpBackup).bits(),
        FENCE_NO_ACCEPT => Verdict::new(XDP_DROP, Reason::VrrpNoAccept).bits(),
        _ => 0,
    }
}

/// The id of the service `f` is addressed to: IPv4 by `lb_services4`'s narrow key.
#[inline(always)]
fn service_of(f: &Frame) -> Option<u32> {
    // SAFETY (both): copied out at once; `lb_services` values never change in place.
    if f.family == FAMILY_V4 {
        unsafe { lb_services4.get(&f.service_key4()) }.map(|v| v.id)
    } else {
        unsafe { lb_services.get(&f.service_key()) }.map(|v| v.id)
    }
}

/// A TCP/UDP frame: for a service, or a NAT real server's reply, or neither.
#[inline(always)]
fn ports(ctx: &XdpContext, f: &mut Frame) -> Verdict {
    if let Some(svc) = service_of(f) {
        if let Some(v) = fenced(ctx, f, svc) {
            f.trace_svc = svc;
            return v;
        }
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
fn forward(ctx: &XdpContext, svc: u32, f: &mut Frame) -> Verdict {
    let len = f.len_in as usize;
    f.trace_svc = svc;
    time::tick(f);
    if !parse::ipv4_header_ok(ctx, f) {
        return Verdict::new(XDP_DROP, Reason::BadIpv4Csum);
    }
    let d = flow::decide(svc, f);
    let real_id = d.real();
    (f.trace_real, f.trace_flow) = (real_id, d.trace_flow());
    let Some(real) = lb_reals.get(real_id).filter(|_| d.ok()) else {
        stats::count_drop(svc, len);
        return Verdict::new(XDP_DROP, Reason::NoReal);
    };
    stats::count_real(real_id, len, d.is_new());
    to_real(ctx, svc, f, d, real).with_flow(d.is_new())
}

/// The rest of `forward`, once the flow has its real server.
#[inline(always)]
fn to_real(ctx: &XdpContext, svc: u32, f: &mut Frame, d: Decision, real: &RealDef) -> Verdict {
    let real_id = d.real();
    if f.frag == frag::FIRST {
        frags::record_to_real(f, svc, real_id, d.fwd());
    }
    if let Checksum::Ambiguous = offload::complete_partial(ctx, f) {
        return Verdict::new(XDP_DROP, Reason::CsumAmbiguous);
    }
    match d.fwd() {
        FWD_NAT => {
            if d.is_new() || d.is_promoted() {
                flow::remember_nat_reply(f, real, d);
            }
            nat::nat(ctx, f, real_id, real)
        }
        FWD_DR => dr::dr(ctx, f, real_id, real),
        FWD_TUN => tun::tun(ctx, f, real),
        _ => Verdict::new(XDP_DROP, Reason::NoReal),
    }
}

/// A NAT reply from real server `real` of service `svc`: counted to it while it is live; once
/// its id is freed (its flows outlive it), to its service directly, as the daemon has carried
/// the id's counts already.
#[inline(always)]
fn count_reply(svc: u32, real: u32, len: usize) {
    if flow::real_live(real, svc) {
        stats::count_real(real, len, false);
    } else {
        stats::count_direct(svc, len, 0);
    }
}

/// A later fragment: where its datagram's first fragment went.
#[inline(always)]
fn later_fragment(ctx: &XdpContext, f: &mut Frame) -> Verdict {
    let Some(e) = frags::find(f) else { return frags::hold(ctx, f) };
    time::tick(f);
    let len = f.len_in as usize;
    if e.action == FRAG_TO_REAL || e.action == FRAG_NAT_REPLY {
        (f.trace_svc, f.trace_real) = (e.svc_id, e.real_id);
        f.trace_flow = TRACE_FLOW_FRAGMENT | if e.action == FRAG_NAT_REPLY { TRACE_FLOW_REPLY } else { 0 };
    }
    match e.action {
        FRAG_TO_REAL => {
            let Some(real) = lb_reals.get(e.real_id).filter(|_| flow::real_live(e.real_id, e.svc_id)) else {
                stats::count_drop(e.svc_id, len);
                return Verdict::new(XDP_DROP, Reason::NoReal);
            };
            stats::count_real(e.real_id, len, false);
            match e.fwd {
                FWD_NAT => nat::nat(ctx, f, e.real_id, real),
                FWD_DR => dr::dr(ctx, f, e.real_id, real),
                FWD_TUN => tun::tun(ctx, f, real),
                _ => Verdict::new(XDP_DROP, Reason::NoReal),
            }
        }
        FRAG_NAT_REPLY => {
            count_reply(e.svc_id, e.real_id, len);
            nat::nat_reply(ctx, f, &e.vip, e.vport)
        }
        _ => Verdict::new(XDP_PASS, Reason::Fragment),
    }
}

/// An ICMP error about a flow: from the client's path (e.g. "fragmentation needed") it goes
/// to the flow's real server; from the real servers' side about a NAT flow it goes back to
/// the client from the VIP; any other ICMP passes.
#[inline(never)]
fn icmp_error(ctx: &XdpContext, f: &mut Frame) -> Verdict {
    let Some(svc) = service_of(f) else {
        return match flow::nat_reply_of(f) {
            Some(rev) if parse::ipv4_header_ok(ctx, f) => {
                (f.trace_svc, f.trace_real) = (rev.svc_id, rev.real_id);
                f.trace_flow = TRACE_FLOW_REPLY | TRACE_FLOW_FOUND;
                count_reply(rev.svc_id, rev.real_id, f.len_in as usize);
                if !icmp::nat_reply_rewrite(ctx, f, rev) {
                    return Verdict::new(XDP_PASS, Reason::Icmp);
                }
                icmp::send_reply(ctx, f, &rev.vip)
            }
            _ => Verdict::new(XDP_PASS, Reason::Icmp),
        };
    };
    if let Some(v) = fenced(ctx, f, svc) {
        return v;
    }
    let d = flow::tracked(svc, f);
    (f.trace_svc, f.trace_real, f.trace_flow) = (svc, d.real(), d.trace_flow());
    let Some(real) = lb_reals.get(d.real()).filter(|_| d.ok()) else {
        return Verdict::new(XDP_PASS, Reason::Icmp);
    };
    if !parse::ipv4_header_ok(ctx, f) {
        return Verdict::new(XDP_DROP, Reason::BadIpv4Csum);
    }
    stats::count_real(d.real(), f.len_in as usize, false);
    // Rare: the FIB finds their next hop (`NO_REAL` has no cache entry), which keeps this
    // function's frame within the 512 bytes 6.1 allows the deepest chain of calls.
    let v = match d.fwd() {
        FWD_NAT => {
            if !icmp::nat_rewrite(ctx, f, real) {
                return Verdict::new(XDP_PASS, Reason::Icmp);
            }
            dr::dr(ctx, f, NO_REAL, real)
        }
        FWD_DR => dr::dr(ctx, f, NO_REAL, real),
        FWD_TUN => tun::tun(ctx, f, real),
        _ => return Verdict::new(XDP_PASS, Reason::Icmp),
    };
    v.with_reason_if_forwarded(Reason::IcmpFwd)
}

/// A NAT real server's reply: back to the client from the VIP. Inlined: `nat_reply`'s frame
/// is the largest, and the verifier allows 512 bytes for the deepest chain of calls.
#[inline(always)]
fn reply(ctx: &XdpContext, f: &mut Frame, rev: &NatRev) -> Verdict {
    (f.trace_svc, f.trace_real) = (rev.svc_id, rev.real_id);
    f.trace_flow = TRACE_FLOW_REPLY | TRACE_FLOW_FOUND;
    if !parse::ipv4_header_ok(ctx, f) {
        return Verdict::new(XDP_DROP, Reason::BadIpv4Csum);
    }
    let len = f.len_in as usize;
    count_reply(rev.svc_id, rev.real_id, len);
    if f.frag == frag::FIRST {
        frags::record_nat_reply(f, rev);
    }
    if let Checksum::Ambiguous = offload::complete_partial(ctx, f) {
        return Verdict::new(XDP_DROP, Reason::CsumAmbiguous);
    }
    nat::nat_reply(ctx, f, &rev.vip, rev.vport)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // No panics survive the verifier; this only satisfies no_std.
    loop {}
}
