//! Control-plane benchmarks: config test, start-up, reload and RSS at scale; bytes per
//! tracked flow; checker scale. Each runs lb-daemon in its own namespace and cleans up.

use std::{
    io::Write,
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use nix::sys::signal::Signal;
use serde_json::json;

use crate::stats;
use lb_tests::{
    daemon::{self, Daemon},
    netns::{Netns, addr, veth},
    servers::CheckServers,
};

/// `services` virtual servers × `reals` real servers each, no checkers; with `changed`, every
/// 100th real server (counted over all services, so the change is spread over them rather
/// than landing in one) gets weight 2: the "1% change".
fn scale_config(services: usize, reals: usize, changed: bool) -> String {
    let mut c = String::new();
    let mut n = 0usize;
    for s in 0..services {
        c.push_str(&format!(
            "virtual_server 203.0.113.10 {} {{\n lb_algo wrr\n lb_kind NAT\n protocol TCP\n",
            1000 + s
        ));
        for r in 0..reals {
            // 64 addresses × 64 ports: up to 4096 distinct real servers per service.
            let (host, port) = (11 + r % 64, 8000 + r / 64);
            let w = if changed && n.is_multiple_of(100) { 2 } else { 1 };
            c.push_str(&format!(" real_server 198.51.100.{host} {port} {{\n  weight {w}\n }}\n"));
            n += 1;
        }
        c.push_str("}\n");
    }
    c
}

/// A namespace with one interface for the daemon's XDP program.
fn lb_namespace(tag: &str) -> Result<(Netns, Netns)> {
    let lb = Netns::new(tag)?;
    let peer = Netns::new(&format!("{tag}p"))?;
    veth(&lb, "l0", &peer, "p0")?;
    addr(&lb, "l0", "198.51.100.1/24")?;
    Ok((lb, peer))
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The `elapsed_ms` of the `n`-th "reload applied" line.
fn reload_ms(d: &Daemon, n: usize, timeout: Duration) -> Result<f64> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let lines: Vec<String> = d.log().into_iter().filter(|l| l.contains("reload applied")).collect();
        if let Some(l) = lines.get(n) {
            let v = l.split("elapsed_ms=").nth(1).and_then(|r| r.split_whitespace().next()).context("no elapsed_ms")?;
            return v.trim_matches('"').parse().context("elapsed_ms");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    bail!("no reload #{n} within {timeout:?}:\n{}", d.log().join("\n"))
}

/// Config test, start-up, identical and 1% reloads, RSS, for each shape.
pub fn reload_scale(quick: bool, out: &mut dyn Write) -> Result<serde_json::Value> {
    let shapes: &[(usize, usize)] = if quick { &[(10, 100)] } else { &[(100, 100), (1, 4096)] };
    let reloads = if quick { 3 } else { 7 };
    writeln!(
        out,
        "| config | -t (ms) | start to ready (ms) | identical reload (ms) | 1% change reload (ms) | RSS (MiB) |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|")?;
    let mut rows = Vec::new();
    for &(services, reals) in shapes {
        let total = services * reals;
        let dir = std::env::temp_dir().join(format!("lbt-bench-scale-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let conf = dir.join(format!("{services}x{reals}.conf"));
        std::fs::write(&conf, scale_config(services, reals, false))?;
        let t = Instant::now();
        let st = std::process::Command::new(daemon::binary()?).arg("-t").arg("-f").arg(&conf).status()?;
        let check_ms = t.elapsed().as_secs_f64() * 1000.0;
        if !st.success() {
            bail!("{services}x{reals}: -t failed");
        }
        let (lb, _peer) = lb_namespace("bsc")?;
        let t = Instant::now();
        let d = Daemon::start(&lb, &conf, &daemon::pin_dir("bsc"), &["--interface", "l0"])?;
        let start_ms = t.elapsed().as_secs_f64() * 1000.0;
        let pid = d.pid().context("no pid")?;
        let mut same = Vec::new();
        let mut changed = Vec::new();
        let mut n = 0;
        for i in 0..reloads {
            d.signal(Signal::SIGHUP)?;
            same.push(reload_ms(&d, n, Duration::from_secs(60))?);
            n += 1;
            // 1% of the real servers change weight, alternately there and back.
            let changed_now = i % 2 == 0;
            std::fs::write(&conf, scale_config(services, reals, changed_now))?;
            d.signal(Signal::SIGHUP)?;
            changed.push(reload_ms(&d, n, Duration::from_secs(60))?);
            n += 1;
            std::fs::write(&conf, scale_config(services, reals, changed_now))?;
        }
        let rss = rss_kib(pid) as f64 / 1024.0;
        drop(d);
        let _ = std::fs::remove_dir_all(&dir);
        let (s, c) = (stats(&same), stats(&changed));
        writeln!(
            out,
            "| {services} × {reals} ({total} real servers) | {check_ms:.0} | {start_ms:.0} | {:.1} ({:.1}–{:.1}) | {:.1} ({:.1}–{:.1}) | {rss:.1} |",
            s.median, s.min, s.max, c.median, c.min, c.max
        )?;
        rows.push(json!({
            "services": services, "reals_per_service": reals, "config_test_ms": check_ms, "start_ms": start_ms,
            "identical_reload_ms": same, "changed_reload_ms": changed, "rss_mib": rss,
        }));
    }
    Ok(json!(rows))
}

/// Bytes per tracked flow: the kernel's memlock for the connection tables at 1M entries
/// (`bpftool map show`), and the per-connection slab object of IPVS measured in the 6.1 VM.
pub fn memory_per_flow(quick: bool, out: &mut dyn Write) -> Result<serde_json::Value> {
    let entries: u32 = if quick { 65_536 } else { 1 << 20 };
    let fx = lb_tests::fixture::Fixture::load_sized(entries)?;
    let pins = fx.pin_dir().to_path_buf();
    let memlock = |map: &str| -> Result<u64> {
        lb_tests::inspect::map_show(&pins.join(map))?["bytes_memlock"].as_u64().context("no bytes_memlock")
    };
    let ct4 = memlock(lb_common::consts::MAP_CONNTRACK4)? as f64 / f64::from(entries);
    let ct = memlock(lb_common::consts::MAP_CONNTRACK)? as f64 / f64::from(entries);
    let nat = memlock(lb_common::consts::MAP_NAT_REV)? as f64 / f64::from(entries);
    drop(fx);
    let ipvs = if quick { Err("--quick".to_string()) } else { ipvs_conn_bytes().map_err(|e| format!("{e:#}")) };
    writeln!(out, "| table | bytes per flow |\n|---|---:|")?;
    writeln!(out, "| `lb_conntrack4` (every tracked IPv4 flow), {entries} entries | {ct4:.0} |")?;
    writeln!(out, "| `lb_conntrack` (every tracked IPv6 flow), {entries} entries | {ct:.0} |")?;
    writeln!(out, "| `lb_nat_rev` (NAT flows add this) | {nat:.0} |")?;
    match &ipvs {
        Ok((obj, slab)) => writeln!(
            out,
            "| IPVS `ip_vs_conn` (6.1 kernel in the VM; object {obj} bytes) with slab overhead | {slab} |"
        )?,
        Err(why) => writeln!(out, "| IPVS `ip_vs_conn` | not measured: {why} |")?,
    }
    Ok(json!({
        "entries": entries, "conntrack4_bytes": ct4, "conntrack_bytes": ct, "nat_rev_bytes": nat,
        "ipvs_conn_object_bytes": ipvs.as_ref().ok().map(|v| v.0), "ipvs_conn_slab_bytes": ipvs.as_ref().ok().map(|v| v.1),
    }))
}

/// Object size and per-object slab footprint of IPVS's `ip_vs_conn` cache under the 6.1
/// kernel (from /sys/kernel/slab: SLUB merges caches, so /proc/slabinfo may not list it by
/// name).
fn ipvs_conn_bytes() -> Result<(u64, u64)> {
    let o = lb_tests::vm::run(
        "modprobe ip_vs && echo obj=$(cat /sys/kernel/slab/ip_vs_conn/object_size) slab=$(cat /sys/kernel/slab/ip_vs_conn/slab_size)",
        Duration::from_secs(300),
    )?;
    let field = |k: &str| -> Result<u64> {
        o.stdout
            .split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no {k} in the VM's output: {} {}", o.stdout, o.stderr))
    };
    Ok((field("obj=")?, field("slab=")?))
}

/// One checker type at scale: its block (`r` numbers the real server) and what to add at the
/// top level.
struct CheckerRun {
    label: &'static str,
    count: usize,
    block: fn(usize) -> String,
    top: fn() -> String,
    /// The real servers sit behind the veth in the peer namespace, as on another host: their
    /// side of each connection (kernel and threads) runs on a second CPU, the daemon and the
    /// receive processing of what reaches it (RPS) on the first, so the daemon's CPU time
    /// leaves out the real servers' work, as with remote ones (a softirq is charged to whatever
    /// task it interrupts, as on a real NIC). Otherwise they are local addresses and both ends
    /// of every connection run in the daemon's context.
    behind_link: bool,
}

impl CheckerRun {
    /// The real servers' /24 (`LINK_NET` behind the link, else `LOCAL_NET`).
    fn net(&self) -> &'static str {
        if self.behind_link { LINK_NET } else { LOCAL_NET }
    }
}

/// Real servers on the daemon's own interface, and behind the veth.
const LOCAL_NET: &str = "198.51.100";
const LINK_NET: &str = "192.0.2";

fn no_top() -> String {
    String::new()
}

/// The runs: 10k TCP_CHECK, and 1k of HTTP_GET and of each newer type, at `delay_loop 1`.
fn checker_runs(quick: bool) -> Vec<CheckerRun> {
    let (big, small) = if quick { (1_000, 100) } else { (10_000, 1_000) };
    vec![
        CheckerRun {
            label: "TCP_CHECK",
            count: big,
            block: |r| format!("TCP_CHECK {{\n connect_port {}\n connect_timeout 2\n }}", 9000 + r % 100),
            top: no_top,
            behind_link: false,
        },
        CheckerRun {
            label: "HTTP_GET",
            count: small,
            block: |_| {
                "HTTP_GET {\n url {\n path /\n status_code 200\n }\n connect_port 9200\n connect_timeout 2\n }".into()
            },
            top: no_top,
            behind_link: false,
        },
        CheckerRun {
            label: "UDP_CHECK",
            count: small,
            block: |_| "UDP_CHECK {\n connect_port 9300\n connect_timeout 2\n }".into(),
            top: no_top,
            behind_link: false,
        },
        CheckerRun {
            label: "DNS_CHECK",
            count: small,
            block: |_| "DNS_CHECK {\n connect_port 9353\n connect_timeout 2\n }".into(),
            top: no_top,
            behind_link: false,
        },
        CheckerRun {
            label: "PING_CHECK",
            count: small,
            block: |_| "PING_CHECK {\n connect_timeout 2\n }".into(),
            top: no_top,
            behind_link: false,
        },
        CheckerRun {
            label: "SMTP_CHECK",
            count: small,
            block: |_| "SMTP_CHECK {\n connect_port 9325\n connect_timeout 2\n }".into(),
            top: no_top,
            behind_link: false,
        },
        CheckerRun {
            label: "FILE_CHECK",
            count: small,
            block: |r| format!("FILE_CHECK {{\n track_file f{}\n }}", r % 10),
            top: || {
                let dir = std::env::temp_dir().join(format!("lbt-bench-chk-{}", std::process::id()));
                (0..10)
                    .map(|i| format!("track_file f{i} {{\n file \"{}/f{i}\"\n init_file 0\n}}\n", dir.display()))
                    .collect()
            },
            behind_link: false,
        },
        CheckerRun {
            label: "TCP_CHECK",
            count: big,
            block: |r| format!("TCP_CHECK {{\n connect_port {}\n connect_timeout 2\n }}", 9000 + r % 100),
            top: no_top,
            behind_link: true,
        },
    ]
}

/// Where the checks of `checker_conf` connect: real server `r`'s address, and for
/// TCP_CHECK the port its block names (`9000 + r % 100`).
fn tcp_check_targets(run: &CheckerRun) -> Vec<std::net::SocketAddr> {
    (0..run.count)
        .map(|r| {
            let ip = format!("{}.{}", run.net(), 11 + (r % 100) % 64);
            std::net::SocketAddr::new(ip.parse().expect("an IPv4 address"), 9000 + (r % 100) as u16)
        })
        .collect()
}

/// The kernel's share of a TCP check here: a bare loop on one thread in `ns` that opens and
/// closes (as the daemon does: a non-blocking connect, then close) one connection to each of
/// `targets` per second, in 100 slices of 10 ms: each slice's connects are started together
/// and waited for with one poll, as an event loop does. On CPU `pin` when given. Both ends of
/// a local connection run mostly in the connecting thread's context (behind the link only its
/// own side), as they do for the daemon, so its CPU time is the kernel's cost of the same
/// connections without the daemon's own work. Returns (connections per s, cores).
fn bare_connect_floor(
    ns: &Netns,
    targets: &[std::net::SocketAddr],
    pin_to: Option<usize>,
    window: Duration,
) -> Result<(f64, f64)> {
    use nix::{
        poll::{PollFd, PollFlags, PollTimeout, poll},
        time::{ClockId, clock_gettime},
    };
    use std::os::fd::AsFd as _;
    let thread_cpu = || -> Result<f64> {
        let t = clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)?;
        Ok(t.tv_sec() as f64 + t.tv_nsec() as f64 / 1e9)
    };
    ns.run(|| -> Result<(f64, f64)> {
        if let Some(cpu) = pin_to {
            pin(nix::unistd::Pid::from_raw(0), cpu)?;
        }
        let slice = Duration::from_millis(10);
        let per_slice = targets.len().div_ceil(100);
        let (cpu0, start) = (thread_cpu()?, Instant::now());
        let (mut done, mut next) = (0u64, start);
        'run: loop {
            for chunk in targets.chunks(per_slice) {
                if start.elapsed() >= window {
                    break 'run;
                }
                let mut pending = Vec::with_capacity(chunk.len());
                for t in chunk {
                    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
                    s.set_nonblocking(true)?;
                    match s.connect(&(*t).into()) {
                        Ok(()) => {}
                        Err(e) if e.raw_os_error() == Some(nix::libc::EINPROGRESS) => {}
                        Err(e) => bail!("bare connect to {t}: {e}"),
                    }
                    pending.push(s);
                }
                // Until every connect of the slice has completed (writable), 2 s at most.
                let deadline = Instant::now() + Duration::from_secs(2);
                let mut open = pending;
                while !open.is_empty() {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        bail!("{} bare connects did not complete within 2 s", open.len());
                    }
                    let mut fds: Vec<PollFd> =
                        open.iter().map(|s| PollFd::new(s.as_fd(), PollFlags::POLLOUT)).collect();
                    poll(&mut fds, PollTimeout::try_from(left.as_millis() as i32).unwrap_or(PollTimeout::MAX))?;
                    let ready: Vec<bool> = fds.iter().map(|f| f.revents().is_some_and(|r| !r.is_empty())).collect();
                    drop(fds);
                    let mut still = Vec::new();
                    for (s, r) in open.into_iter().zip(ready) {
                        if !r {
                            still.push(s);
                        } else if let Some(e) = s.take_error()? {
                            bail!("bare connect: {e}");
                        } else {
                            done += 1; // closed here, as the checker closes after the handshake
                        }
                    }
                    open = still;
                }
                next += slice;
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
        }
        let secs = start.elapsed().as_secs_f64();
        Ok((done as f64 / secs, (thread_cpu()? - cpu0) / secs))
    })?
}

/// Keeps `pid` (0: the calling thread) on `cpu`.
fn pin(pid: nix::unistd::Pid, cpu: usize) -> Result<()> {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu)?;
    nix::sched::sched_setaffinity(pid, &set).with_context(|| format!("pinning {pid} to CPU {cpu}"))
}

