//! `vrrp_script`, `vrrp_sync_group` and `vrrp_instance`.

use super::{
    ip,
    keyword::{Ctx, Keyword},
    model::{AuthType, Authentication, Config, Notify, SyncGroup, Tracked, VrrpInstance, VrrpScript, VrrpState},
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
    Keyword::new("weight", |ctx, s, st| {
        if let Some(v) = ctx.parse_range(st, 0, "a weight", -254i32, 254) {
            s.weight = v;
        }
        if let Some(extra) = st.args().get(1).filter(|w| w.text == "reverse") {
            ctx.warn(extra.span, "`reverse` is not acted on yet; ignored");
        }
    }),
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

pub fn vrrp_sync_group(ctx: &mut Ctx, cfg: &mut Config, stmt: &Stmt) {
    let Some((name, block)) = named(ctx, stmt) else {
        return;
    };
    let mut g = SyncGroup { name, group: Vec::new(), notify: Notify::default(), span: stmt.keyword().span };
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
    Keyword::new("smtp_alert", |ctx, g, st| g.notify.smtp_alert = smtp_alert(ctx, st)),
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
    if v.virtual_router_id.is_none() {
        ctx.error(stmt.keyword().span, format!("vrrp_instance {} has no `virtual_router_id`", v.name));
    }
    if v.interface.is_none() {
        ctx.error(stmt.keyword().span, format!("vrrp_instance {} has no `interface`", v.name));
    }
    cfg.vrrp_instances.push(v);
}

/// `track_interface { IF [weight N] }` / `track_script { NAME [weight N] }`.
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
        out.push(Tracked { name: name.text.clone(), weight, span: name.span });
    }
    out
}

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
    Keyword::new("mcast_src_ip", |ctx, v, st| v.mcast_src_ip = ip_arg(ctx, st)),
    Keyword::new("unicast_src_ip", |ctx, v, st| v.unicast_src_ip = ip_arg(ctx, st)),
    Keyword::new("unicast_peer", |ctx, v, st| {
        let Some(block) = ctx.block(st) else { return };
        for line in block {
            let w = line.keyword();
            match w.text.parse() {
                Ok(ip) => v.unicast_peer.push(ip),
                Err(_) => ctx.error(w.span, format!("`{}` is not an IPv4 or IPv6 address", w.text)),
            }
            if let Some(opt) = line.args().first() {
                ctx.warn(opt.span, format!("unicast_peer option `{}` is not acted on yet; ignored", opt.text));
            }
        }
    }),
    Keyword::new("garp_master_delay", |ctx, v, st| v.garp_master_delay = ctx.parse(st, 0, "a number of seconds")),
    Keyword::new("garp_master_repeat", |ctx, v, st| v.garp_master_repeat = ctx.parse(st, 0, "a count")),
    Keyword::new("garp_master_refresh", |ctx, v, st| v.garp_master_refresh = ctx.parse(st, 0, "a number of seconds")),
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
    Keyword::new("notify_master", |ctx, v, st| v.notify.master = ctx.script(st)),
    Keyword::new("notify_backup", |ctx, v, st| v.notify.backup = ctx.script(st)),
    Keyword::new("notify_fault", |ctx, v, st| v.notify.fault = ctx.script(st)),
    Keyword::new("notify_stop", |ctx, v, st| v.notify.stop = ctx.script(st)),
    Keyword::new("notify", |ctx, v, st| v.notify.any = ctx.script(st)),
    Keyword::new("smtp_alert", |ctx, v, st| v.notify.smtp_alert = smtp_alert(ctx, st)),
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
