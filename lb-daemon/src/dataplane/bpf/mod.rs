//! The XDP data plane: loads lb-ebpf with its maps pinned under the pin directory (adopting
//! pins a previous daemon left), attaches the program to interfaces, and keeps the maps
//! equal to the desired services. Each service switches atomically: its inactive generation
//! (configuration and table slice) is written first, then one 4-byte store flips
//! `lb_svc_gen[id]`.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap as StdHashMap, HashSet},
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::{Context as _, Result, anyhow, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap},
    programs::{
        Xdp, XdpMode,
        links::{FdLink, PinnedLink},
        xdp::{XdpLink, XdpLinkId},
    },
};
use lb_common::{Meta, NeighKey, RealConns, RealDef, ServiceKey, ServiceStats, ServiceValue, SvcConf, consts::*};
use tracing::{debug, info, warn};

use super::{
    object,
    services::{self, DesiredService},
};
use crate::config::Scheduler;
pub use conns::read_conns;
use maps::{map_mut, map_ref, pinned};
use plan::{Book, SvcState};
use retire::RetireQueue;
pub use stats::{
    FlowTableStats, GlobalStatsView, RealStatsView, ServiceStatsView, StatsSnapshot, read_flow_tables, read_stats,
};

mod commit;
pub mod conns;
pub mod conntrack;
pub mod maps;
pub mod pins;
pub mod plan;
mod pool;
mod real_rev;
pub mod retire;
mod stats;
pub mod twins;

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

pub struct BpfDataplane {
    ebpf: Ebpf,
    pin_dir: PathBuf,
    /// Interface, link (owned by the program), and its pin when the kernel has bpf_link XDP.
    links: Vec<(String, XdpLinkId, Option<PathBuf>)>,
    /// What the maps hold.
    book: Book,
    /// Real servers and table slices the last flips retired, until their grace period ends.
    retiring: RetireQueue,
    /// The last desired services while some of them wait for a generation slot, and when the
    /// first slot is free.
    pending: Option<(Vec<DesiredService>, Instant)>,
    /// Whether this run created the pins (false: adopted from an earlier run, which may
    /// still be forwarding through them).
    created_pins: bool,
    /// VIPs VRRP fences (`set_fences`): their services' `lb_svc_fence` entries.
    fences: BTreeMap<IpAddr, u32>,
    /// Connection sync's thread (`set_sync`), when it runs.
    sync: Option<super::ctsync::CtSync>,
    /// What the sync thread shares: the ids' meaning, its counters, the `lb_real_expired` lock.
    sync_shared: super::ctsync::Shared,
    /// The next-hop cache's thread (`start_nexthops`), when it runs.
    nexthops: Option<super::nexthop::NexthopCache>,
    /// Adopted pins of an older layout, until `finish_upgrade`.
    upgrade: Option<Upgrade>,
}

/// Pins of an older layout being taken over: their program kept IPv4 flows in `lb_conntrack`
/// and runs until this one is attached, so the flows are copied into `lb_conntrack4` at the
/// adoption (`copied`) and moved once this program runs (`BpfDataplane::finish_upgrade`).
struct Upgrade {
    from: u32,
    copied: HashSet<lb_common::FlowKey4>,
}

/// The layout version the pins say while `upgrade` (if any) is under way: the old one.
fn pins_layout(upgrade: Option<&Upgrade>) -> u32 {
    upgrade.map_or(LAYOUT_VERSION, |u| u.from)
}

