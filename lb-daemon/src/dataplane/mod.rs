//! Where the configured services are forwarded: the XDP data plane (`bpf`) or the kernel's
//! IPVS (`crate::ipvs`, which implements `Backend` on its side), behind one trait so config,
//! checkers and VRRP do not care which.

pub mod bpf;
pub mod conns;
pub mod ctsync;
pub mod decap;
pub mod iface;
pub mod nexthop;
pub mod object;
pub mod punt;
pub mod services;
pub mod tables;
pub mod trace;

use std::{net::IpAddr, time::Instant};

use anyhow::Result;

use crate::config::BackendKind;
use services::DesiredService;

/// The connection sync daemon's role (keepalived's `lvs_sync_daemon`): master while its
/// VRRP instance is master, backup otherwise; both at once when it names no instance (as
/// keepalived 2.2.7 starts it: active-active nodes, e.g. behind ECMP, each send their own
/// flows and take the others').
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncRole {
    Master,
    Backup,
    Both,
}

impl SyncRole {
    pub fn name(self) -> &'static str {
        match self {
            SyncRole::Master => "master",
            SyncRole::Backup => "backup",
            SyncRole::Both => "master+backup",
        }
    }

    pub fn sends(self) -> bool {
        matches!(self, SyncRole::Master | SyncRole::Both)
    }

    pub fn receives(self) -> bool {
        matches!(self, SyncRole::Backup | SyncRole::Both)
    }
}

/// Connection sync as it should run now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncWant {
    pub role: SyncRole,
    pub interface: String,
    pub sync_id: u32,
    /// `lvs_sync_daemon`'s `maxlen`, `port`, `ttl` and `group` (None: the kernel's defaults).
    pub mcast: SyncMcast,
}

/// Where sync datagrams go and how large they are; None keeps the kernel's default
/// (the interface's MTU less headers, 8848, TTL 1, 224.0.0.81).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncMcast {
    pub maxlen: Option<u16>,
    pub port: Option<u16>,
    pub ttl: Option<u8>,
    pub group: Option<IpAddr>,
    /// `lb_sync_auth_key`: datagrams are signed and checked (`ctsync::auth`); lb nodes only.
    pub auth: Option<ctsync::auth::SyncKey>,
}

/// What the daemon needs from a forwarding backend.
pub trait Backend: Send {
    fn kind(&self) -> BackendKind;

    /// Makes the backend hold exactly `desired`; unchanged services are not touched.
    fn apply(&mut self, desired: &[DesiredService]) -> Result<()>;

    /// Periodic upkeep (the BPF data plane's connection counts and neighbour entries).
    fn housekeeping(&mut self) -> Result<()> {
        Ok(())
    }

    /// When `tick` next has work (the BPF data plane's retired real servers and table
    /// slices, and services waiting for a generation slot); None when it has none.
    fn next_due(&self) -> Option<Instant> {
        None
    }

    /// When the services `apply` had to leave for later (the BPF data plane's services
    /// whose other generation slot is still in its grace period) can be programmed by `tick`.
    fn deferred_until(&self) -> Option<Instant> {
        None
    }

    /// Does what became due by `now` (see `next_due`).
    fn tick(&mut self, _now: Instant) -> Result<()> {
        Ok(())
    }

    /// Next hops waiting for neighbour resolution (the BPF data plane's FIB misses).
    fn take_unresolved(&mut self) -> Result<Vec<(IpAddr, u32)>>;

    /// Whether `take_unresolved` can return anything: the daemon polls it only then (an idle
    /// daemon on IPVS has no reason to wake every 50 ms). No default: a backend that leaves
    /// next hops to resolve must say so.
    fn has_unresolved(&self) -> bool;

    /// Services, real servers and counters, for dumps.
    fn stats(&mut self) -> Result<serde_json::Value>;

    /// Changes made to the kernel since start (IPVS counts netlink commands; the BPF data
    /// plane does not count map writes).
    fn changes(&self) -> Option<u64> {
        None
    }

