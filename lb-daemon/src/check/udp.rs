//! UDP_CHECK, as keepalived 2.2.7's check_udp.c: one datagram to the real server on a
//! connected socket, then wait `connect_timeout` for an answer.
//!
//! - An ICMP error (port or host unreachable) reported on the socket fails the check.
//! - Silence passes, unless `require_reply` is set.
//! - A reply passes, unless `require_reply` gave data: then its length must be within
//!   `min_reply_length`..=`max_reply_length` and its first bytes (as many as both have)
//!   must match the data, nibbles written `x` matching anything.

use std::{net::SocketAddr, time::Duration};

use super::{error::ProbeError, tcp::Origin};

/// What to send and what to accept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    /// None: keepalived's filler, "keepalived check - " repeated over 32 bytes.
    pub payload: Option<Vec<u8>>,
    pub require_reply: bool,
    /// Expected leading bytes; empty: any reply.
    pub reply: Vec<u8>,
    /// Per byte of `reply`, the bits that may differ (empty: none).
    pub mask: Vec<u8>,
    pub min_len: u16,
    pub max_len: u16,
}

/// keepalived's `set_buf`: the text repeated to fill `len` bytes.
pub fn filler(len: usize) -> Vec<u8> {
    b"keepalived check - ".iter().copied().cycle().take(len).collect()
}

impl Spec {
    pub fn payload(&self) -> Vec<u8> {
        self.payload.clone().unwrap_or_else(|| filler(32))
    }

    /// Whether a reply of these bytes passes (keepalived's `check_udp_reply`, inverted).
    /// Lengths are only checked when reply data is configured, as in keepalived.
    pub fn accepts(&self, got: &[u8]) -> Result<(), String> {
        if self.reply.is_empty() {
            return Ok(());
        }
        if got.len() < usize::from(self.min_len) || got.len() > usize::from(self.max_len) {
            return Err(format!("reply of {} bytes, expected {}-{}", got.len(), self.min_len, self.max_len));
        }
        for (i, (g, want)) in got.iter().zip(&self.reply).enumerate() {
            let ignore = self.mask.get(i).copied().unwrap_or(0);
            if (g ^ want) & !ignore != 0 {
                return Err(format!("reply data mismatch at byte {i}: {g:#04x}, expected {want:#04x}"));
            }
        }
        Ok(())
    }
}

/// Sets IP_RECVERR (IPV6_RECVERR): every ICMP error for the socket's datagrams is reported
/// on it, as keepalived asks, not only the "hard" ones a connected socket gets anyway.
pub fn recv_errors(sock: &socket2::Socket, v6: bool) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    let (level, name) = if v6 { (libc::SOL_IPV6, libc::IPV6_RECVERR) } else { (libc::SOL_IP, libc::IP_RECVERR) };
    // SAFETY: a valid socket and a c_int option of the right size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&raw const on).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// A connected, non-blocking UDP socket to `addr` from `from`.
pub fn connected(addr: SocketAddr, from: Origin) -> Result<tokio::net::UdpSocket, ProbeError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let err = |e: std::io::Error| ProbeError::Connect(e.to_string());
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(err)?;
    recv_errors(&sock, addr.is_ipv6()).map_err(err)?;
    from.apply((&sock).into())?;
    if let Some(b) = from.bind {
        sock.set_reuse_address(true).map_err(err)?;
        sock.bind(&b.into()).map_err(|e| ProbeError::Connect(format!("binding to {b}: {e}")))?;
    }
    sock.set_nonblocking(true).map_err(err)?;
    sock.connect(&addr.into()).map_err(err)?;
    tokio::net::UdpSocket::from_std(sock.into()).map_err(err)
}

