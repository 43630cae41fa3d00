//! The data plane's pure code: arithmetic and decisions with no map, helper or packet access,
//! so `cargo xtask test` runs their unit tests on the host. The programs are the binaries:
//!
//! - `src/bin/lb-xdp/`: `lb_xdp`, the load balancer (the daemon loads and attaches it);
//! - `src/bin/lb-decap/`: `lb_decap`, TC decapsulation for real servers of TUN services;
//! - `src/bin/lb-bench/`: the benchmark's baselines, packet generator and sink.
//!
//! Each binary is its own BPF object, so the daemon loads only what it runs.
#![cfg_attr(not(test), no_std)]

pub mod csum;
pub mod ct;
pub mod decision;
pub mod hash;
pub mod hdr;
pub mod hop;
#[cfg(test)]
mod layering;
pub mod mem;
pub mod persist;
pub mod verdict;
