//! VRRP's I/O: raw IPv4 sockets (protocol 112) for adverts, addresses through rtnetlink,
//! gratuitous ARP through a packet socket, and interface facts from getifaddrs.

use std::{
    io,
    mem::MaybeUninit,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6},
    os::fd::AsRawFd,
};

use anyhow::{Context as _, Result, anyhow, bail};
use futures_util::TryStreamExt;
use rtnetlink::{
    AddressMessageBuilder, Handle,
    packet_route::address::{AddressAttribute, AddressScope},
};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;

use super::packet::{PROTO_VRRP, ipv4_header};
use crate::config::{IpAddress, Route, RouteType, Scope};

/// An interface's index, MAC, first IPv4 and link-local IPv6 addresses, and whether it is
/// up and running.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub mac: Option<[u8; 6]>,
    pub ipv4: Option<Ipv4Addr>,
    pub link_local: Option<Ipv6Addr>,
    pub running: bool,
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
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else { return false };
    addrs.filter_map(|a| a.address).any(|a| {
        a.as_sockaddr_in().map(|s| IpAddr::V4(s.ip())) == Some(ip)
            || a.as_sockaddr_in6().map(|s| IpAddr::V6(s.ip())) == Some(ip)
    })
}

/// Whether `name` is up with carrier: track_interface and the instance's own interface.
pub fn is_running(name: &str) -> bool {
    link(name).is_ok_and(|l| l.running)
}

fn raw_vrrp(v6: bool) -> Result<Socket> {
    let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
    Socket::new(domain, Type::RAW, Some(Protocol::from(i32::from(PROTO_VRRP)))).context("raw VRRP socket")
}

/// Receives adverts on one interface (multicast group joined, or unicast).
pub struct Receiver {
    fd: AsyncFd<Socket>,
    v6: bool,
}

impl Receiver {
    pub fn open(iface: &str, ifindex: u32, v6: bool, group: Option<IpAddr>) -> Result<Self> {
        let s = raw_vrrp(v6)?;
        s.bind_device(Some(iface.as_bytes())).with_context(|| format!("binding the VRRP socket to {iface}"))?;
        match group {
            Some(IpAddr::V4(g)) => s
                .join_multicast_v4_n(&g, &InterfaceIndexOrAddress::Index(ifindex))
                .with_context(|| format!("joining {g} on {iface}"))?,
            Some(IpAddr::V6(g)) => {
                s.join_multicast_v6(&g, ifindex).with_context(|| format!("joining {g} on {iface}"))?
            }
            None => {}
        }
        if v6 {
            // The hop limit and destination come as ancillary data (no IP header on v6 raw
            // sockets); the checksum is verified by `Advert::parse`.
            use nix::sys::socket::{setsockopt, sockopt};
            setsockopt(&s, sockopt::Ipv6RecvHopLimit, &true).context("IPV6_RECVHOPLIMIT")?;
            setsockopt(&s, sockopt::Ipv6RecvPacketInfo, &true).context("IPV6_RECVPKTINFO")?;
        }
        s.set_nonblocking(true)?;
        // SAFETY: the socket is owned by the AsyncFd and deregistered when it drops.
        let fd = unsafe { AsyncFd::register_with_interest(s, tokio::io::Interest::READABLE) }
            .map_err(|e| anyhow!("registering the VRRP socket: {e}"))?;
        Ok(Self { fd, v6 })
    }

