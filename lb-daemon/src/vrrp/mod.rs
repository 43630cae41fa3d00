//! VRRP (v2 and v3 over IPv4): elections, VIPs, gratuitous ARP, tracking, sync groups,
//! notify scripts and mail. One engine task owns every instance (`instance.rs`, pure) and
//! does their I/O (`sockets.rs`, `crate::netlink`); receiver and tracking-script tasks feed it through channels.
//!
//! Fencing: a BACKUP or FAULT node removes its VIPs, so it answers no ARP for them and the
//! network sends VIP traffic to the master only. The XDP program does not check VRRP state:
//! a frame that still reaches a backup (a neighbour cache not yet updated by the master's
//! gratuitous ARPs) is forwarded rather than dropped, which shortens the failover gap.

pub mod instance;
pub mod packet;
pub mod sockets;

use std::{
    collections::BTreeMap,
    net::IpAddr,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use crate::{
    config::{AuthType, Config, IpAddress, Script, VrrpInstance, VrrpScript},
    netlink::{self, Netlink},
    notify::Notifier,
    script,
};
pub use instance::State;
use instance::{Effect, Instance, Settings};
use packet::{Advert, Expect, Reject};

/// How often tracked interfaces are looked at.
const LINK_POLL: Duration = Duration::from_millis(200);
/// At most one log line per instance and receive check in this period.
const REJECT_LOG_EVERY: Duration = Duration::from_secs(10);

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

/// One VRRP instance as `status` shows it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VrrpStatus {
    pub instance: String,
    pub vrid: u8,
    pub state: State,
    pub priority: u8,
    pub adverts_sent: u64,
    pub adverts_received: u64,
    pub became_master: u64,
    /// Dropped adverts by receive check.
    pub rejected: std::collections::BTreeMap<String, u64>,
}

/// Counters per instance, for logs and status.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Counters {
    pub adverts_sent: u64,
    pub adverts_received: u64,
    pub rejected: BTreeMap<Reject, u64>,
    pub became_master: u64,
}

struct Inst {
    /// Stable across reloads (indexes are not): inputs name their instance by id.
    id: u64,
    rx_task: tokio::task::JoinHandle<()>,
    /// `socket_key` of the config it was built from.
    socket_key: String,
    cfg: VrrpInstance,
    m: Instance,
    iface: String,
    ifindex: u32,
    mac: [u8; 6],
    vrid: u8,
    sender: sockets::Sender,
    dsts: Vec<IpAddr>,
    /// VRRPv3 over IPv6 (the instance's VIPs are IPv6).
    v6: bool,
    /// Source of neighbour advertisements (IPv6).
    link_local: Option<std::net::Ipv6Addr>,
    group: Option<usize>,
    tuning: Tuning,
    counters: Counters,
    last_reject_log: BTreeMap<Reject, Instant>,
}

/// What an instance takes from its config besides its sockets and election settings; built
/// the same way at start and when a reload updates the instance in place.
struct Tuning {
    password: Option<Vec<u8>>,
    garp_delay: Duration,
    garp_repeat: u32,
    /// `garp_master_refresh`: re-announce every so often while master (0 = never).
    garp_refresh: Duration,
}

impl Tuning {
    fn new(cfg: &Config, v: &VrrpInstance, version: u8) -> Result<Self> {
        let g = &cfg.global;
        let password = match (&v.authentication, version) {
            (Some(a), 2) if a.auth_type == AuthType::Pass => Some(a.auth_pass.as_bytes().to_vec()),
            (Some(_), 2) => bail!("auth_type AH is not implemented; use PASS or none"),
            _ => None,
        };
        let secs = |s: u32| Duration::from_secs(u64::from(s));
        Ok(Self {
            password,
            garp_delay: secs(v.garp_master_delay.unwrap_or(g.vrrp_garp_master_delay)),
            garp_repeat: v.garp_master_repeat.unwrap_or(g.vrrp_garp_master_repeat).max(1),
            garp_refresh: secs(v.garp_master_refresh.unwrap_or(g.vrrp_garp_master_refresh)),
        })
    }
}

/// The election settings of `v` (its version and primary address are the socket's).
fn settings(v: &VrrpInstance, version: u8, primary: IpAddr) -> Settings {
    Settings {
        version,
        base_priority: v.priority,
        advert_int_cs: v.advert_int_cs.clamp(1, 4095) as u16,
        preempt: !v.nopreempt,
        preempt_delay: Duration::from_secs(u64::from(v.preempt_delay)),
        primary,
    }
}

