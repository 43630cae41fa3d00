//! Cost per packet of `lb_xdp`, through `BPF_PROG_TEST_RUN` on one CPU: every scheduler ×
//! NAT/DR/TUN × IPv4/IPv6, for a tracked (established) flow and for a new flow, with the
//! connection table pre-filled, beside XDP_PASS / XDP_DROP baseline programs. Each run gets a
//! fresh copy of its input (`repeat = 1`), and the kernel's own timing of each run is used.

use std::net::{IpAddr, SocketAddr};

use anyhow::{Context as _, Result, bail};
use lb_common::consts::{PROG_BENCH_DROP, PROG_BENCH_PASS, PROG_XDP};
use lb_daemon::{
    config::{ForwardMethod, Scheduler},
    dataplane::services::{DesiredReal, DesiredService},
};
use serde_json::json;

use crate::{Stats, stats};
use lb_tests::{
    addrs::{CLIENT4, CLIENT6, VIP4, VIP6, backend4, backend6},
    fixture::{Fixture, XDP_REDIRECT, XDP_TX, bpf_schedulers, set_client_mac, set_real_macs, tcp_service},
    packets::{CLIENT_MAC, L2, L4, LB_MAC, mac_text, real_mac, v4, v6, with_macs},
};

/// NAT IPv4 with one real server (so a reply's source is known): the new-connection case.
fn one_real_nat(sched: Scheduler) -> DesiredService {
    tcp_service("bench", VIP4.into(), 80, sched, ForwardMethod::Nat, reals(&[backend4(0).into()]))
}

/// Real servers on port 80, weight 1, the service's forwarding method.
fn reals(addrs: &[IpAddr]) -> Vec<DesiredReal> {
    addrs
        .iter()
        .map(|r| DesiredReal { addr: SocketAddr::new(*r, 80), weight: 1, fwd: None, u_thresh: 0, l_thresh: 0 })
        .collect()
}

/// A new NAT connection's three packets through the load balancer, from client port `sport`:
/// the client's SYN, the real server's SYN-ACK (to be rewritten to come from the VIP), the
/// client's first ACK. The client is the one the fixture has a neighbour entry for (the
/// SYN-ACK goes back to it); the callers' ports are used by no other case.
fn connection(sport: u16) -> [Vec<u8>; 3] {
    let last = CLIENT4.octets()[3];
    let synack = v4(L2::Plain, backend4(0), CLIENT4, L4::TcpSynAck { sport: 80, dport: sport }, b"");
    [
        frame(false, last, L4::TcpSyn { sport, dport: 80 }),
        with_macs(synack, REAL_MAC, LB_MAC),
        frame(false, last, L4::TcpAck { sport, dport: 80 }),
    ]
}

/// A whole new NAT connection as its three packets through the load balancer, timed cold:
/// the client's SYN, the real server's SYN-ACK (rewritten to come from the VIP), the
/// client's first ACK. Returns the median over connections of the three runs' sum.
/// `one_real_nat` must be applied; `first_port` starts the client ports this call uses.
fn new_connection_ns(fx: &mut Fixture, runs: usize, first_port: u16) -> Result<Vec<f64>> {
    // One connection first: each of its packets must be forwarded, or the figure means nothing.
    for (i, f) in connection(first_port - 1).iter().enumerate() {
        let (action, _) = fx.run(f)?;
        if action != XDP_TX {
            bail!("new NAT connection: packet {i} of SYN / SYN-ACK / ACK was not forwarded ({action})");
        }
    }
    let frames: Vec<Vec<u8>> = (0..runs).flat_map(|i| connection(first_port + i as u16)).collect();
    let t = fx.time_runs(PROG_XDP, &frames)?;
    Ok(t.chunks(3).map(|c| c.iter().sum::<u64>() as f64).collect())
}

/// One round of the warm new-connection figure: `repeat` new NAT connections (client ports
/// `first_port..`), their SYNs, then their SYN-ACKs, then their first ACKs, each packet kind
/// a hot run of `bench_fresh` (a fresh port per run, warm caches) through `lb_xdp` and,
/// as its baseline, through `bench_pass`, the baseline first in even rounds. Returns each
/// kind's difference (`lb_xdp` - `bench_pass`, ns per packet). Refused unless every run was
/// forwarded as NAT (the SYNs and ACKs) or as a NAT reply (the SYN-ACKs), and was new: each
/// rr SYN opened a half-open flow, each ACK an established one. `one_real_nat(sched)` must be
/// applied.
fn new_connection_warm(
    fx: &mut Fixture,
    sched: Scheduler,
    first_port: u16,
    repeat: u32,
    round: usize,
) -> Result<[f64; 3]> {
    let [syn, synack, ack] = connection(first_port);
    // A hashing scheduler's SYN opens nothing (`ct::opens_without_state`).
    let syn_opens: &[&str] = if sched == Scheduler::Rr { &["halfopen_inserts"] } else { &[] };
    let kinds = [
        ("SYN", syn, false, "reason_fwd_nat", syn_opens),
        ("SYN-ACK", synack, true, "reason_nat_reply", &[][..]),
        ("ACK", ack, false, "reason_fwd_nat", &["ct_inserts"]),
    ];
    let mut over = [0.0; 3];
    for (k, (what, template, dport, counter, opens)) in kinds.into_iter().enumerate() {
        let counts = |fx: &Fixture| -> Result<Vec<u64>> {
            let s = fx.stats()?;
            std::iter::once(counter)
                .chain(opens.iter().copied())
                .map(|c| s.fields().find(|(n, _)| *n == c).map(|(_, v)| v).context("no such counter"))
                .collect()
        };
        let time_lb = |fx: &mut Fixture| -> Result<f64> {
            let before = counts(fx)?;
            let (ns, action, _) = fx.time_fresh(PROG_XDP, &template, dport, repeat)?;
            let moved: Vec<u64> = counts(fx)?.iter().zip(&before).map(|(a, b)| a - b).collect();
            if action != XDP_TX || moved.iter().any(|m| *m != u64::from(repeat)) {
                bail!(
                    "warm new connections, {what}: of {repeat} runs, {moved:?} counted in {counter} {opens:?}, \
                     last action {action}"
                );
            }
            Ok(ns)
        };
        over[k] = if round.is_multiple_of(2) {
            let pass = fx.time_fresh(PROG_BENCH_PASS, &template, dport, repeat)?.0;
            time_lb(fx)? - pass
        } else {
            let lb = time_lb(fx)?;
            lb - fx.time_fresh(PROG_BENCH_PASS, &template, dport, repeat)?.0
        };
    }
    Ok(over)
}

