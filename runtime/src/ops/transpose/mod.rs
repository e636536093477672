//! Transpose: permutes the axes of a tensor of rank ≤ 4 (`out.dims[i] = in.dims[perm[i]]`).
//!
//! Element-type generic (int8, f32, i32): values are moved, never changed, so the int8 output has
//! the input's quantization. Attention uses it for `[seq, heads, d] → [heads, seq, d]`.
//! Lower ranks are right-aligned in [`Dims`] with leading 1s; their `perm` entries are the
//! identity for the padding axes.

#[cfg(test)]
mod tests;

use super::Dims;
use crate::Error;

/// Transpose parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TransposeParams {
    /// Input dimensions.
    pub input_dims: Dims,
    /// Output axis `i` is input axis `perm[i]`; a permutation of `0..4`.
    pub perm: [u8; 4],
}

impl TransposeParams {
    /// Output dimensions.
    pub fn output_dims(&self) -> Dims {
        let mut out = [1u32; 4];
        for (o, &p) in out.iter_mut().zip(&self.perm) {
            *o = self.input_dims[(p & 3) as usize];
        }
        out
    }
}

/// Validates the permutation and the input/output lengths.
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub fn check(p: &TransposeParams, input_len: usize, output_len: usize) -> Result<(), Error> {
    let mut seen = [false; 4];
    for &a in &p.perm {
        if a > 3 || seen[a as usize] {
            return Err(super::param_err());
        }
        seen[a as usize] = true;
    }
    let n = super::elements(&p.input_dims)?;
    super::expect_len(input_len, n)?;
    super::expect_len(output_len, n)
}

/// Transposes `input` into `output`. Requires a successful [`check`].
///
/// Walks the output row by row (its last axis): a row whose input axis is also the input's last
/// is one contiguous copy, any other row a strided gather.
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub fn eval<T: Copy>(p: &TransposeParams, input: &[T], output: &mut [T]) {
    let d = p.input_dims.map(|v| v as usize);
    // Input strides, row-major.
    let stride = [d[1] * d[2] * d[3], d[2] * d[3], d[3], 1];
    let od = p.output_dims().map(|v| v as usize);
    let s = p.perm.map(|a| stride[(a & 3) as usize]);
    let mut rows = output.chunks_exact_mut(od[3].max(1));
    for i0 in 0..od[0] {
        for i1 in 0..od[1] {
            for i2 in 0..od[2] {
                let base = i0 * s[0] + i1 * s[1] + i2 * s[2];
                let Some(out) = rows.next() else { return };
                if s[3] == 1 {
                    out.copy_from_slice(&input[base..base + out.len()]);
                } else {
                    for (y, &x) in out.iter_mut().zip(input[base..].iter().step_by(s[3])) {
                        *y = x;
                    }
                }
            }
        }
    }
}

/// int8 [`eval`]: the same output, with the transposes that move the innermost axis (attention's
/// `k^T`, `[heads, seq, d] → [heads, d, seq]`) done in 16 × 16 tiles of byte shuffles on x86_64
/// ([`Merged`] finds the 2-D transposes once size-1 axes are dropped and adjacent axes merged);
/// every other case, and the partial tiles at the edges, as [`eval`]. Requires a successful
/// [`check`].
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub fn eval_i8(p: &TransposeParams, input: &[i8], output: &mut [i8]) {
    let m = Merged::new(p);
    let r = m.rank;
    if r >= 2 && m.perm[r - 1] == r - 1 {
        // The innermost axis stays innermost: whole runs move (attention's head split and
        // merge, `[seq, heads, d] ↔ [heads, seq, d]`).
        match m.dims[r - 1] {
            16 => copy_runs::<16>(&m, input, output),
            32 => copy_runs::<32>(&m, input, output),
            64 => copy_runs::<64>(&m, input, output),
            _ => eval(p, input, output),
        }
        return;
    }
    if r <= 1 {
        // The identity once merged (NCHW -> NHWC of one channel, say): one copy.
        output.copy_from_slice(input);
        return;
    }
    if !cfg!(target_arch = "x86_64") {
        eval(p, input, output);
        return;
    }
    // Input strides of the merged axes, row-major.
    let mut in_stride = [0usize; 4];
    let mut acc = 1;
    for k in (0..r).rev() {
        in_stride[k] = acc;
        acc *= m.dims[k];
    }
    // Output extents and strides.
    let out_dims: [usize; 4] = core::array::from_fn(|k| if k < r { m.dims[m.perm[k]] } else { 1 });
    let mut out_stride = [0usize; 4];
    acc = 1;
    for k in (0..r).rev() {
        out_stride[k] = acc;
        acc *= out_dims[k];
    }
    // The input's innermost axis (extent `cols`) is output axis `om`; the output's innermost
    // axis is input axis `a` (extent `rows`, input stride `sa`). Every other axis (at most two)
    // indexes one `rows × cols` transpose.
    let Some(om) = (0..r).find(|&k| m.perm[k] == r - 1) else {
        eval(p, input, output);
        return;
    };
    let a = m.perm[r - 1];
    let t = Plane {
        rows: m.dims[a],
        cols: m.dims[r - 1],
        sa: in_stride[a],
        so: out_stride[om],
    };
    let mut batch = [(1usize, 0usize, 0usize); 2];
    let mut nb = 0;
    for k in 0..r - 1 {
        if k != om {
            batch[nb] = (out_dims[k], in_stride[m.perm[k]], out_stride[k]);
            nb += 1;
        }
    }
    for i0 in 0..batch[0].0 {
        for i1 in 0..batch[1].0 {
            let bi = i0 * batch[0].1 + i1 * batch[1].1;
            let bo = i0 * batch[0].2 + i1 * batch[1].2;
            t.run(input, bi, output, bo);
        }
    }
}

