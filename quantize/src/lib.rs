//! edgeloop quantizer: fp32 ONNX + calibration data → standard int8 QDQ ONNX.
//!
//! Pipeline ([`quantize`]): parse (`tract_onnx::pb` types, prost) → check every node against the
//! op registry ([`onnx::ops`]) → optional SmoothQuant ([`smooth`]) → calibrate activations with
//! tract ([`calib`]) → rewrite into QDQ ([`qdq`]) → optional sensitivity report ([`report`]).
//!
//! The output keeps the input's default-domain opset, which must lie in
//! [`onnx::MIN_OPSET`]`..=`[`onnx::MAX_OPSET`] (17–22); tests cover opsets 17 and 20.
//! The compiler half of issue 4 (ONNX → model image) is [`compile`].
#![deny(missing_docs)]

pub mod calib;
pub mod compile;
pub mod error;
pub mod npy;
pub mod onnx;
pub mod oracle;
pub mod qdq;
pub mod report;
pub mod runner;
pub mod sign;
pub mod smooth;
pub mod tensor;
pub mod testmodels;

use std::collections::{HashMap, HashSet};

pub use calib::{Dataset, Method, Range};
pub use error::{Error, Result};
pub use onnx::{InputSpec, OnnxModel};

use onnx::ops::Registry;
use qdq::{Plan, QdqOptions};

/// Op types quantized by default.
pub const DEFAULT_OP_TYPES: &[&str] = &[
    "Conv",
    "Gemm",
    "MatMul",
    "Add",
    "Mul",
    "Relu",
    "Sigmoid",
    "Softmax",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Flatten",
    "Reshape",
    "Transpose",
    "Squeeze",
    "Unsqueeze",
    "Concat",
    "LayerNormalization",
    "Gelu",
];

/// Everything a quantization run needs besides the model and the data.
#[derive(Debug, Clone)]
pub struct QuantizeConfig {
    /// Calibration method.
    pub method: Method,
    /// Per-channel weights (default) or per-tensor.
    pub per_channel: bool,
    /// Op types to quantize.
    pub op_types: HashSet<String>,
    /// Node names kept float.
    pub exclude: HashSet<String>,
    /// SmoothQuant migration strength for MatMuls with constant weights (`None`: off).
    pub smoothquant_alpha: Option<f32>,
    /// Shapes of inputs whose shape the model leaves symbolic.
    pub input_shapes: HashMap<String, Vec<usize>>,
    /// Show progress bars.
    pub progress: bool,
}

impl Default for QuantizeConfig {
    fn default() -> Self {
        QuantizeConfig {
            method: Method::MinMax,
            per_channel: true,
            op_types: DEFAULT_OP_TYPES.iter().map(|s| s.to_string()).collect(),
            exclude: HashSet::new(),
            smoothquant_alpha: None,
            input_shapes: HashMap::new(),
            progress: false,
        }
    }
}

impl QuantizeConfig {
    /// Checks values a user can get wrong.
    pub fn validate(&self) -> Result<()> {
        let reg = Registry::standard();
        let unknown: Vec<&String> = self
            .op_types
            .iter()
            .filter(|t| reg.get(t).is_none())
            .collect();
        if !unknown.is_empty() {
            return Err(Error::Config(format!(
                "unknown op type(s) to quantize: {unknown:?}; supported: {:?}",
                reg.op_types()
            )));
        }
        if let Some(a) = self.smoothquant_alpha {
            if !(0.0..=1.0).contains(&a) {
                return Err(Error::Config(format!(
                    "SmoothQuant alpha {a} is outside [0, 1]"
                )));
            }
        }
        Ok(())
    }
}

/// Result of [`quantize`].
#[derive(Debug, Clone)]
pub struct Quantized {
    /// The QDQ int8 model.
    pub model: OnnxModel,
    /// The fp32 model the QDQ model was derived from (after SmoothQuant, with static input shapes).
    pub fp32: OnnxModel,
    /// Graph inputs with their static shapes.
    pub inputs: Vec<InputSpec>,
    /// Calibrated range of every quantized activation.
    pub ranges: HashMap<String, Range>,
    /// The plan (which nodes are quantized, which were kept float and why).
    pub plan: Plan,
    /// fp32 tensor → its dequantized counterpart in [`Quantized::model`].
    pub dequantized: HashMap<String, String>,
    /// MatMul groups smoothed by SmoothQuant.
    pub smoothed_groups: usize,
}

