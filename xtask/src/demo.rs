//! `cargo xtask demo`: installs and builds what is missing, then runs the demo scenario
//! (`lb_bench::demo`) with `configs/demo.conf`, printing as it goes.

use std::path::Path;

use anyhow::Result;

use crate::cmd::{cargo, root, sh_ok};

pub fn run() -> Result<()> {
    crate::setup::run()?;
    crate::build::ebpf()?;
    sh_ok(cargo().args(["build", "-p", "lb-daemon"]))?;
    lb_bench::demo::run(&root().join("configs"), Path::new(lb_common::consts::PIN_DIR), &mut std::io::stdout())?;
    println!("\ndemo finished.");
    Ok(())
}
