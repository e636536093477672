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

/// A fixed-range histogram.
#[derive(Debug, Clone)]
pub struct Histogram {
    /// Left edge of bin 0.
    pub lo: f32,
    /// Right edge of the last bin.
    pub hi: f32,
    /// Counts.
    pub counts: Vec<u64>,
}

impl Histogram {
    /// Empty histogram over [lo, hi].
    pub fn new(lo: f32, hi: f32) -> Self {
        Histogram {
            lo,
            hi,
            counts: vec![0; BINS],
        }
    }

    /// Bin width.
    pub fn width(&self) -> f64 {
        (self.hi as f64 - self.lo as f64) / self.counts.len() as f64
    }

    /// Adds one value (clamped into range; non-finite ignored).
    #[inline]
    pub fn add(&mut self, x: f32) {
        if !x.is_finite() {
            return;
        }
        let w = self.width();
        let i = if w > 0.0 {
            (((x as f64 - self.lo as f64) / w) as i64).clamp(0, self.counts.len() as i64 - 1)
                as usize
        } else {
            0
        };
        self.counts[i] += 1;
    }

    /// Centre of bin `i`.
    pub fn center(&self, i: usize) -> f64 {
        self.lo as f64 + (i as f64 + 0.5) * self.width()
    }

    /// Total count.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// The two histograms the range searches use: signed values over [min, max], magnitudes over [0, max |x|].
#[derive(Debug, Clone)]
pub struct Histograms {
    /// Signed values.
    pub signed: Histogram,
    /// Magnitudes.
    pub abs: Histogram,
}

impl Histograms {
    /// Empty histograms for a tensor of range [min, max].
    pub fn new(min: f32, max: f32) -> Self {
        let amax = min.abs().max(max.abs());
        Histograms {
            signed: Histogram::new(min, max),
            abs: Histogram::new(0.0, amax),
        }
    }

    /// Folds in values.
    pub fn update(&mut self, v: &[f32]) {
        for &x in v {
            self.signed.add(x);
            self.abs.add(x.abs());
        }
    }
}
