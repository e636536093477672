//! Differentiable building blocks.
//!
//! candle-nn's fused `softmax_last_dim`, `layer_norm` and `rms_norm` have no backward pass:
//! gradients silently stop at them. Everything here is built from candle primitives that all
//! carry a backward, or is a custom op with a hand-written backward ([`fake_quant`], and the
//! fused CPU kernels of [`fused`] that layer norm and the softmaxes use on f32 CPU tensors).

pub mod attention;
pub mod fake_quant;
pub mod fused;
pub(crate) mod gemm;
pub mod linear;
pub mod loss;
pub mod vmath;

use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{DType, Tensor, D};

static FUSED: AtomicBool = AtomicBool::new(true);

/// Turns the fused CPU kernels of [`fused`] on (the default) or off, process-wide; off, layer
/// norm and the softmaxes are composed from candle primitives (for benchmarks and tests that
/// compare the two).
pub fn set_fused(on: bool) {
    FUSED.store(on, Ordering::Relaxed);
}

/// Whether the fused CPU kernels are on (see [`set_fused`]).
pub fn fused_enabled() -> bool {
    FUSED.load(Ordering::Relaxed)
}

fn use_fused(x: &Tensor) -> bool {
    FUSED.load(Ordering::Relaxed) && fused::applies(x)
}

use crate::Result;

/// Softmax over the last dimension: fused on f32 CPU tensors, else from primitives (max is detached: it cancels out in the
/// gradient, so detaching it only saves work).
pub fn softmax_last(xs: &Tensor) -> Result<Tensor> {
    if use_fused(xs) {
        return Ok(xs.contiguous()?.apply_op1(fused::Softmax)?);
    }
    let max = xs.max_keepdim(D::Minus1)?.detach();
    let e = xs.broadcast_sub(&max)?.exp()?;
    let den = e.sum_keepdim(D::Minus1)?;
    Ok(e.broadcast_div(&den)?)
}

/// Log-softmax over the last dimension: fused on f32 CPU tensors, else from primitives.
pub fn log_softmax_last(xs: &Tensor) -> Result<Tensor> {
    if use_fused(xs) {
        return Ok(xs.contiguous()?.apply_op1(fused::LogSoftmax)?);
    }
    let max = xs.max_keepdim(D::Minus1)?.detach();
    let shifted = xs.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    Ok(shifted.broadcast_sub(&lse)?)
}

