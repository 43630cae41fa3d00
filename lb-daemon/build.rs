//! Embeds the eBPF objects the daemon runs (`lb-xdp`, `lb-decap`) when `cargo xtask
//! build-ebpf` has built them, so the daemon is one file to deploy. Without them the daemon
//! still builds; at run time it then needs `--bpf-object` and otherwise says to run `cargo
//! xtask build-ebpf`.
use std::{env, fs, path::PathBuf};

/// Objects embedded, as named under `target/ebpf/bpfel-unknown-none/release/`
/// (`lb_common::consts::OBJ_XDP`, `OBJ_DECAP`).
const OBJECTS: [&str; 2] = ["lb-xdp", "lb-decap"];

fn main() {
    println!("cargo::rustc-check-cfg=cfg(lb_embedded_ebpf)");
    println!("cargo::rerun-if-env-changed=LB_EBPF_DIR");
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let dir = env::var_os("LB_EBPF_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../target/ebpf/bpfel-unknown-none/release"));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let mut all = true;
    for name in OBJECTS {
        let object = dir.join(name);
        println!("cargo::rerun-if-changed={}", object.display());
        match fs::read(&object) {
            Ok(bytes) => fs::write(out.join(format!("{name}.o")), bytes).expect("write OUT_DIR/<object>.o"),
            Err(_) => all = false,
        }
    }
    if all {
        println!("cargo::rustc-cfg=lb_embedded_ebpf");
    }
}