/// Keeps every thread of process `pid` on `cpu` (threads it starts later inherit it), until
/// a pass finds no thread it had not pinned.
fn pin_process(pid: u32, cpu: usize) -> Result<()> {
    let mut pinned = std::collections::BTreeSet::new();
    loop {
        let mut new = false;
        for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
            let tid: i32 = task?.file_name().to_string_lossy().parse()?;
            if pinned.insert(tid) {
                pin(nix::unistd::Pid::from_raw(tid), cpu)?;
                new = true;
            }
        }
        if !new {
            return Ok(());
        }
    }
}

/// The first two CPUs this process may run on (the daemon's, the real servers'), if two.
fn two_cpus() -> Option<(usize, usize)> {
    let set = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).ok()?;
    let mut cpus = (0..nix::sched::CpuSet::count()).filter(|c| set.is_set(*c).unwrap_or(false));
    Some((cpus.next()?, cpus.next()?))
}

fn checker_conf(run: &CheckerRun) -> String {
    let mut c = (run.top)();
    let mut r = 0usize;
    for s in 0..run.count.div_ceil(100) {
        c.push_str(&format!(
            "virtual_server 203.0.113.10 {} {{\n delay_loop 1\n lb_algo rr\n lb_kind NAT\n protocol TCP\n",
            1000 + s
        ));
        for i in 0..100.min(run.count - s * 100) {
            // Distinct real servers (address × port); every check goes to the responders.
            c.push_str(&format!(
                " real_server {}.{} {} {{\n {}\n }}\n",
                run.net(),
                11 + i % 64,
                20000 + s * 2 + i / 64,
                (run.block)(r)
            ));
            r += 1;
        }
        c.push_str("}\n");
    }
    c
}

