//! A small host tensor (f32 or i64, row-major) and its conversion to and from ONNX `TensorProto`.

use tract_onnx::pb::{tensor_proto::DataType, TensorProto};

use crate::error::{Error, Result};

/// Element storage of a [`Tensor`].
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    /// 32-bit floats.
    F32(Vec<f32>),
    /// 64-bit integers (token ids, shapes, indices).
    I64(Vec<i64>),
}

/// A dense row-major tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Elements, `shape.iter().product()` of them.
    pub data: TensorData,
}

impl Tensor {
    /// An f32 tensor; errors when the element count does not match the shape.
    pub fn f32(shape: Vec<usize>, data: Vec<f32>) -> Result<Self> {
        check_len(&shape, data.len())?;
        Ok(Tensor {
            shape,
            data: TensorData::F32(data),
        })
    }

    /// An i64 tensor; errors when the element count does not match the shape.
    pub fn i64(shape: Vec<usize>, data: Vec<i64>) -> Result<Self> {
        check_len(&shape, data.len())?;
        Ok(Tensor {
            shape,
            data: TensorData::I64(data),
        })
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match &self.data {
            TensorData::F32(v) => v.len(),
            TensorData::I64(v) => v.len(),
        }
    }

    /// True when the tensor has no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The f32 elements, if this is an f32 tensor.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            TensorData::F32(v) => Some(v),
            TensorData::I64(_) => None,
        }
    }

    /// ONNX element type name, for messages.
    pub fn type_name(&self) -> &'static str {
        match self.data {
            TensorData::F32(_) => "float32",
            TensorData::I64(_) => "int64",
        }
    }
}

fn check_len(shape: &[usize], len: usize) -> Result<()> {
    let n =
        element_count(shape).ok_or_else(|| Error::Model(format!("shape {shape:?} overflows")))?;
    if n != len {
        return Err(Error::Model(format!(
            "shape {shape:?} needs {n} elements, got {len}"
        )));
    }
    Ok(())
}

/// Product of dimensions, `None` on overflow.
pub fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

fn proto_shape(t: &TensorProto) -> Result<Vec<usize>> {
    t.dims
        .iter()
        .map(|&d| {
            usize::try_from(d)
                .map_err(|_| Error::Model(format!("initializer '{}' has negative dim {d}", t.name)))
        })
        .collect()
}

fn raw_chunks<const N: usize>(t: &TensorProto, n: usize) -> Result<Vec<[u8; N]>> {
    if t.raw_data.len() != n.saturating_mul(N) {
        return Err(Error::Model(format!(
            "initializer '{}': raw_data has {} bytes, shape needs {}",
            t.name,
            t.raw_data.len(),
            n.saturating_mul(N)
        )));
    }
    Ok(t.raw_data
        .chunks_exact(N)
        .map(|c| {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            a
        })
        .collect())
}

/// Decodes an initializer. Supports float, double (narrowed), int32/int64 (widened to i64).
/// External data and other types are refused with the initializer's name.
pub fn from_proto(t: &TensorProto) -> Result<Tensor> {
    if t.data_location == Some(1) || !t.external_data.is_empty() {
        return Err(Error::Model(format!(
            "initializer '{}' uses external data, which is not supported (save the model with all tensors inside)",
            t.name
        )));
    }
    let shape = proto_shape(t)?;
    let n = element_count(&shape)
        .ok_or_else(|| Error::Model(format!("initializer '{}': shape overflows", t.name)))?;
    let raw = !t.raw_data.is_empty() || n == 0;
    let dt = DataType::try_from(t.data_type).unwrap_or(DataType::Undefined);
    let tensor = match dt {
        DataType::Float => {
            let v = if raw && t.float_data.is_empty() {
                raw_chunks::<4>(t, n)?
                    .into_iter()
                    .map(f32::from_le_bytes)
                    .collect()
            } else {
                t.float_data.clone()
            };
            Tensor::f32(shape, v)
        }
        DataType::Double => {
            let v = if raw && t.double_data.is_empty() {
                raw_chunks::<8>(t, n)?
                    .into_iter()
                    .map(|b| f64::from_le_bytes(b) as f32)
                    .collect()
            } else {
                t.double_data.iter().map(|&x| x as f32).collect()
            };
            Tensor::f32(shape, v)
        }
        DataType::Int64 => {
            let v = if raw && t.int64_data.is_empty() {
                raw_chunks::<8>(t, n)?
                    .into_iter()
                    .map(i64::from_le_bytes)
                    .collect()
            } else {
                t.int64_data.clone()
            };
            Tensor::i64(shape, v)
        }
        DataType::Int32 => {
            let v = if raw && t.int32_data.is_empty() {
                raw_chunks::<4>(t, n)?
                    .into_iter()
                    .map(|b| i32::from_le_bytes(b) as i64)
                    .collect()
            } else {
                t.int32_data.iter().map(|&x| x as i64).collect()
            };
            Tensor::i64(shape, v)
        }
        other => {
            return Err(Error::Model(format!(
                "initializer '{}' has element type {other:?}; only float, double, int32 and int64 are supported in an fp32 model",
                t.name
            )))
        }
    };
    tensor.map_err(|e| Error::Model(format!("initializer '{}': {e}", t.name)))
}

fn dims(shape: &[usize]) -> Vec<i64> {
    shape.iter().map(|&d| d as i64).collect()
}

/// An f32 initializer (raw little-endian data).
pub fn f32_proto(name: &str, shape: &[usize], v: &[f32]) -> TensorProto {
    TensorProto {
        name: name.to_string(),
        dims: dims(shape),
        data_type: DataType::Float as i32,
        raw_data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// An int8 initializer.
pub fn i8_proto(name: &str, shape: &[usize], v: &[i8]) -> TensorProto {
    TensorProto {
        name: name.to_string(),
        dims: dims(shape),
        data_type: DataType::Int8 as i32,
        raw_data: v.iter().map(|&x| x as u8).collect(),
        ..Default::default()
    }
}

/// An int32 initializer.
pub fn i32_proto(name: &str, shape: &[usize], v: &[i32]) -> TensorProto {
    TensorProto {
        name: name.to_string(),
        dims: dims(shape),
        data_type: DataType::Int32 as i32,
        raw_data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// An int64 initializer.
pub fn i64_proto(name: &str, shape: &[usize], v: &[i64]) -> TensorProto {
    TensorProto {
        name: name.to_string(),
        dims: dims(shape),
        data_type: DataType::Int64 as i32,
        raw_data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_round_trip_through_proto() {
        let p = f32_proto("w", &[2, 2], &[1.0, -2.5, 3.0, 0.0]);
        let t = from_proto(&p).unwrap();
        assert_eq!(t.shape, vec![2, 2]);
        assert_eq!(t.as_f32().unwrap(), &[1.0, -2.5, 3.0, 0.0]);
    }

    #[test]
    fn truncated_raw_data_is_an_error_naming_the_initializer() {
        let mut p = f32_proto("w", &[2, 2], &[1.0, 2.0, 3.0, 4.0]);
        p.raw_data.truncate(10);
        let e = from_proto(&p).unwrap_err().to_string();
        assert!(e.contains("'w'") && e.contains("10 bytes"), "{e}");
    }

    #[test]
    fn external_data_is_refused() {
        let mut p = f32_proto("w", &[1], &[1.0]);
        p.data_location = Some(1);
        assert!(from_proto(&p).unwrap_err().to_string().contains("external"));
    }
}
