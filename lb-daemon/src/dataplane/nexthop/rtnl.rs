//! The kernel's facts for the next-hop cache, read over a blocking rtnetlink socket (the
//! cache runs on its own thread), and the events that say they changed.

use std::{collections::HashMap, io, net::IpAddr, os::fd::AsRawFd, time::Duration};

use anyhow::{Context as _, Result, anyhow, bail};
use netlink_packet_core::{NLM_F_DUMP, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use rtnetlink::packet_route::{
    AddressFamily, RouteNetlinkMessage,
    link::{LinkAttribute, LinkMessage},
    neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState},
    route::{RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteMetric, RouteType},
    rule::{RuleAction, RuleAttribute, RuleMessage},
};

use super::decide::{Link, Route};

const RECV_TIMEOUT: Duration = Duration::from_secs(5);

/// The kernel's answer to a request was an error (errno), as opposed to the socket failing.
#[derive(Debug, thiserror::Error)]
#[error("the kernel refused the request: {0}")]
pub struct Refused(pub io::Error);

/// Requests and their answers.
pub struct Rtnl {
    socket: Socket,
    seq: u32,
}

impl Rtnl {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE).context("opening an rtnetlink socket")?;
        socket.bind_auto().context("binding the rtnetlink socket")?;
        socket.connect(&SocketAddr::new(0, 0)).context("connecting the rtnetlink socket")?;
        socket2::SockRef::from(&socket)
            .set_read_timeout(Some(RECV_TIMEOUT))
            .context("setting the rtnetlink socket's receive timeout")?;
        Ok(Self { socket, seq: 0 })
    }

    /// Sends `m` and collects the answers: to the end of a dump, or the one answer of a GET.
    fn exchange(&mut self, m: RouteNetlinkMessage, dump: bool) -> Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut nl = NetlinkMessage::from(m);
        nl.header.flags = NLM_F_REQUEST | if dump { NLM_F_DUMP } else { 0 };
        nl.header.sequence_number = seq;
        nl.finalize();
        let mut buf = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut buf);
        self.socket.send(&buf, 0).context("sending an rtnetlink request")?;
        let mut out = Vec::new();
        loop {
            let (data, _) = self.socket.recv_from_full().context("reading rtnetlink answers")?;
            let mut off = 0;
            while off < data.len() {
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[off..])
                    .map_err(|e| anyhow!("undecodable rtnetlink answer: {e}"))?;
                let len = reply.header.length as usize;
                if len == 0 {
                    bail!("rtnetlink answer of length 0");
                }
                off += (len + 3) & !3;
                if reply.header.sequence_number != seq {
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::InnerMessage(m) => {
                        out.push(m);
                        if !dump {
                            return Ok(out);
                        }
                    }
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::Error(e) => match e.code {
                        None => return Ok(out),
                        Some(code) => return Err(Refused(io::Error::from_raw_os_error(-code.get())).into()),
                    },
                    _ => {}
                }
            }
        }
    }

    /// Every macvlan that is up: (its lower interface, its MAC). The kernel delivers frames
    /// only to macvlans that are up.
    pub fn macvlans(&mut self) -> Result<Vec<(u32, [u8; 6])>> {
        let answers = self.exchange(RouteNetlinkMessage::GetLink(LinkMessage::default()), true)?;
        Ok(answers
            .iter()
            .filter_map(|m| if let RouteNetlinkMessage::NewLink(l) = m { macvlan_of(l) } else { None })
            .collect())
    }

    /// Every interface: index → MAC and MTU (IPv6's own MTU from /proc where it is lower).
    pub fn links(&mut self) -> Result<HashMap<u32, Link>> {
        let answers = self.exchange(RouteNetlinkMessage::GetLink(LinkMessage::default()), true)?;
        Ok(answers
            .into_iter()
            .filter_map(|m| if let RouteNetlinkMessage::NewLink(l) = m { Some(l) } else { None })
            .map(|l| {
                let link = link_of(&l);
                let mtu6 = sysctl_u32(&format!("/proc/sys/net/ipv6/conf/{}/mtu", link.name));
                (l.header.index, Link { mtu6: mtu6.filter(|m| *m < link.mtu), ..link })
            })
            .collect())
    }

    /// Every neighbour entry the FIB lookup would use: (interface, address) → MAC.
    pub fn neighbours(&mut self) -> Result<HashMap<(u32, IpAddr), [u8; 6]>> {
        let answers = self.exchange(RouteNetlinkMessage::GetNeighbour(NeighbourMessage::default()), true)?;
        Ok(answers
            .into_iter()
            .filter_map(|m| if let RouteNetlinkMessage::NewNeighbour(n) = m { neighbour_of(&n) } else { None })
            .filter_map(|(k, mac)| Some((k, mac?)))
            .collect())
    }

    /// Whether `family`'s policy rules are the kernel's defaults only.
    pub fn plain_rules(&mut self, v6: bool) -> Result<bool> {
        let mut m = RuleMessage::default();
        m.header.family = if v6 { AddressFamily::Inet6 } else { AddressFamily::Inet };
        let answers = self.exchange(RouteNetlinkMessage::GetRule(m), true)?;
        Ok(answers.iter().all(|m| match m {
            RouteNetlinkMessage::NewRule(r) => default_rule(r),
            _ => true,
        }))
    }

    /// The route the kernel's lookup picks for `addr` as configured (`ip route get fibmatch
    /// ADDR`), with the smaller of its MTU and a path-MTU exception's (`ip route get ADDR`);
    /// None when the kernel has none it would forward by (any refusal: unreachable,
    /// blackhole, prohibit, ...).
    pub fn route_to(&mut self, addr: IpAddr) -> Result<Option<Route>> {
        let Some(r) = self.get_route(addr, true)? else { return Ok(None) };
        let mut route = route_of(&r, addr);
        if let Some(resolved) = self.get_route(addr, false)? {
            let exception = route_of(&resolved, addr).mtu;
            route.mtu = [route.mtu, exception].into_iter().flatten().filter(|m| *m > 0).min();
        }
        Ok(Some(route))
    }

    fn get_route(&mut self, addr: IpAddr, fibmatch: bool) -> Result<Option<RouteMessage>> {
        let mut m = RouteMessage::default();
        m.header.address_family = if addr.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
        m.header.destination_prefix_length = if addr.is_ipv4() { 32 } else { 128 };
        if fibmatch {
            m.header.flags = RouteFlags::FibMatch;
        }
        m.attributes.push(RouteAttribute::Destination(route_address(addr)));
        match self.exchange(RouteNetlinkMessage::GetRoute(m), false) {
            Ok(answers) => Ok(answers.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => Some(r),
                _ => None,
            })),
            Err(e) if e.downcast_ref::<Refused>().is_some() => Ok(None),
            Err(e) => Err(e.context(format!("looking up the route to {addr}"))),
        }
    }

    /// Per family, facts of the whole routing table the FIB lookup of a forwarded packet
    /// depends on: (a source-specific route exists, more than one default route in main).
    pub fn table_facts(&mut self, v6: bool) -> Result<(bool, bool)> {
        let mut m = RouteMessage::default();
        m.header.address_family = if v6 { AddressFamily::Inet6 } else { AddressFamily::Inet };
        let answers = self.exchange(RouteNetlinkMessage::GetRoute(m), true).context("listing routes")?;
        let routes: Vec<RouteMessage> = answers
            .into_iter()
            .filter_map(|m| if let RouteNetlinkMessage::NewRoute(r) = m { Some(r) } else { None })
            .collect();
        let source_specific = routes.iter().any(|r| r.header.source_prefix_length != 0);
        let defaults = routes
            .iter()
            .filter(|r| {
                r.header.destination_prefix_length == 0
                    && r.header.kind == RouteType::Unicast
                    && route_table(r) == u32::from(RouteHeader::RT_TABLE_MAIN)
            })
            .count();
        Ok((source_specific, defaults > 1))
    }
}