/// UDP (9300: swallows datagrams), DNS (9353: answers every query with its id, RCODE 0) and
/// SMTP (9325: 220, 250 to HELO, 221 to QUIT) responders on every address of `ns`.
struct Responders {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    smtp_fd: std::os::fd::RawFd,
}

impl Responders {
    fn start(ns: &Netns) -> Result<Self> {
        use std::{
            io::{BufRead as _, BufReader, Write as _},
            net::{TcpListener, UdpSocket},
        };
        let (udp, dns, smtp) = ns.run(|| -> Result<(UdpSocket, UdpSocket, TcpListener)> {
            let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
            s.set_reuse_address(true)?;
            s.bind(&std::net::SocketAddr::from(([0, 0, 0, 0], 9325)).into())?;
            s.listen(4096)?;
            Ok((UdpSocket::bind("0.0.0.0:9300")?, UdpSocket::bind("0.0.0.0:9353")?, s.into()))
        })??;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut threads = Vec::new();
        for (sock, dns) in [(udp, false), (dns, true)] {
            sock.set_read_timeout(Some(Duration::from_millis(200)))?;
            let stop = stop.clone();
            threads.push(std::thread::spawn(move || {
                let mut buf = [0u8; 1500];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = sock.recv_from(&mut buf) else { continue };
                    if dns && n >= 12 {
                        buf[2] |= 0x80; // a response
                        buf[3] &= 0xf0; // RCODE 0
                        let _ = sock.send_to(&buf[..n], from);
                    }
                }
            }));
        }
        let smtp_fd = std::os::fd::AsRawFd::as_raw_fd(&smtp);
        let smtp = std::sync::Arc::new(smtp);
        for _ in 0..4 {
            let (stop, smtp) = (stop.clone(), smtp.clone());
            threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Ok((mut conn, _)) = smtp.accept() else { continue };
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                    let Ok(read) = conn.try_clone() else { continue };
                    let mut lines = BufReader::new(read);
                    let mut line = String::new();
                    let _ = conn.write_all(b"220 bench ESMTP\r\n");
                    for reply in [&b"250 hello\r\n"[..], b"221 bye\r\n"] {
                        line.clear();
                        if lines.read_line(&mut line).unwrap_or(0) == 0 {
                            break;
                        }
                        let _ = conn.write_all(reply);
                    }
                }
            }));
        }
        Ok(Self { stop, threads, smtp_fd })
    }
}

