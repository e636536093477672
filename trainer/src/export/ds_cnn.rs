//! fp32 ONNX export of the keyword-spotting DS-CNN ([`crate::models::ds_cnn`]): input
//! `features` float `[B, 1, frames, bands]` (the dequantized int8 log-mel features), output
//! `logits` `[B, K]`. Operators: Conv (the first with explicit asymmetric `pads`, the depthwise
//! ones with `group = C`), Relu, GlobalAveragePool, Flatten, Gemm (`transB = 1`) — all of which
//! the quantizer and the compiler lower to int8 kernels.

use tract_onnx::pb;

use super::data;
use super::graph::{Attr, Elem, GraphBuilder};
use crate::models::ds_cnn::DsCnn;
use crate::{Result, TrainerError};

/// Name of the graph input.
pub const INPUT: &str = "features";
/// Name of the graph output.
pub const OUTPUT: &str = "logits";

/// Exports `model` for batch `batch` at `opset` (17 to 21).
pub fn export_ds_cnn(model: &DsCnn, batch: usize, opset: i64) -> Result<pb::ModelProto> {
    if batch == 0 {
        return Err(TrainerError::Export("batch must be at least 1".into()));
    }
    if !(17..=21).contains(&opset) {
        return Err(TrainerError::Export(format!(
            "opset {opset} is not supported (17 to 21)"
        )));
    }
    let cfg = &model.config;
    let c = cfg.channels;
    let mut g = GraphBuilder::default();
    let x = g.input(INPUT, Elem::F32, &[batch, 1, cfg.frames, cfg.bands]);
    let norm = model.input_norm;
    if !(norm.std.is_finite() && norm.std > 0.0 && norm.mean.is_finite()) {
        return Err(TrainerError::Export(format!(
            "input normalization mean {} std {} is not usable",
            norm.mean, norm.std
        )));
    }
    // Weights and bias of convolution `name`; for the first one with the input normalization
    // folded in (exact: the padding is a raw zero in both, see `InputNorm`): w / std,
    // b − mean / std · Σ w.
    let conv = |g: &mut GraphBuilder, name: &str, first: bool| -> Result<(String, String)> {
        let wv = model.var(&format!("{name}.weight"))?;
        let mut w = data(wv.as_tensor())?;
        let mut b = data(model.var(&format!("{name}.bias"))?.as_tensor())?;
        let per = w.len() / c.max(1);
        if first {
            for (o, bias) in b.iter_mut().enumerate() {
                let sum: f64 = w[o * per..(o + 1) * per].iter().map(|&v| v as f64).sum();
                *bias = (*bias as f64 - norm.mean as f64 / norm.std as f64 * sum) as f32;
            }
            w.iter_mut().for_each(|v| *v /= norm.std);
        }
        Ok((
            g.init_f32(&format!("{name}.weight"), wv.dims(), w),
            g.init_f32(&format!("{name}.bias"), &[c], b),
        ))
    };
    let init = |g: &mut GraphBuilder, name: &str| -> Result<String> {
        let v = model.var(name)?;
        Ok(g.init_f32(name, v.dims(), data(v.as_tensor())?))
    };
    let (w, b) = conv(&mut g, "conv0", true)?;
    let [t, bo, l, r] = cfg.pads();
    let s = cfg.stride as i64;
    let mut h = g.node(
        "Conv",
        "conv0",
        &[&x, &w, &b],
        &[
            (
                "kernel_shape",
                Attr::Ints(vec![cfg.kernel[0] as i64, cfg.kernel[1] as i64]),
            ),
            ("strides", Attr::Ints(vec![s, s])),
            (
                "pads",
                Attr::Ints(vec![t as i64, l as i64, bo as i64, r as i64]),
            ),
        ],
    );
    h = g.node("Relu", "conv0/Relu", &[&h], &[]);
    for i in 1..=cfg.blocks {
        let (w, b) = conv(&mut g, &format!("dw{i}"), false)?;
        h = g.node(
            "Conv",
            &format!("dw{i}"),
            &[&h, &w, &b],
            &[
                ("kernel_shape", Attr::Ints(vec![3, 3])),
                ("pads", Attr::Ints(vec![1, 1, 1, 1])),
                ("group", Attr::Int(c as i64)),
            ],
        );
        h = g.node("Relu", &format!("dw{i}/Relu"), &[&h], &[]);
        let (w, b) = conv(&mut g, &format!("pw{i}"), false)?;
        h = g.node(
            "Conv",
            &format!("pw{i}"),
            &[&h, &w, &b],
            &[("kernel_shape", Attr::Ints(vec![1, 1]))],
        );
        h = g.node("Relu", &format!("pw{i}/Relu"), &[&h], &[]);
    }
    h = g.node("GlobalAveragePool", "gap", &[&h], &[]);
    h = g.node("Flatten", "flatten", &[&h], &[("axis", Attr::Int(1))]);
    let w = init(&mut g, "fc.weight")?;
    let b = init(&mut g, "fc.bias")?;
    let y = g.node("Gemm", "fc", &[&h, &w, &b], &[("transB", Attr::Int(1))]);
    let y = g.node("Identity", OUTPUT, &[&y], &[]);
    g.output(&y, Elem::F32, &[batch, cfg.classes]);
    Ok(g.finish(
        "ds_cnn_kws",
        opset,
        &serde_json::to_string(cfg).unwrap_or_default(),
    ))
}

