//! Every keyword's parsed value, the error kinds with their exact locations, includes, and a
//! property test that no input makes the parser panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::*;

fn ok(src: &str) -> Config {
    let l = parse_str("t.conf", src);
    assert!(!l.has_errors(), "{}", l.render());
    l.config
}

/// The first error, rendered; fails if there is none.
fn first_error(src: &str) -> String {
    let l = parse_str("bad.conf", src);
    let e = l.errors().next().unwrap_or_else(|| panic!("no error for:\n{src}\n{}", l.render()));
    l.sources.render(e)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const GLOBAL: &str = r#"
global_defs {
    notification_email {
        admin@example.com
        ops@example.com
    }
    notification_email_from lb@example.com
    smtp_server 192.0.2.25 2525
    smtp_connect_timeout 12
    router_id lb-1
    default_interface eth1
    vrrp_mcast_group4 224.0.0.19
    vrrp_mcast_group6 ff02::13
    vrrp_version 3
    script_user nobody nogroup
    enable_script_security
    smtp_alert
    smtp_alert_vrrp off
    vrrp_garp_master_delay 7
    vrrp_garp_master_repeat 3
    vrrp_garp_master_refresh 60
    vrrp_strict
    lvs_sync_daemon eth1 VI_1 id 9
    lb_backend bpf
}
static_ipaddress {
    192.0.2.5/24 dev eth0 brd 192.0.2.255 scope global label eth0:5
    2001:db8::5/64 dev eth0
}
static_routes {
    198.51.100.0/24 via 192.0.2.1 dev eth0
    to 203.0.113.0/24 via 192.0.2.1 src 192.0.2.5 table 10 metric 7 scope link proto static no_track
    blackhole 203.0.113.128/25
}
"#;

#[test]
fn global_defs_and_static_blocks() {
    let c = ok(GLOBAL);
    let g = &c.global;
    assert_eq!(g.notification_email, ["admin@example.com", "ops@example.com"]);
    assert_eq!(g.notification_email_from.as_deref(), Some("lb@example.com"));
    assert_eq!(g.smtp_server, Some(("192.0.2.25".into(), 2525)));
    assert_eq!(g.smtp_connect_timeout, 12);
    assert_eq!(g.router_id.as_deref(), Some("lb-1"));
    assert_eq!(g.default_interface.as_deref(), Some("eth1"));
    assert_eq!(g.vrrp_mcast_group4, Ipv4Addr::new(224, 0, 0, 19));
    assert_eq!(g.vrrp_mcast_group6, "ff02::13".parse::<Ipv6Addr>().unwrap());
    assert_eq!(g.vrrp_version, 3);
    assert_eq!(g.script_user, Some(RunAs { user: "nobody".into(), group: Some("nogroup".into()) }));
    assert!(g.enable_script_security && g.vrrp_strict);
    assert_eq!((g.smtp_alert, g.smtp_alert_vrrp, g.smtp_alert_checker), (Some(true), Some(false), None));
    assert_eq!((g.vrrp_garp_master_delay, g.vrrp_garp_master_repeat, g.vrrp_garp_master_refresh), (7, 3, 60));
    assert_eq!(
        g.lvs_sync_daemon,
        Some(LvsSyncDaemon {
            interface: "eth1".into(),
            vrrp_instance: Some("VI_1".into()),
            sync_id: Some(9),
            maxlen: None,
            port: None,
            ttl: None,
            group: None,
            span: g.lvs_sync_daemon.as_ref().unwrap().span,
        })
    );
    assert_eq!(g.lb_backend, Some(BackendKind::Bpf));

    let a = &c.static_ipaddress;
    assert_eq!(a.len(), 2);
    assert_eq!((a[0].addr, a[0].prefix, a[0].dev.as_deref()), (ip("192.0.2.5"), 24, Some("eth0")));
    assert_eq!(
        (a[0].broadcast, a[0].scope, a[0].label.as_deref()),
        (Some(Ipv4Addr::new(192, 0, 2, 255)), Some(Scope::Global), Some("eth0:5"))
    );
    assert_eq!((a[1].addr, a[1].prefix), (ip("2001:db8::5"), 64));

    let r = &c.static_routes;
    assert_eq!(
        (r[0].dest, r[0].prefix, r[0].via, r[0].dev.as_deref()),
        (ip("198.51.100.0"), 24, Some(ip("192.0.2.1")), Some("eth0"))
    );
    assert_eq!(
        (r[1].src, r[1].table, r[1].metric, r[1].scope),
        (Some(ip("192.0.2.5")), Some(10), Some(7), Some(Scope::Link))
    );
    assert_eq!(r[1].protocol, Some(4), "static");
    assert_eq!((r[2].kind, r[2].prefix), (RouteType::Blackhole, 25));
}

#[test]
fn global_defaults_are_keepalived_s() {
    let g = ok("").global;
    assert_eq!(
        (g.smtp_connect_timeout, g.vrrp_version, g.vrrp_garp_master_delay, g.vrrp_garp_master_repeat),
        (30, 2, 5, 5)
    );
    assert_eq!(g.vrrp_mcast_group4, Ipv4Addr::new(224, 0, 0, 18));
    assert_eq!(g.vrrp_mcast_group6, "ff02::12".parse::<Ipv6Addr>().unwrap());
    assert_eq!(ok("global_defs {\n smtp_server 192.0.2.25\n}").global.smtp_server, Some(("192.0.2.25".into(), 25)));
}

const VRRP: &str = r#"
vrrp_script chk_haproxy {
    script "/usr/bin/killall -0 haproxy"
    interval 2
    timeout 3
    weight -20
    rise 2
    fall 3
    user nobody
    init_fail
}
vrrp_sync_group VG_1 {
    group {
        VI_1
        VI_6
    }
    notify_master /etc/lb/master.sh
    notify_backup "/etc/lb/backup.sh arg"
    notify_fault /etc/lb/fault.sh
    notify_stop /etc/lb/stop.sh
    notify /etc/lb/notify.sh
    smtp_alert
}
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    dont_track_primary
    track_interface {
        eth0
        eth1 weight -10
    }
    track_script {
        chk_haproxy
        chk_haproxy weight 5
    }
    mcast_src_ip 192.0.2.2
    unicast_src_ip 192.0.2.2
    unicast_peer {
        192.0.2.3
        192.0.2.4
    }
    garp_master_delay 10
    garp_master_repeat 2
    garp_master_refresh 30
    virtual_router_id 51
    priority 150
    advert_int 2
    version 2
    authentication {
        auth_type PASS
        auth_pass 1111
    }
    virtual_ipaddress {
        203.0.113.10/24 dev eth0 label eth0:vip
        203.0.113.11
    }
    virtual_ipaddress_excluded {
        2001:db8:f::10
    }
    virtual_routes {
        198.51.100.0/24 via 192.0.2.1 dev eth1
    }
    nopreempt
    preempt_delay 30
    accept
    notify_master /etc/lb/i-master.sh
    notify_backup /etc/lb/i-backup.sh
    notify_fault /etc/lb/i-fault.sh
    notify_stop /etc/lb/i-stop.sh
    notify /etc/lb/i-notify.sh
    smtp_alert false
    debug 2
    lvs_sync_daemon_interface eth1
}
vrrp_instance VI_6 {
    interface eth0
    virtual_router_id 52
    version 3
    advert_int 0.5
    no_accept
    virtual_ipaddress {
        2001:db8:f::20/64
    }
}
"#;

#[test]
fn vrrp_blocks() {
    let c = ok(VRRP);
    let s = &c.vrrp_scripts[0];
    assert_eq!(
        (s.name.as_str(), s.script.as_ref().map(|x| x.command.as_str())),
        ("chk_haproxy", Some("/usr/bin/killall -0 haproxy"))
    );
    assert_eq!((s.interval, s.timeout, s.weight, s.rise, s.fall, s.init_fail), (2, Some(3), -20, 2, 3, true));
    assert_eq!(s.user, Some(RunAs { user: "nobody".into(), group: None }));

    let g = &c.vrrp_sync_groups[0];
    assert_eq!(g.group, ["VI_1", "VI_6"]);
    assert_eq!(g.notify.master.as_ref().unwrap().command, "/etc/lb/master.sh");
    assert_eq!(g.notify.backup.as_ref().unwrap().command, "/etc/lb/backup.sh arg");
    assert_eq!(g.notify.fault.as_ref().unwrap().command, "/etc/lb/fault.sh");
    assert_eq!(g.notify.stop.as_ref().unwrap().command, "/etc/lb/stop.sh");
    assert_eq!(g.notify.any.as_ref().unwrap().command, "/etc/lb/notify.sh");
    assert_eq!(g.notify.smtp_alert, Some(true));

    let v = &c.vrrp_instances[0];
    assert_eq!((v.state, v.interface.as_deref(), v.dont_track_primary), (Some(VrrpState::Master), Some("eth0"), true));
    // VI_1 is in sync group VG_1: as keepalived, its weighted interface tracks with weight 0
    // and its weighted scripts are dropped (`sync_group_members_and_the_address_owner_...`).
    assert_eq!(
        v.track_interface.iter().map(|t| (t.name.as_str(), t.weight)).collect::<Vec<_>>(),
        [("eth0", None), ("eth1", Some(0))]
    );
    assert!(v.track_script.is_empty(), "{:?}", v.track_script);
    assert_eq!((v.mcast_src_ip, v.unicast_src_ip), (Some(ip("192.0.2.2")), Some(ip("192.0.2.2"))));
    assert_eq!(v.unicast_peer, [ip("192.0.2.3"), ip("192.0.2.4")]);
    assert_eq!((v.garp_master_delay, v.garp_master_repeat, v.garp_master_refresh), (Some(10), Some(2), Some(30)));
    assert_eq!((v.virtual_router_id, v.priority, v.advert_int_cs, v.version), (Some(51), 150, 200, Some(2)));
    assert_eq!(v.authentication, Some(Authentication { auth_type: AuthType::Pass, auth_pass: "1111".into() }));
    assert_eq!(
        v.virtual_ipaddress.iter().map(|a| (a.addr, a.prefix)).collect::<Vec<_>>(),
        [(ip("203.0.113.10"), 24), (ip("203.0.113.11"), 32)]
    );
    assert_eq!(v.virtual_ipaddress[0].label.as_deref(), Some("eth0:vip"));
    assert_eq!(v.virtual_ipaddress_excluded[0].addr, ip("2001:db8:f::10"));
    assert_eq!(v.virtual_routes[0].via, Some(ip("192.0.2.1")));
    assert_eq!((v.nopreempt, v.preempt_delay, v.accept), (true, 30, Some(true)));
    assert_eq!(v.notify.master.as_ref().unwrap().command, "/etc/lb/i-master.sh");
    assert_eq!(v.notify.backup.as_ref().unwrap().command, "/etc/lb/i-backup.sh");
    assert_eq!(v.notify.fault.as_ref().unwrap().command, "/etc/lb/i-fault.sh");
    assert_eq!(v.notify.stop.as_ref().unwrap().command, "/etc/lb/i-stop.sh");
    assert_eq!(v.notify.any.as_ref().unwrap().command, "/etc/lb/i-notify.sh");
    assert_eq!(v.notify.smtp_alert, Some(false));
    assert_eq!((v.debug, v.lvs_sync_daemon_interface.as_deref()), (Some(2), Some("eth1")));

    let v6 = &c.vrrp_instances[1];
    assert_eq!((v6.advert_int_cs, v6.accept, v6.priority, v6.state), (50, Some(false), 100, None));
}

const LVS: &str = r#"
virtual_server_group web {
    203.0.113.10 80
    203.0.113.20-25 443
    2001:db8:f::30-3f 80
    fwmark 7
}
virtual_server 203.0.113.10 80 {
    delay_loop 3
    lb_algo wrr
    lb_kind DR
    persistence_timeout 120
    persistence_granularity 255.255.255.0
    protocol TCP
    ha_suspend
    virtualhost www.example.com
    alpha
    omega
    quorum 2
    quorum_up /etc/lb/up.sh
    quorum_down /etc/lb/down.sh
    hysteresis 1
    sorry_server 198.51.100.99 80
    sorry_server_inhibit
    smtp_alert
    real_server 198.51.100.11 80 {
        weight 3
        smtp_alert no
        inhibit_on_failure
        notify_up /etc/lb/rs-up.sh
        notify_down "/etc/lb/rs-down.sh now"
        HTTP_GET {
            url {
                path /health
                digest 9B3A0C85A887A256D6939DA88AABD8CD
                status_code 200 301-302
            }
            url {
                path /
            }
            connect_ip 198.51.100.111
            connect_port 8080
            bindto 198.51.100.1
            bind_port 40000
            connect_timeout 3
            nb_get_retry 4
            delay_before_retry 2
            warmup 5
            virtualhost check.example.com
        }
    }
    real_server 198.51.100.12 80 {
        SSL_GET {
            url {
                path /
                status_code 200
            }
            retry 2
        }
        TCP_CHECK {
            connect_port 443
            connect_timeout 4
            delay_loop 9
        }
        MISC_CHECK {
            misc_path "/etc/lb/check.sh 198.51.100.12"
            misc_timeout 6
            misc_dynamic
            user nobody
        }
    }
}
virtual_server fwmark 7 {
    lvs_sched sh
    lvs_method TUN
    protocol UDP
    ops
    persistence_timeout
}
virtual_server group web {
    protocol TCP
    lb_algo mh
    real_server 198.51.100.13 80 {
    }
}
"#;

