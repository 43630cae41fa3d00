//! The next-hop cache: per real server, the egress interface, MTU and MAC pair that
//! `bpf_fib_lookup` would find (`lb_nexthop`, two slots per real server id, and
//! `lb_nexthop_sel` naming the live one), so `lb_xdp` skips the FIB lookup for packets to
//! real servers. What may be cached is `decide`'s pure rule; the facts come from rtnetlink
//! (`rtnl`): interfaces and neighbours dumped, each real server's route asked for as the
//! kernel matches it.
//!
//! One thread keeps it current: neighbour events are applied as they come; a change of
//! routes, rules, interfaces or forwarding (or lost events) re-reads everything; and every
//! `FULL_PERIOD` everything is read again in case an event said nothing (a PMTU change, a
//! sysctl). A changed entry is written to the slot no packet reads and then `lb_nexthop_sel`
//! flips to it with one 4-byte store (`Slots`), and one real server's slots are written at
//! most once per `MIN_GAP`: a packet still reading the old slot (a program run takes
//! microseconds, with preemption off) is long done before that slot is written again.
//! Until an entry is written, and whenever `decide` says no, packets use the FIB, as before
//! the cache existed.

pub mod decide;
pub(crate) mod rtnl;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    net::IpAddr,
    sync::{
        Arc, Mutex,
        mpsc::{self, Receiver, Sender, TryRecvError},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow};
use aya::maps::{Array, MapData};
use lb_common::{
    NextHop,
    consts::{MAX_REALS, NEXTHOP_LIVE},
};
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use decide::{Family, Host, Miss, Route};
use rtnl::{Events, Rtnl};

/// Everything is read again this often, events or not.
const FULL_PERIOD: Duration = Duration::from_secs(30);
/// Between two writes of one real server's slots at least this long.
const MIN_GAP: Duration = Duration::from_millis(1);
/// How long the thread waits for events before it looks at its requests.
const POLL: Duration = Duration::from_millis(20);
/// After a change of routes, rules or interfaces, more events are gathered this long (at
/// most `SETTLE_MAX`) before everything is read again: a route flap is one re-read.
const SETTLE: Duration = Duration::from_millis(2);
const SETTLE_MAX: Duration = Duration::from_millis(50);
/// How long one renewal of the lease lasts: the thread renews it at least every `POLL` +
/// `SETTLE_MAX` + one read of the tables, so only a dead or stuck daemon lets it lapse.
const LEASE: Duration = Duration::from_secs(2);
/// After a failed read of the kernel's tables, the next try.
const RETRY: Duration = Duration::from_secs(1);
/// Between two warnings.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// What the cache holds after a recomputation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Real servers with a cached next hop.
    pub cached: usize,
    /// Real servers left to the FIB, by reason (`decide::Miss`).
    pub to_fib: BTreeMap<String, usize>,
    /// The cached entries by real server id.
    #[serde(skip)]
    pub entries: BTreeMap<u32, NextHop>,
}

enum Msg {
    /// Real server id → address: what the data plane holds now.
    Targets(BTreeMap<u32, IpAddr>),
    /// The interfaces the program runs on (their forwarding setting counts).
    Ingress(Vec<u32>),
    /// Read everything now and answer when the cache holds the result.
    Sync(Sender<Result<Summary, String>>),
}

/// The running cache: its thread, what it was last told, and what it holds.
pub struct NexthopCache {
    tx: Option<Sender<Msg>>,
    thread: Option<JoinHandle<()>>,
    targets: BTreeMap<u32, IpAddr>,
    ingress: Vec<u32>,
    last: Arc<Mutex<Summary>>,
}

