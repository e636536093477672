//! Fused CPU kernels with hand-written backward passes: layer norm, softmax and log-softmax
//! over the last dimension.
//!
//! Composed from candle primitives, a layer norm is ten tensor ops forward and about twenty
//! backward, each a pass over memory and a fresh allocation; here it is one pass forward and one
//! backward. Each op is a candle custom op (so autograd records it) whose `bwd` applies a second
//! custom op. They run on contiguous f32 CPU tensors; [`super`] falls back to the primitive forms
//! on other devices and dtypes, and the tests below hold the two forms to each other.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Shape, Tensor};

pub(crate) fn slice<'a>(
    s: &'a CpuStorage,
    l: &Layout,
    what: &str,
) -> candle_core::Result<&'a [f32]> {
    let data = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("{what}: needs a contiguous f32 tensor"),
    }
}

pub(crate) fn last_dim(l: &Layout, what: &str) -> candle_core::Result<usize> {
    match l.shape().dims().last() {
        Some(&c) if c > 0 => Ok(c),
        _ => candle_core::bail!("{what}: needs a non-empty last dimension"),
    }
}

/// Applies `f(row, out_row)` to every last-dimension row of a contiguous f32 tensor.
fn map_rows(
    s: &CpuStorage,
    l: &Layout,
    what: &str,
    f: impl Fn(&[f32], &mut [f32]),
) -> candle_core::Result<(CpuStorage, Shape)> {
    let c = last_dim(l, what)?;
    let x = slice(s, l, what)?;
    let mut y = vec![0f32; x.len()];
    for (xr, yr) in x.chunks_exact(c).zip(y.chunks_exact_mut(c)) {
        f(xr, yr);
    }
    Ok((CpuStorage::F32(y), l.shape().clone()))
}

/// Applies `f(y_row, g_row, out_row)` row by row to two same-shaped contiguous f32 tensors
/// (a forward output and its gradient).
fn map_row_pairs(
    (s1, l1): (&CpuStorage, &Layout),
    (s2, l2): (&CpuStorage, &Layout),
    what: &str,
    f: impl Fn(&[f32], &[f32], &mut [f32]),
) -> candle_core::Result<(CpuStorage, Shape)> {
    let c = last_dim(l1, what)?;
    let y = slice(s1, l1, what)?;
    let g = slice(s2, l2, what)?;
    if g.len() != y.len() {
        candle_core::bail!("{what}: mismatched shapes")
    }
    let mut dx = vec![0f32; y.len()];
    for ((yr, gr), dr) in y
        .chunks_exact(c)
        .zip(g.chunks_exact(c))
        .zip(dx.chunks_exact_mut(c))
    {
        f(yr, gr, dr);
    }
    Ok((CpuStorage::F32(dx), l1.shape().clone()))
}

/// Whether the fused kernels apply to `x` (f32 on the CPU).
pub fn applies(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == candle_core::DType::F32
}

/// Layer norm over the last dimension: `(x - mean) / sqrt(var + eps) * gamma + beta`.
#[derive(Debug, Clone, Copy)]
pub struct LayerNorm {
    /// Added to the (biased) variance.
    pub eps: f32,
}

/// Backward of [`LayerNorm`]: from `x`, `gamma` and the output gradient, the packed gradients
/// `[rows + 2, C]`: rows of `dx`, then `dgamma`, then `dbeta`.
#[derive(Debug, Clone, Copy)]
struct LayerNormBackward {
    eps: f32,
}

use super::vmath::row_stats;

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "fused-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let c = last_dim(l1, self.name())?;
        let x = slice(s1, l1, self.name())?;
        let g = slice(s2, l2, self.name())?;
        let b = slice(s3, l3, self.name())?;
        if g.len() != c || b.len() != c {
            candle_core::bail!(
                "fused-layer-norm: gamma/beta of {} for rows of {c}",
                g.len()
            )
        }
        let mut y = vec![0f32; x.len()];
        for (xr, yr) in x.chunks_exact(c).zip(y.chunks_exact_mut(c)) {
            let (mean, inv) = row_stats(xr, self.eps);
            for i in 0..c {
                yr[i] = (xr[i] - mean) * inv * g[i] + b[i];
            }
        }
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let c = gamma.elem_count();
        let rows = x.elem_count() / c.max(1);
        let packed = x.apply_op3_no_bwd(
            gamma,
            &grad.contiguous()?,
            &LayerNormBackward { eps: self.eps },
        )?;
        let dx = packed.narrow(0, 0, rows)?.reshape(x.shape())?;
        let dg = packed.narrow(0, rows, 1)?.reshape(gamma.shape())?;
        let db = packed.narrow(0, rows + 1, 1)?.reshape(gamma.shape())?;
        Ok((Some(dx), Some(dg), Some(db)))
    }
}

