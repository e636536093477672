//! The front end: a registry mapping each ONNX op type to a small handler that says how the
//! quantizer treats the node's inputs and output. Each family module registers its own ops.
//!
//! An op missing from the registry, a non-default domain, or a handler refusing a node's
//! attributes makes the node unsupported; [`Registry::check`] reports every such node at once.

mod math;
mod nn;
mod shape;

use std::collections::HashMap;

use tract_onnx::pb::NodeProto;

use crate::error::{Error, Result, UnsupportedNode};
use crate::tensor::Tensor;

use super::{node_label, OnnxModel};

/// How the quantizer treats one input of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A float activation: gets a QuantizeLinear/DequantizeLinear pair (asymmetric int8 per tensor).
    /// When the input is an initializer it is quantized once, per tensor, from its own range.
    Activation,
    /// A weight: when it is an initializer, symmetric int8 per output channel along `axis`
    /// (or per tensor if so configured). Otherwise it is treated as an activation.
    Weight {
        /// Output-channel axis.
        axis: usize,
    },
    /// A bias: when an initializer of one value per output channel, int32 at scale
    /// `s_input · s_weight` (zero point 0). Otherwise kept float.
    Bias {
        /// Index of the activation input whose scale enters the bias scale.
        input: usize,
        /// Index of the weight input.
        weight: usize,
    },
    /// Kept float and untouched (shapes, axes, normalization parameters...).
    Param,
}

/// Context a handler sees.
pub struct OpCtx<'a> {
    /// The node.
    pub node: &'a NodeProto,
    /// Opset of the node's domain.
    pub opset: i64,
    /// Initializers of the model.
    pub inits: &'a HashMap<String, Tensor>,
}

impl OpCtx<'_> {
    /// Rank of input `i` when it is an initializer.
    pub fn init_rank(&self, i: usize) -> Option<usize> {
        self.node
            .input
            .get(i)
            .and_then(|n| self.inits.get(n))
            .map(|t| t.shape.len())
    }
}

/// A per-op handler.
#[derive(Clone, Copy)]
pub struct OpHandler {
    /// Roles of the node's inputs, or why the node is refused.
    pub roles: fn(&OpCtx) -> std::result::Result<Vec<Role>, String>,
    /// Whether the op can be quantized at all (false: supported, always kept float).
    pub quantizable: bool,
    /// The output shares the first input's quantization parameters (data movement ops, max pooling).
    pub output_same_as_input: bool,
    /// A clamp-like activation (Relu) that can run on the float output of the op producing its input,
    /// so that tensor needs no QDQ pair of its own (the compiler fuses the clamp).
    pub fusable_activation: bool,
    /// The output's range is known from the op's definition (Softmax: `[0, 1]`); it replaces the
    /// calibrated range, which a small calibration set underestimates (a probability above the
    /// largest one seen would be clipped).
    pub output_range: Option<(f32, f32)>,
    /// The output's values are picked from the first input (Gather): when that input is a
    /// constant table, the output's range is the table's `[min, max]`, so a row the
    /// calibration set never looked up is not clipped.
    pub output_from_table: bool,
}

impl OpHandler {
    /// A quantizable op with the given role function.
    pub const fn new(roles: fn(&OpCtx) -> std::result::Result<Vec<Role>, String>) -> Self {
        OpHandler {
            roles,
            quantizable: true,
            output_same_as_input: false,
            fusable_activation: false,
            output_range: None,
            output_from_table: false,
        }
    }
    /// Marks the output as picked from a (constant) table, the first input.
    pub const fn from_table(mut self) -> Self {
        self.output_from_table = true;
        self
    }
    /// Gives the output a fixed range instead of a calibrated one.
    pub const fn output_range(mut self, min: f32, max: f32) -> Self {
        self.output_range = Some((min, max));
        self
    }
    /// Marks the output as sharing the input's parameters.
    pub const fn same_as_input(mut self) -> Self {
        self.output_same_as_input = true;
        self
    }
    /// Marks the op as always float.
    pub const fn float_only(mut self) -> Self {
        self.quantizable = false;
        self
    }
    /// Marks the op as a fusable activation.
    pub const fn fusable(mut self) -> Self {
        self.fusable_activation = true;
        self
    }
}

