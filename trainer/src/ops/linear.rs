//! Fused CPU kernels with hand-written backward passes for the MLP and projections: a linear
//! layer with its bias (`y = x Wᵀ + b`, one product) and exact GELU.
//!
//! Composed from candle ops, a linear layer is a transpose, a product and a broadcast add, and
//! its backward a strided transpose-add of the weight gradient and a reduction for the bias;
//! GELU's backward is a dozen elementwise ops. Here each is one op forward and one backward.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Shape, Tensor};

use super::fused::{last_dim, slice};
use super::gemm::{matmul, View};
use super::vmath;

/// `y = x Wᵀ + b` for `x` `[..., in]`, `W` `[out, in]`, `b` `[out]` (contiguous f32): `y` is
/// `[..., out]`.
#[derive(Debug, Clone, Copy)]
pub struct Linear;

/// Backward of [`Linear`] from `x`, `W` and `dy`: packed `[N·in + out·in + out]`, the gradients
/// of `x`, `W` and `b` one after the other.
#[derive(Debug, Clone, Copy)]
struct LinearBackward;

/// `(rows, last)` of `[..., last]`: all leading dimensions count as rows.
fn rows_last(l: &Layout, what: &str) -> candle_core::Result<(usize, usize)> {
    match l.shape().dims().split_last() {
        Some((&last, lead)) => Ok((lead.iter().product(), last)),
        None => candle_core::bail!("{what}: needs at least one dimension"),
    }
}

fn dims2(l: &Layout, what: &str) -> candle_core::Result<(usize, usize)> {
    match l.shape().dims() {
        &[a, b] => Ok((a, b)),
        d => candle_core::bail!("{what}: expected a matrix, got shape {d:?}"),
    }
}

/// `y = x Wᵀ (+ b) (+ residual)` over slices: `x` `[n, inp]`, `W` `[out, inp]`, `b` `[out]`,
/// `residual` and `y` `[n, out]` (row-major). The residual and bias are the product's initial
/// value, so adding them costs no extra pass.
pub(crate) fn linear_forward(
    y: &mut [f32],
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    residual: Option<&[f32]>,
    (n, inp, out): (usize, usize, usize),
) -> candle_core::Result<()> {
    if y.len() != n * out || residual.is_some_and(|r| r.len() != n * out) {
        candle_core::bail!("linear: output or residual of the wrong length")
    }
    let accumulate = match (b, residual) {
        (Some(b), r) => {
            if b.len() != out {
                candle_core::bail!("linear: bias of {} for {out} outputs", b.len())
            }
            vmath::fill_rows_plus_bias(y, r, b);
            true
        }
        (None, Some(r)) => {
            y.copy_from_slice(r);
            true
        }
        (None, None) => false,
    };
    matmul(
        y,
        View::rows(0, n, out, out),
        accumulate,
        x,
        View::rows(0, n, inp, inp),
        w,
        View::rows(0, out, inp, inp).t(),
    )
}

/// Backward of [`linear_forward`] from `dy` `[n, out]`, `x` and `W`: `dx = dy W` (when
/// asked), `dW = dyᵀ x`, `db = Σ_rows dy` (when asked), each written (not accumulated).
pub(crate) fn linear_backward(
    dy: &[f32],
    x: &[f32],
    w: &[f32],
    (n, inp, out): (usize, usize, usize),
    dx: Option<&mut [f32]>,
    dw: &mut [f32],
    db: Option<&mut [f32]>,
) -> candle_core::Result<()> {
    let dyv = View::rows(0, n, out, out);
    if let Some(dx) = dx {
        matmul(
            dx,
            View::rows(0, n, inp, inp),
            false,
            dy,
            dyv,
            w,
            View::rows(0, out, inp, inp),
        )?;
    }
    matmul(
        dw,
        View::rows(0, out, inp, inp),
        false,
        dy,
        dyv.t(),
        x,
        View::rows(0, n, inp, inp),
    )?;
    if let Some(db) = db {
        if db.len() != out || dy.len() != n * out {
            candle_core::bail!("linear backward: bias gradient of the wrong length")
        }
        db.iter_mut().for_each(|v| *v = 0.0);
        vmath::add_column_sums(dy, db);
    }
    Ok(())
}

