//! Benchmarks that need namespaces and real peers (`cargo xtask bench`). They report; they
//! never fail on timing.
//!
//! Failover: two VRRP nodes on one segment, ours or Debian's keepalived, the master killed
//! (SIGKILL) or stopped (SIGTERM). Two gaps: from the kill to the first gratuitous ARP the
//! new master sends, as tcpdump timestamps it on the client's link, and from the kill to the
//! first client packet the new master answers on the VIP (a UDP probe every 2 ms to an echo
//! service on both nodes); set beside the RFC's Master_Down_Interval (3 × advert + skew) or
//! skew.

use std::{
    io::{BufRead, BufReader},
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::{Child, Stdio},
    sync::mpsc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, Result, bail};
use nix::{sys::signal::Signal, unistd::Pid};
use serde_json::json;

use crate::stats;
use lb_tests::{
    addrs::VRRP_VIP4,
    daemon::{self, Daemon, Keepalived},
    netns::{Netns, Segment},
    servers::Backend,
};

const VIP: Ipv4Addr = VRRP_VIP4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Impl {
    Ours,
    Keepalived,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// kill -9: no goodbye, the backup waits out Master_Down_Interval.
    Hard,
    /// SIGTERM: the master sends priority 0, the backup waits its skew only.
    Graceful,
}

#[derive(Clone, Debug)]
pub struct Scenario {
    pub imp: Impl,
    pub version: u8,
    /// Centiseconds.
    pub advert_cs: u32,
    pub stop: Stop,
}

impl Scenario {
    /// What RFC 5798 allows the backup (priority 100): 3 × advert + skew, or skew alone
    /// after a priority-0 advert.
    pub fn rfc_ms(&self) -> f64 {
        let advert_ms = f64::from(self.advert_cs) * 10.0;
        let skew_ms = if self.version == 2 { 156.0 / 256.0 * 1000.0 } else { 156.0 / 256.0 * advert_ms };
        match self.stop {
            Stop::Hard => 3.0 * advert_ms + skew_ms,
            Stop::Graceful => skew_ms,
        }
    }

    pub fn name(&self) -> String {
        format!(
            "{} v{} advert {} s, {}",
            match self.imp {
                Impl::Ours => "lb-daemon",
                Impl::Keepalived => "keepalived",
            },
            self.version,
            f64::from(self.advert_cs) / 100.0,
            match self.stop {
                Stop::Hard => "kill -9",
                Stop::Graceful => "SIGTERM",
            }
        )
    }
}

/// Every scenario issue "VRRP" and the benchmark issue ask for.
pub fn scenarios() -> Vec<Scenario> {
    let mut v = Vec::new();
    for imp in [Impl::Ours, Impl::Keepalived] {
        for (version, advert_cs) in [(2, 100), (3, 10)] {
            for stop in [Stop::Hard, Stop::Graceful] {
                v.push(Scenario { imp, version, advert_cs, stop });
            }
        }
    }
    v
}

fn config(s: &Scenario, prio: u8) -> String {
    let advert = format!("{}", f64::from(s.advert_cs) / 100.0);
    format!(
        "global_defs {{\n    router_id bench\n    vrrp_garp_master_delay 0\n}}\nvrrp_instance VI_1 {{\n    state BACKUP\n    \
         interface l0\n    version {}\n    virtual_router_id 51\n    priority {prio}\n    advert_int {advert}\n    \
         virtual_ipaddress {{\n        {VIP}/24\n    }}\n}}\n",
        s.version
    )
}

enum Node {
    Ours(Daemon),
    Ka(Keepalived, PathBuf),
}

impl Node {
    fn start(s: &Scenario, ns: &Netns, dir: &Path, i: usize, prio: u8) -> Result<Node> {
        let conf = dir.join(format!("node{i}.conf"));
        std::fs::write(&conf, config(s, prio))?;
        Ok(match s.imp {
            Impl::Ours => {
                let pins = daemon::pin_dir(&format!("bench-fo{i}"));
                Node::Ours(Daemon::start(ns, &conf, &pins, &["--interface", "l0"])?)
            }
            Impl::Keepalived => {
                let tag = format!("ka{i}");
                Node::Ka(Keepalived::start(ns, &conf, dir, &tag)?, dir.join(format!("{tag}-vrrp.pid")))
            }
        })
    }

