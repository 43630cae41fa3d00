//! The IPVS backend end to end. This machine's kernel has no IPVS, so the scenarios run under
//! Debian's 6.1 kernel (virtme-ng): the host runs this test binary in the VM (`LB_IN_VM=1`),
//! where lb-daemon programs IPVS in namespaces and `ipvsadm` reads it back, and real TCP
//! goes through the VIP. For every example config, keepalived 2.2.7 runs after us in the same
//! namespaces and must program the same IPVS table (the oracle); the host also compares the
//! listings the VM printed with `tests/golden/ipvs/` (a record of what changed;
//! `LB_UPDATE_GOLDEN=1` rewrites them: the VM's filesystem is read-only).

use std::{
    collections::BTreeMap,
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    path::Path,
    time::Duration,
};

use lb_tests::{
    netns::{addr, veth},
    prelude::*,
};
use nix::sys::signal::Signal;

fn ipvsadm(ns: &Netns, args: &str) -> String {
    ns.sh(&format!("ipvsadm {args}")).unwrap()
}

/// `ipvsadm -Ln` without its version line (the kernel's, not ours).
fn listing(ns: &Netns) -> String {
    ipvsadm(ns, "-Ln").lines().skip(1).map(|l| format!("{}\n", l.trim_end())).collect()
}

/// The listing with runs of spaces collapsed, for `contains` checks that do not depend on
/// ipvsadm's column widths.
fn flat(ns: &Netns) -> String {
    listing(ns).lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect::<Vec<_>>().join("\n")
}

/// A column of `ipvsadm -Ln --stats` / `--persistent-conn` for the line naming `what`.
fn column(text: &str, what: &str, index: usize) -> u64 {
    let line = text.lines().find(|l| l.contains(what)).unwrap_or_else(|| panic!("no {what} in\n{text}"));
    line.split_whitespace().nth(index).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("column {index}: {line}"))
}

fn changes(d: &Daemon) -> u64 {
    d.state().unwrap()["backend"]["changes"].as_u64().unwrap()
}

/// Progress with the time since the VM test began (the VM is slow; this says where).
fn step(what: &str) {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let t = START.get_or_init(std::time::Instant::now).elapsed();
    println!("[{:6.1}s] {what}", t.as_secs_f64());
}

/// The host side: boots the VM, runs the scenarios there, checks the listings it printed.
#[test]
fn ipvs_backend_in_the_61_vm() {
    require_root();
    if lb_tests::vm::in_vm() {
        return in_vm();
    }
    // LB_IPVS_SCENARIOS=sync_interop,dr runs only those (default: all; goldens are then
    // checked only for what ran).
    let only = std::env::var("LB_IPVS_SCENARIOS").unwrap_or_default();
    let env = [(SCENARIOS, only.as_str())];
    let out = lb_tests::vm::run_test_env("ipvs_backend_in_the_61_vm", &env, Duration::from_secs(900)).unwrap();
    assert_eq!(out.status, 0, "in the VM:\n{}\n{}", out.stdout, out.stderr);
    // The figures the scenarios print (the VM's output is otherwise shown on failure only).
    // The step lines say where the VM's time went: written to stderr itself, past libtest's
    // capture, so a passing run's log shows them too.
    let shown = |l: &str| {
        l.starts_with("IPVS OK")
            || l.starts_with("connections opened through")
            || (l.starts_with('[') && l.contains("s] "))
    };
    let mut log = std::io::stderr().lock();
    for l in out.stdout.lines().filter(|l| shown(l)) {
        let _ = writeln!(log, "ipvs VM: {l}");
    }
    drop(log);
    for scenario in SCENARIO_NAMES.iter().filter(|s| selected(&only, s)) {
        assert!(out.stdout.contains(&format!("IPVS OK {scenario}")), "{scenario} did not finish:\n{}", out.stdout);
    }
    let printed = listings(&out.stdout);
    assert!(printed.is_empty() != selected(&only, "configs"), "listings printed (configs only):\n{}", out.stdout);
    for (name, text) in &printed {
        // `ipvsadm -Ln` for configs/NAME.conf.
        golden(&workspace_root().join("tests/golden/ipvs").join(format!("{name}.txt")), text);
    }
}

/// `=== ipvsadm NAME ===` ... `=== end ===` blocks of the VM's output.
fn listings(stdout: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut cur: Option<(String, String)> = None;
    for line in stdout.lines() {
        if let Some(name) = line.strip_prefix("=== ipvsadm ").and_then(|l| l.strip_suffix(" ===")) {
            cur = Some((name.to_string(), String::new()));
        } else if line == "=== end ===" {
            if let Some((n, t)) = cur.take() {
                out.insert(n, t);
            }
        } else if let Some((_, t)) = cur.as_mut() {
            t.push_str(line);
            t.push('\n');
        }
    }
    out
}

const SCENARIOS: &str = "LB_IPVS_SCENARIOS";
const SCENARIO_NAMES: [&str; 8] = ["configs", "flush", "vs_options", "nat", "dr", "tun", "auto", "sync_interop"];

/// Whether `name` is in the comma-separated `list` (empty: every scenario).
fn selected(list: &str, name: &str) -> bool {
    list.is_empty() || list.split(',').any(|s| s.trim() == name)
}

fn in_vm() {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert!(release.starts_with("6.1."), "not the 6.1 VM: {release}");
    step("start");
    std::process::Command::new("modprobe")
        .args(["-a", "ip_vs", "ip_vs_rr", "ip_vs_pe_sip", "ipip", "ip6_tunnel"])
        .status()
        .unwrap();
    let only = std::env::var(SCENARIOS).unwrap_or_default();
    let scenarios: [(&str, fn()); 8] = [
        ("configs", configs),
        ("flush", flush),
        ("vs_options", virtual_server_options),
        ("nat", nat_checks_reload_and_sync),
        ("dr", direct_routing),
        ("tun", tunnel),
        ("auto", auto_probe),
        ("sync_interop", sync_interop),
    ];
    for (name, run) in scenarios {
        if selected(&only, name) {
            run();
            println!("IPVS OK {name}");
        }
    }
}

