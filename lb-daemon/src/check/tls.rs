//! The top-level `SSL` block's files, loaded as keepalived 2.2.7's `build_ssl_ctx`
//! (check_ssl.c) loads them when the checkers start: the certificate chain SSL_GET presents,
//! its key (decrypted with `password` when encrypted), and the CA file, which must load
//! although nothing verifies against it (keepalived sets no verify mode on its context). A
//! file that does not load stops the start, as it stops keepalived's checker process, and
//! refuses a reload, keeping the running configuration.
//!
//! Like keepalived's one SSL context, the running configuration's certificate is shared by
//! every SSL_GET checker and replaced at a reload without restarting them ([`install`]), so a
//! certificate rotation keeps every real server's verdict.

use std::sync::{Arc, Mutex, PoisonError, RwLock};

use rustls::{
    DigitallySignedStruct, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime, pem::PemObject as _},
};

use super::error::ProbeError;
use crate::config::{ClientCert, Config, KeyFormat, SslContext};

/// The running configuration's client certificate (`Config::ssl_loaded`).
static RUNNING: RwLock<Option<Arc<ClientCert>>> = RwLock::new(None);

/// Makes `cert` the one SSL_GET presents from now on (at start, and after a reload with
/// the configuration then running).
pub fn install(cert: Option<Arc<ClientCert>>) {
    *RUNNING.write().unwrap_or_else(PoisonError::into_inner) = cert;
}

/// The client configuration for the running certificate, built once per certificate.
pub fn running_config() -> Result<Arc<rustls::ClientConfig>, ProbeError> {
    type Built = Option<(Option<Arc<ClientCert>>, Arc<rustls::ClientConfig>)>;
    static BUILT: Mutex<Built> = Mutex::new(None);
    let cert = RUNNING.read().unwrap_or_else(PoisonError::into_inner).clone();
    let mut built = BUILT.lock().unwrap_or_else(PoisonError::into_inner);
    let same = |b: &Option<Arc<ClientCert>>| match (b, &cert) {
        (None, None) => true,
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        _ => false,
    };
    if let Some((_, config)) = built.as_ref().filter(|(b, _)| same(b)) {
        return Ok(config.clone());
    }
    let config =
        Arc::new(client_config(cert.as_deref()).map_err(|e| ProbeError::Tls(format!("client configuration: {e}")))?);
    *built = Some((cert, config.clone()));
    Ok(config)
}

/// Whether any checker is an SSL_GET (keepalived loads the SSL files only then).
pub fn required(cfg: &Config) -> bool {
    cfg.virtual_servers
        .iter()
        .flat_map(|vs| &vs.real_servers)
        .flat_map(|rs| &rs.checkers)
        .any(|c| matches!(c.kind, crate::config::CheckKind::SslGet { .. }))
}

/// Loads `cfg.ssl`'s files into `cfg.ssl_loaded` when an SSL_GET needs them; a warning for
/// each thing that changes nothing but that the user should know.
pub fn load_into(cfg: &mut Config) -> Result<Vec<String>, String> {
    cfg.ssl_loaded = None;
    let Some(ssl) = cfg.ssl.as_ref().filter(|_| required(cfg)) else {
        return Ok(Vec::new());
    };
    let (cert, warnings) = load(ssl)?;
    cfg.ssl_loaded = cert.map(Arc::new);
    Ok(warnings)
}

