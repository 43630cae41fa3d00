//! SIGHUP under continuous traffic: an identical config changes nothing (no VRRP transition,
//! no address change on the wire of netlink, no map rewrite, no failed connection); an invalid
//! one is refused with its location and the old one keeps running; a weight change and a
//! VRRP priority change apply in place without dropping established flows or VIPs.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    process::Stdio,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use lb_tests::prelude::*;
use nix::sys::signal::Signal;

fn config(weight: u32, priority: u8, broken: bool) -> String {
    format!(
        "vrrp_instance VI_1 {{
    interface l0
    virtual_router_id 51
    priority {priority}
    advert_int 1
    virtual_ipaddress {{
        192.0.2.100/24
    }}
}}
virtual_server {VIP4} 80 {{
    delay_loop 1
    lb_algo rr
    lb_kind NAT
    protocol TCP
{}{}}}
",
        (0..3)
            .map(|i| format!(
                "    real_server {} 8080 {{\n        weight {}\n        TCP_CHECK {{\n            connect_timeout 1\n        }}\n    }}\n",
                backend4(i),
                if i == 0 { weight } else { 1 }
            ))
            .collect::<String>(),
        if broken { "    lb_algo nonsense\n" } else { "" }
    )
}

/// One exchange on a new connection through the VIP: the real server's name, or the error.
fn ask(topo: &LbTopology, to: SocketAddr) -> Result<String, String> {
    topo.client
        .run(move || {
            let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(1)).map_err(|e| e.to_string())?;
            s.set_read_timeout(Some(Duration::from_secs(1))).map_err(|e| e.to_string())?;
            s.write_all(b"ping").map_err(|e| e.to_string())?;
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).map_err(|e| e.to_string())?;
            Ok(String::from_utf8_lossy(&buf[..n]).trim_end_matches(":ping").to_string())
        })
        .unwrap_or_else(|e| Err(e.to_string()))
}

#[test]
fn reloads_under_traffic_change_only_what_changed() {
    require_root();
    let topo = LbTopology::new(3).unwrap();
    let _servers = backends_at(&topo, |i| (backend4(i), 8080).into());
    let dir = TempDir::new("reload");
    let conf = dir.file("keepalived.conf", &config(1, 100, false));
    let pins = daemon::pin_dir("reload");
    let d = Daemon::start(&topo.lb, &conf, &pins, &[]).unwrap();
    assert!(d.wait_log("BACKUP -> MASTER", Duration::from_secs(6)), "{:#?}", d.log());
    let vip: SocketAddr = (VIP4, 80).into();

    // An established connection held across every reload.
    let mut held = topo
        .client
        .run(move || {
            let s = TcpStream::connect_timeout(&vip, Duration::from_secs(2)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            s
        })
        .unwrap();
    let again = |s: &mut TcpStream| -> String {
        s.write_all(b"again").unwrap();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).trim_end_matches(":again").to_string()
    };
    let holder = again(&mut held);

    // Address changes on the lb, as netlink reports them.
    let mut monitor = topo
        .lb
        .command("ip")
        .args(["-o", "monitor", "address"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let events: Arc<Mutex<Vec<String>>> = Arc::default();
    let ev = events.clone();
    let out = monitor.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            ev.lock().unwrap().push(l);
        }
    });

    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    std::thread::scope(|s| {
        let (f, st, topo) = (failures.clone(), stop.clone(), &topo);
        s.spawn(move || {
            // Bounded: at most 2000 connections.
            for _ in 0..2000 {
                if st.load(Ordering::Relaxed) {
                    break;
                }
                if let Err(e) = ask(topo, vip) {
                    f.lock().unwrap().push(e);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let reload = |expect: &str| {
            let n = d.log().iter().filter(|l| l.contains(expect)).count();
            d.signal(Signal::SIGHUP).unwrap();
            assert!(
                eventually(Duration::from_secs(5), || d.log().iter().filter(|l| l.contains(expect)).count() > n),
                "no `{expect}` after SIGHUP: {:#?}",
                d.log()
            );
        };
        let programmed = || d.log().iter().filter(|l| l.contains("service programmed")).count();
        let transitions = || d.log().iter().filter(|l| l.contains(" -> ")).count();
        std::thread::sleep(Duration::from_secs(1));

        // 1. Identical config: nothing moves.
        let (p0, t0) = (programmed(), transitions());
        reload("reload applied");
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(programmed(), p0, "an identical reload rewrote maps: {:#?}", d.log());
        assert_eq!(transitions(), t0, "an identical reload moved VRRP: {:#?}", d.log());
        assert!(!d.log().iter().any(|l| l.contains("VRRP reloaded")));

        // 2. Invalid config: refused with its location; the running one stays.
        std::fs::write(&conf, config(1, 100, true)).unwrap();
        reload("reload refused");
        assert!(d.log().iter().any(|l| l.contains("keepalived.conf:") && l.contains("nonsense")), "{:#?}", d.log());
        assert_eq!(programmed(), p0);

        // 3. A weight change: that service is reprogrammed once, established flows stay.
        std::fs::write(&conf, config(3, 100, false)).unwrap();
        reload("reload applied");
        assert_eq!(programmed(), p0 + 1, "{:#?}", d.log());
        assert_eq!(transitions(), t0);

        // 4. A VRRP priority change: applied in place, no election, the VIP stays put.
        std::fs::write(&conf, config(3, 120, false)).unwrap();
        reload("VRRP reloaded: 0 unchanged, 1 updated in place, 0 restarted, 0 added, 0 removed");
        assert_eq!(transitions(), t0, "{:#?}", d.log());
        assert!(
            eventually(Duration::from_secs(2), || {
                let st = d.status().unwrap();
                st["vrrp"][0]["state"] == "MASTER" && st["vrrp"][0]["priority"] == 120
            }),
            "{}",
            d.status().unwrap()
        );
        std::thread::sleep(Duration::from_secs(1));
        stop.store(true, Ordering::Relaxed);
    });
    let _ = monitor.kill();
    let _ = monitor.wait();
    assert_eq!(again(&mut held), holder, "the held connection changed real server across reloads");
    let failures = failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "client-visible failures during reloads: {failures:?}");
    let events = events.lock().unwrap().clone();
    assert!(events.is_empty(), "reloads changed addresses: {events:#?}");
    let weight = read_stats(&pins).unwrap().services[0]
        .reals
        .iter()
        .find(|r| r.real == format!("{}:8080", backend4(0)))
        .map(|r| r.weight);
    assert_eq!(weight, Some(3));
    drop(d);
}
