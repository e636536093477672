//! Precision, a dimension of both search spaces: every quantizable op int8, or int8 with one
//! layer kept float (mixed precision: the quantizer leaves that layer's nodes float, the
//! compiler lowers them to f32 ops): the classification head (both tasks) or the first layer
//! (the keyword model's first convolution).

use std::collections::HashSet;

use edgeloop_quantize::OnnxModel;
use serde::{Deserialize, Serialize};

use crate::error::{Result, SelectError};

/// How a candidate's image is quantized.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// Every quantizable op int8 (per-channel weights, per-tensor activations).
    #[default]
    Int8,
    /// int8 except the classification head (the text models' `classifier/MatMul` and
    /// `classifier/Add`, the keyword model's `fc` Gemm), kept f32.
    MixedHead,
    /// int8 except the first layer (the keyword model's `conv0` convolution and its ReLU),
    /// kept f32; the int8 input is dequantized in front of it. Keyword model only.
    MixedFirst,
}

impl Precision {
    /// Short name used in candidate names (`int8`, `mixed`).
    pub fn short(self) -> &'static str {
        match self {
            Precision::Int8 => "int8",
            Precision::MixedHead => "mixed",
            Precision::MixedFirst => "mixed-first",
        }
    }

    /// Parses `int8` or `mixed` / `mixed-head`.
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "int8" => Ok(Precision::Int8),
            "mixed" | "mixed-head" | "mixed_head" => Ok(Precision::MixedHead),
            "mixed-first" | "mixed_first" => Ok(Precision::MixedFirst),
            o => Err(SelectError::Config(format!(
                "unknown precision '{o}' (int8, mixed-head or mixed-first)"
            ))),
        }
    }
}

/// Names of the nodes of `model` that `precision` keeps float, for a model whose
/// classification head is the layer named `head` and whose first layer is named `first`
/// (a layer's nodes are `layer` or `layer/...`; `None`: the model has no such variant).
pub fn float_nodes(
    model: &OnnxModel,
    precision: Precision,
    head: &str,
    first: Option<&str>,
) -> HashSet<String> {
    let layer = match precision {
        Precision::Int8 => return HashSet::new(),
        Precision::MixedHead => head,
        Precision::MixedFirst => match first {
            Some(f) => f,
            None => return HashSet::new(),
        },
    };
    let prefix = format!("{layer}/");
    model
        .graph()
        .node
        .iter()
        .filter(|n| n.name == layer || n.name.starts_with(&prefix))
        .map(|n| n.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse() {
        assert_eq!(Precision::parse(" INT8 ").unwrap(), Precision::Int8);
        assert_eq!(Precision::parse("mixed").unwrap(), Precision::MixedHead);
        assert!(Precision::parse("fp16").is_err());
        assert_eq!(
            Precision::parse("mixed-first").unwrap(),
            Precision::MixedFirst
        );
        assert_eq!(Precision::default(), Precision::Int8);
        assert_eq!(
            serde_json::to_string(&Precision::MixedHead).unwrap(),
            "\"mixed_head\""
        );
    }
}
