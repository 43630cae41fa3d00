//! Test frames built with etherparse (checksums and lengths right unless a test breaks them
//! on purpose with [`patch`]).

use std::net::{Ipv4Addr, Ipv6Addr};

use etherparse::{Ethernet2Header, PacketBuilder, PacketBuilderStep, VlanId};

pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const LB_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

/// Real server `i`'s MAC (its address is `addrs::backend4(i)`/`backend6(i)`).
pub const fn real_mac(i: usize) -> [u8; 6] {
    [0x02, 0, 0, 0, 0, 0x11 + i as u8]
}

/// `aa:bb:cc:dd:ee:ff`, as `ip` takes it.
pub fn mac_text(mac: [u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// `mac_text`'s inverse, for a MAC as `ip` prints it; panics on anything else.
pub fn mac_from_text(text: &str) -> [u8; 6] {
    let b: Vec<u8> = text.split(':').map(|h| u8::from_str_radix(h, 16).expect("a hex byte")).collect();
    b.try_into().expect("six bytes")
}

/// L2 framing of a test frame.
#[derive(Clone, Copy, Debug)]
pub enum L2 {
    Plain,
    Vlan(u16),
    QinQ(u16, u16),
}

/// L4 of a test frame.
#[derive(Clone, Copy, Debug)]
pub enum L4 {
    Udp {
        sport: u16,
        dport: u16,
    },
    TcpSyn {
        sport: u16,
        dport: u16,
    },
    /// The server's answer to a SYN (SYN and ACK).
    TcpSynAck {
        sport: u16,
        dport: u16,
    },
    /// An established-flow segment (ACK, no SYN).
    TcpAck {
        sport: u16,
        dport: u16,
    },
    /// FIN with ACK: the sender closes.
    TcpFin {
        sport: u16,
        dport: u16,
    },
    /// ICMP (or ICMPv6) echo request.
    Echo,
}

fn eth() -> PacketBuilderStep<Ethernet2Header> {
    PacketBuilder::ethernet2(CLIENT_MAC, LB_MAC)
}

fn vid(v: u16) -> VlanId {
    VlanId::try_new(v).expect("VLAN id below 4096")
}

macro_rules! finish {
    ($ip:expr, $l4:expr, $payload:expr) => {{
        let mut out = Vec::new();
        match $l4 {
            L4::Udp { sport, dport } => $ip.udp(sport, dport).write(&mut out, $payload),
            L4::TcpSyn { sport, dport } => $ip.tcp(sport, dport, 1, 64240).syn().write(&mut out, $payload),
            L4::TcpSynAck { sport, dport } => $ip.tcp(sport, dport, 1, 64240).syn().ack(2).write(&mut out, $payload),
            L4::TcpAck { sport, dport } => $ip.tcp(sport, dport, 2, 64240).ack(1).write(&mut out, $payload),
            L4::TcpFin { sport, dport } => $ip.tcp(sport, dport, 2, 64240).ack(1).fin().write(&mut out, $payload),
            L4::Echo => unreachable!("handled per family"),
        }
        .expect("serialising a test frame");
        out
    }};
}

/// An IPv4 frame from `src` to `dst`.
pub fn v4(l2: L2, src: Ipv4Addr, dst: Ipv4Addr, l4: L4, payload: &[u8]) -> Vec<u8> {
    let base = eth();
    let (s, d) = (src.octets(), dst.octets());
    let mut out = Vec::new();
    macro_rules! go {
        ($step:expr) => {{
            let ip = $step.ipv4(s, d, 64);
            match l4 {
                L4::Echo => ip.icmpv4_echo_request(7, 1).write(&mut out, payload).expect("serialising"),
                _ => out = finish!(ip, l4, payload),
            }
        }};
    }
    match l2 {
        L2::Plain => go!(base),
        L2::Vlan(v) => go!(base.single_vlan(vid(v))),
        L2::QinQ(o, i) => go!(base.double_vlan(vid(o), vid(i))),
    }
    out
}

/// An IPv6 frame from `src` to `dst`.
pub fn v6(l2: L2, src: Ipv6Addr, dst: Ipv6Addr, l4: L4, payload: &[u8]) -> Vec<u8> {
    let base = eth();
    let (s, d) = (src.octets(), dst.octets());
    let mut out = Vec::new();
    macro_rules! go {
        ($step:expr) => {{
            let ip = $step.ipv6(s, d, 64);
            match l4 {
                L4::Echo => ip.icmpv6_echo_request(7, 1).write(&mut out, payload).expect("serialising"),
                _ => out = finish!(ip, l4, payload),
            }
        }};
    }
    match l2 {
        L2::Plain => go!(base),
        L2::Vlan(v) => go!(base.single_vlan(vid(v))),
        L2::QinQ(o, i) => go!(base.double_vlan(vid(o), vid(i))),
    }
    out
}

/// Returns `frame` with `bytes` written at `at` (for malformed-input cases).
pub fn patch(mut frame: Vec<u8>, at: usize, bytes: &[u8]) -> Vec<u8> {
    frame[at..at + bytes.len()].copy_from_slice(bytes);
    frame
}

/// Returns `frame` cut to `len` bytes.
pub fn truncate(mut frame: Vec<u8>, len: usize) -> Vec<u8> {
    frame.truncate(len);
    frame
}

/// Recomputes the IPv4 header checksum of a plain (untagged) frame after a patch, so a
/// case tests the field it patched and not the checksum.
pub fn fix_ipv4_csum(mut frame: Vec<u8>) -> Vec<u8> {
    let ihl = ((frame[14] & 0x0f) as usize) * 4;
    let end = (14 + ihl).min(frame.len());
    frame[24] = 0;
    frame[25] = 0;
    let mut sum: u32 = 0;
    for c in frame[14..end].chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let csum = !(sum as u16);
    frame[24..26].copy_from_slice(&csum.to_be_bytes());
    frame
}

/// Returns `frame` with its Ethernet source and destination replaced.
pub fn with_macs(mut frame: Vec<u8>, src: [u8; 6], dst: [u8; 6]) -> Vec<u8> {
    frame[0..6].copy_from_slice(&dst);
    frame[6..12].copy_from_slice(&src);
    frame
}

/// An IPIP (IPv4 in IPv4) frame around the IP packet of `inner` (an untagged frame), as the
/// load balancer sends TUN traffic: outer TTL 64, DF set, identification 0.
pub fn ipip(inner: &[u8], src: Ipv4Addr, dst: Ipv4Addr, src_mac: [u8; 6], dst_mac: [u8; 6]) -> Vec<u8> {
    let ip = &inner[14..];
    let mut h = etherparse::Ipv4Header::new(ip.len() as u16, 64, etherparse::IpNumber(4), src.octets(), dst.octets())
        .expect("outer header");
    h.dont_fragment = true;
    h.header_checksum = h.calc_header_checksum();
    let mut out = Vec::new();
    out.extend_from_slice(&dst_mac);
    out.extend_from_slice(&src_mac);
    out.extend_from_slice(&[0x08, 0x00]);
    out.extend_from_slice(&h.to_bytes());
    out.extend_from_slice(ip);
    out
}

/// An IPv6-in-IPv6 frame around the IP packet of `inner` (hop limit 64).
pub fn ip6ip6(inner: &[u8], src: Ipv6Addr, dst: Ipv6Addr, src_mac: [u8; 6], dst_mac: [u8; 6]) -> Vec<u8> {
    let ip = &inner[14..];
    let h = etherparse::Ipv6Header {
        traffic_class: 0,
        flow_label: Default::default(),
        payload_length: ip.len() as u16,
        next_header: etherparse::IpNumber(41),
        hop_limit: 64,
        source: src.octets(),
        destination: dst.octets(),
    };
    let mut out = Vec::new();
    out.extend_from_slice(&dst_mac);
    out.extend_from_slice(&src_mac);
    out.extend_from_slice(&[0x86, 0xdd]);
    out.extend_from_slice(&h.to_bytes());
    out.extend_from_slice(ip);
    out
}

/// An ICMP error from `router` to `to` quoting the first bytes (IP header + 8) of `quoted`,
/// an untagged frame: "fragmentation needed" (IPv4) or "packet too big" (IPv6), MTU 1400.
pub fn icmp_too_big(router: std::net::IpAddr, to: std::net::IpAddr, quoted: &[u8]) -> Vec<u8> {
    let ip = &quoted[14..];
    let hlen = if ip[0] >> 4 == 4 { 20 } else { 40 };
    let quote = &ip[..hlen + 8];
    let mut out = Vec::new();
    match (router, to) {
        (std::net::IpAddr::V4(r), std::net::IpAddr::V4(t)) => PacketBuilder::ethernet2(CLIENT_MAC, LB_MAC)
            .ipv4(r.octets(), t.octets(), 64)
            .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
                etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1400 },
            ))
            .write(&mut out, quote),
        (std::net::IpAddr::V6(r), std::net::IpAddr::V6(t)) => PacketBuilder::ethernet2(CLIENT_MAC, LB_MAC)
            .ipv6(r.octets(), t.octets(), 64)
            .icmpv6(etherparse::Icmpv6Type::PacketTooBig { mtu: 1400 })
            .write(&mut out, quote),
        _ => panic!("mixed address families"),
    }
    .expect("serialising an ICMP error");
    out
}

