//! NAT: the destination becomes the real server on the way in, the source becomes the VIP on
//! the way back, with the IP and L4 checksums updated incrementally.

use aya_ebpf::programs::XdpContext;
use lb_common::{
    RealDef, Reason,
    consts::{FAMILY_V4, IPPROTO_TCP, IPPROTO_UDP},
};
use lb_ebpf::{
    csum,
    hdr::{Ipv4Hdr, Ipv6Hdr, Ports, TCP_CHECK_OFF, UDP_CHECK_OFF},
    mem::copy,
    verdict::{Verdict, XDP_ABORTED, XDP_PASS},
};

use crate::{
    nexthop::{self, Next, l3_at, l4_at},
    parse::ptr_at,
    scratch::{Frame, frag},
};

/// Where the L4 checksum sits, if the protocol has one we maintain.
#[inline(always)]
fn l4_check_at(proto: u8) -> Option<usize> {
    match proto {
        IPPROTO_TCP => Some(TCP_CHECK_OFF),
        IPPROTO_UDP => Some(UDP_CHECK_OFF),
        _ => None,
    }
}

/// Which end of the flow a rewrite replaces.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    /// Destination address and port (towards the real server).
    Dst,
    /// Source address and port (a reply, back to the client).
    Src,
}

/// Replaces one side's address and port and fixes the IP and L4 checksums incrementally. A
/// later fragment has no L4 header: only its address changes (the first fragment's L4
/// checksum covers the whole datagram).
#[inline(always)]
fn rewrite(ctx: &XdpContext, f: &Frame, side: Side, addr: &[u8; 16], port: u16) -> Option<()> {
    if f.frag == frag::LATER {
        return swap_address(ctx, f, side, addr, 0).map(|_| ());
    }
    let sum_at = l4_at(f) + l4_check_at(f.proto)?;
    // SAFETY (every `&mut *ptr` in this file): bounds checked by `ptr_at`.
    let field = u16::from_be_bytes(unsafe { *ptr_at::<[u8; 2]>(ctx, sum_at)? });
    // UDP over IPv4 may carry no checksum (0): leave it so.
    let no_udp_csum = f.proto == IPPROTO_UDP && f.family == FAMILY_V4 && field == 0;
    // A field left to offload holds the pseudo-header sum (not its complement): it follows
    // the address the other way round (complemented before and after), and not the port,
    // which the completion sums from the header itself.
    let partial = f.csum_partial != 0;
    let mut l4sum = swap_address(ctx, f, side, addr, if partial { !field } else { field })?;
    let ports = unsafe { &mut *ptr_at::<Ports>(ctx, l4_at(f))? };
    let port_field = if side == Side::Dst { &mut ports.dst } else { &mut ports.src };
    let new_port = port.to_be_bytes();
    if partial {
        l4sum = !l4sum;
    } else {
        l4sum = csum::replace(l4sum, port_field, &new_port);
    }
    copy(port_field, &new_port);
    if no_udp_csum {
        return Some(());
    }
    // A computed UDP checksum of 0 is sent as 0xffff (RFC 768).
    if f.proto == IPPROTO_UDP && l4sum == 0 && !partial {
        l4sum = 0xffff;
    }
    let sum = unsafe { &mut *ptr_at::<[u8; 2]>(ctx, sum_at)? };
    *sum = l4sum.to_be_bytes();
    Some(())
}

/// Replaces one side's IP address, fixing the IPv4 header checksum: `l4sum` updated for the
/// change (the TCP/UDP checksum covers the addresses through its pseudo-header).
#[inline(always)]
fn swap_address(ctx: &XdpContext, f: &Frame, side: Side, addr: &[u8; 16], l4sum: u16) -> Option<u16> {
    if f.family == FAMILY_V4 {
        let ip = unsafe { &mut *ptr_at::<Ipv4Hdr>(ctx, l3_at(f))? };
        let field = if side == Side::Dst { &mut ip.daddr } else { &mut ip.saddr };
        let old = *field;
        let new = addr.first_chunk::<4>()?;
        copy(field, new);
        let c = csum::replace(ip.check(), &old, new);
        ip.set_check(c);
        Some(csum::replace(l4sum, &old, new))
    } else {
        let ip = unsafe { &mut *ptr_at::<Ipv6Hdr>(ctx, l3_at(f))? };
        let field = if side == Side::Dst { &mut ip.daddr } else { &mut ip.saddr };
        let l4sum = csum::replace16(l4sum, field, addr);
        copy(field, addr);
        Some(l4sum)
    }
}

/// NAT towards the real server: destination address and port rewritten. The path's MTU is
/// checked first, so an ICMP answer quotes the packet as the client sent it.
#[inline(never)]
pub fn nat(ctx: &XdpContext, f: &Frame, real_id: u32, real: &RealDef) -> Verdict {
    let next = nexthop::to_real(ctx, f, real_id, real, f.ip_len as usize);
    if let Next::TooBig(_) = next {
        if f.csum_partial == 0 {
            return Verdict::oversized();
        }
    }
    // Port 0 (a group service's real server given without a port): the packet's own, as IPVS.
    let port = if real.port == 0 { f.dport } else { real.port };
    if rewrite(ctx, f, Side::Dst, &real.addr, port).is_none() {
        return Verdict::new(XDP_ABORTED, Reason::BadL4);
    }
    match next {
        Next::Hop => Verdict::new(nexthop::transmit(ctx, f, l3_at(f)), Reason::FwdNat),
        // Generic XDP, a TSO/GSO frame: the kernel forwards and segments it.
        Next::TooBig(_) => Verdict::new(XDP_PASS, Reason::GsoToStack),
        // The stack routes the rewritten packet itself.
        Next::Unknown => Verdict::new(XDP_PASS, Reason::NoRoute),
    }
}

/// A NAT reply on its way back: source set to the VIP and virtual port.
#[inline(never)]
pub fn nat_reply(ctx: &XdpContext, f: &Frame, vip: &[u8; 16], vport: u16) -> Verdict {
    let next = nexthop::lookup(ctx, f, vip, &f.dst, f.ip_len as usize);
    if let Next::TooBig(_) = next {
        if f.csum_partial == 0 {
            return Verdict::oversized();
        }
    }
    if rewrite(ctx, f, Side::Src, vip, vport).is_none() {
        return Verdict::new(XDP_ABORTED, Reason::BadL4);
    }
    match next {
        Next::Hop => Verdict::new(nexthop::transmit(ctx, f, l3_at(f)), Reason::NatReply),
        Next::TooBig(_) => Verdict::new(XDP_PASS, Reason::GsoToStack),
        Next::Unknown => Verdict::new(XDP_PASS, Reason::NoRoute),
    }
}
