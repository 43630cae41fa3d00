//! `cargo xtask demo`: installs and builds what is missing, then runs the demo scenario
//! (`lb_bench::demo`) with `configs/demo.conf`, printing as it goes; `--anycast` runs the
//! scale-out story instead (`lb_tests::anycast`, `configs/anycast/`).

use std::path::Path;

use anyhow::Result;

use crate::cmd::{cargo, root, sh_ok};

pub fn run(anycast: bool) -> Result<()> {
    crate::setup::run()?;
    crate::build::ebpf()?;
    sh_ok(cargo().args(["build", "-p", "lb-daemon"]))?;
    if anycast {
        // The scale-out story (`lb_tests::anycast`, checked by tests/tests/scale_out.rs).
        let f = lb_tests::anycast::story(&mut std::io::stdout())?;
        println!("\nanycast demo finished in {:.1} s.", f.took.as_secs_f64());
        return Ok(());
    }
    lb_bench::demo::run(&root().join("configs"), Path::new(lb_common::consts::PIN_DIR), &mut std::io::stdout())?;
    println!("\ndemo finished.");
    Ok(())
}
