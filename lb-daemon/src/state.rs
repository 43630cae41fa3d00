//! The daemon's live state (VRRP instances, checker verdicts, counters), written to
//! `<run dir>/state.json` for `lb-daemon status`: no signal needed to read it.
//!
//! Files here are created fresh (O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600) and renamed into place,
//! in a directory that must be ours and not a symlink: a predictable path another user can
//! plant a link at is how keepalived's CVE-2018-19044..19046 happened.

use std::{
    fs::{File, OpenOptions},
    io::Write,
    os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};

pub use crate::vrrp::VrrpStatus;

pub const DEFAULT_RUN_DIR: &str = "/run/lb-daemon";

/// The run directory when `--run-dir` is not given: `/run/lb-daemon`, or
/// `/run/lb-daemon-netns-NAME` in network namespace NAME (`dataplane::bpf::pins::netns_name`),
/// so daemons in two namespaces never share a state file.
pub fn default_run_dir(netns: Option<&str>) -> PathBuf {
    match netns {
        None => PathBuf::from(DEFAULT_RUN_DIR),
        Some(n) => PathBuf::from(format!("{DEFAULT_RUN_DIR}-netns-{n}")),
    }
}
pub const STATE_FILE: &str = "state.json";

/// A directory only we can write to.
#[derive(Clone, Debug)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// Creates `path` (mode 0700) if missing; refuses a symlink, a non-directory, a directory
    /// owned by someone else or writable by others.
    pub fn open(path: &Path) -> Result<Self> {
        match std::fs::symlink_metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(path)
                    .with_context(|| format!("creating run directory {}", path.display()))?;
            }
            Err(e) => return Err(e).with_context(|| format!("run directory {}", path.display())),
            Ok(m) => {
                if m.file_type().is_symlink() {
                    bail!("run directory {} is a symlink; refusing it", path.display());
                }
                if !m.is_dir() {
                    bail!("run directory {} is not a directory", path.display());
                }
                if m.uid() != nix::unistd::geteuid().as_raw() {
                    bail!("run directory {} belongs to uid {}, not us", path.display(), m.uid());
                }
                if m.permissions().mode() & 0o022 != 0 {
                    bail!("run directory {} is writable by others; make it 0700", path.display());
                }
            }
        }
        Ok(Self { path: path.to_path_buf() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `name` atomically: a fresh 0600 temporary file (never following a link), then
    /// a rename over the old one.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        write_replacing(&self.path, name, bytes)
    }
}

/// Writes `dir/name` atomically, also in a directory others can write to (`/tmp`): a fresh
/// 0600 file under a random name (O_CREAT|O_EXCL|O_NOFOLLOW: a link or file planted there
/// makes the write fail, never followed), then renamed over `name`. The rename replaces a
/// symlink at `name` without following it; in a sticky directory the kernel refuses to
/// replace another user's file.
pub fn write_replacing(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(format!(".{name}.{}.{:016x}", std::process::id(), rand::random::<u64>()));
    let mut f: File = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    let done =
        f.write_all(bytes).and_then(|()| f.sync_data()).with_context(|| format!("writing {}", tmp.display())).and_then(
            |()| {
                std::fs::rename(&tmp, dir.join(name)).with_context(|| format!("renaming {} into place", tmp.display()))
            },
        );
    if done.is_err() {
        // A full disk must not keep a half-written file around; the old one stays.
        let _ = std::fs::remove_file(&tmp);
    }
    done
}

/// One checker verdict.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckStatus {
    pub service: String,
    pub real: String,
    pub check: usize,
    pub up: bool,
    pub weight: Option<u32>,
    pub reason: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub pid: u32,
    pub config: String,
    pub vrrp: Vec<VrrpStatus>,
    pub checks: Vec<CheckStatus>,
    /// Services whose quorum is lost.
    pub quorum_lost: Vec<String>,
    pub checker_counters: serde_json::Value,
    /// The forwarding backend (none with `-P`).
    #[serde(default)]
    pub backend: Option<BackendStatus>,
    /// Frames the BPF data plane handed to the daemon (held fragments, IPv4 to fragment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub punt: Option<crate::dataplane::punt::PuntStats>,
    /// The BPF data plane's connection sync (`lvs_sync_daemon`), while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conn_sync: Option<crate::dataplane::ctsync::SyncStats>,
    /// The BPF data plane's next-hop cache: real servers cached, and left to the FIB by reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_hop_cache: Option<crate::dataplane::nexthop::Summary>,
    /// Runtime overrides set with `lb-daemon drain|weight|disable`.
    #[serde(default)]
    pub overrides: Vec<OverrideStatus>,
    /// `anycast_table`: where the announcements go (None: nothing is announced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anycast_table: Option<u32>,
    /// Each VIP's announcement.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub anycast: Vec<AnycastStatus>,
}

/// One VIP's announcement, as `status` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnycastStatus {
    pub vip: String,
    pub announced: bool,
    /// Why not, when withdrawn.
    pub reason: Option<String>,
}

/// One runtime override, as `status` and the metrics show it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverrideStatus {
    pub service: String,
    /// None for a whole service (`disable`).
    pub real: Option<String>,
    /// `drained`, `weight` or `disabled`.
    pub kind: String,
    /// The weight in force: 0 when drained.
    pub weight: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BackendStatus {
    /// `bpf` or `ipvs`.
    pub kind: String,
    /// Kernel changes since start, where the backend counts them (IPVS netlink commands).
    pub changes: Option<u64>,
}

pub fn read(run_dir: &Path) -> Result<Status> {
    let p = run_dir.join(STATE_FILE);
    let text =
        std::fs::read_to_string(&p).with_context(|| format!("reading {} (is lb-daemon running?)", p.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_fresh_private_and_links_are_refused() {
        let base = tempfile::tempdir().unwrap();
        let run = base.path().join("run");
        let d = RunDir::open(&run).unwrap();
        assert_eq!(std::fs::metadata(&run).unwrap().permissions().mode() & 0o777, 0o700);
        d.write("state.json", b"{}").unwrap();
        let m = std::fs::metadata(run.join("state.json")).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o600);
        // A planted symlink at the final name is replaced, not followed.
        let victim = base.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        std::fs::remove_file(run.join("state.json")).unwrap();
        std::os::unix::fs::symlink(&victim, run.join("state.json")).unwrap();
        d.write("state.json", b"{\"x\":1}").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert!(!std::fs::symlink_metadata(run.join("state.json")).unwrap().file_type().is_symlink());
        // The temporary name is random, and opened O_EXCL|O_NOFOLLOW: nothing planted is
        // followed; no temporary file is left behind.
        d.write("dump", b"data").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        let left: Vec<_> = std::fs::read_dir(&run).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(left.iter().all(|n| !n.to_string_lossy().starts_with('.')), "{left:?}");
        // In a world-writable sticky directory (keepalived's /tmp), a link at the name is
        // replaced, not followed, and the file is 0600.
        let shared = base.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        std::os::unix::fs::symlink(&victim, shared.join("keepalived.data")).unwrap();
        write_replacing(&shared, "keepalived.data", b"x").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        let m = std::fs::symlink_metadata(shared.join("keepalived.data")).unwrap();
        assert!(m.is_file() && m.permissions().mode() & 0o777 == 0o600);
        // The directory itself as a symlink, or open to others: refused.
        let link = base.path().join("link");
        std::os::unix::fs::symlink(&run, &link).unwrap();
        assert!(RunDir::open(&link).unwrap_err().to_string().contains("symlink"));
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(RunDir::open(&run).unwrap_err().to_string().contains("writable by others"));
    }
}
