//! Keyword tables per block, one handler per keyword.

use std::net::IpAddr;

use super::{
    keyword::{Ctx, Keyword},
    model::{Config, ForwardMethod, Protocol, RealServer, ServiceAddr, VirtualServer},
    tree::Stmt,
};

pub fn config(ctx: &mut Ctx, stmts: &[Stmt]) -> Config {
    let mut cfg = Config::default();
    ctx.apply(TOP, &mut cfg, stmts, "the top level");
    cfg
}

const TOP: &[Keyword<Config>] = &[Keyword::new("virtual_server", virtual_server)];

fn virtual_server(ctx: &mut Ctx, cfg: &mut Config, stmt: &Stmt) {
    let Some(first) = ctx.arg(stmt, 0, "an address and port, `fwmark N` or `group NAME`") else {
        return;
    };
    let addr = match first.text.as_str() {
        "fwmark" => ctx
            .parse::<u32>(stmt, 1, "a firewall mark (a number)")
            .map(ServiceAddr::Fwmark),
        "group" => ctx
            .arg(stmt, 1, "a virtual_server_group name")
            .map(|w| ServiceAddr::Group(w.text.clone())),
        _ => ip_port(ctx, stmt, 0).map(|(ip, port)| ServiceAddr::Inet((ip, port).into())),
    };
    let Some(block) = ctx.block(stmt) else { return };
    let Some(addr) = addr else { return };
    let mut vs = VirtualServer::new(addr, stmt.keyword().span);
    ctx.apply(VIRTUAL_SERVER, &mut vs, block, "virtual_server");
    cfg.virtual_servers.push(vs);
}

/// `IP PORT` at argument `i`.
fn ip_port(ctx: &mut Ctx, stmt: &Stmt, i: usize) -> Option<(IpAddr, u16)> {
    let ip = ctx.parse::<IpAddr>(stmt, i, "an IPv4 or IPv6 address");
    let port = ctx.parse::<u16>(stmt, i + 1, "a port number (0-65535)");
    Some((ip?, port?))
}

const VIRTUAL_SERVER: &[Keyword<VirtualServer>] = &[
    Keyword::new("protocol", protocol),
    Keyword::new("lb_algo", lb_algo).alias(&["lvs_sched"]),
    Keyword::new("lb_kind", lb_kind).alias(&["lvs_method"]),
    Keyword::new("delay_loop", delay_loop),
    Keyword::new("persistence_timeout", persistence_timeout),
    Keyword::new("real_server", real_server),
];

fn protocol(ctx: &mut Ctx, vs: &mut VirtualServer, stmt: &Stmt) {
    if let Some(w) = ctx.arg(stmt, 0, "TCP, UDP or SCTP") {
        match w.text.to_ascii_uppercase().as_str() {
            "TCP" => vs.protocol = Protocol::Tcp,
            "UDP" => vs.protocol = Protocol::Udp,
            "SCTP" => vs.protocol = Protocol::Sctp,
            _ => ctx.error(
                w.span,
                format!("protocol `{}` is not TCP, UDP or SCTP", w.text),
            ),
        }
    }
}

fn lb_algo(ctx: &mut Ctx, vs: &mut VirtualServer, stmt: &Stmt) {
    if let Some(w) = ctx.arg(stmt, 0, "a scheduler name (rr, wrr, lc, wlc, ...)") {
        vs.scheduler = w.text.clone();
    }
}

fn lb_kind(ctx: &mut Ctx, vs: &mut VirtualServer, stmt: &Stmt) {
    if let Some(w) = ctx.arg(stmt, 0, "NAT, DR or TUN") {
        match w.text.to_ascii_uppercase().as_str() {
            "NAT" => vs.forward = ForwardMethod::Nat,
            "DR" => vs.forward = ForwardMethod::Dr,
            "TUN" => vs.forward = ForwardMethod::Tun,
            _ => ctx.error(
                w.span,
                format!("lb_kind `{}` is not NAT, DR or TUN", w.text),
            ),
        }
    }
}

fn delay_loop(ctx: &mut Ctx, vs: &mut VirtualServer, stmt: &Stmt) {
    if let Some(v) = ctx.parse(stmt, 0, "a number of seconds") {
        vs.delay_loop = v;
    }
}

fn persistence_timeout(ctx: &mut Ctx, vs: &mut VirtualServer, stmt: &Stmt) {
    vs.persistence_timeout = ctx.parse(stmt, 0, "a number of seconds");
}

fn real_server(ctx: &mut Ctx, vs: &mut VirtualServer, stmt: &Stmt) {
    let addr = ip_port(ctx, stmt, 0);
    let block = stmt.block.as_deref().unwrap_or_default();
    let Some((ip, port)) = addr else { return };
    let mut rs = RealServer::new(ip, port, stmt.keyword().span);
    ctx.apply(REAL_SERVER, &mut rs, block, "real_server");
    vs.real_servers.push(rs);
}

const REAL_SERVER: &[Keyword<RealServer>] = &[Keyword::new("weight", weight)];

fn weight(ctx: &mut Ctx, rs: &mut RealServer, stmt: &Stmt) {
    if let Some(w) = ctx.parse_range(stmt, 0, "a weight", 0u32, 65535) {
        rs.weight = w;
    }
}
