//! `virtual_server_group`, `virtual_server`, `real_server` and the health checkers.

use std::net::IpAddr;

use super::{
    keyword::{Ctx, Keyword},
    model::{
        CheckKind, Checker, Config, ForwardMethod, GroupMember, HttpProtocol, IpFamily, Protocol, RealServer,
        SCHED_FLAG_1, SCHED_FLAG_2, SCHED_FLAG_3, Scheduler, ServiceAddr, SmtpHost, SslContext, Url, UrlRegex,
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

/// The top-level `SSL` block, with keepalived 2.2.7's words (check_parser.c): a second block
/// replaces the first, a second file of one kind replaces the first.
pub fn ssl(ctx: &mut Ctx, cfg: &mut Config, stmt: &Stmt) {
    let Some(block) = ctx.block(stmt) else { return };
    if cfg.ssl.is_some() {
        ctx.warn(stmt.keyword().span, "SSL context already specified - replacing");
    }
    let mut ssl = SslContext { span: stmt.keyword().span, ..Default::default() };
    ctx.apply(SSL, &mut ssl, block, "SSL");
    cfg.ssl = Some(ssl);
}

/// keepalived's `handle_ssl_file`: `what` is its word in the messages.
fn ssl_file(ctx: &mut Ctx, stmt: &Stmt, slot: &mut Option<String>, what: &str) {
    let Some(value) = ctx.string(stmt, 0, &format!("the SSL {what}")) else { return };
    if slot.is_some() {
        ctx.warn(stmt.keyword().span, format!("SSL {what} already specified - replacing"));
    }
    *slot = Some(value);
}

pub(crate) const SSL: &[Keyword<SslContext>] = &[
    Keyword::new("password", |ctx, s, st| ssl_file(ctx, st, &mut s.password, "password")),
    Keyword::new("ca", |ctx, s, st| ssl_file(ctx, st, &mut s.ca, "cafile")),
    Keyword::new("certificate", |ctx, s, st| ssl_file(ctx, st, &mut s.certificate, "certfile")),
    Keyword::new("key", |ctx, s, st| ssl_file(ctx, st, &mut s.key, "keyfile")),
];

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
    if let Some(w) = vs.weight {
        for rs in vs.real_servers.iter_mut().filter(|rs| !rs.weight_set) {
            rs.weight = w;
        }
    }
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
        Some((_, s)) => {
            vs.scheduler = *s;
            vs.scheduler_named = true;
        }
        None => ctx.error(
            w.span,
            format!(
                "unknown scheduler `{}` (rr, wrr, lc, wlc, lblc, lblcr, sh, dh, sed, nq, mh, fo, ovf, twos)",
                w.text
            ),
        ),
    }
}

/// `flag-1`..`flag-3`, `sh-port`, `sh-fallback`, `mh-port`, `mh-fallback`: IPVS scheduler
/// flags, read as keepalived 2.2.7's `lbflags_handler` does. `flag-N` sets its bit whatever
/// the scheduler. The named ones are checked against the scheduler `lb_algo` named *before*
/// them: with sh (or mh) they set their bit; after the other hashing scheduler they are
/// ignored without a word (`sh-port` under mh); otherwise, or before any `lb_algo`, it is
/// an error ("only applies to sh scheduler"). The sh and mh names share the bits.
fn sched_flag(ctx: &mut Ctx, vs: &mut VirtualServer, st: &Stmt) {
    ctx.flag(st);
    let word = st.keyword();
    let (for_sched, bit) = match word.text.as_str() {
        "flag-1" => (None, SCHED_FLAG_1),
        "flag-2" => (None, SCHED_FLAG_2),
        "flag-3" => (None, SCHED_FLAG_3),
        "sh-fallback" => (Some(Scheduler::Sh), SCHED_FLAG_1),
        "sh-port" => (Some(Scheduler::Sh), SCHED_FLAG_2),
        "mh-fallback" => (Some(Scheduler::Mh), SCHED_FLAG_1),
        _ => (Some(Scheduler::Mh), SCHED_FLAG_2),
    };
    let Some(for_sched) = for_sched else {
        vs.sched_flags |= bit;
        return;
    };
    let named = vs.scheduler_named.then_some(vs.scheduler);
    match named {
        Some(s) if s == for_sched => vs.sched_flags |= bit,
        Some(s @ (Scheduler::Sh | Scheduler::Mh)) => ctx.warn(
            word.span,
            format!("`{}` has no effect with lb_algo {} (keepalived ignores it too)", word.text, s.name()),
        ),
        _ => ctx.error(
            word.span,
            format!(
                "`{}` applies only to lb_algo {} set before it (keepalived ignores it here and fails -t)",
                word.text,
                for_sched.name()
            ),
        ),
    }
}

/// `hashed`, as keepalived 2.2.7's `lbflags_handler` reads it: it sets no flag (the kernel
/// sets IPVS's hashed flag on every service itself). After `lb_algo` sh or mh it passes
/// without a word; otherwise keepalived says it "only applies to sh scheduler" and `-t`
/// fails, so it is an error here, as for `sh-port`.
fn hashed(ctx: &mut Ctx, vs: &mut VirtualServer, st: &Stmt) {
    ctx.flag(st);
    if !(vs.scheduler_named && matches!(vs.scheduler, Scheduler::Sh | Scheduler::Mh)) {
        ctx.error(
            st.keyword().span,
            "`hashed` applies only to lb_algo sh or mh set before it, where it does nothing (keepalived ignores it \
             here and fails -t); remove it",
        );
    }
}

