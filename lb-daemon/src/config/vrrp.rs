//! `vrrp_script`, `vrrp_sync_group` and `vrrp_instance`.

use super::{
    ip,
    keyword::{Ctx, Keyword},
    model::{
        AuthType, Authentication, BfdInstance, Config, GarpExtraIf, GarpGroup, Notify, OldUnicastChecksum, ParamMatch,
        PeerTtl, SyncGroup, TrackFile, TrackFileInit, TrackGroup, TrackProcess, Tracked, UpDownDelay, VrrpInstance,
        VrrpScript, VrrpState,
    },
    tree::Stmt,
};

/// The block's name (`vrrp_instance NAME {`), or an error.
fn named<'s>(ctx: &mut Ctx, stmt: &'s Stmt) -> Option<(String, &'s [Stmt])> {
    let name = ctx.string(stmt, 0, "a name")?;
    Some((name, ctx.block(stmt)?))
}

pub fn vrrp_script(ctx: &mut Ctx, cfg: &mut Config, stmt: &Stmt) {
    let Some((name, block)) = named(ctx, stmt) else {
        return;
    };
    let mut s = VrrpScript {
        name,
        script: None,
        interval: 1,
        timeout: None,
        weight: 0,
        rise: 1,
        fall: 1,
        user: None,
        init_fail: false,
        reverse: false,
        span: stmt.keyword().span,
    };
    ctx.apply(VRRP_SCRIPT, &mut s, block, "vrrp_script");
    if s.script.is_none() {
        ctx.error(stmt.keyword().span, format!("vrrp_script {} has no `script`", s.name));
    }
    cfg.vrrp_scripts.push(s);
}

pub(crate) const VRRP_SCRIPT: &[Keyword<VrrpScript>] = &[
    Keyword::new("script", |ctx, s, st| s.script = ctx.script(st)),
    // The guide this project started from spells it `scrip`; its users' configs do too.
    Keyword::new("scrip", |ctx, s, st| {
        ctx.warn(st.keyword().span, "`scrip` read as `script` (a misspelling some guides carry)");
        s.script = ctx.script(st);
    }),
    Keyword::new("interval", |ctx, s, st| {
        if let Some(v) = ctx.parse_range(st, 0, "a number of seconds", 1u32, u32::MAX) {
            s.interval = v;
        }
    }),
    Keyword::new("timeout", |ctx, s, st| s.timeout = ctx.parse_range(st, 0, "a number of seconds", 1u32, u32::MAX)),
    Keyword::new("weight", |ctx, s, st| weight_reverse(ctx, st, &mut s.weight, &mut s.reverse)),
    Keyword::new("rise", |ctx, s, st| {
        if let Some(v) = ctx.parse_range(st, 0, "a count", 1u32, u32::MAX) {
            s.rise = v;
        }
    }),
    Keyword::new("fall", |ctx, s, st| {
        if let Some(v) = ctx.parse_range(st, 0, "a count", 1u32, u32::MAX) {
            s.fall = v;
        }
    }),
    Keyword::new("user", |ctx, s, st| s.user = ctx.run_as(st, 0)),
    Keyword::new("init_fail", |ctx, s, st| s.init_fail = ctx.flag(st)),
];

/// `garp_group`, with keepalived 2.2.7's checks and words (vrrp_parser.c): an interface
/// already in a group stays in the first, and a group with neither interval is dropped.
pub fn garp_group(ctx: &mut Ctx, cfg: &mut Config, stmt: &Stmt) {
    let Some(block) = ctx.block(stmt) else { return };
    let mut g = GarpGroup { span: stmt.keyword().span, ..Default::default() };
    ctx.apply(GARP_GROUP, &mut g, block, "garp_group");
    let taken: Vec<String> = cfg.garp_groups.iter().flat_map(|o| o.interfaces.clone()).collect();
    g.interfaces.retain(|i| {
        let free = !taken.contains(i);
        if !free {
            ctx.warn(stmt.keyword().span, format!("garp_group already specified for {i} - ignoring"));
        }
        free
    });
    if g.garp_interval_us.is_none() && g.gna_interval_us.is_none() {
        let n = cfg.garp_groups.len() + 1;
        ctx.warn(stmt.keyword().span, format!("garp group {n} does not have any delay set - removing"));
        return;
    }
    cfg.garp_groups.push(g);
}

/// Seconds with up to six decimals as microseconds, as keepalived's timer readers take them
/// (`read_decimal_unsigned_strvec(..., TIMER_HZ_DIGITS)`, `read_timer`), with strtoull's
/// forms too: a leading `+`, an empty whole part (`.5`).
fn decimal_micros(text: &str) -> Option<u64> {
    let text = text.strip_prefix('+').unwrap_or(text);
    let whole_and_frac = text.split_once('.').map_or((text, ""), |(a, b)| (a, b));
    let digits = |s: &str| s.bytes().all(|c| c.is_ascii_digit());
    match whole_and_frac {
        (a, b) if !(a.is_empty() && b.is_empty()) && digits(a) && digits(b) && b.len() <= 6 => {
            let frac: u64 = format!("{b:0<6}").parse().ok()?;
            let whole = if a.is_empty() { Some(0) } else { a.parse::<u64>().ok() };
            whole.and_then(|s| s.checked_mul(1_000_000)).and_then(|us| us.checked_add(frac))
        }
        _ => None,
    }
}

/// `interface_up_down_delays { IFNAME DOWN [UP] ... }` (vrrp_parser.c
/// `alloc_if_up_down_delay`): 0 to 255 seconds each, a bad one a config error; UP 0 when not
/// given (keepalived's code). What keepalived only logs (a line without delays, extra words)
/// is warned about; a later line for an interface wins.
pub fn interface_up_down_delays(ctx: &mut Ctx, cfg: &mut Config, stmt: &Stmt) {
    let Some(block) = ctx.block(stmt) else { return };
    for line in block {
        let name = line.keyword();
        let args = line.args();
        if args.is_empty() {
            ctx.warn(name.span, format!("No timeouts specified for {} up/down delays", name.text));
            // keepalived looks the interface up first (a missing one is fatal) and keeps any
            // delays an earlier line gave it.
            if !cfg.interface_up_down_delays.iter().any(|d| d.iface == name.text) {
                let none = UpDownDelay { iface: name.text.clone(), down_us: 0, up_us: 0, span: name.span };
                cfg.interface_up_down_delays.push(none);
            }
            continue;
        }
        if let Some(extra) = args.get(2) {
            ctx.warn(extra.span, format!("Too many parameters for {} up/down delays", name.text));
        }
        let delay = |ctx: &mut Ctx, i: usize, what: &str| -> Option<u32> {
            let w = args.get(i)?;
            let us = decimal_micros(&w.text).filter(|us| *us <= 255_000_000).map(|us| us as u32);
            if us.is_none() {
                ctx.error(w.span, format!("invalid {what} delay {} for {}: 0 to 255 seconds", w.text, name.text));
            }
            us
        };
        let Some(down_us) = delay(ctx, 0, "down") else { continue };
        let up_us = if args.len() < 2 {
            0
        } else {
            let Some(up) = delay(ctx, 1, "up") else { continue };
            up
        };
        cfg.interface_up_down_delays.retain(|d| d.iface != name.text);
        cfg.interface_up_down_delays.push(UpDownDelay { iface: name.text.clone(), down_us, up_us, span: name.span });
    }
}

