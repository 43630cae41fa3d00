//! A blocking generic-netlink socket speaking the IPVS family: resolves the family id, sends
//! requests with an acknowledgement, reads dumps. Every receive is bounded by a timeout, so a
//! kernel that never answers is an error, not a hang.

use std::{io, time::Duration};

use anyhow::{Context as _, Result, anyhow, bail};
use netlink_packet_core::{NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload, NetlinkSerializable};
use netlink_packet_generic::{
    GenlMessage,
    ctrl::{GenlCtrl, GenlCtrlCmd, nlas::GenlCtrlAttrs},
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_GENERIC};

use super::msg::{self, IpvsMsg, cmd};

const RECV_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the IPVS backend cannot run here.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    #[error(
        "the kernel has no IPVS (generic netlink family \"IPVS\" not found, and `modprobe ip_vs` did not add it): \
         build or load the ip_vs module, or use --backend bpf"
    )]
    NoFamily,
}

pub struct Client {
    socket: Socket,
    family: u16,
    seq: u32,
}

impl Client {
    /// Connects and resolves the IPVS family, loading `ip_vs` once if it is missing (as
    /// keepalived does).
    pub fn open() -> Result<Self> {
        let mut socket = Socket::new(NETLINK_GENERIC).context("opening a generic netlink socket")?;
        socket.bind_auto().context("binding the netlink socket")?;
        socket.connect(&SocketAddr::new(0, 0)).context("connecting the netlink socket")?;
        set_recv_timeout(&socket, RECV_TIMEOUT)?;
        let mut c = Client { socket, family: 0, seq: 0 };
        c.family = match c.resolve()? {
            Some(id) => id,
            None => {
                let _ = std::process::Command::new("modprobe")
                    .arg("ip_vs")
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status();
                c.resolve()?.ok_or(Unavailable::NoFamily)?
            }
        };
        Ok(c)
    }

    fn resolve(&mut self) -> Result<Option<u16>> {
        let mut m = GenlMessage::from_payload(GenlCtrl {
            cmd: GenlCtrlCmd::GetFamily,
            nlas: vec![GenlCtrlAttrs::FamilyName(msg::FAMILY_NAME.to_string())],
        });
        m.finalize();
        match self.exchange::<GenlCtrl>(m, NLM_F_REQUEST | NLM_F_ACK) {
            Ok(replies) => Ok(replies.into_iter().find_map(|r| {
                r.payload
                    .nlas
                    .into_iter()
                    .find_map(|a| if let GenlCtrlAttrs::FamilyId(id) = a { Some(id) } else { None })
            })),
            Err(e) if e.downcast_ref::<io::Error>().is_some_and(|e| e.raw_os_error() == Some(libc::ENOENT)) => Ok(None),
            Err(e) => Err(e.context("looking up the IPVS netlink family")),
        }
    }

    /// Sends one command and waits for the kernel's acknowledgement.
    pub fn request(&mut self, cmd: u8, attrs: Vec<msg::Attr>) -> Result<()> {
        let m = self.ipvs(cmd, attrs);
        self.exchange::<IpvsMsg>(m, NLM_F_REQUEST | NLM_F_ACK).map(|_| ())
    }

    /// A dump: every reply message of a GET command.
    pub fn dump(&mut self, cmd: u8, attrs: Vec<msg::Attr>) -> Result<Vec<IpvsMsg>> {
        let m = self.ipvs(cmd, attrs);
        Ok(self.exchange::<IpvsMsg>(m, NLM_F_REQUEST | NLM_F_DUMP)?.into_iter().map(|g| g.payload).collect())
    }

    /// A GET without dump (GET_INFO).
    pub fn get(&mut self, cmd: u8) -> Result<IpvsMsg> {
        let m = self.ipvs(cmd, Vec::new());
        let replies = self.exchange::<IpvsMsg>(m, NLM_F_REQUEST)?;
        replies.into_iter().next().map(|g| g.payload).ok_or_else(|| anyhow!("no reply to IPVS command {cmd}"))
    }

