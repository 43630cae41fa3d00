//! The next hop of a rewritten packet (the daemon's next-hop cache for real servers, else
//! `bpf_fib_lookup`) and sending it there: a fresh Ethernet header, then XDP_TX (same link)
//! or a redirect.

use aya_ebpf::{
    bindings::bpf_fib_lookup as FibLookup,
    helpers::{bpf_fib_lookup, bpf_redirect, bpf_xdp_adjust_head},
    programs::XdpContext,
};
use lb_common::{
    NeighKey, NextHop, RealDef,
    consts::{FAMILY_V4, IFACE_TX_BY_REDIRECT},
};
use lb_ebpf::{
    hdr::{ETH_HLEN, ETH_P_IP, ETH_P_IPV6, EthHdr},
    hop,
    mem::{copy, zero_words},
    verdict::{XDP_ABORTED, XDP_TX},
};

use crate::{
    maps::{lb_fib, lb_nexthop, lb_nexthop_lease, lb_nexthop_sel, lb_unresolved},
    parse::ptr_at,
    scratch::{Fib, Frame},
    time::now,
};

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const FIB_SUCCESS: i64 = 0;
/// Not forwarded: a local (or broadcast/multicast) destination.
const FIB_NOT_FWDED: i64 = 4;
const FIB_NO_NEIGH: i64 = 7;
const FIB_FRAG_NEEDED: i64 = 8;

pub enum Next {
    /// Resolved: `transmit` sends the frame there (the interface and MACs stay in this CPU's
    /// `lb_fib` entry rather than in registers across the rewrite).
    Hop,
    /// The FIB cannot say yet (no neighbour entry, no route): let the stack handle it.
    Unknown,
    /// The packet would exceed the route's MTU (given).
    TooBig(u16),
}

/// Whether the kernel holds the frame's destination address (its route is local: the FIB
/// says "not forwarded"), as it does a VIP while its VRRP instance is MASTER here.
#[inline(always)]
pub fn destination_is_local(ctx: &XdpContext, f: &Frame) -> bool {
    let Some(scratch) = lb_fib.get_ptr_mut(0) else { return false };
    // SAFETY: this CPU's slot, used only within this program run.
    let p = unsafe { &mut (*scratch).fib };
    // SAFETY: `Fib` is 8-byte aligned, 8 words long.
    unsafe { zero_words(p as *mut Fib as *mut u64, core::mem::size_of::<Fib>() / 8) };
    let v4 = f.family == FAMILY_V4;
    p.family = if v4 { AF_INET } else { AF_INET6 };
    p.ifindex = f.ifindex;
    set_addrs(p, v4, &f.src, &f.dst);
    // SAFETY: `Fib` has `struct bpf_fib_lookup`'s layout and size.
    let ret = unsafe {
        bpf_fib_lookup(ctx.ctx.cast(), (p as *mut Fib).cast::<FibLookup>(), core::mem::size_of::<Fib>() as i32, 0)
    };
    ret == FIB_NOT_FWDED
}

/// The FIB parameters' addresses (zeroed before): IPv4 in the first four bytes.
#[inline(always)]
fn set_addrs(p: &mut Fib, v4: bool, src: &[u8; 16], dst: &[u8; 16]) {
    if v4 {
        if let (Some(ps), Some(pd), Some(s), Some(d)) =
            (p.src.first_chunk_mut::<4>(), p.dst.first_chunk_mut::<4>(), src.first_chunk::<4>(), dst.first_chunk::<4>())
        {
            copy(ps, s);
            copy(pd, d);
        }
    } else {
        copy(&mut p.src, src);
        copy(&mut p.dst, dst);
    }
}

