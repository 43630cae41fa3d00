//! Packet fixtures for forwarding: every scheduler × NAT/DR/TUN × IPv4/IPv6 × new/established
//! flow, NAT replies, no live real server and the sorry server, each with its verdict, the
//! exact output frame and the counters that move. The program runs inside a namespace whose
//! FIB knows the client and the real server (static neighbours with fixed MACs), arriving on
//! that namespace's interface, so the next hop is the same link: XDP_TX.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use lb_common::{
    NextHop, ServiceKey,
    consts::{PROG_BENCH_PASS, PROG_XDP},
};
use lb_daemon::{
    config::{ForwardMethod, Scheduler},
    dataplane::services::{DesiredReal, DesiredService},
};
use lb_tests::{
    fixture::{Case, Fixture, Output, XDP_DROP, XDP_PASS, XDP_TX, bpf_schedulers, tcp_service},
    packets::{CLIENT_MAC, L2, L4, LB_MAC, ip6ip6, ipip, mac_from_text, real_mac, v4, v6, with_macs},
    prelude::*,
};

/// The real server every case forwards to, and how the fixture's namespace reaches it.
const REAL4: Ipv4Addr = backend4(0);
const REAL6: Ipv6Addr = backend6(0);
const REAL_MAC: [u8; 6] = real_mac(0);
/// TUN's outer source: the load balancer's address on the real servers' link.
const TUN_SRC4: Ipv4Addr = LB_BACKEND_SIDE4;
const TUN_SRC6: Ipv6Addr = LB_BACKEND_SIDE6;
const NAT_PORT: u16 = 8080;

const METHODS: [ForwardMethod; 3] = [ForwardMethod::Nat, ForwardMethod::Dr, ForwardMethod::Tun];

fn setup() -> (Netns, Netns, Fixture) {
    require_root();
    lb_tests::fixture::in_fib_namespace(4096).unwrap()
}

/// Service `i`: VIP port 1000 + i.
fn service(i: usize, v6: bool, sched: Scheduler, fwd: ForwardMethod, reals: Vec<DesiredReal>) -> DesiredService {
    let vip: IpAddr = if v6 { VIP6.into() } else { VIP4.into() };
    tcp_service(format!("svc{i}"), vip, 1000 + i as u16, sched, fwd, reals)
}

fn real(v6: bool, fwd: ForwardMethod, vport: u16) -> DesiredReal {
    let ip: IpAddr = if v6 { REAL6.into() } else { REAL4.into() };
    let port = if fwd == ForwardMethod::Nat { NAT_PORT } else { vport };
    DesiredReal { addr: SocketAddr::new(ip, port), weight: 1, fwd: None, u_thresh: 0, l_thresh: 0 }
}

/// An rr service by `fwd` with its one real server in each family: IPv4 on port 1000,
/// IPv6 on 1001.
fn one_real_each_family(fwd: ForwardMethod) -> [DesiredService; 2] {
    [
        service(0, false, Scheduler::Rr, fwd, vec![real(false, fwd, 1000)]),
        service(1, true, Scheduler::Rr, fwd, vec![real(true, fwd, 1001)]),
    ]
}

fn frame(v6: bool, l4: L4) -> Vec<u8> {
    if v6 { v6_frame(CLIENT6, VIP6, l4) } else { v4(L2::Plain, CLIENT4, VIP4, l4, b"data") }
}

fn v6_frame(src: Ipv6Addr, dst: Ipv6Addr, l4: L4) -> Vec<u8> {
    v6(L2::Plain, src, dst, l4, b"data")
}

/// What the load balancer must send for `input` (a client→VIP frame with `l4_to_real`).
fn expected(is_v6: bool, fwd: ForwardMethod, input: &[u8], l4_to_real: L4) -> (Vec<u8>, &'static str) {
    match fwd {
        ForwardMethod::Nat => {
            let out = if is_v6 {
                v6(L2::Plain, CLIENT6, REAL6, l4_to_real, b"data")
            } else {
                v4(L2::Plain, CLIENT4, REAL4, l4_to_real, b"data")
            };
            (with_macs(out, LB_MAC, REAL_MAC), "reason_fwd_nat")
        }
        ForwardMethod::Dr => (with_macs(input.to_vec(), LB_MAC, REAL_MAC), "reason_fwd_dr"),
        ForwardMethod::Tun => {
            let out = if is_v6 {
                ip6ip6(input, TUN_SRC6, REAL6, LB_MAC, REAL_MAC)
            } else {
                ipip(input, TUN_SRC4, REAL4, LB_MAC, REAL_MAC)
            };
            (out, "reason_fwd_tun")
        }
    }
}

#[test]
fn every_scheduler_method_and_family_forwards_new_and_established_flows() {
    let (_ns, _peer, mut fx) = setup();
    let mut services = Vec::new();
    let mut combos = Vec::new();
    for sched in bpf_schedulers() {
        for fwd in METHODS {
            for v6 in [false, true] {
                let i = services.len();
                services.push(service(i, v6, sched, fwd, vec![real(v6, fwd, 1000 + i as u16)]));
                combos.push((i, sched, fwd, v6));
            }
        }
    }
    fx.apply(&services).unwrap();

    let mut cases = Vec::new();
    let mut names = Vec::new();
    for &(i, sched, fwd, v6) in &combos {
        let vport = 1000 + i as u16;
        let sport = 40000 + i as u16;
        let rport = if fwd == ForwardMethod::Nat { NAT_PORT } else { vport };
        for new in [true, false] {
            let (l4, l4_real) = if new {
                (L4::TcpSyn { sport, dport: vport }, L4::TcpSyn { sport, dport: rport })
            } else {
                (L4::TcpAck { sport, dport: vport }, L4::TcpAck { sport, dport: rport })
            };
            let input = frame(v6, l4);
            let (out, reason) = expected(v6, fwd, &input, l4_real);
            names.push(format!(
                "{sched:?} {fwd:?} {} {}",
                if v6 { "IPv6" } else { "IPv4" },
                if new { "new" } else { "established" }
            ));
            cases.push(Case {
                name: "",
                input,
                action: XDP_TX,
                output: Output::Frame(out),
                reason,
                service: Some(i as u32),
                // A SYN waits in the half-open table; the ACK moves the flow to conntrack. To a
                // hashing scheduler the SYN leaves nothing and the ACK records the flow, once.
                also: match (new, matches!(sched, Scheduler::Sh | Scheduler::Dh | Scheduler::Mh)) {
                    (true, false) => &["flows_new", "halfopen_inserts"],
                    (false, false) => &["flows_hit", "ct_inserts", "halfopen_deletes"],
                    (true, true) => &["flows_new"],
                    (false, true) => &["flows_hit", "ct_inserts"],
                },
            });
        }
    }
    // Cases run in order: each flow's SYN creates its entry, its ACK then hits it.
    let failures: Vec<String> =
        cases.iter().zip(&names).filter_map(|(c, n)| fx.check(c).err().map(|e| format!("{n}: {e:#}"))).collect();
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

/// Only frames addressed to the ingress interface's MAC are load-balanced: another host's
/// (a switch flooding a frame for a MAC it has not learnt) and broadcast/multicast ones pass
/// to the kernel, which drops them as it always does, each counted under its reason.
#[test]
fn only_frames_to_our_mac_are_load_balanced() {
    let (_ns, _peer, mut fx) = setup();
    fx.apply(&one_real_each_family(ForwardMethod::Dr)).unwrap();
    const OTHER_HOST: [u8; 6] = [0x02, 0, 0, 0, 0, 0x77];
    const BROADCAST: [u8; 6] = [0xff; 6];
    const MULTICAST6: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];
    let syn = |v6: bool, sport| frame(v6, L4::TcpSyn { sport, dport: 1000 + u16::from(v6) });
    let passed = |name, input: Vec<u8>, reason| Case {
        name,
        input,
        action: XDP_PASS,
        output: Output::Unchanged,
        reason,
        service: None,
        also: &[],
    };
    let mut cases = Vec::new();
    for v6 in [false, true] {
        let sport = 41000 + u16::from(v6);
        cases.push(passed(
            "another host's MAC",
            with_macs(syn(v6, sport), CLIENT_MAC, OTHER_HOST),
            "reason_not_our_mac",
        ));
        cases.push(passed("broadcast", with_macs(syn(v6, sport), CLIENT_MAC, BROADCAST), "reason_l2_multicast"));
        cases.push(passed("multicast", with_macs(syn(v6, sport), CLIENT_MAC, MULTICAST6), "reason_l2_multicast"));
        // The same frame to our MAC: forwarded (nothing above created its flow).
        let input = syn(v6, sport);
        cases.push(Case {
            name: "our MAC",
            output: Output::Frame(with_macs(input.clone(), LB_MAC, REAL_MAC)),
            input,
            action: XDP_TX,
            reason: "reason_fwd_dr",
            service: Some(u32::from(v6)),
            also: &["flows_new", "halfopen_inserts"],
        });
    }
    fx.check_all(&cases).unwrap();
}

/// `use_vmac`: the VIPs' frames come to the VRRP virtual MAC (00:00:5e:00:01:VRID), which
/// the kernel takes for its macvlan. Without a VMAC in the namespace such a frame is another
/// host's; once one exists (the daemon reads the interfaces again, as its housekeeping does),
/// frames to VRRP virtual MACs are load-balanced like frames to the interface's own MAC, and
/// so are frames to a macvlan's own MAC (`use_vmac NAME MAC`) while it exists and is up.
#[test]
fn frames_to_a_vrrp_virtual_mac_are_ours_once_a_vmac_exists() {
    let (ns, _peer, mut fx) = setup();
    fx.apply(&one_real_each_family(ForwardMethod::Dr)).unwrap();
    const VMAC: [u8; 6] = [0, 0, 0x5e, 0, 1, 51];
    let syn = |sport| frame(false, L4::TcpSyn { sport, dport: 1000 });
    // The frame passes to the kernel, as another host's.
    let not_ours = |name: &'static str, input: Vec<u8>| Case {
        name,
        input,
        action: XDP_PASS,
        output: Output::Unchanged,
        reason: "reason_not_our_mac",
        service: None,
        also: &[],
    };
    // The frame is load-balanced: a new DR flow of `service`.
    let ours = |name: &'static str, input: Vec<u8>, service: u32| Case {
        name,
        output: Output::Frame(with_macs(input.clone(), LB_MAC, REAL_MAC)),
        input,
        action: XDP_TX,
        reason: "reason_fwd_dr",
        service: Some(service),
        also: &["flows_new", "halfopen_inserts"],
    };
    fx.check(&not_ours("to the virtual MAC, no VMAC here", with_macs(syn(42000), CLIENT_MAC, VMAC))).unwrap();
    ns.ip(&["link", "add", "vrrp.51", "link", "fx0", "type", "macvlan", "mode", "private"]).unwrap();
    ns.ip(&["link", "set", "vrrp.51", "address", "00:00:5e:00:01:33"]).unwrap();
    fx.learn_mac("fx0").unwrap();
    fx.check(&ours("to the virtual MAC, VMAC here", with_macs(syn(42001), CLIENT_MAC, VMAC), 0)).unwrap();
    // An IPv6 instance's virtual MAC, 00:00:5e:00:02:VRID, likewise.
    let v6 = with_macs(frame(true, L4::TcpSyn { sport: 42003, dport: 1001 }), CLIENT_MAC, [0, 0, 0x5e, 0, 2, 51]);
    fx.check(&ours("to the IPv6 virtual MAC, VMAC here", v6, 1)).unwrap();
    // Another host's unicast MAC is still not ours.
    let other = [0x02, 0, 0x5e, 0x1a, 0x2b, 0x3c];
    fx.check(&not_ours("another host's MAC", with_macs(syn(42002), CLIENT_MAC, other))).unwrap();
    // `use_vmac NAME MAC`: a VMAC with a MAC of its own. The kernel takes frames to any up
    // macvlan's MAC on the interface, and so do we once the daemon has read it.
    ns.ip(&["link", "add", "vip51", "link", "fx0", "type", "macvlan", "mode", "private"]).unwrap();
    ns.ip(&["link", "set", "vip51", "address", "02:00:5e:1a:2b:3c"]).unwrap();
    fx.learn_mac("fx0").unwrap();
    fx.check(&not_ours("to a VMAC's own MAC, VMAC down", with_macs(syn(42006), CLIENT_MAC, other))).unwrap();
    ns.ip(&["link", "set", "vip51", "up"]).unwrap();
    fx.learn_mac("fx0").unwrap();
    fx.check(&ours("to a VMAC's own MAC", with_macs(syn(42004), CLIENT_MAC, other), 0)).unwrap();
    // Gone again: another host's once more.
    ns.ip(&["link", "del", "vip51"]).unwrap();
    fx.learn_mac("fx0").unwrap();
    fx.check(&not_ours("to a deleted VMAC's MAC", with_macs(syn(42005), CLIENT_MAC, other))).unwrap();
}

