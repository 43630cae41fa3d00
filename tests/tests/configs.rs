//! The shipped configs and the `--config-test` command line: every config in configs/ is
//! valid and parses to its golden JSON (tests/golden/), broken ones give keepalived's exit
//! codes with located messages, and docs/keywords.md matches the keyword tables.
//!
//! `LB_UPDATE_GOLDEN=1 cargo test -p lb-tests --test configs` rewrites the golden files.

use std::{path::Path, process::Command, time::Duration};

use lb_tests::prelude::*;

fn config_test(args: &[&str], file: &Path) -> (Option<i32>, String, String) {
    answer(Command::new(daemon::binary().unwrap()).arg("-t").args(args).arg("-f").arg(file).output().unwrap())
}

/// `config_test` in `ns`: `-t` looks the VRRP instances' interfaces up, as keepalived's does.
fn config_test_in(ns: &Netns, args: &[&str], file: &Path) -> (Option<i32>, String, String) {
    answer(ns.command(daemon::binary().unwrap()).arg("-t").args(args).arg("-f").arg(file).output().unwrap())
}

fn answer(out: std::process::Output) -> (Option<i32>, String, String) {
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A namespace with an interface for each one the VRRP instances of `files` name.
fn ns_with_interfaces_of(tag: &str, files: &[&Path]) -> Netns {
    let names = std::cell::RefCell::new(std::collections::BTreeSet::new());
    for f in files {
        let l = lb_daemon::config::load(f, lb_daemon::config::BackendKind::Auto).unwrap();
        // Every name it asks about, answered "missing" so that it asks about all of them.
        lb_daemon::config::validate::missing_interfaces(&l.config, |n| {
            names.borrow_mut().insert(n.to_string());
            lb_daemon::config::validate::Iface::Missing
        });
    }
    let ns = Netns::new(tag).unwrap();
    // veth pairs: this kernel has no dummy interfaces.
    for (i, n) in names.into_inner().into_iter().enumerate() {
        ns.sh(&format!("ip link add {n} type veth peer name peer{i} && ip link set {n} up")).unwrap();
    }
    ns
}

#[test]
fn shipped_configs_pass_and_match_their_golden_model() {
    let root = workspace_root();
    let mut checked = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(root.join("configs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    entries.sort();
    let ns = ns_with_interfaces_of("kashipped", &entries.iter().map(|p| p.as_path()).collect::<Vec<_>>());
    for path in entries {
        let (code, json, stderr) = config_test_in(&ns, &["--json"], &path);
        assert_eq!(code, Some(0), "{}: {stderr}", path.display());
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        golden(&root.join("tests/golden/configs").join(format!("{name}.json")), &json);
        checked.push(name);
    }
    for must in ["keepalived-guide", "demo", "nat", "dr", "tun", "http-check", "ssl-check", "tcp-check", "misc-check"] {
        assert!(checked.iter().any(|c| c == must), "configs/{must}.conf missing");
    }
}

#[test]
fn broken_configs_exit_5_with_located_errors_and_missing_files_exit_4() {
    let dir = TempDir::new("cfg");
    let bad = dir.file("bad.conf", "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 51\n  priority 256\n  nopreempt yes\n}\nvirtual_servr 203.0.113.10 80 {\n}\n");
    let (code, _, stderr) = config_test(&[], &bad);
    assert_eq!(code, Some(5), "{stderr}");
    let name = bad.display();
    for want in [
        format!("{name}:4:12: error: `priority` must be between 1 and 255, not 256"),
        format!("{name}:5:13: warning: `nopreempt` takes no argument"),
        format!("{name}:7:1: error: unknown keyword `virtual_servr` in the top level; did you mean `virtual_server`?"),
        format!("{name}: 2 error(s)"),
    ] {
        assert!(stderr.contains(&want), "missing {want:?} in:\n{stderr}");
    }
    assert!(stderr.contains("  |   priority 256\n  |            ^^^"), "no caret under the value:\n{stderr}");

    let (code, _, stderr) = config_test(&[], &dir.join("nonexistent.conf"));
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stderr.contains("cannot read configuration file"), "{stderr}");

    // The BPF backend refuses what only IPVS can run, naming the alternative.
    let sed = dir.file("sed.conf", "virtual_server 203.0.113.10 80 {\n protocol TCP\n  lb_algo sed\n}\n");
    let (code, _, stderr) = config_test(&["--backend", "bpf"], &sed);
    assert_eq!(code, Some(5), "{stderr}");
    assert!(stderr.contains("cannot run scheduler sed") && stderr.contains("--backend ipvs"), "{stderr}");
    assert_eq!(config_test(&["--backend", "ipvs"], &sed).0, Some(0));
}

#[test]
fn keyword_status_document_is_current() {
    let doc = lb_daemon::config::docs::keyword_status();
    golden(&workspace_root().join("docs/keywords.md"), &doc);
    for kw in ["virtual_ipaddress", "lb_algo", "lvs_sched", "nb_get_retry", "HTTP_GET", "include"] {
        assert!(doc.contains(&format!("| `{kw}`")), "{kw} not listed as parsed");
    }
}

/// keepalived's command-line spellings: the seed guide's `-D -d -S 2`, `-n`, `-v`, `-P`, `-C`.
#[test]
fn keepalived_command_line_spellings() {
    let bin = daemon::binary().unwrap();
    let guide = workspace_root().join("configs/keepalived-guide.conf");
    let ns = ns_with_interfaces_of("kaguide", &[&guide]);
    let out = ns.command(&bin).args(["-D", "-d", "-S", "2", "-n", "-t", "-f"]).arg(&guide).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("virtual_servers"), "-d prints the model");
    let out = Command::new(&bin).arg("-v").output().unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("lb-daemon"));
    let out = Command::new(&bin).args(["-S", "9", "-t", "-f"]).arg(&guide).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "bad facility is a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a syslog facility"));
    // -P (VRRP only) and -C (checkers only) are accepted with a config test too.
    for flag in ["-P", "-C"] {
        let out = ns.command(&bin).args([flag, "-t", "-f"]).arg(&guide).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{flag}: {}", String::from_utf8_lossy(&out.stderr));
    }
    // keepalived's -t looks the instances' interfaces up (eth0, eth1 here); -C runs no VRRP.
    let out = Command::new(&bin).args(["-t", "-f"]).arg(&guide).output().unwrap();
    let here = |n: &str| nix::net::if_::if_nametoindex(n).is_ok();
    if !here("eth0") || !here("eth1") {
        assert_eq!(out.status.code(), Some(5), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stderr).contains("Non-existent interface specified in configuration"));
        let out = Command::new(&bin).args(["-C", "-t", "-f"]).arg(&guide).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "-C: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// keepalived accepts these (its own `-t` is the oracle) and acts on them; this version does
