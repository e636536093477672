//! Vectorizable `exp` and `erf` for the fused kernels' elementwise loops.
//!
//! `f32::exp` is a call into libm per element, which no loop around it can vectorize; GELU
//! (forward and backward) and the attention softmax spent a quarter of a training step there.
//! These are branch-free polynomial forms that the compiler vectorizes, and the slice kernels
//! below are compiled twice: for the baseline target and, picked at run time, for AVX2 + FMA.

/// `e^x` to about 2 ulp for `x` in `[-87, 88]` (clamped outside): `2^n · p(r)` with
/// `x = n ln 2 + r`, `|r| ≤ ln2 / 2` (Cody–Waite split of ln 2), `p` the degree-7 Taylor
/// polynomial.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // adding and removing 1.5·2^23 rounds to the nearest integer without a rounding call
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * LOG2E + ROUND;
    let n = shifted - ROUND;
    // the integer n sits in the low mantissa bits of `shifted`: read it there (a float-to-int
    // cast would not vectorize)
    let ni = shifted.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r / 5040.0))))));
    let scale = f32::from_bits(((ni + 127) as u32) << 23);
    p * scale
}

/// `erf(x)` to 6e-7 absolute (Abramowitz & Stegun 7.1.26: 1.5e-7, plus f32 rounding; the form
/// PyTorch's vectorized CPU GELU uses), with [`exp`].
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    erf_given_exp(x, exp(-x * x))
}

/// [`erf`] with `e = exp(-x²)` supplied (GELU's backward needs that exponential anyway).
#[inline(always)]
fn erf_given_exp(x: f32, e: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [
        0.254_829_6,
        -0.284_496_74,
        1.421_413_7,
        -1.453_152_1,
        1.061_405_4,
    ];
    let ax = x.abs();
    let t = 1.0 / (1.0 + P * ax);
    let poly = ((((A[4] * t + A[3]) * t + A[2]) * t + A[1]) * t + A[0]) * t;
    let r = 1.0 - poly * e;
    r.copysign(x)
}

/// `1/sqrt(2)`.
const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
/// `1/sqrt(2π)`.
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

