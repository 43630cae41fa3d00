//! `cargo xtask build-ebpf`: the eBPF object lb-daemon embeds.

use std::{path::PathBuf, process::Command};

use anyhow::{Result, bail};

use crate::cmd::{cargo_home_bin, root, sh_ok};

/// The object `lb-daemon`'s build script embeds.
pub fn ebpf_object() -> PathBuf {
    root().join("target/ebpf/bpfel-unknown-none/release/lb-ebpf")
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
        .env("CARGO_ENCODED_RUSTFLAGS", ["-C", "debuginfo=2", "-C", "link-arg=--btf"].join("\x1f"))
        .env("PATH", path);
    // Settings meant for the host build must not leak into this one.
    for var in ["RUSTFLAGS", "RUSTC_WRAPPER", "RUSTUP_TOOLCHAIN", "CARGO_TARGET_DIR", "CARGO_BUILD_TARGET", "RUSTDOC"] {
        cmd.env_remove(var);
    }
    if !PathBuf::from("/usr/bin/cargo").exists() {
        bail!("Debian's cargo is missing: run `cargo xtask setup`");
    }
    sh_ok(&mut cmd)?;
    println!("build-ebpf: {}", ebpf_object().display());
    Ok(())
}
