//! Per-CPU counters: no atomics needed, userspace sums the CPUs.

use aya_ebpf::bindings::xdp_action;
use lb_common::GlobalStats;

use crate::maps::{REAL_STATS, STATS, SVC_STATS};

/// Why a frame got its verdict; each maps to one `reason_*` field of `GlobalStats`, in the
/// same order (checked below), so counting is an index the verifier can bound.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Reason {
    NotIp,
    DeepVlan,
    NoService,
    Fragment,
    IpOptions,
    Icmp,
    OtherProto,
    FwdNat,
    FwdDr,
    FwdTun,
    NatReply,
    IcmpFwd,
    NoRoute,
    NoReal,
    TooBig,
    BadEth,
    BadIpv4,
    BadIpv6,
    BadL4,
}

/// A verdict and its reason packed in one register: what non-inlined functions return (the
/// BPF calling convention returns one 64-bit value; an aggregate came back garbled).
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct Verdict(u32);

impl Verdict {
    #[inline(always)]
    pub fn new(action: u32, reason: Reason) -> Self {
        Self((reason as u32) << 8 | (action & 0xff))
    }

    #[inline(always)]
    pub fn action(self) -> u32 {
        self.0 & 0xff
    }

    /// The same verdict counted under `reason` when it sent the packet on (TX or redirect).
    #[inline(always)]
    pub fn with_reason_if_forwarded(self, reason: Reason) -> Self {
        match self.action() {
            xdp_action::XDP_TX | xdp_action::XDP_REDIRECT => Self::new(self.action(), reason),
            _ => self,
        }
    }

    /// The reason as an index into the `reason_*` fields, bounded for the verifier.
    #[inline(always)]
    fn reason_index(self) -> usize {
        ((self.0 >> 8) & 0x1f) as usize
    }
}

impl Reason {
    /// The verdict for frames stopped early by the parser. Malformed headers are dropped
    /// (the kernel would discard them too); anything merely unusual goes to the stack.
    #[inline(always)]
    pub fn action(self) -> u32 {
        match self {
            Reason::BadEth | Reason::BadIpv4 | Reason::BadIpv6 | Reason::BadL4 => xdp_action::XDP_DROP,
            _ => xdp_action::XDP_PASS,
        }
    }
}

#[inline(always)]
pub fn count(v: Verdict, len: u64) {
    let action = v.action();
    let Some(s) = STATS.get_ptr_mut(0) else { return };
    // SAFETY: per-CPU slot, this program is its only writer on this CPU while it runs.
    let s = unsafe { &mut *s };
    s.rx_packets += 1;
    s.rx_bytes += len;
    match action {
        xdp_action::XDP_PASS => {
            s.pass_packets += 1;
            s.pass_bytes += len;
        }
        xdp_action::XDP_DROP | xdp_action::XDP_ABORTED => {
            s.drop_packets += 1;
            s.drop_bytes += len;
        }
        xdp_action::XDP_TX => {
            s.tx_packets += 1;
            s.tx_bytes += len;
        }
        _ => {
            s.redirect_packets += 1;
            s.redirect_bytes += len;
        }
    }
    *reason_field(s, v.reason_index()) += 1;
}

/// Counts a flow lookup: new (scheduled) or a conntrack hit.
#[inline(always)]
pub fn count_flow(new: bool) {
    if let Some(s) = STATS.get_ptr_mut(0) {
        // SAFETY: as in `count`.
        let s = unsafe { &mut *s };
        if new {
            s.flows_new += 1;
        } else {
            s.flows_hit += 1;
        }
    }
}

const STAT_WORDS: usize = core::mem::size_of::<GlobalStats>() / 8;
const REASON_BASE: usize = core::mem::offset_of!(GlobalStats, reason_not_ip) / 8;
const _: () = assert!(core::mem::offset_of!(GlobalStats, reason_bad_l4) / 8 == REASON_BASE + Reason::BadL4 as usize);
const _: () = assert!(core::mem::offset_of!(GlobalStats, reason_fwd_nat) / 8 == REASON_BASE + Reason::FwdNat as usize);

#[inline(always)]
fn reason_field(s: &mut GlobalStats, reason: usize) -> &mut u64 {
    // SAFETY: GlobalStats is all u64s (repr(C), no padding).
    let words = unsafe { &mut *(s as *mut GlobalStats).cast::<[u64; STAT_WORDS]>() };
    let i = REASON_BASE + reason;
    let i = if i < STAT_WORDS { i } else { REASON_BASE };
    &mut words[i]
}

/// Per-service (and, with a real server, per-real) packet accounting.
#[inline(always)]
pub fn count_service(svc: u32, real: Option<u32>, len: usize, new_flow: bool, dropped: bool) {
    if let Some(s) = SVC_STATS.get_ptr_mut(svc) {
        // SAFETY: per-CPU slot, see `count`.
        let s = unsafe { &mut *s };
        s.packets += 1;
        s.bytes += len as u64;
        s.new_flows += u64::from(new_flow);
        s.drops += u64::from(dropped);
    }
    if let Some(r) = real.and_then(|r| REAL_STATS.get_ptr_mut(r)) {
        // SAFETY: as above.
        let r = unsafe { &mut *r };
        r.packets += 1;
        r.bytes += len as u64;
        r.new_flows += u64::from(new_flow);
        r.drops += u64::from(dropped);
    }
}
