//! The ArgMax specification.

use super::ArgMaxParams;

/// ArgMax for any ordered element type: first index of the largest value (by `>`).
pub fn eval<T: Copy + PartialOrd>(p: &ArgMaxParams, input: &[T], output: &mut [i32]) {
    let (axis, inner) = (p.axis as usize, p.inner as usize);
    for (x, y) in input
        .chunks_exact(axis * inner)
        .zip(output.chunks_exact_mut(inner))
    {
        for (j, yj) in y.iter_mut().enumerate() {
            let mut best = 0usize;
            for a in 1..axis {
                if x[a * inner + j] > x[best * inner + j] {
                    best = a;
                }
            }
            *yj = best as i32;
        }
    }
}
