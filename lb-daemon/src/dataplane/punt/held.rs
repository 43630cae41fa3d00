//! Later fragments that reached the program before their datagram's first (`PUNT_EARLY_FRAGMENT`).
//! Each is held and replayed after a short wait; the program hands it back again while its
//! first fragment has still not decided, and it is replayed again with a doubled wait. Past
//! `GIVE_UP_AFTER` (or `MAX_REPLAYS`), the daemon gives up: the datagram goes into
//! `lb_frag_giveup` and one last replay passes the fragment to the stack. Pure: the caller
//! brings the clock and does the replays.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use lb_common::FragKey;

/// Wait before the first replay: the first fragment is usually right behind (reordered by
/// microseconds), and a replay costs one BPF_PROG_TEST_RUN.
pub const FIRST_DELAY: Duration = Duration::from_millis(2);
/// Replays of one fragment at most before giving up (waits 2, 4, 8, 16, 32 ms).
pub const MAX_REPLAYS: u32 = 5;
/// How long a fragment is held at most.
pub const GIVE_UP_AFTER: Duration = Duration::from_millis(100);
/// Fragments held at once at most (each up to `PUNT_MAX` bytes: 1 MiB in all).
pub const MAX_HELD: usize = 256;

/// What happens next to a held fragment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Replay it after this wait.
    Replay(Duration),
    /// Give up after this wait: let the program pass it.
    GiveUp(Duration),
}

/// The retry schedule: the next step for a fragment replayed `replays` times so far and held
/// for `held_for`.
pub fn next_step(replays: u32, held_for: Duration) -> Step {
    let left = GIVE_UP_AFTER.saturating_sub(held_for);
    if replays < MAX_REPLAYS {
        let wait = FIRST_DELAY * (1 << replays);
        if wait < left {
            return Step::Replay(wait);
        }
    }
    Step::GiveUp(left)
}

/// A fragment by its datagram and its offset in it (bytes).
pub type Id = (FragKey, u16);

#[derive(Debug)]
struct Entry {
    ifindex: u32,
    frame: Vec<u8>,
    since: Instant,
    replays: u32,
    step: Step,
    due: Instant,
    /// Replayed, and not (yet) handed back.
    in_flight: bool,
}

/// A fragment to replay now.
#[derive(Debug, PartialEq, Eq)]
pub struct Replay {
    pub ifindex: u32,
    pub frame: Vec<u8>,
    /// Put this datagram into `lb_frag_giveup` first, so the program passes the fragment.
    pub give_up: Option<FragKey>,
}

/// What `Held::hold` did with a fragment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Held {
    /// A new fragment, now held.
    New,
    /// A replayed fragment the program handed back: held again, for a longer wait.
    Again,
    /// Already held (a duplicate from the wire): nothing changes.
    Duplicate,
    /// `MAX_HELD` fragments are held already: dropped.
    Full,
}

/// The fragments held, by datagram and offset.
#[derive(Debug, Default)]
pub struct Fragments {
    entries: HashMap<Id, Entry>,
}

impl Fragments {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Takes in a fragment the program handed over.
    pub fn hold(&mut self, id: Id, ifindex: u32, frame: &[u8], now: Instant) -> Held {
        if let Some(e) = self.entries.get_mut(&id) {
            if !e.in_flight {
                return Held::Duplicate;
            }
            e.in_flight = false;
            e.step = next_step(e.replays, now.saturating_duration_since(e.since));
            e.due = now + wait(e.step);
            return Held::Again;
        }
        if self.entries.len() >= MAX_HELD {
            return Held::Full;
        }
        let step = next_step(0, Duration::ZERO);
        let e = Entry {
            ifindex,
            frame: frame.to_vec(),
            since: now,
            replays: 0,
            step,
            due: now + wait(step),
            in_flight: false,
        };
        self.entries.insert(id, e);
        Held::New
    }

    /// The replays due at `now`. Replayed fragments stay (in flight) until `settle`; given-up
    /// ones leave.
    pub fn due(&mut self, now: Instant) -> Vec<Replay> {
        let ids: Vec<Id> =
            self.entries.iter().filter(|(_, e)| !e.in_flight && e.due <= now).map(|(id, _)| *id).collect();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(e) = self.entries.get_mut(&id) else { continue };
            match e.step {
                Step::Replay(_) => {
                    e.in_flight = true;
                    e.replays += 1;
                    out.push(Replay { ifindex: e.ifindex, frame: e.frame.clone(), give_up: None });
                }
                Step::GiveUp(_) => {
                    if let Some(e) = self.entries.remove(&id) {
                        out.push(Replay { ifindex: e.ifindex, frame: e.frame, give_up: Some(id.0) });
                    }
                }
            }
        }
        out
    }

    /// After the replays and the records they produced: fragments still in flight were taken
    /// by the program (their first fragment had decided). Returns how many.
    pub fn settle(&mut self) -> usize {
        let before = self.entries.len();
        self.entries.retain(|_, e| !e.in_flight);
        before - self.entries.len()
    }

    /// When the next replay is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.entries.values().filter(|e| !e.in_flight).map(|e| e.due).min()
    }
}

