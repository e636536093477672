//! Tokens/s of the trainer's GPT training step on a CUDA GPU (f32, and bf16 autocast), on the nanoGPT CPU recipe
//! (4 layers, 4 heads, width 128, context 64, batch 12) and on a larger configuration.
//! Reuses the trainer's own sources (models, ops, optimizer, objectives) through `#[path]`.
//!
//! `cargo run --release -- [steps]` on a machine with CUDA; prints one JSON line per config.

#![allow(dead_code)]

#[path = "../../../src/error.rs"]
mod error;
pub use error::{Result, TrainerError};

#[path = "../../../src/ops/mod.rs"]
pub mod ops;

#[path = "../../../src/optim/mod.rs"]
pub mod optim;

#[path = "../../../src/models"]
pub mod models {
    #[path = "bert.rs"]
    pub mod bert;
    #[path = "gpt.rs"]
    pub mod gpt;
    #[path = "layers.rs"]
    pub mod layers;
    #[path = "params.rs"]
    pub mod params;
    pub use bert::{Bert, BertConfig};
    pub use gpt::{Gpt, GptConfig};
    pub use layers::{BuildOptions, LoraConfig};
    pub use params::{Init, Params};
}

#[path = "../../../src/train"]
pub mod train {
    #[path = "objectives.rs"]
    pub mod objectives;
}

use std::time::Instant;

use candle_core::{DType, Device};
use models::{BuildOptions, Gpt, GptConfig, Params};
use optim::{AdamW, AdamWConfig, Schedule};
use rand::{Rng, SeedableRng};
use train::objectives::{gpt_lm_loss, TokenBatch};

fn bench(
    device: &Device,
    name: &str,
    cfg: GptConfig,
    batch: usize,
    steps: usize,
    autocast: DType,
) -> Result<serde_json::Value> {
    let mut params = Params::new(1, device);
    params.set_autocast(autocast)?;
    let gpt = Gpt::new(&cfg, &mut params, BuildOptions::default())?;
    let mut opt = AdamW::new(params.trainable(), AdamWConfig::default())?;
    let sched = Schedule {
        lr: 1e-3,
        min_lr: 1e-4,
        warmup_steps: 10,
        decay_steps: steps,
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    // a learnable synthetic stream: a noisy cycle over the vocabulary
    let data: Vec<u32> = (0..200_000)
        .map(|i| {
            if rng.gen_bool(0.1) {
                rng.gen_range(0..cfg.vocab_size as u32)
            } else {
                (i % 50) as u32 % cfg.vocab_size as u32
            }
        })
        .collect();
    let t = cfg.block_size;
    let mut step = |s: usize, rng: &mut rand_chacha::ChaCha8Rng| -> Result<f32> {
        let seqs: Vec<Vec<u32>> = (0..batch)
            .map(|_| {
                let o = rng.gen_range(0..data.len() - t - 1);
                data[o..o + t + 1].to_vec()
            })
            .collect();
        let loss = gpt_lm_loss(&gpt, &TokenBatch::causal(&seqs)?)?;
        let grads = loss.backward()?;
        let norm = opt.grad_norm(&grads)?;
        opt.step(
            &grads,
            sched.lr_at(s),
            if norm > 1.0 { 1.0 / norm } else { 1.0 },
        )?;
        Ok(loss.to_scalar::<f32>()?)
    };
    let first = step(0, &mut rng)?; // warm-up (kernel loading)
    device.synchronize()?;
    let start = Instant::now();
    let mut last = first;
    for s in 1..=steps {
        last = step(s, &mut rng)?;
    }
    device.synchronize()?;
    let secs = start.elapsed().as_secs_f64();
    Ok(serde_json::json!({
        "config": name, "params": params.num_elements(), "batch": batch, "context": t, "steps": steps,
        "seconds": secs, "tokens_per_s": (steps * batch * t) as f64 / secs, "first_loss": first, "last_loss": last,
        "autocast": format!("{autocast:?}").to_lowercase(), "device": format!("{device:?}"),
    }))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let steps: usize = args
        .iter()
        .find_map(|s| s.parse().ok())
        .unwrap_or(200);
    // `--cpu`: a smoke run of the same code on the CPU (builds without the cuda feature)
    let device = if args.iter().any(|a| a == "--cpu") {
        Device::Cpu
    } else {
        Device::new_cuda(0)?
    };
    let recipe = GptConfig {
        vocab_size: 65,
        n_layer: 4,
        n_head: 4,
        n_embd: 128,
        block_size: 64,
        tied_embeddings: true,
        bias: true,
        layer_norm_eps: 1e-5,
        num_labels: None,
    };
    let larger = GptConfig {
        n_layer: 6,
        n_head: 6,
        n_embd: 384,
        block_size: 256,
        ..recipe.clone()
    };
    for autocast in [DType::F32, DType::BF16] {
        let r = bench(&device, "nanogpt-cpu-recipe", recipe.clone(), 12, steps, autocast)?;
        println!("{r}");
        let r = bench(&device, "6x384-ctx256", larger.clone(), 64, steps / 2, autocast)?;
        println!("{r}");
    }
    Ok(())
}
