//! The AdamW update in place over contiguous f32 CPU buffers.
//!
//! Composed from tensor ops, one AdamW update is about ten passes over each parameter, each
//! allocating a fresh tensor. Here it is three in-place passes (first moment, second moment,
//! weight), same math in f32: `m = β₁m + (1-β₁)g`, `v = β₂v + (1-β₂)g²`,
//! `w = w(1 - lr·λ) - lr·(m/bc₁) / (sqrt(v/bc₂) + ε)` with `g` the scaled gradient. On by
//! default; `ops::set_fused(false)` keeps the tensor-op form (the two are held to each other in
//! the tests).

use candle_core::{CpuStorage, DType, InplaceOp2, InplaceOp3, Layout, Tensor};

use crate::Result;

fn contiguous_slice<'a>(
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

fn contiguous_slice_mut<'a>(
    s: &'a mut CpuStorage,
    l: &Layout,
    what: &str,
) -> candle_core::Result<&'a mut [f32]> {
    let CpuStorage::F32(data) = s else {
        candle_core::bail!("{what}: needs an f32 tensor")
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&mut data[a..b]),
        None => candle_core::bail!("{what}: needs a contiguous f32 tensor"),
    }
}

fn is_plain(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32 && t.is_contiguous()
}

/// Whether the in-place step applies: weight, gradient and moments contiguous f32 CPU tensors
/// of one shape.
pub(super) fn applies(w: &Tensor, g: &Tensor, m: &Tensor, v: &Tensor) -> bool {
    [w, g, m, v].iter().all(|t| is_plain(t))
        && g.dims() == w.dims()
        && m.dims() == w.dims()
        && v.dims() == w.dims()
}

/// `sum(g²)` in f64 when `g` is a contiguous f32 CPU tensor and the fused ops are on.
pub(super) fn sum_of_squares(g: &Tensor) -> Result<Option<f64>> {
    if !crate::ops::fused_enabled() || !is_plain(g) {
        return Ok(None);
    }
    let (s, l) = g.storage_and_layout();
    let candle_core::Storage::Cpu(cpu) = &*s else {
        return Ok(None);
    };
    let x = contiguous_slice(cpu, l, "adamw-grad-norm")?;
    // f32 partial sums per block of 256, added in f64: as accurate as the tensor form's f32
    // sum, without a temporary
    Ok(Some(
        x.chunks(256)
            .map(|c| c.iter().map(|v| v * v).sum::<f32>() as f64)
            .sum(),
    ))
}

/// One AdamW update's constants.
#[derive(Debug, Clone, Copy)]
pub(super) struct Step {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// Bias corrections `1 - β^t`.
    pub bc1: f32,
    pub bc2: f32,
    pub lr: f32,
    /// `lr · weight_decay` (0 where no decay applies).
    pub decay: f32,
    /// Multiplies the gradient first (clipping, accumulation averaging).
    pub grad_scale: f32,
}

/// `m ← β m + (1-β) g·s` (or `g²·s²` for the second moment), in place on `m`.
struct Moment {
    beta: f32,
    scale: f32,
    square: bool,
}

impl InplaceOp2 for Moment {
    fn name(&self) -> &'static str {
        "adamw-moment"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        let m = contiguous_slice_mut(s1, l1, self.name())?;
        let g = contiguous_slice(s2, l2, self.name())?;
        if m.len() != g.len() {
            candle_core::bail!("adamw-moment: mismatched lengths")
        }
        let (b, a) = (self.beta, 1.0 - self.beta);
        if self.square {
            for (m, g) in m.iter_mut().zip(g) {
                let gs = g * self.scale;
                *m = b * *m + a * (gs * gs);
            }
        } else {
            for (m, g) in m.iter_mut().zip(g) {
                *m = b * *m + a * (g * self.scale);
            }
        }
        Ok(())
    }
}

/// `w ← w(1 - lr·λ) - lr·(m/bc₁) / (sqrt(v/bc₂) + ε)`, in place on `w`.
struct Apply(Step);

impl InplaceOp3 for Apply {
    fn name(&self) -> &'static str {
        "adamw-apply"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<()> {
        let w = contiguous_slice_mut(s1, l1, self.name())?;
        let m = contiguous_slice(s2, l2, self.name())?;
        let v = contiguous_slice(s3, l3, self.name())?;
        if m.len() != w.len() || v.len() != w.len() {
            candle_core::bail!("adamw-apply: mismatched lengths")
        }
        let s = self.0;
        let keep = 1.0 - s.decay;
        let (inv1, inv2) = (1.0 / s.bc1, 1.0 / s.bc2);
        for ((w, m), v) in w.iter_mut().zip(m).zip(v) {
            let update = (m * inv1) / ((v * inv2).sqrt() + s.eps);
            *w = *w * keep - s.lr * update;
        }
        Ok(())
    }
}

impl Step {
    /// Updates the moments `m`, `v` and the weight `w` in place from the gradient `g`.
    pub(super) fn apply(&self, w: &Tensor, g: &Tensor, m: &Tensor, v: &Tensor) -> Result<()> {
        m.inplace_op2(
            g,
            &Moment {
                beta: self.beta1,
                scale: self.grad_scale,
                square: false,
            },
        )?;
        v.inplace_op2(
            g,
            &Moment {
                beta: self.beta2,
                scale: self.grad_scale,
                square: true,
            },
        )?;
        w.inplace_op3(m, v, &Apply(*self))?;
        Ok(())
    }
}