/// Every LVS keyword of `LVS`, one assertion each: long, but one parse and one place to look.
#[test]
fn lvs_blocks() {
    let c = ok(LVS);
    let g = &c.virtual_server_groups[0];
    assert_eq!(
        g.members,
        [
            GroupMember::Range { first: ip("203.0.113.10"), last: ip("203.0.113.10"), port: 80 },
            GroupMember::Range { first: ip("203.0.113.20"), last: ip("203.0.113.25"), port: 443 },
            GroupMember::Range { first: ip("2001:db8:f::30"), last: ip("2001:db8:f::3f"), port: 80 },
            GroupMember::Fwmark(7),
        ]
    );

    let vs = &c.virtual_servers[0];
    assert_eq!(vs.addr, ServiceAddr::Inet("203.0.113.10:80".parse().unwrap()));
    assert_eq!(
        (vs.delay_loop, vs.scheduler, vs.forward, vs.protocol),
        (3, Scheduler::Wrr, ForwardMethod::Dr, Protocol::Tcp)
    );
    assert_eq!((vs.persistence_timeout, vs.persistence_granularity), (Some(120), Some(24)));
    assert_eq!(
        (vs.ha_suspend, vs.virtualhost.as_deref(), vs.alpha, vs.omega),
        (true, Some("www.example.com"), true, true)
    );
    assert_eq!((vs.quorum, vs.hysteresis), (2, 1));
    assert_eq!(vs.quorum_up.as_ref().unwrap().command, "/etc/lb/up.sh");
    assert_eq!(vs.quorum_down.as_ref().unwrap().command, "/etc/lb/down.sh");
    assert_eq!(
        (vs.sorry_server, vs.sorry_server_inhibit),
        (Some("198.51.100.99:80".parse::<SocketAddr>().unwrap()), true)
    );

    let rs = &vs.real_servers[0];
    assert_eq!((vs.smtp_alert, rs.smtp_alert), (Some(true), Some(false)));
    assert_eq!((rs.addr, rs.weight, rs.inhibit(vs)), ("198.51.100.11:80".parse().unwrap(), 3, true));
    assert_eq!(rs.notify_up.as_ref().unwrap().command, "/etc/lb/rs-up.sh");
    assert_eq!(rs.notify_down.as_ref().unwrap().command, "/etc/lb/rs-down.sh now");
    let h = &rs.checkers[0];
    let CheckKind::HttpGet { urls, virtualhost, .. } = &h.kind else { panic!("{h:?}") };
    assert_eq!(
        urls[0],
        Url {
            path: "/health".into(),
            digest: Some("9b3a0c85a887a256d6939da88aabd8cd".into()),
            status_code: vec![(200, 200), (301, 302)],
            virtualhost: None,
            regex: None,
        }
    );
    assert_eq!(urls[1], Url { path: "/".into(), digest: None, status_code: vec![], virtualhost: None, regex: None });
    assert_eq!(virtualhost.as_deref(), Some("check.example.com"));
    assert_eq!(
        (h.connect_ip, h.connect_port, h.bindto, h.bind_port),
        (Some(ip("198.51.100.111")), Some(8080), Some(ip("198.51.100.1")), Some(40000))
    );
    assert_eq!((h.connect_timeout, h.retry, h.delay_before_retry, h.warmup), (Some(3), Some(4), Some(2), Some(5)));

    let rs2 = &vs.real_servers[1];
    assert_eq!(rs2.weight, 1);
    assert!(matches!(&rs2.checkers[0].kind, CheckKind::SslGet { urls, .. } if urls[0].status_code == [(200, 200)]));
    assert_eq!(rs2.checkers[0].retry, Some(2));
    assert_eq!(
        (
            &rs2.checkers[1].kind,
            rs2.checkers[1].connect_port,
            rs2.checkers[1].connect_timeout,
            rs2.checkers[1].delay_loop
        ),
        (&CheckKind::Tcp, Some(443), Some(4), Some(9))
    );
    assert_eq!(
        rs2.checkers[2].kind,
        CheckKind::Misc {
            path: Some(Script { command: "/etc/lb/check.sh 198.51.100.12".into(), span: rs2.checkers[2].kind_span() }),
            timeout: Some(6),
            dynamic: true,
            user: Some(RunAs { user: "nobody".into(), group: None }),
        }
    );

    let fw = &c.virtual_servers[1];
    assert_eq!(
        (fw.addr.clone(), fw.scheduler, fw.forward, fw.protocol, fw.ops),
        // `protocol UDP` is ignored in a fwmark service, as keepalived ignores it.
        (ServiceAddr::Fwmark(7), Scheduler::Sh, ForwardMethod::Tun, Protocol::default(), true)
    );
    assert_eq!(fw.persistence_timeout, Some(360));
    let grp = &c.virtual_servers[2];
    assert_eq!((grp.addr.clone(), grp.scheduler), (ServiceAddr::Group("web".into()), Scheduler::Mh));
}

impl Checker {
    /// The span of a MISC_CHECK's script (test helper: spans are not compared by value).
    fn kind_span(&self) -> Span {
        match &self.kind {
            CheckKind::Misc { path: Some(p), .. } => p.span,
            _ => Span::default(),
        }
    }
}

#[test]
fn virtual_server_defaults_are_keepalived_s() {
    let c = ok(
        "virtual_server 203.0.113.10 80 {\n protocol TCP\n real_server 198.51.100.11 80 {\n  TCP_CHECK {\n  }\n }\n}",
    );
    let vs = &c.virtual_servers[0];
    assert_eq!(
        (vs.scheduler, vs.forward, vs.protocol, vs.delay_loop, vs.quorum),
        (Scheduler::Wlc, ForwardMethod::Nat, Protocol::Tcp, 60, 1)
    );
    // Unset in the checker: check::timing resolves them (check/mod.rs tests the defaults).
    let chk = &vs.real_servers[0].checkers[0];
    assert_eq!((chk.connect_timeout, chk.retry, chk.delay_before_retry), (None, None, None));
    assert_eq!((vs.connect_timeout, vs.retry, vs.inhibit_on_failure), (5, None, false));
}

/// keepalived's validate_check_config on services named by address, with its words: no
/// `protocol` is UDP, `ops` needs UDP, port 0 needs persistence; a firewall mark clears
/// `ha_suspend`, and a group of marks ignores `protocol`. A service without real servers is
/// dropped before any of that.
#[test]
fn address_services_get_keepalived_s_protocol_ops_and_port_defaults() {
    let l = parse_str(
        "t.conf",
        "virtual_server_group marks {\n fwmark 9\n}\nvirtual_server_group web {\n 203.0.113.20 80\n}\n\
         virtual_server 203.0.113.10 53 {\n real_server 198.51.100.11 53 {\n }\n}\n\
         virtual_server 2001:db8::10 80 {\n protocol TCP\n ops\n real_server 2001:db8::11 80 {\n }\n}\n\
         virtual_server 203.0.113.11 0 {\n protocol TCP\n real_server 198.51.100.11 0 {\n }\n}\n\
         virtual_server 203.0.113.12 0 {\n protocol TCP\n persistence_timeout 60\n real_server 198.51.100.11 0 {\n }\n}\n\
         virtual_server group web {\n ops\n real_server 198.51.100.11 80 {\n }\n}\n\
         virtual_server group marks {\n protocol TCP\n ha_suspend\n real_server 198.51.100.11 80 {\n }\n}\n\
         virtual_server 203.0.113.13 80 {\n}\n",
    );
    assert!(!l.has_errors(), "{}", l.render());
    let vs = &l.config.virtual_servers;
    let r = l.render();
    for want in [
        "t.conf:7:1: warning: Virtual server [203.0.113.10]:none:53: no protocol set - defaulting to UDP",
        "t.conf:11:1: warning: Virtual server [2001:db8::10]:tcp:80: one packet scheduling requires UDP - resetting",
        "t.conf:17:1: warning: Virtual server [203.0.113.11]:tcp:0: zero port only valid for persistent services - \
         setting",
        "t.conf:28:1: warning: Virtual server [web]:0: no protocol set - defaulting to UDP",
        "t.conf:33:1: warning: Virtual server [marks]:0: cannot use ha_suspend with fwmarks - clearing ha_suspend",
        "t.conf:33:1: warning: Warning: Virtual server [marks]:0: protocol specified for fwmark - protocol will be \
         ignored",
    ] {
        assert!(r.contains(want), "{want}\nin\n{r}");
    }
    // Nothing about the port-0 service with persistence, nor beyond "ignoring" about the
    // service without real servers.
    assert!(!r.contains("203.0.113.12]"), "{r}");
    assert_eq!(r.matches("203.0.113.13]").count(), 1, "{r}");
    assert!(r.contains("[203.0.113.13]:none:80 has no real servers - ignoring"), "{r}");
    let got: Vec<_> = vs.iter().map(|v| (v.protocol, v.ops, v.persistence_timeout, v.ha_suspend)).collect();
    assert_eq!(
        got[..6],
        [
            (Protocol::Udp, false, None, false),
            (Protocol::Tcp, false, None, false),
            (Protocol::Tcp, false, Some(360), false),
            (Protocol::Tcp, false, Some(60), false),
            (Protocol::Udp, true, None, false),
            (Protocol::Tcp, false, None, false),
        ]
    );
}

/// keepalived's `bind_if` (co_srcif_handler, check_conn_opts): a name longer than 15 bytes
/// is ignored with its warning; a link-local IPv6 address to probe needs one (keepalived
/// drops such a checker; refused here). PING_CHECK and SMTP hosts ask it too.
#[test]
fn bind_if_names_an_interface_and_link_local_probes_need_one() {
    let conf = |rs: &str, body: &str| {
        format!("virtual_server 2001:db8::10 80 {{\n protocol TCP\n real_server {rs} 80 {{\n  {body}\n }}\n}}\n")
    };
    let c = ok(&conf("2001:db8::11", "TCP_CHECK {\n   bind_if eth1\n  }"));
    assert_eq!(c.virtual_servers[0].real_servers[0].checkers[0].bind_if.as_deref(), Some("eth1"));
    let l = parse_str("t.conf", &conf("2001:db8::11", "TCP_CHECK {\n   bind_if abcdefghijklmnop\n  }"));
    assert!(!l.has_errors() && l.config.virtual_servers[0].real_servers[0].checkers[0].bind_if.is_none());
    assert!(l.render().contains("Interface name abcdefghijklmnop is too long - ignoring"), "{}", l.render());
    for body in [
        "TCP_CHECK {\n  }",
        "PING_CHECK {\n  }",
        "HTTP_GET {\n   url {\n    path /\n   }\n  }",
        "TCP_CHECK {\n   connect_ip fe80::2\n  }",
    ] {
        let e = first_error(&conf("fe80::1", body));
        assert!(e.contains("requires a bind_if"), "{body}: {e}");
    }
    ok(&conf("fe80::1", "TCP_CHECK {\n   bind_if eth1\n  }"));
    let e = first_error(&conf(
        "2001:db8::11",
        "SMTP_CHECK {\n   host {\n    connect_ip fe80::2\n   }\n   host {\n    connect_ip fe80::3\n    bind_if eth1\n   }\n  }",
    ));
    assert!(e.contains("link local address fe80::2 requires a bind_if"), "{e}");
}

/// keepalived's interface checks (`missing_interfaces`, with the host's answer injected):
/// an instance's interface, its tracked interfaces and its addresses' `dev`, each located.
#[test]
fn vrrp_interfaces_the_host_lacks_are_located_errors() {
    let l = parse_str(
        "t.conf",
        "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 1\n priority 100\n track_interface {\n  eth9\n  eth0\n }\n \
         virtual_ipaddress {\n  192.0.2.10/24 dev eth8\n  192.0.2.11/24\n }\n}\n",
    );
    assert!(!l.has_errors(), "{}", l.render());
    use validate::Iface;
    let all = validate::missing_interfaces(&l.config, |_| Iface::Missing);
    assert_eq!(all.len(), 4, "interface, two tracked, one dev");
    let d = validate::missing_interfaces(&l.config, |n| if n == "eth0" { Iface::Present } else { Iface::Missing });
    let text: Vec<String> = d.iter().map(|d| l.sources.render(d)).collect();
    assert_eq!(text.len(), 2, "{text:?}");
    assert!(text[0].starts_with("t.conf:6:3: error: (VI_1) tracked interface eth9 doesn't exist"), "{}", text[0]);
    assert!(
        text[1].starts_with("t.conf:10:3: error: interface eth8 for ip address 192.0.2.10/24 doesn't exist"),
        "{}",
        text[1]
    );
    // keepalived ignores a loopback `interface`, leaving the instance without one.
    let d = validate::missing_interfaces(&l.config, |n| if n == "eth0" { Iface::Loopback } else { Iface::Present });
    assert_eq!(d.len(), 1);
    assert!(l.sources.render(&d[0]).contains("error: (VI_1) cannot use a loopback interface (eth0) for vrrp"));
    // Routes (and their next hops), rules, static addresses and a sync group's tracking.
    let l = parse_str(
        "t.conf",
        "static_ipaddress {\n 192.0.2.20/24 dev eth7\n}\nstatic_routes {\n 198.51.100.0/24 via 192.0.2.1 dev eth6\n}\n\
         static_rules {\n from 192.0.2.0/24 iif eth5 table 100\n}\n\
         vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 1\n priority 100\n \
         virtual_ipaddress {\n  192.0.2.10/24\n }\n virtual_routes {\n  203.0.113.0/24 nexthop via 192.0.2.1 dev eth4\n }\n}\n\
         vrrp_sync_group G {\n group {\n  VI_1\n }\n track_interface {\n  eth3\n }\n}\n",
    );
    assert!(!l.has_errors(), "{}", l.render());
    let d = validate::missing_interfaces(&l.config, |n| if n == "eth0" { Iface::Present } else { Iface::Missing });
    let text: Vec<String> = d.iter().map(|d| l.sources.render(d)).collect();
    for want in [
        "(G) tracked interface eth3 doesn't exist",
        "interface eth4 for route 203.0.113.0/24 doesn't exist",
        "interface eth5 for rule doesn't exist",
        "interface eth6 for route 198.51.100.0/24 doesn't exist",
        "interface eth7 for ip address 192.0.2.20/24 doesn't exist",
    ] {
        assert!(text.iter().any(|t| t.contains(want)), "{want} in {text:#?}");
    }
    assert_eq!(text.len(), 5, "{text:#?}");
    // A static address without `dev`: on default_interface, keepalived's default eth0.
    let l = parse_str("t.conf", "static_ipaddress {\n 192.0.2.20/24\n}\n");
    let d = validate::missing_interfaces(&l.config, |_| Iface::Missing);
    assert!(l.sources.render(&d[0]).contains("(eth0 does not)"), "{d:?}");
    let l = parse_str("t.conf", "global_defs {\n default_interface v9\n}\nstatic_ipaddress {\n 192.0.2.20/24\n}\n");
    assert!(
        validate::missing_interfaces(&l.config, |n| if n == "v9" { Iface::Present } else { Iface::Missing }).is_empty()
    );
}

/// `dynamic_interfaces [allow_if_changes]` (keepalived's `dynamic_interfaces_handler`): the
/// interfaces the VRRP configuration names may be missing (a `use_vmac` instance's too), a
/// loopback one is still an error; another word is keepalived's error.
#[test]
fn dynamic_interfaces_lets_interfaces_be_missing() {
    use validate::Iface;
    let body = "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 1\n priority 100\n track_interface {\n  eth9\n }\n \
                virtual_ipaddress {\n  192.0.2.10/24 dev eth8\n }\n}\n\
                vrrp_instance VI_2 {\n interface eth1\n use_vmac\n virtual_router_id 2\n priority 100\n \
                virtual_ipaddress {\n  192.0.2.20/24\n }\n}\n";
    let l = parse_str("t.conf", &format!("global_defs {{\n dynamic_interfaces\n}}\n{body}"));
    assert!(!l.has_errors(), "{}", l.render());
    assert!(l.config.global.dynamic_interfaces && !l.config.global.allow_if_changes);
    assert!(validate::missing_interfaces(&l.config, |_| Iface::Missing).is_empty());
    let d = validate::missing_interfaces(&l.config, |n| if n == "eth0" { Iface::Loopback } else { Iface::Present });
    assert_eq!(d.len(), 1, "{d:?}");
    let l = parse_str("t.conf", "global_defs {\n dynamic_interfaces allow_if_changes\n}\n");
    assert!(!l.has_errors() && l.config.global.allow_if_changes, "{}", l.render());
    let l = parse_str("t.conf", "global_defs {\n dynamic_interfaces sometimes\n}\n");
    assert!(l.render().contains("t.conf:2:21: error: Unknown dynamic_interfaces option 'sometimes'"), "{}", l.render());
}

