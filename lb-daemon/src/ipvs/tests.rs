//! Encoding and decoding against bytes captured from ipvsadm itself. The fixtures were made
//! in the 6.1 VM (`ip_vs` loaded, one namespace) with
//! `strace -f -e trace=sendmsg,recvmsg -xx -s 4096 -o NAME.txt ipvsadm ...` for:
//! add_svc `-A -t 203.0.113.10:80 -s wrr -p 300 -M 255.255.255.0`,
//! add_dest `-a -t 203.0.113.10:80 -r 198.51.100.11:8080 -m -w 2`, edit_dest `-e ... -m -w 0`,
//! add_svc6 `-A -u [2001:db8::10]:53 -s sh -b sh-port -o`,
//! add_dest6 `-a -u [2001:db8::10]:53 -r [2001:db8::11]:53 -g -w 1`, add_fwm `-A -f 7 -s rr`,
//! add_tun `-a -f 7 -r 198.51.100.12 -i -w 3`, edit_svc `-E -t 203.0.113.10:80 -s rr`,
//! list `-Ln`, daemon `--start-daemon master --mcast-interface sy0 --syncid 5`,
//! deldaemon `--stop-daemon master`, del_dest `-d ...`, del_svc `-D ...`; the last IPVS
//! message each sent (and every reply `-Ln` read) is in `testdata/ipvsadm-1.31.txt`.

use std::net::{IpAddr, SocketAddr};

use netlink_packet_core::{Emitable, ParseableParametrized};
use netlink_packet_generic::GenlHeader;

use super::{
    msg::{self, Attr, Dest, IpvsMsg, Service, ServiceId, SyncDaemon, cmd},
    plan,
};
use crate::{
    config::{ForwardMethod, Scheduler},
    dataplane::services::{DesiredReal, DesiredService, key_of},
};

fn captured(name: &str) -> Vec<u8> {
    let line = include_str!("testdata/ipvsadm-1.31.txt")
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix('\t')))
        .unwrap_or_else(|| panic!("no fixture {name}"));
    (0..line.len()).step_by(2).map(|i| u8::from_str_radix(&line[i..i + 2], 16).unwrap()).collect()
}

/// The captured message decoded: command and attributes.
fn decode(name: &str) -> IpvsMsg {
    let bytes = captured(name);
    let header = GenlHeader { cmd: bytes[0], version: bytes[1] };
    IpvsMsg::parse_with_param(&bytes[4..], header).unwrap()
}

fn emit(a: &Attr) -> Vec<u8> {
    let mut v = vec![0u8; a.buffer_len()];
    a.emit(&mut v);
    v
}

/// The bytes of attribute `kind` (nested flag included) in a captured message.
fn captured_attr(name: &str, kind: u16) -> Vec<u8> {
    let bytes = captured(name);
    let mut off = 4;
    while off < bytes.len() {
        let len = u16::from_ne_bytes([bytes[off], bytes[off + 1]]) as usize;
        let k = u16::from_ne_bytes([bytes[off + 2], bytes[off + 3]]) & 0x3fff;
        if k == kind {
            return bytes[off..off + len.div_ceil(4) * 4].to_vec();
        }
        off += len.div_ceil(4) * 4;
    }
    panic!("{name} has no attribute {kind}")
}

fn vip() -> ServiceId {
    ServiceId::Inet { proto: 6, addr: "203.0.113.10".parse().unwrap(), port: 80 }
}

fn svc(id: ServiceId, sched: &str, flags: u32, timeout: u32, netmask: u32) -> Service {
    Service { id, sched: sched.into(), flags, timeout, netmask, pe_name: None }
}

const MASK32: u32 = u32::MAX;

fn mask(bytes: [u8; 4]) -> u32 {
    u32::from_ne_bytes(bytes)
}

