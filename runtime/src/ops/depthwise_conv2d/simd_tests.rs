//! Optimized DepthwiseConv2D variants against the reference, every output element, on random
//! cases (odd sizes, padding, strides, dilations, zero points, depth multipliers), with channel
//! counts up to 70 so that the 16-channel SIMD blocks and their scalar remainder both run.

use super::reference;
use super::tests::DwCase;
use super::{check_i8, DepthwiseConv2dParams};
use crate::ops::testing::Rng;
use crate::ops::DepthwiseConv2dI8Fn;
use std::vec;

fn assert_bit_exact_wide(variant: DepthwiseConv2dI8Fn, seed: u64, cases: usize) {
    let mut rng = Rng::new(seed);
    for i in 0..cases {
        let c = DwCase::random_with(&mut rng, 70);
        let p: DepthwiseConv2dParams<'_> = c.params();
        check_i8(&p, c.input.len(), c.shape.output_len()).expect("valid case");
        let mut want = vec![0i8; c.shape.output_len()];
        let mut got = vec![0i8; c.shape.output_len()];
        reference::eval_i8(&p, &c.input, &mut want);
        variant(&p, &c.input, &mut got);
        assert_eq!(got, want, "case {i} (seed {seed}): {:?}", c.shape);
    }
}

#[test]
fn bit_exact_dsp() {
    // Real SMLABB/SMLATT on thumbv7em; the portable emulation of the same instructions elsewhere.
    super::tests::assert_bit_exact(super::dsp::eval_i8, 0xD5D5, 200);
    assert_bit_exact_wide(super::dsp::eval_i8, 0xD5D6, 120);
}

#[test]
fn bit_exact_avx2() {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        super::tests::assert_bit_exact(super::avx2::eval_i8_detected, 0xD2A2, 200);
        assert_bit_exact_wide(super::avx2::eval_i8_detected, 0xD2A3, 120);
        return;
    }
    println!("skipped: depthwise_conv2d/avx2");
}

#[test]
fn bit_exact_kernel_table_wide_channels() {
    assert_bit_exact_wide(
        crate::arch::ops_table_best().depthwise_conv2d_i8,
        0xD2BE,
        60,
    );
}
