//! BFD end to end against BIRD 2 (Debian's bird2) as the peer: the session comes up on both
//! sides, goes down one detection time (the peer's multiplier × the negotiated interval)
//! after the peer falls silent, and on link loss; `track_bfd` moves a VRRP instance between
//! two lb-daemon nodes and into FAULT; `BFD_CHECK` takes a real server out of its service.
//! BIRD 2.0.12 never sends AdminDown (disabling its protocol or removing the neighbour just
//! stops its packets; checked with tcpdump), so FRR's bfdd is the peer for AdminDown, with
//! keepalived 2.2.7 as the oracle of what it does to a tracking instance.

use std::{
    path::PathBuf,
    process::{Child, Command},
    time::{Duration, Instant},
};

use lb_tests::prelude::*;

/// The peers' BFD session parameters in these tests: 200 ms, multiplier 3 (a 600 ms detection
/// time: 10% of it is 60 ms, which a loaded machine's scheduling stays within).
const BIRD_INTERVAL_MS: u64 = 200;
const BIRD_MULT: u64 = 3;

/// BIRD running `protocol bfd` with one neighbour, in a namespace; killed on drop.
struct Bird {
    child: Child,
    sock: PathBuf,
}

impl Bird {
    fn start(ns: &Netns, dir: &TempDir, neighbor: &str) -> Bird {
        let conf = dir.file(
            "bird.conf",
            &format!(
                "router id 192.0.2.250;\nprotocol device {{}}\nprotocol bfd b1 {{\n  interface \"*\" {{\n    \
                 min rx interval {BIRD_INTERVAL_MS} ms;\n    min tx interval {BIRD_INTERVAL_MS} ms;\n    \
                 idle tx interval 1000 ms;\n    multiplier {BIRD_MULT};\n  }};\n  neighbor {neighbor};\n}}\n"
            ),
        );
        let sock = dir.path().join("bird.ctl");
        let log = std::fs::File::create(dir.path().join("bird.log")).unwrap();
        let child = ns
            .command("bird")
            .arg("-c")
            .arg(&conf)
            .arg("-s")
            .arg(&sock)
            .arg("-P")
            .arg(dir.path().join("bird.pid"))
            .arg("-f")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("bird (apt package bird2; `cargo xtask setup` installs it)");
        let b = Bird { child, sock };
        assert!(eventually(Duration::from_secs(5), || b.sock.exists()), "BIRD did not start");
        b
    }

