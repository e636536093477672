//! AVX2 int8 FullyConnected, bit-exact to [`super::reference::eval_i8`].
//!
//! Rows of up to [`crate::ops::gemm_avx2::X_BUF`] inputs run through the register-tiled 16-bit
//! matrix product [`crate::ops::gemm_avx2::gemm_nt`] (4 rows × 2 output features per tile,
//! weights sign-extended from the image as they are loaded, requantization in the tile's epilogue). Longer rows use four output features at a time sharing each 16-byte block of the
//! input row, sign-extended and offset once ([`crate::arch::x86::dot4_offset_i8_avx2`]). Either
//! way the accumulator is the reference's (bias plus the same wrapping sum of the same products,
//! in another order) and requantization is bit-exact to [`requantize_to_i8`].

use core::arch::x86_64::*;

use super::{FullyConnectedF32Params, FullyConnectedParams};
use crate::arch::x86;
#[cfg(any(test, feature = "std"))]
use crate::arch::x86_vnni::Vnni;
#[cfg(any(test, feature = "std"))]
use crate::ops::gemm_avx2::gemm_nt_vnni;
use crate::ops::gemm_avx2::{gemm_nt, Epilogue};

/// AVX2 FullyConnected.
///
/// # Safety
/// The CPU must support AVX2. Requires a successful [`super::check_i8`] (like every variant).
#[target_feature(enable = "avx2")]
pub unsafe fn eval_i8(p: &FullyConnectedParams<'_>, input: &[i8], output: &mut [i8]) {
    let k = p.shape.in_features as usize;
    let n = p.shape.out_features as usize;
    let m = input.len().checked_div(k).unwrap_or(0);
    let zp = p.input_zero_point;
    let epi = epilogue(p);
    // SAFETY: the caller guarantees AVX2; `input` holds `m·k` values, the weights `n·k`, `output`
    // `m·n` and the epilogue's slices `n` (checked by `check_i8`).
    if unsafe { gemm_nt(m, n, k, input, zp, p.weights, 0, &epi, output) } {
        return;
    }
    // SAFETY: the caller guarantees AVX2.
    unsafe { eval_i8_dot4(p, input, output) }
}

/// The requantization of `p`'s outputs.
fn epilogue<'a>(p: &FullyConnectedParams<'a>) -> Epilogue<'a> {
    Epilogue {
        bias: p.bias,
        multiplier: p.output_multiplier,
        shift: p.output_shift,
        zero_point: p.output_zero_point,
        min: p.activation.min,
        max: p.activation.max,
    }
}

/// VNNI FullyConnected (either encoding, `V`): [`gemm_nt_vnni`] (8-bit products, 4 rows × 2 output features per
/// tile), else [`eval_i8`]. Bit-exact to the reference like it.
///
/// # Safety
/// The CPU must support AVX2 and `V`'s encoding. Requires a successful [`super::check_i8`].
#[cfg(any(test, feature = "std"))]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn eval_i8_vnni<V: Vnni>(
    p: &FullyConnectedParams<'_>,
    input: &[i8],
    output: &mut [i8],
) {
    let k = p.shape.in_features as usize;
    let n = p.shape.out_features as usize;
    let m = input.len().checked_div(k).unwrap_or(0);
    let epi = epilogue(p);
    // SAFETY: the caller guarantees AVX2 and `V`'s encoding; lengths as in `eval_i8`.
    if unsafe {
        gemm_nt_vnni::<V>(
            m,
            n,
            k,
            input,
            p.input_zero_point,
            p.weights,
            0,
            &epi,
            output,
        )
    } {
        return;
    }
    // SAFETY: the caller guarantees AVX2.
    unsafe { eval_i8(p, input, output) }
}

