//! The core driven with events only: no sockets, no tasks, no maps.

use std::net::SocketAddr;

use super::*;
use crate::control::{Leaving, Request};
use crate::{
    check::health::{CheckState, Report},
    script::Runner,
};

const VS: &str = "203.0.113.10:80/tcp";

/// Two real servers with a TCP check each, quorum 2, a sorry server, scripts and mail.
fn conf(weight: u32, extra: &str) -> String {
    format!(
        "global_defs {{\n smtp_server 127.0.0.1 25\n notification_email {{\n  ops@example.com\n }}\n}}\n\
         virtual_server 203.0.113.10 80 {{\n protocol TCP\n lb_algo rr\n quorum 2\n quorum_down /bin/true\n omega\n \
         sorry_server 198.51.100.99 80\n \
         real_server 198.51.100.11 80 {{\n  weight {weight}\n  notify_down /bin/false\n  smtp_alert\n  TCP_CHECK {{\n  }}\n }}\n \
         real_server 198.51.100.12 80 {{\n  TCP_CHECK {{\n  }}\n }}\n}}\n{extra}"
    )
}

const VRRP: &str = "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 1\n priority 100\n \
                    virtual_ipaddress {\n  203.0.113.10\n }\n}\n";

fn load(text: &str) -> Loaded {
    let l = config::parse_str("t.conf", text);
    assert!(!l.has_errors(), "{}", l.render());
    l
}

fn checks(l: &Loaded) -> Checks {
    check::specs(&l.config, &Runner::new(&l.config.global).unwrap())
}

/// A node that has started (every checker running, services programmed).
fn started(text: &str, backend: Option<BackendKind>) -> Node {
    let l = load(text);
    let c = checks(&l);
    let mut n = Node::new(l, Subsystems::All, backend, 42, "/etc/keepalived/keepalived.conf".into());
    n.on_event(Event::Start { checks: c });
    assert!(n.on_event(Event::Programmed { result: Ok(()), at: Instant::now() }).is_empty());
    n
}

fn reload(n: &mut Node, text: &str) -> Vec<Action> {
    let l = load(text);
    let (checks, rollback_checks) = (checks(&l), checks(&load(&conf(1, ""))));
    n.on_event(Event::Reload { loaded: Box::new(l), checks, rollback_checks, started: Instant::now() })
}

/// The command of a `RunScript`, or of each `RunScriptsAndWait` script (locations aside).
fn commands(a: &Action) -> Vec<&str> {
    match a {
        Action::RunScript(s) => vec![s.command.as_str()],
        Action::RunScriptsAndWait(v) => v.iter().map(|s| s.command.as_str()).collect(),
        _ => Vec::new(),
    }
}

fn real(last: u8) -> SocketAddr {
    SocketAddr::from(([198, 51, 100, last], 80))
}

fn report(last: u8, up: bool) -> Event {
    let id = CheckId { service: VS.into(), real: real(last), index: 0 };
    Event::Report(Report {
        id,
        state: CheckState { up, weight: None, offset: 0, reason: "TCP_CHECK: connect failed".into() },
    })
}

/// The services of the one `Program` among `actions`.
fn programmed(actions: &[Action]) -> &[DesiredService] {
    let p: Vec<&Vec<DesiredService>> =
        actions.iter().filter_map(|a| if let Action::Program(d) = a { Some(d) } else { None }).collect();
    assert_eq!(p.len(), 1, "{actions:?}");
    p[0]
}

fn reals(d: &DesiredService) -> Vec<(SocketAddr, u32)> {
    d.reals.iter().map(|r| (r.addr, r.weight)).collect()
}

#[test]
fn start_runs_every_checker_then_programs() {
    let l = load(&conf(1, ""));
    let c = checks(&l);
    let mut n = Node::new(l, Subsystems::All, Some(BackendKind::Bpf), 42, "k.conf".into());
    let a = n.on_event(Event::Start { checks: c });
    assert!(matches!((&a[0], &a[1]), (Action::StartChecker(..), Action::StartChecker(..))), "{a:?}");
    let d = programmed(&a);
    assert_eq!((d[0].name.as_str(), reals(&d[0]), d[0].quorum_up), (VS, vec![(real(11), 1), (real(12), 1)], true));
    assert_eq!(n.checkers(), 2);
    // A failure to program at start ends the daemon.
    let a = n.on_event(Event::Programmed { result: Err("the pool is full".into()), at: Instant::now() });
    assert_eq!(a, [Action::Abort("the pool is full".into())]);
}

#[test]
fn vrrp_only_runs_no_checkers_and_programs_nothing() {
    let l = load(&conf(1, ""));
    let c = checks(&l);
    let mut n = Node::new(l, Subsystems::VrrpOnly, None, 42, "k.conf".into());
    assert!(n.on_event(Event::Start { checks: c }).is_empty());
    assert!(n.on_event(report(11, false)).is_empty(), "no checker ran: no verdict");
    let a = n.on_event(Event::Tick(Tick::Publish { vrrp: Vec::new(), backend: None }));
    // keepalived's VRRP process keeps its accept-mode firewall rules with -P too.
    assert!(matches!(a.as_slice(), [Action::Fence(f), Action::Publish(_)] if f.is_empty()), "{a:?}");
}

