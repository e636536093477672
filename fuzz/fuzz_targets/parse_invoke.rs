//! Fuzz target: model image parse + invoke must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    edgeloop_fuzz::fuzz_one(data);
});
