//! `cargo xtask test`: setup, the eBPF object, formatting, clippy, then every test.

use anyhow::{Context as _, Result, bail};

use crate::cmd::{cargo, sh_ok};

/// Cargo arguments selecting lb-ebpf's library, built for the host with the stable toolchain
/// into its own target directory (apart from the BPF build's).
const EBPF_HOST_LIB: [&str; 5] = ["--manifest-path", "lb-ebpf/Cargo.toml", "--lib", "--target-dir", "target/ebpf-host"];

pub fn run(extra: &[String]) -> Result<()> {
    crate::setup::run()?;
    crate::build::ebpf()?;
    println!("test: cargo fmt --check");
    sh_ok(cargo().args(["fmt", "--all", "--check"]))?;
    sh_ok(cargo().args(["fmt", "--manifest-path", "lb-ebpf/Cargo.toml", "--check"]))?;
    sh_ok(cargo().args(["fmt", "--manifest-path", "fuzz/Cargo.toml", "--check"]))?;
    println!("test: cargo clippy -D warnings");
    sh_ok(cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    // lb-ebpf's library (its pure code) also builds for the host: linted and unit-tested here.
    sh_ok(cargo().args(["clippy"]).args(EBPF_HOST_LIB).args(["--", "-D", "warnings"]))?;
    // Its unit tests too (`--tests` would also build the BPF binaries, which need nightly).
    sh_ok(cargo().args(["clippy"]).args(EBPF_HOST_LIB).args(["--profile", "test", "--", "-D", "warnings"]))?;
    println!("test: lb-ebpf's library on the host");
    sh_ok(cargo().args(["test"]).args(EBPF_HOST_LIB))?;
    // The end-to-end tests run the lb-daemon binary; `cargo test` builds only test harnesses.
    println!("test: cargo build --bins");
    sh_ok(cargo().args(["build", "--workspace", "--bins"]))?;
    if !extra.is_empty() {
        // A developer's filtered run: cargo's own order and thread count.
        println!("test: cargo test");
        return sh_ok(cargo().args(["test", "--workspace", "--no-fail-fast"]).args(extra));
    }
    // Every cargo run selects the whole workspace, so features unify as in one `cargo test
    // --workspace` and nothing is built twice.
    let mut failed = Vec::new();
    let apart: Vec<&str> = TIMER_BOUND.iter().map(|(t, _)| *t).collect();
    println!("test: cargo test (all but {}, which follow)", apart.join(", "));
    let mut rest = cargo();
    rest.args(["test", "--workspace", "--no-fail-fast", "--lib", "--bins"]);
    for t in test_targets()?.iter().filter(|t| !apart.contains(&t.as_str())) {
        rest.args(["--test", t]);
    }
    if sh_ok(&mut rest).is_err() {
        failed.push("cargo test".to_string());
    }
    if sh_ok(cargo().args(["test", "--workspace", "--no-fail-fast", "--doc"])).is_err() {
        failed.push("doc tests".to_string());
    }
    for (target, threads) in TIMER_BOUND {
        println!("test: tests/{target}.rs, {threads} tests at a time");
        let mut one = cargo();
        one.args(["test", "--workspace", "--no-fail-fast", "--test", target, "--", "--test-threads"]);
        if sh_ok(one.arg(threads.to_string())).is_err() {
            failed.push(format!("tests/{target}.rs"));
        }
    }
    if !failed.is_empty() {
        bail!("failed: {}", failed.join("; "));
    }
    Ok(())
}

/// Test targets whose tests spend their time waiting on protocol timers (adverts, master-down
/// intervals, keepalived's start): run after the others with more tests at once than the
/// machine's 2 cores (about a core for 4). Timing-sensitive VRRP tests live in vrrp_timing,
/// which keeps cargo's default.
const TIMER_BOUND: [(&str, usize); 1] = [("vrrp", 4)];

/// The names of the workspace's integration test targets, from cargo's metadata.
fn test_targets() -> Result<Vec<String>> {
    let mut meta = cargo();
    meta.args(["metadata", "--format-version", "1", "--no-deps"]);
    let out = meta.output().with_context(|| format!("running {meta:?}"))?;
    if !out.status.success() {
        bail!("{meta:?} failed: {}", out.status);
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).context("cargo metadata's output")?;
    let mut names = Vec::new();
    for target in
        meta["packages"].as_array().into_iter().flatten().flat_map(|p| p["targets"].as_array().into_iter().flatten())
    {
        if target["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "test"))
            && let Some(name) = target["name"].as_str()
        {
            names.push(name.to_string());
        }
    }
    // `--test NAME` selects the target of that name in every package: once is enough.
    names.sort();
    names.dedup();
    Ok(names)
}
