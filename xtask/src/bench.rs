//! `cargo xtask bench`: measurements that report and never fail on timing. Results go to
//! `target/bench/` (markdown and JSON) and to the terminal.
//!
//! Measured: cost per packet (BPF_PROG_TEST_RUN), VRRP failover beside keepalived. What the
//! benchmarks issue lists and is not measured yet is printed as such.

use std::process::Command;

use anyhow::{Context as _, Result};

use crate::build::{root, sh_ok};

const NOT_YET: &[&str] = &[
    "throughput over veth vs nftables / forwarding / XDP redirect",
    "connections per second",
    "reload and scale",
    "memory per flow",
    "checker scale",
];

pub fn run(quick: bool) -> Result<()> {
    crate::setup::run()?;
    crate::build::ebpf()?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    sh_ok(Command::new(cargo).current_dir(root()).args(["build", "-p", "lb-daemon"]))?;
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
    writeln!(
        md,
        "# lb benchmarks\n\nkernel {}, {cpu} × {cores}{}\n",
        kernel.trim(),
        if quick { ", --quick" } else { "" }
    )?;
    writeln!(md, "## Cost per packet (BPF_PROG_TEST_RUN, CPU 0, median of each case's runs)\n")?;
    let packet = lb_tests::bench_packet::per_packet(quick, &mut md)?;
    writeln!(md, "\n## VRRP failover (kill → new master's first gratuitous ARP, on the wire)\n")?;
    writeln!(md, "{} run(s) per scenario\n", runs)?;
    let mut json = lb_tests::bench::failover(runs, &mut md)?;
    json["per_packet"] = packet;
    json["kernel"] = kernel.trim().into();
    json["cpu"] = cpu.into();
    writeln!(md, "\nNot measured yet: {}.", NOT_YET.join("; "))?;
    let dir = root().join("target/bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("results.md"), &md)?;
    std::fs::write(dir.join("results.json"), serde_json::to_vec_pretty(&json)?).context("writing results.json")?;
    print!("{}", String::from_utf8_lossy(&md));
    println!("\nwritten: {}", dir.join("results.md").display());
    Ok(())
}