/// Safe entry for kernel tables built after [`crate::arch::x86_vnni::detected`] found an encoding
/// (the plain AVX2 kernel otherwise).
#[cfg(any(test, feature = "std"))]
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub(crate) fn eval_i8_vnni_detected(p: &FullyConnectedParams<'_>, input: &[i8], output: &mut [i8]) {
    if let Some(cpu) = crate::ops::gemm_avx512::detected() {
        if eval_i8_avx512_on(cpu, p, input, output) {
            return;
        }
    }
    match crate::arch::x86_vnni::detected() {
        Some(cpu) => eval_i8_vnni_on(cpu, p, input, output),
        // SAFETY: kernel tables are built after `is_x86_feature_detected!("avx2")`.
        None => unsafe { eval_i8(p, input, output) },
    }
}

/// Fewest rows for which [`eval_i8_avx512_on`] takes the panel form (packing the weights per call
/// costs about as much as the products of one row); fewer take the dot-product form.
#[cfg(any(test, feature = "std"))]
const AVX512_MIN_ROWS: usize = 4;

/// The AVX-512 VNNI forms: [`crate::ops::gemm_avx512::gemm`] (panels) from
/// [`AVX512_MIN_ROWS`] rows, [`crate::ops::gemm_avx512::gemv`] (dot products) below; `false` (and
/// nothing written) when `in_features` exceeds [`crate::ops::gemm_avx512::MAX_K`]. Bit-exact to
/// the reference. Requires a successful [`super::check_i8`].
#[cfg(any(test, feature = "std"))]
pub(crate) fn eval_i8_avx512_on(
    cpu: crate::ops::gemm_avx512::Avx512Vnni,
    p: &FullyConnectedParams<'_>,
    input: &[i8],
    output: &mut [i8],
) -> bool {
    let k = p.shape.in_features as usize;
    let n = p.shape.out_features as usize;
    let m = input.len().checked_div(k).unwrap_or(0);
    let epi = epilogue(p);
    if m < AVX512_MIN_ROWS {
        return crate::ops::gemm_avx512::gemv(
            cpu,
            m,
            n,
            k,
            input,
            p.input_zero_point,
            p.weights,
            &epi,
            output,
        );
    }
    crate::ops::gemm_avx512::gemm(
        cpu,
        m,
        n,
        k,
        input,
        p.input_zero_point,
        crate::ops::gemm_avx512::Rhs::Nt(p.weights),
        0,
        &epi,
        output,
    )
}

/// Safe entry for the VNNI form in the encoding `cpu` proves.
#[cfg(any(test, feature = "std"))]
pub(crate) fn eval_i8_vnni_on(
    cpu: crate::arch::x86_vnni::VnniCpu,
    p: &FullyConnectedParams<'_>,
    input: &[i8],
    output: &mut [i8],
) {
    crate::arch::x86_vnni::with_vnni!(cpu, eval_i8_vnni(p, input, output))
}

/// The per-row dot-product form, for rows longer than the widened path's buffer.
///
/// # Safety
/// The CPU must support AVX2. Requires a successful [`super::check_i8`].
#[target_feature(enable = "avx2")]
unsafe fn eval_i8_dot4(p: &FullyConnectedParams<'_>, input: &[i8], output: &mut [i8]) {
    let k = p.shape.in_features as usize;
    let n = p.shape.out_features as usize;
    let zp = p.input_zero_point;
    let bias = |o: usize| p.bias.map_or(0, |b| b[o]);
    let finish = |o: usize, acc: i32| p.requantize(o, acc);
    for (x, y) in input.chunks_exact(k).zip(output.chunks_exact_mut(n)) {
        let mut o = 0;
        while o + 4 <= n {
            let w = |r: usize| &p.weights[(o + r) * k..(o + r + 1) * k];
            // SAFETY: the caller guarantees AVX2 (this function's contract).
            let acc = unsafe { x86::dot4_offset_i8_avx2(x, -zp, [w(0), w(1), w(2), w(3)]) };
            for (r, a) in acc.iter().enumerate() {
                y[o + r] = finish(o + r, bias(o + r).wrapping_add(*a));
            }
            o += 4;
        }
        while o < n {
            let w = &p.weights[o * k..(o + 1) * k];
            // SAFETY: the caller guarantees AVX2.
            let acc = unsafe { x86::dot_offset_i8_avx2(x, -zp, w, 0) };
            y[o] = finish(o, bias(o).wrapping_add(acc));
            o += 1;
        }
    }
}