/// A dozen kinds of broken config, each with its exact location and message.
#[test]
fn bad_configs_are_located() {
    let cases: &[(&str, &str)] = &[
        ("vrrp_instance VI_1 {\n interface eth0\n", "bad.conf:1:20: error: unclosed `{`"),
        ("}\n", "bad.conf:1:1: error: unmatched `}`"),
        (
            "virtual_server 203.0.113.300 80 {\n}\n",
            "bad.conf:1:16: error: `203.0.113.300` is not an IPv4 or IPv6 address",
        ),
        (
            "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 1\n priority 300\n}\n",
            "bad.conf:4:11: error: `priority` must be between 1 and 255, not 300",
        ),
        (
            "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 0\n}\n",
            "bad.conf:3:20: error: `virtual_router_id` must be between 1 and 255, not 0",
        ),
        (
            "global_defs {\n smtp_servr 192.0.2.1\n}\n",
            "bad.conf:2:2: error: unknown keyword `smtp_servr` in global_defs; did you mean `smtp_server`?",
        ),
        (
            "include /nonexistent/lb-test.conf\n",
            "bad.conf:1:9: error: included file /nonexistent/lb-test.conf does not exist",
        ),
        (
            "virtual_server 203.0.113.10 80 {\n lb_algo fastest\n}\n",
            "bad.conf:2:10: error: unknown scheduler `fastest`",
        ),
        ("vrrp_script chk {\n script \"/bin/true\n}\n", "bad.conf:2:9: error: unterminated quoted string"),
        (
            "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 1\n track_script {\n  nosuch\n }\n}\n",
            "bad.conf:5:3: error: track_script `nosuch`: no vrrp_script of that name",
        ),
        (
            "vrrp_instance A {\n interface eth0\n virtual_router_id 1\n}\nvrrp_instance B {\n interface eth0\n virtual_router_id 1\n}\n",
            "bad.conf:5:1: error: vrrp_instance B: virtual_router_id 1 on eth0 is already used by vrrp_instance A",
        ),
        (
            "vrrp_instance A {\n interface eth0\n virtual_router_id 1\n advert_int 0.5\n}\n",
            "bad.conf:1:1: error: vrrp_instance A: advert_int 0.50 s needs VRRP version 3",
        ),
        (
            "vrrp_instance A {\n interface eth0\n virtual_router_id 1\n version 2\n virtual_ipaddress {\n  2001:db8::1\n }\n}\n",
            "bad.conf:1:1: error: vrrp_instance A: IPv6 addresses need VRRP version 3",
        ),
        (
            "virtual_server 203.0.113.10 80 {\n real_server 198.51.100.1 80 {\n  weight 70000\n }\n}\n",
            "bad.conf:3:10: error: `weight` must be between 0 and 65535, not 70000",
        ),
        (
            "virtual_server group nosuch {\n}\n",
            "bad.conf:1:1: error: virtual_server group nosuch: no virtual_server_group of that name",
        ),
        (
            "vrrp_sync_group G {\n group {\n  VI_X\n }\n}\n",
            "bad.conf:1:1: error: vrrp_sync_group G: no vrrp_instance `VI_X`",
        ),
        ("vrrp_instance A {\n virtual_router_id 1\n}\n", "bad.conf:1:1: error: vrrp_instance A has no `interface`"),
    ];
    for (src, want) in cases {
        let got = first_error(src);
        assert!(got.starts_with(want), "for\n{src}\ngot:  {got}\nwant: {want}");
    }
}

#[test]
fn keepalived_keywords_we_do_not_act_on_warn_with_location() {
    let l = parse_str("w.conf", "global_defs {\n  max_auto_priority 10\n}\n");
    assert!(!l.has_errors(), "{}", l.render());
    assert_eq!(l.diagnostics.len(), 1);
    assert!(
        l.sources
            .render(&l.diagnostics[0])
            .starts_with("w.conf:2:3: warning: `max_auto_priority` is a keepalived keyword"),
        "{}",
        l.render()
    );
}

#[test]
fn bpf_backend_refuses_what_it_cannot_run() {
    let src = "virtual_server 203.0.113.10 80 {\n protocol TCP\n lb_algo sed\n real_server 198.51.100.11 80 {\n }\n}\n\
               virtual_server fwmark 3 {\n real_server 198.51.100.11 {\n }\n}\n";
    let strict = load_str_with_backend(src, BackendKind::Bpf);
    let errs: Vec<String> = strict.errors().map(|d| strict.sources.render(d)).collect();
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs[0].contains("cannot run scheduler sed") && errs[0].contains("use --backend ipvs"), "{}", errs[0]);
    assert!(errs[1].contains("firewall marks"), "{}", errs[1]);
    assert!(!load_str_with_backend(src, BackendKind::Auto).has_errors());
    assert!(load_str_with_backend(src, BackendKind::Ipvs).diagnostics.is_empty());
}

/// `lb_backend` picks the backend when `--backend` does not: `lb_backend bpf` refuses what
/// the BPF data plane cannot run as `--backend bpf` does, `--backend` wins over it, and the
/// effective choice is what the daemon starts (`startup::start_backend` reads it).
#[test]
fn lb_backend_chooses_the_backend_unless_backend_is_given() {
    let src = "global_defs {\n lb_backend bpf\n}\nvirtual_server 203.0.113.10 80 {\n protocol TCP\n lb_algo sed\n}\n";
    let l = load_str_with_backend(src, BackendKind::Auto);
    let errs: Vec<String> = l.errors().map(|d| l.sources.render(d)).collect();
    assert!(errs.len() == 1 && errs[0].contains("cannot run scheduler sed"), "{errs:?}");
    assert_eq!(l.config.global.lb_backend, Some(BackendKind::Bpf));
    let l = load_str_with_backend(&src.replace("bpf", "ipvs"), BackendKind::Auto);
    assert!(!l.has_errors(), "{}", l.render());
    assert_eq!(l.config.global.lb_backend, Some(BackendKind::Ipvs));
    let l = load_str_with_backend(src, BackendKind::Ipvs);
    assert!(!l.has_errors(), "{}", l.render());
    assert_eq!(l.config.global.lb_backend, Some(BackendKind::Ipvs));
}

/// `lvs_sync_daemon` reads keepalived 2.2.7's options (`inst`, `id`, `maxlen`, `port`, `ttl`,
/// `group`) and its older positional syntax; anything else is an error, not dropped.
#[test]
fn lvs_sync_daemon_options_as_keepalived() {
    let sync = |line: &str| ok(&format!("global_defs {{\n {line}\n}}\n")).global.lvs_sync_daemon.unwrap();
    let d = sync("lvs_sync_daemon eth1 inst VI_2 id 7 maxlen 1200 port 8850 ttl 2 group 239.1.1.81");
    assert_eq!(d.vrrp_instance.as_deref(), Some("VI_2"));
    assert_eq!((d.sync_id, d.maxlen, d.port, d.ttl), (Some(7), Some(1200), Some(8850), Some(2)));
    assert_eq!(d.group, Some(ip("239.1.1.81")));
    let d = sync("lvs_sync_daemon eth1 VI_1 group ff02::8:8");
    assert_eq!((d.vrrp_instance.as_deref(), d.group), (Some("VI_1"), Some(ip("ff02::8:8"))));
    // The old `IF INSTANCE SYNCID` (keepalived warns and takes it).
    let l = parse_str("t.conf", "global_defs {\n lvs_sync_daemon eth1 VI_1 9\n}\n");
    assert!(!l.has_errors(), "{}", l.render());
    assert_eq!(l.config.global.lvs_sync_daemon.unwrap().sync_id, Some(9));
    // An instance that does not exist: keepalived clears the sync config; a warning here.
    let l = parse_str("t.conf", "global_defs {\n lvs_sync_daemon eth1 inst VI_9\n}\n");
    assert!(!l.has_errors(), "{}", l.render());
    assert!(l.render().contains("no vrrp_instance `VI_9`; connection sync is off"), "{}", l.render());
    let l = parse_str("t.conf", "global_defs {\n lvs_sync_daemon eth1\n}\n");
    assert!(l.diagnostics.is_empty(), "{}", l.render());
    for (line, says) in [
        ("lvs_sync_daemon eth1 VI_1 id 7 colour blue", "unknown option `colour`"),
        ("lvs_sync_daemon eth1 VI_1 group 192.0.2.1", "not a multicast address"),
        ("lvs_sync_daemon eth1 VI_1 port 0", "between 1 and 65535"),
        ("lvs_sync_daemon eth1 VI_1 ttl", "needs a TTL"),
    ] {
        let e = first_error(&format!("global_defs {{\n {line}\n}}\n"));
        assert!(e.contains(says), "{line}: {e}");
    }
}

#[test]
fn a_fwmark_service_ignores_protocol_as_keepalived() {
    let text = "virtual_server fwmark 7 {\n protocol SCTP\n lb_algo rr\n real_server 198.51.100.11 {\n }\n}\n";
    let l = parse_str("t.conf", text);
    assert!(!l.has_errors(), "{}", l.render());
    assert!(l.render().contains("protocol specified for fwmark - protocol will be ignored"), "{}", l.render());
    assert_eq!(l.config.virtual_servers[0].protocol, Protocol::default(), "SCTP not taken");
}

#[test]
fn lb_sync_auth_key_is_kept_secret_and_must_be_long() {
    let c = ok("global_defs {\n lvs_sync_daemon eth1\n lb_sync_auth_key correct-horse-battery-staple\n}\n");
    let key = c.global.lb_sync_auth_key.clone().expect("the key");
    assert_eq!(key.0, "correct-horse-battery-staple");
    // Dumps print the config: never the secret.
    assert!(!format!("{c:?}").contains("staple"));
    assert!(!serde_json::to_string(&c).unwrap().contains("staple"));
    let e = first_error("global_defs {\n lb_sync_auth_key short\n}\n");
    assert!(e.contains("at least 16 characters"), "{e}");
}

/// SCTP services: XDP does not update SCTP's CRC32c, so `--backend bpf` refuses them at
/// config-test time, `auto` gives them to IPVS.
#[test]
fn sctp_services_need_the_ipvs_backend() {
    let src = "virtual_server 203.0.113.10 3868 {\n protocol SCTP\n real_server 198.51.100.11 3868 {\n}\n}\n";
    let strict = load_str_with_backend(src, BackendKind::Bpf);
    let errs: Vec<String> = strict.errors().map(|d| strict.sources.render(d)).collect();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].contains("cannot run SCTP") && errs[0].contains("use --backend ipvs"), "{}", errs[0]);
    let auto = load_str_with_backend(src, BackendKind::Auto);
    assert!(!auto.has_errors());
    assert!(auto.diagnostics.iter().any(|d| auto.sources.render(d).contains("--backend auto will use IPVS")));
    assert!(load_str_with_backend(src, BackendKind::Ipvs).diagnostics.is_empty());
}

/// What only IPVS does per real server (`uthreshold` / `lthreshold`, an `lvs_method` other
/// than the service's lb_kind) and `lvs_timeouts`: located errors naming `--backend ipvs`
/// with `--backend bpf`, IPVS with auto; an `lvs_method` equal to lb_kind runs anywhere.
#[test]
fn ipvs_only_real_server_settings_and_timeouts_are_refused_for_bpf_only() {
    let src = "global_defs {\n lvs_timeouts tcp 900 tcpfin 30 udp 60\n}\n\
               virtual_server 203.0.113.10 80 {\n protocol TCP\n lb_kind NAT\n \
               real_server 198.51.100.11 80 {\n  uthreshold 10\n }\n \
               real_server 198.51.100.12 80 {\n  lvs_method DR\n }\n \
               real_server 198.51.100.13 80 {\n  lvs_method NAT\n }\n}\n";
    let strict = load_str_with_backend(src, BackendKind::Bpf);
    let errs: Vec<String> = strict.errors().map(|d| strict.sources.render(d)).collect();
    assert_eq!(errs.len(), 3, "{errs:?}");
    assert!(errs[0].starts_with("b.conf:2:2: error: lvs_timeouts sets IPVS's"), "{}", errs[0]);
    assert!(errs[1].starts_with("b.conf:8:3: error: real_server 198.51.100.11:80: uthreshold"), "{}", errs[1]);
    assert!(errs[2].starts_with("b.conf:11:3: error: real_server 198.51.100.12:80: lvs_method DR"), "{}", errs[2]);
    assert!(errs.iter().all(|e| e.contains("use --backend ipvs")), "{errs:?}");
    let auto = load_str_with_backend(src, BackendKind::Auto);
    assert!(!auto.has_errors());
    assert_eq!(auto.diagnostics.len(), 3, "{}", auto.render());
    assert!(load_str_with_backend(src, BackendKind::Ipvs).diagnostics.is_empty());
    let t = load_str_with_backend(src, BackendKind::Ipvs).config.global.lvs_timeouts.unwrap();
    assert_eq!((t.tcp, t.tcpfin, t.udp), (900, 30, 60));
    // lb_kind's own method per real server: nothing to refuse.
    let same = "virtual_server 203.0.113.10 80 {\n protocol TCP\n lb_kind DR\n real_server 198.51.100.11 80 {\n  lvs_method DR\n }\n}\n";
    let l = load_str_with_backend(same, BackendKind::Bpf);
    assert!(l.diagnostics.is_empty(), "{}", l.render());
}

/// A firewall-mark service's family as keepalived's vs_end_handler settles it: `ip_family`,
/// else the first server not forwarded by TUN, else the one family all share, else IPv4;
/// an `ip_family` the address or a non-TUN server contradicts is an error, as in keepalived.
#[test]
fn ip_family_settles_a_firewall_mark_s_family_as_keepalived() {
    let fwm = |body: &str| format!("virtual_server fwmark 7 {{\n lb_kind DR\n{body}}}\n");
    let rs = |addr: &str, method: &str| format!(" real_server {addr} 80 {{\n  lvs_method {method}\n }}\n");
    let cases = [
        (fwm(" ip_family inet6\n"), true),
        (fwm(&rs("2001:db8:b::11", "DR")), true),
        (fwm(&[rs("198.51.100.11", "TUN"), rs("2001:db8:b::11", "DR")].concat()), true),
        (fwm(&rs("2001:db8:b::11", "TUN")), true),
        (fwm(&[rs("2001:db8:b::11", "TUN"), rs("198.51.100.11", "TUN")].concat()), false),
        (fwm(""), false),
        (fwm(&[" ip_family inet6\n".to_string(), rs("198.51.100.11", "TUN")].concat()), true),
    ];
    for (text, v6) in cases {
        let l = load_str_with_backend(&text, BackendKind::Ipvs);
        assert!(!l.has_errors(), "{text}{}", l.render());
        assert_eq!(l.config.virtual_servers[0].mark_family_v6(), v6, "{text}");
    }
    for text in [
        "virtual_server 203.0.113.10 80 {\n protocol TCP\n ip_family inet6\n}\n".to_string(),
        fwm(&[rs("198.51.100.11", "DR"), " ip_family inet6\n".to_string()].concat()),
        fwm(&[" ip_family inet6\n".to_string(), rs("198.51.100.11", "DR")].concat()),
        fwm(" ip_family ipx\n"),
        // keepalived skips a server of the other family not forwarded by TUN, with an error.
        fwm(&[rs("198.51.100.11", "DR"), rs("2001:db8:b::11", "DR")].concat()),
        "virtual_server 203.0.113.10 80 {\n protocol TCP\n lb_kind NAT\n real_server 2001:db8:b::11 80 {\n }\n}\n"
            .to_string(),
    ] {
        let l = load_str_with_backend(&text, BackendKind::Ipvs);
        assert!(l.has_errors(), "{text}: not refused");
    }
}

