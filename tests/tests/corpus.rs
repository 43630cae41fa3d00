//! The differential test against keepalived 2.2.7: every config of `tests/corpus/keepalived/`
//! (valid and broken ones, each keyword family and syntax form) gets the same `-t` verdict
//! from keepalived and from lb-daemon, both run in a namespace with the interface the configs
//! name (`v0`, 192.0.2.11/24). Where the verdicts differ on purpose or are not matched yet,
//! `DIFFERENCES` says so and why; the test fails when any verdict changes, so the table stays
//! true.

use std::{os::unix::process::ExitStatusExt as _, path::PathBuf, process::ExitStatus};

use lb_tests::prelude::*;

/// (config, keepalived's verdict, ours, why).
const DIFFERENCES: &[(&str, i32, i32, &str)] = &[
    (
        "chk-http-no-url",
        139,
        5,
        "keepalived 2.2.7 crashes (SIGSEGV) on an HTTP_GET without a url; ours refuses it, as a \
         checker that checks nothing",
    ),
    (
        "vs-duplicate",
        0,
        5,
        "stricter on purpose: two virtual_server blocks for one address and port are ambiguous \
         (which real servers, which scheduler?); keepalived merges them silently",
    ),
    // keepalived's -t fails on its warnings too (anything it reports through
    // report_config_error); ours fails on errors only, and warns where keepalived warns. The
    // daemon then runs these configs as keepalived does.
    ("static-route-blackhole", 5, 0, "keepalived warns that it cannot track a route without an interface"),
    ("vrrp-auth-pass-long", 5, 0, "both truncate auth_pass to 8 characters, with a warning"),
    ("vrrp-track-interface", 5, 0, "keepalived warns that it ignores tracking the instance's own interface"),
    ("static-rule-no-preference", 5, 0, "both number the rule 16384 and say it is probably not what you want"),
    (
        "bfd-sync-member-weight",
        5,
        0,
        "both drop a sync group member's weighted track_bfd, with keepalived's words (no floating priority in a sync group)",
    ),
    (
        "sync-group-member-weights",
        5,
        0,
        "both track a sync group member's weighted interface and weight-1 file with weight 0, with keepalived's words",
    ),
    (
        "vrrp-auth-ah-strict",
        5,
        0,
        "both run the instance without authentication under vrrp_strict, with keepalived's words",
    ),
    ("vs-fwmark", 5, 0, "both clear a fwmark real server's port, with a warning"),
    ("vs-group", 5, 0, "keepalived warns that a port is ignored for the group's fwmark entry"),
    (
        "vrrp-script-missing-disabled",
        5,
        0,
        "both disable a vrrp_script that cannot run and run the instance without it; keepalived \
         reports it as a config error, ours warns",
    ),
    (
        "bfd-max-hops-over-ttl",
        5,
        0,
        "both warn that max_hops exceeds the ttl and accept any TTL (keepalived sets max_hops to the ttl)",
    ),
    // Not matched yet.
    (
        "vrrp-vmac-addr",
        0,
        5,
        "not yet: use_vmac_addr (VMACs for other interfaces' and the other family's addresses) is refused",
    ),
    ("vrrp-vmac-ipv6-xmit-base", 0, 5, "not yet: vmac_xmit_base on an IPv6 instance is refused"),
    ("vrrp-vmac-mac-address", 0, 5, "not yet: use_vmac with a MAC address of its own is refused"),
    (
        "vrrp-unknown-interface",
        5,
        0,
        "not yet: keepalived's -t looks the interface up; ours reports it at start (the instance is not run)",
    ),
];

fn verdict(status: ExitStatus) -> i32 {
    status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

#[test]
fn keepalived_and_lb_daemon_give_the_same_verdicts() {
    require_root();
    let dir = workspace_root().join("tests/corpus/keepalived");
    let mut configs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    configs.sort();
    assert!(configs.len() >= 60, "the corpus has {} configs", configs.len());
    let ns = Netns::new("kacorpus").unwrap();
    ns.sh("ip link add v0 type veth peer name v1 && ip link set v0 up && ip addr add 192.0.2.11/24 dev v0").unwrap();
    let ours_bin = daemon::binary().unwrap();
    let mut wrong = Vec::new();
    let (mut valid, mut broken) = (0, 0);
    for path in &configs {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let theirs = verdict(ns.command("keepalived").arg("-t").arg("-f").arg(path).output().unwrap().status);
        let out = ns.command(&ours_bin).arg("-t").arg("-f").arg(path).output().unwrap();
        let ours = verdict(out.status);
        if theirs == 0 {
            valid += 1
        } else {
            broken += 1
        }
        let expected = DIFFERENCES.iter().find(|d| d.0 == name).map_or((theirs, theirs), |d| (d.1, d.2));
        if (theirs, ours) != expected {
            wrong.push(format!(
                "{name}: keepalived {theirs}, ours {ours} (expected {expected:?})\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    for (name, ..) in DIFFERENCES {
        assert!(configs.iter().any(|p| p.file_stem().is_some_and(|s| s == *name)), "{name} is not in the corpus");
    }
    println!(
        "{} configs: {valid} keepalived accepts, {broken} it refuses; {} differences named",
        configs.len(),
        DIFFERENCES.len()
    );
    assert!(wrong.is_empty(), "verdicts differ from keepalived 2.2.7's:\n{}", wrong.join("\n"));
}
