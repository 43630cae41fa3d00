//! Connection-tracking rules: what a packet does to its flow's entry. Pure: the flow stage
//! (`lb-xdp/flow.rs`) reads the entry, asks here, and applies the answer.

use lb_common::consts::{CT_CLOSING, CT_EST, CT_SYN, CT_UDP, SCHED_DH, SCHED_MH, SCHED_SH, flow_timeout_secs};

pub const NS: u64 = 1_000_000_000;
pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;
/// Refresh a hit entry's timestamp at most this often: saves a write per packet.
pub const TOUCH_NS: u64 = NS;

/// How long an entry in `state` lives without packets (IPVS's default timeouts; userspace
/// reports expiry from the same rule).
#[inline(always)]
pub fn timeout_ns(state: u8) -> u64 {
    NS * flow_timeout_secs(state)
}

/// The TCP flags that matter to tracking, or none for other protocols.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet {
    pub tcp: bool,
    pub flags: u8,
}

impl Packet {
    /// A FIN or RST: the connection is closing.
    #[inline(always)]
    pub fn closing(self) -> bool {
        self.tcp && self.flags & (TCP_FIN | TCP_RST) != 0
    }

    /// A SYN without ACK: a client opening a connection.
    #[inline(always)]
    pub fn bare_syn(self) -> bool {
        self.tcp && self.flags & (TCP_SYN | TCP_ACK) == TCP_SYN
    }

    /// A SYN with ACK: a server answering a SYN (its flow is still half-open here).
    #[inline(always)]
    pub fn syn_ack(self) -> bool {
        self.tcp && self.flags & (TCP_SYN | TCP_ACK) == TCP_SYN | TCP_ACK
    }

    /// Any SYN (a new connection when it meets a closed flow with the same ports).
    #[inline(always)]
    pub fn syn(self) -> bool {
        self.tcp && self.flags & TCP_SYN != 0
    }

    /// Whether a flow this packet opens waits in the half-open table (`lb_halfopen`) until
    /// the client's next packet: a bare SYN, or any UDP datagram. Spoofed floods, which never
    /// send a second packet, then only ever evict each other, never an established flow.
    #[inline(always)]
    pub fn opens_half_open(self) -> bool {
        !self.tcp || self.bare_syn()
    }

    /// Whether this packet, finding its flow half-open, completes it (moves it to the main
    /// table): anything but a retransmitted SYN.
    #[inline(always)]
    pub fn completes_half_open(self) -> bool {
        !self.bare_syn()
    }

    /// The state a half-open entry records (its timeout: the SYN state's for TCP).
    #[inline(always)]
    pub fn half_open_state(self) -> u8 {
        if self.tcp { CT_SYN } else { CT_UDP }
    }

    /// The state of a flow this packet creates in the main table (a bare SYN goes to the
    /// half-open table instead). A mid-flow TCP packet with no entry (table lost or evicted, a
    /// SYN-ACK) keeps its flow going as established.
    #[inline(always)]
    pub fn new_state(self) -> u8 {
        match (self.tcp, self.closing()) {
            (false, _) => CT_UDP,
            (true, true) => CT_CLOSING,
            (true, false) => CT_EST,
        }
    }
}

/// Whether scheduler `sched` picks a flow's real server from the flow alone (source, destination
/// or Maglev hashing), the same for every packet while the service's tables stay the same.
#[inline(always)]
pub fn hashes(sched: u8) -> bool {
    matches!(sched, SCHED_SH | SCHED_DH | SCHED_MH)
}

/// Whether a flow this packet opens for a service scheduled by `sched` leaves no entry at all:
/// a bare SYN to a hashing scheduler, whose answer the handshake's next packet gets again and
/// records (one insert per connection, and a SYN flood fills no table). The cost: a change of
/// the service's real servers or weights between a client's SYN and its ACK can send the ACK
/// elsewhere, where IPVS would keep the SYN's choice.
#[inline(always)]
pub fn opens_without_state(sched: u8, p: Packet) -> bool {
    hashes(sched) && p.bare_syn()
}

/// Whether a TCP packet that creates a flow's entry for a service scheduled by `sched` is the
/// handshake's next packet after a SYN that left none (`opens_without_state`): the flow was
/// counted new at the SYN. (A mid-flow packet whose entry was lost looks the same, and is
/// not counted new either.)
#[inline(always)]
pub fn completes_stateless_open(sched: u8, p: Packet) -> bool {
    hashes(sched) && p.tcp && !p.syn()
}

/// What a packet does to the conntrack entry it found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hit {
    /// Keep the real server; the entry stays as it is.
    Use,
    /// Keep the real server; refresh the entry's timestamp.
    Touch,
    /// Keep the real server; the flow moves to CLOSING and leaves its real server's count.
    Close,
    /// Schedule anew: the entry expired, its real server is gone, or a SYN reuses the ports of
    /// a closed flow. `release`: the entry still counted on its (live) real server.
    Reschedule { release: bool },
}