impl CustomOp3 for LayerNormBackward {
    fn name(&self) -> &'static str {
        "fused-layer-norm-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let c = last_dim(l1, self.name())?;
        let x = slice(s1, l1, self.name())?;
        let g = slice(s2, l2, self.name())?;
        let dy = slice(s3, l3, self.name())?;
        if dy.len() != x.len() || g.len() != c {
            candle_core::bail!("fused-layer-norm-backward: mismatched shapes")
        }
        let rows = x.len() / c;
        let mut out = vec![0f32; (rows + 2) * c];
        let (dx_all, tail) = out.split_at_mut(rows * c);
        let (dgamma, dbeta) = tail.split_at_mut(c);
        let mut xhat = vec![0f32; c];
        for ((xr, dyr), dxr) in x
            .chunks_exact(c)
            .zip(dy.chunks_exact(c))
            .zip(dx_all.chunks_exact_mut(c))
        {
            super::vmath::layer_norm_backward_row(
                xr, g, dyr, self.eps, &mut xhat, dxr, dgamma, dbeta,
            );
        }
        Ok((CpuStorage::F32(out), Shape::from((rows + 2, c))))
    }
}

/// Softmax over the last dimension.
#[derive(Debug, Clone, Copy)]
pub struct Softmax;

/// Backward of [`Softmax`] from its output `y` and the output gradient `g`:
/// `y * (g - sum(g * y))` per row.
#[derive(Debug, Clone, Copy)]
struct SoftmaxBackward;

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "fused-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        map_rows(s, l, self.name(), |xr, yr| {
            let max = xr.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
            let mut sum = 0f32;
            for (y, x) in yr.iter_mut().zip(xr) {
                *y = (x - max).exp();
                sum += *y;
            }
            let inv = 1.0 / sum;
            yr.iter_mut().for_each(|v| *v *= inv);
        })
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, g: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(
            y.apply_op2_no_bwd(&g.contiguous()?, &SoftmaxBackward)?,
        ))
    }
}

impl CustomOp2 for SoftmaxBackward {
    fn name(&self) -> &'static str {
        "fused-softmax-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        map_row_pairs((s1, l1), (s2, l2), self.name(), |yr, gr, dr| {
            let dot: f32 = yr.iter().zip(gr).map(|(a, b)| a * b).sum();
            for ((d, y), g) in dr.iter_mut().zip(yr).zip(gr) {
                *d = y * (g - dot);
            }
        })
    }
}

/// Log-softmax over the last dimension.
#[derive(Debug, Clone, Copy)]
pub struct LogSoftmax;

/// Backward of [`LogSoftmax`] from its output and the output gradient `g`:
/// `g - exp(out) * sum(g)` per row.
#[derive(Debug, Clone, Copy)]
struct LogSoftmaxBackward;

impl CustomOp1 for LogSoftmax {
    fn name(&self) -> &'static str {
        "fused-log-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        map_rows(s, l, self.name(), |xr, yr| {
            let max = xr.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
            let lse = xr.iter().map(|v| (v - max).exp()).sum::<f32>().ln();
            for (y, x) in yr.iter_mut().zip(xr) {
                *y = x - max - lse;
            }
        })
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, g: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(
            y.apply_op2_no_bwd(&g.contiguous()?, &LogSoftmaxBackward)?,
        ))
    }
}

impl CustomOp2 for LogSoftmaxBackward {
    fn name(&self) -> &'static str {
        "fused-log-softmax-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        map_row_pairs((s1, l1), (s2, l2), self.name(), |yr, gr, dr| {
            let sum: f32 = gr.iter().sum();
            for ((d, y), g) in dr.iter_mut().zip(yr).zip(gr) {
                *d = g - y.exp() * sum;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var, D};
    use rand::{Rng, SeedableRng};

