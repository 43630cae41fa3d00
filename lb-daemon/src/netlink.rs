//! The kernel's network configuration as the daemon sees and changes it: interface facts
//! from getifaddrs, and addresses, routes and neighbours through rtnetlink. VRRP adds its
//! VIPs and routes here, the checkers ask whether an address is local (`ha_suspend`), and
//! the daemon hands unresolved next hops to the kernel.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::{Context as _, Result, anyhow, bail};
use futures_util::TryStreamExt;
use rtnetlink::{
    AddressMessageBuilder, Handle,
    packet_route::{
        address::{AddressAttribute, AddressScope},
        route::RouteMessage,
    },
};

use crate::config::{IpAddress, Route, RouteMetrics, RouteMode, RouteType, Rule, RuleAction, Scope};

/// An interface's index, MAC, first IPv4 and link-local IPv6 addresses, and whether it is
/// up and running.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub mac: Option<[u8; 6]>,
    pub ipv4: Option<Ipv4Addr>,
    pub link_local: Option<Ipv6Addr>,
    pub running: bool,
}

/// An interface as rtnetlink describes it (`Netlink::link_facts`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkFacts {
    pub index: u32,
    pub macvlan: bool,
    /// A macvlan in private mode.
    pub private: bool,
    /// The lower interface (IFLA_LINK).
    pub parent: Option<u32>,
    pub mac: Option<[u8; 6]>,
}

/// Reads `name` from getifaddrs (works in any network namespace, unlike /sys).
pub fn link(name: &str) -> Result<Link> {
    let index = nix::net::if_::if_nametoindex(name).with_context(|| format!("no interface {name}"))?;
    let mut l = Link { index, mac: None, ipv4: None, link_local: None, running: false };
    for a in nix::ifaddrs::getifaddrs()?.filter(|a| a.interface_name == name) {
        use nix::net::if_::InterfaceFlags as F;
        l.running = a.flags.contains(F::IFF_UP) && a.flags.contains(F::IFF_RUNNING);
        if let Some(addr) = a.address {
            if let Some(ll) = addr.as_link_addr()
                && let Some(mac) = ll.addr()
            {
                l.mac = Some(mac);
            }
            if let Some(sin) = addr.as_sockaddr_in()
                && l.ipv4.is_none()
            {
                l.ipv4 = Some(sin.ip());
            }
            if let Some(sin6) = addr.as_sockaddr_in6()
                && sin6.ip().is_unicast_link_local()
                && l.link_local.is_none()
            {
                l.link_local = Some(sin6.ip());
            }
        }
    }
    Ok(l)
}

/// Whether `ip` is configured on an interface of this network namespace.
pub fn is_local(ip: IpAddr) -> bool {
    local_addrs().is_some_and(|l| l.contains(&ip))
}

/// Every address configured on this network namespace's interfaces; None when they cannot
/// be listed.
pub fn local_addrs() -> Option<std::collections::HashSet<IpAddr>> {
    let addrs = nix::ifaddrs::getifaddrs().ok()?;
    Some(
        addrs
            .filter_map(|a| a.address)
            .filter_map(|a| {
                a.as_sockaddr_in()
                    .map(|s| IpAddr::V4(s.ip()))
                    .or_else(|| a.as_sockaddr_in6().map(|s| IpAddr::V6(s.ip())))
            })
            .collect(),
    )
}

/// The index of interface `name`, None when there is none.
pub fn if_index(name: &str) -> Option<u32> {
    nix::net::if_::if_nametoindex(name).ok()
}

/// (interface index, address): how `Netlink::addresses` lists what is configured, and how
/// keepalived matches a deleted address with its own (by index: getifaddrs names an IPv4
/// address by its label).
pub type OnLink = (u32, IpAddr);

/// Where address `a` goes (its own `dev`, else `default_dev`) as an `OnLink`; None while that
/// interface does not exist.
pub fn on_link(a: &IpAddress, default_dev: &str) -> Option<OnLink> {
    Some((if_index(a.device(default_dev))?, a.addr))
}

/// Whether `name` is up with carrier: track_interface and the instance's own interface.
pub fn is_running(name: &str) -> bool {
    link(name).is_ok_and(|l| l.running)
}

