//! Telemetry record types. They are serialized with postcard; `TELEMETRY.md` documents the
//! resulting bytes. Every type here is plain data: no references, no allocation.

use core::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::TelemetryError;

/// Wire-format version written as the first byte of every frame. Decoders reject any other value
/// with [`TelemetryError::FrameUnsupportedVersion`] before reading further.
pub const FORMAT_VERSION: u8 = 1;

/// Most sampled input values one feedback record may carry.
pub const SAMPLE_MAX: usize = 32;

/// Separates the prompt's token ids from the generated response's in the sample of feedback on
/// a generation (`prompt ids…, -1, response ids…`); token ids are never negative. Host tools turn
/// such feedback into preference pairs.
pub const RESPONSE_SEPARATOR: i32 = -1;

/// Follows the response in the sample of a *corrected* generation: `prompt ids…, -1, response
/// ids…, -2, corrected response ids…` (the user typed the answer the model should have given).
/// Host tools turn it into a preference pair on its own: the correction is chosen over the
/// response.
pub const CORRECTION_SEPARATOR: i32 = -2;

/// Which model produced a record: integrator-assigned id plus the image's model version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ModelRef {
    /// Model id (for example a hash of the model name in the image header).
    pub id: u32,
    /// Model version from the image header.
    pub version: u32,
}

/// Fields common to every record, written before the record itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Header {
    /// Wire-format version, always [`FORMAT_VERSION`] when encoded by this crate.
    pub version: u8,
    /// Device identity (for example a hash of the chip's unique id).
    pub device: u64,
    /// Boot counter: sequence numbers restart at 0 on every boot, so `(device, boot, seq)` is unique.
    pub boot: u32,
    /// Sequence number within this boot, assigned by the recorder, one per record.
    pub seq: u32,
    /// Device timestamp in ticks of the integrator's monotonic clock (no epoch).
    pub ticks: u64,
    /// The model deployed when the record was made.
    pub model: ModelRef,
}

/// One telemetry frame's content: a header and a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Frame {
    /// Common fields.
    pub header: Header,
    /// The record.
    pub record: Record,
}

/// The four kinds of telemetry record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Record {
    /// One inference.
    Inference(InferenceSummary),
    /// A user's verdict on an earlier inference.
    Feedback(Feedback),
    /// The on-device drift monitor crossed its threshold.
    DriftAlarm(DriftAlarm),
    /// Periodic liveness and counters.
    Heartbeat(Heartbeat),
}

impl Record {
    /// Short lower-case name of the record kind (`inference`, `feedback`, `drift_alarm`, `heartbeat`).
    pub fn kind(&self) -> &'static str {
        match self {
            Record::Inference(_) => "inference",
            Record::Feedback(_) => "feedback",
            Record::DriftAlarm(_) => "drift_alarm",
            Record::Heartbeat(_) => "heartbeat",
        }
    }
}

/// Summary of one inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct InferenceSummary {
    /// Top-1 class index.
    pub class: u16,
    /// Top-1 probability in Q0.16 (65535 ≈ 1.0).
    pub confidence_q16: u16,
    /// Time spent in `invoke`, in ticks.
    pub latency_ticks: u32,
    /// Summary statistics of the (quantized) input.
    pub input: InputSummary,
}

/// Converts an int8 softmax output (TFLite convention: scale 1/256, zero point -128) into Q0.16.
pub fn confidence_q16_from_int8_softmax(q: i8) -> u16 {
    // (q + 128) / 256 in Q16 is (q + 128) << 8; 255 << 8 = 65280 fits in u16.
    ((i32::from(q) + 128) << 8) as u16
}

/// Integer summary statistics of an input tensor. `mean_q8` and `std_q8` are scaled by 256.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct InputSummary {
    /// Number of values.
    pub len: u32,
    /// Smallest value (0 when empty).
    pub min: i32,
    /// Largest value (0 when empty).
    pub max: i32,
    /// Mean × 256, rounded half away from zero.
    pub mean_q8: i32,
    /// Population standard deviation × 256, rounded down.
    pub std_q8: u32,
}

impl InputSummary {
    /// Summarizes int8 values (a quantized input tensor) with integer arithmetic only.
    pub fn from_i8(values: &[i8]) -> Self {
        Self::from_iter(values.iter().map(|&v| i32::from(v)))
    }

