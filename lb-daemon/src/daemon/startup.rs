//! Start-up I/O: reading the configuration (also on SIGHUP) and starting the forwarding
//! backend the config and `--backend` ask for.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};
use tracing::{error, info, warn};

use super::node::Subsystems;
use crate::{
    config::{self, BackendKind, Loaded, Severity},
    dataplane::{
        Backend,
        bpf::{AttachMode, BpfDataplane, Sizes},
        object, services,
    },
    ipvs::IpvsBackend,
};

/// How the daemon was asked to run (the command line).
pub struct Options {
    pub config: PathBuf,
    pub pin_dir: PathBuf,
    pub bpf_object: Option<PathBuf>,
    /// Interfaces to attach XDP to; empty means every interface except loopback.
    pub interfaces: Vec<String>,
    pub attach_mode: AttachMode,
    pub dump_conf: bool,
    pub backend: BackendKind,
    pub sizes: Sizes,
    /// Where `state.json` (for `lb-daemon status`) is kept.
    pub run_dir: PathBuf,
    /// Local address of the OpenMetrics endpoint; none by default.
    pub metrics: Option<SocketAddr>,
    /// keepalived's `-P` / `-C`: run only VRRP, or only the data plane and checkers.
    pub subsystems: Subsystems,
    /// For tests of `--backend auto`: behave as if the BPF data plane could not load.
    pub simulate_no_bpf: bool,
}

/// Parses the config and logs each diagnostic; errors fail with all of them.
pub fn read_config(path: &Path, backend: BackendKind) -> Result<Loaded> {
    let loaded = config::load(path, backend)?;
    for d in &loaded.diagnostics {
        let text = loaded.sources.render(d);
        match d.severity {
            Severity::Error => error!("{text}"),
            Severity::Warning => warn!("{text}"),
        }
    }
    if loaded.has_errors() {
        bail!("{} has {} error(s); see above", path.display(), loaded.errors().count());
    }
    Ok(loaded)
}

/// Reads the `SSL` block's files into `loaded` when the checkers run (keepalived loads them
/// when its checker process starts: not at `-t`, not with `-P`); an error names the block.
pub fn load_ssl(loaded: &mut Loaded, subsystems: Subsystems) -> Result<()> {
    if !subsystems.dataplane() {
        return Ok(());
    }
    let span = loaded.config.ssl.as_ref().map(|s| s.span).unwrap_or_default();
    let at = |d: config::Diagnostic| loaded.sources.render(&d);
    match crate::check::tls::load_into(&mut loaded.config) {
        Ok(warnings) => warnings.into_iter().for_each(|w| warn!("{}", at(config::Diagnostic::warning(span, w)))),
        Err(e) => bail!("{}", at(config::Diagnostic::error(span, e))),
    }
    Ok(())
}

/// keepalived's refusal of a VRRP configuration naming interfaces this host lacks
/// (`config::validate::missing_interfaces`): an error naming each, with its location.
pub fn check_interfaces(loaded: &Loaded) -> Result<()> {
    let missing = config::validate::missing_interfaces(&loaded.config, host_interface());
    if missing.is_empty() {
        return Ok(());
    }
    let each: Vec<String> = missing.iter().map(|d| loaded.sources.render(d)).collect();
    bail!("Non-existent interface specified in configuration:\n{}", each.join("\n"))
}

/// What this network namespace has under each interface name (read once, through netlink:
/// `/sys` may show another namespace's).
pub fn host_interface() -> impl Fn(&str) -> config::validate::Iface {
    use config::validate::Iface;
    let mut seen = std::collections::HashMap::new();
    if let Ok(all) = nix::ifaddrs::getifaddrs() {
        for a in all {
            let lo = a.flags.contains(nix::net::if_::InterfaceFlags::IFF_LOOPBACK);
            seen.insert(a.interface_name, if lo { Iface::Loopback } else { Iface::Present });
        }
    }
    move |name: &str| seen.get(name).copied().unwrap_or(Iface::Missing)
}