/// VRRP fencing: a service whose VIP this node does not hold as MASTER is not load-balanced,
/// new flows or established ones (IPVS on a keepalived BACKUP never sees the frames: the VIP
/// is not local); a MASTER without accept mode drops them (keepalived's firewall rule).
/// Services on other VIPs are untouched, and lifting the fence forwards again.
#[test]
fn fenced_services_are_not_load_balanced() {
    use lb_common::consts::{FENCE_BACKUP, FENCE_NO_ACCEPT};
    let (ns, _peer, mut fx) = setup();
    // A backup routes its VIPs (here through the client's side; usually a connected subnet):
    // the FIB tells a VIP it holds (local) from one it does not.
    ns.ip(&["route", "add", &format!("{VIP4}/32"), "via", &CLIENT4.to_string()]).unwrap();
    ns.ip(&["-6", "route", "add", &format!("{VIP6}/128"), "via", &CLIENT6.to_string()]).unwrap();
    fx.apply(&one_real_each_family(ForwardMethod::Dr)).unwrap();
    let syn = |v6: bool, sport| frame(v6, L4::TcpSyn { sport, dport: 1000 + u16::from(v6) });
    let ack = |v6: bool, sport| frame(v6, L4::TcpAck { sport, dport: 1000 + u16::from(v6) });
    let forwarded = |input: Vec<u8>, v6: bool, also: &'static [&'static str]| Case {
        name: "forwarded",
        output: Output::Frame(with_macs(input.clone(), LB_MAC, REAL_MAC)),
        input,
        action: XDP_TX,
        reason: "reason_fwd_dr",
        service: Some(u32::from(v6)),
        also,
    };
    let fenced = |name, input: Vec<u8>, action, reason| Case {
        name,
        input,
        action,
        output: Output::Unchanged,
        reason,
        service: None,
        also: &[],
    };
    // An established flow on each family before the fence.
    fx.check_all(&[
        forwarded(syn(false, 42000), false, &["flows_new", "halfopen_inserts"]),
        forwarded(ack(false, 42000), false, &["flows_hit", "ct_inserts", "halfopen_deletes"]),
    ])
    .unwrap();
    // IPv4's VIP fenced as a backup: new and established flows pass; IPv6's VIP untouched.
    fx.set_fences(&[(IpAddr::from(VIP4), FENCE_BACKUP)].into()).unwrap();
    fx.check_all(&[
        fenced("backup: new flow", syn(false, 42001), XDP_PASS, "reason_vrrp_backup"),
        fenced("backup: established flow", ack(false, 42000), XDP_PASS, "reason_vrrp_backup"),
        forwarded(syn(true, 42002), true, &["flows_new", "halfopen_inserts"]),
    ])
    .unwrap();
    // MASTER without accept mode: dropped.
    fx.set_fences(&[(IpAddr::from(VIP4), FENCE_NO_ACCEPT)].into()).unwrap();
    fx.check_all(&[fenced("no_accept: new flow", syn(false, 42003), XDP_DROP, "reason_vrrp_no_accept")]).unwrap();
    // Fence lifted (MASTER with accept mode): the established flow goes on to its real server.
    fx.set_fences(&Default::default()).unwrap();
    fx.check_all(&[forwarded(ack(false, 42000), false, &["flows_hit"])]).unwrap();
    // A service programmed while its VIP is fenced starts fenced.
    fx.set_fences(&[(IpAddr::from(VIP6), FENCE_BACKUP)].into()).unwrap();
    let mut svcs = one_real_each_family(ForwardMethod::Dr).to_vec();
    svcs.push(service(2, true, Scheduler::Rr, ForwardMethod::Dr, vec![real(true, ForwardMethod::Dr, 1002)]));
    fx.apply(&svcs).unwrap();
    let new_svc = frame(true, L4::TcpSyn { sport: 42004, dport: 1002 });
    fx.check_all(&[fenced("new service on a fenced VIP", new_svc, XDP_PASS, "reason_vrrp_backup")]).unwrap();
    // The kernel holds the VIP (the instance became MASTER and added it, the daemon has not
    // lifted the fence yet): load-balanced, as IPVS would see it from then on.
    ns.ip(&["-6", "route", "del", &format!("{VIP6}/128")]).unwrap();
    ns.ip(&["addr", "add", &format!("{VIP6}/128"), "dev", "lo"]).unwrap();
    let held = frame(true, L4::TcpSyn { sport: 42005, dport: 1002 });
    fx.check_all(&[Case {
        name: "fenced VIP held by the kernel",
        output: Output::Frame(with_macs(held.clone(), LB_MAC, REAL_MAC)),
        input: held,
        action: XDP_TX,
        reason: "reason_fwd_dr",
        service: Some(2),
        also: &["flows_new", "halfopen_inserts"],
    }])
    .unwrap();
}

#[test]
fn nat_replies_get_the_vip_back_as_source() {
    let (_ns, _peer, mut fx) = setup();
    let svcs = one_real_each_family(ForwardMethod::Nat);
    fx.apply(&svcs).unwrap();
    // The client's SYN creates the flow (and its reply entry).
    for (v6, vport) in [(false, 1000u16), (true, 1001)] {
        let syn = frame(v6, L4::TcpSyn { sport: 41000, dport: vport });
        let (out, _) = expected(v6, ForwardMethod::Nat, &syn, L4::TcpSyn { sport: 41000, dport: NAT_PORT });
        fx.check(&Case {
            name: "syn",
            input: syn,
            action: XDP_TX,
            output: Output::Frame(out),
            reason: "reason_fwd_nat",
            service: Some(u32::from(v6)),
            also: &["flows_new", "halfopen_inserts"],
        })
        .unwrap();
        // The real server's answer leaves as if from the VIP.
        let (reply, want) = if v6 {
            (
                with_macs(v6_frame(REAL6, CLIENT6, L4::TcpAck { sport: NAT_PORT, dport: 41000 }), REAL_MAC, LB_MAC),
                v6_frame(VIP6, CLIENT6, L4::TcpAck { sport: vport, dport: 41000 }),
            )
        } else {
            (
                with_macs(
                    v4(L2::Plain, REAL4, CLIENT4, L4::TcpAck { sport: NAT_PORT, dport: 41000 }, b"data"),
                    REAL_MAC,
                    LB_MAC,
                ),
                v4(L2::Plain, VIP4, CLIENT4, L4::TcpAck { sport: vport, dport: 41000 }, b"data"),
            )
        };
        fx.check(&Case {
            name: "reply",
            input: reply,
            action: XDP_TX,
            output: Output::Frame(with_macs(want, LB_MAC, CLIENT_MAC)),
            reason: "reason_nat_reply",
            service: Some(u32::from(v6)),
            also: &[],
        })
        .unwrap();
    }
}

/// The reverse entries a fixture's flows hold (`lb_nat_rev`, `lb_halfopen_rev`), as (table,
/// client port, VIP port).
fn reverse_entries(fx: &Fixture) -> Vec<(String, u16, u16)> {
    reverse_entries_of(fx, |_| true)
}

/// `reverse_entries` for client ports `cport` accepts.
fn reverse_entries_of(fx: &Fixture, cport: impl Fn(u16) -> bool) -> Vec<(String, u16, u16)> {
    let conns = lb_daemon::dataplane::bpf::read_conns(fx.pin_dir()).unwrap();
    let mut out: Vec<_> = conns
        .iter()
        .filter(|c| c.table.is_reverse() && cport(c.client.port))
        .map(|c| (format!("{:?}", c.table), c.client.port, c.vip.port))
        .collect();
    out.sort();
    out
}

/// A NAT real server's packet to the client `CLIENT4:cport`, and what leaves for it from VIP
/// port `vport` when it is a reply.
fn from_real4(l4: L4, vport: u16) -> (Vec<u8>, Vec<u8>) {
    let (real_side, client_side) = match l4 {
        L4::TcpSynAck { dport, .. } => {
            (L4::TcpSynAck { sport: NAT_PORT, dport }, L4::TcpSynAck { sport: vport, dport })
        }
        L4::TcpAck { dport, .. } => (L4::TcpAck { sport: NAT_PORT, dport }, L4::TcpAck { sport: vport, dport }),
        other => panic!("no reply form for {other:?}"),
    };
    let input = with_macs(v4(L2::Plain, REAL4, CLIENT4, real_side, b"data"), REAL_MAC, LB_MAC);
    let out = with_macs(v4(L2::Plain, VIP4, CLIENT4, client_side, b"data"), LB_MAC, CLIENT_MAC);
    (input, out)
}

/// A NAT real server that one VIP reaches has its replies translated through `lb_real_rev`,
/// checked against the flow the forward tables hold: through every scheduler, no flow keeps a
/// reverse entry of its own (but a hashing scheduler's SYN, which leaves no flow for the
/// SYN-ACK to be checked against), and the real server's packets to a client port without a
/// flow (its health checks, a client reaching it directly) pass untranslated.
#[test]
fn nat_replies_are_checked_against_their_flow_without_reverse_entries() {
    let (_ns, _peer, mut fx) = setup();
    for (i, sched) in bpf_schedulers().into_iter().enumerate() {
        fx.apply(&[service(0, false, sched, ForwardMethod::Nat, vec![real(false, ForwardMethod::Nat, 1000)])]).unwrap();
        let cport = 41000 + i as u16;
        let hashes = matches!(sched, Scheduler::Sh | Scheduler::Dh | Scheduler::Mh);
        let to_real = |l4: L4, also: &'static [&'static str]| {
            let input = frame(false, l4);
            let real_l4 = match l4 {
                L4::TcpSyn { sport, .. } => L4::TcpSyn { sport, dport: NAT_PORT },
                L4::TcpAck { sport, .. } => L4::TcpAck { sport, dport: NAT_PORT },
                other => panic!("{other:?}"),
            };
            let (out, reason) = expected(false, ForwardMethod::Nat, &input, real_l4);
            Case {
                name: "to the real server",
                input,
                action: XDP_TX,
                output: Output::Frame(out),
                reason,
                service: Some(0),
                also,
            }
        };
        let reply = |l4: L4| {
            let (input, out) = from_real4(l4, 1000);
            Case {
                name: "reply",
                input,
                action: XDP_TX,
                output: Output::Frame(out),
                reason: "reason_nat_reply",
                service: Some(0),
                also: &[],
            }
        };
        let ctx = |step: &str| format!("{sched:?}: {step}");
        // As in `every_scheduler_method_and_family_forwards_new_and_established_flows`.
        let (syn_also, ack_also): (&'static [&'static str], &'static [&'static str]) = if hashes {
            (&["flows_new"], &["flows_hit", "ct_inserts"])
        } else {
            (&["flows_new", "halfopen_inserts"], &["flows_hit", "ct_inserts", "halfopen_deletes"])
        };
        fx.check(&to_real(L4::TcpSyn { sport: cport, dport: 1000 }, syn_also))
            .unwrap_or_else(|e| panic!("{}: {e:#}", ctx("SYN")));
        let after_syn: Vec<(String, u16, u16)> =
            if hashes { vec![("HalfopenRev".into(), cport, 1000)] } else { Vec::new() };
        // (Each earlier hashing scheduler's SYN left its own, which ages out.)
        let of_this = |p| p == cport;
        assert_eq!(reverse_entries_of(&fx, of_this), after_syn, "{}", ctx("after the SYN"));
        fx.check(&reply(L4::TcpSynAck { sport: NAT_PORT, dport: cport }))
            .unwrap_or_else(|e| panic!("{}: {e:#}", ctx("SYN-ACK")));
        fx.check(&to_real(L4::TcpAck { sport: cport, dport: 1000 }, ack_also))
            .unwrap_or_else(|e| panic!("{}: {e:#}", ctx("ACK")));
        fx.check(&reply(L4::TcpAck { sport: NAT_PORT, dport: cport }))
            .unwrap_or_else(|e| panic!("{}: {e:#}", ctx("data")));
        assert_eq!(reverse_entries_of(&fx, of_this), after_syn, "{}: the ACK adds none", ctx("after the ACK"));
        // The same real server port to a client port no flow has: not a reply of ours.
        let (stray, _) = from_real4(L4::TcpAck { sport: NAT_PORT, dport: cport + 100 }, 1000);
        fx.check(&Case {
            name: "the real server's own traffic",
            input: stray,
            action: XDP_PASS,
            output: Output::Unchanged,
            reason: "reason_no_service",
            service: None,
            also: &[],
        })
        .unwrap_or_else(|e| panic!("{}: {e:#}", ctx("stray")));
    }
}

/// Two rr NAT services (VIP ports 1000 and 1001) with one real server between them.
fn sharing_a_real_server() -> [DesiredService; 2] {
    let nat = ForwardMethod::Nat;
    [
        service(0, false, Scheduler::Rr, nat, vec![real(false, nat, 1000)]),
        service(1, false, Scheduler::Rr, nat, vec![real(false, nat, 1001)]),
    ]
}

/// Opens a TCP flow from client port `cport` to VIP port `vport`: its SYN and ACK, forwarded.
fn open(fx: &Fixture, cport: u16, vport: u16) {
    for l4 in [L4::TcpSyn { sport: cport, dport: vport }, L4::TcpAck { sport: cport, dport: vport }] {
        let (action, _) = fx.run(&frame(false, l4)).unwrap();
        assert_eq!(action, XDP_TX, "{l4:?}");
    }
}

