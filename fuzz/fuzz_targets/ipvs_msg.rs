//! The IPVS generic-netlink decoder on arbitrary bytes, as the kernel's replies reach it:
//! a whole netlink message, then each typed reading of its attributes. Must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lb_daemon::fuzzing::ipvs_msg(data));
