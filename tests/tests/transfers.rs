//! Bulk transfers through the load balancer with the hosts as they come (tx checksum
//! offload, TSO/GSO and GRO at their defaults): 10 MB each way through a TCP echo, byte for
//! byte, by NAT, DR and TUN, over IPv4 and IPv6, with XDP in native and in generic mode.
//!
//! Generic XDP cannot redirect a frame larger than the egress MTU, and a local sender over
//! veth sends TSO/GSO frames of up to 64 KB: NAT hands those to the kernel's forwarding; DR
//! and TUN cannot (the daemon says so when it attaches in generic mode, and counts every
//! such frame as `reason_gso_dropped`).

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use lb_tests::{
    prelude::*,
    servers::{Echo, echo_transfer},
};

const SIZE: usize = 10 << 20;
/// A transfer that makes no progress for this long has failed (a healthy one over veth never
/// pauses nearly as long).
const STALL: Duration = Duration::from_secs(3);
const METHODS: [(u16, &str); 3] = [(9001, "NAT"), (9002, "DR"), (9003, "TUN")];

/// One service per method and family, each with the one real server (DR and TUN deliver to
/// the VIP it holds on lo, NAT to its own address).
fn config() -> String {
    let mut c = String::new();
    for (vip, real) in [(IpAddr::from(VIP4), IpAddr::from(backend4(0))), (VIP6.into(), backend6(0).into())] {
        for (port, kind) in METHODS {
            c.push_str(&format!(
                "virtual_server {vip} {port} {{\n lb_algo rr\n lb_kind {kind}\n protocol TCP\n real_server {real} {port} {{\n}}\n}}\n"
            ));
        }
    }
    c
}

/// Every method and family in `mode`: which failed, and the data plane's counters.
fn transfers(mode: &str) -> (Vec<String>, std::collections::BTreeMap<&'static str, u64>, Vec<String>) {
    require_root();
    let topo = LbTopology::new(1).unwrap();
    topo.direct_return().unwrap();
    let real = &topo.backends[0];
    let _decap = daemon::decap(real);
    let mut echoes = Vec::new();
    for (real_ip, vip) in [(IpAddr::from(backend4(0)), IpAddr::from(VIP4)), (backend6(0).into(), VIP6.into())] {
        for (port, kind) in METHODS {
            echoes.push(Echo::start(real, SocketAddr::new(if kind == "NAT" { real_ip } else { vip }, port)));
        }
    }
    let (_cfg, pins, d) = daemon::on_lb(&topo, &format!("xfer-{mode}"), &config(), &["--xdp-mode", mode]);
    let mut failed = Vec::new();
    for vip in [IpAddr::from(VIP4), VIP6.into()] {
        for (port, method) in METHODS {
            let name = format!("{mode} {method} {}", if vip.is_ipv4() { "IPv4" } else { "IPv6" });
            match echo_transfer(&topo.client, SocketAddr::new(vip, port), SIZE, STALL) {
                Ok(t) => println!("{name}: 10 MB each way in {:.2} s", t.as_secs_f64()),
                Err(e) => {
                    println!("{name}: {e}");
                    failed.push(name);
                }
            }
        }
    }
    let counters = read_stats(&pins).unwrap().global.0;
    (failed, counters, d.log())
}

#[test]
fn ten_megabytes_each_way_in_native_mode() {
    let (failed, counters, _) = transfers("native");
    assert!(failed.is_empty(), "{failed:?}");
    assert!(counters["csum_completed"] > 0, "the senders left checksums to offload: {counters:?}");
}

#[test]
fn ten_megabytes_each_way_in_generic_mode() {
    let (failed, counters, log) = transfers("generic");
    assert_eq!(failed, ["generic DR IPv4", "generic TUN IPv4", "generic DR IPv6", "generic TUN IPv6"]);
    assert!(log.iter().any(|l| l.contains("generic XDP") && l.contains("DR and TUN drop them")), "{log:#?}");
    assert!(counters["reason_gso_dropped"] > 0 && counters["reason_gso_to_stack"] > 0, "{counters:?}");
}
