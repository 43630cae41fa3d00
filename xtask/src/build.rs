//! Building the eBPF objects and running the checks.

use std::{path::PathBuf, process::Command};

use anyhow::{Context as _, Result, bail};

use crate::setup;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Where `cargo install` puts binaries (bpf-linker).
pub fn cargo_home_bin() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cargo"))
        .join("bin")
}

/// Runs a command with inherited output; fails when it fails.
pub fn sh_ok(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

/// Where `build-ebpf` leaves the objects (`lb_common::consts::OBJ_*`); `lb-daemon`'s build
/// script embeds `lb-xdp` and `lb-decap` from here.
pub fn ebpf_dir() -> PathBuf {
    root().join("target/ebpf/bpfel-unknown-none/release")
}

/// Builds lb-ebpf with Debian's rustc 1.96 (it ships rust-src for `-Z build-std=core`;
/// rustup here cannot fetch components) and bpf-linker, with BTF so `bpftool` prints field
/// names. Its own target directory keeps the two toolchains' artifacts apart.
pub fn ebpf() -> Result<()> {
    let path = format!("{}:{}", cargo_home_bin().display(), std::env::var("PATH").unwrap_or_default());
    let mut cmd = Command::new("/usr/bin/cargo");
    cmd.current_dir(root().join("lb-ebpf"))
        .args(["build", "--release", "-Z", "build-std=core", "--target", "bpfel-unknown-none", "--target-dir"])
        .arg(root().join("target/ebpf"))
        .env("RUSTC", "/usr/bin/rustc")
        .env("RUSTC_BOOTSTRAP", "1")
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            ["-C", "debuginfo=2", "-C", "link-arg=--btf", "-C", "target-cpu=v3"].join("\x1f"),
        )
        .env("PATH", path);
    // Settings meant for the host build must not leak into this one.
    for var in ["RUSTFLAGS", "RUSTC_WRAPPER", "RUSTUP_TOOLCHAIN", "CARGO_TARGET_DIR", "CARGO_BUILD_TARGET", "RUSTDOC"] {
        cmd.env_remove(var);
    }
    if !PathBuf::from("/usr/bin/cargo").exists() {
        bail!("Debian's cargo is missing: run `cargo xtask setup`");
    }
    sh_ok(&mut cmd)?;
    for obj in [lb_common::consts::OBJ_XDP, lb_common::consts::OBJ_DECAP, lb_common::consts::OBJ_BENCH] {
        println!("build-ebpf: {}", ebpf_dir().join(obj).display());
    }
    Ok(())
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(root());
    c
}

/// Cargo arguments selecting lb-ebpf's library, built for the host with the stable toolchain
/// into its own target directory (apart from the BPF build's).
const EBPF_HOST_LIB: [&str; 5] = ["--manifest-path", "lb-ebpf/Cargo.toml", "--lib", "--target-dir", "target/ebpf-host"];

pub fn test(extra: &[String]) -> Result<()> {
    setup::run()?;
    ebpf()?;
    println!("test: cargo fmt --check");
    sh_ok(cargo().args(["fmt", "--all", "--check"]))?;
    sh_ok(cargo().args(["fmt", "--manifest-path", "lb-ebpf/Cargo.toml", "--check"]))?;
    sh_ok(cargo().args(["fmt", "--manifest-path", "fuzz/Cargo.toml", "--check"]))?;
    println!("test: cargo clippy -D warnings");
    sh_ok(cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    // lb-ebpf's library (its pure code) also builds for the host: linted and unit-tested here.
    sh_ok(cargo().args(["clippy"]).args(EBPF_HOST_LIB).args(["--", "-D", "warnings"]))?;
    println!("test: lb-ebpf's library on the host");
    sh_ok(cargo().args(["test"]).args(EBPF_HOST_LIB))?;
    // The end-to-end tests run the lb-daemon binary; `cargo test` builds only test harnesses.
    println!("test: cargo build --bins");
    sh_ok(cargo().args(["build", "--workspace", "--bins"]))?;
    println!("test: cargo test");
    sh_ok(cargo().args(["test", "--workspace", "--no-fail-fast"]).args(extra))?;
    Ok(())
}
