//! `track_file`, shared by FILE_CHECK and VRRP tracking: the number in a file as keepalived
//! reads it (`parse_value`, `read_value`), `init_file`, what a value does to a real server
//! (`effect`, pure, keepalived's rule), and `Hub`, one inotify watcher for every FILE_CHECK.

use std::{
    collections::HashMap,
    ffi::OsString,
    path::{Path, PathBuf},
};

use tokio::{
    io::unix::AsyncFd,
    sync::{mpsc, oneshot, watch},
};
use tracing::{info, warn};

use crate::config::TrackFileInit;

/// What a track_file's value does to a real server (keepalived 2.2.7,
/// `update_track_file_status` and `process_update_checker_track_file_status`): with weight 0
/// a non-zero value (with `reverse`, zero) is a failure; otherwise value × weight (× -1 with
/// `reverse`), clamped to 32 bits, is added to the real server's weight, and the lowest
/// 32-bit value (-2147483648) is a failure. `None`: the checker fails.
pub fn effect(weight: i32, reverse: bool, value: i64) -> Option<i64> {
    if weight == 0 {
        return if (value != 0) != reverse { None } else { Some(0) };
    }
    let m: i64 = if reverse { -1 } else { 1 };
    let v = value.saturating_mul(i64::from(weight)).saturating_mul(m);
    let v = v.clamp(i64::from(i32::MIN), i64::from(i32::MAX));
    (v != i64::from(i32::MIN)).then_some(v)
}

/// keepalived's `init_file`: writes `init.value` if the file is missing, or always with
/// `overwrite` (a regular file only).
pub fn init_file(name: &str, path: &Path, init: TrackFileInit) {
    match std::fs::symlink_metadata(path) {
        Ok(_) if !init.overwrite => return,
        Ok(m) if !m.file_type().is_file() => {
            return warn!(track_file = name, "init_file: {} is not a regular file; not written", path.display());
        }
        _ => {}
    }
    if let Err(e) = std::fs::write(path, format!("{}\n", init.value)) {
        warn!(track_file = name, "init_file: writing {}: {e}", path.display());
    }
}

/// The number in a tracked file as keepalived reads it (`strtol(buf, NULL, 0)` of the first
/// 127 bytes): leading blanks, a sign, `0x` hex or `0` octal, up to the first other
/// character; no digits or no file is 0. `None`: out of keepalived's range (ignored).
pub fn parse_value(text: &str) -> Option<i64> {
    let t = text.trim_start();
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (radix, digits) = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        (16, h)
    } else if t.starts_with('0') {
        (8, t)
    } else {
        (10, t)
    };
    let end = digits.find(|c: char| !c.is_digit(radix)).unwrap_or(digits.len());
    let mut v: i64 = 0;
    for c in digits[..end].chars() {
        v = v.checked_mul(i64::from(radix))?.checked_add(i64::from(c.to_digit(radix)?))?;
        if v > i64::from(i32::MAX) + 1 {
            return None;
        }
    }
    let v = if neg { -v } else { v };
    (v >= i64::from(i32::MIN)).then_some(v)
}

/// A file's value; `None` when it holds a number out of range (the old value stays).
pub fn read_value(path: &Path) -> Option<i64> {
    use std::io::Read as _;
    let mut buf = [0u8; 127];
    let n = match std::fs::File::open(path).and_then(|mut f| f.read(&mut buf)) {
        Ok(n) => n,
        Err(_) => return Some(0),
    };
    let v = parse_value(&String::from_utf8_lossy(&buf[..n]));
    if v.is_none() {
        warn!(file = %path.display(), "track_file: the number read is out of range; ignored");
    }
    v
}

/// An inotify instance as tokio registers descriptors.
pub(crate) struct Inotify(nix::sys::inotify::Inotify);

impl std::os::fd::AsRawFd for Inotify {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsFd as _;
        self.0.as_fd().as_raw_fd()
    }
}

