//! The XDP data plane: loads lb-ebpf with its maps pinned under the pin directory (adopting
//! pins a previous daemon left), attaches the program to interfaces, and keeps the maps
//! equal to the desired services. Each service switches atomically: its inactive generation
//! (configuration and table slice) is written first, then one 4-byte store flips
//! `lb_svc_gen[id]`.

use std::{
    collections::{BTreeMap, HashMap as StdHashMap, HashSet},
    net::{IpAddr, SocketAddr, UdpSocket},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, Map, MapData, PerCpuArray, PerCpuValues},
    programs::{
        Xdp, XdpMode,
        links::{FdLink, PinnedLink},
        xdp::{XdpLink, XdpLinkId},
    },
};
use lb_common::{
    GlobalStats, Meta, NeighKey, RealConns, RealDef, ServiceKey, ServiceStats, ServiceValue, SvcConf, consts::*,
};
use tracing::{info, warn};

use super::{
    services::{self, DesiredService},
    tables::{self, Member},
};
use crate::config::{ForwardMethod, Scheduler};

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
/// A generation slot is rewritten only this long after the flip that retired it, so no
/// packet still reading it (XDP runs take microseconds) sees it change.
const GENERATION_GRACE: Duration = Duration::from_millis(50);

/// How XDP is attached: `Auto` tries native (driver) mode and falls back to generic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AttachMode {
    Auto,
    Native,
    Generic,
}

/// Map sizes the operator may change (`--conntrack-size`).
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    pub conntrack: u32,
}

impl Default for Sizes {
    fn default() -> Self {
        Self { conntrack: DEFAULT_CONNTRACK }
    }
}

/// What the maps hold for one service.
#[derive(Debug)]
struct SvcState {
    id: u32,
    keys: Vec<ServiceKey>,
    /// What was last programmed (None when adopted from pins and not yet compared).
    applied: Option<DesiredService>,
    generation: u32,
    slices: [(u32, u32); 2],
    /// Real server address → real id (the sorry server too).
    reals: BTreeMap<SocketAddr, u32>,
    last_flip: Option<Instant>,
    /// Whether the live weight meets the quorum (with hysteresis, this depends on history).
    quorum_up: bool,
}

pub struct BpfDataplane {
    ebpf: Ebpf,
    pin_dir: PathBuf,
    /// Interface, link (owned by the program), and its pin when the kernel has bpf_link XDP.
    links: Vec<(String, XdpLinkId, Option<PathBuf>)>,
    /// By service name.
    services: BTreeMap<String, SvcState>,
    pool: Pool,
    next_real: u32,
    free_reals: std::collections::VecDeque<u32>,
    /// Real servers to clear once the generation that dropped them has been live for
    /// `GENERATION_GRACE`.
    retiring: Vec<u32>,
    retired_slices: Vec<(u32, u32)>,
    /// Whether this run created the pins (false: adopted from an earlier run, which may
    /// still be forwarding through them).
    created_pins: bool,
}

/// Mounts bpffs on /sys/fs/bpf when nothing is mounted there yet (fresh machines and
/// containers often lack it); pins need it.
pub fn ensure_bpffs(pin_dir: &Path) -> Result<()> {
    let root = Path::new("/sys/fs/bpf");
    if !pin_dir.starts_with(root) {
        return Ok(());
    }
    let st = nix::sys::statfs::statfs(root).with_context(|| format!("statfs {}", root.display()))?;
    if st.filesystem_type().0 as i64 != BPF_FS_MAGIC {
        nix::mount::mount(Some("bpf"), root, Some("bpf"), nix::mount::MsFlags::empty(), None::<&str>)
            .with_context(|| format!("mounting bpffs on {}", root.display()))?;
        info!(path = %root.display(), "mounted bpffs");
    }
    Ok(())
}

impl BpfDataplane {
    /// Loads the programs, creating the maps under `pin_dir` or adopting the ones pinned there
    /// (a restarted daemon keeps tracked flows and services).
    pub fn load(object: &[u8], pin_dir: &Path, sizes: Sizes) -> Result<Self> {
        ensure_bpffs(pin_dir)?;
        check_layout(pin_dir)?;
        let fresh = !pin_dir.join(MAP_META).exists();
        let mut loaded = Self::load_pinned(object, pin_dir, sizes);
        match &mut loaded {
            Ok(dp) => dp.created_pins = fresh,
            // Do not leave half a data plane pinned behind a failed start.
            Err(_) if fresh => drop(remove_pins_in(pin_dir)),
            Err(_) => {}
        }
        loaded
    }

