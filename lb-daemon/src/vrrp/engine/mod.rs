//! The VRRP engine: one task owning every instance. It feeds each instance's state machine
//! (`instance.rs`) its timers, adverts and tracking, and carries out what comes back:
//! adverts, VIPs and routes, gratuitous ARPs, notify scripts and mail, and moving sync group
//! members along (`sync_group.rs`). Receiver, tracking-script and timer tasks feed it
//! through one channel; `reload.rs` applies a changed config in place.

mod live;

pub use live::{extra_targets as garp_extra_targets, placed_vips};
mod reload;
mod statics;

use std::{
    net::IpAddr,
    time::{Duration, Instant},
};

use anyhow::Result;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{error, info, warn};

use super::{
    instance::{Effect, State},
    ours,
    proc_events::ProcQuorum,
    status::{ProcessStatus, VrrpStatus},
    sync_group::{self, SyncGroup},
    tracking::{self, BfdView, FileValue, ScriptVerdict, Trackers},
};
use crate::{
    config::{BfdInstance, Config, IpAddress, Script, VrrpInstance},
    netlink::{self, Netlink},
    notify::{Notifier, Stream, fifo},
};
use live::LiveInstance;
use statics::Statics;

/// The index of the device virtual route `r` was added on (`Netlink::add_route` with the
/// instance's interface `iface` as default): its `dev`, else `iface` for a unicast route of
/// one next hop; None where the kernel's route names none (multipath). A device that is gone
/// gives 0, which no route has.
fn added_on(r: &crate::config::Route, iface: &str) -> Option<u32> {
    match &r.dev {
        Some(d) => Some(netlink::if_index(d).unwrap_or(0)),
        None if r.kind == crate::config::RouteType::Unicast && r.nexthops.is_empty() => {
            Some(netlink::if_index(iface).unwrap_or(0))
        }
        None => None,
    }
}

/// How often tracked interfaces are looked at.
const LINK_POLL: Duration = Duration::from_millis(200);

pub enum Input {
    Packet {
        id: u64,
        ttl: u8,
        src: IpAddr,
        dst: IpAddr,
        msg: Vec<u8>,
    },
    Script(ScriptVerdict),
    File(FileValue),
    Process(ProcQuorum),
    /// keepalived's second gratuitous ARP burst, `garp_master_delay` after becoming master;
    /// `epoch` (the mastership count then) makes it a no-op if mastership was lost meanwhile.
    Garp {
        id: u64,
        epoch: u64,
        /// A `garp_master_refresh` (else the second burst after `garp_master_delay`).
        refresh: bool,
    },
    /// keepalived's `vrrp_lower_prio_gratuitous_arp_thread`: `garp_lower_prio_repeat`
    /// announcements again, `garp_lower_prio_delay` after a lower priority advert came in.
    LowerPrioGarp {
        id: u64,
        epoch: u64,
    },
}

impl From<ProcQuorum> for Input {
    fn from(q: ProcQuorum) -> Self {
        Input::Process(q)
    }
}

impl From<FileValue> for Input {
    fn from(v: FileValue) -> Self {
        Input::File(v)
    }
}

impl From<ScriptVerdict> for Input {
    fn from(v: ScriptVerdict) -> Self {
        Input::Script(v)
    }
}

/// What the daemon asks of a running engine.
pub enum Cmd {
    Reload { cfg: Box<Config>, notifier: Notifier, done: oneshot::Sender<String> },
}

pub struct Engine {
    insts: Vec<LiveInstance>,
    next_id: u64,
    trackers: Trackers,
    /// The configured BFD sessions and their last events (`crate::bfd`), for track_bfd.
    bfds: Vec<BfdInstance>,
    bfd_events: crate::bfd::Events,
    groups: Vec<SyncGroup>,
    netlink: Netlink,
    statics: Statics,
    /// The route and rule deletions this config listens for (`on_deleted`).
    monitor: ours::Monitor,
    /// The instances' VMACs (`use_vmac`).
    vmacs: crate::vrrp::vmac::Vmacs,
    /// Interfaces whose promote_secondaries we turned on (`promote_secondaries`), turned off
    /// again at stop as keepalived does; one already on is left alone.
    promoted: std::collections::BTreeSet<String>,
    /// `vrrp_startup_delay`'s end, fixed at start (a reload neither sets nor clears it, as
    /// keepalived's `vrrp_delayed_start_time`): every instance's backup timers honour it.
    delayed_start: Option<Instant>,
    /// `disable_local_igmp` turned igmp_link_local_mcast_reports from 1 to 0: back at stop.
    igmp_reports_off: bool,
    /// `interface_up_down_delays`: the link states the instances see.
    links: crate::vrrp::debounce::Links,
    notifier: Notifier,
    mail_vrrp: bool,
    tx: mpsc::Sender<Input>,
    status_tx: watch::Sender<Vec<VrrpStatus>>,
}

