//! Reference histograms stored in a model image's statistics section, read on the device to seed
//! a [`DriftMonitor`](super::DriftMonitor) (no allocation: the counts are copied into a
//! caller-sized array).
//!
//! The compiler writes them from its reference (calibration) inputs; the layouts are defined in
//! `FORMAT.md`:
//!
//! | tag | payload |
//! |---:|---|
//! | [`TAG_INPUT`] (1) | `i32 lo`, `i32 hi`, then `n ≥ 1` × `u32` counts: value `v` of the first input falls in bin `⌊(clamp(v, lo, hi) − lo) · n / (hi − lo + 1)⌋` |
//! | [`TAG_CLASS`] (2) | `n ≥ 1` × `u32` counts, one per output class (index = class) |

use super::{DriftSource, TelemetryError};
use crate::image::Model;

/// Statistics tag of the reference histogram of the first input's (quantized) values.
pub const TAG_INPUT: u16 = 1;
/// Statistics tag of the reference histogram of predicted (top-1) classes.
pub const TAG_CLASS: u16 = 2;

/// A reference histogram with at most `B` bins, read from an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReferenceHistogram<const B: usize> {
    /// Counts; bins at and beyond [`bins`](Self::bins) are zero.
    pub counts: [u32; B],
    /// Bins the image stores (≤ `B`).
    pub bins: usize,
    /// Lowest value of the first bin ([`TAG_INPUT`]; 0 for classes).
    pub lo: i32,
    /// Highest value of the last bin ([`TAG_INPUT`]; `bins − 1` for classes).
    pub hi: i32,
}

impl<const B: usize> ReferenceHistogram<B> {
    /// Reads the reference histogram for `source` from `model`'s statistics section: `Ok(None)`
    /// when the image has none, an error when the entry is malformed or has more than `B` bins.
    pub fn from_image(
        model: &Model<'_>,
        source: DriftSource,
    ) -> Result<Option<Self>, TelemetryError> {
        let tag = match source {
            DriftSource::Input => TAG_INPUT,
            DriftSource::PredictedClass => TAG_CLASS,
        };
        for entry in model.stats_entries() {
            let entry = entry.map_err(|_| TelemetryError::DriftBadReferencePayload { tag })?;
            if entry.tag == tag {
                return Self::parse(tag, entry.payload).map(Some);
            }
        }
        Ok(None)
    }