/// A garp_group interval: seconds with up to six decimals, 0 allowed (keepalived's
/// `read_decimal_unsigned_strvec(..., 0, INT_MAX, TIMER_HZ_DIGITS)`).
fn garp_group_interval(ctx: &mut Ctx, st: &Stmt, what: &str) -> Option<u32> {
    let w = ctx.arg(st, 0, "a number of seconds")?;
    let us = decimal_micros(&w.text).filter(|us| *us <= i32::MAX as u64);
    match us {
        Some(us) => Some(us as u32),
        None => {
            ctx.error(w.span, format!("garp_group {what} '{}' invalid", w.text));
            None
        }
    }
}

pub(crate) const GARP_GROUP: &[Keyword<GarpGroup>] = &[
    Keyword::new("garp_interval", |ctx, g, st| {
        if let Some(us) = garp_group_interval(ctx, st, "garp_interval") {
            g.garp_interval_us = Some(us);
        }
    }),
    Keyword::new("gna_interval", |ctx, g, st| {
        if let Some(us) = garp_group_interval(ctx, st, "gna_interval") {
            g.gna_interval_us = Some(us);
        }
    }),
    Keyword::new("interface", |ctx, g, st| {
        if let Some(name) = ctx.string(st, 0, "an interface name") {
            g.interfaces.push(name);
        }
    }),
    Keyword::new("interfaces", |ctx, g, st| {
        let names: Vec<String> = ctx.block_words(st).iter().map(|w| w.text.clone()).collect();
        if names.is_empty() {
            ctx.warn(st.keyword().span, "Warning - empty garp_group interfaces block");
        }
        g.interfaces.extend(names);
    }),
];

/// `track_group NAME { group { VI_1 ... } }`: instances that static addresses, routes and
/// rules name with `track_group NAME` (`track_static_interfaces`).
pub fn track_group(ctx: &mut Ctx, cfg: &mut Config, stmt: &Stmt) {
    let Some((name, block)) = named(ctx, stmt) else {
        return;
    };
    if cfg.track_groups.iter().any(|g| g.name == name) {
        ctx.error(stmt.keyword().span, format!("track_group {name} already defined"));
        return;
    }
    let mut g = TrackGroup { name, group: Vec::new(), span: stmt.keyword().span };
    ctx.apply(TRACK_GROUP, &mut g, block, "track_group");
    cfg.track_groups.push(g);
}

pub(crate) const TRACK_GROUP: &[Keyword<TrackGroup>] = &[Keyword::new("group", |ctx, g, st| {
    if !g.group.is_empty() {
        ctx.error(st.keyword().span, format!("Group list already specified for sync group {}", g.name));
        return;
    }
    let names: Vec<String> = ctx.block_words(st).iter().map(|w| w.text.clone()).collect();
    if names.is_empty() {
        ctx.warn(st.keyword().span, format!("Warning - track group {} has empty group block", g.name));
    }
    g.group.extend(names);
})];

/// keepalived 2.2.7's `static_track_group_init`: each instance a `track_group` lists tracks
/// the interface of every static address (its `dev`, else the default interface), route (its
/// `dev`) and rule (its `iif`) naming that group, unless the address or route has `no_track`
/// (a rule's was dropped when read). An instance the group names that does not exist is
/// ignored, with keepalived's message.
pub fn track_static_interfaces(ctx: &mut Ctx, cfg: &mut Config) {
    let default_dev = cfg.global.default_interface.clone().unwrap_or_else(|| "eth0".to_string());
    let mut tracked: Vec<(String, String)> = Vec::new();
    for a in cfg.static_ipaddress.iter().filter(|a| a.track_group.is_some()) {
        if a.no_track {
            ctx.warn(a.span, "Static address has both track_group and no_track set - not tracking");
        } else if let Some(g) = &a.track_group {
            tracked.push((g.clone(), a.device(&default_dev).to_string()));
        }
    }
    for r in cfg.static_routes.iter().filter(|r| r.track_group.is_some()) {
        if r.no_track {
            ctx.warn(r.span, "Static route has both track_group and no_track set - not tracking");
        } else if let (Some(g), Some(dev)) = (&r.track_group, &r.dev) {
            tracked.push((g.clone(), dev.clone()));
        }
    }
    for r in &cfg.static_rules {
        if let (Some(g), Some(dev)) = (&r.track_group, &r.iif) {
            tracked.push((g.clone(), dev.clone()));
        }
    }
    for g in &cfg.track_groups {
        for name in &g.group {
            let Some(v) = cfg.vrrp_instances.iter_mut().find(|v| &v.name == name) else {
                ctx.warn(
                    g.span,
                    format!("vrrp instance {name} specified in track group {} doesn't exist - ignoring", g.name),
                );
                continue;
            };
            for (_, dev) in tracked.iter().filter(|(tg, _)| tg == &g.name) {
                if !v.track_static.contains(dev) {
                    v.track_static.push(dev.clone());
                }
            }
        }
    }
}

pub fn vrrp_sync_group(ctx: &mut Ctx, cfg: &mut Config, stmt: &Stmt) {
    let Some((name, block)) = named(ctx, stmt) else {
        return;
    };
    let mut g = SyncGroup {
        name,
        group: Vec::new(),
        track_process: Vec::new(),
        notify: Notify::default(),
        track_file: Vec::new(),
        track_bfd: Vec::new(),
        track_interface: Vec::new(),
        track_script: Vec::new(),
        tracking_weight: false,
        span: stmt.keyword().span,
    };
    ctx.apply(SYNC_GROUP, &mut g, block, "vrrp_sync_group");
    cfg.vrrp_sync_groups.push(g);
}