/// The rule for a conntrack hit: `state` and `last_ns` from the entry, `real_live` whether its
/// real server still belongs to the service.
#[inline(always)]
pub fn on_hit(state: u8, last_ns: u64, now: u64, real_live: bool, p: Packet) -> Hit {
    let idle = now.saturating_sub(last_ns);
    let fresh = idle <= timeout_ns(state);
    let reused = state == CT_CLOSING && p.syn();
    if fresh && !reused && real_live {
        if p.closing() && state != CT_CLOSING {
            Hit::Close
        } else if idle > TOUCH_NS {
            Hit::Touch
        } else {
            Hit::Use
        }
    } else {
        Hit::Reschedule { release: !fresh && state != CT_CLOSING && real_live }
    }
}

#[cfg(test)]
mod tests {
    use lb_common::consts::{TCP_CLOSE_TIMEOUT, TCP_EST_TIMEOUT, UDP_TIMEOUT};

    use super::*;

    const T: u64 = 1_000 * NS;
    const ACK: Packet = Packet { tcp: true, flags: TCP_ACK };
    const FIN: Packet = Packet { tcp: true, flags: TCP_FIN | TCP_ACK };
    const SYN: Packet = Packet { tcp: true, flags: TCP_SYN };
    const UDP: Packet = Packet { tcp: false, flags: 0 };

    /// Fixture table: entry state, idle time, real live, packet → what happens.
    #[test]
    fn hit_rules() {
        let cases = [
            ("recent ACK on established", CT_EST, 0, true, ACK, Hit::Use),
            ("ACK after a second idle", CT_EST, 2 * NS, true, ACK, Hit::Touch),
            ("FIN on established", CT_EST, 0, true, FIN, Hit::Close),
            ("FIN on closing", CT_CLOSING, 0, true, FIN, Hit::Use),
            ("SYN on closing reuses the ports", CT_CLOSING, 0, true, SYN, Hit::Reschedule { release: false }),
            (
                "established past its timeout",
                CT_EST,
                (TCP_EST_TIMEOUT + 1) * NS,
                true,
                ACK,
                Hit::Reschedule { release: true },
            ),
            (
                "closing past its timeout",
                CT_CLOSING,
                (TCP_CLOSE_TIMEOUT + 1) * NS,
                true,
                ACK,
                Hit::Reschedule { release: false },
            ),
            ("real server removed", CT_EST, 0, false, ACK, Hit::Reschedule { release: false }),
            ("UDP at its timeout", CT_UDP, UDP_TIMEOUT * NS, true, UDP, Hit::Touch),
            ("UDP past its timeout", CT_UDP, (UDP_TIMEOUT + 1) * NS, true, UDP, Hit::Reschedule { release: true }),
        ];
        for (name, state, idle, live, p, want) in cases {
            assert_eq!(on_hit(state, T - idle, T, live, p), want, "{name}");
        }
    }

    #[test]
    fn packet_predicates() {
        assert!(SYN.bare_syn() && SYN.syn() && !SYN.closing());
        let syn_ack = Packet { tcp: true, flags: TCP_SYN | TCP_ACK };
        assert!(!syn_ack.bare_syn() && syn_ack.syn() && syn_ack.syn_ack());
        assert!(!SYN.syn_ack() && !ACK.syn_ack() && !Packet { tcp: false, flags: TCP_SYN | TCP_ACK }.syn_ack());
        assert!(Packet { tcp: true, flags: TCP_RST }.closing());
        assert!(!Packet { tcp: false, flags: TCP_FIN }.closing(), "UDP has no flags");
        assert_eq!((UDP.new_state(), FIN.new_state(), ACK.new_state()), (CT_UDP, CT_CLOSING, CT_EST));
        assert!(SYN.opens_half_open() && UDP.opens_half_open() && !ACK.opens_half_open() && !syn_ack.opens_half_open());
        assert!(!SYN.completes_half_open() && ACK.completes_half_open() && UDP.completes_half_open());
        assert_eq!((SYN.half_open_state(), UDP.half_open_state()), (CT_SYN, CT_UDP));
    }

    #[test]
    fn hashing_schedulers_open_tcp_flows_without_state() {
        use lb_common::consts::{SCHED_LBLC, SCHED_LC, SCHED_RR, SCHED_WLC, SCHED_WRR};
        for sched in [SCHED_SH, SCHED_DH, SCHED_MH] {
            assert!(opens_without_state(sched, SYN), "{sched}");
            assert!(!opens_without_state(sched, UDP), "a datagram has no next packet to tell it by");
            assert!(completes_stateless_open(sched, ACK) && completes_stateless_open(sched, FIN));
            let syn_ack = Packet { tcp: true, flags: TCP_SYN | TCP_ACK };
            assert!(!completes_stateless_open(sched, SYN) && !completes_stateless_open(sched, syn_ack));
            assert!(!completes_stateless_open(sched, UDP));
        }
        for sched in [SCHED_RR, SCHED_WRR, SCHED_LC, SCHED_WLC, SCHED_LBLC] {
            assert!(!opens_without_state(sched, SYN) && !completes_stateless_open(sched, ACK), "{sched}");
        }
    }

    #[test]
    fn timestamps_from_the_future_count_as_fresh() {
        // A CPU whose coarse clock lags another's may see last_ns > now.
        assert_eq!(on_hit(CT_EST, T + NS, T, true, ACK), Hit::Use);
    }
}
