//! Reading what the data plane hands over through `lb_punt`: the record's header, then where
//! the frame's IP header is and which datagram (and which fragment of it) the frame carries.
//! Records are untrusted input (the frame is whatever arrived on the wire): anything
//! inconsistent is a `Malformed` error, which the caller counts and drops.

use core::mem::offset_of;

use lb_common::{
    FragKey, PuntRecord,
    consts::{FAMILY_V4, FAMILY_V6, MAX_VLAN_DEPTH, PUNT_MAX},
};

const ETH_HLEN: usize = 14;
const VLAN_HLEN: usize = 4;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const IPV4_HLEN: usize = 20;
const IPV6_HLEN: usize = 40;
const IPV6_FRAGMENT: u8 = 44;
/// IPv6 extension headers walked before the fragment header at most (as `lb_xdp` does).
const MAX_IPV6_EXT: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("record of {0} bytes, shorter than a PuntRecord")]
    ShortRecord(usize),
    #[error("frame length {0} outside 1..={PUNT_MAX}")]
    FrameLength(u32),
    #[error("unknown record kind {0}")]
    Kind(u8),
    #[error("frame ends inside its Ethernet or VLAN header")]
    ShortL2,
    #[error("ethertype {0:#06x} is not IPv4 or IPv6")]
    NotIp(u16),
    #[error("IP header truncated or inconsistent")]
    BadIp,
    #[error("an early fragment that is not a later fragment")]
    NotLaterFragment,
}

/// One record: the frame, the interface it arrived on, why it was handed over.
#[derive(Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub ifindex: u32,
    /// `PUNT_EARLY_FRAGMENT` or `PUNT_FRAGMENT` (checked by the caller).
    pub kind: u8,
    /// `PUNT_FRAGMENT`: the IP length the fragments must fit.
    pub mtu: u16,
    pub frame: &'a [u8],
}

/// Splits a ring record (a `PuntRecord` as the program wrote it: native byte order) into its
/// fields, without copying the frame.
pub fn parse_record(bytes: &[u8]) -> Result<Record<'_>, Malformed> {
    let frame_at = offset_of!(PuntRecord, frame);
    if bytes.len() < frame_at {
        return Err(Malformed::ShortRecord(bytes.len()));
    }
    let u32_at = |at: usize| u32::from_ne_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let len = u32_at(offset_of!(PuntRecord, len));
    let frame = bytes.get(frame_at..).unwrap_or_default();
    if len == 0 || len as usize > PUNT_MAX || len as usize > frame.len() {
        return Err(Malformed::FrameLength(len));
    }
    let mtu_at = offset_of!(PuntRecord, mtu);
    Ok(Record {
        ifindex: u32_at(offset_of!(PuntRecord, ifindex)),
        kind: bytes[offset_of!(PuntRecord, kind)],
        mtu: u16::from_ne_bytes([bytes[mtu_at], bytes[mtu_at + 1]]),
        frame: &frame[..len as usize],
    })
}

/// Where a fragment sits in its datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fragment {
    /// Offset of its data in the datagram, in bytes (a multiple of 8).
    pub offset: u16,
    /// More fragments follow.
    pub more: bool,
}

/// A frame's IP packet as far as the daemon needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Located {
    /// Offset of the IP header in the frame (after Ethernet and VLAN tags).
    pub l3: usize,
    pub family: u8,
    /// The datagram, keyed exactly as `lb_xdp` keys `lb_frags` and `lb_frag_giveup`.
    pub key: FragKey,
    /// `None`: a whole datagram.
    pub fragment: Option<Fragment>,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Finds the IP header behind Ethernet and up to `MAX_VLAN_DEPTH` tags, and reads the
/// datagram's key and fragment position (walking IPv6 extension headers to the fragment
/// header as `lb_xdp` does).
pub fn locate(frame: &[u8]) -> Result<Located, Malformed> {
    let mut proto = be16(frame, 12).ok_or(Malformed::ShortL2)?;
    let mut l3 = ETH_HLEN;
    for _ in 0..MAX_VLAN_DEPTH {
        if proto != ETH_P_8021Q && proto != ETH_P_8021AD {
            break;
        }
        proto = be16(frame, l3 + 2).ok_or(Malformed::ShortL2)?;
        l3 += VLAN_HLEN;
    }
    let ip = frame.get(l3..).ok_or(Malformed::ShortL2)?;
    match proto {
        ETH_P_IP => locate_v4(ip).map(|(key, fragment)| Located { l3, family: FAMILY_V4, key, fragment }),
        ETH_P_IPV6 => locate_v6(ip).map(|(key, fragment)| Located { l3, family: FAMILY_V6, key, fragment }),
        other => Err(Malformed::NotIp(other)),
    }
}

