//! The daemon's core: what to do about checker reports, reloads, VRRP states and ticks,
//! decided without I/O. `Node::on_event` takes an `Event` and answers with `Action`s for the
//! shell (`daemon/mod.rs`) to carry out; the outcome of programming the backend and of a
//! VRRP reload comes back as events, so a reload (VRRP, then the services, then a rollback
//! if they fail) is a small state machine here. `tests.rs` drives it with events only.

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    net::IpAddr,
    time::Instant,
};

use tracing::{error, info, warn};

pub mod announce;
mod overrides;
mod preview;

use overrides::{Overrides, RealSet};

use crate::{
    check::{self, CheckId, Checks, Spec, health::Health},
    config::{self, BackendKind, Loaded, RealServer, Script, VirtualServer},
    control::{Preview, Request},
    dataplane::{
        SyncRole, SyncWant,
        services::{self, DesiredService},
    },
    notify::{Stream, fifo},
    state::{BackendStatus, CheckStatus, Status},
    vrrp::{self, VrrpStatus},
};

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
    pub fn dataplane(self) -> bool {
        self != Subsystems::VrrpOnly
    }

    pub fn vrrp(self) -> bool {
        self != Subsystems::CheckersOnly
    }
}

pub enum Event {
    /// The configuration read at start, with the checkers it asks for (the shell prepares
    /// their scripts).
    Start {
        checks: Checks,
    },
    /// A checker's verdict.
    Report(check::health::Report),
    /// Verdicts that arrived together (a burst while the data plane was being programmed):
    /// recorded in order, then programmed once.
    Reports(Vec<check::health::Report>),
    /// SIGHUP brought a new configuration (refused ones never get here). `rollback_checks`
    /// are the running configuration's checkers under the new script settings: what runs if
    /// the reload has to be undone.
    Reload {
        loaded: Box<Loaded>,
        checks: Checks,
        rollback_checks: Checks,
        started: Instant,
    },
    /// How `Action::ReloadVrrp` went: its summary, or the error.
    VrrpReloaded(Result<String, String>),
    /// How the last `Action::Program` went, and when it finished.
    Programmed {
        result: Result<(), String>,
        at: Instant,
    },
    Tick(Tick),
    /// SIGTERM / SIGINT, before anything stops: the announcements are withdrawn first.
    Stopping,
    /// SIGTERM / SIGINT, once VRRP and the checkers have stopped.
    Stop,
}

pub enum Tick {
    /// The status period: the VRRP instances and the backend as they are now.
    Publish { vrrp: Vec<VrrpStatus>, backend: Option<BackendStatus> },
    /// Next hops the data plane found unresolved: (address, interface index).
    Unresolved(Vec<(IpAddr, u32)>),
    /// The VRRP engine published its instances (a state change among them): the fences
    /// follow at once, not at the next status period.
    Vrrp(Vec<VrrpStatus>),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    StartChecker(CheckId, Box<Spec>, check::Begin),
    StopChecker(CheckId),
    /// Make the backend hold exactly these services.
    Program(Vec<DesiredService>),
    /// Apply this (VRRP part of the) configuration to the running VRRP engine.
    ReloadVrrp(Box<config::Config>),
    /// Run a notify script in the background.
    RunScript(Script),
    /// Run these scripts one by one and wait for them (`omega`, on the way out).
    RunScriptsAndWait(Vec<Script>),
    Mail {
        subject: String,
        body: String,
    },
    /// A line for the notify FIFOs that take this stream.
    Fifo(crate::notify::Stream, String),
    /// Start, switch or stop connection sync.
    SetSync(Option<SyncWant>),
    /// Set (or restore) the backend's connection timeouts (`lvs_timeouts`).
    SetTimeouts(Option<config::LvsTimeouts>),
    /// Fence these VIPs' services in the backend (VIP → `FENCE_*`; others are load-balanced).
    Fence(BTreeMap<IpAddr, u32>),
    /// Publish the status (the state file, metrics).
    Publish(Box<Status>),
    /// Make the announcement table hold exactly these VIPs' routes (`anycast_table`; None:
    /// no table, every route we added removed).
    Announce {
        table: Option<u32>,
        vips: BTreeSet<IpAddr>,
    },
    /// Ask the kernel to resolve this next hop on this interface.
    Resolve(IpAddr, u32),
    /// The start failed: stop with this error.
    Abort(String),
}

