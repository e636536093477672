//! Fuzz target: the monitor's stream ingest never panics and does not depend on chunking.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    edgeloop_fuzz::ingest::fuzz_ingest(data);
});
