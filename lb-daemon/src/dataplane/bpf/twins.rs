//! Maps the program reads IPv4 frames' entries from by an 8-byte `ServiceKey4`, each beside a
//! twin keyed by the 24-byte `ServiceKey` that holds every entry: `lb_services` and
//! `lb_services4` (a frame's service), `lb_real_rev` and `lb_real_rev4` (a NAT real server's
//! replies). The kernel hashes a hash map's whole key with jhash: 8 bytes take its final mix
//! alone, 24 a mixing round more, on every frame that looks. The wide map is the record tools
//! and a restarted daemon read; both are pinned and written together. An object without the
//! narrow map (an older build's, which the benchmark runs beside this one) has the wide only.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use aya::{
    Ebpf, Pod,
    maps::{HashMap, MapData},
};
use lb_common::{
    ServiceKey, ServiceKey4,
    consts::{MAP_REAL_REV, MAP_REAL_REV4, MAP_SERVICES, MAP_SERVICES4},
};

use super::maps::{map_mut, not_found};
use crate::dataplane::services;

/// A wide map and its narrow twin, by name.
#[derive(Clone, Copy, Debug)]
pub struct Twins {
    pub wide: &'static str,
    pub narrow: &'static str,
}

/// Virtual services (`ServiceValue`).
pub const SERVICES: Twins = Twins { wide: MAP_SERVICES, narrow: MAP_SERVICES4 };
/// NAT real servers' reply translations (`NatRev`).
pub const REAL_REV: Twins = Twins { wide: MAP_REAL_REV, narrow: MAP_REAL_REV4 };

/// Writes `k` → `v` in `t`: the wide map first, the record a restarted daemon rebuilds the
/// narrow one from.
pub fn insert<V: Pod>(ebpf: &mut Ebpf, t: Twins, k: &ServiceKey, v: &V) -> Result<()> {
    {
        let mut wide: HashMap<_, ServiceKey, V> = HashMap::try_from(map_mut(ebpf, t.wide)?)?;
        wide.insert(k, v, 0).with_context(|| format!("writing {} to {}", services::describe(k), t.wide))?;
    }
    if let Some(mut narrow) = narrow_map::<V>(ebpf, t)?
        && let Some(k4) = k.narrow()
    {
        narrow.insert(k4, v, 0).with_context(|| format!("writing {} to {}", services::describe(k), t.narrow))?;
    }
    Ok(())
}

/// Removes `k` from `t`: from the narrow map first, so frames stop finding it before the
/// record does (one already missing there is no error: the record decides). With
/// `missing_ok`, neither is one missing from the wide map.
pub fn remove<V: Pod>(ebpf: &mut Ebpf, t: Twins, k: &ServiceKey, missing_ok: bool) -> Result<()> {
    if let Some(mut narrow) = narrow_map::<V>(ebpf, t)?
        && let Some(k4) = k.narrow()
    {
        match narrow.remove(&k4) {
            Ok(()) => {}
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(e).with_context(|| format!("removing {} from {}", services::describe(k), t.narrow)),
        }
    }
    let mut wide: HashMap<_, ServiceKey, V> = HashMap::try_from(map_mut(ebpf, t.wide)?)?;
    match wide.remove(k) {
        Ok(()) => Ok(()),
        Err(e) if missing_ok && not_found(&e) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {} from {}", services::describe(k), t.wide)),
    }
}

/// Brings `t`'s narrow map in line with its wide one as a previous daemon left them: the pins
/// may be of a layout without the narrow map (created empty at load), or the daemon may have
/// died between writing the two.
pub fn adopt<V: Pod + PartialEq>(ebpf: &mut Ebpf, t: Twins) -> Result<()> {
    let Some(wide) = ebpf.map(t.wide) else { return Ok(()) };
    let wide: HashMap<_, ServiceKey, V> = HashMap::try_from(wide)?;
    let want: BTreeMap<ServiceKey4, (ServiceKey, V)> = wide
        .iter()
        .map(|e| e.with_context(|| format!("reading {}", t.wide)))
        .filter_map(|e| e.map(|(k, v)| k.narrow().map(|k4| (k4, (k, v)))).transpose())
        .collect::<Result<_>>()?;
    let Some(mut narrow) = narrow_map::<V>(ebpf, t)? else { return Ok(()) };
    let have: std::collections::HashMap<ServiceKey4, V> =
        narrow.iter().collect::<Result<_, _>>().with_context(|| format!("reading {}", t.narrow))?;
    for k4 in have.keys().filter(|k4| !want.contains_key(k4)) {
        narrow.remove(k4).with_context(|| format!("removing a stale entry from {}", t.narrow))?;
    }
    // A changed entry is overwritten in place: a frame never finds its key missing.
    for (k4, (k, v)) in want {
        if have.get(&k4) != Some(&v) {
            narrow.insert(k4, v, 0).with_context(|| format!("writing {} to {}", services::describe(&k), t.narrow))?;
        }
    }
    Ok(())
}

fn narrow_map<V: Pod>(ebpf: &mut Ebpf, t: Twins) -> Result<Option<HashMap<&mut MapData, ServiceKey4, V>>> {
    match ebpf.map_mut(t.narrow) {
        None => Ok(None),
        Some(m) => Ok(Some(HashMap::try_from(m).with_context(|| t.narrow)?)),
    }
}
