//! `lb-daemon conns`: the tracked connections, as `ipvsadm -Lnc` lists IPVS's. The entries
//! come from the XDP data plane's pinned flow tables (`bpf::read_conns`) or from the kernel's
//! `/proc/net/ip_vs_conn` (`crate::ipvs::conns`); here is what both produce, the filters and
//! the two outputs. Pure: no I/O.

use std::{fmt::Write as _, net::IpAddr, str::FromStr};

use anyhow::{Result, bail};
use serde::Serialize;

/// Which table an entry was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Table {
    /// `lb_conntrack4`/`lb_conntrack`: tracked flows.
    Conntrack,
    /// `lb_halfopen`: flows between their first packet (a bare SYN, a first datagram) and the
    /// client's next.
    Halfopen,
    /// `lb_nat_rev`: where a NAT real server's replies get their source back from.
    NatRev,
    /// `lb_halfopen_rev`: the same for half-open flows.
    HalfopenRev,
    /// `/proc/net/ip_vs_conn`: IPVS's connection table.
    Ipvs,
}

impl Table {
    /// Entries that translate replies rather than track a flow.
    pub fn is_reverse(self) -> bool {
        matches!(self, Table::NatRev | Table::HalfopenRev)
    }
}

/// An address and port, in JSON as `{"ip": "192.0.2.2", "port": 41234}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.ip {
            IpAddr::V4(ip) => write!(f, "{ip}:{}", self.port),
            IpAddr::V6(ip) => write!(f, "[{ip}]:{}", self.port),
        }
    }
}

/// One connection entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Conn {
    pub table: Table,
    /// `tcp`, `udp`, or IPVS's name for others (lowercase).
    pub protocol: String,
    pub client: Endpoint,
    /// The VIP and port the client addressed.
    #[serde(rename = "virtual")]
    pub vip: Endpoint,
    /// The real server; None when its id no longer names one (removed meanwhile).
    pub real: Option<Endpoint>,
    /// The data plane's id of the real server (XDP only).
    pub real_id: Option<u32>,
    /// The service as the config names it, `203.0.113.10:80/tcp`.
    pub service: Option<String>,
    /// `ESTABLISHED`, `SYN_RECV`, `CLOSING`, `UDP`, `UDP_NEW` (XDP); IPVS's names with IPVS.
    pub state: String,
    /// Seconds until the entry expires without further packets; None for entries that do not
    /// time out (NAT reverse entries live until the LRU evicts them).
    pub expires_in_s: Option<u64>,
    /// Seconds since the entry was last refreshed (XDP: at most once a second per flow; NAT
    /// reverse entries: since created).
    pub idle_s: Option<u64>,
}

/// What `--service` and `--real` name: an address, with or without a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Selector {
    pub ip: IpAddr,
    pub port: Option<u16>,
}

impl FromStr for Selector {
    type Err = String;

    /// `192.0.2.10:80`, `[2001:db8::10]:80`, or an address alone (any port).
    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(sa) = s.parse::<std::net::SocketAddr>() {
            return Ok(Self { ip: sa.ip(), port: Some(sa.port()) });
        }
        let bare = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')).unwrap_or(s);
        bare.parse::<IpAddr>()
            .map(|ip| Self { ip, port: None })
            .map_err(|_| format!("`{s}` is not ADDRESS:PORT, [IPv6]:PORT or an address"))
    }
}

impl Selector {
    pub fn matches(&self, e: &Endpoint) -> bool {
        e.ip == self.ip && self.port.is_none_or(|p| p == e.port)
    }
}

/// The entries for `--service` and `--real` (both must match when both are given).
pub fn filter(conns: Vec<Conn>, service: Option<&Selector>, real: Option<&Selector>) -> Vec<Conn> {
    conns
        .into_iter()
        .filter(|c| service.is_none_or(|s| s.matches(&c.vip)))
        .filter(|c| real.is_none_or(|r| c.real.as_ref().is_some_and(|e| r.matches(e))))
        .collect()
}

/// Stable order: by table, then protocol, virtual address, client, real server.
pub fn sort(conns: &mut [Conn]) {
    conns.sort_by(|a, b| {
        (a.table, &a.protocol, a.vip, a.client, a.real).cmp(&(b.table, &b.protocol, b.vip, b.client, b.real))
    });
}

/// Where the entries come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Bpf,
    Ipvs,
}

