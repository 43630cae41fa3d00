//! Connections per second through the VIP: a client opening, using and resetting TCP
//! connections as fast as it can, through lb-daemon's XDP NAT and, in the same run and on
//! the same topology, through nftables DNAT with conntrack.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Result;
use serde_json::json;

use crate::stats;
use lb_tests::{
    addrs::{VIP4, backend4},
    daemon::{self, Daemon},
    netns::LbTopology,
    servers::backends_at,
    temp::TempDir,
};

const NAT_CONF: &str = "virtual_server 203.0.113.10 80 {\n lb_algo rr\n lb_kind NAT\n protocol TCP\n \
                        real_server 198.51.100.11 8080 {\n}\n real_server 198.51.100.12 8080 {\n}\n}\n";

const NFT_DNAT: &str = "table ip lbtbench {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr 203.0.113.10 tcp dport 80 dnat to numgen inc mod 2 map { 0 : 198.51.100.11, 1 : 198.51.100.12 } : 8080
  }
}
";

/// Completed request/response connections per second from `threads` client threads.
fn hammer(topo: &LbTopology, threads: usize, window: Duration) -> Result<(f64, u64)> {
    let vip: SocketAddr = (VIP4, 80).into();
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let (ok2, failed2) = (ok.clone(), failed.clone());
    let start = Instant::now();
    topo.client.run(move || {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let (ok, failed) = (ok2.clone(), failed2.clone());
                // Threads started here inherit the client namespace.
                std::thread::spawn(move || {
                    let mut buf = [0u8; 64];
                    while start.elapsed() < window {
                        let r = (|| -> std::io::Result<()> {
                            let mut s = TcpStream::connect_timeout(&vip, Duration::from_secs(1))?;
                            s.set_read_timeout(Some(Duration::from_secs(1)))?;
                            s.write_all(b"x")?;
                            if s.read(&mut buf)? == 0 {
                                return Err(std::io::ErrorKind::UnexpectedEof.into());
                            }
                            // Reset instead of FIN: no TIME_WAIT to exhaust the client's ports.
                            socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO))?;
                            Ok(())
                        })();
                        match r {
                            Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                            Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                        };
                    }
                })
            })
            .collect();
        for w in workers {
            let _ = w.join();
        }
    })?;
    let secs = start.elapsed().as_secs_f64();
    Ok((ok.load(Ordering::Relaxed) as f64 / secs, failed.load(Ordering::Relaxed)))
}

pub fn connections_per_second(quick: bool, out: &mut dyn Write) -> Result<serde_json::Value> {
    let window = Duration::from_secs(if quick { 2 } else { 5 });
    let rounds = if quick { 1 } else { 3 };
    let topo = LbTopology::new(2)?;
    let _servers = backends_at(&topo, |i| (backend4(i), 8080).into());
    let dir = TempDir::new("bench-cps");
    let conf = dir.file("nat.conf", NAT_CONF);
    let (mut ours, mut nft, mut fails) = (Vec::new(), Vec::new(), (0u64, 0u64));
    // Alternate, so drift in the machine's state affects both alike.
    for _ in 0..rounds {
        let d = Daemon::start(&topo.lb, &conf, &daemon::pin_dir("bcps"), &[])?;
        let (r, f) = hammer(&topo, 2, window)?;
        ours.push(r);
        fails.0 += f;
        drop(d);
        topo.lb.sh(&format!("nft -f - <<'EOF'\n{NFT_DNAT}EOF"))?;
        let (r, f) = hammer(&topo, 2, window)?;
        nft.push(r);
        fails.1 += f;
        topo.lb.sh("nft delete table ip lbtbench")?;
    }
    let (o, n) = (stats(&ours), stats(&nft));
    writeln!(out, "| path | connections/s (median) | min–max | failed |")?;
    writeln!(out, "|---|---:|---:|---:|")?;
    writeln!(out, "| lb XDP NAT | {:.0} | {:.0}–{:.0} | {} |", o.median, o.min, o.max, fails.0)?;
    writeln!(out, "| nftables DNAT + conntrack | {:.0} | {:.0}–{:.0} | {} |", n.median, n.min, n.max, fails.1)?;
    writeln!(out, "\nratio ours / nftables: {:.2}", o.median / n.median.max(1.0))?;
    Ok(json!({ "ours_cps": ours, "nft_cps": nft, "failed": [fails.0, fails.1], "window_s": window.as_secs() }))
}
