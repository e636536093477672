//! QDQ pattern matching: does a compute node's output go straight (or through a Relu/Clip) into
//! `QuantizeLinear` nodes, so that the node can run as one int8 op that writes the quantized
//! tensor directly?

use edgeloop_runtime::quant::quantize_f32;

use super::lower::{Act, Ctx, Val};

/// The int8 output of a matched pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct OutQuant {
    /// `(scale, zero_point)` of the output (uint8 already mapped to int8).
    pub quant: (f32, i32),
    /// Float bounds of a fused Relu/Clip (`None`: no activation).
    pub clamp: Option<(f32, f32)>,
    /// The `QuantizeLinear` nodes that the op replaces.
    pub q_nodes: Vec<usize>,
    /// The fused Relu/Clip node.
    pub fused: Option<usize>,
}

impl OutQuant {
    /// The int8 clamp `(min, max)` in the output's quantized domain.
    pub fn clamp_i8(&self) -> (i32, i32) {
        let (s, z) = self.quant;
        match self.clamp {
            None => (-128, 127),
            Some((lo, hi)) => {
                let qlo = if lo.is_finite() {
                    quantize_f32(lo, s, z) as i32
                } else {
                    -128
                };
                let qhi = if hi.is_finite() {
                    quantize_f32(hi, s, z) as i32
                } else {
                    127
                };
                (qlo, qhi)
            }
        }
    }

    /// The clamp as two parameter words.
    pub fn clamp_words(&self) -> [u32; 2] {
        let (lo, hi) = self.clamp_i8();
        [lo as u32, hi as u32]
    }
}

/// Float bounds of a Relu or Clip node with constant bounds; `None` for anything else.
pub fn activation_bounds(ctx: &Ctx<'_>, i: usize) -> Option<(f32, f32)> {
    let n = &ctx.nodes[i];
    match n.op_type.as_str() {
        "Relu" => Some((0.0, f32::INFINITY)),
        "Clip" => {
            if ctx.opset < 11 {
                let lo = crate::onnx::attr_f(n, "min", f32::NEG_INFINITY);
                let hi = crate::onnx::attr_f(n, "max", f32::INFINITY);
                return Some((lo, hi));
            }
            let bound = |k: usize, dflt: f32| -> Option<f32> {
                match Ctx::in_name(n, k) {
                    None => Some(dflt),
                    Some(_) => ctx.konst(n, k).and_then(|h| h.scalar_f32()),
                }
            };
            Some((bound(1, f32::NEG_INFINITY)?, bound(2, f32::INFINITY)?))
        }
        _ => None,
    }
}

/// Consumers of `t` when every one is a per-tensor int8/uint8 `QuantizeLinear` of `t` with the
/// same parameters: `(quant, nodes)`.
fn quantizers(ctx: &Ctx<'_>, t: &str) -> Option<((f32, i32), Vec<usize>)> {
    if ctx.graph_outputs.contains(t) {
        return None;
    }
    let cons = ctx.consumers.get(t)?;
    let mut q = None;
    for &c in cons {
        let n = &ctx.nodes[c];
        if n.op_type != "QuantizeLinear" || ctx.done[c] || Ctx::in_name(n, 0) != Some(t) {
            return None;
        }
        let p = ctx.qparams(n, 0).ok()?.per_tensor_i8()?;
        match q {
            None => q = Some(p),
            Some(prev) if prev == p => {}
            Some(_) => return None,
        }
    }
    Some((q?, cons.clone()))
}

/// The int8 output of node `i` when its output feeds only QuantizeLinear nodes, directly or
/// through one Relu/Clip with constant bounds.
pub fn output_quant(ctx: &Ctx<'_>, i: usize) -> Option<OutQuant> {
    let n = &ctx.nodes[i];
    let o = n.output.first()?;
    if let Some((quant, q_nodes)) = quantizers(ctx, o) {
        return Some(OutQuant {
            quant,
            clamp: None,
            q_nodes,
            fused: None,
        });
    }
    if ctx.graph_outputs.contains(o) {
        return None;
    }
    let cons = ctx.consumers.get(o)?;
    let [a] = cons.as_slice() else { return None };
    let act = &ctx.nodes[*a];
    if ctx.done[*a] || Ctx::in_name(act, 0) != Some(o.as_str()) {
        return None;
    }
    let clamp = activation_bounds(ctx, *a)?;
    let (quant, q_nodes) = quantizers(ctx, act.output.first()?)?;
    Some(OutQuant {
        quant,
        clamp: Some(clamp),
        q_nodes,
        fused: Some(*a),
    })
}

/// Binds the quantized outputs of a lowered pattern to the int8 result `y`.
pub fn finish(ctx: &mut Ctx<'_>, oq: &OutQuant, y: Act) {
    for &q in &oq.q_nodes {
        ctx.done[q] = true;
        if let Some(name) = ctx.nodes[q].output.first() {
            ctx.vals.insert(name.clone(), Val::I8(y.clone()));
        }
    }
    if let Some(f) = oq.fused {
        ctx.done[f] = true;
    }
}

/// A Relu/Clip (constant bounds) that is the only reader of node `i`'s float output `t` (not a
/// graph output): `(node, (min, max))`, to fuse as the f32 op's clamp.
pub fn float_activation(ctx: &Ctx<'_>, t: &str) -> Option<(usize, (f32, f32))> {
    if ctx.graph_outputs.contains(t) {
        return None;
    }
    let cons = ctx.consumers.get(t)?;
    let [a] = cons.as_slice() else { return None };
    let n = &ctx.nodes[*a];
    if ctx.done[*a] || Ctx::in_name(n, 0) != Some(t) {
        return None;
    }
    activation_bounds(ctx, *a).map(|b| (*a, b))
}

/// Sets the output of a fused f32 activation node `a` to `y` and marks it done.
pub fn finish_float(ctx: &mut Ctx<'_>, a: usize, y: Act) {
    ctx.done[a] = true;
    if let Some(name) = ctx.nodes[a].output.first() {
        ctx.vals.insert(name.clone(), Val::F32(y));
    }
}
