//! AVX-512BW int8 table lookup, bit-exact to [`super::lookup_i8`].
//!
//! Without VBMI there is no 256-entry byte permute, so the table is split by the index's high
//! nibble into sixteen rows of sixteen bytes, each broadcast to the four 128-bit lanes of a
//! register. Per sixty-four inputs: the low nibbles index every row with `vpshufb`, and a tree
//! of byte blends on the four high bits selects which row's result each byte keeps (see
//! [`look`]). Thirty-six instructions per sixty-four bytes instead of sixty-four loads; the last
//! `len % 64` bytes use a masked load and store.

use core::arch::x86_64::*;

use super::{LutParams, TABLE_LEN};

/// AVX-512BW lookup.
///
/// # Safety
/// The CPU must support AVX512F and AVX512BW. Requires a successful [`super::check_i8`].
#[target_feature(enable = "avx512f,avx512bw")]
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub unsafe fn eval_i8(p: &LutParams<'_>, input: &[i8], output: &mut [i8]) {
    let Ok(table) = <&[i8; TABLE_LEN]>::try_from(p.table) else {
        return; // unreachable after `check_i8`
    };
    let mut rows = [_mm512_setzero_si512(); 16];
    for (h, r) in rows.iter_mut().enumerate() {
        // SAFETY: `table` holds 256 bytes; row `h` reads `table[16h..16h + 16]`.
        *r = _mm512_broadcast_i32x4(unsafe {
            _mm_loadu_si128(table.as_ptr().add(16 * h) as *const __m128i)
        });
    }
    let n = input.len().min(output.len());
    let mut i = 0;
    while i + 64 <= n {
        // SAFETY: `i + 64 <= n`: 64-byte unaligned load and store inside both slices.
        unsafe {
            let x = _mm512_loadu_si512(input.as_ptr().add(i) as *const _);
            _mm512_storeu_si512(output.as_mut_ptr().add(i) as *mut _, look(&rows, x));
        }
        i += 64;
    }
    if i < n {
        let m: __mmask64 = (1u64 << (n - i)) - 1;
        // SAFETY: the mask covers `n - i < 64` bytes from `i`, inside both slices; masked-off
        // bytes are neither read nor written.
        unsafe {
            let x = _mm512_maskz_loadu_epi8(m, input.as_ptr().add(i));
            _mm512_mask_storeu_epi8(output.as_mut_ptr().add(i), m, look(&rows, x));
        }
    }
}

/// Sixty-four lookups: row `x >> 4` (as an unsigned nibble), entry `x & 15` of `rows`. A
/// function rather than a closure: closures do not inherit `eval_i8`'s target features.
///
/// Every row is shuffled by the low nibbles (16 `vpshufb`), then a binary tree of byte blends
/// keeps, per byte, the row its high nibble names: bit 4 of `x` picks between rows `2j` and
/// `2j + 1`, bit 5 between those pairs, and so on (4 `vptestmb`, 15 `vpblendmb`). Comparing the
/// high nibble with each row number instead costs 16 compares into masks, which like `vpshufb`
/// run only on port 5 of this kind of CPU (32 port-5 instructions per 64 bytes against 20 here;
/// the blends also run on port 0).
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn look(rows: &[__m512i; 16], x: __m512i) -> __m512i {
    let lo = _mm512_and_si512(x, _mm512_set1_epi8(0x0F));
    let bit = |b: i8| _mm512_test_epi8_mask(x, _mm512_set1_epi8(b));
    let (b4, b5, b6, b7) = (bit(0x10), bit(0x20), bit(0x40), bit(0x80u8 as i8));
    // `vpshufb` zeroes a byte whose index has bit 7 set; `lo` never has it.
    let pair = |j: usize| {
        _mm512_mask_blend_epi8(
            b4,
            _mm512_shuffle_epi8(rows[2 * j], lo),
            _mm512_shuffle_epi8(rows[2 * j + 1], lo),
        )
    };
    let quad = |j: usize| _mm512_mask_blend_epi8(b5, pair(2 * j), pair(2 * j + 1));
    let oct = |j: usize| _mm512_mask_blend_epi8(b6, quad(2 * j), quad(2 * j + 1));
    _mm512_mask_blend_epi8(b7, oct(0), oct(1))
}

/// Whether this CPU runs [`eval_i8`] (AVX512F and AVX512BW).
#[cfg(any(test, feature = "std"))]
pub(crate) fn detected() -> bool {
    std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bw")
}

/// Safe entry for kernel tables built after [`detected`].
#[cfg(any(test, feature = "std"))]
#[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
pub(crate) fn eval_i8_detected(p: &LutParams<'_>, input: &[i8], output: &mut [i8]) {
    debug_assert!(detected());
    // SAFETY: only stored in a kernel table by `crate::arch::ops_table_avx2` after `detected()`.
    unsafe { eval_i8(p, input, output) }
}
