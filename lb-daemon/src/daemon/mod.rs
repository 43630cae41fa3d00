//! The running daemon. `node.rs` is its core: it decides what checker reports, reloads,
//! VRRP states and ticks mean, without I/O. This module is the shell around it: it starts
//! the backend (`startup.rs`), the checkers and VRRP, turns signals, checker reports and
//! timers into events, and carries out the actions the core answers with. Dumps are in
//! `dump.rs`.

mod accept;
mod dump;
pub mod node;
mod reload_timer;
mod startup;

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow};
use sd_notify::NotifyState;
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::watch,
};
use tracing::{error, info, warn};

use crate::{
    check::{self, Checkers},
    config::BackendKind,
    control::{self, Reply, Request},
    dataplane::{Backend, punt, services::DesiredService},
    netlink::Netlink,
    notify::{Fifos, Mailer, Notifier},
    state::{self, BackendStatus, RunDir, Status},
    vrrp::{Vrrp, VrrpStatus},
};
use dump::Dump;
use node::{Action, Event, Node, Tick};
pub use node::{Subsystems, SyncConfig, not_acted_on, sync_config};
pub use startup::{Options, default_interfaces, host_interface, read_config};

/// lc/wlc/lblc counts drift as flows expire unseen; the neighbour cache must keep the real
/// servers (the XDP FIB lookup only finds what the kernel has resolved).
const HOUSEKEEPING: Duration = Duration::from_secs(10);
/// The state file follows changes within this period.
const PUBLISH: Duration = Duration::from_millis(250);
/// Next hops the XDP program could not resolve are handed to the kernel quickly: the first
/// packets of a new client after a failover depend on it.
const NEIGHBOURS: Duration = Duration::from_millis(50);
/// At most this many checker verdicts are applied in one programming.
const REPORT_BATCH: usize = 4096;