#[test]
fn a_real_server_going_down_notifies_mails_settles_quorum_and_reprograms() {
    let mut n = started(&conf(1, ""), Some(BackendKind::Bpf));
    let a = n.on_event(report(11, false));
    assert_eq!(commands(&a[0]), ["/bin/false"], "its notify_down");
    // keepalived's notify_fifo lines, in the order of the changes.
    let vs = "[203.0.113.10]:tcp:80";
    assert_eq!(a[1], Action::Fifo(Stream::Lvs, format!("RS [198.51.100.11]:tcp:80 {vs} DOWN\n")));
    assert_eq!(
        a[2],
        Action::Mail {
            subject: format!("Realserver 198.51.100.11:80 of virtual server {VS} - DOWN"),
            body: "=> TCP_CHECK: connect failed <=".into()
        }
    );
    // Live weight 1 is below quorum 2: quorum_down runs (no mail: the real server's
    // smtp_alert does not cover its service's quorum).
    assert_eq!(commands(&a[3]), ["/bin/true"]);
    assert_eq!(a[4], Action::Fifo(Stream::Lvs, format!("VS {vs} DOWN\n")));
    let d = programmed(&a);
    assert_eq!((reals(&d[0]), d[0].quorum_up), (vec![(real(12), 1)], false));
    assert_eq!(a.len(), 6, "{a:?}");
    // A failed apply of a health change is only logged.
    assert!(n.on_event(Event::Programmed { result: Err("x".into()), at: Instant::now() }).is_empty());
    // The same verdict again changes nothing.
    assert!(n.on_event(report(11, false)).is_empty());
    let a = n.on_event(report(11, true));
    assert!(programmed(&a)[0].quorum_up);
    assert!(!a.iter().any(|a| matches!(a, Action::RunScript(_))), "no notify_up, no quorum_up configured: {a:?}");
}

#[test]
fn a_reload_without_vrrp_changes_programs_at_once() {
    let mut n = started(&conf(1, ""), Some(BackendKind::Bpf));
    let a = reload(&mut n, &conf(3, ""));
    assert!(!a.iter().any(|a| matches!(a, Action::StopChecker(_) | Action::StartChecker(..))), "{a:?}");
    assert_eq!(reals(&programmed(&a)[0]), [(real(11), 3), (real(12), 1)]);
    assert!(n.on_event(Event::Programmed { result: Ok(()), at: Instant::now() }).is_empty());
    assert_eq!(n.config().virtual_servers[0].real_servers[0].weight, 3);
}

#[test]
fn a_reload_with_vrrp_changes_waits_for_vrrp_then_programs() {
    let mut n = started(&conf(1, VRRP), Some(BackendKind::Bpf));
    let changed = conf(1, &VRRP.replace("priority 100", "priority 120"));
    let a = reload(&mut n, &changed);
    assert!(matches!(a.as_slice(), [Action::ReloadVrrp(c)] if c.vrrp_instances[0].priority == 120), "{a:?}");
    let a = n.on_event(Event::VrrpReloaded(Err("the VRRP engine is not running".into())));
    programmed(&a);
    n.on_event(Event::Programmed { result: Ok(()), at: Instant::now() });
    // VRRP did not take it: the next reload tries again; once it did, an identical reload
    // leaves VRRP alone.
    let a = reload(&mut n, &changed);
    assert!(matches!(a.as_slice(), [Action::ReloadVrrp(_)]), "{a:?}");
    programmed(&n.on_event(Event::VrrpReloaded(Ok("1 updated in place".into()))));
    n.on_event(Event::Programmed { result: Ok(()), at: Instant::now() });
    programmed(&reload(&mut n, &changed));
}

#[test]
fn a_reload_that_cannot_be_programmed_goes_back() {
    let mut n = started(&conf(1, ""), Some(BackendKind::Bpf));
    let bigger = conf(
        1,
        "virtual_server 203.0.113.20 80 {\n protocol TCP\n real_server 198.51.100.21 80 {\n  TCP_CHECK {\n  }\n }\n}\n",
    );
    let a = reload(&mut n, &bigger);
    assert!(matches!(&a[0], Action::StartChecker(id, ..) if id.real == real(21)), "{a:?}");
    assert_eq!(programmed(&a).len(), 2);
    let a = n.on_event(Event::Programmed { result: Err("the pool is full".into()), at: Instant::now() });
    assert!(matches!(&a[0], Action::StopChecker(id) if id.real == real(21)), "{a:?}");
    assert_eq!(programmed(&a).len(), 1);
    assert_eq!(n.config().virtual_servers.len(), 1, "the running configuration is back");
    assert_eq!(n.checkers(), 2);
    // Neither a failure nor a success of the rollback asks for more.
    assert!(n.on_event(Event::Programmed { result: Err("still full".into()), at: Instant::now() }).is_empty());
}

#[test]
fn connection_sync_follows_its_vrrp_instance() {
    let text = format!("global_defs {{\n lvs_sync_daemon eth1 VI_1 id 9 port 8850 group 239.1.1.81\n}}\n{VRRP}");
    let mut n = started(&text, Some(BackendKind::Ipvs));
    let publish = |n: &mut Node, state| {
        let vrrp = vec![VrrpStatus { instance: "VI_1".into(), state, ..Default::default() }];
        n.on_event(Event::Tick(Tick::Publish { vrrp, backend: None }))
    };
    let mcast = crate::dataplane::SyncMcast {
        port: Some(8850),
        group: Some("239.1.1.81".parse().unwrap()),
        ..Default::default()
    };
    let want = |role| Action::SetSync(Some(SyncWant { role, interface: "eth1".into(), sync_id: 9, mcast }));
    let a = publish(&mut n, vrrp::State::Backup);
    assert_eq!(a[0], want(SyncRole::Backup));
    assert!(matches!(&a[1], Action::Publish(s) if s.pid == 42 && s.vrrp[0].instance == "VI_1"), "{a:?}");
    assert_eq!(publish(&mut n, vrrp::State::Backup).len(), 1, "set once");
    assert_eq!(publish(&mut n, vrrp::State::Master)[0], want(SyncRole::Master));
    // Without a backend (-P) there is nothing to sync.
    let mut p = started(&text, None);
    let a = publish(&mut p, vrrp::State::Master);
    assert!(!a.iter().any(|a| matches!(a, Action::SetSync(_))), "{a:?}");
    // An instance that does not exist: no sync at all (keepalived clears its sync config).
    let mut x = started(&text.replace("eth1 VI_1", "eth1 VI_9"), Some(BackendKind::Ipvs));
    let a = publish(&mut x, vrrp::State::Master);
    assert!(!a.iter().any(|a| matches!(a, Action::SetSync(_))), "{a:?}");
}

