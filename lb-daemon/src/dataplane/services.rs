//! The desired data-plane state, derived from the config: one `DesiredService` per
//! `virtual_server`, with every (VIP, port, protocol) key it answers to (groups expand).

use std::net::{IpAddr, SocketAddr};

use lb_common::{
    ServiceKey,
    consts::{FAMILY_V4, MAX_SERVICES},
};

use crate::check::health::Health;
use crate::config::{Config, ForwardMethod, GroupMember, ServiceAddr, VirtualServer};

/// Most keys one `virtual_server_group` may expand to.
const MAX_GROUP_KEYS: usize = MAX_SERVICES as usize;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredReal {
    pub addr: SocketAddr,
    pub weight: u32,
    /// `lvs_method` when it differs from the service's lb_kind (IPVS only).
    pub fwd: Option<ForwardMethod>,
    /// `uthreshold` / `lthreshold` (IPVS only); 0 = none.
    pub u_thresh: u32,
    pub l_thresh: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredService {
    /// How the config names it, for logs: `203.0.113.10:80/tcp` or `group web/tcp`.
    pub name: String,
    pub keys: Vec<ServiceKey>,
    /// Firewall marks (IPVS only: XDP runs before netfilter marks packets).
    pub marks: Vec<u32>,
    /// Addresses (and marks) of this virtual server that an earlier one already serves
    /// (IPVS only): keepalived's add of the service fails ("Service already exists") and this
    /// one's real servers join the earlier one's service, which keeps its scheduler and
    /// options.
    pub joined: Vec<ServiceKey>,
    pub joined_marks: Vec<u32>,
    /// The marks' family (`VirtualServer::mark_family_v6`): settled by the config, not by
    /// which real servers are up.
    pub marks_v6: bool,
    /// One-packet scheduling (IPVS only).
    pub ops: bool,
    /// IPVS's scheduler flags (`config::SCHED_FLAG_*`): sh/mh port hashing and fallback.
    pub sched_flags: u32,
    /// The Maglev seed (`mh_seed`; by default a hash of the service's name, its address, port
    /// and protocol): the mh table depends only on this and the real servers, so every node
    /// with the same config builds the same one.
    pub mh_seed: u64,
    pub scheduler: crate::config::Scheduler,
    pub forward: ForwardMethod,
    /// Seconds, 0 = none.
    pub persist_timeout: u32,
    /// `persistence_granularity` as a prefix length; None groups by the whole address.
    pub persist_prefix: Option<u8>,
    /// `persistence_engine` (IPVS only).
    pub persistence_engine: Option<String>,
    pub reals: Vec<DesiredReal>,
    pub sorry: Option<SocketAddr>,
    /// The sorry server's forwarding method where `sorry_server_lvs_method` makes it differ
    /// from `forward` (IPVS only).
    pub sorry_fwd: Option<ForwardMethod>,
    /// `sorry_server_inhibit`: above quorum the sorry server stays in IPVS at weight 0
    /// instead of being removed (keepalived's "Disabling" / "Enabling").
    pub sorry_inhibit: bool,
    pub quorum: u32,
    /// keepalived's quorum dampener: down below quorum − hysteresis, up again at
    /// quorum + hysteresis.
    pub hysteresis: u32,
    /// Whether the live weight meets the quorum (kept by `Health`, which remembers the
    /// hysteresis state); when false only the sorry server answers.
    pub quorum_up: bool,
}

pub fn key_of(ip: IpAddr, port: u16, proto: u8) -> ServiceKey {
    match ip {
        IpAddr::V4(ip) => ServiceKey::v4(ip.octets(), port, proto),
        IpAddr::V6(ip) => ServiceKey::v6(ip.octets(), port, proto),
    }
}

/// Every (address, port, protocol) key `vs` answers to and every firewall mark it matches.
fn keys(cfg: &Config, vs: &VirtualServer) -> Result<(Vec<ServiceKey>, Vec<u32>), String> {
    let proto = vs.protocol.ip_proto();
    match &vs.addr {
        ServiceAddr::Inet(sa) => Ok((vec![key_of(sa.ip(), sa.port(), proto)], Vec::new())),
        ServiceAddr::Fwmark(m) => Ok((Vec::new(), vec![*m])),
        ServiceAddr::Group(g) => {
            let group =
                cfg.virtual_server_groups.iter().find(|x| &x.name == g).ok_or_else(|| format!("no group {g}"))?;
            let (mut out, mut marks) = (Vec::new(), Vec::new());
            for m in &group.members {
                match m {
                    GroupMember::Fwmark(f) => marks.push(*f),
                    GroupMember::Range { first, last, port } => {
                        for ip in range(*first, *last) {
                            out.push(key_of(ip, *port, proto));
                            if out.len() > MAX_GROUP_KEYS {
                                return Err(format!(
                                    "virtual_server group {g} expands to more than {MAX_GROUP_KEYS} keys"
                                ));
                            }
                        }
                    }
                }
            }
            Ok((out, marks))
        }
    }
}

/// Why the BPF data plane cannot run `vs` (the IPVS backend can), if it cannot.
fn bpf_refuses(vs: &VirtualServer, name: &str, keys: &[ServiceKey], marks: &[u32]) -> Option<String> {
    if keys.iter().any(|k| k.port == 0) {
        // IPVS matches every port there; `lb_services` is looked up by the packet's port.
        return Some(format!("{name}: a service on port 0 (every port) needs the IPVS backend"));
    }
    if let Some(m) = marks.first() {
        // XDP runs before netfilter: it never sees a firewall mark.
        return Some(format!(
            "{name}: firewall mark {m} is set by netfilter, after XDP has run; the BPF data plane cannot \
             match it (use the IPVS backend for fwmark services)"
        ));
    }
    if !vs.scheduler.in_bpf() {
        return Some(format!("{name}: scheduler {} needs the IPVS backend", vs.scheduler.name()));
    }
    if vs.protocol == crate::config::Protocol::Sctp {
        return Some(format!("{name}: SCTP needs the IPVS backend (XDP does not update SCTP's CRC32c checksum)"));
    }
    if let Some(r) = vs.real_servers.iter().find(|r| r.u_threshold != 0 || r.l_threshold != 0) {
        return Some(format!("{name}: real server {}: connection thresholds need the IPVS backend", r.addr));
    }
    if let Some(r) = vs.real_servers.iter().find(|r| r.forward(vs) != vs.forward) {
        return Some(format!(
            "{name}: real server {}: a forwarding method other than the service's lb_kind needs the IPVS backend",
            r.addr
        ));
    }
    if let Some(pe) = &vs.persistence_engine {
        return Some(format!("{name}: persistence engine {pe} needs the IPVS backend"));
    }
    if vs.sorry_server.is_some() && vs.sorry_forward() != vs.forward {
        return Some(format!(
            "{name}: a sorry server forwarded other than by the service's lb_kind needs the IPVS backend"
        ));
    }
    if vs.sorry_server.is_some() && vs.sorry_server_inhibit {
        return Some(format!(
            "{name}: sorry_server_inhibit (the sorry server's connections kept above quorum) needs the IPVS backend"
        ));
    }
    None
}

/// The first virtual server only the IPVS backend can run, and why (`--backend auto` then
/// picks IPVS).
pub fn needs_ipvs(cfg: &Config) -> Option<String> {
    if cfg.global.lvs_timeouts.is_some() {
        return Some("lvs_timeouts sets IPVS's timeouts (the XDP data plane's are fixed)".into());
    }
    if let Some(why) = shared_addresses(cfg).into_iter().next() {
        return Some(why);
    }
    cfg.virtual_servers.iter().filter(|vs| !vs.ignored()).find_map(|vs| {
        let name = vs.name();
        let (keys, marks) = keys(cfg, vs).ok()?;
        bpf_refuses(vs, &name, &keys, &marks).or_else(|| vs.ops.then(|| format!("{name}: ops needs the IPVS backend")))
    })
}

/// For each virtual server with an address (or mark) an earlier one has: keepalived joins its
/// real servers to the earlier one's IPVS service, which the XDP data plane cannot do (one
/// service, one scheduler and forwarding method). A message per such virtual server.
pub fn shared_addresses(cfg: &Config) -> Vec<String> {
    let mut seen_keys: Vec<ServiceKey> = Vec::new();
    let mut seen_marks: Vec<(u32, bool)> = Vec::new();
    let mut out = Vec::new();
    for vs in cfg.virtual_servers.iter().filter(|vs| !vs.ignored()) {
        let Ok((keys, marks)) = keys(cfg, vs) else { continue };
        let shared: Vec<String> = keys
            .iter()
            .filter(|k| seen_keys.contains(k))
            .map(describe)
            .chain(
                marks
                    .iter()
                    .filter(|m| seen_marks.contains(&(**m, vs.mark_family_v6())))
                    .map(|m| format!("fwmark {m}")),
            )
            .collect();
        if !shared.is_empty() {
            out.push(format!(
                "{}: {} also in an earlier virtual_server: keepalived adds this one's real servers to that one's \
                 IPVS service",
                vs.name(),
                shared.join(", ")
            ));
        }
        seen_keys.extend(keys);
        seen_marks.extend(marks.into_iter().map(|m| (m, vs.mark_family_v6())));
    }
    out
}

/// Addresses `first..=last` (they differ in the last octet / IPv6 group only).
fn range(first: IpAddr, last: IpAddr) -> Vec<IpAddr> {
    match (first, last) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (a.octets()[3]..=b.octets()[3])
            .map(|o| {
                let mut x = a.octets();
                x[3] = o;
                IpAddr::from(x)
            })
            .collect(),
        (IpAddr::V6(a), IpAddr::V6(b)) => (a.segments()[7]..=b.segments()[7])
            .map(|s| {
                let mut x = a.segments();
                x[7] = s;
                IpAddr::from(x)
            })
            .collect(),
        _ => vec![first],
    }
}