/// `lb_kind` / `lvs_method`'s argument.
fn parse_forward(ctx: &mut Ctx, st: &Stmt) -> Option<ForwardMethod> {
    let w = ctx.arg(st, 0, "NAT, DR or TUN")?;
    // keepalived's tunnel options: only its default (`type ipip`) is what this version sends.
    let extra: Vec<&str> = st.args()[1..].iter().map(|a| a.text.as_str()).collect();
    if !extra.is_empty() && extra != ["type", "ipip"] {
        ctx.error(
            st.args()[1].span,
            format!(
                "{} options `{}`: only IPIP tunnels without options are implemented (GUE, GRE, csum are not); \
                 remove them",
                st.keyword().text,
                extra.join(" ")
            ),
        );
        return None;
    }
    match w.text.to_ascii_uppercase().as_str() {
        "NAT" => Some(ForwardMethod::Nat),
        "DR" => Some(ForwardMethod::Dr),
        "TUN" => Some(ForwardMethod::Tun),
        _ => {
            ctx.error(w.span, format!("{} `{}` is not NAT, DR or TUN", st.keyword().text, w.text));
            None
        }
    }
}

fn forward_method(ctx: &mut Ctx, vs: &mut VirtualServer, st: &Stmt) {
    if let Some(f) = parse_forward(ctx, st) {
        vs.forward = f;
        vs.forward_set = true;
    }
}

/// `retry` at the virtual_server and real_server level: keepalived wants at least 1 there
/// (a checker's own `retry` may be 0).
fn block_retry(ctx: &mut Ctx, st: &Stmt) -> Option<u32> {
    ctx.parse_range(st, 0, "a count", 1u32, u32::MAX)
}

fn seconds(ctx: &mut Ctx, st: &Stmt, min: u32) -> Option<u32> {
    ctx.parse_range(st, 0, "a number of seconds", min, u32::MAX)
}

pub(crate) const VIRTUAL_SERVER: &[Keyword<VirtualServer>] = &[
    Keyword::new("protocol", |ctx, vs, st| {
        // keepalived's vs_end_handler clears it: a firewall mark matches any protocol.
        if let ServiceAddr::Fwmark(m) = vs.addr {
            ctx.warn(
                st.keyword().span,
                format!("Warning: Virtual server FWM {m}: protocol specified for fwmark - protocol will be ignored"),
            );
            return;
        }
        if let Some(w) = ctx.arg(st, 0, "TCP, UDP or SCTP") {
            vs.protocol_set = true;
            match w.text.to_ascii_uppercase().as_str() {
                "TCP" => vs.protocol = Protocol::Tcp,
                "UDP" => vs.protocol = Protocol::Udp,
                "SCTP" => vs.protocol = Protocol::Sctp,
                _ => ctx.error(w.span, format!("protocol `{}` is not TCP, UDP or SCTP", w.text)),
            }
        }
    }),
    Keyword::new("lb_algo", scheduler).alias(&["lvs_sched"]),
    // keepalived: 1..65535 (a real server's own may be 0).
    Keyword::new("weight", |ctx, vs, st| vs.weight = ctx.parse_range(st, 0, "a weight", 1u32, 65535).or(vs.weight)),
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
            return;
        }
        // keepalived's pgr_handler: a granularity makes the service persistent (360 s) when
        // no timeout is set yet.
        if vs.persistence_timeout.unwrap_or(0) == 0 {
            vs.persistence_timeout = Some(360);
        }
    }),
    // keepalived truncates a longer name with a config error (IP_VS_PENAME_MAXLEN: 16).
    Keyword::new("persistence_engine", |ctx, vs, st| {
        let Some(w) = ctx.arg(st, 0, "a persistence engine name (sip)") else { return };
        if w.text.len() > 16 {
            ctx.error(w.span, format!("persistence_engine `{}` is longer than IPVS's 16 characters", w.text));
            return;
        }
        vs.persistence_engine = Some(w.text.clone());
        vs.persistence_engine_span = Some(st.keyword().span);
    }),
    Keyword::new("retry", |ctx, vs, st| vs.retry = block_retry(ctx, st).or(vs.retry)),
    Keyword::new("delay_before_retry", |ctx, vs, st| {
        vs.delay_before_retry = seconds(ctx, st, 0).or(vs.delay_before_retry)
    }),
    Keyword::new("connect_timeout", |ctx, vs, st| {
        if let Some(t) = seconds(ctx, st, 1) {
            vs.connect_timeout = t;
        }
    }),
    Keyword::new("warmup", |ctx, vs, st| vs.warmup = seconds(ctx, st, 0).or(vs.warmup)),
    Keyword::new("inhibit_on_failure", |ctx, vs, st| vs.inhibit_on_failure = ctx.flag(st)),
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
    // A second sorry_server replaces the first, and with it its sorry_server_inhibit.
    Keyword::new("sorry_server", |ctx, vs, st| {
        vs.sorry_server = ip_port(ctx, st, 0).map(Into::into);
        vs.sorry_server_lb_kind = vs.forward_set.then_some(vs.forward);
        vs.sorry_server_inhibit = false;
        vs.sorry_server_inhibit_span = None;
    }),
    // keepalived refuses it before the sorry server ("sorry_server forwarding used without
    // sorry_server").
    Keyword::new("sorry_server_lvs_method", |ctx, vs, st| {
        if vs.sorry_server.is_none() {
            ctx.error(st.keyword().span, "sorry_server_lvs_method needs a sorry_server before it");
            return;
        }
        vs.sorry_server_forward = parse_forward(ctx, st).or(vs.sorry_server_forward);
        vs.sorry_server_forward_span = Some(st.keyword().span);
    }),
    // keepalived sets it on the sorry server, so without one so far it is ignored.
    Keyword::new("sorry_server_inhibit", |ctx, vs, st| {
        let on = ctx.flag(st);
        if vs.sorry_server.is_none() {
            ctx.warn(st.keyword().span, "Ignoring sorry_server inhibit used before or without sorry_server");
            return;
        }
        vs.sorry_server_inhibit = on;
        vs.sorry_server_inhibit_span = Some(st.keyword().span);
    }),
    Keyword::new("ops", |ctx, vs, st| vs.ops = ctx.flag(st)),
    Keyword::new("ip_family", |ctx, vs, st| {
        let Some(w) = ctx.arg(st, 0, "inet or inet6") else { return };
        let family = match w.text.as_str() {
            "inet" => IpFamily::Inet,
            "inet6" => IpFamily::Inet6,
            _ => return ctx.error(w.span, format!("unknown address family {} (inet or inet6)", w.text)),
        };
        // keepalived: "Virtual server specified family ... conflicts with server family" when
        // the service's address says otherwise (servers of the other family: validate).
        if let ServiceAddr::Inet(sa) = &vs.addr
            && sa.is_ipv6() != (family == IpFamily::Inet6)
        {
            return ctx.error(
                w.span,
                format!("ip_family {} conflicts with the virtual server's family (keepalived refuses it too)", w.text),
            );
        }
        vs.ip_family = Some(family);
    }),
    Keyword::new("mh_seed", |ctx, vs, st| vs.mh_seed = ctx.parse(st, 0, "a number (the Maglev hash seed)")),
    Keyword::new("anycast_track_instance", |ctx, vs, st| {
        vs.anycast_track_instance = ctx.string(st, 0, "a vrrp_instance name")
    }),
    Keyword::new("flag-1", sched_flag),
    Keyword::new("flag-2", sched_flag),
    Keyword::new("flag-3", sched_flag),
    Keyword::new("sh-port", sched_flag),
    Keyword::new("sh-fallback", sched_flag),
    Keyword::new("mh-port", sched_flag),
    Keyword::new("mh-fallback", sched_flag),
    Keyword::new("hashed", hashed),
    Keyword::new("smtp_alert", |ctx, vs, st| vs.smtp_alert = ctx.bool_flag(st)),
    Keyword::new("real_server", real_server),
];