/// not act on them yet, so `-t` refuses them (exit 5) with what to use instead rather than
/// starting with a real server or node that keepalived would treat differently.
#[test]
fn keywords_that_change_traffic_are_refused_where_keepalived_acts_on_them() {
    // FILE_CHECK, track_file on a sync group and lvs_flush were here until they were acted
    // on (checkers.rs, vrrp.rs, ipvs.rs; the corpus has them).
    let cases = [(
        "use_vmac_addr",
        "vrrp_instance VI_1 {\n interface v0\n virtual_router_id 1\n priority 100\n use_vmac\n use_vmac_addr\n \
         virtual_ipaddress {\n  192.0.2.50/24\n }\n}\n",
    )];
    // keepalived checks the interface exists: it runs where there is one.
    let ns = Netns::new("kacfg").unwrap();
    ns.sh("ip link add v0 type veth peer name v1 && ip link set v0 up").unwrap();
    for (word, text) in cases {
        let dir = TempDir::new("refused");
        let file = dir.file("keepalived.conf", text);
        let theirs = ns.command("keepalived").args(["-t", "-f"]).arg(&file).output().unwrap();
        assert_eq!(theirs.status.code(), Some(0), "keepalived 2.2.7 accepts {word}: {theirs:?}");
        let (code, _, err) = config_test_in(&ns, &[], &file);
        assert_eq!(code, Some(5), "{word}: {err}");
        assert!(err.contains(&format!("`{word}` in")) && err.contains("changes who gets traffic"), "{err}");
    }
}