pub(crate) const SYNC_GROUP: &[Keyword<SyncGroup>] = &[
    Keyword::new("group", |ctx, g, st| {
        let names: Vec<String> = ctx.block_words(st).iter().map(|w| w.text.clone()).collect();
        g.group.extend(names);
    }),
    Keyword::new("notify_master", |ctx, g, st| g.notify.master = ctx.script(st)),
    Keyword::new("notify_backup", |ctx, g, st| g.notify.backup = ctx.script(st)),
    Keyword::new("notify_fault", |ctx, g, st| g.notify.fault = ctx.script(st)),
    Keyword::new("notify_stop", |ctx, g, st| g.notify.stop = ctx.script(st)),
    Keyword::new("notify", |ctx, g, st| g.notify.any = ctx.script(st)),
    Keyword::new("smtp_alert", |ctx, g, st| g.notify.smtp_alert = Some(smtp_alert(ctx, st))),
    Keyword::new("notify_priority_changes", |ctx, g, st| {
        g.notify.notify_priority_changes = ctx.bool_flag(st).or(g.notify.notify_priority_changes)
    }),
    Keyword::new("track_process", |ctx, g, st| {
        let t = tracked(ctx, st);
        g.track_process.extend(t);
    }),
    Keyword::new("track_file", |ctx, g, st| {
        for t in tracked(ctx, st) {
            if g.track_file.iter().any(|o| o.name == t.name) {
                // keepalived: "duplicate track_file ... - ignoring", a config error.
                ctx.error(t.span, format!("track_file `{}` is already tracked by this sync group", t.name));
                continue;
            }
            g.track_file.push(t);
        }
    }),
    Keyword::new("track_bfd", |ctx, g, st| {
        let t = tracked_bfd(ctx, st);
        g.track_bfd.extend(t);
    }),
    Keyword::new("track_interface", |ctx, g, st| {
        let t = tracked(ctx, st);
        g.track_interface.extend(t);
    }),
    Keyword::new("track_script", |ctx, g, st| {
        let t = tracked(ctx, st);
        g.track_script.extend(t);
    }),
    Keyword::new("sync_group_tracking_weight", |ctx, g, st| g.tracking_weight = ctx.flag(st)),
    // keepalived reports it as a config error and sets the flag all the same.
    Keyword::new("global_tracking", |ctx, g, st| {
        g.tracking_weight = ctx.flag(st);
        ctx.warn(
            st.keyword().span,
            format!("({}) global_tracking is deprecated. Use track_interface/script/file on the sync group", g.name),
        );
    }),
];

/// `smtp_alert [true|false]`.
fn smtp_alert(ctx: &mut Ctx, st: &Stmt) -> bool {
    match st.args().first().map(|w| w.text.as_str()) {
        None | Some("true" | "on" | "yes") => true,
        Some("false" | "off" | "no") => false,
        Some(other) => {
            ctx.error(st.args()[0].span, format!("`smtp_alert {other}`: expected true or false"));
            true
        }
    }
}

pub fn vrrp_instance(ctx: &mut Ctx, cfg: &mut Config, stmt: &Stmt) {
    let Some((name, block)) = named(ctx, stmt) else {
        return;
    };
    let mut v = VrrpInstance::new(name, stmt.keyword().span);
    ctx.apply(VRRP_INSTANCE, &mut v, block, "vrrp_instance");
    // keepalived (vrrp.c, vrrp_complete_instance): without `priority`, `state MASTER` makes
    // the instance the address owner (255); otherwise the default is 100.
    if v.state == Some(VrrpState::Master) && !block.iter().any(|s| s.keyword().text == "priority") {
        v.priority = 255;
    }
    if v.virtual_router_id.is_none() {
        ctx.error(stmt.keyword().span, format!("vrrp_instance {} has no `virtual_router_id`", v.name));
    }
    if v.interface.is_none() {
        ctx.error(stmt.keyword().span, format!("vrrp_instance {} has no `interface`", v.name));
    }
    cfg.vrrp_instances.push(v);
}

/// `track_interface { IF [weight N [reverse|noreverse]] }`, the same for `track_script` and
/// `track_file`.
fn tracked(ctx: &mut Ctx, st: &Stmt) -> Vec<Tracked> {
    let Some(block) = ctx.block(st) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for line in block {
        let name = line.keyword();
        let weight = match line.args().first() {
            Some(w) if w.text == "weight" => ctx.parse_range(line, 1, "a weight", -254i32, 254),
            Some(w) => {
                ctx.error(w.span, format!("expected `weight N` after `{}`, found `{}`", name.text, w.text));
                None
            }
            None => None,
        };
        let reverse = match line.args().get(2) {
            Some(w) if w.text == "reverse" => Some(true),
            Some(w) if w.text == "noreverse" => Some(false),
            Some(w) => {
                ctx.error(w.span, format!("expected `reverse` or `noreverse` after the weight, found `{}`", w.text));
                None
            }
            None => None,
        };
        out.push(Tracked { name: name.text.clone(), weight, reverse, span: name.span });
    }
    out
}

/// `track_bfd { NAME [weight N [reverse|noreverse]] }`: keepalived takes weights -253..253
/// here (vrrp_track.c).
fn tracked_bfd(ctx: &mut Ctx, st: &Stmt) -> Vec<Tracked> {
    let mut out = tracked(ctx, st);
    out.retain(|t| match t.weight {
        Some(w) if w.abs() > 253 => {
            ctx.error(t.span, format!("track_bfd {}: the weight must be between -253 and 253, not {w}", t.name));
            false
        }
        _ => true,
    });
    out
}

/// keepalived's longest BFD instance name (BFD_INAME_MAX - 1).
const BFD_NAME_MAX: usize = 31;

