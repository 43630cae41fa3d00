//! The kernel's IPVS generic-netlink family (`include/uapi/linux/ip_vs.h`): commands,
//! attributes, and typed services, destinations, stats and sync daemons encoded the way
//! ipvsadm's `libipvs.c` does (the unit tests compare with bytes captured from ipvsadm).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{
    DecodeError, Emitable, NLA_F_NESTED, NLA_TYPE_MASK, Nla, NlaBuffer, NlasIterator, ParseableParametrized,
};
use netlink_packet_generic::{GenlFamily, GenlHeader};

pub const FAMILY_NAME: &str = "IPVS";
const VERSION: u8 = 1;

pub const AF_INET: u16 = libc::AF_INET as u16;
pub const AF_INET6: u16 = libc::AF_INET6 as u16;

/// `IPVS_CMD_*`.
pub mod cmd {
    pub const NEW_SERVICE: u8 = 1;
    pub const SET_SERVICE: u8 = 2;
    pub const DEL_SERVICE: u8 = 3;
    pub const GET_SERVICE: u8 = 4;
    pub const NEW_DEST: u8 = 5;
    pub const SET_DEST: u8 = 6;
    pub const DEL_DEST: u8 = 7;
    pub const GET_DEST: u8 = 8;
    pub const NEW_DAEMON: u8 = 9;
    pub const DEL_DAEMON: u8 = 10;
    pub const GET_DAEMON: u8 = 11;
    pub const SET_CONFIG: u8 = 12;
    pub const GET_CONFIG: u8 = 13;
    pub const GET_INFO: u8 = 15;
    pub const FLUSH: u8 = 17;
}

/// `IPVS_CMD_ATTR_*`.
const CMD_ATTR_SERVICE: u16 = 1;
const CMD_ATTR_DEST: u16 = 2;
const CMD_ATTR_DAEMON: u16 = 3;
const CMD_ATTR_TIMEOUT_TCP: u16 = 4;
const CMD_ATTR_TIMEOUT_TCP_FIN: u16 = 5;
const CMD_ATTR_TIMEOUT_UDP: u16 = 6;

/// `IPVS_SVC_ATTR_*`.
mod svc {
    pub const AF: u16 = 1;
    pub const PROTOCOL: u16 = 2;
    pub const ADDR: u16 = 3;
    pub const PORT: u16 = 4;
    pub const FWMARK: u16 = 5;
    pub const SCHED_NAME: u16 = 6;
    pub const FLAGS: u16 = 7;
    pub const TIMEOUT: u16 = 8;
    pub const NETMASK: u16 = 9;
    pub const STATS: u16 = 10;
    pub const PE_NAME: u16 = 11;
    pub const STATS64: u16 = 12;
}

/// `IPVS_DEST_ATTR_*`.
mod dest {
    pub const ADDR: u16 = 1;
    pub const PORT: u16 = 2;
    pub const FWD_METHOD: u16 = 3;
    pub const WEIGHT: u16 = 4;
    pub const U_THRESH: u16 = 5;
    pub const L_THRESH: u16 = 6;
    pub const ACTIVE_CONNS: u16 = 7;
    pub const INACT_CONNS: u16 = 8;
    pub const PERSIST_CONNS: u16 = 9;
    pub const STATS: u16 = 10;
    pub const ADDR_FAMILY: u16 = 11;
    pub const STATS64: u16 = 12;
    pub const TUN_TYPE: u16 = 13;
    pub const TUN_PORT: u16 = 14;
    pub const TUN_FLAGS: u16 = 15;
}

/// `IPVS_DAEMON_ATTR_*`.
mod daemon {
    pub const STATE: u16 = 1;
    pub const MCAST_IFN: u16 = 2;
    pub const SYNC_ID: u16 = 3;
    pub const SYNC_MAXLEN: u16 = 4;
    pub const MCAST_GROUP: u16 = 5;
    pub const MCAST_GROUP6: u16 = 6;
    pub const MCAST_PORT: u16 = 7;
    pub const MCAST_TTL: u16 = 8;
}

