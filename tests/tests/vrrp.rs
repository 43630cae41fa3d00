//! VRRP end to end on one broadcast segment (a bridge in a namespace): two lb-daemon nodes,
//! or one beside Debian's keepalived 2.2.7. Transitions are read from the daemons' logs,
//! VIPs from `ip addr`, gratuitous ARPs from the client's neighbour table.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use lb_tests::{
    daemon::{self, Daemon},
    netns::{Netns, Segment},
    require_root,
};
use nix::sys::signal::Signal;

const VIP: &str = "192.0.2.100";
const VIP2: &str = "192.0.2.101";

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let p = std::env::temp_dir().join(format!("lbt-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// A notify script appending its arguments to `<name>.log`.
    fn recorder(&self, name: &str) -> (PathBuf, PathBuf) {
        let log = self.0.join(format!("{name}.log"));
        let s = self.file(&format!("{name}.sh"), &format!("#!/bin/sh\necho \"$*\" >> {}\n", log.display()));
        std::fs::set_permissions(&s, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        (s, log)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p).unwrap_or_default().lines().map(str::to_string).collect()
}

fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// One instance on l0, VRID 51, VIP 192.0.2.100/24, PASS authentication.
fn instance(name: &str, prio: u8, extra: &str, notify: &Path) -> String {
    format!(
        "vrrp_instance {name} {{
    state BACKUP
    interface l0
    virtual_router_id 51
    priority {prio}
    advert_int 1
    authentication {{
        auth_type PASS
        auth_pass s3cret
    }}
    virtual_ipaddress {{
        {VIP}/24
    }}
    notify {}
{extra}}}
",
        notify.display()
    )
}

fn start(seg: &Segment, i: usize, dir: &Dir, config: &str) -> Daemon {
    let conf = dir.file(&format!("node{i}.conf"), config);
    let pins = daemon::pin_dir(&format!("vrrp{i}"));
    Daemon::start(&seg.nodes[i], &conf, &pins, &["-i", "l0"]).unwrap()
}

/// Sends one datagram to `ip` from `ns`, so its kernel resolves the address (ARP).
fn resolve(ns: &Netns, ip: &str) {
    let to: std::net::SocketAddr = format!("{ip}:9").parse().unwrap();
    let _ = ns.run(move || std::net::UdpSocket::bind("0.0.0.0:0").and_then(|s| s.send_to(b"x", to)));
    std::thread::sleep(Duration::from_millis(100));
}

#[test]
fn two_nodes_elect_one_master_fail_over_and_hand_back() {
    require_root();
    let seg = Segment::new(2).unwrap();
    let dir = Dir::new("vrrp-pair");
    let (n0, log0) = dir.recorder("notify0");
    let (n1, log1) = dir.recorder("notify1");
    let conf0 = instance("VI_1", 150, "", &n0);
    let conf1 = instance("VI_1", 100, "", &n1);
    let mut d0 = start(&seg, 0, &dir, &conf0);
    let mut d1 = start(&seg, 1, &dir, &conf1);
    assert!(d0.wait_log("BACKUP -> MASTER", Duration::from_secs(8)), "{:#?}", d0.log());
    // One master: node 1 hears priority 150 and stays backup past its Master_Down_Interval.
    std::thread::sleep(Duration::from_secs(4));
    assert!(!d1.log().iter().any(|l| l.contains("-> MASTER")), "{:#?}", d1.log());
    assert!(seg.holds(0, VIP) && !seg.holds(1, VIP), "{:?}\n{:#?}", seg.nodes[0].ip(&["-br", "addr"]), d0.log());
    // The client resolves the VIP (a datagram makes its kernel ask ARP).
    assert!(eventually(Duration::from_secs(2), || {
        resolve(&seg.client, VIP);
        seg.client_neigh(VIP) == Some(seg.mac(0).unwrap())
    }));

    // Graceful stop: priority 0, node 1 takes over after its skew time.
    let t = Instant::now();
    d0.stop().unwrap();
    assert!(d1.wait_log("BACKUP -> MASTER", Duration::from_secs(3)), "{:#?}", d1.log());
    println!("graceful handover seen after {:?}", t.elapsed());
    assert!(eventually(Duration::from_secs(2), || seg.holds(1, VIP) && !seg.holds(0, VIP)));
    // The client learned the move from node 1's gratuitous ARPs, without asking.
    assert!(eventually(Duration::from_secs(2), || seg.client_neigh(VIP) == Some(seg.mac(1).unwrap())));
    drop(d0);

    // Node 0 comes back with the higher priority and preempts.
    let mut d0 = start(&seg, 0, &dir, &conf0);
    assert!(d0.wait_log("BACKUP -> MASTER", Duration::from_secs(8)), "{:#?}", d0.log());
    assert!(d1.wait_log("MASTER -> BACKUP", Duration::from_secs(3)), "{:#?}", d1.log());
    assert!(eventually(Duration::from_secs(2), || seg.holds(0, VIP) && !seg.holds(1, VIP)));

    // kill -9: no goodbye; node 1 waits out Master_Down_Interval (3 s + skew).
    d0.signal(Signal::SIGKILL).unwrap();
    let t = Instant::now();
    assert!(
        eventually(Duration::from_secs(8), || d1.log().iter().filter(|l| l.contains("BACKUP -> MASTER")).count() == 2),
        "{:#?}",
        d1.log()
    );
    println!("takeover after kill -9 seen after {:?}", t.elapsed());
    assert!(seg.holds(1, VIP));
    drop(d0);
    d1.stop().unwrap();
    // notify gets INSTANCE, name, state, priority, in order.
    assert_eq!(
        lines(&log1),
        [
            "INSTANCE VI_1 BACKUP 100",
            "INSTANCE VI_1 MASTER 100",
            "INSTANCE VI_1 BACKUP 100",
            "INSTANCE VI_1 MASTER 100",
            "INSTANCE VI_1 STOP 100"
        ]
    );
    assert_eq!(lines(&log0)[..3], ["INSTANCE VI_1 BACKUP 150", "INSTANCE VI_1 MASTER 150", "INSTANCE VI_1 STOP 150"]);
}
