//! Ops with constant weights or two activation operands: Gemm / MatMul → FullyConnected or
//! BatchMatMul, Conv → Conv2D / DepthwiseConv2D, and the operator-form QLinearMatMul /
//! QLinearConv.

use edgeloop_runtime::image::layers::Window;
use edgeloop_runtime::image::writer::ConstRole;
use edgeloop_runtime::image::OpCode;
use edgeloop_runtime::quant::quantize_multiplier;
use tract_onnx::pb::NodeProto;

use super::{unsup, Act, Ctx, LResult, Layout, QParams, Val};
use crate::compile::host::{attr_ints, attr_str, Elem, HostTensor, QConst};
use crate::compile::qdq_match::{self, OutQuant};
use crate::onnx::{attr_f, attr_i};

/// int8 weights (`value − zero point`) in the op's layout and one scale per output channel.
#[derive(Debug, Clone)]
pub struct IntWeights {
    /// Values.
    pub q: Vec<i8>,
    /// Scale of each output channel.
    pub scales: Vec<f32>,
}

/// Integer weights of a dequantized constant whose output channels lie along `axis`, in the
/// constant's own order.
pub fn int_weights(h: &HostTensor, axis: usize) -> LResult<IntWeights> {
    let Some(q) = &h.quant else {
        return unsup("its weights are float, not DequantizeLinear of int8");
    };
    if !matches!(q.elem, Elem::I8 | Elem::U8) {
        return unsup(format!("weights of type {:?} (int8/uint8 needed)", q.elem));
    }
    let channels = match h.shape.get(axis) {
        Some(&c) => c,
        None => return unsup("weights of too small a rank"),
    };
    let scales = match q.axis {
        None => vec![q.scales[0]; channels],
        Some(a) if a == axis && q.scales.len() == channels => q.scales.clone(),
        Some(a) => {
            return unsup(format!(
                "weights quantized per channel along axis {a}; the op's output channels are axis {axis}"
            ))
        }
    };
    if q.zero_points.len() != 1 && q.zero_points.len() != channels {
        return unsup("weight zero points do not match the output channels");
    }
    let inner: usize = h.shape[axis + 1..].iter().product();
    let mut out = Vec::with_capacity(q.values.len());
    for (k, &v) in q.values.iter().enumerate() {
        let c = (k / inner.max(1)) % channels;
        let zp = if q.zero_points.len() == 1 {
            q.zero_points[0]
        } else {
            q.zero_points[c]
        };
        let d = v - zp;
        if !(-128..=127).contains(&d) {
            return unsup(format!(
                "weight value {v} with zero point {zp} does not fit int8 after removing the zero point"
            ));
        }
        out.push(d as i8);
    }
    Ok(IntWeights { q: out, scales })
}

/// int32 bias at scale `s_x · s_w[c]` from a constant (dequantized int32, or float).
pub fn int_bias(b: &HostTensor, n: usize, s_x: f32, s_w: &[f32]) -> LResult<Vec<i32>> {
    if b.len() != n && b.len() != 1 {
        return unsup(format!("bias of {} values for {n} channels", b.len()));
    }
    if let Some(q) = &b.quant {
        let ok = |len: usize| len == 1 || len == b.len();
        if !ok(q.scales.len()) || !ok(q.zero_points.len()) || q.values.len() != b.len() {
            return unsup("bias quantization parameters do not match the bias length");
        }
    }
    let at = |c: usize| if b.len() == 1 { 0 } else { c };
    (0..n)
        .map(|c| {
            let target = s_x as f64 * s_w[c] as f64;
            let v = match &b.quant {
                Some(q) => {
                    let k = if q.scales.len() == 1 { 0 } else { at(c) };
                    let zp = if q.zero_points.len() == 1 {
                        q.zero_points[0]
                    } else {
                        q.zero_points[at(c)]
                    };
                    let int = q.values[at(c)] - zp;
                    let ratio = q.scales[k] as f64 / target;
                    if (ratio - 1.0).abs() < 1e-6 {
                        int as f64
                    } else {
                        (int as f64 * ratio).round()
                    }
                }
                None => (b.as_f32()[at(c)] as f64 / target).round(),
            };
            if !(i32::MIN as f64..=i32::MAX as f64).contains(&v) {
                return unsup("bias does not fit int32 at the input·weight scale");
            }
            Ok(v as i32)
        })
        .collect()
}

fn requant_consts(
    ctx: &mut Ctx<'_>,
    s_x: f32,
    ws: &[f32],
    s_out: f32,
) -> LResult<[edgeloop_runtime::image::writer::TensorId; 2]> {
    let mut m = Vec::with_capacity(ws.len());
    let mut s = Vec::with_capacity(ws.len());
    for &w in ws {
        let real = s_x as f64 * w as f64 / s_out as f64;
        let Some((mm, sh)) = quantize_multiplier(real) else {
            return unsup(format!(
                "requantization scale {real:e} is not representable"
            ));
        };
        m.push(mm);
        s.push(sh);
    }
    Ok([
        ctx.w.const_i32(&[ws.len()], &m, ConstRole::Other)?,
        ctx.w.const_i32(&[ws.len()], &s, ConstRole::Other)?,
    ])
}

