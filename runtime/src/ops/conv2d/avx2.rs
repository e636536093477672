//! AVX2 int8 Conv2D, bit-exact to [`super::reference::eval_i8`]: each `(tap, output channel)`
//! contribution is [`crate::arch::x86::dot_offset_i8_avx2`] over the input channels.

use super::Conv2dParams;

/// AVX2 Conv2D.
///
/// # Safety
/// The CPU must support AVX2. Requires a successful [`super::check_i8`].
#[target_feature(enable = "avx2")]
pub unsafe fn eval_i8(p: &Conv2dParams<'_>, input: &[i8], output: &mut [i8]) {
    super::dot_variant::eval_i8_with(p, input, output, |x, xo, w| {
        // SAFETY: the caller guarantees AVX2 (this function's contract).
        unsafe { crate::arch::x86::dot_offset_i8_avx2(x, xo, w, 0) }
    })
}

/// Safe entry for kernel tables built after `is_x86_feature_detected!("avx2")`.
#[cfg(any(test, feature = "std"))]
pub(crate) fn eval_i8_detected(p: &Conv2dParams<'_>, input: &[i8], output: &mut [i8]) {
    debug_assert!(std::is_x86_feature_detected!("avx2"));
    // SAFETY: only stored in a kernel table by `crate::arch::ops_table_avx2`, which checks
    // `is_x86_feature_detected!("avx2")` first.
    unsafe { eval_i8(p, input, output) }
}
