//! What the daemon does with each record the program hands over, without any I/O: records
//! come in (`on_record`), replays go out (`due`), and the outcome of each is counted.

use std::time::Instant;

use lb_common::consts::{FAMILY_V4, PUNT_EARLY_FRAGMENT, PUNT_FRAGMENT};
use serde::{Deserialize, Serialize};
use tracing::debug;

use super::{
    fragment::fragment_ipv4,
    held::{Fragments, Held, Replay},
    record::{Malformed, locate, parse_record},
};

/// Counters of the hand-over, in `state.json` (`punt`) and the metrics (`lb_punt_*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PuntStats {
    /// Later fragments held because their first fragment had not decided yet.
    pub held: u64,
    /// Replays of held fragments (one fragment may be replayed up to `MAX_REPLAYS` times).
    pub replayed: u64,
    /// Held fragments the program took on a replay: their first fragment had decided, and
    /// they followed it (to its real server, or to the stack if the datagram was not ours).
    pub forwarded_after_replay: u64,
    /// Held fragments whose first fragment never came (`GIVE_UP_AFTER`): passed to the stack.
    pub given_up: u64,
    /// Held fragments dropped: `MAX_HELD` were held already.
    pub dropped_full: u64,
    /// IPv4 datagrams (or fragments) over the egress MTU with DF clear, fragmented here, and
    /// the fragments replayed for them.
    pub fragmented: u64,
    pub fragments_out: u64,
    /// Frames that could not be fragmented (DF set, malformed options, MTU under 68, already
    /// fitting): dropped.
    pub refused: u64,
    /// Records that did not parse (or an early fragment that is no later fragment): dropped.
    pub malformed: u64,
    /// Replays the kernel refused (BPF_PROG_TEST_RUN failed) or `lb_frag_giveup` writes that
    /// failed: those frames are dropped.
    pub replay_errors: u64,
    /// BPF_PROG_TEST_RUN calls, their total and longest wall time (ns).
    pub runs: u64,
    pub run_ns: u64,
    pub run_max_ns: u64,
}

/// Records in, replays out.
#[derive(Debug, Default)]
pub struct Handover {
    held: Fragments,
    /// Fragments cut for the egress MTU, to replay at once (in datagram order).
    cut: Vec<Replay>,
    pub stats: PuntStats,
}

impl Handover {
    /// Takes in one ring record.
    pub fn on_record(&mut self, bytes: &[u8], now: Instant) {
        if let Err(e) = self.take(bytes, now) {
            self.stats.malformed += 1;
            debug!("punt: dropped a malformed record: {e}");
        }
    }

    fn take(&mut self, bytes: &[u8], now: Instant) -> Result<(), Malformed> {
        let rec = parse_record(bytes)?;
        let at = locate(rec.frame)?;
        match rec.kind {
            PUNT_EARLY_FRAGMENT => {
                let offset = at.fragment.map(|f| f.offset).filter(|o| *o != 0).ok_or(Malformed::NotLaterFragment)?;
                match self.held.hold((at.key, offset), rec.ifindex, rec.frame, now) {
                    Held::New => self.stats.held += 1,
                    Held::Full => self.stats.dropped_full += 1,
                    Held::Again | Held::Duplicate => {}
                }
            }
            PUNT_FRAGMENT if at.family == FAMILY_V4 => match fragment_ipv4(rec.frame, at.l3, rec.mtu) {
                Ok(pieces) => {
                    self.stats.fragmented += 1;
                    self.stats.fragments_out += pieces.len() as u64;
                    let ifindex = rec.ifindex;
                    self.cut.extend(pieces.into_iter().map(|frame| Replay { ifindex, frame, give_up: None }));
                }
                Err(e) => {
                    self.stats.refused += 1;
                    debug!(mtu = rec.mtu, "punt: not fragmented: {e}");
                }
            },
            PUNT_FRAGMENT => return Err(Malformed::BadIp),
            kind => return Err(Malformed::Kind(kind)),
        }
        Ok(())
    }

    /// Everything to replay at `now`: cut fragments first (in order), then held ones due.
    pub fn due(&mut self, now: Instant) -> Vec<Replay> {
        let mut out = std::mem::take(&mut self.cut);
        let held = self.held.due(now);
        self.stats.replayed += held.iter().filter(|r| r.give_up.is_none()).count() as u64;
        self.stats.given_up += held.iter().filter(|r| r.give_up.is_some()).count() as u64;
        out.extend(held);
        out
    }

    /// Call once the replays from `due` ran and the records they produced were taken in.
    pub fn settle(&mut self) {
        self.stats.forwarded_after_replay += self.held.settle() as u64;
    }

    /// When `due` next has something (now, if fragments wait to be replayed).
    pub fn next_due(&self, now: Instant) -> Option<Instant> {
        if self.cut.is_empty() { self.held.next_due() } else { Some(now) }
    }

