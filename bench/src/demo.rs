//! The demo scenario, shared by `cargo xtask demo` (which prints it) and a test (which makes
//! sure it keeps working): two load balancers in VRRP, three HTTP backends with health checks,
//! a client sending traffic. It shows the spread, a backend stopping (the checker takes it
//! out), the master killed (failover, with the gap measured), a reload under traffic, and the
//! maps and `status` at the end. Removes every namespace and pin it made, also on failure.
//!
//! ```text
//!  client c0 192.0.2.2 ── bridge ── lb-a l0 192.0.2.11 ┐  VI_WEB: 203.0.113.10 (the service)
//!                               └── lb-b l0 192.0.2.12 ┘
//!  lb-a l1 198.51.100.2 ┐
//!  lb-b l1 198.51.100.3 ┴── bridge ── backends 198.51.100.11-13 (gateway: VI_GW 198.51.100.1)
//! ```

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use nix::sys::signal::Signal;

use lb_tests::{
    addrs::{VIP4, backend4},
    capture::{self, AdvertCapture},
    daemon::{self, Daemon},
    netns::{Netns, addr, veth},
    servers::{HttpServer, http_ask, spread},
};

pub const VIP: Ipv4Addr = VIP4;
pub const REQUESTS: usize = 30;

/// The namespaces of the demo.
pub struct HaTopology {
    pub client: Netns,
    pub front: Netns,
    pub back: Netns,
    pub lbs: Vec<Netns>,
    pub backends: Vec<Netns>,
}

impl HaTopology {
    pub fn new() -> Result<Self> {
        let front = Netns::new("fsw")?;
        let back = Netns::new("bsw")?;
        for sw in [&front, &back] {
            sw.ip(&["link", "add", "br0", "type", "bridge"])?;
            sw.ip(&["link", "set", "br0", "up"])?;
        }
        let client = Netns::new("cli")?;
        veth(&client, "c0", &front, "p0")?;
        front.ip(&["link", "set", "p0", "master", "br0"])?;
        addr(&client, "c0", "192.0.2.2/24")?;
        // The service address is on the client's link: ARP finds whichever node is master.
        client.ip(&["route", "add", &format!("{VIP}/32"), "dev", "c0"])?;
        let mut lbs = Vec::new();
        for i in 0..2 {
            let lb = Netns::new(&format!("lb{i}"))?;
            let (fp, bp) = (format!("f{i}"), format!("b{i}"));
            veth(&lb, "l0", &front, &fp)?;
            veth(&lb, "l1", &back, &bp)?;
            front.ip(&["link", "set", &fp, "master", "br0"])?;
            back.ip(&["link", "set", &bp, "master", "br0"])?;
            addr(&lb, "l0", &format!("192.0.2.{}/24", 11 + i))?;
            addr(&lb, "l1", &format!("198.51.100.{}/24", 2 + i))?;
            lb.sh("sysctl -qw net.ipv4.ip_forward=1")?;
            // XDP_REDIRECT out of a veth needs NAPI at the far end (shared/notes/topologies.md).
            front.sh(&format!("ethtool -K {fp} gro on >/dev/null"))?;
            back.sh(&format!("ethtool -K {bp} gro on >/dev/null"))?;
            lbs.push(lb);
        }
        let mut backends = Vec::new();
        for i in 0..3 {
            let b = Netns::new(&format!("be{i}"))?;
            let port = format!("s{i}");
            veth(&b, "b0", &back, &port)?;
            back.ip(&["link", "set", &port, "master", "br0"])?;
            addr(&b, "b0", &format!("{}/24", backend4(i)))?;
            b.ip(&["route", "add", "default", "via", "198.51.100.1"])?;
            backends.push(b);
        }
        Ok(Self { client, front, back, lbs, backends })
    }

    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = [&self.client, &self.front, &self.back].iter().map(|n| n.name().to_string()).collect();
        v.extend(self.lbs.iter().chain(&self.backends).map(|n| n.name().to_string()));
        v
    }
}