/// Directory events that can change a file's content or replace it (a rename over it).
const MASK: nix::sys::inotify::AddWatchFlags = {
    use nix::sys::inotify::AddWatchFlags as F;
    F::IN_CLOSE_WRITE
        .union(F::IN_MODIFY)
        .union(F::IN_MOVED_TO)
        .union(F::IN_MOVED_FROM)
        .union(F::IN_CREATE)
        .union(F::IN_DELETE)
};

impl Inotify {
    pub(crate) fn new() -> std::io::Result<AsyncFd<Self>> {
        use nix::sys::inotify::InitFlags;
        let i = nix::sys::inotify::Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        // SAFETY: the inotify descriptor is owned by the AsyncFd and deregistered when it drops.
        unsafe { AsyncFd::register_with_interest(Self(i), tokio::io::Interest::READABLE) }
            .map_err(|e| std::io::Error::other(e.to_string()))
    }

    /// Watches `path`'s directory (so a file replaced by a rename is seen too); returns the
    /// watch and the file's name in it.
    pub(crate) fn watch(&self, path: &Path) -> nix::Result<(nix::sys::inotify::WatchDescriptor, OsString)> {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let name = path.file_name().map(OsString::from).ok_or(nix::errno::Errno::EINVAL)?;
        Ok((self.0.add_watch(dir, MASK)?, name))
    }
}

/// Waits for the next batch of events; `None` when inotify can no longer be read.
pub(crate) async fn next_events(fd: &AsyncFd<Inotify>) -> Option<Vec<nix::sys::inotify::InotifyEvent>> {
    loop {
        let Ok(mut ready) = fd.readable().await else { return None };
        match fd.get_ref().0.read_events() {
            Ok(ev) => return Some(ev),
            Err(nix::errno::Errno::EAGAIN) => ready.clear_ready(),
            Err(e) => {
                warn!("track_file: reading inotify: {e}; file changes are no longer seen");
                return None;
            }
        }
    }
}

/// One watched file: its last value and who wants it.
struct Watched {
    name: OsString,
    path: PathBuf,
    value: watch::Sender<i64>,
}

struct Subscribe {
    name: String,
    path: PathBuf,
    init: Option<TrackFileInit>,
    reply: oneshot::Sender<watch::Receiver<i64>>,
}

/// One inotify watcher for every FILE_CHECK (a checker each would soon exhaust the
/// per-user inotify instances, 128 by default): each file is read once per change, and
/// every checker on it sees the value.
#[derive(Clone)]
pub struct Hub {
    tx: mpsc::UnboundedSender<Subscribe>,
}

impl Hub {
    /// Starts the watcher task (on the current runtime); it ends when every `Hub` is dropped.
    pub fn start() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(hub(rx));
        Self { tx }
    }

    /// The value of `path` now and after each change (`init_file` applied the first time a
    /// path is asked for). `None` when the watcher is gone.
    pub async fn subscribe(
        &self,
        name: &str,
        path: &Path,
        init: Option<TrackFileInit>,
    ) -> Option<watch::Receiver<i64>> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Subscribe { name: name.into(), path: path.into(), init, reply }).ok()?;
        rx.await.ok()
    }
}

