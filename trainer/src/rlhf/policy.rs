//! The trained policy beside its frozen reference (both start as the SFT model), and the prompt
//! draws of the on-policy trainers.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::models::layers::{Builder, Linear};
use crate::models::{BuildOptions, Gpt, GptConfig, Params};
use crate::{Result, TrainerError};

/// Parameter-name prefix of PPO's value head (on the policy's backbone).
pub const VALUE_HEAD: &str = "value_head";

/// A policy being trained and the frozen SFT reference it is kept close to.
#[derive(Debug)]
pub struct PolicyPair {
    /// The policy's parameters (with the value head when there is one).
    pub params: Params,
    /// The policy.
    pub policy: Gpt,
    /// Scalar value head on the policy's final hidden states.
    pub value_head: Option<Linear>,
    /// The reference (its own parameter store; never updated).
    pub reference: Gpt,
    _reference_params: Params,
}

impl PolicyPair {
    /// Policy and reference from the SFT model's tensors; a value head (zero-initialized, so the
    /// first value estimates are 0) when asked.
    pub fn new(
        config: &GptConfig,
        sft: &HashMap<String, Tensor>,
        value_head: bool,
        device: &Device,
    ) -> Result<Self> {
        let base: HashMap<String, Tensor> = sft
            .iter()
            .filter(|(n, _)| !n.starts_with(VALUE_HEAD) && !n.starts_with("classifier"))
            .map(|(n, t)| Ok((n.clone(), t.detach().copy()?)))
            .collect::<Result<_>>()?;
        let config = GptConfig {
            num_labels: None,
            ..config.clone()
        };
        let mut params = Params::from_tensors(base.clone(), device)?;
        let policy = Gpt::new(&config, &mut params, BuildOptions::default())?;
        let value_head = if value_head {
            let mut b = Builder::new(&mut params, BuildOptions::default());
            Some(Linear::new(
                &mut b,
                VALUE_HEAD,
                config.n_embd,
                1,
                true,
                0.0,
            )?)
        } else {
            None
        };
        let names: std::collections::BTreeSet<String> = base.keys().cloned().collect();
        let mut reference_params = Params::from_tensors(base, device)?;
        let reference = Gpt::new(&config, &mut reference_params, BuildOptions::default())?;
        if let Some((missing, _)) = reference_params.iter().find(|(n, _)| !names.contains(*n)) {
            return Err(TrainerError::Weights {
                name: missing.clone(),
                reason: "missing from the SFT model's tensors".into(),
            });
        }
        Ok(Self {
            params,
            policy,
            value_head,
            reference,
            _reference_params: reference_params,
        })
    }

    /// The policy's weights without the value head (what is exported and deployed).
    pub fn policy_tensors(&self) -> Result<HashMap<String, Tensor>> {
        Ok(self
            .params
            .to_tensors()?
            .into_iter()
            .filter(|(n, _)| !n.starts_with(VALUE_HEAD))
            .collect())
    }
}

/// `n` prompts drawn uniformly with replacement from `prompts`.
pub fn draw_prompts(prompts: &[Vec<u32>], n: usize, rng: &mut ChaCha8Rng) -> Result<Vec<Vec<u32>>> {
    if prompts.is_empty() {
        return Err(TrainerError::Data("no training prompts".into()));
    }
    Ok((0..n)
        .map(|_| prompts[rng.gen_range(0..prompts.len())].clone())
        .collect())
}
