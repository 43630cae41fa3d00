//! Telling the outside world about state changes: notify scripts (`notify_*`, `quorum_*`,
//! VRRP's `notify`), bounded by one timeout, `smtp_alert` mail (`mail.rs`) and keepalived's
//! notify FIFOs (`fifo.rs`). The checker side (the daemon) and VRRP both notify through a
//! `Notifier`.

pub mod fifo;
pub mod mail;

use std::{sync::Arc, time::Duration};

use tracing::{info, warn};

use crate::{
    config::{RunAs, Script},
    script::{self, Runner},
};
pub use fifo::{Fifos, Stream};
pub use mail::Mailer;

/// Notify script runs are bounded; keepalived has no limit, but a hung notify script must
/// not pile up forever.
pub const NOTIFY_TIMEOUT: Duration = Duration::from_secs(30);

/// The script settings, mail relay and notify FIFOs of the running configuration.
#[derive(Clone, Debug)]
pub struct Notifier {
    runner: Runner,
    mailer: Option<Mailer>,
    fifos: Arc<Fifos>,
}

impl Notifier {
    pub fn new(runner: Runner, mailer: Option<Mailer>, fifos: Arc<Fifos>) -> Self {
        Self { runner, mailer, fifos }
    }

    /// The FIFOs, for the next configuration's `Notifier` (kept open when unchanged).
    pub fn fifos(&self) -> &Arc<Fifos> {
        &self.fifos
    }

    /// Writes a line to the notify FIFOs that take `stream`.
    pub fn fifo(&self, stream: Stream, line: &str) {
        self.fifos.write(stream, line);
    }

    /// How scripts are prepared (identity, `enable_script_security`); VRRP's tracking
    /// scripts use it too.
    pub fn runner(&self) -> &Runner {
        &self.runner
    }

    /// Runs `s` with `args` in the background; a refused script (not found, insecure) and a
    /// failed run are logged.
    pub fn spawn(&self, s: &Script, user: Option<&RunAs>, args: Vec<String>) {
        match self.runner.prepare(s, user) {
            Ok(p) => {
                tokio::spawn(async move {
                    let outcome = script::run(&p, &args, NOTIFY_TIMEOUT).await;
                    if !outcome.success() {
                        warn!(script = %p.command, "notify script: {outcome}");
                    }
                });
            }
            Err(e) => warn!("{e}"),
        }
    }

    /// Runs `runs` one after the other (a state's own script, then the generic `notify`
    /// with its arguments), in the background unless `wait` (a stop runs `notify_stop`
    /// before the process exits).
    pub async fn in_order(&self, runs: Vec<(Script, Vec<String>)>, wait: bool) {
        let mut prepared = Vec::new();
        for (s, args) in runs {
            match self.runner.prepare(&s, None) {
                Ok(p) => prepared.push((p, args)),
                Err(e) => warn!("notify: {e}"),
            }
        }
        if prepared.is_empty() {
            return;
        }
        let job = async move {
            for (p, args) in prepared {
                let outcome = script::run(&p, &args, NOTIFY_TIMEOUT).await;
                if !outcome.success() {
                    warn!(script = %p.command, "notify script: {outcome}");
                }
            }
        };
        if wait {
            job.await;
        } else {
            tokio::spawn(job);
        }
    }

    /// keepalived's `omega`: runs `scripts` on the way out, one by one, and waits for each.
    pub async fn omega(&self, scripts: &[Script]) {
        for s in scripts {
            match self.runner.prepare(s, None) {
                Ok(p) => {
                    let outcome = script::run(&p, &[], NOTIFY_TIMEOUT).await;
                    info!(script = %p.command, "omega: {outcome}");
                }
                Err(e) => warn!("omega: {e}"),
            }
        }
    }

    /// Sends `[router_id] subject` in the background, when mail is configured.
    pub fn mail(&self, subject: &str, body: String) {
        if let Some(m) = &self.mailer {
            m.send(subject, body);
        }
    }
}
