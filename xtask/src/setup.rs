//! Idempotent installation of everything the project needs on a fresh Debian 12 machine:
//! each step checks first and says what it does; a second run only checks.

use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::cmd::{cargo_home_bin, sh_ok};

/// Debian packages, and why each is here.
const APT: &[(&str, &str)] = &[
    ("rustc-web", "Debian's rustc 1.96 with rust-src: builds the eBPF crate with -Z build-std"),
    ("cargo-web", "its cargo"),
    ("rust-web-src", "core's source for build-std"),
    ("llvm-22-dev", "bpf-linker links against LLVM 22"),
    ("zlib1g-dev", "bpf-linker build dependency"),
    ("libzstd-dev", "bpf-linker build dependency"),
    ("bpftool", "inspect pinned maps and programs"),
    ("iproute2", "ip netns / ip link for the test topologies"),
    ("util-linux", "nsenter"),
    ("procps", "sysctl"),
    ("ethtool", "GRO on veth peers (XDP redirect targets)"),
    ("nftables", "no_accept rules (keepalived's), DNAT baseline for benchmarks, checker-flap tests"),
    ("libfontconfig1-dev", "bench-chart (plotters) finds fonts through fontconfig"),
    ("fonts-dejavu-core", "a font for the benchmark chart"),
    ("kmod", "modprobe in the VM"),
    ("keepalived", "the VRRP peer for interoperability tests"),
    ("bird2", "the BFD peer (tests/tests/bfd.rs) and the BGP speakers of tests/tests/scale_out.rs"),
    (
        "frr",
        "bfdd: the BFD peer that signals AdminDown (tests/tests/bfd.rs); zebra, bgpd, bfdd as a node's speaker (tests/tests/scale_out.rs)",
    ),
    ("ipvsadm", "reads IPVS state in the VM"),
    ("tcpdump", "what crosses the wire"),
    ("openssl", "encrypts a client key as a user would (checkers.rs's SSL block test)"),
    ("tshark", "reads `lb-daemon trace`'s pcap-ng packet comments (frame.comment)"),
    ("qemu-system-x86", "the older-kernel VM"),
    ("linux-image-amd64", "Debian's 6.1 kernel (ip_vs, ipip) for the VM"),
    ("busybox-static", "virtme-ng's initramfs"),
];

const BPF_LINKER_VERSION: &str = "0.13.0";

pub fn run() -> Result<()> {
    apt()?;
    virtme_ng()?;
    bpf_linker()?;
    println!("setup: everything is installed");
    Ok(())
}

fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${db:Status-Status}", pkg])
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout == b"installed")
}

fn apt() -> Result<()> {
    let missing: Vec<&str> = APT.iter().map(|(p, _)| *p).filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        println!("setup: apt packages present ({})", APT.len());
        return Ok(());
    }
    for (p, why) in APT.iter().filter(|(p, _)| missing.contains(p)) {
        println!("setup: installing {p}: {why}");
    }
    sh_ok(Command::new("apt-get").arg("update").arg("-q"))?;
    sh_ok(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    let still: Vec<&&str> = missing.iter().filter(|p| !installed(p)).collect();
    if !still.is_empty() {
        bail!("apt-get did not install {still:?}");
    }
    let rustc = Command::new("/usr/bin/rustc").arg("-V").output().context("running /usr/bin/rustc")?;
    println!("setup: Debian {}", String::from_utf8_lossy(&rustc.stdout).trim());
    Ok(())
}

fn virtme_ng() -> Result<()> {
    if lb_tests::vm::vng().is_ok() {
        println!("setup: virtme-ng present");
        return Ok(());
    }
    println!("setup: installing virtme-ng (PyPI) for the older-kernel VM");
    sh_ok(Command::new("python3").args(["-m", "pip", "install", "-q", "virtme-ng"]))?;
    lb_tests::vm::vng().map(|_| ())
}

fn bpf_linker() -> Result<()> {
    let bin = cargo_home_bin().join("bpf-linker");
    let version = Command::new(&bin).arg("--version").output();
    if version.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(BPF_LINKER_VERSION)) {
        println!("setup: bpf-linker {BPF_LINKER_VERSION} present");
        return Ok(());
    }
    println!("setup: building bpf-linker {BPF_LINKER_VERSION} against LLVM 22 (about a minute)");
    let path = format!("/usr/lib/llvm-22/bin:{}", std::env::var("PATH").unwrap_or_default());
    sh_ok(
        Command::new("cargo")
            .args([
                "install",
                "bpf-linker",
                "--version",
                BPF_LINKER_VERSION,
                "--no-default-features",
                "--features",
                "llvm-22",
            ])
            .env("LLVM_PREFIX", "/usr/lib/llvm-22")
            .env("LLVM_SYS_221_PREFIX", "/usr/lib/llvm-22")
            .env("PATH", path),
    )
}
