//! Whether a route or rule the kernel says was deleted is one of ours: keepalived 2.2.7's
//! `route_is_ours` and `compare_rule` (keepalived_netlink.c), which decide what its netlink
//! reflector does about a deletion (a master whose virtual route or rule went hands over, a
//! static one is put back). Pure: the engine hands in what netlink said.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rtnetlink::packet_route::rule::{RuleAttribute, RuleFlags, RuleMessage};

use crate::{
    config::{Config, Route, Rule},
    netlink::{Deleted, KernelRoute},
};

/// Which deletions keepalived listens for (`vrrp_complete_instance` and
/// `process_static_entries`, then `set_extra_netlink_monitoring`): routes or rules of a family
/// some tracked virtual route or rule has, or some static one with a `track_group`. A static
/// route is put back only while its family is listened to for another reason or its own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Monitor {
    pub v4_routes: bool,
    pub v6_routes: bool,
    pub v4_rules: bool,
    pub v6_rules: bool,
}

impl Monitor {
    pub fn of(cfg: &Config) -> Self {
        let mut m = Monitor::default();
        let vroutes = cfg.vrrp_instances.iter().flat_map(|v| v.virtual_routes.iter()).filter(|r| !r.no_track);
        let statics = cfg.static_routes.iter().filter(|r| r.track_group.is_some());
        for r in vroutes.chain(statics) {
            *(if r.dest.is_ipv6() { &mut m.v6_routes } else { &mut m.v4_routes }) = true;
        }
        let vrules = cfg.vrrp_instances.iter().flat_map(|v| v.virtual_rules.iter()).filter(|r| !r.no_track);
        let statics = cfg.static_rules.iter().filter(|r| r.track_group.is_some());
        for r in vrules.chain(statics) {
            *(if r.v6 { &mut m.v6_rules } else { &mut m.v4_rules }) = true;
        }
        m
    }

    /// The rtnetlink groups to join, as keepalived's `set_extra_netlink_monitoring`.
    pub fn groups(&self) -> Vec<u32> {
        use crate::netlink::{RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV4_RULE, RTNLGRP_IPV6_ROUTE, RTNLGRP_IPV6_RULE};
        [
            (self.v4_routes, RTNLGRP_IPV4_ROUTE),
            (self.v4_rules, RTNLGRP_IPV4_RULE),
            (self.v6_routes, RTNLGRP_IPV6_ROUTE),
            (self.v6_rules, RTNLGRP_IPV6_RULE),
        ]
        .into_iter()
        .filter_map(|(on, g)| on.then_some(g))
        .collect()
    }

    /// Whether keepalived would have heard `d`.
    pub fn hears(&self, d: &Deleted) -> bool {
        match (d, d.v6()) {
            (Deleted::Route(_), false) => self.v4_routes,
            (Deleted::Route(_), true) => self.v6_routes,
            (Deleted::Rule(_), false) => self.v4_rules,
            (Deleted::Rule(_), true) => self.v6_rules,
        }
    }
}

/// The main routing table, where a route without `table` goes.
const RT_TABLE_MAIN: u32 = 254;

/// Whether `k` is route `r`. A virtual route (`virtual`) must also have its metric (0 unless
/// configured: keepalived compares the configured one, so an IPv6 route without `metric`,
/// which the kernel gives 1024, never matches) and leave by `oif` where that is known (the
/// index of its `dev`, or of the device it was added on: keepalived compares the one the
/// route was added with); static routes are told apart by table, family, prefix, TOS and
/// destination only, as keepalived's are.
pub fn route_is(k: &KernelRoute, r: &Route, oif: Option<u32>, virtual_route: bool) -> bool {
    let unspecified = if k.v6 { IpAddr::V6(Ipv6Addr::UNSPECIFIED) } else { IpAddr::V4(Ipv4Addr::UNSPECIFIED) };
    let same = k.table == r.table.unwrap_or(RT_TABLE_MAIN)
        && k.v6 == r.dest.is_ipv6()
        && k.prefix == r.prefix
        && k.tos == r.tos.unwrap_or(0)
        && k.dest.unwrap_or(unspecified) == r.dest;
    if !same || !virtual_route {
        return same;
    }
    k.metric == r.metric.unwrap_or(0) && oif.is_none_or(|i| k.oif == Some(i))
}

/// Whether rule `k` is configured rule `r`, as keepalived's `rule_is_ours` looks for it:
/// `compare_rule` passes over `no_track` rules.
pub fn tracked_rule_is(k: &RuleMessage, r: &Rule) -> bool {
    !r.no_track && rule_is(k, &crate::netlink::rule_message(r))
}

