//! Sending a packet on: NAT rewrite (and its reverse), DR MAC rewrite, TUN encapsulation,
//! then a FIB lookup for the next hop and a redirect (or XDP_TX on the same link).

use aya_ebpf::{
    bindings::{bpf_fib_lookup as FibLookup, xdp_action},
    helpers::{bpf_fib_lookup, bpf_redirect, bpf_xdp_adjust_head, bpf_xdp_adjust_tail},
    programs::XdpContext,
};
use lb_common::{
    NeighKey, RealDef,
    consts::{FAMILY_V4, IPPROTO_IPIP, IPPROTO_IPV6, IPPROTO_TCP, IPPROTO_UDP},
};

use crate::{
    csum,
    maps::FIB,
    parse::{ETH_HLEN, ETH_P_IP, ETH_P_IPV6, Frame, IPV4_HLEN, IPV6_HLEN, ptr_at},
    stats::{Reason, Verdict},
};

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const FIB_SUCCESS: i64 = 0;
const FIB_FRAG_NEEDED: i64 = 8;
const FIB_NO_NEIGH: i64 = 7;

/// `struct bpf_fib_lookup` without its unions: 64 bytes, as the helper expects. Kept in the
/// per-CPU `lb_fib` map rather than on the stack (512 bytes for the whole call chain).
#[repr(C, align(8))]
pub struct Fib {
    family: u8,
    l4_protocol: u8,
    sport: u16,
    dport: u16,
    /// In: packet length for the MTU check (0 = no check). Out: the MTU when too big.
    tot_len: u16,
    ifindex: u32,
    flowinfo: u32,
    src: [u8; 16],
    dst: [u8; 16],
    vlan_proto: u16,
    vlan_tci: u16,
    smac: [u8; 6],
    dmac: [u8; 6],
}

const _: () = assert!(core::mem::size_of::<Fib>() == 64);

/// This CPU's `lb_fib` entry: the helper's parameter block, and room for a `lb_unresolved`
/// key and value.
#[repr(C)]
pub struct FibScratch {
    fib: Fib,
    neigh: NeighKey,
    now: u64,
}

pub enum Next {
    /// Out of this interface (`ifindex`) with these MACs.
    Hop { ifindex: u32, smac: [u8; 6], dmac: [u8; 6] },
    /// The FIB cannot say yet (no neighbour entry, no route): let the stack handle it.
    Unknown,
    /// The packet would exceed the route's MTU (given).
    TooBig(u16),
}

/// Next hop towards `dst` for a packet of `len` bytes (0: skip the MTU check).
#[inline(always)]
fn fib(ctx: &XdpContext, f: &Frame, src: &[u8; 16], dst: &[u8; 16], len: usize) -> Next {
    let Some(scratch) = FIB.get_ptr_mut(0) else { return Next::Unknown };
    // SAFETY: this CPU's slot, used only within this program run.
    let scratch = unsafe { &mut *scratch };
    let p = &mut scratch.fib;
    // Eight 8-byte stores, not a byte-loop `memset` call (see `Frame::clear_addrs`).
    crate::zero_words(p as *mut Fib as *mut u64, core::mem::size_of::<Fib>() / 8);
    let v4 = f.family == FAMILY_V4;
    p.family = if v4 { AF_INET } else { AF_INET6 };
    p.tot_len = len as u16;
    p.ifindex = f.ifindex;
    if v4 {
        p.src[..4].copy_from_slice(&src[..4]);
        p.dst[..4].copy_from_slice(&dst[..4]);
    } else {
        p.src = *src;
        p.dst = *dst;
    }
    let ret = unsafe {
        bpf_fib_lookup(ctx.ctx.cast(), (p as *mut Fib).cast::<FibLookup>(), core::mem::size_of::<Fib>() as i32, 0)
    };
    match ret {
        FIB_SUCCESS => Next::Hop { ifindex: p.ifindex, smac: p.smac, dmac: p.dmac },
        FIB_FRAG_NEEDED => Next::TooBig(p.tot_len),
        FIB_NO_NEIGH => {
            // The route is known, its next hop (now in `dst`) is not resolved: ask the daemon.
            // Key and value live in the per-CPU scratch entry, not on the stack (512 bytes for
            // the whole call chain, all used).
            scratch.neigh = NeighKey { addr: p.dst, ifindex: p.ifindex, family: f.family, reserved: [0; 3] };
            scratch.now = unsafe { aya_ebpf::helpers::bpf_ktime_get_coarse_ns() };
            let _ = crate::maps::UNRESOLVED.insert(&scratch.neigh, &scratch.now, 0);
            Next::Unknown
        }
        _ => Next::Unknown,
    }
}

