//! Reading a `TraceRecord` from `lb_trace` and saying what it means: one line of text for the
//! terminal, and the same decision as the packet comment of the pcap-ng file. Pure: the names
//! of services, real servers and interfaces come in as `Names`, filled by the shell.

use std::{collections::HashMap, net::IpAddr};

use lb_common::{
    Reason, TraceRecord,
    consts::{
        FAMILY_V4, FAMILY_V6, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, TRACE_FLOW_FOUND,
        TRACE_FLOW_FRAGMENT, TRACE_FLOW_GEN_KNOWN, TRACE_FLOW_GEN1, TRACE_FLOW_HALF_OPEN, TRACE_FLOW_NEW,
        TRACE_FLOW_PROMOTED, TRACE_FLOW_REPLY, TRACE_NONE, TRACE_SNAP,
    },
};

use crate::dataplane::services;

/// A record of the ring that is not a `TraceRecord` the program could have written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadRecord {
    #[error("record of {0} bytes, shorter than a TraceRecord")]
    Short(usize),
    #[error("captured length {0} over {TRACE_SNAP}")]
    CapLen(u32),
}

/// Decodes one ring record (native byte order, as the program wrote it).
pub fn decode(bytes: &[u8]) -> Result<TraceRecord, BadRecord> {
    let size = std::mem::size_of::<TraceRecord>();
    if bytes.len() < size {
        return Err(BadRecord::Short(bytes.len()));
    }
    let rec: TraceRecord = bytemuck::pod_read_unaligned(&bytes[..size]);
    if rec.cap_len as usize > TRACE_SNAP {
        return Err(BadRecord::CapLen(rec.cap_len));
    }
    Ok(rec)
}

/// The captured start of the frame.
pub fn captured(rec: &TraceRecord) -> &[u8] {
    &rec.frame[..(rec.cap_len as usize).min(TRACE_SNAP)]
}

/// The XDP action's name.
pub fn verdict(action: u8) -> String {
    match action {
        0 => "aborted".into(),
        1 => "drop".into(),
        2 => "pass".into(),
        3 => "tx".into(),
        4 => "redirect".into(),
        a => format!("action{a}"),
    }
}

/// The reason's name as `lb-daemon stats` prints it, without `reason_`.
pub fn reason(index: u8) -> String {
    match Reason::ALL.get(usize::from(index)) {
        Some(r) => r.field_name().trim_start_matches("reason_").to_string(),
        None => format!("reason{index}"),
    }
}

/// What the flow stage did: `new`, `hit` (with `half-open` / `promoted`), `reply`,
/// `fragment`, `miss` (a service without a real server for it), or `-` (no service).
pub fn flow(rec: &TraceRecord) -> String {
    let f = rec.flow;
    if f & TRACE_FLOW_FRAGMENT != 0 {
        return if f & TRACE_FLOW_REPLY != 0 { "fragment reply".into() } else { "fragment".into() };
    }
    if f & TRACE_FLOW_REPLY != 0 {
        return "reply".into();
    }
    let stage = if f & TRACE_FLOW_NEW != 0 {
        "new"
    } else if f & TRACE_FLOW_FOUND != 0 {
        "hit"
    } else if rec.svc_id != TRACE_NONE && f & TRACE_FLOW_GEN_KNOWN != 0 {
        "miss"
    } else {
        return "-".into();
    };
    let mut s = stage.to_string();
    if f & TRACE_FLOW_HALF_OPEN != 0 {
        s.push_str(" half-open");
    }
    if f & TRACE_FLOW_PROMOTED != 0 {
        s.push_str(" promoted");
    }
    s
}

/// The service configuration generation that decided, if the frame went through one.
pub fn generation(rec: &TraceRecord) -> Option<u8> {
    (rec.flow & TRACE_FLOW_GEN_KNOWN != 0).then_some(u8::from(rec.flow & TRACE_FLOW_GEN1 != 0))
}

fn proto(p: u8) -> String {
    match p {
        IPPROTO_TCP => "tcp".into(),
        IPPROTO_UDP => "udp".into(),
        IPPROTO_ICMP => "icmp".into(),
        IPPROTO_ICMPV6 => "icmpv6".into(),
        p => format!("proto{p}"),
    }
}

fn endpoint(addr: IpAddr, port: Option<u16>) -> String {
    match (addr, port) {
        (IpAddr::V4(a), Some(p)) => format!("{a}:{p}"),
        (IpAddr::V6(a), Some(p)) => format!("[{a}]:{p}"),
        (a, None) => a.to_string(),
    }
}