/// UDP_CHECK, DNS_CHECK, PING_CHECK and SMTP_CHECK blocks: keepalived 2.2.7's `-t` (the
/// oracle) and ours accept and refuse the same ones.
#[test]
fn udp_dns_ping_smtp_checker_configs_get_keepalived_verdicts() {
    let rs = |body: &str| {
        format!(
            "virtual_server 192.0.2.10 53 {{\n lb_algo rr\n lb_kind NAT\n protocol UDP\n \
             real_server 198.51.100.11 53 {{\n{body}\n }}\n}}\n"
        )
    };
    let cases = [
        ("UDP_CHECK {\n payload 01 02 0304\n require_reply 6x 02\n min_reply_length 2\n max_reply_length 9\n}", true),
        ("UDP_CHECK {\n require_reply\n connect_port 54\n bindto 198.51.100.1\n}", true),
        ("UDP_CHECK {\n payload 0g\n}", false),
        ("UDP_CHECK {\n require_reply zz\n}", false),
        ("UDP_CHECK {\n min_reply_length 9\n max_reply_length 8\n}", false),
        ("DNS_CHECK {\n type aaaa\n name www.example.com.\n retry 2\n}", true),
        ("DNS_CHECK {\n type PTR\n}", false),
        ("DNS_CHECK {\n name a..b\n}", false),
        ("DNS_CHECK {\n name .a\n}", false),
        ("PING_CHECK {\n connect_ip 198.51.100.12\n connect_timeout 2\n}", true),
        (
            "SMTP_CHECK {\n helo_name me.example\n host {\n  connect_port 25\n }\n host {\n  \
             connect_ip 198.51.100.12\n  connect_timeout 2\n }\n}",
            true,
        ),
        ("SMTP_CHECK {\n connect_port 25\n}", true),
    ];
    let dir = TempDir::new("newchk");
    for (i, (body, valid)) in cases.iter().enumerate() {
        let file = dir.file(&format!("k{i}.conf"), &rs(body));
        let theirs = Command::new("keepalived").args(["-t", "-f"]).arg(&file).output().unwrap();
        let want = if *valid { 0 } else { 5 };
        assert_eq!(theirs.status.code(), Some(want), "keepalived 2.2.7 on\n{body}\n{theirs:?}");
        let (code, _, err) = config_test(&[], &file);
        assert_eq!(code, Some(want), "ours on\n{body}\n{err}");
    }
}