    /// Whether the last state the node logged is MASTER.
    fn is_master(&self) -> bool {
        let last = match self {
            Node::Ours(d) => d.log().into_iter().rev().find(|l| l.contains(" -> ")),
            Node::Ka(k, _) => k.log().lines().rev().find(|l| l.contains("Entering ")).map(str::to_string),
        };
        last.is_some_and(|l| l.contains("-> MASTER") || l.contains("Entering MASTER STATE"))
    }

    fn stop(&mut self, how: Stop) -> Result<()> {
        match (self, how) {
            (Node::Ours(d), Stop::Hard) => d.signal(Signal::SIGKILL),
            (Node::Ours(d), Stop::Graceful) => d.signal(Signal::SIGTERM),
            (Node::Ka(_, vrrp_pid), Stop::Hard) => {
                // keepalived's VRRP work happens in a child process: that is the one to kill.
                let pid: i32 = std::fs::read_to_string(&*vrrp_pid)?.trim().parse()?;
                nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL)?;
                Ok(())
            }
            (Node::Ka(k, _), Stop::Graceful) => k.stop(),
        }
    }
}

fn epoch_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// tcpdump on the client's link, gratuitous ARPs for the VIP, with epoch timestamps.
struct Capture {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Capture {
    fn start(ns: &Netns) -> Result<Capture> {
        let mut child = ns
            .command("tcpdump")
            .args(["-i", "c0", "-n", "-e", "-tt", "-l", "--immediate-mode", "arp"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("tcpdump")?;
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().context("tcpdump stdout")?;
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        // tcpdump says "listening on" on stderr once the capture runs; the pipe is drained
        // for as long as tcpdump lives (closing it would kill tcpdump with SIGPIPE).
        let err = child.stderr.take().context("tcpdump stderr")?;
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                if l.contains("listening on") {
                    let _ = ready_tx.send(());
                }
            }
        });
        ready_rx.recv_timeout(Duration::from_secs(5)).context("tcpdump did not start listening")?;
        Ok(Capture { child, lines: rx })
    }

    /// The timestamp of the first gratuitous ARP for the VIP from `mac`, or what was seen.
    fn first_garp_from(&self, mac: &str, timeout: Duration) -> Result<f64, Vec<String>> {
        let deadline = std::time::Instant::now() + timeout;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            let Ok(l) = self.lines.recv_timeout(left) else { break };
            seen.push(l.clone());
            let mut w = l.split_whitespace();
            let ts = w.next().and_then(|t| t.parse::<f64>().ok());
            // "who-has VIP (Broadcast) tell VIP" or "who-has VIP tell VIP": a gratuitous ARP.
            if w.next() == Some(mac)
                && l.contains(&format!("who-has {VIP} "))
                && l.contains(&format!("tell {VIP},"))
                && let Some(ts) = ts
            {
                return Ok(ts);
            }
        }
        Err(seen)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// UDP port of the echo service each node runs on every address (so on the VIP, too).
const PROBE_PORT: u16 = 7;

/// The client's probes: one datagram to the VIP every 2 ms from `start` on; the epoch time of
/// the first answer from `name`. Bounded: at most 10 s (5000 probes).
fn first_answer_from(client: &Netns, name: &'static str) -> Result<std::thread::JoinHandle<Option<f64>>> {
    let sock = client.run(|| -> std::io::Result<std::net::UdpSocket> {
        let s = std::net::UdpSocket::bind("0.0.0.0:0")?;
        s.set_read_timeout(Some(Duration::from_millis(2)))?;
        Ok(s)
    })??;
    let to = std::net::SocketAddr::from((VIP, PROBE_PORT));
    Ok(std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        for _ in 0..5000 {
            let _ = sock.send_to(b"probe", to);
            // Drain what came back within this 2 ms slot.
            while let Ok((n, _)) = sock.recv_from(&mut buf) {
                if &buf[..n] == name.as_bytes() {
                    return Some(epoch_now());
                }
            }
        }
        None
    }))
}

