//! AVX2 int8 BatchMatMul, bit-exact to [`super::reference::eval_i8`]: every batch is one
//! register-tiled 16-bit matrix product [`crate::ops::gemm_avx2::gemm_nt`] of the rows of `A`
//! (offset by `-a_zero_point`) with the rows of `Bᵀ` (offset by `-b_zero_point`): `B` itself with
//! `transpose_b`, else `B` transposed on the stack (up to [`BT_BUF`] values; larger `B` use
//! [`crate::ops::gemm_avx2::gemm`] over `B`'s gathered columns). Sums are the reference's modulo 2³² and requantization (one
//! multiplier per tensor) is bit-exact to [`crate::quant::requantize_to_i8`]. `k` beyond the
//! widened buffer uses the reference.

use super::BatchMatMulParams;
use crate::arch::x86_vnni::Vnni;
use crate::ops::gemm_avx2::{gemm, gemm_nt, gemm_nt_vnni, Epilogue};

/// AVX2 BatchMatMul.
///
/// # Safety
/// The CPU must support AVX2. Requires a successful [`super::check_i8`].
#[target_feature(enable = "avx2")]
pub unsafe fn eval_i8(p: &BatchMatMulParams, a: &[i8], b: &[i8], out: &mut [i8]) {
    // SAFETY: the caller guarantees AVX2; with `vnni` false no VNNI instruction runs (the
    // encoding parameter is unused).
    unsafe { eval_tiled::<crate::arch::x86_vnni::Vex>(p, a, b, out, false) }
}

/// VNNI BatchMatMul (either encoding, `V`): [`eval_i8`] with [`gemm_nt_vnni`] (8-bit products; the zero points
/// folded in through row and column sums) where it applies. Bit-exact to the reference.
///
/// # Safety
/// The CPU must support AVX2 and `V`'s encoding. Requires a successful [`super::check_i8`].
#[cfg(any(test, feature = "std"))]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn eval_i8_vnni<V: Vnni>(
    p: &BatchMatMulParams,
    a: &[i8],
    b: &[i8],
    out: &mut [i8],
) {
    // SAFETY: the caller guarantees AVX2 and `V`'s encoding.
    unsafe { eval_tiled::<V>(p, a, b, out, true) }
}

/// Both variants; `vnni` tries [`gemm_nt_vnni`] (in `V`'s encoding) before [`gemm_nt`].
///
/// # Safety
/// The CPU must support AVX2, and `V`'s encoding when `vnni`. Requires a successful
/// [`super::check_i8`].
#[target_feature(enable = "avx2")]
unsafe fn eval_tiled<V: Vnni>(
    p: &BatchMatMulParams,
    a: &[i8],
    b: &[i8],
    out: &mut [i8],
    vnni: bool,
) {
    let s = p.shape;
    let (m, k, n) = (s.m as usize, s.k as usize, s.n as usize);
    let mult = [p.output_multiplier];
    let shift = [p.output_shift];
    let epi = Epilogue {
        bias: None,
        multiplier: &mult,
        shift: &shift,
        zero_point: p.output_zero_point,
        min: p.activation.min,
        max: p.activation.max,
    };
    let (za, zb) = (p.a_zero_point, p.b_zero_point);
    let mut bt_buf = [const { core::mem::MaybeUninit::<i8>::uninit() }; BT_BUF];
    let bt = crate::ops::gemm_avx2::filled(
        &mut bt_buf,
        if !s.transpose_b && k * n <= BT_BUF {
            k * n
        } else {
            0
        },
        0,
    );
    for ((ab, bb), ob) in a
        .chunks_exact(m * k)
        .zip(b.chunks_exact(k * n))
        .zip(out.chunks_exact_mut(m * n))
    {
        // `Bᵀ` rows: `B` itself with `transpose_b`, else `B` transposed into `bt` when it fits.
        let rows: &[i8] = if s.transpose_b {
            bb
        } else if k * n <= BT_BUF {
            for (t, brow) in bb.chunks_exact(n).enumerate() {
                for (j, &v) in brow.iter().enumerate() {
                    bt[j * k + t] = v;
                }
            }
            &bt[..k * n]
        } else {
            // SAFETY: the caller guarantees AVX2; `ob` holds `m·n` values.
            if !unsafe { gemm(m, n, k, x_row(ab, za, k), col_row(bb, zb, k, n), &epi, ob) } {
                return super::reference::eval_i8(p, a, b, out);
            }
            continue;
        };
        // SAFETY: the caller guarantees AVX2 (and `V`'s encoding when `vnni`); `ab` holds `m·k`
        // values, `rows` `n·k`, `ob` `m·n` and the epilogue one multiplier and shift.
        if vnni && unsafe { gemm_nt_vnni::<V>(m, n, k, ab, za, rows, zb, &epi, ob) } {
            continue;
        }
        // SAFETY: as above.
        if !unsafe { gemm_nt(m, n, k, ab, za, rows, zb, &epi, ob) } {
            return super::reference::eval_i8(p, a, b, out);
        }
    }
}

