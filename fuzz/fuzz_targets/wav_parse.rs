//! Fuzz target: WAV parsing never panics; a parsed clip re-encodes and parses back unchanged.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    edgeloop_fuzz::wav::fuzz_wav(data);
});
