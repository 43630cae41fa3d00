//! keepalived 2.2.7's dump files, as its VRRP process writes them: `keepalived.data`
//! (`dump_data_vrrp`, vrrp_data.c), `keepalived.stats` (`vrrp_print_stats`, vrrp_print.c) and
//! `keepalived.json` (`vrrp_print_json`, vrrp_json.c). Tools parse these (the Prometheus
//! keepalived exporters, monitoring checks), so the wording, indentation and JSON keys are
//! keepalived's. Lines keepalived prints about its own internals (file descriptors, timers,
//! the socket pool, the interface list) are left out; every line written here is one
//! keepalived writes for the same configuration. Pure: the configuration and the status in,
//! text out.

use std::fmt::Write as _;
use std::net::IpAddr;

use serde_json::{Map, Value, json};

use crate::{
    config::{
        AuthType, Config, IFA_F_HOMEADDRESS, IFA_F_MANAGETEMPADDR, IFA_F_MCAUTOJOIN, IFA_F_NOPREFIXROUTE, IpAddress,
        Route, RouteMode, RouteType, Rule, RuleAction, Scope, VrrpInstance,
    },
    vrrp::{State, VrrpStatus, tracking},
};

/// One configured instance with what the engine reports about it (none before it started).
struct Inst<'a> {
    cfg: &'a VrrpInstance,
    st: Option<&'a VrrpStatus>,
    config: &'a Config,
}

impl Inst<'_> {
    fn state(&self) -> State {
        self.st.map_or(State::Init, |s| s.state)
    }
    fn version(&self) -> u8 {
        self.st.map(|s| s.version).filter(|v| *v != 0).unwrap_or_else(|| self.cfg.vrrp_version(&self.config.global))
    }
    fn v6(&self) -> bool {
        self.cfg.virtual_ipaddress.first().is_some_and(|a| a.addr.is_ipv6())
    }
    fn iface(&self) -> &str {
        match self.st {
            Some(s) if !s.interface.is_empty() => &s.interface,
            _ => self.cfg.interface.as_deref().unwrap_or("not configured"),
        }
    }
    fn effective_priority(&self) -> u8 {
        self.st.map_or(self.cfg.priority, |s| s.priority)
    }
    fn garp_delay(&self) -> u32 {
        self.cfg.garp_master_delay.unwrap_or(self.config.global.vrrp_garp_master_delay)
    }
    fn garp_repeat(&self) -> u32 {
        self.cfg.garp_master_repeat.unwrap_or(self.config.global.vrrp_garp_master_repeat)
    }
    fn garp_refresh(&self) -> u32 {
        self.cfg.garp_master_refresh.unwrap_or(self.config.global.vrrp_garp_master_refresh)
    }
    fn accept(&self) -> bool {
        self.cfg.accept_mode(&self.config.global)
    }
    fn counter(&self, f: impl Fn(&VrrpStatus) -> u64) -> u64 {
        self.st.map_or(0, f)
    }
    /// Drops by keepalived's counter: ours are named by `Reject` (`packet::Reject`).
    fn rejected(&self, names: &[&str]) -> u64 {
        self.st.map_or(0, |s| names.iter().map(|n| s.rejected.get(*n).copied().unwrap_or(0)).sum())
    }
    fn sync_group(&self) -> Option<&str> {
        self.config.vrrp_sync_groups.iter().find(|g| g.group.contains(&self.cfg.name)).map(|g| g.name.as_str())
    }
    fn script_command(&self, name: &str) -> String {
        let s = self.config.vrrp_scripts.iter().find(|s| s.name == name);
        s.and_then(|s| s.script.as_ref()).map_or_else(|| name.to_string(), |s| s.command.clone())
    }
    /// With `use_vmac`, the interface its VMAC is on.
    fn vmac_base(&self) -> Option<&str> {
        self.cfg.use_vmac.as_ref().and(self.cfg.interface.as_deref()).filter(|base| *base != self.iface())
    }
    /// A virtual address as `format_ipaddress` prints it: on a VMAC, `dev VMAC@BASE`.
    fn address(&self, a: &IpAddress) -> String {
        let Some(base) = self.vmac_base() else { return address(a, self.iface(), self.state() == State::Master) };
        let placed = crate::vrrp::placed_vips(self.cfg, Some(base));
        let on_vmac = placed.iter().any(|p| p.addr == a.addr && p.dev.is_none());
        let dev = if on_vmac { format!("{}@{base}", self.iface()) } else { a.device(base).to_string() };
        address(&IpAddress { dev: Some(dev), ..a.clone() }, base, self.state() == State::Master)
    }
}

/// An address and prefix length as keepalived's `ipaddresstos` prints them: a host address
/// without its length.
fn prefix(a: IpAddr, len: u8) -> String {
    let host = if a.is_ipv4() { 32 } else { 128 };
    if len == host { a.to_string() } else { format!("{a}/{len}") }
}

/// An address as keepalived's `format_ipaddress` prints it; `set` when it is in the kernel.
fn address(a: &IpAddress, iface: &str, set: bool) -> String {
    let mut s = prefix(a.addr, a.prefix);
    if let Some(b) = a.broadcast {
        let _ = write!(s, " brd {b}");
    }
    let _ = write!(s, " dev {} scope {}", a.device(iface), scope(a.scope));
    if let Some(l) = &a.label {
        let _ = write!(s, " label {l}");
    }
    if let Some(p) = a.peer {
        let _ = write!(s, " peer {p}/{}", a.prefix);
    }
    if a.flags & IFA_F_HOMEADDRESS != 0 {
        s.push_str(" home");
    }
    if a.dad {
        s.push_str(" -nodad");
    }
    for (bit, word) in [
        (IFA_F_MANAGETEMPADDR, " mngtmpaddr"),
        (IFA_F_NOPREFIXROUTE, " noprefixroute"),
        (IFA_F_MCAUTOJOIN, " autojoin"),
    ] {
        if a.flags & bit != 0 {
            s.push_str(word);
        }
    }
    if a.no_track {
        s.push_str(" no_track");
    }
    if let Some(g) = &a.track_group {
        let _ = write!(s, " track_group {g}");
    }
    if a.addr.is_ipv6() {
        match a.preferred_lifetime() {
            Some(0) => s.push_str(" deprecated"),
            Some(n) => {
                let _ = write!(s, " preferred_lft {n}");
            }
            None => s.push_str(" preferred_lft forever"),
        }
    }
    if set {
        s.push_str(" set");
    }
    s
}

