//! Health checkers end to end: lb-daemon in the lb namespace checks real servers in backend
//! namespaces (Python's http.server over HTTP and HTTPS, the TCP echo server, a script),
//! and the BPF maps follow: read back through `lb-daemon stats --json` from the pins.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use lb_tests::{
    prelude::*,
    servers::{HttpServer, SmtpSink, http_ask, udp_ask_from},
};

fn reals(list: &[usize], port: u16) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|i| format!("{}:{port}", backend4(*i))).collect();
    v.sort();
    v
}

/// Services on `VIP:port` each checking backend 0 on `real_port`, whose verdicts the checks
/// settle (`(port, stays)`): those that do not keep it lose it within 6 s, with `why` in the
/// log; those that do still schedule it after a few more rounds.
fn services_settle(d: &Daemon, pins: &Path, real_port: u16, verdicts: &[(u16, bool)], why: &str) {
    let svc = |port: u16| format!("{VIP4}:{port}/tcp");
    let down = || verdicts.iter().filter(|v| !v.1).all(|v| scheduled(pins, &svc(v.0)).is_empty());
    assert!(eventually(Duration::from_secs(6), down), "{:#?}", d.log());
    assert!(d.log().iter().any(|l| l.contains(why)), "no `{why}` in {:#?}", d.log());
    std::thread::sleep(Duration::from_secs(3));
    for (port, _) in verdicts.iter().filter(|v| v.1) {
        assert_eq!(scheduled(pins, &svc(*port)), reals(&[0], real_port), "{}: {:#?}", svc(*port), d.log());
    }
}

/// `virtual_server VIP 80` (rr, NAT, `delay_loop 1`) over the first `n` backends on port 80,
/// each real server checked by `check` (a checker block).
fn service_80(n: usize, check: &str) -> String {
    let reals: String = (0..n).map(|i| format!("    real_server {} 80 {{\n{check}    }}\n", backend4(i))).collect();
    format!(
        "virtual_server {VIP4} 80 {{\n    delay_loop 1\n    lb_algo rr\n    lb_kind NAT\n    protocol TCP\n{reals}}}\n"
    )
}

/// HTTP_GET with a digest, under continuous client traffic through the VIP: one backend
/// stops, the checker takes it out, new connections go only to the other two with no client
/// failure after that; it comes back, and so does its share.
#[test]
fn http_get_takes_a_stopped_backend_out_and_back_under_traffic() {
    require_root();
    let topo = LbTopology::new(3).unwrap();
    let md5_ok = "444bcb3a3fcf8389296c49467f27e1d6"; // md5("ok"), what /health answers
    let config = TempConfig::new(
        "chk-http",
        &service_80(
            3,
            &format!(
                "        HTTP_GET {{
            url {{
                path /health
                digest {md5_ok}
            }}
            connect_timeout 1
            retry 1
            delay_before_retry 1
        }}
"
            ),
        ),
    );
    let mut servers: Vec<Option<HttpServer>> = (0..3)
        .map(|i| {
            let bind: SocketAddr = format!("{}:80", backend4(i)).parse().unwrap();
            Some(HttpServer::start(&topo.backends[i], &format!("be{i}"), bind, None, None).unwrap())
        })
        .collect();
    let pins = daemon::pin_dir("chk-http");
    let d = Daemon::start(&topo.lb, &config, &pins, &[]).unwrap();
    let service = format!("{VIP4}:80/tcp");
    assert_eq!(scheduled(&pins, &service), reals(&[0, 1, 2], 80));

    // Continuous traffic: a new connection every 20 ms, each answer recorded with its time.
    let vip: SocketAddr = format!("{VIP4}:80").parse().unwrap();
    let answers: Arc<Mutex<Vec<Answer>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let client = std::thread::scope(|s| {
        let (a, st, topo) = (answers.clone(), stop.clone(), &topo);
        let h = s.spawn(move || {
            // Bounded: at most 3000 requests (a minute at this pace).
            for _ in 0..3000 {
                if st.load(Ordering::Relaxed) {
                    break;
                }
                let r = http_ask(&topo.client, vip, "/");
                a.lock().unwrap().push((Instant::now(), r));
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        std::thread::sleep(Duration::from_secs(1));

        servers[1] = None; // stop be1
        let stopped = Instant::now();
        // Detection bound: delay_loop + retry × (delay_before_retry + connect_timeout), + slack.
        assert!(
            d.wait_log("real server DOWN: HTTP_GET: connect failed", Duration::from_secs(8)),
            "no DOWN log: {:#?}",
            d.log()
        );
        let detected = Instant::now();
        // keepalived's line for it (ipwrapper.c, perform_svr_state), which monitoring greps.
        let removing = format!("Removing service [{}]:tcp:80 from VS [{VIP4}]:tcp:80", backend4(1));
        assert!(d.log().iter().any(|l| l.contains(&removing) && l.contains(" INFO ")), "{removing}: {:#?}", d.log());
        println!("be1 stopped -> checker DOWN in {:?}", detected - stopped);
        assert!(eventually(Duration::from_secs(2), || scheduled(&pins, &service) == reals(&[0, 2], 80)));
        // Give in-flight connections (opened before the map changed) time to finish.
        std::thread::sleep(Duration::from_millis(500));
        let settled = Instant::now();
        std::thread::sleep(Duration::from_secs(3));

        let restarted = Instant::now();
        servers[1] = Some(
            HttpServer::start(&topo.backends[1], "be1", format!("{}:80", backend4(1)).parse().unwrap(), None, None)
                .unwrap(),
        );
        assert!(d.wait_log("real server UP", Duration::from_secs(8)), "no UP log: {:#?}", d.log());
        let adding = format!("Adding service [{}]:tcp:80 to VS [{VIP4}]:tcp:80", backend4(1));
        assert!(d.log().iter().any(|l| l.contains(&adding) && l.contains(" INFO ")), "{adding}: {:#?}", d.log());
        assert!(eventually(Duration::from_secs(2), || scheduled(&pins, &service) == reals(&[0, 1, 2], 80)));
        let back = Instant::now();
        std::thread::sleep(Duration::from_secs(2));
        st_stop(&stop);
        h.join().unwrap();
        (settled, restarted, back)
    });
    let (settled, restarted, back) = client;
    let answers = answers.lock().unwrap().clone();
    let after_detection: Vec<_> = answers.iter().filter(|(t, _)| *t > settled && *t < restarted).collect();
    assert!(after_detection.len() >= 50, "too few requests while be1 was down: {}", after_detection.len());
    let failures: Vec<_> = after_detection.iter().filter(|(_, r)| r.is_err()).collect();
    assert!(failures.is_empty(), "client-visible failures after detection: {failures:?}");
    assert!(after_detection.iter().all(|(_, r)| r.as_deref() != Ok("be1")), "be1 served while down");
    let names: std::collections::BTreeSet<_> =
        after_detection.iter().filter_map(|(_, r)| r.clone().ok()).collect::<std::collections::BTreeSet<_>>();
    assert_eq!(names, ["be0".to_string(), "be2".to_string()].into());
    let after_back: std::collections::BTreeSet<_> =
        answers.iter().filter(|(t, _)| *t > back).filter_map(|(_, r)| r.clone().ok()).collect();
    assert!(after_back.contains("be1"), "be1 did not come back: {after_back:?}");
}

/// Real-server-level defaults reach that real server's checkers (keepalived 2.2.7 inherits
/// checker, then real server, then virtual server): be0's `delay_loop 1`, `retry 1`,
/// `delay_before_retry 1`, `connect_timeout 1` take it out within seconds of its server
/// stopping, where the virtual server's (`delay_loop 30`, `retry 10`, `delay_before_retry
/// 10`) would take minutes, and any one of them inherited instead over 6 s. be1's real-server `alpha` keeps it out of the data plane
/// until its first check (a script that takes 4 s) passes.
#[test]
fn real_server_defaults_reach_their_checkers_and_alpha_waits_for_a_success() {
    require_root();
    let topo = LbTopology::new(2).unwrap();
    let (b0, b1) = (backend4(0), backend4(1));
    let config = TempConfig::new(
        "chk-inherit",
        &format!(
            "virtual_server {VIP4} 80 {{
    delay_loop 30
    retry 10
    delay_before_retry 10
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server {b0} 80 {{
        delay_loop 1
        retry 1
        delay_before_retry 1
        connect_timeout 1
        TCP_CHECK {{
        }}
    }}
    real_server {b1} 80 {{
        alpha
        MISC_CHECK {{
            misc_path \"/bin/sleep 4\"
            misc_timeout 10
        }}
    }}
}}
"
        ),
    );
    let mut servers = backends_at(&topo, |i| (backend4(i), 80).into());
    let pins = daemon::pin_dir("chk-inherit");
    let d = Daemon::start(&topo.lb, &config, &pins, &[]).unwrap();
    let service = format!("{VIP4}:80/tcp");
    // be1 has not passed a check yet: alpha keeps it out; be0 (no alpha) is in.
    assert_eq!(scheduled(&pins, &service), reals(&[0], 80));
    assert!(
        eventually(Duration::from_secs(10), || scheduled(&pins, &service) == reals(&[0, 1], 80)),
        "be1 never came in after its first success: {:#?}",
        d.log()
    );

    drop(servers.remove(0));
    let stopped = Instant::now();
    // Bound from be0's own values: delay_loop + retry × (delay_before_retry + connect_timeout),
    // + slack; the virtual server's retry would make it 1 + 10 × 2 s, its delay_before_retry
    // 1 + 1 × 11 s, its delay_loop 30 s.
    assert!(
        d.wait_log("real server DOWN: TCP_CHECK: connect failed", Duration::from_secs(6)),
        "be0 not taken out in time: {:#?}",
        d.log()
    );
    println!("be0 stopped -> checker DOWN in {:?}", stopped.elapsed());
    assert!(eventually(Duration::from_secs(2), || scheduled(&pins, &service) == reals(&[1], 80)));
    drop(d);
}

