//! Keys and values of the service lookup.

use bytemuck::{Pod, Zeroable};

use crate::consts::{FAMILY_V4, FAMILY_V6};

/// A virtual service as the data plane matches it: destination address, port and protocol.
///
/// `addr` holds the address in network byte order; IPv4 uses the first four bytes and leaves
/// the rest zero. `port` is in host byte order so `bpftool` prints it as written in the config.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Pod, Zeroable)]
pub struct ServiceKey {
    pub addr: [u8; 16],
    pub port: u16,
    pub proto: u8,
    pub family: u8,
}

impl ServiceKey {
    pub const fn v4(addr: [u8; 4], port: u16, proto: u8) -> Self {
        let mut a = [0u8; 16];
        a[0] = addr[0];
        a[1] = addr[1];
        a[2] = addr[2];
        a[3] = addr[3];
        Self { addr: a, port, proto, family: FAMILY_V4 }
    }

    pub const fn v6(addr: [u8; 16], port: u16, proto: u8) -> Self {
        Self { addr, port, proto, family: FAMILY_V6 }
    }
}

/// What the data plane knows about a matched service.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct ServiceValue {
    /// Index of this service in the per-service arrays (`lb_svc_stats`), below `MAX_SERVICES`.
    pub id: u32,
    /// `SVC_F_*` flags; none defined yet.
    pub flags: u32,
}

/// Single entry of `lb_meta`: written by the daemon when it creates the pins, checked when
/// it adopts existing ones.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct Meta {
    /// `consts::LAYOUT_VERSION` of the daemon that created the maps.
    pub layout_version: u32,
    pub reserved: u32,
}

crate::aya_pod!(ServiceKey, ServiceValue, Meta);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_have_no_hidden_padding() {
        // bytemuck's Pod derive already refuses padding; these pin the sizes the BPF side assumes.
        assert_eq!(core::mem::size_of::<ServiceKey>(), 20);
        assert_eq!(core::mem::size_of::<ServiceValue>(), 8);
    }
}
