//! The running daemon: load config, program the data plane, react to signals.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use sd_notify::NotifyState;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};

use crate::{
    config::{self, BackendKind, Loaded, Severity},
    dataplane::{
        bpf::{AttachMode, BpfDataplane},
        object, services,
    },
};

pub struct Options {
    pub config: PathBuf,
    pub pin_dir: PathBuf,
    pub bpf_object: Option<PathBuf>,
    /// Interfaces to attach XDP to; empty means every interface except loopback.
    pub interfaces: Vec<String>,
    pub attach_mode: AttachMode,
    pub dump_conf: bool,
    pub backend: BackendKind,
    pub sizes: crate::dataplane::bpf::Sizes,
}

/// Tells systemd (`Type=notify`) where we are; a no-op without `NOTIFY_SOCKET`.
fn notify(state: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        warn!("sd_notify failed: {e}");
    }
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

/// Every interface in this network namespace except loopback: a keepalived.conf says nothing
/// about XDP, and a load balancer forwards between all its links.
pub fn default_interfaces() -> Result<Vec<String>> {
    let list = nix::net::if_::if_nameindex().context("listing network interfaces")?;
    Ok(list.iter().map(|i| i.name().to_string_lossy().into_owned()).filter(|n| n != "lo").collect())
}

fn program(dp: &mut BpfDataplane, loaded: &Loaded) -> Result<()> {
    let (desired, skipped) = services::desired(&loaded.config);
    for s in skipped {
        warn!("{s}");
    }
    dp.apply(&desired)
}

/// What the config asks for that this version parses but does not act on yet, each located:
/// a keepalived.conf is accepted whole, and nothing in it is dropped silently.
pub fn not_acted_on(loaded: &Loaded) -> Vec<String> {
    use crate::config::{Diagnostic, Span};
    let c = &loaded.config;
    let mut items: Vec<(Span, String)> = Vec::new();
    for v in &c.vrrp_instances {
        items.push((
            v.span,
            format!("vrrp_instance {}: VRRP is not implemented yet; its addresses are not managed", v.name),
        ));
    }
    for s in &c.vrrp_scripts {
        items.push((s.span, format!("vrrp_script {}: not run (VRRP is not implemented yet)", s.name)));
    }
    for g in &c.vrrp_sync_groups {
        items.push((g.span, format!("vrrp_sync_group {}: not run (VRRP is not implemented yet)", g.name)));
    }
    for a in &c.static_ipaddress {
        items.push((a.span, format!("static_ipaddress {}: not applied yet", a.addr)));
    }
    for r in &c.static_routes {
        items.push((r.span, format!("static_routes {}/{}: not applied yet", r.dest, r.prefix)));
    }
    for vs in &c.virtual_servers {
        for rs in &vs.real_servers {
            if !rs.checkers.is_empty() || rs.notify_up.is_some() || rs.notify_down.is_some() {
                items.push((
                    rs.span,
                    format!(
                        "real_server {}: health checks and notify scripts are not run yet; it counts as up",
                        rs.addr
                    ),
                ));
            }
        }
        if vs.quorum_up.is_some()
            || vs.quorum_down.is_some()
            || vs.hysteresis != 0
            || vs.ha_suspend
            || vs.alpha
            || vs.omega
        {
            items.push((
                vs.span,
                "virtual_server: quorum_up/down scripts, ha_suspend, alpha and omega wait for the health checkers"
                    .to_string(),
            ));
        }
    }
    items.into_iter().map(|(span, msg)| loaded.sources.render(&Diagnostic::warning(span, msg))).collect()
}

pub async fn run(opts: Options) -> Result<()> {
    // Handlers first: a SIGHUP arriving while we start must not take the default action
    // (terminate) once a supervisor sees us as ready.
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let loaded = read_config(&opts.config, opts.backend)?;
    for w in not_acted_on(&loaded) {
        warn!("{w}");
    }
    if loaded.config.global.lb_backend == Some(BackendKind::Ipvs) {
        bail!("the IPVS backend is not implemented yet; run with --backend bpf (or auto)");
    }
    if opts.dump_conf {
        info!("configuration:\n{:#?}", loaded.config);
    }
    let object = object::load(opts.bpf_object.as_deref())?;
    let mut dp = BpfDataplane::load(&object, &opts.pin_dir, opts.sizes)?;
    let interfaces = if opts.interfaces.is_empty() { default_interfaces()? } else { opts.interfaces.clone() };
    if interfaces.is_empty() {
        bail!("no interface to attach XDP to (only loopback here); name one with --interface");
    }
    for iface in &interfaces {
        let mode = dp.attach(iface, opts.attach_mode)?;
        info!(iface, mode, "XDP program attached");
    }
    program(&mut dp, &loaded)?;
    let mut current = loaded;
    info!(pin_dir = %opts.pin_dir.display(), "lb-daemon ready");
    notify(&[NotifyState::Ready, NotifyState::Status("forwarding")]);

    // lc/wlc/lblc counts drift as flows expire unseen; the neighbour cache must keep the
    // real servers (the XDP FIB lookup only finds what the kernel has resolved).
    let mut housekeeping = tokio::time::interval(std::time::Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = hup.recv() => {
                info!(config = %opts.config.display(), "SIGHUP: reloading");
                notify(&[NotifyState::Reloading]);
                // An invalid config leaves the running one untouched.
                match read_config(&opts.config, opts.backend) {
                    Ok(new) => match program(&mut dp, &new) {
                        Ok(()) => {
                            current = new;
                            info!("reload applied");
                        }
                        Err(e) => error!("reload failed: {e:#}"),
                    },
                    Err(e) => error!("reload refused, keeping the running configuration: {e:#}"),
                }
                notify(&[NotifyState::Ready]);
            }
            _ = housekeeping.tick() => {
                if let Err(e) = dp.reconcile_conns() {
                    warn!("recounting connections failed: {e:#}");
                }
                let (desired, _) = services::desired(&current.config);
                crate::dataplane::bpf::prime_neighbours(desired.iter().flat_map(|d| d.reals.iter().map(|r| r.addr)));
            }
            _ = term.recv() => { info!("SIGTERM: stopping"); break; }
            _ = int.recv() => { info!("SIGINT: stopping"); break; }
        }
    }
    notify(&[NotifyState::Stopping]);
    dp.shutdown(true)?;
    info!("stopped; XDP detached and pins removed");
    Ok(())
}