impl NexthopCache {
    /// Starts the thread on the program's cache maps. Its sockets are opened here, in the
    /// caller's network namespace (the one whose routes the program's FIB lookups see).
    pub fn start(slots: Slots) -> Result<Self> {
        let rtnl = Rtnl::open()?;
        let events = Events::open()?;
        let (tx, rx) = mpsc::channel();
        let last = Arc::new(Mutex::new(Summary::default()));
        let worker = Worker {
            last: last.clone(),
            rtnl,
            events,
            slots,
            targets: BTreeMap::new(),
            ingress: Vec::new(),
            host: Host::default(),
            routes: HashMap::new(),
            last_full: None,
            warned: None,
        };
        let thread = std::thread::Builder::new()
            .name("lb-nexthop".into())
            .spawn(move || worker.run(rx))
            .context("starting the next-hop cache thread")?;
        Ok(Self { tx: Some(tx), thread: Some(thread), targets: BTreeMap::new(), ingress: Vec::new(), last })
    }

    /// What the cache held after its last recomputation (`lb-daemon stats`).
    pub fn summary(&self) -> Summary {
        self.last.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The real servers the data plane holds now (id → address).
    pub fn set_targets(&mut self, targets: BTreeMap<u32, IpAddr>) {
        if targets != self.targets {
            self.targets = targets.clone();
            self.send(Msg::Targets(targets));
        }
    }

    /// The interfaces the program is attached to.
    pub fn set_ingress(&mut self, ifindexes: Vec<u32>) {
        if ifindexes != self.ingress {
            self.ingress = ifindexes.clone();
            self.send(Msg::Ingress(ifindexes));
        }
    }

    /// Reads the kernel's tables now and returns once the cache holds what they say (tests
    /// and benchmarks; the daemon leaves it to the thread).
    pub fn sync(&self) -> Result<Summary> {
        let (tx, rx) = mpsc::channel();
        self.send(Msg::Sync(tx));
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(r) => r.map_err(|e| anyhow!("next-hop cache: {e}")),
            Err(_) => Err(anyhow!("the next-hop cache thread did not answer within 10 s")),
        }
    }

    fn send(&self, m: Msg) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(m);
        }
    }
}