/// The services the backend should run given the checkers' verdicts, and a message per
/// virtual server it skips (the BPF data plane cannot run fwmark services or IPVS-only
/// schedulers). A real server that is down leaves its service, or stays
/// with weight 0 under `inhibit_on_failure`; `misc_dynamic` weights replace configured ones.
pub fn desired(cfg: &Config, health: &Health, for_ipvs: bool) -> (Vec<DesiredService>, Vec<String>) {
    let mut out: Vec<DesiredService> = Vec::new();
    let mut skipped = Vec::new();
    for vs in cfg.virtual_servers.iter().filter(|vs| !vs.ignored()) {
        let (keys, marks) = match keys(cfg, vs) {
            Ok(k) => k,
            Err(e) => {
                skipped.push(e);
                continue;
            }
        };
        let name = vs.name();
        if !for_ipvs && let Some(why) = bpf_refuses(vs, &name, &keys, &marks) {
            skipped.push(why);
            continue;
        }
        // keepalived adds each address of a virtual server on its own: one another virtual
        // server already has stays that one's ("Service already exists"), and this one's real
        // servers are added to it too (IPVS); the rest are added. The XDP data plane cannot
        // mix two virtual servers in one service (config validation refuses it for bpf).
        let taken = |k: &ServiceKey| out.iter().any(|d| d.keys.contains(k));
        let (keys, joined): (Vec<_>, Vec<_>) = keys.into_iter().partition(|k| !taken(k));
        // IPVS keys a mark by its family too.
        let v6 = vs.mark_family_v6();
        let (marks, joined_marks): (Vec<_>, Vec<_>) =
            marks.into_iter().partition(|m| !out.iter().any(|d| d.marks_v6 == v6 && d.marks.contains(m)));
        if !for_ipvs && (!joined.is_empty() || !joined_marks.is_empty()) {
            let dups: Vec<String> =
                joined.iter().map(describe).chain(joined_marks.iter().map(|m| format!("fwmark {m}"))).collect();
            skipped.push(format!(
                "{name}: {} already belong to an earlier virtual_server; joining its real servers to them needs \
                 the IPVS backend",
                dups.join(", ")
            ));
        }
        let (joined, joined_marks) = if for_ipvs { (joined, joined_marks) } else { (Vec::new(), Vec::new()) };
        if keys.is_empty() && marks.is_empty() && joined.is_empty() && joined_marks.is_empty() {
            continue;
        }
        out.push(DesiredService {
            keys,
            marks,
            joined,
            joined_marks,
            ops: vs.ops,
            sched_flags: vs.sched_flags,
            mh_seed: vs.mh_seed.or(cfg.global.mh_seed).unwrap_or_else(|| super::tables::default_seed(&name)),
            scheduler: vs.scheduler,
            forward: vs.forward,
            persist_timeout: vs.persistence_timeout.unwrap_or(0),
            persist_prefix: vs.persistence_granularity,
            persistence_engine: vs.persistence_engine.clone(),
            reals: vs
                .real_servers
                .iter()
                .filter_map(|r| {
                    let h = health.real(&name, r.addr);
                    let weight = match (h.up, r.inhibit(vs)) {
                        (true, _) => h.effective_weight(r.weight),
                        (false, true) => 0,
                        (false, false) => return None,
                    };
                    let fwd = Some(r.forward(vs)).filter(|f| *f != vs.forward);
                    Some(DesiredReal { addr: r.addr, weight, fwd, u_thresh: r.u_threshold, l_thresh: r.l_threshold })
                })
                .collect(),
            sorry: vs.sorry_server,
            sorry_fwd: Some(vs.sorry_forward()).filter(|f| *f != vs.forward),
            marks_v6: vs.mark_family_v6(),
            sorry_inhibit: vs.sorry_server_inhibit,
            quorum: vs.quorum,
            hysteresis: vs.hysteresis,
            quorum_up: health.quorum_up(&name),
            name,
        });
    }
    (out, skipped)
}

