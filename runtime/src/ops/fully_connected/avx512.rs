//! AVX-512 f32 FullyConnected, bit-exact to [`super::reference::eval_f32`].
//!
//! The reference computes each output as `bias` (or `0.0`) followed by `acc += x[t]·w[t]` for
//! `t = 0, 1, …` (a rounded product, then a rounded sum; no fused multiply-add). Like the AVX
//! kernel ([`super::avx2::eval_f32`]) this one keeps exactly that order for every output and
//! vectorizes across outputs: each lane of a 16-lane vector is one output feature, updated with
//! `vmulps` then `vaddps`. Weights are gathered per call into panels of 16 features × up to
//! [`KC`] inputs (`[t][feature]`, 32 KiB on the stack; masked gathers for a partial last panel);
//! a tile of up to 8 rows keeps 8 independent accumulators. Between blocks of [`KC`] inputs the
//! partial sums wait in `output` (stored and reloaded unchanged). The fused clamp is the scalar
//! [`super::ClampF32::apply`].

// Without `std` nothing detects the CPU: the kernel is unused.
#![cfg_attr(not(any(test, feature = "std")), allow(dead_code))]

use core::arch::x86_64::*;
use core::mem::MaybeUninit;

use super::FullyConnectedF32Params;

/// Inputs per panel block.
const KC: usize = 512;
/// Rows per register tile.
const MR: usize = 8;

/// AVX-512 f32 FullyConnected.
///
/// # Safety
/// The CPU must support AVX512F. Requires a successful [`super::check_f32`].
#[target_feature(enable = "avx2,avx512f")]
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub(crate) unsafe fn eval_f32(p: &FullyConnectedF32Params<'_>, input: &[f32], output: &mut [f32]) {
    let k = p.shape.in_features as usize;
    let n = p.shape.out_features as usize;
    let m = input.len().checked_div(k).unwrap_or(0);
    assert!(input.len() >= m * k && output.len() >= m * n && p.weights.len() >= n * k);
    assert!(p.bias.is_none_or(|b| b.len() >= n));
    // The depth limit every FullyConnected kernel shares (`MAX_ACC_DEPTH`).
    assert!(k <= crate::ops::MAX_ACC_DEPTH as usize);
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let mut panel_buf = [const { MaybeUninit::<f32>::uninit() }; 16 * KC];
    let panel = crate::ops::gemm_avx2::filled(&mut panel_buf, 16 * KC.min(k), 0.0);
    let mut j0 = 0;
    while j0 < n {
        let nc = 16.min(n - j0);
        let cmask: __mmask16 = if nc == 16 { !0 } else { (1u16 << nc) - 1 };
        let wrows = &p.weights[j0 * k..(j0 + nc) * k];
        let mut t0 = 0;
        while t0 < k {
            let kc = KC.min(k - t0);
            pack(wrows, k, nc, t0, kc, panel);
            let blk = Block {
                p,
                panel: &panel[..16 * kc],
                j0,
                cmask,
                nc,
                t0,
                kc,
                first: t0 == 0,
                last: t0 + kc == k,
            };
            let mut i = 0;
            while i < m {
                let r = MR.min(m - i);
                match r {
                    8 => tile::<8>(&blk, input, i, output),
                    7 => tile::<7>(&blk, input, i, output),
                    6 => tile::<6>(&blk, input, i, output),
                    5 => tile::<5>(&blk, input, i, output),
                    4 => tile::<4>(&blk, input, i, output),
                    3 => tile::<3>(&blk, input, i, output),
                    2 => tile::<2>(&blk, input, i, output),
                    _ => tile::<1>(&blk, input, i, output),
                }
                i += r;
            }
            t0 += kc;
        }
        j0 += nc;
    }
}