/// Header offsets, bounded for the verifier: it cannot know that a value read back from the
/// scratch map is small, and refuses packet pointers moved by an unbounded amount. L3 starts
/// at most two VLAN tags in (22), L4 right after a 40-byte IPv6 header (62).
#[inline(always)]
fn l3_at(f: &Frame) -> usize {
    (f.l3_off & 0x1f) as usize
}

#[inline(always)]
fn l4_at(f: &Frame) -> usize {
    (f.l4_off & 0x7f) as usize
}

/// Writes a fresh Ethernet header in front of the L3 header at `l3_off` and sends the frame.
/// VLAN tags the frame arrived with are dropped: the FIB chose the egress link.
#[inline(always)]
fn transmit(ctx: &XdpContext, f: &Frame, l3_off: usize, ifindex: u32, smac: [u8; 6], dmac: [u8; 6]) -> u32 {
    let ethertype = ethertype(f.family);
    if l3_off != ETH_HLEN {
        // Strip VLAN tags: move the start to 14 bytes before the L3 header.
        if unsafe { bpf_xdp_adjust_head(ctx.ctx, (l3_off - ETH_HLEN) as i32) } != 0 {
            return xdp_action::XDP_ABORTED;
        }
    }
    let Some(eth) = ptr_at::<[u8; ETH_HLEN]>(ctx, 0) else { return xdp_action::XDP_ABORTED };
    let eth = unsafe { &mut *eth };
    eth[0..6].copy_from_slice(&dmac);
    eth[6..12].copy_from_slice(&smac);
    eth[12..14].copy_from_slice(&ethertype.to_be_bytes());
    if ifindex == f.ifindex { xdp_action::XDP_TX } else { unsafe { bpf_redirect(ifindex, 0) as u32 } }
}

#[inline(always)]
fn ethertype(family: u8) -> u16 {
    if family == FAMILY_V4 { ETH_P_IP } else { ETH_P_IPV6 }
}

/// Byte offset of the L4 checksum field, if the protocol has one we maintain.
#[inline(always)]
fn l4_csum_at(proto: u8) -> Option<usize> {
    match proto {
        IPPROTO_TCP => Some(16),
        IPPROTO_UDP => Some(6),
        _ => None,
    }
}

/// Replaces the destination (or source) address and port and fixes the IP and L4
/// checksums incrementally.
#[inline(always)]
fn rewrite(ctx: &XdpContext, f: &Frame, dst_side: bool, addr: &[u8; 16], port: u16) -> Option<()> {
    let (port_at, addr4_at, addr6_at) = if dst_side { (2, 16, 24) } else { (0, 12, 8) };
    let l4c = l4_csum_at(f.proto)?;
    let ports = unsafe { &mut *ptr_at::<[u8; 4]>(ctx, l4_at(f))? };
    let old_port: [u8; 2] = [ports[port_at], ports[port_at + 1]];
    let new_port = port.to_be_bytes();
    let sum = unsafe { &mut *ptr_at::<[u8; 2]>(ctx, l4_at(f) + l4c)? };
    let mut l4sum = u16::from_be_bytes(*sum);
    // UDP over IPv4 may carry no checksum (0): leave it so.
    let udp_no_csum = f.proto == IPPROTO_UDP && f.family == FAMILY_V4 && l4sum == 0;
    if f.family == FAMILY_V4 {
        let ip = unsafe { &mut *ptr_at::<[u8; IPV4_HLEN]>(ctx, l3_at(f))? };
        let old: [u8; 4] = [ip[addr4_at], ip[addr4_at + 1], ip[addr4_at + 2], ip[addr4_at + 3]];
        let new: [u8; 4] = [addr[0], addr[1], addr[2], addr[3]];
        ip[addr4_at..addr4_at + 4].copy_from_slice(&new);
        let c = csum::replace(u16::from_be_bytes([ip[10], ip[11]]), &old, &new);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        l4sum = csum::replace(l4sum, &old, &new);
    } else {
        let ip = unsafe { &mut *ptr_at::<[u8; IPV6_HLEN]>(ctx, l3_at(f))? };
        let mut old = [0u8; 16];
        old.copy_from_slice(&ip[addr6_at..addr6_at + 16]);
        ip[addr6_at..addr6_at + 16].copy_from_slice(addr);
        l4sum = csum::replace16(l4sum, &old, addr);
    }
    l4sum = csum::replace(l4sum, &old_port, &new_port);
    // A computed UDP checksum of 0 is sent as 0xffff (RFC 768).
    if f.proto == IPPROTO_UDP && l4sum == 0 {
        l4sum = 0xffff;
    }
    ports[port_at..port_at + 2].copy_from_slice(&new_port);
    if !udp_no_csum {
        *sum = l4sum.to_be_bytes();
    }
    Some(())
}

