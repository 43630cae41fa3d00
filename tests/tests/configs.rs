//! Every config shipped in configs/ passes `lb-daemon --config-test`.

use std::process::Command;

use lb_tests::{daemon, workspace_root};

#[test]
fn shipped_configs_pass_config_test() {
    let dir = workspace_root().join("configs");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "conf") {
            continue;
        }
        let out = Command::new(daemon::binary().unwrap())
            .arg("-t")
            .arg("-f")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        checked += 1;
    }
    assert!(checked > 0, "no configs in {}", dir.display());
}
