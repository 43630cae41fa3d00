//! The XDP data plane: loads lb-ebpf with its maps pinned under the pin directory, attaches
//! the program to interfaces, and keeps `lb_services` equal to the configured services.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, anyhow, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, Map, MapData, PerCpuArray},
    programs::{Xdp, XdpMode, xdp::XdpLinkId},
};
use lb_common::{
    GlobalStats, Meta, ServiceKey, ServiceStats, ServiceValue,
    consts::{LAYOUT_VERSION, MAP_META, MAP_SERVICES, MAP_STATS, MAP_SVC_STATS, MAX_SERVICES, PINNED_MAPS, PROG_XDP},
};
use tracing::{info, warn};

use super::services;

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// How XDP is attached: `Auto` tries native (driver) mode and falls back to generic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AttachMode {
    Auto,
    Native,
    Generic,
}

pub struct BpfDataplane {
    ebpf: Ebpf,
    pin_dir: PathBuf,
    links: Vec<(String, XdpLinkId)>,
    /// Service key → id, mirrored from `lb_services` (ids index the per-service arrays).
    services: BTreeMap<ServiceKey, u32>,
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
    /// Loads the programs, creating the maps under `pin_dir` or adopting the ones pinned there.
    pub fn load(object: &[u8], pin_dir: &Path) -> Result<Self> {
        ensure_bpffs(pin_dir)?;
        check_layout(pin_dir)?;
        std::fs::create_dir_all(pin_dir).with_context(|| format!("creating pin directory {}", pin_dir.display()))?;
        let paths: Vec<(&str, PathBuf)> = PINNED_MAPS.iter().map(|m| (*m, pin_dir.join(m))).collect();
        let mut loader = EbpfLoader::new();
        for (name, path) in &paths {
            loader.map_pin_path(name, path.as_path());
        }
        let mut ebpf = loader.load(object).context("loading the eBPF object (maps and programs)")?;
        let prog: &mut Xdp = ebpf
            .program_mut(PROG_XDP)
            .ok_or_else(|| anyhow!("the eBPF object has no program {PROG_XDP}"))?
            .try_into()?;
        prog.load().with_context(|| format!("the kernel refused program {PROG_XDP}"))?;

        let mut meta: Array<_, Meta> = Array::try_from(map_mut(&mut ebpf, MAP_META)?)?;
        meta.set(0, Meta { layout_version: LAYOUT_VERSION, reserved: 0 }, 0)?;
        let svc_map: HashMap<_, ServiceKey, ServiceValue> = HashMap::try_from(map_ref(&ebpf, MAP_SERVICES)?)?;
        let services = svc_map.iter().filter_map(|r| r.ok()).map(|(k, v)| (k, v.id)).collect();
        Ok(Self { ebpf, pin_dir: pin_dir.to_path_buf(), links: Vec::new(), services })
    }

    /// Attaches the XDP program to `iface`; returns the mode it got.
    pub fn attach(&mut self, iface: &str, mode: AttachMode) -> Result<&'static str> {
        let prog: &mut Xdp =
            self.ebpf.program_mut(PROG_XDP).ok_or_else(|| anyhow!("no program {PROG_XDP}"))?.try_into()?;
        let (link, got) = match mode {
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
        let link = link.with_context(|| format!("attaching XDP program to {iface}"))?;
        self.links.push((iface.to_string(), link));
        Ok(got)
    }

    /// Makes `lb_services` hold exactly `keys`. Existing services keep their ids (and
    /// counters); new ones take the lowest free id.
    pub fn set_services(&mut self, keys: &[ServiceKey]) -> Result<()> {
        let mut map: HashMap<_, ServiceKey, ServiceValue> = HashMap::try_from(map_mut(&mut self.ebpf, MAP_SERVICES)?)?;
        let stale: Vec<ServiceKey> = self.services.keys().filter(|k| !keys.contains(k)).copied().collect();
        for k in stale {
            map.remove(&k).with_context(|| format!("removing service {}", services::describe(&k)))?;
            self.services.remove(&k);
        }
        for k in keys {
            if self.services.contains_key(k) {
                continue;
            }
            let id = (0..MAX_SERVICES)
                .find(|id| !self.services.values().any(|v| v == id))
                .ok_or_else(|| anyhow!("more than {MAX_SERVICES} services"))?;
            map.insert(*k, ServiceValue { id, flags: 0 }, 0)
                .with_context(|| format!("adding service {}", services::describe(k)))?;
            self.services.insert(*k, id);
        }
        Ok(())
    }

    pub fn interfaces(&self) -> impl Iterator<Item = &str> {
        self.links.iter().map(|(i, _)| i.as_str())
    }

    /// Detaches from every interface; with `remove_pins`, also deletes the pinned maps so
    /// nothing of this daemon stays in the kernel.
    pub fn shutdown(mut self, remove_pins: bool) -> Result<()> {
        let prog: &mut Xdp =
            self.ebpf.program_mut(PROG_XDP).ok_or_else(|| anyhow!("no program {PROG_XDP}"))?.try_into()?;
        for (iface, link) in self.links.drain(..) {
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

/// Removes this project's pins from `pin_dir`, and the directory if it is then empty.
pub fn remove_pins_in(pin_dir: &Path) -> Result<()> {
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
}

/// `GlobalStats` with field names, for JSON.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GlobalStatsView(pub BTreeMap<&'static str, u64>);

pub fn read_stats(pin_dir: &Path) -> Result<StatsSnapshot> {
    let stats: PerCpuArray<_, GlobalStats> = PerCpuArray::try_from(pinned(&pin_dir.join(MAP_STATS))?)?;
    let global = GlobalStats::sum(stats.get(&0, 0)?.iter());
    let svc: HashMap<_, ServiceKey, ServiceValue> = HashMap::try_from(pinned(&pin_dir.join(MAP_SERVICES))?)?;
    let svc_stats: PerCpuArray<_, ServiceStats> = PerCpuArray::try_from(pinned(&pin_dir.join(MAP_SVC_STATS))?)?;
    let mut services = Vec::new();
    for entry in svc.iter() {
        let (key, value) = entry?;
        let s = ServiceStats::sum(svc_stats.get(&value.id, 0)?.iter());
        services.push(ServiceStatsView {
            service: services::describe(&key),
            id: value.id,
            packets: s.packets,
            bytes: s.bytes,
        });
    }
    services.sort_by_key(|s| s.id);
    Ok(StatsSnapshot { global: GlobalStatsView(global_fields(&global)), services })
}

fn global_fields(g: &GlobalStats) -> BTreeMap<&'static str, u64> {
    g.fields().collect()
}
