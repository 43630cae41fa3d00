//! HTTP_GET and SSL_GET: one GET per url, plain or TLS (rustls), written and read as
//! keepalived 2.2.7's check_http.c and lib/html.c do: its request template (`http_protocol`:
//! version and `Connection: close`), its status code and Content-Length parsing, and the body
//! to the end of the stream with no transfer coding undone (its MD5 covers chunk framing).
//!
//! Bounded against hostile servers: the response head must end within `MAX_HEAD` bytes, the
//! body is streamed into the MD5 and only `Want::keep` bytes of it stored, and the caller
//! wraps the whole exchange in the checker's timeout.

use std::net::SocketAddr;

use md5::{Digest, Md5};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{error::ProbeError, tcp};
use crate::config::HttpProtocol;

/// The response head must end within keepalived's read buffer (MAX_BUFFER_LENGTH, 4096, one
/// byte kept for a NUL): a longer head is a failure there, so it is here.
pub const MAX_HEAD: usize = 4095;

/// How much of an answer a url's `regex` sees (keepalived matches the whole stream; a health
/// page is far smaller).
pub const MAX_REGEX_ANSWER: usize = 1024 * 1024;

/// Where and how to ask.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub addr: SocketAddr,
    pub from: tcp::Origin,
    pub tls: bool,
    /// The name sent in the TLS handshake (SNI), if any: keepalived's `enable_sni`.
    pub sni: Option<String>,
    /// The Host header; the address when unset.
    pub host: Option<String>,
    /// `http_protocol`: HTTP/1.0 by default, as keepalived.
    pub protocol: HttpProtocol,
}

/// What one GET returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// Lower-case hex MD5 of the body, when asked for.
    pub digest: Option<String>,
    /// The answer's first bytes as received, status line and headers included (what
    /// keepalived's regex sees), as many as asked for.
    pub raw: Vec<u8>,
}

/// What to take from the answer, which is always read to the end of the stream as keepalived
/// reads it: the body's MD5, the answer's first `keep` bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Want {
    pub digest: bool,
    pub keep: usize,
}

/// GETs `path` and reads the whole answer.
pub async fn get(t: &Target, path: &str, want: Want) -> Result<Reply, ProbeError> {
    let tcp = tcp::connect(t.addr, t.from).await?;
    if t.tls {
        // An address as the name sends no SNI (certificates are not verified, so the name is
        // for SNI only).
        let name = match &t.sni {
            Some(h) => {
                ServerName::try_from(h.clone()).map_err(|e| ProbeError::Tls(format!("bad host name {h}: {e}")))?
            }
            None => ServerName::IpAddress(t.addr.ip().into()),
        };
        let stream = tokio_rustls::TlsConnector::from(super::tls::running_config()?)
            .connect(name, tcp)
            .await
            .map_err(|e| ProbeError::Tls(e.to_string()))?;
        exchange(stream, t, path, want).await
    } else {
        exchange(tcp, t, path, want).await
    }
}

/// One GET over an already connected `stream` (the fuzz target feeds it an in-memory pipe).
pub async fn exchange<S>(mut stream: S, t: &Target, path: &str, want: Want) -> Result<Reply, ProbeError>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    stream
        .write_all(request(t, path).as_bytes())
        .await
        .map_err(|e| ProbeError::Http(format!("sending the request: {e}")))?;
    let mut buf = vec![0u8; 4096];
    // The head, in keepalived's one buffer.
    let mut got = Vec::new();
    let head_len = loop {
        let n = read(&mut stream, &mut buf).await?;
        got.extend_from_slice(&buf[..n]);
        let window = &got[..got.len().min(MAX_HEAD)];
        if let Some(end) = window.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        if n == 0 || got.len() >= MAX_HEAD {
            return Err(ProbeError::Http(if n == 0 {
                "the connection closed before a whole response head".into()
            } else {
                format!("no end of the response head within {MAX_HEAD} bytes (keepalived's buffer)")
            }));
        }
    };
    let (head, rest) = got.split_at(head_len);
    let status = status_code(head).ok_or_else(|| {
        let line = head.split(|b| *b == b'\r').next().unwrap_or_default();
        ProbeError::Http(format!("no status code in `{}`", String::from_utf8_lossy(&line[..line.len().min(80)])))
    })?;
    let content_len = content_length(head);
    // The body as it comes, to the end of the stream, as keepalived reads it: the digest
    // covers at most Content-Length bytes and no transfer coding is undone.
    let mut md5 = want.digest.then(Md5::new);
    let mut kept = head[..head.len().min(want.keep)].to_vec();
    let mut seen = 0usize;
    let mut take = |bytes: &[u8]| {
        if let Some(md5) = md5.as_mut() {
            let digested = content_len.map_or(bytes.len(), |l| l.saturating_sub(seen).min(bytes.len()));
            md5.update(&bytes[..digested]);
        }
        let room = want.keep - kept.len();
        kept.extend_from_slice(&bytes[..bytes.len().min(room)]);
        seen += bytes.len();
    };
    take(rest);
    loop {
        let n = read(&mut stream, &mut buf).await?;
        if n == 0 {
            break;
        }
        take(&buf[..n]);
    }
    let digest = md5.map(|m| hex(&m.finalize()));
    Ok(Reply { status, digest, raw: kept })
}

