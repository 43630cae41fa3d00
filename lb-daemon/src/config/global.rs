//! `global_defs` and the static address/route blocks.

use super::{
    ip,
    keyword::{Ctx, Keyword},
    model::{BackendKind, Config, FlushOnStop, GlobalDefs, LvsSyncDaemon, NotifyFifo, RunAs, Script},
    rule,
    tree::Stmt,
};

pub fn global_defs(ctx: &mut Ctx, cfg: &mut Config, stmt: &Stmt) {
    if let Some(block) = ctx.block(stmt) {
        ctx.apply(GLOBAL_DEFS, &mut cfg.global, block, "global_defs");
    }
}

pub fn static_ipaddress(ctx: &mut Ctx, cfg: &mut Config, stmt: &Stmt) {
    if let Some(block) = ctx.block(stmt) {
        let addrs = ip::static_addresses(ctx, block, &track_group_names(cfg));
        cfg.static_ipaddress.extend(addrs);
    }
}

pub fn static_routes(ctx: &mut Ctx, cfg: &mut Config, stmt: &Stmt) {
    if let Some(block) = ctx.block(stmt) {
        let routes = ip::static_routes(ctx, block, &track_group_names(cfg));
        cfg.static_routes.extend(routes);
    }
}

pub fn static_rules(ctx: &mut Ctx, cfg: &mut Config, stmt: &Stmt) {
    if let Some(block) = ctx.block(stmt) {
        let rules = rule::static_rules(ctx, block, &track_group_names(cfg));
        cfg.static_rules.extend(rules);
    }
}

/// The top-level `instance NAME` (keepalived's instance_handler): the first one counts, and
/// implies `use_pid_dir`.
pub fn instance(ctx: &mut Ctx, cfg: &mut Config, stmt: &Stmt) {
    let Some(name) = stmt.args().first() else {
        ctx.error(stmt.keyword().span, "instance name missing - ignoring");
        return;
    };
    if cfg.global.instance.is_some() {
        ctx.error(name.span, format!("Duplicate instance definition {} - ignoring", name.text));
        return;
    }
    cfg.global.instance = Some(name.text.clone());
    cfg.global.use_pid_dir = true;
}

/// The top-level `use_pid_dir`.
pub fn use_pid_dir(ctx: &mut Ctx, cfg: &mut Config, stmt: &Stmt) {
    cfg.global.use_pid_dir = ctx.flag(stmt);
}

/// What needs the whole configuration: the reload file's default path (keepalived's
/// `init_global_data`).
pub fn complete(cfg: &mut Config) {
    let g = &mut cfg.global;
    if g.reload_file.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
        g.reload_file = Some(match (&g.instance, g.use_pid_dir) {
            (Some(name), _) => format!("/run/keepalived/keepalived_{name}.reload").into(),
            (None, true) => "/run/keepalived/keepalived.reload".into(),
            (None, false) => "/run/keepalived.reload".into(),
        });
    }
}

/// The `track_group` blocks read so far.
fn track_group_names(cfg: &Config) -> Vec<String> {
    cfg.track_groups.iter().map(|g| g.name.clone()).collect()
}