/// Every example config, each in its own namespace (IPVS is per namespace), next to real
/// servers that accept TCP on every port the configs use (`ConfigServers`): TCP_CHECK, HTTP_GET
/// and SSL_GET pass, so the real servers are in the table; MISC_CHECK is dropped (no script:
/// keepalived frees such a checker, and its real server counts as up).
/// Once every checker has a verdict, IPVS must hold what keepalived 2.2.7 itself programs
/// for the same config next to the same servers.
fn configs() {
    let dir = workspace_root().join("configs");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".conf")).map(str::to_string))
        .collect();
    names.sort();
    // One certificate for every config's HTTPS server (the threads share one process, so one
    // temporary directory).
    let certs = TempDir::new("ipvs-cert");
    let c = rcgen::generate_simple_self_signed(vec!["backend.example".to_string()]).unwrap();
    let (cert, key) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    std::fs::write(&cert, c.cert.pem()).unwrap();
    std::fs::write(&key, c.signing_key.serialize_pem()).unwrap();
    let tls = (cert.as_path(), key.as_path());
    // Started side by side: under software emulation each start takes seconds.
    let running: Vec<_> = std::thread::scope(|sc| {
        let handles: Vec<_> = names.iter().map(|name| sc.spawn(|| start_config(&dir, name, tls))).collect();
        handles.into_iter().map(|h| h.join().expect("config start panicked")).collect()
    });
    let mut programmed = BTreeMap::new();
    for (name, lb, _reals, _servers, d, checks) in &running {
        // Every checker registered, and each past its initial state (a first verdict, or
        // paused by ha_suspend: -C runs no VRRP, so no VIP is ever here).
        let settled = eventually(Duration::from_secs(60), || {
            d.state().is_ok_and(|s| {
                s["checks"].as_array().is_some_and(|c| {
                    c.len() == *checks
                        && c.iter().all(|x| {
                            let r = x["reason"].as_str().unwrap_or("");
                            r != "not checked yet" && !r.starts_with("alpha:")
                        })
                })
            })
        });
        assert!(settled, "configs/{name}.conf: checkers did not all report; status {:?}", d.state());
        step(&format!("configs/{name}.conf: settled"));
        // A verdict reached the daemon; give it a moment to reach IPVS too.
        std::thread::sleep(Duration::from_millis(500));
        let ours = listing(lb);
        println!("=== ipvsadm {name} ===\n{ours}=== end ===");
        programmed.insert(name.clone(), ours);
    }
    // Stopped side by side too: one after another they took minutes in the VM.
    let stopped: Vec<_> = std::thread::scope(|sc| {
        let handles: Vec<_> = running
            .into_iter()
            .map(|(name, lb, reals, servers, mut d, _)| {
                sc.spawn(move || {
                    let stop = d.stop();
                    (name, lb, reals, servers, stop)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("config stop panicked")).collect()
    });
    step("configs: every daemon stopped");
    let mut kept = Vec::new();
    for (name, lb, reals, servers, stop) in stopped {
        stop.unwrap_or_else(|e| panic!("configs/{name}.conf: {e:#}"));
        assert_eq!(listing(&lb).lines().count(), 2, "configs/{name}.conf: services left behind at exit");
        kept.push((name, lb, reals, servers));
    }
    keepalived_programs_the_same(&dir, &kept, &programmed);
}

/// `lvs_flush` and `lvs_flush_on_stop` [VS] against keepalived 2.2.7: before each daemon
/// starts, IPVS holds a service no config names; while it runs, one more is added by hand.
/// Both daemons must leave the same table after start (with lvs_flush the foreign service is
/// gone) and after stop (the whole table emptied, or with `VS` the hand-made services kept).
fn flush() {
    step("lvs_flush: keepalived and lb-daemon in turn");
    let dir = TempDir::new("ipvs-flush");
    let lb = Netns::new("iflush").unwrap();
    lb.sh("ip link set lo up").unwrap();
    for (on_stop, kept_at_stop) in [("lvs_flush_on_stop", false), ("lvs_flush_onstop VS", true)] {
        let conf = dir.file(
            "flush.conf",
            &format!(
                "global_defs {{\n    lvs_flush\n    {on_stop}\n}}\n\
                 virtual_server {VIP4} 80 {{\n    lb_algo rr\n    lb_kind NAT\n    protocol TCP\n    \
                 real_server {} 80 {{\n        weight 1\n    }}\n}}\n",
                backend4(0)
            ),
        );
        let mut seen = Vec::new();
        for who in ["keepalived", "lb-daemon"] {
            ipvsadm(&lb, "-A -t 203.0.113.99:8080 -s rr");
            let mut ka = None;
            let mut ours = None;
            if who == "keepalived" {
                ka = Some(Keepalived::checkers(&lb, &conf, dir.path(), "flush").unwrap());
            } else {
                let pins = daemon::pin_dir("iflush");
                ours = Some(Daemon::start(&lb, &conf, &pins, &["--backend", "ipvs", "-C"]).unwrap());
            }
            let vip = format!("{VIP4}:80");
            let programmed = eventually(Duration::from_secs(30), || flat(&lb).contains(&vip));
            assert!(programmed, "{who} ({on_stop}) did not program {vip}:\n{}", listing(&lb));
            let started = listing(&lb);
            assert!(
                !started.contains("203.0.113.99"),
                "{who} ({on_stop}): lvs_flush kept a foreign service:\n{started}"
            );
            ipvsadm(&lb, "-A -t 203.0.113.98:8080 -s rr");
            if let Some(mut k) = ka {
                k.stop().unwrap();
            }
            if let Some(mut d) = ours {
                d.stop().unwrap();
            }
            let stopped = listing(&lb);
            assert_eq!(stopped.contains("203.0.113.98"), kept_at_stop, "{who} ({on_stop}) at stop:\n{stopped}");
            assert!(!stopped.contains(&vip), "{who} ({on_stop}) left its service:\n{stopped}");
            seen.push((started, stopped));
            ipvsadm(&lb, "-C");
        }
        assert!(same_table(&seen[0].0, &seen[1].0), "{on_stop}: after start\n{}\nvs ours\n{}", seen[0].0, seen[1].0);
        assert!(same_table(&seen[0].1, &seen[1].1), "{on_stop}: after stop\n{}\nvs ours\n{}", seen[0].1, seen[1].1);
        step(&format!("{on_stop}: keepalived and lb-daemon leave the same tables"));
    }
}

/// `sorry_server_lvs_method`, `persistence_engine` and `ip_family` against keepalived 2.2.7:
/// each TCP service's only real server fails its check (nothing listens on port 9; `alpha`
/// starts it down), so below quorum the sorry server takes the service with its own
/// forwarding method (the DR one named with another port, which both reset to the
/// service's); a UDP service persists by SIP Call-ID; a firewall mark whose only real
/// server is an IPv4 tunnel is IPv6 by `ip_family`; a service without `protocol` is UDP, and
/// one on port 0 is persistent (360 s) and loses `ops` (TCP); a service above quorum keeps
/// its `sorry_server_inhibit` sorry server at weight 0; the scheduler flags (`sh-port`,
/// `sh-fallback`, `mh-port`, `mh-fallback`, `flag-1`..`flag-3`) reach IPVS. Both daemons must
/// leave the same table.
fn virtual_server_options() {
    step("sorry_server_lvs_method, persistence_engine, ip_family: keepalived and lb-daemon in turn");
    let dir = TempDir::new("ipvs-sorry");
    let lb = Netns::new("isorry").unwrap();
    let reals = Netns::new("isorryr").unwrap();
    veth(&lb, "l1", &reals, "r0").unwrap();
    addr(&lb, "l1", &format!("{LB_BACKEND_SIDE4}/24")).unwrap();
    addr(&reals, "r0", &format!("{}/24", backend4(0))).unwrap();
    lb.sh("ip link set lo up").unwrap();
    let service = |port: u16, kind: &str, sorry: &str, method: &str| {
        format!(
            "virtual_server {VIP4} {port} {{\n    delay_loop 1\n    lb_algo rr\n    lb_kind {kind}\n    \
             protocol TCP\n    sorry_server {sorry}\n    sorry_server_lvs_method {method}\n    \
             real_server {} {port} {{\n        alpha\n        TCP_CHECK {{\n            connect_port 9\n            \
             connect_timeout 1\n        }}\n    }}\n}}\n",
            backend4(0)
        )
    };
    let conf = dir.file(
        "sorry.conf",
        &[
            service(80, "NAT", "198.51.100.250 8080", "DR"),
            service(443, "DR", "198.51.100.251 8443", "NAT"),
            service(25, "NAT", "198.51.100.252 25", "TUN"),
            // IPVS's scheduler flags, which `ipvsadm -Ln` lists after the scheduler.
            [
                ("sh", "sh-port\n    sh-fallback", 8083),
                ("mh", "mh-port\n    mh-fallback", 8084),
                ("rr", "flag-1\n    flag-2\n    flag-3", 8085),
            ]
            .iter()
            .map(|(sched, flags, port)| {
                format!(
                    "virtual_server {VIP4} {port} {{\n    lb_algo {sched}\n    {flags}\n    lb_kind NAT\n    \
                         protocol TCP\n    real_server {} {port} {{\n    }}\n}}\n",
                    backend4(0)
                )
            })
            .collect::<String>(),
            // Above quorum (a real server without a checker is up): with sorry_server_inhibit
            // the sorry server is in the table all the same, at weight 0.
            format!(
                "virtual_server {VIP4} 8082 {{\n    lb_algo rr\n    lb_kind NAT\n    protocol TCP\n    \
                 sorry_server 198.51.100.253 8082\n    sorry_server_inhibit\n    real_server {} 8082 {{\n    \
                 }}\n}}\n",
                backend4(0)
            ),
            format!(
                "virtual_server {VIP4} 5060 {{\n    lb_algo rr\n    lb_kind NAT\n    protocol UDP\n    \
                 persistence_timeout 60\n    persistence_engine sip\n    real_server {} 5060 {{\n    }}\n}}\n",
                backend4(0)
            ),
            format!(
                "virtual_server fwmark 7 {{\n    ip_family inet6\n    lb_algo rr\n    lb_kind TUN\n    \
                 real_server {} {{\n    }}\n}}\n",
                backend4(0)
            ),
            // No protocol: UDP. Port 0 without persistence: persistent for 360 s; ops: TCP
            // resets it.
            format!(
                "virtual_server {VIP4} 53 {{\n    lb_algo rr\n    lb_kind NAT\n    real_server {} 53 {{\n    \
                 }}\n}}\nvirtual_server {VIP4} 0 {{\n    lb_algo rr\n    lb_kind DR\n    protocol TCP\n    \
                 ops\n    real_server {} 0 {{\n    }}\n}}\n",
                backend4(0),
                backend4(0)
            ),
        ]
        .concat(),
    );
    let sorry_in_place = |ns: &Netns| {
        let t = flat(ns);
        [
            "198.51.100.250:80 Route",
            "198.51.100.251:8443 Masq",
            "198.51.100.252:25 Tunnel",
            "198.51.100.253:8082 Masq 0 ",
            &format!("{VIP4}:8083 sh (sh-fallback,sh-port)"),
            &format!("{VIP4}:8084 mh (mh-fallback,mh-port)"),
            &format!("{VIP4}:8085 rr (flag-1,flag-2,flag-3)"),
            "persistent 60 pe sip",
            "FWM 7 IPv6 rr",
            &format!("UDP {VIP4}:53 rr"),
            &format!("TCP {VIP4}:0 rr persistent 360\n"),
        ]
        .iter()
        .all(|want| t.contains(want))
    };
    let mut seen = Vec::new();
    for who in ["keepalived", "lb-daemon"] {
        let mut ka = None;
        let mut ours = None;
        if who == "keepalived" {
            ka = Some(Keepalived::checkers(&lb, &conf, dir.path(), "sorry").unwrap());
        } else {
            ours = Some(Daemon::start(&lb, &conf, &daemon::pin_dir("isorry"), &["--backend", "ipvs", "-C"]).unwrap());
        }
        let settled = eventually(Duration::from_secs(30), || sorry_in_place(&lb));
        assert!(settled, "{who}: no sorry servers with their methods or no SIP persistence:\n{}", listing(&lb));
        // Settled: no real server comes back in the next checks.
        std::thread::sleep(Duration::from_secs(2));
        seen.push(listing(&lb));
        if let Some(mut k) = ka {
            k.stop().unwrap();
        }
        if let Some(mut d) = ours {
            d.stop().unwrap();
        }
        ipvsadm(&lb, "-C");
    }
    assert!(
        same_table(&seen[0], &seen[1]),
        "keepalived 2.2.7 programs\n{}\nlb-daemon programmed\n{}",
        seen[0],
        seen[1]
    );
    step("sorry_server_lvs_method, persistence_engine, ip_family: keepalived and lb-daemon agree");
}

/// The oracle: keepalived 2.2.7's checker process on each config, in the same namespace
/// next to the same real servers, must leave IPVS as lb-daemon did (`programmed`).
fn keepalived_programs_the_same(
    dir: &Path,
    configs: &[(String, Netns, Netns, ConfigServers)],
    programmed: &BTreeMap<String, String>,
) {
    step("keepalived --check on every config");
    let logs = TempDir::new("ka-ipvs");
    let oracles: Vec<Keepalived> = configs
        .iter()
        .map(|(name, lb, ..)| Keepalived::checkers(lb, &dir.join(format!("{name}.conf")), logs.path(), name).unwrap())
        .collect();
    // keepalived starts real servers as up and takes them out after `retry` failures: the
    // slowest config here (delay_loop 5, connect_timeout 4, retry 3, delay_before_retry 2)
    // settles within 30 s of the first check, so an equal table before that proves nothing.
    std::thread::sleep(Duration::from_secs(40));
    for ((name, lb, ..), oracle) in configs.iter().zip(&oracles) {
        let ours = &programmed[name];
        let same = eventually(Duration::from_secs(30), || same_table(&listing(lb), ours));
        assert!(
            same,
            "configs/{name}.conf: keepalived 2.2.7 programs\n{}\nlb-daemon programmed\n{ours}\nkeepalived's log:\n{}",
            listing(lb),
            oracle.log()
        );
        step(&format!("configs/{name}.conf: keepalived programs the same table"));
    }
}

/// Two `ipvsadm -Ln` listings hold the same services and real servers (the kernel lists
/// them in hash and insertion order, which the two daemons need not share).
fn same_table(a: &str, b: &str) -> bool {
    fn services(listing: &str) -> Vec<Vec<String>> {
        let mut out: Vec<Vec<String>> = Vec::new();
        for line in listing.lines().skip(2) {
            let words = line.split_whitespace().collect::<Vec<_>>().join(" ");
            match out.last_mut() {
                Some(svc) if words.starts_with("->") => svc.push(words),
                _ => out.push(vec![words]),
            }
        }
        for svc in &mut out {
            svc[1..].sort();
        }
        out.sort();
        out
    }
    services(a) == services(b)
}

/// One config's namespaces (the daemon's, and its real servers' with TCP listeners on every
/// port the configs use) and its daemon (`-C`: services and checkers only; the configs' VRRP
/// interfaces do not exist here).
fn start_config(dir: &Path, name: &str, tls: (&Path, &Path)) -> (String, Netns, Netns, ConfigServers, Daemon, usize) {
    let lb = Netns::new("ilb").unwrap();
    let reals = Netns::new("irs").unwrap();
    veth(&lb, "l1", &reals, "r0").unwrap();
    for cidr in [format!("{LB_BACKEND_SIDE4}/24"), format!("{LB_BACKEND_SIDE6}/64")] {
        addr(&lb, "l1", &cidr).unwrap();
    }
    for i in 0..3 {
        addr(&reals, "r0", &format!("{}/24", backend4(i))).unwrap();
    }
    for i in 0..2 {
        addr(&reals, "r0", &format!("{}/64", backend6(i))).unwrap();
    }
    lb.sh("ip link set lo up; sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.l1.accept_dad=0").unwrap();
    reals.sh("sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.r0.accept_dad=0").unwrap();
    let servers = ConfigServers::start(&reals, tls);
    let conf = dir.join(format!("{name}.conf"));
    step(&format!("configs/{name}.conf: starting"));
    let checks = configured_checks(&conf);
    let d = Daemon::start(&lb, &conf, &daemon::pin_dir(&format!("ic-{name}")), &["--backend", "ipvs", "-C"])
        .unwrap_or_else(|e| panic!("configs/{name}.conf: {e:#}"));
    (name.to_string(), lb, reals, servers, d, checks)
}

/// The real servers of an example config: TCP listeners (echo) on its other ports, and on
/// 80 and 443 Python's HTTP and HTTPS servers (tests/fixtures/httpd.py), every path answering
/// "ok", whose MD5 the configs' `digest`s name; HTTPS with `tls` (certificate, key). Stopped
/// on drop.
struct ConfigServers {
    _tcp: Vec<Backend>,
    _http: Vec<lb_tests::servers::HttpServer>,
}

impl ConfigServers {
    fn start(reals: &Netns, tls: (&Path, &Path)) -> Self {
        let tcp = [25u16, 53, 3306, 8080]
            .iter()
            .map(|p| Backend::start(reals, "rs".into(), format!("[::]:{p}").parse().unwrap()))
            .collect();
        let http = [(80u16, None), (443, Some(tls))]
            .into_iter()
            .map(|(port, tls)| {
                let bind = format!("[::]:{port}").parse().unwrap();
                lb_tests::servers::HttpServer::start(reals, "ok", bind, tls, None)
                    .unwrap_or_else(|e| panic!("HTTP server on {port}: {e:#}"))
            })
            .collect();
        ConfigServers { _tcp: tcp, _http: http }
    }
}

/// How many checkers `conf` runs (from `lb-daemon -t --json`, less those dropped at load).
fn configured_checks(conf: &Path) -> usize {
    let out =
        std::process::Command::new(daemon::binary().unwrap()).args(["-t", "--json", "-f"]).arg(conf).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["virtual_servers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|vs| vs["real_servers"].as_array().unwrap().iter())
        .flat_map(|rs| rs["checkers"].as_array().into_iter().flatten())
        .filter(|c| !missing_script(c))
        .count()
}

/// A MISC_CHECK whose program does not exist: keepalived drops it at load, and so do we.
fn missing_script(checker: &serde_json::Value) -> bool {
    let command = checker["kind"]["Misc"]["path"]["command"].as_str();
    command.and_then(|c| c.split_whitespace().next()).is_some_and(|p| !Path::new(p).exists())
}

const NAT_CONF: &str = "
vrrp_instance VI_1 {
    state MASTER
    interface l0
    virtual_router_id 51
    priority 150
    advert_int 1
    virtual_ipaddress {
        203.0.113.10/32 dev lo
    }
}
global_defs {
    lvs_sync_daemon l0 VI_1 id 7
}
virtual_server 203.0.113.10 80 {
    delay_loop 1
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 198.51.100.11 8080 {
        weight 2
        TCP_CHECK {
            connect_timeout 1
            retry 0
        }
    }
    real_server 198.51.100.12 8080 {
        inhibit_on_failure
        TCP_CHECK {
            connect_timeout 1
            retry 0
        }
    }
}
";

/// NAT through IPVS, checkers taking real servers out (or to weight 0), reloads that change
/// only what changed, and the sync daemon following VRRP.
fn nat_checks_reload_and_sync() {
    step("nat_checks_reload_and_sync");
    let topo = LbTopology::new(2).unwrap();
    let mut servers = backends_at(&topo, |i| (backend4(i), 8080).into());
    let cfg = TempConfig::new("nat", NAT_CONF);
    let pins = daemon::pin_dir("inat");
    let d = Daemon::start(&topo.lb, &cfg, &pins, &["--backend", "ipvs"]).unwrap();
    let vip: SocketAddr = format!("{VIP4}:80").parse().unwrap();
    // The VIP arrives with VRRP mastership (3 adverts of 1 s).
    assert!(eventually(Duration::from_secs(30), || topo
        .lb
        .sh("ip addr show dev lo")
        .unwrap()
        .contains(&VIP4.to_string())));
    let l = flat(&topo.lb);
    assert!(l.contains("TCP 203.0.113.10:80 rr"), "{l}");
    assert!(l.contains("-> 198.51.100.11:8080 Masq 2"), "{l}");
    assert!(l.contains("-> 198.51.100.12:8080 Masq 1"), "{l}");
    let names: Vec<String> = (0..6).map(|_| tcp_ask(&topo.client, vip, None)).collect();
    assert_eq!(spread(&names).len(), 2, "rr through IPVS NAT: {names:?}");
    // Stats read back: the daemon's dump and `ipvsadm -Ln --stats` agree (6 connections).
    // The 6.1 kernel folds its per-CPU counters into what it reports every 2 s.
    assert!(
        eventually(Duration::from_secs(20), || column(&ipvsadm(&topo.lb, "-Ln --stats"), "TCP  203.0.113.10:80", 2)
            == 6),
        "{}",
        ipvsadm(&topo.lb, "-Ln --stats")
    );
    let stats = ipvsadm(&topo.lb, "-Ln --stats");
    let dump = d.json_dump().unwrap();
    let svc = &dump["dataplane"]["services"][0];
    assert_eq!(column(&stats, "TCP  203.0.113.10:80", 2), 6, "{stats}");
    assert_eq!(svc["stats"]["conns"].as_u64(), Some(6), "{svc}");
    let real = |addr: &str| svc["reals"].as_array().unwrap().iter().find(|r| r["real"] == addr).unwrap().clone();
    assert_eq!(real("198.51.100.11:8080")["stats"]["conns"].as_u64(), Some(column(&stats, "-> 198.51.100.11:8080", 2)));
    assert_eq!(real("198.51.100.12:8080")["stats"]["conns"].as_u64(), Some(column(&stats, "-> 198.51.100.12:8080", 2)));

    // The sync daemon is master while VI_1 is.
    assert!(
        eventually(Duration::from_secs(10), || ipvsadm(&topo.lb, "-L --daemon").contains("master sync daemon")),
        "{}",
        ipvsadm(&topo.lb, "-L --daemon")
    );
    assert!(ipvsadm(&topo.lb, "-L --daemon").contains("syncid=7"));

    // A held connection survives everything below that does not touch its real server.
    let mut held = topo
        .client
        .run(move || {
            let mut s = TcpStream::connect_timeout(&vip, TIMEOUT).unwrap();
            s.set_read_timeout(Some(TIMEOUT)).unwrap();
            s.write_all(b"hold").unwrap();
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).unwrap();
            (String::from_utf8_lossy(&buf[..n]).trim_end_matches(":hold").to_string(), s)
        })
        .unwrap();

    // Reloading the same config changes nothing in the kernel.
    let before = changes(&d);
    d.signal(Signal::SIGHUP).unwrap();
    assert!(d.wait_log("reload applied", Duration::from_secs(20)));
    assert_eq!(changes(&d), before, "an identical reload sent netlink changes");
    // A weight change is one SET_DEST.
    cfg.rewrite(&NAT_CONF.replace("weight 2", "weight 5"));
    d.signal(Signal::SIGHUP).unwrap();
    assert!(eventually(Duration::from_secs(20), || changes(&d) == before + 1), "{} vs {before}", changes(&d));
    assert!(flat(&topo.lb).contains("-> 198.51.100.11:8080 Masq 5"));
    let again = |s: &mut TcpStream| -> String {
        s.write_all(b"again").unwrap();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).trim_end_matches(":again").to_string()
    };
    assert_eq!(again(&mut held.1), held.0, "the held connection moved or broke across reloads");

    // be0 fails its check: removed. be1 fails: inhibited (weight 0), its connections live on.
    servers.remove(0);
    assert!(
        eventually(Duration::from_secs(20), || !flat(&topo.lb).contains("198.51.100.11:8080")),
        "{}",
        listing(&topo.lb)
    );
    drop(servers);
    assert!(
        eventually(Duration::from_secs(20), || flat(&topo.lb).contains("-> 198.51.100.12:8080 Masq 0")),
        "{}",
        listing(&topo.lb)
    );
    // Back up: both return with their weights.
    let _servers = backends_at(&topo, |i| (backend4(i), 8080).into());
    assert!(
        eventually(Duration::from_secs(20), || {
            let l = flat(&topo.lb);
            l.contains("198.51.100.11:8080 Masq 5") && l.contains("198.51.100.12:8080 Masq 1")
        }),
        "{}",
        listing(&topo.lb)
    );
    drop(held);

    // Runtime overrides reach IPVS too: a drain is weight 0 (quiesced), a weight is set,
    // a disabled service quiesces every real server; each undone.
    let control = |args: &[&str]| {
        let out = std::process::Command::new(daemon::binary().unwrap())
            .args(args)
            .arg("--run-dir")
            .arg(daemon::run_dir_for(&pins))
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let shows = |want: &[&str]| {
        let l = flat(&topo.lb);
        want.iter().all(|w| l.contains(w))
    };
    control(&["drain", "198.51.100.12:8080"]);
    control(&["weight", "198.51.100.11:8080", "7"]);
    assert!(shows(&["198.51.100.11:8080 Masq 7", "198.51.100.12:8080 Masq 0"]), "{}", listing(&topo.lb));
    control(&["disable", "203.0.113.10:80"]);
    assert!(shows(&["198.51.100.11:8080 Masq 0", "198.51.100.12:8080 Masq 0"]), "{}", listing(&topo.lb));
    control(&["enable", "203.0.113.10:80"]);
    control(&["undrain", "198.51.100.12:8080"]);
    control(&["weight", "198.51.100.11:8080", "--reset"]);
    assert!(shows(&["198.51.100.11:8080 Masq 5", "198.51.100.12:8080 Masq 1"]), "{}", listing(&topo.lb));

    // Exit removes this daemon's services and sync daemon, and nothing else.
    topo.lb.sh("ipvsadm -A -t 192.0.2.200:9 -s rr").unwrap();
    let mut d = d;
    d.stop().unwrap();
    let l = flat(&topo.lb);
    assert!(!l.contains("203.0.113.10"), "{l}");
    assert!(l.contains("192.0.2.200:9"), "a service the daemon did not create was removed: {l}");
    assert!(!ipvsadm(&topo.lb, "-L --daemon").contains("sync daemon"));
}

const DR_CONF: &str = "
virtual_server 203.0.113.10 80 {
    lb_algo wrr
    lb_kind DR
    protocol TCP
    persistence_timeout 60
    real_server 198.51.100.11 80 {
        weight 1
    }
    real_server 198.51.100.12 80 {
        weight 1
    }
}
virtual_server 2001:db8:f::10 80 {
    lb_algo sed
    lb_kind DR
    protocol TCP
    real_server 2001:db8:b::11 80 {
    }
    real_server 2001:db8:b::12 80 {
    }
}
";

/// DR: real servers hold the VIP and answer the client directly; persistence keeps a client
/// on one real server; an IPVS-only scheduler (sed) runs.
fn direct_routing() {
    step("direct_routing");
    let topo = LbTopology::new(2).unwrap();
    topo.direct_return().unwrap();
    topo.lb.sh(&format!("ip addr add {VIP4}/32 dev lo && ip -6 addr add {VIP6}/128 dev lo")).unwrap();
    let _s4 = backends_at(&topo, |_| (VIP4, 80).into());
    let _s6 = backends_at(&topo, |_| (VIP6, 80).into());
    let cfg = TempConfig::new("dr", DR_CONF);
    let pins = daemon::pin_dir("idr");
    let d = Daemon::start(&topo.lb, &cfg, &pins, &["--backend", "ipvs"]).unwrap();
    let l = flat(&topo.lb);
    assert!(l.contains("TCP 203.0.113.10:80 wrr persistent 60"), "{l}");
    assert!(l.contains("-> 198.51.100.11:80 Route 1"), "{l}");
    assert!(l.contains("TCP [2001:db8:f::10]:80 sed"), "{l}");
    let v4: SocketAddr = format!("{VIP4}:80").parse().unwrap();
    let names: Vec<String> = (0..4).map(|_| tcp_ask(&topo.client, v4, None)).collect();
    assert_eq!(spread(&names).len(), 1, "persistence keeps one client on one real server: {names:?}");
    // The persistence template: `ipvsadm --persistent-conn` and the daemon's dump agree.
    let real = if names[0] == "be0" { "198.51.100.11:80" } else { "198.51.100.12:80" };
    let pc = ipvsadm(&topo.lb, "-Ln --persistent-conn");
    let dump = d.json_dump().unwrap();
    let reals = dump["dataplane"]["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == "TCP 203.0.113.10:80")
        .unwrap()["reals"]
        .clone();
    let ours = reals.as_array().unwrap().iter().find(|r| r["real"] == real).unwrap()["persistent_conns"].as_u64();
    assert_eq!(ours, Some(column(&pc, &format!("-> {real}"), 3)), "{pc}");
    assert_eq!(ours, Some(1), "{pc}");
    // `lb-daemon conns` lists what `ipvsadm -Lnc` does: the 4 connections and the template.
    let agree = eventually(Duration::from_secs(10), || {
        let (theirs, ours) = (ipvsadm_conns(&topo.lb), lb_conns(&topo.lb, &pins));
        println!("ipvsadm -Lnc: {theirs:?}\nlb-daemon conns: {ours:?}");
        theirs.len() >= 5 && theirs.keys().eq(ours.keys()) && theirs.iter().all(|(k, t)| ours[k].abs_diff(*t) <= 2)
    });
    assert!(agree, "lb-daemon conns and ipvsadm -Lnc differ (printed above)");
    // Draining the persistent client's real server: its next connection goes to the other
    // one (IPVS keeps sending persistent clients to a quiesced server unless told not to).
    let out = std::process::Command::new(daemon::binary().unwrap())
        .args(["drain", real, "--run-dir"])
        .arg(daemon::run_dir_for(&pins))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let moved: Vec<String> = (0..3).map(|_| tcp_ask(&topo.client, v4, None)).collect();
    assert!(moved.iter().all(|n| n != &names[0]), "a drained real server got a persistent client: {moved:?}");
    let v6: SocketAddr = format!("[{VIP6}]:80").parse().unwrap();
    // sed counts active connections only, and these close at once: no spread to expect.
    let names: Vec<String> = (0..4).map(|_| tcp_ask(&topo.client, v6, None)).collect();
    assert!(names.iter().all(|n| n == "be0" || n == "be1"), "sed over IPv6 DR: {names:?}");
    drop(d);
}

/// A connection entry as `ipvsadm -Lnc` shows it: protocol, state, source, virtual,
/// destination; the value is its expiry in seconds.
type ConnRow = (String, String, String, String, String);

/// `ipvsadm -Lnc` in `ns` (`pro expire state source virtual destination`, expire as MM:SS).
fn ipvsadm_conns(ns: &Netns) -> BTreeMap<ConnRow, u64> {
    ipvsadm(ns, "-Lnc")
        .lines()
        .skip(2)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (m, s) = f.get(1)?.split_once(':')?;
            let expire = m.parse::<u64>().ok()? * 60 + s.parse::<u64>().ok()?;
            let row = (
                f[0].to_string(),
                f.get(2)?.to_string(),
                f.get(3)?.to_string(),
                f.get(4)?.to_string(),
                f.get(5)?.to_string(),
            );
            Some((row, expire))
        })
        .collect()
}

/// `lb-daemon conns --json` in `ns` for the daemon pinned at `pins` (its state file says the
/// backend is IPVS), in the same shape.
fn lb_conns(ns: &Netns, pins: &Path) -> BTreeMap<ConnRow, u64> {
    let out = ns
        .command(daemon::binary().unwrap())
        .args(["conns", "--json", "--run-dir"])
        .arg(daemon::run_dir_for(pins))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["backend"], "ipvs", "{v}");
    let ep = |e: &serde_json::Value| {
        let ip: std::net::IpAddr = e["ip"].as_str().unwrap().parse().unwrap();
        SocketAddr::new(ip, e["port"].as_u64().unwrap() as u16).to_string()
    };
    v["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let row = (
                c["protocol"].as_str().unwrap().to_uppercase(),
                c["state"].as_str().unwrap().to_string(),
                ep(&c["client"]),
                ep(&c["virtual"]),
                ep(&c["real"]),
            );
            (row, c["expires_in_s"].as_u64().unwrap())
        })
        .collect()
}

