//! One instance as the engine runs it: its state machine with the sockets, settings and
//! counters around it. Sends adverts and gratuitous ARPs, and checks received adverts.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::{
    config::{AuthType, Config, GarpExtraIf, GlobalDefs, IpAddress, OldUnicastChecksum, PeerTtl, VrrpInstance},
    netlink,
    vrrp::{
        ah,
        instance::{Instance, Settings, State},
        packet::{Advert, Expect, Reject},
        sockets,
        status::VrrpStatus,
    },
};

/// At most one log line per instance and receive check in this period.
const REJECT_LOG_EVERY: Duration = Duration::from_secs(10);

/// Counters per instance, for logs and status.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Counters {
    pub adverts_sent: u64,
    pub adverts_received: u64,
    pub rejected: BTreeMap<Reject, u64>,
    pub became_master: u64,
    pub released_master: u64,
    pub pri_zero_received: u64,
    pub pri_zero_sent: u64,
}

pub struct LiveInstance {
    /// Stable across reloads (indexes are not): inputs name their instance by id.
    pub id: u64,
    /// The task feeding this instance's adverts to the engine.
    pub rx_task: Option<JoinHandle<()>>,
    /// `socket_key` of the config it was built from.
    pub socket_key: String,
    pub cfg: VrrpInstance,
    pub machine: Instance,
    pub iface: String,
    pub ifindex: u32,
    /// The interface index its sockets are bound to (the VMAC's, unless adverts leave from
    /// the base interface): another one under that name means the interface was deleted
    /// and made again (`reopen`).
    sock_index: u32,
    /// Its configured (base) interface's index: with `use_vmac`, another one under that name
    /// means the base was made again, and the VMAC went with the old one.
    base_index: u32,
    /// Why it has no sockets that work (its interface came back and they could not be
    /// opened on it yet): a fault until `reopen` succeeds.
    pub detached: Option<String>,
    pub mac: [u8; 6],
    pub vrid: u8,
    /// None while its interface does not exist (`dynamic_interfaces`): it sends nothing and
    /// is in FAULT until `reopen` opens its sockets on the interface.
    pub sender: Option<sockets::Sender>,
    pub dsts: Vec<IpAddr>,
    /// The multicast group it hears (none with unicast peers): adverts to any other group
    /// are not for it, as keepalived's receive socket is bound to the group.
    pub join: Option<IpAddr>,
    /// VRRPv3 over IPv6 (the instance's VIPs are IPv6).
    pub v6: bool,
    /// Source of neighbour advertisements (IPv6).
    pub link_local: Option<Ipv6Addr>,
    /// Its sync group (an index into the engine's groups).
    pub group: Option<usize>,
    pub tuning: Tuning,
    pub counters: Counters,
    last_reject_log: BTreeMap<Reject, Instant>,
    /// When the state last changed (for the dumps).
    last_transition: Option<SystemTime>,
    /// The last advert accepted from another router: its source and priority.
    heard: Option<(IpAddr, u8)>,
    /// keepalived's `master_saddr`: the source of the last advert a backup took (priority 0
    /// aside), whose next adverts `skip_check_adv_addr` does not check.
    master_saddr: Option<IpAddr>,
    /// `auth_type AH`: the socket we send whole packets on, and the sequence counter.
    ah: Option<AhLink>,
    /// `use_vmac`: `iface` is the VMAC and this is the configured (base) interface.
    pub vmac: Option<String>,
    /// `notify_priority_changes` as it applies to this instance (`notifies_priority_changes`).
    pub notify_priority: bool,
    /// A reload removed it: its last transition notifies FAULT, or DELETED with
    /// `notify_deleted` (keepalived's `clear_diff_vrrp`), not STOP.
    pub removed: bool,
    /// While master: its VIPs without `no_track` that it added or last saw on this node
    /// (`Engine::check_addresses`).
    pub held: Vec<crate::netlink::OnLink>,
    /// While master with `garp_extra_if`: when the next extra-interface announcement is due
    /// (keepalived's `vmac_garp_timer`).
    pub extra_garp_at: Option<Instant>,
    /// A unicast peer's advert carried the old checksum, so this instance's adverts do too,
    /// until a reload (keepalived's CHKSUM_COMPATIBILITY_AUTO).
    pub old_checksum_heard: bool,
}

/// keepalived's inheritance of `notify_priority_changes`: the instance's own setting, else its
/// sync group's, else global_defs' `vrrp_notify_priority_changes`.
pub fn notifies_priority_changes(cfg: &Config, v: &VrrpInstance) -> bool {
    let group = cfg.vrrp_sync_groups.iter().find(|g| g.group.contains(&v.name));
    v.notify
        .notify_priority_changes
        .or(group.and_then(|g| g.notify.notify_priority_changes))
        .unwrap_or(cfg.global.vrrp_notify_priority_changes)
}

/// keepalived's AH state of an instance: its sequence counter (shared by sending and
/// receiving, kept across reloads), the IP id of its adverts, and the raw socket.
pub struct AhLink {
    sender: sockets::RawSender,
    seq: ah::SeqCounter,
    ip_id: u16,
}

impl AhLink {
    fn new(sender: sockets::RawSender) -> Self {
        Self { sender, seq: ah::SeqCounter::default(), ip_id: 0 }
    }
}

/// What an instance takes from its config besides its sockets and election settings; built
/// the same way at start and when a reload updates the instance in place.
#[derive(PartialEq)]
pub struct Tuning {
    pub password: Option<Vec<u8>>,
    /// `auth_type AH`: the HMAC key (`auth_pass` as keepalived pads it).
    pub ah_key: Option<[u8; 8]>,
    pub garp_delay: Duration,
    pub garp_repeat: u32,
    /// `garp_master_refresh`: re-announce every so often while master (0 = never).
    pub garp_refresh: Duration,
    /// `skip_check_adv_addr` / `vrrp_skip_check_adv_addr`: as a backup, check the address
    /// list only of adverts from a new master.
    pub skip_check_adv_addr: bool,
    /// `check_unicast_src` / `vrrp_check_unicast_src`: drop unicast adverts from outside
    /// `unicast_peer`.
    pub check_unicast_src: bool,
    /// `garp_master_refresh_repeat`: announcements per refresh (keepalived's default 1).
    pub garp_refresh_repeat: u32,
    /// `vrrp_garp_interval` / `vrrp_gna_interval`: the gap between two announcements.
    pub garp_interval: Duration,
    pub gna_interval: Duration,
    /// `garp_extra_if` / `vrrp_garp_extra_if` (the instance's, else the global one).
    pub garp_extra_if: GarpExtraIf,
    /// `old_unicast_checksum`, and the group its old checksums sum (`vrrp_mcast_group4`).
    pub old_checksum: Option<OldUnicastChecksum>,
    pub group4: std::net::Ipv4Addr,
    /// `garp_lower_prio_repeat`: announcements when a lower priority advert comes in as
    /// master (0: none), and again after `garp_lower_prio_delay` (zero: not again).
    pub garp_lower_prio_repeat: u32,
    pub garp_lower_prio_delay: Duration,
}