pub(crate) const GLOBAL_DEFS: &[Keyword<GlobalDefs>] = &[
    Keyword::new("notification_email", notification_email),
    Keyword::new("notification_email_from", |ctx, g, s| {
        g.notification_email_from = ctx.string(s, 0, "an e-mail address")
    }),
    Keyword::new("smtp_server", smtp_server),
    Keyword::new("smtp_connect_timeout", |ctx, g, s| {
        if let Some(v) = ctx.parse(s, 0, "a number of seconds") {
            g.smtp_connect_timeout = v;
        }
    }),
    Keyword::new("router_id", |ctx, g, s| g.router_id = ctx.string(s, 0, "a name")),
    Keyword::new("default_interface", |ctx, g, s| g.default_interface = ctx.string(s, 0, "an interface name")),
    Keyword::new("vrrp_mcast_group4", |ctx, g, s| {
        if let Some(std::net::IpAddr::V4(a)) = multicast(ctx, s, "an IPv4 multicast address", false) {
            g.vrrp_mcast_group4 = a;
        }
    }),
    Keyword::new("vrrp_mcast_group6", |ctx, g, s| {
        if let Some(std::net::IpAddr::V6(a)) = multicast(ctx, s, "an IPv6 multicast address", true) {
            g.vrrp_mcast_group6 = a;
        }
    }),
    Keyword::new("vrrp_version", |ctx, g, s| {
        if let Some(v) = ctx.parse_range(s, 0, "2 or 3", 2u8, 3) {
            g.vrrp_version = v;
        }
    }),
    Keyword::new("script_user", |ctx, g, s| g.script_user = ctx.run_as(s, 0)),
    Keyword::new("enable_script_security", |ctx, g, s| g.enable_script_security = ctx.flag(s)),
    Keyword::new("vrrp_garp_master_delay", |ctx, g, s| {
        if let Some(v) = ctx.parse(s, 0, "a number of seconds") {
            g.vrrp_garp_master_delay = v;
        }
    }),
    Keyword::new("vrrp_garp_master_repeat", |ctx, g, s| {
        if let Some(v) = ctx.parse(s, 0, "a count") {
            g.vrrp_garp_master_repeat = v;
        }
    }),
    Keyword::new("vrrp_garp_master_refresh", |ctx, g, s| {
        if let Some(v) = ctx.parse(s, 0, "a number of seconds") {
            g.vrrp_garp_master_refresh = v;
        }
    }),
    Keyword::new("vrrp_garp_extra_if", |ctx, g, s| {
        if let Some(e) = super::vrrp::garp_extra_if(ctx, s, 1) {
            g.vrrp_garp_extra_if = e;
        }
    }),
    Keyword::new("vrrp_vmac_garp_intvl", |ctx, g, s| {
        if let Some(e) = super::vrrp::garp_extra_if(ctx, s, 1) {
            g.vrrp_garp_extra_if = e;
        }
    }),
    Keyword::new("vrrp_garp_master_refresh_repeat", |ctx, g, s| {
        if let Some(v) = ctx.parse(s, 0, "a count") {
            g.vrrp_garp_master_refresh_repeat = v;
        }
    }),
    // keepalived's vrrp_min_garp_handler: one announcement, no second burst, no refresh; a
    // value set before it (anything but the default) stays, one set after it wins.
    Keyword::new("vrrp_min_garp", |ctx, g, s| {
        if ctx.bool_flag(s) != Some(true) {
            return;
        }
        let d = GlobalDefs::default();
        if g.vrrp_garp_master_repeat == d.vrrp_garp_master_repeat {
            g.vrrp_garp_master_repeat = 1;
        }
        if g.vrrp_garp_master_refresh_repeat == d.vrrp_garp_master_refresh_repeat {
            g.vrrp_garp_master_refresh_repeat = 0;
        }
        if g.vrrp_garp_master_delay == d.vrrp_garp_master_delay {
            g.vrrp_garp_master_delay = 0;
        }
    }),
    Keyword::new("disable_local_igmp", |ctx, g, s| g.disable_local_igmp = ctx.flag(s)),
    // keepalived's dynamic_interfaces_handler: on, with one optional word.
    Keyword::new("dynamic_interfaces", |ctx, g, s| {
        g.dynamic_interfaces = true;
        match s.args().first() {
            None => {}
            Some(w) if w.text == "allow_if_changes" => g.allow_if_changes = true,
            Some(w) => ctx.error(w.span, format!("Unknown dynamic_interfaces option '{}'", w.text)),
        }
    }),
    Keyword::new("vrrp_notify_priority_changes", |ctx, g, s| {
        if let Some(b) = ctx.bool_flag(s) {
            g.vrrp_notify_priority_changes = b;
        }
    }),
    Keyword::new("vrrp_startup_delay", |ctx, g, s| {
        // keepalived: at least 1 ms (its TIMER_HZ / 1000).
        match micros(ctx, s) {
            Some(us) if us >= 1000 => g.vrrp_startup_delay_us = us,
            Some(_) => {
                let w = &s.args()[0];
                ctx.error(w.span, format!("vrrp_startup_delay '{}' is invalid (at least 0.001 s)", w.text));
            }
            None => {}
        }
    }),
    Keyword::new("vrrp_garp_interval", |ctx, g, s| {
        if let Some(us) = micros(ctx, s) {
            g.vrrp_garp_interval_us = us;
        }
    }),
    Keyword::new("vrrp_gna_interval", |ctx, g, s| {
        if let Some(us) = micros(ctx, s) {
            g.vrrp_gna_interval_us = us;
        }
    }),
    Keyword::new("vmac_prefix", |ctx, g, s| {
        if g.vmac_prefix.is_some() {
            // keepalived keeps the first with a config error.
            ctx.error(s.keyword().span, "vmac_prefix is given twice; keep one");
        } else {
            g.vmac_prefix = ctx.string(s, 0, "a VMAC name prefix");
        }
    }),
    Keyword::new("smtp_alert", |ctx, g, s| g.smtp_alert = ctx.bool_flag(s)),
    Keyword::new("rs_init_notifies", |ctx, g, s| g.rs_init_notifies = ctx.bool_flag(s).unwrap_or(g.rs_init_notifies)),
    Keyword::new("smtp_alert_vrrp", |ctx, g, s| g.smtp_alert_vrrp = ctx.bool_flag(s)),
    Keyword::new("smtp_alert_checker", |ctx, g, s| g.smtp_alert_checker = ctx.bool_flag(s)),
    Keyword::new("vrrp_strict", |ctx, g, s| g.vrrp_strict = ctx.flag(s)),
    // keepalived's nftables handlers (global_parser.c): the table of the no_accept drop
    // rules, their chains' priority (reset to -1 by `nftables`), counters on them.
    Keyword::new("nftables", |ctx, g, s| {
        if g.nftables.is_some() {
            ctx.error(s.keyword().span, "nftables already specified");
            return;
        }
        let name = s.args().first().map_or("keepalived", |w| w.text.as_str());
        // nft's identifiers; a keyword of nft's (`counter`) is caught by `nft -c` at start.
        let first = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if !first || name.len() > 255 || !name.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)) {
            ctx.error(s.keyword().span, format!("nftables: `{name}` is not a table name nft takes"));
            return;
        }
        g.nftables = Some(name.to_string());
        g.nftables_priority = -1;
    }),
    Keyword::new("nftables_priority", |ctx, g, s| {
        // IPVS takes its packets at the input hook's priority 99: at 99 or more keepalived's
        // drop would come after IPVS has forwarded a no_accept master's VIP traffic, which the
        // XDP data plane (and lb-daemon's IPVS fencing) drops before any chain.
        if let Some(p) = ctx.parse_range(s, 0, "a priority", i32::MIN, 98) {
            g.nftables_priority = p;
        }
    }),
    Keyword::new("nftables_counters", |ctx, g, s| g.nftables_counters = ctx.flag(s)),
    // keepalived's reload_time_file_handler: exactly one path.
    Keyword::new("reload_time_file", |ctx, g, s| match s.args() {
        [p] => g.reload_time_file = Some(p.text.clone().into()),
        _ => ctx.error(s.keyword().span, "reload_time_file invalid: give one file name"),
    }),
    Keyword::new("reload_repeat", |_, g, _| g.reload_repeat = true),
    // keepalived's reload_file_handler: the first word, else its default (an empty path
    // until `complete`); more are ignored.
    Keyword::new("reload_file", |_, g, s| {
        g.reload_file = Some(s.args().first().map_or_else(Default::default, |w| w.text.clone().into()));
    }),
    Keyword::new("data_use_instance", |ctx, g, s| {
        if let Some(on) = ctx.bool_flag(s) {
            g.data_use_instance = on;
        }
    }),
    Keyword::new("vrrp_skip_check_adv_addr", |ctx, g, s| g.vrrp_skip_check_adv_addr = ctx.flag(s)),
    Keyword::new("vrrp_down_timer_adverts", |ctx, g, s| {
        g.vrrp_down_timer_adverts = ctx.parse_range(s, 0, "a number of adverts", 1u8, 100);
    }),
    Keyword::new("vrrp_lower_prio_no_advert", |ctx, g, s| g.vrrp_lower_prio_no_advert = ctx.bool_flag(s)),
    Keyword::new("vrrp_higher_prio_send_advert", |ctx, g, s| g.vrrp_higher_prio_send_advert = ctx.bool_flag(s)),
    Keyword::new("vrrp_garp_lower_prio_repeat", |ctx, g, s| {
        g.vrrp_garp_lower_prio_repeat = ctx.parse_range(s, 0, "a count", 0u32, i32::MAX as u32);
    }),
    Keyword::new("vrrp_garp_lower_prio_delay", |ctx, g, s| {
        g.vrrp_garp_lower_prio_delay = ctx.parse(s, 0, "a number of seconds");
    }),
    Keyword::new("vrrp_check_unicast_src", |ctx, g, s| g.vrrp_check_unicast_src = ctx.flag(s)),
    Keyword::new("lvs_sync_daemon", lvs_sync_daemon),
    Keyword::new("lvs_timeouts", lvs_timeouts),
    Keyword::new("lvs_flush", |ctx, g, s| g.lvs_flush = ctx.flag(s)),
    Keyword::new("lvs_flush_on_stop", lvs_flush_on_stop),
    Keyword::new("lvs_flush_onstop", lvs_flush_on_stop),
    Keyword::new("notify_fifo", |ctx, g, s| fifo(ctx, &mut g.notify_fifos.global, s)),
    Keyword::new("notify_fifo_script", |ctx, g, s| fifo_script(ctx, &mut g.notify_fifos.global, s)),
    Keyword::new("startup_script", |ctx, g, s| around_script(ctx, &mut g.startup_script, s, "startup")),
    Keyword::new("shutdown_script", |ctx, g, s| around_script(ctx, &mut g.shutdown_script, s, "shutdown")),
    Keyword::new("startup_script_timeout", |ctx, g, s| {
        g.startup_script_timeout = around_timeout(ctx, s, "startup").unwrap_or(g.startup_script_timeout)
    }),
    Keyword::new("shutdown_script_timeout", |ctx, g, s| {
        g.shutdown_script_timeout = around_timeout(ctx, s, "shutdown").unwrap_or(g.shutdown_script_timeout)
    }),
    Keyword::new("vrrp_notify_fifo", |ctx, g, s| fifo(ctx, &mut g.notify_fifos.vrrp, s)),
    Keyword::new("vrrp_notify_fifo_script", |ctx, g, s| fifo_script(ctx, &mut g.notify_fifos.vrrp, s)),
    Keyword::new("lvs_notify_fifo", |ctx, g, s| fifo(ctx, &mut g.notify_fifos.lvs, s)),
    Keyword::new("lvs_notify_fifo_script", |ctx, g, s| fifo_script(ctx, &mut g.notify_fifos.lvs, s)),
    Keyword::new("lb_backend", |ctx, g, s| {
        let Some(w) = ctx.arg(s, 0, "auto, bpf or ipvs") else {
            return;
        };
        g.lb_backend = match w.text.as_str() {
            "auto" => Some(BackendKind::Auto),
            "bpf" => Some(BackendKind::Bpf),
            "ipvs" => Some(BackendKind::Ipvs),
            _ => {
                ctx.error(w.span, format!("lb_backend `{}` is not auto, bpf or ipvs", w.text));
                None
            }
        };
    }),
    Keyword::new("anycast_table", |ctx, g, s| {
        // Not local (255), main (254), default (253) or unspec (0): those hold routes the
        // host lives on, which a withdraw must never touch.
        if let Some(t) = ctx.parse_range(s, 0, "a routing table number 1-252 or 256 and up", 1u32, u32::MAX) {
            if (253..=255).contains(&t) {
                ctx.error(s.args()[0].span, format!("anycast_table {t} is a system table; use a table of its own"));
            } else {
                g.anycast_table = Some(t);
            }
        }
    }),
    Keyword::new("mh_seed", |ctx, g, s| g.mh_seed = ctx.parse(s, 0, "a number (the Maglev hash seed)")),
    Keyword::new("lb_sync_auth_key", |ctx, g, s| {
        let Some(w) = ctx.arg(s, 0, "a secret of at least 16 characters") else {
            return;
        };
        if w.text.chars().count() < 16 {
            ctx.error(w.span, "lb_sync_auth_key: use a secret of at least 16 characters");
            return;
        }
        g.lb_sync_auth_key = Some(super::model::Secret(w.text.clone()));
    }),
];

