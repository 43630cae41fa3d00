//! Throughput over veth: a generator namespace sends UDP to the VIP through the load balancer's
//! namespace to a sink namespace, and the same run compares four ways of forwarding:
//! lb-daemon's XDP NAT, nftables DNAT with conntrack, plain kernel forwarding, and a minimal
//! XDP MAC-rewrite + redirect program (the ceiling of this path).
//!
//! The generator is lb-ebpf's `bench_tx`, run by BPF_PROG_TEST_RUN in live-frames mode on the
//! generator's veth on CPU 0 (`XDP_TX` transmits each frame to the load balancer's `l0`); the
//! sink is `bench_count` on the sink's veth (counts the generator's frames and drops them).
//! `l0`'s and `b0`'s NAPI run threaded on CPU 1: everything a method does to forward a frame
//! (XDP program, or the stack's receive, nft and routing, up to handing it to `b0`) runs in
//! `l0`'s NAPI thread, whose exact CPU time (schedstat) per delivered frame is the CPU cost
//! per forwarded packet, taken with the generator unpaced (the thread then never sleeps;
//! below saturation the cost of waking it per frame hides the method).
//!
//! The generator paces by transmitting one run in N and dropping the rest (evenly spaced
//! frames; pacing between test runs cannot work, each costs milliseconds of setup). Per
//! method and run: at 32 kpps delivered must equal offered (else the drop counters on the
//! way are printed and the report says the method did not hold); the highest rate, in 1.5×
//! steps from 100 kpps, that loses under 1%; and the unpaced run (the veth rings overflow:
//! offered is what the generator tried).

use lb_common::consts::{
    MAP_BENCH_COUNTER, MAP_BENCH_EVERY, MAP_BENCH_FRAME, MAP_BENCH_NEXT, PROG_BENCH_COUNT, PROG_BENCH_PASS,
    PROG_BENCH_REDIRECT, PROG_BENCH_TX,
};
use std::{
    io::Write,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail};
use aya::{
    Ebpf,
    maps::{Array, PerCpuArray},
    programs::{TestRun, TestRunAttrs, TestRunOptions, Xdp, XdpMode},
};
use serde_json::json;

use crate::stats;
use lb_tests::{
    addrs::{CLIENT4, LB_BACKEND_SIDE4, LB_CLIENT_SIDE4, VIP4, backend4},
    daemon::{self, Daemon},
    netns::{Netns, addr, veth},
};

const VIP: [u8; 4] = VIP4.octets();
const REAL: [u8; 4] = backend4(0).octets();
const CONF: &str = "virtual_server 203.0.113.10 9 {\n lb_algo rr\n lb_kind NAT\n protocol UDP\n \
                    real_server 198.51.100.11 9 {\n}\n}\n";
const NFT_DNAT: &str = "table ip lbtbench {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr 203.0.113.10 udp dport 9 dnat to 198.51.100.11:9
  }
}
";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Method {
    Ours,
    Nft,
    Forward,
    Ceiling,
}

impl Method {
    const ALL: [Method; 4] = [Method::Ours, Method::Nft, Method::Forward, Method::Ceiling];

    fn name(self) -> &'static str {
        match self {
            Method::Ours => "lb-daemon XDP NAT",
            Method::Nft => "nftables DNAT",
            Method::Forward => "kernel forwarding",
            Method::Ceiling => "XDP redirect ceiling",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Method::Ours => "ours",
            Method::Nft => "nft",
            Method::Forward => "forward",
            Method::Ceiling => "ceiling",
        }
    }
}

/// The benchmark's own object (generator, sink, ceiling, baselines).
fn small_object() -> Result<Ebpf> {
    lb_tests::bench_object()
}

fn xdp<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Xdp> {
    let p: &mut Xdp = ebpf.program_mut(name).ok_or_else(|| anyhow!("no program {name}"))?.try_into()?;
    if p.fd().is_err() {
        lb_daemon::dataplane::object::load_program(name, || p.load())?;
    }
    Ok(p)
}

/// `dev`'s MAC address as bytes.
fn mac(ns: &Netns, dev: &str) -> Result<[u8; 6]> {
    let text = ns.mac(dev)?;
    let mut m = [0u8; 6];
    for (i, b) in text.split(':').enumerate().take(6) {
        m[i] = u8::from_str_radix(b, 16)?;
    }
    Ok(m)
}

fn pin_to(cpu: usize) -> Result<()> {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu)?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)?;
    Ok(())
}

