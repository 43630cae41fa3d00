//! keepalived's dump signals: SIGUSR1 (data), SIGUSR2 (stats), SIGRTMIN+2 (JSON),
//! SIGRTMAX-1 (keepalived's SIGSTATS_CLEAR: the stats, then its files count from zero).
//!
//! Each writes keepalived's file in keepalived's format and place (`keepalived.rs`):
//! `keepalived.data`, `keepalived.stats`, `keepalived.json` in `$TMPDIR` when it is an
//! absolute path, else `/tmp` (keepalived 2.2.7's `set_tmp_dir`), so tools reading
//! keepalived's dumps read ours. Our own fuller dumps (the status, the configuration, the
//! data plane's counters) go beside the state file in the run directory as before:
//! `lb-daemon.data`, `lb-daemon.stats`, `lb-daemon.json`.
//!
//! Every file is written fresh (0600, O_EXCL|O_NOFOLLOW under a random name) and renamed into
//! place: a link planted at the name in the shared temporary directory is replaced, never
//! followed (keepalived's CVE-2018-19044..19046 were about exactly these files).

mod keepalived;

use std::path::{Path, PathBuf};

use anyhow::Result;
use tracing::{error, info, warn};

use crate::{
    config::Config,
    state::{self, RunDir, Status},
    vrrp::VrrpStatus,
};

/// What a dump signal writes.
#[derive(Clone, Copy, Debug)]
pub enum Dump {
    Data,
    Stats,
    Json,
    /// keepalived's SIGSTATS_CLEAR: the stats dump, then keepalived's files count from zero.
    StatsClear,
}

impl Dump {
    fn file(self) -> &'static str {
        match self {
            Dump::Data => "lb-daemon.data",
            Dump::Stats | Dump::StatsClear => "lb-daemon.stats",
            Dump::Json => "lb-daemon.json",
        }
    }

    /// keepalived's name for the file.
    pub fn keepalived_file(self) -> &'static str {
        match self {
            Dump::Data => "keepalived.data",
            Dump::Stats | Dump::StatsClear => "keepalived.stats",
            Dump::Json => "keepalived.json",
        }
    }

    /// keepalived's log line for the signal (vrrp_daemon.c), with our pid.
    fn keepalived_line(self) -> &'static str {
        match self {
            Dump::Data => "Printing VRRP data for process({}) on signal",
            Dump::Stats => "Printing VRRP stats for process({}) on signal",
            Dump::Json => "Printing VRRP as json for process({}) on signal",
            Dump::StatsClear => "Printing and clearing VRRP stats for process({}) on signal",
        }
    }
}

/// Where keepalived writes its dumps: `$TMPDIR` if it is absolute, else `/tmp`.
pub fn dump_dir(tmpdir: Option<&std::ffi::OsStr>) -> PathBuf {
    match tmpdir.map(Path::new) {
        Some(p) if p.is_absolute() => p.to_path_buf(),
        _ => PathBuf::from("/tmp"),
    }
}

/// keepalived's dump file name: `file`, but `keepalived.INSTANCE.data` for the data file with
/// `data_use_instance` and an `instance` (keepalived 2.2.7's `open_dump_file`; its stats and
/// JSON files keep their names, `make_tmp_filename`).
fn keepalived_name(file: &str, g: &crate::config::GlobalDefs) -> String {
    match (&g.instance, g.data_use_instance, file.rsplit_once('.')) {
        (Some(name), true, Some((stem, "data"))) => format!("{stem}.{name}.data"),
        _ => file.to_string(),
    }
}

/// One dump to write.
pub struct Request<'a> {
    pub what: Dump,
    pub status: &'a Status,
    pub config_path: &'a Path,
    /// keepalived's files come from its VRRP process: none without VRRP.
    pub vrrp_running: bool,
}

/// The dump writer's memory: the VRRP counters at the last SIGSTATS_CLEAR, which keepalived's
/// files count from (keepalived zeroes its counters; ours stay monotonic for `status` and
/// the metrics).
#[derive(Default)]
pub struct Dumps {
    baseline: Vec<VrrpStatus>,
}

impl Dumps {
    /// Writes dump `r.what`: keepalived's file (when VRRP runs with instances, as only
    /// keepalived's VRRP process writes them) and ours in the run directory. A failure (full
    /// disk, read-only directory, a file someone else owns at the name) is logged; nothing
    /// else is affected.
    pub fn write(&mut self, run_dir: &RunDir, r: Request<'_>, config: &Config, dataplane: Result<serde_json::Value>) {
        let Request { what, status, config_path, vrrp_running } = r;
        if vrrp_running && !config.vrrp_instances.is_empty() {
            info!("{}", what.keepalived_line().replace("{}", &std::process::id().to_string()));
            let vrrp = since(&status.vrrp, &self.baseline);
            let text = match what {
                Dump::Data => {
                    let host = nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default();
                    Some(keepalived::data(config, &vrrp, &host))
                }
                Dump::Stats | Dump::StatsClear => Some(keepalived::stats(config, &vrrp)),
                Dump::Json => keepalived::json(config, &vrrp).map(|v| v.to_string()),
            };
            let dir = dump_dir(std::env::var_os("TMPDIR").as_deref());
            let name = keepalived_name(what.keepalived_file(), &config.global);
            let path = dir.join(&name);
            if let Some(text) = text {
                match state::write_replacing(&dir, &name, text.as_bytes()) {
                    Ok(()) => info!(path = %path.display(), "{name} written"),
                    Err(e) => error!("writing {}: {e:#}", path.display()),
                }
            }
            if matches!(what, Dump::StatsClear) {
                self.baseline = status.vrrp.clone();
            }
        }
        write_ours(run_dir, what, status, config_path, config, dataplane);
    }
}

