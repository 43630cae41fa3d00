//! VRRPv2 over IPsec AH with HMAC-MD5-96, as keepalived 2.2.7 runs `auth_type AH`
//! (keepalived/vrrp/vrrp.c: `vrrp_build_ip4`, `vrrp_build_ipsecah`, `vrrp_update_pkt`,
//! `vrrp_in_chk_ipsecah`; vrrp_ipsecah.c: `hmac_md5`).
//!
//! On the wire: an IPv4 header (protocol 51, TOS 0xc0), a 24-byte AH header (next header 112,
//! payload length 4, SPI = the sender's IPv4 source address, a sequence number, a 12-byte
//! ICV), then the VRRPv2 message with auth type 2 and eight zero auth bytes, its checksum the
//! usual v2 one. The ICV is HMAC-MD5 keyed with `auth_pass` zero-padded (or cut) to 8 bytes,
//! truncated to 96 bits, over the IP header with TOS, fragment field and checksum zeroed
//! (and the TTL too, but only for unicast instances), the AH header with its ICV zeroed, and
//! the VRRP message.
//!
//! Sequence numbers: one counter per instance, shared by sending and receiving (keepalived's
//! `ipsecah_counter`). Each advert sent takes the next number; an advert is accepted only if
//! its number is above the counter, which then takes it (so a backup continues the master's
//! numbering when it takes over); a master hearing a lower-priority router takes that
//! router's number plus one.
//!
//! Pure code; the sockets are in `sockets.rs`.

use std::net::Ipv4Addr;

use md5::{Digest, Md5};

use super::packet::PROTO_VRRP;

pub const PROTO_AH: u8 = 51;
/// VRRPv2's auth type for AH.
pub const AUTH_AH: u8 = 2;
/// next header, payload len, reserved (2), SPI (4), sequence (4), ICV (12).
pub const AH_LEN: usize = 24;
const IP_LEN: usize = 20;
const ICV_LEN: usize = 12;
/// (96-bit ICV + 3 × 32-bit words) / 32 - 2 (RFC 2402 §2.2).
const AH_PAYLOAD_LEN: u8 = 4;
/// keepalived's `vrrp_build_ip4`: "internet network control".
const TOS: u8 = 0xc0;

/// keepalived's HMAC key: `auth_pass` in an 8-byte buffer, zero padded, cut at 8.
pub fn key(pass: &[u8]) -> [u8; 8] {
    let mut k = [0u8; 8];
    let n = pass.len().min(8);
    k[..n].copy_from_slice(&pass[..n]);
    k
}

/// HMAC-MD5 (RFC 2104) over `parts` concatenated.
pub fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..16].copy_from_slice(&Md5::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Md5::new();
    inner.update(k.map(|b| b ^ 0x36));
    for p in parts {
        inner.update(p);
    }
    let mut outer = Md5::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// Sets a VRRPv2 message's auth type to AH (its auth bytes stay zero) and its checksum again.
pub fn mark_vrrp_ah(vrrp: &mut [u8]) {
    if vrrp.len() < 8 {
        return;
    }
    vrrp[4] = AUTH_AH;
    vrrp[6..8].copy_from_slice(&[0, 0]);
    let sum = super::packet::checksum(&[vrrp]);
    vrrp[6..8].copy_from_slice(&sum.to_be_bytes());
}

/// The ICV of `ip_and_ah` (IP header then AH header) and `vrrp`, with the mutable fields
/// zeroed as keepalived zeroes them.
fn icv(key: &[u8; 8], ip_and_ah: &[u8], vrrp: &[u8], unicast: bool) -> [u8; ICV_LEN] {
    let mut h = ip_and_ah.to_vec();
    let ihl = usize::from(h[0] & 0x0f) * 4;
    h[1] = 0; // TOS
    h[6] = 0; // flags, fragment offset
    h[7] = 0;
    h[10] = 0; // header checksum
    h[11] = 0;
    if unicast {
        h[8] = 0; // TTL
    }
    h[ihl + 12..ihl + AH_LEN].fill(0);
    let d = hmac_md5(key, &[&h, vrrp]);
    let mut out = [0u8; ICV_LEN];
    out.copy_from_slice(&d[..ICV_LEN]);
    out
}

/// What to send: the whole IPv4 packet (for a raw socket with IP_HDRINCL; the kernel fills
/// in the header checksum). `vrrp` is the VRRPv2 message already marked with
/// [`mark_vrrp_ah`]; `id` must not be 0 (the kernel would replace it, after the ICV).
#[allow(clippy::too_many_arguments)]
pub fn build(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ttl: u8,
    id: u16,
    seq: u32,
    unicast: bool,
    vrrp: &[u8],
    key: &[u8; 8],
) -> Vec<u8> {
    let total = (IP_LEN + AH_LEN + vrrp.len()) as u16;
    let mut p = Vec::with_capacity(usize::from(total));
    p.extend_from_slice(&[0x45, TOS]);
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&[0, 0, ttl, PROTO_AH, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&[PROTO_VRRP, AH_PAYLOAD_LEN, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&[0u8; ICV_LEN]);
    let icv = icv(key, &p, vrrp, unicast);
    p[IP_LEN + 12..IP_LEN + AH_LEN].copy_from_slice(&icv);
    p.extend_from_slice(vrrp);
    p
}

/// An AH packet that passed its ICV and SPI checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified<'a> {
    pub seq: u32,
    /// The VRRP message.
    pub vrrp: &'a [u8],
}

/// Why an AH packet was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AhReject {
    /// Too short, not IPv4, not AH, or AH for another protocol (keepalived ignores these).
    Malformed,
    /// The ICV does not match: a wrong `auth_pass`, or a changed packet.
    Icv,
    /// The SPI is not the source address.
    Spi,
}