fn real_server(ctx: &mut Ctx, vs: &mut VirtualServer, stmt: &Stmt) {
    let ip = ctx.parse::<IpAddr>(stmt, 0, "an IPv4 or IPv6 address");
    // keepalived: the port may be left out (or 0). An address-and-port service's real server
    // then takes the service's port; a fwmark or group service's keeps 0, which IPVS reads
    // as "the packet's destination port".
    let port = if stmt.args().len() > 1 { ctx.parse::<u16>(stmt, 1, "a port number (0-65535)") } else { Some(0) };
    let port = port.map(|p| match &vs.addr {
        ServiceAddr::Inet(sa) if p == 0 => sa.port(),
        ServiceAddr::Fwmark(_) if p != 0 => {
            // keepalived clears it ("has port specified - clearing"): IPVS keeps the packet's port.
            ctx.warn(stmt.words[2].span, "a fwmark service's real servers take the packet's destination port: this port is ignored, as keepalived ignores it".to_string());
            0
        }
        _ => p,
    });
    let addr = ip.zip(port);
    // keepalived reads a real_server without `{` as a broken block ("Missing '{' at beginning
    // of configuration block") and loses the lines after it: an error, as its -t says.
    if stmt.block.is_none() {
        ctx.error(
            stmt.keyword().span,
            "real_server needs a block: `real_server ADDRESS PORT {` ... `}` (it may be empty)",
        );
    }
    let block = stmt.block.as_deref().unwrap_or_default();
    let (ip, port) = addr.unwrap_or((IpAddr::from([0u8; 4]), 0));
    let mut rs = RealServer::new(ip, port, stmt.keyword().span);
    rs.lb_kind = vs.forward_set.then_some(vs.forward);
    ctx.apply(REAL_SERVER, &mut rs, block, "real_server");
    if addr.is_some() {
        vs.real_servers.push(rs);
    }
}

