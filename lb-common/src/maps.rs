//! Keys and values of the service, real-server, scheduling and flow maps.

use bytemuck::{Pod, Zeroable};

use crate::consts::{FAMILY_V4, FAMILY_V6};

/// A virtual service as the data plane matches it: destination address, port and protocol.
///
/// `addr` holds the address in network byte order; IPv4 uses the first four bytes and leaves
/// the rest zero. `port` is in host byte order so `bpftool` prints it as written in the config.
///
/// Keys the BPF program builds on its stack are 8-byte aligned: it is compiled to access
/// memory in whole words where it can, and the verifier refuses a misaligned stack access.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Pod, Zeroable)]
pub struct ServiceKey {
    pub addr: [u8; 16],
    pub port: u16,
    pub proto: u8,
    pub family: u8,
    pub pad: u32,
}

impl ServiceKey {
    pub const fn v4(addr: [u8; 4], port: u16, proto: u8) -> Self {
        let mut a = [0u8; 16];
        a[0] = addr[0];
        a[1] = addr[1];
        a[2] = addr[2];
        a[3] = addr[3];
        Self { addr: a, port, proto, family: FAMILY_V4, pad: 0 }
    }

    pub const fn v6(addr: [u8; 16], port: u16, proto: u8) -> Self {
        Self { addr, port, proto, family: FAMILY_V6, pad: 0 }
    }

    /// An IPv4 service's key in `lb_services4`; None for IPv6.
    pub const fn narrow(&self) -> Option<ServiceKey4> {
        if self.family != FAMILY_V4 {
            return None;
        }
        let a = &self.addr;
        Some(ServiceKey4 { addr: [a[0], a[1], a[2], a[3]], port: self.port, proto: self.proto, pad: 0 })
    }
}

/// An IPv4 service as `lb_services4` keys it (fields as in `ServiceKey`). The kernel hashes a
/// hash map's whole key with jhash: 8 bytes take its final mix only, `ServiceKey`'s 24 a
/// mixing round more, on every TCP/UDP frame.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Pod, Zeroable)]
pub struct ServiceKey4 {
    pub addr: [u8; 4],
    pub port: u16,
    pub proto: u8,
    pub pad: u8,
}

/// `lb_services` value: the service's id, fixed for its lifetime. Everything that changes
/// lives in `lb_svc_conf`, double-buffered (see `SvcConf`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct ServiceValue {
    /// Index into the per-service arrays, below `MAX_SERVICES`.
    pub id: u32,
    pub flags: u32,
}

/// One generation of a service's configuration: `lb_svc_conf[id * 2 + gen]`, where `gen` is
/// `lb_svc_gen[id]`. The daemon writes the inactive generation (and its table slice), then
/// flips `gen` with one 4-byte store, so a packet sees the old set or the new one, never a mix.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct SvcConf {
    /// `SCHED_*`.
    pub sched: u8,
    /// `FWD_*`.
    pub fwd: u8,
    /// Persistence granularity as a prefix length; only with `persist_timeout > 0`.
    pub persist_prefix: u8,
    /// `SVC_*` bits.
    pub flags: u8,
    /// Seconds; 0 = no persistence.
    pub persist_timeout: u32,
    /// This generation's slice of `lb_tables`: offset and length (0 = no live real server).
    pub table_off: u32,
    pub table_len: u32,
    /// Real server id taking new flows when the table is empty, or `NO_REAL`.
    pub sorry_real: u32,
    pub reserved: u32,
}

/// A real server of one service (`lb_reals[id]`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct RealDef {
    pub addr: [u8; 16],
    /// Source address of IPIP/IPv6 tunnels towards this real server (TUN only).
    pub tun_src: [u8; 16],
    pub port: u16,
    pub family: u8,
    /// `REAL_PRESENT`.
    pub flags: u8,
    pub svc_id: u32,
    pub weight: u32,
    pub reserved: u32,
}

/// Live connection count of a real server (`lb_real_conns`), for lc/wlc/lblc: incremented by
/// the data plane on a new tracked flow, decremented on its first FIN/RST or when a packet
/// finds its entry expired. Flows that expire and are never seen again are deleted by the
/// daemon and counted in `lb_real_expired` (same layout); the live count is the difference.
/// Only atomic adds touch `lb_real_conns` while the program runs: an overwrite from userspace
/// would lose the data plane's concurrent updates.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct RealConns {
    pub active: u64,
}

