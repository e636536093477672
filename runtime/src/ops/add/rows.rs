//! Row walk of a broadcast binary op (Add, Mul): the output is split into rows along which each
//! input is either contiguous or one repeated value, after merging adjacent axes that broadcast
//! alike (so `[1, 4, 64, 64] + [1, 1, 64, 64]` is 4 rows of 4096, `[64, 128] + [128]` 64 rows of
//! 128, `[4, 64, 64] · [1]` one row of 16384). Kernels then run plain loops over each row.

use crate::ops::BroadcastShape;

/// One input's part of an output row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RowInput {
    /// Index of the row's first value in the input.
    pub start: usize,
    /// 1: the row reads `len` consecutive values from `start`; 0: it repeats the value at `start`.
    pub step: usize,
}

/// Calls `f(output_start, len, input1, input2)` for every output row, in output order; the rows
/// cover the whole output. Requires a successful `BroadcastShape::check`.
///
/// Always inlined, and `f` is called from one place: the kernels' closures, which carry their
/// target features, then inline into the kernel instead of being compiled as functions of their
/// own (outside `.text.hot.edgeloop`, in one more resident code window).
#[inline(always)]
pub(crate) fn for_each_row(
    shape: &BroadcastShape,
    mut f: impl FnMut(usize, usize, RowInput, RowInput),
) {
    // Axes of extent > 1, merged while both inputs broadcast the same way: (extent, b1, b2)
    // with `b` true where the input is repeated along the axis.
    let mut axes = [(1usize, false, false); 4];
    let mut n = 0;
    for k in 0..4 {
        let o = shape.output[k] as usize;
        if o == 1 {
            continue;
        }
        let b1 = shape.input1[k] == 1;
        let b2 = shape.input2[k] == 1;
        if n > 0 && axes[n - 1].1 == b1 && axes[n - 1].2 == b2 {
            axes[n - 1].0 *= o;
        } else {
            axes[n] = (o, b1, b2);
            n += 1;
        }
    }
    if n == 0 {
        // One element: one row of length 1 (on the general path: `f` has one call site).
        axes[0] = (1, false, false);
        n = 1;
    }
    // Input strides per merged axis (0 where broadcast).
    let mut s1 = [0usize; 4];
    let mut s2 = [0usize; 4];
    let (mut a1, mut a2) = (1usize, 1usize);
    for k in (0..n).rev() {
        let (o, b1, b2) = axes[k];
        if !b1 {
            s1[k] = a1;
            a1 *= o;
        }
        if !b2 {
            s2[k] = a2;
            a2 *= o;
        }
    }
    let (len, b1, b2) = axes[n - 1];
    let (step1, step2) = (usize::from(!b1), usize::from(!b2));
    // Outer axes 0..n-1, at most three, walked as an odometer.
    let outer = n - 1;
    let rows: usize = axes[..outer].iter().map(|a| a.0).product();
    let mut idx = [0usize; 3];
    let (mut base1, mut base2) = (0usize, 0usize);
    for r in 0..rows {
        f(
            r * len,
            len,
            RowInput {
                start: base1,
                step: step1,
            },
            RowInput {
                start: base2,
                step: step2,
            },
        );
        // Advance the odometer (last outer axis fastest).
        let mut k = outer;
        while k > 0 {
            k -= 1;
            idx[k] += 1;
            base1 += s1[k];
            base2 += s2[k];
            if idx[k] < axes[k].0 {
                break;
            }
            base1 -= s1[k] * axes[k].0;
            base2 -= s2[k] * axes[k].0;
            idx[k] = 0;
        }
    }
}

/// `out[i] = op(input1[i1], input2[i2])` over the broadcast, one row at a time, in one loop for
/// every kind of row (each input's index advances by its row step, 0 or 1): the scalar
/// reference kernels' walk, one copy of `op` where [`map_rows`] makes four. Requires a successful
/// `BroadcastShape::check` for the three lengths.
#[inline(always)]
pub(crate) fn map_rows_stepped<T: Copy, U>(
    shape: &BroadcastShape,
    input1: &[T],
    input2: &[T],
    output: &mut [U],
    op: impl Fn(T, T) -> U,
) {
    for_each_row(shape, |o, len, a, b| {
        for (j, y) in output[o..o + len].iter_mut().enumerate() {
            *y = op(input1[a.start + j * a.step], input2[b.start + j * b.step]);
        }
    });
}

/// `out[i] = op(input1[i1], input2[i2])` over the broadcast, one row at a time (the loops
/// vectorize; the result is the same as the element-by-element walk). Requires a successful
/// `BroadcastShape::check` for the three lengths.
#[inline(always)]
pub(crate) fn map_rows<T: Copy, U>(
    shape: &BroadcastShape,
    input1: &[T],
    input2: &[T],
    output: &mut [U],
    op: impl Fn(T, T) -> U,
) {
    let op = &op;
    for_each_row(shape, |o, len, a, b| {
        let y = &mut output[o..o + len];
        match (a.step, b.step) {
            (1, 1) => zip_both(
                y,
                &input1[a.start..a.start + len],
                &input2[b.start..b.start + len],
                op,
            ),
            (1, _) => {
                let v = input2[b.start];
                zip_one(y, &input1[a.start..a.start + len], move |u| op(u, v));
            }
            (_, 1) => {
                let u = input1[a.start];
                zip_one(y, &input2[b.start..b.start + len], move |v| op(u, v));
            }
            _ => {
                let (u, v) = (input1[a.start], input2[b.start]);
                y.iter_mut().for_each(|t| *t = op(u, v));
            }
        }
    });
}

