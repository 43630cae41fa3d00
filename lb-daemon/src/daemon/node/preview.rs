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
        services::DesiredService,
        tables::{self, Member},
    },
};

/// The changes from `old` to `new`, each a configuration and its desired services. With
/// `services_run` false (`-P`) the services are not compared.
pub fn preview(
    old: (&Config, Vec<DesiredService>),
    new: (&Config, Vec<DesiredService>),
    services_run: bool,
) -> Preview {
    let (old_cfg, old_desired) = old;
    let (new_cfg, new_desired) = new;
    let mut p = Preview::default();
    blocks(
        &mut p,
        "vrrp instance",
        &named(&old_cfg.vrrp_instances, |v| v.name.clone()),
        &named(&new_cfg.vrrp_instances, |v| v.name.clone()),
    );
    blocks(
        &mut p,
        "vrrp sync group",
        &named(&old_cfg.vrrp_sync_groups, |g| g.name.clone()),
        &named(&new_cfg.vrrp_sync_groups, |g| g.name.clone()),
    );
    blocks(
        &mut p,
        "vrrp script",
        &named(&old_cfg.vrrp_scripts, |s| s.name.clone()),
        &named(&new_cfg.vrrp_scripts, |s| s.name.clone()),
    );
    fields(&mut p, "global_defs", &json(&old_cfg.global), &json(&new_cfg.global), |c, _| c);
    for (what, a, b) in [
        ("static_ipaddress", json(&old_cfg.static_ipaddress), json(&new_cfg.static_ipaddress)),
        ("static_routes", json(&old_cfg.static_routes), json(&new_cfg.static_routes)),
        ("virtual_server_group", json(&old_cfg.virtual_server_groups), json(&new_cfg.virtual_server_groups)),
    ] {
        if a != b {
            p.changes.push(Change { what: format!("{what} changed"), ..Default::default() });
        }
    }
    if services_run {
        services(&mut p, old_cfg, new_cfg);
        buckets(&mut p, &old_desired, &new_desired);
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

/// Virtual servers by name, their fields, and their real servers by address.
fn services(p: &mut Preview, old: &Config, new: &Config) {
    let old_vs: BTreeMap<String, _> = old.virtual_servers.iter().map(|v| (v.name(), v)).collect();
    let new_vs: BTreeMap<String, _> = new.virtual_servers.iter().map(|v| (v.name(), v)).collect();
    for name in old_vs.keys().filter(|n| !new_vs.contains_key(*n)) {
        p.changes.push(Change { what: "service removed".into(), service: Some(name.clone()), ..Default::default() });
        p.leaving.push(Leaving { service: name.clone(), real: None });
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
            p.leaving.push(Leaving { service: name.clone(), real: Some(r.addr) });
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

/// For hash-scheduled services in both: how many table buckets would change owner.
fn buckets(p: &mut Preview, old: &[DesiredService], new: &[DesiredService]) {
    for n in new.iter().filter(|d| matches!(d.scheduler, Scheduler::Sh | Scheduler::Dh | Scheduler::Mh)) {
        let Some(o) = old.iter().find(|d| d.name == n.name) else { continue };
        let (a, b) = (owners(o, n.scheduler), owners(n, n.scheduler));
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

/// The real server owning each bucket of `d`'s table under `scheduler`, as the data plane
/// would build it (nothing when the quorum is down).
fn owners(d: &DesiredService, scheduler: Scheduler) -> Vec<String> {
    if !d.quorum_up {
        return Vec::new();
    }
    let members: Vec<Member> = d
        .reals
        .iter()
        .enumerate()
        .map(|(i, r)| Member { id: i as u32, name: r.addr.to_string(), weight: r.weight })
        .collect();
    let (table, _) = tables::build(scheduler, &members);
    table.iter().map(|&id| members.get(id as usize).map(|m| m.name.clone()).unwrap_or_default()).collect()
}
