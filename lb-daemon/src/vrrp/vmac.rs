//! `use_vmac`: an instance's VIPs live on a macvlan of its interface (private mode) whose MAC
//! is the VRRP virtual MAC, so a client's neighbour entry for a VIP keeps its MAC across a
//! failover. As keepalived 2.2.7 (vrrp_vmac.c, vrrp_if_config.c):
//!
//! - the VMAC is created at start (down, MAC 00:00:5e:00:01:VRID unless `use_vmac` gives
//!   one, private mode), given its sysctls, then set up, and stays up whatever the instance's
//!   state; it is deleted at stop and when a reload removes its instance; a reload that
//!   keeps the instance keeps it;
//! - an IPv4 instance's VMAC: arp_ignore=1, accept_local=1, rp_filter=0,
//!   promote_secondaries=1, IPv6 off (disable_ipv6=1) and no automatic link-local address
//!   (addr_gen_mode=1); on the base interface: arp_ignore=1, arp_filter=1 (restored at stop,
//!   which keepalived 2.2.7 omits); net.ipv4.conf.all.rp_filter is cleared as keepalived's
//!   `clear_rp_filter` does (each interface first keeps its effective value) and restored
//!   at stop. An IPv6 instance's VMAC (MAC 00:00:5e:00:02:VRID): IPv6 on, no automatic
//!   link-local address, the base's link-local address added (deprecated) as the adverts'
//!   source, none with `vmac_xmit_base` (the adverts leave from the base); no IPv4 settings;
//! - nftables (table `lb_daemon_vmac`, keepalived's rules): a VMAC's IGMP / MLDv2 reports
//!   leave from the base interface, and an IPv6 VMAC sends no router solicitation, so a
//!   backup's VMAC never announces the virtual MAC;
//! - adverts go out of the VMAC (source MAC the virtual MAC), or with `vmac_xmit_base` out of
//!   the base interface (and are heard there); gratuitous ARPs for the VIPs always go out of
//!   the VMAC, from the virtual MAC.
//!
//! Decisions (the MAC, the name, what to do with an existing interface) are pure functions
//! below; `Vmacs` is the I/O.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use tracing::{info, warn};

use crate::netlink::{LinkFacts, Netlink};

/// Where an IPv6 instance's adverts leave from, and the link-local address they come from
/// (the configured source, else the base interface's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ipv6Source {
    /// The VMAC, which carries that address (deprecated, never a chosen source otherwise).
    Vmac(std::net::Ipv6Addr),
    /// The base interface (`vmac_xmit_base`), which has it; the VMAC has no link-local address.
    Base(std::net::Ipv6Addr),
}

/// The VRRP virtual MAC of `vrid` (RFC 5798 §7.3): 00:00:5e:00:01:VRID, IPv6 00:00:5e:00:02:VRID.
pub fn virtual_mac(vrid: u8, v6: bool) -> [u8; 6] {
    [0x00, 0x00, 0x5e, 0x00, if v6 { 0x02 } else { 0x01 }, vrid]
}

/// keepalived's `create_vmac_name` candidates, in order: PREFIX.VRID, then PREFIX1.VRID,
/// PREFIX2.VRID, ... (IPv6: PREFIX6.VRID second), each cut to 15 characters by shortening
/// the prefix.
pub fn name_candidates(prefix: &str, vrid: u8, v6: bool) -> impl Iterator<Item = String> {
    let prefix = prefix.to_string();
    let nums: Vec<Option<u32>> = if v6 {
        [None, Some(6)].into_iter().chain((1..1000).filter(|n| *n != 6).map(Some)).collect()
    } else {
        std::iter::once(None).chain((1..1000).map(Some)).collect()
    };
    nums.into_iter().map(move |n| {
        let tail = match n {
            Some(n) => format!("{n}.{vrid}"),
            None => format!(".{vrid}"),
        };
        let keep = 15usize.saturating_sub(tail.len()).min(prefix.len());
        let mut cut = keep;
        while !prefix.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}{tail}", &prefix[..cut])
    })
}

