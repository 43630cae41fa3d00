//! `vrrp_track_process`, the shell: the kernel's process events connector (NETLINK_CONNECTOR,
//! CN_IDX_PROC, PROC_CN_MCAST_LISTEN) and /proc. One thread of its own (so reading /proc on a
//! burst of events never holds a VRRP advert back) subscribes, scans /proc once, then feeds
//! fork, exec, comm and exit events to `track_process::Table` and sends each quorum change.
//! Lost events (ENOBUFS) mean a full rescan a second later, as keepalived does. No polling:
//! the thread sleeps in poll(2) until an event, a delay's end or its stop.
//!
//! The connector only exists in the initial network namespace; when the daemon runs in
//! another one, the thread moves there (it does nothing else with the network): pid 1's, or
//! the one `LB_PROC_EVENTS_NETNS` names (a path such as /proc/PID/ns/net, for sandboxes
//! where pid 1's cannot be opened).

use std::{
    io::Read as _,
    os::{
        fd::{AsFd as _, AsRawFd as _, FromRawFd as _, OwnedFd},
        unix::net::UnixStream,
    },
    sync::mpsc as std_mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::track_process::{self, Change, Seen, Table};
use crate::config::TrackProcess;

/// A tracked process's quorum changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcQuorum {
    /// Trackers are rebuilt on reload; changes from an older listener are ignored.
    pub generation: u64,
    pub idx: usize,
    /// `None`: the listener stopped on an error; the quorum is unknown from now on.
    pub up: Option<bool>,
}

/// Each tracker's count and quorum as the listener last saw them (read by the dumps; the
/// engine is not woken for a count that does not change a quorum).
pub type Counts = std::sync::Arc<std::sync::Mutex<Vec<(u32, bool)>>>;

fn publish(counts: &Counts, table: &Table) {
    if let Ok(mut c) = counts.lock() {
        *c = (0..table.specs().len()).map(|i| (table.count(i), table.up(i))).collect();
    }
}

/// The running listener; dropping it stops the thread.
pub struct Listener {
    _stop: UnixStream,
}

/// Starts the listener for `specs`; returns it with each tracker's quorum after the first
/// scan, or an error when process events cannot be received (nothing would be seen).
pub fn start<T: From<ProcQuorum> + Send + 'static>(
    generation: u64,
    specs: Vec<TrackProcess>,
    tx: mpsc::Sender<T>,
) -> Result<(Listener, Vec<bool>, Counts)> {
    let (stop, stopped) = UnixStream::pair().context("socketpair")?;
    let (ready_tx, ready_rx) = std_mpsc::sync_channel(1);
    let counts = Counts::default();
    let shared = counts.clone();
    std::thread::Builder::new()
        .name("lb-track-process".into())
        .spawn(move || {
            let sock = match subscribe() {
                Ok(s) => s,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let max = track_process::cmdline_len(&specs);
            let table = Table::new(specs, &scan(max));
            publish(&shared, &table);
            let _ = ready_tx.send(Ok((0..table.specs().len()).map(|i| table.up(i)).collect::<Vec<_>>()));
            run(generation, sock, stopped, table, max, &shared, &tx);
        })
        .context("starting the track_process thread")?;
    let ups = ready_rx
        .recv_timeout(Duration::from_secs(10))
        .map_err(|_| anyhow::anyhow!("the first /proc scan did not finish"))??;
    Ok((Listener { _stop: stop }, ups, counts))
}

const CN_IDX_PROC: u32 = 1;
const CN_VAL_PROC: u32 = 1;
const PROC_CN_MCAST_LISTEN: u32 = 1;
const PROC_CN_MCAST_IGNORE: u32 = 2;
const PROC_EVENT_NONE: u32 = 0;
const PROC_EVENT_FORK: u32 = 1;
const PROC_EVENT_EXEC: u32 = 2;
const PROC_EVENT_COMM: u32 = 0x200;
const PROC_EVENT_EXIT: u32 = 0x8000_0000;
const NLMSG_HDRLEN: usize = 16;
const CN_MSG_LEN: usize = 20;

/// Where the initial network namespace is found: `LB_PROC_EVENTS_NETNS` or pid 1's.
const NETNS_ENV: &str = "LB_PROC_EVENTS_NETNS";

/// A connector socket subscribed to process events: in our network namespace, or else (the
/// connector exists only in the initial one) in the initial namespace, which this thread
/// enters for good.
fn subscribe() -> Result<OwnedFd> {
    match connect() {
        Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
            let path = std::env::var_os(NETNS_ENV).unwrap_or_else(|| "/proc/1/ns/net".into());
            let shown = std::path::Path::new(&path).display().to_string();
            let ns = std::fs::File::open(&path).with_context(|| {
                format!("process events exist only in the initial network namespace; opening {shown} to reach it")
            })?;
            nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .with_context(|| format!("entering the network namespace {shown} for process events"))?;
            info!("track_process: listening to process events from the network namespace {shown}");
            connect().context("subscribing to process events")
        }
        r => r.context("subscribing to process events"),
    }
}