/// The namespaces, the sink and the generator.
struct Bench {
    gen_ns: Netns,
    lb: Netns,
    sink_ns: Netns,
    generator: Ebpf,
    sink: Ebpf,
    /// The ceiling's (or a plain XDP_PASS) program on `l0`, when attached.
    on_l0: Option<Ebpf>,
    g0: u32,
    /// l0's NAPI thread.
    napi: u32,
}

impl Bench {
    fn new() -> Result<Self> {
        let (gen_ns, lb, sink_ns) = (Netns::new("tg")?, Netns::new("tl")?, Netns::new("ts")?);
        veth(&gen_ns, "g0", &lb, "l0")?;
        veth(&lb, "l1", &sink_ns, "b0")?;
        addr(&gen_ns, "g0", &format!("{CLIENT4}/24"))?;
        addr(&lb, "l0", &format!("{LB_CLIENT_SIDE4}/24"))?;
        addr(&lb, "l1", &format!("{LB_BACKEND_SIDE4}/24"))?;
        addr(&sink_ns, "b0", &format!("{}/24", backend4(0)))?;
        lb.sh("sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.l0.rp_filter=0")?;
        let b0 = sink_ns.mac("b0")?;
        lb.ip(&["neigh", "replace", &backend4(0).to_string(), "lladdr", &b0, "dev", "l1", "nud", "permanent"])?;
        let g0 = gen_ns.mac("g0")?;
        lb.ip(&["neigh", "replace", &CLIENT4.to_string(), "lladdr", &g0, "dev", "l0", "nud", "permanent"])?;
        let mut sink = small_object()?;
        sink_ns.run(|| -> Result<()> {
            xdp(&mut sink, PROG_BENCH_COUNT)?.attach("b0", XdpMode::Driver)?;
            Ok(())
        })??;
        let mut generator = small_object()?;
        xdp(&mut generator, PROG_BENCH_TX)?;
        let g0 = gen_ns.ifindex("g0")?;
        Ok(Self { gen_ns, lb, sink_ns, generator, sink, on_l0: None, g0, napi: 0 })
    }

    /// Puts the NAPI of l0 (the forwarding) and b0 (the sink) in their own threads, pinned to
    /// CPU 1; the generator has CPU 0. (A veth has NAPI only while an XDP program or GRO is
    /// on: this follows the attach.) Returns l0's NAPI thread, whose CPU time is the
    /// forwarding work.
    fn pin_napi(&mut self) -> Result<u32> {
        self.lb.sh("echo 1 > /sys/class/net/l0/threaded")?;
        self.sink_ns.sh("echo 1 > /sys/class/net/b0/threaded")?;
        let mut l0 = None;
        for e in std::fs::read_dir("/proc")?.flatten() {
            let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            // napi/<dev>-<napi id>: no other l0 or b0 has threaded NAPI while this runs.
            let comm = comm.trim();
            if comm.starts_with("napi/l0-") || comm.starts_with("napi/b0-") {
                let pid = e.file_name().to_string_lossy().into_owned();
                lb_tests::netns::run(std::process::Command::new("taskset").args(["-pc", "1", &pid]))?;
                if comm.starts_with("napi/l0-") {
                    l0 = Some(pid.parse()?);
                }
            }
        }
        let l0 = l0.context("no napi/l0-* thread")?;
        self.napi = l0;
        Ok(l0)
    }

    /// Nanoseconds l0's NAPI thread has run (schedstat: exact, unlike jiffies).
    fn napi_ns(&self) -> Result<u64> {
        let s = std::fs::read_to_string(format!("/proc/{}/schedstat", self.napi))?;
        s.split_whitespace().next().context("empty schedstat")?.parse().context("schedstat")
    }

    fn set_frame(&mut self, dst: [u8; 4]) -> Result<()> {
        let l0 = mac(&self.lb, "l0")?;
        let g0 = mac(&self.gen_ns, "g0")?;
        let mut f = Vec::with_capacity(64);
        etherparse::PacketBuilder::ethernet2(g0, l0)
            .ipv4([192, 0, 2, 2], dst, 64)
            .udp(20_000, 9)
            .write(&mut f, &[0u8; 22])?;
        // No UDP checksum (IPv4 allows it): the generator changes the source port per frame.
        f[40] = 0;
        f[41] = 0;
        let mut words = [0u64; 8];
        for (i, w) in words.iter_mut().enumerate() {
            *w = u64::from_ne_bytes(f[i * 8..i * 8 + 8].try_into()?);
        }
        let mut m: Array<_, [u64; 8]> =
            Array::try_from(self.generator.map_mut(MAP_BENCH_FRAME).context(MAP_BENCH_FRAME)?)?;
        m.set(0, words, 0)?;
        Ok(())
    }

