//! `-t --diff`: what a reload would change, computed from the running configuration and the
//! new one (both with the same checker verdicts and overrides) without touching anything.
//! Configuration blocks are compared field by field as they serialize (locations aside), so
//! every keyword the model holds is covered without a list to keep in step.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::{
    config::{Config, Scheduler},
    control::{Buckets, Change, Leaving, Preview},
    dataplane::{
        services::{self, DesiredService},
        tables::{self, Member},
    },
};

/// One side of a preview: a configuration, the part of it VRRP runs from here, and the
/// services it gives with the running checkers' verdicts and overrides.
pub struct Side<'a> {
    pub cfg: &'a Config,
    pub vrrp: &'a Config,
    pub desired: Vec<DesiredService>,
}

/// What this node runs besides VRRP: services (not with `-P`), and the XDP data plane's own
/// scheduling tables (IPVS builds its own: no bucket count there).
#[derive(Clone, Copy)]
pub struct Runs {
    pub services: bool,
    pub tables: bool,
}

/// The changes from `old` to `new`.
pub fn preview(old: Side, new: Side, runs: Runs) -> Preview {
    let mut p = Preview::default();
    let (ov, nv) = (old.vrrp, new.vrrp);
    blocks(
        &mut p,
        "vrrp instance",
        &named(&ov.vrrp_instances, |v| v.name.clone()),
        &named(&nv.vrrp_instances, |v| v.name.clone()),
    );
    blocks(
        &mut p,
        "vrrp sync group",
        &named(&ov.vrrp_sync_groups, |g| g.name.clone()),
        &named(&nv.vrrp_sync_groups, |g| g.name.clone()),
    );
    blocks(
        &mut p,
        "vrrp script",
        &named(&ov.vrrp_scripts, |s| s.name.clone()),
        &named(&nv.vrrp_scripts, |s| s.name.clone()),
    );
    fields(&mut p, "global_defs", &json(&old.cfg.global), &json(&new.cfg.global), |c, _| c);
    let mut whole = vec![
        ("static_ipaddress", json(&ov.static_ipaddress), json(&nv.static_ipaddress)),
        ("static_routes", json(&ov.static_routes), json(&nv.static_routes)),
        ("garp_group", json(&ov.garp_groups), json(&nv.garp_groups)),
    ];
    if runs.services {
        whole.push((
            "virtual_server_group",
            json(&old.cfg.virtual_server_groups),
            json(&new.cfg.virtual_server_groups),
        ));
        whole.push(("SSL", json(&old.cfg.ssl), json(&new.cfg.ssl)));
    }
    for (what, a, b) in whole {
        if a != b {
            p.changes.push(Change { what: format!("{what} changed"), ..Default::default() });
        }
    }
    if runs.services {
        services(&mut p, old.cfg, new.cfg, &old.desired);
        if runs.tables {
            buckets(&mut p, &old.desired, &new.desired);
        }
    }
    p
}

fn json<T: serde::Serialize>(t: &T) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

fn named<T: serde::Serialize>(items: &[T], name: impl Fn(&T) -> String) -> BTreeMap<String, Value> {
    items.iter().map(|i| (name(i), json(i))).collect()
}

/// A value as one short line: strings bare, the rest as compact JSON.
fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "none".into(),
        v => v.to_string(),
    }
}

/// Blocks matched by name: added, removed, and each changed field of the rest.
fn blocks(p: &mut Preview, kind: &str, old: &BTreeMap<String, Value>, new: &BTreeMap<String, Value>) {
    for name in old.keys().filter(|n| !new.contains_key(*n)) {
        p.changes.push(Change { what: format!("{kind} removed"), instance: Some(name.clone()), ..Default::default() });
    }
    for (name, b) in new {
        match old.get(name) {
            None => p.changes.push(Change {
                what: format!("{kind} added"),
                instance: Some(name.clone()),
                ..Default::default()
            }),
            Some(a) => fields(p, kind, a, b, |mut c, _| {
                c.instance = Some(name.clone());
                c
            }),
        }
    }
}

/// Each top-level field of two objects that differs, as a change named `<kind> <field>`,
/// passed through `place` (which says where it is).
fn fields(p: &mut Preview, kind: &str, a: &Value, b: &Value, place: impl Fn(Change, &str) -> Change) {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else { return };
    for (k, bv) in b {
        let av = a.get(k).unwrap_or(&Value::Null);
        if av != bv {
            let c =
                Change { what: format!("{kind} {k}"), from: Some(show(av)), to: Some(show(bv)), ..Default::default() };
            p.changes.push(place(c, k));
        }
    }
}

