//! Semantic validation across the whole model: what each keyword alone cannot know (not to
//! be confused with `crate::check`, the health checkers).

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
};

use super::{
    diag::Diagnostic,
    model::{
        AuthType, BackendKind, CheckKind, Config, ForwardMethod, GroupMember, Protocol, ServiceAddr, Tracked,
        VrrpInstance,
    },
};

/// Every cross-keyword problem of `cfg` for `backend`.
pub fn validate(cfg: &Config, backend: BackendKind) -> Vec<Diagnostic> {
    let mut d = Vec::new();
    vrrp(cfg, &mut d);
    lvs(cfg, backend, &mut d);
    script_identity(cfg, &mut d);
    anycast(cfg, &mut d);
    let alerts = cfg
        .vrrp_instances
        .iter()
        .map(|v| (&v.notify, v.span))
        .chain(cfg.vrrp_sync_groups.iter().map(|g| (&g.notify, g.span)));
    for (notify, span) in alerts {
        if notify.smtp_alert == Some(true)
            && (cfg.global.smtp_server.is_none() || cfg.global.notification_email.is_empty())
        {
            d.push(Diagnostic::warning(
                span,
                "smtp_alert is on but global_defs has no smtp_server or notification_email; no mail will be sent",
            ));
        }
    }
    d
}

/// `anycast_track_instance` names an instance and needs `anycast_table` (without it nothing is
/// announced, so the tracking would silently do nothing); a firewall-mark service has no
/// address to announce.
fn anycast(cfg: &Config, d: &mut Vec<Diagnostic>) {
    for vs in &cfg.virtual_servers {
        if let Some(name) = &vs.anycast_track_instance {
            if cfg.global.anycast_table.is_none() {
                d.push(Diagnostic::error(
                    vs.span,
                    format!(
                        "virtual_server {}: anycast_track_instance needs anycast_table in global_defs (nothing is announced without it)",
                        vs.name()
                    ),
                ));
            } else if !cfg.vrrp_instances.iter().any(|v| &v.name == name) {
                d.push(Diagnostic::error(
                    vs.span,
                    format!("virtual_server {}: anycast_track_instance {name} is not a vrrp_instance", vs.name()),
                ));
            }
        }
        if let (Some(_), super::model::ServiceAddr::Group(g)) = (cfg.global.anycast_table, &vs.addr) {
            let members = cfg.virtual_server_groups.iter().filter(|vsg| &vsg.name == g).flat_map(|vsg| &vsg.members);
            for m in members {
                if let super::model::GroupMember::Range { first, last, .. } = m {
                    let size = match (first, last) {
                        (std::net::IpAddr::V6(a), std::net::IpAddr::V6(b)) => {
                            u128::from(*b).saturating_sub(u128::from(*a)) + 1
                        }
                        _ => 0,
                    };
                    if size > super::model::ANYCAST_MAX_RANGE {
                        d.push(Diagnostic::error(
                            vs.span,
                            format!(
                                "virtual_server group {g}: range {first}-{last} has {size} addresses; anycast_table \
                                 announces at most {} per range (split it)",
                                super::model::ANYCAST_MAX_RANGE
                            ),
                        ));
                    }
                }
            }
        }
        if cfg.global.anycast_table.is_some() && matches!(vs.addr, super::model::ServiceAddr::Fwmark(_)) {
            d.push(Diagnostic::warning(
                vs.span,
                format!(
                    "virtual_server {}: a firewall-mark service has no address; anycast_table announces nothing for it",
                    vs.name()
                ),
            ));
        }
    }
}

fn vrrp(cfg: &Config, d: &mut Vec<Diagnostic>) {
    let mut vrids: HashMap<(String, bool, u8), &str> = HashMap::new();
    let mut vips: HashMap<std::net::IpAddr, &str> = HashMap::new();
    for v in &cfg.vrrp_instances {
        vrrp_instance(cfg, v, d);
        let v6 = v.virtual_ipaddress.first().is_some_and(|a| a.addr.is_ipv6());
        if let (Some(iface), Some(vrid)) = (&v.interface, v.virtual_router_id)
            && let Some(first) = vrids.insert((iface.clone(), v6, vrid), &v.name)
        {
            d.push(Diagnostic::error(
                v.span,
                format!(
                    "vrrp_instance {}: virtual_router_id {vrid} on {iface} is already used by vrrp_instance {first}",
                    v.name
                ),
            ));
        }
        for a in &v.virtual_ipaddress {
            // keepalived warns and runs it: the address stays while either instance is master.
            if let Some(first) = vips.insert(a.addr, &v.name) {
                d.push(Diagnostic::warning(
                    a.span,
                    format!(
                        "virtual address {} is also in vrrp_instance {first}; it stays while either is master",
                        a.addr
                    ),
                ));
            }
        }
        for t in &v.track_script {
            if !cfg.vrrp_scripts.iter().any(|s| s.name == t.name) {
                d.push(Diagnostic::error(t.span, format!("track_script `{}`: no vrrp_script of that name", t.name)));
            }
        }
        for t in &v.track_file {
            if !cfg.track_files.iter().any(|f| f.name == t.name) {
                d.push(Diagnostic::error(t.span, format!("track_file `{}`: no track_file block of that name", t.name)));
            }
        }
        track_process(cfg, &v.track_process, d);
        track_bfd(cfg, &v.track_bfd, d);
    }
    for g in &cfg.vrrp_sync_groups {
        track_process(cfg, &g.track_process, d);
        track_bfd(cfg, &g.track_bfd, d);
        for t in &g.track_bfd {
            let own = cfg.bfd_instances.iter().find(|b| b.name == t.name).map_or(0, |b| b.weight);
            if t.weight.unwrap_or(own) != 0 {
                d.push(Diagnostic::error(
                    t.span,
                    format!(
                        "track_bfd `{}` with a weight in vrrp_sync_group {} is not acted on yet; use weight 0 \
                         (every member in FAULT while the session is down)",
                        t.name, g.name
                    ),
                ));
            }
        }
    }
    for vs in &cfg.virtual_servers {
        for rs in &vs.real_servers {
            for c in &rs.checkers {
                if let CheckKind::Bfd { name } = &c.kind {
                    match cfg.bfd_instances.iter().find(|b| &b.name == name) {
                        None => d.push(Diagnostic::error(
                            c.span,
                            format!("BFD_CHECK `{name}`: no bfd_instance of that name"),
                        )),
                        Some(b) if !b.checker => d.push(Diagnostic::error(
                            c.span,
                            format!("BFD_CHECK `{name}`: that bfd_instance reports to VRRP only (`vrrp`)"),
                        )),
                        Some(_) => {}
                    }
                }
            }
        }
    }
    sync_groups(cfg, d);
}