/// `lvs_sync_daemon IFACE` naming no instance: master and backup together whatever VRRP does
/// (keepalived 2.2.7 starts both and no transition switches them), sync id 0 unless `id`.
#[test]
fn connection_sync_without_an_instance_runs_master_and_backup() {
    for (opts, sync_id) in [("", 0), (" id 5", 5)] {
        let text = format!("global_defs {{\n lvs_sync_daemon eth1{opts}\n}}\n{VRRP}");
        let mut n = started(&text, Some(BackendKind::Bpf));
        let publish = |n: &mut Node, state| {
            let vrrp = vec![VrrpStatus { instance: "VI_1".into(), state, ..Default::default() }];
            n.on_event(Event::Tick(Tick::Publish { vrrp, backend: None }))
        };
        let want = SyncWant { role: SyncRole::Both, interface: "eth1".into(), sync_id, mcast: Default::default() };
        assert_eq!(publish(&mut n, vrrp::State::Backup)[0], Action::SetSync(Some(want)));
        let a = publish(&mut n, vrrp::State::Master);
        assert!(!a.iter().any(|a| matches!(a, Action::SetSync(_))), "{a:?}");
        // No VRRP at all (active-active nodes behind ECMP): the same.
        let text = format!("global_defs {{\n lvs_sync_daemon eth1{opts}\n}}\n");
        let mut n = started(&text, Some(BackendKind::Bpf));
        let a = n.on_event(Event::Tick(Tick::Publish { vrrp: Vec::new(), backend: None }));
        assert!(matches!(&a[0], Action::SetSync(Some(w)) if w.role == SyncRole::Both && w.sync_id == sync_id), "{a:?}");
    }
}

/// The older per-instance `lvs_sync_daemon_interface IFACE`: connection sync on IFACE
/// follows that instance, with sync id 0 (keepalived 2.2.7's `vrrp_complete_init` takes the
/// VRID only for an instance named by `lvs_sync_daemon`).
#[test]
fn connection_sync_follows_the_instance_naming_lvs_sync_daemon_interface() {
    let text = VRRP.replace(" priority 100\n", " priority 100\n lvs_sync_daemon_interface eth1\n");
    let mut n = started(&text, Some(BackendKind::Ipvs));
    let publish = |n: &mut Node, state| {
        let vrrp = vec![VrrpStatus { instance: "VI_1".into(), state, ..Default::default() }];
        n.on_event(Event::Tick(Tick::Publish { vrrp, backend: None }))
    };
    let want = |role| {
        Action::SetSync(Some(SyncWant { role, interface: "eth1".into(), sync_id: 0, mcast: Default::default() }))
    };
    assert_eq!(publish(&mut n, vrrp::State::Backup)[0], want(SyncRole::Backup));
    assert_eq!(publish(&mut n, vrrp::State::Master)[0], want(SyncRole::Master));
    // Without it, no sync.
    let mut p = started(VRRP, Some(BackendKind::Ipvs));
    let a = publish(&mut p, vrrp::State::Master);
    assert!(!a.iter().any(|a| matches!(a, Action::SetSync(Some(_)))), "{a:?}");
}

#[test]
fn status_shows_every_check_and_lost_quorum() {
    let mut n = started(&conf(1, ""), Some(BackendKind::Bpf));
    n.on_event(report(11, false));
    let s = n.status(Vec::new(), Some(BackendStatus { kind: "bpf".into(), changes: None }));
    assert_eq!((s.pid, s.config.as_str()), (42, "/etc/keepalived/keepalived.conf"));
    assert_eq!(
        s.checks.iter().map(|c| (c.real.as_str(), c.check, c.up)).collect::<Vec<_>>(),
        [("198.51.100.11:80", 1, false), ("198.51.100.12:80", 1, true)]
    );
    assert_eq!(s.quorum_lost, [VS]);
    assert_eq!(s.checker_counters["real_down"], 1);
}

#[test]
fn stop_runs_the_down_scripts_of_what_is_still_up() {
    let mut n = started(&conf(1, ""), Some(BackendKind::Bpf));
    assert_eq!(commands(&n.on_event(Event::Stop)[0]), ["/bin/false", "/bin/true"]);
    n.on_event(report(11, false));
    // 198.51.100.11 is down and the quorum is lost: nothing left to run.
    assert_eq!(n.on_event(Event::Stop), [Action::RunScriptsAndWait(Vec::new())]);
}

#[test]
fn unresolved_next_hops_are_handed_to_the_kernel() {
    let mut n = started(&conf(1, ""), Some(BackendKind::Bpf));
    let ip: IpAddr = "198.51.100.1".parse().unwrap();
    assert_eq!(n.on_event(Event::Tick(Tick::Unresolved(vec![(ip, 3)]))), [Action::Resolve(ip, 3)]);
}

fn control(n: &mut Node, req: Request) -> Result<Vec<Action>, String> {
    let (answer, actions) = n.control(req);
    answer.map(|_| actions)
}

