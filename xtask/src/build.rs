//! `cargo xtask build-ebpf`: the eBPF objects (lb-daemon embeds two of them).

use std::{path::PathBuf, process::Command};

use anyhow::{Context as _, Result, bail};

use crate::cmd::{cargo_home_bin, root, sh_ok};

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
            [
                "-C",
                "debuginfo=2",
                "-C",
                "link-arg=--btf",
                "-C",
                "target-cpu=v3",
                // Header fields and map values in whole words, not byte by byte (LLVM 22):
                // see `stack_align` for the one place the kernel still wants alignment.
                "-C",
                "link-arg=--cpu-features=+allows-misaligned-mem-access",
            ]
            .join("\x1f"),
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
        let path = ebpf_dir().join(obj);
        let elf = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let bad = crate::stack_align::misaligned(&elf).with_context(|| format!("checking {}", path.display()))?;
        if !bad.is_empty() {
            let list: Vec<String> =
                bad.iter().map(|m| format!("  {}: instruction {}: {}", m.function, m.insn, m.what)).collect();
            bail!(
                "{obj}: stack accesses the verifier refuses (misaligned; make the fields involved \
                 word-aligned or copy them apart):\n{}",
                list.join("\n")
            );
        }
        println!("build-ebpf: {}", path.display());
    }
    Ok(())
}
