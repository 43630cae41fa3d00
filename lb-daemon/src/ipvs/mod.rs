//! The IPVS fallback: the same desired services, programmed into the kernel's IPVS over
//! generic netlink. Only differences are sent (keepalived's `clear_diff_services`): an
//! unchanged service or destination is never touched, so its connections live on.

pub mod client;
pub mod conns;
pub mod msg;

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
};

use anyhow::{Context as _, Result, anyhow};
use tracing::{info, warn};

use crate::{
    config::{BackendKind, ForwardMethod, LvsTimeouts},
    dataplane::{
        Backend, SyncRole, SyncWant,
        services::{DesiredService, key_ip},
    },
};
use client::Client;
use msg::{Dest, Service, ServiceId, SyncDaemon, cmd};

/// A service as programmed: its attributes and destinations by (address, port).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Programmed {
    pub service: Service,
    pub dests: BTreeMap<(IpAddr, u16), Dest>,
}

/// IPVS keeps sending a persistent client to a real server at weight 0 while its template
/// lives; with this sysctl it expires the template instead.
const EXPIRE_QUIESCENT: &str = "/proc/sys/net/ipv4/vs/expire_quiescent_template";

/// Makes IPVS send no persistent client to a drained (weight 0) real server, as a drain
/// promises: sets `net.ipv4.vs.expire_quiescent_template` (this network namespace's) to 1.
/// Returns whether it changed.
pub fn expire_quiescent_templates() -> Result<bool> {
    let now = std::fs::read_to_string(EXPIRE_QUIESCENT).with_context(|| format!("reading {EXPIRE_QUIESCENT}"))?;
    if now.trim() == "1" {
        return Ok(false);
    }
    std::fs::write(EXPIRE_QUIESCENT, "1").with_context(|| format!("writing 1 to {EXPIRE_QUIESCENT}"))?;
    Ok(true)
}

/// What IPVS should hold for `desired`: one IPVS service per key and per firewall mark.
/// Below quorum the real servers stay with weight 0 (their connections finish; no new ones)
/// and the sorry server, if any, takes new connections; above it the sorry server is absent,
/// or at weight 0 with `sorry_server_inhibit`.
pub fn plan(desired: &[DesiredService]) -> (BTreeMap<ServiceId, Programmed>, Vec<String>) {
    let mut out: BTreeMap<ServiceId, Programmed> = BTreeMap::new();
    let mut warnings = Vec::new();
    for d in desired {
        let mark_af = if d.marks_v6 { msg::AF_INET6 } else { msg::AF_INET };
        let inet = |k: &lb_common::ServiceKey| ServiceId::Inet { proto: k.proto, addr: key_ip(k), port: k.port };
        let ids = d.keys.iter().map(inet).chain(d.marks.iter().map(|m| ServiceId::Fwmark { af: mark_af, mark: *m }));
        for id in ids {
            let v6 = id.af() == msg::AF_INET6;
            let full = if v6 { 128 } else { 32 };
            let prefix = d.persist_prefix.map_or(full, |p| u32::from(p).min(full));
            let mut flags = 0;
            if d.persist_timeout > 0 {
                flags |= msg::SVC_F_PERSISTENT;
            }
            if d.ops {
                flags |= msg::SVC_F_ONEPACKET;
            }
            // flag-1..3 / sh-port, sh-fallback, mh-port, mh-fallback: the kernel's own bits,
            // passed whatever the scheduler, as keepalived does (only sh and mh read them).
            flags |= d.sched_flags;
            let service = Service {
                id,
                sched: d.scheduler.name().to_string(),
                flags,
                timeout: d.persist_timeout,
                // IPv4: the mask in network byte order; IPv6: the prefix length (ip_vs.h).
                netmask: if v6 {
                    prefix
                } else {
                    u32::from_ne_bytes(u32::MAX.checked_shl(32 - prefix).unwrap_or(0).to_be_bytes())
                },
                pe_name: d.persistence_engine.clone(),
            };
            let mut dests = BTreeMap::new();
            add_dests(d, id, &mut dests, Some(&mut warnings));
            out.insert(id, Programmed { service, dests });
        }
        // Addresses an earlier virtual server has: keepalived's add of the service fails and
        // this one's destinations are added to that one's.
        let joined =
            d.joined.iter().map(inet).chain(d.joined_marks.iter().map(|m| ServiceId::Fwmark { af: mark_af, mark: *m }));
        for id in joined {
            // A real server both virtual servers list stays the earlier one's, quietly (as
            // keepalived's add of it fails).
            match out.get_mut(&id) {
                Some(p) => add_dests(d, id, &mut p.dests, None),
                None => warnings.push(format!("{}: IPVS {id} has no earlier service to join", d.name)),
            }
        }
    }
    (out, warnings)
}