/// NAT towards the real server: destination address and port rewritten.
#[inline(never)]
pub fn nat(ctx: &XdpContext, f: &Frame, real: &RealDef) -> Verdict {
    if rewrite(ctx, f, true, &real.addr, real.port).is_none() {
        return Verdict::new(xdp_action::XDP_ABORTED, Reason::BadL4);
    }
    match fib(ctx, f, &f.src, &real.addr, 0) {
        Next::Hop { ifindex, smac, dmac } => {
            Verdict::new(transmit(ctx, f, l3_at(f), ifindex, smac, dmac), Reason::FwdNat)
        }
        // The stack routes the rewritten packet itself.
        _ => Verdict::new(xdp_action::XDP_PASS, Reason::NoRoute),
    }
}

/// A NAT reply on its way back: source set to the VIP and virtual port.
#[inline(never)]
pub fn nat_reply(ctx: &XdpContext, f: &Frame, vip: &[u8; 16], vport: u16) -> Verdict {
    if rewrite(ctx, f, false, vip, vport).is_none() {
        return Verdict::new(xdp_action::XDP_ABORTED, Reason::BadL4);
    }
    match fib(ctx, f, vip, &f.dst, 0) {
        Next::Hop { ifindex, smac, dmac } => {
            Verdict::new(transmit(ctx, f, l3_at(f), ifindex, smac, dmac), Reason::NatReply)
        }
        _ => Verdict::new(xdp_action::XDP_PASS, Reason::NoRoute),
    }
}

/// DR: the frame goes unchanged to the real server's MAC.
#[inline(never)]
pub fn dr(ctx: &XdpContext, f: &Frame, real: &RealDef) -> Verdict {
    match fib(ctx, f, &f.src, &real.addr, 0) {
        Next::Hop { ifindex, smac, dmac } => {
            Verdict::new(transmit(ctx, f, l3_at(f), ifindex, smac, dmac), Reason::FwdDr)
        }
        _ => Verdict::new(xdp_action::XDP_PASS, Reason::NoRoute),
    }
}

/// TUN: IPIP (IPv4) or IPv6-in-IPv6 towards the real server, outer source `real.tun_src`.
#[inline(never)]
pub fn tun(ctx: &XdpContext, f: &Frame, real: &RealDef) -> Verdict {
    let v4 = f.family == FAMILY_V4;
    let outer = if v4 { IPV4_HLEN } else { IPV6_HLEN };
    let total = f.ip_len as usize + outer;
    let (ifindex, smac, dmac) = match fib(ctx, f, &real.tun_src, &real.addr, total) {
        Next::Hop { ifindex, smac, dmac } => (ifindex, smac, dmac),
        Next::TooBig(mtu) => return too_big(ctx, f, mtu.saturating_sub(outer as u16)),
        Next::Unknown => return Verdict::new(xdp_action::XDP_PASS, Reason::NoRoute),
    };
    // Room for the outer header; VLAN tags (l3_off > 14) give some of it back.
    let delta = l3_at(f) as i32 - ETH_HLEN as i32 - outer as i32;
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, delta) } != 0 {
        return Verdict::new(xdp_action::XDP_ABORTED, Reason::TooBig);
    }
    if v4 {
        let Some(ip) = ptr_at::<[u8; IPV4_HLEN]>(ctx, ETH_HLEN) else {
            return Verdict::new(xdp_action::XDP_ABORTED, Reason::TooBig);
        };
        let ip = unsafe { &mut *ip };
        *ip = [0; IPV4_HLEN];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        ip[6] = 0x40; // DF: the inner packet already fits the path or is refused above.
        ip[8] = 64;
        ip[9] = IPPROTO_IPIP;
        ip[12..16].copy_from_slice(&real.tun_src[..4]);
        ip[16..20].copy_from_slice(&real.addr[..4]);
        let c = csum::ipv4_header(ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
    } else {
        let Some(ip) = ptr_at::<[u8; IPV6_HLEN]>(ctx, ETH_HLEN) else {
            return Verdict::new(xdp_action::XDP_ABORTED, Reason::TooBig);
        };
        let ip = unsafe { &mut *ip };
        *ip = [0; IPV6_HLEN];
        ip[0] = 0x60;
        ip[4..6].copy_from_slice(&(f.ip_len as usize as u16).to_be_bytes());
        ip[6] = IPPROTO_IPV6;
        ip[7] = 64;
        ip[8..24].copy_from_slice(&real.tun_src);
        ip[24..40].copy_from_slice(&real.addr);
    }
    Verdict::new(transmit(ctx, f, ETH_HLEN, ifindex, smac, dmac), Reason::FwdTun)
}

