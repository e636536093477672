//! Calibration: run the fp32 model over a user-given set and choose a clipping range for each
//! activation tensor.
//!
//! One pass over the data for every method: each tensor's observed range, and for percentile,
//! entropy and MSE a 2048-bin histogram that starts over the first sample's range and widens
//! without re-binning error (bin width doubled, bins merged in pairs) when a later sample falls
//! outside it ([`stats::Histogram::cover`]); the method then searches the histogram, bounded by
//! the observed range. Entropy reads a magnitude histogram of twice as many bins, re-binned onto
//! 2048 bins over `[0, max |x|]` (as TensorRT's), so its search does not depend on the first
//! sample's range ([`range::entropy`]). Activations are read with tract ([`crate::runner::Tap`]).

mod dataset;
pub mod range;
pub mod stats;

use std::collections::HashMap;

pub use dataset::Dataset;
use indicatif::{ProgressBar, ProgressStyle};

use crate::error::{Error, Result};
use crate::onnx::{InputSpec, OnnxModel};
use crate::runner::{Sample, Tap};
use crate::tensor::Tensor;
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
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:>24} [{elapsed_precise}] [{bar:30}] {pos}/{len} samples {per_sec} eta {eta}",
    ) {
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
    calibrate_with(data, tensors, method, progress, |s| tap.run(s))
}

/// [`calibrate`] with the model run given as `run` (the tensors of one sample): it is called
/// once per sample, whatever the method.
fn calibrate_with(
    data: &Dataset,
    tensors: &[String],
    method: Method,
    progress: bool,
    mut run: impl FnMut(&Sample) -> Result<HashMap<String, Tensor>>,
) -> Result<HashMap<String, Range>> {
    if data.samples.is_empty() {
        return Err(Error::Calibration("the calibration set is empty".into()));
    }
    let wanted: std::collections::HashSet<&str> = tensors.iter().map(|t| t.as_str()).collect();
    let histogram = method != Method::MinMax;
    let mut mm: HashMap<String, MinMax> = HashMap::new();
    let mut hists: HashMap<String, Histograms> = HashMap::new();
    let pb = bar(data.samples.len(), "calibration", progress);
    // One pass: ranges, and for the histogram methods histograms that start over the first
    // sample's range and widen (exactly, by merging bins) when later samples fall outside.
    for s in &data.samples {
        for (name, t) in run(s)? {
            let Some(v) = t.as_f32() else { continue };
            let m = mm.entry(name.clone()).or_default();
            m.update(v);
            if histogram && m.min <= m.max && wanted.contains(name.as_str()) {
                let (lo, hi) = (m.min, m.max);
                hists
                    .entry(name)
                    .or_insert_with(|| Histograms::new(lo, hi))
                    .update(v);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testmodels;

    /// Every method reads each calibration sample exactly once (one pass over the data), and the
    /// histogram methods still give a range to every requested tensor.
    #[test]
    fn every_method_reads_each_sample_once() {
        let m = testmodels::mlp();
        let inputs = m.inputs(&HashMap::new()).unwrap();
        let data = Dataset {
            samples: testmodels::samples(&inputs, 12, 3),
        };
        let tensors: Vec<String> = m
            .graph()
            .node
            .iter()
            .flat_map(|n| n.output.iter().cloned())
            .collect();
        assert!(tensors.len() >= 3, "{tensors:?}");
        let tap = Tap::new(&m, &inputs, &tensors).unwrap();
        for method in [
            Method::MinMax,
            Method::Percentile(99.99),
            Method::Entropy,
            Method::Mse,
        ] {
            let mut visits = vec![0usize; data.samples.len()];
            let ranges = calibrate_with(&data, &tensors, method, false, |s| {
                let i = data
                    .samples
                    .iter()
                    .position(|x| std::ptr::eq(x, s))
                    .expect("a sample of the set");
                visits[i] += 1;
                tap.run(s)
            })
            .unwrap();
            assert!(
                visits.iter().all(|&v| v == 1),
                "{}: {visits:?}",
                method.name()
            );
            for t in &tensors {
                let r = ranges
                    .get(t)
                    .unwrap_or_else(|| panic!("{}: no range for {t}", method.name()));
                assert!(
                    r.min <= 0.0 && r.max >= 0.0 && r.min < r.max,
                    "{}: {t} {r:?}",
                    method.name()
                );
            }
        }
    }
}