impl Engine {
    /// Applies `static_ipaddress`, `static_routes` and `static_rules` and builds every
    /// instance of `cfg`.
    pub async fn build(
        cfg: &Config,
        notifier: Notifier,
        tx: mpsc::Sender<Input>,
    ) -> Result<(Self, watch::Receiver<Vec<VrrpStatus>>)> {
        let g = &cfg.global;
        let netlink = Netlink::new()?;
        let statics = Statics::apply(cfg, &netlink).await;
        let (status_tx, status_rx) = watch::channel(Vec::new());
        let mut e = Self {
            insts: Vec::new(),
            next_id: 0,
            trackers: Trackers::default(),
            bfds: cfg.bfd_instances.clone(),
            bfd_events: crate::bfd::events().borrow().clone(),
            groups: Vec::new(),
            netlink,
            statics,
            monitor: ours::Monitor::of(cfg),
            vmacs: Default::default(),
            promoted: Default::default(),
            delayed_start: None,
            igmp_reports_off: false,
            links: Default::default(),
            notifier,
            mail_vrrp: g.vrrp_mail(),
            tx,
            status_tx,
        };
        let now = Instant::now();
        if g.vrrp_startup_delay_us > 0 {
            let d = Duration::from_micros(u64::from(g.vrrp_startup_delay_us));
            info!("Delaying startup for {} seconds", d.as_secs_f64());
            e.delayed_start = Some(now + d);
        }
        // Before any instance joins its group (keepalived: before its dispatcher starts).
        if g.disable_local_igmp {
            e.igmp_reports_off = set_igmp_link_local_reports(false);
        }
        for v in &cfg.vrrp_instances {
            e.spawn_instance(cfg, v, now).await;
        }
        e.build_groups(cfg);
        e.configure_links(cfg);
        e.trackers.restart(cfg, e.notifier.runner(), &e.tx);
        Ok((e, status_rx))
    }

    /// The interfaces' up/down delays (`debounce`), a VMAC taking its interface's, and a
    /// first look at each.
    fn configure_links(&mut self, cfg: &Config) {
        let vmacs: Vec<(String, String)> =
            self.insts.iter().filter_map(|i| i.vmac.as_ref().map(|base| (i.iface.clone(), base.clone()))).collect();
        self.links.configure(crate::vrrp::debounce::delays(cfg, &vmacs));
        self.links.poll(Instant::now(), netlink::is_running);
    }

    pub fn instances(&self) -> usize {
        self.insts.len()
    }

    /// Builds instance `v` with its receiver; a broken one (a missing interface, say) is
    /// logged and left out rather than taking the others, or the load balancer, down.
    async fn spawn_instance(&mut self, cfg: &Config, v: &VrrpInstance, now: Instant) {
        let id = self.next_id;
        self.next_id += 1;
        let vmac = match self.vmac_of(cfg, v).await {
            Ok(x) => x,
            Err(e) => return error!("vrrp_instance {}: use_vmac: {e:#}; this instance is not run", v.name),
        };
        if let (true, None, Some(iface)) = (v.promote_secondaries, &vmac, &v.interface) {
            self.promote_secondaries(iface);
        }
        let (mut inst, rx) = match LiveInstance::open(cfg, v, id, now, vmac.as_deref()) {
            Ok(x) => x,
            Err(e) => return error!("vrrp_instance {}: {e:#}; this instance is not run", v.name),
        };
        inst.machine.delayed_start = self.delayed_start;
        match rx {
            Some(rx) => inst.rx_task = Some(self.spawn_receiver(id, rx)),
            None => {
                info!(instance = %v.name, "({}) interface {} doesn't exist: FAULT until it does (dynamic_interfaces)", v.name, inst.iface)
            }
        }
        self.insts.push(inst);
    }

    /// The task feeding instance `id`'s adverts from `rx` to the engine.
    fn spawn_receiver(&self, id: u64, rx: crate::vrrp::sockets::Receiver) -> tokio::task::JoinHandle<()> {
        let tx = self.tx.clone();
        tokio::spawn(async move {
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
        })
    }

    /// Instances whose interface was deleted and made again, or made at last
    /// (`dynamic_interfaces`), as keepalived's `update_added_interface`: their sockets are
    /// opened on it. While they cannot be
    /// (no address yet, say), the instance has a fault (`LiveInstance::detached`) and the next
    /// poll tries again. While the interface is missing, its link is down: a fault too.
    async fn reattach(&mut self) {
        for i in 0..self.insts.len() {
            if !self.insts[i].moved() {
                continue;
            }
            let name = self.insts[i].cfg.name.clone();
            // keepalived's cleanup_lost_interface: the instance went down with the old device
            // (its VIPs and routes went with it), even when the link poll never saw the
            // interface missing (made again within one poll, or within a down delay); the
            // next `retrack` starts it again as `setup_interface` does (BACKUP, or FAULT).
            if matches!(self.insts[i].machine.state, State::Master | State::Backup) {
                let inst = &mut self.insts[i];
                let mut faults = inst.machine.faults.clone();
                faults.push(format!("interface {} was deleted", inst.iface));
                let e = inst.machine.track(Instant::now(), inst.machine.track_weight, faults);
                self.carry_out(i, e).await;
            }
            self.insts[i].held.clear();
            let reopened = match self.remake_vmac(i).await {
                Ok(()) => self.insts[i].reopen(),
                Err(e) => Err(e.context("making its VMAC again")),
            };
            match reopened {
                Ok(rx) => {
                    let id = self.insts[i].id;
                    let task = self.spawn_receiver(id, rx);
                    if let Some(old) = self.insts[i].rx_task.replace(task) {
                        old.abort();
                    }
                    self.insts[i].detached = None;
                    let inst = &self.insts[i];
                    info!(instance = %name, interface = %inst.iface, index = inst.ifindex, "({name}) interface {} is there: VRRP sockets opened on it", inst.iface);
                }
                Err(e) => {
                    let why = format!(
                        "interface {} is there but the VRRP sockets cannot be opened on it: {e:#}",
                        self.insts[i].iface
                    );
                    if self.insts[i].detached.as_ref() != Some(&why) {
                        warn!(instance = %name, "({name}) {why}");
                    }
                    self.insts[i].detached = Some(why);
                }
            }
        }
    }