/// `bfd_instance NAME { ... }` (keepalived's bfd_parser.c: its checks and defaults).
pub fn bfd_instance(ctx: &mut Ctx, cfg: &mut Config, stmt: &Stmt) {
    let Some((name, block)) = named(ctx, stmt) else {
        return;
    };
    let span = stmt.keyword().span;
    if name.len() > BFD_NAME_MAX {
        ctx.error(span, format!("bfd_instance {name}: the name is longer than {BFD_NAME_MAX} characters"));
        return;
    }
    if cfg.bfd_instances.iter().any(|b| b.name == name) {
        ctx.error(span, format!("bfd_instance {name} is already configured"));
        return;
    }
    let mut b = BfdInstance::new(name, span);
    ctx.apply(BFD_INSTANCE, &mut b, block, "bfd_instance");
    if !b.vrrp && !b.checker {
        (b.vrrp, b.checker) = (true, true);
    }
    let Some(nbr) = b.neighbor else {
        ctx.error(span, format!("bfd_instance {} has no `neighbor_ip`", b.name));
        return;
    };
    if let Some(src) = b.source
        && src.is_ipv4() != nbr.is_ipv4()
    {
        ctx.error(
            span,
            format!("bfd_instance {}: source_ip {src} and neighbor_ip {nbr} are not of one family", b.name),
        );
        return;
    }
    // keepalived's find_bfd_by_addr: the same neighbour, and the same source or either unset.
    let same_source = |o: &BfdInstance| o.source.is_none() || b.source.is_none() || o.source == b.source;
    if let Some(other) = cfg.bfd_instances.iter().find(|o| o.neighbor == b.neighbor && same_source(o)) {
        ctx.error(
            span,
            format!(
                "bfd_instance {}: bfd_instance {} has the same neighbor_ip {nbr} (and source_ip, or one has none)",
                b.name, other.name
            ),
        );
        return;
    }
    if b.max_hops < 0 || b.max_hops > i16::from(b.ttl()) {
        ctx.warn(
            span,
            format!("bfd_instance {}: max_hops exceeds the ttl/hoplimit {}; any TTL is accepted", b.name, b.ttl()),
        );
    }
    cfg.bfd_instances.push(b);
}

/// An interval in milliseconds with up to 3 decimals (keepalived's
/// `read_decimal_unsigned_strvec(.., 3)`), as microseconds in `min_ms..=4294967` ms.
fn bfd_interval(ctx: &mut Ctx, st: &Stmt, min_ms: u32) -> Option<u32> {
    let w = ctx.arg(st, 0, "milliseconds")?;
    let (int, frac) = w.text.split_once('.').unwrap_or((&w.text, ""));
    let ok = !int.is_empty() && int.bytes().all(|c| c.is_ascii_digit()) && frac.bytes().all(|c| c.is_ascii_digit());
    let us = if !ok || frac.len() > 3 {
        None
    } else {
        let frac_us: u64 = format!("{frac:0<3}").parse().unwrap_or(0);
        int.parse::<u64>().ok().map(|i| i * 1000 + frac_us)
    };
    let max_ms = u32::MAX / 1000;
    match us {
        Some(us) if us >= u64::from(min_ms) * 1000 && us <= u64::from(max_ms) * 1000 => Some(us as u32),
        _ => {
            ctx.error(
                w.span,
                format!(
                    "`{}` must be milliseconds (up to 3 decimals) between {min_ms} and {max_ms}, not {}",
                    st.keyword().text,
                    w.text
                ),
            );
            None
        }
    }
}

pub(crate) const BFD_INSTANCE: &[Keyword<BfdInstance>] = &[
    Keyword::new("neighbor_ip", |ctx, b: &mut BfdInstance, st| b.neighbor = ip_arg(ctx, st).or(b.neighbor))
        .alias(&["neighbour_ip"]),
    Keyword::new("source_ip", |ctx, b, st| b.source = ip_arg(ctx, st).or(b.source)),
    Keyword::new("min_rx", |ctx, b, st| b.min_rx_us = bfd_interval(ctx, st, 1).unwrap_or(b.min_rx_us)),
    Keyword::new("min_tx", |ctx, b, st| b.min_tx_us = bfd_interval(ctx, st, 1).unwrap_or(b.min_tx_us)),
    Keyword::new("idle_tx", |ctx, b, st| b.idle_tx_us = bfd_interval(ctx, st, 1000).unwrap_or(b.idle_tx_us)),
    Keyword::new("multiplier", |ctx, b, st| {
        b.multiplier = ctx.parse_range(st, 0, "a multiplier", 1u8, 255).unwrap_or(b.multiplier)
    }),
    Keyword::new("passive", |ctx, b, st| b.passive = ctx.flag(st)),
    Keyword::new("ttl", |ctx, b: &mut BfdInstance, st| b.ttl = ctx.parse_range(st, 0, "a TTL", 1u8, 255).or(b.ttl))
        .alias(&["hoplimit"]),
    Keyword::new("max_hops", |ctx, b, st| {
        b.max_hops = ctx.parse_range(st, 0, "a hop count", -1i16, 255).unwrap_or(b.max_hops)
    }),
    Keyword::new("weight", |ctx, b, st| {
        if let Some(v) = ctx.parse_range(st, 0, "a weight", -253i32, 253) {
            b.weight = v;
        }
        match st.args().get(1) {
            Some(w) if w.text == "reverse" => b.reverse = true,
            Some(w) => ctx.error(w.span, format!("expected `reverse` after the weight, found `{}`", w.text)),
            None => {}
        }
    }),
    // keepalived's event targets: which of its processes hear about the session (both when
    // neither is named).
    Keyword::new("vrrp", |ctx, b, st| b.vrrp = ctx.flag(st)),
    Keyword::new("checker", |ctx, b, st| b.checker = ctx.flag(st)),
];

/// `weight N [reverse]` of a `vrrp_script` or `track_file`.
fn weight_reverse(ctx: &mut Ctx, st: &Stmt, weight: &mut i32, reverse: &mut bool) {
    if let Some(v) = ctx.parse_range(st, 0, "a weight", -254i32, 254) {
        *weight = v;
    }
    match st.args().get(1) {
        Some(w) if w.text == "reverse" => *reverse = true,
        Some(w) => ctx.error(w.span, format!("expected `reverse` after the weight, found `{}`", w.text)),
        None => {}
    }
}

/// `track_file NAME { ... }` (and keepalived's older `vrrp_track_file`).
pub fn track_file(ctx: &mut Ctx, cfg: &mut Config, stmt: &Stmt) {
    let Some((name, block)) = named(ctx, stmt) else {
        return;
    };
    let mut t = TrackFile { name, file: None, weight: 1, reverse: false, init: None, span: stmt.keyword().span };
    ctx.apply(TRACK_FILE, &mut t, block, "track_file");
    if t.file.is_none() {
        ctx.error(stmt.keyword().span, format!("track_file {} has no `file`", t.name));
    }
    cfg.track_files.push(t);
}