/// Next hop towards real server `real_id` at `real.addr` for the client's packet of `len`
/// bytes (DR, NAT): the daemon's cached one (`lb_nexthop`) when it has one for that address,
/// the packet fits its MTU and the daemon's lease holds (`f.now` set), else the FIB's
/// (`lookup`).
#[inline(always)]
pub fn to_real(ctx: &XdpContext, f: &Frame, real_id: u32, real: &RealDef, len: usize) -> Next {
    if cached(real_id, &real.addr, len, f.now) { Next::Hop } else { lookup(ctx, f, &f.src, &real.addr, len) }
}

/// Copies the cached next hop of `real_id` into this CPU's `lb_fib` entry for `transmit`;
/// false when there is none that carries this packet at time `now`.
#[inline(always)]
fn cached(real_id: u32, addr: &[u8; 16], len: usize, now: u64) -> bool {
    if lb_nexthop_lease.get(0).is_none_or(|until| now >= *until) {
        return false;
    }
    let Some(sel_at) = lb_nexthop_sel.get_ptr(real_id) else { return false };
    // SAFETY (both selector reads): a live array slot; volatile, so the second read happens
    // after the copy.
    let sel = unsafe { core::ptr::read_volatile(sel_at) };
    let Some(slot) = hop::live_slot(real_id, sel) else { return false };
    let Some(h) = lb_nexthop.get(slot) else { return false };
    if !hop::carries(h, addr, len) {
        return false;
    }
    let Some(scratch) = lb_fib.get_ptr_mut(0) else { return false };
    // SAFETY: this CPU's slot, used only within this program run.
    let p = unsafe { &mut (*scratch).fib };
    p.ifindex = h.ifindex;
    // The MAC pair as three aligned words, volatile: field by field it is twelve byte
    // copies, and as one array copy a call to a byte-loop `memcpy`.
    let (from, to) = ((&raw const h.smac).cast::<u32>(), (&raw mut p.smac).cast::<u32>());
    for i in 0..3 {
        // SAFETY: `smac` and `dmac` are adjacent and 4-byte aligned in both (asserted below).
        unsafe { core::ptr::write_volatile(to.add(i), core::ptr::read_volatile(from.add(i))) };
    }
    // A daemon write since the first read (the generation moved): the copy may be torn.
    unsafe { core::ptr::read_volatile(sel_at) == sel }
}

const _: () = assert!(core::mem::offset_of!(NextHop, smac) % 4 == 0);
const _: () = assert!(core::mem::offset_of!(NextHop, dmac) == core::mem::offset_of!(NextHop, smac) + 6);
const _: () = assert!(core::mem::offset_of!(Fib, smac) % 4 == 0);
const _: () = assert!(core::mem::offset_of!(Fib, dmac) == core::mem::offset_of!(Fib, smac) + 6);

/// Next hop towards `dst` for a packet of `len` bytes (0: skip the MTU check), from the FIB.
/// A next hop without a neighbour entry is left in `lb_unresolved` for the daemon to resolve.
#[inline(always)]
pub fn lookup(ctx: &XdpContext, f: &Frame, src: &[u8; 16], dst: &[u8; 16], len: usize) -> Next {
    let Some(scratch) = lb_fib.get_ptr_mut(0) else { return Next::Unknown };
    // SAFETY: this CPU's slot, used only within this program run.
    let scratch = unsafe { &mut *scratch };
    let p = &mut scratch.fib;
    // SAFETY: `Fib` is 8-byte aligned, 8 words long.
    unsafe { zero_words(p as *mut Fib as *mut u64, core::mem::size_of::<Fib>() / 8) };
    let v4 = f.family == FAMILY_V4;
    p.family = if v4 { AF_INET } else { AF_INET6 };
    p.tot_len = len as u16;
    p.ifindex = f.ifindex;
    set_addrs(p, v4, src, dst);
    // SAFETY: `Fib` has `struct bpf_fib_lookup`'s layout and size.
    let ret = unsafe {
        bpf_fib_lookup(ctx.ctx.cast(), (p as *mut Fib).cast::<FibLookup>(), core::mem::size_of::<Fib>() as i32, 0)
    };
    match ret {
        FIB_SUCCESS => Next::Hop,
        FIB_FRAG_NEEDED => Next::TooBig(p.tot_len),
        FIB_NO_NEIGH => {
            // The route is known, its next hop (now in `dst`) is not resolved: ask the daemon.
            // Key and value live in the per-CPU scratch entry, not on the stack (512 bytes for
            // the whole call chain, all used).
            scratch.neigh = NeighKey { addr: p.dst, ifindex: p.ifindex, family: f.family, reserved: [0; 3] };
            scratch.now = now();
            let _ = lb_unresolved.insert(&scratch.neigh, &scratch.now, 0);
            Next::Unknown
        }
        _ => Next::Unknown,
    }
}