    fn load_pinned(object: &[u8], pin_dir: &Path, sizes: Sizes) -> Result<Self> {
        std::fs::create_dir_all(pin_dir).with_context(|| format!("creating pin directory {}", pin_dir.display()))?;
        let paths: Vec<(&str, PathBuf)> = PINNED_MAPS.iter().map(|m| (*m, pin_dir.join(m))).collect();
        let mut loader = EbpfLoader::new();
        // On a refusal, the verifier's reason (not only its statistics) goes into the error.
        loader.verifier_log_level(aya::VerifierLogLevel::DEBUG | aya::VerifierLogLevel::STATS);
        for (name, path) in &paths {
            loader.map_pin_path(name, path.as_path());
        }
        let halfopen = halfopen_size(sizes.conntrack);
        loader
            .map_max_entries(MAP_CONNTRACK, sizes.conntrack)
            .map_max_entries(MAP_NAT_REV, sizes.conntrack)
            .map_max_entries(MAP_HALFOPEN, halfopen)
            .map_max_entries(MAP_HALFOPEN_REV, halfopen);
        let mut ebpf = loader.load(object).context("loading the eBPF object (maps and programs)")?;
        let prog: &mut Xdp = ebpf
            .program_mut(PROG_XDP)
            .ok_or_else(|| anyhow!("the eBPF object has no program {PROG_XDP}"))?
            .try_into()?;
        prog.load().with_context(|| format!("the kernel refused program {PROG_XDP}"))?;
        // How close the verifier came to its budget (1M on every kernel we run on): a
        // kernel update once moved this program past it on 6.1.
        if let Some(n) = prog.info().ok().and_then(|i| i.verified_instruction_count()) {
            info!(program = PROG_XDP, instructions = n, limit = 1_000_000, "verifier accepted");
        }

        let mut meta: Array<_, Meta> = Array::try_from(map_mut(&mut ebpf, MAP_META)?)?;
        meta.set(0, Meta { layout_version: LAYOUT_VERSION, reserved: 0 }, 0)?;
        let mut dp = Self {
            ebpf,
            pin_dir: pin_dir.to_path_buf(),
            links: Vec::new(),
            services: BTreeMap::new(),
            pool: Pool::new(TABLE_POOL),
            next_real: 0,
            free_reals: Default::default(),
            retiring: Vec::new(),
            retired_slices: Vec::new(),
            created_pins: true,
        };
        dp.adopt()?;
        Ok(dp)
    }

    /// Rebuilds the bookkeeping from maps a previous daemon left.
    fn adopt(&mut self) -> Result<()> {
        let svc_map: HashMap<_, ServiceKey, ServiceValue> = HashMap::try_from(map_ref(&self.ebpf, MAP_SERVICES)?)?;
        let mut by_id: BTreeMap<u32, Vec<ServiceKey>> = BTreeMap::new();
        for (k, v) in svc_map.iter().filter_map(|r| r.ok()) {
            by_id.entry(v.id).or_default().push(k);
        }
        let gens: Array<_, u32> = Array::try_from(map_ref(&self.ebpf, MAP_SVC_GEN)?)?;
        let confs: Array<_, SvcConf> = Array::try_from(map_ref(&self.ebpf, MAP_SVC_CONF)?)?;
        let reals: Array<_, RealDef> = Array::try_from(map_ref(&self.ebpf, MAP_REALS)?)?;
        let mut reals_by_svc: BTreeMap<u32, BTreeMap<SocketAddr, u32>> = BTreeMap::new();
        let mut max_real = None;
        for (i, r) in reals.iter().enumerate() {
            let r = r?;
            if r.flags & REAL_PRESENT != 0 {
                let ip = services::ip_of(&r.addr, r.family);
                reals_by_svc.entry(r.svc_id).or_default().insert(SocketAddr::new(ip, r.port), i as u32);
                max_real = Some(i as u32);
            }
        }
        self.next_real = max_real.map_or(0, |m| m + 1);
        for (id, mut keys) in by_id {
            keys.sort();
            let generation = gens.get(&id, 0)? & 1;
            let mut slices = [(0, 0); 2];
            for (g, slice) in slices.iter_mut().enumerate() {
                let c = confs.get(&(id * 2 + g as u32), 0)?;
                *slice = (c.table_off, c.table_len);
                self.pool.reserve(c.table_off, c.table_len);
            }
            let name = format!("adopted #{id}");
            let reals = reals_by_svc.remove(&id).unwrap_or_default();
            self.services.insert(
                name,
                SvcState { id, keys, applied: None, generation, slices, reals, last_flip: None, quorum_up: true },
            );
        }
        if !self.services.is_empty() {
            info!(services = self.services.len(), "adopted services from pinned maps");
        }
        Ok(())
    }