/// What undoes a reload: the configuration it replaced, that configuration's checkers, and
/// the overrides as they were.
struct Undo {
    old: Loaded,
    checks: Checks,
    overrides: Overrides,
}

/// Where a reload is.
enum Reload {
    /// Waiting for `VrrpReloaded`; the services are programmed next.
    Vrrp { undo: Undo, fingerprint: String, started: Instant },
    /// Waiting for the new services' `Programmed`.
    Program { undo: Undo, started: Instant },
    /// The new services failed; waiting for the running configuration's `Programmed`.
    RollBack,
}

pub struct Node {
    subsystems: Subsystems,
    /// The forwarding backend's kind; None with `-P`.
    backend: Option<BackendKind>,
    pid: u32,
    config_path: String,
    current: Loaded,
    health: Health,
    /// The checkers running (none with `-P`).
    checks: Checks,
    /// The VRRP part of the running config; a reload that leaves it alone leaves VRRP alone.
    vrrp_fingerprint: String,
    /// The connection sync daemon's role as last set.
    sync: Option<SyncWant>,
    /// The `lvs_timeouts` last asked of the backend.
    timeouts: Option<config::LvsTimeouts>,
    /// The VRRP instances as last published (none before VRRP starts: every VIP fenced).
    vrrp_seen: Vec<VrrpStatus>,
    /// The fences as last set (`Action::Fence`).
    fences: Option<BTreeMap<IpAddr, u32>>,
    /// Programming the services at start: a failure ends the daemon.
    starting: bool,
    reload: Option<Reload>,
    /// Drains, weights and disabled services set over the control socket.
    overrides: Overrides,
    /// The overrides before the last control request, until its programming is done: a
    /// request the backend cannot take is undone.
    control_undo: Option<Overrides>,
    /// The services the backend holds, as last programmed successfully.
    programmed: BTreeSet<String>,
    /// The services of each `Action::Program` not yet answered, oldest first.
    programming: VecDeque<BTreeSet<String>>,
    /// SIGTERM seen: nothing is announced any more.
    stopping: bool,
    /// `lb-daemon withdraw` (until `lb-daemon announce`).
    withdrawn: bool,
    /// The announcement as last sent (`Action::Announce`).
    announced: (Option<u32>, BTreeSet<IpAddr>),
    /// Each VIP's verdict, for `status`.
    announce_view: BTreeMap<IpAddr, Result<(), String>>,
}

impl Node {
    pub fn new(
        current: Loaded,
        subsystems: Subsystems,
        backend: Option<BackendKind>,
        pid: u32,
        config_path: String,
    ) -> Self {
        let vrrp_fingerprint = vrrp::fingerprint(&vrrp_config(&current.config, subsystems));
        Self {
            subsystems,
            backend,
            pid,
            config_path,
            current,
            health: Health::default(),
            checks: Checks::new(),
            vrrp_fingerprint,
            sync: None,
            timeouts: None,
            vrrp_seen: Vec::new(),
            fences: None,
            starting: false,
            reload: None,
            overrides: Overrides::default(),
            control_undo: None,
            programmed: BTreeSet::new(),
            programming: VecDeque::new(),
            stopping: false,
            withdrawn: false,
            announced: (None, BTreeSet::new()),
            announce_view: BTreeMap::new(),
        }
    }

    pub fn config(&self) -> &config::Config {
        &self.current.config
    }

    /// The part of the running config VRRP runs from (nothing with `-C`).
    pub fn vrrp_config(&self) -> config::Config {
        vrrp_config(&self.current.config, self.subsystems)
    }

    pub fn checkers(&self) -> usize {
        self.checks.len()
    }

    pub fn on_event(&mut self, event: Event) -> Vec<Action> {
        // Next hops to resolve (every 50 ms) change nothing the announcement reads.
        let may_move = !matches!(event, Event::Tick(Tick::Unresolved(_)));
        let mut out = self.on_event_inner(event);
        if may_move {
            out.extend(self.reannounce());
        }
        out
    }

