//! Fuzz target: checkpoint folders (manifest, safetensors, config and state JSON) and model
//! configs load or build with an error, never a panic or an unbounded allocation.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    edgeloop_fuzz::checkpoint::fuzz_checkpoint(data);
});