/// An rtnetlink connection: adds and removes addresses and routes, resolves neighbours.
#[derive(Clone)]
pub struct Netlink {
    handle: Handle,
    /// Its socket's port id: the kernel's broadcasts of the changes it asks for carry it.
    port: u32,
}

impl Netlink {
    /// Opens a netlink connection served by a tokio task.
    pub fn new() -> Result<Self> {
        let (mut conn, handle, _) = rtnetlink::new_connection().context("opening rtnetlink")?;
        let bound = netlink_sys::AsyncSocket::socket_mut(conn.socket_mut())
            .bind_auto()
            .context("binding the rtnetlink socket")?;
        tokio::spawn(conn);
        Ok(Self { handle, port: bound.port_number() })
    }

    /// The port id of its socket (`Deletions::next` leaves out what this connection did).
    pub fn port(&self) -> u32 {
        self.port
    }

    /// Every (interface index, address) pair configured in this network namespace (an IPv4
    /// address's local side, as keepalived's `addr_is_equal` compares).
    pub async fn addresses(&self) -> Result<std::collections::HashSet<OnLink>> {
        use rtnetlink::packet_route::address::AddressAttribute;
        let mut out = std::collections::HashSet::new();
        let mut dump = self.handle.address().get().execute();
        while let Some(m) = dump.try_next().await.context("listing addresses")? {
            let local =
                m.attributes.iter().find_map(|a| if let AddressAttribute::Local(ip) = a { Some(*ip) } else { None });
            let address =
                m.attributes.iter().find_map(|a| if let AddressAttribute::Address(ip) = a { Some(*ip) } else { None });
            if let Some(ip) = local.or(address) {
                out.insert((m.header.index, ip));
            }
        }
        Ok(out)
    }

    async fn index(&self, dev: &str) -> Result<u32> {
        let mut links = self.handle.link().get().match_name(dev.to_string()).execute();
        match links.try_next().await {
            Ok(Some(l)) => Ok(l.header.index),
            Ok(None) => bail!("no interface {dev}"),
            Err(e) => Err(anyhow!("interface {dev}: {e}")),
        }
    }

