//! The files and log lines other tools read, against keepalived 2.2.7 itself: lb-daemon and
//! keepalived run the same VRRP instance on one segment, both are sent the dump signals, and
//! what a parser of keepalived's files (as the Prometheus keepalived exporters parse them)
//! sees must be the same: the same keys and layout, states that agree with who really holds
//! the address. The state-change lines keepalived logs must be ours too.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    time::Duration,
};

use lb_tests::prelude::*;

/// The instance both run; only the priority differs. IPv6: VRRPv3 over IPv6.
fn instance(prio: u8, v6: bool) -> String {
    let (version, auth, vip) = if v6 {
        ("    version 3\n", "", format!("{VRRP_VIP6}/64"))
    } else {
        (
            "",
            "    authentication {\n        auth_type PASS\n        auth_pass s3cret\n    }\n    debug 2\n",
            format!("{VRRP_VIP4}/24"),
        )
    };
    format!(
        "global_defs {{
    router_id dumps
}}
vrrp_instance VI_1 {{
    state BACKUP
    interface l0
{version}    virtual_router_id 51
    priority {prio}
    advert_int 1
{auth}    virtual_ipaddress {{
        {vip}
    }}
}}
"
    )
}

/// One `keepalived.data` instance as the exporters read it: `key = value` and `key:` lines
/// under ` VRRP Instance = NAME`, list items (5-space indent) under the last key.
#[derive(Debug, Default)]
struct DataInstance {
    keys: BTreeSet<String>,
    values: BTreeMap<String, String>,
    vips: Vec<String>,
}

fn parse_data(text: &str) -> BTreeMap<String, DataInstance> {
    let mut out: BTreeMap<String, DataInstance> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut key = String::new();
    for l in text.lines() {
        if let Some(name) = l.strip_prefix(" VRRP Instance = ") {
            current = Some(name.trim().to_string());
            out.entry(name.trim().to_string()).or_default();
            continue;
        }
        let Some(name) = current.clone().filter(|_| l.starts_with("   ")) else {
            current = None;
            continue;
        };
        let inst = out.get_mut(&name).unwrap();
        if l.starts_with("     ") {
            if key.starts_with("Virtual IP (") {
                inst.vips.push(l.trim().to_string());
            }
            continue;
        }
        let t = l.trim();
        let (k, v) = match (t.split_once(" = "), t.split_once(':')) {
            (Some((k, v)), _) => (k.trim(), v.trim()),
            (None, Some((k, v))) => (k.trim(), v.trim()),
            // "Multicast address 224.0.0.18", "Using Native IPv6": the words before a value.
            (None, None) => (t.rsplit_once(' ').map_or(t, |(k, _)| k), ""),
        };
        key = k.to_string();
        inst.keys.insert(key.clone());
        inst.values.insert(key.clone(), v.to_string());
    }
    out
}

/// `keepalived.stats`: instance → (section, key) → value, as `ParseStats` reads it.
fn parse_stats(text: &str) -> BTreeMap<String, BTreeMap<(String, String), u64>> {
    let mut out: BTreeMap<String, BTreeMap<(String, String), u64>> = BTreeMap::new();
    let (mut inst, mut section) = (String::new(), String::new());
    for l in text.lines() {
        if let Some(n) = l.strip_prefix("VRRP Instance:") {
            inst = n.trim().to_string();
            out.entry(inst.clone()).or_default();
        } else if l.starts_with("    ") {
            let (k, v) = l.trim().split_once(':').expect("key: value");
            let v: u64 = v.trim().parse().unwrap_or_else(|_| panic!("not a number: {l:?}"));
            out.get_mut(&inst).unwrap().insert((section.clone(), k.to_string()), v);
        } else if l.starts_with("  ") && l.ends_with(':') {
            section = l.trim().trim_end_matches(':').to_string();
        } else if l.starts_with("  ") {
            section.clear();
            let (k, v) = l.trim().split_once(':').expect("key: value");
            let v: u64 = v.trim().parse().unwrap_or_else(|_| panic!("not a number: {l:?}"));
            out.get_mut(&inst).unwrap().insert((String::new(), k.to_string()), v);
        }
    }
    out
}

fn keys(v: &serde_json::Value) -> BTreeSet<String> {
    v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
}