/// What an event says changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Changed {
    /// Routes, rules, interfaces or forwarding (or events were lost): read everything again.
    pub all: bool,
    /// Only neighbours, given in `Events::read`'s list.
    pub neighbours: bool,
}

/// rtnetlink's multicast groups the cache follows.
const GROUPS: [u32; 8] = [
    1,  // RTNLGRP_LINK
    3,  // RTNLGRP_NEIGH
    7,  // RTNLGRP_IPV4_ROUTE
    8,  // RTNLGRP_IPV4_RULE
    11, // RTNLGRP_IPV6_ROUTE
    19, // RTNLGRP_IPV6_RULE
    24, // RTNLGRP_IPV4_NETCONF
    25, // RTNLGRP_IPV6_NETCONF
];

/// A socket subscribed to the changes of routes, rules, interfaces, neighbours and
/// forwarding settings.
pub struct Events {
    socket: Socket,
}

/// A neighbour event: (interface, address) and its MAC while usable, None once it is not.
pub type NeighbourChange = ((u32, IpAddr), Option<[u8; 6]>);

impl Events {
    pub fn open() -> Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE).context("opening an rtnetlink event socket")?;
        socket.bind_auto().context("binding the rtnetlink event socket")?;
        for g in GROUPS {
            socket.add_membership(g).with_context(|| format!("joining rtnetlink group {g}"))?;
        }
        // Bursts of neighbour events (a whole subnet resolving) should not overflow it; if
        // they do (ENOBUFS), everything is read again.
        let _ = socket2::SockRef::from(&socket).set_recv_buffer_size(4 << 20);
        socket.set_non_blocking(true).context("making the rtnetlink event socket non-blocking")?;
        Ok(Self { socket })
    }

    /// Waits up to `timeout` for events and reads all that are queued.
    pub fn read(&mut self, timeout: Duration, neighbours: &mut Vec<NeighbourChange>) -> Changed {
        let mut changed = Changed::default();
        let mut fd = libc::pollfd { fd: self.socket.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut fd, 1, ms) } <= 0 {
            return changed;
        }
        loop {
            let data = match self.socket.recv_from_full() {
                Ok((d, _)) => d,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return changed,
                // ENOBUFS: events were dropped; anything may have changed.
                Err(_) => return Changed { all: true, ..changed },
            };
            let mut off = 0;
            while off < data.len() {
                let Ok(m) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[off..]) else {
                    // Not one this crate decodes (netconf): taken as a change of anything.
                    changed.all = true;
                    break;
                };
                let len = m.header.length as usize;
                if len == 0 {
                    changed.all = true;
                    break;
                }
                off += (len + 3) & !3;
                match m.payload {
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNeighbour(n)) => {
                        if let Some(c) = neighbour_of(&n) {
                            neighbours.push(c);
                            changed.neighbours = true;
                        }
                    }
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelNeighbour(n)) => {
                        if let Some((k, _)) = neighbour_of(&n) {
                            neighbours.push((k, None));
                            changed.neighbours = true;
                        }
                    }
                    _ => changed.all = true,
                }
            }
        }
    }
}

