//! Host-side tensors of the compiler: initializers, `Constant` nodes and folded values, in any of
//! the element types ONNX models use for weights, quantization parameters and shapes.

use tract_onnx::pb::{tensor_proto::DataType, AttributeProto, NodeProto, TensorProto};

use crate::error::{Error, Result};

/// Element type a host tensor had in the ONNX model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    /// float32 (or float64, narrowed).
    F32,
    /// int8.
    I8,
    /// uint8.
    U8,
    /// int32.
    I32,
    /// int64.
    I64,
    /// bool.
    Bool,
}

impl Elem {
    /// From an ONNX `DataType` code.
    pub fn from_onnx(code: i32) -> Option<Elem> {
        Some(match DataType::try_from(code).ok()? {
            DataType::Float | DataType::Double => Elem::F32,
            DataType::Int8 => Elem::I8,
            DataType::Uint8 => Elem::U8,
            DataType::Int32 => Elem::I32,
            DataType::Int64 => Elem::I64,
            DataType::Bool => Elem::Bool,
            _ => return None,
        })
    }

    /// Whether values of this type are integers.
    pub fn is_int(self) -> bool {
        self != Elem::F32
    }
}

/// Quantization of a constant that came through `DequantizeLinear`: its integer values and
/// parameters (per tensor, or per channel along `axis`).
#[derive(Debug, Clone, PartialEq)]
pub struct QConst {
    /// Integer values as stored in the model.
    pub values: Vec<i64>,
    /// Integer element type of `values`.
    pub elem: Elem,
    /// Scales: one, or one per channel.
    pub scales: Vec<f32>,
    /// Zero points: one, or one per channel.
    pub zero_points: Vec<i64>,
    /// Channel axis when per channel.
    pub axis: Option<usize>,
}

/// A constant tensor known at compile time. Values are kept as f32 (float tensors) or i64
/// (integer tensors); `elem` remembers the model's type.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Dimensions (empty for a scalar).
    pub shape: Vec<usize>,
    /// Element type in the model.
    pub elem: Elem,
    /// Float values (when `elem` is F32).
    pub f: Vec<f32>,
    /// Integer values (when `elem` is an integer type).
    pub i: Vec<i64>,
    /// Set when the value is `DequantizeLinear` of a constant.
    pub quant: Option<QConst>,
}

impl HostTensor {
    /// A float tensor.
    pub fn f32(shape: Vec<usize>, f: Vec<f32>) -> HostTensor {
        HostTensor {
            shape,
            elem: Elem::F32,
            f,
            i: Vec::new(),
            quant: None,
        }
    }

    /// An integer tensor of type `elem`.
    pub fn int(shape: Vec<usize>, elem: Elem, i: Vec<i64>) -> HostTensor {
        HostTensor {
            shape,
            elem,
            f: Vec::new(),
            i,
            quant: None,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True when there is no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values as f32 (integers converted).
    pub fn as_f32(&self) -> Vec<f32> {
        if self.elem == Elem::F32 {
            self.f.clone()
        } else {
            self.i.iter().map(|&v| v as f32).collect()
        }
    }

    /// Values as i64 (floats truncated).
    pub fn as_i64(&self) -> Vec<i64> {
        if self.elem == Elem::F32 {
            self.f.iter().map(|&v| v as i64).collect()
        } else {
            self.i.clone()
        }
    }

    /// The single value of a one-element tensor, as f32.
    pub fn scalar_f32(&self) -> Option<f32> {
        (self.len() == 1).then(|| self.as_f32()[0])
    }

    /// The single value of a one-element tensor, as i64.
    pub fn scalar_i64(&self) -> Option<i64> {
        (self.len() == 1).then(|| self.as_i64()[0])
    }
}

fn chunks<const N: usize>(raw: &[u8], n: usize, name: &str) -> Result<Vec<[u8; N]>> {
    if raw.len() != n.saturating_mul(N) {
        return Err(Error::Model(format!(
            "tensor '{name}': raw_data has {} bytes, its shape needs {}",
            raw.len(),
            n.saturating_mul(N)
        )));
    }
    Ok(raw
        .chunks_exact(N)
        .map(|c| {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            a
        })
        .collect())
}

/// Decodes a `TensorProto` (initializer, `Constant` value or test data file).
pub fn from_proto(t: &TensorProto) -> Result<HostTensor> {
    if t.data_location == Some(1) || !t.external_data.is_empty() {
        return Err(Error::Model(format!(
            "tensor '{}' uses external data, which is not supported",
            t.name
        )));
    }
    let shape: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::Model(format!("tensor '{}' has a negative dimension", t.name)))?;
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| Error::Model(format!("tensor '{}': shape overflows", t.name)))?;
    let raw = &t.raw_data;
    let use_raw = !raw.is_empty() || n == 0;
    let dt = DataType::try_from(t.data_type).unwrap_or(DataType::Undefined);
    let check = |len: usize| -> Result<()> {
        if len != n {
            return Err(Error::Model(format!(
                "tensor '{}' has {len} values, its shape {shape:?} needs {n}",
                t.name
            )));
        }
        Ok(())
    };
    let out = match dt {
        DataType::Float => {
            let v: Vec<f32> = if use_raw && t.float_data.is_empty() {
                chunks::<4>(raw, n, &t.name)?
                    .into_iter()
                    .map(f32::from_le_bytes)
                    .collect()
            } else {
                t.float_data.clone()
            };
            check(v.len())?;
            HostTensor::f32(shape, v)
        }
        DataType::Double => {
            let v: Vec<f32> = if use_raw && t.double_data.is_empty() {
                chunks::<8>(raw, n, &t.name)?
                    .into_iter()
                    .map(|b| f64::from_le_bytes(b) as f32)
                    .collect()
            } else {
                t.double_data.iter().map(|&x| x as f32).collect()
            };
            check(v.len())?;
            HostTensor::f32(shape, v)
        }
        DataType::Int8 | DataType::Uint8 | DataType::Bool => {
            let elem = match dt {
                DataType::Int8 => Elem::I8,
                DataType::Uint8 => Elem::U8,
                _ => Elem::Bool,
            };
            let v: Vec<i64> = if use_raw && t.int32_data.is_empty() {
                raw.iter()
                    .map(|&b| {
                        if elem == Elem::I8 {
                            b as i8 as i64
                        } else {
                            b as i64
                        }
                    })
                    .collect()
            } else {
                t.int32_data.iter().map(|&x| x as i64).collect()
            };
            check(v.len())?;
            HostTensor::int(shape, elem, v)
        }
        DataType::Int32 => {
            let v: Vec<i64> = if use_raw && t.int32_data.is_empty() {
                chunks::<4>(raw, n, &t.name)?
                    .into_iter()
                    .map(|b| i32::from_le_bytes(b) as i64)
                    .collect()
            } else {
                t.int32_data.iter().map(|&x| x as i64).collect()
            };
            check(v.len())?;
            HostTensor::int(shape, Elem::I32, v)
        }
        DataType::Int64 => {
            let v: Vec<i64> = if use_raw && t.int64_data.is_empty() {
                chunks::<8>(raw, n, &t.name)?
                    .into_iter()
                    .map(i64::from_le_bytes)
                    .collect()
            } else {
                t.int64_data.clone()
            };
            check(v.len())?;
            HostTensor::int(shape, Elem::I64, v)
        }
        other => {
            return Err(Error::Model(format!(
                "tensor '{}' has element type {other:?}, which the compiler does not read",
                t.name
            )))
        }
    };
    Ok(out)
}

