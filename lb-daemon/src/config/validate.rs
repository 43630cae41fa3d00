//! Semantic validation across the whole model: what each keyword alone cannot know (not to
//! be confused with `crate::check`, the health checkers).

use std::collections::HashMap;

use super::{
    diag::Diagnostic,
    model::{AuthType, BackendKind, Config, ServiceAddr, VrrpInstance},
};

/// Every cross-keyword problem of `cfg` for `backend`.
pub fn validate(cfg: &Config, backend: BackendKind) -> Vec<Diagnostic> {
    let mut d = Vec::new();
    vrrp(cfg, &mut d);
    lvs(cfg, backend, &mut d);
    let alerts = cfg
        .vrrp_instances
        .iter()
        .map(|v| (&v.notify, v.span))
        .chain(cfg.vrrp_sync_groups.iter().map(|g| (&g.notify, g.span)));
    for (notify, span) in alerts {
        if notify.smtp_alert && (cfg.global.smtp_server.is_none() || cfg.global.notification_email.is_empty()) {
            d.push(Diagnostic::warning(
                span,
                "smtp_alert is on but global_defs has no smtp_server or notification_email; no mail will be sent",
            ));
        }
    }
    d
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
    }
    sync_groups(cfg, d);
}

fn sync_groups(cfg: &Config, d: &mut Vec<Diagnostic>) {
    let mut member_of: HashMap<&str, &str> = HashMap::new();
    for g in &cfg.vrrp_sync_groups {
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
fn vrrp_instance(cfg: &Config, v: &VrrpInstance, d: &mut Vec<Diagnostic>) {
    let version = v.version.unwrap_or(cfg.global.vrrp_version);
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
            format!("vrrp_instance {}: IPv6 addresses need VRRP version 3 (`version 3`)", v.name),
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

fn lvs(cfg: &Config, backend: BackendKind, d: &mut Vec<Diagnostic>) {
    let mut seen: HashMap<(ServiceAddr, u8), ()> = HashMap::new();
    for vs in &cfg.virtual_servers {
        let what = match &vs.addr {
            ServiceAddr::Inet(a) => a.to_string(),
            ServiceAddr::Fwmark(m) => format!("fwmark {m}"),
            ServiceAddr::Group(g) => format!("group {g}"),
        };
        if seen.insert((vs.addr.clone(), vs.protocol.ip_proto()), ()).is_some() {
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
        let mut reals = HashMap::new();
        for rs in &vs.real_servers {
            if reals.insert(rs.addr, ()).is_some() {
                d.push(Diagnostic::error(
                    rs.span,
                    format!("real_server {} appears twice in virtual_server {what}", rs.addr),
                ));
            }
        }
        let fwmark = matches!(vs.addr, ServiceAddr::Fwmark(_))
            || matches!(&vs.addr, ServiceAddr::Group(g) if cfg.virtual_server_groups.iter().any(|x| &x.name == g
                && x.members.iter().any(|m| matches!(m, super::model::GroupMember::Fwmark(_)))));
        let mut unsupported = Vec::new();
        if !vs.scheduler.in_bpf() {
            unsupported.push(format!(
                "scheduler {} (the BPF data plane has rr, wrr, lc, wlc, lblc, sh, dh, mh)",
                vs.scheduler.name()
            ));
        }
        if fwmark {
            unsupported.push("firewall marks (XDP runs before netfilter sets them)".to_string());
        }
        if vs.ops {
            unsupported.push("one-packet scheduling (ops)".to_string());
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
