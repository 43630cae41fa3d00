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

/// Our nftables table (family `inet`), in the daemon's network namespace.
pub const TABLE: &str = "lb_daemon_no_accept";

/// The `nft -f` script that makes the table hold exactly `vips` (no table when empty).
pub fn script(vips: &BTreeSet<IpAddr>) -> String {
    // Declaring the table first makes the delete succeed whether or not it exists.
    let mut s = format!("table inet {TABLE}\ndelete table inet {TABLE}\n");
    if vips.is_empty() {
        return s;
    }
    let list = |v6: bool| -> String {
        vips.iter().filter(|a| a.is_ipv6() == v6).map(IpAddr::to_string).collect::<Vec<_>>().join(", ")
    };
    let (v4, v6) = (list(false), list(true));
    s.push_str(&format!("table inet {TABLE} {{\n"));
    s.push_str("  set vips4 {\n    type ipv4_addr\n");
    if !v4.is_empty() {
        s.push_str(&format!("    elements = {{ {v4} }}\n"));
    }
    s.push_str("  }\n  set vips6 {\n    type ipv6_addr\n");
    if !v6.is_empty() {
        s.push_str(&format!("    elements = {{ {v6} }}\n"));
    }
    s.push_str(
        "  }\n  chain in {\n    type filter hook input priority -1; policy accept;\n    \
         icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, nd-redirect } accept\n    \
         ip daddr @vips4 drop\n    ip6 daddr @vips6 drop\n  }\n  \
         chain out {\n    type filter hook output priority -1; policy accept;\n    \
         icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, nd-redirect } accept\n    \
         ip saddr @vips4 drop\n    ip6 saddr @vips6 drop\n  }\n}\n",
    );
    s
}

/// Runs `script(vips)` through `nft -f -`.
pub fn apply(vips: &BTreeSet<IpAddr>) -> Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running nft (no_accept's drop rules need nftables)")?;
    child.stdin.take().context("nft's stdin")?.write_all(script(vips).as_bytes())?;
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
        let none = script(&BTreeSet::new());
        assert_eq!(none, format!("table inet {TABLE}\ndelete table inet {TABLE}\n"));
        let vips: BTreeSet<IpAddr> = ["192.0.2.100".parse().unwrap(), "2001:db8::100".parse().unwrap()].into();
        let s = script(&vips);
        assert!(s.contains("elements = { 192.0.2.100 }") && s.contains("elements = { 2001:db8::100 }"), "{s}");
        assert!(s.contains("ip daddr @vips4 drop") && s.contains("ip6 saddr @vips6 drop"), "{s}");
        let v4: BTreeSet<IpAddr> = ["192.0.2.100".parse().unwrap()].into();
        assert_eq!(script(&v4).matches("elements").count(), 1);
    }
}
