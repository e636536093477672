//! AVX-512 f32 GELU, bit-exact to [`super::reference_f32`]: sixteen values at a time through
//! [`fmath::avx512::gelu16`](crate::ops::fmath), the last `len % 16` through a masked load and
//! store.

use core::arch::x86_64::*;

use crate::ops::fmath::avx512::gelu16;

/// AVX-512 f32 GELU.
///
/// # Safety
/// The CPU must support AVX512F. Requires a successful [`super::check_f32`].
#[target_feature(enable = "avx512f")]
pub unsafe fn eval_f32(input: &[f32], output: &mut [f32]) {
    let n = input.len().min(output.len());
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: `i + 16 <= n`: 64-byte unaligned load and store inside both slices; AVX512F
        // is enabled in this function.
        unsafe {
            let y = gelu16(_mm512_loadu_ps(input.as_ptr().add(i)));
            _mm512_storeu_ps(output.as_mut_ptr().add(i), y);
        }
        i += 16;
    }
    if i < n {
        let m: __mmask16 = (1u16 << (n - i)) - 1;
        // SAFETY: the mask covers the `n - i < 16` values from `i`, inside both slices;
        // masked-off lanes are neither read nor written (they compute gelu(0)).
        unsafe {
            let y = gelu16(_mm512_maskz_loadu_ps(m, input.as_ptr().add(i)));
            _mm512_mask_storeu_ps(output.as_mut_ptr().add(i), m, y);
        }
    }
}

/// Whether this CPU runs [`eval_f32`] (AVX512F).
#[cfg(any(test, feature = "std"))]
pub(crate) fn detected() -> bool {
    std::is_x86_feature_detected!("avx512f")
}

/// Safe entry for kernel tables built after [`detected`].
#[cfg(any(test, feature = "std"))]
pub(crate) fn eval_f32_detected(input: &[f32], output: &mut [f32]) {
    debug_assert!(detected());
    // SAFETY: only stored in a kernel table by `crate::arch::ops_table_avx2` after `detected()`.
    unsafe { eval_f32(input, output) }
}