/// The VRRP counters counted from `baseline` (an instance whose counters fell below it was
/// restarted: its counters are taken as they are).
fn since(now: &[VrrpStatus], baseline: &[VrrpStatus]) -> Vec<VrrpStatus> {
    now.iter()
        .map(|s| {
            let Some(b) = baseline.iter().find(|b| b.instance == s.instance) else { return s.clone() };
            let restarted = s.adverts_sent < b.adverts_sent || s.adverts_received < b.adverts_received;
            if restarted {
                return s.clone();
            }
            let sub = |n: u64, m: u64| n.saturating_sub(m);
            let mut out = s.clone();
            out.adverts_sent = sub(s.adverts_sent, b.adverts_sent);
            out.adverts_received = sub(s.adverts_received, b.adverts_received);
            out.became_master = sub(s.became_master, b.became_master);
            out.released_master = sub(s.released_master, b.released_master);
            out.pri_zero_received = sub(s.pri_zero_received, b.pri_zero_received);
            out.pri_zero_sent = sub(s.pri_zero_sent, b.pri_zero_sent);
            for (k, n) in out.rejected.iter_mut() {
                *n = sub(*n, b.rejected.get(k).copied().unwrap_or(0));
            }
            out
        })
        .collect()
}

/// Our own dump, in the run directory.
fn write_ours(
    run_dir: &RunDir,
    what: Dump,
    status: &Status,
    config_path: &Path,
    config: &Config,
    dataplane: Result<serde_json::Value>,
) {
    let text = match what {
        Dump::Data => format!(
            "lb-daemon data dump\n\nstatus:\n{status:#?}\n\nconfiguration ({}):\n{config:#?}\n",
            config_path.display(),
        ),
        Dump::Stats | Dump::StatsClear => format!(
            "lb-daemon stats dump\n\nVRRP:\n{:#?}\n\ncheckers: {}\n\ndata plane:\n{}\n",
            status.vrrp,
            status.checker_counters,
            match &dataplane {
                Ok(v) => serde_json::to_string_pretty(v).unwrap_or_default(),
                Err(e) => format!("unavailable: {e:#}"),
            }
        ),
        Dump::Json => {
            let dp = dataplane.ok();
            serde_json::to_string_pretty(&serde_json::json!({ "status": status, "dataplane": dp })).unwrap_or_default()
        }
    };
    let what = match what {
        Dump::StatsClear => Dump::Stats,
        w => w,
    };
    let path = run_dir.path().join(what.file());
    if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
        warn!(path = %path.display(), "a symlink was planted at the dump file; replacing it, not following it");
    }
    match run_dir.write(what.file(), text.as_bytes()) {
        Ok(()) => info!(path = %path.display(), "{what:?} dump written"),
        Err(e) => error!("{what:?} dump failed: {e:#}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_use_instance_names_keepalived_s_files_after_the_instance() {
        let mut g = crate::config::GlobalDefs::default();
        assert_eq!(keepalived_name("keepalived.data", &g), "keepalived.data");
        g.instance = Some("web".into());
        assert_eq!(keepalived_name("keepalived.data", &g), "keepalived.data", "without data_use_instance");
        g.data_use_instance = true;
        assert_eq!(keepalived_name("keepalived.data", &g), "keepalived.web.data");
        assert_eq!(keepalived_name("keepalived.json", &g), "keepalived.json", "as keepalived's make_tmp_filename");
        assert_eq!(keepalived_name("keepalived.stats", &g), "keepalived.stats");
    }

    #[test]
    fn dumps_go_where_keepalived_puts_them() {
        assert_eq!(dump_dir(None), Path::new("/tmp"));
        assert_eq!(dump_dir(Some("/var/tmp/x".as_ref())), Path::new("/var/tmp/x"));
        // keepalived ignores a relative TMPDIR.
        assert_eq!(dump_dir(Some("tmp".as_ref())), Path::new("/tmp"));
    }

    #[test]
    fn cleared_stats_count_from_the_clear_and_a_restart_starts_over() {
        let at = |sent: u64, rx: u64, ttl: u64| VrrpStatus {
            instance: "VI_1".into(),
            adverts_sent: sent,
            adverts_received: rx,
            became_master: 1,
            rejected: [("Ttl".to_string(), ttl)].into(),
            ..Default::default()
        };
        let base = [at(10, 5, 2)];
        let s = since(&[at(13, 5, 3)], &base);
        assert_eq!((s[0].adverts_sent, s[0].adverts_received, s[0].became_master, s[0].rejected["Ttl"]), (3, 0, 0, 1));
        // Fewer than at the clear: the instance restarted; its counters are new.
        assert_eq!(since(&[at(2, 0, 0)], &base)[0].adverts_sent, 2);
        // No clear yet: as they are.
        assert_eq!(since(&[at(13, 5, 3)], &[])[0].adverts_sent, 13);
    }
}