impl RealConns {
    /// `active` (from `lb_real_conns`) less `expired` (from `lb_real_expired`); the counters
    /// wrap, and a rare race between the two writers can leave the difference below zero.
    pub fn live(active: u64, expired: u64) -> u64 {
        (active.wrapping_sub(expired) as i64).max(0) as u64
    }
}

/// SYNs recently sent to a real server (`lb_real_syns`): `cur` in window `epoch`
/// (`now >> SYN_WINDOW_SHIFT`), `prev` in the window before. Updated without locks; a lost
/// increment only blurs a tie-break.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct RealSyns {
    pub epoch: u64,
    pub cur: u64,
    pub prev: u64,
}

/// A flow as received: the 5-tuple (addresses as in `ServiceKey`, ports in host order).
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Pod, Zeroable)]
pub struct FlowKey {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub family: u8,
    pub pad: [u8; 2],
}

impl FlowKey {
    /// An IPv4 flow's key in `lb_conntrack4`; None for IPv6.
    pub const fn narrow(&self) -> Option<FlowKey4> {
        if self.family != FAMILY_V4 {
            return None;
        }
        let (s, d) = (&self.src, &self.dst);
        Some(FlowKey4 {
            src: [s[0], s[1], s[2], s[3]],
            dst: [d[0], d[1], d[2], d[3]],
            sport: self.sport,
            dport: self.dport,
            proto: self.proto,
            pad8: 0,
            pad16: 0,
        })
    }
}

/// An IPv4 flow as `lb_conntrack4` keys it (fields as in `FlowKey`). 16 bytes take one of
/// jhash's mixing rounds before its final mix, `FlowKey`'s 40 three, on every tracked packet.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Pod, Zeroable)]
pub struct FlowKey4 {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    /// Padding as scalars: a zeroed array becomes a slow `memset` call in BPF code.
    pub pad8: u8,
    pub pad16: u16,
}

impl FlowKey4 {
    /// The same flow as `FlowKey` says it.
    pub const fn widen(&self) -> FlowKey {
        let (s, d) = (&self.src, &self.dst);
        let mut src = [0u8; 16];
        let mut dst = [0u8; 16];
        let mut i = 0;
        while i < 4 {
            src[i] = s[i];
            dst[i] = d[i];
            i += 1;
        }
        FlowKey { src, dst, sport: self.sport, dport: self.dport, proto: self.proto, family: FAMILY_V4, pad: [0; 2] }
    }
}

/// `lb_conntrack4`/`lb_conntrack` value: where the flow goes and since when.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct FlowValue {
    pub real_id: u32,
    pub svc_id: u32,
    /// `bpf_ktime_get_coarse_ns` of the last packet.
    pub last_ns: u64,
    /// `CT_*`.
    pub state: u8,
    /// Padding as scalars: a zeroed array becomes a slow `memset` call in BPF code.
    pub pad8: u8,
    pub pad16: u16,
    /// Flags the daemon keeps with the flow (`FLOW_SYNCED`); zero as the data plane inserts it.
    pub pad32: u32,
}

/// `lb_nat_rev` value, keyed by the reply's 5-tuple (real server → client): what to put back
/// as the reply's source. Also `lb_real_rev`'s, keyed by the real server (`last_ns` 0).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct NatRev {
    pub vip: [u8; 16],
    pub vport: u16,
    pub pad: [u8; 2],
    pub svc_id: u32,
    pub real_id: u32,
    pub pad2: u32,
    pub last_ns: u64,
}

/// `lb_frags` key: one fragmented datagram, as IPv4 (RFC 791) and IPv6 (RFC 8200) identify
/// it: source, destination, identification and protocol (the IPv6 fragment header's next
/// header). Addresses as in `ServiceKey`.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Pod, Zeroable)]
pub struct FragKey {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    /// Host byte order (IPv4's 16-bit id zero-extended).
    pub id: u32,
    pub proto: u8,
    pub family: u8,
    pub pad: [u8; 2],
}