/// A real server that two VIPs reach answers each client from the VIP it asked: one VIP's
/// flows are translated through `lb_real_rev`, the other's through reverse entries of their
/// own; when the first service goes, the second's flow is still answered.
#[test]
fn a_real_server_two_services_share_answers_each_flow_from_its_vip() {
    let (_ns, _peer, mut fx) = setup();
    let [a, b] = sharing_a_real_server();
    fx.apply(&[a, b.clone()]).unwrap();
    let answered = |fx: &Fixture, cport: u16, vport: u16, svc: u32| {
        let (input, out) = from_real4(L4::TcpAck { sport: NAT_PORT, dport: cport }, vport);
        fx.check(&Case {
            name: "reply",
            input,
            action: XDP_TX,
            output: Output::Frame(out),
            reason: "reason_nat_reply",
            service: Some(svc),
            also: &[],
        })
    };
    open(&fx, 41000, 1000);
    open(&fx, 41001, 1001);
    answered(&fx, 41000, 1000, 0).unwrap();
    answered(&fx, 41001, 1001, 1).unwrap();
    // Service svc0 (first by name) has the real server's entry; svc1's flow keeps its own.
    assert_eq!(reverse_entries(&fx), [("NatRev".to_string(), 41001, 1001)]);
    // A client port that had a flow to svc0 opens one to svc1 (the real server sees the same
    // tuple: the first flow is over): the replies are svc1's. The first flow's entry, which
    // would have vouched for svc0, went when the second flow began.
    open(&fx, 41003, 1000);
    answered(&fx, 41003, 1000, 0).unwrap();
    open(&fx, 41003, 1001);
    answered(&fx, 41003, 1001, 1).unwrap();
    assert_eq!(reverse_entries(&fx), [("NatRev".to_string(), 41001, 1001), ("NatRev".to_string(), 41003, 1001)]);
    fx.apply(&[b]).unwrap();
    answered(&fx, 41001, 1001, 1).unwrap();
    open(&fx, 41002, 1001);
    answered(&fx, 41002, 1001, 1).unwrap();
    assert_eq!(
        reverse_entries(&fx),
        [("NatRev".to_string(), 41001, 1001), ("NatRev".to_string(), 41003, 1001)],
        "svc1 now has the real server's entry: 41002 needs none"
    );
}

/// `bench_fresh`, the benchmark's warm new-connection driver, gives the program a new flow
/// per run: 50 runs of one SYN open 50 flows on consecutive client ports (each one's reply
/// comes back from the VIP, the next port's does not, and 50 runs of the reply with its
/// destination port rotated are all answered), its last output is the frame the
/// program makes of that port's SYN built here (ports and checksum right), and through
/// XDP_PASS nothing is opened.
#[test]
fn the_benchmarks_new_flow_driver_opens_a_flow_per_run() {
    let (_ns, _peer, mut fx) = setup();
    fx.apply(&one_real_each_family(ForwardMethod::Nat)).unwrap();
    let syn = |sport| v4(L2::Plain, CLIENT4, VIP4, L4::TcpSyn { sport, dport: 1000 }, b"");
    let before = fx.stats().unwrap();
    let (_, action, _) = fx.time_fresh(PROG_BENCH_PASS, &syn(42000), false, 50).unwrap();
    assert_eq!(action, XDP_PASS);
    assert_eq!(fx.stats().unwrap().halfopen_inserts, before.halfopen_inserts);
    let (_, action, last) = fx.time_fresh(PROG_XDP, &syn(42000), false, 50).unwrap();
    assert_eq!(action, XDP_TX);
    let after = fx.stats().unwrap();
    assert_eq!(after.halfopen_inserts - before.halfopen_inserts, 50);
    assert_eq!(after.reason_fwd_nat - before.reason_fwd_nat, 50);
    // The 50th SYN again, padded as the driver pads it (a retransmission: the same real
    // server, the same rewrite).
    let mut again = syn(42049);
    again.resize(64, 0);
    assert_eq!(fx.run(&again).unwrap(), (XDP_TX, last));
    // The destination port rotates too (the SYN-ACKs' runs): each reply is answered.
    let reply = |dport| {
        with_macs(v4(L2::Plain, REAL4, CLIENT4, L4::TcpSynAck { sport: NAT_PORT, dport }, b""), REAL_MAC, LB_MAC)
    };
    let replies = fx.stats().unwrap().reason_nat_reply;
    let (_, action, _) = fx.time_fresh(PROG_XDP, &reply(42000), true, 50).unwrap();
    assert_eq!((action, fx.stats().unwrap().reason_nat_reply - replies), (XDP_TX, 50));
    for (port, opened) in [(42000, true), (42025, true), (42049, true), (42050, false)] {
        let reply = v4(L2::Plain, REAL4, CLIENT4, L4::TcpSynAck { sport: NAT_PORT, dport: port }, b"");
        let (action, out) = fx.run(&with_macs(reply, REAL_MAC, LB_MAC)).unwrap();
        if opened {
            let want = v4(L2::Plain, VIP4, CLIENT4, L4::TcpSynAck { sport: 1000, dport: port }, b"");
            assert_eq!((action, out), (XDP_TX, with_macs(want, LB_MAC, CLIENT_MAC)), "port {port}");
        } else {
            assert_eq!(action, XDP_PASS, "port {port}");
        }
    }
}

#[test]
fn no_live_real_server_drops_and_the_sorry_server_takes_over() {
    let (_ns, _peer, mut fx) = setup();
    let mut down = service(0, false, Scheduler::Wlc, ForwardMethod::Nat, vec![real(false, ForwardMethod::Nat, 1000)]);
    down.reals[0].weight = 0;
    let mut sorry = service(1, false, Scheduler::Rr, ForwardMethod::Dr, vec![]);
    sorry.sorry = Some(SocketAddr::new(REAL4.into(), 1001));
    fx.apply(&[down, sorry]).unwrap();
    let syn = frame(false, L4::TcpSyn { sport: 42000, dport: 1000 });
    fx.check(&Case {
        name: "all real servers at weight 0",
        input: syn,
        action: XDP_DROP,
        output: Output::Unchanged,
        reason: "reason_no_real",
        service: Some(0),
        also: &[],
    })
    .unwrap();
    let syn = frame(false, L4::TcpSyn { sport: 42000, dport: 1001 });
    let out = with_macs(syn.clone(), LB_MAC, REAL_MAC);
    fx.check(&Case {
        name: "sorry server",
        input: syn,
        action: XDP_TX,
        output: Output::Frame(out),
        reason: "reason_fwd_dr",
        service: Some(1),
        also: &["flows_new"],
    })
    .unwrap();
}

/// A service's real server set switches atomically: while one thread keeps replacing the set
/// {198.51.100.11} with {198.51.100.12} and back, every new flow another thread sends goes
/// whole to one of them (address, port, checksums and MAC agree), and none is dropped.
#[test]
fn backend_set_switches_atomically_under_concurrent_updates() {
    let (_ns, _peer, mut fx) = setup();
    let set = |last: u8| {
        let ip = Ipv4Addr::new(198, 51, 100, last);
        let mut s = service(0, false, Scheduler::Mh, ForwardMethod::Nat, vec![]);
        s.reals = vec![DesiredReal {
            addr: SocketAddr::new(ip.into(), NAT_PORT),
            weight: 1,
            fwd: None,
            u_thresh: 0,
            l_thresh: 0,
        }];
        s
    };
    fx.apply(&[set(11)]).unwrap();
    let runner = fx.share().unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (flips, seen) = std::thread::scope(|s| {
        let sender = s.spawn(|| {
            let mut seen = std::collections::HashMap::new();
            let mut sport = 1024u16;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && sport < 60000 {
                sport += 1;
                let input = frame(false, L4::TcpSyn { sport, dport: 1000 });
                let (action, out) = runner.run(&input).unwrap();
                if action != XDP_TX {
                    let st = runner.stats().unwrap();
                    panic!(
                        "packet {sport} not forwarded ({action}): {:?}",
                        st.fields().filter(|(_, v)| *v != 0).collect::<Vec<_>>()
                    );
                }
                let matched = [11u8, 12].into_iter().find(|last| {
                    let ip = Ipv4Addr::new(198, 51, 100, *last);
                    let want = v4(L2::Plain, CLIENT4, ip, L4::TcpSyn { sport, dport: NAT_PORT }, b"data");
                    out == with_macs(want, LB_MAC, [0x02, 0, 0, 0, 0, if *last == 11 { 0x11 } else { 0x12 }])
                });
                let last = matched.unwrap_or_else(|| panic!("packet {sport} left half-rewritten: {out:02x?}"));
                *seen.entry(last).or_insert(0u32) += 1;
            }
            seen
        });
        let mut flips = 0;
        for i in 0..40 {
            fx.apply(&[set(if i % 2 == 0 { 12 } else { 11 })]).unwrap();
            flips += 1;
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (flips, sender.join().unwrap())
    });
    assert_eq!(flips, 40);
    assert!(seen.len() == 2, "both sets must have carried traffic during the flips: {seen:?}");
}

/// An ICMP error about a tracked flow ("fragmentation needed" / "packet too big" from a
/// router on the client's path) reaches that flow's real server, NAT applied to the outer
/// destination and to the quoted packet; one about an unknown flow passes.
#[test]
fn icmp_errors_about_a_flow_reach_its_real_server() {
    let (_ns, _peer, mut fx) = setup();
    fx.apply(&[
        service(0, false, Scheduler::Rr, ForwardMethod::Nat, vec![real(false, ForwardMethod::Nat, 1000)]),
        service(1, true, Scheduler::Rr, ForwardMethod::Nat, vec![real(true, ForwardMethod::Nat, 1001)]),
        service(2, false, Scheduler::Rr, ForwardMethod::Dr, vec![real(false, ForwardMethod::Dr, 1002)]),
    ])
    .unwrap();
    let router4: IpAddr = Ipv4Addr::new(192, 0, 2, 99).into();
    let router6: IpAddr = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 0x99).into();
    for (svc, is_v6, vport, fwd) in [
        (0u32, false, 1000u16, ForwardMethod::Nat),
        (1, true, 1001, ForwardMethod::Nat),
        (2, false, 1002, ForwardMethod::Dr),
    ] {
        let syn = frame(is_v6, L4::TcpSyn { sport: 43000, dport: vport });
        fx.run(&syn).unwrap();
        let (router, client, vip, realip): (IpAddr, IpAddr, IpAddr, IpAddr) = if is_v6 {
            (router6, CLIENT6.into(), VIP6.into(), REAL6.into())
        } else {
            (router4, CLIENT4.into(), VIP4.into(), REAL4.into())
        };
        // What the VIP sent the client (as the client's path saw it), and the error about it.
        let sent = |src: IpAddr, sport: u16| match (src, client) {
            (IpAddr::V4(s), IpAddr::V4(c)) => v4(L2::Plain, s, c, L4::TcpAck { sport, dport: 43000 }, &[0; 1400]),
            (IpAddr::V6(s), IpAddr::V6(c)) => v6(L2::Plain, s, c, L4::TcpAck { sport, dport: 43000 }, &[0; 1400]),
            _ => unreachable!(),
        };
        let error = lb_tests::packets::icmp_too_big(router, vip, &sent(vip, vport));
        let want = match fwd {
            ForwardMethod::Nat => {
                let rport = NAT_PORT;
                with_macs(lb_tests::packets::icmp_too_big(router, realip, &sent(realip, rport)), LB_MAC, REAL_MAC)
            }
            _ => with_macs(error.clone(), LB_MAC, REAL_MAC),
        };
        fx.check(&Case {
            name: "icmp error",
            input: error,
            action: XDP_TX,
            output: Output::Frame(want),
            reason: "reason_icmp_fwd",
            service: Some(svc),
            also: &[],
        })
        .unwrap_or_else(|e| panic!("service {svc}: {e:#}"));
        // About a flow nobody tracks: passed as plain ICMP.
        let stray = lb_tests::packets::icmp_too_big(
            router,
            vip,
            &match (vip, client) {
                (IpAddr::V4(s), IpAddr::V4(c)) => v4(L2::Plain, s, c, L4::TcpAck { sport: vport, dport: 9 }, &[0; 8]),
                (IpAddr::V6(s), IpAddr::V6(c)) => v6(L2::Plain, s, c, L4::TcpAck { sport: vport, dport: 9 }, &[0; 8]),
                _ => unreachable!(),
            },
        );
        fx.check(&Case {
            name: "icmp error, unknown flow",
            input: stray,
            action: lb_tests::fixture::XDP_PASS,
            output: Output::Unchanged,
            reason: "reason_icmp",
            service: None,
            also: &[],
        })
        .unwrap();
    }
}

