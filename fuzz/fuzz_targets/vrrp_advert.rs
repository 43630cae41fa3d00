//! The VRRP advert parser and its receive checks (v2 and v3, IPv4 and IPv6) on arbitrary
//! bytes: must never panic. The first byte picks the expectation, the rest is the message.
#![no_main]

use std::net::IpAddr;

use lb_daemon::vrrp::packet::{Advert, Expect};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, msg)) = data.split_first() else { return };
    let v6 = sel & 1 != 0;
    let (src, dst): (IpAddr, IpAddr) = if v6 {
        ("fe80::1".parse().unwrap(), "ff02::12".parse().unwrap())
    } else {
        ("192.0.2.1".parse().unwrap(), "224.0.0.18".parse().unwrap())
    };
    let e = Expect {
        version: if sel & 2 != 0 { 3 } else { 2 },
        vrid: 51,
        interval_cs: 100,
        password: if sel & 4 != 0 { Some(b"secret") } else { None },
        v6,
        check_ttl: sel & 8 != 0,
    };
    let _ = Advert::parse(msg, src, dst, 255, &e);
    let _ = lb_daemon::vrrp::packet::ipv4_header(msg);
});