/// `lb_frags` value: what the datagram's first fragment decided.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct FragValue {
    /// `FRAG_*`.
    pub action: u8,
    /// `FRAG_TO_REAL`: the service's forwarding method (`FWD_*`).
    pub fwd: u8,
    /// NAT replies: the virtual port (host byte order).
    pub vport: u16,
    pub svc_id: u32,
    pub real_id: u32,
    pub pad32: u32,
    /// When the first fragment passed (`bpf_ktime_get_coarse_ns`).
    pub last_ns: u64,
    /// NAT replies: the VIP the source becomes.
    pub vip: [u8; 16],
}

/// What the data plane hands to the daemon through `lb_punt`: a frame it cannot finish alone.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct PuntRecord {
    /// Interface the frame arrived on (replays arrive there again).
    pub ifindex: u32,
    /// Bytes of `frame` in use.
    pub len: u32,
    /// `PUNT_*`.
    pub kind: u8,
    pub pad8: u8,
    /// `PUNT_FRAGMENT`: the egress MTU the fragments must fit.
    pub mtu: u16,
    pub pad32: u32,
    pub frame: [u8; crate::consts::PUNT_MAX],
}

/// An address in `lb-decap`'s allow-lists: `lb_decap_from` (the load balancers' tunnel
/// sources) and `lb_decap_vips` (the VIPs this real server holds). Addresses as in
/// `ServiceKey`.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Pod, Zeroable)]
pub struct DecapAddr {
    pub addr: [u8; 16],
    pub family: u8,
    pub pad: [u8; 7],
}

/// `lb-decap`'s counters (`lb_decap_stats`, per CPU).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct DecapStats {
    /// Tunnelled packets from a load balancer to a local VIP: decapsulated.
    pub decapsulated: u64,
    /// Dropped: the outer source is not a load balancer named with `--from`.
    pub foreign_source: u64,
    /// Dropped: the inner destination is not a VIP of this real server.
    pub foreign_vip: u64,
    /// Dropped: a fragment of a tunnelled packet (the load balancer never fragments the
    /// outer header).
    pub fragment: u64,
}

/// `lb_persist` key: the client's masked address within a service.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct PersistKey {
    pub addr: [u8; 16],
    pub svc_id: u32,
    pub pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct PersistValue {
    pub real_id: u32,
    pub pad: u32,
    pub last_ns: u64,
}

/// `lb_lblc` key: a destination address within a service.
pub type LblcKey = PersistKey;

/// Single entry of `lb_meta`: written by the daemon when it creates the pins, checked when
/// it adopts existing ones.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct Meta {
    /// `consts::LAYOUT_VERSION` of the daemon that created the maps.
    pub layout_version: u32,
    /// Real server ids below this have been handed out since the maps were created. Flows
    /// and persistence entries name a real server by id, so an id a removed real server had
    /// is given again only once fresh ones run out, across restarts too.
    pub next_real: u32,
    /// Expired entries the daemon deleted from `lb_conntrack4`/`lb_conntrack` (`reconcile_conns`), for the
    /// eviction count (`GlobalStats::ct_inserts`); only the daemon writes it.
    pub ct_deleted: u64,
}

/// An interface's MAC in `lb_iface_mac` (by ifindex). `known` 0 (an interface the daemon never
/// attached to, `BPF_PROG_TEST_RUN`'s loopback): the destination MAC is not checked.
/// `vrrp_vmac` 1: frames to a VRRP virtual MAC (00:00:5e:00:01:VRID or 00:00:5e:00:02:VRID,
/// `use_vmac`) are ours too (VRRP fencing still decides which VIPs are load-balanced).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct IfaceMac {
    pub mac: [u8; 6],
    pub known: u8,
    pub vrrp_vmac: u8,
}

/// Key of `lb_local_macs`: a MAC of a macvlan on interface `ifindex` (a `use_vmac` VMAC with
/// a MAC of its own, or any other), to which the kernel delivers frames arriving there.
#[repr(C, align(4))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Pod, Zeroable)]
pub struct LocalMac {
    pub ifindex: u32,
    pub mac: [u8; 6],
    pub pad: u16,
}