/// A `track_process` list: every name is a `vrrp_track_process`, each once (keepalived's checks).
fn track_process(cfg: &Config, list: &[super::model::Tracked], d: &mut Vec<Diagnostic>) {
    for (i, t) in list.iter().enumerate() {
        if !cfg.track_processes.iter().any(|p| p.name == t.name) {
            d.push(Diagnostic::error(
                t.span,
                format!("track_process `{}`: no vrrp_track_process of that name", t.name),
            ));
        } else if list[..i].iter().any(|o| o.name == t.name) {
            d.push(Diagnostic::error(t.span, format!("track_process `{}` is listed twice", t.name)));
        }
    }
}

/// What the host has under an interface name (`missing_interfaces` asks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Iface {
    Missing,
    Loopback,
    Present,
}

/// The interfaces a VRRP configuration names that `look` says this host lacks, in
/// keepalived's words: an instance's `interface`, its and its sync group's
/// `track_interface`s, the `dev` of its addresses and routes (next hops too) and the
/// `iif` / `oif` of its rules, and the same in the static blocks (a static address without
/// `dev` on `default_interface`). keepalived's `-t` fails on them, and at start its VRRP process stops ("Non-existent
/// interface specified in configuration") and keepalived with it, unless `dynamic_interfaces`
/// lets them be made later (the engine runs such an instance in FAULT until then, and makes
/// a `use_vmac` instance's VMAC once its interface is there). An
/// instance on the loopback is one too: keepalived ignores that interface ("cannot use a
/// loopback interface"), and the instance then has none. Errors: the caller decides whether
/// the VRRP half runs at all (`-C` does not).
pub fn missing_interfaces(cfg: &Config, look: impl Fn(&str) -> Iface) -> Vec<Diagnostic> {
    let dynamic = cfg.global.dynamic_interfaces;
    let exists = |name: &str| dynamic || look(name) != Iface::Missing;
    let mut d = Vec::new();
    // A sync group's entries, which its members also carry (`sync_group_tracking`), are
    // named once, as the group's.
    let mut group_tracked = Vec::new();
    for g in &cfg.vrrp_sync_groups {
        for t in g.track_interface.iter().filter(|t| !exists(&t.name)) {
            d.push(Diagnostic::error(t.span, format!("({}) tracked interface {} doesn't exist", g.name, t.name)));
            group_tracked.push(t.span);
        }
    }
    for v in &cfg.vrrp_instances {
        if let Some(i) = v.interface.as_deref().filter(|i| look(i) == Iface::Loopback) {
            let msg = format!("({}) cannot use a loopback interface ({i}) for vrrp", v.name);
            d.push(Diagnostic::error(v.span, msg));
        }
        if let Some(i) = v.interface.as_deref().filter(|i| !exists(i)) {
            d.push(Diagnostic::error(v.span, format!("interface {i} for vrrp_instance {} doesn't exist", v.name)));
        }
        for t in v.track_interface.iter().filter(|t| !exists(&t.name) && !group_tracked.contains(&t.span)) {
            d.push(Diagnostic::error(t.span, format!("({}) tracked interface {} doesn't exist", v.name, t.name)));
        }
        let addrs = v.virtual_ipaddress.iter().chain(&v.virtual_ipaddress_excluded);
        placed(addrs, &v.virtual_routes, &v.virtual_rules, &exists, &mut d);
    }
    placed(cfg.static_ipaddress.iter(), &cfg.static_routes, &cfg.static_rules, &exists, &mut d);
    for u in cfg.interface_up_down_delays.iter().filter(|u| !exists(&u.iface)) {
        d.push(Diagnostic::error(u.span, format!("unknown interface {} specified for up/down delay", u.iface)));
    }
    // A static address without `dev` goes on `default_interface` (keepalived's default eth0).
    let default = cfg.global.default_interface.as_deref().unwrap_or("eth0");
    for a in cfg.static_ipaddress.iter().filter(|a| a.dev.is_none() && !exists(default)) {
        let msg = format!(
            "Static address {}/{} requires either an interface or default interface must exist ({default} does not)",
            a.addr, a.prefix
        );
        d.push(Diagnostic::error(a.span, msg));
    }
    d
}

/// `missing_interfaces` for one set of addresses, routes and rules.
fn placed<'a>(
    addrs: impl Iterator<Item = &'a super::model::IpAddress>,
    routes: &[super::model::Route],
    rules: &[super::Rule],
    exists: &impl Fn(&str) -> bool,
    d: &mut Vec<Diagnostic>,
) {
    for a in addrs {
        if let Some(dev) = a.dev.as_deref().filter(|i| !exists(i)) {
            let msg = format!("interface {dev} for ip address {}/{} doesn't exist", a.addr, a.prefix);
            d.push(Diagnostic::error(a.span, msg));
        }
    }
    for r in routes {
        let devs = r.dev.iter().chain(r.nexthops.iter().filter_map(|h| h.dev.as_ref()));
        for dev in devs.filter(|i| !exists(i)) {
            let msg = format!("interface {dev} for route {}/{} doesn't exist", r.dest, r.prefix);
            d.push(Diagnostic::error(r.span, msg));
        }
    }
    for r in rules {
        for dev in r.iif.iter().chain(&r.oif).filter(|i| !exists(i)) {
            d.push(Diagnostic::error(r.span, format!("interface {dev} for rule doesn't exist")));
        }
    }
}

