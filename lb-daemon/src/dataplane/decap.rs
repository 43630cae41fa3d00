//! `lb-daemon decap --interface IFACE --from LB_ADDRESS`: for real servers of TUN services whose kernel
//! cannot decapsulate IPIP / IPv6-in-IPv6 itself, runs the `lb-decap` object's `lb_decap` TC
//! program on the interfaces' ingress until stopped (SIGTERM/SIGINT detach it). It
//! decapsulates only packets whose outer source is a load balancer named with `--from` and
//! whose inner destination is a VIP of this host (`--vip`, or the addresses on `lo`,
//! followed as they change); the rest is dropped and counted.

use std::{
    collections::BTreeSet,
    net::IpAddr,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow};
use aya::{
    Ebpf,
    maps::{HashMap, MapData, PerCpuArray},
    programs::{SchedClassifier, TcAttachType, tc},
};
use lb_common::{
    DecapAddr, DecapStats,
    consts::{FAMILY_V4, FAMILY_V6, MAP_DECAP_FROM, MAP_DECAP_STATS, MAP_DECAP_VIPS, PROG_DECAP},
};
use tracing::{info, warn};

/// How often the VIPs on `lo` are read again.
const FOLLOW_LO: Duration = Duration::from_secs(2);
/// How often changed counters are logged.
const LOG_COUNTERS: Duration = Duration::from_secs(10);

/// What `lb-daemon decap` was asked to do.
pub struct Options<'a> {
    pub interfaces: &'a [String],
    /// The load balancers' tunnel source addresses.
    pub from: &'a [IpAddr],
    /// The VIPs; empty: follow the addresses on `lo`.
    pub vips: &'a [IpAddr],
}

pub async fn run(object: &[u8], opts: Options<'_>) -> Result<()> {
    if opts.interfaces.is_empty() {
        return Err(anyhow!("name the interface(s) tunnelled packets arrive on with -i"));
    }
    if opts.from.is_empty() {
        return Err(anyhow!(
            "name the load balancers' tunnel source addresses with --from ADDRESS: tunnelled packets from any \
             other source are dropped (anyone reaching this host could otherwise inject packets with any source)"
        ));
    }
    let mut ebpf = aya::Ebpf::load(object).context("loading the eBPF object")?;
    sync(&mut ebpf, MAP_DECAP_FROM, &allow_list(opts.from.iter().copied()))?;
    let mut vips = current_vips(opts.vips)?;
    sync(&mut ebpf, MAP_DECAP_VIPS, &vips)?;
    let prog: &mut SchedClassifier = ebpf
        .program_mut(PROG_DECAP)
        .ok_or_else(|| anyhow!("the eBPF object has no program {PROG_DECAP}"))?
        .try_into()?;
    super::object::load_program(PROG_DECAP, || prog.load())?;
    for iface in opts.interfaces {
        // Needed by the netlink attach of older kernels; tcx (6.6+) does not use it.
        let _ = tc::qdisc_add_clsact(iface);
        prog.attach(iface, TcAttachType::Ingress).with_context(|| format!("attaching {PROG_DECAP} to {iface}"))?;
        info!(iface, "decapsulating IPIP and IPv6-in-IPv6 on ingress");
    }
    info!(from = ?opts.from, vips = ?vips.iter().map(address).collect::<Vec<_>>(), "lb-daemon decap ready");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut tick = tokio::time::interval(FOLLOW_LO);
    let (mut logged, mut last_log) = (DecapStats::default(), Instant::now());
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = tick.tick() => {}
        }
        if opts.vips.is_empty() {
            match current_vips(opts.vips) {
                Ok(now) if now != vips => {
                    sync(&mut ebpf, MAP_DECAP_VIPS, &now)?;
                    info!(vips = ?now.iter().map(address).collect::<Vec<_>>(), "VIPs on lo changed");
                    vips = now;
                }
                Ok(_) => {}
                Err(e) => warn!("reading the addresses on lo: {e:#}"),
            }
        }
        if last_log.elapsed() >= LOG_COUNTERS {
            let now = counters(&ebpf)?;
            if now != logged {
                log_counters(&now);
                logged = now;
            }
            last_log = Instant::now();
        }
    }
    log_counters(&counters(&ebpf)?);
    info!("stopping: decapsulation detached");
    Ok(())
}

