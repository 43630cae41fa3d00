//! Packet fixtures for lb_xdp's parser: every branch, well-formed and malformed, with the
//! exact verdict, the output frame and the one reason counter that must move.
//!
//! `BPF_PROG_TEST_RUN` refuses XDP input shorter than an Ethernet header (EINVAL), so the
//! shortest malformed case here is a 14-byte frame announcing a VLAN tag.

use lb_common::{
    ServiceKey,
    consts::{IPPROTO_TCP, IPPROTO_UDP},
};
use lb_tests::{
    fixture::{Case, Fixture, Output, XDP_DROP, XDP_PASS},
    packets::{self, L2, L4, fix_ipv4_csum, patch, truncate, v4, v6},
    prelude::*,
};

const TCP80: L4 = L4::TcpSyn { sport: 40000, dport: 80 };
const UDP53: L4 = L4::Udp { sport: 40000, dport: 53 };

/// Offsets in an untagged IPv4 frame.
const IP: usize = 14;
const L4OFF: usize = IP + 20;

fn fixture() -> Fixture {
    require_root();
    let mut f = Fixture::load().expect("load lb-ebpf (run `cargo xtask build-ebpf`)");
    f.add_service(ServiceKey::v4(VIP4.octets(), 80, IPPROTO_TCP), 0).unwrap();
    f.add_service(ServiceKey::v4(VIP4.octets(), 53, IPPROTO_UDP), 1).unwrap();
    f.add_service(ServiceKey::v6(VIP6.octets(), 80, IPPROTO_TCP), 2).unwrap();
    f.add_service(ServiceKey::v6(VIP6.octets(), 53, IPPROTO_UDP), 3).unwrap();
    f
}

fn pass(name: &'static str, input: Vec<u8>, reason: &'static str) -> Case {
    Case { name, input, action: XDP_PASS, output: Output::Unchanged, reason, service: None, also: &[] }
}

/// A frame for a service: these services have no real server, so the verdict is a drop
/// counted against the service (forwarding has its own fixtures).
fn hit(name: &'static str, input: Vec<u8>, service: u32) -> Case {
    Case { service: Some(service), action: XDP_DROP, ..pass(name, input, "reason_no_real") }
}

fn drop(name: &'static str, input: Vec<u8>, reason: &'static str) -> Case {
    Case { action: XDP_DROP, ..pass(name, input, reason) }
}

fn tcp4() -> Vec<u8> {
    v4(L2::Plain, CLIENT4, VIP4, TCP80, b"")
}

fn udp4() -> Vec<u8> {
    v4(L2::Plain, CLIENT4, VIP4, UDP53, b"hello")
}

fn udp6() -> Vec<u8> {
    v6(L2::Plain, CLIENT6, VIP6, UDP53, b"hello")
}

/// Sets the IPv4 total length and fixes the header checksum.
fn tot_len(frame: Vec<u8>, len: u16) -> Vec<u8> {
    fix_ipv4_csum(patch(frame, IP + 2, &len.to_be_bytes()))
}

/// An ARP request (ethertype 0x0806).
fn arp() -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&packets::CLIENT_MAC);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&packets::CLIENT_MAC);
    f.extend_from_slice(&CLIENT4.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&VIP4.octets());
    f
}

/// `udp4()` with three 802.1Q tags: one more than the parser walks.
fn triple_vlan() -> Vec<u8> {
    let inner = udp4();
    let mut f = inner[..12].to_vec();
    for vid in [10u8, 20, 30] {
        f.extend_from_slice(&[0x81, 0x00, 0, vid]);
    }
    f.extend_from_slice(&inner[12..]);
    f
}

/// `udp4()` with 4 bytes of IPv4 options (NOP, NOP, NOP, EOL): IHL 6.
fn ipv4_with_options() -> Vec<u8> {
    let base = udp4();
    let mut f = base[..L4OFF].to_vec();
    f.extend_from_slice(&[1, 1, 1, 0]);
    f.extend_from_slice(&base[L4OFF..]);
    f[IP] = 0x46;
    let len = u16::from_be_bytes([f[IP + 2], f[IP + 3]]) + 4;
    tot_len(f, len)
}

