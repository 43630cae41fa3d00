//! The typed configuration every part of the daemon reads (VRRP, checkers, BPF data plane,
//! IPVS). Immutable once built: a reload builds a new one. Defaults are keepalived's, as its
//! documentation gives them; each is stated where the field is.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::{Deserialize, Serialize};

use super::diag::Span;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub global: GlobalDefs,
    pub static_ipaddress: Vec<IpAddress>,
    pub static_routes: Vec<Route>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub static_rules: Vec<super::Rule>,
    pub vrrp_scripts: Vec<VrrpScript>,
    /// `track_file` / `vrrp_track_file` blocks.
    #[serde(default)]
    pub track_files: Vec<TrackFile>,
    /// `vrrp_track_process` blocks.
    #[serde(default)]
    pub track_processes: Vec<TrackProcess>,
    /// `bfd_instance` blocks (BFD sessions `track_bfd` and `BFD_CHECK` follow).
    #[serde(default)]
    pub bfd_instances: Vec<BfdInstance>,
    /// `track_group` blocks: instances that static addresses, routes and rules name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub track_groups: Vec<TrackGroup>,
    pub vrrp_sync_groups: Vec<SyncGroup>,
    pub vrrp_instances: Vec<VrrpInstance>,
    pub virtual_server_groups: Vec<VirtualServerGroup>,
    pub virtual_servers: Vec<VirtualServer>,
    /// `garp_group` blocks: announcement spacing for their interfaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub garp_groups: Vec<GarpGroup>,
    /// `interface_up_down_delays`: how long an interface's change must last before the
    /// instances using or tracking it see it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interface_up_down_delays: Vec<UpDownDelay>,
    /// The top-level `SSL` block (keepalived's one SSL context for every SSL_GET checker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl: Option<SslContext>,
    /// `ssl`'s certificate and key as the daemon loaded them at start or reload
    /// (`check::tls::load`); `-t` reads no file, as keepalived's does not.
    #[serde(skip)]
    pub ssl_loaded: Option<std::sync::Arc<ClientCert>>,
}

/// `garp_group { garp_interval S; gna_interval S; interface NAME | interfaces { ... } }`:
/// the gaps between gratuitous ARPs / unsolicited NAs on those interfaces, instead of
/// `vrrp_garp_interval` / `vrrp_gna_interval` (keepalived 2.2.7's vrrp_parser.c; one of the
/// two left unset is no gap there, not the global one).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GarpGroup {
    pub garp_interval_us: Option<u32>,
    pub gna_interval_us: Option<u32>,
    pub interfaces: Vec<String>,
    #[serde(skip)]
    pub span: Span,
}

/// One line of `interface_up_down_delays`: `IFNAME DOWN [UP]`, seconds (microsecond
/// resolution, at most 255); UP is 0 when not given (keepalived 2.2.7's code; its man page
/// says the down delay).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpDownDelay {
    pub iface: String,
    pub down_us: u32,
    pub up_us: u32,
    #[serde(skip)]
    pub span: Span,
}

/// The top-level `SSL` block, as keepalived 2.2.7's check_ssl.c uses it: SSL_GET presents
/// `certificate` (a PEM chain) with `key` (PEM, decrypted with `password` if encrypted) as its
/// client certificate. The server's certificate is never verified (keepalived sets no verify
/// mode), so `ca` only has to load.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SslContext {
    #[serde(skip)]
    pub password: Option<String>,
    pub ca: Option<String>,
    pub certificate: Option<String>,
    pub key: Option<String>,
    #[serde(skip)]
    pub span: Span,
}

impl std::fmt::Debug for SslContext {
    // The password stays out of `--dump-conf` and logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SslContext")
            .field("password", &self.password.as_ref().map(|_| "<set>"))
            .field("ca", &self.ca)
            .field("certificate", &self.certificate)
            .field("key", &self.key)
            .finish()
    }
}

/// The `SSL` block's client certificate as loaded: the chain and the key, DER.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCert {
    pub chain: Vec<Vec<u8>>,
    pub key: Vec<u8>,
    pub key_format: KeyFormat,
}

/// How `ClientCert::key` is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyFormat {
    /// PKCS#1 RSA (`BEGIN RSA PRIVATE KEY`).
    Pkcs1,
    /// SEC1 EC (`BEGIN EC PRIVATE KEY`).
    Sec1,
    /// PKCS#8 (`BEGIN PRIVATE KEY`, or an `ENCRYPTED PRIVATE KEY` once decrypted).
    Pkcs8,
}

impl std::fmt::Debug for ClientCert {
    // The key stays out of `--dump-conf` and logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCert")
            .field("chain", &format_args!("{} certificate(s)", self.chain.len()))
            .field("key", &format_args!("{:?} key", self.key_format))
            .finish()
    }
}

/// A user and optional group scripts run as (`script_user`, `user`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunAs {
    pub user: String,
    pub group: Option<String>,
}

/// A script to run: the command line as written (keepalived splits it like a shell would,
/// without running a shell).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Script {
    pub command: String,
    #[serde(skip)]
    pub span: Span,
}

