//! TUN: IPIP (IPv4) or IPv6-in-IPv6 towards the real server, outer source `real.tun_src`.

use aya_ebpf::{helpers::bpf_xdp_adjust_head, programs::XdpContext};
use lb_common::{
    RealDef, Reason,
    consts::{FAMILY_V4, IPPROTO_IPIP, IPPROTO_IPV6},
};
use lb_ebpf::{
    csum,
    hdr::{ETH_HLEN, IP_DF, IPV4_HLEN, IPV6_HLEN, Ipv4Hdr, Ipv6Hdr},
    verdict::{Verdict, XDP_ABORTED, XDP_DROP, XDP_PASS},
};

use crate::{
    icmp,
    nexthop::{self, Next, l3_at},
    parse::ptr_at,
    scratch::Frame,
};

/// Always by the FIB, not the next-hop cache: an ICMP "fragmentation needed" about an
/// encapsulated packet comes back to this host (the outer source) and may leave a path-MTU
/// exception for the real server's address, which the FIB applies at once and the cache
/// would see only at its next full read.
#[inline(never)]
pub fn tun(ctx: &XdpContext, f: &Frame, real: &RealDef) -> Verdict {
    let v4 = f.family == FAMILY_V4;
    let outer = if v4 { IPV4_HLEN } else { IPV6_HLEN };
    let total = f.ip_len as usize + outer;
    match nexthop::lookup(ctx, f, &real.tun_src, &real.addr, total) {
        Next::Hop => {}
        // Generic XDP, a TSO/GSO frame: encapsulated, its segmentation would break.
        Next::TooBig(_) if f.csum_partial != 0 => return Verdict::new(XDP_DROP, Reason::GsoDropped),
        Next::TooBig(mtu) => return icmp::oversized(ctx, f, mtu.saturating_sub(outer as u16)),
        Next::Unknown => return Verdict::new(XDP_PASS, Reason::NoRoute),
    }
    // Room for the outer header; VLAN tags (l3_off > 14) give some of it back.
    let delta = l3_at(f) as i32 - ETH_HLEN as i32 - outer as i32;
    // SAFETY: the helper checks the new start lies within the frame's headroom.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, delta) } != 0 {
        return Verdict::new(XDP_ABORTED, Reason::TooBig);
    }
    // SAFETY (both `&mut *ptr`): bounds checked by `ptr_at`.
    if v4 {
        let Some(ip) = ptr_at::<Ipv4Hdr>(ctx, ETH_HLEN) else { return Verdict::new(XDP_ABORTED, Reason::TooBig) };
        let ip = unsafe { &mut *ip };
        *ip = Ipv4Hdr {
            ver_ihl: 0x45,
            tos: 0,
            tot_len: (total as u16).to_be_bytes(),
            id: [0; 2],
            // DF: the inner packet already fits the path or was refused above.
            frag_off: IP_DF.to_be_bytes(),
            ttl: 64,
            protocol: IPPROTO_IPIP,
            check: [0; 2],
            saddr: [real.tun_src[0], real.tun_src[1], real.tun_src[2], real.tun_src[3]],
            daddr: [real.addr[0], real.addr[1], real.addr[2], real.addr[3]],
        };
        let c = csum::ipv4_header(ip.bytes());
        ip.set_check(c);
    } else {
        let Some(ip) = ptr_at::<Ipv6Hdr>(ctx, ETH_HLEN) else { return Verdict::new(XDP_ABORTED, Reason::TooBig) };
        let ip = unsafe { &mut *ip };
        *ip = Ipv6Hdr {
            ver_tc_flow: [0x60, 0, 0, 0],
            payload_len: (f.ip_len as u16).to_be_bytes(),
            nexthdr: IPPROTO_IPV6,
            hop_limit: 64,
            saddr: real.tun_src,
            daddr: real.addr,
        };
    }
    Verdict::new(nexthop::transmit(ctx, f, ETH_HLEN), Reason::FwdTun)
}