const TUN_CONF: &str = "
virtual_server 203.0.113.10 80 {
    lb_algo rr
    lb_kind TUN
    protocol TCP
    real_server 198.51.100.11 80 {
    }
    real_server 198.51.100.12 80 {
    }
}
";

/// TUN: IPVS encapsulates in IPIP; the real servers' kernels decapsulate (tunl0).
fn tunnel() {
    step("tunnel");
    let topo = LbTopology::new(2).unwrap();
    topo.direct_return().unwrap();
    topo.lb.sh(&format!("ip addr add {VIP4}/32 dev lo")).unwrap();
    for b in &topo.backends {
        b.sh("ip link set tunl0 up && sysctl -qw net.ipv4.conf.tunl0.rp_filter=0").unwrap();
    }
    let _s = backends_at(&topo, |_| (VIP4, 80).into());
    let cfg = TempConfig::new("tun", TUN_CONF);
    let d = Daemon::start(&topo.lb, &cfg, &daemon::pin_dir("itun"), &["--backend", "ipvs"]).unwrap();
    assert!(flat(&topo.lb).contains("-> 198.51.100.11:80 Tunnel 1"), "{}", listing(&topo.lb));
    let v4: SocketAddr = format!("{VIP4}:80").parse().unwrap();
    let names: Vec<String> = (0..6).map(|_| tcp_ask(&topo.client, v4, None)).collect();
    assert_eq!(spread(&names).len(), 2, "IPIP to both real servers: {names:?}");
    drop(d);
}