// Row loops kept out of line so that each is a simple loop the compiler vectorizes.

#[inline(never)]
fn zip_both<T: Copy, U>(y: &mut [U], x1: &[T], x2: &[T], op: &impl Fn(T, T) -> U) {
    for ((y, &u), &v) in y.iter_mut().zip(x1).zip(x2) {
        *y = op(u, v);
    }
}

#[inline(never)]
fn zip_one<T: Copy, U>(y: &mut [U], x: &[T], op: impl Fn(T) -> U) {
    for (y, &u) in y.iter_mut().zip(x) {
        *y = op(u);
    }
}

/// An f32 binary op of [`map_rows_f32_avx512`].
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinaryF32 {
    /// `a + b`.
    Add,
    /// `a · b`.
    Mul,
}

/// [`map_rows`] for `act.apply(op(a, b))` on f32, sixteen lanes at a time: the same IEEE
/// operation on each element (one `vaddps`/`vmulps` lane), so the same bits. The clamp is
/// `max(min, min(max, x))` with `vminps`/`vmaxps` returning their second operand `x` when it is
/// NaN, which is [`ClampF32::apply`](crate::ops::ClampF32::apply) for `min <= max` (checked by
/// `check_clamp_f32`), signed zeros included. Row tails use masked loads and stores. Requires a
/// successful `BroadcastShape::check` for the three lengths and `act.min <= act.max`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub(crate) fn map_rows_f32_avx512(
    shape: &BroadcastShape,
    input1: &[f32],
    input2: &[f32],
    output: &mut [f32],
    op: BinaryF32,
    act: crate::ops::ClampF32,
) {
    use core::arch::x86_64::*;
    let clamp = !(act.min == f32::NEG_INFINITY && act.max == f32::INFINITY);
    let (lo, hi) = (_mm512_set1_ps(act.min), _mm512_set1_ps(act.max));
    let apply = |a: __m512, b: __m512| -> __m512 {
        let v = match op {
            BinaryF32::Add => _mm512_add_ps(a, b),
            BinaryF32::Mul => _mm512_mul_ps(a, b),
        };
        if clamp {
            _mm512_max_ps(lo, _mm512_min_ps(hi, v))
        } else {
            v
        }
    };
    for_each_row(shape, |o, len, a, b| {
        let y = &mut output[o..o + len];
        // Slices of the row's inputs; a broadcast input is its one value.
        let x1 = &input1[a.start..a.start + if a.step == 1 { len } else { 1 }];
        let x2 = &input2[b.start..b.start + if b.step == 1 { len } else { 1 }];
        let (s1, s2) = (a.step == 1, b.step == 1);
        let (v1, v2) = (_mm512_set1_ps(x1[0]), _mm512_set1_ps(x2[0]));
        // The 16 values at `i` of a row input (its value when broadcast), lanes in `m` only.
        let load = |x: &[f32], contiguous: bool, v: __m512, i: usize, m: __mmask16| {
            if contiguous {
                debug_assert!(i + (m.count_ones() as usize) <= x.len());
                // SAFETY: the caller's mask covers lanes `0..k` with `i + k <= len == x.len()`;
                // masked-off lanes are not read.
                unsafe { _mm512_maskz_loadu_ps(m, x.as_ptr().add(i)) }
            } else {
                v
            }
        };
        let full = len - len % 16;
        let mut i = 0;
        while i < full {
            let r = apply(load(x1, s1, v1, i, 0xFFFF), load(x2, s2, v2, i, 0xFFFF));
            // SAFETY: `i + 16 <= full <= len == y.len()`.
            unsafe { _mm512_storeu_ps(y.as_mut_ptr().add(i), r) };
            i += 16;
        }
        if full < len {
            let m: __mmask16 = (1u16 << (len - full)) - 1;
            let r = apply(load(x1, s1, v1, full, m), load(x2, s2, v2, full, m));
            // SAFETY: the mask covers lanes `0..len - full`, inside `y`; the others are not
            // written.
            unsafe { _mm512_mask_storeu_ps(y.as_mut_ptr().add(full), m, r) };
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::Rng;
    use std::vec::Vec;

    /// The rows list the same `(index1, index2)` pairs, in output order, as
    /// `BroadcastShape::for_each`.
    #[test]
    fn rows_match_for_each() {
        let mut rng = Rng::new(0x5057);
        for _ in 0..2000 {
            let shape = crate::ops::add::tests::random_broadcast(&mut rng);
            let mut want = Vec::new();
            shape.for_each(|i1, i2| want.push((i1, i2)));
            let mut got = Vec::new();
            for_each_row(&shape, |o, len, a, b| {
                assert_eq!(o, got.len(), "{shape:?}");
                for j in 0..len {
                    got.push((a.start + j * a.step, b.start + j * b.step));
                }
            });
            assert_eq!(got, want, "{shape:?}");
        }
    }
}