/// Offsets of an untagged frame's IP header and, for IPv4 without options and IPv6 without
/// extension headers, its L4 header and protocol.
fn l4_of(frame: &[u8]) -> (usize, u8, bool) {
    let v6 = frame[12..14] == [0x86, 0xdd];
    if v6 { (14 + 40, frame[14 + 6], true) } else { (14 + ((frame[14] & 0x0f) as usize) * 4, frame[14 + 9], false) }
}

/// `frame` (untagged TCP or UDP) as a sender that leaves the checksum to offload hands it
/// to a veth: the L4 checksum field holds only the folded pseudo-header sum (the kernel's
/// `CHECKSUM_PARTIAL`).
pub fn with_partial_l4_csum(mut frame: Vec<u8>) -> Vec<u8> {
    let (l4, proto, v6) = l4_of(&frame);
    let (src, dst): (&[u8], &[u8]) =
        if v6 { (&frame[22..38], &frame[38..54]) } else { (&frame[26..30], &frame[30..34]) };
    let mut sum: u32 = src.chunks(2).chain(dst.chunks(2)).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum();
    let len = (frame.len() - l4) as u32;
    sum += u32::from(proto) + (len >> 16) + (len & 0xffff);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let at = l4 + if proto == 6 { 16 } else { 6 };
    frame[at..at + 2].copy_from_slice(&(sum as u16).to_be_bytes());
    frame
}

