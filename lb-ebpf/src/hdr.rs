//! Named views of the headers the data plane reads and writes. Every field is a byte array
//! (alignment 1), so a view may sit at any offset of a frame; accessors convert from network
//! byte order. The programs obtain a view only through a bounds-checked pointer
//! (`lb-xdp/parse.rs: ptr_at`).

use core::mem::{offset_of, size_of};

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88a8;

#[inline(always)]
pub fn be16(b: [u8; 2]) -> u16 {
    u16::from_be_bytes(b)
}

#[repr(C)]
pub struct EthHdr {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    pub proto: [u8; 2],
}

impl EthHdr {
    #[inline(always)]
    pub fn proto(&self) -> u16 {
        be16(self.proto)
    }

    /// Fills in destination, source and EtherType.
    #[inline(always)]
    pub fn set(&mut self, dst: [u8; 6], src: [u8; 6], proto: u16) {
        self.dst = dst;
        self.src = src;
        self.proto = proto.to_be_bytes();
    }
}

/// An 802.1Q / 802.1ad tag, after the Ethernet addresses.
#[repr(C)]
pub struct VlanHdr {
    pub tci: [u8; 2],
    pub proto: [u8; 2],
}

impl VlanHdr {
    #[inline(always)]
    pub fn proto(&self) -> u16 {
        be16(self.proto)
    }
}

#[repr(C)]
pub struct Ipv4Hdr {
    pub ver_ihl: u8,
    pub tos: u8,
    pub tot_len: [u8; 2],
    pub id: [u8; 2],
    pub frag_off: [u8; 2],
    pub ttl: u8,
    pub protocol: u8,
    pub check: [u8; 2],
    pub saddr: [u8; 4],
    pub daddr: [u8; 4],
}

/// IPv4 flags/fragment-offset bits that mark a fragment: MF and the 13-bit offset.
pub const IP_MF_OFFSET: u16 = 0x3fff;
pub const IP_DF: u16 = 0x4000;

impl Ipv4Hdr {
    #[inline(always)]
    pub fn version(&self) -> u8 {
        self.ver_ihl >> 4
    }

    /// Header length in bytes (IHL × 4).
    #[inline(always)]
    pub fn header_len(&self) -> usize {
        ((self.ver_ihl & 0x0f) as usize) * 4
    }

    #[inline(always)]
    pub fn tot_len(&self) -> u16 {
        be16(self.tot_len)
    }

    #[inline(always)]
    pub fn is_fragment(&self) -> bool {
        be16(self.frag_off) & IP_MF_OFFSET != 0
    }

    /// The fragment offset in bytes (0 for a whole datagram and a first fragment).
    #[inline(always)]
    pub fn fragment_offset(&self) -> u16 {
        (be16(self.frag_off) & 0x1fff) << 3
    }

    #[inline(always)]
    pub fn dont_fragment(&self) -> bool {
        be16(self.frag_off) & IP_DF != 0
    }

    #[inline(always)]
    pub fn check(&self) -> u16 {
        be16(self.check)
    }

    #[inline(always)]
    pub fn set_check(&mut self, c: u16) {
        self.check = c.to_be_bytes();
    }

    /// The header as the 20 bytes checksums are computed over.
    #[inline(always)]
    pub fn bytes(&self) -> &[u8; IPV4_HLEN] {
        // SAFETY: `Ipv4Hdr` is 20 bytes of alignment 1 (checked below).
        unsafe { &*(self as *const Self).cast() }
    }
}

#[repr(C)]
pub struct Ipv6Hdr {
    pub ver_tc_flow: [u8; 4],
    pub payload_len: [u8; 2],
    pub nexthdr: u8,
    pub hop_limit: u8,
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
}

impl Ipv6Hdr {
    #[inline(always)]
    pub fn version(&self) -> u8 {
        self.ver_tc_flow[0] >> 4
    }

    #[inline(always)]
    pub fn payload_len(&self) -> u16 {
        be16(self.payload_len)
    }
}

pub const IPV6_HOP_BY_HOP: u8 = 0;
pub const IPV6_ROUTING: u8 = 43;
pub const IPV6_FRAGMENT: u8 = 44;
pub const IPV6_ESP: u8 = 50;
pub const IPV6_AH: u8 = 51;
pub const IPV6_DST_OPTS: u8 = 60;

