//! Scale-out behind ECMP (docs/scale-out.md): three load-balancer nodes, each running lb-daemon
//! (DR, `anycast_table`) and BIRD 2 (BGP + BFD), announce one VIP to a router running BIRD,
//! which installs one route with a next hop per node and spreads flows over them by an L4
//! hash. The configs are the shipped ones (`configs/anycast/`), with each node's address.
//!
//! ```text
//!  client  c0 198.51.100.1/24 ── r0 198.51.100.254/24  router (BIRD, ECMP, L4 hash)
//!                                br0 192.0.2.1/25 ── e0 192.0.2.11-13/25  lb0..lb2
//!                                r1 192.0.2.129/25 ─┐   e1 192.0.2.141-143/25
//!                                                  sw (bridge) ── b0 192.0.2.151-153/25 rs0..rs2
//! ```
//! Real servers hold the VIP on lo and answer the client through the router (DR). Measured and
//! printed: the route's next hops; how fast a killed node's next hop goes (links down, then
//! kill -9 of its daemons: only BFD can tell); the share of established connections that keep
//! working when ECMP moves them to another node, with mh (identical Maglev tables everywhere)
//! and, as the mutation, with rr on a second port; the same when the node comes back; and a
//! node whose service loses its quorum withdrawing the VIP while the others keep it.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    process::{Child, Command},
    time::{Duration, Instant},
};

use lb_tests::prelude::*;

const VIP: &str = "203.0.113.100";
const NODES: usize = 3;
/// Connections to the mh service (port 80) and to the rr one (port 81, the mutation).
const MH_CONNS: usize = 1000;
const RR_CONNS: usize = 300;
/// Client threads doing the request/response rounds.
const WORKERS: usize = 26;

fn node_addr(i: usize) -> String {
    format!("192.0.2.{}", 11 + i)
}

fn shipped(name: &str) -> String {
    std::fs::read_to_string(workspace_root().join("configs/anycast").join(name)).unwrap()
}