/// `IPVS_INFO_ATTR_*`.
const INFO_VERSION: u16 = 1;
const INFO_CONN_TAB_SIZE: u16 = 2;

/// `IP_VS_SVC_F_*`.
pub const SVC_F_PERSISTENT: u32 = 0x1;
pub const SVC_F_ONEPACKET: u32 = 0x4;

/// `IP_VS_CONN_F_*` forwarding methods.
pub const FWD_MASQ: u32 = 0;
pub const FWD_TUNNEL: u32 = 2;
pub const FWD_DROUTE: u32 = 3;

/// `IP_VS_STATE_*` of a sync daemon.
pub const STATE_MASTER: u32 = 1;
pub const STATE_BACKUP: u32 = 2;

/// One netlink attribute, raw: nested ones hold their children's encoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attr {
    pub kind: u16,
    pub value: Vec<u8>,
}

impl Nla for Attr {
    fn value_len(&self) -> usize {
        self.value.len()
    }
    fn kind(&self) -> u16 {
        self.kind
    }
    fn emit_value(&self, buffer: &mut [u8]) {
        buffer.copy_from_slice(&self.value);
    }
}

impl Attr {
    fn new(kind: u16, value: impl Into<Vec<u8>>) -> Self {
        Self { kind, value: value.into() }
    }

    fn u16(kind: u16, v: u16) -> Self {
        Self::new(kind, v.to_ne_bytes())
    }

    fn u32(kind: u16, v: u32) -> Self {
        Self::new(kind, v.to_ne_bytes())
    }

    /// A NUL-terminated string, as libnl's `NLA_PUT_STRING`.
    fn string(kind: u16, s: &str) -> Self {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        Self::new(kind, v)
    }

    /// Children encoded inside one attribute, flagged nested as libnl (and so ipvsadm) does;
    /// the kernel's replies leave the flag off, and both parse.
    fn nested(kind: u16, children: &[Attr]) -> Self {
        let mut v = vec![0u8; children.buffer_len()];
        children.emit(&mut v);
        Self::new(kind | NLA_F_NESTED, v)
    }

    fn as_u16(&self) -> Result<u16, DecodeError> {
        Ok(u16::from_ne_bytes(self.fixed()?))
    }

    fn as_u32(&self) -> Result<u32, DecodeError> {
        Ok(u32::from_ne_bytes(self.fixed()?))
    }

    fn as_u64(&self) -> Result<u64, DecodeError> {
        Ok(u64::from_ne_bytes(self.fixed()?))
    }

    fn as_string(&self) -> Result<String, DecodeError> {
        let end = self.value.iter().position(|b| *b == 0).unwrap_or(self.value.len());
        String::from_utf8(self.value[..end].to_vec()).map_err(|_| DecodeError::from("attribute is not UTF-8"))
    }

    fn fixed<const N: usize>(&self) -> Result<[u8; N], DecodeError> {
        self.value.get(..N).and_then(|b| b.try_into().ok()).ok_or_else(|| {
            DecodeError::from(format!("attribute {} is {} bytes, expected {N}", self.kind, self.value.len()))
        })
    }

    fn children(&self) -> Result<Vec<Attr>, DecodeError> {
        parse_attrs(&self.value)
    }
}

fn parse_attrs(buf: &[u8]) -> Result<Vec<Attr>, DecodeError> {
    NlasIterator::new(buf)
        .map(|nla| {
            let nla: NlaBuffer<&[u8]> = nla?;
            Ok(Attr { kind: nla.kind() & NLA_TYPE_MASK, value: nla.value().to_vec() })
        })
        .collect()
}

fn find(attrs: &[Attr], kind: u16) -> Option<&Attr> {
    attrs.iter().find(|a| a.kind == kind)
}

fn need(attrs: &[Attr], kind: u16, what: &str) -> Result<Attr, DecodeError> {
    find(attrs, kind).cloned().ok_or_else(|| DecodeError::from(format!("{what}: attribute {kind} missing")))
}

/// A generic-netlink message of the IPVS family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpvsMsg {
    pub cmd: u8,
    pub attrs: Vec<Attr>,
}

