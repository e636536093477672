//! A bounds-checked f32 matrix product over strided views of slices, for the fused CPU kernels
//! (on the `gemm` crate, the one candle's CPU matmul uses).

/// A strided `rows × cols` view into a slice: element `(i, j)` at `offset + i·rs + j·cs`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct View {
    pub offset: usize,
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl View {
    /// A row-major `rows × cols` block with row stride `rs`, at `offset`.
    pub fn rows(offset: usize, rows: usize, cols: usize, rs: usize) -> Self {
        Self {
            offset,
            rows,
            cols,
            rs,
            cs: 1,
        }
    }

    /// The transpose of this view (no copy).
    pub fn t(self) -> Self {
        Self {
            offset: self.offset,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    /// One past the largest index the view touches (0 when empty).
    fn end(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            return 0;
        }
        self.offset + (self.rows - 1) * self.rs + (self.cols - 1) * self.cs + 1
    }
}

/// Threads for a product of `macs` multiply-adds: one below about a million (a thread hand-off
/// costs more than it saves there), else candle's thread count.
fn parallelism(macs: usize) -> gemm::Parallelism {
    match candle_core::utils::get_num_threads() {
        n if n > 1 && macs >= 1 << 20 => gemm::Parallelism::Rayon(n),
        _ => gemm::Parallelism::None,
    }
}

/// `dst = (accumulate ? dst : 0) + a · b` over the views (`a` is `m × k`, `b` is `k × n`, `dst`
/// is `m × n`). Errors (never reads or writes out of bounds) when a view does not fit its slice
/// or the shapes disagree; `dst` must not overlap `a` or `b` (they are distinct slices).
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    dst: &mut [f32],
    d: View,
    accumulate: bool,
    a: &[f32],
    av: View,
    b: &[f32],
    bv: View,
) -> candle_core::Result<()> {
    let (m, k, n) = (av.rows, av.cols, bv.cols);
    if bv.rows != k || d.rows != m || d.cols != n {
        candle_core::bail!(
            "fused matmul: shapes {}x{} · {}x{} -> {}x{}",
            av.rows,
            av.cols,
            bv.rows,
            bv.cols,
            d.rows,
            d.cols
        )
    }
    if d.end() > dst.len() || av.end() > a.len() || bv.end() > b.len() {
        candle_core::bail!("fused matmul: a view exceeds its buffer")
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    dst[d.offset + i * d.rs + j * d.cs] = 0.0;
                }
            }
        }
        return Ok(());
    }
    // SAFETY: every index the product touches lies inside its slice (checked above: `end()` is
    // one past the largest), `dst` is borrowed mutably so it aliases neither input, and the
    // strides fit in isize because they index existing slices.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr().add(d.offset),
            d.cs as isize,
            d.rs as isize,
            accumulate,
            a.as_ptr().add(av.offset),
            av.cs as isize,
            av.rs as isize,
            b.as_ptr().add(bv.offset),
            bv.cs as isize,
            bv.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism(m * n * k),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_products_match_a_naive_loop_and_bounds_are_checked() {
        // a: 3x4 row-major; b given as the transpose of a 5x4 row-major buffer (4x5)
        let a: Vec<f32> = (0..12).map(|i| (i as f32 * 0.37).sin()).collect();
        let bt: Vec<f32> = (0..20).map(|i| (i as f32 * 0.91).cos()).collect();
        let mut d = vec![1f32; 15];
        let dv = View::rows(0, 3, 5, 5);
        matmul(
            &mut d,
            dv,
            true,
            &a,
            View::rows(0, 3, 4, 4),
            &bt,
            View::rows(0, 5, 4, 4).t(),
        )
        .unwrap();
        for i in 0..3 {
            for j in 0..5 {
                let want: f32 = 1.0 + (0..4).map(|p| a[i * 4 + p] * bt[j * 4 + p]).sum::<f32>();
                assert!((d[i * 5 + j] - want).abs() < 1e-5);
            }
        }
        let mut small = vec![0f32; 14];
        assert!(matmul(
            &mut small,
            dv,
            false,
            &a,
            View::rows(0, 3, 4, 4),
            &bt,
            View::rows(0, 5, 4, 4).t()
        )
        .is_err());
    }
}