impl Tuning {
    pub fn new(cfg: &Config, v: &VrrpInstance, version: u8) -> Result<Self> {
        let g = &cfg.global;
        let password = match (&v.authentication, version) {
            (Some(a), 2) if a.auth_type == AuthType::Pass => Some(a.auth_pass.as_bytes().to_vec()),
            _ => None,
        };
        let ah_key = match (&v.authentication, version) {
            (Some(a), 2) if a.auth_type == AuthType::Ah => Some(ah::key(a.auth_pass.as_bytes())),
            _ => None,
        };
        let secs = |s: u32| Duration::from_secs(u64::from(s));
        let (garp_interval, gna_interval) = announcement_gaps(cfg, v.interface.as_deref());
        Ok(Self {
            password,
            ah_key,
            garp_delay: secs(v.garp_master_delay.unwrap_or(g.vrrp_garp_master_delay)),
            garp_repeat: v.garp_master_repeat.unwrap_or(g.vrrp_garp_master_repeat).max(1),
            garp_refresh: secs(v.garp_master_refresh.unwrap_or(g.vrrp_garp_master_refresh)),
            skip_check_adv_addr: v.skips_adv_addr_check(g),
            check_unicast_src: v.check_unicast_src || g.vrrp_check_unicast_src,
            garp_refresh_repeat: v.garp_master_refresh_repeat.unwrap_or(g.vrrp_garp_master_refresh_repeat).max(1),
            garp_interval,
            gna_interval,
            garp_extra_if: v.garp_extra_if.unwrap_or(g.vrrp_garp_extra_if),
            old_checksum: v.old_unicast_checksum,
            group4: g.vrrp_mcast_group4,
            garp_lower_prio_repeat: v.garp_lower_prio_repeat(g),
            garp_lower_prio_delay: secs(v.garp_lower_prio_delay(g)),
        })
    }
}

/// The gaps between announcements on `iface`, as keepalived 2.2.7 sets an interface's
/// `garp_delay` (vrrp_if.c `set_default_garp_delay`): a `garp_group` naming the interface
/// gives both (one it leaves unset is no gap), else `vrrp_garp_interval` /
/// `vrrp_gna_interval`. keepalived paces each interface (an `interfaces` group, the group)
/// across instances; here each instance paces its own announcements with these gaps.
pub fn announcement_gaps(cfg: &Config, iface: Option<&str>) -> (Duration, Duration) {
    let us = |v: u32| Duration::from_micros(u64::from(v));
    let group = iface.and_then(|i| cfg.garp_groups.iter().find(|g| g.interfaces.iter().any(|n| n == i)));
    match group {
        Some(g) => (us(g.garp_interval_us.unwrap_or(0)), us(g.gna_interval_us.unwrap_or(0))),
        None => (us(cfg.global.vrrp_garp_interval_us), us(cfg.global.vrrp_gna_interval_us)),
    }
}

/// The election settings of `v` (its version and primary address are the socket's).
pub fn settings(g: &GlobalDefs, v: &VrrpInstance, version: u8, primary: IpAddr) -> Settings {
    Settings {
        version,
        base_priority: v.priority,
        advert_int_cs: v.advert_int_cs.clamp(1, 4095) as u16,
        preempt: !v.nopreempt,
        preempt_delay: Duration::from_secs(u64::from(v.preempt_delay)),
        primary,
        down_timer_adverts: v.down_timer_adverts(g),
        lower_prio_no_advert: v.lower_prio_no_advert(g),
        higher_prio_send_advert: v.higher_prio_send_advert(g),
    }
}

/// What must match for a reloaded instance to keep its sockets (else it restarts).
pub fn socket_key(cfg: &Config, v: &VrrpInstance) -> String {
    let g = &cfg.global;
    serde_json::to_string(&(
        &v.interface,
        v.virtual_router_id,
        version(g, v),
        v.unicast_src_ip,
        v.mcast_src_ip,
        &v.unicast_peer,
        v.unicast_ttl,
        v.authentication.as_ref().map(|a| a.auth_type == AuthType::Ah),
        v.virtual_ipaddress.first().is_some_and(|a| a.addr.is_ipv6()),
        (&v.use_vmac, v.vmac_xmit_base, &g.vmac_prefix, v.mcast_dst_ip),
        g.vrrp_mcast_group4,
        g.vrrp_mcast_group6,
    ))
    .unwrap_or_default()
}

impl LiveInstance {
    /// Builds instance `v` with its sockets: the sender bound to the instance's source
    /// address, and a receiver on its interface (in the multicast group unless unicast). With
    /// `dynamic_interfaces`, an interface that does not exist yet gives an instance without
    /// sockets (no receiver), in FAULT until `reopen` finds the interface.
    pub fn open(
        cfg: &Config,
        v: &VrrpInstance,
        id: u64,
        now: Instant,
        vmac: Option<&str>,
    ) -> Result<(Self, Option<sockets::Receiver>)> {
        let g = &cfg.global;
        let base = v.interface.clone().context("no `interface`")?;
        let vrid = v.virtual_router_id.context("no `virtual_router_id`")?;
        let (base_link, attached) = match netlink::link(&base) {
            Ok(l) => (l, true),
            Err(_) if g.dynamic_interfaces => (netlink::Link::default(), false),
            Err(e) => return Err(e),
        };
        // With `use_vmac`, the VIPs and their gratuitous ARPs are the VMAC's; adverts too,
        // unless `vmac_xmit_base`. The source address is the base interface's either way.
        // (Without its base, a VMAC is not there yet either: `Engine::remake_vmac`.)
        let (iface, link) = match vmac {
            Some(name) if attached => (name.to_string(), netlink::link(name)?),
            Some(name) => (name.to_string(), netlink::Link::default()),
            None => (base.clone(), base_link.clone()),
        };
        let (sock_iface, sock_index) = if vmac.is_some() && !v.vmac_xmit_base {
            (iface.clone(), link.index)
        } else {
            (base.clone(), base_link.index)
        };
        // Without the interface, the unspecified address stands for its source until `reopen`.
        let (ipv4, link_local) = if attached {
            (base_link.ipv4, base_link.link_local)
        } else {
            (Some(Ipv4Addr::UNSPECIFIED), Some(Ipv6Addr::UNSPECIFIED))
        };
        let Endpoints { v6, src, dsts, join } = endpoints(g, v, &base, ipv4, link_local)?;
        let version = version(g, v);
        let tuning = Tuning::new(cfg, v, version)?;
        let ah_src = ah_source(&tuning, src)?;
        let (ah, sender, rx) = match attached {
            true => {
                let s = Sockets::open(&sock_iface, sock_index, src, ah_src, v, v6, join)?;
                (s.ah.map(AhLink::new), Some(s.sender), Some(s.rx))
            }
            false => (None, None, None),
        };
        let live = LiveInstance {
            id,
            rx_task: None,
            socket_key: socket_key(cfg, v),
            cfg: v.clone(),
            machine: Instance::new(settings(g, v, version, src), now),
            sender,
            v6,
            link_local: if vmac.is_some() { base_link.link_local } else { link.link_local },
            ifindex: link.index,
            sock_index,
            base_index: base_link.index,
            detached: (!attached).then(|| format!("interface {base} does not exist (dynamic_interfaces)")),
            mac: link.mac.unwrap_or_default(),
            iface,
            vrid,
            dsts,
            join,
            group: None,
            tuning,
            counters: Counters::default(),
            last_reject_log: BTreeMap::new(),
            last_transition: None,
            heard: None,
            master_saddr: None,
            ah,
            vmac: vmac.map(|_| base.clone()),
            notify_priority: notifies_priority_changes(cfg, v),
            removed: false,
            held: Vec::new(),
            extra_garp_at: None,
            old_checksum_heard: false,
        };
        Ok((live, rx))
    }

    /// The interface its sockets are bound to: the VMAC, unless adverts leave from the base.
    fn sock_iface(&self) -> &str {
        match &self.vmac {
            Some(base) if self.cfg.vmac_xmit_base => base,
            _ => &self.iface,
        }
    }

    /// Whether the interface its sockets are bound to is there under another index: it was
    /// deleted and made again (or, with `dynamic_interfaces`, made at last), and the sockets
    /// name the old one (they would neither hear nor send). With `use_vmac`, whether its base
    /// interface is (the VMAC went with the old one: `Engine::remake_vmac`), or the VMAC alone
    /// is gone or made again. One or two `if_nametoindex` a poll.
    pub fn moved(&self) -> bool {
        let index = |name: &str| nix::net::if_::if_nametoindex(name).ok();
        match &self.vmac {
            // keepalived makes a VMAC deleted on its own again while its base is there
            // (`recreate_vmac_thread` on RTM_DELLINK), after `cleanup_lost_interface`.
            Some(base) => index(base).is_some_and(|i| i != self.base_index || index(&self.iface) != Some(self.ifindex)),
            None => index(self.sock_iface()).is_some_and(|i| i != self.sock_index),
        }
    }

