//! Invoke latency of the example models (MLP, DS-CNN), int8 and f32, on the host runtime, and
//! the per-token decode latency of the tiny GPT image (KV cache, one token per invoke): each
//! `decode/...` iteration decodes a whole context of `tiny_gpt::CTX` tokens, so divide by it.
//! Also prints, once, each image's size against its raw weights and its arena against the
//! planner's lower bound.

use criterion::{criterion_group, criterion_main, Criterion};
use edgeloop_runtime::image::writer::{AlignedBytes, BuiltImage};
use edgeloop_runtime::models::{ds_cnn, mlp, Rng, Sequential};
use edgeloop_runtime::{Interpreter, Model};

fn images(seq: &Sequential) -> [(String, BuiltImage); 2] {
    let mut rng = Rng::new(1);
    let calib: Vec<Vec<f32>> = (0..32).map(|_| rng.vec(seq.input_len(), 1.0)).collect();
    let f = seq.build_f32().expect("f32 image");
    let (q, _) = seq.build_i8(&calib).expect("int8 image");
    [
        (format!("{}/int8", seq.name), q),
        (format!("{}/f32", seq.name), f),
    ]
}

fn bench(c: &mut Criterion) {
    for seq in [mlp::mlp(1, true), ds_cnn::ds_cnn(1, true)] {
        for (name, built) in images(&seq) {
            let st = &built.stats;
            let raw = st.weight_bytes + st.bias_bytes;
            eprintln!(
                "{name}: image {} B, weights+biases {raw} B ({:.3}x), +requant constants {} B ({:.3}x); arena {} B, lower bound {} B",
                st.image_bytes,
                st.image_bytes as f64 / raw as f64,
                st.other_constant_bytes,
                st.image_bytes as f64 / (raw + st.other_constant_bytes) as f64,
                st.plan.arena_bytes,
                st.plan.lower_bound
            );
            let img = AlignedBytes::new(&built.bytes);
            let model = Model::parse(img.as_slice()).expect("parses");
            let mut arena = AlignedBytes::zeroed(model.arena_bytes());
            let mut it = Interpreter::new(&model, arena.as_mut_slice()).expect("arena");
            it.input_bytes(0)
                .expect("input")
                .iter_mut()
                .enumerate()
                .for_each(|(i, b)| *b = (i * 31 % 97) as u8);
            c.bench_function(&format!("invoke/{name}"), |b| {
                b.iter(|| it.invoke().expect("invoke"))
            });
            c.bench_function(&format!("parse/{name}"), |b| {
                b.iter(|| Model::parse(std::hint::black_box(img.as_slice())).expect("parses"))
            });
        }
    }
}

fn gpt_decode(c: &mut Criterion) {
    use edgeloop_runtime::models::tiny_gpt::{self, TinyGpt, CTX};
    let m = TinyGpt::random(1);
    let ranges = tiny_gpt::calibrate(&m, 1, 8).expect("calibration");
    for (name, r) in [("int8", Some(&ranges)), ("f32", None)] {
        let (built, _) = m.image(1, r, false).expect("image");
        eprintln!(
            "tiny-gpt/{name}: image {} B; arena {} B (lower bound {} B, KV cache included)",
            built.stats.image_bytes, built.stats.plan.arena_bytes, built.stats.plan.lower_bound
        );
        let img = AlignedBytes::new(&built.bytes);
        let model = Model::parse(img.as_slice()).expect("parses");
        let mut arena = AlignedBytes::zeroed(model.arena_bytes());
        let mut it = Interpreter::new(&model, arena.as_mut_slice()).expect("arena");
        c.bench_function(&format!("decode/tiny-gpt/{name}/{CTX}-tokens"), |b| {
            b.iter(|| {
                for p in 0..CTX as i32 {
                    it.input_i32(0).expect("ids")[0] = (p * 7 + 3) % tiny_gpt::V as i32;
                    it.input_i32(1).expect("positions")[0] = p;
                    it.input_i32(2).expect("cache position")[0] = p;
                    it.invoke().expect("invoke");
                }
            })
        });
    }
}

criterion_group!(benches, bench, gpt_decode);
criterion_main!(benches);