fn connect() -> std::io::Result<OwnedFd> {
    let err = std::io::Error::last_os_error;
    // SAFETY: plain socket(2); the descriptor is owned at once.
    let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, libc::NETLINK_CONNECTOR) };
    if fd < 0 {
        return Err(err());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_nl is plain data; zeroed is valid.
    let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    sa.nl_family = libc::AF_NETLINK as u16;
    sa.nl_groups = CN_IDX_PROC;
    // SAFETY: sa is a valid sockaddr_nl of the given length.
    let rc =
        unsafe { libc::bind(fd, (&raw const sa).cast(), std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t) };
    if rc < 0 {
        return Err(err());
    }
    set_rcvbuf(&sock, 1 << 20);
    if !send_op(&sock, PROC_CN_MCAST_LISTEN) {
        return Err(err());
    }
    Ok(sock)
}

/// Sends PROC_CN_MCAST_LISTEN or _IGNORE (the kernel counts listeners and stops producing
/// events when none is left, so a listener that ends says so).
fn send_op(sock: &OwnedFd, op: u32) -> bool {
    let mut msg = Vec::with_capacity(NLMSG_HDRLEN + CN_MSG_LEN + 4);
    msg.extend_from_slice(&((NLMSG_HDRLEN + CN_MSG_LEN + 4) as u32).to_ne_bytes());
    msg.extend_from_slice(&(libc::NLMSG_DONE as u16).to_ne_bytes());
    msg.extend_from_slice(&0u16.to_ne_bytes()); // flags
    msg.extend_from_slice(&0u32.to_ne_bytes()); // seq
    msg.extend_from_slice(&0u32.to_ne_bytes()); // pid
    msg.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
    msg.extend_from_slice(&CN_VAL_PROC.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes()); // seq
    msg.extend_from_slice(&0u32.to_ne_bytes()); // ack
    msg.extend_from_slice(&4u16.to_ne_bytes()); // len
    msg.extend_from_slice(&0u16.to_ne_bytes()); // flags
    msg.extend_from_slice(&op.to_ne_bytes());
    // SAFETY: msg is a valid buffer of its length.
    unsafe { libc::send(sock.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) >= 0 }
}

/// Says PROC_CN_MCAST_IGNORE when the listener ends, however it ends.
struct Unsubscribe<'a>(&'a OwnedFd);

impl Drop for Unsubscribe<'_> {
    fn drop(&mut self) {
        send_op(self.0, PROC_CN_MCAST_IGNORE);
    }
}

fn set_rcvbuf(sock: &OwnedFd, bytes: libc::c_int) {
    // SAFETY: setsockopt with an int option value.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&raw const bytes).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// The first `max` bytes of /proc/PID/cmdline (`None`: no tracker needs it).
fn read_cmdline(pid: u32, max: Option<usize>) -> Option<Vec<u8>> {
    let Some(max) = max else { return Some(Vec::new()) };
    let mut buf = vec![0u8; max];
    let n = std::fs::File::open(format!("/proc/{pid}/cmdline")).and_then(|mut f| f.read(&mut buf)).ok()?;
    buf.truncate(n);
    Some(buf)
}

/// Every running process (not zombies) with its comm and, if needed, its command line.
fn scan(max: Option<usize>) -> Vec<Seen> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        warn!("track_process: cannot read /proc");
        return Vec::new();
    };
    let mut out = Vec::new();
    for ent in dir.flatten() {
        let Some(pid) = ent.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // "PID (COMM) STATE ...": the comm may hold ')' and blanks; the last ')' ends it.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        if open >= close || stat[close + 1..].trim_start().starts_with('Z') {
            continue;
        }
        let Some(cmdline) = read_cmdline(pid, max) else { continue };
        out.push(Seen { pid, comm: stat[open + 1..close].to_string(), cmdline });
    }
    out
}

