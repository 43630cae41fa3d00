//! The service keys the data plane looks frames up by: `lb_services` (every service: the
//! record tools and a restarted daemon read) and `lb_services4` (its IPv4 entries by an
//! 8-byte key, which the program reads for IPv4 frames). Both pinned and written together; an
//! object without `lb_services4` (an older build's, which the benchmark runs beside this one)
//! has only the first.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use aya::{Ebpf, maps::HashMap};
use lb_common::{
    ServiceKey, ServiceKey4, ServiceValue,
    consts::{MAP_SERVICES, MAP_SERVICES4},
};

use super::maps::{map_mut, map_ref, not_found};
use crate::dataplane::services;

/// Adds service key `k` for service `id`: `lb_services` first, the record a restarted daemon
/// rebuilds `lb_services4` from.
pub fn insert(ebpf: &mut Ebpf, k: &ServiceKey, id: u32) -> Result<()> {
    let value = ServiceValue { id, flags: 0 };
    {
        let mut all: HashMap<_, ServiceKey, ServiceValue> = HashMap::try_from(map_mut(ebpf, MAP_SERVICES)?)?;
        all.insert(k, value, 0).with_context(|| format!("adding service key {}", services::describe(k)))?;
    }
    if let Some(mut narrow) = narrow_map(ebpf)?
        && let Some(k4) = k.narrow()
    {
        narrow.insert(k4, value, 0).with_context(|| format!("adding {} to {MAP_SERVICES4}", services::describe(k)))?;
    }
    Ok(())
}

/// Removes service key `k`: from `lb_services4` first, so packets stop finding it before
/// the record does (one already missing there is no error: the record decides).
pub fn remove(ebpf: &mut Ebpf, k: &ServiceKey) -> Result<()> {
    if let Some(mut narrow) = narrow_map(ebpf)?
        && let Some(k4) = k.narrow()
    {
        match narrow.remove(&k4) {
            Ok(()) => {}
            Err(e) if not_found(&e) => {}
            Err(e) => {
                return Err(e).with_context(|| format!("removing {} from {MAP_SERVICES4}", services::describe(k)));
            }
        }
    }
    let mut all: HashMap<_, ServiceKey, ServiceValue> = HashMap::try_from(map_mut(ebpf, MAP_SERVICES)?)?;
    all.remove(k).with_context(|| format!("removing service key {}", services::describe(k)))
}

/// Brings `lb_services4` in line with `lb_services` as a previous daemon left them: it may
/// have been of layout 8 (no `lb_services4`, created empty at load) or have died between
/// writing the two.
pub fn adopt(ebpf: &mut Ebpf) -> Result<()> {
    let all: HashMap<_, ServiceKey, ServiceValue> = HashMap::try_from(map_ref(ebpf, MAP_SERVICES)?)?;
    let want: BTreeMap<ServiceKey4, (ServiceKey, ServiceValue)> = all
        .iter()
        .map(|e| e.with_context(|| format!("reading {MAP_SERVICES}")))
        .filter_map(|e| e.map(|(k, v)| k.narrow().map(|k4| (k4, (k, v)))).transpose())
        .collect::<Result<_>>()?;
    let Some(mut narrow) = narrow_map(ebpf)? else { return Ok(()) };
    let have: Vec<(ServiceKey4, ServiceValue)> =
        narrow.iter().collect::<Result<_, _>>().with_context(|| format!("reading {MAP_SERVICES4}"))?;
    for (k4, v) in &have {
        if want.get(k4).map(|(_, w)| w) != Some(v) {
            narrow.remove(k4).with_context(|| format!("removing a stale entry from {MAP_SERVICES4}"))?;
        }
    }
    for (k4, (k, v)) in want {
        if !have.contains(&(k4, v)) {
            narrow.insert(k4, v, 0).with_context(|| format!("adding {} to {MAP_SERVICES4}", services::describe(&k)))?;
        }
    }
    Ok(())
}

fn narrow_map(ebpf: &mut Ebpf) -> Result<Option<HashMap<&mut aya::maps::MapData, ServiceKey4, ServiceValue>>> {
    match ebpf.map_mut(MAP_SERVICES4) {
        None => Ok(None),
        Some(m) => Ok(Some(HashMap::try_from(m).with_context(|| MAP_SERVICES4)?)),
    }
}
