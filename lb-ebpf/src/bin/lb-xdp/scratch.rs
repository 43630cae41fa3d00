//! Per-CPU working memory of one program run. The verifier gives the deepest call chain only
//! 512 bytes of stack, so the parsed frame and the FIB parameter block live in per-CPU maps
//! (`lb_scratch`, `lb_fib`) instead.

use lb_common::NeighKey;
use lb_ebpf::mem::zero_words;

/// What the data plane needs of a TCP/UDP frame, with where its headers are.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub struct Frame {
    /// Addresses as in `ServiceKey` (IPv4 in the first four bytes). First, so they are
    /// 8-byte aligned for `clear_addrs`.
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub family: u8,
    pub proto: u8,
    /// Host byte order.
    pub sport: u16,
    pub dport: u16,
    /// TCP flags byte (0 for UDP).
    pub tcp_flags: u8,
    /// `Frag`: whether this is a fragment, and which.
    pub frag: u8,
    pub l3_off: u32,
    pub l4_off: u32,
    /// IP packet length (header + payload) as the header declares it.
    pub ip_len: u32,
    /// ICMP errors: offsets of the quoted IP header and of its TCP/UDP ports.
    pub inner_off: u32,
    pub inner_l4_off: u32,
    /// Ingress interface, read once at entry (the verifier refuses context reads through
    /// a derived pointer, which later code tends to produce).
    pub ifindex: u32,
    /// Fragments: the datagram's identification (host order).
    pub frag_id: u32,
    /// The ingress interface's `IFACE_*` flags (`lb_ifaces`).
    pub iface: u32,
    /// For `lb-daemon trace`: the service and real server the frame reached (`TRACE_NONE`:
    /// none), and what the flow stage did (`TRACE_FLOW_*`). Plain stores on the way; read only
    /// when a tracer runs.
    pub trace_svc: u32,
    pub trace_real: u32,
    /// Generic XDP: the TCP/UDP checksum is left to offload (the skb stays
    /// `CHECKSUM_PARTIAL`, so rewrites keep the field a pseudo-header sum).
    pub csum_partial: u8,
    pub trace_flow: u8,
    /// Written only while a tracer runs: the verdict (`Verdict::bits`), handed to
    /// `trace::record` through memory (see `trace::emit`).
    pub trace_verdict: u32,
    /// The frame's length as it arrived, read once at entry (a helper call) for the counters
    /// and the tracer.
    pub len_in: u32,
    /// The coarse clock for a frame to a service (`main::forward`, later fragments): flow
    /// timestamps and the next-hop cache's lease. Kept between runs with `now_jiffy`, the
    /// jiffy it was read in (`time::tick`).
    pub now: u64,
    pub now_jiffy: u64,
}

// `Frame::begin` clears these with whole-word stores.
const _: () = assert!(core::mem::offset_of!(Frame, family) == 32 && core::mem::offset_of!(Frame, frag) == 39);
const _: () = assert!(core::mem::offset_of!(Frame, trace_svc) % 8 == 0);
const _: () = assert!(core::mem::offset_of!(Frame, trace_real) == core::mem::offset_of!(Frame, trace_svc) + 4);
const _: () = assert!(core::mem::offset_of!(Frame, trace_flow) == core::mem::offset_of!(Frame, csum_partial) + 1);
const _: () = assert!(core::mem::offset_of!(Frame, csum_partial) % 2 == 0);
const _: () = assert!(lb_common::consts::TRACE_NONE == lb_common::consts::NO_REAL);

/// `Frame::frag`.
pub mod frag {
    /// A whole datagram.
    pub const NONE: u8 = 0;
    /// The first fragment: it carries the L4 header and decides for the datagram.
    pub const FIRST: u8 = 1;
    /// A later fragment: no L4 header; it follows what the first decided.
    pub const LATER: u8 = 2;
}

