//! int8 FullyConnected with its weights pre-packed by the compiler (op version 2): the layout the
//! AVX-512 VNNI panel kernel reads ([`crate::ops::gemm_avx512`]), so `invoke` neither packs the
//! weights nor sums their columns. A host image for x86-64 opts in (`CompileOptions::prepack`);
//! other CPUs run the same image through [`reference::eval_i8`], which reads the packed layout
//! through [`weight`].
//!
//! # Layout
//!
//! With `k4 = ⌈k/4⌉` and `n16 = ⌈n/16⌉·16`, the packed tensor holds `n16 · 4·k4` bytes. Columns
//! (output features) are taken in blocks of 64 (the last one shorter): block `b` starts at byte
//! `64b · 4·k4` and holds `nr = min(4, (n16 − 64b)/16)` vectors of 16 columns per group of 4
//! inputs. Byte `4l + e` of the 64-byte vector `(q, v)` of the block (at `(q·nr + v)·64`) is
//! `w(64b + 16v + l, 4q + e) ^ 0x80` (the weight as an unsigned byte, `w + 128`), and 0 past `k`
//! and past `n`.
//!
//! # Column terms
//!
//! The bias and the input zero point's share of each sum are folded into one `i32` per column
//! (wrapping): `ct[j] = bias[j] − zx·Σ_t w(j, t)`, so that
//! `acc[i][j] = ct[j] + Σ_t x[i][t]·w(j, t) = bias[j] + Σ_t (x[i][t] − zx)·w(j, t)` modulo 2³²:
//! every output equals the version-1 op's ([`super::reference::eval_i8`]) bit for bit.

use super::FullyConnectedShape;
use crate::ops::ClampI8;
use crate::Error;

/// int8 FullyConnected parameters with pre-packed weights.
#[derive(Debug, Clone, Copy)]
pub struct PackedFullyConnectedParams<'a> {
    /// Sizes.
    pub shape: FullyConnectedShape,
    /// The weights in the packed layout ([`packed_len`] bytes).
    pub panels: &'a [i8],
    /// `bias[j] − zx·Σ_t w(j, t)` per output feature (wrapping).
    pub column_terms: &'a [i32],
    /// Output zero point.
    pub output_zero_point: i32,
    /// Q31 multiplier per output feature.
    pub output_multiplier: &'a [i32],
    /// Shift per output feature (positive = left).
    pub output_shift: &'a [i32],
    /// Fused activation.
    pub activation: ClampI8,
}

/// Bytes of the packed weights of an `[n, k]` matrix (`None` on overflow).
pub const fn packed_len(n: usize, k: usize) -> Option<usize> {
    let n16 = match n.checked_next_multiple_of(16) {
        Some(v) => v,
        None => return None,
    };
    match k.checked_next_multiple_of(4) {
        Some(k4) => n16.checked_mul(k4),
        None => None,
    }
}

/// Byte offset of `w(j, t)` in the packed layout of an `[n, k]` matrix (`j < n`, `t < k`).
#[inline]
fn offset(n: usize, k: usize, j: usize, t: usize) -> usize {
    let k4 = k.div_ceil(4);
    let n16 = n.div_ceil(16) * 16;
    let j0 = j / 64 * 64;
    let nr = ((n16 - j0) / 16).min(4);
    let (v, l) = ((j - j0) / 16, j % 16);
    let (q, e) = (t / 4, t % 4);
    j0 * k4 * 4 + (q * nr + v) * 64 + 4 * l + e
}

/// `w(j, t)` read from the packed weights of an `[n, k]` matrix.
#[inline]
pub fn weight(panels: &[i8], n: usize, k: usize, j: usize, t: usize) -> i8 {
    (panels[offset(n, k, j, t)] as u8 ^ 0x80) as i8
}

/// Packs `w` (`[n, k]` row-major) into `out` ([`packed_len`] bytes).
///
/// # Panics
/// Unless `w.len() == n·k` and `out.len() == packed_len(n, k)`.
pub fn pack(w: &[i8], n: usize, k: usize, out: &mut [i8]) {
    assert_eq!(w.len(), n * k);
    assert_eq!(Some(out.len()), packed_len(n, k));
    out.fill(0);
    for (j, row) in w.chunks_exact(k.max(1)).enumerate().take(n) {
        for (t, &v) in row.iter().enumerate() {
            out[offset(n, k, j, t)] = (v as u8 ^ 0x80) as i8;
        }
    }
}

/// The column terms `ct[j] = bias[j] − zx·Σ_t w(j, t)` (wrapping) of `w` (`[n, k]`).
///
/// # Panics
/// Unless `w.len() == n·k`, `out.len() == n` and the bias (if any) holds `n` values.
pub fn column_terms(w: &[i8], n: usize, k: usize, bias: Option<&[i32]>, zx: i32, out: &mut [i32]) {
    assert_eq!(w.len(), n * k);
    assert_eq!(out.len(), n);
    for (j, o) in out.iter_mut().enumerate() {
        let s = w[j * k..(j + 1) * k]
            .iter()
            .fold(0i32, |a, &v| a.wrapping_add(v as i32));
        *o = bias.map_or(0, |b| b[j]).wrapping_sub(zx.wrapping_mul(s));
    }
}

