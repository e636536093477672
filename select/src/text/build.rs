//! Images of text candidates: the classifier built (untrained, or from the trainer's weights),
//! exported as fixed-length fp32 ONNX, quantized at the candidate's precision (calibrated on
//! the task's training texts) and compiled; and the image's accuracy on labelled rows.
//!
//! As for the keyword model ([`crate::footprint`]), the image's sizes depend on the shapes
//! only, except that the image writer stores identical constants once: a fresh model's biases
//! are zero and its norm weights one, so the footprint build perturbs every parameter by small
//! seeded noise first ([`perturb`]) and the fit check uses the flash bound without
//! deduplication.

use std::collections::HashSet;

use candle_core::{Device, Tensor};
use edgeloop_quantize::compile::host::{Elem, HostTensor};
use edgeloop_quantize::compile::{compile, CompileOptions, Compiled};
use edgeloop_quantize::{Dataset, OnnxModel, QuantizeConfig};
use edgeloop_trainer::export::graph::encode;
use edgeloop_trainer::export::{
    export_bert_fixed_length, export_gpt_fixed_length, ExportOptions, Head,
};
use edgeloop_trainer::models::{Bert, BuildOptions, Gpt, ModelSpec, Params};

use super::space::Precision;
use super::task::INPUT;
use crate::error::{Result, SelectError};
use crate::footprint::{accuracy_on, noise, Built};

/// ONNX opset of the text exports (20: GELU is the `Gelu` operator, as in the demo).
pub const OPSET: i64 = 20;

/// A freshly initialised model of `spec` (seeded), every parameter perturbed by small seeded
/// noise so that no two constants coincide (see the module docs).
pub fn untrained(spec: &ModelSpec, seed: u64) -> Result<Params> {
    let mut params = Params::new(seed, &Device::Cpu);
    match spec {
        ModelSpec::Gpt(c) => {
            Gpt::new(c, &mut params, BuildOptions::default())?;
        }
        ModelSpec::Bert(c) => {
            Bert::new(c, &mut params, BuildOptions::default())?;
        }
    }
    perturb(&params, seed)?;
    Ok(params)
}

/// Adds uniform noise in ±0.01 (splitmix64, seeded) to every parameter.
pub fn perturb(params: &Params, seed: u64) -> Result<()> {
    let mut next = noise(seed ^ 0x7E57_5E1E, 0.02);
    let mut names: Vec<&String> = params.iter().map(|(n, _)| n).collect();
    names.sort();
    for name in names {
        if let Some(var) = params.var(name) {
            let n = var.elem_count();
            let d: Vec<f32> = (0..n).map(|_| next()).collect();
            let t = Tensor::from_vec(d, var.shape(), var.device())?.to_dtype(var.dtype())?;
            var.set(&(var.as_tensor() + t)?)?;
        }
    }
    Ok(())
}

/// The fixed-length fp32 ONNX classifier of `spec` with the weights in `params` (batch 1,
/// `context` tokens, no attention-mask input).
pub fn export(spec: &ModelSpec, params: &mut Params, name: &str) -> Result<OnnxModel> {
    let opts = ExportOptions {
        batch: 1,
        seq_len: spec.context(),
        opset: OPSET,
        head: Head::Classifier,
    };
    let proto = match spec {
        ModelSpec::Gpt(c) => {
            export_gpt_fixed_length(&Gpt::new(c, params, BuildOptions::default())?, &opts)?
        }
        ModelSpec::Bert(c) => {
            export_bert_fixed_length(&Bert::new(c, params, BuildOptions::default())?, &opts)?
        }
    };
    OnnxModel::from_bytes(&encode(&proto)).map_err(|e| SelectError::Build {
        candidate: name.to_string(),
        stage: "export",
        message: e.to_string(),
    })
}

/// The exported classifiers' head layer (nodes `classifier/MatMul`, `classifier/Add`).
pub const HEAD: &str = "classifier";

/// Names of the nodes of `model` that `precision` keeps float.
pub fn float_nodes(model: &OnnxModel, precision: Precision) -> HashSet<String> {
    crate::precision::float_nodes(model, precision, HEAD, None)
}

