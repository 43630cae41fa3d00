//! `lb-daemon decap -i IFACE`: for real servers of TUN services whose kernel cannot
//! decapsulate IPIP / IPv6-in-IPv6 itself, runs the `lb-decap` object's `lb_decap` TC program on the
//! interface's ingress until stopped (SIGTERM/SIGINT detach it).

use anyhow::{Context as _, Result, anyhow};
use aya::programs::{SchedClassifier, TcAttachType, tc};
use lb_common::consts::PROG_DECAP;
use tracing::info;

pub async fn run(object: &[u8], interfaces: &[String]) -> Result<()> {
    if interfaces.is_empty() {
        return Err(anyhow!("name the interface(s) tunnelled packets arrive on with -i"));
    }
    let mut ebpf = aya::Ebpf::load(object).context("loading the eBPF object")?;
    let prog: &mut SchedClassifier = ebpf
        .program_mut(PROG_DECAP)
        .ok_or_else(|| anyhow!("the eBPF object has no program {PROG_DECAP}"))?
        .try_into()?;
    prog.load().with_context(|| format!("the kernel refused program {PROG_DECAP}"))?;
    for iface in interfaces {
        // Needed by the netlink attach of older kernels; tcx (6.6+) does not use it.
        let _ = tc::qdisc_add_clsact(iface);
        prog.attach(iface, TcAttachType::Ingress).with_context(|| format!("attaching {PROG_DECAP} to {iface}"))?;
        info!(iface, "decapsulating IPIP and IPv6-in-IPv6 on ingress");
    }
    info!("lb-daemon decap ready");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    info!("stopping: decapsulation detached");
    Ok(())
}
