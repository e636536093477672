//! Executed-instruction counts (QEMU + `tools/insn-count.c`) between marker calls:
//! 1. kernels on fixed shapes, the scalar reference against the Cortex-M4 DSP (SMLAD) variant,
//!    each output checked bit-exact against the other on the device: the offset dot product,
//!    FullyConnected, Conv2D, DepthwiseConv2D, BatchMatMul (attention's Q·Kᵀ and P·V) and the
//!    tiny GPT's int8 attention op over its KV cache; then the f32 kernels (FullyConnected at the
//!    int8 row's shape and at the DS-CNN head's, Conv2D at the int8 row's shape and at the
//!    DS-CNN's first layer, Mul by a scalar, Softmax, LayerNorm, GlobalAvgPool: the scalar
//!    reference is the only f32 kernel); then the int8 element-wise and row kernels (Add on both
//!    of the Cortex-M4 Add's paths, the fused LayerNorm and Softmax, the general Transpose), per
//!    element, reference table against the Cortex-M4 table; then random shapes and values
//!    through each DSP kernel and the reference ([`sweep`]);
//! 2. every op of the DS-CNN classifier (one inference), of the demo's intent classifier (one
//!    inference on its first test input) and of the tiny GPT (one decode step at the last cache
//!    position), through the interpreter's per-op hook, with the kernels the firmware links (the
//!    DSP table on this target, the scalar reference table with feature `reference-kernels`).
//!
//! Each region is logged as `region <name>: marks <a> <b>, <n> MACs`; the host subtracts the
//! plugin's counts at marks `a` and `b` (tests/firmware_qemu.rs writes the table).
#![no_std]
#![no_main]

use core::hint::black_box;

use edgeloop_firmware_examples::bench::{macs, mark, op_name};
use edgeloop_firmware_examples::{arena, assets, board, stack, sweep};
use edgeloop_runtime::arch::{cortex_m::dot_offset_i8_dsp, dot_offset_i8, DotKernel};
use edgeloop_runtime::ops::add::{self, AddParams, AddRequant};
use edgeloop_runtime::ops::attention::{self, AttentionParams, KvShape};
use edgeloop_runtime::ops::batch_matmul::{self, BatchMatMulParams, BatchMatMulShape};
use edgeloop_runtime::ops::conv2d::{self, Conv2dF32Params, Conv2dParams, Conv2dShape};
use edgeloop_runtime::ops::depthwise_conv2d::{self, DepthwiseConv2dParams};
use edgeloop_runtime::ops::fully_connected::{
    self, FullyConnectedF32Params, FullyConnectedParams, FullyConnectedShape,
};
use edgeloop_runtime::ops::layer_norm::quantized::QuantizedLayerNormParams;
use edgeloop_runtime::ops::layer_norm::{self, LayerNormF32Params};
use edgeloop_runtime::ops::mul::{self, MulF32Params};
use edgeloop_runtime::ops::pooling::{self, GlobalAvgPoolF32Params};
use edgeloop_runtime::ops::quantize::QuantizeParams;
use edgeloop_runtime::ops::softmax::quantized::QuantizedSoftmaxParams;
use edgeloop_runtime::ops::softmax::{self, SoftmaxF32Params, SoftmaxShape};
use edgeloop_runtime::ops::transpose::{self, TransposeParams};
use edgeloop_runtime::ops::{BroadcastShape, ClampF32, ClampI8, KernelTable, Padding};
use edgeloop_runtime::{Interpreter, Model, PreparedOp};

/// xorshift32 fill: fixed pseudo-random int8 data (not zeros: data-dependent paths run).
fn fill(buf: &mut [i8], seed: u32) {
    let mut s = seed;
    for b in buf.iter_mut() {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        *b = (s >> 24) as i8;
    }
}

/// xorshift32 fill: fixed pseudo-random f32 data in (-1, 1), never zero (an odd multiple of
/// 2^-23).
fn fill_f32(buf: &mut [f32], seed: u32) {
    let mut s = seed;
    for v in buf.iter_mut() {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        *v = (((s >> 8) | 1) as i32 - (1 << 23)) as f32 / (1 << 23) as f32;
    }
}

/// Multiply-accumulates a convolution performs on one input channel and one output channel:
/// window taps that fall inside the input (padded taps are skipped, not counted).
fn conv_taps(
    input: [usize; 2],
    output: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    pad: [usize; 2],
) -> u64 {
    let inside = |o: usize, k: usize, a: usize| {
        (o * stride[a] + k)
            .checked_sub(pad[a])
            .is_some_and(|i| i < input[a])
    };
    let rows: u64 = (0..output[0])
        .map(|oy| (0..kernel[0]).filter(|&ky| inside(oy, ky, 0)).count() as u64)
        .sum();
    let cols: u64 = (0..output[1])
        .map(|ox| (0..kernel[1]).filter(|&kx| inside(ox, kx, 1)).count() as u64)
        .sum();
    rows * cols
}

fn region(name: &str, variant: &str, a: u32, b: u32, macs: u64) {
    defmt::info!(
        "region {} {}: marks {} {}, {} MACs",
        name,
        variant,
        a,
        b,
        macs
    );
}

/// Logs kernel `name`'s reference region (marks `a` to `b`) and DSP region (`b` to `c`), each
/// of `units` MACs or elements, and whether their outputs are equal; returns that.
fn ab_regions(name: &str, [a, b, c]: [u32; 3], units: u64, equal: bool) -> bool {
    region(name, "reference", a, b, units);
    region(name, "dsp", b, c, units);
    equal_line(name, equal)
}

fn equal_line(name: &str, equal: bool) -> bool {
    defmt::info!(
        "{}: DSP output {} the reference",
        name,
        if equal { "equals" } else { "DIFFERS from" }
    );
    equal
}

