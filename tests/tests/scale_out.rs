//! Scale-out behind ECMP (docs/scale-out.md): three load-balancer nodes (lb-daemon with
//! `anycast_table`, mh by DR and by TUN, plus BIRD with BGP and BFD) behind a router running
//! BIRD with ECMP, from the shipped configs (`configs/anycast/`). The story and its topology
//! are in the harness (`lb_tests::anycast`, also `cargo xtask demo --anycast`); this checks
//! its figures: all three nodes announce; a node killed (links down, kill -9) loses its next
//! hop within 1 s (BFD) and at least 99% of 1000 mh connections by DR and of 300 by TUN keep
//! working, while rr on the same nodes (the mutation: no table shared by the nodes) loses a
//! visible share; the node back: mh again at least 99%; a node whose service loses its quorum
//! withdraws while the others keep the VIP; a SIGTERM withdraws before the data plane stops.

use std::{process::Command, time::Duration};

use lb_tests::{
    anycast::{self, MH_CONNS, NODES, RR_CONNS, TUN_CONNS, node_addr, pct},
    prelude::*,
};

/// `bird -p -c FILE`: BIRD's own parser accepts the shipped configs; `vtysh -C -f FILE` FRR's
/// the node's frr.conf; `lb-daemon -t` the node's keepalived.conf.
#[test]
fn the_shipped_bird_configs_parse() {
    for f in ["bird-lb.conf", "bird-router.conf"] {
        let path = workspace_root().join("configs/anycast").join(f);
        let out = Command::new("bird").arg("-p").arg("-c").arg(&path).output().expect("bird (apt package bird2)");
        assert!(out.status.success(), "{f}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let frr = workspace_root().join("configs/anycast/frr-lb.conf");
    let out = Command::new("vtysh").arg("-C").arg("-f").arg(&frr).output().expect("vtysh (apt package frr)");
    assert!(
        out.status.success(),
        "frr-lb.conf: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let lb = workspace_root().join("configs/anycast/lb.conf");
    let out = Command::new(daemon::binary().unwrap()).arg("-t").arg("-f").arg(&lb).output().unwrap();
    assert!(out.status.success(), "lb.conf: {}", String::from_utf8_lossy(&out.stderr));
}

/// The two stories one after the other: each runs 12 namespaces and 7 daemons, and BFD's
/// 300 ms detection wants a machine that is not also running the other.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `story` (alone: `ONE_AT_A_TIME`), prints its narration and returns its figures with
/// the narration; a story that could not go on fails the test with both.
fn narrated<F>(story: fn(&mut dyn std::io::Write) -> anyhow::Result<F>) -> (F, String) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut narration = Vec::new();
    let result = story(&mut narration);
    let text = String::from_utf8_lossy(&narration).into_owned();
    println!("{text}");
    let f = result.unwrap_or_else(|e| panic!("{e:#}\n{text}"));
    (f, text)
}

#[test]
fn three_nodes_behind_ecmp_keep_mh_flows_through_a_node_loss_and_return() {
    require_root();
    let (f, text) = narrated(anycast::story);
    let ratio = |(kept, of): (usize, usize)| pct(kept, of);

    assert_eq!(f.hops_at_start.len(), NODES, "{text}");
    assert!(f.announced_at_start.iter().all(|a| *a == Some(true)), "{:?}", f.announced_at_start);
    assert_eq!(f.mh_servers, NODES, "mh-port should spread one client's connections:\n{text}");
    // Every node forwards a share: the router's L4 hash spreads one client's connections.
    assert!(f.forwarded.iter().all(|p| *p > 100), "ECMP did not spread the connections: {:?}", f.forwarded);

    assert!(f.loss_detected.is_some_and(|d| d < Duration::from_secs(1)), "next hop stayed: {:?}", f.loss_detected);
    assert_eq!(f.loss_mh.1, MH_CONNS, "a steady round lost connections:\n{text}");
    assert!(ratio(f.loss_mh) >= 99.0, "mh: only {:?} survived a node loss", f.loss_mh);
    // The same by TUN (IPIP to the real servers, which decapsulate with `lb-daemon decap`).
    assert_eq!(f.tun_servers, NODES, "mh by TUN should spread one client's connections:\n{text}");
    assert_eq!(f.steady_tun, (TUN_CONNS, TUN_CONNS), "TUN: a steady round lost connections:\n{text}");
    assert!(ratio(f.loss_tun) >= 99.0, "mh by TUN: only {:?} survived a node loss", f.loss_tun);
    // The mutation: without a table every node shares, moved flows land elsewhere. (With a
    // different mh_seed on each node, mh kept 69% here: the tables must match.)
    assert!(ratio(f.loss_rr) < 95.0, "rr kept {:?}: the test would not see a broken mh", f.loss_rr);

    assert!(f.stale_route_cleared, "the killed daemon's route was not cleared first at restart:\n{text}");
    assert!(f.back_after.is_some(), "node 0 never came back:\n{text}");
    assert!(ratio(f.back_mh) >= 99.0, "mh: only {:?} survived a node's return", f.back_mh);
    assert!(ratio(f.back_tun) >= 99.0, "mh by TUN: only {:?} survived a node's return", f.back_tun);

    assert!(f.quorum_withdrawn_after.is_some() && !f.quorum_hops.contains(&node_addr(2)), "{text}");
    assert_eq!(f.quorum_hops.len(), NODES - 1, "the others keep the VIP:\n{text}");
    assert_eq!(f.quorum_status.0, Some(false));
    assert!(f.quorum_status.1.contains("quorum"), "{:?}", f.quorum_status);
    assert!(ratio(f.quorum_mh) >= 99.0, "mh: a withdrawal broke connections: {:?}", f.quorum_mh);

    assert!(f.stop_withdrew_first, "SIGTERM: not withdrawn before the data plane stopped");
    assert!(f.stop_withdrawn_after.is_some(), "{text}");
    assert!(ratio(f.stop_mh) >= 99.0, "mh: a node's orderly stop broke connections: {:?}", f.stop_mh);
    assert!(text.contains("namespaces left: none"), "{text}");
    assert!(f.took < Duration::from_secs(60), "took {:?}", f.took);
}

/// Connection sync between active-active nodes (`lvs_sync_daemon e1`, no VRRP instance: each
/// node master and backup at once): rr, which keeps no table shared by the nodes and lost a
/// third of its connections through a node loss above, keeps them all when every node has
/// every other node's flows: through node 0's loss, its return (fresh, it asks the others
/// for their flows) and then node 1's loss (the flows it took over were sent on by it).
#[test]
fn with_connection_sync_rr_flows_survive_node_losses_and_a_return() {
    require_root();
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut narration = Vec::new();
    let result = anycast::sync_story(&mut narration);
    let text = String::from_utf8_lossy(&narration).into_owned();
    println!("{text}");
    let f = result.unwrap_or_else(|e| panic!("{e:#}\n{text}"));
    assert_eq!(f.hops_at_start, NODES, "{text}");
    assert_eq!(f.loss_rr.1, RR_CONNS, "a steady round lost connections:\n{text}");
    // Each flow is sent once, by the node that opened it, and applied by the two others; no
    // echo (a node sending back what it applied) in the 2.5 s after: not more.
    let sent: u64 = f.sent.iter().sum();
    assert_eq!(sent, RR_CONNS as u64, "flow entries sent per node {:?}:\n{text}", f.sent);
    let applied: u64 = f.applied.iter().sum();
    assert_eq!(applied, (RR_CONNS * (NODES - 1)) as u64, "flows applied per node {:?}:\n{text}", f.applied);
    assert_eq!(f.loss_rr.0, f.loss_rr.1, "rr with sync: only {:?} survived a node loss:\n{text}", f.loss_rr);
    // The node back finds every flow it is given: the others sent theirs when it asked.
    assert!(f.back_after.is_some(), "node 0 never came back:\n{text}");
    assert_eq!(f.back_rr.0, f.back_rr.1, "rr with sync: only {:?} survived node 0's return:\n{text}", f.back_rr);
    // A second loss: node 1's flows, its own and those it took over, are on the others.
    assert_eq!(
        f.second_loss_rr.0, f.second_loss_rr.1,
        "rr with sync: only {:?} survived a second node loss:\n{text}",
        f.second_loss_rr
    );
    assert!(text.contains("namespaces left: none"), "{text}");
    assert!(f.took < Duration::from_secs(60), "took {:?}", f.took);
}

/// FRR instead of BIRD on node 1 (`configs/anycast/frr-lb.conf`: zebra imports table 100,
/// bgpd exports it over eBGP, bfdd watches the session), the same lb-daemon and router: the
/// router takes node 1's announcement as the BIRD nodes', follows `lb-daemon withdraw` and
/// `announce` there, and drops node 1's next hop within 1 s of its death, while mh
/// connections keep working.
#[test]
fn frr_on_a_node_announces_withdraws_and_fails_over_as_bird_does() {
    require_root();
    let (f, text) = narrated(anycast::frr_story);
    assert!(f.hops_at_start.contains(&node_addr(1)) && f.hops_at_start.len() == NODES, "{text}");
    assert!(f.forwarded_by_frr_node > 0, "no traffic through the FRR node:\n{text}");
    assert!(f.withdrawn_after.is_some() && !f.hops_withdrawn.contains(&node_addr(1)), "{text}");
    assert!(f.announced_after.is_some(), "not announced again:\n{text}");
    assert!(f.loss_detected.is_some_and(|d| d < Duration::from_secs(1)), "next hop stayed: {:?}", f.loss_detected);
    assert!(pct(f.loss_mh.0, f.loss_mh.1) >= 99.0, "mh: only {:?} survived the FRR node's loss", f.loss_mh);
    assert!(text.contains("namespaces left: none"), "{text}");
}
