//! Header parsing with bounds checks the verifier can follow: every read goes through
//! `ptr_at`, which compares against `data_end` first.

use core::mem::size_of;

use aya_ebpf::programs::XdpContext;
use lb_common::{
    ServiceKey,
    consts::{FAMILY_V4, FAMILY_V6, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, MAX_VLAN_DEPTH},
};

use crate::stats::Reason;

const ETH_HLEN: usize = 14;
const VLAN_HLEN: usize = 4;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const IPV4_HLEN: usize = 20;
const IPV6_HLEN: usize = 40;
const TCP_HLEN: usize = 20;
const UDP_HLEN: usize = 8;
const ICMP_HLEN: usize = 8;
/// IPv4 flags/fragment-offset bits that mark a fragment: MF and the 13-bit offset.
const IP_MF_OFFSET: u16 = 0x3fff;

/// IPv6 extension headers that may precede the L4 header (RFC 8200 §4, plus AH/ESP/mobility/
/// HIP/shim6). Frames carrying them get an explicit verdict rather than a guess.
#[inline(always)]
fn is_ipv6_ext(nexthdr: u8) -> bool {
    matches!(nexthdr, 0 | 43 | 44 | 50 | 51 | 60 | 135 | 139 | 140)
}

/// The parts of a frame the service lookup needs.
pub struct Frame {
    /// Destination address, protocol and family filled in; `port` by the caller from `l4`.
    pub key: ServiceKey,
    pub l4: L4,
}

pub enum L4 {
    Ports { dst_port: u16 },
    Icmp,
}

/// Returns a pointer to a `T` at `off` bytes into the frame, or `None` when it would read past
/// the end. `T` here is always a byte array, so alignment is 1.
#[inline(always)]
fn ptr_at<T>(ctx: &XdpContext, off: usize) -> Option<*const T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + off + size_of::<T>() > end {
        return None;
    }
    Some((start + off) as *const T)
}

#[inline(always)]
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

pub fn parse(ctx: &XdpContext) -> Result<Frame, Reason> {
    let eth: &[u8; ETH_HLEN] = unsafe { &*ptr_at(ctx, 0).ok_or(Reason::BadEth)? };
    let mut proto = be16(eth, 12);
    let mut off = ETH_HLEN;
    // Walk at most MAX_VLAN_DEPTH tags; a bounded loop the verifier unrolls.
    for _ in 0..MAX_VLAN_DEPTH {
        if proto != ETH_P_8021Q && proto != ETH_P_8021AD {
            break;
        }
        let tag: &[u8; VLAN_HLEN] = unsafe { &*ptr_at(ctx, off).ok_or(Reason::BadEth)? };
        proto = be16(tag, 2);
        off += VLAN_HLEN;
    }
    match proto {
        ETH_P_IP => parse_ipv4(ctx, off),
        ETH_P_IPV6 => parse_ipv6(ctx, off),
        ETH_P_8021Q | ETH_P_8021AD => Err(Reason::DeepVlan),
        _ => Err(Reason::NotIp),
    }
}

#[inline(always)]
fn parse_ipv4(ctx: &XdpContext, off: usize) -> Result<Frame, Reason> {
    let ip: &[u8; IPV4_HLEN] = unsafe { &*ptr_at(ctx, off).ok_or(Reason::BadIpv4)? };
    let version = ip[0] >> 4;
    let ihl = ((ip[0] & 0x0f) as usize) * 4;
    let tot_len = be16(ip, 2) as usize;
    let frame_l3_len = ctx.data_end() - ctx.data() - off;
    // The same sanity checks as the kernel's ip_rcv: it would drop these frames anyway.
    if version != 4 || ihl < IPV4_HLEN || tot_len < ihl || tot_len > frame_l3_len {
        return Err(Reason::BadIpv4);
    }
    if be16(ip, 6) & IP_MF_OFFSET != 0 {
        return Err(Reason::Fragment);
    }
    if ihl != IPV4_HLEN {
        return Err(Reason::IpOptions);
    }
    let mut key = ServiceKey::default();
    key.family = FAMILY_V4;
    key.proto = ip[9];
    key.addr[..4].copy_from_slice(&ip[16..20]);
    let l4 = parse_l4(ctx, off + IPV4_HLEN, tot_len - IPV4_HLEN, key.proto, IPPROTO_ICMP)?;
    Ok(Frame { key, l4 })
}

#[inline(always)]
fn parse_ipv6(ctx: &XdpContext, off: usize) -> Result<Frame, Reason> {
    let ip: &[u8; IPV6_HLEN] = unsafe { &*ptr_at(ctx, off).ok_or(Reason::BadIpv6)? };
    let payload_len = be16(ip, 4) as usize;
    let frame_l3_len = ctx.data_end() - ctx.data() - off;
    if ip[0] >> 4 != 6 || IPV6_HLEN + payload_len > frame_l3_len {
        return Err(Reason::BadIpv6);
    }
    let nexthdr = ip[6];
    if is_ipv6_ext(nexthdr) {
        return Err(Reason::IpOptions);
    }
    let mut key = ServiceKey::default();
    key.family = FAMILY_V6;
    key.proto = nexthdr;
    key.addr.copy_from_slice(&ip[24..40]);
    let l4 = parse_l4(ctx, off + IPV6_HLEN, payload_len, nexthdr, IPPROTO_ICMPV6)?;
    Ok(Frame { key, l4 })
}

/// Parses the L4 header at `off`; `l4_len` is the length the IP header declares for it.
#[inline(always)]
fn parse_l4(ctx: &XdpContext, off: usize, l4_len: usize, proto: u8, icmp: u8) -> Result<L4, Reason> {
    match proto {
        IPPROTO_TCP => {
            let tcp: &[u8; TCP_HLEN] = unsafe { &*ptr_at(ctx, off).ok_or(Reason::BadL4)? };
            let doff = ((tcp[12] >> 4) as usize) * 4;
            if l4_len < TCP_HLEN || doff < TCP_HLEN || doff > l4_len {
                return Err(Reason::BadL4);
            }
            Ok(L4::Ports { dst_port: be16(tcp, 2) })
        }
        IPPROTO_UDP => {
            let udp: &[u8; UDP_HLEN] = unsafe { &*ptr_at(ctx, off).ok_or(Reason::BadL4)? };
            let len = be16(udp, 4) as usize;
            if l4_len < UDP_HLEN || len < UDP_HLEN || len > l4_len {
                return Err(Reason::BadL4);
            }
            Ok(L4::Ports { dst_port: be16(udp, 2) })
        }
        p if p == icmp => {
            if l4_len < ICMP_HLEN || ptr_at::<[u8; ICMP_HLEN]>(ctx, off).is_none() {
                return Err(Reason::BadL4);
            }
            Ok(L4::Icmp)
        }
        _ => Err(Reason::OtherProto),
    }
}
