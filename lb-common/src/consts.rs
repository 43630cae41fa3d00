//! Limits, names and timeouts in one place (Katran's style): both sides read them from here.

/// Version of the pinned map layout. A daemon finding pins with another version refuses
/// to adopt them (and says how to clear them) rather than misreading them, except those of
/// `LAYOUT_UPGRADES_FROM`.
pub const LAYOUT_VERSION: u32 = 11;
/// Layouts this one adopts: 9 lacks only `lb_conntrack4` (created, then given the IPv4 flows
/// of `lb_conntrack`) and `lb_real_rev4` (created, then filled from `lb_real_rev`, as for the
/// first builds of layout 10, which had none either), 8 also `lb_services4` (created, then filled from `lb_services`), 7
/// also `lb_real_rev`, created empty (its flows all have reverse entries of their own). A
/// daemon of layout 7 refuses 8's pins: their NAT flows rely on `lb_real_rev`, which it does
/// not read; one of 8 refuses 9's, whose IPv4 services it would not write where the program
/// looks; one of 9 refuses 10's, whose IPv4 flows it would not see. 10 counted each service's
/// packets in `lb_svc_stats`: its totals are carried into `lb_svc_carry` (less what its real
/// servers hold) and the map goes; a daemon of 10 refuses 11's, which it would read as zeros.
pub const LAYOUT_UPGRADES_FROM: [u32; 4] = [7, 8, 9, 10];

/// Directory under bpffs holding this project's pinned maps and links.
pub const PIN_DIR: &str = "/sys/fs/bpf/lb";

/// Most virtual services (VIP, port, protocol) the data plane holds.
pub const MAX_SERVICES: u32 = 4096;
/// Most real servers over all services (a real server is per service: its id carries the
/// service, weight and health).
pub const MAX_REALS: u32 = 65536;
/// Entries in the shared pool of scheduling tables (u32 each: 16 MiB). Each service uses two
/// slices of it (double buffer): a Maglev table of `MH_TABLE_SIZE`, a weighted sequence for
/// rr/wrr, a hash table of `SH_TABLE_SIZE` for sh/dh, or (real, weight) pairs for lc/wlc/lblc.
pub const TABLE_POOL: u32 = 1 << 22;
/// Maglev lookup table size: a prime, so every skip value walks the whole table.
pub const MH_TABLE_SIZE: u32 = 65537;
/// sh/dh hash table size (prime).
pub const SH_TABLE_SIZE: u32 = 4093;
/// Longest weighted rr/wrr sequence; weights are scaled down to fit.
pub const MAX_SEQUENCE: u32 = 4096;
/// lc/wlc/lblc scan this many real servers at most (the data plane loop bound).
pub const MAX_SCAN: u32 = 64;

/// Default connection-tracking and NAT-reverse table size (entries); `--conntrack-size`
/// changes it. It sizes `lb_conntrack4` (IPv4 flows) and `lb_conntrack` (IPv6 flows) alike,
/// as Cilium sizes its two CT maps. An `lb_conntrack` entry costs 128 bytes with the
/// kernel's LRU element header, an `lb_conntrack4` one 104, an `lb_nat_rev` one 144
/// (`cargo xtask bench` measures them from `bytes_memlock`).
pub const DEFAULT_CONNTRACK: u32 = 262_144;
/// A TCP flow whose first packet was a SYN waits in `lb_halfopen` (and, for NAT, its reply
/// tuple in `lb_halfopen_rev`) until the client's first non-SYN packet moves it into
/// `lb_conntrack4`/`lb_conntrack`: a SYN flood churns this table, not the established flows'. Sized as a
/// fraction of the connection table, never below `MIN_HALFOPEN`.
pub const HALFOPEN_DIVISOR: u32 = 4;
pub const MIN_HALFOPEN: u32 = 4096;
pub const DEFAULT_HALFOPEN: u32 = DEFAULT_CONNTRACK / HALFOPEN_DIVISOR;

/// Half-open table size for a connection table of `conntrack` entries.
pub const fn halfopen_size(conntrack: u32) -> u32 {
    let n = conntrack / HALFOPEN_DIVISOR;
    if n < MIN_HALFOPEN { MIN_HALFOPEN } else { n }
}

