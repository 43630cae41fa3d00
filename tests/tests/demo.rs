//! `cargo xtask demo` keeps working: the same scenario, with its own pin directories.

use lb_bench::demo;
use lb_tests::prelude::*;

#[test]
fn demo_runs_end_to_end_and_leaves_nothing_behind() {
    require_root();
    let pins = daemon::pin_dir("demo");
    let mut narration = Vec::new();
    let result = demo::run(&workspace_root().join("configs"), &pins, &mut narration);
    let text = String::from_utf8_lossy(&narration);
    result.unwrap_or_else(|e| panic!("{e:#}\n{text}"));
    println!("{text}");
    assert!(text.contains("XDP program attached"), "{text}");
    assert!(text.contains("\"reason_fwd_nat\""), "bpftool dump without field names:\n{text}");
    for b in ["backend1:", "backend2:", "backend3:"] {
        assert!(text.contains(b), "{b} answered nothing:\n{text}");
    }
    assert!(text.contains("real server DOWN"), "{text}");
    assert!(text.contains("service answered again"), "{text}");
    // The failover is also measured from the master's last advert on the wire.
    assert!(text.contains("on the wire: lb-a sent") && text.contains("from lb-a's last advert"), "{text}");
    assert!(text.contains("VI_WEB") && text.contains("MASTER"), "status without VRRP:\n{text}");
    assert!(text.contains("namespaces left: none") && text.contains("pins left: none"), "{text}");
}
