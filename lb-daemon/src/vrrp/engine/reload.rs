//! A changed config applied to the running engine: unchanged instances keep their state and
//! timers; changes that keep an instance's sockets apply in place; others restart that
//! instance only.

use std::time::Instant;

use tracing::{error, info};

use super::{
    Engine,
    live::{self, Tuning},
};
use crate::{
    config::{self, Config, IpAddress, VrrpInstance},
    notify::Notifier,
    vrrp::instance::State,
};

/// How a reload treats a running instance.
enum Fate<'a> {
    Kept,
    UpdatedInPlace,
    /// Restarted with its new config, or removed.
    Stopped(Option<&'a VrrpInstance>),
}

impl Engine {
    /// See `Vrrp::reload`; returns the summary it logs.
    pub(super) async fn reload(&mut self, cfg: &Config, notifier: Notifier) -> String {
        let g = &cfg.global;
        self.notifier = notifier;
        self.mail_vrrp = g.vrrp_mail();
        self.statics.reload(cfg, &self.netlink).await;
        self.monitor = super::ours::Monitor::of(cfg);
        let now = Instant::now();
        let (mut kept, mut updated, mut restarted, mut removed, mut added) = (0, 0, 0, 0, 0);
        let mut start = Vec::new();
        // Group indexes go stale as instances leave; groups are rebuilt below (from INIT:
        // the cleared list is what `build_groups` finds).
        self.groups.clear();
        for inst in &mut self.insts {
            inst.group = None;
        }
        let mut i = 0;
        while i < self.insts.len() {
            // keepalived builds every instance again: a switch to old checksums is heard anew.
            self.insts[i].old_checksum_heard = false;
            let name = self.insts[i].cfg.name.clone();
            let fate = match cfg.vrrp_instances.iter().find(|v| v.name == name) {
                Some(v) if config::same(&self.insts[i].cfg, v) && self.resolves_the_same(i, cfg, v) => Fate::Kept,
                Some(v) if live::socket_key(cfg, v) == self.insts[i].socket_key => {
                    self.update_in_place(i, cfg, v).await;
                    Fate::UpdatedInPlace
                }
                other => Fate::Stopped(other),
            };
            match fate {
                Fate::Kept => kept += 1,
                Fate::UpdatedInPlace => updated += 1,
                Fate::Stopped(new) => {
                    self.insts[i].removed = new.is_none();
                    let e = self.insts[i].machine.stop();
                    self.carry_out(i, e).await;
                    if let Some(t) = self.insts.remove(i).rx_task {
                        t.abort();
                    }
                    if let Some(v) = new {
                        start.push(v.clone());
                        restarted += 1;
                    } else {
                        info!(instance = %name, "vrrp_instance removed by reload");
                        removed += 1;
                    }
                    continue;
                }
            }
            i += 1;
        }
        for v in &cfg.vrrp_instances {
            if !self.insts.iter().any(|i| i.cfg.name == v.name) && !start.iter().any(|s| s.name == v.name) {
                start.push(v.clone());
                added += 1;
            }
        }
        let first_new = self.insts.len();
        for v in &start {
            self.spawn_instance(cfg, v, now).await;
        }
        // A VMAC whose instance went and that no new instance took over goes (keepalived);
        // a restarted instance keeps its VMAC.
        self.prune_vmacs().await;
        self.build_groups(cfg);
        self.configure_links(cfg);
        self.bfds = cfg.bfd_instances.clone();
        if !self.trackers.same_as(cfg) {
            self.trackers.restart(cfg, self.notifier.runner(), &self.tx);
        }
        for (i, (w, f)) in self.tracking_all().into_iter().enumerate().skip(first_new) {
            self.insts[i].machine.track_weight = w;
            self.insts[i].machine.faults = f;
            let e = self.insts[i].machine.start(now);
            self.carry_out(i, e).await;
        }
        self.retrack().await;
        format!("{kept} unchanged, {updated} updated in place, {restarted} restarted, {added} added, {removed} removed")
    }

