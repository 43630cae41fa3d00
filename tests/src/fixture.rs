//! Table-driven packet fixtures for the XDP program, in the spirit of Katran's
//! `KatranBaseTestFixtures.h`: each case is a name, an input frame, the expected verdict, the
//! expected output frame, and the counter that must move. The real object is loaded (no pins),
//! maps are preloaded, and the program runs once per case through `BPF_PROG_TEST_RUN`
//! (`repeat = 1`, so a rewriting program never sees its own output).

use std::{
    collections::BTreeMap,
    fs::File,
    net::IpAddr,
    os::fd::AsFd,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
};

use anyhow::{Context as _, Result, anyhow, bail};
use aya::{
    Ebpf,
    maps::{Array, HashMap, PerCpuArray, ProgramArray},
    programs::{ProgramError, TestRun, TestRunOptions, TestRunResult, Xdp},
};
use lb_common::{
    FlowKey, FlowKey4, FlowValue, GlobalStats, NatRev, ServiceKey, ServiceStats,
    consts::{
        MAP_BENCH_FRESH_CFG, MAP_BENCH_FRESH_FRAME, MAP_BENCH_FRESH_TARGET, MAP_CONNTRACK, MAP_CONNTRACK4,
        MAP_HALFOPEN, MAP_HALFOPEN_REV, MAP_NAT_REV, MAP_STATS, PROG_BENCH_FRESH, PROG_XDP,
    },
};
use lb_daemon::{
    config::{ForwardMethod, Scheduler},
    dataplane::{
        bpf::{BpfDataplane, Sizes, StatsSnapshot, conntrack::Conntrack, read_stats},
        services::{DesiredReal, DesiredService, key_of},
    },
};

use crate::{
    addrs::{
        CLIENT4, CLIENT6, LB_BACKEND_SIDE4, LB_BACKEND_SIDE6, LB_CLIENT_SIDE4, LB_CLIENT_SIDE6, backend4, backend6,
    },
    netns::Netns,
    packets::{CLIENT_MAC, LB_MAC, mac_text, real_mac},
};

pub const XDP_ABORTED: u32 = 0;
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;
pub const XDP_REDIRECT: u32 = 4;

pub fn action_name(a: u32) -> &'static str {
    match a {
        XDP_ABORTED => "XDP_ABORTED",
        XDP_DROP => "XDP_DROP",
        XDP_PASS => "XDP_PASS",
        XDP_TX => "XDP_TX",
        XDP_REDIRECT => "XDP_REDIRECT",
        _ => "unknown",
    }
}

/// What the output frame must be.
#[derive(Clone, Debug)]
pub enum Output {
    /// Byte for byte the input (the program did not touch it).
    Unchanged,
    /// Byte for byte this frame.
    Frame(Vec<u8>),
}

#[derive(Clone, Debug)]
pub struct Case {
    pub name: &'static str,
    pub input: Vec<u8>,
    pub action: u32,
    pub output: Output,
    /// The `GlobalStats` reason field that must count this frame (e.g. `reason_no_service`).
    pub reason: &'static str,
    /// Service id whose counters must move by this frame, if any.
    pub service: Option<u32>,
    /// Further counters that must move by one (`flows_new`, `flows_hit`).
    pub also: &'static [&'static str],
}

/// The XDP program loaded from the object lb-daemon embeds, through the daemon's own
/// `BpfDataplane` (so services are programmed exactly as the daemon does), with maps pinned
/// in a private directory removed on drop. Optionally runs inside a namespace, on one of its
/// interfaces, so FIB lookups see that namespace's routes and neighbours.
pub struct Fixture {
    dp: BpfDataplane,
    pin_dir: PathBuf,
    netns: Option<(PathBuf, u32)>,
    /// The first fixture on a pin directory removes it; `share`d ones do not.
    owns_pins: bool,
    /// The benchmark's baselines (`lb-bench`), loaded on first use.
    bench: Option<Ebpf>,
    /// `lb_conntrack`'s size (the other flow tables' follow from it).
    conntrack: u32,
    /// Flows `prefill_conntrack` wrote into each connection table so far.
    prefilled: u32,
}

