//! Optimized Conv2D variants against the reference, every output element, on the random cases of
//! [`super::tests::assert_bit_exact`] (odd sizes, padding, strides, dilations, zero points), and
//! on wider random cases (up to 40 input and 70 output channels: several 4-channel groups, a
//! remainder, patches of many 16-lane chunks and a partial one, and blocks of output channels).

use super::tests::{assert_bit_exact, ConvCase};
use super::{check_i8, reference};
use crate::ops::testing::Rng;
use crate::ops::Conv2dI8Fn;
use std::vec;

const CASES: usize = 60;

fn assert_bit_exact_wide(variant: Conv2dI8Fn, seed: u64, cases: usize, max_in: u32, max_out: u32) {
    let mut rng = Rng::new(seed);
    for i in 0..cases {
        let c = ConvCase::random_with(&mut rng, max_in, max_out);
        let p = c.params();
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
    assert_bit_exact(super::dsp::eval_i8, 0xC0D5, CASES);
}

/// The DSP kernel's pointwise path (1×1, stride 1, no padding: one FullyConnected over all
/// pixels, rows four at a time): random cases made pointwise, sizes up to 40 channels in and out.
#[test]
fn bit_exact_dsp_pointwise() {
    let mut rng = Rng::new(0xC0D6);
    for i in 0..80 {
        let mut c = ConvCase::random_with(&mut rng, 40, 40);
        let [n, h, w, in_c] = c.shape.input;
        let out_c = c.shape.output[3];
        c.shape.kernel = [1, 1];
        c.shape.stride = [1, 1];
        c.shape.padding = crate::ops::Padding::default();
        c.shape.output = [n, h, w, out_c];
        c.weights = rng.weights((out_c * in_c) as usize);
        let p = c.params();
        check_i8(&p, c.input.len(), c.shape.output_len()).expect("valid case");
        let mut want = vec![0i8; c.shape.output_len()];
        let mut got = vec![0i8; c.shape.output_len()];
        reference::eval_i8(&p, &c.input, &mut want);
        super::dsp::eval_i8(&p, &c.input, &mut got);
        assert_eq!(got, want, "case {i}: {:?}", c.shape);
    }
}

#[test]
fn bit_exact_avx2() {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        assert_bit_exact(super::avx2::eval_i8_detected, 0xC0A2, 200);
        assert_bit_exact_wide(super::avx2::eval_i8_detected, 0xC0A3, 60, 40, 70);
        // Patches of 9·230 = 2070 lanes exceed the widened path's buffer (the per-tap loop runs);
        // 9·200 = 1800 lanes take blocks of 4 output channels.
        assert_bit_exact_wide(super::avx2::eval_i8_detected, 0xC0A4, 6, 230, 9);
        return;
    }
    println!("skipped: conv2d/avx2");
}

#[test]
fn bit_exact_kernel_table() {
    assert_bit_exact(crate::arch::ops_table_best().conv2d_i8, 0xC0BE, CASES);
    assert_bit_exact_wide(crate::arch::ops_table_best().conv2d_i8, 0xC0BF, 20, 24, 40);
}
