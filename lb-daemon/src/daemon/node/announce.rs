//! Which VIPs this node announces (`anycast_table`): a pure decision over the config, the
//! checkers' verdicts, what the backend holds and the VRRP states. The shell turns the answer
//! into blackhole routes in the announcement table, which a routing daemon (BIRD's `protocol
//! kernel`) exports: a VIP whose route is gone stops attracting traffic to this node.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use crate::{
    check::health::Health,
    config::{self, GroupMember, ServiceAddr},
    vrrp::{self, VrrpStatus},
};

/// The most addresses one `virtual_server_group` range announces (larger ones are refused
/// by the config check).
const MAX_RANGE: u128 = config::ANYCAST_MAX_RANGE;

/// Everything the decision reads.
pub struct Inputs<'a> {
    pub cfg: &'a config::Config,
    pub health: &'a Health,
    /// The services the backend holds as last programmed successfully.
    pub programmed: &'a BTreeSet<String>,
    pub vrrp: &'a [VrrpStatus],
    /// SIGTERM: withdraw everything before the data plane stops.
    pub stopping: bool,
    /// `lb-daemon withdraw` (until `lb-daemon announce`).
    pub withdrawn: bool,
}

/// Per VIP: announced (`Ok`) or why not. Empty without `anycast_table`. A VIP is announced
/// when every service on it is programmed, has its quorum, has heard from every one of its
/// checkers, and its `anycast_track_instance` (if any) is MASTER here; and the node is neither
/// stopping nor withdrawn.
pub fn decide(i: &Inputs) -> BTreeMap<IpAddr, Result<(), String>> {
    let mut out: BTreeMap<IpAddr, Result<(), String>> = BTreeMap::new();
    if i.cfg.global.anycast_table.is_none() {
        return out;
    }
    for vs in i.cfg.virtual_servers.iter().filter(|vs| !vs.ignored()) {
        let verdict = service_verdict(i, vs);
        for vip in vips(i.cfg, &vs.addr) {
            let e = out.entry(vip).or_insert(Ok(()));
            if e.is_ok() {
                e.clone_from(&verdict);
            }
        }
    }
    out
}

fn service_verdict(i: &Inputs, vs: &config::VirtualServer) -> Result<(), String> {
    let name = vs.name();
    if i.stopping {
        return Err("stopping".into());
    }
    if i.withdrawn {
        return Err("withdrawn (lb-daemon withdraw)".into());
    }
    if !i.programmed.contains(&name) {
        return Err(format!("{name} is not programmed"));
    }
    if !i.health.quorum_up(&name) {
        return Err(format!("{name} has lost its quorum"));
    }
    if !i.health.all_reported(&name) {
        return Err(format!("{name}: waiting for its checkers' first verdicts"));
    }
    if let Some(inst) = &vs.anycast_track_instance {
        let master = i.vrrp.iter().any(|v| &v.instance == inst && v.state == vrrp::State::Master);
        if !master {
            return Err(format!("{name}: vrrp_instance {inst} is not MASTER here"));
        }
    }
    Ok(())
}

/// The addresses a service answers on (none for a firewall mark).
pub fn vips(cfg: &config::Config, addr: &ServiceAddr) -> Vec<IpAddr> {
    match addr {
        ServiceAddr::Inet(sa) => vec![sa.ip()],
        ServiceAddr::Fwmark(_) => Vec::new(),
        ServiceAddr::Group(g) => cfg
            .virtual_server_groups
            .iter()
            .filter(|vsg| &vsg.name == g)
            .flat_map(|vsg| &vsg.members)
            .flat_map(|m| match m {
                GroupMember::Range { first, last, .. } => range(*first, *last),
                GroupMember::Fwmark(_) => Vec::new(),
            })
            .collect(),
    }
}

fn range(first: IpAddr, last: IpAddr) -> Vec<IpAddr> {
    match (first, last) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let (a, b) = (u32::from(a), u32::from(b));
            (a..=b).take(MAX_RANGE as usize).map(|x| IpAddr::V4(x.into())).collect()
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let (a, b) = (u128::from(a), u128::from(b));
            let end = b.min(a.saturating_add(MAX_RANGE - 1));
            (a..=end).map(|x| IpAddr::V6(x.into())).collect()
        }
        _ => vec![first],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> config::Config {
        let l = config::parse_str("a.conf", text);
        assert!(l.diagnostics.iter().all(|d| !l.sources.render(d).contains(": error: ")), "{text}");
        l.config
    }

    #[test]
    fn a_range_too_large_to_announce_is_refused() {
        let l = config::parse_str(
            "a.conf",
            "global_defs {\n anycast_table 100\n}\nvirtual_server_group g {\n 2001:db8::1-ffff 80\n}\n\
             virtual_server group g {\n protocol TCP\n real_server 2001:db8:1::21 80 {\n }\n}\n",
        );
        assert!(l.render().contains("announces at most 1024 per range"), "{}", l.render());
    }

    #[test]
    fn group_ranges_announce_each_address() {
        let c = cfg("global_defs {\n anycast_table 100\n}\nvirtual_server_group g {\n 203.0.113.10-12 80\n}\n\
             virtual_server group g {\n protocol TCP\n real_server 192.0.2.21 80 {\n }\n}\n");
        let v = vips(&c, &c.virtual_servers[0].addr);
        assert_eq!(v.len(), 3, "{v:?}");
    }
}
