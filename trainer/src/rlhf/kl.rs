//! The KL coefficient β of the penalty `−β · log(π / π_ref)`: fixed, or adapted toward a target
//! KL with the proportional controller of Ziegler et al. 2019 ("Fine-Tuning Language Models
//! from Human Preferences", §2.2): `e = clip(KL / target − 1, −0.2, 0.2)`,
//! `β ← β (1 + e · n / horizon)` after `n` rollouts.

use serde::{Deserialize, Serialize};

use crate::{Result, TrainerError};

/// KL-penalty settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KlController {
    /// Initial β.
    pub init_coef: f64,
    /// Target sequence-level KL (nats); `None` keeps β fixed.
    pub target: Option<f64>,
    /// Rollouts over which a full proportional correction applies.
    pub horizon: f64,
}

impl Default for KlController {
    fn default() -> Self {
        Self {
            init_coef: 0.1,
            target: Some(1.0),
            horizon: 1000.0,
        }
    }
}

impl KlController {
    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        if !(self.init_coef >= 0.0 && self.init_coef.is_finite()) {
            return Err(TrainerError::config("kl.init_coef", "must be ≥ 0"));
        }
        if matches!(self.target, Some(t) if !(t > 0.0 && t.is_finite())) {
            return Err(TrainerError::config("kl.target", "must be positive"));
        }
        if !(self.horizon > 0.0 && self.horizon.is_finite()) {
            return Err(TrainerError::config("kl.horizon", "must be positive"));
        }
        Ok(())
    }

    /// The coefficient after observing mean KL `kl` over `n` rollouts with coefficient `coef`.
    pub fn update(&self, coef: f64, kl: f64, n: usize) -> f64 {
        match self.target {
            None => coef,
            Some(target) => {
                let e = (kl / target - 1.0).clamp(-0.2, 0.2);
                coef * (1.0 + e * n as f64 / self.horizon)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coefficient_moves_toward_the_target() {
        let c = KlController {
            init_coef: 0.1,
            target: Some(2.0),
            horizon: 100.0,
        };
        // KL above target: β grows (by at most 20% × n / horizon).
        assert!((c.update(0.1, 10.0, 50) - 0.1 * 1.1).abs() < 1e-12);
        // below: shrinks
        assert!((c.update(0.1, 1.0, 100) - 0.1 * 0.8).abs() < 1e-12);
        // on target: unchanged
        assert_eq!(c.update(0.1, 2.0, 100), 0.1);
        let fixed = KlController {
            target: None,
            ..c.clone()
        };
        assert_eq!(fixed.update(0.3, 50.0, 100), 0.3);
        assert!(KlController { horizon: 0.0, ..c }.validate().is_err());
    }
}
