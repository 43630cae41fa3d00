//! `ip addr` / `ip route` syntax inside `static_ipaddress`, `virtual_ipaddress`,
//! `static_routes` and `virtual_routes` blocks: one address or route per line.

use std::net::{IpAddr, Ipv4Addr};

use super::{
    diag::Span,
    keyword::Ctx,
    model::{
        IFA_F_HOMEADDRESS, IFA_F_MANAGETEMPADDR, IFA_F_MCAUTOJOIN, IFA_F_NOPREFIXROUTE, IpAddress, NextHop, Route,
        RouteMode, RouteType, Scope,
    },
    rt_names::Names,
    tree::{Stmt, Word},
};

/// `ADDR[/LEN]`: the address and its prefix (full length when absent).
pub fn addr_prefix(ctx: &mut Ctx, w: &Word) -> Option<(IpAddr, u8)> {
    let (a, len) = match w.text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (w.text.as_str(), None),
    };
    let Ok(addr) = a.parse::<IpAddr>() else {
        ctx.error(w.span, format!("`{a}` is not an IPv4 or IPv6 address"));
        return None;
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match len {
        None => max,
        Some(l) => match l.parse::<u8>() {
            Ok(p) if p <= max => p,
            // IPv4 may give a dotted netmask.
            _ => match l.parse::<Ipv4Addr>().ok().filter(|_| addr.is_ipv4()).and_then(netmask_len) {
                Some(p) => p,
                None => {
                    ctx.error(w.span, format!("`/{l}` is not a prefix length 0-{max}"));
                    return None;
                }
            },
        },
    };
    Some((addr, prefix))
}

/// The prefix length of a contiguous netmask (`255.255.255.0` → 24).
pub fn netmask_len(mask: Ipv4Addr) -> Option<u8> {
    let m = u32::from(mask);
    let len = m.leading_ones();
    (m.checked_shl(len).unwrap_or(0) == 0).then_some(len as u8)
}

/// `scope`: a number or a name from iproute2's rt_scopes (keepalived's `find_rttables_scope`),
/// one of the five scopes the kernel defines.
fn scope(ctx: &mut Ctx, w: Option<&Word>, kw: &Word) -> Option<Scope> {
    let Some(w) = w else {
        ctx.error(kw.span, "`scope` needs global, site, link, host or nowhere");
        return None;
    };
    Some(match ctx.rt.find(Names::Scopes, &w.text) {
        Some(0) => Scope::Global,
        Some(200) => Scope::Site,
        Some(253) => Scope::Link,
        Some(254) => Scope::Host,
        Some(255) => Scope::Nowhere,
        found => {
            let why = if found.is_some() {
                "is not one of"
            } else {
                "is not a number or a name in /etc/iproute2/rt_scopes, nor"
            };
            ctx.error(
                w.span,
                format!("scope `{}` {why} global (0), site (200), link (253), host (254), nowhere (255)", w.text),
            );
            return None;
        }
    })
}

/// Parses every line of `block` as an address.
pub fn addresses(ctx: &mut Ctx, block: &[Stmt]) -> Vec<IpAddress> {
    block.iter().filter_map(|s| address(ctx, &s.words)).collect()
}

/// `static_ipaddress` lines: as `addresses`, and `track_group` may name one of `groups` (the
/// `track_group` blocks before this one, as keepalived looks them up while it reads).
pub fn static_addresses(ctx: &mut Ctx, block: &[Stmt], groups: &[String]) -> Vec<IpAddress> {
    block.iter().filter_map(|s| address_in(ctx, &s.words, Some(groups))).collect()
}

pub fn address(ctx: &mut Ctx, words: &[Word]) -> Option<IpAddress> {
    address_in(ctx, words, None)
}

/// The `track_group` option of a static address, route or rule: `groups` are the groups
/// defined so far (None: not a static one, where keepalived knows no such option).
pub fn track_group(
    ctx: &mut Ctx,
    kw: &Word,
    value: Option<&Word>,
    groups: Option<&[String]>,
    set: &mut Option<String>,
) {
    let Some(groups) = groups else {
        ctx.error(kw.span, "track_group is only for static addresses, routes and rules (keepalived: unknown entry)");
        return;
    };
    let Some(w) = value else {
        ctx.error(kw.span, "No track_group parameter specified");
        return;
    };
    if set.is_some() {
        ctx.error(w.span, format!("track_group {} is a duplicate", w.text));
    } else if !groups.contains(&w.text) {
        ctx.error(w.span, format!("track_group {} not found (a track_group block must come before its use)", w.text));
    } else {
        *set = Some(w.text.clone());
    }
}

