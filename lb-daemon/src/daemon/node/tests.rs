//! The core driven with events only: no sockets, no tasks, no maps.

use std::net::SocketAddr;

use super::*;
use crate::{
    check::health::{CheckState, Report},
    script::Runner,
};

const VS: &str = "203.0.113.10:80/tcp";

/// Two real servers with a TCP check each, quorum 2, a sorry server, scripts and mail.
fn conf(weight: u32, extra: &str) -> String {
    format!(
        "global_defs {{\n smtp_server 127.0.0.1 25\n notification_email {{\n  ops@example.com\n }}\n}}\n\
         virtual_server 203.0.113.10 80 {{\n lb_algo rr\n quorum 2\n quorum_down /bin/true\n omega\n \
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
    Event::Report(Report { id, state: CheckState { up, weight: None, reason: "TCP_CHECK: connect failed".into() } })
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
    assert!(matches!(a.as_slice(), [Action::Publish(_)]), "{a:?}");
}

#[test]
fn a_real_server_going_down_notifies_mails_settles_quorum_and_reprograms() {
    let mut n = started(&conf(1, ""), Some(BackendKind::Bpf));
    let a = n.on_event(report(11, false));
    assert_eq!(commands(&a[0]), ["/bin/false"], "its notify_down");
    assert_eq!(
        a[1],
        Action::Mail {
            subject: format!("Realserver 198.51.100.11:80 of virtual server {VS} - DOWN"),
            body: "=> TCP_CHECK: connect failed <=".into()
        }
    );
    // Live weight 1 is below quorum 2: quorum_down runs (no mail: the real server's
    // smtp_alert does not cover its service's quorum).
    assert_eq!(commands(&a[2]), ["/bin/true"]);
    let d = programmed(&a);
    assert_eq!((reals(&d[0]), d[0].quorum_up), (vec![(real(12), 1)], false));
    assert_eq!(a.len(), 4, "{a:?}");
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
    let bigger =
        conf(1, "virtual_server 203.0.113.20 80 {\n real_server 198.51.100.21 80 {\n  TCP_CHECK {\n  }\n }\n}\n");
    let a = reload(&mut n, &bigger);
    assert!(matches!(&a[0], Action::StartChecker(id, _) if id.real == real(21)), "{a:?}");
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
    let text = format!("global_defs {{\n lvs_sync_daemon eth1 VI_1 id 9\n}}\n{VRRP}");
    let mut n = started(&text, Some(BackendKind::Ipvs));
    let publish = |n: &mut Node, state| {
        let vrrp = vec![VrrpStatus { instance: "VI_1".into(), state, ..Default::default() }];
        n.on_event(Event::Tick(Tick::Publish { vrrp, backend: None }))
    };
    let want = |role| Action::SetSync(Some(SyncWant { role, interface: "eth1".into(), sync_id: 9 }));
    let a = publish(&mut n, vrrp::State::Backup);
    assert_eq!(a[0], want(SyncRole::Backup));
    assert!(matches!(&a[1], Action::Publish(s) if s.pid == 42 && s.vrrp[0].instance == "VI_1"), "{a:?}");
    assert_eq!(publish(&mut n, vrrp::State::Backup).len(), 1, "set once");
    assert_eq!(publish(&mut n, vrrp::State::Master)[0], want(SyncRole::Master));
    // Without a backend (-P) there is nothing to sync.
    let mut p = started(&text, None);
    assert_eq!(publish(&mut p, vrrp::State::Master).len(), 1);
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
