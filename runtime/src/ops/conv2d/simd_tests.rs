//! Optimized Conv2D variants against the reference, every output element, on the random cases of
//! [`super::tests::assert_bit_exact`] (odd sizes, padding, strides, dilations, zero points).

use super::tests::assert_bit_exact;

const CASES: usize = 60;

#[test]
fn bit_exact_dsp() {
    assert_bit_exact(super::dsp::eval_i8, 0xC0D5, CASES);
}

#[test]
fn bit_exact_avx2() {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        assert_bit_exact(super::avx2::eval_i8_detected, 0xC0A2, CASES);
        return;
    }
    println!("skipped: conv2d/avx2");
}

#[test]
fn bit_exact_kernel_table() {
    assert_bit_exact(crate::arch::ops_table_best().conv2d_i8, 0xC0BE, CASES);
}
