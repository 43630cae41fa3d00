//! The older-kernel VM proves itself: Debian's 6.1 kernel boots under virtme-ng, loads
//! `ip_vs` (absent from the host kernel) and passes the command's exit status through.

use std::time::Duration;

use lb_common::consts::{OBJ_BENCH, OBJ_DECAP, OBJ_XDP};
use lb_daemon::dataplane::object::load_program;
use lb_tests::{prelude::*, vm};

/// The verifier's limit on instructions processed per program load.
const VERIFIER_BUDGET: u32 = 1_000_000;

#[test]
fn vm_boots_61_loads_ip_vs_and_returns_the_exit_status() {
    require_root();
    let out = vm::run(
        "uname -r; modprobe ip_vs && grep -c . /proc/net/ip_vs && head -1 /proc/net/ip_vs; exit 7",
        Duration::from_secs(400),
    )
    .unwrap();
    assert_eq!(out.status, 7, "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    let mut lines = out.stdout.lines();
    let release = lines.next().unwrap_or_default();
    assert!(release.starts_with("6.1."), "kernel {release:?}\n{}", out.stdout);
    assert!(out.stdout.contains("IP Virtual Server version"), "no ip_vs:\n{}\n{}", out.stdout, out.stderr);
    // The host kernel has no IPVS: the VM is what makes these tests possible.
    assert!(
        !std::path::Path::new("/proc/net/ip_vs").exists()
            || std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap().starts_with("6.1.")
    );
}

/// Loads every program of every eBPF object (`lb-xdp`: the load balancer; `lb-decap`: the TC
/// decapsulator; `lb-bench`: the benchmark's baselines, new-flow driver, generator, sink and
/// redirect ceiling) into this kernel: per object, each program's name and the instructions
/// the verifier took.
fn load_every_program() -> Vec<(&'static str, String, u32)> {
    let mut counts = Vec::new();
    for obj in [OBJ_XDP, OBJ_DECAP, OBJ_BENCH] {
        let bytes = lb_tests::ebpf_object(obj).unwrap();
        let mut ebpf = aya::EbpfLoader::new().load(&bytes).unwrap_or_else(|e| panic!("{obj}: creating the maps: {e}"));
        for (name, prog) in ebpf.programs_mut() {
            let loaded = match prog {
                aya::programs::Program::Xdp(p) => load_program(name, || p.load()).map(|()| p.info()),
                aya::programs::Program::SchedClassifier(p) => load_program(name, || p.load()).map(|()| p.info()),
                other => panic!("{name}: a program type this test does not know: {:?}", other.prog_type()),
            };
            let info = loaded
                .unwrap_or_else(|e| panic!("the verifier refused {name}: {e:?}"))
                .unwrap_or_else(|e| panic!("{name}: reading its info: {e}"));
            counts.push((obj, name.to_string(), info.verified_instruction_count().unwrap_or(0)));
        }
    }
    counts.sort();
    counts
}

/// The verifier of this kernel (6.18) and of Debian's 6.1 accepts every program of every
/// object, each with a fifth of the 1M-instruction budget to spare (so creeping complexity
/// fails here before a kernel update tips it over); the counts are printed.
#[test]
fn every_program_passes_the_verifier_here_and_on_61() {
    require_root();
    let counts = load_every_program();
    let names: Vec<(&str, &str)> = counts.iter().map(|(o, n, _)| (*o, n.as_str())).collect();
    assert_eq!(
        names,
        [
            (OBJ_BENCH, "bench_count"),
            (OBJ_BENCH, "bench_drop"),
            (OBJ_BENCH, "bench_fresh"),
            (OBJ_BENCH, "bench_pass"),
            (OBJ_BENCH, "bench_redirect"),
            (OBJ_BENCH, "bench_tx"),
            (OBJ_DECAP, "lb_decap"),
            (OBJ_XDP, "lb_xdp"),
        ]
    );
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    println!("{}: {counts:?}", release.trim());
    let near: Vec<_> = counts.iter().filter(|(_, _, n)| *n > VERIFIER_BUDGET / 5 * 4).collect();
    assert!(near.is_empty(), "{}: within 20% of the verifier's 1M budget: {near:?}", release.trim());
    if vm::in_vm() {
        return;
    }
    let out = vm::run_test("every_program_passes_the_verifier_here_and_on_61", Duration::from_secs(400)).unwrap();
    assert_eq!(out.status, 0, "in the VM:\n{}\n{}", out.stdout, out.stderr);
    let line = out.stdout.lines().find(|l| l.starts_with("6.1.")).unwrap_or_else(|| panic!("{}", out.stdout));
    println!("{line}");
}

/// The maps of `lb-xdp` are exactly those lb-common names (`XDP_MAPS`): the daemon, the
/// tools and the tests find them by those names only.
#[test]
fn the_load_balancer_object_has_the_maps_lb_common_names() {
    require_root();
    let bytes = lb_tests::ebpf_object(OBJ_XDP).unwrap();
    let ebpf = aya::EbpfLoader::new().load(&bytes).expect("creating the maps");
    let mut found: Vec<&str> = ebpf.maps().map(|(name, _)| name).collect();
    found.sort_unstable();
    let mut named = lb_common::consts::XDP_MAPS.to_vec();
    named.sort_unstable();
    assert_eq!(found, named);
}