/// [`eval_i8`] of a merged transpose that keeps its innermost axis, of extent `N`: the output is
/// a sequence of `N`-byte runs of the input, each moved as one fixed-size copy (a few vector
/// moves rather than a `memcpy` call per run).
fn copy_runs<const N: usize>(m: &Merged, input: &[i8], output: &mut [i8]) {
    let r = m.rank;
    debug_assert!(r >= 2 && m.perm[r - 1] == r - 1 && m.dims[r - 1] == N);
    let mut in_stride = [0usize; 4];
    let mut acc = 1;
    for k in (0..r).rev() {
        in_stride[k] = acc;
        acc *= m.dims[k];
    }
    // The outer output axes (at most three), right-aligned: extent and input stride.
    let mut ext = [1usize; 3];
    let mut st = [0usize; 3];
    let pad = 3 - (r - 1);
    for k in 0..r - 1 {
        ext[pad + k] = m.dims[m.perm[k]];
        st[pad + k] = in_stride[m.perm[k]];
    }
    let mut runs = output.chunks_exact_mut(N);
    for a in 0..ext[0] {
        for b in 0..ext[1] {
            for c in 0..ext[2] {
                let base = a * st[0] + b * st[1] + c * st[2];
                let (Some(out), Some(src)) = (runs.next(), input.get(base..base + N)) else {
                    return;
                };
                if let (Ok(out), Ok(src)) =
                    (<&mut [i8; N]>::try_from(out), <&[i8; N]>::try_from(src))
                {
                    *out = *src;
                }
            }
        }
    }
}

/// One 2-D transpose of [`eval_i8`]: `out[bo + c·so + r] = input[bi + r·sa + c]` for
/// `r < rows`, `c < cols`.
#[derive(Debug, Clone, Copy)]
struct Plane {
    rows: usize,
    cols: usize,
    sa: usize,
    so: usize,
}

impl Plane {
    fn run(&self, input: &[i8], bi: usize, output: &mut [i8], bo: usize) {
        if self.so == self.rows && self.cols >= 16 {
            // Few rows (NCHW -> NHWC of 2 to 4 channels): the output is one run of `cols`
            // groups of `rows` bytes.
            let out = &mut output[bo..bo + self.rows * self.cols];
            let row = |r: usize| &input[bi + r * self.sa..bi + r * self.sa + self.cols];
            match self.rows {
                2 => return interleave([row(0), row(1)], out),
                3 => return interleave([row(0), row(1), row(2)], out),
                4 => return interleave([row(0), row(1), row(2), row(3)], out),
                _ => {}
            }
        }
        let (full_r, full_c) = (self.rows - self.rows % 16, self.cols - self.cols % 16);
        for r0 in (0..full_r).step_by(16) {
            for c0 in (0..full_c).step_by(16) {
                self.tile16(
                    input,
                    bi + r0 * self.sa + c0,
                    output,
                    bo + c0 * self.so + r0,
                );
            }
        }
        // Edges: the last `rows % 16` rows of every column, the last `cols % 16` columns of the
        // first `full_r` rows.
        for c in 0..self.cols {
            let r_from = if c < full_c { full_r } else { 0 };
            let row = &mut output[bo + c * self.so..];
            for r in r_from..self.rows {
                row[r] = input[bi + r * self.sa + c];
            }
        }
    }