/// One UDP_CHECK round: `wait` is the connect timeout.
pub async fn check(addr: SocketAddr, from: Origin, spec: &Spec, wait: Duration) -> Result<(), ProbeError> {
    let sock = connected(addr, from)?;
    let payload = spec.payload();
    match sock.send(&payload).await {
        Ok(n) if n == payload.len() => {}
        Ok(n) => return Err(ProbeError::Udp(format!("sent {n} of {} bytes", payload.len()))),
        Err(e) => return Err(ProbeError::Udp(format!("send: {e}"))),
    }
    // One byte more than the longest accepted reply tells a too-long one apart.
    let mut buf = vec![0u8; usize::from(spec.max_len) + 1];
    match tokio::time::timeout(wait, sock.recv(&mut buf)).await {
        Err(_) if spec.require_reply => Err(ProbeError::Udp(format!("no reply within {wait:?}"))),
        Err(_) => Ok(()),
        // ICMP unreachable (port, host, network...) arrives here as the socket's error.
        Ok(Err(e)) => Err(ProbeError::Udp(e.to_string())),
        Ok(Ok(n)) => spec.accepts(&buf[..n]).map_err(ProbeError::Udp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::lvs::parse_hex;

    fn spec(reply: &str, min: u16, max: u16) -> Spec {
        let (reply, mask) = if reply.is_empty() { (vec![], vec![]) } else { parse_hex(reply, true).unwrap() };
        Spec { payload: None, require_reply: true, reply, mask, min_len: min, max_len: max }
    }

    #[test]
    fn hex_strings_as_keepalived_reads_them() {
        assert_eq!(parse_hex("01 02 0304", false), Some((vec![1, 2, 3, 4], vec![])));
        // A lone digit before a blank or the end is a byte of its own.
        assert_eq!(parse_hex("1 abC", false), Some((vec![1, 0xab, 0x0c], vec![])));
        assert_eq!(parse_hex("6x x5", true), Some((vec![0x60, 0x05], vec![0x0f, 0xf0])));
        assert_eq!(parse_hex("6x", false), None);
        assert_eq!(parse_hex("zz", true), None);
        assert_eq!(parse_hex("  ", true), None);
    }

    #[test]
    fn reply_matching() {
        let s = spec("62 65 3x", 2, 10);
        assert_eq!(s.accepts(b"be0"), Ok(()));
        assert_eq!(s.accepts(b"be7 and more"), Err("reply of 12 bytes, expected 2-10".into()));
        assert_eq!(s.accepts(b"be"), Ok(())); // only the bytes both have are compared
        assert_eq!(s.accepts(b"b"), Err("reply of 1 bytes, expected 2-10".into()));
        assert!(s.accepts(b"bf0").unwrap_err().contains("mismatch at byte 1"));
        assert!(s.accepts(b"beA").unwrap_err().contains("mismatch at byte 2"));
        // require_reply without data: any reply, any length.
        assert_eq!(spec("", 5, 6).accepts(b"x"), Ok(()));
        assert_eq!(filler(32), b"keepalived check - keepalived ch");
    }

    #[tokio::test]
    async fn reply_silence_and_unreachable() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let t = Duration::from_millis(300);
        // Silence: passes unless a reply is required.
        let quiet = Spec { require_reply: false, ..spec("", 0, 255) };
        check(addr, Origin::default(), &quiet, t).await.unwrap();
        let e = check(addr, Origin::default(), &spec("", 0, 255), t).await.unwrap_err();
        assert!(e.to_string().contains("no reply"), "{e}");
        let mut got = [0u8; 64];
        for _ in 0..2 {
            let (n, _) = server.recv_from(&mut got).unwrap();
            assert_eq!(&got[..n], filler(32).as_slice());
        }
        // A reply that matches, and one that does not.
        let answer = std::thread::spawn(move || {
            for reply in [&b"be0"[..], b"xx0"] {
                let (_, from) = server.recv_from(&mut got).unwrap();
                server.send_to(reply, from).unwrap();
            }
            server
        });
        let want = Spec { payload: Some(b"ping".to_vec()), ..spec("62 65", 0, 255) };
        check(addr, Origin { bind: Some("127.0.0.2:0".parse().unwrap()), ..Origin::default() }, &want, t)
            .await
            .unwrap();
        assert!(check(addr, Origin::default(), &want, t).await.is_err());
        drop(answer.join().unwrap());
        // Closed port: the ICMP port unreachable fails it even without require_reply.
        let e = check(addr, Origin::default(), &quiet, t).await.unwrap_err();
        assert!(e.to_string().contains("refused"), "{e}");
        // The same over IPv6 (ICMPv6 port unreachable).
        let six = std::net::UdpSocket::bind("[::1]:0").unwrap();
        let addr6 = six.local_addr().unwrap();
        check(addr6, Origin::default(), &quiet, t).await.unwrap();
        drop(six);
        let e = check(addr6, Origin::default(), &quiet, t).await.unwrap_err();
        assert!(e.to_string().contains("refused"), "{e}");
    }
}
