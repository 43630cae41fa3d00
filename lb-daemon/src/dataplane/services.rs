//! Turns the configured virtual servers into service-map keys.

use std::net::IpAddr;

use lb_common::ServiceKey;

use crate::config::{Config, ServiceAddr, VirtualServer};

/// The service key of a virtual server, or why the BPF data plane cannot serve it.
pub fn key(vs: &VirtualServer) -> Result<ServiceKey, String> {
    match &vs.addr {
        ServiceAddr::Inet(sa) => Ok(match sa.ip() {
            IpAddr::V4(ip) => ServiceKey::v4(ip.octets(), sa.port(), vs.protocol.ip_proto()),
            IpAddr::V6(ip) => ServiceKey::v6(ip.octets(), sa.port(), vs.protocol.ip_proto()),
        }),
        // XDP runs before netfilter: it never sees a firewall mark.
        ServiceAddr::Fwmark(m) => Err(format!(
            "virtual_server fwmark {m}: firewall marks are set by netfilter, after XDP has run; \
             the BPF data plane cannot match them (use the IPVS backend for fwmark services)"
        )),
        ServiceAddr::Group(g) => {
            Err(format!("virtual_server group {g}: virtual_server_group is not supported by the data plane yet"))
        }
    }
}

/// Every service key the config asks for, and a message for each virtual server skipped.
pub fn keys(cfg: &Config) -> (Vec<ServiceKey>, Vec<String>) {
    let mut keys = Vec::new();
    let mut skipped = Vec::new();
    for vs in &cfg.virtual_servers {
        match key(vs) {
            Ok(k) if !keys.contains(&k) => keys.push(k),
            Ok(_) => skipped.push(format!("duplicate virtual_server {:?} ignored", vs.addr)),
            Err(e) => skipped.push(e),
        }
    }
    (keys, skipped)
}

/// Human form of a key, as in the config: `192.0.2.10:80/tcp`.
pub fn describe(k: &ServiceKey) -> String {
    let ip: IpAddr = if k.family == lb_common::consts::FAMILY_V4 {
        IpAddr::from([k.addr[0], k.addr[1], k.addr[2], k.addr[3]])
    } else {
        IpAddr::from(k.addr)
    };
    let proto = match k.proto {
        6 => "tcp".to_string(),
        17 => "udp".to_string(),
        132 => "sctp".to_string(),
        p => p.to_string(),
    };
    match ip {
        IpAddr::V4(_) => format!("{ip}:{}/{proto}", k.port),
        IpAddr::V6(_) => format!("[{ip}]:{}/{proto}", k.port),
    }
}
