//! `lb-daemon trace` end to end: lb-daemon runs a NAT service in namespaces, the tracer runs
//! beside it in the load balancer's namespace, and the client talks to the VIP. The text
//! names each frame's service, real server, verdict and reason; the pcap-ng file reads in
//! tcpdump (the frames as they left lb_xdp, rewritten) and tshark (the decisions as packet
//! comments); filters hold back what they should; and with no tracer running the program
//! writes nothing to the ring, also after a tracer was killed with SIGKILL.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use aya::maps::{Map, MapData, RingBuf};
use lb_tests::prelude::*;
use nix::{sys::signal::Signal, unistd::Pid};

const CONF: &str = "
virtual_server 203.0.113.10 80 {
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 198.51.100.11 8080 {
    }
    real_server 198.51.100.12 8080 {
    }
}
virtual_server 203.0.113.10 53 {
    lb_algo rr
    lb_kind NAT
    protocol UDP
    real_server 198.51.100.11 8080 {
    }
}
";

const SERVICE: &str = "203.0.113.10:80/tcp";

/// `lb-daemon trace ARGS` running in the load balancer's namespace: its text output goes to
/// a file, its stderr is collected. Killed on drop.
struct Tracer {
    child: Option<Child>,
    out: PathBuf,
    err: Arc<Mutex<Vec<String>>>,
}

impl Tracer {
    /// Starts the tracer and waits until it says it is tracing; fails with its stderr if it
    /// exits first.
    fn start(lb: &Netns, pins: &Path, out: PathBuf, args: &[&str]) -> Result<Tracer, String> {
        let mut t = Self::spawn(lb, pins, out, args);
        let up = eventually(Duration::from_secs(10), || {
            t.err().iter().any(|l| l.contains("lb-daemon trace: tracing")) || t.exited()
        });
        if !up || t.exited() {
            let status = t.wait(Duration::from_secs(2));
            return Err(format!("tracer not tracing ({status:?}): {:?}", t.err()));
        }
        Ok(t)
    }