/// `d`'s destinations in IPVS service `id`: its real servers (`lvs_method` per real server,
/// `uthreshold` / `lthreshold`), and its sorry server where quorum or `sorry_server_inhibit`
/// puts it. A destination already there stays, with a warning when `warnings` is given.
fn add_dests(
    d: &DesiredService,
    id: ServiceId,
    dests: &mut BTreeMap<(IpAddr, u16), Dest>,
    mut warnings: Option<&mut Vec<String>>,
) {
    let fwd_code = |f: ForwardMethod| match f {
        ForwardMethod::Nat => msg::FWD_MASQ,
        ForwardMethod::Dr => msg::FWD_DROUTE,
        ForwardMethod::Tun => msg::FWD_TUNNEL,
    };
    let service_fwd = fwd_code(d.forward);
    let mut add = |addr: SocketAddr, weight: u32, fwd: u32, u_thresh: u32, l_thresh: u32| {
        // ipvsadm's rule: only NAT rewrites the port; DR and TUN keep the service's.
        let port = match id {
            ServiceId::Inet { port, .. } if fwd != msg::FWD_MASQ => port,
            _ => addr.port(),
        };
        let dest = Dest { addr: addr.ip(), port, fwd, weight: weight.min(i32::MAX as u32) as i32, u_thresh, l_thresh };
        match dests.entry((addr.ip(), port)) {
            std::collections::btree_map::Entry::Occupied(_) => {
                if let Some(w) = warnings.as_deref_mut() {
                    w.push(format!("{}: real server {addr} given twice for IPVS {id}; one kept", d.name));
                }
            }
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(dest);
            }
        }
    };
    for r in &d.reals {
        let fwd = r.fwd.map_or(service_fwd, fwd_code);
        add(r.addr, if d.quorum_up { r.weight } else { 0 }, fwd, r.u_thresh, r.l_thresh);
    }
    // The sorry server takes new connections below quorum; above it, keepalived removes it,
    // or with sorry_server_inhibit keeps it at weight 0 (unless it is also a real server).
    if let Some(s) = d.sorry {
        let fwd = d.sorry_fwd.map_or(service_fwd, fwd_code);
        if !d.quorum_up {
            add(s, 1, fwd, 0, 0);
        } else if d.sorry_inhibit && !d.reals.iter().any(|r| r.addr == s) {
            add(s, 0, fwd, 0, 0);
        }
    }
}

pub struct IpvsBackend {
    client: Client,
    /// What this daemon programmed (or adopted because its config names it): the only
    /// services it ever edits or removes.
    applied: BTreeMap<ServiceId, Programmed>,
    /// Services found at start that the config may name, adopted on first apply.
    found: BTreeMap<ServiceId, Programmed>,
    /// Netlink changes made since start (a reload of the same config adds none).
    pub changes: u64,
    /// The sync config last asked for.
    sync: Option<SyncWant>,
    /// `lvs_timeouts` as set, and the kernel's timeouts from before, restored when the
    /// config drops them and at exit (as keepalived does).
    timeouts: Option<msg::Timeouts>,
    original_timeouts: Option<msg::Timeouts>,
    /// `lvs_flush_on_stop` without `VS`, with services configured: empty the whole table at
    /// exit (keepalived's `clear_services`).
    flush_at_exit: bool,
}

