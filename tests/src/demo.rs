//! The demo scenario, shared by `cargo xtask demo` (which prints it) and a test (which makes
//! sure it keeps working): the load balancer in namespaces, with traffic, and what it counted.
//! Removes every namespace and pin it made, also when a step fails.

use std::{net::SocketAddr, path::Path, process::Command};

use anyhow::{Context as _, Result, bail};

use crate::{
    daemon::{self, Daemon},
    netns::{LbTopology, VIP4, VIP6, backend4, backend6},
    servers::{Backend, spread, tcp_ask, udp_ask_from},
};

pub const TCP_REQUESTS: usize = 30;
pub const UDP_REQUESTS: usize = 12;
pub const V6_REQUESTS: usize = 9;

/// Runs the demo with `config`, pinning under `pin_dir`; `out` receives the narration.
pub fn run(config: &Path, pin_dir: &Path, out: &mut dyn std::io::Write) -> Result<()> {
    if pin_dir.exists() {
        bail!("{} exists: is an lb-daemon running? Stop it (its pins are its state) and retry", pin_dir.display());
    }
    step(out, "topology: client — lb — switch — 3 backends (namespaces, veth, documentation addresses)")?;
    let topo = LbTopology::new(3)?;
    let names = topo.names();
    let result = with_topology(&topo, config, pin_dir, out);
    drop(topo);

    step(out, "cleanup")?;
    let left: Vec<String> = names.iter().filter(|n| Path::new("/run/netns").join(n).exists()).cloned().collect();
    writeln!(out, "  namespaces left: {}", if left.is_empty() { "none".into() } else { left.join(", ") })?;
    writeln!(out, "  pins left under {}: {}", pin_dir.display(), if pin_dir.exists() { "YES" } else { "none" })?;
    result?;
    if !left.is_empty() || pin_dir.exists() {
        bail!("the demo left state behind");
    }
    Ok(())
}

fn with_topology(topo: &LbTopology, config: &Path, pin_dir: &Path, out: &mut dyn std::io::Write) -> Result<()> {
    step(out, &format!("lb-daemon -f {} (XDP on the lb's interfaces)", config.display()))?;
    let mut daemon = Daemon::start(&topo.lb, config, pin_dir, &[])?;
    for line in daemon.log() {
        writeln!(out, "  | {line}")?;
    }
    for iface in ["l0", "l1"] {
        let link = topo.lb.ip(&["link", "show", iface])?;
        let prog = link.lines().find(|l| l.contains("prog/xdp")).context("no XDP program on the lb")?;
        writeln!(out, "  {iface}: {}", prog.trim())?;
    }

    step(out, "real servers: each backend answers with its name (TCP :80 and UDP :53, IPv4 and IPv6)")?;
    let mut servers = Vec::new();
    for (i, b) in topo.backends.iter().enumerate() {
        for addr in [format!("{}:80", backend4(i)), format!("[{}]:80", backend6(i)), format!("{}:53", backend4(i))] {
            servers.push(Backend::start(b, format!("backend{}", i + 1), addr.parse()?));
        }
    }

    let vip80: SocketAddr = format!("{VIP4}:80").parse()?;
    let vip53: SocketAddr = format!("{VIP4}:53").parse()?;
    let vip6: SocketAddr = format!("[{VIP6}]:80").parse()?;
    step(out, &format!("client: {TCP_REQUESTS} TCP requests to {vip80} (rr, NAT)"))?;
    let answers: Vec<String> = (0..TCP_REQUESTS).map(|_| tcp_ask(&topo.client, vip80, None)).collect();
    show_spread(out, &answers)?;
    step(out, &format!("client: {UDP_REQUESTS} UDP queries to {vip53} (rr, NAT)"))?;
    // One source port per query: each is its own flow (random ports could repeat).
    let answers: Vec<String> = (0..UDP_REQUESTS).map(|i| udp_ask_from(&topo.client, vip53, 41000 + i as u16)).collect();
    show_spread(out, &answers)?;
    step(out, &format!("client: {V6_REQUESTS} TCP requests to {vip6} (rr, NAT, IPv6)"))?;
    let answers: Vec<String> = (0..V6_REQUESTS).map(|_| tcp_ask(&topo.client, vip6, None)).collect();
    show_spread(out, &answers)?;
    drop(servers);

    step(out, "lb-daemon stats (read from the pinned maps)")?;
    let stats = Command::new(daemon::binary()?).args(["stats", "--pin-dir"]).arg(pin_dir).output()?;
    write!(out, "{}", indent(&String::from_utf8_lossy(&stats.stdout)))?;
    if !stats.status.success() {
        bail!("lb-daemon stats failed: {}", String::from_utf8_lossy(&stats.stderr));
    }
    let snap = lb_daemon::dataplane::bpf::read_stats(pin_dir)?;
    let udp = snap.services.iter().find(|s| s.service == format!("{VIP4}:53/udp")).context("UDP service missing")?;
    if udp.new_flows != UDP_REQUESTS as u64 {
        bail!("the UDP service scheduled {} flows, the client sent {UDP_REQUESTS} queries", udp.new_flows);
    }

    let stats_pin = pin_dir.join(lb_common::consts::MAP_STATS);
    step(out, &format!("bpftool map dump pinned {} (named fields from BTF; one value per CPU)", stats_pin.display()))?;
    let dump =
        Command::new("bpftool").args(["map", "dump", "pinned"]).arg(&stats_pin).output().context("running bpftool")?;
    let dump = String::from_utf8_lossy(&dump.stdout);
    writeln!(out, "{}  ...", indent(&dump.lines().take(30).collect::<Vec<_>>().join("\n")))?;

    step(out, "SIGTERM: the daemon detaches XDP and removes its pins")?;
    let status = daemon.stop()?;
    writeln!(out, "  lb-daemon exited: {status}")?;
    if !status.success() {
        bail!("lb-daemon failed on SIGTERM: {status}");
    }
    Ok(())
}

/// Prints how many answers each real server gave.
fn show_spread(out: &mut dyn std::io::Write, answers: &[String]) -> Result<()> {
    let mut counts: Vec<(String, usize)> = spread(answers).into_iter().collect();
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
