//! What the flow stage decides for a packet, packed in one register.
//!
//! Non-inlined BPF functions return one 64-bit value; an aggregate came back garbled, so the
//! real server, the forwarding method and the flags travel as bits of one `u64`.

use lb_common::consts::NO_REAL;

/// The outcome of a flow lookup: the real server, the forwarding method (`FWD_*`), and flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(transparent)]
pub struct Decision(u64);

/// A real server was found (the id is not `NO_REAL`).
const OK: u64 = 1 << 40;
/// The flow was scheduled by this packet (not found in a table).
const NEW: u64 = 1 << 41;
/// The flow is half-open: its NAT reply tuple goes to `lb_halfopen_rev`.
const HALF_OPEN: u64 = 1 << 42;
/// The flow just left the half-open table: its NAT reply tuple goes to `lb_nat_rev` now.
const PROMOTED: u64 = 1 << 43;

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
    pub fn is_half_open(self) -> bool {
        self.0 & HALF_OPEN != 0
    }

    #[inline(always)]
    pub fn is_promoted(self) -> bool {
        self.0 & PROMOTED != 0
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
            assert!(h.is_half_open() && h.is_promoted());
        }
    }

    #[test]
    fn no_real_is_not_ok() {
        assert!(!Decision::none().ok());
        assert!(!Decision::new(NO_REAL, FWD_DR, true).ok());
        assert_eq!(Decision::new(NO_REAL, FWD_DR, true).fwd(), FWD_DR);
    }
}