/// `--backend auto` picks IPVS when BPF cannot run (simulated) or when the config needs what
/// only IPVS has (a firewall mark).
fn auto_probe() {
    step("auto_probe");
    let topo = LbTopology::new(1).unwrap();
    let cfg = TempConfig::new("auto", TUN_CONF);
    let kind = |d: &Daemon| d.state().unwrap()["backend"]["kind"].as_str().unwrap().to_string();

    let d = Daemon::start(&topo.lb, &cfg, &daemon::pin_dir("iauto1"), &["--simulate-no-bpf"]).unwrap();
    assert_eq!(kind(&d), "ipvs");
    assert!(d.log().iter().any(|l| l.contains("backend auto: using IPVS because") && l.contains("simulated")));
    drop(d);

    let fwmark =
        TempConfig::new("autofwm", "virtual_server fwmark 7 {\n lb_kind DR\n real_server 198.51.100.11 80 {\n}\n}\n");
    let d = Daemon::start(&topo.lb, &fwmark, &daemon::pin_dir("iauto2"), &[]).unwrap();
    assert_eq!(kind(&d), "ipvs");
    assert!(flat(&topo.lb).contains("FWM 7 wlc"), "{}", listing(&topo.lb));
    drop(d);

    // What only IPVS does, per real server and global: auto picks IPVS for it (lvs_timeouts
    // first), and each reaches the kernel: a real server's own lvs_method, its connection
    // thresholds, the timeouts (put back as they were when the daemon stops).
    let before = ipvsadm(&topo.lb, "-L --timeout");
    let only = TempConfig::new(
        "autoonly",
        "global_defs {\n lvs_timeouts tcp 7200 tcpfin 30 udp 60\n}\nvirtual_server 203.0.113.10 80 {\n protocol TCP\n \
         lb_kind NAT\n real_server 198.51.100.11 80 {\n  lvs_method DR\n  uthreshold 100\n  lthreshold 50\n }\n \
         real_server 198.51.100.12 8080 {\n }\n}\n",
    );
    let mut d = Daemon::start(&topo.lb, &only, &daemon::pin_dir("iauto3"), &[]).unwrap();
    assert_eq!(kind(&d), "ipvs");
    assert!(d.log().iter().any(|l| l.contains("backend auto: using IPVS because") && l.contains("lvs_timeouts")));
    let l = flat(&topo.lb);
    assert!(l.contains("-> 198.51.100.11:80 Route 1") && l.contains("-> 198.51.100.12:8080 Masq 1"), "{l}");
    // `-> ADDR:PORT Uthreshold Lthreshold ActiveConn InActConn`.
    let th = ipvsadm(&topo.lb, "-Ln --thresholds");
    assert_eq!((column(&th, "-> 198.51.100.11:80", 2), column(&th, "-> 198.51.100.11:80", 3)), (100, 50), "{th}");
    let set = eventually(Duration::from_secs(10), || {
        ipvsadm(&topo.lb, "-L --timeout").contains("Timeout (tcp tcpfin udp): 7200 30 60")
    });
    assert!(set, "{}", ipvsadm(&topo.lb, "-L --timeout"));
    d.stop().unwrap();
    assert_eq!(ipvsadm(&topo.lb, "-L --timeout"), before, "the kernel's timeouts are back");

    // Where BPF loads, auto takes it: `auto_picks_bpf_where_it_loads` on the host (here the
    // verifier alone would take minutes under emulation).
}

