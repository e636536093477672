//! ONNX model access on top of the protobuf types of `tract_onnx::pb` (decoded and encoded with prost).

pub mod ops;

use std::collections::HashMap;

use prost::Message;
use tract_onnx::pb::{
    tensor_proto::DataType, tensor_shape_proto::dimension, type_proto, AttributeProto, GraphProto,
    ModelProto, NodeProto, TensorProto, ValueInfoProto,
};

use crate::error::{Error, Result};
use crate::tensor::{self, Tensor};

/// Smallest default-domain opset accepted (and therefore emitted: the output keeps the input's opset).
pub const MIN_OPSET: i64 = 17;
/// Largest default-domain opset accepted. Opsets 17–22 share the int8 per-axis
/// QuantizeLinear/DequantizeLinear semantics this crate emits.
pub const MAX_OPSET: i64 = 22;

/// A decoded ONNX model.
#[derive(Debug, Clone)]
pub struct OnnxModel {
    /// The protobuf.
    pub proto: ModelProto,
}

/// Element type of a graph input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElemType {
    /// float32
    F32,
    /// int64
    I64,
}

/// A graph input with its resolved static shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputSpec {
    /// Tensor name.
    pub name: String,
    /// Static shape.
    pub shape: Vec<usize>,
    /// Element type.
    pub elem: ElemType,
}