static FIXTURES: AtomicU32 = AtomicU32::new(0);

impl Fixture {
    pub fn load() -> Result<Self> {
        Self::load_sized(4096)
    }

    /// `load` with a connection table of `conntrack` entries.
    pub fn load_sized(conntrack: u32) -> Result<Self> {
        crate::netns::sweep_stale_pins();
        let object = lb_daemon::dataplane::object::load(None)?;
        let n = FIXTURES.fetch_add(1, Ordering::Relaxed);
        let pin_dir = PathBuf::from(format!("/sys/fs/bpf/lbt-fx-{}-{n}", std::process::id()));
        let dp = BpfDataplane::load(&object, &pin_dir, Sizes { conntrack }).context("verifier refused lb_xdp")?;
        Ok(Self { dp, pin_dir, netns: None, owns_pins: true, bench: None, conntrack, prefilled: 0 })
    }

    /// Runs program `prog` (`lb_xdp` or a baseline) once per frame, each from a fresh copy
    /// (`repeat = 1`: a rewriting program never sees its own output), in the fixture's
    /// namespace: the kernel-measured nanoseconds of each run.
    pub fn time_runs(&mut self, prog: &str, frames: &[Vec<u8>]) -> Result<Vec<u64>> {
        let ifindex = self.ifindex();
        let netns = self.netns.clone();
        let p = self.loaded(prog)?;
        let run = || -> Result<Vec<u64>> {
            let mut out = vec![0u8; 2048];
            let mut times = Vec::with_capacity(frames.len());
            for frame in frames {
                times.push(test_run(p, frame, &mut out, ifindex, 1)?.duration.as_nanos() as u64);
            }
            Ok(times)
        };
        match &netns {
            None => run(),
            Some((path, _)) => in_ns(path, run)?,
        }
    }

    /// The kernel's average nanoseconds per run of `prog` over `repeat` runs on one input
    /// that each run sees as the previous one left it, and the last run's action: only
    /// meaningful where the program's output takes the same path again (the caller checks
    /// the action and the output).
    pub fn time_repeat(&mut self, prog: &str, frame: &[u8], repeat: u32) -> Result<(f64, u32, Vec<u8>)> {
        let ifindex = self.ifindex();
        let netns = self.netns.clone();
        let p = self.loaded(prog)?;
        let run = || -> Result<(f64, u32, Vec<u8>)> {
            let mut out = vec![0u8; 2048];
            let r = test_run(p, frame, &mut out, ifindex, repeat)?;
            out.truncate(r.data_size_out as usize);
            Ok((r.duration.as_nanos() as f64, r.return_value, out))
        };
        match &netns {
            None => run(),
            Some((path, _)) => in_ns(path, run)?,
        }
    }

