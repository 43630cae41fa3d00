//! Where logs go, as keepalived does it: syslog always (facility from `-S`, default daemon),
//! the console too with `-l`, debug detail with `-D`. One-shot commands (`-t`, `stats`,
//! `decap`) log to the console only.
//!
//! Severities are keepalived's: a tracing level maps to the syslog priority of the same name
//! (INFO is LOG_INFO, as keepalived's `log_message(LOG_INFO, ...)` lines, DEBUG is
//! LOG_DEBUG), so a filter on priorities sees our lines where it saw keepalived's. A syslog
//! line is the message and its fields, without the level (the priority carries it) or target.

use std::{ffi::CStr, io::Write};

use syslog_tracing::Facility;
use tracing::Level;
use tracing_subscriber::{
    EnvFilter, Layer as _, fmt::MakeWriter, layer::SubscriberExt as _, util::SubscriberInitExt as _,
};

/// The syslog severity of a tracing level.
pub fn severity(level: Level) -> libc::c_int {
    match level {
        Level::ERROR => libc::LOG_ERR,
        Level::WARN => libc::LOG_WARNING,
        Level::INFO => libc::LOG_INFO,
        Level::DEBUG | Level::TRACE => libc::LOG_DEBUG,
    }
}

/// Writes each formatted event to syslog(3) at `severity` of its level.
struct Syslog {
    facility: libc::c_int,
}

impl Syslog {
    /// openlog(3) with LOG_PID (keepalived's lines carry the pid too). The identity must
    /// live as long as the process logs: it is static.
    fn open(ident: &'static CStr, facility: Facility) -> Self {
        // SAFETY: `ident` is a static NUL-terminated string, as openlog requires.
        unsafe { libc::openlog(ident.as_ptr(), libc::LOG_PID, facility as libc::c_int) };
        Self { facility: facility as libc::c_int }
    }
}

/// One event's text, sent on drop (the fmt layer writes an event in several pieces).
struct SyslogLine {
    priority: libc::c_int,
    buf: Vec<u8>,
}

impl Write for SyslogLine {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for SyslogLine {
    fn drop(&mut self) {
        while self.buf.last() == Some(&b'\n') {
            self.buf.pop();
        }
        if self.buf.is_empty() {
            return;
        }
        // An interior NUL cannot go through syslog(3): show it.
        let text: Vec<u8> = self.buf.iter().map(|&b| if b == 0 { b'?' } else { b }).chain([0]).collect();
        // SAFETY: "%s" with one NUL-terminated string argument.
        unsafe { libc::syslog(self.priority, c"%s".as_ptr(), text.as_ptr()) };
    }
}

impl<'a> MakeWriter<'a> for Syslog {
    type Writer = SyslogLine;

    fn make_writer(&'a self) -> SyslogLine {
        SyslogLine { priority: self.facility | severity(Level::INFO), buf: Vec::new() }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> SyslogLine {
        SyslogLine { priority: self.facility | severity(*meta.level()), buf: Vec::new() }
    }
}

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
    // syslog adds its own timestamp, the identity and the pid.
    let syslog = opts.syslog.map(|facility| {
        tracing_subscriber::fmt::layer()
            .with_writer(Syslog::open(IDENT, facility))
            .with_ansi(false)
            .without_time()
            .with_level(false)
            .with_target(false)
            .with_filter(filter())
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

    #[test]
    fn levels_map_to_the_syslog_severities_of_their_names() {
        // keepalived logs state changes and checker verdicts with LOG_INFO: ours are INFO.
        assert_eq!(severity(Level::ERROR), libc::LOG_ERR);
        assert_eq!(severity(Level::WARN), libc::LOG_WARNING);
        assert_eq!(severity(Level::INFO), libc::LOG_INFO);
        assert_eq!(severity(Level::DEBUG), libc::LOG_DEBUG);
        assert_eq!(severity(Level::TRACE), libc::LOG_DEBUG);
    }
}
