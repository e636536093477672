//! Fused causal multi-head attention on the CPU with a hand-written backward.
//!
//! Composed from candle ops, attention is three head splits (transpose + copy), a key
//! transpose, two batched products, a scale, a mask add, a softmax and a head merge, each with
//! its own backward. Here `q`, `k`, `v` `[B, T, C]` (heads interleaved in `C`, as the
//! projections produce them) go in and `y` `[B, T, C]` comes out; per (batch, head) the scores,
//! the causal softmax and both products run on strided views without copies. The backward
//! recomputes the probabilities (no state is kept between the passes).

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};

use super::fused::slice;
use super::gemm::{matmul, View};
use super::vmath;
use crate::{Result, TrainerError};

/// Causal attention over `heads` heads with scores scaled by `1/sqrt(C / heads)`.
#[derive(Debug, Clone, Copy)]
pub struct CausalAttention {
    heads: usize,
    scale: f32,
}

/// Backward of [`CausalAttention`] from `q`, `k`, `v` and `dy` (here packed as one `[4, B, T,
/// C]` tensor, the op takes three inputs): `[3, B, T, C]`, the gradients of `q`, `k`, `v`.
#[derive(Debug, Clone, Copy)]
struct CausalAttentionBackward(CausalAttention);

impl CausalAttention {
    /// The op for inputs of shape `dims` (`[B, T, C]`, `C` divisible by `heads`).
    pub fn new(heads: usize, dims: &[usize]) -> Result<Self> {
        let &[_, _, c] = dims else {
            return Err(TrainerError::Data(format!(
                "attention input of shape {dims:?}, expected [batch, time, channels]"
            )));
        };
        if heads == 0 || c % heads != 0 || c == 0 {
            return Err(TrainerError::config(
                "n_head",
                format!("{c} channels do not split into {heads} heads"),
            ));
        }
        Ok(Self {
            heads,
            scale: 1.0 / ((c / heads) as f32).sqrt(),
        })
    }

    fn dims(&self, l: &Layout, what: &str) -> candle_core::Result<(usize, usize, usize)> {
        match l.shape().dims() {
            &[b, t, c] if c % self.heads == 0 => Ok((b, t, c)),
            d => candle_core::bail!("{what}: shape {d:?} for {} heads", self.heads),
        }
    }
}

/// One (batch, head) block of causal attention forward: the probabilities `p` (`t × t`,
/// row-major, zero above the diagonal; kept for the backward) of `q kᵀ · scale`, then
/// `y = p v`. `q`, `k`, `v` and `y` are `t × d` views (any row stride), the slices may be one.
#[allow(clippy::too_many_arguments)]
pub(crate) fn head_forward(
    scale: f32,
    (q, qv): (&[f32], View),
    (k, kv): (&[f32], View),
    (v, vv): (&[f32], View),
    p: &mut [f32],
    y: &mut [f32],
    yv: View,
) -> candle_core::Result<()> {
    causal_probs(scale, (q, qv), (k, kv), p)?;
    let t = qv.rows;
    matmul(y, yv, false, p, View::rows(0, t, t, t), v, vv)
}

/// Causal probabilities `p` (`t × t`, row-major, zero above the diagonal) of the scores
/// `q kᵀ · scale` of one (batch, head) block (`q`, `k` are `t × d` views).
pub(crate) fn causal_probs(
    scale: f32,
    (q, qv): (&[f32], View),
    (k, kv): (&[f32], View),
    p: &mut [f32],
) -> candle_core::Result<()> {
    let t = qv.rows;
    matmul(p, View::rows(0, t, t, t), false, q, qv, k, kv.t())?;
    for (i, row) in p.chunks_exact_mut(t).take(t).enumerate() {
        let (live, masked) = row.split_at_mut(i + 1);
        vmath::scaled_softmax(live, scale);
        masked.iter_mut().for_each(|v| *v = 0.0);
    }
    Ok(())
}