    fn link_pin(&self, iface: &str) -> PathBuf {
        self.pin_dir.join(LINKS_DIR).join(format!("xdp_{iface}"))
    }

    /// Attaches the XDP program to `iface`; returns the mode it got. A link pinned by an
    /// earlier run is adopted instead: the new program replaces the old one atomically
    /// (bpf_link_update), so forwarding never stops across a restart. New links are pinned, so
    /// forwarding goes on while no daemon runs (kill -9, upgrade).
    pub fn attach(&mut self, iface: &str, mode: AttachMode) -> Result<&'static str> {
        let pin = self.link_pin(iface);
        let prog: &mut Xdp =
            self.ebpf.program_mut(PROG_XDP).ok_or_else(|| anyhow!("no program {PROG_XDP}"))?.try_into()?;
        if pin.exists() {
            let adopted = PinnedLink::from_pin(&pin)
                .map_err(anyhow::Error::from)
                .and_then(|p| XdpLink::try_from(FdLink::from(p)).map_err(anyhow::Error::from))
                .and_then(|l| prog.attach_to_link(l).map_err(anyhow::Error::from));
            match adopted {
                Ok(id) => {
                    self.links.push((iface.to_string(), id, Some(pin)));
                    return Ok("adopted (program replaced in place)");
                }
                Err(e) => {
                    warn!(iface, error = %format!("{e:#}"), "the pinned XDP link cannot be adopted; attaching anew");
                    let _ = std::fs::remove_file(&pin);
                }
            }
        }
        let (id, got) = match mode {
            AttachMode::Native => (prog.attach(iface, XdpMode::Driver), "native"),
            AttachMode::Generic => (prog.attach(iface, XdpMode::Skb), "generic"),
            AttachMode::Auto => match prog.attach(iface, XdpMode::Driver) {
                Ok(l) => (Ok(l), "native"),
                Err(e) => {
                    warn!(iface, error = %e, "native XDP attach failed; falling back to generic (slower) XDP");
                    (prog.attach(iface, XdpMode::Skb), "generic")
                }
            },
        };
        let id = id.with_context(|| format!("attaching XDP program to {iface}"))?;
        // Pin through a bpf_link (kernel 5.9+); netlink-attached XDP cannot be pinned.
        let link = prog.take_link(id)?;
        let pinned = match FdLink::try_from(link) {
            Ok(fd) => {
                std::fs::create_dir_all(pin.parent().unwrap_or(&self.pin_dir))?;
                let p = fd.pin(&pin).with_context(|| format!("pinning the XDP link at {}", pin.display()))?;
                let id = prog.attach_to_link(XdpLink::try_from(FdLink::from(p))?)?;
                self.links.push((iface.to_string(), id, Some(pin)));
                true
            }
            Err(_) => false,
        };
        if !pinned {
            // The netlink link was consumed by the failed conversion (and detached): attach
            // again, owned by this process only.
            warn!(iface, "this kernel attaches XDP through netlink only: forwarding stops while no daemon runs");
            let mode = if got == "native" { XdpMode::Driver } else { XdpMode::Skb };
            let id = prog.attach(iface, mode).with_context(|| format!("attaching XDP program to {iface}"))?;
            self.links.push((iface.to_string(), id, None));
        }
        Ok(got)
    }

    /// Next hops the XDP program found unresolved since the last call (and forgets them).
    pub fn take_unresolved(&mut self) -> Result<Vec<(IpAddr, u32)>> {
        let mut map: HashMap<_, NeighKey, u64> = HashMap::try_from(map_mut(&mut self.ebpf, MAP_UNRESOLVED)?)?;
        let keys: Vec<NeighKey> = map.keys().filter_map(|k| k.ok()).collect();
        let mut out = Vec::new();
        for k in keys {
            let _ = map.remove(&k);
            let ip = services::ip_of(&k.addr, k.family);
            out.push((ip, k.ifindex));
        }
        Ok(out)
    }

    /// Detaches links pinned by an earlier run on interfaces this run does not use.
    pub fn drop_stale_links(&mut self) -> Result<()> {
        let dir = self.pin_dir.join(LINKS_DIR);
        let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(()) };
        for e in entries.flatten() {
            let path = e.path();
            if self.links.iter().any(|(_, _, p)| p.as_deref() == Some(path.as_path())) {
                continue;
            }
            // Unpinning and closing the last reference detaches it.
            match PinnedLink::from_pin(&path) {
                Ok(l) => drop(l.unpin()),
                Err(_) => drop(std::fs::remove_file(&path)),
            }
            info!(link = %path.display(), "detached an XDP link left by an earlier run");
        }
        Ok(())
    }

    /// Makes the maps hold exactly `desired`: unchanged services are not touched (no map
    /// write at all), changed ones switch atomically, removed ones disappear.
    pub fn apply(&mut self, desired: &[DesiredService]) -> Result<()> {
        // Match adopted services (named "adopted #id") to desired ones by their keys.
        let adopted: Vec<String> = self.services.keys().filter(|n| n.starts_with("adopted #")).cloned().collect();
        for name in adopted {
            let keys = self.services[&name].keys.clone();
            if let Some(d) = desired.iter().find(|d| d.keys.iter().any(|k| keys.contains(k)))
                && let Some(state) = self.services.remove(&name)
            {
                self.services.insert(d.name.clone(), state);
            }
        }
        let gone: Vec<String> =
            self.services.keys().filter(|n| !desired.iter().any(|d| &d.name == *n)).cloned().collect();
        for name in gone {
            self.remove_service(&name)?;
        }
        for d in desired {
            self.apply_service(d).with_context(|| format!("programming service {}", d.name))?;
        }
        self.retire()
    }

    /// Clears the real servers that left their service, once no packet can still be using
    /// the generation that listed them.
    fn retire(&mut self) -> Result<()> {
        if self.retiring.is_empty() && self.retired_slices.is_empty() {
            return Ok(());
        }
        std::thread::sleep(GENERATION_GRACE);
        for (off, len) in std::mem::take(&mut self.retired_slices) {
            self.pool.free(off, len);
        }
        let mut reals: Array<_, RealDef> = Array::try_from(map_mut(&mut self.ebpf, MAP_REALS)?)?;
        for rid in std::mem::take(&mut self.retiring) {
            reals.set(rid, RealDef::default(), 0)?;
            self.free_reals.push_back(rid);
        }
        Ok(())
    }

    fn apply_service(&mut self, d: &DesiredService) -> Result<()> {
        if self.services.get(&d.name).and_then(|s| s.applied.as_ref()) == Some(d) {
            return Ok(());
        }
        if !self.services.contains_key(&d.name) {
            let id = self.free_service_id()?;
            zero_stats::<ServiceStats>(&mut self.ebpf, MAP_SVC_STATS, id)?;
            self.services.insert(
                d.name.clone(),
                SvcState {
                    id,
                    keys: Vec::new(),
                    applied: None,
                    generation: 1,
                    slices: [(0, 0); 2],
                    reals: BTreeMap::new(),
                    last_flip: None,
                    quorum_up: true,
                },
            );
        }
        let mut state = self.services.remove(&d.name).ok_or_else(|| anyhow!("service state vanished"))?;
        let result = self.program(&mut state, d);
        self.services.insert(d.name.clone(), state);
        result
    }

    fn program(&mut self, state: &mut SvcState, d: &DesiredService) -> Result<()> {
        let id = state.id;
        let sched = sched_code(d.scheduler)
            .ok_or_else(|| anyhow!("scheduler {} needs the IPVS backend", d.scheduler.name()))?;
        // Real servers: one id per (service, address); a removed one is marked absent so its
        // tracked flows move on, and its id rests in the free list.
        let mut wanted: Vec<(SocketAddr, u32)> = d.reals.iter().map(|r| (r.addr, r.weight)).collect();
        if let Some(s) = d.sorry {
            wanted.push((s, 0));
        }
        // Removed real servers stay valid until the new generation is live and in-flight
        // packets that read the old one are done (`retire`).
        let removed: Vec<(SocketAddr, u32)> =
            state.reals.iter().filter(|(a, _)| !wanted.iter().any(|(w, _)| w == *a)).map(|(a, i)| (*a, *i)).collect();
        for (addr, rid) in &removed {
            state.reals.remove(addr);
            self.retiring.push(*rid);
        }
        let mut members = Vec::new();
        for (addr, weight) in &wanted {
            let rid = match state.reals.get(addr) {
                Some(r) => *r,
                None => {
                    let r = self.alloc_real()?;
                    zero_stats::<ServiceStats>(&mut self.ebpf, MAP_REAL_STATS, r)?;
                    // A fresh (or recycled) id: no flow of this service points at it yet.
                    for m in [MAP_REAL_CONNS, MAP_REAL_EXPIRED] {
                        let mut conns: Array<_, RealConns> = Array::try_from(map_mut(&mut self.ebpf, m)?)?;
                        conns.set(r, RealConns::default(), 0)?;
                    }
                    state.reals.insert(*addr, r);
                    r
                }
            };
            let (bytes, family) = services::addr_bytes(addr.ip());
            let tun_src = if d.forward == ForwardMethod::Tun { source_for(addr.ip()) } else { [0; 16] };
            let def = RealDef {
                addr: bytes,
                tun_src,
                port: addr.port(),
                family,
                flags: REAL_PRESENT,
                svc_id: id,
                weight: *weight,
                reserved: 0,
            };
            let mut reals: Array<_, RealDef> = Array::try_from(map_mut(&mut self.ebpf, MAP_REALS)?)?;
            if reals.get(&rid, 0)? != def {
                reals.set(rid, def, 0)?;
            }
            if Some(*addr) != d.sorry || d.reals.iter().any(|r| r.addr == *addr) {
                members.push(Member { id: rid, name: addr.to_string(), weight: *weight });
            }
        }
        prime_neighbours(wanted.iter().map(|(a, _)| *a));

        // keepalived's quorum: below it the service is down and the sorry server answers;
        // hysteresis keeps it from flapping around the threshold.
        let live_weight: u64 = members.iter().map(|m| u64::from(m.weight)).sum();
        state.quorum_up = d.quorum_up && live_weight > 0;
        let (table, truncated) =
            if !state.quorum_up { (Vec::new(), false) } else { tables::build(d.scheduler, &members) };
        if truncated {
            warn!(service = %d.name, "more than {MAX_SCAN} live real servers: least-connection scheduling considers the first {MAX_SCAN}");
        }
        let next = 1 - state.generation;
        if let Some(t) = state.last_flip {
            let since = t.elapsed();
            if since < GENERATION_GRACE {
                std::thread::sleep(GENERATION_GRACE - since);
            }
        }
        let (old_off, old_len) = state.slices[next as usize];
        self.pool.free(old_off, old_len);
        let off = self.pool.alloc(table.len() as u32).ok_or_else(|| anyhow!("the scheduling table pool is full"))?;
        let mut tables_map: Array<_, u32> = Array::try_from(map_mut(&mut self.ebpf, MAP_TABLES)?)?;
        for (i, rid) in table.iter().enumerate() {
            tables_map.set(off + i as u32, *rid, 0)?;
        }
        state.slices[next as usize] = (off, table.len() as u32);
        let conf = SvcConf {
            sched,
            fwd: match d.forward {
                ForwardMethod::Nat => FWD_NAT,
                ForwardMethod::Dr => FWD_DR,
                ForwardMethod::Tun => FWD_TUN,
            },
            // The data plane caps it at the packet's address length.
            persist_prefix: d.persist_prefix.unwrap_or(128),
            flags: 0,
            persist_timeout: d.persist_timeout,
            table_off: off,
            table_len: table.len() as u32,
            sorry_real: d.sorry.and_then(|s| state.reals.get(&s).copied()).unwrap_or(NO_REAL),
            reserved: 0,
        };
        let mut confs: Array<_, SvcConf> = Array::try_from(map_mut(&mut self.ebpf, MAP_SVC_CONF)?)?;
        confs.set(id * 2 + next, conf, 0)?;
        let mut gens: Array<_, u32> = Array::try_from(map_mut(&mut self.ebpf, MAP_SVC_GEN)?)?;
        gens.set(id, next, 0)?;
        state.generation = next;
        state.last_flip = Some(Instant::now());

        // Keys last, so a new key never sees an unprogrammed service.
        let mut svc_map: HashMap<_, ServiceKey, ServiceValue> =
            HashMap::try_from(map_mut(&mut self.ebpf, MAP_SERVICES)?)?;
        for k in &d.keys {
            if !state.keys.contains(k) {
                svc_map.insert(*k, ServiceValue { id, flags: 0 }, 0)?;
            }
        }
        for k in state.keys.iter().filter(|k| !d.keys.contains(k)) {
            svc_map.remove(k)?;
        }
        state.keys = d.keys.clone();
        state.applied = Some(d.clone());
        info!(service = %d.name, id, reals = members.len(), table = table.len(), scheduler = d.scheduler.name(), "service programmed");
        Ok(())
    }

    fn remove_service(&mut self, name: &str) -> Result<()> {
        let Some(state) = self.services.remove(name) else { return Ok(()) };
        let mut svc_map: HashMap<_, ServiceKey, ServiceValue> =
            HashMap::try_from(map_mut(&mut self.ebpf, MAP_SERVICES)?)?;
        for k in &state.keys {
            svc_map.remove(k).with_context(|| format!("removing service key {}", services::describe(k)))?;
        }
        // Keys are gone: no new packet finds the service. Its real servers and tables go
        // after the grace period (`retire`, at the end of `apply`).
        self.retiring.extend(state.reals.values().copied());
        self.retired_slices.extend(state.slices);
        info!(service = name, "service removed");
        Ok(())
    }

    fn free_service_id(&self) -> Result<u32> {
        (0..MAX_SERVICES)
            .find(|id| !self.services.values().any(|s| s.id == *id))
            .ok_or_else(|| anyhow!("more than {MAX_SERVICES} services"))
    }

    /// Fresh ids first; freed ones only once those run out, so a flow tracked to a removed
    /// real server is not silently sent to whichever real server reused its id.
    fn alloc_real(&mut self) -> Result<u32> {
        if self.next_real < MAX_REALS {
            self.next_real += 1;
            return Ok(self.next_real - 1);
        }
        self.free_reals.pop_front().ok_or_else(|| anyhow!("more than {MAX_REALS} real servers"))
    }

    /// Whether this run created the pinned maps (rather than adopting an earlier run's).
    pub fn created_pins(&self) -> bool {
        self.created_pins
    }

    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    /// The loaded object (for tests that run its programs directly).
    pub fn ebpf(&self) -> &Ebpf {
        &self.ebpf
    }

    pub fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }

    pub fn interfaces(&self) -> impl Iterator<Item = &str> {
        self.links.iter().map(|(i, _, _)| i.as_str())
    }

    /// Deletes open flows that expired in `lb_conntrack` without a FIN/RST and counts them in
    /// `lb_real_expired`, so lc/wlc/lblc stop counting them. The live counters themselves are
    /// never written here: they change under atomic adds from the data plane, and a recount
    /// written back would lose the flows opened while it ran. Only needed by lc/wlc/lblc
    /// services (walking a large table costs two syscalls per entry).
    pub fn reconcile_conns(&mut self) -> Result<()> {
        let uses_lc = self.services.values().any(|s| {
            s.applied.as_ref().is_some_and(|d| matches!(d.scheduler, Scheduler::Lc | Scheduler::Wlc | Scheduler::Lblc))
        });
        if !uses_lc {
            return Ok(());
        }
        let owned: HashSet<(u32, u32)> =
            self.services.values().flat_map(|s| s.reals.values().map(move |r| (s.id, *r))).collect();
        let now = monotonic_ns();
        let mut ct: HashMap<_, lb_common::FlowKey, lb_common::FlowValue> =
            HashMap::try_from(map_mut(&mut self.ebpf, MAP_CONNTRACK)?)?;
        let stale = |v: &lb_common::FlowValue| {
            let timeout = match v.state {
                CT_SYN => TCP_SYN_TIMEOUT,
                CT_EST => TCP_EST_TIMEOUT,
                CT_CLOSING => return false,
                _ => UDP_TIMEOUT,
            };
            now.saturating_sub(v.last_ns) > timeout * 1_000_000_000 && owned.contains(&(v.svc_id, v.real_id))
        };
        let expired: Vec<(lb_common::FlowKey, u32)> =
            ct.iter().filter_map(|r| r.ok()).filter(|(_, v)| stale(v)).map(|(k, v)| (k, v.real_id)).collect();
        let mut gone: StdHashMap<u32, u64> = StdHashMap::new();
        for (key, real) in expired {
            if !ct.get(&key, 0).is_ok_and(|v| stale(&v)) {
                continue;
            }
            // Racy by one flow at most: a packet that found this entry expired in the last
            // microseconds has subtracted it already and may be re-inserting it. Both
            // subtractions then stand, and the re-inserted flow is counted again only if it
            // is deleted here first (its next packet creates it anew). Rare, and bounded.
            if ct.remove(&key).is_ok() {
                *gone.entry(real).or_default() += 1;
            }
        }
        let mut counts: Array<_, RealConns> = Array::try_from(map_mut(&mut self.ebpf, MAP_REAL_EXPIRED)?)?;
        for (rid, n) in gone {
            let before = counts.get(&rid, 0)?.active;
            counts.set(rid, RealConns { active: before.wrapping_add(n) }, 0)?;
        }
        Ok(())
    }

    /// Detaches from every interface; with `remove_pins`, also deletes the pinned maps so
    /// nothing of this daemon stays in the kernel.
    pub fn shutdown(mut self, remove_pins: bool) -> Result<()> {
        let prog: &mut Xdp =
            self.ebpf.program_mut(PROG_XDP).ok_or_else(|| anyhow!("no program {PROG_XDP}"))?.try_into()?;
        for (iface, link, pin) in self.links.drain(..) {
            // The pin is a reference too: remove it first, then close ours.
            if let Some(p) = pin {
                let _ = std::fs::remove_file(p);
            }
            if let Err(e) = prog.detach(link) {
                warn!(iface, error = %e, "detaching XDP program failed");
            }
        }
        if remove_pins {
            remove_pins_in(&self.pin_dir)?;
        }
        Ok(())
    }
}