/// How a service is named, as keepalived's validate_check_config asks: by address (an
/// address and port, or a group with an address range), by firewall mark (a mark, or a group
/// with one; a group may be both), and whether a port it is named by is 0.
struct Naming {
    by_address: bool,
    by_mark: bool,
    port_zero: bool,
}

fn naming(groups: &[super::model::VirtualServerGroup], addr: &ServiceAddr) -> Naming {
    match addr {
        ServiceAddr::Inet(sa) => Naming { by_address: true, by_mark: false, port_zero: sa.port() == 0 },
        ServiceAddr::Fwmark(_) => Naming { by_address: false, by_mark: true, port_zero: false },
        ServiceAddr::Group(g) => {
            let members = groups.iter().find(|x| &x.name == g).map(|x| x.members.as_slice()).unwrap_or_default();
            Naming {
                by_address: members.iter().any(|m| matches!(m, GroupMember::Range { .. })),
                by_mark: members.iter().any(|m| matches!(m, GroupMember::Fwmark(_))),
                port_zero: members.iter().any(|m| matches!(m, GroupMember::Range { port: 0, .. })),
            }
        }
    }
}

/// keepalived's validate_check_config, with its warnings. For a service named by address (an
/// address and port, or a group with address ranges): no `protocol` means UDP (the kernel's
/// choice for protocol 0, which keepalived makes explicit), `ops` only with UDP, and port 0
/// only with persistence (360 s when none is set). A firewall mark matches every protocol
/// and any address: `ha_suspend` is cleared, and a group of marks alone ignores `protocol`
/// (a `virtual_server fwmark` does so as it is read, `lvs::VIRTUAL_SERVER`). A service
/// without real servers is skipped, as keepalived drops it first.
pub fn service_defaults(cfg: &mut Config) -> Vec<Diagnostic> {
    let mut d = Vec::new();
    let groups = &cfg.virtual_server_groups;
    for vs in cfg.virtual_servers.iter_mut().filter(|vs| !vs.ignored()) {
        let Naming { by_address, by_mark, port_zero } = naming(groups, &vs.addr);
        if vs.ha_suspend && by_mark {
            let msg = format!(
                "Virtual server {}: cannot use ha_suspend with fwmarks - clearing ha_suspend",
                vs.keepalived_name()
            );
            d.push(Diagnostic::warning(vs.span, msg));
            vs.ha_suspend = false;
        }
        if by_address {
            if !vs.protocol_set {
                let msg = format!("Virtual server {}: no protocol set - defaulting to UDP", vs.keepalived_name());
                d.push(Diagnostic::warning(vs.span, msg));
                vs.protocol = Protocol::Udp;
                vs.protocol_set = true;
            }
            if vs.ops && vs.protocol != Protocol::Udp {
                let msg =
                    format!("Virtual server {}: one packet scheduling requires UDP - resetting", vs.keepalived_name());
                d.push(Diagnostic::warning(vs.span, msg));
                vs.ops = false;
            }
        }
        if port_zero && vs.persistence_timeout.unwrap_or(0) == 0 {
            let msg = format!(
                "Virtual server {}: zero port only valid for persistent services - setting",
                vs.keepalived_name()
            );
            d.push(Diagnostic::warning(vs.span, msg));
            vs.persistence_timeout = Some(360);
        }
        // A `virtual_server fwmark` said so as it was read.
        if by_mark && !by_address && vs.protocol_set && matches!(vs.addr, ServiceAddr::Group(_)) {
            let msg = format!(
                "Warning: Virtual server {}: protocol specified for fwmark - protocol will be ignored",
                vs.keepalived_name()
            );
            d.push(Diagnostic::warning(vs.span, msg));
        }
    }
    d
}

/// keepalived's `vrrp_complete_instance`: a sync group member and the address owner
/// (priority 255) run with a fixed priority, so their own weighted tracking cannot act. As
/// keepalived does (with its config errors, warnings here): a weighted tracked interface of a
/// member tracks with weight 0 (down = FAULT), the owner's is dropped; a weighted script, bfd,
/// or a file with a weight other than 1 is dropped; a file with weight 1 (the default) tracks
/// with weight 0. Runs before `sync_group_tracking` (the group's own entries come after, as
/// in keepalived). Members of a group with `sync_group_tracking_weight` keep their weights.
pub fn fixed_priority_tracking(cfg: &mut Config) -> Vec<Diagnostic> {
    let mut d = Vec::new();
    let members: Vec<String> =
        cfg.vrrp_sync_groups.iter().filter(|g| !g.tracking_weight).flat_map(|g| g.group.iter().cloned()).collect();
    let (scripts, files, bfds) = (&cfg.vrrp_scripts, &cfg.track_files, &cfg.bfd_instances);
    for v in &mut cfg.vrrp_instances {
        let sync = members.contains(&v.name);
        if !sync && v.priority != 255 {
            continue;
        }
        let (name, due) = (v.name.clone(), if sync { "SYNC group" } else { "address owner" });
        let mut warn = |span, msg: String| d.push(Diagnostic::warning(span, format!("({name}) {msg}")));
        v.track_interface.retain_mut(|t| {
            if t.weight.unwrap_or(0) == 0 {
                return true;
            }
            let weight = if sync { "weight " } else { "" };
            warn(t.span, format!("ignoring {} tracked interface {weight}due to {due}", t.name));
            t.weight = Some(0);
            sync
        });
        v.track_script.retain(|t| {
            let own = scripts.iter().find(|s| s.name == t.name).map_or(0, |s| s.weight);
            if t.weight.unwrap_or(own) == 0 {
                return true;
            }
            warn(t.span, format!("ignoring tracked script {} with weights due to {due}", t.name));
            false
        });
        v.track_file.retain_mut(|t| {
            let own = files.iter().find(|f| f.name == t.name).map_or(0, |f| f.weight);
            match t.weight.unwrap_or(own) {
                0 => true,
                1 => {
                    warn(
                        t.span,
                        format!("ignoring weight from tracked file {} due to {due}. specify weight 0", t.name),
                    );
                    t.weight = Some(0);
                    true
                }
                w => {
                    warn(t.span, format!("ignoring tracked file {} with weight {w} due to {due}", t.name));
                    false
                }
            }
        });
        v.track_bfd.retain(|t| {
            let own = bfds.iter().find(|b| b.name == t.name).map_or(0, |b| b.weight);
            match t.weight.unwrap_or(own) {
                0 => true,
                w => {
                    warn(t.span, format!("ignoring tracked bfd {} with weight {w} due to {due}", t.name));
                    false
                }
            }
        });
    }
    d
}