/// The state's own notify script (`notify_master` ...), for instances and groups alike.
fn script_for(n: &crate::config::Notify, state: State) -> Option<Script> {
    match state {
        State::Master => n.master.clone(),
        State::Backup => n.backup.clone(),
        State::Fault => n.fault.clone(),
        State::Stopped => n.stop.clone(),
        State::Init => None,
    }
}

struct Group {
    name: String,
    members: Vec<usize>,
    notify: crate::config::Notify,
    state: State,
}

struct Tracker {
    cfg: VrrpScript,
    ok: bool,
}

enum Input {
    Packet {
        id: u64,
        ttl: u8,
        src: IpAddr,
        dst: IpAddr,
        msg: Vec<u8>,
    },
    Script {
        /// Trackers are rebuilt on reload; reports of an older set are ignored.
        generation: u64,
        idx: usize,
        ok: bool,
    },
    /// keepalived's second gratuitous ARP burst, `garp_master_delay` after becoming master;
    /// `epoch` (the mastership count then) makes it a no-op if mastership was lost meanwhile.
    Garp {
        id: u64,
        epoch: u64,
    },
}

/// What the daemon asks of a running engine.
enum Cmd {
    Reload { cfg: Box<Config>, notifier: Notifier, done: oneshot::Sender<String> },
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
        let mut engine = Engine::build(cfg, notifier, tx.clone()).await?;
        let instances = engine.insts.len();
        let status = engine.status_rx.clone();
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

struct Engine {
    insts: Vec<Inst>,
    next_id: u64,
    tracker_generation: u64,
    tracker_tasks: Vec<tokio::task::JoinHandle<()>>,
    groups: Vec<Group>,
    trackers: Vec<Tracker>,
    addrs: Netlink,
    notifier: Notifier,
    strict: bool,
    mail_vrrp: bool,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    tx: mpsc::Sender<Input>,
    status_tx: tokio::sync::watch::Sender<Vec<VrrpStatus>>,
    status_rx: tokio::sync::watch::Receiver<Vec<VrrpStatus>>,
}

impl Engine {
    fn publish(&self) {
        let now: Vec<VrrpStatus> = self
            .insts
            .iter()
            .map(|i| VrrpStatus {
                instance: i.cfg.name.clone(),
                vrid: i.vrid,
                state: i.m.state,
                priority: i.m.priority(),
                adverts_sent: i.counters.adverts_sent,
                adverts_received: i.counters.adverts_received,
                became_master: i.counters.became_master,
                rejected: i.counters.rejected.iter().map(|(r, n)| (format!("{r:?}"), *n)).collect(),
            })
            .collect();
        self.status_tx.send_if_modified(|old| {
            if *old == now {
                return false;
            }
            *old = now;
            true
        });
    }

    async fn build(cfg: &Config, notifier: Notifier, tx: mpsc::Sender<Input>) -> Result<Self> {
        let g = &cfg.global;
        let addrs = Netlink::new()?;
        // static_ipaddress: once at start, never touched by elections.
        for a in &cfg.static_ipaddress {
            let dev = g.default_interface.as_deref().unwrap_or("eth0");
            match addrs.add(a, dev).await {
                Ok(_) => info!(addr = %a.addr, "static_ipaddress applied"),
                Err(e) => error!("static_ipaddress {}: {e:#}", a.addr),
            }
        }
        for r in &cfg.static_routes {
            match addrs.add_route(r, g.default_interface.as_deref()).await {
                Ok(_) => info!(route = %format!("{}/{}", r.dest, r.prefix), "static_routes applied"),
                Err(e) => error!("static_routes: {e:#}"),
            }
        }
        let (status_tx, status_rx) = tokio::sync::watch::channel(Vec::new());
        let mut e = Self {
            insts: Vec::new(),
            next_id: 0,
            tracker_generation: 0,
            tracker_tasks: Vec::new(),
            groups: Vec::new(),
            trackers: Vec::new(),
            addrs,
            notifier,
            strict: g.vrrp_strict,
            mail_vrrp: g.smtp_alert_vrrp.or(g.smtp_alert).unwrap_or(false),
            tasks: Vec::new(),
            tx,
            status_tx,
            status_rx,
        };
        let now = Instant::now();
        for v in &cfg.vrrp_instances {
            e.spawn_instance(cfg, v, now);
        }
        e.build_groups(cfg);
        e.spawn_trackers(cfg);
        Ok(e)
    }

