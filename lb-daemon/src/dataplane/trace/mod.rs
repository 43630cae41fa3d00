//! `lb-daemon trace`: `lb_xdp`'s decision for each frame (interface, verdict, reason, service,
//! real server, flow stage, configuration generation, the tuple before any rewrite) read from
//! the pinned ring `lb_trace`, for the frames the filter in the pinned `lb_trace_cfg` matches;
//! printed as text and, with `--pcap`, written as pcap-ng with the decision as each packet's
//! comment. Works beside a running daemon or without one (the maps and links stay pinned).
//!
//! One tracer at a time owns `lb_trace_cfg` (its pid, start time and pid namespace are in
//! it). It turns tracing off when it stops (its count reached, SIGINT/SIGTERM/SIGHUP, an
//! error); if it is killed, the daemon's housekeeping (`clear_if_gone`) or the next tracer does.
//!
//! The decisions are pure (`filter`: names and ids to a `TraceCfg`; `record`: a record to
//! text; `pcapng`: the file format); this file is the shell.

mod filter;
mod pcapng;
mod record;

use std::{
    borrow::{Borrow, BorrowMut},
    io::Write as _,
    net::IpAddr,
    os::fd::{AsRawFd as _, RawFd},
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail};
use aya::maps::{Array, HashMap, Map, MapData, RingBuf};
pub use filter::{Filter, Owner, tracer_gone};
use lb_common::{
    RealDef, ServiceKey, ServiceValue, TraceCfg,
    consts::{MAP_REALS, MAP_SERVICES, MAP_TRACE, MAP_TRACE_CFG, TRACE_NONE, TRACE_RING_BYTES, TRACE_SNAP},
};
use record::Names;

use super::services;

/// What to trace and where to put it (`lb-daemon trace`'s options).
pub struct Options<'a> {
    pub pin_dir: &'a Path,
    /// `VIP:PORT[/PROTO]` of a configured service.
    pub service: Option<&'a str>,
    pub client: Option<IpAddr>,
    /// Reason names, as `lb-daemon stats` prints them (with or without `reason_`).
    pub reasons: &'a [String],
    /// Stop after this many records.
    pub count: Option<u64>,
    pub pcap: Option<&'a Path>,
}

/// How often the tracer checks that it still owns the filter and the pins are still there.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// How long names of services and real servers are trusted before they are read again.
const NAMES_FRESH: Duration = Duration::from_secs(2);
/// Records handled per wake-up at most: under a flood the ring never empties, and signals,
/// the pcap flush and the ownership check must still get their turn.
const BATCH: usize = 1024;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// SIGINT, SIGTERM and SIGHUP end the trace; without SA_RESTART, so `poll` returns at once.
fn catch_signals() -> Result<()> {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let action = SigAction::new(SigHandler::Handler(on_signal), SaFlags::empty(), SigSet::empty());
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only stores to an atomic.
        unsafe { sigaction(sig, &action) }.with_context(|| format!("installing a handler for {sig}"))?;
    }
    Ok(())
}

fn pinned(pin_dir: &Path, name: &str) -> Result<Map> {
    let path = pin_dir.join(name);
    let data = MapData::from_pin(&path).with_context(|| {
        format!("opening the pinned map {} (is lb-daemon running with the XDP data plane here?)", path.display())
    })?;
    Ok(Map::from_map_data(data)?)
}

