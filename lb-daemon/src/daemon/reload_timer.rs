//! `reload_time_file PATH` / `reload_repeat`: a reload scheduled by writing its time into a
//! file, as keepalived 2.2.7's reload_monitor.c does it (so several nodes can reload at the
//! same moment): the file's first line is `HH:MM:SS`, `YY-MM-DD HH:MM:SS` or
//! `YYYY-MM-DD HH:MM:SS`, local time, UTC with a trailing `Z`; a time of day already past is
//! tomorrow's, a past date is ignored. At that time the file goes (it stays for the next day
//! with `reload_repeat` and no date) and the daemon reloads as on SIGHUP. A file that goes,
//! or whose line is not a time, cancels the reload. keepalived follows the file with inotify;
//! here it is read every second, and the watcher sleeps to the due instant itself once it is
//! within the second (a change written less than a second before its time can be missed).
//!
//! `parse` is the decision; `run` the watcher, restarted with each reload.

use std::{path::PathBuf, time::Duration};

use tracing::{info, warn};

/// The file's first line as keepalived reads it: at most 20 bytes, one trailing newline off.
pub fn first_line(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(20)];
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    String::from_utf8_lossy(line).into_owned()
}

/// Why a line is not a reload time (keepalived's words follow each).
#[derive(Debug, PartialEq, Eq)]
pub enum Reject {
    Format,
    Invalid,
    Past,
}

/// The reload time `line` names, seconds since the epoch, and whether it has a date; `now`
/// in seconds since the epoch. Local time through libc (so TZ and DST as keepalived's
/// mktime sees them), UTC with a trailing `Z`; an impossible time (02-30, a time DST skips)
/// is invalid.
pub fn parse(line: &str, now: i64) -> Result<(i64, bool), Reject> {
    let (text, utc) = match line.strip_suffix('Z') {
        Some(t) => (t, true),
        None => (line, false),
    };
    let num = |s: &str| -> Result<i32, Reject> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            return Err(Reject::Format);
        }
        s.parse().map_err(|_| Reject::Format)
    };
    let (date, time) = match text.len() {
        8 => (None, text),
        17 | 19 => {
            let (d, t) = text.split_once(' ').ok_or(Reject::Format)?;
            (Some(d), t)
        }
        _ => return Err(Reject::Format),
    };
    let hms: Vec<&str> = time.split(':').collect();
    if hms.len() != 3 || hms.iter().any(|p| p.len() != 2) {
        return Err(Reject::Format);
    }
    let mut tm = today(now, utc);
    if let Some(d) = date {
        let ymd: Vec<&str> = d.split('-').collect();
        let year_len = if text.len() == 19 { 4 } else { 2 };
        if ymd.len() != 3 || ymd[0].len() != year_len || ymd[1].len() != 2 || ymd[2].len() != 2 {
            return Err(Reject::Format);
        }
        let year = num(ymd[0])?;
        // glibc's %y: 69-99 are 1969-1999, 00-68 2000-2068.
        tm.tm_year = match (year_len, year) {
            (2, y) if y >= 69 => y,
            (2, y) => y + 100,
            (_, y) => y - 1900,
        };
        tm.tm_mon = num(ymd[1])? - 1;
        tm.tm_mday = num(ymd[2])?;
    }
    (tm.tm_hour, tm.tm_min, tm.tm_sec) = (num(hms[0])?, num(hms[1])?, num(hms[2])?);
    tm.tm_isdst = -1;
    let wanted = (tm.tm_year, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    let mut t = to_epoch(&mut tm, utc);
    // mktime normalises what does not exist (02-30, 25:00, a skipped hour): keepalived's
    // round-trip check.
    if (tm.tm_year, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec) != wanted {
        return Err(Reject::Invalid);
    }
    if t <= now {
        if date.is_some() {
            return Err(Reject::Past);
        }
        let mut tomorrow = today(now, utc);
        (tomorrow.tm_hour, tomorrow.tm_min, tomorrow.tm_sec) = (wanted.3, wanted.4, wanted.5);
        tomorrow.tm_mday += 1;
        tomorrow.tm_isdst = -1;
        t = to_epoch(&mut tomorrow, utc);
    }
    Ok((t, date.is_some()))
}

fn today(now: i64, utc: bool) -> libc::tm {
    // SAFETY: an all-zero tm is valid; the *_r calls fill it from `now`.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let t: libc::time_t = now;
    unsafe {
        if utc {
            libc::gmtime_r(&t, &mut tm);
        } else {
            libc::localtime_r(&t, &mut tm);
        }
    }
    tm
}

