//! Finding the compiled eBPF objects the daemon runs: `lb-xdp` (the load balancer) and
//! `lb-decap` (`lb-daemon decap`). The benchmark's `lb-bench` object is not the daemon's.

use std::{borrow::Cow, path::Path};

use anyhow::{Context as _, Result, bail};

#[cfg(lb_embedded_ebpf)]
static XDP: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/lb-xdp.o"));
#[cfg(lb_embedded_ebpf)]
static DECAP: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/lb-decap.o"));
#[cfg(not(lb_embedded_ebpf))]
static XDP: &[u8] = &[];
#[cfg(not(lb_embedded_ebpf))]
static DECAP: &[u8] = &[];

/// The load balancer's object: the one given by `--bpf-object` (or `LB_EBPF_OBJECT`), else
/// the one embedded at build time.
pub fn load(path: Option<&Path>) -> Result<Cow<'static, [u8]>> {
    if let Some(path) = path {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read eBPF object {}", path.display()))?;
        return Ok(Cow::Owned(bytes));
    }
    if let Some(path) = std::env::var_os("LB_EBPF_OBJECT") {
        return load(Some(Path::new(&path)));
    }
    embedded(XDP)
}

/// The decapsulator's object (embedded).
pub fn decap() -> Result<Cow<'static, [u8]>> {
    embedded(DECAP)
}

/// Without the embedded objects, says how to build them rather than failing obscurely.
fn embedded(bytes: &'static [u8]) -> Result<Cow<'static, [u8]>> {
    if bytes.is_empty() {
        bail!(
            "this lb-daemon was built without its eBPF objects: run `cargo xtask build-ebpf` and \
             rebuild lb-daemon, or pass --bpf-object PATH"
        );
    }
    Ok(Cow::Borrowed(bytes))
}