/// The client certificate an `SSL` block names, if it names both a certificate and a key
/// (OpenSSL presents no certificate without both), with warnings.
pub fn load(ssl: &SslContext) -> Result<(Option<ClientCert>, Vec<String>), String> {
    let mut warnings = Vec::new();
    if let Some(ca) = &ssl.ca {
        let n = CertificateDer::pem_file_iter(ca)
            .map_err(|e| format!("SSL ca {ca}: {e}"))?
            .take_while(Result::is_ok)
            .count();
        if n == 0 {
            return Err(format!("SSL ca {ca}: no PEM certificate in it (keepalived: Cant load CA file)"));
        }
    }
    let chain = match &ssl.certificate {
        None => None,
        Some(file) => {
            let chain = CertificateDer::pem_file_iter(file)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("SSL certificate {file}: {e}"))?;
            if chain.is_empty() {
                return Err(format!("SSL certificate {file}: no PEM certificate in it"));
            }
            Some(chain)
        }
    };
    let key = match &ssl.key {
        None => None,
        Some(file) => Some(read_key(file, ssl.password.as_deref())?),
    };
    let cert = match (chain, key) {
        (Some(chain), Some((key, key_format))) => {
            let cert = ClientCert { chain: chain.iter().map(|c| c.to_vec()).collect(), key, key_format };
            // The key must be one rustls can sign with and must match the certificate.
            client_config(Some(&cert))
                .map_err(|e| format!("SSL key {}: {e}", ssl.key.as_deref().unwrap_or_default()))?;
            Some(cert)
        }
        (Some(_), None) => {
            warnings.push("SSL certificate without a key: SSL_GET presents no client certificate".into());
            None
        }
        (None, Some(_)) => {
            warnings.push("SSL key without a certificate: SSL_GET presents no client certificate".into());
            None
        }
        (None, None) => None,
    };
    Ok((cert, warnings))
}

/// The first private key of a PEM file: plain (PKCS#1, SEC1, PKCS#8) or an encrypted PKCS#8
/// (`ENCRYPTED PRIVATE KEY`, PBES2, as `openssl pkey -aes256` writes) decrypted with
/// `password`.
fn read_key(file: &str, password: Option<&str>) -> Result<(Vec<u8>, KeyFormat), String> {
    let bytes = std::fs::read(file).map_err(|e| format!("SSL key {file}: {e}"))?;
    let text = String::from_utf8_lossy(&bytes);
    // Checked first: its body would otherwise pass for a plain key's.
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(format!(
            "SSL key {file}: a legacy encrypted PEM key (Proc-Type) is not supported; convert it to PKCS#8 \
             (openssl pkcs8 -topk8 -v2 aes256 -in OLD -out NEW) or decrypt it"
        ));
    }
    if let Ok(key) = PrivateKeyDer::from_pem_slice(&bytes) {
        let format = match &key {
            PrivateKeyDer::Pkcs1(_) => KeyFormat::Pkcs1,
            PrivateKeyDer::Sec1(_) => KeyFormat::Sec1,
            _ => KeyFormat::Pkcs8,
        };
        return Ok((key.secret_der().to_vec(), format));
    }
    // The encrypted key's own section (the file may hold certificates too).
    const BEGIN: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
    const END: &str = "-----END ENCRYPTED PRIVATE KEY-----";
    let section = text.find(BEGIN).and_then(|a| text[a..].find(END).map(|b| &text[a..a + b + END.len()]));
    let Some(section) = section else {
        return Err(format!("SSL key {file}: no PEM private key in it (keepalived: Cant load key file)"));
    };
    let Some(password) = password else {
        return Err(format!("SSL key {file} is encrypted and the SSL block has no password"));
    };
    let (_, doc) = pkcs8::der::SecretDocument::from_pem(section).map_err(|e| format!("SSL key {file}: {e}"))?;
    let plain = pkcs8::EncryptedPrivateKeyInfo::try_from(doc.as_bytes())
        .map_err(|e| format!("SSL key {file}: {e}"))?
        .decrypt(password)
        .map_err(|e| format!("SSL key {file}: cannot decrypt it with the SSL password: {e}"))?;
    Ok((plain.as_bytes().to_vec(), KeyFormat::Pkcs8))
}

/// The key as rustls takes it.
fn private_key(cert: &ClientCert) -> PrivateKeyDer<'static> {
    let der = cert.key.clone();
    match cert.key_format {
        KeyFormat::Pkcs1 => PrivateKeyDer::Pkcs1(der.into()),
        KeyFormat::Sec1 => PrivateKeyDer::Sec1(der.into()),
        KeyFormat::Pkcs8 => PrivateKeyDer::Pkcs8(der.into()),
    }
}