/// Any MAC for frames from the real server: the program does not look at it.
const REAL_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x21];

fn service(sched: Scheduler, fwd: ForwardMethod, v6: bool) -> DesiredService {
    let (vip, addrs): (IpAddr, [IpAddr; 2]) = if v6 {
        (VIP6.into(), [backend6(0).into(), backend6(1).into()])
    } else {
        (VIP4.into(), [backend4(0).into(), backend4(1).into()])
    };
    tcp_service("bench", vip, 80, sched, fwd, reals(&addrs))
}

/// A frame from client number `client` (one per case, so no case meets another's flows).
fn frame(is_v6: bool, client: u8, l4: L4) -> Vec<u8> {
    if is_v6 {
        let mut c = CLIENT6.segments();
        c[7] = u16::from(client);
        v6(L2::Plain, c.into(), VIP6, l4, b"")
    } else {
        let mut c = CLIENT4.octets();
        c[3] = client;
        v4(L2::Plain, c.into(), VIP4, l4, b"")
    }
}

fn method_name(m: ForwardMethod) -> &'static str {
    match m {
        ForwardMethod::Nat => "NAT",
        ForwardMethod::Dr => "DR",
        ForwardMethod::Tun => "TUN",
    }
}

/// Pins this thread (and the fixture threads it starts) to CPU 0 until dropped; the
/// benchmarks after this one (and the processes they start) get every CPU back.
struct PinnedCpu0(nix::sched::CpuSet);

impl PinnedCpu0 {
    fn new() -> Result<Self> {
        let me = nix::unistd::Pid::from_raw(0);
        let old = nix::sched::sched_getaffinity(me)?;
        let mut set = nix::sched::CpuSet::new();
        set.set(0)?;
        nix::sched::sched_setaffinity(me, &set).context("pinning to CPU 0")?;
        Ok(Self(old))
    }
}

impl Drop for PinnedCpu0 {
    fn drop(&mut self) {
        let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &self.0);
    }
}

/// A hot run of `frame` (`time_repeat`), refused unless every run took the tracked path: the
/// last run forwarded (XDP_TX), to the load balancer's MAC, and (an even count of runs) the
/// frame came back to its first destination.
fn hot_case(fx: &mut Fixture, what: &str, frame: &[u8], repeat: u32) -> Result<f64> {
    let (ns, action, out) = fx.time_repeat(PROG_XDP, frame, repeat)?;
    // XDP_TX back out of the ingress interface; the redirect case leaves by another.
    let forwarded = if what.starts_with("DR by redirect") { XDP_REDIRECT } else { XDP_TX };
    if action != forwarded || out.get(..6) != Some(&LB_MAC[..]) || out.get(30..34) != frame.get(30..34) {
        bail!(
            "hot {what}: the re-run frame left the tracked path (last action {action}, destination MAC {:02x?})",
            out.get(..6)
        );
    }
    Ok(ns)
}

/// Hot rounds of one case: per round, XDP_PASS, the program with its next-hop cache, the
/// instance without, and (`LB_BENCH_BASELINE_OBJECT`) another build of the program with its
/// own cache, in an order that rotates between rounds (none always runs first or last).
struct HotRounds {
    pass: Vec<f64>,
    cached: Vec<f64>,
    fib: Vec<f64>,
    base: Vec<f64>,
}

impl HotRounds {
    fn over(&self, v: &[f64]) -> Stats {
        let d: Vec<f64> = v.iter().zip(&self.pass).map(|(x, p)| x - p).collect();
        stats(&d)
    }

    fn over_pass(&self) -> Stats {
        self.over(&self.cached)
    }

    fn fib_over_pass(&self) -> Stats {
        self.over(&self.fib)
    }

    /// The baseline build's figure, and how much slower it was than this build's, paired by
    /// round (None without a baseline).
    fn base_over_pass(&self) -> Option<(Stats, Stats)> {
        if self.base.is_empty() {
            return None;
        }
        let d: Vec<f64> = self.base.iter().zip(&self.cached).map(|(b, c)| b - c).collect();
        Some((self.over(&self.base), stats(&d)))
    }
}

/// `median [min, max]`.
fn shown(s: &Stats) -> String {
    format!("{:.0} [{:.0}, {:.0}]", s.median, s.min, s.max)
}

/// The program instances a hot round times.
struct Instances<'a> {
    fx: &'a mut Fixture,
    fib: &'a mut Fixture,
    base: Option<&'a mut Fixture>,
}