#[test]
fn services_encode_as_ipvsadm_does() {
    let cases = [
        ("add_svc", cmd::NEW_SERVICE, svc(vip(), "wrr", msg::SVC_F_PERSISTENT, 300, mask([255, 255, 255, 0]))),
        ("edit_svc", cmd::SET_SERVICE, svc(vip(), "rr", 0, 0, MASK32)),
        (
            "add_svc6",
            cmd::NEW_SERVICE,
            // sh-port is IP_VS_SVC_F_SCHED2.
            svc(
                ServiceId::Inet { proto: 17, addr: "2001:db8::10".parse().unwrap(), port: 53 },
                "sh",
                msg::SVC_F_ONEPACKET | 0x10,
                0,
                128,
            ),
        ),
        ("add_fwm", cmd::NEW_SERVICE, svc(ServiceId::Fwmark { af: msg::AF_INET, mark: 7 }, "rr", 0, 0, MASK32)),
    ];
    for (name, command, s) in cases {
        assert_eq!(captured(name)[0], command, "{name}: command");
        assert_eq!(emit(&s.attr()), captured_attr(name, 1), "{name}: service attribute");
    }
}

#[test]
fn destinations_encode_as_ipvsadm_does() {
    let d = |addr: &str, port, fwd, weight| Dest {
        addr: addr.parse().unwrap(),
        port,
        fwd,
        weight,
        u_thresh: 0,
        l_thresh: 0,
    };
    let cases = [
        ("add_dest", cmd::NEW_DEST, d("198.51.100.11", 8080, msg::FWD_MASQ, 2)),
        ("edit_dest", cmd::SET_DEST, d("198.51.100.11", 8080, msg::FWD_MASQ, 0)),
        ("add_dest6", cmd::NEW_DEST, d("2001:db8::11", 53, msg::FWD_DROUTE, 1)),
        ("add_tun", cmd::NEW_DEST, d("198.51.100.12", 0, msg::FWD_TUNNEL, 3)),
    ];
    for (name, command, dest) in cases {
        assert_eq!(captured(name)[0], command, "{name}: command");
        assert_eq!(emit(&dest.attr()), captured_attr(name, 2), "{name}: destination attribute");
    }
    // Deleting names the service and the destination's address and port.
    let del = decode("del_dest");
    assert_eq!(del.cmd, cmd::DEL_DEST);
    let got = Dest::parse(&del, msg::AF_INET).unwrap().dest;
    assert_eq!((got.addr, got.port), ("198.51.100.11".parse::<IpAddr>().unwrap(), 8080));
    let (s, _) = Service::parse(&decode("del_svc")).unwrap();
    assert_eq!(s.id, vip());
}

#[test]
fn sync_daemons_encode_as_ipvsadm_does() {
    let d = SyncDaemon {
        state: msg::STATE_MASTER,
        interface: "sy0".into(),
        sync_id: 5,
        maxlen: None,
        port: None,
        ttl: None,
        group: None,
    };
    assert_eq!(captured("daemon")[0], cmd::NEW_DAEMON);
    assert_eq!(emit(&d.attr()), captured_attr("daemon", 3));
    assert_eq!(captured("deldaemon")[0], cmd::DEL_DAEMON);
    assert_eq!(emit(&SyncDaemon::stop_attr(msg::STATE_MASTER)), captured_attr("deldaemon", 3));
    // keepalived's maxlen / port / ttl / group (ipvsadm's --sync-maxlen, --mcast-port,
    // --mcast-ttl, --mcast-group) follow as attributes 4, 7, 8 and 5 (6 for IPv6), numbers in
    // host order, written here from include/uapi/linux/ip_vs.h (the VM's sync_interop shows
    // the kernel taking them).
    let with = SyncDaemon {
        maxlen: Some(1200),
        port: Some(8850),
        ttl: Some(2),
        group: Some("239.1.1.81".parse().unwrap()),
        ..d.clone()
    };
    let bytes = emit(&with.attr());
    let plain = emit(&d.attr());
    let mut tail = Vec::new();
    for (kind, value) in [
        (4u16, 1200u16.to_ne_bytes().to_vec()),
        (7, 8850u16.to_ne_bytes().to_vec()),
        (8, vec![2]),
        (5, vec![239, 1, 1, 81]),
    ] {
        let len = 4 + value.len() as u16;
        tail.extend_from_slice(&len.to_ne_bytes());
        tail.extend_from_slice(&kind.to_ne_bytes());
        tail.extend_from_slice(&value);
        tail.resize(tail.len().next_multiple_of(4), 0);
    }
    assert_eq!(&bytes[plain.len()..], &tail[..]);
    assert_eq!(u16::from_ne_bytes([bytes[0], bytes[1]]) as usize, bytes.len(), "the nest's length covers them");
}