/// keepalived's `alloc_rs` and `alloc_ssvr` copy lb_kind as it stands at their line; one set
/// only later reaches them at the end (check_data.c). A second lb_kind therefore splits the
/// service's methods, which only IPVS runs.
#[test]
fn real_and_sorry_servers_take_lb_kind_as_it_stands_at_their_line() {
    let src = "virtual_server 203.0.113.10 80 {\n protocol TCP\n real_server 198.51.100.11 80 {\n }\n lb_kind NAT\n \
               sorry_server 198.51.100.99 8080\n real_server 198.51.100.12 80 {\n }\n lb_kind DR\n \
               real_server 198.51.100.13 80 {\n }\n}\n";
    let l = load_str_with_backend(src, BackendKind::Ipvs);
    assert!(!l.has_errors(), "{}", l.render());
    let vs = &l.config.virtual_servers[0];
    let methods: Vec<ForwardMethod> = vs.real_servers.iter().map(|r| r.forward(vs)).collect();
    assert_eq!(methods, [ForwardMethod::Dr, ForwardMethod::Nat, ForwardMethod::Dr]);
    assert_eq!((vs.forward, vs.sorry_forward()), (ForwardMethod::Dr, ForwardMethod::Nat));
    let strict = load_str_with_backend(src, BackendKind::Bpf);
    let errs: Vec<String> = strict.errors().map(|d| strict.sources.render(d)).collect();
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs[0].contains("real_server 198.51.100.12:80: lvs_method NAT differs"), "{}", errs[0]);
    assert!(errs[1].contains("sorry_server 198.51.100.99:8080: forwarded by NAT"), "{}", errs[1]);
}

/// keepalived's tunnel options after `lb_kind` / `lvs_method` (`type gue port N`, `csum`):
/// a GUE or GRE tunnel sent as IPIP would fail open, so they are errors; `type ipip` (the
/// default) is accepted.
#[test]
fn tunnel_options_other_than_ipip_are_errors() {
    for (line, bad) in [(" lb_kind TUN type gue port 6080", true), (" lb_kind TUN type ipip", false)] {
        for rs_level in [false, true] {
            let (vs_line, rs_line) = if rs_level {
                (String::new(), line.replace("lb_kind", " lvs_method"))
            } else {
                (line.to_string(), String::new())
            };
            let src = format!(
                "virtual_server 203.0.113.10 80 {{\n protocol TCP\n lb_kind TUN\n{vs_line}\n real_server 198.51.100.11 80 {{\n{rs_line}\n }}\n}}\n"
            );
            let l = load_str_with_backend(&src, BackendKind::Ipvs);
            assert_eq!(l.has_errors(), bad, "{src}: {}", l.render());
            if bad {
                assert!(l.render().contains("only IPIP tunnels"), "{}", l.render());
            }
        }
    }
}

fn load_str_with_backend(src: &str, backend: BackendKind) -> Loaded {
    parse_text("b.conf", src, None, backend)
}

#[test]
fn includes_resolve_relative_to_the_including_file_and_expand_globs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("conf.d")).unwrap();
    std::fs::write(dir.path().join("main.conf"), "include conf.d/*.conf\ninclude extra.conf\n").unwrap();
    std::fs::write(dir.path().join("conf.d/a.conf"), "virtual_server 203.0.113.1 80 {\n protocol TCP\n}\n").unwrap();
    std::fs::write(
        dir.path().join("conf.d/b.conf"),
        "virtual_server 203.0.113.2 80 {\n protocol TCP\n include ../inner.conf\n}\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("inner.conf"), "lb_algo rr\n").unwrap();
    std::fs::write(dir.path().join("extra.conf"), "virtual_server 203.0.113.3 80 {\n  protcol TCP\n}\n").unwrap();
    let l = load(&dir.path().join("main.conf"), BackendKind::Auto).unwrap();
    assert_eq!(l.config.virtual_servers.len(), 3);
    assert_eq!(l.config.virtual_servers[1].scheduler, Scheduler::Rr);
    // Errors in an included file name that file.
    let err = l.sources.render(l.errors().next().unwrap());
    assert!(
        err.starts_with(&format!("{}:2:3: error: unknown keyword `protcol`", dir.path().join("extra.conf").display())),
        "{err}"
    );
}

/// keepalived's include variants and `include_check` (lib/parser.c `check_include`,
/// `include_check_set`, `check_glob_file`): beyond lb-daemon's own rule (a missing plain path
/// is an error), a glob matching nothing is an error with wildcard_match (includew,
/// includea), or with match when its directory is missing (includem too); a directory or an
/// executable file is skipped, an error with read (every variant); `include_check` in
/// global_defs sets the checks for the rest of its file.
#[test]
fn include_variants_and_include_check_follow_keepalived() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    std::fs::create_dir(dir.path().join("d.conf")).unwrap();
    write("vs.conf", "virtual_server 203.0.113.1 80 {\n protocol TCP\n}\n");
    write("strict.conf", "global_defs {\n include_check\n}\n");
    write("x.conf", "virtual_server 203.0.113.2 80 {\n protocol TCP\n}\n");
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir.path().join("x.conf"), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let run = |text: &str| {
        write("main.conf", text);
        let l = load(&dir.path().join("main.conf"), BackendKind::Auto).unwrap();
        let errors: Vec<String> = l.errors().map(|d| l.sources.render(d)).collect();
        (l.config.virtual_servers.len(), errors, l.render())
    };
    for variant in ["include", "includer", "includem", "includew", "includeb", "includea"] {
        let (n, errors, all) = run(&format!("{variant} vs.conf\n"));
        assert_eq!((n, errors.len()), (1, 0), "{variant}: {all}");
        let (_, errors, all) = run(&format!("{variant} none*.conf\n"));
        let wildcard = matches!(variant, "includew" | "includea");
        assert_eq!(errors.len(), usize::from(wildcard), "{variant}: {all}");
        assert!(all.contains("matches no file"), "{variant}: {all}");
        // `d.conf` is a directory the glob `d*.conf` matches, `x.conf` an executable file:
        // skipped (keepalived's check_glob_file), an error with the read check.
        for target in ["d*.conf", "x.conf"] {
            let (n, errors, all) = run(&format!("{variant} {target}\n"));
            assert_eq!((n, errors.len()), (0, usize::from(variant != "include")), "{variant} {target}: {all}");
            assert!(all.contains("not a regular non-executable file"), "{variant} {target}: {all}");
        }
        // A glob whose directory is missing: the match check.
        let (_, errors, all) = run(&format!("{variant} nodir/*.conf\n"));
        let matched = !matches!(variant, "include" | "includer" | "includeb");
        assert_eq!(errors.len(), usize::from(matched), "{variant}: {all}");
    }
    // include_check holds for the rest of its file, not for the file that included it.
    let (_, errors, all) = run("global_defs {\n include_check wildcard_match\n}\ninclude none*.conf\n");
    assert!(errors.len() == 1 && errors[0].contains("the wildcard_match check"), "{all}");
    let (_, errors, all) =
        run("global_defs {\n include_check\n include_check -wildcard_match\n}\ninclude none*.conf\n");
    assert!(errors.is_empty(), "{all}");
    let (_, errors, all) = run("include strict.conf\ninclude none*.conf\n");
    assert!(errors.is_empty(), "{all}");
    let (_, errors, _) = run("global_defs {\n include_check read match +bogus\n}\n");
    assert!(errors.len() == 2 && errors[0].contains("duplicate include_check 'match'"), "{errors:?}");
    assert!(errors[1].contains("unknown include_check type 'bogus'"), "{errors:?}");
    // Outside global_defs it is not read (keepalived: an unknown keyword there).
    let (_, _, all) = run("include_check\ninclude none*.conf\n");
    assert!(all.contains("the top level does not take") && !all.contains("error"), "{all}");
}

#[test]
fn brace_alternatives_expand_as_glibc_glob_brace() {
    let cases: &[(&str, &[&str])] = &[
        ("a.conf", &["a.conf"]),
        ("{a,b}.conf", &["a.conf", "b.conf"]),
        ("x{a,b{1,2}}y", &["xay", "xb1y", "xb2y"]),
        ("{a}{b,c}", &["ab", "ac"]),
        ("d/{x,}*.conf", &["d/x*.conf", "d/*.conf"]),
        ("open{a,b", &["open{a,b"]),
    ];
    for (pattern, want) in cases {
        assert_eq!(super::brace_alternatives(pattern), *want, "{pattern}");
    }
}

/// `include {a,b}.conf` reads each alternative in turn, as keepalived's glob (GLOB_BRACE);
/// a missing one is a warning, an error with brace_match (includeb, includea).
#[test]
fn brace_includes_read_each_alternative() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write("a.conf", "virtual_server 203.0.113.1 80 {\n protocol TCP\n}\n");
    write("b.conf", "virtual_server 203.0.113.2 80 {\n protocol TCP\n}\n");
    let run = |text: &str| {
        write("main.conf", text);
        let l = load(&dir.path().join("main.conf"), BackendKind::Auto).unwrap();
        let vips: Vec<String> = l.config.virtual_servers.iter().map(|v| format!("{:?}", v.addr)).collect();
        (vips, l.errors().count(), l.render())
    };
    let (vips, errors, all) = run("include {b,a}.conf\n");
    assert_eq!((vips.len(), errors), (2, 0), "{all}");
    assert!(vips[0].contains("203.0.113.2") && vips[1].contains("203.0.113.1"), "alternatives in order: {vips:?}");
    // A missing alternative (a plain path, or a glob whose directory is missing): a warning,
    // or with the brace_match check an error that includes nothing, as keepalived.
    for (variant, error) in [("include", false), ("includeb", true), ("includea", true), ("includew", false)] {
        for alts in ["{a,c}.conf", "{a.conf,nodir/*.conf}"] {
            let (vips, errors, all) = run(&format!("{variant} {alts}\n"));
            assert_eq!((vips.len(), errors), (usize::from(!error), usize::from(error)), "{variant} {alts}: {all}");
            assert!(all.contains("Some config files missing"), "{variant} {alts}: {all}");
        }
    }
    // A glob alternative matching nothing in a directory that exists is judged with the whole
    // pattern: the other alternative matched, so nothing is said.
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    let (vips, errors, all) = run("includew {a.conf,empty/*.conf}\n");
    assert_eq!((vips.len(), errors), (1, 0), "{all}");
    assert!(!all.contains("missing") && !all.contains("matched"), "{all}");
    let (vips, errors, all) = run("includew {empty/*.conf,empty/x*.conf}\n");
    assert_eq!((vips.len(), errors), (0, 1), "{all}");
    assert!(all.contains("No config files matched"), "{all}");
}

#[test]
fn include_loops_are_stopped() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("self.conf"), "include self.conf\n").unwrap();
    let l = load(&dir.path().join("self.conf"), BackendKind::Auto).unwrap();
    assert!(l.render().contains("includes nested deeper than 16"), "{}", l.render());
}

mod prop {
    use proptest::prelude::*;

    use super::*;

    const VALID: &str = include_str!("../../../configs/keepalived-guide.conf");

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Arbitrary bytes never panic the parser or the checks.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let text = String::from_utf8_lossy(&bytes);
            let l = parse_str("fuzz.conf", &text);
            let _ = l.render();
        }

        /// A valid config with lines dropped, duplicated or cut short never panics either,
        /// and every diagnostic points inside the text.
        #[test]
        fn mutated_valid_config_never_panics(ops in proptest::collection::vec((0usize..400, 0u8..4, 0usize..40), 1..12)) {
            let mut lines: Vec<String> = VALID.lines().map(String::from).collect();
            for (at, op, cut) in ops {
                if lines.is_empty() { break; }
                let i = at % lines.len();
                match op {
                    0 => { lines.remove(i); }
                    1 => { let l = lines[i].clone(); lines.insert(i, l); }
                    2 => { let l = &mut lines[i]; let n = l.char_indices().nth(cut).map_or(l.len(), |(b, _)| b); l.truncate(n); }
                    _ => { lines[i].push_str(" }"); }
                }
            }
            let text = lines.join("\n");
            let l = parse_str("mut.conf", &text);
            for d in &l.diagnostics {
                prop_assert!(d.span.line >= 1 && d.span.line <= text.lines().count().max(1) + 1, "{}", l.sources.render(d));
            }
        }
    }
}

/// `word` placed in `block` of an otherwise valid configuration.
fn placed(block: &str, word: &str) -> String {
    let stmt = format!("{word} 1\n");
    match block {
        "the top level" => stmt,
        "global_defs" => format!("global_defs {{\n{stmt}}}\n"),
        "virtual_server" => format!("virtual_server 192.0.2.10 80 {{\n protocol TCP\n{stmt}}}\n"),
        "real_server" => {
            format!("virtual_server 192.0.2.10 80 {{\n protocol TCP\n real_server 198.51.100.11 80 {{\n{stmt} }}\n}}\n")
        }
        "vrrp_instance" => {
            format!("vrrp_instance VI_1 {{\n interface eth0\n virtual_router_id 1\n priority 100\n{stmt}}}\n")
        }
        "vrrp_sync_group" => format!("vrrp_sync_group G {{\n group {{\n  VI_1\n }}\n{stmt}}}\n"),
        other => panic!("no placement for block {other}"),
    }
}

#[test]
fn keywords_that_would_change_traffic_are_refused_with_what_to_do() {
    for (block, word, instead) in keyword::REFUSED {
        let e = first_error(&placed(block, word));
        assert!(e.contains(&format!("`{word}` in {block} changes who gets traffic")) && e.contains(instead), "{e}");
        assert!(e.starts_with("bad.conf:"), "located: {e}");
    }
    // Where a block's table reads the keyword, it is taken: `retry` in a checker.
    ok(
        "virtual_server 192.0.2.10 80 {\n protocol TCP\n real_server 198.51.100.11 80 {\n  TCP_CHECK {\n   retry 2\n  }\n }\n}\n",
    );
}

#[test]
fn one_virtual_address_in_two_instances_is_a_warning_as_in_keepalived() {
    let text = "vrrp_instance A {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n  203.0.113.10\n }\n}\n\
                vrrp_instance B {\n interface eth0\n virtual_router_id 2\n virtual_ipaddress {\n  203.0.113.10\n }\n}\n";
    let l = parse_str("t.conf", text);
    assert!(!l.has_errors(), "{}", l.render());
    assert!(
        l.render().contains("t.conf:12:3: warning: virtual address 203.0.113.10 is also in vrrp_instance A"),
        "{}",
        l.render()
    );
}