    fn on_event_inner(&mut self, event: Event) -> Vec<Action> {
        match event {
            Event::Start { checks } => self.start(checks),
            Event::Report(r) => self.reports(vec![r]),
            Event::Reports(rs) => self.reports(rs),
            Event::Reload { loaded, checks, rollback_checks, started } => {
                self.reload(*loaded, checks, rollback_checks, started)
            }
            Event::VrrpReloaded(r) => self.vrrp_reloaded(r),
            Event::Programmed { result, at } => self.programmed(result, at),
            Event::Tick(Tick::Publish { vrrp, backend }) => self.publish(vrrp, backend),
            Event::Tick(Tick::Vrrp(vrrp)) => {
                self.vrrp_seen = vrrp;
                self.refence()
            }
            Event::Tick(Tick::Unresolved(hops)) => {
                hops.into_iter().map(|(ip, ifindex)| Action::Resolve(ip, ifindex)).collect()
            }
            Event::Stopping => {
                self.stopping = true;
                Vec::new()
            }
            Event::Stop => vec![Action::RunScriptsAndWait(self.omega())],
        }
    }

    fn start(&mut self, checks: Checks) -> Vec<Action> {
        let mut out = self.run_checkers(checks, check::Begin::Boot);
        out.extend(self.init_notifies(None));
        out.extend(self.program());
        self.starting = out.iter().any(|a| matches!(a, Action::Program(_)));
        out
    }

    /// keepalived's `rs_init_notifies` (ipwrapper.c, init_service_rs): each real server that
    /// starts up (no checker failed yet, none under `alpha`) and was not in `before`'s same
    /// service runs its notify_up and writes its FIFO line, as a real server coming up does.
    /// No mail: keepalived's checkers send those, on changes.
    fn init_notifies(&self, before: Option<&config::Config>) -> Vec<Action> {
        let cfg = &self.current.config;
        if !cfg.global.rs_init_notifies || !self.subsystems.dataplane() {
            return Vec::new();
        }
        let had = |vs: &VirtualServer, rs: &RealServer| {
            before.is_some_and(|b| {
                b.virtual_servers
                    .iter()
                    .any(|v| v.name() == vs.name() && v.real_servers.iter().any(|r| r.addr == rs.addr))
            })
        };
        let mut out = Vec::new();
        for vs in cfg.virtual_servers.iter().filter(|v| !v.ignored()) {
            let service = vs.name();
            for rs in vs.real_servers.iter().filter(|rs| !had(vs, rs) && self.health.real(&service, rs.addr).up) {
                out.extend(rs.notify_up.clone().map(Action::RunScript));
                let line = fifo::rs_line(&vs.keepalived_real_name(rs.addr), &vs.keepalived_name(), true);
                out.push(Action::Fifo(Stream::Lvs, line));
            }
        }
        out
    }

    /// The checkers follow `wanted` (with `-P` none run).
    fn run_checkers(&mut self, wanted: Checks, begin: check::Begin) -> Vec<Action> {
        if !self.subsystems.dataplane() {
            return Vec::new();
        }
        let (stop, start) = check::diff(&mut self.checks, wanted, &mut self.health);
        let stopped = stop.into_iter().map(Action::StopChecker);
        stopped.chain(start.into_iter().map(|(id, spec)| Action::StartChecker(id, Box::new(spec), begin))).collect()
    }

    /// The services from the config and the checkers' verdicts, each service's quorum
    /// settled first (its quorum scripts and mail when it moves); nothing with `-P`.
    fn program(&mut self) -> Vec<Action> {
        let Some(backend) = self.backend else { return Vec::new() };
        let cfg = &self.current.config;
        let (mut desired, skipped) = services::desired(cfg, &self.health, backend == BackendKind::Ipvs);
        for s in skipped {
            warn!("{s}");
        }
        let mut out = Vec::new();
        for d in &mut desired {
            let live: u64 = d.reals.iter().map(|r| u64::from(r.weight)).sum();
            if let Some(up) = self.health.settle_quorum(&d.name, live, d.quorum, d.hysteresis) {
                let vs = cfg.virtual_servers.iter().find(|v| v.name() == d.name);
                out.extend(quorum_moved(cfg, d, vs, up, live));
            }
            d.quorum_up = self.health.quorum_up(&d.name);
        }
        self.health.retain_services(&desired.iter().map(|d| d.name.clone()).collect::<Vec<_>>());
        self.overrides.apply(&mut desired, &self.health);
        // Before the services: a new one on a VIP this node does not hold starts fenced.
        out.extend(self.refence());
        self.programming.push_back(desired.iter().map(|d| d.name.clone()).collect());
        out.push(Action::Program(desired));
        out
    }

