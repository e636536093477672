//! SmoothQuant (Xiao et al., 2023): migrate activation outliers into MatMul weights.
//!
//! For a group of MatMuls with constant weights `W[K, N]` reading the same activation `X[.., K]`,
//! with `a_k = max |X[.., k]|` (calibration) and `w_k = max_n |W[k, n]|` over the group, the scale
//! `s_k = a_k^α / w_k^(1-α)` gives `X' = X / s` and `W' = diag(s) · W`, so `X'W' = XW` exactly in
//! real arithmetic while `X'` has flatter channels. `X / s` is folded into the producing
//! `LayerNormalization` (γ/s, β/s) when it feeds only the group, else a `Mul` node is inserted.

use std::collections::{BTreeMap, HashMap};

use crate::error::Result;
use crate::onnx::ops::{Registry, Role};
use crate::onnx::{node, OnnxModel};
use crate::tensor::{self, Tensor};

/// One MatMul group SmoothQuant can act on: activation tensor → (node index, weight name).
pub fn targets(
    model: &OnnxModel,
    registry: &Registry,
    inits: &HashMap<String, Tensor>,
    quantized: &[bool],
) -> Result<BTreeMap<String, Vec<(usize, String)>>> {
    let roles = registry.check(model, inits)?;
    let mut groups: BTreeMap<String, Vec<(usize, String)>> = BTreeMap::new();
    for (i, n) in model.graph().node.iter().enumerate() {
        if n.op_type != "MatMul" || !quantized[i] {
            continue;
        }
        let (Some(x), Some(w)) = (n.input.first(), n.input.get(1)) else {
            continue;
        };
        let is_weight = matches!(roles[i].get(1), Some(Role::Weight { .. }));
        let rank2 = inits
            .get(w)
            .map(|t| t.shape.len() == 2 && t.as_f32().is_some())
            .unwrap_or(false);
        if is_weight && rank2 && !inits.contains_key(x) {
            groups.entry(x.clone()).or_default().push((i, w.clone()));
        }
    }
    Ok(groups)
}

/// Applies SmoothQuant with migration strength `alpha` given per-channel activation maxima.
/// Returns the rewritten model and how many groups were smoothed.
pub fn apply(
    model: &OnnxModel,
    inits: &HashMap<String, Tensor>,
    groups: &BTreeMap<String, Vec<(usize, String)>>,
    act_absmax: &HashMap<String, Vec<f32>>,
    alpha: f32,
) -> Result<(OnnxModel, usize)> {
    let mut out = model.clone();
    let mut new_inits: HashMap<String, Tensor> = HashMap::new();
    let mut smoothed = 0;
    let consumers = |t: &str| -> usize {
        model
            .graph()
            .node
            .iter()
            .filter(|n| n.input.iter().any(|i| i == t))
            .count()
    };
    let mut inserted = Vec::new();
    for (x, members) in groups {
        let Some(a) = act_absmax.get(x) else { continue };
        let k = a.len();
        let mut wmax = vec![0f32; k];
        let mut ok = true;
        for (_, w) in members {
            let t = &inits[w];
            if t.shape[0] != k {
                ok = false;
                break;
            }
            let n = t.shape[1];
            for (r, row) in t.as_f32().unwrap_or(&[]).chunks_exact(n).enumerate() {
                wmax[r] = row.iter().fold(wmax[r], |m, v| m.max(v.abs()));
            }
        }
        if !ok {
            continue;
        }
        let s: Vec<f32> = a
            .iter()
            .zip(&wmax)
            .map(|(&ak, &wk)| {
                if ak > 0.0 && wk > 0.0 {
                    (ak.powf(alpha) / wk.powf(1.0 - alpha)).clamp(1e-5, 1e5)
                } else {
                    1.0
                }
            })
            .collect();
        // Scale the weights (a weight shared with other nodes is copied under a new name).
        for (i, w) in members {
            let t = &inits[w];
            let n = t.shape[1];
            let data: Vec<f32> = t
                .as_f32()
                .unwrap_or(&[])
                .iter()
                .enumerate()
                .map(|(idx, &v)| v * s[idx / n])
                .collect();
            let shared = consumers(w) > 1;
            let name = if shared {
                format!("{w}_smooth_{i}")
            } else {
                w.clone()
            };
            out.graph_mut().node[*i].input[1] = name.clone();
            new_inits.insert(name, Tensor::f32(t.shape.clone(), data)?);
        }
        // Fold X / s into the producing LayerNormalization when X feeds only this group.
        let g = out.graph();
        let producer = g.node.iter().position(|n| n.output.first() == Some(x));
        let fold = producer.filter(|&p| {
            let n = &g.node[p];
            n.op_type == "LayerNormalization"
                && consumers(x) == members.len()
                && n.input
                    .iter()
                    .skip(1)
                    .all(|t| inits.get(t).map(|v| v.len() == k).unwrap_or(false))
                && n.input.len() >= 2
        });
        if let Some(p) = fold {
            let ln = g.node[p].clone();
            for (j, t) in ln.input.iter().enumerate().skip(1) {
                let v: Vec<f32> = inits[t]
                    .as_f32()
                    .unwrap_or(&[])
                    .iter()
                    .zip(&s)
                    .map(|(v, s)| v / s)
                    .collect();
                let name = format!("{t}_smooth");
                out.graph_mut().node[p].input[j] = name.clone();
                new_inits.insert(name, Tensor::f32(inits[t].shape.clone(), v)?);
            }
        } else {
            let inv: Vec<f32> = s.iter().map(|v| 1.0 / v).collect();
            let cname = format!("{x}_smooth_inv_scale");
            let xs = format!("{x}_smoothed");
            new_inits.insert(cname.clone(), Tensor::f32(vec![k], inv)?);
            for (i, _) in members {
                out.graph_mut().node[*i].input[0] = xs.clone();
            }
            inserted.push((
                x.clone(),
                node("Mul", &format!("{x}_smooth"), &[x, &cname], &[&xs], vec![]),
            ));
        }
        smoothed += 1;
    }
    // Insert Mul nodes right before their first consumer (keeps topological order).
    for (x, mul) in inserted {
        let xs = mul.output[0].clone();
        let g = out.graph_mut();
        let pos = g
            .node
            .iter()
            .position(|n| n.input.contains(&xs))
            .unwrap_or(g.node.len());
        let _ = x;
        g.node.insert(pos, mul);
    }
    let g = out.graph_mut();
    for (name, t) in new_inits {
        let data = t.as_f32().unwrap_or(&[]);
        let p = tensor::f32_proto(&name, &t.shape, data);
        if let Some(slot) = g.initializer.iter_mut().find(|i| i.name == name) {
            *slot = p;
        } else {
            g.initializer.push(p);
        }
    }
    let used: std::collections::HashSet<String> = g
        .node
        .iter()
        .flat_map(|n| n.input.iter().cloned())
        .collect();
    g.initializer.retain(|t| used.contains(&t.name));
    Ok((out, smoothed))
}