impl IpvsBackend {
    /// Connects to the kernel's IPVS (loading `ip_vs` if needed) and reads what it holds;
    /// `lvs_flush` empties the table first (keepalived does at start, not at a reload).
    pub fn open(g: &crate::config::GlobalDefs, has_services: bool) -> Result<Self> {
        let mut client = Client::open()?;
        let (version, size) = client.info().context("asking IPVS for its version")?;
        if g.lvs_flush {
            client.request(cmd::FLUSH, Vec::new()).context("emptying the IPVS table (lvs_flush)")?;
            info!("IPVS table emptied (lvs_flush)");
        }
        let mut found = BTreeMap::new();
        for (service, _) in client.services().context("listing IPVS services")? {
            let dests = client
                .dests(&service)
                .with_context(|| format!("listing destinations of IPVS {}", service.id))?
                .into_iter()
                .map(|d| ((d.dest.addr, d.dest.port), d.dest))
                .collect();
            found.insert(service.id, Programmed { service, dests });
        }
        info!(version, conn_table = size, existing_services = found.len(), "IPVS backend ready");
        Ok(Self {
            client,
            applied: BTreeMap::new(),
            found,
            changes: 0,
            sync: None,
            timeouts: None,
            original_timeouts: None,
            flush_at_exit: has_services && g.lvs_flush_on_stop == crate::config::FlushOnStop::Full,
        })
    }

    /// Makes IPVS hold `desired`, sending only the differences from what was applied.
    pub fn apply(&mut self, desired: &[DesiredService]) -> Result<()> {
        let (want, warnings) = plan(desired);
        for w in warnings {
            warn!("{w}");
        }
        // Services already in the kernel that the config names are taken over as they are:
        // editing them (not re-adding) keeps their connections.
        for id in want.keys() {
            if !self.applied.contains_key(id)
                && let Some(p) = self.found.remove(id)
            {
                info!(service = %id, "adopting an existing IPVS service");
                self.applied.insert(*id, p);
            }
        }
        let before = self.changes;
        let gone: Vec<ServiceId> = self.applied.keys().filter(|id| !want.contains_key(id)).copied().collect();
        for id in gone {
            let p = &self.applied[&id];
            self.client
                .request(cmd::DEL_SERVICE, vec![p.service.attr()])
                .with_context(|| format!("removing IPVS service {id}"))?;
            self.changes += 1;
            self.applied.remove(&id);
            info!(service = %id, "IPVS service removed");
        }
        for (id, p) in want {
            self.apply_service(id, p)?;
        }
        if self.changes != before {
            info!(changes = self.changes - before, "IPVS updated");
        }
        Ok(())
    }

    fn apply_service(&mut self, id: ServiceId, want: Programmed) -> Result<()> {
        let client = &mut self.client;
        let changes = &mut self.changes;
        let cur = match self.applied.get_mut(&id) {
            Some(cur) => cur,
            None => {
                client
                    .request(cmd::NEW_SERVICE, vec![want.service.attr()])
                    .with_context(|| format!("adding IPVS service {id}"))?;
                *changes += 1;
                info!(service = %id, scheduler = want.service.sched, "IPVS service added");
                self.applied.entry(id).or_insert(Programmed { service: want.service.clone(), dests: BTreeMap::new() })
            }
        };
        if cur.service != want.service {
            client
                .request(cmd::SET_SERVICE, vec![want.service.attr()])
                .with_context(|| format!("editing IPVS service {id}"))?;
            *changes += 1;
            cur.service = want.service.clone();
            info!(service = %id, scheduler = want.service.sched, "IPVS service edited");
        }
        let gone: Vec<(IpAddr, u16)> = cur.dests.keys().filter(|k| !want.dests.contains_key(k)).copied().collect();
        for k in gone {
            let d = &cur.dests[&k];
            client
                .request(cmd::DEL_DEST, vec![cur.service.attr(), d.attr()])
                .with_context(|| format!("removing {}:{} from IPVS {id}", k.0, k.1))?;
            *changes += 1;
            cur.dests.remove(&k);
        }
        for (k, d) in want.dests {
            let command = match cur.dests.get(&k) {
                Some(c) if *c == d => continue,
                Some(_) => cmd::SET_DEST,
                None => cmd::NEW_DEST,
            };
            client
                .request(command, vec![cur.service.attr(), d.attr()])
                .with_context(|| format!("programming {}:{} (weight {}) in IPVS {id}", k.0, k.1, d.weight))?;
            *changes += 1;
            cur.dests.insert(k, d);
        }
        Ok(())
    }