/// Sends `sig` to `pid` and waits (up to 5 s) until `file` is written again: until its file
/// time changes (file times come from the kernel's coarse clock, so they are not compared with
/// ours; the wait before the signal keeps the new write a tick apart from the last one).
fn rewritten_after(pid: u32, sig: i32, file: &Path) -> bool {
    let mtime = || std::fs::metadata(file).and_then(|m| m.modified()).ok();
    let before = mtime();
    std::thread::sleep(Duration::from_millis(20));
    // SAFETY: kill(2) to a process this test started.
    assert_eq!(unsafe { libc::kill(pid as i32, sig) }, 0);
    eventually(Duration::from_secs(5), || mtime().is_some_and(|m| Some(m) != before))
}

/// The three files `dir` gets from the dump signals sent to `pid`, each written anew.
fn dumps(pid: u32, dir: &Path) -> (String, String, serde_json::Value) {
    for (sig, name) in [
        (libc::SIGUSR1, "keepalived.data"),
        (libc::SIGUSR2, "keepalived.stats"),
        (libc::SIGRTMIN() + 2, "keepalived.json"),
    ] {
        assert!(
            rewritten_after(pid, sig, &dir.join(name)),
            "{name} not written in {}: {:?}",
            dir.display(),
            std::fs::read_dir(dir).map(|d| d.map(|e| e.unwrap().file_name()).collect::<Vec<_>>())
        );
    }
    for n in ["keepalived.data", "keepalived.stats", "keepalived.json"] {
        let m = std::fs::symlink_metadata(dir.join(n)).unwrap();
        assert!(m.is_file(), "{n}");
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777, 0o600, "{n}");
    }
    let read = |n: &str| std::fs::read_to_string(dir.join(n)).unwrap();
    let json = serde_json::from_str(&read("keepalived.json")).expect("keepalived.json parses");
    (read("keepalived.data"), read("keepalived.stats"), json)
}

fn private_dir(base: &TempDir, name: &str) -> PathBuf {
    let p = base.path().join(name);
    std::fs::create_dir_all(&p).unwrap();
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    p
}

/// The state as the data file and the JSON say it, checked against each other.
fn state_of(data: &DataInstance, json: &serde_json::Value) -> &'static str {
    let names = ["INIT", "BACKUP", "MASTER", "FAULT"];
    let n = json["data"]["state"].as_u64().expect("numeric state") as usize;
    let s = names.get(n).copied().unwrap_or("?");
    assert_eq!(data.values.get("State").map(String::as_str), Some(s), "data and JSON disagree");
    assert_eq!(data.values.get("Wantstate").map(String::as_str), Some(s));
    s
}

/// Lines only keepalived's BACKUP instances carry (vrrp_data.c, `dump_vrrp`).
const BACKUP_ONLY: [&str; 3] = ["Master router", "Master priority", "Master advert int"];