impl OnnxModel {
    /// Decodes a model and checks the basics (graph present, default-domain opset in range).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let proto = ModelProto::decode(bytes)
            .map_err(|e| Error::Model(format!("not an ONNX protobuf: {e}")))?;
        let m = OnnxModel { proto };
        if m.proto.graph.is_none() {
            return Err(Error::Model("model has no graph".into()));
        }
        m.validate_graph()?;
        let opset = m.opset("");
        if !(MIN_OPSET..=MAX_OPSET).contains(&opset) {
            return Err(Error::Model(format!(
                "default-domain opset {opset} is outside the supported range {MIN_OPSET}..={MAX_OPSET}"
            )));
        }
        Ok(m)
    }

    /// Checks that every tensor a node or the graph output reads is defined before use (a graph
    /// input, an initializer or an earlier node's output), once.
    pub fn validate_graph(&self) -> Result<()> {
        let g = self.graph();
        let mut defined: std::collections::HashSet<&str> = g
            .input
            .iter()
            .map(|i| i.name.as_str())
            .chain(g.initializer.iter().map(|t| t.name.as_str()))
            .collect();
        for (i, n) in g.node.iter().enumerate() {
            for t in n.input.iter().filter(|t| !t.is_empty()) {
                if !defined.contains(t.as_str()) {
                    return Err(Error::Model(format!(
                        "node '{}' ({}) reads '{t}', which no graph input, initializer or earlier node defines (nodes must be topologically sorted)",
                        node_label(n, i),
                        n.op_type
                    )));
                }
            }
            for t in n.output.iter().filter(|t| !t.is_empty()) {
                if !defined.insert(t.as_str()) {
                    return Err(Error::Model(format!(
                        "node '{}' ({}) redefines tensor '{t}'",
                        node_label(n, i),
                        n.op_type
                    )));
                }
            }
        }
        if let Some(o) = g.output.iter().find(|o| !defined.contains(o.name.as_str())) {
            return Err(Error::Model(format!(
                "graph output '{}' is not defined",
                o.name
            )));
        }
        if g.output.is_empty() {
            return Err(Error::Model("graph has no output".into()));
        }
        Ok(())
    }

    /// Reads and decodes a model file.
    pub fn from_path(path: &std::path::Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(&bytes)
    }

    /// Encodes the model.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.proto.encode_to_vec()
    }

    /// The graph (present by construction).
    pub fn graph(&self) -> &GraphProto {
        self.proto.graph.as_ref().expect("checked in from_bytes")
    }

    /// The graph, mutably.
    pub fn graph_mut(&mut self) -> &mut GraphProto {
        self.proto.graph.as_mut().expect("checked in from_bytes")
    }

    /// Opset version imported for `domain` ("" or "ai.onnx" for the default domain), 0 if none.
    pub fn opset(&self, domain: &str) -> i64 {
        let norm = |d: &str| {
            if d == "ai.onnx" {
                String::new()
            } else {
                d.to_string()
            }
        };
        let want = norm(domain);
        self.proto
            .opset_import
            .iter()
            .find(|o| norm(&o.domain) == want)
            .map(|o| o.version)
            .unwrap_or(0)
    }

    /// Decoded initializers by name.
    pub fn initializers(&self) -> Result<HashMap<String, Tensor>> {
        self.graph()
            .initializer
            .iter()
            .map(|t| Ok((t.name.clone(), tensor::from_proto(t)?)))
            .collect()
    }

    /// Graph inputs that are not initializers, with shapes resolved from the model or `overrides`
    /// (`name → shape`). Errors list every input whose shape stays unknown.
    pub fn inputs(&self, overrides: &HashMap<String, Vec<usize>>) -> Result<Vec<InputSpec>> {
        let inits: std::collections::HashSet<&str> = self
            .graph()
            .initializer
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        let mut out = Vec::new();
        let mut unknown = Vec::new();
        for vi in &self.graph().input {
            if inits.contains(vi.name.as_str()) {
                continue;
            }
            let Some(type_proto::Value::TensorType(tt)) =
                vi.r#type.as_ref().and_then(|t| t.value.as_ref())
            else {
                return Err(Error::Model(format!("input '{}' is not a tensor", vi.name)));
            };
            let elem = match DataType::try_from(tt.elem_type) {
                Ok(DataType::Float) => ElemType::F32,
                Ok(DataType::Int64) => ElemType::I64,
                _ => {
                    return Err(Error::Model(format!(
                    "input '{}' has element type {}; only float32 and int64 inputs are supported",
                    vi.name, tt.elem_type
                )))
                }
            };
            let shape = if let Some(s) = overrides.get(&vi.name) {
                Some(s.clone())
            } else {
                tt.shape.as_ref().and_then(|s| {
                    s.dim
                        .iter()
                        .map(|d| match d.value {
                            Some(dimension::Value::DimValue(v)) if v >= 0 => Some(v as usize),
                            _ => None,
                        })
                        .collect::<Option<Vec<_>>>()
                })
            };
            match shape {
                Some(shape) => out.push(InputSpec {
                    name: vi.name.clone(),
                    shape,
                    elem,
                }),
                None => unknown.push(vi.name.clone()),
            }
        }
        if !unknown.is_empty() {
            return Err(Error::Config(format!(
                "input(s) without a static shape: {}; give them with --input-shape NAME=D0,D1,...",
                unknown.join(", ")
            )));
        }
        for name in overrides.keys() {
            if !out.iter().any(|i| &i.name == name) {
                return Err(Error::Config(format!(
                    "--input-shape names '{name}', which is not a model input"
                )));
            }
        }
        Ok(out)
    }

    /// Names of the graph outputs.
    pub fn output_names(&self) -> Vec<String> {
        self.graph().output.iter().map(|o| o.name.clone()).collect()
    }

    /// A copy whose graph outputs also list `extra` tensors (untyped), for reading intermediate
    /// activations with tract or ONNX Runtime.
    pub fn with_extra_outputs(&self, extra: &[String]) -> OnnxModel {
        let mut m = self.clone();
        let g = m.graph_mut();
        let existing: std::collections::HashSet<String> =
            g.output.iter().map(|o| o.name.clone()).collect();
        for name in extra {
            if !existing.contains(name) {
                // Untyped: tract infers the type (some requested tensors may turn out not float).
                g.output.push(ValueInfoProto {
                    name: name.clone(),
                    ..Default::default()
                });
            }
        }
        m
    }

    /// Overrides graph input shapes (used when the user gives shapes).
    pub fn set_input_shapes(&mut self, inputs: &[InputSpec]) {
        for vi in &mut self.graph_mut().input {
            let Some(spec) = inputs.iter().find(|s| s.name == vi.name) else {
                continue;
            };
            if let Some(type_proto::Value::TensorType(tt)) =
                vi.r#type.as_mut().and_then(|t| t.value.as_mut())
            {
                tt.shape = Some(tract_onnx::pb::TensorShapeProto {
                    dim: spec
                        .shape
                        .iter()
                        .map(|&d| tract_onnx::pb::tensor_shape_proto::Dimension {
                            value: Some(dimension::Value::DimValue(d as i64)),
                            ..Default::default()
                        })
                        .collect(),
                });
            }
        }
    }
}

/// A node's display name: its name, or `#index` when empty.
pub fn node_label(node: &NodeProto, index: usize) -> String {
    if node.name.is_empty() {
        format!("#{index}")
    } else {
        node.name.clone()
    }
}

/// Finds an attribute by name.
pub fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

/// Integer attribute, or `default`.
pub fn attr_i(node: &NodeProto, name: &str, default: i64) -> i64 {
    attr(node, name).map(|a| a.i).unwrap_or(default)
}

/// Float attribute, or `default`.
pub fn attr_f(node: &NodeProto, name: &str, default: f32) -> f32 {
    attr(node, name).map(|a| a.f).unwrap_or(default)
}

