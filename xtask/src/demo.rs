//! `cargo xtask demo`: installs and builds what is missing, then runs the shared demo
//! scenario (`lb_tests::demo`) with `configs/demo.conf`, printing as it goes.

use std::{path::Path, process::Command};

use anyhow::Result;

use crate::build::{root, sh_ok};

pub fn run() -> Result<()> {
    crate::setup::run()?;
    crate::build::ebpf()?;
    sh_ok(Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())).current_dir(root()).args([
        "build",
        "-p",
        "lb-daemon",
    ]))?;
    lb_tests::demo::run(&root().join("configs"), Path::new(lb_common::consts::PIN_DIR), &mut std::io::stdout())?;
    println!("\ndemo finished.");
    Ok(())
}
