//! Which next hop the XDP program may take from the cache for one real server: the one
//! `bpf_fib_lookup` would find, or none (the program then asks the FIB itself). Pure: the
//! kernel's facts come in as values (`Host`, `Route`), read by `rtnl`.

use std::{collections::HashMap, net::IpAddr};

use lb_common::NextHop;

use crate::dataplane::services;

/// The route the kernel's lookup chose for a real server's address (`ip route get fibmatch`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Route {
    /// A unicast route: local, broadcast, blackhole and the like are not forwarded.
    pub unicast: bool,
    pub oif: Option<u32>,
    pub gateway: Option<IpAddr>,
    /// Several next hops (multipath, a nexthop group) or anything the cache cannot express
    /// (an encapsulation, a gateway of the other family, a next hop marked down): the FIB
    /// chooses per packet.
    pub complex: bool,
    /// The route's own MTU metric, or a path-MTU exception's when smaller.
    pub mtu: Option<u32>,
    /// A default route (prefix length 0): the output lookup that answers for it may pick
    /// another of several equal default routes than the FIB lookup of a forwarded packet.
    pub default_route: bool,
}

/// An interface as the cache needs it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    pub mac: Option<[u8; 6]>,
    pub mtu: u32,
    /// IPv6's own MTU on it (`net.ipv6.conf.IFACE.mtu`), when lower than the link's.
    pub mtu6: Option<u32>,
}

/// What the kernel knows besides routes: interfaces, resolved neighbours, and per family
/// whether the FIB lookup is as plain as one route lookup (`Family`).
#[derive(Clone, Debug, Default)]
pub struct Host {
    pub links: HashMap<u32, Link>,
    /// (interface, address) → MAC, for neighbours in a state `bpf_fib_lookup` accepts
    /// (NUD_VALID: reachable, stale, delay, probe, permanent, noarp).
    pub neighbours: HashMap<(u32, IpAddr), [u8; 6]>,
    pub v4: Family,
    pub v6: Family,
}

/// Per family: whether a route lookup by destination alone gives what the XDP FIB lookup
/// (by ingress interface, source and destination) gives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Family {
    /// Only the default policy rules (local, main, default): no rule looks at the source,
    /// the ingress interface, a mark or a VRF; and no route does either (IPv6's
    /// source-specific `from` routes).
    pub plain_rules: bool,
    /// More than one default route in the main table.
    pub several_defaults: bool,
    /// Forwarding is on on every interface the program runs on (else the FIB lookup
    /// answers "forwarding disabled" and the packet goes to the stack).
    pub forwarding: bool,
}

/// Why a real server has no cached next hop: the FIB decides its packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Miss {
    /// Policy rules beyond the defaults, or forwarding off: see `Family`.
    Family,
    /// No route, or one the kernel does not forward by (`Route::unicast`).
    NoRoute,
    /// See `Route::complex`.
    Complex,
    /// The egress interface is gone or has no MAC (not Ethernet).
    NoLink,
    /// The next hop has no usable neighbour entry yet (the FIB path asks the daemon to
    /// resolve it).
    NoNeighbour,
}

