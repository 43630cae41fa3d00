//! Header parsing into the per-CPU `Frame`, with bounds checks the verifier can follow: every
//! header is reached through `ptr_at`, which compares against `data_end` first.

use core::mem::size_of;

use aya_ebpf::programs::XdpContext;
use lb_common::{
    Reason,
    consts::{FAMILY_V4, FAMILY_V6, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, MAX_VLAN_DEPTH},
};
use lb_ebpf::hdr::{
    ETH_HLEN, ETH_P_8021AD, ETH_P_8021Q, ETH_P_IP, ETH_P_IPV6, EthHdr, ICMP_HLEN, IPV4_HLEN, IPV6_HLEN, IcmpHdr,
    Ipv4Hdr, Ipv6Hdr, Ports, TCP_HLEN, TcpHdr, UDP_HLEN, UdpHdr, VLAN_HLEN, VlanHdr, be16, is_icmp4_error,
    is_icmp6_error, is_ipv6_ext,
};

use crate::scratch::Frame;

/// What kind of frame `parse` found.
pub enum Parsed {
    /// TCP or UDP: addresses and ports are in the frame.
    Ports,
    /// ICMP that is not an error about a TCP/UDP packet.
    Icmp,
    /// An ICMP error quoting a TCP/UDP packet: the frame describes the quoted flow as the
    /// client sends it (src = client, dst = VIP), so it finds the flow's conntrack entry.
    IcmpError,
}

/// A pointer to a `T` at `off` bytes into the frame, or `None` when it would read past the
/// end. Every `T` here has alignment 1 (byte arrays and `lb_ebpf::hdr` views).
#[inline(always)]
pub fn ptr_at<T>(ctx: &XdpContext, off: usize) -> Option<*mut T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + off + size_of::<T>() > end {
        return None;
    }
    Some((start + off) as *mut T)
}

/// Largest IP length a frame can carry here (XDP frames fit a page; no multi-buffer).
const MAX_IP_LEN: usize = 0x3fff;

/// Whether `len` bytes from `off` lie within the frame. The explicit bound keeps older
/// verifiers (6.1) from seeing an unbounded length: they lose track through the byte swap
/// of a header field.
#[inline(always)]
fn fits(ctx: &XdpContext, off: usize, len: usize) -> bool {
    len <= MAX_IP_LEN && ctx.data() + off + len <= ctx.data_end()
}

/// The frame's length (a helper: the verifier forbids computing it from data_end).
#[inline(always)]
pub fn frame_len(ctx: &XdpContext) -> usize {
    // SAFETY: the helper only reads the context.
    unsafe { aya_ebpf::helpers::bpf_xdp_get_buff_len(ctx.ctx) as usize }
}

/// Parses Ethernet (and up to `MAX_VLAN_DEPTH` tags), IP and the L4 header into `out`.
/// Errors carry the reason the frame is counted under.
#[inline(always)]
pub fn parse(ctx: &XdpContext, out: &mut Frame) -> Result<Parsed, Reason> {
    // SAFETY (every `&*ptr`/`&mut *ptr` below): `ptr_at` checked the header lies in the frame.
    let eth: &EthHdr = unsafe { &*ptr_at(ctx, 0).ok_or(Reason::BadEth)? };
    let mut proto = eth.proto();
    let mut off = ETH_HLEN;
    // Walk at most MAX_VLAN_DEPTH tags; a bounded loop the verifier unrolls.
    for _ in 0..MAX_VLAN_DEPTH {
        if proto != ETH_P_8021Q && proto != ETH_P_8021AD {
            break;
        }
        let tag: &VlanHdr = unsafe { &*ptr_at(ctx, off).ok_or(Reason::BadEth)? };
        proto = tag.proto();
        off += VLAN_HLEN;
    }
    match proto {
        ETH_P_IP => parse_ipv4(ctx, off, out),
        ETH_P_IPV6 => parse_ipv6(ctx, off, out),
        ETH_P_8021Q | ETH_P_8021AD => Err(Reason::DeepVlan),
        _ => Err(Reason::NotIp),
    }
}

#[inline(always)]
fn parse_ipv4(ctx: &XdpContext, off: usize, out: &mut Frame) -> Result<Parsed, Reason> {
    let ip: &Ipv4Hdr = unsafe { &*ptr_at(ctx, off).ok_or(Reason::BadIpv4)? };
    let ihl = ip.header_len();
    let tot_len = ip.tot_len() as usize;
    // The same sanity checks as the kernel's ip_rcv: it would drop these frames anyway.
    // (Compared as pointers: the verifier forbids arithmetic on data_end.)
    if ip.version() != 4 || ihl < IPV4_HLEN || tot_len < ihl || !fits(ctx, off, tot_len) {
        return Err(Reason::BadIpv4);
    }
    if ip.is_fragment() {
        return Err(Reason::Fragment);
    }
    if ihl != IPV4_HLEN {
        return Err(Reason::IpOptions);
    }
    out.clear_addrs();
    out.src[..4].copy_from_slice(&ip.saddr);
    out.dst[..4].copy_from_slice(&ip.daddr);
    out.family = FAMILY_V4;
    out.proto = ip.protocol;
    out.l3_off = off as u32;
    out.ip_len = tot_len as u32;
    parse_l4(ctx, off + IPV4_HLEN, tot_len - IPV4_HLEN, out)
}