    /// Counts one BPF_PROG_TEST_RUN (`ok`: the kernel ran it) that took `ns`.
    pub fn ran(&mut self, ok: bool, ns: u64) {
        self.stats.runs += 1;
        self.stats.run_ns += ns;
        self.stats.run_max_ns = self.stats.run_max_ns.max(ns);
        if !ok {
            self.stats.replay_errors += 1;
        }
    }

    pub fn held(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use etherparse::PacketBuilder;
    use lb_common::{PuntRecord, consts::PUNT_MAX};

    use super::*;
    use crate::dataplane::punt::held::{FIRST_DELAY, GIVE_UP_AFTER};

    fn record(kind: u8, mtu: u16, frame: &[u8]) -> Vec<u8> {
        let mut r =
            PuntRecord { ifindex: 4, len: frame.len() as u32, kind, pad8: 0, mtu, pad32: 0, frame: [0; PUNT_MAX] };
        r.frame[..frame.len()].copy_from_slice(frame);
        bytemuck::bytes_of(&r).to_vec()
    }

    fn udp4(len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([192, 0, 2, 2], [203, 0, 113, 10], 64)
            .udp(1000, 53)
            .write(&mut out, &vec![7; len])
            .unwrap();
        // DF clear (etherparse sets it), header checksum fixed.
        out[20] &= !0x40;
        out[24..26].copy_from_slice(&[0, 0]);
        let sum = crate::dataplane::punt::fragment::header_checksum(&out[14..34]);
        out[24..26].copy_from_slice(&sum.to_be_bytes());
        out
    }

    /// `frame` made a later fragment (offset 1480, MF clear) of datagram `id`.
    fn later(mut frame: Vec<u8>, id: u16) -> Vec<u8> {
        frame[18..22].copy_from_slice(&[(id >> 8) as u8, id as u8, 0, 185]);
        frame
    }

    #[test]
    fn a_datagram_over_the_mtu_is_cut_and_replayed_at_once() {
        let t0 = Instant::now();
        let mut h = Handover::default();
        h.on_record(&record(PUNT_FRAGMENT, 1480, &udp4(1472)), t0);
        assert_eq!(h.next_due(t0), Some(t0));
        let r = h.due(t0);
        assert_eq!(r.len(), 2);
        assert!(r.iter().all(|r| r.ifindex == 4 && r.give_up.is_none()));
        assert_eq!((h.stats.fragmented, h.stats.fragments_out), (1, 2));
        assert!(h.due(t0).is_empty());
        // With DF set it is refused (the program answers those with ICMP itself).
        let mut df = udp4(1472);
        df[20] |= 0x40;
        h.on_record(&record(PUNT_FRAGMENT, 1480, &df), t0);
        assert_eq!(h.stats.refused, 1);
        assert!(h.due(t0).is_empty());
    }

    #[test]
    fn held_fragments_count_taken_and_given_up() {
        let t0 = Instant::now();
        let mut h = Handover::default();
        h.on_record(&record(PUNT_EARLY_FRAGMENT, 0, &later(udp4(100), 1)), t0);
        h.on_record(&record(PUNT_EARLY_FRAGMENT, 0, &later(udp4(100), 2)), t0);
        assert_eq!((h.stats.held, h.held()), (2, 2));
        let now = t0 + FIRST_DELAY;
        assert_eq!(h.due(now).len(), 2);
        // Datagram 2's fragment comes back; datagram 1's was taken.
        h.on_record(&record(PUNT_EARLY_FRAGMENT, 0, &later(udp4(100), 2)), now);
        h.settle();
        assert_eq!((h.stats.replayed, h.stats.forwarded_after_replay, h.held()), (2, 1, 1));
        // Datagram 2 keeps coming back until the daemon gives up on it.
        let mut rounds = 0;
        while let Some(at) = h.next_due(now) {
            rounds += 1;
            assert!(rounds <= 10);
            for r in h.due(at) {
                if r.give_up.is_none() {
                    h.on_record(&record(PUNT_EARLY_FRAGMENT, 0, &r.frame), at);
                }
            }
            h.settle();
            assert!(at - t0 <= GIVE_UP_AFTER + Duration::from_millis(1));
        }
        assert_eq!((h.stats.given_up, h.stats.forwarded_after_replay, h.held()), (1, 1, 0));
    }

    #[test]
    fn malformed_records_are_counted_and_dropped() {
        let t0 = Instant::now();
        let mut h = Handover::default();
        h.on_record(&[1, 2, 3], t0);
        h.on_record(&record(9, 0, &udp4(10)), t0);
        // An "early fragment" that is a whole datagram, and one that is a first fragment.
        h.on_record(&record(PUNT_EARLY_FRAGMENT, 0, &udp4(10)), t0);
        let mut first = udp4(10);
        first[20] = 0x20;
        h.on_record(&record(PUNT_EARLY_FRAGMENT, 0, &first), t0);
        h.on_record(&record(PUNT_FRAGMENT, 1280, &[0; 60]), t0);
        assert_eq!(h.stats.malformed, 5);
        assert_eq!((h.held(), h.next_due(t0)), (0, None));
    }
}