    /// keepalived's `setup_interface` for an interface made again (`update_added_interface`):
    /// new sockets on it, its index and MAC, and the source address it has now (unless one is
    /// configured). The receiver is the caller's to run. On an error the old sockets stay
    /// (the caller faults the instance until a later try succeeds).
    pub fn reopen(&mut self) -> Result<sockets::Receiver> {
        let base = self.vmac.clone().unwrap_or_else(|| self.iface.clone());
        let base_link = netlink::link(&base)?;
        let link = if self.vmac.is_some() { netlink::link(&self.iface)? } else { base_link.clone() };
        let sock_iface = self.sock_iface().to_string();
        let sock_index = if sock_iface == self.iface { link.index } else { base_link.index };
        let src = source(&self.cfg, self.v6, &base, base_link.ipv4, base_link.link_local)?;
        let s =
            Sockets::open(&sock_iface, sock_index, src, ah_source(&self.tuning, src)?, &self.cfg, self.v6, self.join)?;
        match (s.ah, self.ah.as_mut()) {
            // AH's sequence goes on: a peer drops adverts whose number went back.
            (Some(new), Some(ah)) => ah.sender = new,
            (Some(new), None) => self.ah = Some(AhLink::new(new)),
            (None, _) => {}
        }
        self.sender = Some(s.sender);
        self.sock_index = sock_index;
        self.base_index = base_link.index;
        self.ifindex = link.index;
        self.mac = link.mac.unwrap_or_default();
        self.link_local = if self.vmac.is_some() { base_link.link_local } else { link.link_local };
        self.machine.s.primary = src;
        Ok(s.rx)
    }

    /// Its VIPs, excluded ones too (they move with it but are not advertised).
    pub fn vips(&self) -> Vec<IpAddress> {
        self.vips_of(&self.cfg)
    }

    /// `cfg`'s VIPs as this instance holds them (`placed_vips`).
    pub fn vips_of(&self, cfg: &VrrpInstance) -> Vec<IpAddress> {
        placed_vips(cfg, self.vmac.as_deref())
    }

    pub fn send_advert(&mut self, priority: u8) {
        let Some(sender) = &self.sender else { return };
        let a = Advert {
            version: self.machine.s.version,
            vrid: self.vrid,
            priority,
            interval_cs: self.machine.s.advert_int_cs,
            addrs: advertised(&self.cfg),
            password: self.tuning.password.clone(),
        };
        if let Some(link) = &mut self.ah {
            return send_ah(link, &self.tuning, &self.cfg, &self.dsts, sender.src, &a, &mut self.counters);
        }
        for dst in &self.dsts {
            let msg = a.encode(sender.src, self.checksum_dst(*dst));
            match sender.send(&msg, *dst) {
                Ok(()) => {
                    self.counters.adverts_sent += 1;
                    self.counters.pri_zero_sent += u64::from(priority == 0);
                }
                Err(e) => warn!(instance = %self.cfg.name, %dst, "sending advert: {e}"),
            }
        }
    }

    /// Gratuitous ARPs (IPv4) or unsolicited neighbour advertisements (IPv6) for every VIP.
    /// Announces every VIP `repeat` times (keepalived's `garp_master_repeat` on becoming
    /// master, `garp_master_refresh_repeat` on a refresh). With `vrrp_garp_interval` /
    /// `vrrp_gna_interval`, as keepalived: one now and one after the interval (in a task, so
    /// the engine does not wait); without, all back to back now.
    pub fn garp(&self, repeat: u32) {
        self.announce(self.vips(), repeat);
    }

    /// When the advert just sent was due: its point on the machine's advert grid (one
    /// interval before the next), else `now`. keepalived's master timers count from its
    /// `time_now`, the advert thread's wake-up; counted from the grid, a timer of whole
    /// intervals falls due at an advert, as keepalived's do, and not one advert late.
    pub fn advert_time(&self, now: Instant) -> Instant {
        let advert = Duration::from_millis(u64::from(self.machine.s.advert_int_cs) * 10);
        self.machine.deadline().map_or(now, |next| next - advert)
    }

    /// The addresses `garp_extra_if` announces (`extra_targets`).
    pub fn extra_announcements(&self) -> Vec<IpAddress> {
        extra_targets(self.vips(), &self.iface, self.tuning.garp_extra_if, self.cfg.vmac_xmit_base)
    }

    /// While master, on sending an advert (as keepalived's `vrrp_state_master_tx`): the
    /// extra-interface announcements once they are due, and when they are due next (from now
    /// when nothing was due: a reload turned them on).
    pub fn extra_garp_if_due(&mut self, now: Instant) {
        let next = self.advert_time(now) + Duration::from_secs(u64::from(self.tuning.garp_extra_if.secs));
        match self.extra_garp_at {
            Some(at) if now > at => {
                self.announce(self.extra_announcements(), 1);
                self.extra_garp_at = Some(next);
            }
            None if !self.extra_announcements().is_empty() => self.extra_garp_at = Some(next),
            _ => {}
        }
    }

    /// Announces `addrs` `repeat` times each, as `garp` describes.
    fn announce(&self, addrs: Vec<IpAddress>, repeat: u32) {
        let mut sends: Vec<(u32, IpAddr)> = Vec::new();
        let mut macs: Vec<(u32, [u8; 6])> = vec![(self.ifindex, self.mac)];
        for a in addrs {
            let ifindex = match &a.dev {
                Some(d) if *d != self.iface => match netlink::link(d) {
                    Ok(l) => {
                        macs.push((l.index, l.mac.unwrap_or(self.mac)));
                        l.index
                    }
                    Err(_) => self.ifindex,
                },
                _ => self.ifindex,
            };
            sends.push((ifindex, a.addr));
        }
        let (name, link_local) = (self.cfg.name.clone(), self.link_local);
        let send = move |ifindex: u32, addr: IpAddr, count: u32| {
            let mac = macs.iter().find(|(i, _)| *i == ifindex).map_or([0; 6], |(_, m)| *m);
            let sent = match (addr, link_local) {
                (IpAddr::V4(ip), _) => sockets::gratuitous_arp(ifindex, mac, ip, count),
                (IpAddr::V6(ip), Some(ll)) => sockets::unsolicited_na(ifindex, ll, mac, ip, count),
                (IpAddr::V6(ip), None) => Err(anyhow::anyhow!("no link-local address to announce {ip} from")),
            };
            if let Err(e) = sent {
                warn!(instance = %name, "{e:#}");
            }
        };
        let (garp_gap, gna_gap) = (self.tuning.garp_interval, self.tuning.gna_interval);
        if garp_gap.is_zero() && gna_gap.is_zero() {
            for (ifindex, addr) in sends {
                send(ifindex, addr, repeat);
            }
            return;
        }
        // keepalived sends the first now and queues the rest for after the interval, but
        // queued announcements of one address coalesce into one (a pending flag): a burst is
        // at most two per address, whatever the repeat count (seen on the wire from 2.2.7).
        for (ifindex, addr) in &sends {
            send(*ifindex, *addr, 1);
        }
        if repeat < 2 {
            return;
        }
        tokio::spawn(async move {
            for (ifindex, addr) in &sends {
                tokio::time::sleep(if addr.is_ipv4() { garp_gap } else { gna_gap }).await;
                send(*ifindex, *addr, 1);
            }
        });
    }

