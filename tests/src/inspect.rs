//! Reading what a running data plane holds, from its pins: through bpftool (what an operator
//! sees, field names from BTF), through `lb-daemon stats --json` and `conns --json`, or as the
//! daemon's own typed snapshot.

use std::{path::Path, process::Command};

use anyhow::{Context as _, Result, bail};
pub use lb_daemon::dataplane::bpf::read_stats;

/// `bpftool -j map dump pinned PIN`: every entry, keys and values by field name.
pub fn map_dump(pin: &Path) -> Result<serde_json::Value> {
    bpftool(&["map", "dump", "pinned"], pin)
}

/// `bpftool -j map show pinned PIN`: the map's id, type, sizes and memory.
pub fn map_show(pin: &Path) -> Result<serde_json::Value> {
    bpftool(&["map", "show", "pinned"], pin)
}

fn bpftool(args: &[&str], pin: &Path) -> Result<serde_json::Value> {
    let out = Command::new("bpftool").arg("-j").args(args).arg(pin).output().context("running bpftool")?;
    if !out.status.success() {
        bail!("bpftool {args:?} {}: {}", pin.display(), String::from_utf8_lossy(&out.stderr));
    }
    serde_json::from_slice(&out.stdout).context("bpftool's JSON")
}

/// `lb-daemon stats --json --pin-dir PINS`: services, their real servers (weight, whether new
/// flows can reach them) and whether the sorry server is active.
pub fn stats_json(pins: &Path) -> Result<serde_json::Value> {
    let out = Command::new(crate::daemon::binary()?).args(["stats", "--json", "--pin-dir"]).arg(pins).output()?;
    if !out.status.success() {
        bail!("stats: {}", String::from_utf8_lossy(&out.stderr));
    }
    serde_json::from_slice(&out.stdout).context("stats JSON")
}

/// `lb-daemon conns --json --pin-dir PINS ARGS`: the flow tables' entries (`connections`).
pub fn conns_json(pins: &Path, args: &[&str]) -> Result<serde_json::Value> {
    let out =
        Command::new(crate::daemon::binary()?).args(["conns", "--json", "--pin-dir"]).arg(pins).args(args).output()?;
    if !out.status.success() {
        bail!("conns: {}", String::from_utf8_lossy(&out.stderr));
    }
    serde_json::from_slice(&out.stdout).context("conns JSON")
}

/// The real servers of `service` that new flows can reach, sorted.
pub fn scheduled(pins: &Path, service: &str) -> Vec<String> {
    let m = stats_json(pins).unwrap();
    let svc = m["services"].as_array().unwrap().iter().find(|s| s["service"] == service);
    let Some(svc) = svc else { return Vec::new() };
    let mut v: Vec<String> = svc["reals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["scheduled"].as_bool() == Some(true))
        .map(|r| r["real"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// Whether `service`'s sorry server has taken over.
pub fn sorry_active(pins: &Path, service: &str) -> bool {
    let m = stats_json(pins).unwrap();
    m["services"].as_array().unwrap().iter().any(|s| s["service"] == service && s["sorry_active"] == true)
}