const DOT_LEN: usize = 1024;
const FC_K: usize = 256;
const FC_N: usize = 64;
const CONV_HW: usize = 10;
const CONV_C: usize = 16;
const CONV_O: usize = 16;

/// The fixed Conv2D shape: 3×3, stride 1, padding 1 on `CONV_HW`×`CONV_HW`×`CONV_C` (NHWC) to
/// `CONV_O` channels (the int8 and the f32 rows).
fn same_3x3() -> Conv2dShape {
    Conv2dShape {
        input: [1, CONV_HW as u32, CONV_HW as u32, CONV_C as u32],
        output: [1, CONV_HW as u32, CONV_HW as u32, CONV_O as u32],
        kernel: [3, 3],
        stride: [1, 1],
        dilation: [1, 1],
        padding: Padding {
            top: 1,
            bottom: 1,
            left: 1,
            right: 1,
        },
    }
}
/// Output channels of the narrow int8 first-layer row (`conv2d_first_narrow`: the DS-CNN's first
/// layer with 16 channels instead of 64, as a narrow keyword model has).
const KWS_NARROW_O: usize = 16;
/// int8 output buffers: the larger of the 10×10×16 convolutions' and the narrow first layer's
/// 25×5×16.
const OUT_LEN: usize = if CONV_HW * CONV_HW * CONV_O > 125 * KWS_NARROW_O {
    CONV_HW * CONV_HW * CONV_O
} else {
    125 * KWS_NARROW_O
};
const ATT_H: usize = 2;
const ATT_D: usize = 16;
const ATT_C: usize = 16;

struct Buffers {
    a: [i8; DOT_LEN],
    b: [i8; DOT_LEN],
    fc_w: [i8; FC_K * FC_N],
    conv_x: [i8; CONV_HW * CONV_HW * CONV_C],
    conv_w: [i8; CONV_O * 9 * CONV_C],
    out_ref: [i8; OUT_LEN],
    out_dsp: [i8; OUT_LEN],
    k_cache: [i8; ATT_H * ATT_C * ATT_D],
    v_cache: [i8; ATT_H * ATT_C * ATT_D],
    scratch: [i32; ATT_C],
}

