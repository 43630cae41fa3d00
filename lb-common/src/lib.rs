//! Map keys, values and limits shared by the BPF programs (`lb-ebpf`) and the daemon.
//!
//! Every type here is `#[repr(C)]` with explicit padding fields, so its layout is the same
//! on both sides and `bpftool map dump` can print it by field name from BTF. Changing a type
//! changes the pinned map layout: bump [`consts::LAYOUT_VERSION`].
#![no_std]

pub mod consts;
pub mod maps;
pub mod stats;

pub use maps::*;
pub use stats::*;

/// Implements `aya::Pod` for userspace builds. bytemuck's `Pod` proves the layout
/// has no padding or invalid bit patterns; aya's marker only asserts it.
macro_rules! aya_pod {
    ($($t:ty),* $(,)?) => {
        $(
            #[cfg(feature = "user")]
            // SAFETY: the type is also bytemuck::Pod (checked by its derive).
            unsafe impl aya::Pod for $t {}
        )*
    };
}
pub(crate) use aya_pod;
