//! Runtime control of a running daemon over its socket: drain and undrain a real server,
//! override a weight, disable and enable a service, each seen in the traffic (new
//! connections move, held ones keep exchanging data), in `status`, and across reloads; and
//! `-t --diff`, which previews a reload against the running daemon; `withdraw` / `announce` of
//! the `anycast_table` routes.

use std::{
    net::{SocketAddr, TcpStream},
    path::Path,
    process::Output,
    time::Duration,
};

use lb_tests::prelude::*;
use nix::sys::signal::Signal;

fn conf(be1_weight: u32, extra: &str) -> String {
    format!(
        "virtual_server 203.0.113.10 80 {{
    lb_algo wrr
    lb_kind NAT
    protocol TCP
    real_server 198.51.100.11 8080 {{
        weight 1
    }}
    real_server 198.51.100.12 8080 {{
        weight {be1_weight}
    }}
}}
{extra}"
    )
}

/// `lb-daemon ARGS --run-dir RUN`, waited for.
fn lb(run: &Path, args: &[&str]) -> Output {
    std::process::Command::new(daemon::binary().unwrap()).args(args).arg("--run-dir").arg(run).output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// How many of `n` new connections each real server took.
fn spread_of(topo: &LbTopology, n: usize) -> std::collections::HashMap<String, usize> {
    let vip: SocketAddr = (VIP4, 80).into();
    spread(&(0..n).map(|_| tcp_ask(&topo.client, vip, None)).collect::<Vec<_>>())
}

/// The overrides `status --json` lists: (service, real, kind, weight).
fn overrides(d: &Daemon) -> Vec<(String, String, String, Option<u64>)> {
    let s = d.status().unwrap();
    s["overrides"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let real = o["real"].as_str().unwrap_or("-").to_string();
            (
                o["service"].as_str().unwrap().to_string(),
                real,
                o["kind"].as_str().unwrap().to_string(),
                o["weight"].as_u64(),
            )
        })
        .collect()
}

fn reload(d: &Daemon, cfg: &TempConfig, text: &str) {
    cfg.rewrite(text);
    let applied = || d.log().iter().filter(|l| l.contains("reload applied")).count();
    let before = applied();
    d.signal(Signal::SIGHUP).unwrap();
    assert!(eventually(Duration::from_secs(10), || applied() > before), "no reload: {:#?}", d.log());
}

#[test]
fn drain_weight_and_disable_act_on_new_connections_only_and_survive_reloads() {
    require_root();
    let topo = LbTopology::new(2).unwrap();
    let _servers = backends(&topo, 8080);
    let (cfg, pins, d) = daemon::on_lb(&topo, "control", &conf(1, ""), &[]);
    let run = daemon::run_dir_for(&pins);
    let vip: SocketAddr = (VIP4, 80).into();
    let be0 = "198.51.100.11:8080";
    let service = "203.0.113.10:80/tcp";
    assert_eq!(spread_of(&topo, 10).len(), 2);

    // A held connection on be0, then be0 drained: new connections go to be1 only, the held
    // one keeps exchanging data with be0.
    let mut held = (0..4).map(|_| tcp_hold(&topo.client, vip)).find(|(name, _)| name == "be0").unwrap().1;
    assert!(ok(&lb(&run, &["drain", be0])).contains(&format!("drained {be0} in {service}")));
    assert_eq!(overrides(&d), [(service.into(), be0.into(), "drained".into(), Some(0))]);
    assert_eq!(spread_of(&topo, 10), [("be1".to_string(), 10)].into());
    for _ in 0..3 {
        assert_eq!(tcp_again(&mut held), "be0", "the drained real server's established connection continues");
    }
    let text = ok(&lb(&run, &["status"]));
    assert!(text.lines().any(|l| l.contains(be0) && l.contains("drained")), "{text}");
    assert!(ok(&lb(&run, &["undrain", be0, "--service", "203.0.113.10:80"])).contains("undrained"));
    assert!(overrides(&d).is_empty());
    assert_eq!(spread_of(&topo, 10).len(), 2);

    // A weight: wrr 1:4 sends four of every five new connections to be1.
    ok(&lb(&run, &["weight", "198.51.100.12:8080", "4"]));
    let s = spread_of(&topo, 20);
    assert!(s.get("be1").copied().unwrap_or(0) >= 14 && s.get("be0").copied().unwrap_or(0) >= 2, "{s:?}");

    // A reload that leaves be1 alone keeps its weight; one that changes be1 clears it.
    let other = "virtual_server 203.0.113.20 80 {\n protocol TCP\n real_server 198.51.100.11 8080 {\n}\n}\n";
    reload(&d, &cfg, &conf(1, other));
    assert_eq!(overrides(&d), [(service.into(), "198.51.100.12:8080".into(), "weight".into(), Some(4))]);
    reload(&d, &cfg, &conf(2, other));
    // The state file follows the reload's log line within a status period.
    assert!(eventually(Duration::from_secs(2), || overrides(&d).is_empty()), "be1's block changed: its override goes");
    assert!(d.log().iter().any(|l| l.contains("override cleared") && l.contains("real server changed")));

    // Disabled: no new connection is taken (not even by a sorry server), the held one goes on.
    ok(&lb(&run, &["disable", "203.0.113.10:80"]));
    let refused = topo.client.run(move || TcpStream::connect_timeout(&vip, Duration::from_secs(1)).is_err()).unwrap();
    assert!(refused, "a disabled service must not take new connections");
    assert_eq!(tcp_again(&mut held), "be0");
    ok(&lb(&run, &["enable", "203.0.113.10:80"]));
    assert_eq!(spread_of(&topo, 6).len(), 2);

    // Requests that name nothing fail and change nothing.
    let bad = lb(&run, &["drain", "198.51.100.99:8080"]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("is not a real_server"));
    let bad = lb(&run, &["disable", "192.0.2.1:80"]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("no virtual_server 192.0.2.1:80"));
    assert!(overrides(&d).is_empty());
    drop(d);
}