    /// A received VRRP message: the advert when it passes every receive check, its address
    /// list included (as keepalived, with or without `vrrp_strict`). Drops are counted, and
    /// logged at most once per `REJECT_LOG_EVERY` and check.
    pub fn check_advert(&mut self, ttl: u8, src: IpAddr, dst: IpAddr, msg: &[u8]) -> Option<Advert> {
        if self.join.is_some_and(|g| g != dst) {
            return None;
        }
        // AH: `msg` is the whole IPv4 packet. As keepalived: ICV, SPI, then the sequence
        // number (which the counter takes at once), then the VRRP checks.
        let mut ah_seq = None;
        let mut msg = msg;
        if let (Some(link), Some(key)) = (&mut self.ah, self.tuning.ah_key) {
            let vrrp = ah::vrrp_of(msg)?;
            if vrrp.get(1) != Some(&self.vrid) {
                return None;
            }
            let unicast = !self.cfg.unicast_peer.is_empty();
            let checked = match ah::verify(msg, unicast, &key) {
                Ok(v) if link.seq.accept(v.seq) => Ok(v),
                Ok(v) => Err(format!("sequence number {} already seen (ours {})", v.seq, link.seq.seq)),
                Err(r) => Err(format!("{r:?}")),
            };
            match checked {
                Ok(v) => {
                    ah_seq = Some(v.seq);
                    msg = v.vrrp;
                }
                Err(why) => {
                    self.reject(Reject::Password, src, ttl, &format!(" IPSEC-AH: {why}"));
                    return None;
                }
            }
        }
        let e = Expect {
            version: self.machine.s.version,
            vrid: self.vrid,
            interval_cs: self.machine.s.advert_int_cs,
            password: self.tuning.password.as_deref(),
            v6: self.v6,
            check_ttl: self.cfg.unicast_peer.is_empty(),
            ah: self.ah.is_some(),
        };
        // keepalived checks the address list (and with check_unicast_src the source) of every
        // advert, or with skip_check_adv_addr, as a backup, only when the master's address
        // changes (`vrrp_state_backup`; a master checks every advert).
        let check_addrs =
            !self.tuning.skip_check_adv_addr || self.machine.state != State::Backup || self.master_saddr != Some(src);
        let mine = advertised(&self.cfg);
        let mut parsed = Advert::parse(msg, src, self.checksum_dst(dst), ttl, &e);
        if parsed == Err(Reject::Checksum) && self.may_detect_old_checksum(dst) {
            let group = IpAddr::V4(self.tuning.group4);
            if let Ok(a) = Advert::parse(msg, src, group, ttl, &e) {
                info!("({}) Setting unicast VRRPv3 checksum to old version", self.cfg.name);
                self.old_checksum_heard = true;
                parsed = Ok(a);
            }
        }
        let check_src = check_addrs && self.tuning.check_unicast_src;
        let result = parsed
            .and_then(
                |a| if check_addrs && !same_addresses(&a.addrs, &mine) { Err(Reject::AddressList) } else { Ok(a) },
            )
            .and_then(|a| {
                if check_src && !from_known_peer(&self.cfg.unicast_peer, src) {
                    Err(Reject::UnknownPeer)
                } else {
                    Ok(a)
                }
            })
            .and_then(|a| {
                if check_src && !ttl_in_range(&self.cfg.unicast_peer_ttl, src, ttl) { Err(Reject::Ttl) } else { Ok(a) }
            });
        let advert = match result {
            Ok(a) => a,
            Err(Reject::OtherVrid) => return None,
            Err(r) => {
                self.reject(r, src, ttl, "");
                return None;
            }
        };
        // keepalived: a master hearing a lower-priority router continues after its number.
        if let (Some(link), Some(seq)) = (&mut self.ah, ah_seq) {
            let mine = self.machine.priority();
            let lower = advert.priority < mine || (advert.priority == mine && src < self.machine.s.primary);
            if self.machine.state == State::Master && lower {
                link.seq.heard_lower_priority(seq);
            }
        }
        self.counters.adverts_received += 1;
        self.counters.pri_zero_received += u64::from(advert.priority == 0);
        self.heard = Some((src, advert.priority));
        if self.machine.state == State::Backup && advert.priority != 0 {
            self.master_saddr = Some(src);
        }
        Some(advert)
    }

    /// The destination an advert's checksum sums (keepalived's `unicast_chksum_compat`): an
    /// IPv4 VRRPv3 instance on the old checksums sums `vrrp_mcast_group4` instead of `dst`.
    fn checksum_dst(&self, dst: IpAddr) -> IpAddr {
        let old = match self.tuning.old_checksum {
            Some(OldUnicastChecksum::Old) => true,
            Some(OldUnicastChecksum::Never) => false,
            None => self.old_checksum_heard,
        };
        if old && dst.is_ipv4() && self.machine.s.version == 3 { IpAddr::V4(self.tuning.group4) } else { dst }
    }

    /// Whether an advert to `dst` that fails its checksum is tried with the old one (and the
    /// instance switches to it if that passes): keepalived's default mode, with unicast peers.
    fn may_detect_old_checksum(&self, dst: IpAddr) -> bool {
        self.tuning.old_checksum.is_none()
            && !self.old_checksum_heard
            && !self.cfg.unicast_peer.is_empty()
            && self.machine.s.version == 3
            && dst.is_ipv4()
            && dst != IpAddr::V4(self.tuning.group4)
    }

    /// Counts a dropped advert, and logs it at most once per `REJECT_LOG_EVERY` and check.
    fn reject(&mut self, r: Reject, src: IpAddr, ttl: u8, detail: &str) {
        let n = self.counters.rejected.entry(r).or_default();
        *n += 1;
        let now = Instant::now();
        let last = self.last_reject_log.get(&r);
        if last.is_none_or(|t| now.duration_since(*t) >= REJECT_LOG_EVERY) {
            self.last_reject_log.insert(r, now);
            warn!(instance = %self.cfg.name, vrid = self.vrid, %src, ttl, "advert dropped: {r:?}{detail} ({n} so far)");
        }
    }

    /// The instance entered `to`: the line keepalived logs for it (monitoring greps these,
    /// at keepalived's severity, INFO), with our details as fields; and the counters the
    /// dumps show.
    pub fn entered(&mut self, from: State, to: State, why: &str) {
        let name = &self.cfg.name;
        let (vrid, priority) = (self.vrid, self.machine.priority());
        // `transition` keeps our own wording: "BACKUP -> MASTER: why".
        let transition = format_args!("{} -> {}: {why}", from.name(), to.name());
        let init = if from == State::Init { " (init)" } else { "" };
        match to {
            State::Master | State::Backup | State::Fault => {
                info!(instance = %name, vrid, priority, %transition, "({name}) Entering {} STATE{init}", to.name())
            }
            State::Stopped if from == State::Master => {
                info!(instance = %name, vrid, priority, %transition, "({name}) sent 0 priority")
            }
            State::Stopped | State::Init => info!(instance = %name, vrid, priority, %transition, "({name}) {why}"),
        }
        if to == State::Master
            && let Some(link) = &mut self.ah
        {
            link.seq.becoming_master();
        }
        if from == State::Master && matches!(to, State::Backup | State::Fault) {
            self.counters.released_master += 1;
        }
        self.last_transition = Some(SystemTime::now());
    }

    pub fn status(&self) -> VrrpStatus {
        VrrpStatus {
            instance: self.cfg.name.clone(),
            vrid: self.vrid,
            state: self.machine.state,
            priority: self.machine.priority(),
            adverts_sent: self.counters.adverts_sent,
            adverts_received: self.counters.adverts_received,
            became_master: self.counters.became_master,
            rejected: self.counters.rejected.iter().map(|(r, n)| (format!("{r:?}"), *n)).collect(),
            released_master: self.counters.released_master,
            pri_zero_received: self.counters.pri_zero_received,
            pri_zero_sent: self.counters.pri_zero_sent,
            last_transition: self
                .last_transition
                .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map_or(0.0, |d| d.as_secs_f64()),
            master: if self.machine.state == State::Master { None } else { self.heard },
            interface: self.iface.clone(),
            src_ip: self.sender.as_ref().map(|s| s.src),
            old_checksum_heard: self.old_checksum_heard,
            version: self.machine.s.version,
            processes: Vec::new(),
        }
    }
}

