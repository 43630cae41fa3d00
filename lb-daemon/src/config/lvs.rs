//! `virtual_server_group`, `virtual_server`, `real_server` and the health checkers.

use std::net::IpAddr;

use super::{
    keyword::{Ctx, Keyword},
    model::{
        CheckKind, Checker, Config, ForwardMethod, GroupMember, Protocol, RealServer, Scheduler, ServiceAddr, Url,
        VirtualServer, VirtualServerGroup,
    },
    tree::{Stmt, Word},
};

/// `IP PORT` at argument `i`.
fn ip_port(ctx: &mut Ctx, stmt: &Stmt, i: usize) -> Option<(IpAddr, u16)> {
    let ip = ctx.parse::<IpAddr>(stmt, i, "an IPv4 or IPv6 address");
    let port = ctx.parse::<u16>(stmt, i + 1, "a port number (0-65535)");
    Some((ip?, port?))
}

pub fn virtual_server_group(ctx: &mut Ctx, cfg: &mut Config, stmt: &Stmt) {
    let Some(name) = ctx.string(stmt, 0, "a name") else {
        return;
    };
    let Some(block) = ctx.block(stmt) else { return };
    let mut g = VirtualServerGroup { name, members: Vec::new(), span: stmt.keyword().span };
    for line in block {
        let first = line.keyword();
        if first.text == "fwmark" {
            if let Some(m) = ctx.parse(line, 0, "a firewall mark") {
                g.members.push(GroupMember::Fwmark(m));
            }
            continue;
        }
        let Some(port) = ctx.parse::<u16>(line, 0, "a port number (0-65535)") else {
            continue;
        };
        if let Some((first, last)) = range(ctx, first) {
            g.members.push(GroupMember::Range { first, last, port });
        }
    }
    cfg.virtual_server_groups.push(g);
}

/// `192.0.2.1` or `192.0.2.1-10` (last IPv4 octet, or last IPv6 group in hex, varies).
fn range(ctx: &mut Ctx, w: &Word) -> Option<(IpAddr, IpAddr)> {
    let (addr, end) = match w.text.rsplit_once('-') {
        Some((a, e)) => (a, Some(e)),
        None => (w.text.as_str(), None),
    };
    let Ok(first) = addr.parse::<IpAddr>() else {
        ctx.error(w.span, format!("`{addr}` is not an IPv4 or IPv6 address"));
        return None;
    };
    let Some(end) = end else {
        return Some((first, first));
    };
    let last = match first {
        IpAddr::V4(a) => end.parse::<u8>().ok().filter(|e| *e >= a.octets()[3]).map(|e| {
            let mut o = a.octets();
            o[3] = e;
            IpAddr::from(o)
        }),
        IpAddr::V6(a) => u16::from_str_radix(end, 16).ok().filter(|e| *e >= a.segments()[7]).map(|e| {
            let mut s = a.segments();
            s[7] = e;
            IpAddr::from(s)
        }),
    };
    if last.is_none() {
        ctx.error(w.span, format!("range end `{end}` is not a last octet (or IPv6 group) at or above the start"));
    }
    Some((first, last?))
}

pub fn virtual_server(ctx: &mut Ctx, cfg: &mut Config, stmt: &Stmt) {
    let Some(first) = ctx.arg(stmt, 0, "an address and port, `fwmark N` or `group NAME`") else {
        return;
    };
    let addr = match first.text.as_str() {
        "fwmark" => ctx.parse::<u32>(stmt, 1, "a firewall mark (a number)").map(ServiceAddr::Fwmark),
        "group" => ctx.string(stmt, 1, "a virtual_server_group name").map(ServiceAddr::Group),
        _ => ip_port(ctx, stmt, 0).map(|(ip, port)| ServiceAddr::Inet((ip, port).into())),
    };
    let Some(block) = ctx.block(stmt) else { return };
    // A bad address still gets its block checked, so every error is reported in one pass.
    let mut vs = VirtualServer::new(addr.clone().unwrap_or(ServiceAddr::Fwmark(0)), stmt.keyword().span);
    ctx.apply(VIRTUAL_SERVER, &mut vs, block, "virtual_server");
    if addr.is_some() {
        cfg.virtual_servers.push(vs);
    }
}

