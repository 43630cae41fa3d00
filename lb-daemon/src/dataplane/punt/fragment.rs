//! IPv4 fragmentation of a frame the egress path cannot carry whole (DF clear), as IPVS has
//! the kernel do it (`ip_fragment`): every piece gets a copy of the frame's L2 header (VLAN tags
//! included: the program reads them as it read the original) and of the IP header, with the
//! total length, MF and offset set and the header checksum recomputed. Options are kept in the
//! first piece; later pieces keep only those with the copied flag, the others overwritten
//! with NOPs so every header has the same length (Linux's `ip_options_fragment`). A packet
//! that is itself a fragment is cut further within its own range: its offset is the base and
//! its MF stays on its last piece.

const IPV4_HLEN: usize = 20;
const IP_DF: u16 = 0x4000;
const IP_MF: u16 = 0x2000;
/// The reserved ("evil") bit, kept as it came.
const IP_RESERVED: u16 = 0x8000;
const IPOPT_END: u8 = 0;
const IPOPT_NOOP: u8 = 1;
/// Option types with this bit set are copied into every fragment (RFC 791).
const IPOPT_COPIED: u8 = 0x80;
/// Smallest MTU an IPv4 link may have (RFC 791): a 60-byte header and 8 bytes of data.
pub const MIN_MTU: u16 = 68;

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("not an IPv4 packet, or its header is cut short")]
    NotIpv4,
    #[error("total length disagrees with the header or the frame")]
    BadLength,
    #[error("DF is set")]
    DontFragment,
    #[error("already fits the MTU")]
    Fits,
    #[error("MTU {0} below {MIN_MTU}")]
    MtuTooSmall(u16),
    #[error("malformed IPv4 options")]
    BadOptions,
    #[error("fragment offset past the 13-bit field")]
    OffsetOverflow,
}

/// Splits the IPv4 packet at offset `l3` of `frame` into frames whose IP total length is at
/// most `mtu`, in datagram order (the first piece first: it carries the L4 header the program
/// decides by). Bytes after the IP total length (Ethernet padding) are not carried over.
pub fn fragment_ipv4(frame: &[u8], l3: usize, mtu: u16) -> Result<Vec<Vec<u8>>, Refused> {
    let (l2, ip) = (frame.get(..l3).ok_or(Refused::NotIpv4)?, frame.get(l3..).ok_or(Refused::NotIpv4)?);
    if ip.len() < IPV4_HLEN || ip[0] >> 4 != 4 {
        return Err(Refused::NotIpv4);
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if ihl < IPV4_HLEN || total < ihl || total > ip.len() {
        return Err(Refused::BadLength);
    }
    let field = u16::from_be_bytes([ip[6], ip[7]]);
    if field & IP_DF != 0 {
        return Err(Refused::DontFragment);
    }
    if mtu < MIN_MTU {
        return Err(Refused::MtuTooSmall(mtu));
    }
    if total <= usize::from(mtu) {
        return Err(Refused::Fits);
    }
    let first_header = &ip[..ihl];
    let later_header = later_header(first_header)?;
    let data = &ip[ihl..total];
    // Data per piece: what fits after the header, in whole 8-byte units (the offset's unit).
    // MIN_MTU leaves at least 8 bytes after the longest header.
    let step = (usize::from(mtu) - ihl) & !7;
    let base = usize::from(field & 0x1fff) * 8;
    if (base + data.len()).div_ceil(8) > 0x2000 {
        return Err(Refused::OffsetOverflow);
    }
    let pieces = data.chunks(step).enumerate().map(|(i, chunk)| {
        let last = (i + 1) * step >= data.len();
        let more = if last { field & IP_MF } else { IP_MF };
        let offset = ((base + i * step) / 8) as u16;
        let header = if i == 0 { first_header } else { &later_header };
        piece(l2, header, chunk, (field & IP_RESERVED) | more | offset)
    });
    Ok(pieces.collect())
}

/// One fragment frame: `l2`, then `header` with its length, flags/offset and checksum set,
/// then `data`.
fn piece(l2: &[u8], header: &[u8], data: &[u8], flags_offset: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(l2.len() + header.len() + data.len());
    out.extend_from_slice(l2);
    let at = out.len();
    out.extend_from_slice(header);
    out.extend_from_slice(data);
    let ip = &mut out[at..at + header.len()];
    // Bounded by the caller's MTU (a u16): fits.
    ip[2..4].copy_from_slice(&((header.len() + data.len()) as u16).to_be_bytes());
    ip[6..8].copy_from_slice(&flags_offset.to_be_bytes());
    ip[10..12].copy_from_slice(&[0, 0]);
    let sum = header_checksum(ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    out
}

/// The header of every piece but the first: options without the copied flag become NOPs.
fn later_header(header: &[u8]) -> Result<Vec<u8>, Refused> {
    let mut h = header.to_vec();
    let opts = &mut h[IPV4_HLEN..];
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            IPOPT_END => break,
            IPOPT_NOOP => i += 1,
            kind => {
                let len = usize::from(*opts.get(i + 1).ok_or(Refused::BadOptions)?);
                if len < 2 || i + len > opts.len() {
                    return Err(Refused::BadOptions);
                }
                if kind & IPOPT_COPIED == 0 {
                    opts[i..i + len].fill(IPOPT_NOOP);
                }
                i += len;
            }
        }
    }
    Ok(h)
}

