//! Elementwise ops: Add / Mul / Sub / Div (broadcasting), Relu / Clip, and the table functions
//! Sigmoid / Tanh / Gelu / Erf.

use edgeloop_runtime::image::writer::{ConstRole, TensorId};
use edgeloop_runtime::image::{DType, OpCode, TableFn};
use edgeloop_runtime::ops::add::AddRequant;
use edgeloop_runtime::ops::fmath::exact;
use edgeloop_runtime::quant::{quantize_f32, quantize_multiplier};

use super::{runtime_dims, unsup, Act, Ctx, LResult, Layout, Val};
use crate::compile::host::{Elem, HostTensor};
use crate::compile::qdq_match::{self, activation_bounds};

/// NumPy broadcast of two shapes.
pub fn broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let r = a.len().max(b.len());
    let pa = |k: usize| {
        if k + a.len() >= r {
            a[k + a.len() - r]
        } else {
            1
        }
    };
    let pb = |k: usize| {
        if k + b.len() >= r {
            b[k + b.len() - r]
        } else {
            1
        }
    };
    (0..r)
        .map(|k| match (pa(k), pb(k)) {
            (x, y) if x == y => Some(x),
            (1, y) => Some(y),
            (x, 1) => Some(x),
            _ => None,
        })
        .collect()
}

fn shape_of(v: &Val) -> Vec<usize> {
    match v {
        Val::Const(h) => h.shape.clone(),
        Val::F32(a) | Val::Deq(a) | Val::I8(a) | Val::I32(a) => a.shape.clone(),
    }
}

/// Host data of a constant padded to rank 4 and permuted into NHWC order.
fn const_nhwc<T: Copy>(shape: &[usize], v: &[T]) -> (Vec<usize>, Vec<T>) {
    let mut d = shape.to_vec();
    while d.len() < 4 {
        d.insert(0, 1);
    }
    let (n, c, h, w) = (d[0], d[1], d[2], d[3]);
    let mut out = Vec::with_capacity(v.len());
    for ni in 0..n {
        for hi in 0..h {
            for wi in 0..w {
                for ci in 0..c {
                    out.push(v[((ni * c + ci) * h + hi) * w + wi]);
                }
            }
        }
    }
    (vec![n, h, w, c], out)
}

/// One operand of a binary op, ready for the writer.
enum Operand {
    Act(Act),
    Const(HostTensor),
}

/// Target layout of a binary op's operands: NHWC when an activation operand is NHWC and the
/// output has rank 4 and every activation operand has rank 4.
fn target_layout(ops: &[&Operand], out_rank: usize) -> Layout {
    let acts: Vec<&Act> = ops
        .iter()
        .filter_map(|o| match o {
            Operand::Act(a) => Some(a),
            Operand::Const(_) => None,
        })
        .collect();
    if out_rank == 4
        && acts.iter().any(|a| a.layout == Layout::Nhwc)
        && acts.iter().all(|a| a.shape.len() == 4)
    {
        Layout::Nhwc
    } else {
        Layout::Plain
    }
}