/// One AH advert (one sequence number) to every destination, as keepalived's
/// `vrrp_send_adv`: our own IPv4 header, TTL 255 to the group, `unicast_ttl` to peers.
fn send_ah(
    link: &mut AhLink,
    tuning: &Tuning,
    cfg: &VrrpInstance,
    dsts: &[IpAddr],
    src: IpAddr,
    a: &Advert,
    counters: &mut Counters,
) {
    let (Some(key), IpAddr::V4(src4)) = (tuning.ah_key, src) else { return };
    let unicast = !cfg.unicast_peer.is_empty();
    let ttl = if unicast { cfg.unicast_ttl.unwrap_or(255) } else { 255 };
    let seq = link.seq.next_send();
    for dst in dsts {
        let IpAddr::V4(dst4) = *dst else { continue };
        // keepalived's IP id: one per advert, never 0 (the kernel would pick one).
        link.ip_id = link.ip_id.wrapping_add(1).max(1);
        let mut msg = a.encode(src, *dst);
        ah::mark_vrrp_ah(&mut msg);
        let packet = ah::build(src4, dst4, ttl, link.ip_id, seq, unicast, &msg, &key);
        match link.sender.send(&packet, dst4) {
            Ok(()) => {
                counters.adverts_sent += 1;
                counters.pri_zero_sent += u64::from(a.priority == 0);
            }
            Err(e) => warn!(instance = %cfg.name, %dst, "sending AH advert: {e}"),
        }
    }
}

/// The VRRP version of `v`'s adverts: its own `version`, else 3 for IPv6 VIPs, else
/// global_defs' `vrrp_version` (as keepalived).
pub fn version(g: &GlobalDefs, v: &VrrpInstance) -> u8 {
    v.vrrp_version(g)
}

/// Where `v`'s adverts come from and go to.
#[derive(Debug, PartialEq)]
pub struct Endpoints {
    /// The VIPs are IPv6 (VRRPv3 over IPv6).
    pub v6: bool,
    /// The adverts' source: `unicast_src_ip`, else `mcast_src_ip`, else the interface's IPv4
    /// address or IPv6 link-local address (keepalived's order).
    pub src: IpAddr,
    /// The unicast peers of the VIPs' family, else the multicast group of that family
    /// (`vrrp_mcast_group4` / `vrrp_mcast_group6`).
    pub dsts: Vec<IpAddr>,
    /// The group the receiver joins (none with unicast peers).
    pub join: Option<IpAddr>,
}

/// `v`'s advert endpoints on interface `iface`, whose addresses are `ipv4` and `link_local`.
pub fn endpoints(
    g: &GlobalDefs,
    v: &VrrpInstance,
    iface: &str,
    ipv4: Option<Ipv4Addr>,
    link_local: Option<Ipv6Addr>,
) -> Result<Endpoints> {
    let v6 = v.virtual_ipaddress.first().is_some_and(|a| a.addr.is_ipv6());
    let src = source(v, v6, iface, ipv4, link_local)?;
    let global = if v6 { IpAddr::V6(g.vrrp_mcast_group6) } else { IpAddr::V4(g.vrrp_mcast_group4) };
    let group = v.mcast_dst_ip.unwrap_or(global);
    if v.unicast_peer.is_empty() {
        Ok(Endpoints { v6, src, dsts: vec![group], join: Some(group) })
    } else {
        let dsts = v.unicast_peer.iter().filter(|p| p.is_ipv6() == v6).copied().collect();
        Ok(Endpoints { v6, src, dsts, join: None })
    }
}

/// An instance's sockets on `iface` (index `index`): AH's raw sender (with an AH source
/// address), the advert sender bound to `src`, and the receiver (in `join`'s group).
struct Sockets {
    ah: Option<sockets::RawSender>,
    sender: sockets::Sender,
    rx: sockets::Receiver,
}

impl Sockets {
    fn open(
        iface: &str,
        index: u32,
        src: IpAddr,
        ah: Option<Ipv4Addr>,
        v: &VrrpInstance,
        v6: bool,
        join: Option<IpAddr>,
    ) -> Result<Self> {
        let ah = ah.map(|a| sockets::RawSender::open(iface, index, a)).transpose()?;
        let sender = sockets::Sender::open(iface, index, src, v.unicast_ttl.unwrap_or(255))?;
        let rx = sockets::Receiver::open(iface, index, v6, join, ah.is_some())?;
        Ok(Self { ah, sender, rx })
    }
}

/// With `auth_type AH`, the IPv4 source of the instance's AH adverts (`src`); None without.
fn ah_source(tuning: &Tuning, src: IpAddr) -> Result<Option<Ipv4Addr>> {
    match (tuning.ah_key, src) {
        (Some(_), IpAddr::V4(a)) => Ok(Some(a)),
        (Some(_), IpAddr::V6(_)) => bail!("auth_type AH needs VRRP version 2 over IPv4"),
        (None, _) => Ok(None),
    }
}

/// The address adverts of `v` leave from: the configured one, else `iface`'s first IPv4
/// address, or its link-local address for IPv6 VIPs (`v6`).
fn source(
    v: &VrrpInstance,
    v6: bool,
    iface: &str,
    ipv4: Option<Ipv4Addr>,
    link_local: Option<Ipv6Addr>,
) -> Result<IpAddr> {
    Ok(match v.unicast_src_ip.or(v.mcast_src_ip) {
        Some(a) if a.is_ipv6() == v6 => a,
        Some(a) => bail!("source address {a} is not of the VIPs' family"),
        None if v6 => IpAddr::V6(link_local.with_context(|| format!("{iface} has no IPv6 link-local address"))?),
        None => IpAddr::V4(ipv4.with_context(|| format!("{iface} has no IPv4 address to send adverts from"))?),
    })
}

/// keepalived's `unicast_peer` `min_ttl` / `max_ttl` (checked with the source): whether an
/// advert from `src` that arrived with TTL (hop limit) `ttl` is in its peer's range; a peer
/// without one takes any.
pub fn ttl_in_range(ranges: &[PeerTtl], src: IpAddr, ttl: u8) -> bool {
    ranges.iter().find(|p| p.addr == src).is_none_or(|p| (p.min..=p.max).contains(&ttl))
}

/// keepalived's `check_unicast_src` (`vrrp_check_unicast_src`), when either is set: with
/// unicast peers, an advert from any other address is dropped.
pub fn from_known_peer(peers: &[IpAddr], src: IpAddr) -> bool {
    peers.is_empty() || peers.contains(&src)
}

/// keepalived's `vrrp_send_vmac_update` (`garp_extra_if`): what to announce once each time
/// it is due, of `vips` (as the instance holds them, on `iface` unless their `dev` says
/// otherwise): the first VIP of each interface other than `iface`, and of `iface` itself when
/// adverts leave from the base (`vmac_xmit_base`: `iface` is the VMAC, whose MAC the switches
/// would otherwise stop hearing). keepalived sends on other interfaces only with `all`, or on
/// VMACs it made for them (`use_vmac_addr`, not in this version), and never unless some VIP
/// is on another interface.
pub fn extra_targets(vips: Vec<IpAddress>, iface: &str, extra: GarpExtraIf, xmit_base: bool) -> Vec<IpAddress> {
    let other = |a: &IpAddress| a.device(iface) != iface;
    if extra.secs == 0 || !extra.all || !vips.iter().any(other) {
        return Vec::new();
    }
    let mut seen = std::collections::BTreeSet::new();
    vips.into_iter().filter(|a| other(a) || xmit_base).filter(|a| seen.insert(a.device(iface).to_string())).collect()
}