/// Quantizes `model` with calibration `data`.
pub fn quantize(model: &OnnxModel, data: &Dataset, cfg: &QuantizeConfig) -> Result<Quantized> {
    cfg.validate()?;
    model.validate_graph()?;
    let registry = Registry::standard();
    let inputs = model.inputs(&cfg.input_shapes)?;
    let mut model = model.clone();
    model.set_input_shapes(&inputs);
    let opts = QdqOptions {
        op_types: cfg.op_types.clone(),
        exclude: cfg.exclude.clone(),
        per_channel: cfg.per_channel,
    };
    let mut inits = model.initializers()?;
    let first = qdq::plan(&model, &registry, &inits, &opts, None)?;
    let mut smoothed_groups = 0;
    if let Some(alpha) = cfg.smoothquant_alpha {
        let groups = smooth::targets(&model, &registry, &inits, &first.quantized)?;
        if !groups.is_empty() {
            let xs: Vec<String> = groups.keys().cloned().collect();
            let amax = calib::channel_absmax(&model, &inputs, data, &xs, cfg.progress)?;
            let (m, n) = smooth::apply(&model, &inits, &groups, &amax, alpha)?;
            model = m;
            smoothed_groups = n;
            inits = model.initializers()?;
        }
    }
    let candidates = qdq::plan(&model, &registry, &inits, &opts, None)?;
    let tensors: Vec<String> = candidates.activations.iter().cloned().collect();
    let mut ranges = calib::calibrate(&model, &inputs, data, &tensors, cfg.method, cfg.progress)?;
    apply_output_ranges(&model, &registry, &inits, &mut ranges);
    let floats: HashSet<String> = ranges.keys().cloned().collect();
    let plan = qdq::plan(&model, &registry, &inits, &opts, Some(&floats))?;
    let rw = qdq::rewrite(&model, &inits, &registry, &plan, &ranges, &opts)?;
    Ok(Quantized {
        model: rw.model,
        fp32: model,
        inputs,
        ranges,
        plan,
        dequantized: rw.dequantized,
        smoothed_groups,
    })
}

/// Replaces the calibrated range of each output whose op fixes it: by definition (see
/// [`onnx::ops::OpHandler::output_range`]; Softmax) or by a constant table it picks values from
/// ([`onnx::ops::OpHandler::output_from_table`]; Gather), for every tensor calibration observed
/// as float.
fn apply_output_ranges(
    model: &OnnxModel,
    registry: &Registry,
    inits: &HashMap<String, tensor::Tensor>,
    ranges: &mut HashMap<String, Range>,
) {
    for n in &model.graph().node {
        let Some(h) = registry.get(&n.op_type) else {
            continue;
        };
        let fixed = h.output_range.or_else(|| {
            let table = n.input.first().filter(|_| h.output_from_table)?;
            let v = inits.get(table)?.as_f32()?;
            let lo = v.iter().cloned().fold(f32::INFINITY, f32::min);
            let hi = v.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            (lo.is_finite() && hi.is_finite()).then_some((lo, hi))
        });
        let Some((min, max)) = fixed else {
            continue;
        };
        if let Some(r) = n.output.first().and_then(|o| ranges.get_mut(o)) {
            *r = Range { min, max };
        }
    }
}

impl Quantized {
    /// Per-layer error of the QDQ model against the fp32 model on (up to) `max_samples` samples.
    pub fn sensitivity(
        &self,
        data: &Dataset,
        max_samples: usize,
        method: &str,
    ) -> Result<report::Sensitivity> {
        let n = data.samples.len().min(max_samples.max(1));
        report::sensitivity(
            &self.fp32,
            &self.model,
            &self.inputs,
            &self.dequantized,
            &data.samples[..n],
            method,
        )
    }
}

#[cfg(test)]
mod tests;
