//! A frame's verdict (XDP action) and the reason it is counted under, packed in one register.

pub use lb_common::Reason;

pub const XDP_ABORTED: u32 = 0;
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;
pub const XDP_REDIRECT: u32 = 4;

/// Not an XDP action: "too big for the path", which the caller answers (`Verdict::oversized`).
const OVERSIZED: u32 = 0xff;

/// Reason bits in a packed verdict: every `Reason` fits (checked in lb-common).
const REASON_MASK: u32 = 0x3f;

/// Flow bits: the frame was scheduled as a new flow, or found its tracked one. They ride on
/// the verdict so the frame's counters (`GlobalStats`) are updated in one place.
const FLOW_NEW: u32 = 1 << 16;
const FLOW_HIT: u32 = 1 << 17;

/// A verdict, its reason and its flow bits in one `u32` (non-inlined BPF functions return
/// one register).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

    /// The frame is larger than its path's MTU: a rewrite stage returns this unsent, and its
    /// caller answers it (a sibling call keeps the verifier's call chain short).
    #[inline(always)]
    pub fn oversized() -> Self {
        Self::new(OVERSIZED, Reason::TooBig)
    }

    #[inline(always)]
    pub fn is_oversized(self) -> bool {
        self.action() == OVERSIZED
    }

    /// Whether the frame leaves through a device (TX or redirect).
    #[inline(always)]
    pub fn is_forwarded(self) -> bool {
        matches!(self.action(), XDP_TX | XDP_REDIRECT)
    }

    /// The same verdict counted under `reason` when it sent the packet on (TX or redirect).
    #[inline(always)]
    pub fn with_reason_if_forwarded(self, reason: Reason) -> Self {
        if self.is_forwarded() { Self(self.0 & !(REASON_MASK << 8) | (reason as u32) << 8) } else { self }
    }

    /// The same verdict for a frame that was scheduled as a new flow (`new`) or found its
    /// tracked one.
    #[inline(always)]
    pub fn with_flow(self, new: bool) -> Self {
        Self(self.0 | if new { FLOW_NEW } else { FLOW_HIT })
    }

    /// Another verdict for the same frame (an answer in its place): it keeps this one's flow.
    #[inline(always)]
    pub fn flow_onto(self, answer: Verdict) -> Self {
        Self(answer.0 | self.0 & (FLOW_NEW | FLOW_HIT))
    }

    /// Whether the frame met a flow (new or tracked): `flows_new`, `flows_hit` count it.
    #[inline(always)]
    pub fn has_flow(self) -> bool {
        self.0 & (FLOW_NEW | FLOW_HIT) != 0
    }

    /// 1 when the frame was scheduled as a new flow, else 0.
    #[inline(always)]
    pub fn flow_new(self) -> u64 {
        u64::from(self.0 >> 16 & 1)
    }

    /// 1 when the frame found its tracked flow, else 0.
    #[inline(always)]
    pub fn flow_hit(self) -> u64 {
        u64::from(self.0 >> 17 & 1)
    }

    /// The packed form, to keep in memory (`Frame::trace_verdict`) and read back.
    #[inline(always)]
    pub fn bits(self) -> u32 {
        self.0
    }

    #[inline(always)]
    pub fn from_bits(bits: u32) -> Self {
        Self(bits)
    }

    /// The reason as an index into the `reason_*` fields, bounded for the verifier.
    #[inline(always)]
    pub fn reason_index(self) -> usize {
        ((self.0 >> 8) & REASON_MASK) as usize
    }
}

/// The action for a frame the parser stopped early. Malformed headers are dropped (the kernel
/// would discard them too); anything merely unusual goes to the stack.
#[inline(always)]
pub fn parse_stop_action(reason: Reason) -> u32 {
    match reason {
        Reason::BadEth | Reason::BadIpv4 | Reason::BadIpv6 | Reason::BadL4 => XDP_DROP,
        _ => XDP_PASS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_round_trips_with_every_action() {
        for r in Reason::ALL {
            for a in [XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT] {
                let v = Verdict::new(a, r);
                assert_eq!((v.action(), v.reason_index()), (a, r as usize));
            }
        }
    }

    #[test]
    fn flow_bits_leave_action_and_reason_alone() {
        for new in [false, true] {
            let v = Verdict::new(XDP_TX, Reason::FwdNat).with_flow(new);
            assert_eq!((v.action(), v.reason_index()), (XDP_TX, Reason::FwdNat as usize));
            assert!(v.is_forwarded() && v.has_flow());
            assert_eq!((v.flow_new(), v.flow_hit()), (u64::from(new), u64::from(!new)));
            let icmp = v.with_reason_if_forwarded(Reason::IcmpFwd);
            assert_eq!(
                (icmp.reason_index(), icmp.flow_new(), icmp.flow_hit()),
                (Reason::IcmpFwd as usize, v.flow_new(), v.flow_hit())
            );
            let answer = v.flow_onto(Verdict::new(XDP_DROP, Reason::TooBig));
            assert_eq!((answer.action(), answer.reason_index()), (XDP_DROP, Reason::TooBig as usize));
            assert_eq!((answer.flow_new(), answer.flow_hit()), (v.flow_new(), v.flow_hit()));
        }
        let none = Verdict::new(XDP_PASS, Reason::NoService);
        assert!(!none.has_flow());
        assert_eq!((none.flow_new(), none.flow_hit()), (0, 0));
        assert!(!Verdict::oversized().has_flow());
    }

    #[test]
    fn bits_round_trip() {
        let v = Verdict::new(XDP_TX, Reason::FwdDr);
        assert_eq!(Verdict::from_bits(v.bits()), v);
    }

    #[test]
    fn oversized_is_no_action() {
        let v = Verdict::oversized();
        assert!(v.is_oversized() && !v.is_forwarded());
        for a in [XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT] {
            assert!(!Verdict::new(a, Reason::TooBig).is_oversized());
        }
    }

    #[test]
    fn reason_changes_only_when_forwarded() {
        let tx = Verdict::new(XDP_TX, Reason::FwdNat).with_reason_if_forwarded(Reason::IcmpFwd);
        assert_eq!(tx.reason_index(), Reason::IcmpFwd as usize);
        let pass = Verdict::new(XDP_PASS, Reason::NoRoute).with_reason_if_forwarded(Reason::IcmpFwd);
        assert_eq!(pass.reason_index(), Reason::NoRoute as usize);
    }

    #[test]
    fn malformed_is_dropped_unusual_is_passed() {
        assert_eq!(parse_stop_action(Reason::BadIpv4), XDP_DROP);
        assert_eq!(parse_stop_action(Reason::Fragment), XDP_PASS);
        assert_eq!(parse_stop_action(Reason::NotIp), XDP_PASS);
    }
}
