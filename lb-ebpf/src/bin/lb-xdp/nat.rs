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
    verdict::{Verdict, XDP_ABORTED, XDP_PASS},
};

use crate::{
    icmp,
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
    let later = f.frag == frag::LATER;
    // The L4 checksum, updated as the address and port change; `None` for a later fragment.
    let mut l4sum = None;
    let mut sum_at = l4_at(f);
    if !later {
        sum_at += l4_check_at(f.proto)?;
        // SAFETY (every `&mut *ptr` in this file): bounds checked by `ptr_at`.
        l4sum = Some(u16::from_be_bytes(unsafe { *ptr_at::<[u8; 2]>(ctx, sum_at)? }));
    }
    if f.family == FAMILY_V4 {
        let ip = unsafe { &mut *ptr_at::<Ipv4Hdr>(ctx, l3_at(f))? };
        let field = if side == Side::Dst { &mut ip.daddr } else { &mut ip.saddr };
        let old = *field;
        let new: [u8; 4] = [addr[0], addr[1], addr[2], addr[3]];
        *field = new;
        let c = csum::replace(ip.check(), &old, &new);
        ip.set_check(c);
        l4sum = l4sum.map(|s| csum::replace(s, &old, &new));
    } else {
        let ip = unsafe { &mut *ptr_at::<Ipv6Hdr>(ctx, l3_at(f))? };
        let field = if side == Side::Dst { &mut ip.daddr } else { &mut ip.saddr };
        l4sum = l4sum.map(|s| csum::replace16(s, field, addr));
        *field = *addr;
    }
    let Some(mut l4sum) = l4sum else { return Some(()) };
    let ports = unsafe { &mut *ptr_at::<Ports>(ctx, l4_at(f))? };
    let port_field = if side == Side::Dst { &mut ports.dst } else { &mut ports.src };
    let new_port = port.to_be_bytes();
    l4sum = csum::replace(l4sum, port_field, &new_port);
    *port_field = new_port;
    let sum = unsafe { &mut *ptr_at::<[u8; 2]>(ctx, sum_at)? };
    // UDP over IPv4 may carry no checksum (0): leave it so. A computed UDP checksum of 0 is
    // sent as 0xffff (RFC 768).
    if f.proto == IPPROTO_UDP {
        if f.family == FAMILY_V4 && u16::from_be_bytes(*sum) == 0 {
            return Some(());
        }
        if l4sum == 0 {
            l4sum = 0xffff;
        }
    }
    *sum = l4sum.to_be_bytes();
    Some(())
}

/// NAT towards the real server: destination address and port rewritten. The path's MTU is
/// checked first, so an ICMP answer quotes the packet as the client sent it.
#[inline(never)]
pub fn nat(ctx: &XdpContext, f: &Frame, real: &RealDef) -> Verdict {
    let next = nexthop::lookup(ctx, f, &f.src, &real.addr, f.ip_len as usize);
    if let Next::TooBig(mtu) = next {
        return icmp::oversized(ctx, f, mtu);
    }
    if rewrite(ctx, f, Side::Dst, &real.addr, real.port).is_none() {
        return Verdict::new(XDP_ABORTED, Reason::BadL4);
    }
    match next {
        Next::Hop { ifindex, smac, dmac } => {
            Verdict::new(nexthop::transmit(ctx, f, l3_at(f), ifindex, smac, dmac), Reason::FwdNat)
        }
        // The stack routes the rewritten packet itself.
        _ => Verdict::new(XDP_PASS, Reason::NoRoute),
    }
}

/// A NAT reply on its way back: source set to the VIP and virtual port.
#[inline(never)]
pub fn nat_reply(ctx: &XdpContext, f: &Frame, vip: &[u8; 16], vport: u16) -> Verdict {
    let next = nexthop::lookup(ctx, f, vip, &f.dst, f.ip_len as usize);
    if let Next::TooBig(mtu) = next {
        return icmp::oversized(ctx, f, mtu);
    }
    if rewrite(ctx, f, Side::Src, vip, vport).is_none() {
        return Verdict::new(XDP_ABORTED, Reason::BadL4);
    }
    match next {
        Next::Hop { ifindex, smac, dmac } => {
            Verdict::new(nexthop::transmit(ctx, f, l3_at(f), ifindex, smac, dmac), Reason::NatReply)
        }
        _ => Verdict::new(XDP_PASS, Reason::NoRoute),
    }
}