/// A secret from the config: never printed, logged or dumped (its serialized form is a
/// placeholder).
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("(secret)")
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GlobalDefs {
    pub notification_email: Vec<String>,
    pub notification_email_from: Option<String>,
    /// SMTP relay and port (default port 25).
    pub smtp_server: Option<(String, u16)>,
    /// Seconds; keepalived's default is 30.
    pub smtp_connect_timeout: u32,
    /// `smtp_alert`: mail on every state change unless a narrower setting says otherwise.
    pub smtp_alert: Option<bool>,
    /// `smtp_alert_vrrp` / `smtp_alert_checker`: the same, for VRRP or checker changes only.
    pub smtp_alert_vrrp: Option<bool>,
    pub smtp_alert_checker: Option<bool>,
    /// Defaults to the host name when unset.
    pub router_id: Option<String>,
    /// Interface for static addresses without `dev`; keepalived's default is eth0.
    pub default_interface: Option<String>,
    pub vrrp_mcast_group4: Ipv4Addr,
    pub vrrp_mcast_group6: Ipv6Addr,
    /// 2 or 3; default 2.
    pub vrrp_version: u8,
    pub script_user: Option<RunAs>,
    pub enable_script_security: bool,
    /// Seconds after becoming master before the second burst of gratuitous ARPs; default 5.
    pub vrrp_garp_master_delay: u32,
    /// Gratuitous ARPs per burst; default 5.
    pub vrrp_garp_master_repeat: u32,
    /// Seconds between periodic gratuitous ARP refreshes while master; 0 (default) = never.
    pub vrrp_garp_master_refresh: u32,
    pub vrrp_garp_master_refresh_repeat: u32,
    /// `reload_file [PATH]`: a file that exists while a SIGHUP reload reads the
    /// configuration, so tools updating it can wait for its removal. Without a path,
    /// keepalived's default, settled once the whole configuration is read
    /// (`global::complete`): /run/keepalived/keepalived_INSTANCE.reload with `instance`,
    /// /run/keepalived/keepalived.reload with `use_pid_dir`, else /run/keepalived.reload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reload_file: Option<std::path::PathBuf>,
    /// The top-level `instance NAME` (keepalived's instance name): names the reload file's
    /// default and, with `data_use_instance`, keepalived's dump files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The top-level `use_pid_dir` (also implied by `instance`): keepalived's run files in
    /// /run/keepalived/.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub use_pid_dir: bool,
    /// `data_use_instance [BOOL]`: keepalived's data dump is named after the instance,
    /// `keepalived.INSTANCE.data` (keepalived's `open_dump_file`; the stats and JSON dumps
    /// keep their names).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub data_use_instance: bool,
    /// `reload_time_file PATH` / `reload_repeat`: a reload at the time the file names
    /// (`daemon::reload_timer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reload_time_file: Option<std::path::PathBuf>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reload_repeat: bool,
    /// `nftables [TABLE]`: the no_accept drop rules' table (keepalived's default name
    /// `keepalived`); None: lb-daemon's own `lb_daemon_no_accept`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nftables: Option<String>,
    /// `nftables_priority`: their chains' priority (keepalived's default -1).
    #[serde(default = "default_nftables_priority")]
    pub nftables_priority: i32,
    /// `nftables_counters`: a counter on each rule.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nftables_counters: bool,
    /// `vrrp_garp_extra_if [all] SECONDS` (0 seconds: off), for instances without their own.
    #[serde(default)]
    pub vrrp_garp_extra_if: GarpExtraIf,
    /// `vrrp_garp_interval` / `vrrp_gna_interval`: microseconds between gratuitous ARPs /
    /// unsolicited neighbour advertisements (0: sent back to back).
    #[serde(default)]
    pub vrrp_garp_interval_us: u32,
    #[serde(default)]
    pub vrrp_gna_interval_us: u32,
    /// `vrrp_startup_delay`: microseconds after start before a backup's Master_Down timer may
    /// run out (0: none), as keepalived's `vrrp_delayed_start_time`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub vrrp_startup_delay_us: u32,
    /// `dynamic_interfaces`: interfaces the VRRP configuration names may be missing; an
    /// instance on a missing one is in FAULT until it is made (`vrrp::engine`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dynamic_interfaces: bool,
    /// `dynamic_interfaces allow_if_changes`: keepalived's leave to a macvlan to change its
    /// kind or base; lb-daemon makes neither check, so it changes nothing here.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_if_changes: bool,
    /// `disable_local_igmp`: net.ipv4.igmp_link_local_mcast_reports=0 while lb-daemon runs,
    /// so joining 224.0.0.18 sends no IGMP report.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disable_local_igmp: bool,
    /// `vrrp_notify_priority_changes [BOOL]`: the default of `notify_priority_changes`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub vrrp_notify_priority_changes: bool,
    /// `vmac_prefix`: the default VMAC names are PREFIX.VRID instead of vrrp.VRID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmac_prefix: Option<String>,
    pub vrrp_strict: bool,
    /// `vrrp_skip_check_adv_addr`: the default of each instance's `skip_check_adv_addr`.
    #[serde(default)]
    pub vrrp_skip_check_adv_addr: bool,
    /// `vrrp_check_unicast_src`: every unicast instance checks its adverts' source against its
    /// `unicast_peer` list (as each instance's `check_unicast_src`).
    #[serde(default)]
    pub vrrp_check_unicast_src: bool,
    /// `vrrp_down_timer_adverts` (1-100): the default of each instance's `down_timer_adverts`
    /// (keepalived's default 3, the RFC's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrrp_down_timer_adverts: Option<u8>,
    /// `vrrp_lower_prio_no_advert [BOOL]`: the default of each instance's `lower_prio_no_advert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrrp_lower_prio_no_advert: Option<bool>,
    /// `vrrp_higher_prio_send_advert [BOOL]`: the default of each instance's
    /// `higher_prio_send_advert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrrp_higher_prio_send_advert: Option<bool>,
    /// `vrrp_garp_lower_prio_repeat`: the default of each instance's `garp_lower_prio_repeat`
    /// (unset: `vrrp_garp_master_repeat`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrrp_garp_lower_prio_repeat: Option<u32>,
    /// `vrrp_garp_lower_prio_delay` (seconds): the default of each instance's
    /// `garp_lower_prio_delay` (unset: `vrrp_garp_master_delay`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrrp_garp_lower_prio_delay: Option<u32>,
    pub lvs_sync_daemon: Option<LvsSyncDaemon>,
    /// `lvs_timeouts`: IPVS's connection timeouts; `None` leaves the kernel's as they are.
    pub lvs_timeouts: Option<LvsTimeouts>,
    /// `lvs_flush`: empty the whole IPVS table at start (not at a reload).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lvs_flush: bool,
    /// `lvs_flush_on_stop` / `lvs_flush_onstop` [VS]: how IPVS is cleared at stop.
    #[serde(default, skip_serializing_if = "FlushOnStop::is_default")]
    pub lvs_flush_on_stop: FlushOnStop,
    /// `lb_backend` (lb-daemon's own keyword): which forwarding backend runs; `--backend`
    /// overrides it.
    pub lb_backend: Option<BackendKind>,
    /// `anycast_table N` (lb-daemon's own): announce each VIP whose services are up as a
    /// blackhole route (`proto keepalived`) in kernel table N, for a routing daemon (BIRD's
    /// `protocol kernel`) to export; None: no routes (as keepalived).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anycast_table: Option<u32>,
    /// `mh_seed N` (lb-daemon's own): the Maglev tables' hash seed for every service that does
    /// not set its own; None: each service's seed is a hash of its address, port and protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mh_seed: Option<u64>,
    /// `lb_sync_auth_key SECRET` (lb-daemon's own): connection sync between lb nodes signs
    /// and checks every datagram (`dataplane::ctsync::auth`); None: the kernel's protocol as it
    /// is, unauthenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lb_sync_auth_key: Option<Secret>,
    /// `notify_fifo` (VRRP and checker lines), `vrrp_notify_fifo`, `lvs_notify_fifo`.
    #[serde(default, skip_serializing_if = "NotifyFifos::is_unset")]
    pub notify_fifos: NotifyFifos,
    /// `startup_script SCRIPT [USER [GROUP]]`: run once before anything starts, and waited
    /// for (`startup_script_timeout` seconds, default 10); not again at a reload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_script: Option<(Script, Option<RunAs>)>,
    pub startup_script_timeout: u32,
    /// `shutdown_script SCRIPT [USER [GROUP]]`: run once everything has stopped, as the
    /// configuration then running names it, and waited for (`shutdown_script_timeout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown_script: Option<(Script, Option<RunAs>)>,
    pub shutdown_script_timeout: u32,
    /// `rs_init_notifies`: a real server that starts up (at start, or new in a reload) runs
    /// its notify_up and writes its FIFO line, as if it had just come up.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rs_init_notifies: bool,
}

impl GlobalDefs {
    /// Whether every VRRP state change sends mail unless an instance or group says otherwise:
    /// `smtp_alert_vrrp`, else `smtp_alert`.
    pub fn vrrp_mail(&self) -> bool {
        self.smtp_alert_vrrp.or(self.smtp_alert).unwrap_or(false)
    }
}

/// keepalived's notify FIFOs, each with its optional reader script (`*_notify_fifo_script`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyFifos {
    pub global: NotifyFifo,
    pub vrrp: NotifyFifo,
    pub lvs: NotifyFifo,
}

impl NotifyFifos {
    pub fn is_unset(&self) -> bool {
        self == &Self::default()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyFifo {
    /// `notify_fifo PATH [USER [GROUP]]`: the FIFO (created if missing) and its owner.
    pub path: Option<std::path::PathBuf>,
    pub owner: Option<RunAs>,
    /// `notify_fifo_script SCRIPT [USER [GROUP]]`: started with the FIFO's path as its
    /// last argument, to read the lines.
    pub script: Option<(Script, Option<RunAs>)>,
}

impl Default for GlobalDefs {
    fn default() -> Self {
        Self {
            notification_email: Vec::new(),
            notification_email_from: None,
            smtp_server: None,
            smtp_connect_timeout: 30,
            smtp_alert: None,
            smtp_alert_vrrp: None,
            smtp_alert_checker: None,
            router_id: None,
            default_interface: None,
            vrrp_mcast_group4: Ipv4Addr::new(224, 0, 0, 18),
            vrrp_mcast_group6: Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12),
            vrrp_version: 2,
            script_user: None,
            enable_script_security: false,
            vrrp_garp_master_delay: 5,
            vrrp_garp_master_repeat: 5,
            vrrp_garp_master_refresh: 0,
            vrrp_garp_extra_if: GarpExtraIf::default(),
            reload_file: None,
            instance: None,
            use_pid_dir: false,
            data_use_instance: false,
            reload_time_file: None,
            reload_repeat: false,
            nftables: None,
            nftables_priority: default_nftables_priority(),
            nftables_counters: false,
            vrrp_garp_master_refresh_repeat: 1,
            vrrp_garp_interval_us: 0,
            vmac_prefix: None,
            vrrp_gna_interval_us: 0,
            vrrp_startup_delay_us: 0,
            dynamic_interfaces: false,
            allow_if_changes: false,
            disable_local_igmp: false,
            vrrp_notify_priority_changes: false,
            vrrp_strict: false,
            vrrp_skip_check_adv_addr: false,
            vrrp_check_unicast_src: false,
            vrrp_down_timer_adverts: None,
            vrrp_lower_prio_no_advert: None,
            vrrp_higher_prio_send_advert: None,
            vrrp_garp_lower_prio_repeat: None,
            vrrp_garp_lower_prio_delay: None,
            lvs_sync_daemon: None,
            lvs_timeouts: None,
            lvs_flush: false,
            lvs_flush_on_stop: FlushOnStop::default(),
            lb_backend: None,
            anycast_table: None,
            mh_seed: None,
            lb_sync_auth_key: None,
            notify_fifos: NotifyFifos::default(),
            startup_script: None,
            startup_script_timeout: 10,
            shutdown_script: None,
            shutdown_script_timeout: 10,
            rs_init_notifies: false,
        }
    }
}

/// How the IPVS table is cleared at stop (keepalived's `lvs_flush_on_stop`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum FlushOnStop {
    /// Each configured service's real servers, then the service (keepalived's default).
    #[default]
    No,
    /// Each configured service at once (`VS`): the same table afterwards.
    Vs,
    /// The whole table, services this daemon did not create included.
    Full,
}

impl FlushOnStop {
    pub fn is_default(&self) -> bool {
        *self == FlushOnStop::No
    }
}

/// `lvs_timeouts [tcp N] [tcpfin N] [udp N]`: seconds; an unnamed one (0) keeps the
/// kernel's current value, as IPVS_CMD_SET_CONFIG does with a zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LvsTimeouts {
    pub tcp: u32,
    pub tcpfin: u32,
    pub udp: u32,
    #[serde(skip)]
    pub span: Span,
}

/// `lvs_sync_daemon INTERFACE [[inst] VRRP_INSTANCE] [id N] [maxlen N] [port N] [ttl N]
/// [group IP]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LvsSyncDaemon {
    pub interface: String,
    /// The VRRP instance the sync role follows; `None`: master and backup at once.
    pub vrrp_instance: Option<String>,
    pub sync_id: Option<u8>,
    /// `maxlen`: the sync datagrams' largest UDP payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maxlen: Option<u16>,
    /// `port`: the multicast port (8848 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// `ttl`: the multicast TTL (1 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u8>,
    /// `group`: the multicast group (224.0.0.81 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<IpAddr>,
    #[serde(skip)]
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scope {
    Global,
    Site,
    Link,
    Host,
    Nowhere,
}

