//! Fake int8 quantization for quantization-aware training, with a straight-through backward.
//!
//! The semantics are exactly those of the runtime and of ONNX `QuantizeLinear` /
//! `DequantizeLinear` (see DESIGN.md, "int8 semantics"):
//! - weights: symmetric per output channel (row of a `[out, in]` matrix), zero point 0, values
//!   in `[-127, 127]`, scale `max|w_row| / 127`;
//! - activations: asymmetric per tensor, values in `[-128, 127]`, with the range widened to
//!   contain 0, `scale = (max - min) / 255` and `zero_point = round(-128 - min / scale)`.
//!
//! Rounding is half to even, as ONNX `QuantizeLinear` does.
//! On CPU both are custom ops ([`FakeQuantWeight`], [`FakeQuantActivation`]); on other devices the
//! same arithmetic is composed from primitives with a detached residual (ties then round away
//! from zero, the only difference).

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};

use crate::Result;

/// Rounds half to even (banker's rounding), as ONNX `QuantizeLinear`.
pub fn round_half_even(x: f32) -> f32 {
    x.round_ties_even()
}

/// Quantization parameters of an activation tensor observed in `[min, max]`.
///
/// Returns `(scale, zero_point)`. A degenerate range (both ends 0) gets scale 1.
pub fn activation_qparams(min: f32, max: f32) -> (f32, i32) {
    let lo = min.min(0.0);
    let hi = max.max(0.0);
    let scale = if hi > lo { (hi - lo) / 255.0 } else { 1.0 };
    let zp = round_half_even(-128.0 - lo / scale).clamp(-128.0, 127.0) as i32;
    (scale, zp)
}

/// Per-row symmetric scales of a `[rows, cols]` weight matrix (`max|row| / 127`, 1 for a zero row).
pub fn weight_scales(w: &[f32], cols: usize) -> Vec<f32> {
    w.chunks(cols.max(1))
        .map(|row| {
            let m = row.iter().fold(0f32, |a, v| a.max(v.abs()));
            if m > 0.0 {
                m / 127.0
            } else {
                1.0
            }
        })
        .collect()
}

/// Fake-quantizes a `[rows, cols]` weight matrix per row (output channel), symmetric int8.
#[derive(Debug, Clone, Copy)]
pub struct FakeQuantWeight;

/// Fake-quantizes an activation per tensor with a fixed scale and zero point.
#[derive(Debug, Clone, Copy)]
pub struct FakeQuantActivation {
    /// Quantization step.
    pub scale: f32,
    /// Integer that represents 0.0, in `[-128, 127]`.
    pub zero_point: i32,
}

fn contiguous_f32<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    let data = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("fake quantization needs a contiguous f32 tensor"),
    }
}

impl CustomOp1 for FakeQuantWeight {
    fn name(&self) -> &'static str {
        "fake-quant-weight"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let dims = l.shape().dims();
        if dims.len() != 2 {
            candle_core::bail!("fake-quant-weight expects [out, in], got {:?}", dims)
        }
        let w = contiguous_f32(s, l)?;
        let cols = dims[1];
        let scales = weight_scales(w, cols);
        let out: Vec<f32> = w
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let s = scales[i / cols.max(1)];
                round_half_even(v / s).clamp(-127.0, 127.0) * s
            })
            .collect();
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    /// Straight-through: the rounding is treated as identity (the symmetric range always
    /// covers every weight, so nothing is clipped).
    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad.clone()))
    }
}

impl FakeQuantActivation {
    fn bounds(&self) -> (f32, f32) {
        (
            (-128 - self.zero_point) as f32 * self.scale,
            (127 - self.zero_point) as f32 * self.scale,
        )
    }
}

impl CustomOp1 for FakeQuantActivation {
    fn name(&self) -> &'static str {
        "fake-quant-activation"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s, l)?;
        let zp = self.zero_point as f32;
        let out: Vec<f32> = x
            .iter()
            .map(|&v| (round_half_even(v / self.scale + zp).clamp(-128.0, 127.0) - zp) * self.scale)
            .collect();
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    /// Clipped straight-through: gradient 1 inside the representable range, 0 outside.
    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let (lo, hi) = self.bounds();
        let inside = arg.ge(lo as f64)?.mul(&arg.le(hi as f64)?)?;
        Ok(Some(grad.mul(&inside.to_dtype(grad.dtype())?)?))
    }
}