    /// What `name` is, if it exists: for `use_vmac`, whether it is a macvlan and of what.
    pub async fn link_facts(&self, name: &str) -> Result<Option<LinkFacts>> {
        use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoMacVlan, LinkAttribute, LinkInfo, MacVlanMode};
        let mut links = self.handle.link().get().match_name(name.to_string()).execute();
        let msg = match links.try_next().await {
            Ok(Some(m)) => m,
            Ok(None) => return Ok(None),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => return Ok(None),
            Err(e) => return Err(anyhow!("interface {name}: {e}")),
        };
        let mut f = LinkFacts { index: msg.header.index, macvlan: false, private: false, parent: None, mac: None };
        for a in &msg.attributes {
            match a {
                LinkAttribute::Link(p) => f.parent = Some(*p),
                LinkAttribute::Address(m) => f.mac = <[u8; 6]>::try_from(m.as_slice()).ok(),
                LinkAttribute::LinkInfo(infos) => {
                    for i in infos {
                        match i {
                            LinkInfo::Kind(InfoKind::MacVlan) => f.macvlan = true,
                            LinkInfo::Data(InfoData::MacVlan(d)) => {
                                f.private = d.iter().any(|x| matches!(x, InfoMacVlan::Mode(MacVlanMode::Private)))
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(Some(f))
    }

    /// Creates macvlan `name` on `parent`, private mode, with `mac`, down (keepalived's
    /// `netlink_link_add_vmac`); returns its index.
    pub async fn add_macvlan(&self, name: &str, parent: u32, mac: [u8; 6]) -> Result<u32> {
        use rtnetlink::{LinkMacVlan, packet_route::link::MacVlanMode};
        let msg = LinkMacVlan::new(name, parent, MacVlanMode::Private).address(mac.to_vec()).build();
        self.handle.link().add(msg).execute().await.map_err(|e| anyhow!("creating macvlan {name}: {e}"))?;
        self.index(name).await
    }

    /// Sets interface `index` up.
    pub async fn set_up(&self, index: u32) -> Result<()> {
        let msg = rtnetlink::LinkUnspec::new_with_index(index).up().build();
        self.handle.link().change(msg).execute().await.map_err(|e| anyhow!("setting interface {index} up: {e}"))
    }

    /// Deletes interface `index`; one already gone is not an error.
    pub async fn del_link(&self, index: u32) -> Result<()> {
        match self.handle.link().del(index).execute().await {
            Ok(()) => Ok(()),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(()),
            Err(e) => Err(anyhow!("deleting interface {index}: {e}")),
        }
    }

    fn message(index: u32, a: &IpAddress) -> rtnetlink::packet_route::address::AddressMessage {
        let mut m = match a.addr {
            IpAddr::V4(ip) => AddressMessageBuilder::<Ipv4Addr>::new().index(index).address(ip, a.prefix).build(),
            IpAddr::V6(ip) => {
                AddressMessageBuilder::<std::net::Ipv6Addr>::new().index(index).address(ip, a.prefix).build()
            }
        };
        if let Some(s) = a.scope {
            m.header.scope = match s {
                Scope::Global => AddressScope::Universe,
                Scope::Site => AddressScope::Site,
                Scope::Link => AddressScope::Link,
                Scope::Host => AddressScope::Host,
                Scope::Nowhere => AddressScope::Nowhere,
            };
        }
        // A VIP must answer at once, not after duplicate address detection (keepalived adds
        // its IPv6 VIPs the same way unless `-nodad`).
        let nodad = if a.addr.is_ipv6() && !a.dad { libc::IFA_F_NODAD } else { 0 };
        if a.flags | nodad != 0 {
            use rtnetlink::packet_route::address::AddressFlags;
            m.attributes.push(AddressAttribute::Flags(AddressFlags::from_bits_retain(a.flags | nodad)));
        }
        if let Some(preferred) = a.preferred_lifetime() {
            use rtnetlink::packet_route::address::CacheInfo;
            let mut info = CacheInfo::default();
            info.ifa_preferred = preferred;
            info.ifa_valid = u32::MAX;
            m.attributes.push(AddressAttribute::CacheInfo(info));
        }
        if let Some(l) = &a.label {
            m.attributes.push(AddressAttribute::Label(l.clone()));
        }
        // Point-to-point: IFA_ADDRESS is the peer, on deletion too, which then matches (keepalived
        // 2.2.7 deletes with IFA_ADDRESS = the address, which the kernel refuses for an IPv4
        // address with a peer, and so leaves it behind).
        if let Some(p) = a.peer {
            m.attributes.retain(|at| !matches!(at, AddressAttribute::Address(_)));
            m.attributes.push(AddressAttribute::Address(p));
        }
        // The builder derives a broadcast address; keepalived sets one only when `brd` asks.
        m.attributes.retain(|at| !matches!(at, AddressAttribute::Broadcast(_)));
        if let Some(b) = a.broadcast {
            m.attributes.push(AddressAttribute::Broadcast(b));
        }
        m
    }

    /// Adds `a` on its `dev` (else `default_dev`); an address already there is left as is.
    pub async fn add(&self, a: &IpAddress, default_dev: &str) -> Result<bool> {
        let dev = a.device(default_dev);
        let index = self.index(dev).await?;
        let mut req = self.handle.address().add(index, a.addr, a.prefix);
        *req.message_mut() = Self::message(index, a);
        match req.execute().await {
            Ok(()) => Ok(true),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EEXIST => Ok(false),
            Err(e) => Err(anyhow!("adding {}/{} on {dev}: {e}", a.addr, a.prefix)),
        }
    }

    /// Removes `a`; an address already gone is not an error.
    pub async fn del(&self, a: &IpAddress, default_dev: &str) -> Result<bool> {
        let dev = a.device(default_dev);
        let index = self.index(dev).await?;
        match self.handle.address().del(Self::message(index, a)).execute().await {
            Ok(()) => Ok(true),
            Err(rtnetlink::Error::NetlinkError(e))
                if e.raw_code() == -libc::EADDRNOTAVAIL || e.raw_code() == -libc::ENOENT =>
            {
                Ok(false)
            }
            Err(e) => Err(anyhow!("removing {}/{} from {dev}: {e}", a.addr, a.prefix)),
        }
    }
}

/// A route's protocol field: as configured (names resolved at parse time), else keepalived's
/// own (18), so `ip route show proto keepalived` lists what we added.
fn route_protocol(p: Option<u8>) -> rtnetlink::packet_route::route::RouteProtocol {
    use rtnetlink::packet_route::route::RouteProtocol as P;
    p.map_or(P::KeepAlived, P::from)
}

/// RTA_METRICS as keepalived's `netlink_route` builds them (RTAX_LOCK last, when set).
fn metrics(m: &RouteMetrics) -> Vec<rtnetlink::packet_route::route::RouteMetric> {
    use rtnetlink::packet_route::route::RouteMetric as M;
    let mut out = Vec::new();
    type Metric = (Option<u32>, fn(u32) -> M);
    let pairs: [Metric; 13] = [
        (m.rtt, M::Rtt),
        (m.rttvar, M::RttVar),
        (m.rto_min, M::RtoMin),
        (m.mtu, M::Mtu),
        (m.window, M::Window),
        (m.cwnd, M::Cwnd),
        (m.ssthresh, M::SsThresh),
        (m.advmss, M::Advmss),
        (m.reordering, M::Reordering),
        (m.hoplimit.map(u32::from), M::Hoplimit),
        (m.initcwnd, M::InitCwnd),
        (m.initrwnd, M::InitRwnd),
        (m.quickack, M::QuickAck),
    ];
    out.extend(pairs.into_iter().filter_map(|(v, f)| v.map(f)));
    if let Some(v) = m.fastopen_no_cookie {
        out.push(M::FastopenNoCookie(v));
    }
    if m.features_ecn {
        out.push(M::Features(1));
    }
    if let Some(c) = &m.congctl {
        out.push(M::CcAlgo(c.clone()));
    }
    if m.lock != 0 && !out.is_empty() {
        out.push(M::Lock(m.lock));
    }
    out
}

/// The family-independent parts of a route.
fn finish<T>(mut m: rtnetlink::RouteMessageBuilder<T>, index: Option<u32>, r: &Route) -> RouteMessage {
    use rtnetlink::packet_route::route::{RouteScope, RouteType as T};
    if let Some(i) = index {
        m = m.output_interface(i);
    }
    if let Some(t) = r.table {
        m = m.table_id(t);
    }
    if let Some(metric) = r.metric {
        m = m.priority(metric);
    }
    if r.onlink {
        m = m.onlink();
    }
    if let Some(t) = r.tos {
        m = m.tos(t);
    }
    if let Some(v) = r.realms {
        m = m.realm(rtnetlink::packet_route::route::RouteRealm { source: (v >> 16) as u16, destination: v as u16 });
    }
    let metrics = metrics(&r.metrics);
    if !metrics.is_empty() {
        m.get_mut().attributes.push(rtnetlink::packet_route::route::RouteAttribute::Metrics(metrics));
    }
    m = m.protocol(route_protocol(r.protocol)).kind(match r.kind {
        RouteType::Unicast => T::Unicast,
        RouteType::Blackhole => T::BlackHole,
        RouteType::Unreachable => T::Unreachable,
        RouteType::Prohibit => T::Prohibit,
    });
    let scope = match r.scope {
        Some(Scope::Global) => RouteScope::Universe,
        Some(Scope::Site) => RouteScope::Site,
        Some(Scope::Link) => RouteScope::Link,
        Some(Scope::Host) => RouteScope::Host,
        Some(Scope::Nowhere) => RouteScope::NoWhere,
        // ip route's default: link scope for a directly connected unicast route.
        None if r.kind == RouteType::Unicast && r.via.is_none() && r.nexthops.is_empty() => RouteScope::Link,
        None => RouteScope::Universe,
    };
    m.scope(scope).build()
}

impl Netlink {
    async fn route_message(&self, r: &Route, default_dev: Option<&str>) -> Result<RouteMessage> {
        use rtnetlink::RouteMessageBuilder;
        let dev = r.dev.as_deref().or(if r.kind == RouteType::Unicast { default_dev } else { None });
        let index = match dev {
            Some(d) => Some(self.index(d).await?),
            None => None,
        };
        let hops = self.next_hops(r).await?;
        Ok(match r.dest {
            IpAddr::V4(d) => {
                let mut b = RouteMessageBuilder::<Ipv4Addr>::new().destination_prefix(d, r.prefix);
                if let Some(IpAddr::V4(g)) = r.via {
                    b = b.gateway(g);
                }
                if let Some(IpAddr::V4(s)) = r.src {
                    b = b.pref_source(s);
                }
                if !hops.is_empty() {
                    b = b.multipath(hops);
                }
                finish(b, index, r)
            }
            IpAddr::V6(d) => {
                let mut b = RouteMessageBuilder::<Ipv6Addr>::new().destination_prefix(d, r.prefix);
                if let Some(IpAddr::V6(g)) = r.via {
                    b = b.gateway(g);
                }
                if let Some((IpAddr::V6(s), len)) = r.from {
                    b = b.source_prefix(s, len);
                }
                if let Some(e) = r.expires {
                    b = b.expires(e);
                }
                if let Some(p) = r.pref {
                    use rtnetlink::packet_route::route::{RouteAttribute, RoutePreference};
                    b.get_mut().attributes.push(RouteAttribute::Preference(RoutePreference::from(p)));
                }
                if let Some(IpAddr::V6(s)) = r.src {
                    b = b.pref_source(s);
                }
                if !hops.is_empty() {
                    b = b.multipath(hops);
                }
                finish(b, index, r)
            }
        })
    }

    /// A multipath route's next hops (RTA_MULTIPATH), as keepalived's `add_nexthops` builds
    /// them: gateway, interface (0: the kernel finds it), weight - 1, flags.
    async fn next_hops(&self, r: &Route) -> Result<Vec<rtnetlink::packet_route::route::RouteNextHop>> {
        use rtnetlink::RouteNextHopBuilder;
        let mut out = Vec::new();
        for nh in &r.nexthops {
            let mut b =
                if r.dest.is_ipv4() { RouteNextHopBuilder::new_ipv4() } else { RouteNextHopBuilder::new_ipv6() };
            if let Some(d) = &nh.dev {
                b = b.interface(self.index(d).await?);
            }
            if let Some(v) = nh.via {
                b = b.via(v).map_err(|e| anyhow!("next hop {v} of route {}/{}: {e:?}", r.dest, r.prefix))?;
            }
            if let Some(w) = nh.weight {
                b = b.weight(u8::try_from(w.saturating_sub(1)).unwrap_or(u8::MAX));
            }
            if nh.onlink {
                b = b.onlink();
            }
            out.push(b.build());
        }
        Ok(out)
    }

    /// Asks the kernel to resolve `ip` on `ifindex` (`ip neigh replace IP dev IF use`): the
    /// XDP FIB lookup needs the neighbour entry, and a NAT reply cannot make the stack create
    /// it (its VIP source is refused for forwarding).
    pub async fn resolve(&self, ip: IpAddr, ifindex: u32) -> Result<()> {
        use rtnetlink::packet_route::neighbour::NeighbourFlags;
        self.handle
            .neighbours()
            .add(ifindex, ip)
            .flags(NeighbourFlags::Use)
            .replace()
            .execute()
            .await
            .map_err(|e| anyhow!("resolving neighbour {ip}: {e}"))
    }

    /// Adds a route (`static_routes`, `virtual_routes`); one already there is left alone.
    /// With keepalived's request flags: `prepend` (its default) is NLM_F_CREATE alone, `add`
    /// adds NLM_F_EXCL, `append` NLM_F_APPEND (vrrp_iproute.c `netlink_route`).
    pub async fn add_route(&self, r: &Route, default_dev: Option<&str>) -> Result<bool> {
        use futures_util::StreamExt as _;
        use rtnetlink::{
            packet_core::{
                NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload,
            },
            packet_route::RouteNetlinkMessage,
        };
        let m = self.route_message(r, default_dev).await?;
        let mut req = NetlinkMessage::from(RouteNetlinkMessage::NewRoute(m));
        let mode = match r.mode {
            RouteMode::Prepend => 0,
            RouteMode::Add => NLM_F_EXCL,
            RouteMode::Append => NLM_F_APPEND,
        };
        req.header.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | mode;
        let mut handle = self.handle.clone();
        let mut replies = handle.request(req).map_err(|e| anyhow!("adding route {}/{}: {e}", r.dest, r.prefix))?;
        while let Some(msg) = replies.next().await {
            if let NetlinkPayload::Error(e) = msg.payload {
                if e.raw_code() == -libc::EEXIST {
                    return Ok(false);
                }
                return Err(anyhow!("adding route {}/{}: {e}", r.dest, r.prefix));
            }
        }
        Ok(true)
    }

    /// The host routes (/32, /128) of kind blackhole and protocol keepalived in `table`: the
    /// announcements (`anycast_table`) this daemon, or one before it, added.
    pub async fn announced(&self, table: u32) -> Result<Vec<IpAddr>> {
        use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteProtocol, RouteType as T};
        let mut out = Vec::new();
        for v6 in [false, true] {
            let m = if v6 {
                rtnetlink::RouteMessageBuilder::<Ipv6Addr>::new().table_id(table).build()
            } else {
                rtnetlink::RouteMessageBuilder::<Ipv4Addr>::new().table_id(table).build()
            };
            let mut routes = self.handle.route().get(m).execute();
            while let Some(r) = routes.try_next().await.context("listing routes")? {
                let t = r
                    .attributes
                    .iter()
                    .find_map(|a| if let RouteAttribute::Table(t) = a { Some(*t) } else { None })
                    .unwrap_or(u32::from(r.header.table));
                let full = r.header.destination_prefix_length == if v6 { 128 } else { 32 };
                if t != table
                    || r.header.protocol != RouteProtocol::KeepAlived
                    || r.header.kind != T::BlackHole
                    || !full
                {
                    continue;
                }
                let dest = r.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Destination(RouteAddress::Inet(a)) => Some(IpAddr::V4(*a)),
                    RouteAttribute::Destination(RouteAddress::Inet6(a)) => Some(IpAddr::V6(*a)),
                    _ => None,
                });
                out.extend(dest);
            }
        }
        Ok(out)
    }

    /// Removes a route; one already gone is not an error.
    pub async fn del_route(&self, r: &Route, default_dev: Option<&str>) -> Result<bool> {
        let m = self.route_message(r, default_dev).await?;
        match self.handle.route().del(m).execute().await {
            Ok(()) => Ok(true),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ESRCH => Ok(false),
            Err(e) => Err(anyhow!("removing route {}/{}: {e}", r.dest, r.prefix)),
        }
    }

    /// Adds a rule (`static_rules`, `virtual_rules`); false when an equal one was there
    /// (it is then not ours to remove, as keepalived's `set` flag has it).
    pub async fn add_rule(&self, r: &Rule) -> Result<bool> {
        let mut req = self.handle.rule().add();
        *req.message_mut() = rule_message(r);
        match req.execute().await {
            Ok(()) => Ok(true),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EEXIST => Ok(false),
            Err(e) => Err(anyhow!("adding rule preference {}: {e}", r.priority)),
        }
    }

    /// Removes a rule; one already gone is not an error.
    pub async fn del_rule(&self, r: &Rule) -> Result<bool> {
        match self.handle.rule().del(rule_message(r)).execute().await {
            Ok(()) => Ok(true),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENOENT => Ok(false),
            Err(e) => Err(anyhow!("removing rule preference {}: {e}", r.priority)),
        }
    }
}

/// What keepalived's `route_is_ours` reads of a route message (`vrrp::ours`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelRoute {
    pub v6: bool,
    pub table: u32,
    /// None: the message had no destination (a default route).
    pub dest: Option<IpAddr>,
    pub prefix: u8,
    /// RTA_PRIORITY, 0 without one.
    pub metric: u32,
    pub tos: u8,
    pub oif: Option<u32>,
}

impl KernelRoute {
    fn of(m: &RouteMessage) -> Option<Self> {
        use rtnetlink::packet_route::{
            AddressFamily,
            route::{RouteAddress, RouteAttribute as A},
        };
        let v6 = match m.header.address_family {
            AddressFamily::Inet => false,
            AddressFamily::Inet6 => true,
            _ => return None,
        };
        let mut k = KernelRoute {
            v6,
            table: u32::from(m.header.table),
            dest: None,
            prefix: m.header.destination_prefix_length,
            metric: 0,
            tos: m.header.tos,
            oif: None,
        };
        for a in &m.attributes {
            match a {
                A::Table(t) => k.table = *t,
                A::Priority(p) => k.metric = *p,
                A::Oif(i) => k.oif = Some(*i),
                A::Destination(RouteAddress::Inet(d)) => k.dest = Some(IpAddr::V4(*d)),
                A::Destination(RouteAddress::Inet6(d)) => k.dest = Some(IpAddr::V6(*d)),
                _ => {}
            }
        }
        Some(k)
    }
}

/// A route or rule of protocol keepalived that someone else deleted.
#[derive(Debug)]
pub enum Deleted {
    Route(KernelRoute),
    Rule(rtnetlink::packet_route::rule::RuleMessage),
}

impl Deleted {
    pub fn v6(&self) -> bool {
        match self {
            Deleted::Route(k) => k.v6,
            Deleted::Rule(m) => m.header.family == rtnetlink::packet_route::AddressFamily::Inet6,
        }
    }
}

type Broadcasts = futures_util::stream::BoxStream<
    'static,
    rtnetlink::packet_core::NetlinkMessage<rtnetlink::packet_route::RouteNetlinkMessage>,
>;

/// keepalived's netlink reflector for routes and rules: the kernel's IPv4 and IPv6 route and
/// rule broadcasts, of which only deletions of protocol keepalived (what this daemon adds
/// for tracked routes and rules) come out.
pub struct Deletions {
    broadcasts: Broadcasts,
    groups: Vec<u32>,
}

/// rtnetlink's multicast groups for routes and rules (`Deletions::open`).
pub const RTNLGRP_IPV4_ROUTE: u32 = 7;
pub const RTNLGRP_IPV4_RULE: u32 = 8;
pub const RTNLGRP_IPV6_ROUTE: u32 = 11;
pub const RTNLGRP_IPV6_RULE: u32 = 19;

impl Deletions {
    /// Joins `groups` (`RTNLGRP_*`) on a connection of its own, served by a tokio task.
    pub fn open(groups: &[u32]) -> Result<Self> {
        use std::os::fd::AsRawFd as _;
        let (mut conn, _, broadcasts) = rtnetlink::new_connection().context("opening rtnetlink")?;
        let socket = netlink_sys::AsyncSocket::socket_mut(conn.socket_mut());
        // Bound first: the kernel sends its broadcasts to no socket without a port id.
        socket.bind_auto().context("binding the rtnetlink broadcast socket")?;
        // Every change of a joined kind comes through here (a full routing table's churn):
        // room for bursts, past `rmem_max` as keepalived's SO_RCVBUFFORCE. An overflow loses
        // deletions, as keepalived's socket would.
        let size: libc::c_int = 4 << 20;
        // SAFETY: a valid socket and an int option of its size.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        for &group in groups {
            socket.add_membership(group).with_context(|| format!("joining rtnetlink group {group}"))?;
        }
        tokio::spawn(conn);
        use futures_util::StreamExt as _;
        Ok(Self { broadcasts: broadcasts.map(|(m, _)| m).boxed(), groups: groups.to_vec() })
    }

