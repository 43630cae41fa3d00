//! Effects of keywords docs/keywords.md listed as acted on without a proving test: which
//! notify script each VRRP state runs, and keepalived's aliases read as the keyword whose
//! effect other tests prove (`lb-daemon/src/config/keyword_states.rs`, `ACTED`).

use lb_daemon::{
    config::{Config, parse_str},
    vrrp::{State, sync_group::script_for},
};

fn parsed(text: &str) -> Config {
    let l = parse_str("k.conf", text);
    assert!(!l.has_errors(), "{}", l.render());
    l.config
}

/// `notify_master` / `notify_backup` / `notify_fault` / `notify_stop` of an instance and of a
/// sync group are the scripts the engine runs on entering that state (`script_for`, which
/// the instance and group transitions call; the scripts run as `notify`'s do, whose run
/// `vrrp.rs::two_nodes_elect_one_master_fail_over_and_hand_back` proves).
#[test]
fn notify_scripts_follow_the_state_they_name() {
    let body = "  notify_master /bin/m\n  notify_backup /bin/b\n  notify_fault /bin/f\n  notify_stop /bin/s\n";
    let cfg = parsed(&format!(
        "vrrp_sync_group G {{\n group {{\n  VI_1\n }}\n{body}}}\n\
         vrrp_instance VI_1 {{\n interface eth0\n virtual_router_id 1\n priority 100\n{body}}}\n"
    ));
    for notify in [&cfg.vrrp_sync_groups[0].notify, &cfg.vrrp_instances[0].notify] {
        let run = |s| script_for(notify, s).map(|s| s.command);
        assert_eq!(run(State::Master).as_deref(), Some("/bin/m"));
        assert_eq!(run(State::Backup).as_deref(), Some("/bin/b"));
        assert_eq!(run(State::Fault).as_deref(), Some("/bin/f"));
        assert_eq!(run(State::Stopped).as_deref(), Some("/bin/s"));
        assert_eq!(run(State::Init), None);
    }
}

/// keepalived's spellings set what the keyword they stand for sets: `nb_get_retry` a
/// checker's `retry`, `lvs_method` a virtual server's `lb_kind`, `lvs_sched` its `lb_algo`;
/// lb-daemon reads the misspelling `scrip` as a vrrp_script's `script`.
#[test]
fn aliases_set_what_their_keyword_sets() {
    let vs = |body: &str, check: &str| {
        parsed(&format!(
            "virtual_server 192.0.2.10 80 {{\n protocol TCP\n{body}\n real_server 198.51.100.11 80 {{\n  TCP_CHECK {{\n{check}\n  }}\n }}\n}}\n"
        ))
        .virtual_servers
        .remove(0)
    };
    let (a, b) =
        (vs(" lb_kind DR\n lb_algo wrr", "   retry 7"), vs(" lvs_method DR\n lvs_sched wrr", "   nb_get_retry 7"));
    assert_eq!(a.real_servers[0].checkers[0].retry, Some(7));
    assert_eq!(b.real_servers[0].checkers[0].retry, a.real_servers[0].checkers[0].retry);
    assert_eq!(format!("{:?}", b.forward), format!("{:?}", a.forward));
    assert_ne!(format!("{:?}", a.forward), format!("{:?}", vs(" lb_kind NAT", "").forward));
    assert_eq!(format!("{:?}", b.scheduler), format!("{:?}", a.scheduler));
    assert_ne!(format!("{:?}", a.scheduler), format!("{:?}", vs(" lb_algo rr", "").scheduler));
    let script = |kw: &str| {
        let l = parse_str("k.conf", &format!("vrrp_script chk {{\n {kw} \"/bin/true 1\"\n}}\n"));
        assert!(!l.has_errors(), "{}", l.render());
        l.config.vrrp_scripts[0].script.as_ref().map(|s| s.command.clone())
    };
    assert_eq!(script("scrip"), Some("/bin/true 1".to_string()));
    assert_eq!(script("scrip"), script("script"));
}