fn link_of(l: &LinkMessage) -> Link {
    let mut link = Link::default();
    for a in &l.attributes {
        match a {
            LinkAttribute::Address(b) if b.len() == 6 => link.mac = b.as_slice().try_into().ok(),
            LinkAttribute::Mtu(m) => link.mtu = *m,
            LinkAttribute::IfName(n) => link.name = n.clone(),
            _ => {}
        }
    }
    link
}

/// An up macvlan's lower interface and MAC; None for other links.
fn macvlan_of(l: &LinkMessage) -> Option<(u32, [u8; 6])> {
    use rtnetlink::packet_route::link::{InfoKind, LinkFlags, LinkInfo};
    if !l.header.flags.contains(LinkFlags::Up) {
        return None;
    }
    let (mut macvlan, mut lower, mut mac) = (false, None, None);
    for a in &l.attributes {
        match a {
            LinkAttribute::LinkInfo(infos) => {
                macvlan = infos.iter().any(|i| matches!(i, LinkInfo::Kind(InfoKind::MacVlan)));
            }
            LinkAttribute::Link(p) => lower = Some(*p),
            LinkAttribute::Address(b) if b.len() == 6 => mac = b.as_slice().try_into().ok(),
            _ => {}
        }
    }
    if macvlan { Some((lower?, mac?)) } else { None }
}

