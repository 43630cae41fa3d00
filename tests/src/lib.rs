//! Harnesses shared by the end-to-end tests (`tests/tests/`), the demo and the benchmarks.
//!
//! - [`fixture`]: runs the real XDP program on a frame through `BPF_PROG_TEST_RUN` and checks
//!   the verdict, the output frame byte for byte and the counters.
//! - [`netns`]: network namespaces and veth links with unique names, removed on drop.
//! - [`vm`]: runs a command under Debian's 6.1 kernel with virtme-ng.
//! - [`daemon`]: starts lb-daemon inside a namespace and waits until it is ready.
//! - [`servers`]: small TCP/UDP real servers and clients that report who answered.
//! - [`demo`]: the `cargo xtask demo` scenario, also run as a test.
//!
//! Everything here needs root, like the daemon itself.

pub mod bench;
pub mod bench_cps;
pub mod bench_packet;
pub mod bench_scale;
pub mod bench_tput;
pub mod daemon;
pub mod demo;
pub mod fixture;
pub mod netns;
pub mod packets;
pub mod servers;
pub mod vm;

use std::path::PathBuf;

/// The workspace root (where `target/` lives).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Fails loudly (not skips) when not root: every harness here needs it.
pub fn require_root() {
    assert!(nix::unistd::geteuid().is_root(), "these tests need root (namespaces, XDP, bpffs)");
}
