//! Fuzz target: dataset readers (JSONL, CSV, text) and per-record filters never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    edgeloop_fuzz::dataset::fuzz_dataset(data);
});