impl Frame {
    /// Forgets what the previous frame on this CPU left in the fields a frame may not reach:
    /// no family, protocol, ports, TCP flags or fragment; no service, real server or flow
    /// decision; checksum not partial. Three stores.
    #[inline(always)]
    pub fn begin(&mut self) {
        let base = self as *mut Frame as *mut u8;
        // SAFETY: `Frame` is 8-byte aligned; the offsets and widths are checked above, and
        // every field written is a plain integer.
        unsafe {
            core::ptr::write(base.add(core::mem::offset_of!(Frame, family)).cast::<u64>(), 0);
            core::ptr::write(base.add(core::mem::offset_of!(Frame, trace_svc)).cast::<u64>(), u64::MAX);
            core::ptr::write(base.add(core::mem::offset_of!(Frame, csum_partial)).cast::<u16>(), 0);
        }
    }

    /// Zeroes both addresses with four 8-byte stores (see `zero_words`).
    #[inline(always)]
    pub fn clear_addrs(&mut self) {
        // SAFETY: `Frame` is 8-byte aligned and starts with the two 16-byte addresses.
        unsafe { zero_words(self as *mut Frame as *mut u64, 4) };
    }

    /// An IPv4 frame's service as `lb_services4` keys it.
    #[inline(always)]
    pub fn service_key4(&self) -> lb_common::ServiceKey4 {
        service_key4(&self.dst, self.dport, self.proto)
    }

    /// The flow's 5-tuple as the conntrack tables key it.
    #[inline(always)]
    pub fn flow_key(&self) -> lb_common::FlowKey {
        lb_common::FlowKey {
            src: self.src,
            dst: self.dst,
            sport: self.sport,
            dport: self.dport,
            proto: self.proto,
            family: self.family,
            pad: [0; 2],
        }
    }

    /// What the tracking rules (`lb_ebpf::ct`) see of the packet: TCP or not, and its flags.
    #[inline(always)]
    pub fn packet(&self) -> lb_ebpf::ct::Packet {
        lb_ebpf::ct::Packet { tcp: self.proto == lb_common::consts::IPPROTO_TCP, flags: self.tcp_flags }
    }

    /// Bytes of the L4 segment (what the IP header declares after the IP headers).
    #[inline(always)]
    pub fn l4_len(&self) -> u32 {
        self.ip_len.saturating_sub(self.l4_off.saturating_sub(self.l3_off))
    }

    /// The datagram a fragment belongs to.
    #[inline(always)]
    pub fn frag_key(&self) -> lb_common::FragKey {
        lb_common::FragKey {
            src: self.src,
            dst: self.dst,
            id: self.frag_id,
            proto: self.proto,
            family: self.family,
            pad: [0; 2],
        }
    }

    /// The virtual service this frame is addressed to.
    #[inline(always)]
    pub fn service_key(&self) -> lb_common::ServiceKey {
        lb_common::ServiceKey { addr: self.dst, port: self.dport, proto: self.proto, family: self.family, pad: 0 }
    }
}

/// IPv4 address `addr` (in its 16-byte field), `port` and `proto` as the narrow service-keyed
/// maps key them (`lb_services4`, `lb_real_rev4`): `ServiceKey::narrow`, in word copies.
#[inline(always)]
pub fn service_key4(addr: &[u8; 16], port: u16, proto: u8) -> lb_common::ServiceKey4 {
    let mut k = lb_common::ServiceKey4 { addr: [0; 4], port, proto, pad: 0 };
    lb_ebpf::mem::copy(&mut k.addr, lb_ebpf::mem::ipv4_part(addr));
    k
}

/// Bytes of a segment checksummed per step (`offload.rs`): `bpf_csum_diff` takes at most 512
/// on 6.1.
pub const CSUM_CHUNK: usize = 512;

/// `struct bpf_fib_lookup` without its unions: 64 bytes, as the helper expects.
#[repr(C, align(8))]
pub struct Fib {
    pub family: u8,
    pub l4_protocol: u8,
    pub sport: u16,
    pub dport: u16,
    /// In: packet length for the MTU check (0 = no check). Out: the MTU when too big.
    pub tot_len: u16,
    pub ifindex: u32,
    pub flowinfo: u32,
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub vlan_proto: u16,
    pub vlan_tci: u16,
    pub smac: [u8; 6],
    pub dmac: [u8; 6],
}

const _: () = assert!(core::mem::size_of::<Fib>() == 64);

/// This CPU's `lb_fib` entry: the helper's parameter block, and room for a `lb_unresolved`
/// key and value.
#[repr(C)]
pub struct FibScratch {
    pub fib: Fib,
    pub neigh: NeighKey,
    pub now: u64,
}
