//! Connection sync for the XDP data plane (keepalived's `lvs_sync_daemon`), on the wire as
//! the kernel's IPVS sync protocol version 1 (`msg`), so lb nodes and keepalived+IPVS nodes
//! exchange flows. The master scans its established flows (`bpf::conntrack`) every second and
//! multicasts what is new or changed; a backup applies what it receives to its own (and `lb_nat_rev`
//! for NAT), so a flow keeps its real server when the VIP moves. The protocol carries no
//! authentication: run it on a trusted link only (docs/scale-out.md).
//!
//! This file is the shell: one thread per role, its socket and the pinned maps. What is
//! sent and how entries translate are `xlate`'s pure functions.

pub mod auth;
pub mod msg;
pub mod xlate;

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV6, UdpSocket},
    path::Path,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use aya::maps::{Array, HashMap, MapData};
use lb_common::{FlowKey, FlowValue, NatRev, RealConns, consts::*};
use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, Socket, Type};
use tracing::{debug, info, warn};

use super::{
    SyncMcast, SyncWant,
    bpf::{conntrack::Conntrack, maps::pinned, monotonic_ns},
};
use xlate::Directory;

/// How often the master scans `lb_conntrack4`/`lb_conntrack`.
const SCAN_PERIOD: Duration = Duration::from_secs(1);
/// Entries sent per scan at most (the rest go at the next scans).
const SCAN_LIMIT: usize = 50_000;
/// How long a receive waits before the thread looks at its stop flag.
const RECV_TIMEOUT: Duration = Duration::from_millis(200);
/// Between two warnings of one kind.
const LOG_EVERY: Duration = Duration::from_secs(10);
/// Scans that start with a `msg::hello` when the sync starts (more than one: a datagram may
/// be lost, or reach a node before its sync runs).
const HELLO_SCANS: u32 = 3;
/// At most one full resend for others' hellos in this long: a starting node sends three, and
/// anyone on the link can send one (with no `lb_sync_auth_key`).
const RESEND_EVERY: Duration = Duration::from_secs(5);

