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
    servers::{HttpServer, SmtpSink, http_ask},
};

fn reals(list: &[usize], port: u16) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|i| format!("{}:{port}", backend4(*i))).collect();
    v.sort();
    v
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
    let config = TempConfig::new(
        "chk-flap",
        &service_80(
            2,
            "        TCP_CHECK {
            connect_timeout 1
            retry 1
            delay_before_retry 1
        }
",
        ),
    );
    let _servers = backends_at(&topo, |i| (backend4(i), 80).into());
    let pins = daemon::pin_dir("chk-flap");
    let d = Daemon::start(&topo.lb, &config, &pins, &[]).unwrap();
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
    link(true);
    let up = Instant::now();
    assert!(d.wait_log("real server UP", Duration::from_secs(8)), "{:#?}", d.log());
    println!("link up -> checker UP in {:?}", up.elapsed());
    assert!(eventually(Duration::from_secs(2), || scheduled(&pins, &service) == reals(&[0, 1], 80)));

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
}
