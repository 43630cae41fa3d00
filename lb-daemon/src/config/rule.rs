//! `ip rule` syntax inside `static_rules` and `virtual_rules`: one rule per line, read as
//! keepalived 2.2.7's `alloc_rule` reads it (options in any order, one action), with its
//! checks. Where keepalived reports a problem and installs the rule anyway without the bad
//! option (a single `sport` port, a bad `protocol`), the rule would match more traffic than
//! written: that is an error here.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{
    diag::Span,
    ip::addr_prefix,
    keyword::Ctx,
    rt_names::{Names, parse_number as parse_u64},
    tree::{Stmt, Word},
};

/// keepalived numbers rules without a preference down from here, per family, in reading
/// order over `static_rules` and every `virtual_rules`.
pub const RULE_START_PRIORITY: u32 = 16384;

/// The routing protocol keepalived marks its routes and rules with (`proto keepalived`).
pub const RTPROT_KEEPALIVED: u8 = 18;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RuleAction {
    /// `table N` / `lookup N`.
    Table(u32),
    /// `goto PREFERENCE`.
    Goto(u32),
    Nop,
    Blackhole,
    Unreachable,
    Prohibit,
    /// `l3mdev`: the table of the VRF device the packet arrived on.
    L3mdev,
}

/// One policy routing rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub v6: bool,
    /// `from ADDR[/LEN]`; `all` / `any` / `default` is prefix 0.
    pub from: Option<(IpAddr, u8)>,
    pub to: Option<(IpAddr, u8)>,
    /// `not`.
    pub invert: bool,
    /// `preference` / `priority` / `order`, or keepalived's number when unset.
    pub priority: u32,
    pub tos: u8,
    pub fwmark: Option<u32>,
    pub fwmask: Option<u32>,
    /// `realms [FROM/]TO`: FROM in the high 16 bits.
    pub realms: Option<u32>,
    pub suppress_prefixlength: Option<u32>,
    pub suppress_ifgroup: Option<u32>,
    /// `dev` / `iif`.
    pub iif: Option<String>,
    pub oif: Option<String>,
    pub tunnel_id: Option<u64>,
    pub uidrange: Option<(u32, u32)>,
    /// The rule's protocol: keepalived's (18) unless `no_track`.
    pub protocol: Option<u8>,
    pub ipproto: Option<u8>,
    pub sport: Option<(u16, u16)>,
    pub dport: Option<(u16, u16)>,
    pub action: RuleAction,
    /// `track_group NAME` (static rules with an `iif` only): as `IpAddress::track_group`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track_group: Option<String>,
    /// `no_track`: a virtual rule's interfaces are not tracked (`tracking::placed_interfaces`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_track: bool,
    #[serde(skip)]
    pub span: Span,
}

pub fn rules(ctx: &mut Ctx, block: &[Stmt]) -> Vec<Rule> {
    block.iter().filter_map(|s| rule(ctx, &s.words)).collect()
}

/// `static_rules` lines: as `rules`, with `track_group` (see `ip::static_addresses`).
pub fn static_rules(ctx: &mut Ctx, block: &[Stmt], groups: &[String]) -> Vec<Rule> {
    block.iter().filter_map(|s| rule_in(ctx, &s.words, Some(groups))).collect()
}

/// A rule's family as far as the words have fixed it.
#[derive(Clone, Copy, PartialEq)]
enum Family {
    Unset,
    V4,
    V6,
}

/// One rule line. Errors are reported on `ctx` and give `None`.
pub fn rule(ctx: &mut Ctx, words: &[Word]) -> Option<Rule> {
    rule_in(ctx, words, None)
}

