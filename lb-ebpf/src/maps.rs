//! Map declarations. BTF maps (`#[btf_map]`) so `bpftool map dump` prints field names;
//! the daemon pins them under `lb_common::consts::PIN_DIR`.

use aya_ebpf::{
    btf_maps::{Array, HashMap, PerCpuArray},
    macros::btf_map,
};
use lb_common::{GlobalStats, Meta, ServiceKey, ServiceStats, ServiceValue, consts::MAX_SERVICES};

#[btf_map(name = "lb_services")]
pub static SERVICES: HashMap<ServiceKey, ServiceValue, { MAX_SERVICES as usize }> = HashMap::new();

#[btf_map(name = "lb_stats")]
pub static STATS: PerCpuArray<GlobalStats, 1> = PerCpuArray::new();

#[btf_map(name = "lb_svc_stats")]
pub static SVC_STATS: PerCpuArray<ServiceStats, { MAX_SERVICES as usize }> = PerCpuArray::new();

/// Layout version of the pinned maps; only the daemon reads and writes it.
#[btf_map(name = "lb_meta")]
pub static META: Array<Meta, 1> = Array::new();