    /// `Action::Announce` when the VIPs to announce (or the table) changed.
    fn reannounce(&mut self) -> Vec<Action> {
        let inputs = announce::Inputs {
            cfg: &self.current.config,
            health: &self.health,
            programmed: &self.programmed,
            vrrp: &self.vrrp_seen,
            stopping: self.stopping,
            withdrawn: self.withdrawn,
        };
        let view = announce::decide(&inputs);
        let want = (
            self.current.config.global.anycast_table,
            view.iter().filter(|(_, v)| v.is_ok()).map(|(a, _)| *a).collect::<BTreeSet<_>>(),
        );
        for (vip, v) in &view {
            let was = self.announce_view.get(vip).map(Result::is_ok);
            match (v, was) {
                (Ok(()), None | Some(false)) => info!(%vip, "anycast: announcing"),
                (Err(why), Some(true)) => warn!(%vip, "anycast: withdrawn: {why}"),
                // Not announced yet (a start, a new VIP): not a withdrawal.
                (Err(why), None) => info!(%vip, "anycast: not announced yet: {why}"),
                _ => {}
            }
        }
        self.announce_view = view;
        if want == self.announced {
            return Vec::new();
        }
        self.announced = want.clone();
        vec![Action::Announce { table: want.0, vips: want.1 }]
    }

    /// `Action::Fence` when the fences the VRRP instances call for changed.
    fn refence(&mut self) -> Vec<Action> {
        // Not `vrrp_config()`: that clones the whole config (10k real servers), every period.
        let want = if self.subsystems.vrrp() { fences(&self.current.config, &self.vrrp_seen) } else { BTreeMap::new() };
        if self.fences.as_ref() == Some(&want) {
            return Vec::new();
        }
        self.fences = Some(want.clone());
        vec![Action::Fence(want)]
    }

    fn reports(&mut self, reports: Vec<check::health::Report>) -> Vec<Action> {
        let mut out = Vec::new();
        let mut changed = false;
        for r in reports {
            changed |= self.report(r, &mut out);
        }
        if changed {
            out.extend(self.program());
        }
        out
    }

    /// Records one verdict and what it sets off (scripts, mail) in `out`; whether the
    /// services must be programmed again.
    fn report(&mut self, report: check::health::Report, out: &mut Vec<Action>) -> bool {
        let id = report.id.clone();
        let Some(change) = self.health.record(report) else { return false };
        let cfg = &self.current.config;
        let vs = cfg.virtual_servers.iter().find(|v| v.name() == change.service);
        let rs = vs.and_then(|v| v.real_servers.iter().find(|r| r.addr == change.real));
        if change.was.up != change.now.up {
            let word = if change.now.up { "UP" } else { "DOWN" };
            let verdict = format_args!("real server {word}: {}", change.reason);
            // keepalived's line (ipwrapper.c, perform_svr_state), at its severity: INFO.
            match vs {
                Some(v) => {
                    let inhibit = rs.is_some_and(|r| r.inhibit(v));
                    let (verb, prep) = match (change.now.up, inhibit) {
                        (true, false) => ("Adding", "to"),
                        (false, false) => ("Removing", "from"),
                        (true, true) => ("Enabling", "of"),
                        (false, true) => ("Disabling", "of"),
                    };
                    info!(service = %change.service, real = %change.real, check = %id, %verdict,
                        "{verb} service {} {prep} VS {}", v.keepalived_real_name(change.real), v.keepalived_name());
                }
                None => info!(service = %change.service, real = %change.real, check = %id, "{verdict}"),
            }
            let script = rs.and_then(|r| if change.now.up { r.notify_up.as_ref() } else { r.notify_down.as_ref() });
            out.extend(script.cloned().map(Action::RunScript));
            if let Some(v) = vs {
                let line = fifo::rs_line(&v.keepalived_real_name(change.real), &v.keepalived_name(), change.now.up);
                out.push(Action::Fifo(Stream::Lvs, line));
            }
            if vs.is_some_and(|v| mail_for(cfg, v, rs)) {
                out.push(Action::Mail {
                    subject: format!("Realserver {} of virtual server {} - {word}", change.real, change.service),
                    body: format!("=> {} <=", change.reason),
                });
            }
        } else {
            info!(service = %change.service, real = %change.real, check = %id, weight = ?change.now.weight, offset = change.now.offset, "real server weight changed: {}", change.reason);
        }
        true
    }