/// `udp6()` with extension header bytes `ext` (the first byte naming UDP, 17) inserted after
/// the IPv6 header, whose next header becomes `kind`.
fn udp6_with_ext(kind: u8, ext: &[u8]) -> Vec<u8> {
    let base = udp6();
    let mut f = base[..IP + 40].to_vec();
    f.extend_from_slice(ext);
    f.extend_from_slice(&base[IP + 40..]);
    f[IP + 6] = kind;
    let len = u16::from_be_bytes([f[IP + 4], f[IP + 5]]) + ext.len() as u16;
    f[IP + 4..IP + 6].copy_from_slice(&len.to_be_bytes());
    f
}

#[test]
fn well_formed_frames() {
    let f = fixture();
    f.check_all(&[
        hit("tcp4 SYN to a TCP service", tcp4(), 0),
        hit("udp4 to a UDP service", udp4(), 1),
        hit("tcp6 SYN to a TCP service", v6(L2::Plain, CLIENT6, VIP6, TCP80, b""), 2),
        hit("udp6 to a UDP service", udp6(), 3),
        hit("802.1Q tagged tcp4", v4(L2::Vlan(100), CLIENT4, VIP4, TCP80, b""), 0),
        hit("QinQ tagged udp6", v6(L2::QinQ(100, 200), CLIENT6, VIP6, UDP53, b"x"), 3),
        hit(
            "Ethernet padding after the IP packet",
            {
                let mut f = udp4();
                f.extend_from_slice(&[0; 16]);
                f
            },
            1,
        ),
        pass(
            "udp4 to the VIP on a port without service",
            v4(L2::Plain, CLIENT4, VIP4, L4::Udp { sport: 1, dport: 9999 }, b""),
            "reason_no_service",
        ),
        pass(
            "UDP to a TCP-only service port",
            v4(L2::Plain, CLIENT4, VIP4, L4::Udp { sport: 1, dport: 80 }, b""),
            "reason_no_service",
        ),
        pass("tcp4 to an address that is no VIP", v4(L2::Plain, CLIENT4, NO_SERVICE4, TCP80, b""), "reason_no_service"),
        pass("tcp6 to an address that is no VIP", v6(L2::Plain, CLIENT6, CLIENT6, TCP80, b""), "reason_no_service"),
        pass("ARP", arp(), "reason_not_ip"),
        pass("ICMP echo to the VIP", v4(L2::Plain, CLIENT4, VIP4, L4::Echo, b"ping"), "reason_icmp"),
        pass("ICMPv6 echo to the VIP", v6(L2::Plain, CLIENT6, VIP6, L4::Echo, b"ping"), "reason_icmp"),
        pass("GRE (protocol 47)", fix_ipv4_csum(patch(udp4(), IP + 9, &[47])), "reason_other_proto"),
        // Fragments, options and extension headers reach their service like any packet.
        hit("first IPv4 fragment (MF)", fix_ipv4_csum(patch(udp4(), IP + 6, &[0x20, 0x00])), 1),
        // A later fragment whose first has not been seen is held for the daemon to replay.
        drop(
            "later IPv4 fragment (offset 1480) before its first",
            fix_ipv4_csum(patch(udp4(), IP + 6, &[0x00, 0xb9])),
            "reason_frag_held",
        ),
        hit("IPv4 options", ipv4_with_options(), 1),
        hit("IPv6 hop-by-hop header", udp6_with_ext(0, &[17, 0, 1, 4, 0, 0, 0, 0]), 3),
        hit("IPv6 destination options", udp6_with_ext(60, &[17, 0, 1, 4, 0, 0, 0, 0]), 3),
        hit("first IPv6 fragment (M)", udp6_with_ext(44, &[17, 0, 0, 1, 0, 0, 0, 7]), 3),
        drop(
            "later IPv6 fragment before its first",
            udp6_with_ext(44, &[17, 0, 0x05, 0xc8, 0, 0, 0, 8]),
            "reason_frag_held",
        ),
        pass(
            "IPv6 routing header with segments left",
            udp6_with_ext(43, &[17, 0, 4, 1, 0, 0, 0, 0]),
            "reason_ip_options",
        ),
        pass("IPv6 ESP", udp6_with_ext(50, &[0, 0, 0, 1, 0, 0, 0, 1]), "reason_ip_options"),
        pass("three VLAN tags", triple_vlan(), "reason_deep_vlan"),
    ])
    .unwrap();
}

