//! `cargo xtask bench`: measurements that report and never fail on timing. Results go to
//! `target/bench/` (markdown, JSON, and a PNG chart drawn by the `bench-chart` crate) and to
//! the terminal. docs/benchmarks.md says what each section measures and how.
//!
//! Measured: cost per packet (BPF_PROG_TEST_RUN), throughput over veth beside nftables, kernel
//! forwarding and an XDP redirect ceiling, connections per second beside nftables, reload and
//! start-up at scale, memory per flow beside IPVS, checker scale, VRRP failover beside
//! keepalived.

use std::process::Command;

use anyhow::{Context as _, Result};

use crate::build::{root, sh_ok};

/// One section: its title, what it measures, and the JSON key it stores under.
type Section = (&'static str, &'static str, fn(bool, &mut dyn std::io::Write) -> Result<serde_json::Value>);

const SECTIONS: &[Section] = &[
    (
        "per_packet",
        "Cost per packet (BPF_PROG_TEST_RUN, CPU 0, median of each case's runs)",
        lb_tests::bench_packet::per_packet,
    ),
    (
        "throughput",
        "Throughput over veth (UDP to the VIP, generator on CPU 0, forwarding NAPI on CPU 1)",
        lb_tests::bench_tput::throughput,
    ),
    (
        "connections_per_second",
        "Connections per second through the VIP (same topology, alternating)",
        lb_tests::bench_cps::connections_per_second,
    ),
    (
        "reload_scale",
        "Config test, start-up, reload and memory at scale (release build, no checkers)",
        lb_tests::bench_scale::reload_scale,
    ),
    ("memory_per_flow", "Memory per tracked flow", lb_tests::bench_scale::memory_per_flow),
    (
        "checker_scale",
        "Checker scale (delay_loop 1, local listeners, release build)",
        lb_tests::bench_scale::checker_scale,
    ),
];

pub fn run(quick: bool, only: &[String]) -> Result<()> {
    let known: Vec<&str> = SECTIONS.iter().map(|s| s.0).chain(["failover"]).collect();
    if let Some(bad) = only.iter().find(|o| !known.contains(&o.as_str())) {
        anyhow::bail!("no benchmark section {bad:?}; the sections are {}", known.join(", "));
    }
    let wanted = |key: &str| only.is_empty() || only.iter().any(|o| o == key);
    crate::setup::run()?;
    crate::build::ebpf()?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // Measured: the release build. (The failover harness runs it too.)
    sh_ok(Command::new(cargo).current_dir(root()).args(["build", "--release", "-p", "lb-daemon"]))?;
    // SAFETY: single-threaded here; the harnesses read it when they start daemons.
    unsafe { std::env::set_var("LB_DAEMON_BIN", root().join("target/release/lb-daemon")) };
    let runs = if quick { 1 } else { 5 };
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut md = Vec::new();
    use std::io::Write;
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
    writeln!(
        md,
        "# lb benchmarks\n\n{}, kernel {}, {cpu} × {cores}{}\n",
        date.trim(),
        kernel.trim(),
        if quick { ", --quick" } else { "" }
    )?;
    let mut json =
        serde_json::json!({ "kernel": kernel.trim(), "cpu": cpu, "cores": cores, "date": date.trim(), "quick": quick });
    for (key, title, f) in SECTIONS.iter().filter(|s| wanted(s.0)) {
        writeln!(md, "## {title}\n")?;
        eprintln!("bench: {key}...");
        match f(quick, &mut md) {
            Ok(v) => json[*key] = v,
            // One failing measurement does not hide the others; it is reported as such.
            Err(e) => {
                writeln!(md, "not measured: {e:#}")?;
                json[*key] = serde_json::json!({ "error": format!("{e:#}") });
            }
        }
        writeln!(md)?;
    }
    if wanted("failover") {
        writeln!(md, "## VRRP failover (kill → new master's first gratuitous ARP, and its first answer on the VIP)\n")?;
        writeln!(md, "{} run(s) per scenario\n", runs)?;
        json["failover"] = lb_tests::bench::failover(runs, &mut md)?["failover"].take();
    }
    let dir = root().join("target/bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("results.md"), &md)?;
    std::fs::write(dir.join("results.json"), serde_json::to_vec_pretty(&json)?).context("writing results.json")?;
    // The chart is its own crate (plotters needs fontconfig, installed by setup above).
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    sh_ok(
        Command::new(cargo)
            .current_dir(root())
            .args(["run", "-q", "-p", "bench-chart", "--"])
            .args([dir.join("results.json"), dir.join("results.png")]),
    )?;
    print!("{}", String::from_utf8_lossy(&md));
    println!("\nwritten: {} (and .json, .png)", dir.join("results.md").display());
    Ok(())
}