    /// Parses one payload of tag [`TAG_INPUT`] or [`TAG_CLASS`].
    pub fn parse(tag: u16, payload: &[u8]) -> Result<Self, TelemetryError> {
        let bad = TelemetryError::DriftBadReferencePayload { tag };
        let word = |i: usize| -> Result<u32, TelemetryError> {
            let b = payload.get(4 * i..4 * i + 4).ok_or(bad)?;
            Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        if !payload.len().is_multiple_of(4) {
            return Err(bad);
        }
        let (head, lo, hi) = match tag {
            TAG_INPUT => (2, word(0)? as i32, word(1)? as i32),
            TAG_CLASS => (0, 0, 0),
            _ => return Err(bad),
        };
        let bins = (payload.len() / 4).checked_sub(head).ok_or(bad)?;
        if bins == 0 || lo > hi {
            return Err(bad);
        }
        if bins > B {
            return Err(TelemetryError::DriftBadReference {
                bins: u32::try_from(bins).unwrap_or(u32::MAX),
                expected: u32::try_from(B).unwrap_or(u32::MAX),
            });
        }
        let mut counts = [0u32; B];
        for (k, c) in counts.iter_mut().take(bins).enumerate() {
            *c = word(head + k)?;
        }
        let hi = if tag == TAG_CLASS {
            bins as i32 - 1
        } else {
            hi
        };
        Ok(Self {
            counts,
            bins,
            lo,
            hi,
        })
    }

    /// The bin of input value `v` (values outside `[lo, hi]` go to the end bins).
    pub fn bin(&self, v: i32) -> usize {
        let v = i64::from(v.clamp(self.lo, self.hi));
        let width = i64::from(self.hi) - i64::from(self.lo) + 1;
        let k = (v - i64::from(self.lo)) * self.bins as i64 / width;
        (k.max(0) as usize).min(self.bins - 1)
    }
}

/// Encodes a [`TAG_INPUT`] payload (host tools: the compiler).
#[cfg(feature = "std")]
pub fn encode_input_payload(lo: i32, hi: i32, counts: &[u32]) -> std::vec::Vec<u8> {
    let mut p = std::vec::Vec::with_capacity(8 + 4 * counts.len());
    p.extend_from_slice(&lo.to_le_bytes());
    p.extend_from_slice(&hi.to_le_bytes());
    for c in counts {
        p.extend_from_slice(&c.to_le_bytes());
    }
    p
}

/// Encodes a [`TAG_CLASS`] payload (host tools: the compiler).
#[cfg(feature = "std")]
pub fn encode_class_payload(counts: &[u32]) -> std::vec::Vec<u8> {
    counts.iter().flat_map(|c| c.to_le_bytes()).collect()
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;

    #[test]
    fn input_payload_round_trips_and_bins_cover_the_range() {
        let p = encode_input_payload(-128, 127, &[1, 2, 3, 4]);
        let h = ReferenceHistogram::<8>::parse(TAG_INPUT, &p).expect("parses");
        assert_eq!((h.bins, h.lo, h.hi), (4, -128, 127));
        assert_eq!(&h.counts[..5], &[1, 2, 3, 4, 0]);
        assert_eq!(h.bin(-128), 0);
        assert_eq!(h.bin(-65), 0);
        assert_eq!(h.bin(-64), 1);
        assert_eq!(h.bin(0), 2);
        assert_eq!(h.bin(127), 3);
        assert_eq!(h.bin(i32::MIN), 0);
        assert_eq!(h.bin(i32::MAX), 3);
        // Every value of a wide range lands in a valid bin, monotonically.
        let h =
            ReferenceHistogram::<16>::parse(TAG_INPUT, &encode_input_payload(0, 2999, &[1; 16]))
                .expect("parses");
        let mut last = 0;
        for v in -5..3005 {
            let b = h.bin(v);
            assert!(b < 16 && b >= last);
            last = b;
        }
        assert_eq!(last, 15);
    }

    #[test]
    fn class_payload_round_trips() {
        let h = ReferenceHistogram::<4>::parse(TAG_CLASS, &encode_class_payload(&[5, 0, 7]))
            .expect("parses");
        assert_eq!(h.counts, [5, 0, 7, 0]);
        assert_eq!((h.bins, h.lo, h.hi), (3, 0, 2));
    }

    #[test]
    fn malformed_payloads_are_refused() {
        let bad = |tag: u16, p: &[u8]| ReferenceHistogram::<4>::parse(tag, p).is_err();
        assert!(bad(TAG_CLASS, &[]));
        assert!(bad(TAG_CLASS, &[1, 0, 0]));
        assert!(bad(TAG_INPUT, &encode_input_payload(0, 9, &[])));
        assert!(bad(TAG_INPUT, &encode_input_payload(9, 0, &[1])));
        assert!(bad(TAG_INPUT, &[0; 4]));
        assert!(
            bad(TAG_CLASS, &encode_class_payload(&[1; 5])),
            "more bins than B"
        );
        assert!(bad(3, &encode_class_payload(&[1])));
    }

    #[test]
    fn from_image_finds_the_entry_or_none() {
        use crate::image::layers::Activation;
        use crate::image::writer::{AlignedBytes, ImageWriter};
        use crate::image::DType;

        let build = |stats: bool| {
            let mut w = ImageWriter::new("ref", 1).expect("writer");
            let x = w.input(DType::F32, &[1, 2], None).expect("input");
            let y = w
                .fully_connected(x, &[1.0, 0.0, 0.0, 1.0], None, 2, Activation::None, None)
                .expect("fc");
            w.output(y).expect("output");
            if stats {
                w.stats_entry(TAG_CLASS, encode_class_payload(&[3, 4]));
            }
            AlignedBytes::new(&w.finish().expect("finish").bytes)
        };
        let with = build(true);
        let model = Model::parse(with.as_slice()).expect("parses");
        let h = ReferenceHistogram::<2>::from_image(&model, DriftSource::PredictedClass)
            .expect("ok")
            .expect("present");
        assert_eq!(h.counts, [3, 4]);
        assert_eq!(
            ReferenceHistogram::<2>::from_image(&model, DriftSource::Input).expect("ok"),
            None
        );
        let without = build(false);
        let model = Model::parse(without.as_slice()).expect("parses");
        assert_eq!(
            ReferenceHistogram::<2>::from_image(&model, DriftSource::PredictedClass).expect("ok"),
            None
        );
    }
}