fn address_in(ctx: &mut Ctx, words: &[Word], groups: Option<&[String]>) -> Option<IpAddress> {
    let first = words.first()?;
    let (addr, prefix) = addr_prefix(ctx, first)?;
    let mut a = IpAddress {
        addr,
        prefix,
        broadcast: None,
        dev: None,
        scope: None,
        label: None,
        peer: None,
        preferred_lft: None,
        flags: 0,
        dad: false,
        no_track: false,
        track_group: None,
        span: first.span,
    };
    let mut brd = None;
    let mut it = words[1..].iter();
    while let Some(kw) = it.next() {
        let mut val = |ctx: &mut Ctx, what: &str| value(ctx, &mut it, kw, what);
        match kw.text.as_str() {
            "dev" => a.dev = val(ctx, "an interface name").map(|w| w.text.clone()),
            "label" => a.label = val(ctx, "a label").map(|w| w.text.clone()),
            "brd" | "broadcast" => {
                brd = Some(kw.span);
                if let Some(w) = val(ctx, "a broadcast address") {
                    match (w.text.as_str(), addr) {
                        // keepalived's `+` / `-`: the prefix's last / first address.
                        ("+" | "-", IpAddr::V4(v4)) if prefix <= 30 => {
                            let host = u32::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
                            let b = if w.text == "+" { u32::from(v4) | host } else { u32::from(v4) & !host };
                            a.broadcast = Some(Ipv4Addr::from(b));
                        }
                        ("+" | "-", IpAddr::V4(_)) => ctx.warn(
                            w.span,
                            format!("Address prefix length {prefix} too long for broadcast; added without one (as keepalived)"),
                        ),
                        (t, IpAddr::V4(_)) => match t.parse::<Ipv4Addr>() {
                            Ok(b) => a.broadcast = Some(b),
                            Err(_) => ctx.error(w.span, format!("`{t}` is not an IPv4 broadcast address")),
                        },
                        _ => ctx.error(w.span, format!("`{}` is not an IPv4 broadcast address", w.text)),
                    }
                }
            }
            "scope" => {
                let w = it.next();
                a.scope = scope(ctx, w, kw);
            }
            "home" => a.flags |= IFA_F_HOMEADDRESS,
            "mngtmpaddr" => a.flags |= IFA_F_MANAGETEMPADDR,
            "noprefixroute" => a.flags |= IFA_F_NOPREFIXROUTE,
            "autojoin" => a.flags |= IFA_F_MCAUTOJOIN,
            "-nodad" => a.dad = true,
            "no_track" => a.no_track = true,
            "nodad" => ctx.warn(kw.span, "`nodad` is not a keepalived 2.2.7 address option (IPv6 addresses are added without duplicate address detection unless `-nodad`); ignored".to_string()),
            "peer" => {
                if let Some(w) = val(ctx, "a peer address") {
                    match w.text.parse::<IpAddr>() {
                        // keepalived parses it without a prefix (`parse_ipaddress(.., false)`).
                        Err(_) => ctx.error(w.span, format!("invalid peer address {} (an address, without a prefix length)", w.text)),
                        Ok(p) if p.is_ipv4() != addr.is_ipv4() => {
                            ctx.error(w.span, format!("peer address {p} does not match the address family of {addr}"))
                        }
                        Ok(_) if a.peer.is_some() => {
                            ctx.error(w.span, format!("peer {} - another peer has already been specified", w.text))
                        }
                        Ok(p) => a.peer = Some(p),
                    }
                }
            }
            "preferred_lft" => {
                if let Some(w) = val(ctx, "a lifetime (seconds or forever)") {
                    match w.text.as_str() {
                        "forever" => a.preferred_lft = Some(u32::MAX),
                        t => match t.parse::<u32>() {
                            Ok(v) => a.preferred_lft = Some(v),
                            Err(_) => ctx.error(w.span, format!("preferred_lft {t} is invalid")),
                        },
                    }
                }
            }
            "track_group" => {
                let w = it.next();
                track_group(ctx, kw, w, groups, &mut a.track_group);
            }
            // A virtual address's own VMAC (keepalived's `use_vmac_addr` for one address).
            "use_vmac" if groups.is_none() => ctx.error(
                kw.span,
                "address option `use_vmac` (a VMAC of this address's own interface, as keepalived's \
                 use_vmac_addr) is not implemented; give that interface an instance of its own with use_vmac"
                    .to_string(),
            ),
            // keepalived 2.2.7 knows neither `valid_lft` nor `metric` for an address.
            _ => {
                ctx.error(kw.span, format!("unknown address option `{}` (expected dev, brd, scope or label)", kw.text))
            }
        }
    }
    // keepalived's checks once the line is read (`alloc_ipaddress`): a point-to-point
    // address is a host address with no broadcast.
    if a.peer.is_some() {
        let host = if addr.is_ipv4() { 32 } else { 128 };
        if prefix != host {
            ctx.error(
                first.span,
                format!(
                    "cannot specify address prefix /{prefix} when specifying a peer address (the address is /{host})"
                ),
            );
        }
        if let Some(span) = brd {
            ctx.error(span, "cannot specify broadcast and peer addresses".to_string());
        }
        a.prefix = host;
        a.broadcast = None;
    }
    Some(a)
}

pub fn routes(ctx: &mut Ctx, block: &[Stmt]) -> Vec<Route> {
    block.iter().filter_map(|s| route(ctx, &s.words)).collect()
}

/// `static_routes` lines: as `routes`, with `track_group` (see `static_addresses`).
pub fn static_routes(ctx: &mut Ctx, block: &[Stmt], groups: &[String]) -> Vec<Route> {
    block.iter().filter_map(|s| route_in(ctx, &s.words, Some(groups))).collect()
}

/// One route, read as keepalived 2.2.7's `alloc_route`: options and the destination in any
/// order (the older `src ADDRESS DEST via ...` among them). A word that is no option is the
/// destination, as `DEST`, `to DEST` or `TYPE DEST`; a later one replaces an earlier one.
/// `or` (a second next hop) is refused: keepalived deprecates it and its `-t` fails.
pub fn route(ctx: &mut Ctx, words: &[Word]) -> Option<Route> {
    route_in(ctx, words, None)
}

