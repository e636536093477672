//! Bit-exactness of the DSP kernels on the device: random shapes, parameters and values (never
//! zeros) through the scalar reference and the Cortex-M4 variant, every output byte compared.
//! Built for ARMv6-M, the FullyConnected, Conv2D and DepthwiseConv2D cases run that table's
//! kernels instead (`pairs`, `tap_major`), whose inner loops are `asm!` there.
//!
//! The host tests run the same algorithms over a portable emulation of the DSP instructions;
//! only here do the real `SMLAD`/`SXTB16`/`SMMLA` and the hand-written `asm!` inner loops run
//! (and the FPU's rounding). Shapes are drawn from a fixed xorshift sequence, bounded by the
//! static buffers below, and cover odd sizes, depths not a multiple of 4, batches of one and two rows, padding, strides,
//! dilations, broadcasts and zero points of both signs.

use edgeloop_runtime::arch::DotKernel;
use edgeloop_runtime::ops::add::{self, AddParams, AddRequant};
use edgeloop_runtime::ops::attention::{self, AttentionParams, KvShape};
use edgeloop_runtime::ops::batch_matmul::{self, BatchMatMulParams, BatchMatMulShape};
use edgeloop_runtime::ops::conv2d::{self, Conv2dParams, Conv2dShape};
use edgeloop_runtime::ops::depthwise_conv2d::{self, DepthwiseConv2dParams};
use edgeloop_runtime::ops::fully_connected::{self, FullyConnectedParams, FullyConnectedShape};
use edgeloop_runtime::ops::mul::{self, MulParams};
use edgeloop_runtime::ops::quantize::{self, QuantizeParams};
use edgeloop_runtime::ops::{BroadcastShape, ClampI8, Padding};

const X_LEN: usize = 4096;
const W_LEN: usize = 8192;
const Y_LEN: usize = 4096;
const CH: usize = 256;

struct Buffers {
    x: [i8; X_LEN],
    w: [i8; W_LEN],
    want: [i8; Y_LEN],
    got: [i8; Y_LEN],
    bias: [i32; CH],
    mult: [i32; CH],
    shift: [i32; CH],
}

static mut BUFFERS: Buffers = Buffers {
    x: [0; X_LEN],
    w: [0; W_LEN],
    want: [0; Y_LEN],
    got: [0; Y_LEN],
    bias: [0; CH],
    mult: [0; CH],
    shift: [0; CH],
};

/// xorshift32.
struct Rng(u32);

impl Rng {
    fn next(&mut self) -> u32 {
        let mut s = self.0;
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        self.0 = s;
        s
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u32, hi: u32) -> u32 {
        lo + self.next() % (hi - lo + 1)
    }
    fn zero_point(&mut self) -> i32 {
        self.range(0, 255) as i32 - 128
    }
    fn fill(&mut self, buf: &mut [i8]) {
        for b in buf.iter_mut() {
            *b = (self.next() >> 24) as i8;
        }
    }
    /// Uniform in `-2^(bits-1)..2^(bits-1)`.
    fn signed(&mut self, bits: u32) -> i32 {
        (self.next() >> (32 - bits)) as i32 - (1 << (bits - 1))
    }
    /// Random operands of a weighted layer: `x[..xl]`, `w[..wl]`, `n` biases of `bias_bits`
    /// bits, `n` multipliers and shifts.
    fn operands(&mut self, b: &mut Buffers, xl: usize, wl: usize, n: usize, bias_bits: u32) {
        self.fill(&mut b.x[..xl]);
        self.fill(&mut b.w[..wl]);
        for v in b.bias[..n].iter_mut() {
            *v = self.signed(bias_bits);
        }
        self.requant(&mut b.mult[..n], &mut b.shift[..n]);
    }
    /// `Some(v)` three times in four, else `None` (an optional bias).
    fn maybe<'a>(&mut self, v: &'a [i32]) -> Option<&'a [i32]> {
        (self.range(0, 3) > 0).then_some(v)
    }
    /// Q31 multiplier in [2³⁰, 2³¹) and a right shift that keeps typical sums in range.
    fn requant(&mut self, mult: &mut [i32], shift: &mut [i32]) {
        for (m, s) in mult.iter_mut().zip(shift.iter_mut()) {
            *m = (1 << 30) + (self.next() >> 2) as i32;
            *s = -(self.range(4, 14) as i32);
        }
    }
    fn clamp(&mut self, zero_point: i32) -> ClampI8 {
        match self.range(0, 3) {
            0 => ClampI8::relu(zero_point),
            1 => ClampI8 {
                min: (zero_point - 20).clamp(-128, 127) as i8,
                max: (zero_point + 60).clamp(-128, 127) as i8,
            },
            _ => ClampI8::NONE,
        }
    }
}

