//! Fuzz target: telemetry frame decoding never panics and round-trips.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    edgeloop_fuzz::frame::fuzz_frame(data);
});