fn route_in(ctx: &mut Ctx, words: &[Word], groups: Option<&[String]>) -> Option<Route> {
    let first = words.first()?;
    let mut r = Route {
        kind: RouteType::Unicast,
        dest: IpAddr::from([0u8; 4]),
        prefix: 0,
        via: None,
        dev: None,
        src: None,
        table: None,
        metric: None,
        scope: None,
        protocol: None,
        onlink: false,
        mode: crate::config::RouteMode::Prepend,
        tos: None,
        realms: None,
        from: None,
        expires: None,
        pref: None,
        metrics: crate::config::RouteMetrics::default(),
        no_track: false,
        nexthops: Vec::new(),
        track_group: None,
        span: first.span,
    };
    let mut has_dest = false;
    let mut no_track = false;
    let mut family = RouteFamily(None);
    let mut is_default = false;
    let mut it = words.iter().peekable();
    while let Some(kw) = it.next() {
        let mut val = |ctx: &mut Ctx, what: &str| value(ctx, &mut it, kw, what);
        match kw.text.as_str() {
            "via" | "gw" => {
                if kw.text == "gw" {
                    // keepalived installs it as `via` but reports it (its -t fails).
                    ctx.warn(kw.span, "`gw` is deprecated in keepalived 2.2.7 (its -t reports it); write `via`");
                }
                // `via [inet|inet6] ADDR`.
                let named = it.next_if(|w| w.text == "inet" || w.text == "inet6").map(|w| w.text == "inet6");
                // An unreadable address is reported and the line read on, for its other errors.
                let Some(v) = value(ctx, &mut it, kw, "a gateway address").and_then(|w| ip(ctx, w)) else {
                    continue;
                };
                if named.is_some_and(|v6| v6 != v.is_ipv6()) {
                    ctx.error(kw.span, MIXED);
                    return None;
                }
                family.settle(ctx, kw.span, v.is_ipv6(), || MIXED.into())?;
                r.via = Some(v);
            }
            "src" => {
                let Some(v) = val(ctx, "a source address").and_then(|w| ip(ctx, w)) else { continue };
                family.settle(ctx, kw.span, v.is_ipv6(), || MIXED.into())?;
                r.src = Some(v);
            }
            "inet" | "inet6" => {
                let v6 = kw.text == "inet6";
                let other = if v6 { "IPv4" } else { "IPv6" };
                family.settle(ctx, kw.span, v6, || format!("{} specified for {other} route", kw.text))?;
            }
            "dev" | "oif" => r.dev = val(ctx, "an interface name").map(|w| w.text.clone()),
            "table" => {
                r.table = val(ctx, "a table").and_then(|w| {
                    let t = ctx.rt.find(Names::Tables, &w.text);
                    if t.is_none() {
                        ctx.error(
                            w.span,
                            format!(
                                "Routing table {} not found for route (a number, or a name in /etc/iproute2/rt_tables)",
                                w.text
                            ),
                        );
                    }
                    t
                })
            }
            "metric" | "preference" | "priority" => r.metric = val(ctx, "a metric").and_then(|w| num(ctx, w)),
            "proto" | "protocol" => {
                r.protocol = val(ctx, "a protocol").and_then(|w| {
                    let p = ctx.rt.find(Names::Protos, &w.text).map(|p| p as u8);
                    if p.is_none() {
                        ctx.error(
                        w.span,
                        format!(
                            "Protocol {} not found or invalid for route (0-255, or a name in /etc/iproute2/rt_protos)",
                            w.text
                        ),
                    );
                    }
                    p
                })
            }
            "scope" => {
                let w = it.next();
                r.scope = scope(ctx, w, kw);
            }
            "add" => r.mode = RouteMode::Add,
            "append" => r.mode = RouteMode::Append,
            "prepend" => r.mode = RouteMode::Prepend,
            "tos" | "dsfield" => {
                let w = val(ctx, "a TOS value")?;
                let Some(t) = ctx.rt.find(Names::Dsfield, &w.text) else {
                    ctx.error(
                        w.span,
                        format!("TOS value {} is invalid (a number, or a name in /etc/iproute2/rt_dsfield)", w.text),
                    );
                    return None;
                };
                r.tos = Some(t as u8);
            }
            "realms" => {
                let w = val(ctx, "realms")?;
                let parts: Option<Vec<u32>> = w.text.splitn(2, '/').map(|p| ctx.rt.find(Names::Realms, p)).collect();
                r.realms = match parts.as_deref() {
                    Some([to]) => Some(*to),
                    Some([from, to]) => Some((*from << 16) | *to),
                    _ => {
                        ctx.error(w.span, format!("Invalid realms {} for route", w.text));
                        return None;
                    }
                };
                family.settle(ctx, kw.span, false, || "realms are only valid for IPv4".into())?;
            }
            "mtu" | "advmss" | "reordering" | "cwnd" | "ssthresh" | "window" | "initcwnd" | "initrwnd" | "hoplimit"
            | "quickack" | "fastopen_no_cookie" => {
                let name = kw.text.as_str();
                let mut w = val(ctx, "a value")?;
                // keepalived reads `lock` before the value of these (ip route's syntax).
                let lockable = matches!(name, "mtu" | "advmss" | "reordering" | "cwnd" | "ssthresh");
                if lockable && w.text == "lock" {
                    r.metrics.lock |= 1 << rtax(name);
                    w = val(ctx, "a value")?;
                }
                let max = match name {
                    "hoplimit" => 255,
                    "quickack" | "fastopen_no_cookie" => 1,
                    _ => u32::MAX,
                };
                // keepalived's get_u32: base 10 (`010` is ten, `0x10` an error).
                let Some(v) = w.text.parse::<u32>().ok().filter(|v| *v <= max) else {
                    ctx.error(w.span, format!("Invalid {name} {} specified for route (0-{max})", w.text));
                    return None;
                };
                let m = &mut r.metrics;
                match name {
                    "mtu" => m.mtu = Some(v),
                    "advmss" => m.advmss = Some(v),
                    "reordering" => m.reordering = Some(v),
                    "cwnd" => m.cwnd = Some(v),
                    "ssthresh" => m.ssthresh = Some(v),
                    "window" => m.window = Some(v),
                    "initcwnd" => m.initcwnd = Some(v),
                    "initrwnd" => m.initrwnd = Some(v),
                    "hoplimit" => m.hoplimit = Some(v as u8),
                    "quickack" => m.quickack = Some(v),
                    _ => m.fastopen_no_cookie = Some(v),
                }
            }
            "features" => {
                let w = val(ctx, "a feature")?;
                if w.text == "ecn" {
                    r.metrics.features_ecn = true;
                } else {
                    ctx.error(w.span, format!("feature {} not supported (ecn is the only one)", w.text));
                    return None;
                }
            }
            "congctl" => {
                let mut w = val(ctx, "a congestion control algorithm")?;
                if w.text == "lock" {
                    r.metrics.lock |= 1 << rtax("congctl");
                    w = val(ctx, "a congestion control algorithm")?;
                }
                r.metrics.congctl = Some(w.text.clone());
            }
            "rtt" | "rttvar" | "rto_min" => {
                let name = kw.text.as_str();
                let mut w = val(ctx, "a time")?;
                if w.text == "lock" {
                    r.metrics.lock |= 1 << rtax(name);
                    w = val(ctx, "a time")?;
                }
                let mult = match name {
                    "rtt" => 8,
                    "rttvar" => 4,
                    _ => 1,
                };
                let Some(v) = time_rtt(&w.text, mult) else {
                    ctx.error(w.span, format!("Invalid {name} {} for route", w.text));
                    return None;
                };
                let m = &mut r.metrics;
                *match name {
                    "rtt" => &mut m.rtt,
                    "rttvar" => &mut m.rttvar,
                    _ => &mut m.rto_min,
                } = Some(v);
            }
            "track_group" => {
                let w = it.next();
                track_group(ctx, kw, w, groups, &mut r.track_group);
            }
            "from" => {
                let w = val(ctx, "a source prefix")?;
                let (a, len) = addr_prefix(ctx, w)?;
                if a.is_ipv4() {
                    ctx.error(w.span, format!("route from address only supported with IPv6 ({})", w.text));
                    return None;
                }
                family.settle(ctx, kw.span, true, || MIXED.into())?;
                r.from = Some((a, len));
            }
            "expires" => {
                family.settle(ctx, kw.span, true, || "expires is only valid for IPv6".into())?;
                let w = val(ctx, "a time in seconds")?;
                let Ok(v) = w.text.parse::<u32>() else {
                    ctx.error(w.span, format!("Invalid expires time {} specified for route", w.text));
                    return None;
                };
                r.expires = Some(v);
            }
            "pref" => {
                family.settle(ctx, kw.span, true, || "pref is only valid for IPv6".into())?;
                let w = val(ctx, "low, medium, high or a number")?;
                r.pref = Some(match w.text.as_str() {
                    // RFC 4191's two-bit values, as ICMPV6_ROUTER_PREF_*.
                    "low" => 3,
                    "medium" => 0,
                    "high" => 1,
                    t => match t.parse::<u8>() {
                        Ok(v) => v,
                        Err(_) => {
                            ctx.error(w.span, format!("Invalid pref value {t} specified for route"));
                            return None;
                        }
                    },
                });
            }
            "ttl-propagate" | "encap" | "vrf" => {
                ctx.error(kw.span, format!("route option `{}` is not implemented; remove it", kw.text));
                return None;
            }
            // Routes are never tracked here (re-added when deleted): `no_track` asks for that,
            // and keeps a configured protocol (below).
            "no_track" => no_track = true,
            "onlink" => r.onlink = true,
            // keepalived's older form: the `via` so far and this address as two next hops.
            "or" => {
                ctx.warn(kw.span, "\"or\" for routes is deprecated. Please use \"nexthop\"");
                let Some(w) = it.next() else {
                    ctx.error(kw.span, "`or` needs an address");
                    return None;
                };
                if !r.nexthops.is_empty() {
                    ctx.warn(kw.span, "\"or\" route already specified - ignoring subsequent");
                    continue;
                }
                let second = ip(ctx, w)?;
                r.nexthops = vec![
                    NextHop { via: r.via.take(), ..NextHop::default() },
                    NextHop { via: Some(second), ..NextHop::default() },
                ];
            }
            "nexthop" => {
                if !r.nexthops.is_empty() {
                    ctx.error(kw.span, "Cannot specify nexthops with \"or\" route");
                    return None;
                }
                let rest: Vec<&Word> = std::iter::once(kw).chain(it.by_ref()).collect();
                r.nexthops = nexthops(ctx, &rest)?;
                for v in r.nexthops.iter().filter_map(|h| h.via) {
                    family.settle(ctx, kw.span, v.is_ipv6(), || "Address family mismatch for next hop".into())?;
                }
            }
            _ => {
                let (kind, w) = match kw.text.as_str() {
                    "to" => (None, it.next()),
                    "unicast" => (Some(RouteType::Unicast), it.next()),
                    "blackhole" => (Some(RouteType::Blackhole), it.next()),
                    "unreachable" => (Some(RouteType::Unreachable), it.next()),
                    "prohibit" => (Some(RouteType::Prohibit), it.next()),
                    _ => (None, Some(kw)),
                };
                let Some(w) = w else {
                    ctx.error(kw.span, format!("`{}` needs a destination", kw.text));
                    continue;
                };
                let special = matches!(w.text.as_str(), "default" | "any" | "all" | "default6");
                let looks_like_dest = special || w.text.split('/').next().is_some_and(|a| a.parse::<IpAddr>().is_ok());
                if !looks_like_dest {
                    ctx.error(
                        w.span,
                        format!(
                            "unknown route option `{}` (expected a destination, via, dev, src, table, metric, scope or proto)",
                            w.text
                        ),
                    );
                    continue;
                }
                // keepalived's `parse_route`: `default`, `any` and `all` have no family (the
                // route's later options give it; one set before them is an error there, even
                // the same family); `default6` is IPv6's (deprecated).
                if w.text == "default6" {
                    ctx.warn(
                        w.span,
                        "`default6` is deprecated in keepalived 2.2.7; write `default` and an IPv6 gateway or source",
                    );
                }
                let (dest, prefix) = match w.text.as_str() {
                    "default" | "any" | "all" => (IpAddr::from([0u8; 4]), 0),
                    "default6" => (IpAddr::from([0u16; 8]), 0),
                    _ => addr_prefix(ctx, w)?,
                };
                is_default = matches!(w.text.as_str(), "default" | "any" | "all");
                let mixed = || format!("{MIXED} ({})", w.text);
                if is_default && family.0.is_some() {
                    ctx.error(w.span, mixed());
                    return None;
                }
                if !is_default {
                    family.settle(ctx, w.span, dest.is_ipv6(), mixed)?;
                }
                (r.dest, r.prefix, has_dest) = (dest, prefix, true);
                if let Some(k) = kind {
                    r.kind = k;
                }
            }
        }
    }
    if !has_dest {
        ctx.error(first.span, "route needs a destination");
        return None;
    }
    // `default` is the family's the other options name (IPv4 when none does).
    if is_default && family.0 == Some(true) {
        r.dest = IpAddr::from([0u16; 8]);
    }
    if r.track_group.is_some() && r.dev.is_none() {
        ctx.error(first.span, "Static route cannot have track group if no oif specified");
        r.track_group = None;
    }
    // keepalived tracks a route unless `no_track`, and a tracked route is always protocol
    // keepalived (vrrp_iproute.c `alloc_route`).
    r.no_track = no_track;
    if !no_track {
        if r.protocol.is_some_and(|p| p != RTPROT_KEEPALIVED) {
            ctx.warn(
                first.span,
                "Route cannot be tracked if protocol is not RTPROT_KEEPALIVED(18), resetting protocol (add no_track to keep it)",
            );
        }
        r.protocol = Some(RTPROT_KEEPALIVED);
    }
    Some(r)
}

