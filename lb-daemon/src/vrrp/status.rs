//! What the engine publishes about each instance, for `status`, metrics and the daemon
//! (which follows an instance's mastership with the IPVS sync daemon).

use serde::{Deserialize, Serialize};

use super::instance::State;

/// One VRRP instance as `status` shows it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VrrpStatus {
    pub instance: String,
    pub vrid: u8,
    pub state: State,
    pub priority: u8,
    pub adverts_sent: u64,
    pub adverts_received: u64,
    pub became_master: u64,
    /// Dropped adverts by receive check.
    pub rejected: std::collections::BTreeMap<String, u64>,
    /// Times it left MASTER for BACKUP or FAULT (keepalived's `release_master`).
    #[serde(default)]
    pub released_master: u64,
    /// Priority-0 adverts received and sent (keepalived's `pri_zero_rcvd` / `pri_zero_sent`).
    #[serde(default)]
    pub pri_zero_received: u64,
    #[serde(default)]
    pub pri_zero_sent: u64,
    /// The last state change, seconds since the Unix epoch (0: none yet).
    #[serde(default)]
    pub last_transition: f64,
    /// The master heard last (its source address and priority), while not master.
    #[serde(default)]
    pub master: Option<(std::net::IpAddr, u8)>,
    /// The interface and the address adverts are sent from.
    #[serde(default)]
    pub interface: String,
    #[serde(default)]
    pub src_ip: Option<std::net::IpAddr>,
    /// It switched to old unicast checksums on hearing a peer's (`old_unicast_checksum`).
    #[serde(default)]
    pub old_checksum_heard: bool,
    /// VRRP version (2 or 3).
    #[serde(default)]
    pub version: u8,
    /// Every vrrp_track_process's current count and quorum (the same on every instance).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<ProcessStatus>,
}

/// A vrrp_track_process as the listener last saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessStatus {
    pub name: String,
    pub current: u32,
    pub quorum: bool,
}