// f32 kernels: FullyConnected K 256 N 64 and K 64 N 12 (the DS-CNN head); Conv2D at the int8
// row's shape and at the DS-CNN's first layer (49×10×1, 10×4 kernel, stride 2, SAME padding
// top 4 bottom 5 left 1 right 1, 64 channels: output 25×5×64); Mul of 20×16 by a scalar.
const FC_SMALL_K: usize = 64;
/// f32 Softmax rows and row length (the intent classifier's attention probabilities).
const SOFTMAX_ROWS: usize = 40;
const SOFTMAX_DEPTH: usize = 20;
const FC_SMALL_N: usize = 12;
const KWS_IN: [usize; 2] = [49, 10];
const KWS_OUT: [usize; 2] = [25, 5];
const KWS_K: [usize; 2] = [10, 4];
const KWS_O: usize = 64;
const MUL_DIMS: [u32; 4] = [1, 1, 20, 16];
/// Op slots for the runs with every op decoded once (`Interpreter::new_prepared`): at least the
/// op count of each bench model.
const PREPARED_SLOTS: usize = 48;
static mut PREPARED: [PreparedOp<'static>; PREPARED_SLOTS] = [PreparedOp::EMPTY; PREPARED_SLOTS];
const MUL_N: usize = 20 * 16;
/// The f32 GlobalAvgPool's input (NHWC: 32 positions of 48 channels).
const GAP_DIMS: [u32; 4] = [1, 32, 1, 48];

struct F32Buffers {
    /// Weights of every f32 row (the largest: FullyConnected's 256 × 64).
    w: [f32; FC_K * FC_N],
    /// Inputs (the largest: the 10×10×16 Conv2D input).
    x: [f32; CONV_HW * CONV_HW * CONV_C],
    /// Outputs (the largest: the DS-CNN first layer's 25×5×64).
    y: [f32; KWS_OUT[0] * KWS_OUT[1] * KWS_O],
    bias: [f32; 64],
}

static mut F32_BUFFERS: F32Buffers = F32Buffers {
    w: [0.0; FC_K * FC_N],
    x: [0.0; CONV_HW * CONV_HW * CONV_C],
    y: [0.0; KWS_OUT[0] * KWS_OUT[1] * KWS_O],
    bias: [0.0; 64],
};

static mut BUFFERS: Buffers = Buffers {
    a: [0; DOT_LEN],
    b: [0; DOT_LEN],
    fc_w: [0; FC_K * FC_N],
    conv_x: [0; CONV_HW * CONV_HW * CONV_C],
    conv_w: [0; CONV_O * 9 * CONV_C],
    out_ref: [0; OUT_LEN],
    out_dsp: [0; OUT_LEN],
    k_cache: [0; ATT_H * ATT_C * ATT_D],
    v_cache: [0; ATT_H * ATT_C * ATT_D],
    scratch: [0; ATT_C],
};

fn kernels(buf: &mut Buffers) -> bool {
    let mut ok = true;
    fill(&mut buf.a, 1);
    fill(&mut buf.b, 2);
    fill(&mut buf.fc_w, 3);
    fill(&mut buf.conv_x, 4);
    fill(&mut buf.conv_w, 5);
    fill(&mut buf.k_cache, 6);
    fill(&mut buf.v_cache, 7);
    let mult = [1_518_500_250i32; 64];
    let shift = [-8i32; 64];
    let bias = [1234i32; 64];

    // Offset dot product.
    let a0 = mark();
    let r = dot_offset_i8(black_box(&buf.a), 3, black_box(&buf.b), -2);
    let a1 = mark();
    let d = dot_offset_i8_dsp(black_box(&buf.a), 3, black_box(&buf.b), -2);
    let a2 = mark();
    ok &= ab_regions("dot", [a0, a1, a2], DOT_LEN as u64, r == d);

    // FullyConnected, batch 1: K 256 N 64, and the DS-CNN head's K 64 N 12 (the kernel alone;
    // the per-op table's row for that head adds the interpreter's per-op work); and over 8 rows
    // (tokens) with K 16, N 32, as a narrow text model's per-token layers.
    for (name, batch, k, n) in [
        ("fully_connected", 1, FC_K, FC_N),
        ("fully_connected_small", 1, FC_SMALL_K, FC_SMALL_N),
        ("fully_connected_rows_narrow", 8, 16, 32),
    ] {
        let fc = FullyConnectedParams {
            shape: FullyConnectedShape {
                batch: batch as u32,
                in_features: k as u32,
                out_features: n as u32,
            },
            weights: &buf.fc_w[..k * n],
            bias: Some(&bias[..n]),
            input_zero_point: -5,
            output_zero_point: 3,
            output_multiplier: &mult[..n],
            output_shift: &shift[..n],
            activation: ClampI8::NONE,
        };
        let (x, n_out) = (&buf.a[..batch * k], batch * n);
        if fully_connected::check_i8(&fc, x.len(), n_out).is_err() {
            defmt::error!("{} bench parameters rejected", name);
            return false;
        }
        let m0 = mark();
        fully_connected::reference::eval_i8(black_box(&fc), x, &mut buf.out_ref[..n_out]);
        let m1 = mark();
        fully_connected::dsp::eval_i8(black_box(&fc), x, &mut buf.out_dsp[..n_out]);
        let m2 = mark();
        ok &= ab_regions(
            name,
            [m0, m1, m2],
            (batch * k * n) as u64,
            buf.out_ref[..n_out] == buf.out_dsp[..n_out],
        );
    }

    // Conv2D 3x3, stride 1, padding 1, NHWC.
    let conv = Conv2dParams {
        shape: same_3x3(),
        weights: &buf.conv_w,
        bias: Some(&bias[..CONV_O]),
        input_zero_point: -5,
        output_zero_point: 3,
        output_multiplier: &mult[..CONV_O],
        output_shift: &shift[..CONV_O],
        activation: ClampI8::NONE,
    };
    let n_out = CONV_HW * CONV_HW * CONV_O;
    if conv2d::check_i8(&conv, buf.conv_x.len(), n_out).is_err() {
        defmt::error!("conv2d bench parameters rejected");
        return false;
    }
    // Padded border taps are skipped: count the MACs actually performed.
    let taps = conv_taps(
        [CONV_HW, CONV_HW],
        [CONV_HW, CONV_HW],
        [3, 3],
        [1, 1],
        [1, 1],
    );
    let conv_macs = taps * (CONV_C * CONV_O) as u64;
    let c0 = mark();
    conv2d::reference::eval_i8(black_box(&conv), &buf.conv_x, &mut buf.out_ref[..n_out]);
    let c1 = mark();
    conv2d::dsp::eval_i8(black_box(&conv), &buf.conv_x, &mut buf.out_dsp[..n_out]);
    let c2 = mark();
    ok &= ab_regions(
        "conv2d",
        [c0, c1, c2],
        conv_macs,
        buf.out_ref[..n_out] == buf.out_dsp[..n_out],
    );

    // Conv2D 1×1 (pointwise, as in the DS-CNN's blocks) on the same 10×10×16 input, 16 out.
    let pw = Conv2dParams {
        shape: Conv2dShape {
            kernel: [1, 1],
            padding: Padding {
                top: 0,
                bottom: 0,
                left: 0,
                right: 0,
            },
            ..same_3x3()
        },
        weights: &buf.conv_w[..CONV_O * CONV_C],
        ..conv
    };
    if conv2d::check_i8(&pw, buf.conv_x.len(), n_out).is_err() {
        defmt::error!("conv2d_pointwise bench parameters rejected");
        return false;
    }
    let pw_macs = (CONV_HW * CONV_HW * CONV_C * CONV_O) as u64;
    let p0 = mark();
    conv2d::reference::eval_i8(black_box(&pw), &buf.conv_x, &mut buf.out_ref[..n_out]);
    let p1 = mark();
    conv2d::dsp::eval_i8(black_box(&pw), &buf.conv_x, &mut buf.out_dsp[..n_out]);
    let p2 = mark();
    ok &= ab_regions(
        "conv2d_pointwise",
        [p0, p1, p2],
        pw_macs,
        buf.out_ref[..n_out] == buf.out_dsp[..n_out],
    );

    // The DS-CNN's first layer (49×10×1, 10×4 kernel, stride 2, SAME: 25×5 out) with 16 output
    // channels: with the DS-CNN's own 64-channel layer (its per-op row), it separates the cost
    // per output position (the patch gathered once per position) from the cost per MAC.
    let first = Conv2dParams {
        shape: Conv2dShape {
            input: [1, KWS_IN[0] as u32, KWS_IN[1] as u32, 1],
            output: [1, KWS_OUT[0] as u32, KWS_OUT[1] as u32, KWS_NARROW_O as u32],
            kernel: [KWS_K[0] as u32, KWS_K[1] as u32],
            stride: [2, 2],
            dilation: [1, 1],
            padding: Padding {
                top: 4,
                bottom: 5,
                left: 1,
                right: 1,
            },
        },
        weights: &buf.conv_w[..KWS_NARROW_O * KWS_K[0] * KWS_K[1]],
        ..conv
    };
    let (f_in, f_out) = (first.shape.input_len(), first.shape.output_len());
    if conv2d::check_i8(&first, f_in, f_out).is_err() {
        defmt::error!("conv2d_first_narrow bench parameters rejected");
        return false;
    }
    // MACs as the compiler counts them (padded taps included), as for the DS-CNN's layer.
    let first_macs = (f_out * KWS_K[0] * KWS_K[1]) as u64;
    let x = &buf.conv_x[..f_in];
    let f0 = mark();
    conv2d::reference::eval_i8(black_box(&first), x, &mut buf.out_ref[..f_out]);
    let f1 = mark();
    conv2d::dsp::eval_i8(black_box(&first), x, &mut buf.out_dsp[..f_out]);
    let f2 = mark();
    ok &= ab_regions(
        "conv2d_first_narrow",
        [f0, f1, f2],
        first_macs,
        buf.out_ref[..f_out] == buf.out_dsp[..f_out],
    );

    // DepthwiseConv2D 3x3, stride 1, padding 1, as in the DS-CNN's blocks (10x10 here, 16
    // channels, on the Conv2D bench's input).
    let dw_w = &buf.conv_w[..9 * CONV_C];
    let dw = DepthwiseConv2dParams {
        shape: Conv2dShape {
            output: [1, CONV_HW as u32, CONV_HW as u32, CONV_C as u32],
            ..conv.shape
        },
        depth_multiplier: 1,
        weights: dw_w,
        bias: Some(&bias[..CONV_C]),
        input_zero_point: -5,
        output_zero_point: 3,
        output_multiplier: &mult[..CONV_C],
        output_shift: &shift[..CONV_C],
        activation: ClampI8::NONE,
    };
    let n_dw = CONV_HW * CONV_HW * CONV_C;
    if depthwise_conv2d::check_i8(&dw, buf.conv_x.len(), n_dw).is_err() {
        defmt::error!("depthwise bench parameters rejected");
        return false;
    }
    let dw_macs = taps * CONV_C as u64;
    let d0 = mark();
    depthwise_conv2d::reference::eval_i8(black_box(&dw), &buf.conv_x, &mut buf.out_ref[..n_dw]);
    let d1 = mark();
    depthwise_conv2d::dsp::eval_i8(black_box(&dw), &buf.conv_x, &mut buf.out_dsp[..n_dw]);
    let d2 = mark();
    ok &= ab_regions(
        "depthwise_conv2d",
        [d0, d1, d2],
        dw_macs,
        buf.out_ref[..n_dw] == buf.out_dsp[..n_dw],
    );

    // BatchMatMul as in the intent classifier's attention (2 heads, 20 tokens, head width 16)
    // and as in a width-16 text model's (2 heads, 12 tokens, head width 8):
    // scores Q·Kᵀ (B transposed) and P·V (B as is).
    for (name, m, k, n, transpose_b) in [
        ("batch_matmul_qk", 20, 16, 20, true),
        ("batch_matmul_pv", 20, 20, 16, false),
        ("batch_matmul_qk_narrow", 12, 8, 12, true),
        ("batch_matmul_pv_narrow", 12, 12, 8, false),
    ] {
        let bmm = BatchMatMulParams {
            shape: BatchMatMulShape {
                batch: 2,
                m,
                k,
                n,
                transpose_b,
            },
            a_zero_point: -3,
            b_zero_point: 7,
            output_zero_point: -2,
            output_multiplier: 1_518_500_250,
            output_shift: -7,
            activation: ClampI8::NONE,
        };
        let Ok((la, lb, lo)) = bmm.shape.lens() else {
            defmt::error!("{} bench shape rejected", name);
            return false;
        };
        if batch_matmul::check_i8(&bmm, la, lb, lo).is_err() {
            defmt::error!("{} bench parameters rejected", name);
            return false;
        }
        let (x, y) = (&buf.a[..la], &buf.b[..lb]);
        let b0 = mark();
        batch_matmul::reference::eval_i8(black_box(&bmm), x, y, &mut buf.out_ref[..lo]);
        let b1 = mark();
        batch_matmul::dsp::eval_i8(black_box(&bmm), x, y, &mut buf.out_dsp[..lo]);
        let b2 = mark();
        let bmm_macs = (2 * m * k * n) as u64;
        ok &= ab_regions(
            name,
            [b0, b1, b2],
            bmm_macs,
            buf.out_ref[..lo] == buf.out_dsp[..lo],
        );
    }

    // Attention, one query token at the last position of a full 16-row cache.
    let mut table = [0i32; 256];
    let mut e = 1i32 << 24;
    for t in table.iter_mut() {
        *t = e;
        e -= e / 20;
    }
    let att = AttentionParams {
        shape: KvShape {
            heads: ATT_H as u32,
            head_dim: ATT_D as u32,
            capacity: ATT_C as u32,
            tokens: 1,
        },
        causal: true,
        q_zero_point: -2,
        k_zero_point: 1,
        v_zero_point: 0,
        score_multiplier: 1_518_500_250,
        score_shift: -6,
        score_zero_point: -10,
        exp_table: &table,
        output_multiplier: 1_518_500_250,
        output_shift: -9,
        output_zero_point: 0,
    };
    let pos = (ATT_C - 1) as i32;
    let q = &buf.b[..ATT_H * ATT_D];
    let n_att = ATT_H * ATT_D;
    if attention::check_i8(&att, q.len(), buf.k_cache.len(), ATT_C, n_att).is_err() {
        defmt::error!("attention bench parameters rejected");
        return false;
    }
    let att_macs = (2 * ATT_H * ATT_C * ATT_D) as u64;
    let t0 = mark();
    let r1 = attention::eval_i8_with(
        &DotKernel::reference(),
        black_box(&att),
        q,
        &buf.k_cache,
        &buf.v_cache,
        pos,
        &mut buf.scratch,
        &mut buf.out_ref[..n_att],
    );
    let t1 = mark();
    let r2 = attention::dsp::eval_i8(
        black_box(&att),
        q,
        &buf.k_cache,
        &buf.v_cache,
        pos,
        &mut buf.scratch,
        &mut buf.out_dsp[..n_att],
    );
    let t2 = mark();
    ok &= ab_regions(
        "attention",
        [t0, t1, t2],
        att_macs,
        r1.is_ok() && r2.is_ok() && buf.out_ref[..n_att] == buf.out_dsp[..n_att],
    );
    ok
}

/// Elements of the int8 Add rows: below and above the Cortex-M4 Add's table threshold
/// (`add::dsp::TABLE_MIN`), where it computes each element directly or through per-input tables.
const ADD_DIRECT: [u32; 4] = [1, 1, 8, 16];
const ADD_TABLED: [u32; 4] = [1, 1, 48, 32];
/// The fused int8 LayerNorm's rows (`[rows, cols]`) and the fused int8 Softmax's (`[rows,
/// depth]`): other widths than the intent classifier's 20 × 32 and 40 × 20.
const LN_SHAPE: [usize; 2] = [8, 64];
const SM_SHAPE: [usize; 2] = [16, 32];
/// Rows the fused ops' scratch holds at once, as the image writer sizes it
/// (`FUSED_SOFTMAX_GROUP`).
const FUSED_GROUP: usize = 8;
const ROW_LEN: usize = 48 * 32;

/// Buffers of the element-wise and row kernels.
struct RowBuffers {
    x1: [i8; ROW_LEN],
    x2: [i8; ROW_LEN],
    y_ref: [i8; ROW_LEN],
    y_dsp: [i8; ROW_LEN],
    scratch: [f32; 2 * 64 * FUSED_GROUP],
    gamma: [f32; 64],
    beta: [f32; 64],
}

static mut ROW_BUFFERS: RowBuffers = RowBuffers {
    x1: [0; ROW_LEN],
    x2: [0; ROW_LEN],
    y_ref: [0; ROW_LEN],
    y_dsp: [0; ROW_LEN],
    scratch: [0.0; 2 * 64 * FUSED_GROUP],
    gamma: [0.0; 64],
    beta: [0.0; 64],
};

/// int8 element-wise and row kernels alone on fixed shapes, the reference table's against the
/// Cortex-M4 table's, each pair of outputs compared: Add on both of the DSP Add's paths, the
/// fused LayerNorm and Softmax (version 2: f32 inside, through each table's Dequantize, f32
/// kernel and Quantize), and Transpose on each of its paths: the general one (an innermost axis
/// not 16, 32 or 64 wide), whole runs, one copy (Transpose is one kernel in both tables).
/// Counted per element.
fn kernels_rows(buf: &mut RowBuffers) -> bool {
    let mut ok = true;
    fill(&mut buf.x1, 21);
    fill(&mut buf.x2, 22);
    for (i, (g, b)) in buf.gamma.iter_mut().zip(buf.beta.iter_mut()).enumerate() {
        *g = 0.75 + (i % 7) as f32 * 0.0625;
        *b = (i % 5) as f32 * 0.125 - 0.25;
    }
    let reference = KernelTable::reference();
    let linked = edgeloop_runtime::arch::ops_table_compile_time();

    let Some(requant) = AddRequant::new(0.05, 0.07, 0.09) else {
        defmt::error!("add bench scales rejected");
        return false;
    };
    for (name, dims) in [("add_direct", ADD_DIRECT), ("add_tabled", ADD_TABLED)] {
        let n = dims.iter().product::<u32>() as usize;
        let p = AddParams {
            shape: BroadcastShape::same(dims),
            input1_zero_point: -3,
            input2_zero_point: 5,
            output_zero_point: -1,
            requant,
            activation: ClampI8::NONE,
        };
        if add::check_i8(&p, n, n, n).is_err() {
            defmt::error!("{} bench parameters rejected", name);
            return false;
        }
        let (x1, x2) = (&buf.x1[..n], &buf.x2[..n]);
        let a0 = mark();
        add::reference::eval_i8(black_box(&p), x1, x2, &mut buf.y_ref[..n]);
        let a1 = mark();
        add::dsp::eval_i8(black_box(&p), x1, x2, &mut buf.y_dsp[..n]);
        let a2 = mark();
        ok &= ab_regions(
            name,
            [a0, a1, a2],
            n as u64,
            buf.y_ref[..n] == buf.y_dsp[..n],
        );
    }

    let input = QuantizeParams {
        scale: 0.04,
        zero_point: 3,
    };
    let output = QuantizeParams {
        scale: 0.03,
        zero_point: -2,
    };
    let [rows, cols] = LN_SHAPE;
    let n = rows * cols;
    let ln = QuantizedLayerNormParams {
        norm: LayerNormF32Params {
            rows: rows as u32,
            cols: cols as u32,
            epsilon: 1e-5,
            gamma: &buf.gamma[..cols],
            beta: &buf.beta[..cols],
        },
        input,
        output,
    };
    let scratch = &mut buf.scratch[..2 * cols * FUSED_GROUP];
    if layer_norm::quantized::check(&ln, n, scratch.len(), n).is_err() {
        defmt::error!("layer_norm_quantized bench parameters rejected");
        return false;
    }
    let x = &buf.x1[..n];
    let l0 = mark();
    layer_norm::quantized::eval_with(&reference, black_box(&ln), x, scratch, &mut buf.y_ref[..n]);
    let l1 = mark();
    layer_norm::quantized::eval_with(&linked, black_box(&ln), x, scratch, &mut buf.y_dsp[..n]);
    let l2 = mark();
    ok &= ab_regions(
        "layer_norm_quantized",
        [l0, l1, l2],
        n as u64,
        buf.y_ref[..n] == buf.y_dsp[..n],
    );

    let [rows, depth] = SM_SHAPE;
    let n = rows * depth;
    let sm = QuantizedSoftmaxParams {
        shape: SoftmaxShape {
            outer: rows as u32,
            depth: depth as u32,
        },
        input,
        pre_scale: Some(0.35),
        mask: None,
        beta: 1.0,
        output: QuantizeParams {
            scale: 1.0 / 256.0,
            zero_point: -128,
        },
    };
    let scratch = &mut buf.scratch[..2 * depth * FUSED_GROUP];
    if softmax::quantized::check(&sm, n, scratch.len(), n).is_err() {
        defmt::error!("softmax_quantized bench parameters rejected");
        return false;
    }
    let x = &buf.x2[..n];
    let s0 = mark();
    softmax::quantized::eval_with(&reference, black_box(&sm), x, scratch, &mut buf.y_ref[..n]);
    let s1 = mark();
    softmax::quantized::eval_with(&linked, black_box(&sm), x, scratch, &mut buf.y_dsp[..n]);
    let s2 = mark();
    ok &= ab_regions(
        "softmax_quantized",
        [s0, s1, s2],
        n as u64,
        buf.y_ref[..n] == buf.y_dsp[..n],
    );

    // Attention's head split `[tokens, heads, d] → [heads, tokens, d]` with d = 8 and d = 4
    // (the general path) and d = 16 (whole runs copied); and a layout change that only moves a
    // size-1 axis (`[1, 1, h, w] → [1, h, w, 1]`: one copy once merged).
    for (name, dims, perm) in [
        ("transpose_narrow", [1, 16, 2, 8], [0, 2, 1, 3]),
        ("transpose_quarter", [1, 8, 4, 4], [0, 2, 1, 3]),
        ("transpose_runs", [1, 16, 4, 16], [0, 2, 1, 3]),
        ("transpose_copy", [1, 1, 32, 40], [0, 2, 3, 1]),
    ] {
        let p = TransposeParams {
            input_dims: dims,
            perm,
        };
        let n = dims.iter().product::<u32>() as usize;
        if transpose::check(&p, n, n).is_err() {
            defmt::error!("{} bench parameters rejected", name);
            return false;
        }
        let x = &buf.x1[..n];
        transpose::eval::<i8>(&p, x, &mut buf.y_ref[..n]);
        let t0 = mark();
        transpose::eval_i8(black_box(&p), x, &mut buf.y_dsp[..n]);
        let t1 = mark();
        region(name, "reference", t0, t1, n as u64);
        region(name, "dsp", t0, t1, n as u64);
        ok &= equal_line(name, buf.y_ref[..n] == buf.y_dsp[..n]);
    }
    ok
}

/// Logs whether the f32 output of row `name` is finite and not all zero (the kernel ran on
/// the random data).
fn f32_output_line(name: &str, y: &[f32]) -> bool {
    let ok = y.iter().all(|v| v.is_finite()) && y.iter().any(|&v| v != 0.0);
    defmt::info!(
        "{}: f32 output {}",
        name,
        if ok {
            "finite"
        } else {
            "NOT finite or all zero"
        }
    );
    ok
}

/// The f32 kernels (the scalar reference: the table's f32 entries on every target the firmware
/// builds for), on random non-zero data.
fn kernels_f32(buf: &mut F32Buffers) -> bool {
    let mut ok = true;
    fill_f32(&mut buf.w, 11);
    fill_f32(&mut buf.x, 12);
    fill_f32(&mut buf.bias, 13);
    buf.y.fill(0.0);

    // FullyConnected, batch 1: the int8 row's shape (K 256, N 64) and the DS-CNN head's
    // (K 64, N 12).
    for (name, k, n) in [
        ("fully_connected_f32", FC_K, FC_N),
        ("fully_connected_f32_small", FC_SMALL_K, FC_SMALL_N),
    ] {
        let fc = FullyConnectedF32Params {
            shape: FullyConnectedShape {
                batch: 1,
                in_features: k as u32,
                out_features: n as u32,
            },
            weights: &buf.w[..k * n],
            bias: Some(&buf.bias[..n]),
            activation: ClampF32::NONE,
        };
        if fully_connected::check_f32(&fc, k, n).is_err() {
            defmt::error!("{} bench parameters rejected", name);
            return false;
        }
        let (x, y) = (&buf.x[..k], &mut buf.y[..n]);
        let m0 = mark();
        fully_connected::reference::eval_f32(black_box(&fc), x, y);
        let m1 = mark();
        region(name, "reference", m0, m1, (k * n) as u64);
        ok &= f32_output_line(name, black_box(&buf.y[..n]));
    }

    // Conv2D 3x3, stride 1, padding 1 on 10×10×16 (the int8 row's shape), and the DS-CNN's first
    // layer (ReLU, as there).
    let same_3x3 = same_3x3();
    let taps_3x3 = conv_taps(
        [CONV_HW, CONV_HW],
        [CONV_HW, CONV_HW],
        [3, 3],
        [1, 1],
        [1, 1],
    );
    let kws = Conv2dShape {
        input: [1, KWS_IN[0] as u32, KWS_IN[1] as u32, 1],
        output: [1, KWS_OUT[0] as u32, KWS_OUT[1] as u32, KWS_O as u32],
        kernel: [KWS_K[0] as u32, KWS_K[1] as u32],
        stride: [2, 2],
        dilation: [1, 1],
        padding: Padding {
            top: 4,
            bottom: 5,
            left: 1,
            right: 1,
        },
    };
    let taps_kws = conv_taps(KWS_IN, KWS_OUT, KWS_K, [2, 2], [4, 1]);
    for (name, shape, activation, macs) in [
        (
            "conv2d_f32",
            same_3x3,
            ClampF32::NONE,
            taps_3x3 * (CONV_C * CONV_O) as u64,
        ),
        (
            "conv2d_f32_ds_cnn",
            kws,
            ClampF32::RELU,
            taps_kws * KWS_O as u64,
        ),
    ] {
        let [kh, kw] = shape.kernel;
        let (n_in, n_out) = (shape.input_len(), shape.output_len());
        let n_w = (shape.output[3] * kh * kw * shape.input[3]) as usize;
        let conv = Conv2dF32Params {
            shape,
            weights: &buf.w[..n_w],
            bias: Some(&buf.bias[..shape.output[3] as usize]),
            activation,
        };
        if conv2d::check_f32(&conv, n_in, n_out).is_err() {
            defmt::error!("{} bench parameters rejected", name);
            return false;
        }
        let (x, y) = (&buf.x[..n_in], &mut buf.y[..n_out]);
        let c0 = mark();
        conv2d::reference::eval_f32(black_box(&conv), x, y);
        let c1 = mark();
        region(name, "reference", c0, c1, macs);
        ok &= f32_output_line(name, black_box(&buf.y[..n_out]));
    }

    // Mul of 20×16 by a scalar, as the f32 Muls of float islands (a Div by a constant, a Sub's
    // negation, an attention scale): one broadcast row. Counted per output element.
    let mp = MulF32Params {
        shape: BroadcastShape {
            input1: MUL_DIMS,
            input2: [1, 1, 1, 1],
            output: MUL_DIMS,
        },
        activation: ClampF32::NONE,
    };
    if mul::check_f32(&mp, MUL_N, 1, MUL_N).is_err() {
        defmt::error!("mul_f32 bench parameters rejected");
        return false;
    }
    let (x, s, y) = (&buf.x[..MUL_N], &buf.bias[..1], &mut buf.y[..MUL_N]);
    let u0 = mark();
    mul::reference::eval_f32(black_box(&mp), x, s, y);
    let u1 = mark();
    region("mul_f32", "reference", u0, u1, MUL_N as u64);
    ok &= f32_output_line("mul_f32", black_box(&buf.y[..MUL_N]));

    // Softmax over 40 rows of 20 (the intent classifier's attention probabilities, 2 heads ×
    // 20 queries × 20 keys), as an f32 attention left float computes it. Counted per element.
    let sp = SoftmaxF32Params {
        shape: SoftmaxShape {
            outer: SOFTMAX_ROWS as u32,
            depth: SOFTMAX_DEPTH as u32,
        },
        beta: 1.0,
    };
    let sn = SOFTMAX_ROWS * SOFTMAX_DEPTH;
    if softmax::check_f32(&sp, sn, sn).is_err() {
        defmt::error!("softmax_f32 bench parameters rejected");
        return false;
    }
    let (x, y) = (&buf.x[..sn], &mut buf.y[..sn]);
    let s0 = mark();
    softmax::reference::eval_f32(black_box(&sp), x, y);
    let s1 = mark();
    region("softmax_f32", "reference", s0, s1, sn as u64);
    ok &= f32_output_line("softmax_f32", black_box(&buf.y[..sn]));

    // LayerNorm over 8 rows of 64 (a float tail's, at another width than the intent
    // classifier's 20 × 32). Counted per element.
    let [rows, cols] = LN_SHAPE;
    let n = rows * cols;
    let (gamma, rest) = buf.w.split_at(cols);
    let lp = LayerNormF32Params {
        rows: rows as u32,
        cols: cols as u32,
        epsilon: 1e-5,
        gamma,
        beta: &rest[..cols],
    };
    if layer_norm::check_f32(&lp, n, n).is_err() {
        defmt::error!("layer_norm_f32 bench parameters rejected");
        return false;
    }
    let (x, y) = (&buf.x[..n], &mut buf.y[..n]);
    let l0 = mark();
    layer_norm::reference::eval_f32(black_box(&lp), x, y);
    let l1 = mark();
    region("layer_norm_f32", "reference", l0, l1, n as u64);
    ok &= f32_output_line("layer_norm_f32", black_box(&buf.y[..n]));

    // GlobalAvgPool over 32 positions of 48 channels (a text classifier's mean over tokens).
    let gp = GlobalAvgPoolF32Params {
        input: GAP_DIMS,
        activation: ClampF32::NONE,
    };
    let (n, c) = (
        GAP_DIMS.iter().product::<u32>() as usize,
        GAP_DIMS[3] as usize,
    );
    if pooling::check_global_avg_f32(&gp, n, c).is_err() {
        defmt::error!("global_avg_pool_f32 bench parameters rejected");
        return false;
    }
    let (x, y) = (&buf.x[..n], &mut buf.y[..c]);
    let g0 = mark();
    pooling::reference::eval_global_avg_f32(black_box(&gp), x, y);
    let g1 = mark();
    region("global_avg_pool_f32", "reference", g0, g1, n as u64);
    ok &= f32_output_line("global_avg_pool_f32", black_box(&buf.y[..c]));
    ok
}

/// Per-op counts of one invoke of `model`, its ops decoded on every invoke (`Interpreter::new`,
/// regions `<name> ...`) and once, into `slots` (`Interpreter::new_prepared`, regions
/// `prepared <name> ...`); `prepare` writes the inputs.
fn per_op(
    name: &str,
    model: &Model<'static>,
    arena: &mut [u8],
    slots: &mut [PreparedOp<'static>],
    position: u64,
    prepare: impl Fn(&mut Interpreter<'_, '_>) -> Result<(), edgeloop_runtime::Error>,
) -> Result<(), edgeloop_runtime::Error> {
    let it = Interpreter::new(model, arena)?;
    per_op_with(name, "", model, it, position, &prepare)?;
    let it = Interpreter::new_prepared(model, arena, slots)?;
    defmt::info!(
        "prepared {}: {} ops, {} bytes of op slots",
        name,
        model.num_ops(),
        model.num_ops() * PreparedOp::BYTES
    );
    per_op_with(name, "prepared ", model, it, position, &prepare)
}

/// Start-up from image bytes to an interpreter ready to invoke, two ways: `Model::parse` (every
/// check of the image, CRC included) and `Interpreter::new` (region `<name> start-up`), and
/// `Model::parse` and `Interpreter::new_prepared` (region `prepared <name> start-up`: every op
/// decoded into its slot).
fn start_up(
    name: &str,
    image: &'static [u8],
    arena: &mut [u8],
    slots: &mut [PreparedOp<'static>],
) -> Result<(), edgeloop_runtime::Error> {
    // `black_box` keeps each interpreter (the work that made it) from being optimized away.
    let a = mark();
    let model = Model::parse(image)?;
    core::hint::black_box(Interpreter::new(&model, arena)?);
    let b = mark();
    let c = mark();
    let model = Model::parse(image)?;
    core::hint::black_box(Interpreter::new_prepared(&model, arena, slots)?);
    let d = mark();
    defmt::info!("start-up {}: {} image bytes", name, image.len());
    defmt::info!("region {} start-up: marks {} {}, 0 MACs", name, a, b);
    defmt::info!(
        "region prepared {} start-up: marks {} {}, 0 MACs",
        name,
        c,
        d
    );
    Ok(())
}

/// [`per_op`] with the interpreter made; region names start with `prefix`.
fn per_op_with(
    name: &str,
    prefix: &str,
    model: &Model<'_>,
    mut it: Interpreter<'_, '_>,
    position: u64,
    prepare: &impl Fn(&mut Interpreter<'_, '_>) -> Result<(), edgeloop_runtime::Error>,
) -> Result<(), edgeloop_runtime::Error> {
    // Fill the KV caches of a decoder first: every position before `position`.
    for p in 0..position {
        it.input_i32(0)?[0] = (p % 7) as i32;
        it.input_i32(1)?[0] = p as i32;
        it.input_i32(2)?[0] = p as i32;
        it.invoke()?;
    }
    prepare(&mut it)?;
    let mut marks = [0u32; 128];
    let n_ops = model.num_ops().min(marks.len() - 1);
    marks[0] = mark();
    it.invoke_with_hook(|i, _| {
        if i < n_ops {
            marks[i + 1] = mark();
        }
    })?;
    let mut total_macs = 0u64;
    for (i, rec) in model.ops().enumerate().take(n_ops) {
        let rec = rec?;
        let m = macs(model, &rec, position);
        total_macs += m;
        defmt::info!(
            "region {}{} op {} {}: marks {} {}, {} MACs",
            prefix,
            name,
            i,
            op_name(rec.code),
            marks[i],
            marks[i + 1],
            m
        );
    }
    defmt::info!(
        "region {}{} total: marks {} {}, {} MACs",
        prefix,
        name,
        marks[0],
        marks[n_ops],
        total_macs
    );
    Ok(())
}

fn run() -> Result<bool, edgeloop_runtime::Error> {
    // SAFETY: `run` is called once, from `main`; this is the only reference to BUFFERS.
    let buf = unsafe { &mut *core::ptr::addr_of_mut!(BUFFERS) };
    // Which kernel table the interpreter's per-op runs below use.
    defmt::info!(
        "kernel table: {}",
        if cfg!(feature = "reference-kernels") {
            "reference"
        } else if cfg!(armv6m) {
            "armv6m"
        } else {
            "dsp"
        }
    );
    let mut ok = kernels(buf);
    // SAFETY: as BUFFERS: called once, the only reference to F32_BUFFERS.
    ok &= kernels_f32(unsafe { &mut *core::ptr::addr_of_mut!(F32_BUFFERS) });
    // SAFETY: as BUFFERS: called once, the only reference to ROW_BUFFERS.
    ok &= kernels_rows(unsafe { &mut *core::ptr::addr_of_mut!(ROW_BUFFERS) });
    ok &= sweep::run();
    let Some(arena) = arena::take() else {
        defmt::error!("arena already taken");
        return Ok(false);
    };
    // SAFETY: as BUFFERS: called once, the only reference to PREPARED.
    let slots = unsafe { &mut *core::ptr::addr_of_mut!(PREPARED) };
    start_up("ds-cnn", assets::dscnn::image(), arena, slots)?;
    start_up("intent-classifier", assets::classify::image(), arena, slots)?;
    start_up("tiny-gpt", assets::generate::image(), arena, slots)?;
    let cnn = Model::parse(assets::dscnn::image())?;
    per_op("ds-cnn", &cnn, arena, slots, 0, |it| {
        let x = it.input_i8(0)?;
        for (d, &s) in x.iter_mut().zip(assets::dscnn::INPUTS) {
            *d = s as i8;
        }
        Ok(())
    })?;
    // The demo's intent classifier (the `classify` model): one inference on its first
    // embedded test input (token ids of the demo's test split).
    let cls = Model::parse(assets::classify::image())?;
    per_op("intent-classifier", &cls, arena, slots, 0, |it| {
        let x = it.input_bytes(0)?;
        let n = x.len().min(assets::classify::INPUTS.len());
        x[..n].copy_from_slice(&assets::classify::INPUTS[..n]);
        Ok(())
    })?;
    let gpt = Model::parse(assets::generate::image())?;
    let last = 15u64;
    per_op("tiny-gpt", &gpt, arena, slots, last, |it| {
        it.input_i32(0)?[0] = 3;
        it.input_i32(1)?[0] = last as i32;
        it.input_i32(2)?[0] = last as i32;
        Ok(())
    })?;
    Ok(ok)
}

#[cortex_m_rt::entry]
fn main() -> ! {
    stack::paint();
    let ok = match run() {
        Ok(ok) => ok,
        Err(e) => {
            defmt::error!("runtime error: {}", e);
            false
        }
    };
    defmt::info!("stack high-water mark: {} bytes", stack::high_water());
    defmt::info!("{}", if ok { "bench: PASS" } else { "bench: FAIL" });
    board::exit(ok)
}
