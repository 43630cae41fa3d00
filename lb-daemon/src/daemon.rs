//! The running daemon: load config, program the data plane, react to signals.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use sd_notify::NotifyState;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};

use crate::{
    check::{
        Checkers,
        health::{Health, Report},
    },
    config::{self, BackendKind, Loaded, Severity},
    dataplane::{
        Backend, SyncRole, SyncWant,
        bpf::{AttachMode, BpfDataplane},
        object, services,
    },
    ipvs::IpvsBackend,
    notify::{Mailer, Notifier},
    script,
    state::{self, RunDir},
    vrrp::{self, Vrrp},
};

pub struct Options {
    pub config: PathBuf,
    pub pin_dir: PathBuf,
    pub bpf_object: Option<PathBuf>,
    /// Interfaces to attach XDP to; empty means every interface except loopback.
    pub interfaces: Vec<String>,
    pub attach_mode: AttachMode,
    pub dump_conf: bool,
    pub backend: BackendKind,
    pub sizes: crate::dataplane::bpf::Sizes,
    /// Where `state.json` (for `lb-daemon status`) is kept.
    pub run_dir: PathBuf,
    /// Local address of the OpenMetrics endpoint; none by default.
    pub metrics: Option<std::net::SocketAddr>,
    /// keepalived's `-P` / `-C`: run only VRRP, or only the data plane and checkers.
    pub subsystems: Subsystems,
    /// For tests of `--backend auto`: behave as if the BPF data plane could not load.
    pub simulate_no_bpf: bool,
}

/// Which parts run (keepalived's `-P`, `-C`; both by default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Subsystems {
    #[default]
    All,
    /// `-P`: VRRP only; no XDP, no services, no checkers.
    VrrpOnly,
    /// `-C`: data plane and checkers only; no VRRP, no static addresses or routes.
    CheckersOnly,
}

impl Subsystems {
    fn dataplane(self) -> bool {
        self != Subsystems::VrrpOnly
    }

    fn vrrp(self) -> bool {
        self != Subsystems::CheckersOnly
    }
}

/// The part of `cfg` VRRP runs from (nothing with `-C`).
fn vrrp_config(cfg: &config::Config, subsystems: Subsystems) -> config::Config {
    if subsystems.vrrp() {
        return cfg.clone();
    }
    config::Config { global: cfg.global.clone(), ..Default::default() }
}

/// Tells systemd (`Type=notify`) where we are; a no-op without `NOTIFY_SOCKET`.
fn notify(state: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        warn!("sd_notify failed: {e}");
    }
}

/// Parses the config and logs each diagnostic; errors fail with all of them.
pub fn read_config(path: &Path, backend: BackendKind) -> Result<Loaded> {
    let loaded = config::load(path, backend)?;
    for d in &loaded.diagnostics {
        let text = loaded.sources.render(d);
        match d.severity {
            Severity::Error => error!("{text}"),
            Severity::Warning => warn!("{text}"),
        }
    }
    if loaded.has_errors() {
        bail!("{} has {} error(s); see above", path.display(), loaded.errors().count());
    }
    Ok(loaded)
}

/// Every interface in this network namespace except loopback: a keepalived.conf says nothing
/// about XDP, and a load balancer forwards between all its links.
pub fn default_interfaces() -> Result<Vec<String>> {
    let list = nix::net::if_::if_nameindex().context("listing network interfaces")?;
    Ok(list.iter().map(|i| i.name().to_string_lossy().into_owned()).filter(|n| n != "lo").collect())
}

/// What the config asks for that this version parses but does not act on yet, each located:
/// a keepalived.conf is accepted whole, and nothing in it is dropped silently.
pub fn not_acted_on(loaded: &Loaded) -> Vec<String> {
    let c = &loaded.config;
    let mut items = Vec::new();
    if c.global.lb_backend == Some(BackendKind::Bpf)
        && let Some(s) = sync_config(c)
    {
        items.push(format!(
            "lvs_sync_daemon {} ({}): connection sync needs the IPVS backend; the BPF data plane does not sync flows",
            s.interface, s.instance
        ));
    }
    items
}