/// The path MTU the last `lookup` reported `TooBig` with.
#[inline(always)]
pub fn mtu() -> u16 {
    // SAFETY: this CPU's slot, filled by `lookup` in this program run.
    lb_fib.get_ptr(0).map_or(0, |s| unsafe { (*s).fib.tot_len })
}

/// Header offsets, bounded for the verifier: it cannot know that a value read back from the
/// scratch map is small, and refuses packet pointers moved by an unbounded amount. L3 starts
/// at most two VLAN tags in (22), L4 after IPv4 options or IPv6 extension headers
/// (`parse::L4_MASK`).
#[inline(always)]
pub fn l3_at(f: &Frame) -> usize {
    (f.l3_off & 0x1f) as usize
}

#[inline(always)]
pub fn l4_at(f: &Frame) -> usize {
    (f.l4_off & crate::parse::L4_MASK) as usize
}

/// The EtherType of `family`.
#[inline(always)]
pub fn ethertype(family: u8) -> u16 {
    if family == FAMILY_V4 { ETH_P_IP } else { ETH_P_IPV6 }
}

/// Writes a fresh Ethernet header in front of the L3 header at `l3_off` and sends the frame
/// to the next hop the last `lookup` found.
/// VLAN tags the frame arrived with are dropped: the FIB chose the egress link. Back out of
/// the ingress interface it is XDP_TX, but a redirect on a veth in native mode: veth wakes
/// its peer for a redirected frame, for an XDP_TX'd one only when the peer runs XDP itself.
#[inline(always)]
pub fn transmit(ctx: &XdpContext, f: &Frame, l3_off: usize) -> u32 {
    let Some(scratch) = lb_fib.get_ptr(0) else { return XDP_ABORTED };
    // SAFETY: this CPU's slot, filled by `lookup` in this program run.
    let hop = unsafe { &(*scratch).fib };
    let ifindex = hop.ifindex;
    if l3_off != ETH_HLEN {
        // Strip VLAN tags: move the start to 14 bytes before the L3 header.
        // SAFETY: the helper checks the new start lies within the frame.
        if unsafe { bpf_xdp_adjust_head(ctx.ctx, (l3_off - ETH_HLEN) as i32) } != 0 {
            return XDP_ABORTED;
        }
    }
    let Some(eth) = ptr_at::<EthHdr>(ctx, 0) else { return XDP_ABORTED };
    // SAFETY: bounds checked by `ptr_at`.
    let eth = unsafe { &mut *eth };
    // By `copy`: `EthHdr::set` takes the addresses by value, byte by byte.
    copy(&mut eth.dst, &hop.dmac);
    copy(&mut eth.src, &hop.smac);
    eth.proto = ethertype(f.family).to_be_bytes();
    // SAFETY: a helper taking only scalars.
    if ifindex == f.ifindex { back_out(f) } else { unsafe { bpf_redirect(ifindex, 0) as u32 } }
}

/// The action that sends the frame back out of the interface it arrived on.
#[inline(always)]
pub fn back_out(f: &Frame) -> u32 {
    if f.iface & IFACE_TX_BY_REDIRECT == 0 {
        XDP_TX
    } else {
        // SAFETY: a helper taking only scalars.
        unsafe { bpf_redirect(f.ifindex, 0) as u32 }
    }
}
