//! Softmax and LayerNormalization.

use edgeloop_runtime::ops::softmax::{OUTPUT_SCALE, OUTPUT_ZERO_POINT};

use super::shape::value_shape;
use super::{unsup, Act, Ctx, LResult, Layout, Val};
use crate::compile::qdq_match;
use crate::onnx::{attr_f, attr_i};

fn axis_of(a: i64, rank: usize) -> LResult<usize> {
    let v = if a < 0 { a + rank as i64 } else { a };
    if v < 0 || v as usize >= rank.max(1) {
        return unsup(format!("axis {a} out of range"));
    }
    Ok(v as usize)
}

/// Softmax over the last axis (other axes through a transpose, opset < 13 through a 2-D view).
/// int8 when the output is quantized with scale 1/256 and zero point −128 (the runtime's int8
/// softmax output); otherwise an f32 softmax between Dequantize and Quantize.
pub fn softmax(ctx: &mut Ctx<'_>, i: usize) -> LResult<()> {
    let n = &ctx.nodes[i];
    let v = ctx.input(n, 0)?.clone();
    let shape = value_shape(&v);
    let r = shape.len().max(1);
    let default_axis = if ctx.opset >= 13 { -1 } else { 1 };
    let axis = axis_of(attr_i(n, "axis", default_axis), r)?;
    // How the input is viewed so that the softmax runs over the last axis.
    enum View {
        Direct,
        Flat(Vec<usize>),
        Swap(Vec<usize>),
    }
    let view = if axis == r - 1 {
        View::Direct
    } else if ctx.opset < 13 {
        View::Flat(vec![
            shape[..axis].iter().product(),
            shape[axis..].iter().product(),
        ])
    } else {
        let mut p: Vec<usize> = (0..r).collect();
        p.swap(axis, r - 1);
        View::Swap(p)
    };
    let int8 = match (ctx.deq(n, 0), qdq_match::output_quant(ctx, i)) {
        (Some(x), Some(oq)) if oq.quant == (OUTPUT_SCALE, OUTPUT_ZERO_POINT) => Some((x, oq)),
        _ => None,
    };
    let prep = |ctx: &mut Ctx<'_>, a: &Act| -> LResult<Act> {
        let a = ctx.to_layout(a, Layout::Plain)?;
        match &view {
            View::Direct => Ok(a),
            View::Flat(s) => ctx.reshape(&a, s),
            View::Swap(p) => {
                let id = ctx.w.transpose(a.id, p)?;
                let s: Vec<usize> = p.iter().map(|&k| a.shape[k]).collect();
                Ok(Act {
                    id,
                    shape: s,
                    layout: Layout::Plain,
                })
            }
        }
    };
    let post = |ctx: &mut Ctx<'_>, y: Act| -> LResult<Act> {
        match &view {
            View::Direct => Ok(y),
            View::Flat(_) => ctx.reshape(&y, &shape),
            View::Swap(p) => {
                let id = ctx.w.transpose(y.id, p)?;
                Ok(Act {
                    id,
                    shape: shape.clone(),
                    layout: Layout::Plain,
                })
            }
        }
    };
    if let Some((x, oq)) = int8 {
        let a = prep(ctx, &x)?;
        let id = ctx.w.softmax(a.id, 1.0)?;
        let y = post(ctx, Act { id, ..a })?;
        qdq_match::finish(ctx, &oq, y);
        return Ok(());
    }
    if ctx.deq(n, 0).is_some() {
        ctx.note_island(
            i,
            "output quantization is not the int8 softmax's (scale 1/256, zero point -128)",
        );
    }
    let x = ctx.f32_input(n, 0)?;
    let a = prep(ctx, &x)?;
    let id = ctx.w.softmax(a.id, 1.0)?;
    let y = post(ctx, Act { id, ..a })?;
    ctx.set_out(&ctx.nodes[i], 0, Val::F32(y));
    Ok(())
}

/// LayerNormalization over the trailing axes from `axis` (viewed as one last axis).
pub fn layer_norm(ctx: &mut Ctx<'_>, i: usize) -> LResult<()> {
    let n = &ctx.nodes[i];
    ctx.only_first_output(n)?;
    let v = ctx.input(n, 0)?.clone();
    let shape = value_shape(&v);
    let r = shape.len().max(1);
    let axis = axis_of(attr_i(n, "axis", -1), r)?;
    let eps = attr_f(n, "epsilon", 1e-5);
    let cols: usize = shape[axis..].iter().product();
    let Some(gamma) = ctx.konst(n, 1).map(|h| h.as_f32()) else {
        return unsup("scale is not a constant");
    };
    let beta = match Ctx::in_name(n, 2) {
        None => vec![0.0; cols],
        Some(_) => match ctx.konst(n, 2) {
            Some(h) => h.as_f32(),
            None => return unsup("bias is not a constant"),
        },
    };
    let expand = |v: Vec<f32>| -> LResult<Vec<f32>> {
        if v.len() == cols {
            Ok(v)
        } else if v.len() == 1 {
            Ok(vec![v[0]; cols])
        } else {
            unsup(format!(
                "scale/bias of {} values for {cols} normalized elements",
                v.len()
            ))
        }
    };
    let (gamma, beta) = (expand(gamma)?, expand(beta)?);
    let flat: Vec<usize> = vec![shape[..axis].iter().product::<usize>().max(1), cols];
    let mut noted = false;
    let int8 = match (ctx.deq(n, 0), qdq_match::output_quant(ctx, i)) {
        (Some(x), Some(oq)) if ctx.int8_layer_norm => Some((x, oq)),
        (Some(_), Some(_)) => {
            noted = true;
            ctx.note_island(
                i,
                "f32 LayerNorm between Dequantize and Quantize (CompileOptions::int8_layer_norm is off)",
            );
            None
        }
        _ => None,
    };
    if let Some((x, oq)) = int8 {
        if oq.clamp.is_none() {
            let a = ctx.to_layout(&x, Layout::Plain)?;
            let a = ctx.reshape(&a, &flat)?;
            let id = ctx.w.layer_norm(a.id, &gamma, &beta, eps, Some(oq.quant))?;
            let y = ctx.reshape(&Act { id, ..a }, &shape)?;
            qdq_match::finish(ctx, &oq, y);
            return Ok(());
        }
    }
    if ctx.deq(n, 0).is_some() && !noted {
        ctx.note_island(i, "output not quantized");
    }
    let x = ctx.f32_input(n, 0)?;
    let a = ctx.to_layout(&x, Layout::Plain)?;
    let a = ctx.reshape(&a, &flat)?;
    let id = ctx.w.layer_norm(a.id, &gamma, &beta, eps, None)?;
    let y = ctx.reshape(&Act { id, ..a }, &shape)?;
    ctx.set_out(&ctx.nodes[i], 0, Val::F32(y));
    Ok(())
}