/// Virtual-server-level defaults reach checkers without their own (keepalived 2.2.7 inherits
/// checker, then real server, then virtual server): `retry 3` with `delay_before_retry 2`
/// (`delay_loop 1`) holds be0 in for about 7 s after its server stops, where the defaults
/// (`retry 1`, `delay_before_retry 1`) take it out in about 2, and either alone in about 3-4; `inhibit_on_failure` keeps it in the service at
/// weight 0, unscheduled, instead of removing it. be1, with its checker's `retry 0` and its own
/// `inhibit_on_failure false`, goes at its first failure and is removed.
#[test]
fn virtual_server_defaults_reach_their_checkers() {
    require_root();
    let topo = LbTopology::new(2).unwrap();
    let (b0, b1) = (backend4(0), backend4(1));
    let config = TempConfig::new(
        "chk-vsdef",
        &format!(
            "virtual_server {VIP4} 80 {{
    delay_loop 1
    retry 3
    delay_before_retry 2
    connect_timeout 1
    inhibit_on_failure
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server {b0} 80 {{
        TCP_CHECK {{
        }}
    }}
    real_server {b1} 80 {{
        inhibit_on_failure false
        TCP_CHECK {{
            retry 0
        }}
    }}
}}
"
        ),
    );
    let mut servers = backends_at(&topo, |i| (backend4(i), 80).into());
    let pins = daemon::pin_dir("chk-vsdef");
    let d = Daemon::start(&topo.lb, &config, &pins, &[]).unwrap();
    let service = format!("{VIP4}:80/tcp");
    assert!(eventually(Duration::from_secs(5), || scheduled(&pins, &service) == reals(&[0, 1], 80)));
    // The real servers the service holds, scheduled or not, with their weights.
    let held = || -> Vec<(String, u64)> {
        let m = stats_json(&pins).unwrap();
        let svc = m["services"].as_array().unwrap().iter().find(|s| s["service"] == service.as_str()).cloned();
        let mut v: Vec<(String, u64)> = svc
            .map(|s| {
                s["reals"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| (r["real"].as_str().unwrap().to_string(), r["weight"].as_u64().unwrap()))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let stopped = Instant::now();
    drop(servers.remove(0));
    assert!(eventually(Duration::from_secs(15), || !scheduled(&pins, &service).contains(&format!("{b0}:80"))));
    let took = stopped.elapsed();
    println!("be0 stopped -> out of the schedule in {took:?}");
    assert!(
        took >= Duration::from_millis(5500),
        "retry 3 and delay_before_retry 2 from the virtual server not applied: out in {took:?}"
    );
    assert_eq!(held(), [(format!("{b0}:80"), 0), (format!("{b1}:80"), 1)], "inhibit_on_failure: at weight 0");
    // be1's checker's retry 0 and its inhibit_on_failure false: out at its first failure, removed.
    drop(servers.remove(0));
    let stopped = Instant::now();
    assert!(eventually(Duration::from_secs(5), || held().len() == 1), "{:?} {:#?}", held(), d.log());
    println!("be1 stopped -> removed in {:?}", stopped.elapsed());
    assert!(stopped.elapsed() < Duration::from_millis(2500), "be1 took {:?}", stopped.elapsed());
    assert_eq!(held(), [(format!("{b0}:80"), 0)]);
    drop(d);
}

/// `connect_timeout` from the real server, else the virtual server (keepalived 2.2.7 inherits
/// checker, then real server, then virtual server; its default is 5 s) bounds a connect that
/// is never answered: the backend drops the checkers' SYNs, and each TCP_CHECK (`retry 0`)
/// fails at its own timeout, the virtual server's 1 s for one, its real server's 4 s for the
/// other.
#[test]
fn connect_timeout_from_the_real_or_virtual_server_bounds_a_silent_connect() {
    require_root();
    let topo = LbTopology::new(1).unwrap();
    let b0 = backend4(0);
    topo.backends[0]
        .sh("nft add table inet silent && nft add chain inet silent in '{ type filter hook input priority 0; }' \
             && nft add rule inet silent in tcp dport '{ 81, 82 }' drop")
        .unwrap();
    let service = |port: u16, real: &str| {
        format!(
            "virtual_server {VIP4} {port} {{\n    protocol TCP\n    delay_loop 30\n    connect_timeout 1\n    \
             lb_algo rr\n    lb_kind NAT\n    real_server {b0} {port} {{\n{real}        TCP_CHECK {{\n            \
             retry 0\n        }}\n    }}\n}}\n"
        )
    };
    let config =
        TempConfig::new("chk-ctimeout", &[service(81, ""), service(82, "        connect_timeout 4\n")].concat());
    let pins = daemon::pin_dir("chk-ctimeout");
    let d = Daemon::start(&topo.lb, &config, &pins, &[]).unwrap();
    let removed = |port: u16| format!("Removing service [{b0}]:tcp:{port} from VS [{VIP4}]:tcp:{port}");
    assert!(d.wait_log(&removed(82), Duration::from_secs(10)), "{:#?}", d.log());
    // Both checkers start together: the time between their failures, from the log's own
    // stamps, is 4 s - 1 s (with the default 5 s on port 81 it would be negative; with 1 s on
    // both, about 0).
    let at = |port: u16| d.log().iter().find(|l| l.contains(&removed(port))).and_then(|l| daemon::log_time(l));
    let (first, second) = (at(81).expect("port 81 removed"), at(82).expect("port 82 removed"));
    println!(
        "silent connects failed {:.2} s apart (the real server's 4 s against the virtual server's 1 s)",
        second - first
    );
    assert!((2.2..4.0).contains(&(second - first)), "81 at {first}, 82 at {second}: {:#?}", d.log());
    drop(d);
}

/// `warmup` from the real server, else the virtual server: a checker's first round waits a
/// random time up to it (keepalived 2.2.7's `register_checkers_thread`). Each MISC_CHECK
/// writes when it first ran: five checkers inheriting the virtual server's `warmup 4` and
/// five with their real server's, beside one whose real server says `warmup 0` under that
/// virtual server and one with none, which run at once. The delayed ones start within the
/// 4 s, and not all at once (that all five of a group drew under 0.6 s has odds of 1 in 13,000).
#[test]
fn warmup_from_the_real_or_virtual_server_spreads_the_first_checks() {
    require_root();
    let topo = LbTopology::new(1).unwrap();
    let dir = TempDir::new("chk-warmup");
    let b0 = backend4(0);
    let script = dir.file("first.sh", &format!("#!/bin/sh\ndate +%s.%N >> {}/ran-$1\n", dir.path().display()));
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let real = |port: u16, own: &str| {
        format!(
            "    real_server {b0} {port} {{\n{own}        MISC_CHECK {{\n            misc_path \"{} {port}\"\n        \
             }}\n    }}\n",
            script.display()
        )
    };
    let by_vs: String = (91..=95).map(|p| real(p, "")).collect::<String>() + &real(96, "        warmup 0\n");
    let by_rs: String = (101..=105).map(|p| real(p, "        warmup 4\n")).collect::<String>() + &real(106, "");
    let config = dir.file(
        "keepalived.conf",
        &format!(
            "virtual_server {VIP4} 90 {{\n    protocol TCP\n    delay_loop 60\n    warmup 4\n    lb_algo rr\n    \
             lb_kind NAT\n{by_vs}}}\nvirtual_server {VIP4} 100 {{\n    protocol TCP\n    delay_loop 60\n    \
             lb_algo rr\n    lb_kind NAT\n{by_rs}}}\n"
        ),
    );
    let pins = daemon::pin_dir("chk-warmup");
    let d = Daemon::start(&topo.lb, &config, &pins, &[]).unwrap();
    let first_run = |port: u16| -> Option<f64> {
        let text = std::fs::read_to_string(dir.path().join(format!("ran-{port}"))).ok()?;
        text.lines().next()?.trim().parse().ok()
    };
    let all: Vec<u16> = (91..=96).chain(101..=106).collect();
    assert!(
        eventually(Duration::from_secs(8), || all.iter().all(|p| first_run(*p).is_some())),
        "not every checker ran: {:?} {:#?}",
        all.iter().map(|p| (p, first_run(*p))).collect::<Vec<_>>(),
        d.log()
    );
    let at = |p: u16| first_run(p).unwrap();
    let start = at(96).min(at(106));
    assert!((at(96) - at(106)).abs() < 0.5, "warmup 0 and no warmup run at once: {} {}", at(96), at(106));
    for (group, ports) in [("the virtual server's warmup", 91..=95), ("the real servers' warmup", 101..=105)] {
        let delays: Vec<f64> = ports.map(|p| at(p) - start).collect();
        println!("{group}: first rounds after {delays:.2?} s");
        assert!(delays.iter().all(|d| *d < 4.8), "{group}: beyond warmup 4: {delays:?}");
        assert!(delays.iter().any(|d| *d >= 0.6), "{group}: all at once: {delays:?}");
    }
    drop(d);
}

/// The HTTP Host header names the url's `virtualhost`, else the checker's, else the real
/// server's, else the virtual server's, else the address and port (keepalived 2.2.7's
/// `http_request_thread`). The oracle: keepalived's genhash (`keepalived -T -V rs.example`)
/// digests `/request`, which answers the request as the server received it; five services
/// check that digest with the virtual host at different levels: only those where
/// `rs.example` wins keep their real server.
#[test]
fn virtualhost_from_the_real_or_virtual_server_names_the_host_as_keepalived() {
    require_root();
    let topo = LbTopology::new(1).unwrap();
    let dir = TempDir::new("chk-vhost");
    let b0 = backend4(0);
    let _http = HttpServer::start(&topo.backends[0], "be0", format!("{b0}:80").parse().unwrap(), None, None).unwrap();
    let out = topo.lb.sh(&format!("keepalived -T -V rs.example -s {b0} -p 80 -u /request 2>&1")).unwrap_or_default();
    let hex = |w: &&str| w.len() == 32 && w.chars().all(|c| c.is_ascii_hexdigit());
    let digest = out.lines().find_map(|l| l.split_whitespace().last().filter(hex).map(str::to_string));
    let digest = digest.unwrap_or_else(|| panic!("keepalived 2.2.7 genhash gave no digest: {out}"));
    let service = |port: u16, vs: &str, rs: &str, checker: &str| {
        let line = |host: &str, indent: &str| {
            if host.is_empty() { String::new() } else { format!("{indent}virtualhost {host}\n") }
        };
        format!(
            "virtual_server {VIP4} {port} {{\n    protocol TCP\n    delay_loop 1\n    lb_algo rr\n    lb_kind NAT\n{}    \
             real_server {b0} 80 {{\n{}        HTTP_GET {{\n            url {{\n                path /request\n                \
             digest {digest}\n            }}\n{}            connect_timeout 1\n            retry 0\n        }}\n    }}\n}}\n",
            line(vs, "    "),
            line(rs, "        "),
            line(checker, "            "),
        )
    };
    // (VIP port, virtualhost of the virtual server, the real server, the checker; kept)
    let cases = [
        (80, "", "rs.example", "", true),
        (81, "rs.example", "", "", true),
        (82, "vs.example", "rs.example", "", true),
        (83, "", "rs.example", "checker.example", false),
        (84, "", "", "", false),
    ];
    let config = dir.file("keepalived.conf", &cases.map(|(p, vs, rs, c, _)| service(p, vs, rs, c)).concat());
    let pins = daemon::pin_dir("chk-vhost");
    let d = Daemon::start(&topo.lb, &config, &pins, &[]).unwrap();
    services_settle(&d, &pins, 80, &cases.map(|c| (c.0, c.4)), "digest");
}

/// When a client request finished, and the backend that answered or what went wrong.
type Answer = (Instant, Result<String, String>);

fn st_stop(stop: &AtomicBool) {
    stop.store(true, Ordering::Relaxed);
}

/// A self-signed certificate and key for the HTTPS backends (rcgen).
fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let c = rcgen::generate_simple_self_signed(vec!["backend.example".to_string()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, c.cert.pem()).unwrap();
    std::fs::write(&key, c.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

/// SSL_GET (self-signed HTTPS), TCP_CHECK (raw TCP) and MISC_CHECK (a script) each take their
/// real server down and up again; notify_up/notify_down scripts get run; quorum loss hands the
/// service to its sorry server and runs quorum_down; SMTP alerts reach a sink in a namespace;
/// a wrong status gives the right log line.
#[test]
fn ssl_tcp_misc_checkers_quorum_notify_and_mail() {
    require_root();
    let topo = LbTopology::new(3).unwrap();
    let dir = TempDir::new("chk-all");
    let (cert, key) = self_signed(&dir);
    let misc_ok = dir.file("misc-ok", "");
    let status = dir.join("be0-status");
    let (notify, events) = dir.recorder("notify");
    let n = notify.display();
    let (b0, b1, b2) = (backend4(0), backend4(1), backend4(2));
    let config = dir.file(
        "keepalived.conf",
        &format!(
            "global_defs {{
    router_id lb-chk
    notification_email {{
        ops@example.com
    }}
    notification_email_from lb@example.com
    smtp_server {b2} 2525
    smtp_connect_timeout 5
    smtp_alert_checker
}}
virtual_server {VIP4} 443 {{
    protocol TCP
    delay_loop 1
    lb_algo rr
    lb_kind NAT
    real_server {b0} 443 {{
        notify_down \"{n} down-ssl\"
        notify_up \"{n} up-ssl\"
        SSL_GET {{
            url {{
                path /health
            }}
            virtualhost backend.example
            connect_timeout 1
            retry 0
        }}
    }}
}}
virtual_server {VIP4} 81 {{
    protocol TCP
    delay_loop 1
    lb_algo rr
    lb_kind NAT
    quorum 2
    quorum_down \"{n} quorum-down\"
    quorum_up \"{n} quorum-up\"
    sorry_server {b2} 81
    real_server {b0} 81 {{
        TCP_CHECK {{
            connect_timeout 1
            retry 0
        }}
    }}
    real_server {b1} 81 {{
        MISC_CHECK {{
            misc_path \"/bin/test -e {}\"
            misc_timeout 2
        }}
    }}
}}
",
            misc_ok.display()
        ),
    );
    let https = |i: usize| {
        HttpServer::start(
            &topo.backends[i],
            &format!("be{i}"),
            format!("{}:443", backend4(i)).parse().unwrap(),
            Some((&cert, &key)),
            Some(&status),
        )
        .unwrap()
    };
    let mut ssl0 = Some(https(0));
    let mut tcp0 = Some(Backend::start(&topo.backends[0], "be0".into(), format!("{b0}:81").parse().unwrap()));
    let _sorry = Backend::start(&topo.backends[2], "sorry".into(), format!("{b2}:81").parse().unwrap());
    let sink = SmtpSink::start(&topo.backends[2], format!("{b2}:2525").parse().unwrap()).unwrap();

    let pins = daemon::pin_dir("chk-all");
    let d = Daemon::start(&topo.lb, &config, &pins, &[]).unwrap();
    let (ssl_svc, tcp_svc) = (format!("{VIP4}:443/tcp"), format!("{VIP4}:81/tcp"));
    let t = Duration::from_secs(6);
    assert_eq!(scheduled(&pins, &ssl_svc), reals(&[0], 443));
    assert_eq!(scheduled(&pins, &tcp_svc), reals(&[0, 1], 81));
    std::thread::sleep(Duration::from_secs(2));
    assert!(!d.log().iter().any(|l| l.contains("real server DOWN")), "{:#?}", d.log());

    // SSL_GET: a 503 from /health.
    std::fs::write(&status, "503").unwrap();
    assert!(d.wait_log("SSL_GET: /health: status 503, expected 200-299", t), "{:#?}", d.log());
    assert!(eventually(t, || scheduled(&pins, &ssl_svc).is_empty()));
    // `lb-daemon status`: the verdict, its reason and the counters.
    let down_in_status = || {
        let st = d.status().unwrap();
        let check = st["checks"].as_array().unwrap().iter().find(|c| c["service"] == ssl_svc.as_str()).cloned();
        check.is_some_and(|c| c["up"] == false && c["reason"] == "SSL_GET: /health: status 503, expected 200-299")
            && st["checker_counters"]["real_down"].as_u64() >= Some(1)
    };
    assert!(eventually(t, down_in_status), "{}", d.status().unwrap());
    std::fs::remove_file(&status).unwrap();
    assert!(eventually(t, || scheduled(&pins, &ssl_svc) == reals(&[0], 443)));
    // SSL_GET: the server gone (connect refused), then a plain-HTTP server where TLS is
    // expected (handshake failure), then HTTPS again.
    drop(ssl0.take());
    assert!(eventually(t, || scheduled(&pins, &ssl_svc).is_empty()));
    let plain = HttpServer::start(&topo.backends[0], "be0", format!("{b0}:443").parse().unwrap(), None, None).unwrap();
    assert!(d.wait_log("TLS handshake failed", t), "{:#?}", d.log());
    drop(plain);
    ssl0.replace(https(0));
    assert!(eventually(t, || scheduled(&pins, &ssl_svc) == reals(&[0], 443)));

    // MISC_CHECK fails: quorum 2 is lost with one real left, so the sorry server answers and
    // quorum_down runs; it recovers and quorum_up runs.
    std::fs::remove_file(&misc_ok).unwrap();
    assert!(d.wait_log("quorum lost; the sorry server answers", t), "{:#?}", d.log());
    assert!(eventually(t, || sorry_active(&pins, &tcp_svc)));
    let vip81: SocketAddr = format!("{VIP4}:81").parse().unwrap();
    assert_eq!(tcp_ask(&topo.client, vip81, None), "sorry");
    std::fs::write(&misc_ok, "").unwrap();
    assert!(eventually(t, || scheduled(&pins, &tcp_svc) == reals(&[0, 1], 81) && !sorry_active(&pins, &tcp_svc)));
    // TCP_CHECK: the echo server stops and comes back.
    drop(tcp0.take());
    assert!(eventually(t, || scheduled(&pins, &tcp_svc).is_empty() && sorry_active(&pins, &tcp_svc)));
    tcp0.replace(Backend::start(&topo.backends[0], "be0".into(), format!("{b0}:81").parse().unwrap()));
    assert!(eventually(t, || scheduled(&pins, &tcp_svc) == reals(&[0, 1], 81)));

    // Notify scripts got exactly their arguments, in order.
    assert!(eventually(t, || std::fs::read_to_string(&events).unwrap_or_default().lines().count() >= 8));
    let ev = std::fs::read_to_string(&events).unwrap();
    let lines: Vec<&str> = ev.lines().collect();
    assert_eq!(
        lines,
        ["down-ssl", "up-ssl", "down-ssl", "up-ssl", "quorum-down", "quorum-up", "quorum-down", "quorum-up"],
        "{ev}"
    );
    // Mail: one per real server change and quorum change, through the sink.
    assert!(eventually(Duration::from_secs(10), || sink.messages().len() >= 10), "{:#?}", sink.messages());
    // Long headers are folded (RFC 5322); unfold before matching.
    let mail = sink.messages().join("\n----\n").replace("\n ", " ");
    assert!(
        mail.contains(&format!("Subject: [lb-chk] Realserver {b0}:443 of virtual server {ssl_svc} - DOWN")),
        "{mail}"
    );
    assert!(mail.contains(&format!("Subject: [lb-chk] Virtual server {tcp_svc} - quorum lost")), "{mail}");
    drop(d);
}

/// A real server's link flaps (its switch port goes down, then up; then five quick flaps):
/// TCP_CHECK takes it out within its timeouts and back when the link returns, clients through
/// the VIP only ever reach a live real server once the DOWN is logged, and after the quick
/// flaps both real servers are scheduled again.
#[test]
fn a_flapping_backend_link_is_detected_and_recovers() {
    require_root();
    let topo = LbTopology::new(2).unwrap();
    let dir = TempDir::new("chk-flap");
    // keepalived's LVS notify FIFO, read by its script (started with the FIFO's path).
    let reader = dir.script("reader.sh", "#!/bin/sh\nexec cat \"$1\" >> \"$1.lines\"\n");
    let fifo = dir.join("lvs.fifo");
    let fifo_lines = || std::fs::read_to_string(format!("{}.lines", fifo.display())).unwrap_or_default();
    let config = dir.file(
        "lb.conf",
        &format!(
            "global_defs {{\n    lvs_notify_fifo {}\n    lvs_notify_fifo_script {}\n}}\n{}",
            fifo.display(),
            reader.display(),
            service_80(
                2,
                "        TCP_CHECK {
            connect_timeout 1
            retry 1
            delay_before_retry 1
        }
",
            )
        ),
    );
    let _servers = backends_at(&topo, |i| (backend4(i), 80).into());
    let pins = daemon::pin_dir("chk-flap");
    let mut d = Daemon::start(&topo.lb, &config, &pins, &[]).unwrap();
    let service = format!("{VIP4}:80/tcp");
    assert!(eventually(Duration::from_secs(5), || scheduled(&pins, &service) == reals(&[0, 1], 80)));
    let vip: SocketAddr = format!("{VIP4}:80").parse().unwrap();
    let link = |up: bool| {
        topo.switch.ip(&["link", "set", "s2", if up { "up" } else { "down" }]).unwrap();
    };

    link(false);
    let down = Instant::now();
    assert!(d.wait_log("real server DOWN", Duration::from_secs(8)), "{:#?}", d.log());
    println!("link down -> checker DOWN in {:?}", down.elapsed());
    assert!(eventually(Duration::from_secs(2), || scheduled(&pins, &service) == reals(&[0], 80)));
    let names: Vec<String> = (0..6).map(|_| tcp_ask(&topo.client, vip, None)).collect();
    assert!(names.iter().all(|n| n == "be0"), "{names:?}");
    let rs = |state: &str| format!("RS [{}]:tcp:80 [{VIP4}]:tcp:80 {state}\n", backend4(1));
    assert!(eventually(Duration::from_secs(2), || fifo_lines() == rs("DOWN")), "{:?}", fifo_lines());
    link(true);
    let up = Instant::now();
    assert!(d.wait_log("real server UP", Duration::from_secs(8)), "{:#?}", d.log());
    println!("link up -> checker UP in {:?}", up.elapsed());
    assert!(eventually(Duration::from_secs(2), || scheduled(&pins, &service) == reals(&[0, 1], 80)));
    assert!(eventually(Duration::from_secs(2), || fifo_lines() == rs("DOWN") + &rs("UP")), "{:?}", fifo_lines());

    // Quick flaps, shorter than a check: whatever the checker saw, it settles on UP.
    for _ in 0..5 {
        link(false);
        std::thread::sleep(Duration::from_millis(200));
        link(true);
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(eventually(Duration::from_secs(10), || scheduled(&pins, &service) == reals(&[0, 1], 80)));
    let names: Vec<String> = (0..6).map(|_| tcp_ask(&topo.client, vip, None)).collect();
    assert_eq!(spread(&names).len(), 2, "{names:?}");
    assert!(d.pid().is_some());
    d.stop().unwrap();
    assert!(!fifo.exists(), "the FIFO the daemon made is removed at exit");
}

/// `virtual_server VIP port` over UDP (rr, NAT, `delay_loop 1`) over the first `n` backends,
/// each real server checked by `check`.
fn udp_service(port: u16, n: usize, check: &str) -> String {
    let reals: String = (0..n).map(|i| format!("    real_server {} {port} {{\n{check}    }}\n", backend4(i))).collect();
    format!(
        "virtual_server {VIP4} {port} {{\n    delay_loop 1\n    lb_algo rr\n    lb_kind NAT\n    protocol UDP\n{reals}}}\n"
    )
}

/// A real server's verdict in `lb-daemon status`: (up, reason) of the checker on `real`.
fn verdict(d: &Daemon, real: &str) -> Option<(bool, String)> {
    let st = d.status().ok()?;
    let c = st["checks"].as_array()?.iter().find(|c| c["real"] == real)?.clone();
    Some((c["up"].as_bool()?, c["reason"].as_str()?.to_string()))
}

/// UDP_CHECK against the UDP echo backends (each answers its name): a reply starting
/// "be" (`require_reply 62 65 3x`, the last nibble a wildcard) passes; a backend answering
/// another name fails on the data; a stopped backend fails on the ICMP port unreachable its
/// kernel sends back; started again, it is back in the data plane and gets client traffic.
#[test]
fn udp_check_reply_data_and_port_unreachable() {
    require_root();
    let topo = LbTopology::new(3).unwrap();
    let check = "        UDP_CHECK {
            payload 68 65 6c 6c 6f
            require_reply 62 65 3x
            connect_timeout 1
            retry 0
        }
";
    let config = TempConfig::new("chk-udp", &udp_service(5300, 3, check));
    let at = |i: usize| -> SocketAddr { (backend4(i), 5300).into() };
    let mut be0 = Some(Backend::start(&topo.backends[0], "be0".into(), at(0)));
    let _be1 = Backend::start(&topo.backends[1], "be1".into(), at(1));
    let _wrong = Backend::start(&topo.backends[2], "zz2".into(), at(2)); // "zz": data mismatch
    let pins = daemon::pin_dir("chk-udp");
    let d = Daemon::start(&topo.lb, &config, &pins, &[]).unwrap();
    let service = format!("{VIP4}:5300/udp");
    let t = Duration::from_secs(6);
    assert!(eventually(t, || scheduled(&pins, &service) == reals(&[0, 1], 5300)), "{:#?}", d.log());
    let b2 = format!("{}:5300", backend4(2));
    assert!(eventually(t, || verdict(&d, &b2).is_some_and(|(up, r)| !up && r.contains("mismatch at byte 0"))));

    drop(be0.take());
    assert!(d.wait_log("UDP_CHECK: Connection refused", t), "{:#?}", d.log());
    assert!(eventually(t, || scheduled(&pins, &service) == reals(&[1], 5300)));
    let vip: SocketAddr = (VIP4, 5300).into();
    let names: Vec<String> = (0..6).map(|i| udp_ask_from(&topo.client, vip, 40000 + i)).collect();
    assert!(names.iter().all(|n| n == "be1"), "{names:?}");

    be0 = Some(Backend::start(&topo.backends[0], "be0".into(), at(0)));
    assert!(eventually(t, || scheduled(&pins, &service) == reals(&[0, 1], 5300)));
    let names: Vec<String> = (0..8).map(|i| udp_ask_from(&topo.client, vip, 41000 + i)).collect();
    assert!(names.contains(&"be0".to_string()), "{names:?}");
    drop(be0);
}

/// A DNS responder for the checks: answers each query with its header turned into a
/// response carrying `rcode`, and records the question it was asked.
struct Dns {
    stop: Arc<AtomicBool>,
    rcode: Arc<std::sync::atomic::AtomicU8>,
    asked: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Dns {
    fn start(ns: &Netns, bind: SocketAddr) -> Dns {
        let sock = ns.run(move || std::net::UdpSocket::bind(bind).unwrap()).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let rcode = Arc::new(std::sync::atomic::AtomicU8::new(0));
        let asked: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let (s, rc, a) = (stop.clone(), rcode.clone(), asked.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !s.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else { continue };
                if n < 12 {
                    continue;
                }
                a.lock().unwrap().push(buf[12..n].to_vec());
                let mut r = buf[..n].to_vec();
                r[2] |= 0x80; // QR
                r[3] = (r[3] & 0xf0) | rc.load(Ordering::Relaxed);
                let _ = sock.send_to(&r, from);
            }
        });
        Dns { stop, rcode, asked }
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// DNS_CHECK against a responder in each backend namespace: NOERROR passes, SERVFAIL takes
/// the real server out, NOERROR again brings it back; the question asked is keepalived's
/// (the configured name and type, class IN).
#[test]
fn dns_check_follows_the_answer_code() {
    require_root();
    let topo = LbTopology::new(2).unwrap();
    let check = "        DNS_CHECK {
            type A
            name www.example.com
            connect_timeout 1
            retry 0
        }
";
    let config = TempConfig::new("chk-dns", &udp_service(53, 2, check));
    let dns: Vec<Dns> = (0..2).map(|i| Dns::start(&topo.backends[i], (backend4(i), 53).into())).collect();
    let pins = daemon::pin_dir("chk-dns");
    let d = Daemon::start(&topo.lb, &config, &pins, &[]).unwrap();
    let service = format!("{VIP4}:53/udp");
    let t = Duration::from_secs(6);
    assert!(eventually(t, || scheduled(&pins, &service) == reals(&[0, 1], 53)));
    std::thread::sleep(Duration::from_secs(2));
    assert!(!d.log().iter().any(|l| l.contains("real server DOWN")), "{:#?}", d.log());
    assert_eq!(dns[0].asked.lock().unwrap()[0], b"\x03www\x07example\x03com\x00\x00\x01\x00\x01");

    dns[1].rcode.store(2, Ordering::Relaxed); // SERVFAIL
    assert!(d.wait_log("DNS_CHECK: answer with rcode 2", t), "{:#?}", d.log());
    assert!(eventually(t, || scheduled(&pins, &service) == reals(&[0], 53)));
    dns[1].rcode.store(0, Ordering::Relaxed);
    assert!(eventually(t, || scheduled(&pins, &service) == reals(&[0, 1], 53)));
    // Silence (the responder gone) fails too.
    drop(dns);
    assert!(eventually(t, || scheduled(&pins, &service).is_empty()));
}

/// PING_CHECK: an nft rule in a backend's namespace drops ICMP echo requests (its TCP
/// service still answers): the ping fails and the real server leaves the data plane,
/// clients only reach the other; the rule deleted, it comes back. Twice: over raw ICMP
/// sockets (the namespace's default ping_group_range excludes root's group), then over ping
/// sockets once ping_group_range lets root's group have them.
#[test]
fn ping_check_follows_icmp_echo() {
    require_root();
    let topo = LbTopology::new(2).unwrap();
    let config = TempConfig::new(
        "chk-ping",
        &service_80(2, "        PING_CHECK {\n            connect_timeout 1\n            retry 0\n        }\n"),
    );
    let _servers = backends_at(&topo, |i| (backend4(i), 80).into());
    let pins = daemon::pin_dir("chk-ping");
    let d = Daemon::start(&topo.lb, &config, &pins, &[]).unwrap();
    let service = format!("{VIP4}:80/tcp");
    let t = Duration::from_secs(6);
    assert!(eventually(t, || scheduled(&pins, &service) == reals(&[0, 1], 80)));
    std::thread::sleep(Duration::from_secs(2));
    assert!(!d.log().iter().any(|l| l.contains("real server DOWN")), "{:#?}", d.log());

    assert!(d.log().iter().any(|l| l.contains("using raw ICMP sockets")), "{:#?}", d.log());

    let be1 = &topo.backends[1];
    let vip: SocketAddr = (VIP4, 80).into();
    for raw in [true, false] {
        if !raw {
            topo.lb.sh("sysctl -qw net.ipv4.ping_group_range='0 0'").unwrap();
        }
        be1.sh("nft add table inet chkping && nft add chain inet chkping in '{ type filter hook input priority 0; }' \
             && nft add rule inet chkping in icmp type echo-request drop")
            .unwrap();
        assert!(eventually(t, || scheduled(&pins, &service) == reals(&[0], 80)), "raw {raw}: {:#?}", d.log());
        assert!(d.log().iter().any(|l| l.contains("PING_CHECK: no echo reply")), "{:#?}", d.log());
        let names: Vec<String> = (0..6).map(|_| tcp_ask(&topo.client, vip, None)).collect();
        assert!(names.iter().all(|n| n == "be0"), "{names:?}");
        be1.sh("nft delete table inet chkping").unwrap();
        assert!(eventually(t, || scheduled(&pins, &service) == reals(&[0, 1], 80)), "raw {raw}");
    }
}

/// SMTP_CHECK with a `host` block (port 2525 on the real server) and a HELO name: the SMTP
/// sink answering passes; the sink stopped fails and takes the real server out; started
/// again, it is back.
#[test]
fn smtp_check_host_block_dialogue() {
    require_root();
    let topo = LbTopology::new(2).unwrap();
    let config = TempConfig::new(
        "chk-smtp",
        &service_80(
            2,
            "        SMTP_CHECK {
            helo_name lb.example
            retry 0
            host {
                connect_port 2525
                connect_timeout 1
            }
        }
",
        ),
    );
    let _servers = backends_at(&topo, |i| (backend4(i), 80).into());
    let sink = |i: usize| SmtpSink::start(&topo.backends[i], (backend4(i), 2525).into()).unwrap();
    let mut sinks = [Some(sink(0)), Some(sink(1))];
    let pins = daemon::pin_dir("chk-smtp");
    let d = Daemon::start(&topo.lb, &config, &pins, &[]).unwrap();
    let service = format!("{VIP4}:80/tcp");
    let t = Duration::from_secs(6);
    assert!(eventually(t, || scheduled(&pins, &service) == reals(&[0, 1], 80)));
    std::thread::sleep(Duration::from_secs(2));
    assert!(!d.log().iter().any(|l| l.contains("real server DOWN")), "{:#?}", d.log());
    let b0 = format!("{}:80", backend4(0));
    assert!(eventually(t, || verdict(&d, &b0).is_some_and(|(up, r)| up && r == "SMTP_CHECK: check passed")));

    sinks[0] = None;
    assert!(d.wait_log("SMTP_CHECK: connect failed: Connection refused", t), "{:#?}", d.log());
    assert!(eventually(t, || scheduled(&pins, &service) == reals(&[1], 80)));
    let vip: SocketAddr = (VIP4, 80).into();
    let names: Vec<String> = (0..6).map(|_| tcp_ask(&topo.client, vip, None)).collect();
    assert!(names.iter().all(|n| n == "be1"), "{names:?}");
    sinks[0] = Some(sink(0));
    assert!(eventually(t, || scheduled(&pins, &service) == reals(&[0, 1], 80)));
}

