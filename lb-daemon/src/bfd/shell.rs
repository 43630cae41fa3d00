//! The BFD thread: receive sockets on UDP port 3784 (IPv4 and IPv6, TTL and destination
//! from ancillary data), one send socket per session (source port 49152-65535, TTL 255 or
//! the configured one), the sessions' timers, and the events the trackers read.

use std::{
    collections::BTreeMap,
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    os::fd::AsRawFd,
    time::Instant,
};

use anyhow::{Context as _, Result};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::{
    io::unix::AsyncFd,
    sync::{mpsc, watch},
};
use tracing::{debug, info, warn};

use super::{
    Events,
    session::{Event, Packet, Params, Session, State},
};
use crate::config::{self, BfdInstance};

/// RFC 5881: single-hop control packets go to this port (keepalived uses it for every hop
/// count).
pub const CONTROL_PORT: u16 = 3784;
/// RFC 5881: the source port range.
const SRC_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;

struct Live {
    cfg: BfdInstance,
    s: Session,
    sock: Socket,
    peer: SocketAddr,
    send_failed: bool,
}

struct Receiver {
    fd: AsyncFd<Socket>,
    v6: bool,
}

/// A received datagram: TTL (hop limit; 0 when not told), source, destination, bytes.
type Datagram = (u8, IpAddr, Option<IpAddr>, Vec<u8>);

impl Receiver {
    fn open(v6: bool) -> Result<Self> {
        use nix::sys::socket::{setsockopt, sockopt};
        let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
        let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
        s.set_reuse_address(true)?;
        let addr: SocketAddr = if v6 {
            s.set_only_v6(true)?;
            setsockopt(&s, sockopt::Ipv6RecvHopLimit, &true).context("IPV6_RECVHOPLIMIT")?;
            setsockopt(&s, sockopt::Ipv6RecvPacketInfo, &true).context("IPV6_RECVPKTINFO")?;
            (Ipv6Addr::UNSPECIFIED, CONTROL_PORT).into()
        } else {
            setsockopt(&s, sockopt::Ipv4RecvTtl, &true).context("IP_RECVTTL")?;
            setsockopt(&s, sockopt::Ipv4PacketInfo, &true).context("IP_PKTINFO")?;
            (Ipv4Addr::UNSPECIFIED, CONTROL_PORT).into()
        };
        s.bind(&addr.into()).with_context(|| format!("binding BFD's {addr}"))?;
        s.set_nonblocking(true)?;
        // SAFETY: the socket is owned by the AsyncFd and deregistered when it drops.
        let fd = unsafe { AsyncFd::register_with_interest(s, tokio::io::Interest::READABLE) }?;
        Ok(Self { fd, v6 })
    }

    async fn recv(&self) -> io::Result<Datagram> {
        loop {
            let mut guard = self.fd.readable().await?;
            if let Ok(r) = guard.try_io(|s| recv(s.get_ref(), self.v6)) {
                return r;
            }
        }
    }
}

fn recv(s: &Socket, v6: bool) -> io::Result<Datagram> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg};
    let mut buf = vec![0u8; 512];
    let mut cmsg = nix::cmsg_space!(libc::in6_pktinfo, libc::c_int, libc::in_pktinfo, libc::c_int);
    let mut iov = [io::IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<SockaddrStorage>(s.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::empty())
        .map_err(io::Error::from)?;
    let (mut ttl, mut dst) = (0u8, None);
    for c in msg.cmsgs().map_err(io::Error::from)? {
        match c {
            ControlMessageOwned::Ipv4Ttl(t) => ttl = u8::try_from(t).unwrap_or(0),
            ControlMessageOwned::Ipv6HopLimit(h) => ttl = u8::try_from(h).unwrap_or(0),
            ControlMessageOwned::Ipv4PacketInfo(p) => {
                dst = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(p.ipi_addr.s_addr))))
            }
            ControlMessageOwned::Ipv6PacketInfo(p) => dst = Some(IpAddr::V6(Ipv6Addr::from(p.ipi6_addr.s6_addr))),
            _ => {}
        }
    }
    let n = msg.bytes;
    let src = msg.address.and_then(|a| {
        if v6 {
            a.as_sockaddr_in6().map(|a| IpAddr::V6(a.ip()))
        } else {
            a.as_sockaddr_in().map(|a| IpAddr::V4(a.ip()))
        }
    });
    let src = src.unwrap_or(if v6 { IpAddr::V6(Ipv6Addr::UNSPECIFIED) } else { IpAddr::V4(Ipv4Addr::UNSPECIFIED) });
    buf.truncate(n);
    Ok((ttl, src, dst, buf))
}