/// keepalived 2.2.7's request_template, byte for byte: the version, User-Agent, Connection
/// (1.0C and 1.1 only), Host (the virtual host, else the address and port).
fn request(t: &Target, path: &str) -> String {
    let host = match &t.host {
        Some(h) => h.clone(),
        None => match t.addr {
            SocketAddr::V4(a) => format!("{}:{}", a.ip(), a.port()),
            SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        },
    };
    let (minor, close) = match t.protocol {
        HttpProtocol::Http10 => (0, ""),
        HttpProtocol::Http10Close => (0, "Connection: close\r\n"),
        HttpProtocol::Http11 => (1, "Connection: close\r\n"),
    };
    format!("GET {path} HTTP/1.{minor}\r\nUser-Agent: KeepAliveClient\r\n{close}Host: {host}\r\n\r\n")
}

/// One read; the end of a TLS stream without close_notify counts as its end, as keepalived's
/// SSL reads end there too.
async fn read<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut [u8]) -> Result<usize, ProbeError> {
    match stream.read(buf).await {
        Ok(n) => Ok(n),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
        Err(e) => Err(ProbeError::Http(format!("read error: {e}"))),
    }
}

/// keepalived's extract_status_code: the three digits between the first space and the next.
pub fn status_code(head: &[u8]) -> Option<u16> {
    let space = head.iter().take_while(|b| **b != b'\r').position(|b| *b == b' ')?;
    let code = head.get(space + 1..space + 5)?;
    (code[..3].iter().all(u8::is_ascii_digit) && code[3] == b' ')
        .then(|| code[..3].iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0')))
}

/// keepalived's extract_content_length: `Content-Length:` as written (case and all), then a
/// number that ends the line; anything else means no length.
pub fn content_length(head: &[u8]) -> Option<usize> {
    const TAG: &[u8] = b"Content-Length:";
    let at = head.windows(TAG.len()).position(|w| w == TAG)? + TAG.len();
    let text = &head[at..];
    let text = &text[text.iter().take_while(|b| b.is_ascii_whitespace() && **b != b'\r' && **b != b'\n').count()..];
    let digits = text.iter().take_while(|b| b.is_ascii_digit()).count();
    let end = text.get(digits).copied();
    if digits == 0 || !matches!(end, Some(b'\r' | b'\n') | None) {
        return None;
    }
    std::str::from_utf8(&text[..digits]).ok()?.parse().ok()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    /// A one-shot server that answers with `reply` (raw bytes) after reading the request.
    async fn serve(reply: Vec<u8>) -> (SocketAddr, tokio::task::JoinHandle<String>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let h = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = s.read(&mut buf).await.unwrap();
            let _ = s.write_all(&reply).await;
            let _ = s.shutdown().await;
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        (addr, h)
    }

    fn target(addr: SocketAddr) -> Target {
        Target { addr, from: tcp::Origin::default(), tls: false, sni: None, host: None, protocol: HttpProtocol::Http11 }
    }

    #[tokio::test]
    async fn status_digest_and_request_headers() {
        let (addr, req) = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec()).await;
        let mut t = target(addr);
        t.host = Some("www.example.test".into());
        let r = get(&t, "/health", Want { digest: true, keep: 0 }).await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.digest.as_deref(), Some("5d41402abc4b2a76b9719d911017c592")); // md5("hello")
        let req = req.await.unwrap();
        assert!(req.starts_with("GET /health HTTP/1.1\r\n"), "{req}");
        assert!(req.to_ascii_lowercase().contains("host: www.example.test\r\n"), "{req}");
        // Close-delimited body (no length), and another status.
        let (addr, _) = serve(b"HTTP/1.0 503 Busy\r\n\r\nbusy".to_vec()).await;
        let r = get(&target(addr), "/", Want { digest: true, keep: 0 }).await.unwrap();
        assert_eq!(r.status, 503);
        assert_eq!(r.digest, Some(hex(&Md5::digest(b"busy"))));
    }

    /// keepalived 2.2.7's request_template, byte for byte, for each `http_protocol`
    /// (tests/tests/checkers.rs compares with keepalived's own genhash too).
    #[tokio::test]
    async fn requests_are_keepalived_s_for_each_http_protocol() {
        let cases = [
            (HttpProtocol::Http10, "GET /health HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: HOST\r\n\r\n"),
            (
                HttpProtocol::Http10Close,
                "GET /health HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\nHost: HOST\r\n\r\n",
            ),
            (
                HttpProtocol::Http11,
                "GET /health HTTP/1.1\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\nHost: HOST\r\n\r\n",
            ),
        ];
        for (protocol, want) in cases {
            let (addr, req) = serve(b"HTTP/1.0 200 OK\r\n\r\n".to_vec()).await;
            let t = Target { protocol, ..target(addr) };
            get(&t, "/health", Want::default()).await.unwrap();
            assert_eq!(req.await.unwrap(), want.replace("HOST", &addr.to_string()), "{protocol:?}");
        }
    }

    /// keepalived reads the body as it comes: a chunked body is digested with its framing,
    /// Content-Length (as written) caps the digest, and the status is the three digits after
    /// the first space only when a space follows them.
    #[tokio::test]
    async fn bodies_and_heads_are_read_as_keepalived_reads_them() {
        let want = Want { digest: true, keep: 64 };
        let chunked = b"5\r\nhello\r\n0\r\n\r\n";
        let (addr, _) = serve([&b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"[..], chunked].concat()).await;
        let r = get(&target(addr), "/", want).await.unwrap();
        assert_eq!((r.status, r.digest), (200, Some(hex(&Md5::digest(chunked)))));
        assert!(r.raw.starts_with(b"HTTP/1.1 200 OK\r\n") && r.raw.ends_with(chunked), "{:?}", r.raw);
        let (addr, _) = serve(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nhello".to_vec()).await;
        let r = get(&target(addr), "/", want).await.unwrap();
        assert_eq!(r.digest, Some(hex(&Md5::digest(b"hel"))));
        assert!(r.raw.ends_with(b"\r\n\r\nhello"), "{:?}", r.raw);
        let (addr, _) = serve(b"HTTP/1.0 200 OK\r\ncontent-length: 3\r\n\r\nhello".to_vec()).await;
        let r = get(&target(addr), "/", want).await.unwrap();
        assert_eq!(r.digest, Some(hex(&Md5::digest(b"hello"))), "keepalived matches Content-Length as written");
        assert_eq!(status_code(b"HTTP/1.1 204 No Content\r\n"), Some(204));
        assert_eq!(status_code(b"HTTP/1.1 204\r\n"), None);
        assert_eq!(status_code(b"HTTP/1.1 2040 x\r\n"), None);
        assert_eq!(content_length(b"Content-Length:  12\r\n"), Some(12));
        assert_eq!(content_length(b"Content-Length: 12x\r\n"), None);
    }

    #[tokio::test]
    async fn endless_headers_are_cut_off() {
        let mut reply = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..4000 {
            reply.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "a".repeat(20)).as_bytes());
        }
        let (addr, _) = serve(reply).await;
        let e = get(&target(addr), "/", Want::default()).await.unwrap_err();
        assert!(matches!(e, ProbeError::Http(_)), "{e}");
    }

    #[tokio::test]
    async fn garbage_is_an_http_error() {
        let (addr, _) = serve(b"SSH-2.0-OpenSSH\r\n\r\n".to_vec()).await;
        let e = get(&target(addr), "/", Want::default()).await.unwrap_err();
        assert!(matches!(e, ProbeError::Http(_)), "{e}");
    }
}
