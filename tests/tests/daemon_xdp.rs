//! lb-daemon end to end in namespaces: it attaches XDP to the lb's links, programs the
//! services of a keepalived.conf, counts what the client sends, exposes named fields through
//! bpftool, and leaves nothing behind on SIGTERM.

use std::{
    net::UdpSocket,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use lb_daemon::dataplane::bpf::conntrack::Conntrack;
use lb_tests::prelude::*;

const CONFIG: &str = "
global_defs {
    router_id lb-test
}
virtual_server 203.0.113.10 53 {
    lb_algo rr
    protocol UDP
    real_server 198.51.100.11 53 {
    }
}
virtual_server 203.0.113.10 80 {
    protocol TCP
    real_server 198.51.100.11 80 {
        weight 2
    }
}
";

/// A socket on the real server's UDP port 53 that takes datagrams and never answers: no reply
/// and no ICMP "port unreachable" (which, about a NAT flow, would count against the service
/// too), so the service counts exactly the client's datagrams.
fn quiet_udp_sink(topo: &LbTopology) -> UdpSocket {
    topo.backends[0].run(|| UdpSocket::bind("0.0.0.0:53").unwrap()).unwrap()
}

#[test]
fn daemon_counts_service_traffic_shows_named_fields_and_cleans_up() {
    require_root();
    let topo = LbTopology::new(1).unwrap();
    let _sink = quiet_udp_sink(&topo);
    let dir = TempDir::new("count");
    let config = dir.file("keepalived.conf", CONFIG);
    let pins = daemon::pin_dir("count");
    let pidfile = dir.join("lb-daemon.pid");
    let mut d = Daemon::start(&topo.lb, &config, &pins, &["-p", pidfile.to_str().unwrap()]).unwrap();
    let pid: u32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    // nsenter execs the daemon: the pid we spawned is the daemon's.
    assert_eq!(Some(pid), d.pid(), "the pid file names the daemon");
    assert!(topo.lb.xdp_attached("l0") && topo.lb.xdp_attached("l1"), "XDP not on both lb links");
    assert!(d.log().iter().any(|l| l.contains("service programmed service=203.0.113.10:53/udp")), "{:#?}", d.log());
    // Pinned maps and links are root's alone: nobody else may read flows or rewrite services.
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mut checked = 0;
    for e in std::fs::read_dir(&pins).unwrap().chain(std::fs::read_dir(pins.join("links")).unwrap()) {
        let p = e.unwrap().path();
        let m = std::fs::metadata(&p).unwrap();
        if !m.is_dir() {
            assert_eq!((m.uid(), m.permissions().mode() & 0o077), (0, 0), "{} is open to others", p.display());
            checked += 1;
        }
    }
    assert!(checked >= lb_common::consts::PINNED_MAPS.len() + 2, "only {checked} pins found");

    topo.client
        .run(|| {
            let s = UdpSocket::bind("0.0.0.0:0").unwrap();
            for _ in 0..7 {
                s.send_to(b"to the service", (VIP4, 53)).unwrap();
            }
            for _ in 0..3 {
                s.send_to(b"no service here", (VIP4, 9999)).unwrap();
            }
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));

    let snap = read_stats(&pins).unwrap();
    let svc = |name: &str| {
        snap.services.iter().find(|s| s.service == name).unwrap_or_else(|| panic!("{name} missing: {snap:?}"))
    };
    assert_eq!(svc("203.0.113.10:53/udp").packets, 7);
    assert_eq!(svc("203.0.113.10:53/udp").bytes, 7 * (14 + 20 + 8 + 14));
    assert_eq!(svc("203.0.113.10:80/tcp").packets, 0);
    assert!(snap.global.0["reason_no_service"] >= 3, "{snap:?}");
    assert!(snap.global.0["reason_fwd_nat"] >= 7, "{snap:?}");

    // Both real servers (one address, two ports) have their next hop cached once the
    // neighbour is resolved; the status says so.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let cache = loop {
        let c = d.state().unwrap()["next_hop_cache"].clone();
        if c["cached"] == 2 || std::time::Instant::now() > deadline {
            break c;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(cache["cached"], 2, "next-hop cache in the status: {cache}");

    // bpftool reads the pins by field name (BTF).
    let stats = map_dump(&pins.join("lb_stats")).unwrap();
    let value = &stats[0]["formatted"]["values"][0]["value"];
    for field in ["rx_packets", "pass_bytes", "reason_fwd_nat", "reason_bad_l4"] {
        assert!(value.get(field).is_some(), "bpftool shows no {field}: {stats}");
    }
    let services = map_dump(&pins.join("lb_services")).unwrap();
    let entries: Vec<&serde_json::Value> = services.as_array().unwrap().iter().map(|e| &e["formatted"]).collect();
    for field in ["addr", "port", "proto", "family"] {
        assert!(entries[0]["key"].get(field).is_some(), "bpftool shows no key field {field}: {services}");
    }
    assert!(
        entries.iter().any(|e| e["key"]["port"] == 53 && e["key"]["proto"] == 17 && e["key"]["addr"][0] == 203),
        "{services}"
    );

    // Real servers and tracked flows read by name as well.
    let reals = map_dump(&pins.join("lb_reals")).unwrap();
    let real = reals
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["formatted"]["value"])
        .find(|v| v["svc_id"] == 0 && v["flags"] == 1);
    let real = real.unwrap_or_else(|| panic!("no present real server in {reals}"));
    assert_eq!((real["port"].as_u64(), real["weight"].as_u64()), (Some(53), Some(1)), "{real}");
    let ct = map_dump(&pins.join("lb_conntrack4")).unwrap();
    let flows: Vec<&serde_json::Value> = ct.as_array().unwrap().iter().map(|e| &e["formatted"]).collect();
    assert!(!flows.is_empty(), "no tracked flow: {ct}");
    for field in ["src", "dst", "sport", "dport", "proto"] {
        assert!(flows[0]["key"].get(field).is_some(), "conntrack key lacks {field}: {ct}");
    }
    for field in ["real_id", "svc_id", "last_ns", "state"] {
        assert!(flows[0]["value"].get(field).is_some(), "conntrack value lacks {field}: {ct}");
    }
    assert!(flows.iter().any(|f| f["key"]["dport"] == 53 && f["value"]["state"] == 3), "the UDP flow is tracked: {ct}");

    let status = d.stop().unwrap();
    assert!(status.success(), "exit {status}; log:\n{}", d.log().join("\n"));
    assert!(!pidfile.exists(), "the pid file is removed on a clean stop");
    assert!(!pins.exists(), "pins left in {}", pins.display());
    assert!(!topo.lb.xdp_attached("l0") && !topo.lb.xdp_attached("l1"), "XDP left attached");
}

#[test]
fn sighup_with_a_broken_config_keeps_the_running_services() {
    require_root();
    let topo = LbTopology::new(1).unwrap();
    let dir = TempDir::new("hup");
    let config = dir.file("keepalived.conf", CONFIG);
    let pins = daemon::pin_dir("hup");
    // systemd's Type=notify protocol: READY=1 at start, RELOADING=1 then READY=1 per SIGHUP.
    let sock_path = dir.join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    notify.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let d = Daemon::start_env(
        &topo.lb,
        &config,
        &pins,
        &["--interface", "l0"],
        &[("NOTIFY_SOCKET", sock_path.to_str().unwrap())],
    )
    .unwrap();
    let mut buf = [0u8; 256];
    let mut next = || {
        let n = notify.recv(&mut buf).expect("an sd_notify message");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert!(next().contains("READY=1"), "start");
    std::fs::write(&config, "virtual_server 203.0.113.10 {\n").unwrap();
    d.signal(nix::sys::signal::Signal::SIGHUP).unwrap();
    assert!(d.wait_log("reload refused", Duration::from_secs(10)), "{}", d.log().join("\n"));
    assert!(next().contains("RELOADING=1"));
    assert!(next().contains("READY=1"), "ready again after a refused reload");
    let log = d.log().join("\n");
    assert!(log.contains(":1:29: error: unclosed `{`"), "{log}");
    let snap = read_stats(&pins).unwrap();
    assert_eq!(snap.services.len(), 2, "{snap:?}");

    // A valid change applies: one service removed, the kept one keeps its id.
    let before: Vec<_> = snap.services.iter().map(|s| (s.service.clone(), s.id)).collect();
    std::fs::write(
        &config,
        "virtual_server 203.0.113.10 80 {\n protocol TCP\n real_server 198.51.100.11 80 {\n }\n}\n",
    )
    .unwrap();
    d.signal(nix::sys::signal::Signal::SIGHUP).unwrap();
    assert!(d.wait_log("reload applied", Duration::from_secs(10)), "{}", d.log().join("\n"));
    let after = read_stats(&pins).unwrap();
    let kept = before.iter().find(|(s, _)| s == "203.0.113.10:80/tcp").unwrap();
    assert_eq!(after.services.iter().map(|s| (s.service.clone(), s.id)).collect::<Vec<_>>(), vec![kept.clone()]);
}

#[test]
fn pins_of_another_layout_version_are_refused() {
    require_root();
    let topo = LbTopology::new(1).unwrap();
    let config = TempConfig::new("layout", CONFIG);
    let pins = daemon::pin_dir("layout");
    let _sink = quiet_udp_sink(&topo);
    let d = Daemon::start(&topo.lb, &config, &pins, &["--interface", "l0"]).unwrap();
    // One UDP flow from a fixed port, established (its second datagram promotes it).
    let client = topo.client.run(|| UdpSocket::bind("0.0.0.0:40053").unwrap()).unwrap();
    let send = |n: usize| {
        for _ in 0..n {
            client.send_to(b"one flow", (VIP4, 53)).unwrap();
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    send(2);
    d.signal(nix::sys::signal::Signal::SIGKILL).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(pins.join("lb_meta").exists(), "a killed daemon leaves its pins");
    // Pretend another daemon made these maps: `lb_meta`'s layout version set to `v`.
    let meta = |v: &str| {
        let mut value = vec![v];
        value.resize(std::mem::size_of::<lb_common::Meta>(), "0");
        let out = Command::new("bpftool")
            .args(["map", "update", "pinned"])
            .arg(pins.join("lb_meta"))
            .args(["key", "0", "0", "0", "0", "value"])
            .args(&value)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    meta("12");
    let err =
        Daemon::start(&topo.lb, &config, &pins, &["--interface", "l0"]).err().expect("daemon must refuse").to_string();
    assert!(err.contains("layout version 12"), "{err}");
    // Layout 9 kept IPv4 flows in `lb_conntrack`, as it had no `lb_conntrack4`: they are
    // moved, and the flow's next datagram finds its entry (rescheduled, it would count new).
    let flows = Conntrack::open(&pins).unwrap().entries();
    assert_eq!(flows.len(), 1, "{flows:?}");
    std::fs::remove_file(pins.join("lb_conntrack4")).unwrap();
    std::fs::remove_file(pins.join("lb_real_rev4")).unwrap();
    {
        let mut wide: aya::maps::HashMap<_, lb_common::FlowKey, lb_common::FlowValue> =
            aya::maps::HashMap::try_from(lb_daemon::dataplane::bpf::maps::pinned(&pins.join("lb_conntrack")).unwrap())
                .unwrap();
        wide.insert(flows[0].0, flows[0].1, 0).unwrap();
    }
    meta("9");
    let d9 = Daemon::start(&topo.lb, &config, &pins, &["--interface", "l0"]).unwrap();
    assert_eq!(Conntrack::open(&pins).unwrap().entries(), flows, "moved into lb_conntrack4");
    assert_eq!(map_dump(&pins.join("lb_conntrack")).unwrap().as_array().unwrap().len(), 0);
    let layout = |pins: &Path| {
        let dump = Command::new("bpftool").args(["map", "dump", "pinned"]).arg(pins.join("lb_meta")).output().unwrap();
        String::from_utf8_lossy(&dump.stdout)
            .contains(&format!("\"layout_version\": {}", lb_common::consts::LAYOUT_VERSION))
    };
    assert!(layout(&pins), "the pins say layout 10 once their flows moved: {:#?}", d9.log());
    // ... and `lb_real_rev4` holds `lb_real_rev`'s entries (both services are NAT).
    let entries = |map: &str| map_dump(&pins.join(map)).unwrap().as_array().unwrap().len();
    assert_eq!((entries("lb_real_rev"), entries("lb_real_rev4")), (2, 2));
    let before = read_stats(&pins).unwrap();
    send(1);
    let after = read_stats(&pins).unwrap();
    let count = |s: &lb_daemon::dataplane::bpf::StatsSnapshot, c: &str| s.global.0[c] - before.global.0[c];
    assert_eq!((count(&after, "flows_hit"), count(&after, "flows_new")), (1, 0), "{after:?}");
    d9.signal(nix::sys::signal::Signal::SIGKILL).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // Layout 8 had no `lb_services4`, where the program looks IPv4 services up: it is made
    // and filled from `lb_services` (the config's services are already there, so the commit
    // adds no key), and the UDP service forwards.
    std::fs::remove_file(pins.join("lb_services4")).unwrap();
    meta("8");
    let d8 = Daemon::start(&topo.lb, &config, &pins, &["--interface", "l0"]).unwrap();
    let before = read_stats(&pins).unwrap();
    topo.client
        .run(|| {
            let s = UdpSocket::bind("0.0.0.0:0").unwrap();
            for _ in 0..5 {
                s.send_to(b"after the upgrade", (VIP4, 53)).unwrap();
            }
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let after = read_stats(&pins).unwrap();
    let fwd_nat = |s: &lb_daemon::dataplane::bpf::StatsSnapshot| s.global.0["reason_fwd_nat"];
    assert_eq!(fwd_nat(&after) - fwd_nat(&before), 5, "{after:?}");
    assert_eq!(map_dump(&pins.join("lb_services4")).unwrap().as_array().unwrap().len(), 2);
    d8.signal(nix::sys::signal::Signal::SIGKILL).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // Layout 7 (before `lb_real_rev`) is adopted, and becomes this one.
    meta("7");
    let d7 = Daemon::start(&topo.lb, &config, &pins, &["--interface", "l0"]).unwrap();
    d7.signal(nix::sys::signal::Signal::SIGKILL).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(layout(&pins), "layout 7's pins become this layout");
    // Layout 10 counted every packet of a service in `lb_svc_stats` (and per real server):
    // the totals read there go on from the same numbers, and the old map is unpinned.
    let legacy = pins.join("lb_svc_stats");
    let bpftool = |args: &[&str]| {
        let out = Command::new("bpftool").args(args).output().unwrap();
        assert!(out.status.success(), "bpftool {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let legacy_path = legacy.to_str().unwrap();
    bpftool(&[
        "map",
        "create",
        legacy_path,
        "type",
        "percpu_array",
        "key",
        "4",
        "value",
        "32",
        "entries",
        "4096",
        "name",
        "lb_svc_stats",
    ]);
    // Service 0 (the UDP one): 1000 packets, 64000 bytes, 10 new flows, 1 drop on each CPU.
    let mut value = Vec::new();
    for n in [1000u64, 64000, 10, 1] {
        value.extend(n.to_le_bytes().iter().map(|b| b.to_string()));
    }
    let mut update = vec!["map", "update", "pinned", legacy_path, "key", "0", "0", "0", "0", "value"];
    update.extend(value.iter().map(String::as_str));
    bpftool(&update);
    std::fs::remove_file(pins.join("lb_svc_direct")).unwrap();
    std::fs::remove_file(pins.join("lb_svc_carry")).unwrap();
    meta("10");
    let d10 = Daemon::start(&topo.lb, &config, &pins, &["--interface", "l0"]).unwrap();
    let cpus = aya::util::nr_cpus().unwrap() as u64;
    let upgraded = read_stats(&pins).unwrap();
    let udp = upgraded.services.iter().find(|s| s.id == 0).expect("service 0");
    assert_eq!((udp.packets, udp.bytes, udp.new_flows, udp.drops), (1000 * cpus, 64000 * cpus, 10 * cpus, cpus));
    assert!(layout(&pins), "layout 10's pins become this layout: {:#?}", d10.log());
    assert!(!legacy.exists(), "lb_svc_stats unpinned once the pins say this layout");
    send(1);
    let udp = |s: &lb_daemon::dataplane::bpf::StatsSnapshot| s.services.iter().find(|s| s.id == 0).unwrap().packets;
    assert_eq!(udp(&read_stats(&pins).unwrap()), 1000 * cpus + 1, "counted on from the carried totals");
    d10.signal(nix::sys::signal::Signal::SIGKILL).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // Version 5's `lb_meta` had 8-byte values: refused as another layout, not misread.
    std::fs::remove_file(pins.join("lb_meta")).unwrap();
    let out = Command::new("bpftool")
        .args(["map", "create"])
        .arg(pins.join("lb_meta"))
        .args(["type", "array", "key", "4", "value", "8", "entries", "1", "name", "lb_meta"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let err =
        Daemon::start(&topo.lb, &config, &pins, &["--interface", "l0"]).err().expect("daemon must refuse").to_string();
    assert!(err.contains("another layout (lb_meta values of 8 bytes"), "{err}");
    drop(d);
}

#[test]
fn config_errors_and_a_missing_object_are_clear() {
    require_root();
    let bin = daemon::binary().unwrap();
    let bad = TempConfig::new("bad", "virtual_server 203.0.113.10 80 {\n  protocl TCP\n");
    let out = Command::new(&bin).arg("-t").arg("-f").arg(&bad).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    let name = bad.display();
    assert!(
        stderr.contains(&format!(
            "{name}:2:3: error: unknown keyword `protocl` in virtual_server; did you mean `protocol`?"
        )),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("{name}:1:32: error: unclosed `{{`")), "{stderr}");

    let good = TempConfig::new("good", CONFIG);
    let out =
        Command::new(&bin).arg("--bpf-object").arg("/nonexistent/lb-ebpf.o").arg("-f").arg(&good).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot read eBPF object /nonexistent/lb-ebpf.o"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // An instance on an interface this host lacks: keepalived's VRRP process stops at start
    // ("Non-existent interface specified in configuration"), and so does the daemon, having
    // attached nothing; with -C (no VRRP) it would run.
    let ns = Netns::new("nosuchif").unwrap();
    let text = format!(
        "vrrp_instance VI_1 {{\n interface lbnosuch0\n virtual_router_id 51\n priority 100\n \
         virtual_ipaddress {{\n  192.0.2.100/24\n }}\n}}\n{CONFIG}"
    );
    let missing = TempConfig::new("nosuchif", &text);
    let pins = daemon::pin_dir("nosuchif");
    let out = ns.command(&bin).arg("-f").arg(&missing).arg("--pin-dir").arg(&pins).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("interface lbnosuch0 for vrrp_instance VI_1 doesn't exist"), "{stderr}");
    assert!(stderr.contains("Non-existent interface specified in configuration"), "{stderr}");
    assert!(!pins.join("lb_meta").exists(), "nothing pinned");
}

/// SIGUSR1 / SIGUSR2 / SIGRTMIN+2 write the data, stats and JSON dumps into the run
/// directory: fresh 0600 files; a symlink planted at a dump's name is replaced, never
/// followed (keepalived's CVE-2018-19044..19046).
#[test]
fn dump_signals_write_private_files_and_never_follow_a_planted_symlink() {
    use std::os::unix::fs::PermissionsExt;
    require_root();
    let topo = LbTopology::new(1).unwrap();
    let dir = TempDir::new("dumps");
    let config = dir.file("keepalived.conf", CONFIG);
    let pins = daemon::pin_dir("dumps");
    let d = Daemon::start(&topo.lb, &config, &pins, &[]).unwrap();
    let run = daemon::run_dir_for(&pins);
    assert_eq!(std::fs::metadata(&run).unwrap().permissions().mode() & 0o777, 0o700);
    let victim = dir.file("victim", "precious");
    std::os::unix::fs::symlink(&victim, run.join("lb-daemon.data")).unwrap();

    d.signal(nix::sys::signal::Signal::SIGUSR1).unwrap();
    assert!(d.wait_log("Data dump written", Duration::from_secs(3)), "{:#?}", d.log());
    assert!(d.log().iter().any(|l| l.contains("a symlink was planted at the dump file")));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious", "the dump followed the symlink");
    let data = run.join("lb-daemon.data");
    let m = std::fs::symlink_metadata(&data).unwrap();
    assert!(m.file_type().is_file() && m.permissions().mode() & 0o777 == 0o600);
    assert!(std::fs::read_to_string(&data).unwrap().contains("virtual_servers"));

    d.signal(nix::sys::signal::Signal::SIGUSR2).unwrap();
    assert!(d.wait_log("Stats dump written", Duration::from_secs(3)), "{:#?}", d.log());
    assert!(std::fs::read_to_string(run.join("lb-daemon.stats")).unwrap().contains("data plane"));
    let json = d.json_dump().unwrap();
    assert_eq!(json["dataplane"]["services"].as_array().map(|a| a.len()), Some(2), "{json}");
}

/// `--metrics-listen`: an OpenMetrics scrape shows per-service traffic and data-plane
/// verdicts by reason, read from the maps at scrape time, and the flow tables' occupancy,
/// turnover and evictions (from a walk of their keys).
#[test]
fn metrics_endpoint_serves_named_series() {
    use std::io::{Read, Write};
    require_root();
    let topo = LbTopology::new(1).unwrap();
    let _tcp = backends_at(&topo, |i| (backend4(i), 80).into());
    let config = TempConfig::new("metrics", CONFIG);
    let pins = daemon::pin_dir("metrics");
    let d = Daemon::start(&topo.lb, &config, &pins, &["--metrics-listen", "127.0.0.1:9650"]).unwrap();
    assert!(d.wait_log("metrics endpoint listening", Duration::from_secs(3)), "{:#?}", d.log());
    topo.client
        .run(|| {
            let s = UdpSocket::bind("0.0.0.0:0").unwrap();
            for _ in 0..5 {
                s.send_to(b"q", (VIP4, 53)).unwrap();
            }
        })
        .unwrap();
    // Three connections held open: three tracked TCP flows besides the UDP one.
    let held: Vec<_> = (0..3).map(|_| tcp_hold(&topo.client, (VIP4, 80).into())).collect();
    std::thread::sleep(Duration::from_millis(300));
    let scrape = |path: &str| {
        let path = path.to_string();
        topo.lb
            .run(move || {
                let mut s = std::net::TcpStream::connect("127.0.0.1:9650").unwrap();
                s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
                let mut out = String::new();
                s.read_to_string(&mut out).unwrap();
                out
            })
            .unwrap()
    };
    let text = scrape("/metrics");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("application/openmetrics-text"), "{text}");
    let value = |series: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
    };
    assert!(value("lb_service_packets_total{service=\"203.0.113.10:53/udp\"}") >= 5);
    assert!(value("lb_service_new_flows_total{service=\"203.0.113.10:53/udp\"}") >= 1);
    assert!(text.contains("lb_dataplane_verdicts_total{reason="), "{text}");
    assert!(
        text.contains("lb_real_packets_total{service=\"203.0.113.10:53/udp\",real=\"198.51.100.11:53\"}"),
        "{text}"
    );
    assert!(value("lb_dataplane_verdicts_total{reason=\"fwd_nat\"}") >= 5 + 3);
    // The flow tables: entries counted by a walk, at least the flows open now (the UDP flow
    // left the half-open table with its second datagram, the TCP ones with their ACK), and
    // nothing evicted from tables this far from full: every insert is a deletion or an entry.
    let table = |family: &str, t: &str| value(&format!("lb_flow_table_{family}{{table=\"{t}\"}}"));
    assert!(table("entries", "conntrack") >= 4, "{text}");
    assert_eq!(table("capacity", "conntrack"), u64::from(lb_common::consts::DEFAULT_CONNTRACK));
    assert_eq!(table("capacity", "halfopen"), u64::from(lb_common::consts::DEFAULT_HALFOPEN));
    assert!(table("inserts_total", "halfopen") >= 4 && table("deletes_total", "halfopen") >= 4, "{text}");
    for t in ["conntrack", "halfopen"] {
        assert_eq!(table("evictions_total", t), 0, "{text}");
        assert_eq!(table("inserts_total", t), table("deletes_total", t) + table("entries", t), "{t}: {text}");
    }
    assert!(
        text.lines().any(|l| l.starts_with("# HELP lb_flow_table_entries ") && l.contains("at most every 5 s")),
        "{text}"
    );
    assert!(scrape("/other").starts_with("HTTP/1.1 404"));
    drop(held);
    drop(d);
}

/// A small tmpfs mounted over a run directory for one test; unmounted (lazily, so a test that
/// failed with a file still open cannot leave it behind) and removed on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        std::fs::set_permissions(at, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "lbt-tmpfs"])
            .arg(at)
            .status()
            .unwrap();
        assert!(ok.success(), "mounting a tmpfs at {}", at.display());
        Tmpfs(at.to_path_buf())
    }

    fn remount(&self, opts: &str) {
        let ok = Command::new("mount").args(["-o", &format!("remount,{opts}")]).arg(&self.0).status().unwrap();
        assert!(ok.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A full run directory (a 64 KiB tmpfs filled to its last block), then a read-only one,
/// cost the dump and state files and nothing else: each dump fails with one logged error
/// naming the cause, no half-written file stays, the daemon keeps forwarding, and once
/// space is back the next dump is written.
#[test]
fn a_full_or_read_only_run_directory_costs_only_the_dump() {
    use std::io::Write;
    require_root();
    let topo = LbTopology::new(1).unwrap();
    let _sink = quiet_udp_sink(&topo);
    let config = TempConfig::new("full", CONFIG);
    let pins = daemon::pin_dir("full");
    let run = daemon::run_dir_for(&pins);
    let fs = Tmpfs::mount(&run, "64k");
    let mut d = Daemon::start(&topo.lb, &config, &pins, &[]).unwrap();
    d.state().expect("the first state file");
    let filler = run.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let full = loop {
        if let Err(e) = f.write_all(&[0u8; 4096]).and_then(|()| f.sync_data()) {
            break e;
        }
    };
    assert_eq!(full.raw_os_error(), Some(libc::ENOSPC), "{full}");
    let send = |n: usize| {
        topo.client
            .run(move || {
                let s = UdpSocket::bind("0.0.0.0:0").unwrap();
                for _ in 0..n {
                    s.send_to(b"still forwarding?", (VIP4, 53)).unwrap();
                }
            })
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let snap = read_stats(&pins).unwrap();
        snap.services.iter().find(|s| s.service == "203.0.113.10:53/udp").map_or(0, |s| s.packets)
    };
    assert_eq!(send(4), 4);

    d.signal(nix::sys::signal::Signal::SIGUSR1).unwrap();
    assert!(d.wait_log("Data dump failed", Duration::from_secs(3)), "{:#?}", d.log());
    d.signal(nix::sys::signal::Signal::SIGUSR2).unwrap();
    assert!(d.wait_log("Stats dump failed", Duration::from_secs(3)), "{:#?}", d.log());
    let failed: Vec<String> = d.log().into_iter().filter(|l| l.contains("dump failed")).collect();
    assert_eq!(failed.len(), 2, "{failed:#?}");
    assert!(failed.iter().all(|l| l.contains("No space left on device")), "{failed:#?}");
    let names = |dir: &Path| -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    };
    assert!(!names(&run).iter().any(|n| n.starts_with('.')), "a half-written file stayed: {:?}", names(&run));
    assert_eq!(send(3), 7, "forwarding stopped with the run directory full");
    if let Err(e) = d.status() {
        panic!("status must still answer (from the last state file): {e:#}");
    }

    // Space is back: the next dump is written.
    drop(f);
    std::fs::remove_file(&filler).unwrap();
    d.signal(nix::sys::signal::Signal::SIGUSR1).unwrap();
    assert!(d.wait_log("Data dump written", Duration::from_secs(3)), "{:#?}", d.log());

    // Read-only: the same, with the cause named.
    fs.remount("ro");
    d.signal(nix::sys::signal::Signal::SIGUSR2).unwrap();
    assert!(
        eventually(Duration::from_secs(3), || d
            .log()
            .iter()
            .any(|l| l.contains("Stats dump failed") && l.contains("Read-only file system"))),
        "{:#?}",
        d.log()
    );
    assert_eq!(send(2), 9);
    fs.remount("rw");
    assert!(d.stop().unwrap().success(), "{:#?}", d.log());
    drop(fs);
}

/// keepalived's `startup_script` and `shutdown_script` (global_defs): the startup script
/// runs before anything starts (it finds no pinned maps; the interface it makes serves the
/// VRRP instance) and is waited for, and what it leaves running stays; the shutdown script runs once everything has stopped (the maps are
/// unpinned), as the configuration then running names it (a reload changed it). A startup
/// script past `startup_script_timeout` is killed, and the daemon starts all the same.
#[test]
fn startup_and_shutdown_scripts_run_around_the_daemon() {
    require_root();
    let topo = LbTopology::new(1).unwrap();
    let dir = TempDir::new("around");
    let pins = daemon::pin_dir("around");
    let services = pins.join("lb_services");
    let script = |name: &str, body: &str| {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        path.display().to_string()
    };
    let seen = |out: &Path| {
        format!("if [ -e {} ]; then echo pinned; else echo none; fi > {}", services.display(), out.display())
    };
    let (up, child, down, other) = (dir.join("up"), dir.join("child"), dir.join("down"), dir.join("other"));
    // It also makes the interface the VRRP instance names: keepalived's children read the
    // configuration (and look its interfaces up) once it has run.
    let start = script(
        "start.sh",
        &format!(
            "{}\nip link add lbstart0 type veth peer name lbstart1 && ip link set lbstart0 up\nsleep 300 &\n\
             echo $! > {}\nsleep 1\necho waited >> {}",
            seen(&up),
            child.display(),
            up.display()
        ),
    );
    let stop = script("stop.sh", &seen(&down));
    let stop2 = script("stop2.sh", &seen(&other));
    let instance = "vrrp_instance VI_1 {\n    interface lbstart0\n    virtual_router_id 61\n    priority 100\n    \
                    virtual_ipaddress {\n        192.0.2.61/32\n    }\n}\n";
    let conf = |shutdown: &str, extra: &str| {
        format!(
            "global_defs {{\n    startup_script {start}\n    shutdown_script {shutdown}\n{extra}}}\n{instance}{CONFIG}"
        )
    };
    let config = dir.file("keepalived.conf", &conf(&stop, ""));
    let mut d = Daemon::start(&topo.lb, &config, &pins, &[]).unwrap();
    // Waited for: its last line is written before the daemon is ready.
    assert_eq!(std::fs::read_to_string(&up).unwrap(), "none\nwaited\n", "{:#?}", d.log());
    assert!(services.exists());
    let pid: i32 = std::fs::read_to_string(&child).unwrap().trim().parse().unwrap();
    let alive = |pid: i32| nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
    assert!(alive(pid), "the startup script's child was killed");
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    // A reload names another shutdown script; the startup script does not run again.
    std::fs::write(&config, conf(&stop2, "")).unwrap();
    std::fs::remove_file(&up).unwrap();
    d.signal(nix::sys::signal::Signal::SIGHUP).unwrap();
    assert!(d.wait_log("reload applied", Duration::from_secs(10)), "{:#?}", d.log());
    d.stop().unwrap();
    assert!(!up.exists(), "the startup script ran at the reload");
    assert!(!down.exists(), "the shutdown script of the configuration replaced ran");
    assert_eq!(std::fs::read_to_string(&other).unwrap(), "none\n", "{:#?}", d.log());

    // Past its timeout: killed, logged, and the daemon starts.
    let slow = script("slow.sh", "sleep 30");
    let config = dir.file(
        "slow.conf",
        &format!("global_defs {{\n    startup_script {slow}\n    startup_script_timeout 1\n}}\n{CONFIG}"),
    );
    let t0 = std::time::Instant::now();
    let mut d = Daemon::start(&topo.lb, &config, &pins, &[]).unwrap();
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    assert!(d.log().iter().any(|l| l.contains("startup script timed out")), "{:#?}", d.log());
    d.stop().unwrap();
}