fn rule_in(ctx: &mut Ctx, words: &[Word], groups: Option<&[String]>) -> Option<Rule> {
    let first = words.first()?;
    let mut r = Rule {
        v6: false,
        from: None,
        to: None,
        invert: false,
        priority: 0,
        tos: 0,
        fwmark: None,
        fwmask: None,
        realms: None,
        suppress_prefixlength: None,
        suppress_ifgroup: None,
        iif: None,
        oif: None,
        tunnel_id: None,
        uidrange: None,
        protocol: None,
        ipproto: None,
        sport: None,
        dport: None,
        action: RuleAction::Nop,
        track_group: None,
        no_track: false,
        span: first.span,
    };
    let mut family = Family::Unset;
    let mut priority = None;
    let mut action: Option<RuleAction> = None;
    let mut table_option = false;
    let mut no_track = false;
    let mut set_family = |ctx: &mut Ctx, f: Family, span: Span| -> bool {
        if family == Family::Unset || family == f {
            family = f;
            return true;
        }
        ctx.error(span, "rule specification has mixed IPv4 and IPv6");
        false
    };
    let mut set_action = |ctx: &mut Ctx, a: RuleAction, span: Span| -> bool {
        if action.is_some() {
            ctx.error(
                span,
                "a rule takes one action: table/lookup, goto, nop, blackhole, unreachable, prohibit or l3mdev",
            );
            return false;
        }
        action = Some(a);
        true
    };
    let mut i = 0;
    while i < words.len() {
        let kw = &words[i];
        let mut next = |ctx: &mut Ctx, what: &str| -> Option<&Word> {
            i += 1;
            let w = words.get(i);
            if w.is_none() {
                ctx.error(kw.span, format!("`{}` needs {what}", kw.text));
            }
            w
        };
        match kw.text.as_str() {
            f @ ("inet" | "inet6") => {
                // keepalived 2.2.7 steps over the word after `inet`/`inet6` as well.
                if words.get(i + 1).is_some() {
                    ctx.error(
                        kw.span,
                        format!(
                            "keepalived 2.2.7 skips the word after `{f}`; put `{f}` last on the line (or leave it \
                             out: the addresses give the family)"
                        ),
                    );
                    return None;
                }
                if !set_family(ctx, if f == "inet6" { Family::V6 } else { Family::V4 }, kw.span) {
                    return None;
                }
            }
            w @ ("from" | "to") => {
                let a = next(ctx, "an address")?;
                let (addr, len) = if matches!(a.text.as_str(), "all" | "any" | "default") {
                    (None, 0)
                } else {
                    let (addr, len) = addr_prefix(ctx, a)?;
                    if !set_family(ctx, if addr.is_ipv6() { Family::V6 } else { Family::V4 }, a.span) {
                        return None;
                    }
                    (Some(addr), len)
                };
                let v = addr.map(|a| (a, len));
                // The family of `all` is settled below.
                let slot = if w == "from" { &mut r.from } else { &mut r.to };
                *slot = Some(v.unwrap_or((IpAddr::from([0u8; 4]), 0)));
            }
            "table" | "lookup" => {
                let w = next(ctx, "a table")?;
                let t = table(ctx, w)?;
                if !set_action(ctx, RuleAction::Table(t), kw.span) {
                    return None;
                }
            }
            "not" => r.invert = true,
            "preference" | "order" | "priority" => {
                let w = next(ctx, "a preference")?;
                priority = Some(number(ctx, w)?);
            }
            "tos" | "dsfield" => {
                let w = next(ctx, "a TOS value")?;
                r.tos = match ctx.rt.find(Names::Dsfield, &w.text) {
                    Some(v) => v as u8,
                    None => {
                        ctx.error(
                            w.span,
                            format!(
                                "TOS value {} is invalid (a number, or a name in /etc/iproute2/rt_dsfield)",
                                w.text
                            ),
                        );
                        return None;
                    }
                };
            }
            "fwmark" => {
                let w = next(ctx, "a mark")?;
                let (mark, mask) = match w.text.split_once('/') {
                    Some((m, k)) => (m, Some(k)),
                    None => (w.text.as_str(), None),
                };
                let bad = |ctx: &mut Ctx| ctx.error(w.span, format!("Invalid rule fwmark {} specified", w.text));
                let Some(m) = parse_u32(mark) else {
                    bad(ctx);
                    return None;
                };
                r.fwmark = Some(m);
                if let Some(k) = mask {
                    let Some(k) = parse_u32(k) else {
                        bad(ctx);
                        return None;
                    };
                    r.fwmask = Some(k);
                }
            }
            "realms" => {
                let w = next(ctx, "realms")?;
                // keepalived's `get_realms`: [FROM/]TO, each a number or an rt_realms name.
                let parts: Option<Vec<u32>> = w.text.splitn(2, '/').map(|p| ctx.rt.find(Names::Realms, p)).collect();
                r.realms = match parts.as_deref() {
                    Some([to]) => Some(*to),
                    Some([from, to]) => Some((*from << 16) | *to),
                    _ => {
                        ctx.error(
                            w.span,
                            format!(
                                "invalid realms {} for rule ([FROM/]TO: numbers or names in /etc/iproute2/rt_realms)",
                                w.text
                            ),
                        );
                        return None;
                    }
                };
                table_option = true;
                if !set_family(ctx, Family::V4, w.span) {
                    ctx.error(w.span, "realms is only valid for IPv4");
                    return None;
                }
            }
            "suppress_prefixlength" | "sup_pl" => {
                let w = next(ctx, "a prefix length")?;
                let v = number(ctx, w)?;
                if v > i32::MAX as u32 {
                    ctx.error(w.span, format!("Invalid suppress_prefixlength {}", w.text));
                    return None;
                }
                r.suppress_prefixlength = Some(v);
                table_option = true;
            }
            "suppress_ifgroup" | "sup_group" => {
                let w = next(ctx, "an interface group")?;
                let Some(g) = ctx.rt.find(Names::Groups, &w.text) else {
                    ctx.error(
                        w.span,
                        format!("suppress_group {} is invalid (a number, or a name in /etc/iproute2/group)", w.text),
                    );
                    return None;
                };
                r.suppress_ifgroup = Some(g);
                table_option = true;
            }
            "dev" | "iif" => r.iif = Some(next(ctx, "an interface name")?.text.clone()),
            "oif" => r.oif = Some(next(ctx, "an interface name")?.text.clone()),
            "tunnel-id" => {
                let w = next(ctx, "a tunnel id")?;
                r.tunnel_id = Some(parse_u64(&w.text).or_else(|| {
                    ctx.error(w.span, format!("Invalid tunnel-id {}", w.text));
                    None
                })?);
            }
            "uidrange" => {
                let w = next(ctx, "a uid range")?;
                let range = w.text.split_once('-').and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
                r.uidrange = Some(range.or_else(|| {
                    ctx.error(w.span, format!("Invalid uidrange {} (FIRST-LAST)", w.text));
                    None
                })?);
            }
            "l3mdev" => {
                if !set_action(ctx, RuleAction::L3mdev, kw.span) {
                    return None;
                }
            }
            "protocol" => {
                let w = next(ctx, "a protocol number")?;
                match number(ctx, w)? {
                    v @ 0..=255 => r.protocol = Some(v as u8),
                    _ => {
                        ctx.error(w.span, format!("Invalid protocol {}", w.text));
                        return None;
                    }
                }
            }
            "ipproto" => {
                let w = next(ctx, "an IP protocol")?;
                r.ipproto = Some(ip_proto(&w.text).or_else(|| {
                    ctx.error(w.span, format!("Invalid ipproto {}", w.text));
                    None
                })?);
            }
            p @ ("sport" | "dport") => {
                let w = next(ctx, "a port range")?;
                let range = w.text.split_once('-').and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
                let Some(range) = range else {
                    let hint = if w.text.parse::<u16>().is_ok() {
                        format!(
                            "; keepalived 2.2.7 drops a single port (the rule then matches every port): write {0}-{0}",
                            w.text
                        )
                    } else {
                        String::new()
                    };
                    ctx.error(w.span, format!("invalid {p} range {}{hint}", w.text));
                    return None;
                };
                if p == "sport" { r.sport = Some(range) } else { r.dport = Some(range) }
            }
            "no_track" => no_track = true,
            "track_group" => {
                i += 1;
                super::ip::track_group(ctx, kw, words.get(i), groups, &mut r.track_group);
            }
            other => {
                let (name, span) = if other == "type" {
                    let w = next(ctx, "a rule type")?;
                    (w.text.as_str(), w.span)
                } else {
                    (other, kw.span)
                };
                let a = match name {
                    "goto" => {
                        let w = next(ctx, "a target preference")?;
                        RuleAction::Goto(number(ctx, w)?)
                    }
                    "nop" => RuleAction::Nop,
                    "blackhole" => RuleAction::Blackhole,
                    "unreachable" => RuleAction::Unreachable,
                    "prohibit" => RuleAction::Prohibit,
                    "unicast" | "local" | "broadcast" | "anycast" | "multicast" | "throw" | "nat" | "xresolve" => {
                        ctx.error(span, format!("Invalid rule action {name}"));
                        return None;
                    }
                    _ => {
                        ctx.error(span, format!("Unknown rule option {name}"));
                        return None;
                    }
                };
                if !set_action(ctx, a, span) {
                    return None;
                }
            }
        }
        i += 1;
    }
    let Some(action) = action else {
        ctx.error(first.span, "No action specified for rule (table, goto, nop, blackhole, unreachable or prohibit)");
        return None;
    };
    if let RuleAction::Goto(target) = action {
        match priority {
            Some(p) if p >= target => {
                ctx.error(first.span, format!("Invalid rule - preference {p} >= goto target {target}"));
                return None;
            }
            None => {
                ctx.error(first.span, format!("Invalid rule - goto target {target} specified without preference"));
                return None;
            }
            Some(_) => {}
        }
    }
    if table_option && !matches!(action, RuleAction::Table(_)) {
        ctx.error(first.span, "suppress_prefixlength / suppress_ifgroup / realms need a table action");
        return None;
    }
    if r.track_group.is_some() && r.iif.is_none() {
        ctx.error(first.span, "Static rule cannot have track_group if dev/iif not specified");
        r.track_group = None;
    }
    if no_track && r.track_group.take().is_some() {
        ctx.warn(first.span, "Static rule has both track_group and no_track set - not tracking");
    }
    if !no_track {
        if r.protocol.is_some_and(|p| p != RTPROT_KEEPALIVED) {
            ctx.warn(
                first.span,
                format!(
                    "a tracked rule has protocol keepalived ({RTPROT_KEEPALIVED}); `protocol` reset (add no_track to keep it)"
                ),
            );
        }
        r.protocol = Some(RTPROT_KEEPALIVED);
    }
    r.action = action;
    r.no_track = no_track;
    r.v6 = family == Family::V6;
    for a in [&mut r.from, &mut r.to].into_iter().flatten() {
        if r.v6 && a.1 == 0 && a.0.is_ipv4() {
            a.0 = IpAddr::from([0u16; 8]);
        }
    }
    match priority {
        Some(p) => r.priority = p,
        None => {
            let n = &mut ctx.rules_unnumbered[usize::from(r.v6)];
            r.priority = RULE_START_PRIORITY.saturating_sub(*n);
            *n += 1;
            ctx.warn(
                first.span,
                format!(
                    "Rule has no preference specified - setting to {}. This is probably not what you want.",
                    r.priority
                ),
            );
        }
    }
    Some(r)
}