/// A neighbour entry's key, and its MAC when `bpf_fib_lookup` would use it (NUD_VALID);
/// None for other families' entries (a bridge's FDB shares the group).
fn neighbour_of(n: &NeighbourMessage) -> Option<NeighbourChange> {
    if !matches!(n.header.family, AddressFamily::Inet | AddressFamily::Inet6) {
        return None;
    }
    let addr = n.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => Some(IpAddr::V4(*v4)),
        NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => Some(IpAddr::V6(*v6)),
        _ => None,
    })?;
    let valid = matches!(
        n.header.state,
        NeighbourState::Reachable
            | NeighbourState::Stale
            | NeighbourState::Delay
            | NeighbourState::Probe
            | NeighbourState::Permanent
            | NeighbourState::Noarp
    );
    let mac = n.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::LinkLayerAddress(b) if b.len() == 6 => <[u8; 6]>::try_from(b.as_slice()).ok(),
        _ => None,
    });
    Some(((n.header.ifindex, addr), mac.filter(|_| valid)))
}

/// The kernel's default rules: `0: from all lookup local`, `32766: from all lookup main`,
/// `32767: from all lookup default` (IPv6 has the first two).
fn default_rule(r: &RuleMessage) -> bool {
    let mut priority = 0;
    let mut table = u32::from(r.header.table);
    for a in &r.attributes {
        match a {
            RuleAttribute::Priority(p) => priority = *p,
            RuleAttribute::Table(t) => table = *t,
            RuleAttribute::Protocol(_) => {}
            // u32::MAX: no suppression (the kernel lists it on every rule).
            RuleAttribute::SuppressPrefixLen(u32::MAX) | RuleAttribute::SuppressIfGroup(u32::MAX) => {}
            _ => return false,
        }
    }
    r.header.src_len == 0
        && r.header.dst_len == 0
        && r.header.tos == 0
        && r.header.action == RuleAction::ToTable
        && matches!((priority, table), (0, 255) | (32766, 254) | (32767, 253))
}

fn route_address(addr: IpAddr) -> RouteAddress {
    match addr {
        IpAddr::V4(a) => RouteAddress::Inet(a),
        IpAddr::V6(a) => RouteAddress::Inet6(a),
    }
}

/// A route's table: the attribute when present (tables above 255), else the header's.
fn route_table(r: &RouteMessage) -> u32 {
    r.attributes
        .iter()
        .find_map(|a| if let RouteAttribute::Table(t) = a { Some(*t) } else { None })
        .unwrap_or(u32::from(r.header.table))
}

fn route_of(r: &RouteMessage, addr: IpAddr) -> Route {
    let mut route = Route {
        unicast: r.header.kind == RouteType::Unicast,
        default_route: r.header.destination_prefix_length == 0,
        ..Default::default()
    };
    route.complex = r.header.flags.intersects(RouteFlags::Dead | RouteFlags::Linkdown);
    for a in &r.attributes {
        match a {
            RouteAttribute::Oif(i) => route.oif = Some(*i),
            RouteAttribute::Gateway(RouteAddress::Inet(g)) => route.gateway = Some(IpAddr::V4(*g)),
            RouteAttribute::Gateway(RouteAddress::Inet6(g)) => route.gateway = Some(IpAddr::V6(*g)),
            RouteAttribute::Metrics(ms) => {
                for m in ms {
                    if let RouteMetric::Mtu(v) = m {
                        route.mtu = Some(*v);
                    }
                }
            }
            RouteAttribute::MultiPath(_)
            | RouteAttribute::NhId(_)
            | RouteAttribute::Via(_)
            | RouteAttribute::Encap(_)
            | RouteAttribute::EncapType(_)
            | RouteAttribute::Gateway(_) => route.complex = true,
            _ => {}
        }
    }
    // A gateway of the other family (IPv4 routes via IPv6) is `Via`; one of ours must match.
    if route.gateway.is_some_and(|g| g.is_ipv4() != addr.is_ipv4()) {
        route.complex = true;
    }
    route
}