    fn reload(&mut self, new: Loaded, checks: Checks, rollback_checks: Checks, started: Instant) -> Vec<Action> {
        let new_vrrp = vrrp_config(&new.config, self.subsystems);
        let fingerprint = vrrp::fingerprint(&new_vrrp);
        let vrrp_changed = fingerprint != self.vrrp_fingerprint;
        let (kept, dropped) = self.overrides.after_reload(&self.current.config, &new.config);
        for d in dropped {
            warn!("override cleared: {d}");
        }
        let overrides = std::mem::replace(&mut self.overrides, kept);
        let undo = Undo { old: std::mem::replace(&mut self.current, new), checks: rollback_checks, overrides };
        let mut out = self.run_checkers(checks, check::Begin::Reload);
        out.extend(self.init_notifies(Some(&undo.old.config)));
        if vrrp_changed {
            // Only what changed moves: untouched instances keep state, timers and VIPs.
            out.push(Action::ReloadVrrp(Box::new(new_vrrp)));
            self.reload = Some(Reload::Vrrp { undo, fingerprint, started });
        } else {
            out.extend(self.program());
            self.reload = Some(Reload::Program { undo, started });
        }
        out
    }

    fn vrrp_reloaded(&mut self, result: Result<String, String>) -> Vec<Action> {
        let Some(Reload::Vrrp { undo, fingerprint, started }) = self.reload.take() else { return Vec::new() };
        match result {
            Ok(summary) => {
                self.vrrp_fingerprint = fingerprint;
                info!("VRRP reloaded: {summary}");
            }
            Err(e) => error!("VRRP reload failed: {e}"),
        }
        self.reload = Some(Reload::Program { undo, started });
        self.program()
    }

    fn programmed(&mut self, result: Result<(), String>, at: Instant) -> Vec<Action> {
        if let Some(names) = self.programming.pop_front() {
            match &result {
                Ok(()) => self.programmed = names,
                // What the backend holds is uncertain: only what both sets name stays.
                Err(_) => self.programmed.retain(|n| names.contains(n)),
            }
        }
        if std::mem::take(&mut self.starting) {
            return result.err().map(Action::Abort).into_iter().collect();
        }
        match (self.reload.take(), result) {
            (Some(Reload::Program { started, .. }), Ok(())) => {
                let elapsed = at.saturating_duration_since(started);
                info!(
                    checkers = self.checks.len(),
                    elapsed_ms = %format!("{:.1}", elapsed.as_secs_f64() * 1000.0),
                    "reload applied"
                );
                Vec::new()
            }
            (Some(Reload::Program { undo, .. }), Err(e)) => {
                error!("reload failed, going back to the running configuration: {e}");
                self.current = undo.old;
                self.overrides = undo.overrides;
                let mut out = self.run_checkers(undo.checks, check::Begin::Reload);
                out.extend(self.program());
                self.reload = Some(Reload::RollBack);
                out
            }
            (Some(Reload::RollBack), Err(e)) => {
                error!("re-applying the running configuration failed: {e}");
                Vec::new()
            }
            (Some(Reload::RollBack), Ok(())) => Vec::new(),
            (waiting, result) => {
                // A health change or a control request (a reload still waiting for VRRP does
                // not program).
                self.reload = waiting;
                let undo = self.control_undo.take();
                if let Err(e) = result {
                    match undo {
                        Some(before) => {
                            error!("applying the control request failed, undone: {e}");
                            self.overrides = before;
                        }
                        None => error!("applying the health change failed: {e}"),
                    }
                }
                Vec::new()
            }
        }
    }

