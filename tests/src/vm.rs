//! Runs commands under Debian's 6.1 kernel (which has `ip_vs` and `ipip`, unlike the host's)
//! with virtme-ng under software emulation (KVM is unavailable here). The VM sees the host's
//! filesystem, so project binaries run in it as they are. It boots in about a minute.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};

#[derive(Debug)]
pub struct VmOutput {
    /// Exit status of the command inside the VM (virtme-ng passes it through).
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

/// The newest installed Debian 6.1 kernel image (`linux-image-amd64` on bookworm).
pub fn kernel() -> Result<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/boot")
        .context("reading /boot")?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("vmlinuz-6.1.")))
        .collect();
    found.sort();
    found.pop().context("no /boot/vmlinuz-6.1.* kernel: run `cargo xtask setup` (installs linux-image-amd64)")
}

/// The `vng` launcher: on PATH, or in the scripts directory pip installed it to.
pub fn vng() -> Result<PathBuf> {
    if let Ok(out) = Command::new("sh").args(["-c", "command -v vng"]).output() {
        let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !p.is_empty() {
            return Ok(PathBuf::from(p));
        }
    }
    let out = Command::new("python3")
        .args(["-c", "import sysconfig; print(sysconfig.get_path('scripts'))"])
        .output()
        .context("running python3")?;
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("vng");
    if p.exists() { Ok(p) } else { bail!("virtme-ng's `vng` is not installed: run `cargo xtask setup`") }
}

/// Set in the VM when a test re-runs itself there (`run_test`).
pub const IN_VM: &str = "LB_IN_VM";

/// Whether this process runs inside the VM (a test `run_test` started).
pub fn in_vm() -> bool {
    std::env::var_os(IN_VM).is_some()
}

/// Re-runs test `name` of the calling test binary inside the VM (with `IN_VM` set, so the
/// test takes its in-VM branch), capturing what it prints.
pub fn run_test(name: &str, timeout: Duration) -> Result<VmOutput> {
    let exe = std::env::current_exe().context("the test binary's path")?;
    run(&format!("{IN_VM}=1 {} --exact {name} --nocapture 2>&1", exe.display()), timeout)
}

/// `run_test` with environment variables set for the test inside the VM.
pub fn run_test_env(name: &str, env: &[(&str, &str)], timeout: Duration) -> Result<VmOutput> {
    let exe = std::env::current_exe().context("the test binary's path")?;
    let vars: String = env.iter().map(|(k, v)| format!("{k}={} ", shell_quote(v))).collect();
    run(&format!("{vars}{IN_VM}=1 {} --exact {name} --nocapture 2>&1", exe.display()), timeout)
}

/// `v` in single quotes for `sh`.
fn shell_quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', "'\\''"))
}

/// Runs `script` with `sh -c` as root in a VM booted on the 6.1 kernel; gives up after
/// `timeout` (the VM is killed).
pub fn run(script: &str, timeout: Duration) -> Result<VmOutput> {
    let kernel = kernel()?;
    let out = Command::new("timeout")
        .arg("--kill-after=10")
        .arg(timeout.as_secs().to_string())
        .arg(vng()?)
        .arg("--run")
        .arg(&kernel)
        .args(["--disable-kvm", "--memory", "1G", "--exec"])
        .arg(script)
        .stdin(Stdio::null())
        .output()
        .context("starting virtme-ng")?;
    let status = out.status.code().unwrap_or(-1);
    if status == 124 || status == 137 {
        // What the command printed so far says where it was.
        let stdout = String::from_utf8_lossy(&out.stdout);
        let tail: Vec<&str> = stdout.lines().rev().take(60).collect();
        bail!(
            "VM command timed out after {timeout:?}; the last lines it printed:\n{}\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(VmOutput {
        status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}