/// Random cases run and compared per kernel.
pub const CASES: u32 = 40;

/// Output size of a sliding window, or `None` when it does not fit.
fn window(input: u32, pad: u32, kernel: u32, stride: u32, dilation: u32) -> Option<u32> {
    let padded = input + 2 * pad;
    let effective = (kernel - 1) * dilation + 1;
    (effective <= padded).then(|| (padded - effective) / stride + 1)
}

/// A random 2D geometry within the buffers (`out_c` from `channels(in_c)`); `None` when the
/// window does not fit the input.
fn geometry(rng: &mut Rng, out_c: impl Fn(u32) -> u32) -> Option<Conv2dShape> {
    let (h, w, in_c) = (rng.range(1, 9), rng.range(1, 9), rng.range(1, 24));
    let mut kernel = [rng.range(1, 4), rng.range(1, 4)];
    let mut stride = [rng.range(1, 2), rng.range(1, 2)];
    let dilation = [rng.range(1, 2), rng.range(1, 2)];
    let mut pad = rng.range(0, 1);
    // One in four pointwise (1×1, stride 1, no padding: Conv2D's FullyConnected path).
    if rng.range(0, 3) == 0 {
        (kernel, stride, pad) = ([1, 1], [1, 1], 0);
    }
    let oh = window(h, pad, kernel[0], stride[0], dilation[0])?;
    let ow = window(w, pad, kernel[1], stride[1], dilation[1])?;
    Some(Conv2dShape {
        input: [1, h, w, in_c],
        output: [1, oh, ow, out_c(in_c)],
        kernel,
        stride,
        dilation,
        padding: Padding {
            top: pad,
            bottom: pad,
            left: pad,
            right: pad,
        },
    })
}

/// Cases run for one kernel and whether every output matched so far.
struct Tally {
    name: &'static str,
    ran: u32,
    ok: bool,
}

impl Tally {
    fn new(name: &'static str) -> Self {
        Tally {
            name,
            ran: 0,
            ok: true,
        }
    }

    /// `true` while fewer than [`CASES`] cases ran.
    fn more(&self) -> bool {
        self.ran < CASES
    }

    /// One case: `checked` is the kernel's `check_i8` verdict; `reference` and `dsp` write
    /// `want` and `got`, each returning whether it succeeded. `false` when the case was rejected
    /// (a sweep bug, logged): the kernel's sweep stops there.
    fn case<E>(
        &mut self,
        checked: Result<(), E>,
        (want, got): (&mut [i8], &mut [i8]),
        (reference, dsp): (
            impl FnOnce(&mut [i8]) -> bool,
            impl FnOnce(&mut [i8]) -> bool,
        ),
    ) -> bool {
        if checked.is_err() {
            defmt::error!("{}: random case rejected", self.name);
            return false;
        }
        let (r1, r2) = (reference(want), dsp(got));
        self.ok &= r1 && r2 && want == got;
        self.ran += 1;
        true
    }

    /// Logs the verdict; `true` when every case ran and matched.
    fn report(&self) -> bool {
        defmt::info!(
            "random shapes: {} {} cases, DSP {} the reference",
            self.name,
            self.ran,
            if self.ok { "equals" } else { "DIFFERS from" }
        );
        self.ok && self.ran == CASES
    }
}

