//! Header parsing into the per-CPU `Frame`, with bounds checks the verifier can follow: every
//! header is reached through `ptr_at`, which compares against `data_end` first.

use core::mem::size_of;

use aya_ebpf::programs::XdpContext;
use lb_common::{
    Reason,
    consts::{FAMILY_V4, FAMILY_V6, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, MAX_VLAN_DEPTH},
};
use lb_ebpf::{
    csum,
    hdr::{
        ETH_HLEN, ETH_P_8021AD, ETH_P_8021Q, ETH_P_IP, ETH_P_IPV6, EthHdr, ICMP_HLEN, IPV4_HLEN, IPV6_AH,
        IPV6_DST_OPTS, IPV6_FRAG_HLEN, IPV6_FRAGMENT, IPV6_HLEN, IPV6_HOP_BY_HOP, IPV6_ROUTING, IcmpHdr, Ipv4Hdr,
        Ipv6ExtHdr, Ipv6FragHdr, Ipv6Hdr, Ports, TCP_HLEN, TcpHdr, UDP_HLEN, UdpHdr, VLAN_HLEN, VlanHdr, be16,
        is_icmp4_error, is_icmp6_error, is_ipv6_ext,
    },
    mem::copy,
};

use crate::scratch::{Frame, frag};

/// Bytes of IPv6 extension headers walked at most.
const MAX_IPV6_EXT_BYTES: usize = 256;

