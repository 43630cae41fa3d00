//! `cargo xtask bench`: installs and builds what is missing, then runs the measurements of
//! `lb_bench` on the release build. Results go to `target/bench/` (markdown, JSON, and a PNG
//! chart drawn by the `bench-chart` crate) and to the terminal. docs/benchmarks.md says what
//! each section measures and how.

use anyhow::{Context as _, Result};

use crate::cmd::{cargo, root, sh_ok};

pub fn run(quick: bool, only: &[String]) -> Result<()> {
    // A misspelt section fails before minutes of setup and building.
    lb_bench::check_only(only)?;
    crate::setup::run()?;
    crate::build::ebpf()?;
    // Measured: the release build. (The failover harness runs it too.)
    sh_ok(cargo().args(["build", "--release", "-p", "lb-daemon"]))?;
    // SAFETY: single-threaded here; the harnesses read it when they start daemons.
    unsafe { std::env::set_var("LB_DAEMON_BIN", root().join("target/release/lb-daemon")) };
    let (md, json) = lb_bench::report(quick, only)?;
    let dir = root().join("target/bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("results.md"), &md)?;
    std::fs::write(dir.join("results.json"), serde_json::to_vec_pretty(&json)?).context("writing results.json")?;
    // The chart is its own crate (plotters needs fontconfig, installed by setup above).
    sh_ok(
        cargo()
            .args(["run", "-q", "-p", "bench-chart", "--"])
            .args([dir.join("results.json"), dir.join("results.png")]),
    )?;
    print!("{}", String::from_utf8_lossy(&md));
    println!("\nwritten: {} (and .json, .png)", dir.join("results.md").display());
    Ok(())
}