    /// `use_vmac`: the instance's VMAC, made ready (its name: the configured one, the one a
    /// running instance of the same name has, else keepalived's first free default).
    async fn vmac_of(&mut self, cfg: &Config, v: &VrrpInstance) -> anyhow::Result<Option<String>> {
        use anyhow::Context as _;
        let Some(use_vmac) = &v.use_vmac else { return Ok(None) };
        let base = v.interface.as_deref().context("no `interface`")?;
        let vrid = v.virtual_router_id.context("no `virtual_router_id`")?;
        let base_link = match crate::netlink::link(base) {
            Ok(l) => Some(l),
            // `dynamic_interfaces`: the VMAC is made once its base is (`remake_vmac`).
            Err(_) if cfg.global.dynamic_interfaces => None,
            Err(e) => return Err(e),
        };
        let taken: Vec<String> = self.insts.iter().filter(|i| i.vmac.is_some()).map(|i| i.iface.clone()).collect();
        let prefix = cfg.global.vmac_prefix.as_deref().unwrap_or("vrrp");
        let configured = use_vmac.name.as_deref();
        let v6 = v.virtual_ipaddress.first().is_some_and(|a| a.addr.is_ipv6());
        let mac = vmac_mac(v)?;
        let candidates = crate::vrrp::vmac::name_candidates(prefix, vrid, v6);
        let base_index = base_link.as_ref().map_or(0, |l| l.index);
        let name =
            crate::vrrp::vmac::Vmacs::choose_name(&self.netlink, configured, candidates, base_index, mac, &taken)
                .await
                .with_context(|| format!("VRID {vrid}"))?;
        if let Some(base_link) = base_link {
            self.vmacs.ensure(&self.netlink, &name, base, mac, vmac_source(v, &base_link)?).await?;
        }
        Ok(Some(name))
    }

    /// Makes instance `i`'s VMAC again on its base interface, made again itself (keepalived's
    /// `recreate_vmac_thread`): the kernel deleted the VMAC with the old base. Once made, later
    /// tries (the instance's sockets could not be opened yet) leave it alone.
    async fn remake_vmac(&mut self, i: usize) -> anyhow::Result<()> {
        let inst = &self.insts[i];
        let (Some(base), name, v) = (inst.vmac.clone(), inst.iface.clone(), inst.cfg.clone()) else { return Ok(()) };
        if netlink::if_index(&name).is_some() {
            return Ok(());
        }
        let source = vmac_source(&v, &crate::netlink::link(&base)?)?;
        self.vmacs.ensure(&self.netlink, &name, &base, vmac_mac(&v)?, source).await?;
        Ok(())
    }

    /// keepalived's `set_promote_secondaries`: on for `iface` unless it already is.
    fn promote_secondaries(&mut self, iface: &str) {
        use crate::vrrp::vmac::{read_sysctl, write_sysctl};
        if self.promoted.contains(iface) || read_sysctl("ipv4", iface, "promote_secondaries") != Some(0) {
            return;
        }
        write_sysctl("ipv4", iface, "promote_secondaries", 1);
        self.promoted.insert(iface.to_string());
    }

    /// Deletes the VMACs no running instance has.
    async fn prune_vmacs(&mut self) {
        let keep: Vec<String> = self.insts.iter().filter(|i| i.vmac.is_some()).map(|i| i.iface.clone()).collect();
        self.vmacs.retain(&self.netlink, &keep).await;
    }

    fn build_groups(&mut self, cfg: &Config) {
        let names: Vec<&str> = self.insts.iter().map(|i| i.cfg.name.as_str()).collect();
        let (groups, member_of) = sync_group::build(&cfg.vrrp_sync_groups, &names, &self.groups);
        self.groups = groups;
        for (inst, group) in self.insts.iter_mut().zip(member_of) {
            inst.group = group;
        }
    }

    fn publish(&self) {
        let mut now: Vec<VrrpStatus> = self.insts.iter().map(LiveInstance::status).collect();
        let procs: Vec<_> = self
            .trackers
            .process_counts()
            .into_iter()
            .map(|(name, current, quorum)| ProcessStatus { name, current, quorum })
            .collect();
        for s in &mut now {
            s.processes.clone_from(&procs);
        }
        self.status_tx.send_if_modified(|old| {
            if *old == now {
                return false;
            }
            *old = now;
            true
        });
    }

