//! Tiny models and a synthetic task for the RLHF tests.
//!
//! The task: vocabulary of 16 tokens (0 pad, 1 end-of-text, 2..16 words); prompts are 2–4 word
//! tokens; the oracle likes responses that contain the token [`GOOD`] and are short. (A
//! prompt-dependent wanted token — e.g. the prompt's first token plus one — is a two-hop
//! relation the tiny models do not learn in the few steps a unit test affords; the demo-task
//! comparison in the root crate is the prompt-dependent one.)

use candle_core::Device;

use crate::models::{BuildOptions, Gpt, GptConfig, Params};

/// Vocabulary of the synthetic task.
pub const VOCAB: usize = 16;
/// End-of-text.
pub const EOS: u32 = 1;
/// Padding.
pub const PAD: u32 = 0;

/// A 2-layer GPT of width 16, context 16.
pub fn tiny_config() -> GptConfig {
    GptConfig {
        vocab_size: VOCAB,
        n_layer: 2,
        n_head: 2,
        n_embd: 16,
        block_size: 16,
        tied_embeddings: true,
        bias: true,
        layer_norm_eps: 1e-5,
        num_labels: None,
    }
}

/// The tiny GPT with weights drawn from `seed`.
pub fn tiny_gpt(seed: u64) -> (Gpt, Params) {
    let mut p = Params::new(seed, &Device::Cpu);
    let g = Gpt::new(&tiny_config(), &mut p, BuildOptions::default()).expect("tiny gpt");
    (g, p)
}

/// The token the oracle wants in a response.
pub const GOOD: u32 = 7;

/// The token the oracle wants in the response to `prompt`.
pub fn wanted(_prompt: &[u32]) -> u32 {
    GOOD
}

/// The synthetic oracle: 1 when the response names the wanted token, minus a little per token.
pub fn oracle(prompt: &[u32], response: &[u32]) -> f64 {
    let hit = f64::from(u8::from(response.contains(&wanted(prompt))));
    hit - 0.02 * response.len() as f64
}

/// `n` prompts drawn deterministically from `seed`.
pub fn prompts(n: usize, seed: u64) -> Vec<Vec<u32>> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let len = rng.gen_range(2..=4);
            (0..len).map(|_| rng.gen_range(2..VOCAB as u32)).collect()
        })
        .collect()
}

/// Preference pairs `(prompt, chosen ++ eos, rejected ++ eos)`: the chosen response names the
/// wanted token, the rejected one does not (both random otherwise).
pub fn pairs(n: usize, seed: u64) -> Vec<crate::train::tasks::Preference> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    prompts(n, seed)
        .into_iter()
        .map(|p| {
            let w = wanted(&p);
            let mut other = || loop {
                let t = rng.gen_range(2..VOCAB as u32);
                if t != w {
                    break t;
                }
            };
            let len = 2 + (p.len() % 2);
            let mut rejected: Vec<u32> = (0..len).map(|_| other()).collect();
            let mut chosen: Vec<u32> = (0..len).map(|_| other()).collect();
            let at = p.len() % len;
            chosen[at] = w;
            chosen.push(EOS);
            rejected.push(EOS);
            (p, chosen, rejected)
        })
        .collect()
}

/// The tiny GPT instruction-tuned for `steps` steps on prompts with random 2–3-token responses
/// (so that it ends its answers): the "SFT" model of the tests. Its tensors.
pub fn sft_tensors(steps: usize) -> std::collections::HashMap<String, candle_core::Tensor> {
    use crate::optim::{AdamW, Schedule};
    use crate::train::{self, tasks::SftTask, RunOptions, TrainConfig, TrainState};
    let (gpt, params) = tiny_gpt(1);
    let train_x: Vec<(Vec<u32>, Vec<u32>)> = pairs(200, 21)
        .into_iter()
        .enumerate()
        .map(|(i, (p, c, r))| (p, if i % 2 == 0 { c } else { r }))
        .collect();
    let mut task = SftTask {
        model: gpt,
        train: train_x.clone(),
        val: train_x[..16].to_vec(),
        batch_size: 16,
        pad: PAD,
    };
    let cfg = TrainConfig {
        steps,
        grad_accum: 1,
        schedule: Schedule {
            lr: 1e-2,
            min_lr: 1e-3,
            warmup_steps: 2,
            decay_steps: steps,
        },
        optimizer: Default::default(),
        clip_grad_norm: Some(1.0),
        eval_every: 0,
        patience: None,
        checkpoint_every: 0,
        seed: 4,
    };
    let mut opt = AdamW::new(params.trainable(), cfg.optimizer.clone()).expect("adamw");
    let mut st = TrainState::new(4);
    train::run::<()>(
        &mut task,
        &params,
        &mut opt,
        &cfg,
        &mut st,
        None,
        &RunOptions::default(),
    )
    .expect("sft");
    params.to_tensors().expect("tensors")
}

/// The largest absolute difference between two weight sets (same names).
pub fn max_weight_diff(
    a: &std::collections::HashMap<String, candle_core::Tensor>,
    b: &std::collections::HashMap<String, candle_core::Tensor>,
) -> f32 {
    assert_eq!(a.len(), b.len());
    let mut worst = 0f32;
    for (n, t) in a {
        let x: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        let y: Vec<f32> = b[n].flatten_all().unwrap().to_vec1().unwrap();
        for (u, v) in x.iter().zip(&y) {
            worst = worst.max((u - v).abs());
        }
    }
    worst
}