/// keepalived 2.2.7's `lbflags_handler`: `flag-N` whatever the scheduler; `sh-*` / `mh-*`
/// only after `lb_algo sh` / `mh` (ignored after the other one, an error otherwise).
#[test]
fn scheduler_flags_follow_keepalived() {
    let vs = |body: &str| {
        format!("virtual_server 192.0.2.10 80 {{\n protocol TCP\n{body}\n real_server 198.51.100.11 80 {{\n }}\n}}\n")
    };
    let flags = |body: &str| ok(&vs(body)).virtual_servers[0].sched_flags;
    assert_eq!(flags(" lb_algo sh\n sh-port\n sh-fallback"), SCHED_FLAG_1 | SCHED_FLAG_2);
    assert_eq!(flags(" lvs_sched mh\n mh-port"), SCHED_FLAG_2);
    assert_eq!(flags(" lb_algo mh\n mh-fallback"), SCHED_FLAG_1);
    assert_eq!(flags(" lb_algo wlc\n flag-1\n flag-2\n flag-3"), SCHED_FLAG_1 | SCHED_FLAG_2 | SCHED_FLAG_3);
    // A later lb_algo keeps the bits (and rr ignores them).
    assert_eq!(flags(" lb_algo sh\n sh-port\n lb_algo rr"), SCHED_FLAG_2);
    // The other hashing scheduler: ignored with a warning, as keepalived ignores it.
    let l = parse_str("t.conf", &vs(" lb_algo mh\n sh-port"));
    assert!(!l.has_errors() && l.config.virtual_servers[0].sched_flags == 0, "{}", l.render());
    assert!(l.render().contains("t.conf:4:2: warning: `sh-port` has no effect with lb_algo mh"), "{}", l.render());
    // Before any lb_algo (keepalived's default wlc comes later) or after another scheduler.
    for body in [" sh-port\n lb_algo sh", " lb_algo rr\n sh-fallback", " lb_algo dh\n mh-port", " lb_algo rr\n hashed"]
    {
        let e = first_error(&vs(body));
        assert!(e.contains("applies only to lb_algo"), "{body}: {e}");
        assert!(e.starts_with("bad.conf:3:2:") || e.starts_with("bad.conf:4:2:"), "located: {e}");
    }
    // `hashed` sets nothing, and after sh or mh says nothing.
    for algo in ["sh", "mh"] {
        let l = parse_str("t.conf", &vs(&format!(" lb_algo {algo}\n hashed")));
        assert!(l.diagnostics.is_empty() && l.config.virtual_servers[0].sched_flags == 0, "{}", l.render());
    }
}

/// keepalived's `real_server ADDRESS` without a port (or with 0): an address-and-port
/// service's real server takes the service's port; a fwmark or group service's keeps 0 (IPVS:
/// the packet's destination port).
#[test]
fn a_real_server_without_a_port_is_keepalived_s() {
    let c = ok("virtual_server_group g {\n 192.0.2.10 80\n}\n\
                virtual_server 192.0.2.10 8080 {\n protocol TCP\n real_server 198.51.100.11 {\n }\n real_server 198.51.100.12 0 {\n }\n}\n\
                virtual_server fwmark 7 {\n real_server 198.51.100.11 {\n }\n real_server 198.51.100.12 {\n }\n}\n\
                virtual_server group g {\n protocol TCP\n real_server 198.51.100.11 {\n }\n}\n");
    let ports: Vec<Vec<u16>> =
        c.virtual_servers.iter().map(|v| v.real_servers.iter().map(|r| r.addr.port()).collect()).collect();
    assert_eq!(ports, [vec![8080, 8080], vec![0, 0], vec![0]]);
    let e = first_error("virtual_server fwmark 7 {\n real_server 198.51.100.11 http {\n }\n}\n");
    assert!(e.starts_with("bad.conf:2:28:") && e.contains("port number"), "{e}");
}

#[test]
fn services_and_real_servers_are_named_as_keepalived_logs_them() {
    let c = ok("virtual_server 203.0.113.10 80 {
    protocol TCP
    real_server 192.0.2.21 80 {
    }
}
virtual_server 2001:db8::10 443 {
    protocol TCP
    real_server 2001:db8::21 8443 {
    }
}
virtual_server fwmark 7 {
    protocol UDP
    real_server 192.0.2.22 53 {
    }
}
");
    let [v4, v6, fwm] = &c.virtual_servers[..] else { panic!("three services") };
    assert_eq!(v4.keepalived_name(), "[203.0.113.10]:tcp:80");
    assert_eq!(v4.keepalived_real_name(v4.real_servers[0].addr), "[192.0.2.21]:tcp:80");
    assert_eq!(v6.keepalived_name(), "[2001:db8::10]:tcp:443");
    assert_eq!(v6.keepalived_real_name(v6.real_servers[0].addr), "[2001:db8::21]:tcp:8443");
    assert_eq!(fwm.keepalived_name(), "FWM 7");
    // keepalived clears a fwmark real server's port, and the service's protocol (its -t:
    // "real server [198.51.100.11]:none:80 has port specified").
    assert_eq!(fwm.keepalived_real_name(fwm.real_servers[0].addr), "[192.0.2.22]:none:0");
}

/// UDP_CHECK, DNS_CHECK, PING_CHECK and SMTP_CHECK: their keywords, keepalived's defaults
/// (DNS_CHECK: SOA of the root, retry 3, retrying after the delay loop; SMTP_CHECK: its
/// HELO name, and its own connection only when a connection keyword is in the block).
#[test]
fn udp_dns_ping_smtp_checkers() {
    let c = ok("virtual_server 203.0.113.10 53 {\n delay_loop 7\n protocol UDP\n real_server 198.51.100.11 53 {\n  \
         UDP_CHECK {\n   payload 01 02 0304\n   require_reply 6x 02\n   min_reply_length 2\n   max_reply_length 9\n  }\n  \
         UDP_CHECK {\n   require_reply\n  }\n  \
         DNS_CHECK {\n   type aaaa\n   name www.example.com.\n  }\n  DNS_CHECK {\n   delay_before_retry 2\n  }\n  \
         PING_CHECK {\n   connect_ip 198.51.100.99\n  }\n  \
         SMTP_CHECK {\n   helo_name me.example\n   host {\n    connect_port 25\n   }\n   host {\n    \
         connect_ip 198.51.100.12\n    connect_timeout 2\n    retry 4\n   }\n  }\n  \
         SMTP_CHECK {\n   connect_port 2525\n   host {\n    connect_port 25\n   }\n  }\n  SMTP_CHECK {\n  }\n }\n}\n");
    let cs = &c.virtual_servers[0].real_servers[0].checkers;
    assert_eq!(
        cs[0].kind,
        CheckKind::Udp {
            payload: Some(vec![1, 2, 3, 4]),
            require_reply: true,
            reply: vec![0x60, 2],
            mask: vec![0x0f, 0],
            min_len: 2,
            max_len: 9
        }
    );
    assert_eq!(
        cs[1].kind,
        CheckKind::Udp { payload: None, require_reply: true, reply: vec![], mask: vec![], min_len: 0, max_len: 255 }
    );
    assert_eq!(cs[2].kind, CheckKind::Dns { qtype: 28, name: "www.example.com.".into() });
    assert_eq!(cs[3].kind, CheckKind::Dns { qtype: 6, name: String::new() });
    assert_eq!((cs[4].kind.clone(), cs[4].connect_ip), (CheckKind::Ping, Some(ip("198.51.100.99"))));
    let CheckKind::Smtp { helo_name, main, hosts } = &cs[5].kind else { panic!("{:?}", cs[5]) };
    assert_eq!((helo_name.as_str(), *main, hosts.len()), ("me.example", false, 2));
    assert_eq!((hosts[0].connect_port, hosts[0].connect_ip, hosts[0].connect_timeout), (Some(25), None, None));
    assert_eq!((hosts[1].connect_ip, hosts[1].connect_timeout), (Some(ip("198.51.100.12")), Some(2)));
    assert_eq!(cs[5].retry, Some(4), "a host block's retry is the checker's, as in keepalived");
    assert!(matches!(&cs[6].kind, CheckKind::Smtp { main: true, hosts, .. } if hosts.len() == 1));
    assert!(
        matches!(&cs[7].kind, CheckKind::Smtp { helo_name, main: true, hosts } if hosts.is_empty() && helo_name == "smtpchecker.keepalived.org")
    );
    let rs = |body: &str| {
        format!("virtual_server 203.0.113.10 53 {{\n protocol TCP\n real_server 198.51.100.11 53 {{\n{body}\n }}\n}}\n")
    };
    for (body, want) in [
        ("UDP_CHECK {\n payload 0g\n}", "UDP_CHECK payload: `0g` is not hex digits"),
        ("UDP_CHECK {\n payload 6x\n}", "UDP_CHECK payload: `6x` is not hex digits"),
        ("UDP_CHECK {\n min_reply_length 9\n max_reply_length 8\n}", "min_reply_length 9 > max_reply_length 8"),
        ("DNS_CHECK {\n type PTR\n}", "unknown DNS type `PTR`"),
        ("DNS_CHECK {\n name a..b\n}", "has an empty label"),
        ("DNS_CHECK {\n name .a\n}", "has an empty label"),
        ("TCP_CHECK {\n payload 00\n}", "`payload` belongs in UDP_CHECK"),
        ("TCP_CHECK {\n host {\n }\n}", "`host` belongs in SMTP_CHECK"),
        ("SMTP_CHECK {\n host {\n  helo_name x\n }\n}", "`helo_name` belongs in SMTP_CHECK"),
    ] {
        let e = first_error(&rs(body));
        assert!(e.contains(want), "{body}: {e}");
    }
}

#[test]
fn track_process_blocks_take_keepalived_s_defaults_and_checks() {
    let c = ok("vrrp_track_process p {\n process sleep 100 x\n}\n\
                vrrp_track_process q {\n process nginx\n weight -20 reverse\n quorum 2\n quorum_max 4\n \
                fork_delay 0.5\n terminate_delay 2\n}\n\
                vrrp_track_process r {\n process sshd\n quorum_max 0\n delay 0.000001\n full_command\n \
                param_match initial\n}\n");
    let [p, q, r] = &c.track_processes[..] else { panic!() };
    assert_eq!((p.process.as_deref(), &p.params[..]), (Some("sleep"), &["100".to_string(), "x".into()][..]));
    assert_eq!(
        (p.param_match, p.full_command, p.weight, p.quorum, p.quorum_max),
        (ParamMatch::Exact, true, 0, 1, u32::MAX)
    );
    assert_eq!((q.weight, q.reverse, q.quorum, q.quorum_max), (-20, true, 2, 4));
    assert_eq!((q.fork_delay_us, q.terminate_delay_us, q.full_command), (500_000, 2_000_000, false));
    assert_eq!((r.quorum, r.quorum_max, r.fork_delay_us, r.terminate_delay_us), (0, 0, 1, 1));
    assert_eq!((r.param_match, r.full_command), (ParamMatch::Initial, true));
    let block = |body: &str| format!("vrrp_track_process p {{\n{body}\n}}\n");
    for (body, wants) in [
        ("weight 5", "has no `process`"),
        ("process x\nquorum 0", "between 1 and 65535"),
        ("process x\nquorum 3\nquorum_max 2", "less than quorum"),
        ("process x\nquorum_max 0\nquorum 1", "greater than quorum_max"),
        ("process x\nweight 300", "between -254 and 254"),
        ("process x\nweight 5 sideways", "expected `reverse`"),
        ("process x\nweight 5\nweight 6", "already has a weight"),
        ("process x\nprocess y", "already has a process"),
        ("process x\nparam_match bogus", "expected initial, partial"),
        ("process x\nfork_delay 0", "between 0.000001 and 3600"),
        ("process x\ndelay 3600.5", "between 0.000001 and 3600"),
        ("process x\nterminate_delay 1.0000001", "between 0.000001 and 3600"),
    ] {
        assert!(first_error(&block(body)).contains(wants), "{body}: {}", first_error(&block(body)));
    }
    // weight 0 is "not set" for keepalived: a second weight line is taken.
    assert_eq!(ok(&block("process x\nweight 0\nweight 6")).track_processes[0].weight, 6);
    let inst = |tracked: &str| {
        format!(
            "{}vrrp_instance VI_1 {{\n interface v0\n virtual_router_id 1\n priority 100\n \
             track_process {{\n{tracked}\n }}\n}}\n",
            block("process x")
        )
    };
    let c = ok(&inst("p weight -10 noreverse"));
    let t = &c.vrrp_instances[0].track_process[0];
    assert_eq!((t.name.as_str(), t.weight, t.reverse), ("p", Some(-10), Some(false)));
    assert!(first_error(&inst("q")).contains("no vrrp_track_process of that name"));
    assert!(first_error(&inst("p\np")).contains("listed twice"));
    assert!(first_error(&inst("p heavy 5")).contains("expected `weight N`"));
}

/// FILE_CHECK (keepalived 2.2.7's check_file.c): `track_file` names a track_file block;
/// `weight` (-2147483647..2147483647, `reverse`/`noreverse`) overrides the block's.
#[test]
fn file_check_and_sync_group_track_file() {
    let c = ok("track_file f {\n file /tmp/f\n weight 3 reverse\n}\n\
         virtual_server 203.0.113.10 80 {\n protocol TCP\n real_server 198.51.100.11 80 {\n  \
         FILE_CHECK {\n   track_file f\n  }\n  FILE_CHECK {\n   track_file f\n   weight -2147483647 noreverse\n  }\n  \
         TCP_CHECK {\n  }\n }\n}\n");
    let cs = &c.virtual_servers[0].real_servers[0].checkers;
    assert_eq!(cs[0].kind, CheckKind::File { track_file: "f".into(), weight: None, reverse: None });
    assert_eq!(cs[1].kind, CheckKind::File { track_file: "f".into(), weight: Some(-2147483647), reverse: Some(false) });
    let rs = |body: &str| {
        format!(
            "track_file f {{\n file /tmp/f\n}}\nvirtual_server 203.0.113.10 80 {{\n protocol TCP\n real_server 198.51.100.11 80 {{\n{body}\n }}\n}}\n"
        )
    };
    for (body, want) in [
        ("FILE_CHECK {\n weight 2\n}", "FILE_CHECK has no `track_file`"),
        ("FILE_CHECK {\n track_file g\n}", "track_file `g`: no track_file block"),
        ("FILE_CHECK {\n track_file f\n weight 2 sideways\n}", "expected `reverse` or `noreverse`"),
        ("track_file f", "belongs in a FILE_CHECK block"),
    ] {
        let e = first_error(&rs(body));
        assert!(e.contains(want), "{body}: {e}");
    }

    // A sync group's track_file goes to every member with the group's weight; a member's own
    // weighted entry takes the group's weight, its weight-0 entry stays.
    let inst = |name: &str, vrid: u8, extra: &str| {
        format!("vrrp_instance {name} {{\n interface v0\n virtual_router_id {vrid}\n priority 100\n{extra}}}\n")
    };
    let text = format!(
        "track_file f {{\n file /tmp/f\n weight 2\n}}\ntrack_file g {{\n file /tmp/g\n}}\n\
         vrrp_sync_group G {{\n group {{\n  A\n  B\n }}\n track_file {{\n  f weight -5 reverse\n  g\n }}\n}}\n{}{}",
        inst("A", 1, " track_file {\n  f weight 7\n }\n"),
        inst("B", 2, " track_file {\n  g weight 0\n }\n")
    );
    let c = ok(&text);
    let tracked = |i: usize| -> Vec<(String, Option<i32>, Option<bool>)> {
        c.vrrp_instances[i].track_file.iter().map(|t| (t.name.clone(), t.weight, t.reverse)).collect()
    };
    assert_eq!(tracked(0), [("f".into(), Some(-5), Some(true)), ("g".into(), Some(1), Some(false))]);
    assert_eq!(tracked(1), [("g".into(), Some(0), None), ("f".into(), Some(-5), Some(true))]);
    let owner = text.replacen("priority 100", "priority 255", 1);
    assert!(first_error(&owner).contains("cannot be weighted with a member at priority 255"));
    let dup = text.replace("  g\n }", "  g\n  g\n }");
    assert!(first_error(&dup).contains("already tracked by this sync group"));
    let unknown = text.replace("  g\n }", "  h\n }");
    assert!(first_error(&unknown).contains("track_file `h`: no track_file block"));
}

