//! VRRP's own sockets: raw sockets (protocol 112) for adverts, gratuitous ARP through a
//! packet socket, unsolicited neighbour advertisements through ICMPv6. Addresses, routes and
//! interface facts are `crate::netlink`'s.

use std::{
    io,
    mem::MaybeUninit,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6},
    os::fd::AsRawFd,
};

use anyhow::{Context as _, Result, anyhow};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;

use super::{
    ah::PROTO_AH,
    packet::{PROTO_VRRP, ipv4_header},
};

fn raw_vrrp(v6: bool) -> Result<Socket> {
    let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
    Socket::new(domain, Type::RAW, Some(Protocol::from(i32::from(PROTO_VRRP)))).context("raw VRRP socket")
}

/// `auth_type AH`: adverts come as IPsec AH (protocol 51), IPv4 only.
fn raw_ah() -> Result<Socket> {
    Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(i32::from(PROTO_AH)))).context("raw AH socket")
}

/// Receives adverts on one interface (multicast group joined, or unicast).
pub struct Receiver {
    fd: AsyncFd<Socket>,
    v6: bool,
    ah: bool,
}

impl Receiver {
    /// With `ah` (IPv4 only), `recv` returns whole AH packets, IP header included, for
    /// `ah::verify`.
    pub fn open(iface: &str, ifindex: u32, v6: bool, group: Option<IpAddr>, ah: bool) -> Result<Self> {
        let s = if ah && !v6 { raw_ah()? } else { raw_vrrp(v6)? };
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
        Ok(Self { fd, v6, ah: ah && !v6 })
    }

    /// The next VRRP packet: (TTL or hop limit, source, destination, VRRP message); a
    /// packet whose headers make no sense comes back with TTL 0 (dropped as `Ttl`).
    pub async fn recv(&self) -> io::Result<(u8, IpAddr, IpAddr, Vec<u8>)> {
        loop {
            let mut guard = self.fd.readable().await?;
            let got = guard.try_io(|s| {
                if self.v6 {
                    recv6(s.get_ref())
                } else if self.ah {
                    recv_ah(s.get_ref())
                } else {
                    recv4(s.get_ref())
                }
            });
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

/// An AH packet whole: (TTL, source, destination, the IPv4 packet).
fn recv_ah(s: &Socket) -> io::Result<(u8, IpAddr, IpAddr, Vec<u8>)> {
    let mut buf = [MaybeUninit::<u8>::uninit(); 1500];
    let n = s.recv(&mut buf)?;
    // SAFETY: recv initialised the first n bytes.
    let bytes: Vec<u8> = buf[..n].iter().map(|b| unsafe { b.assume_init() }).collect();
    if bytes.len() < 20 {
        return Ok((0, IpAddr::from([0u8; 4]), IpAddr::from([0u8; 4]), Vec::new()));
    }
    let (src, dst) = (
        IpAddr::from([bytes[12], bytes[13], bytes[14], bytes[15]]),
        IpAddr::from([bytes[16], bytes[17], bytes[18], bytes[19]]),
    );
    Ok((bytes[8], src, dst, bytes))
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

/// Sends adverts from one source address out of one interface: multicast with TTL / hop
/// limit 255, unicast with `unicast_ttl` (keepalived's `unicast_ttl`, default 255).
pub struct Sender {
    sock: Socket,
    pub src: IpAddr,
    ifindex: u32,
}

/// Sends whole IPv4 packets we build (`auth_type AH`: the kernel cannot add AH), out of one
/// interface; the kernel fills in the header checksum.
pub struct RawSender {
    sock: Socket,
}

/// IP_MULTICAST_IF by interface index and address (`ip_mreqn`): by address alone the kernel
/// takes the interface that has it, and refuses it (EINVAL) on a socket bound to another
/// one, as a VMAC's is (`use_vmac`: the source address is the base interface's).
fn multicast_if_v4(s: &Socket, src: Ipv4Addr, ifindex: u32) -> Result<()> {
    let mreqn = libc::ip_mreqn {
        imr_multiaddr: libc::in_addr { s_addr: 0 },
        imr_address: libc::in_addr { s_addr: u32::from(src).to_be() },
        imr_ifindex: i32::try_from(ifindex).context("interface index")?,
    };
    // SAFETY: mreqn outlives the call; the length is its size.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_IF,
            (&raw const mreqn).cast(),
            std::mem::size_of::<libc::ip_mreqn>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error()).context("IP_MULTICAST_IF");
    }
    Ok(())
}

impl RawSender {
    pub fn open(iface: &str, ifindex: u32, src: Ipv4Addr) -> Result<Self> {
        // IPPROTO_RAW implies IP_HDRINCL.
        let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(libc::IPPROTO_RAW)))
            .context("raw IPv4 socket for AH adverts")?;
        s.bind_device(Some(iface.as_bytes()))?;
        s.set_multicast_loop_v4(false)?;
        multicast_if_v4(&s, src, ifindex)?;
        Ok(Self { sock: s })
    }

    pub fn send(&self, packet: &[u8], dst: Ipv4Addr) -> io::Result<()> {
        self.sock.send_to(packet, &SocketAddr::V4(SocketAddrV4::new(dst, 0)).into()).map(|_| ())
    }
}

impl Sender {
    /// Bound to `src`, which must be the node's then; transparent (IP_TRANSPARENT) after
    /// that, so adverts keep leaving from `src` if it is removed from the node, as keepalived's
    /// do for a configured source (its header-included sends skip the kernel's check that the
    /// source is local); otherwise every send would fail (ENETUNREACH) while the instance
    /// stays MASTER, and a peer would take over beside it. For a source taken from the
    /// interface keepalived instead moves to another address of the interface or faults the
    /// instance; lb-daemon keeps advertising from the old one (no second master either).
    pub fn open(iface: &str, ifindex: u32, src: IpAddr, unicast_ttl: u8) -> Result<Self> {
        let s = raw_vrrp(src.is_ipv6())?;
        s.bind_device(Some(iface.as_bytes()))?;
        match src {
            IpAddr::V4(a) => {
                s.bind(&SocketAddr::V4(SocketAddrV4::new(a, 0)).into())
                    .with_context(|| format!("binding the VRRP source address {a}"))?;
                s.set_ip_transparent_v4(true).context("IP_TRANSPARENT")?;
                s.set_ttl_v4(u32::from(unicast_ttl))?;
                s.set_multicast_ttl_v4(255)?;
                s.set_multicast_loop_v4(false)?;
                multicast_if_v4(&s, a, ifindex)?;
            }
            IpAddr::V6(a) => {
                let scope = if a.is_unicast_link_local() { ifindex } else { 0 };
                s.bind(&SocketAddr::V6(SocketAddrV6::new(a, 0, 0, scope)).into())
                    .with_context(|| format!("binding the VRRP source address {a}"))?;
                s.set_ip_transparent_v6(true).context("IPV6_TRANSPARENT")?;
                s.set_unicast_hops_v6(u32::from(unicast_ttl))?;
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
/// nodes, Override set, our MAC as target link-layer address) from `src` (link-local) out of
/// `ifindex`. `src` need not be on that interface: a VMAC carries no link-local address when
/// adverts leave from its base (`vmac_xmit_base`), nor the base's when the source is
/// configured, so the socket binds it freely.
pub fn unsolicited_na(ifindex: u32, src: Ipv6Addr, mac: [u8; 6], ip: Ipv6Addr, count: u32) -> Result<()> {
    let s = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6)).context("ICMPv6 socket")?;
    s.set_freebind_v6(true).context("IPV6_FREEBIND for neighbour advertisements")?;
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