impl Drop for Responders {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = nix::sys::socket::shutdown(self.smtp_fd, nix::sys::socket::Shutdown::Both);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The daemon's round counters (`checker-timing.json`, written within 250 ms of a change):
/// rounds done and the lateness histogram (ms → rounds).
fn round_timing(pins: &std::path::Path) -> (u64, std::collections::BTreeMap<u64, u64>) {
    let path = daemon::run_dir_for(pins).join("checker-timing.json");
    let v: serde_json::Value =
        std::fs::read(path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    let hist = v["late_ms"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| Some((p[0].as_u64()?, p[1].as_u64()?))).collect())
        .unwrap_or_default();
    (v["rounds_done"].as_u64().unwrap_or(0), hist)
}

/// p50, p99 and max (ms) of the rounds in `after` but not in `before`.
fn lateness(
    before: &std::collections::BTreeMap<u64, u64>,
    after: &std::collections::BTreeMap<u64, u64>,
) -> (u64, f64, f64, f64) {
    let delta: Vec<(u64, u64)> =
        after.iter().map(|(ms, n)| (*ms, n - before.get(ms).copied().unwrap_or(0))).filter(|(_, n)| *n > 0).collect();
    let total: u64 = delta.iter().map(|(_, n)| n).sum();
    let pct = |p: f64| {
        let want = (total as f64 * p).ceil().max(1.0) as u64;
        let mut cum = 0;
        for (ms, n) in &delta {
            cum += n;
            if cum >= want {
                return *ms as f64;
            }
        }
        f64::NAN
    };
    (total, pct(0.5), pct(0.99), delta.last().map_or(f64::NAN, |(ms, _)| *ms as f64))
}

/// Each checker type at `delay_loop 1` against responders in the daemon's own namespace: per
/// round, how late it started against its schedule (p50/p99/max), rounds completed per second
/// against the configured rate, the daemon's CPU (utime + stime over the window), its RSS and
/// the checks reported down. One daemon per type, one after the other.
pub fn checker_scale(quick: bool, out: &mut dyn Write) -> Result<serde_json::Value> {
    let window = Duration::from_secs(if quick { 5 } else { 10 });
    let dir = std::env::temp_dir().join(format!("lbt-bench-chk-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (lb, peer) = lb_namespace("bck")?;
    // Most runs: the checkers and the responders share the namespace, so checks go over
    // local delivery and what is measured is the daemon, not a link.
    for host in 11..75 {
        addr(&lb, "l0", &format!("{LOCAL_NET}.{host}/32"))?;
        addr(&peer, "p0", &format!("{LINK_NET}.{host}/24"))?;
    }
    addr(&lb, "l0", &format!("{LINK_NET}.1/24"))?;
    for ns in [&lb, &peer] {
        ns.sh("sysctl -qw net.ipv4.ip_local_port_range='1024 65000' net.ipv4.tcp_tw_reuse=1 net.core.somaxconn=4096 \
               net.ipv4.ping_group_range='0 2147483647'")?;
    }
    // Behind the link, the real servers' side runs on the second CPU (RPS hands what reaches
    // p0 there), the daemon's side on the first (what reaches l0).
    let cpus = two_cpus();
    if let Some((near, far)) = cpus {
        peer.sh(&format!("echo {:x} > /sys/class/net/p0/queues/rx-0/rps_cpus", 1u64 << far))?;
        lb.sh(&format!("echo {:x} > /sys/class/net/l0/queues/rx-0/rps_cpus", 1u64 << near))?;
    }
    let servers = CheckServers::start(&lb, 9000..9100u16, 9200)?;
    // Their threads too (started from a thread on that CPU, they inherit it).
    let far_servers = std::thread::scope(|s| {
        s.spawn(|| {
            if let Some((_, far)) = cpus {
                pin(nix::unistd::Pid::from_raw(0), far)?;
            }
            CheckServers::start(&peer, 9000..9100u16, 9200)
        })
        .join()
        .map_err(|_| anyhow::anyhow!("starting the far responders panicked"))?
    })?;
    let responders = Responders::start(&lb)?;
    writeln!(
        out,
        "| checks (delay_loop 1) | configured per s | completed per s | lateness p50 / p99 / max (ms) | goal p99 | daemon CPU (cores) | goal | RSS (MiB) | reported down |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")?;
    let (mut runs, mut floor) = (Vec::new(), Vec::new());
    for run in checker_runs(quick) {
        let near = match (run.behind_link, cpus) {
            (false, _) => None,
            (true, Some((near, _))) => Some(near),
            (true, None) => {
                writeln!(out, "| {} {} behind a link | skipped: one CPU |||||||| ", run.count, run.label)?;
                continue;
            }
        };
        let conf = dir.join(format!("{}-{}.conf", run.label, run.net()));
        std::fs::write(&conf, checker_conf(&run))?;
        let pins = daemon::pin_dir("bck");
        let d = Daemon::start(&lb, &conf, &pins, &["--interface", "l0"])?;
        let pid = d.pid().context("no pid")?;
        if let Some(cpu) = near {
            pin_process(pid, cpu)?;
        }
        // Let the first rounds (started together) spread out.
        std::thread::sleep(Duration::from_secs(3));
        let ((done0, hist0), cpu0, w0) = (round_timing(&pins), lb_tests::daemon::cpu_seconds(pid), Instant::now());
        std::thread::sleep(window);
        let ((done1, hist1), cpu1) = (round_timing(&pins), lb_tests::daemon::cpu_seconds(pid));
        let secs = w0.elapsed().as_secs_f64();
        let cpu = (cpu1 - cpu0) / secs;
        let rate = (done1 - done0) as f64 / secs;
        let (rounds, p50, p99, max) = lateness(&hist0, &hist1);
        let rss = rss_kib(pid) as f64 / 1024.0;
        let down = d
            .status()
            .ok()
            .and_then(|s| s["checks"].as_array().map(|c| c.iter().filter(|x| x["up"] == false).count()))
            .unwrap_or(0);
        drop(d);
        let (label, count) = (run.label, run.count);
        let shown = if run.behind_link {
            format!("{label}, real servers behind a veth (their side on another CPU than the daemon's)")
        } else {
            label.to_string()
        };
        // FILE_CHECK has no rounds: it reads its file when the file changes.
        let (configured, late) = if label == "FILE_CHECK" {
            ("none (on change)".to_string(), "-".to_string())
        } else {
            (count.to_string(), format!("{p50:.0} / {p99:.0} / {max:.0}"))
        };
        writeln!(
            out,
            "| {count} {shown} | {configured} | {rate:.0} | {late} | < 100 | {cpu:.2} | < 0.25 | {rss:.1} | {down} |"
        )?;
        runs.push(json!({
            "checker": label, "behind_link": run.behind_link, "count": count, "completed_per_s": rate, "rounds_in_window": rounds,
            "late_p50_ms": p50, "late_p99_ms": p99, "late_max_ms": max, "daemon_cpu_cores": cpu,
            "rss_mib": rss, "down": down, "window_s": secs,
        }));
        if label == "TCP_CHECK" {
            // What the kernel alone costs for the same connections, right after (docs/benchmarks.md).
            let targets = tcp_check_targets(&run);
            let (rate, cpu) = bare_connect_floor(&lb, &targets, near, window)?;
            let which = if run.behind_link { "behind the veth, on the daemon's CPU" } else { "local" };
            writeln!(
                out,
                "| {count} bare connect + close from one thread, {which}: the kernel's floor for the row above | {count} | {rate:.0} | - | - | {cpu:.2} | - | - | - |"
            )?;
            floor.push(json!({ "behind_link": run.behind_link, "connections": count, "completed_per_s": rate, "cpu_cores": cpu }));
        }
    }
    drop(responders);
    drop((servers, far_servers));
    drop((lb, peer));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(json!({ "runs": runs, "tcp_floor": floor, "goal": { "late_p99_ms": 100, "daemon_cpu_cores": 0.25 } }))
}