/// The checker defaults keepalived inherits from real_server and virtual_server blocks,
/// the real server's own alpha, inhibit_on_failure, lvs_method, virtualhost, connection
/// thresholds, lvs_timeouts and the sorry server's method and port: keepalived 2.2.7's `-t`
/// verdict for each, the same here
/// with `--backend ipvs`; with `--backend bpf` what the XDP data plane cannot do (thresholds,
/// a second forwarding method, timeouts) is refused, naming `--backend ipvs`.
#[test]
fn inherited_checker_defaults_get_keepalived_s_verdict() {
    let vs = |vs_lines: &str, rs_lines: &str| {
        format!(
            "virtual_server 192.0.2.10 80 {{\n lb_algo rr\n lb_kind NAT\n protocol TCP\n{vs_lines}\n \
             real_server 198.51.100.11 80 {{\n{rs_lines}\n  TCP_CHECK {{\n  }}\n }}\n}}\n"
        )
    };
    let all_vs = " retry 3\n delay_before_retry 2\n connect_timeout 4\n warmup 1\n inhibit_on_failure";
    let all_rs = "  retry 2\n  delay_before_retry 1\n  connect_timeout 2\n  delay_loop 3\n  warmup 0\n  alpha\n  \
                  inhibit_on_failure false\n  virtualhost rs.example\n  lvs_method NAT";
    let timeouts = "global_defs {\n lvs_timeouts tcp 900 tcpfin 30 udp 60\n}\n";
    // (what, config, keepalived's and our -t verdict with --backend ipvs, refused with bpf)
    let cases = [
        ("every default", vs(all_vs, all_rs), 0, None),
        ("lvs_method DR under lb_kind NAT", vs("", "  lvs_method DR"), 0, Some("lvs_method DR differs")),
        ("thresholds", vs("", "  uthreshold 100\n  lthreshold 50"), 0, Some("uthreshold / lthreshold")),
        ("lvs_timeouts", format!("{timeouts}{}", vs("", "")), 0, Some("lvs_timeouts sets IPVS")),
        (
            "checker alpha",
            vs("", "").replace("TCP_CHECK {\n", "TCP_CHECK {\n   alpha\n   retry 0\n   delay_before_retry 0\n"),
            0,
            None,
        ),
        ("real_server retry 0", vs("", "  retry 0"), 5, None),
        ("virtual_server retry 0", vs(" retry 0", ""), 5, None),
        ("real_server connect_timeout 0", vs("", "  connect_timeout 0"), 5, None),
        ("real_server delay_loop 0", vs("", "  delay_loop 0"), 5, None),
        ("alpha maybe", vs("", "  alpha maybe"), 5, None),
        ("lvs_method XX", vs("", "  lvs_method XX"), 5, None),
        (
            "sorry_server_lvs_method DR under lb_kind NAT",
            vs(" sorry_server 198.51.100.99 80\n sorry_server_lvs_method DR", ""),
            0,
            Some("forwarded by DR"),
        ),
        (
            "sorry_server_lvs_method before sorry_server",
            vs(" sorry_server_lvs_method DR\n sorry_server 198.51.100.99 80", ""),
            5,
            None,
        ),
        ("sorry_server_lvs_method XX", vs(" sorry_server 198.51.100.99 80\n sorry_server_lvs_method XX", ""), 5, None),
        // keepalived's sorry server takes lb_kind as it stands at its line.
        (
            "lb_kind DR after a NAT sorry server",
            vs(" sorry_server 198.51.100.99 8080\n lb_kind DR", ""),
            0,
            Some("forwarded by NAT"),
        ),
        ("a NAT sorry server on another port", vs(" sorry_server 198.51.100.99 8080", ""), 0, None),
        // IPVS keeps the sorry server's connections going above quorum; XDP does not track them.
        (
            "sorry_server_inhibit",
            vs(" sorry_server 198.51.100.99 80\n sorry_server_inhibit", ""),
            0,
            Some("sorry_server_inhibit keeps"),
        ),
        ("persistence_engine sip", vs(" persistence_engine sip", ""), 0, Some("persistence_engine sip")),
        // keepalived joins the group's real servers to 192.0.2.10:80's IPVS service.
        (
            "a group address an earlier virtual_server has",
            format!(
                "{}virtual_server_group g {{\n 192.0.2.10 80\n 192.0.2.11 80\n}}\n\
                 virtual_server group g {{\n lb_algo rr\n lb_kind NAT\n protocol TCP\n real_server 198.51.100.12 80 {{\n }}\n}}\n",
                vs("", "")
            ),
            0,
            Some("an address or mark an earlier virtual_server has"),
        ),
        ("a persistence_engine name too long", vs(" persistence_engine sip0123456789abcd", ""), 5, None),
    ];
    let ns = Netns::new("kainh").unwrap();
    for (what, text, verdict, bpf_refusal) in cases {
        let dir = TempDir::new("inherit");
        let file = dir.file("keepalived.conf", &text);
        let theirs = ns.command("keepalived").args(["-t", "-f"]).arg(&file).output().unwrap();
        assert_eq!(theirs.status.code(), Some(verdict), "keepalived 2.2.7, {what}: {theirs:?}");
        let (code, _, err) = config_test_in(&ns, &["--backend", "ipvs"], &file);
        assert_eq!(code, Some(verdict), "{what}: {err}");
        if verdict != 0 {
            assert!(err.contains("keepalived.conf:"), "{what}: the error is located: {err}");
            continue;
        }
        let (code, _, err) = config_test_in(&ns, &["--backend", "bpf"], &file);
        match bpf_refusal {
            Some(why) => {
                assert_eq!(code, Some(5), "{what}: {err}");
                assert!(err.contains(why) && err.contains("use --backend ipvs"), "{what}: {err}");
            }
            None => assert_eq!(code, Some(0), "{what}: {err}"),
        }
    }
    // DR and TUN send to the service's port: keepalived resets another with its warning, which
    // fails its -t (as every report_config_error does); here the same warning, and -t passes
    // (tests/tests/corpus.rs: ours fails on errors only). ipvs.rs's `sorry` scenario runs it.
    let reset = [
        (
            "a DR sorry server",
            vs(" lb_kind DR\n sorry_server 198.51.100.99 8080", ""),
            "and sorry server ports don't match - resetting",
        ),
        (
            "a DR real server",
            vs("", "  lvs_method DR").replace("real_server 198.51.100.11 80", "real_server 198.51.100.11 8080"),
            "and real server [198.51.100.11]:tcp:8080 ports don't match - resetting",
        ),
        // keepalived ignores it: it would set it on a sorry server there is none of yet.
        (
            "sorry_server_inhibit without a sorry server",
            vs(" sorry_server_inhibit", ""),
            "Ignoring sorry_server inhibit used before or without sorry_server",
        ),
        (
            "sorry_server_inhibit before the sorry server",
            vs(" sorry_server_inhibit\n sorry_server 198.51.100.99 80", ""),
            "Ignoring sorry_server inhibit used before or without sorry_server",
        ),
    ];
    for (what, text, words) in reset {
        let dir = TempDir::new("inherit");
        let file = dir.file("keepalived.conf", &text);
        let theirs = ns.command("keepalived").args(["-t", "-f"]).arg(&file).output().unwrap();
        let their_err = String::from_utf8_lossy(&theirs.stderr);
        assert!(theirs.status.code() == Some(5) && their_err.contains(words), "keepalived 2.2.7, {what}: {theirs:?}");
        let (code, _, err) = config_test_in(&ns, &["--backend", "ipvs"], &file);
        assert_eq!(code, Some(0), "{what}: {err}");
        assert!(err.contains("warning") && err.contains(words), "{what}: {err}");
        if what.starts_with("sorry_server_inhibit") {
            // Ignored, so nothing for the XDP data plane to refuse.
            let (code, _, err) = config_test_in(&ns, &["--backend", "bpf"], &file);
            assert_eq!(code, Some(0), "{what}: {err}");
        }
    }
    // A GUE tunnel keepalived would program: sent as IPIP it would fail open, so it is refused.
    let dir = TempDir::new("inherit");
    let file = dir.file("keepalived.conf", &vs(" lb_kind TUN", "  lvs_method TUN type gue port 6080"));
    let theirs = ns.command("keepalived").args(["-t", "-f"]).arg(&file).output().unwrap();
    assert_eq!(theirs.status.code(), Some(0), "keepalived 2.2.7 accepts a GUE tunnel: {theirs:?}");
    let (code, _, err) = config_test_in(&ns, &["--backend", "ipvs"], &file);
    assert_eq!(code, Some(5), "{err}");
    assert!(err.contains("keepalived.conf:") && err.contains("only IPIP tunnels"), "{err}");
}