pub(crate) const REAL_SERVER: &[Keyword<RealServer>] = &[
    Keyword::new("weight", |ctx, rs, st| {
        if let Some(w) = ctx.parse_range(st, 0, "a weight", 0u32, 65535) {
            rs.weight = w;
            rs.weight_set = true;
        }
    }),
    Keyword::new("inhibit_on_failure", |ctx, rs, st| {
        rs.inhibit_on_failure = ctx.bool_flag(st).or(rs.inhibit_on_failure)
    }),
    Keyword::new("alpha", |ctx, rs, st| rs.alpha = ctx.bool_flag(st).or(rs.alpha)),
    Keyword::new("lvs_method", |ctx, rs, st| {
        rs.forward = parse_forward(ctx, st).or(rs.forward);
        rs.forward_span = Some(st.keyword().span);
    }),
    Keyword::new("uthreshold", |ctx, rs, st| {
        if let Some(t) = ctx.parse(st, 0, "a number of connections") {
            rs.u_threshold = t;
            rs.threshold_span = Some(st.keyword().span);
        }
    }),
    Keyword::new("lthreshold", |ctx, rs, st| {
        if let Some(t) = ctx.parse(st, 0, "a number of connections") {
            rs.l_threshold = t;
            rs.threshold_span.get_or_insert(st.keyword().span);
        }
    }),
    Keyword::new("retry", |ctx, rs, st| rs.retry = block_retry(ctx, st).or(rs.retry)),
    Keyword::new("delay_before_retry", |ctx, rs, st| {
        rs.delay_before_retry = seconds(ctx, st, 0).or(rs.delay_before_retry)
    }),
    Keyword::new("connect_timeout", |ctx, rs, st| rs.connect_timeout = seconds(ctx, st, 1).or(rs.connect_timeout)),
    Keyword::new("delay_loop", |ctx, rs, st| rs.delay_loop = seconds(ctx, st, 1).or(rs.delay_loop)),
    Keyword::new("warmup", |ctx, rs, st| rs.warmup = seconds(ctx, st, 0).or(rs.warmup)),
    Keyword::new("virtualhost", |ctx, rs, st| {
        rs.virtualhost = ctx.string(st, 0, "a host name").or(rs.virtualhost.take())
    }),
    Keyword::new("notify_up", |ctx, rs, st| rs.notify_up = ctx.script(st)),
    Keyword::new("notify_down", |ctx, rs, st| rs.notify_down = ctx.script(st)),
    Keyword::new("smtp_alert", |ctx, rs, st| rs.smtp_alert = ctx.bool_flag(st)),
    Keyword::new("HTTP_GET", |ctx, rs, st| {
        checker(
            ctx,
            rs,
            st,
            CheckKind::HttpGet { urls: Vec::new(), virtualhost: None, protocol: HttpProtocol::default() },
        )
    }),
    Keyword::new("SSL_GET", |ctx, rs, st| {
        checker(
            ctx,
            rs,
            st,
            CheckKind::SslGet {
                urls: Vec::new(),
                virtualhost: None,
                protocol: HttpProtocol::default(),
                enable_sni: false,
            },
        )
    }),
    Keyword::new("TCP_CHECK", |ctx, rs, st| checker(ctx, rs, st, CheckKind::Tcp)),
    Keyword::new("MISC_CHECK", |ctx, rs, st| {
        checker(ctx, rs, st, CheckKind::Misc { path: None, timeout: None, dynamic: false, user: None })
    }),
    Keyword::new("UDP_CHECK", |ctx, rs, st| {
        let kind = CheckKind::Udp {
            payload: None,
            require_reply: false,
            reply: vec![],
            mask: vec![],
            min_len: 0,
            max_len: 255,
        };
        checker(ctx, rs, st, kind)
    }),
    Keyword::new("DNS_CHECK", |ctx, rs, st| {
        checker(ctx, rs, st, CheckKind::Dns { qtype: DNS_TYPES[3].1, name: String::new() })
    }),
    Keyword::new("PING_CHECK", |ctx, rs, st| checker(ctx, rs, st, CheckKind::Ping)),
    Keyword::new("BFD_CHECK", bfd_check),
    Keyword::new("SMTP_CHECK", |ctx, rs, st| {
        let helo_name = "smtpchecker.keepalived.org".to_string();
        checker(ctx, rs, st, CheckKind::Smtp { helo_name, main: true, hosts: vec![] })
    }),
    Keyword::new("FILE_CHECK", file_check),
];

/// `FILE_CHECK { track_file NAME; weight N [reverse|noreverse] }`: keepalived's FILE_CHECK
/// has only these two keywords (none of the other checkers' timings).
fn file_check(ctx: &mut Ctx, rs: &mut RealServer, stmt: &Stmt) {
    let Some(block) = ctx.block(stmt) else { return };
    let mut c =
        Checker::new(CheckKind::File { track_file: String::new(), weight: None, reverse: None }, stmt.keyword().span);
    ctx.apply(FILE_CHECK, &mut c, block, "FILE_CHECK");
    if matches!(&c.kind, CheckKind::File { track_file, .. } if track_file.is_empty()) {
        ctx.error(stmt.keyword().span, "FILE_CHECK has no `track_file`");
    }
    rs.checkers.push(c);
}