/// Roles for an op whose inputs are all activations.
pub fn all_activations(ctx: &OpCtx) -> std::result::Result<Vec<Role>, String> {
    Ok(vec![Role::Activation; ctx.node.input.len()])
}

/// Roles for an op with one activation input and float parameters after it.
pub fn first_activation(ctx: &OpCtx) -> std::result::Result<Vec<Role>, String> {
    let mut r = vec![Role::Param; ctx.node.input.len()];
    if let Some(first) = r.first_mut() {
        *first = Role::Activation;
    }
    Ok(r)
}

/// Roles for an op never quantized.
pub fn all_params(ctx: &OpCtx) -> std::result::Result<Vec<Role>, String> {
    Ok(vec![Role::Param; ctx.node.input.len()])
}

/// Op type → handler.
pub struct Registry {
    map: HashMap<&'static str, OpHandler>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::standard()
    }
}

impl Registry {
    /// Every op this crate supports.
    pub fn standard() -> Self {
        let mut r = Registry {
            map: HashMap::new(),
        };
        nn::register(&mut r);
        math::register(&mut r);
        shape::register(&mut r);
        r
    }

    /// Adds (or replaces) a handler.
    pub fn insert(&mut self, op_type: &'static str, h: OpHandler) {
        self.map.insert(op_type, h);
    }

    /// The handler of an op type.
    pub fn get(&self, op_type: &str) -> Option<&OpHandler> {
        self.map.get(op_type)
    }

    /// Supported op types, sorted.
    pub fn op_types(&self) -> Vec<&'static str> {
        let mut v: Vec<_> = self.map.keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// Roles of every node, or one error listing every unsupported node.
    pub fn check(
        &self,
        model: &OnnxModel,
        inits: &HashMap<String, Tensor>,
    ) -> Result<Vec<Vec<Role>>> {
        let mut bad = Vec::new();
        let mut roles = Vec::new();
        for (i, node) in model.graph().node.iter().enumerate() {
            let domain = node.domain.as_str();
            let opset = model.opset(domain);
            let op_type = if domain.is_empty() || domain == "ai.onnx" {
                node.op_type.clone()
            } else {
                format!("{domain}.{}", node.op_type)
            };
            let mut refuse = |reason: String| {
                bad.push(UnsupportedNode {
                    name: node_label(node, i),
                    op_type: op_type.clone(),
                    opset,
                    reason,
                })
            };
            if !(domain.is_empty() || domain == "ai.onnx") {
                refuse("only the default ONNX domain is supported".into());
                roles.push(vec![]);
                continue;
            }
            if node
                .attribute
                .iter()
                .any(|a| a.g.is_some() || !a.graphs.is_empty())
            {
                refuse("nodes with subgraphs (control flow) are not supported".into());
                roles.push(vec![]);
                continue;
            }
            let Some(h) = self.get(&node.op_type) else {
                refuse("op type not supported by the quantizer".into());
                roles.push(vec![]);
                continue;
            };
            let ctx = OpCtx { node, opset, inits };
            match (h.roles)(&ctx) {
                Ok(r) => roles.push(r),
                Err(reason) => {
                    refuse(reason);
                    roles.push(vec![]);
                }
            }
        }
        if bad.is_empty() {
            Ok(roles)
        } else {
            Err(Error::Unsupported(bad))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::node;
    use crate::testmodels;

    #[test]
    fn every_unsupported_node_is_listed_with_op_and_opset() {
        let mut m = testmodels::mlp();
        let g = m.graph_mut();
        g.node
            .push(node("Loopy", "odd_one", &["y"], &["z"], vec![]));
        let mut custom = node("Foo", "custom_one", &["y"], &["z2"], vec![]);
        custom.domain = "com.example".into();
        g.node.push(custom);
        g.node.push(node(
            "Conv",
            "",
            &["y", "w?"],
            &["z3"],
            vec![crate::onnx::attr_int("group", 0)],
        ));
        let inits = m.initializers().unwrap();
        let e = Registry::standard().check(&m, &inits).unwrap_err();
        let Error::Unsupported(list) = &e else {
            panic!("{e}")
        };
        assert_eq!(list.len(), 3, "{e}");
        let text = e.to_string();
        assert!(text.contains("'odd_one' (Loopy at opset 17)"), "{text}");
        assert!(text.contains("com.example.Foo at opset 0"), "{text}");
        assert!(text.contains("'#"), "{text}");
    }
}
