//! What programming the desired services takes, decided without touching a map: which
//! services go, which are (re)programmed and with what ids, table, configuration and key
//! changes, and which must wait for their inactive generation's grace period. `commit.rs`
//! writes a plan; `Book` is what both believe the maps hold.

use std::{
    collections::{BTreeMap, VecDeque},
    net::SocketAddr,
    time::Instant,
};

use anyhow::{Context as _, Result, anyhow};
use lb_common::{
    NatRev, ServiceKey, SvcConf,
    consts::{
        FWD_DR, FWD_NAT, FWD_TUN, MAX_REALS, MAX_SERVICES, NO_REAL, SCHED_DH, SCHED_LBLC, SCHED_LC, SCHED_MH, SCHED_RR,
        SCHED_SH, SCHED_WLC, SCHED_WRR, SVC_HASH_PORT,
    },
};

use super::{pool::Pool, retire::GENERATION_GRACE};
use crate::{
    config::{ForwardMethod, Scheduler},
    dataplane::{
        services::DesiredService,
        tables::{self, Member},
    },
};

/// What the maps hold for one service.
#[derive(Clone, Debug)]
pub struct SvcState {
    pub id: u32,
    pub keys: Vec<ServiceKey>,
    /// What was last programmed (None when adopted from pins and not yet compared).
    pub applied: Option<DesiredService>,
    /// The live generation slot (0 or 1).
    pub generation: u32,
    /// Each generation's table slice (offset, length) in the pool.
    pub slices: [(u32, u32); 2],
    /// Real server address → real id (the sorry server too).
    pub reals: BTreeMap<SocketAddr, u32>,
    /// When the live generation went live: the other slot is rewritten only
    /// `GENERATION_GRACE` later.
    pub last_flip: Option<Instant>,
}

impl SvcState {
    /// A service new to the maps: its first generation is slot 0.
    pub fn new(id: u32) -> Self {
        Self {
            id,
            keys: Vec::new(),
            applied: None,
            generation: 1,
            slices: [(0, 0); 2],
            reals: BTreeMap::new(),
            last_flip: None,
        }
    }
}

/// What the maps hold: services by name, the free table pool and the real server ids.
#[derive(Clone, Debug)]
pub struct Book {
    pub services: BTreeMap<String, SvcState>,
    pub pool: Pool,
    pub next_real: u32,
    /// Ids cleared after their grace period, reused only once fresh ones run out.
    pub free_reals: VecDeque<u32>,
    /// What `lb_real_rev` holds (`real_rev.rs`).
    pub real_rev: BTreeMap<ServiceKey, NatRev>,
    /// Ids of removed services whose real servers are still retiring: not handed out yet.
    pub cooling: std::collections::BTreeSet<u32>,
}

impl Book {
    pub fn new(pool_size: u32) -> Self {
        Self {
            services: BTreeMap::new(),
            pool: Pool::new(pool_size),
            next_real: 0,
            free_reals: VecDeque::new(),
            real_rev: BTreeMap::new(),
            cooling: Default::default(),
        }
    }

    /// Gives adopted services (named "adopted #id") the name of the desired service that
    /// shares a key with them.
    pub fn rename_adopted(&mut self, desired: &[DesiredService]) {
        let adopted: Vec<String> = self.services.keys().filter(|n| n.starts_with("adopted #")).cloned().collect();
        for name in adopted {
            let keys = self.services[&name].keys.clone();
            if let Some(d) = desired.iter().find(|d| d.keys.iter().any(|k| keys.contains(k)))
                && let Some(state) = self.services.remove(&name)
            {
                self.services.insert(d.name.clone(), state);
            }
        }
    }

    pub fn free_service_id(&self) -> Result<u32> {
        (0..MAX_SERVICES)
            .find(|id| !self.services.values().any(|s| s.id == *id) && !self.cooling.contains(id))
            .ok_or_else(|| anyhow!("more than {MAX_SERVICES} services"))
    }