/// The weights `lb-daemon stats` shows for `service`'s real servers, by address.
fn weights(pins: &Path, service: &str) -> Vec<(String, u64)> {
    let m = stats_json(pins).unwrap();
    let Some(svc) = m["services"].as_array().unwrap().iter().find(|s| s["service"] == service) else {
        return Vec::new();
    };
    let mut v: Vec<(String, u64)> = svc["reals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["real"].as_str().unwrap().to_string(), r["weight"].as_u64().unwrap()))
        .collect();
    v.sort();
    v
}

/// FILE_CHECK (keepalived 2.2.7's check_file.c and track_file.c): be0 has a weight-0
/// FILE_CHECK on `maint` (a non-zero value fails it), a FILE_CHECK on `load` (the track_file's
/// weight 3: value × 3 is added to its weight 1) and a TCP_CHECK; all must pass. Writing 1 to
/// `maint` takes be0 out and clients reach only be1, 0 brings it back; `load` 2 makes its
/// weight 1 + 2 × 3 = 7; -1 makes it 1 - 3 < 0, so 0 (keepalived's `real_weight`: no new
/// connections); 0 restores 1. Changes are seen through inotify, rewritten or renamed over.
#[test]
fn file_check_takes_a_real_server_out_and_moves_its_weight() {
    require_root();
    let topo = LbTopology::new(2).unwrap();
    let dir = TempDir::new("chk-file");
    let (maint, load) = (dir.join("maint"), dir.join("load"));
    let be0 = "        weight 1\n        FILE_CHECK {\n            track_file maint\n            weight 0\n        }\n\
         \x20       FILE_CHECK {\n            track_file load\n        }\n\
         \x20       TCP_CHECK {\n            connect_timeout 1\n        }\n";
    let text = format!(
        "track_file maint {{\n    file \"{}\"\n    init_file 0\n}}\n\
         track_file load {{\n    file \"{}\"\n    weight 3\n}}\n\
         virtual_server {VIP4} 80 {{\n    delay_loop 1\n    lb_algo rr\n    lb_kind NAT\n    protocol TCP\n\
         \x20   real_server {} 80 {{\n{be0}    }}\n\
         \x20   real_server {} 80 {{\n        weight 1\n        TCP_CHECK {{\n            connect_timeout 1\n        }}\n    }}\n}}\n",
        maint.display(),
        load.display(),
        backend4(0),
        backend4(1)
    );
    let config = TempConfig::new("chk-file", &text);
    let _servers = backends_at(&topo, |i| (backend4(i), 80).into());
    let pins = daemon::pin_dir("chk-file");
    let d = Daemon::start(&topo.lb, &config, &pins, &[]).unwrap();
    let service = format!("{VIP4}:80/tcp");
    let t = Duration::from_secs(5);
    let (r0, r1) = (format!("{}:80", backend4(0)), format!("{}:80", backend4(1)));
    let w = |a: u64, b: u64| vec![(r0.clone(), a), (r1.clone(), b)];
    assert!(eventually(t, || scheduled(&pins, &service) == reals(&[0, 1], 80)), "{:#?}", d.log());
    assert_eq!(weights(&pins, &service), w(1, 1));
    assert_eq!(std::fs::read_to_string(&maint).unwrap(), "0\n", "init_file created it");
    let vip: SocketAddr = (VIP4, 80).into();

    // Non-zero in the weight-0 file: be0 fails (its TCP_CHECK still passes) and leaves.
    std::fs::write(&maint, "1\n").unwrap();
    assert!(eventually(t, || scheduled(&pins, &service) == reals(&[1], 80)), "{:#?}", d.log());
    let removing = format!("Removing service [{}]:tcp:80 from VS [{VIP4}]:tcp:80", backend4(0));
    assert!(d.log().iter().any(|l| l.contains(&removing) && l.contains("track_file maint reads 1")), "{:#?}", d.log());
    let names: Vec<String> = (0..6).map(|_| tcp_ask(&topo.client, vip, None)).collect();
    assert!(names.iter().all(|n| n == "be1"), "{names:?}");
    // 0, by a rename over the file: back.
    let tmp = dir.join("maint.new");
    std::fs::write(&tmp, "0").unwrap();
    std::fs::rename(&tmp, &maint).unwrap();
    assert!(eventually(t, || scheduled(&pins, &service) == reals(&[0, 1], 80)), "{:#?}", d.log());
    let names: Vec<String> = (0..6).map(|_| tcp_ask(&topo.client, vip, None)).collect();
    assert!(names.iter().any(|n| n == "be0"), "{names:?}");

    // Weighted: 1 + 2 × 3.
    std::fs::write(&load, "2\n").unwrap();
    assert!(eventually(t, || weights(&pins, &service) == w(7, 1)), "{:?} {:#?}", weights(&pins, &service), d.log());
    // 1 - 3 is below 0: weight 0, no new connections.
    std::fs::write(&load, "-1\n").unwrap();
    assert!(eventually(t, || weights(&pins, &service) == w(0, 1)), "{:?} {:#?}", weights(&pins, &service), d.log());
    assert_eq!(scheduled(&pins, &service), reals(&[1], 80));
    let names: Vec<String> = (0..6).map(|_| tcp_ask(&topo.client, vip, None)).collect();
    assert!(names.iter().all(|n| n == "be1"), "{names:?}");
    std::fs::write(&load, "0\n").unwrap();
    assert!(eventually(t, || weights(&pins, &service) == w(1, 1)), "{:?} {:#?}", weights(&pins, &service), d.log());
    assert_eq!(scheduled(&pins, &service), reals(&[0, 1], 80));
}

/// `ha_suspend`: while the virtual server's address is not on this node, its checkers pause
/// (a real server with nothing listening stays in, status says why); once the address is
/// here, they run and take it out.
#[test]
fn ha_suspend_pauses_checks_until_the_vip_is_on_this_node() {
    require_root();
    let topo = LbTopology::new(1).unwrap();
    let b0 = backend4(0);
    let config = TempConfig::new(
        "chk-ha-suspend",
        &format!(
            "virtual_server {VIP4} 80 {{
    ha_suspend
    delay_loop 1
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server {b0} 80 {{
        TCP_CHECK {{
            connect_timeout 1
            retry 1
            delay_before_retry 1
        }}
    }}
}}
"
        ),
    );
    let pins = daemon::pin_dir("chk-ha-suspend");
    let d = Daemon::start(&topo.lb, &config, &pins, &[]).unwrap();
    let (service, real) = (format!("{VIP4}:80/tcp"), format!("{b0}:80"));
    assert!(
        eventually(Duration::from_secs(5), || verdict(&d, &real)
            .is_some_and(|(up, why)| up && why.contains("ha_suspend: paused"))),
        "{:?} {:#?}",
        verdict(&d, &real),
        d.log()
    );
    // Nothing listens on be0, but no check runs: it stays in.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(scheduled(&pins, &service), reals(&[0], 80));
    assert!(!d.log().iter().any(|l| l.contains("real server DOWN")), "{:#?}", d.log());

    topo.lb.ip(&["addr", "add", &format!("{VIP4}/32"), "dev", "lo"]).unwrap();
    assert!(d.wait_log("ha_suspend: checks resumed", Duration::from_secs(3)), "{:#?}", d.log());
    assert!(d.wait_log("real server DOWN", Duration::from_secs(6)), "{:#?}", d.log());
    assert!(eventually(Duration::from_secs(2), || scheduled(&pins, &service).is_empty()));
    drop(d);
}

