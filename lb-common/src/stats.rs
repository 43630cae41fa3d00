//! Per-CPU counters. Named fields (not arrays indexed by an enum) so that
//! `bpftool map dump` shows what each number means.

use bytemuck::{Pod, Zeroable};

/// Data-plane wide counters, one entry per CPU in `lb_stats`.
///
/// Every packet the XDP program sees is counted once in `rx_*`, once in exactly one verdict
/// (`pass_*`, `drop_*`, `tx_*`, `redirect_*`) and once in exactly one reason
/// (`reason_*`), so the totals cross-check: rx = pass + drop + tx + redirect = sum of reasons.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct GlobalStats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub pass_packets: u64,
    pub pass_bytes: u64,
    pub drop_packets: u64,
    pub drop_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub redirect_packets: u64,
    pub redirect_bytes: u64,
    /// Passed: not IPv4/IPv6 (ARP, LLDP, ...).
    pub reason_not_ip: u64,
    /// Passed: more VLAN tags than the parser walks (`MAX_VLAN_DEPTH`); not ours to judge.
    pub reason_deep_vlan: u64,
    /// Passed: IP, but no virtual service matches (destination, port, protocol).
    pub reason_no_service: u64,
    /// Passed: IPv4 fragment (first or later); the stack reassembles.
    pub reason_fragment: u64,
    /// Passed: IPv4 with options, or IPv6 with extension headers before the L4 header.
    pub reason_ip_options: u64,
    /// Passed: ICMP/ICMPv6 other than errors about a tracked flow.
    pub reason_icmp: u64,
    /// Passed: IP protocol other than TCP/UDP/ICMP.
    pub reason_other_proto: u64,
    /// Forwarded to a real server by NAT (destination rewritten).
    pub reason_fwd_nat: u64,
    /// Forwarded to a real server by DR (MAC rewritten).
    pub reason_fwd_dr: u64,
    /// Forwarded to a real server by TUN (IPIP / IPv6-in-IPv6).
    pub reason_fwd_tun: u64,
    /// A NAT real server's reply, source rewritten back to the VIP.
    pub reason_nat_reply: u64,
    /// Forwarded: an ICMP error about a tracked flow, sent to that flow's real server.
    pub reason_icmp_fwd: u64,
    /// Rewritten, but the FIB has no neighbour or route for it yet: passed to the stack,
    /// which resolves and forwards it (DR/TUN frames are passed unmodified).
    pub reason_no_route: u64,
    /// Dropped: the service has no live real server and no sorry server.
    pub reason_no_real: u64,
    /// Dropped: the encapsulated packet would exceed the egress MTU (TUN).
    pub reason_too_big: u64,
    /// Dropped: frame shorter than its Ethernet header or VLAN tags.
    pub reason_bad_eth: u64,
    /// Dropped: IPv4 header truncated, IHL < 5, or total length shorter than the header or
    /// longer than the frame.
    pub reason_bad_ipv4: u64,
    /// Dropped: IPv6 header truncated or payload length longer than the frame.
    pub reason_bad_ipv6: u64,
    /// Dropped: TCP/UDP/ICMP header truncated, or TCP data offset < 5.
    pub reason_bad_l4: u64,
    /// Not a reason: flows scheduled (conntrack entries created) and conntrack hits.
    pub flows_new: u64,
    pub flows_hit: u64,
}

/// Per-service counters, one entry per service id per CPU in `lb_svc_stats`; the same shape
/// per real server in `lb_real_stats`.
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
    /// Field names in declaration order, for userspace output (the struct is all `u64`s;
    /// the assertion below keeps the list as long as the struct).
    pub const FIELD_NAMES: [&'static str; 31] = [
        "rx_packets",
        "rx_bytes",
        "pass_packets",
        "pass_bytes",
        "drop_packets",
        "drop_bytes",
        "tx_packets",
        "tx_bytes",
        "redirect_packets",
        "redirect_bytes",
        "reason_not_ip",
        "reason_deep_vlan",
        "reason_no_service",
        "reason_fragment",
        "reason_ip_options",
        "reason_icmp",
        "reason_other_proto",
        "reason_fwd_nat",
        "reason_fwd_dr",
        "reason_fwd_tun",
        "reason_nat_reply",
        "reason_icmp_fwd",
        "reason_no_route",
        "reason_no_real",
        "reason_too_big",
        "reason_bad_eth",
        "reason_bad_ipv4",
        "reason_bad_ipv6",
        "reason_bad_l4",
        "flows_new",
        "flows_hit",
    ];

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
    fn sums_per_cpu_values() {
        let a = GlobalStats { rx_packets: 2, reason_icmp: 1, ..GlobalStats::zeroed() };
        let b = GlobalStats { rx_packets: 3, reason_bad_l4: 4, ..GlobalStats::zeroed() };
        let s = GlobalStats::sum([&a, &b]);
        assert_eq!((s.rx_packets, s.reason_icmp, s.reason_bad_l4), (5, 1, 4));
    }
}