    /// Fresh ids first; freed ones only once those run out, so a flow tracked to a removed
    /// real server is not silently sent to whichever real server reused its id.
    pub fn alloc_real(&mut self) -> Result<u32> {
        if self.next_real < MAX_REALS {
            self.next_real += 1;
            return Ok(self.next_real - 1);
        }
        self.free_reals.pop_front().ok_or_else(|| anyhow!("more than {MAX_REALS} real servers"))
    }

    /// Takes the id `alloc_real` gave the plan, now that the commit writes it.
    pub fn take_real(&mut self, id: u32) {
        if id == self.next_real {
            self.next_real += 1;
        } else if let Some(i) = self.free_reals.iter().position(|r| *r == id) {
            self.free_reals.remove(i);
        }
    }
}

/// A service that goes: its keys are deleted at once, its real servers and table slices
/// retire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Removal {
    pub name: String,
    pub keys: Vec<ServiceKey>,
    pub reals: Vec<u32>,
    pub slices: [(u32, u32); 2],
}

/// One real server of a programmed service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedReal {
    pub id: u32,
    pub addr: SocketAddr,
    pub weight: u32,
    /// An id new to this service (fresh or recycled): its counters start from zero.
    pub fresh: bool,
}

/// How one service is (re)programmed.
#[derive(Clone, Debug)]
pub struct ServicePlan {
    pub desired: DesiredService,
    pub id: u32,
    /// New to the maps: its counters start from zero.
    pub fresh: bool,
    /// Every real server, the sorry server last (weight 0).
    pub reals: Vec<PlannedReal>,
    /// Real servers that left (address, id): cleared once the new generation has been live
    /// for the grace period.
    pub retired: Vec<(SocketAddr, u32)>,
    /// The slot written, then made live.
    pub generation: u32,
    /// The slot's previous table slice (free again: it last went live long enough ago).
    pub old_slice: (u32, u32),
    /// The new table slice's offset, and the table (real ids) it holds.
    pub table_off: u32,
    pub table: Vec<u32>,
    /// More live real servers than least-connection scheduling scans.
    pub truncated: bool,
    /// Real servers in the table's member list (the sorry server only if also a real).
    pub members: usize,
    pub conf: SvcConf,
    pub keys_added: Vec<ServiceKey>,
    pub keys_removed: Vec<ServiceKey>,
}

#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub removals: Vec<Removal>,
    /// In the order desired.
    pub services: Vec<ServicePlan>,
    /// When the earliest service left out because its inactive generation went out of use
    /// less than `GENERATION_GRACE` ago can be programmed.
    pub deferred_until: Option<Instant>,
}

/// Decides how the maps come to hold `desired` at `now`: unchanged services are left alone
/// (no map write at all), changed ones get a new generation, removed ones go. Allocations
/// are made on a copy of `book`, in the order `commit` repeats them.
pub fn plan(book: &Book, desired: &[DesiredService], now: Instant) -> Result<Plan> {
    let mut b = book.clone();
    b.rename_adopted(desired);
    let mut out = Plan::default();
    let gone: Vec<String> = b.services.keys().filter(|n| !desired.iter().any(|d| &d.name == *n)).cloned().collect();
    for name in gone {
        if let Some(s) = b.services.remove(&name) {
            // As the commit will: not another service's until its real servers are cleared.
            b.cooling.insert(s.id);
            out.removals.push(Removal {
                name,
                keys: s.keys,
                reals: s.reals.values().copied().collect(),
                slices: s.slices,
            });
        }
    }
    for d in desired {
        let state = b.services.get(&d.name);
        if state.and_then(|s| s.applied.as_ref()) == Some(d) {
            continue;
        }
        if let Some(ready) = state.and_then(|s| s.last_flip).map(|t| t + GENERATION_GRACE)
            && ready > now
        {
            out.deferred_until = Some(out.deferred_until.map_or(ready, |r| r.min(ready)));
            continue;
        }
        let p = plan_service(&mut b, d).with_context(|| format!("programming service {}", d.name))?;
        out.services.push(p);
    }
    Ok(out)
}

