//! int8 matmul throughput (multiply-accumulates per second): the FullyConnected reference against
//! the AVX2 variant, and the attention BatchMatMul (`Q·Kᵀ`) with the reference and AVX2 dot
//! products, on the shapes of the tiny GPT / encoder examples (d_model 64, 4 heads of 16,
//! MLP 256, vocabulary 96, context 64), for one decoded token (batch 1) and a 16-token prefill.
//!
//! The `tiny_gpt` group times one decode step of the tiny GPT example with and without the cache.
//!
//! Run: `cargo bench -p edgeloop-runtime --features std --bench matmul`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use edgeloop_runtime::arch::{self, DotKernel};
use edgeloop_runtime::ops::batch_matmul::{self, BatchMatMulParams, BatchMatMulShape};
use edgeloop_runtime::ops::fully_connected::{FullyConnectedParams, FullyConnectedShape};
use edgeloop_runtime::ops::{ClampI8, KernelTable};
use edgeloop_runtime::quant::quantize_multiplier;
use std::hint::black_box;

/// Deterministic pseudo-random int8 values (xorshift).
fn values(n: usize, seed: u64) -> Vec<i8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as i8
        })
        .collect()
}

/// (name, batch, in_features, out_features) of the example models' FullyConnected layers.
const FC_SHAPES: &[(&str, u32, u32, u32)] = &[
    ("qkv_64x192", 1, 64, 192),
    ("mlp_up_64x256", 1, 64, 256),
    ("mlp_down_256x64", 1, 256, 64),
    ("lm_head_64x96", 1, 64, 96),
    ("prefill16_mlp_up_64x256", 16, 64, 256),
    ("prefill16_mlp_down_256x64", 16, 256, 64),
];

fn fully_connected(c: &mut Criterion) {
    let mut tables: Vec<(&str, KernelTable)> = vec![("reference", KernelTable::reference())];
    #[cfg(target_arch = "x86_64")]
    match arch::ops_table_avx2() {
        Some(t) => tables.push(("avx2", t)),
        None => println!("skipped: fully_connected/avx2 (CPU lacks AVX2)"),
    }
    tables.push(("dsp_emulated", {
        let mut t = KernelTable::reference();
        t.fully_connected_i8 = edgeloop_runtime::ops::fully_connected::dsp::eval_i8;
        t
    }));
    let mut group = c.benchmark_group("fully_connected_i8");
    for &(name, batch, k, n) in FC_SHAPES {
        let shape = FullyConnectedShape {
            batch,
            in_features: k,
            out_features: n,
        };
        let input = values((batch * k) as usize, 1);
        let weights: Vec<i8> = values((k * n) as usize, 2)
            .iter()
            .map(|&w| w.max(-127))
            .collect();
        let bias: Vec<i32> = values(n as usize, 3)
            .iter()
            .map(|&b| b as i32 * 100)
            .collect();
        let (m, s) = quantize_multiplier(0.0021).expect("representable");
        let mult = vec![m; n as usize];
        let shift = vec![s; n as usize];
        let p = FullyConnectedParams {
            shape,
            weights: &weights,
            bias: Some(&bias),
            input_zero_point: -3,
            output_zero_point: 5,
            output_multiplier: &mult,
            output_shift: &shift,
            activation: ClampI8::NONE,
        };
        let mut out = vec![0i8; (batch * n) as usize];
        group.throughput(Throughput::Elements((batch * k * n) as u64));
        for (variant, table) in &tables {
            group.bench_with_input(BenchmarkId::new(*variant, name), &p, |b, p| {
                b.iter(|| (table.fully_connected_i8)(black_box(p), black_box(&input), &mut out))
            });
        }
    }
    group.finish();
}

fn attention_scores(c: &mut Criterion) {
    let mut dots: Vec<(&str, DotKernel)> = vec![("reference", DotKernel::reference())];
    #[cfg(target_arch = "x86_64")]
    match DotKernel::avx2() {
        Some(t) => dots.push(("avx2", t)),
        None => println!("skipped: batch_matmul/avx2 (CPU lacks AVX2)"),
    }
    let mut group = c.benchmark_group("batch_matmul_qkT_i8");
    // 4 heads, head_dim 16, 64 cached positions; 1 query (decode) or 16 (prefill).
    for &(name, m) in &[("decode_4h_1x16x64", 1u32), ("prefill_4h_16x16x64", 16)] {
        let shape = BatchMatMulShape {
            batch: 4,
            m,
            k: 16,
            n: 64,
            transpose_b: true,
        };
        let (la, lb, lo) = shape.lens().expect("valid shape");
        let (a, bm) = (values(la, 4), values(lb, 5));
        let (mult, shift) = quantize_multiplier(0.013).expect("representable");
        let p = BatchMatMulParams {
            shape,
            a_zero_point: 7,
            b_zero_point: -9,
            output_zero_point: 0,
            output_multiplier: mult,
            output_shift: shift,
            activation: ClampI8::NONE,
        };
        let mut out = vec![0i8; lo];
        group.throughput(Throughput::Elements((4 * m * 16 * 64) as u64));
        for (variant, dot) in &dots {
            group.bench_function(BenchmarkId::new(*variant, name), |b| {
                b.iter(|| {
                    batch_matmul::eval_i8_with(
                        dot,
                        black_box(&p),
                        black_box(&a),
                        black_box(&bm),
                        &mut out,
                    )
                })
            });
        }
    }
    group.finish();
}

/// One decode step of the tiny GPT example (see `ops::attention::tiny_gpt`): token 9 with 8 tokens
/// already in the KV cache, against recomputing all 9 positions without a cache.
fn tiny_gpt_decode(c: &mut Criterion) {
    use edgeloop_runtime::ops::attention::tiny_gpt::{Cache, TinyGpt};
    let gpt = TinyGpt::new(1);
    let prompt = [3, 17, 5, 9, 1, 30, 12, 7];
    let mut cache_i8 = Cache::new();
    gpt.forward_i8(&prompt, 0, &mut cache_i8);
    let mut cache_f32 = Cache::new();
    gpt.forward_f32(&prompt, 0, &mut cache_f32);
    let all = [3, 17, 5, 9, 1, 30, 12, 7, 4];
    let mut group = c.benchmark_group("tiny_gpt");
    group.bench_function("decode_step_kv_cache_i8", |b| {
        b.iter(|| gpt.forward_i8(black_box(&[4]), 8, &mut cache_i8))
    });
    group.bench_function("decode_step_kv_cache_f32", |b| {
        b.iter(|| gpt.forward_f32(black_box(&[4]), 8, &mut cache_f32))
    });
    group.bench_function("full_recompute_9_tokens_i8", |b| {
        b.iter(|| gpt.forward_i8(black_box(&all), 0, &mut Cache::new()))
    });
    group.finish();
}

criterion_group!(benches, fully_connected, attention_scores, tiny_gpt_decode);
criterion_main!(benches);