/// A packet the tunnel cannot carry (1500 bytes + the outer header over a 1500-byte link) is
/// answered with ICMP "fragmentation needed" / ICMPv6 "packet too big" advertising the MTU
/// less the tunnel header, from the VIP back to the sender's hop; without DF it is handed to
/// the daemon to fragment.
#[test]
fn tun_answers_packets_too_big_for_the_tunnel() {
    let (_ns, _peer, mut fx) = setup();
    fx.apply(&one_real_each_family(ForwardMethod::Tun)).unwrap();
    let big4 = v4(L2::Plain, CLIENT4, VIP4, L4::TcpAck { sport: 44000, dport: 1000 }, &[7; 1460]);
    let mut want4 = Vec::new();
    etherparse::PacketBuilder::ethernet2(LB_MAC, CLIENT_MAC)
        .ipv4(VIP4.octets(), CLIENT4.octets(), 64)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1480 },
        ))
        .write(&mut want4, &big4[14..14 + 28])
        .unwrap();
    let big6 = v6(L2::Plain, CLIENT6, VIP6, L4::TcpAck { sport: 44000, dport: 1001 }, &[7; 1440]);
    let mut want6 = Vec::new();
    etherparse::PacketBuilder::ethernet2(LB_MAC, CLIENT_MAC)
        .ipv6(VIP6.octets(), CLIENT6.octets(), 64)
        .icmpv6(etherparse::Icmpv6Type::PacketTooBig { mtu: 1460 })
        .write(&mut want6, &big6[14..14 + 56])
        .unwrap();
    for (svc, input, want) in [(0u32, big4.clone(), want4), (1, big6, want6)] {
        fx.check(&Case {
            name: "too big",
            input,
            action: XDP_TX,
            output: Output::Frame(want),
            reason: "reason_too_big",
            service: Some(svc),
            also: &["flows_new", "ct_inserts"],
        })
        .unwrap_or_else(|e| panic!("service {svc}: {e:#}"));
    }
    // Without DF the packet is fragmented, as IPVS does: handed to the daemon (`lb_punt`),
    // which fragments it and replays the fragments (see forwarding.rs for the delivery).
    let no_df = lb_tests::packets::fix_ipv4_csum(lb_tests::packets::patch(
        v4(L2::Plain, CLIENT4, VIP4, L4::TcpAck { sport: 44001, dport: 1000 }, &[7; 1460]),
        20,
        &[0, 0],
    ));
    fx.check(&Case {
        name: "too big, DF clear",
        input: no_df,
        action: XDP_DROP,
        output: Output::Unchanged,
        reason: "reason_frag_needed",
        service: Some(0),
        also: &["flows_new", "ct_inserts"],
    })
    .unwrap();
}

/// Persistence groups clients by `persistence_granularity`: with /24, two clients of one
/// /24 share a real server even under rr.
#[test]
fn persistence_granularity_groups_clients_by_prefix() {
    let (_ns, _peer, mut fx) = setup();
    let mut svc = service(0, false, Scheduler::Rr, ForwardMethod::Dr, vec![]);
    svc.reals = [11u8, 12]
        .iter()
        .map(|l| DesiredReal {
            addr: SocketAddr::new(Ipv4Addr::new(198, 51, 100, *l).into(), 1000),
            weight: 1,
            fwd: None,
            u_thresh: 0,
            l_thresh: 0,
        })
        .collect();
    svc.persist_timeout = 300;
    svc.persist_prefix = Some(24);
    fx.apply(&[svc]).unwrap();
    // Which real server (its MAC's last byte) a SYN from `client` reaches.
    let to = |client: Ipv4Addr, sport: u16| {
        let (action, out) = fx.run(&v4(L2::Plain, client, VIP4, L4::TcpSyn { sport, dport: 1000 }, b"")).unwrap();
        assert_eq!(action, XDP_TX);
        out[5]
    };
    let first = to(CLIENT4, 45000);
    // Ten more clients of the same /24, one new connection each: rr alone would spread them
    // over both real servers (all ten matching by chance: 1 in 1024).
    for host in 3..13u8 {
        assert_eq!(
            to(Ipv4Addr::new(192, 0, 2, host), 45000 + u16::from(host)),
            first,
            "192.0.2.{host} left the /24's real server"
        );
    }
    assert_eq!(to(CLIENT4, 45100), first, "same client, new connection");
}

/// lc counts a flow from its first packet until FIN/RST; a flow that just stops (a vanished
/// client, UDP) is dropped from the count when a packet finds it expired, or when the daemon's
/// housekeeping deletes it. Neither may lose the counts of flows opened meanwhile.
#[test]
fn expired_flows_leave_the_least_connection_counts() {
    let (_ns, _peer, mut fx) = setup();
    let mut svc = service(0, false, Scheduler::Lc, ForwardMethod::Dr, vec![]);
    svc.reals = [11u8, 12]
        .iter()
        .map(|l| DesiredReal {
            addr: SocketAddr::new(Ipv4Addr::new(198, 51, 100, *l).into(), 1000),
            weight: 1,
            fwd: None,
            u_thresh: 0,
            l_thresh: 0,
        })
        .collect();
    fx.apply(&[svc]).unwrap();
    let send = |fx: &lb_tests::fixture::Fixture, sport: u16, l4: fn(u16) -> L4| {
        let (action, _) = fx.run(&v4(L2::Plain, CLIENT4, VIP4, l4(sport), b"")).unwrap();
        assert_eq!(action, XDP_TX);
    };
    let syn = |sport| L4::TcpSyn { sport, dport: 1000 };
    let ack = |sport| L4::TcpAck { sport, dport: 1000 };
    let live = |fx: &lb_tests::fixture::Fixture| -> Vec<u64> {
        fx.snapshot().unwrap().services[0].reals.iter().map(|r| r.active_conns).collect()
    };
    // Half-open flows do not count (IPVS's active connections); recent SYNs still spread
    // the second connection to the other real server.
    send(&fx, 45000, syn);
    send(&fx, 45001, syn);
    assert_eq!(live(&fx), [0, 0]);
    send(&fx, 45000, ack);
    send(&fx, 45001, ack);
    assert_eq!(live(&fx), [1, 1]);

    // A packet of an expired flow: the old entry leaves the count, the flow is tracked anew.
    fx.age_flows().unwrap();
    send(&fx, 45000, ack);
    assert_eq!(live(&fx).iter().sum::<u64>(), 2, "{:?}", live(&fx));

    // Housekeeping deletes what expired and nobody touched; a flow opened after it counts.
    fx.age_flows().unwrap();
    fx.reconcile_conns().unwrap();
    assert_eq!(live(&fx), [0, 0]);
    assert_eq!(fx.tracked_flows().unwrap(), 0);
    send(&fx, 45002, syn);
    send(&fx, 45002, ack);
    fx.reconcile_conns().unwrap();
    assert_eq!(live(&fx).iter().sum::<u64>(), 1, "housekeeping must not drop a live flow's count");
    assert_eq!(fx.tracked_flows().unwrap(), 1);

    // The tables' turnover (the metrics' flow tables): 4 conntrack inserts (3 promotions, 1
    // re-tracked expired flow); deleted: 1 by the data plane (the expired entry it replaced),
    // 2 by housekeeping; 1 left. Nothing evicted.
    let tables = lb_daemon::dataplane::bpf::read_flow_tables(fx.pin_dir()).unwrap();
    let got: Vec<_> = tables.iter().map(|t| (t.table, t.inserts, t.deletes, t.entries, t.evictions)).collect();
    assert_eq!(got, [("conntrack", 4, 3, 1, 0), ("halfopen", 3, 3, 0, 0)]);
}

/// A hashing scheduler (mh here) answers the same for a flow's every packet, so a bare SYN
/// leaves no entry: its ACK reaches the same real server and records the flow, once, and the
/// connection counts as one new flow. rr, beside it, keeps the SYN in the half-open table.
#[test]
fn a_hashing_schedulers_syn_leaves_no_entry_and_its_ack_records_the_flow() {
    let (_ns, _peer, mut fx) = setup();
    let reals = |n: u8| -> Vec<DesiredReal> {
        (11..11 + n)
            .map(|l| DesiredReal {
                addr: SocketAddr::new(Ipv4Addr::new(198, 51, 100, l).into(), 1000),
                weight: 1,
                fwd: None,
                u_thresh: 0,
                l_thresh: 0,
            })
            .collect()
    };
    let mut mh = service(0, false, Scheduler::Mh, ForwardMethod::Dr, vec![]);
    mh.reals = reals(2);
    fx.apply(&[mh]).unwrap();
    // mh hashes the client's address: one client per connection.
    let send = |fx: &Fixture, sport: u16, syn: bool| -> [u8; 6] {
        let client = Ipv4Addr::new(192, 0, 2, 100 + (sport % 100) as u8);
        let l4 = if syn { L4::TcpSyn { sport, dport: 1000 } } else { L4::TcpAck { sport, dport: 1000 } };
        let (action, out) = fx.run(&v4(L2::Plain, client, VIP4, l4, b"")).unwrap();
        assert_eq!(action, XDP_TX);
        out[..6].try_into().unwrap()
    };
    let tables = |fx: &Fixture| -> Vec<(&'static str, u64, u64)> {
        let t = lb_daemon::dataplane::bpf::read_flow_tables(fx.pin_dir()).unwrap();
        t.iter().map(|t| (t.table, t.inserts, t.entries)).collect()
    };
    let mut to = Vec::new();
    for sport in 45000..45008u16 {
        let first = send(&fx, sport, true);
        assert_eq!(
            tables(&fx),
            [("conntrack", u64::from(sport - 45000), u64::from(sport - 45000)), ("halfopen", 0, 0)]
        );
        assert_eq!(send(&fx, sport, true), first, "a retransmitted SYN");
        assert_eq!(send(&fx, sport, false), first, "the ACK left its SYN's real server");
        to.push(first);
    }
    assert_eq!(tables(&fx), [("conntrack", 8, 8), ("halfopen", 0, 0)]);
    to.sort();
    to.dedup();
    assert!(to.len() > 1, "eight connections, all to one of two real servers: {to:02x?}");
    // New flows: the SYNs (the retransmitted ones too: nothing remembers them), not the ACKs.
    let s = fx.service_stats(0).unwrap();
    assert_eq!(s.new_flows, 16, "{s:?}");
    let g = fx.stats().unwrap();
    assert_eq!((g.flows_new, g.flows_hit, g.ct_inserts, g.halfopen_inserts), (16, 8, 8, 0));
    // A packet of an expired flow is scheduled anew: a new flow, as with any scheduler.
    fx.age_flows().unwrap();
    send(&fx, 45000, false);
    assert_eq!(fx.service_stats(0).unwrap().new_flows, 17);

    let mut rr = service(0, false, Scheduler::Rr, ForwardMethod::Dr, vec![]);
    rr.reals = reals(2);
    fx.apply(&[rr]).unwrap();
    send(&fx, 46000, true);
    assert_eq!(tables(&fx)[1], ("halfopen", 1, 1), "rr keeps the SYN's choice");
}

/// The kernel's LRU evicts silently; the metrics derive evictions as inserts - deletions -
/// entries. Three times the table's size in mid-flow packets of distinct flows (each tracked
/// at once): the derived count is every flow the table no longer holds.
#[test]
fn lru_evictions_are_derived_from_inserts_deletions_and_occupancy() {
    require_root();
    const TABLE: u32 = 4096;
    let (_ns, _peer, mut fx) = lb_tests::fixture::in_fib_namespace(TABLE).unwrap();
    fx.apply(&one_real_each_family(ForwardMethod::Dr)).unwrap();
    let frames: Vec<Vec<u8>> = (0..3 * TABLE)
        .map(|i| {
            let client = Ipv4Addr::from(u32::from(CLIENT4) + (i >> 14));
            v4(L2::Plain, client, VIP4, L4::TcpAck { sport: 10_000 + (i & 0x3fff) as u16, dport: 1000 }, b"")
        })
        .collect();
    assert!(fx.run_all(&frames).unwrap().iter().all(|(a, _)| *a == XDP_TX));
    let tables = lb_daemon::dataplane::bpf::read_flow_tables(fx.pin_dir()).unwrap();
    let ct = tables.iter().find(|t| t.table == "conntrack").unwrap();
    assert_eq!((ct.inserts, ct.deletes, ct.capacity), (u64::from(3 * TABLE), 0, TABLE), "{ct:?}");
    assert_eq!(ct.entries, fx.tracked_flows().unwrap() as u64);
    assert!(ct.entries <= u64::from(TABLE), "{ct:?}");
    assert_eq!(ct.evictions, ct.inserts - ct.entries, "{ct:?}");
    assert!(ct.evictions >= u64::from(2 * TABLE), "{ct:?}");
}

/// A SYN flood from spoofed sources, in miniature: a 64k-entry connection table (16k
/// half-open), 10k established flows, and 4× the connection table's size in spoofed SYNs.
/// Established flows come in two kinds: busy ones send a packet every half-table of flood
/// (and, with NAT, get a reply back through the VIP), idle ones say nothing for the whole
/// flood. Counts how many kept their real server through their tracked entry (not a lucky
/// re-schedule) and prints the rate the generator reached. SYNs wait in `lb_halfopen`
/// until the handshake completes, so the flood never evicts an established flow.
#[test]
fn a_syn_flood_does_not_move_established_flows() {
    require_root();
    for fwd in [ForwardMethod::Dr, ForwardMethod::Nat] {
        flood(fwd, false);
    }
}

/// The same with spoofed UDP datagrams against established UDP flows (a flow is established
/// by the client's second datagram; until then it waits in `lb_halfopen`, as a SYN does).
#[test]
fn a_udp_flood_does_not_move_established_flows() {
    require_root();
    for fwd in [ForwardMethod::Dr, ForwardMethod::Nat] {
        flood(fwd, true);
    }
}