    /// The kernel's average nanoseconds per run of `bench_fresh` tail-calling `target` (`lb_xdp`
    /// or `bench_pass`) over `repeat` runs, each on `template` (untagged IPv4 TCP, padded to
    /// 64 bytes as Ethernet pads it) with its source port (`dport` false) or destination port
    /// raised by the number of runs before it (the checksum follows): a flow the program has
    /// not seen in every run, with warm caches. The port sequence starts at the template's
    /// port on every call. Also the last run's action and output.
    pub fn time_fresh(
        &mut self,
        target: &str,
        template: &[u8],
        dport: bool,
        repeat: u32,
    ) -> Result<(f64, u32, Vec<u8>)> {
        const LEN: usize = 64;
        if template.len() > LEN || template.len() < 54 {
            bail!("bench_fresh takes IPv4 TCP frames of 54 to {LEN} bytes, not {}", template.len());
        }
        let at = if dport { 36 } else { 34 };
        let port = u32::from(u16::from_be_bytes([template[at], template[at + 1]]));
        if port + repeat > 65_536 {
            bail!("bench_fresh: {repeat} runs from port {port} would wrap past 65535");
        }
        let target_fd = self.loaded(target)?.fd()?.try_clone()?;
        self.loaded(PROG_BENCH_FRESH)?;
        let bench = self.bench.as_mut().ok_or_else(|| anyhow!("no benchmark object"))?;
        let map = |name: &str| anyhow!("lb-bench has no map {name}");
        let mut targets =
            ProgramArray::try_from(bench.map_mut(MAP_BENCH_FRESH_TARGET).ok_or_else(|| map(MAP_BENCH_FRESH_TARGET))?)?;
        targets.set(0, &target_fd, 0)?;
        let mut padded = template.to_vec();
        padded.resize(LEN, 0);
        let mut words = [0u64; LEN / 8];
        for (w, bytes) in words.iter_mut().zip(padded.chunks_exact(8)) {
            // In memory order: the program stores each word as the host's u64.
            *w = u64::from_ne_bytes(bytes.try_into()?);
        }
        let mut frame: Array<_, [u64; LEN / 8]> =
            Array::try_from(bench.map_mut(MAP_BENCH_FRESH_FRAME).ok_or_else(|| map(MAP_BENCH_FRESH_FRAME))?)?;
        frame.set(0, words, 0)?;
        let mut cfg: Array<_, u64> =
            Array::try_from(bench.map_mut(MAP_BENCH_FRESH_CFG).ok_or_else(|| map(MAP_BENCH_FRESH_CFG))?)?;
        cfg.set(0, u64::from(dport), 0)?;
        cfg.set(1, 0, 0)?;
        self.time_repeat(PROG_BENCH_FRESH, &padded, repeat)
    }

    /// The interface packets arrive on (0 outside a namespace).
    fn ifindex(&self) -> u32 {
        self.netns.as_ref().map_or(0, |(_, i)| *i)
    }

    /// Program `prog`, loaded into the kernel on first use: `lb_xdp`, or a baseline of the
    /// benchmark's object.
    fn loaded(&mut self, prog: &str) -> Result<&Xdp> {
        let ebpf = if prog == PROG_XDP {
            self.dp.ebpf_mut()
        } else {
            if self.bench.is_none() {
                self.bench = Some(crate::bench_object()?);
            }
            self.bench.as_mut().ok_or_else(|| anyhow!("no benchmark object"))?
        };
        let p: &mut Xdp = ebpf.program_mut(prog).ok_or_else(|| anyhow!("no program {prog}"))?.try_into()?;
        if p.fd().is_err() {
            lb_daemon::dataplane::object::load_program(prog, || p.load())?;
        }
        Ok(p)
    }

    /// Adds `n` unrelated flows (distinct client addresses) to each connection table (IPv4's
    /// and IPv6's), after those of earlier calls, as a busy load balancer's would hold.
    pub fn prefill_conntrack(&mut self, n: u32) -> Result<()> {
        let value = FlowValue { real_id: 0, svc_id: 0, last_ns: 0, state: 0, pad8: 0, pad16: 0, pad32: 0 };
        let range = self.prefilled..self.prefilled.checked_add(n).context("too many flows")?;
        self.fill_unrelated(MAP_CONNTRACK, 0xffff, range.clone(), value)?;
        self.fill_unrelated4(0xff, range.clone(), value)?;
        self.prefilled = range.end;
        Ok(())
    }

