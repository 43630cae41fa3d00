//! VRRP (v2 and v3, over IPv4 and IPv6): elections, VIPs, gratuitous ARP, tracking, sync
//! groups, notify scripts and mail. What to do is decided by pure code: `instance.rs` (one
//! instance's state machine), `sync_group.rs` (members move together) and `tracking.rs`
//! (what tracking adds up to). `engine/` owns every instance in one task and does the I/O:
//! `sockets.rs` for adverts and announcements, `crate::netlink` for addresses and routes,
//! `crate::notify` for scripts and mail.
//!
//! Fencing: a BACKUP or FAULT node removes its VIPs, so it answers no ARP for them and the
//! network sends VIP traffic to the master only. The XDP program does not check VRRP state:
//! a frame that still reaches a backup (a neighbour cache not yet updated by the master's
//! gratuitous ARPs) is forwarded rather than dropped, which shortens the failover gap.

mod engine;
pub mod instance;
pub mod packet;
pub mod sockets;
mod status;
pub mod sync_group;
pub mod tracking;

use std::time::Duration;

use anyhow::Result;
use tokio::sync::{mpsc, oneshot};

use crate::{config::Config, notify::Notifier};
use engine::{Cmd, Engine};
pub use instance::State;
pub use status::VrrpStatus;

/// The part of the config VRRP runs from; a reload that changes none of it leaves VRRP alone.
pub fn fingerprint(cfg: &Config) -> String {
    let g = &cfg.global;
    serde_json::to_string(&(
        &cfg.vrrp_instances,
        &cfg.vrrp_scripts,
        &cfg.vrrp_sync_groups,
        (&g.vrrp_mcast_group4, g.vrrp_version, &g.vrrp_garp_master_delay, g.vrrp_garp_master_repeat),
        (g.vrrp_garp_master_refresh, g.vrrp_strict, &g.script_user, g.enable_script_security),
    ))
    .unwrap_or_default()
}

/// A running VRRP engine.
pub struct Vrrp {
    stop: Option<oneshot::Sender<oneshot::Sender<()>>>,
    cmd: mpsc::Sender<Cmd>,
    task: tokio::task::JoinHandle<()>,
    pub instances: usize,
    /// Every instance's state and counters, kept current by the engine.
    pub status: tokio::sync::watch::Receiver<Vec<VrrpStatus>>,
}

impl Vrrp {
    /// Starts every `vrrp_instance` of `cfg`; none configured gives an idle engine.
    pub async fn start(cfg: &Config, notifier: Notifier) -> Result<Vrrp> {
        let (tx, rx) = mpsc::channel(1024);
        let (mut engine, status) = Engine::build(cfg, notifier, tx.clone()).await?;
        let instances = engine.instances();
        let (stop_tx, stop_rx) = oneshot::channel();
        let (cmd_tx, cmd_rx) = mpsc::channel(4);
        let task = tokio::spawn(async move { engine.run(rx, stop_rx, cmd_rx).await });
        Ok(Vrrp { stop: Some(stop_tx), cmd: cmd_tx, task, instances, status })
    }

    /// Applies a changed config to the running engine: unchanged instances keep their state
    /// and timers; changes that keep the instance's socket (priority, addresses, timers,
    /// tracking, scripts) apply in place; others restart that instance only. Returns a summary.
    pub async fn reload(&self, cfg: &Config, notifier: Notifier) -> Result<String> {
        let (done, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::Reload { cfg: Box::new(cfg.clone()), notifier, done })
            .await
            .map_err(|_| anyhow::anyhow!("the VRRP engine is not running"))?;
        rx.await.map_err(|_| anyhow::anyhow!("the VRRP engine stopped during the reload"))
    }

    /// Graceful stop: masters send priority 0, VIPs are removed, notify_stop runs.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let (done_tx, done_rx) = oneshot::channel();
            if s.send(done_tx).is_ok() {
                let _ = tokio::time::timeout(Duration::from_secs(10), done_rx).await;
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.task).await;
    }
}
