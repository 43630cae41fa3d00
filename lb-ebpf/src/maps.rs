//! Map declarations. BTF maps (`#[btf_map]`) so `bpftool map dump` prints field names;
//! the daemon pins them under `lb_common::consts::PIN_DIR` and may resize the flow tables.

use aya_ebpf::{
    btf_maps::{Array, HashMap, LruHashMap, PerCpuArray},
    macros::btf_map,
};
use lb_common::{
    FlowKey, FlowValue, GlobalStats, Meta, NatRev, NeighKey, PersistKey, PersistValue, RealConns, RealDef, RealSyns,
    ServiceKey, ServiceStats, ServiceValue, SvcConf,
    consts::{
        DEFAULT_CONNTRACK, DEFAULT_HALFOPEN, DEFAULT_PERSIST, LBLC_ENTRIES, MAX_REALS, MAX_SERVICES, TABLE_POOL,
        UNRESOLVED_ENTRIES,
    },
};

const SVC: usize = MAX_SERVICES as usize;
const REALS: usize = MAX_REALS as usize;

#[btf_map(name = "lb_services")]
pub static SERVICES: HashMap<ServiceKey, ServiceValue, SVC> = HashMap::new();

/// Two generations per service: `id * 2 + gen`.
#[btf_map(name = "lb_svc_conf")]
pub static SVC_CONF: Array<SvcConf, { SVC * 2 }> = Array::new();

#[btf_map(name = "lb_svc_gen")]
pub static SVC_GEN: Array<u32, SVC> = Array::new();

#[btf_map(name = "lb_tables")]
pub static TABLES: Array<u32, { TABLE_POOL as usize }> = Array::new();

#[btf_map(name = "lb_reals")]
pub static REALS_MAP: Array<RealDef, REALS> = Array::new();

#[btf_map(name = "lb_real_conns")]
pub static REAL_CONNS: Array<RealConns, REALS> = Array::new();

#[btf_map(name = "lb_real_expired")]
pub static REAL_EXPIRED: Array<RealConns, REALS> = Array::new();

#[btf_map(name = "lb_real_stats")]
pub static REAL_STATS: PerCpuArray<ServiceStats, REALS> = PerCpuArray::new();

#[btf_map(name = "lb_stats")]
pub static STATS: PerCpuArray<GlobalStats, 1> = PerCpuArray::new();

#[btf_map(name = "lb_svc_stats")]
pub static SVC_STATS: PerCpuArray<ServiceStats, SVC> = PerCpuArray::new();

#[btf_map(name = "lb_conntrack")]
pub static CONNTRACK: LruHashMap<FlowKey, FlowValue, { DEFAULT_CONNTRACK as usize }> = LruHashMap::new();

#[btf_map(name = "lb_nat_rev")]
pub static NAT_REV: LruHashMap<FlowKey, NatRev, { DEFAULT_CONNTRACK as usize }> = LruHashMap::new();

/// TCP flows between their SYN and the client's first non-SYN packet (see `flow::decide`).
#[btf_map(name = "lb_halfopen")]
pub static HALFOPEN: LruHashMap<FlowKey, FlowValue, { DEFAULT_HALFOPEN as usize }> = LruHashMap::new();

/// NAT reply tuples of half-open flows (the real server's SYN-ACK comes back through them).
#[btf_map(name = "lb_halfopen_rev")]
pub static HALFOPEN_REV: LruHashMap<FlowKey, NatRev, { DEFAULT_HALFOPEN as usize }> = LruHashMap::new();

#[btf_map(name = "lb_real_syns")]
pub static REAL_SYNS: Array<RealSyns, REALS> = Array::new();

#[btf_map(name = "lb_persist")]
pub static PERSIST: LruHashMap<PersistKey, PersistValue, { DEFAULT_PERSIST as usize }> = LruHashMap::new();

#[btf_map(name = "lb_lblc")]
pub static LBLC: LruHashMap<PersistKey, u32, { LBLC_ENTRIES as usize }> = LruHashMap::new();

/// Per-CPU round-robin positions per service (rr/wrr).
#[btf_map(name = "lb_rr")]
pub static RR: PerCpuArray<u32, SVC> = PerCpuArray::new();

/// Layout version of the pinned maps; only the daemon reads and writes it.
#[btf_map(name = "lb_meta")]
pub static META: Array<Meta, 1> = Array::new();

/// Per-CPU scratch space for the parsed frame (see `parse::Frame`); not pinned.
#[btf_map(name = "lb_scratch")]
pub static SCRATCH: PerCpuArray<crate::parse::Frame, 1> = PerCpuArray::new();

/// Next hops without a neighbour entry, for the daemon to resolve (`NeighKey`); the value is
/// when it was last needed (ns). Not pinned.
#[btf_map(name = "lb_unresolved")]
pub static UNRESOLVED: LruHashMap<NeighKey, u64, { UNRESOLVED_ENTRIES as usize }> = LruHashMap::new();

/// Per-CPU parameter block of `bpf_fib_lookup`; not pinned.
#[btf_map(name = "lb_fib")]
pub static FIB: PerCpuArray<crate::fwd::FibScratch, 1> = PerCpuArray::new();
