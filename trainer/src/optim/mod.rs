//! AdamW with decoupled weight decay, warmup + cosine learning-rate schedule, and global-norm
//! gradient clipping. The optimizer state is exposed so checkpoints can save and restore it.

use std::collections::HashMap;

use candle_core::{backprop::GradStore, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::{Result, TrainerError};

mod fused_step;

/// AdamW hyper-parameters.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AdamWConfig {
    /// β₁.
    pub beta1: f64,
    /// β₂.
    pub beta2: f64,
    /// ε.
    pub eps: f64,
    /// Decoupled weight decay, applied to matrices (rank ≥ 2) only: not to biases and norms.
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            weight_decay: 0.1,
        }
    }
}

/// Warmup + cosine decay learning rate.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Schedule {
    /// Peak learning rate.
    pub lr: f64,
    /// Floor reached at the end of the decay.
    pub min_lr: f64,
    /// Linear warmup steps.
    pub warmup_steps: usize,
    /// Step at which the cosine reaches `min_lr` (constant afterwards).
    pub decay_steps: usize,
}

impl Schedule {
    /// Learning rate at optimizer step `step` (0-based).
    pub fn lr_at(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        if step >= self.decay_steps || self.decay_steps <= self.warmup_steps {
            return self.min_lr;
        }
        let p = (step - self.warmup_steps) as f64 / (self.decay_steps - self.warmup_steps) as f64;
        self.min_lr + 0.5 * (1.0 + (std::f64::consts::PI * p).cos()) * (self.lr - self.min_lr)
    }
}

/// AdamW over named variables.
#[derive(Debug)]
pub struct AdamW {
    /// Hyper-parameters.
    pub config: AdamWConfig,
    vars: Vec<(String, Var)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    /// Number of updates applied so far (for bias correction).
    pub t: usize,
}