/// `v`'s VIPs where it holds them, `dev` None meaning its interface (its VMAC with use_vmac:
/// `vmac_base` names the interface the VMAC is on). As keepalived's `vrrp_complete_instance`:
/// with use_vmac an address without `dev`, or with the base interface as `dev`, goes on the
/// VMAC when of the instance's family and stays on the base interface otherwise.
pub fn placed_vips(v: &VrrpInstance, vmac_base: Option<&str>) -> Vec<IpAddress> {
    let mut all = vips(v);
    let Some(base) = vmac_base else { return all };
    let v6 = v.virtual_ipaddress.first().is_some_and(|a| a.addr.is_ipv6());
    for a in all.iter_mut().filter(|a| a.dev.as_deref().is_none_or(|d| d == base)) {
        a.dev = if a.addr.is_ipv6() == v6 { None } else { Some(base.to_string()) };
    }
    all
}

/// The addresses `v` holds as master: `virtual_ipaddress` and `virtual_ipaddress_excluded`.
pub fn vips(v: &VrrpInstance) -> Vec<IpAddress> {
    v.virtual_ipaddress.iter().chain(&v.virtual_ipaddress_excluded).cloned().collect()
}

/// The addresses `v`'s adverts list (and received adverts must list): `virtual_ipaddress`
/// only, never `virtual_ipaddress_excluded`.
pub fn advertised(v: &VrrpInstance) -> Vec<IpAddr> {
    v.virtual_ipaddress.iter().map(|a| a.addr).collect()
}

