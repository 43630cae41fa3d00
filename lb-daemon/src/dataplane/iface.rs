//! What the data plane needs to know of an interface it attaches to.

use std::ffi::CString;

use anyhow::{Context as _, Result, bail};
use lb_common::consts::{IFACE_GENERIC, IFACE_TX_BY_REDIRECT};

/// The interface's MAC (from getifaddrs, so in the calling thread's network namespace); None
/// for an interface without one.
pub fn mac(iface: &str) -> Result<Option<[u8; 6]>> {
    let mut found = None;
    for a in nix::ifaddrs::getifaddrs().context("getifaddrs")?.filter(|a| a.interface_name == iface) {
        if let Some(mac) = a.address.as_ref().and_then(|a| a.as_link_addr()).and_then(|l| l.addr()) {
            found = Some(mac);
        }
    }
    Ok(found.filter(|m| *m != [0; 6]))
}

/// Every interface's MAC in this network namespace.
pub fn macs() -> Result<Vec<[u8; 6]>> {
    Ok(nix::ifaddrs::getifaddrs()
        .context("getifaddrs")?
        .filter_map(|a| a.address.as_ref().and_then(|a| a.as_link_addr()).and_then(|l| l.addr()))
        .collect())
}

/// The interface's driver name (`ethtool -i`: "veth", "virtio_net", ...).
pub fn driver(iface: &str) -> Result<String> {
    // struct ethtool_drvinfo: cmd, then driver[32], version[32], fw_version[32],
    // bus_info[32], erom_version[32], reserved2[12], five u32 counts.
    const ETHTOOL_GDRVINFO: u32 = 0x0000_0003;
    const SIOCETHTOOL: libc::c_ulong = 0x8946;
    let mut info = [0u8; 4 + 32 * 5 + 12 + 4 * 5];
    info[..4].copy_from_slice(&ETHTOOL_GDRVINFO.to_ne_bytes());
    let name = CString::new(iface).context("interface name")?;
    if name.as_bytes().len() >= libc::IFNAMSIZ {
        bail!("interface name {iface} is too long");
    }
    // SAFETY: a zeroed ifreq with the name copied in and `ifr_data` pointing at `info`, which
    // outlives the ioctl; the socket is closed on every path.
    unsafe {
        let mut req: libc::ifreq = std::mem::zeroed();
        for (d, s) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
            *d = *s as libc::c_char;
        }
        req.ifr_ifru.ifru_data = info.as_mut_ptr().cast();
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error()).context("socket for SIOCETHTOOL");
        }
        let r = libc::ioctl(fd, SIOCETHTOOL, &mut req);
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if r < 0 {
            return Err(err).with_context(|| format!("reading the driver of {iface}"));
        }
    }
    let driver = &info[4..36];
    let end = driver.iter().position(|b| *b == 0).unwrap_or(driver.len());
    Ok(String::from_utf8_lossy(&driver[..end]).into_owned())
}

/// The `lb_ifaces` flags for an interface with `driver`, attached in generic mode or not.
pub fn flags(driver: &str, generic: bool) -> u32 {
    if generic {
        IFACE_GENERIC
    } else if driver == "veth" {
        IFACE_TX_BY_REDIRECT
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_interface_is_an_error() {
        assert!(driver("no-such-if0").is_err());
    }

    #[test]
    fn flags_by_driver_and_mode() {
        assert_eq!(flags("veth", false), IFACE_TX_BY_REDIRECT);
        assert_eq!(flags("veth", true), IFACE_GENERIC);
        assert_eq!(flags("ixgbe", false), 0);
    }
}