/// Runs random cases of kernel `name` until [`CASES`] ran: `case` draws one and returns `None`
/// when it does not fit the buffers (another is drawn), else [`Tally::case`]'s answer; `false`
/// as soon as one is rejected, else [`Tally::report`]'s verdict.
fn sweep(name: &'static str, mut case: impl FnMut(&mut Tally) -> Option<bool>) -> bool {
    let mut t = Tally::new(name);
    while t.more() {
        if case(&mut t) == Some(false) {
            return false;
        }
    }
    t.report()
}

/// `eval(p, x, ·)` as a [`Tally::case`] kernel (the single-input kernels cannot fail).
fn unary<'a, P>(
    eval: impl FnOnce(&P, &[i8], &mut [i8]) + 'a,
    p: &'a P,
    x: &'a [i8],
) -> impl FnOnce(&mut [i8]) -> bool + 'a {
    move |y| {
        eval(p, x, y);
        true
    }
}

/// Input, weight and output lengths of a 2D case with `per_tap` weights per kernel tap, or
/// `None` when they do not fit the buffers.
fn conv_lens(s: &Conv2dShape, per_tap: impl Fn(usize, usize) -> usize) -> Option<[usize; 3]> {
    let [_, h, w, in_c] = s.input.map(|d| d as usize);
    let [_, oh, ow, out_c] = s.output.map(|d| d as usize);
    let wl = (s.kernel[0] * s.kernel[1]) as usize * per_tap(in_c, out_c);
    let (xl, yl) = (h * w * in_c, oh * ow * out_c);
    (wl <= W_LEN && xl <= X_LEN && yl <= Y_LEN && out_c <= CH).then_some([xl, wl, yl])
}

/// FullyConnected: batch 1-5, 1-300 inputs, 1-40 outputs.
fn fully_connected(rng: &mut Rng, b: &mut Buffers) -> bool {
    sweep("fully_connected", |t| {
        let batch = rng.range(1, 5) as usize;
        let k = rng.range(1, 300) as usize;
        fc_case(t, rng, b, (batch, k), false)
    })
}

/// FullyConnected in groups of four rows with every feature in one block (the DSP kernel's
/// `quad_fast`): 4-12 rows, K a multiple of 4 up to 256, 1-40 outputs, always a bias.
fn fully_connected_quads(rng: &mut Rng, b: &mut Buffers) -> bool {
    sweep("fully_connected_quads", |t| {
        let batch = rng.range(4, 12) as usize;
        let k = 4 * rng.range(1, 64) as usize;
        fc_case(t, rng, b, (batch, k), true)
    })
}

/// One random FullyConnected case of `batch` rows of `k` inputs (1-40 outputs, as many as the
/// weight buffer holds), run through both kernels; the bias is optional unless `bias`. `None`
/// when it does not fit the buffers.
fn fc_case(
    t: &mut Tally,
    rng: &mut Rng,
    b: &mut Buffers,
    (batch, k): (usize, usize),
    bias: bool,
) -> Option<bool> {
    let n = (rng.range(1, 40) as usize).min(W_LEN / k);
    if batch * k > X_LEN || batch * n > Y_LEN {
        return None;
    }
    rng.operands(b, batch * k, n * k, n, 16);
    let zp = rng.zero_point();
    let p = FullyConnectedParams {
        shape: FullyConnectedShape {
            batch: batch as u32,
            in_features: k as u32,
            out_features: n as u32,
        },
        weights: &b.w[..n * k],
        bias: if bias {
            Some(&b.bias[..n])
        } else {
            rng.maybe(&b.bias[..n])
        },
        input_zero_point: rng.zero_point(),
        output_zero_point: zp,
        output_multiplier: &b.mult[..n],
        output_shift: &b.shift[..n],
        activation: rng.clamp(zp),
    };
    let (x, len) = (&b.x[..batch * k], batch * n);
    let checked = fully_connected::check_i8(&p, x.len(), len);
    let outs = (&mut b.want[..len], &mut b.got[..len]);
    let reference = fully_connected::reference::eval_i8;
    // On ARMv6-M the table's kernel is the 2×2-block one (its `asm!` loop runs only there).
    #[cfg(armv6m)]
    let fast = fully_connected::pairs::eval_i8;
    #[cfg(not(armv6m))]
    let fast = fully_connected::dsp::eval_i8;
    Some(t.case(checked, outs, (unary(reference, &p, x), unary(fast, &p, x))))
}