/// Fake-quantizes a `[out, in]` weight per output channel (symmetric int8, STE backward).
pub fn fake_quant_weight(w: &Tensor) -> Result<Tensor> {
    if w.device().is_cpu() {
        return Ok(w.contiguous()?.apply_op1(FakeQuantWeight)?);
    }
    let scale = (w.abs()?.max_keepdim(1)?.detach() / 127.0)?;
    let scale = scale.maximum(f32::MIN_POSITIVE as f64)?;
    let q = w.broadcast_div(&scale)?.round()?.clamp(-127f32, 127f32)?;
    let fq = q.broadcast_mul(&scale)?;
    Ok((w + (fq - w)?.detach())?)
}

/// Fake-quantizes an activation per tensor (asymmetric int8, clipped STE backward).
pub fn fake_quant_activation(x: &Tensor, scale: f32, zero_point: i32) -> Result<Tensor> {
    let op = FakeQuantActivation { scale, zero_point };
    if x.device().is_cpu() {
        return Ok(x.contiguous()?.apply_op1(op)?);
    }
    let (lo, hi) = op.bounds();
    let zp = zero_point as f64;
    let q = ((x / scale as f64)? + zp)?
        .round()?
        .clamp(-128f32, 127f32)?;
    let fq = ((q - zp)? * scale as f64)?;
    let clipped = x.clamp(lo, hi)?;
    Ok((&clipped + (fq - &clipped)?.detach())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn rounding_is_half_to_even() {
        for (x, r) in [
            (0.5, 0.0),
            (1.5, 2.0),
            (2.5, 2.0),
            (-0.5, 0.0),
            (-1.5, -2.0),
            (-2.5, -2.0),
            (0.4, 0.0),
            (1.6, 2.0),
            (-1.6, -2.0),
        ] {
            assert_eq!(round_half_even(x), r, "{x}");
        }
    }

    #[test]
    fn activation_qparams_cover_range_and_zero() {
        let (s, zp) = activation_qparams(-1.0, 3.0);
        assert!((s - 4.0 / 255.0).abs() < 1e-9);
        assert_eq!(zp, -64); // -128 + 1/(4/255) = -64.25 → -64
        let (s, zp) = activation_qparams(0.5, 2.0); // widened to contain 0
        assert!((s - 2.0 / 255.0).abs() < 1e-9);
        assert_eq!(zp, -128);
    }

    #[test]
    fn weight_fake_quant_values_and_straight_through_grad() {
        let w = Var::from_vec(
            vec![0.5f32, -1.27, 0.3, 0.0, 0.0, 0.0, 2.54, 1.0, -0.01],
            (3, 3),
            &Device::Cpu,
        )
        .unwrap();
        let fq = fake_quant_weight(w.as_tensor()).unwrap();
        let v: Vec<Vec<f32>> = fq.to_vec2().unwrap();
        // row 0: scale 0.01 → exact multiples of 0.01
        assert!(
            (v[0][0] - 0.5).abs() < 1e-6
                && (v[0][1] + 1.27).abs() < 1e-6
                && (v[0][2] - 0.3).abs() < 1e-6
        );
        assert_eq!(v[1], vec![0.0, 0.0, 0.0]);
        // row 2: scale 0.02 → 1.0 = 50 steps, -0.01 = -0.5 steps → 0 (half to even)
        assert!((v[2][1] - 1.0).abs() < 1e-6);
        assert_eq!(v[2][2], 0.0);
        let g = Tensor::new(&[[1f32, 2., 3.], [4., 5., 6.], [7., 8., 9.]], &Device::Cpu).unwrap();
        let grads = (fq * &g).unwrap().sum_all().unwrap().backward().unwrap();
        let gw: Vec<Vec<f32>> = grads.get(w.as_tensor()).unwrap().to_vec2().unwrap();
        assert_eq!(gw, g.to_vec2::<f32>().unwrap());
    }

    #[test]
    fn activation_fake_quant_values_and_clipped_grad() {
        let (scale, zp) = activation_qparams(-1.0, 1.0);
        let x = Var::from_vec(vec![-2.0f32, -0.9, 0.0, 0.3, 0.9, 5.0], 6, &Device::Cpu).unwrap();
        let y = fake_quant_activation(x.as_tensor(), scale, zp).unwrap();
        let v: Vec<f32> = y.to_vec1().unwrap();
        let q = |f: f32| {
            (round_half_even(f / scale + zp as f32).clamp(-128.0, 127.0) - zp as f32) * scale
        };
        for (got, inp) in v.iter().zip([-2.0f32, -0.9, 0.0, 0.3, 0.9, 5.0]) {
            assert_eq!(*got, q(inp));
        }
        assert_eq!(v[2], 0.0, "zero is exactly representable");
        let grads = y.sum_all().unwrap().backward().unwrap();
        let g: Vec<f32> = grads.get(x.as_tensor()).unwrap().to_vec1().unwrap();
        assert_eq!(g, vec![0.0, 1.0, 1.0, 1.0, 1.0, 0.0]);
    }
}