#[inline(always)]
fn parse_ipv6(ctx: &XdpContext, off: usize, out: &mut Frame) -> Result<Parsed, Reason> {
    let ip: &Ipv6Hdr = unsafe { &*ptr_at(ctx, off).ok_or(Reason::BadIpv6)? };
    let payload_len = ip.payload_len() as usize;
    if ip.version() != 6 || !fits(ctx, off, IPV6_HLEN + payload_len) {
        return Err(Reason::BadIpv6);
    }
    if is_ipv6_ext(ip.nexthdr) {
        return Err(Reason::IpOptions);
    }
    out.src = ip.saddr;
    out.dst = ip.daddr;
    out.family = FAMILY_V6;
    out.proto = ip.nexthdr;
    out.l3_off = off as u32;
    out.ip_len = (IPV6_HLEN + payload_len) as u32;
    parse_l4(ctx, off + IPV6_HLEN, payload_len, out)
}

/// Parses the L4 header at `off`; `l4_len` is the length the IP header declares for it.
#[inline(always)]
fn parse_l4(ctx: &XdpContext, off: usize, l4_len: usize, out: &mut Frame) -> Result<Parsed, Reason> {
    let icmp = if out.family == FAMILY_V4 { IPPROTO_ICMP } else { IPPROTO_ICMPV6 };
    let (sport, dport, tcp_flags) = match out.proto {
        IPPROTO_TCP => {
            let tcp: &TcpHdr = unsafe { &*ptr_at(ctx, off).ok_or(Reason::BadL4)? };
            let doff = tcp.header_len();
            if l4_len < TCP_HLEN || doff < TCP_HLEN || doff > l4_len {
                return Err(Reason::BadL4);
            }
            (be16(tcp.sport), be16(tcp.dport), tcp.flags)
        }
        IPPROTO_UDP => {
            let udp: &UdpHdr = unsafe { &*ptr_at(ctx, off).ok_or(Reason::BadL4)? };
            let len = be16(udp.len) as usize;
            if l4_len < UDP_HLEN || len < UDP_HLEN || len > l4_len {
                return Err(Reason::BadL4);
            }
            (be16(udp.sport), be16(udp.dport), 0)
        }
        p if p == icmp => {
            let Some(h) = ptr_at::<IcmpHdr>(ctx, off) else { return Err(Reason::BadL4) };
            if l4_len < ICMP_HLEN {
                return Err(Reason::BadL4);
            }
            let kind = unsafe { (*h).kind };
            let error = if icmp == IPPROTO_ICMP { is_icmp4_error(kind) } else { is_icmp6_error(kind) };
            if error && parse_quoted(ctx, off + ICMP_HLEN, out) {
                out.l4_off = off as u32;
                return Ok(Parsed::IcmpError);
            }
            return Ok(Parsed::Icmp);
        }
        _ => return Err(Reason::OtherProto),
    };
    out.sport = sport;
    out.dport = dport;
    out.tcp_flags = tcp_flags;
    out.l4_off = off as u32;
    Ok(Parsed::Ports)
}

/// Reads the packet an ICMP error quotes (at `off`): an option-less IPv4 or a plain IPv6
/// header of the outer family, then at least the TCP/UDP ports. Fills `out` with the quoted
/// flow reversed (the quoted packet went from the VIP to the client). False when the quote is
/// short, of another family or protocol: the error then passes as plain ICMP.
#[inline(always)]
fn parse_quoted(ctx: &XdpContext, off: usize, out: &mut Frame) -> bool {
    let (l4_off, proto) = if out.family == FAMILY_V4 {
        let Some(ip) = ptr_at::<Ipv4Hdr>(ctx, off) else { return false };
        let ip = unsafe { &*ip };
        if ip.ver_ihl != 0x45 {
            return false;
        }
        out.clear_addrs();
        out.dst[..4].copy_from_slice(&ip.saddr);
        out.src[..4].copy_from_slice(&ip.daddr);
        (off + IPV4_HLEN, ip.protocol)
    } else {
        let Some(ip) = ptr_at::<Ipv6Hdr>(ctx, off) else { return false };
        let ip = unsafe { &*ip };
        if ip.version() != 6 {
            return false;
        }
        out.dst = ip.saddr;
        out.src = ip.daddr;
        (off + IPV6_HLEN, ip.nexthdr)
    };
    if proto != IPPROTO_TCP && proto != IPPROTO_UDP {
        return false;
    }
    let Some(ports) = ptr_at::<Ports>(ctx, l4_off) else { return false };
    let ports = unsafe { &*ports };
    out.dport = be16(ports.src);
    out.sport = be16(ports.dst);
    out.proto = proto;
    out.tcp_flags = 0;
    out.inner_off = off as u32;
    true
}
