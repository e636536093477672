//! The example models run on the runtime and are compared with f64 computations of the same
//! networks.

use super::*;
use crate::image::writer::AlignedBytes;
use crate::{Interpreter, Model};

fn inputs(seed: u64, len: usize, n: usize) -> Vec<Vec<f32>> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| rng.vec(len, 1.0)).collect()
}

/// Runs an f32 image on `x`.
fn run_f32(image: &[u8], x: &[f32]) -> Vec<f32> {
    let img = AlignedBytes::new(image);
    let model = Model::parse(img.as_slice()).expect("image parses");
    let mut arena = AlignedBytes::zeroed(model.arena_bytes());
    let mut it = Interpreter::new(&model, arena.as_mut_slice()).expect("arena fits");
    it.input_f32(0).expect("f32 input").copy_from_slice(x);
    it.invoke().expect("invoke");
    it.output_f32(0).expect("f32 output").to_vec()
}

/// Runs an int8 image on `x`.
fn run_i8(image: &[u8], x: &[i8]) -> Vec<i8> {
    let img = AlignedBytes::new(image);
    let model = Model::parse(img.as_slice()).expect("image parses");
    let mut arena = AlignedBytes::zeroed(model.arena_bytes());
    let mut it = Interpreter::new(&model, arena.as_mut_slice()).expect("arena fits");
    it.input_i8(0).expect("i8 input").copy_from_slice(x);
    it.invoke().expect("invoke");
    it.output_i8(0).expect("i8 output").to_vec()
}

fn check_f32_model(seq: &Sequential) {
    let built = seq.build_f32().expect("writes");
    for x in inputs(7, seq.input_len(), 5) {
        let want = seq.forward_f64(&x).pop().expect("layers");
        let got = run_f32(&built.bytes, &x);
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (*g as f64 - w).abs() <= 1e-4 * (1.0 + w.abs()),
                "{}: f32 {g} vs f64 {w}",
                seq.name
            );
        }
    }
}

/// Error of the int8 model against f64, in output LSBs, over outputs inside the int8 range
/// (outputs the calibration range clips are counted apart): (max, mean, clipped fraction,
/// argmax agreement).
pub(crate) fn int8_error(seq: &Sequential, n: usize) -> (f64, f64, f64, f64) {
    let calib = inputs(1, seq.input_len(), 64);
    let (built, q) = seq.build_i8(&calib).expect("writes");
    let (lo, hi) = (
        (-128 - q.output.1) as f64 * q.output.0 as f64,
        (127 - q.output.1) as f64 * q.output.0 as f64,
    );
    let (mut max_err, mut sum_err, mut count, mut clipped, mut agree) =
        (0f64, 0f64, 0usize, 0usize, 0usize);
    for x in inputs(99, seq.input_len(), n) {
        let want = seq.forward_f64(&x).pop().expect("layers");
        let got = dequantize(&run_i8(&built.bytes, &quantize(&x, q.input)), q.output);
        for (g, w) in got.iter().zip(&want) {
            if *w < lo || *w > hi {
                clipped += 1;
                continue;
            }
            let e = (*g as f64 - w).abs() / q.output.0 as f64;
            max_err = max_err.max(e);
            sum_err += e;
            count += 1;
        }
        let am = |v: &mut dyn Iterator<Item = f64>| {
            v.enumerate()
                .fold(
                    (0, f64::NEG_INFINITY),
                    |b, (i, x)| if x > b.1 { (i, x) } else { b },
                )
                .0
        };
        agree += (am(&mut got.iter().map(|&v| v as f64)) == am(&mut want.iter().cloned())) as usize;
    }
    (
        max_err,
        sum_err / count.max(1) as f64,
        clipped as f64 / (count + clipped) as f64,
        agree as f64 / n as f64,
    )
}

#[test]
fn mlp_f32_matches_f64() {
    check_f32_model(&mlp::mlp(3, false));
}

#[test]
fn mlp_int8_tracks_f64() {
    let (max, mean, clipped, agree) = int8_error(&mlp::mlp(3, false), 50);
    eprintln!(
        "mlp int8 vs f64: max {max:.2} LSB, mean {mean:.3} LSB, clipped {clipped:.3}, argmax agreement {agree:.2}"
    );
    assert!(clipped <= 0.02, "clipped fraction {clipped}");
    // Three requantized layers, each within 1 LSB of its own exact result; errors compound
    // through the weights, so the bound on the final output is a few LSBs.
    assert!(max <= 4.0, "max error {max} LSB");
    assert!(mean <= 1.0, "mean error {mean} LSB");
    assert!(agree >= 0.9, "argmax agreement {agree}");
}

#[test]
fn mlp_softmax_int8_tracks_f64() {
    let (max, mean, clipped, agree) = int8_error(&mlp::mlp(3, true), 50);
    eprintln!(
        "mlp+softmax int8 vs f64: max {max:.2} LSB, mean {mean:.3} LSB, clipped {clipped:.3}, argmax agreement {agree:.2}"
    );
    // Softmax amplifies the logits' few-LSB error by up to its slope: the bound is 8 LSB of 1/256.
    assert!(
        max <= 8.0 && mean <= 1.0 && clipped == 0.0,
        "{max} {mean} {clipped}"
    );
}

#[test]
fn ds_cnn_f32_matches_f64() {
    let seq = ds_cnn::ds_cnn(5, true);
    assert!(
        (20_000..=50_000).contains(&seq.num_params()),
        "{}",
        seq.num_params()
    );
    check_f32_model(&seq);
}

#[test]
fn ds_cnn_int8_tracks_f64() {
    let (max, mean, clipped, agree) = int8_error(&ds_cnn::ds_cnn(5, false), 10);
    eprintln!(
        "ds-cnn int8 vs f64: max {max:.2} LSB, mean {mean:.3} LSB, clipped {clipped:.3}, argmax agreement {agree:.2}"
    );
    // Ten requantized layers: the per-layer 1-LSB errors compound; the bound is stated loosely.
    assert!(max <= 8.0, "max error {max} LSB");
    assert!(mean <= 2.0, "mean error {mean} LSB");
    assert!(clipped <= 0.02, "clipped fraction {clipped}");
    assert!(agree >= 0.8, "argmax agreement {agree}");
}

#[test]
fn examples_reach_the_arena_lower_bound() {
    for seq in [
        mlp::mlp(3, false),
        mlp::mlp(3, true),
        ds_cnn::ds_cnn(5, true),
    ] {
        let f = seq.build_f32().expect("writes");
        let (q, _) = seq
            .build_i8(&inputs(1, seq.input_len(), 4))
            .expect("writes");
        for built in [f, q] {
            let p = &built.stats.plan;
            assert_eq!(p.arena_bytes, p.lower_bound, "{}: {p:?}", seq.name);
        }
    }
}
