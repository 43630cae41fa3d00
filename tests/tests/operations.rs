//! Operating lb-daemon beyond what keepalived offers: `lb-daemon conns` lists the data
//! plane's flows as `ipvsadm -Lnc` lists IPVS's, and the daemon run the way operators run
//! things in a namespace, `ip netns exec`, keeps its pins (and forwarding) across kill -9 where
//! `stats` finds them.

use std::{
    collections::BTreeSet,
    net::{SocketAddr, TcpStream},
    path::PathBuf,
};

use lb_tests::prelude::*;

/// A NAT service and a DR service on one VIP, two real servers each.
const CONF: &str = "
virtual_server 203.0.113.10 80 {
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 198.51.100.11 8080 {
    }
    real_server 198.51.100.12 8080 {
    }
}
virtual_server 203.0.113.10 81 {
    lb_algo rr
    lb_kind DR
    protocol TCP
    real_server 198.51.100.11 81 {
    }
    real_server 198.51.100.12 81 {
    }
}
";

/// `be0` → 198.51.100.11, `be1` → 198.51.100.12.
fn real_of(name: &str, port: u16) -> String {
    let i: usize = name.trim_start_matches("be").parse().unwrap_or_else(|_| panic!("answered by {name}"));
    format!("{}:{port}", backend4(i))
}

fn endpoint(v: &serde_json::Value) -> String {
    format!("{}:{}", v["ip"].as_str().unwrap_or("?"), v["port"])
}

/// (client, virtual, real, state) of the entries of `table` in a `conns --json` answer.
fn rows(conns: &serde_json::Value, table: &str) -> BTreeSet<(String, String, String, String)> {
    conns["connections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["table"] == table)
        .map(|c| {
            let real = if c["real"].is_null() { "unknown".to_string() } else { endpoint(&c["real"]) };
            (endpoint(&c["client"]), endpoint(&c["virtual"]), real, c["state"].as_str().unwrap_or("").to_string())
        })
        .collect()
}

/// Held connections through a NAT and a DR service: `conns --json` lists exactly them as
/// established flows (client, VIP, real server) with a positive expiry; `--real` and `--service` narrow the list; the text output has
/// `ipvsadm -Lnc`'s columns.
#[test]
fn conns_lists_the_flows_of_nat_and_dr_services() {
    require_root();
    let topo = LbTopology::new(2).unwrap();
    topo.direct_return().unwrap();
    let _nat = backends_at(&topo, |i| (backend4(i), 8080).into());
    let _dr = backends_at(&topo, |_| (VIP4, 81).into());
    let (_cfg, pins, d) = daemon::on_lb(&topo, "conns", CONF, &[]);

    let nat: SocketAddr = (VIP4, 80).into();
    let dr: SocketAddr = (VIP4, 81).into();
    let held: Vec<(String, TcpStream, SocketAddr, u16)> = [nat, nat, nat, dr, dr, dr]
        .into_iter()
        .map(|vip| {
            let (name, s) = tcp_hold(&topo.client, vip);
            let port = if vip.port() == 80 { 8080 } else { 81 };
            (name, s, vip, port)
        })
        .collect();
    let flow = |(name, s, vip, port): &(String, TcpStream, SocketAddr, u16)| {
        (s.local_addr().unwrap().to_string(), vip.to_string(), real_of(name, *port), "ESTABLISHED".to_string())
    };
    let expected: BTreeSet<_> = held.iter().map(flow).collect();
    assert_eq!(expected.len(), 6);

    let all = conns_json(&pins, &[]).unwrap();
    assert_eq!(all["backend"], "bpf", "{all}");
    assert_eq!(rows(&all, "conntrack"), expected, "{all:#}");
    // Every handshake completed: nothing stays half-open (the reply entries a flow leaves in
    // the half-open table when promoted are shadowed, and not listed).
    assert!(rows(&all, "halfopen").is_empty() && rows(&all, "halfopen_rev").is_empty(), "{all:#}");
    for c in all["connections"].as_array().unwrap().iter().filter(|c| c["table"] == "conntrack") {
        let left = c["expires_in_s"].as_u64().unwrap_or(0);
        assert!((890..=900).contains(&left), "an established flow expires in 900 s after its last packet: {c}");
        assert!(c["real_id"].is_u64() && c["protocol"] == "tcp", "{c}");
        let svc = if c["virtual"]["port"] == 80 { "203.0.113.10:80/tcp" } else { "203.0.113.10:81/tcp" };
        assert_eq!(c["service"], svc, "{c}");
    }
    // The NAT flows' replies are translated through their real servers' entries in
    // `lb_real_rev` (one VIP reaches each), not through reverse entries of their own.
    assert!(rows(&all, "nat_rev").is_empty(), "{all:#}");

    // --real narrows to one real server's flows, --service to one service's.
    let be0_nat = format!("{}:8080", backend4(0));
    let by_real = conns_json(&pins, &["--real", &be0_nat]).unwrap();
    let want: BTreeSet<_> = expected.iter().filter(|f| f.2 == be0_nat).cloned().collect();
    assert_eq!(rows(&by_real, "conntrack"), want, "{by_real:#}");
    assert!(rows(&by_real, "conntrack").len() < expected.len());
    let by_service = conns_json(&pins, &["--service", "203.0.113.10:81"]).unwrap();
    let want: BTreeSet<_> = expected.iter().filter(|f| f.1.ends_with(":81")).cloned().collect();
    assert_eq!(rows(&by_service, "conntrack"), want, "{by_service:#}");
    assert!(rows(&by_service, "nat_rev").is_empty(), "a DR service has no reply translations");

    // The text output: ipvsadm -Lnc's columns, one line per flow.
    let out =
        std::process::Command::new(daemon::binary().unwrap()).args(["conns", "--pin-dir"]).arg(&pins).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.lines().nth(1).is_some_and(|l| l.starts_with("pro expire state")), "{text}");
    for (client, vip, real, _) in &expected {
        let line = text.lines().find(|l| l.contains(client.as_str())).unwrap_or_else(|| panic!("{client}: {text}"));
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(f[0], "TCP", "{line}");
        assert!(f[1].starts_with("14:") || f[1] == "15:00", "{line}");
        assert_eq!((f[2], f[4], f[5]), ("ESTABLISHED", vip.as_str(), real.as_str()), "{line}");
    }
    drop(held);
    drop(d);
}