    /// Builds instance `v` with its receiver; a broken one (a missing interface, say) is
    /// logged and left out rather than taking the others, or the load balancer, down.
    fn spawn_instance(&mut self, cfg: &Config, v: &VrrpInstance, now: Instant) -> Option<usize> {
        let g = &cfg.global;
        let id = self.next_id;
        self.next_id += 1;
        let tx = self.tx.clone();
        let built = Self::instance(cfg, v, now).and_then(|inst| {
            let group = inst.cfg.unicast_peer.is_empty().then_some(if inst.v6 {
                IpAddr::V6(g.vrrp_mcast_group6)
            } else {
                IpAddr::V4(g.vrrp_mcast_group4)
            });
            let rx = sockets::Receiver::open(&inst.iface, inst.ifindex, inst.v6, group)?;
            Ok((inst, rx))
        });
        let (mut inst, rx) = match built {
            Ok(x) => x,
            Err(e) => {
                error!("vrrp_instance {}: {e:#}; this instance is not run", v.name);
                return None;
            }
        };
        inst.id = id;
        inst.rx_task = tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok((ttl, src, dst, msg)) => {
                        if tx.send(Input::Packet { id, ttl, src, dst, msg }).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        warn!("VRRP receive: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        self.insts.push(inst);
        Some(self.insts.len() - 1)
    }

    fn build_groups(&mut self, cfg: &Config) {
        let old: Vec<Group> = std::mem::take(&mut self.groups);
        for i in &mut self.insts {
            i.group = None;
        }
        for sg in &cfg.vrrp_sync_groups {
            let members: Vec<usize> =
                sg.group.iter().filter_map(|n| self.insts.iter().position(|i| &i.cfg.name == n)).collect();
            for &m in &members {
                self.insts[m].group = Some(self.groups.len());
            }
            // A group that survives a reload keeps its state (no repeated notify).
            let state = old.iter().find(|o| o.name == sg.name).map_or(State::Init, |o| o.state);
            self.groups.push(Group { name: sg.name.clone(), members, notify: sg.notify.clone(), state });
        }
    }

    /// (Re)starts the vrrp_script trackers; a script whose settings did not change keeps its
    /// OK/FAILED state.
    fn spawn_trackers(&mut self, cfg: &Config) {
        for t in self.tracker_tasks.drain(..) {
            t.abort();
        }
        self.tracker_generation += 1;
        let generation = self.tracker_generation;
        let old = std::mem::take(&mut self.trackers);
        for (idx, s) in cfg.vrrp_scripts.iter().enumerate() {
            let kept = old.iter().find(|o| o.cfg.name == s.name && same(&o.cfg, s)).map(|o| o.ok);
            self.trackers.push(Tracker { cfg: s.clone(), ok: kept.unwrap_or(!s.init_fail) });
            let Some(cmd) = &s.script else { continue };
            let prepared = match self.notifier.runner().prepare(cmd, s.user.as_ref()) {
                Ok(p) => p,
                Err(e) => {
                    warn!("vrrp_script {}: {e}; it counts as failed", s.name);
                    self.trackers[idx].ok = false;
                    continue;
                }
            };
            let (tx, s, ok) = (self.tx.clone(), s.clone(), self.trackers[idx].ok);
            self.tracker_tasks
                .push(tokio::spawn(async move { run_tracker(generation, idx, s, ok, prepared, tx).await }));
        }
    }
    /// See `Vrrp::reload`.
    async fn reload(&mut self, cfg: &Config, notifier: Notifier) -> String {
        let g = &cfg.global;
        self.notifier = notifier;
        self.strict = g.vrrp_strict;
        self.mail_vrrp = g.smtp_alert_vrrp.or(g.smtp_alert).unwrap_or(false);
        let now = Instant::now();
        let (mut kept, mut updated, mut restarted, mut removed, mut added) = (0, 0, 0, 0, 0);
        let mut start = Vec::new();
        // Group indexes go stale as instances leave; groups are rebuilt below.
        self.groups.clear();
        for inst in &mut self.insts {
            inst.group = None;
        }
        let mut i = 0;
        while i < self.insts.len() {
            let name = self.insts[i].cfg.name.clone();
            let new = cfg.vrrp_instances.iter().find(|v| v.name == name);
            match new {
                Some(v) if same(&self.insts[i].cfg, v) => {
                    kept += 1;
                    i += 1;
                }
                Some(v) if socket_key(cfg, v) == self.insts[i].socket_key => {
                    self.update_in_place(i, cfg, v).await;
                    updated += 1;
                    i += 1;
                }
                other => {
                    let e = self.insts[i].m.stop();
                    self.apply(i, e).await;
                    let gone = self.insts.remove(i);
                    gone.rx_task.abort();
                    if let Some(v) = other {
                        start.push(v.clone());
                        restarted += 1;
                    } else {
                        info!(instance = %name, "vrrp_instance removed by reload");
                        removed += 1;
                    }
                }
            }
        }
        for v in &cfg.vrrp_instances {
            if !self.insts.iter().any(|i| i.cfg.name == v.name) && !start.iter().any(|s| s.name == v.name) {
                start.push(v.clone());
                added += 1;
            }
        }
        let first_new = self.insts.len();
        for v in &start {
            self.spawn_instance(cfg, v, now);
        }
        self.build_groups(cfg);
        if !same(
            &self.trackers.iter().map(|t| &t.cfg).collect::<Vec<_>>(),
            &cfg.vrrp_scripts.iter().collect::<Vec<_>>(),
        ) {
            self.spawn_trackers(cfg);
        }
        let tracking = self.tracking_all();
        for (i, (w, f)) in tracking.into_iter().enumerate().skip(first_new) {
            self.insts[i].m.track_weight = w;
            self.insts[i].m.faults = f;
            let e = self.insts[i].m.start(now);
            self.apply(i, e).await;
        }
        self.retrack().await;
        format!("{kept} unchanged, {updated} updated in place, {restarted} restarted, {added} added, {removed} removed")
    }

    /// A reload changed what an instance does but not its sockets: new priority, timers,
    /// addresses, routes, tracking and scripts take effect without an election.
    async fn update_in_place(&mut self, i: usize, cfg: &Config, v: &VrrpInstance) {
        let tuning = match Tuning::new(cfg, v, self.insts[i].m.s.version) {
            Ok(t) => t,
            Err(e) => {
                error!(instance = %v.name, "reload: {e:#}; this instance keeps its running settings");
                return;
            }
        };
        let old = std::mem::replace(&mut self.insts[i].cfg, v.clone());
        let inst = &mut self.insts[i];
        let before = inst.m.priority();
        inst.m.s = settings(v, inst.m.s.version, inst.m.s.primary);
        inst.tuning = tuning;
        info!(instance = %v.name, "vrrp_instance updated in place by reload");
        if inst.m.state != State::Master {
            return;
        }
        // A master moves its addresses and routes to the new lists, and re-announces.
        let iface = inst.iface.clone();
        let was: Vec<IpAddress> =
            old.virtual_ipaddress.iter().chain(&old.virtual_ipaddress_excluded).cloned().collect();
        let now: Vec<IpAddress> = self.vips(i);
        for a in was.iter().filter(|a| !now.iter().any(|n| same(*a, n))) {
            if let Err(e) = self.addrs.del(a, &iface).await {
                error!(instance = %v.name, "{e:#}");
            }
        }
        for a in now.iter().filter(|n| !was.iter().any(|a| same(a, *n))) {
            if let Err(e) = self.addrs.add(a, &iface).await {
                error!(instance = %v.name, "{e:#}");
            }
        }
        for r in old.virtual_routes.iter().filter(|r| !v.virtual_routes.iter().any(|n| same(*r, n))) {
            let _ = self.addrs.del_route(r, Some(&iface)).await;
        }
        for r in v.virtual_routes.iter().filter(|n| !old.virtual_routes.iter().any(|r| same(r, *n))) {
            if let Err(e) = self.addrs.add_route(r, Some(&iface)).await {
                error!(instance = %v.name, "virtual_routes: {e:#}");
            }
        }
        if self.insts[i].m.priority() != before || !same(&old.virtual_ipaddress, &v.virtual_ipaddress) {
            let p = self.insts[i].m.priority();
            self.send_advert(i, p);
            self.garp(i);
        }
    }

    fn instance(cfg: &Config, v: &VrrpInstance, now: Instant) -> Result<Inst> {
        let g = &cfg.global;
        let iface = v.interface.clone().context("no `interface`")?;
        let vrid = v.virtual_router_id.context("no `virtual_router_id`")?;
        let v6 = v.virtual_ipaddress.first().is_some_and(|a| a.addr.is_ipv6());
        let link = netlink::link(&iface)?;
        let src = match v.unicast_src_ip.or(v.mcast_src_ip) {
            Some(a) if a.is_ipv6() == v6 => a,
            Some(a) => bail!("source address {a} is not of the VIPs' family"),
            None if v6 => {
                IpAddr::V6(link.link_local.with_context(|| format!("{iface} has no IPv6 link-local address"))?)
            }
            None => IpAddr::V4(link.ipv4.with_context(|| format!("{iface} has no IPv4 address to send adverts from"))?),
        };
        let dsts: Vec<IpAddr> = if v.unicast_peer.is_empty() {
            vec![if v6 { IpAddr::V6(g.vrrp_mcast_group6) } else { IpAddr::V4(g.vrrp_mcast_group4) }]
        } else {
            v.unicast_peer.iter().filter(|p| p.is_ipv6() == v6).copied().collect()
        };
        let version = v.version.unwrap_or(g.vrrp_version);
        let tuning = Tuning::new(cfg, v, version)?;
        Ok(Inst {
            id: 0,
            rx_task: tokio::spawn(async {}),
            socket_key: socket_key(cfg, v),
            cfg: v.clone(),
            m: Instance::new(settings(v, version, src), now),
            sender: sockets::Sender::open(&iface, link.index, src)?,
            v6,
            link_local: link.link_local,
            ifindex: link.index,
            mac: link.mac.unwrap_or_default(),
            iface,
            vrid,
            dsts,
            group: None,
            tuning,
            counters: Counters::default(),
            last_reject_log: BTreeMap::new(),
        })
    }

    async fn run(
        &mut self,
        mut rx: mpsc::Receiver<Input>,
        mut stop: oneshot::Receiver<oneshot::Sender<()>>,
        mut cmd: mpsc::Receiver<Cmd>,
    ) {
        // VIPs a previous run left (kill -9, upgrade): an instance that still holds all of
        // them was master and resumes as master at once, so a restart does not flap its
        // addresses (if a peer took over meanwhile, the first advert exchange settles it).
        // Partial leftovers go: a backup never holds VIPs.
        let mut resume = vec![false; self.insts.len()];
        for (i, r) in resume.iter_mut().enumerate() {
            let c = &self.insts[i].cfg;
            if !c.virtual_ipaddress.is_empty() && c.virtual_ipaddress.iter().all(|a| netlink::is_local(a.addr)) {
                *r = true;
                continue;
            }
            if self.insts[i].m.s.base_priority == 255 {
                continue;
            }
            let iface = self.insts[i].iface.clone();
            for a in self.vips(i) {
                if let Ok(true) = self.addrs.del(&a, &iface).await {
                    info!(instance = %self.insts[i].cfg.name, addr = %a.addr, "removed a VIP left over from a previous run");
                }
            }
        }
        let now = Instant::now();
        for (i, (w, f)) in self.tracking_all().into_iter().enumerate() {
            self.insts[i].m.track_weight = w;
            self.insts[i].m.faults = f;
        }
        for (i, resume) in resume.into_iter().enumerate() {
            let e = if resume { self.insts[i].m.resume(now) } else { self.insts[i].m.start(now) };
            self.apply(i, e).await;
        }
        let mut poll = tokio::time::interval(LINK_POLL);
        loop {
            self.publish();
            let next = self.insts.iter().filter_map(|i| i.m.deadline()).min();
            let sleep = async {
                match next {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                done = &mut stop => {
                    for i in 0..self.insts.len() {
                        let e = self.insts[i].m.stop();
                        self.apply(i, e).await;
                    }
                    for t in self.tasks.iter().chain(&self.tracker_tasks) {
                        t.abort();
                    }
                    for i in &self.insts {
                        i.rx_task.abort();
                    }
                    if let Ok(done) = done {
                        let _ = done.send(());
                    }
                    return;
                }
                Some(Cmd::Reload { cfg, notifier, done }) = cmd.recv() => {
                    let summary = self.reload(&cfg, notifier).await;
                    let _ = done.send(summary);
                }
                Some(input) = rx.recv() => match input {
                    Input::Packet { id, ttl, src, dst, msg } => {
                        if let Some(i) = self.index(id) {
                            self.on_packet(i, ttl, src, dst, &msg).await;
                        }
                    }
                    Input::Script { generation, idx, ok } => {
                        if generation != self.tracker_generation {
                            continue;
                        }
                        let s = &mut self.trackers[idx];
                        s.ok = ok;
                        info!(script = %s.cfg.name, "vrrp_script {}", if ok { "succeeded: OK" } else { "failed: FAILED" });
                        self.retrack().await;
                    }
                    Input::Garp { id, epoch } => {
                        let Some(inst) = self.index(id) else { continue };
                        let i = &self.insts[inst];
                        if i.m.state == State::Master && i.counters.became_master == epoch {
                            let refresh = i.tuning.garp_refresh;
                            self.garp(inst);
                            if !refresh.is_zero() {
                                self.garp_later(inst, refresh);
                            }
                        }
                    }
                },
                _ = sleep => {
                    let now = Instant::now();
                    for i in 0..self.insts.len() {
                        let e = self.insts[i].m.on_timer(now);
                        self.apply(i, e).await;
                    }
                }
                _ = poll.tick() => self.retrack().await,
            }
        }
    }

    /// Weight and fault reasons of instance `i` from its scripts and interfaces.
    fn tracking(&self, i: usize) -> (i32, Vec<String>) {
        let inst = &self.insts[i];
        let (mut weight, mut faults) = (0i32, Vec::new());
        for t in &inst.cfg.track_script {
            let Some(s) = self.trackers.iter().find(|s| s.cfg.name == t.name) else { continue };
            let w = t.weight.unwrap_or(s.cfg.weight);
            match (w, s.ok) {
                (0, false) => faults.push(format!("vrrp_script {} failed", t.name)),
                (w, true) if w > 0 => weight += w,
                (w, false) if w < 0 => weight += w,
                _ => {}
            }
        }
        for t in &inst.cfg.track_interface {
            let up = netlink::is_running(&t.name);
            match (t.weight.unwrap_or(0), up) {
                (0, false) => faults.push(format!("{} down", t.name)),
                (w, true) if w > 0 => weight += w,
                (w, false) if w < 0 => weight += w,
                _ => {}
            }
        }
        if !inst.cfg.dont_track_primary && !netlink::is_running(&inst.iface) {
            faults.push(format!("{} down", inst.iface));
        }
        (weight, faults)
    }

    /// Tracking of every instance; a fault of one sync group member is a fault of all
    /// (keepalived: the group is in FAULT while any member is).
    fn tracking_all(&self) -> Vec<(i32, Vec<String>)> {
        let own: Vec<(i32, Vec<String>)> = (0..self.insts.len()).map(|i| self.tracking(i)).collect();
        let mut all = own.clone();
        for g in &self.groups {
            for &m in &g.members {
                for &o in g.members.iter().filter(|o| **o != m) {
                    for f in &own[o].1 {
                        all[m].1.push(format!("sync group {}: {} has {f}", g.name, self.insts[o].cfg.name));
                    }
                }
            }
        }
        all
    }

    async fn retrack(&mut self) {
        let now = Instant::now();
        for (i, (w, f)) in self.tracking_all().into_iter().enumerate() {
            if w != self.insts[i].m.track_weight || f != self.insts[i].m.faults {
                let e = self.insts[i].m.track(now, w, f);
                self.apply(i, e).await;
            }
        }
    }

    async fn on_packet(&mut self, i: usize, ttl: u8, src: IpAddr, dst: IpAddr, msg: &[u8]) {
        let inst = &mut self.insts[i];
        let e = Expect {
            version: inst.m.s.version,
            vrid: inst.vrid,
            interval_cs: inst.m.s.advert_int_cs,
            password: inst.tuning.password.as_deref(),
            v6: inst.v6,
            check_ttl: inst.cfg.unicast_peer.is_empty(),
        };
        let result = Advert::parse(msg, src, dst, ttl, &e).and_then(|a| {
            let peers = &inst.cfg.unicast_peer;
            if !peers.is_empty() && !peers.contains(&src) { Err(Reject::UnknownPeer) } else { Ok(a) }
        });
        let advert = match result {
            Ok(a) => a,
            Err(Reject::OtherVrid) => return,
            Err(r) => {
                let n = inst.counters.rejected.entry(r).or_default();
                *n += 1;
                let now = Instant::now();
                let last = inst.last_reject_log.get(&r);
                if last.is_none_or(|t| now.duration_since(*t) >= REJECT_LOG_EVERY) {
                    inst.last_reject_log.insert(r, now);
                    warn!(instance = %inst.cfg.name, vrid = inst.vrid, %src, ttl, "advert dropped: {r:?} ({n} so far)");
                }
                return;
            }
        };
        inst.counters.adverts_received += 1;
        let mine: Vec<IpAddr> = inst.cfg.virtual_ipaddress.iter().map(|a| a.addr).collect();
        if advert.addrs != mine && advert.priority != 0 {
            if self.strict {
                warn!(instance = %inst.cfg.name, %src, "advert lists other addresses; dropped (vrrp_strict)");
                return;
            }
            info!(instance = %inst.cfg.name, %src, "advert lists other addresses than ours");
        }
        let e = inst.m.on_advert(Instant::now(), src, &advert);
        self.apply(i, e).await;
    }

    /// Carries out `effects` of instance `i`, then moves its sync group along.
    async fn apply(&mut self, i: usize, effects: Vec<Effect>) {
        let mut queue: Vec<(usize, Vec<Effect>)> = vec![(i, effects)];
        let mut touched = Vec::new();
        while let Some((i, effects)) = queue.pop() {
            for e in effects {
                match e {
                    Effect::Advert(p) => self.send_advert(i, p),
                    Effect::Reassert => {
                        info!(instance = %self.insts[i].cfg.name, "lower-priority master heard; re-asserting");
                        self.garp(i);
                    }
                    Effect::Transition { from, to, why } => {
                        self.transition(i, from, to, &why).await;
                        if let Some(g) = self.insts[i].group {
                            let now = Instant::now();
                            let why = format!(
                                "sync group {}: {} is {}",
                                self.groups[g].name,
                                self.insts[i].cfg.name,
                                to.name()
                            );
                            for m in self.groups[g].members.clone() {
                                if m != i {
                                    let e = self.insts[m].m.force(now, to, &why);
                                    if !e.is_empty() {
                                        queue.push((m, e));
                                    }
                                }
                            }
                            touched.push(g);
                        }
                    }
                }
            }
        }
        touched.dedup();
        for g in touched {
            self.group_state(g).await;
        }
    }

    fn send_advert(&mut self, i: usize, priority: u8) {
        let inst = &mut self.insts[i];
        let a = Advert {
            version: inst.m.s.version,
            vrid: inst.vrid,
            priority,
            interval_cs: inst.m.s.advert_int_cs,
            addrs: inst.cfg.virtual_ipaddress.iter().map(|a| a.addr).collect(),
            password: inst.tuning.password.clone(),
        };
        for dst in &inst.dsts {
            let msg = a.encode(inst.sender.src, *dst);
            match inst.sender.send(&msg, *dst) {
                Ok(()) => inst.counters.adverts_sent += 1,
                Err(e) => warn!(instance = %inst.cfg.name, %dst, "sending advert: {e}"),
            }
        }
    }

    /// Gratuitous ARPs (IPv4) or unsolicited neighbour advertisements (IPv6) for every VIP.
    fn garp(&self, i: usize) {
        let inst = &self.insts[i];
        for a in inst.cfg.virtual_ipaddress.iter().chain(&inst.cfg.virtual_ipaddress_excluded) {
            let ifindex = match &a.dev {
                Some(d) if *d != inst.iface => netlink::link(d).map(|l| l.index).unwrap_or(inst.ifindex),
                _ => inst.ifindex,
            };
            let sent = match (a.addr, inst.link_local) {
                (IpAddr::V4(ip), _) => sockets::gratuitous_arp(ifindex, inst.mac, ip, inst.tuning.garp_repeat),
                (IpAddr::V6(ip), Some(ll)) => {
                    sockets::unsolicited_na(ifindex, ll, inst.mac, ip, inst.tuning.garp_repeat)
                }
                (IpAddr::V6(ip), None) => Err(anyhow::anyhow!("no link-local address to announce {ip} from")),
            };
            if let Err(e) = sent {
                warn!(instance = %inst.cfg.name, "{e:#}");
            }
        }
    }

    /// Gratuitous ARPs for instance `i` after `delay`, if it is still the same mastership.
    fn garp_later(&self, i: usize, delay: Duration) {
        let (id, epoch, tx) = (self.insts[i].id, self.insts[i].counters.became_master, self.tx.clone());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = tx.send(Input::Garp { id, epoch }).await;
        });
    }

    fn index(&self, id: u64) -> Option<usize> {
        self.insts.iter().position(|i| i.id == id)
    }

    fn vips(&self, i: usize) -> Vec<IpAddress> {
        let c = &self.insts[i].cfg;
        c.virtual_ipaddress.iter().chain(&c.virtual_ipaddress_excluded).cloned().collect()
    }

    async fn transition(&mut self, i: usize, from: State, to: State, why: &str) {
        let (name, prio) = (self.insts[i].cfg.name.clone(), self.insts[i].m.priority());
        warn!(instance = %name, vrid = self.insts[i].vrid, priority = prio, "{} -> {}: {why}", from.name(), to.name());
        let iface = self.insts[i].iface.clone();
        if to == State::Master {
            self.insts[i].counters.became_master += 1;
            for a in self.vips(i) {
                if let Err(e) = self.addrs.add(&a, &iface).await {
                    error!(instance = %name, "{e:#}");
                }
            }
            for r in self.insts[i].cfg.virtual_routes.clone() {
                if let Err(e) = self.addrs.add_route(&r, Some(&iface)).await {
                    error!(instance = %name, "virtual_routes: {e:#}");
                }
            }
            self.garp(i);
            // keepalived's second burst, after vrrp_garp_master_delay (if still master then),
            // then every garp_master_refresh.
            let (delay, refresh) = (self.insts[i].tuning.garp_delay, self.insts[i].tuning.garp_refresh);
            match (delay.is_zero(), refresh.is_zero()) {
                (false, _) => self.garp_later(i, delay),
                (true, false) => self.garp_later(i, refresh),
                (true, true) => {}
            }
        } else if from == State::Master {
            for r in self.insts[i].cfg.virtual_routes.clone() {
                if let Err(e) = self.addrs.del_route(&r, Some(&iface)).await {
                    error!(instance = %name, "virtual_routes: {e:#}");
                }
            }
            for a in self.vips(i) {
                if let Err(e) = self.addrs.del(&a, &iface).await {
                    error!(instance = %name, "{e:#}");
                }
            }
        }
        let n = &self.insts[i].cfg.notify;
        let specific = script_for(n, to);
        let args = vec!["INSTANCE".to_string(), name.clone(), to.name().to_string(), prio.to_string()];
        self.notify(specific, n.any.clone(), args, to == State::Stopped).await;
        if self.insts[i].cfg.notify.smtp_alert || self.mail_vrrp {
            self.notifier.mail(
                &format!("VRRP Instance {name} - Entering {} state", to.name()),
                format!("=> VRRP Instance is now {} ({why}) <=", to.name()),
            );
        }
    }

    /// Runs the state's script, then `notify` with its arguments (waited for on stop, so
    /// notify_stop runs before we exit).
    async fn notify(&self, specific: Option<Script>, any: Option<Script>, args: Vec<String>, wait: bool) {
        let runs = [(specific, Vec::new()), (any, args)].into_iter().filter_map(|(s, a)| Some((s?, a))).collect();
        self.notifier.in_order(runs, wait).await;
    }

    /// A sync group's state is its members' once they agree; notify on each change.
    async fn group_state(&mut self, g: usize) {
        let states: Vec<State> = self.groups[g].members.iter().map(|m| self.insts[*m].m.state).collect();
        let Some(first) = states.first().copied() else { return };
        if states.iter().any(|s| *s != first) || self.groups[g].state == first {
            return;
        }
        self.groups[g].state = first;
        let grp = &self.groups[g];
        info!(group = %grp.name, "sync group now {}", first.name());
        let n = &grp.notify;
        let specific = script_for(n, first);
        let args = vec!["GROUP".to_string(), grp.name.clone(), first.name().to_string(), "0".to_string()];
        let any = n.any.clone();
        self.notify(specific, any, args, first == State::Stopped).await;
    }
}

/// Equal as configured (locations aside).
pub fn same<T: Serialize>(a: &T, b: &T) -> bool {
    serde_json::to_string(a).ok() == serde_json::to_string(b).ok()
}

/// What must match for a reloaded instance to keep its sockets (else it restarts).
fn socket_key(cfg: &Config, v: &VrrpInstance) -> String {
    let g = &cfg.global;
    serde_json::to_string(&(
        &v.interface,
        v.virtual_router_id,
        v.version.unwrap_or(g.vrrp_version),
        v.unicast_src_ip,
        v.mcast_src_ip,
        &v.unicast_peer,
        v.virtual_ipaddress.first().is_some_and(|a| a.addr.is_ipv6()),
        g.vrrp_mcast_group4,
        g.vrrp_mcast_group6,
    ))
    .unwrap_or_default()
}

/// Runs a vrrp_script every `interval`; reports OK/FAILED after `rise`/`fall` results in a row.
async fn run_tracker(
    generation: u64,
    idx: usize,
    s: VrrpScript,
    mut ok: bool,
    p: script::Prepared,
    tx: mpsc::Sender<Input>,
) {
    let interval = Duration::from_secs(u64::from(s.interval.max(1)));
    let timeout = Duration::from_secs(u64::from(s.timeout.unwrap_or(s.interval).max(1)));
    let mut run_len = 0u32;
    let mut last: Option<bool> = None;
    loop {
        let success = script::run(&p, &[], timeout).await.success();
        run_len = if last == Some(success) { run_len + 1 } else { 1 };
        last = Some(success);
        let needed = if success { s.rise.max(1) } else { s.fall.max(1) };
        if success != ok && run_len >= needed {
            ok = success;
            if tx.send(Input::Script { generation, idx, ok }).await.is_err() {
                return;
            }
        }
        tokio::time::sleep(interval).await;
    }
}