fn to_epoch(tm: &mut libc::tm, utc: bool) -> i64 {
    // SAFETY: `tm` is a valid, initialised struct tm.
    unsafe { if utc { libc::timegm(tm) } else { libc::mktime(tm) } }
}

/// A reload time for the log: the line as written, and its time in seconds since the epoch.
fn show(t: i64, line: &str) -> String {
    format!("{line} ({t})")
}

/// Follows `path` until the reload it schedules is due, then removes it (unless `repeat`
/// and it has no date) and sends this process SIGHUP. Ends there: the reload starts a new
/// watcher with the configuration then running.
pub async fn run(path: PathBuf, repeat: bool) {
    let mut last: Option<String> = None;
    let mut due: Option<(i64, bool, String)> = None;
    loop {
        let line = std::fs::read(&path).ok().map(|b| first_line(&b));
        if line != last {
            let now = now();
            let next = match line.as_deref() {
                None | Some("") => None,
                Some(l) => match parse(l, now) {
                    Ok((t, dated)) => Some((t, dated, l.to_string())),
                    Err(r) => {
                        match r {
                            Reject::Format => warn!("Reload time {l} format is incorrect - ignoring"),
                            Reject::Invalid => warn!("Reload date/time {l} invalid - ignoring"),
                            Reject::Past => warn!("Reload time {l} is in the past - ignoring"),
                        }
                        warn!("Invalid reload time '{l}' specified - ignoring");
                        None
                    }
                },
            };
            match (&due, &next) {
                (None, Some((t, _, l))) => info!("Scheduling reload for {}", show(*t, l)),
                (Some((old, _, ol)), Some((t, _, l))) if old != t => {
                    info!("Reload time updated from {} to {}", show(*old, ol), show(*t, l))
                }
                (Some((old, _, ol)), None) => info!("Cancelling reload scheduled for {}", show(*old, ol)),
                _ => {}
            }
            due = next;
            last = line;
        }
        let at = |t: i64| std::time::UNIX_EPOCH + Duration::from_secs(t.max(0) as u64);
        if let Some((t, dated, _)) = &due
            && std::time::SystemTime::now() >= at(*t)
        {
            // A time of day with reload_repeat stays for tomorrow; a date never repeats.
            if !repeat || *dated {
                let _ = std::fs::remove_file(&path);
            }
            info!(file = %path.display(), "reload_time_file: the scheduled reload is due");
            // SAFETY: signalling this process; the SIGHUP handler is installed before this runs.
            unsafe { libc::kill(libc::getpid(), libc::SIGHUP) };
            return;
        }
        // To the due instant itself when it is within the second (so nodes given the same
        // time reload together), else a second, to read the file again.
        let wait = match &due {
            Some((t, _, _)) => at(*t).duration_since(std::time::SystemTime::now()).unwrap_or_default(),
            None => Duration::from_secs(1),
        };
        tokio::time::sleep(wait.min(Duration::from_secs(1))).await;
    }
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// keepalived's formats (reload_monitor.c): three lengths after an optional `Z`, a time of
    /// day already past moving to tomorrow, a past date refused, impossible dates invalid.
    #[test]
    fn reload_times_read_as_keepalived() {
        // 2026-12-05 01:00:00 UTC.
        let now = 1_796_432_400;
        assert_eq!(parse("01:00:10Z", now), Ok((now + 10, false)));
        assert_eq!(parse("00:59:50Z", now), Ok((now + 86_400 - 10, false)));
        assert_eq!(parse("2026-12-05 01:02:00Z", now), Ok((now + 120, true)));
        assert_eq!(parse("26-12-05 01:02:00Z", now), Ok((now + 120, true)));
        assert_eq!(parse("99-12-05 01:02:00Z", now), Err(Reject::Past));
        assert_eq!(parse("2026-12-05 00:02:00Z", now), Err(Reject::Past));
        assert_eq!(parse("2026-02-30 01:02:00Z", now), Err(Reject::Invalid));
        assert_eq!(parse("25:00:00Z", now), Err(Reject::Invalid));
        for bad in ["1:00:10Z", "01:00:1", "01-00-10Z", "2026-12-05T01:02:00Z", "tomorrow", "01:00:1aZ", ""] {
            assert_eq!(parse(bad, now), Err(Reject::Format), "{bad}");
        }
        assert_eq!(first_line(b"01:00:10\nmore"), "01:00:10");
        assert_eq!(first_line(b"2026-12-05 01:02:00Z and more text"), "2026-12-05 01:02:00Z");
    }
}
