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
    nexthop::{self, Next, l3_at, l4_at},
    parse::ptr_at,
    scratch::Frame,
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

/// Replaces one side's address and port and fixes the IP and L4 checksums incrementally.
#[inline(always)]
fn rewrite(ctx: &XdpContext, f: &Frame, side: Side, addr: &[u8; 16], port: u16) -> Option<()> {
    let l4c = l4_check_at(f.proto)?;
    // SAFETY (every `&mut *ptr` below): bounds checked by `ptr_at`.
    let ports = unsafe { &mut *ptr_at::<Ports>(ctx, l4_at(f))? };
    let port_field = if side == Side::Dst { &mut ports.dst } else { &mut ports.src };
    let old_port = *port_field;
    let new_port = port.to_be_bytes();
    let sum = unsafe { &mut *ptr_at::<[u8; 2]>(ctx, l4_at(f) + l4c)? };
    let mut l4sum = u16::from_be_bytes(*sum);
    // UDP over IPv4 may carry no checksum (0): leave it so.
    let udp_no_csum = f.proto == IPPROTO_UDP && f.family == FAMILY_V4 && l4sum == 0;
    if f.family == FAMILY_V4 {
        let ip = unsafe { &mut *ptr_at::<Ipv4Hdr>(ctx, l3_at(f))? };
        let field = if side == Side::Dst { &mut ip.daddr } else { &mut ip.saddr };
        let old = *field;
        let new: [u8; 4] = [addr[0], addr[1], addr[2], addr[3]];
        *field = new;
        let c = csum::replace(ip.check(), &old, &new);
        ip.set_check(c);
        l4sum = csum::replace(l4sum, &old, &new);
    } else {
        let ip = unsafe { &mut *ptr_at::<Ipv6Hdr>(ctx, l3_at(f))? };
        let field = if side == Side::Dst { &mut ip.daddr } else { &mut ip.saddr };
        let old = *field;
        *field = *addr;
        l4sum = csum::replace16(l4sum, &old, addr);
    }
    l4sum = csum::replace(l4sum, &old_port, &new_port);
    // A computed UDP checksum of 0 is sent as 0xffff (RFC 768).
    if f.proto == IPPROTO_UDP && l4sum == 0 {
        l4sum = 0xffff;
    }
    *port_field = new_port;
    if !udp_no_csum {
        *sum = l4sum.to_be_bytes();
    }
    Some(())
}

/// NAT towards the real server: destination address and port rewritten.
#[inline(never)]
pub fn nat(ctx: &XdpContext, f: &Frame, real: &RealDef) -> Verdict {
    if rewrite(ctx, f, Side::Dst, &real.addr, real.port).is_none() {
        return Verdict::new(XDP_ABORTED, Reason::BadL4);
    }
    match nexthop::lookup(ctx, f, &f.src, &real.addr, 0) {
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
    if rewrite(ctx, f, Side::Src, vip, vport).is_none() {
        return Verdict::new(XDP_ABORTED, Reason::BadL4);
    }
    match nexthop::lookup(ctx, f, vip, &f.dst, 0) {
        Next::Hop { ifindex, smac, dmac } => {
            Verdict::new(nexthop::transmit(ctx, f, l3_at(f), ifindex, smac, dmac), Reason::NatReply)
        }
        _ => Verdict::new(XDP_PASS, Reason::NoRoute),
    }
}