/// A live process's start time (`/proc/PID/stat` field 22); None when there is none.
fn start_of(pid: u32) -> Option<u64> {
    filter::start_time(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The inode of this process's pid namespace.
fn pid_ns() -> Result<u64> {
    use std::os::unix::fs::MetadataExt as _;
    Ok(std::fs::metadata("/proc/self/ns/pid").context("reading /proc/self/ns/pid")?.ino())
}

fn me() -> Result<Owner> {
    let pid = std::process::id();
    let start = start_of(pid).ok_or_else(|| anyhow!("cannot read this process's start time from /proc"))?;
    Ok(Owner { pid, start, pid_ns: pid_ns()? })
}

/// Turns tracing off when the tracer `cfg` names is gone (killed before it could): for the
/// daemon's housekeeping. Returns the gone tracer's pid.
pub fn clear_if_gone<T: BorrowMut<MapData>>(cfg: &mut Array<T, TraceCfg>) -> Result<Option<u32>> {
    let current = cfg.get(&0, 0).with_context(|| format!("reading {MAP_TRACE_CFG}"))?;
    if !tracer_gone(&current, pid_ns()?, start_of) {
        return Ok(None);
    }
    cfg.set(0, TraceCfg::default(), 0).with_context(|| format!("writing {MAP_TRACE_CFG}"))?;
    Ok(Some(current.pid))
}

/// Owns the filter while tracing; turns it off when dropped (also on errors and panics).
struct Tracing {
    cfg: Array<MapData, TraceCfg>,
    owner: Owner,
}

impl Tracing {
    fn current(&self) -> Result<TraceCfg> {
        self.cfg.get(&0, 0).with_context(|| format!("reading {MAP_TRACE_CFG}"))
    }
}

impl Drop for Tracing {
    fn drop(&mut self) {
        // Only our own filter: another tracer may have taken over (see `check`).
        if self.current().is_ok_and(|c| filter::owned_by(&c, self.owner)) {
            let _ = self.cfg.set(0, TraceCfg::default(), 0);
        }
    }
}

/// Waits up to `timeout_ms` for records; false on a timeout or a signal.
fn wait_readable(fd: RawFd, timeout_ms: i32) -> Result<bool> {
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd for the call's duration.
    let n = unsafe { libc::poll(&mut p, 1, timeout_ms) };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() == std::io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(e).context("polling the trace ring");
    }
    Ok(n > 0)
}

fn clock_ns(id: nix::time::ClockId) -> i128 {
    nix::time::clock_gettime(id).map_or(0, |t| i128::from(t.tv_sec()) * 1_000_000_000 + i128::from(t.tv_nsec()))
}

/// Seconds east of UTC here, now.
fn utc_offset() -> i64 {
    // SAFETY: `time` with a null pointer only returns; `localtime_r` writes into our `tm`.
    unsafe {
        let t = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() { 0 } else { tm.tm_gmtoff }
    }
}

fn if_name(ifindex: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buf` has the IF_NAMESIZE bytes the call may write.
    let p = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: on success the buffer holds a NUL-terminated name.
    Some(unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned())
}

/// Every `(key, id)` in `lb_services`.
fn configured<T: Borrow<MapData>>(svc: &HashMap<T, ServiceKey, ServiceValue>) -> Result<Vec<(ServiceKey, u32)>> {
    svc.iter().map(|e| e.map(|(k, v)| (k, v.id)).with_context(|| format!("reading {MAP_SERVICES}"))).collect()
}

/// The names the records need, read from the pins on demand and forgotten after
/// `NAMES_FRESH` (ids are reused after a service or real server goes).
struct Namer {
    services: HashMap<MapData, ServiceKey, ServiceValue>,
    reals: Array<MapData, RealDef>,
    names: Names,
    read_at: Instant,
}

impl Namer {
    fn names_for(&mut self, svc: u32, real: u32, ifindex: u32) -> &Names {
        if self.read_at.elapsed() > NAMES_FRESH {
            self.names = Names::default();
            self.read_at = Instant::now();
        }
        // An id without a name (a service removed since) is remembered as such too, so a
        // flood of its frames does not read the maps once per record.
        if svc != TRACE_NONE && !self.names.services.contains_key(&svc) {
            let mut keys = configured(&self.services).unwrap_or_default();
            keys.sort();
            for (k, id) in keys {
                self.names.services.entry(id).or_insert_with(|| services::describe(&k));
            }
            self.names.services.entry(svc).or_insert_with(|| format!("#{svc}"));
        }
        if real != TRACE_NONE {
            let reals = &self.reals;
            self.names.reals.entry(real).or_insert_with(|| match reals.get(&real, 0) {
                Ok(r) if r.family != 0 => {
                    std::net::SocketAddr::new(services::ip_of(&r.addr, r.family), r.port).to_string()
                }
                _ => format!("#{real}"),
            });
        }
        self.names.ifaces.entry(ifindex).or_insert_with(|| if_name(ifindex).unwrap_or_else(|| format!("if{ifindex}")));
        &self.names
    }
}

/// The map id a pin refers to now (None: the pin is gone).
fn pinned_id(path: &Path) -> Option<u32> {
    MapData::from_pin(path).ok()?.info().ok().map(|i| i.id())
}

/// Runs the trace until the count is reached or a signal arrives.
pub fn run(opts: Options<'_>) -> Result<()> {
    let reasons = filter::reasons_named(opts.reasons)?;
    let services_map: HashMap<_, ServiceKey, ServiceValue> = HashMap::try_from(pinned(opts.pin_dir, MAP_SERVICES)?)?;
    let service = match opts.service {
        Some(spec) => Some(filter::resolve_service(&filter::parse_service(spec)?, &configured(&services_map)?)?),
        None => None,
    };
    let trace_filter = Filter { service, client: opts.client, reasons };
    let mut cfg_map: Array<MapData, TraceCfg> = Array::try_from(pinned(opts.pin_dir, MAP_TRACE_CFG)?)?;
    let mut ring =
        RingBuf::try_from(pinned(opts.pin_dir, MAP_TRACE)?).with_context(|| format!("opening {MAP_TRACE}"))?;
    let ring_pin: PathBuf = opts.pin_dir.join(MAP_TRACE);
    let ring_id = pinned_id(&ring_pin).ok_or_else(|| anyhow!("{} vanished", ring_pin.display()))?;
    let owner = me()?;

    let current = cfg_map.get(&0, 0).with_context(|| format!("reading {MAP_TRACE_CFG}"))?;
    if current.enabled != 0 && !tracer_gone(&current, owner.pid_ns, start_of) {
        bail!(
            "another lb-daemon trace (pid {}{}) is tracing this data plane; one tracer at a time",
            current.pid,
            if current.pid_ns == owner.pid_ns { "" } else { ", in another pid namespace" }
        );
    }
    // Off while the ring is emptied of what an earlier tracer left unread.
    cfg_map.set(0, TraceCfg::default(), 0).with_context(|| format!("writing {MAP_TRACE_CFG}"))?;
    // At most a ring's worth (records are larger than this many bytes each).
    for _ in 0..TRACE_RING_BYTES / 64 {
        if ring.next().is_none() {
            break;
        }
    }
    let mut tracing = Tracing { cfg: cfg_map, owner };
    catch_signals()?;
    tracing.cfg.set(0, filter::cfg(&trace_filter, owner), 0).with_context(|| format!("writing {MAP_TRACE_CFG}"))?;
    eprintln!(
        "lb-daemon trace: tracing {} (pid {}); Ctrl-C stops",
        describe_filter(&trace_filter, opts.service),
        owner.pid
    );

    let mut pcap = match opts.pcap {
        Some(path) => {
            let f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
            Some(pcapng::PcapNg::new(std::io::BufWriter::new(f), "lb-daemon trace", TRACE_SNAP as u32)?)
        }
        None => None,
    };
    let mut namer = Namer {
        services: services_map,
        reals: Array::try_from(pinned(opts.pin_dir, MAP_REALS)?)?,
        names: Names::default(),
        read_at: Instant::now(),
    };
    // The records' clock is CLOCK_MONOTONIC; the output's, the wall clock.
    let to_wall = clock_ns(nix::time::ClockId::CLOCK_REALTIME) - clock_ns(nix::time::ClockId::CLOCK_MONOTONIC);
    let tz = utc_offset();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let (mut seen, mut lost_reported, mut bad) = (0u64, 0u64, 0u64);
    let mut next_check = Instant::now() + CHECK_EVERY;
    let end = 'trace: loop {
        if STOP.load(Ordering::Relaxed) {
            break "stopped";
        }
        wait_readable(ring.as_raw_fd(), 200)?;
        for _ in 0..BATCH {
            if STOP.load(Ordering::Relaxed) {
                break;
            }
            let Some(item) = ring.next() else { break };
            let decoded = record::decode(&item);
            drop(item);
            let rec = match decoded {
                Ok(r) => r,
                Err(e) => {
                    bad += 1;
                    eprintln!("lb-daemon trace: skipped a record: {e}");
                    continue;
                }
            };
            let names = namer.names_for(rec.svc_id, rec.real_id, rec.ifindex);
            let wall = u64::try_from(i128::from(rec.ts_ns) + to_wall).unwrap_or(0);
            if writeln!(out, "{}", record::line(&rec, wall, tz, names)).is_err() {
                // Whoever read our output went away (a closed pipe).
                break 'trace "output closed";
            }
            if let Some(p) = pcap.as_mut() {
                p.packet(
                    rec.ifindex,
                    &names.iface(rec.ifindex),
                    wall,
                    record::captured(&rec),
                    rec.len_out,
                    &record::decision(&rec, names),
                )
                .context("writing the pcap-ng file")?;
            }
            seen += 1;
            if opts.count.is_some_and(|n| seen >= n) {
                break 'trace "count reached";
            }
        }
        if let Some(p) = pcap.as_mut() {
            p.flush().context("writing the pcap-ng file")?;
        }
        let _ = out.flush();
        if Instant::now() >= next_check {
            next_check = Instant::now() + CHECK_EVERY;
            let c = tracing.current()?;
            if !filter::owned_by(&c, owner) {
                bail!(
                    "tracing was turned off or taken over by another process (now: enabled {}, pid {})",
                    c.enabled,
                    c.pid
                );
            }
            if pinned_id(&ring_pin) != Some(ring_id) {
                break "the data plane's pins were removed or replaced (the daemon stopped?)";
            }
            if c.lost > lost_reported {
                eprintln!("lb-daemon trace: {} records lost so far (the ring was full)", c.lost);
                lost_reported = c.lost;
            }
        }
    };
    let lost = tracing.current().map(|c| c.lost).unwrap_or(0);
    drop(tracing);
    if let Some(p) = pcap.as_mut() {
        p.flush().context("writing the pcap-ng file")?;
    }
    let _ = out.flush();
    eprintln!("lb-daemon trace: {end}; {seen} records, {lost} lost (ring full), {bad} unreadable");
    Ok(())
}

fn describe_filter(f: &Filter, service: Option<&str>) -> String {
    let mut parts = Vec::new();
    if let Some(s) = service {
        parts.push(format!("service {s}"));
    }
    if let Some(c) = f.client {
        parts.push(format!("client {c}"));
    }
    if !f.reasons.is_empty() {
        let names: Vec<&str> = f.reasons.iter().map(|r| r.field_name().trim_start_matches("reason_")).collect();
        parts.push(format!("reasons {}", names.join(",")));
    }
    if parts.is_empty() { "every frame".into() } else { parts.join(", ") }
}
