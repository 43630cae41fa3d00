//! `cargo xtask demo`: the load balancer in namespaces, with traffic, and what it counted.
//! Removes every namespace and pin it made, also when a step fails.

use std::{
    net::{SocketAddr, TcpStream, UdpSocket},
    path::Path,
    process::Command,
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use lb_tests::{
    daemon::Daemon,
    netns::{LbTopology, VIP4, VIP6},
};

use crate::build::{root, sh_ok};

const UDP_PACKETS: usize = 20;
const TCP_ATTEMPTS: usize = 10;
const OTHER_PORT_PACKETS: usize = 5;

pub fn run() -> Result<()> {
    crate::setup::run()?;
    crate::build::ebpf()?;
    sh_ok(Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(root())
        .args(["build", "-p", "lb-daemon"]))?;

    let pin_dir = Path::new(lb_common::consts::PIN_DIR);
    if pin_dir.exists() {
        bail!("{} exists: is an lb-daemon running? Stop it (its pins are its state) and retry", pin_dir.display());
    }
    let config = root().join("configs/demo.conf");

    step("topology: client — lb — switch — 3 backends (namespaces, veth, documentation addresses)");
    let topo = LbTopology::new(3)?;
    let names = topo.names();
    let result = with_topology(&topo, &config, pin_dir);
    drop(topo);

    step("cleanup");
    let left: Vec<String> = names.iter().filter(|n| Path::new("/run/netns").join(n).exists()).cloned().collect();
    println!("  namespaces left: {}", if left.is_empty() { "none".into() } else { left.join(", ") });
    println!("  pins left under {}: {}", pin_dir.display(), if pin_dir.exists() { "YES" } else { "none" });
    result?;
    if !left.is_empty() || pin_dir.exists() {
        bail!("the demo left state behind");
    }
    println!("\ndemo finished.");
    Ok(())
}

fn with_topology(topo: &LbTopology, config: &Path, pin_dir: &Path) -> Result<()> {
    step(&format!("lb-daemon -f {} (XDP on the lb's interfaces)", config.display()));
    let mut daemon = Daemon::start(&topo.lb, config, pin_dir, &[])?;
    for line in daemon.log() {
        println!("  | {line}");
    }
    println!("  {}", topo.lb.ip(&["-brief", "link", "show", "l0"])?.trim());
    let xdp = topo.lb.ip(&["link", "show", "l0"])?;
    println!("  {}", xdp.lines().find(|l| l.contains("prog/xdp")).unwrap_or("(no XDP program on l0!)").trim());

    step(&format!(
        "client sends {UDP_PACKETS} UDP datagrams to {VIP4}:53, {TCP_ATTEMPTS} TCP connects to {VIP4}:80 and [{VIP6}]:80, \
         {OTHER_PORT_PACKETS} datagrams to port 9999 (no service)"
    ));
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

    step("lb-daemon stats (read from the pinned maps)");
    let bin = lb_tests::daemon::binary()?;
    let out = Command::new(&bin).args(["stats", "--pin-dir"]).arg(pin_dir).output()?;
    print!("{}", indent(&String::from_utf8_lossy(&out.stdout)));
    if !out.status.success() {
        bail!("lb-daemon stats failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let snap = lb_daemon::dataplane::bpf::read_stats(pin_dir)?;
    let udp = snap.services.iter().find(|s| s.service == format!("{VIP4}:53/udp")).context("UDP service missing")?;
    if udp.packets != UDP_PACKETS as u64 {
        bail!("the UDP service counted {} packets, the client sent {UDP_PACKETS}", udp.packets);
    }

    let stats_pin = pin_dir.join(lb_common::consts::MAP_STATS);
    step(&format!("bpftool map dump pinned {} (named fields from BTF; one value per CPU)", stats_pin.display()));
    let out = Command::new("bpftool").args(["map", "dump", "pinned"]).arg(&stats_pin).output().context("running bpftool")?;
    let dump = String::from_utf8_lossy(&out.stdout);
    print!("{}", indent(&dump.lines().take(40).collect::<Vec<_>>().join("\n")));
    println!("  ...");

    step("SIGTERM: the daemon detaches XDP and removes its pins");
    let status = daemon.stop()?;
    println!("  lb-daemon exited: {status}");
    Ok(())
}

fn step(s: &str) {
    println!("\n== {s}");
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("  {l}\n")).collect()
}
