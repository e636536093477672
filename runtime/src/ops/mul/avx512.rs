//! AVX-512 f32 Mul with broadcasting, bit-exact to [`super::reference::eval_f32`]: the row walk
//! of the f32 Add ([`map_rows_f32_avx512`](crate::ops::add::rows::map_rows_f32_avx512)), one
//! `vmulps` lane per element.

use super::MulF32Params;
use crate::ops::add::rows::{map_rows_f32_avx512, BinaryF32};

/// AVX-512 f32 Mul.
///
/// # Safety
/// The CPU must support AVX512F. Requires a successful [`super::check_f32`].
#[target_feature(enable = "avx512f")]
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub fn eval_f32(p: &MulF32Params, input1: &[f32], input2: &[f32], output: &mut [f32]) {
    map_rows_f32_avx512(
        &p.shape,
        input1,
        input2,
        output,
        BinaryF32::Mul,
        p.activation,
    );
}

/// Whether this CPU runs [`eval_f32`] (AVX512F).
#[cfg(any(test, feature = "std"))]
pub(crate) fn detected() -> bool {
    std::is_x86_feature_detected!("avx512f")
}

/// Safe entry for kernel tables built after [`detected`].
#[cfg(any(test, feature = "std"))]
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub(crate) fn eval_f32_detected(
    p: &MulF32Params,
    input1: &[f32],
    input2: &[f32],
    output: &mut [f32],
) {
    debug_assert!(detected());
    // SAFETY: only stored in a kernel table by `crate::arch::ops_table_avx2` after `detected()`.
    unsafe { eval_f32(p, input1, input2, output) }
}
