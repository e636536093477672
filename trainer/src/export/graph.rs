//! A small ONNX graph builder over the protobuf types of `tract_onnx::pb`.

use prost::Message;
use tract_onnx::pb;
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_proto::DataType;

/// Element types used by the exporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    /// f32.
    F32,
    /// i64.
    I64,
}

impl Elem {
    fn code(self) -> i32 {
        match self {
            Elem::F32 => DataType::Float as i32,
            Elem::I64 => DataType::Int64 as i32,
        }
    }
}

/// An attribute value.
#[derive(Debug, Clone)]
pub enum Attr {
    /// Integer.
    Int(i64),
    /// Float.
    Float(f32),
    /// Integers.
    Ints(Vec<i64>),
}

/// Builds one graph: nodes in topological order (the order they are added), named
/// initializers, typed inputs and outputs.
#[derive(Debug, Default)]
pub struct GraphBuilder {
    nodes: Vec<pb::NodeProto>,
    initializers: Vec<pb::TensorProto>,
    inputs: Vec<pb::ValueInfoProto>,
    outputs: Vec<pb::ValueInfoProto>,
    counter: usize,
    names: std::collections::HashSet<String>,
}

fn value_info(name: &str, elem: Elem, dims: &[usize]) -> pb::ValueInfoProto {
    let dim = dims
        .iter()
        .map(|&d| pb::tensor_shape_proto::Dimension {
            denotation: String::new(),
            value: Some(pb::tensor_shape_proto::dimension::Value::DimValue(d as i64)),
        })
        .collect();
    pb::ValueInfoProto {
        name: name.to_string(),
        r#type: Some(pb::TypeProto {
            denotation: String::new(),
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: elem.code(),
                shape: Some(pb::TensorShapeProto { dim }),
            })),
        }),
        doc_string: String::new(),
    }
}

impl GraphBuilder {
    /// Declares a graph input.
    pub fn input(&mut self, name: &str, elem: Elem, dims: &[usize]) -> String {
        self.inputs.push(value_info(name, elem, dims));
        self.names.insert(name.to_string());
        name.to_string()
    }

    /// Declares `name` (an existing value) as a graph output.
    pub fn output(&mut self, name: &str, elem: Elem, dims: &[usize]) {
        self.outputs.push(value_info(name, elem, dims));
    }

    /// Adds an f32 initializer `name` (returned). Reusing a name returns it unchanged.
    pub fn init_f32(&mut self, name: &str, dims: &[usize], data: Vec<f32>) -> String {
        if self.names.insert(name.to_string()) {
            let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
            self.initializers.push(pb::TensorProto {
                dims: dims.iter().map(|&d| d as i64).collect(),
                data_type: Elem::F32.code(),
                name: name.to_string(),
                raw_data: raw,
                ..Default::default()
            });
        }
        name.to_string()
    }

    /// Adds an i64 initializer `name` (returned).
    pub fn init_i64(&mut self, name: &str, dims: &[usize], data: Vec<i64>) -> String {
        if self.names.insert(name.to_string()) {
            let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
            self.initializers.push(pb::TensorProto {
                dims: dims.iter().map(|&d| d as i64).collect(),
                data_type: Elem::I64.code(),
                name: name.to_string(),
                raw_data: raw,
                ..Default::default()
            });
        }
        name.to_string()
    }

    /// A scalar f32 constant (shared by value).
    pub fn scalar(&mut self, v: f32) -> String {
        let name = format!("const.{v:e}");
        self.init_f32(&name, &[], vec![v])
    }

    /// A 1-D i64 shape/axes constant (shared by value).
    pub fn ints(&mut self, v: &[i64]) -> String {
        let name = format!(
            "const.i64.{}",
            v.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join("_")
        );
        self.init_i64(&name, &[v.len()], v.to_vec())
    }

    /// Adds a node `op` named `name` with one output (`name` itself, made unique).
    pub fn node(
        &mut self,
        op: &str,
        name: &str,
        inputs: &[&str],
        attrs: &[(&str, Attr)],
    ) -> String {
        let mut out = name.to_string();
        while !self.names.insert(out.clone()) {
            self.counter += 1;
            out = format!("{name}_{}", self.counter);
        }
        let attribute = attrs
            .iter()
            .map(|(n, a)| {
                let mut p = pb::AttributeProto {
                    name: n.to_string(),
                    ..Default::default()
                };
                match a {
                    Attr::Int(i) => {
                        p.r#type = AttributeType::Int as i32;
                        p.i = *i;
                    }
                    Attr::Float(f) => {
                        p.r#type = AttributeType::Float as i32;
                        p.f = *f;
                    }
                    Attr::Ints(v) => {
                        p.r#type = AttributeType::Ints as i32;
                        p.ints = v.clone();
                    }
                }
                p
            })
            .collect();
        self.nodes.push(pb::NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            name: out.clone(),
            op_type: op.to_string(),
            domain: String::new(),
            attribute,
            doc_string: String::new(),
        });
        out
    }

    /// The finished model (IR version 8, default domain at `opset`).
    pub fn finish(self, graph_name: &str, opset: i64, doc: &str) -> pb::ModelProto {
        pb::ModelProto {
            ir_version: 8,
            opset_import: vec![pb::OperatorSetIdProto {
                domain: String::new(),
                version: opset,
            }],
            producer_name: "edgeloop-trainer".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            doc_string: doc.into(),
            graph: Some(pb::GraphProto {
                node: self.nodes,
                name: graph_name.into(),
                initializer: self.initializers,
                input: self.inputs,
                output: self.outputs,
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// Serializes a model to bytes.
pub fn encode(model: &pb::ModelProto) -> Vec<u8> {
    model.encode_to_vec()
}
