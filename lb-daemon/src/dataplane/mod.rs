//! Where the configured services are forwarded: the XDP data plane (`bpf`) or the kernel's
//! IPVS (`crate::ipvs`), behind one trait so config, checkers and VRRP do not care which.

pub mod bpf;
pub mod decap;
pub mod iface;
pub mod object;
pub mod punt;
pub mod services;
pub mod tables;

use std::net::IpAddr;

use anyhow::Result;

use crate::config::BackendKind;
use services::DesiredService;

/// What the daemon needs from a forwarding backend.
pub trait Backend: Send {
    fn kind(&self) -> BackendKind;

    /// Makes the backend hold exactly `desired`; unchanged services are not touched.
    fn apply(&mut self, desired: &[DesiredService]) -> Result<()>;

    /// Periodic upkeep (the BPF data plane's connection counts).
    fn housekeeping(&mut self) -> Result<()> {
        Ok(())
    }

    /// Next hops waiting for neighbour resolution (the BPF data plane's FIB misses).
    fn take_unresolved(&mut self) -> Result<Vec<(IpAddr, u32)>> {
        Ok(Vec::new())
    }

    /// Services, real servers and counters, for dumps.
    fn stats(&mut self) -> Result<serde_json::Value>;

    /// Changes made to the kernel since start (IPVS counts netlink commands; the BPF data
    /// plane does not count map writes).
    fn changes(&self) -> Option<u64> {
        None
    }

    /// Starts, switches or stops connection sync between load balancers.
    fn set_sync(&mut self, want: Option<crate::ipvs::SyncWant>) -> Result<()>;

    /// Starts taking the frames the data plane hands over (the BPF data plane's held
    /// fragments and IPv4 packets to fragment); None when there are none to take.
    fn start_punt(&mut self) -> Result<Option<punt::Punt>> {
        Ok(None)
    }

    /// Removes everything this daemon put in the kernel.
    fn shutdown(self: Box<Self>) -> Result<()>;
}

impl Backend for bpf::BpfDataplane {
    fn kind(&self) -> BackendKind {
        BackendKind::Bpf
    }

    fn apply(&mut self, desired: &[DesiredService]) -> Result<()> {
        bpf::BpfDataplane::apply(self, desired)
    }

    fn housekeeping(&mut self) -> Result<()> {
        self.reconcile_conns()
    }

    fn take_unresolved(&mut self) -> Result<Vec<(IpAddr, u32)>> {
        bpf::BpfDataplane::take_unresolved(self)
    }

    fn stats(&mut self) -> Result<serde_json::Value> {
        Ok(serde_json::to_value(bpf::read_stats(self.pin_dir())?)?)
    }

    fn start_punt(&mut self) -> Result<Option<punt::Punt>> {
        punt::Punt::start(self).map(Some)
    }

    fn set_sync(&mut self, want: Option<crate::ipvs::SyncWant>) -> Result<()> {
        match want {
            None => Ok(()),
            // Flows live in pinned maps on each node; nothing copies them across yet.
            Some(_) => anyhow::bail!("connection sync (lvs_sync_daemon) needs the IPVS backend"),
        }
    }

    fn shutdown(self: Box<Self>) -> Result<()> {
        bpf::BpfDataplane::shutdown(*self, true)
    }
}

impl Backend for crate::ipvs::IpvsBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Ipvs
    }

    fn apply(&mut self, desired: &[DesiredService]) -> Result<()> {
        crate::ipvs::IpvsBackend::apply(self, desired)
    }

    fn stats(&mut self) -> Result<serde_json::Value> {
        crate::ipvs::IpvsBackend::stats(self)
    }

    fn changes(&self) -> Option<u64> {
        Some(self.changes)
    }

    fn set_sync(&mut self, want: Option<crate::ipvs::SyncWant>) -> Result<()> {
        crate::ipvs::IpvsBackend::set_sync(self, want)
    }

    fn shutdown(self: Box<Self>) -> Result<()> {
        crate::ipvs::IpvsBackend::shutdown(*self)
    }
}