#[test]
fn diff_names_what_a_reload_would_change_and_exits_non_zero_only_then() {
    require_root();
    let topo = LbTopology::new(2).unwrap();
    let _servers = backends(&topo, 8080);
    let (cfg, pins, d) = daemon::on_lb(&topo, "diff", &conf(1, ""), &[]);
    let run = daemon::run_dir_for(&pins);
    let new = TempConfig::new("diff-new", &conf(1, ""));
    let diff = |args: &[&str]| {
        let mut all = vec!["-t", "--diff", "-f", new.to_str().unwrap(), "--pin-dir", pins.to_str().unwrap()];
        all.extend_from_slice(args);
        lb(&run, &all)
    };

    let same = diff(&[]);
    assert_eq!(same.status.code(), Some(0), "{}", String::from_utf8_lossy(&same.stderr));
    assert_eq!(String::from_utf8_lossy(&same.stdout).trim(), "no change");

    new.rewrite(&conf(5, ""));
    let changed = diff(&[]);
    assert_eq!(changed.status.code(), Some(1), "{}", String::from_utf8_lossy(&changed.stderr));
    let text = String::from_utf8_lossy(&changed.stdout);
    assert_eq!(text.trim(), "weight service 203.0.113.10:80/tcp real 198.51.100.12:8080: 1 -> 5");
    let json: serde_json::Value = serde_json::from_slice(&diff(&["--json"]).stdout).unwrap();
    assert_eq!(json["changes"][0]["what"], "weight", "{json}");

    // The preview changed nothing: the running daemon still has weight 1.
    assert_eq!(d.status().unwrap()["overrides"], serde_json::json!([]));
    let stats = stats_json(&pins).unwrap();
    let weights: Vec<u64> =
        stats["services"][0]["reals"].as_array().unwrap().iter().map(|r| r["weight"].as_u64().unwrap()).collect();
    assert_eq!(weights, [1, 1], "{stats}");

    // Removing be1: its tracked flows would be rescheduled, and the preview counts them.
    let vip: SocketAddr = (VIP4, 80).into();
    let held: Vec<(String, TcpStream)> = (0..4).map(|_| tcp_hold(&topo.client, vip)).collect();
    let on_be1 = held.iter().filter(|(name, _)| name == "be1").count();
    assert!(on_be1 > 0, "{:?}", held.iter().map(|h| &h.0).collect::<Vec<_>>());
    new.rewrite(&conf(1, "").replace("    real_server 198.51.100.12 8080 {\n        weight 1\n    }\n", ""));
    let removed = diff(&[]);
    assert_eq!(removed.status.code(), Some(1));
    let text = String::from_utf8_lossy(&removed.stdout);
    assert!(text.contains("real server removed service 203.0.113.10:80/tcp real 198.51.100.12:8080"), "{text}");
    assert!(text.contains(&format!("{on_be1} tracked flow(s) of leaving real servers would be rescheduled")), "{text}");
    drop(held);

    // A file only the command line can see (its own mount namespace, as systemd's PrivateTmp
    // gives the daemon another /tmp): the preview still works, from the parsed file.
    let private = TempDir::new("diff-private");
    let script = format!(
        "mount -t tmpfs none {dir} && printf '%s' \"$CONF\" > {dir}/new.conf && \
         {bin} -t --diff -f {dir}/new.conf --run-dir {run}",
        dir = private.path().display(),
        bin = daemon::binary().unwrap().display(),
        run = run.display()
    );
    let hidden = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env("CONF", conf(7, ""))
        .output()
        .unwrap();
    assert!(std::fs::read_dir(private.path()).unwrap().next().is_none(), "the file is not visible outside");
    assert_eq!(hidden.status.code(), Some(1), "{}", String::from_utf8_lossy(&hidden.stderr));
    assert!(String::from_utf8_lossy(&hidden.stdout).contains("real 198.51.100.12:8080: 1 -> 7"), "{hidden:?}");

    // A broken file: keepalived's -t verdict (5), no comparison; no daemon: 2.
    new.rewrite("virtual_server 203.0.113.10 80 {\n protocol TCP\n lb_algo nonsense\n}\n");
    assert_eq!(diff(&[]).status.code(), Some(5));
    new.rewrite(&conf(1, ""));
    let nowhere = std::process::Command::new(daemon::binary().unwrap())
        .args(["-t", "--diff", "-f", new.to_str().unwrap(), "--run-dir", "/nonexistent-lb-run"])
        .output()
        .unwrap();
    assert_eq!(nowhere.status.code(), Some(2), "{}", String::from_utf8_lossy(&nowhere.stderr));
    drop((cfg, d));
}