/// `[vrrp_|lvs_]notify_fifo PATH [USER [GROUP]]`; keepalived keeps the first one given.
fn fifo(ctx: &mut Ctx, f: &mut NotifyFifo, s: &Stmt) {
    let Some(path) = ctx.string(s, 0, "a FIFO path") else { return };
    if f.path.is_some() {
        ctx.warn(s.keyword().span, format!("{} already specified - ignoring {path}", s.keyword().text));
        return;
    }
    f.owner = if s.args().len() > 1 { ctx.run_as(s, 1) } else { None };
    f.path = Some(path.into());
}

/// `[vrrp_|lvs_]notify_fifo_script SCRIPT [USER [GROUP]]` (the script quoted if it has
/// arguments).
fn fifo_script(ctx: &mut Ctx, f: &mut NotifyFifo, s: &Stmt) {
    let Some(first) = ctx.arg(s, 0, "a script path") else { return };
    if f.script.is_some() {
        ctx.warn(s.keyword().span, format!("{} already specified - ignoring {}", s.keyword().text, first.text));
        return;
    }
    let script = Script { command: first.text.clone(), span: first.span };
    let user = if s.args().len() > 1 { ctx.run_as(s, 1) } else { None };
    f.script = Some((script, user));
}

/// `startup_script` / `shutdown_script SCRIPT [USER [GROUP]]` (the script quoted if it has
/// arguments), as keepalived's startup_shutdown_script: a second one is ignored.
fn around_script(ctx: &mut Ctx, slot: &mut Option<(Script, Option<RunAs>)>, s: &Stmt, kind: &str) {
    let Some(first) = ctx.arg(s, 0, "a script path") else { return };
    if slot.is_some() {
        ctx.warn(s.keyword().span, format!("{kind} script already specified"));
        return;
    }
    let script = Script { command: first.text.clone(), span: first.span };
    let user = if s.args().len() > 1 { ctx.run_as(s, 1) } else { None };
    *slot = Some((script, user));
}

