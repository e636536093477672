//! Calibration: run the fp32 model over a user-given set and choose a clipping range for each
//! activation tensor.
//!
//! Passes over the data: min-max needs one (range). Percentile, entropy and MSE need two: the
//! first finds each tensor's range, the second fills fixed-range histograms (2048 bins) that the
//! method then searches. Activations are read with tract ([`crate::runner::Tap`]).

mod dataset;
pub mod range;
pub mod stats;

use std::collections::HashMap;

pub use dataset::Dataset;
use indicatif::{ProgressBar, ProgressStyle};

use crate::error::{Error, Result};
use crate::onnx::{InputSpec, OnnxModel};
use crate::runner::Tap;
use stats::{Histograms, MinMax};

/// How a clipping range is chosen from the observed activations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// The observed minimum and maximum.
    MinMax,
    /// Keeps the given share of the values, cutting half the rest from each tail (99.99 keeps the
    /// [0.005 %, 99.995 %] percentiles, as ONNX Runtime's `CalibPercentile` does).
    Percentile(f64),
    /// The magnitude threshold minimizing the KL divergence between the clipped and the quantized
    /// distributions (TensorRT's entropy calibration, as in ONNX Runtime).
    Entropy,
    /// The range (shrunk towards zero) minimizing the expected squared quantization error.
    Mse,
}

impl Method {
    /// Parses `minmax`, `percentile`, `entropy`, `mse`.
    pub fn parse(s: &str, percentile: f64) -> Result<Self> {
        match s {
            "minmax" => Ok(Method::MinMax),
            "percentile" => {
                if !(50.0..=100.0).contains(&percentile) {
                    return Err(Error::Config(format!(
                        "percentile {percentile} is outside [50, 100]"
                    )));
                }
                Ok(Method::Percentile(percentile))
            }
            "entropy" => Ok(Method::Entropy),
            "mse" => Ok(Method::Mse),
            o => Err(Error::Config(format!(
                "unknown calibration method '{o}' (minmax, percentile, entropy, mse)"
            ))),
        }
    }

    /// Short name.
    pub fn name(&self) -> &'static str {
        match self {
            Method::MinMax => "minmax",
            Method::Percentile(_) => "percentile",
            Method::Entropy => "entropy",
            Method::Mse => "mse",
        }
    }
}

/// A float clipping range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    /// Lower bound.
    pub min: f32,
    /// Upper bound.
    pub max: f32,
}

fn bar(len: usize, msg: &str, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len as u64);
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>24} [{bar:30}] {pos}/{len} samples {elapsed}")
    {
        b.set_style(style.progress_chars("=> "));
    }
    b.set_message(msg.to_string());
    b
}

/// Per-tensor ranges for `tensors` of `model` over `data` by `method`.
pub fn calibrate(
    model: &OnnxModel,
    inputs: &[InputSpec],
    data: &Dataset,
    tensors: &[String],
    method: Method,
    progress: bool,
) -> Result<HashMap<String, Range>> {
    if data.samples.is_empty() {
        return Err(Error::Calibration("the calibration set is empty".into()));
    }
    let tap = Tap::new(model, inputs, tensors)?;
    let mut mm: HashMap<String, MinMax> = HashMap::new();
    let pb = bar(data.samples.len(), "calibration: ranges", progress);
    for s in &data.samples {
        for (name, t) in tap.run(s)? {
            if let Some(v) = t.as_f32() {
                mm.entry(name).or_default().update(v);
            }
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    // Tensors that never held floats (shape arithmetic, indices) get no range: the planner keeps
    // their consumers float.
    if !tensors.is_empty() && !tensors.iter().any(|t| mm.contains_key(t)) {
        return Err(Error::Calibration(
            "no float activation observed in any requested tensor".into(),
        ));
    }
    if method == Method::MinMax {
        return Ok(tensors
            .iter()
            .filter(|t| mm.contains_key(*t))
            .map(|t| {
                let m = &mm[t];
                (
                    t.clone(),
                    Range {
                        min: m.min,
                        max: m.max,
                    },
                )
            })
            .collect());
    }
    let mut hists: HashMap<String, Histograms> = tensors
        .iter()
        .filter(|t| mm.contains_key(*t))
        .map(|t| (t.clone(), Histograms::new(mm[t].min, mm[t].max)))
        .collect();
    let pb = bar(data.samples.len(), "calibration: histograms", progress);
    for s in &data.samples {
        for (name, t) in tap.run(s)? {
            if let (Some(h), Some(v)) = (hists.get_mut(&name), t.as_f32()) {
                h.update(v);
            }
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    Ok(hists
        .into_iter()
        .map(|(name, h)| {
            let r = match method {
                Method::Percentile(p) => range::percentile(&h.signed, p),
                Method::Entropy => range::entropy(&h),
                Method::Mse => range::mse(&h.signed),
                Method::MinMax => unreachable!("returned above"),
            };
            (name, r)
        })
        .collect())
}

/// Largest magnitude per last-axis channel of each tensor (one pass), for SmoothQuant.
pub fn channel_absmax(
    model: &OnnxModel,
    inputs: &[InputSpec],
    data: &Dataset,
    tensors: &[String],
    progress: bool,
) -> Result<HashMap<String, Vec<f32>>> {
    let tap = Tap::new(model, inputs, tensors)?;
    let mut out: HashMap<String, Vec<f32>> = HashMap::new();
    let pb = bar(data.samples.len(), "smoothquant: channels", progress);
    for s in &data.samples {
        for (name, t) in tap.run(s)? {
            if !tensors.contains(&name) {
                continue;
            }
            let (Some(v), Some(&c)) = (t.as_f32(), t.shape.last()) else {
                continue;
            };
            if c == 0 {
                continue;
            }
            let acc = out.entry(name).or_insert_with(|| vec![0.0; c]);
            for row in v.chunks_exact(c) {
                for (a, x) in acc.iter_mut().zip(row) {
                    *a = a.max(x.abs());
                }
            }
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    Ok(out)
}