/// The VRRP message inside an AH packet `p` (a whole IPv4 packet as a raw socket returns
/// it), without any check: for telling which virtual router it is for before checking it.
pub fn vrrp_of(p: &[u8]) -> Option<&[u8]> {
    if p.len() < IP_LEN || p[0] >> 4 != 4 || p[9] != PROTO_AH {
        return None;
    }
    let ihl = usize::from(p[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
    if ihl < IP_LEN || total > p.len() || total < ihl + AH_LEN {
        return None;
    }
    if p[ihl] != PROTO_VRRP || p[ihl + 1] != AH_PAYLOAD_LEN {
        return None;
    }
    Some(&p[ihl + AH_LEN..total])
}

/// Checks the AH of `p` (a whole IPv4 packet): ICV, then SPI, as `vrrp_in_chk_ipsecah`.
/// The sequence number is the caller's ([`SeqCounter::accept`]).
pub fn verify<'a>(p: &'a [u8], unicast: bool, key: &[u8; 8]) -> Result<Verified<'a>, AhReject> {
    let vrrp = vrrp_of(p).ok_or(AhReject::Malformed)?;
    let ihl = usize::from(p[0] & 0x0f) * 4;
    let want = icv(key, &p[..ihl + AH_LEN], vrrp, unicast);
    if !super::packet::constant_time_eq(&p[ihl + 12..ihl + AH_LEN], &want) {
        return Err(AhReject::Icv);
    }
    if p[ihl + 4..ihl + 8] != p[12..16] {
        return Err(AhReject::Spi);
    }
    let seq = u32::from_be_bytes([p[ihl + 8], p[ihl + 9], p[ihl + 10], p[ihl + 11]]);
    Ok(Verified { seq, vrrp })
}

/// keepalived's `ipsecah_counter`: the last sequence number sent or accepted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeqCounter {
    pub seq: u32,
    /// Reached the top: adverts go out with the same number until the next master reset.
    pub cycle: bool,
}

impl SeqCounter {
    /// The number for the next advert (one per advert, the same to every unicast peer).
    pub fn next_send(&mut self) -> u32 {
        if self.seq > 0xffff_fffd {
            self.cycle = true;
        } else {
            self.seq += 1;
        }
        self.seq
    }

    /// A verified advert's number: accepted (and taken) only if above the counter; else a
    /// replay, dropped.
    pub fn accept(&mut self, seq: u32) -> bool {
        if seq > self.seq {
            self.seq = seq;
            true
        } else {
            false
        }
    }

    /// As master, an accepted advert from a lower-priority router: continue after its number.
    pub fn heard_lower_priority(&mut self, seq: u32) {
        self.seq = seq.wrapping_add(1);
        self.cycle = false;
    }