#[test]
fn a_drained_real_server_stays_with_weight_0_until_undrained() {
    let mut n = started(&conf(2, ""), Some(BackendKind::Bpf));
    let a = control(&mut n, Request::Drain { real: real(11), service: None }).unwrap();
    let d = programmed(&a);
    assert_eq!((reals(&d[0]), d[0].quorum_up), (vec![(real(11), 0), (real(12), 1)], true), "no quorum change");
    assert!(!a.iter().any(|a| matches!(a, Action::RunScript(_) | Action::Mail { .. })), "not a failure: {a:?}");
    let s = n.status(Vec::new(), None);
    assert_eq!(s.overrides.len(), 1);
    assert_eq!((s.overrides[0].kind.as_str(), s.overrides[0].weight), ("drained", Some(0)));
    // A checker verdict reprograms with the drain still in force.
    let a = n.on_event(report(12, false));
    assert_eq!(reals(&programmed(&a)[0]), [(real(11), 0)]);
    n.on_event(report(12, true));
    let a = control(&mut n, Request::Undrain { real: real(11), service: Some("203.0.113.10:80".into()) }).unwrap();
    assert_eq!(reals(&programmed(&a)[0]), [(real(11), 2), (real(12), 1)]);
    assert!(n.status(Vec::new(), None).overrides.is_empty());
}

#[test]
fn control_requests_that_name_nothing_change_nothing() {
    let mut n = started(&conf(1, ""), Some(BackendKind::Bpf));
    let e = control(&mut n, Request::Drain { real: real(99), service: None }).unwrap_err();
    assert!(e.contains("198.51.100.99:80 is not a real_server"), "{e}");
    let e = control(&mut n, Request::Drain { real: real(11), service: Some("192.0.2.1:80".into()) }).unwrap_err();
    assert!(e.contains("no virtual_server 192.0.2.1:80") && e.contains(VS), "{e}");
    let e = control(&mut n, Request::Weight { real: real(11), service: None, weight: Some(70000) }).unwrap_err();
    assert!(e.contains("out of range"), "{e}");
    assert!(n.status(Vec::new(), None).overrides.is_empty());
    // -P runs no services: nothing to control.
    let mut p = started(&conf(1, ""), None);
    assert!(control(&mut p, Request::Disable { service: VS.into() }).is_err());
}

#[test]
fn a_weight_applies_while_the_real_server_is_up() {
    let mut n = started(&conf(1, ""), Some(BackendKind::Bpf));
    let a = control(&mut n, Request::Weight { real: real(12), service: None, weight: Some(5) }).unwrap();
    assert_eq!(reals(&programmed(&a)[0]), [(real(11), 1), (real(12), 5)]);
    // Down, it leaves the service as any real server does; up again, the override is back.
    assert_eq!(reals(&programmed(&n.on_event(report(12, false)))[0]), [(real(11), 1)]);
    assert_eq!(reals(&programmed(&n.on_event(report(12, true)))[0]), [(real(11), 1), (real(12), 5)]);
    let a = control(&mut n, Request::Weight { real: real(12), service: None, weight: None }).unwrap();
    assert_eq!(reals(&programmed(&a)[0]), [(real(11), 1), (real(12), 1)]);
}

#[test]
fn a_disabled_service_schedules_nothing_not_even_its_sorry_server() {
    let mut n = started(&conf(1, ""), Some(BackendKind::Bpf));
    let a = control(&mut n, Request::Disable { service: "203.0.113.10:80/tcp".into() }).unwrap();
    let d = &programmed(&a)[0];
    assert_eq!((d.quorum_up, d.sorry, d.reals.len()), (false, None, 2), "real servers stay for their flows");
    assert!(!a.iter().any(|a| matches!(a, Action::RunScript(_))), "no quorum_down: {a:?}");
    let a = control(&mut n, Request::Enable { service: "203.0.113.10:80".into() }).unwrap();
    assert!(programmed(&a)[0].quorum_up);
}

#[test]
fn overrides_outlive_reloads_unless_the_reload_changes_what_they_are_on() {
    let mut n = started(&conf(1, ""), Some(BackendKind::Bpf));
    control(&mut n, Request::Drain { real: real(11), service: None }).unwrap();
    control(&mut n, Request::Weight { real: real(12), service: None, weight: Some(4) }).unwrap();
    control(&mut n, Request::Disable { service: VS.into() }).unwrap();
    // An unrelated change (a new service) keeps all three.
    let other =
        "virtual_server 203.0.113.20 80 {\n protocol TCP\n real_server 198.51.100.21 80 {\n  TCP_CHECK {\n  }\n }\n}\n";
    let a = reload(&mut n, &conf(1, other));
    let d = programmed(&a);
    assert_eq!((reals(&d[0]), d[0].quorum_up), (vec![(real(11), 0), (real(12), 4)], false));
    n.on_event(Event::Programmed { result: Ok(()), at: Instant::now() });
    // Changing 198.51.100.11's block (its weight) clears its drain; the rest stay.
    let a = reload(&mut n, &conf(3, other));
    assert_eq!(reals(&programmed(&a)[0]), [(real(11), 3), (real(12), 4)]);
    // A reload that fails to program goes back to the overrides it replaced.
    let a = n.on_event(Event::Programmed { result: Err("the pool is full".into()), at: Instant::now() });
    assert_eq!(reals(&programmed(&a)[0]), [(real(11), 0), (real(12), 4)]);
    assert_eq!(n.status(Vec::new(), None).overrides.len(), 3);
}

/// The `Preview` a reload to `text` would give.
fn preview(n: &Node, text: &str) -> crate::control::Preview {
    n.preview(&load(text).config)
}