    /// Whether it joined every one of `groups`.
    pub fn covers(&self, groups: &[u32]) -> bool {
        groups.iter().all(|g| self.groups.contains(g))
    }

    /// The next deletion someone else made: not one asked for on the socket with port id
    /// `ours` (keepalived leaves out its own the same way). Pending for ever once the
    /// connection is gone.
    pub async fn next(&mut self, ours: u32) -> Deleted {
        use futures_util::StreamExt as _;
        use rtnetlink::{
            packet_core::NetlinkPayload,
            packet_route::{RouteNetlinkMessage as M, route::RouteProtocol, rule::RuleAttribute},
        };
        while let Some(m) = self.broadcasts.next().await {
            // A backlog of other route changes must not keep the engine from its adverts.
            tokio::task::consume_budget().await;
            if m.header.port_number == ours {
                continue;
            }
            match m.payload {
                NetlinkPayload::InnerMessage(M::DelRoute(r)) if r.header.protocol == RouteProtocol::KeepAlived => {
                    if let Some(k) = KernelRoute::of(&r) {
                        return Deleted::Route(k);
                    }
                }
                NetlinkPayload::InnerMessage(M::DelRule(r))
                    if r.attributes.iter().all(|a| match a {
                        RuleAttribute::Protocol(p) => *p == RouteProtocol::KeepAlived,
                        _ => true,
                    }) =>
                {
                    return Deleted::Rule(r);
                }
                NetlinkPayload::Overrun(_) => {
                    tracing::warn!("rtnetlink broadcasts overran: deleted routes or rules may have gone unnoticed");
                }
                _ => {}
            }
        }
        tracing::warn!("rtnetlink broadcasts ended: deleted routes and rules are no longer noticed");
        std::future::pending().await
    }
}

