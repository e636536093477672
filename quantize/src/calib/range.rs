//! Range searches over calibration histograms. All results contain zero (int8 must represent it).

use super::stats::{Histogram, Histograms, BINS};
use super::Range;

fn with_zero(lo: f64, hi: f64) -> Range {
    Range {
        min: lo.min(0.0) as f32,
        max: hi.max(0.0) as f32,
    }
}

/// Keeps `p`% of the signed values, cutting `(100 - p) / 2`% from each tail (the `[(100 - p) / 2,
/// (100 + p) / 2]` percentiles), as ONNX Runtime's percentile calibration does for asymmetric
/// activations.
pub fn percentile(h: &Histogram, p: f64) -> Range {
    let total = h.total() as f64;
    if total == 0.0 {
        return with_zero(h.lo as f64, h.hi as f64);
    }
    let w = h.width();
    let tail = (1.0 - p / 100.0) / 2.0;
    let lo_target = total * tail;
    let hi_target = total * (1.0 - tail);
    let mut cum = 0.0;
    let mut lo = h.lo as f64;
    let mut found_lo = false;
    let mut hi = h.hi as f64;
    for (i, &c) in h.counts.iter().enumerate() {
        cum += c as f64;
        if !found_lo && cum > lo_target {
            lo = h.lo as f64 + i as f64 * w;
            found_lo = true;
        }
        if cum >= hi_target {
            hi = h.lo as f64 + (i + 1) as f64 * w;
            break;
        }
    }
    let (min, max) = h.observed();
    with_zero(lo.max(min), hi.min(max))
}

/// Number of quantization levels the entropy method spreads a magnitude range over (one sign of int8).
const LEVELS: usize = 128;

/// Entropy calibration needs this many observed values per histogram bin on average; tensors with
/// fewer keep their min-max range.
pub const MIN_VALUES_PER_BIN: usize = 8;

/// TensorRT-style KL calibration on the magnitude histogram: the threshold `t` minimizing
/// KL(P‖Q), where P is the histogram clipped at `t` (outliers folded into the last bin) and Q
/// is P quantized to 128 levels and expanded back. The range is the observed one clipped to ±t.
///
/// The search runs, as TensorRT's, on [`BINS`] (2048) bins over `[0, max |x|]`, whatever the
/// order of the calibration samples: the one-pass magnitude histogram (twice as many bins, at
/// least [`BINS`] of them within that range after widening) is re-binned onto them
/// ([`Histogram::rebin`]). Searched directly, a histogram widened to nearly twice the data's
/// range would leave the data as few as 1025 bins, coarsening both the threshold grid and the
/// smallest threshold (128 bins) by up to 2x, depending on the first sample's range.
pub fn entropy(h: &Histograms) -> Range {
    let a = &h.abs;
    let (lo, hi) = h.signed.observed();
    let amax = lo.abs().max(hi.abs());
    // KL on a sparse histogram (few values per bin) clips at noise: keep the observed range.
    if a.total() < (MIN_VALUES_PER_BIN * BINS) as u64 || amax <= a.lo as f64 {
        return with_zero(lo, hi);
    }
    let mut hist = a.rebin(amax, BINS);
    let n = hist.len();
    let w = amax / n as f64;
    // Bin 0 holds the exact zeros (ReLU outputs, padding), which int8 represents exactly: left in,
    // their mass would dominate the first quantized level and push the threshold far down.
    hist[0] = 0.0;
    let mut best = (f64::INFINITY, n);
    let mut p = vec![0.0f64; n];
    let mut q = vec![0.0f64; n];
    for i in (LEVELS..=n).step_by(4) {
        p[..i].copy_from_slice(&hist[..i]);
        let outliers: f64 = hist[i..].iter().sum();
        p[i - 1] += outliers;
        // Quantize hist[..i] into LEVELS chunks, spreading each chunk's mass over its non-empty bins.
        for j in 0..LEVELS {
            let start = j * i / LEVELS;
            let end = ((j + 1) * i / LEVELS).max(start + 1).min(i);
            let mass: f64 = hist[start..end].iter().sum();
            let nonzero = hist[start..end].iter().filter(|&&x| x > 0.0).count();
            for k in start..end {
                q[k] = if hist[k] > 0.0 {
                    mass / nonzero as f64
                } else {
                    0.0
                };
            }
        }
        let ps: f64 = p[..i].iter().sum();
        let qs: f64 = q[..i].iter().sum();
        if ps == 0.0 || qs == 0.0 {
            continue;
        }
        let mut kl = 0.0;
        for k in 0..i {
            if p[k] > 0.0 {
                let pk = p[k] / ps;
                let qk = (q[k] / qs).max(1e-12);
                kl += pk * (pk / qk).ln();
            }
        }
        if kl < best.0 {
            best = (kl, i);
        }
    }
    let t = best.1 as f64 * w;
    with_zero(lo.max(-t), hi.min(t))
}

