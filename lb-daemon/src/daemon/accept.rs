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

/// How the drop rules are written: keepalived's `nftables [TABLE]` (then, as keepalived, in
/// an `ip` and an `ip6` table of that name, deleted and made again), `nftables_priority` and
/// `nftables_counters`; without `nftables`, in our own `inet` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Firewall {
    /// The table keepalived's `nftables` names, None for our own.
    pub named: Option<String>,
    pub priority: i32,
    pub counters: bool,
}

impl Firewall {
    pub fn of(g: &GlobalDefs) -> Self {
        Self { named: g.nftables.clone(), priority: g.nftables_priority, counters: g.nftables_counters }
    }

    /// (family, name) of each table it writes.
    fn tables(&self) -> Vec<(&'static str, &str)> {
        match &self.named {
            Some(name) => vec![("ip", name.as_str()), ("ip6", name.as_str())],
            None => vec![("inet", TABLE)],
        }
    }

    /// Where the rules are, for the log.
    pub fn describe(&self) -> String {
        self.tables().iter().map(|(f, n)| format!("{f} {n}")).collect::<Vec<_>>().join(" and ")
    }
}

/// The `nft -f` script that makes `fw`'s tables hold exactly `vips` (no table when empty).
pub fn script(fw: &Firewall, vips: &BTreeSet<IpAddr>) -> String {
    let mut s = String::new();
    // Declaring a table first makes its delete succeed whether or not it exists.
    for (family, name) in fw.tables() {
        s.push_str(&format!("table {family} {name}\ndelete table {family} {name}\n"));
    }
    if vips.is_empty() {
        return s;
    }
    let list = |v6: bool| -> String {
        vips.iter().filter(|a| a.is_ipv6() == v6).map(IpAddr::to_string).collect::<Vec<_>>().join(", ")
    };
    let counter = if fw.counters { "counter " } else { "" };
    let priority = fw.priority;
    let set = |name: &str, kind: &str, elements: &str| {
        let elements = if elements.is_empty() { String::new() } else { format!("    elements = {{ {elements} }}\n") };
        format!("  set {name} {{\n    type {kind}\n{elements}  }}\n")
    };
    let nd = format!(
        "    icmpv6 type {{ nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, nd-redirect }} \
         {counter}accept\n"
    );
    let chains = |nd: &str, drops_in: &str, drops_out: &str| {
        format!(
            "  chain in {{\n    type filter hook input priority {priority}; policy accept;\n{nd}{drops_in}  }}\n  \
             chain out {{\n    type filter hook output priority {priority}; policy accept;\n{nd}{drops_out}  }}\n"
        )
    };
    let drop = |dir: &str, family: &str, set: &str| format!("    {family} {dir} @{set} {counter}drop\n");
    for (family, name) in fw.tables() {
        s.push_str(&format!("table {family} {name} {{\n"));
        match family {
            "ip" => {
                s.push_str(&set("vips", "ipv4_addr", &list(false)));
                s.push_str(&chains("", &drop("daddr", "ip", "vips"), &drop("saddr", "ip", "vips")));
            }
            "ip6" => {
                s.push_str(&set("vips", "ipv6_addr", &list(true)));
                s.push_str(&chains(&nd, &drop("daddr", "ip6", "vips"), &drop("saddr", "ip6", "vips")));
            }
            _ => {
                s.push_str(&set("vips4", "ipv4_addr", &list(false)));
                s.push_str(&set("vips6", "ipv6_addr", &list(true)));
                let drops = |dir: &str| drop(dir, "ip", "vips4") + &drop(dir, "ip6", "vips6");
                s.push_str(&chains(&nd, &drops("daddr"), &drops("saddr")));
            }
        }
        s.push_str("}\n");
    }
    s
}

/// Runs `script(fw, vips)` through `nft -f -` (`check`: `nft -c`, nothing changes).
fn nft(script: &str, check: bool) -> Result<()> {
    let args: &[&str] = if check { &["-c", "-f", "-"] } else { &["-f", "-"] };
    let mut child = Command::new("nft")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running nft (no_accept's drop rules need nftables)")?;
    child.stdin.take().context("nft's stdin")?.write_all(script.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("nft refused the no_accept rules: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Makes `fw`'s tables drop exactly `vips`.
pub fn apply(fw: &Firewall, vips: &BTreeSet<IpAddr>) -> Result<()> {
    nft(&script(fw, vips), false)
}

/// Whether nft takes the rules `fw` would write (a table name it cannot parse, a keyword
/// such as `counter`, would otherwise only fail once a no_accept master needs them): checked
/// before a configuration naming a table is taken.
pub fn check(fw: &Firewall) -> Result<()> {
    if fw.named.is_none() {
        return Ok(());
    }
    let probe: BTreeSet<IpAddr> = ["192.0.2.1".parse()?, "2001:db8::1".parse()?].into();
    nft(&script(fw, &probe), true).with_context(|| format!("global_defs nftables: tables {}", fw.describe()))
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
        // keepalived's nftables keywords: an ip and an ip6 table of that name, shaped by them.
        let g = GlobalDefs {
            nftables: Some("kad".into()),
            nftables_priority: -5,
            nftables_counters: true,
            ..Default::default()
        };
        let s = script(&Firewall::of(&g), &vips);
        assert!(s.starts_with("table ip kad\ndelete table ip kad\ntable ip6 kad\ndelete table ip6 kad\n"), "{s}");
        assert!(s.contains("table ip kad {") && s.contains("table ip6 kad {"), "{s}");
        assert!(s.contains("priority -5;") && s.contains("ip daddr @vips counter drop"), "{s}");
        assert!(s.contains("ip6 saddr @vips counter drop") && !s.contains("inet"), "{s}");
    }
}