fn scheduler(ctx: &mut Ctx, vs: &mut VirtualServer, st: &Stmt) {
    let Some(w) = ctx.arg(st, 0, "a scheduler (rr, wrr, lc, wlc, lblc, lblcr, sh, dh, sed, nq, mh, fo, ovf, twos)")
    else {
        return;
    };
    match Scheduler::ALL.iter().find(|(n, _)| *n == w.text) {
        Some((_, s)) => vs.scheduler = *s,
        None => ctx.error(
            w.span,
            format!(
                "unknown scheduler `{}` (rr, wrr, lc, wlc, lblc, lblcr, sh, dh, sed, nq, mh, fo, ovf, twos)",
                w.text
            ),
        ),
    }
}

fn forward_method(ctx: &mut Ctx, vs: &mut VirtualServer, st: &Stmt) {
    if let Some(w) = ctx.arg(st, 0, "NAT, DR or TUN") {
        match w.text.to_ascii_uppercase().as_str() {
            "NAT" => vs.forward = ForwardMethod::Nat,
            "DR" => vs.forward = ForwardMethod::Dr,
            "TUN" => vs.forward = ForwardMethod::Tun,
            _ => ctx.error(w.span, format!("lb_kind `{}` is not NAT, DR or TUN", w.text)),
        }
    }
}

pub(crate) const VIRTUAL_SERVER: &[Keyword<VirtualServer>] = &[
    Keyword::new("protocol", |ctx, vs, st| {
        if let Some(w) = ctx.arg(st, 0, "TCP, UDP or SCTP") {
            match w.text.to_ascii_uppercase().as_str() {
                "TCP" => vs.protocol = Protocol::Tcp,
                "UDP" => vs.protocol = Protocol::Udp,
                "SCTP" => vs.protocol = Protocol::Sctp,
                _ => ctx.error(w.span, format!("protocol `{}` is not TCP, UDP or SCTP", w.text)),
            }
        }
    }),
    Keyword::new("lb_algo", scheduler).alias(&["lvs_sched"]),
    Keyword::new("lb_kind", forward_method).alias(&["lvs_method"]),
    Keyword::new("delay_loop", |ctx, vs, st| {
        if let Some(v) = ctx.parse_range(st, 0, "a number of seconds", 1u32, u32::MAX) {
            vs.delay_loop = v;
        }
    }),
    Keyword::new("persistence_timeout", |ctx, vs, st| {
        vs.persistence_timeout = if st.args().is_empty() { Some(360) } else { ctx.parse(st, 0, "a number of seconds") };
    }),
    Keyword::new("persistence_granularity", |ctx, vs, st| {
        let Some(w) = ctx.arg(st, 0, "a netmask (IPv4) or prefix length") else {
            return;
        };
        vs.persistence_granularity = match w.text.parse::<std::net::Ipv4Addr>() {
            Ok(mask) => super::ip::netmask_len(mask),
            Err(_) => w.text.parse::<u8>().ok().filter(|l| *l <= 128),
        };
        if vs.persistence_granularity.is_none() {
            ctx.error(w.span, format!("`{}` is not a netmask or a prefix length", w.text));
        }
    }),
    Keyword::new("ha_suspend", |ctx, vs, st| vs.ha_suspend = ctx.flag(st)),
    Keyword::new("virtualhost", |ctx, vs, st| vs.virtualhost = ctx.string(st, 0, "a host name")),
    Keyword::new("alpha", |ctx, vs, st| vs.alpha = ctx.flag(st)),
    Keyword::new("omega", |ctx, vs, st| vs.omega = ctx.flag(st)),
    Keyword::new("quorum", |ctx, vs, st| {
        if let Some(q) = ctx.parse_range(st, 0, "a total weight", 1u32, u32::MAX) {
            vs.quorum = q;
        }
    }),
    Keyword::new("quorum_up", |ctx, vs, st| vs.quorum_up = ctx.script(st)),
    Keyword::new("quorum_down", |ctx, vs, st| vs.quorum_down = ctx.script(st)),
    Keyword::new("hysteresis", |ctx, vs, st| {
        if let Some(h) = ctx.parse(st, 0, "a weight") {
            vs.hysteresis = h;
        }
    }),
    Keyword::new("sorry_server", |ctx, vs, st| vs.sorry_server = ip_port(ctx, st, 0).map(Into::into)),
    Keyword::new("sorry_server_inhibit", |ctx, vs, st| vs.sorry_server_inhibit = ctx.flag(st)),
    Keyword::new("ops", |ctx, vs, st| vs.ops = ctx.flag(st)),
    Keyword::new("smtp_alert", |ctx, vs, st| vs.smtp_alert = ctx.bool_flag(st)),
    Keyword::new("real_server", real_server),
];