    fn delivered(&self) -> Result<u64> {
        let m: PerCpuArray<_, u64> =
            PerCpuArray::try_from(self.sink.map(MAP_BENCH_COUNTER).context(MAP_BENCH_COUNTER)?)?;
        Ok(m.get(&0, 0)?.iter().sum())
    }

    /// Frames the generator transmitted so far.
    fn generated(&self) -> Result<u64> {
        let m: PerCpuArray<_, u64> =
            PerCpuArray::try_from(self.generator.map(MAP_BENCH_COUNTER).context(MAP_BENCH_COUNTER)?)?;
        Ok(m.get(&1, 0)?.iter().sum())
    }

    /// Runs the generator `runs` times on CPU 0, transmitting one run in `every` (evenly
    /// spaced frames at 1/`every` of its full rate). Returns the frames sent and the time.
    fn send(&mut self, runs: u64, every: u64) -> Result<(u64, Duration)> {
        let mut e: Array<_, u64> = Array::try_from(self.generator.map_mut(MAP_BENCH_EVERY).context(MAP_BENCH_EVERY)?)?;
        e.set(0, every, 0)?;
        let before = self.generated()?;
        let prog: &Xdp = self.generator.program(PROG_BENCH_TX).context(PROG_BENCH_TX)?.try_into()?;
        let g0 = self.g0;
        let data = [0u8; 64];
        let took = self.gen_ns.run(|| -> Result<Duration> {
            pin_to(0)?;
            // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress.
            let ctx: Vec<u8> = [0u32, 64, 0, g0, 0, 0].iter().flat_map(|v| v.to_ne_bytes()).collect();
            let start = Instant::now();
            let mut left = runs;
            while left > 0 {
                let n = left.min(1 << 22) as u32;
                let mut opts = TestRunOptions::new();
                opts.data_in = Some(&data);
                opts.ctx_in = Some(&ctx);
                opts.repeat = n;
                opts.attrs = TestRunAttrs::new().xdp_live_frames(64);
                prog.test_run(opts).map_err(|e| anyhow!("live-frames test run: {e}"))?;
                left -= u64::from(n);
            }
            Ok(start.elapsed())
        })??;
        Ok((self.generated()? - before, took))
    }

    /// Puts `method`'s forwarding in place (and takes the others away).
    fn setup(&mut self, method: Method, pins: &Path, conf: &Path) -> Result<Option<Daemon>> {
        self.on_l0 = None;
        let _ = self.lb.sh("nft delete table ip lbtbench 2>/dev/null");
        self.set_frame(if method == Method::Forward { REAL } else { VIP })?;
        let daemon = match method {
            Method::Ours => {
                let d = Daemon::start(&self.lb, conf, pins, &["--interface", "l0", "--interface", "l1"])?;
                Some(d)
            }
            Method::Nft | Method::Forward | Method::Ceiling => {
                let mut e = small_object()?;
                let prog = if method == Method::Ceiling { PROG_BENCH_REDIRECT } else { PROG_BENCH_PASS };
                if method == Method::Ceiling {
                    let l1 = self.lb.ifindex("l1")?;
                    let b0 = mac(&self.sink_ns, "b0")?;
                    let mut m: Array<_, u64> = Array::try_from(e.map_mut(MAP_BENCH_NEXT).context(MAP_BENCH_NEXT)?)?;
                    m.set(0, u64::from(l1), 0)?;
                    let mut b = [0u8; 8];
                    b[2..].copy_from_slice(&b0);
                    m.set(1, u64::from_be_bytes(b), 0)?;
                }
                if method == Method::Nft {
                    let f = std::env::temp_dir().join(format!("lbt-tput-{}.nft", std::process::id()));
                    std::fs::write(&f, NFT_DNAT)?;
                    self.lb.sh(&format!("nft -f {}", f.display()))?;
                    let _ = std::fs::remove_file(&f);
                }
                self.lb.run(|| -> Result<()> {
                    xdp(&mut e, prog)?.attach("l0", XdpMode::Driver)?;
                    Ok(())
                })??;
                self.on_l0 = Some(e);
                None
            }
        };
        self.pin_napi()?;
        Ok(daemon)
    }
}

/// One method's figures.
struct Run {
    offered_low: u64,
    delivered_low: u64,
    /// Drop counters on the way when the low-rate run lost frames.
    lost_where: Option<String>,
    /// Unpaced: what the generator offered and what arrived.
    offered_pps: f64,
    unpaced_pps: f64,
    /// The highest offered rate (doubling steps) that lost under 1%.
    peak_pps: f64,
    /// l0's NAPI thread time per delivered frame, unpaced.
    cpu_ns: f64,
}