/// Places an operand in `layout`: activations are transposed, constants written as tensors
/// (int8 with `q` when given, else f32).
fn place(
    ctx: &mut Ctx<'_>,
    o: &Operand,
    layout: Layout,
    int8: Option<(f32, i32)>,
) -> LResult<TensorId> {
    match o {
        Operand::Act(a) => Ok(ctx.to_layout(a, layout)?.id),
        Operand::Const(h) => {
            let (dims, bytes, dtype) = match int8 {
                Some(_) => {
                    let v: Vec<u8> = h
                        .quant
                        .as_ref()
                        .map(|q| {
                            q.values
                                .iter()
                                .map(|&x| {
                                    let x = if q.elem == Elem::U8 { x - 128 } else { x };
                                    x as i8 as u8
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    let (d, v) = if layout == Layout::Nhwc {
                        const_nhwc(&h.shape, &v)
                    } else {
                        (h.shape.clone(), v)
                    };
                    (d, v, DType::I8)
                }
                None => {
                    let v = h.as_f32();
                    let (d, v) = if layout == Layout::Nhwc {
                        const_nhwc(&h.shape, &v)
                    } else {
                        (h.shape.clone(), v)
                    };
                    (
                        d,
                        v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                        DType::F32,
                    )
                }
            };
            let dims = runtime_dims(&dims)?;
            Ok(ctx
                .w
                .constant(dtype, &dims, bytes, int8, ConstRole::Other)?)
        }
    }
}

/// Per-tensor int8 parameters of a constant operand that came through DequantizeLinear.
fn const_q(h: &HostTensor) -> Option<(f32, i32)> {
    let q = h.quant.as_ref()?;
    if q.scales.len() != 1 || q.zero_points.len() != 1 {
        return None;
    }
    match q.elem {
        Elem::I8 => Some((q.scales[0], q.zero_points[0] as i32)),
        Elem::U8 => Some((q.scales[0], q.zero_points[0] as i32 - 128)),
        _ => None,
    }
}

/// Add, Mul (int8 or f32), Sub and Div (f32; Div by a constant only).
pub fn binary(ctx: &mut Ctx<'_>, i: usize) -> LResult<()> {
    let n = &ctx.nodes[i];
    let op = n.op_type.clone();
    let va = ctx.input(n, 0)?.clone();
    let vb = ctx.input(n, 1)?.clone();
    let (sa, sb) = (shape_of(&va), shape_of(&vb));
    let Some(out_shape) = broadcast(&sa, &sb) else {
        return unsup(format!("shapes {sa:?} and {sb:?} do not broadcast"));
    };
    if out_shape.len() > 4 {
        return unsup("broadcast of rank > 4");
    }
    let add = op == "Add";
    if op == "Add" || op == "Mul" {
        let int_operand = |v: &Val| -> Option<(Operand, (f32, i32))> {
            match v {
                Val::Deq(a) => Some((Operand::Act(a.clone()), (0.0, 0))),
                Val::Const(h) => const_q(h).map(|q| (Operand::Const(h.clone()), q)),
                _ => None,
            }
        };
        if let (Some((oa, qa)), Some((ob, qb)), Some(oq)) = (
            int_operand(&va),
            int_operand(&vb),
            qdq_match::output_quant(ctx, i),
        ) {
            let layout = target_layout(&[&oa, &ob], out_shape.len());
            let qa = match &oa {
                Operand::Act(a) => ctx.quant(a)?,
                Operand::Const(_) => qa,
            };
            let qb = match &ob {
                Operand::Act(a) => ctx.quant(a)?,
                Operand::Const(_) => qb,
            };
            let ta = place(ctx, &oa, layout, Some(qa))?;
            let tb = place(ctx, &ob, layout, Some(qb))?;
            let [lo, hi] = oq.clamp_words();
            let so = oq.quant.0 as f64;
            let words: Vec<u32> = if add {
                let Some(r) = AddRequant::new(qa.0 as f64, qb.0 as f64, so) else {
                    return unsup("Add requantization scales are not representable");
                };
                [
                    r.input1.0, r.input1.1, r.input2.0, r.input2.1, r.output.0, r.output.1,
                ]
                .iter()
                .map(|&v| v as u32)
                .chain([lo, hi])
                .collect()
            } else {
                let real = qa.0 as f64 * qb.0 as f64 / so;
                let Some((m, s)) = quantize_multiplier(real) else {
                    return unsup(format!(
                        "Mul requantization scale {real:e} is not representable"
                    ));
                };
                vec![m as u32, s as u32, lo, hi]
            };
            let y = ctx.new_i8(&out_shape, layout, oq.quant)?;
            let code = if add { OpCode::Add } else { OpCode::Mul };
            ctx.op(code, &[Some(ta), Some(tb)], &[y.id], &words)?;
            qdq_match::finish(ctx, &oq, y);
            return Ok(());
        }
    }
    if matches!(va, Val::Deq(_)) || matches!(vb, Val::Deq(_)) {
        ctx.note_island(i, "operands or output not quantized as the int8 op needs");
    }
    // f32.
    let float_operand = |ctx: &mut Ctx<'_>, k: usize, v: &Val| -> LResult<Operand> {
        Ok(match v {
            Val::Const(h) => Operand::Const(h.clone()),
            _ => Operand::Act(ctx.f32_input(&ctx.nodes[i], k)?),
        })
    };
    let oa = float_operand(ctx, 0, &va)?;
    let mut ob = float_operand(ctx, 1, &vb)?;
    let mut code = if add { OpCode::Add } else { OpCode::Mul };
    let mut negate_b = false;
    match op.as_str() {
        "Sub" => {
            code = OpCode::Add;
            match &mut ob {
                Operand::Const(h) => {
                    h.f = h.as_f32().iter().map(|v| -v).collect();
                    h.elem = Elem::F32;
                    h.quant = None;
                }
                Operand::Act(_) => negate_b = true,
            }
        }
        "Div" => {
            code = OpCode::Mul;
            match &mut ob {
                Operand::Const(h) => {
                    h.f = h.as_f32().iter().map(|v| 1.0 / v).collect();
                    h.elem = Elem::F32;
                    h.quant = None;
                }
                Operand::Act(_) => return unsup("division by a non-constant tensor"),
            }
        }
        _ => {}
    }
    if let (Operand::Const(_), Operand::Const(_)) = (&oa, &ob) {
        return unsup("both operands are constants (folding failed)");
    }
    let layout = target_layout(&[&oa, &ob], out_shape.len());
    let ta = place(ctx, &oa, layout, None)?;
    let mut tb = place(ctx, &ob, layout, None)?;
    let none = [f32::NEG_INFINITY.to_bits(), f32::INFINITY.to_bits()];
    if negate_b {
        let bshape = match &ob {
            Operand::Act(a) => a.shape.clone(),
            Operand::Const(h) => h.shape.clone(),
        };
        let neg = ctx.w.const_f32(&[1], &[-1.0], ConstRole::Other)?;
        let nb = ctx.new_f32(&bshape, layout)?;
        ctx.op(OpCode::Mul, &[Some(tb), Some(neg)], &[nb.id], &none)?;
        tb = nb.id;
    }
    let y = ctx.new_f32(&out_shape, layout)?;
    let out_name = ctx.nodes[i].output.first().cloned().unwrap_or_default();
    match qdq_match::float_activation(ctx, &out_name) {
        Some((a, (lo, hi))) => {
            ctx.op(
                code,
                &[Some(ta), Some(tb)],
                &[y.id],
                &[lo.to_bits(), hi.to_bits()],
            )?;
            qdq_match::finish_float(ctx, a, y);
        }
        None => {
            ctx.op(code, &[Some(ta), Some(tb)], &[y.id], &none)?;
            ctx.set_out(&ctx.nodes[i], 0, Val::F32(y));
        }
    }
    Ok(())
}

/// Relu / Clip: int8 as a clamp in the quantized domain (same parameters in and out), f32 as a
/// clamp op.
pub fn clip(ctx: &mut Ctx<'_>, i: usize) -> LResult<()> {
    let n = &ctx.nodes[i];
    let Some((lo, hi)) = activation_bounds(ctx, i) else {
        return unsup("Clip with non-constant bounds");
    };
    if let (Some(x), Some(oq)) = (ctx.deq(n, 0), qdq_match::output_quant(ctx, i)) {
        let q = ctx.quant(&x)?;
        if q == oq.quant {
            let own = qdq_match::OutQuant {
                clamp: Some((lo, hi)),
                ..oq.clone()
            };
            let (a, b) = own.clamp_i8();
            let (c, d) = oq.clamp_i8();
            let y = ctx.new_i8(&x.shape, x.layout, q)?;
            ctx.op(
                OpCode::Relu,
                &[Some(x.id)],
                &[y.id],
                &[a.max(c) as u32, b.min(d) as u32],
            )?;
            qdq_match::finish(ctx, &oq, y);
            return Ok(());
        }
        ctx.note_island(i, "input and output quantization differ");
    }
    let x = ctx.f32_input(n, 0)?;
    let y = ctx.new_f32(&x.shape, x.layout)?;
    ctx.op(
        OpCode::Relu,
        &[Some(x.id)],
        &[y.id],
        &[lo.to_bits(), hi.to_bits()],
    )?;
    ctx.set_out(&ctx.nodes[i], 0, Val::F32(y));
    Ok(())
}

fn gelu_tanh(x: f64) -> f64 {
    let c = (2.0 / std::f64::consts::PI).sqrt();
    0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh())
}

/// Sigmoid, Tanh, Gelu, Erf: int8 as a 256-entry table built here from the f64 function
/// (quantized with ties to even, as ONNX QuantizeLinear does); f32 by the runtime's kernels.
pub fn table(ctx: &mut Ctx<'_>, i: usize) -> LResult<()> {
    let n = &ctx.nodes[i];
    let approx = crate::compile::host::attr_str(n, "approximate").unwrap_or_else(|| "none".into());
    let (f, word): (fn(f64) -> f64, Option<TableFn>) = match (n.op_type.as_str(), approx.as_str()) {
        ("Sigmoid", _) => (exact::sigmoid, Some(TableFn::Sigmoid)),
        ("Tanh", _) => (exact::tanh, Some(TableFn::Tanh)),
        ("Gelu", "none") => (exact::gelu, Some(TableFn::Gelu)),
        ("Gelu", "tanh") => (gelu_tanh, None),
        ("Erf", _) => (exact::erf, None),
        (op, a) => return unsup(format!("{op} with approximate={a}")),
    };
    if let (Some(x), Some(oq)) = (ctx.deq(n, 0), qdq_match::output_quant(ctx, i)) {
        let (sx, zx) = ctx.quant(&x)?;
        let (so, zo) = oq.quant;
        let (lo, hi) = oq.clamp_i8();
        let table: Vec<i8> = (0..256u32)
            .map(|u| {
                let xq = u as u8 as i8 as i32;
                let real = (xq - zx) as f32 * sx;
                let y = f(real as f64) as f32;
                (quantize_f32(y, so, zo) as i32).clamp(lo, hi) as i8
            })
            .collect();
        let t = ctx.w.const_i8(&[256], &table, ConstRole::Other)?;
        let y = ctx.new_i8(&x.shape, x.layout, oq.quant)?;
        // The int8 kernel only looks the table up; the word names the function for readers.
        let w = word.unwrap_or(TableFn::Gelu) as u32;
        ctx.op(OpCode::Table, &[Some(x.id), Some(t)], &[y.id], &[w])?;
        qdq_match::finish(ctx, &oq, y);
        return Ok(());
    }
    let Some(word) = word else {
        return unsup(format!(
            "f32 {} has no runtime kernel (only int8, as a table)",
            if n.op_type == "Erf" {
                "Erf".to_string()
            } else {
                "GELU (tanh approximation)".to_string()
            }
        ));
    };
    if ctx.deq(n, 0).is_some() {
        ctx.note_island(i, "output not quantized");
    }
    let x = ctx.f32_input(n, 0)?;
    let y = ctx.new_f32(&x.shape, x.layout)?;
    ctx.op(OpCode::Table, &[Some(x.id)], &[y.id], &[word as u32])?;
    ctx.set_out(&ctx.nodes[i], 0, Val::F32(y));
    Ok(())
}
