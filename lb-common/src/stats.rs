//! Per-CPU counters. Named fields (not arrays indexed by an enum) so that
//! `bpftool map dump` shows what each number means.

use bytemuck::{Pod, Zeroable};

/// Declares `GlobalStats`, its field names and the `Reason` enum from one list, so the three
/// cannot drift apart: each reason is a variant and, at the same position among the
/// `reason_*` fields, the counter it moves.
macro_rules! global_stats {
    (
        verdicts { $( $(#[$vdoc:meta])* $verdict:ident, )* }
        reasons { $( $(#[$rdoc:meta])* $reason:ident => $rfield:ident, )* }
        others { $( $(#[$fdoc:meta])* $flow:ident, )* }
    ) => {
        /// Data-plane wide counters, one entry per CPU in `lb_stats`.
        ///
        /// Every packet the XDP program sees is counted once in `rx_*`, once in exactly one
        /// verdict (`pass_*`, `drop_*`, `tx_*`, `redirect_*`) and once in exactly one reason
        /// (`reason_*`), so the totals cross-check: rx = pass + drop + tx + redirect = sum of
        /// reasons.
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
        pub struct GlobalStats {
            $( $(#[$vdoc])* pub $verdict: u64, )*
            $( $(#[$rdoc])* pub $rfield: u64, )*
            $( $(#[$fdoc])* pub $flow: u64, )*
        }

        impl GlobalStats {
            /// Field names in declaration order, for userspace output.
            pub const FIELD_NAMES: [&'static str; [$(stringify!($verdict),)* $(stringify!($rfield),)* $(stringify!($flow),)*].len()] =
                [$(stringify!($verdict),)* $(stringify!($rfield),)* $(stringify!($flow),)*];
            /// Index (in u64 words) of the first `reason_*` field: `Reason::X as usize` words
            /// further is X's counter.
            pub const REASON_BASE: usize = [$(stringify!($verdict),)*].len();
        }

        /// Why a frame got its verdict; each variant counts in the `reason_*` field at the
        /// same position.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(u8)]
        pub enum Reason {
            $( $(#[$rdoc])* $reason, )*
        }

        impl Reason {
            pub const ALL: [Reason; [$(stringify!($reason),)*].len()] = [$(Reason::$reason,)*];

            /// The counter this reason moves, as named in `GlobalStats::FIELD_NAMES`.
            pub const fn field_name(self) -> &'static str {
                match self {
                    $( Reason::$reason => stringify!($rfield), )*
                }
            }
        }
    };
}

global_stats! {
    verdicts {
        rx_packets,
        rx_bytes,
        pass_packets,
        pass_bytes,
        drop_packets,
        drop_bytes,
        tx_packets,
        tx_bytes,
        redirect_packets,
        redirect_bytes,
    }
    reasons {
        /// Passed: not IPv4/IPv6 (ARP, LLDP, ...).
        NotIp => reason_not_ip,
        /// Passed: more VLAN tags than the parser walks (`MAX_VLAN_DEPTH`); not ours to judge.
        DeepVlan => reason_deep_vlan,
        /// Passed: IP, but no virtual service matches (destination, port, protocol).
        NoService => reason_no_service,
        /// Passed: a fragment of a datagram that is not for a service or NAT flow (its first
        /// fragment found none); the stack reassembles it.
        Fragment => reason_fragment,
        /// Passed: IPv6 extension headers the parser does not walk (ESP, a chain longer than it
        /// follows, a routing header with segments left).
        IpOptions => reason_ip_options,
        /// Passed: ICMP/ICMPv6 other than errors about a tracked flow.
        Icmp => reason_icmp,
        /// Passed: IP protocol other than TCP/UDP/ICMP.
        OtherProto => reason_other_proto,
        /// Forwarded to a real server by NAT (destination rewritten).
        FwdNat => reason_fwd_nat,
        /// Forwarded to a real server by DR (MAC rewritten).
        FwdDr => reason_fwd_dr,
        /// Forwarded to a real server by TUN (IPIP / IPv6-in-IPv6).
        FwdTun => reason_fwd_tun,
        /// A NAT real server's reply, source rewritten back to the VIP.
        NatReply => reason_nat_reply,
        /// Forwarded: an ICMP error about a tracked flow, sent to that flow's real server.
        IcmpFwd => reason_icmp_fwd,
        /// Rewritten, but the FIB has no neighbour or route for it yet: passed to the stack,
        /// which resolves and forwards it (DR/TUN frames are passed unmodified).
        NoRoute => reason_no_route,
        /// Dropped: the service has no live real server and no sorry server.
        NoReal => reason_no_real,
        /// Answered: larger than the egress MTU (the tunnel's, less its header, for TUN) with DF
        /// set, or IPv6: an ICMP "fragmentation needed" / "packet too big" goes back instead.
        TooBig => reason_too_big,
        /// Dropped: frame shorter than its Ethernet header or VLAN tags.
        BadEth => reason_bad_eth,
        /// Dropped: IPv4 header truncated, IHL < 5, or total length shorter than the header or
        /// longer than the frame.
        BadIpv4 => reason_bad_ipv4,
        /// Dropped: IPv6 header truncated or payload length longer than the frame.
        BadIpv6 => reason_bad_ipv6,
        /// Dropped: TCP/UDP/ICMP header truncated, or TCP data offset < 5.
        BadL4 => reason_bad_l4,
        /// Dropped: the IPv4 header checksum is wrong (the kernel would drop it too).
        BadIpv4Csum => reason_bad_ipv4_csum,
        /// Forwarded: an ICMP error from the real servers' side about a NAT flow (a router
        /// there saying "fragmentation needed", a real server's "port unreachable"), sent on to
        /// the client from the VIP.
        IcmpReply => reason_icmp_reply,
        /// Held: a later fragment that arrived before its datagram's first; handed to the
        /// daemon (`lb_punt`), which replays it once the first fragment has decided.
        FragHeld => reason_frag_held,
        /// Held: IPv4 larger than the egress MTU with DF clear; handed to the daemon, which
        /// fragments it and replays the fragments.
        FragNeeded => reason_frag_needed,
        /// Dropped: the hand-over ring to the daemon (`lb_punt`) was full.
        PuntFull => reason_punt_full,
        /// Passed (generic XDP only): a NAT frame larger than the egress MTU (TSO/GSO from a
        /// local sender) that XDP cannot redirect, rewritten and left to the kernel's
        /// forwarding, which segments it.
        GsoToStack => reason_gso_to_stack,
        /// Dropped (generic XDP only): a DR or TUN frame larger than the egress MTU (TSO/GSO
        /// from a local sender): XDP cannot redirect it and the kernel cannot route it.
        GsoDropped => reason_gso_dropped,
        /// Dropped (generic XDP only): a TCP/UDP checksum that may be complete or left to
        /// offload (it equals its pseudo-header sum and also verifies: one frame in 65,536);
        /// rewriting it either way could corrupt it, so the sender retransmits instead.
        CsumAmbiguous => reason_csum_ambiguous,
        /// Passed: unicast to another host's MAC (a switch flooding a frame whose destination
        /// it has not learnt, a bridge port): not ours to forward; the kernel drops it.
        NotOurMac => reason_not_our_mac,
        /// Passed: an IP frame to a broadcast or multicast MAC; never load-balanced.
        L2Multicast => reason_l2_multicast,
        /// Passed: a service whose VIP belongs to a VRRP instance that is not MASTER here; the
        /// kernel, which does not hold the VIP, drops it (as IPVS on a keepalived BACKUP).
        VrrpBackup => reason_vrrp_backup,
        /// Dropped: a service whose VIP belongs to a MASTER instance without accept mode
        /// (`no_accept`, or `vrrp_strict`) that is not the address owner, as keepalived's
        /// firewall drop rule does.
        VrrpNoAccept => reason_vrrp_no_accept,
    }
    others {
        /// Not reasons: flows scheduled (conntrack entries created) and conntrack hits.
        flows_new,
        flows_hit,
        /// TCP/UDP checksums completed for frames a local sender left to checksum offload
        /// (`CHECKSUM_PARTIAL` on veth: only the pseudo-header sum in the field).
        csum_completed,
        /// First fragments that recorded their datagram's decision, and later fragments that
        /// followed one.
        frags_first,
        frags_followed,
        /// Entries the program created in `lb_conntrack4`/`lb_conntrack` (inserts of a new key) and deleted
        /// from it (an expired or reused entry replaced). With the daemon's deletions
        /// (`Meta::ct_deleted`) and the table's occupancy they give the LRU's silent
        /// evictions: inserts - deletions - entries.
        ct_inserts,
        ct_deletes,
        /// The same for `lb_halfopen` (deletions: flows promoted to `lb_conntrack4`/`lb_conntrack`).
        halfopen_inserts,
        halfopen_deletes,
    }
}

/// Per real server counters, one entry per real server id per CPU in `lb_real_stats`; the
/// same shape per service for the frames no live real server counts (`lb_svc_direct`) and
/// its retired real servers' counts (`lb_svc_carry`). A service's totals are their sum
/// (`ServiceStats::sum`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct ServiceStats {
    pub packets: u64,
    pub bytes: u64,
    /// Flows scheduled (conntrack entries created).
    pub new_flows: u64,
    /// Packets for this service dropped (no real server, no route, ...).
    pub drops: u64,
}

impl GlobalStats {
    /// `(name, value)` for every counter.
    pub fn fields(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        let values: &[u64] = bytemuck::cast_slice(core::slice::from_ref(self));
        Self::FIELD_NAMES.iter().copied().zip(values.iter().copied())
    }

    /// Sums per-CPU values (userspace reads one value per CPU).
    pub fn sum<'a>(per_cpu: impl IntoIterator<Item = &'a GlobalStats>) -> GlobalStats {
        let mut total = GlobalStats::zeroed();
        for s in per_cpu {
            let dst: &mut [u64] = bytemuck::cast_slice_mut(core::slice::from_mut(&mut total));
            let src: &[u64] = bytemuck::cast_slice(core::slice::from_ref(s));
            for (d, v) in dst.iter_mut().zip(src) {
                *d = d.wrapping_add(*v);
            }
        }
        total
    }
}

impl ServiceStats {
    /// `self` less `other`, each counter modulo 2^64 (as they wrap): `x.less(y)` summed with
    /// `y` is `x` again.
    pub fn less(&self, other: &ServiceStats) -> ServiceStats {
        ServiceStats {
            packets: self.packets.wrapping_sub(other.packets),
            bytes: self.bytes.wrapping_sub(other.bytes),
            new_flows: self.new_flows.wrapping_sub(other.new_flows),
            drops: self.drops.wrapping_sub(other.drops),
        }
    }

    pub fn sum<'a>(per_cpu: impl IntoIterator<Item = &'a ServiceStats>) -> ServiceStats {
        per_cpu.into_iter().fold(ServiceStats::zeroed(), |acc, s| ServiceStats {
            packets: acc.packets.wrapping_add(s.packets),
            bytes: acc.bytes.wrapping_add(s.bytes),
            new_flows: acc.new_flows.wrapping_add(s.new_flows),
            drops: acc.drops.wrapping_add(s.drops),
        })
    }
}

const _: () = assert!(core::mem::size_of::<GlobalStats>() == GlobalStats::FIELD_NAMES.len() * 8);
// The packed verdict (lb-ebpf's `Verdict`) keeps the reason in 6 bits.
const _: () = assert!(Reason::ALL.len() <= 64);

crate::aya_pod!(GlobalStats, ServiceStats);

#[cfg(test)]
mod tests {
    use super::*;

    /// `FIELD_NAMES` follows the declaration order: give each field a distinct value through
    /// its name and read it back through the list.
    #[test]
    fn field_names_follow_the_struct() {
        let mut g = GlobalStats::zeroed();
        let fields: &mut [u64] = bytemuck::cast_slice_mut(core::slice::from_mut(&mut g));
        for (i, f) in fields.iter_mut().enumerate() {
            *f = i as u64;
        }
        assert_eq!(g.rx_packets, 0);
        assert_eq!(g.reason_deep_vlan, 11);
        assert_eq!(g.reason_bad_l4, 28);
        let named: [(&str, u64); 4] = [
            ("rx_packets", g.rx_packets),
            ("redirect_bytes", g.redirect_bytes),
            ("reason_deep_vlan", g.reason_deep_vlan),
            ("reason_bad_l4", g.reason_bad_l4),
        ];
        for (name, value) in named {
            assert_eq!(g.fields().find(|(n, _)| *n == name).map(|(_, v)| v), Some(value), "{name}");
        }
    }

    #[test]
    fn less_then_sum_gives_back_the_total() {
        let total = ServiceStats { packets: 10, bytes: 1000, new_flows: 2, drops: 1 };
        let reals = ServiceStats { packets: 12, bytes: 900, new_flows: 2, drops: 0 };
        let carry = total.less(&reals);
        assert_eq!(ServiceStats::sum([&carry, &reals]), total, "exact even where the carry wraps");
    }

    /// Each reason's counter sits `REASON_BASE + reason` words into the struct: the data plane
    /// counts by that index.
    #[test]
    fn reasons_index_their_counters() {
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
            assert_eq!(GlobalStats::FIELD_NAMES[GlobalStats::REASON_BASE + i], r.field_name());
        }
        assert_eq!(GlobalStats::FIELD_NAMES[GlobalStats::REASON_BASE], "reason_not_ip");
    }

    #[test]
    fn sums_per_cpu_values() {
        let a = GlobalStats { rx_packets: 2, reason_icmp: 1, ..GlobalStats::zeroed() };
        let b = GlobalStats { rx_packets: 3, reason_bad_l4: 4, ..GlobalStats::zeroed() };
        let s = GlobalStats::sum([&a, &b]);
        assert_eq!((s.rx_packets, s.reason_icmp, s.reason_bad_l4), (5, 1, 4));
    }
}
