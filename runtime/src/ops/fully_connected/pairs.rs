//! int8 FullyConnected for cores without the DSP extension (Cortex-M0/M0+, ARMv6-M), bit-exact
//! to [`super::reference::eval_i8`]: the product in 2×2 blocks, two input rows by two output
//! features, so that each input byte and each weight byte loaded serves two products (the
//! reference loads both for each product), with the input zero point folded into each
//! feature's starting value: `Σ (x − zp)·w = Σ x·w − zp·Σ w`, equal in wrapping int32
//! arithmetic, so the inner loop subtracts nothing. A row or a feature left over from the pairs
//! runs alone; a single row (batch 1) keeps the subtraction. Safe, portable Rust: the host tests
//! hold it to the reference.

use super::FullyConnectedParams;

/// Feature `o`'s bias (0 without one) minus `zp · Σ w`, wrapping: where its accumulators start
/// when the products are `x · w`.
#[inline(always)]
fn start(p: &FullyConnectedParams<'_>, o: usize, w: &[i8]) -> i32 {
    let bias = p.bias.map_or(0, |b| b[o]);
    let sum = w.iter().fold(0i32, |s, &v| s.wrapping_add(v as i32));
    bias.wrapping_sub(p.input_zero_point.wrapping_mul(sum))
}

/// One input row (batch 1): features in pairs, the zero point subtracted from each input byte
/// (folding it would cost one more pass over the weights than it saves).
fn one_row(p: &FullyConnectedParams<'_>, x: &[i8], y: &mut [i8]) {
    let zp = p.input_zero_point;
    let bias = |o: usize| p.bias.map_or(0, |b| b[o]);
    let mut ws = p.weights.chunks_exact(2 * x.len());
    for (pair, w) in (&mut ws).enumerate() {
        let (w0, w1) = w.split_at(x.len());
        let o = 2 * pair;
        let [mut a0, mut a1] = [bias(o), bias(o + 1)];
        for ((&u, &v0), &v1) in x.iter().zip(w0).zip(w1) {
            let u = u as i32 - zp;
            a0 = a0.wrapping_add(u * v0 as i32);
            a1 = a1.wrapping_add(u * v1 as i32);
        }
        y[o] = p.requantize(o, a0);
        y[o + 1] = p.requantize(o + 1, a1);
    }
    let w = ws.remainder();
    if let (true, Some(o)) = (w.len() == x.len(), y.len().checked_sub(1)) {
        let a = x.iter().zip(w).fold(bias(o), |a, (&u, &v)| {
            a.wrapping_add((u as i32 - zp) * v as i32)
        });
        y[o] = p.requantize(o, a);
    }
}

/// int8 FullyConnected. Requires a successful [`super::check_i8`].
pub fn eval_i8(p: &FullyConnectedParams<'_>, input: &[i8], output: &mut [i8]) {
    let k = p.shape.in_features as usize;
    let n = p.shape.out_features as usize;
    let rows = input.len() / k;
    if rows < 2 {
        return one_row(p, input, output);
    }
    let mut ws = p.weights.chunks_exact(2 * k);
    for (pair, w) in (&mut ws).enumerate() {
        let (w0, w1) = w.split_at(k);
        let o = 2 * pair;
        let (c0, c1) = (start(p, o, w0), start(p, o + 1, w1));
        let mut xs = input.chunks_exact(2 * k);
        for (r, x) in (&mut xs).enumerate() {
            let (x0, x1) = x.split_at(k);
            let [mut a00, mut a01, mut a10, mut a11] = [c0, c1, c0, c1];
            for (((&u0, &u1), &v0), &v1) in x0.iter().zip(x1).zip(w0).zip(w1) {
                let (u0, u1, v0, v1) = (u0 as i32, u1 as i32, v0 as i32, v1 as i32);
                a00 = a00.wrapping_add(u0 * v0);
                a01 = a01.wrapping_add(u0 * v1);
                a10 = a10.wrapping_add(u1 * v0);
                a11 = a11.wrapping_add(u1 * v1);
            }
            let (y0, y1) = (2 * r * n + o, (2 * r + 1) * n + o);
            output[y0] = p.requantize(o, a00);
            output[y0 + 1] = p.requantize(o + 1, a01);
            output[y1] = p.requantize(o, a10);
            output[y1 + 1] = p.requantize(o + 1, a11);
        }
        // An odd last row: the two features alone.
        let x = xs.remainder();
        if x.len() == k {
            let [mut a0, mut a1] = [c0, c1];
            for ((&u, &v0), &v1) in x.iter().zip(w0).zip(w1) {
                a0 = a0.wrapping_add(u as i32 * v0 as i32);
                a1 = a1.wrapping_add(u as i32 * v1 as i32);
            }
            let y = (rows - 1) * n + o;
            output[y] = p.requantize(o, a0);
            output[y + 1] = p.requantize(o + 1, a1);
        }
    }
    // An odd last feature: every row against its weights, one at a time.
    let w = ws.remainder();
    if w.len() == k {
        let o = n - 1;
        let c = start(p, o, w);
        for (r, x) in input.chunks_exact(k).enumerate() {
            let a = x
                .iter()
                .zip(w)
                .fold(c, |a, (&u, &v)| a.wrapping_add(u as i32 * v as i32));
            output[r * n + o] = p.requantize(o, a);
        }
    }
}
