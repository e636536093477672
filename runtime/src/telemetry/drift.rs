//! On-device drift: live histograms over a window of events, compared with a reference histogram
//! by the population stability index (PSI), in integer arithmetic only.
//!
//! `PSI = Σ (aᵢ − eᵢ) · ln(aᵢ / eᵢ)` where `eᵢ`, `aᵢ` are the reference and live proportions.
//! As in Evidently, an empty bin's proportion is replaced by `0.0001`. Proportions are Q2.30;
//! `ln` is computed as `log2 · ln 2` with `log2` from a 65-entry table of `log2(1 + i/64)`
//! (Q16) and linear interpolation (error < 7e-5 in log2 units). The PSI comes back in Q16.16.
//! Its absolute error against an f64 computation of the same formula is measured by
//! `drift::tests::psi_error_against_f64` over 3000 random histograms of 2–64 bins with empty
//! bins: observed maximum 3.0e-5, asserted bound 2e-4.

use super::{DriftAlarm, DriftSource, TelemetryError};

/// Proportions are scaled by 2^30.
const P_ONE: u64 = 1 << 30;
/// Evidently's replacement for an empty bin, 0.0001, in Q30 (107374.18 rounded).
const P_EMPTY: u64 = 107_374;
/// ln 2 in Q32.
const LN2_Q32: i128 = 2_977_044_472;

/// `round(log2(1 + i/64) · 2^16)` for i in 0..=64 (checked by `drift::tests::log2_table_is_exact`).
const LOG2_TABLE: [u32; 65] = [
    0, 1466, 2909, 4331, 5732, 7112, 8473, 9814, 11136, 12440, 13727, 14996, 16248, 17484, 18704,
    19909, 21098, 22272, 23433, 24579, 25711, 26830, 27936, 29029, 30109, 31178, 32234, 33279,
    34312, 35334, 36346, 37346, 38336, 39316, 40286, 41246, 42196, 43137, 44068, 44990, 45904,
    46809, 47705, 48593, 49472, 50344, 51207, 52063, 52911, 53751, 54584, 55410, 56229, 57040,
    57845, 58643, 59434, 60219, 60997, 61769, 62534, 63294, 64047, 64794, 65536,
];

/// log2(x) in Q16 for x ≥ 1.
fn log2_q16(x: u64) -> i64 {
    debug_assert!(x > 0);
    let k = 63 - i64::from(x.leading_zeros());
    // Normalize so the leading one is bit 63; the next 6 bits index the table, the 57 below interpolate.
    let m = x << (63 - k);
    let idx = ((m >> 57) & 63) as usize;
    let frac = m & ((1u64 << 57) - 1);
    let lo = i64::from(LOG2_TABLE[idx]);
    let hi = i64::from(LOG2_TABLE[idx + 1]);
    let interp = lo + (((hi - lo) as i128 * i128::from(frac)) >> 57) as i64;
    (k << 16) + interp
}

fn proportion(count: u32, total: u64) -> u64 {
    if count == 0 {
        P_EMPTY
    } else {
        ((u64::from(count) * P_ONE + total / 2) / total).max(1)
    }
}

/// PSI between two histograms of counts, in Q16.16 (65536 = 1.0). Errors when the lengths
/// differ, are zero, or either histogram is all zeros.
pub fn psi_q16(reference: &[u32], live: &[u32]) -> Result<u32, TelemetryError> {
    let bad = TelemetryError::DriftBadReference {
        bins: u32::try_from(reference.len()).unwrap_or(u32::MAX),
        expected: u32::try_from(live.len()).unwrap_or(u32::MAX),
    };
    if reference.len() != live.len() || reference.is_empty() {
        return Err(bad);
    }
    let total_e: u64 = reference.iter().map(|&c| u64::from(c)).sum();
    let total_a: u64 = live.iter().map(|&c| u64::from(c)).sum();
    if total_e == 0 || total_a == 0 {
        return Err(bad);
    }
    // Σ (a - e)[Q30] · (log2 a − log2 e)[Q16]: each term < 2^30 · 2^21, at most 2^32 bins: fits i128.
    let mut acc: i128 = 0;
    for (&e, &a) in reference.iter().zip(live) {
        let pe = proportion(e, total_e);
        let pa = proportion(a, total_a);
        let d = pa as i128 - pe as i128;
        acc += d * i128::from(log2_q16(pa) - log2_q16(pe));
    }
    // acc is Q46 in log2 units; × ln2 (Q32) → Q78; to Q16 shift by 62, rounding.
    let psi = (acc * LN2_Q32 + (1i128 << 61)) >> 62;
    Ok(u32::try_from(psi.max(0)).unwrap_or(u32::MAX))
}