impl GenlFamily for IpvsMsg {
    fn family_name() -> &'static str {
        FAMILY_NAME
    }
    fn command(&self) -> u8 {
        self.cmd
    }
    fn version(&self) -> u8 {
        VERSION
    }
}

impl Emitable for IpvsMsg {
    fn buffer_len(&self) -> usize {
        self.attrs.as_slice().buffer_len()
    }
    fn emit(&self, buffer: &mut [u8]) {
        self.attrs.as_slice().emit(buffer)
    }
}

impl ParseableParametrized<[u8], GenlHeader> for IpvsMsg {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        Ok(Self { cmd: header.cmd, attrs: parse_attrs(buf)? })
    }
}

/// How IPVS names a service: address, port and protocol, or a firewall mark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServiceId {
    Inet { proto: u8, addr: IpAddr, port: u16 },
    Fwmark { af: u16, mark: u32 },
}

impl ServiceId {
    pub fn af(&self) -> u16 {
        match self {
            ServiceId::Inet { addr: IpAddr::V4(_), .. } => AF_INET,
            ServiceId::Inet { addr: IpAddr::V6(_), .. } => AF_INET6,
            ServiceId::Fwmark { af, .. } => *af,
        }
    }
}

impl std::fmt::Display for ServiceId {
    /// As `ipvsadm -Ln` prints it: `TCP  203.0.113.10:80`, `FWM  7`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServiceId::Inet { proto, addr, port } => {
                let p = match proto {
                    6 => "TCP".to_string(),
                    17 => "UDP".to_string(),
                    132 => "SCTP".to_string(),
                    p => format!("proto {p}"),
                };
                match addr {
                    IpAddr::V4(a) => write!(f, "{p} {a}:{port}"),
                    IpAddr::V6(a) => write!(f, "{p} [{a}]:{port}"),
                }
            }
            ServiceId::Fwmark { af, mark } => {
                write!(f, "FWM {mark}{}", if *af == AF_INET6 { " IPv6" } else { "" })
            }
        }
    }
}

/// A virtual service as IPVS holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    pub id: ServiceId,
    pub sched: String,
    /// `IP_VS_SVC_F_*` (persistent, one-packet, scheduler flags).
    pub flags: u32,
    /// Persistence timeout in seconds.
    pub timeout: u32,
    /// Persistence netmask: an IPv4 mask in network order, or an IPv6 prefix length.
    pub netmask: u32,
    /// The persistence engine (`sip`), if any.
    pub pe_name: Option<String>,
}

/// A real server of a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dest {
    pub addr: IpAddr,
    pub port: u16,
    /// `FWD_MASQ`, `FWD_DROUTE` or `FWD_TUNNEL`.
    pub fwd: u32,
    pub weight: i32,
    pub u_thresh: u32,
    pub l_thresh: u32,
}

/// `IPVS_STATS_ATTR_*` (read from the 64-bit set when the kernel sends it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
    pub cps: u64,
    pub inpps: u64,
    pub outpps: u64,
    pub inbps: u64,
    pub outbps: u64,
}

/// A destination read back, with its connection counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestInfo {
    pub dest: Dest,
    pub active_conns: u32,
    pub inact_conns: u32,
    pub persist_conns: u32,
    pub stats: Stats,
}

/// A sync daemon as `IPVS_CMD_NEW_DAEMON` starts it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncDaemon {
    pub state: u32,
    pub interface: String,
    pub sync_id: u32,
    /// `--sync-maxlen`, `--mcast-port`, `--mcast-ttl`, `--mcast-group`: sent only when set,
    /// as ipvsadm does.
    pub maxlen: Option<u16>,
    pub port: Option<u16>,
    pub ttl: Option<u8>,
    pub group: Option<IpAddr>,
}

fn addr_bytes(ip: IpAddr) -> Vec<u8> {
    // `union nf_inet_addr`: 16 bytes, IPv4 in the first four.
    let mut b = vec![0u8; 16];
    match ip {
        IpAddr::V4(a) => b[..4].copy_from_slice(&a.octets()),
        IpAddr::V6(a) => b.copy_from_slice(&a.octets()),
    }
    b
}