/// An address in `ip addr` syntax: `ADDR[/LEN] [brd ADDR] [dev IF] [scope S] [label L]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IpAddress {
    pub addr: IpAddr,
    /// Prefix length; /32 (/128) when not given, as keepalived.
    pub prefix: u8,
    pub broadcast: Option<Ipv4Addr>,
    pub dev: Option<String>,
    pub scope: Option<Scope>,
    pub label: Option<String>,
    /// `peer ADDR`: the other end of a point-to-point address (netlink's IFA_ADDRESS, the
    /// address itself IFA_LOCAL); the prefix is then /32 (/128), as keepalived makes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<IpAddr>,
    /// IPv6 `preferred_lft` in seconds (`u32::MAX` = forever). Unset: keepalived's default,
    /// 0 for a /128 (deprecated, so never picked as a source address), forever otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_lft: Option<u32>,
    /// `home`, `mngtmpaddr`, `noprefixroute`, `autojoin`: their `IFA_F_*` bits, added with
    /// the address as keepalived's `netlink_ipaddress` adds them.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub flags: u32,
    /// `-nodad`: an IPv6 address goes through duplicate address detection (keepalived adds
    /// IPv6 addresses with IFA_F_NODAD unless told this).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dad: bool,
    /// `no_track`: a master keeps its state when something else deletes this address
    /// (without it, keepalived's master hands over and takes the addresses back).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_track: bool,
    /// `track_group NAME` (static addresses only): that group's instances track the
    /// address's interface (`VrrpInstance::track_static`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track_group: Option<String>,
    #[serde(skip)]
    pub span: Span,
}

/// A `track_group NAME { group { VI_1 ... } }` block (keepalived 2.2.7's static track group).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrackGroup {
    pub name: String,
    pub group: Vec<String>,
    #[serde(skip)]
    pub span: Span,
}

/// `IpAddress::flags` bits (linux/if_addr.h).
pub const IFA_F_HOMEADDRESS: u32 = 0x10;
pub const IFA_F_MANAGETEMPADDR: u32 = 0x100;
pub const IFA_F_NOPREFIXROUTE: u32 = 0x200;
pub const IFA_F_MCAUTOJOIN: u32 = 0x400;

impl IpAddress {
    /// The device it goes on: its own `dev`, else `default` (its instance's interface).
    pub fn device<'a>(&'a self, default: &'a str) -> &'a str {
        self.dev.as_deref().unwrap_or(default)
    }

    /// The preferred lifetime keepalived gives this address: `None` is forever.
    pub fn preferred_lifetime(&self) -> Option<u32> {
        if !self.addr.is_ipv6() {
            return None;
        }
        let lft = self.preferred_lft.unwrap_or(if self.prefix == 128 { 0 } else { u32::MAX });
        (lft != u32::MAX).then_some(lft)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RouteType {
    Unicast,
    Blackhole,
    Unreachable,
    Prohibit,
}

/// A route in `ip route` syntax: `[TYPE] [to] DEST[/LEN] [via|gw GW] [dev IF] [src ADDR]
/// [table N] [metric N] [scope S] [proto P]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Route {
    pub kind: RouteType,
    pub dest: IpAddr,
    pub prefix: u8,
    pub via: Option<IpAddr>,
    pub dev: Option<String>,
    pub src: Option<IpAddr>,
    pub table: Option<u32>,
    pub metric: Option<u32>,
    pub scope: Option<Scope>,
    pub protocol: Option<u8>,
    /// `onlink`: the gateway is on the link even if no prefix of it says so.
    #[serde(default)]
    pub onlink: bool,
    /// `add` / `append` / `prepend`: what the kernel does beside a route already there.
    #[serde(default)]
    pub mode: RouteMode,
    /// `tos` / `dsfield`.
    #[serde(default)]
    pub tos: Option<u8>,
    /// `realms [FROM/]TO` (IPv4): FROM in the high 16 bits.
    #[serde(default)]
    pub realms: Option<u32>,
    /// `from PREFIX` (IPv6 only): a source-specific route (RTA_SRC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<(IpAddr, u8)>,
    /// `expires SECONDS` (IPv6 only): the kernel removes the route then (RTA_EXPIRES).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u32>,
    /// `pref low|medium|high|N` (IPv6 only): the router preference (RTA_PREF, RFC 4191's
    /// values: low 3, medium 0, high 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pref: Option<u8>,
    /// `mtu`, `advmss`, `window`, ... (RTA_METRICS).
    #[serde(default, skip_serializing_if = "RouteMetrics::is_empty")]
    pub metrics: RouteMetrics,
    /// `no_track` as written: keepalived neither tracks the route nor forces its protocol.
    #[serde(default)]
    pub no_track: bool,
    /// `nexthop ...` (or the older `via A or B`): a multipath route.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nexthops: Vec<NextHop>,
    /// `track_group NAME` (static routes with a `dev` only): as `IpAddress::track_group`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track_group: Option<String>,
    #[serde(skip)]
    pub span: Span,
}

/// How a route is added (keepalived's `add` / `append` / `prepend`; prepend is its default
/// and the kernel's: NLM_F_CREATE alone).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteMode {
    #[default]
    Prepend,
    /// NLM_F_EXCL: an equal route already there is an error.
    Add,
    /// NLM_F_APPEND.
    Append,
}

/// A route's metrics, as keepalived 2.2.7's `alloc_route` reads them (units as written; the
/// kernel's RTAX_* values). `lock`: bit 1 << RTAX_* for each metric written with `lock`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteMetrics {
    pub mtu: Option<u32>,
    pub window: Option<u32>,
    pub ssthresh: Option<u32>,
    pub cwnd: Option<u32>,
    pub advmss: Option<u32>,
    pub reordering: Option<u32>,
    pub hoplimit: Option<u8>,
    pub initcwnd: Option<u32>,
    pub initrwnd: Option<u32>,
    pub quickack: Option<u32>,
    pub fastopen_no_cookie: Option<u32>,
    pub features_ecn: bool,
    pub congctl: Option<String>,
    /// `rtt`, `rttvar`, `rto_min` in the kernel's units (1/8000 s, 1/4000 s, 1 ms).
    pub rtt: Option<u32>,
    pub rttvar: Option<u32>,
    pub rto_min: Option<u32>,
    pub lock: u32,
}

impl RouteMetrics {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// One `nexthop [via [inet|inet6] ADDR] [dev IF] [weight 1-256] [onlink]` of a multipath route.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NextHop {
    pub via: Option<IpAddr>,
    pub dev: Option<String>,
    /// As written (1-256); the kernel's is one less.
    pub weight: Option<u16>,
    pub onlink: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VrrpScript {
    pub name: String,
    pub script: Option<Script>,
    /// Seconds between runs; default 1.
    pub interval: u32,
    /// Seconds before a run counts as failed; default: the interval.
    pub timeout: Option<u32>,
    /// Priority change, -254..254; keepalived 2's default 0 (keepalived 1.x documented 2).
    pub weight: i32,
    /// Successes needed to become OK; default 1.
    pub rise: u32,
    /// Failures needed to become failed; default 1.
    pub fall: u32,
    pub user: Option<RunAs>,
    /// Start in the failed state.
    pub init_fail: bool,
    /// `weight N reverse`: the priority moves the other way (keepalived's multiplier -1).
    #[serde(default)]
    pub reverse: bool,
    #[serde(skip)]
    pub span: Span,
}

/// `notify_*` scripts and `smtp_alert`, shared by sync groups and instances.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Notify {
    pub master: Option<Script>,
    pub backup: Option<Script>,
    pub fault: Option<Script>,
    pub stop: Option<Script>,
    /// Called after the state-specific script with GROUP|INSTANCE, name, state, priority.
    pub any: Option<Script>,
    /// `notify_master_rx_lower_pri` (instances): run, as written, each time the master hears
    /// a lower priority advert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_rx_lower_pri: Option<Script>,
    /// `notify_deleted [SCRIPT]` (instances): a reload that removes the instance notifies
    /// DELETED (and runs SCRIPT) instead of keepalived's default, FAULT.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub notify_deleted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<Script>,
    /// `smtp_alert [true|false]`; unset follows global_defs (`smtp_alert_vrrp`, else
    /// `smtp_alert`), and an explicit `false` silences this instance or group even when
    /// global_defs mails, as keepalived's tri-state does.
    #[serde(default)]
    pub smtp_alert: Option<bool>,
    /// `notify_priority_changes [BOOL]`: effective priority changes go to the notify FIFOs
    /// (`INSTANCE "NAME" MASTER_PRIORITY|BACKUP_PRIORITY N`); unset: the sync group's, else
    /// global_defs' `vrrp_notify_priority_changes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_priority_changes: Option<bool>,
}