    /// Writes as many unrelated flows into each flow table (`lb_conntrack4`, `lb_conntrack`,
    /// `lb_nat_rev`, `lb_halfopen`, `lb_halfopen_rev`) as it holds, so every table is full and each new
    /// entry from here on evicts one: the state of a load balancer under sustained load.
    /// Returns each table and the entries written.
    pub fn fill_flow_tables(&mut self) -> Result<Vec<(&'static str, u32)>> {
        let (main, half) = (self.conntrack, lb_common::consts::halfopen_size(self.conntrack));
        let flow = FlowValue { real_id: 0, svc_id: 0, last_ns: 0, state: 0, pad8: 0, pad16: 0, pad32: 0 };
        let rev = NatRev::default();
        self.fill_unrelated4(0xf0, 0..main, flow)?;
        self.fill_unrelated(MAP_CONNTRACK, 0xfff0, 0..main, flow)?;
        self.fill_unrelated(MAP_NAT_REV, 0xfff1, 0..main, rev)?;
        self.fill_unrelated(MAP_HALFOPEN, 0xfff2, 0..half, flow)?;
        self.fill_unrelated(MAP_HALFOPEN_REV, 0xfff3, 0..half, rev)?;
        Ok(vec![
            (MAP_CONNTRACK4, main),
            (MAP_CONNTRACK, main),
            (MAP_NAT_REV, main),
            (MAP_HALFOPEN, half),
            (MAP_HALFOPEN_REV, half),
        ])
    }

    /// Inserts flows number `flows`, from 2001:db8:`tag`::/96 + i (documentation addresses,
    /// map entries only: no packet carries them), into flow table `map`, each with `value`.
    fn fill_unrelated<V: aya::Pod>(
        &mut self,
        map: &str,
        tag: u16,
        flows: std::ops::Range<u32>,
        value: V,
    ) -> Result<()> {
        let mut table: HashMap<_, FlowKey, V> =
            HashMap::try_from(self.dp.ebpf_mut().map_mut(map).ok_or_else(|| anyhow!("no {map}"))?)?;
        let mut src = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        src[4..6].copy_from_slice(&tag.to_be_bytes());
        let mut dst = src;
        dst[15] = 1;
        let n = flows.end;
        for i in flows {
            src[12..].copy_from_slice(&i.to_be_bytes());
            let key = FlowKey {
                src,
                dst,
                sport: 40000,
                dport: 80,
                proto: 6,
                family: lb_common::consts::FAMILY_V6,
                pad: [0; 2],
            };
            table.insert(key, value, 0).with_context(|| format!("filling {map}: entry {i} of {n}"))?;
        }
        Ok(())
    }

    /// Inserts IPv4 flows number `flows` into `lb_conntrack4`, each with `value`: from
    /// 203.0.113.0/24 (ports and the last byte counting up) to 198.51.100.`tag` port 9, map
    /// entries only (no packet carries them; no test service listens on port 9).
    fn fill_unrelated4(&mut self, tag: u8, flows: std::ops::Range<u32>, value: FlowValue) -> Result<()> {
        let map = MAP_CONNTRACK4;
        let mut table: HashMap<_, FlowKey4, FlowValue> =
            HashMap::try_from(self.dp.ebpf_mut().map_mut(map).ok_or_else(|| anyhow!("no {map}"))?)?;
        anyhow::ensure!(flows.end <= 1 << 24, "{flows:?}: more than 203.0.113.0/24 and the ports tell apart");
        let n = flows.end;
        for i in flows {
            let key = FlowKey4 {
                src: [203, 0, 113, (i >> 16) as u8],
                dst: [198, 51, 100, tag],
                sport: i as u16,
                dport: 9,
                proto: 6,
                pad8: 0,
                pad16: 0,
            };
            table.insert(key, value, 0).with_context(|| format!("filling {map}: entry {i} of {n}"))?;
        }
        Ok(())
    }

    /// A second instance of the program on the same (pinned) maps, as a restarted daemon
    /// would have: for running packets on one thread while another reprograms.
    pub fn share(&self) -> Result<Self> {
        self.share_object(None)
    }

    /// `share` with the program of another object (`None`: the usual one), for timing two
    /// builds of the program against each other on the same maps.
    pub fn share_object(&self, path: Option<&std::path::Path>) -> Result<Self> {
        let object = lb_daemon::dataplane::object::load(path)?;
        let dp = BpfDataplane::load(&object, &self.pin_dir, Sizes { conntrack: 4096 })?;
        Ok(Self {
            dp,
            pin_dir: self.pin_dir.clone(),
            netns: self.netns.clone(),
            owns_pins: false,
            bench: None,
            conntrack: self.conntrack,
            prefilled: 0,
        })
    }

