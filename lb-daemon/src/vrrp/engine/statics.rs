//! `static_ipaddress`, `static_routes` and `static_rules`: put in the kernel at start,
//! changed by a reload, taken away at stop, as keepalived's VRRP process does (addresses,
//! then routes, then rules; the other way round to remove). Only what this daemon added is
//! removed: an equal entry already there is left alone, keepalived's `set` flag.

use tracing::{error, info};

use crate::{
    config::{self, Config, IpAddress, Route, Rule},
    netlink::{self, Netlink},
    vrrp::ours,
};

/// The static entries of the running config, each with whether this daemon added it.
#[derive(Default)]
pub struct Statics {
    default_dev: Option<String>,
    addrs: Vec<(IpAddress, bool)>,
    routes: Vec<(Route, bool)>,
    rules: Vec<(Rule, bool)>,
    /// Addresses without `no_track` on the node at the last look (`restore`).
    seen: Vec<std::net::IpAddr>,
    /// Whether each static route's interface was up at the last look (`reinstate_routes`).
    route_links: std::collections::BTreeMap<String, bool>,
}

/// Entries of `new` marked as their equal in `old` was (added by us or not); new ones unmarked.
fn carry<T: serde::Serialize + Clone>(old: &[(T, bool)], new: &[T]) -> Vec<(T, bool)> {
    new.iter().map(|n| (n.clone(), old.iter().any(|(o, set)| *set && config::same(o, n)))).collect()
}

/// Entries of `old` that this daemon added and `new` no longer has.
fn dropped<'a, T: serde::Serialize>(old: &'a [(T, bool)], new: &[(T, bool)]) -> Vec<&'a T> {
    old.iter().filter(|(o, set)| *set && !new.iter().any(|(n, _)| config::same(o, n))).map(|(o, _)| o).collect()
}

impl Statics {
    fn dev(&self) -> &str {
        self.default_dev.as_deref().unwrap_or("eth0")
    }

    /// Applies the static entries of `cfg` (at start, or after a reload took away the old).
    pub async fn apply(cfg: &Config, netlink: &Netlink) -> Statics {
        let mut s = Statics::default();
        s.reload(cfg, netlink).await;
        s
    }

    /// Removes what `cfg` no longer has, then adds what is not in the kernel yet.
    pub async fn reload(&mut self, cfg: &Config, netlink: &Netlink) {
        // `track_group` names who tracks an entry, not the entry: a reload that only changes
        // it leaves the kernel's entry alone, as keepalived's comparisons do.
        let addrs: Vec<IpAddress> =
            cfg.static_ipaddress.iter().map(|a| IpAddress { track_group: None, ..a.clone() }).collect();
        let routes: Vec<Route> = cfg.static_routes.iter().map(|r| Route { track_group: None, ..r.clone() }).collect();
        let rules: Vec<Rule> = cfg.static_rules.iter().map(|r| Rule { track_group: None, ..r.clone() }).collect();
        let new = Statics {
            default_dev: cfg.global.default_interface.clone(),
            addrs: carry(&self.addrs, &addrs),
            routes: carry(&self.routes, &routes),
            rules: carry(&self.rules, &rules),
            seen: Vec::new(),
            route_links: std::mem::take(&mut self.route_links),
        };
        for r in dropped(&self.rules, &new.rules) {
            report("static_rules", "removed", netlink.del_rule(r).await, r.priority);
        }
        for r in dropped(&self.routes, &new.routes) {
            report("static_routes", "removed", netlink.del_route(r, self.default_dev.as_deref()).await, r.dest);
        }
        for a in dropped(&self.addrs, &new.addrs) {
            report("static_ipaddress", "removed", netlink.del(a, self.dev()).await, a.addr);
        }
        *self = new;
        let dev = self.default_dev.clone();
        for (a, set) in self.addrs.iter_mut().filter(|(_, set)| !*set) {
            *set = report("static_ipaddress", "added", netlink.add(a, dev.as_deref().unwrap_or("eth0")).await, a.addr);
        }
        for (r, set) in self.routes.iter_mut().filter(|(_, set)| !*set) {
            *set = report("static_routes", "added", netlink.add_route(r, dev.as_deref()).await, r.dest);
        }
        for (r, set) in self.rules.iter_mut().filter(|(_, set)| !*set) {
            *set = report("static_rules", "added", netlink.add_rule(r).await, r.priority);
        }
    }

    /// Whether any static address is watched (`restore`).
    pub fn watches_addresses(&self) -> bool {
        self.addrs.iter().any(|(a, _)| !a.no_track)
    }

