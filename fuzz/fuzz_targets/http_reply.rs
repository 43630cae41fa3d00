//! The HTTP_GET / SSL_GET reply reader on arbitrary answers from a real server: must never
//! panic, hang or grow without bound. The first byte asks for the body digest.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = lb_daemon::fuzzing::http_reply(data);
});
