//! int8 FullyConnected and Conv2D throughput of the reference kernels, in multiply-accumulates
//! per second (criterion reports "elements/s" = MACs/s), on the shapes of the example models:
//! an MLP and a DS-CNN keyword spotter (49x10 MFCC input, 64 channels), plus a depthwise layer.
//! `dispatch` is whatever `ops::kernels()` selects on this machine (the reference until an
//! optimized variant is wired in).
//!
//! Run: `cargo bench -p edgeloop-runtime --bench kernels`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use edgeloop_runtime::ops::conv2d::{self, Conv2dParams, Conv2dShape};
use edgeloop_runtime::ops::depthwise_conv2d::{self, DepthwiseConv2dParams};
use edgeloop_runtime::ops::fully_connected::{self, FullyConnectedParams, FullyConnectedShape};
use edgeloop_runtime::ops::{kernels, ClampI8, KernelTable, Padding};
use edgeloop_runtime::quant::quantize_multiplier;
use std::hint::black_box;

/// Deterministic pseudo-random int8 values in `[-127, 127]` (xorshift).
fn values(n: usize, seed: u64) -> Vec<i8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 24) as i8).max(-127)
        })
        .collect()
}

/// Per-channel requantization for `channels` outputs (scale ≈ 1/(64·depth), shifts negative).
fn requant(channels: usize, depth: usize) -> (Vec<i32>, Vec<i32>) {
    (0..channels)
        .map(|c| {
            quantize_multiplier((1.0 + c as f64 / channels as f64) / (64.0 * depth as f64))
                .expect("valid scale")
        })
        .unzip()
}

/// (name, batch, in_features, out_features).
const FC_SHAPES: &[(&str, u32, u32, u32)] = &[
    ("mlp_490x128", 1, 490, 128),
    ("mlp_128x128", 1, 128, 128),
    ("dscnn_head_64x12", 1, 64, 12),
    ("square_1024", 1, 1024, 1024),
    ("batch8_256x256", 8, 256, 256),
];

fn fully_connected(c: &mut Criterion) {
    let mut group = c.benchmark_group("fully_connected_i8");
    for &(name, batch, k, n) in FC_SHAPES {
        let shape = FullyConnectedShape {
            batch,
            in_features: k,
            out_features: n,
        };
        let input = values((batch * k) as usize, 1);
        let weights = values((k * n) as usize, 2);
        let bias: Vec<i32> = (0..n as i32).map(|i| i * 37 - 1000).collect();
        let (mult, shift) = requant(n as usize, k as usize);
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
        let mut output = vec![0i8; (batch * n) as usize];
        fully_connected::check_i8(&p, input.len(), output.len()).expect("valid bench shape");
        group.throughput(Throughput::Elements(batch as u64 * k as u64 * n as u64));
        let variants = [
            ("reference", KernelTable::reference().fully_connected_i8),
            ("dispatch", kernels().fully_connected_i8),
        ];
        for (variant, f) in variants {
            group.bench_with_input(BenchmarkId::new(variant, name), &(), |b, _| {
                b.iter(|| f(black_box(&p), black_box(&input), black_box(&mut output)))
            });
        }
    }
    group.finish();
}