/// Conv2D: up to 9×9×24 in, 1-16 outputs, kernels up to 4×4 (a quarter pointwise), strides,
/// dilations, padding.
fn conv2d(rng: &mut Rng, b: &mut Buffers) -> bool {
    sweep("conv2d", |t| {
        let o = rng.range(1, 16);
        let s = geometry(rng, |_| o)?;
        let [xl, wl, yl] = conv_lens(&s, |in_c, out_c| in_c * out_c)?;
        let out_c = o as usize;
        rng.operands(b, xl, wl, out_c, 16);
        let zp = rng.zero_point();
        let p = Conv2dParams {
            shape: s,
            weights: &b.w[..wl],
            bias: Some(&b.bias[..out_c]),
            input_zero_point: rng.zero_point(),
            output_zero_point: zp,
            output_multiplier: &b.mult[..out_c],
            output_shift: &b.shift[..out_c],
            activation: rng.clamp(zp),
        };
        let x = &b.x[..xl];
        let checked = conv2d::check_i8(&p, xl, yl);
        let outs = (&mut b.want[..yl], &mut b.got[..yl]);
        let reference = conv2d::reference::eval_i8;
        #[cfg(armv6m)]
        let fast = conv2d::pairs::eval_i8;
        #[cfg(not(armv6m))]
        let fast = conv2d::dsp::eval_i8;
        Some(t.case(checked, outs, (unary(reference, &p, x), unary(fast, &p, x))))
    })
}

/// DepthwiseConv2D: up to 9×9×24 in, depth multiplier 1-2, kernels up to 4×4, one case in
/// three up to 8×8 (the DSP kernel then splits 13 or more channels into blocks); one case in
/// three with a shift outside the DSP kernel's fast requantization (its general path).
fn depthwise(rng: &mut Rng, b: &mut Buffers) -> bool {
    #[cfg(not(armv6m))]
    use depthwise_conv2d::dsp as fast;
    use depthwise_conv2d::reference;
    #[cfg(armv6m)]
    use depthwise_conv2d::tap_major as fast;
    sweep("depthwise_conv2d", |t| {
        let mult = if rng.range(0, 3) == 0 { 2 } else { 1 };
        let mut s = geometry(rng, |c| c * mult)?;
        if rng.range(0, 2) == 0 {
            s.kernel = [rng.range(1, 8), rng.range(1, 8)];
            let pad = s.padding.top;
            let [h, w] = [s.input[1], s.input[2]];
            s.output[1] = window(h, pad, s.kernel[0], s.stride[0], s.dilation[0])?;
            s.output[2] = window(w, pad, s.kernel[1], s.stride[1], s.dilation[1])?;
        }
        let [xl, wl, yl] = conv_lens(&s, |_, out_c| out_c)?;
        let out_c = s.output[3] as usize;
        rng.operands(b, xl, wl, out_c, 14);
        if rng.range(0, 2) == 0 {
            let c = rng.range(0, out_c as u32 - 1) as usize;
            b.shift[c] = rng.range(0, 2) as i32 - 1;
        }
        let zp = rng.zero_point();
        let p = DepthwiseConv2dParams {
            shape: s,
            depth_multiplier: mult,
            weights: &b.w[..wl],
            bias: rng.maybe(&b.bias[..out_c]),
            input_zero_point: rng.zero_point(),
            output_zero_point: zp,
            output_multiplier: &b.mult[..out_c],
            output_shift: &b.shift[..out_c],
            activation: rng.clamp(zp),
        };
        let x = &b.x[..xl];
        let checked = depthwise_conv2d::check_i8(&p, xl, yl);
        let outs = (&mut b.want[..yl], &mut b.got[..yl]);
        Some(t.case(
            checked,
            outs,
            (
                unary(reference::eval_i8, &p, x),
                unary(fast::eval_i8, &p, x),
            ),
        ))
    })
}