/// Fewest rows for which [`emit_fc_i8`] pre-packs (with `CompileOptions::prepack`): below it the
/// runtime's kernel reads the weights row by row without packing them (a decode step).
const PREPACK_MIN_ROWS: usize = 4;

/// Emits an int8 FullyConnected: `x [.., k]` → `[.., n]`, weights `[n, k]` (version 2, weights
/// pre-packed, with `CompileOptions::prepack` and at least [`PREPACK_MIN_ROWS`] rows).
#[allow(clippy::too_many_arguments)]
pub fn emit_fc_i8(
    ctx: &mut Ctx<'_>,
    x: &Act,
    w: &IntWeights,
    n: usize,
    k: usize,
    bias: Option<Vec<i32>>,
    out: (f32, i32),
    clamp: [u32; 2],
) -> LResult<Act> {
    let x = ctx.to_layout(x, Layout::Plain)?;
    let (sx, zx) = ctx.quant(&x)?;
    let rows = x.shape.iter().product::<usize>() / k.max(1);
    let [mt, st] = requant_consts(ctx, sx, &w.scales, out.0)?;
    let mut shape = x.shape.clone();
    match shape.last_mut() {
        Some(l) => *l = n,
        None => shape.push(n),
    }
    if ctx.prepack && rows >= PREPACK_MIN_ROWS {
        // Version 2: the weights in the AVX-512 VNNI panel layout and the column terms.
        use edgeloop_runtime::ops::fully_connected::packed;
        let len = packed::packed_len(n, k).ok_or(super::Fail::Unsupported(
            "FullyConnected too large to pre-pack".into(),
        ))?;
        let mut panels = vec![0i8; len];
        packed::pack(&w.q, n, k, &mut panels);
        let mut ct = vec![0i32; n];
        packed::column_terms(&w.q, n, k, bias.as_deref(), zx, &mut ct);
        let wt = ctx.w.const_i8(
            &[n.div_ceil(16) * 16, k.div_ceil(4) * 4],
            &panels,
            ConstRole::Weight,
        )?;
        let ctt = ctx.w.const_i32(&[n], &ct, ConstRole::Bias)?;
        let y = ctx.new_i8(&shape, Layout::Plain, out)?;
        ctx.op_version(
            OpCode::FullyConnected,
            2,
            &[Some(x.id), Some(wt), Some(ctt), Some(mt), Some(st)],
            &[y.id],
            &clamp,
        )?;
        return Ok(y);
    }
    let wt = ctx.w.const_i8(&[n, k], &w.q, ConstRole::Weight)?;
    let bt = match bias {
        Some(b) => Some(ctx.w.const_i32(&[n], &b, ConstRole::Bias)?),
        None => None,
    };
    let y = ctx.new_i8(&shape, Layout::Plain, out)?;
    ctx.op(
        OpCode::FullyConnected,
        &[Some(x.id), Some(wt), bt, Some(mt), Some(st)],
        &[y.id],
        &clamp,
    )?;
    Ok(y)
}

/// Emits an f32 FullyConnected with weights `[n, k]` and clamp `(min, max)`.
fn emit_fc_f32(
    ctx: &mut Ctx<'_>,
    x: &Act,
    w: &[f32],
    n: usize,
    bias: Option<&[f32]>,
    clamp: (f32, f32),
) -> LResult<Act> {
    let x = ctx.to_layout(x, Layout::Plain)?;
    let k = w.len() / n.max(1);
    let wt = ctx.w.const_f32(&[n, k], w, ConstRole::Weight)?;
    let bt = match bias {
        Some(b) => Some(ctx.w.const_f32(&[n], b, ConstRole::Bias)?),
        None => None,
    };
    let mut shape = x.shape.clone();
    match shape.last_mut() {
        Some(l) => *l = n,
        None => shape.push(n),
    }
    let y = ctx.new_f32(&shape, Layout::Plain)?;
    ctx.op(
        OpCode::FullyConnected,
        &[Some(x.id), Some(wt), bt],
        &[y.id],
        &[clamp.0.to_bits(), clamp.1.to_bits()],
    )?;
    Ok(y)
}

/// The fused f32 activation of tensor `t`: its clamp and node (none: ±∞).
fn fused_clamp(ctx: &Ctx<'_>, t: &str) -> ((f32, f32), Option<usize>) {
    match qdq_match::float_activation(ctx, t) {
        Some((a, b)) => (b, Some(a)),
        None => ((f32::NEG_INFINITY, f32::INFINITY), None),
    }
}

/// `[r, c]` row-major → `[c, r]`.
fn transpose2<T: Copy>(v: &[T], r: usize, c: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(v.len());
    for j in 0..c {
        for i in 0..r {
            out.push(v[i * c + j]);
        }
    }
    out
}

