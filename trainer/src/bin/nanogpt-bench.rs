//! nanoGPT CPU-recipe yardstick: trains the char-level GPT of nanoGPT's CPU recipe on a text
//! file and reports validation loss and tokens/s, optionally beside the PyTorch reference
//! (`trainer/scripts/nanogpt_reference.py --json`).
//!
//! ```text
//! RAYON_NUM_THREADS=2 CANDLE_NUM_THREADS=2 cargo run --release -p edgeloop-trainer \
//!     --bin nanogpt-bench -- --text input.txt [--iters 2000] [--torch torch.json] [--json out.json]
//!     [--no-fused]
//! ```
//! Not run in CI: a benchmark, not a test.

use std::collections::BTreeSet;
use std::time::Instant;

use candle_core::Device;
use edgeloop_trainer::models::{BuildOptions, Gpt, GptConfig, Params};
use edgeloop_trainer::optim::{AdamW, AdamWConfig, Schedule};
use edgeloop_trainer::train::tasks::LmTask;
use edgeloop_trainer::train::{self, RunOptions, Task, TrainConfig, TrainState};

/// Every candle op allocates its output; mimalloc serves those from thread-local free lists
/// instead of fresh pages from the kernel.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let text_path = arg(&args, "--text").ok_or(
        "usage: nanogpt-bench --text FILE [--iters N] [--torch torch.json] [--json out.json]",
    )?;
    let iters: usize = arg(&args, "--iters")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(2000);
    let eval_windows: usize = arg(&args, "--eval-windows")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(2400);
    // `--no-fused`: layer norm and softmax from candle primitives (the pre-fusion baseline)
    let fused = !args.iter().any(|a| a == "--no-fused");
    edgeloop_trainer::ops::set_fused(fused);
    let text = std::fs::read_to_string(&text_path).map_err(|e| format!("{text_path}: {e}"))?;
    let chars: Vec<char> = text.chars().collect::<BTreeSet<_>>().into_iter().collect();
    let ids: Vec<u32> = text
        .chars()
        .map(|c| chars.binary_search(&c).map(|i| i as u32))
        .collect::<Result<_, _>>()
        .map_err(|_| "vocab")?;
    let n = ids.len() * 9 / 10;
    let cfg = GptConfig {
        vocab_size: chars.len(),
        n_layer: 4,
        n_head: 4,
        n_embd: 128,
        block_size: 64,
        tied_embeddings: true,
        bias: true,
        layer_norm_eps: 1e-5,
        num_labels: None,
    };
    let device = Device::Cpu;
    let mut params = Params::new(1337, &device);
    let model = Gpt::new(&cfg, &mut params, BuildOptions::default())?;
    let mut task = LmTask {
        model,
        train: ids[..n].to_vec(),
        val: ids[n..].to_vec(),
        batch_size: 12,
        seq_len: 64,
        eval_windows,
        engine: None,
    };
    let tc = TrainConfig {
        steps: iters,
        grad_accum: 1,
        schedule: Schedule {
            lr: 1e-3,
            min_lr: 1e-4,
            warmup_steps: 100,
            decay_steps: iters,
        },
        optimizer: AdamWConfig {
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            weight_decay: 0.1,
        },
        clip_grad_norm: Some(1.0),
        eval_every: 0,
        patience: None,
        checkpoint_every: 0,
        seed: 1337,
    };
    let mut opt = AdamW::new(params.trainable(), tc.optimizer.clone())?;
    let mut state = TrainState::new(tc.seed);
    // train without the final evaluation in the timing: run all steps but the eval is cheap
    // relative to training; time it separately anyway.
    let start = Instant::now();
    let no_eval = TrainConfig {
        steps: iters,
        ..tc.clone()
    };
    train::run::<()>(
        &mut task,
        &params,
        &mut opt,
        &no_eval,
        &mut state,
        None,
        &RunOptions {
            max_steps_this_run: None,
            progress: true,
        },
    )?;
    let total = start.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let val = task.eval_loss()?;
    let eval_s = t0.elapsed().as_secs_f64();
    let train_s = total - eval_s.min(total); // run() evaluated once at the last step
    let tps = (iters * 12 * 64) as f64 / train_s;
    let threads = std::env::var("CANDLE_NUM_THREADS")
        .or_else(|_| std::env::var("RAYON_NUM_THREADS"))
        .unwrap_or_else(|_| "all".into());
    let mut out = serde_json::json!({
        "val_loss": val, "tokens_per_s": tps, "train_seconds": train_s, "threads": threads,
        "params": params.num_elements(), "vocab": chars.len(), "iters": iters, "fused": fused,
    });
    println!("candle: val loss {val:.4}, {tps:.0} tokens/s ({threads} threads, {train_s:.1} s)");
    if let Some(p) = arg(&args, "--torch") {
        let t: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).map_err(|e| format!("{p}: {e}"))?)?;
        let tv = t["val_loss"].as_f64().ok_or("torch json lacks val_loss")?;
        let tt = t["tokens_per_s"]
            .as_f64()
            .ok_or("torch json lacks tokens_per_s")?;
        println!("pytorch: val loss {tv:.4}, {tt:.0} tokens/s; val-loss gap {:+.4} nats, speed ratio {:.2}x", val as f64 - tv, tps / tt);
        out["torch"] = t;
        out["val_loss_gap"] = (val as f64 - tv).into();
        out["speed_ratio"] = (tps / tt).into();
    }
    if let Some(p) = arg(&args, "--json") {
        std::fs::write(&p, serde_json::to_string_pretty(&out)?)?;
    }
    Ok(())
}