/// What the sync has done since the daemon started, for `lb-daemon stats`.
#[derive(Debug, Default)]
pub struct Counters {
    sent_entries: AtomicU64,
    sent_datagrams: AtomicU64,
    send_errors: AtomicU64,
    received_datagrams: AtomicU64,
    applied: AtomicU64,
    skipped: AtomicU64,
    malformed: AtomicU64,
    other_sync_id: AtomicU64,
    unauthenticated: AtomicU64,
    replayed: AtomicU64,
    hellos: AtomicU64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncStats {
    pub role: Option<String>,
    pub interface: Option<String>,
    pub sync_id: Option<u32>,
    pub sent_entries: u64,
    pub sent_datagrams: u64,
    pub send_errors: u64,
    pub received_datagrams: u64,
    pub applied: u64,
    /// Entries for a service or real server not programmed here, or a state with no flow.
    pub skipped: u64,
    /// Datagrams dropped whole: not version 1, or structurally broken.
    pub malformed: u64,
    /// Datagrams for another sync id.
    pub other_sync_id: u64,
    /// With `lb_sync_auth_key`: datagrams without a trailer or whose tag does not match.
    #[serde(default)]
    pub unauthenticated: u64,
    /// With `lb_sync_auth_key`: datagrams whose counter was not above the sender's last.
    #[serde(default)]
    pub replayed: u64,
    /// Other nodes' requests (`msg::hello`, a node whose sync started) to send every flow
    /// again.
    #[serde(default)]
    pub hellos: u64,
}

impl Counters {
    pub fn snapshot(&self, want: Option<&SyncWant>) -> SyncStats {
        SyncStats {
            role: want.map(|w| w.role.name().to_string()),
            interface: want.map(|w| w.interface.clone()),
            sync_id: want.map(|w| w.sync_id),
            sent_entries: self.sent_entries.load(Relaxed),
            sent_datagrams: self.sent_datagrams.load(Relaxed),
            send_errors: self.send_errors.load(Relaxed),
            received_datagrams: self.received_datagrams.load(Relaxed),
            applied: self.applied.load(Relaxed),
            skipped: self.skipped.load(Relaxed),
            malformed: self.malformed.load(Relaxed),
            other_sync_id: self.other_sync_id.load(Relaxed),
            unauthenticated: self.unauthenticated.load(Relaxed),
            replayed: self.replayed.load(Relaxed),
            hellos: self.hellos.load(Relaxed),
        }
    }
}

/// What the sync thread shares with the data plane.
#[derive(Clone)]
pub struct Shared {
    pub directory: Arc<RwLock<Directory>>,
    pub counters: Arc<Counters>,
    /// Held around every read-modify-write of `lb_real_expired` (the data plane's
    /// `reconcile_conns` and the backup's credits for flows it receives).
    pub expired_lock: Arc<Mutex<()>>,
    /// Set by the backup on another node's `msg::hello`: the master sends every flow of its
    /// own again at its next scan.
    pub resend: Arc<AtomicBool>,
}

/// The running sync threads (master, backup or both); stopped (and joined) on drop.
pub struct CtSync {
    pub want: SyncWant,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Drop for CtSync {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn ifindex(name: &str) -> Result<u32> {
    nix::net::if_::if_nametoindex(name).with_context(|| format!("interface {name}"))
}

/// The largest datagram the interface carries unfragmented (the kernel's default
/// `sync_maxlen`): its MTU less the IPv4 and UDP headers.
fn maxlen(iface: &str) -> usize {
    std::fs::read_to_string(format!("/sys/class/net/{iface}/mtu"))
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .map_or(1472, |m| m.saturating_sub(28))
}

fn mreqn(group: Ipv4Addr, index: u32) -> libc::ip_mreqn {
    libc::ip_mreqn {
        imr_multiaddr: libc::in_addr { s_addr: u32::from_ne_bytes(group.octets()) },
        imr_address: libc::in_addr { s_addr: 0 },
        imr_ifindex: index as i32,
    }
}

fn setsockopt<T>(s: &Socket, level: i32, name: i32, value: &T, what: &str) -> Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: `value` is a live T of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| what.to_string());
    }
    Ok(())
}

/// Where datagrams go: the configured group and port, else 224.0.0.81:8848.
fn destination(m: &SyncMcast) -> SocketAddr {
    SocketAddr::new(m.group.unwrap_or(IpAddr::V4(msg::DEFAULT_GROUP)), m.port.unwrap_or(msg::DEFAULT_PORT))
}

fn domain(dest: &SocketAddr) -> Domain {
    if dest.is_ipv6() { Domain::IPV6 } else { Domain::IPV4 }
}

/// The master's socket: bound to the interface, multicast out of it with the TTL (1 by
/// default), no loop.
fn send_socket(iface: &str, dest: &SocketAddr, ttl: u8) -> Result<UdpSocket> {
    let s = Socket::new(domain(dest), Type::DGRAM, Some(Protocol::UDP)).context("UDP socket")?;
    s.bind_device(Some(iface.as_bytes())).with_context(|| format!("binding to {iface}"))?;
    let index = ifindex(iface)?;
    if dest.is_ipv6() {
        s.set_multicast_if_v6(index).context("IPV6_MULTICAST_IF")?;
        s.set_multicast_hops_v6(u32::from(ttl)).context("IPV6_MULTICAST_HOPS")?;
        s.set_multicast_loop_v6(false).context("IPV6_MULTICAST_LOOP")?;
    } else {
        let m = mreqn(Ipv4Addr::UNSPECIFIED, index);
        setsockopt(&s, libc::IPPROTO_IP, libc::IP_MULTICAST_IF, &m, "IP_MULTICAST_IF")?;
        s.set_multicast_ttl_v4(u32::from(ttl)).context("IP_MULTICAST_TTL")?;
        s.set_multicast_loop_v4(false).context("IP_MULTICAST_LOOP")?;
    }
    Ok(s.into())
}