/// The allow-list entries for `addrs`.
pub fn allow_list(addrs: impl IntoIterator<Item = IpAddr>) -> BTreeSet<DecapAddr> {
    addrs
        .into_iter()
        .map(|ip| {
            let mut addr = [0u8; 16];
            let family = match ip {
                IpAddr::V4(v4) => {
                    addr[..4].copy_from_slice(&v4.octets());
                    FAMILY_V4
                }
                IpAddr::V6(v6) => {
                    addr = v6.octets();
                    FAMILY_V6
                }
            };
            DecapAddr { addr, family, pad: [0; 7] }
        })
        .collect()
}

fn address(a: &DecapAddr) -> IpAddr {
    if a.family == FAMILY_V4 {
        IpAddr::from([a.addr[0], a.addr[1], a.addr[2], a.addr[3]])
    } else {
        IpAddr::from(a.addr)
    }
}

/// The VIPs: those given, or the non-loopback addresses on `lo`, where real servers of TUN
/// (and DR) services hold them.
fn current_vips(given: &[IpAddr]) -> Result<BTreeSet<DecapAddr>> {
    if !given.is_empty() {
        return Ok(allow_list(given.iter().copied()));
    }
    let on_lo = nix::ifaddrs::getifaddrs()
        .context("listing interface addresses")?
        .filter(|a| a.interface_name == "lo")
        .filter_map(|a| a.address)
        .filter_map(|s| {
            s.as_sockaddr_in()
                .map(|v4| IpAddr::V4(v4.ip()))
                .or_else(|| s.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
        })
        .filter(|ip| !ip.is_loopback());
    Ok(allow_list(on_lo))
}

/// Makes map `name` hold exactly `want`.
fn sync(ebpf: &mut Ebpf, name: &str, want: &BTreeSet<DecapAddr>) -> Result<()> {
    let map = ebpf.map_mut(name).ok_or_else(|| anyhow!("the eBPF object has no map {name}"))?;
    let mut m: HashMap<&mut MapData, DecapAddr, u8> = HashMap::try_from(map)?;
    let have: BTreeSet<DecapAddr> = m.keys().collect::<Result<_, _>>().with_context(|| format!("reading {name}"))?;
    for gone in have.difference(want) {
        m.remove(gone).with_context(|| format!("updating {name}"))?;
    }
    for new in want.difference(&have) {
        m.insert(new, 1, 0).with_context(|| format!("updating {name} (at most 1,024 addresses)"))?;
    }
    Ok(())
}

fn counters(ebpf: &Ebpf) -> Result<DecapStats> {
    let map = ebpf.map(MAP_DECAP_STATS).ok_or_else(|| anyhow!("the eBPF object has no map {MAP_DECAP_STATS}"))?;
    let m: PerCpuArray<&MapData, DecapStats> = PerCpuArray::try_from(map)?;
    Ok(m.get(&0, 0)?.iter().fold(DecapStats::default(), |a, s| DecapStats {
        decapsulated: a.decapsulated + s.decapsulated,
        foreign_source: a.foreign_source + s.foreign_source,
        foreign_vip: a.foreign_vip + s.foreign_vip,
        fragment: a.fragment + s.fragment,
    }))
}

fn log_counters(s: &DecapStats) {
    info!(
        decapsulated = s.decapsulated,
        dropped_foreign_source = s.foreign_source,
        dropped_foreign_vip = s.foreign_vip,
        dropped_fragment = s.fragment,
        "decap counters"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_keys_are_as_the_program_builds_them() {
        let l = allow_list(["198.51.100.1".parse().unwrap(), "2001:db8::1".parse().unwrap()]);
        let v: Vec<_> = l.iter().collect();
        assert_eq!(v.len(), 2);
        let v4 = v.iter().find(|a| a.family == FAMILY_V4).unwrap();
        assert_eq!(v4.addr, [198, 51, 100, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(address(v4), "198.51.100.1".parse::<IpAddr>().unwrap());
        let v6 = v.iter().find(|a| a.family == FAMILY_V6).unwrap();
        assert_eq!(address(v6), "2001:db8::1".parse::<IpAddr>().unwrap());
    }
}