pub const DEFAULT_PERSIST: u32 = 65_536;
/// Datagrams whose fragments are being followed (`lb_frags`): first fragment → decision.
pub const FRAG_ENTRIES: u32 = 16_384;
/// How long a fragment entry answers for its datagram's later fragments (seconds): the
/// kernel's `ipfrag_time`.
pub const FRAG_TIMEOUT: u64 = 30;
/// Bytes of a frame the hand-over ring to the daemon carries (native XDP frames on veth are
/// at most 3,520 bytes; a larger one is dropped and counted as `punt_full`).
pub const PUNT_MAX: usize = 4096;
/// Records the hand-over ring holds.
pub const PUNT_RECORDS: u32 = 128;
/// Datagrams the daemon gave up replaying: their held fragments go to the stack.
pub const GIVEUP_ENTRIES: u32 = 1024;
/// Bytes of each traced frame `lb_trace` carries (its start, as it leaves `lb_xdp`): the
/// Ethernet, IP and TCP/UDP headers, with a TUN service's outer header too.
pub const TRACE_SNAP: usize = 128;
/// Bytes of the trace ring (`lb_trace`): about 1,200 records of `TraceRecord` (216 bytes with
/// the ring's header), held in kernel memory for as long as the pins exist.
pub const TRACE_RING_BYTES: u32 = 256 * 1024;
pub const LBLC_ENTRIES: u32 = 65_536;

/// Flow timeouts (seconds), IPVS's defaults.
pub const TCP_SYN_TIMEOUT: u64 = 60;
pub const TCP_EST_TIMEOUT: u64 = 900;
pub const TCP_CLOSE_TIMEOUT: u64 = 10;
pub const UDP_TIMEOUT: u64 = 300;

/// How long a flow entry in `state` (`CT_*`) lives without packets, in seconds: the data
/// plane's expiry rule (`lb_ebpf::ct`) and what userspace reports (`lb-daemon conns`).
pub const fn flow_timeout_secs(state: u8) -> u64 {
    match state {
        CT_SYN => TCP_SYN_TIMEOUT,
        CT_EST => TCP_EST_TIMEOUT,
        CT_CLOSING => TCP_CLOSE_TIMEOUT,
        _ => UDP_TIMEOUT,
    }
}