/// keepalived's `vrrp_complete_instance` under `vrrp_strict`: "Strict mode does not support
/// authentication. Ignoring." The instance runs without it (keepalived's peers in strict mode
/// expect none), with keepalived's config error as a warning.
pub fn strict_mode_authentication(cfg: &mut Config) -> Vec<Diagnostic> {
    let mut d = Vec::new();
    let g = &cfg.global;
    for v in cfg.vrrp_instances.iter_mut().filter(|v| v.authentication.is_some() && v.strict(g)) {
        d.push(Diagnostic::warning(
            v.span,
            format!("({}) Strict mode does not support authentication. Ignoring.", v.name),
        ));
        v.authentication = None;
    }
    d
}

/// keepalived's `sync_group_tracking_init`: each sync group's `track_file`, `track_script`
/// and `track_interface` entries are tracked by every member with the group's weight
/// (default: the tracked object's own; an interface's is 0); where a member tracks the same
/// object itself, the group's weight replaces the member's unless the member's is 0. Run
/// after `validate` (unknown names are errors there and skipped here).
pub fn sync_group_tracking(cfg: &mut Config) {
    for g in &cfg.vrrp_sync_groups {
        let members = |v: &VrrpInstance| g.group.contains(&v.name);
        for t in &g.track_file {
            let Some(f) = cfg.track_files.iter().find(|f| f.name == t.name) else { continue };
            for v in cfg.vrrp_instances.iter_mut().filter(|v| members(v)) {
                track_for_group(&mut v.track_file, t, (f.weight, f.reverse));
            }
        }
        for t in &g.track_script {
            let Some(s) = cfg.vrrp_scripts.iter().find(|s| s.name == t.name) else { continue };
            for v in cfg.vrrp_instances.iter_mut().filter(|v| members(v)) {
                track_for_group(&mut v.track_script, t, (s.weight, s.reverse));
            }
        }
        for t in &g.track_interface {
            for v in cfg.vrrp_instances.iter_mut().filter(|v| members(v)) {
                track_for_group(&mut v.track_interface, t, (0, false));
            }
        }
    }
}

/// A sync group's entry `t` in a member's list `own`; `default`: the tracked object's own
/// (weight, reverse).
fn track_for_group(own: &mut Vec<Tracked>, t: &Tracked, default: (i32, bool)) {
    let (weight, reverse) = (t.weight.unwrap_or(default.0), t.reverse.unwrap_or(default.1));
    match own.iter_mut().find(|o| o.name == t.name) {
        Some(o) if o.weight.unwrap_or(default.0) == 0 => {}
        Some(o) => (o.weight, o.reverse) = (Some(weight), Some(reverse)),
        None => own.push(Tracked { name: t.name.clone(), weight: Some(weight), reverse: Some(reverse), span: t.span }),
    }
}

/// Each `track_bfd` entry names a bfd_instance, once.
fn track_bfd(cfg: &Config, list: &[Tracked], d: &mut Vec<Diagnostic>) {
    for (i, t) in list.iter().enumerate() {
        let found = cfg.bfd_instances.iter().find(|b| b.name == t.name);
        if found.is_none() {
            d.push(Diagnostic::error(t.span, format!("track_bfd `{}`: no bfd_instance of that name", t.name)));
        } else if found.is_some_and(|b| !b.vrrp) {
            d.push(Diagnostic::error(
                t.span,
                format!("track_bfd `{}`: that bfd_instance reports to the checkers only (`checker`)", t.name),
            ));
        } else if list[..i].iter().any(|o| o.name == t.name) {
            d.push(Diagnostic::error(t.span, format!("track_bfd `{}` is listed twice", t.name)));
        }
    }
}

fn sync_groups(cfg: &Config, d: &mut Vec<Diagnostic>) {
    let mut member_of: HashMap<&str, &str> = HashMap::new();
    for g in &cfg.vrrp_sync_groups {
        let owner = cfg.vrrp_instances.iter().any(|v| v.priority == 255 && g.group.contains(&v.name));
        // keepalived (vrrp.c, sync_group_tracking_init): a weighted entry with the address
        // owner as a member is a config error (it sets the weight to 0).
        let weighted = |kind: &str, t: &Tracked, weight: i32| {
            (owner && weight != 0).then(|| {
                Diagnostic::error(
                    t.span,
                    format!(
                        "vrrp_sync_group {}: {kind} `{}` cannot be weighted with a member at priority 255 (the address owner); use weight 0",
                        g.name, t.name
                    ),
                )
            })
        };
        for t in &g.track_interface {
            d.extend(weighted("track_interface", t, t.weight.unwrap_or(0)));
        }
        for t in &g.track_file {
            d.extend(match cfg.track_files.iter().find(|f| f.name == t.name) {
                Some(f) => weighted("track_file", t, t.weight.unwrap_or(f.weight)),
                None => Some(Diagnostic::error(
                    t.span,
                    format!("track_file `{}`: no track_file block of that name", t.name),
                )),
            });
        }
        for t in &g.track_script {
            d.extend(match cfg.vrrp_scripts.iter().find(|s| s.name == t.name) {
                Some(s) => weighted("track_script", t, t.weight.unwrap_or(s.weight)),
                None => {
                    Some(Diagnostic::error(t.span, format!("track_script `{}`: no vrrp_script of that name", t.name)))
                }
            });
        }
        for m in &g.group {
            if !cfg.vrrp_instances.iter().any(|v| &v.name == m) {
                d.push(Diagnostic::error(g.span, format!("vrrp_sync_group {}: no vrrp_instance `{m}`", g.name)));
            }
            if let Some(other) = member_of.insert(m, &g.name) {
                d.push(Diagnostic::error(
                    g.span,
                    format!("vrrp_instance {m} is in vrrp_sync_group {other} and {}", g.name),
                ));
            }
        }
    }
}