#[test]
fn a_preview_names_each_change_and_nothing_else() {
    let n = started(&conf(1, VRRP), Some(BackendKind::Bpf));
    let same = preview(&n, &conf(1, VRRP));
    assert_eq!(same, crate::control::Preview::default());
    let p = preview(&n, &conf(3, &VRRP.replace("priority 100", "priority 120")));
    let lines: Vec<String> = p.changes.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "vrrp instance priority instance VI_1: 100 -> 120",
            format!("weight service {VS} real 198.51.100.11:80: 1 -> 3").as_str()
        ]
    );
    assert!(p.leaving.is_empty() && p.buckets.is_empty(), "rr has no buckets: {p:?}");
    let fewer = conf(1, VRRP).replace(" real_server 198.51.100.12 80 {\n  TCP_CHECK {\n  }\n }\n", "");
    let p = preview(&n, &fewer);
    assert_eq!(p.leaving, [Leaving { service: VS.into(), keys: vec![VS.into()], real: Some(real(12)) }]);
    assert_eq!(p.changes[0].what, "real server removed");
}

#[test]
fn a_preview_counts_the_maglev_buckets_that_move() {
    let mh = |extra: &str| conf(1, "").replace("lb_algo rr", "lb_algo mh") + extra;
    let n = started(&mh(""), Some(BackendKind::Bpf));
    let p = preview(&n, &mh("").replace("weight 1\n", "weight 2\n"));
    let b = &p.buckets[0];
    assert_eq!((b.service.as_str(), b.scheduler.as_str(), b.total), (VS, "mh", lb_common::consts::MH_TABLE_SIZE));
    // Weights 1:1 -> 2:1: about a sixth of the table changes hands (Maglev moves little).
    let share = f64::from(b.moved) / f64::from(b.total);
    assert!((0.10..0.25).contains(&share), "{b:?}");
    // A drained real server leaves the table too: the preview sees the overrides.
    let mut n = n;
    control(&mut n, Request::Drain { real: real(12), service: None }).unwrap();
    let p = preview(&n, &mh(""));
    assert!(p.buckets.is_empty() && p.changes.is_empty(), "nothing changes against the drained state: {p:?}");
}

#[test]
fn a_preview_covers_only_what_this_node_runs() {
    // -C: VRRP is not ours, so a VRRP-only edit changes nothing here.
    let l = load(&conf(1, VRRP));
    let c = checks(&l);
    let mut n = Node::new(l, Subsystems::CheckersOnly, Some(BackendKind::Bpf), 42, "k.conf".into());
    n.on_event(Event::Start { checks: c });
    n.on_event(Event::Programmed { result: Ok(()), at: Instant::now() });
    assert_eq!(preview(&n, &conf(1, &VRRP.replace("priority 100", "priority 120"))), Default::default());
    // IPVS builds its own tables: no bucket count.
    let mh = conf(1, "").replace("lb_algo rr", "lb_algo mh");
    let n = started(&mh, Some(BackendKind::Ipvs));
    let p = preview(&n, &mh.replace("weight 1\n", "weight 2\n"));
    assert!(p.buckets.is_empty() && !p.changes.is_empty(), "{p:?}");
}

#[test]
fn a_scheduler_change_counts_buckets_under_each_sides_scheduler() {
    let sh = conf(1, "").replace("lb_algo rr", "lb_algo sh");
    let n = started(&sh, Some(BackendKind::Bpf));
    let p = preview(&n, &sh.replace("lb_algo sh", "lb_algo mh"));
    let b = &p.buckets[0];
    assert_eq!((b.scheduler.as_str(), b.total), ("mh", lb_common::consts::MH_TABLE_SIZE));
    assert!(b.moved > b.total / 4, "two unrelated tables share few owners by position: {b:?}");
}

#[test]
fn a_control_request_the_backend_refuses_is_undone() {
    let mut n = started(&conf(1, ""), Some(BackendKind::Bpf));
    control(&mut n, Request::Weight { real: real(11), service: None, weight: Some(3) }).unwrap();
    control(&mut n, Request::Drain { real: real(11), service: None }).unwrap();
    // Drained with a weight waiting: both show.
    let kinds: Vec<String> = n.status(Vec::new(), None).overrides.iter().map(|o| o.kind.clone()).collect();
    assert_eq!(kinds, ["drained", "weight"]);
    control(&mut n, Request::Undrain { real: real(11), service: None }).unwrap();
    assert!(n.on_event(Event::Programmed { result: Err("the pool is full".into()), at: Instant::now() }).is_empty());
    let kinds: Vec<String> = n.status(Vec::new(), None).overrides.iter().map(|o| o.kind.clone()).collect();
    assert_eq!(kinds, ["drained", "weight"], "the undrain did not take: it is undone");
    // A checker's change failing later undoes nothing.
    n.on_event(report(12, false));
    n.on_event(Event::Programmed { result: Err("x".into()), at: Instant::now() });
    assert_eq!(n.status(Vec::new(), None).overrides.len(), 2);
}

#[test]
fn a_parsed_configuration_crosses_the_socket_whole() {
    let l = load(&conf(2, VRRP));
    let text = serde_json::to_string(&l.config).unwrap();
    let back: config::Config = serde_json::from_str(&text).unwrap();
    assert!(config::same(&back, &l.config));
    assert_eq!(back.virtual_servers[0].real_servers[0].weight, 2);
}

