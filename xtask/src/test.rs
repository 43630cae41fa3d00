//! `cargo xtask test`: setup, the eBPF object, formatting, clippy, then every test.

use anyhow::Result;

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
    println!("test: cargo test");
    sh_ok(cargo().args(["test", "--workspace", "--no-fail-fast"]).args(extra))?;
    Ok(())
}
