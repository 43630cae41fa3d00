//! The control plane never delays VRRP: a master's adverts, as they cross the wire, keep
//! `advert_int` while 1,000 checked real servers flap, reloads run and the data plane is
//! reprogrammed. A late advert is what lets a backup take over from a healthy master.

use std::time::{Duration, Instant};

use lb_tests::{
    capture::{AdvertCapture, intervals},
    netns::addr,
    prelude::*,
    servers::CheckServers,
};
use nix::sys::signal::Signal;

/// How long adverts are recorded; every interval inside it is checked.
const CAPTURE: Duration = Duration::from_secs(30);
/// The bound around `advert_int 1`.
const TOLERANCE: f64 = 0.020;
/// Real servers: 10 services × 100, checked by TCP_CHECK every 2 s (500 checks a second:
/// what the debug build this suite runs keeps up with on a loaded 2-core runner).
const SERVICES: usize = 10;
const REALS: usize = 100;

fn vrrp_instance(prio: u8) -> String {
    format!(
        "vrrp_instance VI_1 {{
    state BACKUP
    interface l0
    virtual_router_id 51
    priority {prio}
    advert_int 1
    authentication {{
        auth_type PASS
        auth_pass s3cret
    }}
    virtual_ipaddress {{
        {VRRP_VIP4}/24
    }}
}}
"
    )
}

/// The master's config: VRRP plus `SERVICES` × `REALS` checked real servers (half the
/// services Maglev, the costliest to reprogram), every real server at `weight`.
fn master_config(weight: u32) -> String {
    let mut c = vrrp_instance(150);
    for s in 0..SERVICES {
        let algo = if s % 2 == 0 { "mh" } else { "wrr" };
        c.push_str(&format!(
            "virtual_server {VIP4} {} {{\n delay_loop 2\n lb_algo {algo}\n lb_kind NAT\n protocol TCP\n",
            1000 + s
        ));
        for r in 0..REALS {
            c.push_str(&format!(
                " real_server 198.51.100.{} {} {{\n  weight {weight}\n  TCP_CHECK {{\n   connect_port {}\n   \
                 connect_timeout 1\n   retry 0\n  }}\n }}\n",
                11 + r % 50,
                20000 + s * 2 + r / 50,
                9000 + r,
            ));
        }
        c.push_str("}\n");
    }
    c
}