/// The data plane's code for `s`; None for the schedulers only IPVS has (the config check
/// and `services::desired` keep them away from this backend).
fn sched_code(s: Scheduler) -> Option<u8> {
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

/// `bpf_ktime_get_coarse_ns`'s clock (CLOCK_MONOTONIC, coarse).
fn monotonic_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC_COARSE)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// The local address the kernel would use towards `ip` (the outer source of TUN packets):
/// a connected UDP socket's name; nothing is sent.
fn source_for(ip: IpAddr) -> [u8; 16] {
    let bind: SocketAddr = if ip.is_ipv4() {
        "0.0.0.0:0".parse().unwrap_or(([0, 0, 0, 0], 0).into())
    } else {
        "[::]:0".parse().unwrap_or(([0u16; 8], 0).into())
    };
    let local = UdpSocket::bind(bind).and_then(|s| s.connect((ip, 9)).map(|_| s)).and_then(|s| s.local_addr());
    match local {
        Ok(a) => services::addr_bytes(a.ip()).0,
        Err(e) => {
            warn!(real = %ip, error = %e, "no route to the real server: TUN packets get no source address");
            [0; 16]
        }
    }
}

/// Sends one empty UDP datagram to each real server so the kernel resolves its neighbour
/// entry: the XDP FIB lookup only finds next hops the kernel already knows.
pub fn prime_neighbours(addrs: impl Iterator<Item = SocketAddr>) {
    for a in addrs {
        let bind: SocketAddr = if a.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
        if let Ok(s) = UdpSocket::bind(bind) {
            let _ = s.send_to(&[], a);
        }
    }
}

