//! Counters read from the pinned maps, for `lb-daemon stats`, dumps and metrics: they work
//! while the daemon runs and after it is gone.
//!
//! The program counts a service's packets once, per real server (`lb_real_stats`), and those
//! no live real server counts (drops, replies of a freed one) per service (`lb_svc_direct`);
//! a service's totals are these added up here, with what its retired real servers counted
//! (`lb_svc_carry`, written by `carry` when their ids are freed).

use std::{collections::BTreeMap, net::SocketAddr, path::Path};

use anyhow::{Context as _, Result, bail};
use aya::{
    Ebpf,
    maps::{Array, HashMap, PerCpuArray},
};
use lb_common::{
    FlowKey, FlowValue, GlobalStats, Meta, RealConns, RealDef, ServiceKey, ServiceStats, ServiceValue, SvcConf,
    consts::*,
};

use super::maps::{map_mut, map_ref, pinned};
use crate::dataplane::services;

#[derive(Debug, Clone, serde::Serialize)]
pub struct StatsSnapshot {
    pub global: GlobalStatsView,
    pub services: Vec<ServiceStatsView>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ServiceStatsView {
    pub service: String,
    pub id: u32,
    pub packets: u64,
    pub bytes: u64,
    pub new_flows: u64,
    pub drops: u64,
    /// No real server is scheduled (quorum lost) and the sorry server takes new flows.
    pub sorry_active: bool,
    pub reals: Vec<RealStatsView>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RealStatsView {
    pub real: String,
    pub id: u32,
    pub weight: u32,
    /// In the live scheduling table: new flows can go to it.
    pub scheduled: bool,
    pub active_conns: u64,
    pub packets: u64,
    pub bytes: u64,
    pub new_flows: u64,
}

/// `GlobalStats` with field names, for JSON.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GlobalStatsView(pub BTreeMap<&'static str, u64>);

/// The counters as `lb-daemon stats` shows them. A service's totals are read in several
/// steps (its real servers, then the carry); when the daemon moved a real server's counts into
/// the carry meanwhile (`CARRY_SEQ` changed) they are read again, so a total never counts
/// them twice or not at all.
pub fn read_stats(pin_dir: &Path) -> Result<StatsSnapshot> {
    let carry: Array<_, ServiceStats> = Array::try_from(pinned(&pin_dir.join(MAP_SVC_CARRY))?)?;
    let seq = || carry.get(&CARRY_SEQ, 0).map(|s| s.packets);
    for _ in 0..50 {
        let before = seq()?;
        if before % 2 == 1 {
            std::thread::sleep(std::time::Duration::from_millis(2));
            continue;
        }
        let snapshot = read_stats_once(pin_dir)?;
        if seq()? == before {
            return Ok(snapshot);
        }
    }
    bail!("the service counters kept changing under the read ({MAP_SVC_CARRY}'s sequence)")
}

fn read_stats_once(pin_dir: &Path) -> Result<StatsSnapshot> {
    let stats: PerCpuArray<_, GlobalStats> = PerCpuArray::try_from(pinned(&pin_dir.join(MAP_STATS))?)?;
    let global = GlobalStats::sum(stats.get(&0, 0)?.iter());
    let svc: HashMap<_, ServiceKey, ServiceValue> = HashMap::try_from(pinned(&pin_dir.join(MAP_SERVICES))?)?;
    let direct: PerCpuArray<_, ServiceStats> = PerCpuArray::try_from(pinned(&pin_dir.join(MAP_SVC_DIRECT))?)?;
    let carry: Array<_, ServiceStats> = Array::try_from(pinned(&pin_dir.join(MAP_SVC_CARRY))?)?;
    let real_stats: PerCpuArray<_, ServiceStats> = PerCpuArray::try_from(pinned(&pin_dir.join(MAP_REAL_STATS))?)?;
    let reals: Array<_, RealDef> = Array::try_from(pinned(&pin_dir.join(MAP_REALS))?)?;
    let conns: Array<_, RealConns> = Array::try_from(pinned(&pin_dir.join(MAP_REAL_CONNS))?)?;
    let expired: Array<_, RealConns> = Array::try_from(pinned(&pin_dir.join(MAP_REAL_EXPIRED))?)?;
    let gens: Array<_, u32> = Array::try_from(pinned(&pin_dir.join(MAP_SVC_GEN))?)?;
    let confs: Array<_, SvcConf> = Array::try_from(pinned(&pin_dir.join(MAP_SVC_CONF))?)?;
    let tables: Array<_, u32> = Array::try_from(pinned(&pin_dir.join(MAP_TABLES))?)?;
    let mut present: BTreeMap<u32, Vec<(u32, RealDef)>> = BTreeMap::new();
    for (i, r) in reals.iter().enumerate() {
        let r = r?;
        if r.flags & REAL_PRESENT != 0 {
            present.entry(r.svc_id).or_default().push((i as u32, r));
        }
    }
    let mut services = Vec::new();
    for entry in svc.iter() {
        let (key, value) = entry?;
        let mut counted = vec![ServiceStats::sum(direct.get(&value.id, 0)?.iter()), carry.get(&value.id, 0)?];
        // The live generation's table: which real servers new flows can reach.
        let conf = confs.get(&(value.id * 2 + (gens.get(&value.id, 0)? & 1)), 0)?;
        let mut scheduled = std::collections::BTreeSet::new();
        for i in conf.table_off..conf.table_off.saturating_add(conf.table_len) {
            scheduled.insert(tables.get(&i, 0)?);
        }
        let mut rv = Vec::new();
        for (rid, r) in present.get(&value.id).into_iter().flatten() {
            let rs = ServiceStats::sum(real_stats.get(rid, 0)?.iter());
            counted.push(rs);
            let ip = services::ip_of(&r.addr, r.family);
            rv.push(RealStatsView {
                real: SocketAddr::new(ip, r.port).to_string(),
                id: *rid,
                weight: r.weight,
                scheduled: scheduled.contains(rid),
                active_conns: RealConns::live(conns.get(rid, 0)?.active, expired.get(rid, 0)?.active),
                packets: rs.packets,
                bytes: rs.bytes,
                new_flows: rs.new_flows,
            });
        }
        let s = ServiceStats::sum(&counted);
        services.push(ServiceStatsView {
            service: services::describe(&key),
            id: value.id,
            packets: s.packets,
            bytes: s.bytes,
            new_flows: s.new_flows,
            drops: s.drops,
            sorry_active: conf.table_len == 0 && conf.sorry_real != NO_REAL,
            reals: rv,
        });
    }
    services.sort_by(|a, b| (a.id, &a.service).cmp(&(b.id, &b.service)));
    Ok(StatsSnapshot { global: GlobalStatsView(global.fields().collect()), services })
}

/// Service `svc`'s totals, with `reals` its real server ids (those still waiting out their
/// grace period too): a running daemon knows them without walking `lb_reals`.
pub fn service_totals(ebpf: &Ebpf, svc: u32, reals: impl IntoIterator<Item = u32>) -> Result<ServiceStats> {
    let direct: PerCpuArray<_, ServiceStats> = PerCpuArray::try_from(map_ref(ebpf, MAP_SVC_DIRECT)?)?;
    let carry: Array<_, ServiceStats> = Array::try_from(map_ref(ebpf, MAP_SVC_CARRY)?)?;
    let real_stats: PerCpuArray<_, ServiceStats> = PerCpuArray::try_from(map_ref(ebpf, MAP_REAL_STATS)?)?;
    let mut counted = vec![ServiceStats::sum(direct.get(&svc, 0)?.iter()), carry.get(&svc, 0)?];
    for r in reals {
        counted.push(ServiceStats::sum(real_stats.get(&r, 0)?.iter()));
    }
    Ok(ServiceStats::sum(&counted))
}

/// Runs `f`, which moves real servers' counts into the carry, with `CARRY_SEQ` odd: a reader
/// of the pins (`read_stats`) reads again.
pub fn moving_carry<T>(ebpf: &mut Ebpf, f: impl FnOnce(&mut Ebpf) -> Result<T>) -> Result<T> {
    let bump = |ebpf: &mut Ebpf| -> Result<()> {
        let mut carry: Array<_, ServiceStats> = Array::try_from(map_mut(ebpf, MAP_SVC_CARRY)?)?;
        let s = carry.get(&CARRY_SEQ, 0)?;
        carry.set(CARRY_SEQ, ServiceStats { packets: s.packets.wrapping_add(1), ..s }, 0).context("carry sequence")
    };
    bump(ebpf)?;
    let out = f(ebpf);
    bump(ebpf)?;
    out
}

/// Adds what real server `real` counted to service `svc`'s carry, as its id is freed (the
/// daemon is the carry's only writer; the real server's entry in `lb_reals` is cleared
/// first, so the program counts no more on it: a NAT reply from its flows goes to the
/// service, `lb_svc_direct`). Within `moving_carry`.
pub fn carry(ebpf: &mut Ebpf, svc: u32, real: u32) -> Result<()> {
    let counted = {
        let m: PerCpuArray<_, ServiceStats> = PerCpuArray::try_from(map_ref(ebpf, MAP_REAL_STATS)?)?;
        ServiceStats::sum(m.get(&real, 0)?.iter())
    };
    let mut carry: Array<_, ServiceStats> = Array::try_from(map_mut(ebpf, MAP_SVC_CARRY)?)?;
    let was = carry.get(&svc, 0)?;
    carry.set(svc, ServiceStats::sum([&was, &counted]), 0).with_context(|| format!("{MAP_SVC_CARRY}[{svc}]"))
}

/// Pins of layout 10 or before counted every packet of a service in `lb_svc_stats` as well as
/// per real server: each service's carry (made by this adoption) becomes those totals less
/// what its present real servers hold (which the totals here add back), so `lb-daemon stats`
/// goes on from the same numbers. The old map stays pinned until `finish_upgrade`: the pins
/// say layout 10 until then, and a daemon of 10 may still adopt them.
pub fn carry_layout10_totals(ebpf: &mut Ebpf, pin_dir: &Path) -> Result<()> {
    let path = pin_dir.join(MAP_SVC_STATS_LAYOUT10);
    if !path.exists() {
        return Ok(());
    }
    let old: PerCpuArray<_, ServiceStats> = PerCpuArray::try_from(pinned(&path)?)?;
    let mut held: BTreeMap<u32, Vec<ServiceStats>> = BTreeMap::new();
    {
        let reals: Array<_, RealDef> = Array::try_from(map_ref(ebpf, MAP_REALS)?)?;
        let real_stats: PerCpuArray<_, ServiceStats> = PerCpuArray::try_from(map_ref(ebpf, MAP_REAL_STATS)?)?;
        for (i, r) in reals.iter().enumerate() {
            let r = r?;
            if r.flags & REAL_PRESENT != 0 {
                held.entry(r.svc_id).or_default().push(ServiceStats::sum(real_stats.get(&(i as u32), 0)?.iter()));
            }
        }
    }
    let services: HashMap<_, ServiceKey, ServiceValue> = HashMap::try_from(map_ref(ebpf, MAP_SERVICES)?)?;
    let ids: std::collections::BTreeSet<u32> = services.iter().filter_map(|e| e.ok()).map(|(_, v)| v.id).collect();
    let mut carry: Array<_, ServiceStats> = Array::try_from(map_mut(ebpf, MAP_SVC_CARRY)?)?;
    for id in ids {
        let total = ServiceStats::sum(old.get(&id, 0)?.iter());
        let reals = ServiceStats::sum(held.get(&id).into_iter().flatten());
        carry.set(id, total.less(&reals), 0).with_context(|| format!("{MAP_SVC_CARRY}[{id}]"))?;
    }
    Ok(())
}

/// One flow table's occupancy and turnover, for the metrics: what the data plane inserted and
/// deleted (its counters, plus the daemon's deletions of expired flows), the entries a walk of
/// its keys found, and from those the entries the kernel's LRU evicted to make room (it
/// evicts silently: nothing counts them directly).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FlowTableStats {
    /// `conntrack` (the flows of `lb_conntrack4` and `lb_conntrack` together; the capacity is
    /// each one's, the flows of one family it holds) or `halfopen` (`lb_halfopen`).
    pub table: &'static str,
    pub entries: u64,
    pub capacity: u32,
    pub inserts: u64,
    pub deletes: u64,
    pub evictions: u64,
}

/// Entries gone without a deletion: inserted, not deleted, not there. `inserts` is read before
/// the walk and `deletes` after it, so a flow opened or closed during the walk can only make
/// this smaller, never larger than the evictions so far.
pub fn evictions(inserts: u64, deletes: u64, entries: u64) -> u64 {
    inserts.saturating_sub(deletes.saturating_add(entries))
}

fn global(pin_dir: &Path) -> Result<GlobalStats> {
    let stats: PerCpuArray<_, GlobalStats> = PerCpuArray::try_from(pinned(&pin_dir.join(MAP_STATS))?)?;
    Ok(GlobalStats::sum(stats.get(&0, 0)?.iter()))
}

/// Walks the keys of the established tables and `lb_halfopen` (one system call per entry: about
/// 0.15 s for a full default-sized table of 262,144 entries here, so callers cache it).
pub fn read_flow_tables(pin_dir: &Path) -> Result<Vec<FlowTableStats>> {
    let before = global(pin_dir)?;
    let capacity = |name: &str| -> Result<u32> {
        let path = pin_dir.join(name);
        let data =
            aya::maps::MapData::from_pin(&path).with_context(|| format!("opening pinned map {}", path.display()))?;
        Ok(data.info()?.max_entries())
    };
    // IPv4 and IPv6 flows in tables of their own, counted as one (the program's counters do).
    let established = super::conntrack::Conntrack::open(pin_dir)?.count();
    let mut established_capacity = capacity(MAP_CONNTRACK)?;
    if pin_dir.join(MAP_CONNTRACK4).exists() {
        established_capacity = established_capacity.max(capacity(MAP_CONNTRACK4)?);
    }
    let halfopen: HashMap<_, FlowKey, FlowValue> = HashMap::try_from(pinned(&pin_dir.join(MAP_HALFOPEN))?)?;
    let counted = [
        (established, established_capacity),
        (halfopen.keys().filter(|k| k.is_ok()).count() as u64, capacity(MAP_HALFOPEN)?),
    ];
    let after = global(pin_dir)?;
    let meta: Array<_, Meta> = Array::try_from(pinned(&pin_dir.join(MAP_META))?)?;
    let daemon_deleted = meta.get(&0, 0)?.ct_deleted;
    let tables = [
        ("conntrack", before.ct_inserts, after.ct_deletes.wrapping_add(daemon_deleted), counted[0]),
        ("halfopen", before.halfopen_inserts, after.halfopen_deletes, counted[1]),
    ];
    Ok(tables
        .into_iter()
        .map(|(table, inserts, deletes, (entries, capacity))| FlowTableStats {
            table,
            entries,
            capacity,
            inserts,
            deletes,
            evictions: evictions(inserts, deletes, entries),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evictions_are_what_left_without_a_deletion() {
        // 100 inserted, 30 deleted, 60 there: 10 evicted.
        assert_eq!(evictions(100, 30, 60), 10);
        assert_eq!(evictions(100, 40, 60), 0);
        // Flows opened during the walk are seen but not yet in `inserts`: never negative.
        assert_eq!(evictions(100, 30, 75), 0);
    }
}