/// One service's new generation, with `b` updated as the commit will leave it.
fn plan_service(b: &mut Book, d: &DesiredService) -> Result<ServicePlan> {
    let sched =
        sched_code(d.scheduler).ok_or_else(|| anyhow!("scheduler {} needs the IPVS backend", d.scheduler.name()))?;
    let fresh = !b.services.contains_key(&d.name);
    if fresh {
        let id = b.free_service_id()?;
        b.services.insert(d.name.clone(), SvcState::new(id));
    }
    let mut state = b.services.remove(&d.name).ok_or_else(|| anyhow!("service state vanished"))?;
    let Reals { reals, members, retired } = plan_reals(b, &mut state, d)?;
    // keepalived's quorum: below it the service is down and the sorry server answers.
    let live_weight: u64 = members.iter().map(|m| u64::from(m.weight)).sum();
    let quorum_up = d.quorum_up && live_weight > 0;
    let (table, truncated) =
        if quorum_up { tables::build(d.scheduler, &members, d.sched_flags, d.mh_seed) } else { (Vec::new(), false) };
    let generation = 1 - state.generation;
    let old_slice = state.slices[generation as usize];
    b.pool.free(old_slice.0, old_slice.1);
    let len = table.len() as u32;
    let table_off = b.pool.alloc(len).ok_or_else(|| anyhow!("the scheduling table pool is full"))?;
    state.slices[generation as usize] = (table_off, len);
    let conf = SvcConf {
        sched,
        fwd: match d.forward {
            ForwardMethod::Nat => FWD_NAT,
            ForwardMethod::Dr => FWD_DR,
            ForwardMethod::Tun => FWD_TUN,
        },
        // The data plane caps it at the packet's address length.
        persist_prefix: d.persist_prefix.unwrap_or(128),
        flags: if d.scheduler.hashes_port(d.sched_flags) { SVC_HASH_PORT } else { 0 },
        persist_timeout: d.persist_timeout,
        table_off,
        table_len: len,
        sorry_real: d.sorry.and_then(|s| state.reals.get(&s).copied()).unwrap_or(NO_REAL),
        reserved: 0,
    };
    let keys_added = d.keys.iter().filter(|k| !state.keys.contains(k)).copied().collect();
    let keys_removed = state.keys.iter().filter(|k| !d.keys.contains(k)).copied().collect();
    state.generation = generation;
    state.keys = d.keys.clone();
    state.applied = Some(d.clone());
    let plan = ServicePlan {
        desired: d.clone(),
        id: state.id,
        fresh,
        reals,
        retired,
        generation,
        old_slice,
        table_off,
        table,
        truncated,
        members: members.len(),
        conf,
        keys_added,
        keys_removed,
    };
    b.services.insert(d.name.clone(), state);
    Ok(plan)
}

/// A service's real servers with their ids, the members of its table, and those that left.
struct Reals {
    reals: Vec<PlannedReal>,
    members: Vec<Member>,
    retired: Vec<(SocketAddr, u32)>,
}

/// The real servers of `d`, new ones with ids allocated from `b`; `state.reals` follows.
fn plan_reals(b: &mut Book, state: &mut SvcState, d: &DesiredService) -> Result<Reals> {
    // Real servers: one id per (service, address); the sorry server is one too, weight 0.
    let mut wanted: Vec<(SocketAddr, u32)> = d.reals.iter().map(|r| (r.addr, r.weight)).collect();
    if let Some(s) = d.sorry {
        wanted.push((s, 0));
    }
    let retired: Vec<(SocketAddr, u32)> =
        state.reals.iter().filter(|(a, _)| !wanted.iter().any(|(w, _)| w == *a)).map(|(a, i)| (*a, *i)).collect();
    let mut reals = Vec::new();
    let mut members = Vec::new();
    for (addr, weight) in &wanted {
        let (id, fresh) = match state.reals.get(addr) {
            Some(r) => (*r, false),
            None => (b.alloc_real()?, true),
        };
        state.reals.insert(*addr, id);
        reals.push(PlannedReal { id, addr: *addr, weight: *weight, fresh });
        if Some(*addr) != d.sorry || d.reals.iter().any(|r| r.addr == *addr) {
            members.push(Member { id, name: addr.to_string(), weight: *weight });
        }
    }
    for (addr, _) in &retired {
        state.reals.remove(addr);
    }
    Ok(Reals { reals, members, retired })
}