/// BatchMatMul: batch 1-3, m 1-9, k 1-100 (sometimes up to 600), n 1-40, both layouts of B.
fn batch_matmul(rng: &mut Rng, b: &mut Buffers) -> bool {
    sweep("batch_matmul", |t| {
        let k = if rng.range(0, 7) == 0 {
            rng.range(1, 600)
        } else {
            rng.range(1, 100)
        };
        let shape = BatchMatMulShape {
            batch: rng.range(1, 3),
            m: rng.range(1, 9),
            k,
            n: rng.range(1, 40),
            transpose_b: rng.range(0, 1) == 1,
        };
        let (la, lb, lo) = shape.lens().ok()?;
        if la > X_LEN || lb > W_LEN || lo > Y_LEN {
            return None;
        }
        rng.fill(&mut b.x[..la]);
        rng.fill(&mut b.w[..lb]);
        let zp = rng.zero_point();
        let mut mult = [0i32];
        let mut shift = [0i32];
        rng.requant(&mut mult, &mut shift);
        let p = BatchMatMulParams {
            shape,
            a_zero_point: rng.zero_point(),
            b_zero_point: rng.zero_point(),
            output_zero_point: zp,
            output_multiplier: mult[0],
            output_shift: shift[0] - 2,
            activation: rng.clamp(zp),
        };
        let (x, w) = (&b.x[..la], &b.w[..lb]);
        let checked = batch_matmul::check_i8(&p, la, lb, lo);
        let outs = (&mut b.want[..lo], &mut b.got[..lo]);
        let reference = |y: &mut [i8]| {
            batch_matmul::reference::eval_i8(&p, x, w, y);
            true
        };
        let dsp = |y: &mut [i8]| {
            batch_matmul::dsp::eval_i8(&p, x, w, y);
            true
        };
        Some(t.case(checked, outs, (reference, dsp)))
    })
}

/// Attention over a KV cache: 1-3 heads, head width 1-40, capacity 1-40, 1-4 new tokens at a
/// random position, causal or not, a random monotone Q24 softmax table.
fn attention(rng: &mut Rng, b: &mut Buffers) -> bool {
    let mut table = [0i32; 256];
    let mut scratch = [0i32; 64];
    sweep("attention", |t| {
        let capacity = rng.range(1, 40);
        let shape = KvShape {
            heads: rng.range(1, 3),
            head_dim: rng.range(1, 40),
            capacity,
            tokens: rng.range(1, capacity.min(4)),
        };
        let (n, c) = shape.lens().ok()?;
        if n > Y_LEN || 2 * c > W_LEN || n > X_LEN {
            return None;
        }
        let position = rng.range(0, capacity - shape.tokens) as i32;
        rng.fill(&mut b.x[..n]);
        rng.fill(&mut b.w[..2 * c]);
        let decay = rng.range(2, 40) as i32;
        let mut e = 1i32 << 24;
        for te in table.iter_mut() {
            *te = e;
            e -= e / decay;
        }
        let mut mult = [0i32; 2];
        let mut shift = [0i32; 2];
        rng.requant(&mut mult, &mut shift);
        let p = AttentionParams {
            shape,
            causal: rng.range(0, 3) > 0,
            q_zero_point: rng.zero_point(),
            k_zero_point: rng.zero_point(),
            v_zero_point: rng.zero_point(),
            score_multiplier: mult[0],
            score_shift: shift[0] + 4,
            score_zero_point: rng.zero_point(),
            exp_table: &table,
            output_multiplier: mult[1],
            output_shift: shift[1] - 6,
            output_zero_point: rng.zero_point(),
        };
        let (k_cache, v_cache) = b.w[..2 * c].split_at(c);
        let checked = attention::check_i8(&p, n, c, scratch.len(), n);
        let q = &b.x[..n];
        let outs = (&mut b.want[..n], &mut b.got[..n]);
        // Both kernels use the scratch row, one after the other.
        let scratch = core::cell::RefCell::new(&mut scratch);
        let reference = |y: &mut [i8]| {
            let dot = DotKernel::reference();
            let mut s = scratch.borrow_mut();
            attention::reference::eval_i8(&dot, &p, q, k_cache, v_cache, position, &mut s[..], y)
                .is_ok()
        };
        let dsp = |y: &mut [i8]| {
            let mut s = scratch.borrow_mut();
            attention::dsp::eval_i8(&p, q, k_cache, v_cache, position, &mut s[..], y).is_ok()
        };
        Some(t.case(checked, outs, (reference, dsp)))
    })
}