/// `bird -p -c FILE`: BIRD's own parser accepts the shipped configs.
#[test]
fn the_shipped_bird_configs_parse() {
    for f in ["bird-lb.conf", "bird-router.conf"] {
        let path = workspace_root().join("configs/anycast").join(f);
        let out = Command::new("bird").arg("-p").arg("-c").arg(&path).output().expect("bird (apt package bird2)");
        assert!(out.status.success(), "{f}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let lb = workspace_root().join("configs/anycast/lb.conf");
    let out = Command::new(daemon::binary().unwrap()).arg("-t").arg("-f").arg(&lb).output().unwrap();
    assert!(out.status.success(), "lb.conf: {}", String::from_utf8_lossy(&out.stderr));
}

/// BIRD in a namespace with a config file; killed on drop.
struct Bird {
    child: Child,
    sock: std::path::PathBuf,
}

impl Bird {
    fn start(ns: &Netns, dir: &TempDir, tag: &str, conf: &str) -> Bird {
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
            .expect("bird (apt package bird2; `cargo xtask setup` installs it)");
        let b = Bird { child, sock };
        assert!(eventually(Duration::from_secs(5), || b.sock.exists()), "BIRD {tag} did not start");
        b
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        self.kill9();
    }
}

struct Topo {
    client: Netns,
    router: Netns,
    _switch: Netns,
    nodes: Vec<Netns>,
    servers: Vec<Netns>,
}

impl Topo {
    fn new() -> Topo {
        use lb_tests::netns::{addr, veth};
        let client = Netns::new("sccli").unwrap();
        let router = Netns::new("scrt").unwrap();
        let switch = Netns::new("scsw").unwrap();
        veth(&client, "c0", &router, "r0").unwrap();
        addr(&client, "c0", "198.51.100.1/24").unwrap();
        addr(&router, "r0", "198.51.100.254/24").unwrap();
        client.ip(&["route", "add", "default", "via", "198.51.100.254"]).unwrap();
        router
            .sh("ip link add br0 type bridge && ip link set br0 up && ip addr add 192.0.2.1/25 dev br0 && \
                 sysctl -qw net.ipv4.ip_forward=1 net.ipv4.fib_multipath_hash_policy=1 \
                 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0")
            .unwrap();
        switch.sh("ip link add br0 type bridge && ip link set br0 up").unwrap();
        veth(&router, "r1", &switch, "sr").unwrap();
        addr(&router, "r1", "192.0.2.129/25").unwrap();
        router.sh("sysctl -qw net.ipv4.conf.r1.rp_filter=0").unwrap();
        switch.ip(&["link", "set", "sr", "master", "br0"]).unwrap();
        let mut nodes = Vec::new();
        for i in 0..NODES {
            let n = Netns::new(&format!("sclb{i}")).unwrap();
            let (rp, sp) = (format!("p{i}"), format!("l{i}"));
            veth(&n, "e0", &router, &rp).unwrap();
            router.ip(&["link", "set", &rp, "master", "br0"]).unwrap();
            veth(&n, "e1", &switch, &sp).unwrap();
            switch.ip(&["link", "set", &sp, "master", "br0"]).unwrap();
            addr(&n, "e0", &format!("{}/25", node_addr(i))).unwrap();
            addr(&n, "e1", &format!("192.0.2.{}/25", 141 + i)).unwrap();
            n.sh("sysctl -qw net.ipv4.ip_forward=1").unwrap();
            // XDP_REDIRECT out of a veth needs NAPI (GRO) on its peer.
            router.sh(&format!("ethtool -K {rp} gro on >/dev/null")).unwrap();
            switch.sh(&format!("ethtool -K {sp} gro on >/dev/null")).unwrap();
            nodes.push(n);
        }
        let mut servers = Vec::new();
        for j in 0..NODES {
            let s = Netns::new(&format!("scrs{j}")).unwrap();
            let port = format!("s{j}");
            veth(&s, "b0", &switch, &port).unwrap();
            switch.ip(&["link", "set", &port, "master", "br0"]).unwrap();
            addr(&s, "b0", &format!("192.0.2.{}/25", 151 + j)).unwrap();
            // DR: the VIP on lo, not answered for by ARP; replies go by the router.
            s.sh(&format!(
                "ip route add default via 192.0.2.129 && ip addr add {VIP}/32 dev lo && \
                 sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
                 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.b0.rp_filter=0"
            ))
            .unwrap();
            servers.push(s);
        }
        Topo { client, router, _switch: switch, nodes, servers }
    }

    /// The router's next hops for the VIP.
    fn next_hops(&self) -> Vec<String> {
        let out = self.router.ip(&["route", "show", VIP]).unwrap_or_default();
        out.split_whitespace()
            .collect::<Vec<_>>()
            .windows(2)
            .filter(|w| w[0] == "via")
            .map(|w| w[1].to_string())
            .collect()
    }

    /// Waits (bounded) until the router has `n` next hops; how long it took.
    fn wait_hops(&self, n: usize, limit: Duration) -> Option<Duration> {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if self.next_hops().len() == n {
                return Some(t0.elapsed());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

/// One load-balancer node's daemons.
struct Node {
    bird: Bird,
    lb: Daemon,
    cfg: TempConfig,
}

fn lb_conf() -> String {
    // The mutation: the same real servers on port 81 with rr, which has no shared table.
    let shipped = shipped("lb.conf");
    let at = shipped.find("virtual_server").unwrap();
    let svc = &shipped[at..];
    let rr = svc.replace("203.0.113.100 80", "203.0.113.100 81").replace("lb_algo mh", "lb_algo rr").replace(
        "    # Hash the client's port too: one client's connections spread over the real servers.\n    mh-port\n",
        "",
    );
    format!("{shipped}\n{rr}")
}

fn start_node(topo: &Topo, dir: &TempDir, i: usize, generation: u32) -> Node {
    let ns = &topo.nodes[i];
    // lb-daemon first: it clears what a killed run left in the announcement table before
    // BIRD could export it.
    let cfg = TempConfig::new(&format!("scale-lb{i}-{generation}"), &lb_conf());
    let pins = daemon::pin_dir(&format!("scale-{i}-{generation}"));
    let lb = Daemon::start(ns, &cfg, &pins, &[]).unwrap_or_else(|e| panic!("lb-daemon on node {i}: {e:#}"));
    let bird_conf = shipped("bird-lb.conf").replace("192.0.2.11", &node_addr(i));
    let bird = Bird::start(ns, dir, &format!("lb{i}-{generation}"), &bird_conf);
    Node { bird, lb, cfg }
}

/// Established connections, each with the real server that answered its first request.
struct Conns {
    conns: Vec<(TcpStream, String)>,
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
    fn open(client: &Netns, port: u16, count: usize) -> Conns {
        let to: SocketAddr = format!("{VIP}:{port}").parse().unwrap();
        let conns = client
            .run(move || {
                std::thread::scope(|s| {
                    let handles: Vec<_> = (0..WORKERS)
                        .map(|w| {
                            s.spawn(move || {
                                let mut out = Vec::new();
                                for k in (w..count).step_by(WORKERS) {
                                    let mut c = TcpStream::connect_timeout(&to, Duration::from_secs(5))
                                        .unwrap_or_else(|e| panic!("connection {k} to {to}: {e}"));
                                    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
                                    c.set_nodelay(true).unwrap();
                                    let who = ask(&mut c, 0).unwrap_or_else(|| panic!("no answer on {k}"));
                                    out.push((c, who));
                                }
                                out
                            })
                        })
                        .collect();
                    handles.into_iter().flat_map(|h| h.join().unwrap()).collect::<Vec<_>>()
                })
            })
            .unwrap();
        Conns { conns }
    }

    /// One request/response round on every connection still working: how many answered by
    /// the same real server (the others are dropped: reset, answered by another, or silent).
    fn round(&mut self, n: u64) -> usize {
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
                        g.into_iter()
                            .filter_map(|(mut c, who)| {
                                (ask(&mut c, n).as_deref() == Some(who.as_str())).then_some((c, who))
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        self.conns.len()
    }

    fn spread(&self) -> std::collections::BTreeMap<String, usize> {
        let mut m = std::collections::BTreeMap::new();
        for (_, who) in &self.conns {
            *m.entry(who.clone()).or_default() += 1;
        }
        m
    }
}

fn pct(part: usize, whole: usize) -> f64 {
    100.0 * part as f64 / whole.max(1) as f64
}

fn announced(d: &Daemon) -> Option<bool> {
    let s = d.status().ok()?;
    s["anycast"].as_array()?.iter().find(|a| a["vip"] == VIP).and_then(|a| a["announced"].as_bool())
}

#[test]
fn three_nodes_behind_ecmp_keep_mh_flows_through_a_node_loss_and_return() {
    require_root();
    let started = Instant::now();
    let topo = Topo::new();
    let dir = TempDir::new("scale-out");
    let _servers: Vec<Backend> = topo
        .servers
        .iter()
        .enumerate()
        .flat_map(|(j, s)| {
            [80u16, 81].map(|p| Backend::start(s, format!("rs{j}"), SocketAddr::from(([0, 0, 0, 0], p))))
        })
        .collect();
    // The router's BIRD, then the nodes.
    let _router = Bird::start(&topo.router, &dir, "router", &shipped("bird-router.conf"));
    let mut nodes: Vec<Option<Node>> = (0..NODES).map(|i| Some(start_node(&topo, &dir, i, 0))).collect();
    let up = topo.wait_hops(NODES, Duration::from_secs(20));
    let hops = topo.next_hops();
    println!("route {VIP}: {} next hops {hops:?} ({:.1} s after start)", hops.len(), started.elapsed().as_secs_f64());
    assert!(up.is_some(), "the router never had {NODES} next hops: {hops:?}");
    for n in nodes.iter().flatten() {
        assert_eq!(announced(&n.lb), Some(true), "{:?}", n.lb.status().ok());
    }

    let mut mh = Conns::open(&topo.client, 80, MH_CONNS);
    let mut rr = Conns::open(&topo.client, 81, RR_CONNS);
    println!("{MH_CONNS} mh and {RR_CONNS} rr connections; mh real servers {:?}", mh.spread());
    assert!(mh.spread().len() == NODES, "mh-port should spread one client's connections: {:?}", mh.spread());
    // Every node forwards a share: the router's L4 hash spreads one client's connections.
    let forwarded: Vec<u64> = nodes
        .iter()
        .flatten()
        .map(|n| {
            let pins = n.lb.pin_dir.clone().unwrap();
            read_stats(&pins).map(|s| s.global.0.get("reason_fwd_dr").copied().unwrap_or(0)).unwrap_or(0)
        })
        .collect();
    println!("packets forwarded (DR) by each node: {forwarded:?}");
    assert!(forwarded.iter().all(|f| *f > 100), "ECMP did not spread the connections: {forwarded:?}");
    assert_eq!(mh.round(1), MH_CONNS, "a steady round lost connections");
    assert_eq!(rr.round(1), RR_CONNS, "a steady round lost connections");

    // Node 0 dies: its links go down (no FIN, no BGP notification can leave), then kill -9.
    let t0 = Instant::now();
    topo.nodes[0].sh("ip link set e0 down && ip link set e1 down").unwrap();
    let mut dead = nodes[0].take().unwrap();
    dead.lb.signal(nix::sys::signal::Signal::SIGKILL).unwrap();
    dead.bird.kill9();
    let gone = topo.wait_hops(NODES - 1, Duration::from_secs(5)).map(|_| t0.elapsed());
    println!("node 0 down: next hop gone after {:?} (BFD 3 x 100 ms); now {:?}", gone, topo.next_hops());
    // The node's state is lost with it (its pins go with the daemon).
    drop(dead);
    assert!(gone.is_some_and(|d| d < Duration::from_secs(1)), "the dead node's next hop stayed: {gone:?}");
    let mh_left = mh.round(2);
    let rr_left = rr.round(2);
    let (mh_pct, rr_pct) = (pct(mh_left, MH_CONNS), pct(rr_left, RR_CONNS));
    println!(
        "node 0 lost: {mh_left}/{MH_CONNS} mh connections kept working ({mh_pct:.1}%), rr {rr_left}/{RR_CONNS} ({rr_pct:.1}%)"
    );

    // Node 0 comes back (fresh: no flow state), is announced once its checkers have reported.
    // The killed daemon's route is still in its table: the new one removes it at start.
    let stale = topo.nodes[0].ip(&["route", "show", "table", "100"]).unwrap();
    assert!(stale.contains(VIP), "the killed daemon's route: {stale:?}");
    topo.nodes[0].sh("ip link set e0 up && ip link set e1 up").unwrap();
    let t1 = Instant::now();
    nodes[0] = Some(start_node(&topo, &dir, 0, 1));
    let log = nodes[0].as_ref().unwrap().lb.log().join("\n");
    let removed = log.find("anycast: route removed");
    let added = log.find("anycast: route added");
    assert!(removed.is_some() && (added.is_none() || removed < added), "the stale route was not cleared first:\n{log}");
    let back = topo.wait_hops(NODES, Duration::from_secs(20));
    println!("node 0 back: {} next hops after {:.1} s", topo.next_hops().len(), t1.elapsed().as_secs_f64());
    assert!(back.is_some(), "node 0 never came back: {:?}", topo.next_hops());
    let (mh_before, rr_before) = (mh.conns.len(), rr.conns.len());
    let mh_kept = mh.round(3);
    let rr_kept = rr.round(3);
    let (mh_back, rr_back) = (pct(mh_kept, mh_before), pct(rr_kept, rr_before));
    println!(
        "node 0 back: {mh_kept}/{mh_before} mh connections kept working ({mh_back:.1}%), rr {rr_kept}/{rr_before} ({rr_back:.1}%)"
    );

    // A service on node 2 loses its quorum (a reload asking more weight than its real servers
    // have): node 2 withdraws the VIP, the others keep it.
    let n2 = nodes[2].as_ref().unwrap();
    n2.cfg.rewrite(&lb_conf().replace("    delay_loop 1\n", "    delay_loop 1\n    quorum 10\n"));
    n2.lb.signal(nix::sys::signal::Signal::SIGHUP).unwrap();
    let withdrawn = topo.wait_hops(NODES - 1, Duration::from_secs(10));
    let hops = topo.next_hops();
    println!("node 2 lost its quorum: next hops {hops:?} after {withdrawn:?}");
    assert!(withdrawn.is_some() && !hops.contains(&node_addr(2)), "node 2 kept the VIP: {hops:?}");
    assert_eq!(announced(&n2.lb), Some(false));
    let status = n2.lb.status().unwrap();
    let why = status["anycast"][0]["reason"].as_str().unwrap_or_default().to_string();
    assert!(why.contains("quorum"), "{status}");
    let left = mh.conns.len();
    let kept = mh.round(4);
    println!("node 2 withdrawn: {kept}/{left} mh connections kept working ({:.1}%)", pct(kept, left));
    // SIGTERM on node 1: it withdraws first, then stops forwarding; its flows move on.
    let mut n1 = nodes[1].take().unwrap();
    let t2 = Instant::now();
    n1.lb.stop().unwrap();
    let stopped = topo.wait_hops(1, Duration::from_secs(5)).map(|_| t2.elapsed());
    let log = n1.lb.log().join("\n");
    let (withdrew, detached) = (log.find("anycast: route removed"), log.find("stopped;"));
    assert!(withdrew.is_some() && withdrew < detached, "not withdrawn before the data plane stopped:\n{log}");
    let left2 = mh.conns.len();
    let kept2 = mh.round(5);
    println!(
        "node 1 stopped (SIGTERM): route down to {:?} after {stopped:?}; {kept2}/{left2} mh connections kept working ({:.1}%)",
        topo.next_hops(),
        pct(kept2, left2)
    );
    drop(n1);
    println!("scale-out test took {:.1} s", started.elapsed().as_secs_f64());

    assert!(mh_pct >= 99.0, "mh: only {mh_pct:.1}% of the connections survived a node loss");
    assert!(mh_back >= 99.0, "mh: only {mh_back:.1}% of the connections survived a node's return");
    assert!(pct(kept, left) >= 99.0, "mh: a withdrawal broke connections");
    assert!(pct(kept2, left2) >= 99.0, "mh: a node's orderly stop broke connections");
    // The mutation: without a table shared by every node, moved flows land elsewhere.
    // (With a different mh_seed on each node, mh kept 69% here: the tables must match.)
    assert!(rr_pct < 95.0, "rr kept {rr_pct:.1}%: the test would not see a broken mh");
}