/// `enable_sni`: SSL_GET names its virtual host in the TLS handshake only with it, as
/// keepalived 2.2.7 does (the oracle: keepalived's own genhash, `keepalived -T`, which runs
/// its SSL_GET code, with and without `-I`, against a server that answers `/sni` with the
/// name it was sent). Then two services check one server's `/sni` against the digest of the
/// virtual host: the one with `enable_sni` keeps it, the one without takes it out.
#[test]
fn enable_sni_names_the_virtual_host_in_the_handshake_as_keepalived() {
    require_root();
    let topo = LbTopology::new(1).unwrap();
    let dir = TempDir::new("chk-sni");
    let (cert, key) = self_signed(&dir);
    let b0 = backend4(0);
    let _https =
        HttpServer::start(&topo.backends[0], "be0", format!("{b0}:443").parse().unwrap(), Some((&cert, &key)), None)
            .unwrap();
    let digest = |cmd: &str| {
        let out = topo.lb.sh(&format!("{cmd} -S -s {b0} -p 443 -u /sni -V www.example 2>&1")).unwrap_or_default();
        // keepalived prints the digest alone, ours "MD5SUM = digest".
        let hex = |w: &&str| w.len() == 32 && w.chars().all(|c| c.is_ascii_hexdigit());
        out.lines().find_map(|l| l.split_whitespace().last().filter(hex).map(str::to_string))
    };
    let lb = daemon::binary().unwrap().display().to_string();
    let theirs = (digest("keepalived -T -I"), digest("keepalived -T"));
    assert!(theirs.0.is_some() && theirs.1.is_some() && theirs.0 != theirs.1, "keepalived 2.2.7: {theirs:?}");
    let ours = (digest(&format!("{lb} genhash -I")), digest(&format!("{lb} genhash")));
    assert_eq!(ours, theirs, "lb-daemon genhash (left) against keepalived's (right)");

    // Where `virtualhost www.example` goes (the url, the checker or the real server) and
    // whether `enable_sni` is on: keepalived's ssl_connect names the url's virtualhost, else
    // the checker's, else the virtual server's, never the real server's (check_ssl.c).
    let service = |port: u16, at: &str, sni: bool| {
        let vhost = "virtualhost www.example\n";
        let (url, checker, real) = match at {
            "url" => (vhost, "", ""),
            "checker" => ("", vhost, ""),
            _ => ("", "", vhost),
        };
        format!(
            "virtual_server {VIP4} {port} {{\n    protocol TCP\n    delay_loop 1\n    lb_algo rr\n    lb_kind NAT\n    \
             real_server {b0} 443 {{\n{real}        SSL_GET {{\n            url {{\n                path /sni\n\
             {url}                digest {}\n            }}\n{checker}{}            connect_timeout 1\n            \
             retry 0\n        }}\n    }}\n}}\n",
            theirs.0.as_deref().unwrap_or_default(),
            if sni { "            enable_sni\n" } else { "" }
        )
    };
    // (port, where the virtualhost is, enable_sni, whether the digest of "www.example" matches)
    let cases = [
        (443, "checker", true, true),
        (8443, "checker", false, false),
        (9443, "real", true, false),
        (10443, "url", true, true),
    ];
    let config = dir.file("keepalived.conf", &cases.map(|(port, at, sni, _)| service(port, at, sni)).concat());
    let pins = daemon::pin_dir("chk-sni");
    let d = Daemon::start(&topo.lb, &config, &pins, &[]).unwrap();
    services_settle(&d, &pins, 443, &cases.map(|c| (c.0, c.3)), "digest");
}