fn read_comm(pid: u32) -> Option<String> {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(comm.strip_suffix('\n').unwrap_or(&comm).to_string())
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// One process event, decoded (pid = thread group id; thread events are dropped).
#[derive(Debug, PartialEq, Eq)]
enum Event {
    Fork { parent: u32, child: u32 },
    Exec(u32),
    Comm(u32, String),
    Exit(u32),
}

/// Decodes a datagram from the connector: nlmsghdr, cn_msg, proc_event.
fn decode(b: &[u8]) -> Option<Event> {
    let c = NLMSG_HDRLEN;
    if (u32_at(b, c)?, u32_at(b, c + 4)?) != (CN_IDX_PROC, CN_VAL_PROC) {
        return None;
    }
    let ev = c + CN_MSG_LEN;
    let data = ev + 16; // what, cpu, timestamp_ns
    let (pid, tgid) = (u32_at(b, data)?, u32_at(b, data + 4)?);
    match u32_at(b, ev)? {
        PROC_EVENT_FORK => {
            let (child, child_tgid) = (u32_at(b, data + 8)?, u32_at(b, data + 12)?);
            (child == child_tgid).then_some(Event::Fork { parent: tgid, child })
        }
        PROC_EVENT_EXEC if pid == tgid => Some(Event::Exec(pid)),
        PROC_EVENT_COMM if pid == tgid => {
            let raw = b.get(data + 8..data + 24)?;
            let end = raw.iter().position(|&x| x == 0).unwrap_or(raw.len());
            Some(Event::Comm(pid, String::from_utf8_lossy(&raw[..end]).into_owned()))
        }
        PROC_EVENT_EXIT if pid == tgid => Some(Event::Exit(pid)),
        PROC_EVENT_NONE => None,
        _ => None,
    }
}

fn apply(table: &mut Table, ev: Event, max: Option<usize>, now: Instant) -> Vec<Change> {
    match ev {
        Event::Fork { parent, child } => table.fork(parent, child, now),
        Event::Exec(pid) => {
            // Gone already: its exit event follows.
            let (Some(comm), Some(cmdline)) = (read_comm(pid), read_cmdline(pid, max)) else { return Vec::new() };
            table.exec(pid, &comm, &cmdline, now)
        }
        Event::Comm(pid, comm) => table.comm(pid, &comm, now),
        Event::Exit(pid) => table.exit(pid, now),
    }
}

/// The thread's loop: events, delays and rescans until stopped or the engine is gone.
fn run<T: From<ProcQuorum>>(
    generation: u64,
    sock: OwnedFd,
    stopped: UnixStream,
    mut table: Table,
    max: Option<usize>,
    counts: &Counts,
    tx: &mpsc::Sender<T>,
) {
    let _unsubscribe = Unsubscribe(&sock);
    let mut rescan_at: Option<Instant> = None;
    let mut rcvbuf: libc::c_int = 1 << 20;
    let mut buf = vec![0u8; 4096];
    loop {
        let due = [table.next_due(), rescan_at].into_iter().flatten().min();
        // Until an event, the stop, or the next delay's end (-1: no delay pending).
        let timeout: libc::c_int = due.map_or(-1, |d| {
            let ms = d.saturating_duration_since(Instant::now()).as_millis().saturating_add(1);
            ms.min(3_600_000) as libc::c_int
        });
        let mut fds = [
            libc::pollfd { fd: sock.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: stopped.as_raw_fd(), events: libc::POLLIN, revents: 0 },
        ];
        // SAFETY: fds is a valid array of two pollfd.
        if unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout) } < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return give_up(generation, &table, tx, &format!("poll: {e}"));
            }
        }
        if fds[1].revents != 0 {
            return;
        }
        let mut changes = Vec::new();
        // At most this many events per wake, so delays and quorum changes are not held back
        // by a flood of events.
        for _ in 0..4096 {
            // SAFETY: buf is valid for its length; the source address is checked below.
            let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
            // SAFETY: recvfrom into buf and sa, both valid for the lengths given.
            let n = unsafe {
                libc::recvfrom(
                    sock.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                    (&raw mut sa).cast(),
                    &mut len,
                )
            };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EAGAIN) => break,
                    Some(libc::EINTR) => continue,
                    Some(libc::ENOBUFS) => {
                        // Events were lost: count everything again once things settle, with
                        // a bigger buffer (keepalived's answer).
                        rcvbuf = rcvbuf.saturating_mul(2);
                        set_rcvbuf(&sock, rcvbuf);
                        warn!("track_process: process events were lost; rescanning /proc in 1 s");
                        rescan_at = Some(Instant::now() + Duration::from_secs(1));
                        continue;
                    }
                    _ => return give_up(generation, &table, tx, &format!("receiving process events: {e}")),
                }
            }
            if sa.nl_pid != 0 {
                continue; // not from the kernel
            }
            if let Some(ev) = decode(&buf[..n as usize]) {
                changes.extend(apply(&mut table, ev, max, Instant::now()));
            }
        }
        let now = Instant::now();
        if rescan_at.is_some_and(|at| at <= now) {
            rescan_at = None;
            changes.extend(table.rescan(&scan(max), now));
            info!("track_process: /proc rescanned after lost events");
        }
        changes.extend(table.tick(now));
        publish(counts, &table);
        for c in changes {
            let name = &table.specs()[c.idx].name;
            info!(track_process = %name, count = table.count(c.idx), "Quorum {} for tracked process {name}", if c.up { "gained" } else { "lost" });
            if tx.blocking_send(ProcQuorum { generation, idx: c.idx, up: Some(c.up) }.into()).is_err() {
                return;
            }
        }
    }
}