impl AdamW {
    /// An optimizer over `vars` (name, variable) with zeroed moments.
    pub fn new(vars: Vec<(String, Var)>, config: AdamWConfig) -> Result<Self> {
        let m = vars
            .iter()
            .map(|(_, v)| v.as_tensor().zeros_like())
            .collect::<candle_core::Result<Vec<_>>>()?;
        // separate storages: the fused step updates the moments in place
        let v = vars
            .iter()
            .map(|(_, v)| v.as_tensor().zeros_like())
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            config,
            vars,
            m,
            v,
            t: 0,
        })
    }

    /// The variables being optimized.
    pub fn vars(&self) -> &[(String, Var)] {
        &self.vars
    }

    /// Global L2 norm of the gradients of the optimized variables.
    pub fn grad_norm(&self, grads: &GradStore) -> Result<f64> {
        let mut sq = 0f64;
        for (_, var) in &self.vars {
            if let Some(g) = grads.get(var.as_tensor()) {
                sq += match fused_step::sum_of_squares(g)? {
                    Some(s) => s,
                    None => g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64,
                };
            }
        }
        Ok(sq.sqrt())
    }

    /// One update with learning rate `lr`; gradients are multiplied by `grad_scale` first
    /// (gradient clipping and accumulation averaging).
    pub fn step(&mut self, grads: &GradStore, lr: f64, grad_scale: f64) -> Result<()> {
        self.step_with(grads, lr, grad_scale, crate::ops::fused_enabled())
    }

    /// [`Self::step`], in place over f32 CPU buffers where `fused` and they allow, else from
    /// tensor ops.
    fn step_with(
        &mut self,
        grads: &GradStore,
        lr: f64,
        grad_scale: f64,
        fused: bool,
    ) -> Result<()> {
        self.t += 1;
        let c = &self.config;
        let bc1 = 1.0 - c.beta1.powi(self.t as i32);
        let bc2 = 1.0 - c.beta2.powi(self.t as i32);
        for (i, (_, var)) in self.vars.iter().enumerate() {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            let decay = if var.rank() >= 2 { c.weight_decay } else { 0.0 };
            if fused && fused_step::applies(var.as_tensor(), g, &self.m[i], &self.v[i]) {
                let step = fused_step::Step {
                    beta1: c.beta1 as f32,
                    beta2: c.beta2 as f32,
                    eps: c.eps as f32,
                    bc1: bc1 as f32,
                    bc2: bc2 as f32,
                    lr: lr as f32,
                    decay: (lr * decay) as f32,
                    grad_scale: grad_scale as f32,
                };
                step.apply(var.as_tensor(), g, &self.m[i], &self.v[i])?;
                continue;
            }
            let g = (g * grad_scale)?;
            let m = ((&self.m[i] * c.beta1)? + (&g * (1.0 - c.beta1))?)?;
            let v = ((&self.v[i] * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
            let update = ((&m / bc1)? / ((&v / bc2)?.sqrt()? + c.eps)?)?;
            let mut w = var.as_tensor().clone();
            if var.rank() >= 2 && c.weight_decay > 0.0 {
                w = (w * (1.0 - lr * c.weight_decay))?;
            }
            var.set(&(w - (update * lr)?)?)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }

    /// The moments by name (`m.<var>`, `v.<var>`), for checkpoints.
    pub fn state_tensors(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for (i, (name, _)) in self.vars.iter().enumerate() {
            out.insert(format!("m.{name}"), self.m[i].clone());
            out.insert(format!("v.{name}"), self.v[i].clone());
        }
        out
    }

    /// Restores the moments saved by [`AdamW::state_tensors`] and the step count.
    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>, t: usize) -> Result<()> {
        for (i, (name, var)) in self.vars.iter().enumerate() {
            for (slot, key) in [
                (&mut self.m[i], format!("m.{name}")),
                (&mut self.v[i], format!("v.{name}")),
            ] {
                let s = tensors.get(&key).ok_or_else(|| TrainerError::Weights {
                    name: key.clone(),
                    reason: "missing from the optimizer state".into(),
                })?;
                if s.dims() != var.dims() {
                    return Err(TrainerError::Weights {
                        name: key,
                        reason: format!("shape {:?}, expected {:?}", s.dims(), var.dims()),
                    });
                }
                // a copy: the fused step updates the moments in place
                *slot = s.to_device(var.device())?.copy()?;
            }
        }
        self.t = t;
        Ok(())
    }
}

/// Sums two gradient stores over `vars` (gradient accumulation).
pub fn accumulate(
    acc: Option<GradStore>,
    new: GradStore,
    vars: &[(String, Var)],
) -> Result<GradStore> {
    let Some(mut acc) = acc else {
        return Ok(new);
    };
    for (_, var) in vars {
        if let Some(g) = new.get(var.as_tensor()) {
            let sum = match acc.get(var.as_tensor()) {
                Some(a) => (a + g)?,
                None => g.clone(),
            };
            acc.insert(var.as_tensor(), sum);
        }
    }
    Ok(acc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn schedule_warms_up_then_decays_to_floor() {
        let s = Schedule {
            lr: 1e-3,
            min_lr: 1e-4,
            warmup_steps: 10,
            decay_steps: 110,
        };
        assert!((s.lr_at(0) - 1e-4).abs() < 1e-12);
        assert!((s.lr_at(9) - 1e-3).abs() < 1e-12);
        assert!((s.lr_at(60) - 5.5e-4).abs() < 1e-9);
        assert!(s.lr_at(30) > s.lr_at(80));
        assert_eq!(s.lr_at(500), 1e-4);
    }

    /// The in-place AdamW step and the tensor-op form agree over several steps with decay on
    /// matrices only, bias correction and a gradient scale, on random values.
    #[test]
    fn fused_step_matches_the_tensor_form() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut rnd = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect() };
        let (w0, b0) = (rnd(12), rnd(4));
        let grads_seq: Vec<(Vec<f32>, Vec<f32>)> = (0..5).map(|_| (rnd(12), rnd(4))).collect();
        let run = |fused: bool| -> (Vec<f32>, Vec<f32>, Vec<f32>) {
            let w = Var::from_vec(w0.clone(), (3, 4), &Device::Cpu).unwrap();
            let b = Var::from_vec(b0.clone(), 4, &Device::Cpu).unwrap();
            let mut opt = AdamW::new(
                vec![("w".into(), w.clone()), ("b".into(), b.clone())],
                AdamWConfig::default(),
            )
            .unwrap();
            for (step, (gw, gb)) in grads_seq.iter().enumerate() {
                // loss = sum(w * gw) + sum(b * gb): its gradients are gw and gb
                let tw = Tensor::from_vec(gw.clone(), (3, 4), &Device::Cpu).unwrap();
                let tb = Tensor::from_vec(gb.clone(), 4, &Device::Cpu).unwrap();
                let loss = ((w.as_tensor() * &tw).unwrap().sum_all().unwrap()
                    + (b.as_tensor() * &tb).unwrap().sum_all().unwrap())
                .unwrap();
                let grads = loss.backward().unwrap();
                let norm = opt.grad_norm(&grads).unwrap();
                opt.step_with(&grads, 1e-2 * (step + 1) as f64, 0.5 / norm.max(0.5), fused)
                    .unwrap();
            }
            let m = opt.state_tensors()["m.w"]
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            (
                w.as_tensor().flatten_all().unwrap().to_vec1().unwrap(),
                b.as_tensor().to_vec1().unwrap(),
                m,
            )
        };
        let fused = run(true);
        let plain = run(false);
        for (a, b) in [
            (&fused.0, &plain.0),
            (&fused.1, &plain.1),
            (&fused.2, &plain.2),
        ] {
            for (x, y) in a.iter().zip(b.iter()) {
                assert!((x - y).abs() < 1e-6 * (1.0 + y.abs()), "{x} vs {y}");
            }
        }
        // the weights moved, and differently from the bias (decay on matrices only)
        assert!(fused.0.iter().zip(&w0).all(|(a, b)| a != b));
    }

    /// One AdamW step matches the closed form: the first update is `lr * sign(g)` (bias
    /// corrected), plus decoupled decay on matrices only.
    #[test]
    fn adamw_first_step_closed_form() {
        let w = Var::from_vec(vec![1.0f32, -2.0, 3.0, 0.5], (2, 2), &Device::Cpu).unwrap();
        let b = Var::from_vec(vec![1.0f32, 1.0], 2, &Device::Cpu).unwrap();
        let mut opt = AdamW::new(
            vec![("w".into(), w.clone()), ("b".into(), b.clone())],
            AdamWConfig {
                weight_decay: 0.5,
                eps: 0.0,
                ..Default::default()
            },
        )
        .unwrap();
        let loss = ((w.as_tensor().sum_all().unwrap() * 2.0).unwrap()
            - b.as_tensor().sum_all().unwrap())
        .unwrap();
        let grads = loss.backward().unwrap();
        opt.step(&grads, 0.1, 1.0).unwrap();
        let wv: Vec<f32> = w.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        for (got, w0) in wv.iter().zip([1.0f32, -2.0, 3.0, 0.5]) {
            assert!((got - (w0 * 0.95 - 0.1)).abs() < 1e-6, "{got}");
        }
        let bv: Vec<f32> = b.as_tensor().to_vec1().unwrap();
        assert!(bv.iter().all(|x| (x - 1.1).abs() < 1e-6), "{bv:?}");
        assert!((opt.grad_norm(&grads).unwrap() - (4.0f64 * 4.0 + 2.0).sqrt()).abs() < 1e-6);
    }
}