impl BpfDataplane {
    /// Loads the programs, creating the maps under `pin_dir` or adopting the ones pinned there
    /// (a restarted daemon keeps tracked flows and services).
    pub fn load(object: &[u8], pin_dir: &Path, sizes: Sizes) -> Result<Self> {
        pins::prepare(pin_dir, pins::Purpose::Create)?;
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
        // Made by this load: layout 10's service totals are carried into it (once).
        let carry_made = !pin_dir.join(MAP_SVC_CARRY).exists();
        let mut loader = EbpfLoader::new();
        // On a refusal, the verifier's reason (not only its statistics) goes into the error.
        loader.verifier_log_level(aya::VerifierLogLevel::DEBUG | aya::VerifierLogLevel::STATS);
        for (name, path) in &paths {
            loader.map_pin_path(name, path.as_path());
        }
        let halfopen = halfopen_size(sizes.conntrack);
        loader
            .map_max_entries(MAP_CONNTRACK, sizes.conntrack)
            .map_max_entries(MAP_CONNTRACK4, sizes.conntrack)
            .map_max_entries(MAP_NAT_REV, sizes.conntrack)
            .map_max_entries(MAP_HALFOPEN, halfopen)
            .map_max_entries(MAP_HALFOPEN_REV, halfopen);
        let mut ebpf = loader.load(object).context("loading the eBPF object (maps and programs)")?;
        let prog: &mut Xdp = ebpf
            .program_mut(PROG_XDP)
            .ok_or_else(|| anyhow!("the eBPF object has no program {PROG_XDP}"))?
            .try_into()?;
        object::load_program(PROG_XDP, || prog.load())?;
        // How close the verifier came to its budget (1M on every kernel we run on): a
        // kernel update once moved this program past it on 6.1.
        if let Some(n) = prog.info().ok().and_then(|i| i.verified_instruction_count()) {
            info!(program = PROG_XDP, instructions = n, limit = 1_000_000, "verifier accepted");
        }

        let mut meta: Array<_, Meta> = Array::try_from(map_mut(&mut ebpf, MAP_META)?)?;
        let kept = meta.get(&0, 0).unwrap_or_default();
        // Pins of an older layout (a fresh pin directory reads as 0) keep their version until
        // `finish_upgrade` (their IPv4 flows moved, layout 10's old counters unpinned): a
        // daemon that dies first leaves that to the next one.
        let upgrade = (kept.layout_version != 0 && kept.layout_version < LAYOUT_VERSION)
            .then(|| Upgrade { from: kept.layout_version, copied: HashSet::new() });
        meta.set(0, Meta { layout_version: pins_layout(upgrade.as_ref()), ..kept }, 0)?;
        if carry_made {
            stats::carry_layout10_totals(&mut ebpf, pin_dir).context("carrying layout 10's service counters")?;
        }
        let mut dp = Self {
            ebpf,
            pin_dir: pin_dir.to_path_buf(),
            links: Vec::new(),
            book: Book::new(TABLE_POOL),
            retiring: RetireQueue::default(),
            pending: None,
            created_pins: true,
            fences: BTreeMap::new(),
            sync: None,
            sync_shared: super::ctsync::Shared {
                directory: Default::default(),
                counters: Default::default(),
                expired_lock: Default::default(),
                resend: Default::default(),
            },
            nexthops: None,
            upgrade,
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
        // Ids handed out before (the high-water mark in `lb_meta`) and no longer present are
        // reused only once fresh ones run out, as within one run.
        let meta: Array<_, Meta> = Array::try_from(map_ref(&self.ebpf, MAP_META)?)?;
        let handed_out = meta.get(&0, 0).map_or(0, |m| m.next_real);
        self.book.next_real = max_real.map_or(0, |m| m + 1).max(handed_out);
        let present: std::collections::BTreeSet<u32> =
            reals_by_svc.values().flat_map(|r| r.values().copied()).collect();
        self.book.free_reals = (0..self.book.next_real).filter(|id| !present.contains(id)).collect();
        for (id, mut keys) in by_id {
            keys.sort();
            let generation = gens.get(&id, 0)? & 1;
            let mut slices = [(0, 0); 2];
            for (g, slice) in slices.iter_mut().enumerate() {
                let c = confs.get(&(id * 2 + g as u32), 0)?;
                *slice = (c.table_off, c.table_len);
                self.book.pool.reserve(c.table_off, c.table_len);
            }
            let name = format!("adopted #{id}");
            let reals = reals_by_svc.remove(&id).unwrap_or_default();
            let state = SvcState { id, keys, applied: None, generation, slices, reals, last_flip: None };
            self.book.services.insert(name, state);
        }
        self.book.real_rev = real_rev::adopt(&self.ebpf)?;
        twins::adopt::<ServiceValue>(&mut self.ebpf, twins::SERVICES)?;
        twins::adopt::<lb_common::NatRev>(&mut self.ebpf, twins::REAL_REV)?;
        if let Some(u) = self.upgrade.as_mut().filter(|u| u.from < 10) {
            u.copied = conntrack::Conntrack::open(&self.pin_dir)?.copy_ipv4()?;
        }
        if !self.book.services.is_empty() {
            info!(services = self.book.services.len(), "adopted services from pinned maps");
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
        let got = self.attach_link(iface, mode);
        self.refresh_ingress();
        got
    }

    fn attach_link(&mut self, iface: &str, mode: AttachMode) -> Result<&'static str> {
        self.learn_mac(iface)?;
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
        self.set_iface_flags(iface, got == "generic")?;
        Ok(got)
    }

    /// Writes `iface`'s MAC in `lb_iface_mac` (if it changed), and the MACs of the macvlans
    /// on it in `lb_local_macs`: frames unicast to another MAC are not load-balanced. An
    /// interface without a MAC is not checked.
    pub fn learn_mac(&mut self, iface: &str) -> Result<()> {
        if let Some(ifindex) = self.learn_iface_mac(iface)? {
            self.learn_macvlans(&[(iface.to_string(), ifindex)]);
        }
        Ok(())
    }

    /// `learn_mac`'s `lb_iface_mac` part; the interface's index when it has a slot there.
    fn learn_iface_mac(&mut self, iface: &str) -> Result<Option<u32>> {
        let ifindex = nix::net::if_::if_nametoindex(iface).with_context(|| format!("no interface {iface}"))?;
        if ifindex >= MAX_IFINDEX {
            warn!(iface, ifindex, "interface index beyond the data plane's table: destination MACs not checked");
            return Ok(None);
        }
        // A VMAC (use_vmac, ours or a keepalived's) in this namespace: frames to VRRP virtual
        // MACs are the VIPs' (fencing still keeps a backup from load-balancing them).
        let vrrp_vmac = u8::from(super::iface::macs()?.iter().any(lb_common::is_vrrp_vmac));
        let want = match super::iface::mac(iface)? {
            Some(mac) => lb_common::IfaceMac { mac, known: 1, vrrp_vmac },
            None => lb_common::IfaceMac::default(),
        };
        let mut m: Array<_, lb_common::IfaceMac> = Array::try_from(map_mut(&mut self.ebpf, MAP_IFACE_MAC)?)?;
        if m.get(&ifindex, 0).ok() != Some(want) {
            m.set(ifindex, want, 0).with_context(|| format!("writing {MAP_IFACE_MAC}"))?;
            if want.known != 0 {
                debug!(iface, mac = %mac_text(want.mac), "frames to this MAC are load-balanced on {iface}");
            }
            if want.vrrp_vmac != 0 {
                info!(iface, "frames to VRRP virtual MACs (use_vmac) are load-balanced on {iface}");
            }
        }
        Ok(Some(ifindex))
    }

    /// Writes the MACs of the up macvlans on `ifaces` (name, index) in `lb_local_macs`, and
    /// drops those of macvlans gone or down: the kernel takes frames to them, a VMAC's with a
    /// MAC of its own among them, so they are load-balanced too. One link dump for all; a
    /// failure is logged and changes nothing (the interface's own MAC still counts).
    fn learn_macvlans(&mut self, ifaces: &[(String, u32)]) {
        use lb_common::LocalMac;
        let macvlans = match crate::dataplane::nexthop::rtnl::Rtnl::open().and_then(|mut r| r.macvlans()) {
            Ok(m) => m,
            Err(e) => return warn!("reading the macvlans: {e:#}; their MACs are left as they were"),
        };
        let ours = |ifindex: u32| ifaces.iter().any(|(_, i)| *i == ifindex);
        let want: BTreeSet<LocalMac> = macvlans
            .into_iter()
            .filter(|(lower, _)| ours(*lower))
            .map(|(ifindex, mac)| LocalMac { ifindex, mac, pad: 0 })
            .collect();
        let mut m: HashMap<_, LocalMac, u8> =
            match map_mut(&mut self.ebpf, MAP_LOCAL_MACS).and_then(|m| Ok(HashMap::try_from(m)?)) {
                Ok(m) => m,
                Err(e) => return warn!("{MAP_LOCAL_MACS}: {e:#}"),
            };
        let have: BTreeSet<LocalMac> = m.keys().filter_map(Result::ok).filter(|k| ours(k.ifindex)).collect();
        for k in have.difference(&want) {
            if let Err(e) = m.remove(k) {
                warn!("deleting from {MAP_LOCAL_MACS}: {e}");
            }
        }
        for k in want.difference(&have) {
            let iface = ifaces.iter().find(|(_, i)| *i == k.ifindex).map_or("", |(n, _)| n.as_str());
            match m.insert(k, 1, 0) {
                Ok(()) => {
                    info!(iface, mac = %mac_text(k.mac), "frames to this macvlan's MAC are load-balanced on {iface}")
                }
                Err(e) => warn!(iface, "writing {MAP_LOCAL_MACS}: {e}"),
            }
        }
    }

    /// `learn_mac` for every interface the program is attached to (one link dump for their
    /// macvlans).
    fn learn_macs(&mut self) {
        let names: Vec<String> = self.interfaces().map(str::to_string).collect();
        let mut ifaces = Vec::new();
        for iface in names {
            match self.learn_iface_mac(&iface) {
                Ok(Some(ifindex)) => ifaces.push((iface, ifindex)),
                Ok(None) => {}
                Err(e) => warn!(iface, "reading the interface's MAC: {e:#}"),
            }
        }
        self.learn_macvlans(&ifaces);
    }

    /// Fences the services of `fences`' VIPs (VIP → `FENCE_*`) and no others, now and in
    /// every later programming.
    pub fn set_fences(&mut self, fences: &BTreeMap<IpAddr, u32>) -> Result<()> {
        if *fences != self.fences {
            for (vip, f) in fences {
                if self.fences.get(vip) != Some(f) {
                    let what = if *f == FENCE_NO_ACCEPT { "dropped (no accept mode)" } else { "passed to the kernel" };
                    debug!(%vip, "VRRP: not MASTER of this VIP here; its services' frames are {what}");
                }
            }
            for vip in self.fences.keys().filter(|v| !fences.contains_key(v)) {
                debug!(%vip, "VRRP: MASTER of this VIP here; its services are load-balanced");
            }
            // A VMAC made since the last look (a reload's) is this MASTER's to answer for at
            // once, not from the next housekeeping.
            if self.fences.keys().any(|v| !fences.contains_key(v)) {
                self.learn_macs();
            }
        }
        self.fences.clone_from(fences);
        commit::write_fences(&mut self.ebpf, &self.book, &self.fences)
    }

    /// Tells the program how it runs on `iface` (`lb_ifaces`); an adopted link keeps what
    /// the pinned map says.
    fn set_iface_flags(&mut self, iface: &str, generic: bool) -> Result<()> {
        let ifindex = nix::net::if_::if_nametoindex(iface).with_context(|| format!("no interface {iface}"))?;
        let driver = super::iface::driver(iface).unwrap_or_default();
        let flags = super::iface::flags(&driver, generic);
        if ifindex >= MAX_IFINDEX {
            warn!(iface, ifindex, "interface index beyond the data plane's table: treated as a plain native link");
            return Ok(());
        }
        let mut m: Array<_, u32> = Array::try_from(map_mut(&mut self.ebpf, MAP_IFACES)?)?;
        m.set(ifindex, flags, 0).with_context(|| format!("writing {MAP_IFACES}"))?;
        if generic {
            warn!(
                iface,
                "generic XDP: frames larger than the MTU (TSO/GSO from local senders) cannot be redirected to another \
                 interface; NAT hands them to the kernel's forwarding (which must be on), DR and TUN drop them \
                 (counted as reason_gso_dropped); use native mode where the driver has it"
            );
        }
        Ok(())
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

    /// Makes the maps hold exactly `desired` without blocking: unchanged services are not
    /// touched (no map write at all), changed ones switch atomically, removed ones
    /// disappear. A service whose other generation slot went out of use less than
    /// `GENERATION_GRACE` ago is programmed by the `tick` that `next_due` asks for.
    pub fn submit(&mut self, desired: &[DesiredService], now: Instant) -> Result<()> {
        let plan = plan::plan(&self.book, desired, now)?;
        self.pending = plan.deferred_until.map(|at| (desired.to_vec(), at));
        let handed_out = self.book.next_real;
        let committed =
            commit::commit(&mut self.ebpf, &mut self.book, &mut self.retiring, desired, &plan, &self.fences);
        if self.book.next_real != handed_out {
            let mut meta: Array<_, Meta> = Array::try_from(map_mut(&mut self.ebpf, MAP_META)?)?;
            let kept = meta.get(&0, 0).unwrap_or_default();
            let next_real = self.book.next_real;
            let layout_version = pins_layout(self.upgrade.as_ref());
            meta.set(0, Meta { layout_version, next_real, ..kept }, 0).context("writing lb_meta")?;
        }
        self.refresh_directory();
        self.refresh_nexthops();
        committed
    }

    /// Starts keeping the next-hop cache (`super::nexthop`) for the real servers programmed
    /// from now on, from the routes and neighbours of the calling thread's network namespace.
    pub fn start_nexthops(&mut self) -> Result<()> {
        if self.nexthops.is_some() {
            return Ok(());
        }
        let slots = self.nexthop_slots()?;
        self.nexthops = Some(super::nexthop::NexthopCache::start(slots)?);
        // Where the program runs first: the thread judges forwarding there before it caches.
        self.refresh_ingress();
        self.refresh_nexthops();
        Ok(())
    }

    /// The next-hop cache's maps, taken from the program (once: the cache's thread, or a
    /// test writing entries itself).
    pub fn nexthop_slots(&mut self) -> Result<super::nexthop::Slots> {
        let taken = |name: &str| anyhow!("map {name} already taken (the next-hop cache runs)");
        let hops = Array::try_from(self.ebpf.take_map(MAP_NEXTHOP).ok_or_else(|| taken(MAP_NEXTHOP))?)?;
        let sel = Array::try_from(self.ebpf.take_map(MAP_NEXTHOP_SEL).ok_or_else(|| taken(MAP_NEXTHOP_SEL))?)?;
        let lease = Array::try_from(self.ebpf.take_map(MAP_NEXTHOP_LEASE).ok_or_else(|| taken(MAP_NEXTHOP_LEASE))?)?;
        Ok(super::nexthop::Slots::new(hops, sel, lease))
    }

    /// What the next-hop cache held after its last recomputation; None when it does not run.
    pub fn nexthop_summary(&self) -> Option<super::nexthop::Summary> {
        self.nexthops.as_ref().map(|c| c.summary())
    }

    /// Reads routes and neighbours now and returns once the next-hop cache holds what they
    /// say (tests and benchmarks).
    pub fn sync_nexthops(&self) -> Result<super::nexthop::Summary> {
        self.nexthops.as_ref().ok_or_else(|| anyhow!("the next-hop cache is not running"))?.sync()
    }

    /// Tells the next-hop cache where the program runs (on attach: not on every `submit`).
    fn refresh_ingress(&mut self) {
        let Some(cache) = self.nexthops.as_mut() else { return };
        cache.set_ingress(
            self.links.iter().filter_map(|(i, _, _)| nix::net::if_::if_nametoindex(i.as_str()).ok()).collect(),
        );
    }

    /// Tells the next-hop cache which real servers the maps hold.
    fn refresh_nexthops(&mut self) {
        let targets = self.real_targets();
        if let Some(cache) = self.nexthops.as_mut() {
            cache.set_targets(targets);
        }
    }

    /// The real servers this instance programmed: id → address.
    fn real_targets(&self) -> BTreeMap<u32, IpAddr> {
        self.book.services.values().flat_map(|s| s.reals.iter().map(|(a, id)| (*id, a.ip()))).collect()
    }

    /// Has this instance's next-hop cache keep the real servers `other` programmed: for a
    /// second instance of the program on the same maps (benchmarks), which programs nothing.
    pub fn follow_nexthops_of(&mut self, other: &Self) {
        let targets = other.real_targets();
        if let Some(cache) = self.nexthops.as_mut() {
            cache.set_targets(targets);
        }
    }

    /// Tells the sync thread what the ids mean now (services and real servers as programmed).
    fn refresh_directory(&mut self) {
        if self.sync.is_none() {
            return;
        }
        let mut dir = super::ctsync::xlate::Directory::default();
        for s in self.book.services.values() {
            if let Some(d) = &s.applied {
                let reals: Vec<(SocketAddr, u32)> = s.reals.iter().map(|(a, id)| (*a, *id)).collect();
                dir.add(s.id, &s.keys, d.forward, &reals);
            }
        }
        if let Ok(mut shared) = self.sync_shared.directory.write() {
            *shared = dir;
        }
    }

    /// Starts, switches or stops connection sync (`lvs_sync_daemon`): the master sends this
    /// node's flows, a backup applies the master's (see `ctsync`).
    pub fn set_sync(&mut self, want: Option<super::SyncWant>) -> Result<()> {
        if self.sync.as_ref().map(|s| &s.want) == want.as_ref() {
            return Ok(());
        }
        if let Some(old) = self.sync.take() {
            drop(old);
            info!("connection sync stopped");
        }
        if let Some(w) = want {
            self.sync = Some(super::ctsync::start(&self.pin_dir, &w, self.sync_shared.clone())?);
            self.refresh_directory();
        }
        Ok(())
    }

    /// Whether connection sync runs.
    pub fn sync_running(&self) -> bool {
        self.sync.is_some()
    }

    /// Connection sync's role and counters.
    pub fn sync_stats(&self) -> super::ctsync::SyncStats {
        self.sync_shared.counters.snapshot(self.sync.as_ref().map(|s| &s.want))
    }

    /// When `tick` has work: a retired real server or slice whose grace period ends, or a
    /// service waiting for its generation slot.
    pub fn next_due(&self) -> Option<Instant> {
        let pending = self.pending.as_ref().map(|(_, at)| *at);
        [self.retiring.next_ready(), pending].into_iter().flatten().min()
    }

    /// When the services `submit` left for later can be programmed (by `tick`).
    pub fn deferred_until(&self) -> Option<Instant> {
        self.pending.as_ref().map(|(_, at)| *at)
    }

    /// Clears what has been retired long enough and programs the services that waited.
    pub fn tick(&mut self, now: Instant) -> Result<()> {
        let ready = self.retiring.take_ready(now);
        let reals_cleared = ready.iter().any(|r| matches!(r, retire::Retired::Real { .. }));
        commit::clear_retired(&mut self.ebpf, &mut self.book, ready)?;
        if reals_cleared {
            real_rev::write(&mut self.ebpf, &mut self.book, &self.retiring)?;
        }
        if let Some((desired, _)) = self.pending.take_if(|(_, at)| *at <= now) {
            self.submit(&desired, now)?;
        }
        self.refresh_directory();
        self.refresh_nexthops();
        Ok(())
    }

    /// `submit`, then wait until everything is in place and cleared: for callers outside
    /// the async runtime (tests, benchmarks). The daemon awaits the deferred services and
    /// leaves the retire queue to its tick.
    pub fn apply(&mut self, desired: &[DesiredService]) -> Result<()> {
        self.submit(desired, Instant::now())?;
        while let Some(due) = self.next_due() {
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            self.tick(Instant::now())?;
        }
        Ok(())
    }

    /// Whether this run created the pinned maps (rather than adopting an earlier run's).
    pub fn created_pins(&self) -> bool {
        self.created_pins
    }

    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    /// Service `id`'s counters as `lb-daemon stats` adds them up (`stats::service_totals`),
    /// from the real server ids this daemon knows it has.
    pub fn service_stats(&self, id: u32) -> Result<ServiceStats> {
        let state = self.book.services.values().find(|s| s.id == id);
        let reals = state.into_iter().flat_map(|s| s.reals.values().copied()).chain(self.retiring.reals_of(id));
        stats::service_totals(&self.ebpf, id, reals)
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

    /// Periodic upkeep: connection counts lose the flows that expired unseen
    /// (`reconcile_conns`), the real servers' neighbour entries are kept fresh (the XDP
    /// FIB lookup only finds next hops the kernel has resolved), and a trace filter whose
    /// tracer was killed is turned off.
    pub fn housekeeping(&mut self) -> Result<()> {
        self.learn_macs();
        // Retried here if it failed at start.
        let upgraded = self.finish_upgrade();
        let reconciled = self.reconcile_conns();
        let applied = self.book.services.values().filter_map(|s| s.applied.as_ref());
        commit::prime_neighbours(applied.flat_map(|d| d.reals.iter().map(|r| r.addr)));
        let traced = self.stop_orphaned_trace();
        upgraded.and(reconciled).and(traced)
    }

    /// Completes taking over the pins of an older layout, once this program is attached
    /// wherever it runs: the IPv4 flows a program of layout 9 or before left in `lb_conntrack`
    /// move into `lb_conntrack4` (`conntrack::move_flow`; a flow both programs scheduled was
    /// counted open by both: the old count goes, `lb_real_expired`), layout 10's per-service
    /// counters (carried at the adoption) are unpinned, and only then do the pins say this
    /// layout.
    pub fn finish_upgrade(&mut self) -> Result<()> {
        let Some(u) = &self.upgrade else { return Ok(()) };
        let (moved, released) = if u.from < 10 {
            conntrack::Conntrack::open(&self.pin_dir)?.move_ipv4(&u.copied)?
        } else {
            (0, Vec::new())
        };
        let (from, copied) = (u.from, u.copied.len());
        self.release_conns(released.iter().map(|rid| (*rid, 1)))?;
        let legacy = self.pin_dir.join(MAP_SVC_STATS_LAYOUT10);
        match std::fs::remove_file(&legacy) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("unpinning {}", legacy.display()));
            }
            _ => {}
        }
        let mut meta: Array<_, Meta> = Array::try_from(map_mut(&mut self.ebpf, MAP_META)?)?;
        let kept = meta.get(&0, 0)?;
        meta.set(0, Meta { layout_version: LAYOUT_VERSION, ..kept }, 0).context("writing lb_meta")?;
        info!(from, copied, moved, counted_twice = released.len(), "pinned maps upgraded to layout {LAYOUT_VERSION}");
        self.upgrade = None;
        Ok(())
    }