fn addr_from(a: &Attr, af: u16) -> Result<IpAddr, DecodeError> {
    let b: [u8; 16] = if a.value.len() >= 16 {
        a.fixed()?
    } else {
        let mut x = [0u8; 16];
        x[..4].copy_from_slice(&a.fixed::<4>()?);
        x
    };
    Ok(if af == AF_INET6 { IpAddr::V6(Ipv6Addr::from(b)) } else { IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])) })
}

fn be16(kind: u16, v: u16) -> Attr {
    Attr::new(kind, v.to_be_bytes())
}

fn id_attrs(id: &ServiceId) -> Vec<Attr> {
    let mut a = vec![Attr::u16(svc::AF, id.af())];
    match id {
        ServiceId::Inet { proto, addr, port } => {
            a.push(Attr::u16(svc::PROTOCOL, u16::from(*proto)));
            a.push(Attr::new(svc::ADDR, addr_bytes(*addr)));
            a.push(be16(svc::PORT, *port));
        }
        ServiceId::Fwmark { mark, .. } => a.push(Attr::u32(svc::FWMARK, *mark)),
    }
    a
}

impl Service {
    /// The full `IPVS_CMD_ATTR_SERVICE`, in libipvs's order.
    pub fn attr(&self) -> Attr {
        let mut a = id_attrs(&self.id);
        a.push(Attr::string(svc::SCHED_NAME, &self.sched));
        // As libipvs: the engine's name only when there is one (an edit without it removes
        // the kernel's).
        if let Some(pe) = &self.pe_name {
            a.push(Attr::string(svc::PE_NAME, pe));
        }
        let mut flags = self.flags.to_ne_bytes().to_vec();
        flags.extend_from_slice(&u32::MAX.to_ne_bytes()); // mask: every flag is set or cleared
        a.push(Attr::new(svc::FLAGS, flags));
        a.push(Attr::u32(svc::TIMEOUT, self.timeout));
        a.push(Attr::u32(svc::NETMASK, self.netmask));
        Attr::nested(CMD_ATTR_SERVICE, &a)
    }

    /// A service with its stats, from a `GET_SERVICE` reply.
    pub fn parse(msg: &IpvsMsg) -> Result<(Service, Stats), DecodeError> {
        let s = need(&msg.attrs, CMD_ATTR_SERVICE, "service")?.children()?;
        let af = need(&s, svc::AF, "service")?.as_u16()?;
        let id = match find(&s, svc::FWMARK).map(Attr::as_u32).transpose()? {
            Some(mark) if mark != 0 => ServiceId::Fwmark { af, mark },
            _ => ServiceId::Inet {
                proto: need(&s, svc::PROTOCOL, "service")?.as_u16()? as u8,
                addr: addr_from(&need(&s, svc::ADDR, "service")?, af)?,
                port: u16::from_be_bytes(need(&s, svc::PORT, "service")?.fixed()?),
            },
        };
        let flags = need(&s, svc::FLAGS, "service")?.as_u32()?;
        let service = Service {
            id,
            sched: need(&s, svc::SCHED_NAME, "service")?.as_string()?,
            // HASHED is the kernel's bookkeeping, not configuration.
            flags: flags & !0x2,
            timeout: need(&s, svc::TIMEOUT, "service")?.as_u32()?,
            netmask: need(&s, svc::NETMASK, "service")?.as_u32()?,
            pe_name: find(&s, svc::PE_NAME).map(Attr::as_string).transpose()?.filter(|n| !n.is_empty()),
        };
        Ok((service, stats_of(&s, svc::STATS64, svc::STATS)?))
    }
}

