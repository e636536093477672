//! Constant folding: nodes whose inputs are all compile-time constants (and `Shape`, whose
//! result static shapes make constant) are evaluated on the host and emit nothing.

use super::elementwise::broadcast;
use super::shape::{reshaped, transpose_host, value_shape};
use super::{unsup, Ctx, LResult, Val};
use crate::compile::host::{attr_ints, Elem, HostTensor};
use crate::onnx::attr_i;

/// Index into a broadcast operand of shape `s` for output multi-index `idx` (rank `r`).
fn bindex(s: &[usize], idx: &[usize]) -> usize {
    let off = idx.len() - s.len();
    let mut k = 0;
    for (d, &n) in s.iter().enumerate() {
        let v = if n == 1 { 0 } else { idx[off + d] };
        k = k * n + v;
    }
    k
}

fn elementwise(a: &HostTensor, b: &HostTensor, op: &str) -> LResult<HostTensor> {
    let Some(out) = broadcast(&a.shape, &b.shape) else {
        return unsup("constant operands do not broadcast");
    };
    let total: usize = out.iter().product();
    let mut idx = vec![0usize; out.len()];
    let ints = a.elem.is_int() && b.elem.is_int();
    let (af, bf, ai, bi) = (a.as_f32(), b.as_f32(), a.as_i64(), b.as_i64());
    let mut fv = Vec::new();
    let mut iv = Vec::new();
    for _ in 0..total {
        let (ka, kb) = (bindex(&a.shape, &idx), bindex(&b.shape, &idx));
        if ints {
            let (x, y) = (ai[ka], bi[kb]);
            iv.push(match op {
                "Add" => x.wrapping_add(y),
                "Sub" => x.wrapping_sub(y),
                "Mul" => x.wrapping_mul(y),
                _ => {
                    if y == 0 {
                        return unsup("integer division by zero in a constant");
                    }
                    x.div_euclid(y)
                }
            });
        } else {
            let (x, y) = (af[ka], bf[kb]);
            fv.push(match op {
                "Add" => x + y,
                "Sub" => x - y,
                "Mul" => x * y,
                _ => x / y,
            });
        }
        for d in (0..out.len()).rev() {
            idx[d] += 1;
            if idx[d] < out[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    Ok(if ints {
        HostTensor::int(out, Elem::I64, iv)
    } else {
        HostTensor::f32(out, fv)
    })
}

/// Folds node `i` when possible; `Ok(true)` when its outputs are now constants.
pub fn try_fold(ctx: &mut Ctx<'_>, i: usize) -> LResult<bool> {
    let n = &ctx.nodes[i];
    let op = n.op_type.as_str();
    if matches!(op, "QuantizeLinear" | "DequantizeLinear") {
        return Ok(false);
    }
    if op == "Shape" {
        let s = value_shape(ctx.input(n, 0)?);
        let r = s.len() as i64;
        let clampi = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
        let start = clampi(attr_i(n, "start", 0));
        let end = clampi(attr_i(n, "end", r));
        let v: Vec<i64> = s[start..end.max(start)].iter().map(|&d| d as i64).collect();
        ctx.set_out(
            n,
            0,
            Val::Const(HostTensor::int(vec![v.len()], Elem::I64, v)),
        );
        return Ok(true);
    }
    let ins: Vec<Option<HostTensor>> = n
        .input
        .iter()
        .map(|t| {
            if t.is_empty() {
                Some(None)
            } else {
                match ctx.vals.get(t) {
                    Some(Val::Const(h)) => Some(Some(h.clone())),
                    _ => None,
                }
            }
        })
        .collect::<Option<_>>()
        .unwrap_or_default();
    if ins.is_empty() || ins.first().map(|x| x.is_none()).unwrap_or(true) {
        return Ok(false);
    }
    let x = ins[0]
        .clone()
        .unwrap_or_else(|| HostTensor::f32(vec![], vec![]));
    let out = match op {
        "Identity" | "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" => {
            let mut h = x.clone();
            h.shape = reshaped(ctx, n, &x.shape)?;
            h
        }
        "Transpose" => {
            let r = x.shape.len();
            let perm: Vec<usize> = match attr_ints(n, "perm") {
                Some(p) => p.iter().map(|&a| a as usize).collect(),
                None => (0..r).rev().collect(),
            };
            let mut seen = vec![false; r];
            if perm.len() != r
                || perm
                    .iter()
                    .any(|&p| p >= r || std::mem::replace(&mut seen[p], true))
            {
                return unsup("bad perm on a constant");
            }
            transpose_host(&x, &perm)
        }
        "Cast" => {
            let to = attr_i(n, "to", 1) as i32;
            match Elem::from_onnx(to) {
                Some(Elem::F32) => HostTensor::f32(x.shape.clone(), x.as_f32()),
                Some(e) => HostTensor::int(x.shape.clone(), e, x.as_i64()),
                None => return unsup(format!("Cast to type {to} on a constant")),
            }
        }
        "Add" | "Sub" | "Mul" | "Div" => {
            let Some(Some(b)) = ins.get(1) else {
                return Ok(false);
            };
            elementwise(&x, b, op)?
        }
        "Neg" => {
            if x.elem.is_int() {
                HostTensor::int(x.shape.clone(), x.elem, x.i.iter().map(|v| -v).collect())
            } else {
                HostTensor::f32(x.shape.clone(), x.f.iter().map(|v| -v).collect())
            }
        }
        "Sqrt" => HostTensor::f32(
            x.shape.clone(),
            x.as_f32().iter().map(|v| v.sqrt()).collect(),
        ),
        "Concat" => {
            let parts: Vec<HostTensor> = ins.iter().flatten().cloned().collect();
            let r = x.shape.len() as i64;
            let a = attr_i(n, "axis", 0);
            let a = if a < 0 { a + r } else { a } as usize;
            if a >= x.shape.len() {
                return unsup("Concat axis out of range on constants");
            }
            let agree = |p: &HostTensor| {
                p.shape.len() == x.shape.len()
                    && (0..x.shape.len()).all(|d| d == a || p.shape[d] == x.shape[d])
            };
            if !parts.iter().all(agree) {
                return unsup("constant Concat inputs disagree off the axis");
            }
            let outer: usize = x.shape[..a].iter().product();
            let ints = parts.iter().all(|p| p.elem.is_int());
            let mut shape = x.shape.clone();
            shape[a] = parts
                .iter()
                .map(|p| p.shape.get(a).copied().unwrap_or(0))
                .sum();
            let mut fv = Vec::new();
            let mut iv = Vec::new();
            for o in 0..outer {
                for p in &parts {
                    let chunk: usize = p.shape[a..].iter().product();
                    if ints {
                        iv.extend_from_slice(&p.as_i64()[o * chunk..(o + 1) * chunk]);
                    } else {
                        fv.extend_from_slice(&p.as_f32()[o * chunk..(o + 1) * chunk]);
                    }
                }
            }
            if ints {
                HostTensor::int(shape, Elem::I64, iv)
            } else {
                HostTensor::f32(shape, fv)
            }
        }
        "Gather" => {
            let Some(Some(ids)) = ins.get(1) else {
                return Ok(false);
            };
            let r = x.shape.len() as i64;
            let a = attr_i(n, "axis", 0);
            let a = if a < 0 { a + r } else { a } as usize;
            if a >= x.shape.len() {
                return unsup("Gather axis out of range on constants");
            }
            let outer: usize = x.shape[..a].iter().product();
            let inner: usize = x.shape[a + 1..].iter().product();
            let dim = x.shape[a] as i64;
            let mut shape: Vec<usize> = x.shape[..a].to_vec();
            shape.extend_from_slice(&ids.shape);
            shape.extend_from_slice(&x.shape[a + 1..]);
            let (xf, xi) = (x.as_f32(), x.as_i64());
            let mut fv = Vec::new();
            let mut iv = Vec::new();
            for o in 0..outer {
                for &id in &ids.as_i64() {
                    let id = if id < 0 { id + dim } else { id };
                    if id < 0 || id >= dim {
                        return unsup("Gather index out of range on constants");
                    }
                    let base = (o * dim as usize + id as usize) * inner;
                    if x.elem.is_int() {
                        iv.extend_from_slice(&xi[base..base + inner]);
                    } else {
                        fv.extend_from_slice(&xf[base..base + inner]);
                    }
                }
            }
            if x.elem.is_int() {
                HostTensor::int(shape, x.elem, iv)
            } else {
                HostTensor::f32(shape, fv)
            }
        }
        _ => return Ok(false),
    };
    ctx.set_out(n, 0, Val::Const(out));
    Ok(true)
}
