//! `interface_up_down_delays`: an interface's up/down change reaches the instances that use or
//! track it only once it has lasted the interface's delay, as keepalived 2.2.7's
//! `netlink_if_link_flags_change` / `delayed_if_flags_change_thread` do: a change back before
//! the delay runs out cancels it ("Delay timer for IF cancelled"), and an interface never
//! seen up takes its first change at once.
//!
//! The delays are decided by `delays` (pure); `Links` keeps each interface's state from the
//! polled link flags.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use tracing::info;

use crate::config::Config;

/// An interface's delays: before a down change, before an up change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delays {
    pub down: Duration,
    pub up: Duration,
}

/// The delays of each interface `interface_up_down_delays` names, as keepalived uses them:
/// those of an instance's interface are cut to just under (down_timer_adverts - 1) advert
/// intervals (a backup would otherwise take over before the master noticed its fault), to
/// none with down_timer_adverts 1; a VMAC (`vmacs`: its name → its instance's interface) has
/// its interface's.
pub fn delays(cfg: &Config, vmacs: &[(String, String)]) -> BTreeMap<String, Delays> {
    let mut out: BTreeMap<String, Delays> = cfg
        .interface_up_down_delays
        .iter()
        .map(|d| {
            let us = |v: u32| Duration::from_micros(u64::from(v));
            (d.iface.clone(), Delays { down: us(d.down_us), up: us(d.up_us) })
        })
        .collect();
    for v in &cfg.vrrp_instances {
        let Some(d) = v.interface.as_deref().and_then(|i| out.get_mut(i)) else { continue };
        let adverts = u32::from(v.down_timer_adverts(&cfg.global));
        let int = Duration::from_millis(u64::from(v.advert_int_cs) * 10);
        let cap = (int * adverts.saturating_sub(1)).saturating_sub(int / 256);
        if adverts <= 1 {
            if *d != Delays::default() {
                info!("{}: cannot use debounce timers with down_timer_adverts = 1 - resetting", v.name);
            }
            *d = Delays::default();
        } else {
            d.down = if d.down >= cap + int / 256 { cap } else { d.down };
            d.up = if d.up >= cap + int / 256 { cap } else { d.up };
        }
    }
    for (vmac, base) in vmacs {
        if let Some(d) = out.get(base).copied() {
            out.insert(vmac.clone(), d);
        }
    }
    out
}

/// One interface's debounced state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Link {
    /// What the instances see.
    up: bool,
    /// Whether it has been up since lb-daemon first looked: until then changes are not
    /// delayed (keepalived's `seen_up`).
    seen_up: bool,
    /// A change waiting out its delay: the state it goes to, and when.
    pending: Option<(bool, Instant)>,
    /// Whether it has been looked at.
    known: bool,
}

/// The debounced link states of the interfaces that have delays.
#[derive(Debug, Default)]
pub struct Links {
    delays: BTreeMap<String, Delays>,
    links: BTreeMap<String, Link>,
}

impl Links {
    /// New delays (a reload): interfaces that keep the same delays keep their state; one
    /// whose delays changed is looked at afresh (a pending change would keep its old delay).
    pub fn configure(&mut self, delays: BTreeMap<String, Delays>) {
        let old = std::mem::take(&mut self.delays);
        self.links.retain(|name, _| delays.get(name).is_some_and(|d| old.get(name) == Some(d)));
        self.delays = delays;
    }

    /// Reads every interface with delays (`running`: its flags now) and carries out the
    /// changes that are due by `now`.
    pub fn poll(&mut self, now: Instant, running: impl Fn(&str) -> bool) {
        for (name, d) in &self.delays {
            let raw = running(name);
            let link = self.links.entry(name.clone()).or_default();
            if !link.known {
                *link = Link { up: raw, seen_up: raw, pending: None, known: true };
                continue;
            }
            if let Some((to, at)) = link.pending {
                if raw != to {
                    link.pending = None;
                    info!("Delay timer for {name} cancelled");
                } else if now >= at {
                    link.pending = None;
                    link.up = to;
                    link.seen_up |= to;
                }
                continue;
            }
            if raw == link.up {
                continue;
            }
            let delay = if raw { d.up } else { d.down };
            if link.seen_up && !delay.is_zero() {
                link.pending = Some((raw, now + delay));
                let (from, to) = if raw { ("down", "up") } else { ("up", "down") };
                info!("{name}: Adding flags change from {from} to {to} delay by {}us", delay.as_micros());
            } else {
                link.up = raw;
                link.seen_up |= raw;
            }
        }
    }

