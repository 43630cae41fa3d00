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
}