/// Gemm: `A·B + C` with constant B (and C) → FullyConnected.
pub fn gemm(ctx: &mut Ctx<'_>, i: usize) -> LResult<()> {
    let n = &ctx.nodes[i];
    let (alpha, beta) = (attr_f(n, "alpha", 1.0), attr_f(n, "beta", 1.0));
    let (ta, tb) = (attr_i(n, "transA", 0), attr_i(n, "transB", 0));
    let Some(b) = ctx.konst(n, 1).cloned() else {
        return unsup("B is not a constant (the runtime needs constant weights)");
    };
    if b.shape.len() != 2 {
        return unsup("B is not a matrix");
    }
    let (k, nn) = if tb != 0 {
        (b.shape[1], b.shape[0])
    } else {
        (b.shape[0], b.shape[1])
    };
    let c = match Ctx::in_name(n, 2) {
        None => None,
        Some(_) => match ctx.konst(n, 2) {
            Some(c) => Some(c.clone()),
            None => return unsup("C is not a constant"),
        },
    };
    // A per-output bias (or a scalar) goes into the op; a matrix C is added after it (f32).
    let vector_c = c
        .as_ref()
        .is_none_or(|c| c.len() == 1 || c.len() == nn && c.shape.last() == Some(&nn));
    let a_shape = match ctx.input(n, 0)? {
        Val::Const(_) => return unsup("A is a constant"),
        Val::F32(a) | Val::Deq(a) | Val::I8(a) | Val::I32(a) => a.shape.clone(),
    };
    let ka = if ta != 0 {
        a_shape.first()
    } else {
        a_shape.get(1)
    };
    if a_shape.len() != 2 || ka != Some(&k) {
        return unsup(format!("A of shape {a_shape:?} does not match B"));
    }
    let m_rows = if ta != 0 { a_shape[1] } else { a_shape[0] };
    if let (Some(x), true, Some(oq)) = (
        ctx.deq(n, 0),
        ta == 0 && vector_c && alpha == 1.0 && (beta == 1.0 || c.is_none()) && b.quant.is_some(),
        qdq_match::output_quant(ctx, i),
    ) {
        let w = int_weights(&b, if tb != 0 { 0 } else { 1 })?;
        let w = if tb != 0 {
            w
        } else {
            IntWeights {
                q: transpose2(&w.q, k, nn),
                scales: w.scales,
            }
        };
        let (sx, _) = ctx.quant(&x)?;
        let bias = match &c {
            Some(c) => Some(int_bias(c, nn, sx, &w.scales)?),
            None => None,
        };
        let y = emit_fc_i8(ctx, &x, &w, nn, k, bias, oq.quant, oq.clamp_words())?;
        qdq_match::finish(ctx, &oq, y);
        return Ok(());
    }
    if ctx.deq(n, 0).is_some() {
        ctx.note_island(i, "no int8 pattern (weights, output or attributes)");
    }
    let mut x = ctx.f32_input(n, 0)?;
    if ta != 0 {
        let id = ctx.w.transpose(x.id, &[1, 0])?;
        x = Act {
            id,
            shape: vec![m_rows, k],
            layout: Layout::Plain,
        };
    }
    let bf = b.as_f32();
    let mut w = if tb != 0 { bf } else { transpose2(&bf, k, nn) };
    w.iter_mut().for_each(|v| *v *= alpha);
    let bias: Option<Vec<f32>> = match &c {
        Some(c) if vector_c => {
            let cf = c.as_f32();
            Some(
                (0..nn)
                    .map(|j| beta * cf[if cf.len() == 1 { 0 } else { j }])
                    .collect(),
            )
        }
        _ => None,
    };
    let out_name = n.output.first().cloned().unwrap_or_default();
    let (clamp, act) = if vector_c {
        fused_clamp(ctx, &out_name)
    } else {
        ((f32::NEG_INFINITY, f32::INFINITY), None)
    };
    let mut y = emit_fc_f32(ctx, &x, &w, nn, bias.as_deref(), clamp)?;
    if let Some(a) = act {
        qdq_match::finish_float(ctx, a, y);
        return Ok(());
    }
    if let (Some(c), false) = (&c, vector_c) {
        let out = [m_rows, nn];
        if super::elementwise::broadcast(&out, &c.shape).as_deref() != Some(&out[..]) {
            return unsup(format!(
                "C of shape {:?} does not broadcast to {out:?}",
                c.shape
            ));
        }
        let cf: Vec<f32> = c.as_f32().iter().map(|v| beta * v).collect();
        let dims = super::runtime_dims(&c.shape)?;
        let ct = ctx.w.const_f32(&dims, &cf, ConstRole::Bias)?;
        let z = ctx.new_f32(&out, Layout::Plain)?;
        ctx.op(
            OpCode::Add,
            &[Some(y.id), Some(ct)],
            &[z.id],
            &clamp_none_f32(),
        )?;
        y = z;
    }
    ctx.set_out(n, 0, Val::F32(y));
    Ok(())
}

/// The `Add` that is the only reader of MatMul `i`'s output (not a graph output) and adds to it
/// a constant per-output bias dequantized from int32 (`[.., nn]`, rank at most `rank`), when
/// the Add's output goes to QuantizeLinear: `(add node, bias, output quantization)`.
fn int32_bias_add(
    ctx: &Ctx<'_>,
    i: usize,
    nn: usize,
    rank: usize,
) -> Option<(usize, HostTensor, OutQuant)> {
    let t = ctx.nodes[i].output.first()?;
    if ctx.graph_outputs.contains(t) {
        return None;
    }
    let [a] = ctx.consumers.get(t)?.as_slice() else {
        return None;
    };
    let an = &ctx.nodes[*a];
    if an.op_type != "Add" || ctx.done[*a] || an.input.len() != 2 {
        return None;
    }
    let other = match (Ctx::in_name(an, 0), Ctx::in_name(an, 1)) {
        (Some(x), Some(y)) if x == t && y != t => 1,
        (Some(x), Some(y)) if y == t && x != t => 0,
        _ => return None,
    };
    let c = ctx.konst(an, other)?;
    let int32 = c
        .quant
        .as_ref()
        .is_some_and(|q| q.elem == Elem::I32 && q.values.len() == c.len());
    let per_out = c.len() == nn && c.shape.last() == Some(&nn) && c.shape.len() <= rank;
    if !(int32 && per_out) {
        return None;
    }
    let oq = qdq_match::output_quant(ctx, *a)?;
    Some((*a, c.clone(), oq))
}

