//! The older-kernel VM proves itself: Debian's 6.1 kernel boots under virtme-ng, loads
//! `ip_vs` (absent from the host kernel) and passes the command's exit status through.

use std::time::Duration;

use lb_tests::{require_root, vm};

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