/// The netlink message for `r`, as keepalived's `netlink_rule` builds it: a table over 255
/// goes in FRA_TABLE, `from all` / `to all` carry no address.
pub fn rule_message(r: &Rule) -> rtnetlink::packet_route::rule::RuleMessage {
    use rtnetlink::packet_route::{
        AddressFamily, IpProtocol,
        route::{RouteProtocol, RouteRealm},
        rule::{RuleAction as A, RuleAttribute as At, RuleFlags, RuleMessage, RulePortRange, RuleUidRange},
    };
    let mut m = RuleMessage::default();
    let h = &mut m.header;
    h.family = if r.v6 { AddressFamily::Inet6 } else { AddressFamily::Inet };
    h.tos = r.tos;
    h.action = match r.action {
        RuleAction::Table(_) | RuleAction::L3mdev => A::ToTable,
        RuleAction::Goto(_) => A::Goto,
        RuleAction::Nop => A::Nop,
        RuleAction::Blackhole => A::Blackhole,
        RuleAction::Unreachable => A::Unreachable,
        RuleAction::Prohibit => A::Prohibit,
    };
    if r.invert {
        h.flags |= RuleFlags::Invert;
    }
    let at = &mut m.attributes;
    match r.action {
        RuleAction::Table(t) if t < 256 => h.table = t as u8,
        RuleAction::Table(t) => at.push(At::Table(t)),
        RuleAction::Goto(p) => at.push(At::Goto(p)),
        RuleAction::L3mdev => at.push(At::L3MDev(true)),
        _ => {}
    }
    if let Some((a, len)) = r.from.filter(|f| f.1 > 0) {
        h.src_len = len;
        at.push(At::Source(a));
    }
    if let Some((a, len)) = r.to.filter(|t| t.1 > 0) {
        h.dst_len = len;
        at.push(At::Destination(a));
    }
    at.push(At::Priority(r.priority));
    at.extend(r.fwmark.map(At::FwMark));
    at.extend(r.fwmask.map(At::FwMask));
    at.extend(r.realms.map(|v| At::Realm(RouteRealm { source: (v >> 16) as u16, destination: v as u16 })));
    at.extend(r.suppress_prefixlength.map(At::SuppressPrefixLen));
    at.extend(r.suppress_ifgroup.map(At::SuppressIfGroup));
    at.extend(r.iif.clone().map(At::Iifname));
    at.extend(r.oif.clone().map(At::Oifname));
    at.extend(r.tunnel_id.map(At::TunId));
    at.extend(r.uidrange.map(|(start, end)| At::UidRange(RuleUidRange { start, end })));
    at.extend(r.protocol.map(|p| At::Protocol(RouteProtocol::from(p))));
    at.extend(r.ipproto.map(|p| At::IpProtocol(IpProtocol::from(p))));
    at.extend(r.sport.map(|(start, end)| At::SourcePortRange(RulePortRange { start, end })));
    at.extend(r.dport.map(|(start, end)| At::DestinationPortRange(RulePortRange { start, end })));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_addresses() {
        assert!(is_local("127.0.0.1".parse().unwrap()));
        assert!(!is_local("203.0.113.254".parse().unwrap()));
    }

    #[tokio::test]
    async fn addresses_are_listed_by_interface_index() {
        let l = Netlink::new().unwrap().addresses().await.unwrap();
        let lo = if_index("lo").unwrap();
        assert!(l.contains(&(lo, "127.0.0.1".parse().unwrap())), "{l:?}");
        assert!(!l.iter().any(|(i, a)| *i != lo && a.is_loopback()), "{l:?}");
    }
}