/// MatMul: constant right operand → FullyConnected; two activations → BatchMatMul.
pub fn matmul(ctx: &mut Ctx<'_>, i: usize) -> LResult<()> {
    let n = &ctx.nodes[i];
    if let Some(b) = ctx.konst(n, 1).cloned() {
        let mut bs = b.shape.clone();
        while bs.len() > 2 && bs[0] == 1 {
            bs.remove(0);
        }
        if bs.len() != 2 {
            return unsup(format!(
                "constant right operand of shape {:?} (a matrix is needed)",
                b.shape
            ));
        }
        let (k, nn) = (bs[0], bs[1]);
        let a = match ctx.input(n, 0)? {
            Val::Const(_) => return unsup("both operands are constants"),
            Val::F32(a) | Val::Deq(a) | Val::I8(a) | Val::I32(a) => a.clone(),
        };
        if a.shape.last() != Some(&k) {
            return unsup(format!(
                "shapes {:?} and {:?} do not match",
                a.shape, b.shape
            ));
        }
        let out_shape: Vec<usize> = if a.shape.len() == 1 {
            vec![nn]
        } else {
            let mut s = a.shape.clone();
            *s.last_mut().unwrap_or(&mut 0) = nn;
            s
        };
        if b.shape.len() > 2 && out_shape.len() < b.shape.len() {
            return unsup("a batched constant right operand broadcasts the left one");
        }
        // The output goes to QuantizeLinear, or to the Add of a quantized int32 bias whose
        // output goes to QuantizeLinear (a linear layer with its bias folded by the quantizer).
        let int8_out = match qdq_match::output_quant(ctx, i) {
            Some(oq) => Some((oq, None)),
            None => {
                int32_bias_add(ctx, i, nn, out_shape.len()).map(|(a, c, oq)| (oq, Some((a, c))))
            }
        };
        if let (Some(x), true, Some((oq, bias_add))) = (ctx.deq(n, 0), b.quant.is_some(), int8_out)
        {
            let mut b2 = b.clone();
            b2.shape = bs.clone();
            if let Some(q) = &mut b2.quant {
                q.axis = q.axis.map(|ax| ax + 2 - b.shape.len());
            }
            let w = int_weights(&b2, 1)?;
            let w = IntWeights {
                q: transpose2(&w.q, k, nn),
                scales: w.scales,
            };
            let x = if x.shape.len() == 1 {
                ctx.reshape(&x, &[1, k])?
            } else {
                x
            };
            let bias = match &bias_add {
                Some((_, c)) => Some(int_bias(c, nn, ctx.quant(&x)?.0, &w.scales)?),
                None => None,
            };
            let y = emit_fc_i8(ctx, &x, &w, nn, k, bias, oq.quant, oq.clamp_words())?;
            let y = ctx.reshape(&y, &out_shape)?;
            qdq_match::finish(ctx, &oq, y);
            if let Some((a, _)) = bias_add {
                ctx.done[a] = true;
            }
            return Ok(());
        }
        if ctx.deq(n, 0).is_some() {
            ctx.note_island(i, "no int8 pattern (weights or output)");
        }
        let x = ctx.f32_input(n, 0)?;
        let x = if x.shape.len() == 1 {
            ctx.reshape(&x, &[1, k])?
        } else {
            x
        };
        let w = transpose2(&b.as_f32(), k, nn);
        // A following Add of a constant per-output bias, and a Relu/Clip after it, are fused.
        let mut tail = n.output.first().cloned().unwrap_or_default();
        let mut bias = None;
        let mut add_node = None;
        if let Some([a]) = ctx.consumers.get(&tail).map(|c| c.as_slice()) {
            let an = &ctx.nodes[*a];
            if an.op_type == "Add" && !ctx.done[*a] && !ctx.graph_outputs.contains(&tail) {
                let other = if Ctx::in_name(an, 0) == Some(tail.as_str()) {
                    1
                } else {
                    0
                };
                if let Some(c) = ctx.konst(an, other) {
                    let per_out = c.len() == nn
                        && c.shape.last() == Some(&nn)
                        && c.shape.len() <= out_shape.len();
                    if per_out && Ctx::in_name(an, 1 - other) == Some(tail.as_str()) {
                        bias = Some(c.as_f32());
                        add_node = Some(*a);
                    }
                }
            }
        }
        if let Some(a) = add_node {
            tail = ctx.nodes[a].output.first().cloned().unwrap_or_default();
        }
        let (clamp, act) = fused_clamp(ctx, &tail);
        let y = emit_fc_f32(ctx, &x, &w, nn, bias.as_deref(), clamp)?;
        let y = ctx.reshape(&y, &out_shape)?;
        if let Some(a) = add_node {
            ctx.done[a] = true;
            ctx.vals.insert(tail.clone(), Val::F32(y.clone()));
        }
        match act {
            Some(r) => qdq_match::finish_float(ctx, r, y),
            None => ctx.set_out(n, 0, Val::F32(y)),
        }
        return Ok(());
    }
    if ctx.konst(n, 0).is_some() {
        return unsup("constant left operand with an activation on the right");
    }
    // Two activations.
    let oq = qdq_match::output_quant(ctx, i);
    if let (Some(a), Some(b), Some(oq)) = (ctx.deq(n, 0), ctx.deq(n, 1), oq) {
        let y = batch_matmul(ctx, &a, &b, Some(oq.quant), oq.clamp_i8())?;
        qdq_match::finish(ctx, &oq, y);
        return Ok(());
    }
    if ctx.deq(n, 0).is_some() || ctx.deq(n, 1).is_some() {
        ctx.note_island(i, "operands or output not quantized");
    }
    let a = ctx.f32_input(n, 0)?;
    let b = ctx.f32_input(n, 1)?;
    let y = batch_matmul(ctx, &a, &b, None, (-128, 127))?;
    ctx.set_out(n, 0, Val::F32(y));
    Ok(())
}