/// What to do about the interface a VMAC is to have as its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    Create,
    /// A private macvlan of the base with the virtual MAC: ours from before (keepalived
    /// reuses it too).
    Reuse(u32),
    /// A macvlan of another base, or with another MAC or mode: deleted and created again
    /// (keepalived deletes one of another base, updates one of another MAC or mode).
    Replace(u32),
    /// Not a macvlan: never touched.
    Conflict,
}

pub fn plan(existing: Option<&LinkFacts>, base: u32, mac: [u8; 6]) -> Plan {
    match existing {
        None => Plan::Create,
        Some(f) if !f.macvlan => Plan::Conflict,
        Some(f) if f.parent == Some(base) && f.private && f.mac == Some(mac) => Plan::Reuse(f.index),
        Some(f) => Plan::Replace(f.index),
    }
}

/// Whether a default name may be taken: free, or already the VMAC we want.
fn default_name_fits(existing: Option<&LinkFacts>, base: u32, mac: [u8; 6]) -> bool {
    matches!(plan(existing, base, mac), Plan::Create | Plan::Reuse(_))
}

/// Sysctl values to set on the VMAC (vrrp_if_config.c `vmac_sysctl`, and `link_set_ipv6`
/// and ADDR_GEN_MODE none for an IPv4 instance).
pub const VMAC_SYSCTLS: &[(&str, &str)] = &[
    ("ipv4", "arp_ignore"),
    ("ipv4", "accept_local"),
    ("ipv4", "rp_filter"),
    ("ipv4", "promote_secondaries"),
    ("ipv6", "disable_ipv6"),
    ("ipv6", "addr_gen_mode"),
];
const VMAC_VALUES: [u32; 6] = [1, 1, 0, 1, 1, 1];

/// keepalived's `clear_rp_filter`: (sysctl path under net/ipv4/conf, new value) for each
/// change, given all.rp_filter, default.rp_filter and each interface's: when `all` is not
/// 0, `default` and each interface below it are raised to it (their effective value), then
/// `all` becomes 0.
pub fn clear_rp_filter(all: u32, default: u32, ifaces: &[(String, u32)]) -> Vec<(String, u32)> {
    if all == 0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    if default < all {
        out.push(("default".to_string(), all));
    }
    for (name, v) in ifaces {
        if *v < all {
            out.push((name.clone(), all));
        }
    }
    out.push(("all".to_string(), 0));
    out
}

fn sysctl_path(family: &str, iface: &str, key: &str) -> String {
    format!("/proc/sys/net/{family}/conf/{iface}/{key}")
}

pub(crate) fn read_sysctl(family: &str, iface: &str, key: &str) -> Option<u32> {
    std::fs::read_to_string(sysctl_path(family, iface, key)).ok()?.trim().parse().ok()
}

pub(crate) fn write_sysctl(family: &str, iface: &str, key: &str, v: u32) {
    if let Err(e) = std::fs::write(sysctl_path(family, iface, key), v.to_string()) {
        warn!("setting net.{family}.conf.{iface}.{key}={v}: {e}");
    }
}

/// Our nftables tables (families `ip` and `ip6`), as keepalived's `keepalived` table.
pub const TABLE: &str = "lb_daemon_vmac";

/// The `nft -f` script for `vmacs` (name, base, IPv6), keepalived's vrrp_nftables.c rules: a
/// VMAC's IGMP reports (IPv4) and MLDv2 reports (IPv6) leave from its base interface instead
/// (`dup to ... device BASE drop`), and an IPv6 VMAC sends no router solicitation. Otherwise a
/// backup's VMAC would announce the virtual MAC from its switch port and draw the VIP's
/// traffic away from the master. No tables when there is nothing to rewrite.
pub fn firewall_script(vmacs: &[(String, String, bool)]) -> String {
    let mut s = String::new();
    for (family, v6) in [("ip", false), ("ip6", true)] {
        s.push_str(&format!("table {family} {TABLE}\ndelete table {family} {TABLE}\n"));
        let mine: Vec<&(String, String, bool)> = vmacs.iter().filter(|m| m.2 == v6).collect();
        if mine.is_empty() {
            continue;
        }
        s.push_str(&format!(
            "table {family} {TABLE} {{\n  chain out {{\n    type filter hook output priority -1; policy accept;\n"
        ));
        for (name, base, _) in mine {
            if v6 {
                s.push_str(&format!(
                    "    oifname \"{name}\" icmpv6 type mld2-listener-report dup to ip6 daddr device \"{base}\" drop\n    \
                     oifname \"{name}\" icmpv6 type nd-router-solicit drop\n"
                ));
            } else {
                s.push_str(&format!(
                    "    oifname \"{name}\" ip protocol igmp dup to ip daddr device \"{base}\" drop\n"
                ));
            }
        }
        s.push_str("  }\n}\n");
    }
    s
}

