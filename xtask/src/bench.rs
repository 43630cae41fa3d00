//! `cargo xtask bench`: measurements that report and never fail on timing. Results go to
//! `target/bench/` (markdown and JSON) and to the terminal.
//!
//! Measured today: VRRP failover (issue "VRRP"), ours and keepalived's in the same run.
//! The data-plane, throughput, reload, memory and checker-scale figures of issue
//! "benchmarks" are not measured yet; the command says so rather than printing nothing.

use std::process::Command;

use anyhow::{Context as _, Result};

use crate::build::{root, sh_ok};

const NOT_YET: &[&str] = &[
    "cost per packet (BPF_PROG_TEST_RUN)",
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
    writeln!(md, "## VRRP failover (kill → new master's first gratuitous ARP, on the wire)\n")?;
    writeln!(md, "kernel {}, {} run(s) per scenario\n", kernel.trim(), runs)?;
    let json = lb_tests::bench::failover(runs, &mut md)?;
    writeln!(md, "\nNot measured yet: {}.", NOT_YET.join("; "))?;
    let dir = root().join("target/bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("results.md"), &md)?;
    std::fs::write(dir.join("results.json"), serde_json::to_vec_pretty(&json)?).context("writing results.json")?;
    print!("{}", String::from_utf8_lossy(&md));
    println!("\nwritten: {}", dir.join("results.md").display());
    Ok(())
}
