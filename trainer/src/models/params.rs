//! A named, ordered store of trainable tensors with seeded initialization.
//!
//! candle's `VarBuilder` initializes from an unseeded RNG on CPU; training must be reproducible
//! bit for bit (resume tests), so models take their parameters from a [`Params`] store that
//! initializes from a ChaCha8 stream, or hands back tensors loaded from a checkpoint.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{Result, TrainerError};

/// How a parameter is initialized when it is not already in the store.
#[derive(Debug, Clone, Copy)]
pub enum Init {
    /// Normal with mean 0 and the given standard deviation.
    Normal(f32),
    /// All zeros.
    Zeros,
    /// All ones.
    Ones,
}

/// Parameters by name (sorted), with the set of frozen ones.
pub struct Params {
    vars: BTreeMap<String, Var>,
    frozen: BTreeSet<String>,
    rng: ChaCha8Rng,
    device: Device,
    compute: DType,
}

impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Params")
            .field("count", &self.vars.len())
            .field("frozen", &self.frozen.len())
            .finish()
    }
}

impl Params {
    /// An empty store whose new parameters are drawn from `seed`.
    pub fn new(seed: u64, device: &Device) -> Self {
        Self {
            vars: BTreeMap::new(),
            frozen: BTreeSet::new(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            device: device.clone(),
            compute: DType::F32,
        }
    }

    /// Autocast: models built from now on run their matrix products in `dtype` (`BF16` or
    /// `F16`; `F32` turns it off). Parameters, gradients, optimizer state, norms, softmax and
    /// losses stay f32, as in PyTorch's autocast; casts carry gradients back to the f32
    /// master weights.
    pub fn set_autocast(&mut self, dtype: DType) -> Result<()> {
        if !matches!(dtype, DType::F32 | DType::BF16 | DType::F16) {
            return Err(TrainerError::config(
                "autocast",
                format!("{dtype:?}: expected f32, bf16 or f16"),
            ));
        }
        self.compute = dtype;
        Ok(())
    }

    /// The dtype matrix products run in (see [`Self::set_autocast`]).
    pub fn compute_dtype(&self) -> DType {
        self.compute
    }

    /// A store pre-filled with `tensors` (a checkpoint); models built on it take these values.
    pub fn from_tensors(tensors: HashMap<String, Tensor>, device: &Device) -> Result<Self> {
        let mut p = Self::new(0, device);
        for (name, t) in tensors {
            let t = t.to_dtype(DType::F32)?.to_device(device)?;
            p.vars.insert(name, Var::from_tensor(&t)?);
        }
        Ok(p)
    }

    /// Restarts the initialization stream of parameters created from now on at `seed`.
    pub fn reseed(&mut self, seed: u64) {
        self.rng = ChaCha8Rng::seed_from_u64(seed);
    }

    /// The device parameters live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Returns the parameter `name`, creating it with `init` if absent.
    ///
    /// A stored tensor of a different shape is an error naming the tensor.
    pub fn get(&mut self, name: &str, shape: &[usize], init: Init) -> Result<Tensor> {
        if let Some(v) = self.vars.get(name) {
            if v.dims() != shape {
                return Err(TrainerError::Weights {
                    name: name.to_string(),
                    reason: format!(
                        "shape {:?} does not match the model's {:?}",
                        v.dims(),
                        shape
                    ),
                });
            }
            return Ok(v.as_tensor().clone());
        }
        let n: usize = shape.iter().product();
        let data: Vec<f32> = match init {
            Init::Zeros => vec![0.0; n],
            Init::Ones => vec![1.0; n],
            Init::Normal(std) => (0..n).map(|_| std * self.standard_normal()).collect(),
        };
        let var = Var::from_tensor(&Tensor::from_vec(data, shape, &self.device)?)?;
        let t = var.as_tensor().clone();
        self.vars.insert(name.to_string(), var);
        Ok(t)
    }

    fn standard_normal(&mut self) -> f32 {
        // Box-Muller; deterministic given the stream.
        let u1: f64 = self.rng.gen_range(f64::EPSILON..1.0);
        let u2: f64 = self.rng.gen();
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }

    /// The parameter `name`, if present.
    pub fn var(&self, name: &str) -> Option<&Var> {
        self.vars.get(name)
    }

    /// All parameters, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Var)> {
        self.vars.iter()
    }

    /// Trainable (not frozen) parameters, sorted by name.
    pub fn trainable(&self) -> Vec<(String, Var)> {
        self.vars
            .iter()
            .filter(|(n, _)| !self.frozen.contains(*n))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect()
    }

    /// Freezes every parameter for which `pred(name)` holds (they receive no update).
    pub fn freeze_where(&mut self, pred: impl Fn(&str) -> bool) {
        for n in self.vars.keys() {
            if pred(n) {
                self.frozen.insert(n.clone());
            }
        }
    }

    /// Unfreezes every parameter.
    pub fn unfreeze_all(&mut self) {
        self.frozen.clear();
    }

    /// Whether `name` is frozen.
    pub fn is_frozen(&self, name: &str) -> bool {
        self.frozen.contains(name)
    }

    /// Removes the parameters for which `pred(name)` holds (used after merging LoRA adapters).
    pub fn remove_where(&mut self, pred: impl Fn(&str) -> bool) {
        self.vars.retain(|n, _| !pred(n));
        self.frozen.retain(|n| !pred(n));
    }

    /// Replaces the value of an existing parameter.
    pub fn set(&mut self, name: &str, value: &Tensor) -> Result<()> {
        match self.vars.get(name) {
            Some(v) => Ok(v.set(value)?),
            None => Err(TrainerError::Weights {
                name: name.into(),
                reason: "no such parameter".into(),
            }),
        }
    }

    /// Snapshot of all values (detached copies), e.g. for a frozen reference model.
    pub fn to_tensors(&self) -> Result<HashMap<String, Tensor>> {
        self.vars
            .iter()
            .map(|(n, v)| Ok((n.clone(), v.as_tensor().detach().copy()?)))
            .collect()
    }

    /// Total number of scalar parameters.
    pub fn num_elements(&self) -> usize {
        self.vars.values().map(|v| v.elem_count()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_values_and_shape_checked() {
        let mut a = Params::new(7, &Device::Cpu);
        let mut b = Params::new(7, &Device::Cpu);
        let ta = a.get("w", &[3, 4], Init::Normal(0.02)).unwrap();
        let tb = b.get("w", &[3, 4], Init::Normal(0.02)).unwrap();
        assert_eq!(ta.to_vec2::<f32>().unwrap(), tb.to_vec2::<f32>().unwrap());
        assert!(a.get("w", &[4, 3], Init::Zeros).is_err());
        let std: f32 = {
            let mut p = Params::new(1, &Device::Cpu);
            let v: Vec<f32> = p
                .get("x", &[10000], Init::Normal(1.0))
                .unwrap()
                .to_vec1()
                .unwrap();
            (v.iter().map(|x| x * x).sum::<f32>() / v.len() as f32).sqrt()
        };
        assert!((std - 1.0).abs() < 0.05, "std {std}");
    }
}