    fn spawn(lb: &Netns, pins: &Path, out: PathBuf, args: &[&str]) -> Tracer {
        let file = std::fs::File::create(&out).unwrap();
        let mut child = lb
            .command(daemon::binary().unwrap())
            .arg("trace")
            .arg("--pin-dir")
            .arg(pins)
            .args(args)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning lb-daemon trace");
        let err = Arc::new(Mutex::new(Vec::new()));
        let sink = err.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().map(|mut l| l.push(line)).ok();
            }
        });
        Tracer { child: Some(child), out, err }
    }

    fn err(&self) -> Vec<String> {
        self.err.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.out).unwrap_or_default().lines().map(str::to_string).collect()
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).expect("tracer already reaped")
    }

    fn exited(&mut self) -> bool {
        self.child.as_mut().is_none_or(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    fn signal(&self, sig: Signal) {
        // nsenter execs the tracer: the pid we spawned is the tracer's.
        nix::sys::signal::kill(Pid::from_raw(self.pid() as i32), sig).unwrap();
    }

    /// Waits up to `timeout` for the tracer to exit; its status (None: still running).
    fn wait(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let c = self.child.as_mut()?;
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(s)) = c.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `lb-daemon trace ARGS` that must fail at once: its stderr.
fn trace_fails(lb: &Netns, pins: &Path, args: &[&str]) -> String {
    let out = lb
        .command(daemon::binary().unwrap())
        .arg("trace")
        .arg("--pin-dir")
        .arg(pins)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "trace {args:?} succeeded: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `lb_trace_cfg`'s entry as bpftool shows it (by field name).
fn trace_cfg(pins: &Path) -> serde_json::Value {
    let dump = map_dump(&pins.join("lb_trace_cfg")).unwrap();
    dump[0]["formatted"]["value"].clone()
}

/// The trace ring, read by this test as a second consumer: what the program writes while
/// no tracer runs.
fn ring(pins: &Path) -> RingBuf<MapData> {
    let data = MapData::from_pin(pins.join("lb_trace")).unwrap();
    RingBuf::try_from(Map::from_map_data(data).unwrap()).unwrap()
}

fn drain(ring: &mut RingBuf<MapData>) -> usize {
    let mut n = 0;
    while ring.next().is_some() {
        n += 1;
    }
    n
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_nat_service_is_traced_as_text_and_as_pcapng_with_the_decisions_as_comments() {
    require_root();
    let topo = LbTopology::new(2).unwrap();
    let _servers = backends(&topo, 8080);
    let (_cfg, pins, d) = daemon::on_lb(&topo, "trace-nat", CONF, &[]);
    let dir = TempDir::new("trace-nat");
    let pcap = dir.join("trace.pcapng");
    let count = 8;
    let mut t = Tracer::start(
        &topo.lb,
        &pins,
        dir.join("trace.txt"),
        &["--service", "203.0.113.10:80", "--count", &count.to_string(), "--pcap", pcap.to_str().unwrap()],
    )
    .unwrap();
    // The other service's traffic first: the filter must hold it back.
    assert_eq!(udp_ask(&topo.client, (VIP4, 53).into()), "be0");
    let first = tcp_ask(&topo.client, (VIP4, 80).into(), None);
    for _ in 0..2 {
        tcp_ask(&topo.client, (VIP4, 80).into(), None);
    }
    let status = t.wait(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "tracer did not end after {count} records: {status:?} {:?}\nrecords: {:#?}\nfirst answer: {first:?}\n{:#?}",
        t.err(),
        t.lines(),
        d.log()
    );
    assert!(t.err().iter().any(|l| l.contains("count reached; 8 records")), "{:?}", t.err());

    let lines = t.lines();
    assert_eq!(lines.len(), count, "{lines:#?}");
    for l in &lines {
        assert!(l.contains(&format!("service {SERVICE} real 198.51.100.1")), "{l}");
        assert!(!l.contains(":53 ") && !l.contains("udp"), "the other service was traced: {l}");
    }
    // The generation the data plane runs the service in (its only one so far).
    let svc_gen = map_dump(&pins.join("lb_svc_gen")).unwrap();
    let generation = svc_gen[0]["formatted"]["value"].as_u64().unwrap();
    // The first frame is the first connection's SYN, scheduled here, to whoever answered.
    let real_of = |name: &str| backend4(name.trim_start_matches("be").parse().unwrap());
    let syn = format!(" l0 redirect fwd_nat service {SERVICE} real {}:8080 {CLIENT4}:", real_of(&first));
    assert!(lines[0].contains(&syn), "{}\nwanted {syn}", lines[0]);
    assert!(lines[0].ends_with(&format!("> {VIP4}:80 tcp ct new half-open gen {generation} len 74")), "{}", lines[0]);
    // The handshake's ACK moves the flow out of the half-open table; then it hits.
    assert!(lines.iter().any(|l| l.contains(" l0 redirect fwd_nat ") && l.contains(" ct hit promoted ")), "{lines:#?}");
    assert!(lines.iter().any(|l| l.contains(" l0 redirect fwd_nat ") && l.contains(" ct hit gen ")), "{lines:#?}");
    // The real server's SYN-ACK: the NAT reply, in on the real servers' side.
    let reply = format!(
        " l1 redirect nat_reply service {SERVICE} real {}:8080 {}:8080 > {CLIENT4}:",
        real_of(&first),
        real_of(&first)
    );
    assert!(
        lines.iter().any(|l| l.contains(&reply) && l.contains(" tcp ct reply gen - ")),
        "{lines:#?}\nwanted {reply}"
    );

    // tcpdump reads the file: the frames as they left lb_xdp, so NAT's rewrites show.
    let dumped = run_ok(Command::new("tcpdump").args(["-nn", "-r"]).arg(&pcap));
    let packets: Vec<&str> = dumped.lines().collect();
    assert_eq!(packets.len(), count, "{dumped}");
    assert!(
        packets[0].contains(&format!("{CLIENT4}."))
            && packets[0].contains(&format!("> {}.8080: Flags [S]", real_of(&first))),
        "{dumped}"
    );
    assert!(
        packets.iter().any(|p| p.contains(&format!("{VIP4}.80 > {CLIENT4}."))),
        "replies leave from the VIP: {dumped}"
    );
    // tshark shows each decision as the packet's comment, on the interface it came in on.
    let comments = run_ok(Command::new("tshark").args(["-r"]).arg(&pcap).args([
        "-T",
        "fields",
        "-e",
        "frame.interface_name",
        "-e",
        "frame.comment",
    ]));
    let comments: Vec<&str> = comments.lines().collect();
    assert_eq!(comments.len(), count, "{comments:#?}");
    for (c, l) in comments.iter().zip(&lines) {
        let (iface, comment) = c.split_once('\t').unwrap_or_else(|| panic!("no comment: {c:?}"));
        let decision = l.split_once(' ').unwrap().1;
        assert_eq!(comment, decision);
        assert_eq!(Some(iface), decision.split(' ').next());
    }
    // Tracing is off again.
    assert_eq!(trace_cfg(&pins)["enabled"], 0, "{}", trace_cfg(&pins));
}

#[test]
fn filters_hold_back_what_they_exclude_and_nothing_is_written_while_no_tracer_runs() {
    require_root();
    let topo = LbTopology::new(2).unwrap();
    let _servers = backends(&topo, 8080);
    let (_cfg, pins, d) = daemon::on_lb(&topo, "trace-filter", CONF, &[]);
    let dir = TempDir::new("trace-filter");
    let ask = || tcp_ask(&topo.client, (VIP4, 80).into(), None);

    // Names are checked before anything is touched.
    let e = trace_fails(&topo.lb, &pins, &["--reason", "fwd_nat", "--reason", "bogus"]);
    assert!(e.contains("unknown reason \"bogus\"") && e.contains("no_service") && e.contains("fwd_tun"), "{e}");
    let e = trace_fails(&topo.lb, &pins, &["--service", "203.0.113.10:81"]);
    assert!(e.contains("no configured service 203.0.113.10:81") && e.contains(SERVICE), "{e}");

    // Another client: nothing.
    let mut other = Tracer::start(&topo.lb, &pins, dir.join("other.txt"), &["--client", "192.0.2.99"]).unwrap();
    // One tracer at a time.
    let e = trace_fails(&topo.lb, &pins, &[]);
    assert!(e.contains(&format!("another lb-daemon trace (pid {})", other.pid())), "{e}");
    for _ in 0..3 {
        ask();
    }
    std::thread::sleep(Duration::from_millis(300));
    other.signal(Signal::SIGINT);
    let status = other.wait(Duration::from_secs(5));
    assert!(status.is_some_and(|s| s.success()), "{status:?} {:?}", other.err());
    assert!(other.lines().is_empty(), "{:#?}", other.lines());
    assert!(other.err().iter().any(|l| l.contains("stopped; 0 records")), "{:?}", other.err());
    assert_eq!(trace_cfg(&pins)["enabled"], 0);

    // A reason: only the frames counted under it.
    let mut reason = Tracer::start(
        &topo.lb,
        &pins,
        dir.join("reason.txt"),
        &["--reason", "reason_no_service", "--count", "2", "--client", &CLIENT4.to_string()],
    )
    .unwrap();
    ask();
    topo.client
        .run(|| {
            let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
            for _ in 0..2 {
                s.send_to(b"nobody", (NO_SERVICE4, 9999)).unwrap();
            }
        })
        .unwrap();
    assert!(reason.wait(Duration::from_secs(10)).is_some_and(|s| s.success()), "{:?}", reason.err());
    let lines = reason.lines();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    for l in &lines {
        assert!(l.contains(&format!(" l0 pass no_service service - real - {CLIENT4}:")), "{l}");
        assert!(l.contains(&format!("> {NO_SERVICE4}:9999 udp ct - gen - ")), "{l}");
    }

    // With no tracer, the program writes nothing to the ring.
    let mut ring = ring(&pins);
    drain(&mut ring);
    ask();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(drain(&mut ring), 0, "records written while no tracer runs");

    // A tracer killed with SIGKILL leaves its filter on...
    let killed = Tracer::start(&topo.lb, &pins, dir.join("killed.txt"), &[]).unwrap();
    ask();
    assert!(eventually(Duration::from_secs(5), || !killed.lines().is_empty()), "the tracer traced nothing");
    let pid = killed.pid();
    killed.signal(Signal::SIGKILL);
    drop(killed);
    // (Unless the housekeeping came by in the meantime: it runs every 10 s.)
    let gone = format!("lb-daemon trace (pid {pid}) is gone");
    let cleared = || d.log().iter().any(|l| l.contains(&gone));
    let cfg = trace_cfg(&pins);
    if cfg["enabled"] == 1 {
        assert_eq!(cfg["pid"].as_u64(), Some(u64::from(pid)), "{cfg}");
        drain(&mut ring);
        ask();
        std::thread::sleep(Duration::from_millis(200));
        assert!(drain(&mut ring) > 0 || cleared(), "a filter left on goes on writing");
    } else {
        assert!(cleared(), "tracing went off, but not by the housekeeping: {cfg}");
    }
    // ...until the daemon's housekeeping finds the tracer gone.
    assert!(
        eventually(Duration::from_secs(25), || trace_cfg(&pins)["enabled"] == 0),
        "the orphaned filter stayed on: {}",
        trace_cfg(&pins)
    );
    assert!(d.wait_log(&gone, Duration::from_secs(2)), "{:#?}", d.log());
    drain(&mut ring);
    ask();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(drain(&mut ring), 0, "records written after the housekeeping turned tracing off");

    // The next tracer takes over from a killed one without waiting for the housekeeping.
    let gone = Tracer::start(&topo.lb, &pins, dir.join("gone.txt"), &[]).unwrap();
    gone.signal(Signal::SIGKILL);
    drop(gone);
    let mut next = Tracer::start(&topo.lb, &pins, dir.join("next.txt"), &["--count", "1"]).unwrap();
    ask();
    assert!(next.wait(Duration::from_secs(10)).is_some_and(|s| s.success()), "{:?}", next.err());
    assert_eq!(next.lines().len(), 1);
    assert_eq!(trace_cfg(&pins)["enabled"], 0);
}