#[test]
fn adverts_keep_their_interval_while_checkers_flap_and_reloads_run() {
    require_root();
    let seg = Segment::new(2).unwrap();
    let dir = TempDir::new("vrrp-timing");
    let lb = &seg.nodes[0];
    // The real servers are addresses of node 0 itself, their checks answered by listeners
    // there; an nft rule resetting every check connection makes all 1,000 fail at once.
    for host in 11..61 {
        addr(lb, "l0", &format!("198.51.100.{host}/32")).unwrap();
    }
    lb.sh("sysctl -qw net.ipv4.ip_local_port_range='1024 65000' net.ipv4.tcp_tw_reuse=1 net.core.somaxconn=4096")
        .unwrap();
    lb.sh("nft add table inet flap && nft add chain inet flap input '{ type filter hook input priority 0; }'").unwrap();
    let _servers = CheckServers::start(lb, 9000..9000 + REALS as u16, 9999).unwrap();
    let conf = dir.file("lb0.conf", &master_config(1));
    let d0 = Daemon::start(lb, &conf, &daemon::pin_dir(&format!("{}0", dir.tag())), &["--interface", "l0"]).unwrap();
    let backup = dir.file("lb1.conf", &vrrp_instance(100));
    let d1 = Daemon::start(&seg.nodes[1], &backup, &daemon::pin_dir(&format!("{}1", dir.tag())), &["-P"]).unwrap();
    assert!(d0.wait_log("BACKUP -> MASTER", Duration::from_secs(10)), "{:#?}", d0.log());
    assert!(
        eventually(Duration::from_secs(10), || {
            d0.status().is_ok_and(|s| {
                s["checks"].as_array().is_some_and(|c| c.len() == SERVICES * REALS && c.iter().all(|x| x["up"] == true))
            })
        }),
        "the checkers never all passed"
    );

    // Node 0's switch port: what node 0 sends comes in there.
    let capture = AdvertCapture::start(&seg.switch, "s1").unwrap();
    let started = Instant::now();
    let (mut flaps, mut reloads, mut dumps) = (0, 0, 0);
    // Per flap: whether the real servers should be up, and how many checks said so when
    // the next flap came.
    let mut phases: Vec<(bool, usize)> = Vec::new();
    let mut tick = 0u32;
    while started.elapsed() < CAPTURE {
        std::thread::sleep(Duration::from_millis(500));
        tick += 1;
        // Every 6 s all 1,000 real servers go down, or come back: with `delay_loop 2` every
        // verdict is due within about 2 s, and applied well before the next flap.
        if tick.is_multiple_of(12) {
            let want_up = flaps % 2 == 0;
            let agree = d0
                .status()
                .map_or(0, |s| s["checks"].as_array().map_or(0, |c| c.iter().filter(|x| x["up"] == want_up).count()));
            phases.push((want_up, agree));
            let rule = if flaps % 2 == 0 {
                "nft add rule inet flap input tcp dport 9000-9099 reject with tcp reset"
            } else {
                "nft flush chain inet flap input"
            };
            lb.sh(rule).unwrap();
            flaps += 1;
        }
        // Every 3.5 s a reload that changes every weight (the whole data plane reprogrammed).
        if tick.is_multiple_of(7) {
            reloads += 1;
            std::fs::write(&conf, master_config(1 + reloads % 2)).unwrap();
            d0.signal(Signal::SIGHUP).unwrap();
        }
        // keepalived's dump signals and status reads, as monitoring does.
        if tick.is_multiple_of(6) {
            d0.signal([Signal::SIGUSR1, Signal::SIGUSR2][dumps % 2]).unwrap();
            dumps += 1;
        }
    }
    let times = capture.from(node4(0));
    drop(capture);
    lb.sh("nft delete table inet flap").unwrap();

    let applied = d0.log().iter().filter(|l| l.contains("reload applied")).count();
    let intervals = intervals(&times);
    let mut sorted = intervals.clone();
    sorted.sort_by(f64::total_cmp);
    let pct = |p: f64| sorted.get(((sorted.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(f64::NAN);
    println!(
        "{} adverts in {:?} ({flaps} flaps {phases:?} (up?, checks agreeing at the next flap), {applied} of \
         {reloads} reloads applied, {dumps} dumps); interval min {:.4} p50 {:.4} p99 {:.4} max {:.4} s",
        times.len(),
        CAPTURE,
        pct(0.0),
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
    // The load really happened, and the daemon kept up with it: every flap took all 1,000
    // real servers out (or back) before the next, and the reloads applied.
    let behind: Vec<_> = phases.iter().skip(1).filter(|(_, agree)| *agree < SERVICES * REALS).collect();
    assert!(behind.is_empty(), "checker verdicts fell behind the flapping: {phases:?}");
    assert!(applied >= reloads as usize - 1 && applied >= 5, "{applied} of {reloads} reloads applied");
    assert!(times.len() >= CAPTURE.as_secs() as usize - 2, "only {} adverts recorded", times.len());
    let late: Vec<String> = intervals
        .iter()
        .enumerate()
        .filter(|(_, i)| (**i - 1.0).abs() > TOLERANCE)
        .map(|(n, i)| format!("advert {} came {:.3} s after the one before", n + 1, i))
        .collect();
    assert!(late.is_empty(), "adverts off advert_int 1 s ± 20 ms:\n{}", late.join("\n"));
    // The backup never saw reason to take over.
    assert!(!d1.log().iter().any(|l| l.contains("-> MASTER")), "{:#?}", d1.log());
}
