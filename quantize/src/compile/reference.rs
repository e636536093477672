//! Reference statistics for on-device drift checks: the finished image runs on reference
//! (calibration) inputs, and the histograms of its first input's values and of its top-1 classes
//! go into the image's statistics section (tags 1 and 2, `runtime/FORMAT.md`), which the device
//! reads with `telemetry::ReferenceHistogram::from_image` to seed its `DriftMonitor`.

use edgeloop_runtime::image::writer::with_stats;
use edgeloop_runtime::telemetry::reference::{
    encode_class_payload, encode_input_payload, TAG_CLASS, TAG_INPUT,
};
use serde::Serialize;

use super::host::{Elem, HostTensor};
use super::{Compiled, HostMap};
use crate::error::{Error, Result};
use crate::runner::Sample;
use crate::tensor::TensorData;

/// Bins of the input-value histogram.
pub const INPUT_BINS: usize = 16;

/// What was stored, for the compile report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReferenceSummary {
    /// Reference inputs run through the image.
    pub samples: usize,
    /// Input-value histogram `(lo, hi, counts)` (absent for a float input, whose values the
    /// device does not see quantized).
    pub input: Option<(i32, i32, Vec<u32>)>,
    /// Predicted-class histogram (index = class of the first output's last axis).
    pub classes: Vec<u32>,
}

/// Converts a calibration sample (quantizer tensors) to the compiler's host tensors.
pub fn host_sample(sample: &Sample) -> HostMap {
    sample
        .iter()
        .map(|(name, t)| {
            let h = match &t.data {
                TensorData::F32(v) => HostTensor::f32(t.shape.clone(), v.clone()),
                TensorData::I64(v) => HostTensor::int(t.shape.clone(), Elem::I64, v.clone()),
            };
            (name.clone(), h)
        })
        .collect()
}

/// Runs `compiled` on every sample and counts the histograms.
pub fn reference_stats(compiled: &Compiled, samples: &[HostMap]) -> Result<ReferenceSummary> {
    let first_in = compiled
        .report
        .inputs
        .first()
        .ok_or_else(|| Error::Compile("the image has no input".into()))?;
    let first_out = compiled
        .report
        .outputs
        .first()
        .ok_or_else(|| Error::Compile("the image has no output".into()))?;
    let classes_n = first_out.shape.last().copied().unwrap_or(0);
    if classes_n < 2 {
        return Err(Error::Config(format!(
            "reference statistics need a class axis: output '{}' has shape {:?}",
            first_out.name, first_out.shape
        )));
    }
    let mut values: Vec<i64> = Vec::new();
    let mut classes = vec![0u32; classes_n];
    for (k, s) in samples.iter().enumerate() {
        let out = compiled
            .run(s)
            .map_err(|e| Error::Compile(format!("reference input {k}: {e}")))?;
        if first_in.image_type != "f32" {
            if let Some(t) = s.get(&first_in.name) {
                values.extend(t.as_i64().iter().map(|&v| v - first_in.offset));
            }
        }
        let y = out
            .get(&first_out.name)
            .ok_or_else(|| Error::Compile(format!("no output '{}'", first_out.name)))?
            .as_f32();
        for row in y.chunks(classes_n) {
            let mut best = 0;
            for (c, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = c;
                }
            }
            classes[best] += 1;
        }
    }
    let input = match first_in.image_type.as_str() {
        "f32" => None,
        _ if values.is_empty() => None,
        t => {
            let (lo, hi) = if t == "i8" {
                (-128i64, 127i64)
            } else {
                let lo = values.iter().copied().min().unwrap_or(0);
                let hi = values.iter().copied().max().unwrap_or(0);
                (lo, hi)
            };
            let (lo, hi) = (
                i32::try_from(lo).map_err(|_| Error::Compile("input value beyond int32".into()))?,
                i32::try_from(hi).map_err(|_| Error::Compile("input value beyond int32".into()))?,
            );
            let width = i64::from(hi) - i64::from(lo) + 1;
            let mut counts = vec![0u32; INPUT_BINS];
            for &v in &values {
                let b = ((v.clamp(i64::from(lo), i64::from(hi)) - i64::from(lo))
                    * INPUT_BINS as i64
                    / width) as usize;
                counts[b.min(INPUT_BINS - 1)] += 1;
            }
            Some((lo, hi, counts))
        }
    };
    Ok(ReferenceSummary {
        samples: samples.len(),
        input,
        classes,
    })
}

impl Compiled {
    /// Runs the image on `samples` and stores the reference histograms in its statistics
    /// section (replacing any), updating the report's sizes.
    pub fn add_reference_stats(&mut self, samples: &[HostMap]) -> Result<ReferenceSummary> {
        if samples.is_empty() {
            return Err(Error::Config("no reference inputs given".into()));
        }
        let summary = reference_stats(self, samples)?;
        let mut entries = vec![(TAG_CLASS, encode_class_payload(&summary.classes))];
        if let Some((lo, hi, counts)) = &summary.input {
            entries.insert(0, (TAG_INPUT, encode_input_payload(*lo, *hi, counts)));
        }
        let bytes = with_stats(&self.image.bytes, &entries)
            .map_err(|e| Error::Compile(format!("adding reference statistics: {e}")))?;
        let grown = bytes.len() as isize - self.image.bytes.len() as isize;
        self.image.bytes = bytes;
        self.image.stats.image_bytes = self.image.bytes.len();
        self.report.flash.statistics = (self.report.flash.statistics as isize + grown) as usize;
        self.report.flash.total = self.image.bytes.len();
        self.report.reference = Some(summary.clone());
        Ok(summary)
    }
}