    /// keepalived's `reinstate_static_address`: an address (without `no_track`) seen on the
    /// node and now gone, someone else deleted; it is added back. `local`: the node's
    /// addresses now.
    pub async fn restore(&mut self, local: &std::collections::HashSet<netlink::OnLink>, netlink: &Netlink) {
        let dev = self.dev().to_string();
        let mut seen = Vec::new();
        for (a, set) in self.addrs.iter_mut().filter(|(a, _)| !a.no_track) {
            if netlink::on_link(a, &dev).is_some_and(|o| local.contains(&o)) {
                seen.push(a.addr);
            } else if self.seen.contains(&a.addr) {
                info!("Restoring deleted static address {}", a.addr);
                match netlink.add(a, &dev).await {
                    Ok(added) => {
                        *set |= added;
                        seen.push(a.addr);
                    }
                    // Tried once per deletion seen, as keepalived does (not every poll).
                    Err(e) => error!("static_ipaddress: {e:#}"),
                }
            }
        }
        self.seen = seen;
    }

    /// keepalived's `static_track_group_reinstate_config` when an interface comes up: its
    /// static routes (without `no_track`), which the kernel dropped as it went down, are added
    /// again (one still there is left alone).
    pub async fn reinstate_routes(&mut self, netlink: &Netlink) {
        let default_dev = self.default_dev.clone();
        for (r, set) in self.routes.iter_mut().filter(|(r, _)| !r.no_track) {
            let Some(dev) = r.dev.as_deref() else { continue };
            let up = netlink::is_running(dev);
            let was = self.route_links.insert(dev.to_string(), up);
            if up && was == Some(false) {
                info!("{dev} up: restoring static route {}/{}", r.dest, r.prefix);
                match netlink.add_route(r, default_dev.as_deref()).await {
                    Ok(added) => *set |= added,
                    Err(e) => error!("static_routes: {e:#}"),
                }
            }
        }
    }

    /// keepalived's `reinstate_static_route` / `reinstate_static_rule`: the first static
    /// route or rule `d` is (`vrrp::ours`, as keepalived's `route_is_ours` looks at static
    /// routes: table, family, prefix, TOS, destination), unless `no_track`, is added again.
    pub async fn restore_deleted(&mut self, d: &netlink::Deleted, netlink: &Netlink) {
        let default_dev = self.default_dev.clone();
        match d {
            netlink::Deleted::Route(k) => {
                let Some((r, set)) = self.routes.iter_mut().find(|(r, _)| ours::route_is(k, r, None, false)) else {
                    return;
                };
                if r.no_track {
                    return;
                }
                info!("Restoring deleted static route {}", describe_route(r));
                match netlink.add_route(r, default_dev.as_deref()).await {
                    Ok(added) => *set |= added,
                    Err(e) => error!("static_routes: {e:#}"),
                }
            }
            netlink::Deleted::Rule(k) => {
                let Some((r, set)) = self.rules.iter_mut().find(|(r, _)| ours::tracked_rule_is(k, r)) else {
                    return;
                };
                info!("Restoring deleted static rule preference {}", r.priority);
                match netlink.add_rule(r).await {
                    Ok(added) => *set |= added,
                    Err(e) => error!("static_rules: {e:#}"),
                }
            }
        }
    }

    /// At stop: rules, routes, then addresses this daemon added.
    pub async fn remove(&mut self, netlink: &Netlink) {
        self.reload(&Config::default(), netlink).await;
    }
}

/// A route as `ip route` starts it: destination, then the next hop and device.
fn describe_route(r: &Route) -> String {
    let mut out = format!("{}/{}", r.dest, r.prefix);
    if let Some(v) = r.via {
        out.push_str(&format!(" via {v}"));
    }
    if let Some(d) = &r.dev {
        out.push_str(&format!(" dev {d}"));
    }
    out
}

/// Logs the outcome of one change; whether the entry is now ours.
fn report(block: &str, done: &str, r: anyhow::Result<bool>, what: impl std::fmt::Display) -> bool {
    match r {
        Ok(true) => {
            info!("{block}: {what} {done}");
            true
        }
        Ok(false) => {
            info!("{block}: {what} already {}", if done == "added" { "there, left as found" } else { "gone" });
            false
        }
        Err(e) => {
            error!("{block}: {e:#}");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(text: &str) -> Rule {
        let mut ctx = config::keyword::Ctx::default();
        let w = config::tree::build(&config::lexer::lex(text, 0, &mut Vec::new()), &mut Vec::new()).remove(0).words;
        config::rule::rule(&mut ctx, &w).unwrap()
    }

    /// A reload keeps what this daemon added and is still configured as its own, removes
    /// only its own entries that went, and leaves alone what was there before it.
    #[test]
    fn a_reload_removes_only_our_entries_that_went() {
        let (a, b, c) = (
            rule("from 192.0.2.1 table 1 priority 1"),
            rule("from 192.0.2.2 table 1 priority 2"),
            rule("to all nop priority 3"),
        );
        let old = vec![(a.clone(), true), (b.clone(), false), (c.clone(), true)];
        let new = carry(&old, &[a.clone(), b.clone()]);
        assert_eq!(new.iter().map(|(_, s)| *s).collect::<Vec<_>>(), [true, false]);
        let gone = dropped(&old, &new);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].priority, 3);
        // Not ours: gone from the config, still not removed.
        let none = carry(&old, &[]);
        assert_eq!(dropped(&old, &none).iter().map(|r| r.priority).collect::<Vec<_>>(), [1, 3]);
    }
}
