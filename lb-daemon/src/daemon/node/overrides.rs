//! Runtime overrides set over the control socket: drained real servers, weights, disabled
//! services. They change the desired services after the checkers and the quorum have had
//! their say (an operator's drain is not a failure: it moves no quorum and runs no notify
//! script), and they outlive reloads until cleared, except where the reload changes what
//! they were set on (`after_reload`).

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
};

use crate::{
    check::health::Health,
    config::{Config, VirtualServer},
    control::names_service,
    dataplane::services::DesiredService,
    state::OverrideStatus,
};

/// What an operator set on one real server of one service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct RealOverride {
    drained: bool,
    weight: Option<u32>,
}

impl RealOverride {
    fn is_empty(self) -> bool {
        !self.drained && self.weight.is_none()
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overrides {
    /// By (service name, real server).
    reals: BTreeMap<(String, SocketAddr), RealOverride>,
    /// Service names.
    disabled: BTreeSet<String>,
}

/// A change to the overrides, from the control socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RealSet {
    Drain,
    Undrain,
    Weight(Option<u32>),
}

impl Overrides {
    /// Sets `what` on `real` in every service `service` names (all services if None) that
    /// has it; returns the services touched, or why none was.
    pub fn set_real(
        &mut self,
        cfg: &Config,
        real: SocketAddr,
        service: Option<&str>,
        what: RealSet,
    ) -> Result<Vec<String>, String> {
        if let RealSet::Weight(Some(w)) = what
            && w > 65535
        {
            return Err(format!("weight {w} is out of range (0-65535, as keepalived's `weight`)"));
        }
        let services = matching(cfg, service)?;
        let touched: Vec<String> =
            services.iter().filter(|vs| vs.real_servers.iter().any(|r| r.addr == real)).map(|vs| vs.name()).collect();
        if touched.is_empty() {
            let scope = service.map_or_else(|| "any virtual_server".to_string(), str::to_string);
            return Err(format!("{real} is not a real_server of {scope}"));
        }
        for name in &touched {
            let o = self.reals.entry((name.clone(), real)).or_default();
            match what {
                RealSet::Drain => o.drained = true,
                RealSet::Undrain => o.drained = false,
                RealSet::Weight(w) => o.weight = w,
            }
            if o.is_empty() {
                self.reals.remove(&(name.clone(), real));
            }
        }
        Ok(touched)
    }

    /// Disables (or enables) every service `service` names.
    pub fn set_disabled(&mut self, cfg: &Config, service: &str, disabled: bool) -> Result<Vec<String>, String> {
        let names: Vec<String> = matching(cfg, Some(service))?.iter().map(|vs| vs.name()).collect();
        for n in &names {
            if disabled {
                self.disabled.insert(n.clone());
            } else {
                self.disabled.remove(n);
            }
        }
        Ok(names)
    }

    /// Applies the overrides to `desired` (already settled by the checkers and the quorum):
    /// a drained real server stays with weight 0 (its flows continue, no new ones), a weight
    /// replaces the live one while the real server is up, and a disabled service keeps its
    /// real servers but schedules nothing (as a lost quorum without a sorry server).
    pub fn apply(&self, desired: &mut [DesiredService], health: &Health) {
        for d in desired {
            if self.disabled.contains(&d.name) {
                d.quorum_up = false;
                d.sorry = None;
            }
            for r in &mut d.reals {
                let Some(o) = self.reals.get(&(d.name.clone(), r.addr)) else { continue };
                if o.drained {
                    r.weight = 0;
                } else if let Some(w) = o.weight
                    && health.real(&d.name, r.addr).up
                {
                    r.weight = w;
                }
            }
        }
    }

    /// The overrides that stay when `new` replaces `old`, and a line for each one that goes:
    /// an override stays until cleared unless the reload removes or changes what it was set
    /// on (a real server's block, a service's existence).
    pub fn after_reload(&self, old: &Config, new: &Config) -> (Overrides, Vec<String>) {
        let mut kept = Overrides::default();
        let mut dropped = Vec::new();
        for ((service, real), o) in &self.reals {
            let before = real_server(old, service, *real);
            let after = real_server(new, service, *real);
            match (before, after) {
                (Some(a), Some(b)) if crate::config::same(a, b) => {
                    kept.reals.insert((service.clone(), *real), *o);
                }
                (_, None) => dropped.push(format!("{service} -> {real}: real server removed by the reload")),
                _ => dropped.push(format!("{service} -> {real}: real server changed by the reload")),
            }
        }
        for service in &self.disabled {
            if new.virtual_servers.iter().any(|vs| &vs.name() == service) {
                kept.disabled.insert(service.clone());
            } else {
                dropped.push(format!("{service}: service removed by the reload"));
            }
        }
        (kept, dropped)
    }

    pub fn status(&self) -> Vec<OverrideStatus> {
        let mut out: Vec<OverrideStatus> = self
            .disabled
            .iter()
            .map(|s| OverrideStatus { service: s.clone(), real: None, kind: "disabled".into(), weight: None })
            .collect();
        for ((service, real), o) in &self.reals {
            let entry = |kind: &str, weight| OverrideStatus {
                service: service.clone(),
                real: Some(real.to_string()),
                kind: kind.into(),
                weight,
            };
            // A weight set on a drained real server shows too: it applies once undrained.
            if o.drained {
                out.push(entry("drained", Some(0)));
            }
            if o.weight.is_some() {
                out.push(entry("weight", o.weight));
            }
        }
        out
    }
}

fn matching<'a>(cfg: &'a Config, service: Option<&str>) -> Result<Vec<&'a VirtualServer>, String> {
    let found: Vec<&VirtualServer> =
        cfg.virtual_servers.iter().filter(|vs| service.is_none_or(|s| names_service(s, &vs.name()))).collect();
    match (found.is_empty(), service) {
        (true, Some(s)) => {
            let known: Vec<String> = cfg.virtual_servers.iter().map(VirtualServer::name).collect();
            Err(format!("no virtual_server {s} (configured: {})", known.join(", ")))
        }
        (true, None) => Err("no virtual_server is configured".into()),
        (false, _) => Ok(found),
    }
}

fn real_server<'a>(cfg: &'a Config, service: &str, real: SocketAddr) -> Option<&'a crate::config::RealServer> {
    let vs = cfg.virtual_servers.iter().find(|vs| vs.name() == service)?;
    vs.real_servers.iter().find(|r| r.addr == real)
}