/// Connection sync as configured: keepalived's `lvs_sync_daemon IFACE INSTANCE [id N]`, or the
/// older per-instance `lvs_sync_daemon_interface IFACE` (the sync id then defaults to the
/// instance's VRID, as keepalived does).
pub struct SyncConfig {
    pub interface: String,
    pub instance: String,
    pub sync_id: u32,
}

pub fn sync_config(c: &config::Config) -> Option<SyncConfig> {
    if let Some(l) = &c.global.lvs_sync_daemon {
        let inst = match &l.vrrp_instance {
            Some(n) => c.vrrp_instances.iter().find(|v| &v.name == n),
            None => c.vrrp_instances.first(),
        };
        let instance = inst.map_or_else(|| l.vrrp_instance.clone().unwrap_or_default(), |v| v.name.clone());
        let sync_id =
            l.sync_id.map(u32::from).or(inst.map(|v| u32::from(v.virtual_router_id.unwrap_or(0)))).unwrap_or(0);
        return Some(SyncConfig { interface: l.interface.clone(), instance, sync_id });
    }
    c.vrrp_instances.iter().find_map(|v| {
        v.lvs_sync_daemon_interface.as_ref().map(|i| SyncConfig {
            interface: i.clone(),
            instance: v.name.clone(),
            sync_id: u32::from(v.virtual_router_id.unwrap_or(0)),
        })
    })
}

/// Starts the backend the config and `--backend` ask for. `auto` takes the BPF data plane
/// when the config needs nothing only IPVS has and the kernel loads and attaches it, and
/// otherwise falls back to IPVS, saying why in one line.
fn start_backend(opts: &Options, cfg: &config::Config) -> Result<Box<dyn Backend>> {
    match cfg.global.lb_backend.unwrap_or_default() {
        BackendKind::Bpf => Ok(Box::new(start_bpf(opts)?)),
        BackendKind::Ipvs => Ok(Box::new(IpvsBackend::open().context("starting the IPVS backend")?)),
        BackendKind::Auto => {
            let why = if let Some(why) = services::needs_ipvs(cfg) {
                why
            } else if opts.simulate_no_bpf {
                "the BPF data plane is unavailable (simulated by --simulate-no-bpf)".to_string()
            } else {
                match start_bpf(opts) {
                    Ok(dp) => return Ok(Box::new(dp)),
                    // An earlier run's pinned data plane is still there (and may be
                    // forwarding): IPVS beside it would see none of the traffic.
                    Err(e) if opts.pin_dir.join(lb_common::consts::MAP_META).exists() => {
                        return Err(e.context(format!(
                            "the BPF data plane pinned at {} could not be taken over; not falling back to IPVS \
                             while it stays (remove the pins to let auto choose IPVS)",
                            opts.pin_dir.display()
                        )));
                    }
                    Err(e) => format!("the BPF data plane cannot run here: {e:#}"),
                }
            };
            match IpvsBackend::open() {
                Ok(b) => {
                    warn!("backend auto: using IPVS because {why}");
                    Ok(Box::new(b))
                }
                Err(e) => bail!("no forwarding backend can run: BPF: {why}; IPVS: {e:#}"),
            }
        }
    }
}

/// Loads the XDP program and attaches it everywhere it should run; on any failure nothing
/// stays attached or pinned.
fn start_bpf(opts: &Options) -> Result<BpfDataplane> {
    let object = object::load(opts.bpf_object.as_deref())?;
    let mut dp = BpfDataplane::load(&object, &opts.pin_dir, opts.sizes)?;
    let attached = (|| {
        let interfaces = if opts.interfaces.is_empty() { default_interfaces()? } else { opts.interfaces.clone() };
        if interfaces.is_empty() {
            bail!("no interface to attach XDP to (only loopback here); name one with --interface");
        }
        for iface in &interfaces {
            let mode = dp.attach(iface, opts.attach_mode)?;
            info!(iface, mode, "XDP program attached");
        }
        dp.drop_stale_links()
    })();
    match attached {
        Ok(()) => Ok(dp),
        // Pins this run created go; adopted ones stay, so what an earlier run left
        // forwarding keeps forwarding (the error says what failed).
        Err(e) if dp.created_pins() => {
            if let Err(c) = dp.shutdown(true) {
                warn!("cleaning up the BPF data plane: {c:#}");
            }
            Err(e)
        }
        Err(e) => Err(e),
    }
}

