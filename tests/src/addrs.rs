//! The documentation addresses every test, fixture and benchmark uses, by role: RFC 5737's
//! 192.0.2.0/24 (clients, and the VRRP segment), 198.51.100.0/24 (real servers) and
//! 203.0.113.0/24 (VIPs), and RFC 3849's 2001:db8::/32. A frame built for a fixture, the
//! namespace topologies and the assertions all name the same hosts through these; only
//! keepalived.conf text in the tests spells them out, as an operator would write it.

use std::net::{Ipv4Addr, Ipv6Addr};

/// The client (`LbTopology`'s client, the fixture's client neighbour).
pub const CLIENT4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
pub const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 2);

/// The load balancer on the client's link.
pub const LB_CLIENT_SIDE4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const LB_CLIENT_SIDE6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 1);

/// The load balancer on the real servers' link: their gateway, and the outer source of
/// TUN-forwarded packets.
pub const LB_BACKEND_SIDE4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
pub const LB_BACKEND_SIDE6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 1);

/// The service address.
pub const VIP4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
pub const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 0x10);

/// An address beside the VIP that no service uses.
pub const NO_SERVICE4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 99);

/// Real server `i` (0-based): 198.51.100.(11+i).
pub const fn backend4(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100, 11 + i as u8)
}

/// Real server `i` (0-based): 2001:db8:b::(11+i).
pub const fn backend6(i: usize) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 0x11 + i as u16)
}

/// The VRRP segment (`Segment`): client, routers and their VIPs share 192.0.2.0/24 and
/// 2001:db8:1::/64.
pub const SEGMENT_CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x1, 0, 0, 0, 0, 2);
pub const VRRP_VIP4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
/// A second instance's VIP.
pub const VRRP_VIP4_2: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 101);
pub const VRRP_VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x1, 0, 0, 0, 0, 0x100);

/// Router `i` on the segment: 192.0.2.(11+i).
pub const fn node4(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, 11 + i as u8)
}

/// Router `i` on the segment: 2001:db8:1::(11+i).
pub const fn node6(i: usize) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0x1, 0, 0, 0, 0, 0x11 + i as u16)
}