/// keepalived 2.2.7's bfd_parser.c: defaults, milliseconds with 3 decimals, its refusals
/// (the `-t` verdicts are compared in tests/corpus/keepalived/bfd-*.conf).
#[test]
fn bfd_instances_follow_keepalived() {
    let c = ok("bfd_instance B1 {\n neighbor_ip 192.0.2.12\n}\n");
    let b = &c.bfd_instances[0];
    assert_eq!((b.min_rx_us, b.min_tx_us, b.idle_tx_us, b.multiplier), (10_000, 10_000, 1_000_000, 5));
    assert_eq!((b.passive, b.ttl(), b.min_rx_ttl(), b.weight, b.reverse), (false, 255, 255, 0, false));
    let c = ok("bfd_instance B1 {\n neighbour_ip 2001:db8::2\n source_ip 2001:db8::1\n min_rx 1.5\n \
                min_tx 2.125\n idle_tx 2000\n multiplier 3\n passive\n hoplimit 10\n max_hops 2\n weight -7 reverse\n}\n");
    let b = &c.bfd_instances[0];
    assert_eq!((b.neighbor, b.source), (Some(ip("2001:db8::2")), Some(ip("2001:db8::1"))));
    assert_eq!((b.min_rx_us, b.min_tx_us, b.idle_tx_us, b.multiplier), (1_500, 2_125, 2_000_000, 3));
    assert_eq!((b.passive, b.ttl(), b.min_rx_ttl(), b.weight, b.reverse), (true, 10, 8, -7, true));
    // IPv6's default hop limit is keepalived's 64; max_hops -1 accepts any TTL (a warning).
    let l = parse_str("t.conf", "bfd_instance B1 {\n neighbor_ip 2001:db8::2\n max_hops -1\n}\n");
    assert!(!l.has_errors() && l.render().contains("max_hops exceeds"), "{}", l.render());
    assert_eq!((l.config.bfd_instances[0].ttl(), l.config.bfd_instances[0].min_rx_ttl()), (64, 0));
    let bad = [
        ("bfd_instance B1 {\n min_rx 20\n}\n", "bad.conf:1:1: error: bfd_instance B1 has no `neighbor_ip`"),
        ("bfd_instance B1 {\n neighbor_ip 192.0.2.12\n min_rx 0.5\n}\n", "min_rx` must be milliseconds"),
        ("bfd_instance B1 {\n neighbor_ip 192.0.2.12\n min_rx 1.5555\n}\n", "bad.conf:3:9: error"),
        ("bfd_instance B1 {\n neighbor_ip 192.0.2.12\n idle_tx 999\n}\n", "between 1000 and 4294967, not 999"),
        ("bfd_instance B1 {\n neighbor_ip 192.0.2.12\n multiplier 256\n}\n", "between 1 and 255, not 256"),
        ("bfd_instance B1 {\n neighbor_ip 192.0.2.12\n weight 254\n}\n", "between -253 and 253, not 254"),
        ("bfd_instance B1 {\n neighbor_ip 192.0.2.12\n source_ip 2001:db8::1\n}\n", "not of one family"),
        (
            "bfd_instance B1 {\n neighbor_ip 192.0.2.12\n}\nbfd_instance B2 {\n neighbor_ip 192.0.2.12\n}\n",
            "same neighbor_ip",
        ),
        (
            "bfd_instance B1 {\n neighbor_ip 192.0.2.12\n source_ip 192.0.2.11\n}\nbfd_instance B2 {\n neighbor_ip 192.0.2.12\n}\n",
            "same neighbor_ip",
        ),
        (
            "bfd_instance B1 {\n neighbor_ip 192.0.2.12\n}\nbfd_instance B1 {\n neighbor_ip 192.0.2.13\n}\n",
            "already configured",
        ),
        ("bfd_instance B12345678901234567890123456789012 {\n neighbor_ip 192.0.2.12\n}\n", "longer than 31"),
    ];
    for (src, want) in bad {
        let e = first_error(src);
        assert!(e.contains(want), "{src}: {e}");
    }
    // Two sources toward one neighbour are two sessions.
    ok("bfd_instance B1 {\n neighbor_ip 192.0.2.12\n source_ip 192.0.2.11\n}\n\
        bfd_instance B2 {\n neighbor_ip 192.0.2.12\n source_ip 192.0.2.13\n}\n");
}

#[test]
fn track_bfd_and_bfd_check_name_bfd_instances() {
    const B: &str = "bfd_instance B1 {\n neighbor_ip 192.0.2.12\n weight 5\n}\n";
    let vi = |track: &str| {
        format!("{B}vrrp_instance VI_1 {{\n interface eth0\n virtual_router_id 1\n track_bfd {{\n{track}\n }}\n}}\n")
    };
    let c = ok(&vi("  B1 weight -10 reverse"));
    let t = &c.vrrp_instances[0].track_bfd[0];
    assert_eq!((t.name.as_str(), t.weight, t.reverse), ("B1", Some(-10), Some(true)));
    assert!(first_error(&vi("  B9")).contains("track_bfd `B9`: no bfd_instance of that name"));
    assert!(first_error(&vi("  B1\n  B1")).contains("listed twice"));
    assert!(first_error(&vi("  B1 weight 254")).contains("between -253 and 253"));
    // Sync groups: unweighted only.
    let sg = |g: &str, own: &str| {
        format!(
            "{B}vrrp_sync_group G {{\n group {{\n  VI_1\n }}\n{g}}}\n\
             vrrp_instance VI_1 {{\n interface eth0\n virtual_router_id 1\n{own}}}\n"
        )
    };
    let c = ok(&sg(" track_bfd {\n  B1 weight 0\n }\n", ""));
    assert_eq!(c.vrrp_sync_groups[0].track_bfd[0].weight, Some(0));
    assert!(first_error(&sg(" track_bfd {\n  B1\n }\n", "")).contains("with a weight in vrrp_sync_group G"));
    // keepalived drops a member's own weighted track_bfd, with a config error (a warning here).
    let l = parse_str("b.conf", &sg("", " track_bfd {\n  B1\n }\n"));
    assert!(!l.has_errors(), "{}", l.render());
    assert!(l.config.vrrp_instances[0].track_bfd.is_empty());
    assert!(l.render().contains("(VI_1) ignoring tracked bfd B1 with weight"), "{}", l.render());
    let vs = |body: &str| {
        format!(
            "{B}virtual_server 192.0.2.10 80 {{\n protocol TCP\n real_server 198.51.100.11 80 {{\n  BFD_CHECK {{\n{body}\n  }}\n }}\n}}\n"
        )
    };
    let c = ok(&vs("   name B1\n   alpha"));
    let chk = &c.virtual_servers[0].real_servers[0].checkers[0];
    assert_eq!((chk.kind.clone(), chk.alpha), (CheckKind::Bfd { name: "B1".into() }, Some(true)));
    assert!(first_error(&vs("   alpha")).contains("BFD_CHECK has no `name`"));
    assert!(first_error(&vs("   name B9")).contains("BFD_CHECK `B9`: no bfd_instance of that name"));
    // keepalived's `vrrp` / `checker` in a bfd_instance: only the processes named hear it.
    let only = |who: &str, user: &str| format!("bfd_instance B1 {{\n neighbor_ip 192.0.2.12\n {who}\n}}\n{user}");
    let vs_b1 = "virtual_server 192.0.2.10 80 {\n protocol TCP\n real_server 198.51.100.11 80 {\n  BFD_CHECK {\n   name B1\n  }\n }\n}\n";
    let vi_b1 = "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 1\n track_bfd {\n  B1\n }\n}\n";
    assert!(first_error(&only("vrrp", vs_b1)).contains("reports to VRRP only"));
    assert!(first_error(&only("checker", vi_b1)).contains("reports to the checkers only"));
    ok(&only("checker", vs_b1));
    ok(&only("vrrp\n checker", vi_b1));
    // keepalived's BFD_CHECK knows `name` and `alpha` only.
    assert!(first_error(&vs("   name B1\n   weight 3")).contains("unknown keyword `weight` in BFD_CHECK"));
}