/// SSL_GET's client configuration: no server verification (keepalived checks the service,
/// not its identity), and `cert` as the client certificate when there is one.
pub fn client_config(cert: Option<&ClientCert>) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(AcceptAny(provider.clone()));
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match cert {
        None => Ok(builder.with_no_client_auth()),
        Some(c) => {
            let chain = c.chain.iter().map(|d| CertificateDer::from(d.clone())).collect();
            builder.with_client_auth_cert(chain, private_key(c))
        }
    }
}

/// keepalived's SSL_GET does not verify the server's certificate (it checks the service,
/// not its identity); neither do we. The handshake itself must still succeed.
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

    /// A self-signed certificate and its key (PKCS#8), and a second, unrelated key, as files.
    fn files(dir: &std::path::Path) -> (String, String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert =
            rcgen::CertificateParams::new(vec!["checker.example".to_string()]).unwrap().self_signed(&key).unwrap();
        let other = rcgen::KeyPair::generate().unwrap();
        let path = |name: &str, text: String| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p.display().to_string()
        };
        (path("cert.pem", cert.pem()), path("key.pem", key.serialize_pem()), path("other.pem", other.serialize_pem()))
    }

    fn ctx(ca: Option<&str>, certificate: Option<&str>, key: Option<&str>) -> SslContext {
        SslContext {
            ca: ca.map(Into::into),
            certificate: certificate.map(Into::into),
            key: key.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn a_certificate_and_its_key_make_the_client_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key, _) = files(dir.path());
        let (loaded, warnings) = load(&ctx(Some(&cert), Some(&cert), Some(&key))).unwrap();
        let loaded = loaded.unwrap();
        assert_eq!((loaded.chain.len(), loaded.key_format), (1, KeyFormat::Pkcs8));
        assert!(warnings.is_empty());
        assert!(client_config(Some(&loaded)).unwrap().client_auth_cert_resolver.has_certs());
        assert!(!client_config(None).unwrap().client_auth_cert_resolver.has_certs());
    }

    #[test]
    fn half_an_identity_presents_nothing_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key, _) = files(dir.path());
        for c in [ctx(None, Some(&cert), None), ctx(None, None, Some(&key))] {
            let (loaded, warnings) = load(&c).unwrap();
            assert!(loaded.is_none());
            assert!(warnings[0].contains("presents no client certificate"), "{warnings:?}");
        }
    }

    #[test]
    fn files_that_do_not_load_are_errors_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key, other) = files(dir.path());
        let missing = dir.path().join("missing.pem").display().to_string();
        let cases = [
            (ctx(Some(&missing), None, None), "SSL ca"),
            (ctx(Some(&key), None, None), "no PEM certificate"),
            (ctx(None, Some(&missing), Some(&key)), "SSL certificate"),
            (ctx(None, Some(&cert), Some(&cert)), "no PEM private key"),
            (ctx(None, Some(&cert), Some(&other)), "SSL key"),
        ];
        for (c, words) in cases {
            let e = load(&c).unwrap_err();
            assert!(e.contains(words), "{c:?}: {e}");
        }
    }

    #[test]
    fn an_encrypted_key_needs_the_password() {
        let dir = tempfile::tempdir().unwrap();
        let enc = dir.path().join("enc.pem");
        std::fs::write(&enc, "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAA=\n-----END ENCRYPTED PRIVATE KEY-----\n")
            .unwrap();
        let e = read_key(&enc.display().to_string(), None).unwrap_err();
        assert!(e.contains("has no password"), "{e}");
        let legacy = dir.path().join("legacy.pem");
        std::fs::write(
            &legacy,
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\nAAAA\n-----END RSA PRIVATE KEY-----\n",
        )
        .unwrap();
        let e = read_key(&legacy.display().to_string(), Some("x")).unwrap_err();
        assert!(e.contains("legacy encrypted"), "{e}");
    }
}
