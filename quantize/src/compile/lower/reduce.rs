//! ReduceMean over the positions of a `[B, T, C]` sequence (an encoder's mean pooling), lowered
//! to the runtime's GlobalAvgPool on an NHWC view `[B, T, 1, C]` of the same bytes (no copy);
//! and over H and W of an NCHW value (global average pooling, [`super::pool::global_avg_to`]).

use edgeloop_runtime::image::OpCode;

use super::{unsup, Act, Ctx, LResult, Layout, Val};
use crate::compile::host::attr_ints;
use crate::compile::qdq_match;
use crate::onnx::attr_i;

/// `x` `[B, T, C]` (plain) seen as ONNX NCHW `[B, C, T, 1]` stored NHWC: the same bytes.
fn nhwc_view(ctx: &mut Ctx<'_>, x: &Act) -> LResult<Act> {
    let (b, t, c) = (x.shape[0], x.shape[1], x.shape[2]);
    let p = ctx.reshape(x, &[b, t, 1, c])?;
    Ok(Act {
        id: p.id,
        shape: vec![b, c, t, 1],
        layout: Layout::Nhwc,
    })
}

/// ReduceMean with `axes = [1]` on a rank-3 value; int8 requantizes to the output's parameters.
pub fn reduce_mean(ctx: &mut Ctx<'_>, i: usize) -> LResult<()> {
    let n = &ctx.nodes[i];
    let shape = match ctx.input(n, 0)? {
        Val::Const(_) => return unsup("input is a constant"),
        Val::F32(a) | Val::Deq(a) | Val::I8(a) | Val::I32(a) => a.shape.clone(),
    };
    let axes = match attr_ints(n, "axes") {
        Some(a) => a,
        None => match ctx.konst(n, 1) {
            Some(h) => h.as_i64(),
            None => return unsup("ReduceMean over every axis"),
        },
    };
    let rank = shape.len() as i64;
    let axes: Vec<i64> = axes
        .iter()
        .map(|&a| if a < 0 { a + rank } else { a })
        .collect();
    let mut sorted = axes.clone();
    sorted.sort_unstable();
    if shape.len() == 4 && sorted == [2, 3] {
        // Global average pooling over H and W, as PyTorch exports `x.mean(dim=(2, 3))`.
        let keepdims = attr_i(n, "keepdims", 1) != 0;
        return super::pool::global_avg_to(ctx, i, keepdims);
    }
    if shape.len() != 3 || axes != [1] {
        return unsup(format!(
            "ReduceMean over axes {axes:?} of a rank-{} value (supported: axis 1 of a rank-3 value, i.e. mean pooling; axes 2 and 3 of a rank-4 NCHW value, i.e. global average pooling)",
            shape.len()
        ));
    }
    let (b, t, c) = (shape[0], shape[1], shape[2]);
    let out_shape: Vec<usize> = if attr_i(n, "keepdims", 1) != 0 {
        vec![b, 1, c]
    } else {
        vec![b, c]
    };
    if let (Some(x), Some(oq)) = (ctx.deq(n, 0), qdq_match::output_quant(ctx, i)) {
        let x = ctx.to_layout(&x, Layout::Plain)?;
        let (sx, _) = ctx.quant(&x)?;
        let xv = nhwc_view(ctx, &x)?;
        let Some((m, s)) = edgeloop_runtime::ops::pooling::global_avg_requant(
            sx as f64,
            oq.quant.0 as f64,
            t as u32,
        ) else {
            return unsup("ReduceMean requantization is not representable");
        };
        let y = ctx.new_i8(&[b, c, 1, 1], Layout::Nhwc, oq.quant)?;
        let [lo, hi] = oq.clamp_words();
        ctx.op(
            OpCode::GlobalAvgPool,
            &[Some(xv.id)],
            &[y.id],
            &[m as u32, s as u32, lo, hi],
        )?;
        let y = ctx.reshape(&y, &out_shape)?;
        qdq_match::finish(ctx, &oq, y);
        return Ok(());
    }
    if ctx.deq(n, 0).is_some() {
        ctx.note_island(i, "output not quantized");
    }
    let x = ctx.f32_input(n, 0)?;
    let xv = nhwc_view(ctx, &x)?;
    let y = ctx.new_f32(&[b, c, 1, 1], Layout::Nhwc)?;
    ctx.op(
        OpCode::GlobalAvgPool,
        &[Some(xv.id)],
        &[y.id],
        &[f32::NEG_INFINITY.to_bits(), f32::INFINITY.to_bits()],
    )?;
    let y = ctx.reshape(&y, &out_shape)?;
    ctx.set_out(&ctx.nodes[i], 0, Val::F32(y));
    Ok(())
}