fn zero_stats<T: aya::Pod + Default + Clone>(ebpf: &mut Ebpf, map: &str, index: u32) -> Result<()> {
    let mut m: PerCpuArray<_, T> = PerCpuArray::try_from(map_mut(ebpf, map)?)?;
    let cpus = aya::util::nr_cpus().map_err(|(_, e)| e)?;
    m.set(index, PerCpuValues::try_from(vec![T::default(); cpus])?, 0)?;
    Ok(())
}

/// First-fit allocator over the `lb_tables` pool.
#[derive(Debug)]
struct Pool {
    /// Free ranges (offset → length), non-adjacent.
    free: BTreeMap<u32, u32>,
}

impl Pool {
    fn new(size: u32) -> Self {
        Self { free: BTreeMap::from([(0, size)]) }
    }

    fn alloc(&mut self, len: u32) -> Option<u32> {
        if len == 0 {
            return Some(0);
        }
        let (&off, &flen) = self.free.iter().find(|(_, l)| **l >= len)?;
        self.free.remove(&off);
        if flen > len {
            self.free.insert(off + len, flen - len);
        }
        Some(off)
    }

    fn free(&mut self, off: u32, len: u32) {
        if len == 0 {
            return;
        }
        let (mut off, mut len) = (off, len);
        if let Some((&p, &pl)) = self.free.range(..off).next_back()
            && p + pl == off
        {
            self.free.remove(&p);
            off = p;
            len += pl;
        }
        if let Some(&nl) = self.free.get(&(off + len)) {
            self.free.remove(&(off + len));
            len += nl;
        }
        self.free.insert(off, len);
    }

