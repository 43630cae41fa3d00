//! Header parsing with bounds checks the verifier can follow: every read goes through
//! `ptr_at`, which compares against `data_end` first.

use core::mem::size_of;

use aya_ebpf::programs::XdpContext;
use lb_common::consts::{FAMILY_V4, FAMILY_V6, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, MAX_VLAN_DEPTH};

use crate::stats::Reason;

pub const ETH_HLEN: usize = 14;
const VLAN_HLEN: usize = 4;
pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
pub const IPV4_HLEN: usize = 20;
pub const IPV6_HLEN: usize = 40;
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

/// What the data plane needs of a TCP/UDP frame, with where its headers are. It lives in the
/// per-CPU `lb_scratch` map, not on the stack: the verifier gives the deepest call chain only
/// 512 bytes of stack.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub struct Frame {
    /// Addresses as in `ServiceKey` (IPv4 in the first four bytes). First, so they are
    /// 8-byte aligned for `clear_addrs`.
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub family: u8,
    pub proto: u8,
    /// Host byte order.
    pub sport: u16,
    pub dport: u16,
    /// TCP flags byte (0 for UDP).
    pub tcp_flags: u8,
    pub pad: u8,
    pub l3_off: u32,
    pub l4_off: u32,
    /// IP packet length (header + payload) as the header declares it.
    pub ip_len: u32,
    /// ICMP errors: offset of the quoted IP header.
    pub inner_off: u32,
    /// Ingress interface, read once at entry (the verifier refuses context reads through
    /// a derived pointer, which later code tends to produce).
    pub ifindex: u32,
}

impl Frame {
    /// Zeroes both addresses with four 8-byte stores. `= [0; 16]` becomes a call to a
    /// byte-at-a-time `memset` on BPF (LLVM's BPF backend expands memcpy inline, not memset);
    /// volatile stores are never merged back into one.
    #[inline(always)]
    pub fn clear_addrs(&mut self) {
        crate::zero_words(self as *mut Frame as *mut u64, 4);
    }
}

pub enum Parsed {
    Ports,
    Icmp,
    /// An ICMP error quoting a TCP/UDP packet: the frame describes the quoted flow as the
    /// client sends it (src = client, dst = VIP), so it finds the flow's conntrack entry.
    IcmpError,
}

/// Returns a pointer to a `T` at `off` bytes into the frame, or `None` when it would read past
/// the end. `T` here is always a byte array, so alignment is 1.
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
    unsafe { aya_ebpf::helpers::bpf_xdp_get_buff_len(ctx.ctx) as usize }
}

#[inline(always)]
pub fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline(always)]
pub fn parse(ctx: &XdpContext, out: &mut Frame) -> Result<Parsed, Reason> {
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
        ETH_P_IP => parse_ipv4(ctx, off, out),
        ETH_P_IPV6 => parse_ipv6(ctx, off, out),
        ETH_P_8021Q | ETH_P_8021AD => Err(Reason::DeepVlan),
        _ => Err(Reason::NotIp),
    }
}

#[inline(always)]
fn parse_ipv4(ctx: &XdpContext, off: usize, out: &mut Frame) -> Result<Parsed, Reason> {
    let ip: &[u8; IPV4_HLEN] = unsafe { &*ptr_at(ctx, off).ok_or(Reason::BadIpv4)? };
    let version = ip[0] >> 4;
    let ihl = ((ip[0] & 0x0f) as usize) * 4;
    let tot_len = be16(ip, 2) as usize;
    // The same sanity checks as the kernel's ip_rcv: it would drop these frames anyway.
    // (Compared as pointers: the verifier forbids arithmetic on data_end.)
    if version != 4 || ihl < IPV4_HLEN || tot_len < ihl || !fits(ctx, off, tot_len) {
        return Err(Reason::BadIpv4);
    }
    if be16(ip, 6) & IP_MF_OFFSET != 0 {
        return Err(Reason::Fragment);
    }
    if ihl != IPV4_HLEN {
        return Err(Reason::IpOptions);
    }
    out.clear_addrs();
    out.src[..4].copy_from_slice(&ip[12..16]);
    out.dst[..4].copy_from_slice(&ip[16..20]);
    out.family = FAMILY_V4;
    out.proto = ip[9];
    out.l3_off = off as u32;
    out.ip_len = tot_len as u32;
    parse_l4(ctx, off + IPV4_HLEN, tot_len - IPV4_HLEN, IPPROTO_ICMP, out)
}