impl Notify {
    /// Whether state changes of this instance or group send mail, given global_defs' choice.
    pub fn mails(&self, global_vrrp_mail: bool) -> bool {
        self.smtp_alert.unwrap_or(global_vrrp_mail)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyncGroup {
    pub name: String,
    pub group: Vec<String>,
    /// `track_process`: every member tracks these processes.
    #[serde(default)]
    pub track_process: Vec<Tracked>,
    pub notify: Notify,
    /// `track_file`: tracked by every member (`validate::sync_group_tracking` adds it to
    /// each member's `track_file`, as keepalived does).
    #[serde(default)]
    pub track_file: Vec<Tracked>,
    /// `track_bfd { NAME }`: unweighted only (a fault of every member while the session is down).
    #[serde(default)]
    pub track_bfd: Vec<Tracked>,
    /// `track_interface` and `track_script`: tracked by every member, as `track_file`.
    #[serde(default)]
    pub track_interface: Vec<Tracked>,
    #[serde(default)]
    pub track_script: Vec<Tracked>,
    /// `sync_group_tracking_weight` (or the deprecated `global_tracking`): members keep their
    /// own weighted tracking, so their priorities float (keepalived's sgroup_tracking_weight).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tracking_weight: bool,
    #[serde(skip)]
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VrrpState {
    Master,
    Backup,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthType {
    Pass,
    Ah,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authentication {
    pub auth_type: AuthType,
    /// At most 8 characters are sent (keepalived truncates longer passwords).
    pub auth_pass: String,
}

/// An item tracked with an optional weight (`track_interface`, `track_script`, `track_file`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tracked {
    pub name: String,
    pub weight: Option<i32>,
    /// `weight N reverse` / `noreverse`; unset: the tracked object's own setting.
    #[serde(default)]
    pub reverse: Option<bool>,
    #[serde(skip)]
    pub span: Span,
}

/// A name the kernel takes for an interface (net/core/dev.c `dev_name_valid`, which
/// keepalived copies).
pub fn vmac_name_valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name.chars().any(|c| c == '/' || c == ':' || c.is_ascii_whitespace())
}

/// `old_unicast_checksum [never]` (keepalived's `unicast_chksum_compat`): how an IPv4 VRRPv3
/// advert's checksum covers its destination. Older keepalived versions summed the multicast
/// group (`vrrp_mcast_group4`) in place of a unicast peer's address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OldUnicastChecksum {
    /// The keyword alone: send and accept the old checksums only.
    Old,
    /// `never`: new checksums only, no switch to the old ones.
    Never,
}

fn default_nftables_priority() -> i32 {
    -1
}

/// `garp_extra_if [all] SECONDS` (keepalived's `vmac_garp_intvl` and its ALL_IF flag): while
/// master, one gratuitous ARP / unsolicited NA every `secs` on each interface other than the
/// instance's that carries its VIPs (keepalived's `vrrp_send_vmac_update`); without `all`
/// only on VMACs of those interfaces, which this version does not make (`use_vmac_addr`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GarpExtraIf {
    pub secs: u32,
    pub all: bool,
}

/// `use_vmac [NAME] [MAC]`: the VMAC interface's name, else keepalived's `vrrp.VRID` (with
/// `vmac_prefix` for `vrrp`), and its MAC, else the VRRP virtual MAC.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UseVmac {
    pub name: Option<String>,
    pub mac: Option<VmacMac>,
}

/// A VMAC's own MAC address (keepalived's `VRRP_VMAC_MAC_SPECIFIED`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VmacMac {
    /// All six octets given.
    Full([u8; 6]),
    /// Five octets given; the sixth is the VRID (keepalived's `VRRP_VMAC_MAC_USE_VRID`).
    Vrid([u8; 5]),
}