/// Every interface in this network namespace except loopback: a keepalived.conf says nothing
/// about XDP, and a load balancer forwards between all its links.
pub fn default_interfaces() -> Result<Vec<String>> {
    let list = nix::net::if_::if_nameindex().context("listing network interfaces")?;
    Ok(list.iter().map(|i| i.name().to_string_lossy().into_owned()).filter(|n| n != "lo").collect())
}

/// Starts the backend the config and `--backend` ask for. `auto` takes the BPF data plane
/// when the config needs nothing only IPVS has and the kernel loads and attaches it, and
/// otherwise falls back to IPVS, saying why in one line.
pub fn start_backend(opts: &Options, cfg: &config::Config) -> Result<Box<dyn Backend>> {
    let ipvs = || IpvsBackend::open(&cfg.global, !cfg.virtual_servers.is_empty());
    let bpf = || {
        let g = &cfg.global;
        if g.lvs_flush || g.lvs_flush_on_stop != config::FlushOnStop::No {
            warn!(
                "lvs_flush / lvs_flush_on_stop act on the kernel's IPVS table, which the XDP data plane does                  not use: its tables are rebuilt from the config at start and removed at stop"
            );
        }
        start_bpf(opts)
    };
    match cfg.global.lb_backend.unwrap_or_default() {
        BackendKind::Bpf => Ok(Box::new(bpf()?)),
        BackendKind::Ipvs => Ok(Box::new(ipvs().context("starting the IPVS backend")?)),
        BackendKind::Auto => {
            let why = if let Some(why) = services::needs_ipvs(cfg) {
                why
            } else if opts.simulate_no_bpf {
                "the BPF data plane is unavailable (simulated by --simulate-no-bpf)".to_string()
            } else {
                match bpf() {
                    Ok(dp) => return Ok(Box::new(dp)),
                    // An earlier run's pinned data plane is still there (and may be
                    // forwarding): IPVS beside it would see none of the traffic.
                    Err(e) if opts.pin_dir.join(lb_common::consts::MAP_META).exists() => {
                        return Err(e.context(format!(
                            "the BPF data plane pinned at {} could not be taken over; not falling back to IPVS \
                             while it stays (remove the pins to let auto choose IPVS)",
                            opts.pin_dir.display()
                        )));
                    }
                    Err(e) => format!("the BPF data plane cannot run here: {e:#}"),
                }
            };
            match ipvs() {
                Ok(b) => {
                    warn!("backend auto: using IPVS because {why}");
                    Ok(Box::new(b))
                }
                Err(e) => bail!("no forwarding backend can run: BPF: {why}; IPVS: {e:#}"),
            }
        }
    }
}

/// Loads the XDP program and attaches it everywhere it should run; on any failure nothing
/// stays attached or pinned.
fn start_bpf(opts: &Options) -> Result<BpfDataplane> {
    let object = object::load(opts.bpf_object.as_deref())?;
    let mut dp = BpfDataplane::load(&object, &opts.pin_dir, opts.sizes)?;
    let attached = (|| {
        let interfaces = if opts.interfaces.is_empty() { default_interfaces()? } else { opts.interfaces.clone() };
        if interfaces.is_empty() {
            bail!("no interface to attach XDP to (only loopback here); name one with --interface");
        }
        for iface in &interfaces {
            let mode = dp.attach(iface, opts.attach_mode)?;
            info!(iface, mode, "XDP program attached");
        }
        dp.drop_stale_links()?;
        // Pins of an older layout: at once, so the flows its program opened meanwhile move
        // before their next packets meet this program (else every housekeeping retries).
        if let Err(e) = dp.finish_upgrade() {
            warn!("upgrading the pinned maps: {e:#}");
        }
        dp.start_nexthops()
    })();
    match attached {
        Ok(()) => Ok(dp),
        // Pins this run created go; adopted ones stay, so what an earlier run left
        // forwarding keeps forwarding (the error says what failed).
        Err(e) if dp.created_pins() => {
            if let Err(c) = dp.shutdown(true) {
                warn!("cleaning up the BPF data plane: {c:#}");
            }
            Err(e)
        }
        Err(e) => Err(e),
    }
}