/// A burst of verdicts (what queued while the data plane was programmed) is programmed
/// once, with every verdict in it; each still notifies.
#[test]
fn verdicts_that_arrive_together_are_programmed_once() {
    let mut n = started(&conf(1, ""), Some(BackendKind::Bpf));
    let unwrap = |e: Event| match e {
        Event::Report(r) => r,
        _ => unreachable!(),
    };
    let a = n.on_event(Event::Reports(vec![unwrap(report(11, false)), unwrap(report(12, false))]));
    let d = programmed(&a);
    assert_eq!((reals(&d[0]), d[0].quorum_up), (vec![], false), "both real servers out, quorum lost");
    assert_eq!(a.iter().filter(|x| commands(x) == ["/bin/false"]).count(), 1, "11's notify_down: {a:?}");
    // One down and back up within the burst: the last verdict counts, still one programming.
    let a =
        n.on_event(Event::Reports(vec![unwrap(report(11, true)), unwrap(report(12, true)), unwrap(report(12, false))]));
    assert_eq!(reals(&programmed(&a)[0]), vec![(real(11), 1)]);
    // Verdicts that change nothing program nothing.
    assert!(n.on_event(Event::Reports(vec![unwrap(report(12, false))])).is_empty());
}

fn vrrp_status(instance: &str, state: vrrp::State) -> VrrpStatus {
    VrrpStatus { instance: instance.into(), state, ..VrrpStatus::default() }
}

fn fences_of(a: &[Action]) -> Vec<&BTreeMap<IpAddr, u32>> {
    a.iter().filter_map(|a| if let Action::Fence(f) = a { Some(f) } else { None }).collect()
}

/// A service VIP of a VRRP instance is fenced until that instance is MASTER here, from the
/// start (before VRRP runs) and before any programming; a transition changes the fence at once.
#[test]
fn services_of_a_vip_this_node_does_not_hold_are_fenced() {
    use lb_common::consts::FENCE_BACKUP;
    let vip: IpAddr = "203.0.113.10".parse().unwrap();
    let l = load(&conf(1, VRRP));
    let c = checks(&l);
    let mut n = Node::new(l, Subsystems::All, Some(BackendKind::Bpf), 42, "k.conf".into());
    let a = n.on_event(Event::Start { checks: c });
    let fence = a.iter().position(|a| matches!(a, Action::Fence(_))).expect("fenced at start");
    let program = a.iter().position(|a| matches!(a, Action::Program(_))).unwrap();
    assert!(fence < program, "{a:?}");
    assert_eq!(fences_of(&a), [&BTreeMap::from([(vip, FENCE_BACKUP)])]);
    n.on_event(Event::Programmed { result: Ok(()), at: Instant::now() });
    // BACKUP: nothing changes; MASTER: unfenced; BACKUP again: fenced again.
    let backup = |n: &mut Node| n.on_event(Event::Tick(Tick::Vrrp(vec![vrrp_status("VI_1", vrrp::State::Backup)])));
    assert!(fences_of(&backup(&mut n)).is_empty());
    let a = n.on_event(Event::Tick(Tick::Vrrp(vec![vrrp_status("VI_1", vrrp::State::Master)])));
    assert_eq!(fences_of(&a), [&BTreeMap::new()]);
    assert_eq!(fences_of(&backup(&mut n)), [&BTreeMap::from([(vip, FENCE_BACKUP)])]);
    // Without VRRP (-C) nothing is fenced.
    let l = load(&conf(1, VRRP));
    let c = checks(&l);
    let mut n = Node::new(l, Subsystems::CheckersOnly, Some(BackendKind::Bpf), 42, "k.conf".into());
    assert_eq!(fences_of(&n.on_event(Event::Start { checks: c })), [&BTreeMap::new()]);
}

/// keepalived's accept mode: a MASTER that is not the address owner drops its VIPs' traffic
/// with `no_accept`, and under `vrrp_strict` (VRRPv2: even with `accept`); the owner never.
#[test]
fn a_master_without_accept_mode_drops_its_vips_traffic() {
    use lb_common::consts::{FENCE_BACKUP, FENCE_NO_ACCEPT};
    let vip: IpAddr = "203.0.113.10".parse().unwrap();
    let inst = |extra: &str, prio: u8| {
        format!(
            "vrrp_instance VI_1 {{\n interface eth0\n virtual_router_id 1\n priority {prio}\n {extra}\n \
             virtual_ipaddress {{\n  203.0.113.10\n }}\n}}\n"
        )
    };
    let strict = "global_defs {\n vrrp_strict\n}\n";
    let master = [vrrp_status("VI_1", vrrp::State::Master)];
    let cases = [
        (inst("", 100), 0),
        (inst("accept", 100), 0),
        (inst("no_accept", 100), FENCE_NO_ACCEPT),
        (inst("no_accept", 255), 0),
        (format!("{strict}{}", inst("", 100)), FENCE_NO_ACCEPT),
        (format!("{strict}{}", inst("accept", 100)), FENCE_NO_ACCEPT),
        (format!("{strict}{}", inst("version 3\n accept", 100)), 0),
        (format!("{strict}{}", inst("", 255)), 0),
    ];
    for (text, want) in cases {
        let cfg = load(&text).config;
        let want: BTreeMap<IpAddr, u32> = if want == 0 { BTreeMap::new() } else { BTreeMap::from([(vip, want)]) };
        assert_eq!(fences(&cfg, &master), want, "{text}");
        assert_eq!(fences(&cfg, &[]), BTreeMap::from([(vip, FENCE_BACKUP)]), "{text}");
    }
}

fn announced(a: &[Action]) -> Vec<(Option<u32>, Vec<String>)> {
    a.iter()
        .filter_map(|a| match a {
            Action::Announce { table, vips } => Some((*table, vips.iter().map(ToString::to_string).collect())),
            _ => None,
        })
        .collect()
}