fn real_server(ctx: &mut Ctx, vs: &mut VirtualServer, stmt: &Stmt) {
    let addr = ip_port(ctx, stmt, 0);
    let block = stmt.block.as_deref().unwrap_or_default();
    let (ip, port) = addr.unwrap_or((IpAddr::from([0u8; 4]), 0));
    let mut rs = RealServer::new(ip, port, stmt.keyword().span);
    ctx.apply(REAL_SERVER, &mut rs, block, "real_server");
    if addr.is_some() {
        vs.real_servers.push(rs);
    }
}

pub(crate) const REAL_SERVER: &[Keyword<RealServer>] = &[
    Keyword::new("weight", |ctx, rs, st| {
        if let Some(w) = ctx.parse_range(st, 0, "a weight", 0u32, 65535) {
            rs.weight = w;
        }
    }),
    Keyword::new("inhibit_on_failure", |ctx, rs, st| rs.inhibit_on_failure = ctx.flag(st)),
    Keyword::new("notify_up", |ctx, rs, st| rs.notify_up = ctx.script(st)),
    Keyword::new("notify_down", |ctx, rs, st| rs.notify_down = ctx.script(st)),
    Keyword::new("smtp_alert", |ctx, rs, st| rs.smtp_alert = ctx.bool_flag(st)),
    Keyword::new("HTTP_GET", |ctx, rs, st| {
        checker(ctx, rs, st, CheckKind::HttpGet { urls: Vec::new(), virtualhost: None })
    }),
    Keyword::new("SSL_GET", |ctx, rs, st| {
        checker(ctx, rs, st, CheckKind::SslGet { urls: Vec::new(), virtualhost: None })
    }),
    Keyword::new("TCP_CHECK", |ctx, rs, st| checker(ctx, rs, st, CheckKind::Tcp)),
    Keyword::new("MISC_CHECK", |ctx, rs, st| {
        checker(ctx, rs, st, CheckKind::Misc { path: None, timeout: None, dynamic: false, user: None })
    }),
];

fn checker(ctx: &mut Ctx, rs: &mut RealServer, stmt: &Stmt, kind: CheckKind) {
    let Some(block) = ctx.block(stmt) else { return };
    let mut c = Checker::new(kind, stmt.keyword().span);
    let name = stmt.keyword().text.clone();
    ctx.apply(CHECKER, &mut c, block, &name);
    match &c.kind {
        CheckKind::HttpGet { urls, .. } | CheckKind::SslGet { urls, .. } if urls.is_empty() => {
            ctx.error(stmt.keyword().span, format!("{name} has no `url` block"))
        }
        CheckKind::Misc { path: None, .. } => ctx.error(stmt.keyword().span, "MISC_CHECK has no `misc_path`"),
        _ => {}
    }
    rs.checkers.push(c);
}

