//! The config lexer, parser and semantic checks on arbitrary input: must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let loaded = lb_daemon::config::parse_str("fuzz.conf", &text);
    let _ = loaded.render();
});