#[inline(always)]
fn parse_ipv6(ctx: &XdpContext, off: usize, out: &mut Frame) -> Result<Parsed, Reason> {
    let ip: &[u8; IPV6_HLEN] = unsafe { &*ptr_at(ctx, off).ok_or(Reason::BadIpv6)? };
    let payload_len = be16(ip, 4) as usize;
    if ip[0] >> 4 != 6 || !fits(ctx, off, IPV6_HLEN + payload_len) {
        return Err(Reason::BadIpv6);
    }
    let nexthdr = ip[6];
    if is_ipv6_ext(nexthdr) {
        return Err(Reason::IpOptions);
    }
    out.src.copy_from_slice(&ip[8..24]);
    out.dst.copy_from_slice(&ip[24..40]);
    out.family = FAMILY_V6;
    out.proto = nexthdr;
    out.l3_off = off as u32;
    out.ip_len = (IPV6_HLEN + payload_len) as u32;
    parse_l4(ctx, off + IPV6_HLEN, payload_len, IPPROTO_ICMPV6, out)
}

/// Parses the L4 header at `off`; `l4_len` is the length the IP header declares for it.
#[inline(always)]
fn parse_l4(ctx: &XdpContext, off: usize, l4_len: usize, icmp: u8, out: &mut Frame) -> Result<Parsed, Reason> {
    let proto = out.proto;
    let (sport, dport, tcp_flags) = match proto {
        IPPROTO_TCP => {
            let tcp: &[u8; TCP_HLEN] = unsafe { &*ptr_at(ctx, off).ok_or(Reason::BadL4)? };
            let doff = ((tcp[12] >> 4) as usize) * 4;
            if l4_len < TCP_HLEN || doff < TCP_HLEN || doff > l4_len {
                return Err(Reason::BadL4);
            }
            (be16(tcp, 0), be16(tcp, 2), tcp[13])
        }
        IPPROTO_UDP => {
            let udp: &[u8; UDP_HLEN] = unsafe { &*ptr_at(ctx, off).ok_or(Reason::BadL4)? };
            let len = be16(udp, 4) as usize;
            if l4_len < UDP_HLEN || len < UDP_HLEN || len > l4_len {
                return Err(Reason::BadL4);
            }
            (be16(udp, 0), be16(udp, 2), 0)
        }
        p if p == icmp => {
            let Some(h) = ptr_at::<[u8; ICMP_HLEN]>(ctx, off) else { return Err(Reason::BadL4) };
            if l4_len < ICMP_HLEN {
                return Err(Reason::BadL4);
            }
            let kind = unsafe { (*h)[0] };
            let error = if icmp == IPPROTO_ICMP { matches!(kind, 3 | 11 | 12) } else { matches!(kind, 1..=4) };
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
        let Some(ip) = ptr_at::<[u8; IPV4_HLEN]>(ctx, off) else { return false };
        let ip = unsafe { &*ip };
        if ip[0] != 0x45 {
            return false;
        }
        out.clear_addrs();
        out.dst[..4].copy_from_slice(&ip[12..16]);
        out.src[..4].copy_from_slice(&ip[16..20]);
        (off + IPV4_HLEN, ip[9])
    } else {
        let Some(ip) = ptr_at::<[u8; IPV6_HLEN]>(ctx, off) else { return false };
        let ip = unsafe { &*ip };
        if ip[0] >> 4 != 6 {
            return false;
        }
        out.dst.copy_from_slice(&ip[8..24]);
        out.src.copy_from_slice(&ip[24..40]);
        (off + IPV6_HLEN, ip[6])
    };
    if proto != IPPROTO_TCP && proto != IPPROTO_UDP {
        return false;
    }
    let Some(ports) = ptr_at::<[u8; 4]>(ctx, l4_off) else { return false };
    let ports = unsafe { &*ports };
    out.dport = be16(ports, 0);
    out.sport = be16(ports, 2);
    out.proto = proto;
    out.tcp_flags = 0;
    out.inner_off = off as u32;
    true
}
