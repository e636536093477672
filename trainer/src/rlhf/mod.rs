//! RLHF for the GPT: a reward model from preference pairs, and on-policy optimization of the
//! SFT policy against it — PPO, and RLOO as the simpler method — with a comparison harness
//! (SFT only vs DPO vs PPO vs RLOO on the same data and optimizer-step budget).
//!
//! - [`sample`]: the candle-side sampler (temperature, top-k, top-p) over the fp32 policy, used
//!   inside the training loops (rollouts) and by the evaluation.
//! - [`rollout`]: rollouts as token batches; per-token log-probabilities, values and KL to the
//!   reference from one forward pass.
//! - [`reward`]: the reward model (GPT backbone + scalar head on the last real token), the
//!   Bradley–Terry loss, pairwise accuracy, and its training job (checkpoints, resume).
//! - [`kl`]: the adaptive KL coefficient (Ziegler et al. 2019).
//! - [`ppo`]: PPO with the clipped objective, a value head on the policy's backbone, GAE, and a
//!   per-token KL penalty to the frozen SFT reference.
//! - [`rloo`]: REINFORCE leave-one-out (Ahmadian et al. 2024): k samples per prompt, each one's
//!   baseline the mean reward of the others; no value head.
//! - [`state`]: the run state both on-policy trainers checkpoint (iteration, RNG position, KL
//!   coefficient, history) and the resume logic.
//! - [`compare`]: the comparison harness; the judge of "better" is an [`compare::Oracle`]
//!   passed in by the caller (the demo's user lives in the root crate).
//!
//! Everything is deterministic on CPU for a fixed seed: all randomness (prompt choice, token
//! draws, minibatch order) comes from one ChaCha8 stream whose position is checkpointed, so a
//! resumed run ends with bitwise the same weights as an uninterrupted one.

pub mod compare;
pub mod kl;
pub mod policy;
pub mod ppo;
pub mod reward;
pub mod rloo;
pub mod rollout;
pub mod sample;
pub mod state;

#[cfg(test)]
pub(crate) mod testutil;

pub use compare::Oracle;
pub use kl::KlController;
pub use ppo::{Ppo, PpoConfig};
pub use reward::{RewardModel, RewardModelConfig, Scorer};
pub use rloo::{Rloo, RlooConfig};
pub use rollout::Rollout;
pub use sample::Sampling;
