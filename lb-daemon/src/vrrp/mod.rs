//! VRRP (v2 and v3, over IPv4 and IPv6): elections, VIPs, gratuitous ARP, tracking, sync
//! groups, notify scripts and mail. What to do is decided by pure code: `instance.rs` (one
//! instance's state machine), `sync_group.rs` (members move together) and `tracking.rs`
//! (what tracking adds up to). `engine/` owns every instance in one task and does the I/O:
//! `sockets.rs` for adverts and announcements, `crate::netlink` for addresses and routes,
//! `crate::notify` for scripts and mail.
//!
//! Fencing: a BACKUP or FAULT node removes its VIPs, so it answers no ARP for them and the
//! network sends VIP traffic to the master only. The XDP data plane follows VRRP state too
//! (`daemon::node::fences`): a frame for a service of a VIP this node does not hold as MASTER
//! is not load-balanced (passed to the kernel, which does not hold the VIP), as IPVS on a
//! keepalived BACKUP never sees it; and only frames to the interface's own MAC (or, where a
//! `use_vmac` VMAC exists, to a VRRP virtual MAC: `vmac.rs`) are. So a frame
//! that still reaches a backup (a neighbour cache not yet updated by the new master's
//! gratuitous ARPs, a switch flooding) is not forwarded twice: the failover gap lasts until
//! the new master's gratuitous ARPs, as with keepalived.

pub mod ah;
pub mod debounce;
mod engine;
pub mod instance;
mod ours;
pub mod packet;
mod proc_events;
pub mod sockets;
mod status;
pub mod sync_group;
pub mod track_process;
pub mod tracking;
pub mod vmac;

use std::time::Duration;

use anyhow::{Context as _, Result};
use tokio::sync::{mpsc, oneshot, watch};

use crate::{config::Config, notify::Notifier};
use engine::{Cmd, Engine};
pub use engine::{garp_extra_targets, placed_vips};
pub use instance::State;
pub use status::{ProcessStatus, VrrpStatus};

/// The part of the config VRRP runs from; a reload that changes none of it leaves VRRP alone.
pub fn fingerprint(cfg: &Config) -> String {
    let g = &cfg.global;
    serde_json::to_string(&(
        &cfg.vrrp_instances,
        &cfg.vrrp_scripts,
        &cfg.track_files,
        &cfg.track_processes,
        &cfg.vrrp_sync_groups,
        (&g.vrrp_mcast_group4, g.vrrp_version, &g.vrrp_garp_master_delay, g.vrrp_garp_master_repeat),
        (g.vrrp_garp_master_refresh, g.vrrp_strict, &g.script_user, g.enable_script_security),
        (
            (g.vrrp_skip_check_adv_addr, g.vrrp_check_unicast_src),
            g.vrrp_garp_master_refresh_repeat,
            g.vrrp_garp_interval_us,
            g.vrrp_gna_interval_us,
            &cfg.garp_groups,
        ),
        (&cfg.static_ipaddress, &cfg.static_routes, &cfg.static_rules, &g.default_interface),
        // The instances' election defaults.
        (
            g.vrrp_down_timer_adverts,
            g.vrrp_lower_prio_no_advert,
            g.vrrp_higher_prio_send_advert,
            g.vrrp_garp_lower_prio_repeat,
            g.vrrp_garp_lower_prio_delay,
            g.vrrp_notify_priority_changes,
        ),
        (&g.vrrp_mcast_group6, &g.vmac_prefix),
        // Mail and FIFOs: the engine's notifier is replaced only with a VRRP reload.
        (&g.notification_email, &g.notification_email_from, &g.smtp_server, g.smtp_connect_timeout),
        (g.smtp_alert, g.smtp_alert_vrrp, &g.router_id, &g.notify_fifos),
    ))
    .unwrap_or_default()
}

/// A running VRRP engine, on its own thread with its own runtime: checker bursts, data
/// plane programming and reloads on the daemon's runtime never delay an advert.
pub struct Vrrp {
    stop: Option<oneshot::Sender<oneshot::Sender<()>>>,
    cmd: mpsc::Sender<Cmd>,
    /// Dropped when the engine's thread has finished.
    exited: Option<oneshot::Receiver<()>>,
    pub instances: usize,
    /// Every instance's state and counters, kept current by the engine.
    pub status: tokio::sync::watch::Receiver<Vec<VrrpStatus>>,
}

type Started = (oneshot::Sender<oneshot::Sender<()>>, mpsc::Sender<Cmd>, usize, watch::Receiver<Vec<VrrpStatus>>);

impl Vrrp {
    /// Starts every `vrrp_instance` of `cfg`; none configured gives an idle engine.
    pub async fn start(cfg: &Config, notifier: Notifier) -> Result<Vrrp> {
        let (ready_tx, ready_rx) = oneshot::channel::<Result<Started>>();
        let (exited_tx, exited_rx) = oneshot::channel::<()>();
        let cfg = cfg.clone();
        std::thread::Builder::new()
            .name("lb-vrrp".into())
            .spawn(move || {
                let _exited = exited_tx;
                let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(anyhow::Error::new(e).context("the VRRP runtime")));
                        return;
                    }
                };
                rt.block_on(async move {
                    let (tx, rx) = mpsc::channel(1024);
                    let (mut engine, status) = match Engine::build(&cfg, notifier, tx).await {
                        Ok(x) => x,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let (stop_tx, stop_rx) = oneshot::channel();
                    let (cmd_tx, cmd_rx) = mpsc::channel(4);
                    if ready_tx.send(Ok((stop_tx, cmd_tx, engine.instances(), status))).is_ok() {
                        engine.run(rx, stop_rx, cmd_rx).await;
                    }
                });
                // Scripts still running in the background get a moment, as on the daemon's
                // runtime at exit; none is waited for longer.
                rt.shutdown_timeout(Duration::from_secs(1));
            })
            .context("starting the VRRP thread")?;
        let (stop, cmd, instances, status) =
            ready_rx.await.map_err(|_| anyhow::anyhow!("the VRRP thread ended while starting"))??;
        Ok(Vrrp { stop: Some(stop), cmd, exited: Some(exited_rx), instances, status })
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
        if let Some(exited) = self.exited.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), exited).await;
        }
    }
}
