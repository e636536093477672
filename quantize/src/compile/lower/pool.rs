//! MaxPool / AveragePool / GlobalAveragePool (NHWC in the image).

use edgeloop_runtime::image::OpCode;

use super::dense::window;
use super::{unsup, Ctx, LResult, Layout, Val};
use crate::compile::host::attr_ints;
use crate::compile::qdq_match;
use crate::onnx::attr_i;

/// MaxPool / AveragePool (2-D; int8 keeps its input's quantization).
pub fn pool(ctx: &mut Ctx<'_>, i: usize) -> LResult<()> {
    let n = &ctx.nodes[i];
    ctx.only_first_output(n)?;
    let max = n.op_type == "MaxPool";
    let Some(ks) = attr_ints(n, "kernel_shape") else {
        return unsup("kernel_shape is missing");
    };
    if ks.len() != 2 || ks.iter().any(|&k| k < 1) {
        return unsup(format!("{}-D pooling (2-D only)", ks.len()));
    }
    if attr_i(n, "storage_order", 0) != 0 {
        return unsup("storage_order = 1");
    }
    let kernel = [ks[0] as usize, ks[1] as usize];
    let shape = match ctx.input(n, 0)? {
        Val::Const(_) => return unsup("input is a constant"),
        Val::F32(a) | Val::Deq(a) | Val::I8(a) | Val::I32(a) => a.shape.clone(),
    };
    if shape.len() != 4 {
        return unsup("input is not NCHW");
    }
    let win = window(n, [shape[2], shape[3]], kernel)?;
    if win.dilation != [1, 1] {
        return unsup("dilated pooling");
    }
    if win.padding[0] >= kernel[0]
        || win.padding[1] >= kernel[0]
        || win.padding[2] >= kernel[1]
        || win.padding[3] >= kernel[1]
    {
        return unsup("padding as large as the kernel");
    }
    let padded = win.padding.iter().any(|&p| p > 0);
    if !max && padded && attr_i(n, "count_include_pad", 0) != 0 {
        return unsup(
            "count_include_pad = 1 with padding (the runtime averages valid inputs only)",
        );
    }
    let Some([oh, ow]) = win.output([shape[2], shape[3]], kernel) else {
        return unsup("the kernel does not fit the padded input");
    };
    if attr_i(n, "ceil_mode", 0) != 0 {
        let ceil = |i: usize, k: usize, s: usize, p: usize| (i + p - k).div_ceil(s) + 1;
        let ch = ceil(
            shape[2],
            kernel[0],
            win.stride[0],
            win.padding[0] + win.padding[1],
        );
        let cw = ceil(
            shape[3],
            kernel[1],
            win.stride[1],
            win.padding[2] + win.padding[3],
        );
        if ch != oh || cw != ow {
            return unsup("ceil_mode = 1 changes the output size");
        }
    }
    let out_shape = [shape[0], shape[1], oh, ow];
    let int8 = match ctx.deq(n, 0) {
        Some(x) => match qdq_match::output_quant(ctx, i) {
            Some(oq) if ctx.quant(&x)? == oq.quant => Some((x, oq)),
            _ => None,
        },
        None => None,
    };
    let mut words = vec![
        kernel[0] as u32,
        kernel[1] as u32,
        win.stride[0] as u32,
        win.stride[1] as u32,
    ];
    words.extend(win.padding.iter().map(|&p| p as u32));
    let code = if max {
        OpCode::MaxPool2d
    } else {
        OpCode::AvgPool2d
    };
    if let Some((x, oq)) = int8 {
        let xn = ctx.to_layout(&x, Layout::Nhwc)?;
        let y = ctx.new_i8(&out_shape, Layout::Nhwc, oq.quant)?;
        words.extend(oq.clamp_words());
        ctx.op(code, &[Some(xn.id)], &[y.id], &words)?;
        qdq_match::finish(ctx, &oq, y);
        return Ok(());
    }
    if ctx.deq(n, 0).is_some() {
        ctx.note_island(i, "output quantization differs from the input's");
    }
    let x = ctx.f32_input(n, 0)?;
    let xn = ctx.to_layout(&x, Layout::Nhwc)?;
    let y = ctx.new_f32(&out_shape, Layout::Nhwc)?;
    words.extend([f32::NEG_INFINITY.to_bits(), f32::INFINITY.to_bits()]);
    ctx.op(code, &[Some(xn.id)], &[y.id], &words)?;
    ctx.set_out(&ctx.nodes[i], 0, Val::F32(y));
    Ok(())
}

/// GlobalAveragePool: int8 requantizes to the output's parameters.
pub fn global_avg(ctx: &mut Ctx<'_>, i: usize) -> LResult<()> {
    global_avg_to(ctx, i, true)
}

/// Global average over H and W of an NCHW input (node `i`'s input 0); `keepdims` false gives
/// `[B, C]` (ReduceMean over axes 2 and 3 with `keepdims = 0`, as PyTorch's `mean(dim=(2, 3))`
/// exports) instead of `[B, C, 1, 1]`.
pub fn global_avg_to(ctx: &mut Ctx<'_>, i: usize, keepdims: bool) -> LResult<()> {
    let n = &ctx.nodes[i];
    let shape = match ctx.input(n, 0)? {
        Val::Const(_) => return unsup("input is a constant"),
        Val::F32(a) | Val::Deq(a) | Val::I8(a) | Val::I32(a) => a.shape.clone(),
    };
    if shape.len() != 4 {
        return unsup("input is not NCHW");
    }
    let out_shape = [shape[0], shape[1], 1, 1];
    if let (Some(x), Some(oq)) = (ctx.deq(n, 0), qdq_match::output_quant(ctx, i)) {
        let xn = ctx.to_layout(&x, Layout::Nhwc)?;
        let (sx, _) = ctx.quant(&xn)?;
        let hw = (shape[2] * shape[3]) as u32;
        let Some((m, s)) =
            edgeloop_runtime::ops::pooling::global_avg_requant(sx as f64, oq.quant.0 as f64, hw)
        else {
            return unsup("GlobalAveragePool requantization is not representable");
        };
        let y = ctx.new_i8(&out_shape, Layout::Nhwc, oq.quant)?;
        let [lo, hi] = oq.clamp_words();
        ctx.op(
            OpCode::GlobalAvgPool,
            &[Some(xn.id)],
            &[y.id],
            &[m as u32, s as u32, lo, hi],
        )?;
        let y = if keepdims {
            y
        } else {
            ctx.reshape(&y, &out_shape[..2])?
        };
        qdq_match::finish(ctx, &oq, y);
        return Ok(());
    }
    if ctx.deq(n, 0).is_some() {
        ctx.note_island(i, "output not quantized");
    }
    let x = ctx.f32_input(n, 0)?;
    let xn = ctx.to_layout(&x, Layout::Nhwc)?;
    let y = ctx.new_f32(&out_shape, Layout::Nhwc)?;
    ctx.op(
        OpCode::GlobalAvgPool,
        &[Some(xn.id)],
        &[y.id],
        &[f32::NEG_INFINITY.to_bits(), f32::INFINITY.to_bits()],
    )?;
    let y = if keepdims {
        y
    } else {
        ctx.reshape(&y, &out_shape[..2])?
    };
    ctx.set_out(&ctx.nodes[i], 0, Val::F32(y));
    Ok(())
}