/// `table` / `lookup`: a number or a name from iproute2's rt_tables (keepalived's
/// `find_rttables_table`).
fn table(ctx: &mut Ctx, w: &Word) -> Option<u32> {
    let Some(t) = ctx.rt.find(Names::Tables, &w.text) else {
        ctx.error(
            w.span,
            format!("Routing table {} not found for rule (a number, or a name in /etc/iproute2/rt_tables)", w.text),
        );
        return None;
    };
    if t == 0 {
        ctx.error(w.span, "Table 0 is not valid");
        return None;
    }
    Some(t)
}

fn number(ctx: &mut Ctx, w: &Word) -> Option<u32> {
    parse_u32(&w.text).or_else(|| {
        ctx.error(w.span, format!("`{}` is not a number", w.text));
        None
    })
}

/// strtoul with base 0: decimal, `0x` hex or `0` octal.
fn parse_u32(s: &str) -> Option<u32> {
    parse_u64(s)?.try_into().ok()
}

/// `ipproto`: a number or a name from /etc/protocols that rules are written with.
fn ip_proto(s: &str) -> Option<u8> {
    Some(match s {
        "icmp" => 1,
        "igmp" => 2,
        "ipip" | "ipencap" => 4,
        "tcp" => 6,
        "udp" => 17,
        "ipv6" => 41,
        "gre" => 47,
        "esp" => 50,
        "ah" => 51,
        "ipv6-icmp" | "icmpv6" => 58,
        "vrrp" => 112,
        "sctp" => 132,
        _ => return parse_u32(s)?.try_into().ok(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{lexer::lex, tree::build};

    fn words(src: &str) -> Vec<Word> {
        build(&lex(src, 0, &mut Vec::new()), &mut Vec::new()).remove(0).words
    }

    fn one(text: &str) -> (Option<Rule>, Ctx) {
        let mut ctx = Ctx::default();
        let r = rule(&mut ctx, &words(text));
        (r, ctx)
    }

    #[test]
    fn options_in_any_order() {
        let (r, ctx) =
            one("priority 100 from 192.0.2.0/24 to 198.51.100.0/24 not fwmark 0x10/0xff iif eth0 lookup main");
        assert!(ctx.diags.is_empty(), "{:?}", ctx.diags);
        let r = r.unwrap();
        assert_eq!(r.from, Some(("192.0.2.0".parse().unwrap(), 24)));
        assert_eq!(r.to, Some(("198.51.100.0".parse().unwrap(), 24)));
        assert_eq!((r.priority, r.invert, r.fwmark, r.fwmask), (100, true, Some(16), Some(255)));
        assert_eq!((r.iif.as_deref(), &r.action, r.v6), (Some("eth0"), &RuleAction::Table(254), false));
        assert_eq!(r.protocol, Some(RTPROT_KEEPALIVED));
        let (r, _) = one("from 2001:db8::/64 dport 80-90 ipproto tcp uidrange 1000-2000 type unreachable priority 9");
        let r = r.unwrap();
        assert!(r.v6);
        assert_eq!((r.dport, r.ipproto, r.uidrange), (Some((80, 90)), Some(6), Some((1000, 2000))));
        assert_eq!(r.action, RuleAction::Unreachable);
        let (r, _) = one("from all table 100 realms 2/3 priority 1 no_track protocol 4");
        let r = r.unwrap();
        assert_eq!((r.realms, r.protocol, r.from.map(|f| f.1)), (Some((2 << 16) | 3), Some(4), Some(0)));
        let (r, _) = one("to 2001:db8::/64 goto 500 priority 10 inet6");
        assert_eq!(r.unwrap().action, RuleAction::Goto(500));
    }

    /// keepalived's numbering: per family, down from 16384 in reading order, with its warning.
    #[test]
    fn rules_without_a_preference_are_numbered_down_per_family() {
        let mut ctx = Ctx::default();
        let p: Vec<u32> = ["from 192.0.2.1 table 1", "from 2001:db8::1 table 1", "from 192.0.2.2 table 1"]
            .iter()
            .map(|t| rule(&mut ctx, &words(t)).unwrap().priority)
            .collect();
        assert_eq!(p, [16384, 16384, 16383]);
        assert_eq!(ctx.diags.len(), 3);
        assert!(ctx.diags.iter().all(|d| d.severity == crate::config::Severity::Warning));
        assert!(ctx.diags[2].message.contains("setting to 16383"), "{:?}", ctx.diags);
    }

    /// Tables, TOS values, realms and interface groups by their iproute2 names, as keepalived's
    /// `find_rttables_*` read them.
    #[test]
    fn names_come_from_iproute2_s_files() {
        let names = crate::config::rt_names::TempNames::new(&[
            ("rt_tables", "100 web\n"),
            ("rt_dsfield", "0x10 lowdelay\n"),
            ("rt_realms", "3 east\n4 west\n"),
            ("group", "7 uplinks\n"),
        ]);
        let mut ctx = Ctx { rt: crate::config::rt_names::RtNames::new(&names.0), ..Ctx::default() };
        let r = rule(&mut ctx, &words("from 192.0.2.1 tos lowdelay realms east/west lookup web priority 5"));
        assert!(ctx.diags.is_empty(), "{:?}", ctx.diags);
        let r = r.unwrap();
        assert_eq!((r.tos, r.realms, r.action), (0x10, Some((3 << 16) | 4), RuleAction::Table(100)));
        let r = rule(&mut ctx, &words("from 192.0.2.1 table main suppress_ifgroup uplinks priority 6")).unwrap();
        assert_eq!((r.action, r.suppress_ifgroup), (RuleAction::Table(254), Some(7)));
        for (text, want) in [
            ("from 192.0.2.1 table nosuch priority 7", "Routing table nosuch not found"),
            ("from 192.0.2.1 tos nosuch table 1 priority 7", "TOS value nosuch is invalid"),
            ("from 192.0.2.1 realms east/nosuch table 1 priority 7", "invalid realms east/nosuch"),
        ] {
            let mut ctx = Ctx { rt: crate::config::rt_names::RtNames::new(&names.0), ..Ctx::default() };
            assert!(rule(&mut ctx, &words(text)).is_none(), "{text}");
            assert!(ctx.diags.iter().any(|d| d.message.contains(want)), "{text}: {:?}", ctx.diags);
        }
    }

    /// What keepalived 2.2.7 rejects, and what it would install with an option dropped.
    #[test]
    fn rules_keepalived_rejects_or_would_widen_are_errors() {
        for (text, want) in [
            ("from 192.0.2.1", "No action"),
            ("from 192.0.2.1 table 1 blackhole priority 3", "one action"),
            ("from 192.0.2.1 goto 5", "without preference"),
            ("from 192.0.2.1 goto 5 priority 5", "preference 5 >= goto target 5"),
            ("from 192.0.2.1 to 2001:db8::1 table 1 priority 2", "mixed IPv4 and IPv6"),
            ("from 192.0.2.1 table 0 priority 2", "Table 0"),
            ("from 192.0.2.1 table mytable priority 2", "Routing table mytable not found for rule"),
            ("inet6 from 2001:db8::1 table 1 priority 2", "skips the word after `inet6`"),
            ("from 192.0.2.1 nop realms 3 priority 2", "need a table action"),
            ("from 2001:db8::1 table 1 realms 3 priority 2", "mixed IPv4 and IPv6"),
            ("from 192.0.2.1 table 1 dport 80 priority 2", "write 80-80"),
            ("from 192.0.2.1 table 1 fwmark 1/x priority 2", "fwmark"),
            ("from 192.0.2.1 unicast priority 2", "Invalid rule action"),
            ("from 192.0.2.1 frob priority 2", "Unknown rule option frob"),
        ] {
            let (r, ctx) = one(text);
            assert!(r.is_none(), "{text}: accepted");
            assert!(ctx.diags.iter().any(|d| d.message.contains(want)), "{text}: {:?}", ctx.diags);
        }
    }
}
