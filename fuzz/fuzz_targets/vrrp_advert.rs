//! The VRRP advert parser and its receive checks (v2 and v3, IPv4 and IPv6) on arbitrary
//! bytes: must never panic. The first byte picks the expectation, the rest is the message.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lb_daemon::fuzzing::vrrp_advert(data));