/// The drop counters of every link on the way (`ip -s link`: RX/TX errors, dropped, missed).
fn drops(b: &Bench) -> String {
    let mut out = String::new();
    for (ns, dev) in [(&b.gen_ns, "g0"), (&b.lb, "l0"), (&b.lb, "l1"), (&b.sink_ns, "b0")] {
        let s = ns.ip(&["-s", "-s", "link", "show", dev]).unwrap_or_default();
        out.push_str(&format!("{dev}: {}\n", s.split_whitespace().collect::<Vec<_>>().join(" ")));
    }
    out
}

/// Frames sent and delivered, seconds, and l0's NAPI nanoseconds, for about `secs` at
/// 1/`every` of the generator's full rate `full` (runs per second).
fn run_at(b: &mut Bench, full: f64, every: u64, secs: f64) -> Result<(u64, u64, f64, u64)> {
    let (before, napi0) = (b.delivered()?, b.napi_ns()?);
    let (sent, took) = b.send((full * secs) as u64, every)?;
    std::thread::sleep(Duration::from_millis(100));
    Ok((sent, b.delivered()? - before, took.as_secs_f64(), b.napi_ns()? - napi0))
}

fn measure(b: &mut Bench, full: f64, quick: bool) -> Result<Run> {
    let secs = if quick { 0.3 } else { 1.0 };
    let every_for = |rate: f64| ((full / rate).round() as u64).max(1);
    // The method holds: at a low rate, every frame arrives.
    let (offered_low, delivered_low, _, _) = run_at(b, full, every_for(32_000.0), secs)?;
    let lost_where = (delivered_low != offered_low).then(|| drops(b));
    // Peak: the highest offered rate, in steps of 1.5× from 100 kpps, that loses under 1%.
    let mut peak_pps = 0.0;
    let mut rate = 100_000.0;
    loop {
        let every = every_for(rate);
        let (sent, d, took, _) = run_at(b, full, every, secs)?;
        if (d as f64) < 0.99 * sent as f64 {
            break;
        }
        peak_pps = d as f64 / took;
        if every == 1 {
            break;
        }
        rate *= 1.5;
    }
    // Unpaced: every run transmits. The forwarding thread never runs dry, so it works in full
    // batches and never sleeps: its time per delivered frame is the forwarding cost. (At lower
    // rates each frame mostly pays for waking the thread, which hides the method.)
    let (sent, d, took, napi_ns) = run_at(b, full, 1, secs)?;
    let cpu_ns = if d == 0 { f64::NAN } else { napi_ns as f64 / d as f64 };
    Ok(Run {
        offered_low,
        delivered_low,
        lost_where,
        offered_pps: sent as f64 / took,
        unpaced_pps: d as f64 / took,
        peak_pps,
        cpu_ns,
    })
}

/// The generator's full rate (runs per second) on this machine: transmitting nothing.
fn calibrate(b: &mut Bench) -> Result<f64> {
    let (_, took) = b.send(2_000_000, u64::MAX)?;
    Ok(2_000_000.0 / took.as_secs_f64())
}