fn locate_v4(ip: &[u8]) -> Result<(FragKey, Option<Fragment>), Malformed> {
    if ip.len() < IPV4_HLEN || ip[0] >> 4 != 4 {
        return Err(Malformed::BadIp);
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(be16(ip, 2).ok_or(Malformed::BadIp)?);
    if ihl < IPV4_HLEN || total < ihl || total > ip.len() {
        return Err(Malformed::BadIp);
    }
    let mut key = FragKey { proto: ip[9], family: FAMILY_V4, ..FragKey::default() };
    key.src[..4].copy_from_slice(&ip[12..16]);
    key.dst[..4].copy_from_slice(&ip[16..20]);
    key.id = u32::from(be16(ip, 4).ok_or(Malformed::BadIp)?);
    let flags = be16(ip, 6).ok_or(Malformed::BadIp)?;
    let (offset, more) = ((flags & 0x1fff) << 3, flags & 0x2000 != 0);
    let fragment = (offset != 0 || more).then_some(Fragment { offset, more });
    Ok((key, fragment))
}

fn locate_v6(ip: &[u8]) -> Result<(FragKey, Option<Fragment>), Malformed> {
    if ip.len() < IPV6_HLEN || ip[0] >> 4 != 6 {
        return Err(Malformed::BadIp);
    }
    let payload = usize::from(be16(ip, 4).ok_or(Malformed::BadIp)?);
    if IPV6_HLEN + payload > ip.len() {
        return Err(Malformed::BadIp);
    }
    let mut key = FragKey { family: FAMILY_V6, ..FragKey::default() };
    key.src.copy_from_slice(&ip[8..24]);
    key.dst.copy_from_slice(&ip[24..40]);
    let (mut next, mut at) = (ip[6], IPV6_HLEN);
    for _ in 0..MAX_IPV6_EXT {
        let len = match next {
            IPV6_FRAGMENT => {
                let h = ip.get(at..at + 8).ok_or(Malformed::BadIp)?;
                key.proto = h[0];
                key.id = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
                let field = u16::from_be_bytes([h[2], h[3]]);
                return Ok((key, Some(Fragment { offset: field & !7, more: field & 1 != 0 })));
            }
            // Hop-by-hop, routing, destination options: (length + 1) × 8 bytes.
            0 | 43 | 60 => (usize::from(*ip.get(at + 1).ok_or(Malformed::BadIp)?) + 1) * 8,
            // AH: (length + 2) × 4 bytes.
            51 => (usize::from(*ip.get(at + 1).ok_or(Malformed::BadIp)?) + 2) * 4,
            _ => break,
        };
        next = *ip.get(at).ok_or(Malformed::BadIp)?;
        at += len;
    }
    key.proto = next;
    Ok((key, None))
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use etherparse::{IpFragOffset, Ipv6FragmentHeader, PacketBuilder, VlanId};
    use lb_common::consts::{IPPROTO_UDP, PUNT_EARLY_FRAGMENT};

    use super::*;

    fn record(ifindex: u32, kind: u8, mtu: u16, frame: &[u8]) -> Vec<u8> {
        let mut r = PuntRecord { ifindex, len: frame.len() as u32, kind, pad8: 0, mtu, pad32: 0, frame: [0; PUNT_MAX] };
        r.frame[..frame.len()].copy_from_slice(frame);
        bytemuck::bytes_of(&r).to_vec()
    }

    #[test]
    fn reads_the_record_the_program_writes() {
        let bytes = record(7, PUNT_EARLY_FRAGMENT, 1480, &[1, 2, 3]);
        let r = parse_record(&bytes).unwrap();
        assert_eq!(r, Record { ifindex: 7, kind: PUNT_EARLY_FRAGMENT, mtu: 1480, frame: &[1, 2, 3] });
    }

    #[test]
    fn refuses_records_that_do_not_add_up() {
        assert_eq!(parse_record(&[0; 8]), Err(Malformed::ShortRecord(8)));
        let mut bytes = record(1, 1, 0, &[1]);
        bytes[4..8].copy_from_slice(&0u32.to_ne_bytes());
        assert_eq!(parse_record(&bytes), Err(Malformed::FrameLength(0)));
        bytes[4..8].copy_from_slice(&(PUNT_MAX as u32 + 1).to_ne_bytes());
        assert_eq!(parse_record(&bytes), Err(Malformed::FrameLength(PUNT_MAX as u32 + 1)));
        // A ring record cut short: the length field points past its end.
        let short = &record(1, 1, 0, &[0; 64])[..40];
        assert_eq!(parse_record(short), Err(Malformed::FrameLength(64)));
    }

    fn udp4(vlan: bool, payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([2; 6], [4; 6]);
        let (s, d) = ([192, 0, 2, 2], [203, 0, 113, 10]);
        let mut out = Vec::new();
        if vlan {
            b.single_vlan(VlanId::try_new(5).unwrap()).ipv4(s, d, 64).udp(1, 2).write(&mut out, payload).unwrap();
        } else {
            b.ipv4(s, d, 64).udp(1, 2).write(&mut out, payload).unwrap();
        }
        out
    }

    #[test]
    fn keys_an_ipv4_fragment_as_the_program_does() {
        for vlan in [false, true] {
            let mut f = udp4(vlan, &[0; 32]);
            let l3 = if vlan { 18 } else { 14 };
            // Identification 0x1234, MF clear, offset 185 × 8.
            f[l3 + 4..l3 + 8].copy_from_slice(&[0x12, 0x34, 0x00, 185]);
            let got = locate(&f).unwrap();
            assert_eq!((got.l3, got.family), (l3, FAMILY_V4));
            assert_eq!(got.fragment, Some(Fragment { offset: 1480, more: false }));
            let mut want = FragKey { id: 0x1234, proto: IPPROTO_UDP, family: FAMILY_V4, ..Default::default() };
            want.src[..4].copy_from_slice(&Ipv4Addr::new(192, 0, 2, 2).octets());
            want.dst[..4].copy_from_slice(&Ipv4Addr::new(203, 0, 113, 10).octets());
            assert_eq!(got.key, want);
        }
        let whole = udp4(false, &[0; 8]);
        assert_eq!(locate(&whole).unwrap().fragment, None);
    }

    #[test]
    fn keys_an_ipv6_fragment_by_its_fragment_header() {
        let (s, d) =
            (Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 2), Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 0x10));
        // IPv6 + fragment header (offset 1448, MF set, id 0xdeadbeef) + 16 bytes of UDP data.
        let frag = Ipv6FragmentHeader::new(
            etherparse::IpNumber::UDP,
            IpFragOffset::try_new(1448 / 8).unwrap(),
            true,
            0xdead_beef,
        );
        let mut ip = etherparse::Ipv6Header {
            payload_length: 8 + 16,
            next_header: etherparse::IpNumber::IPV6_FRAGMENTATION_HEADER,
            hop_limit: 64,
            source: s.octets(),
            destination: d.octets(),
            ..Default::default()
        }
        .to_bytes()
        .to_vec();
        ip.extend_from_slice(&frag.to_bytes());
        ip.extend_from_slice(&[0xab; 16]);
        let mut f = vec![2, 2, 2, 2, 2, 2, 4, 4, 4, 4, 4, 4, 0x86, 0xdd];
        f.extend_from_slice(&ip);
        let got = locate(&f).unwrap();
        assert_eq!(got.fragment, Some(Fragment { offset: 1448, more: true }));
        assert_eq!((got.key.id, got.key.proto, got.key.family), (0xdead_beef, IPPROTO_UDP, FAMILY_V6));
        assert_eq!((got.key.src, got.key.dst), (s.octets(), d.octets()));
        // Cut inside the fragment header: refused, not read past the end.
        let cut = &f[..14 + 40 + 4];
        assert_eq!(locate(cut), Err(Malformed::BadIp));
    }

    #[test]
    fn refuses_what_is_not_ip_or_is_cut_short() {
        assert_eq!(locate(&[0; 10]), Err(Malformed::ShortL2));
        let mut arp = udp4(false, &[]);
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert_eq!(locate(&arp), Err(Malformed::NotIp(0x0806)));
        let f = udp4(false, &[0; 16]);
        assert_eq!(locate(&f[..30]), Err(Malformed::BadIp));
        let mut long = f.clone();
        long[16..18].copy_from_slice(&2000u16.to_be_bytes());
        assert_eq!(locate(&long), Err(Malformed::BadIp), "total length past the frame");
    }

    proptest::proptest! {
        /// Whatever the bytes, parsing never panics (frames are untrusted).
        #[test]
        fn never_panics_on_any_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = locate(&bytes);
            let _ = parse_record(&bytes);
        }
    }
}
