//! Neural-network ops: convolutions, dense layers, activations, normalization, pooling.

use super::{all_activations, first_activation, OpCtx, OpHandler, Registry, Role};
use crate::onnx::{attr, attr_f, attr_i};

pub(super) fn register(r: &mut Registry) {
    r.insert("Conv", OpHandler::new(conv));
    r.insert("Gemm", OpHandler::new(gemm));
    r.insert("MatMul", OpHandler::new(matmul));
    r.insert("Relu", OpHandler::new(all_activations).fusable());
    r.insert("Sigmoid", OpHandler::new(all_activations));
    r.insert("Tanh", OpHandler::new(all_activations));
    r.insert("Gelu", OpHandler::new(gelu));
    r.insert(
        "Softmax",
        OpHandler::new(all_activations).output_range(0.0, 1.0),
    );
    r.insert("LayerNormalization", OpHandler::new(first_activation));
    r.insert("BatchNormalization", OpHandler::new(first_activation));
    r.insert("MaxPool", OpHandler::new(pool).same_as_input());
    r.insert("AveragePool", OpHandler::new(pool));
    r.insert("GlobalAveragePool", OpHandler::new(all_activations));
}

fn conv(ctx: &OpCtx) -> Result<Vec<Role>, String> {
    if attr_i(ctx.node, "group", 1) < 1 {
        return Err("attribute 'group' must be at least 1".into());
    }
    if ctx.node.input.len() < 2 {
        return Err("Conv needs at least 2 inputs".into());
    }
    let mut r = vec![Role::Activation, Role::Weight { axis: 0 }];
    if ctx.node.input.len() > 2 {
        r.push(Role::Bias {
            input: 0,
            weight: 1,
        });
    }
    Ok(r)
}

fn gemm(ctx: &OpCtx) -> Result<Vec<Role>, String> {
    if ctx.node.input.len() < 2 {
        return Err("Gemm needs at least 2 inputs".into());
    }
    let trans_b = attr_i(ctx.node, "transB", 0) != 0;
    let mut r = vec![
        Role::Activation,
        Role::Weight {
            axis: if trans_b { 0 } else { 1 },
        },
    ];
    if ctx.node.input.len() > 2 && !ctx.node.input[2].is_empty() {
        // The bias enters as beta·C next to alpha·A·B: int32 at s_A·s_B only when both are 1.
        let plain = attr_f(ctx.node, "alpha", 1.0) == 1.0 && attr_f(ctx.node, "beta", 1.0) == 1.0;
        r.push(if plain {
            Role::Bias {
                input: 0,
                weight: 1,
            }
        } else {
            Role::Param
        });
    }
    Ok(r)
}

fn matmul(ctx: &OpCtx) -> Result<Vec<Role>, String> {
    if ctx.node.input.len() != 2 {
        return Err("MatMul needs 2 inputs".into());
    }
    // A constant right-hand side [.., K, N] is a weight with output channels on its last axis.
    let second = match ctx.init_rank(1) {
        Some(rank) if rank >= 2 => Role::Weight { axis: rank - 1 },
        _ => Role::Activation,
    };
    Ok(vec![Role::Activation, second])
}

fn gelu(ctx: &OpCtx) -> Result<Vec<Role>, String> {
    if let Some(a) = attr(ctx.node, "approximate") {
        let s = String::from_utf8_lossy(&a.s);
        if s != "none" && s != "tanh" {
            return Err(format!("unknown approximate='{s}'"));
        }
    }
    all_activations(ctx)
}

fn pool(ctx: &OpCtx) -> Result<Vec<Role>, String> {
    if ctx.node.output.len() > 1 && !ctx.node.output[1].is_empty() {
        return Err("MaxPool with an Indices output is not supported".into());
    }
    all_activations(ctx)
}