/// A templated configuration (parameters, a multi-line definition, conditional lines for an id
/// and for every other id, `~SEQ`) gets keepalived 2.2.7's verdict for each config id, and the
/// model it means.
#[test]
fn templates_mean_what_keepalived_makes_of_them() {
    let text = "$VIP=192.0.2.10\n@main $PRIO=150\n@backup $PRIO=100\n@main $ADV=1\n@^main $ADV=3\n\
                $RS= \\\n    real_server 198.51.100.${N} 80 { \\\n        weight ${N} \\\n    }\n\
                vrrp_instance VI_1 {\n    state BACKUP\n    interface v0\n    virtual_router_id 51\n    \
                priority $PRIO\n    advert_int $ADV\n    virtual_ipaddress {\n        ${VIP}\n    }\n}\n\
                virtual_server ${VIP} 80 {\n    lb_algo rr\n    lb_kind NAT\n    protocol TCP\n    \
                ~SEQ(N, 11, 13) $RS\n}\n";
    let dir = TempDir::new("template");
    let file = dir.file("keepalived.conf", text);
    let ns = Netns::new("katpl").unwrap();
    ns.sh("ip link add v0 type veth peer name v1 && ip link set v0 up").unwrap();
    for (id, verdict, priority, advert_cs) in
        [("main", 0, Some(150), 100), ("backup", 0, Some(100), 300), ("other", 5, None, 300)]
    {
        let theirs = ns.command("keepalived").args(["-t", "-i", id, "-f"]).arg(&file).output().unwrap();
        assert_eq!(theirs.status.code(), Some(verdict), "keepalived -i {id}: {theirs:?}");
        let (code, out, err) = config_test_in(&ns, &["-i", id, "--json"], &file);
        assert_eq!(code, Some(verdict), "-i {id}: {err}");
        let Some(priority) = priority else {
            assert!(err.contains("keepalived.conf:14:"), "the error is on the line as written: {err}");
            continue;
        };
        let model: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(model["vrrp_instances"][0]["priority"], priority, "-i {id}");
        assert_eq!(model["vrrp_instances"][0]["advert_int_cs"], advert_cs, "-i {id}: `@^main` is every id but main");
        assert_eq!(model["vrrp_instances"][0]["virtual_ipaddress"][0]["addr"], "192.0.2.10", "{model:#}");
        let reals: Vec<(String, u64)> = model["virtual_servers"][0]["real_servers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["addr"].as_str().unwrap().to_string(), r["weight"].as_u64().unwrap()))
            .collect();
        assert_eq!(
            reals,
            [
                ("198.51.100.11:80".to_string(), 11),
                ("198.51.100.12:80".to_string(), 12),
                ("198.51.100.13:80".to_string(), 13)
            ]
        );
    }
}

/// One virtual address in two instances: keepalived 2.2.7 accepts it (with a warning), so
/// `-t` does too (vrrp.rs shows the address staying while either instance is master).
#[test]
fn one_address_in_two_instances_passes_as_in_keepalived() {
    let text = "vrrp_instance A {\n interface v0\n virtual_router_id 1\n priority 100\n virtual_ipaddress {\n  192.0.2.10\n }\n}\n\
                vrrp_instance B {\n interface v0\n virtual_router_id 2\n priority 100\n virtual_ipaddress {\n  192.0.2.10\n }\n}\n";
    let dir = TempDir::new("dupvip");
    let file = dir.file("keepalived.conf", text);
    let ns = Netns::new("kadup").unwrap();
    ns.sh("ip link add v0 type veth peer name v1 && ip link set v0 up").unwrap();
    let theirs = ns.command("keepalived").args(["-t", "-f"]).arg(&file).output().unwrap();
    assert_eq!(theirs.status.code(), Some(0), "{theirs:?}");
    let (code, _, err) = config_test_in(&ns, &[], &file);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("warning: virtual address 192.0.2.10 is also in vrrp_instance A"), "{err}");
}

