//! Data movement: Reshape / Flatten / Squeeze / Unsqueeze / Identity (zero-copy aliases),
//! Transpose, Concat, Gather.

use edgeloop_runtime::image::writer::ConstRole;
use edgeloop_runtime::image::{DType, OpCode};

use super::{runtime_dims, unsup, Act, Ctx, LResult, Layout, Val};
use crate::compile::host::{attr_ints, HostTensor};
use crate::compile::qdq_match;
use crate::onnx::attr_i;
use tract_onnx::pb::NodeProto;

fn norm_axis(a: i64, rank: usize) -> LResult<usize> {
    let r = rank as i64;
    let v = if a < 0 { a + r } else { a };
    if v < 0 || v >= r.max(1) {
        return unsup(format!("axis {a} out of range for rank {rank}"));
    }
    Ok(v as usize)
}

/// The value's ONNX shape.
pub fn value_shape(v: &Val) -> Vec<usize> {
    match v {
        Val::Const(h) => h.shape.clone(),
        Val::F32(a) | Val::Deq(a) | Val::I8(a) | Val::I32(a) => a.shape.clone(),
    }
}

/// Output shape of a Reshape-family node for input shape `s`.
pub fn reshaped(ctx: &Ctx<'_>, n: &NodeProto, s: &[usize]) -> LResult<Vec<usize>> {
    let total: usize = s.iter().product();
    let axes_of = |k: usize| -> LResult<Option<Vec<i64>>> {
        if let Some(a) = attr_ints(n, "axes") {
            return Ok(Some(a));
        }
        match Ctx::in_name(n, k) {
            None => Ok(None),
            Some(_) => match ctx.konst(n, k) {
                Some(h) => Ok(Some(h.as_i64())),
                None => unsup("axes are not constant"),
            },
        }
    };
    Ok(match n.op_type.as_str() {
        "Identity" => s.to_vec(),
        "Flatten" => {
            let r = s.len() as i64;
            let a = attr_i(n, "axis", 1);
            let a = if a < 0 { a + r } else { a };
            if a < 0 || a > r {
                return unsup("axis out of range");
            }
            let a = a as usize;
            vec![s[..a].iter().product(), s[a..].iter().product()]
        }
        "Reshape" => {
            let Some(spec) = ctx.konst(n, 1) else {
                return unsup("the target shape is not constant");
            };
            let allowzero = attr_i(n, "allowzero", 0) != 0;
            let spec = spec.as_i64();
            let mut out = Vec::with_capacity(spec.len());
            let mut infer = None;
            for (k, &d) in spec.iter().enumerate() {
                match d {
                    0 if !allowzero => match s.get(k) {
                        Some(&v) => out.push(v),
                        None => return unsup("0 in the target shape beyond the input rank"),
                    },
                    -1 if infer.is_none() => {
                        infer = Some(k);
                        out.push(1);
                    }
                    d if d >= 0 => out.push(d as usize),
                    _ => return unsup(format!("target shape {spec:?} is invalid")),
                }
            }
            if out
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .is_none()
            {
                return unsup(format!("target shape {spec:?} overflows"));
            }
            if let Some(k) = infer {
                let known: usize = out.iter().product();
                if known == 0 || !total.is_multiple_of(known) {
                    return unsup(format!("cannot infer -1 in {spec:?} for {total} elements"));
                }
                out[k] = total / known;
            }
            out
        }
        "Squeeze" => {
            let axes = axes_of(1)?;
            match axes {
                None => s.iter().copied().filter(|&d| d != 1).collect(),
                Some(ax) => {
                    let ax: Vec<usize> = ax
                        .iter()
                        .map(|&a| norm_axis(a, s.len()))
                        .collect::<LResult<_>>()?;
                    if ax.iter().any(|&a| s[a] != 1) {
                        return unsup("squeezing an axis that is not 1");
                    }
                    s.iter()
                        .enumerate()
                        .filter(|(k, _)| !ax.contains(k))
                        .map(|(_, &d)| d)
                        .collect()
                }
            }
        }
        "Unsqueeze" => {
            let Some(ax) = axes_of(1)? else {
                return unsup("Unsqueeze without axes");
            };
            let r = s.len() + ax.len();
            let mut ax: Vec<usize> = ax
                .iter()
                .map(|&a| norm_axis(a, r))
                .collect::<LResult<_>>()?;
            ax.sort_unstable();
            let mut out = Vec::with_capacity(r);
            let mut it = s.iter();
            for k in 0..r {
                if ax.contains(&k) {
                    out.push(1);
                } else {
                    out.push(*it.next().unwrap_or(&1));
                }
            }
            out
        }
        other => return unsup(format!("{other} is not a reshape")),
    })
    .and_then(|o: Vec<usize>| {
        if o.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) != Some(total) {
            return unsup(format!(
                "reshape of {s:?} to {o:?} changes the element count"
            ));
        }
        Ok(o)
    })
}