    /// Summarizes i32 values (for example token ids) with integer arithmetic only.
    pub fn from_i32(values: &[i32]) -> Self {
        Self::from_iter(values.iter().copied())
    }

    fn from_iter(values: impl Iterator<Item = i32>) -> Self {
        let mut n: u64 = 0;
        let mut sum: i128 = 0;
        let mut sum_sq: u128 = 0;
        let mut min = i32::MAX;
        let mut max = i32::MIN;
        for v in values {
            n += 1;
            sum += i128::from(v);
            sum_sq += (i128::from(v) * i128::from(v)) as u128;
            min = min.min(v);
            max = max.max(v);
        }
        if n == 0 {
            return Self::default();
        }
        let n128 = i128::from(n);
        // Rounded division, half away from zero.
        let scaled = sum * 256;
        let mean = if scaled >= 0 {
            (scaled + n128 / 2) / n128
        } else {
            (scaled - n128 / 2) / n128
        };
        // var * n^2 = n * sum_sq - sum^2 (exact, non-negative); std * 256 = sqrt(var * 65536).
        let var_n2 = (n128 as u128) * sum_sq - (sum * sum) as u128;
        let std = isqrt_u128(var_n2 * 65536 / ((n128 * n128) as u128));
        InputSummary {
            len: u32::try_from(n).unwrap_or(u32::MAX),
            min,
            max,
            mean_q8: mean.clamp(i128::from(i32::MIN), i128::from(i32::MAX)) as i32,
            std_q8: u32::try_from(std).unwrap_or(u32::MAX),
        }
    }
}

/// Floor of the square root, by Newton's method on integers.
fn isqrt_u128(x: u128) -> u128 {
    if x < 2 {
        return x;
    }
    let mut r = 1u128 << (((128 - x.leading_zeros()) / 2) + 1);
    loop {
        let next = (r + x / r) / 2;
        if next >= r {
            return r;
        }
        r = next;
    }
}

/// A user's thumbs-up or thumbs-down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Thumbs {
    /// The prediction was right.
    Up,
    /// The prediction was wrong.
    Down,
}

/// A user's verdict on an earlier inference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Feedback {
    /// `seq` of the inference record this feedback is about (same device and boot).
    pub inference_seq: u32,
    /// The correct class, when the user gave one.
    pub correction: Option<u16>,
    /// Thumbs up/down, when the user gave one.
    pub thumbs: Option<Thumbs>,
    /// Sampled input values (int8 inputs or token ids); empty unless the integrator opts in.
    pub sample: Sample,
}

/// Up to [`SAMPLE_MAX`] input values, stored inline. Encoded as a postcard sequence of
/// zigzag-varint `i32`s (length first), so only the used values go on the wire.
#[derive(Clone, Copy)]
pub struct Sample {
    len: u8,
    values: [i32; SAMPLE_MAX],
}

impl Sample {
    /// An empty sample (the integrator did not opt in).
    pub const EMPTY: Sample = Sample {
        len: 0,
        values: [0; SAMPLE_MAX],
    };

    /// Copies int8 values; errors when there are more than [`SAMPLE_MAX`].
    pub fn from_i8(values: &[i8]) -> Result<Self, TelemetryError> {
        Self::check_len(values.len())?;
        let mut s = Self::EMPTY;
        for (slot, &v) in s.values.iter_mut().zip(values) {
            *slot = i32::from(v);
        }
        s.len = values.len() as u8;
        Ok(s)
    }

    /// Copies i32 values (for example token ids); errors when there are more than [`SAMPLE_MAX`].
    pub fn from_i32(values: &[i32]) -> Result<Self, TelemetryError> {
        Self::check_len(values.len())?;
        let mut s = Self::EMPTY;
        s.values[..values.len()].copy_from_slice(values);
        s.len = values.len() as u8;
        Ok(s)
    }

    fn check_len(len: usize) -> Result<(), TelemetryError> {
        if len > SAMPLE_MAX {
            return Err(TelemetryError::SampleTooLong {
                len: u32::try_from(len).unwrap_or(u32::MAX),
            });
        }
        Ok(())
    }

    /// The sampled values.
    pub fn as_slice(&self) -> &[i32] {
        &self.values[..usize::from(self.len)]
    }
}