/// `http_protocol` (keepalived 2.2.7's request_template): the request's version and whether
/// it asks the server to close. The oracle: keepalived's own genhash (`keepalived -T -P`, its
/// HTTP_GET code) and ours GET `/request`, which answers the request as the server received
/// it, and must get the same digest for each version, with and without a virtual host, and
/// the same digest of a chunked answer (keepalived undoes no transfer coding). Then
/// the effect: a server answering 505 to anything but HTTP/1.1 keeps the real server only
/// for the service whose checker says `http_protocol 1.1` (keepalived's default is 1.0).
#[test]
fn http_protocol_sends_keepalived_s_request() {
    require_root();
    let topo = LbTopology::new(1).unwrap();
    let dir = TempDir::new("chk-proto");
    let b0 = backend4(0);
    let _http = HttpServer::start(&topo.backends[0], "be0", format!("{b0}:80").parse().unwrap(), None, None).unwrap();
    let digest_of = |cmd: &str, url: &str| {
        let out = topo.lb.sh(&format!("{cmd} -s {b0} -p 80 -u {url} 2>&1")).unwrap_or_default();
        let hex = |w: &&str| w.len() == 32 && w.chars().all(|c| c.is_ascii_hexdigit());
        out.lines().find_map(|l| l.split_whitespace().last().filter(hex).map(str::to_string))
    };
    let lb = daemon::binary().unwrap().display().to_string();
    let mut seen = std::collections::BTreeSet::new();
    for args in ["", "-P 1.0", "-P 1.0c", "-P 1.1", "-P 1.1 -V www.example"] {
        let theirs = digest_of(&format!("keepalived -T {args}"), "/request");
        assert!(theirs.is_some(), "keepalived 2.2.7 genhash {args} got no digest");
        let ours = digest_of(&format!("{lb} genhash {args}"), "/request");
        assert_eq!(ours, theirs, "lb-daemon genhash {args} (left) against keepalived's (right)");
        seen.insert(theirs);
    }
    // The default and -P 1.0 ask the same; the others differ from each other.
    assert_eq!(seen.len(), 4, "{seen:?}");
    // A chunked answer is digested as it came, framing and all, as keepalived reads it.
    let theirs = digest_of("keepalived -T -P 1.1", "/chunked");
    assert!(theirs.is_some(), "keepalived 2.2.7 genhash got no digest of /chunked");
    assert_eq!(digest_of(&format!("{lb} genhash -P 1.1"), "/chunked"), theirs, "/chunked: ours (left)");

    let service = |port: u16, protocol: &str| {
        format!(
            "virtual_server {VIP4} {port} {{\n    protocol TCP\n    delay_loop 1\n    lb_algo rr\n    lb_kind NAT\n    \
             real_server {b0} 80 {{\n        HTTP_GET {{\n            url {{\n                path /http11\n            \
             }}\n{protocol}            connect_timeout 1\n            retry 0\n        }}\n    }}\n}}\n"
        )
    };
    let config = dir.file(
        "keepalived.conf",
        &[
            service(80, ""),
            service(81, "            http_protocol 1.0C\n"),
            service(82, "            http_protocol 1.1\n"),
        ]
        .concat(),
    );
    let pins = daemon::pin_dir("chk-proto");
    let d = Daemon::start(&topo.lb, &config, &pins, &[]).unwrap();
    // HTTP/1.0 (the default and 1.0C) is answered 505; HTTP/1.1 keeps its real server.
    services_settle(&d, &pins, 80, &[(80, false), (81, false), (82, true)], "505");
}