/// keepalived's address-list check: as many addresses as our VIPs, and each of ours among them.
fn same_addresses(theirs: &[IpAddr], mine: &[IpAddr]) -> bool {
    theirs.len() == mine.len() && mine.iter().all(|m| theirs.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// global_defs' gratuitous ARP settings reach an instance that does not set its own, and
    /// the instance's own win (the bursts they shape are counted on the wire by
    /// `tests/tests/vrrp.rs::gratuitous_arp_counts_and_spacing_follow_keepalived`).
    #[test]
    fn global_garp_settings_reach_instances_that_do_not_set_their_own() {
        let global = "global_defs {\n vrrp_garp_master_delay 7\n vrrp_garp_master_repeat 3\n \
                      vrrp_garp_master_refresh 60\n vrrp_garp_master_refresh_repeat 4\n vrrp_gna_interval 0.25\n}\n";
        let tuning = |own: &str| {
            let text = format!(
                "{global}vrrp_instance VI_1 {{\n interface eth0\n virtual_router_id 1\n priority 100\n{own}}}\n"
            );
            let l = crate::config::parse_str("t.conf", &text);
            assert!(!l.has_errors(), "{}", l.render());
            let t = Tuning::new(&l.config, &l.config.vrrp_instances[0], 2).unwrap();
            (t.garp_delay.as_secs(), t.garp_repeat, t.garp_refresh.as_secs(), t.garp_refresh_repeat, t.gna_interval)
        };
        assert_eq!(tuning(""), (7, 3, 60, 4, Duration::from_millis(250)));
        let own =
            " garp_master_delay 2\n garp_master_repeat 1\n garp_master_refresh 9\n garp_master_refresh_repeat 2\n";
        assert_eq!(tuning(own), (2, 1, 9, 2, Duration::from_millis(250)));
    }

    /// With use_vmac, keepalived puts a VIP of the instance's family on the VMAC whether it
    /// names no `dev` or the base interface, and one of the other family on the base
    /// interface; other interfaces stay theirs.
    #[test]
    fn vmac_instances_place_their_vips_as_keepalived() {
        let text = "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 1\n use_vmac\n virtual_ipaddress {\n  \
                    192.0.2.10/24\n  192.0.2.11/24 dev eth0\n  192.0.2.12/24 dev eth1\n }\n \
                    virtual_ipaddress_excluded {\n  2001:db8::10/64\n  2001:db8::11/64 dev eth0\n }\n}\n";
        let l = crate::config::parse_str("t.conf", text);
        assert!(!l.has_errors(), "{}", l.render());
        let v = &l.config.vrrp_instances[0];
        let placed = |base| -> Vec<String> {
            placed_vips(v, base).iter().map(|a| format!("{} {}", a.addr, a.device("VMAC"))).collect()
        };
        assert_eq!(
            placed(Some("eth0")),
            ["192.0.2.10 VMAC", "192.0.2.11 VMAC", "192.0.2.12 eth1", "2001:db8::10 eth0", "2001:db8::11 eth0"]
        );
        // Without a VMAC, as configured.
        assert_eq!(placed(None)[1], "192.0.2.11 eth0");
    }

    /// `garp_extra_if` as keepalived's `vrrp_send_vmac_update` and its setup in vrrp.c: the
    /// instance's setting, else global_defs'; with `all`, the first VIP of each other
    /// interface (and of the VMAC itself with `vmac_xmit_base`); nothing without `all` (no
    /// VMACs for other interfaces here), at 0 seconds, or with every VIP on the instance's
    /// interface. The frames and their spacing beside keepalived's:
    /// `tests/tests/vrrp.rs::garp_extra_if_announces_on_other_interfaces_as_keepalived`.
    #[test]
    fn garp_extra_if_announces_the_first_vip_of_each_other_interface() {
        let targets = |global: &str, own: &str, vips: &str, iface: &str, xmit_base: bool| {
            let text = format!(
                "global_defs {{\n{global}}}\nvrrp_instance VI_1 {{\n interface eth0\n virtual_router_id 1\n                  virtual_ipaddress {{\n{vips} }}\n{own}}}\n"
            );
            let l = crate::config::parse_str("t.conf", &text);
            assert!(!l.has_errors(), "{}", l.render());
            let v = &l.config.vrrp_instances[0];
            let t = Tuning::new(&l.config, v, 2).unwrap();
            let got = extra_targets(super::vips(v), iface, t.garp_extra_if, xmit_base);
            got.iter().map(|a| format!("{} {}", a.addr, a.device(iface))).collect::<Vec<_>>()
        };
        let vips =
            "  192.0.2.10/24\n  198.51.100.10/24 dev eth1\n  198.51.100.11/24 dev eth1\n  203.0.113.10/24 dev eth2\n";
        let both = vec!["198.51.100.10 eth1".to_string(), "203.0.113.10 eth2".to_string()];
        assert_eq!(targets("", " garp_extra_if all 5\n", vips, "eth0", false), both);
        assert_eq!(targets(" vrrp_garp_extra_if 5 all\n", "", vips, "eth0", false), both);
        // The instance's own setting wins, `all` with it.
        assert!(targets(" vrrp_garp_extra_if all 5\n", " garp_extra_if 5\n", vips, "eth0", false).is_empty());
        assert!(targets(" vrrp_garp_extra_if all 5\n", " garp_extra_if all 0\n", vips, "eth0", false).is_empty());
        assert!(targets("", "", vips, "eth0", false).is_empty());
        assert!(
            targets("", " garp_extra_if all 5\n", "  192.0.2.10/24\n  192.0.2.11/24 dev eth0\n", "eth0", true)
                .is_empty()
        );
        // A VMAC whose adverts leave from the base is announced too (iface: the VMAC).
        let mut with_vmac = vec!["192.0.2.10 vrrp.1".to_string()];
        with_vmac.extend(both);
        assert_eq!(targets("", " garp_extra_if all 5\n", vips, "vrrp.1", true), with_vmac);
    }

    /// A `garp_group` sets both gaps for the interfaces it names (one it leaves unset is no
    /// gap, not the global one); other interfaces keep global_defs'. An interface already in
    /// a group stays in the first; a group without intervals is dropped (keepalived's words).
    #[test]
    fn a_garp_group_spaces_its_interfaces_announcements() {
        let text = "global_defs {\n vrrp_garp_interval 0.2\n vrrp_gna_interval 0.3\n}\n\
                    garp_group {\n garp_interval 0.5\n interface eth0\n}\n\
                    garp_group {\n gna_interval 0.000001\n interfaces {\n eth1\n eth0\n }\n}\n\
                    garp_group {\n interface eth3\n}\n";
        let l = crate::config::parse_str("t.conf", text);
        assert!(!l.has_errors(), "{}", l.render());
        let warned = l.render();
        assert!(warned.contains("garp_group already specified for eth0 - ignoring"), "{warned}");
        assert!(warned.contains("garp group 3 does not have any delay set - removing"), "{warned}");
        let ms = |iface: &str| {
            let (a, b) = announcement_gaps(&l.config, Some(iface));
            (a.as_micros(), b.as_micros())
        };
        assert_eq!(ms("eth0"), (500_000, 0));
        assert_eq!(ms("eth1"), (0, 1));
        assert_eq!(ms("eth2"), (200_000, 300_000));
        assert_eq!(ms("eth3"), (200_000, 300_000));
        for (text, us) in [(".5", 500_000), ("+1.25", 1_250_000), ("0", 0)] {
            let l = crate::config::parse_str(
                "t.conf",
                &format!("garp_group {{\n garp_interval {text}\n interface e\n}}\n"),
            );
            assert!(!l.has_errors(), "{text}: {}", l.render());
            assert_eq!(l.config.garp_groups[0].garp_interval_us, Some(us), "{text}");
        }
        for bad in ["-1", "1.0000001", "x", "2147.483648", ".", "+"] {
            let l =
                crate::config::parse_str("t.conf", &format!("garp_group {{\n garp_interval {bad}\n interface e\n}}\n"));
            assert!(l.render().contains(&format!("garp_group garp_interval '{bad}' invalid")), "{bad}: {}", l.render());
        }
    }

    /// `notify_priority_changes`: the instance's own setting wins, then its sync group's, then
    /// global_defs' `vrrp_notify_priority_changes`.
    #[test]
    fn priority_notices_follow_instance_then_group_then_global() {
        let inst = |name: &str, own: &str| {
            let vrid = name.as_bytes()[0] - b'A' + 1;
            format!("vrrp_instance {name} {{\n interface eth0\n virtual_router_id {vrid}\n priority 100\n{own}}}\n")
        };
        let text = format!(
            "global_defs {{\n vrrp_notify_priority_changes\n}}\n{}{}{}{}\
             vrrp_sync_group G {{\n group {{\n B\n C\n }}\n notify_priority_changes false\n}}\n",
            inst("A", ""),
            inst("B", ""),
            inst("C", " notify_priority_changes yes\n"),
            inst("D", " notify_priority_changes off\n"),
        );
        let c = parse(&text);
        let got: Vec<bool> = c.vrrp_instances.iter().map(|v| notifies_priority_changes(&c, v)).collect();
        assert_eq!(got, [true, false, true, false]);
        let c = parse(&inst("A", ""));
        assert!(!notifies_priority_changes(&c, &c.vrrp_instances[0]));
    }

    fn parse(text: &str) -> Config {
        let l = crate::config::parse_str("t.conf", text);
        assert!(!l.has_errors(), "{}", l.render());
        l.config
    }

    fn one(global: &str, own: &str) -> Config {
        parse(&format!(
            "global_defs {{\n{global}}}\nvrrp_instance VI_1 {{\n interface eth0\n virtual_router_id 1\n \
             priority 100\n{own}}}\n"
        ))
    }

    /// `mcast_src_ip` is the adverts' source, and `vrrp_mcast_group4` / `vrrp_mcast_group6`
    /// where multicast adverts go and which group the receiver joins; without them, the
    /// interface's address and 224.0.0.18 / ff02::12 (keepalived's defaults).
    #[test]
    fn advert_source_and_group_follow_mcast_src_ip_and_vrrp_mcast_group() {
        let ll: Ipv6Addr = "fe80::1".parse().unwrap();
        let nic = Some(Ipv4Addr::new(192, 0, 2, 10));
        let ends = |c: &Config| endpoints(&c.global, &c.vrrp_instances[0], "eth0", nic, Some(ll)).unwrap();
        let vip4 = " virtual_ipaddress {\n 192.0.2.100/24\n }\n";
        let vip6 = " virtual_ipaddress {\n 2001:db8::100/64\n }\n";
        let group4 = " vrrp_mcast_group4 224.0.0.19\n";
        let group6 = " vrrp_mcast_group6 ff02::13\n";
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };

        let e = ends(&one("", vip4));
        assert_eq!((e.src, e.dsts, e.join), (ip("192.0.2.10"), vec![ip("224.0.0.18")], Some(ip("224.0.0.18"))));
        let e = ends(&one(group4, &format!("{vip4} mcast_src_ip 192.0.2.11\n")));
        assert_eq!((e.src, e.dsts, e.join), (ip("192.0.2.11"), vec![ip("224.0.0.19")], Some(ip("224.0.0.19"))));
        let e = ends(&one("", vip6));
        assert_eq!((e.v6, e.src, e.dsts), (true, ip("fe80::1"), vec![ip("ff02::12")]));
        let e = ends(&one(group6, &format!("{vip6} mcast_src_ip 2001:db8::11\n")));
        assert_eq!((e.src, e.dsts, e.join), (ip("2001:db8::11"), vec![ip("ff02::13")], Some(ip("ff02::13"))));
        // mcast_dst_ip: the instance's own group, over the global one.
        let e = ends(&one(group4, &format!("{vip4} mcast_dst_ip 224.0.0.100\n")));
        assert_eq!((e.dsts, e.join), (vec![ip("224.0.0.100")], Some(ip("224.0.0.100"))));
        let e = ends(&one("", &format!("{vip6} mcast_dst_ip ff02::100\n")));
        assert_eq!((e.dsts, e.join), (vec![ip("ff02::100")], Some(ip("ff02::100"))));
        // unicast_src_ip wins over mcast_src_ip; unicast peers replace the group.
        let c = one(
            group4,
            &format!(
                "{vip4} mcast_src_ip 192.0.2.11\n unicast_src_ip 192.0.2.12\n unicast_peer {{\n 192.0.2.13\n }}\n"
            ),
        );
        let e = ends(&c);
        assert_eq!((e.src, e.dsts, e.join), (ip("192.0.2.12"), vec![ip("192.0.2.13")], None));
        // A source of the other family is an error, not a silent fallback.
        let c = one("", &format!("{vip4} mcast_src_ip 2001:db8::11\n"));
        assert!(endpoints(&c.global, &c.vrrp_instances[0], "eth0", nic, Some(ll)).is_err());
    }

    /// keepalived's `check_unicast_src` / `vrrp_check_unicast_src`: off unless either is set;
    /// then, with unicast peers, an advert from an address outside them is dropped.
    #[test]
    fn unicast_sources_are_checked_only_when_asked_as_keepalived() {
        let peers = " unicast_peer {\n 192.0.2.13\n }\n virtual_ipaddress {\n 192.0.2.100/24\n }\n";
        for (global, own, checked) in [
            ("", "", false),
            (" vrrp_check_unicast_src\n", "", true),
            ("", " check_unicast_src\n", true),
            (" vrrp_check_unicast_src\n", " check_unicast_src\n", true),
        ] {
            let c = one(global, &format!("{own}{peers}"));
            let t = Tuning::new(&c, &c.vrrp_instances[0], 2).unwrap();
            assert_eq!(t.check_unicast_src, checked, "{global:?} {own:?}");
            let peers = &c.vrrp_instances[0].unicast_peer;
            assert!(from_known_peer(peers, "192.0.2.13".parse().unwrap()));
            assert!(!from_known_peer(peers, "192.0.2.99".parse().unwrap()));
        }
        // Multicast: any source (the TTL and address checks still apply).
        assert!(from_known_peer(&[], "192.0.2.99".parse().unwrap()));
        // A peer's min_ttl / max_ttl turn the check on and bound its adverts' TTL.
        let c = one("", " unicast_peer {\n 192.0.2.13 min_ttl 5 max_ttl 9\n 192.0.2.14\n }\n");
        let v = &c.vrrp_instances[0];
        assert!(Tuning::new(&c, v, 2).unwrap().check_unicast_src);
        let ranges = &v.unicast_peer_ttl;
        let at = |a: &str, ttl: u8| ttl_in_range(ranges, a.parse().unwrap(), ttl);
        assert!(!at("192.0.2.13", 4) && at("192.0.2.13", 5) && at("192.0.2.13", 9) && !at("192.0.2.13", 10));
        assert!(at("192.0.2.14", 1) && at("192.0.2.14", 255), "a peer without a range takes any TTL");
    }

    /// `skip_check_adv_addr`: a backup skips the address check of adverts from the source it
    /// last took (keepalived's `master_saddr`); a master checks every advert
    /// (`vrrp_state_master_rx`). An instance without its interface (`dynamic_interfaces`) has
    /// no sockets, so adverts are handed to it directly.
    #[test]
    fn only_a_backup_skips_the_address_check_of_its_known_master() {
        let c = parse(
            "global_defs {\n dynamic_interfaces\n}\nvrrp_instance VI_1 {\n interface lbt-absent0\n \
             virtual_router_id 1\n priority 100\n skip_check_adv_addr\n virtual_ipaddress {\n 192.0.2.100/24\n }\n}\n",
        );
        let (mut live, _) = LiveInstance::open(&c, &c.vrrp_instances[0], 1, Instant::now(), None).unwrap();
        let (src, dst): (IpAddr, IpAddr) = ("192.0.2.12".parse().unwrap(), "224.0.0.18".parse().unwrap());
        let advert = |addr: &str| {
            let a = Advert {
                version: 2,
                vrid: 1,
                priority: 150,
                interval_cs: 100,
                addrs: vec![addr.parse().unwrap()],
                password: None,
            };
            a.encode(src, dst)
        };
        live.machine.state = State::Backup;
        assert!(live.check_advert(255, src, dst, &advert("192.0.2.100")).is_some(), "the instance's own list");
        let other = advert("192.0.2.101");
        assert!(live.check_advert(255, src, dst, &other).is_some(), "a backup skips its known master's list");
        live.machine.state = State::Master;
        assert!(live.check_advert(255, src, dst, &other).is_none(), "a master checks every advert");
        assert_eq!(live.counters.rejected.get(&Reject::AddressList).copied(), Some(1));
        // Without the option, a backup checks its known master's adverts too.
        let c = parse(
            "global_defs {\n dynamic_interfaces\n}\nvrrp_instance VI_1 {\n interface lbt-absent0\n \
             virtual_router_id 1\n priority 100\n virtual_ipaddress {\n 192.0.2.100/24\n }\n}\n",
        );
        let (mut live, _) = LiveInstance::open(&c, &c.vrrp_instances[0], 1, Instant::now(), None).unwrap();
        live.machine.state = State::Backup;
        assert!(live.check_advert(255, src, dst, &advert("192.0.2.100")).is_some());
        assert!(live.check_advert(255, src, dst, &other).is_none(), "without the option every advert is checked");
    }

    /// global_defs' `vrrp_version` is the version of the adverts on the wire of an IPv4
    /// instance without its own `version`, and the instance's wins.
    #[test]
    fn vrrp_version_is_the_version_on_the_wire() {
        let vip = " virtual_ipaddress {\n 192.0.2.100/24\n }\n";
        let wire = |c: &Config| {
            let v = &c.vrrp_instances[0];
            let a = Advert {
                version: version(&c.global, v),
                vrid: 1,
                priority: 100,
                interval_cs: 100,
                addrs: advertised(v),
                password: None,
            };
            a.encode("192.0.2.10".parse().unwrap(), "224.0.0.18".parse().unwrap())[0] >> 4
        };
        assert_eq!(wire(&one("", vip)), 2);
        assert_eq!(wire(&one(" vrrp_version 3\n", vip)), 3);
        assert_eq!(wire(&one(" vrrp_version 3\n", &format!("{vip} version 2\n"))), 2);
        assert_eq!(wire(&one(" vrrp_version 2\n", &format!("{vip} version 3\n"))), 3);
        // IPv6 VIPs without `version`: 3, whatever vrrp_version says (as keepalived).
        let vip6 = " virtual_ipaddress {\n 2001:db8::100/64\n }\n";
        assert_eq!(wire(&one(" vrrp_version 2\n", vip6)), 3);
    }

    /// `virtual_ipaddress_excluded`: held by the master with the other VIPs, but neither in
    /// its adverts nor required in received ones.
    #[test]
    fn excluded_addresses_are_held_but_not_advertised() {
        let c = one(
            "",
            " virtual_ipaddress {\n 192.0.2.100/24\n }\n virtual_ipaddress_excluded {\n 198.51.100.7/24\n 2001:db8::7/64\n }\n",
        );
        let v = &c.vrrp_instances[0];
        let held: Vec<IpAddr> = vips(v).iter().map(|a| a.addr).collect();
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        assert_eq!(held, vec![ip("192.0.2.100"), ip("198.51.100.7"), ip("2001:db8::7")]);
        assert_eq!(advertised(v), vec![ip("192.0.2.100")]);
        // A master's advert listing only the advertised address passes the address check.
        assert!(same_addresses(&[ip("192.0.2.100")], &advertised(v)));
    }

    /// `state MASTER` without `priority` is keepalived's address owner (priority 255): it
    /// takes over at start without waiting; with a priority, or `state BACKUP`, it waits as
    /// a backup first.
    #[test]
    fn state_master_without_priority_is_the_address_owner() {
        let started = |own: &str| {
            let c = parse(&format!(
                "vrrp_instance VI_1 {{\n interface eth0\n virtual_router_id 1\n{own} virtual_ipaddress {{\n \
                 192.0.2.100/24\n }}\n}}\n"
            ));
            let v = &c.vrrp_instances[0];
            let mut i = Instance::new(settings(&c.global, v, 2, "192.0.2.10".parse().unwrap()), Instant::now());
            i.start(Instant::now());
            (v.priority, i.state)
        };
        assert_eq!(started(" state MASTER\n"), (255, State::Master));
        assert_eq!(started(" state MASTER\n priority 150\n"), (150, State::Backup));
        assert_eq!(started(" state BACKUP\n"), (100, State::Backup));
        assert_eq!(started(""), (100, State::Backup));
    }

    /// global_defs' `smtp_alert` mails every VRRP state change, and `smtp_alert_vrrp` says so
    /// for VRRP alone, winning over `smtp_alert` either way.
    #[test]
    fn smtp_alert_vrrp_wins_over_smtp_alert_for_vrrp_mail() {
        let mail = |global: &str| one(global, "").global.vrrp_mail();
        assert!(!mail(""));
        assert!(mail(" smtp_alert\n"));
        assert!(!mail(" smtp_alert\n smtp_alert_vrrp false\n"));
        assert!(mail(" smtp_alert false\n smtp_alert_vrrp\n"));
        assert!(!mail(" smtp_alert_checker\n"));
    }

    /// An instance's own `smtp_alert` wins over global_defs either way (keepalived's
    /// tri-state: unset follows the global choice, `false` silences the instance).
    #[test]
    fn an_instances_smtp_alert_false_silences_it_when_global_defs_mails() {
        let mails = |global: &str, own: &str| {
            let c = one(global, own);
            c.vrrp_instances[0].notify.mails(c.global.vrrp_mail())
        };
        assert!(!mails("", ""));
        assert!(mails(" smtp_alert\n", ""));
        assert!(mails("", " smtp_alert\n"));
        assert!(!mails(" smtp_alert\n", " smtp_alert false\n"));
        assert!(!mails(" smtp_alert_vrrp\n", " smtp_alert off\n"));
        assert!(mails(" smtp_alert_vrrp false\n", " smtp_alert true\n"));
    }
}