#[test]
fn malformed_frames_are_dropped_with_a_reason() {
    let f = fixture();
    let tcp = tcp4();
    let udp = udp4();
    f.check_all(&[
        drop(
            "VLAN tag cut off",
            {
                let mut f = tcp4()[..14].to_vec();
                f[12..14].copy_from_slice(&[0x81, 0x00]);
                f
            },
            "reason_bad_eth",
        ),
        drop("IPv4 header cut off", truncate(tcp.clone(), IP + 10), "reason_bad_ipv4"),
        drop("IPv4 version field says 5", fix_ipv4_csum(patch(tcp.clone(), IP, &[0x55])), "reason_bad_ipv4"),
        drop("IHL 4 (< 5)", fix_ipv4_csum(patch(tcp.clone(), IP, &[0x44])), "reason_bad_ipv4"),
        drop("total length shorter than the header", tot_len(tcp.clone(), 16), "reason_bad_ipv4"),
        drop("total length longer than the frame", tot_len(tcp.clone(), 1500), "reason_bad_ipv4"),
        drop("IPv6 header cut off", truncate(udp6(), IP + 30), "reason_bad_ipv6"),
        drop("IPv6 version field says 4", patch(udp6(), IP, &[0x40]), "reason_bad_ipv6"),
        drop("IPv6 payload length longer than the frame", patch(udp6(), IP + 4, &[0x05, 0xdc]), "reason_bad_ipv6"),
        drop(
            "TCP header cut off (frame and IP length agree)",
            tot_len(truncate(tcp.clone(), L4OFF + 10), 30),
            "reason_bad_l4",
        ),
        drop("IP length leaves less than a TCP header", tot_len(tcp.clone(), 30), "reason_bad_l4"),
        drop("TCP data offset 4 (< 5)", patch(tcp.clone(), L4OFF + 12, &[0x40]), "reason_bad_l4"),
        drop("TCP data offset past the packet", patch(tcp.clone(), L4OFF + 12, &[0xf0]), "reason_bad_l4"),
        drop("UDP length 0", patch(udp.clone(), L4OFF + 4, &[0, 0]), "reason_bad_l4"),
        drop("UDP length past the packet", patch(udp.clone(), L4OFF + 4, &[0x05, 0xdc]), "reason_bad_l4"),
        drop("UDP header cut off", tot_len(truncate(udp.clone(), L4OFF + 4), 24), "reason_bad_l4"),
        drop(
            "ICMP header cut off",
            {
                let echo = v4(L2::Plain, CLIENT4, VIP4, L4::Echo, b"");
                tot_len(truncate(echo, L4OFF + 4), 24)
            },
            "reason_bad_l4",
        ),
        drop(
            "IPv6 TCP header cut off",
            {
                let t = v6(L2::Plain, CLIENT6, VIP6, TCP80, b"");
                patch(truncate(t, IP + 40 + 8), IP + 4, &[0, 8])
            },
            "reason_bad_l4",
        ),
    ])
    .unwrap();
}

/// The harness itself must be able to fail: a wrong expectation is reported.
#[test]
fn fixture_reports_a_wrong_expectation() {
    let f = fixture();
    let wrong_reason =
        Case { action: XDP_DROP, ..pass("service hit claimed as no-service", udp4(), "reason_no_service") };
    let err = f.check(&wrong_reason).unwrap_err().to_string();
    assert!(err.contains("reason_no_service: moved by 0, want 1"), "{err}");
    let wrong_frame = Case { output: Output::Frame(tcp4()), ..hit("udp compared to tcp", udp4(), 1) };
    assert!(f.check(&wrong_frame).unwrap_err().to_string().contains("output frame differs"));
    let wrong_verdict = Case { action: XDP_PASS, ..hit("drop claimed as pass", udp4(), 1) };
    assert!(f.check(&wrong_verdict).unwrap_err().to_string().contains("verdict XDP_DROP"));
}