/// A rule as keepalived's `format_iprule` prints it.
fn rule(r: &Rule) -> String {
    let mut s = String::new();
    if r.from.is_none() && r.to.is_none() && r.v6 {
        s.push_str("inet6 ");
    }
    if r.invert {
        s.push_str("not ");
    }
    // keepalived's ipaddresstos: the length only when it is not the whole address.
    let prefix = |(a, len): (IpAddr, u8)| {
        let full = if a.is_ipv4() { 32 } else { 128 };
        if len == full { a.to_string() } else { format!("{a}/{len}") }
    };
    match r.from {
        Some(f) => {
            let _ = write!(s, "from {}", prefix(f));
        }
        None => s.push_str("from all"),
    }
    if let Some(t) = r.to {
        let _ = write!(s, " to {}", prefix(t));
    }
    let _ = write!(s, " priority {} tos {:#x}", r.priority, r.tos);
    if let Some(m) = r.fwmark {
        let _ = write!(s, " fwmark {m:#x}");
        if let Some(k) = r.fwmask.filter(|k| *k != u32::MAX) {
            let _ = write!(s, "/{k:#x}");
        }
    }
    for (word, v) in [("iif", &r.iif), ("oif", &r.oif)] {
        if let Some(v) = v {
            let _ = write!(s, " {word} {v}");
        }
    }
    if let Some(v) = r.suppress_prefixlength {
        let _ = write!(s, " suppress_prefixlen {v}");
    }
    if let Some(v) = r.suppress_ifgroup {
        let _ = write!(s, " suppress_ifgroup {v}");
    }
    if let Some(v) = r.tunnel_id.filter(|t| *t != 0) {
        let _ = write!(s, " tunnel-id {v}");
    }
    if let Some((a, b)) = r.uidrange {
        let _ = write!(s, " uidrange {a}-{b}");
    }
    if r.action == RuleAction::L3mdev {
        s.push_str(" l3mdev");
    }
    if let Some(p) = r.protocol {
        let _ = write!(s, " protocol {p}");
    }
    if let Some(p) = r.ipproto {
        let _ = write!(s, " ipproto {p}");
    }
    for (word, v) in [("sport", r.sport), ("dport", r.dport)] {
        if let Some((a, b)) = v {
            let _ = write!(s, " {word} {a}-{b}");
        }
    }
    if let Some(v) = r.realms.filter(|v| *v != 0) {
        let _ = write!(s, " realms {}/{}", v >> 16, v & 0xffff);
    }
    match r.action {
        RuleAction::Table(t) => {
            let _ = write!(s, " lookup {t}");
        }
        // keepalived's l3mdev rule is a table action with table 0.
        RuleAction::L3mdev => s.push_str(" lookup 0"),
        RuleAction::Goto(t) => {
            let _ = write!(s, " goto {t}");
        }
        RuleAction::Nop => s.push_str(" nop"),
        RuleAction::Blackhole => s.push_str(" type blackhole"),
        RuleAction::Unreachable => s.push_str(" type unreachable"),
        RuleAction::Prohibit => s.push_str(" type prohibit"),
    }
    if r.protocol.is_none() {
        s.push_str(" no_track");
    }
    s
}

fn scope(s: Option<Scope>) -> &'static str {
    match s {
        None | Some(Scope::Global) => "global",
        Some(Scope::Site) => "site",
        Some(Scope::Link) => "link",
        Some(Scope::Host) => "host",
        Some(Scope::Nowhere) => "nowhere",
    }
}

