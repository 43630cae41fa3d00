//! Per-CPU counters: no atomics needed, userspace sums the CPUs.

use aya_ebpf::bindings::xdp_action;
use lb_common::GlobalStats;

use crate::maps::{STATS, SVC_STATS};

/// Why a frame got its verdict; each maps to one `reason_*` field of `GlobalStats`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    NotIp,
    DeepVlan,
    NoService,
    Fragment,
    IpOptions,
    Icmp,
    OtherProto,
    ServiceHit,
    BadEth,
    BadIpv4,
    BadIpv6,
    BadL4,
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
pub fn count(action: u32, reason: Reason, len: u64) {
    let Some(s) = STATS.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU slot, this program is its only writer on this CPU while it runs.
    let s = unsafe { &mut *s };
    s.rx_packets += 1;
    s.rx_bytes += len;
    match action {
        xdp_action::XDP_PASS => {
            s.pass_packets += 1;
            s.pass_bytes += len;
        }
        xdp_action::XDP_DROP => {
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
    *reason_field(s, reason) += 1;
}

#[inline(always)]
fn reason_field(s: &mut GlobalStats, reason: Reason) -> &mut u64 {
    match reason {
        Reason::NotIp => &mut s.reason_not_ip,
        Reason::DeepVlan => &mut s.reason_deep_vlan,
        Reason::NoService => &mut s.reason_no_service,
        Reason::Fragment => &mut s.reason_fragment,
        Reason::IpOptions => &mut s.reason_ip_options,
        Reason::Icmp => &mut s.reason_icmp,
        Reason::OtherProto => &mut s.reason_other_proto,
        Reason::ServiceHit => &mut s.reason_service_hit,
        Reason::BadEth => &mut s.reason_bad_eth,
        Reason::BadIpv4 => &mut s.reason_bad_ipv4,
        Reason::BadIpv6 => &mut s.reason_bad_ipv6,
        Reason::BadL4 => &mut s.reason_bad_l4,
    }
}

#[inline(always)]
pub fn count_service(id: u32, len: usize) {
    if let Some(s) = SVC_STATS.get_ptr_mut(id) {
        // SAFETY: per-CPU slot, see `count`.
        let s = unsafe { &mut *s };
        s.packets += 1;
        s.bytes += len as u64;
    }
}