pub(crate) const FILE_CHECK: &[Keyword<Checker>] = &[
    Keyword::new("track_file", |ctx, c, st| {
        let name = ctx.string(st, 0, "a track_file name");
        if let (CheckKind::File { track_file, .. }, Some(n)) = (&mut c.kind, name) {
            *track_file = n;
        }
    }),
    Keyword::new("weight", |ctx, c, st| {
        let w = ctx.parse_range(st, 0, "a weight", -i32::MAX, i32::MAX);
        let r = match st.args().get(1).map(|w| (w.text.as_str(), w.span)) {
            None => None,
            Some(("reverse", _)) => Some(true),
            Some(("noreverse", _)) => Some(false),
            Some((other, span)) => {
                ctx.error(span, format!("expected `reverse` or `noreverse` after the weight, found `{other}`"));
                None
            }
        };
        if let (CheckKind::File { weight, reverse, .. }, Some(w)) = (&mut c.kind, w) {
            (*weight, *reverse) = (Some(w), r.or(Some(false)));
        }
    }),
];

/// keepalived's DNS_CHECK `type` names (check_dns.c).
pub const DNS_TYPES: &[(&str, u16)] = &[
    ("A", 1),
    ("NS", 2),
    ("CNAME", 5),
    ("SOA", 6),
    ("MX", 15),
    ("TXT", 16),
    ("AAAA", 28),
    ("RRSIG", 46),
    ("DNSKEY", 48),
];

/// Connection keywords: an SMTP_CHECK using any of them checks its own connection too.
const CONNECTION: &[&str] =
    &["connect_ip", "connect_port", "bindto", "bind_port", "bind_if", "connect_timeout", "fwmark"];

fn has(block: &[Stmt], word: &str) -> bool {
    block.iter().any(|s| s.keyword().text == word)
}

fn checker(ctx: &mut Ctx, rs: &mut RealServer, stmt: &Stmt, kind: CheckKind) {
    let Some(block) = ctx.block(stmt) else { return };
    let mut c = Checker::new(kind, stmt.keyword().span);
    let name = stmt.keyword().text.clone();
    ctx.apply(CHECKER, &mut c, block, &name);
    match &mut c.kind {
        CheckKind::Smtp { main, hosts, .. } => {
            *main = hosts.is_empty() || CONNECTION.iter().any(|w| has(block, w));
        }
        CheckKind::Udp { min_len, max_len, .. } if *min_len > *max_len => ctx.error(
            stmt.keyword().span,
            format!("UDP_CHECK min_reply_length {min_len} > max_reply_length {max_len}: it would always fail"),
        ),
        _ => {}
    }
    match &c.kind {
        CheckKind::HttpGet { urls, .. } | CheckKind::SslGet { urls, .. } if urls.is_empty() => {
            ctx.error(stmt.keyword().span, format!("{name} has no `url` block"))
        }
        CheckKind::Misc { path: None, .. } => ctx.error(stmt.keyword().span, "MISC_CHECK has no `misc_path`"),
        _ => {}
    }
    rs.checkers.push(c);
}

/// keepalived's `BFD_CHECK { name NAME; alpha }` (check_bfd.c): its own two keywords only.
fn bfd_check(ctx: &mut Ctx, rs: &mut RealServer, stmt: &Stmt) {
    let Some(block) = ctx.block(stmt) else { return };
    let mut c = Checker::new(CheckKind::Bfd { name: String::new() }, stmt.keyword().span);
    // keepalived 2.2.7 knows `name` and `alpha` here and nothing else (`weight` included):
    // anything more is its "Unknown keyword" error.
    let (known, other): (Vec<Stmt>, Vec<Stmt>) =
        block.iter().cloned().partition(|s| BFD_CHECK.iter().any(|k| k.name == s.keyword().text));
    for s in &other {
        ctx.error(
            s.keyword().span,
            format!("unknown keyword `{}` in BFD_CHECK (it takes name and alpha)", s.keyword().text),
        );
    }
    ctx.apply(BFD_CHECK, &mut c, &known, "BFD_CHECK");
    let CheckKind::Bfd { name } = &c.kind else { return };
    if name.is_empty() {
        ctx.error(stmt.keyword().span, "BFD_CHECK has no `name`");
        return;
    }
    let dup = rs.checkers.iter().any(|o| matches!(&o.kind, CheckKind::Bfd { name: n } if n == name));
    if dup {
        ctx.error(stmt.keyword().span, format!("BFD_CHECK {name}: this real server already follows it"));
        return;
    }
    rs.checkers.push(c);
}

pub(crate) const BFD_CHECK: &[Keyword<Checker>] = &[
    Keyword::new("name", |ctx, c, st| {
        if st.args().len() != 1 {
            ctx.error(st.keyword().span, "BFD_CHECK `name` takes one bfd_instance name");
            return;
        }
        if let CheckKind::Bfd { name } = &mut c.kind {
            if !name.is_empty() {
                ctx.error(st.keyword().span, format!("BFD_CHECK already names {name}"));
                return;
            }
            *name = st.args()[0].text.clone();
        }
    }),
    Keyword::new("alpha", |ctx, c, st| c.alpha = ctx.bool_flag(st).or(c.alpha)),
];