/// An untagged IPv4 frame's payload split into fragments of `piece` bytes (a multiple of 8)
/// with identification `id`, as a sender's kernel fragments it.
pub fn fragment_v4(frame: &[u8], piece: usize, id: u16) -> Vec<Vec<u8>> {
    assert!(piece.is_multiple_of(8) && frame[14] == 0x45);
    let payload = &frame[34..];
    payload
        .chunks(piece)
        .enumerate()
        .map(|(i, chunk)| {
            let mut f = frame[..34].to_vec();
            f.extend_from_slice(chunk);
            f[16..18].copy_from_slice(&((20 + chunk.len()) as u16).to_be_bytes());
            f[18..20].copy_from_slice(&id.to_be_bytes());
            let more = (i + 1) * piece < payload.len();
            let flags_off = ((i * piece / 8) as u16) | if more { 0x2000 } else { 0 };
            f[20..22].copy_from_slice(&flags_off.to_be_bytes());
            fix_ipv4_csum(f)
        })
        .collect()
}

/// An untagged IPv6 frame's payload split into fragments of `piece` bytes (a multiple of 8),
/// each with a fragment header of identification `id`.
pub fn fragment_v6(frame: &[u8], piece: usize, id: u32) -> Vec<Vec<u8>> {
    assert!(piece.is_multiple_of(8));
    let next = frame[14 + 6];
    let payload = &frame[54..];
    payload
        .chunks(piece)
        .enumerate()
        .map(|(i, chunk)| {
            let mut f = frame[..54].to_vec();
            f[14 + 6] = 44;
            f[18..20].copy_from_slice(&((8 + chunk.len()) as u16).to_be_bytes());
            let more = (i + 1) * piece < payload.len();
            let off = ((i * piece) as u16) | u16::from(more);
            f.extend_from_slice(&[next, 0]);
            f.extend_from_slice(&off.to_be_bytes());
            f.extend_from_slice(&id.to_be_bytes());
            f.extend_from_slice(chunk);
            f
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fragmenters' output reassembles (by etherparse's own defragmenter) into the
    /// original datagram.
    #[test]
    fn fragments_reassemble_to_the_datagram() {
        use etherparse::{SlicedPacket, defrag::IpDefragPool};
        let payload: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        for v6 in [false, true] {
            let whole = if v6 {
                super::v6(
                    L2::Plain,
                    "2001:db8::1".parse().unwrap(),
                    "2001:db8::2".parse().unwrap(),
                    L4::Udp { sport: 1, dport: 2 },
                    &payload,
                )
            } else {
                super::v4(
                    L2::Plain,
                    Ipv4Addr::new(192, 0, 2, 1),
                    Ipv4Addr::new(192, 0, 2, 2),
                    L4::Udp { sport: 1, dport: 2 },
                    &payload,
                )
            };
            let frags = if v6 { fragment_v6(&whole, 1232, 9) } else { fragment_v4(&whole, 1480, 9) };
            assert_eq!(frags.len(), 3);
            let mut pool: IpDefragPool<(), ()> = IpDefragPool::new();
            let mut done = None;
            for f in frags.iter().rev() {
                let s = SlicedPacket::from_ethernet(f).unwrap();
                if let Some(r) = pool.process_sliced_packet(&s, (), ()).unwrap() {
                    done = Some(r.payload);
                }
            }
            let l4 = if v6 { 54 } else { 34 };
            assert_eq!(done.as_deref(), Some(&whole[l4..]), "v6: {v6}");
        }
    }
}