/// (name, input [n, h, w, c], out_c, kernel, stride, padding [top, bottom, left, right]).
type ConvShape = (&'static str, [u32; 4], u32, [u32; 2], [u32; 2], [u32; 4]);

const CONV_SHAPES: &[ConvShape] = &[
    // DS-CNN first layer: 49x10 MFCCs, 10x4 kernel, stride 2, 64 channels.
    (
        "dscnn_stem_49x10x1_k10x4_s2",
        [1, 49, 10, 1],
        64,
        [10, 4],
        [2, 2],
        [4, 5, 1, 1],
    ),
    // DS-CNN pointwise layer: 25x5x64 -> 64, 1x1.
    (
        "dscnn_pointwise_25x5x64",
        [1, 25, 5, 64],
        64,
        [1, 1],
        [1, 1],
        [0, 0, 0, 0],
    ),
    // A full 3x3 convolution at DS-CNN resolution.
    (
        "conv3x3_25x5x64",
        [1, 25, 5, 64],
        64,
        [3, 3],
        [1, 1],
        [1, 1, 1, 1],
    ),
    // A small image-style layer.
    (
        "conv3x3_32x32x8_to16",
        [1, 32, 32, 8],
        16,
        [3, 3],
        [1, 1],
        [1, 1, 1, 1],
    ),
];

fn conv_shape(
    input: [u32; 4],
    out_c: u32,
    kernel: [u32; 2],
    stride: [u32; 2],
    pad: [u32; 4],
) -> Conv2dShape {
    let out =
        |size: u32, before: u32, after: u32, k: u32, s: u32| (size + before + after - k) / s + 1;
    Conv2dShape {
        input,
        output: [
            input[0],
            out(input[1], pad[0], pad[1], kernel[0], stride[0]),
            out(input[2], pad[2], pad[3], kernel[1], stride[1]),
            out_c,
        ],
        kernel,
        stride,
        dilation: [1, 1],
        padding: Padding {
            top: pad[0],
            bottom: pad[1],
            left: pad[2],
            right: pad[3],
        },
    }
}

fn conv2d(c: &mut Criterion) {
    let mut group = c.benchmark_group("conv2d_i8");
    for &(name, input_dims, out_c, kernel, stride, pad) in CONV_SHAPES {
        let shape = conv_shape(input_dims, out_c, kernel, stride, pad);
        let depth = (kernel[0] * kernel[1] * input_dims[3]) as usize;
        let input = values(shape.input_len(), 3);
        let weights = values(out_c as usize * depth, 4);
        let (mult, shift) = requant(out_c as usize, depth);
        let p = Conv2dParams {
            shape,
            weights: &weights,
            bias: None,
            input_zero_point: 7,
            output_zero_point: -2,
            output_multiplier: &mult,
            output_shift: &shift,
            activation: ClampI8::relu(-2),
        };
        let mut output = vec![0i8; shape.output_len()];
        conv2d::check_i8(&p, input.len(), output.len()).expect("valid bench shape");
        // MACs counted over every tap, padded ones included (what a dense kernel would do).
        group.throughput(Throughput::Elements((shape.output_len() * depth) as u64));
        let variants = [
            ("reference", KernelTable::reference().conv2d_i8),
            ("dispatch", kernels().conv2d_i8),
        ];
        for (variant, f) in variants {
            group.bench_with_input(BenchmarkId::new(variant, name), &(), |b, _| {
                b.iter(|| f(black_box(&p), black_box(&input), black_box(&mut output)))
            });
        }
    }
    group.finish();
}

fn depthwise(c: &mut Criterion) {
    let mut group = c.benchmark_group("depthwise_conv2d_i8");
    // DS-CNN depthwise layer: 25x5x64, 3x3, same padding.
    let shape = conv_shape([1, 25, 5, 64], 64, [3, 3], [1, 1], [1, 1, 1, 1]);
    let input = values(shape.input_len(), 5);
    let weights = values(9 * 64, 6);
    let (mult, shift) = requant(64, 9);
    let p = DepthwiseConv2dParams {
        shape,
        depth_multiplier: 1,
        weights: &weights,
        bias: None,
        input_zero_point: 0,
        output_zero_point: 0,
        output_multiplier: &mult,
        output_shift: &shift,
        activation: ClampI8::NONE,
    };
    let mut output = vec![0i8; shape.output_len()];
    depthwise_conv2d::check_i8(&p, input.len(), output.len()).expect("valid bench shape");
    group.throughput(Throughput::Elements((shape.output_len() * 9) as u64));
    group.bench_function("reference/dscnn_dw3x3_25x5x64", |b| {
        b.iter(|| {
            depthwise_conv2d::reference::eval_i8(
                black_box(&p),
                black_box(&input),
                black_box(&mut output),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, fully_connected, conv2d, depthwise);
criterion_main!(benches);