/// The cache entry for the real server at `addr`, whose route is `route`.
pub fn next_hop(addr: IpAddr, route: Option<&Route>, host: &Host) -> Result<NextHop, Miss> {
    let family = if addr.is_ipv4() { host.v4 } else { host.v6 };
    if !(family.plain_rules && family.forwarding) {
        return Err(Miss::Family);
    }
    let route = route.filter(|r| r.unicast).ok_or(Miss::NoRoute)?;
    if route.complex || (route.default_route && family.several_defaults) {
        return Err(Miss::Complex);
    }
    let oif = route.oif.ok_or(Miss::NoRoute)?;
    let link = host.links.get(&oif).ok_or(Miss::NoLink)?;
    let smac = link.mac.ok_or(Miss::NoLink)?;
    let neighbour = route.gateway.unwrap_or(addr);
    let dmac = *host.neighbours.get(&(oif, neighbour)).ok_or(Miss::NoNeighbour)?;
    // The FIB checks a packet against the route's MTU metric or the device's (IPv6: the
    // interface's mtu6); the smallest of them is never more than it allows, and a larger
    // packet asks the FIB, which answers for itself.
    let mut mtu = link.mtu;
    if let Some(m) = route.mtu.filter(|m| *m > 0) {
        mtu = mtu.min(m);
    }
    if addr.is_ipv6()
        && let Some(m) = link.mtu6
    {
        mtu = mtu.min(m);
    }
    let (bytes, family) = services::addr_bytes(addr);
    Ok(NextHop {
        addr: bytes,
        ifindex: oif,
        mtu: u16::try_from(mtu).unwrap_or(u16::MAX),
        family,
        reserved: 0,
        smac,
        dmac,
        pad: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LB: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const REAL: [u8; 6] = [2, 0, 0, 0, 0, 0x10];
    const ROUTER: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn host() -> Host {
        let plain = Family { plain_rules: true, several_defaults: false, forwarding: true };
        Host {
            links: HashMap::from([(3, Link { name: "lb0".into(), mac: Some(LB), mtu: 1500, mtu6: None })]),
            neighbours: HashMap::from([
                ((3, ip("198.51.100.10")), REAL),
                ((3, ip("198.51.100.1")), ROUTER),
                ((3, ip("2001:db8:2::10")), REAL),
            ]),
            v4: plain,
            v6: plain,
        }
    }

    fn on_link(oif: u32) -> Route {
        Route { unicast: true, oif: Some(oif), ..Default::default() }
    }

    #[test]
    fn an_on_link_real_server_is_reached_at_its_own_mac() {
        let h = next_hop(ip("198.51.100.10"), Some(&on_link(3)), &host()).unwrap();
        assert_eq!((h.ifindex, h.smac, h.dmac, h.mtu, h.family), (3, LB, REAL, 1500, lb_common::consts::FAMILY_V4));
        assert_eq!(&h.addr[..4], &[198, 51, 100, 10]);
        assert_eq!(&h.addr[4..], &[0; 12]);
    }

    #[test]
    fn a_routed_real_server_is_reached_at_its_gateways_mac() {
        let r = Route { gateway: Some(ip("198.51.100.1")), ..on_link(3) };
        let h = next_hop(ip("203.0.113.7"), Some(&r), &host()).unwrap();
        assert_eq!(h.dmac, ROUTER);
        assert_eq!(&h.addr[..4], &[203, 0, 113, 7], "the entry names the real server, not the gateway");
    }

    #[test]
    fn the_smallest_mtu_the_fib_could_apply_is_cached() {
        let mut host = host();
        let r = Route { mtu: Some(1400), ..on_link(3) };
        assert_eq!(next_hop(ip("198.51.100.10"), Some(&r), &host).unwrap().mtu, 1400);
        host.links.get_mut(&3).unwrap().mtu6 = Some(1280);
        assert_eq!(next_hop(ip("2001:db8:2::10"), Some(&on_link(3)), &host).unwrap().mtu, 1280);
        assert_eq!(next_hop(ip("198.51.100.10"), Some(&on_link(3)), &host).unwrap().mtu, 1500, "mtu6 is IPv6's");
    }

    #[test]
    fn the_fib_decides_whatever_one_route_lookup_cannot_say() {
        let a = ip("198.51.100.10");
        let mut h = host();
        assert_eq!(next_hop(a, None, &h), Err(Miss::NoRoute));
        assert_eq!(next_hop(a, Some(&Route { unicast: false, ..on_link(3) }), &h), Err(Miss::NoRoute));
        assert_eq!(next_hop(a, Some(&Route { complex: true, ..on_link(3) }), &h), Err(Miss::Complex));
        assert_eq!(next_hop(a, Some(&on_link(9)), &h), Err(Miss::NoLink));
        assert_eq!(next_hop(ip("198.51.100.11"), Some(&on_link(3)), &h), Err(Miss::NoNeighbour));
        h.v4.plain_rules = false;
        assert_eq!(next_hop(a, Some(&on_link(3)), &h), Err(Miss::Family));
        assert!(next_hop(ip("2001:db8:2::10"), Some(&on_link(3)), &h).is_ok(), "IPv6 keeps its own rules");
        h.v4 = Family { plain_rules: true, several_defaults: false, forwarding: false };
        assert_eq!(next_hop(a, Some(&on_link(3)), &h), Err(Miss::Family));
        h.v4 = Family { plain_rules: true, several_defaults: true, forwarding: true };
        assert!(next_hop(a, Some(&on_link(3)), &h).is_ok(), "a specific route is not a default one");
        let via_default = Route { default_route: true, ..on_link(3) };
        assert_eq!(next_hop(a, Some(&via_default), &h), Err(Miss::Complex), "one of several defaults");
        h.v4.several_defaults = false;
        assert!(next_hop(a, Some(&via_default), &h).is_ok(), "the only default route");
        h.v4.forwarding = true;
        h.links.get_mut(&3).unwrap().mac = None;
        assert_eq!(next_hop(a, Some(&on_link(3)), &h), Err(Miss::NoLink));
    }
}