/// A static or virtual route as keepalived.data writes it (keepalived 2.2.7's
/// `format_iproute`): the options it knows, in its order, numbers for names.
fn route(r: &Route) -> String {
    let inet = |a: &std::net::IpAddr| if a.is_ipv4() { "inet" } else { "inet6" };
    let mut s = String::from(match r.mode {
        RouteMode::Add => "add ",
        RouteMode::Append => "append ",
        // keepalived 2.2.7 writes `add` for a typed route written without a mode.
        RouteMode::Prepend if r.kind != RouteType::Unicast => "add ",
        RouteMode::Prepend => "prepend ",
    });
    s.push_str(match r.kind {
        RouteType::Unicast => "",
        RouteType::Blackhole => "blackhole ",
        RouteType::Unreachable => "unreachable ",
        RouteType::Prohibit => "prohibit ",
    });
    s.push_str(&prefix(r.dest, r.prefix));
    if let Some((a, len)) = r.from {
        let _ = write!(s, " from {}", prefix(a, len));
    }
    if let Some(v) = r.src {
        let _ = write!(s, " src {v}");
    }
    if let Some(t) = r.tos {
        let _ = write!(s, " tos {t}");
    }
    if let Some(v) = r.via {
        let _ = write!(s, " via {} {v}", inet(&v));
    }
    if let Some(d) = &r.dev {
        let _ = write!(s, " dev {d}");
    }
    if let Some(t) = r.table.filter(|t| *t != 254) {
        let _ = write!(s, " table {t}");
    }
    if let Some(p) = r.protocol {
        let _ = write!(s, " proto {p}");
    }
    if let Some(sc) = r.scope {
        let n = match sc {
            Scope::Global => 0,
            Scope::Site => 200,
            Scope::Link => 253,
            Scope::Host => 254,
            Scope::Nowhere => 255,
        };
        let _ = write!(s, " scope {n}");
    }
    if let Some(m) = r.metric {
        let _ = write!(s, " metric {m}");
    }
    if r.onlink && r.dest.is_ipv4() {
        s.push_str(" onlink");
    }
    if let Some(v) = r.realms.filter(|v| *v != 0) {
        if v >> 16 != 0 {
            let _ = write!(s, " realms {}/{}", v >> 16, v & 0xffff);
        } else {
            let _ = write!(s, " realm {v}");
        }
    }
    if let Some(e) = r.expires {
        let _ = write!(s, " expires {e}sec");
    }
    let m = &r.metrics;
    let locked = |name: &str| m.lock & (1 << crate::config::ip::rtax(name)) != 0;
    if let Some(c) = &m.congctl {
        let _ = write!(s, " congctl {c}{}", if locked("congctl") { "lock " } else { "" });
    }
    // keepalived's " %s%s " then "%gs" / "%gms": its units are 1/(1000 * mult) s.
    for (name, v, mult) in [("rtt", m.rtt, 8u32), ("rttvar", m.rttvar, 4), ("rto_min", m.rto_min, 1)] {
        if let Some(v) = v {
            let _ = write!(s, " {name}{} ", if locked(name) { " lock" } else { "" });
            if v >= 1000 * mult {
                let _ = write!(s, "{}s", fmt_g(f64::from(v) / f64::from(1000 * mult)));
            } else {
                let _ = write!(s, "{}ms", fmt_g(f64::from(v) / f64::from(mult)));
            }
        }
    }
    if m.features_ecn {
        s.push_str(" features ecn");
    }
    for (name, v) in
        [("mtu", m.mtu), ("window", m.window), ("ssthresh", m.ssthresh), ("cwnd", m.cwnd), ("advmss", m.advmss)]
            .into_iter()
            .chain([("reordering", m.reordering), ("hoplimit", m.hoplimit.map(u32::from))])
            .chain([("initcwnd", m.initcwnd), ("initrwnd", m.initrwnd), ("quickack", m.quickack)])
    {
        if let Some(v) = v {
            let lock = if name != "window" && locked(name) { "lock " } else { "" };
            let _ = write!(s, " {name} {lock}{v}");
        }
    }
    if let Some(p) = r.pref {
        let _ = write!(
            s,
            " pref {}",
            match p {
                3 => "low",
                0 => "medium",
                1 => "high",
                _ => "unknown",
            }
        );
    }
    if let Some(v) = m.fastopen_no_cookie {
        let _ = write!(s, " fastopen_no_cookie {v}");
    }
    for nh in &r.nexthops {
        s.push_str(" nexthop");
        if let Some(v) = nh.via {
            let _ = write!(s, " via {} {v}", inet(&v));
        }
        if let Some(d) = &nh.dev {
            let _ = write!(s, " dev {d}");
        }
        if let Some(w) = nh.weight {
            let _ = write!(s, " weight {w}");
        }
        if nh.onlink {
            s.push_str(" onlink");
        }
    }
    // keepalived tracks only a route with an interface of its own.
    if r.no_track || r.dev.is_none() {
        s.push_str(" no_track");
    }
    if let Some(g) = &r.track_group {
        let _ = write!(s, " track_group {g}");
    }
    s
}

/// C's `%g` for the positive values below 1e6 that route times take: six significant digits,
/// trailing zeros dropped.
fn fmt_g(x: f64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    let decimals = (5 - x.abs().log10().floor() as i32).max(0) as usize;
    let s = format!("{x:.decimals$}");
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}

fn instances<'a>(config: &'a Config, vrrp: &'a [VrrpStatus]) -> Vec<Inst<'a>> {
    config
        .vrrp_instances
        .iter()
        .map(|cfg| Inst { cfg, st: vrrp.iter().find(|s| s.instance == cfg.name), config })
        .collect()
}

/// keepalived's state numbers (vrrp.h): INIT 0, BACKUP 1, MASTER 2, FAULT 3, STOP 98.
fn state_number(s: State) -> u8 {
    match s {
        State::Init => 0,
        State::Backup => 1,
        State::Master => 2,
        State::Fault => 3,
        State::Stopped => 98,
    }
}

/// `ctime_us_r`: `Wed Dec  2 10:24:42.908872 2026`, local time.
fn ctime_us(t: f64) -> String {
    let secs = t.trunc() as libc::time_t;
    let usec = ((t - t.trunc()) * 1e6).round().min(999_999.0) as u32;
    // SAFETY: localtime_r writes into our zeroed `tm` only.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&secs, &mut tm).is_null() {
            return "invalid time".into();
        }
        tm
    };
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    format!(
        "{} {} {:2} {:02}:{:02}:{:02}.{usec:06} {}",
        DAYS[tm.tm_wday.clamp(0, 6) as usize],
        MONTHS[tm.tm_mon.clamp(0, 11) as usize],
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        tm.tm_year + 1900
    )
}

