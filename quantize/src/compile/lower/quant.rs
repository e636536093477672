//! Standalone `QuantizeLinear` / `DequantizeLinear` (the ones no pattern absorbed).

use super::{unsup, Act, Ctx, LResult, Val};
use crate::compile::host::{Elem, HostTensor, QConst};

/// `QuantizeLinear`: f32 → int8 (`Quantize` op), a no-op on a dequantized tensor with the same
/// parameters, a requantization through f32 otherwise; constants are folded.
pub fn quantize_linear(ctx: &mut Ctx<'_>, i: usize) -> LResult<()> {
    let n = &ctx.nodes[i];
    let x = ctx.input(n, 0)?.clone();
    let rank = match &x {
        Val::Const(h) => h.shape.len(),
        Val::F32(a) | Val::Deq(a) | Val::I8(a) | Val::I32(a) => a.shape.len(),
    };
    let p = ctx.qparams(n, rank)?;
    if let Val::Const(h) = &x {
        let v = h.as_f32();
        let (lo, hi) = match p.elem {
            Elem::I8 => (-128i64, 127i64),
            Elem::U8 => (0, 255),
            _ => (i32::MIN as i64, i32::MAX as i64),
        };
        if let Some(a) = p.axis {
            if h.shape.get(a) != Some(&p.scales.len()) {
                return unsup("per-channel parameters do not match the channel axis");
            }
        }
        let inner: usize = match p.axis {
            Some(a) => h.shape[a + 1..].iter().product(),
            None => 1,
        };
        let q: Vec<i64> = v
            .iter()
            .enumerate()
            .map(|(k, &x)| {
                let c = if p.scales.len() > 1 {
                    (k / inner) % p.scales.len()
                } else {
                    0
                };
                ((x / p.scales[c]).round_ties_even() as i64 + p.zero_points[c]).clamp(lo, hi)
            })
            .collect();
        let out = HostTensor::int(h.shape.clone(), p.elem, q);
        ctx.set_out(n, 0, Val::Const(out));
        return Ok(());
    }
    let Some(q) = p.per_tensor_i8() else {
        return unsup("per-channel or non-int8 quantization of an activation");
    };
    let name = Ctx::in_name(n, 0).unwrap_or_default().to_string();
    let a = match x {
        Val::Deq(a) if ctx.quant(&a)? == q => {
            ctx.set_out(n, 0, Val::I8(a));
            return Ok(());
        }
        Val::Deq(_) | Val::F32(_) => ctx.f32_of(&name)?,
        Val::I8(_) | Val::I32(_) => return unsup("QuantizeLinear of an integer tensor"),
        Val::Const(_) => unreachable!("handled above"),
    };
    let id = ctx.w.quantize(a.id, q)?;
    ctx.set_out(n, 0, Val::I8(Act { id, ..a }));
    Ok(())
}

/// `DequantizeLinear`: of an int8 tensor, a dequantized view (no op until a float op reads it);
/// of a constant, the dequantized constant with its integer values kept for int8 ops.
pub fn dequantize_linear(ctx: &mut Ctx<'_>, i: usize) -> LResult<()> {
    let n = &ctx.nodes[i];
    let x = ctx.input(n, 0)?.clone();
    match x {
        Val::Const(h) => {
            let p = ctx.qparams(n, h.shape.len())?;
            if !h.elem.is_int() {
                return unsup("DequantizeLinear of a float constant");
            }
            if let Some(a) = p.axis {
                if h.shape.get(a) != Some(&p.scales.len()) {
                    return unsup("per-channel parameters do not match the channel axis");
                }
            }
            let inner: usize = match p.axis {
                Some(a) => h.shape[a + 1..].iter().product(),
                None => 1,
            };
            let chan = |k: usize| {
                if p.scales.len() > 1 {
                    (k / inner) % p.scales.len()
                } else {
                    0
                }
            };
            let f: Vec<f32> =
                h.i.iter()
                    .enumerate()
                    .map(|(k, &v)| (v - p.zero_points[chan(k)]) as f32 * p.scales[chan(k)])
                    .collect();
            let mut out = HostTensor::f32(h.shape.clone(), f);
            out.quant = Some(QConst {
                values: h.i.clone(),
                elem: h.elem,
                scales: p.scales.clone(),
                zero_points: p.zero_points.clone(),
                axis: p.axis,
            });
            ctx.set_out(n, 0, Val::Const(out));
            Ok(())
        }
        Val::I8(a) => {
            let p = ctx.qparams(n, a.shape.len())?;
            let Some(q) = p.per_tensor_i8() else {
                return unsup("per-channel DequantizeLinear of an activation");
            };
            let have = ctx.quant(&a)?;
            if have != q {
                if have.0 == 0.0 {
                    return unsup("its input tensor has no quantization the runtime knows");
                }
                return unsup(format!(
                    "its parameters {q:?} differ from those of the tensor it reads {have:?}"
                ));
            }
            ctx.set_out(n, 0, Val::Deq(a));
            Ok(())
        }
        Val::F32(_) | Val::Deq(_) => unsup("DequantizeLinear of a float tensor"),
        Val::I32(_) => unsup("DequantizeLinear of an int32 activation"),
    }
}
