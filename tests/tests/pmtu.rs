//! Path MTU discovery through a NAT service when the small link is on the real servers' side:
//! client — lb — router — real server, the router's route to the real server 1,400 bytes. The
//! client's full-size segments (DF, as TCP sends them) are refused by the router, whose ICMP
//! "fragmentation needed" / "packet too big" quotes the packet as NAT sent it on (to the real
//! server). The load balancer must translate it back (quoted destination and outer source
//! to the VIP, as IPVS does) or the client never learns the path MTU and the transfer stalls.
//! The hosts keep their default offloads.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    time::Duration,
};

use lb_tests::{
    netns::{addr, veth},
    prelude::*,
    servers::{Echo, echo_transfer},
};

/// The load balancer's link to the router, and the router's to the real server.
const LB_UP4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 129);
const ROUTER_DOWN4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 130);
const ROUTER_UP4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const LB_UP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xa, 0, 0, 0, 0, 1);
const ROUTER_DOWN6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xa, 0, 0, 0, 0, 2);
const ROUTER_UP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 1);
const SMALL_MTU: u32 = 1400;
const SIZE: usize = 2 << 20;
/// A transfer that makes no progress for this long has stalled: the path MTU was never learnt.
const STALL: Duration = Duration::from_secs(5);

struct Path {
    client: Netns,
    lb: Netns,
    _router: Netns,
    real: Netns,
}

fn path() -> Path {
    let (client, lb, router, real) =
        (Netns::new("cli").unwrap(), Netns::new("lb").unwrap(), Netns::new("rt").unwrap(), Netns::new("be").unwrap());
    veth(&client, "c0", &lb, "l0").unwrap();
    veth(&lb, "l1", &router, "r0").unwrap();
    veth(&router, "r1", &real, "b0").unwrap();
    for (ns, dev, cidr) in [
        (&client, "c0", format!("{CLIENT4}/24")),
        (&client, "c0", format!("{CLIENT6}/64")),
        (&lb, "l0", format!("{LB_CLIENT_SIDE4}/24")),
        (&lb, "l0", format!("{LB_CLIENT_SIDE6}/64")),
        (&lb, "l1", format!("{LB_UP4}/30")),
        (&lb, "l1", format!("{LB_UP6}/64")),
        (&router, "r0", format!("{ROUTER_DOWN4}/30")),
        (&router, "r0", format!("{ROUTER_DOWN6}/64")),
        (&router, "r1", format!("{ROUTER_UP4}/25")),
        (&router, "r1", format!("{ROUTER_UP6}/64")),
        (&real, "b0", format!("{}/25", backend4(0))),
        (&real, "b0", format!("{}/64", backend6(0))),
    ] {
        addr(ns, dev, &cidr).unwrap();
    }
    // The small MTU is the router's route to the real server, not the links': the real server
    // must still advertise a 1460-byte MSS, or TCP never sends what needs the path MTU.
    let mtu = SMALL_MTU.to_string();
    router
        .ip(&["-4", "route", "replace", "198.51.100.0/25", "dev", "r1", "src", &ROUTER_UP4.to_string(), "mtu", &mtu])
        .unwrap();
    router.ip(&["-6", "route", "replace", "2001:db8:b::/64", "dev", "r1", "metric", "256", "mtu", &mtu]).unwrap();
    let routes: [(&Netns, &str, IpAddr); 8] = [
        (&client, "default", LB_CLIENT_SIDE4.into()),
        (&client, "default", LB_CLIENT_SIDE6.into()),
        (&lb, "198.51.100.0/25", ROUTER_DOWN4.into()),
        (&lb, "2001:db8:b::/64", ROUTER_DOWN6.into()),
        (&router, "default", LB_UP4.into()),
        (&router, "default", LB_UP6.into()),
        (&real, "default", ROUTER_UP4.into()),
        (&real, "default", ROUTER_UP6.into()),
    ];
    for (ns, to, via) in routes {
        let family = if via.is_ipv6() { "-6" } else { "-4" };
        ns.ip(&[family, "route", "add", to, "via", &via.to_string()]).unwrap();
    }
    for ns in [&lb, &router] {
        ns.sh("sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1").unwrap();
    }
    // XDP_REDIRECT out of a veth needs NAPI at the far end (shared/notes/topologies.md).
    client.sh("ethtool -K c0 gro on >/dev/null").unwrap();
    router.sh("ethtool -K r0 gro on >/dev/null").unwrap();
    Path { client, lb, _router: router, real }
}

/// NAT from both VIPs to the real server's echo on port 8080.
fn config() -> String {
    format!(
        "virtual_server {VIP4} 80 {{\n lb_kind NAT\n protocol TCP\n real_server {} 8080 {{\n}}\n}}\n\
         virtual_server {VIP6} 80 {{\n lb_kind NAT\n protocol TCP\n real_server {} 8080 {{\n}}\n}}\n",
        backend4(0),
        backend6(0)
    )
}

#[test]
fn a_smaller_mtu_behind_the_load_balancer_is_discovered_through_nat() {
    require_root();
    let p = path();
    let _echoes = [
        Echo::start(&p.real, SocketAddr::new(backend4(0).into(), 8080)),
        Echo::start(&p.real, SocketAddr::new(backend6(0).into(), 8080)),
    ];
    let cfg = TempConfig::new("pmtu", &config());
    let pins = daemon::pin_dir("pmtu");
    let d = Daemon::start(&p.lb, &cfg, &pins, &[]).unwrap();
    let mut failed = Vec::new();
    let mut translated = Vec::new();
    for vip in [IpAddr::from(VIP4), VIP6.into()] {
        let before = read_stats(&pins).unwrap().global.0["reason_icmp_reply"];
        if let Err(e) = echo_transfer(&p.client, SocketAddr::new(vip, 80), SIZE, STALL) {
            failed.push(format!("{vip}: {e}"));
        }
        translated.push(read_stats(&pins).unwrap().global.0["reason_icmp_reply"] - before);
    }
    println!("ICMP errors translated back to the client (v4, v6): {translated:?}");
    let routes = p.client.sh(&format!("ip -4 route get {VIP4}; ip -6 route get {VIP6}")).unwrap_or_default();
    drop(d);
    assert!(failed.is_empty(), "{failed:?}\nclient's routes:\n{routes}");
    assert!(translated.iter().all(|&n| n >= 1), "an ICMP error per family translated: {translated:?}");
    assert!(routes.matches(&format!("mtu {SMALL_MTU}")).count() == 2, "the client learnt the path MTU:\n{routes}");
}