/// Rewrites a QDQ model (the quantizer's output for [`export_ds_cnn`]'s graph) so that its
/// float input `input`, quantized by the first `QuantizeLinear`, becomes an **int8** input
/// with quantization `(scale, zero_point)`: the `QuantizeLinear` is removed, its scale and zero
/// point are set to the given values (the `DequantizeLinear` behind it shares them), and the
/// input's element type becomes INT8. The compiled image then takes the audio front end's
/// int8 features as they are (`edgeloop_runtime::audio::FEATURE_SCALE` /
/// `FEATURE_ZERO_POINT`), with no float input buffer on the device.
pub fn pin_int8_input(
    model: &mut pb::ModelProto,
    input: &str,
    scale: f32,
    zero_point: i8,
) -> Result<()> {
    let err = |m: String| TrainerError::Export(format!("pin int8 input '{input}': {m}"));
    let graph = model
        .graph
        .as_mut()
        .ok_or_else(|| err("the model has no graph".into()))?;
    let consumers: Vec<usize> = graph
        .node
        .iter()
        .enumerate()
        .filter(|(_, n)| n.input.iter().any(|i| i == input))
        .map(|(k, _)| k)
        .collect();
    let &[q] = consumers.as_slice() else {
        return Err(err(format!(
            "expected one consumer (a QuantizeLinear), found {}",
            consumers.len()
        )));
    };
    let qn = graph.node[q].clone();
    if qn.op_type != "QuantizeLinear" || qn.input.len() != 3 || qn.input[0] != input {
        return Err(err(format!("its consumer is {} '{}'", qn.op_type, qn.name)));
    }
    let set = |graph: &mut pb::GraphProto, name: &str, dtype: i32, raw: Vec<u8>| match graph
        .initializer
        .iter_mut()
        .find(|t| t.name == name)
    {
        Some(t) if t.data_type == dtype && t.dims.iter().product::<i64>() == 1 => {
            t.raw_data = raw;
            t.float_data.clear();
            t.int32_data.clear();
            Ok(())
        }
        _ => Err(err(format!(
            "'{name}' is not a scalar initializer of type {dtype}"
        ))),
    };
    set(
        graph,
        &qn.input[1],
        pb::tensor_proto::DataType::Float as i32,
        scale.to_le_bytes().to_vec(),
    )?;
    set(
        graph,
        &qn.input[2],
        pb::tensor_proto::DataType::Int8 as i32,
        vec![zero_point as u8],
    )?;
    let quantized = qn.output.first().cloned().unwrap_or_default();
    graph.node.remove(q);
    for n in graph.node.iter_mut() {
        for i in n.input.iter_mut() {
            if *i == quantized {
                *i = input.to_string();
            }
        }
    }
    let vi = graph
        .input
        .iter_mut()
        .find(|v| v.name == input)
        .ok_or_else(|| err("not a graph input".into()))?;
    if let Some(pb::type_proto::Value::TensorType(t)) =
        vi.r#type.as_mut().and_then(|t| t.value.as_mut())
    {
        t.elem_type = pb::tensor_proto::DataType::Int8 as i32;
        Ok(())
    } else {
        Err(err("the input has no tensor type".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::ds_cnn::{DsCnn, DsCnnConfig};
    use candle_core::{DType, Device, Tensor};
    use tract_onnx::prelude::{
        tract_ndarray, Framework, InferenceModelExt, IntoRunnable, IntoTensor, TValue, TVec,
    };

    /// tract runs the exported graph and agrees with the candle forward pass.
    #[test]
    fn export_matches_candle_in_tract() {
        let cfg = DsCnnConfig::small(5, 8, 2);
        let mut m = DsCnn::new(cfg.clone(), 4, 10.0, DType::F32).unwrap();
        m.input_norm = crate::models::ds_cnn::InputNorm {
            mean: 21.5,
            std: 6.25,
        };
        let proto = export_ds_cnn(&m, 1, 17).unwrap();
        let bytes = super::super::graph::encode(&proto);
        let model = tract_onnx::onnx()
            .model_for_read(&mut std::io::Cursor::new(bytes))
            .unwrap()
            .into_optimized()
            .unwrap()
            .into_runnable()
            .unwrap();
        let n = cfg.frames * cfg.bands;
        let x: Vec<f32> = (0..n).map(|i| ((i * 7919) % 51) as f32).collect();
        let want = m
            .forward(
                &Tensor::from_vec(x.clone(), (1, 1, cfg.frames, cfg.bands), &Device::Cpu).unwrap(),
            )
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let input: TValue = tract_ndarray::Array4::from_shape_vec((1, 1, cfg.frames, cfg.bands), x)
            .unwrap()
            .into_tensor()
            .into();
        let tv: TVec<TValue> = std::iter::once(input).collect();
        let out = model.run(tv).unwrap();
        let got: Vec<f32> = out[0]
            .to_plain_array_view::<f32>()
            .unwrap()
            .iter()
            .copied()
            .collect();
        for (a, b) in got.iter().zip(&want) {
            assert!(
                (a - b).abs() < 1e-3 * (1.0 + b.abs()),
                "{got:?} vs {want:?}"
            );
        }
    }
}
