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
        "chk-http-regex-bad",
        0,
        5,
        "stricter on purpose: keepalived logs a pattern PCRE2 refuses and checks the url without \
         it (the real server stays up whatever its body); ours refuses the config",
    ),
    (
        "param-random",
        0,
        5,
        "not implemented here: keepalived's ${_RANDOM} draws a value at each read of the config, \
         so a reload would change it; refused by name",
    ),
    (
        "vrrp-address-use-vmac",
        0,
        5,
        "not implemented here: a VMAC for one address on its own interface (as use_vmac_addr, \
         also refused); refused by name, as the address without its VMAC would not be answered as meant",
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
    (
        "sync-group-global-tracking",
        5,
        0,
        "both take the deprecated global_tracking as sync_group_tracking_weight, with keepalived's words",
    ),
    (
        "vs-no-real-servers",
        5,
        0,
        "both ignore a virtual server without real servers (its sorry server too), with keepalived's words",
    ),
    ("vs-dr-port-reset", 5, 0, "both reset a DR real server's port to the service's, with keepalived's words"),
    ("vrrp-auth-pass-long", 5, 0, "both truncate auth_pass to 8 characters, with a warning"),
    (
        "glob-nftables-priority-ipvs",
        0,
        5,
        "not implemented: at priority 99 or more keepalived's no_accept drop comes after IPVS has forwarded the VIP's \
         traffic, which lb-daemon's data plane drops before any chain; refused with a priority to use",
    ),
    (
        "syn-include-check",
        6,
        5,
        "both refuse a glob matching nothing under include_check; keepalived exits 6 for a missing file, lb-daemon 5 \
         for any error",
    ),
    (
        "syn-includea-missing",
        6,
        5,
        "both refuse a glob matching nothing with includea; keepalived exits 6 for a missing file, lb-daemon 5 for \
         any error",
    ),
    (
        "includeb-brace-missing",
        6,
        5,
        "both refuse a brace alternative naming a missing file with includeb (the brace_match check); \
         keepalived exits 6 for a missing file, lb-daemon 5 for any error in the config",
    ),
    (
        "vrrp-vmac-garp-intvl",
        5,
        0,
        "both read the deprecated vmac_garp_intvl / vrrp_vmac_garp_intvl as garp_extra_if, with keepalived's words",
    ),
    ("vrrp-track-interface", 5, 0, "keepalived warns that it ignores tracking the instance's own interface"),
    ("vrrp-unicast-no-peers", 5, 0, "both warn that unicast without peers falls back to multicast (deprecated)"),
    (
        "vrrp-old-unicast-checksum-no-peers",
        5,
        0,
        "both warn that a unicast keyword without peers falls back to multicast (deprecated)",
    ),
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
    ("vs-fwmark-protocol", 5, 0, "both ignore `protocol` in a fwmark service, with keepalived's words"),
    ("vs-no-protocol", 5, 0, "both run a service without `protocol` as UDP, with keepalived's words"),
    (
        "vs-port0-ops-tcp",
        5,
        0,
        "both drop ops from a TCP service and make a port-0 one persistent (360 s), with keepalived's words",
    ),
    (
        "vsg-fwmark-protocol",
        5,
        0,
        "both clear ha_suspend and ignore `protocol` in a group of firewall marks, with keepalived's words",
    ),
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
    (
        "chk-misc-unknown-user",
        5,
        0,
        "both remove a MISC_CHECK whose user does not exist (its script then never runs, so no \
         security verdict); keepalived reports it as a config error, ours warns",
    ),
    (
        "static-address-no-default-interface",
        4,
        5,
        "both refuse a static address without dev when default_interface (eth0) is missing; keepalived's \
         error is fatal to its parser (4), ours an ordinary config error (5)",
    ),
    (
        "vrrp-up-down-delays-unknown",
        4,
        5,
        "both refuse up/down delays for a missing interface; keepalived's error is fatal to its parser (4), ours an \
         ordinary config error (5)",
    ),
    // Not matched yet.
    (
        "vrrp-vmac-addr",
        0,
        5,
        "not yet: use_vmac_addr (VMACs for other interfaces' and the other family's addresses) is refused",
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

/// Names from iproute2's files (routing tables, TOS values, realms; protocol names keepalived
/// knows itself) mean the same numbers to both: keepalived 2.2.7 and then lb-daemon run one
/// config of static rules and routes written with names, each in a mount namespace whose
/// /etc/iproute2 is the test's own, and the kernel must hold the same rules and routes. A name
/// the files do not have is refused by both (`-t`).
#[test]
fn iproute2_names_mean_to_both_what_they_mean_to_keepalived() {
    require_root();
    let dir = TempDir::new("rtnames");
    let names = dir.path().join("iproute2");
    std::fs::create_dir_all(&names).unwrap();
    for (file, text) in [("rt_tables", "100 web\n"), ("rt_dsfield", "0x10 lowdelay\n"), ("rt_realms", "3 east\n")] {
        std::fs::write(names.join(file), text).unwrap();
    }
    let conf = dir.file(
        "names.conf",
        "static_rules {\n    from 192.0.2.1 tos lowdelay table web priority 100\n    \
         from 192.0.2.3 realms east/2 lookup main priority 101\n}\n\
         static_routes {\n    198.51.100.0/24 via 192.0.2.2 dev v0 table web protocol bird no_track\n    \
         203.0.113.0/24 via 192.0.2.2 dev v0 table web protocol zebra\n}\n",
    );
    let unknown =
        dir.file("unknown.conf", "static_routes {\n    198.51.100.0/24 via 192.0.2.2 dev v0 table nosuch\n}\n");
    let ns = Netns::new("kartn").unwrap();
    ns.sh("ip link add v0 type veth peer name v1 && ip link set v0 up && ip link set v1 up && ip addr add 192.0.2.11/24 dev v0")
        .unwrap();
    let ours = daemon::binary().unwrap();
    let pins = daemon::pin_dir("rtnames");
    let d = dir.path().display();
    // What the kernel holds while `$1` runs (started in the background), in the private mount.
    let view = "ip rule; ip -4 route show table all | grep -v -e '^local' -e '^broadcast'";
    let script = format!(
        "mount --bind {names} /etc/iproute2 || exit 99\n\
         keepalived -t -f {unknown} >/dev/null 2>&1; echo \"ka -t $?\"\n\
         {ours} -t -f {unknown} >/dev/null 2>&1; echo \"ours -t $?\"\n\
         keepalived -n -l -D --vrrp -f {conf} -p {d}/ka.pid -r {d}/kv.pid -c {d}/kc.pid -b {d}/kb.pid >{d}/ka.log 2>&1 &\n\
         sleep 2; echo '=== keepalived'; {view}; kill $!; wait; sleep 1\n\
         {ours} -l -f {conf} --pin-dir {pins} --run-dir {d}/run >{d}/ours.log 2>&1 &\n\
         sleep 3; echo '=== lb-daemon'; {view}; kill $!; wait\n",
        names = names.display(),
        unknown = unknown.display(),
        ours = ours.display(),
        conf = conf.display(),
        pins = pins.display(),
    );
    let out = ns.command("unshare").args(["-m", "sh", "-c", &script]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("ka -t 5\nours -t 5\n"), "a name in no file: both refuse\n{text}");
    let (_, kernel) = text.split_once("=== keepalived\n").unwrap_or_else(|| panic!("{text}"));
    let (theirs, mine) = kernel.split_once("=== lb-daemon\n").unwrap_or_else(|| panic!("{text}"));
    for want in
        ["tos lowdelay lookup web", "realms east/2", "198.51.100.0/24 via 192.0.2.2 dev v0 table web proto bird"]
    {
        assert!(theirs.contains(want), "keepalived did not install {want:?}:\n{theirs}");
    }
    assert_eq!(mine, theirs, "the kernel's rules and routes under lb-daemon (left) and keepalived (right)");
}