/// What both parsers see must agree: keys, layout, the VIP lines; `mine` may leave out
/// lines of keepalived's internals, never add a key keepalived does not write.
fn compare(ka: &(String, String, serde_json::Value), ours: &(String, String, serde_json::Value)) {
    let (kd, od) = (parse_data(&ka.0), parse_data(&ours.0));
    let (k, o) = (&kd["VI_1"], &od["VI_1"]);
    let extra: Vec<&String> =
        o.keys.iter().filter(|key| !k.keys.contains(*key) && !BACKUP_ONLY.contains(&key.as_str())).collect();
    assert!(extra.is_empty(), "keys keepalived does not write: {extra:?}\nours:\n{}\nkeepalived:\n{}", ours.0, ka.0);
    // What the exporters read.
    for key in ["State", "Wantstate", "Interface", "Gratuitous ARP delay", "Virtual Router ID", "Virtual IP (1)"] {
        assert!(o.keys.contains(key) && k.keys.contains(key), "{key}:\nours:\n{}\nkeepalived:\n{}", ours.0, ka.0);
    }
    for key in [
        "Interface",
        "Virtual Router ID",
        "Gratuitous ARP delay",
        "VRRP Version",
        "Advert interval",
        "Gratuitous ARP lower priority delay",
        "Gratuitous ARP lower priority repeat",
        "Down timer adverts",
        "Send advert after receive lower priority advert",
        "Send advert after receive higher priority advert",
        "Debug level",
        "Notify deleted",
        "Using smtp notification",
    ] {
        assert_eq!(o.values.get(key), k.values.get(key), "{key}");
    }
    let unset = |v: &Vec<String>| v.iter().map(|a| a.trim_end_matches(" set").to_string()).collect::<Vec<_>>();
    assert_eq!(unset(&o.vips), unset(&k.vips), "VIP lines");
    // Stats: the same sections and keys, in the same order.
    let (ks, os) = (parse_stats(&ka.1), parse_stats(&ours.1));
    let order = |t: &str| t.lines().map(|l| l.split(':').next().unwrap().to_string()).collect::<Vec<_>>();
    assert_eq!(order(&ours.1), order(&ka.1), "stats layout\nours:\n{}\nkeepalived:\n{}", ours.1, ka.1);
    assert_eq!(os["VI_1"].keys().collect::<Vec<_>>(), ks["VI_1"].keys().collect::<Vec<_>>());
    // JSON: the same keys in data and stats.
    let (kj, oj) = (&ka.2.as_array().expect("an array")[0], &ours.2.as_array().expect("an array")[0]);
    assert_eq!(keys(oj), keys(kj));
    assert_eq!(keys(&oj["data"]), keys(&kj["data"]), "\nours: {}\nkeepalived: {}", oj["data"], kj["data"]);
    assert_eq!(keys(&oj["stats"]), keys(&kj["stats"]));
    for f in [
        "iname",
        "vrid",
        "ifp_ifname",
        "version",
        "adver_int",
        "garp_delay",
        "auth_type",
        "vips",
        "garp_lower_prio_delay",
        "garp_lower_prio_rep",
        "lower_prio_no_advert",
        "higher_prio_send_advert",
        "strict_mode",
        "notify_deleted",
    ] {
        let unset_json = |v: &serde_json::Value| v.to_string().replace(" set\"", "\"");
        assert_eq!(unset_json(&oj["data"][f]), unset_json(&kj["data"][f]), "{f}");
    }
}

#[test]
fn dump_files_and_state_lines_read_as_keepalived_s() {
    against_keepalived(false);
}

#[test]
fn ipv6_dump_files_read_as_keepalived_s() {
    against_keepalived(true);
}

/// `instance NAME` with `data_use_instance`: keepalived 2.2.7 names its data dump
/// `keepalived.NAME.data` (`open_dump_file`) and keeps `keepalived.stats` and
/// `keepalived.json` as they are; so does lb-daemon, in the same directory, and writes no
/// `keepalived.data`.
#[test]
fn data_use_instance_names_the_dump_files_as_keepalived() {
    require_root();
    let seg = Segment::new(2).unwrap();
    let dir = TempDir::new("dumps-instance");
    let (ka_tmp, our_tmp) = (private_dir(&dir, "ka-tmp"), private_dir(&dir, "our-tmp"));
    let conf = |prio: u8| {
        instance(prio, false).replace("    router_id dumps\n", "    router_id dumps\n    data_use_instance\n")
            + "instance web\n"
    };
    let kconf = dir.file("keepalived.conf", &conf(200));
    let k = Keepalived::start_env(&seg.nodes[1], &kconf, dir.path(), "ka", &[("TMPDIR", &ka_tmp)]).unwrap();
    assert!(k.wait_log("(VI_1) Entering MASTER STATE", Duration::from_secs(8)), "{}", k.log());
    let ours_conf = dir.file("node0.conf", &conf(100));
    let pins = daemon::pin_dir("dumps-instance");
    let ours = Daemon::start_env(
        &seg.nodes[0],
        &ours_conf,
        &pins,
        &["--interface", "l0"],
        &[("TMPDIR", our_tmp.to_str().unwrap())],
    )
    .unwrap();
    assert!(ours.wait_log("(VI_1) Entering BACKUP STATE", Duration::from_secs(5)), "{:#?}", ours.log());
    for (who, pid, tmp) in [("keepalived", k.pid().unwrap(), &ka_tmp), ("lb-daemon", ours.pid().unwrap(), &our_tmp)] {
        for (sig, name) in [
            (libc::SIGUSR1, "keepalived.web.data"),
            (libc::SIGUSR2, "keepalived.stats"),
            (libc::SIGRTMIN() + 2, "keepalived.json"),
        ] {
            let listing = || std::fs::read_dir(tmp).map(|d| d.map(|e| e.unwrap().file_name()).collect::<Vec<_>>());
            assert!(rewritten_after(pid, sig, &tmp.join(name)), "{who}: no {name}: {:?}", listing());
        }
        assert!(!tmp.join("keepalived.data").exists(), "{who}");
    }
}