/// Whether `mac` is a VRRP virtual router MAC (RFC 5798 §7.3: 00-00-5E-00-01-{VRID} for
/// IPv4, 00-00-5E-00-02-{VRID} for IPv6).
#[inline(always)]
pub fn is_vrrp_vmac(mac: &[u8; 6]) -> bool {
    mac[0] == 0 && mac[1] == 0 && mac[2] == 0x5e && mac[3] == 0 && (mac[4] == 1 || mac[4] == 2)
}

/// Key of `lb_unresolved`: a next hop the XDP FIB lookup found without a neighbour entry.
/// The daemon asks the kernel to resolve it (the stack cannot: a NAT reply carries the VIP as
/// source, which the kernel refuses to forward), so the next packet finds it.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Pod, Zeroable)]
pub struct NeighKey {
    /// IPv4 in the first four bytes.
    pub addr: [u8; 16],
    pub ifindex: u32,
    pub family: u8,
    pub reserved: [u8; 3],
}

/// An entry of the next-hop cache (`lb_nexthop`): where `bpf_fib_lookup` would send a packet
/// to the real server at `addr`, as the daemon read it from the kernel's route and neighbour
/// tables. The program uses it only for that address (a real server id reused for another
/// address misses until the daemon rewrites it) and for packets of at most `mtu` bytes
/// (larger ones ask the FIB, which answers "too big" or sends them). The daemon writes a
/// slot no packet reads and then flips `lb_nexthop_sel`, so no packet sees half a MAC pair.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct NextHop {
    /// IPv4 in the first four bytes.
    pub addr: [u8; 16],
    pub ifindex: u32,
    pub mtu: u16,
    pub family: u8,
    pub reserved: u8,
    pub smac: [u8; 6],
    pub dmac: [u8; 6],
    pub pad: u32,
}

/// The one entry of `lb_trace_cfg`: whether a tracer reads `lb_trace`, and which frames it
/// wants. Written by `lb-daemon trace` (and cleared by it, or by the daemon's housekeeping
/// once the tracer is gone); read by `lb_xdp` for every frame.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct TraceCfg {
    /// Non-zero: records are written. First, so the per-frame check is one load.
    pub enabled: u32,
    /// `TRACE_BY_*`: which filters below apply.
    pub filters: u32,
    /// `TRACE_BY_SERVICE`: the service id.
    pub svc_id: u32,
    /// The tracer's process id, in the pid namespace `pid_ns` names.
    pub pid: u32,
    /// Bit `Reason as u32` set: frames counted under that reason are traced.
    pub reasons: u64,
    /// `TRACE_BY_CLIENT`: the address, as in `ServiceKey` (IPv4 in the first four bytes).
    pub client: [u8; 16],
    pub client_family: u8,
    pub pad: [u8; 7],
    /// The tracer's start time (`/proc/PID/stat`'s 22nd field, clock ticks after boot): with
    /// `pid`, tells the tracer from a later process that reuses its pid.
    pub pid_start: u64,
    /// Inode of the tracer's pid namespace (`/proc/self/ns/pid`): only a process in the same
    /// namespace can judge whether `pid` is gone.
    pub pid_ns: u64,
    /// Records that found the ring full (the program adds atomically; the tracer reports).
    pub lost: u64,
}

/// One traced frame in `lb_trace`: what `lb_xdp` decided, for whom, and the frame's start as
/// it left the program.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct TraceRecord {
    /// `bpf_ktime_get_ns` (CLOCK_MONOTONIC) when the program finished with the frame.
    pub ts_ns: u64,
    /// The tuple as parsed, before any rewrite (addresses as in `ServiceKey`, ports in host
    /// order; an ICMP error's is its quoted packet's, as the client sent it). `family` 0: the
    /// frame was not IP, or not parsed that far.
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub sport: u16,
    pub dport: u16,
    pub family: u8,
    pub proto: u8,
    /// The XDP action (0 aborted, 1 drop, 2 pass, 3 tx, 4 redirect).
    pub action: u8,
    /// `Reason as u8`.
    pub reason: u8,
    /// The interface the frame arrived on.
    pub ifindex: u32,
    /// Service and real server ids, or `TRACE_NONE`.
    pub svc_id: u32,
    pub real_id: u32,
    /// The CPU that ran the program.
    pub cpu: u32,
    /// `TRACE_FLOW_*` bits.
    pub flow: u8,
    pub pad: [u8; 3],
    /// The frame's length as it arrived and as it left (a TUN header or an ICMP answer
    /// changes it).
    pub len_in: u32,
    pub len_out: u32,
    /// Bytes of `frame` in use: `len_out`, at most `TRACE_SNAP`.
    pub cap_len: u32,
    pub frame: [u8; crate::consts::TRACE_SNAP],
}