    pub async fn run(
        &mut self,
        mut rx: mpsc::Receiver<Input>,
        mut stop: oneshot::Receiver<oneshot::Sender<()>>,
        mut cmd: mpsc::Receiver<Cmd>,
    ) {
        let mut bfd = crate::bfd::events();
        self.bfd_events = bfd.borrow_and_update().clone();
        self.begin().await;
        let mut poll = tokio::time::interval(LINK_POLL);
        // Opened once a config listens for deletions (`ours::Monitor`), again when a reload
        // listens for more; kept otherwise (`on_deleted` leaves out what it need not hear).
        let mut deletions: Option<netlink::Deletions> = None;
        let mut failed_for: Vec<u32> = Vec::new();
        loop {
            let groups = self.monitor.groups();
            if !groups.is_empty() && !deletions.as_ref().is_some_and(|d| d.covers(&groups)) && failed_for != groups {
                match netlink::Deletions::open(&groups) {
                    Ok(d) => deletions = Some(d),
                    Err(e) => {
                        warn!("deleted routes and rules will not be noticed: {e:#}");
                        failed_for = groups;
                    }
                }
            }
            self.publish();
            let next = self.insts.iter().filter_map(|i| i.machine.deadline()).min();
            let sleep = async {
                match next {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            // A delayed link change (interface_up_down_delays) is carried out when due, not at
            // the next poll.
            let link_due = self.links.next_due();
            let link_change = async {
                match link_due {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            let port = self.netlink.port();
            let deleted = async {
                match deletions.as_mut() {
                    Some(d) => d.next(port).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                d = deleted => self.on_deleted(d).await,
                done = &mut stop => {
                    self.stop().await;
                    if let Ok(done) = done {
                        let _ = done.send(());
                    }
                    return;
                }
                Some(Cmd::Reload { cfg, notifier, done }) = cmd.recv() => {
                    let summary = self.reload(&cfg, notifier).await;
                    let _ = done.send(summary);
                }
                Some(input) = rx.recv() => self.on_input(input).await,
                Ok(()) = bfd.changed() => {
                    self.bfd_events = bfd.borrow_and_update().clone();
                    self.retrack().await;
                }
                _ = sleep => {
                    let now = Instant::now();
                    for i in 0..self.insts.len() {
                        let e = self.insts[i].machine.on_timer(now);
                        self.carry_out(i, e).await;
                    }
                }
                _ = link_change => {
                    self.links.poll(Instant::now(), netlink::is_running);
                    self.retrack().await;
                }
                _ = poll.tick() => {
                    self.links.poll(Instant::now(), netlink::is_running);
                    self.reattach().await;
                    self.retrack().await;
                    self.statics.reinstate_routes(&self.netlink).await;
                    self.check_addresses().await;
                }
            }
        }
    }

    /// Starts every instance. VIPs a previous run left (kill -9, upgrade): an instance that
    /// still holds all of them was master and resumes as master at once, so a restart does
    /// not flap its addresses (if a peer took over meanwhile, the first advert exchange
    /// settles it). Partial leftovers go: a backup never holds VIPs.
    async fn begin(&mut self) {
        let mut resume = vec![false; self.insts.len()];
        for (i, r) in resume.iter_mut().enumerate() {
            let c = &self.insts[i].cfg;
            if !c.virtual_ipaddress.is_empty() && c.virtual_ipaddress.iter().all(|a| netlink::is_local(a.addr)) {
                *r = true;
                continue;
            }
            if self.insts[i].machine.s.base_priority == 255 {
                continue;
            }
            let iface = self.insts[i].iface.clone();
            for a in self.insts[i].vips() {
                if let Ok(true) = self.netlink.del(&a, &iface).await {
                    info!(instance = %self.insts[i].cfg.name, addr = %a.addr, "removed a VIP left over from a previous run");
                }
            }
        }
        let now = Instant::now();
        for (i, (w, f)) in self.tracking_all().into_iter().enumerate() {
            self.insts[i].machine.track_weight = w;
            self.insts[i].machine.faults = f;
        }
        let effects: Vec<Vec<Effect>> = resume
            .into_iter()
            .enumerate()
            .map(
                |(i, resume)| if resume { self.insts[i].machine.resume(now) } else { self.insts[i].machine.start(now) },
            )
            .collect();
        // keepalived (vrrp_init_state) notifies a sync group starting in BACKUP or FAULT
        // before its members.
        for g in 0..self.groups.len() {
            let first = self.groups[g].members.first().map(|m| self.insts[*m].machine.state);
            if matches!(first, Some(State::Backup | State::Fault)) {
                self.settle_group(g).await;
            }
        }
        for (i, e) in effects.into_iter().enumerate() {
            self.carry_out(i, e).await;
        }
    }

    /// Graceful stop: masters send priority 0 and drop their VIPs, notify_stop runs; then
    /// the static entries go (keepalived's order).
    async fn stop(&mut self) {
        for i in 0..self.insts.len() {
            let e = self.insts[i].machine.stop();
            self.carry_out(i, e).await;
        }
        self.statics.remove(&self.netlink).await;
        self.trackers.stop();
        // Waited for: their sockets close (leaving the VRRP groups) before the settings
        // below are restored (keepalived closes its sockets before resetting
        // igmp_link_local_mcast_reports, so leaving sends no report either).
        for i in &mut self.insts {
            if let Some(t) = i.rx_task.take() {
                t.abort();
                let _ = t.await;
            }
        }
        // keepalived deletes its VMACs at shutdown and resets promote_secondaries.
        self.vmacs.retain(&self.netlink, &[]).await;
        for iface in std::mem::take(&mut self.promoted) {
            crate::vrrp::vmac::write_sysctl("ipv4", &iface, "promote_secondaries", 0);
        }
        if std::mem::take(&mut self.igmp_reports_off) {
            set_igmp_link_local_reports(true);
        }
    }

    async fn on_input(&mut self, input: Input) {
        match input {
            Input::Packet { id, ttl, src, dst, msg } => {
                let Some(i) = self.index(id) else { return };
                // keepalived ignores adverts in FAULT and before it is set up (INIT): they are
                // neither checked nor counted.
                if matches!(self.insts[i].machine.state, State::Init | State::Fault) {
                    return;
                }
                if let Some(advert) = self.insts[i].check_advert(ttl, src, dst, &msg) {
                    let e = self.insts[i].machine.on_advert(Instant::now(), src, &advert);
                    self.carry_out(i, e).await;
                }
            }
            Input::Script(verdict) => {
                if self.trackers.record(verdict) {
                    self.retrack().await;
                }
            }
            Input::File(value) => {
                if self.trackers.record_file(value) {
                    self.retrack().await;
                }
            }
            Input::Process(q) => {
                if self.trackers.record_process(q) {
                    self.retrack().await;
                }
            }
            Input::Garp { id, epoch, refresh } => {
                let Some(i) = self.index(id) else { return };
                let inst = &self.insts[i];
                if inst.machine.state == State::Master && inst.counters.became_master == epoch {
                    let period = inst.tuning.garp_refresh;
                    // The second burst after garp_master_delay repeats garp_master_repeat
                    // times; the refreshes garp_master_refresh_repeat times.
                    let repeat = if refresh { inst.tuning.garp_refresh_repeat } else { inst.tuning.garp_repeat };
                    inst.garp(repeat);
                    if !period.is_zero() {
                        self.garp_later(i, period, true);
                    }
                }
            }
            Input::LowerPrioGarp { id, epoch } => {
                let Some(i) = self.index(id) else { return };
                let inst = &self.insts[i];
                if inst.machine.state == State::Master && inst.counters.became_master == epoch {
                    inst.garp(inst.tuning.garp_lower_prio_repeat);
                }
            }
        }
    }

    /// keepalived's `vrrp_state_master_rx` on a lower priority advert: instance `i` and
    /// every other member of its sync group with a `garp_lower_prio_repeat` announce their
    /// VIPs that many times now, and again after their `garp_lower_prio_delay`.
    fn lower_prio_garps(&self, i: usize) {
        let mut who = vec![i];
        if let Some(g) = self.insts[i].group {
            who.extend(self.groups[g].members.iter().copied().filter(|m| *m != i));
        }
        for m in who {
            let inst = &self.insts[m];
            // A member that is not master holds no VIPs to announce.
            if inst.tuning.garp_lower_prio_repeat == 0 || inst.machine.state != State::Master {
                continue;
            }
            inst.garp(inst.tuning.garp_lower_prio_repeat);
            let delay = inst.tuning.garp_lower_prio_delay;
            if !delay.is_zero() {
                let (id, epoch, tx) = (inst.id, inst.counters.became_master, self.tx.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = tx.send(Input::LowerPrioGarp { id, epoch }).await;
                });
            }
        }
    }

    /// Tracking of every instance, with each sync group's faults shared by its members.
    fn tracking_all(&self) -> Vec<(i32, Vec<String>)> {
        let own: Vec<(i32, Vec<String>)> = self
            .insts
            .iter()
            .map(|i| {
                let t = &self.trackers;
                let procs = (t.procs(), t.group_procs(&i.cfg.name));
                let bfd = BfdView { cfg: &self.bfds, events: &self.bfd_events };
                let running = |name: &str| self.links.running(name, netlink::is_running);
                let (weight, mut faults) = tracking::weigh(&i.cfg, &i.iface, t.list(), t.files(), procs, bfd, running);
                faults.extend(i.detached.clone());
                (weight, faults)
            })
            .collect();
        let names: Vec<&str> = self.insts.iter().map(|i| i.cfg.name.as_str()).collect();
        let mut all = sync_group::share_faults(&self.groups, &names, &own);
        // A sync group's track_bfd (weight 0 only): a fault of every member while down.
        let bfd = BfdView { cfg: &self.bfds, events: &self.bfd_events };
        for g in &self.groups {
            for t in &g.track_bfd {
                if let (None, why) = bfd.effect(t) {
                    for &m in &g.members {
                        all[m].1.push(format!("sync group {}: {why}", g.name));
                    }
                }
            }
        }
        all
    }

    async fn retrack(&mut self) {
        let now = Instant::now();
        for (i, (w, f)) in self.tracking_all().into_iter().enumerate() {
            let m = &self.insts[i].machine;
            if w != m.track_weight || f != m.faults {
                let before = m.priority();
                let e = self.insts[i].machine.track(now, w, f);
                let after = self.insts[i].machine.priority();
                if after != before {
                    self.priority_changed(i, before, after);
                }
                self.carry_out(i, e).await;
            }
        }
    }

    /// keepalived's netlink reflector on a deleted address: a deleted static address comes
    /// back (`Statics::restore`); a master whose VIP (one without `no_track`) was seen here
    /// and is gone hands over and takes its addresses back after Skew_Time unless another
    /// master answers (`Instance::address_lost`); its sync group follows. Polled with the
    /// links, so noticed within `LINK_POLL`.
    async fn check_addresses(&mut self) {
        if !self.statics.watches_addresses() && !self.insts.iter().any(|i| i.machine.state == State::Master) {
            return;
        }
        let local = match self.netlink.addresses().await {
            Ok(l) => l,
            Err(e) => return warn!("watching addresses: {e:#}"),
        };
        self.statics.restore(&local, &self.netlink).await;
        // keepalived's `address_is_ours`: a deleted address moves the first master holding it.
        let mut handled = Vec::new();
        for i in 0..self.insts.len() {
            let inst = &mut self.insts[i];
            if inst.machine.state != State::Master {
                inst.held.clear();
                continue;
            }
            // Only addresses it still holds by its configuration (a reload may have taken one
            // away), each on its own device.
            let tracked: Vec<netlink::OnLink> =
                inst.vips().iter().filter(|a| !a.no_track).filter_map(|a| netlink::on_link(a, &inst.iface)).collect();
            let gone = inst.held.iter().find(|a| tracked.contains(a) && !local.contains(*a)).copied();
            inst.held = tracked.into_iter().filter(|a| local.contains(a)).collect();
            if let Some(on) = gone.filter(|a| !handled.contains(a)) {
                handled.push(on);
                let addr = on.1;
                info!(instance = %inst.cfg.name, %addr, "virtual address deleted by someone else; leaving MASTER to take it back");
                self.set_vrrp_backup(i, &format!("virtual address {addr}")).await;
            }
        }
    }

    /// keepalived's `set_vrrp_backup`, when something else deleted what master `i` holds
    /// (`why`): this instance first, then the sync group's other masters the same way
    /// (priority 0, back after Skew_Time), not by the group's usual following; the group is
    /// BACKUP without its notifies.
    async fn set_vrrp_backup(&mut self, i: usize, why: &str) {
        let now = Instant::now();
        let mut members = vec![i];
        if let Some(g) = self.insts[i].group {
            members.extend(self.groups[g].members.iter().copied().filter(|m| *m != i));
            self.groups[g].state = State::Backup;
        }
        let moved: Vec<_> = members.into_iter().map(|m| (m, self.insts[m].machine.address_lost(now, why))).collect();
        for (m, e) in moved {
            self.carry_out(m, e).await;
        }
    }

    /// keepalived's `netlink_route_filter` / `netlink_rule_filter` on a deletion: the first
    /// virtual route or rule it is (`ours`), if tracked and its instance is MASTER, moves that
    /// instance (`set_vrrp_backup`: it takes over again after Skew_Time and adds it back);
    /// else the first static one it is, if tracked, is put back. This daemon's own deletions
    /// never come here (`Deletions::next` leaves out its netlink port's).
    async fn on_deleted(&mut self, d: netlink::Deleted) {
        if !self.monitor.hears(&d) {
            return;
        }
        let found = match &d {
            netlink::Deleted::Route(k) => self.insts.iter().enumerate().find_map(|(i, inst)| {
                let r =
                    inst.cfg.virtual_routes.iter().find(|r| ours::route_is(k, r, added_on(r, &inst.iface), true))?;
                Some((i, r.no_track, format!("virtual route {}/{}", r.dest, r.prefix)))
            }),
            netlink::Deleted::Rule(k) => self.insts.iter().enumerate().find_map(|(i, inst)| {
                let r = inst.cfg.virtual_rules.iter().find(|r| ours::tracked_rule_is(k, r))?;
                Some((i, false, format!("virtual rule priority {}", r.priority)))
            }),
        };
        match found {
            Some((i, false, what)) if self.insts[i].machine.state == State::Master => {
                info!(instance = %self.insts[i].cfg.name, "{what} deleted by someone else; leaving MASTER to take it back");
                self.set_vrrp_backup(i, &what).await;
            }
            Some(_) => {}
            None => self.statics.restore_deleted(&d, &self.netlink).await,
        }
    }

    /// keepalived's `send_event_notify(VRRP_EVENT_MASTER_RX_LOWER_PRI)`: the instance's
    /// `notify_master_rx_lower_pri` script, as written (no arguments added), and a FIFO line
    /// whether or not a script is configured.
    fn rx_lower_pri_notify(&self, i: usize) {
        let inst = &self.insts[i];
        if let Some(s) = &inst.cfg.notify.master_rx_lower_pri {
            self.notifier.spawn(s, None, Vec::new());
        }
        let line = fifo::vrrp_line(false, &inst.cfg.name, "MASTER_RX_LOWER_PRI", inst.machine.priority());
        self.notifier.fifo(Stream::Vrrp, &line);
    }

    /// keepalived's `vrrp_update_priority`: the log line, and with `notify_priority_changes`
    /// the FIFO line (`send_instance_priority_notifies`: MASTER_PRIORITY while master,
    /// BACKUP_PRIORITY in any other state).
    fn priority_changed(&self, i: usize, before: u8, after: u8) {
        let inst = &self.insts[i];
        info!("({}) Changing effective priority from {before} to {after}", inst.cfg.name);
        if inst.notify_priority {
            let event = if inst.machine.state == State::Master { "MASTER_PRIORITY" } else { "BACKUP_PRIORITY" };
            self.notifier.fifo(Stream::Vrrp, &fifo::vrrp_line(false, &inst.cfg.name, event, after));
        }
    }

    /// Carries out `effects` of instance `i`; a transition moves its sync group's other
    /// members along (and theirs are carried out in turn), then the groups touched settle.
    async fn carry_out(&mut self, i: usize, effects: Vec<Effect>) {
        let mut queue: Vec<(usize, Vec<Effect>)> = vec![(i, effects)];
        let mut touched = Vec::new();
        while let Some((i, effects)) = queue.pop() {
            for e in effects {
                match e {
                    Effect::Advert(p) => {
                        self.insts[i].send_advert(p);
                        if self.insts[i].machine.state == State::Master {
                            self.insts[i].extra_garp_if_due(Instant::now());
                        }
                    }
                    Effect::Reassert => {
                        info!(instance = %self.insts[i].cfg.name, "lower-priority master heard; re-asserting");
                        self.lower_prio_garps(i);
                        self.rx_lower_pri_notify(i);
                    }
                    Effect::Transition { from, to, why } => {
                        self.enter_state(i, from, to, &why).await;
                        let Some(g) = self.insts[i].group else { continue };
                        let now = Instant::now();
                        let (followers, why) = self.groups[g].followers(i, &self.insts[i].cfg.name, to);
                        for m in followers {
                            let e = self.insts[m].machine.follow_group(now, to, &why);
                            if !e.is_empty() {
                                queue.push((m, e));
                            }
                        }
                        touched.push(g);
                    }
                }
            }
        }
        touched.dedup();
        for g in touched {
            self.settle_group(g).await;
        }
    }

    /// Instance `i` entered `to`: VIPs, routes and gratuitous ARPs follow mastership, then
    /// notify scripts and mail.
    async fn enter_state(&mut self, i: usize, from: State, to: State, why: &str) {
        let (name, prio) = (self.insts[i].cfg.name.clone(), self.insts[i].machine.priority());
        self.insts[i].entered(from, to, why);
        if to == State::Master {
            self.take_over(i).await;
        } else if from == State::Master {
            self.hand_over(i).await;
        }
        let n = &self.insts[i].cfg.notify;
        let removed = to == State::Stopped && self.insts[i].removed;
        // A reload removing the instance notifies as keepalived's clear_diff_vrrp: FAULT
        // (unless already there) or DELETED, running only notify_deleted's script (keepalived
        // picks the script while the state is DELETED, then turns DELETED into FAULT).
        let (state, specific, subject, body) = match (removed, n.notify_deleted, from) {
            (true, true, _) => {
                ("DELETED", n.deleted.clone(), "Deleted".to_string(), "=> VRRP Deleted at reload <=".to_string())
            }
            (true, false, State::Fault) => return,
            (true, false, _) => (
                "FAULT",
                n.deleted.clone(),
                "Entering FAULT state".to_string(),
                format!("=> VRRP Instance is now FAULT ({why}) <="),
            ),
            (false, ..) => (
                to.name(),
                sync_group::script_for(n, to),
                format!("Entering {} state", to.name()),
                format!("=> VRRP Instance is now {} ({why}) <=", to.name()),
            ),
        };
        let args = vec!["INSTANCE".to_string(), name.clone(), state.to_string(), prio.to_string()];
        // notify_stop runs before we exit; a removal's scripts are not waited for.
        self.notify(specific, n.any.clone(), args, to == State::Stopped && !removed).await;
        self.notifier.fifo(Stream::Vrrp, &fifo::vrrp_line(false, &name, state, prio));
        if n.mails(self.mail_vrrp) {
            self.notifier.mail(&format!("VRRP Instance {name} - {subject}"), body);
        }
    }

    /// Becoming master: add the VIPs, virtual routes and rules, announce them at once, and again
    /// after `garp_master_delay` (if still master then), then every `garp_master_refresh`.
    async fn take_over(&mut self, i: usize) {
        let inst = &mut self.insts[i];
        inst.counters.became_master += 1;
        let (name, iface) = (inst.cfg.name.clone(), inst.iface.clone());
        inst.held.clear();
        for a in inst.vips() {
            match self.netlink.add(&a, &iface).await {
                Ok(_) if !a.no_track => inst.held.extend(netlink::on_link(&a, &iface)),
                Ok(_) => {}
                Err(e) => error!(instance = %name, "{e:#}"),
            }
        }
        for r in &inst.cfg.virtual_routes {
            if let Err(e) = self.netlink.add_route(r, Some(&iface)).await {
                error!(instance = %name, "virtual_routes: {e:#}");
            }
        }
        for r in &inst.cfg.virtual_rules {
            if let Err(e) = self.netlink.add_rule(r).await {
                error!(instance = %name, "virtual_rules: {e:#}");
            }
        }
        inst.garp(inst.tuning.garp_repeat);
        // keepalived's vmac_garp_timer: due one garp_extra_if interval after the advert that
        // made this instance master, checked as each later advert goes out.
        let extra = Duration::from_secs(u64::from(inst.tuning.garp_extra_if.secs));
        let from = inst.advert_time(Instant::now());
        inst.extra_garp_at = (!inst.extra_announcements().is_empty()).then_some(from + extra);
        let (delay, refresh) = (inst.tuning.garp_delay, inst.tuning.garp_refresh);
        match (delay.is_zero(), refresh.is_zero()) {
            (false, _) => self.garp_later(i, delay, false),
            (true, false) => self.garp_later(i, refresh, true),
            (true, true) => {}
        }
    }

    /// Leaving master: virtual rules, routes, then VIPs, go; a VIP another instance still holds as
    /// master on the same interface stays (keepalived allows one address in two instances).
    async fn hand_over(&mut self, i: usize) {
        let inst = &self.insts[i];
        let (name, iface) = (&inst.cfg.name, &inst.iface);
        for r in &inst.cfg.virtual_rules {
            if let Err(e) = self.netlink.del_rule(r).await {
                error!(instance = %name, "virtual_rules: {e:#}");
            }
        }
        for r in &inst.cfg.virtual_routes {
            if let Err(e) = self.netlink.del_route(r, Some(iface)).await {
                error!(instance = %name, "virtual_routes: {e:#}");
            }
        }
        for a in inst.vips() {
            if self.held_elsewhere(i, &a) {
                info!(instance = %name, addr = %a.addr, "virtual address kept: another instance is master for it");
                continue;
            }
            if let Err(e) = self.netlink.del(&a, iface).await {
                error!(instance = %name, "{e:#}");
            }
        }
    }

    /// Whether another instance is master for address `a` of instance `i` on the same device
    /// (an address's own `dev`, else its instance's interface): removing it would take it from
    /// that master.
    fn held_elsewhere(&self, i: usize, a: &IpAddress) -> bool {
        let dev = a.device(&self.insts[i].iface);
        self.insts.iter().enumerate().any(|(j, o)| {
            j != i
                && o.machine.state == State::Master
                && o.vips().iter().any(|v| v.addr == a.addr && v.device(&o.iface) == dev)
        })
    }

    /// Gratuitous ARPs for instance `i` after `delay`, if it is still the same mastership.
    fn garp_later(&self, i: usize, delay: Duration, refresh: bool) {
        let (id, epoch, tx) = (self.insts[i].id, self.insts[i].counters.became_master, self.tx.clone());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = tx.send(Input::Garp { id, epoch, refresh }).await;
        });
    }

    fn index(&self, id: u64) -> Option<usize> {
        self.insts.iter().position(|i| i.id == id)
    }

    /// Runs the state's script, then `notify` with its arguments (waited for on stop, so
    /// notify_stop runs before we exit).
    async fn notify(&self, specific: Option<Script>, any: Option<Script>, args: Vec<String>, wait: bool) {
        let runs = [(specific, Vec::new()), (any, args)].into_iter().filter_map(|(s, a)| Some((s?, a))).collect();
        self.notifier.in_order(runs, wait).await;
    }

    /// Group `g`'s members may now agree on a state: log it and run the group's scripts.
    async fn settle_group(&mut self, g: usize) {
        let states: Vec<State> = self.groups[g].members.iter().map(|m| self.insts[*m].machine.state).collect();
        let Some(state) = self.groups[g].settle(&states) else { return };
        let grp = &self.groups[g];
        info!(group = %grp.name, "sync group now {}", state.name());
        let specific = sync_group::script_for(&grp.notify, state);
        let args = vec!["GROUP".to_string(), grp.name.clone(), state.name().to_string(), "0".to_string()];
        self.notify(specific, grp.notify.any.clone(), args, state == State::Stopped).await;
        self.notifier.fifo(Stream::Vrrp, &fifo::vrrp_line(true, &grp.name, state.name(), 0));
        // keepalived's vrrp_sync_smtp_notifier.
        let grp = &self.groups[g];
        let mail = match state {
            State::Stopped => {
                Some(("Stopping".to_string(), "=> All VRRP group instances are now stopping <=".to_string()))
            }
            State::Master | State::Backup | State::Fault => Some((
                format!("Entering {} state", state.name()),
                format!("=> All VRRP group instances are now in {} state <=", state.name()),
            )),
            State::Init => None,
        };
        if let Some((subject, body)) = mail.filter(|_| grp.notify.mails(self.mail_vrrp)) {
            self.notifier.mail(&format!("VRRP Group {} - {subject}", grp.name), body);
        }
    }
}

/// The (IPv6) link-local source of instance `v`'s VMAC on base interface `base_link`:
/// keepalived's link-local address for an IPv6 VMAC is the configured source, else the base
/// interface's; on the VMAC unless the adverts leave from the base.
fn vmac_source(
    v: &VrrpInstance,
    base_link: &crate::netlink::Link,
) -> anyhow::Result<Option<crate::vrrp::vmac::Ipv6Source>> {
    use crate::vrrp::vmac::Ipv6Source;
    use anyhow::Context as _;
    let v6 = v.virtual_ipaddress.first().is_some_and(|a| a.addr.is_ipv6());
    let base = v.interface.as_deref().unwrap_or_default();
    let link_local = match (v6, v.unicast_src_ip.or(v.mcast_src_ip)) {
        (false, _) => None,
        (true, Some(std::net::IpAddr::V6(a))) => Some(a),
        (true, _) => Some(base_link.link_local.with_context(|| format!("{base} has no IPv6 link-local address"))?),
    };
    Ok(link_local.map(|a| if v.vmac_xmit_base { Ipv6Source::Base(a) } else { Ipv6Source::Vmac(a) }))
}

/// The MAC of instance `v`'s VMAC: the configured one (with the VRID), else the VRRP one.
fn vmac_mac(v: &VrrpInstance) -> anyhow::Result<[u8; 6]> {
    use anyhow::Context as _;
    let vrid = v.virtual_router_id.context("no `virtual_router_id`")?;
    let v6 = v.virtual_ipaddress.first().is_some_and(|a| a.addr.is_ipv6());
    let use_vmac = v.use_vmac.as_ref().context("no use_vmac")?;
    Ok(use_vmac.mac.map_or(crate::vrrp::vmac::virtual_mac(vrid, v6), |m| m.with_vrid(vrid)))
}

const IGMP_LINK_LOCAL_REPORTS: &str = "/proc/sys/net/ipv4/igmp_link_local_mcast_reports";

/// keepalived's `set_disable_local_igmp` (`on` false) and `reset_disable_local_igmp` (`on`
/// true): whether this call changed the setting (turning it off when it was on).
fn set_igmp_link_local_reports(on: bool) -> bool {
    if on {
        if let Err(e) = std::fs::write(IGMP_LINK_LOCAL_REPORTS, "1") {
            warn!("Unable to write {IGMP_LINK_LOCAL_REPORTS}: {e}");
        }
        return true;
    }
    match std::fs::read_to_string(IGMP_LINK_LOCAL_REPORTS) {
        Ok(v) if v.trim() == "1" => match std::fs::write(IGMP_LINK_LOCAL_REPORTS, "0") {
            Ok(()) => true,
            Err(e) => {
                warn!("Unable to write {IGMP_LINK_LOCAL_REPORTS}: {e}");
                false
            }
        },
        Ok(_) => false,
        Err(e) => {
            warn!("Unable to read {IGMP_LINK_LOCAL_REPORTS}: {e}");
            false
        }
    }
}
