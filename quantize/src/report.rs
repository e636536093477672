//! Sensitivity report: per-layer error of the QDQ model against fp32 activations (SQNR, cosine),
//! as JSON and Markdown, so a user sees which layer hurts and can keep it float (`--exclude`).
//!
//! Errors are cumulative (each layer sees the rounding of every layer before it); `drop_db` is the
//! SQNR lost at the layer itself: the worst SQNR among its quantized inputs minus its own.

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::onnx::{node_label, OnnxModel};
use crate::runner::{Sample, Tap};

/// Running error statistics between a reference and a test signal.
#[derive(Debug, Clone, Copy, Default)]
pub struct ErrorStats {
    sxx: f64,
    syy: f64,
    sxy: f64,
    see: f64,
    max_abs: f64,
    n: u64,
}

impl ErrorStats {
    /// Folds in paired values (reference `x`, test `y`).
    pub fn update(&mut self, x: &[f32], y: &[f32]) {
        for (&a, &b) in x.iter().zip(y) {
            let (a, b) = (a as f64, b as f64);
            self.sxx += a * a;
            self.syy += b * b;
            self.sxy += a * b;
            self.see += (a - b) * (a - b);
            self.max_abs = self.max_abs.max((a - b).abs());
            self.n += 1;
        }
    }

    /// Signal-to-quantization-noise ratio in dB (infinite when identical).
    pub fn sqnr_db(&self) -> f64 {
        if self.see == 0.0 {
            f64::INFINITY
        } else {
            10.0 * (self.sxx / self.see).log10()
        }
    }

    /// Cosine similarity.
    pub fn cosine(&self) -> f64 {
        if self.sxx == 0.0 || self.syy == 0.0 {
            return if self.sxx == self.syy { 1.0 } else { 0.0 };
        }
        self.sxy / (self.sxx.sqrt() * self.syy.sqrt())
    }

    /// Largest absolute difference.
    pub fn max_abs_err(&self) -> f64 {
        self.max_abs
    }
}

/// SQNR in dB of `y` against reference `x`.
pub fn sqnr_db(x: &[f32], y: &[f32]) -> f64 {
    let mut s = ErrorStats::default();
    s.update(x, y);
    s.sqnr_db()
}

/// One layer of the report.
#[derive(Debug, Clone, Serialize)]
pub struct LayerError {
    /// Node name (empty for a graph input).
    pub node: String,
    /// Op type (`input` for a graph input).
    pub op_type: String,
    /// The activation tensor compared.
    pub tensor: String,
    /// SQNR vs fp32, dB (cumulative). `null` in JSON when exact.
    pub sqnr_db: Option<f64>,
    /// Cosine similarity vs fp32.
    pub cosine: f64,
    /// Largest absolute difference.
    pub max_abs_err: f64,
    /// SQNR lost at this layer (dB).
    pub drop_db: Option<f64>,
}

/// The report.
#[derive(Debug, Clone, Serialize)]
pub struct Sensitivity {
    /// Calibration method used.
    pub method: String,
    /// Samples compared.
    pub samples: usize,
    /// Per layer, in graph order.
    pub layers: Vec<LayerError>,
    /// Per model output.
    pub outputs: Vec<LayerError>,
}

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

