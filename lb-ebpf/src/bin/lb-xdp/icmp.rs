//! ICMP the data plane writes: the NAT rewrite of an error about a tracked flow, and the
//! "fragmentation needed" / "packet too big" answer to a packet the tunnel cannot carry.

use aya_ebpf::{
    helpers::{bpf_xdp_adjust_head, bpf_xdp_adjust_tail},
    programs::XdpContext,
};
use lb_common::{RealDef, Reason, consts::FAMILY_V4};
use lb_ebpf::{
    csum,
    hdr::{ETH_HLEN, ETH_P_IP, ETH_P_IPV6, EthHdr, IPV4_HLEN, IPV6_HLEN, IcmpHdr, Ipv4Hdr, Ipv6Hdr},
    verdict::{Verdict, XDP_ABORTED, XDP_DROP, XDP_TX},
};

use crate::{
    nexthop::{l3_at, l4_at},
    parse::{frame_len, ptr_at},
    scratch::Frame,
};

/// NAT for an ICMP error about a tracked flow: the outer destination becomes the real server,
/// and so do the quoted packet's source address and port (what the real server sent), with
/// the outer IP, quoted IP and ICMP checksums updated (then DR's path sends it to the real
/// server). The quoted L4 checksum is left: the quote is usually cut short and nobody
/// verifies it.
#[inline(always)]
pub fn nat_rewrite(ctx: &XdpContext, f: &Frame, real: &RealDef) -> bool {
    if f.family == FAMILY_V4 { nat4(ctx, f, real).is_some() } else { nat6(ctx, f, real).is_some() }
}

/// The offset of the quoted IP header, bounded for the verifier.
#[inline(always)]
fn quote_at(f: &Frame) -> usize {
    (f.inner_off & 0x7f) as usize
}

// SAFETY (every `&mut *ptr` in this file): bounds checked by `ptr_at`.
#[inline(never)]
fn nat4(ctx: &XdpContext, f: &Frame, real: &RealDef) -> Option<()> {
    let inner = quote_at(f);
    let new: [u8; 4] = [real.addr[0], real.addr[1], real.addr[2], real.addr[3]];
    let new_port = real.port.to_be_bytes();
    let outer = unsafe { &mut *ptr_at::<Ipv4Hdr>(ctx, l3_at(f))? };
    let c = csum::replace(outer.check(), &outer.daddr, &new);
    outer.daddr = new;
    outer.set_check(c);
    let q = unsafe { &mut *ptr_at::<Ipv4Hdr>(ctx, inner)? };
    let old_src = q.saddr;
    let old_qsum = q.check;
    let qsum = csum::replace(q.check(), &old_src, &new).to_be_bytes();
    q.saddr = new;
    q.check = qsum;
    let ports = unsafe { &mut *ptr_at::<[u8; 2]>(ctx, inner + IPV4_HLEN)? };
    let old_port = *ports;
    *ports = new_port;
    let icmp = unsafe { &mut *ptr_at::<IcmpHdr>(ctx, l4_at(f))? };
    let mut icsum = u16::from_be_bytes(icmp.check);
    icsum = csum::replace(icsum, &old_src, &new);
    icsum = csum::replace(icsum, &old_qsum, &qsum);
    icsum = csum::replace(icsum, &old_port, &new_port);
    icmp.check = icsum.to_be_bytes();
    Some(())
}

#[inline(never)]
fn nat6(ctx: &XdpContext, f: &Frame, real: &RealDef) -> Option<()> {
    let inner = quote_at(f);
    let new_port = real.port.to_be_bytes();
    let icmp = unsafe { &mut *ptr_at::<IcmpHdr>(ctx, l4_at(f))? };
    let mut icsum = u16::from_be_bytes(icmp.check);
    // ICMPv6's checksum covers the pseudo-header: the outer destination too. Each sum is
    // taken from the packet before the bytes are overwritten (no 16-byte copies on the stack).
    let outer = unsafe { &mut *ptr_at::<Ipv6Hdr>(ctx, l3_at(f))? };
    icsum = csum::replace16(icsum, &outer.daddr, &real.addr);
    outer.daddr = real.addr;
    let q = unsafe { &mut *ptr_at::<Ipv6Hdr>(ctx, inner)? };
    icsum = csum::replace16(icsum, &q.saddr, &real.addr);
    q.saddr = real.addr;
    let ports = unsafe { &mut *ptr_at::<[u8; 2]>(ctx, inner + IPV6_HLEN)? };
    icsum = csum::replace(icsum, ports, &new_port);
    *ports = new_port;
    let icmp = unsafe { &mut *ptr_at::<IcmpHdr>(ctx, l4_at(f))? };
    icmp.check = icsum.to_be_bytes();
    Some(())
}

/// Answers a packet the tunnel cannot carry with ICMP "fragmentation needed" (IPv4, only when
/// DF is set: the sender then lowers its path MTU) or ICMPv6 "packet too big", advertising
/// `mtu` (the link's, less the tunnel header), from the VIP back to the sender's hop.
#[inline(never)]
pub fn too_big(ctx: &XdpContext, f: &Frame, mtu: u16) -> Verdict {
    let dropped = Verdict::new(XDP_DROP, Reason::TooBig);
    let Some(eth) = ptr_at::<EthHdr>(ctx, 0) else { return dropped };
    let eth = unsafe { &*eth };
    let (peer_mac, our_mac) = (eth.src, eth.dst);
    let v4 = f.family == FAMILY_V4;
    // Layout: Ethernet, new IP header, 8-byte ICMP header, the quoted IP header + 8 bytes.
    let (ip_len, quote) = if v4 { (IPV4_HLEN, IPV4_HLEN + 8) } else { (IPV6_HLEN, IPV6_HLEN + 8) };
    if v4 {
        let Some(ip) = ptr_at::<Ipv4Hdr>(ctx, l3_at(f)) else { return dropped };
        if !unsafe { &*ip }.dont_fragment() {
            return dropped;
        }
    }
    let total = ETH_HLEN + ip_len + 8 + quote;
    let delta = l3_at(f) as i32 - (ETH_HLEN + ip_len + 8) as i32;
    // SAFETY: the helper checks the new start lies within the frame's headroom.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, delta) } != 0 {
        return dropped;
    }
    let len = frame_len(ctx);
    // SAFETY: as above, for the end.
    if len < total || unsafe { bpf_xdp_adjust_tail(ctx.ctx, total as i32 - len as i32) } != 0 {
        return Verdict::new(XDP_ABORTED, Reason::TooBig);
    }
    let ok =
        if v4 { icmp4_too_big(ctx, f, mtu, peer_mac, our_mac) } else { icmp6_too_big(ctx, f, mtu, peer_mac, our_mac) };
    if ok.is_none() {
        return Verdict::new(XDP_ABORTED, Reason::TooBig);
    }
    Verdict::new(XDP_TX, Reason::TooBig)
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