pub(crate) const TRACK_FILE: &[Keyword<TrackFile>] = &[
    Keyword::new("file", |ctx, t, st| t.file = ctx.string(st, 0, "a file path")),
    Keyword::new("weight", |ctx, t, st| weight_reverse(ctx, st, &mut t.weight, &mut t.reverse)),
    Keyword::new("init_file", |ctx, t, st| {
        let mut init = TrackFileInit { value: 0, overwrite: false };
        for w in st.args() {
            if w.text == "overwrite" {
                init.overwrite = true;
            } else {
                match w.text.parse::<i32>() {
                    Ok(v) if (-254..=254).contains(&v) => init.value = v,
                    _ => ctx.error(
                        w.span,
                        format!("init_file takes a value -254..254 and `overwrite`, found `{}`", w.text),
                    ),
                }
            }
        }
        t.init = Some(init);
    }),
];

/// `vrrp_track_process NAME { ... }`, with keepalived 2.2.7's defaults and checks.
pub fn vrrp_track_process(ctx: &mut Ctx, cfg: &mut Config, stmt: &Stmt) {
    let Some((name, block)) = named(ctx, stmt) else {
        return;
    };
    let mut t = TrackProcess {
        name,
        process: None,
        params: Vec::new(),
        param_match: ParamMatch::None,
        full_command: false,
        weight: 0,
        reverse: false,
        quorum: 1,
        quorum_max: u32::MAX,
        fork_delay_us: 0,
        terminate_delay_us: 0,
        span: stmt.keyword().span,
    };
    ctx.apply(TRACK_PROCESS, &mut t, block, "vrrp_track_process");
    if t.process.is_none() {
        ctx.error(stmt.keyword().span, format!("vrrp_track_process {} has no `process`", t.name));
    }
    if let Some(p) = t.process.as_deref().filter(|p| !t.full_command && p.len() > 15) {
        let msg = format!(
            "vrrp_track_process {}: `{p}` is longer than a process name (15 bytes) and never matches one; \
             add full_command to match the command line",
            t.name
        );
        ctx.warn(t.span, msg);
    }
    cfg.track_processes.push(t);
}

/// keepalived's delays: seconds with at most 6 decimals, 0.000001..3600; microseconds.
fn delay_us(ctx: &mut Ctx, st: &Stmt) -> Option<u64> {
    let w = ctx.arg(st, 0, "a delay in seconds")?;
    let parsed = (|| {
        let (int, frac) = w.text.split_once('.').unwrap_or((&w.text, ""));
        if int.is_empty() && frac.is_empty() || frac.len() > 6 {
            return None;
        }
        let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
        if !digits(int) || !digits(frac) {
            return None;
        }
        let int: u64 = if int.is_empty() { 0 } else { int.parse().ok()? };
        let frac: u64 = if frac.is_empty() { 0 } else { format!("{frac:0<6}").parse().ok()? };
        int.checked_mul(1_000_000)?.checked_add(frac)
    })();
    match parsed {
        Some(us) if (1..=3_600_000_000).contains(&us) => Some(us),
        _ => {
            let msg = format!("`{}` must be between 0.000001 and 3600 seconds, not {}", st.keyword().text, w.text);
            ctx.error(w.span, msg);
            None
        }
    }
}

pub(crate) const TRACK_PROCESS: &[Keyword<TrackProcess>] = &[
    Keyword::new("process", |ctx, t, st| {
        if t.process.is_some() {
            let span = st.keyword().span;
            return ctx.error(span, format!("vrrp_track_process {} already has a process", t.name));
        }
        let Some(name) = ctx.string(st, 0, "a process name or path") else { return };
        t.process = Some(name);
        let params: Vec<String> = st.args()[1..].iter().map(|w| w.text.clone()).collect();
        if !params.is_empty() {
            t.params = params;
            if t.param_match == ParamMatch::None {
                t.param_match = ParamMatch::Exact;
            }
            t.full_command = true;
        }
    }),
    Keyword::new("param_match", |ctx, t, st| {
        match st.args().first().map(|w| w.text.as_str()) {
            None => t.param_match = ParamMatch::Exact,
            Some("initial") => t.param_match = ParamMatch::Initial,
            Some("partial") => t.param_match = ParamMatch::Partial,
            Some(other) => {
                let span = st.args()[0].span;
                return ctx.error(span, format!("`param_match {other}`: expected initial, partial or nothing"));
            }
        }
        t.full_command = true;
    }),
    Keyword::new("weight", |ctx, t, st| {
        if t.weight != 0 {
            let span = st.keyword().span;
            return ctx.error(span, format!("vrrp_track_process {} already has a weight", t.name));
        }
        weight_reverse(ctx, st, &mut t.weight, &mut t.reverse);
    }),
    Keyword::new("quorum", |ctx, t, st| {
        let Some(q) = ctx.parse_range(st, 0, "a number of processes", 1u32, 65535) else { return };
        if q > t.quorum_max {
            return ctx.error(st.args()[0].span, format!("quorum {q} is greater than quorum_max {}", t.quorum_max));
        }
        t.quorum = q;
    }),
    Keyword::new("quorum_max", |ctx, t, st| {
        let Some(q) = ctx.parse_range(st, 0, "a number of processes", 0u32, 65535) else { return };
        // keepalived allows quorum_max 0 when quorum was not raised.
        if (q != 0 || t.quorum > 1) && q < t.quorum {
            return ctx.error(st.args()[0].span, format!("quorum_max {q} is less than quorum {}", t.quorum));
        }
        t.quorum_max = q;
        if q == 0 {
            t.quorum = 0;
        } else if t.quorum == 0 {
            t.quorum = 1;
        }
    }),
    Keyword::new("delay", |ctx, t, st| {
        if let Some(us) = delay_us(ctx, st) {
            (t.fork_delay_us, t.terminate_delay_us) = (us, us);
        }
    }),
    Keyword::new("fork_delay", |ctx, t, st| t.fork_delay_us = delay_us(ctx, st).unwrap_or(t.fork_delay_us)),
    Keyword::new("terminate_delay", |ctx, t, st| {
        t.terminate_delay_us = delay_us(ctx, st).unwrap_or(t.terminate_delay_us)
    }),
    Keyword::new("full_command", |ctx, t, st| t.full_command = ctx.flag(st)),
];

fn ip_arg(ctx: &mut Ctx, st: &Stmt) -> Option<std::net::IpAddr> {
    ctx.parse(st, 0, "an IPv4 or IPv6 address")
}

