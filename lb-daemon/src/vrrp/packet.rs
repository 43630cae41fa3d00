//! VRRP advertisements: VRRPv2 (RFC 3768: IPv4, seconds, PASS authentication) and VRRPv3
//! (RFC 5798 / 9568: IPv4 and IPv6, centiseconds, checksum over a pseudo-header).
//!
//! `parse` applies every receive check that needs only the packet and the instance's
//! settings, and names the one that failed; each has its own counter.

use std::net::IpAddr;

use serde::Serialize;

pub const PROTO_VRRP: u8 = 112;
const TYPE_ADVERT: u8 = 1;
const AUTH_NONE: u8 = 0;
const AUTH_PASS: u8 = 1;
const V2_AUTH_LEN: usize = 8;

/// One advertisement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advert {
    pub version: u8,
    pub vrid: u8,
    pub priority: u8,
    /// Centiseconds (v2 carries whole seconds).
    pub interval_cs: u16,
    pub addrs: Vec<IpAddr>,
    /// v2 PASS authentication (up to 8 bytes, zero padded on the wire).
    pub password: Option<Vec<u8>>,
}

/// What the receiver expects; adverts that differ are dropped (and counted).
#[derive(Clone, Debug)]
pub struct Expect<'a> {
    pub version: u8,
    pub vrid: u8,
    pub interval_cs: u16,
    pub password: Option<&'a [u8]>,
    pub v6: bool,
    /// TTL / hop limit must be 255; keepalived skips this for unicast peers (they may be
    /// routed), and so do we.
    pub check_ttl: bool,
    /// v2 `auth_type AH`: the message says auth type 2 (its AH header is checked by
    /// `ah::verify` before this).
    pub ah: bool,
}

/// Why an advert was dropped: one counter each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reject {
    /// IPv4 TTL / IPv6 hop limit not 255: the sender is not on this link; or, from a unicast
    /// peer with `min_ttl` / `max_ttl`, outside them (keepalived's "TTL/HL ... not in range").
    Ttl,
    Version,
    Type,
    /// Another virtual router on the same link: not ours (not an error).
    OtherVrid,
    Length,
    Checksum,
    AuthType,
    Password,
    /// v2 only: a different advert_int (RFC 3768 says drop; v3 backups learn it instead).
    Interval,
    /// Unicast: the source is not in `unicast_peer`.
    UnknownPeer,
    /// The advert's addresses are not this instance's VIPs (keepalived checks every advert,
    /// or with `skip_check_adv_addr` those from a new master).
    AddressList,
}

impl Reject {
    pub const ALL: [Reject; 11] = [
        Reject::Ttl,
        Reject::Version,
        Reject::Type,
        Reject::OtherVrid,
        Reject::Length,
        Reject::Checksum,
        Reject::AuthType,
        Reject::Password,
        Reject::Interval,
        Reject::UnknownPeer,
        Reject::AddressList,
    ];
}