/// `keepalived.data`: the global definitions and the VRRP topology.
pub fn data(config: &Config, vrrp: &[VrrpStatus], hostname: &str) -> String {
    let g = &config.global;
    let yes_no = |b: bool| if b { "true" } else { "false" };
    let mut o = String::new();
    let mut line = |s: String| {
        o.push_str(&s);
        o.push('\n');
    };
    line("------< Global definitions >------".into());
    line(format!(" Router ID = {}", g.router_id.as_deref().unwrap_or(hostname)));
    line(format!(" VRRP IPv4 mcast group = {}", g.vrrp_mcast_group4));
    line(format!(" VRRP IPv6 mcast group = {}", g.vrrp_mcast_group6));
    line(format!(" Gratuitous ARP delay = {}", g.vrrp_garp_master_delay));
    line(format!(" Gratuitous ARP repeat = {}", g.vrrp_garp_master_repeat));
    line(format!(" Gratuitous ARP refresh timer = {}", g.vrrp_garp_master_refresh));
    line(format!(" Gratuitous ARP refresh repeat = {}", g.vrrp_garp_master_refresh_repeat));
    let extra = g.vrrp_garp_extra_if;
    line(format!(" Gratuitous ARP for each secondary {} = {}s", if extra.all { "i/f" } else { "VMAC" }, extra.secs));
    line(format!(" VRRP default protocol version = {}", g.vrrp_version));
    line(format!(" VRRP strict mode = {}", yes_no(g.vrrp_strict)));
    // The static entries, `set` as keepalived shows the ones it added (an equal entry that
    // was in the kernel before the daemon started shows `set` too).
    let default_dev = g.default_interface.as_deref().unwrap_or("eth0");
    if !config.static_ipaddress.is_empty() {
        line("------< Static Addresses >------".into());
        for a in &config.static_ipaddress {
            line(format!("     {}", address(a, default_dev, true)));
        }
    }
    if !config.static_routes.is_empty() {
        line("------< Static Routes >------".into());
        for r in &config.static_routes {
            line(format!("     {}", route(r)));
        }
    }
    if !config.static_rules.is_empty() {
        line("------< Static Rules >------".into());
        for r in &config.static_rules {
            line(format!("     {}", rule(r)));
        }
    }
    let insts = instances(config, vrrp);
    if !config.vrrp_sync_groups.is_empty() {
        line("------< VRRP Sync groups >------".into());
        for grp in &config.vrrp_sync_groups {
            let state = insts.iter().find(|i| grp.group.contains(&i.cfg.name)).map_or(State::Init, Inst::state);
            line(format!(" VRRP Sync Group = {}, {}", grp.name, state.name()));
            line("   VRRP member instances :".into());
            for m in &grp.group {
                line(format!("     {m}"));
            }
            if !grp.track_process.is_empty() {
                line("   Tracked process :".into());
                for t in &grp.track_process {
                    line(tracked_process(config, t));
                }
            }
        }
    }
    line("------< VRRP Topology >------".into());
    for i in &insts {
        let c = i.cfg;
        let state = i.state();
        let version = i.version();
        line(format!(" VRRP Instance = {}", c.name));
        line(format!("   VRRP Version = {version}"));
        if let Some(grp) = i.sync_group() {
            line(format!("   Sync group = {grp}"));
        }
        if i.v6() {
            line("   Using Native IPv6".into());
        }
        line(format!("   State = {}", state.name()));
        if state == State::Backup
            && let Some((addr, prio)) = i.st.and_then(|s| s.master)
        {
            line(format!("   Master router = {addr}"));
            line(format!("   Master priority = {prio}"));
            if version == 3 {
                line(format!("   Master advert int = {:.2} sec", f64::from(c.advert_int_cs) / 100.0));
            }
        }
        if c.unicast_peer.is_empty() {
            line("   Flags: none".into());
        } else {
            line("   Flags:".into());
            line("     Using unicast".into());
        }
        line(format!("   Wantstate = {}", state.name()));
        line("   Number of config faults = 0".into());
        if let Some(t) = i.st.map(|s| s.last_transition).filter(|t| *t > 0.0) {
            line(format!("   Last transition = {t:.6} ({})", ctime_us(t)));
        }
        match i.vmac_base() {
            // keepalived: "Interface = IF, vmac on BASE[, xmit base i/f]".
            Some(base) => line(format!(
                "   Interface = {}, vmac on {base}{}",
                i.iface(),
                if c.vmac_xmit_base { ", xmit base i/f" } else { "" }
            )),
            None => line(format!("   Interface = {}", i.iface())),
        }
        if c.dont_track_primary {
            line("   VRRP interface tracking disabled".into());
        }
        if c.skips_adv_addr_check(g) {
            line("   Skip checking advert IP addresses".into());
        }
        if c.strict(g) {
            line("   Enforcing strict VRRP compliance".into());
        }
        let from_config = c.unicast_src_ip.or(c.mcast_src_ip).is_some();
        match i.st.and_then(|s| s.src_ip).or(c.unicast_src_ip).or(c.mcast_src_ip) {
            Some(a) => line(format!("   Using src_ip = {a}{}", if from_config { " (from configuration)" } else { "" })),
            None => line("   Using src_ip = (none)".into()),
        }
        if c.unicast_peer.is_empty() {
            match c.mcast_dst_ip {
                Some(a) => line(format!("   Multicast address {a}")),
                None if i.v6() => line(format!("   Multicast address {}", g.vrrp_mcast_group6)),
                None => line(format!("   Multicast address {}", g.vrrp_mcast_group4)),
            }
        }
        line(format!("   Gratuitous ARP delay = {}", i.garp_delay()));
        line(format!("   Gratuitous ARP repeat = {}", i.garp_repeat()));
        line(format!("   Gratuitous ARP refresh = {}", i.garp_refresh()));
        line(format!("   Gratuitous ARP refresh repeat = {}", g.vrrp_garp_master_refresh_repeat));
        line(format!("   Gratuitous ARP lower priority delay = {}", c.garp_lower_prio_delay(g)));
        line(format!("   Gratuitous ARP lower priority repeat = {}", c.garp_lower_prio_repeat(g)));
        line(format!("   Down timer adverts = {}", c.down_timer_adverts(g)));
        // keepalived clears the interval where it would announce nothing.
        let extra = c.garp_extra_if.unwrap_or(g.vrrp_garp_extra_if);
        let vmac_base = c.use_vmac.as_ref().and(c.interface.as_deref());
        let placed = crate::vrrp::placed_vips(c, vmac_base);
        if !crate::vrrp::garp_extra_targets(placed, i.iface(), extra, c.vmac_xmit_base).is_empty() {
            line(format!("   Gratuitous ARP for each secondary i/f = {}", extra.secs));
        }
        let answers_lower = if c.lower_prio_no_advert(g) { "false" } else { "true" };
        line(format!("   Send advert after receive lower priority advert = {answers_lower}"));
        let answers_higher = if c.higher_prio_send_advert(g) { "true" } else { "false" };
        line(format!("   Send advert after receive higher priority advert = {answers_higher}"));
        line(format!("   Virtual Router ID = {}", c.virtual_router_id.unwrap_or(0)));
        line(format!("   Priority = {}", c.priority));
        line(format!("   Effective priority = {}", i.effective_priority()));
        if version == 2 {
            line(format!("   Advert interval = {} sec", c.advert_int_cs / 100));
        } else {
            line(format!("   Advert interval = {} milli-sec", c.advert_int_cs * 10));
        }
        line(format!("   Accept = {}", if i.accept() { "enabled" } else { "disabled" }));
        line(format!("   Preempt = {}", if c.nopreempt { "disabled" } else { "enabled" }));
        if c.preempt_delay != 0 {
            line(format!("   Preempt delay = {} secs", c.preempt_delay));
        }
        line(format!("   Promote_secondaries = {}", if c.promote_secondaries { "enabled" } else { "disabled" }));
        match &c.authentication {
            Some(a) if version == 2 && a.auth_type == AuthType::Pass => {
                line("   Authentication type = SIMPLE_PASSWORD".into());
                line(format!("   Password = {}", a.auth_pass));
            }
            Some(a) if version == 2 && a.auth_type == AuthType::Ah => {
                line("   Authentication type = IPSEC_AH".into());
            }
            _ if version == 2 => line("   Authentication type = none".into()),
            _ => {}
        }
        if let Some(level) = c.debug.filter(|l| *l != 0) {
            line(format!("   Debug level = {level}"));
        }
        if !c.virtual_ipaddress.is_empty() {
            line(format!("   Virtual IP ({}):", c.virtual_ipaddress.len()));
            for a in &c.virtual_ipaddress {
                line(format!("     {}", i.address(a)));
            }
        }
        if !c.virtual_ipaddress_excluded.is_empty() {
            line("   Virtual IP Excluded :".into());
            for a in &c.virtual_ipaddress_excluded {
                line(format!("     {}", i.address(a)));
            }
        }
        if !c.unicast_peer.is_empty() {
            // The instance's own flag, as keepalived prints it (global_defs' is not reflected).
            line(format!("   Check unicast src : {}", if c.check_unicast_src { "yes" } else { "no" }));
            line("   Unicast Peer :".into());
            for p in &c.unicast_peer {
                let (min, max) = c.unicast_peer_ttl.iter().find(|t| t.addr == *p).map_or((0, 255), |t| (t.min, t.max));
                line(format!("     {p} min_ttl {min} max_ttl {max}"));
            }
            let compat = match c.old_unicast_checksum {
                Some(crate::config::OldUnicastChecksum::Old) => "config",
                Some(crate::config::OldUnicastChecksum::Never) => "never",
                None if i.st.is_some_and(|s| s.old_checksum_heard) => "auto",
                None => "no",
            };
            line(format!("   Unicast checksum compatibility = {compat}"));
        }
        if !c.virtual_routes.is_empty() {
            line("   Virtual Routes :".into());
            for r in &c.virtual_routes {
                line(format!("     {}", route(r)));
            }
        }
        if !c.virtual_rules.is_empty() {
            line("   Virtual Rules :".into());
            for r in &c.virtual_rules {
                line(format!("     {}", rule(r)));
            }
        }
        if !c.track_interface.is_empty() {
            line("   Tracked interfaces :".into());
            for t in &c.track_interface {
                line(format!("     {} weight {}", t.name, t.weight.unwrap_or(0)));
            }
        }
        if !c.track_script.is_empty() {
            line("   Tracked scripts :".into());
            for t in &c.track_script {
                line(format!("     {} weight {}", t.name, t.weight.unwrap_or(0)));
            }
        }
        if !c.track_process.is_empty() {
            line("   Tracked processes :".into());
            for t in &c.track_process {
                line(tracked_process(config, t));
            }
        }
        let smtp = c.notify.mails(g.vrrp_mail());
        line(format!("   Using smtp notification = {}", if smtp { "yes" } else { "no" }));
        line(format!("   Notify deleted = {}", if c.notify.notify_deleted { "Deleted" } else { "Fault" }));
        for (what, s) in [
            ("Backup state transition script", &c.notify.backup),
            ("Master state transition script", &c.notify.master),
            ("Fault state transition script", &c.notify.fault),
            ("Stop state transition script", &c.notify.stop),
            ("Deleted state transition script", &c.notify.deleted),
            ("Generic state transition script", &c.notify.any),
            ("Master rx lower pri state transition script", &c.notify.master_rx_lower_pri),
        ] {
            if let Some(s) = s {
                line(format!("   {what} = '{}'", s.command));
            }
        }
    }
    if !config.track_processes.is_empty() {
        line("------< VRRP Track processes >------".into());
        for p in &config.track_processes {
            track_process(config, vrrp, p, &mut line);
        }
    }
    o
}

