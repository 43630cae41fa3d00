//! The kernel's IPVS connection sync protocol, version 1 (net/netfilter/ipvs/ip_vs_sync.c):
//! what `ipvsadm --start-daemon` and keepalived's `lvs_sync_daemon` multicast between load
//! balancers. Pure: bytes in, entries out, and back.
//!
//! A datagram is an 8-byte header (`struct ip_vs_sync_mesg`: reserved 0, sync id, size,
//! entry count, version 1, spare 0) followed by entries, each 32-bit aligned:
//! `struct ip_vs_sync_v4` (36 bytes) or `struct ip_vs_sync_v6` (72 bytes), optionally followed
//! by parameters (sequence data, persistence engine data) that this side skips. Every field
//! is in network byte order.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use thiserror::Error;

/// `IP_VS_SYNC_GROUP`: 224.0.0.81.
pub const DEFAULT_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);
/// `IP_VS_SYNC_PORT`.
pub const DEFAULT_PORT: u16 = 8848;
/// `SYNC_PROTO_VER`.
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 8;
pub const V4_LEN: usize = 36;
pub const V6_LEN: usize = 72;
/// `nr_conns` is one byte.
pub const MAX_ENTRIES: usize = 255;

/// `STYPE_F_INET6`.
const TYPE_INET6: u8 = 1;
const SVER_SHIFT: u16 = 12;
const SVER_MASK: u16 = 0x0fff;

/// `IP_VS_CONN_F_*` (include/uapi/linux/ip_vs.h).
pub const F_MASQ: u32 = 0x0000;
pub const F_TUNNEL: u32 = 0x0002;
pub const F_DROUTE: u32 = 0x0003;
pub const F_FWD_MASK: u32 = 0x0007;
pub const F_INACTIVE: u32 = 0x0100;
pub const F_TEMPLATE: u32 = 0x1000;

/// IPVS's TCP states (`IP_VS_TCP_S_*`, ip_vs_proto_tcp.c).
pub mod tcp {
    pub const NONE: u16 = 0;
    pub const ESTABLISHED: u16 = 1;
    pub const SYN_SENT: u16 = 2;
    pub const SYN_RECV: u16 = 3;
    pub const FIN_WAIT: u16 = 4;
    pub const TIME_WAIT: u16 = 5;
    pub const CLOSE: u16 = 6;
    pub const CLOSE_WAIT: u16 = 7;
    pub const LAST_ACK: u16 = 8;
    pub const LISTEN: u16 = 9;
    pub const SYNACK: u16 = 10;
}

/// One synced connection (`struct ip_vs_sync_v4` / `ip_vs_sync_v6`). Addresses are all of one
/// family (the entry's type says which).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub protocol: u8,
    /// `IP_VS_CONN_F_*`.
    pub flags: u32,
    /// The protocol's IPVS state (`tcp::*`; 0 for UDP).
    pub state: u16,
    pub cport: u16,
    pub vport: u16,
    pub dport: u16,
    pub fwmark: u32,
    /// Seconds.
    pub timeout: u32,
    pub caddr: IpAddr,
    pub vaddr: IpAddr,
    pub daddr: IpAddr,
}

impl Entry {
    fn v6(&self) -> bool {
        self.caddr.is_ipv6()
    }

    pub fn wire_len(&self) -> usize {
        if self.v6() { V6_LEN } else { V4_LEN }
    }
}