/// One instance's own settings, alone.
/// The election variants keepalived resets with a config error (vrrp.c
/// `vrrp_complete_instance`, vrrp_parser.c `vrrp_end_handler`): refused here, so the config
/// says what runs.
fn election_variants(cfg: &Config, v: &VrrpInstance, d: &mut Vec<Diagnostic>) {
    let g = &cfg.global;
    let mut err = |what: String| d.push(Diagnostic::error(v.span, format!("vrrp_instance {}: {what}", v.name)));
    if v.strict(g) {
        if let Some(n) = v.down_timer_adverts.or(g.vrrp_down_timer_adverts).filter(|n| *n != 3) {
            err(format!(
                "down_timer_adverts {n} is incompatible with vrrp_strict (keepalived resets it to 3); remove it"
            ));
        }
        if v.lower_prio_no_advert == Some(false) {
            err("lower_prio_no_advert false is incompatible with vrrp_strict (keepalived forces it on); remove it"
                .into());
        }
        if v.higher_prio_send_advert == Some(true) {
            err("higher_prio_send_advert is incompatible with vrrp_strict (keepalived resets it); remove it".into());
        }
        if let Some(n) = v.garp_lower_prio_repeat.filter(|n| *n != 0) {
            err(format!(
                "garp_lower_prio_repeat {n} is incompatible with vrrp_strict (keepalived resets it to 0); remove it"
            ));
        }
        if let Some(n) = v.garp_lower_prio_delay.filter(|n| *n != 0) {
            err(format!(
                "garp_lower_prio_delay {n} is incompatible with vrrp_strict (keepalived resets it to 0); remove it"
            ));
        }
        if v.preempt_delay != 0 {
            err("preempt_delay is incompatible with vrrp_strict (keepalived resets it to 0); remove it".into());
        }
        if let Some(state) = v.state.filter(|s| (*s == super::model::VrrpState::Master) != (v.priority == 255)) {
            err(format!(
                "state {} must match being the address owner (priority 255) under vrrp_strict (keepalived \
                 resets the state); remove it or set the priority to match",
                if state == super::model::VrrpState::Master { "MASTER" } else { "BACKUP" }
            ));
        }
    }
    if v.virtual_ipaddress.is_empty() && (v.strict(g) || v.vrrp_version(g) == 3) {
        err("no virtual_ipaddress: VRRP version 3 and vrrp_strict need at least one (keepalived: \
             \"No VIP specified; at least one is required\"); add one"
            .into());
    }
    if v.native_ipv6 && v.virtual_ipaddress.iter().any(|a| a.addr.is_ipv4()) {
        err("native_ipv6 with IPv4 virtual addresses (keepalived: \"Cannot specify native_ipv6 with IPv4 addresses\"); remove one".into());
    }
    if let Some(dst) = v.mcast_dst_ip {
        if !v.unicast_peer.is_empty() {
            err("mcast_dst_ip with unicast_peer: adverts go to the peers (keepalived ignores the group); remove one"
                .into());
        }
        if v.virtual_ipaddress.first().is_some_and(|a| a.addr.is_ipv6() != dst.is_ipv6()) {
            err(format!("mcast_dst_ip {dst} is not of the virtual addresses' family (keepalived skips it); remove it"));
        }
    }
    if v.unicast_ttl.is_some() && v.unicast_peer.is_empty() {
        err("unicast_ttl needs unicast_peer (keepalived reports a config error and resets it); remove it".into());
    }
    let v6 = v.virtual_ipaddress.first().is_some_and(|a| a.addr.is_ipv6());
    if v.vmac_xmit_base && v.use_vmac.is_none() {
        err("vmac_xmit_base is only valid with a vmac (keepalived reports a config error and clears it); add use_vmac or remove it".into());
    }
    if v.use_vmac.is_some() {
        if v.promote_secondaries {
            err("promote_secondaries is automatically set for vmacs (keepalived reports a config error and ignores it); remove it".into());
        }
        if !v.unicast_peer.is_empty() && !v.vmac_xmit_base {
            err("unicast with use_vmac requires vmac_xmit_base (keepalived reports a config error and sets it); add vmac_xmit_base".into());
        }
        if v.strict(g) && v.use_vmac.as_ref().is_some_and(|u| u.mac.is_some()) {
            err("use_vmac: a MAC address of its own is incompatible with vrrp_strict (keepalived reports a config \
                 error and uses the VRRP MAC); remove the address"
                .into());
        }
        if v.strict(g) && v.vmac_xmit_base {
            err("vmac_xmit_base is incompatible with vrrp_strict (keepalived reports a config error and clears it); remove it".into());
        }
        if let Some(name) = v.use_vmac.as_ref().and_then(|u| u.name.as_deref()) {
            if let Some(o) = cfg
                .vrrp_instances
                .iter()
                .take_while(|o| o.name != v.name)
                .find(|o| o.use_vmac.as_ref().and_then(|u| u.name.as_deref()) == Some(name))
            {
                err(format!(
                    "VRRP instance {} is already using {name} (keepalived ignores the name); name another VMAC",
                    o.name
                ));
            }
            if v.interface.as_deref() == Some(name) {
                err(format!("the VMAC cannot be named {name}, the instance's own interface; name another VMAC"));
            }
        }
    }
    if v.unicast_ttl == Some(0) && !v6 {
        err("unicast_ttl 0: lb-daemon's IPv4 adverts leave through the kernel, whose TTL is 1-255; use 1 or more"
            .into());
    }
}