    /// The next VRRP packet: (TTL or hop limit, source, destination, VRRP message); a
    /// packet whose headers make no sense comes back with TTL 0 (dropped as `Ttl`).
    pub async fn recv(&self) -> io::Result<(u8, IpAddr, IpAddr, Vec<u8>)> {
        loop {
            let mut guard = self.fd.readable().await?;
            let got = guard.try_io(|s| if self.v6 { recv6(s.get_ref()) } else { recv4(s.get_ref()) });
            match got {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }
}

fn recv4(s: &Socket) -> io::Result<(u8, IpAddr, IpAddr, Vec<u8>)> {
    let mut buf = [MaybeUninit::<u8>::uninit(); 1500];
    let n = s.recv(&mut buf)?;
    // SAFETY: recv initialised the first n bytes.
    let bytes: Vec<u8> = buf[..n].iter().map(|b| unsafe { b.assume_init() }).collect();
    Ok(match ipv4_header(&bytes) {
        Some((ttl, src, dst, off)) => (ttl, src, dst, bytes[off..].to_vec()),
        None => (0, IpAddr::from([0u8; 4]), IpAddr::from([0u8; 4]), Vec::new()),
    })
}

fn recv6(s: &Socket) -> io::Result<(u8, IpAddr, IpAddr, Vec<u8>)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrIn6, recvmsg};
    let mut buf = vec![0u8; 1500];
    let mut cmsg = nix::cmsg_space!(libc::in6_pktinfo, libc::c_int);
    let (n, src, hops, dst) = {
        let mut iov = [io::IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<SockaddrIn6>(s.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::empty())
            .map_err(io::Error::from)?;
        let (mut hops, mut dst) = (0u8, Ipv6Addr::UNSPECIFIED);
        for c in msg.cmsgs().map_err(io::Error::from)? {
            match c {
                ControlMessageOwned::Ipv6HopLimit(h) => hops = u8::try_from(h).unwrap_or(0),
                ControlMessageOwned::Ipv6PacketInfo(p) => dst = Ipv6Addr::from(p.ipi6_addr.s6_addr),
                _ => {}
            }
        }
        (msg.bytes, msg.address.map(|a| a.ip()), hops, dst)
    };
    let Some(src) = src else { return Ok((0, IpAddr::V6(Ipv6Addr::UNSPECIFIED), IpAddr::V6(dst), Vec::new())) };
    buf.truncate(n);
    Ok((hops, IpAddr::V6(src), IpAddr::V6(dst), buf))
}

/// Sends adverts from one source address out of one interface, with TTL / hop limit 255.
pub struct Sender {
    sock: Socket,
    pub src: IpAddr,
    ifindex: u32,
}

impl Sender {
    pub fn open(iface: &str, ifindex: u32, src: IpAddr) -> Result<Self> {
        let s = raw_vrrp(src.is_ipv6())?;
        s.bind_device(Some(iface.as_bytes()))?;
        match src {
            IpAddr::V4(a) => {
                s.bind(&SocketAddr::V4(SocketAddrV4::new(a, 0)).into())
                    .with_context(|| format!("binding the VRRP source address {a}"))?;
                s.set_ttl_v4(255)?;
                s.set_multicast_ttl_v4(255)?;
                s.set_multicast_loop_v4(false)?;
                s.set_multicast_if_v4(&a)?;
            }
            IpAddr::V6(a) => {
                let scope = if a.is_unicast_link_local() { ifindex } else { 0 };
                s.bind(&SocketAddr::V6(SocketAddrV6::new(a, 0, 0, scope)).into())
                    .with_context(|| format!("binding the VRRP source address {a}"))?;
                s.set_unicast_hops_v6(255)?;
                s.set_multicast_hops_v6(255)?;
                s.set_multicast_loop_v6(false)?;
                s.set_multicast_if_v6(ifindex)?;
            }
        }
        Ok(Self { sock: s, src, ifindex })
    }

    pub fn send(&self, msg: &[u8], dst: IpAddr) -> io::Result<()> {
        let to = match dst {
            IpAddr::V4(a) => SocketAddr::V4(SocketAddrV4::new(a, 0)),
            IpAddr::V6(a) => {
                let scope = if a.is_multicast() || a.is_unicast_link_local() { self.ifindex } else { 0 };
                SocketAddr::V6(SocketAddrV6::new(a, 0, 0, scope))
            }
        };
        self.sock.send_to(msg, &to.into()).map(|_| ())
    }
}

/// Sends `count` unsolicited neighbour advertisements for `ip` (RFC 4861 §7.2.6: to all
/// nodes, Override set, our MAC as target link-layer address) from `src` (link-local).
pub fn unsolicited_na(ifindex: u32, src: Ipv6Addr, mac: [u8; 6], ip: Ipv6Addr, count: u32) -> Result<()> {
    let s = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6)).context("ICMPv6 socket")?;
    s.bind(&SocketAddr::V6(SocketAddrV6::new(src, 0, 0, ifindex)).into())
        .with_context(|| format!("binding {src} for neighbour advertisements"))?;
    s.set_multicast_hops_v6(255)?;
    s.set_multicast_if_v6(ifindex)?;
    // Type 136, code 0, checksum (the kernel fills it in), flags: Override (and Router:
    // a VIP is usually a gateway).
    let mut m = vec![136, 0, 0, 0, 0xa0, 0, 0, 0];
    m.extend_from_slice(&ip.octets());
    m.extend_from_slice(&[2, 1]); // target link-layer address option, 8 bytes
    m.extend_from_slice(&mac);
    let all_nodes = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1), 0, 0, ifindex));
    for _ in 0..count {
        s.send_to(&m, &all_nodes.into()).with_context(|| format!("sending neighbour advertisement for {ip}"))?;
    }
    Ok(())
}