impl VmacMac {
    pub fn with_vrid(self, vrid: u8) -> [u8; 6] {
        match self {
            Self::Full(m) => m,
            Self::Vrid([a, b, c, d, e]) => [a, b, c, d, e, vrid],
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VrrpInstance {
    pub name: String,
    /// Initial state hint; keepalived starts as BACKUP when unset.
    pub state: Option<VrrpState>,
    pub interface: Option<String>,
    pub dont_track_primary: bool,
    pub track_interface: Vec<Tracked>,
    /// Interfaces of the static addresses, routes and rules whose `track_group` lists this
    /// instance: one going down faults it, as keepalived 2.2.7's `static_track_group_init`
    /// makes the instance track them (weight 0). Filled once the whole configuration is read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub track_static: Vec<String>,
    pub track_script: Vec<Tracked>,
    #[serde(default)]
    pub track_file: Vec<Tracked>,
    #[serde(default)]
    pub track_process: Vec<Tracked>,
    pub track_bfd: Vec<Tracked>,
    pub mcast_src_ip: Option<IpAddr>,
    /// `native_ipv6`: the instance is IPv6 (VRRPv3) whatever else says; its addresses must be
    /// IPv6 (keepalived refuses IPv4 ones).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub native_ipv6: bool,
    /// `unicast_fault_no_peer`: with no unicast peer, the instance stays in FAULT instead of
    /// falling back to multicast (keepalived 2.2.5's opt-in; the fallback is deprecated).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unicast_fault_no_peer: bool,
    /// `old_unicast_checksum [never]`: None is keepalived's default (new checksums, and a
    /// switch to the old ones when a unicast peer sends them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_unicast_checksum: Option<OldUnicastChecksum>,
    /// `mcast_dst_ip`: this instance's multicast group (IPv4, or IPv6 link-local scope),
    /// instead of `vrrp_mcast_group4` / `vrrp_mcast_group6`; it hears adverts sent there only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcast_dst_ip: Option<IpAddr>,
    pub unicast_src_ip: Option<IpAddr>,
    pub unicast_peer: Vec<IpAddr>,
    /// `unicast_peer`'s `min_ttl` / `max_ttl`: the TTLs (hop limits) a peer's adverts may
    /// arrive with, for the peers that set either (0..=255 otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unicast_peer_ttl: Vec<PeerTtl>,
    /// Overrides `vrrp_garp_master_delay` for this instance.
    pub garp_master_delay: Option<u32>,
    pub garp_master_repeat: Option<u32>,
    pub garp_master_refresh: Option<u32>,
    #[serde(default)]
    pub garp_master_refresh_repeat: Option<u32>,
    /// `garp_extra_if [all] SECONDS`; None: the global `vrrp_garp_extra_if`.
    #[serde(default)]
    pub garp_extra_if: Option<GarpExtraIf>,
    pub virtual_router_id: Option<u8>,
    /// 1..255, default 100; 255 means address owner.
    pub priority: u8,
    /// Advertisement interval in centiseconds (v3 resolution); default 1 s.
    pub advert_int_cs: u32,
    /// Overrides `vrrp_version`.
    pub version: Option<u8>,
    pub authentication: Option<Authentication>,
    pub virtual_ipaddress: Vec<IpAddress>,
    pub virtual_ipaddress_excluded: Vec<IpAddress>,
    pub virtual_routes: Vec<Route>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub virtual_rules: Vec<super::Rule>,
    pub nopreempt: bool,
    /// Seconds; default 0 (keepalived 1.x documented 300 for the keyword without value).
    pub preempt_delay: u32,
    /// `accept` / `no_accept`; unset means keepalived's default (accept unless vrrp_strict).
    pub accept: Option<bool>,
    /// `skip_check_adv_addr [BOOL]`; unset: global_defs' `vrrp_skip_check_adv_addr`.
    #[serde(default)]
    pub skip_check_adv_addr: Option<bool>,
    /// `check_unicast_src`: adverts from outside `unicast_peer` are dropped (keepalived accepts
    /// them without it or global_defs' `vrrp_check_unicast_src`).
    #[serde(default)]
    pub check_unicast_src: bool,
    /// `down_timer_adverts` (1-100): adverts a backup misses before it takes over
    /// (Master_Down_Interval = N × advert interval + skew); unset: `vrrp_down_timer_adverts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down_timer_adverts: Option<u8>,
    /// `lower_prio_no_advert [BOOL]`: a master that hears a lower priority advert does not
    /// answer it with an advert of its own; unset: `vrrp_lower_prio_no_advert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lower_prio_no_advert: Option<bool>,
    /// `higher_prio_send_advert [BOOL]`: a master that hears a higher priority advert sends
    /// one advert at its own priority before it yields; unset: `vrrp_higher_prio_send_advert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub higher_prio_send_advert: Option<bool>,
    /// `strict_mode [BOOL]`: `vrrp_strict` for this instance alone; unset: `vrrp_strict`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict_mode: Option<bool>,
    /// `garp_lower_prio_repeat`: gratuitous ARPs a master sends on hearing a lower priority
    /// advert; unset: `vrrp_garp_lower_prio_repeat`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub garp_lower_prio_repeat: Option<u32>,
    /// `garp_lower_prio_delay` (seconds): a second such burst after this delay (0: none);
    /// unset: `vrrp_garp_lower_prio_delay`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub garp_lower_prio_delay: Option<u32>,
    /// `unicast_ttl` (0-255): the TTL / hop limit of unicast adverts (default 255).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unicast_ttl: Option<u8>,
    /// `use_vmac [NAME]`: the VIPs live on a macvlan (private mode) of `interface` with the
    /// VRRP MAC 00:00:5e:00:01:VRID (IPv6: 00:00:5e:00:02:VRID), as keepalived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_vmac: Option<UseVmac>,
    /// `vmac_xmit_base`: adverts go out of (and are heard on) `interface`, not the VMAC.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub vmac_xmit_base: bool,
    /// `promote_secondaries`: net.ipv4.conf.IFACE.promote_secondaries=1 while lb-daemon runs
    /// (a secondary address, a VIP in the primary's subnet, survives the primary's removal).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub promote_secondaries: bool,
    pub notify: Notify,
    pub debug: Option<u32>,
    pub lvs_sync_daemon_interface: Option<String>,
    #[serde(skip)]
    pub span: Span,
}

impl VrrpInstance {
    /// The VRRP version of its adverts (keepalived's `vrrp_complete_instance`): its own
    /// `version`, else 3 for IPv6 VIPs, else global_defs' `vrrp_version`.
    pub fn vrrp_version(&self, g: &GlobalDefs) -> u8 {
        // keepalived takes the family from native_ipv6, mcast_dst_ip or the first VIP.
        let v6 = self.native_ipv6
            || self.mcast_dst_ip.is_some_and(|a| a.is_ipv6())
            || self.virtual_ipaddress.first().is_some_and(|a| a.addr.is_ipv6());
        self.version.unwrap_or(if v6 { 3 } else { g.vrrp_version })
    }

    /// keepalived's `strict_mode` (vrrp.c `vrrp_complete_instance`): the instance's own, else
    /// global_defs' `vrrp_strict`. Every "under `vrrp_strict`" below means this.
    pub fn strict(&self, g: &GlobalDefs) -> bool {
        self.strict_mode.unwrap_or(g.vrrp_strict)
    }

    /// keepalived's VRRP_FLAG_SKIP_CHECK_ADV_ADDR: the instance's `skip_check_adv_addr`, else
    /// global_defs' `vrrp_skip_check_adv_addr`.
    pub fn skips_adv_addr_check(&self, g: &GlobalDefs) -> bool {
        self.skip_check_adv_addr.unwrap_or(g.vrrp_skip_check_adv_addr)
    }

    /// keepalived's accept mode (vrrp.c, `vrrp_complete_instance`): as configured, else on for
    /// the address owner (priority 255) and off under `vrrp_strict`; `vrrp_strict` turns it off
    /// for a VRRPv2 instance that is not the owner whatever the config says (RFC 3768).
    pub fn accept_mode(&self, g: &GlobalDefs) -> bool {
        let owner = self.priority == 255;
        let accept = self.accept.unwrap_or(owner || !self.strict(g));
        let v2 = self.vrrp_version(g) == 2;
        accept && !(!owner && self.strict(g) && v2)
    }

    /// Whether, as MASTER, traffic to its VIPs is dropped (keepalived's firewall drop rule,
    /// `vrrp_handle_accept_mode`): no accept mode, and not the address owner.
    pub fn drops_vip_traffic(&self, g: &GlobalDefs) -> bool {
        !self.accept_mode(g) && self.priority != 255
    }

    /// keepalived's `down_timer_adverts` (vrrp_data.c `alloc_vrrp`, vrrp.c
    /// `vrrp_complete_instance`): the instance's, else global_defs', else 3; always 3 under
    /// `vrrp_strict` (keepalived resets it there with a config error; `validate` refuses it).
    pub fn down_timer_adverts(&self, g: &GlobalDefs) -> u8 {
        if self.strict(g) {
            return 3;
        }
        self.down_timer_adverts.or(g.vrrp_down_timer_adverts).unwrap_or(3)
    }

    /// keepalived's `lower_prio_no_advert` (vrrp.c `vrrp_complete_instance`): always on under
    /// `vrrp_strict`; else the instance's, else global_defs', else off.
    pub fn lower_prio_no_advert(&self, g: &GlobalDefs) -> bool {
        self.strict(g) || self.lower_prio_no_advert.or(g.vrrp_lower_prio_no_advert).unwrap_or(false)
    }

    /// keepalived's `higher_prio_send_advert` (vrrp.c `vrrp_complete_instance`): always off
    /// under `vrrp_strict`; else the instance's, else global_defs', else off.
    pub fn higher_prio_send_advert(&self, g: &GlobalDefs) -> bool {
        !self.strict(g) && self.higher_prio_send_advert.or(g.vrrp_higher_prio_send_advert).unwrap_or(false)
    }

    /// keepalived's `garp_lower_prio_repeat`: 0 under `vrrp_strict`; else the instance's,
    /// else `vrrp_garp_lower_prio_repeat`, else `vrrp_garp_master_repeat` (vrrp.c
    /// `vrrp_complete_init`: not the instance's own `garp_master_repeat`).
    pub fn garp_lower_prio_repeat(&self, g: &GlobalDefs) -> u32 {
        if self.strict(g) {
            return 0;
        }
        self.garp_lower_prio_repeat.or(g.vrrp_garp_lower_prio_repeat).unwrap_or(g.vrrp_garp_master_repeat)
    }

    /// keepalived's `garp_lower_prio_delay` in seconds, as `garp_lower_prio_repeat`, falling
    /// back to `vrrp_garp_master_delay`.
    pub fn garp_lower_prio_delay(&self, g: &GlobalDefs) -> u32 {
        if self.strict(g) {
            return 0;
        }
        self.garp_lower_prio_delay.or(g.vrrp_garp_lower_prio_delay).unwrap_or(g.vrrp_garp_master_delay)
    }

    pub fn new(name: String, span: Span) -> Self {
        Self {
            name,
            state: None,
            interface: None,
            dont_track_primary: false,
            track_interface: Vec::new(),
            track_static: Vec::new(),
            track_script: Vec::new(),
            track_file: Vec::new(),
            track_process: Vec::new(),
            track_bfd: Vec::new(),
            mcast_src_ip: None,
            native_ipv6: false,
            unicast_fault_no_peer: false,
            old_unicast_checksum: None,
            mcast_dst_ip: None,
            unicast_src_ip: None,
            unicast_peer: Vec::new(),
            garp_master_delay: None,
            garp_master_repeat: None,
            garp_master_refresh: None,
            garp_extra_if: None,
            garp_master_refresh_repeat: None,
            virtual_router_id: None,
            priority: 100,
            advert_int_cs: 100,
            version: None,
            authentication: None,
            virtual_ipaddress: Vec::new(),
            virtual_ipaddress_excluded: Vec::new(),
            virtual_routes: Vec::new(),
            virtual_rules: Vec::new(),
            nopreempt: false,
            preempt_delay: 0,
            accept: None,
            skip_check_adv_addr: None,
            unicast_peer_ttl: Vec::new(),
            check_unicast_src: false,
            down_timer_adverts: None,
            lower_prio_no_advert: None,
            higher_prio_send_advert: None,
            strict_mode: None,
            garp_lower_prio_repeat: None,
            garp_lower_prio_delay: None,
            unicast_ttl: None,
            use_vmac: None,
            vmac_xmit_base: false,
            promote_secondaries: false,
            notify: Notify::default(),
            debug: None,
            lvs_sync_daemon_interface: None,
            span,
        }
    }
}

/// The most addresses of one `virtual_server_group` range that `anycast_table` announces;
/// a larger (IPv6) range is refused rather than announced in part.
pub const ANYCAST_MAX_RANGE: u128 = 1024;

/// A unicast peer's TTL range (`unicast_peer { ADDR min_ttl N max_ttl M }`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerTtl {
    pub addr: IpAddr,
    pub min: u8,
    pub max: u8,
}

/// A `virtual_server_group` member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupMember {
    /// `IP PORT`, or a range `192.0.2.1-10 PORT` (the last octet / IPv6 group varies):
    /// `first..=last`.
    Range {
        first: IpAddr,
        last: IpAddr,
        port: u16,
    },
    Fwmark(u32),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VirtualServerGroup {
    pub name: String,
    pub members: Vec<GroupMember>,
    #[serde(skip)]
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ServiceAddr {
    /// `virtual_server IP PORT`
    Inet(SocketAddr),
    /// `virtual_server fwmark N`
    Fwmark(u32),
    /// `virtual_server group NAME`
    Group(String),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub const fn ip_proto(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// keepalived's `inet_sockaddrtotrio`: `[ADDR]:PROTO:PORT`, brackets for both families.
/// A configuration read back (`serde`) was settled when written.
fn settled() -> bool {
    true
}

fn keepalived_trio(sa: SocketAddr, protocol: Protocol) -> String {
    format!("[{}]:{}:{}", sa.ip(), protocol.name(), sa.port())
}

/// `lb_kind` / `lvs_method`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ForwardMethod {
    /// keepalived's default (IP_VS_CONN_F_MASQ).
    #[default]
    Nat,
    Dr,
    Tun,
}

impl ForwardMethod {
    /// As the config spells it.
    pub const fn name(self) -> &'static str {
        match self {
            ForwardMethod::Nat => "NAT",
            ForwardMethod::Dr => "DR",
            ForwardMethod::Tun => "TUN",
        }
    }
}

/// `lb_algo` / `lvs_sched`: every scheduler IPVS has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scheduler {
    Rr,
    Wrr,
    Lc,
    /// keepalived's and ipvsadm's default.
    #[default]
    Wlc,
    Lblc,
    Lblcr,
    Sh,
    Dh,
    Sed,
    Nq,
    Mh,
    Fo,
    Ovf,
    Twos,
}

impl Scheduler {
    pub const ALL: [(&'static str, Scheduler); 14] = [
        ("rr", Scheduler::Rr),
        ("wrr", Scheduler::Wrr),
        ("lc", Scheduler::Lc),
        ("wlc", Scheduler::Wlc),
        ("lblc", Scheduler::Lblc),
        ("lblcr", Scheduler::Lblcr),
        ("sh", Scheduler::Sh),
        ("dh", Scheduler::Dh),
        ("sed", Scheduler::Sed),
        ("nq", Scheduler::Nq),
        ("mh", Scheduler::Mh),
        ("fo", Scheduler::Fo),
        ("ovf", Scheduler::Ovf),
        ("twos", Scheduler::Twos),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(_, s)| *s == self).map_or("?", |(n, _)| n)
    }

    /// Whether the BPF data plane implements it (the rest need the IPVS backend).
    pub fn in_bpf(self) -> bool {
        match self {
            Scheduler::Rr
            | Scheduler::Wrr
            | Scheduler::Lc
            | Scheduler::Wlc
            | Scheduler::Lblc
            | Scheduler::Sh
            | Scheduler::Dh
            | Scheduler::Mh => true,
            Scheduler::Lblcr | Scheduler::Sed | Scheduler::Nq | Scheduler::Fo | Scheduler::Ovf | Scheduler::Twos => {
                false
            }
        }
    }
}

/// `IP_VS_SVC_F_SCHED1` (`flag-1`): `sh-fallback` for sh, `mh-fallback` for mh.
pub const SCHED_FLAG_1: u32 = 0x8;
/// `IP_VS_SVC_F_SCHED2` (`flag-2`): `sh-port` for sh, `mh-port` for mh.
pub const SCHED_FLAG_2: u32 = 0x10;
/// `IP_VS_SVC_F_SCHED3` (`flag-3`): no scheduler reads it.
pub const SCHED_FLAG_3: u32 = 0x20;

impl Scheduler {
    /// Whether the scheduler hashes the client's source port too (sh-port, mh-port).
    pub fn hashes_port(self, flags: u32) -> bool {
        matches!(self, Scheduler::Sh | Scheduler::Mh) && flags & SCHED_FLAG_2 != 0
    }

    /// Whether a client whose real server has weight 0 is given another one (sh-fallback,
    /// mh-fallback) rather than none.
    pub fn falls_back(self, flags: u32) -> bool {
        matches!(self, Scheduler::Sh | Scheduler::Mh) && flags & SCHED_FLAG_1 != 0
    }
}

/// Which forwarding backend the daemon runs (`--backend`, `lb_backend`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum BackendKind {
    /// BPF when the kernel can, else IPVS.
    #[default]
    Auto,
    Bpf,
    Ipvs,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VirtualServer {
    pub addr: ServiceAddr,
    pub protocol: Protocol,
    /// Whether `protocol` was written (or settled): keepalived defaults an address service
    /// without one to UDP (`validate::service_defaults`) and names it `none` until then.
    #[serde(skip, default = "settled")]
    pub protocol_set: bool,
    pub scheduler: Scheduler,
    pub forward: ForwardMethod,
    /// Seconds between health-check rounds; default 60.
    pub delay_loop: u32,
    /// Seconds; `persistence_timeout` without a value means 360 (keepalived).
    pub persistence_timeout: Option<u32>,
    /// Client address prefix persistence groups by: IPv4 netmask as a length, or IPv6 length.
    pub persistence_granularity: Option<u8>,
    /// `persistence_engine NAME`: IPVS's persistence engine (the kernel has `sip`: persistence
    /// by SIP Call-ID); IPVS only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence_engine: Option<String>,
    #[serde(skip)]
    pub persistence_engine_span: Option<Span>,
    pub ha_suspend: bool,
    pub virtualhost: Option<String>,
    pub alpha: bool,
    pub omega: bool,
    /// Defaults for the real servers' checkers (keepalived inherits them: checker, then
    /// real server, then virtual server, then the checker type's own default).
    pub retry: Option<u32>,
    pub delay_before_retry: Option<u32>,
    /// Seconds; default 5.
    pub connect_timeout: u32,
    pub warmup: Option<u32>,
    /// Default for the real servers' `inhibit_on_failure`.
    pub inhibit_on_failure: bool,
    /// Minimum total weight of live real servers for the service to be up; default 1.
    pub quorum: u32,
    pub quorum_up: Option<Script>,
    pub quorum_down: Option<Script>,
    pub hysteresis: u32,
    pub sorry_server: Option<SocketAddr>,
    /// `sorry_server_lvs_method`: the sorry server's forwarding method; unset: lb_kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sorry_server_forward: Option<ForwardMethod>,
    #[serde(skip)]
    pub sorry_server_forward_span: Option<Span>,
    /// lb_kind as it stood at the `sorry_server` line, if set by then: keepalived's
    /// `alloc_ssvr` copies it, so a later lb_kind does not reach the sorry server.
    #[serde(skip)]
    pub sorry_server_lb_kind: Option<ForwardMethod>,
    /// Whether `lb_kind` has been read yet (for the copies above and in `RealServer`).
    #[serde(skip)]
    pub forward_set: bool,
    pub sorry_server_inhibit: bool,
    #[serde(skip)]
    pub sorry_server_inhibit_span: Option<Span>,
    /// Mail on this service's real server and quorum changes (global default otherwise).
    pub smtp_alert: Option<bool>,
    /// One-packet scheduling (UDP).
    pub ops: bool,
    /// `ip_family inet|inet6`: the family of a service whose address does not say it (a
    /// firewall mark); see `VirtualServer::mark_family_v6`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_family: Option<IpFamily>,
    /// IPVS's scheduler flags (`flag-1`..`flag-3`, `sh-port`, ...): `SCHED_FLAG_*` bits, as
    /// keepalived passes them to the kernel.
    pub sched_flags: u32,
    /// `mh_seed N` (lb-daemon's own): this service's Maglev seed (over global_defs').
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mh_seed: Option<u64>,
    /// `anycast_track_instance NAME` (lb-daemon's own): the VIP is announced only while this
    /// VRRP instance is MASTER here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anycast_track_instance: Option<String>,
    /// `weight N`: the weight of every real server without its own (keepalived's
    /// `vs->weight`, applied once the block is read, wherever `weight` stands in it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    pub real_servers: Vec<RealServer>,
    /// Whether `lb_algo` has named a valid scheduler yet (keepalived checks `sh-port` and the
    /// like against the scheduler named before them).
    #[serde(skip)]
    pub scheduler_named: bool,
    #[serde(skip)]
    pub span: Span,
}

impl VirtualServer {
    /// The family of this service's firewall marks, as keepalived's `vs_end_handler` settles
    /// it at load: `ip_family`, else the first real server not forwarded by TUN (in config
    /// order), else such a sorry server, else the one family all of them share, else IPv4.
    pub fn mark_family_v6(&self) -> bool {
        if let Some(f) = self.ip_family {
            return f == IpFamily::Inet6;
        }
        // Real servers in config order, then the sorry server: keepalived's order.
        let sorry = self.sorry_server.map(|s| (s, self.sorry_forward()));
        let servers = || self.real_servers.iter().map(|r| (r.addr, r.forward(self))).chain(sorry);
        if let Some((a, _)) = servers().find(|(_, f)| *f != ForwardMethod::Tun) {
            return a.is_ipv6();
        }
        let mut v6 = servers().map(|(a, _)| a.is_ipv6());
        v6.next().is_some_and(|first| first && v6.all(|b| b))
    }

    /// keepalived's validate_check_config ignores a virtual server without real servers,
    /// sorry server or not ("has no real servers - ignoring"): nothing programs or announces
    /// it (validate warns).
    pub fn ignored(&self) -> bool {
        self.real_servers.is_empty()
    }

    /// The sorry server's forwarding method: `sorry_server_lvs_method`, else lb_kind.
    pub fn sorry_forward(&self) -> ForwardMethod {
        self.sorry_server_forward.or(self.sorry_server_lb_kind).unwrap_or(self.forward)
    }

    pub fn new(addr: ServiceAddr, span: Span) -> Self {
        Self {
            addr,
            protocol: Protocol::default(),
            protocol_set: false,
            scheduler: Scheduler::default(),
            forward: ForwardMethod::default(),
            delay_loop: 60,
            persistence_timeout: None,
            persistence_granularity: None,
            persistence_engine: None,
            persistence_engine_span: None,
            ha_suspend: false,
            virtualhost: None,
            alpha: false,
            omega: false,
            retry: None,
            delay_before_retry: None,
            connect_timeout: 5,
            warmup: None,
            inhibit_on_failure: false,
            quorum: 1,
            quorum_up: None,
            quorum_down: None,
            hysteresis: 0,
            sorry_server: None,
            sorry_server_forward: None,
            sorry_server_forward_span: None,
            sorry_server_lb_kind: None,
            forward_set: false,
            sorry_server_inhibit: false,
            sorry_server_inhibit_span: None,
            smtp_alert: None,
            ops: false,
            ip_family: None,
            sched_flags: 0,
            mh_seed: None,
            anycast_track_instance: None,
            weight: None,
            real_servers: Vec::new(),
            scheduler_named: false,
            span,
        }
    }
    /// How keepalived's log lines name it (`format_vs`): `[203.0.113.10]:tcp:80`,
    /// `[2001:db8::10]:tcp:80`, `FWM 1`, `[web]:0` (a group).
    pub fn keepalived_name(&self) -> String {
        match &self.addr {
            ServiceAddr::Inet(sa) if !self.protocol_set => format!("[{}]:none:{}", sa.ip(), sa.port()),
            ServiceAddr::Inet(sa) => keepalived_trio(*sa, self.protocol),
            ServiceAddr::Fwmark(m) => format!("FWM {m}"),
            ServiceAddr::Group(g) => format!("[{g}]:0"),
        }
    }

    /// How keepalived's log lines name real server `rs` of this service (`format_rs`):
    /// `[192.0.2.21]:tcp:80`, `[2001:db8::21]:tcp:80`.
    pub fn keepalived_real_name(&self, rs: SocketAddr) -> String {
        match self.addr {
            // keepalived clears a fwmark service's protocol (vs_end_handler), and names its
            // real servers with protocol 0: `[192.0.2.22]:none:0`.
            ServiceAddr::Fwmark(_) => format!("[{}]:none:{}", rs.ip(), rs.port()),
            _ => keepalived_trio(rs, self.protocol),
        }
    }

    /// How logs, checkers, status and the data plane name it: `203.0.113.10:80/tcp`,
    /// `[2001:db8::10]:80/tcp`, `group web/tcp`, `fwmark 1/tcp`.
    pub fn name(&self) -> String {
        let proto = self.protocol.name();
        match &self.addr {
            ServiceAddr::Inet(sa) if sa.is_ipv4() => format!("{}:{}/{proto}", sa.ip(), sa.port()),
            ServiceAddr::Inet(sa) => format!("[{}]:{}/{proto}", sa.ip(), sa.port()),
            ServiceAddr::Group(g) => format!("group {g}/{proto}"),
            ServiceAddr::Fwmark(m) => format!("fwmark {m}/{proto}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RealServer {
    pub addr: SocketAddr,
    /// Default 1 (or the virtual server's `weight`); 0 takes no new connections.
    pub weight: u32,
    /// Whether the block set `weight` (else the virtual server's applies).
    #[serde(skip)]
    pub weight_set: bool,
    /// Unset: the virtual server's (see `VirtualServer::inhibit_on_failure`).
    pub inhibit_on_failure: Option<bool>,
    /// `alpha`: start down until the first success; unset: the virtual server's.
    pub alpha: Option<bool>,
    /// `lvs_method`: this real server's forwarding method; unset: the virtual server's lb_kind.
    pub forward: Option<ForwardMethod>,
    /// lb_kind as it stood at the `real_server` line, if set by then: keepalived's `alloc_rs`
    /// copies it, so a later lb_kind does not reach this real server.
    #[serde(skip)]
    pub lb_kind: Option<ForwardMethod>,
    /// IPVS connection thresholds (`uthreshold`, `lthreshold`); 0 = none.
    pub u_threshold: u32,
    pub l_threshold: u32,
    /// Where `lvs_method` and the thresholds were set, for errors that name them.
    #[serde(skip)]
    pub forward_span: Option<Span>,
    #[serde(skip)]
    pub threshold_span: Option<Span>,
    /// Defaults for this real server's checkers (over the virtual server's).
    pub retry: Option<u32>,
    pub delay_before_retry: Option<u32>,
    pub connect_timeout: Option<u32>,
    pub delay_loop: Option<u32>,
    pub warmup: Option<u32>,
    pub virtualhost: Option<String>,
    pub notify_up: Option<Script>,
    pub notify_down: Option<Script>,
    pub smtp_alert: Option<bool>,
    pub checkers: Vec<Checker>,
    #[serde(skip)]
    pub span: Span,
}

impl RealServer {
    pub fn new(ip: IpAddr, port: u16, span: Span) -> Self {
        Self {
            addr: SocketAddr::new(ip, port),
            weight: 1,
            weight_set: false,
            inhibit_on_failure: None,
            alpha: None,
            forward: None,
            lb_kind: None,
            u_threshold: 0,
            l_threshold: 0,
            forward_span: None,
            threshold_span: None,
            retry: None,
            delay_before_retry: None,
            connect_timeout: None,
            delay_loop: None,
            warmup: None,
            virtualhost: None,
            notify_up: None,
            notify_down: None,
            smtp_alert: None,
            checkers: Vec::new(),
            span,
        }
    }

    /// `inhibit_on_failure` as keepalived resolves it: the real server's, else `vs`'s.
    pub fn inhibit(&self, vs: &VirtualServer) -> bool {
        self.inhibit_on_failure.unwrap_or(vs.inhibit_on_failure)
    }

    /// `alpha` as keepalived resolves it: the real server's, else `vs`'s.
    pub fn alpha(&self, vs: &VirtualServer) -> bool {
        self.alpha.unwrap_or(vs.alpha)
    }

    /// The forwarding method: `lvs_method` here, else `vs`'s lb_kind (as it stood at this
    /// block, if set by then).
    pub fn forward(&self, vs: &VirtualServer) -> ForwardMethod {
        self.forward.or(self.lb_kind).unwrap_or(vs.forward)
    }
}

/// `ip_family`'s argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum IpFamily {
    Inet,
    Inet6,
}

/// `http_protocol` of HTTP_GET / SSL_GET: the request's version and whether it asks the server
/// to close (keepalived's request template: `GET PATH HTTP/1.x`, `User-Agent`, `Connection:
/// close` for 1.0C and 1.1, `Host`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum HttpProtocol {
    /// keepalived's default: HTTP/1.0 without a Connection header.
    #[default]
    Http10,
    /// `1.0C`: HTTP/1.0 with `Connection: close`.
    Http10Close,
    /// `1.1`: HTTP/1.1 with `Connection: close`.
    Http11,
}

impl HttpProtocol {
    pub fn is_default(&self) -> bool {
        *self == Self::Http10
    }

    /// keepalived's spellings: `1.0`, `1.0C` (or `1.0c`), `1.1`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "1.0" => Some(Self::Http10),
            "1.0C" | "1.0c" => Some(Self::Http10Close),
            "1.1" => Some(Self::Http11),
            _ => None,
        }
    }
}

/// `url { path, digest, status_code, virtualhost }` of HTTP_GET / SSL_GET.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Url {
    pub path: String,
    /// Lower-case hex MD5 of the body.
    pub digest: Option<String>,
    /// Accepted status codes as inclusive ranges; empty means keepalived's default 200-299.
    pub status_code: Vec<(u16, u16)>,
    /// `virtualhost` for this URL: its Host header (and SNI with `enable_sni`), over the
    /// checker's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtualhost: Option<String>,
    /// `regex` and its options: a PCRE2 pattern the body must (or must not) match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<UrlRegex>,
}

