//! keepalived's accept mode for traffic to this host: a MASTER without accept mode
//! (`no_accept`, or `vrrp_strict`'s default) that is not the address owner drops every packet
//! to its VIPs, and every packet from them it would send, with a firewall rule run before IPVS
//! (keepalived 2.2.7 `vrrp_nftables.c`: table `keepalived`, chains `in`/`out` at priority -1,
//! `daddr @vips drop` / `saddr @vips drop`, IPv6 neighbour discovery let through). The same
//! rules here, in our own table, kept equal to the VIPs `node::fences` marks
//! `FENCE_NO_ACCEPT`; the XDP data plane drops those VIPs' service frames itself.

use std::{
    collections::BTreeSet,
    io::Write as _,
    net::IpAddr,
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

use crate::config::GlobalDefs;

/// Our nftables table (family `inet`) unless the configuration names one (`nftables`).
pub const TABLE: &str = "lb_daemon_no_accept";

/// How the drop rules are written: keepalived's `nftables [TABLE]`, `nftables_priority` and
/// `nftables_counters` (the table's family stays `inet`, where keepalived makes an `ip` and
/// an `ip6` table of that name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Firewall {
    pub table: String,
    pub priority: i32,
    pub counters: bool,
}

impl Firewall {
    pub fn of(g: &GlobalDefs) -> Self {
        Self {
            table: g.nftables.clone().unwrap_or_else(|| TABLE.into()),
            priority: g.nftables_priority,
            counters: g.nftables_counters,
        }
    }
}

/// The `nft -f` script that makes `fw`'s table hold exactly `vips` (no table when empty).
pub fn script(fw: &Firewall, vips: &BTreeSet<IpAddr>) -> String {
    let (table, priority) = (&fw.table, fw.priority);
    // Declaring the table first makes the delete succeed whether or not it exists.
    let mut s = format!("table inet {table}\ndelete table inet {table}\n");
    if vips.is_empty() {
        return s;
    }
    let list = |v6: bool| -> String {
        vips.iter().filter(|a| a.is_ipv6() == v6).map(IpAddr::to_string).collect::<Vec<_>>().join(", ")
    };
    let (v4, v6) = (list(false), list(true));
    let counter = if fw.counters { "counter " } else { "" };
    s.push_str(&format!("table inet {table} {{\n"));
    s.push_str("  set vips4 {\n    type ipv4_addr\n");
    if !v4.is_empty() {
        s.push_str(&format!("    elements = {{ {v4} }}\n"));
    }
    s.push_str("  }\n  set vips6 {\n    type ipv6_addr\n");
    if !v6.is_empty() {
        s.push_str(&format!("    elements = {{ {v6} }}\n"));
    }
    let nd =
        "icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, nd-redirect }";
    s.push_str(&format!(
        "  }}\n  chain in {{\n    type filter hook input priority {priority}; policy accept;\n    \
         {nd} {counter}accept\n    ip daddr @vips4 {counter}drop\n    ip6 daddr @vips6 {counter}drop\n  }}\n  \
         chain out {{\n    type filter hook output priority {priority}; policy accept;\n    \
         {nd} {counter}accept\n    ip saddr @vips4 {counter}drop\n    ip6 saddr @vips6 {counter}drop\n  }}\n}}\n",
    ));
    s
}

/// Runs `script(fw, vips)` through `nft -f -`.
pub fn apply(fw: &Firewall, vips: &BTreeSet<IpAddr>) -> Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running nft (no_accept's drop rules need nftables)")?;
    child.stdin.take().context("nft's stdin")?.write_all(script(fw, vips).as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("nft refused the no_accept rules: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_holds_exactly_the_vips() {
        let fw = Firewall::of(&GlobalDefs::default());
        let none = script(&fw, &BTreeSet::new());
        assert_eq!(none, format!("table inet {TABLE}\ndelete table inet {TABLE}\n"));
        let vips: BTreeSet<IpAddr> = ["192.0.2.100".parse().unwrap(), "2001:db8::100".parse().unwrap()].into();
        let s = script(&fw, &vips);
        assert!(s.contains("elements = { 192.0.2.100 }") && s.contains("elements = { 2001:db8::100 }"), "{s}");
        assert!(s.contains("ip daddr @vips4 drop") && s.contains("ip6 saddr @vips6 drop"), "{s}");
        assert!(s.contains("priority -1;") && !s.contains("counter"), "{s}");
        let v4: BTreeSet<IpAddr> = ["192.0.2.100".parse().unwrap()].into();
        assert_eq!(script(&fw, &v4).matches("elements").count(), 1);
        // keepalived's nftables keywords name and shape it.
        let g = GlobalDefs {
            nftables: Some("kad".into()),
            nftables_priority: -5,
            nftables_counters: true,
            ..Default::default()
        };
        let s = script(&Firewall::of(&g), &v4);
        assert!(s.starts_with("table inet kad\ndelete table inet kad\ntable inet kad {"), "{s}");
        assert!(s.contains("priority -5;") && s.contains("ip daddr @vips4 counter drop"), "{s}");
    }
}
