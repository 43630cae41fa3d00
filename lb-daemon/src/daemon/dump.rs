//! keepalived's dump signals: SIGUSR1 (data), SIGUSR2 (stats), SIGRTMIN+2 (JSON), each
//! written into the run directory.

use std::path::Path;

use anyhow::Result;
use tracing::{error, info, warn};

use crate::{
    config::Config,
    state::{RunDir, Status},
};

/// What a dump signal writes.
#[derive(Clone, Copy, Debug)]
pub enum Dump {
    Data,
    Stats,
    Json,
}

impl Dump {
    fn file(self) -> &'static str {
        match self {
            Dump::Data => "lb-daemon.data",
            Dump::Stats => "lb-daemon.stats",
            Dump::Json => "lb-daemon.json",
        }
    }
}

/// Writes dump `what` into the run directory (fresh file, 0600, never through a symlink). A
/// failure (full disk, read-only directory) is logged; nothing else is affected.
pub fn write(
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
        Dump::Stats => format!(
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
    let path = run_dir.path().join(what.file());
    if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
        warn!(path = %path.display(), "a symlink was planted at the dump file; replacing it, not following it");
    }
    match run_dir.write(what.file(), text.as_bytes()) {
        Ok(()) => info!(path = %path.display(), "{what:?} dump written"),
        Err(e) => error!("{what:?} dump failed: {e:#}"),
    }
}