/// Views of one (batch, head) block's query, key and value (`t × d` each) in one slice; the
/// same views address their gradients in the gradient slice.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeadViews {
    pub q: View,
    pub k: View,
    pub v: View,
}

/// One (batch, head) block of causal attention backward from the forward's probabilities `p`
/// and the output gradient `dy` (view `dyv`): writes `dq`, `dk`, `dv` into `dqkv` at `h`'s
/// views. `dp` is `t × t` scratch.
#[allow(clippy::too_many_arguments)]
pub(crate) fn head_backward(
    scale: f32,
    qkv: &[f32],
    h: HeadViews,
    p: &[f32],
    (dy, dyv): (&[f32], View),
    dp: &mut [f32],
    dqkv: &mut [f32],
) -> candle_core::Result<()> {
    let t = h.q.rows;
    let sq = View::rows(0, t, t, t);
    // dV = Pᵀ dY; dP = dY Vᵀ
    matmul(dqkv, h.v, false, p, sq.t(), dy, dyv)?;
    matmul(dp, sq, false, dy, dyv, qkv, h.v.t())?;
    // dS = P ∘ (dP - rowsum(P ∘ dP)), times the scale (zero above the diagonal)
    for (i, (pr, dr)) in p
        .chunks_exact(t)
        .zip(dp.chunks_exact_mut(t))
        .take(t)
        .enumerate()
    {
        let live = i + 1;
        let dot: f32 = pr[..live].iter().zip(&dr[..live]).map(|(x, y)| x * y).sum();
        for (dv_, pv) in dr[..live].iter_mut().zip(&pr[..live]) {
            *dv_ = pv * (*dv_ - dot) * scale;
        }
        dr[live..].iter_mut().for_each(|v| *v = 0.0);
    }
    // dQ = dS K; dK = dSᵀ Q
    matmul(dqkv, h.q, false, dp, sq, qkv, h.k)?;
    matmul(dqkv, h.k, false, dp, sq.t(), qkv, h.q)
}

impl CustomOp3 for CausalAttention {
    fn name(&self) -> &'static str {
        "fused-causal-attention"
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
        let (b, t, c) = self.dims(l1, self.name())?;
        if l2.shape() != l1.shape() || l3.shape() != l1.shape() {
            candle_core::bail!("fused-causal-attention: q, k, v shapes differ")
        }
        let q = slice(s1, l1, self.name())?;
        let k = slice(s2, l2, self.name())?;
        let v = slice(s3, l3, self.name())?;
        let d = c / self.heads;
        let mut y = vec![0f32; b * t * c];
        let mut p = vec![0f32; t * t];
        for bi in 0..b {
            for h in 0..self.heads {
                let head = View::rows(bi * t * c + h * d, t, d, c);
                head_forward(
                    self.scale,
                    (q, head),
                    (k, head),
                    (v, head),
                    &mut p,
                    &mut y,
                    head,
                )?;
            }
        }
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let qkv = Tensor::stack(&[q, k, v], 0)?;
        let packed = qkv.apply_op2_no_bwd(&grad.contiguous()?, &CausalAttentionBackward(*self))?;
        Ok((
            Some(packed.get(0)?),
            Some(packed.get(1)?),
            Some(packed.get(2)?),
        ))
    }
}

