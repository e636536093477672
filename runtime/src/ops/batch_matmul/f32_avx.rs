//! x86-64 f32 BatchMatMul (AVX and AVX-512F), bit-exact to [`super::reference::eval_f32`].
//!
//! The reference computes each output as `acc = 0.0` followed by `acc += a[i,t]·b[t,j]` for
//! `t = 0, 1, …` (a rounded product, then a rounded sum; no fused multiply-add), then the fused
//! clamp. These kernels keep exactly that order for every output and vectorize across output
//! columns: each lane is one column `j`, updated with `vmulps` then `vaddps`.
//!
//! - With `transpose_b`, `B[b]` is `[n, k]`: every batch is an f32 FullyConnected of `A[b]` with
//!   weights `B[b]` and no bias (the same sums in the same order), so it runs
//!   [`crate::ops::fully_connected::avx2::eval_f32`] (or its AVX-512 form).
//! - Otherwise `B[b]` is `[k, n]`: its rows are already the `[t][column]` panels, read in place.
//!   A register tile holds up to 4 rows × 16 columns (AVX, two vectors per row) or up to 8 rows ×
//!   16 columns (AVX-512); a partial last column block uses masked loads. The clamp is
//!   [`crate::ops::ClampF32::apply`] (scalar on the stored sums for AVX, its 16-lane form
//!   `conv2d::f32_avx::clamp_512` for AVX-512).

// Without `std` nothing detects the CPU: the kernels are unused.
#![cfg_attr(not(any(test, feature = "std")), allow(dead_code))]

use core::arch::x86_64::*;

use super::BatchMatMulF32Params;
use crate::ops::conv2d::f32_avx::clamp_512;
use crate::ops::fully_connected::{self, FullyConnectedF32Params, FullyConnectedShape};
use crate::ops::ClampF32;

/// Columns per register tile (two AVX vectors, one AVX-512 vector).
const NC: usize = 16;
/// Rows per AVX register tile.
const MR_AVX: usize = 4;
/// Rows per AVX-512 register tile.
const MR_512: usize = 8;

/// The FullyConnected that computes one batch of a `transpose_b` product: weights `bt` (`[n, k]`).
fn fc_params<'a>(p: &BatchMatMulF32Params, bt: &'a [f32]) -> FullyConnectedF32Params<'a> {
    FullyConnectedF32Params {
        shape: FullyConnectedShape {
            batch: p.shape.m,
            in_features: p.shape.k,
            out_features: p.shape.n,
        },
        weights: bt,
        bias: None,
        activation: p.activation,
    }
}

/// One column block of one batch (`B` not transposed): columns `j0..j0 + nc` of `b` (`[k, n]`).
#[derive(Clone, Copy)]
struct Block<'a> {
    b: &'a [f32],
    k: usize,
    n: usize,
    j0: usize,
    nc: usize,
    act: ClampF32,
}

impl Block<'_> {
    /// Asserts what every tile reads and writes: rows `i..i + r` of `a` (`[m, k]`) and `out`
    /// (`[m, n]`), and the block's columns of every row of `b`.
    fn check(&self, a: &[f32], out: &[f32], i: usize, r: usize) {
        assert!(self.k >= 1 && self.nc >= 1 && self.nc <= NC && self.j0 + self.nc <= self.n);
        assert!(a.len() >= (i + r) * self.k);
        assert!(out.len() >= (i + r - 1) * self.n + self.j0 + self.nc);
        assert!(self.b.len() >= (self.k - 1) * self.n + self.j0 + self.nc);
    }

    /// Stores row `i`'s sums `v[..nc]`, clamped, to `out`.
    #[inline(always)]
    fn finish(&self, v: &[f32; NC], out: &mut [f32], i: usize) {
        let o = &mut out[i * self.n + self.j0..i * self.n + self.j0 + self.nc];
        for (y, &x) in o.iter_mut().zip(v) {
            *y = self.act.apply(x);
        }
    }
}

