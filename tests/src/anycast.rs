//! Scale-out behind ECMP (docs/scale-out.md), shared by `tests/tests/scale_out.rs` (which
//! checks the figures) and `cargo xtask demo --anycast` (which prints the story): three
//! load-balancer nodes, each running lb-daemon (DR, `anycast_table`) and BIRD 2 (BGP + BFD),
//! announce one VIP to a router running BIRD, which installs one route with a next hop per node
//! and spreads flows over them by an L4 hash. The configs are the shipped ones
//! (`configs/anycast/`), with each node's address.
//!
//! ```text
//!  client  c0 198.51.100.1/24 ── r0 198.51.100.254/24  router (BIRD, ECMP, L4 hash)
//!                                br0 192.0.2.1/25 ── e0 192.0.2.11-13/25  lb0..lb2
//!                                r1 192.0.2.129/25 ─┐   e1 192.0.2.141-143/25
//!                                                  sw (bridge) ── b0 192.0.2.151-153/25 rs0..rs2
//! ```
//! Real servers hold the VIP on lo and answer the client through the router (DR). The story:
//! the route's next hops; a node killed (links down, then kill -9 of its daemons: only BFD can
//! tell), how fast its next hop goes and the share of established connections that keep
//! working when ECMP moves them, with mh (identical Maglev tables everywhere) and with rr on a
//! second port (no shared state: the mutation); the same when the node comes back; a node whose
//! service loses its quorum withdrawing the VIP while the others keep it; a node stopped with
//! SIGTERM withdrawing before it stops forwarding. Every namespace, process and pin goes on
//! drop, also on failure.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    path::PathBuf,
    process::{Child, Command},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use nix::sys::signal::Signal;

use crate::{
    daemon::{self, Daemon},
    netns::{Netns, addr, veth},
    servers::{Backend, wait_until},
    temp::{TempConfig, TempDir},
    workspace_root,
};

pub const VIP: &str = "203.0.113.100";
pub const NODES: usize = 3;
/// Connections to the mh service (port 80), to the rr one (port 81, the mutation) and to
/// the mh one forwarded by TUN (port 82).
pub const MH_CONNS: usize = 1000;
pub const RR_CONNS: usize = 300;
pub const TUN_CONNS: usize = 300;
/// Client threads doing the request/response rounds.
const WORKERS: usize = 26;

pub fn node_addr(i: usize) -> String {
    format!("192.0.2.{}", 11 + i)
}

/// A shipped file of `configs/anycast/`.
pub fn shipped(name: &str) -> Result<String> {
    let p = workspace_root().join("configs/anycast").join(name);
    std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
}

/// BIRD in a namespace with a config file; killed on drop.
pub struct Bird {
    child: Child,
}