/// The start every IPv6 extension header shares (RFC 8200 §4): the next header, the length
/// (in 8-byte units after the first 8; AH: 4-byte units after the first 8), then data.
#[repr(C)]
pub struct Ipv6ExtHdr {
    pub nexthdr: u8,
    pub len: u8,
    /// Header-specific; in a routing header `[0]` is the routing type, `[1]` the segments
    /// left.
    pub data: [u8; 6],
}

/// The IPv6 fragment header (RFC 8200 §4.5).
#[repr(C)]
pub struct Ipv6FragHdr {
    pub nexthdr: u8,
    pub reserved: u8,
    /// Offset in 8-byte units (13 bits), two reserved bits, M (more fragments).
    pub frag_off: [u8; 2],
    pub id: [u8; 4],
}

impl Ipv6FragHdr {
    /// The fragment offset in bytes.
    #[inline(always)]
    pub fn offset(&self) -> u16 {
        be16(self.frag_off) & !7
    }

    /// More fragments follow.
    #[inline(always)]
    pub fn more(&self) -> bool {
        be16(self.frag_off) & 1 != 0
    }
}

/// IPv6 extension headers that may precede the L4 header (RFC 8200 §4, plus AH/ESP/mobility/
/// HIP/shim6).
#[inline(always)]
pub fn is_ipv6_ext(nexthdr: u8) -> bool {
    matches!(nexthdr, 0 | 43 | 44 | 50 | 51 | 60 | 135 | 139 | 140)
}

/// The first four bytes of TCP and UDP headers.
#[repr(C)]
pub struct Ports {
    pub src: [u8; 2],
    pub dst: [u8; 2],
}

#[repr(C)]
pub struct TcpHdr {
    pub sport: [u8; 2],
    pub dport: [u8; 2],
    pub seq: [u8; 4],
    pub ack_seq: [u8; 4],
    pub doff_res: u8,
    pub flags: u8,
    pub window: [u8; 2],
    pub check: [u8; 2],
    pub urg_ptr: [u8; 2],
}

impl TcpHdr {
    /// Data offset in bytes.
    #[inline(always)]
    pub fn header_len(&self) -> usize {
        ((self.doff_res >> 4) as usize) * 4
    }
}

#[repr(C)]
pub struct UdpHdr {
    pub sport: [u8; 2],
    pub dport: [u8; 2],
    pub len: [u8; 2],
    pub check: [u8; 2],
}

#[repr(C)]
pub struct IcmpHdr {
    pub kind: u8,
    pub code: u8,
    pub check: [u8; 2],
    /// Identifier and sequence, or the next-hop MTU of "fragmentation needed" / "packet too big".
    pub rest: [u8; 4],
}

/// ICMP (IPv4) types that are errors quoting the packet that caused them.
#[inline(always)]
pub fn is_icmp4_error(kind: u8) -> bool {
    matches!(kind, 3 | 11 | 12)
}

/// ICMPv6 error types (destination unreachable, packet too big, time exceeded, parameter
/// problem).
#[inline(always)]
pub fn is_icmp6_error(kind: u8) -> bool {
    matches!(kind, 1..=4)
}

pub const ETH_HLEN: usize = size_of::<EthHdr>();
pub const VLAN_HLEN: usize = size_of::<VlanHdr>();
pub const IPV4_HLEN: usize = size_of::<Ipv4Hdr>();
pub const IPV6_HLEN: usize = size_of::<Ipv6Hdr>();
pub const TCP_HLEN: usize = size_of::<TcpHdr>();
pub const UDP_HLEN: usize = size_of::<UdpHdr>();
pub const ICMP_HLEN: usize = size_of::<IcmpHdr>();
pub const IPV6_FRAG_HLEN: usize = size_of::<Ipv6FragHdr>();
/// Where each L4 protocol keeps its checksum.
pub const TCP_CHECK_OFF: usize = offset_of!(TcpHdr, check);
pub const UDP_CHECK_OFF: usize = offset_of!(UdpHdr, check);
pub const ICMP_CHECK_OFF: usize = offset_of!(IcmpHdr, check);