/// Whether rule `k` (as the kernel sent it) is the rule `ours` (as this daemon adds it,
/// `netlink::rule_message`): keepalived's `compare_rule`. Family, action, TOS, inversion,
/// prefix lengths, table and priority must be equal, and so must every selector either has;
/// an unset fwmask matches the kernel's all-ones, an unset suppress_prefixlength its -1. The
/// protocol is not compared (only protocol keepalived's deletions get this far).
pub fn rule_is(k: &RuleMessage, ours: &RuleMessage) -> bool {
    let (kh, oh) = (&k.header, &ours.header);
    let invert = |m: &RuleMessage| m.header.flags.contains(RuleFlags::Invert);
    if kh.family != oh.family
        || kh.action != oh.action
        || kh.tos != oh.tos
        || invert(k) != invert(ours)
        || kh.src_len != oh.src_len
        || kh.dst_len != oh.dst_len
        || table(k) != table(ours)
    {
        return false;
    }
    let selector = |a: &&RuleAttribute| {
        matches!(
            a,
            RuleAttribute::Priority(_)
                | RuleAttribute::Source(_)
                | RuleAttribute::Destination(_)
                | RuleAttribute::Goto(_)
                | RuleAttribute::FwMark(_)
                | RuleAttribute::Realm(_)
                | RuleAttribute::TunId(_)
                | RuleAttribute::SuppressIfGroup(_)
                | RuleAttribute::Iifname(_)
                | RuleAttribute::Oifname(_)
                | RuleAttribute::UidRange(_)
                | RuleAttribute::IpProtocol(_)
                | RuleAttribute::SourcePortRange(_)
                | RuleAttribute::DestinationPortRange(_)
        ) || matches!(a, RuleAttribute::L3MDev(true))
    };
    let (ks, os): (Vec<&RuleAttribute>, Vec<&RuleAttribute>) =
        (k.attributes.iter().filter(selector).collect(), ours.attributes.iter().filter(selector).collect());
    if ks.len() != os.len() || !os.iter().all(|a| ks.contains(a)) {
        return false;
    }
    let fwmask = |m: &RuleMessage| {
        m.attributes.iter().find_map(|a| if let RuleAttribute::FwMask(v) = a { Some(*v) } else { None })
    };
    let suppress = |m: &RuleMessage| {
        m.attributes.iter().find_map(|a| if let RuleAttribute::SuppressPrefixLen(v) = a { Some(*v) } else { None })
    };
    fwmask(k).unwrap_or(u32::MAX) == fwmask(ours).unwrap_or(u32::MAX)
        && suppress(k).unwrap_or(u32::MAX) == suppress(ours).unwrap_or(u32::MAX)
}