/// The kernel's replies to `ipvsadm -Ln` decode to what its listing printed
/// (`testdata/ipvsadm-1.31-listing.txt`).
#[test]
fn the_kernels_replies_decode() {
    assert_eq!(msg::parse_info(&decode("reply-0")).unwrap(), ("1.2.1".to_string(), 4096));
    let services: Vec<Service> = (1..=3).map(|i| Service::parse(&decode(&format!("reply-{i}"))).unwrap().0).collect();
    assert_eq!(
        services,
        [
            svc(
                ServiceId::Inet { proto: 17, addr: "2001:db8::10".parse().unwrap(), port: 53 },
                "sh",
                msg::SVC_F_ONEPACKET | 0x10,
                0,
                128
            ),
            svc(vip(), "rr", 0, 0, MASK32),
            svc(ServiceId::Fwmark { af: msg::AF_INET, mark: 7 }, "rr", 0, 0, MASK32),
        ]
    );
    let dests: Vec<(SocketAddr, u32, i32)> = (4..=6)
        .map(|i| {
            let d = Dest::parse(&decode(&format!("reply-{i}")), msg::AF_INET).unwrap().dest;
            (SocketAddr::new(d.addr, d.port), d.fwd, d.weight)
        })
        .collect();
    let listing = include_str!("testdata/ipvsadm-1.31-listing.txt");
    for (addr, fwd, weight) in &dests {
        let method = match *fwd {
            msg::FWD_MASQ => "Masq",
            msg::FWD_DROUTE => "Route",
            _ => "Tunnel",
        };
        let line = listing.lines().find(|l| l.contains(&format!("-> {addr} "))).unwrap_or_else(|| panic!("{addr}"));
        assert!(line.contains(method) && line.split_whitespace().nth(3) == Some(&weight.to_string()), "{line}");
    }
    assert_eq!(dests.len(), 3);
}

#[test]
fn truncated_or_hostile_replies_are_errors_not_panics() {
    for name in ["reply-1", "reply-4", "daemon", "reply-0"] {
        let bytes = captured(name);
        for cut in 4..bytes.len() {
            let header = GenlHeader { cmd: bytes[0], version: 1 };
            if let Ok(m) = IpvsMsg::parse_with_param(&bytes[4..cut], header) {
                let _ = Service::parse(&m);
                let _ = Dest::parse(&m, msg::AF_INET6);
                let _ = SyncDaemon::parse(&m);
                let _ = msg::parse_info(&m);
            }
        }
    }
}

fn desired(forward: ForwardMethod) -> DesiredService {
    DesiredService {
        name: "203.0.113.10:80/tcp".into(),
        keys: vec![key_of("203.0.113.10".parse().unwrap(), 80, 6)],
        marks: Vec::new(),
        joined: Vec::new(),
        joined_marks: Vec::new(),
        ops: false,
        sched_flags: 0,
        mh_seed: 0,
        scheduler: Scheduler::Wlc,
        forward,
        persist_timeout: 0,
        persist_prefix: None,
        persistence_engine: None,
        reals: vec![
            DesiredReal { addr: "198.51.100.11:8080".parse().unwrap(), weight: 2, fwd: None, u_thresh: 0, l_thresh: 0 },
            DesiredReal { addr: "198.51.100.12:8080".parse().unwrap(), weight: 1, fwd: None, u_thresh: 0, l_thresh: 0 },
        ],
        sorry: Some("198.51.100.99:8080".parse().unwrap()),
        sorry_fwd: None,
        marks_v6: false,
        sorry_inhibit: false,
        quorum: 1,
        hysteresis: 0,
        quorum_up: true,
    }
}

