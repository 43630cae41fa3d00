//! What `lb-daemon trace` asks for, turned into the `TraceCfg` the program reads: a service
//! named as `VIP:PORT[/PROTO]` (resolved to its id from `lb_services`), a client address,
//! reasons by the names `lb-daemon stats` prints. Pure.

use std::net::{IpAddr, SocketAddr};

use anyhow::{Result, anyhow, bail};
use lb_common::{
    Reason, ServiceKey, TraceCfg,
    consts::{IPPROTO_TCP, IPPROTO_UDP, TRACE_BY_CLIENT, TRACE_BY_SERVICE},
};

use crate::dataplane::services;

/// A reason by name, with or without `reason_` (`no_service`, `reason_no_service`).
pub fn reason_named(name: &str) -> Result<Reason> {
    let want = name.trim();
    let want = want.strip_prefix("reason_").unwrap_or(want);
    Reason::ALL.iter().copied().find(|r| r.field_name().trim_start_matches("reason_") == want).ok_or_else(|| {
        let valid: Vec<&str> = Reason::ALL.iter().map(|r| r.field_name().trim_start_matches("reason_")).collect();
        anyhow!("unknown reason {name:?}; the reasons are: {}", valid.join(", "))
    })
}

/// Reasons from `--reason` values (each may list several, comma-separated).
pub fn reasons_named(values: &[String]) -> Result<Vec<Reason>> {
    let mut out = Vec::new();
    for v in values {
        for name in v.split(',').filter(|n| !n.trim().is_empty()) {
            out.push(reason_named(name)?);
        }
    }
    Ok(out)
}

/// The `TraceCfg::reasons` bits for `reasons`; none given: every reason.
pub fn reason_mask(reasons: &[Reason]) -> u64 {
    if reasons.is_empty() {
        return u64::MAX;
    }
    reasons.iter().fold(0, |m, r| m | 1u64 << (*r as u32))
}

/// `--service`: an address and port, with the protocol when given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceSpec {
    pub addr: SocketAddr,
    pub proto: Option<u8>,
}

/// Reads `VIP:PORT`, `[VIP6]:PORT`, either with `/tcp` or `/udp` (as `lb-daemon stats` prints
/// services).
pub fn parse_service(spec: &str) -> Result<ServiceSpec> {
    let (addr, proto) = match spec.rsplit_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (spec, None),
    };
    let proto = match proto.map(str::to_ascii_lowercase).as_deref() {
        None => None,
        Some("tcp") => Some(IPPROTO_TCP),
        Some("udp") => Some(IPPROTO_UDP),
        Some(p) => bail!("--service {spec}: unknown protocol {p:?} (tcp or udp)"),
    };
    let addr: SocketAddr = addr
        .parse()
        .map_err(|_| anyhow!("--service {spec}: expected VIP:PORT or [VIP6]:PORT, optionally /tcp or /udp"))?;
    Ok(ServiceSpec { addr, proto })
}

/// The id of the configured service `spec` names, among the data plane's `(key, id)`s.
pub fn resolve_service(spec: &ServiceSpec, configured: &[(ServiceKey, u32)]) -> Result<u32> {
    let (bytes, family) = services::addr_bytes(spec.addr.ip());
    let hits: Vec<&(ServiceKey, u32)> = configured
        .iter()
        .filter(|(k, _)| {
            k.addr == bytes
                && k.family == family
                && k.port == spec.addr.port()
                && spec.proto.is_none_or(|p| p == k.proto)
        })
        .collect();
    let mut ids: Vec<u32> = hits.iter().map(|(_, id)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    match ids.as_slice() {
        [id] => Ok(*id),
        [] => {
            let mut all: Vec<String> = configured.iter().map(|(k, _)| services::describe(k)).collect();
            all.sort();
            let listed = if all.is_empty() { "none".to_string() } else { all.join(", ") };
            bail!("no configured service {}; the data plane has: {listed}", show(spec))
        }
        _ => {
            let mut names: Vec<String> = hits.iter().map(|(k, _)| services::describe(k)).collect();
            names.sort();
            bail!("{} names several services ({}): add /tcp or /udp", show(spec), names.join(", "))
        }
    }
}

fn show(spec: &ServiceSpec) -> String {
    match spec.proto {
        Some(p) => format!("{}/{}", spec.addr, services::proto_name(p)),
        None => spec.addr.to_string(),
    }
}

/// Who runs the trace: the daemon's housekeeping (or the next tracer) turns tracing off when
/// this process is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    /// `/proc/PID/stat` field 22.
    pub start: u64,
    /// Inode of `/proc/self/ns/pid`.
    pub pid_ns: u64,
}