/// One failover: milliseconds from the stop to the new master's first gratuitous ARP, and to
/// the first client packet it answered on the VIP.
pub fn failover_once(s: &Scenario, dir: &Path) -> Result<(f64, f64)> {
    let seg = Segment::new(2)?;
    let _echo: Vec<Backend> =
        (0..2).map(|i| Backend::start(&seg.nodes[i], format!("node{i}"), ([0, 0, 0, 0], PROBE_PORT).into())).collect();
    let mut n0 = Node::start(s, &seg.nodes[0], dir, 0, 150)?;
    let n1 = Node::start(s, &seg.nodes[1], dir, 1, 100)?;
    let down = Duration::from_millis((s.rfc_ms() + f64::from(s.advert_cs) * 30.0) as u64);
    let deadline = std::time::Instant::now() + Duration::from_secs(10) + down;
    while !n0.is_master() {
        if std::time::Instant::now() > deadline {
            bail!("{}: node 0 never became master", s.name());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Settled: node 1 has heard node 0 for longer than its Master_Down_Interval.
    std::thread::sleep(down * 2);
    if n1.is_master() {
        bail!("{}: two masters before the failover", s.name());
    }
    let cap = Capture::start(&seg.client)?;
    let mac1 = seg.mac(1)?;
    let answered = first_answer_from(&seg.client, "node1")?;
    std::thread::sleep(Duration::from_millis(200));
    let t0 = epoch_now();
    n0.stop(s.stop)?;
    let t1 = match cap.first_garp_from(&mac1, Duration::from_secs(10)) {
        Ok(t) => t,
        Err(seen) => bail!("{}: no gratuitous ARP from the backup ({mac1}) within 10 s; captured: {seen:#?}", s.name()),
    };
    let Some(t2) = answered.join().ok().flatten() else {
        bail!("{}: the new master answered no probe on the VIP within 10 s", s.name());
    };
    Ok(((t1 - t0) * 1000.0, (t2 - t0) * 1000.0))
}

/// Runs every scenario five times (once when `quick`); prints a markdown table to `out` and
/// returns the rows as JSON.
pub fn section(quick: bool, out: &mut dyn std::io::Write) -> Result<serde_json::Value> {
    let runs = if quick { 1 } else { 5 };
    let dir = std::env::temp_dir().join(format!("lbt-bench-fo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    writeln!(out, "{runs} run(s) per scenario\n")?;
    writeln!(
        out,
        "| scenario | RFC bound (ms) | first gratuitous ARP: median (ms) | min–max (ms) | first answer on the VIP: median (ms) | min–max (ms) | runs |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|---:|")?;
    let mut rows = Vec::new();
    for s in scenarios() {
        let (mut gaps, mut answers) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let (garp, answer) = failover_once(&s, &dir)?;
            gaps.push(garp);
            answers.push(answer);
        }
        let (st, an) = (stats(&gaps), stats(&answers));
        writeln!(
            out,
            "| {} | {:.0} | {:.0} | {:.0}–{:.0} | {:.0} | {:.0}–{:.0} | {} |",
            s.name(),
            s.rfc_ms(),
            st.median,
            st.min,
            st.max,
            an.median,
            an.min,
            an.max,
            runs
        )?;
        rows.push(json!({
            "scenario": s.name(), "rfc_ms": s.rfc_ms(), "median_ms": st.median,
            "min_ms": st.min, "max_ms": st.max, "runs_ms": gaps,
            "answer_median_ms": an.median, "answer_min_ms": an.min, "answer_max_ms": an.max, "answer_runs_ms": answers,
        }));
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(json!(rows))
}
