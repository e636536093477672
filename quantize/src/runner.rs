//! Runs an ONNX model with tract and reads back any intermediate tensor (the graph's outputs are
//! extended with the requested tensors). Used by calibration (fp32 activations) and the
//! sensitivity report (QDQ activations), so quantizing needs no ONNX Runtime library.

use std::collections::HashMap;
use std::sync::Arc;

use tract_onnx::prelude as tp;
use tract_onnx::prelude::{Framework, InferenceModelExt, IntoRunnable};

use crate::error::{Error, Result};
use crate::onnx::{ElemType, InputSpec, OnnxModel};
use crate::tensor::{Tensor, TensorData};

/// One sample: a tensor per graph input, by name.
pub type Sample = HashMap<String, Tensor>;

/// A tract plan whose outputs are the model's outputs followed by requested intermediate tensors.
pub struct Tap {
    plan: Arc<tp::TypedRunnableModel>,
    inputs: Vec<InputSpec>,
    outputs: Vec<String>,
}

impl Tap {
    /// Loads `model` into tract with static `inputs` and `tensors` as extra outputs.
    ///
    /// The plan is tract's typed model without decluttering or optimization: tract's optimizer
    /// rewrites `DequantizeLinear → Softmax → QuantizeLinear` into its own int8 softmax, which
    /// departs from the QDQ semantics (measured in this crate's tests), so reference activations
    /// are read from the unoptimized graph.
    pub fn new(model: &OnnxModel, inputs: &[InputSpec], tensors: &[String]) -> Result<Self> {
        Self::build(model, inputs, tensors, false)
    }

    /// The model's own outputs through tract's full optimization (`into_optimized`), as a user
    /// running the model in tract would get them.
    pub fn optimized(model: &OnnxModel, inputs: &[InputSpec]) -> Result<Self> {
        Self::build(model, inputs, &[], true)
    }

    fn build(
        model: &OnnxModel,
        inputs: &[InputSpec],
        tensors: &[String],
        optimize: bool,
    ) -> Result<Self> {
        let tapped = model.with_extra_outputs(tensors);
        let mut outputs = model.output_names();
        for t in tensors {
            if !outputs.contains(t) {
                outputs.push(t.clone());
            }
        }
        let terr = |e: tp::TractError| Error::Tract(format!("{e:#}"));
        let mut m = tract_onnx::onnx()
            .model_for_proto_model(&tapped.proto)
            .map_err(terr)?;
        for (i, spec) in inputs.iter().enumerate() {
            let dt = match spec.elem {
                ElemType::F32 => tp::DatumType::F32,
                ElemType::I64 => tp::DatumType::I64,
            };
            m.set_input_fact(i, tp::InferenceFact::dt_shape(dt, spec.shape.clone()))
                .map_err(terr)?;
        }
        let typed = if optimize {
            m.into_optimized()
        } else {
            m.into_typed()
        };
        let plan = typed.and_then(|m| m.into_runnable()).map_err(terr)?;
        Ok(Tap {
            plan,
            inputs: inputs.to_vec(),
            outputs,
        })
    }

    /// Output names in order (model outputs first).
    pub fn output_names(&self) -> &[String] {
        &self.outputs
    }

    /// Runs one sample; returns every float output by name (others are skipped).
    pub fn run(&self, sample: &Sample) -> Result<HashMap<String, Tensor>> {
        let mut values = tp::TVec::new();
        for spec in &self.inputs {
            let t = sample
                .get(&spec.name)
                .ok_or_else(|| Error::Calibration(format!("sample lacks input '{}'", spec.name)))?;
            let tt = match &t.data {
                TensorData::F32(v) => tp::Tensor::from_shape(&t.shape, v.as_slice()),
                TensorData::I64(v) => tp::Tensor::from_shape(&t.shape, v.as_slice()),
            }
            .map_err(|e| Error::Tract(format!("input '{}': {e:#}", spec.name)))?;
            values.push(tp::IntoTValue::into_tvalue(tt));
        }
        let out = self
            .plan
            .run(values)
            .map_err(|e| Error::Tract(format!("{e:#}")))?;
        let mut map = HashMap::new();
        for (name, v) in self.outputs.iter().zip(out.iter()) {
            if v.datum_type() != tp::DatumType::F32 {
                continue;
            }
            let view = v
                .to_plain_array_view::<f32>()
                .map_err(|e| Error::Tract(format!("{e:#}")))?;
            let data: Vec<f32> = view.iter().copied().collect();
            map.insert(name.clone(), Tensor::f32(v.shape().to_vec(), data)?);
        }
        Ok(map)
    }
}