/// What kind of frame `parse` found.
pub enum Parsed {
    /// TCP or UDP: addresses and ports are in the frame (a whole datagram or its first
    /// fragment).
    Ports,
    /// A later fragment: addresses, protocol and identification, no ports.
    LaterFragment,
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

/// Largest IP length (IPv4 total length; IPv6 header + payload): generic XDP hands the
/// program whole GRO/GSO packets of up to 64 KB.
const MAX_IP_LEN: usize = 0xffff;
/// IPv6 extension headers walked before the L4 header at most.
const MAX_IPV6_EXT: usize = 4;
/// The L4 header must start within this many bytes of the frame (the rewrite code masks
/// offsets with `L4_MASK` for the verifier).
pub const L4_MASK: u32 = 0x1ff;

/// Whether `len` bytes from `off` lie within the frame.
#[inline(always)]
fn fits(ctx: &XdpContext, off: usize, len: usize) -> bool {
    let Some(len) = bounded(len, MAX_IP_LEN) else { return false };
    ctx.data() + off + len <= ctx.data_end()
}

/// `value` if at most `max`, in a register the verifier knows is bounded. The 6.1 verifier
/// loses a length's bounds through the byte swap of a header field, so the comparison must
/// stay in the code (LLVM would drop it for a 16-bit value and `max` 0xffff) and come before
/// any pointer arithmetic with the value (LLVM would move that first): the `asm` barriers
/// (libbpf's `barrier_var`, as a register move: an empty one leaves duplicate line info,
/// which the kernel refuses) pin both.
#[inline(always)]
pub fn bounded(mut value: usize, max: usize) -> Option<usize> {
    // SAFETY: a register move; it only hides the value from the optimiser.
    unsafe { core::arch::asm!("{0} = {0}", inout(reg) value) };
    if value > max {
        return None;
    }
    // SAFETY: as above.
    unsafe { core::arch::asm!("{0} = {0}", inout(reg) value) };
    Some(value)
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
    out.begin();
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
    out.clear_addrs();
    if let (Some(src), Some(dst)) = (out.src.first_chunk_mut::<4>(), out.dst.first_chunk_mut::<4>()) {
        copy(src, &ip.saddr);
        copy(dst, &ip.daddr);
    }
    out.family = FAMILY_V4;
    out.proto = ip.protocol;
    out.l3_off = off as u32;
    out.ip_len = tot_len as u32;
    out.frag = frag::NONE;
    out.frag_id = u32::from(be16(ip.id));
    if ip.is_fragment() {
        if ip.fragment_offset() != 0 {
            out.l4_off = (off + ihl) as u32;
            out.frag = frag::LATER;
            return Ok(Parsed::LaterFragment);
        }
        out.frag = frag::FIRST;
    }
    // Options (IHL 6..15) only move the L4 header.
    parse_l4(ctx, off + (ihl & 0x3c), tot_len - ihl, out)
}

#[inline(always)]
fn parse_ipv6(ctx: &XdpContext, off: usize, out: &mut Frame) -> Result<Parsed, Reason> {
    let ip: &Ipv6Hdr = unsafe { &*ptr_at(ctx, off).ok_or(Reason::BadIpv6)? };
    let payload_len = ip.payload_len() as usize;
    if ip.version() != 6 || !fits(ctx, off, IPV6_HLEN + payload_len) {
        return Err(Reason::BadIpv6);
    }
    copy(&mut out.src, &ip.saddr);
    copy(&mut out.dst, &ip.daddr);
    out.family = FAMILY_V6;
    out.l3_off = off as u32;
    out.ip_len = (IPV6_HLEN + payload_len) as u32;
    out.frag = frag::NONE;
    out.frag_id = 0;
    let mut next = ip.nexthdr;
    let mut at = off + IPV6_HLEN;
    // Walk the extension headers (RFC 8200 §4) to the L4 header; a bounded loop the verifier
    // unrolls.
    for _ in 0..MAX_IPV6_EXT {
        if !is_ipv6_ext(next) {
            break;
        }
        let h: &Ipv6ExtHdr = unsafe { &*ptr_at(ctx, at).ok_or(Reason::BadIpv6)? };
        let len = match next {
            IPV6_FRAGMENT => {
                let f: &Ipv6FragHdr = unsafe { &*ptr_at(ctx, at).ok_or(Reason::BadIpv6)? };
                out.frag_id = u32::from_be_bytes(f.id);
                if f.offset() != 0 {
                    out.proto = f.nexthdr;
                    out.l4_off = (at + IPV6_FRAG_HLEN) as u32;
                    out.frag = frag::LATER;
                    return Ok(Parsed::LaterFragment);
                }
                if f.more() {
                    out.frag = frag::FIRST;
                }
                IPV6_FRAG_HLEN
            }
            // A routing header with segments left names a further destination: not ours.
            IPV6_ROUTING if h.data[1] != 0 => return Err(Reason::IpOptions),
            IPV6_AH => (h.len as usize + 2) * 4,
            IPV6_HOP_BY_HOP | IPV6_ROUTING | IPV6_DST_OPTS => (h.len as usize + 1) * 8,
            // ESP hides what follows; mobility, HIP and shim6 are not walked.
            _ => return Err(Reason::IpOptions),
        };
        next = h.nexthdr;
        at += len;
        if at - off > IPV6_HLEN + MAX_IPV6_EXT_BYTES {
            return Err(Reason::IpOptions);
        }
    }
    if is_ipv6_ext(next) {
        return Err(Reason::IpOptions);
    }
    let ext = at - off - IPV6_HLEN;
    if ext > payload_len {
        return Err(Reason::BadIpv6);
    }
    out.proto = next;
    parse_l4(ctx, at, payload_len - ext, out)
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
            // A first fragment carries only part of the datagram its length field declares.
            let short = len > l4_len && out.frag == frag::NONE;
            if l4_len < UDP_HLEN || len < UDP_HLEN || short {
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
        if ip.version() != 4 || ip.header_len() < IPV4_HLEN {
            return false;
        }
        out.clear_addrs();
        out.dst[..4].copy_from_slice(&ip.saddr);
        out.src[..4].copy_from_slice(&ip.daddr);
        (off + (ip.header_len() & 0x3c), ip.protocol)
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
    out.inner_l4_off = l4_off as u32;
    true
}

/// Whether `f`'s IPv4 header checksum is right (always true for IPv6, which has none): the
/// kernel drops a frame whose header checksum is wrong, so the program does not forward it.
/// Checked only on frames the program forwards; the stack checks those it passes.
#[inline(never)]
pub fn ipv4_header_ok(ctx: &XdpContext, f: &Frame) -> bool {
    if f.family != FAMILY_V4 {
        return true;
    }
    let at = (f.l3_off & 0x1f) as usize;
    let Some(ip) = ptr_at::<[u8; IPV4_HLEN]>(ctx, at) else { return false };
    // Summed as little-endian words (five 4-byte loads, no byte swaps): the ones' complement
    // sum of byte-swapped words is the byte-swapped sum, and 0xffff is its own swap.
    let p = ip as *const u8;
    let mut sum = 0u64;
    for i in 0..IPV4_HLEN / 4 {
        // SAFETY: within the 20 bytes `ptr_at` checked; an unaligned load.
        sum += u64::from(unsafe { p.add(i * 4).cast::<u32>().read_unaligned() });
    }
    // Options: up to 40 more bytes, a 16-bit word at a time.
    // SAFETY: the first byte of the checked header.
    let ihl = ((unsafe { *p } & 0x0f) as usize) * 4;
    for i in 0..20 {
        let w = IPV4_HLEN + i * 2;
        if w >= ihl {
            break;
        }
        let Some(word) = ptr_at::<[u8; 2]>(ctx, at + w) else { return false };
        // SAFETY: bounds checked by `ptr_at`.
        sum += u64::from(u16::from_le_bytes(unsafe { *word }));
    }
    csum::fold_le(sum) == 0xffff
}