async fn hub(mut rx: mpsc::UnboundedReceiver<Subscribe>) {
    let fd = match Inotify::new() {
        Ok(fd) => Some(fd),
        Err(e) => {
            warn!("FILE_CHECK: inotify: {e}; file changes are not seen");
            None
        }
    };
    let mut dirs: HashMap<nix::sys::inotify::WatchDescriptor, Vec<Watched>> = HashMap::new();
    let mut initialised: Vec<PathBuf> = Vec::new();
    loop {
        let events = async {
            match &fd {
                Some(fd) => next_events(fd).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            sub = rx.recv() => {
                let Some(sub) = sub else { return };
                if let Some(w) = dirs.values().flatten().find(|w| w.path == sub.path) {
                    let _ = sub.reply.send(w.value.subscribe());
                    continue;
                }
                if let Some(init) = sub.init
                    && !initialised.contains(&sub.path)
                {
                    initialised.push(sub.path.clone());
                    init_file(&sub.name, &sub.path, init);
                }
                // Watch first, then read: a change in between is seen either way.
                let watched = fd.as_ref().map(|fd| fd.get_ref().watch(&sub.path));
                let value = read_value(&sub.path).unwrap_or(0);
                info!(track_file = %sub.name, file = %sub.path.display(), value, "track_file read");
                let (tx, rx) = watch::channel(value);
                let _ = sub.reply.send(rx);
                match watched {
                    Some(Ok((wd, name))) => dirs.entry(wd).or_default().push(Watched { name, path: sub.path, value: tx }),
                    Some(Err(e)) => warn!(track_file = %sub.name, "watching {}: {e}; its changes are not seen", sub.path.display()),
                    None => {}
                }
            }
            ev = events => {
                let Some(ev) = ev else { return };
                for ev in ev {
                    let Some(entries) = dirs.get_mut(&ev.wd) else { continue };
                    entries.retain(|w| !w.value.is_closed());
                    for w in entries.iter() {
                        if ev.name.as_deref() != Some(w.name.as_os_str()) {
                            continue;
                        }
                        if let Some(value) = read_value(&w.path) {
                            w.value.send_if_modified(|v| std::mem::replace(v, value) != value);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// keepalived's checker rule (track_file.c), case by case.
    #[test]
    fn effects_on_real_servers_follow_keepalived() {
        assert_eq!(effect(1, false, 5), Some(5));
        assert_eq!(effect(2, false, -5), Some(-10));
        assert_eq!(effect(2, true, 5), Some(-10));
        // No ±254 limits as for VRRP: 32-bit weights.
        assert_eq!(effect(1, false, -254), Some(-254));
        assert_eq!(effect(100, false, 100_000_000), Some(i64::from(i32::MAX)));
        // The lowest 32-bit value is keepalived's IPVS_WEIGHT_FAULT.
        assert_eq!(effect(1, false, i64::from(i32::MIN)), None);
        assert_eq!(effect(2, false, -1_500_000_000), None);
        assert_eq!(effect(0, false, 0), Some(0));
        assert_eq!(effect(0, false, 3), None);
        assert_eq!(effect(0, true, 0), None);
        assert_eq!(effect(0, true, 3), Some(0));
    }

    #[test]
    fn values_read_as_strtol_reads_them() {
        assert_eq!(parse_value("12\n"), Some(12));
        assert_eq!(parse_value("  -7 apples"), Some(-7));
        assert_eq!(parse_value("0x10"), Some(16));
        assert_eq!(parse_value("010"), Some(8));
        assert_eq!(parse_value(""), Some(0));
        assert_eq!(parse_value("abc"), Some(0));
        assert_eq!(parse_value("99999999999"), None);
    }

    /// Every subscriber of a file sees each change, through one watcher.
    #[tokio::test]
    async fn the_hub_reads_once_and_tells_every_subscriber() {
        let dir = std::env::temp_dir().join(format!("lb-hub-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("v");
        let hub = Hub::start();
        let init = Some(TrackFileInit { value: 7, overwrite: false });
        let mut a = hub.subscribe("t", &path, init).await.unwrap();
        let mut b = hub.subscribe("t", &path, None).await.unwrap();
        assert_eq!((*a.borrow_and_update(), *b.borrow_and_update()), (7, 7), "init_file wrote it");
        std::fs::write(&path, "-3\n").unwrap();
        for rx in [&mut a, &mut b] {
            tokio::time::timeout(std::time::Duration::from_secs(5), rx.changed()).await.unwrap().unwrap();
            assert_eq!(*rx.borrow_and_update(), -3);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
