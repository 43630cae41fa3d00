//! One function per fuzz target: what `fuzz/fuzz_targets/*.rs` runs under libFuzzer and what
//! the suite's short pass (below) runs on the committed seed corpus and on arbitrary bytes.
//! Each must return for every input, never panic; a crash libFuzzer finds becomes a seed
//! file in `fuzz/corpus/<target>/`, so this pass keeps it from coming back.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use crate::vrrp::packet::{Advert, Expect};

/// The config lexer, parser, semantic checks and error rendering.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = crate::config::parse_str("fuzz.conf", &text).render();
}

/// The VRRP advert parser and every receive check; the first byte picks the expectation
/// (v2/v3, IPv4/IPv6, password, TTL check), the rest is the message.
pub fn vrrp_advert(data: &[u8]) {
    let Some((&sel, msg)) = data.split_first() else { return };
    let v6 = sel & 1 != 0;
    let (src, dst): (IpAddr, IpAddr) = if v6 {
        (IpAddr::V6("fe80::1".parse().unwrap_or(std::net::Ipv6Addr::LOCALHOST)), IpAddr::V6(VRRP_GROUP6))
    } else {
        (IpAddr::V4([192, 0, 2, 1].into()), IpAddr::V4([224, 0, 0, 18].into()))
    };
    let e = Expect {
        version: if sel & 2 != 0 { 3 } else { 2 },
        vrid: 51,
        interval_cs: 100,
        password: if sel & 4 != 0 { Some(b"secret") } else { None },
        v6,
        check_ttl: sel & 8 != 0,
        ah: false,
    };
    let _ = Advert::parse(msg, src, dst, 255, &e);
    let _ = crate::vrrp::packet::ipv4_header(msg);
}

const VRRP_GROUP6: std::net::Ipv6Addr = std::net::Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);

/// The IPVS generic-netlink decoder on a whole message, then every typed reading.
pub fn ipvs_msg(data: &[u8]) {
    crate::ipvs::msg::decode_any(data);
}

/// The IPVS sync protocol decoder (a datagram as a sync backup receives it), then each entry
/// translated for a fixed set of services, as the backup applies them.
pub fn ipvs_sync(data: &[u8]) {
    use crate::dataplane::ctsync::{msg, xlate};
    let Ok(m) = msg::decode(data) else { return };
    let mut dir = xlate::Directory::default();
    let key = lb_common::ServiceKey::v4([203, 0, 113, 10], 80, lb_common::consts::IPPROTO_TCP);
    let real = SocketAddr::from(([198, 51, 100, 11], 80));
    dir.add(2, &[key], crate::config::ForwardMethod::Nat, &[(real, 7)]);
    for e in &m.entries {
        let _ = xlate::from_entry(e, &dir, 1);
    }
    // What decodes encodes back to datagrams that decode to the same entries.
    let again: Vec<msg::Entry> = msg::encode(m.sync_id, &m.entries, 1472)
        .iter()
        .filter_map(|g| msg::decode(g).ok())
        .flat_map(|d| d.entries)
        .collect();
    assert_eq!(again, m.entries, "re-encoding changed the entries");
}

/// The HTTP_GET / SSL_GET reply reader on `data` as a real server's whole answer (the
/// first byte asks for the body digest or not). Returns the reply when it parsed; it is
/// bounded by the head limit and a 1 s timer, so a hostile answer can neither grow memory
/// nor hang it.
pub fn http_reply(data: &[u8]) -> Option<crate::check::http::Reply> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (&sel, answer) = data.split_first()?;
    let answer = answer.to_vec();
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().ok()?;
    rt.block_on(async move {
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        let peer = tokio::spawn(async move {
            let mut req = [0u8; 1024];
            let _ = server.read(&mut req).await;
            let _ = server.write_all(&answer).await;
            let _ = server.shutdown().await;
            // Drain until the client is gone so a large answer is never stuck.
            while server.read(&mut req).await.is_ok_and(|n| n > 0) {}
        });
        let t = crate::check::http::Target {
            addr: SocketAddr::from(([192, 0, 2, 10], 80)),
            from: crate::check::tcp::Origin::default(),
            tls: false,
            sni: None,
            host: None,
            protocol: match sel >> 1 & 3 {
                0 => crate::config::HttpProtocol::Http10,
                1 => crate::config::HttpProtocol::Http10Close,
                _ => crate::config::HttpProtocol::Http11,
            },
        };
        let r = tokio::time::timeout(
            Duration::from_secs(1),
            crate::check::http::exchange(
                client,
                &t,
                "/",
                crate::check::http::Want { digest: sel & 1 != 0, keep: if sel & 8 != 0 { 64 } else { 0 } },
            ),
        )
        .await
        .ok()
        .and_then(Result::ok);
        peer.abort();
        r
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use proptest::prelude::*;

    use super::*;

    /// Every committed seed of `target`, whole and cut at every length.
    fn seeds(target: &str, run: impl Fn(&[u8])) -> usize {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target);
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let bytes = std::fs::read(e.unwrap().path()).unwrap();
            run(&bytes);
            for cut in 0..bytes.len() {
                run(&bytes[..cut]);
            }
            n += 1;
        }
        n
    }

    #[test]
    fn config_seeds() {
        assert!(seeds("config", config) >= 9);
    }

    #[test]
    fn vrrp_advert_seeds() {
        assert!(seeds("vrrp_advert", vrrp_advert) >= 3);
    }

    #[test]
    fn ipvs_msg_seeds() {
        assert!(seeds("ipvs_msg", ipvs_msg) >= 10);
    }

    #[test]
    fn ipvs_sync_seeds() {
        assert!(seeds("ipvs_sync", ipvs_sync) >= 3);
    }

    #[test]
    fn http_reply_seeds() {
        // Cutting every seed at every length is slow here (a runtime per input): whole seeds
        // and a few cuts, then check that the good ones parse to what they say.
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/http_reply");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let bytes = std::fs::read(e.unwrap().path()).unwrap();
            for cut in (0..bytes.len()).step_by(7).chain([bytes.len()]) {
                http_reply(&bytes[..cut]);
            }
            n += 1;
        }
        assert!(n >= 4);
        let ok = http_reply(b"\x01HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello").unwrap();
        assert_eq!((ok.status, ok.digest.as_deref()), (200, Some("5d41402abc4b2a76b9719d911017c592")));
        assert_eq!(http_reply(b"\x00HTTP/1.0 503 Busy\r\n\r\n").map(|r| r.status), Some(503));
        assert_eq!(http_reply(b"\x00SSH-2.0-OpenSSH\r\n"), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1024, ..Default::default() })]
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            config(&bytes);
            vrrp_advert(&bytes);
            ipvs_msg(&bytes);
            ipvs_sync(&bytes);
        }

        #[test]
        fn arbitrary_http_replies_never_panic(
            head in "HTTP/1\\.[01] [0-9]{1,4}[ -~]{0,20}\r\n([A-Za-z-]{1,12}: [ -~]{0,30}\r\n){0,6}\r\n",
            body in proptest::collection::vec(any::<u8>(), 0..200),
            digest in any::<bool>(),
        ) {
            let mut data = vec![u8::from(digest)];
            data.extend_from_slice(head.as_bytes());
            data.extend_from_slice(&body);
            if let Some(r) = http_reply(&data) {
                // Three digits, as keepalived's extract_status_code reads them ("000" is 0).
                prop_assert!(r.status < 1000);
                prop_assert_eq!(r.digest.is_some(), digest);
            }
        }
    }
}
