//! The trainer's figure of issue 11: tokens/s of our trainer against PyTorch eager on nanoGPT's
//! CPU recipe (issue 6), measured in the same bench run as the runtime figures.
//!
//! Both engines train the same char-level GPT (4 layers, 4 heads, width 128, context 64, batch
//! 12) on the same text with the same thread count. They run one after the other, alternating
//! which goes first, in `pairs` short runs of `iters` iterations each; a ratio sample is
//! ours / PyTorch within one pair, so slow drifts in the machine's load cancel as they do for the
//! latency ratios. Each run is a separate process: `nanogpt-bench` (next to this binary) and
//! `trainer/scripts/nanogpt_reference.py` under a Python that has torch.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

use crate::stats::{summarize, Summary};
use crate::{Error, Result};

/// What to run.
#[derive(Debug, Clone)]
pub struct TrainerBench {
    /// The training text (`trainer/scripts/nanogpt_text.sh` makes it).
    pub text: PathBuf,
    /// A Python interpreter with torch installed.
    pub python: PathBuf,
    /// The PyTorch reference script.
    pub script: PathBuf,
    /// The `nanogpt-bench` binary.
    pub ours: PathBuf,
    /// Iterations per run.
    pub iters: usize,
    /// Pairs of runs.
    pub pairs: usize,
    /// Threads given to both engines.
    pub threads: usize,
}

/// One engine's run.
#[derive(Debug, Clone, Serialize)]
pub struct TrainRun {
    /// Training tokens per second (batch × context × iterations / training seconds).
    pub tokens_per_s: f64,
    /// Validation loss at the end of the run.
    pub val_loss: f64,
}

/// The trainer comparison.
#[derive(Debug, Clone, Serialize)]
pub struct TrainerResult {
    /// Iterations per run.
    pub iters: usize,
    /// Threads per engine.
    pub threads: usize,
    /// PyTorch's version string.
    pub torch: String,
    /// Our runs, in order.
    pub ours: Vec<TrainRun>,
    /// PyTorch's runs, in order.
    pub torch_runs: Vec<TrainRun>,
    /// Our tokens/s.
    pub ours_tokens_per_s: Summary,
    /// PyTorch's tokens/s.
    pub torch_tokens_per_s: Summary,
    /// ours / PyTorch tokens/s, pair by pair.
    pub ratio: Summary,
    /// 1-minute load average before the first run, from /proc/loadavg.
    pub load_before: Option<f64>,
}

fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn field(v: &serde_json::Value, k: &str, who: &str) -> Result<f64> {
    v.get(k)
        .and_then(|x| x.as_f64())
        .ok_or_else(|| Error::Io(format!("{who}: its JSON output lacks the number '{k}'")))
}

fn run_json(mut cmd: Command, json: &Path, who: &str) -> Result<serde_json::Value> {
    let out = cmd
        .output()
        .map_err(|e| Error::Io(format!("{who}: cannot start: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: String = err.lines().rev().take(5).collect::<Vec<_>>().join(" / ");
        return Err(Error::Io(format!("{who} failed ({}): {tail}", out.status)));
    }
    let bytes = std::fs::read(json).map_err(|e| Error::Io(format!("{}: {e}", json.display())))?;
    let _ = std::fs::remove_file(json);
    serde_json::from_slice(&bytes).map_err(|e| Error::Io(format!("{who} JSON: {e}")))
}

impl TrainerBench {
    fn ours_once(&self, json: &Path) -> Result<TrainRun> {
        let mut c = Command::new(&self.ours);
        c.arg("--text")
            .arg(&self.text)
            .args(["--iters", &self.iters.to_string()])
            .args(["--eval-windows", "240"])
            .arg("--json")
            .arg(json)
            .env("RAYON_NUM_THREADS", self.threads.to_string())
            .env("CANDLE_NUM_THREADS", self.threads.to_string());
        let v = run_json(c, json, "nanogpt-bench")?;
        Ok(TrainRun {
            tokens_per_s: field(&v, "tokens_per_s", "nanogpt-bench")?,
            val_loss: field(&v, "val_loss", "nanogpt-bench")?,
        })
    }

    fn torch_once(&self, json: &Path) -> Result<(TrainRun, String)> {
        let mut c = Command::new(&self.python);
        c.arg(&self.script)
            .arg("--text")
            .arg(&self.text)
            .args(["--iters", &self.iters.to_string()])
            .args(["--threads", &self.threads.to_string()])
            .args(["--eval-windows", "240"])
            .arg("--json")
            .arg(json);
        let v = run_json(c, json, "nanogpt_reference.py")?;
        let version = v
            .get("torch")
            .and_then(|x| x.as_str())
            .unwrap_or("unknown")
            .to_string();
        Ok((
            TrainRun {
                tokens_per_s: field(&v, "tokens_per_s", "nanogpt_reference.py")?,
                val_loss: field(&v, "val_loss", "nanogpt_reference.py")?,
            },
            version,
        ))
    }

    /// Runs the pairs; `tick` is called after each run.
    pub fn run(&self, mut tick: impl FnMut()) -> Result<TrainerResult> {
        for (p, what) in [
            (&self.text, "training text"),
            (&self.script, "reference script"),
            (&self.ours, "nanogpt-bench binary"),
        ] {
            if !p.is_file() {
                return Err(Error::Io(format!("{what} {} not found", p.display())));
            }
        }
        if self.iters == 0 || self.pairs == 0 || self.threads == 0 {
            return Err(Error::Io(
                "trainer bench: iterations, pairs and threads must be at least 1".into(),
            ));
        }
        let load_before = load_average();
        let json =
            std::env::temp_dir().join(format!("edgeloop-bench-{}-train.json", std::process::id()));
        let (mut ours, mut theirs, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        let mut torch = String::from("unknown");
        for k in 0..self.pairs {
            // Alternate the order so neither engine always runs on the warmer (or busier) slot.
            let (o, t) = if k % 2 == 0 {
                let o = self.ours_once(&json)?;
                tick();
                let t = self.torch_once(&json)?;
                tick();
                (o, t)
            } else {
                let t = self.torch_once(&json)?;
                tick();
                let o = self.ours_once(&json)?;
                tick();
                (o, t)
            };
            torch = t.1;
            ratios.push(o.tokens_per_s / t.0.tokens_per_s);
            ours.push(o);
            theirs.push(t.0);
        }
        let tps = |v: &[TrainRun]| summarize(&v.iter().map(|r| r.tokens_per_s).collect::<Vec<_>>());
        Ok(TrainerResult {
            iters: self.iters,
            threads: self.threads,
            torch,
            ours_tokens_per_s: tps(&ours),
            torch_tokens_per_s: tps(&theirs),
            ratio: summarize(&ratios),
            ours,
            torch_runs: theirs,
            load_before,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_inputs_are_named() {
        let b = TrainerBench {
            text: PathBuf::from("/nonexistent/text.txt"),
            python: PathBuf::from("python3"),
            script: PathBuf::from("/nonexistent/ref.py"),
            ours: PathBuf::from("/nonexistent/nanogpt-bench"),
            iters: 1,
            pairs: 1,
            threads: 1,
        };
        let e = b.run(|| {}).expect_err("nothing exists").to_string();
        assert!(e.contains("training text"), "{e}");
    }

    #[test]
    fn missing_json_fields_are_named() {
        let v: serde_json::Value = serde_json::json!({"tokens_per_s": 3.0});
        assert_eq!(field(&v, "tokens_per_s", "x").ok(), Some(3.0));
        let e = field(&v, "val_loss", "x").expect_err("absent").to_string();
        assert!(e.contains("val_loss"), "{e}");
    }
}