/// NAT for an ICMP error about a tracked flow: the outer destination becomes the real server,
/// and so do the quoted packet's source address and port (what the real server sent), with
/// the outer IP, quoted IP and ICMP checksums updated (then `dr` sends it to the real server).
/// The quoted L4 checksum is left: the quote is usually cut short and nobody verifies it.
#[inline(always)]
pub fn icmp_nat_rewrite(ctx: &XdpContext, f: &Frame, real: &RealDef) -> bool {
    if f.family == FAMILY_V4 { icmp_nat4(ctx, f, real).is_some() } else { icmp_nat6(ctx, f, real).is_some() }
}

#[inline(never)]
fn icmp_nat4(ctx: &XdpContext, f: &Frame, real: &RealDef) -> Option<()> {
    let inner = (f.inner_off & 0x7f) as usize;
    let new: [u8; 4] = [real.addr[0], real.addr[1], real.addr[2], real.addr[3]];
    let new_port = real.port.to_be_bytes();
    let outer = unsafe { &mut *ptr_at::<[u8; IPV4_HLEN]>(ctx, l3_at(f))? };
    let c =
        csum::replace(u16::from_be_bytes([outer[10], outer[11]]), &[outer[16], outer[17], outer[18], outer[19]], &new);
    outer[16..20].copy_from_slice(&new);
    outer[10..12].copy_from_slice(&c.to_be_bytes());
    let q = unsafe { &mut *ptr_at::<[u8; IPV4_HLEN]>(ctx, inner)? };
    let old_src = [q[12], q[13], q[14], q[15]];
    let old_qsum = [q[10], q[11]];
    let qsum = csum::replace(u16::from_be_bytes(old_qsum), &old_src, &new).to_be_bytes();
    q[12..16].copy_from_slice(&new);
    q[10..12].copy_from_slice(&qsum);
    let ports = unsafe { &mut *ptr_at::<[u8; 2]>(ctx, inner + IPV4_HLEN)? };
    let old_port = *ports;
    *ports = new_port;
    let sum = unsafe { &mut *ptr_at::<[u8; 4]>(ctx, l4_at(f))? };
    let mut icsum = u16::from_be_bytes([sum[2], sum[3]]);
    icsum = csum::replace(icsum, &old_src, &new);
    icsum = csum::replace(icsum, &old_qsum, &qsum);
    icsum = csum::replace(icsum, &old_port, &new_port);
    sum[2..4].copy_from_slice(&icsum.to_be_bytes());
    Some(())
}

#[inline(never)]
fn icmp_nat6(ctx: &XdpContext, f: &Frame, real: &RealDef) -> Option<()> {
    let inner = (f.inner_off & 0x7f) as usize;
    let new_port = real.port.to_be_bytes();
    let sum = unsafe { &mut *ptr_at::<[u8; 4]>(ctx, l4_at(f))? };
    let mut icsum = u16::from_be_bytes([sum[2], sum[3]]);
    // ICMPv6's checksum covers the pseudo-header: the outer destination too. Each sum is
    // taken from the packet before the bytes are overwritten (no 16-byte copies on the stack).
    let dst = unsafe { &mut *ptr_at::<[u8; 16]>(ctx, l3_at(f) + 24)? };
    icsum = csum::replace16(icsum, dst, &real.addr);
    *dst = real.addr;
    let src = unsafe { &mut *ptr_at::<[u8; 16]>(ctx, inner + 8)? };
    icsum = csum::replace16(icsum, src, &real.addr);
    *src = real.addr;
    let ports = unsafe { &mut *ptr_at::<[u8; 2]>(ctx, inner + IPV6_HLEN)? };
    icsum = csum::replace(icsum, ports, &new_port);
    *ports = new_port;
    let sum = unsafe { &mut *ptr_at::<[u8; 4]>(ctx, l4_at(f))? };
    sum[2..4].copy_from_slice(&icsum.to_be_bytes());
    Some(())
}