fn stats_of(attrs: &[Attr], k64: u16, k32: u16) -> Result<Stats, DecodeError> {
    let (set, wide) = match (find(attrs, k64), find(attrs, k32)) {
        (Some(a), _) => (a.children()?, true),
        (None, Some(a)) => (a.children()?, false),
        (None, None) => return Ok(Stats::default()),
    };
    let get = |k: u16| -> Result<u64, DecodeError> {
        match find(&set, k) {
            None => Ok(0),
            // In the 32-bit set, counters are u32 and byte counts u64.
            Some(a) if wide || a.value.len() == 8 => a.as_u64(),
            Some(a) => a.as_u32().map(u64::from),
        }
    };
    Ok(Stats {
        conns: get(1)?,
        inpkts: get(2)?,
        outpkts: get(3)?,
        inbytes: get(4)?,
        outbytes: get(5)?,
        cps: get(6)?,
        inpps: get(7)?,
        outpps: get(8)?,
        inbps: get(9)?,
        outbps: get(10)?,
    })
}

impl Dest {
    /// `IPVS_CMD_ATTR_DEST`, in libipvs's order. The tunnel attributes say IPIP (what TUN
    /// means here); kernels before 5.3 ignore them.
    pub fn attr(&self) -> Attr {
        let af = if self.addr.is_ipv4() { AF_INET } else { AF_INET6 };
        let a = [
            Attr::u16(dest::ADDR_FAMILY, af),
            Attr::new(dest::ADDR, addr_bytes(self.addr)),
            be16(dest::PORT, self.port),
            Attr::u32(dest::FWD_METHOD, self.fwd),
            Attr::u32(dest::WEIGHT, self.weight as u32),
            Attr::new(dest::TUN_TYPE, [0u8]),
            be16(dest::TUN_PORT, 0),
            Attr::u16(dest::TUN_FLAGS, 0),
            Attr::u32(dest::U_THRESH, self.u_thresh),
            Attr::u32(dest::L_THRESH, self.l_thresh),
        ];
        Attr::nested(CMD_ATTR_DEST, &a)
    }

    /// A destination from a `GET_DEST` reply; `svc_af` is its service's family (older
    /// kernels do not send the destination's own).
    pub fn parse(msg: &IpvsMsg, svc_af: u16) -> Result<DestInfo, DecodeError> {
        let d = need(&msg.attrs, CMD_ATTR_DEST, "destination")?.children()?;
        let af = find(&d, dest::ADDR_FAMILY).map(Attr::as_u16).transpose()?.unwrap_or(svc_af);
        let u32_or_0 = |k| find(&d, k).map(Attr::as_u32).transpose().map(Option::unwrap_or_default);
        // Tunnel details are known but not configured here; read to be sure they parse.
        let _ = (find(&d, dest::TUN_TYPE), find(&d, dest::TUN_PORT), find(&d, dest::TUN_FLAGS));
        Ok(DestInfo {
            dest: Dest {
                addr: addr_from(&need(&d, dest::ADDR, "destination")?, af)?,
                port: u16::from_be_bytes(need(&d, dest::PORT, "destination")?.fixed()?),
                fwd: need(&d, dest::FWD_METHOD, "destination")?.as_u32()? & 0x7,
                weight: need(&d, dest::WEIGHT, "destination")?.as_u32()? as i32,
                u_thresh: u32_or_0(dest::U_THRESH)?,
                l_thresh: u32_or_0(dest::L_THRESH)?,
            },
            active_conns: u32_or_0(dest::ACTIVE_CONNS)?,
            inact_conns: u32_or_0(dest::INACT_CONNS)?,
            persist_conns: u32_or_0(dest::PERSIST_CONNS)?,
            stats: stats_of(&d, dest::STATS64, dest::STATS)?,
        })
    }
}

impl SyncDaemon {
    pub fn attr(&self) -> Attr {
        let mut a = vec![
            Attr::u32(daemon::STATE, self.state),
            Attr::string(daemon::MCAST_IFN, &self.interface),
            Attr::u32(daemon::SYNC_ID, self.sync_id),
        ];
        // Host byte order for the numbers (nla_get_u16 / u8 in ip_vs_ctl.c); the IPv4 group
        // as an in_addr (network order), the IPv6 one as an in6_addr.
        if let Some(m) = self.maxlen {
            a.push(Attr::u16(daemon::SYNC_MAXLEN, m));
        }
        if let Some(p) = self.port {
            a.push(Attr::u16(daemon::MCAST_PORT, p));
        }
        if let Some(t) = self.ttl {
            a.push(Attr::new(daemon::MCAST_TTL, [t]));
        }
        match self.group {
            Some(IpAddr::V4(g)) => a.push(Attr::new(daemon::MCAST_GROUP, g.octets())),
            Some(IpAddr::V6(g)) => a.push(Attr::new(daemon::MCAST_GROUP6, g.octets())),
            None => {}
        }
        Attr::nested(CMD_ATTR_DAEMON, &a)
    }

