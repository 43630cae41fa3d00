//! The config lexer, parser and semantic checks on arbitrary input: must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lb_daemon::fuzzing::config(data));