/// Map names, as they appear in `bpftool map list` (the kernel keeps 15 characters).
pub const MAP_SERVICES: &str = "lb_services";
/// The IPv4 entries of `lb_services` again, keyed by `ServiceKey4` (8 bytes): the data plane
/// looks IPv4 frames up here (jhash's final mix alone; 24 bytes take a mixing round more).
/// Written with `lb_services`, which stays the record tools and a restarted daemon read (it
/// brings this one back in line with it).
pub const MAP_SERVICES4: &str = "lb_services4";
pub const MAP_SVC_CONF: &str = "lb_svc_conf";
pub const MAP_SVC_GEN: &str = "lb_svc_gen";
/// Per service id: whether this node may load-balance it now (`FENCE_*`; 0: it may). The
/// daemon writes it from VRRP: a service whose VIP belongs to an instance that is not MASTER
/// here is fenced, as IPVS on a keepalived BACKUP never sees its frames (the VIP is not local).
pub const MAP_SVC_FENCE: &str = "lb_svc_fence";
/// `lb_svc_fence`: the VIP's VRRP instance is not MASTER here: frames pass to the kernel, which
/// does not hold the VIP and drops them (or routes them on, as it would without us).
pub const FENCE_BACKUP: u32 = 1;
/// `lb_svc_fence`: MASTER without accept mode (`no_accept`, or `vrrp_strict`'s default) and not
/// the address owner: frames are dropped, as keepalived's firewall rule drops them before IPVS.
pub const FENCE_NO_ACCEPT: u32 = 2;
pub const MAP_TABLES: &str = "lb_tables";
pub const MAP_REALS: &str = "lb_reals";
pub const MAP_REAL_CONNS: &str = "lb_real_conns";
/// Per real server, flows the daemon found expired in `lb_conntrack4`/`lb_conntrack` and deleted: subtracted
/// from `lb_real_conns` (written only by the daemon, so no update races with the data plane).
pub const MAP_REAL_EXPIRED: &str = "lb_real_expired";
/// Per real server: packets, bytes and new flows (`ServiceStats`, per CPU). A service's
/// totals are its real servers' sums plus `lb_svc_direct` and `lb_svc_carry`, added up in
/// userspace: a forwarded packet updates one counter entry, not two.
pub const MAP_REAL_STATS: &str = "lb_real_stats";
pub const MAP_STATS: &str = "lb_stats";
/// Per service (per CPU), its frames no live real server counts: those dropped for want of
/// one, and NAT replies of a real server whose id was freed (its flows outlive it).
pub const MAP_SVC_DIRECT: &str = "lb_svc_direct";
/// Per service, what its real servers counted before their ids were freed (written only by
/// the daemon, when it frees one). Entry `CARRY_SEQ` is a sequence (`packets`), odd while the
/// daemon moves counts into the carry: a reader sums again when it changed under it.
pub const MAP_SVC_CARRY: &str = "lb_svc_carry";
pub const CARRY_SEQ: u32 = MAX_SERVICES;
/// Layout 10 and before: every packet of a service, per CPU. Read once when such pins are
/// adopted (into `lb_svc_carry`), then unpinned.
pub const MAP_SVC_STATS_LAYOUT10: &str = "lb_svc_stats";
/// Established IPv6 flows (`FlowKey`); the daemon reads it and `lb_conntrack4` as one table
/// (`dataplane::bpf::conntrack`).
pub const MAP_CONNTRACK: &str = "lb_conntrack";
/// Established IPv4 flows by a 16-byte key (`FlowKey4`): jhash takes one mixing round over
/// it before the final mix, three over `FlowKey`'s 40 bytes, on every tracked packet.
pub const MAP_CONNTRACK4: &str = "lb_conntrack4";
pub const MAP_NAT_REV: &str = "lb_nat_rev";
pub const MAP_HALFOPEN: &str = "lb_halfopen";
pub const MAP_HALFOPEN_REV: &str = "lb_halfopen_rev";
/// NAT real server (address, port, protocol) → one VIP and port its replies may be from
/// (`NatRev`), written by the daemon from the configuration: a reply whose flow the forward
/// tables hold for that real server is translated without a per-flow reverse entry. Flows to
/// another VIP of the same real server (two services, or a group) keep per-flow entries.
/// Pinned: flows opened without a per-flow entry depend on it across restarts.
pub const MAP_REAL_REV: &str = "lb_real_rev";
/// The IPv4 entries of `lb_real_rev` again, keyed by `ServiceKey4` (8 bytes), which the data
/// plane reads them by, as `lb_services4` beside `lb_services`.
pub const MAP_REAL_REV4: &str = "lb_real_rev4";
/// Per real server, SYNs sent to it in the current and previous second: lc/wlc's tie-break
/// between equally loaded real servers, as IPVS's inactive connections (not pinned).
pub const MAP_REAL_SYNS: &str = "lb_real_syns";
/// SYN counting window: 2^30 ns (about a second).
pub const SYN_WINDOW_SHIFT: u32 = 30;
pub const MAP_PERSIST: &str = "lb_persist";
pub const MAP_LBLC: &str = "lb_lblc";
pub const MAP_RR: &str = "lb_rr";
pub const MAP_META: &str = "lb_meta";
/// Next hops waiting for neighbour resolution (not pinned: only the running daemon reads it).
pub const MAP_UNRESOLVED: &str = "lb_unresolved";
/// Per-CPU scratch of one program run: the parsed frame, the FIB parameter block, a chunk
/// of packet bytes being checksummed.
pub const MAP_SCRATCH: &str = "lb_scratch";
pub const MAP_FIB: &str = "lb_fib";
pub const MAP_CSUM_BUF: &str = "lb_csum_buf";
/// Per interface (indexed by ifindex): how the program was attached there (`IFACE_*`).
/// Pinned, so a restarted daemon that adopts a link keeps its interface's flags.
pub const MAP_IFACES: &str = "lb_ifaces";
/// Per interface (indexed by ifindex): its MAC (`IfaceMac`), written by the daemon at attach
/// and kept current by its housekeeping. Frames unicast to another MAC are not ours: they pass
/// to the kernel, which drops them (PACKET_OTHERHOST) as it always does. Pinned.
pub const MAP_IFACE_MAC: &str = "lb_iface_mac";
/// MACs of macvlans on an interface (`LocalMac`): frames to them are ours too, as the kernel
/// takes them for the macvlan (a `use_vmac` VMAC with a MAC of its own). Written with
/// `lb_iface_mac`; not pinned.
pub const MAP_LOCAL_MACS: &str = "lb_local_macs";
pub const LOCAL_MACS_ENTRIES: u32 = 1024;
/// Interfaces with an ifindex below this have flags (others have none).
pub const MAX_IFINDEX: u32 = 4096;
/// `lb_ifaces`: XDP runs there in generic (skb) mode: frames keep their skb, checksums left
/// to offload stay partial and large (GSO) frames cannot be redirected.
pub const IFACE_GENERIC: u32 = 1;
/// `lb_ifaces`: a veth in native mode: frames going back out of it are redirected, not
/// XDP_TX'd (veth wakes its peer only for redirected frames unless the peer runs XDP).
pub const IFACE_TX_BY_REDIRECT: u32 = 2;
/// Fragmented datagrams: (source, destination, id, protocol) → what the first fragment
/// decided, for the later ones (pinned: a restart keeps following them).
pub const MAP_FRAGS: &str = "lb_frags";
/// Frames handed to the daemon (a ring buffer of `PuntRecord`s): fragments held until their
/// first arrives, IPv4 datagrams to fragment. Not pinned.
pub const MAP_PUNT: &str = "lb_punt";
/// Datagrams (`FragKey`) the daemon gave up replaying: their held fragments pass to the
/// stack. Not pinned.
pub const MAP_GIVEUP: &str = "lb_frag_giveup";
/// `lb-daemon trace`'s filter (`TraceCfg`, one entry): `lb_xdp` writes a record to `lb_trace`
/// for each frame it matches while `enabled`; off, it costs one array lookup per frame.
/// Pinned, so the tracer (another process) can set it.
pub const MAP_TRACE_CFG: &str = "lb_trace_cfg";
/// Per-frame decisions for `lb-daemon trace` (a ring buffer of `TraceRecord`s). Pinned, so
/// the tracer can read it.
pub const MAP_TRACE: &str = "lb_trace";
pub const UNRESOLVED_ENTRIES: u32 = 1024;
/// The next-hop cache (`NextHop`), two slots per real server id (`id * 2 + slot`), filled by
/// the daemon from the kernel's routes and neighbours. Not pinned: a new program starts with
/// an empty cache and uses the FIB until the daemon fills it.
pub const MAP_NEXTHOP: &str = "lb_nexthop";
/// Per real server id, which `lb_nexthop` slot is live: `generation << 2 | NEXTHOP_LIVE |
/// slot`; 0: none, the FIB decides. The generation grows with every write, so a reader that
/// finds the selector changed after copying a slot knows the copy may be torn. Not pinned.
pub const MAP_NEXTHOP_SEL: &str = "lb_nexthop_sel";
/// `lb_nexthop_sel`: the slot in the low bit holds a next hop.
pub const NEXTHOP_LIVE: u32 = 2;
/// The next-hop cache's lease (one `u64`): until when (coarse monotonic ns, the program's
/// clock) the daemon vouches for the cache. The daemon renews it while it follows the kernel's
/// tables, and clears it the moment a route, rule or interface changes until it has read them
/// again; once it lapses (the daemon died, hangs, or stopped) every packet takes the FIB.
pub const MAP_NEXTHOP_LEASE: &str = "lb_nexthop_lease";
/// Subdirectory of the pin directory holding the pinned XDP links (`xdp_<interface>`).
pub const LINKS_DIR: &str = "links";

