//! Finding the compiled lb-ebpf object.

use std::{borrow::Cow, path::Path};

use anyhow::{Context as _, Result, bail};

#[cfg(lb_embedded_ebpf)]
static EMBEDDED: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/lb-ebpf.o"));
#[cfg(not(lb_embedded_ebpf))]
static EMBEDDED: &[u8] = &[];

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