    /// Runs programming and packets inside `ns`, arriving on interface `ifindex` there.
    pub fn in_netns(&mut self, ns: &Netns, ifindex: u32) {
        self.netns = Some((ns.path(), ifindex));
    }

    /// Starts the daemon's next-hop cache on the fixture's namespace (its thread reads that
    /// namespace's routes and neighbours).
    pub fn start_nexthops(&mut self) -> Result<()> {
        match self.netns.clone() {
            None => self.dp.start_nexthops(),
            Some((path, _)) => in_ns(&path, || self.dp.start_nexthops())?,
        }
    }

    /// Has this (shared) instance's next-hop cache keep the real servers `other` programmed.
    pub fn follow_nexthops_of(&mut self, other: &Fixture) {
        self.dp.follow_nexthops_of(&other.dp);
    }

    /// Has the next-hop cache read routes and neighbours now; what it holds.
    pub fn sync_nexthops(&self) -> Result<lb_daemon::dataplane::nexthop::Summary> {
        self.dp.sync_nexthops()
    }

    /// The next-hop cache's maps, for a test to write entries itself (no cache thread then).
    pub fn nexthop_slots(&mut self) -> Result<lb_daemon::dataplane::nexthop::Slots> {
        self.dp.nexthop_slots()
    }

    /// Programs `services` as the daemon would (inside the namespace, if set: TUN source
    /// addresses come from its routes).
    pub fn apply(&mut self, services: &[DesiredService]) -> Result<()> {
        match self.netns.clone() {
            None => self.dp.apply(services),
            Some((path, _)) => in_ns(&path, || self.dp.apply(services))?,
        }
    }

    fn ebpf(&self) -> &Ebpf {
        self.dp.ebpf()
    }

    /// Writes `iface`'s MAC (in the fixture's namespace) as the daemon does at attach: frames
    /// arriving there unicast to another MAC are not load-balanced.
    pub fn learn_mac(&mut self, iface: &str) -> Result<()> {
        match self.netns.clone() {
            None => self.dp.learn_mac(iface),
            Some((path, _)) => in_ns(&path, || self.dp.learn_mac(iface))?,
        }
    }

    /// Fences these VIPs' services (VIP → `FENCE_*`) as the daemon does on VRRP transitions.
    pub fn set_fences(&mut self, fences: &std::collections::BTreeMap<IpAddr, u32>) -> Result<()> {
        self.dp.set_fences(fences)
    }

    /// Adds a service key by itself (both key maps, as the daemon writes them), without a
    /// configuration behind it.
    pub fn add_service(&mut self, key: ServiceKey, id: u32) -> Result<()> {
        use lb_daemon::dataplane::bpf::twins;
        twins::insert(self.dp.ebpf_mut(), twins::SERVICES, &key, &lb_common::ServiceValue { id, flags: 0 })
    }

    /// Runs the program once on `frame`: the verdict and the output frame.
    pub fn run(&self, frame: &[u8]) -> Result<(u32, Vec<u8>)> {
        let mut all = self.run_all(std::slice::from_ref(&frame.to_vec()))?;
        all.pop().ok_or_else(|| anyhow!("no result"))
    }