/// keepalived's url `regex` (PCRE2, as keepalived 2.2.7 built with `--enable-regex`): the
/// answer must hold a match starting within `min_offset..=max_offset` (or, with `no_match`,
/// must not); `crate::pcre` says how keepalived matches.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UrlRegex {
    /// As written in the config; keepalived unescapes it (`pcre::unescape`) before compiling.
    pub pattern: String,
    /// `regex_options`: keepalived's names for PCRE2's compile flags (`pcre::OPTIONS`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// `regex_no_match`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_match: bool,
    /// `regex_min_offset`, `regex_max_offset` (the last position a match may start at).
    #[serde(default, skip_serializing_if = "is_zero_usize")]
    pub min_offset: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_offset: Option<usize>,
    /// `regex_stack START MAX`: the JIT stack matches run on (bytes); PCRE2's default without.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jit_stack: Option<(usize, usize)>,
    #[serde(skip)]
    pub span: Span,
}

fn is_zero_usize(v: &usize) -> bool {
    *v == 0
}

impl UrlRegex {
    /// PCRE2's compile flags for `options`.
    pub fn option_bits(&self) -> u32 {
        let flag = |o: &String| crate::pcre::OPTIONS.iter().find(|(n, _)| n == o).map(|(_, f)| *f);
        self.options.iter().filter_map(flag).fold(0, |bits, f| bits | f)
    }