pub(crate) const VRRP_INSTANCE: &[Keyword<VrrpInstance>] = &[
    Keyword::new("state", |ctx, v, st| {
        if let Some(w) = ctx.arg(st, 0, "MASTER or BACKUP") {
            match w.text.as_str() {
                "MASTER" => v.state = Some(VrrpState::Master),
                "BACKUP" => v.state = Some(VrrpState::Backup),
                _ => ctx.error(w.span, format!("state `{}` is not MASTER or BACKUP", w.text)),
            }
        }
    }),
    Keyword::new("interface", |ctx, v, st| v.interface = ctx.string(st, 0, "an interface name")),
    Keyword::new("dont_track_primary", |ctx, v, st| v.dont_track_primary = ctx.flag(st)),
    Keyword::new("track_interface", |ctx, v, st| {
        let t = tracked(ctx, st);
        v.track_interface.extend(t);
    }),
    Keyword::new("track_script", |ctx, v, st| {
        let t = tracked(ctx, st);
        v.track_script.extend(t);
    }),
    Keyword::new("track_file", |ctx, v, st| {
        let t = tracked(ctx, st);
        v.track_file.extend(t);
    }),
    Keyword::new("track_process", |ctx, v, st| {
        let t = tracked(ctx, st);
        v.track_process.extend(t);
    }),
    Keyword::new("track_bfd", |ctx, v, st| {
        let t = tracked_bfd(ctx, st);
        v.track_bfd.extend(t);
    }),
    Keyword::new("mcast_src_ip", |ctx, v, st| v.mcast_src_ip = ip_arg(ctx, st)),
    Keyword::new("native_ipv6", |ctx, v, st| v.native_ipv6 = ctx.flag(st)),
    Keyword::new("unicast_fault_no_peer", |ctx, v, st| v.unicast_fault_no_peer = ctx.flag(st)),
    // keepalived's vrrp_unicast_chksum_handler: another word is a config error (ignored there).
    Keyword::new("old_unicast_checksum", |ctx, v, st| match st.args().first() {
        None => v.old_unicast_checksum = Some(OldUnicastChecksum::Old),
        Some(w) if w.text == "never" => v.old_unicast_checksum = Some(OldUnicastChecksum::Never),
        Some(w) => ctx
            .error(w.span, format!("({}) Unknown old_unicast_chksum mode {}: give `never` or nothing", v.name, w.text)),
    }),
    Keyword::new("mcast_dst_ip", |ctx, v, st| {
        let Some(w) = ctx.arg(st, 0, "a multicast address") else { return };
        // keepalived's vrrp_mcast_dstip_handler: IPv4 multicast or IPv6 link-local multicast.
        match w.text.parse::<std::net::IpAddr>() {
            Ok(a @ std::net::IpAddr::V4(v4)) if v4.is_multicast() => v.mcast_dst_ip = Some(a),
            Ok(a @ std::net::IpAddr::V6(v6)) if v6.segments()[0] & 0xff0f == 0xff02 => v.mcast_dst_ip = Some(a),
            Ok(_) => ctx.error(
                w.span,
                format!(
                    "mcast_dst_ip {} is not an IPv4 multicast or IPv6 link-local multicast address \
                     (keepalived skips it); use one (e.g. 224.0.0.18, ff02::12) or remove it",
                    w.text
                ),
            ),
            Err(_) => ctx.error(w.span, format!("`{}` is not an IPv4 or IPv6 address", w.text)),
        }
    }),
    Keyword::new("unicast_src_ip", |ctx, v, st| v.unicast_src_ip = ip_arg(ctx, st)),
    Keyword::new("unicast_peer", |ctx, v, st| {
        let Some(block) = ctx.block(st) else { return };
        for line in block {
            let w = line.keyword();
            let addr = match w.text.parse() {
                Ok(ip) => ip,
                Err(_) => {
                    ctx.error(w.span, format!("`{}` is not an IPv4 or IPv6 address", w.text));
                    continue;
                }
            };
            v.unicast_peer.push(addr);
            // keepalived 2.2.7 (`alloc_vrrp_unicast_peer`): option-value pairs; either one
            // turns check_unicast_src on, and a peer's adverts outside min_ttl..=max_ttl are
            // dropped.
            let (mut ttl, mut set) = (PeerTtl { addr, min: 0, max: 255 }, false);
            for pair in line.args().chunks(2) {
                let [opt, value] = pair else {
                    ctx.error(pair[0].span, format!("({}) {} is missing a value", v.name, pair[0].text));
                    break;
                };
                // keepalived skips a value that is not a number 0-255, and reports it.
                let Ok(n) = value.text.parse::<u8>() else {
                    ctx.error(value.span, format!("unicast_peer {}: `{}` is not a TTL (0-255)", opt.text, value.text));
                    continue;
                };
                match opt.text.as_str() {
                    "min_ttl" => ttl.min = n,
                    "max_ttl" => ttl.max = n,
                    _ => {
                        ctx.error(
                            opt.span,
                            format!("({}) unknown unicast_peer option {} (min_ttl, max_ttl)", v.name, opt.text),
                        );
                        break;
                    }
                }
                set = true;
            }
            if set {
                v.check_unicast_src = true;
                if ttl.min > ttl.max {
                    ctx.error(
                        w.span,
                        format!(
                            "({}) min_ttl {} > max_ttl {} - all packets will be discarded",
                            v.name, ttl.min, ttl.max
                        ),
                    );
                }
                v.unicast_peer_ttl.push(ttl);
            }
        }
    }),
    Keyword::new("garp_master_delay", |ctx, v, st| v.garp_master_delay = ctx.parse(st, 0, "a number of seconds")),
    Keyword::new("garp_master_repeat", |ctx, v, st| v.garp_master_repeat = ctx.parse(st, 0, "a count")),
    Keyword::new("garp_master_refresh", |ctx, v, st| v.garp_master_refresh = ctx.parse(st, 0, "a number of seconds")),
    Keyword::new("garp_master_refresh_repeat", |ctx, v, st| v.garp_master_refresh_repeat = ctx.parse(st, 0, "a count")),
    Keyword::new("garp_extra_if", |ctx, v, st| {
        if let Some(e) = garp_extra_if(ctx, st, 0) {
            v.garp_extra_if = Some(e);
        }
    }),
    Keyword::new("vmac_garp_intvl", |ctx, v, st| {
        if let Some(e) = garp_extra_if(ctx, st, 0) {
            v.garp_extra_if = Some(e);
        }
    }),
    Keyword::new("virtual_router_id", |ctx, v, st| v.virtual_router_id = ctx.parse_range(st, 0, "a VRID", 1u8, 255)),
    Keyword::new("priority", |ctx, v, st| {
        if let Some(p) = ctx.parse_range(st, 0, "a priority", 1u8, 255) {
            v.priority = p;
        }
    }),
    Keyword::new("advert_int", advert_int),
    Keyword::new("version", |ctx, v, st| v.version = ctx.parse_range(st, 0, "2 or 3", 2u8, 3)),
    Keyword::new("authentication", authentication),
    Keyword::new("virtual_ipaddress", |ctx, v, st| {
        if let Some(block) = ctx.block(st) {
            let a = ip::addresses(ctx, block);
            v.virtual_ipaddress.extend(a);
        }
    }),
    Keyword::new("virtual_ipaddress_excluded", |ctx, v, st| {
        if let Some(block) = ctx.block(st) {
            let a = ip::addresses(ctx, block);
            v.virtual_ipaddress_excluded.extend(a);
        }
    }),
    Keyword::new("virtual_routes", |ctx, v, st| {
        if let Some(block) = ctx.block(st) {
            let r = ip::routes(ctx, block);
            v.virtual_routes.extend(r);
        }
    }),
    Keyword::new("virtual_rules", |ctx, v, st| {
        if let Some(block) = ctx.block(st) {
            let r = super::rule::rules(ctx, block);
            v.virtual_rules.extend(r);
        }
    }),
    Keyword::new("nopreempt", |ctx, v, st| v.nopreempt = ctx.flag(st)),
    Keyword::new("preempt", |ctx, v, st| v.nopreempt = !ctx.flag(st)),
    Keyword::new("preempt_delay", |ctx, v, st| {
        // keepalived 1.x: `preempt_delay` alone meant 300 s (the seed guide says so too).
        let d = if st.args().is_empty() { Some(300) } else { ctx.parse_range(st, 0, "seconds (0-1000)", 0u32, 1000) };
        if let Some(d) = d {
            v.preempt_delay = d;
        }
    }),
    Keyword::new("accept", |ctx, v, st| v.accept = Some(ctx.flag(st))),
    Keyword::new("no_accept", |ctx, v, st| v.accept = Some(!ctx.flag(st))),
    // keepalived 2.2.7's handler sets the flag for any valid boolean, `false` included.
    Keyword::new("skip_check_adv_addr", |ctx, v, st| {
        if let Some(on) = ctx.bool_flag(st) {
            v.skip_check_adv_addr = Some(true);
            if !on {
                ctx.warn(
                    st.args()[0].span,
                    "skip_check_adv_addr false: keepalived 2.2.7 turns the option on for any value, and so does \
                     lb-daemon; remove the line to check every advert",
                );
            }
        }
    }),
    Keyword::new("down_timer_adverts", |ctx, v, st| {
        v.down_timer_adverts = ctx.parse_range(st, 0, "a number of adverts", 1u8, 100);
    }),
    Keyword::new("lower_prio_no_advert", |ctx, v, st| v.lower_prio_no_advert = ctx.bool_flag(st)),
    Keyword::new("higher_prio_send_advert", |ctx, v, st| v.higher_prio_send_advert = ctx.bool_flag(st)),
    Keyword::new("strict_mode", |ctx, v, st| v.strict_mode = ctx.bool_flag(st)),
    Keyword::new("garp_lower_prio_repeat", |ctx, v, st| {
        v.garp_lower_prio_repeat = ctx.parse_range(st, 0, "a count", 0u32, i32::MAX as u32);
    }),
    Keyword::new("garp_lower_prio_delay", |ctx, v, st| {
        v.garp_lower_prio_delay = ctx.parse(st, 0, "a number of seconds")
    }),
    Keyword::new("unicast_ttl", |ctx, v, st| v.unicast_ttl = ctx.parse_range(st, 0, "a TTL", 0u8, 255)),
    Keyword::new("use_vmac", use_vmac),
    Keyword::new("vmac_xmit_base", |ctx, v, st| v.vmac_xmit_base = ctx.flag(st)),
    Keyword::new("promote_secondaries", |ctx, v, st| v.promote_secondaries = ctx.flag(st)),
    Keyword::new("check_unicast_src", |ctx, v, st| v.check_unicast_src = ctx.flag(st)),
    Keyword::new("notify_master", |ctx, v, st| v.notify.master = ctx.script(st)),
    Keyword::new("notify_backup", |ctx, v, st| v.notify.backup = ctx.script(st)),
    Keyword::new("notify_fault", |ctx, v, st| v.notify.fault = ctx.script(st)),
    Keyword::new("notify_stop", |ctx, v, st| v.notify.stop = ctx.script(st)),
    Keyword::new("notify_master_rx_lower_pri", |ctx, v, st| v.notify.master_rx_lower_pri = ctx.script(st)),
    Keyword::new("notify_deleted", |ctx, v, st| {
        v.notify.notify_deleted = true;
        if !st.args().is_empty() {
            v.notify.deleted = ctx.script(st);
        }
    }),
    Keyword::new("notify", |ctx, v, st| v.notify.any = ctx.script(st)),
    Keyword::new("smtp_alert", |ctx, v, st| v.notify.smtp_alert = Some(smtp_alert(ctx, st))),
    Keyword::new("notify_priority_changes", |ctx, v, st| {
        v.notify.notify_priority_changes = ctx.bool_flag(st).or(v.notify.notify_priority_changes)
    }),
    Keyword::new("debug", |ctx, v, st| {
        v.debug = if st.args().is_empty() { Some(1) } else { ctx.parse_range(st, 0, "a level 0-4", 0u32, 4) };
    }),
    Keyword::new("lvs_sync_daemon_interface", |ctx, v, st| {
        // The seed guide writes it without a value: then the instance's own interface.
        v.lvs_sync_daemon_interface = match st.args().first() {
            Some(w) => Some(w.text.clone()),
            None => {
                ctx.warn(
                    st.keyword().span,
                    "`lvs_sync_daemon_interface` without an interface: the instance's interface is used",
                );
                v.interface.clone().or_else(|| Some(String::new()))
            }
        };
    }),
];