/// Connection sync between the kernel's IPVS sync daemon and lb-daemon's (BPF backend), both
/// ways, on one segment: node 0 is IPVS (ipvsadm, DR, `--start-daemon`), node 1 lb-daemon
/// with the same service; three real servers hold the VIP on loopback. Kernel master → lb
/// backup: connections through IPVS appear in lb-daemon's `lb_conntrack4`/`lb_conntrack` with the kernel's
/// real servers, and keep working through lb-daemon once it takes the VIP over (a migration
/// from keepalived+IPVS). lb master → kernel backup: connections through lb-daemon's XDP appear in
/// `ipvsadm -Lnc` as ESTABLISHED with lb-daemon's real servers. Then, with the IPVS backend:
/// keepalived's sync options reach the kernel's daemon, and a leftover sync daemon is
/// replaced and both of ours stop at exit.
fn sync_interop() {
    step("sync_interop");
    let seg = Segment::new(2).unwrap();
    let reals: Vec<std::net::Ipv4Addr> = (0..3).map(|i| node4(20 + i)).collect();
    let mut servers = Vec::new();
    for (i, r) in reals.iter().enumerate() {
        let rs = Netns::new(&format!("isy{i}")).unwrap();
        let port = format!("s{}", 5 + i);
        veth(&rs, "r0", &seg.switch, &port).unwrap();
        seg.switch.ip(&["link", "set", &port, "master", "br0"]).unwrap();
        addr(&rs, "r0", &format!("{r}/24")).unwrap();
        rs.sh(&format!(
            "sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 && ip addr add {VRRP_VIP4}/32 dev lo"
        ))
        .unwrap();
        let s = Backend::start(&rs, r.to_string(), (VRRP_VIP4, 80).into());
        servers.push((rs, s));
    }
    let (k, lb) = (&seg.nodes[0], &seg.nodes[1]);
    // The kernel node: the DR service, the VIP local (IPVS takes it at LOCAL_IN), sync master.
    k.sh(&format!("ip addr add {VRRP_VIP4}/32 dev lo && ipvsadm -A -t {VRRP_VIP4}:80 -s rr")).unwrap();
    for r in &reals {
        ipvsadm(k, &format!("-a -t {VRRP_VIP4}:80 -r {r}:80 -g"));
    }
    ipvsadm(k, "--start-daemon master --mcast-interface l0 --syncid 7");
    // lb-daemon: sync backup while VI_1 is not master (FAULT: it tracks dm0, down for now).
    lb.sh("ip link add dm0 type dummy && sysctl -qw net.ipv4.ip_forward=1").unwrap();
    seg.switch.sh("ethtool -K s2 gro on >/dev/null").unwrap();
    let reals_conf: String = reals.iter().map(|r| format!("    real_server {r} 80 {{\n    }}\n")).collect();
    let conf = format!(
        "global_defs {{\n    lb_backend bpf\n    lvs_sync_daemon l0 VI_1 id 7\n}}\n\
         vrrp_instance VI_1 {{\n    state BACKUP\n    interface l0\n    virtual_router_id 58\n    priority 100\n    \
         advert_int 1\n    track_interface {{\n        dm0\n    }}\n    virtual_ipaddress {{\n        {VRRP_VIP4}/24\n    }}\n}}\n\
         virtual_server {VRRP_VIP4} 80 {{\n    protocol TCP\n    lb_algo rr\n    lb_kind DR\n{reals_conf}}}\n"
    );
    let cfg = TempConfig::new("syncinterop", &conf);
    let pins = daemon::pin_dir("isync");
    let d = Daemon::start(lb, &cfg, &pins, &["--interface", "l0"]).unwrap();
    step("lb-daemon up (sync backup)");
    let vip = SocketAddr::from((VRRP_VIP4, 80));
    let to = |i: usize| {
        let mac = seg.mac(i).unwrap();
        seg.client
            .ip(&["neigh", "replace", &VRRP_VIP4.to_string(), "lladdr", &mac, "dev", "c0", "nud", "permanent"])
            .unwrap();
    };
    let port_of = |s: &TcpStream| s.local_addr().unwrap().port();
    let ip_of = |e: &str| e.rsplit_once(':').map(|(a, _)| a.to_string()).unwrap_or_default();

    // Kernel master → lb-daemon backup.
    to(0);
    let held: Vec<(String, TcpStream)> = (0..6).map(|_| tcp_hold(&seg.client, vip)).collect();
    let want: BTreeMap<u16, String> = held.iter().map(|(n, s)| (port_of(s), n.clone())).collect();
    println!("through IPVS: {want:?}\nipvsadm -Lnc:\n{}", ipvsadm(k, "-Lnc"));
    let ours = || -> BTreeMap<u16, String> {
        let v = conns_json(&pins, &[]).unwrap_or_default();
        v["connections"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["table"] == "conntrack" && c["state"] == "ESTABLISHED")
            .filter_map(|c| Some((c["client"]["port"].as_u64()? as u16, c["real"]["ip"].as_str()?.to_string())))
            .collect()
    };
    let got = eventually(Duration::from_secs(20), || want.iter().all(|(p, r)| ours().get(p) == Some(r)));
    println!("lb-daemon's conntrack: {:?}", ours());
    assert!(got, "the kernel's connections did not reach lb-daemon's conntrack\n{:#?}", d.log());

    // The migration: lb-daemon takes the VIP over from the keepalived+IPVS node, and the
    // connections opened through IPVS go on through lb-daemon to the same real servers.
    ipvsadm(k, "--stop-daemon master");
    lb.sh("ip link set dm0 up").unwrap();
    assert!(d.wait_log("-> MASTER", Duration::from_secs(60)), "{:#?}", d.log());
    step("lb-daemon master");
    to(1);
    let mut held = held;
    let kept = held
        .iter_mut()
        .filter(|(name, s)| {
            let mut s = s.try_clone().unwrap();
            s.write_all(b"again").is_ok() && {
                let mut buf = [0u8; 64];
                matches!(s.read(&mut buf), Ok(n) if n > 0 && String::from_utf8_lossy(&buf[..n]) == format!("{name}:again"))
            }
        })
        .count();
    println!("connections opened through IPVS that went on through lb-daemon: {kept}/{}", held.len());
    assert_eq!(kept, held.len(), "{:#?}", d.log());
    drop(held);

    // lb-daemon master → kernel backup.
    ipvsadm(k, "--start-daemon backup --mcast-interface l0 --syncid 7");
    let held: Vec<(String, TcpStream)> = (0..6).map(|_| tcp_hold(&seg.client, vip)).collect();
    let want: BTreeMap<u16, String> = held.iter().map(|(n, s)| (port_of(s), n.clone())).collect();
    let kernel = || -> BTreeMap<u16, String> {
        ipvsadm_conns(k)
            .into_keys()
            .filter(|(pro, state, _, _, _)| pro == "TCP" && state == "ESTABLISHED")
            .filter_map(|(_, _, src, _, dst)| Some((src.rsplit_once(':')?.1.parse().ok()?, ip_of(&dst))))
            .collect()
    };
    let got = eventually(Duration::from_secs(20), || want.iter().all(|(p, r)| kernel().get(p) == Some(r)));
    println!("through lb-daemon: {want:?}\nipvsadm -Lnc:\n{}", ipvsadm(k, "-Lnc"));
    assert!(got, "lb-daemon's connections did not reach the kernel's table\n{:#?}", d.log());
    drop(held);
    ipvsadm(k, "--stop-daemon backup");
    drop(d);
    drop(servers);

    // The IPVS backend hands keepalived's maxlen / port / ttl / group to the kernel's daemon
    // (a backup here: its instance is not master, held back by vrrp_startup_delay; an
    // instance the line names must exist, or there is no sync, as in keepalived).
    let ns = Netns::new("isyi").unwrap();
    ns.sh("ip link add v0 type veth peer name v1 && ip link set v0 up && ip link set v1 up && ip addr add 198.51.100.1/24 dev v0")
        .unwrap();
    let cfg = TempConfig::new(
        "syncopts",
        "global_defs {\n    lvs_sync_daemon v0 VI_9 id 3 maxlen 1200 port 8850 ttl 2 group 239.1.1.81\n    \
         vrrp_startup_delay 60\n}\nvrrp_instance VI_9 {\n    state BACKUP\n    interface v0\n    \
         virtual_router_id 9\n    priority 100\n    virtual_ipaddress {\n        198.51.100.9/24\n    }\n}\n",
    );
    let d = Daemon::start(&ns, &cfg, &daemon::pin_dir("isyncopt"), &["--backend", "ipvs"]).unwrap();
    let shown = eventually(Duration::from_secs(10), || ipvsadm(&ns, "-L --daemon").contains("syncid=3"));
    let daemon = ipvsadm(&ns, "-L --daemon");
    println!("ipvsadm -L --daemon: {daemon}");
    assert!(shown, "{daemon}\n{:#?}", d.log());
    for want in ["backup sync daemon", "mcast=v0", "maxlen=1200", "group=239.1.1.81", "port=8850"] {
        assert!(daemon.contains(want), "{want}: {daemon}");
    }
    drop(d);

    // As keepalived: a sync daemon left running (here a backup, as a killed daemon leaves
    // it) is stopped first and ours started; without an instance both run, and exit stops
    // both.
    let ns = Netns::new("isyb").unwrap();
    ns.sh("ip link add v0 type veth peer name v1 && ip link set v0 up && ip link set v1 up && ip addr add 198.51.100.1/24 dev v0")
        .unwrap();
    ipvsadm(&ns, "--start-daemon backup --mcast-interface v0 --syncid 4");
    let cfg = TempConfig::new("syncboth", "global_defs {\n    lvs_sync_daemon v0 id 5\n}\n");
    let mut d = Daemon::start(&ns, &cfg, &daemon::pin_dir("isyncboth"), &["--backend", "ipvs"]).unwrap();
    let both = || {
        let l = ipvsadm(&ns, "-L --daemon");
        l.lines().filter(|l| l.contains("syncid=5")).count() == 2 && !l.contains("syncid=4")
    };
    assert!(eventually(Duration::from_secs(10), both), "{}\n{:#?}", ipvsadm(&ns, "-L --daemon"), d.log());
    d.stop().unwrap();
    let after = ipvsadm(&ns, "-L --daemon");
    assert!(!after.contains("sync daemon"), "a sync daemon outlived lb-daemon: {after}");
}