/// Writes the panel of the weight rows `wrows` (`nc <= 16` rows of `k`), inputs `t0..t0 + kc`:
/// `panel[16·t + c] = wrows[c·k + t0 + t]`, `0.0` for `c >= nc`. Blocks of 16 × 16 values are
/// loaded row by row and transposed in registers (LLVM turned the plain copy loop into 16-lane
/// scatters, which microcode-assisted scatters make slow on this kind of CPU: a fifth of the
/// LM head's time went there).
#[inline]
#[target_feature(enable = "avx2,avx512f")]
fn pack(wrows: &[f32], k: usize, nc: usize, t0: usize, kc: usize, panel: &mut [f32]) {
    assert!(nc <= 16 && wrows.len() >= nc * k && t0 + kc <= k && panel.len() >= 16 * kc);
    let mut tb = 0;
    while tb < kc {
        let len = 16.min(kc - tb);
        let lmask: __mmask16 = if len == 16 { !0 } else { (1u16 << len) - 1 };
        let rows: [__m512i; 16] = core::array::from_fn(|c| {
            if c < nc {
                // SAFETY: the unmasked lanes read `wrows[c·k + t0 + tb..][..len]`, inside row
                // `c` (`c < nc`, `t0 + tb + len <= t0 + kc <= k`).
                unsafe {
                    _mm512_castps_si512(_mm512_maskz_loadu_ps(
                        lmask,
                        wrows.as_ptr().add(c * k + t0 + tb),
                    ))
                }
            } else {
                _mm512_setzero_si512()
            }
        });
        let cols = crate::ops::gemm_avx512::transpose16(rows);
        for (t, v) in cols.iter().enumerate().take(len) {
            // SAFETY: `tb + t < kc`: panel row `tb + t` (16 values) is inside `panel`.
            unsafe {
                _mm512_storeu_ps(
                    panel.as_mut_ptr().add(16 * (tb + t)),
                    _mm512_castsi512_ps(*v),
                )
            };
        }
        tb += 16;
    }
}

/// One panel block: features `j0..j0 + nc`, inputs `t0..t0 + kc`.
struct Block<'a, 'p> {
    p: &'a FullyConnectedF32Params<'p>,
    panel: &'a [f32],
    j0: usize,
    cmask: __mmask16,
    nc: usize,
    t0: usize,
    kc: usize,
    first: bool,
    last: bool,
}

/// Rows `i..i + R` of the block: accumulators from the bias (first block) or the partial sums in
/// `output`, then `acc = acc + x[t]·w[t]` in the reference's order, stored back (clamped after
/// the last block).
#[inline]
#[target_feature(enable = "avx2,avx512f")]
fn tile<const R: usize>(b: &Block<'_, '_>, input: &[f32], i: usize, output: &mut [f32]) {
    let p = b.p;
    let k = p.shape.in_features as usize;
    let n = p.shape.out_features as usize;
    assert!(input.len() >= (i + R) * k && output.len() >= (i + R - 1) * n + b.j0 + b.nc);
    assert!(b.panel.len() >= 16 * b.kc && b.t0 + b.kc <= k);
    let mut acc = [_mm512_setzero_ps(); R];
    for (r, a) in acc.iter_mut().enumerate() {
        *a = if b.first {
            match p.bias {
                // SAFETY: the unmasked lanes read `bias[j0..j0 + nc]` (`bias.len() >= n`).
                Some(bias) => unsafe {
                    _mm512_maskz_loadu_ps(b.cmask, bias[b.j0..b.j0 + b.nc].as_ptr())
                },
                None => _mm512_setzero_ps(),
            }
        } else {
            let o = &output[(i + r) * n + b.j0..(i + r) * n + b.j0 + b.nc];
            // SAFETY: the unmasked lanes read `o[..nc]`.
            unsafe { _mm512_maskz_loadu_ps(b.cmask, o.as_ptr()) }
        };
    }
    let (xp, pp) = (input.as_ptr(), b.panel.as_ptr());
    for t in 0..b.kc {
        // SAFETY: `t < kc`: panel row `t` (16 values) and `x[(i + r)·k + t0 + t]` (`r < R`) are
        // inside the lengths asserted above.
        unsafe {
            let w = _mm512_loadu_ps(pp.add(16 * t));
            for (r, a) in acc.iter_mut().enumerate() {
                let xv = _mm512_set1_ps(*xp.add((i + r) * k + b.t0 + t));
                *a = _mm512_add_ps(*a, _mm512_mul_ps(xv, w));
            }
        }
    }
    for (r, a) in acc.iter().enumerate() {
        let o = &mut output[(i + r) * n + b.j0..(i + r) * n + b.j0 + b.nc];
        // SAFETY: the unmasked lanes write `o[..nc]`.
        unsafe { _mm512_mask_storeu_ps(o.as_mut_ptr(), b.cmask, *a) };
        if b.last {
            for v in o.iter_mut() {
                *v = p.activation.apply(*v);
            }
        }
    }
}
