//! Finding the compiled lb-ebpf object.

use std::{borrow::Cow, path::Path};

use anyhow::{Context as _, Result, bail};

#[cfg(lb_embedded_ebpf)]
static EMBEDDED: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/lb-ebpf.o"));
#[cfg(not(lb_embedded_ebpf))]
static EMBEDDED: &[u8] = &[];

/// A loader for the object's programs other than `lb_xdp` (the decapsulator, the benchmark's
/// programs): the load balancer's tables are created with one entry, not their full size.
pub fn aux_loader() -> aya::EbpfLoader<'static> {
    use lb_common::consts::*;
    let mut loader = aya::EbpfLoader::new();
    for m in [
        MAP_CONNTRACK,
        MAP_NAT_REV,
        MAP_HALFOPEN,
        MAP_HALFOPEN_REV,
        MAP_PERSIST,
        MAP_LBLC,
        MAP_TABLES,
        MAP_REALS,
        MAP_REAL_CONNS,
        MAP_REAL_SYNS,
        MAP_REAL_STATS,
    ] {
        loader.map_max_entries(m, 1);
    }
    loader
}

/// The object given by `--bpf-object` (or `LB_EBPF_OBJECT`), else the one embedded at build
/// time. Without either, says how to build it rather than failing obscurely.
pub fn load(path: Option<&Path>) -> Result<Cow<'static, [u8]>> {
    if let Some(path) = path {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read eBPF object {}", path.display()))?;
        return Ok(Cow::Owned(bytes));
    }
    if let Some(path) = std::env::var_os("LB_EBPF_OBJECT") {
        return load(Some(Path::new(&path)));
    }
    if EMBEDDED.is_empty() {
        bail!(
            "this lb-daemon was built without its eBPF object: run `cargo xtask build-ebpf` and \
             rebuild lb-daemon, or pass --bpf-object PATH"
        );
    }
    Ok(Cow::Borrowed(EMBEDDED))
}