    /// Becoming master: a counter that reached the top starts again.
    pub fn becoming_master(&mut self) {
        if self.cycle {
            *self = Self::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn hmac_md5_matches_rfc_2202() {
        assert_eq!(hex(&hmac_md5(&[0x0b; 16], &[b"Hi There"])), "9294727a3638bb1c13f48ef8158bfc9d");
        assert_eq!(
            hex(&hmac_md5(b"Jefe", &[b"what do ya ", b"want for nothing?"])),
            "750c783e6ab0b503eaa86e310a5db738"
        );
        assert_eq!(hex(&hmac_md5(&[0xaa; 16], &[&[0xdd; 50]])), "56be34521d144c88dbb8c733f0e8b3f6");
        assert_eq!(
            hex(&hmac_md5(&[0xaa; 80], &[b"Test Using Larger Than Block-Size Key - Hash Key First"])),
            "6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd"
        );
        let t7 = b"Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data";
        assert_eq!(hex(&hmac_md5(&[0xaa; 80], &[t7])), "6f630fad67cda0ee1fb1f562db3aa53e");
    }

    fn vrrp() -> Vec<u8> {
        let a = super::super::packet::Advert {
            version: 2,
            vrid: 51,
            priority: 100,
            interval_cs: 100,
            addrs: vec!["192.0.2.100".parse().unwrap()],
            password: None,
        };
        let src = "192.0.2.1".parse().unwrap();
        let mut m = a.encode(src, "224.0.0.18".parse().unwrap());
        mark_vrrp_ah(&mut m);
        m
    }

    const SRC: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);

    fn packet(seq: u32, unicast: bool) -> Vec<u8> {
        build(SRC, GROUP, 255, 7, seq, unicast, &vrrp(), &key(b"s3cret"))
    }

    #[test]
    fn the_packet_has_keepalived_s_layout() {
        let p = packet(5, false);
        assert_eq!(p.len(), 20 + 24 + 20);
        assert_eq!(&p[..10], &[0x45, 0xc0, 0, 64, 0, 7, 0, 0, 255, 51]);
        assert_eq!(&p[20..24], &[112, 4, 0, 0], "next header VRRP, payload length 4");
        assert_eq!(&p[24..28], &SRC.octets(), "SPI = source address");
        assert_eq!(&p[28..32], &5u32.to_be_bytes());
        let m = &p[44..];
        assert_eq!(m[4], 2, "VRRP auth type AH");
        assert_eq!(&m[12..20], &[0; 8], "no password in the VRRP message");
        assert_eq!(super::super::packet::checksum(&[m]), 0, "a valid v2 checksum");
    }

    #[test]
    fn what_we_build_verifies_and_mutable_fields_do_not_count() {
        let k = key(b"s3cret");
        let p = packet(9, false);
        assert_eq!(verify(&p, false, &k), Ok(Verified { seq: 9, vrrp: &p[44..] }));
        let mut m = p.clone();
        m[1] = 0x10; // TOS
        m[6] = 0x40; // don't fragment
        m[10] = 0x12; // header checksum (the kernel's)
        m[11] = 0x34;
        assert!(verify(&m, false, &k).is_ok(), "TOS, fragment field and checksum are mutable");
        let mut t = p.clone();
        t[8] = 64;
        assert_eq!(verify(&t, false, &k), Err(AhReject::Icv), "multicast: the TTL is covered");
        let mut u = packet(9, true);
        u[8] = 61;
        assert!(verify(&u, true, &k).is_ok(), "unicast: the TTL is not covered");
    }

    #[test]
    fn any_other_change_or_a_wrong_key_fails() {
        let k = key(b"s3cret");
        let p = packet(9, false);
        for i in [2, 4, 12, 16, 28, 31, 44 + 2, 44 + 8, p.len() - 1] {
            let mut m = p.clone();
            m[i] ^= 1;
            assert!(verify(&m, false, &k).is_err(), "byte {i} changed");
        }
        assert_eq!(verify(&p, false, &key(b"s3creT")), Err(AhReject::Icv));
        assert_eq!(key(b"0123456789"), *b"01234567", "cut at 8 as keepalived");
        let mut short = p.clone();
        short.truncate(40);
        assert_eq!(verify(&short, false, &k), Err(AhReject::Malformed));
    }

    #[test]
    fn a_forged_spi_is_refused() {
        // A sender that signs an SPI that is not its source address.
        let k = key(b"s3cret");
        let mut p = packet(9, false);
        p[24..28].copy_from_slice(&[192, 0, 2, 9]);
        p[32..44].fill(0);
        let icv = icv(&k, &p[..44], &p[44..], false);
        p[32..44].copy_from_slice(&icv);
        assert_eq!(verify(&p, false, &k), Err(AhReject::Spi));
    }

    #[test]
    fn sequence_numbers_follow_keepalived() {
        let mut c = SeqCounter::default();
        assert_eq!((c.next_send(), c.next_send()), (1, 2));
        assert!(c.accept(7), "a higher number is taken");
        assert!(!c.accept(7), "a replay is dropped");
        assert!(!c.accept(3), "an older one too");
        assert_eq!(c.next_send(), 8, "a new master continues the numbering it heard");
        c.heard_lower_priority(20);
        assert_eq!(c.next_send(), 22);
        let mut top = SeqCounter { seq: 0xffff_fffe, cycle: false };
        assert_eq!(top.next_send(), 0xffff_fffe);
        assert!(top.cycle);
        top.becoming_master();
        assert_eq!(top.next_send(), 1);
    }
}
