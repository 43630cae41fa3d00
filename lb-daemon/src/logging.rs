//! Where logs go, as keepalived does it: syslog always (facility from `-S`, default daemon),
//! the console too with `-l`, debug detail with `-D`. One-shot commands (`-t`, `stats`,
//! `decap`) log to the console only.

use std::ffi::CStr;

use syslog_tracing::{Facility, Options, Syslog};
use tracing_subscriber::{EnvFilter, Layer as _, layer::SubscriberExt as _, util::SubscriberInitExt as _};

/// `-S`: `0`-`7` (local0-local7, keepalived's numbering), `local0`-`local7`, `user`, `daemon`.
pub fn parse_facility(s: &str) -> Result<Facility, String> {
    let local = |n: u8| -> Option<Facility> {
        Some(match n {
            0 => Facility::Local0,
            1 => Facility::Local1,
            2 => Facility::Local2,
            3 => Facility::Local3,
            4 => Facility::Local4,
            5 => Facility::Local5,
            6 => Facility::Local6,
            7 => Facility::Local7,
            _ => return None,
        })
    };
    let lower = s.to_ascii_lowercase();
    let parsed = match lower.as_str() {
        "user" => Some(Facility::User),
        "daemon" => Some(Facility::Daemon),
        other => other.strip_prefix("local").unwrap_or(other).parse::<u8>().ok().and_then(local),
    };
    parsed.ok_or_else(|| format!("`{s}` is not a syslog facility (0-7, local0-local7, user or daemon)"))
}

pub struct LogOptions {
    pub console: bool,
    pub detail: bool,
    /// `None`: no syslog (one-shot commands).
    pub syslog: Option<Facility>,
}

/// Installs the global subscriber. `RUST_LOG` overrides the level.
pub fn init(opts: LogOptions) {
    let level = if opts.detail { "debug" } else { "info" };
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let console = opts.console.then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_filter(filter())
    });
    const IDENT: &CStr = c"lb-daemon";
    // syslog adds its own timestamp and the identity; LOG_PID as keepalived's lines carry it.
    let syslog = opts.syslog.and_then(|facility| Syslog::new(IDENT, Options::LOG_PID, facility)).map(|writer| {
        tracing_subscriber::fmt::layer().with_writer(writer).with_ansi(false).without_time().with_filter(filter())
    });
    tracing_subscriber::registry().with(console).with(syslog).init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facilities_in_keepalived_spellings() {
        assert_eq!(parse_facility("2").unwrap() as i32, Facility::Local2 as i32);
        assert_eq!(parse_facility("local7").unwrap() as i32, Facility::Local7 as i32);
        assert_eq!(parse_facility("LOCAL0").unwrap() as i32, Facility::Local0 as i32);
        assert_eq!(parse_facility("daemon").unwrap() as i32, Facility::Daemon as i32);
        assert!(parse_facility("8").unwrap_err().contains("not a syslog facility"));
        assert!(parse_facility("kern").is_err());
    }
}
