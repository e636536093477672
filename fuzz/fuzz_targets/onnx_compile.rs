//! Fuzz target: ONNX import and compilation never panic; compiled images parse.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    edgeloop_fuzz::onnx::fuzz_onnx(data);
});
