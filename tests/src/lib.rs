//! Harnesses shared by the end-to-end tests (`tests/tests/`) and by the benchmarks and the
//! demo (the `lb-bench` crate).
//!
//! - [`prelude`]: what the test files import, in one line.
//! - [`addrs`]: the documentation addresses every test names hosts by.
//! - [`temp`]: a test's config files and scripts in a temp directory removed on drop.
//! - [`golden`]: output compared with a committed file (`LB_UPDATE_GOLDEN=1` rewrites it).
//! - [`inspect`]: a running data plane read back (bpftool, `lb-daemon stats`, the snapshot).
//! - [`fixture`]: runs the real XDP program on a frame through `BPF_PROG_TEST_RUN` and checks
//!   the verdict, the output frame byte for byte and the counters.
//! - [`netns`]: network namespaces and veth links with unique names, removed on drop.
//! - [`vm`]: runs a command under Debian's 6.1 kernel with virtme-ng.
//! - [`daemon`]: starts lb-daemon inside a namespace and waits until it is ready.
//! - [`packets`]: test frames, built with etherparse.
//! - [`servers`]: small TCP/UDP real servers and clients that report who answered.
//! - [`capture`]: VRRP adverts recorded on the wire with tcpdump.
//! - [`anycast`]: three load balancers behind a BIRD router doing ECMP, and the scale-out
//!   story `scale_out.rs` checks and `cargo xtask demo --anycast` prints.
//!
//! Everything here needs root, like the daemon itself.

pub mod addrs;
pub mod anycast;
pub mod capture;
pub mod daemon;
pub mod fixture;
pub mod golden;
pub mod inspect;
pub mod netns;
pub mod packets;
pub mod prelude;
pub mod servers;
pub mod temp;
pub mod vm;

use std::path::PathBuf;

/// The workspace root (where `target/` lives).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// An object `cargo xtask build-ebpf` built (`lb_common::consts::OBJ_*`), read from
/// `target/ebpf/` (or `LB_EBPF_DIR`, as lb-daemon's build script).
pub fn ebpf_object(name: &str) -> anyhow::Result<Vec<u8>> {
    use anyhow::Context as _;
    let dir = std::env::var_os("LB_EBPF_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/ebpf/bpfel-unknown-none/release"));
    let path = dir.join(name);
    std::fs::read(&path).with_context(|| format!("reading {} (run `cargo xtask build-ebpf`)", path.display()))
}

/// The benchmark's object (`lb-bench`), loaded: its maps are created, its programs not yet.
pub fn bench_object() -> anyhow::Result<aya::Ebpf> {
    use anyhow::Context as _;
    aya::Ebpf::load(&ebpf_object(lb_common::consts::OBJ_BENCH)?).context("loading the lb-bench object")
}

/// Fails loudly (not skips) when not root: every harness here needs it.
pub fn require_root() {
    assert!(nix::unistd::geteuid().is_root(), "these tests need root (namespaces, XDP, bpffs)");
}