/// A url's `regex` (keepalived 2.2.7 with PCRE2) over the answer as received: Python's
/// `/health` answer (`HTTP/1.0 200 OK`, its headers, `Content-Length: 2`, then "ok" and the end
/// of the stream) must match, or with `regex_no_match` must not. As in keepalived the status
/// line and headers count, the pattern is unescaped first (`\r\n` are CR LF, `\\d` is
/// PCRE2's `\d`), and a match reaching the end of the stream (`ok$`) is a hard partial match,
/// so none. Five services check the same server; only those whose regex passes keep it.
#[test]
fn url_regex_keeps_or_takes_out_a_real_server() {
    require_root();
    let topo = LbTopology::new(1).unwrap();
    let dir = TempDir::new("chk-regex");
    let b0 = backend4(0);
    let _http = HttpServer::start(&topo.backends[0], "be0", format!("{b0}:80").parse().unwrap(), None, None).unwrap();
    let service = |port: u16, regex: &str| {
        format!(
            "virtual_server {VIP4} {port} {{\n    protocol TCP\n    delay_loop 1\n    lb_algo rr\n    lb_kind NAT\n    \
             real_server {b0} 80 {{\n        HTTP_GET {{\n            url {{\n                path /health\n\
             {regex}            }}\n            connect_timeout 1\n            retry 0\n        }}\n    }}\n}}\n"
        )
    };
    // (VIP port, url lines, whether the real server stays)
    let cases = [
        (80, "                regex \"^HTTP/1.0 200\"\n", true),
        (81, "                regex \"content-length: 2\\r\\n\"\n                regex_options caseless\n", true),
        (82, "                regex ok$\n", false),
        (83, "                regex ok\n                regex_no_match\n", false),
        (84, "                regex \"\\\\d+ OK\"\n", true),
    ];
    let config = dir.file("keepalived.conf", &cases.map(|(port, regex, _)| service(port, regex)).concat());
    let pins = daemon::pin_dir("chk-regex");
    let d = Daemon::start(&topo.lb, &config, &pins, &[]).unwrap();
    services_settle(&d, &pins, 80, &cases.map(|c| (c.0, c.2)), "regex match failed");
}