impl Bird {
    pub fn start(ns: &Netns, dir: &TempDir, tag: &str, conf: &str) -> Result<Bird> {
        let log = dir.path().join(format!("{tag}.log"));
        let conf = conf.replace("log syslog all;", &format!("log \"{}\" all;", log.display()));
        let path = dir.file(&format!("{tag}.conf"), &conf);
        let sock = dir.path().join(format!("{tag}.ctl"));
        let child = ns
            .command("bird")
            .arg("-f")
            .arg("-c")
            .arg(&path)
            .arg("-s")
            .arg(&sock)
            .arg("-P")
            .arg(dir.path().join(format!("{tag}.pid")))
            .spawn()
            .context("bird (apt package bird2; `cargo xtask setup` installs it)")?;
        let b = Bird { child };
        ensure!(wait_until(Duration::from_secs(5), || sock.exists()), "BIRD {tag} did not start");
        Ok(b)
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// FRR's zebra, bfdd and bgpd in a namespace (Debian's frr), their files (pids, vty
/// sockets, zebra's API socket, logs) in a directory of their own, configured with an
/// integrated frr.conf through vtysh: each daemon starts empty, as one reading the integrated
/// file alone stops at the first block of another daemon's. Killed on drop.
pub struct Frr {
    pids: Vec<PathBuf>,
    base: PathBuf,
}

impl Frr {
    const DAEMONS: [&'static str; 3] = ["zebra", "bfdd", "bgpd"];

    pub fn start(ns: &Netns, dir: &TempDir, tag: &str, conf: &str) -> Result<Frr> {
        use std::os::unix::fs::PermissionsExt as _;
        // The daemons drop to the frr user: their directory must be theirs to write.
        let base = dir.path().join(tag);
        std::fs::create_dir_all(&base)?;
        for d in [dir.path(), base.as_path()] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777))?;
        }
        let empty = base.join("empty.conf");
        std::fs::write(&empty, "")?;
        let mut frr = Frr { pids: Vec::new(), base: base.clone() };
        for d in Self::DAEMONS {
            let pid = base.join(format!("{d}.pid"));
            let mut cmd = ns.command(format!("/usr/lib/frr/{d}"));
            cmd.arg("-d").arg("-f").arg(&empty).arg("-i").arg(&pid).arg("--vty_socket").arg(&base);
            cmd.arg("-z")
                .arg(base.join("zserv.api"))
                .arg("--log")
                .arg(format!("file:{}", base.join(format!("{d}.log")).display()));
            if d == "bfdd" {
                cmd.arg("--bfdctl").arg(base.join("bfdd.sock"));
            }
            let out = cmd.output().with_context(|| format!("{d} (apt package frr)"))?;
            frr.pids.push(pid);
            ensure!(out.status.success(), "{d}: {}", String::from_utf8_lossy(&out.stderr));
            let vty = base.join(format!("{d}.vty"));
            ensure!(wait_until(Duration::from_secs(5), || vty.exists()), "FRR {d} ({tag}) did not start");
        }
        let log = format!("log file {}", base.join("frr.log").display());
        let file = base.join("frr.conf");
        std::fs::write(&file, conf.replace("log syslog informational", &log))?;
        let out = ns.command("vtysh").arg("--vty_socket").arg(&base).arg("-f").arg(&file).output()?;
        ensure!(
            out.status.success(),
            "vtysh -f frr.conf: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(frr)
    }

    /// What vtysh answers to `commands` (for a failure's message).
    pub fn show(&self, ns: &Netns, commands: &[&str]) -> String {
        let mut cmd = ns.command("vtysh");
        cmd.arg("--vty_socket").arg(&self.base);
        for c in commands {
            cmd.arg("-c").arg(c);
        }
        cmd.output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_else(|e| e.to_string())
    }

    pub fn kill9(&mut self) {
        for p in self.pids.drain(..) {
            let pid = std::fs::read_to_string(&p).ok().and_then(|s| s.trim().parse::<i32>().ok());
            if let Some(pid) = pid {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

impl Drop for Frr {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub struct Topo {
    pub client: Netns,
    pub router: Netns,
    pub switch: Netns,
    pub nodes: Vec<Netns>,
    pub servers: Vec<Netns>,
}

impl Topo {
    pub fn new() -> Result<Topo> {
        let client = Netns::new("sccli")?;
        let router = Netns::new("scrt")?;
        let switch = Netns::new("scsw")?;
        veth(&client, "c0", &router, "r0")?;
        addr(&client, "c0", "198.51.100.1/24")?;
        addr(&router, "r0", "198.51.100.254/24")?;
        client.ip(&["route", "add", "default", "via", "198.51.100.254"])?;
        router.sh("ip link add br0 type bridge && ip link set br0 up && ip addr add 192.0.2.1/25 dev br0 && \
             sysctl -qw net.ipv4.ip_forward=1 net.ipv4.fib_multipath_hash_policy=1 \
             net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0")?;
        switch.sh("ip link add br0 type bridge && ip link set br0 up")?;
        veth(&router, "r1", &switch, "sr")?;
        addr(&router, "r1", "192.0.2.129/25")?;
        router.sh("sysctl -qw net.ipv4.conf.r1.rp_filter=0")?;
        switch.ip(&["link", "set", "sr", "master", "br0"])?;
        let mut nodes = Vec::new();
        for i in 0..NODES {
            let n = Netns::new(&format!("sclb{i}"))?;
            let (rp, sp) = (format!("p{i}"), format!("l{i}"));
            veth(&n, "e0", &router, &rp)?;
            router.ip(&["link", "set", &rp, "master", "br0"])?;
            veth(&n, "e1", &switch, &sp)?;
            switch.ip(&["link", "set", &sp, "master", "br0"])?;
            addr(&n, "e0", &format!("{}/25", node_addr(i)))?;
            addr(&n, "e1", &format!("192.0.2.{}/25", 141 + i))?;
            n.sh("sysctl -qw net.ipv4.ip_forward=1")?;
            // XDP_REDIRECT out of a veth needs NAPI (GRO) on its peer.
            router.sh(&format!("ethtool -K {rp} gro on >/dev/null"))?;
            switch.sh(&format!("ethtool -K {sp} gro on >/dev/null"))?;
            nodes.push(n);
        }
        let mut servers = Vec::new();
        for j in 0..NODES {
            let s = Netns::new(&format!("scrs{j}"))?;
            let port = format!("s{j}");
            veth(&s, "b0", &switch, &port)?;
            switch.ip(&["link", "set", &port, "master", "br0"])?;
            addr(&s, "b0", &format!("192.0.2.{}/25", 151 + j))?;
            // DR: the VIP on lo, not answered for by ARP; replies go by the router.
            s.sh(&format!(
                "ip route add default via 192.0.2.129 && ip addr add {VIP}/32 dev lo && \
                 sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
                 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.b0.rp_filter=0"
            ))?;
            servers.push(s);
        }
        Ok(Topo { client, router, switch, nodes, servers })
    }

    /// The router's next hops for the VIP.
    pub fn next_hops(&self) -> Vec<String> {
        let out = self.router.ip(&["route", "show", VIP]).unwrap_or_default();
        let words: Vec<&str> = out.split_whitespace().collect();
        words.windows(2).filter(|w| w[0] == "via").map(|w| w[1].to_string()).collect()
    }

    /// Waits (bounded) until the router has `n` next hops; how long it took.
    pub fn wait_hops(&self, n: usize, limit: Duration) -> Option<Duration> {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if self.next_hops().len() == n {
                return Some(t0.elapsed());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// Every namespace name, for checking that cleanup removed them.
    pub fn names(&self) -> Vec<String> {
        let all = [&self.client, &self.router, &self.switch].into_iter().chain(&self.nodes).chain(&self.servers);
        all.map(|n| n.name().to_string()).collect()
    }
}

/// One load-balancer node's daemons.
pub struct Node {
    pub bird: Bird,
    pub lb: Daemon,
    pub cfg: TempConfig,
}

/// The shipped lb.conf, plus the mutation: the same real servers on port 81 with rr, which
/// has no table shared by the nodes; and the mh service again on port 82, forwarded by TUN
/// (the real servers decapsulate with `lb-daemon decap`: this kernel has no ipip module).
pub fn lb_conf() -> Result<String> {
    let shipped = shipped("lb.conf")?;
    let at = shipped.find("virtual_server").context("lb.conf has no virtual_server")?;
    let rr = shipped[at..].replace("203.0.113.100 80", "203.0.113.100 81").replace("lb_algo mh", "lb_algo rr").replace(
        "    # Hash the client's port too: one client's connections spread over the real servers.\n    mh-port\n",
        "",
    );
    let tun = shipped[at..].replace(" 80", " 82").replace("lb_kind DR", "lb_kind TUN");
    Ok(format!("{shipped}\n{rr}\n{tun}"))
}

/// The real servers' side: a backend on each service's port, and `lb-daemon decap` taking
/// the nodes' IPIP packets to the VIP (from their addresses on the real servers' link).
fn start_servers(topo: &Topo) -> Result<(Vec<Backend>, Vec<Daemon>)> {
    let mut backends = Vec::new();
    let mut decaps = Vec::new();
    let from: Vec<String> = (0..NODES).flat_map(|i| ["--from".to_string(), format!("192.0.2.{}", 141 + i)]).collect();
    for (j, s) in topo.servers.iter().enumerate() {
        for p in [80u16, 81, 82] {
            backends.push(Backend::start(s, format!("rs{j}"), SocketAddr::from(([0, 0, 0, 0], p))));
        }
        let args: Vec<&str> =
            ["decap", "--interface", "b0"].into_iter().chain(from.iter().map(String::as_str)).collect();
        decaps.push(Daemon::spawn(s, &args, "lb-daemon decap ready").with_context(|| format!("decap on server {j}"))?);
    }
    Ok((backends, decaps))
}

/// Starts node `i`'s daemons: lb-daemon first (it clears what a killed run left in the
/// announcement table before BIRD could export it), then BIRD.
pub fn start_node(topo: &Topo, dir: &TempDir, i: usize, generation: u32) -> Result<Node> {
    start_node_with(topo, dir, i, generation, &lb_conf()?)
}

/// `start_node` with this keepalived.conf (`generation` names the node's files: unique per run).
pub fn start_node_with(topo: &Topo, dir: &TempDir, i: usize, generation: u32, conf: &str) -> Result<Node> {
    let (lb, cfg) = start_lb(topo, i, &generation.to_string(), conf)?;
    let bird_conf = shipped("bird-lb.conf")?.replace("192.0.2.11", &node_addr(i));
    let bird = Bird::start(&topo.nodes[i], dir, &format!("lb{i}-{generation}"), &bird_conf)?;
    Ok(Node { bird, lb, cfg })
}

/// lb-daemon alone on node `i` with this keepalived.conf; `tag` names its files (unique per
/// run). The configuration file must outlive the daemon.
fn start_lb(topo: &Topo, i: usize, tag: &str, conf: &str) -> Result<(Daemon, TempConfig)> {
    let cfg = TempConfig::new(&format!("scale-lb{i}-{tag}"), conf);
    let pins = daemon::pin_dir(&format!("scale-{i}-{tag}"));
    let lb = Daemon::start(&topo.nodes[i], &cfg, &pins, &[]).with_context(|| format!("lb-daemon on node {i}"))?;
    Ok((lb, cfg))
}

/// Established connections, each with the real server that answered its first request.
pub struct Conns {
    pub conns: Vec<(TcpStream, String)>,
}

fn ask(c: &mut TcpStream, n: u64) -> Option<String> {
    let msg = format!("q{n}");
    c.write_all(msg.as_bytes()).ok()?;
    let mut buf = [0u8; 64];
    let got = c.read(&mut buf).ok()?;
    let reply = String::from_utf8_lossy(&buf[..got]).into_owned();
    reply.strip_suffix(&format!(":{msg}")).map(str::to_string)
}

impl Conns {
    /// `count` connections to VIP:`port`, opened in parallel, each asked once.
    pub fn open(client: &Netns, port: u16, count: usize) -> Result<Conns> {
        let to: SocketAddr = format!("{VIP}:{port}").parse()?;
        let open_some = move |w: usize| -> Result<Vec<(TcpStream, String)>> {
            let mut out = Vec::new();
            for k in (w..count).step_by(WORKERS) {
                let mut c = TcpStream::connect_timeout(&to, Duration::from_secs(5))
                    .with_context(|| format!("connection {k} to {to}"))?;
                c.set_read_timeout(Some(Duration::from_secs(3)))?;
                c.set_nodelay(true)?;
                let who = ask(&mut c, 0).ok_or_else(|| anyhow!("no answer on connection {k} to {to}"))?;
                out.push((c, who));
            }
            Ok(out)
        };
        let conns = client.run(move || {
            std::thread::scope(|s| {
                let hs: Vec<_> = (0..WORKERS).map(|w| s.spawn(move || open_some(w))).collect();
                let mut all = Vec::new();
                for h in hs {
                    all.extend(h.join().map_err(|_| anyhow!("a client thread panicked"))??);
                }
                Ok::<_, anyhow::Error>(all)
            })
        })??;
        Ok(Conns { conns })
    }

    /// One request/response round on every connection still working: how many were answered
    /// by the same real server (the others are dropped: reset, answered by another, silent).
    pub fn round(&mut self, n: u64) -> usize {
        let conns = std::mem::take(&mut self.conns);
        let chunk = conns.len().div_ceil(WORKERS).max(1);
        let mut groups: Vec<Vec<(TcpStream, String)>> = Vec::new();
        let mut it = conns.into_iter();
        loop {
            let g: Vec<_> = it.by_ref().take(chunk).collect();
            if g.is_empty() {
                break;
            }
            groups.push(g);
        }
        self.conns = std::thread::scope(|s| {
            let hs: Vec<_> = groups
                .into_iter()
                .map(|g| {
                    s.spawn(move || {
                        let same = |(mut c, who): (TcpStream, String)| {
                            (ask(&mut c, n).as_deref() == Some(who.as_str())).then_some((c, who))
                        };
                        g.into_iter().filter_map(same).collect::<Vec<_>>()
                    })
                })
                .collect();
            hs.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
        });
        self.conns.len()
    }

    /// How many connections each real server holds.
    pub fn spread(&self) -> std::collections::BTreeMap<String, usize> {
        let mut m = std::collections::BTreeMap::new();
        for (_, who) in &self.conns {
            *m.entry(who.clone()).or_default() += 1;
        }
        m
    }
}

pub fn pct(part: usize, whole: usize) -> f64 {
    100.0 * part as f64 / whole.max(1) as f64
}

/// Whether the daemon's status shows the VIP announced.
pub fn announced(d: &Daemon) -> Option<bool> {
    let s = d.status().ok()?;
    s["anycast"].as_array()?.iter().find(|a| a["vip"] == VIP).and_then(|a| a["announced"].as_bool())
}

/// What the story measured: kept = connections answered by the same real server afterwards,
/// out of those working before.
#[derive(Debug, Default)]
pub struct Figures {
    pub hops_at_start: Vec<String>,
    /// DR packets each node forwarded while the connections opened.
    pub forwarded: Vec<u64>,
    /// Real servers the mh connections landed on.
    pub mh_servers: usize,
    pub announced_at_start: Vec<Option<bool>>,
    /// From the dead node's links going down to its next hop leaving the router's route.
    pub loss_detected: Option<Duration>,
    pub loss_mh: (usize, usize),
    pub loss_rr: (usize, usize),
    /// The mh service forwarded by TUN: real servers its connections landed on, a steady
    /// round, and through node 0's loss.
    pub tun_servers: usize,
    pub steady_tun: (usize, usize),
    pub loss_tun: (usize, usize),
    /// The killed daemon's route was still in its table; the new one removed it before
    /// adding its own.
    pub stale_route_cleared: bool,
    pub back_after: Option<Duration>,
    pub back_mh: (usize, usize),
    pub back_rr: (usize, usize),
    pub back_tun: (usize, usize),
    pub quorum_withdrawn_after: Option<Duration>,
    pub quorum_hops: Vec<String>,
    /// Node 2's status: announced, and why not.
    pub quorum_status: (Option<bool>, String),
    pub quorum_mh: (usize, usize),
    pub stop_withdrawn_after: Option<Duration>,
    /// Node 1's log had the route removed before "stopped;".
    pub stop_withdrew_first: bool,
    pub stop_mh: (usize, usize),
    pub took: Duration,
}

/// Runs the story, narrating to `out`. Errors only when it cannot go on (a daemon does not
/// start, the route never forms, the connections cannot open); the figures are for the
/// caller to judge.
pub fn story(out: &mut dyn Write) -> Result<Figures> {
    let started = Instant::now();
    let mut f = Figures::default();
    let topo = Topo::new()?;
    let dir = TempDir::new("scale-out");
    let servers = start_servers(&topo)?;
    let _router = Bird::start(&topo.router, &dir, "router", &shipped("bird-router.conf")?)?;
    let mut nodes: Vec<Option<Node>> = Vec::new();
    for i in 0..NODES {
        nodes.push(Some(start_node(&topo, &dir, i, 0)?));
    }
    let up = topo.wait_hops(NODES, Duration::from_secs(20));
    f.hops_at_start = topo.next_hops();
    writeln!(
        out,
        "route {VIP} on the router: {} next hops {:?} ({:.1} s after start)",
        f.hops_at_start.len(),
        f.hops_at_start,
        started.elapsed().as_secs_f64()
    )?;
    if up.is_none() {
        bail!("the router never had {NODES} next hops: {:?}", f.hops_at_start);
    }
    f.announced_at_start = nodes.iter().flatten().map(|n| announced(&n.lb)).collect();

    let mut mh = Conns::open(&topo.client, 80, MH_CONNS)?;
    let mut rr = Conns::open(&topo.client, 81, RR_CONNS)?;
    let mut tun = Conns::open(&topo.client, 82, TUN_CONNS)?;
    f.mh_servers = mh.spread().len();
    f.forwarded = nodes
        .iter()
        .flatten()
        .map(|n| {
            let pins = n.lb.pin_dir.clone().unwrap_or_default();
            lb_daemon::dataplane::bpf::read_stats(&pins)
                .map(|s| s.global.0.get("reason_fwd_dr").copied().unwrap_or(0))
                .unwrap_or(0)
        })
        .collect();
    f.tun_servers = tun.spread().len();
    writeln!(
        out,
        "{MH_CONNS} connections to port 80 (mh, DR), {RR_CONNS} to port 81 (rr, DR) and {TUN_CONNS} to port 82 \
         (mh, TUN), request/response"
    )?;
    writeln!(out, "  mh real servers {:?}; DR packets forwarded by each node {:?}", mh.spread(), f.forwarded)?;
    let (steady_mh, steady_rr, steady_tun) = (mh.round(1), rr.round(1), tun.round(1));
    writeln!(
        out,
        "  a steady round: {steady_mh}/{MH_CONNS} mh, {steady_rr}/{RR_CONNS} rr, {steady_tun}/{TUN_CONNS} mh by TUN \
         answered"
    )?;
    f.steady_tun = (steady_tun, TUN_CONNS);

    // Node 0 dies.
    f.loss_detected = kill_node0(&topo, &mut nodes)?;
    let (b_mh, b_rr, b_tun) = (mh.conns.len(), rr.conns.len(), tun.conns.len());
    f.loss_mh = (mh.round(2), b_mh);
    f.loss_rr = (rr.round(2), b_rr);
    f.loss_tun = (tun.round(2), b_tun);
    writeln!(
        out,
        "node 0 killed (links down, kill -9): its next hop gone after {:?} (BFD 3 x 100 ms); now {:?}",
        f.loss_detected,
        topo.next_hops()
    )?;
    writeln!(
        out,
        "  connections that kept working: mh {}/{} ({:.1}%), rr {}/{} ({:.1}%), mh by TUN {}/{} ({:.1}%)",
        f.loss_mh.0,
        f.loss_mh.1,
        pct(f.loss_mh.0, f.loss_mh.1),
        f.loss_rr.0,
        f.loss_rr.1,
        pct(f.loss_rr.0, f.loss_rr.1),
        f.loss_tun.0,
        f.loss_tun.1,
        pct(f.loss_tun.0, f.loss_tun.1)
    )?;

    // Node 0 comes back (fresh: no flow state), announced once its checkers have reported.
    let stale = topo.nodes[0].ip(&["route", "show", "table", "100"])?.contains(VIP);
    topo.nodes[0].sh("ip link set e0 up && ip link set e1 up")?;
    let t1 = Instant::now();
    let node0 = start_node(&topo, &dir, 0, 1)?;
    let log = node0.lb.log().join("\n");
    let (removed, added) = (log.find("anycast: route removed"), log.find("anycast: route added"));
    f.stale_route_cleared = stale && removed.is_some() && (added.is_none() || removed < added);
    nodes[0] = Some(node0);
    f.back_after = topo.wait_hops(NODES, Duration::from_secs(20)).map(|_| t1.elapsed());
    let (b_mh, b_rr, b_tun) = (mh.conns.len(), rr.conns.len(), tun.conns.len());
    f.back_mh = (mh.round(3), b_mh);
    f.back_rr = (rr.round(3), b_rr);
    f.back_tun = (tun.round(3), b_tun);
    writeln!(
        out,
        "node 0 back (fresh daemons, no flow state): {} next hops after {:?}",
        topo.next_hops().len(),
        f.back_after
    )?;
    writeln!(
        out,
        "  connections that kept working: mh {}/{} ({:.1}%), rr {}/{} ({:.1}%), mh by TUN {}/{} ({:.1}%)",
        f.back_mh.0,
        f.back_mh.1,
        pct(f.back_mh.0, f.back_mh.1),
        f.back_rr.0,
        f.back_rr.1,
        pct(f.back_rr.0, f.back_rr.1),
        f.back_tun.0,
        f.back_tun.1,
        pct(f.back_tun.0, f.back_tun.1)
    )?;

    // A service on node 2 loses its quorum (a reload asking more weight than its real servers
    // have): node 2 withdraws the VIP, the others keep it.
    let n2 = nodes[2].as_ref().context("node 2")?;
    n2.cfg.rewrite(&lb_conf()?.replace("    delay_loop 1\n", "    delay_loop 1\n    quorum 10\n"));
    n2.lb.signal(Signal::SIGHUP)?;
    f.quorum_withdrawn_after = topo.wait_hops(NODES - 1, Duration::from_secs(10));
    f.quorum_hops = topo.next_hops();
    let status = n2.lb.status().unwrap_or_default();
    let why =
        status["anycast"].as_array().and_then(|a| a.iter().find(|a| a["vip"] == VIP)).map(|a| a["reason"].clone());
    f.quorum_status = (announced(&n2.lb), why.and_then(|w| w.as_str().map(str::to_string)).unwrap_or_default());
    let b_mh = mh.conns.len();
    f.quorum_mh = (mh.round(4), b_mh);
    writeln!(
        out,
        "node 2 loses its quorum (reload with quorum 10): next hops {:?} after {:?}; node 2: {}",
        f.quorum_hops, f.quorum_withdrawn_after, f.quorum_status.1
    )?;
    writeln!(
        out,
        "  mh connections that kept working: {}/{} ({:.1}%)",
        f.quorum_mh.0,
        f.quorum_mh.1,
        pct(f.quorum_mh.0, f.quorum_mh.1)
    )?;

    // SIGTERM on node 1: it withdraws first, then stops forwarding; its flows move on.
    let mut n1 = nodes[1].take().context("node 1")?;
    let t2 = Instant::now();
    n1.lb.stop()?;
    f.stop_withdrawn_after = topo.wait_hops(1, Duration::from_secs(5)).map(|_| t2.elapsed());
    let log = n1.lb.log().join("\n");
    let (withdrew, stopped) = (log.find("anycast: route removed"), log.find("stopped;"));
    f.stop_withdrew_first = withdrew.is_some() && withdrew < stopped;
    let b_mh = mh.conns.len();
    f.stop_mh = (mh.round(5), b_mh);
    writeln!(
        out,
        "node 1 stopped (SIGTERM, withdrawn first): next hops {:?} after {:?}; mh connections that kept working {}/{} ({:.1}%)",
        topo.next_hops(),
        f.stop_withdrawn_after,
        f.stop_mh.0,
        f.stop_mh.1,
        pct(f.stop_mh.0, f.stop_mh.1)
    )?;
    drop(n1);
    drop(mh);
    drop(rr);
    drop(tun);
    drop(nodes);
    drop(servers);
    f.took = tear_down(topo, started, out)?;
    Ok(f)
}

/// Node 0 dies: its links go down (no FIN, no BGP notification can leave), then kill -9; its
/// state is lost with it (the pins go with the daemon). How long until the router has one
/// next hop fewer (None: not within 5 s).
fn kill_node0(topo: &Topo, nodes: &mut [Option<Node>]) -> Result<Option<Duration>> {
    kill_node(topo, nodes, 0)
}

/// `kill_node0` for node `i`: the router is left with one next hop fewer than it had.
fn kill_node(topo: &Topo, nodes: &mut [Option<Node>], i: usize) -> Result<Option<Duration>> {
    let t0 = Instant::now();
    let live = nodes.iter().flatten().count();
    topo.nodes[i].sh("ip link set e0 down && ip link set e1 down")?;
    let mut dead = nodes[i].take().with_context(|| format!("node {i}"))?;
    dead.lb.signal(Signal::SIGKILL)?;
    dead.bird.kill9();
    Ok(topo.wait_hops(live - 1, Duration::from_secs(5)).map(|_| t0.elapsed()))
}

/// Removes the topology and says how long the story took and which namespaces outlived it.
fn tear_down(topo: Topo, started: Instant, out: &mut dyn Write) -> Result<Duration> {
    let names = topo.names();
    drop(topo);
    let left: Vec<String> = names.into_iter().filter(|n| PathBuf::from("/run/netns").join(n).exists()).collect();
    let took = started.elapsed();
    writeln!(
        out,
        "took {:.1} s; namespaces left: {}",
        took.as_secs_f64(),
        if left.is_empty() { "none".into() } else { left.join(" ") }
    )?;
    Ok(took)
}

/// `lb_conf` with connection sync between the nodes: `lvs_sync_daemon e1` naming no VRRP
/// instance, so every node runs master and backup at once (active-active), on the link the
/// nodes share with the real servers.
pub fn sync_conf() -> Result<String> {
    let c = lb_conf()?;
    ensure!(c.contains("global_defs {\n"), "lb.conf has no global_defs");
    Ok(c.replacen(
        "global_defs {\n",
        "global_defs {\n    # Connection sync, master and backup on every node.\n    lvs_sync_daemon e1\n",
        1,
    ))
}

/// What the sync story measured.
#[derive(Debug, Default)]
pub struct SyncFigures {
    pub hops_at_start: usize,
    /// Flows each node applied from the others' sync before the loss.
    pub applied: Vec<u64>,
    /// Flow entries each node sent before the loss.
    pub sent: Vec<u64>,
    /// rr connections kept through node 0's loss (same real server), out of those working.
    pub loss_rr: (usize, usize),
    /// Node 0 back (fresh, no flows; its sync asks the others for theirs): how long until
    /// the router has its next hop again, the flows it had applied by then, and the rr
    /// connections kept.
    pub back_after: Option<Duration>,
    pub back_applied: u64,
    pub back_rr: (usize, usize),
    /// Node 1 killed next: the flows it had taken over from node 0 or opened were sent by
    /// it, so the others keep them.
    pub second_loss_rr: (usize, usize),
    pub took: Duration,
}

/// A `conn_sync` counter of `d`'s status (0 when it cannot be read).
fn sync_counter(d: &Daemon, name: &str) -> u64 {
    d.status().ok().and_then(|s| s["conn_sync"][name].as_u64()).unwrap_or(0)
}

/// The story's node loss with connection sync (`sync_conf`): rr connections through three
/// nodes, each node sending its own new flows and applying the others'; node 0 killed as in
/// `story`; the rr connections ECMP moves to the other two find their flow there.
pub fn sync_story(out: &mut dyn Write) -> Result<SyncFigures> {
    let started = Instant::now();
    let mut f = SyncFigures::default();
    let topo = Topo::new()?;
    let dir = TempDir::new("scale-out-sync");
    // Every service up (the VIP is announced while each of its services is).
    let servers = start_servers(&topo)?;
    let _router = Bird::start(&topo.router, &dir, "router-sync", &shipped("bird-router.conf")?)?;
    let conf = sync_conf()?;
    let mut nodes: Vec<Option<Node>> = Vec::new();
    for i in 0..NODES {
        nodes.push(Some(start_node_with(&topo, &dir, i, 100, &conf)?));
    }
    let last_started = Instant::now();
    let up = topo.wait_hops(NODES, Duration::from_secs(20));
    f.hops_at_start = topo.next_hops().len();
    writeln!(out, "with connection sync (lvs_sync_daemon e1, no VRRP instance: master and backup on every node)")?;
    writeln!(out, "route {VIP}: {} next hops ({:.1} s after start)", f.hops_at_start, started.elapsed().as_secs_f64())?;
    if up.is_none() {
        bail!("the router never had {NODES} next hops");
    }
    // A starting sync asks the others for their flows (three requests, a second apart): past
    // them, the counts below are one send per flow.
    std::thread::sleep(Duration::from_secs(4).saturating_sub(last_started.elapsed()));
    let mut rr = Conns::open(&topo.client, 81, RR_CONNS)?;
    let steady = rr.round(1);
    // Every flow reaches the two other nodes: each node applies what the others opened
    // (scans every second; bounded wait). Then two more scan periods, in which an echo (a
    // node sending back what it applied) would show as more entries sent and applied.
    let t = Instant::now();
    let applied = |nodes: &[Option<Node>]| -> Vec<u64> {
        nodes.iter().flatten().map(|n| sync_counter(&n.lb, "applied")).collect()
    };
    while applied(&nodes).iter().sum::<u64>() < (RR_CONNS * (NODES - 1)) as u64 && t.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(2500));
    f.applied = applied(&nodes);
    f.sent = nodes.iter().flatten().map(|n| sync_counter(&n.lb, "sent_entries")).collect();
    writeln!(
        out,
        "{RR_CONNS} connections to port 81 (rr): a steady round {steady}/{RR_CONNS}; flow entries sent by each node {:?}, \
         applied from the others' sync {:?}",
        f.sent, f.applied
    )?;

    let gone = kill_node0(&topo, &mut nodes)?;
    let before = rr.conns.len();
    f.loss_rr = (rr.round(2), before);
    writeln!(
        out,
        "node 0 killed: its next hop gone after {gone:?}; rr connections that kept working {}/{} ({:.1}%)",
        f.loss_rr.0,
        f.loss_rr.1,
        pct(f.loss_rr.0, f.loss_rr.1)
    )?;

    // Node 0 back, fresh: its sync asks for the others' flows as it starts, and they send
    // those of their own and those they took over (forwarded since node 0 died).
    topo.nodes[0].sh("ip link set e0 up && ip link set e1 up")?;
    let t1 = Instant::now();
    nodes[0] = Some(start_node_with(&topo, &dir, 0, 101, &conf)?);
    f.back_after = topo.wait_hops(NODES, Duration::from_secs(20)).map(|_| t1.elapsed());
    f.back_applied = nodes[0].as_ref().map_or(0, |n| sync_counter(&n.lb, "applied"));
    let before = rr.conns.len();
    f.back_rr = (rr.round(3), before);
    writeln!(
        out,
        "node 0 back (fresh, no flows): next hop again after {:?}, {} flows applied from the others by then; \
         rr connections that kept working {}/{} ({:.1}%)",
        f.back_after,
        f.back_applied,
        f.back_rr.0,
        f.back_rr.1,
        pct(f.back_rr.0, f.back_rr.1)
    )?;

    let gone = kill_node(&topo, &mut nodes, 1)?;
    let before = rr.conns.len();
    f.second_loss_rr = (rr.round(4), before);
    writeln!(
        out,
        "node 1 killed: its next hop gone after {gone:?}; rr connections that kept working {}/{} ({:.1}%)",
        f.second_loss_rr.0,
        f.second_loss_rr.1,
        pct(f.second_loss_rr.0, f.second_loss_rr.1)
    )?;
    drop(rr);
    drop(nodes);
    drop(servers);
    f.took = tear_down(topo, started, out)?;
    Ok(f)
}

/// What the FRR story measured.
#[derive(Debug, Default)]
pub struct FrrFigures {
    /// The router's next hops once every node announced (node 1 by FRR, the others by BIRD).
    pub hops_at_start: Vec<String>,
    /// mh connections node 1 forwarded DR packets of, out of those opened.
    pub forwarded_by_frr_node: u64,
    /// `lb-daemon withdraw` on node 1: its next hop gone after; then `announce`: back after.
    pub withdrawn_after: Option<Duration>,
    pub hops_withdrawn: Vec<String>,
    pub announced_after: Option<Duration>,
    /// Node 1 killed (links down, kill -9 of lb-daemon and FRR): its next hop gone after.
    pub loss_detected: Option<Duration>,
    pub loss_mh: (usize, usize),
    pub took: Duration,
}

/// Node 1 runs FRR (`configs/anycast/frr-lb.conf`) instead of BIRD beside the same
/// lb-daemon; nodes 0 and 2 keep BIRD. The router (BIRD) must take node 1's announcement as
/// the others', follow a withdraw and an announce there, and lose node 1's next hop within
/// BFD's time when it dies, while mh connections keep working.
pub fn frr_story(out: &mut dyn Write) -> Result<FrrFigures> {
    let started = Instant::now();
    let mut f = FrrFigures::default();
    let topo = Topo::new()?;
    let dir = TempDir::new("scale-out-frr");
    let servers = start_servers(&topo)?;
    let _router = Bird::start(&topo.router, &dir, "router-frr", &shipped("bird-router.conf")?)?;
    let conf = lb_conf()?;
    let mut birds = vec![start_node_with(&topo, &dir, 0, 200, &conf)?, start_node_with(&topo, &dir, 2, 200, &conf)?];
    let (lb, _cfg) = start_lb(&topo, 1, "frr", &conf)?;
    let pins = lb.pin_dir.clone().context("lb-daemon on node 1 without pins")?;
    let frr_conf = shipped("frr-lb.conf")?;
    ensure!(frr_conf.contains("192.0.2.12"), "frr-lb.conf is not node 1's (192.0.2.12)");
    let mut frr = Frr::start(&topo.nodes[1], &dir, "frr-lb1", &frr_conf)?;
    let up = topo.wait_hops(NODES, Duration::from_secs(20));
    f.hops_at_start = topo.next_hops();
    writeln!(
        out,
        "FRR on node 1, BIRD on nodes 0 and 2: route {VIP} has {} next hops {:?} ({:.1} s after start)",
        f.hops_at_start.len(),
        f.hops_at_start,
        started.elapsed().as_secs_f64()
    )?;
    if up.is_none() {
        let frr_says = frr.show(
            &topo.nodes[1],
            &["show ip route table 100", "show bgp summary", "show bgp ipv4 unicast", "show bfd peers brief"],
        );
        let table = topo.nodes[1].ip(&["route", "show", "table", "100"]).unwrap_or_default();
        let ctl = dir.path().join("router-frr.ctl");
        let router = topo
            .router
            .command("birdc")
            .arg("-s")
            .arg(&ctl)
            .args(["show", "route", "all", "for", VIP])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        bail!(
            "the router never had {NODES} next hops: {:?}\nrouter:\n{router}\ntable 100 on node 1:\n{table}\nFRR:\n{frr_says}",
            f.hops_at_start
        );
    }
    let mut mh = Conns::open(&topo.client, 80, RR_CONNS)?;
    f.forwarded_by_frr_node = lb_daemon::dataplane::bpf::read_stats(&pins)
        .map(|s| s.global.0.get("reason_fwd_dr").copied().unwrap_or(0))
        .unwrap_or(0);
    writeln!(out, "{RR_CONNS} mh connections; DR packets forwarded by node 1: {}", f.forwarded_by_frr_node)?;

    let control = |what: &str| -> Result<()> {
        let o = Command::new(daemon::binary()?).arg(what).arg("--run-dir").arg(daemon::run_dir_for(&pins)).output()?;
        ensure!(o.status.success(), "lb-daemon {what}: {}", String::from_utf8_lossy(&o.stderr));
        Ok(())
    };
    let t = Instant::now();
    control("withdraw")?;
    f.withdrawn_after = topo.wait_hops(NODES - 1, Duration::from_secs(5)).map(|_| t.elapsed());
    f.hops_withdrawn = topo.next_hops();
    let t = Instant::now();
    control("announce")?;
    f.announced_after = topo.wait_hops(NODES, Duration::from_secs(10)).map(|_| t.elapsed());
    writeln!(
        out,
        "lb-daemon withdraw on node 1: next hops {:?} after {:?}; announce: {NODES} again after {:?}",
        f.hops_withdrawn, f.withdrawn_after, f.announced_after
    )?;

    let t = Instant::now();
    topo.nodes[1].sh("ip link set e0 down && ip link set e1 down")?;
    lb.signal(Signal::SIGKILL)?;
    frr.kill9();
    f.loss_detected = topo.wait_hops(NODES - 1, Duration::from_secs(5)).map(|_| t.elapsed());
    let before = mh.conns.len();
    f.loss_mh = (mh.round(2), before);
    writeln!(
        out,
        "node 1 killed (links down, kill -9 of lb-daemon and FRR): its next hop gone after {:?} (FRR's bfdd, 3 x 100 ms); \
         mh connections that kept working {}/{} ({:.1}%)",
        f.loss_detected,
        f.loss_mh.0,
        f.loss_mh.1,
        pct(f.loss_mh.0, f.loss_mh.1)
    )?;
    drop(mh);
    drop(frr);
    drop(lb);
    birds.clear();
    drop(servers);
    f.took = tear_down(topo, started, out)?;
    Ok(f)
}
