//! Forwarding end to end in namespaces: a client talks TCP and UDP to the VIP, lb-daemon's
//! XDP program sends each flow to a real server (NAT: both directions rewritten; DR: MAC only)
//! and the client completes connections and data transfer. Scheduler spread, stickiness,
//! persistence and draining are observed from which backend answers.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    path::PathBuf,
    time::Duration,
};

use lb_tests::prelude::*;

/// lb-daemon on the topology's load balancer with `conf`: its config file, pin directory and
/// process.
fn lb(topo: &LbTopology, tag: &str, conf: &str) -> (TempConfig, PathBuf, Daemon) {
    daemon::on_lb(topo, &format!("fwd-{tag}"), conf, &[])
}

fn vip4(port: u16) -> SocketAddr {
    (VIP4, port).into()
}

fn vip6(port: u16) -> SocketAddr {
    (VIP6, port).into()
}

const NAT_CONF: &str = "
virtual_server 203.0.113.10 80 {
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 198.51.100.11 8080 {
    }
    real_server 198.51.100.12 8080 {
    }
    real_server 198.51.100.13 8080 {
    }
}
virtual_server 203.0.113.10 53 {
    lb_algo wrr
    lb_kind NAT
    protocol UDP
    real_server 198.51.100.11 8080 {
        weight 2
    }
    real_server 198.51.100.12 8080 {
        weight 1
    }
}
virtual_server 2001:db8:f::10 80 {
    lb_algo sh
    lb_kind NAT
    protocol TCP
    real_server 2001:db8:b::11 8080 {
    }
    real_server 2001:db8:b::12 8080 {
    }
    real_server 2001:db8:b::13 8080 {
    }
}
virtual_server 203.0.113.10 8443 {
    lb_algo dh
    lb_kind NAT
    protocol TCP
    real_server 198.51.100.11 8080 {
    }
    real_server 198.51.100.12 8080 {
    }
    real_server 198.51.100.13 8080 {
    }
}
virtual_server 203.0.113.10 443 {
    lb_algo rr
    lb_kind NAT
    protocol TCP
    persistence_timeout 60
    real_server 198.51.100.11 8080 {
    }
    real_server 198.51.100.12 8080 {
    }
    real_server 198.51.100.13 8080 {
    }
}
";

#[test]
fn nat_tcp_and_udp_through_the_vip_with_rr_wrr_sh_dh_and_persistence() {
    require_root();
    let topo = LbTopology::new(3).unwrap();
    let _servers = backends(&topo, 8080);
    let (_cfg, pins, d) = lb(&topo, "nat", NAT_CONF);

    // rr: 30 connections, each completes a request and reply through the VIP.
    let names: Vec<String> = (0..30).map(|_| tcp_ask(&topo.client, vip4(80), None)).collect();
    let s = spread(&names);
    assert_eq!(s.len(), 3, "rr must use every real server: {s:?}");
    for (n, c) in &s {
        assert!((8..=12).contains(c), "rr uneven: {n} got {c} of 30 ({s:?})");
    }

    // wrr 2:1 over UDP.
    let names: Vec<String> = (0..30).map(|_| udp_ask(&topo.client, vip4(53))).collect();
    let s = spread(&names);
    assert_eq!(s.len(), 2, "{s:?}");
    let ratio = s["be0"] as f64 / s["be1"] as f64;
    assert!((1.4..=2.9).contains(&ratio), "wrr 2:1 gave {s:?}");

    // sh over IPv6: one client address always lands on the same real server.
    let names: Vec<String> = (0..6).map(|_| tcp_ask(&topo.client, vip6(80), None)).collect();
    assert_eq!(spread(&names).len(), 1, "sh must be sticky per client: {names:?}");

    // dh hashes the destination: every flow to this VIP lands on one real server.
    let names: Vec<String> = (0..6).map(|_| tcp_ask(&topo.client, vip4(8443), None)).collect();
    assert_eq!(spread(&names).len(), 1, "dh must be sticky per destination: {names:?}");

    // Persistence: rr would rotate, persistence keeps the client on its first real server.
    let names: Vec<String> = (0..6).map(|_| tcp_ask(&topo.client, vip4(443), None)).collect();
    assert_eq!(spread(&names).len(), 1, "persistence must hold the client: {names:?}");

    let snap = read_stats(&pins).unwrap();
    let g = &snap.global.0;
    assert!(g["reason_fwd_nat"] > 0 && g["reason_nat_reply"] > 0, "{g:?}");
    drop(d);
}