/// A flow's segment for a client source port.
type SegmentOf = fn(u16) -> L4;

fn flood(fwd: ForwardMethod, udp: bool) {
    const TABLE: u32 = 65_536;
    const ESTABLISHED: u16 = 10_000;
    let (_ns, _peer, mut fx) = lb_tests::fixture::in_fib_namespace(TABLE).unwrap();
    let port = if fwd == ForwardMethod::Nat { NAT_PORT } else { 1000 };
    let mut svc = service(0, false, Scheduler::Rr, fwd, vec![]);
    if udp {
        svc = as_udp(svc);
    }
    svc.reals = [11u8, 12]
        .iter()
        .map(|l| DesiredReal {
            addr: SocketAddr::new(Ipv4Addr::new(198, 51, 100, *l).into(), port),
            weight: 1,
            fwd: None,
            u_thresh: 0,
            l_thresh: 0,
        })
        .collect();
    fx.apply(&[svc]).unwrap();
    // Busy flows from 192.0.2.2, idle ones from 192.0.2.3; which real server got a packet is
    // the last byte of its destination MAC.
    let client = |busy: bool| if busy { CLIENT4 } else { Ipv4Addr::new(192, 0, 2, 3) };
    let segments = |busy: bool, l4: fn(u16) -> L4| -> Vec<Vec<u8>> {
        (0..ESTABLISHED).map(|i| v4(L2::Plain, client(busy), VIP4, l4(10_000 + i), b"data")).collect()
    };
    // TCP: a SYN opens a flow, the ACK establishes it; UDP: the second datagram does.
    let (syn, ack): (SegmentOf, SegmentOf) = if udp {
        (|sport| L4::Udp { sport, dport: 1000 }, |sport| L4::Udp { sport, dport: 1000 })
    } else {
        (|sport| L4::TcpSyn { sport, dport: 1000 }, |sport| L4::TcpAck { sport, dport: 1000 })
    };
    let real_of = |results: Vec<(u32, Vec<u8>)>| -> Vec<u8> {
        results.into_iter().map(|(a, out)| if a == XDP_TX { out[5] } else { 0 }).collect()
    };
    // NAT: each busy flow's real server answers; the reply must leave from the VIP.
    let replies_from_the_vip = |fx: &lb_tests::fixture::Fixture, owners: &[u8]| -> usize {
        let replies: Vec<Vec<u8>> = owners
            .iter()
            .enumerate()
            .map(|(i, last)| {
                let real = Ipv4Addr::new(198, 51, 100, *last - 0x11 + 11);
                let dport = 10_000 + i as u16;
                let l4 = if udp { L4::Udp { sport: NAT_PORT, dport } } else { L4::TcpAck { sport: NAT_PORT, dport } };
                v4(L2::Plain, real, CLIENT4, l4, b"re")
            })
            .collect();
        fx.run_all(&replies).unwrap().iter().filter(|(a, out)| *a == XDP_TX && out[26..30] == VIP4.octets()).count()
    };
    let mut owner = std::collections::HashMap::new();
    for busy in [true, false] {
        let first = real_of(fx.run_all(&segments(busy, syn)).unwrap());
        assert_eq!(real_of(fx.run_all(&segments(busy, ack)).unwrap()), first, "handshake moved a flow");
        assert!(first.iter().all(|r| [0x11, 0x12].contains(r)));
        owner.insert(busy, first);
    }
    if fwd == ForwardMethod::Nat {
        assert_eq!(replies_from_the_vip(&fx, &owner[&true]), usize::from(ESTABLISHED));
    }

    // Spoofed SYNs (datagrams): sources all over 198.51.100.0/24 and 203.0.113.0/24, random
    // ports.
    let mut seed: u32 = 0x9e37_79b9;
    let mut flood = |n: u32| -> Vec<Vec<u8>> {
        (0..n)
            .map(|_| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let host = (seed >> 8) as u8;
                let src =
                    if seed >> 31 == 0 { Ipv4Addr::new(198, 51, 100, host) } else { Ipv4Addr::new(203, 0, 113, host) };
                v4(L2::Plain, src, VIP4, syn((seed >> 16) as u16 | 1024), b"")
            })
            .collect()
    };
    let (mut sent, mut busy_moved, mut busy_rescheduled, mut replies_lost, mut kernel_ns) = (0u64, 0, 0, 0, 0u64);
    for _ in 0..8 {
        let burst = flood(TABLE / 2);
        kernel_ns += fx.time_runs("lb_xdp", &burst).unwrap().iter().sum::<u64>();
        sent += burst.len() as u64;
        let before = fx.stats().unwrap().flows_new;
        let now = real_of(fx.run_all(&segments(true, ack)).unwrap());
        busy_rescheduled += fx.stats().unwrap().flows_new - before;
        busy_moved += now.iter().zip(&owner[&true]).filter(|(a, b)| a != b).count();
        if fwd == ForwardMethod::Nat {
            replies_lost += usize::from(ESTABLISHED) - replies_from_the_vip(&fx, &owner[&true]);
        }
    }
    let before = fx.stats().unwrap().flows_new;
    let idle_now = real_of(fx.run_all(&segments(false, ack)).unwrap());
    let idle_rescheduled = fx.stats().unwrap().flows_new - before;
    let idle_moved = idle_now.iter().zip(&owner[&false]).filter(|(a, b)| a != b).count();
    println!(
        "{} flood ({fwd:?}): {sent} spoofed packets into a {TABLE}-entry table ({:.2} Mpps in the program, one CPU); \
         busy established flows: {busy_moved} of {} packets moved, {busy_rescheduled} re-scheduled, \
         {replies_lost} replies not sent from the VIP; idle established flows: {idle_moved} of {ESTABLISHED} moved, \
         {idle_rescheduled} re-scheduled",
        if udp { "UDP" } else { "SYN" },
        sent as f64 / kernel_ns as f64 * 1e3,
        8 * u32::from(ESTABLISHED),
    );
    assert_eq!((busy_moved, busy_rescheduled, replies_lost), (0, 0, 0), "busy established flows lost their entries");
    assert_eq!((idle_moved, idle_rescheduled), (0, 0), "idle established flows lost their entries");
}

/// `s` as a UDP service (same VIP and port).
fn as_udp(mut s: DesiredService) -> DesiredService {
    s.keys = s.keys.iter().map(|k| ServiceKey { proto: 17, ..*k }).collect();
    s
}

/// A sender that leaves its checksums to offload (a container or namespace behind a veth,
/// the kernel's default) hands over frames whose TCP/UDP checksum field holds only the
/// pseudo-header sum. Whatever the method, the frame that leaves has a complete checksum:
/// exactly the frame etherparse builds.
#[test]
fn checksums_left_to_offload_are_completed_before_sending() {
    let (_ns, _peer, mut fx) = setup();
    let mut services = Vec::new();
    for (i, (fwd, is_v6)) in METHODS.iter().flat_map(|f| [(*f, false), (*f, true)]).enumerate() {
        services.push(service(i, is_v6, Scheduler::Rr, fwd, vec![real(is_v6, fwd, 1000 + i as u16)]));
    }
    fx.apply(&services).unwrap();
    for (i, svc) in services.iter().enumerate() {
        let (fwd, is_v6) = (svc.forward, matches!(svc.keys[0].family, lb_common::consts::FAMILY_V6));
        let vport = 1000 + i as u16;
        let rport = if fwd == ForwardMethod::Nat { NAT_PORT } else { vport };
        let (l4, l4_real) = (L4::TcpSyn { sport: 42000, dport: vport }, L4::TcpSyn { sport: 42000, dport: rport });
        let complete = frame(is_v6, l4);
        let (out, reason) = expected(is_v6, fwd, &complete, l4_real);
        fx.check(&Case {
            name: "partial checksum",
            input: lb_tests::packets::with_partial_l4_csum(complete),
            action: XDP_TX,
            output: Output::Frame(out),
            reason,
            service: Some(i as u32),
            also: &["flows_new", "csum_completed", "halfopen_inserts"],
        })
        .unwrap_or_else(|e| panic!("{fwd:?} is_v6={is_v6}: {e:#}"));
    }
    // A NAT real server on a local veth answers with a partial checksum too.
    let reply = v4(L2::Plain, REAL4, CLIENT4, L4::TcpAck { sport: NAT_PORT, dport: 42000 }, b"data");
    let want = v4(L2::Plain, VIP4, CLIENT4, L4::TcpAck { sport: 1000, dport: 42000 }, b"data");
    fx.check(&Case {
        name: "partial checksum, NAT reply",
        input: lb_tests::packets::with_partial_l4_csum(with_macs(reply, REAL_MAC, LB_MAC)),
        action: XDP_TX,
        output: Output::Frame(with_macs(want, LB_MAC, CLIENT_MAC)),
        reason: "reason_nat_reply",
        service: Some(0),
        also: &["csum_completed"],
    })
    .unwrap();
}

/// Fragmented UDP datagrams: the first fragment decides (and is rewritten like any packet),
/// the later ones follow it to the same real server (NAT rewrites only their address); a
/// later fragment that arrives before its first is held for the daemon, and follows once
/// the first has passed. Fragmented NAT replies get the VIP back. Expected frames are
/// etherparse's datagrams, fragmented the same way.
#[test]
fn fragments_follow_their_first_fragment() {
    let (_ns, _peer, mut fx) = setup();
    let mut services = Vec::new();
    for (i, (fwd, is_v6)) in METHODS.iter().flat_map(|f| [(*f, false), (*f, true)]).enumerate() {
        services.push(as_udp(service(i, is_v6, Scheduler::Rr, fwd, vec![real(is_v6, fwd, 1000 + i as u16)])));
    }
    fx.apply(&services).unwrap();
    let payload: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
    // Fragments small enough that TUN's outer header still fits the 1500-byte link.
    let split = |whole: &[u8], is_v6: bool, id: u16| {
        if is_v6 {
            lb_tests::packets::fragment_v6(whole, 1232, u32::from(id))
        } else {
            lb_tests::packets::fragment_v4(whole, 1400, id)
        }
    };
    let datagram = |is_v6: bool, src_is_real: bool, l4: L4| -> Vec<u8> {
        match (is_v6, src_is_real) {
            (false, false) => v4(L2::Plain, CLIENT4, VIP4, l4, &payload),
            (false, true) => v4(L2::Plain, CLIENT4, REAL4, l4, &payload),
            (true, false) => v6(L2::Plain, CLIENT6, VIP6, l4, &payload),
            (true, true) => v6(L2::Plain, CLIENT6, REAL6, l4, &payload),
        }
    };
    for (i, svc) in services.iter().enumerate() {
        let (fwd, is_v6) = (svc.forward, matches!(svc.keys[0].family, lb_common::consts::FAMILY_V6));
        let vport = 1000 + i as u16;
        let rport = if fwd == ForwardMethod::Nat { NAT_PORT } else { vport };
        let case = |name: &'static str, input: Vec<u8>, out: Vec<u8>, reason: &'static str, also| Case {
            name,
            input,
            action: XDP_TX,
            output: Output::Frame(out),
            reason,
            service: Some(i as u32),
            also,
        };
        let sent_as = |input: &[u8], nat_out: &[u8]| -> Vec<u8> {
            match fwd {
                ForwardMethod::Nat => with_macs(nat_out.to_vec(), LB_MAC, REAL_MAC),
                ForwardMethod::Dr => with_macs(input.to_vec(), LB_MAC, REAL_MAC),
                ForwardMethod::Tun if is_v6 => ip6ip6(input, TUN_SRC6, REAL6, LB_MAC, REAL_MAC),
                ForwardMethod::Tun => ipip(input, TUN_SRC4, REAL4, LB_MAC, REAL_MAC),
            }
        };
        // In order.
        let sport = 43000 + i as u16;
        let frags = split(&datagram(is_v6, false, L4::Udp { sport, dport: vport }), is_v6, 100 + i as u16);
        let nat = split(&datagram(is_v6, true, L4::Udp { sport, dport: rport }), is_v6, 100 + i as u16);
        assert_eq!(frags.len(), 3);
        let reason = expected(is_v6, fwd, &frags[0], L4::Udp { sport, dport: rport }).1;
        for (n, (input, nat_out)) in frags.iter().zip(&nat).enumerate() {
            let also: &'static [&'static str] =
                if n == 0 { &["flows_new", "frags_first", "halfopen_inserts"] } else { &["frags_followed"] };
            fx.check(&case("in order", input.clone(), sent_as(input, nat_out), reason, also))
                .unwrap_or_else(|e| panic!("{fwd:?} is_v6={is_v6} fragment {n}: {e:#}"));
        }
        // The last fragment first: held, then it follows once the first has passed.
        let sport = 44000 + i as u16;
        let frags = split(&datagram(is_v6, false, L4::Udp { sport, dport: vport }), is_v6, 200 + i as u16);
        let nat = split(&datagram(is_v6, true, L4::Udp { sport, dport: rport }), is_v6, 200 + i as u16);
        fx.check(&Case {
            name: "held",
            input: frags[2].clone(),
            action: XDP_DROP,
            output: Output::Unchanged,
            reason: "reason_frag_held",
            service: None,
            also: &[],
        })
        .unwrap_or_else(|e| panic!("{fwd:?} is_v6={is_v6}: {e:#}"));
        let first_also = &["flows_new", "frags_first", "halfopen_inserts"];
        fx.check(&case("first", frags[0].clone(), sent_as(&frags[0], &nat[0]), reason, first_also))
            .unwrap_or_else(|e| panic!("{fwd:?} is_v6={is_v6}: {e:#}"));
        for n in [2, 1] {
            fx.check(&case("replayed", frags[n].clone(), sent_as(&frags[n], &nat[n]), reason, &["frags_followed"]))
                .unwrap_or_else(|e| panic!("{fwd:?} is_v6={is_v6} fragment {n}: {e:#}"));
        }
        if fwd != ForwardMethod::Nat {
            continue;
        }
        // The real server's fragmented answer leaves from the VIP.
        let back = |src_is_vip: bool| -> Vec<u8> {
            let (l4, p) = (L4::Udp { sport: if src_is_vip { vport } else { NAT_PORT }, dport: sport }, &payload);
            match (is_v6, src_is_vip) {
                (false, false) => with_macs(v4(L2::Plain, REAL4, CLIENT4, l4, p), REAL_MAC, LB_MAC),
                (false, true) => with_macs(v4(L2::Plain, VIP4, CLIENT4, l4, p), LB_MAC, CLIENT_MAC),
                (true, false) => with_macs(v6(L2::Plain, REAL6, CLIENT6, l4, p), REAL_MAC, LB_MAC),
                (true, true) => with_macs(v6(L2::Plain, VIP6, CLIENT6, l4, p), LB_MAC, CLIENT_MAC),
            }
        };
        // (Each datagram its own identification, as senders number them.)
        let (replies, wants) = (split(&back(false), is_v6, 300 + i as u16), split(&back(true), is_v6, 300 + i as u16));
        for (n, (input, want)) in replies.into_iter().zip(wants).enumerate() {
            let also: &'static [&'static str] = if n == 0 { &["frags_first"] } else { &["frags_followed"] };
            fx.check(&case("reply", input, want, "reason_nat_reply", also))
                .unwrap_or_else(|e| panic!("NAT reply is_v6={is_v6} fragment {n}: {e:#}"));
        }
    }
    // A fragmented datagram that is no service's: every fragment goes to the stack at once.
    let other = split(&v4(L2::Plain, CLIENT4, REAL4, L4::Udp { sport: 1, dport: 9 }, &payload), false, 400);
    for (n, f) in other.into_iter().enumerate() {
        let (reason, also): (&str, &'static [&'static str]) =
            if n == 0 { ("reason_no_service", &["frags_first"]) } else { ("reason_fragment", &["frags_followed"]) };
        fx.check(&Case {
            name: "not ours",
            input: f,
            action: lb_tests::fixture::XDP_PASS,
            output: Output::Unchanged,
            reason,
            service: None,
            also,
        })
        .unwrap_or_else(|e| panic!("fragment {n}: {e:#}"));
    }
}