/// Largest `B` (`k·n` values) transposed on the stack for [`gemm_nt`].
const BT_BUF: usize = 16384;

/// Row `i` of `A` (`k` values) offset by `-za`, for [`gemm`].
fn x_row(ab: &[i8], za: i32, k: usize) -> impl FnMut(usize, &mut [i16]) + '_ {
    move |i, dst| {
        for (d, &v) in dst.iter_mut().zip(&ab[i * k..(i + 1) * k]) {
            *d = (v as i32 - za) as i16;
        }
    }
}

/// Column `j` of `B` (`[k, n]`) offset by `-zb`, for [`gemm`].
fn col_row(bb: &[i8], zb: i32, k: usize, n: usize) -> impl FnMut(usize, &mut [i16]) + '_ {
    move |j, dst| {
        for (t, d) in dst.iter_mut().enumerate().take(k) {
            *d = (bb[t * n + j] as i32 - zb) as i16;
        }
    }
}

/// Safe entry for kernel tables built after `is_x86_feature_detected!("avx2")`.
#[cfg(any(test, feature = "std"))]
pub(crate) fn eval_i8_detected(p: &BatchMatMulParams, a: &[i8], b: &[i8], out: &mut [i8]) {
    debug_assert!(std::is_x86_feature_detected!("avx2"));
    // SAFETY: only stored in a kernel table by `crate::arch::ops_table_avx2`, which checks
    // `is_x86_feature_detected!("avx2")` first.
    unsafe { eval_i8(p, a, b, out) }
}

/// Safe entry for kernel tables built after [`crate::arch::x86_vnni::detected`] found an encoding
/// (the plain AVX2 kernel otherwise).
#[cfg(any(test, feature = "std"))]
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub(crate) fn eval_i8_vnni_detected(p: &BatchMatMulParams, a: &[i8], b: &[i8], out: &mut [i8]) {
    // Every `m`: packing `B` (either layout) costs no more than transposing it for the other forms.
    if let Some(cpu) = crate::ops::gemm_avx512::detected() {
        // Attention-sized heads with a per-tensor scale below 1/2: `B` packed once per entry,
        // requantization set up once per call; the panel form for the rest.
        if super::avx512::eval_i8(cpu, p, a, b, out) || eval_i8_avx512_on(cpu, p, a, b, out) {
            return;
        }
    }
    match crate::arch::x86_vnni::detected() {
        Some(cpu) => eval_i8_vnni_on(cpu, p, a, b, out),
        // SAFETY: kernel tables are built after `is_x86_feature_detected!("avx2")`.
        None => unsafe { eval_i8(p, a, b, out) },
    }
}

/// The AVX-512 VNNI panel form ([`crate::ops::gemm_avx512::gemm`], `B` packed straight from
/// either layout), batch by batch; `false` (and nothing written) when `k` exceeds
/// [`crate::ops::gemm_avx512::MAX_K`]. Bit-exact to the reference. Requires a successful
/// [`super::check_i8`].
#[cfg(any(test, feature = "std"))]
pub(crate) fn eval_i8_avx512_on(
    cpu: crate::ops::gemm_avx512::Avx512Vnni,
    p: &BatchMatMulParams,
    a: &[i8],
    b: &[i8],
    out: &mut [i8],
) -> bool {
    use crate::ops::gemm_avx512::{gemm, Rhs, MAX_K};
    let s = p.shape;
    let (m, k, n) = (s.m as usize, s.k as usize, s.n as usize);
    if k == 0 || k > MAX_K {
        return false;
    }
    let mult = [p.output_multiplier];
    let shift = [p.output_shift];
    let epi = Epilogue {
        bias: None,
        multiplier: &mult,
        shift: &shift,
        zero_point: p.output_zero_point,
        min: p.activation.min,
        max: p.activation.max,
    };
    for ((ab, bb), ob) in a
        .chunks_exact(m * k)
        .zip(b.chunks_exact(k * n))
        .zip(out.chunks_exact_mut(m * n))
    {
        let rhs = if s.transpose_b {
            Rhs::Nt(bb)
        } else {
            Rhs::Nn(bb)
        };
        gemm(
            cpu,
            m,
            n,
            k,
            ab,
            p.a_zero_point,
            rhs,
            p.b_zero_point,
            &epi,
            ob,
        );
    }
    true
}

/// Safe entry for the VNNI form in the encoding `cpu` proves.
#[cfg(any(test, feature = "std"))]
pub(crate) fn eval_i8_vnni_on(
    cpu: crate::arch::x86_vnni::VnniCpu,
    p: &BatchMatMulParams,
    a: &[i8],
    b: &[i8],
    out: &mut [i8],
) {
    crate::arch::x86_vnni::with_vnni!(cpu, eval_i8_vnni(p, a, b, out))
}