/// `startup_script_timeout` / `shutdown_script_timeout SECONDS`: 1..1000, else ignored with
/// keepalived's warning.
fn around_timeout(ctx: &mut Ctx, s: &Stmt, kind: &str) -> Option<u32> {
    let w = ctx.arg(s, 0, "a number of seconds")?;
    match w.text.parse::<u32>() {
        Ok(t) if (1..=1000).contains(&t) => Some(t),
        _ => {
            ctx.warn(w.span, format!("{kind}_script_timeout '{}' must be in [1, 1000] - ignoring", w.text));
            None
        }
    }
}

/// A multicast address of the family asked for, or an error saying what was expected.
fn multicast(ctx: &mut Ctx, s: &Stmt, what: &str, v6: bool) -> Option<std::net::IpAddr> {
    let a: std::net::IpAddr = ctx.parse(s, 0, what)?;
    if a.is_ipv6() != v6 || !a.is_multicast() {
        ctx.error(s.args()[0].span, format!("{a} is not {what}"));
        return None;
    }
    Some(a)
}

fn notification_email(ctx: &mut Ctx, g: &mut GlobalDefs, stmt: &Stmt) {
    for w in ctx.block_words(stmt) {
        if !w.text.contains('@') {
            ctx.warn(w.span, format!("`{}` does not look like an e-mail address", w.text));
        }
        g.notification_email.push(w.text.clone());
    }
}