/// Tells systemd (`Type=notify`) where we are; a no-op without `NOTIFY_SOCKET`.
fn tell_systemd(state: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        warn!("sd_notify failed: {e}");
    }
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(opts: Options) -> Result<()> {
    // Handlers first: a SIGHUP arriving while we start must not take the default action
    // (terminate) once a supervisor sees us as ready.
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    // keepalived's dump signals: data, stats, JSON, stats-and-clear (SIGSTATS_CLEAR).
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let mut usr2 = signal(SignalKind::user_defined2())?;
    let mut rtmin2 = signal(SignalKind::from_raw(libc::SIGRTMIN() + 2))?;
    let mut rtmax1 = signal(SignalKind::from_raw(libc::SIGRTMAX() - 1))?;
    let (mut shell, mut reports, mut requests) = Shell::start(opts).await?;
    let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
    let mut publish = tokio::time::interval(PUBLISH);
    let mut neighbours = tokio::time::interval(NEIGHBOURS);
    // VRRP state changes fence and unfence services at once (see `node::fences`).
    let mut vrrp_rx = shell.vrrp.as_ref().map(|v| v.status.clone());
    loop {
        let vrrp_changed = async {
            match vrrp_rx.as_mut() {
                Some(rx) => rx.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        let due = shell.dp.as_ref().and_then(|d| d.next_due());
        let resolving = shell.dp.as_ref().is_some_and(|d| d.has_unresolved());
        let dataplane_due = async {
            match due {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = dataplane_due => shell.dataplane_tick(),
            _ = neighbours.tick(), if resolving => shell.unresolved().await,
            changed = vrrp_changed => {
                if changed {
                    let vrrp = shell.vrrp_status();
                    shell.handle(Event::Tick(Tick::Vrrp(vrrp))).await;
                } else {
                    vrrp_rx = None;
                }
            }
            _ = publish.tick() => shell.publish().await,
            _ = hup.recv() => shell.reload().await,
            Some(report) = reports.recv() => {
                // Everything that queued up meanwhile (a burst of verdicts while the data
                // plane was programmed) goes in one programming, not one each.
                let mut batch = vec![report];
                while batch.len() < REPORT_BATCH
                    && let Ok(r) = reports.try_recv()
                {
                    batch.push(r);
                }
                shell.handle(Event::Reports(batch)).await
            }
            Some((req, reply)) = requests.recv() => {
                let answer = shell.control(req).await;
                // The caller may have given up; nothing to do about it.
                let _ = reply.send(answer);
            }
            _ = housekeeping.tick() => shell.housekeeping(),
            // keepalived's words ("Stopping", then "Stopped"), with the signal as a field.
            _ = term.recv() => { info!(signal = "SIGTERM", "Stopping"); break; }
            _ = int.recv() => { info!(signal = "SIGINT", "Stopping"); break; }
            _ = usr1.recv() => shell.dump(Dump::Data),
            _ = usr2.recv() => shell.dump(Dump::Stats),
            _ = rtmin2.recv() => shell.dump(Dump::Json),
            _ = rtmax1.recv() => shell.dump(Dump::StatsClear),
        }
    }
    shell.stop().await
}

/// `accept::check` where some instance will need the drop rules (no nft needed otherwise).
fn check_firewall(cfg: &crate::config::Config) -> Result<()> {
    if cfg.vrrp_instances.iter().any(|v| v.drops_vip_traffic(&cfg.global)) {
        accept::check(&accept::Firewall::of(&cfg.global))?;
    }
    Ok(())
}

/// keepalived's run directory with `use_pid_dir` (and `instance`).
const KEEPALIVED_PID_DIR: &str = "/run/keepalived";

/// keepalived refuses a reload that changes the top-level `instance` (its run files are
/// named after it): "Cannot change instance name at a reload".
fn same_instance(running: Option<&str>, new: Option<&str>) -> anyhow::Result<()> {
    if running != new {
        anyhow::bail!(
            "Cannot change instance name at a reload ({} -> {}): restart lb-daemon",
            running.unwrap_or("none"),
            new.unwrap_or("none")
        );
    }
    Ok(())
}

/// Creates (or empties) `reload_file`, mode 0644 whatever the umask, as keepalived does; a
/// failure is logged with keepalived's words and the reload goes on.
fn create_reload_file(path: &std::path::Path) {
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
    // keepalived's run directory (`use_pid_dir`, `instance`), which it makes at start.
    if path.parent() == Some(std::path::Path::new(KEEPALIVED_PID_DIR)) {
        let _ = std::fs::DirBuilder::new().mode(0o755).create(KEEPALIVED_PID_DIR);
    }
    let made = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(path)
        .and_then(|f| f.set_permissions(std::fs::Permissions::from_mode(0o644)));
    if let Err(e) = made {
        warn!("Failed to create reload file ({}) {e}", path.display());
    }
}

/// What the loop owns besides the core: everything that does I/O.
struct Shell {
    opts: Options,
    node: Node,
    /// None with `-P`.
    dp: Option<Box<dyn Backend>>,
    /// Takes the frames the BPF data plane hands over (held fragments, packets to fragment).
    punt: Option<punt::Punt>,
    checkers: Checkers,
    notifier: Notifier,
    /// None until started (after the services are programmed).
    vrrp: Option<Vrrp>,
    netlink: Netlink,
    run_dir: RunDir,
    status: watch::Sender<Status>,
    state_file: StateFile,
    /// The checker-timing.json last written.
    timing_written: String,
    /// What keepalived's dump files count from (SIGSTATS_CLEAR).
    dumps: dump::Dumps,
    /// The table and the VIPs it drops (`accept`): MASTER here without accept mode. None
    /// until first set: a table a killed daemon left behind is cleared then.
    no_accept: Option<(accept::Firewall, std::collections::BTreeSet<std::net::IpAddr>)>,
    /// The announcement table and the VIP routes we hold in it (`anycast_table`). None until
    /// the first announcement: routes a killed daemon left behind are reconciled then.
    anycast: Option<(u32, std::collections::BTreeSet<std::net::IpAddr>)>,
    /// `reload_time_file`'s watcher, started again with each reload.
    reload_timer: Option<tokio::task::JoinHandle<()>>,
}

impl Shell {
    /// Reads the config, starts the backend, programs the services, starts VRRP and the
    /// metrics endpoint; on a failure nothing stays attached or pinned.
    async fn start(
        opts: Options,
    ) -> Result<(
        Self,
        tokio::sync::mpsc::Receiver<check::health::Report>,
        tokio::sync::mpsc::Receiver<control::Incoming>,
    )> {
        let run_dir = RunDir::open(&opts.run_dir)?;
        control::check_free(run_dir.path())?;
        // keepalived's parent runs the startup script before its children read the
        // configuration and look its interfaces up: the script may make them (or write an
        // included file), so the configuration is read again after it.
        if let Ok(first) = crate::config::load(&opts.config, opts.backend)
            && !first.has_errors()
            && let Some(script) = &first.config.global.startup_script
        {
            let runner = crate::script::Runner::new(&first.config.global).context("global_defs script_user")?;
            let timeout = first.config.global.startup_script_timeout;
            run_around(&runner, "startup", Some(script), timeout).await;
        }
        let mut loaded = read_config(&opts.config, opts.backend)?;
        // A reload file a previous run left (keepalived removes it at start).
        if let Some(p) = &loaded.config.global.reload_file {
            let _ = std::fs::remove_file(p);
        }
        if opts.subsystems.vrrp() {
            startup::check_interfaces(&loaded)?;
            check_firewall(&loaded.config)?;
        }
        startup::load_ssl(&mut loaded, opts.subsystems)?;
        check::tls::install(loaded.config.ssl_loaded.clone());
        for w in not_acted_on(&loaded) {
            warn!("{w}");
        }
        if opts.dump_conf {
            info!("configuration:\n{:#?}", loaded.config);
        }
        let runner = crate::script::Runner::new(&loaded.config.global).context("global_defs script_user")?;
        let netlink = Netlink::new()?;
        let mut dp = if opts.subsystems.dataplane() {
            Some(startup::start_backend(&opts, &loaded.config)?)
        } else {
            info!("-P: VRRP only; no data plane, services or checkers");
            None
        };
        let seeded =
            loaded.config.global.mh_seed.is_some() || loaded.config.virtual_servers.iter().any(|v| v.mh_seed.is_some());
        if seeded && dp.as_ref().is_some_and(|d| d.kind() == BackendKind::Ipvs) {
            warn!(
                "mh_seed has no effect with the IPVS backend: the kernel's mh builds its own table (no traffic change)"
            );
        }
        let punt = dp.as_mut().and_then(|d| {
            d.start_punt().unwrap_or_else(|e| {
                error!("fragment hand-over not running (held fragments are lost): {e:#}");
                None
            })
        });
        let (checkers, reports) = Checkers::new();
        let fifos = std::sync::Arc::new(Fifos::open(&loaded.config.global.notify_fifos, &runner));
        let notifier = Notifier::new(runner, Mailer::new(&loaded.config.global), fifos);
        let checks = check::specs(&loaded.config, notifier.runner());
        // BFD first: track_bfd and BFD_CHECK read its sessions' events.
        crate::bfd::apply(&loaded.config.bfd_instances);
        let pid = std::process::id();
        let node =
            Node::new(loaded, opts.subsystems, dp.as_ref().map(|d| d.kind()), pid, opts.config.display().to_string());
        let mut shell = Shell {
            node,
            dp,
            punt,
            checkers,
            notifier,
            vrrp: None,
            netlink,
            run_dir,
            status: watch::channel(Status::default()).0,
            state_file: StateFile::default(),
            timing_written: String::new(),
            dumps: dump::Dumps::default(),
            no_accept: None,
            anycast: None,
            reload_timer: None,
            opts,
        };
        if let Err(e) = shell.perform(Event::Start { checks }).await {
            shell.withdraw_all().await;
            shell.shutdown_dataplane();
            return Err(e.context("programming the services"));
        }
        if !shell.opts.subsystems.vrrp() {
            info!("-C: data plane and checkers only; no VRRP");
        }
        let vrrp = match Vrrp::start(&shell.node.vrrp_config(), shell.notifier.clone()).await {
            Ok(v) => v,
            Err(e) => {
                // Leave nothing behind: a failed start removes what it attached and pinned,
                // and the routes that would attract traffic to it.
                shell.withdraw_all().await;
                shell.shutdown_dataplane();
                return Err(e.context("starting VRRP"));
            }
        };
        info!(instances = vrrp.instances, "VRRP started");
        shell.vrrp = Some(vrrp);
        let backend = shell.dp.as_ref().map(|d| kind_name(d.kind()));
        info!(backend = backend.as_deref().unwrap_or("none"), checkers = shell.checkers.len(), "lb-daemon ready");
        tell_systemd(&[NotifyState::Ready, NotifyState::Status("forwarding")]);
        shell.status.send_replace(shell.current_status());
        let status_rx = shell.status.subscribe();
        if let Some(addr) = shell.opts.metrics
            && let Err(e) = crate::metrics::serve(addr, status_rx, shell.opts.pin_dir.clone()).await
        {
            // Metrics are an extra: forwarding and failover go on without them.
            error!("{e:#}; running without metrics");
        }
        // Last: a start that fails leaves no socket behind.
        let requests = match control::serve(shell.run_dir.path()) {
            Ok(r) => r,
            Err(e) => {
                shell.withdraw_all().await;
                return Err(e);
            }
        };
        shell.watch_reload_time();
        Ok((shell, reports, requests))
    }

    /// (Re)starts `reload_time_file`'s watcher with the running configuration's setting.
    fn watch_reload_time(&mut self) {
        if let Some(t) = self.reload_timer.take() {
            t.abort();
        }
        let g = &self.node.config().global;
        if let Some(path) = g.reload_time_file.clone() {
            self.reload_timer = Some(tokio::spawn(reload_timer::run(path, g.reload_repeat)));
        }
    }

    /// Feeds `event` to the core and carries out its actions, feeding back the outcomes the
    /// core waits for (programming, VRRP reloads). Only the start can fail (`Abort`).
    async fn perform(&mut self, event: Event) -> Result<()> {
        let actions = self.node.on_event(event);
        self.carry_out_all(actions).await.map(|_| ())
    }

    /// Carries out `actions` and those the core answers their outcomes with; returns the
    /// last programming failure, if any.
    async fn carry_out_all(&mut self, actions: Vec<Action>) -> Result<Option<String>> {
        let mut queue = VecDeque::from(actions);
        let mut failed = None;
        while let Some(action) = queue.pop_front() {
            if let Some(outcome) = self.carry_out(action).await? {
                if let Event::Programmed { result: Err(e), .. } = &outcome {
                    failed = Some(e.clone());
                }
                queue.extend(self.node.on_event(outcome));
            }
        }
        Ok(failed)
    }

    /// Answers a control-socket request; it is done (the backend reprogrammed) when this
    /// returns.
    async fn control(&mut self, req: Request) -> Reply {
        if let Request::Preview { config } = &req {
            return Reply { preview: Some(self.node.preview(config)), ..Reply::ok("preview") };
        }
        if matches!(req, Request::Drain { .. }) && self.dp.as_ref().is_some_and(|d| d.kind() == BackendKind::Ipvs) {
            match crate::ipvs::expire_quiescent_templates() {
                Ok(true) => warn!(
                    "IPVS: net.ipv4.vs.expire_quiescent_template set to 1, so drained real servers get no persistent clients"
                ),
                Ok(false) => {}
                Err(e) => return Reply::err(format!("a drain with IPVS needs expire_quiescent_template: {e:#}")),
            }
        }
        let (answer, actions) = self.node.control(req);
        let done = self.carry_out_all(actions).await;
        // `status` right after the command shows it.
        self.publish().await;
        match (answer, done) {
            (Err(e), _) => Reply::err(e),
            (Ok(m), Ok(None)) => Reply::ok(m),
            (Ok(m), Ok(Some(e))) => Reply::err(format!("{m}, but programming the backend failed: {e}")),
            (Ok(m), Err(e)) => Reply::err(format!("{m}, but: {e:#}")),
        }
    }

    async fn handle(&mut self, event: Event) {
        if let Err(e) = self.perform(event).await {
            error!("{e:#}");
        }
    }

    /// Does `action`; returns the event that reports its outcome, for those the core awaits.
    async fn carry_out(&mut self, action: Action) -> Result<Option<Event>> {
        match action {
            Action::StartChecker(id, spec, begin) => self.checkers.start(id, *spec, begin),
            Action::StopChecker(id) => self.checkers.stop_check(&id),
            Action::Program(desired) => {
                let result = self.program(&desired).await.map_err(|e| format!("{e:#}"));
                return Ok(Some(Event::Programmed { result, at: Instant::now() }));
            }
            Action::ReloadVrrp(cfg) => {
                let result = match &self.vrrp {
                    Some(v) => v.reload(&cfg, self.notifier.clone()).await,
                    None => Err(anyhow!("VRRP is not running")),
                };
                return Ok(Some(Event::VrrpReloaded(result.map_err(|e| format!("{e:#}")))));
            }
            Action::RunScript(s) => self.notifier.spawn(&s, None, Vec::new()),
            Action::RunScriptsAndWait(scripts) => self.notifier.omega(&scripts).await,
            Action::Mail { subject, body } => self.notifier.mail(&subject, body),
            Action::Fifo(stream, line) => self.notifier.fifo(stream, &line),
            Action::SetTimeouts(want) => {
                if let Some(dp) = self.dp.as_mut()
                    && let Err(e) = dp.set_timeouts(want)
                {
                    warn!("{e:#}");
                }
            }
            Action::SetSync(want) => {
                if let Some(dp) = self.dp.as_mut()
                    && let Err(e) = dp.set_sync(want)
                {
                    warn!("{e:#}");
                }
            }
            Action::Publish(mut status) => {
                status.punt = self.punt.as_ref().map(punt::Punt::stats);
                status.conn_sync = self.dp.as_ref().and_then(|d| d.sync_stats());
                status.next_hop_cache = self.dp.as_ref().and_then(|d| d.nexthop_summary());
                // With 10k checkers the JSON of an unchanged status, every period, was most of
                // an idle daemon's time: only a change (or a write to retry) is serialized.
                if self.state_file.needed(&self.status.borrow(), &status) {
                    let bytes = serde_json::to_vec_pretty(&status);
                    self.status.send_replace(*status);
                    if let Ok(bytes) = bytes {
                        self.state_file.write(&self.run_dir, bytes);
                    }
                }
                if !self.checkers.is_empty() {
                    // Small and changing with every round: kept out of the state file, and
                    // written only when it changed.
                    let timing = crate::check::TIMING.snapshot().to_string();
                    if timing != self.timing_written
                        && self.run_dir.write("checker-timing.json", timing.as_bytes()).is_ok()
                    {
                        self.timing_written = timing;
                    }
                }
            }
            Action::Fence(fences) => {
                if let Some(dp) = self.dp.as_mut()
                    && let Err(e) = dp.set_fences(&fences)
                {
                    error!("fencing the VRRP backup's services failed: {e:#}");
                }
                let no_accept =
                    fences.iter().filter(|(_, f)| **f == lb_common::consts::FENCE_NO_ACCEPT).map(|(a, _)| *a).collect();
                self.set_no_accept(no_accept);
            }
            Action::Announce { table, vips } => self.announce(table, vips).await,
            Action::Resolve(ip, ifindex) => {
                if let Err(e) = self.netlink.resolve(ip, ifindex).await {
                    warn!("{e:#}");
                }
            }
            Action::Abort(e) => return Err(anyhow!(e)),
        }
        Ok(None)
    }

    /// Makes the backend hold `desired`, waiting (on the timer, not on a worker) for the
    /// services it had to defer: once this returns, every changed service is live. What
    /// the flips retired is left to the data plane's tick.
    async fn program(&mut self, desired: &[DesiredService]) -> Result<()> {
        let Some(dp) = self.dp.as_mut() else { return Ok(()) };
        dp.apply(desired)?;
        while let Some(at) = dp.deferred_until() {
            tokio::time::sleep_until(at.into()).await;
            dp.tick(Instant::now())?;
        }
        Ok(())
    }

    async fn reload(&mut self) {
        info!(config = %self.opts.config.display(), "SIGHUP: reloading");
        tell_systemd(&[NotifyState::Reloading]);
        let started = Instant::now();
        // `reload_file`: present while the configuration is read, gone once the reload is
        // carried out or refused (keepalived's create_reload_file / remove_reload_file).
        let reload_file = self.node.config().global.reload_file.clone();
        if let Some(p) = &reload_file {
            create_reload_file(p);
        }
        self.reload_config(started).await;
        if let Some(p) = &reload_file {
            let _ = std::fs::remove_file(p);
        }
        // keepalived reads the reload time file again after every reload.
        self.watch_reload_time();
        tell_systemd(&[NotifyState::Ready]);
    }

    async fn reload_config(&mut self, started: Instant) {
        // An invalid config leaves the running one untouched.
        let vrrp = self.opts.subsystems.vrrp();
        let subsystems = self.opts.subsystems;
        let running_instance = self.node.config().global.instance.clone();
        let checked = read_config(&self.opts.config, self.opts.backend)
            .and_then(|l| same_instance(running_instance.as_deref(), l.config.global.instance.as_deref()).map(|()| l))
            .and_then(|l| if vrrp { startup::check_interfaces(&l).map(|()| l) } else { Ok(l) })
            .and_then(|l| if vrrp { check_firewall(&l.config).map(|()| l) } else { Ok(l) })
            .and_then(|mut l| startup::load_ssl(&mut l, subsystems).map(|()| l));
        match checked {
            Err(e) => error!("reload refused, keeping the running configuration: {e:#}"),
            Ok(loaded) => match crate::script::Runner::new(&loaded.config.global) {
                Err(e) => error!("reload refused, keeping the running configuration: {e}"),
                Ok(runner) => {
                    let fifos = Fifos::reload(self.notifier.fifos(), &loaded.config.global.notify_fifos, &runner);
                    self.notifier = Notifier::new(runner, Mailer::new(&loaded.config.global), fifos);
                    let checks = check::specs(&loaded.config, self.notifier.runner());
                    let rollback_checks = check::specs(self.node.config(), self.notifier.runner());
                    // The new certificate before the checkers restart and while the reload is
                    // carried out; the one of the configuration then running afterwards.
                    check::tls::install(loaded.config.ssl_loaded.clone());
                    let loaded = Box::new(loaded);
                    self.handle(Event::Reload { loaded, checks, rollback_checks, started }).await;
                    // The certificate of the configuration now running (the old one after a
                    // rollback); the checkers keep running, with their verdicts.
                    check::tls::install(self.node.config().ssl_loaded.clone());
                    // The config now running (the new one, or the old one after a rollback):
                    // unchanged sessions keep running, and their state.
                    crate::bfd::apply(&self.node.config().bfd_instances);
                    // The same VIPs, in the table and shape the configuration now says.
                    if let Some((_, vips)) = self.no_accept.clone() {
                        self.set_no_accept(vips);
                    }
                    self.publish().await;
                }
            },
        }
    }

    fn vrrp_status(&self) -> Vec<VrrpStatus> {
        self.vrrp.as_ref().map(|v| v.status.borrow().clone()).unwrap_or_default()
    }

    fn backend_status(&self) -> Option<BackendStatus> {
        self.dp.as_ref().map(|d| BackendStatus { kind: kind_name(d.kind()), changes: d.changes() })
    }

    fn current_status(&self) -> Status {
        let mut status = self.node.status(self.vrrp_status(), self.backend_status());
        status.punt = self.punt.as_ref().map(punt::Punt::stats);
        status.conn_sync = self.dp.as_ref().and_then(|d| d.sync_stats());
        status.next_hop_cache = self.dp.as_ref().and_then(|d| d.nexthop_summary());
        status
    }

    async fn publish(&mut self) {
        let (vrrp, backend) = (self.vrrp_status(), self.backend_status());
        self.handle(Event::Tick(Tick::Publish { vrrp, backend })).await;
    }

    async fn unresolved(&mut self) {
        let Some(dp) = self.dp.as_mut() else { return };
        match dp.take_unresolved() {
            Ok(hops) => self.handle(Event::Tick(Tick::Unresolved(hops))).await,
            Err(e) => warn!("reading unresolved next hops: {e:#}"),
        }
    }

    fn housekeeping(&mut self) {
        if let Some(dp) = self.dp.as_mut()
            && let Err(e) = dp.housekeeping()
        {
            warn!("data plane housekeeping failed: {e:#}");
        }
    }

    fn dataplane_tick(&mut self) {
        if let Some(dp) = self.dp.as_mut()
            && let Err(e) = dp.tick(Instant::now())
        {
            error!("programming the data plane failed: {e:#}");
        }
    }

    fn dump(&mut self, what: Dump) {
        let status = self.current_status();
        let dataplane = match self.dp.as_mut() {
            Some(dp) => dp.stats(),
            None => Err(anyhow!("no data plane (-P)")),
        };
        let vrrp_running = self.vrrp.is_some();
        let dump = dump::Request { what, status: &status, config_path: &self.opts.config, vrrp_running };
        self.dumps.write(&self.run_dir, dump, self.node.config(), dataplane);
    }

    /// Makes the announcement table hold exactly `want`'s routes (`anycast_table`): blackhole
    /// host routes, `proto keepalived`, which the routing daemon exports. At the first one,
    /// what a previous run left in the table is taken as ours (and removed if not wanted).
    async fn announce(&mut self, table: Option<u32>, want: std::collections::BTreeSet<std::net::IpAddr>) {
        let mut held = match self.anycast.take() {
            Some(h) => h,
            None => match table {
                Some(t) => match self.netlink.announced(t).await {
                    Ok(v) => (t, v.into_iter().collect()),
                    Err(e) => {
                        warn!("anycast: reading table {t}: {e:#}");
                        (t, Default::default())
                    }
                },
                None => return,
            },
        };
        if Some(held.0) != table {
            for vip in std::mem::take(&mut held.1) {
                self.vip_route(held.0, vip, false).await;
            }
            match table {
                Some(t) => held.0 = t,
                None => return,
            }
        }
        let gone: Vec<_> = held.1.difference(&want).copied().collect();
        for vip in gone {
            if self.vip_route(held.0, vip, false).await {
                held.1.remove(&vip);
            }
        }
        for vip in want {
            if !held.1.contains(&vip) && self.vip_route(held.0, vip, true).await {
                held.1.insert(vip);
            }
        }
        self.anycast = Some(held);
    }

    /// Removes every announcement route we hold (a start that fails).
    async fn withdraw_all(&mut self) {
        if let Some((table, _)) = self.anycast {
            self.announce(Some(table), Default::default()).await;
        }
    }

    /// Adds or removes one VIP's announcement route; whether it is done.
    async fn vip_route(&self, table: u32, vip: std::net::IpAddr, add: bool) -> bool {
        let route = crate::config::Route {
            kind: crate::config::RouteType::Blackhole,
            dest: vip,
            prefix: if vip.is_ipv4() { 32 } else { 128 },
            via: None,
            dev: None,
            src: None,
            table: Some(table),
            metric: None,
            scope: None,
            protocol: None,
            onlink: false,
            mode: crate::config::RouteMode::Add,
            tos: None,
            realms: None,
            from: None,
            expires: None,
            pref: None,
            metrics: crate::config::RouteMetrics::default(),
            no_track: false,
            nexthops: Vec::new(),
            track_group: None,
            span: Default::default(),
        };
        let done =
            if add { self.netlink.add_route(&route, None).await } else { self.netlink.del_route(&route, None).await };
        match done {
            Ok(_) => {
                info!(%vip, table, "anycast: route {}", if add { "added" } else { "removed" });
                true
            }
            Err(e) => {
                error!("anycast: {e:#}");
                false
            }
        }
    }

    /// Makes the running configuration's nftables table drop exactly `vips` (see `accept`);
    /// a table the configuration no longer names goes.
    fn set_no_accept(&mut self, vips: std::collections::BTreeSet<std::net::IpAddr>) {
        let fw = accept::Firewall::of(&self.node.config().global);
        let now = Some((fw.clone(), vips.clone()));
        if self.no_accept == now {
            return;
        }
        // At the first look, our own table from a run without `nftables` goes too.
        if self.no_accept.is_none() && fw.named.is_some() {
            let own = accept::Firewall { named: None, ..fw.clone() };
            if let Err(e) = accept::apply(&own, &Default::default()) {
                warn!("{e:#}");
            }
        }
        if let Some((old, _)) = self.no_accept.take_if(|(old, _)| old.named != fw.named)
            && let Err(e) = accept::apply(&old, &Default::default())
        {
            error!("{e:#}");
        }
        match accept::apply(&fw, &vips) {
            Ok(()) if vips.is_empty() => self.no_accept = now,
            Ok(()) => {
                info!(vips = ?vips, tables = fw.describe(), "no_accept: traffic to and from these VIPs is dropped");
                self.no_accept = now;
            }
            // Nothing to drop (a host without nftables, a config without no_accept): no table
            // to clear either.
            Err(_) if vips.is_empty() && self.no_accept.is_none() => self.no_accept = now,
            Err(e) => error!("{e:#}"),
        }
    }

    fn shutdown_dataplane(&mut self) {
        self.checkers.stop();
        if let Some(dp) = self.dp.take()
            && let Err(e) = dp.shutdown()
        {
            warn!("cleaning up after the failed start: {e:#}");
        }
    }

    async fn stop(mut self) -> Result<()> {
        tell_systemd(&[NotifyState::Stopping]);
        // The announcements go first: the routers move new flows away while this node still
        // forwards what they already sent.
        self.handle(Event::Stopping).await;
        self.notifier.fifos().stop_readers();
        // VRRP first: masters hand over (priority 0) and drop their VIPs before forwarding stops.
        if let Some(vrrp) = self.vrrp.take() {
            vrrp.stop().await;
        }
        self.checkers.stop();
        self.set_no_accept(Default::default());
        self.handle(Event::Stop).await;
        if let Some(p) = self.punt.take() {
            p.stop().await;
        }
        let torn_down = match self.dp.take() {
            Some(dp) => dp.shutdown().map(|removed| info!("stopped; {removed}")),
            None => Ok(()),
        };
        let _ = std::fs::remove_file(self.run_dir.path().join(state::STATE_FILE));
        let _ = std::fs::remove_file(control::socket_path(self.run_dir.path()));
        // Whatever the teardown did: keepalived runs it once its children have gone.
        let g = &self.node.config().global;
        run_around(self.notifier.runner(), "shutdown", g.shutdown_script.as_ref(), g.shutdown_script_timeout).await;
        torn_down?;
        info!("Stopped lb-daemon v{}", env!("CARGO_PKG_VERSION"));
        Ok(())
    }
}

/// keepalived's startup and shutdown scripts: run as configured before anything starts or
/// once everything has stopped, and waited for up to `timeout` seconds (then killed with
/// their process group). Their outcome is logged (keepalived's words) and never stops the
/// daemon.
async fn run_around(
    runner: &crate::script::Runner,
    kind: &str,
    script: Option<&(crate::config::Script, Option<crate::config::RunAs>)>,
    timeout: u32,
) {
    let Some((script, user)) = script else { return };
    let prepared = match runner.prepare(script, user.as_ref()) {
        Ok(p) => p,
        Err(e) => {
            error!("Call of {kind} script {} failed: {e}", script.command);
            return;
        }
    };
    info!("Running {kind} script {}", script.command);
    match crate::script::run_once(&prepared, Duration::from_secs(u64::from(timeout))).await {
        crate::script::Outcome::Exited(0) => info!("{kind} script succeeded"),
        crate::script::Outcome::Exited(status) => warn!("{kind} script failed, status {status}"),
        crate::script::Outcome::TimedOut => warn!("{kind} script timed out"),
        other => warn!("{kind} script {other}"),
    }
}

/// `bpf` or `ipvs`, as status and logs name the backend.
fn kind_name(k: BackendKind) -> String {
    format!("{k:?}").to_lowercase()
}

/// The state file, written when the status changes. A full or read-only run directory costs
/// the status file, nothing else: said once when it starts failing and once when it works
/// again.
#[derive(Default)]
struct StateFile {
    last: Vec<u8>,
    failing: bool,
}

impl StateFile {
    /// Whether `new` must go out: it differs from what is shown, or the file was never
    /// written (the start shows a status without writing it), or the last write failed.
    fn needed(&self, shown: &Status, new: &Status) -> bool {
        self.last.is_empty() || self.failing || shown != new
    }

    fn write(&mut self, run_dir: &RunDir, bytes: Vec<u8>) {
        if bytes == self.last {
            return;
        }
        match run_dir.write(state::STATE_FILE, &bytes) {
            Ok(()) => {
                if std::mem::take(&mut self.failing) {
                    info!("state file written again");
                }
                self.last = bytes;
            }
            Err(e) if !self.failing => {
                self.failing = true;
                warn!("writing the state file: {e:#}; retrying quietly");
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reload_may_not_change_the_instance_name() {
        assert!(same_instance(None, None).is_ok() && same_instance(Some("web"), Some("web")).is_ok());
        for (running, new) in [(Some("web"), Some("db")), (None, Some("web")), (Some("web"), None)] {
            let e = same_instance(running, new).unwrap_err().to_string();
            assert!(e.starts_with("Cannot change instance name at a reload"), "{e}");
        }
    }

    #[test]
    fn the_status_goes_out_only_when_it_changed_or_a_write_failed() {
        let shown = Status { pid: 7, quorum_lost: vec!["vs1".into()], ..Status::default() };
        let mut file = StateFile::default();
        assert!(file.needed(&shown, &shown.clone()), "the first status is written");
        file.last = b"{}".to_vec();
        assert!(!file.needed(&shown, &shown.clone()), "an unchanged status is not serialized again");
        let changed = Status { quorum_lost: Vec::new(), ..shown.clone() };
        assert!(file.needed(&shown, &changed));
        file.failing = true;
        assert!(file.needed(&shown, &shown.clone()), "a failed write is retried");
    }
}
