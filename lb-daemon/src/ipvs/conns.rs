//! IPVS's connection table for `lb-daemon conns`: `/proc/net/ip_vs_conn`, as the kernel
//! writes it (`ip_vs_conn_seq_show` in net/netfilter/ipvs/ip_vs_conn.c):
//!
//! ```text
//! Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData
//! TCP C0000202 9C40 CB00710A 0050 C633640B 1F90 ESTABLISHED     899
//! ```
//!
//! IPv4 addresses are 8 hex digits (the address as a host-order number), IPv6 ones `%pI6`
//! (eight groups of four hex digits); ports are 4 hex digits; "Expires" is whole seconds;
//! a persistence engine adds its name and data. IPv6 connections are in the same file (there
//! is no `ip_vs_conn6`), and the real server's family may differ from the client's.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::{Context as _, Result, bail};

use crate::dataplane::conns::{Conn, Endpoint, Table};

pub const PROC_FILE: &str = "/proc/net/ip_vs_conn";

fn addr(s: &str) -> Result<IpAddr> {
    if s.contains(':') {
        return Ok(IpAddr::V6(s.parse::<Ipv6Addr>().with_context(|| format!("IPv6 address `{s}`"))?));
    }
    if s.len() != 8 {
        bail!("IPv4 address `{s}` is not 8 hex digits");
    }
    Ok(IpAddr::V4(Ipv4Addr::from(u32::from_str_radix(s, 16).with_context(|| format!("IPv4 address `{s}`"))?)))
}

fn port(s: &str) -> Result<u16> {
    u16::from_str_radix(s, 16).with_context(|| format!("port `{s}`"))
}

/// One line of the table (not the header).
fn line(l: &str) -> Result<Conn> {
    let f: Vec<&str> = l.split_whitespace().collect();
    let [proto, caddr, cport, vaddr, vport, daddr, dport, state, expires, ..] = f.as_slice() else {
        bail!("{} fields, expected at least 9", f.len());
    };
    let protocol = proto.to_lowercase();
    let vip = Endpoint { ip: addr(vaddr)?, port: port(vport)? };
    Ok(Conn {
        table: Table::Ipvs,
        client: Endpoint { ip: addr(caddr)?, port: port(cport)? },
        real: Some(Endpoint { ip: addr(daddr)?, port: port(dport)? }),
        real_id: None,
        service: Some(format!("{vip}/{protocol}")),
        vip,
        protocol,
        state: state.to_string(),
        expires_in_s: Some(expires.parse().with_context(|| format!("expiry `{expires}`"))?),
        idle_s: None,
    })
}

/// Every connection in `text`, the contents of `/proc/net/ip_vs_conn`.
pub fn parse(text: &str) -> Result<Vec<Conn>> {
    let mut lines = text.lines();
    match lines.next() {
        Some(h) if h.starts_with("Pro ") => {}
        other => bail!("{PROC_FILE}: unexpected header {other:?}"),
    }
    lines
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| line(l).with_context(|| format!("{PROC_FILE} line {}: `{l}`", i + 2)))
        .collect()
}

/// IPVS's connections in this network namespace.
pub fn read() -> Result<Vec<Conn>> {
    let text = std::fs::read_to_string(PROC_FILE).with_context(|| format!("reading {PROC_FILE}"))?;
    parse(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As `ip_vs_conn_seq_show` prints them: an IPv4 NAT flow, an IPv6 DR flow (`%pI6`: every
    /// group four digits), a persistence template (ports 0, state NONE), a UDP flow, and a
    /// SIP persistence engine's trailing fields.
    const TABLE: &str = "\
Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData
TCP C0000202 9C40 CB00710A 0050 C633640B 1F90 ESTABLISHED     899
TCP 2001:0db8:000c:0000:0000:0000:0000:0002 D431 2001:0db8:000f:0000:0000:0000:0000:0010 0050 2001:0db8:000b:0000:0000:0000:0000:0011 0050 SYN_RECV         59
IP  C0000202 0000 CB00710A 0000 C633640C 0000 NONE            359
UDP C0000202 E2A1 CB00710A 0035 C633640B 0035 UDP             299 sip 1234@example
";

    #[test]
    fn parses_the_kernels_format() {
        let conns = parse(TABLE).unwrap();
        let row = |c: &Conn| {
            (
                c.protocol.clone(),
                c.client.to_string(),
                c.vip.to_string(),
                c.real.map(|e| e.to_string()).unwrap_or_default(),
                c.state.clone(),
                c.expires_in_s,
            )
        };
        let rows: Vec<_> = conns.iter().map(row).collect();
        let want = |p: &str, c: &str, v: &str, r: &str, s: &str, e: u64| {
            (p.to_string(), c.to_string(), v.to_string(), r.to_string(), s.to_string(), Some(e))
        };
        assert_eq!(
            rows,
            vec![
                want("tcp", "192.0.2.2:40000", "203.0.113.10:80", "198.51.100.11:8080", "ESTABLISHED", 899),
                want("tcp", "[2001:db8:c::2]:54321", "[2001:db8:f::10]:80", "[2001:db8:b::11]:80", "SYN_RECV", 59),
                want("ip", "192.0.2.2:0", "203.0.113.10:0", "198.51.100.12:0", "NONE", 359),
                want("udp", "192.0.2.2:58017", "203.0.113.10:53", "198.51.100.11:53", "UDP", 299),
            ]
        );
        assert!(conns.iter().all(|c| c.table == Table::Ipvs && c.real_id.is_none()));
        assert_eq!(conns[0].service.as_deref(), Some("203.0.113.10:80/tcp"));
    }

    #[test]
    fn an_empty_table_is_only_the_header() {
        assert!(parse(TABLE.lines().next().unwrap()).unwrap().is_empty());
    }

    #[test]
    fn malformed_lines_are_errors_naming_the_line() {
        for bad in [
            "TCP C0000202 9C40 CB00710A 0050 C633640B 1F90 ESTABLISHED",
            "TCP C00002 9C40 CB00710A 0050 C633640B 1F90 ESTABLISHED 1",
            "TCP C0000202 XYZ1 CB00710A 0050 C633640B 1F90 ESTABLISHED 1",
            "TCP C0000202 9C40 CB00710A 0050 C633640B 1F90 ESTABLISHED soon",
            "TCP 2001:db8::zz 9C40 CB00710A 0050 C633640B 1F90 ESTABLISHED 1",
        ] {
            let text = format!("{}\n{bad}\n", TABLE.lines().next().unwrap());
            let err = format!("{:#}", parse(&text).unwrap_err());
            assert!(err.contains("line 2"), "{err}");
        }
        assert!(parse("garbage\n").is_err());
    }
}