    /// The compiled pattern, or why PCRE2 refuses it.
    pub fn compile(&self) -> Result<crate::pcre::Pattern, String> {
        let bytes = crate::pcre::unescape(&self.pattern)
            .ok_or("a lone backslash at its end (keepalived: \"Missing escape char at end\")")?;
        crate::pcre::Pattern::compile(&bytes, self.option_bits())
    }
}
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckKind {
    HttpGet {
        urls: Vec<Url>,
        virtualhost: Option<String>,
        #[serde(default, skip_serializing_if = "HttpProtocol::is_default")]
        protocol: HttpProtocol,
    },
    SslGet {
        urls: Vec<Url>,
        virtualhost: Option<String>,
        #[serde(default, skip_serializing_if = "HttpProtocol::is_default")]
        protocol: HttpProtocol,
        /// `enable_sni [BOOL]`: the TLS handshake names the virtual host (keepalived sends no
        /// SNI without it, virtualhost or not).
        #[serde(default)]
        enable_sni: bool,
    },
    Tcp,
    Misc {
        path: Option<Script>,
        timeout: Option<u32>,
        dynamic: bool,
        user: Option<RunAs>,
    },
    /// UDP_CHECK: `payload` (none: keepalived's 32-byte filler), `require_reply` with
    /// optional data (`reply`, and `mask` bits set where `x` wildcards it).
    Udp {
        payload: Option<Vec<u8>>,
        require_reply: bool,
        reply: Vec<u8>,
        mask: Vec<u8>,
        min_len: u16,
        max_len: u16,
    },
    /// DNS_CHECK: the query's type (a number) and name; keepalived's defaults SOA and the root
    /// (its `retry` defaults to 3 and `delay_before_retry` to the delay loop: `check::timing`).
    Dns {
        qtype: u16,
        name: String,
    },
    /// PING_CHECK: an ICMP (ICMPv6) echo.
    Ping,
    /// BFD_CHECK: follows the `bfd_instance` of that name (up while its session is up).
    Bfd {
        name: String,
    },
    /// SMTP_CHECK: the HELO name and the servers to ask: the checker's own connection
    /// (`main`, when any connection keyword is set in the block or there is no `host`)
    /// then each `host` block's.
    Smtp {
        helo_name: String,
        main: bool,
        hosts: Vec<SmtpHost>,
    },
    /// FILE_CHECK: a `track_file`'s value, times `weight` (default: the track_file's own
    /// weight and `reverse`), moves the real server's weight or fails it.
    File {
        track_file: String,
        weight: Option<i32>,
        reverse: Option<bool>,
    },
}