crate::aya_pod!(
    IfaceMac,
    LocalMac,
    TraceCfg,
    TraceRecord,
    DecapAddr,
    DecapStats,
    FragKey,
    FragValue,
    PuntRecord,
    NeighKey,
    NextHop,
    ServiceKey,
    ServiceKey4,
    ServiceValue,
    SvcConf,
    RealDef,
    RealConns,
    RealSyns,
    FlowKey,
    FlowKey4,
    FlowValue,
    NatRev,
    PersistKey,
    PersistValue,
    Meta
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_have_no_hidden_padding() {
        // bytemuck's Pod derive already refuses padding; these pin the sizes the BPF side and
        // the documented per-entry costs assume.
        assert_eq!(core::mem::size_of::<ServiceKey>(), 24);
        assert_eq!(core::mem::size_of::<ServiceKey4>(), 8);
        assert_eq!(core::mem::size_of::<ServiceValue>(), 8);
        assert_eq!(core::mem::size_of::<SvcConf>(), 24);
        assert_eq!(core::mem::size_of::<RealDef>(), 48);
        assert_eq!(core::mem::size_of::<FlowKey>(), 40);
        assert_eq!(core::mem::size_of::<FlowKey4>(), 16);
        assert_eq!(core::mem::size_of::<FlowValue>(), 24);
        assert_eq!(core::mem::size_of::<NatRev>(), 40);
        assert_eq!(core::mem::size_of::<PersistKey>(), 24);
        assert_eq!(core::mem::size_of::<FragKey>(), 40);
        assert_eq!(core::mem::size_of::<FragValue>(), 40);
        assert_eq!(core::mem::size_of::<Meta>(), 16);
        assert_eq!(core::mem::size_of::<IfaceMac>(), 8);
        assert_eq!(core::mem::size_of::<LocalMac>(), 12);
        assert_eq!(core::mem::size_of::<NextHop>(), 40);
        assert_eq!(core::mem::size_of::<PuntRecord>(), 16 + crate::consts::PUNT_MAX);
        assert_eq!(core::mem::size_of::<TraceCfg>(), 72);
        // 216 bytes in the ring with its 8-byte header (`TRACE_RING_BYTES`).
        assert_eq!(core::mem::size_of::<TraceRecord>(), 80 + crate::consts::TRACE_SNAP);
    }

    #[test]
    fn only_ipv4_services_narrow() {
        let k = ServiceKey::v4([192, 0, 2, 10], 80, 6);
        assert_eq!(k.narrow(), Some(ServiceKey4 { addr: [192, 0, 2, 10], port: 80, proto: 6, pad: 0 }));
        let mut v6 = [0u8; 16];
        v6[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        assert_eq!(ServiceKey::v6(v6, 80, 6).narrow(), None);
    }

    #[test]
    fn only_ipv4_flows_narrow_and_they_widen_back() {
        let mut src = [0u8; 16];
        src[..4].copy_from_slice(&[192, 0, 2, 7]);
        let mut dst = [0u8; 16];
        dst[..4].copy_from_slice(&[198, 51, 100, 10]);
        let k = FlowKey { src, dst, sport: 40000, dport: 80, proto: 6, family: FAMILY_V4, pad: [0; 2] };
        let n = k.narrow().expect("an IPv4 flow narrows");
        assert_eq!((n.src, n.dst, n.sport, n.dport, n.proto), ([192, 0, 2, 7], [198, 51, 100, 10], 40000, 80, 6));
        assert_eq!(n.widen(), k);
        let mut v6 = FlowKey { family: FAMILY_V6, ..k };
        v6.src[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        assert_eq!(v6.narrow(), None);
    }
}
