//! Every map of `lb_xdp`, with what it is for. BTF maps, so `bpftool map dump` prints field
//! names. Each static is named exactly as its map (`lb_common::consts::MAP_*`; the suite
//! checks the object against that list): the daemon pins the shared ones under
//! `lb_common::consts::PIN_DIR` and sizes the flow tables at load.
#![allow(non_upper_case_globals)]

use aya_ebpf::{
    btf_maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
    macros::btf_map,
};
use lb_common::{
    FlowKey, FlowKey4, FlowValue, FragKey, FragValue, GlobalStats, IfaceMac, LocalMac, Meta, NatRev, NeighKey, NextHop,
    PersistKey, PersistValue, PuntRecord, RealConns, RealDef, RealSyns, ServiceKey, ServiceKey4, ServiceStats,
    ServiceValue, SvcConf, TraceCfg, TraceRecord,
    consts::{
        DEFAULT_CONNTRACK, DEFAULT_HALFOPEN, DEFAULT_PERSIST, FRAG_ENTRIES, GIVEUP_ENTRIES, LBLC_ENTRIES,
        LOCAL_MACS_ENTRIES, MAX_IFINDEX, MAX_REALS, MAX_SERVICES, PUNT_RECORDS, TABLE_POOL, TRACE_RING_BYTES,
        UNRESOLVED_ENTRIES,
    },
};

use crate::scratch::{CSUM_CHUNK, FibScratch, Frame};

const SVC: usize = MAX_SERVICES as usize;
const REALS: usize = MAX_REALS as usize;

// --- Services and real servers (written by the daemon, read per packet) ---

/// Virtual service (VIP, port, protocol) → its id, fixed for the service's lifetime.
#[btf_map]
pub static lb_services: HashMap<ServiceKey, ServiceValue, SVC> = HashMap::new();

/// `lb_services`' IPv4 entries by an 8-byte key, which the kernel hashes faster: IPv4 frames
/// are looked up here. The daemon writes both.
#[btf_map]
pub static lb_services4: HashMap<ServiceKey4, ServiceValue, SVC> = HashMap::new();

/// A service's configuration in two generations: `id * 2 + gen` (see `SvcConf`).
#[btf_map]
pub static lb_svc_conf: Array<SvcConf, { SVC * 2 }> = Array::new();

/// The live generation of each service's configuration (flipped by one 4-byte store).
#[btf_map]
pub static lb_svc_gen: Array<u32, SVC> = Array::new();

/// Per service id: `FENCE_*` (0: load-balanced here; otherwise VRRP says this node must not).
#[btf_map]
pub static lb_svc_fence: Array<u32, SVC> = Array::new();

/// Shared pool of scheduling tables (Maglev, weighted sequences, hash tables, (real,
/// weight) pairs); each configuration generation owns a slice.
#[btf_map]
pub static lb_tables: Array<u32, { TABLE_POOL as usize }> = Array::new();

/// Real server id → address, port, tunnel source, service, weight, presence.
#[btf_map]
pub static lb_reals: Array<RealDef, REALS> = Array::new();

// --- Connection counts for lc/wlc/lblc ---

/// Established flows opened per real server (atomic adds by the data plane only).
#[btf_map]
pub static lb_real_conns: Array<RealConns, REALS> = Array::new();

/// Flows the daemon found expired and deleted, per real server: live = conns - expired.
#[btf_map]
pub static lb_real_expired: Array<RealConns, REALS> = Array::new();

/// SYNs sent to each real server in the current and previous second (lc/wlc tie-break).
#[btf_map]
pub static lb_real_syns: Array<RealSyns, REALS> = Array::new();

// --- Counters (per CPU; userspace sums) ---

/// Packets, bytes and new flows per real server. A service's totals are summed in userspace
/// (its real servers, `lb_svc_direct`, `lb_svc_carry`): a forwarded packet updates one entry.
#[btf_map]
pub static lb_real_stats: PerCpuArray<ServiceStats, REALS> = PerCpuArray::new();