/// An SMTP_CHECK `host` block: its own connection; unset parts default to the real server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmtpHost {
    pub connect_ip: Option<IpAddr>,
    pub connect_port: Option<u16>,
    pub bindto: Option<IpAddr>,
    pub bind_port: Option<u16>,
    pub connect_timeout: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fwmark: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_if: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checker {
    pub kind: CheckKind,
    /// Defaults to the real server's address and port.
    pub connect_ip: Option<IpAddr>,
    pub connect_port: Option<u16>,
    pub bindto: Option<IpAddr>,
    pub bind_port: Option<u16>,
    /// `bind_if IFNAME`: the probe's socket is bound to that interface (SO_BINDTODEVICE); a
    /// link-local IPv6 address needs it. PING_CHECK ignores it, as keepalived 2.2.7 does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_if: Option<String>,
    /// `fwmark N`: the probe's packets carry mark N (SO_MARK) for policy routing and
    /// nftables (PING_CHECK: read and not used, as keepalived 2.2.7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fwmark: Option<u32>,
    /// Seconds. Unset ones here and below come from the real server, then the virtual
    /// server, then the checker type (`check::specs` resolves them as keepalived does).
    /// connect_timeout's default is 5.
    pub connect_timeout: Option<u32>,
    /// `retry` / `nb_get_retry`: attempts after a failure before declaring the server down;
    /// default 1 (MISC_CHECK 0).
    pub retry: Option<u32>,
    /// Seconds between retries; default 1 (HTTP_GET and SSL_GET 3).
    pub delay_before_retry: Option<u32>,
    /// Seconds of random delay before the first check; default none.
    pub warmup: Option<u32>,
    /// Default: the real server's, else the virtual server's delay_loop.
    pub delay_loop: Option<u32>,
    /// `alpha` on the checker: starts failed; default the real server's, else the virtual
    /// server's.
    pub alpha: Option<bool>,
    /// `fast_recovery [BOOL]` (HTTP_GET, SSL_GET): a server coming back is checked again at
    /// once, not a `delay_loop` later (`check::walk`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fast_recovery: bool,
    #[serde(skip)]
    pub span: Span,
}

impl Checker {
    pub fn new(kind: CheckKind, span: Span) -> Self {
        Self {
            kind,
            connect_ip: None,
            connect_port: None,
            bindto: None,
            bind_port: None,
            bind_if: None,
            fwmark: None,
            connect_timeout: None,
            retry: None,
            delay_before_retry: None,
            warmup: None,
            delay_loop: None,
            alpha: None,
            fast_recovery: false,
            span,
        }
    }
}

/// keepalived's `track_file NAME { file PATH; weight N [reverse]; init_file [VALUE] [overwrite] }`:
/// a number read from a file whenever it changes, times the weight, added to the priority of
/// the instances tracking it (weight 0: non-zero is a fault).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackFile {
    pub name: String,
    pub file: Option<String>,
    /// Default 1.
    pub weight: i32,
    pub reverse: bool,
    /// `init_file`: the value written at start if the file is missing (or always, with
    /// `overwrite`).
    pub init: Option<TrackFileInit>,
    #[serde(skip)]
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackFileInit {
    pub value: i32,
    pub overwrite: bool,
}

/// keepalived's `vrrp_track_process NAME { process ...; ... }`: how many running processes match,
/// against `quorum..=quorum_max`, moves the priority of the instances tracking it (weight 0:
/// a fault while the quorum is not met).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackProcess {
    pub name: String,
    /// The process name (its comm, at most 15 bytes shown by the kernel) or, with
    /// `full_command`, the command line's first word.
    pub process: Option<String>,
    /// The parameters after the name on the `process` line.
    pub params: Vec<String>,
    pub param_match: ParamMatch,
    /// Match argv[0] of /proc/PID/cmdline instead of the comm.
    pub full_command: bool,
    /// Default 0 (keepalived 2.2.7's code; its manual says 1).
    pub weight: i32,
    pub reverse: bool,
    /// Default 1.
    pub quorum: u32,
    /// Default unlimited (`u32::MAX`).
    pub quorum_max: u32,
    /// Microseconds before a quorum change caused by a fork counts (keepalived's timer).
    pub fork_delay_us: u64,
    /// Microseconds before a quorum change caused by an exit counts.
    pub terminate_delay_us: u64,
    #[serde(skip)]
    pub span: Span,
}

/// keepalived's `bfd_instance NAME { ... }` (bfd_parser.c): one BFD session (RFC 5880
/// asynchronous mode, UDP port 3784) with a neighbour. Intervals in microseconds, written in
/// milliseconds with up to 3 decimals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BfdInstance {
    /// At most 31 characters.
    pub name: String,
    /// `neighbor_ip` / `neighbour_ip`: required.
    pub neighbor: Option<IpAddr>,
    /// `source_ip`: the address (and, with it, a port in 49152-65535) packets are sent from.
    pub source: Option<IpAddr>,
    /// `min_rx`: required min RX interval; default 10 ms.
    pub min_rx_us: u32,
    /// `min_tx`: desired min TX interval while up; default 10 ms.
    pub min_tx_us: u32,
    /// `idle_tx`: desired min TX interval while not up; default 1000 ms (at least 1000).
    pub idle_tx_us: u32,
    /// `multiplier`: detection time multiplier, 1-255; default 5.
    pub multiplier: u8,
    /// `passive`: send nothing until the neighbour speaks.
    pub passive: bool,
    /// `ttl` / `hoplimit`: sent TTL (hop limit); unset: 255 for IPv4, 64 for IPv6.
    pub ttl: Option<u8>,
    /// `max_hops`: received packets need TTL >= ttl - max_hops; default 0; -1 or more than
    /// the TTL: any TTL (keepalived sets it to the TTL, with a warning).
    pub max_hops: i16,
    /// `weight N [reverse]`: the default weight of `track_bfd` entries naming it; default 0.
    pub weight: i32,
    pub reverse: bool,
    /// keepalived's `vrrp` / `checker`: which of its processes hear the session (only those
    /// named; neither named: both). `track_bfd` may name it only with `vrrp`, `BFD_CHECK`
    /// only with `checker`.
    #[serde(default)]
    pub vrrp: bool,
    #[serde(default)]
    pub checker: bool,
    #[serde(skip)]
    pub span: Span,
}

/// How the parameters of a `process` line are compared with a command line's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ParamMatch {
    /// Parameters are not compared.
    None,
    /// The same parameters, no more (`param_match` alone, or parameters given).
    Exact,
    /// The configured parameters are the first ones (`param_match partial`).
    Partial,
    /// As partial, and the last configured one may be a prefix (`param_match initial`).
    Initial,
}

impl BfdInstance {
    pub fn new(name: String, span: Span) -> Self {
        Self {
            name,
            neighbor: None,
            source: None,
            min_rx_us: 10_000,
            min_tx_us: 10_000,
            idle_tx_us: 1_000_000,
            multiplier: 5,
            passive: false,
            ttl: None,
            max_hops: 0,
            weight: 0,
            reverse: false,
            vrrp: false,
            checker: false,
            span,
        }
    }

    /// The TTL (hop limit) sent: configured, else keepalived's 255 (IPv4) / 64 (IPv6).
    pub fn ttl(&self) -> u8 {
        self.ttl.unwrap_or(if matches!(self.neighbor, Some(IpAddr::V6(_))) { 64 } else { 255 })
    }

    /// The lowest TTL accepted on receipt (keepalived's `max_hops + ttl >= configured ttl`).
    pub fn min_rx_ttl(&self) -> u8 {
        let ttl = i16::from(self.ttl());
        if self.max_hops < 0 || self.max_hops > ttl { 0 } else { (ttl - self.max_hops) as u8 }
    }
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}