    /// Stopping names only the state (ipvsadm sends the other fields empty).
    pub fn stop_attr(state: u32) -> Attr {
        SyncDaemon { state, interface: String::new(), sync_id: 0, maxlen: None, port: None, ttl: None, group: None }
            .attr()
    }

    /// The sync daemons a `GET_DAEMON` dump lists.
    pub fn parse(msg: &IpvsMsg) -> Result<SyncDaemon, DecodeError> {
        let d = need(&msg.attrs, CMD_ATTR_DAEMON, "sync daemon")?.children()?;
        Ok(SyncDaemon {
            state: need(&d, daemon::STATE, "sync daemon")?.as_u32()?,
            interface: need(&d, daemon::MCAST_IFN, "sync daemon")?.as_string()?,
            sync_id: need(&d, daemon::SYNC_ID, "sync daemon")?.as_u32()?,
            maxlen: None,
            port: None,
            ttl: None,
            group: None,
        })
    }
}

/// `GET_INFO`: the IPVS version (as `ipvsadm` prints it) and connection table size.
/// IPVS's connection timeouts in seconds (`IPVS_CMD_SET_CONFIG` / `GET_CONFIG`): TCP
/// established, TCP after FIN, UDP.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp: u32,
    pub tcp_fin: u32,
    pub udp: u32,
}

impl Timeouts {
    /// `SET_CONFIG`'s attributes: only the non-zero ones (the kernel keeps the others).
    pub fn attrs(&self) -> Vec<Attr> {
        [(CMD_ATTR_TIMEOUT_TCP, self.tcp), (CMD_ATTR_TIMEOUT_TCP_FIN, self.tcp_fin), (CMD_ATTR_TIMEOUT_UDP, self.udp)]
            .into_iter()
            .filter(|(_, v)| *v != 0)
            .map(|(k, v)| Attr::u32(k, v))
            .collect()
    }

    /// A `GET_CONFIG` reply.
    pub fn parse(msg: &IpvsMsg) -> Result<Timeouts, DecodeError> {
        let get = |k| find(&msg.attrs, k).map_or(Ok(0), Attr::as_u32);
        Ok(Timeouts {
            tcp: get(CMD_ATTR_TIMEOUT_TCP)?,
            tcp_fin: get(CMD_ATTR_TIMEOUT_TCP_FIN)?,
            udp: get(CMD_ATTR_TIMEOUT_UDP)?,
        })
    }
}

pub fn parse_info(msg: &IpvsMsg) -> Result<(String, u32), DecodeError> {
    let v = need(&msg.attrs, INFO_VERSION, "info")?.as_u32()?;
    let size = need(&msg.attrs, INFO_CONN_TAB_SIZE, "info")?.as_u32()?;
    Ok((format!("{}.{}.{}", (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff), size))
}

/// Every decoding the client applies to what the kernel sends, on one buffer, results
/// dropped: the `ipvs_msg` fuzz target and its in-suite pass (`ipvs/tests.rs`) share it.
#[doc(hidden)]
pub fn decode_any(data: &[u8]) {
    use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
    use netlink_packet_generic::GenlMessage;
    if let Ok(m) = NetlinkMessage::<GenlMessage<IpvsMsg>>::deserialize(data)
        && let NetlinkPayload::InnerMessage(g) = m.payload
    {
        let p = g.payload;
        let _ = Service::parse(&p);
        let _ = Dest::parse(&p, AF_INET);
        let _ = Dest::parse(&p, AF_INET6);
        let _ = SyncDaemon::parse(&p);
        let _ = parse_info(&p);
    }
}