fn hot_rounds(
    n: &mut Instances,
    what: &str,
    frame: &[u8],
    pass_frame: &[u8],
    repeat: u32,
    rounds: usize,
) -> Result<HotRounds> {
    let mut r = HotRounds { pass: Vec::new(), cached: Vec::new(), fib: Vec::new(), base: Vec::new() };
    let kinds = if n.base.is_some() { 3 } else { 2 };
    for i in 0..rounds {
        r.pass.push(n.fx.time_repeat(PROG_BENCH_PASS, pass_frame, repeat)?.0);
        for k in 0..kinds {
            match (i + k) % kinds {
                0 => r.cached.push(hot_case(n.fx, what, frame, repeat)?),
                1 => r.fib.push(hot_case(n.fib, &format!("{what} by the FIB"), frame, repeat)?),
                _ => {
                    let base = n.base.as_deref_mut().context("no baseline instance")?;
                    r.base.push(hot_case(base, &format!("{what} by the baseline object"), frame, repeat)?)
                }
            }
        }
    }
    Ok(r)
}

/// Tracked packets over many flows, cold: `flows` established flows of one service (rr, IPv4,
/// `fwd`) from client number `client` have their ACKs timed in turn, so each run meets
/// another flow's entry, beside one flow's ACK timed as often, in blocks XDP_PASS, one, many,
/// many, one, XDP_PASS. Refused unless every timed run was an established hit.
struct ManyFlows {
    pass: f64,
    one: f64,
    many: f64,
}

fn many_flows(fx: &mut Fixture, fwd: ForwardMethod, client: u8, flows: usize) -> Result<ManyFlows> {
    fx.apply(&[service(Scheduler::Rr, fwd, false)])?;
    let ack = |i: usize| frame(false, client, L4::TcpAck { sport: 3000 + i as u16, dport: 80 });
    for i in 0..flows {
        for f in [frame(false, client, L4::TcpSyn { sport: 3000 + i as u16, dport: 80 }), ack(i)] {
            let (action, _) = fx.run(&f)?;
            if action != XDP_TX {
                bail!("{} many flows: opening flow {i} was not forwarded ({action})", method_name(fwd));
            }
        }
    }
    let many: Vec<Vec<u8>> = (0..flows).map(ack).collect();
    // XDP_PASS runs on the same frames as the one-flow blocks.
    let one = vec![ack(0); flows];
    let hits_before = fx.stats()?.flows_hit;
    let (mut pass, mut t_one, mut t_many) = (Vec::new(), Vec::new(), Vec::new());
    for block in ["pass", "one", "many", "many", "one", "pass"] {
        let (prog, frames, into) = match block {
            "pass" => (PROG_BENCH_PASS, &one, &mut pass),
            "one" => (PROG_XDP, &one, &mut t_one),
            _ => (PROG_XDP, &many, &mut t_many),
        };
        into.extend(fx.time_runs(prog, frames)?.into_iter().map(|n| n as f64));
    }
    let hits = fx.stats()?.flows_hit - hits_before;
    if hits != 4 * flows as u64 {
        bail!("{} many flows: {hits} of {} timed runs were established hits", method_name(fwd), 4 * flows);
    }
    Ok(ManyFlows { pass: stats(&pass).median, one: stats(&t_one).median, many: stats(&t_many).median })
}

/// `LB_BENCH_BASELINE_OBJECT`: another build of `lb-xdp` (e.g. the previous commit's) to time
/// in the same hot rounds, on the same maps, with its own next-hop cache.
fn baseline_object() -> Option<std::path::PathBuf> {
    std::env::var_os("LB_BENCH_BASELINE_OBJECT").map(Into::into)
}

/// Refuses to time the cached path unless the next-hop cache holds `n` real servers.
fn require_cached(fx: &Fixture, n: usize) -> Result<()> {
    let s = fx.sync_nexthops()?;
    if s.cached != n {
        bail!("the next-hop cache holds {} real servers, not {n}: {:?}", s.cached, s.to_fib);
    }
    Ok(())
}

/// Median nanoseconds of `runs` runs of `prog` on `frames` (cycled).
fn median_ns(fx: &mut Fixture, prog: &str, frames: &[Vec<u8>]) -> Result<(f64, f64, f64)> {
    let t = fx.time_runs(prog, frames)?;
    let v: Vec<f64> = t.iter().map(|n| *n as f64).collect();
    let s = stats(&v);
    // Spread as the inter-quartile range: single runs are at the timer's mercy.
    let mut sorted = v.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    Ok((s.median, sorted[sorted.len() / 4], sorted[sorted.len() * 3 / 4]))
}