/// Keywords of every checker; those of one kind only say so when used in another.
pub(crate) const CHECKER: &[Keyword<Checker>] = &[
    Keyword::new("connect_ip", |ctx, c, st| c.connect_ip = ctx.parse(st, 0, "an IPv4 or IPv6 address")),
    Keyword::new("connect_port", |ctx, c, st| c.connect_port = ctx.parse(st, 0, "a port number (0-65535)")),
    Keyword::new("bindto", |ctx, c, st| c.bindto = ctx.parse(st, 0, "an IPv4 or IPv6 address")),
    Keyword::new("bind_port", |ctx, c, st| c.bind_port = ctx.parse(st, 0, "a port number (0-65535)")),
    Keyword::new("bind_if", |ctx, c, st| {
        let Some(w) = ctx.arg(st, 0, "an interface name") else { return };
        if w.text.len() > 15 {
            // keepalived's co_srcif_handler: the checker keeps no interface.
            ctx.warn(w.span, format!("Interface name {} is too long - ignoring", w.text));
        } else {
            c.bind_if = Some(w.text.clone());
        }
    }),
    Keyword::new("fwmark", |ctx, c, st| c.fwmark = ctx.parse(st, 0, "a firewall mark (a number)").or(c.fwmark)),
    Keyword::new("connect_timeout", |ctx, c, st| c.connect_timeout = seconds(ctx, st, 1).or(c.connect_timeout)),
    Keyword::new("retry", retry).alias(&["nb_get_retry"]),
    Keyword::new("delay_before_retry", |ctx, c, st| {
        c.delay_before_retry = ctx.parse(st, 0, "a number of seconds").or(c.delay_before_retry)
    }),
    Keyword::new("warmup", |ctx, c, st| c.warmup = ctx.parse(st, 0, "a number of seconds")),
    Keyword::new("delay_loop", |ctx, c, st| {
        c.delay_loop = ctx.parse_range(st, 0, "a number of seconds", 1u32, u32::MAX)
    }),
    Keyword::new("alpha", |ctx, c, st| c.alpha = ctx.bool_flag(st).or(c.alpha)),
    Keyword::new("url", url),
    Keyword::new("virtualhost", |ctx, c, st| {
        let host = ctx.string(st, 0, "a host name");
        match &mut c.kind {
            CheckKind::HttpGet { virtualhost, .. } | CheckKind::SslGet { virtualhost, .. } => *virtualhost = host,
            _ => ctx.error(st.keyword().span, "`virtualhost` belongs in HTTP_GET or SSL_GET"),
        }
    }),
    Keyword::new("http_protocol", |ctx, c, st| {
        let Some(w) = ctx.arg(st, 0, "1.0, 1.0C or 1.1") else { return };
        let Some(p) = HttpProtocol::parse(&w.text) else {
            ctx.error(w.span, format!("http_protocol `{}` is not 1.0, 1.0C or 1.1", w.text));
            return;
        };
        match &mut c.kind {
            CheckKind::HttpGet { protocol, .. } | CheckKind::SslGet { protocol, .. } => *protocol = p,
            _ => ctx.error(st.keyword().span, "`http_protocol` belongs in HTTP_GET or SSL_GET"),
        }
    }),
    // keepalived reads it in HTTP_GET too, where there is no handshake to name a host in.
    Keyword::new("enable_sni", |ctx, c, st| {
        let on = ctx.bool_flag(st);
        match &mut c.kind {
            CheckKind::SslGet { enable_sni, .. } => *enable_sni = on.unwrap_or(*enable_sni),
            CheckKind::HttpGet { .. } => {}
            _ => ctx.error(st.keyword().span, "`enable_sni` belongs in SSL_GET"),
        }
    }),
    // keepalived's check_true_false: no argument is true.
    Keyword::new("fast_recovery", |ctx, c, st| {
        let on = ctx.bool_flag(st);
        match &c.kind {
            CheckKind::HttpGet { .. } | CheckKind::SslGet { .. } => c.fast_recovery = on.unwrap_or(c.fast_recovery),
            _ => ctx.error(st.keyword().span, "`fast_recovery` belongs in HTTP_GET or SSL_GET"),
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
    Keyword::new("payload", |ctx, c, st| {
        let data = hex(ctx, st, false, "UDP_CHECK payload").map(|(d, _)| d);
        match &mut c.kind {
            CheckKind::Udp { payload, .. } => *payload = data,
            _ => ctx.error(st.keyword().span, "`payload` belongs in UDP_CHECK"),
        }
    }),
    Keyword::new("require_reply", |ctx, c, st| {
        let data = if st.args().is_empty() { Some((vec![], vec![])) } else { hex(ctx, st, true, "UDP_CHECK reply") };
        match &mut c.kind {
            CheckKind::Udp { require_reply, reply, mask, .. } => {
                *require_reply = true;
                if let Some((d, m)) = data {
                    (*reply, *mask) = (d, m);
                }
            }
            _ => ctx.error(st.keyword().span, "`require_reply` belongs in UDP_CHECK"),
        }
    }),
    Keyword::new("min_reply_length", |ctx, c, st| {
        let v = ctx.parse_range(st, 0, "a length in bytes", 0u16, u16::MAX);
        match &mut c.kind {
            CheckKind::Udp { min_len, .. } => *min_len = v.unwrap_or(*min_len),
            _ => ctx.error(st.keyword().span, "`min_reply_length` belongs in UDP_CHECK"),
        }
    }),
    Keyword::new("max_reply_length", |ctx, c, st| {
        let v = ctx.parse_range(st, 0, "a length in bytes", 0u16, u16::MAX);
        match &mut c.kind {
            CheckKind::Udp { max_len, .. } => *max_len = v.unwrap_or(*max_len),
            _ => ctx.error(st.keyword().span, "`max_reply_length` belongs in UDP_CHECK"),
        }
    }),
    Keyword::new("type", |ctx, c, st| {
        let Some(w) = ctx.arg(st, 0, "a DNS type (A, NS, CNAME, SOA, MX, TXT, AAAA, RRSIG, DNSKEY)") else {
            return;
        };
        let t = DNS_TYPES.iter().find(|(n, _)| n.eq_ignore_ascii_case(&w.text)).map(|(_, t)| *t);
        if t.is_none() {
            ctx.error(
                w.span,
                format!("unknown DNS type `{}` (A, NS, CNAME, SOA, MX, TXT, AAAA, RRSIG, DNSKEY)", w.text),
            );
        }
        match &mut c.kind {
            CheckKind::Dns { qtype, .. } => *qtype = t.unwrap_or(*qtype),
            _ => ctx.error(st.keyword().span, "`type` belongs in DNS_CHECK"),
        }
    }),
    Keyword::new("name", |ctx, c, st| {
        let Some(w) = ctx.arg(st, 0, "a domain name") else { return };
        let CheckKind::Dns { name, .. } = &mut c.kind else {
            return ctx.error(st.keyword().span, "`name` belongs in DNS_CHECK");
        };
        if !name.is_empty() {
            return ctx.error(w.span, "DNS_CHECK name already given");
        }
        let n = &w.text;
        let labels: Vec<&str> = n.trim_end_matches('.').split('.').collect();
        if (n.starts_with('.') && n != ".") || n.contains("..") {
            ctx.error(w.span, format!("DNS_CHECK name `{n}` has an empty label"));
        } else if labels.iter().any(|l| l.len() > 63) || n.len() > 253 {
            ctx.error(w.span, format!("DNS_CHECK name `{n}`: a label is over 63 bytes or the name over 253"));
        } else {
            *name = n.clone();
        }
    }),
    Keyword::new("helo_name", |ctx, c, st| {
        let v = ctx.string(st, 0, "a host name");
        match &mut c.kind {
            CheckKind::Smtp { helo_name, .. } => *helo_name = v.unwrap_or(std::mem::take(helo_name)),
            _ => ctx.error(st.keyword().span, "`helo_name` belongs in SMTP_CHECK"),
        }
    }),
    Keyword::new("host", smtp_host),
    Keyword::new("user", |ctx, c, st| {
        let who = ctx.run_as(st, 0);
        match &mut c.kind {
            CheckKind::Misc { user, .. } => *user = who,
            _ => ctx.error(st.keyword().span, "`user` belongs in MISC_CHECK"),
        }
    }),
];

/// keepalived's `read_hex_str`: the arguments, blanks ignored, as pairs of hex digits (a
/// lone digit before a blank or the end is one byte); with `wildcards`, `x` matches any
/// nibble (its mask bits are set). Returns the bytes and the mask (empty without wildcards).
pub fn parse_hex(text: &str, wildcards: bool) -> Option<(Vec<u8>, Vec<u8>)> {
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some((c - b'0', 0)),
        b'a'..=b'f' | b'A'..=b'F' => Some(((c | 0x20) - b'a' + 10, 0)),
        b'x' | b'X' if wildcards => Some((0, 0x0f)),
        _ => None,
    };
    let (mut data, mut mask) = (Vec::new(), Vec::new());
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b' ' || b[i] == b'\t' {
            i += 1;
            continue;
        }
        let (mut v, mut m) = nibble(b[i])?;
        i += 1;
        if i < b.len() && b[i] != b' ' {
            let (v2, m2) = nibble(b[i])?;
            (v, m) = (v << 4 | v2, m << 4 | m2);
            i += 1;
        }
        data.push(v);
        mask.push(m);
    }
    if data.is_empty() {
        return None;
    }
    if mask.iter().all(|m| *m == 0) {
        mask.clear();
    }
    Some((data, mask))
}

fn hex(ctx: &mut Ctx, st: &Stmt, wildcards: bool, what: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    let first = ctx.arg(st, 0, "hex digits")?;
    let text: Vec<&str> = st.args().iter().map(|w| w.text.as_str()).collect();
    let parsed = parse_hex(&text.join(" "), wildcards);
    if parsed.is_none() {
        let x = if wildcards { " (x for any nibble)" } else { "" };
        ctx.error(first.span, format!("{what}: `{}` is not hex digits{x}", text.join(" ")));
    }
    parsed
}

/// An SMTP_CHECK `host` block: its connection keywords make a server of its own to ask;
/// the checker keywords (retry, delay_loop...) there act on the whole SMTP_CHECK, as in
/// keepalived.
fn smtp_host(ctx: &mut Ctx, c: &mut Checker, st: &Stmt) {
    let Some(block) = ctx.block(st) else { return };
    if !matches!(c.kind, CheckKind::Smtp { .. }) {
        return ctx.error(st.keyword().span, "`host` belongs in SMTP_CHECK");
    }
    // A PING_CHECK stands in: SMTP_CHECK's own keywords (host, helo_name) are refused here.
    let mut h = Checker {
        kind: CheckKind::Ping,
        connect_ip: None,
        connect_port: None,
        bindto: None,
        bind_port: None,
        bind_if: None,
        fwmark: None,
        ..c.clone()
    };
    ctx.apply(CHECKER, &mut h, block, "host");
    (c.retry, c.delay_before_retry, c.warmup, c.delay_loop) = (h.retry, h.delay_before_retry, h.warmup, h.delay_loop);
    let host = SmtpHost {
        connect_ip: h.connect_ip,
        connect_port: h.connect_port,
        bindto: h.bindto,
        bind_port: h.bind_port,
        fwmark: h.fwmark,
        bind_if: h.bind_if,
        connect_timeout: if has(block, "connect_timeout") { h.connect_timeout } else { None },
    };
    if let CheckKind::Smtp { hosts, .. } = &mut c.kind {
        hosts.push(host);
    }
}

fn retry(ctx: &mut Ctx, c: &mut Checker, st: &Stmt) {
    c.retry = ctx.parse(st, 0, "a count").or(c.retry);
}

fn url(ctx: &mut Ctx, c: &mut Checker, stmt: &Stmt) {
    let Some(block) = ctx.block(stmt) else { return };
    let mut u = Url { path: String::new(), digest: None, status_code: Vec::new(), virtualhost: None, regex: None };
    ctx.apply(URL, &mut u, block, "url");
    if u.path.is_empty() {
        ctx.error(stmt.keyword().span, "url has no `path`");
    }
    if let Some(r) = u.regex.take() {
        u.regex = url_regex(ctx, r, stmt);
    }
    match &mut c.kind {
        CheckKind::HttpGet { urls, .. } | CheckKind::SslGet { urls, .. } => urls.push(u),
        _ => ctx.error(stmt.keyword().span, "`url` belongs in HTTP_GET or SSL_GET"),
    }
}

/// keepalived's url end handler for `regex`: options without a pattern are dropped and
/// offsets the wrong way round reset, with its words (it only logs both, so `-t` passes); a
/// pattern PCRE2 refuses is an error (keepalived logs it and checks the url without it).
fn url_regex(ctx: &mut Ctx, mut r: UrlRegex, stmt: &Stmt) -> Option<UrlRegex> {
    if r.pattern.is_empty() {
        ctx.warn(stmt.keyword().span, "regex parameters specified without regex (keepalived ignores them)");
        return None;
    }
    if let Some(max) = r.max_offset.filter(|max| r.min_offset > *max) {
        ctx.warn(
            stmt.keyword().span,
            format!("regex min offset {} > regex_max_offset {max} - ignoring (as keepalived)", r.min_offset),
        );
        (r.min_offset, r.max_offset) = (0, None);
    }
    // Compiled, and run once, now: what PCRE2 refuses (the pattern, the JIT stack) is found
    // at load, not by a checker.
    if let Err(e) = r.compile().and_then(|p| p.find(b"", 0, r.jit_stack)) {
        ctx.error(r.span, format!("regex `{}`: PCRE2 refuses it: {e}", r.pattern));
        return None;
    }
    Some(r)
}

/// A url's regex settings, created by the first regex keyword.
fn regex_of(u: &mut Url) -> &mut UrlRegex {
    u.regex.get_or_insert_with(UrlRegex::default)
}

pub(crate) const URL: &[Keyword<Url>] = &[
    Keyword::new("regex", |ctx, u, st| {
        if st.args().len() > 1 {
            ctx.error(st.args()[1].span, "regex takes one pattern: quote it if it holds blanks");
            return;
        }
        if let Some(p) = ctx.string(st, 0, "a PCRE2 pattern") {
            let r = regex_of(u);
            r.pattern = p;
            r.span = st.args()[0].span;
        }
    }),
    Keyword::new("regex_no_match", |ctx, u, st| regex_of(u).no_match = ctx.flag(st)),
    // keepalived ignores names it does not know.
    Keyword::new("regex_options", |ctx, u, st| {
        for w in st.args() {
            if !crate::pcre::OPTIONS.iter().any(|(name, _)| *name == w.text) {
                ctx.warn(w.span, format!("regex_options: unknown option `{}` (keepalived ignores it too)", w.text));
                continue;
            }
            let options = &mut regex_of(u).options;
            if !options.contains(&w.text) {
                options.push(w.text.clone());
            }
        }
    }),
    Keyword::new("regex_min_offset", |ctx, u, st| {
        if let Some(n) = ctx.parse(st, 0, "a byte offset") {
            regex_of(u).min_offset = n;
        }
    }),
    Keyword::new("regex_max_offset", |ctx, u, st| {
        if let Some(n) = ctx.parse(st, 0, "a byte offset") {
            regex_of(u).max_offset = Some(n);
        }
    }),
    // keepalived: both sizes, or the line is ignored; a stack PCRE2 cannot make is an error
    // here (url_regex), where keepalived would fall back to its default.
    Keyword::new("regex_stack", |ctx, u, st| {
        let first: Option<usize> = ctx.parse_range(st, 0, "the JIT stack's start size (bytes)", 1, 1 << 30);
        let max: Option<usize> = ctx.parse_range(st, 1, "the JIT stack's largest size (bytes)", 1, 1 << 30);
        if let (Some(first), Some(max)) = (first, max) {
            if first > max {
                return ctx.error(st.keyword().span, format!("regex_stack: start {first} above the largest {max}"));
            }
            regex_of(u).jit_stack = Some((first, max));
        }
    }),
    Keyword::new("virtualhost", |ctx, u, st| u.virtualhost = ctx.string(st, 0, "a host name")),
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
