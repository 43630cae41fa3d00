//! Bulk transfers through the load balancer with the hosts as they come (tx checksum
//! offload, TSO/GSO and GRO at their defaults): 10 MB each way through a TCP echo, byte for
//! byte, by NAT, DR and TUN, over IPv4 and IPv6, with XDP in native and in generic mode.
//!
//! Generic XDP cannot redirect a frame larger than the egress MTU, and a local sender over
//! veth sends TSO/GSO frames of up to 64 KB: NAT hands those to the kernel's forwarding; DR
//! and TUN cannot (the daemon says so when it attaches in generic mode, and counts every
//! such frame as `reason_gso_dropped`).

use std::{
    io::{Read, Write},
    net::{IpAddr, SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use lb_tests::prelude::*;

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
                "virtual_server {vip} {port} {{\n lb_algo rr\n lb_kind {kind}\n protocol TCP\n real_server {real} {port}\n}}\n"
            ));
        }
    }
    c
}

/// A TCP server that sends back everything it reads, a thread per connection.
struct Echo(Arc<AtomicBool>);

impl Echo {
    fn start(ns: &Netns, bind: SocketAddr) -> Echo {
        let stop = Arc::new(AtomicBool::new(false));
        let l = ns.run(move || TcpListener::bind(bind)).unwrap().unwrap_or_else(|e| panic!("bind {bind}: {e}"));
        l.set_nonblocking(true).unwrap();
        let s = stop.clone();
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((c, _)) => {
                        let _ = c.set_nonblocking(false);
                        std::thread::spawn(move || {
                            if let Ok(mut r) = c.try_clone() {
                                let mut w = c;
                                let _ = std::io::copy(&mut r, &mut w);
                            }
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Echo(stop)
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Sends `SIZE` bytes to `to` from the client and reads them back: how long it took, or why
/// not every byte came back (a transfer stalled for `STALL` has failed).
fn transfer(client: &Netns, to: SocketAddr) -> Result<Duration, String> {
    client
        .run(move || {
            let data: Vec<u8> = (0..SIZE as u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
            let start = Instant::now();
            let c = TcpStream::connect_timeout(&to, STALL).map_err(|e| format!("connecting: {e}"))?;
            for t in [c.set_read_timeout(Some(STALL)), c.set_write_timeout(Some(STALL))] {
                t.map_err(|e| e.to_string())?;
            }
            let mut w = c.try_clone().map_err(|e| e.to_string())?;
            let sent = data.clone();
            let writer = std::thread::spawn(move || w.write_all(&sent).map_err(|e| format!("sending: {e}")));
            let mut back = vec![0u8; SIZE];
            let mut got = 0;
            while got < SIZE {
                match (&c).read(&mut back[got..]) {
                    Ok(0) => return Err(format!("closed after {got} bytes")),
                    Ok(n) => got += n,
                    Err(e) => return Err(format!("stalled after {got} of {SIZE} bytes: {e}")),
                }
            }
            writer.join().map_err(|_| "the writer panicked".to_string())??;
            match back.iter().zip(&data).position(|(a, b)| a != b) {
                Some(at) => Err(format!("the echo differs from byte {at}")),
                None => Ok(start.elapsed()),
            }
        })
        .map_err(|e| e.to_string())?
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
            match transfer(&topo.client, SocketAddr::new(vip, port)) {
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