/// Histogram bin of an int8 value when 256 values are split into `bins` equal bins.
pub fn bin_of_i8(value: i8, bins: usize) -> usize {
    (usize::from((i16::from(value) + 128) as u8) * bins) >> 8
}

/// Outcome of a completed window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct WindowResult {
    /// PSI of the window against the reference, Q16.16.
    pub psi_q16: u32,
    /// Present when the PSI reached the threshold: the record to hand to the recorder.
    pub alarm: Option<DriftAlarm>,
}

/// Keeps a live `B`-bin histogram over windows of events and compares each full window with a
/// reference histogram (for example one the compiler stored in the model image from calibration).
pub struct DriftMonitor<'r, const B: usize> {
    reference: &'r [u32],
    live: [u32; B],
    events: u32,
    window: u32,
    threshold_q16: u32,
    source: DriftSource,
    windows_done: u32,
}

impl<'r, const B: usize> DriftMonitor<'r, B> {
    /// Evidently's default PSI threshold, 0.1, in Q16.16.
    pub const DEFAULT_THRESHOLD_Q16: u32 = 6554;

    /// A monitor comparing windows of `window` events against `reference` (`B` counts, not all
    /// zero), alarming when PSI ≥ `threshold_q16`.
    pub fn new(
        reference: &'r [u32],
        source: DriftSource,
        window: u32,
        threshold_q16: u32,
    ) -> Result<Self, TelemetryError> {
        if reference.len() != B || B == 0 || reference.iter().all(|&c| c == 0) {
            return Err(TelemetryError::DriftBadReference {
                bins: u32::try_from(reference.len()).unwrap_or(u32::MAX),
                expected: u32::try_from(B).unwrap_or(u32::MAX),
            });
        }
        if window == 0 {
            return Err(TelemetryError::DriftZeroWindow);
        }
        Ok(Self {
            reference,
            live: [0; B],
            events: 0,
            window,
            threshold_q16,
            source,
            windows_done: 0,
        })
    }

    /// Adds one value to the live histogram (an event may add many; see [`DriftMonitor::end_event`]).
    pub fn add(&mut self, bin: usize) -> Result<(), TelemetryError> {
        let slot = self
            .live
            .get_mut(bin)
            .ok_or(TelemetryError::DriftBinOutOfRange {
                bin: u32::try_from(bin).unwrap_or(u32::MAX),
                bins: B as u32,
            })?;
        *slot = slot.saturating_add(1);
        Ok(())
    }

    /// Ends one event (one inference). When the window is full, computes the PSI, resets the
    /// live histogram and returns the result.
    pub fn end_event(&mut self) -> Option<WindowResult> {
        self.events += 1;
        if self.events < self.window {
            return None;
        }
        let psi = if self.live.iter().all(|&c| c == 0) {
            // An event without values: nothing to compare.
            None
        } else {
            psi_q16(self.reference, &self.live).ok()
        };
        let result = psi.map(|psi_q16| WindowResult {
            psi_q16,
            alarm: (psi_q16 >= self.threshold_q16).then_some(DriftAlarm {
                source: self.source,
                psi_q16,
                threshold_q16: self.threshold_q16,
                window_events: self.events,
                window_index: self.windows_done,
            }),
        });
        self.live = [0; B];
        self.events = 0;
        self.windows_done += 1;
        result
    }

    /// One inference's int8 input: every value goes into its bin (see [`bin_of_i8`]), then the event ends.
    pub fn observe_i8(&mut self, input: &[i8]) -> Option<WindowResult> {
        for &v in input {
            let bin = bin_of_i8(v, B);
            self.live[bin] = self.live[bin].saturating_add(1);
        }
        self.end_event()
    }

