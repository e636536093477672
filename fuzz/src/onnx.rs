//! ONNX import: any bytes either fail `OnnxModel::from_bytes` / `compile` with an error, or
//! compile into a model image that the runtime parses.

use edgeloop_quantize::compile::{compile, CompileOptions};
use edgeloop_quantize::OnnxModel;
use edgeloop_runtime::image::writer::AlignedBytes;
use edgeloop_runtime::Model;

/// Decodes and checks `data` as an ONNX model, compiles it, and parses the image it produced.
pub fn fuzz_onnx(data: &[u8]) {
    let Ok(model) = OnnxModel::from_bytes(data) else {
        return;
    };
    let Ok(compiled) = compile(&model.proto, &CompileOptions::default()) else {
        return;
    };
    let image = AlignedBytes::new(compiled.bytes());
    if let Err(e) = Model::parse(image.as_slice()) {
        panic!("the compiler wrote an image the runtime refuses: {e}");
    }
}
