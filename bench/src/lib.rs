//! The benchmarks behind `cargo xtask bench` and the demo behind `cargo xtask demo` (also run
//! as a test). They build on the test harnesses of `lb_tests` (namespaces, the packet fixture,
//! the daemon runner, real servers) and never fail on timing: they measure and report.
//! docs/benchmarks.md says what each section measures and how.
//!
//! - [`per_packet`]: cost per packet through `BPF_PROG_TEST_RUN`, beside XDP_PASS/XDP_DROP.
//! - [`throughput`]: UDP over veth beside nftables, kernel forwarding and an XDP redirect ceiling.
//! - [`cps`]: connections per second through the VIP beside nftables.
//! - [`scale`]: config test, start-up, reload and memory at scale; memory per flow; checker scale.
//! - [`failover`]: VRRP failover, ours beside keepalived.
//! - [`demo`]: the `cargo xtask demo` scenario.
//!
//! Everything here needs root, like the harnesses.

pub mod cps;
pub mod demo;
pub mod failover;
pub mod per_packet;
pub mod scale;
pub mod throughput;

use std::{io::Write, process::Command};

use anyhow::{Result, bail};

/// Median, minimum and maximum of a benchmark's runs.
pub struct Stats {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

pub fn stats(v: &[f64]) -> Stats {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    Stats { median: s[s.len() / 2], min: s[0], max: s[s.len() - 1] }
}

/// One section of the report: the key `--only` names and the JSON stores it under, its title,
/// and the measurement (`quick`, the markdown it appends to) returning its JSON.
pub struct Section {
    pub key: &'static str,
    pub title: &'static str,
    pub measure: fn(bool, &mut dyn Write) -> Result<serde_json::Value>,
}

pub const SECTIONS: &[Section] = &[
    Section {
        key: "per_packet",
        title: "Cost per packet (BPF_PROG_TEST_RUN, CPU 0, median of each case's runs)",
        measure: per_packet::per_packet,
    },
    Section {
        key: "throughput",
        title: "Throughput over veth (UDP to the VIP, generator on CPU 0, forwarding NAPI on CPU 1)",
        measure: throughput::throughput,
    },
    Section {
        key: "connections_per_second",
        title: "Connections per second through the VIP (same topology, alternating)",
        measure: cps::connections_per_second,
    },
    Section {
        key: "reload_scale",
        title: "Config test, start-up, reload and memory at scale (release build, no checkers)",
        measure: scale::reload_scale,
    },
    Section { key: "memory_per_flow", title: "Memory per tracked flow", measure: scale::memory_per_flow },
    Section {
        key: "checker_scale",
        title: "Checker scale (delay_loop 1, local listeners, release build)",
        measure: scale::checker_scale,
    },
    Section {
        key: "failover",
        title: "VRRP failover (kill → new master's first gratuitous ARP, and its first answer on the VIP)",
        measure: failover::section,
    },
];

/// Fails on a name in `only` that is no section's key.
pub fn check_only(only: &[String]) -> Result<()> {
    if let Some(bad) = only.iter().find(|o| !SECTIONS.iter().any(|s| s.key == o.as_str())) {
        let known: Vec<&str> = SECTIONS.iter().map(|s| s.key).collect();
        bail!("no benchmark section {bad:?}; the sections are {}", known.join(", "));
    }
    Ok(())
}

/// Measures the sections `only` names (all when empty), one run each when `quick`: the
/// markdown report (machine, then a section each) and the same figures as JSON. One failing
/// measurement does not hide the others; it is reported as such. The daemon measured is
/// `LB_DAEMON_BIN` when set (see `lb_tests::daemon::binary`).
pub fn report(quick: bool, only: &[String]) -> Result<(Vec<u8>, serde_json::Value)> {
    check_only(only)?;
    let wanted = |key: &str| only.is_empty() || only.iter().any(|o| o == key);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let date = String::from_utf8(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]).output()?.stdout)?;
    let mut md = Vec::new();
    writeln!(
        md,
        "# lb benchmarks\n\n{}, kernel {}, {cpu} × {cores}{}\n",
        date.trim(),
        kernel.trim(),
        if quick { ", --quick" } else { "" }
    )?;
    let mut json =
        serde_json::json!({ "kernel": kernel.trim(), "cpu": cpu, "cores": cores, "date": date.trim(), "quick": quick });
    for s in SECTIONS.iter().filter(|s| wanted(s.key)) {
        writeln!(md, "## {}\n", s.title)?;
        eprintln!("bench: {}...", s.key);
        match (s.measure)(quick, &mut md) {
            Ok(v) => json[s.key] = v,
            Err(e) => {
                writeln!(md, "not measured: {e:#}")?;
                json[s.key] = serde_json::json!({ "error": format!("{e:#}") });
            }
        }
        writeln!(md)?;
    }
    Ok((md, json))
}