/// What to trace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub service: Option<u32>,
    pub client: Option<IpAddr>,
    pub reasons: Vec<Reason>,
}

/// The `lb_trace_cfg` entry that turns tracing on for `filter`, owned by `owner`.
pub fn cfg(filter: &Filter, owner: Owner) -> TraceCfg {
    let mut c = TraceCfg {
        enabled: 1,
        reasons: reason_mask(&filter.reasons),
        pid: owner.pid,
        pid_start: owner.start,
        pid_ns: owner.pid_ns,
        ..TraceCfg::default()
    };
    if let Some(id) = filter.service {
        c.filters |= TRACE_BY_SERVICE;
        c.svc_id = id;
    }
    if let Some(ip) = filter.client {
        c.filters |= TRACE_BY_CLIENT;
        (c.client, c.client_family) = services::addr_bytes(ip);
    }
    c
}

/// Whether `cfg` names `owner` as its tracer.
pub fn owned_by(cfg: &TraceCfg, owner: Owner) -> bool {
    cfg.enabled != 0 && (cfg.pid, cfg.pid_start, cfg.pid_ns) == (owner.pid, owner.start, owner.pid_ns)
}

/// The start time (field 22, clock ticks after boot) in a `/proc/PID/stat` line. The command
/// name (field 2) may hold spaces and parentheses: fields are counted after its last `)`.
pub fn start_time(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    // After the name: field 3 (state) is the first; field 22 the 20th.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the tracer `cfg` names is gone, as seen from pid namespace `here_ns`; `start_of`
/// gives a live process's start time (None: no such process). A tracer of another pid
/// namespace cannot be judged from here: it counts as alive.
pub fn tracer_gone(cfg: &TraceCfg, here_ns: u64, start_of: impl Fn(u32) -> Option<u64>) -> bool {
    if cfg.enabled == 0 || cfg.pid_ns != here_ns {
        return false;
    }
    start_of(cfg.pid) != Some(cfg.pid_start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lb_common::consts::FAMILY_V6;

    fn configured() -> Vec<(ServiceKey, u32)> {
        vec![
            (ServiceKey::v4([203, 0, 113, 10], 80, IPPROTO_TCP), 0),
            (ServiceKey::v4([203, 0, 113, 10], 53, IPPROTO_UDP), 1),
            (ServiceKey::v4([203, 0, 113, 10], 53, IPPROTO_TCP), 2),
            (ServiceKey::v6("2001:db8:f::10".parse::<std::net::Ipv6Addr>().unwrap().octets(), 80, IPPROTO_TCP), 3),
        ]
    }

    #[test]
    fn reasons_are_named_as_stats_prints_them() {
        assert_eq!(reason_named("no_service").unwrap(), Reason::NoService);
        assert_eq!(reason_named("reason_fwd_nat").unwrap(), Reason::FwdNat);
        let e = reason_named("no_such").unwrap_err().to_string();
        assert!(e.contains("\"no_such\"") && e.contains("fwd_nat") && e.contains("csum_ambiguous"), "{e}");
        for r in Reason::ALL {
            assert_eq!(reason_named(r.field_name()).unwrap(), r);
        }
        let list = reasons_named(&["fwd_nat,reason_fwd_dr".into(), "no_real".into()]).unwrap();
        assert_eq!(list, [Reason::FwdNat, Reason::FwdDr, Reason::NoReal]);
        assert!(reasons_named(&["fwd_nat,bogus".into()]).is_err());
    }

    #[test]
    fn the_reason_mask_has_one_bit_per_reason_and_all_by_default() {
        assert_eq!(reason_mask(&[]), u64::MAX);
        assert_eq!(reason_mask(&[Reason::NotIp]), 1);
        let m = reason_mask(&[Reason::FwdNat, Reason::NoReal]);
        assert_eq!(m, 1 << Reason::FwdNat as u32 | 1 << Reason::NoReal as u32);
    }

    #[test]
    fn services_resolve_to_their_ids() {
        let c = configured();
        assert_eq!(resolve_service(&parse_service("203.0.113.10:80").unwrap(), &c).unwrap(), 0);
        assert_eq!(resolve_service(&parse_service("203.0.113.10:53/udp").unwrap(), &c).unwrap(), 1);
        assert_eq!(resolve_service(&parse_service("203.0.113.10:53/TCP").unwrap(), &c).unwrap(), 2);
        assert_eq!(resolve_service(&parse_service("[2001:db8:f::10]:80/tcp").unwrap(), &c).unwrap(), 3);
        let e = resolve_service(&parse_service("203.0.113.10:53").unwrap(), &c).unwrap_err().to_string();
        assert!(e.contains("several") && e.contains("/udp"), "{e}");
        let e = resolve_service(&parse_service("203.0.113.99:80").unwrap(), &c).unwrap_err().to_string();
        assert!(e.contains("no configured service 203.0.113.99:80") && e.contains("203.0.113.10:80/tcp"), "{e}");
        let e = resolve_service(&parse_service("203.0.113.10:80").unwrap(), &[]).unwrap_err().to_string();
        assert!(e.ends_with("has: none"), "{e}");
    }

    #[test]
    fn a_service_spec_needs_an_address_and_port() {
        for bad in ["203.0.113.10", "vip:80", "203.0.113.10:80/sctp", "2001:db8::1:80", ""] {
            assert!(parse_service(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_cfg_carries_the_filters_and_the_owner() {
        let owner = Owner { pid: 42, start: 1234, pid_ns: 4026531836 };
        let c = cfg(&Filter::default(), owner);
        assert_eq!((c.enabled, c.filters, c.reasons), (1, 0, u64::MAX));
        assert!(owned_by(&c, owner));
        assert!(!owned_by(&c, Owner { start: 1, ..owner }));
        assert!(!owned_by(&TraceCfg::default(), owner));
        let f =
            Filter { service: Some(0), client: Some("2001:db8:c::2".parse().unwrap()), reasons: vec![Reason::FwdDr] };
        let c = cfg(&f, owner);
        assert_eq!(c.filters, TRACE_BY_SERVICE | TRACE_BY_CLIENT);
        assert_eq!((c.svc_id, c.client_family, c.reasons), (0, FAMILY_V6, 1 << Reason::FwdDr as u32));
        assert_eq!(c.client[..4], [0x20, 0x01, 0x0d, 0xb8]);
    }

    #[test]
    fn the_start_time_is_read_past_any_command_name() {
        let stat = "4242 (lb (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(start_time(stat), Some(987654));
        assert_eq!(start_time("4242 (short) S 1"), None);
        assert_eq!(start_time("garbage"), None);
    }

    #[test]
    fn a_tracer_is_gone_when_its_pid_is_free_or_reused() {
        let owner = Owner { pid: 42, start: 1234, pid_ns: 7 };
        let c = cfg(&Filter::default(), owner);
        assert!(!tracer_gone(&c, 7, |_| Some(1234)));
        assert!(tracer_gone(&c, 7, |_| None));
        assert!(tracer_gone(&c, 7, |_| Some(99)), "another process reuses the pid");
        assert!(!tracer_gone(&c, 8, |_| None), "another pid namespace cannot judge");
        assert!(!tracer_gone(&TraceCfg::default(), 7, |_| None), "off already");
    }
}