/// Every pinned map, in the order the daemon adopts them.
pub const PINNED_MAPS: [&str; 29] = [
    MAP_META,
    MAP_SERVICES,
    MAP_SERVICES4,
    MAP_SVC_CONF,
    MAP_SVC_GEN,
    MAP_SVC_FENCE,
    MAP_TABLES,
    MAP_REALS,
    MAP_REAL_CONNS,
    MAP_REAL_EXPIRED,
    MAP_REAL_STATS,
    MAP_STATS,
    MAP_SVC_DIRECT,
    MAP_SVC_CARRY,
    MAP_CONNTRACK,
    MAP_CONNTRACK4,
    MAP_NAT_REV,
    MAP_HALFOPEN,
    MAP_HALFOPEN_REV,
    MAP_REAL_REV,
    MAP_REAL_REV4,
    MAP_PERSIST,
    MAP_LBLC,
    MAP_RR,
    MAP_FRAGS,
    MAP_IFACES,
    MAP_IFACE_MAC,
    MAP_TRACE_CFG,
    MAP_TRACE,
];

/// The maps of `lb-xdp` only a running daemon uses (per-CPU scratch, rings, caches): not pinned.
pub const RUNTIME_MAPS: [&str; 11] = [
    MAP_REAL_SYNS,
    MAP_UNRESOLVED,
    MAP_NEXTHOP,
    MAP_NEXTHOP_SEL,
    MAP_NEXTHOP_LEASE,
    MAP_SCRATCH,
    MAP_FIB,
    MAP_CSUM_BUF,
    MAP_PUNT,
    MAP_GIVEUP,
    MAP_LOCAL_MACS,
];