/// Safe entry for kernel tables built after `is_x86_feature_detected!("avx2")`.
#[cfg(any(test, feature = "std"))]
pub(crate) fn eval_i8_detected(p: &FullyConnectedParams<'_>, input: &[i8], output: &mut [i8]) {
    debug_assert!(std::is_x86_feature_detected!("avx2"));
    // SAFETY: only stored in a kernel table by `crate::arch::ops_table_avx2`, which checks
    // `is_x86_feature_detected!("avx2")` first.
    unsafe { eval_i8(p, input, output) }
}

/// Output features per packed panel of the f32 kernel (two vectors of 8).
const F32_NC: usize = 16;
/// Inputs per packed panel block of the f32 kernel.
const F32_KC: usize = 256;

/// AVX f32 FullyConnected, bit-exact to [`super::reference::eval_f32`].
///
/// The reference computes each output as `bias` (or `0.0`) followed by `acc += x[t]·w[t]` for
/// `t = 0, 1, …` (a rounded product, then a rounded sum; no fused multiply-add). This kernel keeps
/// exactly that order for every output and vectorizes across outputs instead: each lane of a
/// vector is one output feature, updated with `vmulps` then `vaddps`. Weights are packed per call
/// into panels of 16 output features × up to 256 inputs (`[t][feature]`, 16 KiB on the stack,
/// zero-padded past `out_features`); a tile of 4 rows × 16 features keeps 8 independent
/// accumulators in registers. Between blocks of 256 inputs the partial sums wait in `output`
/// (stored and reloaded unchanged). The fused clamp is the scalar [`super::ClampF32::apply`].
///
/// # Safety
/// The CPU must support AVX. Requires a successful [`super::check_f32`].
#[target_feature(enable = "avx")]
pub unsafe fn eval_f32(p: &FullyConnectedF32Params<'_>, input: &[f32], output: &mut [f32]) {
    let k = p.shape.in_features as usize;
    let n = p.shape.out_features as usize;
    let m = input.len().checked_div(k).unwrap_or(0);
    assert!(input.len() >= m * k && output.len() >= m * n && p.weights.len() >= n * k);
    assert!(p.bias.is_none_or(|b| b.len() >= n));
    let mut panel_buf = [const { core::mem::MaybeUninit::<f32>::uninit() }; F32_NC * F32_KC];
    let panel = crate::ops::gemm_avx2::filled(&mut panel_buf, F32_NC * F32_KC.min(k), 0.0);
    let mut j0 = 0;
    while j0 < n {
        let nc = F32_NC.min(n - j0);
        let mut t0 = 0;
        while t0 < k {
            let kc = F32_KC.min(k - t0);
            for t in 0..kc {
                let dst = &mut panel[t * F32_NC..(t + 1) * F32_NC];
                for (c, d) in dst.iter_mut().enumerate() {
                    *d = if c < nc {
                        p.weights[(j0 + c) * k + t0 + t]
                    } else {
                        0.0
                    };
                }
            }
            let first = t0 == 0;
            let last = t0 + kc == k;
            // The accumulators of row `i`: the bias (or 0.0) first, else the partial sums.
            let start = |i: usize, out: &[f32]| -> [f32; F32_NC] {
                let mut a = [0f32; F32_NC];
                for (c, v) in a.iter_mut().enumerate().take(nc) {
                    *v = if first {
                        p.bias.map_or(0.0, |b| b[j0 + c])
                    } else {
                        out[i * n + j0 + c]
                    };
                }
                a
            };
            let finish = |i: usize, a: &[f32; F32_NC], out: &mut [f32]| {
                for (c, &v) in a.iter().enumerate().take(nc) {
                    out[i * n + j0 + c] = if last { p.activation.apply(v) } else { v };
                }
            };
            let pp = panel.as_ptr();
            let mut i = 0;
            while i + 4 <= m {
                let init: [[f32; F32_NC]; 4] = core::array::from_fn(|r| start(i + r, output));
                let ld = |a: &[f32; F32_NC], h: usize| {
                    // SAFETY: `a` holds 16 values; `h < 2`.
                    unsafe { _mm256_loadu_ps(a.as_ptr().add(8 * h)) }
                };
                let mut acc: [[__m256; 2]; 4] =
                    core::array::from_fn(|r| [ld(&init[r], 0), ld(&init[r], 1)]);
                let xr: [&[f32]; 4] =
                    core::array::from_fn(|r| &input[(i + r) * k + t0..(i + r) * k + t0 + kc]);
                for t in 0..kc {
                    // SAFETY: `t < kc <= F32_KC`, so panel row `t` (16 values) is in bounds.
                    let (w0, w1) = unsafe {
                        (
                            _mm256_loadu_ps(pp.add(t * F32_NC)),
                            _mm256_loadu_ps(pp.add(t * F32_NC + 8)),
                        )
                    };
                    for (a, x) in acc.iter_mut().zip(&xr) {
                        let xv = _mm256_set1_ps(x[t]);
                        a[0] = _mm256_add_ps(a[0], _mm256_mul_ps(xv, w0));
                        a[1] = _mm256_add_ps(a[1], _mm256_mul_ps(xv, w1));
                    }
                }
                for (r, a) in acc.iter().enumerate() {
                    let mut v = [0f32; F32_NC];
                    // SAFETY: `v` holds 16 writable values.
                    unsafe {
                        _mm256_storeu_ps(v.as_mut_ptr(), a[0]);
                        _mm256_storeu_ps(v.as_mut_ptr().add(8), a[1]);
                    }
                    finish(i + r, &v, output);
                }
                i += 4;
            }
            while i < m {
                let init = start(i, output);
                // SAFETY: `init` holds 16 values.
                let mut a = unsafe {
                    [
                        _mm256_loadu_ps(init.as_ptr()),
                        _mm256_loadu_ps(init.as_ptr().add(8)),
                    ]
                };
                let x = &input[i * k + t0..i * k + t0 + kc];
                for (t, &xt) in x.iter().enumerate() {
                    // SAFETY: `t < kc <= F32_KC`, so panel row `t` (16 values) is in bounds.
                    let (w0, w1) = unsafe {
                        (
                            _mm256_loadu_ps(pp.add(t * F32_NC)),
                            _mm256_loadu_ps(pp.add(t * F32_NC + 8)),
                        )
                    };
                    let xv = _mm256_set1_ps(xt);
                    a[0] = _mm256_add_ps(a[0], _mm256_mul_ps(xv, w0));
                    a[1] = _mm256_add_ps(a[1], _mm256_mul_ps(xv, w1));
                }
                let mut v = [0f32; F32_NC];
                // SAFETY: `v` holds 16 writable values.
                unsafe {
                    _mm256_storeu_ps(v.as_mut_ptr(), a[0]);
                    _mm256_storeu_ps(v.as_mut_ptr().add(8), a[1]);
                }
                finish(i, &v, output);
                i += 1;
            }
            t0 += kc;
        }
        j0 += nc;
    }
}

/// Safe entry for kernel tables built after `is_x86_feature_detected!("avx2")` (which implies
/// AVX).
#[cfg(any(test, feature = "std"))]
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub(crate) fn eval_f32_detected(
    p: &FullyConnectedF32Params<'_>,
    input: &[f32],
    output: &mut [f32],
) {
    debug_assert!(std::is_x86_feature_detected!("avx"));
    if crate::ops::gemm_avx512::detected().is_some() {
        // SAFETY: the token proves AVX512F.
        return unsafe { super::avx512::eval_f32(p, input, output) };
    }
    // SAFETY: only stored in a kernel table by `crate::arch::ops_table_avx2`, which checks
    // `is_x86_feature_detected!("avx2")` first.
    unsafe { eval_f32(p, input, output) }
}
