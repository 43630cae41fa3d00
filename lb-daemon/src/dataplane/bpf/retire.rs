//! What a flip retired waits here until no packet can still be reading it: XDP runs take
//! microseconds, so `GENERATION_GRACE` after the flip (or the key removal) nothing refers to
//! a retired real server or table slice any more. The data plane's tick drains the queue; no
//! one sleeps.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

/// How long a retired generation slot, table slice or real server id stays untouched after
/// the flip (or key removal) that retired it.
pub const GENERATION_GRACE: Duration = Duration::from_millis(50);

/// Something a flip retired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retired {
    /// A real server id: its entry in `lb_reals` is cleared, then the id may be reused. What
    /// it counted goes into its service's `lb_svc_carry` (`carry_to`), unless the service
    /// went too (a removed service's id is not reused before its real servers are cleared,
    /// `Book::cooling`, so a carry into it reaches no other service).
    Real { id: u32, carry_to: Option<u32> },
    /// A table slice (offset, length) of a removed service: back to the pool.
    Slice(u32, u32),
    /// A removed service's id: free for another service (`Book::cooling`).
    ServiceId(u32),
}

#[derive(Debug, Default)]
pub struct RetireQueue {
    /// In the order retired, so readiness is in order too.
    entries: VecDeque<(Instant, Retired)>,
}

impl RetireQueue {
    /// Retires `what` as of `now` (the flip or key removal that retired it).
    pub fn push(&mut self, now: Instant, what: impl IntoIterator<Item = Retired>) {
        self.entries.extend(what.into_iter().map(|w| (now + GENERATION_GRACE, w)));
    }

    /// What has been retired for at least the grace period by `now`, in the order retired.
    pub fn take_ready(&mut self, now: Instant) -> Vec<Retired> {
        let n = self.entries.iter().take_while(|(at, _)| *at <= now).count();
        self.entries.drain(..n).map(|(_, w)| w).collect()
    }

    /// The real server ids still waiting out their grace period: packets may still be sent
    /// to them.
    pub fn reals(&self) -> impl Iterator<Item = u32> + '_ {
        self.entries.iter().filter_map(|(_, w)| if let Retired::Real { id, .. } = w { Some(*id) } else { None })
    }

    /// Those of them whose counts will join service `svc`'s.
    pub fn reals_of(&self, svc: u32) -> impl Iterator<Item = u32> + '_ {
        self.entries.iter().filter_map(move |(_, w)| match w {
            Retired::Real { id, carry_to: Some(s) } if *s == svc => Some(*id),
            _ => None,
        })
    }

    /// When the next entry becomes ready.
    pub fn next_ready(&self) -> Option<Instant> {
        self.entries.front().map(|(at, _)| *at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_become_ready_after_the_grace_period_in_order() {
        let t0 = Instant::now();
        let mut q = RetireQueue::default();
        assert_eq!(q.next_ready(), None);
        let real = |id| Retired::Real { id, carry_to: Some(1) };
        q.push(t0, [real(3), Retired::Slice(10, 5)]);
        q.push(t0 + Duration::from_millis(20), [real(4)]);
        assert_eq!(q.next_ready(), Some(t0 + GENERATION_GRACE));
        assert!(q.take_ready(t0 + GENERATION_GRACE - Duration::from_millis(1)).is_empty());
        assert_eq!(q.take_ready(t0 + GENERATION_GRACE), [real(3), Retired::Slice(10, 5)]);
        assert_eq!(q.next_ready(), Some(t0 + Duration::from_millis(20) + GENERATION_GRACE));
        assert_eq!(q.take_ready(t0 + Duration::from_secs(1)), [real(4)]);
        assert_eq!(q.next_ready(), None);
    }

    /// `reals_of` lists the retiring real servers whose counts join that service's.
    #[test]
    fn retiring_real_servers_are_listed_by_the_service_they_carry_to() {
        let t0 = Instant::now();
        let mut q = RetireQueue::default();
        q.push(t0, [Retired::Real { id: 3, carry_to: Some(1) }, Retired::Real { id: 4, carry_to: None }]);
        assert_eq!(q.reals_of(1).collect::<Vec<_>>(), [3]);
        assert_eq!(q.reals().collect::<Vec<_>>(), [3, 4], "both wait out the grace period");
    }
}