/// The value of a `Constant` node (`value`, `value_float(s)`, `value_int(s)`).
pub fn constant_node(n: &NodeProto) -> Option<Result<HostTensor>> {
    let a = n.attribute.first()?;
    Some(match a.name.as_str() {
        "value" => match a.t.as_ref() {
            Some(t) => from_proto(t),
            None => Err(Error::Model(format!("Constant '{}' has no tensor", n.name))),
        },
        "value_float" => Ok(HostTensor::f32(vec![], vec![a.f])),
        "value_floats" => Ok(HostTensor::f32(vec![a.floats.len()], a.floats.clone())),
        "value_int" => Ok(HostTensor::int(vec![], Elem::I64, vec![a.i])),
        "value_ints" => Ok(HostTensor::int(
            vec![a.ints.len()],
            Elem::I64,
            a.ints.clone(),
        )),
        other => Err(Error::Model(format!(
            "Constant '{}' uses attribute '{other}', which the compiler does not read",
            n.name
        ))),
    })
}

/// Integer-list attribute.
pub fn attr_ints(n: &NodeProto, name: &str) -> Option<Vec<i64>> {
    find(n, name).map(|a| a.ints.clone())
}

/// String attribute.
pub fn attr_str(n: &NodeProto, name: &str) -> Option<String> {
    find(n, name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
}

/// Whether the node carries attribute `name`.
pub fn has_attr(n: &NodeProto, name: &str) -> bool {
    find(n, name).is_some()
}

fn find<'a>(n: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    n.attribute.iter().find(|a| a.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_int8_uint8_and_int32_initializers() {
        let t = TensorProto {
            name: "w".into(),
            dims: vec![3],
            data_type: DataType::Int8 as i32,
            raw_data: vec![0xFF, 0x01, 0x80],
            ..Default::default()
        };
        let h = from_proto(&t).unwrap();
        assert_eq!((h.elem, h.i.clone()), (Elem::I8, vec![-1, 1, -128]));
        let t = TensorProto {
            data_type: DataType::Uint8 as i32,
            ..t
        };
        assert_eq!(from_proto(&t).unwrap().i, vec![255, 1, 128]);
        let t = TensorProto {
            name: "b".into(),
            dims: vec![2],
            data_type: DataType::Int32 as i32,
            int32_data: vec![-5, 7],
            ..Default::default()
        };
        assert_eq!(from_proto(&t).unwrap().i, vec![-5, 7]);
    }

    #[test]
    fn wrong_lengths_are_errors_naming_the_tensor() {
        let t = TensorProto {
            name: "bad".into(),
            dims: vec![4],
            data_type: DataType::Float as i32,
            raw_data: vec![0; 12],
            ..Default::default()
        };
        let e = from_proto(&t).unwrap_err().to_string();
        assert!(e.contains("bad"), "{e}");
    }
}
