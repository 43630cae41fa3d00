//! The established flows as the daemon reads and writes them: one table of `FlowKey`s over the
//! two the program keeps, `lb_conntrack4` (IPv4 flows by a 16-byte `FlowKey4`, which jhash
//! mixes in one round where it takes three over 40 bytes) and `lb_conntrack` (IPv6 flows).
//! Flow dumps, connection sync, expiry and the statistics all go through here.

use std::{
    borrow::{Borrow, BorrowMut},
    path::Path,
};

use anyhow::{Context as _, Result};
use aya::maps::{HashMap, MapData, MapError};
use lb_common::{
    FlowKey, FlowKey4, FlowValue,
    consts::{FAMILY_V4, MAP_CONNTRACK, MAP_CONNTRACK4},
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

    /// Moves the IPv4 flows a program of layout 9 or before left in `lb_conntrack` into
    /// `lb_conntrack4`, where this program looks for them; an entry this program made for the
    /// same flow meanwhile stays. Returns how many moved.
    pub fn migrate(&mut self) -> Result<u64> {
        let Some(narrow) = &mut self.narrow else { return Ok(0) };
        let old: Vec<(FlowKey, FlowValue)> =
            self.wide.iter().filter_map(|e| e.ok()).filter(|(k, _)| k.family == FAMILY_V4).collect();
        let mut moved = 0;
        for (k, v) in old {
            let Some(k4) = k.narrow() else { continue };
            match narrow.insert(k4, v, BPF_NOEXIST) {
                Ok(()) => moved += 1,
                Err(e) if already_there(&e) => {}
                Err(e) => return Err(e).with_context(|| format!("moving an IPv4 flow into {MAP_CONNTRACK4}")),
            }
            match self.wide.remove(&k) {
                Ok(()) => {}
                Err(e) if not_found(&e) => {}
                Err(e) => return Err(e).with_context(|| format!("removing a moved IPv4 flow from {MAP_CONNTRACK}")),
            }
        }
        Ok(moved)
    }
}