/// keepalived 2.2.7's election variants (vrrp.c `vrrp_complete_instance` /
/// `vrrp_complete_init`): instance over global_defs over the default, and what `vrrp_strict`
/// forces; the values keepalived would reset with a config error are refused.
#[test]
fn election_variants_resolve_as_keepalived_s() {
    let inst = |extra: &str| {
        format!(
            "vrrp_instance VI_1 {{\n interface eth0\n virtual_router_id 1\n {extra}\n \
             virtual_ipaddress {{\n  192.0.2.10/24\n }}\n}}\n"
        )
    };
    let resolved = |c: &Config| {
        let (g, v) = (&c.global, &c.vrrp_instances[0]);
        (v.down_timer_adverts(g), v.lower_prio_no_advert(g), v.garp_lower_prio_repeat(g), v.garp_lower_prio_delay(g))
    };
    // Defaults: 3 adverts, answer lower priorities, garp_lower_prio_* from the global
    // vrrp_garp_master_* (not the instance's garp_master_*).
    assert_eq!(resolved(&ok(&inst("garp_master_repeat 2\n garp_master_delay 1"))), (3, false, 5, 5));
    let global = "global_defs {\n vrrp_down_timer_adverts 5\n vrrp_lower_prio_no_advert\n \
                  vrrp_garp_master_repeat 4\n vrrp_garp_master_delay 7\n}\n";
    assert_eq!(resolved(&ok(&format!("{global}{}", inst("")))), (5, true, 4, 7));
    let global2 = "global_defs {\n vrrp_garp_lower_prio_repeat 2\n vrrp_garp_lower_prio_delay 9\n}\n";
    assert_eq!(resolved(&ok(&format!("{global2}{}", inst("")))), (3, false, 2, 9));
    let own = "down_timer_adverts 10\n lower_prio_no_advert false\n garp_lower_prio_repeat 1\n garp_lower_prio_delay 0";
    assert_eq!(resolved(&ok(&format!("{global}{}", inst(own)))), (10, false, 1, 0));
    // vrrp_strict: no advert back, no gratuitous ARPs, the RFC's 3 adverts.
    let strict = "global_defs {\n vrrp_strict\n vrrp_lower_prio_no_advert false\n vrrp_garp_lower_prio_repeat 3\n}\n";
    assert_eq!(resolved(&ok(&format!("{strict}{}", inst("lower_prio_no_advert")))), (3, true, 0, 0));
    for bad in
        ["down_timer_adverts 5", "lower_prio_no_advert off", "garp_lower_prio_repeat 2", "garp_lower_prio_delay 1"]
    {
        let e = first_error(&format!("global_defs {{\n vrrp_strict\n}}\n{}", inst(bad)));
        assert!(e.contains("incompatible with vrrp_strict"), "{bad}: {e}");
    }
    let e = first_error(&format!("global_defs {{\n vrrp_strict\n vrrp_down_timer_adverts 4\n}}\n{}", inst("")));
    assert!(e.contains("down_timer_adverts 4 is incompatible with vrrp_strict"), "{e}");
    // higher_prio_send_advert: off by default, the global default, the instance's own; off
    // under vrrp_strict (an explicit one there is refused, keepalived resets it).
    let higher = |c: &Config| c.vrrp_instances[0].higher_prio_send_advert(&c.global);
    assert!(!higher(&ok(&inst(""))));
    assert!(higher(&ok(&inst("higher_prio_send_advert"))));
    let on = "global_defs {\n vrrp_higher_prio_send_advert\n}\n";
    assert!(higher(&ok(&format!("{on}{}", inst("")))));
    assert!(!higher(&ok(&format!("{on}{}", inst("higher_prio_send_advert false")))));
    let strict_on = "global_defs {\n vrrp_strict\n vrrp_higher_prio_send_advert\n}\n";
    assert!(!higher(&ok(&format!("{strict_on}{}", inst("")))));
    let e = first_error(&format!("global_defs {{\n vrrp_strict\n}}\n{}", inst("higher_prio_send_advert")));
    assert!(e.contains("higher_prio_send_advert is incompatible with vrrp_strict"), "{e}");
    // strict_mode: vrrp_strict for one instance, either way.
    let strict = |c: &Config| {
        let (g, v) = (&c.global, &c.vrrp_instances[0]);
        (v.strict(g), v.lower_prio_no_advert(g), v.accept_mode(g))
    };
    assert_eq!(strict(&ok(&inst("strict_mode"))), (true, true, false));
    assert_eq!(
        strict(&ok(&format!("global_defs {{\n vrrp_strict\n}}\n{}", inst("strict_mode false")))),
        (false, false, true)
    );
    let e = first_error(&inst("strict_mode\n down_timer_adverts 5"));
    assert!(e.contains("down_timer_adverts 5 is incompatible with vrrp_strict"), "{e}");
    // Ranges as keepalived reads them.
    assert!(first_error(&inst("down_timer_adverts 0")).contains("between 1 and 100"));
    assert!(first_error(&inst("down_timer_adverts 101")).contains("between 1 and 100"));
    assert!(first_error(&inst("lower_prio_no_advert maybe")).contains("true/false"));
    // unicast_ttl: only with unicast peers (keepalived resets it with a config error).
    let peers = "unicast_peer {\n  192.0.2.2\n }\n unicast_ttl";
    assert_eq!(ok(&inst(&format!("{peers} 7"))).vrrp_instances[0].unicast_ttl, Some(7));
    assert!(first_error(&inst("unicast_ttl 7")).contains("unicast_ttl needs unicast_peer"));
    assert!(first_error(&inst(&format!("{peers} 256"))).contains("between 0 and 255"));
    assert!(first_error(&inst(&format!("{peers} 0"))).contains("unicast_ttl 0"));
    // use_vmac [NAME], vmac_xmit_base, vmac_prefix (vrrp_parser.c / vrrp.c checks).
    let v = ok(&inst("use_vmac\n vmac_xmit_base"));
    assert_eq!(v.vrrp_instances[0].use_vmac, Some(UseVmac { name: None, mac: None }));
    assert!(v.vrrp_instances[0].vmac_xmit_base);
    assert_eq!(
        ok(&inst("use_vmac vip51")).vrrp_instances[0].use_vmac,
        Some(UseVmac { name: Some("vip51".into()), mac: None })
    );
    assert_eq!(
        ok(&format!("global_defs {{\n vmac_prefix vm\n}}\n{}", inst("use_vmac"))).global.vmac_prefix.as_deref(),
        Some("vm")
    );
    // old_unicast_checksum [never] (keepalived's vrrp_unicast_chksum_handler); a unicast
    // keyword, so without peers keepalived's deprecation warning.
    let peers = "unicast_peer {\n  192.0.2.2\n }\n";
    let csum = |text: &str| ok(&inst(&format!("{peers} {text}"))).vrrp_instances[0].old_unicast_checksum;
    assert_eq!(csum("old_unicast_checksum"), Some(OldUnicastChecksum::Old));
    assert_eq!(csum("old_unicast_checksum never"), Some(OldUnicastChecksum::Never));
    assert_eq!(csum(""), None);
    assert!(
        first_error(&inst(&format!("{peers} old_unicast_checksum always"))).contains("Unknown old_unicast_chksum mode")
    );
    let lone = parse_str("s.conf", &inst("old_unicast_checksum"));
    assert!(!lone.has_errors() && lone.render().contains("without any unicast peers"), "{}", lone.render());
    // nftables [TABLE], nftables_priority (below IPVS's 99), nftables_counters; nftables
    // resets the priority to -1 and may be given once (keepalived's handlers).
    let g = |text: &str| parse_str("s.conf", &format!("global_defs {{\n{text}\n}}\n{}", inst("")));
    let nft = g(" nftables_priority -7\n nftables kadfw\n nftables_counters");
    assert!(!nft.has_errors(), "{}", nft.render());
    let gd = &nft.config.global;
    assert_eq!((gd.nftables.as_deref(), gd.nftables_priority, gd.nftables_counters), (Some("kadfw"), -1, true));
    assert_eq!(g(" nftables").config.global.nftables.as_deref(), Some("keepalived"));
    assert_eq!(g(" nftables\n nftables_priority -7").config.global.nftables_priority, -7);
    assert!(g(" nftables\n nftables other").render().contains("nftables already specified"));
    assert!(g(" nftables_priority 99").render().contains("between"));
    assert!(g(" vrrp_iptables").render().contains("write nftables [TABLE] instead"));
    // interface_up_down_delays { IF DOWN [UP] }: UP 0 when not given, at most 255 s, a later
    // line for an interface wins; a line without delays and extra words only warn.
    let l = parse_str(
        "s.conf",
        &format!("interface_up_down_delays {{\n eth0 1.5 .25\n eth1 2\n eth1 3 1 9\n eth2\n}}\n{}", inst("")),
    );
    assert!(!l.has_errors(), "{}", l.render());
    let got: Vec<(&str, u32, u32)> =
        l.config.interface_up_down_delays.iter().map(|d| (d.iface.as_str(), d.down_us, d.up_us)).collect();
    assert_eq!(got, [("eth0", 1_500_000, 250_000), ("eth1", 3_000_000, 1_000_000), ("eth2", 0, 0)]);
    assert!(l.render().contains("No timeouts specified for eth2") && l.render().contains("Too many parameters"));
    for bad in ["300", "abc", "1 256"] {
        let text = format!("interface_up_down_delays {{\n eth0 {bad}\n}}\n{}", inst(""));
        assert!(first_error(&text).contains("0 to 255 seconds"), "{bad}");
    }
    // garp_extra_if [all] SECONDS (keepalived's vrrp_garp_extra_if_handler): 0-86400 in an
    // instance, 1-86400 in global_defs; the older spellings warn as keepalived does.
    let extra = |text: &str| ok(&inst(text)).vrrp_instances[0].garp_extra_if;
    assert_eq!(extra("garp_extra_if all 60"), Some(GarpExtraIf { secs: 60, all: true }));
    assert_eq!(extra("garp_extra_if 0"), Some(GarpExtraIf { secs: 0, all: false }));
    for bad in ["", " all", " 86401", " 5 some", " -1"] {
        assert!(first_error(&inst(&format!("garp_extra_if{bad}"))).contains("garp_extra_if"), "{bad:?}");
    }
    let global = |text: &str| parse_str("s.conf", &format!("global_defs {{\n {text}\n}}\n{}", inst("")));
    assert_eq!(global("vrrp_garp_extra_if 5 all").config.global.vrrp_garp_extra_if, GarpExtraIf { secs: 5, all: true });
    assert!(global("vrrp_garp_extra_if 0").has_errors());
    let old = global("vrrp_vmac_garp_intvl 7");
    assert_eq!(old.config.global.vrrp_garp_extra_if, GarpExtraIf { secs: 7, all: false });
    assert!(old.render().contains("\"vrrp_vmac_garp_intvl\" is deprecated - please use \"vrrp_garp_extra_if\""));
    assert_eq!(extra("vmac_garp_intvl all 3"), Some(GarpExtraIf { secs: 3, all: true }));
    // A MAC of its own, in either order with the name; five octets take the VRID as sixth.
    let mac = |text: &str| ok(&inst(text)).vrrp_instances[0].use_vmac.clone().and_then(|u| u.mac);
    assert_eq!(mac("use_vmac 02:00:5e:a:b:C1"), Some(VmacMac::Full([2, 0, 0x5e, 0xa, 0xb, 0xc1])));
    assert_eq!(mac("use_vmac 02:1:2:3:4:5:"), Some(VmacMac::Full([2, 1, 2, 3, 4, 5])));
    assert_eq!(mac("use_vmac 02:1:2:3:4"), Some(VmacMac::Vrid([2, 1, 2, 3, 4])));
    assert_eq!(mac("use_vmac 02:1:2:3:4:"), Some(VmacMac::Vrid([2, 1, 2, 3, 4])));
    assert_eq!(VmacMac::Vrid([2, 1, 2, 3, 4]).with_vrid(51), [2, 1, 2, 3, 4, 51]);
    let both = ok(&inst("use_vmac 02:00:00:00:00:01 vip51")).vrrp_instances[0].use_vmac.clone();
    assert_eq!(both, Some(UseVmac { name: Some("vip51".into()), mac: Some(VmacMac::Full([2, 0, 0, 0, 0, 1])) }));
    for bad in ["02:1:2:3", "02:1:2:3:4:5:6", "02:1:2:3:4::", "02:1:2:3:4:123", "02:1:2:3:4:g", "02::2:3:4:5"] {
        assert!(first_error(&inst(&format!("use_vmac {bad}"))).contains("is invalid"), "{bad}");
    }
    assert!(first_error(&inst("use_vmac 03:00:00:00:00:01")).contains("is multicast"));
    assert!(first_error(&inst("use_vmac 00:00:5e:00:02:01")).contains("RFC 5798"));
    assert_eq!(mac("use_vmac 00:00:5e:00:03:01"), Some(VmacMac::Full([0, 0, 0x5e, 0, 3, 1])));
    assert!(first_error(&inst("use_vmac 02:0:0:0:0:1 02:0:0:0:0:2")).contains("already given"));
    let strict_mac = format!("global_defs {{\n vrrp_strict\n}}\n{}", inst("use_vmac 02:00:00:00:00:01"));
    assert!(first_error(&strict_mac).contains("incompatible with vrrp_strict"));
    assert!(first_error(&inst("use_vmac bad/name")).contains("not a valid interface name"));
    assert!(first_error(&inst("use_vmac averyveryverylongname")).contains("not a valid interface name"));
    assert!(first_error(&inst("vmac_xmit_base")).contains("only valid with a vmac"));
    assert!(first_error(&inst("use_vmac\n unicast_peer {\n  192.0.2.2\n }")).contains("requires vmac_xmit_base"));
    let v6 = "use_vmac\n virtual_ipaddress {\n  2001:db8::10/64\n }";
    let v6_only = |extra: &str| inst(extra).replace(" virtual_ipaddress {\n  192.0.2.10/24\n }\n", "");
    assert!(ok(&v6_only(v6)).vrrp_instances[0].use_vmac.is_some());
    assert!(ok(&v6_only(&format!("{v6}\n vmac_xmit_base"))).vrrp_instances[0].vmac_xmit_base);
    let strict = format!("global_defs {{\n vrrp_strict\n}}\n{}", inst("use_vmac\n vmac_xmit_base"));
    assert!(first_error(&strict).contains("incompatible with vrrp_strict"));
    // auth_type AH: VRRPv2 only. vrrp_strict drops any authentication, with keepalived's words
    // (its strict peers send and expect none).
    let ah = "authentication {\n  auth_type AH\n  auth_pass s3cret\n }";
    assert!(ok(&inst(ah)).vrrp_instances[0].authentication.is_some());
    for auth in [ah, "authentication {\n  auth_type PASS\n  auth_pass s3cret\n }"] {
        let l = parse_str("s.conf", &format!("global_defs {{\n vrrp_strict\n}}\n{}", inst(auth)));
        assert!(!l.has_errors(), "{}", l.render());
        assert!(l.config.vrrp_instances[0].authentication.is_none());
        assert!(l.render().contains("Strict mode does not support authentication. Ignoring."), "{}", l.render());
    }
    assert!(
        first_error(&inst(&format!("version 3\n {ah}"))).contains("AH authentication exists only in VRRP version 2")
    );
}

/// keepalived's `vrrp_complete_instance` for a sync group member and for the address owner:
/// no floating priority, so weighted tracking is reset to weight 0 or dropped, with its
/// config errors (warnings here); an instance in no group keeps its weights.
#[test]
fn sync_group_members_and_the_address_owner_track_without_weights() {
    let text = |prio: u8, group: bool| {
        let g = if group { "vrrp_sync_group G {\n group {\n  VI_1\n }\n}\n" } else { "" };
        format!(
            "vrrp_script chk {{\n script /bin/true\n weight 20\n}}\nvrrp_script plain {{\n script /bin/true\n}}\n\
             vrrp_track_file f1 {{\n file /tmp/f1\n}}\nvrrp_track_file f5 {{\n file /tmp/f5\n weight 5\n}}\n{g}\
             vrrp_instance VI_1 {{\n interface eth0\n virtual_router_id 1\n priority {prio}\n\
             track_interface {{\n  eth1 weight -10\n  eth2\n }}\n track_script {{\n  chk\n  plain\n }}\n\
             track_file {{\n  f1\n  f5\n }}\n}}\n"
        )
    };
    let names = |v: &[Tracked]| v.iter().map(|t| (t.name.clone(), t.weight)).collect::<Vec<_>>();
    let s = |n: &str, w: Option<i32>| (n.to_string(), w);
    // A member: interfaces fault-track, the weighted script goes, f1 (weight 1) fault-tracks.
    let l = parse_str("m.conf", &text(100, true));
    assert!(!l.has_errors(), "{}", l.render());
    let v = &l.config.vrrp_instances[0];
    assert_eq!(names(&v.track_interface), [s("eth1", Some(0)), s("eth2", None)]);
    assert_eq!(names(&v.track_script), [s("plain", None)]);
    assert_eq!(names(&v.track_file), [s("f1", Some(0))]);
    let r = l.render();
    for want in [
        "(VI_1) ignoring eth1 tracked interface weight due to SYNC group",
        "(VI_1) ignoring tracked script chk with weights due to SYNC group",
        "(VI_1) ignoring weight from tracked file f1 due to SYNC group. specify weight 0",
        "(VI_1) ignoring tracked file f5 with weight 5 due to SYNC group",
    ] {
        assert!(r.contains(want), "{want}:\n{r}");
    }
    // The address owner: the weighted interface is not tracked at all.
    let l = parse_str("o.conf", &text(255, false));
    let v = &l.config.vrrp_instances[0];
    assert_eq!(names(&v.track_interface), [s("eth2", None)]);
    assert!(l.render().contains("(VI_1) ignoring eth1 tracked interface due to address owner"), "{}", l.render());
    // Neither: the weights stay.
    let l = parse_str("n.conf", &text(100, false));
    let v = &l.config.vrrp_instances[0];
    assert_eq!(names(&v.track_interface), [s("eth1", Some(-10)), s("eth2", None)]);
    assert_eq!(v.track_script.len(), 2);
    assert_eq!(v.track_file.len(), 2);
}

/// `sync_group_tracking_weight` (keepalived's sgroup_tracking_weight) lets a member keep its
/// weighted tracking; `global_tracking` is its deprecated spelling, with keepalived's config
/// error as a warning.
#[test]
fn global_tracking_is_sync_group_tracking_weight_with_a_warning() {
    let text = |flag: &str| {
        format!(
            "vrrp_script chk {{\n script /bin/true\n weight 20\n}}\n\
             vrrp_sync_group G {{\n group {{\n  VI_1\n }}\n {flag}\n}}\n\
             vrrp_instance VI_1 {{\n interface eth0\n virtual_router_id 1\n priority 100\n\
             track_interface {{\n  eth1 weight -10\n }}\n track_script {{\n  chk\n }}\n}}\n"
        )
    };
    for flag in ["sync_group_tracking_weight", "global_tracking"] {
        let l = parse_str("g.conf", &text(flag));
        assert!(!l.has_errors(), "{}", l.render());
        let v = &l.config.vrrp_instances[0];
        assert_eq!((v.track_interface[0].weight, v.track_script.len()), (Some(-10), 1), "{flag}");
        assert!(l.config.vrrp_sync_groups[0].tracking_weight);
        let deprecated = l.render().contains("(G) global_tracking is deprecated");
        assert_eq!(deprecated, flag == "global_tracking", "{}", l.render());
        assert!(!l.render().contains("SYNC group"), "{}", l.render());
    }
}