    /// Starts, switches or stops the connection sync daemon (`lvs_sync_daemon`): master while
    /// the VRRP instance is master, backup otherwise, both (two kernel daemons, as keepalived
    /// starts them) without an instance. As keepalived's check_daemon.c: any change first
    /// stops both kernel daemons, whoever started them (a killed daemon's may still run; none
    /// running is no error), then starts each one the role needs on its own, so one that
    /// fails leaves the other running; exit (None) stops both.
    pub fn set_sync(&mut self, want: Option<SyncWant>) -> Result<()> {
        if want == self.sync {
            return Ok(());
        }
        let mut failed = Vec::new();
        for state in [msg::STATE_MASTER, msg::STATE_BACKUP] {
            match self.client.request(cmd::DEL_DAEMON, vec![SyncDaemon::stop_attr(state)]) {
                Ok(()) => info!(state = state_name(state), "IPVS sync daemon stopped"),
                Err(e) if not_running(&e) => {}
                Err(e) => failed.push(format!("stopping the IPVS sync daemon ({}): {e:#}", state_name(state))),
            }
        }
        // Stopped above, and not started unauthenticated: the kernel's daemon cannot sign.
        if let Some(w) = want.as_ref().filter(|w| w.mcast.auth.is_some()) {
            failed.push(format!(
                "lb_sync_auth_key: the kernel's IPVS sync daemon cannot authenticate connection sync on {}; no sync \
                 runs (use the BPF data plane, or remove the key to sync with IPVS nodes unauthenticated)",
                w.interface
            ));
        } else if let Some(w) = &want {
            for state in state_codes(w.role) {
                let d = SyncDaemon {
                    state,
                    interface: w.interface.clone(),
                    sync_id: w.sync_id,
                    maxlen: w.mcast.maxlen,
                    port: w.mcast.port,
                    ttl: w.mcast.ttl,
                    group: w.mcast.group,
                };
                match self.client.request(cmd::NEW_DAEMON, vec![d.attr()]) {
                    Ok(()) => info!(
                        state = state_name(state),
                        interface = w.interface,
                        sync_id = w.sync_id,
                        "IPVS sync daemon started"
                    ),
                    Err(e) => failed.push(format!(
                        "starting the IPVS sync daemon ({}, {}): {e:#}",
                        state_name(state),
                        w.interface
                    )),
                }
            }
        }
        self.sync = want;
        if failed.is_empty() { Ok(()) } else { Err(anyhow!(failed.join("; "))) }
    }

    /// Sets IPVS's connection timeouts (`lvs_timeouts`); None puts back those the kernel had
    /// before this daemon changed them.
    pub fn set_timeouts(&mut self, want: Option<LvsTimeouts>) -> Result<()> {
        let want = want.map(|t| msg::Timeouts { tcp: t.tcp, tcp_fin: t.tcpfin, udp: t.udp });
        if want == self.timeouts {
            return Ok(());
        }
        let target = match want {
            Some(t) => {
                if self.original_timeouts.is_none() {
                    self.original_timeouts = Some(self.client.timeouts().context("reading IPVS's timeouts")?);
                }
                t
            }
            None => match self.original_timeouts {
                Some(o) => o,
                None => return Ok(()),
            },
        };
        self.client.set_timeouts(&target).context("setting IPVS's timeouts (lvs_timeouts)")?;
        self.changes += 1;
        info!(tcp = target.tcp, tcpfin = target.tcp_fin, udp = target.udp, "IPVS timeouts set");
        self.timeouts = want;
        Ok(())
    }

