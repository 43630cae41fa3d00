//! `cargo xtask test`: setup, the eBPF object, formatting, clippy, then every test.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::cmd::{cargo, root, sh_ok};

/// Cargo arguments selecting lb-ebpf's library, built for the host with the stable toolchain
/// into its own target directory (apart from the BPF build's).
const EBPF_HOST_LIB: [&str; 5] = ["--manifest-path", "lb-ebpf/Cargo.toml", "--lib", "--target-dir", "target/ebpf-host"];

/// lb-tests' test targets run side by side, one chain per entry, after the others: the VRRP
/// tests spend their time waiting on protocol timers (half a core for 2 threads), the VM
/// tests in qemu's one emulated CPU, so together they take the time of the longer chain
/// instead of the sum (about 6 of the suite's minutes on 2 cores). Timing-sensitive VRRP
/// tests live in vrrp_timing, which runs with the others.
const SIDE_BY_SIDE: [&[&str]; 2] = [&["vrrp"], &["ipvs", "vm_kernel"]];

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
        // A developer's filtered run: cargo's own order.
        println!("test: cargo test");
        return sh_ok(cargo().args(["test", "--workspace", "--no-fail-fast"]).args(extra));
    }
    let mut failed = Vec::new();
    // Every cargo run selects the whole workspace, so features unify as in one `cargo test
    // --workspace` and nothing is built twice.
    let beside: Vec<&str> = SIDE_BY_SIDE.iter().flat_map(|c| c.iter().copied()).collect();
    println!("test: cargo test (all but {}, which follow side by side)", beside.join(", "));
    let mut sequential = cargo();
    sequential.args(["test", "--workspace", "--no-fail-fast", "--lib", "--bins"]);
    for t in test_targets()?.iter().filter(|t| !beside.contains(&t.as_str())) {
        sequential.args(["--test", t]);
    }
    if sh_ok(&mut sequential).is_err() {
        failed.push("cargo test".to_string());
    }
    if sh_ok(cargo().args(["test", "--workspace", "--doc"])).is_err() {
        failed.push("doc tests".to_string());
    }
    println!("test: side by side: {}", SIDE_BY_SIDE.map(|c| c.join(" then ")).join(" | "));
    failed.extend(side_by_side()?);
    if !failed.is_empty() {
        bail!("failed: {}", failed.join("; "));
    }
    Ok(())
}

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
    names.sort();
    Ok(names)
}

/// Builds the side-by-side targets, runs each chain in its own thread (the harnesses
/// directly: `cargo test` holds the build directory's lock while its tests run), prints each
/// harness's output when it ends (target/side-by-side/NAME.log meanwhile); returns the
/// targets that failed.
fn side_by_side() -> Result<Vec<String>> {
    let mut build = cargo();
    build.args(["test", "--workspace", "--no-run", "--message-format=json-render-diagnostics"]);
    for t in SIDE_BY_SIDE.iter().flat_map(|c| c.iter()) {
        build.args(["--test", t]);
    }
    let out = build.stderr(Stdio::inherit()).output().with_context(|| format!("running {build:?}"))?;
    if !out.status.success() {
        bail!("{build:?} failed: {}", out.status);
    }
    let exes = test_executables(&String::from_utf8_lossy(&out.stdout))?;
    let logs = root().join("target/side-by-side");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let failed = std::sync::Mutex::new(Vec::new());
    let print = std::sync::Mutex::new(());
    std::thread::scope(|s| {
        for chain in SIDE_BY_SIDE {
            let (exes, failed, print, logs) = (&exes, &failed, &print, &logs);
            s.spawn(move || {
                for t in chain {
                    let (ok, text) = match exes.iter().find(|(n, _)| n == t) {
                        Some((_, exe)) => run_logged(t, exe, &logs.join(format!("{t}.log"))),
                        None => (false, format!("no test executable for {t} in cargo's output\n")),
                    };
                    let _guard = print.lock();
                    print!("{text}");
                    if !ok {
                        failed.lock().map(|mut f| f.push(format!("tests/{t}.rs"))).ok();
                    }
                }
            });
        }
    });
    Ok(failed.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner()))
}

/// (target name, executable) for every test harness in cargo's JSON messages.
fn test_executables(json: &str) -> Result<Vec<(String, PathBuf)>> {
    let mut exes = Vec::new();
    for line in json.lines() {
        let m: serde_json::Value = serde_json::from_str(line).with_context(|| format!("cargo message {line:?}"))?;
        if let (Some(name), Some(exe)) = (m["target"]["name"].as_str(), m["executable"].as_str()) {
            exes.push((name.to_string(), PathBuf::from(exe)));
        }
    }
    Ok(exes)
}

/// A side-by-side harness that runs longer than this is killed and counted as failed (the
/// longest, vrrp, takes about 8 minutes on 2 cores).
const HARNESS_LIMIT: Duration = Duration::from_secs(20 * 60);

/// Runs one harness as `cargo test` would (in its package's directory) with its output in
/// `log` (a file, not a pipe: processes a test leaves behind cannot hold the run open, and
/// the output so far survives a kill), killed after `HARNESS_LIMIT`; returns whether it
/// passed and cargo's heading with everything it printed.
fn run_logged(name: &str, exe: &Path, log: &Path) -> (bool, String) {
    let mut text = format!("     Running tests/{name}.rs ({}, output in {})\n", exe.display(), log.display());
    let outcome = (|| -> Result<Option<std::process::ExitStatus>> {
        let file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        // Not niced: qemu at nice 19 beside the VRRP tests starved the VM until lb-daemon in
        // it missed a 10 s stop deadline.
        let mut child = Command::new(exe)
            .current_dir(root().join("tests"))
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("running {}", exe.display()))?;
        let deadline = Instant::now() + HARNESS_LIMIT;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    })();
    text.push_str(&std::fs::read_to_string(log).unwrap_or_default());
    match outcome {
        Ok(Some(status)) => (status.success(), text),
        Ok(None) => {
            text.push_str(&format!("killed after {} s\n", HARNESS_LIMIT.as_secs()));
            (false, text)
        }
        Err(e) => {
            text.push_str(&format!("{e:#}\n"));
            (false, text)
        }
    }
}
