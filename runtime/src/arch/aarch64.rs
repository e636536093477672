//! aarch64 NEON implementation of the offset dot product.
//!
//! 16 int8 values per operand are widened to 16-bit lanes (`sxtl`/`sxtl2`), the offset is added
//! (results in `[-383, 382]`), and `smlal`/`smlal2` multiply-accumulate into 32-bit lanes modulo
//! 2³²; `addv` sums the lanes modulo 2³². Bit-exact to the reference whatever the order.

use core::arch::aarch64::*;

/// NEON offset dot product (NEON is baseline on the aarch64 targets this module is built for).
pub fn dot_offset_i8_neon(a: &[i8], a_offset: i32, b: &[i8], b_offset: i32) -> i32 {
    // SAFETY: this module is compiled only with `target_feature = "neon"` enabled statically.
    unsafe { dot_neon(a, a_offset, b, b_offset) }
}

#[target_feature(enable = "neon")]
fn dot_neon(a: &[i8], a_offset: i32, b: &[i8], b_offset: i32) -> i32 {
    if a_offset.abs() > super::MAX_DOT_OFFSET || b_offset.abs() > super::MAX_DOT_OFFSET {
        return super::dot_offset_i8(a, a_offset, b, b_offset);
    }
    let n = a.len().min(b.len());
    let oa = vdupq_n_s16(a_offset as i16);
    let ob = vdupq_n_s16(b_offset as i16);
    let mut acc0 = vdupq_n_s32(0);
    let mut acc1 = vdupq_n_s32(0);
    let mut i = 0;
    while i + 16 <= n {
        debug_assert!(i + 16 <= a.len() && i + 16 <= b.len());
        // SAFETY: `i + 16 <= n <= len` of both slices (loop condition): the 16-byte loads stay in
        // bounds; `vld1q_s8` has no alignment requirement.
        let (va, vb) = unsafe { (vld1q_s8(a.as_ptr().add(i)), vld1q_s8(b.as_ptr().add(i))) };
        let a_lo = vaddq_s16(vmovl_s8(vget_low_s8(va)), oa);
        let a_hi = vaddq_s16(vmovl_high_s8(va), oa);
        let b_lo = vaddq_s16(vmovl_s8(vget_low_s8(vb)), ob);
        let b_hi = vaddq_s16(vmovl_high_s8(vb), ob);
        acc0 = vmlal_s16(acc0, vget_low_s16(a_lo), vget_low_s16(b_lo));
        acc1 = vmlal_high_s16(acc1, a_lo, b_lo);
        acc0 = vmlal_s16(acc0, vget_low_s16(a_hi), vget_low_s16(b_hi));
        acc1 = vmlal_high_s16(acc1, a_hi, b_hi);
        i += 16;
    }
    let sum = vaddvq_s32(vaddq_s32(acc0, acc1));
    sum.wrapping_add(super::dot_offset_i8(&a[i..n], a_offset, &b[i..n], b_offset))
}