/// Every frame by verdict and reason (`GlobalStats`).
#[btf_map]
pub static lb_stats: PerCpuArray<GlobalStats, 1> = PerCpuArray::new();

/// A service's frames no live real server counts: dropped for want of one (packets, bytes,
/// drops), and NAT replies of a freed real server (packets, bytes).
#[btf_map]
pub static lb_svc_direct: PerCpuArray<ServiceStats, SVC> = PerCpuArray::new();

/// What a service's real servers counted before the daemon freed their ids, and one more
/// entry, the daemon's sequence (`CARRY_SEQ`); only the daemon reads and writes it.
#[btf_map]
pub static lb_svc_carry: Array<ServiceStats, { SVC + 1 }> = Array::new();

// --- Flow state ---

/// Established IPv6 flows (5-tuple → real server); a flow keeps its real server while it
/// lives.
#[btf_map]
pub static lb_conntrack: LruHashMap<FlowKey, FlowValue, { DEFAULT_CONNTRACK as usize }> = LruHashMap::new();

/// Established IPv4 flows, as `lb_conntrack` by a 16-byte key: every tracked packet hashes
/// its key, and 16 bytes take jhash two mixing rounds fewer than 40 (`flow::established`).
#[btf_map]
pub static lb_conntrack4: LruHashMap<FlowKey4, FlowValue, { DEFAULT_CONNTRACK as usize }> = LruHashMap::new();

/// NAT replies: the reply's 5-tuple (real server → client) → the VIP and port to put back.
#[btf_map]
pub static lb_nat_rev: LruHashMap<FlowKey, NatRev, { DEFAULT_CONNTRACK as usize }> = LruHashMap::new();

/// Flows between their first packet (a bare SYN, a UDP datagram) and the client's next (see
/// `flow::decide`): a spoofed flood churns this table, never `lb_conntrack`.
#[btf_map]
pub static lb_halfopen: LruHashMap<FlowKey, FlowValue, { DEFAULT_HALFOPEN as usize }> = LruHashMap::new();

/// NAT reply tuples of half-open flows (the real server's SYN-ACK comes back through them).
#[btf_map]
pub static lb_halfopen_rev: LruHashMap<FlowKey, NatRev, { DEFAULT_HALFOPEN as usize }> = LruHashMap::new();

/// NAT real server (address, port, protocol, as a `ServiceKey`) → the one VIP and port its
/// replies are checked against (`flow::nat_reply_of`), written by the daemon from the
/// configuration: a flow to that VIP and real server keeps no reverse entry of its own. Not
/// preallocated, so an entry the daemon replaces is freed after an RCU grace period: a packet
/// reading the old value never sees it reused under it.
#[btf_map]
pub static lb_real_rev: HashMap<ServiceKey, NatRev, REALS, BPF_F_NO_PREALLOC> = HashMap::new();

/// `lb_real_rev`'s IPv4 entries by an 8-byte key (`flow::real_rev`), written with them, as
/// `lb_services4` beside `lb_services`: a NAT reply looks one up.
#[btf_map]
pub static lb_real_rev4: HashMap<ServiceKey4, NatRev, REALS, BPF_F_NO_PREALLOC> = HashMap::new();

/// `map_flags`: elements allocated on update and freed after an RCU grace period.
const BPF_F_NO_PREALLOC: usize = 1;

/// Persistence: (service, masked client address) → real server, with last use.
#[btf_map]
pub static lb_persist: LruHashMap<PersistKey, PersistValue, { DEFAULT_PERSIST as usize }> = LruHashMap::new();

/// lblc: (service, destination address) → the real server it was last given.
#[btf_map]
pub static lb_lblc: LruHashMap<PersistKey, u32, { LBLC_ENTRIES as usize }> = LruHashMap::new();

/// Fragmented datagrams: what each one's first fragment decided, for its later fragments.
#[btf_map]
pub static lb_frags: LruHashMap<FragKey, FragValue, { FRAG_ENTRIES as usize }> = LruHashMap::new();

