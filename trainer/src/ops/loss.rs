//! Fused per-position cross-entropy on the CPU with a hand-written backward.
//!
//! Composed from candle ops, `-log softmax(logits)[target]` is a log-softmax, a gather, a
//! squeeze and a negation, and the gather's backward scatters into a fresh zero tensor. Here it
//! is one pass forward (`logsumexp - logit[target]` per row) and one backward
//! (`(softmax - onehot) · dnll` per row, the softmax recomputed).

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor};

use super::fused::slice;

/// `nll[i] = -log softmax(logits[i])[targets[i]]` for `logits` `[N, V]` (f32) and `targets`
/// `[N]` (u32, each below `V`: an error otherwise).
#[derive(Debug, Clone, Copy)]
pub struct TokenNll;

/// Backward of [`TokenNll`] from the logits, the targets and `dnll`: `dlogits`.
#[derive(Debug, Clone, Copy)]
struct TokenNllBackward;

fn targets<'a>(
    s: &'a CpuStorage,
    l: &Layout,
    n: usize,
    v: usize,
) -> candle_core::Result<&'a [u32]> {
    let data = s.as_slice::<u32>()?;
    let t = match l.contiguous_offsets() {
        Some((a, b)) => &data[a..b],
        None => candle_core::bail!("fused-token-nll: targets must be contiguous"),
    };
    if t.len() != n {
        candle_core::bail!("fused-token-nll: {} targets for {n} rows", t.len())
    }
    if let Some(bad) = t.iter().find(|&&x| x as usize >= v) {
        candle_core::bail!("fused-token-nll: target {bad} is out of range for {v} classes")
    }
    Ok(t)
}

fn rows(l: &Layout, what: &str) -> candle_core::Result<(usize, usize)> {
    match l.shape().dims() {
        &[n, v] if v > 0 => Ok((n, v)),
        d => candle_core::bail!("{what}: logits of shape {d:?}, expected [N, V]"),
    }
}

/// `(max, log Σ exp(x - max))` of a row.
fn max_lse(row: &[f32]) -> (f32, f32) {
    let max = row.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
    (max, row.iter().map(|v| (v - max).exp()).sum::<f32>().ln())
}

/// `-log softmax(row)[target]` (`target < row.len()`).
pub(crate) fn nll_row(row: &[f32], target: usize) -> f32 {
    let (max, lse) = max_lse(row);
    max + lse - row[target]
}

/// The gradient of `g · nll_row(row, target)` with respect to `row`, written to `d`:
/// `(softmax(row) - onehot(target)) · g`.
pub(crate) fn nll_row_grad(row: &[f32], target: usize, g: f32, d: &mut [f32]) {
    let (max, lse) = max_lse(row);
    let shift = max + lse;
    for (d, &xv) in d.iter_mut().zip(row) {
        *d = (xv - shift).exp() * g;
    }
    d[target] -= g;
}

/// [`nll_row`] and [`nll_row_grad`] in one pass, the row overwritten by its gradient; returns
/// the nll.
pub(crate) fn nll_row_and_grad_in_place(row: &mut [f32], target: usize, g: f32) -> f32 {
    let (max, lse) = max_lse(row);
    let shift = max + lse;
    let nll = shift - row[target];
    for v in row.iter_mut() {
        *v = (*v - shift).exp() * g;
    }
    row[target] -= g;
    nll
}

impl CustomOp2 for TokenNll {
    fn name(&self) -> &'static str {
        "fused-token-nll"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, v) = rows(l1, self.name())?;
        let x = slice(s1, l1, self.name())?;
        let t = targets(s2, l2, n, v)?;
        let nll: Vec<f32> = x
            .chunks_exact(v)
            .zip(t)
            .map(|(row, &ti)| nll_row(row, ti as usize))
            .collect();
        Ok((CpuStorage::F32(nll), Shape::from((n,))))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let d = logits.apply_op3_no_bwd(targets, &grad.contiguous()?, &TokenNllBackward)?;
        Ok((Some(d), None))
    }
}

impl CustomOp3 for TokenNllBackward {
    fn name(&self) -> &'static str {
        "fused-token-nll-backward"
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
        let (n, v) = rows(l1, self.name())?;
        let x = slice(s1, l1, self.name())?;
        let t = targets(s2, l2, n, v)?;
        let g = slice(s3, l3, self.name())?;
        if g.len() != n {
            candle_core::bail!(
                "fused-token-nll-backward: {} gradients for {n} rows",
                g.len()
            )
        }
        let mut dx = vec![0f32; n * v];
        for (((row, dr), &ti), &gi) in x.chunks_exact(v).zip(dx.chunks_exact_mut(v)).zip(t).zip(g) {
            nll_row_grad(row, ti as usize, gi, dr);
        }
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var, D};
    use rand::{Rng, SeedableRng};

    /// Forward values and the logits' gradient equal log-softmax + gather from primitives on
    /// random values; an out-of-range target is an error.
    #[test]
    fn token_nll_matches_the_primitive_form_and_checks_targets() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        for &(n, v) in &[(7usize, 5usize), (64, 97), (1, 1)] {
            let x: Vec<f32> = (0..n * v).map(|_| rng.gen_range(-6.0..6.0)).collect();
            let t: Vec<u32> = (0..n).map(|_| rng.gen_range(0..v as u32)).collect();
            let w: Vec<f32> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let x = Var::from_vec(x, (n, v), &Device::Cpu).unwrap();
            let t = Tensor::from_vec(t, n, &Device::Cpu).unwrap();
            let w = Tensor::from_vec(w, n, &Device::Cpu).unwrap();
            let fused = x.as_tensor().apply_op2(&t, TokenNll).unwrap();
            let max = x.max_keepdim(D::Minus1).unwrap().detach();
            let sh = x.broadcast_sub(&max).unwrap();
            let lse = sh
                .exp()
                .unwrap()
                .sum_keepdim(D::Minus1)
                .unwrap()
                .log()
                .unwrap();
            let logp = sh.broadcast_sub(&lse).unwrap();
            let prim = logp
                .gather(&t.unsqueeze(1).unwrap(), 1)
                .unwrap()
                .squeeze(1)
                .unwrap()
                .neg()
                .unwrap();
            let d = (&fused - &prim).unwrap().abs().unwrap().max(0).unwrap();
            assert!(d.to_scalar::<f32>().unwrap() < 1e-5, "forward ({n},{v})");
            let gf = (&fused * &w)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let gp = (&prim * &w).unwrap().sum_all().unwrap().backward().unwrap();
            let d = (gf.get(&x).unwrap() - gp.get(&x).unwrap())
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(d < 1e-5, "dlogits ({n},{v}): {d}");
        }
        let x = Tensor::zeros((2, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
        let bad = Tensor::new(&[0u32, 3], &Device::Cpu).unwrap();
        assert!(x.apply_op2(&bad, TokenNll).is_err());
    }
}
