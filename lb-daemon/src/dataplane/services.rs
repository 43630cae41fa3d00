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
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredService {
    /// How the config names it, for logs: `203.0.113.10:80/tcp` or `group web/tcp`.
    pub name: String,
    pub keys: Vec<ServiceKey>,
    /// Firewall marks (IPVS only: XDP runs before netfilter marks packets).
    pub marks: Vec<u32>,
    /// One-packet scheduling (IPVS only).
    pub ops: bool,
    pub scheduler: crate::config::Scheduler,
    pub forward: ForwardMethod,
    /// Seconds, 0 = none.
    pub persist_timeout: u32,
    /// `persistence_granularity` as a prefix length; None groups by the whole address.
    pub persist_prefix: Option<u8>,
    pub reals: Vec<DesiredReal>,
    pub sorry: Option<SocketAddr>,
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
fn bpf_refuses(vs: &VirtualServer, name: &str, marks: &[u32]) -> Option<String> {
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
    None
}

/// The first virtual server only the IPVS backend can run, and why (`--backend auto` then
/// picks IPVS).
pub fn needs_ipvs(cfg: &Config) -> Option<String> {
    cfg.virtual_servers.iter().find_map(|vs| {
        let name = vs.name();
        let (_, marks) = keys(cfg, vs).ok()?;
        bpf_refuses(vs, &name, &marks).or_else(|| vs.ops.then(|| format!("{name}: ops needs the IPVS backend")))
    })
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
    for vs in &cfg.virtual_servers {
        let (keys, marks) = match keys(cfg, vs) {
            Ok(k) => k,
            Err(e) => {
                skipped.push(e);
                continue;
            }
        };
        let name = vs.name();
        if !for_ipvs && let Some(why) = bpf_refuses(vs, &name, &marks) {
            skipped.push(why);
            continue;
        }
        if out.iter().any(|d| d.keys.iter().any(|k| keys.contains(k)) || d.marks.iter().any(|m| marks.contains(m))) {
            skipped.push(format!("{name}: duplicate virtual_server ignored"));
            continue;
        }
        out.push(DesiredService {
            keys,
            marks,
            ops: vs.ops,
            scheduler: vs.scheduler,
            forward: vs.forward,
            persist_timeout: vs.persistence_timeout.unwrap_or(0),
            persist_prefix: vs.persistence_granularity,
            reals: vs
                .real_servers
                .iter()
                .filter_map(|r| {
                    let h = health.real(&name, r.addr);
                    match (h.up, r.inhibit_on_failure) {
                        (true, _) => Some(DesiredReal { addr: r.addr, weight: h.weight.unwrap_or(r.weight) }),
                        (false, true) => Some(DesiredReal { addr: r.addr, weight: 0 }),
                        (false, false) => None,
                    }
                })
                .collect(),
            sorry: vs.sorry_server,
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
mod tests {
    use super::*;
    use crate::config::parse_str;

    #[test]
    fn groups_expand_and_fwmarks_are_left_to_ipvs() {
        let l = parse_str(
            "t.conf",
            "virtual_server_group g {\n 203.0.113.20-22 80\n 2001:db8:f::1 80\n}\nvirtual_server group g {\n lb_algo rr\n \
             real_server 198.51.100.1 80\n}\nvirtual_server fwmark 1 {\n}\nvirtual_server 203.0.113.30 80 {\n lb_algo sed\n}\n",
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
            "virtual_server 203.0.113.10 3868 {\n protocol SCTP\n real_server 198.51.100.11 3868\n}\n",
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
            "virtual_server 203.0.113.10 80 {\n}\nvirtual_server 2001:db8::10 53 {\n protocol UDP\n}\n\
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