fn against_keepalived(v6: bool) {
    require_root();
    let seg = Segment::new(2).unwrap();
    let dir = TempDir::new(if v6 { "dumps6" } else { "dumps" });
    let vip: std::net::IpAddr = if v6 { VRRP_VIP6.into() } else { VRRP_VIP4.into() };
    let (ka_tmp, our_tmp) = (private_dir(&dir, "ka-tmp"), private_dir(&dir, "our-tmp"));
    let kconf = dir.file("keepalived.conf", &instance(200, v6));
    let mut k = Keepalived::start_env(&seg.nodes[1], &kconf, dir.path(), "ka", &[("TMPDIR", &ka_tmp)]).unwrap();
    assert!(k.wait_log("(VI_1) Entering MASTER STATE", Duration::from_secs(8)), "{}", k.log());
    let conf = dir.file("node0.conf", &instance(100, v6));
    let pins = daemon::pin_dir(if v6 { "dumps6" } else { "dumps4" });
    let ours = Daemon::start_env(
        &seg.nodes[0],
        &conf,
        &pins,
        &["--interface", "l0"],
        &[("TMPDIR", our_tmp.to_str().unwrap())],
    )
    .unwrap();
    assert!(ours.wait_log("(VI_1) Entering BACKUP STATE", Duration::from_secs(5)), "{:#?}", ours.log());
    std::thread::sleep(Duration::from_secs(2));
    assert!(seg.holds(1, vip) && !seg.holds(0, vip));

    // A link planted at the name (keepalived's CVE-2018-19044): replaced, never followed.
    let victim = dir.file("victim", "precious");
    std::os::unix::fs::symlink(&victim, our_tmp.join("keepalived.data")).unwrap();

    // keepalived is master, we are backup: both files say so.
    let ka = dumps(k.pid().unwrap(), &ka_tmp);
    let mine = dumps(ours.pid().unwrap(), &our_tmp);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious", "the dump followed the link");
    compare(&ka, &mine);
    let (kd, od) = (parse_data(&ka.0), parse_data(&mine.0));
    // The instance's `debug 2` shows in both (compare: the same value).
    let debug = if v6 { None } else { Some("2") };
    assert_eq!(kd["VI_1"].values.get("Debug level").map(String::as_str), debug, "{}", ka.0);
    assert_eq!(state_of(&kd["VI_1"], &ka.2[0]), "MASTER");
    assert_eq!(state_of(&od["VI_1"], &mine.2[0]), "BACKUP");
    assert!(kd["VI_1"].vips[0].ends_with(" set") && !od["VI_1"].vips[0].ends_with(" set"));
    // The master's address: IPv6 adverts come from its link-local address.
    let master = od["VI_1"].values.get("Master router").cloned().unwrap_or_default();
    if v6 {
        assert!(master.starts_with("fe80::"), "{master}");
    } else {
        assert_eq!(master, node4(1).to_string());
    }
    assert_eq!(od["VI_1"].values.get("Master priority").map(String::as_str), Some("200"));
    assert_eq!(mine.2[0]["data"]["master_priority"], 200);
    let (ks, os) = (parse_stats(&ka.1), parse_stats(&mine.1));
    let adv = |s: &str| ("Advertisements".to_string(), s.to_string());
    assert!(ks["VI_1"][&adv("Sent")] > 0 && os["VI_1"][&adv("Received")] > 0, "{}\n{}", ka.1, mine.1);
    assert_eq!(os["VI_1"][&(String::new(), "Became master".into())], 0);
    // keepalived's SIGSTATS_CLEAR (SIGRTMAX-1): the stats as they were, then from zero.
    std::thread::sleep(Duration::from_secs(2));
    let cleared = |pid: u32, dir: &Path| {
        let stats = |sig: i32| {
            let p = dir.join("keepalived.stats");
            assert!(rewritten_after(pid, sig, &p), "no stats after signal {sig}");
            parse_stats(&std::fs::read_to_string(&p).unwrap())
        };
        (stats(libc::SIGRTMAX() - 1), stats(libc::SIGUSR2))
    };
    let (k_at, k_after) = cleared(k.pid().unwrap(), &ka_tmp);
    let (o_at, o_after) = cleared(ours.pid().unwrap(), &our_tmp);
    let (k_at, k_after) = (k_at["VI_1"][&adv("Sent")], k_after["VI_1"][&adv("Sent")]);
    let (o_at, o_after) = (o_at["VI_1"][&adv("Received")], o_after["VI_1"][&adv("Received")]);
    assert!(k_at >= 3 && k_after < k_at, "keepalived sent {k_at}, then {k_after}");
    assert!(o_at >= 3 && o_after < o_at, "we received {o_at}, then {o_after}");
    // Our own fuller dumps are still in the run directory.
    assert!(ours.json_dump().unwrap()["status"]["vrrp"][0]["state"] == "BACKUP");

    // keepalived stops (priority 0): we take over, and say it in keepalived's words.
    k.stop().unwrap();
    assert!(ours.wait_log("(VI_1) Entering MASTER STATE", Duration::from_secs(4)), "{:#?}", ours.log());
    assert!(eventually(Duration::from_secs(3), || seg.holds(0, vip)));
    let mine = dumps(ours.pid().unwrap(), &our_tmp);
    compare(&ka, &mine);
    let od = parse_data(&mine.0);
    assert_eq!(state_of(&od["VI_1"], &mine.2[0]), "MASTER");
    assert!(od["VI_1"].vips[0].ends_with(" set"), "{:?}", od["VI_1"].vips);
    assert_eq!(mine.2[0]["data"]["vipset"], true);
    let os = parse_stats(&mine.1);
    assert_eq!(os["VI_1"][&(String::new(), "Became master".into())], 1);
    assert!(os["VI_1"][&("Priority Zero".into(), "Received".into())] >= 1, "{}", mine.1);

    // Every state line keepalived logged for the instance, we logged too.
    let klog = k.log();
    let ka_lines: Vec<&str> = klog.lines().filter_map(|l| l.find("(VI_1) Entering").map(|i| &l[i..])).collect();
    assert!(ka_lines.contains(&"(VI_1) Entering BACKUP STATE (init)"), "{klog}");
    for line in ka_lines {
        assert!(ours.log().iter().any(|l| l.contains(line)), "missing {line:?}: {:#?}", ours.log());
    }
}