/// A broadcast of up to `[1, 4, 40, 64]` outputs (`None` beyond [`X_LEN`]): each input keeps
/// or broadcasts every axis, or is one value.
fn broadcast(rng: &mut Rng) -> Option<(BroadcastShape, [usize; 3])> {
    let output = [1, rng.range(1, 4), rng.range(1, 40), rng.range(1, 64)];
    let mut input = || match rng.range(0, 5) {
        0 => [1; 4],
        1 | 2 => output,
        _ => output.map(|d| if rng.range(0, 2) == 0 { 1 } else { d }),
    };
    let (input1, input2) = (input(), input());
    let output = [0, 1, 2, 3].map(|k| input1[k].max(input2[k]));
    let len = |d: [u32; 4]| d.iter().map(|&v| v as usize).product::<usize>();
    let lens = [len(input1), len(input2), len(output)];
    let shape = BroadcastShape {
        input1,
        input2,
        output,
    };
    (lens[2] <= X_LEN.min(Y_LEN)).then_some((shape, lens))
}

/// `(multiplier, shift)`: the Q31 form of a real scale with shift in `[lo, hi]` half the time,
/// else an extreme multiplier (0, 2^30, `i32::MAX`) or any, with any shift in `[lo, hi]`.
fn multiplier(rng: &mut Rng, lo: i32, hi: i32) -> (i32, i32) {
    let shift = lo + rng.range(0, (hi - lo) as u32) as i32;
    let m = match rng.range(0, 5) {
        0 => 0,
        1 => 1 << 30,
        2 => i32::MAX,
        _ => (rng.next() >> 1) as i32,
    };
    (m, shift)
}

/// Add: random broadcasts (up to 4096 outputs, the input tables from 256 on), zero points and
/// clamps; multipliers from real scales or anywhere in the valid range.
fn add_i8(rng: &mut Rng, b: &mut Buffers) -> bool {
    sweep("add", |t| {
        let (shape, [l1, l2, n]) = broadcast(rng)?;
        rng.fill(&mut b.x[..l1]);
        rng.fill(&mut b.w[..l2]);
        let zp = rng.zero_point();
        let requant = if rng.range(0, 1) == 0 {
            let scale = |rng: &mut Rng| 1.0 / (1 + rng.range(1, 2000)) as f64;
            let (s1, s2) = (scale(rng), scale(rng));
            AddRequant::new(s1, s2, scale(rng).max(s1.max(s2) / 8.0))?
        } else {
            AddRequant {
                input1: multiplier(rng, -31, 0),
                input2: multiplier(rng, -31, 0),
                output: multiplier(rng, -31, 2),
            }
        };
        let p = AddParams {
            shape,
            input1_zero_point: rng.zero_point(),
            input2_zero_point: rng.zero_point(),
            output_zero_point: zp,
            requant,
            activation: rng.clamp(zp),
        };
        let (x1, x2) = (&b.x[..l1], &b.w[..l2]);
        let checked = add::check_i8(&p, l1, l2, n);
        let outs = (&mut b.want[..n], &mut b.got[..n]);
        let reference = |y: &mut [i8]| {
            add::reference::eval_i8(&p, x1, x2, y);
            true
        };
        let dsp = |y: &mut [i8]| {
            add::dsp::eval_i8(&p, x1, x2, y);
            true
        };
        Some(t.case(checked, outs, (reference, dsp)))
    })
}