/// Validates the params against the input and output lengths.
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub fn check(
    p: &PackedFullyConnectedParams<'_>,
    input_len: usize,
    output_len: usize,
) -> Result<(), Error> {
    let s = &p.shape;
    let (k, n) = (s.in_features as usize, s.out_features as usize);
    crate::ops::expect_len(input_len, crate::ops::elements(&[s.batch, s.in_features])?)?;
    crate::ops::expect_len(
        output_len,
        crate::ops::elements(&[s.batch, s.out_features])?,
    )?;
    let want = packed_len(n, k).ok_or(crate::ops::param_err())?;
    crate::ops::expect_len(p.panels.len(), want)?;
    crate::ops::expect_len(p.column_terms.len(), n)?;
    crate::ops::check_zero_point(p.output_zero_point)?;
    crate::ops::check_per_channel(p.output_multiplier, p.output_shift, n)?;
    crate::ops::check_clamp_i8(p.activation)
}

/// Runs the op: the AVX-512 VNNI panel kernel where the CPU has it (bit-exact to
/// [`reference::eval_i8`]), the reference elsewhere. Requires a successful [`check`].
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub fn eval_i8(p: &PackedFullyConnectedParams<'_>, input: &[i8], output: &mut [i8]) {
    #[cfg(all(
        target_arch = "x86_64",
        any(test, feature = "std"),
        not(feature = "reference-kernels")
    ))]
    if let Some(cpu) = crate::ops::gemm_avx512::detected() {
        if eval_i8_avx512_on(cpu, p, input, output) {
            return;
        }
    }
    reference::eval_i8(p, input, output)
}

/// The AVX-512 VNNI form ([`crate::ops::gemm_avx512::gemm_packed`]).
#[cfg(all(target_arch = "x86_64", any(test, feature = "std")))]
pub(crate) fn eval_i8_avx512_on(
    cpu: crate::ops::gemm_avx512::Avx512Vnni,
    p: &PackedFullyConnectedParams<'_>,
    input: &[i8],
    output: &mut [i8],
) -> bool {
    let k = p.shape.in_features as usize;
    let n = p.shape.out_features as usize;
    let m = p.shape.batch as usize;
    let epi = crate::ops::gemm_avx2::Epilogue {
        bias: None,
        multiplier: p.output_multiplier,
        shift: p.output_shift,
        zero_point: p.output_zero_point,
        min: p.activation.min,
        max: p.activation.max,
    };
    crate::ops::gemm_avx512::gemm_packed(
        cpu,
        m,
        n,
        k,
        input,
        p.panels,
        p.column_terms,
        &epi,
        output,
    )
}

/// The specification: plain loops over the packed layout.
pub mod reference {
    use super::{weight, PackedFullyConnectedParams};
    use crate::quant::requantize_to_i8;