fn smtp_server(ctx: &mut Ctx, g: &mut GlobalDefs, stmt: &Stmt) {
    let Some(host) = ctx.string(stmt, 0, "an address or host name") else {
        return;
    };
    let port = if stmt.args().len() > 1 { ctx.parse(stmt, 1, "a port number") } else { Some(25) };
    if let Some(port) = port {
        g.smtp_server = Some((host, port));
    }
}

fn lvs_sync_daemon(ctx: &mut Ctx, g: &mut GlobalDefs, stmt: &Stmt) {
    let Some(interface) = ctx.string(stmt, 0, "an interface name") else {
        return;
    };
    // As keepalived 2.2.7's `lvs_syncd_handler`: named options anywhere; the second word is
    // the VRRP instance and the third a sync id when they are not options (the old syntax).
    let mut d = LvsSyncDaemon {
        interface,
        vrrp_instance: None,
        sync_id: None,
        maxlen: None,
        port: None,
        ttl: None,
        group: None,
        span: stmt.keyword().span,
    };
    let args = stmt.args();
    let mut i = 1;
    while i < args.len() {
        let w = &args[i];
        match w.text.as_str() {
            "inst" => d.vrrp_instance = ctx.string(stmt, i + 1, "a VRRP instance name"),
            "id" => d.sync_id = ctx.parse_range(stmt, i + 1, "a sync id 0-255", 0u8, 255),
            "maxlen" => d.maxlen = ctx.parse_range(stmt, i + 1, "a length 1-65507", 1u16, 65_507),
            "port" => d.port = ctx.parse_range(stmt, i + 1, "a port 1-65535", 1u16, u16::MAX),
            "ttl" => d.ttl = ctx.parse_range(stmt, i + 1, "a TTL 1-255", 1u8, 255),
            "group" => {
                d.group = ctx.parse::<std::net::IpAddr>(stmt, i + 1, "a multicast address");
                if let Some(a) = d.group.filter(|a| !a.is_multicast()) {
                    ctx.error(args[i + 1].span, format!("lvs_sync_daemon group {a} is not a multicast address"));
                    d.group = None;
                }
            }
            _ if i == 1 => {
                d.vrrp_instance = Some(w.text.clone());
                i += 1;
                continue;
            }
            _ if i == 2 => {
                d.sync_id = ctx.parse_range(stmt, i, "a sync id 0-255", 0u8, 255);
                ctx.warn(w.span, "use `id N` for lvs_sync_daemon's sync id");
                i += 1;
                continue;
            }
            other => {
                ctx.error(
                    w.span,
                    format!("unknown option `{other}` for lvs_sync_daemon (inst, id, maxlen, port, ttl, group)"),
                );
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    g.lvs_sync_daemon = Some(d);
}

/// keepalived's decimal seconds with up to 6 decimals (`0.001`), at least 1 µs.
fn micros(ctx: &mut Ctx, st: &Stmt) -> Option<u32> {
    let w = ctx.arg(st, 0, "a number of seconds")?;
    match w.text.parse::<f64>() {
        Ok(s) if (0.000_001..=4294.0).contains(&s) => Some((s * 1e6).round() as u32),
        _ => {
            ctx.error(w.span, format!("`{}` is not a number of seconds from 0.000001", w.text));
            None
        }
    }
}

/// keepalived's `LVS_MAX_TIMEOUT`: 31 days.
const LVS_MAX_TIMEOUT: u32 = 86400 * 31;

/// `lvs_flush_on_stop [VS]` (`lvs_flush_onstop` before keepalived 2.1.5).
fn lvs_flush_on_stop(ctx: &mut Ctx, g: &mut GlobalDefs, stmt: &Stmt) {
    g.lvs_flush_on_stop = match stmt.args().first() {
        None => FlushOnStop::Full,
        Some(w) if w.text == "VS" => FlushOnStop::Vs,
        Some(w) => {
            ctx.error(w.span, format!("Unknown lvs_flush_on_stop type {} (none for the whole table, or VS)", w.text));
            return;
        }
    };
}

/// `lvs_timeouts [tcp N] [tcpfin N] [udp N]` (seconds, 0..31 days; 0 keeps the kernel's).
fn lvs_timeouts(ctx: &mut Ctx, g: &mut GlobalDefs, stmt: &Stmt) {
    let args = stmt.args();
    if args.len() < 2 {
        ctx.error(stmt.keyword().span, "`lvs_timeouts` needs at least one of tcp N, tcpfin N, udp N");
        return;
    }
    let mut t = g.lvs_timeouts.unwrap_or_default();
    t.span = stmt.keyword().span;
    let mut i = 0;
    while i < args.len() {
        let name = &args[i];
        let slot = match name.text.as_str() {
            "tcp" => &mut t.tcp,
            "tcpfin" => &mut t.tcpfin,
            "udp" => &mut t.udp,
            _ => {
                ctx.error(name.span, format!("`{}` is not tcp, tcpfin or udp", name.text));
                i += 1;
                continue;
            }
        };
        if let Some(v) = ctx.parse_range(stmt, i + 1, "a number of seconds", 0u32, LVS_MAX_TIMEOUT) {
            *slot = v;
        }
        i += 2;
    }
    g.lvs_timeouts = Some(t);
}