impl Drop for NexthopCache {
    fn drop(&mut self) {
        // Closing the channel stops the thread at its next look (within `POLL`).
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What was last written for one real server id.
struct Written {
    /// The slot written last (the next write goes to the other).
    slot: u32,
    /// Bumped by every write, so a reader can tell its copy may be torn.
    generation: u32,
    hop: Option<NextHop>,
    at: Option<Instant>,
}

/// The cache's maps and what they hold: every write goes through `put`, which keeps the
/// slot protocol (write the idle slot, then flip the selector with a new generation) and
/// the pacing (`MIN_GAP`); the lease says whether the program may use any of it.
pub struct Slots {
    hops: Array<MapData, NextHop>,
    sel: Array<MapData, u32>,
    lease: Array<MapData, u64>,
    written: HashMap<u32, Written>,
}

impl Slots {
    pub fn new(hops: Array<MapData, NextHop>, sel: Array<MapData, u32>, lease: Array<MapData, u64>) -> Self {
        Self { hops, sel, lease, written: HashMap::new() }
    }

    /// Vouches for the cache for `d` from now (the program's coarse monotonic clock).
    pub fn renew(&mut self, d: Duration) -> Result<()> {
        let until = crate::dataplane::bpf::monotonic_ns().saturating_add(d.as_nanos() as u64);
        self.lease.set(0, until, 0).context("renewing lb_nexthop_lease")
    }

    /// Withdraws the lease: every packet takes the FIB until the next `renew`.
    pub fn expire(&mut self) -> Result<()> {
        self.lease.set(0, 0, 0).context("clearing lb_nexthop_lease")
    }

    /// Makes real server `id`'s entry `want` (None: the FIB decides); whether a map was
    /// written. Waits out `MIN_GAP` since this id's last write first.
    pub fn put(&mut self, id: u32, want: Option<NextHop>) -> Result<bool> {
        if id >= MAX_REALS {
            return Ok(false);
        }
        let w = self.written.entry(id).or_insert(Written { slot: 1, generation: 0, hop: None, at: None });
        if w.hop == want {
            return Ok(false);
        }
        if let Some(t) = w.at {
            std::thread::sleep(MIN_GAP.saturating_sub(t.elapsed()));
        }
        w.at = Some(Instant::now());
        match want {
            None => self.sel.set(id, 0, 0).with_context(|| format!("clearing lb_nexthop_sel[{id}]"))?,
            Some(h) => {
                let slot = 1 - w.slot;
                let generation = (w.generation + 1) & (u32::MAX >> 2);
                self.hops.set(id * 2 + slot, h, 0).with_context(|| format!("writing lb_nexthop[{}]", id * 2 + slot))?;
                let sel = generation << 2 | NEXTHOP_LIVE | slot;
                self.sel.set(id, sel, 0).with_context(|| format!("writing lb_nexthop_sel[{id}]"))?;
                (w.slot, w.generation) = (slot, generation);
            }
        }
        w.hop = want;
        Ok(true)
    }

    /// Real server ids with an entry (cached or cleared) on record.
    fn ids(&self) -> Vec<u32> {
        self.written.keys().copied().collect()
    }

    /// Forgets `id` once it is cleared (a real server no longer programmed).
    fn drop_id(&mut self, id: u32) -> Result<()> {
        self.put(id, None)?;
        self.written.remove(&id);
        Ok(())
    }
}

struct Worker {
    last: Arc<Mutex<Summary>>,
    rtnl: Rtnl,
    events: Events,
    slots: Slots,
    targets: BTreeMap<u32, IpAddr>,
    ingress: Vec<u32>,
    host: Host,
    /// Each target address's route, as of the last full read (None: no route).
    routes: HashMap<IpAddr, Option<Route>>,
    last_full: Option<Instant>,
    warned: Option<Instant>,
}

impl Worker {
    fn run(mut self, rx: Receiver<Msg>) {
        let mut full = true;
        let mut dirty = true;
        let mut syncs: Vec<Sender<Result<Summary, String>>> = Vec::new();
        let mut retry_at: Option<Instant> = None;
        let mut neighbours = Vec::new();
        // Whether the maps hold what the kernel's tables said at the last read, with no
        // change other than a neighbour's seen since: only then is the lease renewed.
        let mut current = false;
        loop {
            if current && !full && self.slots.renew(LEASE).is_err() {
                current = false;
            }
            loop {
                match rx.try_recv() {
                    Ok(Msg::Targets(t)) => (self.targets, dirty) = (t, true),
                    Ok(Msg::Ingress(i)) => (self.ingress, full) = (i, true),
                    Ok(Msg::Sync(reply)) => {
                        syncs.push(reply);
                        full = true;
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return,
                }
            }
            if self.last_full.is_none_or(|t| t.elapsed() >= FULL_PERIOD) {
                full = true;
            }
            let waiting = retry_at.is_some_and(|t| Instant::now() < t) && syncs.is_empty();
            if (full || dirty) && !waiting {
                let result = self.pass(full);
                match &result {
                    Ok(s) => {
                        retry_at = None;
                        current = self.slots.renew(LEASE).is_ok();
                        if let Ok(mut last) = self.last.lock() {
                            *last = s.clone();
                        }
                        debug!(cached = s.cached, to_fib = ?s.to_fib, "next-hop cache recomputed");
                    }
                    Err(e) => {
                        retry_at = Some(Instant::now() + RETRY);
                        if self.warned.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
                            self.warned = Some(Instant::now());
                            warn!("next-hop cache: {e:#}; packets use the FIB lookup until it reads again");
                        }
                        current = false;
                        let _ = self.slots.expire();
                        self.forget_all();
                        if let Ok(mut last) = self.last.lock() {
                            *last = Summary::default();
                        }
                    }
                }
                for reply in syncs.drain(..) {
                    let _ = reply.send(result.as_ref().map(Clone::clone).map_err(|e| format!("{e:#}")));
                }
                if result.is_ok() {
                    (full, dirty) = (false, false);
                }
            }
            let changed = self.settle(&mut neighbours);
            if changed.all {
                // `settle` withdrew the lease; the next pass reads everything and renews it.
                (full, current) = (true, false);
            }
            if changed.neighbours {
                for (key, mac) in neighbours.drain(..) {
                    match mac {
                        Some(m) => self.host.neighbours.insert(key, m),
                        None => self.host.neighbours.remove(&key),
                    };
                }
                dirty = true;
            }
        }
    }

    /// Waits for events up to `POLL`; once a change other than a neighbour's comes (a
    /// whole re-read follows), gathers more for `SETTLE` (at most `SETTLE_MAX`). Neighbour
    /// changes are applied at once: they cost no read of the kernel's tables.
    fn settle(&mut self, neighbours: &mut Vec<rtnl::NeighbourChange>) -> rtnl::Changed {
        let mut changed = self.events.read(POLL, neighbours);
        if !changed.all {
            return changed;
        }
        // A route, rule, interface or forwarding change: the FIB follows it at once, so the
        // cache must not answer until everything is read again.
        if let Err(e) = self.slots.expire() {
            warn!("next-hop cache: {e:#}");
        }
        let start = Instant::now();
        while start.elapsed() < SETTLE_MAX {
            let more = self.events.read(SETTLE, neighbours);
            if more == rtnl::Changed::default() {
                break;
            }
            changed.all |= more.all;
            changed.neighbours |= more.neighbours;
        }
        changed
    }

    /// Recomputes every target's entry (after reading everything again when `full`) and
    /// writes the ones that changed.
    fn pass(&mut self, full: bool) -> Result<Summary> {
        if full {
            self.host.links = self.rtnl.links()?;
            self.host.neighbours = self.rtnl.neighbours()?;
            // An ingress interface that is gone counts as forwarding off.
            let names: Option<Vec<String>> =
                self.ingress.iter().map(|i| self.host.links.get(i).map(|l| l.name.clone())).collect();
            for v6 in [false, true] {
                let rules = self.rtnl.plain_rules(v6)?;
                let (source_specific, several_defaults) = self.rtnl.table_facts(v6)?;
                let forwarding = names.as_ref().is_some_and(|n| rtnl::forwarding(v6, n));
                let f = Family { plain_rules: rules && !source_specific, several_defaults, forwarding };
                if v6 {
                    self.host.v6 = f;
                } else {
                    self.host.v4 = f;
                }
            }
            self.routes.clear();
            self.last_full = Some(Instant::now());
        }
        let addrs: BTreeSet<IpAddr> = self.targets.values().copied().collect();
        self.routes.retain(|a, _| addrs.contains(a));
        for a in &addrs {
            if !self.routes.contains_key(a) {
                let r = self.rtnl.route_to(*a)?;
                self.routes.insert(*a, r);
            }
        }
        let mut summary = Summary::default();
        for (&id, &addr) in &self.targets {
            let want = decide::next_hop(addr, self.routes.get(&addr).and_then(Option::as_ref), &self.host);
            match &want {
                Ok(h) => {
                    summary.cached += 1;
                    summary.entries.insert(id, *h);
                }
                Err(m) => *summary.to_fib.entry(miss_name(*m).to_string()).or_default() += 1,
            }
            self.slots.put(id, want.ok())?;
        }
        for id in self.slots.ids().into_iter().filter(|id| !self.targets.contains_key(id)) {
            self.slots.drop_id(id)?;
        }
        Ok(summary)
    }

    /// Clears every real server's entry (the kernel's tables could not be read).
    fn forget_all(&mut self) {
        for id in self.slots.ids() {
            let _ = self.slots.put(id, None);
        }
    }
}

impl Drop for Worker {
    /// A stopping cache vouches for nothing (a dying one's lease lapses within `LEASE`).
    fn drop(&mut self) {
        let _ = self.slots.expire();
    }
}

fn miss_name(m: Miss) -> &'static str {
    match m {
        Miss::Family => "policy_rules_or_forwarding_off",
        Miss::NoRoute => "no_route",
        Miss::Complex => "multipath_or_complex_route",
        Miss::NoLink => "no_link",
        Miss::NoNeighbour => "no_neighbour",
    }
}