    /// `run_all` on CPU `cpu` (the calling thread is pinned there for the runs): for running
    /// the program on two CPUs at once.
    pub fn run_all_on(&self, cpu: usize, frames: &[Vec<u8>]) -> Result<Vec<(u32, Vec<u8>)>> {
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut set = nix::sched::CpuSet::new();
                set.set(cpu).context("CPU number")?;
                nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).context("pinning to a CPU")?;
                self.run_all(frames)
            })
            .join()
            .map_err(|_| anyhow!("the pinned thread panicked"))?
        })
    }

    /// Runs the program once on each frame in turn (one namespace switch for all of them):
    /// the verdicts and output frames.
    pub fn run_all(&self, frames: &[Vec<u8>]) -> Result<Vec<(u32, Vec<u8>)>> {
        let prog: &Xdp = self.ebpf().program(PROG_XDP).ok_or_else(|| anyhow!("no {PROG_XDP}"))?.try_into()?;
        let run = |ifindex: u32| -> Result<Vec<(u32, Vec<u8>)>> {
            let mut results = Vec::with_capacity(frames.len());
            for frame in frames {
                let mut out = vec![0u8; frame.len() + 512];
                let res = test_run(prog, frame, &mut out, ifindex, 1)?;
                out.truncate(res.data_size_out as usize);
                results.push((res.return_value, out));
            }
            Ok(results)
        };
        match &self.netns {
            None => run(0),
            Some((path, ifindex)) => in_ns(path, || run(*ifindex))?,
        }
    }

    /// Makes every tracked open flow look idle since boot, as if its timeout had passed. The
    /// clock starts at boot, so "idle since boot" only exceeds a timeout shorter than the
    /// uptime: open flows take the SYN state's (60 s), the shortest, which a machine running
    /// this suite has always been up longer than (the established timeout is 15 minutes).
    pub fn age_flows(&mut self) -> Result<()> {
        let mut ct = Conntrack::open(&self.pin_dir)?;
        for (k, mut v) in ct.entries() {
            v.last_ns = 0;
            if v.state == lb_common::consts::CT_EST {
                v.state = lb_common::consts::CT_SYN;
            }
            ct.insert(&k, v)?;
        }
        Ok(())
    }

    /// The id `lb_reals` holds real server `addr` under, if it is programmed.
    pub fn real_id(&self, addr: std::net::SocketAddr) -> Result<Option<u32>> {
        let reals: aya::maps::Array<_, lb_common::RealDef> = aya::maps::Array::try_from(
            self.ebpf()
                .map(lb_common::consts::MAP_REALS)
                .ok_or_else(|| anyhow!("no {}", lb_common::consts::MAP_REALS))?,
        )?;
        for (id, r) in reals.iter().enumerate() {
            let r = r?;
            let ip = lb_daemon::dataplane::services::ip_of(&r.addr, r.family);
            if r.flags & lb_common::consts::REAL_PRESENT != 0 && std::net::SocketAddr::new(ip, r.port) == addr {
                return Ok(Some(id as u32));
            }
        }
        Ok(None)
    }

    /// How many established flows the tables hold (`lb_conntrack4` and `lb_conntrack`).
    pub fn tracked_flows(&self) -> Result<usize> {
        Ok(Conntrack::open(&self.pin_dir)?.count() as usize)
    }

    /// The daemon's periodic connection-count housekeeping.
    pub fn reconcile_conns(&mut self) -> Result<()> {
        self.dp.reconcile_conns()
    }

    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    /// What `lb-daemon stats` would print.
    pub fn snapshot(&self) -> Result<StatsSnapshot> {
        read_stats(&self.pin_dir)
    }

    pub fn stats(&self) -> Result<GlobalStats> {
        let m: PerCpuArray<_, GlobalStats> =
            PerCpuArray::try_from(self.ebpf().map(MAP_STATS).ok_or_else(|| anyhow!("no {MAP_STATS}"))?)?;
        Ok(GlobalStats::sum(m.get(&0, 0)?.iter()))
    }

    /// Service `id`'s counters as `lb-daemon stats` adds them up.
    pub fn service_stats(&self, id: u32) -> Result<ServiceStats> {
        self.dp.service_stats(id)
    }

    /// Runs one case and checks everything it promises; the error says what differed.
    pub fn check(&self, case: &Case) -> Result<()> {
        let before = self.stats()?;
        let svc_before = case.service.map(|id| self.service_stats(id)).transpose()?;
        let (action, out) = self.run(&case.input)?;
        let after = self.stats()?;
        if action != case.action {
            bail!("verdict {} (want {})", action_name(action), action_name(case.action));
        }
        let want = match &case.output {
            Output::Unchanged => &case.input,
            Output::Frame(f) => f,
        };
        if &out != want {
            bail!("output frame differs\n got: {}\nwant: {}", hex(&out), hex(want));
        }
        // Exactly these counters move, by exactly these amounts; every other stays.
        let len = case.input.len() as u64;
        let verdict = match action {
            XDP_PASS => "pass",
            XDP_DROP => "drop",
            XDP_TX => "tx",
            _ => "redirect",
        };
        let mut expected: BTreeMap<String, u64> = BTreeMap::new();
        expected.insert("rx_packets".into(), 1);
        expected.insert("rx_bytes".into(), len);
        expected.insert(format!("{verdict}_packets"), 1);
        expected.insert(format!("{verdict}_bytes"), len);
        expected.insert(case.reason.to_string(), 1);
        for c in case.also {
            expected.insert(c.to_string(), 1);
        }
        if !GlobalStats::FIELD_NAMES.contains(&case.reason) {
            bail!("case names unknown counter {}", case.reason);
        }
        let mut diffs = Vec::new();
        for ((name, a), (_, b)) in after.fields().zip(before.fields()) {
            let got = a - b;
            let want = expected.get(name).copied().unwrap_or(0);
            if got != want {
                diffs.push(format!("{name}: moved by {got}, want {want}"));
            }
        }
        if !diffs.is_empty() {
            bail!("counters: {}", diffs.join(", "));
        }
        if let (Some(id), Some(b)) = (case.service, svc_before) {
            let a = self.service_stats(id)?;
            if (a.packets - b.packets, a.bytes - b.bytes) != (1, len) {
                bail!(
                    "service {id} counters moved by {} packets / {} bytes, want 1 / {len}",
                    a.packets - b.packets,
                    a.bytes - b.bytes
                );
            }
        }
        Ok(())
    }

    /// Runs every case; fails listing each case that did not hold.
    pub fn check_all(&self, cases: &[Case]) -> Result<()> {
        let failures: Vec<String> =
            cases.iter().filter_map(|c| self.check(c).err().map(|e| format!("case `{}`: {e:#}", c.name))).collect();
        if failures.is_empty() {
            Ok(())
        } else {
            bail!("{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"))
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join("")
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if self.owns_pins {
            let _ = lb_daemon::dataplane::bpf::remove_pins_in(&self.pin_dir);
        }
    }
}