const ANYCAST: &str = "global_defs {\n anycast_table 100\n}\n\
    virtual_server 203.0.113.10 80 {\n protocol TCP\n lb_algo mh\n lb_kind DR\n \
    real_server 198.51.100.11 80 {\n  TCP_CHECK {\n  }\n }\n real_server 198.51.100.12 80 {\n  TCP_CHECK {\n  }\n }\n}\n\
    virtual_server 2001:db8::10 80 {\n protocol TCP\n lb_algo mh\n lb_kind DR\n real_server 2001:db8::21 80 {\n }\n}\n\
    virtual_server 203.0.113.20 80 {\n protocol TCP\n lb_kind DR\n anycast_track_instance VI_1\n real_server 198.51.100.13 80 {\n }\n}\n\
    vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 1\n priority 100\n virtual_ipaddress {\n  203.0.113.20\n }\n}\n";

/// A VIP is announced once its services are programmed, every checker has reported and the
/// quorum is up, and its tracked VRRP instance is MASTER; it is withdrawn on a quorum loss,
/// on `withdraw` (until `announce`) and first thing at SIGTERM.
#[test]
fn vips_are_announced_when_their_services_are_up_and_withdrawn_otherwise() {
    let l = load(ANYCAST);
    let c = checks(&l);
    let mut n = Node::new(l, Subsystems::All, Some(BackendKind::Bpf), 42, "k.conf".into());
    // Nothing before programming; the empty announcement clears what a killed run left.
    assert_eq!(announced(&n.on_event(Event::Start { checks: c })), [(Some(100), Vec::new())]);
    let a = n.on_event(Event::Programmed { result: Ok(()), at: Instant::now() });
    // 203.0.113.10 waits for its checkers, 203.0.113.20 for VI_1.
    assert_eq!(announced(&a), [(Some(100), vec!["2001:db8::10".to_string()])]);
    let mut a = n.on_event(report(11, true));
    a.extend(n.on_event(Event::Programmed { result: Ok(()), at: Instant::now() }));
    assert!(announced(&a).is_empty(), "one checker has not reported yet: {a:?}");
    let mut a = n.on_event(report(12, true));
    a.extend(n.on_event(Event::Programmed { result: Ok(()), at: Instant::now() }));
    assert_eq!(announced(&a), [(Some(100), vec!["203.0.113.10".into(), "2001:db8::10".into()])]);
    let a = n.on_event(Event::Tick(Tick::Vrrp(vec![vrrp_status("VI_1", vrrp::State::Master)])));
    let all = vec!["203.0.113.10".to_string(), "203.0.113.20".into(), "2001:db8::10".into()];
    assert_eq!(announced(&a), [(Some(100), all.clone())]);
    let status = n.status(Vec::new(), None);
    assert_eq!(status.anycast_table, Some(100));
    assert!(status.anycast.iter().all(|s| s.announced), "{:?}", status.anycast);
    // Both real servers down: the quorum (1) is lost, only that VIP goes.
    let mut a = n.on_event(report(11, false));
    a.extend(n.on_event(report(12, false)));
    let mut a2 = announced(&a);
    a2.dedup();
    assert_eq!(a2.last(), Some(&(Some(100), vec!["203.0.113.20".to_string(), "2001:db8::10".into()])), "{a:?}");
    let status = n.status(Vec::new(), None);
    let lost = status.anycast.iter().find(|s| s.vip == "203.0.113.10").unwrap();
    assert!(!lost.announced && lost.reason.as_deref().unwrap_or("").contains("quorum"), "{lost:?}");
    n.on_event(report(11, true));
    n.on_event(Event::Programmed { result: Ok(()), at: Instant::now() });
    // withdraw / announce.
    let (r, a) = n.control(Request::Withdraw);
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(announced(&a), [(Some(100), Vec::new())]);
    assert!(announced(&n.on_event(report(12, true))).is_empty(), "withdrawn stays withdrawn");
    n.on_event(Event::Programmed { result: Ok(()), at: Instant::now() });
    let (r, a) = n.control(Request::Announce);
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(announced(&a), [(Some(100), all)]);
    // The VRRP instance leaves MASTER: its VIP goes.
    let a = n.on_event(Event::Tick(Tick::Vrrp(vec![vrrp_status("VI_1", vrrp::State::Backup)])));
    assert_eq!(announced(&a), [(Some(100), vec!["203.0.113.10".to_string(), "2001:db8::10".into()])]);
    // SIGTERM: everything is withdrawn before anything stops.
    assert_eq!(announced(&n.on_event(Event::Stopping)), [(Some(100), Vec::new())]);
}

/// Without `anycast_table` nothing is announced and `withdraw` says why.
#[test]
fn without_anycast_table_nothing_is_announced() {
    let text = ANYCAST.replace(" anycast_table 100\n", "").replace(" anycast_track_instance VI_1\n", "");
    let l = load(&text);
    let c = checks(&l);
    let mut n = Node::new(l, Subsystems::All, Some(BackendKind::Bpf), 42, "k.conf".into());
    let mut a = n.on_event(Event::Start { checks: c });
    a.extend(n.on_event(Event::Programmed { result: Ok(()), at: Instant::now() }));
    a.extend(n.on_event(Event::Stopping));
    assert!(announced(&a).is_empty(), "{a:?}");
    assert!(n.control(Request::Withdraw).0.unwrap_err().contains("anycast_table"));
    assert!(n.status(Vec::new(), None).anycast.is_empty());
}