/// The keys `name` answers to, as the flow tables name them.
fn keys_of(desired: &[DesiredService], name: &str) -> Vec<String> {
    desired.iter().filter(|d| d.name == name).flat_map(|d| d.keys.iter().map(services::describe)).collect()
}

/// Virtual servers by name, their fields, and their real servers by address.
fn services(p: &mut Preview, old: &Config, new: &Config, old_desired: &[DesiredService]) {
    let old_vs: BTreeMap<String, _> = old.virtual_servers.iter().map(|v| (v.name(), v)).collect();
    let new_vs: BTreeMap<String, _> = new.virtual_servers.iter().map(|v| (v.name(), v)).collect();
    for name in old_vs.keys().filter(|n| !new_vs.contains_key(*n)) {
        p.changes.push(Change { what: "service removed".into(), service: Some(name.clone()), ..Default::default() });
        p.leaving.push(Leaving { service: name.clone(), keys: keys_of(old_desired, name), real: None });
    }
    for (name, b) in &new_vs {
        let Some(a) = old_vs.get(name) else {
            p.changes.push(Change { what: "service added".into(), service: Some(name.clone()), ..Default::default() });
            continue;
        };
        let (mut av, mut bv) = (json(a), json(b));
        for v in [&mut av, &mut bv] {
            if let Some(o) = v.as_object_mut() {
                o.remove("real_servers");
            }
        }
        fields(p, "service", &av, &bv, |mut c, _| {
            c.service = Some(name.clone());
            c
        });
        for r in a.real_servers.iter().filter(|r| !b.real_servers.iter().any(|x| x.addr == r.addr)) {
            p.changes.push(Change {
                what: "real server removed".into(),
                service: Some(name.clone()),
                real: Some(r.addr.to_string()),
                ..Default::default()
            });
            p.leaving.push(Leaving { service: name.clone(), keys: keys_of(old_desired, name), real: Some(r.addr) });
        }
        for r in &b.real_servers {
            let real = Some(r.addr.to_string());
            match a.real_servers.iter().find(|x| x.addr == r.addr) {
                None => p.changes.push(Change {
                    what: "real server added".into(),
                    service: Some(name.clone()),
                    real,
                    ..Default::default()
                }),
                Some(old_r) => fields(p, "real server", &json(old_r), &json(r), |mut c, k| {
                    if k == "weight" {
                        c.what = "weight".into();
                    }
                    c.service = Some(name.clone());
                    c.real.clone_from(&real);
                    c
                }),
            }
        }
    }
}

fn hashed(s: Scheduler) -> bool {
    matches!(s, Scheduler::Sh | Scheduler::Dh | Scheduler::Mh)
}

/// For hash-scheduled services in both: how many table buckets would change owner (each
/// side's table under its own scheduler).
fn buckets(p: &mut Preview, old: &[DesiredService], new: &[DesiredService]) {
    for n in new.iter().filter(|d| hashed(d.scheduler)) {
        let Some(o) = old.iter().find(|d| d.name == n.name && hashed(d.scheduler)) else { continue };
        let (a, b) = (owners(o), owners(n));
        let total = a.len().max(b.len());
        let moved = (0..total).filter(|&i| a.get(i) != b.get(i)).count();
        if moved > 0 {
            p.buckets.push(Buckets {
                service: n.name.clone(),
                scheduler: n.scheduler.name().to_string(),
                moved: moved as u32,
                total: total as u32,
            });
        }
    }
}

/// The real server owning each bucket of `d`'s table, as the data plane would build it
/// (`bpf::plan`: nothing when the quorum is down; `tables::build` leaves weight 0 out, so a
/// service with no live weight has an empty table too).
pub(super) fn owners(d: &DesiredService) -> Vec<String> {
    if !d.quorum_up {
        return Vec::new();
    }
    let members: Vec<Member> = d
        .reals
        .iter()
        .enumerate()
        .map(|(i, r)| Member { id: i as u32, name: r.addr.to_string(), weight: r.weight })
        .collect();
    let (table, _) = tables::build(d.scheduler, &members, d.sched_flags, d.mh_seed);
    table.iter().map(|&id| members.get(id as usize).map(|m| m.name.clone()).unwrap_or_default()).collect()
}