    /// Connection sync follows its VRRP instance (keepalived's `lvs_sync_daemon`): master
    /// while the instance is master, backup otherwise, both without an instance; then the
    /// status goes out.
    fn publish(&mut self, vrrp: Vec<VrrpStatus>, backend: Option<BackendStatus>) -> Vec<Action> {
        let mut out = Vec::new();
        if self.backend.is_some() {
            let want = sync_config(&self.current.config).map(|s| {
                let role = match &s.instance {
                    None => SyncRole::Both,
                    Some(i) if vrrp.iter().any(|v| &v.instance == i && v.state == vrrp::State::Master) => {
                        SyncRole::Master
                    }
                    Some(_) => SyncRole::Backup,
                };
                SyncWant { role, interface: s.interface, sync_id: s.sync_id, mcast: s.mcast }
            });
            // Remembered either way: a refusal is logged once, not every period.
            if want != self.sync {
                self.sync.clone_from(&want);
                out.push(Action::SetSync(want));
            }
            let timeouts = self.current.config.global.lvs_timeouts;
            if timeouts != self.timeouts {
                self.timeouts = timeouts;
                out.push(Action::SetTimeouts(timeouts));
            }
        }
        self.vrrp_seen.clone_from(&vrrp);
        out.extend(self.refence());
        out.push(Action::Publish(Box::new(self.status(vrrp, backend))));
        out
    }