/// `bind_if IFNAME` binds a checker's socket to that interface (SO_BINDTODEVICE), as
/// keepalived 2.2.7's layer4.c does. Bound to the interface the route to the backend leaves
/// by, a TCP_CHECK and an HTTP_GET keep their real server; bound to the loopback, which has
/// no route to it, a TCP_CHECK takes it out.
#[test]
fn bind_if_ties_a_checkers_probe_to_its_interface() {
    require_root();
    let topo = LbTopology::new(1).unwrap();
    let dir = TempDir::new("chk-bindif");
    let b0 = backend4(0);
    let _http = HttpServer::start(&topo.backends[0], "be0", format!("{b0}:80").parse().unwrap(), None, None).unwrap();
    let route = topo.lb.sh(&format!("ip -o route get {b0}")).unwrap();
    let dev = route.split_whitespace().skip_while(|w| *w != "dev").nth(1).expect("a route to the backend").to_string();
    let service = |port: u16, check: &str| {
        format!(
            "virtual_server {VIP4} {port} {{\n    protocol TCP\n    delay_loop 1\n    lb_algo rr\n    lb_kind NAT\n    \
             real_server {b0} 80 {{\n{check}    }}\n}}\n"
        )
    };
    let tcp = |iface: &str| {
        format!(
            "        TCP_CHECK {{\n            bind_if {iface}\n            connect_timeout 1\n            retry 0\n        }}\n"
        )
    };
    let config = dir.file(
        "keepalived.conf",
        &[
            service(80, &tcp(&dev)),
            service(81, &tcp("lo")),
            service(
                82,
                &format!(
                    "        HTTP_GET {{\n            url {{\n                path /\n                status_code 200\n            \
                     }}\n            bind_if {dev}\n            connect_timeout 1\n            retry 0\n        }}\n"
                ),
            ),
        ]
        .concat(),
    );
    let pins = daemon::pin_dir("chk-bindif");
    let d = Daemon::start(&topo.lb, &config, &pins, &[]).unwrap();
    let svc = |port: u16| format!("{VIP4}:{port}/tcp");
    // Programmed (real servers start up), then the check bound to the loopback fails.
    assert!(eventually(Duration::from_secs(6), || !scheduled(&pins, &svc(80)).is_empty()), "{:#?}", d.log());
    assert!(eventually(Duration::from_secs(6), || scheduled(&pins, &svc(81)).is_empty()), "{:#?}", d.log());
    // A few more rounds of the checks bound to the backend's interface, each a pass.
    std::thread::sleep(Duration::from_secs(3));
    for port in [80, 82] {
        assert_eq!(scheduled(&pins, &svc(port)), reals(&[0], 80), "port {port}: {:#?}", d.log());
    }
}

/// `fwmark N` in a checker marks its probe's packets (SO_MARK), so policy routing steers the
/// probe as keepalived 2.2.7's layer4.c does. On the load balancer the backend is reachable
/// only through the table marked packets look up (the main table says unreachable). The
/// oracle: keepalived's own genhash (`keepalived -T`, its HTTP_GET code) reaches the server
/// with `-m 7` and not without. Then lb-daemon: the TCP_CHECK and HTTP_GET with `fwmark 7`
/// keep their real server, the TCP_CHECK without a mark takes it out.
#[test]
fn a_checkers_fwmark_steers_its_probe_by_policy_routing_as_keepalived() {
    require_root();
    let topo = LbTopology::new(1).unwrap();
    let dir = TempDir::new("chk-mark");
    let b0 = backend4(0);
    let _http = HttpServer::start(&topo.backends[0], "be0", format!("{b0}:80").parse().unwrap(), None, None).unwrap();
    let route = topo.lb.sh(&format!("ip -o route get {b0}")).unwrap();
    let dev = route.split_whitespace().skip_while(|w| *w != "dev").nth(1).expect("a route to the backend").to_string();
    for cmd in [
        format!("ip route add {b0}/32 dev {dev} table 107"),
        "ip rule add fwmark 7 lookup 107 pref 100".to_string(),
        format!("ip route add unreachable {b0}/32"),
        "sysctl -qw net.ipv4.conf.all.rp_filter=0".to_string(),
        format!("sysctl -qw net.ipv4.conf.{dev}.rp_filter=0"),
    ] {
        topo.lb.sh(&cmd).unwrap_or_else(|e| panic!("{cmd}: {e:#}"));
    }
    let digest = |cmd: &str| {
        let out = topo.lb.sh(&format!("{cmd} -s {b0} -p 80 -u / 2>&1")).unwrap_or_default();
        let hex = |w: &&str| w.len() == 32 && w.chars().all(|c| c.is_ascii_hexdigit());
        (out.lines().find_map(|l| l.split_whitespace().last().filter(hex).map(str::to_string)), out)
    };
    let (marked, out) = digest("keepalived -T -m 7");
    let marked = marked.unwrap_or_else(|| panic!("keepalived 2.2.7 with -m 7 did not reach the server:\n{out}"));
    let (unmarked, out) = digest("keepalived -T");
    assert!(unmarked.is_none(), "keepalived 2.2.7 without a mark reached the server:\n{out}");
    let lb = daemon::binary().unwrap().display().to_string();
    let ours = (digest(&format!("{lb} genhash -m 7")).0, digest(&format!("{lb} genhash")).0);
    assert_eq!(ours, (Some(marked.clone()), None), "lb-daemon genhash -m 7, then without");

    let service = |port: u16, check: &str| {
        format!(
            "virtual_server {VIP4} {port} {{\n    protocol TCP\n    delay_loop 1\n    lb_algo rr\n    lb_kind NAT\n    \
             real_server {b0} 80 {{\n{check}    }}\n}}\n"
        )
    };
    let config = dir.file(
        "keepalived.conf",
        &[
            service(80, "        TCP_CHECK {\n            fwmark 7\n            connect_timeout 1\n            retry 0\n        }\n"),
            service(81, "        TCP_CHECK {\n            connect_timeout 1\n            retry 0\n        }\n"),
            service(
                82,
                &format!(
                    "        HTTP_GET {{\n            url {{\n                path /\n                digest {marked}\n            }}\n            \
                     fwmark 7\n            connect_timeout 1\n            retry 0\n        }}\n"
                ),
            ),
        ]
        .concat(),
    );
    let pins = daemon::pin_dir("chk-mark");
    let d = Daemon::start(&topo.lb, &config, &pins, &[]).unwrap();
    let svc = |port: u16| format!("{VIP4}:{port}/tcp");
    assert!(eventually(Duration::from_secs(6), || scheduled(&pins, &svc(81)).is_empty()), "{:#?}", d.log());
    // A few more rounds of the marked checks, each a pass.
    std::thread::sleep(Duration::from_secs(3));
    for port in [80, 82] {
        assert_eq!(scheduled(&pins, &svc(port)), reals(&[0], 80), "port {port}: {:#?}", d.log());
    }
}