/// A url's regex settings as keepalived's url end handler leaves them: options without a
/// pattern dropped and offsets the wrong way round reset (keepalived only logs both), an
/// unknown option ignored; stricter on purpose: a pattern or a JIT stack PCRE2 refuses is an
/// error (keepalived checks such a url without its regex, or with its default stack).
#[test]
fn url_regex_settings_as_keepalived_leaves_them() {
    let conf = |lines: &str| {
        format!(
            "virtual_server 192.0.2.10 80 {{\n protocol TCP\n real_server 198.51.100.11 80 {{\n  HTTP_GET {{\n   url {{\n    \
             path /\n{lines}\n   }}\n  }}\n }}\n}}\n"
        )
    };
    let regex = |c: &Config| match &c.virtual_servers[0].real_servers[0].checkers[0].kind {
        CheckKind::HttpGet { urls, .. } => urls[0].regex.clone(),
        _ => None,
    };
    let l = parse_str("r.conf", &conf("regex_no_match\nregex_min_offset 3"));
    assert!(!l.has_errors() && regex(&l.config).is_none(), "{}", l.render());
    assert!(l.render().contains("regex parameters specified without regex"), "{}", l.render());
    let l = parse_str("r.conf", &conf("regex ok\nregex_min_offset 5\nregex_max_offset 2"));
    let r = regex(&l.config).unwrap();
    assert_eq!((r.min_offset, r.max_offset), (0, None));
    assert!(l.render().contains("regex min offset 5 > regex_max_offset 2 - ignoring"), "{}", l.render());
    let l = parse_str("r.conf", &conf("regex ok\nregex_options nosuch caseless firstline"));
    assert!(!l.has_errors(), "{}", l.render());
    assert_eq!(regex(&l.config).unwrap().options, ["caseless", "firstline"]);
    assert!(l.render().contains("unknown option `nosuch`"), "{}", l.render());
    let e = first_error(&conf("regex \"ok(\""));
    assert!(e.starts_with("bad.conf:7:7: error: regex `ok(`: PCRE2 refuses it"), "{e}");
    assert!(first_error(&conf("regex ok ko")).contains("regex takes one pattern"));
    assert!(first_error(&conf("regex ok\\")).contains("lone backslash"));
    let l = parse_str("r.conf", &conf("regex ok\nregex_stack 32768 1048576"));
    assert_eq!(regex(&l.config).unwrap().jit_stack, Some((32768, 1048576)));
    assert!(first_error(&conf("regex ok\nregex_stack 0 0")).contains("regex_stack"));
    assert!(first_error(&conf("regex ok\nregex_stack 2048 1024")).contains("above the largest"));
}

#[test]
fn enable_sni_is_an_ssl_get_option() {
    let conf = |checker: &str, opt: &str| {
        format!(
            "virtual_server 192.0.2.10 443 {{\n protocol TCP\n lb_kind NAT\n real_server 198.51.100.2 443 {{\n  {checker} {{\n   \
             url {{\n    path /\n   }}\n   virtualhost www.example\n   {opt}\n  }}\n }}\n}}\n"
        )
    };
    let sni = |c: &Config| match &c.virtual_servers[0].real_servers[0].checkers[0].kind {
        CheckKind::SslGet { enable_sni, .. } => Some(*enable_sni),
        _ => None,
    };
    assert_eq!(sni(&ok(&conf("SSL_GET", ""))), Some(false), "keepalived sends no SNI by default");
    assert_eq!(sni(&ok(&conf("SSL_GET", "enable_sni"))), Some(true));
    assert_eq!(sni(&ok(&conf("SSL_GET", "enable_sni false"))), Some(false));
    // keepalived reads it in HTTP_GET too (no handshake there).
    assert_eq!(sni(&ok(&conf("HTTP_GET", "enable_sni"))), None);
    assert!(first_error(&conf("SSL_GET", "enable_sni maybe")).contains("true/false"));
}

#[test]
fn native_ipv6_makes_an_ipv6_instance() {
    let inst = |extra: &str, vip: &str| {
        format!(
            "vrrp_instance VI_1 {{\n interface eth0\n virtual_router_id 1\n native_ipv6\n{extra} virtual_ipaddress {{\n  {vip}\n }}\n}}\n"
        )
    };
    let c = ok(&inst("", "2001:db8::10/64"));
    assert_eq!(c.vrrp_instances[0].vrrp_version(&c.global), 3);
    let e = first_error(&inst("", "192.0.2.10/24"));
    assert!(e.contains("native_ipv6 with IPv4 virtual addresses"), "{e}");
}

#[test]
fn vrrp_min_garp_keeps_what_was_set_before_it() {
    let garp = |globals: &str| {
        let g = ok(&format!("global_defs {{\n{globals}\n}}\n")).global;
        (
            g.vrrp_garp_master_delay,
            g.vrrp_garp_master_repeat,
            g.vrrp_garp_master_refresh,
            g.vrrp_garp_master_refresh_repeat,
        )
    };
    assert_eq!(garp(""), (5, 5, 0, 1));
    assert_eq!(garp(" vrrp_min_garp"), (0, 1, 0, 0));
    assert_eq!(garp(" vrrp_min_garp false"), (5, 5, 0, 1));
    assert_eq!(garp(" vrrp_garp_master_delay 2\n vrrp_garp_master_repeat 3\n vrrp_min_garp"), (2, 3, 0, 0));
    assert_eq!(garp(" vrrp_min_garp\n vrrp_garp_master_repeat 3"), (0, 3, 0, 0));
}

/// keepalived 2.2.7's `weight` in a virtual_server (check_parser.c `vs_weight_handler`,
/// check_data.c): the weight of every real server without its own, wherever it stands in
/// the block; a real server's own weight, 0 included, wins; 0 is out of range.
#[test]
fn a_virtual_servers_weight_is_its_real_servers_default() {
    let c = ok("virtual_server 192.0.2.1 80 {\n protocol TCP\n real_server 198.51.100.1 80 {\n }\n \
                real_server 198.51.100.2 80 {\n  weight 0\n }\n weight 5\n \
                real_server 198.51.100.3 80 {\n  weight 2\n }\n real_server 198.51.100.4 80 {\n }\n}\n\
                virtual_server 192.0.2.2 80 {\n protocol TCP\n real_server 198.51.100.1 80 {\n }\n}\n");
    let weights: Vec<u32> = c.virtual_servers[0].real_servers.iter().map(|r| r.weight).collect();
    assert_eq!(weights, [5, 0, 2, 5]);
    assert_eq!(c.virtual_servers[1].real_servers[0].weight, 1);
    let e = first_error("virtual_server 192.0.2.1 80 {\n weight 0\n}\n");
    assert!(e.starts_with("bad.conf:2:") && e.contains("weight"), "{e}");
}

/// keepalived 2.2.7's address flags (vrrp_ipaddress.c `parse_ipaddress`): `home`,
/// `mngtmpaddr`, `noprefixroute` and `autojoin` are IFA_F_* bits the address is added with,
/// `-nodad` lets IPv6 duplicate address detection run; `peer` makes a host address with that
/// peer, and keepalived's errors about it are errors here. A
/// unicast peer's TTL range is kept, and turns `check_unicast_src` on (`alloc_vrrp_unicast_peer`);
/// a value that is not a TTL, or a range with nothing in it, is an error as there.
#[test]
fn address_flags_and_peers_are_kept_as_keepalived() {
    let c = ok("vrrp_instance V {\n interface eth0\n virtual_router_id 1\n priority 100\n virtual_ipaddress {\n  \
                192.0.2.1/24 noprefixroute home\n  192.0.2.2/24\n }\n virtual_ipaddress_excluded {\n  \
                2001:db8::1/64 -nodad mngtmpaddr autojoin\n }\n}\n");
    let v = &c.vrrp_instances[0];
    let (a, x) = (&v.virtual_ipaddress, &v.virtual_ipaddress_excluded);
    assert_eq!((a[0].flags, a[0].dad), (model::IFA_F_NOPREFIXROUTE | model::IFA_F_HOMEADDRESS, false));
    assert_eq!((a[1].flags, a[1].dad), (0, false));
    assert_eq!((x[0].flags, x[0].dad), (model::IFA_F_MANAGETEMPADDR | model::IFA_F_MCAUTOJOIN, true));
    let inst =
        |body: &str| format!("vrrp_instance V {{\n interface eth0\n virtual_router_id 1\n priority 100\n{body}}}\n");
    // `peer`: a host address with the peer as IFA_ADDRESS; keepalived's errors.
    let c = ok(&inst(
        " virtual_ipaddress {\n  192.0.2.1 peer 192.0.2.9\n }\n virtual_ipaddress_excluded {\n  2001:db8::1/128 peer 2001:db8::2\n }\n",
    ));
    let (a, x) = (&c.vrrp_instances[0].virtual_ipaddress, &c.vrrp_instances[0].virtual_ipaddress_excluded);
    assert_eq!((a[0].prefix, a[0].peer), (32, Some("192.0.2.9".parse().unwrap())));
    assert_eq!(
        (x[0].prefix, x[0].peer, x[0].preferred_lifetime()),
        (128, Some("2001:db8::2".parse().unwrap()), Some(0))
    );
    for (line, at, says) in [
        ("192.0.2.1 peer 192.0.2.9/24", "6:18", "invalid peer address"),
        ("192.0.2.1 peer 2001:db8::2", "6:18", "does not match the address family"),
        ("192.0.2.1 peer 192.0.2.9 peer 192.0.2.8", "6:33", "another peer"),
        ("192.0.2.1/24 peer 192.0.2.9", "6:3", "cannot specify address prefix /24"),
        ("192.0.2.1 brd 192.0.2.255 peer 192.0.2.9", "6:13", "broadcast and peer"),
        ("192.0.2.1 peer", "6:13", "peer"),
        ("192.0.2.1 dev eth1 use_vmac", "6:22", "`use_vmac` (a VMAC of this address's own interface"),
    ] {
        let e = first_error(&inst(&format!(" virtual_ipaddress {{\n  {line}\n }}\n")));
        assert!(e.starts_with(&format!("bad.conf:{at}: error:")) && e.contains(says), "{line}: {e}");
    }
    let c = ok(&inst(" unicast_peer {\n  192.0.2.2 min_ttl 1 max_ttl 10\n  192.0.2.3\n }\n"));
    let v = &c.vrrp_instances[0];
    let two: std::net::IpAddr = "192.0.2.2".parse().unwrap();
    assert_eq!(v.unicast_peer_ttl, [model::PeerTtl { addr: two, min: 1, max: 10 }]);
    assert!(v.check_unicast_src);
    let e = first_error(&inst(" unicast_peer {\n  192.0.2.2 min_ttl x\n }\n"));
    assert!(e.starts_with("bad.conf:6:21: error:") && e.contains("min_ttl"), "{e}");
    let e = first_error(&inst(" unicast_peer {\n  192.0.2.2 min_ttl 9 max_ttl 5\n }\n"));
    assert!(e.starts_with("bad.conf:6:3: error:") && e.contains("all packets will be discarded"), "{e}");
}

/// `track_group`: each instance a group lists tracks the interface of every static address
/// (its `dev`, else the default interface), route (`dev`) and rule (`iif`) naming the group,
/// once each; `no_track` and unknown instances are warned about and skipped; a group used
/// before its block, a route without `dev` and a virtual address with `track_group` are errors,
/// as keepalived 2.2.7 reports them.
#[test]
fn track_groups_make_instances_track_their_static_interfaces() {
    let inst = |name: &str| {
        let id = if name == "VI_2" { 2 } else { 1 };
        format!("vrrp_instance {name} {{\n interface v0\n virtual_router_id {id}\n priority 100\n}}\n")
    };
    let text = format!(
        "global_defs {{\n default_interface v9\n}}\ntrack_group TG {{\n group {{\n  VI_1\n  VI_NONE\n }}\n}}\n\
         static_ipaddress {{\n 192.0.2.20/32 track_group TG\n 192.0.2.21/32 dev a1 track_group TG\n \
         192.0.2.22/32 dev a2 track_group TG no_track\n 192.0.2.23/32 dev a1 track_group TG\n}}\n\
         static_routes {{\n 198.51.100.0/24 dev r1 track_group TG\n}}\n\
         static_rules {{\n from 192.0.2.0/24 iif i1 table 100 priority 10 track_group TG\n}}\n{}{}",
        inst("VI_1"),
        inst("VI_2")
    );
    let l = parse_str("t.conf", &text);
    assert!(!l.has_errors(), "{}", l.render());
    let tracks = |name: &str| l.config.vrrp_instances.iter().find(|v| v.name == name).unwrap().track_static.clone();
    assert_eq!(tracks("VI_1"), ["v9", "a1", "r1", "i1"]);
    assert!(tracks("VI_2").is_empty());
    let out = l.render();
    assert!(out.contains("Static address has both track_group and no_track set - not tracking"), "{out}");
    assert!(out.contains("vrrp instance VI_NONE specified in track group TG doesn't exist - ignoring"), "{out}");

    for (bad, why) in [
        (
            "static_ipaddress {\n 192.0.2.20/32 dev v0 track_group TG\n}\ntrack_group TG {\n group {\n  VI_1\n }\n}\n",
            "track_group TG not found",
        ),
        (
            "track_group TG {\n group {\n  VI_1\n }\n}\nstatic_routes {\n 198.51.100.0/24 via 192.0.2.1 track_group TG\n}\n",
            "Static route cannot have track group if no oif specified",
        ),
        (
            "track_group TG {\n group {\n  VI_1\n }\n}\nstatic_rules {\n from all table 100 priority 5 track_group TG\n}\n",
            "Static rule cannot have track_group if dev/iif not specified",
        ),
        (
            "track_group TG {\n group {\n  VI_1\n }\n}\ntrack_group TG {\n group {\n  VI_1\n }\n}\n",
            "track_group TG already defined",
        ),
        ("static_ipaddress {\n 192.0.2.20/32 dev v0 valid_lft 10\n}\n", "unknown address option `valid_lft`"),
    ] {
        let l = parse_str("t.conf", bad);
        assert!(l.has_errors() && l.render().contains(why), "{bad}: {}", l.render());
    }
    let virt = format!(
        "track_group TG {{\n group {{\n  VI_1\n }}\n}}\n{}",
        inst("VI_1")
            .replace(" priority 100\n", " priority 100\n virtual_ipaddress {\n  192.0.2.50/24 track_group TG\n }\n")
    );
    let l = parse_str("t.conf", &virt);
    assert!(l.has_errors() && l.render().contains("track_group is only for static"), "{}", l.render());
}

/// `instance`, `use_pid_dir` and `reload_file` without a path, as keepalived 2.2.7's
/// `instance_handler` and `init_global_data`: the reload file's default follows the instance
/// name (read anywhere in the file), else `use_pid_dir`; a second `instance` is an error.
#[test]
fn instance_and_use_pid_dir_settle_the_reload_files_default() {
    let reload = |text: &str| parse_str("t.conf", text).config.global.reload_file.map(|p| p.display().to_string());
    let g = "global_defs {\n reload_file\n data_use_instance\n}\n";
    assert_eq!(reload(g).as_deref(), Some("/run/keepalived.reload"));
    assert_eq!(reload(&format!("{g}use_pid_dir\n")).as_deref(), Some("/run/keepalived/keepalived.reload"));
    assert_eq!(reload(&format!("{g}instance web\n")).as_deref(), Some("/run/keepalived/keepalived_web.reload"));
    let named = "instance web\nglobal_defs {\n reload_file /tmp/r\n}\n";
    assert_eq!(reload(named).as_deref(), Some("/tmp/r"));
    let l = parse_str("t.conf", &format!("{g}instance web\n"));
    assert!(l.config.global.data_use_instance && l.config.global.use_pid_dir);
    let l = parse_str("t.conf", "instance web\ninstance db\n");
    assert!(l.has_errors() && l.render().contains("Duplicate instance definition db - ignoring"), "{}", l.render());
    assert_eq!(l.config.global.instance.as_deref(), Some("web"));
}
