//! Runs a compiled image with the runtime's interpreter, mapping ONNX-typed host tensors to the
//! image's inputs and back (int64 ids → int32, uint8 → int8 by the recorded offset).

use edgeloop_runtime::image::writer::AlignedBytes;
use edgeloop_runtime::{Interpreter, Model};

use super::host::{Elem, HostTensor};
use super::{Compiled, HostMap};
use crate::error::{Error, Result};

fn rt(e: edgeloop_runtime::Error) -> Error {
    Error::Compile(format!("runtime: {e:?}"))
}

impl Compiled {
    /// Runs the image once on `inputs` (by ONNX name) and returns every output by ONNX name.
    pub fn run(&self, inputs: &HostMap) -> Result<HostMap> {
        let image = AlignedBytes::new(&self.image.bytes);
        let model = Model::parse(image.as_slice()).map_err(rt)?;
        let mut arena = AlignedBytes::zeroed(model.arena_bytes());
        let mut it = Interpreter::new(&model, arena.as_mut_slice()).map_err(rt)?;
        for (k, spec) in self.report.inputs.iter().enumerate() {
            let t = inputs
                .get(&spec.name)
                .ok_or_else(|| Error::Compile(format!("no value for input '{}'", spec.name)))?;
            let want: usize = spec.shape.iter().product();
            if t.len() != want {
                return Err(Error::Compile(format!(
                    "input '{}' has {} values, the image takes {want}",
                    spec.name,
                    t.len()
                )));
            }
            match spec.image_type.as_str() {
                "f32" => it.input_f32(k).map_err(rt)?.copy_from_slice(&t.as_f32()),
                "i32" => {
                    let dst = it.input_i32(k).map_err(rt)?;
                    for (d, &v) in dst.iter_mut().zip(&t.as_i64()) {
                        *d = i32::try_from(v).map_err(|_| {
                            Error::Compile(format!("input '{}': id {v} exceeds int32", spec.name))
                        })?;
                    }
                }
                "i8" => {
                    let dst = it.input_i8(k).map_err(rt)?;
                    for (d, &v) in dst.iter_mut().zip(&t.as_i64()) {
                        let s = v - spec.offset;
                        *d = i8::try_from(s).map_err(|_| {
                            Error::Compile(format!(
                                "input '{}': value {v} outside the int8 range",
                                spec.name
                            ))
                        })?;
                    }
                }
                other => {
                    return Err(Error::Compile(format!(
                        "input '{}' has image type {other}",
                        spec.name
                    )))
                }
            }
        }
        it.invoke().map_err(rt)?;
        let mut out = HostMap::new();
        for (k, spec) in self.report.outputs.iter().enumerate() {
            let shape = spec.shape.clone();
            let t = match spec.image_type.as_str() {
                "f32" => HostTensor::f32(shape, it.output_f32(k).map_err(rt)?.to_vec()),
                "i32" => HostTensor::int(
                    shape,
                    Elem::I64,
                    it.output_i32(k)
                        .map_err(rt)?
                        .iter()
                        .map(|&v| v as i64)
                        .collect(),
                ),
                "i8" => {
                    let elem = if spec.offset == 128 {
                        Elem::U8
                    } else {
                        Elem::I8
                    };
                    HostTensor::int(
                        shape,
                        elem,
                        it.output_i8(k)
                            .map_err(rt)?
                            .iter()
                            .map(|&v| v as i64 + spec.offset)
                            .collect(),
                    )
                }
                other => {
                    return Err(Error::Compile(format!(
                        "output '{}' has image type {other}",
                        spec.name
                    )))
                }
            };
            out.insert(spec.name.clone(), t);
        }
        Ok(out)
    }
}