fn apply_firewall(vmacs: &[(String, String, bool)]) -> Result<()> {
    use std::io::Write as _;
    let mut child = std::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("running nft (use_vmac's IGMP/MLD rules need nftables): {e}"))?;
    child.stdin.take().ok_or_else(|| anyhow::anyhow!("nft's stdin"))?.write_all(firewall_script(vmacs).as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("nft refused the use_vmac rules: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// One VMAC the engine made (or took over).
#[derive(Clone, Debug)]
struct Made {
    index: u32,
    base: String,
    v6: bool,
}

/// The VMACs of the running instances, and the kernel settings they changed.
#[derive(Default)]
pub struct Vmacs {
    made: BTreeMap<String, Made>,
    /// Base interface → its arp_ignore and arp_filter before the first VMAC on it.
    base_saved: BTreeMap<String, (u32, u32)>,
    /// What `clear_rp_filter` changed: (interface, old value).
    rp_saved: Vec<(String, u32)>,
}

impl Vmacs {
    /// The VMAC name: `configured`, else the first of `candidates` (keepalived's,
    /// `name_candidates`) not taken by another instance (`taken`) nor by an interface that is
    /// not already this VMAC (a private macvlan of `base` with `mac`).
    pub async fn choose_name(
        nl: &Netlink,
        configured: Option<&str>,
        candidates: impl Iterator<Item = String>,
        base: u32,
        mac: [u8; 6],
        taken: &[String],
    ) -> Result<String> {
        if let Some(n) = configured {
            return Ok(n.to_string());
        }
        for name in candidates {
            if taken.contains(&name) {
                continue;
            }
            if default_name_fits(nl.link_facts(&name).await?.as_ref(), base, mac) {
                return Ok(name);
            }
        }
        bail!("no free VMAC name")
    }

    /// Makes `name` the VMAC with `mac` on `base` (create, reuse or replace), sets its
    /// sysctls and the base's, and sets it up; returns its index. An IPv6 instance's VMAC
    /// (`ipv6`: where its adverts leave from, and their link-local source) keeps IPv6 on,
    /// gets no IPv4 settings, and gets that address (keepalived's `set_link_local_address`)
    /// unless the adverts leave from the base (`vmac_xmit_base`): then it has none.
    pub async fn ensure(
        &mut self,
        nl: &Netlink,
        name: &str,
        base: &str,
        mac: [u8; 6],
        ipv6: Option<Ipv6Source>,
    ) -> Result<u32> {
        let Some(base_facts) = nl.link_facts(base).await? else { bail!("no interface {base}") };
        let v6 = ipv6.is_some();
        // Before the VMAC exists (keepalived: before its own rp_filter is set to 0).
        if !v6 && self.rp_saved.is_empty() {
            self.clear_rp_filter();
        }
        let index = match plan(nl.link_facts(name).await?.as_ref(), base_facts.index, mac) {
            Plan::Conflict => bail!(
                "VMAC {name} conflicts with an existing interface that is not a macvlan \
                 (keepalived: \"already exists as a non macvlan interface\"); rename it or name the VMAC: use_vmac NAME"
            ),
            Plan::Reuse(i) => {
                info!(vmac = name, "VMAC {name} already exists on {base}; using it");
                i
            }
            Plan::Replace(i) => {
                info!(vmac = name, "removing old VMAC interface {name} due to conflicting interface");
                nl.del_link(i).await?;
                nl.add_macvlan(name, base_facts.index, mac).await?
            }
            Plan::Create => nl.add_macvlan(name, base_facts.index, mac).await?,
        };
        self.made.insert(name.to_string(), Made { index, base: base.to_string(), v6 });
        // Before the VMAC joins any group (its receiver does, once it is up).
        apply_firewall(&self.firewall_list())?;
        if let Some(source) = ipv6 {
            write_sysctl("ipv6", name, "disable_ipv6", 0);
            write_sysctl("ipv6", name, "addr_gen_mode", 1);
            nl.set_up(index).await?;
            let on_vmac = |ll: std::net::Ipv6Addr| crate::config::IpAddress {
                addr: ll.into(),
                prefix: 64,
                broadcast: None,
                dev: Some(name.to_string()),
                scope: None,
                label: None,
                peer: None,
                // keepalived's: deprecated (preferred_lft 0), so never a chosen source.
                preferred_lft: Some(0),
                flags: 0,
                dad: false,
                no_track: false,
                track_group: None,
                span: Default::default(),
            };
            match source {
                Ipv6Source::Vmac(ll) => {
                    nl.add(&on_vmac(ll), name).await?;
                }
                // A reused VMAC loses whatever link-local address it has (keepalived's
                // `del_link_local_address`).
                Ipv6Source::Base(_) => {
                    for (ifindex, addr) in nl.addresses().await? {
                        if let (true, std::net::IpAddr::V6(ll)) = (ifindex == index, addr)
                            && ll.is_unicast_link_local()
                        {
                            nl.del(&on_vmac(ll), name).await?;
                        }
                    }
                }
            }
            return Ok(index);
        }
        for ((family, key), v) in VMAC_SYSCTLS.iter().zip(VMAC_VALUES) {
            write_sysctl(family, name, key, v);
        }
        if !self.base_saved.contains_key(base) {
            let ignore = read_sysctl("ipv4", base, "arp_ignore").unwrap_or(0);
            let filter = read_sysctl("ipv4", base, "arp_filter").unwrap_or(0);
            self.base_saved.insert(base.to_string(), (ignore, filter));
        }
        // Every time: a base interface made again has its defaults back.
        write_sysctl("ipv4", base, "arp_ignore", 1);
        write_sysctl("ipv4", base, "arp_filter", 1);
        nl.set_up(index).await?;
        Ok(index)
    }

    fn firewall_list(&self) -> Vec<(String, String, bool)> {
        self.made.iter().map(|(n, m)| (n.clone(), m.base.clone(), m.v6)).collect()
    }

    fn clear_rp_filter(&mut self) {
        let all = read_sysctl("ipv4", "all", "rp_filter").unwrap_or(0);
        let default = read_sysctl("ipv4", "default", "rp_filter").unwrap_or(0);
        let ifaces: Vec<(String, u32)> = std::fs::read_dir("/proc/sys/net/ipv4/conf")
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| n != "all" && n != "default")
                    .filter_map(|n| read_sysctl("ipv4", &n, "rp_filter").map(|v| (n, v)))
                    .collect()
            })
            .unwrap_or_default();
        for (iface, v) in clear_rp_filter(all, default, &ifaces) {
            let old = match iface.as_str() {
                "all" => all,
                "default" => default,
                _ => ifaces.iter().find(|(n, _)| *n == iface).map_or(0, |(_, v)| *v),
            };
            if iface == "all" {
                info!("NOTICE: setting sysctl net.ipv4.conf.all.rp_filter from {all} to 0");
            }
            write_sysctl("ipv4", &iface, "rp_filter", v);
            self.rp_saved.push((iface, old));
        }
    }

    /// Deletes the VMACs not in `keep`; the base settings are restored when no VMAC is
    /// left on a base, and rp_filter when none is left at all.
    pub async fn retain(&mut self, nl: &Netlink, keep: &[String]) {
        let gone: Vec<String> = self.made.keys().filter(|n| !keep.contains(n)).cloned().collect();
        for name in gone {
            let Some(m) = self.made.remove(&name) else { continue };
            info!(vmac = %name, "deleting VMAC interface {name}");
            if let Err(e) = nl.del_link(m.index).await {
                warn!("{e:#}");
            }
            if !self.made.values().any(|o| o.base == m.base)
                && let Some((ignore, filter)) = self.base_saved.remove(&m.base)
            {
                write_sysctl("ipv4", &m.base, "arp_ignore", ignore);
                write_sysctl("ipv4", &m.base, "arp_filter", filter);
            }
        }
        if let Err(e) = apply_firewall(&self.firewall_list()) {
            warn!("{e:#}");
        }
        if self.made.is_empty() {
            // Restored in reverse: `all` first, as keepalived's restore_rp_filter.
            for (iface, old) in self.rp_saved.drain(..).rev() {
                // An interface gone since has nothing to restore.
                if std::path::Path::new(&sysctl_path("ipv4", &iface, "rp_filter")).exists() {
                    write_sysctl("ipv4", &iface, "rp_filter", old);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_virtual_mac_is_rfc_5798s() {
        assert_eq!(virtual_mac(7, false), [0, 0, 0x5e, 0, 1, 7]);
        assert_eq!(virtual_mac(255, true), [0, 0, 0x5e, 0, 2, 255]);
    }

    #[test]
    fn names_follow_keepalived_create_vmac_name() {
        let v4: Vec<String> = name_candidates("vrrp", 51, false).take(3).collect();
        assert_eq!(v4, ["vrrp.51", "vrrp1.51", "vrrp2.51"]);
        let v6: Vec<String> = name_candidates("vrrp", 51, true).take(4).collect();
        assert_eq!(v6, ["vrrp.51", "vrrp6.51", "vrrp1.51", "vrrp2.51"]);
        // Cut to IFNAMSIZ - 1 by shortening the prefix.
        let long: Vec<String> = name_candidates("averyverylongprefix", 200, false).take(2).collect();
        assert_eq!(long, ["averyverylo.200", "averyveryl1.200"]);
        assert!(long.iter().all(|n| crate::config::vmac_name_valid(n)));
    }

    fn facts(macvlan: bool, private: bool, parent: u32, mac: [u8; 6]) -> LinkFacts {
        LinkFacts { index: 9, macvlan, private, parent: Some(parent), mac: Some(mac) }
    }

    #[test]
    fn an_existing_interface_is_reused_replaced_or_refused() {
        let mac = virtual_mac(1, false);
        assert_eq!(plan(None, 2, mac), Plan::Create);
        assert_eq!(plan(Some(&facts(true, true, 2, mac)), 2, mac), Plan::Reuse(9));
        assert_eq!(plan(Some(&facts(true, true, 3, mac)), 2, mac), Plan::Replace(9));
        assert_eq!(plan(Some(&facts(true, false, 2, mac)), 2, mac), Plan::Replace(9));
        assert_eq!(plan(Some(&facts(true, true, 2, virtual_mac(2, false))), 2, mac), Plan::Replace(9));
        assert_eq!(plan(Some(&facts(false, false, 2, mac)), 2, mac), Plan::Conflict);
        assert!(default_name_fits(None, 2, mac));
        assert!(!default_name_fits(Some(&facts(true, true, 3, mac)), 2, mac));
    }

    #[test]
    fn igmp_and_mld_leave_from_the_base_as_keepalived_rewrites_them() {
        let none = firewall_script(&[]);
        assert_eq!(
            none,
            format!("table ip {TABLE}\ndelete table ip {TABLE}\ntable ip6 {TABLE}\ndelete table ip6 {TABLE}\n")
        );
        let s = firewall_script(&[("vrrp.51".into(), "eth0".into(), false), ("vrrp.52".into(), "eth0".into(), true)]);
        assert!(s.contains("oifname \"vrrp.51\" ip protocol igmp dup to ip daddr device \"eth0\" drop"), "{s}");
        assert!(
            s.contains("oifname \"vrrp.52\" icmpv6 type mld2-listener-report dup to ip6 daddr device \"eth0\" drop")
        );
        assert!(s.contains("oifname \"vrrp.52\" icmpv6 type nd-router-solicit drop"));
        assert!(!s.contains("oifname \"vrrp.51\" icmpv6"));
    }

    #[test]
    fn rp_filter_is_cleared_as_keepalived_does() {
        assert!(clear_rp_filter(0, 1, &[("eth0".into(), 1)]).is_empty());
        let got = clear_rp_filter(2, 1, &[("eth0".into(), 0), ("eth1".into(), 2)]);
        assert_eq!(got, [("default".to_string(), 2), ("eth0".to_string(), 2), ("all".to_string(), 0)]);
    }
}