/// Keywords of every checker; those of one kind only say so when used in another.
pub(crate) const CHECKER: &[Keyword<Checker>] = &[
    Keyword::new("connect_ip", |ctx, c, st| c.connect_ip = ctx.parse(st, 0, "an IPv4 or IPv6 address")),
    Keyword::new("connect_port", |ctx, c, st| c.connect_port = ctx.parse(st, 0, "a port number (0-65535)")),
    Keyword::new("bindto", |ctx, c, st| c.bindto = ctx.parse(st, 0, "an IPv4 or IPv6 address")),
    Keyword::new("bind_port", |ctx, c, st| c.bind_port = ctx.parse(st, 0, "a port number (0-65535)")),
    Keyword::new("connect_timeout", |ctx, c, st| {
        if let Some(t) = ctx.parse_range(st, 0, "a number of seconds", 1u32, u32::MAX) {
            c.connect_timeout = t;
        }
    }),
    Keyword::new("retry", retry).alias(&["nb_get_retry"]),
    Keyword::new("delay_before_retry", |ctx, c, st| {
        if let Some(d) = ctx.parse(st, 0, "a number of seconds") {
            c.delay_before_retry = d;
        }
    }),
    Keyword::new("warmup", |ctx, c, st| c.warmup = ctx.parse(st, 0, "a number of seconds")),
    Keyword::new("delay_loop", |ctx, c, st| {
        c.delay_loop = ctx.parse_range(st, 0, "a number of seconds", 1u32, u32::MAX)
    }),
    Keyword::new("url", url),
    Keyword::new("virtualhost", |ctx, c, st| {
        let host = ctx.string(st, 0, "a host name");
        match &mut c.kind {
            CheckKind::HttpGet { virtualhost, .. } | CheckKind::SslGet { virtualhost, .. } => *virtualhost = host,
            _ => ctx.error(st.keyword().span, "`virtualhost` belongs in HTTP_GET or SSL_GET"),
        }
    }),
    Keyword::new("misc_path", |ctx, c, st| {
        let script = ctx.script(st);
        match &mut c.kind {
            CheckKind::Misc { path, .. } => *path = script,
            _ => ctx.error(st.keyword().span, "`misc_path` belongs in MISC_CHECK"),
        }
    }),
    Keyword::new("misc_timeout", |ctx, c, st| {
        let t = ctx.parse_range(st, 0, "a number of seconds", 1u32, u32::MAX);
        match &mut c.kind {
            CheckKind::Misc { timeout, .. } => *timeout = t,
            _ => ctx.error(st.keyword().span, "`misc_timeout` belongs in MISC_CHECK"),
        }
    }),
    Keyword::new("misc_dynamic", |ctx, c, st| {
        let on = ctx.flag(st);
        match &mut c.kind {
            CheckKind::Misc { dynamic, .. } => *dynamic = on,
            _ => ctx.error(st.keyword().span, "`misc_dynamic` belongs in MISC_CHECK"),
        }
    }),
    Keyword::new("user", |ctx, c, st| {
        let who = ctx.run_as(st, 0);
        match &mut c.kind {
            CheckKind::Misc { user, .. } => *user = who,
            _ => ctx.error(st.keyword().span, "`user` belongs in MISC_CHECK"),
        }
    }),
];

fn retry(ctx: &mut Ctx, c: &mut Checker, st: &Stmt) {
    if let Some(r) = ctx.parse(st, 0, "a count") {
        c.retry = r;
    }
}

fn url(ctx: &mut Ctx, c: &mut Checker, stmt: &Stmt) {
    let Some(block) = ctx.block(stmt) else { return };
    let mut u = Url { path: String::new(), digest: None, status_code: Vec::new() };
    ctx.apply(URL, &mut u, block, "url");
    if u.path.is_empty() {
        ctx.error(stmt.keyword().span, "url has no `path`");
    }
    match &mut c.kind {
        CheckKind::HttpGet { urls, .. } | CheckKind::SslGet { urls, .. } => urls.push(u),
        _ => ctx.error(stmt.keyword().span, "`url` belongs in HTTP_GET or SSL_GET"),
    }
}

pub(crate) const URL: &[Keyword<Url>] = &[
    Keyword::new("path", |ctx, u, st| {
        if let Some(p) = ctx.string(st, 0, "a URL path") {
            u.path = p;
        }
    }),
    Keyword::new("digest", |ctx, u, st| {
        let Some(w) = ctx.arg(st, 0, "an MD5 digest (32 hex digits)") else {
            return;
        };
        if w.text.len() == 32 && w.text.chars().all(|c| c.is_ascii_hexdigit()) {
            u.digest = Some(w.text.to_ascii_lowercase());
        } else {
            ctx.error(w.span, format!("`{}` is not an MD5 digest (32 hex digits)", w.text));
        }
    }),
    Keyword::new("status_code", |ctx, u, st| {
        if st.args().is_empty() {
            ctx.arg(st, 0, "a status code");
        }
        for w in st.args() {
            let parsed = match w.text.split_once('-') {
                Some((a, b)) => a.parse::<u16>().ok().zip(b.parse::<u16>().ok()),
                None => w.text.parse::<u16>().ok().map(|c| (c, c)),
            };
            match parsed {
                Some((a, b)) if (100..=599).contains(&a) && (a..=599).contains(&b) => u.status_code.push((a, b)),
                _ => ctx.error(w.span, format!("`{}` is not an HTTP status code or range (100-599)", w.text)),
            }
        }
    }),
];