    /// Turns tracing off when `lb-daemon trace` died without doing so (kill -9): otherwise
    /// every matching frame would go on paying for a record nobody reads.
    fn stop_orphaned_trace(&mut self) -> Result<()> {
        let mut cfg: Array<_, lb_common::TraceCfg> = Array::try_from(map_mut(&mut self.ebpf, MAP_TRACE_CFG)?)?;
        if let Some(pid) = super::trace::clear_if_gone(&mut cfg)? {
            info!(pid, "lb-daemon trace (pid {pid}) is gone: tracing turned off");
        }
        Ok(())
    }

    /// Deletes open flows that expired in the flow tables (`conntrack`) without a FIN/RST and counts them in
    /// `lb_real_expired`, so lc/wlc/lblc stop counting them. The live counters themselves are
    /// never written here: they change under atomic adds from the data plane, and a recount
    /// written back would lose the flows opened while it ran. Only needed by lc/wlc/lblc
    /// services (walking a large table costs two syscalls per entry).
    pub fn reconcile_conns(&mut self) -> Result<()> {
        let uses_lc = self.book.services.values().any(|s| {
            s.applied.as_ref().is_some_and(|d| matches!(d.scheduler, Scheduler::Lc | Scheduler::Wlc | Scheduler::Lblc))
        });
        if !uses_lc {
            return Ok(());
        }
        let owned: HashSet<(u32, u32)> =
            self.book.services.values().flat_map(|s| s.reals.values().map(move |r| (s.id, *r))).collect();
        let now = monotonic_ns();
        let mut ct = conntrack::Conntrack::open(&self.pin_dir)?;
        // Closing flows left their real server's count at their FIN/RST already.
        let stale = |v: &lb_common::FlowValue| {
            v.state != CT_CLOSING
                && now.saturating_sub(v.last_ns) > flow_timeout_secs(v.state) * 1_000_000_000
                && owned.contains(&(v.svc_id, v.real_id))
        };
        let expired: Vec<(lb_common::FlowKey, u32)> =
            ct.entries().into_iter().filter(|(_, v)| stale(v)).map(|(k, v)| (k, v.real_id)).collect();
        let mut gone: StdHashMap<u32, u64> = StdHashMap::new();
        for (key, real) in expired {
            if !ct.get(&key).is_ok_and(|v| stale(&v)) {
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
        // The eviction count (`lb_flow_table_evictions`) takes these deletions off the inserts.
        let deleted: u64 = gone.values().sum();
        if deleted > 0 {
            let mut meta: Array<_, Meta> = Array::try_from(map_mut(&mut self.ebpf, MAP_META)?)?;
            let m = meta.get(&0, 0)?;
            meta.set(0, Meta { ct_deleted: m.ct_deleted.wrapping_add(deleted), ..m }, 0)?;
        }
        self.release_conns(gone)
    }

    /// Takes `n` open flows off each real server's live count (`(real, n)`), through
    /// `lb_real_expired` (live = `lb_real_conns` - `lb_real_expired`), which only the daemon
    /// writes, under the lock connection sync takes for it too.
    fn release_conns(&mut self, gone: impl IntoIterator<Item = (u32, u64)>) -> Result<()> {
        let lock = self.sync_shared.expired_lock.clone();
        let _held = lock.lock().map_err(|_| anyhow!("lb_real_expired lock poisoned"))?;
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
        self.sync = None;
        self.nexthops = None;
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

/// `bpf_ktime_get_coarse_ns`'s clock (CLOCK_MONOTONIC, coarse): the data plane's flow
/// timestamps are in it.
pub fn monotonic_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC_COARSE)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
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
    for name in PINNED_MAPS.iter().chain(&[MAP_SVC_STATS_LAYOUT10]) {
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
    // An older layout's `Meta` may differ in size: aya would refuse to read it as ours.
    let size = aya::maps::MapData::from_pin(&path)
        .with_context(|| format!("opening pinned map {}", path.display()))?
        .info()?
        .value_size() as usize;
    if size != std::mem::size_of::<Meta>() {
        bail!(
            "pinned maps in {} have another layout (lb_meta values of {size} bytes, this lb-daemon's are {}); \
             stop the old daemon and remove the directory to start fresh (this drops tracked flows)",
            pin_dir.display(),
            std::mem::size_of::<Meta>()
        );
    }
    let meta: Array<_, Meta> = Array::try_from(pinned(&path)?)?;
    let found = meta.get(&0, 0)?.layout_version;
    if found != LAYOUT_VERSION && !LAYOUT_UPGRADES_FROM.contains(&found) {
        bail!(
            "pinned maps in {} have layout version {found}, this lb-daemon uses {LAYOUT_VERSION}; \
             stop the old daemon and remove the directory to start fresh (this drops tracked flows)",
            pin_dir.display()
        );
    }
    Ok(())
}

/// `02:00:00:00:00:01`.
fn mac_text(mac: [u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}
