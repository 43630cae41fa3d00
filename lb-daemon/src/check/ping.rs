//! PING_CHECK, as keepalived 2.2.7's check_ping.c: one ICMP (ICMPv6) echo request; an echo
//! reply within `connect_timeout` passes, silence or an ICMP error fails.
//!
//! The socket is a ping socket (SOCK_DGRAM, IPPROTO_ICMP: the kernel sets the identifier,
//! the checksum and hands back only our replies) when `net.ipv4.ping_group_range` allows
//! it; otherwise a raw socket (the daemon runs with CAP_NET_RAW), where we pick the
//! identifier and skip every ICMP message that is not our reply. keepalived widens
//! ping_group_range instead; we leave the sysctl alone.

use std::{
    net::{IpAddr, SocketAddr},
    sync::atomic::{AtomicU16, Ordering},
    time::Duration,
};

use socket2::{Domain, Protocol, Socket, Type};

use super::{error::ProbeError, udp::filler};

const ECHO_REQUEST_V4: u8 = 8;
const ECHO_REPLY_V4: u8 = 0;
const ECHO_REQUEST_V6: u8 = 128;
const ECHO_REPLY_V6: u8 = 129;
/// keepalived's ICMP_BUFSIZE.
const PAYLOAD: usize = 56;

static SEQ: AtomicU16 = AtomicU16::new(0);

/// The Internet checksum (RFC 1071).
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An echo request. ICMPv6's checksum covers a pseudo-header and the kernel fills it in;
/// ICMP's we compute (a ping socket recomputes it with its own identifier).
pub fn echo_request(v6: bool, id: u16, seq: u16) -> Vec<u8> {
    let mut p = vec![if v6 { ECHO_REQUEST_V6 } else { ECHO_REQUEST_V4 }, 0, 0, 0];
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&filler(PAYLOAD));
    if !v6 {
        let c = checksum(&p);
        p[2..4].copy_from_slice(&c.to_be_bytes());
    }
    p
}

/// Whether `got` is the reply to our request `seq` (and, on a raw socket, `id`). A raw IPv4
/// socket delivers the IP header too; ICMPv6 and ping sockets do not.
pub fn is_reply(v6: bool, raw: bool, id: u16, seq: u16, got: &[u8]) -> bool {
    let icmp = if raw && !v6 {
        let ihl = usize::from(got.first().map_or(0, |b| b & 0x0f)) * 4;
        if ihl < 20 || got.len() < ihl {
            return false;
        }
        &got[ihl..]
    } else {
        got
    };
    if icmp.len() < 8 || icmp[0] != if v6 { ECHO_REPLY_V6 } else { ECHO_REPLY_V4 } {
        return false;
    }
    // A ping socket's kernel already matched the identifier (it rewrote ours).
    (!raw || icmp[4..6] == id.to_be_bytes()) && icmp[6..8] == seq.to_be_bytes()
}

/// A ping socket if allowed, else a raw one; says which.
fn socket(v6: bool) -> std::io::Result<(Socket, bool)> {
    let (domain, proto) = if v6 { (Domain::IPV6, Protocol::ICMPV6) } else { (Domain::IPV4, Protocol::ICMPV4) };
    match Socket::new(domain, Type::DGRAM, Some(proto)) {
        Ok(s) => Ok((s, false)),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM)) => {
            static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
            if !SAID.swap(true, Ordering::Relaxed) {
                tracing::info!("PING_CHECK: net.ipv4.ping_group_range excludes this group; using raw ICMP sockets");
            }
            Ok((Socket::new(domain, Type::RAW, Some(proto))?, true))
        }
        Err(e) => Err(e),
    }
}

/// One PING_CHECK round.
pub async fn check(addr: IpAddr, bind: Option<IpAddr>, wait: Duration) -> Result<(), ProbeError> {
    let err = |e: std::io::Error| ProbeError::Ping(e.to_string());
    let v6 = addr.is_ipv6();
    let (sock, raw) = socket(v6).map_err(err)?;
    if let Some(b) = bind {
        sock.bind(&SocketAddr::new(b, 0).into()).map_err(|e| ProbeError::Ping(format!("binding to {b}: {e}")))?;
    }
    sock.set_nonblocking(true).map_err(err)?;
    sock.connect(&SocketAddr::new(addr, 0).into()).map_err(err)?;
    let sock = tokio::net::UdpSocket::from_std(std::net::UdpSocket::from(sock)).map_err(err)?;
    let id: u16 = rand::random();
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    sock.send(&echo_request(v6, id, seq)).await.map_err(|e| ProbeError::Ping(format!("send: {e}")))?;
    let mut buf = [0u8; 1500];
    let reply = async {
        loop {
            let n = sock.recv(&mut buf).await.map_err(err)?;
            if is_reply(v6, raw, id, seq, &buf[..n]) {
                return Ok(());
            }
        }
    };
    match tokio::time::timeout(wait, reply).await {
        Ok(r) => r,
        Err(_) => Err(ProbeError::Ping(format!("no echo reply within {wait:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_and_reply_bytes() {
        let p = echo_request(false, 0x1234, 7);
        assert_eq!(&p[..2], [8, 0]);
        assert_eq!(&p[4..8], [0x12, 0x34, 0, 7]);
        assert_eq!(p.len(), 8 + 56);
        assert_eq!(checksum(&p), 0, "a correct checksum sums to zero");
        let v6 = echo_request(true, 1, 2);
        assert_eq!(&v6[..4], [128, 0, 0, 0]);
        // The reply a host sends back: type 0, same id and sequence.
        let mut reply = p.clone();
        reply[0] = 0;
        assert!(is_reply(false, false, 0, 7, &reply)); // ping socket: id not ours to check
        assert!(!is_reply(false, false, 0, 8, &reply));
        assert!(!is_reply(false, false, 0, 7, &p)); // a request is no reply
        let mut ip = vec![0x45; 1];
        ip.extend_from_slice(&[0; 19]);
        ip.extend_from_slice(&reply);
        assert!(is_reply(false, true, 0x1234, 7, &ip));
        assert!(!is_reply(false, true, 0x4321, 7, &ip));
        assert!(!is_reply(false, true, 0x1234, 7, &reply)); // no IP header
        let mut r6 = v6.clone();
        r6[0] = 129;
        assert!(is_reply(true, true, 1, 2, &r6) && !is_reply(true, true, 1, 2, &v6));
    }

    #[tokio::test]
    async fn loopback_answers() {
        check("127.0.0.1".parse().unwrap(), None, Duration::from_secs(1)).await.unwrap();
        check("::1".parse().unwrap(), None, Duration::from_secs(1)).await.unwrap();
    }
}