/// Every map of the `lb-xdp` object: the pinned ones, then the runtime ones.
pub const XDP_MAPS: [&str; PINNED_MAPS.len() + RUNTIME_MAPS.len()] = concat(PINNED_MAPS, RUNTIME_MAPS);

/// `a` then `b` (`C` = `A` + `B`), for lists built from lists at compile time.
const fn concat<const A: usize, const B: usize, const C: usize>(
    a: [&'static str; A],
    b: [&'static str; B],
) -> [&'static str; C] {
    assert!(A + B == C);
    let mut out = [""; C];
    let mut i = 0;
    while i < C {
        out[i] = if i < A { a[i] } else { b[i - A] };
        i += 1;
    }
    out
}

/// The BPF objects `cargo xtask build-ebpf` builds (file names under
/// `target/ebpf/bpfel-unknown-none/release/`), one per program set, and their programs
/// (as in `bpftool prog list`).
///
/// `lb-xdp`: the load balancer, loaded and attached by the daemon.
pub const OBJ_XDP: &str = "lb-xdp";
pub const PROG_XDP: &str = "lb_xdp";
/// `lb-decap`: TC ingress program for real servers whose kernel cannot decapsulate IPIP
/// itself (`lb-daemon decap`).
pub const OBJ_DECAP: &str = "lb-decap";
pub const PROG_DECAP: &str = "lb_decap";
/// `lb-decap`'s maps: the allowed outer sources and inner destinations (`DecapAddr`), and
/// its counters (`DecapStats`).
pub const MAP_DECAP_FROM: &str = "lb_decap_from";
pub const MAP_DECAP_VIPS: &str = "lb_decap_vips";
pub const MAP_DECAP_STATS: &str = "lb_decap_stats";
/// Entries of each allow-list.
pub const DECAP_ADDRS: u32 = 1024;
/// `lb-bench`: the benchmark's programs, never loaded by the daemon: baselines for the
/// per-packet cost (`XDP_PASS`, `XDP_DROP`), a new flow per run (`bench_fresh`), the packet
/// generator, the sink counter and the redirect ceiling.
pub const OBJ_BENCH: &str = "lb-bench";
pub const PROG_BENCH_PASS: &str = "bench_pass";
pub const PROG_BENCH_DROP: &str = "bench_drop";
pub const PROG_BENCH_TX: &str = "bench_tx";
pub const PROG_BENCH_COUNT: &str = "bench_count";
pub const PROG_BENCH_REDIRECT: &str = "bench_redirect";
pub const PROG_BENCH_FRESH: &str = "bench_fresh";
/// The `lb-bench` object's maps: the generator's frame template, per-CPU run and frame
/// counts, its pacing divisor, and the redirect ceiling's next hop.
pub const MAP_BENCH_FRAME: &str = "bench_frame";
pub const MAP_BENCH_COUNTER: &str = "bench_counter";
pub const MAP_BENCH_EVERY: &str = "bench_every";
pub const MAP_BENCH_NEXT: &str = "bench_next";
/// `bench_fresh`'s template frame, its settings and the program it tail-calls.
pub const MAP_BENCH_FRESH_FRAME: &str = "bench_fresh_frame";
pub const MAP_BENCH_FRESH_CFG: &str = "bench_fresh_cfg";
pub const MAP_BENCH_FRESH_TARGET: &str = "bench_fresh_target";

/// Address families as stored in keys (not AF_* values: those differ between systems).
pub const FAMILY_V4: u8 = 4;
pub const FAMILY_V6: u8 = 6;

/// IP protocol numbers the data plane parses.
pub const IPPROTO_IPIP: u8 = 4;
pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_SCTP: u8 = 132;
pub const IPPROTO_IPV6: u8 = 41;
pub const IPPROTO_ICMPV6: u8 = 58;

/// How many 802.1Q/802.1ad tags the parser walks before giving up (QinQ is two).
pub const MAX_VLAN_DEPTH: usize = 2;

/// `SvcConf::sched`.
pub const SCHED_RR: u8 = 0;
pub const SCHED_WRR: u8 = 1;
pub const SCHED_LC: u8 = 2;
pub const SCHED_WLC: u8 = 3;
pub const SCHED_LBLC: u8 = 4;
pub const SCHED_SH: u8 = 5;
pub const SCHED_DH: u8 = 6;
pub const SCHED_MH: u8 = 7;

/// `SvcConf::flags`: sh and mh hash the client's source port with its address (IPVS's
/// `sh-port` / `mh-port`), so one client's connections spread over the real servers.
pub const SVC_HASH_PORT: u8 = 1;

/// `SvcConf::fwd`.
pub const FWD_NAT: u8 = 0;
pub const FWD_DR: u8 = 1;
pub const FWD_TUN: u8 = 2;

/// `RealDef::flags`: the real server belongs to its service (cleared when removed; its
/// tracked flows then get a new real server).
pub const REAL_PRESENT: u8 = 1;

/// `FragValue::action`: what the later fragments of a datagram do.
/// Towards the service's real server `real_id` (its forwarding method is the service's).
pub const FRAG_TO_REAL: u8 = 1;
/// A NAT reply: source back to `vip`/`vport`.
pub const FRAG_NAT_REPLY: u8 = 2;
/// Not ours: to the stack.
pub const FRAG_PASS: u8 = 3;

/// `PuntRecord::kind`.
/// A later fragment that arrived before its first: replay it shortly.
pub const PUNT_EARLY_FRAGMENT: u8 = 1;
/// An IPv4 packet over the egress MTU with DF clear: fragment it to `mtu`, replay the pieces.
pub const PUNT_FRAGMENT: u8 = 2;

/// `TraceCfg::filters`: which of its filters apply (a frame must pass each that does).
/// Only frames of service `svc_id` (to it, its NAT replies, ICMP errors about its flows).
pub const TRACE_BY_SERVICE: u32 = 1;
/// Only frames whose source or destination (as parsed: the quoted packet's for an ICMP
/// error) is `client`.
pub const TRACE_BY_CLIENT: u32 = 2;

/// `TraceRecord::svc_id` / `real_id`: the frame reached no service / real server.
pub const TRACE_NONE: u32 = u32::MAX;

/// `TraceRecord::flow` bits: what the flow stage did for the frame. The low five are the
/// flow decision's own flags (lb-ebpf's `Decision`), shifted down.
/// A real server was found for the flow.
pub const TRACE_FLOW_FOUND: u8 = 1;
/// Scheduled by this frame (no tracked entry answered); otherwise a conntrack hit.
pub const TRACE_FLOW_NEW: u8 = 2;
/// The flow is (still) half-open (`lb_halfopen`).
pub const TRACE_FLOW_HALF_OPEN: u8 = 4;
/// This frame moved the flow from `lb_halfopen` to `lb_conntrack4`/`lb_conntrack`.
pub const TRACE_FLOW_PROMOTED: u8 = 8;
/// The service's configuration generation 1 was live (else 0); see `TRACE_FLOW_GEN_KNOWN`.
pub const TRACE_FLOW_GEN1: u8 = 16;
/// The frame went through its service's live configuration, so `TRACE_FLOW_GEN1` tells which.
pub const TRACE_FLOW_GEN_KNOWN: u8 = 32;
/// A NAT real server's reply (or an ICMP error about it) found its flow's reply entry.
pub const TRACE_FLOW_REPLY: u8 = 64;
/// A later fragment that followed its datagram's first (`lb_frags`).
pub const TRACE_FLOW_FRAGMENT: u8 = 128;

/// `FlowValue::state`.
pub const CT_SYN: u8 = 0;
pub const CT_EST: u8 = 1;
pub const CT_CLOSING: u8 = 2;
pub const CT_UDP: u8 = 3;

/// `FlowValue::pad32` bit: the entry came from connection sync (another node's decision),
/// so this node's sync master does not send it back until this node forwards it. The bits
/// above it hold when it was applied (coarse clock, whole seconds). Only the daemon writes
/// this word: the data plane inserts flows with it zeroed and never rewrites it (its state
/// transitions are a compare-and-exchange of the word holding `state`, `pad8` and `pad16`,
/// not this one); a flow it reschedules is a new entry, zeroed, this node's own again.
pub const FLOW_SYNCED: u32 = 1;

/// No real server (empty table): `u32::MAX` in table slots and `SvcConf::sorry_real`.
pub const NO_REAL: u32 = u32::MAX;