    /// Whether instance `i`, with its config unchanged, also takes the same settings from the
    /// new global_defs and sync group (their defaults: a reload that changes only those
    /// updates it in place).
    fn resolves_the_same(&self, i: usize, cfg: &Config, v: &VrrpInstance) -> bool {
        let s = &self.insts[i].machine.s;
        live::socket_key(cfg, v) == self.insts[i].socket_key
            && live::settings(&cfg.global, v, s.version, s.primary) == *s
            && Tuning::new(cfg, v, s.version).is_ok_and(|t| t == self.insts[i].tuning)
            && live::notifies_priority_changes(cfg, v) == self.insts[i].notify_priority
    }

    /// A reload changed what an instance does but not its sockets: new priority, timers,
    /// addresses, routes, rules, tracking and scripts take effect without an election.
    async fn update_in_place(&mut self, i: usize, cfg: &Config, v: &VrrpInstance) {
        let tuning = match Tuning::new(cfg, v, self.insts[i].machine.s.version) {
            Ok(t) => t,
            Err(e) => {
                error!(instance = %v.name, "reload: {e:#}; this instance keeps its running settings");
                return;
            }
        };
        let old = std::mem::replace(&mut self.insts[i].cfg, v.clone());
        let inst = &mut self.insts[i];
        let before = inst.machine.priority();
        inst.machine.s = live::settings(&cfg.global, v, inst.machine.s.version, inst.machine.s.primary);
        inst.tuning = tuning;
        // A new garp_extra_if interval counts from the next advert.
        inst.extra_garp_at = None;
        inst.notify_priority = live::notifies_priority_changes(cfg, v);
        info!(instance = %v.name, "vrrp_instance updated in place by reload");
        if inst.machine.state != State::Master {
            return;
        }
        // A master moves its addresses, routes and rules to the new lists, and re-announces.
        let iface = inst.iface.clone();
        let was: Vec<IpAddress> = inst.vips_of(&old);
        let now: Vec<IpAddress> = inst.vips();
        for a in was.iter().filter(|a| !now.iter().any(|n| config::same(*a, n))) {
            if self.held_elsewhere(i, a) {
                info!(instance = %v.name, addr = %a.addr, "virtual address kept: another instance is master for it");
                continue;
            }
            if let Err(e) = self.netlink.del(a, &iface).await {
                error!(instance = %v.name, "{e:#}");
            }
        }
        for a in now.iter().filter(|n| !was.iter().any(|a| config::same(a, *n))) {
            if let Err(e) = self.netlink.add(a, &iface).await {
                error!(instance = %v.name, "{e:#}");
            }
        }
        for r in old.virtual_rules.iter().filter(|r| !v.virtual_rules.iter().any(|n| config::same(*r, n))) {
            let _ = self.netlink.del_rule(r).await;
        }
        for r in old.virtual_routes.iter().filter(|r| !v.virtual_routes.iter().any(|n| config::same(*r, n))) {
            let _ = self.netlink.del_route(r, Some(&iface)).await;
        }
        for r in v.virtual_routes.iter().filter(|n| !old.virtual_routes.iter().any(|r| config::same(r, *n))) {
            if let Err(e) = self.netlink.add_route(r, Some(&iface)).await {
                error!(instance = %v.name, "virtual_routes: {e:#}");
            }
        }
        for r in v.virtual_rules.iter().filter(|n| !old.virtual_rules.iter().any(|r| config::same(r, *n))) {
            if let Err(e) = self.netlink.add_rule(r).await {
                error!(instance = %v.name, "virtual_rules: {e:#}");
            }
        }
        let inst = &mut self.insts[i];
        if inst.machine.priority() != before || !config::same(&old.virtual_ipaddress, &v.virtual_ipaddress) {
            let p = inst.machine.priority();
            inst.send_advert(p);
            inst.garp(inst.tuning.garp_repeat);
        }
    }
}
