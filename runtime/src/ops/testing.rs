//! Shared helpers for the kernel tests: a seeded generator of shapes, values and quantization
//! parameters (edge values included, never all zeros), the f64 oracle's quantize/dequantize,
//! and comparisons that print the first mismatch.
//!
//! Each op's `tests.rs` builds random `Case`s from a [`Rng`] seeded by proptest, so a failure
//! prints the seed that reproduces it.

use super::ClampI8;
use crate::quant::quantize_multiplier;
use std::vec::Vec;

/// Proptest cases per random test: enough to hit odd shapes, cheap at opt-level 1.
pub const CASES: u32 = 64;

/// A small deterministic generator (SplitMix64).
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i32, hi: i32) -> i32 {
        let span = (hi as i64 - lo as i64 + 1) as u64;
        (lo as i64 + (self.next_u64() % span) as i64) as i32
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `true` with probability `1/n`.
    pub fn one_in(&mut self, n: u32) -> bool {
        self.next_u64().is_multiple_of(n as u64)
    }

    /// A dimension in `1..=max`, 1 more often than uniform (for 1xN and Nx1 shapes).
    pub fn dim(&mut self, max: u32) -> u32 {
        if self.one_in(5) {
            1
        } else {
            self.range(1, max as i32) as u32
        }
    }

    /// Log-uniform in `[lo, hi)`.
    pub fn log_uniform(&mut self, lo: f64, hi: f64) -> f64 {
        (lo.ln() + self.unit() * (hi.ln() - lo.ln())).exp()
    }

    /// A tensor scale, log-uniform in `[1e-3, 0.5)`.
    pub fn scale(&mut self) -> f64 {
        self.log_uniform(1e-3, 0.5)
    }

    /// A zero point in `[-128, 127]`, at the edges more often than uniform.
    pub fn zero_point(&mut self) -> i32 {
        match self.next_u64() % 8 {
            0 => -128,
            1 => 127,
            2 => 0,
            _ => self.range(-128, 127),
        }
    }

    /// `n` int8 values covering the whole range, with -128 and 127 included when `n >= 2`,
    /// never all zeros.
    pub fn i8_vec(&mut self, n: usize) -> Vec<i8> {
        let mut v: Vec<i8> = (0..n).map(|_| self.range(-128, 127) as i8).collect();
        if n >= 2 {
            let a = self.range(0, n as i32 - 1) as usize;
            let b = (a + 1 + self.range(0, n as i32 - 2) as usize) % n;
            v[a] = -128;
            v[b] = 127;
        } else if n == 1 && v[0] == 0 {
            v[0] = if self.one_in(2) { -128 } else { 127 };
        }
        v
    }

    /// `n` symmetric weights in `[-127, 127]`, with both extremes when `n >= 2`, never all zeros.
    pub fn weights(&mut self, n: usize) -> Vec<i8> {
        let mut v: Vec<i8> = (0..n).map(|_| self.range(-127, 127) as i8).collect();
        if n >= 2 {
            let a = self.range(0, n as i32 - 1) as usize;
            let b = (a + 1 + self.range(0, n as i32 - 2) as usize) % n;
            v[a] = -127;
            v[b] = 127;
        } else if n == 1 && v[0] == 0 {
            v[0] = 127;
        }
        v
    }

    /// `n` int32 values in `[-bound, bound]`.
    pub fn i32_vec(&mut self, n: usize, bound: i32) -> Vec<i32> {
        (0..n).map(|_| self.range(-bound, bound)).collect()
    }

    /// `n` f32 values uniform in `[-amp, amp]`, never all zeros.
    pub fn f32_vec(&mut self, n: usize, amp: f64) -> Vec<f32> {
        let mut v: Vec<f32> = (0..n)
            .map(|_| ((self.unit() * 2.0 - 1.0) * amp) as f32)
            .collect();
        if let Some(x) = v.first_mut() {
            if *x == 0.0 {
                *x = amp as f32;
            }
        }
        v
    }

    /// A fused clamp for an output with `zero_point`: none, ReLU, or a random non-empty range.
    pub fn clamp(&mut self, zero_point: i32) -> ClampI8 {
        match self.next_u64() % 4 {
            0 => ClampI8::relu(zero_point),
            1 => {
                let a = self.range(-128, 127);
                let b = self.range(-128, 127);
                ClampI8 {
                    min: a.min(b) as i8,
                    max: a.max(b) as i8,
                }
            }
            _ => ClampI8::NONE,
        }
    }

    /// Per-channel real multipliers `s_in * s_w[c] / s_out` for an accumulation over `depth`
    /// products: mostly around the value that keeps outputs in range, one in six in `[1, 4)` so
    /// that positive (left) shifts are exercised too.
    pub fn channel_multipliers(&mut self, channels: usize, depth: usize) -> Vec<f64> {
        let typical = 48.0 / (75.0 * 75.0 * (depth as f64).sqrt());
        (0..channels)
            .map(|_| {
                if self.one_in(6) {
                    self.log_uniform(1.0, 4.0)
                } else {
                    self.log_uniform(typical / 8.0, typical * 8.0)
                }
            })
            .collect()
    }
}