    /// What `status` shows, with the VRRP instances and backend as given.
    pub fn status(&self, vrrp: Vec<VrrpStatus>, backend: Option<BackendStatus>) -> Status {
        Status {
            pid: self.pid,
            config: self.config_path.clone(),
            vrrp,
            checks: self
                .health
                .checks()
                .map(|(id, s)| CheckStatus {
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
            backend,
            // The shell adds the hand-over's counters (a task's, not the core's).
            punt: None,
            conn_sync: None,
            next_hop_cache: None,
            overrides: self.overrides.status(),
            anycast: self
                .announce_view
                .iter()
                .map(|(vip, v)| crate::state::AnycastStatus {
                    vip: vip.to_string(),
                    announced: v.is_ok(),
                    reason: v.clone().err(),
                })
                .collect(),
            anycast_table: self.current.config.global.anycast_table,
        }
    }

    /// A request from the control socket: the answer, and the actions that carry it out
    /// (the services reprogrammed). A request that cannot be done changes nothing.
    pub fn control(&mut self, req: Request) -> (Result<String, String>, Vec<Action>) {
        if self.backend.is_none() {
            return (Err("no services run here (-P: VRRP only)".into()), Vec::new());
        }
        match &req {
            Request::Withdraw | Request::Announce => {
                if self.current.config.global.anycast_table.is_none() {
                    return (Err("nothing is announced: no anycast_table in global_defs".into()), Vec::new());
                }
                self.withdrawn = matches!(req, Request::Withdraw);
                let word = if self.withdrawn { "withdrawn" } else { "announced again where the services are up" };
                warn!("control: every VIP {word}");
                return (Ok(format!("every VIP {word}")), self.reannounce());
            }
            _ => {}
        }
        let cfg = &self.current.config;
        let before = self.overrides.clone();
        let (done, verb) = match &req {
            Request::Drain { real, service } => {
                (self.overrides.set_real(cfg, *real, service.as_deref(), RealSet::Drain), format!("drained {real}"))
            }
            Request::Undrain { real, service } => {
                (self.overrides.set_real(cfg, *real, service.as_deref(), RealSet::Undrain), format!("undrained {real}"))
            }
            Request::Weight { real, service, weight } => {
                let what = weight.map_or_else(|| "back to its configured weight".into(), |w| format!("weight {w}"));
                (
                    self.overrides.set_real(cfg, *real, service.as_deref(), RealSet::Weight(*weight)),
                    format!("{real}: {what}"),
                )
            }
            Request::Disable { service } => (self.overrides.set_disabled(cfg, service, true), "disabled".into()),
            Request::Enable { service } => (self.overrides.set_disabled(cfg, service, false), "enabled".into()),
            Request::Preview { .. } => return (Err("a preview needs the new configuration".into()), Vec::new()),
            Request::Withdraw | Request::Announce => return (Err("handled above".into()), Vec::new()),
        };
        match done {
            Ok(services) => {
                let message = format!("{verb} in {}", services.join(", "));
                warn!("control: {message}");
                self.control_undo = Some(before);
                let mut out = self.program();
                out.extend(self.reannounce());
                (Ok(message), out)
            }
            Err(e) => (Err(e), Vec::new()),
        }
    }

    /// What reloading with `new` would change, against the running configuration with the
    /// checkers' verdicts and the overrides as they are (what this node runs: no VRRP with
    /// `-C`, no services with `-P`).
    pub fn preview(&self, new: &config::Config) -> Preview {
        let for_ipvs = self.backend == Some(BackendKind::Ipvs);
        let desired = |cfg: &config::Config, overrides: &Overrides| {
            let (mut d, _) = services::desired(cfg, &self.health, for_ipvs);
            overrides.apply(&mut d, &self.health);
            d
        };
        let (kept, _) = self.overrides.after_reload(&self.current.config, new);
        let (old_vrrp, new_vrrp) = (self.vrrp_config(), vrrp_config(new, self.subsystems));
        let old = preview::Side {
            cfg: &self.current.config,
            vrrp: &old_vrrp,
            desired: desired(&self.current.config, &self.overrides),
        };
        let new = preview::Side { cfg: new, vrrp: &new_vrrp, desired: desired(new, &kept) };
        let runs = preview::Runs { services: self.backend.is_some(), tables: self.backend == Some(BackendKind::Bpf) };
        preview::preview(old, new, runs)
    }

    /// `omega`: on the way out, the down notifiers of what is still up.
    fn omega(&self) -> Vec<Script> {
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
        runs
    }
}

/// A service's quorum moved: say so, run its quorum script, mail.
fn quorum_moved(
    cfg: &config::Config,
    d: &DesiredService,
    vs: Option<&VirtualServer>,
    up: bool,
    live: u64,
) -> Vec<Action> {
    let (word, script) = match (up, vs) {
        (true, Some(v)) => ("gained", v.quorum_up.as_ref()),
        (false, Some(v)) => ("lost", v.quorum_down.as_ref()),
        (_, None) => (if up { "gained" } else { "lost" }, None),
    };
    let consequence = match (up, d.sorry.is_some()) {
        (true, _) => "",
        (false, true) => "; the sorry server answers",
        (false, false) => "; the service drops new connections",
    };
    warn!(service = %d.name, live_weight = live, quorum = d.quorum, hysteresis = d.hysteresis, "quorum {word}{consequence}");
    let mut out: Vec<Action> = script.cloned().map(Action::RunScript).into_iter().collect();
    if let Some(v) = vs {
        out.push(Action::Fifo(Stream::Lvs, fifo::vs_line(&v.keepalived_name(), up)));
    }
    if vs.is_some_and(|v| mail_for(cfg, v, None)) {
        out.push(Action::Mail {
            subject: format!("Virtual server {} - quorum {word}", d.name),
            body: format!("=> quorum {word}: live weight {live}, quorum {} <=", d.quorum),
        });
    }
    out
}

/// Whether a checker change on `vs` (and `rs`) sends mail: the narrowest setting wins.
fn mail_for(cfg: &config::Config, vs: &VirtualServer, rs: Option<&RealServer>) -> bool {
    let g = &cfg.global;
    rs.and_then(|r| r.smtp_alert).or(vs.smtp_alert).or(g.smtp_alert_checker).or(g.smtp_alert).unwrap_or(false)
}

/// The part of `cfg` VRRP runs from (nothing with `-C`).
pub fn vrrp_config(cfg: &config::Config, subsystems: Subsystems) -> config::Config {
    if subsystems.vrrp() {
        return cfg.clone();
    }
    config::Config { global: cfg.global.clone(), ..Default::default() }
}

/// Which VIPs' services this node must not load-balance, from the VRRP instances' states
/// (VIP → `FENCE_*`). A VIP of an instance that is not MASTER here is not local, so the kernel
/// would never hand IPVS its frames: `FENCE_BACKUP` (passed to the kernel). A MASTER without
/// accept mode that is not the address owner drops its VIPs' traffic with keepalived's
/// firewall rule, before IPVS: `FENCE_NO_ACCEPT`. A VIP held by two instances follows the one
/// that lets most through. Addresses in no instance (static ones) are never fenced.
pub fn fences(cfg: &config::Config, vrrp: &[VrrpStatus]) -> BTreeMap<IpAddr, u32> {
    use lb_common::consts::{FENCE_BACKUP, FENCE_NO_ACCEPT};
    // How much each fence lets through: the least fenced instance wins.
    let rank = |f: u32| match f {
        0 => 0,
        FENCE_NO_ACCEPT => 1,
        _ => 2,
    };
    let mut out: BTreeMap<IpAddr, u32> = BTreeMap::new();
    for inst in &cfg.vrrp_instances {
        let master = vrrp.iter().any(|v| v.instance == inst.name && v.state == vrrp::State::Master);
        let fence = match (master, inst.drops_vip_traffic(&cfg.global)) {
            (false, _) => FENCE_BACKUP,
            (true, true) => FENCE_NO_ACCEPT,
            (true, false) => 0,
        };
        for a in inst.virtual_ipaddress.iter().chain(&inst.virtual_ipaddress_excluded) {
            let e = out.entry(a.addr).or_insert(fence);
            if rank(fence) < rank(*e) {
                *e = fence;
            }
        }
    }
    out.retain(|_, f| *f != 0);
    out
}

/// Connection sync as configured: keepalived's `lvs_sync_daemon IFACE [INSTANCE] [id N]`, or
/// the older per-instance `lvs_sync_daemon_interface IFACE` (keepalived 2.2.7 gives that one
/// sync id 0: only a named instance lends its VRID).
pub struct SyncConfig {
    pub interface: String,
    /// The VRRP instance the role follows; None: master and backup at once (active-active).
    pub instance: Option<String>,
    pub sync_id: u32,
    pub mcast: crate::dataplane::SyncMcast,
}

/// As keepalived 2.2.7: `lvs_sync_daemon` without an instance name runs master and backup
/// together for good (its checker starts both and no VRRP transition switches them), with
/// sync id 0 unless `id` says otherwise; with a name, the role follows that instance and the
/// sync id defaults to its VRID; a name that is no instance means no sync (keepalived clears
/// the sync config; validation warns).
pub fn sync_config(c: &config::Config) -> Option<SyncConfig> {
    let auth = c.global.lb_sync_auth_key.as_ref().map(|k| crate::dataplane::ctsync::auth::SyncKey::derive(&k.0));
    if let Some(l) = &c.global.lvs_sync_daemon {
        let inst = match &l.vrrp_instance {
            Some(n) => Some(c.vrrp_instances.iter().find(|v| &v.name == n)?),
            None => None,
        };
        let sync_id =
            l.sync_id.map(u32::from).or(inst.map(|v| u32::from(v.virtual_router_id.unwrap_or(0)))).unwrap_or(0);
        let mcast = crate::dataplane::SyncMcast { maxlen: l.maxlen, port: l.port, ttl: l.ttl, group: l.group, auth };
        return Some(SyncConfig { interface: l.interface.clone(), instance: l.vrrp_instance.clone(), sync_id, mcast });
    }
    c.vrrp_instances.iter().find_map(|v| {
        v.lvs_sync_daemon_interface.as_ref().map(|i| SyncConfig {
            interface: i.clone(),
            instance: Some(v.name.clone()),
            sync_id: 0,
            mcast: crate::dataplane::SyncMcast { auth, ..Default::default() },
        })
    })
}

/// What the config asks for that this version parses but does not act on yet, each located:
/// a keepalived.conf is accepted whole, and nothing in it is dropped silently. (Connection
/// sync acts with both backends now: the BPF data plane's is `dataplane::ctsync`.)
pub fn not_acted_on(_loaded: &Loaded) -> Vec<String> {
    Vec::new()
}

#[cfg(test)]
mod tests;
