//! The established flows as the daemon reads and writes them: one table of `FlowKey`s over the
//! two the program keeps, `lb_conntrack4` (IPv4 flows by a 16-byte `FlowKey4`, which jhash
//! mixes in one round where it takes three over 40 bytes) and `lb_conntrack` (IPv6 flows).
//! Flow dumps, connection sync, expiry and the statistics all go through here.

use std::{
    borrow::{Borrow, BorrowMut},
    collections::HashSet,
    path::Path,
};

use anyhow::{Context as _, Result};
use aya::maps::{HashMap, MapData, MapError};
use lb_common::{
    FlowKey, FlowKey4, FlowValue,
    consts::{CT_CLOSING, FAMILY_V4, MAP_CONNTRACK, MAP_CONNTRACK4},
};

use super::maps::{already_there, not_found, pinned};

/// `bpf_map_update_elem` flag: only create.
const BPF_NOEXIST: u64 = 1;

/// Both established-flow tables. `narrow` is None where it is not pinned (the pins of a
/// layout before 10, whose program kept IPv4 flows in `lb_conntrack` too).
pub struct Conntrack<T> {
    wide: HashMap<T, FlowKey, FlowValue>,
    narrow: Option<HashMap<T, FlowKey4, FlowValue>>,
}

impl Conntrack<MapData> {
    /// The tables pinned under `pin_dir`.
    pub fn open(pin_dir: &Path) -> Result<Self> {
        let wide = HashMap::try_from(pinned(&pin_dir.join(MAP_CONNTRACK))?).context(MAP_CONNTRACK)?;
        let path = pin_dir.join(MAP_CONNTRACK4);
        let narrow = match path.exists() {
            true => Some(HashMap::try_from(pinned(&path)?).context(MAP_CONNTRACK4)?),
            false => None,
        };
        Ok(Self { wide, narrow })
    }
}

impl<T: Borrow<MapData>> Conntrack<T> {
    /// Every flow, IPv4 first (an entry deleted between the key walk and its lookup is
    /// skipped).
    pub fn entries(&self) -> Vec<(FlowKey, FlowValue)> {
        let narrow = self.narrow.iter().flat_map(|m| m.iter().filter_map(|e| e.ok()).map(|(k, v)| (k.widen(), v)));
        narrow.chain(self.wide.iter().filter_map(|e| e.ok())).collect()
    }

    /// How many flows the tables hold (a walk of their keys).
    pub fn count(&self) -> u64 {
        let narrow = self.narrow.as_ref().map_or(0, |m| m.keys().filter(|k| k.is_ok()).count());
        (narrow + self.wide.keys().filter(|k| k.is_ok()).count()) as u64
    }

    /// Flow `k`'s entry.
    pub fn get(&self, k: &FlowKey) -> Result<FlowValue, MapError> {
        match (&self.narrow, k.narrow()) {
            (Some(m), Some(k4)) => m.get(&k4, 0),
            _ => self.wide.get(k, 0),
        }
    }
}

impl<T: BorrowMut<MapData>> Conntrack<T> {
    /// Writes flow `k`'s entry where the program looks for it.
    pub fn insert(&mut self, k: &FlowKey, v: FlowValue) -> Result<(), MapError> {
        match (&mut self.narrow, k.narrow()) {
            (Some(m), Some(k4)) => m.insert(k4, v, 0),
            _ => self.wide.insert(k, v, 0),
        }
    }

    /// Deletes flow `k`.
    pub fn remove(&mut self, k: &FlowKey) -> Result<(), MapError> {
        match (&mut self.narrow, k.narrow()) {
            (Some(m), Some(k4)) => m.remove(&k4),
            _ => self.wide.remove(k),
        }
    }

    /// The first half of taking over the pins of layout 9 or before, whose program keeps
    /// IPv4 flows in `lb_conntrack` and runs until this one is attached: copies each into
    /// `lb_conntrack4` (not moved: the old program must still find it). Returns the flows
    /// `lb_conntrack4` now holds as copies (those already there with the same real server
    /// count as such: a daemon that died between the two halves copied them).
    pub fn copy_ipv4(&mut self) -> Result<HashSet<FlowKey4>> {
        let mut copied = HashSet::new();
        let Some(narrow) = &mut self.narrow else { return Ok(copied) };
        for (k, v) in self.wide.iter().filter_map(|e| e.ok()) {
            let Some(k4) = k.narrow() else { continue };
            match narrow.insert(k4, v, BPF_NOEXIST) {
                Ok(()) => {}
                Err(e) if already_there(&e) => {
                    if narrow.get(&k4, 0).map_or(true, |n| n.real_id != v.real_id) {
                        continue;
                    }
                }
                Err(e) => return Err(e).with_context(|| format!("copying an IPv4 flow into {MAP_CONNTRACK4}")),
            }
            copied.insert(k4);
        }
        Ok(copied)
    }

