//! Optimized FullyConnected variants against the reference, every output element, on random cases
//! (odd sizes, tails, 1×N and N×1, edge values, zero points and shifts of both signs; see
//! [`super::tests::FcCase::random`]).

use super::tests::assert_bit_exact;

/// Fewer under Miri (`scripts/sanitizers.sh`), where each case is interpreted.
const CASES: usize = if cfg!(miri) { 16 } else { 300 };

#[test]
fn bit_exact_dsp() {
    // Real SMLAD on thumbv7em; the portable emulation of the same instructions elsewhere.
    assert_bit_exact(super::dsp::eval_i8, 0xD5B0, CASES);
}

#[test]
fn bit_exact_avx2() {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        assert_bit_exact(super::avx2::eval_i8_detected, 0xA7C2, CASES);
        // Wider: several blocks of widened weights (up to 1000 inputs, 90 outputs) and rows
        // beyond the widened buffer (over 2032 inputs: the per-row dot-product form).
        let mut rng = crate::ops::testing::Rng::new(0xA7C3);
        for i in 0..40 {
            let c = super::tests::FcCase::random_with(
                &mut rng,
                if i % 4 == 0 { 2600 } else { 1000 },
                90,
            );
            let p = c.params();
            super::check_i8(&p, c.input.len(), c.output_len()).expect("valid case");
            let mut want = std::vec![0i8; c.output_len()];
            let mut got = std::vec![0i8; c.output_len()];
            super::reference::eval_i8(&p, &c.input, &mut want);
            super::avx2::eval_i8_detected(&p, &c.input, &mut got);
            assert_eq!(got, want, "case {i}: {:?}", c.shape);
        }
        return;
    }
    println!("skipped: fully_connected/avx2");
}

#[test]
fn bit_exact_neon() {
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    {
        assert_bit_exact(super::neon::eval_i8, 0x4E0, CASES);
        return;
    }
    #[allow(unreachable_code)]
    {
        println!("skipped: fully_connected/neon");
    }
}

#[test]
fn bit_exact_kernel_table() {
    // Whatever `arch::ops_table_best()` selected on this machine.
    assert_bit_exact(
        crate::arch::ops_table_best().fully_connected_i8,
        0xBE57,
        CASES,
    );
}