impl Default for Sample {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl PartialEq for Sample {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Sample {}

impl fmt::Debug for Sample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Sample {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "{=[?]}", self.as_slice())
    }
}

impl Serialize for Sample {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(usize::from(self.len)))?;
        for v in self.as_slice() {
            seq.serialize_element(v)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Sample {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SampleVisitor;
        impl<'de> Visitor<'de> for SampleVisitor {
            type Value = Sample;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "at most {SAMPLE_MAX} i32 values")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Sample, A::Error> {
                let mut s = Sample::EMPTY;
                while let Some(v) = seq.next_element::<i32>()? {
                    let slot = s
                        .values
                        .get_mut(usize::from(s.len))
                        .ok_or_else(|| de::Error::invalid_length(SAMPLE_MAX + 1, &self))?;
                    *slot = v;
                    s.len += 1;
                }
                Ok(s)
            }
        }
        deserializer.deserialize_seq(SampleVisitor)
    }
}

/// Which histogram the on-device drift monitor watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DriftSource {
    /// Values of the quantized input tensor.
    Input,
    /// Predicted (top-1) classes.
    PredictedClass,
}

/// The on-device drift monitor's PSI crossed its threshold at the end of a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DriftAlarm {
    /// Histogram that drifted.
    pub source: DriftSource,
    /// Population stability index of the window, Q16.16 (65536 = 1.0).
    pub psi_q16: u32,
    /// Threshold in force, Q16.16.
    pub threshold_q16: u32,
    /// Events (inferences) in the window.
    pub window_events: u32,
    /// Index of the window since boot (0-based).
    pub window_index: u32,
}

/// Periodic liveness record with the device's counters since boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Heartbeat {
    /// Ticks since boot.
    pub uptime_ticks: u64,
    /// Inference records offered to the recorder.
    pub inferences: u32,
    /// Feedback records offered to the recorder.
    pub feedback: u32,
    /// Drift alarms offered to the recorder.
    pub alarms: u32,
    /// Frames dropped by the recorder's ring because it was full (oldest first).
    pub dropped: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_summary_matches_float_statistics() {
        let mut state = 0x1234_5678u32;
        for len in [1usize, 2, 7, 64, 1000] {
            let values: std::vec::Vec<i8> = (0..len)
                .map(|_| {
                    state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (state >> 24) as u8 as i8
                })
                .collect();
            let s = InputSummary::from_i8(&values);
            let n = len as f64;
            let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
            let var = values
                .iter()
                .map(|&v| (f64::from(v) - mean).powi(2))
                .sum::<f64>()
                / n;
            assert_eq!(s.len as usize, len);
            assert_eq!(s.min, i32::from(*values.iter().min().unwrap()));
            assert_eq!(s.max, i32::from(*values.iter().max().unwrap()));
            assert!((f64::from(s.mean_q8) / 256.0 - mean).abs() <= 0.5 / 256.0 + 1e-9);
            let std = f64::from(s.std_q8) / 256.0;
            assert!(
                std <= var.sqrt() + 1e-9 && var.sqrt() - std < 1.0 / 256.0,
                "{std} vs {}",
                var.sqrt()
            );
        }
        assert_eq!(InputSummary::from_i8(&[]), InputSummary::default());
    }

    #[test]
    fn isqrt_is_floor_sqrt() {
        for x in (0u128..5000).chain([u64::MAX as u128, (1u128 << 100) + 12345]) {
            let r = isqrt_u128(x);
            assert!(r * r <= x && (r + 1) * (r + 1) > x, "{x}");
        }
    }

    #[test]
    fn sample_rejects_overlong_input() {
        assert_eq!(
            Sample::from_i8(&[0; SAMPLE_MAX + 1]),
            Err(TelemetryError::SampleTooLong {
                len: SAMPLE_MAX as u32 + 1
            })
        );
        assert_eq!(Sample::from_i32(&[1, 2, 3]).unwrap().as_slice(), &[1, 2, 3]);
    }

    #[test]
    fn int8_softmax_confidence() {
        assert_eq!(confidence_q16_from_int8_softmax(-128), 0);
        assert_eq!(confidence_q16_from_int8_softmax(127), 65280);
        assert_eq!(confidence_q16_from_int8_softmax(0), 32768);
    }
}