/// Reshape-family ops: a zero-copy alias of the input (int8 when the output is quantized with
/// the input's parameters).
pub fn reshape(ctx: &mut Ctx<'_>, i: usize) -> LResult<()> {
    let n = &ctx.nodes[i];
    let v = ctx.input(n, 0)?.clone();
    let out = reshaped(ctx, n, &value_shape(&v))?;
    match v {
        Val::Const(mut h) => {
            h.shape = out;
            ctx.set_out(n, 0, Val::Const(h));
            Ok(())
        }
        Val::Deq(a) => {
            if let Some(oq) = qdq_match::output_quant(ctx, i) {
                if ctx.quant(&a)? == oq.quant && oq.clamp.is_none() {
                    let y = ctx.reshape(&a, &out)?;
                    qdq_match::finish(ctx, &oq, y);
                    return Ok(());
                }
            }
            let y = ctx.reshape(&a, &out)?;
            ctx.set_out(&ctx.nodes[i], 0, Val::Deq(y));
            Ok(())
        }
        Val::F32(a) => {
            let y = ctx.reshape(&a, &out)?;
            ctx.set_out(n, 0, Val::F32(y));
            Ok(())
        }
        Val::I8(a) => {
            let y = ctx.reshape(&a, &out)?;
            ctx.set_out(n, 0, Val::I8(y));
            Ok(())
        }
        Val::I32(a) => {
            let y = ctx.reshape(&a, &out)?;
            ctx.set_out(n, 0, Val::I32(y));
            Ok(())
        }
    }
}

/// Transpose (rank ≤ 4; int8 keeps its parameters).
pub fn transpose(ctx: &mut Ctx<'_>, i: usize) -> LResult<()> {
    let n = &ctx.nodes[i];
    let v = ctx.input(n, 0)?.clone();
    let s = value_shape(&v);
    let r = s.len();
    let perm: Vec<usize> = match attr_ints(n, "perm") {
        Some(p) => p.iter().map(|&a| norm_axis(a, r)).collect::<LResult<_>>()?,
        None => (0..r).rev().collect(),
    };
    let mut seen = vec![false; r];
    if perm.len() != r || perm.iter().any(|&p| std::mem::replace(&mut seen[p], true)) {
        return unsup(format!("perm {perm:?} is not a permutation of rank {r}"));
    }
    if r > 4 {
        return unsup("transpose of rank > 4");
    }
    let out: Vec<usize> = perm.iter().map(|&p| s[p]).collect();
    let emit = |ctx: &mut Ctx<'_>, a: &Act| -> LResult<Act> {
        let a = ctx.to_layout(a, Layout::Plain)?;
        let a = ctx.reshape(&a, &s)?;
        let id = if r <= 1 {
            let dims = ctx.w.shape(a.id)?;
            ctx.w.reshape_copy(a.id, &dims)?
        } else {
            ctx.w.transpose(a.id, &perm)?
        };
        if r >= 2 && perm[r - 2] == r - 1 {
            let mut q = perm.clone();
            q.swap(r - 2, r - 1);
            ctx.swapped_last2.insert(id.0, (a.clone(), q));
        }
        Ok(Act {
            id,
            shape: out.clone(),
            layout: Layout::Plain,
        })
    };
    match v {
        Val::Const(h) => {
            let t = transpose_host(&h, &perm);
            ctx.set_out(n, 0, Val::Const(t));
            Ok(())
        }
        Val::Deq(a) => {
            if let Some(oq) = qdq_match::output_quant(ctx, i) {
                if ctx.quant(&a)? == oq.quant && oq.clamp.is_none() {
                    let y = emit(ctx, &a)?;
                    qdq_match::finish(ctx, &oq, y);
                    return Ok(());
                }
            }
            // Movement commutes with dequantization: keep the int8 tensor.
            let y = emit(ctx, &a)?;
            ctx.set_out(&ctx.nodes[i], 0, Val::Deq(y));
            Ok(())
        }
        Val::F32(a) => {
            let y = emit(ctx, &a)?;
            ctx.set_out(n, 0, Val::F32(y));
            Ok(())
        }
        Val::I8(a) => {
            let y = emit(ctx, &a)?;
            ctx.set_out(n, 0, Val::I8(y));
            Ok(())
        }
        Val::I32(a) => {
            let y = emit(ctx, &a)?;
            ctx.set_out(n, 0, Val::I32(y));
            Ok(())
        }
    }
}