/// What syslog receives: the daemon's lines reach a private /dev/log (a datagram socket this
/// test reads), at keepalived's severities: the state lines keepalived logs with LOG_INFO
/// arrive as LOG_INFO (facility daemon: priority 30), not LOG_NOTICE as tracing's INFO did.
#[test]
fn syslog_gets_keepalived_s_lines_at_keepalived_s_severity() {
    require_root();
    let seg = Segment::new(1).unwrap();
    let dir = TempDir::new("dumps-syslog");
    let sock_path = dir.path().join("log.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let conf = dir.file("node0.conf", &instance(150, false));
    let pins = daemon::pin_dir("dumps-sl");
    let mut d = Daemon::start_with_syslog(&seg.nodes[0], &conf, &pins, &["--interface", "l0"], &sock_path).unwrap();
    assert!(d.wait_log("(VI_1) Entering MASTER STATE", Duration::from_secs(6)), "{:#?}", d.log());
    d.stop().unwrap();
    let mut lines = Vec::new();
    let mut buf = vec![0u8; 65536];
    // Bounded: what was sent is queued already; stop at the first quiet read.
    for _ in 0..10_000 {
        match sock.recv(&mut buf) {
            Ok(n) => lines.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(_) => break,
        }
    }
    let find = |text: &str| lines.iter().find(|l| l.contains(text)).cloned();
    let daemon_info = format!("<{}>", libc::LOG_DAEMON | libc::LOG_INFO);
    for text in ["(VI_1) Entering BACKUP STATE (init)", "(VI_1) Entering MASTER STATE", "Stopping", "Stopped"] {
        let l = find(text).unwrap_or_else(|| panic!("{text:?} not in syslog: {lines:#?}"));
        assert!(l.starts_with(&daemon_info), "{text:?} at another priority: {l}");
        // The message itself follows "lb-daemon[PID]: ", without a level or module path.
        assert!(l.contains(&format!("]: {text}")), "{l}");
    }
}
