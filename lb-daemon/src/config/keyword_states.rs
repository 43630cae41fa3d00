//! The three states of every keyword keepalived knows (issue 18), beside the keyword tables
//! so that small table edits elsewhere do not conflict with this data:
//!
//! - **acted on** as keepalived does: the block tables (`global.rs`, `vrrp.rs`, `lvs.rs`,
//!   `parse.rs`, `docs::INLINE`) read it; [`ACTED`] names the tests that prove its effect,
//!   and `docs.rs` lists the ones without such a test in their own section;
//! - **refused**: `keyword::REFUSED` (per block) and [`REFUSED_ANYWHERE`] (wherever no table
//!   reads the keyword): an error naming file:line:col and what to use instead;
//! - **accepted without effect**: [`WITHOUT_EFFECT`], only where the keyword cannot change
//!   which node or real server gets traffic; a warning says so, with the reason.
//!
//! `tests` below checks that every keepalived keyword is in exactly one state and that every
//! test named here exists.

/// Keywords refused in any block whose table does not read them (keepalived reads them in
/// the block named second, for the document): (keyword, keepalived's block, instead).
/// No table may read one of these (the test checks it): when a keyword here comes to be
/// acted on, it moves out of this list.
pub const REFUSED_ANYWHERE: &[(&str, &str, &str)] = &[
    // VRRP adverts, elections and timers.
    ("owner_ignore_adverts", "vrrp_instance", NOT_IN_227),
    ("vrrp_owner_ignore_adverts", "global_defs", NOT_IN_227),
    ("timer_expired_backup", "vrrp_instance", NOT_IN_227),
    ("thread_timer_expired", "vrrp_instance", NOT_IN_227),
    ("v3_checksum_as_v2", "global_defs, vrrp_instance", NOT_IN_227),
    (
        "vrrp_delay_after_boot",
        "global_defs",
        "keepalived 2.2.7 has no vrrp_delay_after_boot (a later keepalived's); delay lb-daemon's start instead (e.g. ExecStartPre=/bin/sleep N in its systemd unit)",
    ),
    ("auth_hmac", "vrrp_instance", NOT_IN_227_HMAC),
    ("active_key", "auth_hmac", NOT_IN_227_HMAC),
    ("anti_replay", "auth_hmac", NOT_IN_227_HMAC),
    ("time_window", "auth_hmac", NOT_IN_227_HMAC),
    ("mode", "auth_hmac", NOT_IN_227_HMAC),
    // Interfaces, addresses and routing.
    ("linkbeat_interfaces", "the top level", LINK),
    ("linkbeat_use_polling", "global_defs, vrrp_instance", LINK),
    (
        "use_ipvlan",
        "vrrp_instance",
        "ipvlan VMACs are not implemented; use use_vmac (a macvlan with the VRRP MAC) or remove it",
    ),
    ("vrf", "vrrp_instance", "VRFs are not supported; run the instance on an interface outside a VRF"),
    ("net_namespace", "the top level", NAMESPACE),
    ("net_namespace_ipvs", "the top level", NAMESPACE),
    ("namespace_with_ipsets", "the top level", NAMESPACE),
    // Firewall and IPVS programming.
    (
        "vrrp_iptables",
        "global_defs",
        "Debian's keepalived 2.2.7 has no iptables: it reports an error and uses nftables; write nftables [TABLE] \
         instead (lb-daemon enforces no_accept with it)",
    ),
    (
        "vrrp_ipsets",
        "global_defs",
        "Debian's keepalived 2.2.7 has no ipsets (an unknown keyword there); remove it: lb-daemon enforces no_accept \
         with nftables sets",
    ),
    (
        "nftables_ifindex",
        "global_defs",
        "the no_accept rules here match link-local VIPs by address alone, on every interface; remove it",
    ),
    ("nftables_ipvs", "global_defs", FWMARK_GROUPS),
    ("nftables_ipvs_priority", "global_defs", FWMARK_GROUPS),
    ("nftables_ipvs_start_fwmark", "global_defs", FWMARK_GROUPS),
    // Checker verdicts.
    ("sni_name", "SSL_GET", NOT_IN_227),
    ("tls_compliant", "SSL_GET, url", NOT_IN_227),
    (
        "set_supplementary_groups",
        "global_defs",
        "keepalived 2.2.7 has no set_supplementary_groups (a later keepalived's): scripts run without supplementary groups; give the script user's own group the access the script needs",
    ),
    // Scripts and notifications that run the user's commands.
    (
        "iproute_etc_dir",
        "global_defs",
        "keepalived 2.2.7 has no iproute_etc_dir: route and rule names are read from /etc/iproute2, as 2.2.7 reads them; put the files there and remove it",
    ),
    (
        "iproute_usr_dir",
        "global_defs",
        "keepalived 2.2.7 has no iproute_usr_dir: route and rule names are read from /etc/iproute2, as 2.2.7 reads them; put the files there and remove it",
    ),
    (
        "multihop",
        "bfd_instance",
        "keepalived 2.2.7 has no multihop keyword: a multihop session is `ttl` (or `hoplimit`) with `max_hops`",
    ),
];

/// Keywords of later keepalived versions, which keepalived 2.2.7 rejects as unknown too.
const NOT_IN_227: &str =
    "keepalived 2.2.7 does not know this keyword (a later keepalived's) and neither does lb-daemon; remove it";
/// keepalived's HMAC advert authentication (2.4.2 and later).
const NOT_IN_227_HMAC: &str = "keepalived 2.2.7 does not know this keyword (HMAC advert authentication came in 2.4.2) and neither does lb-daemon; use authentication { auth_type PASS } or AH, or none";
const LINK: &str = "remove it: lb-daemon reads link state from netlink (the interface's running flag)";
const NAMESPACE: &str = "run lb-daemon itself inside the namespace (`ip netns exec NAME lb-daemon ...`)";
const FWMARK_GROUPS: &str = "a virtual_server_group as one IPVS firewall-mark service (one scheduler and persistence across its addresses) is not implemented; lb-daemon runs each of the group's addresses as its own service: remove it";

/// keepalived keywords that cannot change which node or real server gets traffic, grouped
/// by the reason: (reason, keywords). Accepted with a warning that says so.
pub const WITHOUT_EFFECT: &[(&str, &[&str])] = &[
    (
        "keepalived 2.2.7 never acts on it (its test of a removed address compares the wrong bytes): an instance whose \
         source address is removed stays master and keeps advertising from it, in keepalived and in lb-daemon \
         (vrrp.rs::a_master_whose_source_address_goes_keeps_advertising_as_keepalived)",
        &["track_src_ip"],
    ),
    (
        "SNMP and DBus: lb-daemon has no SNMP agent or DBus service (status, `lb-daemon status` and metrics instead)",
        &[
            "enable_snmp_vrrp",
            "enable_snmp_checker",
            "enable_snmp_keepalived",
            "enable_snmp_rfc",
            "enable_snmp_rfcv2",
            "enable_snmp_rfcv3",
            "enable_traps",
            "snmp_socket",
            "snmp_name",
            "snmp_rs_stats_update_interval",
            "snmp_vs_stats_update_interval",
            "enable_dbus",
            "dbus_service_name",
            "dbus_no_interface_name",
        ],
    ),
    (
        "process names, scheduling priorities, CPU affinity, realtime limits and memory locking of keepalived's processes (lb-daemon is one process; set these with systemd)",
        &[
            "process_names",
            "process_name",
            "vrrp_process_name",
            "checker_process_name",
            "lvs_process_name",
            "bfd_process_name",
            "vrrp_priority",
            "checker_priority",
            "bfd_priority",
            "vrrp_rt_priority",
            "checker_rt_priority",
            "bfd_rt_priority",
            "vrrp_cpu_affinity",
            "checker_cpu_affinity",
            "bfd_cpu_affinity",
            "vrrp_rlimit_rtime",
            "vrrp_rlimit_rttime",
            "checker_rlimit_rtime",
            "checker_rlimit_rttime",
            "bfd_rlimit_rtime",
            "bfd_rlimit_rttime",
            "vrrp_no_swap",
            "checker_no_swap",
            "bfd_no_swap",
            "max_auto_priority",
            "min_auto_priority_delay",
        ],
    ),
    (
        "socket and netlink buffer sizes (lb-daemon sizes its own)",
        &[
            "kernel_rx_buf_size",
            "vrrp_rx_bufs_policy",
            "vrrp_rx_bufs_multiplier",
            "vrrp_netlink_cmd_rcv_bufs",
            "vrrp_netlink_cmd_rcv_bufs_force",
            "vrrp_netlink_monitor_rcv_bufs",
            "vrrp_netlink_monitor_rcv_bufs_force",
            "lvs_netlink_cmd_rcv_bufs",
            "lvs_netlink_cmd_rcv_bufs_force",
            "lvs_netlink_monitor_rcv_bufs",
            "lvs_netlink_monitor_rcv_bufs_force",
            "process_monitor_rcv_bufs",
            "process_monitor_rcv_bufs_force",
        ],
    ),
    (
        "log detail and mail: what is logged or mailed, not what is decided",
        &[
            "log_all_failures",
            "checker_log_all_failures",
            "log_unknown_vrids",
            "no_email_faults",
            "no_checker_emails",
            "smtp_helo_name",
        ],
    ),
    (
        "file names and modes of keepalived's pid, dump and debug files (lb-daemon's are its `--pid` option and its own dump paths)",
        &["umask", "config_save_dir", "tmp_config_directory"],
    ),
    (
        "where a later keepalived (2.3) writes its dumps, and its JSON version: keepalived 2.2.7 does not know them (its -t \
         reports them, its daemon ignores them); lb-daemon writes 2.2.7's dumps where 2.2.7 does: in $TMPDIR if it is \
         absolute, else /tmp, named by data_use_instance (dumps.rs::data_use_instance_names_the_dump_files_as_keepalived)",
        &["state_dump_file", "stats_dump_file", "json_dump_file", "json_version"],
    ),
    (
        "lb-daemon already behaves this way: it checks a reloaded configuration first and keeps the running one when it has errors (reload_check_config), runs script paths as written (use_symlink_paths), and waits for its children itself (child_wait_time)",
        &["reload_check_config", "use_symlink_paths", "child_wait_time"],
    ),
    (
        "inputs lb-daemon does not have: no ${_RANDOM} to seed (random_seed; ${_RANDOM} is refused), warnings about an instance without addresses (no_virtual_ipaddress)",
        &["random_seed", "no_virtual_ipaddress"],
    ),
    (
        "notify FIFO lines at a reload (fifo_write_vrrp_states_on_reload): lb-daemon writes a line when a state changes; the FIFOs' readers see every change, and nothing about traffic depends on them",
        &["fifo_write_vrrp_states_on_reload"],
    ),
    (
        "they only modify something refused on its own: VMACs for other interfaces' addresses (use_vmac_addr)",
        &["vmac_addr_prefix"],
    ),
];

/// Why `word` has no effect, when it is accepted without effect.
pub fn without_effect(word: &str) -> Option<&'static str> {
    WITHOUT_EFFECT.iter().find(|(_, ks)| ks.contains(&word)).map(|(why, _)| *why)
}