/// The data plane's code for `s`; None for the schedulers only IPVS has (the config check
/// and `services::desired` keep them away from this backend).
pub fn sched_code(s: Scheduler) -> Option<u8> {
    match s {
        Scheduler::Rr => Some(SCHED_RR),
        Scheduler::Wrr => Some(SCHED_WRR),
        Scheduler::Lc => Some(SCHED_LC),
        Scheduler::Wlc => Some(SCHED_WLC),
        Scheduler::Lblc => Some(SCHED_LBLC),
        Scheduler::Sh => Some(SCHED_SH),
        Scheduler::Dh => Some(SCHED_DH),
        Scheduler::Mh => Some(SCHED_MH),
        Scheduler::Lblcr | Scheduler::Sed | Scheduler::Nq | Scheduler::Fo | Scheduler::Ovf | Scheduler::Twos => None,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::time::Duration;

    use super::*;
    use crate::dataplane::services::{DesiredReal, key_of};

    pub(crate) fn service(name: &str, vip: &str, sched: Scheduler, reals: &[(&str, u32)]) -> DesiredService {
        DesiredService {
            name: name.into(),
            keys: vec![key_of(vip.parse().unwrap(), 80, 6)],
            marks: Vec::new(),
            joined: Vec::new(),
            joined_marks: Vec::new(),
            ops: false,
            sched_flags: 0,
            mh_seed: 0,
            scheduler: sched,
            forward: ForwardMethod::Nat,
            persist_timeout: 0,
            persist_prefix: None,
            persistence_engine: None,
            reals: reals
                .iter()
                .map(|(a, w)| DesiredReal { addr: a.parse().unwrap(), weight: *w, fwd: None, u_thresh: 0, l_thresh: 0 })
                .collect(),
            sorry: None,
            sorry_fwd: None,
            marks_v6: false,
            sorry_inhibit: false,
            quorum: 1,
            hysteresis: 0,
            quorum_up: true,
        }
    }

    /// The book as `commit` leaves it after writing `plan` at `at`.
    pub(crate) fn committed(book: &Book, desired: &[DesiredService], at: Instant) -> Book {
        let mut b = book.clone();
        b.rename_adopted(desired);
        let p = plan(book, desired, at).unwrap();
        for r in &p.removals {
            if let Some(st) = b.services.remove(&r.name) {
                b.cooling.insert(st.id);
            }
        }
        for s in &p.services {
            let mut st = b.services.remove(&s.desired.name).unwrap_or_else(|| SvcState::new(s.id));
            for r in s.reals.iter().filter(|r| r.fresh) {
                b.take_real(r.id);
                st.reals.insert(r.addr, r.id);
            }
            b.pool.free(s.old_slice.0, s.old_slice.1);
            b.pool.reserve(s.table_off, s.table.len() as u32);
            st.slices[s.generation as usize] = (s.table_off, s.table.len() as u32);
            st.generation = s.generation;
            st.last_flip = Some(at);
            for (a, _) in &s.retired {
                st.reals.remove(a);
            }
            st.keys = s.desired.keys.clone();
            st.applied = Some(s.desired.clone());
            b.services.insert(s.desired.name.clone(), st);
        }
        b
    }

    const WEB: [(&str, u32); 2] = [("198.51.100.11:80", 1), ("198.51.100.12:80", 2)];

    #[test]
    fn new_services_get_ids_a_first_generation_and_every_key() {
        let t0 = Instant::now();
        let desired =
            [service("web", "203.0.113.10", Scheduler::Wrr, &WEB), service("dns", "203.0.113.11", Scheduler::Rr, &[])];
        let p = plan(&Book::new(1000), &desired, t0).unwrap();
        assert!(p.removals.is_empty() && p.deferred_until.is_none());
        let (web, dns) = (&p.services[0], &p.services[1]);
        assert_eq!((web.id, web.fresh, web.generation), (0, true, 0));
        assert_eq!(
            web.reals.iter().map(|r| (r.id, r.weight, r.fresh)).collect::<Vec<_>>(),
            [(0, 1, true), (1, 2, true)]
        );
        // wrr 1:2 over ids 0 and 1.
        assert_eq!(web.table, [1, 0, 1]);
        assert_eq!((web.table_off, web.conf.table_off, web.conf.table_len), (0, 0, 3));
        assert_eq!((web.conf.sched, web.conf.fwd, web.conf.sorry_real), (SCHED_WRR, FWD_NAT, NO_REAL));
        assert_eq!(web.keys_added, desired[0].keys);
        assert!(web.keys_removed.is_empty());
        // The second service: next id, no reals, an empty slice.
        assert_eq!((dns.id, dns.table.len(), dns.table_off), (1, 0, 0));
    }

    #[test]
    fn unchanged_services_are_left_alone_and_changes_take_the_other_slot() {
        let t0 = Instant::now();
        let v1 = [service("web", "203.0.113.10", Scheduler::Wrr, &WEB)];
        let book = committed(&Book::new(1000), &v1, t0);
        let later = t0 + Duration::from_secs(1);
        assert!(plan(&book, &v1, later).unwrap().services.is_empty(), "no write for an identical service");
        // One real server leaves, one arrives: the kept one keeps its id.
        let v2 = [service("web", "203.0.113.10", Scheduler::Wrr, &[("198.51.100.12:80", 2), ("198.51.100.13:80", 1)])];
        let p = plan(&book, &v2, later).unwrap();
        let s = &p.services[0];
        assert_eq!((s.fresh, s.generation, s.old_slice), (false, 1, (0, 0)));
        assert_eq!(s.reals.iter().map(|r| (r.id, r.fresh)).collect::<Vec<_>>(), [(1, false), (2, true)]);
        assert_eq!(s.retired, [("198.51.100.11:80".parse().unwrap(), 0)]);
        // The live slice (0..3) stays; the new one follows it.
        assert_eq!((s.table_off, s.table.len()), (3, 3));
        assert!(s.keys_added.is_empty() && s.keys_removed.is_empty());
        // Back to slot 0 next time: its old slice is free again.
        let book = committed(&book, &v2, later);
        let p = plan(&book, &v1, later + Duration::from_secs(1)).unwrap();
        assert_eq!((p.services[0].generation, p.services[0].old_slice), (0, (0, 3)));
    }

    #[test]
    fn a_slot_is_rewritten_only_after_the_grace_period() {
        let t0 = Instant::now();
        let v1 = [service("web", "203.0.113.10", Scheduler::Rr, &WEB)];
        let book = committed(&Book::new(1000), &v1, t0);
        let v2 = [service("web", "203.0.113.10", Scheduler::Rr, &WEB[..1])];
        let p = plan(&book, &v2, t0 + Duration::from_millis(10)).unwrap();
        assert!(p.services.is_empty());
        assert_eq!(p.deferred_until, Some(t0 + GENERATION_GRACE));
        let p = plan(&book, &v2, t0 + GENERATION_GRACE).unwrap();
        assert_eq!((p.services.len(), p.deferred_until), (1, None));
    }

    #[test]
    fn removed_services_hand_back_keys_reals_and_slices() {
        let t0 = Instant::now();
        let v1 =
            [service("web", "203.0.113.10", Scheduler::Rr, &WEB), service("dns", "203.0.113.11", Scheduler::Rr, &[])];
        let book = committed(&Book::new(1000), &v1, t0);
        let p = plan(&book, &v1[1..], t0).unwrap();
        assert!(p.services.is_empty());
        assert_eq!(
            p.removals,
            [Removal { name: "web".into(), keys: v1[0].keys.clone(), reals: vec![0, 1], slices: [(0, 2), (0, 0)] }]
        );
        // Its id is not another service's while its real servers retire (their entries name
        // it: the new one would count them as its own), then it is.
        let v3 = [v1[1].clone(), service("new", "203.0.113.12", Scheduler::Rr, &[])];
        assert_eq!(plan(&book, &v3, t0).unwrap().services[0].id, 2);
        let mut cleared = committed(&book, &v1[1..], t0);
        assert!(cleared.cooling.contains(&0));
        cleared.cooling.remove(&0);
        assert_eq!(plan(&cleared, &v3, t0 + GENERATION_GRACE).unwrap().services[0].id, 0);
    }

    #[test]
    fn below_quorum_only_the_sorry_server_answers() {
        let mut d = service("web", "203.0.113.10", Scheduler::Mh, &WEB);
        d.sorry = Some("198.51.100.99:80".parse().unwrap());
        d.quorum_up = false;
        let s = &plan(&Book::new(1000), &[d], Instant::now()).unwrap().services[0];
        assert!(s.table.is_empty());
        assert_eq!(s.reals.last().map(|r| (r.id, r.weight)), Some((2, 0)));
        assert_eq!((s.conf.sorry_real, s.members), (2, 2), "the sorry server is no member");
    }

    #[test]
    fn adopted_services_are_matched_by_key_and_reprogrammed_in_place() {
        let d = service("web", "203.0.113.10", Scheduler::Rr, &WEB);
        let mut book = Book::new(1000);
        let mut adopted = SvcState::new(7);
        adopted.keys = d.keys.clone();
        adopted.generation = 0;
        adopted.slices = [(0, 2), (0, 0)];
        adopted.reals.insert(WEB[0].0.parse().unwrap(), 4);
        book.pool.reserve(0, 2);
        book.next_real = 5;
        book.services.insert("adopted #7".into(), adopted);
        let s = &plan(&book, std::slice::from_ref(&d), Instant::now()).unwrap().services[0];
        assert_eq!((s.id, s.fresh, s.generation, s.table_off), (7, false, 1, 2));
        assert_eq!(s.reals.iter().map(|r| (r.id, r.fresh)).collect::<Vec<_>>(), [(4, false), (5, true)]);
        assert!(s.keys_added.is_empty());
    }

    #[test]
    fn ids_run_out_only_after_the_free_list() {
        let mut b = Book::new(1000);
        b.next_real = MAX_REALS;
        b.free_reals = VecDeque::from([9, 3]);
        let s = &plan(&b, &[service("web", "203.0.113.10", Scheduler::Rr, &WEB)], Instant::now()).unwrap().services[0];
        assert_eq!(s.reals.iter().map(|r| r.id).collect::<Vec<_>>(), [9, 3]);
        b.free_reals.pop_back();
        let e = plan(&b, &[service("web", "203.0.113.10", Scheduler::Rr, &WEB)], Instant::now()).unwrap_err();
        assert_eq!(format!("{e:#}"), format!("programming service web: more than {MAX_REALS} real servers"));
        let e = plan(&Book::new(2), &[service("web", "203.0.113.10", Scheduler::Mh, &WEB)], Instant::now());
        assert!(format!("{:#}", e.unwrap_err()).ends_with("the scheduling table pool is full"));
    }

    #[test]
    fn ipvs_only_schedulers_are_refused() {
        let e = plan(&Book::new(1000), &[service("web", "203.0.113.10", Scheduler::Sed, &WEB)], Instant::now());
        assert_eq!(format!("{:#}", e.unwrap_err()), "programming service web: scheduler sed needs the IPVS backend");
    }

    /// The config check's list of BPF schedulers and the data plane's codes agree.
    #[test]
    fn every_bpf_scheduler_has_a_code_and_no_other() {
        for (name, s) in Scheduler::ALL {
            assert_eq!(sched_code(s).is_some(), s.in_bpf(), "{name}");
        }
    }
}