/// `withdraw` removes every VIP's announcement route (`anycast_table`; routes of ours a killed
/// run left are cleared at start, others' left alone) until `announce`;
/// `status` (text and JSON) shows it; without `anycast_table` both are refused. The routes
/// are blackhole host routes, `proto keepalived`, in that table only.
#[test]
fn withdraw_and_announce_move_the_vip_routes_of_anycast_table() {
    require_root();
    let topo = LbTopology::new(2).unwrap();
    let _servers = backends(&topo, 8080);
    let v6 = format!(
        "virtual_server {VIP6} 80 {{\n    protocol TCP\n    lb_algo mh\n    lb_kind NAT\n    real_server {} 8080 {{\n    }}\n}}\n",
        backend6(0)
    );
    let text = format!("global_defs {{\n    anycast_table 4242\n}}\n{}", conf(1, &v6));
    // What a killed run left (ours: blackhole, proto keepalived) goes at start; others' stay.
    topo.lb
        .sh("ip route add blackhole 203.0.113.99/32 table 4242 proto keepalived && \
             ip -6 route add blackhole 2001:db8:f::99/128 table 4242 proto keepalived && \
             ip route add blackhole 203.0.113.98/32 table 4242 proto static")
        .unwrap();
    let (_cfg, pins, mut d) = daemon::on_lb(&topo, "withdraw", &text, &[]);
    let run = daemon::run_dir_for(&pins);
    let routes = || {
        let four = topo.lb.ip(&["route", "show", "table", "4242"]).unwrap();
        four + &topo.lb.ip(&["-6", "route", "show", "table", "4242"]).unwrap()
    };
    let has = |r: &str, vip: &str| {
        r.lines().any(|l| l.starts_with(&format!("blackhole {vip} ")) && l.contains(" proto keepalived"))
    };
    let vip6 = VIP6.to_string();
    let held = |r: &str| has(r, "203.0.113.10") && has(r, &vip6);
    let none = |r: &str| !r.contains("203.0.113.10") && !r.contains(&VIP6.to_string());
    assert!(eventually(Duration::from_secs(5), || held(&routes())), "{}", routes());
    let r = routes();
    assert!(!r.contains("203.0.113.99") && !r.contains("2001:db8:f::99"), "stale routes of ours stayed: {r}");
    assert!(r.contains("blackhole 203.0.113.98 proto static"), "another's route was removed: {r}");
    assert!(!topo.lb.ip(&["route", "show"]).unwrap().contains("203.0.113.10"), "the main table is left alone");
    // The state file comes with the first status period after start.
    assert!(eventually(Duration::from_secs(2), || lb(&run, &["status"]).status.success()));
    let status = ok(&lb(&run, &["status"]));
    assert!(status.contains("anycast (routes in table 4242):") && status.contains("203.0.113.10"), "{status}");

    assert!(ok(&lb(&run, &["withdraw"])).contains("withdrawn"));
    assert!(none(&routes()), "{}", routes());
    let s = d.status().unwrap();
    assert_eq!(s["anycast"][0]["announced"], false, "{s}");
    assert!(s["anycast"][0]["reason"].as_str().unwrap().contains("withdraw"), "{s}");
    // Forwarding goes on for what the routers still send.
    assert_eq!(spread_of(&topo, 4).values().sum::<usize>(), 4);

    assert!(ok(&lb(&run, &["announce"])).contains("announced"));
    assert!(held(&routes()), "{}", routes());
    assert_eq!(d.status().unwrap()["anycast"][0]["announced"], true);
    assert!(d.stop().unwrap().success());
    assert!(none(&routes()), "the routes stay after SIGTERM: {}", routes());

    // Without anycast_table: refused, and no table is touched.
    let (_cfg, pins, _d) = daemon::on_lb(&topo, "withdraw-none", &conf(1, ""), &[]);
    let out = lb(&daemon::run_dir_for(&pins), &["withdraw"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("anycast_table"), "{out:?}");
}