/// `quantize_multiplier(real)`, which the tests' parameters always satisfy.
pub fn multiplier(real: f64) -> (i32, i32) {
    quantize_multiplier(real).unwrap_or_else(|| panic!("multiplier {real} not representable"))
}

/// Splits per-channel real multipliers into `(multipliers, shifts)`.
pub fn multipliers(reals: &[f64]) -> (Vec<i32>, Vec<i32>) {
    reals.iter().map(|&r| multiplier(r)).unzip()
}

/// The oracle's quantization: `clamp(round(x / scale) + zero_point)` in f64.
pub fn quantize_f64(x: f64, scale: f64, zero_point: i32, clamp: ClampI8) -> i8 {
    let q = (x / scale).round() + zero_point as f64;
    q.max(clamp.min as f64).min(clamp.max as f64) as i8
}

/// Dequantizes a tensor to f64.
pub fn dequantize(q: &[i8], scale: f64, zero_point: i32) -> Vec<f64> {
    q.iter()
        .map(|&v| (v as i32 - zero_point) as f64 * scale)
        .collect()
}

/// Asserts `|got - want| <= lsb` element-wise, printing the first mismatch.
pub fn assert_within_lsb(got: &[i8], want: &[i8], lsb: i32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g as i32 - w as i32).abs() <= lsb,
            "{what}: element {i}: kernel {g}, f64 oracle {w} (bound {lsb} LSB)"
        );
    }
}

/// Asserts `|got - want| <= abs + rel * |want|` element-wise, printing the first mismatch.
pub fn assert_close_f32(got: &[f32], want: &[f64], rel: f64, abs: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let tol = abs + rel * w.abs();
        assert!(
            (g as f64 - w).abs() <= tol,
            "{what}: element {i}: kernel {g}, f64 oracle {w} (tolerance {tol})"
        );
    }
}

/// Converts an f32 tensor to f64 for the oracle.
pub fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// Applies an f32 clamp in f64.
pub fn clamp_f64(x: f64, c: super::ClampF32) -> f64 {
    x.max(c.min as f64).min(c.max as f64)
}

/// Test inputs around the thresholds of a piecewise f32 function: each of `ts` and the `n` values
/// above and below it, one ulp apart (its bit pattern stepped up and down), plus the special
/// values ±0, ±inf, NaN and ±1e-40 (subnormal).
pub fn f32_edges(ts: &[f32], n: usize) -> Vec<f32> {
    let mut xs = Vec::new();
    for &t in ts {
        let (mut up, mut down) = (t, t);
        for _ in 0..n {
            xs.push(up);
            xs.push(down);
            up = f32::from_bits(up.to_bits() + 1);
            down = f32::from_bits(down.to_bits() - 1);
        }
    }
    xs.extend([
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        1e-40,
        -1e-40,
    ]);
    xs
}

/// Bits of `v`, with every NaN as one value (its payload may depend on operand order): how the
/// bit-exactness tests of f32 kernels compare outputs.
pub fn f32_bits(v: &[f32]) -> Vec<u32> {
    v.iter()
        .map(|x| if x.is_nan() { u32::MAX } else { x.to_bits() })
        .collect()
}

/// Runs a fused int8 op twice over a scratch of `scratch_len` NaNs — with this machine's
/// kernels (`run(None, ..)`) and with the reference table (`run(Some(table), ..)`) — and asserts
/// that both write `want`.
pub fn assert_fused_both_tables(
    want: &[i8],
    scratch_len: usize,
    what: &str,
    mut run: impl FnMut(Option<&super::KernelTable>, &mut [f32], &mut [i8]),
) {
    let reference = super::KernelTable::reference();
    for table in [None, Some(&reference)] {
        let mut scratch = vec![f32::NAN; scratch_len];
        let mut got = vec![0i8; want.len()];
        run(table, &mut scratch, &mut got);
        let which = if table.is_some() {
            "reference table"
        } else {
            "this machine's kernels"
        };
        assert_eq!(got, want, "{what}: {which}");
    }
}
