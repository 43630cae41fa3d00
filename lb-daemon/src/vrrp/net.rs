//! VRRP's I/O: raw IPv4 sockets (protocol 112) for adverts, addresses through rtnetlink,
//! gratuitous ARP through a packet socket, and interface facts from getifaddrs.

use std::{
    io,
    mem::MaybeUninit,
    net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4},
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
use crate::config::{IpAddress, Scope};

/// An interface's index, MAC, first IPv4 address and whether it is up and running.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub mac: Option<[u8; 6]>,
    pub ipv4: Option<Ipv4Addr>,
    pub running: bool,
}

/// Reads `name` from getifaddrs (works in any network namespace, unlike /sys).
pub fn link(name: &str) -> Result<Link> {
    let index = nix::net::if_::if_nametoindex(name).with_context(|| format!("no interface {name}"))?;
    let mut l = Link { index, mac: None, ipv4: None, running: false };
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
        }
    }
    Ok(l)
}

/// Whether `name` is up with carrier: track_interface and the instance's own interface.
pub fn is_running(name: &str) -> bool {
    link(name).is_ok_and(|l| l.running)
}

/// Receives adverts on one interface (multicast group joined, or unicast).
pub struct Receiver {
    fd: AsyncFd<Socket>,
}

impl Receiver {
    pub fn open(iface: &str, ifindex: u32, group: Option<Ipv4Addr>) -> Result<Self> {
        let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(i32::from(PROTO_VRRP))))
            .context("raw VRRP socket")?;
        s.bind_device(Some(iface.as_bytes())).with_context(|| format!("binding the VRRP socket to {iface}"))?;
        if let Some(g) = group {
            s.join_multicast_v4_n(&g, &InterfaceIndexOrAddress::Index(ifindex))
                .with_context(|| format!("joining {g} on {iface}"))?;
        }
        s.set_nonblocking(true)?;
        // SAFETY: the socket is owned by the AsyncFd and deregistered when it drops.
        let fd = unsafe { AsyncFd::register_with_interest(s, tokio::io::Interest::READABLE) }
            .map_err(|e| anyhow!("registering the VRRP socket: {e}"))?;
        Ok(Self { fd })
    }

    /// The next VRRP packet: (TTL, source, destination, VRRP message).
    pub async fn recv(&self) -> io::Result<(u8, IpAddr, IpAddr, Vec<u8>)> {
        loop {
            let mut guard = self.fd.readable().await?;
            let mut buf = [MaybeUninit::<u8>::uninit(); 1500];
            match guard.try_io(|s| s.get_ref().recv(&mut buf)) {
                Ok(Ok(n)) => {
                    // SAFETY: recv initialised the first n bytes.
                    let bytes: Vec<u8> = buf[..n].iter().map(|b| unsafe { b.assume_init() }).collect();
                    match ipv4_header(&bytes) {
                        Some((ttl, src, dst, off)) => return Ok((ttl, src, dst, bytes[off..].to_vec())),
                        None => return Ok((0, IpAddr::from([0u8; 4]), IpAddr::from([0u8; 4]), Vec::new())),
                    }
                }
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }
}

/// Sends adverts from one source address out of one interface, with TTL 255.
pub struct Sender {
    sock: Socket,
    pub src: Ipv4Addr,
}

impl Sender {
    pub fn open(iface: &str, src: Ipv4Addr) -> Result<Self> {
        let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(i32::from(PROTO_VRRP))))
            .context("raw VRRP socket")?;
        s.bind_device(Some(iface.as_bytes()))?;
        s.bind(&SocketAddr::V4(SocketAddrV4::new(src, 0)).into())
            .with_context(|| format!("binding the VRRP source address {src}"))?;
        s.set_ttl_v4(255)?;
        s.set_multicast_ttl_v4(255)?;
        s.set_multicast_loop_v4(false)?;
        s.set_multicast_if_v4(&src)?;
        Ok(Self { sock: s, src })
    }

    pub fn send(&self, msg: &[u8], dst: Ipv4Addr) -> io::Result<()> {
        self.sock.send_to(msg, &SocketAddr::V4(SocketAddrV4::new(dst, 0)).into()).map(|_| ())
    }
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