    /// Services and destinations with their counters, as the kernel reports them now (only
    /// this daemon's).
    pub fn stats(&mut self) -> Result<serde_json::Value> {
        let mut out = Vec::new();
        for (service, stats) in self.client.services()? {
            if !self.applied.contains_key(&service.id) {
                continue;
            }
            let dests: Vec<serde_json::Value> = self
                .client
                .dests(&service)?
                .into_iter()
                .map(|d| {
                    serde_json::json!({
                        "real": SocketAddr::new(d.dest.addr, d.dest.port).to_string(),
                        "weight": d.dest.weight,
                        "active_conns": d.active_conns,
                        "inactive_conns": d.inact_conns,
                        "persistent_conns": d.persist_conns,
                        "stats": d.stats,
                    })
                })
                .collect();
            out.push(serde_json::json!({
                "service": service.id.to_string(),
                "scheduler": service.sched,
                "stats": stats,
                "reals": dests,
            }));
        }
        Ok(serde_json::json!({ "backend": "ipvs", "changes": self.changes, "services": out }))
    }

    /// Removes what this daemon programmed and stops its sync daemon; nothing else, unless
    /// `lvs_flush_on_stop` asks for the whole table.
    pub fn shutdown(mut self) -> Result<()> {
        let mut first_err = None;
        if let Err(e) = self.set_sync(None) {
            first_err.get_or_insert(e);
        }
        if let Err(e) = self.set_timeouts(None) {
            first_err.get_or_insert(e);
        }
        if self.flush_at_exit {
            self.applied.clear();
            match self.client.request(cmd::FLUSH, Vec::new()) {
                Ok(()) => info!("IPVS table emptied (lvs_flush_on_stop)"),
                Err(e) => {
                    warn!("emptying the IPVS table at exit (lvs_flush_on_stop) failed: {e:#}");
                    first_err.get_or_insert(e);
                }
            }
        }
        for (id, p) in std::mem::take(&mut self.applied) {
            if let Err(e) = self.client.request(cmd::DEL_SERVICE, vec![p.service.attr()]) {
                warn!(service = %id, "removing IPVS service at exit failed: {e:#}");
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e.context("cleaning up IPVS")),
            None => Ok(()),
        }
    }
}

/// keepalived's name of a kernel sync daemon's state.
fn state_name(state: u32) -> &'static str {
    if state == msg::STATE_MASTER { "master" } else { "backup" }
}

/// Whether a failed stop found no such daemon running (the kernel's ESRCH).
fn not_running(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>().and_then(std::io::Error::raw_os_error) == Some(libc::ESRCH)
}

/// The kernel daemons a role runs: the kernel takes one state per daemon.
fn state_codes(r: SyncRole) -> Vec<u32> {
    match r {
        SyncRole::Master => vec![msg::STATE_MASTER],
        SyncRole::Backup => vec![msg::STATE_BACKUP],
        SyncRole::Both => vec![msg::STATE_MASTER, msg::STATE_BACKUP],
    }
}

impl Backend for IpvsBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Ipvs
    }

    fn apply(&mut self, desired: &[DesiredService]) -> Result<()> {
        IpvsBackend::apply(self, desired)
    }

    fn stats(&mut self) -> Result<serde_json::Value> {
        IpvsBackend::stats(self)
    }

    fn changes(&self) -> Option<u64> {
        Some(self.changes)
    }

    // The kernel's IPVS resolves its next hops itself: nothing to hand over.
    fn take_unresolved(&mut self) -> Result<Vec<(IpAddr, u32)>> {
        Ok(Vec::new())
    }

    fn has_unresolved(&self) -> bool {
        false
    }

    fn set_sync(&mut self, want: Option<SyncWant>) -> Result<()> {
        IpvsBackend::set_sync(self, want)
    }

    fn set_timeouts(&mut self, want: Option<LvsTimeouts>) -> Result<()> {
        IpvsBackend::set_timeouts(self, want)
    }

    fn shutdown(self: Box<Self>) -> Result<&'static str> {
        IpvsBackend::shutdown(*self).map(|()| "this daemon's IPVS services removed")
    }
}

#[cfg(test)]
mod tests;