/// Mul: random broadcasts (up to 4096 outputs; one input a single value: the output table from
/// 256 on), zero points and clamps; multipliers anywhere, shifts in `[-31, 15]`.
fn mul_i8(rng: &mut Rng, b: &mut Buffers) -> bool {
    sweep("mul", |t| {
        let (shape, [l1, l2, n]) = broadcast(rng)?;
        rng.fill(&mut b.x[..l1]);
        rng.fill(&mut b.w[..l2]);
        let zp = rng.zero_point();
        let (output_multiplier, output_shift) = multiplier(rng, -31, 15);
        let p = MulParams {
            shape,
            input1_zero_point: rng.zero_point(),
            input2_zero_point: rng.zero_point(),
            output_zero_point: zp,
            output_multiplier,
            output_shift,
            activation: rng.clamp(zp),
        };
        let (x1, x2) = (&b.x[..l1], &b.w[..l2]);
        let checked = mul::check_i8(&p, l1, l2, n);
        let outs = (&mut b.want[..n], &mut b.got[..n]);
        let reference = |y: &mut [i8]| {
            mul::reference::eval_i8(&p, x1, x2, y);
            true
        };
        let dsp = |y: &mut [i8]| {
            mul::dsp::eval_i8(&p, x1, x2, y);
            true
        };
        Some(t.case(checked, outs, (reference, dsp)))
    })
}

/// Quantize (rounding by an f32 addition, the device's FPU): up to 256 values spread over ±300
/// output steps, with exact ties, ±0, ±inf, NaN, huge and subnormal values; random scales and
/// zero points.
fn quantize_f32(rng: &mut Rng, b: &mut Buffers) -> bool {
    const SPECIALS: [f32; 10] = [
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        3.0e38,
        -3.0e38,
        1.0e-40,
        8_388_609.0,
        -2_147_483_648.0,
    ];
    let mut x = [0f32; 256];
    sweep("quantize", |t| {
        let n = rng.range(1, 256) as usize;
        let p = QuantizeParams {
            scale: 1.0 / rng.range(1, 5000) as f32,
            zero_point: rng.zero_point(),
        };
        for (k, v) in x[..n].iter_mut().enumerate() {
            let steps = rng.signed(11) as f32;
            *v = match k % 7 {
                0 => (steps + 0.5) * p.scale,
                1 => SPECIALS[rng.range(0, SPECIALS.len() as u32 - 1) as usize],
                _ => steps * 0.37 * p.scale,
            };
        }
        let x = &x[..n];
        let checked = quantize::check(&p, n, n);
        let outs = (&mut b.want[..n], &mut b.got[..n]);
        let reference = |y: &mut [i8]| {
            quantize::reference::eval_quantize(&p, x, y);
            true
        };
        let dsp = |y: &mut [i8]| {
            quantize::dsp::eval_quantize(&p, x, y);
            true
        };
        Some(t.case(checked, outs, (reference, dsp)))
    })
}

/// Runs every kernel's random cases; `true` when every output equals the reference's.
pub fn run() -> bool {
    // SAFETY: called once, from the bench's `run`; the only reference to BUFFERS.
    let b = unsafe { &mut *core::ptr::addr_of_mut!(BUFFERS) };
    let mut rng = Rng(0x9E37_79B9);
    let mut ok = fully_connected(&mut rng, b);
    ok &= conv2d(&mut rng, b);
    ok &= depthwise(&mut rng, b);
    ok &= batch_matmul(&mut rng, b);
    ok &= attention(&mut rng, b);
    ok &= add_i8(&mut rng, b);
    ok &= mul_i8(&mut rng, b);
    ok &= quantize_f32(&mut rng, b);
    // Last, so that the cases drawn for the kernels above stay as they were.
    ok &= fully_connected_quads(&mut rng, b);
    ok
}