/// What to do instead of `word`, when it is refused wherever no table reads it.
pub fn refused_anywhere(word: &str) -> Option<&'static str> {
    REFUSED_ANYWHERE.iter().find(|(k, _, _)| *k == word).map(|(_, _, instead)| *instead)
}

/// The tests that prove each acted-on keyword's effect: (block, keyword, tests as
/// `FILE::function`). A keyword of the tables missing here is listed by docs/keywords.md as
/// acted on without a proving test. Each test must exist (checked below).
pub const ACTED: &[(&str, &str, &[&str])] = &[
    (
        "global_defs",
        "reload_time_file",
        &[
            "tests/tests/vrrp.rs::reload_time_file_reloads_at_its_time",
            "lb-daemon/src/daemon/reload_timer.rs::reload_times_read_as_keepalived",
        ],
    ),
    ("global_defs", "reload_repeat", &["tests/tests/vrrp.rs::reload_time_file_reloads_at_its_time"]),
    (
        "global_defs",
        "reload_file",
        &[
            "tests/tests/vrrp.rs::reload_file_exists_while_the_configuration_is_read",
            "lb-daemon/src/config/tests.rs::instance_and_use_pid_dir_settle_the_reload_files_default",
        ],
    ),
    (
        "top level",
        "instance",
        &[
            "tests/tests/dumps.rs::data_use_instance_names_the_dump_files_as_keepalived",
            "lb-daemon/src/config/tests.rs::instance_and_use_pid_dir_settle_the_reload_files_default",
        ],
    ),
    (
        "top level",
        "use_pid_dir",
        &["lb-daemon/src/config/tests.rs::instance_and_use_pid_dir_settle_the_reload_files_default"],
    ),
    (
        "global_defs",
        "data_use_instance",
        &["tests/tests/dumps.rs::data_use_instance_names_the_dump_files_as_keepalived"],
    ),
    (
        "top level",
        "interface_up_down_delays",
        &[
            "tests/tests/vrrp.rs::interface_up_down_delays_debounce_faults_as_keepalived",
            "lb-daemon/src/vrrp/debounce.rs::changes_wait_out_their_delay_and_reverts_cancel_them",
        ],
    ),
    (
        "global_defs",
        "nftables",
        &[
            "tests/tests/vrrp.rs::nftables_keywords_name_and_shape_the_no_accept_table_as_keepalived",
            "lb-daemon/src/daemon/accept.rs::the_table_holds_exactly_the_vips",
        ],
    ),
    (
        "global_defs",
        "nftables_priority",
        &["tests/tests/vrrp.rs::nftables_keywords_name_and_shape_the_no_accept_table_as_keepalived"],
    ),
    (
        "global_defs",
        "nftables_counters",
        &["tests/tests/vrrp.rs::nftables_keywords_name_and_shape_the_no_accept_table_as_keepalived"],
    ),
    (
        "global_defs",
        "include_check",
        &["lb-daemon/src/config/tests.rs::include_variants_and_include_check_follow_keepalived"],
    ),
    (
        "vrrp_instance",
        "old_unicast_checksum",
        &["tests/tests/vrrp.rs::old_unicast_checksum_interoperates_with_keepalived"],
    ),
    (
        "vrrp_instance",
        "garp_extra_if",
        &[
            "tests/tests/vrrp.rs::garp_extra_if_announces_on_other_interfaces_as_keepalived",
            "lb-daemon/src/vrrp/engine/live.rs::garp_extra_if_announces_the_first_vip_of_each_other_interface",
        ],
    ),
    ("vrrp_instance", "vmac_garp_intvl", &["lb-daemon/src/config/tests.rs::election_variants_resolve_as_keepalived_s"]),
    (
        "global_defs",
        "vrrp_garp_extra_if",
        &[
            "tests/tests/vrrp.rs::garp_extra_if_announces_on_other_interfaces_as_keepalived",
            "lb-daemon/src/vrrp/engine/live.rs::garp_extra_if_announces_the_first_vip_of_each_other_interface",
        ],
    ),
    (
        "global_defs",
        "vrrp_vmac_garp_intvl",
        &["lb-daemon/src/config/tests.rs::election_variants_resolve_as_keepalived_s"],
    ),
    ("virtual_server", "hashed", &["lb-daemon/src/config/tests.rs::scheduler_flags_follow_keepalived"]),
    (
        "checkers",
        "fast_recovery",
        &[
            "tests/tests/checkers.rs::http_get_comes_back_after_a_second_pass_at_once_with_fast_recovery",
            "lb-daemon/src/check/walk.rs::fast_recovery_skips_the_pauses_of_a_server_coming_back",
        ],
    ),
    (
        "top level",
        "garp_group",
        &[
            "tests/tests/vrrp.rs::gratuitous_arp_counts_and_spacing_follow_keepalived",
            "lb-daemon/src/vrrp/engine/live.rs::a_garp_group_spaces_its_interfaces_announcements",
        ],
    ),
    (
        "garp_group",
        "garp_interval",
        &[
            "tests/tests/vrrp.rs::gratuitous_arp_counts_and_spacing_follow_keepalived",
            "lb-daemon/src/vrrp/engine/live.rs::a_garp_group_spaces_its_interfaces_announcements",
        ],
    ),
    (
        "garp_group",
        "gna_interval",
        &[
            "lb-daemon/src/vrrp/engine/live.rs::a_garp_group_spaces_its_interfaces_announcements",
            "tests/tests/vrrp.rs::unsolicited_neighbour_advertisements_are_spaced_as_keepalived",
        ],
    ),
    (
        "garp_group",
        "interface",
        &[
            "tests/tests/vrrp.rs::gratuitous_arp_counts_and_spacing_follow_keepalived",
            "lb-daemon/src/vrrp/engine/live.rs::a_garp_group_spaces_its_interfaces_announcements",
        ],
    ),
    (
        "garp_group",
        "interfaces",
        &["lb-daemon/src/vrrp/engine/live.rs::a_garp_group_spaces_its_interfaces_announcements"],
    ),
    ("top level", "SSL", &["tests/tests/checkers.rs::ssl_block_presents_a_client_certificate"]),
    (
        "SSL",
        "certificate",
        &[
            "tests/tests/checkers.rs::ssl_block_presents_a_client_certificate",
            "lb-daemon/src/check/tls.rs::a_certificate_and_its_key_make_the_client_certificate",
        ],
    ),
    (
        "SSL",
        "key",
        &[
            "tests/tests/checkers.rs::ssl_block_presents_a_client_certificate",
            "lb-daemon/src/check/tls.rs::files_that_do_not_load_are_errors_naming_them",
        ],
    ),
    (
        "SSL",
        "password",
        &[
            "tests/tests/checkers.rs::ssl_block_presents_a_client_certificate",
            "lb-daemon/src/check/tls.rs::an_encrypted_key_needs_the_password",
        ],
    ),
    ("SSL", "ca", &["lb-daemon/src/check/tls.rs::files_that_do_not_load_are_errors_naming_them"]),
    (
        "top level",
        "bfd_instance",
        &["tests/tests/bfd.rs::a_session_with_bird_comes_up_and_detects_silence_and_link_loss"],
    ),
    (
        "bfd_instance",
        "neighbor_ip",
        &["tests/tests/bfd.rs::a_session_with_bird_comes_up_and_detects_silence_and_link_loss"],
    ),
    (
        "bfd_instance",
        "source_ip",
        &["tests/tests/bfd.rs::a_session_with_bird_comes_up_and_detects_silence_and_link_loss"],
    ),
    ("bfd_instance", "min_rx", &["tests/tests/bfd.rs::a_session_with_bird_comes_up_and_detects_silence_and_link_loss"]),
    ("bfd_instance", "min_tx", &["tests/tests/bfd.rs::a_session_with_bird_comes_up_and_detects_silence_and_link_loss"]),
    (
        "bfd_instance",
        "multiplier",
        &["tests/tests/bfd.rs::a_session_with_bird_comes_up_and_detects_silence_and_link_loss"],
    ),
    ("bfd_instance", "idle_tx", &["lb-daemon/src/bfd/shell.rs::idle_tx_paces_a_session_until_it_is_up"]),
    ("bfd_instance", "ttl", &["tests/tests/bfd.rs::ttl_max_hops_and_passive_decide_sessions_with_keepalived"]),
    ("bfd_instance", "max_hops", &["tests/tests/bfd.rs::ttl_max_hops_and_passive_decide_sessions_with_keepalived"]),
    ("bfd_instance", "passive", &["tests/tests/bfd.rs::ttl_max_hops_and_passive_decide_sessions_with_keepalived"]),
    ("bfd_instance", "neighbour_ip", &["tests/tests/bfd.rs::ttl_max_hops_and_passive_decide_sessions_with_keepalived"]),
    ("bfd_instance", "weight", &["lb-daemon/src/vrrp/tracking.rs::bfd_sessions_weigh_as_keepalived_tracks_them"]),
    (
        "bfd_instance",
        "vrrp",
        &[
            "lb-daemon/src/config/tests.rs::track_bfd_and_bfd_check_name_bfd_instances",
            "tests/tests/corpus.rs::keepalived_and_lb_daemon_give_the_same_verdicts",
        ],
    ),
    (
        "bfd_instance",
        "checker",
        &[
            "lb-daemon/src/config/tests.rs::track_bfd_and_bfd_check_name_bfd_instances",
            "tests/tests/corpus.rs::keepalived_and_lb_daemon_give_the_same_verdicts",
        ],
    ),
    ("bfd_instance", "hoplimit", &["tests/tests/bfd.rs::an_ipv6_session_with_bird_comes_up_and_detects_silence"]),
    ("vrrp_instance", "track_bfd", &["tests/tests/bfd.rs::track_bfd_moves_vrrp_instances_by_weight_and_fault"]),
    (
        "vrrp_sync_group",
        "track_bfd",
        &["tests/tests/bfd.rs::sync_group_track_bfd_faults_every_member_and_a_reload_keeps_the_session"],
    ),
    ("real_server", "BFD_CHECK", &["tests/tests/bfd.rs::bfd_check_takes_a_real_server_out_and_back"]),
    ("BFD_CHECK", "name", &["tests/tests/bfd.rs::bfd_check_takes_a_real_server_out_and_back"]),
    (
        "BFD_CHECK",
        "alpha",
        &["lb-daemon/src/check/mod.rs::bfd_check_alpha_starts_the_real_server_down_until_the_session_is_up"],
    ),
    (
        "top level",
        "vrrp_track_process",
        &["tests/tests/vrrp.rs::track_process_quorum_from_process_events_moves_mastership"],
    ),
    (
        "vrrp_track_process",
        "process",
        &["tests/tests/vrrp.rs::track_process_quorum_from_process_events_moves_mastership"],
    ),
    (
        "vrrp_track_process",
        "quorum",
        &["tests/tests/vrrp.rs::track_process_quorum_from_process_events_moves_mastership"],
    ),
    (
        "vrrp_track_process",
        "quorum_max",
        &["tests/tests/vrrp.rs::track_process_quorum_from_process_events_moves_mastership"],
    ),
    ("vrrp_sync_group", "track_process", &["lb-daemon/src/vrrp/tracking.rs::quorum_moves_priority_or_faults"]),
    ("vrrp_track_process", "delay", &["lb-daemon/src/vrrp/track_process.rs::delay_holds_both_forks_and_exits"]),
    (
        "vrrp_track_process",
        "fork_delay",
        &["lb-daemon/src/vrrp/track_process.rs::delays_hold_changes_from_forks_and_exits"],
    ),
    (
        "vrrp_track_process",
        "full_command",
        &["lb-daemon/src/vrrp/track_process.rs::names_match_the_comm_or_the_command_line"],
    ),
    (
        "vrrp_track_process",
        "param_match",
        &["lb-daemon/src/vrrp/track_process.rs::parameters_match_as_keepalived_compares_them"],
    ),
    (
        "vrrp_track_process",
        "terminate_delay",
        &["tests/tests/vrrp.rs::track_process_quorum_from_process_events_moves_mastership"],
    ),
    (
        "vrrp_track_process",
        "weight",
        &["tests/tests/vrrp.rs::track_process_quorum_from_process_events_moves_mastership"],
    ),
    (
        "vrrp_instance",
        "track_process",
        &["tests/tests/vrrp.rs::track_process_quorum_from_process_events_moves_mastership"],
    ),
    (
        "real_server",
        "FILE_CHECK",
        &["tests/tests/checkers.rs::file_check_takes_a_real_server_out_and_moves_its_weight"],
    ),
    ("FILE_CHECK", "track_file", &["tests/tests/checkers.rs::file_check_takes_a_real_server_out_and_moves_its_weight"]),
    ("FILE_CHECK", "weight", &["tests/tests/checkers.rs::file_check_takes_a_real_server_out_and_moves_its_weight"]),
    ("vrrp_sync_group", "track_file", &["tests/tests/vrrp.rs::sync_group_track_file_moves_every_member"]),
    (
        "vrrp_sync_group",
        "track_script",
        &["tests/tests/vrrp.rs::sync_group_track_script_and_interface_move_every_member"],
    ),
    (
        "vrrp_sync_group",
        "track_interface",
        &["tests/tests/vrrp.rs::sync_group_track_script_and_interface_move_every_member"],
    ),
    (
        "virtual_server",
        "weight",
        &[
            "tests/tests/ipvs.rs::configs",
            "lb-daemon/src/config/tests.rs::a_virtual_servers_weight_is_its_real_servers_default",
        ],
    ),
    (
        "checkers",
        "fwmark",
        &["tests/tests/checkers.rs::a_checkers_fwmark_steers_its_probe_by_policy_routing_as_keepalived"],
    ),
    ("global_defs", "vrrp_notify_fifo", &["tests/tests/vrrp.rs::notify_fifo_lines_match_keepalived_s"]),
    ("global_defs", "vrrp_notify_fifo_script", &["tests/tests/vrrp.rs::notify_fifo_lines_match_keepalived_s"]),
    ("global_defs", "notify_fifo_script", &["tests/tests/vrrp.rs::notify_fifo_lines_match_keepalived_s"]),
    (
        "global_defs",
        "rs_init_notifies",
        &["lb-daemon/src/daemon/node/tests.rs::rs_init_notifies_tells_of_real_servers_that_start_up"],
    ),
    (
        "global_defs",
        "startup_script",
        &["tests/tests/daemon_xdp.rs::startup_and_shutdown_scripts_run_around_the_daemon"],
    ),
    (
        "global_defs",
        "startup_script_timeout",
        &["tests/tests/daemon_xdp.rs::startup_and_shutdown_scripts_run_around_the_daemon"],
    ),
    (
        "global_defs",
        "shutdown_script",
        &["tests/tests/daemon_xdp.rs::startup_and_shutdown_scripts_run_around_the_daemon"],
    ),
    (
        "global_defs",
        "shutdown_script_timeout",
        &["tests/tests/daemon_xdp.rs::startup_and_shutdown_scripts_run_around_the_daemon"],
    ),
    (
        "global_defs",
        "notify_fifo",
        &[
            "lb-daemon/src/notify/fifo.rs::a_shared_path_is_one_fifo",
            "tests/tests/vrrp.rs::notify_fifo_lines_match_keepalived_s",
        ],
    ),
    (
        "global_defs",
        "lvs_notify_fifo",
        &[
            "lb-daemon/src/daemon/node/tests.rs::a_real_server_going_down_notifies_mails_settles_quorum_and_reprograms",
            "lb-daemon/src/notify/fifo.rs::a_shared_path_is_one_fifo",
            "tests/tests/checkers.rs::a_flapping_backend_link_is_detected_and_recovers",
        ],
    ),
    (
        "global_defs",
        "lvs_notify_fifo_script",
        &["tests/tests/checkers.rs::a_flapping_backend_link_is_detected_and_recovers"],
    ),
    (
        "vrrp_instance",
        "accept",
        &[
            "tests/tests/vrrp.rs::a_master_without_accept_mode_drops_traffic_to_its_vip",
            // `accept` under vrrp_strict (VRRPv3), where it changes the fence.
            "lb-daemon/src/daemon/node/tests.rs::a_master_without_accept_mode_drops_its_vips_traffic",
        ],
    ),
    (
        "vrrp_instance",
        "no_accept",
        &[
            "tests/tests/vrrp.rs::a_master_without_accept_mode_drops_traffic_to_its_vip",
            "lb-daemon/src/daemon/node/tests.rs::a_master_without_accept_mode_drops_its_vips_traffic",
        ],
    ),
    (
        "url",
        "virtualhost",
        &["tests/tests/checkers.rs::enable_sni_names_the_virtual_host_in_the_handshake_as_keepalived"],
    ),
    (
        "checkers",
        "enable_sni",
        &[
            "tests/tests/checkers.rs::enable_sni_names_the_virtual_host_in_the_handshake_as_keepalived",
            "lb-daemon/src/config/tests.rs::enable_sni_is_an_ssl_get_option",
        ],
    ),
    (
        "global_defs",
        "vrrp_min_garp",
        &[
            "tests/tests/vrrp.rs::vrrp_min_garp_announces_once_as_keepalived",
            "lb-daemon/src/config/tests.rs::vrrp_min_garp_keeps_what_was_set_before_it",
        ],
    ),
    (
        "vrrp_instance",
        "native_ipv6",
        &[
            "tests/tests/corpus.rs::keepalived_and_lb_daemon_give_the_same_verdicts",
            "lb-daemon/src/config/tests.rs::native_ipv6_makes_an_ipv6_instance",
        ],
    ),
    (
        "vrrp_instance",
        "unicast_fault_no_peer",
        &[
            "tests/tests/vrrp.rs::unicast_fault_no_peer_keeps_a_peerless_instance_in_fault_as_keepalived",
            "lb-daemon/src/vrrp/tracking.rs::unicast_without_peers_is_a_fault_only_with_unicast_fault_no_peer",
        ],
    ),
    (
        "vrrp_instance",
        "mcast_dst_ip",
        &[
            "tests/tests/vrrp.rs::mcast_dst_ip_is_the_group_an_instance_sends_to_and_hears_as_keepalived",
            "lb-daemon/src/vrrp/engine/live.rs::advert_source_and_group_follow_mcast_src_ip_and_vrrp_mcast_group",
        ],
    ),
    (
        "vrrp_instance",
        "strict_mode",
        &[
            "tests/tests/vrrp.rs::strict_mode_makes_one_instance_strict_as_keepalived",
            "lb-daemon/src/config/tests.rs::election_variants_resolve_as_keepalived_s",
        ],
    ),
    (
        "global_defs",
        "vrrp_strict",
        &[
            "lb-daemon/src/daemon/node/tests.rs::a_master_without_accept_mode_drops_its_vips_traffic",
            "tests/tests/vrrp.rs::interop_keepalived_v2_strict_drops_authentication",
        ],
    ),
    (
        "vrrp_instance",
        "advert_int",
        &[
            "tests/tests/vrrp_timing.rs::adverts_keep_their_interval_while_checkers_flap_and_reloads_run",
            "lb-daemon/src/vrrp/instance.rs::timers_follow_the_rfc",
        ],
    ),
    (
        "checkers",
        "alpha",
        &[
            "tests/tests/checkers.rs::real_server_defaults_reach_their_checkers_and_alpha_waits_for_a_success",
            "lb-daemon/src/dataplane/services.rs::alpha_and_inhibit_on_failure_follow_keepalived_s_inheritance",
        ],
    ),
    (
        "real_server",
        "alpha",
        &[
            "tests/tests/checkers.rs::real_server_defaults_reach_their_checkers_and_alpha_waits_for_a_success",
            "lb-daemon/src/dataplane/services.rs::alpha_and_inhibit_on_failure_follow_keepalived_s_inheritance",
        ],
    ),
    (
        "virtual_server",
        "alpha",
        &["lb-daemon/src/dataplane/services.rs::alpha_and_inhibit_on_failure_follow_keepalived_s_inheritance"],
    ),
    (
        "authentication",
        "auth_type",
        &[
            "tests/tests/vrrp.rs::interop_keepalived_v2_multicast",
            "tests/tests/vrrp.rs::interop_keepalived_v2_ah",
            "tests/tests/vrrp.rs::interop_keepalived_v2_ah_unicast",
            "tests/tests/vrrp.rs::hostile_adverts_are_dropped_counted_and_change_nothing",
        ],
    ),
    (
        "authentication",
        "auth_pass",
        &[
            "tests/tests/vrrp.rs::hostile_adverts_are_dropped_counted_and_change_nothing",
            "lb-daemon/src/vrrp/packet.rs::long_passwords_are_cut_to_eight_bytes_as_keepalived_does",
            "lb-daemon/src/vrrp/ah.rs::any_other_change_or_a_wrong_key_fails",
            "tests/tests/vrrp.rs::ah_adverts_with_a_wrong_key_or_an_old_sequence_number_are_dropped",
        ],
    ),
    (
        "vrrp_instance",
        "authentication",
        &[
            "tests/tests/vrrp.rs::interop_keepalived_v2_multicast",
            "tests/tests/vrrp.rs::hostile_adverts_are_dropped_counted_and_change_nothing",
        ],
    ),
    ("checkers", "connect_port", &["tests/tests/checkers.rs::smtp_check_host_block_dialogue"]),
    (
        "checkers",
        "connect_timeout",
        &[
            "tests/tests/checkers.rs::real_server_defaults_reach_their_checkers_and_alpha_waits_for_a_success",
            "lb-daemon/src/check/mod.rs::checkers_inherit_real_server_then_virtual_server_values",
        ],
    ),
    (
        "real_server",
        "connect_timeout",
        &[
            "tests/tests/checkers.rs::connect_timeout_from_the_real_or_virtual_server_bounds_a_silent_connect",
            "lb-daemon/src/check/mod.rs::checkers_inherit_real_server_then_virtual_server_values",
        ],
    ),
    (
        "virtual_server",
        "connect_timeout",
        &[
            "tests/tests/checkers.rs::connect_timeout_from_the_real_or_virtual_server_bounds_a_silent_connect",
            "lb-daemon/src/check/mod.rs::checkers_inherit_real_server_then_virtual_server_values",
        ],
    ),
    ("global_defs", "default_interface", &["tests/tests/vrrp.rs::static_and_virtual_routes"]),
    (
        "checkers",
        "delay_before_retry",
        &[
            "lb-daemon/src/check/mod.rs::checkers_inherit_real_server_then_virtual_server_values",
            "tests/tests/checkers.rs::http_get_takes_a_stopped_backend_out_and_back_under_traffic",
        ],
    ),
    (
        "real_server",
        "delay_before_retry",
        &[
            "tests/tests/checkers.rs::real_server_defaults_reach_their_checkers_and_alpha_waits_for_a_success",
            "lb-daemon/src/check/mod.rs::checkers_inherit_real_server_then_virtual_server_values",
        ],
    ),
    (
        "virtual_server",
        "delay_before_retry",
        &[
            "tests/tests/checkers.rs::virtual_server_defaults_reach_their_checkers",
            "lb-daemon/src/check/mod.rs::checkers_inherit_real_server_then_virtual_server_values",
        ],
    ),
    (
        "checkers",
        "delay_loop",
        &[
            "lb-daemon/src/check/mod.rs::dns_check_retries_three_times_after_the_delay_loop",
            "lb-daemon/src/check/mod.rs::checkers_inherit_real_server_then_virtual_server_values",
        ],
    ),
    (
        "real_server",
        "delay_loop",
        &[
            "tests/tests/checkers.rs::real_server_defaults_reach_their_checkers_and_alpha_waits_for_a_success",
            "lb-daemon/src/check/mod.rs::checkers_inherit_real_server_then_virtual_server_values",
        ],
    ),
    (
        "virtual_server",
        "delay_loop",
        &["lb-daemon/src/check/mod.rs::checkers_inherit_real_server_then_virtual_server_values"],
    ),
    (
        "url",
        "digest",
        &[
            "lb-daemon/src/check/http.rs::status_digest_and_request_headers",
            "tests/tests/checkers.rs::http_get_takes_a_stopped_backend_out_and_back_under_traffic",
        ],
    ),
    ("real_server", "DNS_CHECK", &["tests/tests/checkers.rs::dns_check_follows_the_answer_code"]),
    ("checkers", "type", &["tests/tests/checkers.rs::dns_check_follows_the_answer_code"]),
    (
        "vrrp_instance",
        "dont_track_primary",
        &[
            "lb-daemon/src/vrrp/tracking.rs::weights_add_up_and_weightless_failures_are_faults",
            "lb-daemon/src/vrrp/tracking.rs::what_an_instance_puts_on_an_interface_tracks_it_as_keepalived",
        ],
    ),
    (
        "global_defs",
        "enable_script_security",
        &[
            "tests/tests/vrrp.rs::script_security_disables_insecure_and_missing_scripts_as_keepalived",
            "lb-daemon/src/script.rs::script_security_refuses_writable_paths",
        ],
    ),
    ("vrrp_script", "fall", &["tests/tests/vrrp.rs::tracking_hands_over_and_sync_groups_move_together"]),
    ("vrrp_script", "rise", &["tests/tests/vrrp.rs::tracking_hands_over_and_sync_groups_move_together"]),
    ("vrrp_script", "interval", &["tests/tests/vrrp.rs::tracking_hands_over_and_sync_groups_move_together"]),
    (
        "vrrp_script",
        "script",
        &[
            "tests/tests/vrrp.rs::tracking_hands_over_and_sync_groups_move_together",
            "lb-daemon/src/script.rs::exit_codes_arguments_and_timeouts",
        ],
    ),
    ("vrrp_script", "timeout", &["lb-daemon/src/script.rs::exit_codes_arguments_and_timeouts"]),
    (
        "vrrp_script",
        "weight",
        &[
            "tests/tests/vrrp.rs::tracking_hands_over_and_sync_groups_move_together",
            "lb-daemon/src/vrrp/tracking.rs::weights_add_up_and_weightless_failures_are_faults",
        ],
    ),
    ("vrrp_script", "user", &["lb-daemon/src/script.rs::scripts_run_as_script_user_without_root_groups"]),
    ("checkers", "user", &["lb-daemon/src/script.rs::scripts_run_as_script_user_without_root_groups"]),
    ("global_defs", "script_user", &["lb-daemon/src/script.rs::scripts_run_as_script_user_without_root_groups"]),
    ("top level", "vrrp_script", &["tests/tests/vrrp.rs::tracking_hands_over_and_sync_groups_move_together"]),
    ("vrrp_instance", "track_script", &["tests/tests/vrrp.rs::tracking_hands_over_and_sync_groups_move_together"]),
    (
        "vrrp_instance",
        "track_interface",
        &[
            "tests/tests/vrrp.rs::tracking_hands_over_and_sync_groups_move_together",
            "lb-daemon/src/vrrp/tracking.rs::weights_add_up_and_weightless_failures_are_faults",
        ],
    ),
    ("top level", "vrrp_sync_group", &["tests/tests/vrrp.rs::tracking_hands_over_and_sync_groups_move_together"]),
    (
        "top level",
        "track_group",
        &["tests/tests/vrrp.rs::track_group_faults_instances_with_their_static_addresses_as_keepalived"],
    ),
    (
        "track_group",
        "group",
        &["tests/tests/vrrp.rs::track_group_faults_instances_with_their_static_addresses_as_keepalived"],
    ),
    (
        "vrrp_sync_group",
        "group",
        &[
            "tests/tests/vrrp.rs::tracking_hands_over_and_sync_groups_move_together",
            "lb-daemon/src/vrrp/sync_group.rs::members_follow_and_the_group_settles_when_they_agree",
        ],
    ),
    ("vrrp_sync_group", "notify", &["tests/tests/vrrp.rs::tracking_hands_over_and_sync_groups_move_together"]),
    ("track_file", "file", &["tests/tests/vrrp.rs::track_file_values_move_the_priority_and_weight_zero_faults"]),
    ("track_file", "init_file", &["tests/tests/vrrp.rs::track_file_values_move_the_priority_and_weight_zero_faults"]),
    ("track_file", "weight", &["tests/tests/vrrp.rs::track_file_values_move_the_priority_and_weight_zero_faults"]),
    ("top level", "track_file", &["tests/tests/vrrp.rs::track_file_values_move_the_priority_and_weight_zero_faults"]),
    (
        "top level",
        "vrrp_track_file",
        &["tests/tests/vrrp.rs::track_file_values_move_the_priority_and_weight_zero_faults"],
    ),
    (
        "vrrp_instance",
        "track_file",
        &["tests/tests/vrrp.rs::track_file_values_move_the_priority_and_weight_zero_faults"],
    ),
    (
        "virtual_server",
        "flag-1",
        &[
            "tests/tests/ipvs.rs::ipvs_backend_in_the_61_vm",
            "lb-daemon/src/ipvs/tests.rs::scheduler_flags_from_the_config_reach_ipvs_as_ipvsadm_sends_them",
        ],
    ),
    (
        "virtual_server",
        "flag-2",
        &[
            "tests/tests/ipvs.rs::ipvs_backend_in_the_61_vm",
            "lb-daemon/src/ipvs/tests.rs::scheduler_flags_from_the_config_reach_ipvs_as_ipvsadm_sends_them",
        ],
    ),
    (
        "virtual_server",
        "flag-3",
        &[
            "tests/tests/ipvs.rs::ipvs_backend_in_the_61_vm",
            "lb-daemon/src/ipvs/tests.rs::scheduler_flags_from_the_config_reach_ipvs_as_ipvsadm_sends_them",
        ],
    ),
    (
        "virtual_server",
        "sh-port",
        &[
            "tests/tests/xdp_forward.rs::sh_port_spreads_one_clients_ports_and_each_port_is_stable",
            "tests/tests/ipvs.rs::ipvs_backend_in_the_61_vm",
            "lb-daemon/src/ipvs/tests.rs::scheduler_flags_from_the_config_reach_ipvs_as_ipvsadm_sends_them",
        ],
    ),
    (
        "virtual_server",
        "sh-fallback",
        &[
            "tests/tests/xdp_forward.rs::sh_fallback_moves_only_the_ports_of_a_weight_zero_real_server",
            "tests/tests/ipvs.rs::ipvs_backend_in_the_61_vm",
        ],
    ),
    (
        "virtual_server",
        "mh-port",
        &[
            "tests/tests/xdp_forward.rs::sh_port_spreads_one_clients_ports_and_each_port_is_stable",
            "tests/tests/ipvs.rs::ipvs_backend_in_the_61_vm",
            "lb-daemon/src/ipvs/tests.rs::scheduler_flags_from_the_config_reach_ipvs_as_ipvsadm_sends_them",
        ],
    ),
    (
        "virtual_server",
        "mh-fallback",
        &[
            "tests/tests/xdp_forward.rs::sh_fallback_moves_only_the_ports_of_a_weight_zero_real_server",
            "tests/tests/ipvs.rs::ipvs_backend_in_the_61_vm",
            "lb-daemon/src/dataplane/tables.rs::fallback_moves_only_the_clients_of_a_weight_zero_member",
        ],
    ),
    (
        "virtual_server_group",
        "fwmark",
        &[
            "lb-daemon/src/dataplane/services.rs::groups_expand_and_fwmarks_are_left_to_ipvs",
            "lb-daemon/src/ipvs/tests.rs::a_fwmark_real_server_without_a_port_is_destination_port_zero",
        ],
    ),
    (
        "top level",
        "virtual_server_group",
        &["lb-daemon/src/dataplane/services.rs::groups_expand_and_fwmarks_are_left_to_ipvs"],
    ),
    (
        "vrrp_instance",
        "garp_master_refresh",
        &["tests/tests/vrrp.rs::gratuitous_arp_counts_and_spacing_follow_keepalived"],
    ),
    (
        "vrrp_instance",
        "garp_master_refresh_repeat",
        &["tests/tests/vrrp.rs::gratuitous_arp_counts_and_spacing_follow_keepalived"],
    ),
    (
        "vrrp_instance",
        "garp_master_repeat",
        &["tests/tests/vrrp.rs::gratuitous_arp_counts_and_spacing_follow_keepalived"],
    ),
    (
        "global_defs",
        "vrrp_garp_interval",
        &["tests/tests/vrrp.rs::gratuitous_arp_counts_and_spacing_follow_keepalived"],
    ),
    (
        "global_defs",
        "vrrp_garp_master_delay",
        &["tests/tests/vrrp.rs::gratuitous_arp_counts_and_spacing_follow_keepalived"],
    ),
    (
        "vrrp_instance",
        "garp_master_delay",
        &["lb-daemon/src/vrrp/engine/live.rs::global_garp_settings_reach_instances_that_do_not_set_their_own"],
    ),
    (
        "global_defs",
        "vrrp_garp_master_repeat",
        &[
            "lb-daemon/src/vrrp/engine/live.rs::global_garp_settings_reach_instances_that_do_not_set_their_own",
            "tests/tests/vrrp.rs::gratuitous_arp_counts_and_spacing_follow_keepalived",
        ],
    ),
    (
        "global_defs",
        "vrrp_garp_master_refresh",
        &[
            "lb-daemon/src/vrrp/engine/live.rs::global_garp_settings_reach_instances_that_do_not_set_their_own",
            "tests/tests/vrrp.rs::gratuitous_arp_counts_and_spacing_follow_keepalived",
        ],
    ),
    (
        "global_defs",
        "vrrp_garp_master_refresh_repeat",
        &[
            "lb-daemon/src/vrrp/engine/live.rs::global_garp_settings_reach_instances_that_do_not_set_their_own",
            "tests/tests/vrrp.rs::gratuitous_arp_counts_and_spacing_follow_keepalived",
        ],
    ),
    (
        "global_defs",
        "vrrp_gna_interval",
        &[
            "lb-daemon/src/vrrp/engine/live.rs::global_garp_settings_reach_instances_that_do_not_set_their_own",
            "tests/tests/vrrp.rs::unsolicited_neighbour_advertisements_are_spaced_as_keepalived",
        ],
    ),
    ("checkers", "min_reply_length", &["lb-daemon/src/check/udp.rs::reply_matching"]),
    ("checkers", "max_reply_length", &["lb-daemon/src/check/udp.rs::reply_matching"]),
    (
        "vrrp_script",
        "scrip",
        &[
            "tests/tests/keywords.rs::aliases_set_what_their_keyword_sets",
            "tests/tests/vrrp.rs::tracking_hands_over_and_sync_groups_move_together",
        ],
    ),
    (
        "real_server",
        "smtp_alert",
        &["lb-daemon/src/daemon/node/tests.rs::a_real_server_going_down_notifies_mails_settles_quorum_and_reprograms"],
    ),
    (
        "virtual_server",
        "omega",
        &["lb-daemon/src/daemon/node/tests.rs::stop_runs_the_down_scripts_of_what_is_still_up"],
    ),
    ("top level", "global_defs", &["lb-daemon/src/config/tests.rs::global_defs_and_static_blocks"]),
    ("checkers", "helo_name", &["tests/tests/checkers.rs::smtp_check_host_block_dialogue"]),
    ("checkers", "host", &["tests/tests/checkers.rs::smtp_check_host_block_dialogue"]),
    ("real_server", "SMTP_CHECK", &["tests/tests/checkers.rs::smtp_check_host_block_dialogue"]),
    (
        "real_server",
        "HTTP_GET",
        &["tests/tests/checkers.rs::http_get_takes_a_stopped_backend_out_and_back_under_traffic"],
    ),
    ("checkers", "url", &["tests/tests/checkers.rs::http_get_takes_a_stopped_backend_out_and_back_under_traffic"]),
    ("url", "path", &["tests/tests/checkers.rs::http_get_takes_a_stopped_backend_out_and_back_under_traffic"]),
    ("url", "status_code", &["lb-daemon/src/check/mod.rs::status_ranges", "lb-daemon/src/check/mod.rs::http_verdicts"]),
    ("virtual_server", "hysteresis", &["lb-daemon/src/check/health.rs::quorum_with_hysteresis_dampens_flaps"]),
    (
        "virtual_server",
        "quorum",
        &[
            "tests/tests/checkers.rs::ssl_tcp_misc_checkers_quorum_notify_and_mail",
            "lb-daemon/src/daemon/node/tests.rs::a_real_server_going_down_notifies_mails_settles_quorum_and_reprograms",
        ],
    ),
    (
        "virtual_server",
        "quorum_up",
        &[
            "tests/tests/checkers.rs::ssl_tcp_misc_checkers_quorum_notify_and_mail",
            "lb-daemon/src/daemon/node/tests.rs::a_real_server_going_down_notifies_mails_settles_quorum_and_reprograms",
        ],
    ),
    (
        "virtual_server",
        "quorum_down",
        &[
            "tests/tests/checkers.rs::ssl_tcp_misc_checkers_quorum_notify_and_mail",
            "lb-daemon/src/daemon/node/tests.rs::a_real_server_going_down_notifies_mails_settles_quorum_and_reprograms",
        ],
    ),
    (
        "any block",
        "include",
        &[
            "lb-daemon/src/config/tests.rs::includes_resolve_relative_to_the_including_file_and_expand_globs",
            "lb-daemon/src/config/tests.rs::brace_includes_read_each_alternative",
            "lb-daemon/src/config/tests.rs::include_loops_are_stopped",
        ],
    ),
    (
        "real_server",
        "inhibit_on_failure",
        &["lb-daemon/src/dataplane/services.rs::alpha_and_inhibit_on_failure_follow_keepalived_s_inheritance"],
    ),
    (
        "virtual_server",
        "inhibit_on_failure",
        &[
            "tests/tests/checkers.rs::virtual_server_defaults_reach_their_checkers",
            "lb-daemon/src/dataplane/services.rs::alpha_and_inhibit_on_failure_follow_keepalived_s_inheritance",
        ],
    ),
    ("vrrp_instance", "interface", &["tests/tests/vrrp.rs::two_nodes_elect_one_master_fail_over_and_hand_back"]),
    (
        "virtual_server",
        "lb_algo",
        &[
            "tests/tests/forwarding.rs::nat_tcp_and_udp_through_the_vip_with_rr_wrr_sh_dh_and_persistence",
            "tests/tests/xdp_forward.rs::every_scheduler_method_and_family_forwards_new_and_established_flows",
        ],
    ),
    (
        "virtual_server",
        "lvs_sched",
        &[
            "tests/tests/keywords.rs::aliases_set_what_their_keyword_sets",
            "tests/tests/forwarding.rs::nat_tcp_and_udp_through_the_vip_with_rr_wrr_sh_dh_and_persistence",
        ],
    ),
    ("vrrp_instance", "notify_master", &["tests/tests/keywords.rs::notify_scripts_follow_the_state_they_name"]),
    ("vrrp_instance", "notify_backup", &["tests/tests/keywords.rs::notify_scripts_follow_the_state_they_name"]),
    ("vrrp_instance", "notify_fault", &["tests/tests/keywords.rs::notify_scripts_follow_the_state_they_name"]),
    (
        "vrrp_instance",
        "notify_deleted",
        &["tests/tests/vrrp.rs::an_instance_a_reload_removes_notifies_fault_or_deleted_as_keepalived"],
    ),
    ("vrrp_instance", "notify_stop", &["tests/tests/keywords.rs::notify_scripts_follow_the_state_they_name"]),
    ("vrrp_sync_group", "notify_master", &["tests/tests/keywords.rs::notify_scripts_follow_the_state_they_name"]),
    ("vrrp_sync_group", "notify_backup", &["tests/tests/keywords.rs::notify_scripts_follow_the_state_they_name"]),
    ("vrrp_sync_group", "notify_fault", &["tests/tests/keywords.rs::notify_scripts_follow_the_state_they_name"]),
    ("vrrp_sync_group", "notify_stop", &["tests/tests/keywords.rs::notify_scripts_follow_the_state_they_name"]),
    (
        "checkers",
        "nb_get_retry",
        &[
            "tests/tests/keywords.rs::aliases_set_what_their_keyword_sets",
            "lb-daemon/src/check/mod.rs::retries_then_down_and_up_on_first_success",
        ],
    ),
    (
        "virtual_server",
        "lvs_method",
        &[
            "tests/tests/keywords.rs::aliases_set_what_their_keyword_sets",
            "tests/tests/forwarding.rs::dr_delivers_to_backends_holding_the_vip_and_mh_is_sticky",
        ],
    ),
    (
        "virtual_server",
        "lb_kind",
        &[
            "tests/tests/forwarding.rs::dr_delivers_to_backends_holding_the_vip_and_mh_is_sticky",
            "tests/tests/forwarding.rs::tun_encapsulates_to_real_servers_that_decapsulate_with_lb_decap",
        ],
    ),
    (
        "virtual_server",
        "persistence_timeout",
        &["tests/tests/forwarding.rs::nat_tcp_and_udp_through_the_vip_with_rr_wrr_sh_dh_and_persistence"],
    ),
    (
        "virtual_server",
        "persistence_granularity",
        &["tests/tests/xdp_forward.rs::persistence_granularity_groups_clients_by_prefix"],
    ),
    (
        "virtual_server",
        "protocol",
        &[
            "tests/tests/forwarding.rs::nat_tcp_and_udp_through_the_vip_with_rr_wrr_sh_dh_and_persistence",
            "lb-daemon/src/dataplane/services.rs::no_protocol_means_udp_and_port_0_is_left_to_ipvs",
            "tests/tests/ipvs.rs::ipvs_backend_in_the_61_vm",
        ],
    ),
    (
        "virtual_server",
        "real_server",
        &["tests/tests/forwarding.rs::nat_tcp_and_udp_through_the_vip_with_rr_wrr_sh_dh_and_persistence"],
    ),
    (
        "top level",
        "virtual_server",
        &["tests/tests/forwarding.rs::nat_tcp_and_udp_through_the_vip_with_rr_wrr_sh_dh_and_persistence"],
    ),
    (
        "virtual_server",
        "sorry_server",
        &[
            "tests/tests/xdp_forward.rs::no_live_real_server_drops_and_the_sorry_server_takes_over",
            "lb-daemon/src/dataplane/bpf/plan.rs::below_quorum_only_the_sorry_server_answers",
        ],
    ),
    (
        "real_server",
        "weight",
        &[
            "tests/tests/forwarding.rs::weight_zero_drains_new_flows_but_keeps_established_ones",
            "lb-daemon/src/daemon/node/tests.rs::a_weight_applies_while_the_real_server_is_up",
        ],
    ),
    (
        "real_server",
        "lthreshold",
        &[
            "lb-daemon/src/ipvs/tests.rs::per_real_server_method_and_thresholds_reach_the_destination",
            // The kernel's table in the 6.1 VM (its auto_probe step: ipvsadm --thresholds).
            "tests/tests/ipvs.rs::ipvs_backend_in_the_61_vm",
        ],
    ),
    (
        "real_server",
        "uthreshold",
        &[
            "lb-daemon/src/ipvs/tests.rs::per_real_server_method_and_thresholds_reach_the_destination",
            // The kernel's table in the 6.1 VM (its auto_probe step: ipvsadm --thresholds).
            "tests/tests/ipvs.rs::ipvs_backend_in_the_61_vm",
        ],
    ),
    (
        "real_server",
        "lvs_method",
        &["lb-daemon/src/ipvs/tests.rs::per_real_server_method_and_thresholds_reach_the_destination"],
    ),
    (
        "global_defs",
        "lvs_sync_daemon",
        &[
            "lb-daemon/src/daemon/node/tests.rs::connection_sync_follows_its_vrrp_instance",
            "lb-daemon/src/daemon/node/tests.rs::connection_sync_without_an_instance_runs_master_and_backup",
            "lb-daemon/src/ipvs/tests.rs::sync_daemons_encode_as_ipvsadm_does",
            "lb-daemon/src/ipvs/tests.rs::master_and_backup_are_two_kernel_daemons",
            "lb-daemon/src/config/tests.rs::lvs_sync_daemon_options_as_keepalived",
            "tests/tests/ctsync.rs::synced_flows_survive_a_master_kill_and_unsynced_ones_do_not",
            "tests/tests/ctsync.rs::synced_nat_flows_keep_their_reply_translation",
            "tests/tests/ipvs.rs::sync_interop",
            "tests/tests/scale_out.rs::with_connection_sync_rr_flows_survive_node_losses_and_a_return",
        ],
    ),
    ("global_defs", "lvs_flush", &["tests/tests/ipvs.rs::flush"]),
    ("global_defs", "lvs_flush_on_stop", &["tests/tests/ipvs.rs::flush"]),
    ("global_defs", "lvs_flush_onstop", &["tests/tests/ipvs.rs::flush"]),
    (
        "global_defs",
        "lvs_timeouts",
        // The kernel's timeouts in the 6.1 VM (its auto_probe step: ipvsadm -L --timeout).
        &[
            "lb-daemon/src/ipvs/tests.rs::lvs_timeouts_encode_as_set_config",
            "tests/tests/ipvs.rs::ipvs_backend_in_the_61_vm",
        ],
    ),
    (
        "real_server",
        "MISC_CHECK",
        &[
            "tests/tests/checkers.rs::ssl_tcp_misc_checkers_quorum_notify_and_mail",
            "lb-daemon/src/check/mod.rs::misc_check_exit_codes",
        ],
    ),
    ("checkers", "misc_path", &["tests/tests/checkers.rs::ssl_tcp_misc_checkers_quorum_notify_and_mail"]),
    ("checkers", "misc_timeout", &["tests/tests/checkers.rs::ssl_tcp_misc_checkers_quorum_notify_and_mail"]),
    ("checkers", "misc_dynamic", &["lb-daemon/src/check/mod.rs::misc_check_exit_codes"]),
    ("real_server", "SSL_GET", &["tests/tests/checkers.rs::ssl_tcp_misc_checkers_quorum_notify_and_mail"]),
    (
        "real_server",
        "TCP_CHECK",
        &[
            "tests/tests/checkers.rs::ssl_tcp_misc_checkers_quorum_notify_and_mail",
            "tests/tests/checkers.rs::a_flapping_backend_link_is_detected_and_recovers",
        ],
    ),
    ("real_server", "UDP_CHECK", &["tests/tests/checkers.rs::udp_check_reply_data_and_port_unreachable"]),
    ("checkers", "payload", &["tests/tests/checkers.rs::udp_check_reply_data_and_port_unreachable"]),
    (
        "checkers",
        "require_reply",
        &[
            "tests/tests/checkers.rs::udp_check_reply_data_and_port_unreachable",
            "lb-daemon/src/check/udp.rs::reply_matching",
        ],
    ),
    ("real_server", "PING_CHECK", &["tests/tests/checkers.rs::ping_check_follows_icmp_echo"]),
    (
        "checkers",
        "retry",
        &[
            "lb-daemon/src/check/mod.rs::retries_then_down_and_up_on_first_success",
            "tests/tests/checkers.rs::http_get_takes_a_stopped_backend_out_and_back_under_traffic",
        ],
    ),
    (
        "real_server",
        "retry",
        &[
            "tests/tests/checkers.rs::real_server_defaults_reach_their_checkers_and_alpha_waits_for_a_success",
            "lb-daemon/src/check/mod.rs::checkers_inherit_real_server_then_virtual_server_values",
        ],
    ),
    (
        "virtual_server",
        "retry",
        &[
            "tests/tests/checkers.rs::virtual_server_defaults_reach_their_checkers",
            "lb-daemon/src/check/mod.rs::checkers_inherit_real_server_then_virtual_server_values",
        ],
    ),
    ("checkers", "warmup", &["lb-daemon/src/check/mod.rs::checkers_inherit_real_server_then_virtual_server_values"]),
    (
        "real_server",
        "warmup",
        &[
            "tests/tests/checkers.rs::warmup_from_the_real_or_virtual_server_spreads_the_first_checks",
            "lb-daemon/src/check/mod.rs::checkers_inherit_real_server_then_virtual_server_values",
        ],
    ),
    (
        "virtual_server",
        "warmup",
        &[
            "tests/tests/checkers.rs::warmup_from_the_real_or_virtual_server_spreads_the_first_checks",
            "lb-daemon/src/check/mod.rs::checkers_inherit_real_server_then_virtual_server_values",
        ],
    ),
    (
        "checkers",
        "virtualhost",
        &[
            "tests/tests/checkers.rs::ssl_tcp_misc_checkers_quorum_notify_and_mail",
            "lb-daemon/src/check/mod.rs::checkers_inherit_real_server_then_virtual_server_values",
        ],
    ),
    (
        "real_server",
        "virtualhost",
        &[
            "tests/tests/checkers.rs::virtualhost_from_the_real_or_virtual_server_names_the_host_as_keepalived",
            "lb-daemon/src/check/mod.rs::checkers_inherit_real_server_then_virtual_server_values",
        ],
    ),
    (
        "virtual_server",
        "virtualhost",
        &[
            "tests/tests/checkers.rs::virtualhost_from_the_real_or_virtual_server_names_the_host_as_keepalived",
            "lb-daemon/src/check/mod.rs::checkers_inherit_real_server_then_virtual_server_values",
        ],
    ),
    (
        "real_server",
        "notify_up",
        &[
            "tests/tests/checkers.rs::ssl_tcp_misc_checkers_quorum_notify_and_mail",
            "lb-daemon/src/daemon/node/tests.rs::a_real_server_going_down_notifies_mails_settles_quorum_and_reprograms",
        ],
    ),
    (
        "real_server",
        "notify_down",
        &[
            "tests/tests/checkers.rs::ssl_tcp_misc_checkers_quorum_notify_and_mail",
            "lb-daemon/src/daemon/node/tests.rs::a_real_server_going_down_notifies_mails_settles_quorum_and_reprograms",
        ],
    ),
    ("vrrp_instance", "notify", &["tests/tests/vrrp.rs::two_nodes_elect_one_master_fail_over_and_hand_back"]),
    (
        "global_defs",
        "notification_email",
        &[
            "tests/tests/checkers.rs::ssl_tcp_misc_checkers_quorum_notify_and_mail",
            "lb-daemon/src/notify/mail.rs::a_message_reaches_the_relay",
        ],
    ),
    ("global_defs", "notification_email_from", &["lb-daemon/src/notify/mail.rs::a_message_reaches_the_relay"]),
    (
        "global_defs",
        "smtp_server",
        &[
            "tests/tests/checkers.rs::ssl_tcp_misc_checkers_quorum_notify_and_mail",
            "lb-daemon/src/notify/mail.rs::a_message_reaches_the_relay",
        ],
    ),
    ("global_defs", "smtp_connect_timeout", &["tests/tests/checkers.rs::ssl_tcp_misc_checkers_quorum_notify_and_mail"]),
    ("global_defs", "smtp_alert_checker", &["tests/tests/checkers.rs::ssl_tcp_misc_checkers_quorum_notify_and_mail"]),
    ("global_defs", "router_id", &["lb-daemon/src/notify/mail.rs::a_message_reaches_the_relay"]),
    (
        "vrrp_instance",
        "smtp_alert",
        &[
            "tests/tests/vrrp.rs::two_nodes_elect_one_master_fail_over_and_hand_back",
            "lb-daemon/src/vrrp/engine/live.rs::an_instances_smtp_alert_false_silences_it_when_global_defs_mails",
        ],
    ),
    (
        "vrrp_instance",
        "nopreempt",
        &[
            "tests/tests/vrrp.rs::interop_keepalived_our_preemption_and_nopreempt",
            "lb-daemon/src/vrrp/instance.rs::preemption_rules",
        ],
    ),
    (
        "vrrp_instance",
        "preempt",
        &[
            "tests/tests/vrrp.rs::interop_keepalived_our_preemption_and_nopreempt",
            "lb-daemon/src/vrrp/instance.rs::preemption_rules",
        ],
    ),
    ("vrrp_instance", "preempt_delay", &["lb-daemon/src/vrrp/instance.rs::preemption_rules"]),
    (
        "vrrp_instance",
        "priority",
        &[
            "tests/tests/vrrp.rs::two_nodes_elect_one_master_fail_over_and_hand_back",
            "lb-daemon/src/vrrp/instance.rs::master_yields_to_higher_priority_or_equal_priority_higher_address",
        ],
    ),
    (
        "vrrp_instance",
        "down_timer_adverts",
        &[
            "tests/tests/vrrp.rs::down_timer_adverts_is_how_many_adverts_a_backup_waits_as_keepalived",
            "lb-daemon/src/vrrp/instance.rs::down_timer_adverts_sets_how_many_adverts_a_backup_waits",
        ],
    ),
    (
        "global_defs",
        "vrrp_down_timer_adverts",
        &[
            "lb-daemon/src/vrrp/instance.rs::down_timer_adverts_sets_how_many_adverts_a_backup_waits",
            "lb-daemon/src/config/tests.rs::election_variants_resolve_as_keepalived_s",
        ],
    ),
    (
        "vrrp_instance",
        "lower_prio_no_advert",
        &[
            "tests/tests/vrrp.rs::a_master_answers_lower_priority_adverts_as_keepalived_does",
            "lb-daemon/src/vrrp/instance.rs::a_master_hearing_a_lower_priority_answers_unless_lower_prio_no_advert",
        ],
    ),
    (
        "vrrp_instance",
        "higher_prio_send_advert",
        &[
            "tests/tests/vrrp.rs::a_master_answers_higher_priority_adverts_as_keepalived_does",
            "lb-daemon/src/vrrp/instance.rs::a_master_yielding_answers_only_with_higher_prio_send_advert",
        ],
    ),
    (
        "global_defs",
        "vrrp_higher_prio_send_advert",
        &[
            "tests/tests/vrrp.rs::a_master_answers_higher_priority_adverts_as_keepalived_does",
            "lb-daemon/src/config/tests.rs::election_variants_resolve_as_keepalived_s",
        ],
    ),
    (
        "global_defs",
        "vrrp_lower_prio_no_advert",
        &[
            "lb-daemon/src/vrrp/instance.rs::a_master_hearing_a_lower_priority_answers_unless_lower_prio_no_advert",
            "lb-daemon/src/config/tests.rs::election_variants_resolve_as_keepalived_s",
        ],
    ),
    (
        "vrrp_instance",
        "garp_lower_prio_repeat",
        &["tests/tests/vrrp.rs::a_master_answers_lower_priority_adverts_as_keepalived_does"],
    ),
    (
        "vrrp_instance",
        "garp_lower_prio_delay",
        &["tests/tests/vrrp.rs::a_master_answers_lower_priority_adverts_as_keepalived_does"],
    ),
    (
        "global_defs",
        "vrrp_garp_lower_prio_repeat",
        &[
            "tests/tests/vrrp.rs::a_master_answers_lower_priority_adverts_as_keepalived_does",
            "lb-daemon/src/config/tests.rs::election_variants_resolve_as_keepalived_s",
        ],
    ),
    (
        "global_defs",
        "vrrp_garp_lower_prio_delay",
        &["lb-daemon/src/config/tests.rs::election_variants_resolve_as_keepalived_s"],
    ),
    ("vrrp_instance", "unicast_ttl", &["tests/tests/vrrp.rs::unicast_ttl_is_the_ttl_of_unicast_adverts_on_the_wire"]),
    (
        "vrrp_instance",
        "use_vmac",
        &[
            "tests/tests/vrrp.rs::use_vmac_matches_keepalived",
            "tests/tests/vrrp.rs::interop_keepalived_use_vmac_failover_keeps_the_vips_mac",
            "tests/tests/vrrp.rs::interop_keepalived_use_vmac_ipv6_failover_keeps_the_vips_mac",
            "tests/tests/xdp_forward.rs::frames_to_a_vrrp_virtual_mac_are_ours_once_a_vmac_exists",
            "tests/tests/vrrp.rs::a_vmac_vip_is_load_balanced_by_its_master_across_failover",
        ],
    ),
    (
        "vrrp_instance",
        "vmac_xmit_base",
        &[
            "tests/tests/vrrp.rs::use_vmac_matches_keepalived",
            "tests/tests/vrrp.rs::interop_keepalived_vmac_xmit_base_failover_keeps_the_vips_mac",
            "tests/tests/vrrp.rs::interop_keepalived_vmac_xmit_base_ipv6_failover_keeps_the_vips_mac",
        ],
    ),
    ("global_defs", "vmac_prefix", &["tests/tests/vrrp.rs::use_vmac_matches_keepalived"]),
    (
        "vrrp_instance",
        "notify_priority_changes",
        &["tests/tests/vrrp.rs::notify_priority_changes_writes_keepalived_s_fifo_lines"],
    ),
    (
        "vrrp_instance",
        "notify_master_rx_lower_pri",
        &["tests/tests/vrrp.rs::a_master_hearing_a_lower_priority_notifies_as_keepalived"],
    ),
    (
        "vrrp_sync_group",
        "notify_priority_changes",
        &["lb-daemon/src/vrrp/engine/live.rs::priority_notices_follow_instance_then_group_then_global"],
    ),
    (
        "global_defs",
        "vrrp_notify_priority_changes",
        &[
            "tests/tests/vrrp.rs::notify_priority_changes_writes_keepalived_s_fifo_lines",
            "lb-daemon/src/vrrp/engine/live.rs::priority_notices_follow_instance_then_group_then_global",
        ],
    ),
    (
        "global_defs",
        "dynamic_interfaces",
        &[
            "tests/tests/vrrp.rs::dynamic_interfaces_runs_an_instance_once_its_interface_is_made_as_keepalived",
            "lb-daemon/src/config/tests.rs::dynamic_interfaces_lets_interfaces_be_missing",
        ],
    ),
    (
        "global_defs",
        "disable_local_igmp",
        &["tests/tests/vrrp.rs::disable_local_igmp_silences_the_group_join_as_keepalived"],
    ),
    (
        "global_defs",
        "vrrp_startup_delay",
        &[
            "lb-daemon/src/vrrp/instance.rs::a_startup_delay_holds_back_the_first_takeover_only",
            "tests/tests/vrrp.rs::vrrp_startup_delay_holds_back_the_first_takeover_as_keepalived",
        ],
    ),
    (
        "vrrp_instance",
        "promote_secondaries",
        &["tests/tests/vrrp.rs::promote_secondaries_keeps_a_vip_through_the_primary_s_removal_as_keepalived"],
    ),
    (
        "vrrp_instance",
        "skip_check_adv_addr",
        &[
            "tests/tests/vrrp.rs::a_backup_skipping_address_checks_keeps_a_master_whose_list_changes_as_keepalived",
            "lb-daemon/src/vrrp/engine/live.rs::only_a_backup_skips_the_address_check_of_its_known_master",
            "tests/tests/vrrp.rs::adverts_listing_other_addresses_are_dropped_as_keepalived_drops_them",
        ],
    ),
    (
        "global_defs",
        "vrrp_skip_check_adv_addr",
        &[
            "tests/tests/vrrp.rs::a_backup_skipping_address_checks_keeps_a_master_whose_list_changes_as_keepalived",
            "lb-daemon/src/vrrp/engine/live.rs::only_a_backup_skips_the_address_check_of_its_known_master",
            "tests/tests/vrrp.rs::adverts_listing_other_addresses_are_dropped_as_keepalived_drops_them",
        ],
    ),
    (
        "top level",
        "static_ipaddress",
        &[
            "tests/tests/vrrp.rs::static_and_virtual_routes",
            "tests/tests/vrrp.rs::static_and_virtual_routes_and_rules_match_keepalived",
        ],
    ),
    (
        "top level",
        "static_routes",
        &[
            "tests/tests/vrrp.rs::static_and_virtual_routes",
            "tests/tests/vrrp.rs::static_and_virtual_routes_and_rules_match_keepalived",
            "tests/tests/vrrp.rs::deleted_routes_and_rules_come_back_or_move_the_master_as_keepalived",
        ],
    ),
    (
        "top level",
        "static_rules",
        &[
            "tests/tests/vrrp.rs::static_and_virtual_routes_and_rules_match_keepalived",
            "tests/tests/vrrp.rs::static_and_virtual_routes",
            "tests/tests/vrrp.rs::deleted_routes_and_rules_come_back_or_move_the_master_as_keepalived",
        ],
    ),
    (
        "vrrp_instance",
        "virtual_routes",
        &[
            "tests/tests/vrrp.rs::static_and_virtual_routes",
            "tests/tests/vrrp.rs::static_and_virtual_routes_and_rules_match_keepalived",
            "tests/tests/vrrp.rs::deleted_routes_and_rules_come_back_or_move_the_master_as_keepalived",
        ],
    ),
    (
        "vrrp_instance",
        "virtual_rules",
        &[
            "tests/tests/vrrp.rs::static_and_virtual_routes_and_rules_match_keepalived",
            "tests/tests/vrrp.rs::deleted_routes_and_rules_come_back_or_move_the_master_as_keepalived",
        ],
    ),
    (
        "vrrp_instance",
        "unicast_peer",
        &[
            "tests/tests/vrrp.rs::interop_keepalived_v2_unicast",
            "tests/tests/vrrp.rs::interop_keepalived_v3_unicast",
            "tests/tests/vrrp.rs::unicast_sources_are_checked_only_when_asked_as_keepalived",
        ],
    ),
    (
        "vrrp_instance",
        "unicast_src_ip",
        &["tests/tests/vrrp.rs::interop_keepalived_v2_unicast", "tests/tests/vrrp.rs::interop_keepalived_v3_unicast"],
    ),
    (
        "vrrp_instance",
        "version",
        &[
            "tests/tests/vrrp.rs::interop_keepalived_v3_multicast",
            "tests/tests/vrrp.rs::ipv6_v3_pair_fails_over_with_neighbour_advertisements",
        ],
    ),
    (
        "vrrp_instance",
        "virtual_ipaddress",
        &[
            "tests/tests/vrrp.rs::two_nodes_elect_one_master_fail_over_and_hand_back",
            // Address options (flags, `peer`) in the kernel and in keepalived.data.
            "tests/tests/vrrp.rs::static_and_virtual_routes_and_rules_match_keepalived",
        ],
    ),
    (
        "vrrp_instance",
        "virtual_router_id",
        &[
            "tests/tests/vrrp.rs::an_address_shared_by_two_instances_stays_while_either_is_master",
            "lb-daemon/src/vrrp/packet.rs::every_receive_check_rejects_and_names_itself",
        ],
    ),
    ("top level", "vrrp_instance", &["tests/tests/vrrp.rs::two_nodes_elect_one_master_fail_over_and_hand_back"]),
    // lb-daemon's own: the anycast announcement and the Maglev seed (docs/scale-out.md).
    (
        "global_defs",
        "anycast_table",
        &[
            "lb-daemon/src/daemon/node/tests.rs::vips_are_announced_when_their_services_are_up_and_withdrawn_otherwise",
            "tests/tests/scale_out.rs::three_nodes_behind_ecmp_keep_mh_flows_through_a_node_loss_and_return",
        ],
    ),
    (
        "virtual_server",
        "anycast_track_instance",
        &["lb-daemon/src/daemon/node/tests.rs::vips_are_announced_when_their_services_are_up_and_withdrawn_otherwise"],
    ),
    (
        "global_defs",
        "mh_seed",
        &[
            "lb-daemon/src/daemon/node/tests.rs::mh_tables_are_the_same_on_every_node_with_the_same_config",
            "tests/tests/scale_out.rs::three_nodes_behind_ecmp_keep_mh_flows_through_a_node_loss_and_return",
        ],
    ),
    (
        "global_defs",
        "lb_sync_auth_key",
        &[
            "tests/tests/ctsync.rs::authenticated_sync_needs_the_same_key_on_both_nodes",
            "lb-daemon/src/dataplane/ctsync/auth.rs::a_sealed_message_opens_with_its_key_only",
        ],
    ),
    (
        "virtual_server",
        "mh_seed",
        &["lb-daemon/src/daemon/node/tests.rs::mh_tables_are_the_same_on_every_node_with_the_same_config"],
    ),
    // VRRP addressing decisions, proven on the pure functions the engine opens sockets with.
    (
        "vrrp_instance",
        "check_unicast_src",
        &[
            "tests/tests/vrrp.rs::unicast_sources_are_checked_only_when_asked_as_keepalived",
            "lb-daemon/src/vrrp/engine/live.rs::unicast_sources_are_checked_only_when_asked_as_keepalived",
        ],
    ),
    (
        "global_defs",
        "vrrp_check_unicast_src",
        &[
            "tests/tests/vrrp.rs::unicast_sources_are_checked_only_when_asked_as_keepalived",
            "lb-daemon/src/vrrp/engine/live.rs::unicast_sources_are_checked_only_when_asked_as_keepalived",
        ],
    ),
    (
        "vrrp_instance",
        "mcast_src_ip",
        &["lb-daemon/src/vrrp/engine/live.rs::advert_source_and_group_follow_mcast_src_ip_and_vrrp_mcast_group"],
    ),
    (
        "global_defs",
        "vrrp_mcast_group4",
        &["lb-daemon/src/vrrp/engine/live.rs::advert_source_and_group_follow_mcast_src_ip_and_vrrp_mcast_group"],
    ),
    (
        "global_defs",
        "vrrp_mcast_group6",
        &["lb-daemon/src/vrrp/engine/live.rs::advert_source_and_group_follow_mcast_src_ip_and_vrrp_mcast_group"],
    ),
    ("global_defs", "vrrp_version", &["lb-daemon/src/vrrp/engine/live.rs::vrrp_version_is_the_version_on_the_wire"]),
    (
        "vrrp_instance",
        "virtual_ipaddress_excluded",
        &["lb-daemon/src/vrrp/engine/live.rs::excluded_addresses_are_held_but_not_advertised"],
    ),
    (
        "vrrp_sync_group",
        "sync_group_tracking_weight",
        &["tests/tests/vrrp.rs::sync_group_tracking_weight_keeps_a_members_weights_as_keepalived"],
    ),
    (
        "vrrp_sync_group",
        "global_tracking",
        &["lb-daemon/src/config/tests.rs::global_tracking_is_sync_group_tracking_weight_with_a_warning"],
    ),
    (
        "url",
        "regex",
        &[
            "tests/tests/checkers.rs::url_regex_keeps_or_takes_out_a_real_server",
            "lb-daemon/src/check/mod.rs::regex_verdicts_follow_keepalived",
        ],
    ),
    (
        "url",
        "regex_no_match",
        &[
            "tests/tests/checkers.rs::url_regex_keeps_or_takes_out_a_real_server",
            "lb-daemon/src/check/mod.rs::regex_verdicts_follow_keepalived",
        ],
    ),
    (
        "url",
        "regex_options",
        &[
            "tests/tests/checkers.rs::url_regex_keeps_or_takes_out_a_real_server",
            "lb-daemon/src/check/mod.rs::regex_verdicts_follow_keepalived",
            "lb-daemon/src/config/tests.rs::url_regex_settings_as_keepalived_leaves_them",
        ],
    ),
    (
        "url",
        "regex_min_offset",
        &[
            "lb-daemon/src/check/mod.rs::regex_verdicts_follow_keepalived",
            "lb-daemon/src/config/tests.rs::url_regex_settings_as_keepalived_leaves_them",
        ],
    ),
    (
        "url",
        "regex_max_offset",
        &[
            "lb-daemon/src/check/mod.rs::regex_verdicts_follow_keepalived",
            "lb-daemon/src/config/tests.rs::url_regex_settings_as_keepalived_leaves_them",
        ],
    ),
    (
        "url",
        "regex_stack",
        &[
            "lb-daemon/src/check/mod.rs::regex_verdicts_follow_keepalived",
            "lb-daemon/src/config/tests.rs::url_regex_settings_as_keepalived_leaves_them",
        ],
    ),
    (
        "checkers",
        "http_protocol",
        &[
            "tests/tests/checkers.rs::http_protocol_sends_keepalived_s_request",
            "lb-daemon/src/check/http.rs::requests_are_keepalived_s_for_each_http_protocol",
        ],
    ),
    (
        "virtual_server",
        "ip_family",
        &[
            "lb-daemon/src/config/tests.rs::ip_family_settles_a_firewall_mark_s_family_as_keepalived",
            "lb-daemon/src/ipvs/tests.rs::a_firewall_mark_keeps_its_family_with_no_real_server_up",
            "tests/tests/ipvs.rs::ipvs_backend_in_the_61_vm",
        ],
    ),
    (
        "virtual_server",
        "persistence_engine",
        &[
            "lb-daemon/src/ipvs/tests.rs::persistence_engine_reaches_the_service",
            "tests/tests/ipvs.rs::ipvs_backend_in_the_61_vm",
        ],
    ),
    (
        "virtual_server",
        "sorry_server_lvs_method",
        &[
            "lb-daemon/src/ipvs/tests.rs::sorry_server_lvs_method_reaches_the_sorry_destination",
            "tests/tests/ipvs.rs::ipvs_backend_in_the_61_vm",
        ],
    ),
    (
        "virtual_server",
        "sorry_server_inhibit",
        &[
            "lb-daemon/src/ipvs/tests.rs::sorry_server_inhibit_keeps_the_sorry_server_at_weight_zero_above_quorum",
            "tests/tests/ipvs.rs::ipvs_backend_in_the_61_vm",
            "tests/tests/configs.rs::inherited_checker_defaults_get_keepalived_s_verdict",
        ],
    ),
    (
        "virtual_server",
        "ha_suspend",
        &["tests/tests/checkers.rs::ha_suspend_pauses_checks_until_the_vip_is_on_this_node"],
    ),
    (
        "vrrp_instance",
        "state",
        &["lb-daemon/src/vrrp/engine/live.rs::state_master_without_priority_is_the_address_owner"],
    ),
    (
        "global_defs",
        "smtp_alert",
        &[
            "lb-daemon/src/vrrp/engine/live.rs::smtp_alert_vrrp_wins_over_smtp_alert_for_vrrp_mail",
            "lb-daemon/src/daemon/node/tests.rs::checker_mail_follows_the_narrowest_smtp_alert",
        ],
    ),
    (
        "global_defs",
        "smtp_alert_vrrp",
        &["lb-daemon/src/vrrp/engine/live.rs::smtp_alert_vrrp_wins_over_smtp_alert_for_vrrp_mail"],
    ),
    (
        "virtual_server",
        "smtp_alert",
        &["lb-daemon/src/daemon/node/tests.rs::checker_mail_follows_the_narrowest_smtp_alert"],
    ),
    ("vrrp_instance", "debug", &["tests/tests/dumps.rs::dump_files_and_state_lines_read_as_keepalived_s"]),
    ("vrrp_sync_group", "smtp_alert", &["tests/tests/vrrp.rs::a_sync_groups_smtp_alert_mails_like_keepalived"]),
    ("vrrp_script", "init_fail", &["lb-daemon/src/vrrp/tracking.rs::init_fail_scripts_start_failed"]),
    (
        "vrrp_instance",
        "lvs_sync_daemon_interface",
        &["lb-daemon/src/daemon/node/tests.rs::connection_sync_follows_the_instance_naming_lvs_sync_daemon_interface"],
    ),
    (
        "global_defs",
        "lb_backend",
        &["lb-daemon/src/config/tests.rs::lb_backend_chooses_the_backend_unless_backend_is_given"],
    ),
    (
        "checkers",
        "connect_ip",
        &["lb-daemon/src/check/mod.rs::checkers_connect_to_connect_ip_from_bindto_and_bind_port"],
    ),
    ("checkers", "bindto", &["lb-daemon/src/check/mod.rs::checkers_connect_to_connect_ip_from_bindto_and_bind_port"]),
    (
        "checkers",
        "bind_if",
        &[
            "tests/tests/checkers.rs::bind_if_ties_a_checkers_probe_to_its_interface",
            "lb-daemon/src/check/tcp.rs::open_and_closed_ports",
        ],
    ),
    (
        "checkers",
        "bind_port",
        &["lb-daemon/src/check/mod.rs::checkers_connect_to_connect_ip_from_bindto_and_bind_port"],
    ),
    // DNS_CHECK's `name`: the question asked, byte for byte.
    ("checkers", "name", &["tests/tests/checkers.rs::dns_check_follows_the_answer_code"]),
    (
        "virtual_server",
        "ops",
        &[
            "lb-daemon/src/ipvs/tests.rs::scheduler_flags_from_the_config_reach_ipvs_as_ipvsadm_sends_them",
            "lb-daemon/src/ipvs/tests.rs::plan_follows_ipvsadm_and_keepalived",
            "tests/tests/ipvs.rs::ipvs_backend_in_the_61_vm",
        ],
    ),
];

