//! DNS_CHECK, as keepalived 2.2.7's check_dns.c: one query (recursion desired, a random
//! id, class IN) over UDP; the check passes on the first datagram that carries the query's
//! id, is a response (QR set) and has RCODE 0 (NOERROR). Answers are not read: an empty
//! NOERROR answer passes. Datagrams with another id, or that are not responses, or too
//! short for a header, are ignored; a non-zero RCODE fails; nothing within
//! `connect_timeout` fails.

use std::{net::SocketAddr, time::Duration};

use super::{error::ProbeError, tcp::Origin, udp};

/// keepalived's receive buffer.
const BUFFER: usize = 768;
const HEADER: usize = 12;

/// The query: header (id, RD, one question) and the question for `name` (dot-separated;
/// empty or "." is the root), `qtype`, class IN.
pub fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = Vec::with_capacity(HEADER + name.len() + 6);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // QDCOUNT 1
    for label in name.trim_end_matches('.').split('.').filter(|l| !l.is_empty()) {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes()); // IN
    q
}

/// What a received datagram means for query `id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not the answer: keep waiting.
    Ignore,
    Pass,
    /// The answer, with this RCODE.
    Rcode(u8),
}

pub fn judge(id: u16, reply: &[u8]) -> Verdict {
    if reply.len() < HEADER || reply[..2] != id.to_be_bytes() {
        return Verdict::Ignore;
    }
    let flags = u16::from_be_bytes([reply[2], reply[3]]);
    if flags & 0x8000 == 0 {
        return Verdict::Ignore; // a query, not a response
    }
    match (flags & 0x000f) as u8 {
        0 => Verdict::Pass,
        rcode => Verdict::Rcode(rcode),
    }
}

/// One DNS_CHECK round.
pub async fn check(addr: SocketAddr, from: Origin, name: &str, qtype: u16, wait: Duration) -> Result<(), ProbeError> {
    let sock = udp::connected(addr, from)?;
    let id: u16 = rand::random();
    let q = query(id, name, qtype);
    sock.send(&q).await.map_err(|e| ProbeError::Dns(format!("send: {e}")))?;
    let mut buf = [0u8; BUFFER];
    let answer = async {
        loop {
            let n = sock.recv(&mut buf).await.map_err(|e| ProbeError::Dns(format!("read: {e}")))?;
            match judge(id, &buf[..n]) {
                Verdict::Ignore => continue,
                Verdict::Pass => return Ok(()),
                Verdict::Rcode(rc) => return Err(ProbeError::Dns(format!("answer with rcode {rc}"))),
            }
        }
    };
    match tokio::time::timeout(wait, answer).await {
        Ok(r) => r,
        Err(_) => Err(ProbeError::Dns(format!("no answer within {wait:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_bytes() {
        let q = query(0xbeef, "www.example.com", 1);
        let mut want = vec![0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        want.extend_from_slice(b"\x03www\x07example\x03com\x00\x00\x01\x00\x01");
        assert_eq!(q, want);
        // A trailing dot is the same name; empty and "." are the root; SOA is 6.
        assert_eq!(query(1, "www.example.com.", 1)[12..], want[12..]);
        assert_eq!(query(1, "", 6)[12..], [0, 0, 6, 0, 1]);
        assert_eq!(query(1, ".", 6)[12..], [0, 0, 6, 0, 1]);
    }

    #[test]
    fn replies() {
        let mut r = query(7, "example.com", 6);
        assert_eq!(judge(7, &r), Verdict::Ignore); // our own query (QR clear)
        r[2] |= 0x80;
        assert_eq!(judge(7, &r), Verdict::Pass);
        assert_eq!(judge(8, &r), Verdict::Ignore); // another id
        assert_eq!(judge(7, &r[..11]), Verdict::Ignore); // short of a header
        r[3] |= 3; // NXDOMAIN
        assert_eq!(judge(7, &r), Verdict::Rcode(3));
    }

    #[tokio::test]
    async fn against_a_responder() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let t = Duration::from_millis(500);
        let h = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            // 1: a wrong id then the answer; 2: SERVFAIL; 3: silence.
            for rcode in [0u8, 2] {
                let (n, from) = server.recv_from(&mut buf).unwrap();
                let mut r = buf[..n].to_vec();
                r[2] |= 0x80;
                r[3] |= rcode;
                let mut wrong = r.clone();
                wrong[0] ^= 0xff;
                server.send_to(&wrong, from).unwrap();
                server.send_to(&r, from).unwrap();
            }
            server
        });
        check(addr, Origin::default(), "example.com", 1, t).await.unwrap();
        let e = check(addr, Origin::default(), "example.com", 1, t).await.unwrap_err();
        assert_eq!(e.to_string(), "answer with rcode 2");
        let _server = h.join().unwrap();
        let e = check(addr, Origin::default(), "example.com", 1, t).await.unwrap_err();
        assert!(e.to_string().contains("no answer"), "{e}");
    }
}