pub async fn run(opts: Options) -> Result<()> {
    // Handlers first: a SIGHUP arriving while we start must not take the default action
    // (terminate) once a supervisor sees us as ready.
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    // keepalived's dump signals: data, stats, JSON.
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let mut usr2 = signal(SignalKind::user_defined2())?;
    let mut rtmin2 = signal(SignalKind::from_raw(libc::SIGRTMIN() + 2))?;
    let loaded = read_config(&opts.config, opts.backend)?;
    for w in not_acted_on(&loaded) {
        warn!("{w}");
    }
    if opts.dump_conf {
        info!("configuration:\n{:#?}", loaded.config);
    }
    let runner = script::Runner::new(&loaded.config.global).context("global_defs script_user")?;
    let run_dir = RunDir::open(&opts.run_dir)?;
    let dp = if opts.subsystems.dataplane() {
        Some(start_backend(&opts, &loaded.config)?)
    } else {
        info!("-P: VRRP only; no data plane, services or checkers");
        None
    };
    let (checkers, mut reports) = Checkers::new();
    let mut node = Node {
        dp,
        subsystems: opts.subsystems,
        notifier: Notifier::new(runner, Mailer::new(&loaded.config.global)),
        current: loaded,
        health: Health::default(),
        checkers,
        vrrp_fingerprint: String::new(),
        sync: None,
    };
    node.sync_checkers();
    if let Err(e) = node.program() {
        node.shutdown_dataplane();
        return Err(e.context("programming the services"));
    }
    if !opts.subsystems.vrrp() {
        info!("-C: data plane and checkers only; no VRRP");
    }
    let vrrp_cfg = vrrp_config(&node.current.config, opts.subsystems);
    let vrrp = match Vrrp::start(&vrrp_cfg, node.notifier.clone()).await {
        Ok(v) => v,
        Err(e) => {
            // Leave nothing behind: a failed start removes what it attached and pinned.
            node.shutdown_dataplane();
            return Err(e.context("starting VRRP"));
        }
    };
    node.vrrp_fingerprint = vrrp::fingerprint(&vrrp_cfg);
    info!(instances = vrrp.instances, "VRRP started");
    let backend = node.dp.as_ref().map(|d| format!("{:?}", d.kind()).to_lowercase());
    info!(backend = backend.as_deref().unwrap_or("none"), checkers = node.checkers.len(), "lb-daemon ready");
    notify(&[NotifyState::Ready, NotifyState::Status("forwarding")]);

    // lc/wlc/lblc counts drift as flows expire unseen; the neighbour cache must keep the
    // real servers (the XDP FIB lookup only finds what the kernel has resolved).
    let mut housekeeping = tokio::time::interval(std::time::Duration::from_secs(10));
    // The state file follows changes within this period.
    let mut publish = tokio::time::interval(std::time::Duration::from_millis(250));
    let mut last_state = Vec::new();
    let mut state_failing = false;
    let (status_tx, status_rx) = tokio::sync::watch::channel(node.status(&opts, &vrrp));
    // Next hops the XDP program could not resolve are handed to the kernel quickly: the
    // first packets of a new client after a failover depend on it.
    let mut neighbours = tokio::time::interval(std::time::Duration::from_millis(50));
    let netlink = crate::netlink::Netlink::new()?;
    if let Some(addr) = opts.metrics
        && let Err(e) = crate::metrics::serve(addr, status_rx, opts.pin_dir.clone()).await
    {
        // Metrics are an extra: forwarding and failover go on without them.
        error!("{e:#}; running without metrics");
    }
    loop {
        let due = node.dp.as_ref().and_then(|d| d.next_due());
        let dataplane_due = async {
            match due {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = dataplane_due => {
                if let Some(dp) = node.dp.as_mut()
                    && let Err(e) = dp.tick(std::time::Instant::now())
                {
                    error!("programming the data plane failed: {e:#}");
                }
            }
            _ = neighbours.tick() => {
                let Some(dp) = node.dp.as_mut() else { continue };
                match dp.take_unresolved() {
                    Ok(list) => {
                        for (ip, ifindex) in list {
                            if let Err(e) = netlink.resolve(ip, ifindex).await {
                                warn!("{e:#}");
                            }
                        }
                    }
                    Err(e) => warn!("reading unresolved next hops: {e:#}"),
                }
            }
            _ = publish.tick() => {
                node.follow_sync(&vrrp);
                let s = node.status(&opts, &vrrp);
                let bytes = serde_json::to_vec_pretty(&s);
                status_tx.send_replace(s);
                if let Ok(bytes) = bytes
                    && bytes != last_state
                {
                    // A full or read-only run directory costs the status file, nothing else.
                    // Said once when it starts failing and once when it works again.
                    match run_dir.write(state::STATE_FILE, &bytes) {
                        Ok(()) => {
                            if std::mem::take(&mut state_failing) {
                                info!("state file written again");
                            }
                            last_state = bytes;
                        }
                        Err(e) if !state_failing => {
                            state_failing = true;
                            warn!("writing the state file: {e:#}; retrying quietly");
                        }
                        Err(_) => {}
                    }
                }
            }
            _ = hup.recv() => {
                info!(config = %opts.config.display(), "SIGHUP: reloading");
                notify(&[NotifyState::Reloading]);
                node.reload(&opts, &vrrp).await;
                notify(&[NotifyState::Ready]);
            }
            Some(report) = reports.recv() => node.on_report(report),
            _ = housekeeping.tick() => {
                if let Some(dp) = node.dp.as_mut()
                    && let Err(e) = dp.housekeeping()
                {
                    warn!("data plane housekeeping failed: {e:#}");
                }
            }
            _ = term.recv() => { info!("SIGTERM: stopping"); break; }
            _ = int.recv() => { info!("SIGINT: stopping"); break; }
            _ = usr1.recv() => node.dump(&run_dir, Dump::Data, &opts, &vrrp),
            _ = usr2.recv() => node.dump(&run_dir, Dump::Stats, &opts, &vrrp),
            _ = rtmin2.recv() => node.dump(&run_dir, Dump::Json, &opts, &vrrp),
        }
    }
    notify(&[NotifyState::Stopping]);
    // VRRP first: masters hand over (priority 0) and drop their VIPs before forwarding stops.
    vrrp.stop().await;
    node.checkers.stop();
    node.omega().await;
    if let Some(dp) = node.dp.take() {
        let kind = dp.kind();
        dp.shutdown()?;
        info!(
            "{}",
            if kind == BackendKind::Ipvs {
                "stopped; this daemon's IPVS services removed"
            } else {
                "stopped; XDP detached and pins removed"
            }
        );
    }
    let _ = std::fs::remove_file(run_dir.path().join(state::STATE_FILE));
    Ok(())
}

fn statics(c: &config::Config) -> (&Vec<config::IpAddress>, &Vec<config::Route>) {
    (&c.static_ipaddress, &c.static_routes)
}

/// What a dump signal writes (keepalived's SIGUSR1 / SIGUSR2 / SIGRTMIN+2).
#[derive(Clone, Copy, Debug)]
enum Dump {
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

/// Everything the daemon loop owns.
struct Node {
    /// None with `-P`.
    dp: Option<Box<dyn Backend>>,
    subsystems: Subsystems,
    current: Loaded,
    notifier: Notifier,
    health: Health,
    checkers: Checkers,
    /// The VRRP part of the running config; see `reload`.
    vrrp_fingerprint: String,
    /// The connection sync daemon's role as last set.
    sync: Option<SyncWant>,
}

impl Node {
    /// Keeps the connection sync daemon's role with its VRRP instance: master while the
    /// instance is master, backup otherwise (keepalived's `lvs_sync_daemon`).
    fn follow_sync(&mut self, vrrp: &Vrrp) {
        let Some(dp) = self.dp.as_mut() else { return };
        let want = sync_config(&self.current.config).map(|s| {
            let master =
                vrrp.status.borrow().iter().any(|v| v.instance == s.instance && v.state == vrrp::State::Master);
            SyncWant {
                role: if master { SyncRole::Master } else { SyncRole::Backup },
                interface: s.interface,
                sync_id: s.sync_id,
            }
        });
        if want == self.sync {
            return;
        }
        // Remember the attempt either way: a refusal is logged once, not every period.
        self.sync.clone_from(&want);
        if let Err(e) = dp.set_sync(want) {
            warn!("{e:#}");
        }
    }

    fn sync_checkers(&mut self) {
        if self.subsystems.dataplane() {
            self.checkers.sync(&self.current.config, self.notifier.runner(), &mut self.health);
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

    /// Writes a dump into the run directory (fresh file, 0600, never through a symlink). A
    /// failure (full disk, read-only directory) is logged; nothing else is affected.
    fn dump(&mut self, run_dir: &RunDir, what: Dump, opts: &Options, vrrp: &Vrrp) {
        let status = self.status(opts, vrrp);
        let dataplane = match self.dp.as_mut() {
            Some(dp) => dp.stats(),
            None => Err(anyhow::anyhow!("no data plane (-P)")),
        };
        let text = match what {
            Dump::Data => format!(
                "lb-daemon data dump\n\nstatus:\n{status:#?}\n\nconfiguration ({}):\n{:#?}\n",
                opts.config.display(),
                self.current.config
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
                serde_json::to_string_pretty(&serde_json::json!({ "status": status, "dataplane": dp }))
                    .unwrap_or_default()
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

    fn status(&self, opts: &Options, vrrp: &Vrrp) -> state::Status {
        state::Status {
            pid: std::process::id(),
            config: opts.config.display().to_string(),
            vrrp: vrrp.status.borrow().clone(),
            checks: self
                .health
                .checks()
                .map(|(id, s)| state::CheckStatus {
                    service: id.service.clone(),
                    real: id.real.to_string(),
                    check: id.index + 1,
                    up: s.up,
                    weight: s.weight,
                    reason: s.reason.clone(),
                })
                .collect(),
            quorum_lost: self.health.quorum_lost(),
            checker_counters: serde_json::to_value(&self.health.counters).unwrap_or_default(),
            backend: self
                .dp
                .as_ref()
                .map(|d| state::BackendStatus { kind: format!("{:?}", d.kind()).to_lowercase(), changes: d.changes() }),
        }
    }

    /// Programs the data plane from the config and the checkers' verdicts, settling each
    /// service's quorum first (and running its quorum scripts when it moves).
    fn program(&mut self) -> Result<()> {
        if self.dp.is_none() {
            return Ok(()); // -P: no services to program
        }
        let cfg = &self.current.config;
        let for_ipvs = self.dp.as_ref().is_some_and(|d| d.kind() == BackendKind::Ipvs);
        let (mut desired, skipped) = services::desired(cfg, &self.health, for_ipvs);
        for s in skipped {
            warn!("{s}");
        }
        for d in &mut desired {
            let live: u64 = d.reals.iter().map(|r| u64::from(r.weight)).sum();
            if let Some(up) = self.health.settle_quorum(&d.name, live, d.quorum, d.hysteresis) {
                let vs = cfg.virtual_servers.iter().find(|v| v.name() == d.name);
                let (word, script) = match (up, vs) {
                    (true, Some(v)) => ("gained", v.quorum_up.as_ref()),
                    (false, Some(v)) => ("lost", v.quorum_down.as_ref()),
                    (_, None) => (if up { "gained" } else { "lost" }, None),
                };
                warn!(service = %d.name, live_weight = live, quorum = d.quorum, hysteresis = d.hysteresis,
                    "quorum {word}{}", if up { "" } else { if d.sorry.is_some() { "; the sorry server answers" } else { "; the service drops new connections" } });
                if let Some(s) = script {
                    self.notifier.spawn(s, None, Vec::new());
                }
                if vs.is_some_and(|v| self.mail_for(v, None)) {
                    self.notifier.mail(
                        &format!("Virtual server {} - quorum {word}", d.name),
                        format!("=> quorum {word}: live weight {live}, quorum {} <=", d.quorum),
                    );
                }
            }
            d.quorum_up = self.health.quorum_up(&d.name);
        }
        self.health.retain_services(&desired.iter().map(|d| d.name.clone()).collect::<Vec<_>>());
        match self.dp.as_mut() {
            Some(dp) => dp.apply(&desired),
            None => Ok(()),
        }
    }

    async fn reload(&mut self, opts: &Options, vrrp: &Vrrp) {
        let started = std::time::Instant::now();
        // An invalid config leaves the running one untouched.
        let new = match read_config(&opts.config, opts.backend) {
            Ok(n) => n,
            Err(e) => return error!("reload refused, keeping the running configuration: {e:#}"),
        };
        let runner = match script::Runner::new(&new.config.global) {
            Ok(r) => r,
            Err(e) => return error!("reload refused, keeping the running configuration: {e}"),
        };
        let new_vrrp = vrrp_config(&new.config, self.subsystems);
        let vrrp_changed = vrrp::fingerprint(&new_vrrp) != self.vrrp_fingerprint;
        let old = std::mem::replace(&mut self.current, new);
        self.notifier = Notifier::new(runner, Mailer::new(&self.current.config.global));
        self.sync_checkers();
        if vrrp_changed {
            // Only what changed moves: untouched instances keep state, timers and VIPs.
            match vrrp.reload(&new_vrrp, self.notifier.clone()).await {
                Ok(summary) => {
                    self.vrrp_fingerprint = vrrp::fingerprint(&new_vrrp);
                    info!("VRRP reloaded: {summary}");
                }
                Err(e) => error!("VRRP reload failed: {e:#}"),
            }
            if !config::same(&statics(&old.config), &statics(&self.current.config)) {
                warn!("static_ipaddress / static_routes changed: they are applied at start only (next restart)");
            }
        }
        match self.program() {
            Ok(()) => info!(
                checkers = self.checkers.len(),
                elapsed_ms = %format!("{:.1}", started.elapsed().as_secs_f64() * 1000.0),
                "reload applied"
            ),
            Err(e) => {
                error!("reload failed, going back to the running configuration: {e:#}");
                self.current = old;
                self.sync_checkers();
                if let Err(e) = self.program() {
                    error!("re-applying the running configuration failed: {e:#}");
                }
            }
        }
    }

    fn on_report(&mut self, report: Report) {
        let id = report.id.clone();
        let Some(change) = self.health.record(report) else { return };
        let cfg = &self.current.config;
        let vs = cfg.virtual_servers.iter().find(|v| v.name() == change.service);
        let rs = vs.and_then(|v| v.real_servers.iter().find(|r| r.addr == change.real));
        if change.was.up != change.now.up {
            let word = if change.now.up { "UP" } else { "DOWN" };
            warn!(service = %change.service, real = %change.real, check = %id, "real server {word}: {}", change.reason);
            let script = rs.and_then(|r| if change.now.up { r.notify_up.as_ref() } else { r.notify_down.as_ref() });
            if let Some(s) = script {
                self.notifier.spawn(s, None, Vec::new());
            }
            if vs.is_some_and(|v| self.mail_for(v, rs)) {
                self.notifier.mail(
                    &format!("Realserver {} of virtual server {} - {word}", change.real, change.service),
                    format!("=> {} <=", change.reason),
                );
            }
        } else {
            info!(service = %change.service, real = %change.real, check = %id, weight = ?change.now.weight, "real server weight changed: {}", change.reason);
        }
        if let Err(e) = self.program() {
            error!("applying the health change failed: {e:#}");
        }
    }

    /// Whether a checker change on `vs` (and `rs`) sends mail: the narrowest setting wins.
    fn mail_for(&self, vs: &crate::config::VirtualServer, rs: Option<&crate::config::RealServer>) -> bool {
        let g = &self.current.config.global;
        rs.and_then(|r| r.smtp_alert).or(vs.smtp_alert).or(g.smtp_alert_checker).or(g.smtp_alert).unwrap_or(false)
    }

    /// `omega`: on the way out, run the down notifiers of what is still up, and wait for them.
    async fn omega(&self) {
        let mut runs = Vec::new();
        for vs in self.current.config.virtual_servers.iter().filter(|v| v.omega) {
            let name = vs.name();
            for rs in &vs.real_servers {
                if self.health.real(&name, rs.addr).up
                    && let Some(s) = &rs.notify_down
                {
                    runs.push(s.clone());
                }
            }
            if self.health.quorum_up(&name)
                && let Some(s) = &vs.quorum_down
            {
                runs.push(s.clone());
            }
        }
        self.notifier.omega(&runs).await;
    }
}