    /// `y[i][j] = requantize(ct[j] + Σ_t x[i][t]·w(j, t))`. Requires a successful
    /// [`super::check`].
    pub fn eval_i8(p: &PackedFullyConnectedParams<'_>, input: &[i8], output: &mut [i8]) {
        let k = p.shape.in_features as usize;
        let n = p.shape.out_features as usize;
        for (x, y) in input.chunks_exact(k).zip(output.chunks_exact_mut(n)) {
            for (j, yo) in y.iter_mut().enumerate() {
                let mut acc = p.column_terms[j];
                for (t, &xt) in x.iter().enumerate() {
                    acc = acc.wrapping_add(xt as i32 * weight(p.panels, n, k, j, t) as i32);
                }
                *yo = requantize_to_i8(
                    acc,
                    p.output_multiplier[j],
                    p.output_shift[j],
                    p.output_zero_point,
                    p.activation.min,
                    p.activation.max,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{reference as v1, FullyConnectedParams};
    use super::*;
    use crate::ops::testing::Rng;

    /// Random FullyConnected params (per-channel requantization).
    struct Case {
        shape: FullyConnectedShape,
        w: Vec<i8>,
        bias: Option<Vec<i32>>,
        zx: i32,
        zy: i32,
        mult: Vec<i32>,
        shift: Vec<i32>,
        act: ClampI8,
    }

    fn case(rng: &mut Rng, batch: usize, k: usize, n: usize) -> Case {
        Case {
            shape: FullyConnectedShape {
                batch: batch as u32,
                in_features: k as u32,
                out_features: n as u32,
            },
            w: rng.i8_vec(n * k),
            bias: if rng.one_in(4) {
                None
            } else {
                Some((0..n).map(|_| rng.range(-40_000, 40_000)).collect())
            },
            zx: rng.range(-128, 127),
            zy: rng.range(-128, 127),
            mult: (0..n).map(|_| rng.range(1 << 29, i32::MAX)).collect(),
            shift: (0..n).map(|_| rng.range(-12, 2)).collect(),
            act: if rng.one_in(3) {
                ClampI8 { min: 0, max: 127 }
            } else {
                ClampI8 {
                    min: -128,
                    max: 127,
                }
            },
        }
    }

    /// The layout round-trips: [`weight`] reads back every packed value, and padding is 0.
    #[test]
    fn pack_then_weight_round_trips() {
        let mut rng = Rng::new(0xFACC);
        for _ in 0..200 {
            let (n, k) = (rng.range(1, 150) as usize, rng.range(1, 90) as usize);
            let w = rng.i8_vec(n * k);
            let mut p = vec![0i8; packed_len(n, k).unwrap()];
            pack(&w, n, k, &mut p);
            let mut seen = vec![false; p.len()];
            for j in 0..n {
                for t in 0..k {
                    assert_eq!(
                        weight(&p, n, k, j, t),
                        w[j * k + t],
                        "n {n} k {k} ({j}, {t})"
                    );
                    seen[offset(n, k, j, t)] = true;
                }
            }
            for (b, s) in p.iter().zip(&seen) {
                assert!(*s || *b == 0, "padding byte not zero (n {n}, k {k})");
            }
        }
    }

    /// Version 2 (pre-packed, column terms) gives version 1's outputs bit for bit, through the
    /// reference and through the kernel `eval_i8` selects, on random shapes and values.
    #[test]
    fn packed_matches_unpacked_bit_exact() {
        let mut rng = Rng::new(0x9ACE);
        for i in 0..300 {
            let batch = [1, 3, 4, 5, 17, 64][i % 6];
            let (k, n) = if i % 7 == 0 {
                ([128, 512, 1536][i % 3], [128, 512, 65][i % 3])
            } else {
                (rng.range(1, 300) as usize, rng.range(1, 200) as usize)
            };
            let c = case(&mut rng, batch, k, n);
            let x = rng.i8_vec(batch * k);
            let v1p = FullyConnectedParams {
                shape: c.shape,
                weights: &c.w,
                bias: c.bias.as_deref(),
                input_zero_point: c.zx,
                output_zero_point: c.zy,
                output_multiplier: &c.mult,
                output_shift: &c.shift,
                activation: c.act,
            };
            let mut want = vec![0i8; batch * n];
            v1::eval_i8(&v1p, &x, &mut want);
            let mut panels = vec![0i8; packed_len(n, k).unwrap()];
            pack(&c.w, n, k, &mut panels);
            let mut ct = vec![0i32; n];
            column_terms(&c.w, n, k, c.bias.as_deref(), c.zx, &mut ct);
            let p = PackedFullyConnectedParams {
                shape: c.shape,
                panels: &panels,
                column_terms: &ct,
                output_zero_point: c.zy,
                output_multiplier: &c.mult,
                output_shift: &c.shift,
                activation: c.act,
            };
            check(&p, x.len(), want.len()).unwrap();
            let mut got = vec![0i8; batch * n];
            reference::eval_i8(&p, &x, &mut got);
            assert_eq!(got, want, "reference, case {i}: batch {batch} k {k} n {n}");
            let mut got = vec![0i8; batch * n];
            eval_i8(&p, &x, &mut got);
            assert_eq!(
                got, want,
                "selected kernel, case {i}: batch {batch} k {k} n {n}"
            );
            #[cfg(target_arch = "x86_64")]
            if let Some(cpu) = crate::ops::gemm_avx512::detected() {
                let mut got = vec![0i8; batch * n];
                assert!(eval_i8_avx512_on(cpu, &p, &x, &mut got));
                assert_eq!(got, want, "avx512, case {i}: batch {batch} k {k} n {n}");
            }
        }
    }

    /// Wrong panel or column-term lengths are errors, not panics.
    #[test]
    fn check_rejects_wrong_lengths() {
        let (n, k) = (20, 9);
        let panels = vec![0i8; packed_len(n, k).unwrap()];
        let ct = vec![0i32; n];
        let mult = vec![1 << 30; n];
        let shift = vec![0; n];
        let p = PackedFullyConnectedParams {
            shape: FullyConnectedShape {
                batch: 2,
                in_features: k as u32,
                out_features: n as u32,
            },
            panels: &panels,
            column_terms: &ct,
            output_zero_point: 0,
            output_multiplier: &mult,
            output_shift: &shift,
            activation: ClampI8 {
                min: -128,
                max: 127,
            },
        };
        assert!(check(&p, 2 * k, 2 * n).is_ok());
        assert!(check(
            &PackedFullyConnectedParams {
                panels: &panels[1..],
                ..p
            },
            2 * k,
            2 * n
        )
        .is_err());
        assert!(check(
            &PackedFullyConnectedParams {
                column_terms: &ct[1..],
                ..p
            },
            2 * k,
            2 * n
        )
        .is_err());
        assert!(check(&p, 2 * k + 1, 2 * n).is_err());
    }
}
