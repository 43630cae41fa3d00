//! The older-kernel VM proves itself: Debian's 6.1 kernel boots under virtme-ng, loads
//! `ip_vs` (absent from the host kernel) and passes the command's exit status through.

use std::time::Duration;

use lb_tests::{prelude::*, vm};

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

/// Loads every program of the eBPF object (the XDP load balancer, the TC decapsulator, the
/// benchmark's baselines, generator, sink and redirect ceiling) into this kernel; the instruction count each took the verifier.
fn load_every_program() -> Vec<(String, u32)> {
    let object = lb_daemon::dataplane::object::load(None).unwrap();
    let mut ebpf = aya::EbpfLoader::new().load(&object).expect("creating the maps");
    let mut counts = Vec::new();
    for (name, prog) in ebpf.programs_mut() {
        let loaded = match prog {
            aya::programs::Program::Xdp(p) => p.load().and_then(|()| p.info()),
            aya::programs::Program::SchedClassifier(p) => p.load().and_then(|()| p.info()),
            other => panic!("{name}: a program type this test does not know: {:?}", other.prog_type()),
        };
        let info = loaded.unwrap_or_else(|e| panic!("the verifier refused {name}: {e:?}"));
        counts.push((name.to_string(), info.verified_instruction_count().unwrap_or(0)));
    }
    counts.sort();
    counts
}

/// The verifier of this kernel (6.18) and of Debian's 6.1 accepts every program of the
/// object; the instructions each needed are printed (the budget is 1M), so creeping
/// complexity shows before a kernel update tips it over.
#[test]
fn every_program_passes_the_verifier_here_and_on_61() {
    require_root();
    let counts = load_every_program();
    let names: Vec<&str> = counts.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["bench_count", "bench_drop", "bench_pass", "bench_redirect", "bench_tx", "lb_decap", "lb_xdp"]);
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    println!("{}: {counts:?}", release.trim());
    if vm::in_vm() {
        return;
    }
    let out = vm::run_test("every_program_passes_the_verifier_here_and_on_61", Duration::from_secs(400)).unwrap();
    assert_eq!(out.status, 0, "in the VM:\n{}\n{}", out.stdout, out.stderr);
    let line = out.stdout.lines().find(|l| l.starts_with("6.1.")).unwrap_or_else(|| panic!("{}", out.stdout));
    println!("{line}");
}
