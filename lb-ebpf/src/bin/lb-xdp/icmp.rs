//! ICMP the data plane writes: the NAT rewrites of errors about a NAT flow (from the client's
//! side towards its real server, and from the real servers' side back to the client), and the
//! "fragmentation needed" / "packet too big" answer to a packet the egress path cannot carry.

use aya_ebpf::{
    helpers::{bpf_xdp_adjust_head, bpf_xdp_adjust_tail},
    programs::XdpContext,
};
use lb_common::{
    NatRev, RealDef, Reason,
    consts::{FAMILY_V4, PUNT_FRAGMENT},
};
use lb_ebpf::{
    csum,
    hdr::{ETH_HLEN, ETH_P_IP, ETH_P_IPV6, EthHdr, IPV4_HLEN, IPV6_HLEN, IcmpHdr, Ipv4Hdr, Ipv6Hdr},
    verdict::{Verdict, XDP_ABORTED, XDP_DROP, XDP_PASS},
};

use crate::{
    nexthop::{self, Next, l3_at, l4_at},
    parse::{frame_len, ptr_at},
    punt,
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

/// The offsets of the quoted IP header and of its ports, bounded for the verifier.
#[inline(always)]
fn quote_at(f: &Frame) -> usize {
    (f.inner_off & 0x3ff) as usize
}

#[inline(always)]
fn quote_l4_at(f: &Frame) -> usize {
    (f.inner_l4_off & 0x3ff) as usize
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
    let ports = unsafe { &mut *ptr_at::<[u8; 2]>(ctx, quote_l4_at(f))? };
    let old_port = *ports;
    // A real server without a port (0) has the virtual port the quote already holds.
    let new_port = if real.port == 0 { old_port } else { new_port };
    *ports = new_port;
    let icmp = unsafe { &mut *ptr_at::<IcmpHdr>(ctx, l4_at(f))? };
    let mut icsum = u16::from_be_bytes(icmp.check);
    icsum = csum::replace(icsum, &old_src, &new);
    icsum = csum::replace(icsum, &old_qsum, &qsum);
    icsum = csum::replace(icsum, &old_port, &new_port);
    icmp.check = icsum.to_be_bytes();
    Some(())
}

/// The quoted source port set to `port` (kept when 0: a real server without a port has the
/// virtual port the quote holds), the ICMPv6 checksum `icsum` updated. Out of line: inside
/// `nat6` the branch cost it 112 bytes of stack.
#[inline(never)]
fn quote_port(ctx: &XdpContext, f: &Frame, icsum: u16, port: u16) -> Option<u16> {
    if port == 0 {
        return Some(icsum);
    }
    let ports = unsafe { &mut *ptr_at::<[u8; 2]>(ctx, quote_l4_at(f))? };
    let new_port = port.to_be_bytes();
    let icsum = csum::replace(icsum, ports, &new_port);
    *ports = new_port;
    Some(icsum)
}

#[inline(never)]
fn nat6(ctx: &XdpContext, f: &Frame, real: &RealDef) -> Option<()> {
    let inner = quote_at(f);
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
    icsum = quote_port(ctx, f, icsum, real.port)?;
    let icmp = unsafe { &mut *ptr_at::<IcmpHdr>(ctx, l4_at(f))? };
    icmp.check = icsum.to_be_bytes();
    Some(())
}

/// NAT for an ICMP error from the real servers' side about a NAT flow (`f` describes the
/// quoted client → real server packet reversed, the flow's reply tuple, whose translation is
/// `rev`), as IPVS's `ip_vs_nat_icmp` does outwards: the outer source, the quoted destination
/// address and port become the VIP's, checksums updated; then it goes to the client.
/// False when the frame is shorter than its headers said.
#[inline(always)]
pub fn nat_reply_rewrite(ctx: &XdpContext, f: &Frame, rev: &NatRev) -> bool {
    if f.family == FAMILY_V4 { reply4(ctx, f, rev).is_some() } else { reply6(ctx, f, rev).is_some() }
}

/// Sends a translated error from the real servers' side on to the client (the quoted
/// packet's source: `f.dst`) from `vip`.
#[inline(never)]
pub fn send_reply(ctx: &XdpContext, f: &Frame, vip: &[u8; 16]) -> Verdict {
    match nexthop::lookup(ctx, f, vip, &f.dst, 0) {
        Next::Hop => Verdict::new(nexthop::transmit(ctx, f, l3_at(f)), Reason::IcmpReply),
        _ => Verdict::new(XDP_PASS, Reason::NoRoute),
    }
}

#[inline(never)]
fn reply4(ctx: &XdpContext, f: &Frame, rev: &NatRev) -> Option<()> {
    let vip: [u8; 4] = [rev.vip[0], rev.vip[1], rev.vip[2], rev.vip[3]];
    let vport = rev.vport.to_be_bytes();
    let outer = unsafe { &mut *ptr_at::<Ipv4Hdr>(ctx, l3_at(f))? };
    let c = csum::replace(outer.check(), &outer.saddr, &vip);
    outer.saddr = vip;
    outer.set_check(c);
    let q = unsafe { &mut *ptr_at::<Ipv4Hdr>(ctx, quote_at(f))? };
    let old_dst = q.daddr;
    let old_qsum = q.check;
    let qsum = csum::replace(q.check(), &old_dst, &vip).to_be_bytes();
    q.daddr = vip;
    q.check = qsum;
    // The quoted destination port: the second of the quoted ports.
    let ports = unsafe { &mut *ptr_at::<[u8; 4]>(ctx, quote_l4_at(f))? };
    let old_port = [ports[2], ports[3]];
    ports[2..4].copy_from_slice(&vport);
    let icmp = unsafe { &mut *ptr_at::<IcmpHdr>(ctx, l4_at(f))? };
    let mut icsum = u16::from_be_bytes(icmp.check);
    icsum = csum::replace(icsum, &old_dst, &vip);
    icsum = csum::replace(icsum, &old_qsum, &qsum);
    icsum = csum::replace(icsum, &old_port, &vport);
    icmp.check = icsum.to_be_bytes();
    Some(())
}

#[inline(never)]
fn reply6(ctx: &XdpContext, f: &Frame, rev: &NatRev) -> Option<()> {
    let vport = rev.vport.to_be_bytes();
    let icmp = unsafe { &mut *ptr_at::<IcmpHdr>(ctx, l4_at(f))? };
    let mut icsum = u16::from_be_bytes(icmp.check);
    // ICMPv6's checksum covers the pseudo-header: the outer source too.
    let outer = unsafe { &mut *ptr_at::<Ipv6Hdr>(ctx, l3_at(f))? };
    icsum = csum::replace16(icsum, &outer.saddr, &rev.vip);
    outer.saddr = rev.vip;
    let q = unsafe { &mut *ptr_at::<Ipv6Hdr>(ctx, quote_at(f))? };
    icsum = csum::replace16(icsum, &q.daddr, &rev.vip);
    q.daddr = rev.vip;
    let ports = unsafe { &mut *ptr_at::<[u8; 4]>(ctx, quote_l4_at(f))? };
    icsum = csum::replace(icsum, &[ports[2], ports[3]], &vport);
    ports[2..4].copy_from_slice(&vport);
    let icmp = unsafe { &mut *ptr_at::<IcmpHdr>(ctx, l4_at(f))? };
    icmp.check = icsum.to_be_bytes();
    Some(())
}

/// A packet larger than the egress path's `mtu` (for TUN: the link's less the tunnel header):
/// IPv4 with DF clear goes to the daemon to be fragmented, as IPVS fragments it; with DF set,
/// or IPv6, the sender gets "fragmentation needed" / "packet too big" and lowers its path MTU.
#[inline(always)]
pub fn oversized(ctx: &XdpContext, f: &Frame, mtu: u16) -> Verdict {
    if f.family == FAMILY_V4 {
        let Some(ip) = ptr_at::<Ipv4Hdr>(ctx, l3_at(f)) else { return Verdict::new(XDP_DROP, Reason::TooBig) };
        // SAFETY: bounds checked by `ptr_at`.
        if !unsafe { &*ip }.dont_fragment() {
            return punt::hand_over(ctx, f, PUNT_FRAGMENT, mtu);
        }
    }
    too_big(ctx, f, mtu)
}

/// Answers a packet the egress path cannot carry with ICMP "fragmentation needed" (IPv4 with
/// DF) or ICMPv6 "packet too big", advertising `mtu`, from the packet's destination (the VIP)
/// back to the sender's hop. The quote is the IP header and 8 bytes: an IPv4 header with
/// options is not quoted whole, so such a packet is dropped (counted) instead. IPv6 quotes 16
/// bytes after its header: a sender only acts on an error whose quote reaches 8 bytes into
/// the L4 header (Linux: `icmpv6_notify`), and a fragmented datagram's first fragment puts an
/// 8-byte fragment header in front of it (the packets that reach here are well over 56 bytes).
#[inline(never)]
pub fn too_big(ctx: &XdpContext, f: &Frame, mtu: u16) -> Verdict {
    let dropped = Verdict::new(XDP_DROP, Reason::TooBig);
    let Some(eth) = ptr_at::<EthHdr>(ctx, 0) else { return dropped };
    let eth = unsafe { &*eth };
    let (peer_mac, our_mac) = (eth.src, eth.dst);
    let v4 = f.family == FAMILY_V4;
    // Layout: Ethernet, new IP header, 8-byte ICMP header, the quoted IP header + 8 (IPv6: 16)
    // bytes.
    let (ip_len, quote) = if v4 { (IPV4_HLEN, IPV4_HLEN + 8) } else { (IPV6_HLEN, IPV6_HLEN + 16) };
    if v4 {
        let Some(ip) = ptr_at::<Ipv4Hdr>(ctx, l3_at(f)) else { return dropped };
        let ip = unsafe { &*ip };
        if ip.header_len() != IPV4_HLEN {
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
    Verdict::new(nexthop::back_out(f), Reason::TooBig)
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
    let p = unsafe { &mut *ptr_at::<[u8; 118]>(ctx, 0)? };
    write_eth(&mut p[0..14], dst, src, ETH_P_IPV6);
    p[14..18].copy_from_slice(&[0x60, 0, 0, 0]);
    p[18..20].copy_from_slice(&64u16.to_be_bytes());
    p[20] = 58;
    p[21] = 64;
    p[22..38].copy_from_slice(&f.dst);
    p[38..54].copy_from_slice(&f.src);
    p[54..62].copy_from_slice(&[2, 0, 0, 0, 0, 0, (mtu >> 8) as u8, mtu as u8]);
    // Pseudo-header: addresses, upper-layer length (64), next header (58).
    let pseudo = csum::sum16(&f.dst) + csum::sum16(&f.src) + 64 + 58;
    let msg: &[u8; 64] = p[54..118].try_into().ok()?;
    let c = csum::checksum(msg, pseudo);
    p[56..58].copy_from_slice(&c.to_be_bytes());
    Some(())
}
