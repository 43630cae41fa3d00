//! The shipped configs and the `--config-test` command line: every config in configs/ is
//! valid and parses to its golden JSON (tests/golden/), broken ones give keepalived's exit
//! codes with located messages, and docs/keywords.md matches the keyword tables.
//!
//! `LB_UPDATE_GOLDEN=1 cargo test -p lb-tests --test configs` rewrites the golden files.

use std::{path::Path, process::Command};

use lb_tests::prelude::*;

fn config_test(args: &[&str], file: &Path) -> (Option<i32>, String, String) {
    let out = Command::new(daemon::binary().unwrap()).arg("-t").args(args).arg("-f").arg(file).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn shipped_configs_pass_and_match_their_golden_model() {
    let root = workspace_root();
    let mut checked = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(root.join("configs")).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries.into_iter().filter(|p| p.extension().is_some_and(|e| e == "conf")) {
        let (code, json, stderr) = config_test(&["--json"], &path);
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
    let sed = dir.file("sed.conf", "virtual_server 203.0.113.10 80 {\n  lb_algo sed\n}\n");
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
    let out = Command::new(&bin).args(["-D", "-d", "-S", "2", "-n", "-t", "-f"]).arg(&guide).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("virtual_servers"), "-d prints the model");
    let out = Command::new(&bin).arg("-v").output().unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("lb-daemon"));
    let out = Command::new(&bin).args(["-S", "9", "-t", "-f"]).arg(&guide).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "bad facility is a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a syslog facility"));
    // -P (VRRP only) and -C (checkers only) are accepted with a config test too.
    for flag in ["-P", "-C"] {
        let out = Command::new(&bin).args([flag, "-t", "-f"]).arg(&guide).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{flag}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// keepalived accepts these (its own `-t` is the oracle) and acts on them; this version does
/// not act on them yet, so `-t` refuses them (exit 5) with what to use instead rather than
/// starting with a real server or node that keepalived would treat differently.
#[test]
fn keywords_that_change_traffic_are_refused_where_keepalived_acts_on_them() {
    let cases = [
        (
            "UDP_CHECK",
            "virtual_server 192.0.2.10 53 {\n lb_algo rr\n lb_kind NAT\n protocol UDP\n \
             real_server 198.51.100.11 53 {\n  UDP_CHECK {\n   connect_timeout 2\n  }\n }\n}\n",
        ),
        (
            "track_file",
            "vrrp_track_file f1 {\n file /tmp/lb-never-there\n}\nvrrp_instance VI_1 {\n state BACKUP\n \
             interface v0\n virtual_router_id 51\n priority 100\n track_file {\n  f1\n }\n \
             virtual_ipaddress {\n  192.0.2.10\n }\n}\n",
        ),
        (
            "inhibit_on_failure",
            "virtual_server 192.0.2.10 80 {\n lb_algo rr\n lb_kind NAT\n protocol TCP\n inhibit_on_failure\n \
             real_server 198.51.100.11 80 {\n  TCP_CHECK {\n  }\n }\n}\n",
        ),
    ];
    // keepalived checks the interface exists: it runs where there is one.
    let ns = Netns::new("kacfg").unwrap();
    ns.sh("ip link add v0 type veth peer name v1 && ip link set v0 up").unwrap();
    for (word, text) in cases {
        let dir = TempDir::new("refused");
        let file = dir.file("keepalived.conf", text);
        let theirs = ns.command("keepalived").args(["-t", "-f"]).arg(&file).output().unwrap();
        assert_eq!(theirs.status.code(), Some(0), "keepalived 2.2.7 accepts {word}: {theirs:?}");
        let (code, _, err) = config_test(&[], &file);
        assert_eq!(code, Some(5), "{word}: {err}");
        assert!(err.contains(&format!("`{word}` in")) && err.contains("changes who gets traffic"), "{err}");
    }
}

/// A templated configuration (parameters, a multi-line definition, conditional lines, `~SEQ`)
/// gets keepalived 2.2.7's verdict for each config id, and the model it means.
#[test]
fn templates_mean_what_keepalived_makes_of_them() {
    let text = "$VIP=192.0.2.10\n@main $PRIO=150\n@backup $PRIO=100\n\
                $RS= \\\n    real_server 198.51.100.${N} 80 { \\\n        weight ${N} \\\n    }\n\
                vrrp_instance VI_1 {\n    state BACKUP\n    interface v0\n    virtual_router_id 51\n    \
                priority $PRIO\n    virtual_ipaddress {\n        ${VIP}\n    }\n}\n\
                virtual_server ${VIP} 80 {\n    lb_algo rr\n    lb_kind NAT\n    protocol TCP\n    \
                ~SEQ(N, 11, 13) $RS\n}\n";
    let dir = TempDir::new("template");
    let file = dir.file("keepalived.conf", text);
    let ns = Netns::new("katpl").unwrap();
    ns.sh("ip link add v0 type veth peer name v1 && ip link set v0 up").unwrap();
    for (id, verdict, priority) in [("main", 0, Some(150)), ("backup", 0, Some(100)), ("other", 5, None)] {
        let theirs = ns.command("keepalived").args(["-t", "-i", id, "-f"]).arg(&file).output().unwrap();
        assert_eq!(theirs.status.code(), Some(verdict), "keepalived -i {id}: {theirs:?}");
        let (code, out, err) = config_test(&["-i", id, "--json"], &file);
        assert_eq!(code, Some(verdict), "-i {id}: {err}");
        let Some(priority) = priority else {
            assert!(err.contains("keepalived.conf:12:"), "the error is on the line as written: {err}");
            continue;
        };
        let model: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(model["vrrp_instances"][0]["priority"], priority, "-i {id}");
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
    let (code, _, err) = config_test(&[], &file);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("warning: virtual address 192.0.2.10 is also in vrrp_instance A"), "{err}");
}