    /// Marks a range found in adopted maps as used.
    fn reserve(&mut self, off: u32, len: u32) {
        if len == 0 {
            return;
        }
        let Some((&f, &fl)) = self.free.range(..=off).next_back() else { return };
        if f + fl < off + len {
            return;
        }
        self.free.remove(&f);
        if off > f {
            self.free.insert(f, off - f);
        }
        if f + fl > off + len {
            self.free.insert(off + len, f + fl - off - len);
        }
    }
}

/// Removes this project's pins from `pin_dir`, and the directory if it is then empty.
pub fn remove_pins_in(pin_dir: &Path) -> Result<()> {
    // Links first (unpinned links whose last fd is gone detach from their interfaces).
    let links = pin_dir.join(LINKS_DIR);
    if let Ok(entries) = std::fs::read_dir(&links) {
        for e in entries.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
        let _ = std::fs::remove_dir(&links);
    }
    for name in PINNED_MAPS {
        let p = pin_dir.join(name);
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing pin {}", p.display())),
        }
    }
    let _ = std::fs::remove_dir(pin_dir);
    Ok(())
}

/// Refuses pins made by a daemon with another map layout, instead of misreading them.
fn check_layout(pin_dir: &Path) -> Result<()> {
    let path = pin_dir.join(MAP_META);
    if !path.exists() {
        return Ok(());
    }
    let meta: Array<_, Meta> = Array::try_from(pinned(&path)?)?;
    let found = meta.get(&0, 0)?.layout_version;
    if found != LAYOUT_VERSION {
        bail!(
            "pinned maps in {} have layout version {found}, this lb-daemon uses {LAYOUT_VERSION}; \
             stop the old daemon and remove the directory to start fresh (this drops tracked flows)",
            pin_dir.display()
        );
    }
    Ok(())
}

