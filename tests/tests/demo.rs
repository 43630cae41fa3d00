//! `cargo xtask demo` keeps working: the same scenario, with its own pin directory.

use lb_tests::{daemon, demo, require_root, workspace_root};

#[test]
fn demo_runs_end_to_end_and_leaves_nothing_behind() {
    require_root();
    let pins = daemon::pin_dir("demo");
    let mut narration = Vec::new();
    let result = demo::run(&workspace_root().join("configs/demo.conf"), &pins, &mut narration);
    let text = String::from_utf8_lossy(&narration);
    result.unwrap_or_else(|e| panic!("{e:#}\n{text}"));
    assert!(text.contains("l0: prog/xdp") && text.contains("l1: prog/xdp"), "{text}");
    assert!(text.contains("\"reason_fwd_nat\""), "bpftool dump without field names:\n{text}");
    for b in ["backend1:", "backend2:", "backend3:"] {
        assert!(text.contains(b), "{b} answered nothing:\n{text}");
    }
    assert!(text.contains("namespaces left: none"), "{text}");
    assert!(!pins.exists());
}
