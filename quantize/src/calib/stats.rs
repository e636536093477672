//! Running statistics of one tensor over the calibration set.

/// Observed minimum and maximum (NaNs ignored).
#[derive(Debug, Clone, Copy)]
pub struct MinMax {
    /// Smallest value seen.
    pub min: f32,
    /// Largest value seen.
    pub max: f32,
}

impl Default for MinMax {
    fn default() -> Self {
        MinMax {
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
        }
    }
}

impl MinMax {
    /// Folds in values.
    pub fn update(&mut self, v: &[f32]) {
        for &x in v {
            if x.is_finite() {
                self.min = self.min.min(x);
                self.max = self.max.max(x);
            }
        }
        if self.min > self.max && !v.is_empty() {
            // Only non-finite values so far: keep an empty-but-valid range at zero.
            self.min = 0.0;
            self.max = 0.0;
        }
    }
}

/// Number of histogram bins.
pub const BINS: usize = 2048;

/// Number of bins of the magnitude histogram, twice [`BINS`]: widening doubles the range, so the
/// observed magnitudes can end up in just over half of the bins; with twice as many, at least
/// [`BINS`] bins lie within `[0, max |x|]` whatever the order of the samples, and the entropy
/// search re-bins them onto exactly [`BINS`] bins over that range ([`Histogram::rebin`]).
pub const ABS_BINS: usize = 2 * BINS;

/// A histogram over `[lo, hi]` with a fixed number of bins that widens itself, without
/// re-binning error, when values fall outside: [`Histogram::cover`] doubles the bin width and
/// merges neighbouring bins in pairs. This lets one pass over the calibration data fill it.
#[derive(Debug, Clone)]
pub struct Histogram {
    /// Left edge of bin 0.
    pub lo: f32,
    /// Right edge of the last bin.
    pub hi: f32,
    /// Counts.
    pub counts: Vec<u64>,
    /// Smallest value added (+inf while empty).
    pub min: f32,
    /// Largest value added (-inf while empty).
    pub max: f32,
    /// How many of the counts are values at `hi` (in the last bin): when the histogram widens
    /// to the right they move to the bin that starts at the old `hi`, where a histogram built
    /// over the wider range puts them.
    pub at_hi: u64,
}

impl Histogram {
    /// Empty histogram over [lo, hi] with [`BINS`] bins.
    pub fn new(lo: f32, hi: f32) -> Self {
        Histogram::with_bins(lo, hi, BINS)
    }

    /// Empty histogram over [lo, hi] with `bins` bins (at least 2, an even number: widening
    /// merges bins in pairs).
    pub fn with_bins(lo: f32, hi: f32, bins: usize) -> Self {
        let bins = bins.max(2) & !1;
        Histogram {
            lo,
            hi,
            counts: vec![0; bins],
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            at_hi: 0,
        }
    }

    /// Bin width.
    pub fn width(&self) -> f64 {
        (self.hi as f64 - self.lo as f64) / self.counts.len() as f64
    }

    fn index(&self, x: f32) -> usize {
        let w = self.width();
        if w > 0.0 {
            (((x as f64 - self.lo as f64) / w) as i64).clamp(0, self.counts.len() as i64 - 1)
                as usize
        } else {
            0
        }
    }