/// `garp_extra_if [all] SECONDS` and the global `vrrp_garp_extra_if` (vrrp_parser.c /
/// global_parser.c, `*garp_extra_if_handler`): `all` anywhere, the last number wins, at
/// least `min` (the global form takes 1, the instance's 0) and at most 86400. keepalived
/// ignores the keyword with a config error when a word is neither or no number is given; an
/// error here. Its older spelling (`vmac_garp_intvl`, `vrrp_vmac_garp_intvl`) is read the
/// same, with keepalived's warning.
pub(super) fn garp_extra_if(ctx: &mut Ctx, st: &Stmt, min: u32) -> Option<GarpExtraIf> {
    let kw = st.keyword();
    if let Some(new) = match kw.text.as_str() {
        "vmac_garp_intvl" => Some("garp_extra_if"),
        "vrrp_vmac_garp_intvl" => Some("vrrp_garp_extra_if"),
        _ => None,
    } {
        ctx.warn(kw.span, format!("Keyword \"{}\" is deprecated - please use \"{new}\"", kw.text));
    }
    let (mut secs, mut all) = (None, false);
    for w in st.args() {
        match w.text.parse::<u32>() {
            _ if w.text == "all" => all = true,
            Ok(n) if (min..=86400).contains(&n) => secs = Some(n),
            _ => {
                ctx.error(w.span, format!("{} '{}' invalid: give `all` or {min} to 86400 seconds", kw.text, w.text));
                return None;
            }
        }
    }
    let Some(secs) = secs else {
        ctx.error(kw.span, format!("{} specified without time: give {min} to 86400 seconds", kw.text));
        return None;
    };
    Some(GarpExtraIf { secs, all })
}