const NSEXEC_CONF: &str = "
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
";

/// Removes a directory tree on drop (a daemon's default run directory).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `lb-daemon ARGS` under `ip netns exec` in `ns`, waited for.
fn exec_output(ns: &Netns, args: &[&str]) -> std::process::Output {
    ns.exec_command(daemon::binary().unwrap()).args(args).output().unwrap()
}

fn bpffs_mounts() -> usize {
    std::fs::read_to_string("/proc/self/mountinfo").unwrap().lines().filter(|l| l.contains(" - bpf ")).count()
}

/// `ip netns exec NS lb-daemon` gives the daemon a private mount namespace with a fresh /sys.
/// Its pins still go to the host's bpffs (under the namespace's default pin directory), so
/// `ip netns exec NS lb-daemon stats` reads them, kill -9 keeps forwarding (every request and
/// every held connection), a restart adopts the pins, and SIGTERM removes them.
#[test]
fn under_ip_netns_exec_pins_outlive_the_daemon_and_stats_finds_them() {
    require_root();
    let topo = LbTopology::new(3).unwrap();
    let _servers = backends(&topo, 8080);
    let cfg = TempConfig::new("nsexec", NSEXEC_CONF);
    let ns = topo.lb.name().to_string();
    let pins = PathBuf::from(format!("/sys/fs/bpf/lb-netns-{ns}"));
    let _run = RemoveOnDrop(PathBuf::from(format!("/run/lb-daemon-netns-{ns}")));
    // The pins outlive the daemon on purpose below: removed whatever happens (after the
    // daemon, which is declared later and dropped first).
    let _pins = RemoveOnDrop(pins.clone());
    let mounts = bpffs_mounts();
    let start = || {
        let mut d = Daemon::spawn_netns_exec(&topo.lb, &["-l", "-f", cfg.to_str().unwrap()], "lb-daemon ready")
            .unwrap_or_else(|e| panic!("lb-daemon under ip netns exec: {e:#}"));
        d.pin_dir = Some(pins.clone());
        d
    };
    let mut d = start();
    assert!(d.log().iter().any(|l| l.contains("pinning in the host's bpffs")), "{:#?}", d.log());
    // The pins are where this test, in the host's mount namespace, sees them.
    assert!(pins.join("lb_conntrack").exists() && pins.join("links/xdp_l0").exists(), "{:#?}", d.log());
    assert_eq!(bpffs_mounts(), mounts, "the host's mount table is left as it was");
    let vip: SocketAddr = (VIP4, 80).into();
    let names: Vec<String> = (0..9).map(|_| tcp_ask(&topo.client, vip, None)).collect();
    assert_eq!(spread(&names).len(), 3, "{names:?}");

    // `stats` under the same `ip netns exec`, default pin directory: the daemon's counters.
    let stats = |what: &str| -> serde_json::Value {
        let out = exec_output(&topo.lb, &["stats", "--json"]);
        assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let svc_flows = |s: &serde_json::Value| s["services"][0]["new_flows"].as_u64().unwrap_or(0);
    assert!(svc_flows(&stats("with the daemon")) >= 9);
    let status = exec_output(&topo.lb, &["status", "--json"]);
    assert!(status.status.success(), "status: {}", String::from_utf8_lossy(&status.stderr));

    let mut held: Vec<(String, TcpStream)> = (0..3).map(|_| tcp_hold(&topo.client, vip)).collect();
    d.signal(nix::sys::signal::Signal::SIGKILL).unwrap();
    // Reap it, keeping the pins (the drop would remove them).
    d.pin_dir = None;
    drop(d);
    assert!(pins.join("lb_conntrack").exists(), "the pins must outlive a killed daemon's mount namespace");
    assert!(topo.lb.xdp_attached("l0") && topo.lb.xdp_attached("l1"), "XDP must stay attached");
    let names: Vec<String> = (0..9).map(|_| tcp_ask(&topo.client, vip, None)).collect();
    assert_eq!(names.len(), 9, "every request answered while no daemon runs: {names:?}");
    for (name, conn) in held.iter_mut() {
        assert_eq!(&tcp_again(conn), name, "a held connection moved while no daemon ran");
    }
    let s = stats("without a daemon");
    assert!(svc_flows(&s) >= 21, "{s}");
    let conns = exec_output(&topo.lb, &["conns", "--json"]);
    assert!(conns.status.success(), "{}", String::from_utf8_lossy(&conns.stderr));
    let conns: serde_json::Value = serde_json::from_slice(&conns.stdout).unwrap();
    for (_, conn) in &held {
        let port = conn.local_addr().unwrap().port();
        assert!(
            conns["connections"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["table"] == "conntrack" && c["client"]["port"] == port && c["state"] == "ESTABLISHED"),
            "held flow from port {port} not listed: {conns:#}"
        );
    }

    // The restart adopts maps and links: hitless for the held connections.
    let mut d = start();
    let log = d.log();
    assert!(log.iter().any(|l| l.contains("adopted services from pinned maps")), "{log:#?}");
    assert_eq!(log.iter().filter(|l| l.contains("adopted (program replaced in place)")).count(), 2, "{log:#?}");
    for (name, conn) in held.iter_mut() {
        assert_eq!(&tcp_again(conn), name, "a held connection moved across the restart");
    }
    // SIGTERM detaches and removes the pins from the host's bpffs.
    let st = d.stop().unwrap();
    assert!(st.success(), "{st}: {:#?}", d.log());
    assert!(!pins.exists(), "pins left in {}", pins.display());
    assert!(!topo.lb.xdp_attached("l0") && !topo.lb.xdp_attached("l1"), "SIGTERM must detach");
    assert_eq!(bpffs_mounts(), mounts);
    drop(held);
}