    /// Widens the range until it holds `[lo, hi]`: each step doubles the width towards the side
    /// that needs room and merges bins `2i, 2i + 1`, so every count stays in a bin covering its
    /// value. A zero-width histogram (all values equal so far) restarts over the union.
    ///
    /// The counts then equal those of a histogram filled directly over the widened range,
    /// exactly when the widened edges are exact in f32 (as with dyadic ranges); otherwise the
    /// new edge `lo + 2 (hi - lo)` (or `hi - 2 (hi - lo)`) is rounded to f32 and a value within
    /// that rounding of a bin edge may sit in the neighbouring bin.
    pub fn cover(&mut self, lo: f32, hi: f32) {
        if !(lo.is_finite() && hi.is_finite()) || (lo >= self.lo && hi <= self.hi) {
            return;
        }
        let n = self.counts.len();
        if self.hi <= self.lo {
            let (v, c) = (self.lo, self.total());
            let (min, max) = (self.min, self.max);
            *self = Histogram::with_bins(lo.min(v), hi.max(v), n);
            let i = self.index(v);
            self.counts[i] += c;
            if v >= self.hi {
                self.at_hi = c;
            }
            (self.min, self.max) = (min, max);
            return;
        }
        while hi > self.hi && self.hi.is_finite() {
            let mut c = vec![0u64; n];
            for (i, x) in self.counts.iter().enumerate() {
                c[i / 2] += x;
            }
            // The values at the old top edge belong to the bin that starts there.
            c[n / 2 - 1] -= self.at_hi;
            c[n / 2] += self.at_hi;
            self.at_hi = 0;
            self.counts = c;
            self.hi = self.lo + 2.0 * (self.hi - self.lo);
        }
        while lo < self.lo && self.lo.is_finite() {
            let mut c = vec![0u64; n];
            for (i, x) in self.counts.iter().enumerate() {
                c[n / 2 + i / 2] += x;
            }
            self.counts = c;
            self.lo = self.hi - 2.0 * (self.hi - self.lo);
        }
    }

    /// Adds one value (clamped into range; non-finite ignored).
    #[inline]
    pub fn add(&mut self, x: f32) {
        if !x.is_finite() {
            return;
        }
        let i = self.index(x);
        self.counts[i] += 1;
        if x >= self.hi {
            self.at_hi += 1;
        }
        self.min = self.min.min(x);
        self.max = self.max.max(x);
    }

    /// Centre of bin `i`.
    pub fn center(&self, i: usize) -> f64 {
        self.lo as f64 + (i as f64 + 0.5) * self.width()
    }

    /// Total count.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The counts re-binned onto `bins` equal bins over `[self.lo, hi]` (`hi > self.lo`), each
    /// bin's count spread evenly over the part of it below the observed maximum (no value lies
    /// above that) and split between the target bins in proportion to their overlap; counts
    /// beyond `hi` go to the last bin. The total is kept. A target bin narrower than a source
    /// bin may so get a share of values that all sit in its neighbour: the error is at most one
    /// source bin's width.
    pub fn rebin(&self, hi: f64, bins: usize) -> Vec<f64> {
        let mut out = vec![0.0f64; bins.max(1)];
        let n = out.len();
        let lo = self.lo as f64;
        let span = hi - lo;
        let w = self.width();
        let last = n - 1;
        if span <= 0.0 || w <= 0.0 {
            out[0] = self.total() as f64;
            return out;
        }
        let top = if self.min <= self.max {
            self.max as f64
        } else {
            self.hi as f64
        };
        // Target position (in target bins) of a value.
        let pos = |x: f64| (x - lo) / span * n as f64;
        for (i, &c) in self.counts.iter().enumerate() {
            if c == 0 {
                continue;
            }
            let c = c as f64;
            let a = lo + i as f64 * w;
            let b = (a + w).min(top).min(hi);
            if b <= a {
                // The bin starts at or above the top of the data or of the target range: its
                // values sit at its left edge.
                out[(pos(a).max(0.0) as usize).min(last)] += c;
                continue;
            }
            let (pa, pb) = (pos(a).max(0.0), pos(b));
            let mut k = (pa as usize).min(last);
            if pb <= pa {
                out[k] += c;
                continue;
            }
            let mut from = pa;
            while from < pb && k <= last {
                let to = if k == last {
                    pb
                } else {
                    pb.min((k + 1) as f64)
                };
                out[k] += c * (to - from) / (pb - pa);
                from = to;
                k += 1;
            }
        }
        out
    }