pub fn per_packet(quick: bool, out: &mut dyn std::io::Write) -> Result<serde_json::Value> {
    let _pinned = PinnedCpu0::new()?;
    let runs = if quick { 300 } else { 2000 };
    let fills: &[u32] = if quick { &[1_000] } else { &[1_000, 100_000, 1_000_000] };
    let all = bpf_schedulers();
    let scheds: &[Scheduler] = if quick { &[Scheduler::Rr, Scheduler::Mh] } else { &all };
    // At least 65,536 flows, so the half-open tables (a quarter) hold the warm rounds.
    let capacity = (fills.iter().max().copied().unwrap_or(1000) + 2 * runs as u32 + 1024).max(65_536);
    let (ns, _peer, mut fx) = lb_tests::fixture::in_fib_namespace(capacity)?;
    let syn4 = frame(false, 2, L4::TcpSyn { sport: 40000, dport: 80 });
    let (pass, _, _) = median_ns(&mut fx, PROG_BENCH_PASS, &vec![syn4.clone(); runs])?;
    let (drop, _, _) = median_ns(&mut fx, PROG_BENCH_DROP, &vec![syn4.clone(); runs])?;
    // Hot loop (the kernel re-runs one buffer, each run on what the previous one left): the
    // output must take the same path again. So the real servers' neighbour entries name the
    // load balancer's own MAC here (a DR or NAT output frame is then addressed to it again,
    // not dropped at once as another host's), and NAT runs between two services whose
    // addresses are each other's real server: every run is an established NAT hit.
    // `LB_BENCH_HOT_REPEAT` lengthens the hot runs for a profiler (docs/benchmarks.md).
    let hot_repeat = std::env::var("LB_BENCH_HOT_REPEAT").ok().and_then(|v| v.parse().ok()).unwrap_or(if quick {
        10_000
    } else {
        100_000
    });
    // `LB_BENCH_HOT_ROUNDS` sets the number of rounds (more for a baseline comparison).
    let rounds = std::env::var("LB_BENCH_HOT_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 3 } else { 7 })
        .max(1);
    // The warm new connections (below): all rounds' connections together stay within a
    // quarter of the half-open tables, checked before anything is measured.
    let base_path = baseline_object();
    let per_round = if base_path.is_some() { 4 } else { 2 };
    let slots = (rounds * per_round) as u32;
    let halfopen = lb_common::consts::halfopen_size(capacity);
    let warm_repeat = (halfopen / (4 * slots)).min(30_000 / slots).min(3_000);
    if warm_repeat < 100 {
        bail!(
            "warm new connections: half-open tables of {halfopen} entries are too small for {slots} blocks \
             (fewer LB_BENCH_HOT_ROUNDS)"
        );
    }
    // Like with like: a second instance of the program on the same maps has its own next-hop
    // cache, which nothing fills (its packets take the FIB lookup, as before the cache);
    // `fx` runs the daemon's cache thread.
    let mut fib = fx.share()?;
    let mut base = base_path.as_deref().map(|p| fx.share_object(Some(p))).transpose()?;
    fx.start_nexthops()?;
    if let Some(b) = base.as_mut() {
        b.start_nexthops()?;
    }
    let mut table = String::from(
        "| scheduler | method | family | conntrack | established ns (+ over PASS) | new flow ns (+ over PASS) |\n\
         |---|---|---|---:|---:|---:|\n",
    );
    let mut rows = Vec::new();
    let mut filled = 0u32;
    let mut case = 0u8;
    for &fill in fills {
        fx.prefill_conntrack(fill - filled.min(fill))?;
        filled = filled.max(fill);
        for &sched in scheds {
            for fwd in [ForwardMethod::Nat, ForwardMethod::Dr, ForwardMethod::Tun] {
                for is_v6 in [false, true] {
                    fx.apply(&[service(sched, fwd, is_v6)])?;
                    case = case.checked_add(1).filter(|c| *c < 250).context("more cases than client addresses")?;
                    let client = case + 2;
                    // Established: one flow's SYN opens it, then its ACKs are timed.
                    let sport = 1024;
                    let (action, _) = fx.run(&frame(is_v6, client, L4::TcpSyn { sport, dport: 80 }))?;
                    if action != XDP_TX {
                        bail!(
                            "{} {} v6={is_v6}: the opening SYN was not forwarded ({action})",
                            sched.name(),
                            method_name(fwd)
                        );
                    }
                    let est = vec![frame(is_v6, client, L4::TcpAck { sport, dport: 80 }); runs];
                    let (e, e_lo, e_hi) = median_ns(&mut fx, PROG_XDP, &est)?;
                    // New: a SYN from a fresh source port each time.
                    let news: Vec<Vec<u8>> = (0..runs)
                        .map(|i| frame(is_v6, client, L4::TcpSyn { sport: 2000 + i as u16, dport: 80 }))
                        .collect();
                    let (n, n_lo, n_hi) = median_ns(&mut fx, PROG_XDP, &news)?;
                    table.push_str(&format!(
                        "| {} | {} | {} | {} | {:.0} (+{:.0}) | {:.0} (+{:.0}) |\n",
                        sched.name(),
                        method_name(fwd),
                        if is_v6 { "IPv6" } else { "IPv4" },
                        fill,
                        e,
                        e - pass,
                        n,
                        n - pass
                    ));
                    rows.push(json!({
                        "scheduler": sched.name(), "method": method_name(fwd), "ipv6": is_v6,
                        "conntrack": fill, "established_ns": e, "established_iqr": [e_lo, e_hi],
                        "new_ns": n, "new_iqr": [n_lo, n_hi],
                        "established_over_pass_ns": e - pass, "new_over_pass_ns": n - pass,
                    }));
                }
            }
        }
    }
    // From here on every flow table is full: each new entry evicts one, as under sustained load.
    let full = fx.fill_flow_tables()?;
    set_real_macs(&ns, |_| LB_MAC)?;
    fx.apply(&[service(Scheduler::Rr, ForwardMethod::Dr, false)])?;
    require_cached(&fx, 2)?;
    if let Some(b) = base.as_mut() {
        b.follow_nexthops_of(&fx);
        require_cached(b, 2)?;
    }
    fx.run(&frame(false, 1, L4::TcpSyn { sport: 1024, dport: 80 }))?;
    let dr_ack = frame(false, 1, L4::TcpAck { sport: 1024, dport: 80 });
    let mut n = Instances { fx: &mut fx, fib: &mut fib, base: base.as_mut() };
    let dr = hot_rounds(&mut n, "DR", &dr_ack, &syn4, hot_repeat, rounds)?;
    let (a, b) = (backend4(0), backend4(1));
    let one = |name: &str, vip: std::net::Ipv4Addr, real: std::net::Ipv4Addr| {
        tcp_service(name, vip.into(), 80, Scheduler::Rr, ForwardMethod::Nat, reals(&[real.into()]))
    };
    fx.apply(&[one("hot-a", a, b), one("hot-b", b, a)])?;
    require_cached(&fx, 2)?;
    if let Some(b) = base.as_mut() {
        b.follow_nexthops_of(&fx);
        require_cached(b, 2)?;
    }
    let to = |dst| v4(L2::Plain, CLIENT4, dst, L4::TcpSyn { sport: 1025, dport: 80 }, b"");
    fx.run(&to(a))?;
    fx.run(&to(b))?;
    let nat_ack = v4(L2::Plain, CLIENT4, a, L4::TcpAck { sport: 1025, dport: 80 }, b"");
    let mut n = Instances { fx: &mut fx, fib: &mut fib, base: base.as_mut() };
    let nat = hot_rounds(&mut n, "NAT", &nat_ack, &syn4, hot_repeat, rounds)?;
    // Established NAT replies, hot: a reply from one service's real server (the other's VIP)
    // to the client, translated, is the other service's reply. The two flows are opened
    // through the baseline object when there is one, then through this build: an older
    // object needs reverse entries of its own, which this build (`lb_real_rev`) does not
    // write, and may keep its IPv4 flows in another table (`lb_conntrack` before
    // `lb_conntrack4`).
    set_client_mac(&ns, LB_MAC)?;
    let mut openers: Vec<&mut Fixture> = base.iter_mut().collect();
    openers.push(&mut fx);
    for opener in openers {
        for dst in [a, b] {
            for l4 in [L4::TcpSyn { sport: 1026, dport: 80 }, L4::TcpAck { sport: 1026, dport: 80 }] {
                let (action, _) = opener.run(&v4(L2::Plain, CLIENT4, dst, l4, b""))?;
                if action != XDP_TX {
                    bail!("hot NAT reply: opening the flow to {dst} was not forwarded ({action})");
                }
            }
        }
    }
    let nat_reply_frame = v4(L2::Plain, b, CLIENT4, L4::TcpAck { sport: 80, dport: 1026 }, b"");
    let mut n = Instances { fx: &mut fx, fib: &mut fib, base: base.as_mut() };
    let nat_reply = hot_rounds(&mut n, "NAT reply", &nat_reply_frame, &syn4, hot_repeat, rounds)?;
    set_client_mac(&ns, CLIENT_MAC)?;
    // A redirect path (egress != ingress): DR to a real server behind a second interface, whose
    // neighbour entry names the load balancer's MAC (as above); each run's output is
    // redirected to `fx1` (BPF_PROG_TEST_RUN does not send it), its MACs rewritten.
    let behind = lb_tests::netns::Netns::new("fxr")?;
    lb_tests::netns::veth(&ns, "fx1", &behind, "fxr0")?;
    let far = std::net::Ipv4Addr::new(198, 51, 100, 200);
    ns.ip(&["route", "add", &format!("{far}/32"), "dev", "fx1"])?;
    ns.ip(&["neigh", "replace", &far.to_string(), "lladdr", &mac_text(LB_MAC), "dev", "fx1", "nud", "permanent"])?;
    fx.apply(&[tcp_service("hot-redirect", VIP4.into(), 80, Scheduler::Rr, ForwardMethod::Dr, reals(&[far.into()]))])?;
    require_cached(&fx, 1)?;
    if let Some(b) = base.as_mut() {
        b.follow_nexthops_of(&fx);
        require_cached(b, 1)?;
    }
    let redirect_ack = frame(false, 3, L4::TcpAck { sport: 1027, dport: 80 });
    let mut n = Instances { fx: &mut fx, fib: &mut fib, base: base.as_mut() };
    let redirect = hot_rounds(&mut n, "DR by redirect", &redirect_ack, &syn4, hot_repeat, rounds)?;
    std::mem::drop(behind);
    set_real_macs(&ns, real_mac)?;
    let hot_pass = stats(&[dr.pass.clone(), nat.pass.clone()].concat()).median;
    writeln!(
        out,
        "Two ways of timing. **Hot** (one buffer re-run {hot_repeat} times in the kernel, caches warm as under load; \
         the real servers' MAC is the load balancer's own so each output comes back to the same path, and NAT \
         alternates between two services that are each other's real server), {rounds} rounds, each timing \
         XDP_PASS, the program and a second instance of it on the same maps whose next-hop cache is empty (the FIB \
         lookup, as before the cache), in an order that rotates between rounds; median over rounds of each round's \
         difference to its XDP_PASS ({hot_pass:.0} ns), [min, max]:\n\n\
         | hot, IPv4, rr, established | lb (ns above XDP_PASS) | by the FIB, same rounds |\n|---|---:|---:|\n\
         | DR | **+{}** | +{} |\n| DR, redirected to another interface | +{} | +{} |\n\
         | NAT | **+{}** | +{} |\n| NAT reply (to the client) | +{} | +{} |\n",
        shown(&dr.over_pass()),
        shown(&dr.fib_over_pass()),
        shown(&redirect.over_pass()),
        shown(&redirect.fib_over_pass()),
        shown(&nat.over_pass()),
        shown(&nat.fib_over_pass()),
        shown(&nat_reply.over_pass()),
        shown(&nat_reply.fib_over_pass()),
    )?;
    let mut baseline = match (
        &base_path,
        dr.base_over_pass(),
        redirect.base_over_pass(),
        nat.base_over_pass(),
        nat_reply.base_over_pass(),
    ) {
        (
            Some(path),
            Some((dr_base, dr_gain)),
            Some((redirect_base, redirect_gain)),
            Some((nat_base, nat_gain)),
            Some((reply_base, reply_gain)),
        ) => {
            writeln!(
                out,
                "Baseline object `{}` in the same rounds (its own next-hop cache), ns above XDP_PASS, and how \
                 much slower it was than this build, paired by round: DR +{} (by {}), DR redirected +{} (by {}), \
                 NAT +{} (by {}), NAT reply +{} (by {}).\n",
                path.display(),
                shown(&dr_base),
                shown(&dr_gain),
                shown(&redirect_base),
                shown(&redirect_gain),
                shown(&nat_base),
                shown(&nat_gain),
                shown(&reply_base),
                shown(&reply_gain)
            )?;
            json!({
                "object": path.display().to_string(),
                "tracked_dr_over_pass_ns": dr_base.median, "tracked_nat_over_pass_ns": nat_base.median,
                "tracked_nat_reply_over_pass_ns": reply_base.median,
                "tracked_dr_redirect_over_pass_ns": redirect_base.median,
                "dr_slower_than_ours_ns": [dr_gain.median, dr_gain.min, dr_gain.max],
                "dr_redirect_slower_than_ours_ns": [redirect_gain.median, redirect_gain.min, redirect_gain.max],
                "nat_slower_than_ours_ns": [nat_gain.median, nat_gain.min, nat_gain.max],
                "nat_reply_slower_than_ours_ns": [reply_gain.median, reply_gain.min, reply_gain.max],
                "method": "the same hot rounds; instance order rotates between rounds",
            })
        }
        _ => serde_json::Value::Null,
    };
    // In blocks, rr cached / (rr by the baseline object) / mh cached / (mh by the baseline) / rr
    // by the FIB, then the
    // same backwards: whichever runs first meets colder caches. mh's SYN leaves no entry.
    let (mut conn, mut conn_fib, mut conn_mh) = (Vec::new(), Vec::new(), Vec::new());
    let (mut conn_base, mut conn_base_mh) = (Vec::new(), Vec::new());
    let block = runs / 4;
    let order: &[&str] = if base.is_some() {
        &["rr", "base", "mh", "base-mh", "fib", "fib", "base-mh", "mh", "base", "rr"]
    } else {
        &["rr", "mh", "fib", "fib", "mh", "rr"]
    };
    for (i, kind) in order.iter().enumerate() {
        let port = 20_001 + (i * (block + 1)) as u16;
        let sched = if kind.ends_with("mh") { Scheduler::Mh } else { Scheduler::Rr };
        fx.apply(&[one_real_nat(sched)])?;
        require_cached(&fx, 1)?;
        match (*kind, base.as_mut()) {
            ("rr", _) => conn.extend(new_connection_ns(&mut fx, block, port)?),
            ("mh", _) => conn_mh.extend(new_connection_ns(&mut fx, block, port)?),
            ("base" | "base-mh", Some(b)) => {
                b.follow_nexthops_of(&fx);
                require_cached(b, 1)?;
                let t = new_connection_ns(b, block, port)?;
                if *kind == "base" { conn_base.extend(t) } else { conn_base_mh.extend(t) }
            }
            _ => conn_fib.extend(new_connection_ns(&mut fib, block, port)?),
        }
    }
    // The mean beside the median: one insert in many pays the LRU's refill of its free list.
    let conn_mean = conn.iter().sum::<f64>() / conn.len().max(1) as f64;
    let (conn, conn_fib, conn_mh) = (stats(&conn).median, stats(&conn_fib).median, stats(&conn_mh).median);
    let conn_base = (!conn_base.is_empty()).then(|| (stats(&conn_base).median, stats(&conn_base_mh).median));
    if let (Some((rr, mh)), Some(o)) = (conn_base, baseline.as_object_mut()) {
        o.insert("new_connection_cold_over_pass_ns".into(), json!(rr - 3.0 * pass));
        o.insert("new_connection_mh_cold_over_pass_ns".into(), json!(mh - 3.0 * pass));
    }
    writeln!(
        out,
        "**Cold** (one run per syscall from a fresh copy, so NAT/TUN rewrites and new flows can be timed; each run \
         starts with caches disturbed by the syscall, so these are upper bounds). Baselines: XDP_PASS {pass:.0} ns, \
         XDP_DROP {drop:.0} ns.\n"
    )?;
    writeln!(
        out,
        "A whole new NAT connection (rr, IPv4, one real server), its SYN, SYN-ACK and ACK timed cold and \
         summed per connection: {conn:.0} ns, **+{:.0} ns** over 3 × XDP_PASS (by the FIB alone, same run: \
         {conn_fib:.0} ns, +{:.0}). The same with mh (its SYN records nothing), same run: \
         {conn_mh:.0} ns, +{:.0}. The mean of the rr sums: {conn_mean:.0} ns, +{:.0}.\n",
        conn - 3.0 * pass,
        conn_fib - 3.0 * pass,
        conn_mh - 3.0 * pass,
        conn_mean - 3.0 * pass
    )?;
    if let Some((rr, mh)) = conn_base {
        writeln!(
            out,
            "The same connections through the baseline object, in blocks between those: rr +{:.0} ns, mh +{:.0} ns.\n",
            rr - 3.0 * pass,
            mh - 3.0 * pass
        )?;
    }
    // Warm: connections one after another, each packet on warm caches, against full tables;
    // rr and mh, and with a baseline object the same through it, in rounds whose order
    // alternates. A round's SYNs all wait in the half-open tables for their replies, beside
    // earlier connections' reverse entries that their SYN-ACKs referenced (the LRU keeps
    // those before unreferenced new ones): all rounds' connections together stay within a
    // quarter of the table, or SYN-ACKs would miss entries evicted in the burst.
    if full.iter().any(|(m, n)| m.contains("halfopen") && *n != halfopen) {
        bail!("warm new connections: the half-open tables are not of {halfopen} entries: {full:?}");
    }
    // `LB_BENCH_WARM_PROFILE=N`: first N runs of 60,000 new rr SYNs, for a profiler
    // (docs/benchmarks.md); each run from another client (192.0.2.150.., which no other case
    // uses), so every SYN opens a flow.
    let profile = match std::env::var("LB_BENCH_WARM_PROFILE") {
        Ok(v) => v.parse::<u8>().ok().filter(|n| *n <= 100).context("LB_BENCH_WARM_PROFILE: a count up to 100")?,
        Err(_) => 0,
    };
    if profile > 0 {
        fx.apply(&[one_real_nat(Scheduler::Rr)])?;
        for i in 0..profile {
            let syn = frame(false, 150 + i, L4::TcpSyn { sport: 1, dport: 80 });
            fx.time_fresh(PROG_XDP, &syn, false, 60_000)?;
        }
    }
    // Per round and kind: [rr, mh, baseline rr, baseline mh], each [SYN, SYN-ACK, ACK].
    let mut warm: [Vec<[f64; 3]>; 4] = Default::default();
    let mut slot = 0;
    for round in 0..rounds {
        let mut order: Vec<usize> = (0..per_round).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for k in order {
            let sched = if k % 2 == 0 { Scheduler::Rr } else { Scheduler::Mh };
            fx.apply(&[one_real_nat(sched)])?;
            require_cached(&fx, 1)?;
            let first = u16::try_from(30_000 + slot * warm_repeat as usize).context("warm ports past 65535")?;
            slot += 1;
            let inst: &mut Fixture = match (k, base.as_mut()) {
                (2 | 3, Some(b)) => {
                    b.follow_nexthops_of(&fx);
                    require_cached(b, 1)?;
                    b
                }
                _ => &mut fx,
            };
            warm[k].push(new_connection_warm(inst, sched, first, warm_repeat, round)?);
        }
    }
    std::mem::drop(fib);
    std::mem::drop(base);
    let sum = |v: &[[f64; 3]]| stats(&v.iter().map(|k| k.iter().sum()).collect::<Vec<f64>>());
    let kind = |v: &[[f64; 3]], k: usize| stats(&v.iter().map(|r| r[k]).collect::<Vec<f64>>()).median;
    let kinds = |v: &[[f64; 3]]| format!("SYN +{:.0}, SYN-ACK +{:.0}, ACK +{:.0}", kind(v, 0), kind(v, 1), kind(v, 2));
    let (warm_kinds, warm_mh_kinds) = (kinds(&warm[0]), kinds(&warm[1]));
    let (warm_rr, warm_mh) = (sum(&warm[0]), sum(&warm[1]));
    writeln!(
        out,
        "A whole new NAT connection, **warm** ({rounds} rounds of {warm_repeat} connections, tables full): each \
         of its three packets a hot run of `bench_fresh`, which writes the packet with a fresh client port per \
         run and tail-calls the program, against the same runs tail-calling XDP_PASS (median over rounds of \
         the three differences summed, [min, max]): rr **+{}** ns ({warm_kinds}), mh +{} ns ({warm_mh_kinds}). \
         This is the mean over a round's runs, so it includes the LRU's occasional refill of its free list, \
         which the cold figure's median over connections leaves out.\n",
        shown(&warm_rr),
        shown(&warm_mh),
    )?;
    if !warm[2].is_empty() {
        let paired = |ours: &[[f64; 3]], theirs: &[[f64; 3]]| {
            stats(
                &ours
                    .iter()
                    .zip(theirs)
                    .map(|(o, t)| t.iter().sum::<f64>() - o.iter().sum::<f64>())
                    .collect::<Vec<_>>(),
            )
        };
        let (gain_rr, gain_mh) = (paired(&warm[0], &warm[2]), paired(&warm[1], &warm[3]));
        writeln!(
            out,
            "The baseline object in the same warm rounds: rr +{} ns ({}), mh +{} ns ({}); slower than this build by \
             rr {}, mh {} ns, paired by round.\n",
            shown(&sum(&warm[2])),
            kinds(&warm[2]),
            shown(&sum(&warm[3])),
            kinds(&warm[3]),
            shown(&gain_rr),
            shown(&gain_mh),
        )?;
        if let Some(o) = baseline.as_object_mut() {
            o.insert("new_connection_over_pass_ns".into(), json!(sum(&warm[2]).median));
            o.insert("new_connection_mh_over_pass_ns".into(), json!(sum(&warm[3]).median));
            o.insert("new_connection_slower_than_ours_ns".into(), json!([gain_rr.median, gain_rr.min, gain_rr.max]));
            o.insert("new_connection_mh_slower_than_ours_ns".into(), json!([gain_mh.median, gain_mh.min, gain_mh.max]));
        }
    }
    // Enough flows that their entries and buckets outgrow the CPU's caches in a full run.
    let flows = if quick { runs } else { 20_000 };
    let many_dr = many_flows(&mut fx, ForwardMethod::Dr, 253, flows)?;
    let many_nat = many_flows(&mut fx, ForwardMethod::Nat, 254, flows)?;
    let tables: Vec<String> = full.iter().map(|(map, n)| format!("`{map}` {n}")).collect();
    writeln!(
        out,
        "Every flow table was filled to capacity before the hot rounds and the new connections ({}): \
         each new entry evicts one.\n\n\
         Many flows, cold (rr, IPv4): {flows} established flows whose ACKs are timed in turn, so each \
         run meets another entry, against one flow's ACK as often, in blocks XDP_PASS, one, many, many, \
         one, XDP_PASS; medians, ns above that block's XDP_PASS:\n\n\
         | cold, IPv4, rr, established | one flow | {flows} flows |\n|---|---:|---:|\n\
         | DR | +{:.0} | **+{:.0}** |\n| NAT | +{:.0} | **+{:.0}** |\n",
        tables.join(", "),
        many_dr.one - many_dr.pass,
        many_dr.many - many_dr.pass,
        many_nat.one - many_nat.pass,
        many_nat.many - many_nat.pass,
    )?;
    writeln!(
        out,
        "The table below was timed before the flow tables were filled (its conntrack column counts the \
         entries then); every figure above, after.\n"
    )?;
    out.write_all(table.as_bytes())?;
    Ok(json!({
        "summary": {
            "tracked_dr_over_pass_ns": dr.over_pass().median,
            "tracked_dr_over_pass_spread_ns": [dr.over_pass().min, dr.over_pass().max],
            "tracked_dr_method": "hot: one buffer re-run in the kernel, the output addressed back to the load balancer",
            "tracked_nat_over_pass_ns": nat.over_pass().median,
            "tracked_nat_over_pass_spread_ns": [nat.over_pass().min, nat.over_pass().max],
            "tracked_nat_reply_over_pass_ns": nat_reply.over_pass().median,
            "tracked_nat_reply_over_pass_spread_ns": [nat_reply.over_pass().min, nat_reply.over_pass().max],
            "tracked_dr_redirect_over_pass_ns": redirect.over_pass().median,
            "tracked_dr_redirect_over_pass_spread_ns": [redirect.over_pass().min, redirect.over_pass().max],
            "tracked_dr_redirect_by_fib_over_pass_ns": redirect.fib_over_pass().median,
            "tracked_dr_redirect_method": "hot, as tracked_dr, the real server behind a second interface: XDP_REDIRECT instead of XDP_TX",
            "tracked_nat_reply_by_fib_over_pass_ns": nat_reply.fib_over_pass().median,
            "tracked_nat_method": "hot: one buffer re-run in the kernel, alternating between two NAT services",
            "new_connection_over_pass_ns": warm_rr.median,
            "new_connection_over_pass_spread_ns": [warm_rr.min, warm_rr.max],
            "new_connection_mh_over_pass_spread_ns": [warm_mh.min, warm_mh.max],
            "new_connection_method": "warm: SYN, SYN-ACK and ACK of a fresh connection per run, each kind a hot run of bench_fresh tail-calling lb_xdp against the same tail-calling XDP_PASS, summed; median over rounds",
            "new_connection_mh_over_pass_ns": warm_mh.median,
            "new_connection_cold_over_pass_ns": conn - 3.0 * pass,
            "new_connection_cold_mean_over_pass_ns": conn_mean - 3.0 * pass,
            "new_connection_cold_method": "cold: SYN, SYN-ACK and ACK summed per connection, against 3 x XDP_PASS",
            "tracked_dr_by_fib_over_pass_ns": dr.fib_over_pass().median,
            "tracked_nat_by_fib_over_pass_ns": nat.fib_over_pass().median,
            "new_connection_by_fib_cold_over_pass_ns": conn_fib - 3.0 * pass,
            "new_connection_mh_cold_over_pass_ns": conn_mh - 3.0 * pass,
            "by_fib_method": "the same packets, same run, through a second program instance on the same maps whose next-hop cache is empty",
            "tracked_dr_many_flows_cold_over_pass_ns": many_dr.many - many_dr.pass,
            "tracked_dr_one_flow_cold_over_pass_ns": many_dr.one - many_dr.pass,
            "tracked_nat_many_flows_cold_over_pass_ns": many_nat.many - many_nat.pass,
            "tracked_nat_one_flow_cold_over_pass_ns": many_nat.one - many_nat.pass,
            "many_flows": flows,
            "many_flows_method": "cold: established ACKs of that many flows timed in turn, against one flow's as often, blocks PASS one many many one PASS",
            "flow_tables_full": full.iter().map(|(m, n)| json!({"map": m, "entries": n})).collect::<Vec<_>>(),
            "flow_tables_method": "every flow table filled to capacity with unrelated flows before the hot rounds, the new connections and the many-flow blocks",
        },
        "hot": {
            "repeat": hot_repeat, "rounds": rounds, "xdp_pass_ns": hot_pass,
            "dr": { "pass_ns": dr.pass, "cached_ns": dr.cached, "by_fib_ns": dr.fib, "baseline_ns": dr.base },
            "nat": { "pass_ns": nat.pass, "cached_ns": nat.cached, "by_fib_ns": nat.fib, "baseline_ns": nat.base },
            "baseline": baseline,
        },
        "new_connection_cold_ns": conn,
        "new_connection_by_fib_cold_ns": conn_fib,
        "xdp_pass_ns": pass, "xdp_drop_ns": drop, "runs_per_case": runs, "cases": rows,
    }))
}