/// BatchMatMul of two activations (int8 when `out` is given).
pub fn batch_matmul(
    ctx: &mut Ctx<'_>,
    a: &Act,
    b: &Act,
    out: Option<(f32, i32)>,
    clamp: (i32, i32),
) -> LResult<Act> {
    let a = ctx.to_layout(a, Layout::Plain)?;
    let b = ctx.to_layout(b, Layout::Plain)?;
    let (mut sa, mut sb) = (a.shape.clone(), b.shape.clone());
    let a1 = sa.len() == 1;
    let b1 = sb.len() == 1;
    if a1 {
        sa.insert(0, 1);
    }
    if b1 {
        sb.push(1);
    }
    let r = sa.len().max(sb.len());
    while sa.len() < r {
        sa.insert(0, 1);
    }
    while sb.len() < r {
        sb.insert(0, 1);
    }
    if sa[..r - 2] != sb[..r - 2] && sb[..r - 2].iter().all(|&d| d == 1) {
        // b has no batch: a's batch dims become rows of one matrix product.
        let rows: usize = sa[..r - 1].iter().product();
        let mut out_shape = a.shape.clone();
        if a1 {
            out_shape.clear();
        } else {
            out_shape.pop();
        }
        if !b1 {
            out_shape.push(sb[r - 1]);
        }
        let a2 = ctx.reshape(&a, &[1, rows, sa[r - 1]])?;
        let y = batch_matmul(ctx, &a2, &b, out, clamp)?;
        return ctx.reshape(&y, &out_shape);
    }
    if sa[..r - 2] != sb[..r - 2] {
        return unsup(format!(
            "batch dimensions {:?} and {:?} differ (broadcasting batches is not supported)",
            &sa[..r - 2],
            &sb[..r - 2]
        ));
    }
    if sa[r - 1] != sb[r - 2] {
        return unsup(format!(
            "shapes {:?} and {:?} do not match",
            a.shape, b.shape
        ));
    }
    let a2 = ctx.reshape(&a, &sa)?;
    // A right operand written by a Transpose that moved its input's last axis next-to-last:
    // read it with `transpose_b` from a transpose that keeps the last axis (see
    // `Ctx::swapped_last2`).
    let swapped = ctx
        .swapped_last2
        .get(&b.id.0)
        .filter(|(src, q)| src.shape.len() == r && b.shape.len() == r && q.len() == r)
        .cloned();
    let (b2, transpose_b) = match swapped {
        Some((src, q)) => {
            let mut st = sb.clone();
            st.swap(r - 2, r - 1);
            let t = if q.iter().enumerate().all(|(k, &p)| p == k) {
                src
            } else {
                Act {
                    id: ctx.w.transpose(src.id, &q)?,
                    shape: st.clone(),
                    layout: Layout::Plain,
                }
            };
            (ctx.reshape(&t, &st)?, 1u32)
        }
        None => (ctx.reshape(&b, &sb)?, 0u32),
    };
    let mut ys = sa.clone();
    ys[r - 1] = sb[r - 1];
    let y = match out {
        Some(q) => {
            let (qa, qb) = (ctx.quant(&a2)?, ctx.quant(&b2)?);
            let real = qa.0 as f64 * qb.0 as f64 / q.0 as f64;
            let Some((m, sh)) = quantize_multiplier(real) else {
                return unsup(format!(
                    "requantization scale {real:e} is not representable"
                ));
            };
            let y = ctx.new_i8(&ys, Layout::Plain, q)?;
            ctx.op(
                OpCode::BatchMatMul,
                &[Some(a2.id), Some(b2.id)],
                &[y.id],
                &[
                    transpose_b,
                    m as u32,
                    sh as u32,
                    clamp.0 as u32,
                    clamp.1 as u32,
                ],
            )?;
            y
        }
        None => {
            let y = ctx.new_f32(&ys, Layout::Plain)?;
            ctx.op(
                OpCode::BatchMatMul,
                &[Some(a2.id), Some(b2.id)],
                &[y.id],
                &[
                    transpose_b,
                    f32::NEG_INFINITY.to_bits(),
                    f32::INFINITY.to_bits(),
                ],
            )?;
            y
        }
    };
    // Drop the axes that were added for 1-D operands.
    let mut final_shape: Vec<usize> = ys.clone();
    if b1 {
        final_shape.pop();
    }
    if a1 {
        let l = final_shape.len();
        final_shape.remove(l - if b1 { 1 } else { 2 });
    }
    let keep = a.shape.len().max(b.shape.len()).max(2) - if a1 || b1 { 1 } else { 0 };
    while final_shape.len() > keep && final_shape[0] == 1 {
        final_shape.remove(0);
    }
    ctx.reshape(&y, &final_shape)
}