/// The backend to read: the running daemon's (its state file), else the BPF data plane's
/// pins when they exist (also after the daemon is gone), else IPVS's table.
pub fn choose(daemon_backend: Option<&str>, pins_exist: bool, ipvs_table_exists: bool) -> Result<Source> {
    match daemon_backend {
        Some("ipvs") => Ok(Source::Ipvs),
        Some("bpf") => Ok(Source::Bpf),
        _ if pins_exist => Ok(Source::Bpf),
        _ if ipvs_table_exists => Ok(Source::Ipvs),
        _ => {
            bail!("no pinned flow tables (is the pin directory right?) and no /proc/net/ip_vs_conn (ip_vs not loaded)")
        }
    }
}

/// `ipvsadm -Lnc`'s `MM:SS`.
fn expire(s: Option<u64>) -> String {
    s.map_or_else(|| "-".to_string(), |s| format!("{:02}:{:02}", s / 60, s % 60))
}

/// The text output: `ipvsadm -Lnc`'s columns (pro expire state source virtual destination)
/// for tracked and half-open flows, then NAT reverse entries (reply source rewritten to the
/// virtual address; their "expire" column is their age, as they do not time out).
pub fn render_text(conns: &[Conn], title: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{title}");
    let _ = writeln!(out, "pro expire {:<11} {:<22} {:<22} destination", "state", "source", "virtual");
    let real = |c: &Conn| c.real.map_or_else(|| format!("#{}", c.real_id.unwrap_or(u32::MAX)), |e| e.to_string());
    for c in conns.iter().filter(|c| !c.table.is_reverse()) {
        let _ = writeln!(
            out,
            "{:<3} {:<6} {:<11} {:<22} {:<22} {}",
            c.protocol.to_uppercase(),
            expire(c.expires_in_s),
            c.state,
            c.client.to_string(),
            c.vip.to_string(),
            real(c)
        );
    }
    let reverse: Vec<&Conn> = conns.iter().filter(|c| c.table.is_reverse()).collect();
    if !reverse.is_empty() {
        let _ = writeln!(out, "NAT reply entries (replies from the real server get the virtual address as source)");
        let _ = writeln!(out, "pro age    {:<12} {:<22} {:<22} real server", "table", "client", "virtual");
        for c in reverse {
            let table = if c.table == Table::NatRev { "nat_rev" } else { "halfopen_rev" };
            let _ = writeln!(
                out,
                "{:<3} {:<6} {:<12} {:<22} {:<22} {}",
                c.protocol.to_uppercase(),
                expire(c.idle_s),
                table,
                c.client.to_string(),
                c.vip.to_string(),
                real(c)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s: &str) -> Endpoint {
        let sa: std::net::SocketAddr = s.parse().unwrap();
        Endpoint { ip: sa.ip(), port: sa.port() }
    }

    fn conn(table: Table, client: &str, vip: &str, real: &str, state: &str, expires: Option<u64>) -> Conn {
        Conn {
            table,
            protocol: "tcp".into(),
            client: ep(client),
            vip: ep(vip),
            real: Some(ep(real)),
            real_id: Some(3),
            service: None,
            state: state.into(),
            expires_in_s: expires,
            idle_s: Some(1),
        }
    }

    #[test]
    fn selectors_take_address_and_port_or_an_address() {
        let s: Selector = "203.0.113.10:80".parse().unwrap();
        assert!(s.matches(&ep("203.0.113.10:80")) && !s.matches(&ep("203.0.113.10:81")));
        let any: Selector = "198.51.100.11".parse().unwrap();
        assert!(any.matches(&ep("198.51.100.11:8080")) && !any.matches(&ep("198.51.100.12:8080")));
        let v6: Selector = "[2001:db8::10]:80".parse().unwrap();
        assert!(v6.matches(&ep("[2001:db8::10]:80")));
        let v6any: Selector = "2001:db8::10".parse().unwrap();
        assert_eq!(v6any.port, None);
        assert!("203.0.113.10:http".parse::<Selector>().is_err());
    }

    #[test]
    fn filters_by_service_and_real_server() {
        let all = vec![
            conn(
                Table::Conntrack,
                "192.0.2.2:40000",
                "203.0.113.10:80",
                "198.51.100.11:8080",
                "ESTABLISHED",
                Some(899),
            ),
            conn(
                Table::Conntrack,
                "192.0.2.2:40001",
                "203.0.113.10:80",
                "198.51.100.12:8080",
                "ESTABLISHED",
                Some(899),
            ),
            conn(Table::Conntrack, "192.0.2.2:40002", "203.0.113.10:81", "198.51.100.11:80", "ESTABLISHED", Some(899)),
        ];
        let svc: Selector = "203.0.113.10:80".parse().unwrap();
        let real: Selector = "198.51.100.11:8080".parse().unwrap();
        let ports = |v: Vec<Conn>| v.iter().map(|c| c.client.port).collect::<Vec<_>>();
        assert_eq!(ports(filter(all.clone(), Some(&svc), None)), [40000, 40001]);
        assert_eq!(ports(filter(all.clone(), None, Some(&real))), [40000]);
        let real_any: Selector = "198.51.100.11".parse().unwrap();
        assert_eq!(ports(filter(all.clone(), None, Some(&real_any))), [40000, 40002]);
        assert_eq!(ports(filter(all.clone(), Some(&svc), Some(&real_any))), [40000]);
        let mut unknown = all[0].clone();
        unknown.real = None;
        assert!(filter(vec![unknown], None, Some(&real)).is_empty(), "an unknown real server matches no --real");
    }

    #[test]
    fn the_daemons_backend_wins_then_pins_then_ipvs() {
        assert_eq!(choose(Some("ipvs"), true, true).unwrap(), Source::Ipvs);
        assert_eq!(choose(Some("bpf"), false, true).unwrap(), Source::Bpf);
        assert_eq!(choose(None, true, true).unwrap(), Source::Bpf);
        assert_eq!(choose(None, false, true).unwrap(), Source::Ipvs);
        assert!(choose(None, false, false).is_err());
    }

    #[test]
    fn text_has_ipvsadm_columns_and_a_section_for_nat_replies() {
        let mut rev =
            conn(Table::NatRev, "192.0.2.2:40000", "203.0.113.10:80", "198.51.100.11:8080", "NAT_REPLY", None);
        rev.idle_s = Some(75);
        let v6 = Conn {
            protocol: "udp".into(),
            ..conn(
                Table::Halfopen,
                "[2001:db8:c::2]:5353",
                "[2001:db8:f::10]:53",
                "[2001:db8:b::11]:53",
                "UDP_NEW",
                Some(299),
            )
        };
        let mut gone =
            conn(Table::Conntrack, "192.0.2.2:40001", "203.0.113.10:80", "198.51.100.11:8080", "CLOSING", Some(0));
        gone.real = None;
        let conns = vec![
            conn(
                Table::Conntrack,
                "192.0.2.2:40000",
                "203.0.113.10:80",
                "198.51.100.11:8080",
                "ESTABLISHED",
                Some(897),
            ),
            gone,
            v6,
            rev,
        ];
        let text = render_text(&conns, "XDP connection entries");
        let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
        assert_eq!(
            lines,
            [
                "XDP connection entries",
                "pro expire state       source                 virtual                destination",
                "TCP 14:57  ESTABLISHED 192.0.2.2:40000        203.0.113.10:80        198.51.100.11:8080",
                "TCP 00:00  CLOSING     192.0.2.2:40001        203.0.113.10:80        #3",
                "UDP 04:59  UDP_NEW     [2001:db8:c::2]:5353   [2001:db8:f::10]:53    [2001:db8:b::11]:53",
                "NAT reply entries (replies from the real server get the virtual address as source)",
                "pro age    table        client                 virtual                real server",
                "TCP 01:15  nat_rev      192.0.2.2:40000        203.0.113.10:80        198.51.100.11:8080",
            ]
        );
    }

    #[test]
    fn json_fields_are_typed() {
        let c =
            conn(Table::Conntrack, "192.0.2.2:40000", "203.0.113.10:80", "198.51.100.11:8080", "ESTABLISHED", Some(5));
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["table"], "conntrack");
        assert_eq!(v["client"]["ip"], "192.0.2.2");
        assert_eq!(v["client"]["port"], 40000);
        assert_eq!(v["virtual"]["port"], 80);
        assert_eq!(v["real"]["ip"], "198.51.100.11");
        assert_eq!(v["expires_in_s"], 5);
        assert_eq!(serde_json::to_value(Table::HalfopenRev).unwrap(), "halfopen_rev");
    }
}