/// A decoded datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub sync_id: u8,
    pub entries: Vec<Entry>,
    /// Entries the kernel also skips one by one (templates, unknown mandatory parameters,
    /// an unknown type bit), counted.
    pub skipped: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("datagram of {0} bytes is shorter than the 8-byte header")]
    Short(usize),
    #[error("header says {said} bytes but the datagram has {got}")]
    Size { said: usize, got: usize },
    #[error("version 0 message (reserved byte {reserved}, version {version}): only version 1 is spoken")]
    Version0 { reserved: u8, version: u8 },
    #[error("entry {index} at offset {offset}: {what}")]
    Entry { index: usize, offset: usize, what: &'static str },
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Decodes a datagram as the kernel's backup does (`ip_vs_process_message`): the size must
/// match, version 1 with reserved and spare zero (version 0 is refused, not guessed at), each
/// entry within the datagram and of version 0 in its `ver_size`; any structural fault drops
/// the whole datagram.
pub fn decode(buf: &[u8]) -> Result<Message, DecodeError> {
    if buf.len() < HEADER_LEN {
        return Err(DecodeError::Short(buf.len()));
    }
    let said = usize::from(be16(buf, 2));
    if said != buf.len() {
        return Err(DecodeError::Size { said, got: buf.len() });
    }
    let (reserved, version, spare) = (buf[0], buf[5], be16(buf, 6));
    if reserved != 0 || version != VERSION || spare != 0 {
        return Err(DecodeError::Version0 { reserved, version });
    }
    let sync_id = buf[1];
    let count = usize::from(buf[4]);
    let mut entries = Vec::with_capacity(count);
    let mut skipped = 0;
    let mut at = HEADER_LEN;
    for index in 0..count {
        let err = |what| DecodeError::Entry { index, offset: at, what };
        if at + V4_LEN > buf.len() {
            return Err(err("shorter than an IPv4 entry"));
        }
        let ver_size = be16(buf, at + 2);
        let size = usize::from(ver_size & SVER_MASK);
        if ver_size >> SVER_SHIFT != 0 {
            return Err(err("unknown entry version"));
        }
        let end = at + size;
        if end > buf.len() {
            return Err(err("size runs past the datagram"));
        }
        let ty = buf[at];
        let fixed = if ty & TYPE_INET6 != 0 {
            V6_LEN
        } else if ty == 0 {
            V4_LEN
        } else {
            return Err(err("unknown entry type"));
        };
        if size < fixed {
            return Err(err("size smaller than the entry"));
        }
        let e = &buf[at..end];
        let mut mandatory_unknown = false;
        let mut p = fixed;
        while p < e.len() {
            if p + 2 > e.len() {
                return Err(err("truncated parameter"));
            }
            let (ptype, plen) = (e[p], usize::from(e[p + 1]));
            p += 2;
            if plen == 0 || p + plen > e.len() {
                return Err(err("bad parameter length"));
            }
            // IPVS_OPT_SEQ_DATA 1, PE_DATA 2, PE_NAME 3; bit 0x40 (IPVS_OPT_F_PARAM) marks
            // the optional ones. Persistence data has no meaning here: such entries are
            // applied as plain connections.
            if !matches!(ptype & !0x40, 1..=3) && ptype & 0x40 == 0 {
                mandatory_unknown = true;
            }
            p += plen;
        }
        let flags = be32(e, 4);
        if mandatory_unknown || flags & F_TEMPLATE != 0 {
            skipped += 1;
        } else {
            let addr = |off: usize| -> IpAddr {
                if fixed == V6_LEN {
                    let mut a = [0u8; 16];
                    a.copy_from_slice(&e[off..off + 16]);
                    IpAddr::V6(Ipv6Addr::from(a))
                } else {
                    IpAddr::V4(Ipv4Addr::new(e[off], e[off + 1], e[off + 2], e[off + 3]))
                }
            };
            let step = if fixed == V6_LEN { 16 } else { 4 };
            entries.push(Entry {
                protocol: e[1],
                flags,
                state: be16(e, 8),
                cport: be16(e, 10),
                vport: be16(e, 12),
                dport: be16(e, 14),
                fwmark: be32(e, 16),
                timeout: be32(e, 20),
                caddr: addr(24),
                vaddr: addr(24 + step),
                daddr: addr(24 + 2 * step),
            });
        }
        // 32-bit alignment between entries.
        at += (size + 3) & !3;
    }
    Ok(Message { sync_id, entries, skipped })
}

fn put_addr(out: &mut Vec<u8>, a: IpAddr, v6: bool) {
    match (a, v6) {
        (IpAddr::V4(a), false) => out.extend_from_slice(&a.octets()),
        (IpAddr::V6(a), true) => out.extend_from_slice(&a.octets()),
        // Mixed families are refused by `encode`; keep the layout if it ever happens.
        (IpAddr::V4(a), true) => out.extend_from_slice(&a.to_ipv6_mapped().octets()),
        (IpAddr::V6(_), false) => out.extend_from_slice(&[0; 4]),
    }
}

/// A message without entries: lb-daemon's request, sent by a node whose sync just started,
/// that the nodes hearing it send all their flows again (a restarted node has none, and the
/// others would otherwise refresh its copies only at half their timeout). The kernel never
/// sends one, and its backups take it as nothing.
pub fn hello(sync_id: u8) -> Vec<u8> {
    sized(header(sync_id), 0)
}

/// A version 1 header for `sync_id`, its size and count still zero.
fn header(sync_id: u8) -> Vec<u8> {
    vec![0, sync_id, 0, 0, 0, VERSION, 0, 0]
}

/// `message` with its size and entry count written into its header.
fn sized(mut message: Vec<u8>, count: u8) -> Vec<u8> {
    let len = message.len() as u16;
    message[2..4].copy_from_slice(&len.to_be_bytes());
    message[4] = count;
    message
}

impl Message {
    /// Whether this is a `hello` (no entry at all, not even a skipped one).
    pub fn is_hello(&self) -> bool {
        self.entries.is_empty() && self.skipped == 0
    }
}

/// Encodes `entries` as datagrams of at most `maxlen` bytes (and at most 255 entries each),
/// as the kernel's master does. Entries whose three addresses are not of one family are left
/// out (none of ours are).
pub fn encode(sync_id: u8, entries: &[Entry], maxlen: usize) -> Vec<Vec<u8>> {
    let maxlen = maxlen.clamp(HEADER_LEN + V6_LEN, usize::from(u16::MAX));
    let mut out = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    let mut n = 0usize;
    let finish = |cur: &mut Vec<u8>, n: usize, out: &mut Vec<Vec<u8>>| {
        if n > 0 {
            out.push(sized(std::mem::take(cur), n as u8));
        }
    };
    for e in entries {
        let v6 = e.v6();
        if e.vaddr.is_ipv6() != v6 || e.daddr.is_ipv6() != v6 {
            continue;
        }
        let len = e.wire_len();
        if n == MAX_ENTRIES || (n > 0 && cur.len() + len > maxlen) {
            finish(&mut cur, n, &mut out);
            n = 0;
        }
        if n == 0 {
            cur = header(sync_id);
        }
        cur.push(if v6 { TYPE_INET6 } else { 0 });
        cur.push(e.protocol);
        cur.extend_from_slice(&(len as u16).to_be_bytes());
        cur.extend_from_slice(&e.flags.to_be_bytes());
        cur.extend_from_slice(&e.state.to_be_bytes());
        cur.extend_from_slice(&e.cport.to_be_bytes());
        cur.extend_from_slice(&e.vport.to_be_bytes());
        cur.extend_from_slice(&e.dport.to_be_bytes());
        cur.extend_from_slice(&e.fwmark.to_be_bytes());
        cur.extend_from_slice(&e.timeout.to_be_bytes());
        put_addr(&mut cur, e.caddr, v6);
        put_addr(&mut cur, e.vaddr, v6);
        put_addr(&mut cur, e.daddr, v6);
        n += 1;
    }
    finish(&mut cur, n, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message as the kernel's master builds it, written byte by byte from the C layout
    /// (`struct ip_vs_sync_mesg` then `struct ip_vs_sync_v4`), not from `encode`.
    fn kernel_v4() -> Vec<u8> {
        let mut m = vec![
            0x00, // reserved
            0x07, // syncid
            0x00, 0x2c, // size: 8 + 36 = 44
            0x01, // nr_conns
            0x01, // version
            0x00, 0x00, // spare
        ];
        m.extend_from_slice(&[
            0x00, // type: IPv4
            0x06, // protocol: TCP
            0x00, 0x24, // ver_size: version 0, size 36
            0x00, 0x00, 0x01, 0x03, // flags: IP_VS_CONN_F_DROUTE | IP_VS_CONN_F_INACTIVE
            0x00, 0x01, // state: ESTABLISHED
            0x9c, 0x40, // cport 40000
            0x00, 0x50, // vport 80
            0x1f, 0x90, // dport 8080
            0x00, 0x00, 0x00, 0x00, // fwmark
            0x00, 0x00, 0x03, 0x84, // timeout 900 s
            192, 0, 2, 2, // caddr
            203, 0, 113, 10, // vaddr
            198, 51, 100, 11, // daddr
        ]);
        m
    }

    #[test]
    fn decodes_a_kernel_built_v4_message() {
        let m = decode(&kernel_v4()).unwrap();
        assert_eq!((m.sync_id, m.skipped), (7, 0));
        assert_eq!(
            m.entries,
            [Entry {
                protocol: 6,
                flags: F_DROUTE | F_INACTIVE,
                state: tcp::ESTABLISHED,
                cport: 40000,
                vport: 80,
                dport: 8080,
                fwmark: 0,
                timeout: 900,
                caddr: "192.0.2.2".parse().unwrap(),
                vaddr: "203.0.113.10".parse().unwrap(),
                daddr: "198.51.100.11".parse().unwrap(),
            }]
        );
        // And ours is the same bytes.
        assert_eq!(encode(7, &m.entries, 1472), [kernel_v4()]);
    }

    /// A hello is a well-formed version 1 message with no entry (what the kernel's backup
    /// loops over zero times); a message whose entries were all skipped is not one.
    #[test]
    fn a_hello_is_a_message_without_entries() {
        let h = hello(7);
        assert_eq!(h, [0, 7, 0, 8, 0, VERSION, 0, 0]);
        let m = decode(&h).unwrap();
        assert!(m.is_hello() && m.sync_id == 7);
        assert!(!decode(&kernel_v4()).unwrap().is_hello());
        assert!(encode(7, &[], 1472).is_empty(), "no entries: no datagram but a hello");
    }

    #[test]
    fn decodes_a_v6_entry_with_sequence_and_pe_parameters() {
        // IPv6 entry (type 1, 72 bytes) followed by IPVS_OPT_SEQ_DATA (24 bytes of
        // ip_vs_seq x2) and IPVS_OPT_PE_NAME "sip": size 72 + 26 + 5 = 103, padded to 104.
        let mut e = vec![0x01, 0x11, 0x00, 103, 0, 0, 0, 0x02, 0, 0, 0x13, 0x88, 0, 53, 0, 53];
        e.extend_from_slice(&[0, 0, 0, 9, 0, 0, 1, 44]); // fwmark 9, timeout 300
        for last in [2u8, 0x10, 0x11] {
            let mut a = [0u8; 16];
            a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
            a[15] = last;
            e.extend_from_slice(&a);
        }
        e.extend_from_slice(&[1, 24]);
        e.extend_from_slice(&[0; 24]);
        e.extend_from_slice(&[3, 3, b's', b'i', b'p']);
        assert_eq!(e.len(), 103);
        e.push(0); // alignment
        let mut m = vec![0, 0, 0, 8 + 104, 1, 1, 0, 0];
        m.extend_from_slice(&e);
        let d = decode(&m).unwrap();
        assert_eq!(d.entries.len(), 1);
        let x = d.entries[0];
        assert_eq!((x.protocol, x.flags, x.cport, x.vport, x.fwmark, x.timeout), (17, F_TUNNEL, 5000, 53, 9, 300));
        assert_eq!(x.vaddr, "2001:db8::10".parse::<IpAddr>().unwrap());
        assert_eq!(x.daddr, "2001:db8::11".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn round_trips_and_splits_at_maxlen_and_255_entries() {
        let v4 = decode(&kernel_v4()).unwrap().entries[0];
        let v6 = Entry {
            caddr: "2001:db8::2".parse().unwrap(),
            vaddr: "2001:db8::10".parse().unwrap(),
            daddr: "2001:db8::11".parse().unwrap(),
            ..v4
        };
        let many: Vec<Entry> = (0..600u16).map(|i| Entry { cport: i, ..if i % 3 == 0 { v6 } else { v4 } }).collect();
        let grams = encode(1, &many, 1472);
        assert!(grams.iter().all(|g| g.len() <= 1472));
        let back: Vec<Entry> = grams.iter().flat_map(|g| decode(g).unwrap().entries).collect();
        assert_eq!(back, many);
        // Small entries hit the one-byte count first.
        let small: Vec<Entry> = (0..600u16).map(|i| Entry { cport: i, ..v4 }).collect();
        let grams = encode(1, &small, 60_000);
        assert_eq!(grams.iter().map(|g| g[4]).collect::<Vec<_>>(), [255, 255, 90]);
        assert!(encode(1, &[], 1472).is_empty());
    }

    #[test]
    fn refuses_malformed_and_version_0_datagrams() {
        let good = kernel_v4();
        assert_eq!(decode(&good[..5]), Err(DecodeError::Short(5)));
        assert_eq!(decode(&good[..40]), Err(DecodeError::Size { said: 44, got: 40 }));
        // Version 0 header: nr_conns in byte 0.
        let mut v0 = good.clone();
        v0[0] = 1;
        v0[5] = 0;
        assert!(matches!(decode(&v0), Err(DecodeError::Version0 { .. })));
        let mut spare = good.clone();
        spare[7] = 1;
        assert!(matches!(decode(&spare), Err(DecodeError::Version0 { .. })));
        // An entry of unknown version, one running past the end, one too small, two entries
        // announced but one present, an unknown type.
        for (at, byte, what) in [
            (10usize, 0x10u8, "unknown entry version"),
            (11, 0x30, "size runs past the datagram"),
            (11, 0x20, "size smaller than the entry"),
            (4, 2, "shorter than an IPv4 entry"),
            (8, 0x02, "unknown entry type"),
        ] {
            let mut bad = good.clone();
            bad[at] = byte;
            match decode(&bad) {
                Err(DecodeError::Entry { what: w, .. }) => assert_eq!(w, what),
                other => panic!("{what}: {other:?}"),
            }
        }
        // A parameter with length 0.
        let mut p = good.clone();
        p[11] = 38;
        p.extend_from_slice(&[1, 0, 0, 0]);
        p[3] = 48;
        assert!(matches!(decode(&p), Err(DecodeError::Entry { what: "bad parameter length", .. })));
    }

    #[test]
    fn skips_templates_and_unknown_mandatory_parameters() {
        let mut t = kernel_v4();
        t[14] = 0x10; // IP_VS_CONN_F_TEMPLATE
        let d = decode(&t).unwrap();
        assert_eq!((d.entries.len(), d.skipped), (0, 1));
        let mut p = kernel_v4();
        p[11] = 40; // entry 36 + param 4
        p.extend_from_slice(&[5, 2, 0, 0]);
        p[3] = 48;
        assert_eq!(decode(&p).unwrap().skipped, 1);
        p[44] = 5 | 0x40; // the same parameter, optional
        assert_eq!(decode(&p).unwrap().entries.len(), 1);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..200usize {
            let mut b = kernel_v4();
            b.resize(len.max(8), 0);
            for byte in b.iter_mut().skip(len % 8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *byte = x as u8;
            }
            let _ = decode(&b);
            let n = b.len() as u16;
            b[2..4].copy_from_slice(&n.to_be_bytes());
            b[0] = 0;
            b[5] = 1;
            b[6] = 0;
            b[7] = 0;
            let _ = decode(&b);
        }
    }
}