/// Convolution geometry from ONNX attributes for input `[h, w]` and kernel `[kh, kw]`.
pub fn window(n: &NodeProto, input: [usize; 2], kernel: [usize; 2]) -> LResult<Window> {
    let strides = attr_ints(n, "strides").unwrap_or_else(|| vec![1, 1]);
    let dil = attr_ints(n, "dilations").unwrap_or_else(|| vec![1, 1]);
    if strides.len() != 2 || dil.len() != 2 || strides.iter().chain(&dil).any(|&v| v < 1) {
        return unsup("strides/dilations must be two positive values");
    }
    let stride = [strides[0] as usize, strides[1] as usize];
    let dilation = [dil[0] as usize, dil[1] as usize];
    let auto = attr_str(n, "auto_pad").unwrap_or_else(|| "NOTSET".into());
    let padding = match auto.as_str() {
        "NOTSET" => {
            let p = attr_ints(n, "pads").unwrap_or_else(|| vec![0; 4]);
            if p.len() != 4 || p.iter().any(|&v| v < 0) {
                return unsup("pads must be four non-negative values");
            }
            [p[0] as usize, p[2] as usize, p[1] as usize, p[3] as usize]
        }
        "VALID" => [0; 4],
        "SAME_UPPER" | "SAME_LOWER" => {
            let pad = |i: usize, k: usize, s: usize, d: usize| {
                let out = i.div_ceil(s);
                let eff = (k - 1) * d + 1;
                let total = ((out - 1) * s + eff).saturating_sub(i);
                if auto == "SAME_UPPER" {
                    (total / 2, total - total / 2)
                } else {
                    (total - total / 2, total / 2)
                }
            };
            let (t, b) = pad(input[0], kernel[0], stride[0], dilation[0]);
            let (l, r) = pad(input[1], kernel[1], stride[1], dilation[1]);
            [t, b, l, r]
        }
        other => return unsup(format!("auto_pad {other}")),
    };
    Ok(Window {
        stride,
        dilation,
        padding,
    })
}

/// No clamp (f32 ±∞).
const NO_CLAMP: (f32, f32) = (f32::NEG_INFINITY, f32::INFINITY);

fn clamp_none_f32() -> [u32; 2] {
    [f32::NEG_INFINITY.to_bits(), f32::INFINITY.to_bits()]
}

/// Conv (2-D, group 1 or depthwise) → Conv2D / DepthwiseConv2D in NHWC.
pub fn conv(ctx: &mut Ctx<'_>, i: usize) -> LResult<()> {
    let n = &ctx.nodes[i];
    let Some(wc) = ctx.konst(n, 1).cloned() else {
        return unsup("W is not a constant (the runtime needs constant weights)");
    };
    let b = match Ctx::in_name(n, 2) {
        None => None,
        Some(_) => match ctx.konst(n, 2) {
            Some(b) => Some(b.clone()),
            None => return unsup("B is not a constant"),
        },
    };
    let int8 = match (ctx.deq(n, 0), wc.quant.is_some()) {
        (Some(x), true) => qdq_match::output_quant(ctx, i).map(|oq| (x, oq)),
        _ => None,
    };
    let y = match int8 {
        Some((x, oq)) => {
            let y = conv_common(ctx, n, &x, &wc, b.as_ref(), Some(&oq), NO_CLAMP)?;
            qdq_match::finish(ctx, &oq, y);
            return Ok(());
        }
        None => {
            if ctx.deq(n, 0).is_some() {
                ctx.note_island(i, "no int8 pattern (weights or output)");
            }
            let x = ctx.f32_input(n, 0)?;
            let (clamp, act) = fused_clamp(ctx, n.output.first().map_or("", |s| s.as_str()));
            let y = conv_common(ctx, n, &x, &wc, b.as_ref(), None, clamp)?;
            if let Some(a) = act {
                qdq_match::finish_float(ctx, a, y);
                return Ok(());
            }
            y
        }
    };
    ctx.set_out(n, 0, Val::F32(y));
    Ok(())
}

