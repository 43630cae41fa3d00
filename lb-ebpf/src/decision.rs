//! What the flow stage decides for a packet, packed in one register.
//!
//! Non-inlined BPF functions return one 64-bit value; an aggregate came back garbled, so the
//! real server, the forwarding method and the flags travel as bits of one `u64`. The flags
//! (and the configuration generation) sit at bit 40 in the order of lb-common's
//! `TRACE_FLOW_*`, so `lb-daemon trace` reads them as one byte.

use lb_common::consts::{
    NO_REAL, TRACE_FLOW_FOUND, TRACE_FLOW_GEN_KNOWN, TRACE_FLOW_GEN1, TRACE_FLOW_HALF_OPEN, TRACE_FLOW_NEW,
    TRACE_FLOW_PROMOTED,
};

/// The outcome of a flow lookup: the real server, the forwarding method (`FWD_*`), and flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(transparent)]
pub struct Decision(u64);

/// Where the flags start.
const FLAGS_AT: u32 = 40;
/// A real server was found (the id is not `NO_REAL`).
const OK: u64 = (TRACE_FLOW_FOUND as u64) << FLAGS_AT;
/// The flow was scheduled by this packet (not found in a table).
const NEW: u64 = (TRACE_FLOW_NEW as u64) << FLAGS_AT;
/// The flow is half-open: its NAT reply tuple goes to `lb_halfopen_rev`.
const HALF_OPEN: u64 = (TRACE_FLOW_HALF_OPEN as u64) << FLAGS_AT;
/// The flow just left the half-open table: its NAT reply tuple goes to `lb_nat_rev` now.
const PROMOTED: u64 = (TRACE_FLOW_PROMOTED as u64) << FLAGS_AT;
/// The service's configuration generation that decided (`GEN1`: generation 1), once known.
const GEN1: u64 = (TRACE_FLOW_GEN1 as u64) << FLAGS_AT;
const GEN_KNOWN: u64 = (TRACE_FLOW_GEN_KNOWN as u64) << FLAGS_AT;
/// No table holds the flow (a sorry server's, a hashing scheduler's bare SYN): a NAT reply
/// cannot be checked against it, so it needs a reverse entry of its own. Above the trace's
/// byte: the trace does not show it.
const UNTRACKED: u64 = 1 << (FLAGS_AT + 8);

impl Decision {
    /// `real` (or `NO_REAL`: no real server), forwarded by `fwd`, scheduled now if `new`.
    #[inline(always)]
    pub fn new(real: u32, fwd: u8, new: bool) -> Self {
        let ok = if real == NO_REAL { 0 } else { OK };
        Self(u64::from(real) | u64::from(fwd) << 32 | ok | if new { NEW } else { 0 })
    }

    /// No real server for this packet.
    #[inline(always)]
    pub fn none() -> Self {
        Self::new(NO_REAL, 0, false)
    }

    #[inline(always)]
    pub fn half_open(self) -> Self {
        Self(self.0 | HALF_OPEN)
    }

    #[inline(always)]
    pub fn promoted(self) -> Self {
        Self(self.0 | PROMOTED)
    }

    #[inline(always)]
    pub fn untracked(self) -> Self {
        Self(self.0 | UNTRACKED)
    }

    /// Notes which configuration generation (0/1) decided.
    #[inline(always)]
    pub fn with_generation(self, generation: u32) -> Self {
        Self(self.0 | GEN_KNOWN | (u64::from(generation & 1) * GEN1))
    }

    /// The flags as `TRACE_FLOW_*` bits, for the trace.
    #[inline(always)]
    pub fn trace_flow(self) -> u8 {
        (self.0 >> FLAGS_AT) as u8
    }

    #[inline(always)]
    pub fn is_half_open(self) -> bool {
        self.0 & HALF_OPEN != 0
    }

    #[inline(always)]
    pub fn is_promoted(self) -> bool {
        self.0 & PROMOTED != 0
    }

    #[inline(always)]
    pub fn is_untracked(self) -> bool {
        self.0 & UNTRACKED != 0
    }

    #[inline(always)]
    pub fn real(self) -> u32 {
        self.0 as u32
    }

    #[inline(always)]
    pub fn fwd(self) -> u8 {
        (self.0 >> 32) as u8
    }

    /// A real server was found.
    #[inline(always)]
    pub fn ok(self) -> bool {
        self.0 & OK != 0
    }

    #[inline(always)]
    pub fn is_new(self) -> bool {
        self.0 & NEW != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lb_common::consts::{FWD_DR, FWD_NAT, FWD_TUN};

    #[test]
    fn fields_round_trip() {
        for (real, fwd, new) in [(0, FWD_NAT, true), (65535, FWD_TUN, false), (u32::MAX - 1, FWD_DR, true)] {
            let d = Decision::new(real, fwd, new);
            assert_eq!((d.real(), d.fwd(), d.is_new(), d.ok()), (real, fwd, new, true));
            assert!(!d.is_half_open() && !d.is_promoted());
            let h = d.half_open().promoted();
            assert_eq!((h.real(), h.fwd(), h.is_new()), (real, fwd, new));
            assert!(h.is_half_open() && h.is_promoted() && !h.is_untracked());
            let u = d.untracked();
            assert_eq!((u.real(), u.fwd(), u.is_new(), u.is_untracked()), (real, fwd, new, true));
            assert_eq!(u.trace_flow(), d.trace_flow(), "the trace's byte is unchanged");
        }
    }

    #[test]
    fn the_trace_reads_the_flags_and_the_generation() {
        let d = Decision::new(7, FWD_NAT, true).half_open();
        assert_eq!(d.trace_flow(), TRACE_FLOW_FOUND | TRACE_FLOW_NEW | TRACE_FLOW_HALF_OPEN);
        let g = d.with_generation(1);
        assert_eq!(g.trace_flow(), d.trace_flow() | TRACE_FLOW_GEN_KNOWN | TRACE_FLOW_GEN1);
        assert_eq!((g.real(), g.fwd(), g.is_new(), g.ok()), (7, FWD_NAT, true, true));
        let p = Decision::new(3, FWD_DR, false).promoted().with_generation(2);
        assert_eq!(p.trace_flow(), TRACE_FLOW_FOUND | TRACE_FLOW_PROMOTED | TRACE_FLOW_GEN_KNOWN);
        assert_eq!(Decision::none().trace_flow(), 0);
    }

    #[test]
    fn no_real_is_not_ok() {
        assert!(!Decision::none().ok());
        assert!(!Decision::new(NO_REAL, FWD_DR, true).ok());
        assert_eq!(Decision::new(NO_REAL, FWD_DR, true).fwd(), FWD_DR);
    }
}