    /// One inference's predicted class, then the event ends.
    pub fn observe_class(&mut self, class: u16) -> Result<Option<WindowResult>, TelemetryError> {
        self.add(usize::from(class))?;
        Ok(self.end_event())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn psi_f64(reference: &[u32], live: &[u32]) -> f64 {
        let te: f64 = reference.iter().map(|&c| f64::from(c)).sum();
        let ta: f64 = live.iter().map(|&c| f64::from(c)).sum();
        reference
            .iter()
            .zip(live)
            .map(|(&e, &a)| {
                let pe = if e == 0 { 1e-4 } else { f64::from(e) / te };
                let pa = if a == 0 { 1e-4 } else { f64::from(a) / ta };
                (pa - pe) * (pa / pe).ln()
            })
            .sum()
    }

    #[test]
    fn log2_table_is_exact() {
        for (i, &t) in LOG2_TABLE.iter().enumerate() {
            let exact = (1.0 + i as f64 / 64.0).log2() * 65536.0;
            assert_eq!(t, exact.round() as u32, "entry {i}");
        }
    }

    #[test]
    fn log2_error_is_small() {
        let mut worst = 0f64;
        for x in (1u64..5000).chain((0..2000).map(|k| 1_000_003 * k + 7)) {
            let got = log2_q16(x) as f64 / 65536.0;
            worst = worst.max((got - (x as f64).log2()).abs());
        }
        assert!(worst < 7e-5, "log2 error {worst}");
    }

    /// Random histograms (2..=64 bins, including empty bins and near-identical pairs):
    /// integer PSI against f64 PSI of the same formula.
    #[test]
    fn psi_error_against_f64() {
        let mut state = 99u64;
        let mut next = move |m: u64| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) % m
        };
        let mut worst = 0f64;
        for case in 0..3000 {
            let bins = 2 + next(63) as usize;
            let scale = [10, 1000, 100_000][case % 3];
            let e: Vec<u32> = (0..bins)
                .map(|_| if next(6) == 0 { 0 } else { next(scale) as u32 })
                .collect();
            let a: Vec<u32> = if case % 4 == 0 {
                e.iter().map(|&c| c + next(3) as u32).collect()
            } else {
                (0..bins)
                    .map(|_| if next(6) == 0 { 0 } else { next(scale) as u32 })
                    .collect()
            };
            if e.iter().all(|&c| c == 0) || a.iter().all(|&c| c == 0) {
                continue;
            }
            let got = f64::from(psi_q16(&e, &a).unwrap()) / 65536.0;
            let want = psi_f64(&e, &a);
            worst = worst.max((got - want).abs());
        }
        println!("integer PSI: max |error| vs f64 = {worst:.2e}");
        assert!(worst < 2e-4, "PSI error {worst}");
    }

    #[test]
    fn identical_histograms_give_zero() {
        assert_eq!(psi_q16(&[5, 10, 0, 3], &[10, 20, 0, 6]).unwrap(), 0);
        assert!(psi_q16(&[1, 2], &[1, 2, 3]).is_err());
        assert!(psi_q16(&[0, 0], &[1, 2]).is_err());
    }

    #[test]
    fn monitor_alarms_on_shift_only() {
        let reference = [100u32, 300, 300, 100, 0, 0, 0, 0];
        let mut m = DriftMonitor::<8>::new(&reference, DriftSource::Input, 10, 6554).unwrap();
        let same: [i8; 8] = [-100, -70, -80, -90, -50, -40, -60, -10];
        for _ in 0..9 {
            assert!(m.observe_i8(&same).is_none());
        }
        let quiet = m.observe_i8(&same).unwrap();
        assert!(quiet.alarm.is_none(), "psi {}", quiet.psi_q16);
        let shifted: [i8; 8] = [100, 60, 60, 40, 50, 20, 10, 127];
        let mut last = None;
        for _ in 0..10 {
            last = m.observe_i8(&shifted);
        }
        let alarm = last.unwrap().alarm.unwrap();
        assert_eq!(alarm.window_index, 1);
        assert_eq!(alarm.window_events, 10);
        assert!(alarm.psi_q16 > 65536, "large shift, psi {}", alarm.psi_q16);
    }

    #[test]
    fn monitor_validates_inputs() {
        assert!(DriftMonitor::<4>::new(&[1, 2, 3], DriftSource::Input, 5, 1).is_err());
        assert!(DriftMonitor::<3>::new(&[0, 0, 0], DriftSource::Input, 5, 1).is_err());
        assert_eq!(
            DriftMonitor::<3>::new(&[1, 1, 1], DriftSource::Input, 0, 1).err(),
            Some(TelemetryError::DriftZeroWindow)
        );
        let r = [5u32, 5, 5];
        let mut m = DriftMonitor::<3>::new(&r, DriftSource::PredictedClass, 2, 1).unwrap();
        assert_eq!(
            m.observe_class(3),
            Err(TelemetryError::DriftBinOutOfRange { bin: 3, bins: 3 })
        );
        assert_eq!(m.observe_class(1).unwrap(), None);
    }

    #[test]
    fn int8_bins_cover_range() {
        assert_eq!(bin_of_i8(-128, 16), 0);
        assert_eq!(bin_of_i8(127, 16), 15);
        assert_eq!(bin_of_i8(0, 16), 8);
        assert_eq!(bin_of_i8(127, 10), 9);
    }
}