    /// The second half, once this program is attached: every IPv4 flow still in
    /// `lb_conntrack` goes, into `lb_conntrack4` where `move_flow` says so. Returns how many
    /// moved and the real servers whose open-connection count lost a flow (`Move::Release`).
    pub fn move_ipv4(&mut self, copied: &HashSet<FlowKey4>) -> Result<(u64, Vec<u32>)> {
        let (mut moved, mut released) = (0, Vec::new());
        let Some(narrow) = &mut self.narrow else { return Ok((moved, released)) };
        let old: Vec<(FlowKey, FlowValue)> =
            self.wide.iter().filter_map(|e| e.ok()).filter(|(k, _)| k.family == FAMILY_V4).collect();
        for (k, v) in old {
            let Some(k4) = k.narrow() else { continue };
            let there = narrow.get(&k4, 0).ok();
            match move_flow(&v, there.as_ref(), copied.contains(&k4)) {
                Move::Insert => {
                    narrow.insert(k4, v, 0).with_context(|| format!("moving an IPv4 flow into {MAP_CONNTRACK4}"))?;
                    moved += 1;
                }
                Move::Keep => {}
                Move::Release(real) => released.push(real),
            }
            match self.wide.remove(&k) {
                Ok(()) => {}
                Err(e) if not_found(&e) => {}
                Err(e) => return Err(e).with_context(|| format!("removing a moved IPv4 flow from {MAP_CONNTRACK}")),
            }
        }
        Ok((moved, released))
    }
}

/// What moving an IPv4 flow out of `lb_conntrack` (`old`) does, given `lb_conntrack4`'s
/// entry for it (`there`) and whether that entry is the copy `copy_ipv4` made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Move {
    /// `old` goes into `lb_conntrack4` (nothing there, or the copy is older: the old program
    /// saw a packet since, perhaps its FIN).
    Insert,
    /// The entry there stays.
    Keep,
    /// The entry there stays, and it is not `old`'s copy: this program scheduled the flow
    /// itself (the old program opened it after the copy, and this one saw its next packet
    /// first) and counted it open; so did the old one, whose count goes (real server id).
    Release(u32),
}

pub fn move_flow(old: &FlowValue, there: Option<&FlowValue>, copy: bool) -> Move {
    match there {
        None => Move::Insert,
        Some(t) if copy => {
            if old.last_ns > t.last_ns {
                Move::Insert
            } else {
                Move::Keep
            }
        }
        Some(_) if old.state != CT_CLOSING => Move::Release(old.real_id),
        Some(_) => Move::Keep,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lb_common::consts::{CT_EST, CT_UDP};

    /// Fixture table: the old program's entry, `lb_conntrack4`'s, a copy or not → the move.
    #[test]
    fn each_ipv4_flow_moves_once_and_is_counted_once() {
        let v = |real: u32, last_ns: u64, state: u8| FlowValue { real_id: real, last_ns, state, ..Default::default() };
        let cases = [
            ("nothing there", v(3, 10, CT_EST), None, false, Move::Insert),
            ("the copy, untouched since", v(3, 10, CT_EST), Some(v(3, 10, CT_EST)), true, Move::Keep),
            ("the copy, this program saw it since", v(3, 10, CT_EST), Some(v(3, 20, CT_EST)), true, Move::Keep),
            (
                "the copy, the old program saw it since",
                v(3, 20, CT_CLOSING),
                Some(v(3, 10, CT_EST)),
                true,
                Move::Insert,
            ),
            ("scheduled by both programs", v(3, 10, CT_EST), Some(v(4, 20, CT_EST)), false, Move::Release(3)),
            ("scheduled by both, a UDP flow", v(3, 10, CT_UDP), Some(v(4, 20, CT_UDP)), false, Move::Release(3)),
            ("scheduled by both, closed by the old", v(3, 10, CT_CLOSING), Some(v(4, 20, CT_EST)), false, Move::Keep),
        ];
        for (name, old, there, copy, want) in cases {
            assert_eq!(move_flow(&old, there.as_ref(), copy), want, "{name}");
        }
    }
}