/// `source > destination protocol` as parsed before any rewrite, or `non-ip`.
pub fn tuple(rec: &TraceRecord) -> String {
    if rec.family != FAMILY_V4 && rec.family != FAMILY_V6 {
        return "non-ip".into();
    }
    let (src, dst) = (services::ip_of(&rec.src, rec.family), services::ip_of(&rec.dst, rec.family));
    let ports = matches!(rec.proto, IPPROTO_TCP | IPPROTO_UDP) && (rec.sport, rec.dport) != (0, 0);
    let (sp, dp) = if ports { (Some(rec.sport), Some(rec.dport)) } else { (None, None) };
    format!("{} > {} {}", endpoint(src, sp), endpoint(dst, dp), proto(rec.proto))
}

/// Names for the ids a record carries, as the shell last read them.
#[derive(Clone, Debug, Default)]
pub struct Names {
    /// Service id → `VIP:PORT/proto` (a service with several keys: the first).
    pub services: HashMap<u32, String>,
    /// Real server id → `ADDR:PORT`.
    pub reals: HashMap<u32, String>,
    /// Ingress ifindex → interface name.
    pub ifaces: HashMap<u32, String>,
}

impl Names {
    pub fn service(&self, id: u32) -> String {
        if id == TRACE_NONE { "-".into() } else { self.services.get(&id).cloned().unwrap_or_else(|| format!("#{id}")) }
    }

    pub fn real(&self, id: u32) -> String {
        if id == TRACE_NONE { "-".into() } else { self.reals.get(&id).cloned().unwrap_or_else(|| format!("#{id}")) }
    }

    pub fn iface(&self, ifindex: u32) -> String {
        self.ifaces.get(&ifindex).cloned().unwrap_or_else(|| format!("if{ifindex}"))
    }
}

/// The decision without the time: `IFACE VERDICT REASON service S real R TUPLE ct FLOW gen G
/// len IN>OUT`. Also the pcap-ng packet comment.
pub fn decision(rec: &TraceRecord, names: &Names) -> String {
    let generation = generation(rec).map_or_else(|| "-".to_string(), |g| g.to_string());
    let len =
        if rec.len_in == rec.len_out { rec.len_in.to_string() } else { format!("{}>{}", rec.len_in, rec.len_out) };
    format!(
        "{} {} {} service {} real {} {} ct {} gen {} len {}",
        names.iface(rec.ifindex),
        verdict(rec.action),
        reason(rec.reason),
        names.service(rec.svc_id),
        names.real(rec.real_id),
        tuple(rec),
        flow(rec),
        generation,
        len
    )
}

/// `HH:MM:SS.micro` of a wall-clock time (ns since the epoch) at `utc_offset` seconds east.
pub fn clock(wall_ns: u64, utc_offset: i64) -> String {
    let secs = (wall_ns / 1_000_000_000) as i64 + utc_offset;
    let day = secs.rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}.{:06}", day / 3600, day / 60 % 60, day % 60, wall_ns % 1_000_000_000 / 1000)
}