/// Shared Conv lowering; int8 when `oq` is given (x int8, weights dequantized constants).
fn conv_common(
    ctx: &mut Ctx<'_>,
    n: &NodeProto,
    x: &Act,
    wc: &HostTensor,
    b: Option<&HostTensor>,
    oq: Option<&OutQuant>,
    fclamp: (f32, f32),
) -> LResult<Act> {
    if x.shape.len() != 4 || wc.shape.len() != 4 {
        return unsup(format!(
            "{}-D convolution (the runtime's Conv2D needs NCHW input and OIHW weights)",
            x.shape.len().saturating_sub(2)
        ));
    }
    let (nb, cin, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
    let (o, ipg, kh, kw) = (wc.shape[0], wc.shape[1], wc.shape[2], wc.shape[3]);
    if [o, ipg, kh, kw].contains(&0) {
        return unsup(format!("W has an empty dimension {:?}", wc.shape));
    }
    if let Some(ks) = attr_ints(n, "kernel_shape") {
        if ks != [kh as i64, kw as i64] {
            return unsup("kernel_shape disagrees with W");
        }
    }
    let group = attr_i(n, "group", 1).max(1) as usize;
    let depthwise = group > 1 && group == cin && ipg == 1 && o % cin == 0;
    if group != 1 && !depthwise {
        return unsup(format!(
            "grouped convolution (group {group}) other than depthwise"
        ));
    }
    if !depthwise && ipg != cin {
        return unsup("W's input channels do not match X");
    }
    let win = window(n, [h, wd], [kh, kw])?;
    let Some([oh, ow]) = win.output([h, wd], [kh, kw]) else {
        return unsup("the kernel does not fit the padded input");
    };
    let out_shape = [nb, o, oh, ow];
    let xn = ctx.to_layout(x, Layout::Nhwc)?;
    // Weights in the runtime's layout: OHWI, or 1HWO for depthwise.
    let reorder = |v: &dyn Fn(usize) -> usize| -> Vec<usize> {
        let mut idx = Vec::with_capacity(o * kh * kw * ipg);
        if depthwise {
            for ky in 0..kh {
                for kx in 0..kw {
                    for oc in 0..o {
                        idx.push(v(((oc * ipg) * kh + ky) * kw + kx));
                    }
                }
            }
        } else {
            for oc in 0..o {
                for ky in 0..kh {
                    for kx in 0..kw {
                        for ic in 0..ipg {
                            idx.push(v(((oc * ipg + ic) * kh + ky) * kw + kx));
                        }
                    }
                }
            }
        }
        idx
    };
    let order = reorder(&|k| k);
    let w_dims = if depthwise {
        [1, kh, kw, o]
    } else {
        [o, kh, kw, ipg]
    };
    let code = if depthwise {
        OpCode::DepthwiseConv2d
    } else {
        OpCode::Conv2d
    };
    let geo = [
        win.stride[0] as u32,
        win.stride[1] as u32,
        win.dilation[0] as u32,
        win.dilation[1] as u32,
        win.padding[0] as u32,
        win.padding[1] as u32,
        win.padding[2] as u32,
        win.padding[3] as u32,
    ];
    match oq {
        Some(oq) => {
            let iw = int_weights(wc, 0)?;
            let q: Vec<i8> = order.iter().map(|&k| iw.q[k]).collect();
            let (sx, _) = ctx.quant(&xn)?;
            let bias = match b {
                Some(b) => Some(int_bias(b, o, sx, &iw.scales)?),
                None => None,
            };
            let wt = ctx.w.const_i8(&w_dims, &q, ConstRole::Weight)?;
            let bt = match bias {
                Some(b) => Some(ctx.w.const_i32(&[o], &b, ConstRole::Bias)?),
                None => None,
            };
            let [mt, st] = requant_consts(ctx, sx, &iw.scales, oq.quant.0)?;
            let y = ctx.new_i8(&out_shape, Layout::Nhwc, oq.quant)?;
            let mut words = geo.to_vec();
            words.extend(oq.clamp_words());
            ctx.op(
                code,
                &[Some(xn.id), Some(wt), bt, Some(mt), Some(st)],
                &[y.id],
                &words,
            )?;
            Ok(y)
        }
        None => {
            let wf = wc.as_f32();
            let q: Vec<f32> = order.iter().map(|&k| wf[k]).collect();
            let wt = ctx.w.const_f32(&w_dims, &q, ConstRole::Weight)?;
            let bt = match b {
                Some(b) => {
                    let bf = b.as_f32();
                    let v: Vec<f32> = (0..o)
                        .map(|c| bf[if bf.len() == 1 { 0 } else { c }])
                        .collect();
                    if bf.len() != o && bf.len() != 1 {
                        return unsup("B does not have one value per output channel");
                    }
                    Some(ctx.w.const_f32(&[o], &v, ConstRole::Bias)?)
                }
                None => None,
            };
            let y = ctx.new_f32(&out_shape, Layout::Nhwc)?;
            let mut words = geo.to_vec();
            words.extend([fclamp.0.to_bits(), fclamp.1.to_bits()]);
            ctx.op(code, &[Some(xn.id), Some(wt), bt], &[y.id], &words)?;
            Ok(y)
        }
    }
}

/// The int8 activation input `k` of a QLinear op with parameters at inputs `k+1`, `k+2`.
fn qlinear_act(ctx: &Ctx<'_>, n: &NodeProto, k: usize) -> LResult<Act> {
    let a = match ctx.input(n, k)? {
        Val::I8(a) => a.clone(),
        _ => return unsup(format!("input {k} is not an int8 activation")),
    };
    let p = qparams_at(ctx, n, k + 1, a.shape.len())?;
    let Some(q) = p.per_tensor_i8() else {
        return unsup(format!("input {k} is not quantized per tensor"));
    };
    if ctx.quant(&a)? != q {
        return unsup(format!(
            "input {k}'s parameters differ from those of its producer"
        ));
    }
    Ok(a)
}

/// Quantization parameters given as inputs `k` (scale) and `k+1` (zero point) of `n`.
fn qparams_at(ctx: &Ctx<'_>, n: &NodeProto, k: usize, rank: usize) -> LResult<QParams> {
    let mut shim = NodeProto {
        op_type: "DequantizeLinear".into(),
        ..Default::default()
    };
    shim.input = vec![
        String::new(),
        n.input.get(k).cloned().unwrap_or_default(),
        n.input.get(k + 1).cloned().unwrap_or_default(),
    ];
    let _ = rank;
    ctx.qparams(&shim, rank)
}

/// A constant operand of a QLinear op as a dequantized constant (`axis` for per-channel).
fn qlinear_const(ctx: &Ctx<'_>, n: &NodeProto, k: usize, axis: usize) -> LResult<HostTensor> {
    let Some(h) = ctx.konst(n, k).cloned() else {
        return unsup(format!(
            "input {k} is not a constant (weights must be constant)"
        ));
    };
    if h.is_empty() || h.shape.is_empty() || !h.elem.is_int() {
        return unsup(format!("input {k} is not a non-empty integer tensor"));
    }
    let p = qparams_at(ctx, n, k + 1, h.shape.len())?;
    let mut out = h.clone();
    out.quant = Some(QConst {
        values: h.i.clone(),
        elem: h.elem,
        axis: (p.scales.len() > 1).then_some(axis),
        scales: p.scales,
        zero_points: p.zero_points,
    });
    Ok(out)
}

fn qlinear_out(ctx: &Ctx<'_>, n: &NodeProto, k: usize, rank: usize) -> LResult<OutQuant> {
    let p = qparams_at(ctx, n, k, rank)?;
    let Some(quant) = p.per_tensor_i8() else {
        return unsup("output not quantized per tensor");
    };
    Ok(OutQuant {
        quant,
        clamp: None,
        q_nodes: Vec::new(),
        fused: None,
    })
}

/// QLinearMatMul → FullyConnected (constant b) or BatchMatMul.
pub fn qlinear_matmul(ctx: &mut Ctx<'_>, i: usize) -> LResult<()> {
    let n = &ctx.nodes[i];
    let a = qlinear_act(ctx, n, 0)?;
    let oq = qlinear_out(ctx, n, 6, a.shape.len())?;
    let y = if ctx.konst(n, 3).is_some() {
        let b = qlinear_const(ctx, n, 3, 1)?;
        if b.shape.len() != 2 {
            return unsup("constant b is not a matrix");
        }
        let (k, nn) = (b.shape[0], b.shape[1]);
        let w = int_weights(&b, 1)?;
        let w = IntWeights {
            q: transpose2(&w.q, k, nn),
            scales: w.scales,
        };
        emit_fc_i8(ctx, &a, &w, nn, k, None, oq.quant, oq.clamp_words())?
    } else {
        let b = qlinear_act(ctx, n, 3)?;
        batch_matmul(ctx, &a, &b, Some(oq.quant), (-128, 127))?
    };
    ctx.set_out(n, 0, Val::I8(y));
    Ok(())
}

/// QLinearConv → Conv2D / DepthwiseConv2D.
pub fn qlinear_conv(ctx: &mut Ctx<'_>, i: usize) -> LResult<()> {
    let n = &ctx.nodes[i];
    let x = qlinear_act(ctx, n, 0)?;
    let w = qlinear_const(ctx, n, 3, 0)?;
    let oq = qlinear_out(ctx, n, 6, x.shape.len())?;
    let b = match Ctx::in_name(n, 8) {
        None => None,
        Some(_) => match ctx.konst(n, 8) {
            Some(b) => {
                let b = b.clone();
                if !b.elem.is_int()
                    || b.i.len() != b.len()
                    || (b.len() != 1 && Some(&b.len()) != w.shape.first())
                {
                    return unsup("B is not an int32 bias with one value per output channel");
                }
                // Bias is at s_x·s_w[c] by definition: use its integers as they are.
                let iw = int_weights(&w, 0)?;
                let sx = ctx.quant(&x)?.0;
                let vals: Vec<f32> = (0..b.len())
                    .map(|c| b.i[c] as f32 * sx * iw.scales[c.min(iw.scales.len() - 1)])
                    .collect();
                let mut exact = HostTensor::f32(b.shape.clone(), vals);
                exact.quant = Some(QConst {
                    values: b.i.clone(),
                    elem: Elem::I32,
                    scales: (0..b.len())
                        .map(|c| sx * iw.scales[c.min(iw.scales.len() - 1)])
                        .collect(),
                    zero_points: vec![0; b.len()],
                    axis: Some(0),
                });
                Some(exact)
            }
            None => return unsup("B is not a constant"),
        },
    };
    let y = conv_common(ctx, n, &x, &w, b.as_ref(), Some(&oq), NO_CLAMP)?;
    ctx.set_out(n, 0, Val::I8(y));
    Ok(())
}