    /// Which VIPs VRRP fences (VIP → `FENCE_*`; a VIP not listed is load-balanced): the BPF
    /// data plane passes (or, `FENCE_NO_ACCEPT`, drops) their services' frames. IPVS needs
    /// nothing: a backup does not hold the VIP, so the kernel never hands IPVS its frames.
    fn set_fences(&mut self, _fences: &std::collections::BTreeMap<IpAddr, u32>) -> Result<()> {
        Ok(())
    }

    /// Starts, switches or stops connection sync between load balancers.
    fn set_sync(&mut self, want: Option<SyncWant>) -> Result<()>;

    /// The BPF data plane's connection sync counters while it runs (the kernel's sync
    /// daemon, with IPVS, keeps none it reports).
    fn sync_stats(&self) -> Option<ctsync::SyncStats> {
        None
    }

    /// What the BPF data plane's next-hop cache holds (None: no cache, as with IPVS).
    fn nexthop_summary(&self) -> Option<nexthop::Summary> {
        None
    }

    /// Sets the connection timeouts (`lvs_timeouts`); None restores the kernel's. Only IPVS
    /// has them: the XDP data plane's flow timeouts are fixed (lb-common's consts), so the
    /// config check refuses `lvs_timeouts` with `--backend bpf`.
    fn set_timeouts(&mut self, want: Option<crate::config::LvsTimeouts>) -> Result<()> {
        match want {
            None => Ok(()),
            Some(_) => anyhow::bail!("lvs_timeouts needs the IPVS backend (the XDP data plane's timeouts are fixed)"),
        }
    }

    /// Starts taking the frames the data plane hands over (the BPF data plane's held
    /// fragments and IPv4 packets to fragment); None when there are none to take.
    fn start_punt(&mut self) -> Result<Option<punt::Punt>> {
        Ok(None)
    }

    /// Removes everything this daemon put in the kernel; says what, for the last log line.
    fn shutdown(self: Box<Self>) -> Result<&'static str>;
}

impl Backend for bpf::BpfDataplane {
    fn kind(&self) -> BackendKind {
        BackendKind::Bpf
    }

    fn set_fences(&mut self, fences: &std::collections::BTreeMap<IpAddr, u32>) -> Result<()> {
        bpf::BpfDataplane::set_fences(self, fences)
    }

    fn apply(&mut self, desired: &[DesiredService]) -> Result<()> {
        self.submit(desired, Instant::now())
    }

    fn housekeeping(&mut self) -> Result<()> {
        bpf::BpfDataplane::housekeeping(self)
    }

    fn next_due(&self) -> Option<Instant> {
        bpf::BpfDataplane::next_due(self)
    }

    fn deferred_until(&self) -> Option<Instant> {
        bpf::BpfDataplane::deferred_until(self)
    }

    fn tick(&mut self, now: Instant) -> Result<()> {
        bpf::BpfDataplane::tick(self, now)
    }

    fn take_unresolved(&mut self) -> Result<Vec<(IpAddr, u32)>> {
        bpf::BpfDataplane::take_unresolved(self)
    }

    fn has_unresolved(&self) -> bool {
        true
    }

    fn stats(&mut self) -> Result<serde_json::Value> {
        let mut v = serde_json::to_value(bpf::read_stats(self.pin_dir())?)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("conn_sync".to_string(), serde_json::to_value(self.sync_stats())?);
            o.insert("next_hop_cache".to_string(), serde_json::to_value(bpf::BpfDataplane::nexthop_summary(self))?);
        }
        Ok(v)
    }

    fn nexthop_summary(&self) -> Option<nexthop::Summary> {
        bpf::BpfDataplane::nexthop_summary(self)
    }

    fn start_punt(&mut self) -> Result<Option<punt::Punt>> {
        punt::Punt::start(self).map(Some)
    }

    fn set_sync(&mut self, want: Option<SyncWant>) -> Result<()> {
        bpf::BpfDataplane::set_sync(self, want)
    }

    fn sync_stats(&self) -> Option<ctsync::SyncStats> {
        self.sync_running().then(|| bpf::BpfDataplane::sync_stats(self))
    }

    fn shutdown(self: Box<Self>) -> Result<&'static str> {
        bpf::BpfDataplane::shutdown(*self, true).map(|()| "XDP detached and pins removed")
    }
}