/// IPVS scheduler flags (`sh-port`, `sh-fallback`, `mh-port`, `mh-fallback`, `flag-1`..`3`):
/// keepalived 2.2.7's `-t` verdict for each placement, the same here with either backend,
/// and the kernel bits the model keeps (xdp_forward.rs and ipvs/tests.rs show their effect).
#[test]
fn scheduler_flags_get_keepalived_s_verdict() {
    let cases = [
        (" lb_algo sh\n sh-port\n sh-fallback", 0, Some(0x18)),
        (" lb_algo mh\n mh-port\n mh-fallback", 0, Some(0x18)),
        (" lb_algo rr\n flag-1\n flag-2\n flag-3", 0, Some(0x38)),
        (" lb_algo mh\n sh-port", 0, Some(0)),
        (" lb_algo sh\n sh-port\n lb_algo rr", 0, Some(0x10)),
        (" sh-port\n lb_algo sh", 5, None),
        (" lb_algo rr\n mh-fallback", 5, None),
    ];
    let ns = Netns::new("kaflags").unwrap();
    ns.sh("ip link add v0 type veth peer name v1 && ip link set v0 up").unwrap();
    for (body, verdict, flags) in cases {
        let text = format!(
            "virtual_server 192.0.2.10 80 {{\n protocol TCP\n lb_kind NAT\n{body}\n real_server 198.51.100.11 80 {{\n }}\n}}\n"
        );
        let dir = TempDir::new("flags");
        let file = dir.file("keepalived.conf", &text);
        let theirs = ns.command("keepalived").args(["-t", "-f"]).arg(&file).output().unwrap();
        assert_eq!(theirs.status.code(), Some(verdict), "keepalived 2.2.7 on {body:?}: {theirs:?}");
        for backend in ["bpf", "ipvs"] {
            let (code, out, err) = config_test_in(&ns, &["--backend", backend, "--json"], &file);
            assert_eq!(code, Some(verdict), "{body:?} --backend {backend}: {err}");
            if let Some(flags) = flags {
                let model: serde_json::Value = serde_json::from_str(&out).unwrap();
                assert_eq!(model["virtual_servers"][0]["sched_flags"], flags, "{body:?}");
            } else {
                assert!(err.contains("keepalived.conf:") && err.contains("applies only to lb_algo"), "{err}");
            }
        }
    }
}