/// The session's send socket: bound to its source address (if any) and a free port in
/// 49152-65535, sending with its TTL (hop limit).
fn send_socket(b: &BfdInstance, nbr: IpAddr) -> Result<Socket> {
    let domain = if nbr.is_ipv6() { Domain::IPV6 } else { Domain::IPV4 };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    let ip = b.source.unwrap_or(if nbr.is_ipv6() {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    });
    let span = u32::from(SRC_PORTS.end() - SRC_PORTS.start()) + 1;
    let first = rand::random_range(0..span);
    let mut bound = Err(io::Error::other("no port"));
    for k in 0..span {
        let port = SRC_PORTS.start() + ((first + k) % span) as u16;
        bound = s.bind(&SocketAddr::new(ip, port).into());
        match &bound {
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
            _ => break,
        }
    }
    bound.with_context(|| format!("binding a BFD source port on {ip}"))?;
    if nbr.is_ipv6() {
        s.set_unicast_hops_v6(u32::from(b.ttl()))?;
    } else {
        s.set_ttl_v4(u32::from(b.ttl()))?;
    }
    s.set_nonblocking(true)?;
    Ok(s)
}

fn params(b: &BfdInstance) -> Params {
    Params { min_rx: b.min_rx_us, min_tx: b.min_tx_us, idle_tx: b.idle_tx_us, mult: b.multiplier, passive: b.passive }
}

/// A fresh non-zero discriminator no session uses.
fn discriminator(live: &BTreeMap<String, Live>) -> u32 {
    loop {
        let d: u32 = rand::random();
        if d != 0 && !live.values().any(|l| l.s.local_discr == d) {
            return d;
        }
    }
}

pub fn run(mut cmd: mpsc::UnboundedReceiver<Vec<BfdInstance>>, events: watch::Sender<Events>) {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            warn!("BFD not running: its runtime: {e}");
            return;
        }
    };
    rt.block_on(async move {
        let mut live: BTreeMap<String, Live> = BTreeMap::new();
        let (mut rx4, mut rx6): (Option<Receiver>, Option<Receiver>) = (None, None);
        loop {
            let deadline = live.values().filter_map(|l| l.s.next_deadline()).min();
            tokio::select! {
                c = cmd.recv() => {
                    let Some(cfg) = c else { break };
                    reconfigure(&mut live, cfg, &events);
                    let (want4, want6) = (
                        live.values().any(|l| l.peer.is_ipv4()),
                        live.values().any(|l| l.peer.is_ipv6()),
                    );
                    for (want, rx, v6) in [(want4, &mut rx4, false), (want6, &mut rx6, true)] {
                        if !want {
                            *rx = None;
                        } else if rx.is_none() {
                            match Receiver::open(v6) {
                                Ok(r) => *rx = Some(r),
                                Err(e) => warn!("BFD cannot receive over IPv{}: {e:#}", if v6 { 6 } else { 4 }),
                            }
                        }
                    }
                }
                Ok(d) = async { rx4.as_ref().unwrap().recv().await }, if rx4.is_some() => {
                    on_datagram(&mut live, d, &events);
                }
                Ok(d) = async { rx6.as_ref().unwrap().recv().await }, if rx6.is_some() => {
                    on_datagram(&mut live, d, &events);
                }
                _ = async { tokio::time::sleep_until(deadline.unwrap().into()).await }, if deadline.is_some() => {
                    let now = Instant::now();
                    let names: Vec<String> = live
                        .iter()
                        .filter(|(_, l)| l.s.next_deadline().is_some_and(|t| t <= now))
                        .map(|(n, _)| n.clone())
                        .collect();
                    for name in names {
                        let d = discriminator(&live);
                        let Some(l) = live.get_mut(&name) else { continue };
                        let step = l.s.on_timer(now, d);
                        after(l, step, &events);
                    }
                }
            }
        }
    });
}