fn sysctl_u32(path: &str) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Whether forwarding is on for `family` on each of `ifaces` (by name); `all`'s setting
/// when none is given.
pub fn forwarding(v6: bool, ifaces: &[String]) -> bool {
    let dir = if v6 { "/proc/sys/net/ipv6/conf" } else { "/proc/sys/net/ipv4/conf" };
    let on = |name: &str| sysctl_u32(&format!("{dir}/{name}/forwarding")) == Some(1);
    if ifaces.is_empty() { on("all") } else { ifaces.iter().all(|n| on(n)) }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn rule(table: u8, attrs: Vec<RuleAttribute>) -> RuleMessage {
        let mut r = RuleMessage::default();
        r.header.family = AddressFamily::Inet;
        r.header.table = table;
        r.header.action = RuleAction::ToTable;
        r.attributes = attrs;
        r
    }

    #[test]
    fn only_the_kernels_own_rules_are_default() {
        // As a 6.18 kernel dumps them (no suppression is u32::MAX; priority 0 is omitted).
        let none = RuleAttribute::SuppressPrefixLen(u32::MAX);
        let kernel = RuleAttribute::Protocol(rtnetlink::packet_route::route::RouteProtocol::Kernel);
        assert!(default_rule(&rule(255, vec![RuleAttribute::Table(255), none.clone(), kernel.clone()])));
        let main = |p| vec![RuleAttribute::Table(254), none.clone(), kernel.clone(), RuleAttribute::Priority(p)];
        assert!(default_rule(&rule(254, main(32766))));
        assert!(!default_rule(&rule(254, main(100))), "main at another priority");
        let mut from = rule(254, main(32766));
        from.header.src_len = 24;
        from.attributes.push(RuleAttribute::Source(Ipv4Addr::new(192, 0, 2, 0).into()));
        assert!(!default_rule(&from), "a source selector");
        let mut fwmark = main(32766);
        fwmark.push(RuleAttribute::FwMark(1));
        assert!(!default_rule(&rule(254, fwmark)));
        let mut suppress = main(32766);
        suppress[1] = RuleAttribute::SuppressPrefixLen(0);
        assert!(!default_rule(&rule(254, suppress)), "suppress_prefixlength 0");
    }

    #[test]
    fn a_route_the_cache_cannot_express_is_complex() {
        let a: IpAddr = Ipv4Addr::new(198, 51, 100, 11).into();
        let mut r = RouteMessage::default();
        r.header.kind = RouteType::Unicast;
        r.header.destination_prefix_length = 32;
        r.attributes = vec![
            RouteAttribute::Oif(3),
            RouteAttribute::Gateway(RouteAddress::Inet(Ipv4Addr::new(198, 51, 100, 1))),
            RouteAttribute::Metrics(vec![RouteMetric::Mtu(1400)]),
        ];
        let plain = route_of(&r, a);
        assert_eq!(
            plain,
            Route {
                unicast: true,
                oif: Some(3),
                gateway: Some(Ipv4Addr::new(198, 51, 100, 1).into()),
                complex: false,
                mtu: Some(1400),
                default_route: false,
            }
        );
        let mut mp = r.clone();
        mp.attributes.push(RouteAttribute::MultiPath(Vec::new()));
        assert!(route_of(&mp, a).complex);
        let mut nh = r.clone();
        nh.attributes.push(RouteAttribute::NhId(7));
        assert!(route_of(&nh, a).complex);
        let mut down = r.clone();
        down.header.flags = RouteFlags::Linkdown;
        assert!(route_of(&down, a).complex);
        let mut local = r;
        local.header.kind = RouteType::Local;
        assert!(!route_of(&local, a).unicast);
    }
}