    /// The observed range `[min, max]` (`[lo, hi]` while empty).
    pub fn observed(&self) -> (f64, f64) {
        if self.min <= self.max {
            (self.min as f64, self.max as f64)
        } else {
            (self.lo as f64, self.hi as f64)
        }
    }
}

/// The two histograms the range searches use: signed values, and magnitudes from 0.
#[derive(Debug, Clone)]
pub struct Histograms {
    /// Signed values.
    pub signed: Histogram,
    /// Magnitudes.
    pub abs: Histogram,
}

impl Histograms {
    /// Empty histograms starting over [min, max] (they widen as values arrive).
    pub fn new(min: f32, max: f32) -> Self {
        let amax = min.abs().max(max.abs());
        Histograms {
            signed: Histogram::new(min, max),
            abs: Histogram::with_bins(0.0, amax, ABS_BINS),
        }
    }

    /// Folds in values, widening both histograms first when the values fall outside them.
    pub fn update(&mut self, v: &[f32]) {
        let mut mm = MinMax::default();
        mm.update(v);
        if mm.min <= mm.max {
            self.signed.cover(mm.min, mm.max);
            self.abs.cover(0.0, mm.min.abs().max(mm.max.abs()));
        }
        for &x in v {
            self.signed.add(x);
            self.abs.add(x.abs());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Filled in batches that keep widening it, the histogram holds every value in a bin that
    /// covers it, and matches one filled over the final range directly.
    #[test]
    fn widening_keeps_every_count_in_a_bin_covering_its_value() {
        // Dyadic values and edges: the widened edges are exact, so the comparison is too.
        let batches: Vec<Vec<f32>> = vec![
            vec![0.125, 0.25, 0.375],
            vec![-0.5, 0.25],
            vec![3.0, 2.5, -0.0078125],
            vec![-7.0, 0.0],
            vec![0.1875],
        ];
        let mut h = Histograms::new(0.125, 0.375);
        for b in &batches {
            h.update(b);
        }
        let all: Vec<f32> = batches.concat();
        assert_eq!(h.signed.total(), all.len() as u64);
        assert_eq!((h.signed.min, h.signed.max), (-7.0, 3.0));
        assert!(h.signed.lo <= -7.0 && h.signed.hi >= 3.0);
        // Every count sits in a bin whose closed interval holds its value: below each bin edge
        // b there are at least #{x < b} and at most #{x <= b} counts. (A value exactly on an edge
        // may sit on either side: the first sample's maximum sits at the top edge, in the last
        // bin, which widening merges into a bin that ends at that value.)
        let hs = &h.signed;
        let mut below = 0u64;
        for k in 0..=hs.counts.len() {
            let edge = hs.lo as f64 + k as f64 * hs.width();
            let lt = all.iter().filter(|&&x| (x as f64) < edge).count() as u64;
            let le = all.iter().filter(|&&x| (x as f64) <= edge).count() as u64;
            assert!(
                lt <= below && below <= le,
                "edge {k} ({edge}): {below} counts below"
            );
            if k < hs.counts.len() {
                below += hs.counts[k];
            }
        }
        assert_eq!(h.abs.lo, 0.0);
        assert!(h.abs.hi >= 7.0 && h.abs.total() == all.len() as u64);
        // Equal values first (zero width), then a spread.
        let mut z = Histograms::new(2.0, 2.0);
        z.update(&[2.0, 2.0]);
        z.update(&[-1.0, 4.0]);
        assert_eq!(z.signed.total(), 4);
        let i = z.signed.index(2.0);
        assert_eq!(z.signed.counts[i], 2);
    }

    /// Re-binning keeps the total; onto a grid that halves the bins over the same range it is the
    /// pairwise sum; onto an unaligned range ([0, max]) every value's count stays within one
    /// source bin of where a histogram built on the target grid puts it.
    #[test]
    fn rebin_keeps_counts_within_a_source_bin_of_their_values() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut uniform = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 40) as f32 / (1u64 << 24) as f32
        };
        // Skewed magnitudes in [0, 7.3]: dense near 0, a few large.
        let mut v: Vec<f32> = (0..20_000).map(|_| 7.3 * uniform().powi(3)).collect();
        v.extend([0.0, 0.0, 7.3]);
        let mut h = Histogram::with_bins(0.0, 8.0, ABS_BINS);
        for &x in &v {
            h.add(x);
        }
        let total = v.len() as f64;
        let halved = h.rebin(8.0, BINS);
        assert_eq!(halved.len(), BINS);
        for (k, &c) in halved.iter().enumerate() {
            assert_eq!(c, (h.counts[2 * k] + h.counts[2 * k + 1]) as f64, "bin {k}");
        }
        let out = h.rebin(7.3, BINS);
        assert!((out.iter().sum::<f64>() - total).abs() < 1e-6);
        let (tw, sw) = (7.3 / BINS as f64, h.width());
        // Counts below each target edge.
        let cum: Vec<f64> = std::iter::once(0.0)
            .chain(out.iter().scan(0.0, |acc, &c| {
                *acc += c;
                Some(*acc)
            }))
            .collect();
        for (k, &below) in cum.iter().enumerate() {
            let edge = k as f64 * tw;
            let lo = v.iter().filter(|&&x| (x as f64) < edge - sw).count() as f64;
            let hi = v.iter().filter(|&&x| (x as f64) <= edge + sw).count() as f64;
            assert!(
                lo - 1e-6 <= below && below <= hi + 1e-6,
                "edge {k}: {below} not in [{lo}, {hi}]"
            );
        }
    }

    /// A histogram widened batch by batch has exactly the counts of one filled directly over
    /// its final range with the same data (random values; the first batch's range is dyadic so
    /// the widened edges are exact in f32). The first batch's extremes sit on the starting
    /// edges, including the top edge that later becomes an inner bin edge.
    #[test]
    fn widened_histogram_equals_one_built_at_the_final_bin_width() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut uniform = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 40) as f32 / (1u64 << 24) as f32
        };
        let mut batches: Vec<Vec<f32>> = Vec::new();
        let mut first: Vec<f32> = (0..500).map(|_| 2.0 * uniform() - 1.0).collect();
        first.extend([-1.0, 1.0, 1.0]);
        batches.push(first);
        // Growing spreads, skewed both ways, so the range widens several times on each side.
        for (k, (a, b)) in [
            (-1.5f32, 2.5f32),
            (-0.5, 7.3),
            (-19.0, 3.0),
            (-2.0, 41.7),
            (-90.1, 0.2),
        ]
        .into_iter()
        .enumerate()
        {
            let n = 300 + 100 * k;
            batches.push((0..n).map(|_| a + (b - a) * uniform()).collect());
        }
        let mut h = Histograms::new(-1.0, 1.0);
        for b in &batches {
            h.update(b);
        }
        let all: Vec<f32> = batches.concat();
        assert!(
            h.signed.lo <= -90.0 && h.signed.hi >= 41.7,
            "{} {}",
            h.signed.lo,
            h.signed.hi
        );
        let mut signed = Histogram::new(h.signed.lo, h.signed.hi);
        let mut abs = Histogram::with_bins(h.abs.lo, h.abs.hi, h.abs.counts.len());
        for &x in &all {
            signed.add(x);
            abs.add(x.abs());
        }
        assert_eq!(h.signed.total(), all.len() as u64);
        assert_eq!(h.signed.counts, signed.counts);
        assert_eq!(h.abs.counts, abs.counts);
        assert_eq!((h.signed.min, h.signed.max), (signed.min, signed.max));
        // The counts are spread (not all in a few bins), so the comparison means something.
        assert!(signed.counts.iter().filter(|&&c| c > 0).count() > 500);
    }
}