/// Builds a node.
pub fn node(
    op: &str,
    name: &str,
    inputs: &[&str],
    outputs: &[&str],
    attrs: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        op_type: op.to_string(),
        name: name.to_string(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute: attrs,
        ..Default::default()
    }
}

/// An integer attribute.
pub fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: tract_onnx::pb::attribute_proto::AttributeType::Int as i32,
        i: v,
        ..Default::default()
    }
}

/// A float attribute.
pub fn attr_float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: tract_onnx::pb::attribute_proto::AttributeType::Float as i32,
        f: v,
        ..Default::default()
    }
}

/// An integer-list attribute.
pub fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: tract_onnx::pb::attribute_proto::AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..Default::default()
    }
}

/// A typed value info (float32 or int64 with static shape).
pub fn value_info(name: &str, elem: ElemType, shape: &[usize]) -> ValueInfoProto {
    let elem_type = match elem {
        ElemType::F32 => DataType::Float,
        ElemType::I64 => DataType::Int64,
    } as i32;
    ValueInfoProto {
        name: name.to_string(),
        r#type: Some(tract_onnx::pb::TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type,
                shape: Some(tract_onnx::pb::TensorShapeProto {
                    dim: shape
                        .iter()
                        .map(|&d| tract_onnx::pb::tensor_shape_proto::Dimension {
                            value: Some(dimension::Value::DimValue(d as i64)),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// True when `t` is a TensorProto of an element type the quantizer treats as float.
pub fn is_float(t: &TensorProto) -> bool {
    t.data_type == DataType::Float as i32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testmodels;

    #[test]
    fn models_round_trip_through_bytes() {
        let m = testmodels::cnn();
        let back = OnnxModel::from_bytes(&m.to_bytes()).unwrap();
        assert_eq!(back.proto, m.proto);
        assert_eq!(back.opset(""), 17);
        assert_eq!(back.opset("ai.onnx"), 17);
    }

    #[test]
    fn malformed_graphs_are_errors_naming_the_problem() {
        let base = testmodels::mlp();
        type Edit = Box<dyn Fn(&mut OnnxModel)>;
        let cases: Vec<(Edit, &str)> = vec![
            (
                Box::new(|m| m.graph_mut().output[0].name = "ghost".into()),
                "graph output 'ghost'",
            ),
            (
                Box::new(|m| m.graph_mut().node[1].input[0] = "nowhere".into()),
                "reads 'nowhere'",
            ),
            (Box::new(|m| m.graph_mut().node.swap(0, 1)), "topologically"),
            (
                Box::new(|m| {
                    let o = m.graph().node[0].output[0].clone();
                    m.graph_mut().node[1].output[0] = o;
                }),
                "redefines",
            ),
            (
                Box::new(|m| m.proto.opset_import[0].version = 11),
                "opset 11",
            ),
            (Box::new(|m| m.proto.graph = None), "no graph"),
        ];
        for (edit, want) in cases {
            let mut m = base.clone();
            edit(&mut m);
            let e = OnnxModel::from_bytes(&m.to_bytes())
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{e} (wanted {want})");
        }
        // Random corruption of the bytes never panics.
        let bytes = base.to_bytes();
        let mut s = 99u64;
        for _ in 0..300 {
            let mut b = bytes.clone();
            for _ in 0..3 {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
                let i = (s >> 33) as usize % b.len();
                b[i] ^= (s >> 13) as u8;
            }
            if let Ok(m) = OnnxModel::from_bytes(&b) {
                let _ = m.initializers();
                let _ = m.inputs(&HashMap::new());
            }
        }
    }

    #[test]
    fn symbolic_input_dims_need_a_shape_from_the_user() {
        let mut m = testmodels::mlp();
        if let Some(type_proto::Value::TensorType(tt)) = m.graph_mut().input[0]
            .r#type
            .as_mut()
            .and_then(|t| t.value.as_mut())
        {
            tt.shape.as_mut().unwrap().dim[0].value =
                Some(dimension::Value::DimParam("batch".into()));
        }
        let e = m.inputs(&HashMap::new()).unwrap_err().to_string();
        assert!(e.contains("--input-shape") && e.contains("x"), "{e}");
        let shapes: HashMap<String, Vec<usize>> = [("x".to_string(), vec![1, 16])].into();
        assert_eq!(m.inputs(&shapes).unwrap()[0].shape, vec![1, 16]);
        let wrong: HashMap<String, Vec<usize>> = [("nope".to_string(), vec![1])].into();
        assert!(m.inputs(&wrong).is_err());
    }
}