    /// Whether `name` is up as the instances see it: debounced where it has delays.
    pub fn running(&self, name: &str, raw: impl Fn(&str) -> bool) -> bool {
        match self.links.get(name) {
            Some(l) if l.known => l.up,
            _ => raw(name),
        }
    }

    /// When the next pending change is due, if any.
    pub fn next_due(&self) -> Option<Instant> {
        self.links.values().filter_map(|l| l.pending.map(|(_, at)| at)).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links(down_ms: u64, up_ms: u64) -> Links {
        let mut l = Links::default();
        let d = Delays { down: Duration::from_millis(down_ms), up: Duration::from_millis(up_ms) };
        l.configure([("eth0".to_string(), d)].into());
        l
    }

    /// keepalived's debounce: a change waits out its direction's delay; one that reverts
    /// first is cancelled; without a delay (up 0 here) the change is at once; interfaces
    /// without delays are read as they are.
    #[test]
    fn changes_wait_out_their_delay_and_reverts_cancel_them() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut l = links(1500, 0);
        let raw_up = |_: &str| true;
        let raw_down = |_: &str| false;
        l.poll(ms(0), raw_up);
        assert!(l.running("eth0", raw_down));
        // Down for 1 s: never seen.
        l.poll(ms(100), raw_down);
        assert!(l.running("eth0", raw_down));
        assert_eq!(l.next_due(), Some(ms(1600)));
        l.poll(ms(1100), raw_up);
        assert!(l.running("eth0", raw_down) && l.next_due().is_none());
        // Down for longer: seen once the delay has run.
        l.poll(ms(2000), raw_down);
        l.poll(ms(3400), raw_down);
        assert!(l.running("eth0", raw_up));
        l.poll(ms(3500), raw_down);
        assert!(!l.running("eth0", raw_up));
        // Up again: no up delay, at once.
        l.poll(ms(3600), raw_up);
        assert!(l.running("eth0", raw_down));
        // Another interface: as it is.
        assert!(!l.running("eth1", raw_down) && l.running("eth1", raw_up));
    }

    /// An interface down when first seen takes its first up at once (keepalived delays only
    /// once it has been up).
    #[test]
    fn an_interface_never_seen_up_is_not_delayed() {
        let t0 = Instant::now();
        let mut l = links(1500, 1000);
        l.poll(t0, |_| false);
        l.poll(t0 + Duration::from_millis(100), |_| true);
        assert!(l.running("eth0", |_| false));
        l.poll(t0 + Duration::from_millis(200), |_| false);
        assert!(l.running("eth0", |_| false), "down is delayed once it has been up");
    }

    /// The delays keepalived keeps: under (down_timer_adverts - 1) advert intervals for an
    /// instance's interface, none with down_timer_adverts 1, a VMAC's from its interface.
    #[test]
    fn delays_are_capped_by_the_instances_advert_timing() {
        let text = |adverts: &str| {
            format!(
                "interface_up_down_delays {{\n eth0 5 0.5\n eth1 1\n}}\nvrrp_instance VI_1 {{\n interface eth0\n \
                 virtual_router_id 1\n advert_int 1\n{adverts}}}\n"
            )
        };
        let l = crate::config::parse_str("t.conf", &text(""));
        assert!(!l.has_errors(), "{}", l.render());
        let d = delays(&l.config, &[("vrrp.1".to_string(), "eth0".to_string())]);
        let capped = Duration::from_secs(2) - Duration::from_secs(1) / 256;
        assert_eq!(d["eth0"], Delays { down: capped, up: Duration::from_millis(500) });
        assert_eq!(d["vrrp.1"], d["eth0"]);
        assert_eq!(d["eth1"], Delays { down: Duration::from_secs(1), up: Duration::ZERO });
        let l = crate::config::parse_str("t.conf", &text(" down_timer_adverts 1\n"));
        assert_eq!(delays(&l.config, &[])["eth0"], Delays::default());
    }
}