/// An instance's or a sync group's `track_process` entry (keepalived's `dump_track_process`).
fn tracked_process(config: &Config, t: &crate::config::Tracked) -> String {
    let p = config.track_processes.iter().find(|p| p.name == t.name);
    let weight = t.weight.or(p.map(|p| p.weight)).unwrap_or(0);
    let reverse = t.reverse.or(p.map(|p| p.reverse)).unwrap_or(false);
    format!("     {}, weight {weight}{}", t.name, if reverse { " reverse" } else { "" })
}

/// One `vrrp_track_process` (keepalived's `dump_vprocess`, without its timer lines).
fn track_process(config: &Config, vrrp: &[VrrpStatus], p: &crate::config::TrackProcess, line: &mut impl FnMut(String)) {
    use crate::config::ParamMatch;
    line(format!(" VRRP Track process = {}", p.name));
    line(format!("   Process = {}", p.process.as_deref().unwrap_or("")));
    if !p.params.is_empty() {
        line(format!("   Parameters = {}", p.params.join(" ")));
    }
    match p.param_match {
        ParamMatch::None => {}
        ParamMatch::Exact => line("   Param match".into()),
        ParamMatch::Partial => line("   Param match = partial".into()),
        ParamMatch::Initial => line("   Param match = initial".into()),
    }
    line(format!("   Min processes = {}", p.quorum));
    if p.quorum_max < u32::MAX {
        line(format!("   Max processes = {}", p.quorum_max));
    }
    let seen = vrrp.iter().flat_map(|s| &s.processes).find(|s| s.name == p.name);
    line(format!("   Current processes = {}", seen.map_or(0, |s| s.current)));
    line(format!("   Have quorum = {}", if seen.is_some_and(|s| s.quorum) { "true" } else { "false" }));
    line(format!("   Weight = {}{}", p.weight, if p.reverse { " reverse" } else { "" }));
    line(format!("   Terminate delay = {:.6}s", p.terminate_delay_us as f64 / 1e6));
    line(format!("   Fork delay = {:.6}s", p.fork_delay_us as f64 / 1e6));
    line(format!("   Full command = {}", if p.full_command { "true" } else { "false" }));
    // The instances tracking it, directly or through their sync group.
    let defaults = tracking::process_defaults(&config.track_processes);
    let mut tracking = Vec::new();
    for v in &config.vrrp_instances {
        let group: Vec<_> = config
            .vrrp_sync_groups
            .iter()
            .filter(|g| g.group.contains(&v.name))
            .flat_map(|g| g.track_process.iter().cloned())
            .collect();
        let entries = tracking::process_entries(v, &group, &defaults);
        if let Some((_, weight, reverse)) = entries.iter().find(|(n, _, _)| *n == p.name) {
            tracking.push(format!("     {}, weight {weight}{}", v.name, if *reverse { " reverse" } else { "" }));
        }
    }
    if !tracking.is_empty() {
        line("   Tracking instances :".into());
        for t in tracking {
            line(t);
        }
    }
}