/// The schedulers the BPF data plane runs, in keepalived's order: rr, wrr, lc, wlc, lblc, sh,
/// dh, mh.
pub fn bpf_schedulers() -> Vec<Scheduler> {
    Scheduler::ALL.iter().map(|(_, s)| *s).filter(|s| s.in_bpf()).collect()
}

/// A TCP service on `vip`:`port` as a config naming only its scheduler and forwarding method
/// gives it: no persistence, no sorry server, quorum 1.
pub fn tcp_service(
    name: impl Into<String>,
    vip: IpAddr,
    port: u16,
    scheduler: Scheduler,
    forward: ForwardMethod,
    reals: Vec<DesiredReal>,
) -> DesiredService {
    DesiredService {
        name: name.into(),
        keys: vec![key_of(vip, port, lb_common::consts::IPPROTO_TCP)],
        marks: Vec::new(),
        joined: Vec::new(),
        joined_marks: Vec::new(),
        ops: false,
        sched_flags: 0,
        mh_seed: 0,
        scheduler,
        forward,
        persist_timeout: 0,
        persist_prefix: None,
        persistence_engine: None,
        reals,
        sorry: None,
        sorry_fwd: None,
        marks_v6: false,
        sorry_inhibit: false,
        quorum: 1,
        hysteresis: 0,
        quorum_up: true,
    }
}