/// An ICMP error from the real servers' side about a NAT flow — a router there saying
/// "fragmentation needed" about the client's packet as NAT sent it on — reaches the client
/// from the VIP, quoting the packet as the client sent it (IPVS's `ip_vs_nat_icmp`).
#[test]
fn icmp_errors_from_the_real_side_reach_the_client_from_the_vip() {
    let (_ns, _peer, mut fx) = setup();
    fx.apply(&one_real_each_family(ForwardMethod::Nat)).unwrap();
    const ROUTER4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 254);
    const ROUTER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 0xfe);
    for (is_v6, vport) in [(false, 1000u16), (true, 1001)] {
        let l4 = L4::TcpAck { sport: 45000, dport: vport };
        let sent = frame(is_v6, l4);
        let (natted, _) = expected(is_v6, ForwardMethod::Nat, &sent, L4::TcpAck { sport: 45000, dport: NAT_PORT });
        fx.run(&sent).unwrap();
        let quote = if is_v6 { 40 + 8 } else { 20 + 8 };
        let (mut input, mut want) = (Vec::new(), Vec::new());
        if is_v6 {
            etherparse::PacketBuilder::ethernet2(REAL_MAC, LB_MAC)
                .ipv6(ROUTER6.octets(), CLIENT6.octets(), 64)
                .icmpv6(etherparse::Icmpv6Type::PacketTooBig { mtu: 1400 })
                .write(&mut input, &natted[14..14 + quote])
                .unwrap();
            etherparse::PacketBuilder::ethernet2(LB_MAC, CLIENT_MAC)
                .ipv6(VIP6.octets(), CLIENT6.octets(), 64)
                .icmpv6(etherparse::Icmpv6Type::PacketTooBig { mtu: 1400 })
                .write(&mut want, &sent[14..14 + quote])
                .unwrap();
        } else {
            let need = etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1400 };
            etherparse::PacketBuilder::ethernet2(REAL_MAC, LB_MAC)
                .ipv4(ROUTER4.octets(), CLIENT4.octets(), 64)
                .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(need.clone()))
                .write(&mut input, &natted[14..14 + quote])
                .unwrap();
            etherparse::PacketBuilder::ethernet2(LB_MAC, CLIENT_MAC)
                .ipv4(VIP4.octets(), CLIENT4.octets(), 64)
                .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(need))
                .write(&mut want, &sent[14..14 + quote])
                .unwrap();
        }
        fx.check(&Case {
            name: "ICMP from the real side",
            input,
            action: XDP_TX,
            output: Output::Frame(want),
            reason: "reason_icmp_reply",
            service: Some(u32::from(is_v6)),
            also: &[],
        })
        .unwrap_or_else(|e| panic!("is_v6={is_v6}: {e:#}"));
    }
}

/// A frame for a service with a wrong IPv4 header checksum is dropped, as the kernel would.
#[test]
fn a_wrong_ipv4_header_checksum_is_dropped() {
    let (_ns, _peer, mut fx) = setup();
    fx.apply(&[service(0, false, Scheduler::Rr, ForwardMethod::Dr, vec![real(false, ForwardMethod::Dr, 1000)])])
        .unwrap();
    let mut bad = frame(false, L4::TcpSyn { sport: 46000, dport: 1000 });
    bad[24] ^= 0x55;
    fx.check(&Case {
        name: "bad IPv4 header checksum",
        input: bad,
        action: XDP_DROP,
        output: Output::Unchanged,
        reason: "reason_bad_ipv4_csum",
        service: None,
        also: &[],
    })
    .unwrap();
}

/// Two CPUs handling the same flows at the same moment count each change once: both see a
/// flow's FIN (it leaves its real server's count once), both see a half-open flow's ACK (it
/// joins the count once). lc reads these counts, so they must be exact.
#[test]
fn two_cpus_racing_on_the_same_flows_count_each_once() {
    require_root();
    const FLOWS: u16 = 16_000;
    let (_ns, _peer, mut fx) = lb_tests::fixture::in_fib_namespace(65_536).unwrap();
    let mut svc = service(0, false, Scheduler::Lc, ForwardMethod::Dr, vec![]);
    svc.reals = [11u8, 12]
        .iter()
        .map(|l| DesiredReal {
            addr: SocketAddr::new(Ipv4Addr::new(198, 51, 100, *l).into(), 1000),
            weight: 1,
            fwd: None,
            u_thresh: 0,
            l_thresh: 0,
        })
        .collect();
    fx.apply(&[svc]).unwrap();
    let frames = |from: u16, l4: fn(u16) -> L4| -> Vec<Vec<u8>> {
        (from..from + FLOWS).map(|sport| v4(L2::Plain, CLIENT4, VIP4, l4(sport), b"")).collect()
    };
    let syn: fn(u16) -> L4 = |sport| L4::TcpSyn { sport, dport: 1000 };
    let ack: fn(u16) -> L4 = |sport| L4::TcpAck { sport, dport: 1000 };
    let fin: fn(u16) -> L4 = |sport| L4::TcpFin { sport, dport: 1000 };
    let live = |fx: &Fixture| -> u64 { fx.snapshot().unwrap().services[0].reals.iter().map(|r| r.active_conns).sum() };
    let both_cpus = |fx: &Fixture, frames: &[Vec<u8>]| {
        let start = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            for cpu in [0, 1] {
                let start = &start;
                s.spawn(move || {
                    start.wait();
                    fx.run_all_on(cpu, frames).unwrap();
                });
            }
        });
    };
    // Half-open flows, each completed by both CPUs at once.
    fx.run_all(&frames(10_000, syn)).unwrap();
    assert_eq!(live(&fx), 0, "half-open flows do not count");
    both_cpus(&fx, &frames(10_000, ack));
    let after_acks = live(&fx);
    // Established flows (as many again), the first FLOWS closed by both CPUs at once.
    fx.run_all(&frames(30_000, syn)).unwrap();
    fx.run_all(&frames(30_000, ack)).unwrap();
    both_cpus(&fx, &frames(10_000, fin));
    let after_fins = live(&fx);
    println!("two CPUs: {after_acks} live after {FLOWS} doubled ACKs, {after_fins} after {FLOWS} doubled FINs");
    assert_eq!((after_acks, after_fins), (u64::from(FLOWS), u64::from(FLOWS)));
}

/// A removed real server's id is not handed to a new real server after a restart either:
/// flows and persistence entries name real servers by id, so its stale entries would reach
/// the newcomer. (A restarted daemon adopts the pins: `share` is that second instance.)
#[test]
fn a_restart_does_not_reuse_a_removed_real_servers_id() {
    let (_ns, _peer, mut fx) = setup();
    let a =
        DesiredReal { addr: SocketAddr::new(backend4(0).into(), 80), weight: 1, fwd: None, u_thresh: 0, l_thresh: 0 };
    let b =
        DesiredReal { addr: SocketAddr::new(backend4(1).into(), 80), weight: 1, fwd: None, u_thresh: 0, l_thresh: 0 };
    let c =
        DesiredReal { addr: SocketAddr::new(backend4(2).into(), 80), weight: 1, fwd: None, u_thresh: 0, l_thresh: 0 };
    let svc = |reals: Vec<DesiredReal>| service(0, false, Scheduler::Rr, ForwardMethod::Dr, reals);
    fx.apply(&[svc(vec![a.clone(), b.clone()])]).unwrap();
    let b_id = fx.real_id(b.addr).unwrap().expect("b programmed");
    fx.apply(&[svc(vec![a.clone()])]).unwrap();
    assert_eq!(fx.real_id(b.addr).unwrap(), None, "b removed");
    let mut restarted = fx.share().unwrap();
    restarted.apply(&[svc(vec![a.clone(), c.clone()])]).unwrap();
    let c_id = restarted.real_id(c.addr).unwrap().expect("c programmed");
    assert_ne!(c_id, b_id, "the restarted daemon gave the new real server the removed one's id");
    assert!(c_id > b_id, "ids handed out before the restart are not fresh: b {b_id}, c {c_id}");
}

/// A service's counters are its real servers' sums (`lb_real_stats`, one counter entry per
/// forwarded packet), its drops and what its retired real servers counted: removing a real
/// server takes nothing from the service's totals, and a new service on a freed id starts
/// from zero. The daemon's own sums (`service_stats`) and `lb-daemon stats` (`read_stats`,
/// from the pins alone) agree at every step.
#[test]
fn a_services_counters_keep_what_its_removed_real_servers_counted() {
    let (_ns, _peer, mut fx) = setup();
    let at = |i: usize| DesiredReal {
        addr: SocketAddr::new(backend4(i).into(), 1000),
        weight: 1,
        fwd: None,
        u_thresh: 0,
        l_thresh: 0,
    };
    let svc = |i: usize, reals: Vec<DesiredReal>| service(i, false, Scheduler::Rr, ForwardMethod::Dr, reals);
    let totals = |fx: &Fixture, id: u32| -> (u64, u64, u64, u64) {
        let s = fx.service_stats(id).unwrap();
        let snap = fx.snapshot().unwrap();
        let v = snap.services.iter().find(|v| v.id == id).expect("service listed");
        assert_eq!((v.packets, v.bytes, v.new_flows, v.drops), (s.packets, s.bytes, s.new_flows, s.drops));
        (s.packets, s.bytes, s.new_flows, s.drops)
    };
    fx.apply(&[svc(0, vec![at(0), at(1)])]).unwrap();
    let syn = |sport: u16| frame(false, L4::TcpSyn { sport, dport: 1000 });
    let len = syn(1).len() as u64;
    for sport in 41000..41006 {
        fx.run(&syn(sport)).unwrap();
    }
    let per_real =
        |fx: &Fixture| -> Vec<u64> { fx.snapshot().unwrap().services[0].reals.iter().map(|r| r.packets).collect() };
    assert_eq!(per_real(&fx), [3, 3], "rr over two real servers");
    assert_eq!(totals(&fx, 0), (6, 6 * len, 6, 0));
    // The second real server leaves: its id is cleared once its grace period is over
    // (`apply` waits for it), and its three packets stay in the service's totals.
    fx.apply(&[svc(0, vec![at(0)])]).unwrap();
    assert_eq!(fx.real_id(at(1).addr).unwrap(), None, "cleared");
    assert_eq!(per_real(&fx), [3]);
    assert_eq!(totals(&fx, 0), (6, 6 * len, 6, 0));
    fx.run(&syn(41006)).unwrap();
    assert_eq!(totals(&fx, 0), (7, 7 * len, 7, 0));
    // No live real server: dropped, counted to the service alone.
    let mut down = svc(0, vec![at(0)]);
    down.reals[0].weight = 0;
    fx.apply(&[down]).unwrap();
    let (action, _) = fx.run(&syn(41007)).unwrap();
    assert_eq!(action, XDP_DROP);
    assert_eq!(totals(&fx, 0), (8, 8 * len, 7, 1));
    // The service goes; another takes its id and starts from zero.
    fx.apply(&[]).unwrap();
    fx.apply(&[svc(1, vec![at(2)])]).unwrap();
    assert_eq!(fx.snapshot().unwrap().services[0].id, 0, "the freed id is reused");
    assert_eq!(totals(&fx, 0), (0, 0, 0, 0));
}