/// Sends `count` gratuitous ARP requests for `ip` out of `ifindex` (sender = target = ip,
/// broadcast), so switches and neighbours learn the VIP's new home.
pub fn gratuitous_arp(ifindex: u32, mac: [u8; 6], ip: Ipv4Addr, count: u32) -> Result<()> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&0x0806u16.to_be_bytes());
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]); // Ethernet, IPv4, request
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ip.octets());
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&ip.octets());
    // SAFETY: plain socket(2); the fd is owned by `sock` below.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error()).context("packet socket for gratuitous ARP");
    }
    // SAFETY: fd is a fresh, valid descriptor we own.
    let sock = unsafe { <Socket as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain old data; zero is a valid start.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = 0x0806u16.to_be();
    sll.sll_ifindex = ifindex as i32;
    sll.sll_halen = 6;
    sll.sll_addr[..6].copy_from_slice(&[0xff; 6]);
    for _ in 0..count {
        // SAFETY: f and sll outlive the call; lengths are theirs.
        let r = unsafe {
            libc::sendto(
                sock.as_raw_fd(),
                f.as_ptr().cast(),
                f.len(),
                0,
                (&raw const sll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error()).with_context(|| format!("sending gratuitous ARP for {ip}"));
        }
    }
    Ok(())
}

/// Adds and removes addresses through rtnetlink.
#[derive(Clone)]
pub struct Addresses {
    handle: Handle,
}

impl Addresses {
    /// Opens a netlink connection served by a tokio task.
    pub fn new() -> Result<Self> {
        let (conn, handle, _) = rtnetlink::new_connection().context("opening rtnetlink")?;
        tokio::spawn(conn);
        Ok(Self { handle })
    }

    async fn index(&self, dev: &str) -> Result<u32> {
        let mut links = self.handle.link().get().match_name(dev.to_string()).execute();
        match links.try_next().await {
            Ok(Some(l)) => Ok(l.header.index),
            Ok(None) => bail!("no interface {dev}"),
            Err(e) => Err(anyhow!("interface {dev}: {e}")),
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
        if a.addr.is_ipv6() {
            // A VIP must answer at once, not after duplicate address detection (keepalived
            // adds its IPv6 VIPs the same way).
            m.attributes.push(AddressAttribute::Flags(rtnetlink::packet_route::address::AddressFlags::Nodad));
        }
        if let Some(l) = &a.label {
            m.attributes.push(AddressAttribute::Label(l.clone()));
        }
        if let Some(b) = a.broadcast {
            m.attributes.push(AddressAttribute::Broadcast(b));
        }
        m
    }

    /// Adds `a` on its `dev` (else `default_dev`); an address already there is left as is.
    pub async fn add(&self, a: &IpAddress, default_dev: &str) -> Result<bool> {
        let dev = a.dev.as_deref().unwrap_or(default_dev);
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
        let dev = a.dev.as_deref().unwrap_or(default_dev);
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

/// A route's protocol field: a name `ip route` knows or a number; keepalived's own (18) when
/// unset, so `ip route show proto keepalived` lists what we added.
fn route_protocol(p: Option<&str>) -> rtnetlink::packet_route::route::RouteProtocol {
    use rtnetlink::packet_route::route::RouteProtocol as P;
    match p {
        None | Some("keepalived") => P::KeepAlived,
        Some("static") => P::Static,
        Some("boot") => P::Boot,
        Some("kernel") => P::Kernel,
        Some(other) => other.parse::<u8>().map(P::from).unwrap_or(P::KeepAlived),
    }
}

use rtnetlink::packet_route::route::RouteMessage;

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
    m = m.protocol(route_protocol(r.protocol.as_deref())).kind(match r.kind {
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
        None if r.kind == RouteType::Unicast && r.via.is_none() => RouteScope::Link,
        None => RouteScope::Universe,
    };
    m.scope(scope).build()
}

impl Addresses {
    async fn route_message(&self, r: &Route, default_dev: Option<&str>) -> Result<RouteMessage> {
        use rtnetlink::RouteMessageBuilder;
        let dev = r.dev.as_deref().or(if r.kind == RouteType::Unicast { default_dev } else { None });
        let index = match dev {
            Some(d) => Some(self.index(d).await?),
            None => None,
        };
        Ok(match r.dest {
            IpAddr::V4(d) => {
                let mut b = RouteMessageBuilder::<Ipv4Addr>::new().destination_prefix(d, r.prefix);
                if let Some(IpAddr::V4(g)) = r.via {
                    b = b.gateway(g);
                }
                if let Some(IpAddr::V4(s)) = r.src {
                    b = b.pref_source(s);
                }
                finish(b, index, r)
            }
            IpAddr::V6(d) => {
                let mut b = RouteMessageBuilder::<Ipv6Addr>::new().destination_prefix(d, r.prefix);
                if let Some(IpAddr::V6(g)) = r.via {
                    b = b.gateway(g);
                }
                if let Some(IpAddr::V6(s)) = r.src {
                    b = b.pref_source(s);
                }
                finish(b, index, r)
            }
        })
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
    pub async fn add_route(&self, r: &Route, default_dev: Option<&str>) -> Result<bool> {
        let m = self.route_message(r, default_dev).await?;
        match self.handle.route().add(m).execute().await {
            Ok(()) => Ok(true),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EEXIST => Ok(false),
            Err(e) => Err(anyhow!("adding route {}/{}: {e}", r.dest, r.prefix)),
        }
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
}