fn vrrp_instance(cfg: &Config, v: &VrrpInstance, d: &mut Vec<Diagnostic>) {
    election_variants(cfg, v, d);
    // keepalived's VRRP_FLAG_UNICAST_CONFIGURED keywords (unicast_peer and
    // unicast_fault_no_peer aside).
    let unicast_configured = v.unicast_src_ip.is_some() || v.old_unicast_checksum.is_some() || v.check_unicast_src;
    if unicast_configured && v.unicast_peer.is_empty() && !v.unicast_fault_no_peer {
        d.push(Diagnostic::warning(
            v.span,
            format!(
                "({}) A unicast keyword has been specified without any unicast peers. Defaulting to \
                 multicast (deprecated in keepalived; add unicast_peer, or unicast_fault_no_peer to \
                 stay in FAULT instead)",
                v.name
            ),
        ));
    }
    let version = v.vrrp_version(&cfg.global);
    let v6 = v.virtual_ipaddress.first().is_some_and(|a| a.addr.is_ipv6());
    if v.virtual_ipaddress.iter().any(|a| a.addr.is_ipv6() != v6) {
        d.push(Diagnostic::error(v.span, format!(
            "vrrp_instance {}: virtual_ipaddress mixes IPv4 and IPv6; put the other family in virtual_ipaddress_excluded or its own instance",
            v.name
        )));
    }
    if version == 2 && v6 {
        d.push(Diagnostic::error(
            v.span,
            format!("vrrp_instance {}: IPv6 addresses need VRRP version 3 (remove `version 2`)", v.name),
        ));
    }
    if version == 2 && !v.advert_int_cs.is_multiple_of(100) {
        d.push(Diagnostic::error(
            v.span,
            format!(
                "vrrp_instance {}: advert_int {}.{:02} s needs VRRP version 3; version 2 counts whole seconds",
                v.name,
                v.advert_int_cs / 100,
                v.advert_int_cs % 100
            ),
        ));
    }
    if version == 3 && v.advert_int_cs > 4095 {
        d.push(Diagnostic::error(v.span, format!("vrrp_instance {}: VRRPv3 advert_int is at most 40.95 s", v.name)));
    }
    if let Some(auth) = &v.authentication {
        if version == 3 && auth.auth_type == AuthType::Ah {
            d.push(Diagnostic::error(
                v.span,
                format!("vrrp_instance {}: AH authentication exists only in VRRP version 2", v.name),
            ));
        } else if version == 3 {
            d.push(Diagnostic::warning(
                v.span,
                format!("vrrp_instance {}: VRRPv3 has no authentication (RFC 5798); auth_pass is ignored", v.name),
            ));
        }
    }
    if v.priority == 255 {
        d.push(Diagnostic::warning(v.span, format!(
            "vrrp_instance {}: priority 255 declares this node the address owner: it is always master and never preempted",
            v.name
        )));
    }
    if v.nopreempt && v.state == Some(super::model::VrrpState::Master) {
        d.push(Diagnostic::warning(
            v.span,
            format!(
                "vrrp_instance {}: nopreempt has no effect with `state MASTER` (keepalived requires state BACKUP)",
                v.name
            ),
        ));
    }
}

/// keepalived adds each address of a virtual server on its own: one an earlier virtual server
/// has keeps that one's IPVS service ("Service already exists"), and this one's real servers
/// are added to it. The XDP data plane serves an address from one virtual server only.
fn shared_addresses(cfg: &Config, backend: BackendKind, d: &mut Vec<Diagnostic>) {
    // (first, last, port, protocol) of an address range a virtual server names.
    type Range = (IpAddr, IpAddr, u16, u8);
    // Marks with their family: IPVS keys a mark service by both.
    type Named = (Vec<Range>, Vec<(u32, bool)>);
    let named = |vs: &super::model::VirtualServer| -> Named {
        let proto = vs.protocol.ip_proto();
        match &vs.addr {
            ServiceAddr::Inet(a) => (vec![(a.ip(), a.ip(), a.port(), proto)], Vec::new()),
            ServiceAddr::Fwmark(m) => (Vec::new(), vec![(*m, vs.mark_family_v6())]),
            ServiceAddr::Group(g) => {
                let members = cfg.virtual_server_groups.iter().find(|x| &x.name == g).map(|x| x.members.as_slice());
                let mut ranges = Vec::new();
                let mut marks = Vec::new();
                for m in members.unwrap_or_default() {
                    match m {
                        GroupMember::Range { first, last, port } => ranges.push((*first, *last, *port, proto)),
                        GroupMember::Fwmark(m) => marks.push((*m, vs.mark_family_v6())),
                    }
                }
                (ranges, marks)
            }
        }
    };
    // Ranges vary in the last IPv4 octet or IPv6 group only.
    let split = |a: IpAddr| -> (Vec<u16>, u16) {
        match a {
            IpAddr::V4(a) => (a.octets()[..3].iter().map(|o| u16::from(*o)).collect(), u16::from(a.octets()[3])),
            IpAddr::V6(a) => (a.segments()[..7].to_vec(), a.segments()[7]),
        }
    };
    let overlap = |a: &Range, b: &Range| {
        let ((pa, fa), (_, la), (pb, fb), (_, lb)) = (split(a.0), split(a.1), split(b.0), split(b.1));
        a.0.is_ipv4() == b.0.is_ipv4() && a.2 == b.2 && a.3 == b.3 && pa == pb && fa <= lb && fb <= la
    };
    let mut earlier: Vec<Named> = Vec::new();
    for vs in cfg.virtual_servers.iter().filter(|vs| !vs.ignored()) {
        let (ranges, marks) = named(vs);
        let shared = earlier.iter().any(|(er, em)| {
            ranges.iter().any(|r| er.iter().any(|e| overlap(r, e))) || marks.iter().any(|m| em.contains(m))
        });
        if shared {
            let msg = format!(
                "virtual_server {}: an address or mark an earlier virtual_server has: keepalived adds this one's \
                 real servers to that one's IPVS service, and the XDP data plane serves an address from one \
                 virtual_server",
                vs.name()
            );
            ipvs_only(backend, vs.span, msg, d);
        }
        earlier.push((ranges, marks));
    }
}