/// The listener cannot go on: every tracker's quorum is unknown (a fault for the instances
/// tracking it, never a stale "up").
fn give_up<T: From<ProcQuorum>>(generation: u64, table: &Table, tx: &mpsc::Sender<T>, why: &str) {
    tracing::error!("track_process: {why}; process changes are no longer seen");
    for idx in 0..table.specs().len() {
        if tx.blocking_send(ProcQuorum { generation, idx, up: None }.into()).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datagram(what: u32, data: &[u32], comm: Option<&str>) -> Vec<u8> {
        let mut b = vec![0u8; NLMSG_HDRLEN];
        for v in [CN_IDX_PROC, CN_VAL_PROC, 0, 0] {
            b.extend_from_slice(&v.to_ne_bytes());
        }
        b.extend_from_slice(&[0u8; 4]);
        b.extend_from_slice(&what.to_ne_bytes());
        b.extend_from_slice(&[0u8; 12]);
        for v in data {
            b.extend_from_slice(&v.to_ne_bytes());
        }
        if let Some(c) = comm {
            let mut raw = [0u8; 16];
            raw[..c.len()].copy_from_slice(c.as_bytes());
            b.extend_from_slice(&raw);
        }
        b
    }

    #[test]
    fn events_decode_and_threads_are_dropped() {
        assert_eq!(
            decode(&datagram(PROC_EVENT_FORK, &[10, 10, 11, 11], None)),
            Some(Event::Fork { parent: 10, child: 11 })
        );
        assert_eq!(decode(&datagram(PROC_EVENT_FORK, &[10, 10, 12, 11], None)), None);
        assert_eq!(decode(&datagram(PROC_EVENT_EXEC, &[7, 7], None)), Some(Event::Exec(7)));
        assert_eq!(decode(&datagram(PROC_EVENT_EXEC, &[8, 7], None)), None);
        assert_eq!(decode(&datagram(PROC_EVENT_COMM, &[7, 7], Some("worker"))), Some(Event::Comm(7, "worker".into())));
        assert_eq!(decode(&datagram(PROC_EVENT_EXIT, &[7, 7, 0, 17, 1, 1], None)), Some(Event::Exit(7)));
        assert_eq!(decode(&datagram(PROC_EVENT_NONE, &[0, 0], None)), None);
        assert_eq!(decode(&[0u8; 20]), None);
    }
}