/// `real_server ADDRESS` without a port: keepalived 2.2.7 accepts it in every kind of
/// virtual_server; so does `-t` here, with the port keepalived gives it (the service's, or 0
/// for fwmark and group services: the packet's destination port).
#[test]
fn a_real_server_without_a_port_gets_keepalived_s_verdict() {
    let cases = [
        ("virtual_server fwmark 7 {\n lb_algo rr\n lb_kind NAT\n real_server 198.51.100.11 {\n }\n}\n", "ipvs", 0),
        ("virtual_server fwmark 7 {\n lb_algo rr\n lb_kind DR\n real_server 2001:db8::11 {\n }\n}\n", "ipvs", 0),
        (
            "virtual_server_group g {\n 192.0.2.10 80\n}\nvirtual_server group g {\n protocol TCP\n lb_algo rr\n lb_kind NAT\n \
             real_server 198.51.100.11 {\n }\n}\n",
            "bpf",
            0,
        ),
        (
            "virtual_server 192.0.2.10 80 {\n protocol TCP\n lb_algo rr\n lb_kind NAT\n real_server 198.51.100.11 {\n }\n}\n",
            "bpf",
            80,
        ),
    ];
    let ns = Netns::new("kanoport").unwrap();
    ns.sh("ip link add v0 type veth peer name v1 && ip link set v0 up").unwrap();
    for (text, backend, port) in cases {
        let dir = TempDir::new("noport");
        let file = dir.file("keepalived.conf", text);
        let theirs = ns.command("keepalived").args(["-t", "-f"]).arg(&file).output().unwrap();
        assert_eq!(theirs.status.code(), Some(0), "keepalived 2.2.7 accepts {text:?}: {theirs:?}");
        let (code, out, err) = config_test_in(&ns, &["--backend", backend, "--json"], &file);
        assert_eq!(code, Some(0), "{text:?}: {err}");
        let model: serde_json::Value = serde_json::from_str(&out).unwrap();
        let addr = model["virtual_servers"][0]["real_servers"][0]["addr"].as_str().unwrap().to_string();
        assert!(addr.ends_with(&format!(":{port}")), "{text:?}: {addr}");
    }
}