/// Runs the demo with the configs in `configs` (demo.conf, demo-backup.conf), pinning under
/// `<pin_base>-a` and `<pin_base>-b`; `out` receives the narration.
pub fn run(configs: &Path, pin_base: &Path, out: &mut dyn std::io::Write) -> Result<()> {
    let pins: Vec<PathBuf> = ["a", "b"].iter().map(|s| PathBuf::from(format!("{}-{s}", pin_base.display()))).collect();
    for p in &pins {
        if p.exists() {
            bail!("{} exists: is an lb-daemon running? Stop it (its pins are its state) and retry", p.display());
        }
    }
    step(out, "topology: client — 2 load balancers (VRRP) — 3 HTTP backends (namespaces, veth, bridges)")?;
    let topo = HaTopology::new()?;
    let names = topo.names();
    let work = std::env::temp_dir().join(format!("lb-demo-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let result = with_topology(&topo, configs, &work, &pins, out);
    drop(topo);
    let _ = std::fs::remove_dir_all(&work);

    step(out, "cleanup")?;
    let left: Vec<String> = names.iter().filter(|n| Path::new("/run/netns").join(n).exists()).cloned().collect();
    writeln!(out, "  namespaces left: {}", if left.is_empty() { "none".into() } else { left.join(", ") })?;
    let pins_left: Vec<String> = pins.iter().filter(|p| p.exists()).map(|p| p.display().to_string()).collect();
    writeln!(out, "  pins left: {}", if pins_left.is_empty() { "none".into() } else { pins_left.join(", ") })?;
    result?;
    if !left.is_empty() || !pins_left.is_empty() {
        bail!("the demo left state behind");
    }
    Ok(())
}

/// Client requests through the VIP, each on a new connection: who answered.
fn requests(topo: &HaTopology, n: usize) -> Vec<Result<String, String>> {
    let vip: SocketAddr = (VIP, 80).into();
    (0..n).map(|_| http_ask(&topo.client, vip, "/")).collect()
}

fn wait(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Result<()> {
    if lb_tests::servers::wait_until(timeout, &mut f) { Ok(()) } else { bail!("timed out waiting for {what}") }
}

fn with_topology(
    topo: &HaTopology,
    configs: &Path,
    work: &Path,
    pins: &[PathBuf],
    out: &mut dyn std::io::Write,
) -> Result<()> {
    let mut servers: Vec<Option<HttpServer>> = Vec::new();
    for (i, b) in topo.backends.iter().enumerate() {
        let bind: SocketAddr = (backend4(i), 80).into();
        servers.push(Some(HttpServer::start(b, &format!("backend{}", i + 1), bind, None, None)?));
    }
    writeln!(
        out,
        "  backends: Python http.server on {} (/health answers \"ok\")",
        (0..3).map(|i| backend4(i).to_string()).collect::<Vec<_>>().join(", ")
    )?;
    let conf_a = configs.join("demo.conf");
    // Node B's config is copied: the demo edits it for the reload step.
    let conf_b = work.join("demo-backup.conf");
    std::fs::copy(configs.join("demo-backup.conf"), &conf_b).context("configs/demo-backup.conf")?;

    step(out, &format!("lb-a: lb-daemon -f {}; lb-b: lb-daemon -f demo-backup.conf", conf_a.display()))?;
    // VI_WEB's adverts as they leave each node (its port on the front switch): the failover
    // is measured from lb-a's last advert, and lb-a's own intervals show whether anything
    // (a checker, reprogramming) held an advert back.
    let adverts_a = AdvertCapture::start(&topo.front, "f0")?;
    let adverts_b = AdvertCapture::start(&topo.front, "f1")?;
    let mut a = Daemon::start(&topo.lbs[0], &conf_a, &pins[0], &[])?;
    let mut b = Daemon::start(&topo.lbs[1], &conf_b, &pins[1], &[])?;
    wait("lb-a to become master", Duration::from_secs(10), || {
        a.log().iter().filter(|l| l.contains("BACKUP -> MASTER")).count() >= 2
    })?;
    for line in a.log().iter().filter(|l| l.contains(" -> ") || l.contains("XDP program attached")) {
        writeln!(out, "  lb-a | {}", short(line))?;
    }
    for line in b.log().iter().filter(|l| l.contains(" -> ")) {
        writeln!(out, "  lb-b | {}", short(line))?;
    }

    step(out, &format!("client: {REQUESTS} HTTP requests to {VIP}:80 (wrr, NAT, through lb-a)"))?;
    let answers = requests(topo, REQUESTS);
    show_spread(out, &answers)?;
    if answers.iter().any(|r| r.is_err()) {
        bail!("requests failed: {answers:?}");
    }

    step(out, "backend2 stops: the HTTP checker takes it out")?;
    servers[1] = None;
    wait("the checker to mark backend2 down", Duration::from_secs(6), || {
        a.log().iter().any(|l| l.contains("real server DOWN"))
    })?;
    for line in a.log().iter().filter(|l| l.contains("real server DOWN")) {
        writeln!(out, "  lb-a | {}", short(line))?;
    }
    std::thread::sleep(Duration::from_millis(300));
    let answers = requests(topo, REQUESTS);
    show_spread(out, &answers)?;
    if answers.iter().any(|r| r.as_deref() == Ok("backend2")) {
        bail!("backend2 still answered after the checker took it out");
    }

    step(out, "lb-a (the master) dies: kill -9 and links down, while the client keeps asking every 50 ms")?;
    let log: Arc<Mutex<Vec<(Instant, bool)>>> = Arc::default();
    let mut killed_at = 0.0;
    let stop = Arc::new(AtomicBool::new(false));
    let killed = std::thread::scope(|s| -> Result<Instant> {
        let (l, st) = (log.clone(), stop.clone());
        s.spawn(move || {
            // Bounded: at most 400 requests.
            for _ in 0..400 {
                if st.load(Ordering::Relaxed) {
                    break;
                }
                let ok = requests(topo, 1).remove(0).is_ok();
                l.lock().map(|mut v| v.push((Instant::now(), ok))).ok();
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        std::thread::sleep(Duration::from_millis(500));
        // The node dies: its daemon is killed and its links go down. (kill -9 of the daemon
        // alone would not stop forwarding: the XDP links are pinned, as IPVS rules outlive a
        // killed keepalived.)
        let killed = Instant::now();
        killed_at = capture::now();
        a.signal(Signal::SIGKILL)?;
        topo.lbs[0].ip(&["link", "set", "l0", "down"])?;
        topo.lbs[0].ip(&["link", "set", "l1", "down"])?;
        let r = wait("lb-b to take over", Duration::from_secs(8), || {
            b.log().iter().filter(|l| l.contains("BACKUP -> MASTER")).count() >= 2
        });
        // Until lb-b has answered a few times in a row (at most 10 s).
        let _ = lb_tests::servers::wait_until(Duration::from_secs(10), || {
            let l = log.lock().map(|v| v.clone()).unwrap_or_default();
            l.len() >= 3 && l[l.len() - 3..].iter().all(|(t, ok)| *ok && *t > killed)
        });
        stop.store(true, Ordering::Relaxed);
        r.map(|_| killed)
    })?;
    let log = log.lock().map(|v| v.clone()).unwrap_or_default();
    let failed: Vec<&(Instant, bool)> = log.iter().filter(|(t, ok)| *t > killed && !ok).collect();
    let back = log.iter().find(|(t, ok)| *t > killed && *ok && failed.last().is_none_or(|f| *t > f.0));
    for line in b.log().iter().filter(|l| l.contains("-> MASTER")) {
        writeln!(out, "  lb-b | {}", short(line))?;
    }
    let Some((back, _)) = back else { bail!("no answer through lb-b after the failover") };
    writeln!(
        out,
        "  service answered again {} ms after the kill ({} requests failed meanwhile; RFC bound 3 × 1 s + skew = 3609 ms)",
        (*back - killed).as_millis(),
        failed.len()
    )?;
    let a_times: Vec<f64> =
        adverts_a.from(Ipv4Addr::new(192, 0, 2, 11)).into_iter().filter(|t| *t < killed_at).collect();
    let b_times = adverts_b.from(Ipv4Addr::new(192, 0, 2, 12));
    let b_first = b_times.iter().copied().find(|t| *t > killed_at);
    let (Some(last_a), Some(first_b)) = (a_times.last().copied(), b_first) else {
        bail!("adverts not seen on the wire (lb-a {}, lb-b {b_first:?})", a_times.len())
    };
    let worst = capture::intervals(&a_times).into_iter().fold(0.0f64, f64::max);
    writeln!(
        out,
        "  on the wire: lb-a sent {} adverts before the kill, the longest interval {:.0} ms (advert_int 1000 ms; \
         through the checker taking backend2 out); its last advert came {:.0} ms before the kill",
        a_times.len(),
        worst * 1000.0,
        (killed_at - last_a) * 1000.0
    )?;
    let back_at = killed_at + (*back - killed).as_secs_f64();
    writeln!(
        out,
        "  from lb-a's last advert: lb-b's first advert as master {:.0} ms later (RFC bound 3609 ms), the service \
         answering again {:.0} ms later",
        (first_b - last_a) * 1000.0,
        (back_at - last_a) * 1000.0
    )?;
    if back_at < first_b {
        // Once lb-a's port goes down the bridge floods frames still addressed to lb-a's MAC;
        // a backup must not forward them (another host's MAC, a VIP it does not hold).
        bail!("the service answered before lb-b became master: the backup forwarded frames for lb-a");
    }

    step(out, "reload lb-b with backend1 at weight 3 (SIGHUP, traffic continues)")?;
    let text = std::fs::read_to_string(&conf_b)?;
    let changed = text.replacen(
        "real_server 198.51.100.11 80 {\n        weight 1",
        "real_server 198.51.100.11 80 {\n        weight 3",
        1,
    );
    std::fs::write(&conf_b, changed)?;
    b.signal(Signal::SIGHUP)?;
    wait("the reload", Duration::from_secs(5), || b.log().iter().any(|l| l.contains("reload applied")))?;
    for line in b.log().iter().filter(|l| l.contains("reload") || l.contains("service programmed")).skip(1) {
        writeln!(out, "  lb-b | {}", short(line))?;
    }
    let answers = requests(topo, REQUESTS);
    show_spread(out, &answers)?;
    if answers.iter().any(|r| r.is_err()) {
        bail!("requests failed after the reload: {answers:?}");
    }

    let stats_pin = pins[1].join(lb_common::consts::MAP_STATS);
    step(out, &format!("bpftool map dump pinned {} (named fields from BTF; one value per CPU)", stats_pin.display()))?;
    let dump =
        Command::new("bpftool").args(["map", "dump", "pinned"]).arg(&stats_pin).output().context("running bpftool")?;
    let dump = String::from_utf8_lossy(&dump.stdout);
    writeln!(out, "{}  ...", indent(&dump.lines().take(24).collect::<Vec<_>>().join("\n")))?;

    step(out, "lb-daemon status and stats on lb-b")?;
    let run_dir = daemon::run_dir_for(&pins[1]);
    let bin = daemon::binary()?;
    let status = Command::new(&bin).arg("status").arg("--run-dir").arg(&run_dir).output()?;
    write!(out, "{}", indent(&String::from_utf8_lossy(&status.stdout)))?;
    let stats = Command::new(&bin).arg("stats").arg("--pin-dir").arg(&pins[1]).output()?;
    write!(out, "{}", indent(&String::from_utf8_lossy(&stats.stdout)))?;
    if !status.status.success() || !stats.status.success() {
        bail!(
            "status/stats failed: {}{}",
            String::from_utf8_lossy(&status.stderr),
            String::from_utf8_lossy(&stats.stderr)
        );
    }

    step(out, "SIGTERM lb-b: priority 0, VIPs removed, XDP detached, pins removed")?;
    let st = b.stop()?;
    writeln!(out, "  lb-daemon exited: {st}")?;
    if !st.success() {
        bail!("lb-daemon failed on SIGTERM: {st}");
    }
    let _ = a.stop();
    Ok(())
}

/// A log line without its timestamp and module path.
fn short(line: &str) -> String {
    let rest = line.split_once("Z ").map_or(line, |(_, r)| r).trim();
    let rest = rest.split_once(": ").map_or(rest, |(lvl, r)| if lvl.contains("lb_daemon") { r } else { rest });
    rest.to_string()
}

/// Prints how many answers each real server gave (and failures).
fn show_spread(out: &mut dyn std::io::Write, answers: &[Result<String, String>]) -> Result<()> {
    let names: Vec<String> = answers.iter().map(|a| a.clone().unwrap_or_else(|_| "(failed)".into())).collect();
    let mut counts: Vec<(String, usize)> = spread(&names).into_iter().collect();
    counts.sort();
    for (name, n) in counts {
        writeln!(out, "  {name}: {n:>3} {}", "#".repeat(n))?;
    }
    Ok(())
}

fn step(out: &mut dyn std::io::Write, s: &str) -> std::io::Result<()> {
    writeln!(out, "\n== {s}")
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("  {l}\n")).collect()
}
