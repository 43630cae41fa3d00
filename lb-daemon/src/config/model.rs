//! The typed configuration every part of the daemon reads. Immutable once built: a reload
//! builds a new one.

use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

use super::diag::Span;

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Config {
    pub virtual_servers: Vec<VirtualServer>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum ServiceAddr {
    /// `virtual_server IP PORT`
    Inet(SocketAddr),
    /// `virtual_server fwmark N`
    Fwmark(u32),
    /// `virtual_server group NAME`
    Group(String),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
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
}

/// `lb_kind` / `lvs_method`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum ForwardMethod {
    /// keepalived's default (IP_VS_CONN_F_MASQ).
    #[default]
    Nat,
    Dr,
    Tun,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VirtualServer {
    pub addr: ServiceAddr,
    pub protocol: Protocol,
    /// `lb_algo` / `lvs_sched`; keepalived and ipvsadm default to `wlc`.
    pub scheduler: String,
    pub forward: ForwardMethod,
    /// Seconds between health-check rounds; keepalived's default is 60.
    pub delay_loop: u32,
    pub persistence_timeout: Option<u32>,
    pub real_servers: Vec<RealServer>,
    #[serde(skip)]
    pub span: Span,
}

impl VirtualServer {
    pub fn new(addr: ServiceAddr, span: Span) -> Self {
        Self {
            addr,
            protocol: Protocol::default(),
            scheduler: "wlc".into(),
            forward: ForwardMethod::default(),
            delay_loop: 60,
            persistence_timeout: None,
            real_servers: Vec::new(),
            span,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RealServer {
    pub addr: SocketAddr,
    /// keepalived's default weight is 1; 0 means no new connections.
    pub weight: u32,
    #[serde(skip)]
    pub span: Span,
}

impl RealServer {
    pub fn new(ip: IpAddr, port: u16, span: Span) -> Self {
        Self {
            addr: SocketAddr::new(ip, port),
            weight: 1,
            span,
        }
    }
}