/// The IPv4 header checksum (RFC 1071) of `header` with its checksum field zero.
pub fn header_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header.chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use etherparse::{
        IpNumber, Ipv4Header, Ipv4Options, NetSlice, PacketBuilder, SlicedPacket, VlanId, defrag::IpDefragPool,
    };

    use super::*;

    /// A UDP datagram 192.0.2.2:1000 → 203.0.113.10:53 with `len` bytes of counting payload.
    fn udp(len: usize, vlan: Option<u16>) -> Vec<u8> {
        let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let mut out = Vec::new();
        match vlan {
            Some(v) => b
                .single_vlan(VlanId::try_new(v).unwrap())
                .ipv4([192, 0, 2, 2], [203, 0, 113, 10], 64)
                .udp(1000, 53)
                .write(&mut out, &payload),
            None => b.ipv4([192, 0, 2, 2], [203, 0, 113, 10], 64).udp(1000, 53).write(&mut out, &payload),
        }
        .unwrap();
        // etherparse sets DF; a sender that lets routers fragment clears it.
        let l3 = if vlan.is_some() { 18 } else { 14 };
        let mut h = Ipv4Header::from_slice(&out[l3..]).unwrap().0;
        h.dont_fragment = false;
        with_header(&out, l3, h)
    }

    /// Replaces the frame's IPv4 header (at `l3`) by `h` (options and all) and fixes lengths.
    fn with_header(frame: &[u8], l3: usize, mut h: Ipv4Header) -> Vec<u8> {
        let old = Ipv4Header::from_slice(&frame[l3..]).unwrap().0;
        let data = &frame[l3 + old.header_len()..l3 + usize::from(old.total_len)];
        h.set_payload_len(data.len()).unwrap();
        h.header_checksum = h.calc_header_checksum();
        let mut out = frame[..l3].to_vec();
        out.extend_from_slice(&h.to_bytes());
        out.extend_from_slice(data);
        out
    }

    /// Parses every piece with etherparse (the oracle), checks what must hold of each, and
    /// reassembles them: the datagram's IP payload, whole.
    fn reassemble(pieces: &[Vec<u8>], mtu: u16) -> Vec<u8> {
        let mut pool = IpDefragPool::<(), ()>::new();
        let mut whole = None;
        for (i, p) in pieces.iter().enumerate() {
            let s = SlicedPacket::from_ethernet(p).unwrap_or_else(|e| panic!("piece {i}: {e:?}"));
            let Some(NetSlice::Ipv4(ip)) = &s.net else { panic!("piece {i} is not IPv4") };
            let h = ip.header().to_header();
            assert!(h.total_len <= mtu, "piece {i}: {} > {mtu}", h.total_len);
            assert_eq!(h.header_checksum, h.calc_header_checksum(), "piece {i}: header checksum");
            assert!(!h.dont_fragment, "piece {i}");
            let last = i + 1 == pieces.len();
            if !last {
                assert_eq!(ip.payload().payload.len() % 8, 0, "piece {i}: only the last may end off an 8-byte unit");
            }
            if let Some(done) = pool.process_sliced_packet(&s, (), ()).unwrap() {
                assert!(whole.is_none(), "reassembled twice");
                whole = Some(done.payload);
            }
        }
        whole.expect("the pieces do not make a whole datagram")
    }

    fn ip_payload(frame: &[u8], l3: usize) -> Vec<u8> {
        let h = Ipv4Header::from_slice(&frame[l3..]).unwrap().0;
        frame[l3 + h.header_len()..l3 + usize::from(h.total_len)].to_vec()
    }

    #[test]
    fn pieces_reassemble_to_the_datagram_at_any_mtu() {
        for (len, mtu) in [(1472 + 1, 1500), (1472, 1480), (4000, 1500), (8972, 1500), (3000, 576), (200, MIN_MTU)] {
            let f = udp(len, None);
            let pieces = fragment_ipv4(&f, 14, mtu).unwrap();
            let step = usize::from(mtu - 20) & !7;
            assert_eq!(pieces.len(), (len + 8).div_ceil(step), "{len} bytes at {mtu}");
            assert_eq!(reassemble(&pieces, mtu), ip_payload(&f, 14), "{len} bytes at {mtu}");
        }
    }

    #[test]
    fn the_tun_case_1472_bytes_into_1480() {
        // A full-size client datagram (1500-byte IP packet) towards a tunnel 20 bytes short.
        let f = udp(1472, None);
        let pieces = fragment_ipv4(&f, 14, 1480).unwrap();
        let lens: Vec<usize> = pieces.iter().map(|p| p.len() - 14).collect();
        assert_eq!(lens, [1476, 44], "1456 data bytes, then the remaining 24");
        for p in &pieces {
            assert_eq!(&p[..14], &f[..14], "the Ethernet header is copied");
        }
    }

    #[test]
    fn vlan_tags_are_copied_into_every_piece() {
        let f = udp(3000, Some(7));
        let pieces = fragment_ipv4(&f, 18, 1500).unwrap();
        assert_eq!(pieces.len(), 3);
        for p in &pieces {
            assert_eq!(&p[..18], &f[..18]);
        }
        assert_eq!(reassemble(&pieces, 1500), ip_payload(&f, 18));
    }

    #[test]
    fn a_fragment_is_cut_within_its_own_range() {
        // The datagram as its sender fragmented it (1500), each piece then cut for a 20-byte
        // shorter path: together they still make the datagram.
        let f = udp(4000, None);
        let first_cut = fragment_ipv4(&f, 14, 1500).unwrap();
        let mut all = Vec::new();
        for p in &first_cut {
            match fragment_ipv4(p, 14, 1480) {
                Ok(sub) => all.extend(sub),
                Err(Refused::Fits) => all.push(p.clone()),
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(all.len(), 5, "two full pieces cut in two, the short last one kept");
        assert_eq!(reassemble(&all, 1500), ip_payload(&f, 14));
        // The middle piece's sub-pieces keep MF; the last piece's last keeps its MF clear.
        let mf = |p: &Vec<u8>| Ipv4Header::from_slice(&p[14..]).unwrap().0.more_fragments;
        assert_eq!(all.iter().map(mf).collect::<Vec<_>>(), [true, true, true, true, false]);
    }

    #[test]
    fn only_copied_options_follow_into_later_pieces() {
        let f = udp(3000, None);
        let mut h = Ipv4Header::from_slice(&f[14..]).unwrap().0;
        // Record route (7, not copied), 11 bytes; then a copied option (type 0x94, router
        // alert), 4 bytes; then end of list.
        let opts = [7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0x94, 4, 0, 0, 0];
        h.options = Ipv4Options::try_from(&opts[..]).unwrap();
        let f = with_header(&f, 14, h);
        let pieces = fragment_ipv4(&f, 14, 1500).unwrap();
        let options = |p: &Vec<u8>| Ipv4Header::from_slice(&p[14..]).unwrap().0.options.to_vec();
        assert_eq!(options(&pieces[0]), opts, "the first piece keeps every option");
        let mut later = opts;
        later[..11].fill(IPOPT_NOOP);
        for p in &pieces[1..] {
            assert_eq!(options(p), later);
        }
        assert_eq!(reassemble(&pieces, 1500), ip_payload(&f, 14));
    }

    #[test]
    fn refuses_what_it_must_not_or_cannot_cut() {
        let f = udp(3000, None);
        let mut df = f.clone();
        df[14 + 6] |= 0x40;
        assert_eq!(fragment_ipv4(&df, 14, 1500), Err(Refused::DontFragment));
        assert_eq!(fragment_ipv4(&f, 14, 4000), Err(Refused::Fits));
        assert_eq!(fragment_ipv4(&f, 14, 60), Err(Refused::MtuTooSmall(60)));
        assert_eq!(fragment_ipv4(&f[..100], 14, 1500), Err(Refused::BadLength));
        assert_eq!(fragment_ipv4(&f, 200, 1500), Err(Refused::NotIpv4));
        assert_eq!(fragment_ipv4(&f[..20], 14, 1500), Err(Refused::NotIpv4));
        // An option whose length runs past the header.
        let mut h = Ipv4Header::from_slice(&f[14..]).unwrap().0;
        h.options = Ipv4Options::try_from(&[7, 9, 0, 0][..]).unwrap();
        assert_eq!(fragment_ipv4(&with_header(&f, 14, h), 14, 1500), Err(Refused::BadOptions));
        // A last fragment near 64 KiB whose pieces would need offsets past 13 bits.
        let mut far = f.clone();
        far[14 + 6..14 + 8].copy_from_slice(&0x1ff0u16.to_be_bytes());
        assert_eq!(fragment_ipv4(&far, 14, 1500), Err(Refused::OffsetOverflow));
        // Not UDP: any protocol is cut the same way.
        let mut other = f.clone();
        other[14 + 9] = IpNumber::GRE.0;
        assert!(fragment_ipv4(&other, 14, 1500).is_ok());
    }

    #[test]
    fn checksum_matches_etherparse() {
        let f = udp(10, None);
        let h = Ipv4Header::from_slice(&f[14..]).unwrap().0;
        let mut bytes = h.to_bytes().to_vec();
        bytes[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(header_checksum(&bytes), h.calc_header_checksum());
    }

    proptest::proptest! {
        /// Any datagram, any MTU it does not fit, any base offset: the pieces reassemble.
        #[test]
        fn any_size_any_mtu_reassembles(len in 1usize..9000, mtu in MIN_MTU..9000u16) {
            let f = udp(len, None);
            match fragment_ipv4(&f, 14, mtu) {
                Err(Refused::Fits) => proptest::prop_assert!(len + 28 <= usize::from(mtu)),
                Err(e) => proptest::prop_assert!(false, "{e}"),
                Ok(pieces) => proptest::prop_assert_eq!(reassemble(&pieces, mtu), ip_payload(&f, 14)),
            }
        }

        /// Whatever the bytes, fragmenting never panics (frames are untrusted).
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200), mtu in 0u16..200) {
            let _ = fragment_ipv4(&bytes, 14, mtu);
        }
    }
}