/// A CA and a client certificate it signed (rcgen), as PEM files in `dir`: (ca, cert, key).
fn client_pki(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "checker test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut client = CertificateParams::new(vec!["checker.example".to_string()]).unwrap();
    client.distinguished_name.push(DnType::CommonName, "lb-daemon checker");
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = client.signed_by(&key, &Issuer::new(ca, ca_key)).unwrap();
    let paths = (dir.join("ca.pem"), dir.join("client.pem"), dir.join("client-key.pem"));
    std::fs::write(&paths.0, ca_cert.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

/// The top-level `SSL` block (keepalived 2.2.7's check_ssl.c): SSL_GET presents its
/// certificate, with a key OpenSSL encrypted (PKCS#8, AES-256) that `password` opens. Against
/// a server that answers only clients its CA signed, an `alpha` real server comes up with
/// the block; a reload whose password opens nothing is refused and keeps it up; a reload
/// without the block takes it down. `-t` reads no SSL file, as keepalived's does not.
#[test]
fn ssl_block_presents_a_client_certificate() {
    require_root();
    let topo = LbTopology::new(1).unwrap();
    let dir = TempDir::new("chk-sslcli");
    let (server_cert, server_key) = self_signed(&dir);
    let (ca, cert, key) = client_pki(&dir);
    let encrypted = dir.join("client-key-enc.pem");
    let openssl = std::process::Command::new("openssl")
        .args(["pkey", "-aes256", "-passout", "pass:s3cret", "-in"])
        .arg(&key)
        .arg("-out")
        .arg(&encrypted)
        .output()
        .unwrap();
    assert!(openssl.status.success(), "openssl pkey: {}", String::from_utf8_lossy(&openssl.stderr));
    assert!(std::fs::read_to_string(&encrypted).unwrap().contains("BEGIN ENCRYPTED PRIVATE KEY"));
    // One file with the certificate and the encrypted key, as OpenSSL also reads it.
    let both = std::fs::read_to_string(&cert).unwrap() + &std::fs::read_to_string(&encrypted).unwrap();
    let encrypted = dir.file("client-key-enc.pem", &both);
    let b0 = backend4(0);
    let _https = HttpServer::start_requiring_client_cert(
        &topo.backends[0],
        "be0",
        format!("{b0}:443").parse().unwrap(),
        (&server_cert, &server_key),
        &ca,
    )
    .unwrap();
    let config = |password: Option<&str>| {
        let ssl = match password {
            Some(p) => format!(
                "SSL {{\n    password {p}\n    ca {}\n    certificate {}\n    key {}\n}}\n",
                ca.display(),
                cert.display(),
                encrypted.display()
            ),
            None => String::new(),
        };
        format!(
            "{ssl}virtual_server {VIP4} 443 {{\n    protocol TCP\n    delay_loop 1\n    lb_algo rr\n    lb_kind NAT\n    \
             real_server {b0} 443 {{\n        SSL_GET {{\n            url {{\n                path /health\n                \
             status_code 200\n            }}\n            alpha\n            connect_timeout 1\n            retry 0\n        \
             }}\n    }}\n}}\n"
        )
    };
    let path = dir.file("keepalived.conf", &config(Some("s3cret")));
    let pins = daemon::pin_dir("chk-sslcli");
    let d = Daemon::start(&topo.lb, &path, &pins, &[]).unwrap();
    let svc = format!("{VIP4}:443/tcp");
    let up = || scheduled(&pins, &svc) == reals(&[0], 443);
    assert!(eventually(Duration::from_secs(6), up), "the client certificate was not accepted: {:#?}", d.log());

    // A password that opens nothing: `-t` passes (it reads no SSL file), the reload is refused.
    std::fs::write(&path, config(Some("wrong"))).unwrap();
    let lb = daemon::binary().unwrap();
    let t = std::process::Command::new(&lb).arg("-t").arg("-f").arg(&path).output().unwrap();
    assert_eq!(t.status.code(), Some(0), "-t: {}", String::from_utf8_lossy(&t.stderr));
    d.signal(nix::sys::signal::Signal::SIGHUP).unwrap();
    assert!(d.wait_log("reload refused", Duration::from_secs(5)), "{:#?}", d.log());
    let refusal = d.log().into_iter().find(|l| l.contains("reload refused")).unwrap_or_default();
    assert!(refusal.contains("cannot decrypt") && refusal.contains("client-key-enc.pem"), "{refusal}");
    std::thread::sleep(Duration::from_secs(3));
    assert!(up(), "the refused reload changed the running checkers: {:#?}", d.log());

    // Without the block, SSL_GET presents no certificate and the server answers nothing. The
    // checker keeps running through the reload (keepalived replaces its SSL context under
    // running checkers), so the server goes only when a probe fails.
    std::fs::write(&path, config(None)).unwrap();
    d.signal(nix::sys::signal::Signal::SIGHUP).unwrap();
    assert!(d.wait_log("reload applied", Duration::from_secs(5)), "{:#?}", d.log());
    assert!(eventually(Duration::from_secs(6), || scheduled(&pins, &svc).is_empty()), "{:#?}", d.log());
    assert!(d.log().iter().any(|l| l.contains("real server DOWN") && l.contains("SSL_GET")), "{:#?}", d.log());
    drop(d);

    // A key file that is not there stops the start, naming it; `-P` (VRRP only, no checkers)
    // reads no SSL file, as keepalived's -P starts no checker process.
    let missing = dir.join("missing-key.pem");
    let broken = config(Some("s3cret")).replace(&encrypted.display().to_string(), &missing.display().to_string());
    std::fs::write(&path, broken).unwrap();
    let refused = Daemon::start(&topo.lb, &path, &daemon::pin_dir("chk-sslcli2"), &[]).err().map(|e| format!("{e:#}"));
    assert!(refused.as_deref().is_some_and(|e| e.contains("SSL key") && e.contains("missing-key.pem")), "{refused:?}");
    let vrrp_only = Daemon::start(&topo.lb, &path, &daemon::pin_dir("chk-sslcli3"), &["-P"]);
    assert!(vrrp_only.is_ok(), "-P read the SSL files: {:?}", vrrp_only.err());
}

/// HTTP_GET's way back (keepalived 2.2.7's check_http.c `epilog`): after the failure that
/// took a real server down, the url's next success only clears it, and the server comes
/// back on the success after, a `delay_loop` later; with `fast_recovery` that second check
/// runs at once. Two services check one backend whose /health fails and then passes: the
/// one with `fast_recovery` has it back while the other still waits for its next round.
#[test]
fn http_get_comes_back_after_a_second_pass_at_once_with_fast_recovery() {
    require_root();
    let topo = LbTopology::new(1).unwrap();
    let dir = TempDir::new("chk-fastrec");
    let status = dir.join("be0-status");
    let b0 = backend4(0);
    let _http =
        HttpServer::start(&topo.backends[0], "be0", format!("{b0}:80").parse().unwrap(), None, Some(&status)).unwrap();
    let service = |port: u16, fast: &str| {
        format!(
            "virtual_server {VIP4} {port} {{\n    protocol TCP\n    delay_loop 3\n    lb_algo rr\n    lb_kind NAT\n    \
             real_server {b0} 80 {{\n        HTTP_GET {{\n            url {{\n                path /health\n            \
             }}\n{fast}            connect_timeout 1\n            retry 0\n        }}\n    }}\n}}\n"
        )
    };
    let config = dir.file("keepalived.conf", &(service(80, "") + &service(8080, "            fast_recovery\n")));
    let pins = daemon::pin_dir("chk-fastrec");
    let d = Daemon::start(&topo.lb, &config, &pins, &[]).unwrap();
    let (slow, fast) = (format!("{VIP4}:80/tcp"), format!("{VIP4}:8080/tcp"));
    let up = |svc: &str| !scheduled(&pins, svc).is_empty();
    assert!(up(&slow) && up(&fast));
    std::fs::write(&status, "503").unwrap();
    assert!(eventually(Duration::from_secs(6), || !up(&slow) && !up(&fast)), "{:#?}", d.log());
    std::fs::remove_file(&status).unwrap();
    assert!(eventually(Duration::from_secs(6), || up(&fast)), "{:#?}", d.log());
    // Both checkers saw the pass in the same round; only fast_recovery checked again at once.
    assert!(!up(&slow), "without fast_recovery the server came back on its first pass: {:#?}", d.log());
    let passed_down = |svc_port: &str, pause: &str| {
        d.log().iter().any(|l| l.contains(svc_port) && l.contains(&format!("passed while down; next check in {pause}")))
    };
    assert!(passed_down(":8080", "0ns"), "{:#?}", d.log());
    assert!(passed_down(":80/", "3s"), "{:#?}", d.log());
    assert!(eventually(Duration::from_secs(5), || up(&slow)), "{:#?}", d.log());
    drop(d);
}