const DR_CONF: &str = "
virtual_server 203.0.113.10 80 {
    lb_algo mh
    lb_kind DR
    protocol TCP
    real_server 198.51.100.11 80 {
    }
    real_server 198.51.100.12 80 {
    }
    real_server 198.51.100.13 80 {
    }
}
";

#[test]
fn dr_delivers_to_backends_holding_the_vip_and_mh_is_sticky() {
    require_root();
    let topo = LbTopology::new(3).unwrap();
    // DR real servers hold the VIP on lo; their replies pass the lb's kernel.
    topo.direct_return().unwrap();
    let servers = backends_at(&topo, |_| (VIP4, 80).into());
    let (_cfg, pins, d) = lb(&topo, "dr", DR_CONF);

    let names: Vec<String> = (0..8).map(|_| tcp_ask(&topo.client, vip4(80), None)).collect();
    assert_eq!(spread(&names).len(), 1, "mh hashes the client address: one real server for one client: {names:?}");
    let snap = read_stats(&pins).unwrap();
    assert!(snap.global.0["reason_fwd_dr"] >= 8, "{:?}", snap.global.0);
    drop(d);
    drop(servers);
}

const DRAIN_CONF: &str = "
virtual_server 203.0.113.10 80 {
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 198.51.100.11 8080 {
    }
    real_server 198.51.100.12 8080 {
    }
}
";

#[test]
fn weight_zero_drains_new_flows_but_keeps_established_ones() {
    require_root();
    let topo = LbTopology::new(2).unwrap();
    let _servers = backends(&topo, 8080);
    let (cfg, pins, d) = lb(&topo, "drain", DRAIN_CONF);

    // Open long-lived connections to both real servers.
    let mut held: Vec<(String, TcpStream)> = (0..4).map(|_| tcp_hold(&topo.client, vip4(80))).collect();
    assert!(
        held.iter().any(|(n, _)| n == "be1"),
        "no connection on be1: {:?}",
        held.iter().map(|h| &h.0).collect::<Vec<_>>()
    );

    // Drain be1 (weight 0) by reload.
    cfg.rewrite(&DRAIN_CONF.replace("real_server 198.51.100.12 8080 {", "real_server 198.51.100.12 8080 {\n weight 0"));
    d.signal(nix::sys::signal::Signal::SIGHUP).unwrap();
    assert!(d.wait_log("reload applied", Duration::from_secs(10)), "{}", d.log().join("\n"));

    let names: Vec<String> = (0..6).map(|_| tcp_ask(&topo.client, vip4(80), None)).collect();
    assert!(names.iter().all(|n| n == "be0"), "a drained real server took new flows: {names:?}");
    // Established connections to be1 still carry data both ways: be1 itself answers what
    // we send (a flow moved to be0 would be reset there, or answered by be0).
    for (name, s) in held.iter_mut().filter(|(n, _)| n == "be1") {
        s.write_all(b"more").unwrap_or_else(|e| panic!("established flow to {name} broken: {e}"));
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut buf = [0u8; 64];
        let got = s.read(&mut buf).unwrap_or_else(|e| panic!("no answer on the established flow to {name}: {e}"));
        assert_eq!(&buf[..got], b"be1:more", "the established flow to {name} was answered by another server");
    }
    let snap = read_stats(&pins).unwrap();
    let svc = &snap.services[0];
    let be1 = svc.reals.iter().find(|r| r.real.starts_with("198.51.100.12")).unwrap();
    assert_eq!(be1.weight, 0);
    drop(held);
    drop(d);
}

