//! `cargo xtask <command>`: everything a fresh machine needs, in one place.
//!
//! Modules import one way: `cmd` (paths, processes) ← `setup` ← `build` ← the commands
//! (`test`, `demo`, `bench`, `fuzz`) ← `main`.

mod bench;
mod build;
mod cmd;
mod demo;
mod fuzz;
mod setup;
mod stack_align;
mod test;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what the project needs (apt packages, virtme-ng, bpf-linker); skips what is there.
    Setup,
    /// Build lb-ebpf for bpfel-unknown-none in release with BTF.
    BuildEbpf,
    /// Setup, build-ebpf, fmt --check, clippy -D warnings, then every test.
    Test {
        /// Extra arguments for `cargo test` (e.g. a test name filter).
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// Setup, build, run the load balancer in namespaces and show it working.
    Demo {
        /// Instead: three load balancers behind a BIRD router doing ECMP (docs/scale-out.md),
        /// a node killed and back, a quorum loss, a SIGTERM, with 1000 connections kept.
        #[arg(long)]
        anycast: bool,
    },
    /// Measure the data plane, control plane and failover; write target/bench/results.{md,json,png}. Never fails on timing.
    Bench {
        /// One run per scenario instead of five, smaller tables and shorter runs.
        #[arg(long)]
        quick: bool,
        /// Only these sections (per_packet, throughput, connections_per_second, reload_scale,
        /// memory_per_flow, checker_scale, failover); the report holds only them.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
    /// Run a cargo-fuzz target for a bounded time (nightly toolchain; installs cargo-fuzz).
    Fuzz {
        /// Target name (fuzz/fuzz_targets/): config, vrrp_advert, ipvs_msg, ipvs_sync, http_reply.
        #[arg(default_value = "config")]
        target: String,
        /// How long to fuzz.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Setup => setup::run(),
        Cmd::BuildEbpf => build::ebpf(),
        Cmd::Test { args } => test::run(&args),
        Cmd::Demo { anycast } => demo::run(anycast),
        Cmd::Bench { quick, only } => bench::run(quick, &only),
        Cmd::Fuzz { target, seconds } => fuzz::run(&target, seconds),
    }
}