/// AVX f32 BatchMatMul.
///
/// # Safety
/// The CPU must support AVX. Requires a successful [`super::check_f32`].
#[target_feature(enable = "avx")]
pub unsafe fn eval_f32(p: &BatchMatMulF32Params, a: &[f32], b: &[f32], out: &mut [f32]) {
    let s = p.shape;
    let (m, k, n) = (s.m as usize, s.k as usize, s.n as usize);
    for ((ab, bb), ob) in a
        .chunks_exact(m * k)
        .zip(b.chunks_exact(k * n))
        .zip(out.chunks_exact_mut(m * n))
    {
        if s.transpose_b {
            // SAFETY: the caller guarantees AVX; `ab` holds `m·k` values, `bb` `n·k`, `ob` `m·n`
            // and the clamp passed `check_f32`: the FullyConnected's check holds.
            unsafe { fully_connected::avx2::eval_f32(&fc_params(p, bb), ab, ob) };
            continue;
        }
        let mut j0 = 0;
        while j0 < n {
            let blk = Block {
                b: bb,
                k,
                n,
                j0,
                nc: NC.min(n - j0),
                act: p.activation,
            };
            let mut i = 0;
            while i < m {
                let r = MR_AVX.min(m - i);
                match r {
                    4 => tile_avx::<4>(&blk, ab, i, ob),
                    3 => tile_avx::<3>(&blk, ab, i, ob),
                    2 => tile_avx::<2>(&blk, ab, i, ob),
                    _ => tile_avx::<1>(&blk, ab, i, ob),
                }
                i += r;
            }
            j0 += NC;
        }
    }
}

