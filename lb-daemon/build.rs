//! Embeds the eBPF object when `cargo xtask build-ebpf` has built it, so the daemon is one
//! file to deploy. Without it the daemon still builds; at run time it then needs
//! `--bpf-object` and otherwise says to run `cargo xtask build-ebpf`.
use std::{env, fs, path::PathBuf};

fn main() {
    println!("cargo::rustc-check-cfg=cfg(lb_embedded_ebpf)");
    println!("cargo::rerun-if-env-changed=LB_EBPF_OBJECT");
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let object = env::var_os("LB_EBPF_OBJECT")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../target/ebpf/bpfel-unknown-none/release/lb-ebpf"));
    println!("cargo::rerun-if-changed={}", object.display());
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo")).join("lb-ebpf.o");
    if let Ok(bytes) = fs::read(&object) {
        fs::write(&out, bytes).expect("write OUT_DIR/lb-ebpf.o");
        println!("cargo::rustc-cfg=lb_embedded_ebpf");
    }
}