/// A NAT reply from a real server whose id has been freed (its flow outlives it, through the
/// flow's own reverse entry) counts to its service: the freed id's counters were carried
/// already, and nothing reads them again.
#[test]
fn a_removed_real_servers_replies_count_to_its_service() {
    let (_ns, _peer, mut fx) = setup();
    let [a, b] = sharing_a_real_server();
    fx.apply(&[a.clone(), b]).unwrap();
    // svc0 has the shared real server's reverse entry, so svc1's flow keeps one of its own.
    open(&fx, 41001, 1001);
    let (reply, _) = from_real4(L4::TcpAck { sport: NAT_PORT, dport: 41001 }, 1001);
    assert_eq!(fx.run(&reply).unwrap().0, XDP_TX);
    let packets = |fx: &Fixture| fx.service_stats(1).unwrap().packets;
    assert_eq!(packets(&fx), 3);
    // svc1's real server is replaced: its id is freed and its counts carried.
    let other = DesiredReal {
        addr: SocketAddr::new(backend4(1).into(), NAT_PORT),
        weight: 1,
        fwd: None,
        u_thresh: 0,
        l_thresh: 0,
    };
    fx.apply(&[a, service(1, false, Scheduler::Rr, ForwardMethod::Nat, vec![other])]).unwrap();
    assert_eq!(packets(&fx), 3);
    fx.run(&reply).unwrap();
    assert_eq!(packets(&fx), 4, "the reply of the freed real server's flow");
}

/// sh-port and mh-port: one client's connections from different source ports spread over
/// the real servers, and a source port keeps its real server: a second, fresh data plane (no
/// flow state shared) sends each port where the first did. The same service without the flag
/// (plain sh or mh, the control) sends every port of the client to one real server.
#[test]
fn sh_port_spreads_one_clients_ports_and_each_port_is_stable() {
    for sched in [Scheduler::Sh, Scheduler::Mh] {
        hash_port_spreads_and_holds(sched);
    }
}

fn hash_port_spreads_and_holds(sched: Scheduler) {
    let reals = || {
        (0..2)
            .map(|i| DesiredReal {
                addr: SocketAddr::new(backend4(i).into(), NAT_PORT),
                weight: 1,
                fwd: None,
                u_thresh: 0,
                l_thresh: 0,
            })
            .collect::<Vec<_>>()
    };
    let services = || {
        let mut with_port = service(0, false, sched, ForwardMethod::Nat, reals());
        with_port.sched_flags = lb_daemon::config::SCHED_FLAG_2;
        [with_port, service(1, false, sched, ForwardMethod::Nat, reals())]
    };
    // Which real server (0 or 1) each source port's SYN to VIP port `dport` went to.
    let placed = |fx: &mut Fixture, dport: u16| -> Vec<usize> {
        (40000u16..40064)
            .map(|sport| {
                let out = match fx.run(&frame(false, L4::TcpSyn { sport, dport })).unwrap() {
                    (XDP_TX, out) => out,
                    (action, _) => panic!("port {sport}: not forwarded ({action})"),
                };
                (0..2)
                    .find(|&i| {
                        let want = v4(L2::Plain, CLIENT4, backend4(i), L4::TcpSyn { sport, dport: NAT_PORT }, b"data");
                        out == with_macs(want, LB_MAC, real_mac(i))
                    })
                    .unwrap_or_else(|| panic!("port {sport}: unexpected frame {out:02x?}"))
            })
            .collect()
    };
    let (_ns, _peer, mut fx) = setup();
    fx.apply(&services()).unwrap();
    let first = placed(&mut fx, 1000);
    let on_one = first.iter().filter(|&&r| r == 1).count();
    assert!((16..=48).contains(&on_one), "{sched:?}: 64 ports of one client must spread over both: {on_one} on real 1");
    let plain = placed(&mut fx, 1001);
    assert!(
        plain.iter().all(|&r| r == plain[0]),
        "{sched:?}: without the flag one client is one real server: {plain:?}"
    );
    drop((_ns, _peer, fx));

    let (_ns, _peer, mut fx) = setup();
    fx.apply(&services()).unwrap();
    assert_eq!(placed(&mut fx, 1000), first, "{sched:?}: a source port must keep its real server");
}

/// A real server without a port (0) in a service with several ports (a virtual_server_group):
/// NAT keeps each packet's destination port, as IPVS does with a destination port of 0, and
/// the replies leave from the port the client used.
#[test]
fn a_real_server_without_a_port_keeps_the_destination_port() {
    let (_ns, _peer, mut fx) = setup();
    let mut s = service(0, false, Scheduler::Rr, ForwardMethod::Nat, vec![]);
    s.keys.push(lb_daemon::dataplane::services::key_of(VIP4.into(), 1005, lb_common::consts::IPPROTO_TCP));
    s.reals =
        vec![DesiredReal { addr: SocketAddr::new(REAL4.into(), 0), weight: 1, fwd: None, u_thresh: 0, l_thresh: 0 }];
    fx.apply(&[s]).unwrap();
    for (sport, vport) in [(41000u16, 1000u16), (41001, 1005)] {
        let (action, out) = fx.run(&frame(false, L4::TcpSyn { sport, dport: vport })).unwrap();
        let want = v4(L2::Plain, CLIENT4, REAL4, L4::TcpSyn { sport, dport: vport }, b"data");
        assert_eq!((action, out), (XDP_TX, with_macs(want, LB_MAC, REAL_MAC)), "to VIP port {vport}");
        let reply = v4(L2::Plain, REAL4, CLIENT4, L4::TcpAck { sport: vport, dport: sport }, b"data");
        let (action, out) = fx.run(&with_macs(reply, REAL_MAC, LB_MAC)).unwrap();
        let want = v4(L2::Plain, VIP4, CLIENT4, L4::TcpAck { sport: vport, dport: sport }, b"data");
        assert_eq!((action, out), (XDP_TX, with_macs(want, LB_MAC, CLIENT_MAC)), "reply from port {vport}");
    }
}

/// sh-fallback and mh-fallback through the data plane: with three real servers, the source
/// ports (sh-port, mh-port) that went to real servers 0 and 1 stay there when real server 2
/// drops to weight 0, and real server 2's ports move to them. Without the flag (the control),
/// the table is dealt again over the two and ports of real servers 0 and 1 move. Each pass
/// runs on a fresh data plane, so no flow entry holds a port where it was.
#[test]
fn sh_fallback_moves_only_the_ports_of_a_weight_zero_real_server() {
    for sched in [Scheduler::Sh, Scheduler::Mh] {
        fallback_moves_only_a_weight_zero_servers_ports(sched);
    }
}

fn fallback_moves_only_a_weight_zero_servers_ports(sched: Scheduler) {
    let ports = 40000u16..40120;
    let set = |third: u32, fallback: bool| {
        let reals = (0..3)
            .map(|i| DesiredReal {
                addr: SocketAddr::new(backend4(i).into(), NAT_PORT),
                weight: if i == 2 { third } else { 1 },
                fwd: None,
                u_thresh: 0,
                l_thresh: 0,
            })
            .collect();
        let mut s = service(0, false, sched, ForwardMethod::Nat, reals);
        s.sched_flags = lb_daemon::config::SCHED_FLAG_2 | if fallback { lb_daemon::config::SCHED_FLAG_1 } else { 0 };
        s
    };
    // Real server (0 or 1) each port went to; 2 for anything else (real server 2 has no
    // neighbour entry in the fixture's namespace: its frames are not sent).
    let placed = |s: DesiredService| -> Vec<usize> {
        let (_ns, _peer, mut fx) = setup();
        fx.apply(&[s]).unwrap();
        ports
            .clone()
            .map(|sport| {
                let (action, out) = fx.run(&frame(false, L4::TcpSyn { sport, dport: 1000 })).unwrap();
                (0..2)
                    .find(|&i| {
                        let want = v4(L2::Plain, CLIENT4, backend4(i), L4::TcpSyn { sport, dport: NAT_PORT }, b"data");
                        action == XDP_TX && out == with_macs(want, LB_MAC, real_mac(i))
                    })
                    .unwrap_or(2)
            })
            .collect()
    };
    let before = placed(set(1, true));
    assert!(
        before.iter().filter(|&&r| r == 2).count() > 10,
        "{sched:?}: real server 2 must have had ports: {before:?}"
    );
    let after = placed(set(0, true));
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        assert!(*a != 2, "{sched:?}: port {}: still on the weight-0 real server", ports.start + i as u16);
        if *b != 2 {
            assert_eq!(a, b, "{sched:?}: port {}: moved off a live real server", ports.start + i as u16);
        }
    }
    // The control: without the flag the table is dealt again over the two. sh moves ports of
    // the live real servers; Maglev (mh) hardly does (its point), but deals real server 2's
    // ports otherwise than the fallback's walk.
    let rebuilt = placed(set(0, false));
    let moved = before.iter().zip(&rebuilt).filter(|(b, a)| **b != 2 && a != b).count();
    let elsewhere = before.iter().zip(after.iter().zip(&rebuilt)).filter(|(b, (a, r))| **b == 2 && a != r).count();
    println!(
        "{sched:?}, without the fallback flag: {moved} ports moved off live real servers, {elsewhere} of real server 2's went elsewhere"
    );
    let changed = if sched == Scheduler::Mh { elsewhere } else { moved };
    assert!(changed > 10, "{sched:?}: the fallback flag made no difference: {moved} moved, {elsewhere} elsewhere");
}

// --- The next-hop cache (`lb_nexthop`): frames to real servers skip the FIB lookup ---

/// The MACs a test writes into the cache, which no neighbour entry has: a frame carrying them
/// took the cached next hop, one carrying `LB_MAC` → `REAL_MAC` the FIB's.
const CACHED_SRC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xc0];
const CACHED_DST: [u8; 6] = [0x02, 0, 0, 0, 0, 0xc1];

/// A next hop for the real server at `addr`, leaving on `ifindex` from `smac` to `dmac`.
fn hop(addr: IpAddr, ifindex: u32, mtu: u16, smac: [u8; 6], dmac: [u8; 6]) -> NextHop {
    let (addr, family) = lb_daemon::dataplane::services::addr_bytes(addr);
    NextHop { addr, ifindex, mtu, family, smac, dmac, ..Default::default() }
}

