//! Do the engines compute the same thing? Each engine's output on the bench input against a
//! reference: int8 engines against ONNX Runtime Level1 on the same QDQ model (the int8
//! reference the compiler is checked against), fp32 engines against ONNX Runtime fp32.

use serde::Serialize;

use crate::backends::Engine;
use crate::models::BenchModel;
use crate::{Error, Result};

/// One engine's output against its reference.
#[derive(Debug, Clone, Serialize)]
pub struct Agreement {
    /// The engine.
    pub engine: Engine,
    /// Its reference.
    pub reference: Engine,
    /// Output elements.
    pub elements: usize,
    /// Largest |engine − reference|.
    pub max_abs: f64,
    /// Largest |reference|.
    pub max_ref: f64,
    /// The output's quantization step (int8 engines), from the QDQ model's last DequantizeLinear.
    pub lsb: Option<f64>,
    /// Elements exactly equal.
    pub identical: usize,
}

impl Agreement {
    /// `max_abs` in LSBs (int8) or relative to `max_ref` (fp32).
    pub fn distance(&self) -> f64 {
        match self.lsb {
            Some(l) => self.max_abs / l,
            None => self.max_abs / self.max_ref.max(f64::MIN_POSITIVE),
        }
    }
}

/// Scale of the DequantizeLinear that writes `m`'s first output, if any.
pub fn output_lsb(m: &edgeloop_quantize::OnnxModel) -> Option<f64> {
    let g = m.graph();
    let out = g.output.first()?.name.clone();
    let dq = g
        .node
        .iter()
        .find(|n| n.op_type == "DequantizeLinear" && n.output.first() == Some(&out))?;
    let s = g
        .initializer
        .iter()
        .find(|t| Some(&t.name) == dq.input.get(1))?;
    let t = edgeloop_quantize::tensor::from_proto(s).ok()?;
    t.as_f32().and_then(|v| v.first()).map(|&x| x as f64)
}

/// Every engine of `engines` against its reference (single thread). Engines that fail to load
/// are returned as errors by name.
pub fn agreement(m: &BenchModel, engines: &[Engine]) -> (Vec<Agreement>, Vec<(Engine, String)>) {
    let mut outs = Vec::new();
    let mut failed = Vec::new();
    for &e in engines {
        match e.load(m, 1).and_then(|mut b| b.output()) {
            Ok(v) => outs.push((e, v)),
            Err(err) => failed.push((e, err.to_string())),
        }
    }
    let lsb = output_lsb(&m.qdq);
    let get = |e: Engine| outs.iter().find(|(x, _)| *x == e).map(|(_, v)| v);
    let mut res = Vec::new();
    for (e, v) in &outs {
        let reference = if e.is_int8() {
            Engine::OrtInt8Level1
        } else {
            Engine::OrtF32
        };
        if *e == reference {
            continue;
        }
        let Some(r) = get(reference) else { continue };
        if r.len() != v.len() {
            failed.push((
                *e,
                format!("{} output elements, reference has {}", v.len(), r.len()),
            ));
            continue;
        }
        let mut a = Agreement {
            engine: *e,
            reference,
            elements: v.len(),
            max_abs: 0.0,
            max_ref: 0.0,
            lsb: if e.is_int8() { lsb } else { None },
            identical: 0,
        };
        for (p, q) in v.iter().zip(r) {
            a.max_abs = a.max_abs.max((p - q).abs() as f64);
            a.max_ref = a.max_ref.max(q.abs() as f64);
            a.identical += usize::from(p == q);
        }
        res.push(a);
    }
    (res, failed)
}

/// Checks `a` against tolerances: int8 engines within `int8_lsb` LSBs of the reference, fp32
/// engines within `f32_rel` relative to the largest reference value.
pub fn within(a: &Agreement, int8_lsb: f64, f32_rel: f64) -> Result<()> {
    let (d, tol) = if a.lsb.is_some() {
        (a.distance(), int8_lsb)
    } else {
        (a.distance(), f32_rel)
    };
    if d.is_finite() && d <= tol {
        Ok(())
    } else {
        Err(Error::Check(format!(
            "{} vs {}: distance {d} (tolerance {tol}; max |diff| {}, lsb {:?})",
            a.engine.label(),
            a.reference.label(),
            a.max_abs,
            a.lsb
        )))
    }
}