#[test]
fn plan_follows_ipvsadm_and_keepalived() {
    // NAT keeps the real server's port; DR and TUN take the service's, as ipvsadm does.
    let (p, _) = plan(&[desired(ForwardMethod::Nat)]);
    let ports: Vec<u16> = p[&vip()].dests.values().map(|d| d.port).collect();
    assert_eq!(ports, [8080, 8080]);
    let (p, _) = plan(&[desired(ForwardMethod::Dr)]);
    assert!(p[&vip()].dests.values().all(|d| d.port == 80 && d.fwd == msg::FWD_DROUTE));
    assert_eq!(p[&vip()].service, svc(vip(), "wlc", 0, 0, MASK32));

    // Persistence: flag, timeout, the granularity as a network-order mask.
    let mut d = desired(ForwardMethod::Tun);
    d.persist_timeout = 600;
    d.persist_prefix = Some(24);
    d.ops = true;
    let (p, _) = plan(&[d]);
    assert_eq!(
        p[&vip()].service,
        svc(vip(), "wlc", msg::SVC_F_PERSISTENT | msg::SVC_F_ONEPACKET, 600, mask([255, 255, 255, 0]))
    );

    // Below quorum: real servers drain at weight 0, the sorry server takes new connections.
    let mut d = desired(ForwardMethod::Nat);
    d.quorum_up = false;
    let (p, _) = plan(&[d]);
    let weights: Vec<(u16, i32)> =
        p[&vip()].dests.iter().map(|((ip, port), d)| (*port + ip_last(ip), d.weight)).collect();
    assert_eq!(weights, [(8080 + 11, 0), (8080 + 12, 0), (8080 + 99, 1)]);

    // Firewall marks take the family the config settled (`marks_v6`).
    let mut d = desired(ForwardMethod::Dr);
    d.keys.clear();
    d.marks = vec![7];
    d.marks_v6 = true;
    d.reals = vec![DesiredReal {
        addr: "[2001:db8::11]:80".parse().unwrap(),
        weight: 1,
        fwd: None,
        u_thresh: 0,
        l_thresh: 0,
    }];
    let (p, _) = plan(&[d]);
    let id = ServiceId::Fwmark { af: msg::AF_INET6, mark: 7 };
    assert_eq!(p[&id].service.netmask, 128);
    assert_eq!(p[&id].dests.len(), 1);
}

fn ip_last(ip: &IpAddr) -> u16 {
    match ip {
        IpAddr::V4(a) => u16::from(a.octets()[3]),
        IpAddr::V6(_) => 0,
    }
}

/// `sh-port` and `ops` in a keepalived.conf become the service flags ipvsadm sends for
/// `-s sh -b sh-port -o` (the captured `add_svc6`), byte for byte; `flag-1`..`flag-3` are the
/// kernel's scheduler bits whatever the scheduler, as keepalived passes them.
#[test]
fn scheduler_flags_from_the_config_reach_ipvs_as_ipvsadm_sends_them() {
    let conf = |body: &str| {
        let l = crate::config::parse_str(
            "t.conf",
            &format!(
                "virtual_server 2001:db8::10 53 {{\n protocol UDP\n {body}\n real_server 2001:db8::11 53 {{\n }}\n}}\n"
            ),
        );
        assert!(!l.has_errors(), "{}", l.render());
        let (d, _) = crate::dataplane::services::desired(&l.config, &Default::default(), true);
        let (p, _) = plan(&d);
        p.into_values().next().unwrap().service
    };
    let s = conf("lb_algo sh\n sh-port\n ops");
    assert_eq!(emit(&s.attr()), captured_attr("add_svc6", 1));
    assert_eq!(conf("lb_algo sh\n sh-fallback").flags, 0x08);
    assert_eq!(conf("lb_algo mh\n mh-port\n mh-fallback").flags, 0x18);
    assert_eq!(conf("lb_algo rr\n flag-1\n flag-2\n flag-3").flags, 0x38);
    // keepalived ignores sh-port after lb_algo mh.
    assert_eq!(conf("lb_algo mh\n sh-port").flags, 0);
}

/// A fwmark service's real server given without a port is IPVS destination port 0 (the
/// packet's destination port), with NAT as with DR.
#[test]
fn a_fwmark_real_server_without_a_port_is_destination_port_zero() {
    for kind in ["NAT", "DR"] {
        let l = crate::config::parse_str(
            "t.conf",
            &format!("virtual_server fwmark 7 {{\n lb_kind {kind}\n real_server 198.51.100.11 {{\n }}\n}}\n"),
        );
        assert!(!l.has_errors(), "{}", l.render());
        let (d, _) = crate::dataplane::services::desired(&l.config, &Default::default(), true);
        let (p, _) = plan(&d);
        let dests: Vec<(IpAddr, u16)> = p.values().flat_map(|s| s.dests.keys().copied()).collect();
        assert_eq!(dests, [("198.51.100.11".parse().unwrap(), 0)], "{kind}");
    }
}