    /// A 16 × 16 tile: input rows at `i + j·sa`, output rows at `o + c·so`.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    fn tile16(&self, input: &[i8], i: usize, output: &mut [i8], o: usize) {
        use core::arch::x86_64::*;
        // Rows of the tile; `m[R]` byte `B` is element (row R, column B).
        let mut m: [__m128i; 16] = core::array::from_fn(|j| {
            let row = &input[i + j * self.sa..i + j * self.sa + 16];
            // SAFETY: `row` holds 16 bytes: one unaligned 16-byte load (SSE2, baseline on
            // x86_64).
            unsafe { _mm_loadu_si128(row.as_ptr() as *const __m128i) }
        });
        // Four rounds of interleaving register `k` with `k + 8`: each rotates the 8-bit
        // position (register R, byte B) = (r3 r2 r1 r0 b3 b2 b1 b0) left by one bit, so after
        // four, register `c` byte `r` holds element (r, c).
        for _ in 0..4 {
            m = core::array::from_fn(|k| {
                let (x, y) = (m[k / 2], m[k / 2 + 8]);
                // SAFETY: SSE2 is baseline on x86_64.
                unsafe {
                    if k % 2 == 0 {
                        _mm_unpacklo_epi8(x, y)
                    } else {
                        _mm_unpackhi_epi8(x, y)
                    }
                }
            });
        }
        for (c, v) in m.iter().enumerate() {
            let row = &mut output[o + c * self.so..o + c * self.so + 16];
            // SAFETY: `row` holds 16 bytes: one unaligned 16-byte store.
            unsafe { _mm_storeu_si128(row.as_mut_ptr() as *mut __m128i, *v) };
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn tile16(&self, input: &[i8], i: usize, output: &mut [i8], o: usize) {
        for c in 0..16 {
            for r in 0..16 {
                output[o + c * self.so + r] = input[i + r * self.sa + c];
            }
        }
    }
}

/// `out[c·R + r] = rows[r][c]`: `R` rows of `out.len() / R` bytes interleaved, with the row
/// count known at compile time so that the inner loop has no bounds checks.
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
fn interleave<const R: usize>(rows: [&[i8]; R], out: &mut [i8]) {
    let cols = out.len() / R;
    let rows = rows.map(|v| &v[..cols]);
    for (c, o) in out.chunks_exact_mut(R).enumerate() {
        for (y, row) in o.iter_mut().zip(&rows) {
            *y = row[c];
        }
    }
}

/// A transpose with size-1 axes dropped and adjacent axes merged: input axes `0..rank` with
/// extents `dims` (row-major), output axis `k` is input axis `perm[k]`; no two consecutive
/// output axes are consecutive input axes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Merged {
    /// Number of axes (0 for a single element).
    pub rank: usize,
    /// Input extents of the merged axes (1 past `rank`).
    pub dims: [usize; 4],
    /// Output axis `k` is merged input axis `perm[k]` (`k` past `rank`).
    pub perm: [usize; 4],
}

impl Merged {
    /// Merges the axes of a checked transpose.
    pub(crate) fn new(p: &TransposeParams) -> Merged {
        let d = p.input_dims.map(|v| v as usize);
        // Kept input axes (extent > 1), numbered in input order.
        let mut idx = [usize::MAX; 4];
        let mut n = 0;
        for k in 0..4 {
            if d[k] > 1 {
                idx[k] = n;
                n += 1;
            }
        }
        // Output order of the kept axes, by their number; and their extents.
        let mut q = [0usize; 4];
        let mut ext = [1usize; 4];
        let mut m = 0;
        for &a in &p.perm {
            let a = (a & 3) as usize;
            if idx[a] != usize::MAX {
                q[m] = idx[a];
                ext[idx[a]] = d[a];
                m += 1;
            }
        }
        // Runs of consecutive numbers in `q` become one axis each; `group[i]` is the run (by
        // its position in the output) that kept axis `i` belongs to.
        let mut group = [0usize; 4];
        let mut runs = 0;
        for t in 0..m {
            if t == 0 || q[t] != q[t - 1] + 1 {
                runs += 1;
            }
            group[q[t]] = runs - 1;
        }
        // Merged input axes in input order: kept axis `i` starts a new one unless `i - 1` is
        // in the same run.
        let mut dims = [1usize; 4];
        let mut in_of_run = [0usize; 4];
        let mut r = 0;
        for i in 0..m {
            if i > 0 && group[i] == group[i - 1] {
                dims[r - 1] *= ext[i];
            } else {
                in_of_run[group[i]] = r;
                dims[r] = ext[i];
                r += 1;
            }
        }
        let perm = core::array::from_fn(|k| if k < runs { in_of_run[k] } else { k });
        Merged {
            rank: r,
            dims,
            perm,
        }
    }
}
