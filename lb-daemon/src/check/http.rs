//! HTTP_GET and SSL_GET: one GET per url (hyper), plain or TLS (rustls), the request as
//! keepalived's template writes it (`http_protocol`: version and `Connection: close`).
//!
//! Bounded against hostile servers: hyper refuses a response head larger than
//! `MAX_HEAD` bytes (or with too many headers), the body is streamed into the MD5 and never
//! stored, and the caller wraps the whole exchange in the checker's timeout.

use std::{net::SocketAddr, sync::Arc};

use http_body_util::{BodyExt, Empty};
use hyper::{Request, Version, body::Bytes};
use hyper_util::rt::TokioIo;
use md5::{Digest, Md5};
use rustls::{
    ClientConfig, DigitallySignedStruct, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    pki_types::{CertificateDer, ServerName, UnixTime},
};
use tokio::io::{AsyncRead, AsyncWrite};

use super::{error::ProbeError, tcp};
use crate::config::HttpProtocol;

/// Largest response head (status line and headers) accepted; hyper's minimum is 8 KiB.
pub const MAX_HEAD: usize = 16 * 1024;

/// How much of a body a url's `regex` sees (keepalived matches the whole stream; a health
/// page is far smaller).
pub const MAX_REGEX_BODY: usize = 1024 * 1024;

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
    /// The body's first bytes, as many as asked for.
    pub body: Vec<u8>,
}

/// What of the body to read: its MD5, its first `keep` bytes, neither (the body is then
/// not read at all).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Want {
    pub digest: bool,
    pub keep: usize,
}

/// GETs `path`; reads the body only as far as `want` needs it.
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
        let stream = tokio_rustls::TlsConnector::from(tls_config())
            .connect(name, tcp)
            .await
            .map_err(|e| ProbeError::Tls(e.to_string()))?;
        exchange(stream, t, path, want).await
    } else {
        exchange(tcp, t, path, want).await
    }
}

/// One GET over an already connected `stream` (the fuzz target feeds it an in-memory pipe).
pub async fn exchange<S>(stream: S, t: &Target, path: &str, want: Want) -> Result<Reply, ProbeError>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    // keepalived's header names are title case; servers should not care, some do.
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .max_buf_size(MAX_HEAD)
        .title_case_headers(true)
        .handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
        .await
        .map_err(|e| ProbeError::Http(e.to_string()))?;
    // The connection task ends with the exchange (Connection: close) or when dropped.
    let driver = tokio::spawn(conn);
    let host = match &t.host {
        Some(h) => h.clone(),
        None => match t.addr {
            SocketAddr::V4(a) => format!("{}:{}", a.ip(), a.port()),
            SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        },
    };
    // keepalived's request_template: the version, User-Agent, Connection (1.0C and 1.1 only),
    // Host, in that order (hyper writes headers in insertion order).
    let mut req = Request::get(path)
        .version(if t.protocol == HttpProtocol::Http11 { Version::HTTP_11 } else { Version::HTTP_10 })
        .header(hyper::header::USER_AGENT, "KeepAliveClient");
    if t.protocol != HttpProtocol::Http10 {
        req = req.header(hyper::header::CONNECTION, "close");
    }
    let req = req
        .header(hyper::header::HOST, host)
        .body(Empty::new())
        .map_err(|e| ProbeError::Http(format!("bad request for {path}: {e}")))?;
    let result = async {
        let resp = sender.send_request(req).await.map_err(|e| ProbeError::Http(e.to_string()))?;
        let status = resp.status().as_u16();
        if want == Want::default() {
            return Ok(Reply { status, digest: None, body: Vec::new() });
        }
        let mut md5 = Md5::new();
        let mut kept = Vec::new();
        let mut body = resp.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ProbeError::Http(format!("reading the body: {e}")))?;
            if let Some(data) = frame.data_ref() {
                md5.update(data);
                let room = want.keep - kept.len();
                kept.extend_from_slice(&data[..data.len().min(room)]);
            }
        }
        let digest = want.digest.then(|| hex(&md5.finalize()));
        Ok(Reply { status, digest, body: kept })
    }
    .await;
    driver.abort();
    result
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// keepalived's SSL_GET does not verify the server's certificate (it checks the service,
/// not its identity); neither do we. The handshake itself must still succeed.
fn tls_config() -> Arc<ClientConfig> {
    static CONFIG: std::sync::OnceLock<Arc<ClientConfig>> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let verifier = Arc::new(AcceptAny(provider.clone()));
            let config = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|b| b.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth());
            // The ring provider supports the default versions; failing here is a build bug.
            Arc::new(config.unwrap_or_else(|e| panic!("rustls ring provider: {e}")))
        })
        .clone()
}

#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    // Signatures are still checked: the server must hold the key of the certificate it sent.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
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