/// Answers a packet the tunnel cannot carry with ICMP "fragmentation needed" (IPv4, only when
/// DF is set: the sender then lowers its path MTU) or ICMPv6 "packet too big", advertising
/// `mtu` (the link's, less the tunnel header), from the VIP back to the sender's hop.
#[inline(never)]
fn too_big(ctx: &XdpContext, f: &Frame, mtu: u16) -> Verdict {
    let dropped = Verdict::new(xdp_action::XDP_DROP, Reason::TooBig);
    let Some(eth) = ptr_at::<[u8; ETH_HLEN]>(ctx, 0) else { return dropped };
    let eth = unsafe { &*eth };
    let (peer_mac, our_mac) =
        ([eth[6], eth[7], eth[8], eth[9], eth[10], eth[11]], [eth[0], eth[1], eth[2], eth[3], eth[4], eth[5]]);
    let v4 = f.family == FAMILY_V4;
    // Layout: Ethernet, new IP header, 8-byte ICMP header, the quoted IP header + 8 bytes.
    let (ip_len, quote) = if v4 { (IPV4_HLEN, IPV4_HLEN + 8) } else { (IPV6_HLEN, IPV6_HLEN + 8) };
    if v4 {
        let Some(ip) = ptr_at::<[u8; IPV4_HLEN]>(ctx, l3_at(f)) else { return dropped };
        if unsafe { (*ip)[6] } & 0x40 == 0 {
            return dropped;
        }
    }
    let total = ETH_HLEN + ip_len + 8 + quote;
    let delta = l3_at(f) as i32 - (ETH_HLEN + ip_len + 8) as i32;
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, delta) } != 0 {
        return dropped;
    }
    let len = crate::parse::frame_len(ctx);
    if len < total || unsafe { bpf_xdp_adjust_tail(ctx.ctx, total as i32 - len as i32) } != 0 {
        return Verdict::new(xdp_action::XDP_ABORTED, Reason::TooBig);
    }
    let ok =
        if v4 { icmp4_too_big(ctx, f, mtu, peer_mac, our_mac) } else { icmp6_too_big(ctx, f, mtu, peer_mac, our_mac) };
    if ok.is_none() {
        return Verdict::new(xdp_action::XDP_ABORTED, Reason::TooBig);
    }
    Verdict::new(xdp_action::XDP_TX, Reason::TooBig)
}

#[inline(always)]
fn write_eth(eth: &mut [u8], dst: [u8; 6], src: [u8; 6], ethertype: u16) {
    eth[0..6].copy_from_slice(&dst);
    eth[6..12].copy_from_slice(&src);
    eth[12..14].copy_from_slice(&ethertype.to_be_bytes());
}

#[inline(always)]
fn icmp4_too_big(ctx: &XdpContext, f: &Frame, mtu: u16, dst: [u8; 6], src: [u8; 6]) -> Option<()> {
    let p = unsafe { &mut *ptr_at::<[u8; 70]>(ctx, 0)? };
    write_eth(&mut p[0..14], dst, src, ETH_P_IP);
    let mut ip = [0u8; IPV4_HLEN];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&56u16.to_be_bytes());
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = 1;
    ip[12..16].copy_from_slice(&f.dst[..4]);
    ip[16..20].copy_from_slice(&f.src[..4]);
    let c = csum::ipv4_header(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    p[14..34].copy_from_slice(&ip);
    // Type 3 code 4, checksum, unused, next-hop MTU; then the quote already in place.
    p[34..42].copy_from_slice(&[3, 4, 0, 0, 0, 0, (mtu >> 8) as u8, mtu as u8]);
    let msg: &[u8; 36] = p[34..70].try_into().ok()?;
    let c = csum::checksum(msg, 0);
    p[36..38].copy_from_slice(&c.to_be_bytes());
    Some(())
}

#[inline(always)]
fn icmp6_too_big(ctx: &XdpContext, f: &Frame, mtu: u16, dst: [u8; 6], src: [u8; 6]) -> Option<()> {
    let p = unsafe { &mut *ptr_at::<[u8; 110]>(ctx, 0)? };
    write_eth(&mut p[0..14], dst, src, ETH_P_IPV6);
    p[14..18].copy_from_slice(&[0x60, 0, 0, 0]);
    p[18..20].copy_from_slice(&56u16.to_be_bytes());
    p[20] = 58;
    p[21] = 64;
    p[22..38].copy_from_slice(&f.dst);
    p[38..54].copy_from_slice(&f.src);
    p[54..62].copy_from_slice(&[2, 0, 0, 0, 0, 0, (mtu >> 8) as u8, mtu as u8]);
    // Pseudo-header: addresses, upper-layer length (56), next header (58).
    let pseudo = csum::sum16(&f.dst) + csum::sum16(&f.src) + 56 + 58;
    let msg: &[u8; 56] = p[54..110].try_into().ok()?;
    let c = csum::checksum(msg, pseudo);
    p[56..58].copy_from_slice(&c.to_be_bytes());
    Some(())
}