/// keepalived's error for an address of the other family than the route's.
const MIXED: &str = "Cannot mix IPv4 and IPv6 addresses for route";

/// A route's family as keepalived's `alloc_route` settles it (`new->family`): the first
/// address, or option only one family has, decides; one of the other family after it is an
/// error, in keepalived's words for that option. `Some(true)`: IPv6.
struct RouteFamily(Option<bool>);

impl RouteFamily {
    /// An option at `span` of family `v6` (`true`: IPv6): settles the family, or is the error
    /// `mismatch` says when another is settled.
    fn settle(&mut self, ctx: &mut Ctx, span: Span, v6: bool, mismatch: impl FnOnce() -> String) -> Option<()> {
        if self.0.is_some_and(|f| f != v6) {
            ctx.error(span, mismatch());
            return None;
        }
        self.0 = Some(v6);
        Some(())
    }
}

/// `nexthop ... [nexthop ...]`, each as keepalived's `parse_nexthops` reads it; anything
/// after the last next hop's options is an error.
fn nexthops(ctx: &mut Ctx, words: &[&Word]) -> Option<Vec<NextHop>> {
    let mut out = Vec::new();
    let mut i = 0;
    while words.get(i).is_some_and(|w| w.text == "nexthop") {
        let mut nh = NextHop::default();
        i += 1;
        while let Some(w) = words.get(i) {
            let mut arg = |ctx: &mut Ctx, what: &str| {
                i += 1;
                let v = words.get(i).copied();
                if v.is_none() {
                    ctx.error(w.span, format!("`{}` needs {what}", w.text));
                }
                v
            };
            match w.text.as_str() {
                "via" => {
                    let mut a = arg(ctx, "an address")?;
                    let mut named = None;
                    if matches!(a.text.as_str(), "inet" | "inet6") {
                        named = Some(a.text == "inet6");
                        a = arg(ctx, "an address")?;
                    }
                    let v = ip(ctx, a)?;
                    if named.is_some_and(|v6| v6 != v.is_ipv6()) {
                        ctx.error(a.span, "Address family mismatch for next hop");
                        return None;
                    }
                    nh.via = Some(v);
                }
                "dev" => nh.dev = Some(arg(ctx, "an interface name")?.text.clone()),
                "weight" => {
                    let a = arg(ctx, "a weight")?;
                    match a.text.parse::<u16>() {
                        Ok(v @ 1..=256) => nh.weight = Some(v),
                        _ => {
                            ctx.error(a.span, format!("Invalid weight {} specified for route (1-256)", a.text));
                            return None;
                        }
                    }
                }
                "onlink" => nh.onlink = true,
                "realms" | "encap" | "as" => {
                    ctx.error(w.span, format!("next hop option `{}` is not implemented; remove it", w.text));
                    return None;
                }
                _ => break,
            }
            i += 1;
        }
        out.push(nh);
    }
    if let Some(w) = words.get(i) {
        ctx.error(w.span, format!("Route has trailing nonsense after nexthops - {}", w.text));
        return None;
    }
    let families: Vec<bool> = out.iter().filter_map(|n| n.via.map(|v| v.is_ipv4())).collect();
    if families.windows(2).any(|f| f[0] != f[1]) {
        ctx.error(words[0].span, "Address family mismatch for next hop");
        return None;
    }
    Some(out)
}

