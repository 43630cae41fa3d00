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
    pub vrrp_scripts: Vec<VrrpScript>,
    pub vrrp_sync_groups: Vec<SyncGroup>,
    pub vrrp_instances: Vec<VrrpInstance>,
    pub virtual_server_groups: Vec<VirtualServerGroup>,
    pub virtual_servers: Vec<VirtualServer>,
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
    pub vrrp_strict: bool,
    pub lvs_sync_daemon: Option<LvsSyncDaemon>,
    /// `lb_backend` (lb-daemon's own keyword): which forwarding backend runs; `--backend`
    /// overrides it.
    pub lb_backend: Option<BackendKind>,
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
            vrrp_garp_master_refresh_repeat: 1,
            vrrp_strict: false,
            lvs_sync_daemon: None,
            lb_backend: None,
        }
    }
}

/// `lvs_sync_daemon INTERFACE VRRP_INSTANCE [id N] [maxlen N] [port N] [ttl N] [group IP]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LvsSyncDaemon {
    pub interface: String,
    pub vrrp_instance: Option<String>,
    pub sync_id: Option<u8>,
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
    #[serde(skip)]
    pub span: Span,
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
    pub protocol: Option<String>,
    #[serde(skip)]
    pub span: Span,
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
    pub smtp_alert: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyncGroup {
    pub name: String,
    pub group: Vec<String>,
    pub notify: Notify,
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

/// An item tracked with an optional weight (`track_interface`, `track_script`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tracked {
    pub name: String,
    pub weight: Option<i32>,
    #[serde(skip)]
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VrrpInstance {
    pub name: String,
    /// Initial state hint; keepalived starts as BACKUP when unset.
    pub state: Option<VrrpState>,
    pub interface: Option<String>,
    pub dont_track_primary: bool,
    pub track_interface: Vec<Tracked>,
    pub track_script: Vec<Tracked>,
    pub mcast_src_ip: Option<IpAddr>,
    pub unicast_src_ip: Option<IpAddr>,
    pub unicast_peer: Vec<IpAddr>,
    /// Overrides `vrrp_garp_master_delay` for this instance.
    pub garp_master_delay: Option<u32>,
    pub garp_master_repeat: Option<u32>,
    pub garp_master_refresh: Option<u32>,
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
    pub nopreempt: bool,
    /// Seconds; default 0 (keepalived 1.x documented 300 for the keyword without value).
    pub preempt_delay: u32,
    /// `accept` / `no_accept`; unset means keepalived's default (accept unless vrrp_strict).
    pub accept: Option<bool>,
    pub notify: Notify,
    pub debug: Option<u32>,
    pub lvs_sync_daemon_interface: Option<String>,
    #[serde(skip)]
    pub span: Span,
}

impl VrrpInstance {
    pub fn new(name: String, span: Span) -> Self {
        Self {
            name,
            state: None,
            interface: None,
            dont_track_primary: false,
            track_interface: Vec::new(),
            track_script: Vec::new(),
            mcast_src_ip: None,
            unicast_src_ip: None,
            unicast_peer: Vec::new(),
            garp_master_delay: None,
            garp_master_repeat: None,
            garp_master_refresh: None,
            virtual_router_id: None,
            priority: 100,
            advert_int_cs: 100,
            version: None,
            authentication: None,
            virtual_ipaddress: Vec::new(),
            virtual_ipaddress_excluded: Vec::new(),
            virtual_routes: Vec::new(),
            nopreempt: false,
            preempt_delay: 0,
            accept: None,
            notify: Notify::default(),
            debug: None,
            lvs_sync_daemon_interface: None,
            span,
        }
    }
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

/// `lb_kind` / `lvs_method`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ForwardMethod {
    /// keepalived's default (IP_VS_CONN_F_MASQ).
    #[default]
    Nat,
    Dr,
    Tun,
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
    pub scheduler: Scheduler,
    pub forward: ForwardMethod,
    /// Seconds between health-check rounds; default 60.
    pub delay_loop: u32,
    /// Seconds; `persistence_timeout` without a value means 360 (keepalived).
    pub persistence_timeout: Option<u32>,
    /// Client address prefix persistence groups by: IPv4 netmask as a length, or IPv6 length.
    pub persistence_granularity: Option<u8>,
    pub ha_suspend: bool,
    pub virtualhost: Option<String>,
    pub alpha: bool,
    pub omega: bool,
    /// Minimum total weight of live real servers for the service to be up; default 1.
    pub quorum: u32,
    pub quorum_up: Option<Script>,
    pub quorum_down: Option<Script>,
    pub hysteresis: u32,
    pub sorry_server: Option<SocketAddr>,
    pub sorry_server_inhibit: bool,
    /// Mail on this service's real server and quorum changes (global default otherwise).
    pub smtp_alert: Option<bool>,
    /// One-packet scheduling (UDP).
    pub ops: bool,
    pub real_servers: Vec<RealServer>,
    #[serde(skip)]
    pub span: Span,
}

impl VirtualServer {
    pub fn new(addr: ServiceAddr, span: Span) -> Self {
        Self {
            addr,
            protocol: Protocol::default(),
            scheduler: Scheduler::default(),
            forward: ForwardMethod::default(),
            delay_loop: 60,
            persistence_timeout: None,
            persistence_granularity: None,
            ha_suspend: false,
            virtualhost: None,
            alpha: false,
            omega: false,
            quorum: 1,
            quorum_up: None,
            quorum_down: None,
            hysteresis: 0,
            sorry_server: None,
            sorry_server_inhibit: false,
            smtp_alert: None,
            ops: false,
            real_servers: Vec::new(),
            span,
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
    /// Default 1; 0 takes no new connections.
    pub weight: u32,
    pub inhibit_on_failure: bool,
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
            inhibit_on_failure: false,
            notify_up: None,
            notify_down: None,
            smtp_alert: None,
            checkers: Vec::new(),
            span,
        }
    }
}

/// `url { path, digest, status_code }` of HTTP_GET / SSL_GET.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Url {
    pub path: String,
    /// Lower-case hex MD5 of the body.
    pub digest: Option<String>,
    /// Accepted status codes as inclusive ranges; empty means keepalived's default 200-299.
    pub status_code: Vec<(u16, u16)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckKind {
    HttpGet { urls: Vec<Url>, virtualhost: Option<String> },
    SslGet { urls: Vec<Url>, virtualhost: Option<String> },
    Tcp,
    Misc { path: Option<Script>, timeout: Option<u32>, dynamic: bool, user: Option<RunAs> },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checker {
    pub kind: CheckKind,
    /// Defaults to the real server's address and port.
    pub connect_ip: Option<IpAddr>,
    pub connect_port: Option<u16>,
    pub bindto: Option<IpAddr>,
    pub bind_port: Option<u16>,
    /// Seconds; default 5.
    pub connect_timeout: u32,
    /// `retry` / `nb_get_retry`: attempts after a failure before declaring the server down;
    /// default 1 (keepalived 2; 1.x documented 3 for HTTP_GET).
    pub retry: u32,
    /// Seconds between retries; default 1.
    pub delay_before_retry: u32,
    /// Seconds of random delay before the first check; default 0.
    pub warmup: Option<u32>,
    /// Overrides the virtual server's delay_loop.
    pub delay_loop: Option<u32>,
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
            connect_timeout: 5,
            retry: 1,
            delay_before_retry: 1,
            warmup: None,
            delay_loop: None,
            span,
        }
    }
}