/// Layer normalization over the last dimension (`gamma * (x - mean) / sqrt(var + eps) + beta`,
/// biased variance as in PyTorch and ONNX `LayerNormalization`): fused on f32 CPU tensors,
/// else from primitives.
pub fn layer_norm(xs: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<Tensor> {
    if use_fused(xs) && gamma.dims() == [xs.dim(D::Minus1)?] && gamma.dims() == beta.dims() {
        let op = fused::LayerNorm { eps: eps as f32 };
        return Ok(xs
            .contiguous()?
            .apply_op3(&gamma.contiguous()?, &beta.contiguous()?, op)?);
    }
    let mean = xs.mean_keepdim(D::Minus1)?;
    let centered = xs.broadcast_sub(&mean)?;
    let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
    let inv = (var + eps)?.sqrt()?.recip()?;
    let normed = centered.broadcast_mul(&inv)?;
    Ok(normed.broadcast_mul(gamma)?.broadcast_add(beta)?)
}

/// `a @ b` with the product computed in `compute` (autocast): both sides are cast to it, the
/// result is cast back to f32. `F32` is a plain matmul. The casts have a backward, so gradients
/// reach f32 inputs as f32.
pub fn matmul_in(a: &Tensor, b: &Tensor, compute: DType) -> Result<Tensor> {
    if compute == DType::F32 {
        return Ok(a.matmul(b)?);
    }
    let y = a.to_dtype(compute)?.matmul(&b.to_dtype(compute)?)?;
    Ok(y.to_dtype(DType::F32)?)
}

/// Exact (erf) GELU: `0.5 x (1 + erf(x / sqrt 2))`: fused on f32 CPU tensors (erf to 1.5e-7),
/// else candle's `gelu_erf`.
pub fn gelu(xs: &Tensor) -> Result<Tensor> {
    if use_fused(xs) {
        return Ok(xs.contiguous()?.apply_op1(linear::Gelu)?);
    }
    Ok(xs.gelu_erf()?)
}

/// `x Wᵀ + b` for `x` `[..., in]`, `W` `[out, in]`, `b` `[out]` as one fused product on f32
/// CPU tensors; `None` where it does not apply (the caller composes it from primitives).
pub fn linear_fused(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Option<Tensor>> {
    if !(use_fused(x) && fused::applies(w) && fused::applies(b) && x.rank() >= 1) {
        return Ok(None);
    }
    Ok(Some(x.contiguous()?.apply_op3(
        &w.contiguous()?,
        &b.contiguous()?,
        linear::Linear,
    )?))
}

/// Causal multi-head attention `softmax(q kᵀ / sqrt(d) + causal) v` for `q`, `k`, `v`
/// `[B, T, C]` split into `heads` heads of `C / heads` (the heads stay interleaved in `C`):
/// one fused op on f32 CPU tensors, `None` otherwise (the caller composes it from primitives).
pub fn causal_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
) -> Result<Option<Tensor>> {
    if !(use_fused(q) && fused::applies(k) && fused::applies(v)) {
        return Ok(None);
    }
    let op = attention::CausalAttention::new(heads, q.dims())?;
    Ok(Some(q.contiguous()?.apply_op3(
        &k.contiguous()?,
        &v.contiguous()?,
        op,
    )?))
}

/// Per-position cross-entropy `-log p(target)` for `logits` `[N, V]` and `targets` `[N]` (u32).
pub fn token_nll(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    if use_fused(logits) && logits.rank() == 2 && targets.dtype() == DType::U32 {
        return Ok(logits
            .contiguous()?
            .apply_op2(&targets.contiguous()?, loss::TokenNll)?);
    }
    let logp = log_softmax_last(logits)?;
    let picked = logp.gather(&targets.unsqueeze(1)?, 1)?.squeeze(1)?;
    Ok(picked.neg()?)
}

/// Mean cross-entropy over the positions whose `weights` `[N]` (f32, 0 or 1) are non-zero.
///
/// Returns an error when no position is weighted (the mean would be undefined).
pub fn masked_cross_entropy(logits: &Tensor, targets: &Tensor, weights: &Tensor) -> Result<Tensor> {
    let nll = token_nll(logits, targets)?;
    let total = weights
        .sum_all()?
        .to_dtype(DType::F32)?
        .to_scalar::<f32>()?;
    if total <= 0.0 {
        return Err(crate::TrainerError::Data(
            "a batch has no position to compute the loss on (all masked)".into(),
        ));
    }
    Ok(((nll * weights)?.sum_all()? / total as f64)?)
}

/// Mean cross-entropy over all positions.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    Ok(token_nll(logits, targets)?.mean_all()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn rand(shape: &[usize], seed: u64) -> Tensor {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| rng.gen_range(-2.0..2.0)).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn softmax_matches_candle_fused() {
        let x = rand(&[3, 5, 7], 1);
        let ours = softmax_last(&x).unwrap();
        let fused = candle_nn::ops::softmax_last_dim(&x).unwrap();
        let d = (ours - fused).unwrap().abs().unwrap().max_all().unwrap();
        assert!(d.to_scalar::<f32>().unwrap() < 1e-6);
    }

    #[test]
    fn layer_norm_matches_candle_fused() {
        let x = rand(&[4, 6, 16], 2);
        let g = rand(&[16], 3);
        let b = rand(&[16], 4);
        let ours = layer_norm(&x, &g, &b, 1e-5).unwrap();
        let fused = candle_nn::ops::layer_norm(&x, &g, &b, 1e-5).unwrap();
        let d = (ours - fused).unwrap().abs().unwrap().max_all().unwrap();
        assert!(d.to_scalar::<f32>().unwrap() < 1e-5);
    }

    /// The primitive layer norm carries gradients to its input, gamma and beta, and they agree
    /// with central finite differences.
    #[test]
    fn layer_norm_gradient_matches_finite_differences() {
        let x = Var::from_tensor(&rand(&[2, 8], 5)).unwrap();
        let g = Var::from_tensor(&rand(&[8], 6)).unwrap();
        let b = Var::from_tensor(&rand(&[8], 7)).unwrap();
        let w = rand(&[2, 8], 8);
        let f = |x: &Tensor, g: &Tensor, b: &Tensor| -> Tensor {
            (layer_norm(x, g, b, 1e-5).unwrap() * &w)
                .unwrap()
                .sum_all()
                .unwrap()
        };
        let grads = f(x.as_tensor(), g.as_tensor(), b.as_tensor())
            .backward()
            .unwrap();
        for (var, which) in [(&x, 0), (&g, 1), (&b, 2)] {
            let grad: Vec<f32> = grads
                .get(var.as_tensor())
                .expect("gradient present")
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let base: Vec<f32> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            for i in [0, 3, base.len() - 1] {
                let eps = 1e-2f32;
                let mut up = base.clone();
                up[i] += eps;
                let mut dn = base.clone();
                dn[i] -= eps;
                let mk = |v: Vec<f32>| {
                    Tensor::from_vec(v, var.as_tensor().shape(), &Device::Cpu).unwrap()
                };
                let eval = |t: Tensor| -> f32 {
                    let out = match which {
                        0 => f(&t, g.as_tensor(), b.as_tensor()),
                        1 => f(x.as_tensor(), &t, b.as_tensor()),
                        _ => f(x.as_tensor(), g.as_tensor(), &t),
                    };
                    out.to_scalar::<f32>().unwrap()
                };
                let fd = (eval(mk(up)) - eval(mk(dn))) / (2.0 * eps);
                assert!(
                    (fd - grad[i]).abs() < 2e-2 * (1.0 + fd.abs()),
                    "tensor {which} index {i}: finite difference {fd} vs autograd {}",
                    grad[i]
                );
            }
        }
    }

    #[test]
    fn masked_cross_entropy_ignores_unweighted_positions() {
        let logits = rand(&[4, 5], 9);
        let t = Tensor::new(&[1u32, 2, 3, 4], &Device::Cpu).unwrap();
        let w = Tensor::new(&[1f32, 0., 1., 0.], &Device::Cpu).unwrap();
        let m = masked_cross_entropy(&logits, &t, &w)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let nll: Vec<f32> = token_nll(&logits, &t).unwrap().to_vec1().unwrap();
        assert!((m - (nll[0] + nll[2]) / 2.0).abs() < 1e-6);
        let zero = Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap();
        assert!(masked_cross_entropy(&logits, &t, &zero).is_err());
    }
}