fn wait(step: Step) -> Duration {
    match step {
        Step::Replay(d) | Step::GiveUp(d) => d,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32, offset: u16) -> Id {
        (FragKey { id: n, ..Default::default() }, offset)
    }

    #[test]
    fn schedule_doubles_then_gives_up_at_100_ms() {
        let ms = Duration::from_millis;
        // Handed back at once every time: replays at 2, 6, 14, 30, 62 ms, give up at 100.
        let mut t = Duration::ZERO;
        let mut at = Vec::new();
        for replays in 0.. {
            match next_step(replays, t) {
                Step::Replay(w) => {
                    t += w;
                    at.push(t);
                }
                Step::GiveUp(w) => {
                    t += w;
                    break;
                }
            }
        }
        assert_eq!(at, [ms(2), ms(6), ms(14), ms(30), ms(62)]);
        assert_eq!(t, GIVE_UP_AFTER);
        // A slow daemon: no replay is scheduled past the budget, and none after it.
        assert_eq!(next_step(1, ms(97)), Step::GiveUp(ms(3)));
        assert_eq!(next_step(0, ms(150)), Step::GiveUp(Duration::ZERO));
    }

    #[test]
    fn a_fragment_whose_first_arrives_is_replayed_once_and_taken() {
        let t0 = Instant::now();
        let mut h = Fragments::default();
        assert_eq!(h.hold(id(1, 1480), 3, &[1, 2, 3], t0), Held::New);
        assert_eq!(h.next_due(), Some(t0 + FIRST_DELAY));
        assert!(h.due(t0 + Duration::from_millis(1)).is_empty(), "not before its wait");
        let r = h.due(t0 + FIRST_DELAY);
        assert_eq!(r, [Replay { ifindex: 3, frame: vec![1, 2, 3], give_up: None }]);
        assert_eq!(h.next_due(), None, "in flight: nothing due until it comes back or settles");
        // The program did not hand it back: taken.
        assert_eq!(h.settle(), 1);
        assert_eq!(h.len(), 0);
    }

    #[test]
    fn a_fragment_handed_back_is_replayed_with_backoff_then_given_up() {
        let t0 = Instant::now();
        let mut h = Fragments::default();
        h.hold(id(1, 8), 3, &[9], t0);
        let mut replays = 0;
        let mut now = t0;
        // Every replay comes back at once (the first fragment never arrives).
        for _ in 0..20 {
            now = h.next_due().unwrap();
            let r = h.due(now);
            assert_eq!(r.len(), 1);
            if let Some(key) = r[0].give_up {
                assert_eq!(key, id(1, 8).0);
                break;
            }
            replays += 1;
            assert_eq!(h.hold(id(1, 8), 3, &[9], now), Held::Again);
            assert_eq!(h.settle(), 0);
        }
        assert_eq!(replays, MAX_REPLAYS);
        assert_eq!(now - t0, GIVE_UP_AFTER);
        assert_eq!(h.len(), 0, "given up: no longer held");
    }

    #[test]
    fn duplicates_are_held_once_and_the_limit_holds() {
        let t0 = Instant::now();
        let mut h = Fragments::default();
        assert_eq!(h.hold(id(1, 8), 3, &[1], t0), Held::New);
        assert_eq!(h.hold(id(1, 8), 3, &[1], t0), Held::Duplicate);
        assert_eq!(h.hold(id(1, 16), 3, &[1], t0), Held::New, "another fragment of the same datagram");
        for n in 2..(MAX_HELD as u32) {
            assert_eq!(h.hold(id(n, 8), 3, &[1], t0), Held::New);
        }
        assert_eq!(h.len(), MAX_HELD);
        assert_eq!(h.hold(id(9999, 8), 3, &[1], t0), Held::Full);
        assert_eq!(h.due(t0 + FIRST_DELAY).len(), MAX_HELD);
        assert_eq!(h.settle(), MAX_HELD);
    }
}