/// Expected squared error of quantizing the histogram to asymmetric int8 over `[lo, hi]`.
pub fn quant_mse(h: &Histogram, lo: f64, hi: f64) -> f64 {
    let lo = lo.min(0.0);
    let hi = hi.max(0.0);
    let scale = (hi - lo) / 255.0;
    if scale <= 0.0 {
        return h
            .counts
            .iter()
            .enumerate()
            .map(|(i, &c)| c as f64 * h.center(i).powi(2))
            .sum();
    }
    let zp = (-128.0 - lo / scale).round().clamp(-128.0, 127.0);
    h.counts
        .iter()
        .enumerate()
        .filter(|(_, &c)| c > 0)
        .map(|(i, &c)| {
            let x = h.center(i);
            let q = ((x / scale).round() + zp).clamp(-128.0, 127.0);
            let d = (q - zp) * scale;
            c as f64 * (x - d).powi(2)
        })
        .sum()
}

/// The range `[f·min, f·max]` (the observed range), f in {0.01 … 1}, of least expected squared
/// quantization error.
pub fn mse(h: &Histogram) -> Range {
    let (lo, hi) = h.observed();
    let mut best = (f64::INFINITY, 1.0);
    for k in 1..=100 {
        let f = k as f64 / 100.0;
        let e = quant_mse(h, lo * f, hi * f);
        if e < best.0 {
            best = (e, f);
        }
    }
    with_zero(lo * best.1, hi * best.1)
}

#[cfg(test)]
mod tests {
    use super::super::stats::Histograms;
    use super::*;

    /// Gaussian-ish samples plus a few far outliers.
    fn data() -> Vec<f32> {
        let mut s = 12345u64;
        let mut v = Vec::new();
        for _ in 0..200_000 {
            let mut acc = 0.0;
            for _ in 0..4 {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                acc += (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            }
            v.push(acc);
        }
        v.extend([40.0, -35.0, 38.0]);
        v
    }

    fn hist(v: &[f32]) -> Histograms {
        let mn = v.iter().cloned().fold(f32::INFINITY, f32::min);
        let mx = v.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let mut h = Histograms::new(mn, mx);
        h.update(v);
        h
    }

    #[test]
    fn clipping_methods_ignore_outliers_and_keep_zero() {
        let v = data();
        let h = hist(&v);
        for (name, r) in [
            ("percentile", percentile(&h.signed, 99.99)),
            ("entropy", entropy(&h)),
        ] {
            assert!(r.min <= 0.0 && r.max >= 0.0, "{name} {r:?}");
            // The bulk lies within ±2; outliers reach ±40: these methods clip well inside them.
            assert!(r.max < 20.0 && r.min > -20.0, "{name} {r:?}");
            assert!(r.max > 0.8 && r.min < -0.8, "{name} {r:?}");
        }
        // MSE weighs the three outliers' clipping error against the rounding error of the bulk:
        // it clips, but less.
        let r = mse(&h.signed);
        assert!(r.max < 38.0 && r.min > -35.0 && r.max > 2.0, "mse {r:?}");
    }

    /// The entropy range does not depend on the order of the samples: a histogram that widened
    /// from a first sample of about half the final magnitude (the data then fills just over half
    /// of its bins) gives the range of one built over the final range at once. Searched on the
    /// widened bins directly, the smallest candidate threshold (128 bins) would be twice as far
    /// out (here ~5.0 instead of ~2.5, the bulk lying within ±2).
    #[test]
    fn entropy_does_not_depend_on_the_first_samples_range() {
        let mut v = data();
        v.extend([19.9, -19.9]);
        let direct = entropy(&hist(&v));
        // First sample: the two ±19.9 values and a bit of the bulk; |x| then widens 19.9 → 39.8
        // → 79.6 to hold the outlier at 40.
        let first: Vec<f32> = [19.9, -19.9].iter().chain(&v[..1000]).copied().collect();
        let mut widened = Histograms::new(-19.9, 19.9);
        widened.update(&first);
        widened.update(&v[1000..v.len() - 2]);
        assert!(widened.abs.hi > 79.0, "{}", widened.abs.hi);
        assert_eq!(widened.abs.total(), v.len() as u64);
        let r = entropy(&widened);
        // Within two bins of the 2048 over [0, 40].
        let tol = 2.0 * 40.0 / 2048.0;
        assert!(
            (r.max - direct.max).abs() <= tol && (r.min - direct.min).abs() <= tol,
            "widened {r:?} vs direct {direct:?}"
        );
        assert!(direct.max < 3.0 && direct.min > -3.0, "{direct:?}");
    }

    #[test]
    fn mse_range_beats_minmax_on_its_own_objective() {
        let v = data();
        let h = hist(&v);
        let r = mse(&h.signed);
        let e_mse = quant_mse(&h.signed, r.min as f64, r.max as f64);
        let e_mm = quant_mse(&h.signed, h.signed.lo as f64, h.signed.hi as f64);
        assert!(e_mse < e_mm, "{e_mse} vs {e_mm}");
    }

    #[test]
    fn percentile_100_is_the_full_range() {
        let v: Vec<f32> = (0..1000).map(|i| i as f32 / 100.0).collect();
        let h = hist(&v);
        let r = percentile(&h.signed, 100.0);
        assert_eq!(r.min, 0.0);
        assert!((r.max - 9.99).abs() < 1e-3, "{r:?}");
    }
}
