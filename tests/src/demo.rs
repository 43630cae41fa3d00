//! The demo scenario, shared by `cargo xtask demo` (which prints it) and a test (which makes
//! sure it keeps working): the load balancer in namespaces, with traffic, and what it counted.
//! Removes every namespace and pin it made, also when a step fails.

use std::{
    net::{SocketAddr, TcpStream, UdpSocket},
    path::Path,
    process::Command,
    time::Duration,
};

use anyhow::{Context as _, Result, bail};

use crate::{
    daemon::{self, Daemon},
    netns::{LbTopology, VIP4, VIP6},
};

pub const UDP_PACKETS: usize = 20;
pub const TCP_ATTEMPTS: usize = 10;
pub const OTHER_PORT_PACKETS: usize = 5;

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

    step(
        out,
        &format!(
            "client sends {UDP_PACKETS} UDP datagrams to {VIP4}:53, {TCP_ATTEMPTS} TCP connects to {VIP4}:80 \
             and [{VIP6}]:80, {OTHER_PORT_PACKETS} datagrams to port 9999 (no service)"
        ),
    )?;
    topo.client.run(|| -> Result<()> {
        let sock = UdpSocket::bind("0.0.0.0:0")?;
        for i in 0..UDP_PACKETS {
            sock.send_to(format!("query {i}").as_bytes(), (VIP4, 53))?;
        }
        for _ in 0..OTHER_PORT_PACKETS {
            sock.send_to(b"nobody listens", (VIP4, 9999))?;
        }
        for i in 0..TCP_ATTEMPTS {
            let to: SocketAddr = if i % 2 == 0 { format!("{VIP4}:80") } else { format!("[{VIP6}]:80") }.parse()?;
            // Forwarding to real servers lands with the data-plane work; until then the
            // SYN is counted and passed to the lb's stack, which has no route to the VIP.
            let _ = TcpStream::connect_timeout(&to, Duration::from_millis(300));
        }
        Ok(())
    })??;
    std::thread::sleep(Duration::from_millis(200));

    step(out, "lb-daemon stats (read from the pinned maps; forwarding is not programmed yet)")?;
    let stats = Command::new(daemon::binary()?).args(["stats", "--pin-dir"]).arg(pin_dir).output()?;
    write!(out, "{}", indent(&String::from_utf8_lossy(&stats.stdout)))?;
    if !stats.status.success() {
        bail!("lb-daemon stats failed: {}", String::from_utf8_lossy(&stats.stderr));
    }
    let snap = lb_daemon::dataplane::bpf::read_stats(pin_dir)?;
    let udp = snap.services.iter().find(|s| s.service == format!("{VIP4}:53/udp")).context("UDP service missing")?;
    if udp.packets != UDP_PACKETS as u64 {
        bail!("the UDP service counted {} packets, the client sent {UDP_PACKETS}", udp.packets);
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

fn step(out: &mut dyn std::io::Write, s: &str) -> std::io::Result<()> {
    writeln!(out, "\n== {s}")
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("  {l}\n")).collect()
}