/// Starts, keeps or restarts sessions to match `cfg`.
fn reconfigure(live: &mut BTreeMap<String, Live>, cfg: Vec<BfdInstance>, events: &watch::Sender<Events>) {
    let gone: Vec<String> = live
        .iter()
        .filter(|(n, l)| !cfg.iter().any(|b| &b.name == *n && config::same(b, &l.cfg)))
        .map(|(n, _)| n.clone())
        .collect();
    for n in gone {
        live.remove(&n);
        events.send_modify(|e| {
            e.remove(&n);
        });
        info!(bfd = %n, "BFD session stopped");
    }
    for b in cfg {
        if live.contains_key(&b.name) {
            continue;
        }
        let Some(nbr) = b.neighbor else { continue };
        let sock = match send_socket(&b, nbr) {
            Ok(s) => s,
            Err(e) => {
                warn!(bfd = %b.name, "BFD session not started (it stays down): {e:#}");
                continue;
            }
        };
        let d = discriminator(live);
        let s = Session::new(params(&b), d, rand::random(), Instant::now());
        info!(bfd = %b.name, neighbor = %nbr, "BFD session started");
        let peer = SocketAddr::new(nbr, CONTROL_PORT);
        live.insert(b.name.clone(), Live { cfg: b, s, sock, peer, send_failed: false });
    }
    // keepalived's BFD process tells VRRP and the checkers every session's state at start
    // and at each reload (`bfd_register_workers`): a new session is down until it comes up.
    events.send_modify(|e| {
        for (n, l) in live.iter() {
            e.insert(n.clone(), l.s.state == State::Up);
        }
    });
}

fn on_datagram(live: &mut BTreeMap<String, Live>, (ttl, src, dst, bytes): Datagram, events: &watch::Sender<Events>) {
    let pkt = match Packet::parse(&bytes) {
        Ok(p) => p,
        Err(why) => {
            debug!(%src, "BFD packet discarded: {why}");
            return;
        }
    };
    let found = if pkt.your_discr == 0 {
        live.iter()
            .find(|(_, l)| l.peer.ip() == src && (l.cfg.source.is_none() || dst.is_none() || l.cfg.source == dst))
            .map(|(n, _)| n.clone())
    } else {
        live.iter().find(|(_, l)| l.s.local_discr == pkt.your_discr).map(|(n, _)| n.clone())
    };
    let Some(name) = found else {
        debug!(%src, your_discr = pkt.your_discr, "BFD packet for no session");
        return;
    };
    let d = discriminator(live);
    let Some(l) = live.get_mut(&name) else { return };
    // Generalized TTL security (RFC 5881 5; keepalived's max_hops).
    if ttl != 0 && ttl < l.cfg.min_rx_ttl() {
        debug!(bfd = %name, ttl, "BFD packet discarded: TTL below {}", l.cfg.min_rx_ttl());
        return;
    }
    if pkt.auth {
        debug!(bfd = %name, "BFD packet discarded: authentication is not in use");
        return;
    }
    let step = l.s.on_packet(Instant::now(), &pkt, d);
    after(l, step, events);
}

fn after(l: &mut Live, step: super::session::Step, events: &watch::Sender<Events>) {
    if let Some((from, to, diag)) = step.changed {
        let (tx, detect) = l.s.timers();
        let remote = l.s.remote_state.name();
        // How long the neighbour had been silent: the detection time, when it expired.
        let silent = l.s.last_seen.map(|t| t.elapsed());
        if from == State::Up || to == State::Up {
            info!(
                bfd = %l.cfg.name,
                diag,
                remote,
                tx = ?tx,
                detect = ?detect,
                silent = ?silent,
                "BFD ({}) Entering {} state",
                l.cfg.name,
                to.name()
            );
        } else {
            debug!(bfd = %l.cfg.name, diag, remote, "BFD ({}) Entering {} state", l.cfg.name, to.name());
        }
    }
    if let Some(e) = step.event {
        let up = e == Event::Up;
        events.send_modify(|m| {
            m.insert(l.cfg.name.clone(), up);
        });
    }
    if step.send {
        let bytes = l.s.packet().encode();
        match l.sock.send_to(&bytes, &l.peer.into()) {
            Ok(_) => l.send_failed = false,
            Err(e) if !l.send_failed => {
                l.send_failed = true;
                warn!(bfd = %l.cfg.name, "BFD send to {} failed: {e}", l.peer);
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// `idle_tx` paces a session that is not up, and is the interval it advertises until it
    /// is up (RFC 5880 6.8.3; keepalived's idle_tx).
    #[test]
    fn idle_tx_paces_a_session_until_it_is_up() {
        let l = config::parse_str("t.conf", "bfd_instance B {\n neighbor_ip 192.0.2.2\n min_tx 50\n idle_tx 3000\n}\n");
        assert!(!l.has_errors(), "{}", l.render());
        let t0 = Instant::now();
        let mut s = Session::new(params(&l.config.bfd_instances[0]), 7, 1, t0);
        assert!(s.on_timer(t0, 8).send);
        assert_eq!(s.packet().min_tx, 3_000_000, "advertised while down: idle_tx, not min_tx");
        // The next packet: the idle interval less 10-25% jitter.
        let next = s.next_deadline().map(|t| t - t0);
        assert!(next.is_some_and(|n| n >= Duration::from_millis(2250) && n <= Duration::from_millis(2700)), "{next:?}");
    }
}