fn map_mut<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Map> {
    ebpf.map_mut(name).ok_or_else(|| anyhow!("the eBPF object has no map {name}"))
}

fn map_ref<'a>(ebpf: &'a Ebpf, name: &str) -> Result<&'a Map> {
    ebpf.map(name).ok_or_else(|| anyhow!("the eBPF object has no map {name}"))
}

fn pinned(path: &Path) -> Result<Map> {
    let data = MapData::from_pin(path).with_context(|| format!("opening pinned map {}", path.display()))?;
    Ok(Map::from_map_data(data)?)
}

/// Counters read from the pins: works while the daemon runs and after it is gone.
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

pub fn read_stats(pin_dir: &Path) -> Result<StatsSnapshot> {
    let stats: PerCpuArray<_, GlobalStats> = PerCpuArray::try_from(pinned(&pin_dir.join(MAP_STATS))?)?;
    let global = GlobalStats::sum(stats.get(&0, 0)?.iter());
    let svc: HashMap<_, ServiceKey, ServiceValue> = HashMap::try_from(pinned(&pin_dir.join(MAP_SERVICES))?)?;
    let svc_stats: PerCpuArray<_, ServiceStats> = PerCpuArray::try_from(pinned(&pin_dir.join(MAP_SVC_STATS))?)?;
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
        let s = ServiceStats::sum(svc_stats.get(&value.id, 0)?.iter());
        // The live generation's table: which real servers new flows can reach.
        let conf = confs.get(&(value.id * 2 + (gens.get(&value.id, 0)? & 1)), 0)?;
        let mut scheduled = std::collections::BTreeSet::new();
        for i in conf.table_off..conf.table_off.saturating_add(conf.table_len) {
            scheduled.insert(tables.get(&i, 0)?);
        }
        let mut rv = Vec::new();
        for (rid, r) in present.get(&value.id).into_iter().flatten() {
            let rs = ServiceStats::sum(real_stats.get(rid, 0)?.iter());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_allocates_frees_and_merges() {
        let mut p = Pool::new(100);
        let a = p.alloc(30).unwrap();
        let b = p.alloc(30).unwrap();
        let c = p.alloc(30).unwrap();
        assert_eq!((a, b, c), (0, 30, 60));
        assert_eq!(p.alloc(20), None);
        p.free(b, 30);
        p.free(a, 30);
        assert_eq!(p.alloc(60), Some(0), "freed neighbours merge");
        p.free(0, 60);
        p.free(c, 30);
        assert_eq!(p.free, BTreeMap::from([(0, 100)]));
        let mut q = Pool::new(100);
        q.reserve(40, 10);
        assert_eq!(q.free, BTreeMap::from([(0, 40), (50, 50)]));
    }

    /// The config check's list of BPF schedulers and the data plane's codes agree.
    #[test]
    fn every_bpf_scheduler_has_a_code_and_no_other() {
        for (name, s) in Scheduler::ALL {
            assert_eq!(sched_code(s).is_some(), s.in_bpf(), "{name}");
        }
    }
}