/// `keepalived.stats`: per instance, keepalived's counters in its layout.
pub fn stats(config: &Config, vrrp: &[VrrpStatus]) -> String {
    let mut o = String::new();
    for i in instances(config, vrrp) {
        let mut line = |s: String| {
            o.push_str(&s);
            o.push('\n');
        };
        line(format!("VRRP Instance: {}", i.cfg.name));
        line("  Advertisements:".into());
        line(format!("    Received: {}", i.counter(|s| s.adverts_received)));
        line(format!("    Sent: {}", i.counter(|s| s.adverts_sent)));
        line(format!("  Became master: {}", i.counter(|s| s.became_master)));
        line(format!("  Released master: {}", i.counter(|s| s.released_master)));
        line("  Packet Errors:".into());
        line(format!("    Length: {}", i.rejected(&["Length"])));
        line(format!("    TTL: {}", i.rejected(&["Ttl"])));
        line(format!("    Invalid Type: {}", i.rejected(&["Type"])));
        line(format!("    Advertisement Interval: {}", i.rejected(&["Interval"])));
        line(format!("    Address List: {}", i.rejected(&["AddressList"])));
        line("  Authentication Errors:".into());
        line("    Invalid Type: 0".into());
        line(format!("    Type Mismatch: {}", i.rejected(&["AuthType"])));
        line(format!("    Failure: {}", i.rejected(&["Password"])));
        line("  Priority Zero:".into());
        line(format!("    Received: {}", i.counter(|s| s.pri_zero_received)));
        line(format!("    Sent: {}", i.counter(|s| s.pri_zero_sent)));
    }
    o
}

/// A JSON number as keepalived's writer prints it: whole values without a fraction.
fn num(v: f64) -> Value {
    if v.fract() == 0.0 && (0.0..1e15).contains(&v) { json!(v as u64) } else { json!(v) }
}

