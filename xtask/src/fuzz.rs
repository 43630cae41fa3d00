//! `cargo xtask fuzz [TARGET] [--seconds N]`: libFuzzer through cargo-fuzz on the machine's
//! nightly toolchain, bounded in time, starting from the committed seed corpus
//! (fuzz/corpus/TARGET). A crash is saved under fuzz/artifacts/ and fails the command; turn
//! it into a regression test beside the code it broke.

use std::process::Command;

use anyhow::Result;

use crate::cmd::{cargo_home_bin, root, sh_ok};

pub fn run(target: &str, seconds: u64) -> Result<()> {
    if !cargo_home_bin().join("cargo-fuzz").exists() {
        println!("fuzz: installing cargo-fuzz");
        sh_ok(Command::new("cargo").args(["install", "cargo-fuzz", "--version", "0.13.2"]))?;
    }
    // Fuzz a scratch copy of the corpus so new inputs do not dirty the committed seeds.
    let seeds = root().join("fuzz/corpus").join(target);
    let work = root().join("target/fuzz-corpus").join(target);
    std::fs::create_dir_all(&work)?;
    for e in std::fs::read_dir(&seeds)? {
        let p = e?.path();
        std::fs::copy(&p, work.join(p.file_name().unwrap_or_default()))?;
    }
    sh_ok(
        Command::new("cargo")
            .current_dir(root().join("fuzz"))
            .args(["+nightly", "fuzz", "run", target])
            .arg(&work)
            .arg(&seeds)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("CARGO"),
    )?;
    println!("fuzz: {target} ran {seconds} s without a crash");
    Ok(())
}
