//! lb-daemon: a keepalived-compatible load balancer with an XDP data plane.
//!
//! `config` reads keepalived.conf into a typed model; `dataplane` programs the kernel;
//! `daemon` ties them together for the process's lifetime. `main.rs` is only the CLI.

pub mod check;
pub mod config;
pub mod daemon;
pub mod dataplane;
pub mod fuzzing;
pub mod ipvs;
pub mod logging;
pub mod metrics;
pub mod netlink;
pub mod notify;
pub mod pidfile;
pub mod script;
pub mod state;
pub mod vrrp;