/// `keepalived.json`: an array of `{"data": {...}, "stats": {...}}`, one per instance, with
/// keepalived's keys (fields it prints only when set are left out the same way). `None`
/// when there is no instance: keepalived writes no file then.
pub fn json(config: &Config, vrrp: &[VrrpStatus]) -> Option<Value> {
    let insts = instances(config, vrrp);
    if insts.is_empty() {
        return None;
    }
    let g = &config.global;
    let list = insts
        .iter()
        .map(|i| {
            let c = i.cfg;
            let state = i.state();
            let version = i.version();
            let adver_int = f64::from(c.advert_int_cs) / 100.0;
            let master_priority = match (state, i.st.and_then(|s| s.master)) {
                (State::Backup, Some((_, p))) => p,
                _ => 0,
            };
            let mut d = Map::new();
            let mut put = |k: &str, v: Value| {
                d.insert(k.to_string(), v);
            };
            put("iname", json!(c.name));
            put("dont_track_primary", json!(u8::from(c.dont_track_primary)));
            put("skip_check_adv_addr", json!(u8::from(c.skips_adv_addr_check(g))));
            put("strict_mode", json!(u8::from(c.strict(g))));
            // keepalived: with use_vmac, the instance's interface is its VMAC.
            put("vmac_ifname", json!(if c.use_vmac.is_some() { i.iface() } else { "" }));
            put("ifp_ifname", json!(i.iface()));
            put("master_priority", json!(master_priority));
            put("last_transition", num(i.st.map_or(0.0, |s| s.last_transition)));
            put("garp_delay", json!(i.garp_delay()));
            put("garp_refresh", json!(i.garp_refresh()));
            put("garp_rep", json!(i.garp_repeat()));
            put("garp_refresh_rep", json!(g.vrrp_garp_master_refresh_repeat));
            put("garp_lower_prio_delay", json!(c.garp_lower_prio_delay(g)));
            put("garp_lower_prio_rep", json!(c.garp_lower_prio_repeat(g)));
            put("lower_prio_no_advert", json!(u8::from(c.lower_prio_no_advert(g))));
            put("higher_prio_send_advert", json!(u8::from(c.higher_prio_send_advert(g))));
            put("vrid", json!(c.virtual_router_id.unwrap_or(0)));
            put("base_priority", json!(c.priority));
            put("effective_priority", json!(i.effective_priority()));
            put("vipset", json!(state == State::Master));
            put("promote_secondaries", json!(c.promote_secondaries));
            put("adver_int", num(adver_int));
            put("master_adver_int", num(adver_int));
            put("accept", json!(u8::from(i.accept())));
            put("nopreempt", json!(c.nopreempt));
            put("preempt_delay", json!(c.preempt_delay));
            put("state", json!(state_number(state)));
            put("wantstate", json!(state_number(state)));
            put("version", json!(version));
            put("smtp_alert", json!(c.notify.mails(g.vrrp_mail())));
            put("notify_deleted", json!(c.notify.notify_deleted));
            for (k, s) in [
                ("script_backup", &c.notify.backup),
                ("script_master", &c.notify.master),
                ("script_fault", &c.notify.fault),
                ("script_stop", &c.notify.stop),
                ("script", &c.notify.any),
                ("script_master_rx_lower_pri", &c.notify.master_rx_lower_pri),
            ] {
                if let Some(s) = s {
                    put(k, json!(s.command));
                }
            }
            let addrs = |l: &[IpAddress]| Value::Array(l.iter().map(|a| json!(i.address(a))).collect());
            if !c.virtual_ipaddress.is_empty() {
                put("vips", addrs(&c.virtual_ipaddress));
            }
            if !c.virtual_ipaddress_excluded.is_empty() {
                put("evips", addrs(&c.virtual_ipaddress_excluded));
            }
            if !c.virtual_routes.is_empty() {
                put("vroutes", Value::Array(c.virtual_routes.iter().map(|r| json!(route(r))).collect()));
            }
            if !c.track_interface.is_empty() {
                put("track_ifp", Value::Array(c.track_interface.iter().map(|t| json!(t.name)).collect()));
            }
            if !c.track_script.is_empty() {
                let cmds = c.track_script.iter().map(|t| json!(i.script_command(&t.name))).collect();
                put("track_script", Value::Array(cmds));
            }
            let auth = c.authentication.as_ref().filter(|_| version == 2);
            put(
                "auth_type",
                json!(match auth.map(|a| a.auth_type) {
                    None => 0,
                    Some(AuthType::Pass) => 1,
                    Some(AuthType::Ah) => 2,
                }),
            );
            if let Some(a) = auth {
                put("auth_data", json!(a.auth_pass));
            }
            let stats = json!({
                "advert_rcvd": i.counter(|s| s.adverts_received),
                "advert_sent": i.counter(|s| s.adverts_sent),
                "become_master": i.counter(|s| s.became_master),
                "release_master": i.counter(|s| s.released_master),
                "packet_len_err": i.rejected(&["Length"]),
                "advert_interval_err": i.rejected(&["Interval"]),
                "ip_ttl_err": i.rejected(&["Ttl"]),
                "invalid_type_rcvd": i.rejected(&["Type"]),
                "addr_list_err": i.rejected(&["AddressList"]),
                "invalid_authtype": 0,
                "authtype_mismatch": i.rejected(&["AuthType"]),
                "auth_failure": i.rejected(&["Password"]),
                "pri_zero_rcvd": i.counter(|s| s.pri_zero_received),
                "pri_zero_sent": i.counter(|s| s.pri_zero_sent),
            });
            json!({ "data": Value::Object(d), "stats": stats })
        })
        .collect();
    Some(Value::Array(list))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(a: &str) -> IpAddr {
        a.parse().unwrap()
    }

    fn config() -> Config {
        let text = "vrrp_instance VI_1 {
    state BACKUP
    interface l0
    virtual_router_id 51
    priority 150
    advert_int 1
    authentication {
        auth_type PASS
        auth_pass s3cret
    }
    virtual_ipaddress {
        192.0.2.100/24
    }
}
";
        let l = crate::config::parse_str("t.conf", text);
        assert!(!l.has_errors(), "{}", l.render());
        l.config
    }

    fn status(state: State) -> VrrpStatus {
        VrrpStatus {
            instance: "VI_1".into(),
            vrid: 51,
            state,
            priority: 150,
            adverts_sent: 7,
            adverts_received: 3,
            became_master: 1,
            released_master: 1,
            rejected: [("Ttl".to_string(), 2), ("Password".to_string(), 4)].into(),
            last_transition: 1_796_207_082.908_872,
            master: Some((addr("192.0.2.12"), 200)),
            interface: "l0".into(),
            src_ip: Some(addr("192.0.2.11")),
            version: 2,
            ..Default::default()
        }
    }

    #[test]
    /// The lines keepalived 2.2.7 wrote for this config (its SIGUSR1 dump, read by hand in a
    /// namespace; its fork/terminate timer lines are internals left out here).
    fn data_lists_tracked_processes_as_keepalived() {
        let text = "vrrp_track_process web {\n process \"/usr/bin/python3\" -m http.server\n \
                    param_match initial\n weight -20 reverse\n quorum 2\n quorum_max 4\n fork_delay 0.5\n \
                    terminate_delay 2\n}\nvrrp_track_process ssh {\n process sshd\n}\n\
                    vrrp_instance VI_1 {\n interface v0\n virtual_router_id 51\n priority 100\n \
                    track_process {\n  web\n  ssh weight 5 reverse\n }\n}\n\
                    vrrp_instance VI_2 {\n interface v0\n virtual_router_id 52\n priority 100\n}\n\
                    vrrp_sync_group G {\n group {\n  VI_1\n  VI_2\n }\n track_process {\n  ssh weight 0\n }\n}\n";
        let l = crate::config::parse_str("t.conf", text);
        assert!(!l.has_errors(), "{}", l.render());
        let mut st = status(State::Backup);
        st.processes = vec![crate::vrrp::ProcessStatus { name: "ssh".into(), current: 3, quorum: true }];
        let d = data(&l.config, &[st], "host");
        for block in [
            "   Tracked processes :\n     web, weight -20 reverse\n     ssh, weight 5 reverse\n",
            "   Tracked process :\n     ssh, weight 0\n",
            "------< VRRP Track processes >------\n VRRP Track process = web\n   Process = /usr/bin/python3\n   \
             Parameters = -m http.server\n   Param match = initial\n   Min processes = 2\n   Max processes = 4\n   \
             Current processes = 0\n   Have quorum = false\n   Weight = -20 reverse\n   \
             Terminate delay = 2.000000s\n   Fork delay = 0.500000s\n   Full command = true\n   \
             Tracking instances :\n     VI_1, weight -20 reverse\n",
            " VRRP Track process = ssh\n   Process = sshd\n   Min processes = 1\n   Current processes = 3\n   \
             Have quorum = true\n   Weight = 0\n   Terminate delay = 0.000000s\n   Fork delay = 0.000000s\n   \
             Full command = false\n   Tracking instances :\n     VI_1, weight 0 reverse\n     VI_2, weight 0\n",
        ] {
            assert!(d.contains(block), "missing:\n{block}\nin:\n{d}");
        }
    }

    #[test]
    fn data_has_keepalived_lines_for_state_and_addresses() {
        let c = config();
        let master = data(&c, &[status(State::Master)], "host");
        assert!(master.contains("\n VRRP Instance = VI_1\n"), "{master}");
        assert!(master.contains("\n   State = MASTER\n"), "{master}");
        assert!(master.contains("\n   Virtual IP (1):\n     192.0.2.100/24 dev l0 scope global set\n"), "{master}");
        assert!(!master.contains("Master router"), "{master}");
        let backup = data(&c, &[status(State::Backup)], "host");
        assert!(backup.contains("\n   State = BACKUP\n   Master router = 192.0.2.12\n   Master priority = 200\n"));
        assert!(backup.contains("     192.0.2.100/24 dev l0 scope global\n"), "{backup}");
        assert!(backup.contains("   Last transition = 1796207082.908872 ("), "{backup}");
    }

    /// The lines keepalived 2.2.7 wrote for this config as master (its SIGUSR1 dump, read by
    /// hand in a namespace with v0 and v1): a VIP on the VMAC is `dev VMAC@BASE`, one of the
    /// other family or another interface stays where it is, and the instance's interface line
    /// names the VMAC's base.
    #[test]
    fn data_names_a_vmac_with_its_base_as_keepalived() {
        let text = "vrrp_instance VI_1 {\n    interface v0\n    use_vmac\n    virtual_router_id 51\n    \
                    priority 255\n    advert_int 1\n    virtual_ipaddress {\n        192.0.2.100/24\n        \
                    192.0.2.101/24 dev v0\n        198.51.100.7 dev v1\n    }\n    virtual_ipaddress_excluded {\n        \
                    2001:db8:1::100/64\n        192.0.2.102/24\n    }\n}\n";
        let l = crate::config::parse_str("t.conf", text);
        assert!(!l.has_errors(), "{}", l.render());
        let st = VrrpStatus { interface: "vrrp.51".into(), ..status(State::Master) };
        let d = data(&l.config, &[st], "host");
        for block in [
            "   Interface = vrrp.51, vmac on v0\n",
            "   Virtual IP (3):\n     192.0.2.100/24 dev vrrp.51@v0 scope global set\n     \
             192.0.2.101/24 dev vrrp.51@v0 scope global set\n     198.51.100.7 dev v1 scope global set\n   \
             Virtual IP Excluded :\n     2001:db8:1::100/64 dev v0 scope global preferred_lft forever set\n     \
             192.0.2.102/24 dev vrrp.51@v0 scope global set\n",
        ] {
            assert!(d.contains(block), "missing:\n{block}\nin:\n{d}");
        }
    }

    /// A static route's `track_group` ends its line, as keepalived's `format_iproute` ends it.
    #[test]
    fn a_static_routes_track_group_ends_its_line() {
        let text = "track_group G {\n group {\n  VI_1\n }\n}\nstatic_routes {\n \
                    198.51.100.0/24 via 192.0.2.1 dev v0 track_group G\n}\n\
                    vrrp_instance VI_1 {\n interface v0\n virtual_router_id 51\n priority 100\n}\n";
        let l = crate::config::parse_str("t.conf", text);
        assert!(!l.has_errors(), "{}", l.render());
        let d = data(&l.config, &[status(State::Backup)], "host");
        let line = d.lines().find(|l| l.contains("198.51.100.0/24")).unwrap_or_default();
        // keepalived 2.2.7's line for it (SIGUSR1, read by hand in a namespace).
        assert_eq!(line.trim(), "prepend 198.51.100.0/24 via inet 192.0.2.1 dev v0 proto 18 track_group G", "{d}");
    }

    #[test]
    fn stats_map_our_drops_to_keepalived_counters() {
        let s = stats(&config(), &[status(State::Master)]);
        assert!(s.starts_with("VRRP Instance: VI_1\n  Advertisements:\n    Received: 3\n    Sent: 7\n"), "{s}");
        assert!(s.contains("    TTL: 2\n"), "{s}");
        assert!(s.contains("  Authentication Errors:\n    Invalid Type: 0\n    Type Mismatch: 0\n    Failure: 4\n"));
    }

    #[test]
    fn json_states_are_keepalived_numbers_and_whole_numbers_have_no_fraction() {
        let j = json(&config(), &[status(State::Backup)]).unwrap();
        let d = &j[0]["data"];
        assert_eq!(d["state"], 1);
        assert_eq!(d["master_priority"], 200);
        assert_eq!(d["adver_int"].to_string(), "1");
        assert_eq!(j[0]["stats"]["auth_failure"], 4);
        assert_eq!(json(&config(), &[status(State::Master)]).unwrap()[0]["data"]["state"], 2);
        assert!(json(&Config::default(), &[]).is_none());
    }

    #[test]
    fn ctime_has_keepalived_layout() {
        let s = ctime_us(1_796_207_082.908_872);
        // `Www Mmm dd hh:mm:ss.uuuuuu yyyy`, whatever the local time zone.
        assert_eq!(s.len(), "Wed Dec  2 10:24:42.908872 2026".len(), "{s}");
        assert!(s.contains(".908872 "), "{s}");
    }
}