#[cfg(test)]
mod tests {
    use std::{collections::BTreeSet, path::Path};

    use super::*;
    use crate::config::{docs, keyword};

    fn workspace() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
    }

    /// Every test `ACTED` names exists: `fn NAME(` in the named file.
    #[test]
    fn every_named_test_exists() {
        let mut missing = Vec::new();
        for (block, word, tests) in ACTED {
            assert!(!tests.is_empty(), "{word} in {block}: no test named");
            for t in *tests {
                let (file, name) = t.split_once("::").unwrap_or_else(|| panic!("{t}: not FILE::function"));
                let text = std::fs::read_to_string(workspace().join(file)).unwrap_or_default();
                if !text.contains(&format!("fn {name}(")) {
                    missing.push(format!("{word} in {block}: {t}"));
                }
            }
        }
        assert!(missing.is_empty(), "tests named in keyword_states::ACTED that do not exist:\n{}", missing.join("\n"));
    }

    /// Every keyword keepalived knows is in exactly one state; acted-on entries name keywords
    /// the tables read.
    #[test]
    fn every_keepalived_keyword_is_in_exactly_one_state() {
        let read: BTreeSet<&str> = docs::supported().iter().map(|(_, k)| *k).collect();
        let refused_in_block: BTreeSet<&str> = keyword::REFUSED.iter().map(|(_, k, _)| *k).collect();
        let anywhere: BTreeSet<&str> = REFUSED_ANYWHERE.iter().map(|(k, _, _)| *k).collect();
        let quiet: Vec<&str> = WITHOUT_EFFECT.iter().flat_map(|(_, ks)| ks.iter().copied()).collect();
        let quiet_set: BTreeSet<&str> = quiet.iter().copied().collect();
        assert_eq!(quiet.len(), quiet_set.len(), "a keyword twice in WITHOUT_EFFECT");
        assert_eq!(anywhere.len(), REFUSED_ANYWHERE.len(), "a keyword twice in REFUSED_ANYWHERE");
        let mut wrong = Vec::new();
        for k in keyword::keepalived_keywords() {
            let acted_or_refused = read.contains(k) || refused_in_block.contains(k);
            let states = [acted_or_refused, anywhere.contains(k), quiet_set.contains(k)];
            if states.iter().filter(|s| **s).count() != 1 {
                wrong.push(format!(
                    "{k}: read/refused in a block {}, refused anywhere {}, without effect {}",
                    states[0], states[1], states[2]
                ));
            }
        }
        for k in quiet_set.iter().chain(anywhere.iter()) {
            if !keyword::is_keepalived_keyword(k) {
                wrong.push(format!("{k}: not a keepalived keyword"));
            }
        }
        let pairs: BTreeSet<(&str, &str)> = docs::supported().into_iter().collect();
        for (block, word, _) in ACTED {
            if !pairs.contains(&(*block, *word)) {
                wrong.push(format!("{word} in {block}: in ACTED but no table reads it there"));
            }
        }
        for (block, word, _) in keyword::REFUSED {
            let block = if *block == "the top level" { "top level" } else { block };
            if pairs.contains(&(block, *word)) {
                wrong.push(format!("{word} in {block}: both read by a table and refused"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    /// Every keyword keepalived 2.2.7 reads in a block is, in that block, read by our table,
    /// refused, or without effect: none reaches `Ctx::apply`'s "keepalived acts on it here"
    /// error, and none is ignored because some other block's table reads it.
    #[test]
    fn every_keepalived_227_keyword_has_a_state_in_its_own_block() {
        let read: BTreeSet<(&str, &str)> = docs::supported().into_iter().collect();
        let checkers = ["HTTP_GET", "SSL_GET", "TCP_CHECK", "MISC_CHECK", "UDP_CHECK", "DNS_CHECK", "PING_CHECK"];
        let mut wrong = Vec::new();
        for (block, word) in keyword::keepalived_227_pairs() {
            // docs::supported's names for apply's blocks.
            let table = match block {
                "the top level" => "top level",
                b if checkers.contains(&b) || b == "SMTP_CHECK" || b == "host" => "checkers",
                b => b,
            };
            let states = [
                read.contains(&(table, word)),
                keyword::refused(block, word).is_some(),
                without_effect(word).is_some(),
            ];
            if states.iter().filter(|s| **s).count() != 1 {
                wrong.push(format!(
                    "{word} in {block}: read {}, refused {}, without effect {}",
                    states[0], states[1], states[2]
                ));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    /// A refused-anywhere keyword is a located error saying what to use instead; one
    /// without effect is a located warning saying why.
    #[test]
    fn refused_and_without_effect_keywords_say_so_where_they_are() {
        for (word, _, instead) in REFUSED_ANYWHERE {
            let l = crate::config::parse_str("r.conf", &format!("global_defs {{\n  {word} 1\n}}\n"));
            let e =
                l.diagnostics.iter().map(|d| l.sources.render(d)).find(|d| d.contains(": error: ")).unwrap_or_default();
            assert!(e.starts_with("r.conf:2:3: error: "), "{word}: {e}");
            assert!(
                e.contains(&format!("`{word}` in global_defs changes who gets traffic")) && e.contains(instead),
                "{e}"
            );
        }
        for (why, words) in WITHOUT_EFFECT {
            for word in *words {
                let l = crate::config::parse_str("w.conf", &format!("vrrp_instance VI_1 {{\n  {word} 1\n}}\n"));
                let w = l.diagnostics.iter().map(|d| l.sources.render(d)).find(|d| d.contains(&format!("`{word}`")));
                let w = w.unwrap_or_default();
                assert!(w.starts_with("w.conf:2:3: warning: ") && w.contains(why), "{word}: {w}");
            }
        }
    }
}