/// Datagrams the daemon gave up replaying held fragments of: those go to the stack.
#[btf_map]
pub static lb_frag_giveup: LruHashMap<FragKey, u8, { GIVEUP_ENTRIES as usize }> = LruHashMap::new();

/// Frames handed to the daemon (`PuntRecord`): held fragments, IPv4 datagrams to fragment.
#[btf_map]
pub static lb_punt: RingBuf<PuntRecord, { PUNT_BYTES }> = RingBuf::new();

/// Room for `PUNT_RECORDS` records (each with the ring's 8-byte header), a power of two.
const PUNT_BYTES: usize = ((PUNT_RECORDS as usize) * (core::mem::size_of::<PuntRecord>() + 8)).next_power_of_two();

/// Per-CPU round-robin positions per service (rr/wrr).
#[btf_map]
pub static lb_rr: PerCpuArray<u32, SVC> = PerCpuArray::new();

// --- Tracing (`lb-daemon trace`) ---

/// The tracer's filter (`TraceCfg`); `enabled` 0 (no tracer): nothing is written.
#[btf_map]
pub static lb_trace_cfg: Array<TraceCfg, 1> = Array::new();

/// Traced frames' decisions (`TraceRecord`) for the tracer to read.
#[btf_map]
pub static lb_trace: RingBuf<TraceRecord, { TRACE_RING_BYTES as usize }> = RingBuf::new();

// --- Daemon bookkeeping ---

/// Per ingress interface (by ifindex): how the program runs there (`IFACE_*` flags).
#[btf_map]
pub static lb_ifaces: Array<u32, { MAX_IFINDEX as usize }> = Array::new();

/// Per ingress interface (by ifindex): its MAC; frames unicast to another one are not ours.
#[btf_map]
pub static lb_iface_mac: Array<IfaceMac, { MAX_IFINDEX as usize }> = Array::new();

/// MACs of macvlans on an ingress interface: frames to them are ours too. Not pinned.
#[btf_map]
pub static lb_local_macs: HashMap<LocalMac, u8, { LOCAL_MACS_ENTRIES as usize }> = HashMap::new();

/// Layout version of the pinned maps; only the daemon reads and writes it.
#[btf_map]
pub static lb_meta: Array<Meta, 1> = Array::new();

/// Next hops without a neighbour entry, for the daemon to resolve; the value is when it was
/// last needed (ns). Not pinned.
#[btf_map]
pub static lb_unresolved: LruHashMap<NeighKey, u64, { UNRESOLVED_ENTRIES as usize }> = LruHashMap::new();

/// The next-hop cache: two `NextHop` slots per real server id (`id * 2 + slot`), filled by
/// the daemon (`lb_daemon::dataplane::nexthop`) so a packet to a real server skips
/// `bpf_fib_lookup`. Not pinned.
#[btf_map]
pub static lb_nexthop: Array<NextHop, { REALS * 2 }> = Array::new();

/// Per real server id: the live `lb_nexthop` slot (`generation << 2 | NEXTHOP_LIVE | slot`),
/// 0 for none.
#[btf_map]
pub static lb_nexthop_sel: Array<u32, REALS> = Array::new();

/// Until when (coarse ns) the daemon vouches for `lb_nexthop`; past it, the FIB decides.
#[btf_map]
pub static lb_nexthop_lease: Array<u64, 1> = Array::new();

// --- Per-CPU scratch (not pinned; see `scratch.rs`) ---

/// The parsed frame.
#[btf_map]
pub static lb_scratch: PerCpuArray<Frame, 1> = PerCpuArray::new();

/// `bpf_fib_lookup`'s parameter block and `lb_unresolved`'s key and value.
#[btf_map]
pub static lb_fib: PerCpuArray<FibScratch, 1> = PerCpuArray::new();

/// A chunk of a segment being checksummed (`offload.rs`), with room to pad a word.
#[btf_map]
pub static lb_csum_buf: PerCpuArray<[u8; CSUM_CHUNK + 4], 1> = PerCpuArray::new();