    fn ipvs(&self, cmd: u8, attrs: Vec<msg::Attr>) -> GenlMessage<IpvsMsg> {
        let mut m = GenlMessage::from_payload(IpvsMsg { cmd, attrs });
        m.set_resolved_family_id(self.family);
        m.finalize();
        m
    }

    /// Sends `m` and collects replies until the acknowledgement, the end of a dump, or a
    /// single answer (a plain GET gets neither).
    fn exchange<F>(&mut self, m: GenlMessage<F>, flags: u16) -> Result<Vec<GenlMessage<F>>>
    where
        GenlMessage<F>: NetlinkSerializable + netlink_packet_core::NetlinkDeserializable + std::fmt::Debug,
        F: std::fmt::Debug,
    {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut nl = NetlinkMessage::from(m);
        nl.header.flags = flags;
        nl.header.sequence_number = seq;
        nl.finalize();
        let mut buf = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut buf);
        self.socket.send(&buf, 0).context("sending to the kernel's IPVS")?;
        let done_on_first = flags & (NLM_F_ACK | NLM_F_DUMP) == 0;
        let mut out = Vec::new();
        loop {
            let (data, _) = self.socket.recv_from_full().map_err(|e| {
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut {
                    anyhow!("the kernel did not answer an IPVS request within {RECV_TIMEOUT:?}")
                } else {
                    anyhow::Error::from(e).context("reading from the kernel's IPVS")
                }
            })?;
            let mut off = 0;
            while off < data.len() {
                let reply = NetlinkMessage::<GenlMessage<F>>::deserialize(&data[off..])
                    .map_err(|e| anyhow!("undecodable netlink reply: {e}"))?;
                let len = reply.header.length as usize;
                if len == 0 {
                    bail!("netlink reply of length 0");
                }
                off += (len + 3) & !3; // NLMSG_ALIGN
                if reply.header.sequence_number != seq {
                    continue; // a late answer to an earlier request that timed out
                }
                match reply.payload {
                    NetlinkPayload::InnerMessage(g) => {
                        out.push(g);
                        if done_on_first {
                            return Ok(out);
                        }
                    }
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::Error(e) => match e.code {
                        None => return Ok(out), // the acknowledgement
                        Some(code) => return Err(io::Error::from_raw_os_error(-code.get()).into()),
                    },
                    _ => {}
                }
            }
        }
    }

    /// Starts the dump of every service.
    pub fn services(&mut self) -> Result<Vec<(msg::Service, msg::Stats)>> {
        self.dump(cmd::GET_SERVICE, Vec::new())?
            .iter()
            .map(|m| msg::Service::parse(m).map_err(|e| anyhow!("decoding an IPVS service: {e}")))
            .collect()
    }

    pub fn dests(&mut self, s: &msg::Service) -> Result<Vec<msg::DestInfo>> {
        self.dump(cmd::GET_DEST, vec![s.attr()])?
            .iter()
            .map(|m| msg::Dest::parse(m, s.id.af()).map_err(|e| anyhow!("decoding an IPVS destination: {e}")))
            .collect()
    }

    pub fn daemons(&mut self) -> Result<Vec<msg::SyncDaemon>> {
        self.dump(cmd::GET_DAEMON, Vec::new())?
            .iter()
            .map(|m| msg::SyncDaemon::parse(m).map_err(|e| anyhow!("decoding an IPVS sync daemon: {e}")))
            .collect()
    }

    pub fn timeouts(&mut self) -> Result<msg::Timeouts> {
        let m = self.get(cmd::GET_CONFIG)?;
        msg::Timeouts::parse(&m).map_err(|e| anyhow!("decoding IPVS timeouts: {e}"))
    }

    pub fn set_timeouts(&mut self, t: &msg::Timeouts) -> Result<()> {
        self.request(cmd::SET_CONFIG, t.attrs())
    }

    pub fn info(&mut self) -> Result<(String, u32)> {
        let m = self.get(cmd::GET_INFO)?;
        msg::parse_info(&m).map_err(|e| anyhow!("decoding IPVS info: {e}"))
    }
}

fn set_recv_timeout(socket: &Socket, t: Duration) -> Result<()> {
    socket2::SockRef::from(socket).set_read_timeout(Some(t)).context("setting the netlink receive timeout")
}