/// keepalived's `get_time_rtt`: a time in 1/(1000 * `mult`) s units, written as a raw count
/// of those units, or `Nms` / `N[.ddd]s` (`sec`, `secs`); clamped to TCP's 0.2 s .. 120 s.
fn time_rtt(text: &str, mult: u32) -> Option<u32> {
    const MIN_MS: u32 = 200;
    const MAX_MS: u32 = 120_000;
    let (num, shift, raw) = match text.find(['s', 'S']) {
        Some(p) => {
            if !["s", "sec", "secs"].iter().any(|u| text[p..].eq_ignore_ascii_case(u)) {
                return None;
            }
            match text[..p].strip_suffix(['m', 'M']) {
                Some(n) => (n, 0, false),
                None => (&text[..p], 3, false),
            }
        }
        None => (text, 0, true),
    };
    if num.is_empty() || num.contains(['e', 'E']) {
        return None;
    }
    // read_decimal_unsigned: at most `shift` decimal places, scaled by 10^shift.
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if frac.len() > shift || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) || int.is_empty() {
        return None;
    }
    let digits = format!("{int}{frac}{}", "0".repeat(shift - frac.len()));
    let v: u64 = digits.parse().ok()?;
    if v > u64::from(MAX_MS * mult) {
        return None;
    }
    let v = if raw { v } else { v * u64::from(mult) };
    Some((v as u32).clamp(MIN_MS * mult, MAX_MS * mult))
}

/// The kernel's RTAX_* number of a metric (the bit `lock` sets is 1 << it).
pub fn rtax(name: &str) -> u32 {
    match name {
        "mtu" => 2,
        "window" => 3,
        "rtt" => 4,
        "rttvar" => 5,
        "rto_min" => 13,
        "ssthresh" => 6,
        "cwnd" => 7,
        "advmss" => 8,
        "reordering" => 9,
        "hoplimit" => 10,
        "initcwnd" => 11,
        "features" => 12,
        "initrwnd" => 14,
        "quickack" => 15,
        "congctl" => 16,
        _ => 17, // fastopen_no_cookie
    }
}

/// keepalived's own route protocol number.
const RTPROT_KEEPALIVED: u8 = 18;

