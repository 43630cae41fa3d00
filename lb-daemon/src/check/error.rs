//! Why a probe failed: what the checkers log and report.

use std::time::Duration;

use thiserror::Error;

/// Why a check failed, as logged.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ProbeError {
    #[error("connect failed: {0}")]
    Connect(String),
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    #[error("HTTP error: {0}")]
    Http(String),
    #[error("{path}: status {got}, expected {want}")]
    Status { path: String, got: u16, want: String },
    #[error("{path}: digest mismatch: body MD5 {got}, expected {want}")]
    Digest { path: String, got: String, want: String },
    /// keepalived's "Regex match failed".
    #[error("{path}: regex match failed: the body {} `{pattern}`", if *no_match { "matches (regex_no_match)" } else { "does not match" })]
    Regex { path: String, pattern: String, no_match: bool },
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("script {0}")]
    Script(String),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Udp(String),
    #[error("{0}")]
    Dns(String),
    #[error("{0}")]
    Ping(String),
    #[error("{0}")]
    Smtp(String),
}