/// keepalived 2.2.7 reads a route's words in any order (the older `src ADDRESS DEST ...`):
/// `-t` gives its verdict on each form, including the ones it rejects (no destination,
/// `to TYPE DEST`). `or` is read by both (two next hops) with a deprecation warning, which
/// fails keepalived's `-t` and not ours (warnings do not fail ours; tests/tests/corpus.rs).
#[test]
fn route_forms_get_keepalived_s_verdict() {
    // (route, keepalived's verdict, ours)
    let cases = [
        ("src 192.0.2.2 198.51.100.0/24 via 192.0.2.1 dev v0", 0, 0),
        ("src 192.0.2.2 to 198.51.100.0/24 via 192.0.2.1 dev v0", 0, 0),
        ("via 192.0.2.1 198.51.100.0/24 dev v0", 0, 0),
        ("metric 5 table 100 198.51.100.0/24 via 192.0.2.1 dev v0", 0, 0),
        ("198.51.100.0/24 203.0.113.0/24 via 192.0.2.1 dev v0", 0, 0),
        ("198.51.100.0/24 no_track nexthop via 192.0.2.1 dev v0 nexthop via 192.0.2.3 dev v0 weight 2", 0, 0),
        ("198.51.100.0/24 nexthop via 192.0.2.1 dev v0 nexthop via 192.0.2.3 dev v0", 5, 0),
        ("198.51.100.0/24 via 192.0.2.1 or 192.0.2.3 dev v0", 5, 0),
        ("via 192.0.2.1 dev v0", 5, 5),
        ("to blackhole 198.51.100.0/24 dev v0", 5, 5),
    ];
    let ns = Netns::new("karoute").unwrap();
    ns.sh("ip link add v0 type veth peer name v1 && ip link set v0 up && ip addr add 192.0.2.2/24 dev v0").unwrap();
    for (route, verdict, ours) in cases {
        let dir = TempDir::new("route");
        let file = dir.file("keepalived.conf", &format!("static_routes {{\n {route}\n}}\n"));
        let theirs = ns.command("keepalived").args(["-t", "-f"]).arg(&file).output().unwrap();
        assert_eq!(theirs.status.code(), Some(verdict), "keepalived 2.2.7 on {route:?}: {theirs:?}");
        let (code, _, err) = config_test_in(&ns, &[], &file);
        assert_eq!(code, Some(ours), "{route:?}: {err}");
        if ours != 0 {
            assert!(err.contains("keepalived.conf:2:"), "located: {err}");
        }
    }
}

/// The same static_routes, written in keepalived's older orders, installed by keepalived
/// 2.2.7 on one node and by lb-daemon on another: `ip route` shows the same routes.
#[test]
fn older_route_orders_program_what_keepalived_programs() {
    require_root();
    let seg = Segment::new(2).unwrap();
    let gw = CLIENT4;
    let conf = |vrid: u8| {
        format!(
            "static_routes {{\n    src 198.51.100.5 203.0.113.0/26 via {gw} dev l0\n    \
             src 198.51.100.5 to 203.0.113.64/26 via {gw} dev l0 metric 7\n    \
             via {gw} 203.0.113.128/26 dev l0\n    dev l0 metric 5 src 198.51.100.5 203.0.113.192/26 via {gw}\n}}\n\
             vrrp_instance VI_1 {{\n    state BACKUP\n    interface l0\n    virtual_router_id {vrid}\n    \
             priority 100\n    advert_int 1\n    virtual_ipaddress {{\n        192.0.2.{vrid}/24\n    }}\n}}\n"
        )
    };
    for n in &seg.nodes {
        n.ip(&["addr", "add", "198.51.100.5/32", "dev", "lo"]).unwrap();
    }
    let dir = TempDir::new("routes-ka");
    let kconf = dir.file("keepalived.conf", &conf(201));
    let _k = Keepalived::start(&seg.nodes[0], &kconf, &dir, "ka").unwrap();
    let ours = dir.file("lb.conf", &conf(202));
    let pins = daemon::pin_dir(&format!("{}-routes", dir.tag()));
    let _d = Daemon::start(&seg.nodes[1], &ours, &pins, &["--interface", "l0"]).unwrap();
    let routes = |i: usize| -> Vec<String> {
        let out = seg.nodes[i].ip(&["route", "show"]).unwrap();
        let mut v: Vec<String> =
            out.lines().filter(|l| l.starts_with("203.0.113.")).map(|l| l.trim().to_string()).collect();
        v.sort();
        v
    };
    assert!(
        eventually(Duration::from_secs(5), || routes(0).len() == 4 && routes(1).len() == 4),
        "{:?} {:?}",
        routes(0),
        routes(1)
    );
    assert_eq!(routes(1), routes(0), "lb-daemon (left) and keepalived (right)");
    assert!(routes(0).iter().filter(|r| r.contains("src 198.51.100.5")).count() == 3, "{:?}", routes(0));
}
