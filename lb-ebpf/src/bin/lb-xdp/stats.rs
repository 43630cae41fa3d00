//! Per-CPU counters: no atomics needed, userspace sums the CPUs.

use lb_common::GlobalStats;
use lb_ebpf::verdict::{Verdict, XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX};

use crate::maps::{lb_real_stats, lb_stats, lb_svc_direct};

/// Counts a frame: received, its verdict, its reason and its flow (new or tracked).
#[inline(always)]
pub fn count(v: Verdict, len: u64) {
    let Some(s) = lb_stats.get_ptr_mut(0) else { return };
    // SAFETY: per-CPU slot, this program is its only writer on this CPU while it runs.
    let s = unsafe { &mut *s };
    s.rx_packets += 1;
    s.rx_bytes += len;
    match v.action() {
        XDP_PASS => {
            s.pass_packets += 1;
            s.pass_bytes += len;
        }
        XDP_DROP | XDP_ABORTED => {
            s.drop_packets += 1;
            s.drop_bytes += len;
        }
        XDP_TX => {
            s.tx_packets += 1;
            s.tx_bytes += len;
        }
        _ => {
            s.redirect_packets += 1;
            s.redirect_bytes += len;
        }
    }
    *reason_field(s, v.reason_index()) += 1;
    if v.has_flow() {
        s.flows_new += v.flow_new();
        s.flows_hit += v.flow_hit();
    }
}

/// A change to a flow table the program makes (the LRU's own evictions it never sees: they
/// are derived in userspace from these and the tables' occupancy).
#[derive(Clone, Copy)]
pub enum TableChange {
    CtInsert,
    CtDelete,
    HalfOpenInsert,
    HalfOpenDelete,
}

#[inline(always)]
pub fn count_table(change: TableChange) {
    if let Some(s) = lb_stats.get_ptr_mut(0) {
        // SAFETY: as in `count`.
        let s = unsafe { &mut *s };
        match change {
            TableChange::CtInsert => s.ct_inserts += 1,
            TableChange::CtDelete => s.ct_deletes += 1,
            TableChange::HalfOpenInsert => s.halfopen_inserts += 1,
            TableChange::HalfOpenDelete => s.halfopen_deletes += 1,
        }
    }
}

const STAT_WORDS: usize = core::mem::size_of::<GlobalStats>() / 8;

/// The `reason_*` counter at `reason` (an index bounded by `Verdict`).
#[inline(always)]
fn reason_field(s: &mut GlobalStats, reason: usize) -> &mut u64 {
    // SAFETY: GlobalStats is all u64s (repr(C), no padding).
    let words = unsafe { &mut *(s as *mut GlobalStats).cast::<[u64; STAT_WORDS]>() };
    let i = GlobalStats::REASON_BASE + reason;
    let i = if i < STAT_WORDS { i } else { GlobalStats::REASON_BASE };
    &mut words[i]
}

/// A service's frame that went to (or towards) real server `real`: the service's totals are
/// its real servers' sums, added up in userspace.
#[inline(always)]
pub fn count_real(real: u32, len: usize, new_flow: bool) {
    if let Some(r) = lb_real_stats.get_ptr_mut(real) {
        // SAFETY: per-CPU slot, see `count`.
        let r = unsafe { &mut *r };
        r.packets += 1;
        r.bytes += len as u64;
        r.new_flows += u64::from(new_flow);
    }
}

/// A frame of service `svc` dropped for want of a live real server.
#[inline(always)]
pub fn count_drop(svc: u32, len: usize) {
    count_direct(svc, len, 1);
}

/// A frame of service `svc` no live real server counts (`drops` 1 when it is dropped for
/// want of one).
#[inline(always)]
pub fn count_direct(svc: u32, len: usize, drops: u64) {
    if let Some(s) = lb_svc_direct.get_ptr_mut(svc) {
        // SAFETY: per-CPU slot, see `count`.
        let s = unsafe { &mut *s };
        s.packets += 1;
        s.bytes += len as u64;
        s.drops += drops;
    }
}