const TUN_CONF: &str = "
virtual_server 203.0.113.10 80 {
    lb_algo wrr
    lb_kind TUN
    protocol TCP
    real_server 198.51.100.11 80 {
        weight 1
    }
    real_server 198.51.100.12 80 {
        weight 1
    }
}
virtual_server 2001:db8:f::10 80 {
    lb_algo rr
    lb_kind TUN
    protocol TCP
    real_server 2001:db8:b::11 80 {
    }
    real_server 2001:db8:b::12 80 {
    }
}
";

/// `lb-daemon decap` strips only what a load balancer tunnelled to a local VIP: a host on the
/// real servers' network sending IPIP / IPv6-in-IPv6 with a forged inner source, a tunnelled
/// packet to an address that is not a VIP, and a fragment of a tunnelled packet are dropped
/// and counted; the load balancer's own packet arrives.
#[test]
fn decap_takes_only_the_load_balancers_packets_to_local_vips() {
    use socket2::{Domain, Protocol, Socket, Type};
    require_root();
    let topo = LbTopology::new(2).unwrap();
    topo.direct_return().unwrap();
    let (real, attacker) = (&topo.backends[0], &topo.backends[1]);
    let (vip4, vip6) = (VIP4, VIP6);
    let decap = daemon::decap(real);
    let sink4 = real.run(|| std::net::UdpSocket::bind((vip4, 7777)).unwrap()).unwrap();
    let sink6 = real.run(|| std::net::UdpSocket::bind((vip6, 7777)).unwrap()).unwrap();
    for s in [&sink4, &sink6] {
        s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    }
    let inner4 = |dst: std::net::Ipv4Addr, what: &[u8]| -> Vec<u8> {
        let mut p = Vec::new();
        etherparse::PacketBuilder::ipv4([203, 0, 113, 77], dst.octets(), 64)
            .udp(4000, 7777)
            .write(&mut p, what)
            .unwrap();
        p
    };
    let inner6 = |what: &[u8]| -> Vec<u8> {
        let mut p = Vec::new();
        let forged: std::net::Ipv6Addr = "2001:db8:f00::77".parse().unwrap();
        etherparse::PacketBuilder::ipv6(forged.octets(), vip6.octets(), 64)
            .udp(4000, 7777)
            .write(&mut p, what)
            .unwrap();
        p
    };
    let real4 = SocketAddr::new(backend4(0).into(), 0);
    let real6 = SocketAddr::new(backend6(0).into(), 0);
    // The kernel writes the outer header: IPIP (protocol 4) and IPv6-in-IPv6 (41).
    let tunnel = |ns: &Netns, to: std::net::SocketAddr, inner: Vec<u8>| {
        ns.run(move || {
            let (domain, proto) = if to.is_ipv4() { (Domain::IPV4, 4) } else { (Domain::IPV6, 41) };
            let s = Socket::new(domain, Type::RAW, Some(Protocol::from(proto))).unwrap();
            s.send_to(&inner, &to.into()).unwrap();
        })
        .unwrap();
    };
    tunnel(attacker, real4, inner4(vip4, b"forged v4"));
    tunnel(attacker, real6, inner6(b"forged v6"));
    tunnel(&topo.lb, real4, inner4(backend4(0), b"not to a VIP"));
    tunnel(&topo.lb, real4, inner4(vip4, b"from the lb"));
    // A fragment of a tunnelled packet from the load balancer's address (MF set).
    let inner = inner4(vip4, b"fragment");
    let mut outer = etherparse::Ipv4Header::new(
        inner.len() as u16,
        64,
        etherparse::IpNumber(4),
        LB_BACKEND_SIDE4.octets(),
        backend4(0).octets(),
    )
    .unwrap();
    outer.more_fragments = true;
    outer.header_checksum = outer.calc_header_checksum();
    let mut frame = outer.to_bytes().to_vec();
    frame.extend_from_slice(&inner);
    topo.lb
        .run(move || {
            let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(libc::IPPROTO_RAW))).unwrap();
            s.send_to(&frame, &real4.into()).unwrap();
        })
        .unwrap();
    let mut got = Vec::new();
    for s in [&sink4, &sink6] {
        let mut buf = [0u8; 64];
        while let Ok(n) = s.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    assert_eq!(got, ["from the lb"], "only the load balancer's packet to a VIP is delivered");
    decap.signal(nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(decap.wait_log("decap counters", Duration::from_secs(5)), "{:#?}", decap.log());
    let line = decap.log().into_iter().rev().find(|l| l.contains("decap counters")).unwrap();
    for want in ["decapsulated=1", "dropped_foreign_source=2", "dropped_foreign_vip=1", "dropped_fragment=1"] {
        assert!(line.contains(want), "{want} in {line}");
    }
}

/// TUN on this kernel, which has no ipip module: the real servers run `lb-daemon decap`
/// (lb-ebpf's TC program) to strip the IPIP / IPv6-in-IPv6 header the load balancer adds.
#[test]
fn tun_encapsulates_to_real_servers_that_decapsulate_with_lb_decap() {
    require_root();
    let topo = LbTopology::new(2).unwrap();
    let mut decaps = Vec::new();
    let mut servers = Vec::new();
    topo.direct_return().unwrap();
    for (i, b) in topo.backends.iter().enumerate() {
        decaps.push(
            Daemon::spawn(
                b,
                &[
                    "decap",
                    "--interface",
                    "b0",
                    "--from",
                    &LB_BACKEND_SIDE4.to_string(),
                    "--from",
                    &LB_BACKEND_SIDE6.to_string(),
                ],
                "lb-daemon decap ready",
            )
            .unwrap(),
        );
        servers.push(Backend::start(b, format!("be{i}"), format!("{VIP4}:80").parse().unwrap()));
        servers.push(Backend::start(b, format!("be{i}"), format!("[{VIP6}]:80").parse().unwrap()));
    }
    let (_cfg, pins, d) = lb(&topo, "tun", TUN_CONF);

    let names: Vec<String> = (0..10).map(|_| tcp_ask(&topo.client, vip4(80), None)).collect();
    let s = spread(&names);
    assert!(s.values().all(|c| (4..=6).contains(c)) && s.len() == 2, "wrr 1:1 over TUN: {s:?}");
    let names: Vec<String> = (0..4).map(|_| tcp_ask(&topo.client, vip6(80), None)).collect();
    assert_eq!(spread(&names).len(), 2, "IPv6-in-IPv6 to both real servers: {names:?}");
    let snap = read_stats(&pins).unwrap();
    assert!(snap.global.0["reason_fwd_tun"] >= 14, "{:?}", snap.global.0);
    drop(d);
    drop(servers);
    drop(decaps);
}

const LC_CONF: &str = "
virtual_server 203.0.113.10 80 {
    lb_algo lc
    lb_kind NAT
    protocol TCP
    real_server 198.51.100.11 8080 {
    }
    real_server 198.51.100.12 8080 {
    }
}
";

/// lc counts live connections (new flow +1, FIN/RST -1): long-lived connections held open
/// steer new ones to the real server with fewer.
#[test]
fn lc_sends_new_connections_to_the_least_loaded_real_server() {
    require_root();
    let topo = LbTopology::new(2).unwrap();
    let _servers = backends(&topo, 8080);
    let (_cfg, pins, d) = lb(&topo, "lc", LC_CONF);

    let mut held: Vec<(String, TcpStream)> = (0..4).map(|_| tcp_hold(&topo.client, vip4(80))).collect();
    let s = spread(&held.iter().map(|h| h.0.clone()).collect::<Vec<_>>());
    assert_eq!((s.get("be0"), s.get("be1")), (Some(&2), Some(&2)), "lc alternates while counts tie: {s:?}");

    // Close be0's two connections: be0 now has 0 live connections, be1 has 2.
    held.retain(|(n, _)| n != "be0");
    std::thread::sleep(Duration::from_millis(300));
    let next: Vec<(String, TcpStream)> = (0..2).map(|_| tcp_hold(&topo.client, vip4(80))).collect();
    assert!(
        next.iter().all(|(n, _)| n == "be0"),
        "lc must fill the idle real server first: {:?}",
        next.iter().map(|h| &h.0).collect::<Vec<_>>()
    );
    let snap = read_stats(&pins).unwrap();
    let conns: Vec<u64> = snap.services[0].reals.iter().map(|r| r.active_conns).collect();
    assert_eq!(conns, [2, 2], "{:?}", snap.services[0]);
    drop(held);
    drop(next);
    drop(d);
}

fn map_id(pin: &std::path::Path) -> u64 {
    map_show(pin).unwrap()["id"].as_u64().unwrap()
}

/// kill -9 leaves forwarding running (pinned XDP links and maps): established connections
/// keep working while no daemon runs. The restarted daemon adopts the links (the program is
/// replaced in place) and the maps: the same map ids, the conntrack entries, and so every
/// established connection keeps its real server.
#[test]
fn kill_9_keeps_forwarding_and_restart_adopts_links_maps_and_flows() {
    require_root();
    let topo = LbTopology::new(3).unwrap();
    let _servers = backends(&topo, 8080);
    let (cfg, pins, d) = lb(&topo, "restart", NAT_CONF);
    let mut held: Vec<(String, TcpStream)> = (0..6).map(|_| tcp_hold(&topo.client, vip4(80))).collect();
    let ct_id = map_id(&pins.join("lb_conntrack4"));
    d.signal(nix::sys::signal::Signal::SIGKILL).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(pins.join("lb_conntrack").exists(), "a killed daemon leaves its pins");
    for iface in ["l0", "l1"] {
        let link = topo.lb.ip(&["link", "show", iface]).unwrap();
        assert!(link.contains("prog/xdp"), "XDP must stay attached without a daemon: {link}");
    }
    // No daemon: every held connection still talks to its own real server, for 2 s.
    let before_down = read_stats(&pins).unwrap().global.0;
    for _ in 0..10 {
        for (name, conn) in held.iter_mut() {
            conn.set_read_timeout(Some(TIMEOUT)).unwrap();
            assert_eq!(&tcp_again(conn), name, "a connection changed real server while the daemon was down");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let after_down = read_stats(&pins).unwrap().global.0;
    assert!(after_down["flows_hit"] >= before_down["flows_hit"] + 60, "{after_down:?}");

    let d2 = Daemon::start(&topo.lb, &cfg, &pins, &[]).unwrap();
    let log = d2.log();
    assert!(log.iter().any(|l| l.contains("adopted services from pinned maps")), "{log:#?}");
    assert_eq!(
        log.iter().filter(|l| l.contains("adopted (program replaced in place)")).count(),
        2,
        "both links adopted: {log:#?}"
    );
    assert_eq!(map_id(&pins.join("lb_conntrack4")), ct_id, "the restarted daemon must reuse the conntrack map");
    let before = read_stats(&pins).unwrap().global.0;
    for (name, conn) in held.iter_mut() {
        assert_eq!(&tcp_again(conn), name, "the established connection moved to another real server");
    }
    let after = read_stats(&pins).unwrap().global.0;
    assert_eq!(after["flows_new"], before["flows_new"], "flows were rescheduled, not found in conntrack");
    assert!(after["flows_hit"] > before["flows_hit"]);
    // New connections are still balanced over all three.
    let names: Vec<String> = (0..9).map(|_| tcp_ask(&topo.client, vip4(80), None)).collect();
    assert_eq!(spread(&names).len(), 3, "{names:?}");
    // A graceful stop detaches for real.
    let mut d2 = d2;
    d2.stop().unwrap();
    for iface in ["l0", "l1"] {
        let link = topo.lb.ip(&["link", "show", iface]).unwrap();
        assert!(!link.contains("prog/xdp"), "SIGTERM must detach: {link}");
    }
    assert!(!pins.exists(), "SIGTERM removes the pins");
    drop(held);
    drop(d);
}

/// NAT_CONF plus `extra` more services (ports 10000..): each with the three live real servers
/// and 30 drained ones, so a reload to or from it has thousands of map writes to make.
fn big_conf(extra: u16) -> String {
    let mut c = NAT_CONF.to_string();
    for i in 0..extra {
        c.push_str(&format!("virtual_server 203.0.113.10 {} {{\n    lb_algo wrr\n    protocol TCP\n", 10_000 + i));
        for b in 11..=13 {
            c.push_str(&format!("    real_server 198.51.100.{b} 8080 {{\n}}\n"));
        }
        for p in 0..30 {
            c.push_str(&format!("    real_server 198.51.100.11 {} {{\n        weight 0\n    }}\n", 20_000 + p));
        }
        c.push_str("}\n");
    }
    c
}

/// kill -9 in the middle of a SIGHUP reload, at points from "before it started" to "most of
/// a 10k-real-server apply done" (measured by the "service programmed" lines it got to):
/// held connections keep their real servers while no daemon runs, and the restarted daemon
/// programs exactly what the config file says, whatever the killed reload half wrote.
#[test]
fn kill_9_during_a_reload_keeps_forwarding_and_restart_applies_the_config() {
    require_root();
    let topo = LbTopology::new(3).unwrap();
    let _servers = backends(&topo, 8080);
    let (small, big) = (NAT_CONF.to_string(), big_conf(300));
    let (cfg, pins, mut d) = lb(&topo, "killreload", &small);
    let mut held: Vec<(String, TcpStream)> = (0..6).map(|_| tcp_hold(&topo.client, vip4(80))).collect();
    let base = read_stats(&pins).unwrap().services.len();
    let programmed = |d: &Daemon| d.log().iter().filter(|l| l.contains("service programmed")).count();
    let reload = |d: &Daemon, text: &str| {
        let (lines, applied) = (programmed(d), d.log().iter().filter(|l| l.contains("reload applied")).count());
        cfg.rewrite(text);
        let t0 = std::time::Instant::now();
        d.signal(nix::sys::signal::Signal::SIGHUP).unwrap();
        assert!(eventually(Duration::from_secs(20), || d
            .log()
            .iter()
            .filter(|l| l.contains("reload applied"))
            .count()
            > applied));
        (t0.elapsed(), programmed(d) - lines)
    };
    // How long a small -> big reload takes, and how many services it programs.
    let (full, total) = reload(&d, &big);
    println!("a full reload to 300 more services: {full:?}, {total} services programmed");
    for (round, fraction) in [0.0, 0.25, 0.5, 0.75, 0.9].into_iter().enumerate() {
        reload(&d, &small);
        let applied_before = d.log().iter().filter(|l| l.contains("reload applied")).count();
        let before = programmed(&d);
        cfg.rewrite(&big);
        d.signal(nix::sys::signal::Signal::SIGHUP).unwrap();
        std::thread::sleep(full.mul_f64(fraction));
        d.signal(nix::sys::signal::Signal::SIGKILL).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let done = programmed(&d) - before;
        let applied = d.log().iter().filter(|l| l.contains("reload applied")).count() > applied_before;
        // The harness removes a dropped daemon's pins; these must outlive the process.
        d.pin_dir = None;
        drop(d);
        println!(
            "kill -9 at {:.0}% of the reload time: {done} of {total} services programmed{}",
            fraction * 100.0,
            if applied { ", reload finished" } else { "" }
        );
        for (name, conn) in held.iter_mut() {
            assert_eq!(&tcp_again(conn), name, "round {round}: a held connection moved while no daemon ran");
        }
        d = Daemon::start(&topo.lb, &cfg, &pins, &[]).unwrap();
        assert!(d.log().iter().any(|l| l.contains("adopted services from pinned maps")), "{:#?}", d.log());
        let snap = read_stats(&pins).unwrap();
        assert_eq!(snap.services.len(), base + 300, "round {round}: the restart did not program the config file");
        for (name, conn) in held.iter_mut() {
            assert_eq!(&tcp_again(conn), name, "round {round}: a held connection moved after the restart");
        }
        let names: Vec<String> = (0..6).map(|_| tcp_ask(&topo.client, vip4(80), None)).collect();
        assert_eq!(spread(&names).len(), 3, "round {round}: {names:?}");
        assert!(!tcp_ask(&topo.client, vip4(10_299), None).is_empty());
    }
    drop(held);
}

/// TUN under Debian's 6.1 kernel (virtme-ng), whose real servers decapsulate with the
/// kernel's own ipip / ip6_tunnel modules. The host runs this same test binary inside the VM
/// (`LB_IN_VM=1`); there it builds the topology and checks the traffic.
#[test]
fn tun_with_the_kernel_ipip_module_in_the_61_vm() {
    require_root();
    if !lb_tests::vm::in_vm() {
        let out =
            lb_tests::vm::run_test("tun_with_the_kernel_ipip_module_in_the_61_vm", Duration::from_secs(600)).unwrap();
        assert_eq!(out.status, 0, "in the VM:\n{}\n{}", out.stdout, out.stderr);
        assert!(out.stdout.contains("TUN via kernel ipip on 6.1."), "{}", out.stdout);
        for l in out.stdout.lines().filter(|l| l.starts_with("6.1: ")) {
            println!("{l}");
        }
        return;
    }
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert!(release.starts_with("6.1."), "not the 6.1 VM: {release}");
    std::process::Command::new("modprobe").args(["-a", "ipip", "ip6_tunnel"]).status().unwrap();
    let topo = LbTopology::new(2).unwrap();
    let mut servers = Vec::new();
    topo.direct_return().unwrap();
    for (i, b) in topo.backends.iter().enumerate() {
        // The modules give every namespace a catch-all tunl0 / ip6tnl0.
        b.sh("ip link set tunl0 up && ip link set ip6tnl0 up && sysctl -qw net.ipv4.conf.tunl0.rp_filter=0").unwrap();
        servers.push(Backend::start(b, format!("be{i}"), format!("{VIP4}:80").parse().unwrap()));
        servers.push(Backend::start(b, format!("be{i}"), format!("[{VIP6}]:80").parse().unwrap()));
    }
    let (_cfg, _pins, d) = lb(&topo, "tunvm", TUN_CONF);
    // The point of this test is the 6.1 verifier: auto must not have fallen back to IPVS.
    let log = d.log();
    if let Some(at) = log.iter().position(|l| l.contains("using IPVS")) {
        // The verifier's last words (where it gave up) and its statistics.
        let end = log.iter().position(|l| l.starts_with("processed ")).unwrap_or(log.len() - 1);
        panic!("the 6.1 kernel refused lb_xdp: {}\n{:#?}", log[at], &log[end.saturating_sub(60)..=end]);
    }
    if let Some(l) = log.iter().find(|l| l.contains("verifier accepted")) {
        println!("6.1: {}", &l[l.find("lb_daemon").unwrap_or(0)..]);
    }
    let names: Vec<String> = (0..6).map(|_| tcp_ask(&topo.client, vip4(80), None)).collect();
    assert_eq!(spread(&names).len(), 2, "IPIP to both real servers: {names:?}");
    let names: Vec<String> = (0..4).map(|_| tcp_ask(&topo.client, vip6(80), None)).collect();
    assert_eq!(spread(&names).len(), 2, "IPv6-in-IPv6 to both real servers: {names:?}");
    drop(d);
    drop(servers);
    println!("TUN via kernel ipip on {}", release.trim());
}