/// Rows `i..i + R`, columns `j0..j0 + nc` (AVX): `acc = acc + a[i,t]·b[t,j]` from `0.0`, in
/// increasing `t`.
#[inline]
#[target_feature(enable = "avx")]
fn tile_avx<const R: usize>(blk: &Block<'_>, a: &[f32], i: usize, out: &mut [f32]) {
    blk.check(a, out, i, R);
    let Block {
        b, k, n, j0, nc, ..
    } = *blk;
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    let (ap, bp) = (a.as_ptr(), b.as_ptr());
    if nc == NC {
        for t in 0..k {
            // SAFETY: `t < k`, so `b[t·n + j0 .. + 16]` and `a[(i + r)·k + t]` (`r < R`) are
            // inside the lengths asserted by `check`.
            unsafe {
                let w0 = _mm256_loadu_ps(bp.add(t * n + j0));
                let w1 = _mm256_loadu_ps(bp.add(t * n + j0 + 8));
                for (r, acc) in acc.iter_mut().enumerate() {
                    let x = _mm256_set1_ps(*ap.add((i + r) * k + t));
                    acc[0] = _mm256_add_ps(acc[0], _mm256_mul_ps(x, w0));
                    acc[1] = _mm256_add_ps(acc[1], _mm256_mul_ps(x, w1));
                }
            }
        }
    } else {
        let lanes: [i32; NC] = core::array::from_fn(|c| if c < nc { -1 } else { 0 });
        // SAFETY: `lanes` holds 16 values.
        let (m0, m1) = unsafe {
            (
                _mm256_loadu_si256(lanes.as_ptr().cast()),
                _mm256_loadu_si256(lanes.as_ptr().add(8).cast()),
            )
        };
        for t in 0..k {
            // SAFETY: the masked loads read only the lanes `c < nc`, `b[t·n + j0 + c]`, inside
            // `b` (asserted by `check`); masked-off lanes never fault, and their addresses are
            // formed with `wrapping_add`. `a[(i + r)·k + t]` as above.
            unsafe {
                let w0 = _mm256_maskload_ps(bp.wrapping_add(t * n + j0), m0);
                let w1 = _mm256_maskload_ps(bp.wrapping_add(t * n + j0 + 8), m1);
                for (r, acc) in acc.iter_mut().enumerate() {
                    let x = _mm256_set1_ps(*ap.add((i + r) * k + t));
                    acc[0] = _mm256_add_ps(acc[0], _mm256_mul_ps(x, w0));
                    acc[1] = _mm256_add_ps(acc[1], _mm256_mul_ps(x, w1));
                }
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        let mut v = [0f32; NC];
        // SAFETY: `v` holds 16 writable values.
        unsafe {
            _mm256_storeu_ps(v.as_mut_ptr(), acc[0]);
            _mm256_storeu_ps(v.as_mut_ptr().add(8), acc[1]);
        }
        blk.finish(&v, out, i + r);
    }
}

/// AVX-512 f32 BatchMatMul.
///
/// # Safety
/// The CPU must support AVX2 and AVX512F. Requires a successful [`super::check_f32`].
#[target_feature(enable = "avx2,avx512f")]
pub unsafe fn eval_f32_avx512(p: &BatchMatMulF32Params, a: &[f32], b: &[f32], out: &mut [f32]) {
    let s = p.shape;
    let (m, k, n) = (s.m as usize, s.k as usize, s.n as usize);
    for ((ab, bb), ob) in a
        .chunks_exact(m * k)
        .zip(b.chunks_exact(k * n))
        .zip(out.chunks_exact_mut(m * n))
    {
        if s.transpose_b {
            // SAFETY: the caller guarantees AVX512F; the FullyConnected's check holds (see
            // `eval_f32`).
            unsafe { fully_connected::avx512::eval_f32(&fc_params(p, bb), ab, ob) };
            continue;
        }
        let mut j0 = 0;
        while j0 < n {
            let blk = Block {
                b: bb,
                k,
                n,
                j0,
                nc: NC.min(n - j0),
                act: p.activation,
            };
            let mut i = 0;
            while i < m {
                let r = MR_512.min(m - i);
                match r {
                    8 => tile_512::<8>(&blk, ab, i, ob),
                    7 => tile_512::<7>(&blk, ab, i, ob),
                    6 => tile_512::<6>(&blk, ab, i, ob),
                    5 => tile_512::<5>(&blk, ab, i, ob),
                    4 => tile_512::<4>(&blk, ab, i, ob),
                    3 => tile_512::<3>(&blk, ab, i, ob),
                    2 => tile_512::<2>(&blk, ab, i, ob),
                    _ => tile_512::<1>(&blk, ab, i, ob),
                }
                i += r;
            }
            j0 += NC;
        }
    }
}

/// Rows `i..i + R`, columns `j0..j0 + nc` (AVX-512, one masked vector per row).
#[inline]
#[target_feature(enable = "avx2,avx512f")]
fn tile_512<const R: usize>(blk: &Block<'_>, a: &[f32], i: usize, out: &mut [f32]) {
    blk.check(a, out, i, R);
    let Block {
        b, k, n, j0, nc, ..
    } = *blk;
    let cmask: __mmask16 = if nc == NC { !0 } else { (1u16 << nc) - 1 };
    let mut acc = [_mm512_setzero_ps(); R];
    let (ap, bp) = (a.as_ptr(), b.as_ptr());
    for t in 0..k {
        // SAFETY: `t < k`; the unmasked lanes `c < nc` read `b[t·n + j0 + c]` and the broadcasts
        // `a[(i + r)·k + t]` (`r < R`), inside the lengths asserted by `check` (`t·n + j0` itself
        // is inside `b`).
        unsafe {
            let w = _mm512_maskz_loadu_ps(cmask, bp.add(t * n + j0));
            for (r, acc) in acc.iter_mut().enumerate() {
                let x = _mm512_set1_ps(*ap.add((i + r) * k + t));
                *acc = _mm512_add_ps(*acc, _mm512_mul_ps(x, w));
            }
        }
    }
    let op = out.as_mut_ptr();
    for (r, &acc) in acc.iter().enumerate() {
        let y = clamp_512(acc, blk.act);
        // SAFETY: the unmasked lanes `c < nc` write `out[(i + r)·n + j0 + c]`, inside the length
        // asserted by `check`.
        unsafe { _mm512_mask_storeu_ps(op.add((i + r) * n + j0), cmask, y) };
    }
}

/// Whether this CPU runs [`eval_f32_avx512`] (AVX2 and AVX512F).
#[cfg(any(test, feature = "std"))]
pub(crate) fn avx512_detected() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("avx512f")
}

/// Safe entry for kernel tables built after `is_x86_feature_detected!("avx2")` (which implies
/// AVX).
#[cfg(any(test, feature = "std"))]
pub(crate) fn eval_f32_detected(p: &BatchMatMulF32Params, a: &[f32], b: &[f32], out: &mut [f32]) {
    debug_assert!(std::is_x86_feature_detected!("avx"));
    // SAFETY: only stored in a kernel table by `crate::arch::ops_table_avx2`, which checks
    // `is_x86_feature_detected!("avx2")` first.
    unsafe { eval_f32(p, a, b, out) }
}

/// Safe entry for kernel tables built after [`avx512_detected`].
#[cfg(any(test, feature = "std"))]
pub(crate) fn eval_f32_avx512_detected(
    p: &BatchMatMulF32Params,
    a: &[f32],
    b: &[f32],
    out: &mut [f32],
) {
    debug_assert!(avx512_detected());
    // SAFETY: only stored in a kernel table by `crate::arch::ops_table_avx2` after
    // `avx512_detected()`.
    unsafe { eval_f32_avx512(p, a, b, out) }
}