impl CustomOp3 for Linear {
    fn name(&self) -> &'static str {
        "fused-linear"
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
        let (n, inp) = rows_last(l1, self.name())?;
        let (out, inp_w) = dims2(l2, self.name())?;
        let x = slice(s1, l1, self.name())?;
        let w = slice(s2, l2, self.name())?;
        let b = slice(s3, l3, self.name())?;
        if inp_w != inp || b.len() != out {
            candle_core::bail!(
                "fused-linear: x {n}x{inp}, weight {out}x{inp_w}, bias {}",
                b.len()
            )
        }
        let mut y = vec![0f32; n * out];
        linear_forward(&mut y, x, w, Some(b), None, (n, inp, out))?;
        let mut dims = l1.shape().dims().to_vec();
        if let Some(last) = dims.last_mut() {
            *last = out;
        }
        Ok((CpuStorage::F32(y), Shape::from(dims)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let inp = w.dim(1)?;
        let n = x.elem_count() / inp.max(1);
        let out = w.dim(0)?;
        let packed = x.apply_op3_no_bwd(w, &grad.contiguous()?, &LinearBackward)?;
        let dx = packed.narrow(0, 0, n * inp)?.reshape(x.shape())?;
        let dw = packed.narrow(0, n * inp, out * inp)?.reshape((out, inp))?;
        let db = packed.narrow(0, (n + out) * inp, out)?.reshape(b.shape())?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

impl CustomOp3 for LinearBackward {
    fn name(&self) -> &'static str {
        "fused-linear-backward"
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
        let (n, inp) = rows_last(l1, self.name())?;
        let (out, _) = dims2(l2, self.name())?;
        let x = slice(s1, l1, self.name())?;
        let w = slice(s2, l2, self.name())?;
        let dy = slice(s3, l3, self.name())?;
        if dy.len() != n * out || w.len() != out * inp {
            candle_core::bail!("fused-linear-backward: mismatched shapes")
        }
        let mut g = vec![0f32; (n + out) * inp + out];
        let (dx, rest) = g.split_at_mut(n * inp);
        let (dw, db) = rest.split_at_mut(out * inp);
        linear_backward(dy, x, w, (n, inp, out), Some(dx), dw, Some(db))?;
        Ok((CpuStorage::F32(g), Shape::from(((n + out) * inp + out,))))
    }
}

/// Exact (erf) GELU: `0.5 x (1 + erf(x / √2))`.
#[derive(Debug, Clone, Copy)]
pub struct Gelu;

/// Backward of [`Gelu`] from `x` and `dy`: `dy · (Φ(x) + x φ(x))`.
#[derive(Debug, Clone, Copy)]
struct GeluBackward;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "fused-gelu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        last_dim(l, self.name())?;
        let x = slice(s, l, self.name())?;
        let mut y = vec![0f32; x.len()];
        vmath::gelu_forward(x, &mut y);
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, g: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(x.apply_op2_no_bwd(&g.contiguous()?, &GeluBackward)?))
    }
}

impl CustomOp2 for GeluBackward {
    fn name(&self) -> &'static str {
        "fused-gelu-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = slice(s1, l1, self.name())?;
        let dy = slice(s2, l2, self.name())?;
        if x.len() != dy.len() {
            candle_core::bail!("fused-gelu-backward: mismatched shapes")
        }
        let mut dx = vec![0f32; x.len()];
        vmath::gelu_backward(x, dy, &mut dx);
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
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

    fn max_abs(a: &Tensor) -> f32 {
        a.abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    /// Forward values and the gradients of x, W and b equal candle's matmul + broadcast add
    /// on random shapes and values.
    #[test]
    fn linear_matches_the_primitive_form_forward_and_backward() {
        for (i, &(n, inp, out)) in [(5usize, 7usize, 3usize), (64, 32, 96), (1, 128, 512)]
            .iter()
            .enumerate()
        {
            let s = 100 + 10 * i as u64;
            // the first case has two leading dimensions (rows = 5 · 2)
            let lead: Vec<usize> = if i == 0 { vec![n, 2] } else { vec![n] };
            let xs: Vec<usize> = lead.iter().copied().chain([inp]).collect();
            let x = Var::from_tensor(&rand(&xs, s, 2.0)).unwrap();
            let w = Var::from_tensor(&rand(&[out, inp], s + 1, 0.5)).unwrap();
            let b = Var::from_tensor(&rand(&[out], s + 2, 1.0)).unwrap();
            let ys: Vec<usize> = lead.iter().copied().chain([out]).collect();
            let up = rand(&ys, s + 3, 1.0);
            let fused = x
                .as_tensor()
                .apply_op3(w.as_tensor(), b.as_tensor(), Linear)
                .unwrap();
            let prim = x
                .as_tensor()
                .broadcast_matmul(&w.as_tensor().t().unwrap())
                .unwrap()
                .broadcast_add(b.as_tensor())
                .unwrap();
            assert_eq!(fused.dims(), prim.dims());
            assert!(
                max_diff(&fused, &prim) < 1e-4 * (1.0 + max_abs(&prim)),
                "forward"
            );
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
            for (name, v) in [("x", &x), ("w", &w), ("b", &b)] {
                let (a, p) = (gf.get(v).unwrap(), gp.get(v).unwrap());
                assert_eq!(a.dims(), p.dims());
                let d = max_diff(a, p);
                assert!(
                    d < 1e-4 * (1.0 + max_abs(p)),
                    "d{name} ({n},{inp},{out}): {d}"
                );
            }
        }
    }

    /// GELU forward and backward equal candle's `gelu_erf` (which candle differentiates).
    #[test]
    fn gelu_matches_candle_gelu_erf_forward_and_backward() {
        for (i, shape) in [[3usize, 5], [16, 512], [1, 97]].iter().enumerate() {
            let x = Var::from_tensor(&rand(shape, 60 + i as u64, 4.0)).unwrap();
            let up = rand(shape, 70 + i as u64, 1.0);
            let fused = x.as_tensor().apply_op1(Gelu).unwrap();
            let prim = x.as_tensor().gelu_erf().unwrap();
            assert!(max_diff(&fused, &prim) < 1e-6 * 4.0, "forward {shape:?}");
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
            let d = max_diff(gf.get(&x).unwrap(), gp.get(&x).unwrap());
            // candle's backward rounds 1/sqrt(2π) to 0.398942
            assert!(d < 2e-5, "dx {shape:?}: {d}");
        }
    }
}