/// `lvs_method` per real server and `uthreshold` / `lthreshold` reach each destination
/// (`IPVS_DEST_ATTR_FWD_METHOD`, `U_THRESH`, `L_THRESH`); the sorry server keeps lb_kind.
#[test]
fn per_real_server_method_and_thresholds_reach_the_destination() {
    let l = crate::config::parse_str(
        "t.conf",
        "virtual_server 203.0.113.10 80 {\n protocol TCP\n lb_kind NAT\n sorry_server 198.51.100.99 80\n \
         real_server 198.51.100.11 80 {\n  lvs_method DR\n  uthreshold 100\n  lthreshold 50\n }\n \
         real_server 198.51.100.12 8080 {\n }\n}\n",
    );
    assert!(!l.has_errors(), "{}", l.render());
    let (d, _) = crate::dataplane::services::desired(&l.config, &Default::default(), true);
    let (p, _) = plan(&d);
    let dests = &p.into_values().next().unwrap().dests;
    let dr = &dests[&("198.51.100.11".parse().unwrap(), 80)];
    assert_eq!((dr.fwd, dr.u_thresh, dr.l_thresh), (msg::FWD_DROUTE, 100, 50));
    let nat = &dests[&("198.51.100.12".parse().unwrap(), 8080)];
    assert_eq!((nat.fwd, nat.u_thresh, nat.l_thresh), (msg::FWD_MASQ, 0, 0));
    // On the wire: u32 attributes 5 and 6 of the nested destination, host byte order.
    let bytes = emit(&dr.attr());
    let attr = |kind: u16, v: u32| [&8u16.to_ne_bytes()[..], &kind.to_ne_bytes(), &v.to_ne_bytes()].concat();
    for want in [attr(5, 100), attr(6, 50), attr(3, msg::FWD_DROUTE)] {
        assert!(bytes.windows(8).any(|w| w == want.as_slice()), "{want:?} not in {bytes:?}");
    }
}

/// `sorry_server_lvs_method` (keepalived's `ss_forwarding_handler`): below quorum the sorry
/// server joins IPVS with its own method; without it the sorry server takes lb_kind.
#[test]
fn sorry_server_lvs_method_reaches_the_sorry_destination() {
    let sorry_dest = |sorry: &str, extra: &str| {
        let l = crate::config::parse_str(
            "t.conf",
            &format!(
                "virtual_server 203.0.113.10 80 {{\n protocol TCP\n lb_kind NAT\n sorry_server {sorry}\n{extra} \
                 real_server 198.51.100.11 80 {{\n  TCP_CHECK {{\n  }}\n }}\n}}\n"
            ),
        );
        assert!(!l.has_errors(), "{}", l.render());
        let (mut d, _) = crate::dataplane::services::desired(&l.config, &Default::default(), true);
        d[0].quorum_up = false;
        let (p, _) = plan(&d);
        let dests = p.into_values().next().unwrap().dests;
        dests.into_iter().find(|((ip, _), _)| *ip == "198.51.100.99".parse::<IpAddr>().unwrap()).unwrap()
    };
    let ((_, port), dest) = sorry_dest("198.51.100.99 80", " sorry_server_lvs_method DR\n");
    assert_eq!((port, dest.fwd, dest.weight), (80, msg::FWD_DROUTE, 1));
    let ((_, port), dest) = sorry_dest("198.51.100.99 80", " sorry_server_lvs_method TUN\n");
    assert_eq!((port, dest.fwd), (80, msg::FWD_TUNNEL));
    let ((_, port), dest) = sorry_dest("198.51.100.99 8080", "");
    assert_eq!((port, dest.fwd), (8080, msg::FWD_MASQ));
}