/// The backup's socket: the group's address and port, joined on the interface only.
fn recv_socket(iface: &str, group: &SocketAddr) -> Result<UdpSocket> {
    let s = Socket::new(domain(group), Type::DGRAM, Some(Protocol::UDP)).context("UDP socket")?;
    s.set_reuse_address(true).context("SO_REUSEADDR")?;
    s.bind_device(Some(iface.as_bytes())).with_context(|| format!("binding to {iface}"))?;
    let index = ifindex(iface)?;
    let zero: libc::c_int = 0;
    match group.ip() {
        IpAddr::V4(g) => {
            setsockopt(&s, libc::IPPROTO_IP, libc::IP_MULTICAST_ALL, &zero, "IP_MULTICAST_ALL")?;
            s.bind(&(*group).into()).with_context(|| format!("binding to {group}"))?;
            setsockopt(&s, libc::IPPROTO_IP, libc::IP_ADD_MEMBERSHIP, &mreqn(g, index), "joining the group")
                .with_context(|| format!("{g} on {iface}"))?;
        }
        IpAddr::V6(g) => {
            setsockopt(&s, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_ALL, &zero, "IPV6_MULTICAST_ALL")?;
            s.set_only_v6(true).context("IPV6_V6ONLY")?;
            let bind = SocketAddr::V6(SocketAddrV6::new(g, group.port(), 0, index));
            s.bind(&bind.into()).with_context(|| format!("binding to {bind}"))?;
            s.join_multicast_v6(&g, index).with_context(|| format!("joining {g} on {iface}"))?;
        }
    }
    s.set_read_timeout(Some(RECV_TIMEOUT)).context("SO_RCVTIMEO")?;
    Ok(s.into())
}

/// Starts the threads for `want`'s role: a master, a backup, or both on one sync id (nodes
/// that are all active, behind ECMP: each sends its own flows and applies the others'; what
/// it applied it does not send back, see `xlate::Sent::due`, and its own datagrams do not
/// come back to it, the send socket has multicast loop off). Socket and map errors come back
/// from here; later errors are counted and logged (rate-limited), never fatal.
pub fn start(pin_dir: &Path, want: &SyncWant, shared: Shared) -> Result<CtSync> {
    let sync_id = u8::try_from(want.sync_id).context("sync id above 255")?;
    let conntrack = || Conntrack::open(pin_dir);
    let iface = want.interface.clone();
    let dest = destination(&want.mcast);
    // Sockets and maps first: an error starts nothing.
    let master_parts = if want.role.sends() {
        let sock = send_socket(&iface, &dest, want.mcast.ttl.unwrap_or(1))?;
        let mut len = want.mcast.maxlen.map_or_else(|| maxlen(&iface), usize::from);
        if want.mcast.auth.is_some() {
            len = len.saturating_sub(auth::TRAILER_LEN);
        }
        Some((sock, conntrack()?, len))
    } else {
        None
    };
    let backup_parts = if want.role.receives() {
        let sock = recv_socket(&iface, &dest)?;
        let nat_rev: HashMap<MapData, FlowKey, NatRev> =
            HashMap::try_from(pinned(&pin_dir.join(MAP_NAT_REV))?).context("lb_nat_rev")?;
        let expired: Array<MapData, RealConns> =
            Array::try_from(pinned(&pin_dir.join(MAP_REAL_EXPIRED))?).context("lb_real_expired")?;
        Some((sock, BackupMaps { conntrack: conntrack()?, nat_rev, expired }))
    } else {
        None
    };
    let key = want.mcast.auth;
    // A node that applies flows asks the others for theirs as it starts (active-active).
    let hello = want.role.receives();
    let stop = Arc::new(AtomicBool::new(false));
    let mut sync = CtSync { want: want.clone(), stop: stop.clone(), threads: Vec::new() };
    if let Some((sock, conntrack, len)) = master_parts {
        let (shared, flag) = (shared.clone(), stop.clone());
        sync.threads.push(std::thread::Builder::new().name("ctsync-master".into()).spawn(move || {
            master(Outbound { sock, dest, sync_id, maxlen: len, key, hello }, conntrack, shared, flag)
        })?);
    }
    if let Some((sock, maps)) = backup_parts {
        let flag = stop.clone();
        sync.threads.push(
            std::thread::Builder::new()
                .name("ctsync-backup".into())
                .spawn(move || backup(sock, maps, sync_id, key, shared, flag))?,
        );
    }
    info!(
        role = want.role.name(),
        interface = want.interface,
        sync_id,
        group = %dest,
        authenticated = key.is_some(),
        "connection sync started (IPVS sync protocol v1)"
    );
    Ok(sync)
}