/// Something only the IPVS backend does: an error with `--backend bpf` (naming the
/// alternative), a warning with auto (which then picks IPVS), nothing with IPVS.
fn ipvs_only(backend: BackendKind, span: super::diag::Span, msg: String, d: &mut Vec<Diagnostic>) {
    match backend {
        BackendKind::Bpf => d.push(Diagnostic::error(span, format!("{msg}; use --backend ipvs (or lb_backend ipvs)"))),
        BackendKind::Auto => d.push(Diagnostic::warning(span, format!("{msg}; --backend auto will use IPVS"))),
        BackendKind::Ipvs => {}
    }
}

fn lvs(cfg: &Config, backend: BackendKind, d: &mut Vec<Diagnostic>) {
    // keepalived 2.2.7's `vrrp_complete_init`: an instance it cannot find clears the sync
    // config (and its checker starts no daemon for a named instance): no sync at all.
    if let Some(l) = &cfg.global.lvs_sync_daemon
        && let Some(name) = &l.vrrp_instance
        && !cfg.vrrp_instances.iter().any(|v| &v.name == name)
    {
        d.push(Diagnostic::warning(
            l.span,
            format!("lvs_sync_daemon: no vrrp_instance `{name}`; connection sync is off (as keepalived)"),
        ));
    }
    if let Some(t) = &cfg.global.lvs_timeouts {
        ipvs_only(
            backend,
            t.span,
            "lvs_timeouts sets IPVS's connection timeouts; the XDP data plane's flow timeouts are fixed \
             (docs/dataplane.md)"
                .into(),
            d,
        );
    }
    shared_addresses(cfg, backend, d);
    let mut seen: HashMap<(ServiceAddr, u8), ()> = HashMap::new();
    for vs in &cfg.virtual_servers {
        let what = match &vs.addr {
            ServiceAddr::Inet(a) => a.to_string(),
            ServiceAddr::Fwmark(m) => format!("fwmark {m}"),
            ServiceAddr::Group(g) => format!("group {g}"),
        };
        // keepalived drops a service without real servers before anything else looks at it.
        if !vs.ignored() && seen.insert((vs.addr.clone(), vs.protocol.ip_proto()), ()).is_some() {
            d.push(Diagnostic::error(vs.span, format!("virtual_server {what} ({:?}) is defined twice", vs.protocol)));
        }
        if let ServiceAddr::Group(g) = &vs.addr
            && !cfg.virtual_server_groups.iter().any(|x| &x.name == g)
        {
            d.push(Diagnostic::error(
                vs.span,
                format!("virtual_server group {g}: no virtual_server_group of that name"),
            ));
        }
        if let (ServiceAddr::Inet(a), Some(g)) = (&vs.addr, vs.persistence_granularity)
            && a.is_ipv4()
            && g > 32
        {
            d.push(Diagnostic::error(
                vs.span,
                format!("virtual_server {what}: persistence_granularity /{g} is longer than an IPv4 address"),
            ));
        }
        if vs.ignored() {
            d.push(Diagnostic::warning(
                vs.span,
                format!("Virtual server {} has no real servers - ignoring", vs.keepalived_name()),
            ));
        }
        let mut reals = HashMap::new();
        for rs in &vs.real_servers {
            if reals.insert(rs.addr, ()).is_some() {
                d.push(Diagnostic::error(
                    rs.span,
                    format!("real_server {} appears twice in virtual_server {what}", rs.addr),
                ));
            }
            for c in &rs.checkers {
                // keepalived's check_conn_opts: it drops such a checker (so the real server
                // may count as up without it); refused here.
                let hosts: Vec<(Option<IpAddr>, bool)> = match &c.kind {
                    CheckKind::Misc { .. } | CheckKind::File { .. } | CheckKind::Bfd { .. } => Vec::new(),
                    CheckKind::Smtp { hosts, main, .. } => main
                        .then_some((c.connect_ip, c.bind_if.is_some()))
                        .into_iter()
                        .chain(hosts.iter().map(|h| (h.connect_ip, h.bind_if.is_some())))
                        .collect(),
                    _ => vec![(c.connect_ip, c.bind_if.is_some())],
                };
                for (ip, bound) in hosts {
                    let dst = ip.unwrap_or(rs.addr.ip());
                    if !bound && matches!(dst, IpAddr::V6(a) if a.is_unicast_link_local()) {
                        d.push(Diagnostic::error(
                            c.span,
                            format!(
                                "Checker link local address {dst} requires a bind_if (keepalived drops the checker; \
                                 name the interface with bind_if)"
                            ),
                        ));
                    }
                }
                if let CheckKind::File { track_file, .. } = &c.kind
                    && !track_file.is_empty()
                    && !cfg.track_files.iter().any(|f| &f.name == track_file)
                {
                    d.push(Diagnostic::error(
                        c.span,
                        format!("FILE_CHECK: track_file `{track_file}`: no track_file block of that name"),
                    ));
                }
            }
            if rs.u_threshold != 0 || rs.l_threshold != 0 {
                let msg = format!(
                    "real_server {}: uthreshold / lthreshold (connection thresholds) are not implemented by the \
                     XDP data plane",
                    rs.addr
                );
                ipvs_only(backend, rs.threshold_span.unwrap_or(rs.span), msg, d);
            }
            if rs.forward(vs) != vs.forward {
                let msg = format!(
                    "real_server {}: lvs_method {} differs from the virtual_server's lb_kind {}; the XDP data \
                     plane forwards all of a service's real servers one way",
                    rs.addr,
                    rs.forward(vs).name(),
                    vs.forward.name()
                );
                ipvs_only(backend, rs.forward_span.unwrap_or(rs.span), msg, d);
            }
        }
        // keepalived's rs_end_handler: a server not forwarded by TUN must be of the service's
        // family ("Address family of virtual server and real server ... don't match -
        // skipping", a config error): its address's, or a firewall mark's as settled at load.
        let family_v6 = match &vs.addr {
            ServiceAddr::Inet(sa) => Some(sa.is_ipv6()),
            ServiceAddr::Fwmark(_) => Some(vs.mark_family_v6()),
            ServiceAddr::Group(_) => None,
        };
        if let Some(v6) = family_v6 {
            let sorry = vs.sorry_server.map(|s| (s, vs.sorry_forward(), vs.span));
            let servers = vs.real_servers.iter().map(|r| (r.addr, r.forward(vs), r.span)).chain(sorry);
            for (addr, _, span) in servers.filter(|(a, f, _)| *f != ForwardMethod::Tun && a.is_ipv6() != v6) {
                d.push(Diagnostic::error(
                    span,
                    format!(
                        "{addr} is not of the virtual server's family (keepalived: \"Address family of virtual \
                         server and real server ... don't match - skipping\"); forward it by TUN or remove it"
                    ),
                ));
            }
        }
        if let Some(pe) = &vs.persistence_engine {
            let msg = format!(
                "persistence_engine {pe}: IPVS's persistence engines (SIP Call-ID persistence) are not in the XDP \
                 data plane"
            );
            ipvs_only(backend, vs.persistence_engine_span.unwrap_or(vs.span), msg, d);
        }
        // keepalived's validate_check_config: DR and TUN send to the service's port, and a real
        // or sorry server naming another is reset to it, with its warning (IPVS is then
        // programmed with the service's port, `ipvs::plan`; XDP keeps the port for DR and TUN).
        if let ServiceAddr::Inet(va) = &vs.addr {
            let resets =
                |f: ForwardMethod, a: SocketAddr| f != ForwardMethod::Nat && a.port() != 0 && a.port() != va.port();
            let vs_name = vs.keepalived_name();
            for rs in vs.real_servers.iter().filter(|rs| resets(rs.forward(vs), rs.addr)) {
                d.push(Diagnostic::warning(
                    rs.span,
                    format!(
                        "virtual server {vs_name} and real server {} ports don't match - resetting (lvs_method {} \
                         sends to port {})",
                        vs.keepalived_real_name(rs.addr),
                        rs.forward(vs).name(),
                        va.port()
                    ),
                ));
            }
            if vs.sorry_server.is_some_and(|s| resets(vs.sorry_forward(), s)) {
                d.push(Diagnostic::warning(
                    vs.sorry_server_forward_span.unwrap_or(vs.span),
                    format!(
                        "virtual server {vs_name} and sorry server ports don't match - resetting (forwarded by {} to \
                         port {})",
                        vs.sorry_forward().name(),
                        va.port()
                    ),
                ));
            }
        }
        if let Some(s) = vs.sorry_server.filter(|_| vs.sorry_forward() != vs.forward) {
            let msg = format!(
                "sorry_server {s}: forwarded by {} (sorry_server_lvs_method, or lb_kind as it stood at the \
                 sorry_server line, as keepalived), the virtual_server by lb_kind {}; the XDP data plane forwards \
                 all of a service's servers one way",
                vs.sorry_forward().name(),
                vs.forward.name()
            );
            ipvs_only(backend, vs.sorry_server_forward_span.unwrap_or(vs.span), msg, d);
        }
        if let Some(s) = vs.sorry_server.filter(|_| vs.sorry_server_inhibit) {
            let msg = format!(
                "sorry_server {s}: sorry_server_inhibit keeps the sorry server's open connections going to it \
                 once real servers are back (IPVS holds it at weight 0); the XDP data plane does not track the \
                 sorry server's flows, so they would move to the real servers"
            );
            ipvs_only(backend, vs.sorry_server_inhibit_span.unwrap_or(vs.span), msg, d);
        }
        let named = naming(&cfg.virtual_server_groups, &vs.addr);
        let mut unsupported = Vec::new();
        if !vs.scheduler.in_bpf() {
            unsupported.push(format!(
                "scheduler {} (the BPF data plane has rr, wrr, lc, wlc, lblc, sh, dh, mh)",
                vs.scheduler.name()
            ));
        }
        if named.by_mark {
            unsupported.push("firewall marks (XDP runs before netfilter sets them)".to_string());
        }
        if vs.ops {
            unsupported.push("one-packet scheduling (ops)".to_string());
        }
        if named.port_zero {
            unsupported.push("port 0 (IPVS matches every port there; XDP looks services up by port)".to_string());
        }
        if vs.protocol == super::model::Protocol::Sctp {
            unsupported.push("SCTP (XDP does not update SCTP's CRC32c checksum)".to_string());
        }
        if !unsupported.is_empty() {
            let msg = format!("virtual_server {what}: the BPF data plane cannot run {}", unsupported.join(", "));
            match backend {
                BackendKind::Bpf => {
                    d.push(Diagnostic::error(vs.span, format!("{msg}; use --backend ipvs (or lb_backend ipvs)")))
                }
                BackendKind::Auto => {
                    d.push(Diagnostic::warning(vs.span, format!("{msg}; --backend auto will use IPVS")))
                }
                BackendKind::Ipvs => {}
            }
        }
    }
}

/// With `enable_script_security`, keepalived runs a script as its own `user`, else
/// `script_user`, else the `keepalived_script` user; when none of those exists it runs none of
/// these scripts (each is removed with "Unable to set default user"), which silently drops
/// tracking, checks and notifications. Refused here, with what to do instead.
fn script_identity(cfg: &Config, d: &mut Vec<Diagnostic>) {
    let g = &cfg.global;
    if !g.enable_script_security || g.script_user.is_some() {
        return;
    }
    let Some((first, _)) = super::scripts(cfg).into_iter().find(|(_, own_user)| !own_user) else {
        return;
    };
    if matches!(nix::unistd::User::from_name("keepalived_script"), Ok(Some(_))) {
        return;
    }
    d.push(Diagnostic::error(
        first.span,
        "enable_script_security: no script_user is set and there is no keepalived_script user, so \
         keepalived would run none of the scripts (it removes them); set script_user in global_defs \
         or create the keepalived_script user",
    ));
}
