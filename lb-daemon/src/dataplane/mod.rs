//! Where the configured services are forwarded. `bpf` is the XDP data plane; the IPVS
//! fallback will sit beside it behind a shared trait.

pub mod bpf;
pub mod decap;
pub mod object;
pub mod services;
pub mod tables;