    fn rand(shape: &[usize], seed: u64, scale: f32) -> Tensor {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| rng.gen_range(-scale..scale)).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    fn primitive_layer_norm(x: &Tensor, g: &Tensor, b: &Tensor, eps: f64) -> Tensor {
        let mean = x.mean_keepdim(D::Minus1).unwrap();
        let c = x.broadcast_sub(&mean).unwrap();
        let var = c.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
        let inv = (var + eps).unwrap().sqrt().unwrap().recip().unwrap();
        c.broadcast_mul(&inv)
            .unwrap()
            .broadcast_mul(g)
            .unwrap()
            .broadcast_add(b)
            .unwrap()
    }

    /// Forward values and every input gradient of the fused layer norm equal the primitive
    /// form's (which candle differentiates itself) on random shapes and values.
    #[test]
    fn layer_norm_matches_the_primitive_form_forward_and_backward() {
        for (i, shape) in [[3usize, 5, 7], [2, 4, 128], [1, 9, 33]].iter().enumerate() {
            let c = shape[2];
            let x = Var::from_tensor(&rand(shape, i as u64, 3.0)).unwrap();
            let g = Var::from_tensor(&rand(&[c], 10 + i as u64, 2.0)).unwrap();
            let b = Var::from_tensor(&rand(&[c], 20 + i as u64, 1.0)).unwrap();
            let w = rand(shape, 30 + i as u64, 1.0); // a random downstream weighting
            let fused = x
                .as_tensor()
                .apply_op3(g.as_tensor(), b.as_tensor(), LayerNorm { eps: 1e-5 })
                .unwrap();
            let prim = primitive_layer_norm(x.as_tensor(), g.as_tensor(), b.as_tensor(), 1e-5);
            assert!(max_diff(&fused, &prim) < 1e-5, "forward {shape:?}");
            let gf = (&fused * &w)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let gp = (&prim * &w).unwrap().sum_all().unwrap().backward().unwrap();
            for (name, v) in [("x", &x), ("gamma", &g), ("beta", &b)] {
                let (a, p) = (gf.get(v).unwrap(), gp.get(v).unwrap());
                let tol = 1e-4
                    * (1.0
                        + p.abs()
                            .unwrap()
                            .max_all()
                            .unwrap()
                            .to_scalar::<f32>()
                            .unwrap());
                assert!(
                    max_diff(a, p) < tol,
                    "d{name} {shape:?}: {}",
                    max_diff(a, p)
                );
            }
        }
    }

    #[test]
    fn softmax_and_log_softmax_match_the_primitive_forms() {
        for (i, shape) in [[2usize, 3, 5], [4, 2, 64], [1, 1, 97]].iter().enumerate() {
            let x = Var::from_tensor(&rand(shape, 40 + i as u64, 8.0)).unwrap();
            let w = rand(shape, 50 + i as u64, 1.0);
            let max = x.max_keepdim(D::Minus1).unwrap().detach();
            let e = x.broadcast_sub(&max).unwrap().exp().unwrap();
            let prim_sm = e.broadcast_div(&e.sum_keepdim(D::Minus1).unwrap()).unwrap();
            let prim_ls = prim_sm.log().unwrap();
            let sm = x.as_tensor().apply_op1(Softmax).unwrap();
            let ls = x.as_tensor().apply_op1(LogSoftmax).unwrap();
            assert!(max_diff(&sm, &prim_sm) < 1e-6);
            assert!(max_diff(&ls, &prim_ls) < 1e-4);
            for (fused, prim) in [(&sm, &prim_sm), (&ls, &prim_ls)] {
                let gf = (fused * &w).unwrap().sum_all().unwrap().backward().unwrap();
                let gp = (prim * &w).unwrap().sum_all().unwrap().backward().unwrap();
                let d = max_diff(gf.get(&x).unwrap(), gp.get(&x).unwrap());
                assert!(d < 1e-4, "{shape:?}: {d}");
            }
        }
    }

    #[test]
    fn non_contiguous_input_is_an_error_not_a_misread() {
        let x = rand(&[4, 6], 1, 1.0).t().unwrap();
        assert!(x.apply_op1(Softmax).is_err());
    }
}
