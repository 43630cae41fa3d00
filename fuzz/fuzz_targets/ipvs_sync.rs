//! The IPVS connection sync decoder on arbitrary bytes, as a sync backup receives datagrams
//! from the network, then each entry translated as the backup applies it. Must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lb_daemon::fuzzing::ipvs_sync(data));