pub(crate) fn proto_name(p: u8) -> String {
    match p {
        6 => "tcp".into(),
        17 => "udp".into(),
        132 => "sctp".into(),
        p => p.to_string(),
    }
}

/// Human form of a key, as in the config: `192.0.2.10:80/tcp`.
pub fn describe(k: &ServiceKey) -> String {
    let ip = key_ip(k);
    match ip {
        IpAddr::V4(_) => format!("{ip}:{}/{}", k.port, proto_name(k.proto)),
        IpAddr::V6(_) => format!("[{ip}]:{}/{}", k.port, proto_name(k.proto)),
    }
}

pub fn key_ip(k: &ServiceKey) -> IpAddr {
    ip_of(&k.addr, k.family)
}

/// An address read back from a map (IPv4 in the first four bytes); `addr_bytes` reversed.
pub fn ip_of(addr: &[u8; 16], family: u8) -> IpAddr {
    if family == FAMILY_V4 { IpAddr::from([addr[0], addr[1], addr[2], addr[3]]) } else { IpAddr::from(*addr) }
}

/// An address as stored in maps (IPv4 in the first four bytes).
pub fn addr_bytes(ip: IpAddr) -> ([u8; 16], u8) {
    match ip {
        IpAddr::V4(a) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&a.octets());
            (b, FAMILY_V4)
        }
        IpAddr::V6(a) => (a.octets(), lb_common::consts::FAMILY_V6),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::parse_str;

    /// A real server under `alpha` (its own or its virtual server's) is out of the data
    /// plane until its first success; `inhibit_on_failure` at the virtual server keeps a down
    /// real server at weight 0 unless the real server says `inhibit_on_failure false`.
    #[test]
    fn alpha_and_inhibit_on_failure_follow_keepalived_s_inheritance() {
        use crate::check::health::{CheckState, Report};
        let l = parse_str(
            "t.conf",
            "virtual_server 203.0.113.10 80 {\n protocol TCP\n inhibit_on_failure\n \
             real_server 198.51.100.11 80 {\n  alpha\n  TCP_CHECK {\n  }\n }\n \
             real_server 198.51.100.12 80 {\n  TCP_CHECK {\n  }\n }\n \
             real_server 198.51.100.13 80 {\n  inhibit_on_failure false\n  TCP_CHECK {\n  }\n }\n}\n",
        );
        assert!(!l.has_errors(), "{}", l.render());
        let runner = crate::script::Runner::new(&l.config.global).unwrap();
        let mut health = Health::default();
        let (_, started) =
            crate::check::diff(&mut Default::default(), crate::check::specs(&l.config, &runner), &mut health);
        assert_eq!(started.len(), 3);
        let reals = |health: &Health| -> Vec<(String, u32)> {
            let (d, _) = desired(&l.config, health, false);
            d[0].reals.iter().map(|r| (r.addr.ip().to_string(), r.weight)).collect()
        };
        // Never checked: .11 (alpha) is down, and inhibit_on_failure (from the virtual
        // server) keeps it at weight 0; the others are up.
        assert_eq!(
            reals(&health),
            [("198.51.100.11".into(), 0), ("198.51.100.12".into(), 1), ("198.51.100.13".into(), 1)]
        );
        let report = |real: &str, up: bool| Report {
            id: started.iter().find(|(id, _)| id.real.ip().to_string() == real).unwrap().0.clone(),
            state: CheckState { up, weight: None, offset: 0, reason: String::new() },
        };
        health.record(report("198.51.100.11", true));
        health.record(report("198.51.100.12", false));
        health.record(report("198.51.100.13", false));
        // .12 inherits inhibit_on_failure (weight 0); .13 turned it off (removed).
        assert_eq!(reals(&health), [("198.51.100.11".into(), 1), ("198.51.100.12".into(), 0)]);
    }

    /// `--backend auto` gives IPVS what only IPVS does: thresholds, a real server's own
    /// forwarding method, lvs_timeouts; lvs_method equal to lb_kind stays on XDP.
    #[test]
    fn auto_picks_ipvs_for_thresholds_methods_and_timeouts() {
        let vs = |rs: &str| {
            format!(
                "virtual_server 203.0.113.10 80 {{\n protocol TCP\n lb_kind DR\n real_server 198.51.100.11 80 {{\n{rs}\n }}\n}}\n"
            )
        };
        let why = |src: &str| needs_ipvs(&parse_str("t.conf", src).config);
        assert_eq!(why(&vs("  lvs_method DR")), None);
        assert!(why(&vs("  lvs_method NAT")).is_some_and(|w| w.contains("forwarding method")));
        assert!(why(&vs("  lthreshold 5")).is_some_and(|w| w.contains("thresholds")));
        let t = format!("global_defs {{\n lvs_timeouts udp 30\n}}\n{}", vs(""));
        assert!(why(&t).is_some_and(|w| w.contains("lvs_timeouts")));
        // And the XDP plan skips such a service rather than forwarding it the wrong way.
        let (d, skipped) = desired(&parse_str("t.conf", &vs("  uthreshold 5")).config, &Health::default(), false);
        assert!(d.is_empty() && skipped[0].contains("thresholds"), "{skipped:?}");
    }

    /// keepalived's defaults reach the plan: a service without `protocol` takes UDP; one on
    /// port 0 (every port, made persistent for 360 s) is left to IPVS, which matches every
    /// port there, while `lb_services` is looked up by the packet's port.
    #[test]
    fn no_protocol_means_udp_and_port_0_is_left_to_ipvs() {
        let l = parse_str(
            "t.conf",
            "virtual_server 203.0.113.10 53 {\n real_server 198.51.100.11 53 {\n }\n}\n\
             virtual_server 203.0.113.11 0 {\n protocol TCP\n lb_kind DR\n real_server 198.51.100.11 0 {\n }\n}\n",
        );
        assert!(!l.has_errors(), "{}", l.render());
        let names = |d: &[DesiredService]| -> Vec<Vec<String>> {
            d.iter().map(|s| s.keys.iter().map(describe).collect()).collect()
        };
        let (d, skipped) = desired(&l.config, &Health::default(), false);
        assert_eq!(names(&d), [["203.0.113.10:53/udp"]]);
        assert!(skipped.len() == 1 && skipped[0].contains("port 0"), "{skipped:?}");
        assert!(needs_ipvs(&l.config).is_some_and(|w| w.contains("203.0.113.11:0/tcp")));
        let (d, skipped) = desired(&l.config, &Health::default(), true);
        assert_eq!(names(&d), [["203.0.113.10:53/udp"], ["203.0.113.11:0/tcp"]]);
        assert!(skipped.is_empty(), "{skipped:?}");
        assert_eq!((d[0].persist_timeout, d[1].persist_timeout), (0, 360));
    }

    /// keepalived's pgr_handler: `persistence_granularity` without a timeout set before it
    /// makes the service persistent for 360 s; one set after it wins.
    #[test]
    fn persistence_granularity_alone_is_persistence_for_360_s() {
        let plan = |body: &str| {
            let l = parse_str(
                "t.conf",
                &format!(
                    "virtual_server 203.0.113.10 80 {{\n protocol TCP\n{body}\n real_server 198.51.100.11 80 {{\n }}\n}}\n"
                ),
            );
            assert!(!l.has_errors(), "{}", l.render());
            let (d, _) = desired(&l.config, &Health::default(), false);
            (d[0].persist_timeout, d[0].persist_prefix)
        };
        assert_eq!(plan(" persistence_granularity 255.255.255.0"), (360, Some(24)));
        assert_eq!(plan(" persistence_timeout 50\n persistence_granularity 24"), (50, Some(24)));
        assert_eq!(plan(" persistence_granularity 24\n persistence_timeout 50"), (50, Some(24)));
        assert_eq!(plan(""), (0, None));
    }

    /// keepalived-guide.conf's case, cut down: 203.0.113.229:80 is a virtual server's and, later,
    /// in group `web`'s, whose real server is forwarded by DR.
    pub(crate) const SHARED_ADDRESS: &str = "virtual_server_group web {\n 203.0.113.229 80\n 203.0.113.230 80\n}\n\
         virtual_server 203.0.113.229 80 {\n protocol TCP\n lb_algo rr\n real_server 198.51.100.11 80 {\n }\n}\n\
         virtual_server group web {\n protocol TCP\n lb_algo wlc\n lb_kind DR\n \
         real_server 198.51.100.13 80 {\n  weight 2\n }\n}\n";

    /// keepalived-guide.conf's case: an address both in a virtual server and in a later
    /// group's virtual server stays the first's service, and the group's real servers join it
    /// there (keepalived's add of the service fails, its add of the destinations does not);
    /// the group's other addresses are its own. The XDP data plane cannot mix the two: it
    /// leaves the address to the first and says so, and `--backend auto` picks IPVS.
    #[test]
    fn an_address_named_twice_stays_with_its_first_virtual_server_and_gains_the_second_s_reals() {
        let l = parse_str("t.conf", SHARED_ADDRESS);
        assert!(!l.has_errors(), "{}", l.render());
        let (d, skipped) = desired(&l.config, &Health::default(), true);
        let key = |a: &str| key_of(a.parse().unwrap(), 80, 6);
        let keys: Vec<_> = d.iter().map(|s| (s.keys.clone(), s.joined.clone(), s.scheduler)).collect();
        assert_eq!(
            keys,
            [
                (vec![key("203.0.113.229")], vec![], crate::config::Scheduler::Rr),
                (vec![key("203.0.113.230")], vec![key("203.0.113.229")], crate::config::Scheduler::Wlc),
            ]
        );
        assert!(skipped.is_empty(), "{skipped:?}");
        // What IPVS then holds: `ipvs::tests::a_joined_address_holds_both_virtual_servers_reals`.
        // The XDP data plane: the first keeps the address, with word of what is left out.
        let (d, skipped) = desired(&l.config, &Health::default(), false);
        assert!(d.iter().all(|s| s.joined.is_empty()));
        assert!(skipped.len() == 1 && skipped[0].contains("203.0.113.229"), "{skipped:?}");
        assert!(needs_ipvs(&l.config).is_some_and(|w| w.contains("group web")), "{:?}", needs_ipvs(&l.config));
    }

    #[test]
    fn groups_expand_and_fwmarks_are_left_to_ipvs() {
        let l = parse_str(
            "t.conf",
            "virtual_server_group g {\n 203.0.113.20-22 80\n 2001:db8:f::1 80\n}\nvirtual_server group g {\n protocol TCP\n lb_algo rr\n \
             real_server 198.51.100.1 80 {\n}\n}\nvirtual_server fwmark 1 {\n real_server 198.51.100.1 {\n}\n}\n\
             virtual_server 203.0.113.30 80 {\n protocol TCP\n lb_algo sed\n real_server 198.51.100.1 80 {\n}\n}\n",
        );
        let (d, skipped) = desired(&l.config, &Health::default(), false);
        assert_eq!(d.len(), 1);
        assert_eq!(
            d[0].keys.iter().map(describe).collect::<Vec<_>>(),
            ["203.0.113.20:80/tcp", "203.0.113.21:80/tcp", "203.0.113.22:80/tcp", "[2001:db8:f::1]:80/tcp"]
        );
        assert_eq!(d[0].name, "group g/tcp");
        assert_eq!(skipped.len(), 2);
        assert!(skipped[0].contains("firewall mark 1"), "{skipped:?}");
        assert!(skipped[1].contains("scheduler sed needs the IPVS backend"), "{skipped:?}");
        assert!(needs_ipvs(&l.config).is_some_and(|w| w.contains("firewall mark 1")));

        // IPVS runs all three.
        let (d, skipped) = desired(&l.config, &Health::default(), true);
        assert_eq!((d.len(), skipped.len()), (3, 0), "{skipped:?}");
        assert_eq!(d[1].marks, [1]);
        assert_eq!(d[2].scheduler.name(), "sed");
    }

    #[test]
    fn sctp_is_left_to_ipvs() {
        let l = parse_str(
            "s.conf",
            "virtual_server 203.0.113.10 3868 {\n protocol SCTP\n real_server 198.51.100.11 3868 {\n}\n}\n",
        );
        let (d, skipped) = desired(&l.config, &Health::default(), false);
        assert!(d.is_empty() && skipped[0].contains("SCTP needs the IPVS backend"), "{skipped:?}");
        assert!(needs_ipvs(&l.config).is_some_and(|w| w.contains("SCTP")));
        assert_eq!(desired(&l.config, &Health::default(), true).0.len(), 1);
    }

    /// Logs and status name a service as the data plane describes its key.
    #[test]
    fn service_names_match_key_descriptions() {
        let l = parse_str(
            "t.conf",
            "virtual_server 203.0.113.10 80 {\n protocol TCP\n}\nvirtual_server 2001:db8::10 53 {\n protocol UDP\n}\n\
             virtual_server 203.0.113.11 5000 {\n protocol SCTP\n}\n",
        );
        for vs in &l.config.virtual_servers {
            let ServiceAddr::Inet(sa) = vs.addr else { panic!("{:?}", vs.addr) };
            assert_eq!(vs.name(), describe(&key_of(sa.ip(), sa.port(), vs.protocol.ip_proto())));
        }
        let names: Vec<String> = l.config.virtual_servers.iter().map(|v| v.name()).collect();
        assert_eq!(names, ["203.0.113.10:80/tcp", "[2001:db8::10]:53/udp", "203.0.113.11:5000/sctp"]);
    }
}