#[test]
fn a_cached_next_hop_carries_the_frame_and_a_miss_asks_the_fib() {
    let (ns, _peer, mut fx) = setup();
    let ifindex = ns.ifindex("fx0").unwrap();
    let mut slots = fx.nexthop_slots().unwrap();
    slots.renew(std::time::Duration::from_secs(600)).unwrap();
    let mut failures = Vec::new();
    let mut sport = 41_000;
    for fwd in METHODS {
        let services = one_real_each_family(fwd);
        fx.apply(&services).unwrap();
        for (i, v6) in [(0usize, false), (1, true)] {
            let ip = services[i].reals[0].addr.ip();
            let id = fx.real_id(services[i].reals[0].addr).unwrap().expect("real server programmed");
            let other: IpAddr = if v6 { backend6(1).into() } else { backend4(1).into() };
            // TUN always asks the FIB (a path-MTU exception for the tunnel must apply at once).
            let hit = if fwd == ForwardMethod::Tun { (LB_MAC, REAL_MAC) } else { (CACHED_SRC, CACHED_DST) };
            let cases = [
                ("cached", Some(hop(ip, ifindex, 1500, CACHED_SRC, CACHED_DST)), hit),
                (
                    "cached for another address (a reused id)",
                    Some(hop(other, ifindex, 1500, CACHED_SRC, CACHED_DST)),
                    (LB_MAC, REAL_MAC),
                ),
                // A 44-byte IPv4 SYN (64 over TUN) is larger than 40: the FIB answers.
                ("larger than the cached MTU", Some(hop(ip, ifindex, 40, CACHED_SRC, CACHED_DST)), (LB_MAC, REAL_MAC)),
                ("cleared", None, (LB_MAC, REAL_MAC)),
            ];
            let vport = 1000 + i as u16;
            let rport = if fwd == ForwardMethod::Nat { NAT_PORT } else { vport };
            for (what, entry, (smac, dmac)) in cases.into_iter().chain([("lease lapsed", None, (LB_MAC, REAL_MAC))]) {
                if what == "lease lapsed" {
                    // The daemon stopped vouching: the entry stays, the FIB decides.
                    slots.put(id, Some(hop(ip, ifindex, 1500, CACHED_SRC, CACHED_DST))).unwrap();
                    slots.expire().unwrap();
                } else {
                    slots.put(id, entry).unwrap();
                }
                sport += 1;
                let input = frame(v6, L4::TcpSyn { sport, dport: vport });
                let (out, reason) = expected(v6, fwd, &input, L4::TcpSyn { sport, dport: rport });
                let case = Case {
                    name: "",
                    input,
                    action: XDP_TX,
                    output: Output::Frame(with_macs(out, smac, dmac)),
                    reason,
                    service: Some(i as u32),
                    also: &["flows_new", "halfopen_inserts"],
                };
                if let Err(e) = fx.check(&case) {
                    failures.push(format!("{fwd:?} {} {what}: {e:#}", if v6 { "IPv6" } else { "IPv4" }));
                }
                slots.renew(std::time::Duration::from_secs(600)).unwrap();
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The cache's slots flip under a running stream: every frame leaves with a wholly old or a
/// wholly new MAC pair, or (when the selector moved while it copied its slot) the FIB's,
/// never half of each: the writer fills the idle slot and publishes it with a new generation,
/// the reader looks at the selector again after its copy.
#[test]
fn each_output_mac_pair_is_wholly_old_or_wholly_new() {
    let (ns, _peer, mut fx) = setup();
    let ifindex = ns.ifindex("fx0").unwrap();
    let [svc, _] = one_real_each_family(ForwardMethod::Dr);
    let addr = svc.reals[0].addr;
    fx.apply(&[svc]).unwrap();
    let id = fx.real_id(addr).unwrap().expect("real server programmed");
    let mut slots = fx.nexthop_slots().unwrap();
    slots.renew(std::time::Duration::from_secs(600)).unwrap();
    let a = hop(addr.ip(), ifindex, 1500, [0x02, 0, 0, 0, 0xa, 0xa], [0x02, 0, 0, 0, 0xa, 0xb]);
    let b = hop(addr.ip(), ifindex, 1500, [0x02, 0, 0, 0, 0xb, 0xa], [0x02, 0, 0, 0, 0xb, 0xb]);
    slots.put(id, Some(a)).unwrap();
    fx.run(&frame(false, L4::TcpSyn { sport: 42_000, dport: 1000 })).unwrap();
    let ack = vec![frame(false, L4::TcpAck { sport: 42_000, dport: 1000 }); 64];
    let done = std::sync::atomic::AtomicBool::new(false);
    const FLIPS: usize = 1000;
    let (seen_a, seen_b, by_fib, mixed) = std::thread::scope(|s| {
        let done = &done;
        s.spawn(move || {
            for i in 0..FLIPS {
                slots.put(id, Some(if i % 2 == 0 { b } else { a })).unwrap();
            }
            done.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        let (mut seen_a, mut seen_b, mut by_fib, mut mixed) = (0, 0, 0, Vec::new());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !done.load(std::sync::atomic::Ordering::Relaxed) && std::time::Instant::now() < deadline {
            for (action, out) in fx.run_all_on(1, &ack).unwrap() {
                let pair = (&out[6..12], &out[0..6]);
                if action == XDP_TX && pair == (&a.smac[..], &a.dmac[..]) {
                    seen_a += 1;
                } else if action == XDP_TX && pair == (&b.smac[..], &b.dmac[..]) {
                    seen_b += 1;
                } else if action == XDP_TX && pair == (&LB_MAC[..], &REAL_MAC[..]) {
                    // The selector moved while the frame copied its slot: the FIB answered.
                    by_fib += 1;
                } else {
                    mixed.push(format!("action {action}, {:02x?} -> {:02x?}", pair.0, pair.1));
                }
            }
        }
        (seen_a, seen_b, by_fib, mixed)
    });
    println!(
        "{FLIPS} flips under a stream: {seen_a} frames by the first pair, {seen_b} by the second, {by_fib} by the \
         FIB (the selector moved during their copy)"
    );
    assert!(mixed.is_empty(), "{} frames with a mixed or no pair, e.g. {:?}", mixed.len(), mixed.first());
    assert!(seen_a > 0 && seen_b > 0, "the stream saw both pairs ({seen_a}, {seen_b})");
}

/// `ip -j` output of `args` in `ns`, as JSON.
fn ip_json(ns: &Netns, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["-j"];
    all.extend_from_slice(args);
    serde_json::from_str(&ns.ip(&all).unwrap()).unwrap()
}

/// What iproute2 says `bpf_fib_lookup` finds for `addr`: (ifindex, source MAC, destination
/// MAC, MTU).
fn iproute2_next_hop(ns: &Netns, addr: IpAddr) -> (u32, [u8; 6], [u8; 6], u16) {
    let a = addr.to_string();
    let route = &ip_json(ns, &["route", "get", "fibmatch", &a])[0];
    let dev = route["dev"].as_str().unwrap().to_string();
    let neighbour = route["gateway"].as_str().unwrap_or(&a).to_string();
    let link = &ip_json(ns, &["link", "show", &dev])[0];
    let neigh = &ip_json(ns, &["neigh", "show", &neighbour, "dev", &dev])[0];
    (
        ns.ifindex(&dev).unwrap(),
        mac_from_text(link["address"].as_str().unwrap()),
        mac_from_text(neigh["lladdr"].as_str().unwrap()),
        link["mtu"].as_u64().unwrap() as u16,
    )
}

/// Runs `input` (an established DR flow's packet) in a stream while `change` runs, until the
/// frames have gone to `want` for a while: how long after `change` returned the first frame
/// went there, and how many frames went elsewhere after it returned.
fn stream_across(fx: &Fixture, input: &[u8], want: [u8; 6], change: impl FnOnce()) -> (std::time::Duration, usize) {
    use std::time::{Duration, Instant};
    let batch = vec![input.to_vec(); 32];
    let changed: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);
    let seen = std::thread::scope(|s| {
        let changed = &changed;
        let streamer = s.spawn(move || {
            let mut seen: Vec<(Instant, [u8; 6])> = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut after_want = 0;
            while after_want < 2000 && Instant::now() < deadline {
                for (_, out) in fx.run_all(&batch).unwrap() {
                    let dmac: [u8; 6] = out[..6].try_into().unwrap();
                    if dmac == want && changed.lock().unwrap().is_some() {
                        after_want += 1;
                    }
                    seen.push((Instant::now(), dmac));
                }
            }
            seen
        });
        std::thread::sleep(Duration::from_millis(50));
        change();
        *changed.lock().unwrap() = Some(Instant::now());
        streamer.join().unwrap()
    });
    let at = changed.into_inner().unwrap().unwrap();
    let after: Vec<&(Instant, [u8; 6])> = seen.iter().filter(|(t, _)| *t >= at).collect();
    let first = after.iter().position(|(_, m)| *m == want).expect("the stream never reached the new next hop");
    assert!(after[first..].iter().all(|(_, m)| *m == want), "the stream went back to an old next hop");
    (after[first].0.saturating_duration_since(at), first)
}

/// The daemon's cache thread: its entries are iproute2's answers for each real server, and it
/// follows a neighbour and a route replaced under a running stream; whatever one route
/// lookup cannot say (multipath, policy rules, no neighbour) is left to the FIB.
#[test]
fn the_next_hop_cache_holds_what_iproute2_says_and_follows_changes() {
    let (ns, _peer, mut fx) = setup();
    // A real server behind a gateway (real server 1's address): its frames go to that MAC.
    let routed = Ipv4Addr::new(203, 0, 113, 77);
    ns.ip(&["route", "add", &format!("{routed}/32"), "via", &backend4(1).to_string(), "dev", "fx0"]).unwrap();
    let dr = |i: usize, ip: IpAddr| {
        service(
            i,
            ip.is_ipv6(),
            Scheduler::Rr,
            ForwardMethod::Dr,
            vec![DesiredReal {
                addr: SocketAddr::new(ip, 1000 + i as u16),
                weight: 1,
                fwd: None,
                u_thresh: 0,
                l_thresh: 0,
            }],
        )
    };
    let services = vec![
        dr(0, backend4(0).into()),
        dr(1, backend4(1).into()),
        dr(2, routed.into()),
        dr(3, backend6(0).into()),
        dr(4, backend6(1).into()),
    ];
    fx.apply(&services).unwrap();
    fx.start_nexthops().unwrap();
    let s = fx.sync_nexthops().unwrap();
    assert_eq!(s.cached, 5, "{s:?}");
    for h in s.entries.values() {
        let addr = lb_daemon::dataplane::services::ip_of(&h.addr, h.family);
        assert_eq!((h.ifindex, h.smac, h.dmac, h.mtu), iproute2_next_hop(&ns, addr), "real server {addr}");
    }
    assert_eq!(s.entries.values().filter(|h| h.dmac == real_mac(1)).count(), 3, "1 and the routed one, and 1's IPv6");

    // Established flows to real server 0 and to the routed one.
    let to = |i: usize, l4: fn(u16, u16) -> L4| v4(L2::Plain, CLIENT4, VIP4, l4(43_000, 1000 + i as u16), b"data");
    let syn: fn(u16, u16) -> L4 = |sport, dport| L4::TcpSyn { sport, dport };
    let ack: fn(u16, u16) -> L4 = |sport, dport| L4::TcpAck { sport, dport };
    for i in [0, 2] {
        fx.run(&to(i, syn)).unwrap();
    }
    let moved = [0x02, 0, 0, 0, 0, 0xd0];
    let (t, stale) = stream_across(&fx, &to(0, ack), moved, || {
        ns.ip(&[
            "neigh",
            "replace",
            &backend4(0).to_string(),
            "lladdr",
            "02:00:00:00:00:d0",
            "dev",
            "fx0",
            "nud",
            "permanent",
        ])
        .unwrap();
    });
    println!(
        "ip neigh replace under a stream: the new MAC after {t:?}, {stale} frames to the old one after the change"
    );
    let (t, stale) = stream_across(&fx, &to(2, ack), moved, || {
        ns.ip(&["route", "replace", &format!("{routed}/32"), "via", &backend4(0).to_string(), "dev", "fx0"]).unwrap();
    });
    println!(
        "ip route replace under a stream: the new gateway after {t:?}, {stale} frames to the old one after the change"
    );

    // Multipath: the FIB picks a path per packet; the cache stays out.
    ns.ip(&[
        "route",
        "replace",
        &format!("{routed}/32"),
        "nexthop",
        "via",
        &backend4(0).to_string(),
        "dev",
        "fx0",
        "nexthop",
        "via",
        &backend4(1).to_string(),
        "dev",
        "fx0",
    ])
    .unwrap();
    let s = fx.sync_nexthops().unwrap();
    assert_eq!(s.to_fib.get("multipath_or_complex_route"), Some(&1), "{s:?}");
    let (action, out) = fx.run(&to(2, ack)).unwrap();
    assert_eq!(action, XDP_TX);
    assert!([moved, real_mac(1)].contains(&out[..6].try_into().unwrap()), "multipath: one of the two gateways");

    // A neighbour gone: no stale MAC, the FIB path leaves it to the kernel to resolve.
    ns.ip(&["neigh", "del", &backend6(0).to_string(), "dev", "fx0"]).unwrap();
    let s = fx.sync_nexthops().unwrap();
    assert_eq!(s.to_fib.get("no_neighbour"), Some(&1), "{s:?}");
    let (action, _) = fx.run(&v6_frame(CLIENT6, VIP6, L4::TcpSyn { sport: 43_001, dport: 1003 })).unwrap();
    assert_eq!(action, XDP_PASS, "no neighbour for real server 0's IPv6 address: to the stack");

    // A route the kernel refuses to forward by: that real server alone goes to the FIB.
    ns.ip(&["route", "replace", "blackhole", &format!("{routed}/32")]).unwrap();
    let s = fx.sync_nexthops().unwrap();
    assert_eq!((s.cached, s.to_fib.get("no_route")), (3, Some(&1)), "{s:?}");
    // An IPv6 source-specific route: the FIB's answer depends on the client; IPv6 leaves.
    ns.ip(&["-6", "route", "add", "2001:db8:b::/64", "from", "2001:db8:c::/64", "dev", "fx0"]).unwrap();
    let s = fx.sync_nexthops().unwrap();
    assert_eq!(s.to_fib.get("policy_rules_or_forwarding_off"), Some(&2), "both IPv6 real servers: {s:?}");
    ns.ip(&["-6", "route", "del", "2001:db8:b::/64", "from", "2001:db8:c::/64", "dev", "fx0"]).unwrap();

    // A policy rule: the FIB's answer may depend on the source; IPv4 leaves the cache.
    ns.ip(&["rule", "add", "from", "192.0.2.0/24", "lookup", "main", "priority", "100"]).unwrap();
    let s = fx.sync_nexthops().unwrap();
    assert_eq!(s.to_fib.get("policy_rules_or_forwarding_off"), Some(&3), "{s:?}");
    assert_eq!(s.cached, 1, "IPv6 keeps its own rules: {s:?}");
}