/// The word after option `kw`, or an error saying what it needs.
fn value<'a>(ctx: &mut Ctx, it: &mut impl Iterator<Item = &'a Word>, kw: &Word, what: &str) -> Option<&'a Word> {
    let v = it.next();
    if v.is_none() {
        ctx.error(kw.span, format!("`{}` needs {what}", kw.text));
    }
    v
}

fn ip(ctx: &mut Ctx, w: &Word) -> Option<IpAddr> {
    w.text.parse().map_err(|_| ctx.error(w.span, format!("`{}` is not an IPv4 or IPv6 address", w.text))).ok()
}

fn num(ctx: &mut Ctx, w: &Word) -> Option<u32> {
    w.text.parse().map_err(|_| ctx.error(w.span, format!("`{}` is not a number", w.text))).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{lexer::lex, tree::build};

    fn words(src: &str) -> Vec<Word> {
        build(&lex(src, 0, &mut Vec::new()), &mut Vec::new()).remove(0).words
    }

    /// A route's table, protocol and scope by their iproute2 names (keepalived's
    /// `find_rttables_*`); keepalived's own protocol names when the file does not name an id.
    #[test]
    fn route_names_come_from_iproute2_s_files() {
        let names =
            crate::config::rt_names::TempNames::new(&[("rt_tables", "100 web\n"), ("rt_scopes", "253 onlink\n")]);
        let mut ctx = Ctx { rt: crate::config::rt_names::RtNames::new(&names.0), ..Ctx::default() };
        let r = route(&mut ctx, &words("198.51.100.0/24 via 192.0.2.1 table web protocol bird scope onlink no_track"))
            .unwrap();
        assert!(ctx.diags.is_empty(), "{:?}", ctx.diags);
        assert_eq!((r.table, r.protocol, r.scope), (Some(100), Some(12), Some(Scope::Link)));
        // Tracked (no `no_track`): keepalived's protocol, with its warning.
        let r = route(&mut ctx, &words("198.51.100.0/24 via 192.0.2.1 protocol bird")).unwrap();
        assert_eq!(r.protocol, Some(18));
        assert!(ctx.diags[0].message.contains("resetting protocol"), "{:?}", ctx.diags);
        for (text, want) in [
            ("198.51.100.0/24 via 192.0.2.1 table nosuch", "Routing table nosuch not found"),
            ("198.51.100.0/24 via 192.0.2.1 protocol nosuch", "Protocol nosuch not found"),
            ("198.51.100.0/24 via 192.0.2.1 protocol 300", "Protocol 300 not found"),
            ("198.51.100.0/24 via 192.0.2.1 scope 7", "scope `7` is not one of"),
        ] {
            let mut ctx = Ctx { rt: crate::config::rt_names::RtNames::new(&names.0), ..Ctx::default() };
            let _ = route(&mut ctx, &words(text));
            assert!(ctx.diags.iter().any(|d| d.message.contains(want)), "{text}: {:?}", ctx.diags);
        }
    }

    #[test]
    fn address_options() {
        let mut ctx = Ctx::default();
        let a = address(&mut ctx, &words("192.0.2.10/24 brd 192.0.2.255 dev eth0 scope link label eth0:1")).unwrap();
        assert!(ctx.diags.is_empty(), "{:?}", ctx.diags);
        assert_eq!((a.addr.to_string(), a.prefix), ("192.0.2.10".into(), 24));
        assert_eq!(a.broadcast, Some(Ipv4Addr::new(192, 0, 2, 255)));
        assert_eq!((a.dev.as_deref(), a.scope, a.label.as_deref()), (Some("eth0"), Some(Scope::Link), Some("eth0:1")));
        let b = address(&mut ctx, &words("2001:db8::1")).unwrap();
        assert_eq!(b.prefix, 128);
        let c = address(&mut ctx, &words("192.0.2.1/255.255.255.0")).unwrap();
        assert_eq!(c.prefix, 24);
        let plus = address(&mut ctx, &words("192.0.2.10/26 brd +")).unwrap();
        let minus = address(&mut ctx, &words("192.0.2.70/26 brd -")).unwrap();
        assert_eq!(
            (plus.broadcast, minus.broadcast),
            (Some(Ipv4Addr::new(192, 0, 2, 63)), Some(Ipv4Addr::new(192, 0, 2, 64)))
        );
        assert!(ctx.diags.is_empty(), "{:?}", ctx.diags);
        assert_eq!(address(&mut ctx, &words("192.0.2.10/31 brd +")).unwrap().broadcast, None);
        assert!(ctx.diags[0].message.contains("too long for broadcast"), "{:?}", ctx.diags);
    }

    #[test]
    fn route_forms() {
        let mut ctx = Ctx::default();
        let r = route(&mut ctx, &words("to 198.51.100.0/24 via 192.0.2.1 dev eth1 src 192.0.2.2 table 100 metric 5"))
            .unwrap();
        assert!(ctx.diags.is_empty(), "{:?}", ctx.diags);
        assert_eq!((r.kind, r.dest.to_string(), r.prefix), (RouteType::Unicast, "198.51.100.0".into(), 24));
        assert_eq!((r.via.map(|v| v.to_string()), r.table, r.metric), (Some("192.0.2.1".into()), Some(100), Some(5)));
        assert_eq!(r.src.map(|v| v.to_string()), Some("192.0.2.2".into()));
        let b = route(&mut ctx, &words("blackhole 203.0.113.0/24")).unwrap();
        assert_eq!((b.kind, b.prefix), (RouteType::Blackhole, 24));
        let d = route(&mut ctx, &words("default via 192.0.2.1")).unwrap();
        assert_eq!(d.prefix, 0);
        // keepalived's older order: options first, the destination after them.
        for text in [
            "src 192.0.2.2 198.51.100.0/24 via 192.0.2.1 dev eth1",
            "src 192.0.2.2 to 198.51.100.0/24 via 192.0.2.1 dev eth1",
            "via 192.0.2.1 dev eth1 198.51.100.0/24 src 192.0.2.2",
            "dev eth1 src 192.0.2.2 via 192.0.2.1 203.0.113.0/24 198.51.100.0/24",
        ] {
            let o = route(&mut ctx, &words(text)).unwrap();
            assert!(ctx.diags.is_empty(), "{text}: {:?}", ctx.diags);
            assert_eq!((o.dest.to_string(), o.prefix), ("198.51.100.0".into(), 24), "{text}");
            assert_eq!((o.src, o.via), (Some(ip("192.0.2.2")), Some(ip("192.0.2.1"))), "{text}");
            assert_eq!(o.dev.as_deref(), Some("eth1"), "{text}");
        }
        let b = route(&mut ctx, &words("src 192.0.2.2 blackhole 203.0.113.0/24")).unwrap();
        assert_eq!((b.kind, b.src), (RouteType::Blackhole, Some(ip("192.0.2.2"))));
        // `gw` is `via`, with keepalived's deprecation as a warning.
        let g = route(&mut ctx, &words("198.51.100.0/24 gw 192.0.2.1")).unwrap();
        assert_eq!(g.via, Some(ip("192.0.2.1")));
        assert!(ctx.diags.len() == 1 && ctx.diags[0].message.contains("`gw` is deprecated"), "{:?}", ctx.diags);
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Multipath routes as keepalived's `parse_nexthops` reads them, and its older `or`.
    #[test]
    fn next_hops_are_read_as_keepalived_reads_them() {
        let mut ctx = Ctx::default();
        let r = route(
            &mut ctx,
            &words("198.51.100.0/24 nexthop via 192.0.2.1 dev eth1 weight 3 nexthop via inet 192.0.2.3 onlink"),
        )
        .unwrap();
        assert!(ctx.diags.is_empty(), "{:?}", ctx.diags);
        assert_eq!(
            r.nexthops,
            [
                NextHop { via: Some(ip("192.0.2.1")), dev: Some("eth1".into()), weight: Some(3), onlink: false },
                NextHop { via: Some(ip("192.0.2.3")), dev: None, weight: None, onlink: true },
            ]
        );
        let r = route(&mut ctx, &words("198.51.100.0/24 via 192.0.2.1 or 192.0.2.3")).unwrap();
        assert_eq!((r.via, r.nexthops.len()), (None, 2));
        assert!(ctx.diags[0].message.contains("deprecated"), "{:?}", ctx.diags);
        for (text, want) in [
            ("198.51.100.0/24 nexthop via 192.0.2.1 weight 0", "Invalid weight 0"),
            ("198.51.100.0/24 nexthop via 192.0.2.1 metric 5", "trailing nonsense after nexthops - metric"),
            ("198.51.100.0/24 nexthop via 192.0.2.1 nexthop via 2001:db8::1", "Address family mismatch"),
            ("198.51.100.0/24 nexthop via 192.0.2.1 realms 3", "not implemented"),
        ] {
            let mut ctx = Ctx::default();
            assert!(route(&mut ctx, &words(text)).is_none(), "{text}");
            assert!(ctx.diags.iter().any(|d| d.message.contains(want)), "{text}: {:?}", ctx.diags);
        }
    }

    /// Metrics, TOS, realms and the add mode as keepalived reads them; options it knows that
    /// are not implemented here are refused by name.
    #[test]
    fn route_metrics_and_modes() {
        let mut ctx = Ctx::default();
        let r = route(
            &mut ctx,
            &words("append 198.51.100.0/24 via 192.0.2.1 mtu lock 1400 cwnd 10 congctl lock reno tos 16"),
        )
        .unwrap();
        assert!(ctx.diags.is_empty(), "{:?}", ctx.diags);
        assert_eq!((r.mode, r.tos, r.metrics.mtu, r.metrics.cwnd), (RouteMode::Append, Some(16), Some(1400), Some(10)));
        assert_eq!((r.metrics.lock, r.metrics.congctl.as_deref()), ((1 << 2) | (1 << 16), Some("reno")));
        // get_time_rtt: raw units, ms, s with decimals; clamped to 0.2 s .. 120 s.
        let r = route(&mut ctx, &words("198.51.100.0/24 via 192.0.2.1 rtt lock 300ms rttvar 1.5s rto_min 2000 dev x"))
            .unwrap();
        assert_eq!((r.metrics.rtt, r.metrics.rttvar, r.metrics.rto_min), (Some(2400), Some(6000), Some(2000)));
        assert_eq!(r.metrics.lock, 1 << 4);
        // Decimal, as keepalived's get_u32: a leading zero is no octal prefix.
        assert_eq!(route(&mut ctx, &words("198.51.100.0/24 via 192.0.2.1 mtu 010")).unwrap().metrics.mtu, Some(10));
        for (t, m, want) in [("100", 8, 1600), ("121s", 8, 960_000), ("5ms", 1, 200), ("0.25secs", 4, 1000)] {
            assert_eq!(time_rtt(t, m), Some(want), "{t}");
        }
        for (text, want) in [
            ("198.51.100.0/24 via 192.0.2.1 quickack 2", "Invalid quickack 2"),
            ("198.51.100.0/24 via 192.0.2.1 hoplimit 256", "Invalid hoplimit 256"),
            ("198.51.100.0/24 via 192.0.2.1 mtu 0x10", "Invalid mtu 0x10"),
            ("198.51.100.0/24 via 192.0.2.1 features sack", "feature sack not supported"),
            ("198.51.100.0/24 via 192.0.2.1 rtt 1e3", "Invalid rtt 1e3"),
            ("198.51.100.0/24 via 192.0.2.1 rto_min 1.5ms", "Invalid rto_min 1.5ms"),
            ("198.51.100.0/24 via 192.0.2.1 expires 10", "expires is only valid for IPv6"),
            ("198.51.100.0/24 via 192.0.2.1 pref high", "pref is only valid for IPv6"),
            ("198.51.100.0/24 from 192.0.2.0/24 via 192.0.2.1", "route from address only supported with IPv6"),
            ("2001:db8::/64 via 2001:db8:1::1 expires soon", "Invalid expires time soon"),
            ("2001:db8::/64 via 2001:db8:1::1 pref highest", "Invalid pref value highest"),
            ("198.51.100.0/24 via 192.0.2.1 encap ip id 1", "`encap` is not implemented"),
        ] {
            let mut ctx = Ctx::default();
            assert!(route(&mut ctx, &words(text)).is_none(), "{text}");
            assert!(ctx.diags.iter().any(|d| d.message.contains(want)), "{text}: {:?}", ctx.diags);
        }
    }

    /// IPv6's `from` (RTA_SRC), `expires` and `pref` (RFC 4191's values); they make
    /// `default` IPv6's.
    #[test]
    fn ipv6_source_expiry_and_preference() {
        let mut ctx = Ctx::default();
        let r = route(&mut ctx, &words("2001:db8:8::/64 from 2001:db8:5::/64 via 2001:db8:1::1 pref low expires 30"))
            .unwrap();
        assert!(ctx.diags.is_empty(), "{:?}", ctx.diags);
        assert_eq!((r.from, r.pref, r.expires), (Some((ip("2001:db8:5::"), 64)), Some(3), Some(30)));
        for (word, v) in [("medium", 0), ("high", 1), ("7", 7)] {
            let r = route(&mut ctx, &words(&format!("2001:db8:8::/64 via 2001:db8:1::1 pref {word}"))).unwrap();
            assert_eq!(r.pref, Some(v), "{word}");
        }
        let d = route(&mut ctx, &words("default via 2001:db8:1::1 expires 60")).unwrap();
        assert_eq!((d.dest, d.prefix, d.expires), (ip("::"), 0, Some(60)));
        assert!(ctx.diags.is_empty(), "{:?}", ctx.diags);
    }

    /// The family is the first address's (or IPv6-only option's), as keepalived's
    /// `alloc_route` settles it: `default` takes it, and mixing is an error.
    #[test]
    fn a_route_has_one_family() {
        let mut ctx = Ctx::default();
        for (text, dest) in [
            ("default via 2001:db8:1::1", "::"),
            ("default src 2001:db8:1::2 dev eth0", "::"),
            ("default via inet6 2001:db8:1::1", "::"),
            ("default6 dev eth0", "::"),
            ("any via 192.0.2.1", "0.0.0.0"),
            ("all src 2001:db8:1::2", "::"),
            ("default nexthop via 2001:db8:1::1 nexthop via 2001:db8:1::2", "::"),
            ("default via inet 192.0.2.1", "0.0.0.0"),
            ("default dev eth0", "0.0.0.0"),
        ] {
            let r = route(&mut ctx, &words(text)).unwrap_or_else(|| panic!("{text}: {:?}", ctx.diags));
            assert_eq!((r.dest, r.prefix), (ip(dest), 0), "{text}");
        }
        assert!(ctx.diags.iter().all(|d| d.message.contains("default6")), "{:?}", ctx.diags);
        for (text, want) in [
            ("inet6 default dev eth0", "Cannot mix IPv4 and IPv6 addresses for route (default)"),
            ("via 192.0.2.1 default", "Cannot mix IPv4 and IPv6 addresses for route (default)"),
            ("inet default6", "Cannot mix IPv4 and IPv6 addresses for route (default6)"),
            ("2001:db8::/64 realms 1", "realms are only valid for IPv4"),
            ("198.51.100.0/24 expires soon", "expires is only valid for IPv6"),
            ("198.51.100.0/24 nexthop via inet6 192.0.2.1", "Address family mismatch for next hop"),
            ("198.51.100.0/24 via 2001:db8:1::1", "Cannot mix IPv4 and IPv6 addresses for route"),
            ("198.51.100.0/24 src 2001:db8:1::1", "Cannot mix"),
            ("via 2001:db8:1::1 198.51.100.0/24", "Cannot mix IPv4 and IPv6 addresses for route (198.51.100.0/24)"),
            ("198.51.100.0/24 via inet6 192.0.2.1", "Cannot mix"),
            ("inet6 198.51.100.0/24", "Cannot mix"),
            ("198.51.100.0/24 inet6", "inet6 specified for IPv4 route"),
            ("198.51.100.0/24 nexthop via 2001:db8:1::1", "Address family mismatch for next hop"),
        ] {
            let mut ctx = Ctx::default();
            assert!(route(&mut ctx, &words(text)).is_none(), "{text}");
            assert!(ctx.diags.iter().any(|d| d.message.contains(want)), "{text}: {:?}", ctx.diags);
        }
    }

    /// What keepalived 2.2.7's `-t` rejects: no destination, `to TYPE DEST`.
    #[test]
    fn forms_keepalived_rejects_are_errors() {
        for (text, col, want) in [
            ("via 192.0.2.1 dev eth1", 1, "needs a destination"),
            ("to blackhole 198.51.100.0/24", 4, "unknown route option `blackhole`"),
            ("blackhole to 198.51.100.0/24", 11, "unknown route option `to`"),
        ] {
            let mut ctx = Ctx::default();
            route(&mut ctx, &words(text));
            let e = ctx.diags.first().unwrap_or_else(|| panic!("{text}: no error"));
            assert!(e.message.contains(want) && e.span.col == col, "{text}: {e:?}");
        }
    }

    #[test]
    fn bad_options_are_located() {
        let mut ctx = Ctx::default();
        address(&mut ctx, &words("192.0.2.10/33 dev"));
        assert_eq!(ctx.diags.len(), 1, "{:?}", ctx.diags);
        assert_eq!(ctx.diags[0].span.col, 1);
        let mut ctx = Ctx::default();
        route(&mut ctx, &words("198.51.100.0/24 via nowhere frob 1"));
        assert_eq!(ctx.diags.len(), 3, "{:?}", ctx.diags);
        assert_eq!(ctx.diags[1].span.col, 29);
    }

    #[test]
    fn netmasks() {
        assert_eq!(netmask_len(Ipv4Addr::new(255, 255, 255, 255)), Some(32));
        assert_eq!(netmask_len(Ipv4Addr::new(255, 255, 254, 0)), Some(23));
        assert_eq!(netmask_len(Ipv4Addr::new(0, 0, 0, 0)), Some(0));
        assert_eq!(netmask_len(Ipv4Addr::new(255, 0, 255, 0)), None);
    }
}
