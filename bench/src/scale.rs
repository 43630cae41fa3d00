//! Control-plane benchmarks: config test, start-up, reload and RSS at scale; bytes per
//! tracked flow; checker scale. Each runs lb-daemon in its own namespace and cleans up.

use std::{
    io::{Read, Write},
    net::TcpListener,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use nix::sys::signal::Signal;
use serde_json::json;

use crate::stats;
use lb_tests::{
    daemon::{self, Daemon},
    netns::{Netns, addr, veth},
};

/// `services` virtual servers × `reals` real servers each, no checkers; `weight2` real
/// servers (counted from the first) get weight 2 (the "1% change").
fn scale_config(services: usize, reals: usize, weight2: usize) -> String {
    let mut c = String::new();
    let mut n = 0usize;
    for s in 0..services {
        c.push_str(&format!("virtual_server 203.0.113.10 {} {{\n lb_algo wrr\n lb_kind DR\n protocol TCP\n", 1000 + s));
        for r in 0..reals {
            // 64 addresses × 64 ports: up to 4096 distinct real servers per service.
            let (host, port) = (11 + r % 64, 8000 + r / 64);
            let w = if n < weight2 { 2 } else { 1 };
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
        std::fs::write(&conf, scale_config(services, reals, 0))?;
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
            let weight2 = if i % 2 == 0 { total.div_ceil(100) } else { 0 };
            std::fs::write(&conf, scale_config(services, reals, weight2))?;
            d.signal(Signal::SIGHUP)?;
            changed.push(reload_ms(&d, n, Duration::from_secs(60))?);
            n += 1;
            std::fs::write(&conf, scale_config(services, reals, weight2))?;
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
    let ct = memlock(lb_common::consts::MAP_CONNTRACK)? as f64 / f64::from(entries);
    let nat = memlock(lb_common::consts::MAP_NAT_REV)? as f64 / f64::from(entries);
    drop(fx);
    let ipvs = if quick { Err("--quick".to_string()) } else { ipvs_conn_bytes().map_err(|e| format!("{e:#}")) };
    writeln!(out, "| table | bytes per flow |\n|---|---:|")?;
    writeln!(out, "| `lb_conntrack` (every tracked flow), {entries} entries | {ct:.0} |")?;
    writeln!(out, "| `lb_nat_rev` (NAT flows add this) | {nat:.0} |")?;
    match &ipvs {
        Ok((obj, slab)) => writeln!(
            out,
            "| IPVS `ip_vs_conn` (6.1 kernel in the VM; object {obj} bytes) with slab overhead | {slab} |"
        )?,
        Err(why) => writeln!(out, "| IPVS `ip_vs_conn` | not measured: {why} |")?,
    }
    Ok(json!({
        "entries": entries, "conntrack_bytes": ct, "nat_rev_bytes": nat,
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

/// Listeners answering TCP checks (accept and close) and HTTP checks (`200 OK`), counting
/// connections.
struct CheckServers {
    stop: Arc<AtomicBool>,
    tcp: Arc<AtomicU64>,
    http: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl CheckServers {
    fn start(ns: &Netns, tcp_ports: std::ops::Range<u16>, http_port: u16) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let (tcp, http) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let mut threads = Vec::new();
        // A deep accept queue: with std's 128, bursts of checks overflow it and the dropped
        // SYNs' 1 s retransmit would be measured as checker lateness.
        let listen = |port: u16| -> Result<TcpListener> {
            let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
            s.set_reuse_address(true)?;
            s.bind(&std::net::SocketAddr::from(([0, 0, 0, 0], port)).into())?;
            s.listen(4096)?;
            Ok(s.into())
        };
        let listeners = ns.run(move || -> Result<Vec<(TcpListener, bool)>> {
            let mut l = Vec::new();
            for p in tcp_ports {
                l.push((listen(p)?, false));
            }
            l.push((listen(http_port)?, true));
            Ok(l)
        })??;
        for (listener, is_http) in listeners {
            listener.set_nonblocking(true)?;
            let (stop, count) = (stop.clone(), if is_http { http.clone() } else { tcp.clone() });
            threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((mut s, _)) => {
                            count.fetch_add(1, Ordering::Relaxed);
                            if is_http {
                                // One thread per request: a slow client must not stall the rest.
                                std::thread::spawn(move || {
                                    let _ = s.set_nonblocking(false);
                                    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                                    let mut buf = [0u8; 1024];
                                    let _ = s.read(&mut buf);
                                    let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
                                });
                            }
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(1)),
                    }
                }
            }));
        }
        Ok(Self { stop, tcp, http, threads })
    }
}

impl Drop for CheckServers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// `tcp` TCP checks and `http` HTTP checks at `delay_loop 1`, all against local listeners:
/// the checks completed per second against the configured rate, and the daemon's CPU.
pub fn checker_scale(quick: bool, out: &mut dyn Write) -> Result<serde_json::Value> {
    let (tcp_checks, http_checks): (usize, usize) = if quick { (1_000, 100) } else { (10_000, 1_000) };
    let window = Duration::from_secs(if quick { 5 } else { 10 });
    let tcp_ports = 9000..9100u16;
    let mut c = String::new();
    let mut r = 0usize;
    for (kind, count) in [("TCP", tcp_checks), ("HTTP", http_checks)] {
        for s in 0..count.div_ceil(100) {
            c.push_str(&format!(
                "virtual_server 203.0.113.{} {} {{\n delay_loop 1\n lb_algo rr\n lb_kind DR\n protocol TCP\n",
                if kind == "TCP" { 10 } else { 11 },
                1000 + s
            ));
            for i in 0..100.min(count - s * 100) {
                let check = if kind == "TCP" {
                    format!("TCP_CHECK {{\n connect_port {}\n connect_timeout 2\n }}", 9000 + (r % 100))
                } else {
                    "HTTP_GET {\n url {\n path /\n status_code 200\n }\n connect_port 9200\n connect_timeout 2\n }"
                        .into()
                };
                // Distinct real servers (address × port); every check goes to the listeners.
                c.push_str(&format!(
                    " real_server 198.51.100.{} {} {{\n {check}\n }}\n",
                    11 + i % 64,
                    20000 + s * 2 + i / 64
                ));
                r += 1;
            }
            c.push_str("}\n");
        }
    }
    let dir = std::env::temp_dir().join(format!("lbt-bench-chk-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let conf = dir.join("checks.conf");
    std::fs::write(&conf, c)?;
    let (lb, peer) = lb_namespace("bck")?;
    // The checkers and the listeners share the namespace: checks go over loopback-like
    // local delivery, so what is measured is the daemon, not a link.
    for host in 11..75 {
        addr(&lb, "l0", &format!("198.51.100.{host}/32"))?;
    }
    lb.sh("sysctl -qw net.ipv4.ip_local_port_range='1024 65000' net.ipv4.tcp_tw_reuse=1 net.core.somaxconn=4096")?;
    let servers = CheckServers::start(&lb, tcp_ports, 9200)?;
    let d = Daemon::start(&lb, &conf, &daemon::pin_dir("bck"), &["--interface", "l0"])?;
    let pid = d.pid().context("no pid")?;
    // Let the first rounds (started together) spread out.
    std::thread::sleep(Duration::from_secs(3));
    let (t0, h0, cpu0, w0) = (
        servers.tcp.load(Ordering::Relaxed),
        servers.http.load(Ordering::Relaxed),
        lb_tests::daemon::cpu_seconds(pid),
        Instant::now(),
    );
    std::thread::sleep(window);
    let secs = w0.elapsed().as_secs_f64();
    let tcp_rate = (servers.tcp.load(Ordering::Relaxed) - t0) as f64 / secs;
    let http_rate = (servers.http.load(Ordering::Relaxed) - h0) as f64 / secs;
    let cpu = (lb_tests::daemon::cpu_seconds(pid) - cpu0) / secs;
    let rss = rss_kib(pid) as f64 / 1024.0;
    let down = d
        .status()
        .ok()
        .and_then(|s| s["checks"].as_array().map(|c| c.iter().filter(|x| x["up"] == false).count()))
        .unwrap_or(0);
    drop(d);
    drop(servers);
    drop((lb, peer));
    let _ = std::fs::remove_dir_all(&dir);
    writeln!(out, "| checks | configured per s | completed per s | daemon CPU (cores) | RSS (MiB) | reported down |")?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|")?;
    writeln!(
        out,
        "| {tcp_checks} TCP_CHECK | {tcp_checks} | {tcp_rate:.0} | {cpu:.2} (both kinds) | {rss:.1} | {down} |"
    )?;
    writeln!(out, "| {http_checks} HTTP_GET | {http_checks} | {http_rate:.0} | | | |")?;
    Ok(json!({
        "tcp_checks": tcp_checks, "http_checks": http_checks, "tcp_per_s": tcp_rate, "http_per_s": http_rate,
        "daemon_cpu_cores": cpu, "rss_mib": rss, "down": down, "window_s": secs,
    }))
}