/// Transposes a host tensor.
pub fn transpose_host(h: &HostTensor, perm: &[usize]) -> HostTensor {
    let s = &h.shape;
    let r = s.len();
    let out: Vec<usize> = perm.iter().map(|&p| s[p]).collect();
    let mut strides = vec![1usize; r];
    for k in (0..r.saturating_sub(1)).rev() {
        strides[k] = strides[k + 1] * s[k + 1];
    }
    let total: usize = s.iter().product();
    let mut src_index = Vec::with_capacity(total);
    let mut idx = vec![0usize; r];
    for _ in 0..total {
        src_index.push((0..r).map(|k| idx[k] * strides[perm[k]]).sum::<usize>());
        for k in (0..r).rev() {
            idx[k] += 1;
            if idx[k] < out[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    let mut t = h.clone();
    t.shape = out;
    if !h.f.is_empty() {
        t.f = src_index.iter().map(|&k| h.f[k]).collect();
    }
    if !h.i.is_empty() {
        t.i = src_index.iter().map(|&k| h.i[k]).collect();
    }
    t.quant = None;
    t
}

/// Concat: int8 rescales each input to the output's parameters.
pub fn concat(ctx: &mut Ctx<'_>, i: usize) -> LResult<()> {
    let n = &ctx.nodes[i];
    let k = n.input.len();
    if k == 0 || k > 16 {
        return unsup("Concat of 0 or more than 16 inputs");
    }
    let vals: Vec<Val> = (0..k)
        .map(|j| ctx.input(n, j).cloned())
        .collect::<LResult<_>>()?;
    let shapes: Vec<Vec<usize>> = vals.iter().map(value_shape).collect();
    let r = shapes[0].len();
    let axis = norm_axis(attr_i(n, "axis", 0), r)?;
    let mut out = shapes[0].clone();
    out[axis] = shapes
        .iter()
        .map(|s| s.get(axis).copied().unwrap_or(0))
        .sum();
    if shapes
        .iter()
        .any(|s| s.len() != r || (0..r).any(|d| d != axis && s[d] != out[d]))
    {
        return unsup("input shapes do not agree off the concatenation axis");
    }
    let deqs: Option<Vec<Act>> = vals
        .iter()
        .map(|v| match v {
            Val::Deq(a) => Some(a.clone()),
            _ => None,
        })
        .collect();
    let all_nhwc = r == 4
        && vals.iter().all(|v| match v {
            Val::F32(a) | Val::Deq(a) => a.layout == Layout::Nhwc,
            _ => false,
        });
    let (layout, phys_axis) = if all_nhwc {
        (Layout::Nhwc, [0, 3, 1, 2][axis])
    } else {
        (Layout::Plain, axis)
    };
    let rd = runtime_dims(&super::physical(&out, layout))?;
    let phys_axis = phys_axis + rd.len() - r.min(rd.len());
    if let (Some(acts), Some(oq)) = (deqs, qdq_match::output_quant(ctx, i)) {
        let mut ins = Vec::new();
        let mut zps = Vec::new();
        let mut ms = Vec::new();
        let mut ss = Vec::new();
        for a in &acts {
            let a = ctx.to_layout(a, layout)?;
            let (s, z) = ctx.quant(&a)?;
            let Some((m, sh)) =
                edgeloop_runtime::ops::concat::concat_requant(s as f64, oq.quant.0 as f64)
            else {
                return unsup("Concat requantization is not representable");
            };
            ins.push(Some(a.id));
            zps.push(z as u32);
            ms.push(m as u32);
            ss.push(sh as u32);
        }
        let y = ctx.new_i8(&out, layout, oq.quant)?;
        let words: Vec<u32> = [phys_axis as u32]
            .into_iter()
            .chain(zps)
            .chain(ms)
            .chain(ss)
            .collect();
        ctx.op(OpCode::Concat, &ins, &[y.id], &words)?;
        qdq_match::finish(ctx, &oq, y);
        return Ok(());
    }
    if vals.iter().any(|v| matches!(v, Val::Deq(_))) {
        ctx.note_island(i, "inputs or output not quantized");
    }
    let mut ins = Vec::new();
    for j in 0..k {
        let a = ctx.f32_input(&ctx.nodes[i], j)?;
        let a = ctx.to_layout(&a, layout)?;
        ins.push(Some(a.id));
    }
    let y = ctx.new_f32(&out, layout)?;
    ctx.op(OpCode::Concat, &ins, &[y.id], &[phys_axis as u32])?;
    ctx.set_out(&ctx.nodes[i], 0, Val::F32(y));
    Ok(())
}

/// Gather along axis 0 of a constant table by int32 ids (an embedding lookup).
pub fn gather(ctx: &mut Ctx<'_>, i: usize) -> LResult<()> {
    let n = &ctx.nodes[i];
    let Some(table) = ctx.konst(n, 0).cloned() else {
        return unsup("data is not a constant (the runtime gathers rows of a constant table)");
    };
    if table.shape.is_empty() {
        return unsup("data is a scalar");
    }
    let axis = norm_axis(attr_i(n, "axis", 0), table.shape.len())?;
    let ids = match ctx.input(n, 1)? {
        Val::I32(a) => a.clone(),
        _ => return unsup("indices are not an integer graph input"),
    };
    let r = table.shape.len();
    // Gathering along `axis` = gathering rows of the table with `axis` moved first (done here,
    // on the constant), then moving the gathered axis back into place (a Transpose).
    let front: Vec<usize> = std::iter::once(axis)
        .chain((0..r).filter(|&d| d != axis))
        .collect();
    let table = if axis == 0 {
        table
    } else {
        transpose_host(&table, &front)
    };
    let rows = table.shape[0];
    let row_len: usize = table.shape[1..].iter().product::<usize>().max(1);
    let count: usize = ids.shape.iter().product::<usize>().max(1);
    let mut out: Vec<usize> = table.shape[1..=axis].to_vec();
    out.extend_from_slice(&ids.shape);
    out.extend_from_slice(&table.shape[axis + 1..]);
    // The gathered tensor before the axis moves back: [count, rest...].
    let mut gathered: Vec<usize> = vec![count];
    gathered.extend_from_slice(&table.shape[1..]);
    let back: Vec<usize> = (1..=axis).chain([0]).chain(axis + 1..r).collect();
    if axis != 0 && r > 4 {
        return unsup("Gather on axis > 0 of a table of rank > 4");
    }
    let ids1 = ctx.reshape(&ids, &[count])?;
    let oq = qdq_match::output_quant(ctx, i);
    let (t, y, quant) = match oq {
        Some(oq) if oq.clamp.is_none() => {
            let (s, z) = oq.quant;
            // Quantizing the gathered rows equals gathering the quantized table.
            let q: Vec<u8> = table
                .as_f32()
                .iter()
                .map(|&v| edgeloop_runtime::quant::quantize_f32(v, s, z) as u8)
                .collect();
            let t = ctx.w.constant(
                DType::I8,
                &[rows, row_len],
                q,
                Some(oq.quant),
                ConstRole::Weight,
            )?;
            let y = ctx.new_i8(&[count, row_len], Layout::Plain, oq.quant)?;
            (t, y, Some(oq))
        }
        _ => {
            let t = ctx
                .w
                .const_f32(&[rows, row_len], &table.as_f32(), ConstRole::Weight)?;
            let y = ctx.new_f32(&[count, row_len], Layout::Plain)?;
            (t, y, None)
        }
    };
    ctx.op(OpCode::Gather, &[Some(t), Some(ids1.id)], &[y.id], &[])?;
    let y = if axis == 0 {
        y
    } else {
        let g = ctx.reshape(&y, &gathered)?;
        let id = ctx.w.transpose(g.id, &back)?;
        let shape: Vec<usize> = back.iter().map(|&k| gathered[k]).collect();
        Act {
            id,
            shape,
            layout: Layout::Plain,
        }
    };
    let y = ctx.reshape(&y, &out)?;
    match quant {
        Some(oq) => qdq_match::finish(ctx, &oq, y),
        None => ctx.set_out(&ctx.nodes[i], 0, Val::F32(y)),
    }
    Ok(())
}