/// A firewall-mark service keeps the family the config gives it (`ip_family`, else its real
/// servers') whichever real servers are up: with none up it must not turn into IPv4.
#[test]
fn a_firewall_mark_keeps_its_family_with_no_real_server_up() {
    for (body, af) in [
        (" real_server 2001:db8:b::11 80 {\n  TCP_CHECK {\n  }\n }\n", msg::AF_INET6),
        (" ip_family inet6\n real_server 198.51.100.11 {\n  lvs_method TUN\n  TCP_CHECK {\n  }\n }\n", msg::AF_INET6),
        (" real_server 198.51.100.11 80 {\n  TCP_CHECK {\n  }\n }\n", msg::AF_INET),
    ] {
        let l = crate::config::parse_str("t.conf", &format!("virtual_server fwmark 7 {{\n lb_kind DR\n{body}}}\n"));
        assert!(!l.has_errors(), "{}", l.render());
        let mut health = crate::check::health::Health::default();
        for id in crate::check::specs(&l.config, &crate::script::Runner::new(&l.config.global).unwrap()).into_keys() {
            health.register(id, false);
        }
        let (d, _) = crate::dataplane::services::desired(&l.config, &health, true);
        assert!(d[0].reals.is_empty(), "{body}: a real server is up");
        let (p, _) = plan(&d);
        assert_eq!(p.keys().map(|id| id.af()).collect::<Vec<_>>(), [af], "{body}");
    }
}

/// `persistence_engine` reaches the service as `IPVS_SVC_ATTR_PE_NAME` (11), right after the
/// scheduler as libipvs sends it, and a service read back keeps it.
#[test]
fn persistence_engine_reaches_the_service() {
    let l = crate::config::parse_str(
        "t.conf",
        "virtual_server 203.0.113.10 5060 {\n lb_algo rr\n protocol UDP\n persistence_timeout 60\n persistence_engine sip\n \
         real_server 198.51.100.11 5060 {\n }\n}\n",
    );
    assert!(!l.has_errors(), "{}", l.render());
    let (d, _) = crate::dataplane::services::desired(&l.config, &Default::default(), true);
    let (p, _) = plan(&d);
    let service = &p.values().next().unwrap().service;
    assert_eq!(service.pe_name.as_deref(), Some("sip"));
    let bytes = emit(&service.attr());
    let sched = [&7u16.to_ne_bytes()[..], &6u16.to_ne_bytes(), b"rr\0\0"].concat();
    let pe = [&8u16.to_ne_bytes()[..], &11u16.to_ne_bytes(), b"sip\0"].concat();
    let at = |want: &[u8]| bytes.windows(want.len()).position(|w| w == want);
    assert_eq!(at(&pe).zip(at(&sched)).map(|(p, s)| p - s), Some(8), "{bytes:?}");
    let without = Service { pe_name: None, ..service.clone() };
    assert!(at(&pe).is_some() && emit(&without.attr()).windows(pe.len()).all(|w| w != pe.as_slice()));
}

/// `lvs_timeouts` becomes `IPVS_CMD_SET_CONFIG` with `IPVS_CMD_ATTR_TIMEOUT_TCP` (4),
/// `_TCP_FIN` (5) and `_UDP` (6); one left at 0 is not sent, so the kernel keeps it.
#[test]
fn lvs_timeouts_encode_as_set_config() {
    assert_eq!((cmd::SET_CONFIG, cmd::GET_CONFIG), (12, 13));
    let l = crate::config::parse_str("t.conf", "global_defs {\n lvs_timeouts tcp 7200 udp 60\n}\n");
    assert!(!l.has_errors(), "{}", l.render());
    let t = l.config.global.lvs_timeouts.unwrap();
    let m = msg::Timeouts { tcp: t.tcp, tcp_fin: t.tcpfin, udp: t.udp };
    let bytes: Vec<u8> = m.attrs().iter().flat_map(emit).collect();
    let attr = |kind: u16, v: u32| [&8u16.to_ne_bytes()[..], &kind.to_ne_bytes(), &v.to_ne_bytes()].concat();
    assert_eq!(bytes, [attr(4, 7200), attr(6, 60)].concat());
    // A GET_CONFIG reply decodes to the same values.
    let reply = IpvsMsg { cmd: cmd::GET_CONFIG, attrs: m.attrs() };
    assert_eq!(msg::Timeouts::parse(&reply).unwrap(), m);
}