/// Compiles `$body` (a function of the slices) twice and picks the AVX2 + FMA build at run
/// time where the CPU has it.
macro_rules! multiversion {
    ($(#[$m:meta])* pub fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? $body:block) => {
        $(#[$m])*
        pub fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has the features `avx2` was compiled for (checked above).
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

multiversion! {
    /// `(mean, 1/sqrt(var + eps))` of a row (biased variance).
    pub fn row_stats(row: &[f32], eps: f32) -> (f32, f32) {
        let n = row.len() as f32;
        let mean = lanes(row, 0.0, |a, b| a + b) / n;
        let mut acc = [0f32; 8];
        let chunks = row.chunks_exact(8);
        let mut var = chunks.remainder().iter().map(|v| (v - mean) * (v - mean)).sum::<f32>();
        for c in chunks {
            for i in 0..8 {
                acc[i] += (c[i] - mean) * (c[i] - mean);
            }
        }
        var += acc.iter().sum::<f32>();
        (mean, 1.0 / (var / n + eps).sqrt())
    }
}

multiversion! {
    #[allow(clippy::too_many_arguments)]
    /// Layer norm backward of one row: `dx` from `x`, `gamma` and `dy`, with `dgamma`,
    /// `dbeta` accumulated; `xhat` is scratch as long as the row.
    pub fn layer_norm_backward_row(
        x: &[f32],
        g: &[f32],
        dy: &[f32],
        eps: f32,
        xhat: &mut [f32],
        dx: &mut [f32],
        dgamma: &mut [f32],
        dbeta: &mut [f32]
    ) {
        let (mean, inv) = row_stats(x, eps);
        let n = x.len() as f32;
        for (h, &v) in xhat.iter_mut().zip(x) {
            *h = (v - mean) * inv;
        }
        for (((dg, db), &d), &h) in dgamma.iter_mut().zip(dbeta.iter_mut()).zip(dy).zip(xhat.iter()) {
            *dg += d * h;
            *db += d;
        }
        // dx reused as scratch for dy·gamma
        for ((o, &d), &gv) in dx.iter_mut().zip(dy).zip(g) {
            *o = d * gv;
        }
        let mean_d = lanes(dx, 0.0, |a, b| a + b) / n;
        let mut acc = [0f32; 8];
        let (dc, hc) = (dx.chunks_exact(8), xhat.chunks_exact(8));
        let mut sum_dx: f32 = dc.remainder().iter().zip(hc.remainder()).map(|(a, b)| a * b).sum();
        for (a, b) in dc.zip(hc) {
            for i in 0..8 {
                acc[i] += a[i] * b[i];
            }
        }
        sum_dx += acc.iter().sum::<f32>();
        let mean_dx = sum_dx / n;
        for (o, &h) in dx.iter_mut().zip(xhat.iter()) {
            *o = inv * (*o - mean_d - h * mean_dx);
        }
    }
}

/// Reduces `x` with `f` over eight interleaved lanes (so the loop vectorizes: one running
/// value would chain every step on the last), then across the lanes.
#[inline(always)]
fn lanes(x: &[f32], init: f32, f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [init; 8];
    let chunks = x.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            acc[i] = f(acc[i], c[i]);
        }
    }
    let mut r = tail.iter().fold(init, |a, &v| f(a, v));
    for a in acc {
        r = f(r, a);
    }
    r
}

multiversion! {
    /// `y = 0.5 x (1 + erf(x / √2))` elementwise (`y` as long as `x`).
    pub fn gelu_forward(x: &[f32], y: &mut [f32]) {
        for (y, &v) in y.iter_mut().zip(x) {
            *y = 0.5 * v * (1.0 + erf(v * FRAC_1_SQRT_2));
        }
    }
}

multiversion! {
    /// `dx = dy · (Φ(x) + x φ(x))` elementwise, the derivative of [`gelu_forward`].
    pub fn gelu_backward(x: &[f32], dy: &[f32], dx: &mut [f32]) {
        for ((d, &v), &g) in dx.iter_mut().zip(x).zip(dy) {
            // exp(-v²/2) is both the density's exponential and erf's exp(-(v/√2)²)
            let e = exp(-0.5 * v * v);
            let cdf = 0.5 * (1.0 + erf_given_exp(v * FRAC_1_SQRT_2, e));
            let pdf = FRAC_1_SQRT_2PI * e;
            *d = g * (cdf + v * pdf);
        }
    }
}

multiversion! {
    /// Softmax of `row · scale` in place (`scale > 0`).
    pub fn scaled_softmax(row: &mut [f32], scale: f32) {
        let max = lanes(row, f32::NEG_INFINITY, f32::max) * scale;
        for v in row.iter_mut() {
            *v = exp(*v * scale - max);
        }
        let inv = 1.0 / lanes(row, 0.0, |a, b| a + b);
        row.iter_mut().for_each(|v| *v *= inv);
    }
}

multiversion! {
    /// Layer norm of one row: `y = (x - mean) · rstd · gamma + beta`; returns `(mean, rstd)`
    /// (biased variance, as [`row_stats`]).
    pub fn layer_norm_forward_row(x: &[f32], g: &[f32], b: &[f32], eps: f32, y: &mut [f32]) -> (f32, f32) {
        let (mean, inv) = row_stats(x, eps);
        for (((y, &v), &gv), &bv) in y.iter_mut().zip(x).zip(g).zip(b) {
            *y = (v - mean) * inv * gv + bv;
        }
        (mean, inv)
    }
}

multiversion! {
    #[allow(clippy::too_many_arguments)]
    /// Layer norm backward of one row from the forward's `(mean, rstd)`: `dx += ∂L/∂x`
    /// (accumulated, for a residual stream), `dgamma += dy · x̂`, `dbeta += dy`.
    pub fn layer_norm_backward_row_acc(
        x: &[f32],
        mean: f32,
        rstd: f32,
        g: &[f32],
        dy: &[f32],
        dx: &mut [f32],
        dgamma: &mut [f32],
        dbeta: &mut [f32]
    ) {
        let n = x.len() as f32;
        // Σ dy·γ and Σ dy·γ·x̂ over eight lanes (chunks of eight, so no bounds checks stop
        // the loop from vectorizing)
        let (mut s1, mut s2) = ([0f32; 8], [0f32; 8]);
        let mut chunks = x
            .chunks_exact(8)
            .zip(dy.chunks_exact(8))
            .zip(g.chunks_exact(8))
            .zip(dgamma.chunks_exact_mut(8))
            .zip(dbeta.chunks_exact_mut(8));
        for ((((xc, dc), gc), dgc), dbc) in &mut chunks {
            for i in 0..8 {
                let h = (xc[i] - mean) * rstd;
                let d = dc[i] * gc[i];
                s1[i] += d;
                s2[i] += d * h;
                dgc[i] += dc[i] * h;
                dbc[i] += dc[i];
            }
        }
        let (mut t1, mut t2) = (0f32, 0f32);
        let full = x.len() / 8 * 8;
        for j in full..x.len() {
            let h = (x[j] - mean) * rstd;
            let d = dy[j] * g[j];
            t1 += d;
            t2 += d * h;
            dgamma[j] += dy[j] * h;
            dbeta[j] += dy[j];
        }
        let mean_d = (t1 + s1.iter().sum::<f32>()) / n;
        let mean_dh = (t2 + s2.iter().sum::<f32>()) / n;
        for (((o, &v), &d), &gv) in dx.iter_mut().zip(x).zip(dy).zip(g) {
            let h = (v - mean) * rstd;
            *o += rstd * (d * gv - mean_d - h * mean_dh);
        }
    }
}

multiversion! {
    /// [`gelu_forward`] of `x` into `y`, and `x` overwritten by the derivative
    /// `Φ(x) + x φ(x)` (what the backward multiplies the incoming gradient by): one
    /// exponential per element for both passes.
    pub fn gelu_forward_keep_derivative(x: &mut [f32], y: &mut [f32]) {
        for (v, y) in x.iter_mut().zip(y.iter_mut()) {
            let e = exp(-0.5 * *v * *v);
            let cdf = 0.5 * (1.0 + erf_given_exp(*v * FRAC_1_SQRT_2, e));
            *y = *v * cdf;
            *v = cdf + *v * (FRAC_1_SQRT_2PI * e);
        }
    }
}

multiversion! {
    /// `d ← d · k` elementwise.
    pub fn mul_in_place(d: &mut [f32], k: &[f32]) {
        for (d, &k) in d.iter_mut().zip(k) {
            *d *= k;
        }
    }
}

multiversion! {
    /// `acc[j] += Σ_i m[i, j]` over the rows of a row-major matrix with `acc.len()` columns
    /// (bias gradients).
    pub fn add_column_sums(m: &[f32], acc: &mut [f32]) {
        let c = acc.len();
        if c == 0 {
            return;
        }
        for row in m.chunks_exact(c) {
            for (a, &v) in acc.iter_mut().zip(row) {
                *a += v;
            }
        }
    }
}

multiversion! {
    /// Every row of `dst` (row-major, `bias.len()` columns) set to `src`'s row plus `bias`
    /// (`src` absent: `bias` alone): the initial value of a product accumulated on top.
    pub fn fill_rows_plus_bias(dst: &mut [f32], src: Option<&[f32]>, bias: &[f32]) {
        let c = bias.len();
        if c == 0 {
            return;
        }
        match src {
            Some(s) => {
                for (d, s) in dst.chunks_exact_mut(c).zip(s.chunks_exact(c)) {
                    for ((d, &s), &b) in d.iter_mut().zip(s).zip(bias) {
                        *d = s + b;
                    }
                }
            }
            None => {
                for d in dst.chunks_exact_mut(c) {
                    d.copy_from_slice(bias);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf in f64 by its Taylor series, as an oracle (|x| ≤ 5).
    fn erf_f64(x: f64) -> f64 {
        if x.abs() > 5.0 {
            return x.signum();
        }
        let (mut sum, mut term) = (0.0, x);
        for n in 0..200 {
            sum += term / (2 * n + 1) as f64;
            term *= -x * x / (n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn exp_and_erf_are_accurate() {
        for i in -8700..=8800 {
            let x = i as f32 / 100.0;
            let want = (x as f64).exp();
            let got = exp(x) as f64;
            assert!(
                ((got - want) / want).abs() < 4e-7,
                "exp({x}): {got} vs {want}"
            );
        }
        assert!(exp(-1e4) >= 0.0 && exp(-1e4) < 1e-37);
        for i in -500..=500 {
            let x = i as f32 / 100.0;
            let err = (erf(x) as f64 - erf_f64(x as f64)).abs();
            assert!(err < 6e-7, "erf({x}): error {err}");
        }
    }

    #[test]
    fn slice_kernels_match_scalar_forms() {
        let x: Vec<f32> = (0..203).map(|i| (i as f32 * 0.173).sin() * 5.0).collect();
        let dy: Vec<f32> = (0..203).map(|i| (i as f32 * 0.71).cos()).collect();
        let mut y = vec![0f32; 203];
        gelu_forward(&x, &mut y);
        let mut dx = vec![0f32; 203];
        gelu_backward(&x, &dy, &mut dx);
        for i in 0..203 {
            let v = x[i] as f64;
            let cdf = 0.5 * (1.0 + erf_f64(v / 2f64.sqrt()));
            assert!((y[i] as f64 - v * cdf).abs() < 2e-6);
            let d = dy[i] as f64
                * (cdf + v * (-0.5 * v * v).exp() / (2.0 * std::f64::consts::PI).sqrt());
            assert!((dx[i] as f64 - d).abs() < 2e-6);
        }
        // the forward that keeps the derivative gives the same values and derivative
        let (mut x2, mut y2) = (x.clone(), vec![0f32; 203]);
        gelu_forward_keep_derivative(&mut x2, &mut y2);
        let ones = vec![1f32; 203];
        let mut deriv = vec![0f32; 203];
        gelu_backward(&x, &ones, &mut deriv);
        for (a, b) in y2.iter().zip(&y) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        for (a, b) in x2.iter().zip(&deriv) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        let mut row = x.clone();
        scaled_softmax(&mut row, 0.5);
        let max = x
            .iter()
            .fold(f64::NEG_INFINITY, |a, &v| a.max(v as f64 * 0.5));
        let den: f64 = x.iter().map(|&v| (v as f64 * 0.5 - max).exp()).sum();
        for (r, &v) in row.iter().zip(&x) {
            assert!((*r as f64 - (v as f64 * 0.5 - max).exp() / den).abs() < 1e-7);
        }
    }
}