/// A namespace whose interface `fx0` (the packets' `LB_MAC`) reaches the client and real
/// servers 0 and 1 (`real_mac(i)`) through permanent neighbour entries, so the program's
/// FIB lookups succeed; and a fixture with `conntrack` entries running on that interface.
/// Returns the namespace, its veth peer's namespace and the fixture.
pub fn in_fib_namespace(conntrack: u32) -> Result<(Netns, Netns, Fixture)> {
    let ns = Netns::new("fx")?;
    let peer = Netns::new("fxp")?;
    crate::netns::veth(&ns, "fx0", &peer, "fxp0")?;
    ns.ip(&["link", "set", "fx0", "address", &mac_text(LB_MAC)])?;
    for cidr in [
        format!("{LB_CLIENT_SIDE4}/24"),
        format!("{LB_BACKEND_SIDE4}/24"),
        format!("{LB_CLIENT_SIDE6}/64"),
        format!("{LB_BACKEND_SIDE6}/64"),
    ] {
        crate::netns::addr(&ns, "fx0", &cidr)?;
    }
    for ip in [IpAddr::from(CLIENT4), CLIENT6.into()] {
        neighbour(&ns, ip, CLIENT_MAC)?;
    }
    set_real_macs(&ns, real_mac)?;
    ns.sh("sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1")?;
    let mut f = Fixture::load_sized(conntrack).context("loading lb-ebpf (run `cargo xtask build-ebpf`)")?;
    let ifindex = ns.ifindex("fx0")?;
    f.in_netns(&ns, ifindex);
    // As the daemon does at attach: frames to another MAC than fx0's (`LB_MAC`) are not ours.
    f.learn_mac("fx0")?;
    Ok((ns, peer, f))
}

/// The real servers' (0 and 1) neighbour entries on `in_fib_namespace`'s `fx0`: `mac(i)`
/// for real server `i`, both families.
pub fn set_real_macs(ns: &Netns, mac: impl Fn(usize) -> [u8; 6]) -> Result<()> {
    for i in 0..2 {
        for ip in [IpAddr::from(backend4(i)), backend6(i).into()] {
            neighbour(ns, ip, mac(i))?;
        }
    }
    Ok(())
}

/// The client's (`CLIENT4`, `CLIENT6`) neighbour entries on `in_fib_namespace`'s `fx0`.
pub fn set_client_mac(ns: &Netns, mac: [u8; 6]) -> Result<()> {
    for ip in [IpAddr::from(CLIENT4), CLIENT6.into()] {
        neighbour(ns, ip, mac)?;
    }
    Ok(())
}

fn neighbour(ns: &Netns, ip: IpAddr, mac: [u8; 6]) -> Result<()> {
    ns.ip(&["neigh", "replace", &ip.to_string(), "lladdr", &mac_text(mac), "dev", "fx0", "nud", "permanent"])?;
    Ok(())
}

/// One `BPF_PROG_TEST_RUN` of `prog` on `frame` (`repeat` times), arriving on `ifindex`
/// when it is not 0; the output frame goes to `out`.
fn test_run(prog: &Xdp, frame: &[u8], out: &mut [u8], ifindex: u32, repeat: u32) -> Result<TestRunResult> {
    // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex.
    let ctx: Vec<u8> = [0u32, frame.len() as u32, 0, ifindex, 0, 0].iter().flat_map(|v| v.to_ne_bytes()).collect();
    let mut opts = TestRunOptions::new();
    opts.data_in = Some(frame);
    opts.data_out = Some(out);
    opts.repeat = repeat;
    if ifindex != 0 {
        opts.ctx_in = Some(&ctx);
    }
    prog.test_run(opts).map_err(|e: ProgramError| anyhow!("BPF_PROG_TEST_RUN: {e}"))
}

/// Runs `f` on a thread inside the namespace at `path` (FIB lookups and `ingress_ifindex`
/// resolve in the calling thread's namespace).
fn in_ns<R: Send>(path: &Path, f: impl FnOnce() -> R + Send) -> Result<R> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).context("setns")?;
            Ok(f())
        })
        .join()
        .map_err(|_| anyhow!("fixture thread panicked"))?
    })
}