/// One line of text output: the time, then `decision`.
pub fn line(rec: &TraceRecord, wall_ns: u64, utc_offset: i64, names: &Names) -> String {
    format!("{} {}", clock(wall_ns, utc_offset), decision(rec, names))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytemuck::Zeroable;

    /// A NAT flow's first packet as the program records it: client 192.0.2.2:40000 to the VIP
    /// 203.0.113.10:80, service 0, real server 1, generation 1.
    fn nat_syn() -> TraceRecord {
        let mut r = TraceRecord::zeroed();
        r.ts_ns = 5;
        r.src[..4].copy_from_slice(&[192, 0, 2, 2]);
        r.dst[..4].copy_from_slice(&[203, 0, 113, 10]);
        (r.sport, r.dport, r.family, r.proto) = (40000, 80, FAMILY_V4, IPPROTO_TCP);
        (r.action, r.reason) = (4, Reason::FwdNat as u8);
        (r.ifindex, r.svc_id, r.real_id) = (2, 0, 1);
        r.flow = TRACE_FLOW_FOUND | TRACE_FLOW_NEW | TRACE_FLOW_HALF_OPEN | TRACE_FLOW_GEN_KNOWN | TRACE_FLOW_GEN1;
        (r.len_in, r.len_out, r.cap_len) = (74, 74, 74);
        r
    }

    fn names() -> Names {
        Names {
            services: [(0, "203.0.113.10:80/tcp".to_string())].into(),
            reals: [(1, "198.51.100.11:8080".to_string())].into(),
            ifaces: [(2, "l0".to_string())].into(),
        }
    }

    #[test]
    fn a_forwarded_frame_reads_as_its_decision() {
        assert_eq!(
            decision(&nat_syn(), &names()),
            "l0 redirect fwd_nat service 203.0.113.10:80/tcp real 198.51.100.11:8080 \
             192.0.2.2:40000 > 203.0.113.10:80 tcp ct new half-open gen 1 len 74"
        );
    }

    #[test]
    fn unknown_ids_and_missing_parts_show_as_such() {
        let mut r = nat_syn();
        (r.svc_id, r.real_id, r.ifindex) = (7, TRACE_NONE, 9);
        (r.action, r.reason, r.flow) = (1, Reason::NoReal as u8, TRACE_FLOW_NEW | TRACE_FLOW_GEN_KNOWN);
        (r.len_in, r.len_out) = (60, 94);
        assert_eq!(
            decision(&r, &names()),
            "if9 drop no_real service #7 real - 192.0.2.2:40000 > 203.0.113.10:80 tcp ct new gen 0 len 60>94"
        );
        let mut r = TraceRecord::zeroed();
        (r.action, r.reason, r.svc_id, r.real_id) = (2, Reason::NotIp as u8, TRACE_NONE, TRACE_NONE);
        assert_eq!(decision(&r, &Names::default()), "if0 pass not_ip service - real - non-ip ct - gen - len 0");
    }

    #[test]
    fn flows_name_every_stage() {
        let mut r = nat_syn();
        let cases = [
            (TRACE_FLOW_FOUND, "hit"),
            (TRACE_FLOW_FOUND | TRACE_FLOW_PROMOTED, "hit promoted"),
            (TRACE_FLOW_FOUND | TRACE_FLOW_REPLY, "reply"),
            (TRACE_FLOW_FRAGMENT, "fragment"),
            (TRACE_FLOW_FRAGMENT | TRACE_FLOW_REPLY | TRACE_FLOW_FOUND, "fragment reply"),
            (TRACE_FLOW_GEN_KNOWN, "miss"),
            (0, "-"),
        ];
        for (bits, want) in cases {
            r.flow = bits;
            assert_eq!(flow(&r), want, "{bits:#x}");
        }
        assert_eq!(generation(&r), None);
        r.flow = TRACE_FLOW_GEN_KNOWN;
        assert_eq!(generation(&r), Some(0));
    }

    #[test]
    fn ipv6_and_portless_tuples() {
        let mut r = nat_syn();
        r.family = FAMILY_V6;
        r.src = "2001:db8:c::2".parse::<std::net::Ipv6Addr>().unwrap().octets();
        r.dst = "2001:db8:f::10".parse::<std::net::Ipv6Addr>().unwrap().octets();
        assert_eq!(tuple(&r), "[2001:db8:c::2]:40000 > [2001:db8:f::10]:80 tcp");
        (r.proto, r.sport, r.dport) = (IPPROTO_ICMPV6, 0, 0);
        assert_eq!(tuple(&r), "2001:db8:c::2 > 2001:db8:f::10 icmpv6");
        // A later fragment: TCP without ports.
        r.proto = IPPROTO_TCP;
        assert_eq!(tuple(&r), "2001:db8:c::2 > 2001:db8:f::10 tcp");
    }

    #[test]
    fn every_reason_and_action_has_a_name() {
        for r in Reason::ALL {
            assert_eq!(format!("reason_{}", reason(r as u8)), r.field_name());
        }
        assert_eq!(reason(200), "reason200");
        let names: Vec<String> = (0..=5).map(verdict).collect();
        assert_eq!(names, ["aborted", "drop", "pass", "tx", "redirect", "action5"]);
    }

    #[test]
    fn records_are_checked_before_use() {
        let r = nat_syn();
        let bytes = bytemuck::bytes_of(&r);
        assert_eq!(decode(bytes), Ok(r));
        // The ring pads records to 8 bytes: trailing bytes are ignored.
        let mut padded = bytes.to_vec();
        padded.extend([0; 8]);
        assert_eq!(decode(&padded), Ok(r));
        assert_eq!(decode(&bytes[..bytes.len() - 1]), Err(BadRecord::Short(bytes.len() - 1)));
        let mut big = r;
        big.cap_len = TRACE_SNAP as u32 + 1;
        assert_eq!(decode(bytemuck::bytes_of(&big)), Err(BadRecord::CapLen(TRACE_SNAP as u32 + 1)));
        assert_eq!(captured(&r).len(), 74);
    }

    #[test]
    fn the_clock_is_local_time_of_day_in_microseconds() {
        // 2024-01-02 03:04:05.678901234 UTC.
        let t = 1_704_164_645_678_901_234;
        assert_eq!(clock(t, 0), "03:04:05.678901");
        assert_eq!(clock(t, 3600), "04:04:05.678901");
        assert_eq!(clock(t, -4 * 3600), "23:04:05.678901");
    }

    #[test]
    fn a_line_is_the_time_then_the_decision() {
        let l = line(&nat_syn(), 1_704_164_645_000_000_000, 0, &names());
        assert!(l.starts_with("03:04:05.000000 l0 redirect fwd_nat service 203.0.113.10:80/tcp "), "{l}");
    }
}