/// Runs every method `runs` times, alternating; prints a markdown table to `out`.
pub fn throughput(quick: bool, out: &mut dyn Write) -> Result<serde_json::Value> {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        bail!("needs two CPUs (generator and forwarding apart)");
    }
    let mut b = Bench::new()?;
    let conf = std::env::temp_dir().join(format!("lbt-tput-{}.conf", std::process::id()));
    std::fs::write(&conf, CONF)?;
    let pins = daemon::pin_dir("tput");
    let runs = if quick { 1 } else { 3 };
    let mut results: Vec<(Method, Vec<Run>)> = Method::ALL.iter().map(|m| (*m, Vec::new())).collect();
    let full = calibrate(&mut b)?;
    for _ in 0..runs {
        for (method, runs) in results.iter_mut() {
            let d = b.setup(*method, &pins, &conf)?;
            let r = measure(&mut b, full, quick);
            drop(d);
            runs.push(r.with_context(|| method.name())?);
        }
    }
    b.on_l0 = None;
    let _ = b.lb.sh("nft delete table ip lbtbench 2>/dev/null");
    let _ = std::fs::remove_file(&conf);
    writeln!(
        out,
        "| method | delivered / offered at 32 kpps | highest rate with < 1% loss (Mpps) | unpaced: offered → delivered (Mpps) | CPU per forwarded packet, unpaced (ns) | runs |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|")?;
    let mut rows = serde_json::Map::new();
    let mut medians = std::collections::HashMap::new();
    let mut lost = String::new();
    for (method, rs) in &results {
        let pps = stats(&rs.iter().map(|r| r.peak_pps).collect::<Vec<_>>());
        let offered = stats(&rs.iter().map(|r| r.offered_pps).collect::<Vec<_>>());
        let unpaced = stats(&rs.iter().map(|r| r.unpaced_pps).collect::<Vec<_>>());
        let cpu = stats(&rs.iter().map(|r| r.cpu_ns).collect::<Vec<_>>());
        let (off, del): (u64, u64) = rs.iter().fold((0, 0), |(o, d), r| (o + r.offered_low, d + r.delivered_low));
        writeln!(
            out,
            "| {} | {del} / {off} | {:.2} ({:.2}–{:.2}) | {:.2} → {:.2} | {:.0} ({:.0}–{:.0}) | {} |",
            method.name(),
            pps.median / 1e6,
            pps.min / 1e6,
            pps.max / 1e6,
            offered.median / 1e6,
            unpaced.median / 1e6,
            cpu.median,
            cpu.min,
            cpu.max,
            rs.len()
        )?;
        medians.insert(*method, (unpaced.median, cpu.median));
        for r in rs.iter().filter_map(|r| r.lost_where.as_deref()) {
            lost.push_str(&format!("{} lost frames at the low rate; drop counters:\n{r}\n", method.name()));
        }
        rows.insert(
            method.key().into(),
            json!({
                "offered_low": off, "delivered_low": del,
                "offered_pps": rs.iter().map(|r| r.offered_pps).collect::<Vec<_>>(),
                "unpaced_pps": rs.iter().map(|r| r.unpaced_pps).collect::<Vec<_>>(),
                "peak_pps": rs.iter().map(|r| r.peak_pps).collect::<Vec<_>>(),
                "cpu_ns_per_packet": rs.iter().map(|r| r.cpu_ns).collect::<Vec<_>>(),
            }),
        );
    }
    let (ours, nft, fwd, ceil) =
        (medians[&Method::Ours], medians[&Method::Nft], medians[&Method::Forward], medians[&Method::Ceiling]);
    writeln!(
        out,
        "\nRatios (medians): CPU per packet ours/nft {:.2} (target ≤ 0.35), ours/forwarding {:.2}, \
         ours/ceiling {:.2} (target ≤ 1.15); peak delivered (unpaced) ours/ceiling {:.2} (target ≥ 0.90), ours/nft {:.2}. \
         The lossless rate is the noisy one: evenly paced frames let the NAPI thread sleep, and one \
         late wake-up overflows the veth's 256-frame ring.",
        ours.1 / nft.1,
        ours.1 / fwd.1,
        ours.1 / ceil.1,
        ours.0 / ceil.0,
        ours.0 / nft.0
    )?;
    if !lost.is_empty() {
        writeln!(out, "\nThe method did not hold (delivered ≠ offered at the low rate):\n\n```\n{lost}```")?;
    }
    // A ceiling below ours, or any rate of zero, means the method failed in this run.
    let rates = [ours, nft, fwd, ceil].iter().all(|m| m.0 > 0.0 && m.1 > 0.0);
    let valid = rates && ceil.0 >= ours.0;
    if !valid {
        writeln!(
            out,
            "\n**This run is invalid**: {} (the figures above cannot be compared).",
            if rates { "the XDP-redirect ceiling delivered less than ours" } else { "a rate or CPU figure is 0" }
        )?;
    }
    rows.insert(
        "summary".into(),
        json!({
            "peak_ours_over_ceiling": ours.0 / ceil.0,
            "cpu_ours_over_ceiling": ours.1 / ceil.1,
            "cpu_ours_over_nft": ours.1 / nft.1,
            "cpu_excess_ours_over_nft": (ours.1 - ceil.1) / (nft.1 - ceil.1),
            "valid": valid,
        }),
    );
    rows.insert("method_holds".into(), json!(lost.is_empty()));
    rows.insert("generator_runs_per_s".into(), json!(full));
    rows.insert("cpu_ours_over_nft".into(), json!(ours.1 / nft.1));
    rows.insert("peak_ours_over_ceiling".into(), json!(ours.0 / ceil.0));
    rows.insert("peak_ours_over_nft".into(), json!(ours.0 / nft.0));
    Ok(serde_json::Value::Object(rows))
}