/// A warning at most every `LOG_EVERY`.
struct Limited(Option<Instant>);

impl Limited {
    fn ready(&mut self) -> bool {
        let now = Instant::now();
        if self.0.is_some_and(|t| now.duration_since(t) < LOG_EVERY) {
            return false;
        }
        self.0 = Some(now);
        true
    }
}

/// Where and how the master sends.
struct Outbound {
    sock: UdpSocket,
    dest: SocketAddr,
    sync_id: u8,
    maxlen: usize,
    key: Option<auth::SyncKey>,
    /// Whether to open with `msg::hello`s.
    hello: bool,
}

fn master(out: Outbound, conntrack: Conntrack<MapData>, shared: Shared, stop: Arc<AtomicBool>) {
    let Outbound { sock, dest, sync_id, maxlen, key, hello } = out;
    let mut sent = xlate::Sent::default();
    let mut counter = auth::first_counter();
    let mut warn_every = Limited(None);
    let mut hellos_left = if hello { HELLO_SCANS } else { 0 };
    let mut resent: Option<Instant> = None;
    let c = &shared.counters;
    while !stop.load(Relaxed) {
        let started = Instant::now();
        if shared.resend.swap(false, Relaxed) && resent.is_none_or(|t| t.elapsed() >= RESEND_EVERY) {
            // Everything is new again: sent at this scan (and the next, past the limit).
            sent = xlate::Sent::default();
            resent = Some(started);
        }
        let flows: Vec<(FlowKey, FlowValue)> = conntrack.entries();
        let due = sent.due(&flows, monotonic_ns(), SCAN_LIMIT);
        let entries: Vec<msg::Entry> = match shared.directory.read() {
            Ok(dir) => due.iter().filter_map(|(k, v)| xlate::to_entry(k, v, &dir)).collect(),
            Err(_) => Vec::new(),
        };
        let mut grams = msg::encode(sync_id, &entries, maxlen);
        if hellos_left > 0 {
            hellos_left -= 1;
            grams.insert(0, msg::hello(sync_id));
        }
        for gram in grams {
            let entries_in = u64::from(gram[4]);
            let gram = match &key {
                Some(k) => {
                    counter += 1;
                    auth::seal(k, &gram, counter)
                }
                None => gram,
            };
            match sock.send_to(&gram, dest) {
                Ok(_) => {
                    c.sent_datagrams.fetch_add(1, Relaxed);
                    c.sent_entries.fetch_add(entries_in, Relaxed);
                }
                Err(e) => {
                    c.send_errors.fetch_add(1, Relaxed);
                    if warn_every.ready() {
                        warn!("connection sync: sending to {dest}: {e}");
                    }
                }
            }
        }
        // Sleep the rest of the period in short steps, to stop promptly.
        while !stop.load(Relaxed) && started.elapsed() < SCAN_PERIOD {
            std::thread::sleep(RECV_TIMEOUT.min(SCAN_PERIOD.saturating_sub(started.elapsed())));
        }
    }
}

struct BackupMaps {
    conntrack: Conntrack<MapData>,
    nat_rev: HashMap<MapData, FlowKey, NatRev>,
    expired: Array<MapData, RealConns>,
}

/// Adds `delta` open flows to real server `real`'s live count, through `lb_real_expired`
/// (live = `lb_real_conns` - `lb_real_expired`; only the daemon writes the latter).
fn credit(maps: &mut BackupMaps, lock: &Mutex<()>, real: u32, delta: i64) {
    let Ok(_held) = lock.lock() else { return };
    if let Ok(before) = maps.expired.get(&real, 0) {
        let active = before.active.wrapping_sub(delta as u64);
        let _ = maps.expired.set(real, RealConns { active }, 0);
    }
}