/// Compares activations of `fp32` and `qdq` on `samples`. `dequantized` maps fp32 tensor names
/// to the tensor holding the same value in the QDQ model.
pub fn sensitivity(
    fp32: &OnnxModel,
    qdq: &OnnxModel,
    inputs: &[crate::onnx::InputSpec],
    dequantized: &HashMap<String, String>,
    samples: &[Sample],
    method: &str,
) -> Result<Sensitivity> {
    let mut tensors: Vec<String> = dequantized.keys().cloned().collect();
    tensors.sort();
    let qnames: Vec<String> = tensors.iter().map(|t| dequantized[t].clone()).collect();
    let tap_f = Tap::new(fp32, inputs, &tensors)?;
    let tap_q = Tap::new(qdq, inputs, &qnames)?;
    let outputs = fp32.output_names();
    let mut stats: HashMap<String, ErrorStats> = HashMap::new();
    for s in samples {
        let f = tap_f.run(s)?;
        let q = tap_q.run(s)?;
        for t in tensors.iter().chain(outputs.iter()) {
            let qn = dequantized.get(t).unwrap_or(t);
            if let (Some(a), Some(b)) = (f.get(t), q.get(qn)) {
                if a.shape != b.shape {
                    return Err(Error::Calibration(format!(
                        "tensor '{t}': fp32 shape {:?} vs QDQ shape {:?}",
                        a.shape, b.shape
                    )));
                }
                let (Some(a), Some(b)) = (a.as_f32(), b.as_f32()) else {
                    continue;
                };
                stats.entry(t.clone()).or_default().update(a, b);
            }
        }
    }
    let entry = |node: String, op: String, t: &str, drop: Option<f64>| -> Option<LayerError> {
        let s = stats.get(t)?;
        Some(LayerError {
            node,
            op_type: op,
            tensor: t.to_string(),
            sqnr_db: finite(s.sqnr_db()),
            cosine: s.cosine(),
            max_abs_err: s.max_abs_err(),
            drop_db: drop,
        })
    };
    let mut layers = Vec::new();
    for i in inputs {
        if let Some(e) = entry(String::new(), "input".into(), &i.name, None) {
            layers.push(e);
        }
    }
    for (k, n) in fp32.graph().node.iter().enumerate() {
        let Some(o) = n.output.first() else { continue };
        if !dequantized.contains_key(o) {
            continue;
        }
        let in_sqnr = n
            .input
            .iter()
            .filter_map(|t| stats.get(t).map(|s| s.sqnr_db()))
            .fold(f64::INFINITY, f64::min);
        let own = stats.get(o).map(|s| s.sqnr_db()).unwrap_or(f64::INFINITY);
        let drop = if in_sqnr.is_finite() && own.is_finite() {
            Some(in_sqnr - own)
        } else if own.is_finite() {
            None
        } else {
            Some(0.0)
        };
        if let Some(e) = entry(node_label(n, k), n.op_type.clone(), o, drop) {
            layers.push(e);
        }
    }
    let outs = outputs
        .iter()
        .filter_map(|o| entry(String::new(), "output".into(), o, None))
        .collect();
    Ok(Sensitivity {
        method: method.to_string(),
        samples: samples.len(),
        layers,
        outputs: outs,
    })
}

fn db(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.2}"))
        .unwrap_or_else(|| "exact".into())
}

impl Sensitivity {
    /// Markdown: outputs first, then layers from the worst SQNR drop.
    pub fn to_markdown(&self) -> String {
        let mut s = format!(
            "# Quantization sensitivity\n\nCalibration method: `{}`; {} sample(s) compared with the fp32 model.\n\
             SQNR is cumulative (all layers before it are quantized too); *drop* is what the layer itself loses.\n\
             Keep a layer float with `--exclude NODE`.\n\n## Model outputs\n\n| output | SQNR dB | cosine | max abs err |\n|---|---:|---:|---:|\n",
            self.method, self.samples
        );
        for o in &self.outputs {
            s += &format!(
                "| {} | {} | {:.6} | {:.4e} |\n",
                o.tensor,
                db(o.sqnr_db),
                o.cosine,
                o.max_abs_err
            );
        }
        s += "\n## Layers, worst drop first\n\n| node | op | tensor | SQNR dB | drop dB | cosine |\n|---|---|---|---:|---:|---:|\n";
        let mut layers: Vec<&LayerError> = self.layers.iter().collect();
        layers.sort_by(|a, b| {
            b.drop_db
                .unwrap_or(f64::NEG_INFINITY)
                .partial_cmp(&a.drop_db.unwrap_or(f64::NEG_INFINITY))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        for l in layers {
            s += &format!(
                "| {} | {} | {} | {} | {} | {:.6} |\n",
                l.node,
                l.op_type,
                l.tensor,
                db(l.sqnr_db),
                db(l.drop_db),
                l.cosine
            );
        }
        s
    }

    /// Writes `sensitivity.json` and `sensitivity.md` into `dir` (created if needed).
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let json = serde_json::to_string_pretty(self)
            .map_err(|e| Error::Config(format!("serializing the report: {e}")))?;
        let p = dir.join("sensitivity.json");
        std::fs::write(&p, json).map_err(|e| Error::io(&p, e))?;
        let p = dir.join("sensitivity.md");
        std::fs::write(&p, self.to_markdown()).map_err(|e| Error::io(&p, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqnr_and_cosine_on_known_signals() {
        let x = [1.0, -1.0, 1.0, -1.0];
        let y = [1.1, -0.9, 1.1, -0.9];
        // signal power 1, noise power 0.01 → 20 dB.
        assert!((sqnr_db(&x, &y) - 20.0).abs() < 1e-4);
        assert_eq!(sqnr_db(&x, &x), f64::INFINITY);
        let mut s = ErrorStats::default();
        s.update(&x, &[-1.0, 1.0, -1.0, 1.0]);
        assert!((s.cosine() + 1.0).abs() < 1e-12);
    }
}