/// Quantizes `fp32` at `precision` (calibrated on `calib`) and compiles it.
pub fn build(fp32: &OnnxModel, calib: &Dataset, precision: Precision, name: &str) -> Result<Built> {
    let err = |stage: &'static str| {
        move |e: &dyn std::fmt::Display| SelectError::Build {
            candidate: name.to_string(),
            stage,
            message: e.to_string(),
        }
    };
    let exclude = float_nodes(fp32, precision);
    if precision != Precision::Int8 && exclude.is_empty() {
        return Err(SelectError::Build {
            candidate: name.to_string(),
            stage: "quantize",
            message: format!("{precision:?}: the model has no node to keep float"),
        });
    }
    let cfg = QuantizeConfig {
        exclude,
        ..QuantizeConfig::default()
    };
    let q = edgeloop_quantize::quantize(fp32, calib, &cfg).map_err(|e| err("quantize")(&e))?;
    let opts = CompileOptions {
        name: Some(name.chars().take(24).collect()),
        model_version: 1,
        ..CompileOptions::default()
    };
    let compiled = compile(&q.model.proto, &opts).map_err(|e| err("compile")(&e))?;
    Ok(Built {
        fp32: fp32.clone(),
        qdq: q.model,
        compiled,
    })
}

/// Accuracy of the image on encoded `rows` (the host runtime runs the image on each row).
pub fn image_accuracy(compiled: &Compiled, rows: &[(Vec<u32>, u32)]) -> Result<f32> {
    let samples = rows.iter().map(|(ids, label)| {
        let x = HostTensor::int(
            vec![1, ids.len()],
            Elem::I64,
            ids.iter().map(|&v| v as i64).collect(),
        );
        (x, *label)
    });
    accuracy_on(compiled, INPUT, rows.len(), samples)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::{estimate, KernelClass};
    use crate::device::KernelSet;
    use crate::text::space::{Family, TextCandidate};

    fn calib(vocab: usize, t: usize) -> Dataset {
        let rows: Vec<(Vec<u32>, u32)> = (0..8)
            .map(|k| {
                (
                    (0..t).map(|i| ((i * 7 + k * 13) % vocab) as u32).collect(),
                    0,
                )
            })
            .collect();
        super::super::task::calibration(&rows, 8).unwrap()
    }

    /// Every op of an encoder's and a GPT's image has a measured figure except the free ones;
    /// the mixed image runs its head in f32 and differs from the int8 one.
    #[test]
    fn text_images_are_costed_and_mixed_keeps_the_head_float() {
        for fam in [Family::Encoder, Family::Gpt] {
            let mut by_precision = Vec::new();
            for p in [Precision::Int8, Precision::MixedHead] {
                let c = TextCandidate::new(fam, 16, 1, 2, 8, 300, p);
                let spec = c.spec(300, 3).unwrap();
                let mut params = untrained(&spec, 1).unwrap();
                let fp32 = export(&spec, &mut params, &c.name).unwrap();
                let b = build(&fp32, &calib(300, 8), p, &c.name).unwrap();
                let cost = estimate(b.compiled.bytes(), KernelSet::Dsp).unwrap();
                for o in &cost.ops {
                    println!(
                        "{} {:?} {:?} macs {} instr {:.0}",
                        c.name, o.op, o.class, o.macs, o.instructions
                    );
                }
                let unmeasured = cost.unmeasured();
                assert!(
                    unmeasured.iter().all(|o| o == "Reshape"),
                    "{}: {unmeasured:?}",
                    c.name
                );
                let f32_fc = cost
                    .ops
                    .iter()
                    .filter(|o| {
                        matches!(
                            o.class,
                            Some(
                                KernelClass::FullyConnectedF32Small
                                    | KernelClass::FullyConnectedF32Large
                            )
                        )
                    })
                    .count();
                assert_eq!(f32_fc, usize::from(p == Precision::MixedHead), "{}", c.name);
                by_precision.push((b.compiled.report.flash.total, cost.macs));
            }
            assert_ne!(by_precision[0].0, by_precision[1].0);
            assert_eq!(by_precision[0].1, by_precision[1].1);
        }
    }
}