/// `--backend auto` on this kernel: the XDP data plane loads, so it runs, and IPVS is not
/// asked for.
#[test]
fn auto_picks_bpf_where_it_loads() {
    require_root();
    if lb_tests::vm::in_vm() {
        return;
    }
    let topo = LbTopology::new(1).unwrap();
    let cfg = TempConfig::new("autobpf", TUN_CONF);
    let d = Daemon::start(&topo.lb, &cfg, &daemon::pin_dir("iautob"), &[]).unwrap();
    assert_eq!(d.state().unwrap()["backend"]["kind"], "bpf");
    assert!(!d.log().iter().any(|l| l.contains("using IPVS")), "{}", d.log().join("\n"));
    drop(d);
}

/// This machine's kernel has no IPVS: asking for it is a clear error, quickly, and `auto`
/// with BPF unavailable says why neither works.
#[test]
fn without_ipvs_the_backend_is_a_clear_error() {
    require_root();
    if lb_tests::vm::in_vm() || Path::new("/proc/net/ip_vs").exists() {
        return; // this kernel has IPVS: the VM test covers it
    }
    let ns = Netns::new("noipvs").unwrap();
    let dir = TempDir::new("noipvs");
    let cfg = dir.file("keepalived.conf", TUN_CONF);
    let run = |args: &[&str]| {
        let started = std::time::Instant::now();
        let out = ns
            .command(daemon::binary().unwrap())
            .args(["-l", "-f"])
            .arg(&cfg)
            .args(["--run-dir"])
            .arg(dir.join("run"))
            .args(args)
            .output()
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, err) = run(&["--backend", "ipvs"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("the kernel has no IPVS"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let (code, err) = run(&["--simulate-no-bpf"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("no forwarding backend can run") && err.contains("simulated") && err.contains("no IPVS"),
        "{err}"
    );
}