const _: () = assert!(ETH_HLEN == 14 && VLAN_HLEN == 4 && IPV4_HLEN == 20 && IPV6_HLEN == 40);
const _: () = assert!(TCP_HLEN == 20 && UDP_HLEN == 8 && ICMP_HLEN == 8 && IPV6_FRAG_HLEN == 8);
const _: () = assert!(TCP_CHECK_OFF == 16 && UDP_CHECK_OFF == 6 && ICMP_CHECK_OFF == 2);
const _: () = assert!(core::mem::align_of::<Ipv4Hdr>() == 1 && core::mem::align_of::<Ipv6Hdr>() == 1);

#[cfg(test)]
mod tests {
    use super::*;

    /// Views a byte buffer as a header, as the programs do over packet memory.
    fn view<T>(b: &[u8]) -> &T {
        assert!(b.len() >= size_of::<T>());
        unsafe { &*b.as_ptr().cast::<T>() }
    }

    #[test]
    fn ipv4_fields_read_in_network_order() {
        let b: [u8; 20] =
            [0x46, 0, 0x05, 0xdc, 0x12, 0x34, 0x40, 0x00, 64, 17, 0xb8, 0x61, 192, 0, 2, 1, 203, 0, 113, 9];
        let ip: &Ipv4Hdr = view(&b);
        assert_eq!((ip.version(), ip.header_len(), ip.tot_len()), (4, 24, 1500));
        assert!(ip.dont_fragment() && !ip.is_fragment());
        assert_eq!((ip.protocol, ip.check(), ip.saddr, ip.daddr), (17, 0xb861, [192, 0, 2, 1], [203, 0, 113, 9]));
        let mut frag = b;
        frag[6] = 0x20; // MF
        assert!(view::<Ipv4Hdr>(&frag).is_fragment());
        assert_eq!(view::<Ipv4Hdr>(&frag).fragment_offset(), 0);
        frag[6] = 0x00;
        frag[7] = 0x01; // offset 8
        assert!(view::<Ipv4Hdr>(&frag).is_fragment());
        assert_eq!(view::<Ipv4Hdr>(&frag).fragment_offset(), 8);
        frag[6] = 0x1f;
        frag[7] = 0xff;
        assert_eq!(view::<Ipv4Hdr>(&frag).fragment_offset(), 65528);
    }

    #[test]
    fn ipv6_and_l4_fields() {
        let mut b = [0u8; 60];
        b[0] = 0x60;
        b[4..6].copy_from_slice(&20u16.to_be_bytes());
        b[6] = 6;
        let ip: &Ipv6Hdr = view(&b);
        assert_eq!((ip.version(), ip.payload_len(), ip.nexthdr), (6, 20, 6));
        let mut t = [0u8; 20];
        t[12] = 0x80;
        t[13] = 0x12;
        let tcp: &TcpHdr = view(&t);
        assert_eq!((tcp.header_len(), tcp.flags), (32, 0x12));
    }

    #[test]
    fn ipv6_fragment_header() {
        // Next header UDP, offset 1480 bytes (185 units), M set, id 0x01020304.
        let b = [17, 0, 0x05, 0xc9, 1, 2, 3, 4];
        let f: &Ipv6FragHdr = view(&b);
        assert_eq!((f.nexthdr, f.offset(), f.more(), u32::from_be_bytes(f.id)), (17, 1480, true, 0x0102_0304));
        let first = [6, 0, 0, 1, 0, 0, 0, 9];
        let f: &Ipv6FragHdr = view(&first);
        assert_eq!((f.offset(), f.more()), (0, true));
    }

    #[test]
    fn icmp_error_types() {
        assert!(is_icmp4_error(3) && is_icmp4_error(11) && !is_icmp4_error(8) && !is_icmp4_error(0));
        assert!(is_icmp6_error(2) && !is_icmp6_error(128) && !is_icmp6_error(135));
        assert!(is_ipv6_ext(44) && is_ipv6_ext(0) && !is_ipv6_ext(6) && !is_ipv6_ext(58));
    }
}