/// A rule's table: FRA_TABLE when present (the kernel always sends it), else the header's.
fn table(m: &RuleMessage) -> u32 {
    m.attributes
        .iter()
        .find_map(|a| if let RuleAttribute::Table(t) = a { Some(*t) } else { None })
        .unwrap_or(u32::from(m.header.table))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    fn route(text: &str) -> Route {
        let mut ctx = config::keyword::Ctx::default();
        let w = config::tree::build(&config::lexer::lex(text, 0, &mut Vec::new()), &mut Vec::new()).remove(0).words;
        config::ip::route(&mut ctx, &w).expect("a route")
    }

    fn rule(text: &str) -> Rule {
        let mut ctx = config::keyword::Ctx::default();
        let w = config::tree::build(&config::lexer::lex(text, 0, &mut Vec::new()), &mut Vec::new()).remove(0).words;
        config::rule::rule(&mut ctx, &w).expect("a rule")
    }

    fn kernel(dest: &str, prefix: u8) -> KernelRoute {
        KernelRoute {
            v6: dest.contains(':'),
            table: 254,
            dest: Some(dest.parse().unwrap()),
            prefix,
            metric: 0,
            tos: 0,
            oif: Some(7),
        }
    }

    /// Fixture table: the deleted route, the configured one, virtual or static → ours.
    #[test]
    fn routes_are_told_apart_as_keepalived_does() {
        let cases = [
            ("the same route", kernel("203.0.113.0", 24), "203.0.113.0/24 dev l0", true, true),
            ("another prefix", kernel("203.0.113.0", 25), "203.0.113.0/24 dev l0", true, false),
            (
                "another table",
                KernelRoute { table: 100, ..kernel("203.0.113.0", 24) },
                "203.0.113.0/24 dev l0",
                true,
                false,
            ),
            (
                "its table",
                KernelRoute { table: 100, ..kernel("203.0.113.0", 24) },
                "203.0.113.0/24 dev l0 table 100",
                true,
                true,
            ),
            (
                "another metric",
                KernelRoute { metric: 5, ..kernel("203.0.113.0", 24) },
                "203.0.113.0/24 dev l0",
                true,
                false,
            ),
            (
                "a static route's metric is not compared",
                KernelRoute { metric: 5, ..kernel("203.0.113.0", 24) },
                "203.0.113.0/24 dev l0",
                false,
                true,
            ),
            (
                "another device",
                KernelRoute { oif: Some(8), ..kernel("203.0.113.0", 24) },
                "203.0.113.0/24 dev l0",
                true,
                false,
            ),
            (
                "a static route's device is not compared",
                KernelRoute { oif: Some(8), ..kernel("203.0.113.0", 24) },
                "203.0.113.0/24 dev l0",
                false,
                true,
            ),
            (
                "no device to compare",
                KernelRoute { oif: Some(8), ..kernel("203.0.113.0", 24) },
                "203.0.113.0/24 via 192.0.2.1",
                true,
                true,
            ),
            ("another TOS", KernelRoute { tos: 4, ..kernel("203.0.113.0", 24) }, "203.0.113.0/24 dev l0", true, false),
            (
                "the default route",
                KernelRoute { dest: None, ..kernel("0.0.0.0", 0) },
                "default via 192.0.2.1",
                true,
                true,
            ),
            (
                "IPv6 without a metric: the kernel's 1024",
                KernelRoute { metric: 1024, ..kernel("2001:db8::", 64) },
                "2001:db8::/64 dev l0",
                true,
                false,
            ),
            (
                "IPv6 with its metric",
                KernelRoute { metric: 1024, ..kernel("2001:db8::", 64) },
                "2001:db8::/64 dev l0 metric 1024",
                true,
                true,
            ),
        ];
        for (name, k, text, virtual_route, want) in cases {
            let r = route(text);
            let oif = r.dev.is_some().then_some(7);
            assert_eq!(route_is(&k, &r, oif, virtual_route), want, "{name}");
        }
    }

    /// keepalived listens for a family's routes (rules) once a tracked virtual route (rule)
    /// or a static one with a `track_group` has that family.
    #[test]
    fn deletions_are_heard_as_keepalived_subscribes() {
        let of = |text: &str| {
            let l = crate::config::parse_str("t.conf", text);
            assert!(!l.has_errors(), "{}", l.render());
            let m = Monitor::of(&l.config);
            (m.v4_routes, m.v6_routes, m.v4_rules, m.v6_rules)
        };
        let vi = |body: &str| {
            format!(
                "vrrp_instance VI_1 {{\n interface l0\n virtual_router_id 51\n priority 100\n \
                 virtual_ipaddress {{\n  192.0.2.100/24\n }}\n{body}}}\n"
            )
        };
        assert_eq!(of(&vi("")), (false, false, false, false));
        assert_eq!(
            of(&format!("static_routes {{\n 203.0.113.0/24 dev l0\n}}\n{}", vi(""))),
            (false, false, false, false)
        );
        let track = "track_group TG {\n group {\n  VI_1\n }\n}\n";
        let statics = "static_routes {\n 2001:db8::/64 dev l0 track_group TG\n}\n";
        assert_eq!(of(&format!("{track}{statics}{}", vi(""))), (false, true, false, false));
        assert_eq!(of(&vi(" virtual_routes {\n  203.0.113.0/24 dev l0\n }\n")), (true, false, false, false));
        assert_eq!(of(&vi(" virtual_routes {\n  203.0.113.0/24 dev l0 no_track\n }\n")), (false, false, false, false));
        assert_eq!(
            of(&vi(" virtual_rules {\n  from 2001:db8::1 table 100 priority 100\n }\n")),
            (false, false, false, true)
        );
    }

    /// The kernel's copy of a rule carries what it adds (FRA_TABLE, FRA_PROTOCOL, an
    /// all-ones fwmask, suppress_prefixlength -1): still the same rule; any selector more or
    /// less, or another value, is another.
    #[test]
    fn rules_are_told_apart_as_keepalived_does() {
        let as_kernel = |r: &Rule| {
            let mut m = crate::netlink::rule_message(r);
            if !m.attributes.iter().any(|a| matches!(a, RuleAttribute::Table(_))) {
                m.attributes.push(RuleAttribute::Table(u32::from(m.header.table)));
            }
            if r.fwmark.is_some() && r.fwmask.is_none() {
                m.attributes.push(RuleAttribute::FwMask(u32::MAX));
            }
            m.attributes.push(RuleAttribute::SuppressPrefixLen(u32::MAX));
            m
        };
        let texts = [
            "from 192.0.2.50 table 100 priority 100",
            "from 192.0.2.50 table 1000 priority 100",
            "from 192.0.2.50 to 198.51.100.0/24 table 100 priority 100",
            "fwmark 7 table 100 priority 100",
            "fwmark 7/0xff table 100 priority 100",
            "from 192.0.2.50 iif l0 table 100 priority 100",
            "not from 192.0.2.50 table 100 priority 100",
            "from 192.0.2.50 goto 200 priority 100",
            "from 192.0.2.50 table 100 priority 101",
            "from 2001:db8::50 table 100 priority 100",
        ];
        let rules: Vec<Rule> = texts.iter().map(|t| rule(t)).collect();
        for (i, a) in rules.iter().enumerate() {
            for (j, b) in rules.iter().enumerate() {
                let ours = crate::netlink::rule_message(b);
                assert_eq!(rule_is(&as_kernel(a), &ours), i == j, "kernel `{}`, ours `{}`", texts[i], texts[j]);
            }
        }
    }
}