/// Two nodes with the same config build the same Maglev table (bucket → real server), even
/// when their data-plane ids differ; `mh_seed` changes it.
#[test]
fn mh_tables_are_the_same_on_every_node_with_the_same_config() {
    let svc = "virtual_server 203.0.113.10 80 {\n protocol TCP\n lb_algo mh\n lb_kind DR\n real_server 198.51.100.11 80 {\n }\n \
               real_server 198.51.100.12 80 {\n }\n real_server 198.51.100.13 80 {\n }\n}\n";
    let other =
        "virtual_server 203.0.113.30 80 {\n protocol TCP\n lb_algo mh\n real_server 198.51.100.14 80 {\n }\n}\n";
    let owners_of = |text: &str| {
        let l = load(text);
        let (d, _) = services::desired(&l.config, &Health::default(), false);
        let d = d.iter().find(|d| d.name == VS).expect("the service").clone();
        preview::owners(&d)
    };
    let a = owners_of(svc);
    // Another node: one more service before it (other ids), same config for this one.
    let b = owners_of(&format!("{other}{svc}"));
    assert_eq!(a.len(), lb_common::consts::MH_TABLE_SIZE as usize);
    assert_eq!(a, b, "the same config, the same table");
    let seeded = owners_of(&format!("global_defs {{\n mh_seed 7\n}}\n{svc}"));
    let moved = a.iter().zip(&seeded).filter(|(x, y)| x != y).count();
    assert!(moved > a.len() / 3, "mh_seed 7 moved only {moved} buckets");
    let own = owners_of(&svc.replace(" lb_algo mh\n", " lb_algo mh\n mh_seed 7\n"));
    assert_eq!(own, seeded, "a service's own mh_seed acts as global_defs'");
}

/// Which checker changes send mail, the narrowest setting winning: the real server's
/// `smtp_alert`, the virtual server's, global_defs' `smtp_alert_checker`, then `smtp_alert`.
#[test]
fn checker_mail_follows_the_narrowest_smtp_alert() {
    let mails = |global: &str, vs: &str, rs: &str| {
        let text = format!(
            "global_defs {{\n{global}}}\nvirtual_server 203.0.113.10 80 {{\n protocol TCP\n{vs} real_server 198.51.100.11 80 {{\n{rs}  \
             TCP_CHECK {{\n  }}\n }}\n}}\n"
        );
        let l = config::parse_str("t.conf", &text);
        assert!(!l.has_errors(), "{}", l.render());
        let vs = &l.config.virtual_servers[0];
        mail_for(&l.config, vs, Some(&vs.real_servers[0]))
    };
    assert!(!mails("", "", ""));
    assert!(mails(" smtp_alert\n", "", ""));
    assert!(!mails(" smtp_alert\n smtp_alert_checker false\n", "", ""));
    assert!(!mails(" smtp_alert_vrrp\n", "", ""));
    assert!(mails("", " smtp_alert\n", ""));
    assert!(!mails(" smtp_alert\n", " smtp_alert false\n", ""));
    assert!(mails("", " smtp_alert false\n", "  smtp_alert\n"));
}

/// keepalived's `rs_init_notifies`: at start, each real server that starts up (here .12; .11
/// is under `alpha`, down until a check passes) runs its notify_up and writes its FIFO line;
/// at a reload, only a real server new to its service does. Without the keyword, nothing
/// until a change.
#[test]
fn rs_init_notifies_tells_of_real_servers_that_start_up() {
    let text = |extra_rs: &str| {
        format!(
            "global_defs {{\n rs_init_notifies\n}}\nvirtual_server 203.0.113.10 80 {{\n protocol TCP\n \
             real_server 198.51.100.11 80 {{\n  alpha\n  notify_up /bin/up11\n  TCP_CHECK {{\n  }}\n }}\n \
             real_server 198.51.100.12 80 {{\n  notify_up \"/bin/up12 now\"\n  TCP_CHECK {{\n  }}\n }}\n{extra_rs}}}\n"
        )
    };
    let vs = "[203.0.113.10]:tcp:80";
    let fifo = |rs: &str| Action::Fifo(Stream::Lvs, format!("RS [{rs}]:tcp:80 {vs} UP\n"));
    let l = load(&text(""));
    let c = checks(&l);
    let mut n = Node::new(l, Subsystems::All, Some(BackendKind::Bpf), 42, "k.conf".into());
    let a = n.on_event(Event::Start { checks: c });
    let notes: Vec<&Action> = a.iter().filter(|a| matches!(a, Action::RunScript(_) | Action::Fifo(..))).collect();
    assert_eq!(notes.len(), 2, "{a:?}");
    assert_eq!(commands(notes[0]), ["/bin/up12 now"]);
    assert_eq!(*notes[1], fifo("198.51.100.12"));
    n.on_event(Event::Programmed { result: Ok(()), at: Instant::now() });
    // A reload adding .13 (no notify_up): its line only; .12 was already there.
    let l = load(&text(" real_server 198.51.100.13 80 {\n }\n"));
    let c = checks(&l);
    let a = n.on_event(Event::Reload {
        loaded: Box::new(l),
        checks: c,
        rollback_checks: Checks::default(),
        started: Instant::now(),
    });
    let notes: Vec<&Action> = a.iter().filter(|a| matches!(a, Action::RunScript(_) | Action::Fifo(..))).collect();
    assert_eq!(notes, [&fifo("198.51.100.13")], "{a:?}");
    // Without rs_init_notifies: no notification at start.
    let l = load(&text("").replace(" rs_init_notifies\n", ""));
    let c = checks(&l);
    let mut n = Node::new(l, Subsystems::All, Some(BackendKind::Bpf), 42, "k.conf".into());
    let a = n.on_event(Event::Start { checks: c });
    assert!(!a.iter().any(|a| matches!(a, Action::RunScript(_) | Action::Fifo(..))), "{a:?}");
}