impl candle_core::CustomOp2 for CausalAttentionBackward {
    fn name(&self) -> &'static str {
        "fused-causal-attention-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let a = self.0;
        let (b, t, c) = a.dims(l2, self.name())?;
        let n = b * t * c;
        let qkv = slice(s1, l1, self.name())?;
        let dy = slice(s2, l2, self.name())?;
        if qkv.len() != 3 * n {
            candle_core::bail!("fused-causal-attention-backward: mismatched shapes")
        }
        let d = c / a.heads;
        let mut out = vec![0f32; 3 * n];
        let mut p = vec![0f32; t * t];
        let mut dp = vec![0f32; t * t];
        for bi in 0..b {
            for h in 0..a.heads {
                let off = bi * t * c + h * d;
                let head = View::rows(off, t, d, c);
                let views = HeadViews {
                    q: head,
                    k: View {
                        offset: n + off,
                        ..head
                    },
                    v: View {
                        offset: 2 * n + off,
                        ..head
                    },
                };
                // the probabilities are recomputed (the op keeps no state between passes)
                causal_probs(a.scale, (qkv, views.q), (qkv, views.k), &mut p)?;
                head_backward(a.scale, qkv, views, &p, (dy, head), &mut dp, &mut out)?;
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((3, b, t, c))))
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

    /// Attention composed from candle primitives (split heads, scores, additive causal mask,
    /// softmax, product, merge), which candle differentiates itself.
    fn primitive(q: &Tensor, k: &Tensor, v: &Tensor, heads: usize) -> Tensor {
        let (b, t, c) = q.dims3().unwrap();
        let split = |x: &Tensor| {
            x.reshape((b, t, heads, c / heads))
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .contiguous()
                .unwrap()
        };
        let (q, k, v) = (split(q), split(k), split(v));
        let scale = 1.0 / ((c / heads) as f64).sqrt();
        let att = (q
            .matmul(&k.transpose(2, 3).unwrap().contiguous().unwrap())
            .unwrap()
            * scale)
            .unwrap();
        let mask = crate::models::layers::causal_mask(t, &Device::Cpu).unwrap();
        let att = att.broadcast_add(&mask).unwrap();
        let max = att.max_keepdim(D::Minus1).unwrap().detach();
        let e = att.broadcast_sub(&max).unwrap().exp().unwrap();
        let p = e.broadcast_div(&e.sum_keepdim(D::Minus1).unwrap()).unwrap();
        p.matmul(&v)
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .reshape((b, t, c))
            .unwrap()
    }

    /// Forward values and the gradients of q, k and v equal the primitive form's on random
    /// shapes and values (including one head, odd sizes and a single position).
    #[test]
    fn causal_attention_matches_the_primitive_form_forward_and_backward() {
        for (i, &(b, t, c, h)) in [
            (2usize, 5usize, 12usize, 3usize),
            (3, 16, 32, 4),
            (1, 1, 8, 2),
            (2, 9, 7, 1),
        ]
        .iter()
        .enumerate()
        {
            let s = 200 + 10 * i as u64;
            let q = Var::from_tensor(&rand(&[b, t, c], s, 2.0)).unwrap();
            let k = Var::from_tensor(&rand(&[b, t, c], s + 1, 2.0)).unwrap();
            let v = Var::from_tensor(&rand(&[b, t, c], s + 2, 1.0)).unwrap();
            let up = rand(&[b, t, c], s + 3, 1.0);
            let op = CausalAttention::new(h, &[b, t, c]).unwrap();
            let fused = q
                .as_tensor()
                .apply_op3(k.as_tensor(), v.as_tensor(), op)
                .unwrap();
            let prim = primitive(q.as_tensor(), k.as_tensor(), v.as_tensor(), h);
            assert!(max_diff(&fused, &prim) < 1e-5, "forward {:?}", (b, t, c, h));
            let gf = (&fused * &up)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let gp = (&prim * &up)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            for (name, var) in [("q", &q), ("k", &k), ("v", &v)] {
                let (a, p) = (gf.get(var).unwrap(), gp.get(var).unwrap());
                let d = max_diff(a, p);
                assert!(d < 1e-4, "d{name} {:?}: {d}", (b, t, c, h));
            }
        }
    }

    #[test]
    fn bad_shapes_are_errors() {
        assert!(CausalAttention::new(3, &[2, 4, 8]).is_err());
        assert!(CausalAttention::new(0, &[2, 4, 8]).is_err());
        assert!(CausalAttention::new(2, &[4, 8]).is_err());
    }
}