/// Internet checksum (RFC 1071) over `chunks` concatenated.
pub(crate) fn checksum(chunks: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    let mut odd: Option<u8> = None;
    for chunk in chunks {
        for &b in *chunk {
            match odd.take() {
                Some(hi) => sum += u32::from(u16::from_be_bytes([hi, b])),
                None => odd = Some(b),
            }
        }
    }
    if let Some(hi) = odd {
        sum += u32::from(u16::from_be_bytes([hi, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The pseudo-header VRRPv3 sums (RFC 5798 §5.2.8): source, destination, protocol, length.
fn pseudo(src: IpAddr, dst: IpAddr, len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(40);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p.extend_from_slice(&[0, PROTO_VRRP]);
            p.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            let v6 = |a: IpAddr| match a {
                IpAddr::V6(a) => a.octets(),
                IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
            };
            p.extend_from_slice(&v6(src));
            p.extend_from_slice(&v6(dst));
            p.extend_from_slice(&(len as u32).to_be_bytes());
            p.extend_from_slice(&[0, 0, 0, PROTO_VRRP]);
        }
    }
    p
}

impl Advert {
    /// The VRRP message (what follows the IP header), checksum filled in. `src`/`dst` are the
    /// IP addresses it will carry (v3 sums them).
    pub fn encode(&self, src: IpAddr, dst: IpAddr) -> Vec<u8> {
        let mut b = vec![(self.version << 4) | TYPE_ADVERT, self.vrid, self.priority, self.addrs.len() as u8];
        if self.version == 2 {
            b.push(if self.password.is_some() { AUTH_PASS } else { AUTH_NONE });
            b.push((self.interval_cs / 100).clamp(1, 255) as u8);
        } else {
            b.extend_from_slice(&(self.interval_cs & 0x0fff).to_be_bytes());
        }
        b.extend_from_slice(&[0, 0]);
        for a in &self.addrs {
            match a {
                IpAddr::V4(a) => b.extend_from_slice(&a.octets()),
                IpAddr::V6(a) => b.extend_from_slice(&a.octets()),
            }
        }
        if self.version == 2 {
            let mut auth = [0u8; V2_AUTH_LEN];
            if let Some(p) = &self.password {
                let n = p.len().min(V2_AUTH_LEN);
                auth[..n].copy_from_slice(&p[..n]);
            }
            b.extend_from_slice(&auth);
        }
        let sum = if self.version == 2 { checksum(&[&b]) } else { checksum(&[&pseudo(src, dst, b.len()), &b]) };
        b[6..8].copy_from_slice(&sum.to_be_bytes());
        b
    }

    /// Parses and checks a VRRP message received from `src` to `dst` with `ttl`.
    pub fn parse(b: &[u8], src: IpAddr, dst: IpAddr, ttl: u8, e: &Expect) -> Result<Advert, Reject> {
        if e.check_ttl && ttl != 255 {
            return Err(Reject::Ttl);
        }
        if b.len() < 8 {
            return Err(Reject::Length);
        }
        let version = b[0] >> 4;
        if version != e.version {
            return Err(Reject::Version);
        }
        if b[0] & 0x0f != TYPE_ADVERT {
            return Err(Reject::Type);
        }
        if b[1] != e.vrid {
            return Err(Reject::OtherVrid);
        }
        let count = usize::from(b[3]);
        let alen = if e.v6 { 16 } else { 4 };
        let want = 8 + count * alen + if version == 2 { V2_AUTH_LEN } else { 0 };
        // Trailing bytes beyond the message are tolerated (padding), a short one is not.
        if count == 0 || b.len() < want {
            return Err(Reject::Length);
        }
        let b = &b[..want];
        let sum = if version == 2 { checksum(&[b]) } else { checksum(&[&pseudo(src, dst, b.len()), b]) };
        if sum != 0 {
            return Err(Reject::Checksum);
        }
        let addrs: Vec<IpAddr> = b[8..8 + count * alen]
            .chunks_exact(alen)
            .map(|c| {
                if e.v6 {
                    let mut o = [0u8; 16];
                    o.copy_from_slice(c);
                    IpAddr::from(o)
                } else {
                    IpAddr::from([c[0], c[1], c[2], c[3]])
                }
            })
            .collect();
        let (interval_cs, password) = if version == 2 {
            let auth = &b[8 + count * alen..];
            let password = match (b[4], e.password) {
                (AUTH_NONE, None) if !e.ah => None,
                (super::ah::AUTH_AH, None) if e.ah => None,
                (AUTH_PASS, Some(want)) => {
                    let mut padded = [0u8; V2_AUTH_LEN];
                    let n = want.len().min(V2_AUTH_LEN);
                    padded[..n].copy_from_slice(&want[..n]);
                    if !constant_time_eq(auth, &padded) {
                        return Err(Reject::Password);
                    }
                    Some(want[..n].to_vec())
                }
                _ => return Err(Reject::AuthType),
            };
            let interval = u16::from(b[5]) * 100;
            if interval != e.interval_cs {
                return Err(Reject::Interval);
            }
            (interval, password)
        } else {
            (u16::from_be_bytes([b[4], b[5]]) & 0x0fff, None)
        };
        Ok(Advert { version, vrid: b[1], priority: b[2], interval_cs, addrs, password })
    }
}

/// Compares without an early exit, so timing does not reveal how much of a password matched.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The TTL, source and destination of an IPv4 packet as a raw socket returns it, and where
/// its payload starts.
pub fn ipv4_header(p: &[u8]) -> Option<(u8, IpAddr, IpAddr, usize)> {
    if p.len() < 20 || p[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(p[0] & 0x0f) * 4;
    if ihl < 20 || p.len() < ihl || p[9] != PROTO_VRRP {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
    if total < ihl || total > p.len() {
        return None;
    }
    Some((p[8], IpAddr::from([p[12], p[13], p[14], p[15]]), IpAddr::from([p[16], p[17], p[18], p[19]]), ihl))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2() -> Advert {
        Advert {
            version: 2,
            vrid: 51,
            priority: 100,
            interval_cs: 100,
            addrs: vec!["192.0.2.100".parse().unwrap(), "192.0.2.101".parse().unwrap()],
            password: Some(b"secret".to_vec()),
        }
    }

    fn expect(version: u8, v6: bool, pw: Option<&[u8]>) -> Expect<'_> {
        Expect { version, vrid: 51, interval_cs: 100, password: pw, v6, check_ttl: true, ah: false }
    }

    const SRC: &str = "192.0.2.1";
    const GROUP: &str = "224.0.0.18";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v2_round_trip_matches_rfc_layout() {
        let a = v2();
        let b = a.encode(ip(SRC), ip(GROUP));
        // version 2 / type 1, vrid, priority, count, auth PASS, 1 s, checksum, addrs, password.
        assert_eq!(&b[..6], &[0x21, 51, 100, 2, 1, 1]);
        assert_eq!(&b[8..16], &[192, 0, 2, 100, 192, 0, 2, 101]);
        assert_eq!(&b[16..], b"secret\0\0");
        assert_eq!(checksum(&[&b]), 0, "the checksum covers the message");
        assert_eq!(Advert::parse(&b, ip(SRC), ip(GROUP), 255, &expect(2, false, Some(b"secret"))), Ok(a));
    }

    #[test]
    fn v3_checksums_the_pseudo_header() {
        let a = Advert { version: 3, password: None, interval_cs: 35, ..v2() };
        let b = a.encode(ip(SRC), ip(GROUP));
        assert_eq!(&b[..6], &[0x31, 51, 100, 2, 0, 35]);
        assert_eq!(b.len(), 16);
        let e = Expect { interval_cs: 100, ..expect(3, false, None) };
        assert_eq!(Advert::parse(&b, ip(SRC), ip(GROUP), 255, &e), Ok(a.clone()), "v3 learns the interval");
        // The same bytes from another source fail the checksum: the pseudo-header counts.
        assert_eq!(Advert::parse(&b, ip("192.0.2.2"), ip(GROUP), 255, &e), Err(Reject::Checksum));
        let a6 = Advert { addrs: vec![ip("2001:db8::100")], ..a };
        let (s6, g6) = (ip("fe80::1"), ip("ff02::12"));
        let b6 = a6.encode(s6, g6);
        assert_eq!(b6.len(), 8 + 16);
        assert_eq!(Advert::parse(&b6, s6, g6, 255, &Expect { v6: true, ..e }), Ok(a6));
    }

    #[test]
    fn every_receive_check_rejects_and_names_itself() {
        let good = v2().encode(ip(SRC), ip(GROUP));
        let e = expect(2, false, Some(b"secret"));
        let parse = |b: &[u8], ttl: u8, e: &Expect| Advert::parse(b, ip(SRC), ip(GROUP), ttl, e);
        assert_eq!(parse(&good, 64, &e), Err(Reject::Ttl));
        assert!(parse(&good, 64, &Expect { check_ttl: false, ..e.clone() }).is_ok(), "unicast: any TTL");
        assert_eq!(parse(&good, 255, &expect(3, false, None)), Err(Reject::Version));
        let mut t = good.clone();
        t[0] = 0x22;
        assert_eq!(parse(&t, 255, &e), Err(Reject::Type));
        assert_eq!(parse(&good, 255, &Expect { vrid: 52, ..e.clone() }), Err(Reject::OtherVrid));
        assert_eq!(parse(&good[..12], 255, &e), Err(Reject::Length));
        let mut c = good.clone();
        c[2] = 255; // priority changed, checksum not
        assert_eq!(parse(&c, 255, &e), Err(Reject::Checksum));
        assert_eq!(parse(&good, 255, &expect(2, false, None)), Err(Reject::AuthType));
        assert_eq!(parse(&good, 255, &expect(2, false, Some(b"secreT"))), Err(Reject::Password));
        assert_eq!(parse(&good, 255, &Expect { interval_cs: 200, ..e.clone() }), Err(Reject::Interval));
        // Zero addresses is a length error, not a panic; so is every truncation.
        let mut z = Advert { addrs: vec![], ..v2() }.encode(ip(SRC), ip(GROUP));
        z[3] = 0;
        assert_eq!(parse(&z, 255, &e), Err(Reject::Length));
        for n in 0..good.len() {
            assert!(parse(&good[..n], 255, &e).is_err());
        }
    }

    #[test]
    fn long_passwords_are_cut_to_eight_bytes_as_keepalived_does() {
        let a = Advert { password: Some(b"0123456789".to_vec()), ..v2() };
        let b = a.encode(ip(SRC), ip(GROUP));
        assert_eq!(&b[16..], b"01234567");
        let got = Advert::parse(&b, ip(SRC), ip(GROUP), 255, &expect(2, false, Some(b"0123456789"))).unwrap();
        assert_eq!(got.password.as_deref(), Some(&b"01234567"[..]));
    }

    proptest::proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80)) {
            let _ = Advert::parse(&bytes, ip(SRC), ip(GROUP), 255, &expect(2, false, Some(b"x")));
            let _ = Advert::parse(&bytes, ip(SRC), ip(GROUP), 255, &expect(3, true, None));
            let _ = ipv4_header(&bytes);
        }
    }
}