fn apply(maps: &mut BackupMaps, lock: &Mutex<()>, a: &xlate::Apply) -> Result<()> {
    let before = maps.conntrack.get(&a.key).ok();
    maps.conntrack.insert(&a.key, a.value).context("writing a received flow")?;
    for (real, delta) in xlate::credits(before.as_ref(), &a.value) {
        credit(maps, lock, real, delta);
    }
    if let Some((k, v)) = &a.nat_rev {
        maps.nat_rev.insert(k, v, 0).context("lb_nat_rev")?;
    }
    Ok(())
}

fn backup(
    sock: UdpSocket,
    mut maps: BackupMaps,
    sync_id: u8,
    key: Option<auth::SyncKey>,
    shared: Shared,
    stop: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 65_536];
    let mut replay = auth::Replay::default();
    let (mut warn_every, mut debug_every) = (Limited(None), Limited(None));
    let c = &shared.counters;
    while !stop.load(Relaxed) {
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
            Err(e) => {
                if warn_every.ready() {
                    warn!("connection sync: receiving: {e}");
                }
                std::thread::sleep(RECV_TIMEOUT);
                continue;
            }
        };
        c.received_datagrams.fetch_add(1, Relaxed);
        let message = match &key {
            None => &buf[..n],
            Some(k) => match auth::open(k, &buf[..n]) {
                Ok((m, counter)) if replay.accept(from.ip(), counter) => m,
                Ok(_) => {
                    c.replayed.fetch_add(1, Relaxed);
                    continue;
                }
                Err(why) => {
                    c.unauthenticated.fetch_add(1, Relaxed);
                    if warn_every.ready() {
                        warn!("connection sync: datagram from {from} refused: {why:?} (lb_sync_auth_key)");
                    }
                    continue;
                }
            },
        };
        let m = match msg::decode(message) {
            Ok(m) => m,
            Err(e) => {
                c.malformed.fetch_add(1, Relaxed);
                if warn_every.ready() {
                    warn!("connection sync: datagram from {from} dropped: {e}");
                }
                continue;
            }
        };
        if !xlate::sync_id_matches(sync_id, m.sync_id) {
            c.other_sync_id.fetch_add(1, Relaxed);
            continue;
        }
        if m.is_hello() {
            c.hellos.fetch_add(1, Relaxed);
            shared.resend.store(true, Relaxed);
            continue;
        }
        c.skipped.fetch_add(m.skipped as u64, Relaxed);
        let now = monotonic_ns();
        let applies: Vec<Result<xlate::Apply, xlate::Skip>> = match shared.directory.read() {
            Ok(dir) => m.entries.iter().map(|e| xlate::from_entry(e, &dir, now)).collect(),
            Err(_) => continue,
        };
        for (e, a) in m.entries.iter().zip(applies) {
            match a {
                Ok(a) => match apply(&mut maps, &shared.expired_lock, &a) {
                    Ok(()) => {
                        c.applied.fetch_add(1, Relaxed);
                    }
                    Err(err) => {
                        c.skipped.fetch_add(1, Relaxed);
                        if warn_every.ready() {
                            warn!("connection sync: applying a flow: {err:#}");
                        }
                    }
                },
                Err(why) => {
                    c.skipped.fetch_add(1, Relaxed);
                    if debug_every.ready() {
                        debug!(
                            reason = ?why,
                            client = %SocketAddr::new(e.caddr, e.cport),
                            virtual_ = %SocketAddr::new(e.vaddr, e.vport),
                            real = %SocketAddr::new(e.daddr, e.dport),
                            "connection sync: entry skipped"
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_group_and_port_default_to_the_kernels() {
        assert_eq!(destination(&SyncMcast::default()).to_string(), "224.0.0.81:8848");
        let m = SyncMcast { port: Some(8850), group: Some("ff02::8:8".parse().unwrap()), ..Default::default() };
        assert_eq!(destination(&m).to_string(), "[ff02::8:8]:8850");
    }
}