/// `sorry_server_inhibit` (keepalived's ipwrapper.c): above quorum the sorry server stays in
/// IPVS at weight 0 ("Disabling") instead of being removed, and below it takes new
/// connections at weight 1 as without the flag; a sorry server that is also a real server is
/// not added twice.
#[test]
fn sorry_server_inhibit_keeps_the_sorry_server_at_weight_zero_above_quorum() {
    let desired_of = |extra: &str, sorry: &str| {
        let l = crate::config::parse_str(
            "t.conf",
            &format!(
                "virtual_server 203.0.113.10 80 {{\n protocol TCP\n lb_kind NAT\n sorry_server {sorry}\n{extra} \
                 real_server 198.51.100.11 8080 {{\n }}\n}}\n"
            ),
        );
        assert!(!l.has_errors(), "{}", l.render());
        let (mut d, _) = crate::dataplane::services::desired(&l.config, &Default::default(), true);
        d.remove(0)
    };
    let weights = |d: &DesiredService, up: bool| -> Vec<(u16, i32)> {
        let d = DesiredService { quorum_up: up, ..d.clone() };
        let (p, _) = plan(&[d]);
        p[&vip()].dests.iter().map(|((ip, port), d)| (*port + ip_last(ip), d.weight)).collect()
    };
    let plain = desired_of("", "198.51.100.99 8080");
    let inhibit = desired_of(" sorry_server_inhibit\n", "198.51.100.99 8080");
    assert_eq!(weights(&plain, true), [(8080 + 11, 1)]);
    assert_eq!(weights(&inhibit, true), [(8080 + 11, 1), (8080 + 99, 0)]);
    assert_eq!(weights(&plain, false), [(8080 + 11, 0), (8080 + 99, 1)]);
    assert_eq!(weights(&inhibit, false), [(8080 + 11, 0), (8080 + 99, 1)]);
    let same = desired_of(" sorry_server_inhibit\n", "198.51.100.11 8080");
    assert_eq!(weights(&same, true), [(8080 + 11, 1)]);
}

/// `lvs_sync_daemon` without an instance: two kernel daemons, a master and a backup, as
/// keepalived's `ipvs_syncd_cmd(.., IPVS_MASTER_BACKUP)` starts them (the kernel takes one
/// state per daemon).
#[test]
fn master_and_backup_are_two_kernel_daemons() {
    use super::{SyncRole, state_codes};
    assert_eq!(state_codes(SyncRole::Master), [msg::STATE_MASTER]);
    assert_eq!(state_codes(SyncRole::Backup), [msg::STATE_BACKUP]);
    assert_eq!(state_codes(SyncRole::Both), [msg::STATE_MASTER, msg::STATE_BACKUP]);
}

/// keepalived-guide.conf's case through the IPVS plan: an address a group's virtual server
/// shares with an earlier virtual server keeps that one's scheduler and holds both virtual
/// servers' real servers, each forwarded as its own virtual server says (keepalived 2.2.7
/// programs the same: `tests/tests/ipvs.rs`'s configs scenario).
#[test]
fn a_joined_address_holds_both_virtual_servers_reals() {
    let l = crate::config::parse_str("t.conf", crate::dataplane::services::tests::SHARED_ADDRESS);
    assert!(!l.has_errors(), "{}", l.render());
    let (d, _) = crate::dataplane::services::desired(&l.config, &Default::default(), true);
    let (p, warnings) = plan(&d);
    assert!(warnings.is_empty(), "{warnings:?}");
    let at = |a: &str| ServiceId::Inet { proto: 6, addr: a.parse().unwrap(), port: 80 };
    let dests = |a: &str| -> Vec<(String, u32, i32)> {
        p[&at(a)].dests.values().map(|d| (format!("{}:{}", d.addr, d.port), d.fwd, d.weight)).collect()
    };
    let (nat, dr) = (msg::FWD_MASQ, msg::FWD_DROUTE);
    assert_eq!(p[&at("203.0.113.229")].service.sched, "rr");
    assert_eq!(dests("203.0.113.229"), [("198.51.100.11:80".into(), nat, 1), ("198.51.100.13:80".into(), dr, 2)]);
    assert_eq!(p[&at("203.0.113.230")].service.sched, "wlc");
    assert_eq!(dests("203.0.113.230"), [("198.51.100.13:80".into(), dr, 2)]);
}