/// `use_vmac [NAME] [MAC]` (vrrp_parser.c, `vrrp_vmac_handler`): a word with a ':' is the
/// MAC (interface names have none). What keepalived ignores with a config error (an invalid,
/// multicast or RFC 5798 MAC, an invalid name or another instance's) is an error here.
fn use_vmac(ctx: &mut Ctx, v: &mut VrrpInstance, st: &Stmt) {
    let (mut name, mut mac) = (None, None);
    for w in st.args().iter().take(2) {
        if w.text.contains(':') {
            if mac.is_some() {
                ctx.error(w.span, "use_vmac: the VMAC's MAC address is already given");
                continue;
            }
            match vmac_mac(&w.text) {
                Ok(m) => mac = Some(m),
                Err(why) => ctx.error(w.span, format!("use_vmac: MAC address `{}` {why}", w.text)),
            }
        } else if name.is_some() {
            ctx.error(w.span, "use_vmac: the VMAC interface name is already given");
        } else if !crate::config::vmac_name_valid(&w.text) {
            ctx.error(
                w.span,
                format!("use_vmac: `{}` is not a valid interface name (1-15 characters, no '/', ':' or space)", w.text),
            );
        } else {
            name = Some(w.text.clone());
        }
    }
    if let Some(extra) = st.args().get(2) {
        ctx.error(extra.span, format!("use_vmac takes at most a name and a MAC address, found `{}`", extra.text));
    }
    v.use_vmac = Some(crate::config::UseVmac { name, mac });
}

/// A VMAC's MAC as keepalived's `vrrp_vmac_handler` reads it: octets of one or two hex
/// digits separated by ':', six of them, or five (with or without a last ':') for the VRID
/// as the sixth; not multicast and not an RFC 5798 virtual MAC. keepalived also ignores
/// anything after a sixth octet and ':'; that is an error here.
fn vmac_mac(text: &str) -> Result<crate::config::VmacMac, &'static str> {
    use crate::config::VmacMac;
    const INVALID: &str = "is invalid (six octets of hex digits separated by ':', or five for the VRID as the sixth)";
    let body = text.strip_suffix(':').unwrap_or(text);
    let octets: Vec<&str> = body.split(':').collect();
    let mut bytes = [0u8; 6];
    for (b, o) in bytes.iter_mut().zip(&octets) {
        if o.is_empty() || o.len() > 2 || !o.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(INVALID);
        }
        *b = u8::from_str_radix(o, 16).map_err(|_| INVALID)?;
    }
    let mac = match octets.len() {
        5 => VmacMac::Vrid([bytes[0], bytes[1], bytes[2], bytes[3], bytes[4]]),
        6 => VmacMac::Full(bytes),
        _ => return Err(INVALID),
    };
    if bytes[0] & 1 != 0 {
        return Err("is multicast (keepalived ignores it); give a unicast address");
    }
    if bytes[..4] == [0, 0, 0x5e, 0] && matches!(bytes[4], 1 | 2) {
        return Err("is an RFC 5798 virtual MAC (keepalived ignores it); give another, or no address for the VRRP one");
    }
    Ok(mac)
}

/// `advert_int SECONDS`: fractions allowed (VRRPv3 counts in centiseconds).
fn advert_int(ctx: &mut Ctx, v: &mut VrrpInstance, st: &Stmt) {
    let Some(w) = ctx.arg(st, 0, "a number of seconds") else {
        return;
    };
    match w.text.parse::<f64>() {
        Ok(s) if (0.01..=255.0).contains(&s) => v.advert_int_cs = (s * 100.0).round() as u32,
        _ => ctx.error(w.span, format!("advert_int `{}` is not a number of seconds between 0.01 and 255", w.text)),
    }
}

fn authentication(ctx: &mut Ctx, v: &mut VrrpInstance, st: &Stmt) {
    let Some(block) = ctx.block(st) else { return };
    let mut auth_type = None;
    let mut auth_pass = None;
    for line in block {
        let kw = line.keyword();
        match kw.text.as_str() {
            "auth_type" => match ctx.arg(line, 0, "PASS or AH").map(|w| (w.text.as_str(), w.span)) {
                Some(("PASS", _)) => auth_type = Some(AuthType::Pass),
                Some(("AH", _)) => auth_type = Some(AuthType::Ah),
                Some((other, span)) => ctx.error(span, format!("auth_type `{other}` is not PASS or AH")),
                None => {}
            },
            "auth_pass" => {
                if let Some(w) = ctx.arg(line, 0, "a password") {
                    if w.text.len() > 8 {
                        ctx.warn(
                            w.span,
                            "auth_pass is longer than 8 characters; only the first 8 are used (as keepalived)",
                        );
                    }
                    auth_pass = Some(w.text.chars().take(8).collect());
                }
            }
            _ => ctx.error(
                kw.span,
                format!("unknown keyword `{}` in authentication (expected auth_type or auth_pass)", kw.text),
            ),
        }
    }
    match (auth_type, auth_pass) {
        (Some(auth_type), Some(auth_pass)) => v.authentication = Some(Authentication { auth_type, auth_pass }),
        (Some(AuthType::Ah), None) => {
            ctx.error(st.keyword().span, "authentication with auth_type AH needs auth_pass");
        }
        (Some(AuthType::Pass), None) => {
            ctx.error(st.keyword().span, "authentication with auth_type PASS needs auth_pass")
        }
        (None, Some(_)) => ctx.error(st.keyword().span, "authentication has auth_pass but no auth_type"),
        (None, None) => ctx.warn(st.keyword().span, "empty authentication block"),
    }
}