    /// BIRD's state of its session with `neighbor` (`birdc show bfd sessions`).
    fn state(&self, neighbor: &str) -> Option<String> {
        let out = Command::new("birdc").arg("-s").arg(&self.sock).args(["show", "bfd", "sessions"]).output().ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let line = text.lines().find(|l| l.split_whitespace().next() == Some(neighbor))?;
        line.split_whitespace().nth(2).map(str::to_string)
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two namespaces on one veth pair: lb (192.0.2.11 on `a0`) and peer (192.0.2.12 on `p0`).
fn pair() -> (Netns, Netns) {
    let lb = Netns::new("bfdlb").unwrap();
    let peer = Netns::new("bfdpeer").unwrap();
    lb_tests::netns::veth(&lb, "a0", &peer, "p0").unwrap();
    lb_tests::netns::addr(&lb, "a0", "192.0.2.11/24").unwrap();
    lb_tests::netns::addr(&peer, "p0", "192.0.2.12/24").unwrap();
    (lb, peer)
}

/// Drops incoming BFD control packets in `ns` (the peer falls silent), or stops dropping.
fn silence(ns: &Netns, on: bool) {
    if on {
        ns.sh("nft add table inet bfdt && nft add chain inet bfdt in '{ type filter hook input priority 0; }' && \
               nft add rule inet bfdt in udp dport 3784 drop")
            .unwrap();
    } else {
        ns.sh("nft delete table inet bfdt").unwrap();
    }
}

/// Log lines of `d` saying session `name` entered `state`.
fn entered(d: &Daemon, name: &str, state: &str) -> Vec<String> {
    let needle = format!("BFD ({name}) Entering {state} state");
    d.log().into_iter().filter(|l| l.contains(&needle)).collect()
}

/// A `Duration`'s Debug text (`301.2ms`, `1.5s`, `950µs`) as milliseconds.
fn debug_ms(text: &str) -> f64 {
    for (unit, scale) in [("ms", 1.0), ("µs", 0.001), ("ns", 0.000_001), ("s", 1000.0)] {
        if let Some(n) = text.strip_suffix(unit) {
            return n.parse::<f64>().unwrap() * scale;
        }
    }
    panic!("not a duration: {text}")
}

/// The `key=Some(DURATION)` / `key=DURATION` field of a log line, in milliseconds.
fn field_ms(line: &str, key: &str) -> f64 {
    let at = line.find(&format!("{key}=")).unwrap_or_else(|| panic!("no {key} in {line}")) + key.len() + 1;
    let rest = &line[at..];
    let rest = rest.strip_prefix("Some(").unwrap_or(rest);
    let end = rest.find([')', ' ']).unwrap_or(rest.len());
    debug_ms(&rest[..end])
}

/// Waits until session `name` of `d` has entered `state` more than `before` times; how long
/// that took from `since`.
fn wait_entered(d: &Daemon, name: &str, state: &str, before: usize, since: Instant, limit: Duration) -> Duration {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if entered(d, name, state).len() > before {
            return since.elapsed();
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    panic!("BFD {name} did not enter {state} within {limit:?}: {:#?}", d.log())
}

#[test]
fn a_session_with_bird_comes_up_and_detects_silence_and_link_loss() {
    require_root();
    let (lb, peer) = pair();
    let dir = TempDir::new("bfd-bird");
    let bird = Bird::start(&peer, &dir, "192.0.2.11");
    // Our side asks for 50 ms both ways, multiplier 4; BIRD sends every 100 ms, multiplier 3.
    let conf = dir.file(
        "lb.conf",
        "bfd_instance B1 {\n neighbor_ip 192.0.2.12\n source_ip 192.0.2.11\n min_rx 50\n min_tx 50\n multiplier 4\n}\n",
    );
    let d = Daemon::start(&lb, &conf, &daemon::pin_dir("bfd-bird"), &["-P"]).unwrap();
    assert!(eventually(Duration::from_secs(10), || bird.state("192.0.2.11").as_deref() == Some("Up")));
    assert!(!entered(&d, "B1", "Up").is_empty(), "{:#?}", d.log());
    // RFC 5881: from a port in 49152-65535, with TTL 255 (BIRD drops anything else).
    let ss = lb.sh("ss -Hnua src 192.0.2.11").unwrap();
    let port: u16 = ss.split_whitespace().nth(3).and_then(|a| a.rsplit(':').next()).unwrap().parse().unwrap();
    assert!(port >= 49152, "{ss}");
    // The negotiated detection time: BIRD's multiplier × max(our min_rx, BIRD's min_tx).
    let detect = (BIRD_MULT * BIRD_INTERVAL_MS.max(50)) as f64;

    // The peer falls silent: Down one detection time after its last packet.
    for round in 0..2 {
        let downs = entered(&d, "B1", "Down").len();
        let ups = entered(&d, "B1", "Up").len();
        // Both poll sequences (idle 1 s -> configured intervals) settle within a second.
        std::thread::sleep(Duration::from_secs(1));
        silence(&lb, true);
        let t0 = Instant::now();
        let took = wait_entered(&d, "B1", "Down", downs, t0, Duration::from_secs(3));
        let line = entered(&d, "B1", "Down").pop().unwrap();
        let silent = field_ms(&line, "silent");
        println!("round {round}: silent {silent:.1} ms, seen {took:?} after the drop: {line}");
        assert!(line.contains("diag=1"), "control detection time expired: {line}");
        assert!((silent - detect).abs() <= detect * 0.1, "silent {silent:.1} ms, want {detect} ms ± 10%: {line}");
        // From outside: not before the detection time less one peer interval (its last packet
        // came before the drop), not later than it plus 10%, with 20 ms (lower) and 60 ms
        // (upper: reading the log, a loaded machine) of slack.
        let ms = took.as_secs_f64() * 1000.0;
        assert!(
            ms >= detect - BIRD_INTERVAL_MS as f64 - 20.0 && ms <= detect * 1.1 + 60.0,
            "Down {ms:.1} ms after the drop, detection time {detect} ms"
        );
        assert!(eventually(Duration::from_secs(3), || bird.state("192.0.2.11").as_deref() != Some("Up")));
        silence(&lb, false);
        wait_entered(&d, "B1", "Up", ups, Instant::now(), Duration::from_secs(5));
        assert!(eventually(Duration::from_secs(5), || bird.state("192.0.2.11").as_deref() == Some("Up")));
    }

    // Link loss: the peer's end goes down.
    std::thread::sleep(Duration::from_secs(1));
    let downs = entered(&d, "B1", "Down").len();
    let ups = entered(&d, "B1", "Up").len();
    peer.ip(&["link", "set", "p0", "down"]).unwrap();
    let t0 = Instant::now();
    let took = wait_entered(&d, "B1", "Down", downs, t0, Duration::from_secs(3));
    assert!(took.as_secs_f64() * 1000.0 <= detect * 1.1 + 60.0, "Down {took:?} after link loss");
    peer.ip(&["link", "set", "p0", "up"]).unwrap();
    wait_entered(&d, "B1", "Up", ups, Instant::now(), Duration::from_secs(10));
}

/// A bfd_instance toward `neighbor` from `source` (100 ms, multiplier 3).
fn bfd_instance(name: &str, neighbor: impl std::fmt::Display, source: impl std::fmt::Display) -> String {
    format!(
        "bfd_instance {name} {{\n    neighbor_ip {neighbor}\n    source_ip {source}\n    min_rx 100\n    \
         min_tx 100\n    multiplier 3\n}}\n"
    )
}

/// VRRP instance `name` on l0 (VRID, VIP, priority), with `extra` lines.
fn vrrp_instance(name: &str, vrid: u8, vip: impl std::fmt::Display, prio: u8, extra: &str) -> String {
    format!(
        "vrrp_instance {name} {{\n    state BACKUP\n    interface l0\n    virtual_router_id {vrid}\n    \
         priority {prio}\n    advert_int 1\n    virtual_ipaddress {{\n        {vip}/24\n    }}\n{extra}}}\n"
    )
}

/// Status of instance `name` on `d`: (state, priority).
fn vrrp_state(d: &Daemon, name: &str) -> Option<(String, u64)> {
    let st = d.status().ok()?;
    let i = st["vrrp"].as_array()?.iter().find(|i| i["instance"] == name)?.clone();
    Some((i["state"].as_str()?.to_string(), i["priority"].as_u64()?))
}

/// keepalived's track_bfd: node 0 (priority 150) tracks its BFD session with BIRD (on the
/// segment's client) in VI_1 with weight -60 and in VI_2 unweighted; node 1 (100) has
/// neither. While the session is up node 0 is master of both; silent, VI_1 drops to 90 and
/// node 1 preempts it, VI_2 goes to FAULT and node 1 takes it; back up, node 0 takes both back.
#[test]
fn track_bfd_moves_vrrp_instances_by_weight_and_fault() {
    require_root();
    let seg = Segment::new(2).unwrap();
    let dir = TempDir::new("bfd-vrrp");
    let bird = Bird::start(&seg.client, &dir, &node4(0).to_string());
    let conf0 = format!(
        "{}{}{}",
        bfd_instance("B1", CLIENT4, node4(0)),
        vrrp_instance("VI_1", 51, VRRP_VIP4, 150, "    track_bfd {\n        B1 weight -60\n    }\n"),
        vrrp_instance("VI_2", 52, VRRP_VIP4_2, 150, "    track_bfd {\n        B1\n    }\n"),
    );
    let conf1 =
        format!("{}{}", vrrp_instance("VI_1", 51, VRRP_VIP4, 100, ""), vrrp_instance("VI_2", 52, VRRP_VIP4_2, 100, ""));
    let start = |i: usize, conf: &str| {
        let path = dir.file(&format!("node{i}.conf"), conf);
        Daemon::start(&seg.nodes[i], &path, &daemon::pin_dir(&format!("bfd-vrrp{i}")), &["-P"]).unwrap()
    };
    let d0 = start(0, &conf0);
    let d1 = start(1, &conf1);
    let both = |i: usize| seg.holds(i, VRRP_VIP4) && seg.holds(i, VRRP_VIP4_2);
    let neither = |i: usize| !seg.holds(i, VRRP_VIP4) && !seg.holds(i, VRRP_VIP4_2);
    assert!(eventually(Duration::from_secs(10), || bird.state(&node4(0).to_string()).as_deref() == Some("Up")));
    assert!(eventually(Duration::from_secs(10), || both(0) && neither(1)), "{:#?}\n{:#?}", d0.log(), d1.log());
    assert!(eventually(Duration::from_secs(2), || vrrp_state(&d0, "VI_1") == Some(("MASTER".into(), 150))));

    for _ in 0..2 {
        silence(&seg.nodes[0], true);
        assert!(eventually(Duration::from_secs(8), || both(1) && neither(0)), "{:#?}\n{:#?}", d0.log(), d1.log());
        assert!(eventually(Duration::from_secs(2), || {
            vrrp_state(&d0, "VI_1") == Some(("BACKUP".into(), 90))
                && vrrp_state(&d0, "VI_2").is_some_and(|s| s.0 == "FAULT")
        }));
        assert!(d0.log().iter().any(|l| l.contains("BFD B1 down")), "{:#?}", d0.log());
        silence(&seg.nodes[0], false);
        assert!(eventually(Duration::from_secs(10), || both(0) && neither(1)), "{:#?}\n{:#?}", d0.log(), d1.log());
        // The status file follows.
        assert!(eventually(Duration::from_secs(2), || vrrp_state(&d0, "VI_1") == Some(("MASTER".into(), 150))));
    }
}

/// keepalived's BFD_CHECK with BIRD on real server 0: out until the session first comes up;
/// then the session's Down takes it out of the service (new connections reach real server 1
/// only), Up brings it back; its TCP_CHECK failing takes it out too while the session is up
/// (every checker must pass).
#[test]
fn bfd_check_takes_a_real_server_out_and_back() {
    require_root();
    let topo = LbTopology::new(2).unwrap();
    let dir = TempDir::new("bfd-check");
    let mut servers = backends(&topo, 80);
    let conf = dir.file(
        "lb.conf",
        &format!(
            "{}virtual_server {VIP4} 80 {{\n    delay_loop 1\n    lb_algo rr\n    lb_kind NAT\n    protocol TCP\n    \
             real_server {} 80 {{\n        BFD_CHECK {{\n            name B0\n        }}\n        \
             TCP_CHECK {{\n            connect_timeout 1\n            retry 0\n        }}\n    }}\n    \
             real_server {} 80 {{\n        TCP_CHECK {{\n            connect_timeout 1\n        }}\n    }}\n}}\n",
            bfd_instance("B0", backend4(0), LB_BACKEND_SIDE4),
            backend4(0),
            backend4(1)
        ),
    );
    let pins = daemon::pin_dir("bfd-check");
    let d = Daemon::start(&topo.lb, &conf, &pins, &[]).unwrap();
    let service = format!("{VIP4}:80/tcp");
    let both = vec![format!("{}:80", backend4(0)), format!("{}:80", backend4(1))];
    let one = vec![format!("{}:80", backend4(1))];
    let vip: std::net::SocketAddr = (VIP4, 80).into();
    let answers = |n: usize| (0..n).map(|_| tcp_ask(&topo.client, vip, None)).collect::<Vec<_>>();
    // No peer yet: keepalived's BFD process reports the new session down at start, so the
    // check fails although `alpha` is not set.
    assert!(eventually(Duration::from_secs(5), || scheduled(&pins, &service) == one), "{:#?}", d.log());
    let bird = Bird::start(&topo.backends[0], &dir, &LB_BACKEND_SIDE4.to_string());
    assert!(eventually(Duration::from_secs(10), || bird.state(&LB_BACKEND_SIDE4.to_string()).as_deref() == Some("Up")));
    assert!(eventually(Duration::from_secs(5), || scheduled(&pins, &service) == both), "{:#?}", d.log());

    for _ in 0..2 {
        silence(&topo.lb, true);
        assert!(eventually(Duration::from_secs(3), || scheduled(&pins, &service) == one), "{:#?}", d.log());
        let removing = format!("Removing service [{}]:tcp:80 from VS [{VIP4}]:tcp:80", backend4(0));
        assert!(d.log().iter().any(|l| l.contains(&removing) && l.contains("BFD_CHECK")), "{:#?}", d.log());
        let got = answers(6);
        assert!(got.iter().all(|a| a.starts_with("be1")), "{got:?}");
        silence(&topo.lb, false);
        assert!(eventually(Duration::from_secs(5), || scheduled(&pins, &service) == both), "{:#?}", d.log());
        let got = answers(6);
        assert!(got.iter().any(|a| a.starts_with("be0")) && got.iter().any(|a| a.starts_with("be1")), "{got:?}");
    }
    // The session stays up; real server 0's TCP_CHECK fails: out all the same. Only the lines
    // logged after the server stopped count: a BFD flap on a loaded machine may log its own.
    let before = d.log().len();
    servers.remove(0);
    assert!(eventually(Duration::from_secs(5), || scheduled(&pins, &service) == one), "{:#?}", d.log());
    let removing = format!("Removing service [{}]:tcp:80 from VS [{VIP4}]:tcp:80", backend4(0));
    let tcp_removal = || d.log().iter().skip(before).any(|l| l.contains(&removing) && l.contains("TCP_CHECK"));
    assert!(eventually(Duration::from_secs(5), tcp_removal), "{:#?}", d.log());
    drop(bird);
}

/// FRR's bfdd alone (no zebra) with one peer, in a namespace; killed on drop. Unlike BIRD it
/// signals AdminDown (`shutdown` under the peer).
struct Bfdd {
    child: Child,
    dir: PathBuf,
    peer: String,
}

impl Bfdd {
    fn start(ns: &Netns, dir: &TempDir, peer: &str, local: &str) -> Bfdd {
        use std::os::unix::fs::PermissionsExt as _;
        // bfdd drops to the frr user: its sockets go where that user may write.
        let fdir = dir.path().join("frr");
        std::fs::create_dir_all(&fdir).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&fdir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let conf = fdir.join("bfdd.conf");
        std::fs::write(
            &conf,
            format!(
                "bfd\n peer {peer} local-address {local}\n  receive-interval {BIRD_INTERVAL_MS}\n  \
                 transmit-interval {BIRD_INTERVAL_MS}\n  detect-multiplier {BIRD_MULT}\n !\n!\n"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(fdir.join("bfdd.log")).unwrap();
        let child = ns
            .command("/usr/lib/frr/bfdd")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(fdir.join("bfdd.pid"))
            .arg("--vty_socket")
            .arg(&fdir)
            .arg("-z")
            .arg(fdir.join("zserv.api"))
            .arg("--bfdctl")
            .arg(fdir.join("bfdd.sock"))
            .args(["-u", "frr", "-g", "frr"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("bfdd (apt package frr; `cargo xtask setup` installs it)");
        let b = Bfdd { child, dir: fdir, peer: format!("{peer} local-address {local}") };
        assert!(eventually(Duration::from_secs(5), || b.dir.join("bfdd.vty").exists()), "bfdd did not start");
        b
    }

    fn vtysh(&self, cmds: &[&str]) -> String {
        let mut c = Command::new("vtysh");
        c.arg("--vty_socket").arg(&self.dir).args(["-d", "bfdd"]);
        for cmd in cmds {
            c.args(["-c", cmd]);
        }
        String::from_utf8_lossy(&c.output().unwrap().stdout).into_owned()
    }

    /// `shutdown` (AdminDown) or `no shutdown` of the peer.
    fn admin_down(&self, down: bool) {
        let peer = format!("peer {}", self.peer);
        self.vtysh(&["configure terminal", "bfd", &peer, if down { "shutdown" } else { "no shutdown" }]);
    }

    /// bfdd's status of its peer (`up`, `down`, `init`, `admin-down`).
    fn state(&self) -> Option<String> {
        let out = self.vtysh(&["show bfd peers brief"]);
        out.lines().find(|l| l.contains("192.0.2.")).and_then(|l| l.split_whitespace().last()).map(str::to_string)
    }
}

impl Drop for Bfdd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The peer signals AdminDown (FRR's bfdd, `shutdown`): the session goes Down, diagnostic 3,
/// but a `track_bfd` instance does not move, since keepalived sends no event for it (RFC 5880
/// 6.8.6: not a failure). keepalived 2.2.7 runs the same config against the same peer first,
/// as the oracle; then lb-daemon must do what it did. Silence afterwards still faults both.
#[test]
fn peer_admin_down_takes_the_session_down_without_moving_vrrp_as_keepalived() {
    require_root();
    let (lb, peer) = pair();
    let dir = TempDir::new("bfd-admin");
    let bfdd = Bfdd::start(&peer, &dir, "192.0.2.11", "192.0.2.12");
    let conf = dir.file(
        "lb.conf",
        &format!(
            "{}vrrp_instance VI_1 {{\n    state BACKUP\n    interface a0\n    virtual_router_id 51\n    priority 100\n    \
             advert_int 1\n    virtual_ipaddress {{\n        192.0.2.100/24\n    }}\n    track_bfd {{\n        B1\n    }}\n}}\n",
            bfd_instance("B1", "192.0.2.12", "192.0.2.11")
        ),
    );
    let holds = || lb.ip(&["-br", "addr", "show", "a0"]).is_ok_and(|o| o.contains(" 192.0.2.100/"));
    for ours in [false, true] {
        let who = if ours { "lb-daemon" } else { "keepalived" };
        let (daemon, keepalived);
        let log: Box<dyn Fn() -> String> = if ours {
            daemon = Daemon::start(&lb, &conf, &daemon::pin_dir("bfd-admin"), &["-P"]).unwrap();
            Box::new(|| daemon.log().join("\n"))
        } else {
            keepalived = Keepalived::start(&lb, &conf, dir.path(), "ka").unwrap();
            Box::new(|| keepalived.log())
        };
        let count = |needle: &str| log().matches(needle).count();
        let (session_down, fault) = if ours {
            ("BFD (B1) Entering Down state", "(VI_1) Entering FAULT STATE")
        } else {
            ("(B1) Entering Down state", "(VI_1) Entering FAULT STATE")
        };
        assert!(eventually(Duration::from_secs(10), || bfdd.state().as_deref() == Some("up")), "{who}: {}", log());
        assert!(eventually(Duration::from_secs(8), holds), "{who} never master: {}", log());
        let (downs, faults) = (count(session_down), count(fault));

        bfdd.admin_down(true);
        assert!(eventually(Duration::from_secs(3), || count(session_down) > downs), "{who}: {}", log());
        let line = log().lines().rfind(|l| l.contains(session_down)).unwrap().to_string();
        if ours {
            assert!(line.contains("diag=3") && line.contains("remote=\"AdminDown\""), "{line}");
        } else {
            assert!(line.contains("Neighbor Signaled Session Down"), "{line}");
        }
        std::thread::sleep(Duration::from_secs(2));
        assert!(holds() && count(fault) == faults, "{who} moved on AdminDown: {}", log());

        bfdd.admin_down(false);
        assert!(eventually(Duration::from_secs(5), || bfdd.state().as_deref() == Some("up")), "{who}: {}", log());
        // Silence is a failure: FAULT, the VIP goes; back when the peer is heard again.
        std::thread::sleep(Duration::from_secs(1));
        silence(&lb, true);
        assert!(eventually(Duration::from_secs(3), || count(fault) > faults && !holds()), "{who}: {}", log());
        silence(&lb, false);
        assert!(eventually(Duration::from_secs(8), holds), "{who}: {}", log());
    }
}

/// `track_bfd` on a vrrp_sync_group (weight 0, as keepalived takes it there): both members in
/// FAULT while the session is down, back when it is up. A SIGHUP with the session unchanged
/// keeps it running (no Down, no FAULT).
#[test]
fn sync_group_track_bfd_faults_every_member_and_a_reload_keeps_the_session() {
    require_root();
    let seg = Segment::new(1).unwrap();
    let dir = TempDir::new("bfd-sync");
    let bird = Bird::start(&seg.client, &dir, &node4(0).to_string());
    let conf = dir.file(
        "node0.conf",
        &format!(
            "{}vrrp_sync_group G {{\n    group {{\n        VI_1\n        VI_2\n    }}\n    track_bfd {{\n        B1\n    \
             }}\n}}\n{}{}",
            bfd_instance("B1", CLIENT4, node4(0)),
            vrrp_instance("VI_1", 51, VRRP_VIP4, 100, ""),
            vrrp_instance("VI_2", 52, VRRP_VIP4_2, 100, ""),
        ),
    );
    let d = Daemon::start(&seg.nodes[0], &conf, &daemon::pin_dir("bfd-sync"), &["-P"]).unwrap();
    let both = || seg.holds(0, VRRP_VIP4) && seg.holds(0, VRRP_VIP4_2);
    let states = || (vrrp_state(&d, "VI_1").map(|s| s.0), vrrp_state(&d, "VI_2").map(|s| s.0));
    let fault = (Some("FAULT".to_string()), Some("FAULT".to_string()));
    assert!(eventually(Duration::from_secs(10), || bird.state(&node4(0).to_string()).as_deref() == Some("Up")));
    assert!(eventually(Duration::from_secs(8), both), "{:#?}", d.log());

    silence(&seg.nodes[0], true);
    assert!(eventually(Duration::from_secs(3), || states() == fault && !seg.holds(0, VRRP_VIP4)), "{:#?}", d.log());
    assert!(d.log().iter().any(|l| l.contains("sync group G: BFD B1 down")), "{:#?}", d.log());
    silence(&seg.nodes[0], false);
    assert!(eventually(Duration::from_secs(8), both), "{:#?}", d.log());

    let (downs, ups) = (entered(&d, "B1", "Down").len(), entered(&d, "B1", "Up").len());
    d.signal(nix::sys::signal::Signal::SIGHUP).unwrap();
    assert!(d.wait_log("SIGHUP: reloading", Duration::from_secs(5)), "{:#?}", d.log());
    std::thread::sleep(Duration::from_secs(2));
    assert!(!d.log().iter().any(|l| l.contains("reload refused")), "{:#?}", d.log());
    assert_eq!((entered(&d, "B1", "Down").len(), entered(&d, "B1", "Up").len()), (downs, ups), "{:#?}", d.log());
    assert!(both() && !d.log().iter().any(|l| l.contains("FAULT") && l.contains("reload")), "{:#?}", d.log());
    assert_eq!(bird.state(&node4(0).to_string()).as_deref(), Some("Up"));
}

/// The same over IPv6 (RFC 5881's hop limit 255: keepalived's IPv6 default is 64, which BIRD
/// drops, so the config says `hoplimit 255` as a keepalived user must).
#[test]
fn an_ipv6_session_with_bird_comes_up_and_detects_silence() {
    require_root();
    let (lb, peer) = pair();
    lb.ip(&["addr", "add", "2001:db8:bfd::11/64", "dev", "a0", "nodad"]).unwrap();
    peer.ip(&["addr", "add", "2001:db8:bfd::12/64", "dev", "p0", "nodad"]).unwrap();
    let dir = TempDir::new("bfd-bird6");
    let bird = Bird::start(&peer, &dir, "2001:db8:bfd::11");
    let conf = dir.file(
        "lb.conf",
        "bfd_instance B6 {\n neighbor_ip 2001:db8:bfd::12\n source_ip 2001:db8:bfd::11\n min_rx 50\n min_tx 50\n \
         hoplimit 255\n}\n",
    );
    let d = Daemon::start(&lb, &conf, &daemon::pin_dir("bfd-bird6"), &["-P"]).unwrap();
    assert!(eventually(Duration::from_secs(10), || bird.state("2001:db8:bfd::11").as_deref() == Some("Up")));
    assert!(!entered(&d, "B6", "Up").is_empty(), "{:#?}", d.log());
    std::thread::sleep(Duration::from_secs(1));
    silence(&lb, true);
    wait_entered(&d, "B6", "Down", 0, Instant::now(), Duration::from_secs(3));
    let line = entered(&d, "B6", "Down").pop().unwrap();
    let detect = (BIRD_MULT * BIRD_INTERVAL_MS) as f64;
    let silent = field_ms(&line, "silent");
    assert!((silent - detect).abs() <= detect * 0.1, "silent {silent:.1} ms, want {detect} ms ± 10%: {line}");
}

/// The TTL options and `passive`, judged by keepalived 2.2.7 as the peer: our `ttl` is the TTL
/// our packets leave with (keepalived, expecting 255, discards them until its `max_hops`
/// allows them), our `max_hops` lets keepalived's lower TTL in, and two `passive` ends never
/// start a session while one active end does. `neighbour_ip` is keepalived's other spelling.
#[test]
fn ttl_max_hops_and_passive_decide_sessions_with_keepalived() {
    require_root();
    let (lb, peer) = pair();
    let dir = TempDir::new("bfd-ttl");
    let ours = |extra: &str| {
        format!(
            "bfd_instance B1 {{\n    neighbour_ip 192.0.2.12\n    source_ip 192.0.2.11\n    min_rx 100\n    \
             min_tx 100\n{extra}}}\n"
        )
    };
    let theirs = |extra: &str| {
        format!(
            "bfd_instance B1 {{\n    neighbor_ip 192.0.2.11\n    source_ip 192.0.2.12\n    min_rx 100\n    \
             min_tx 100\n{extra}}}\n"
        )
    };
    // (our lines, keepalived's lines, whether the session comes up)
    let cases = [
        ("    ttl 200\n", "", false),
        ("    ttl 200\n", "    max_hops 60\n", true),
        ("", "    ttl 200\n", false),
        ("    max_hops 60\n", "    ttl 200\n", true),
        ("    passive\n", "    passive\n", false),
        ("    passive\n", "", true),
    ];
    for (i, (mine, kas, up)) in cases.into_iter().enumerate() {
        let kconf = dir.file(&format!("ka{i}.conf"), &theirs(kas));
        let mut k = Keepalived::start(&peer, &kconf, dir.path(), &format!("ka{i}")).unwrap();
        let conf = dir.file(&format!("lb{i}.conf"), &ours(mine));
        let mut d = Daemon::start(&lb, &conf, &daemon::pin_dir(&format!("bfd-ttl{i}")), &["-P"]).unwrap();
        let came_up = || !entered(&d, "B1", "Up").is_empty() && k.log().contains("(B1) Entering Up state");
        let what = format!("case {i}: ours {mine:?}, keepalived {kas:?}");
        if up {
            assert!(eventually(Duration::from_secs(8), came_up), "{what}: no session\n{:#?}\n{}", d.log(), k.log());
        } else {
            // Both ends send at least every idle second: 4 s is several chances.
            std::thread::sleep(Duration::from_secs(4));
            let (mine_up, theirs_up) = (!entered(&d, "B1", "Up").is_empty(), k.log().contains("Entering Up state"));
            assert!(!mine_up && !theirs_up, "{what}: a session came up\n{:#?}\n{}", d.log(), k.log());
        }
        d.stop().unwrap();
        k.stop().unwrap();
    }
}
