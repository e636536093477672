//! The run's state file, `state.json`: what `edgeloop retrain --run DIR` needs to pick a demo run
//! up where it left off — the data files and tokenizer, the deployed model (checkpoint, image,
//! scores), the telemetry stores and the drift window — so the loop goes on with new telemetry
//! (from `edgeloop serve`, `edgeloop flash --qemu`, `edgeloop telemetry ingest`) after the demo
//! has finished. Paths are relative to the run folder, so a run folder can be moved.

use std::path::{Path, PathBuf};

use anyhow::Context;
use edgeloop_quantize::sign;
use edgeloop_trainer::tokenizer::Tokenizer;
use edgeloop_trainer::train::jobs;
use serde::{Deserialize, Serialize};

use super::data::{Data, DataSummary};
use super::deploy::{Deployment, Keys};
use super::train::{relative, Classifier};
use super::{write_json, Ctx, Sizes};

/// File name of the state inside the run folder.
pub const STATE_FILE: &str = "state.json";

/// The data stage's files.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DataFiles {
    /// Lab training split.
    pub train: String,
    /// Lab validation split.
    pub val: String,
    /// Lab test split.
    pub test: String,
    /// Pretraining text, train.
    pub pretrain_train: String,
    /// Pretraining text, validation.
    pub pretrain_val: String,
    /// Field stream (what devices saw).
    pub field_stream: String,
    /// Field hold-out (the gate's field set).
    pub field_holdout: String,
    /// Tokenizer.
    pub tokenizer: String,
    /// The data stage's summary.
    pub summary: DataSummary,
}

/// The model the fleet runs now.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deployed {
    /// Its classifier checkpoint folder.
    pub classifier_dir: String,
    /// Its fp32 ONNX export.
    pub onnx: String,
    /// Its deployment (image, scores, labels).
    pub deployment: Deployment,
    /// When it was deployed, ms since the Unix epoch.
    pub deployed_at_ms: i64,
}

/// Everything in `state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunState {
    /// Seed of the run.
    pub seed: u64,
    /// Sizes of the run.
    pub sizes: Sizes,
    /// Data files.
    pub data: DataFiles,
    /// The deployed model.
    pub deployed: Deployed,
    /// Versions deployed so far, oldest first.
    pub history: Vec<u32>,
    /// Reference telemetry store (the deployed image on lab data).
    pub reference_store: String,
    /// Field telemetry store.
    pub field_store: String,
    /// Events per host drift window.
    pub drift_window: usize,
    /// The deployed assistant (absent in runs made before it was recorded).
    #[serde(default)]
    pub assistant: Option<super::assistant::AssistantState>,
}

impl RunState {
    /// The state after the demo's data stage, v1 and the fleet.
    pub fn new(
        ctx: &Ctx,
        data: &Data,
        classifier: &Classifier,
        v1: &Deployment,
        stores: (&Path, &Path),
        drift_window: usize,
    ) -> Self {
        let rel = |p: &Path| relative(&ctx.out, p);
        RunState {
            seed: ctx.seed,
            sizes: ctx.sizes.clone(),
            data: DataFiles {
                train: rel(&data.train),
                val: rel(&data.val),
                test: rel(&data.test),
                pretrain_train: rel(&data.pretrain.0),
                pretrain_val: rel(&data.pretrain.1),
                field_stream: rel(&ctx.out.join("data/field_stream.jsonl")),
                field_holdout: rel(&data.field_holdout),
                tokenizer: rel(&ctx.out.join("data/tokenizer.json")),
                summary: data.summary.clone(),
            },
            deployed: Deployed {
                classifier_dir: rel(&classifier.model_dir),
                onnx: rel(&classifier.onnx),
                deployment: v1.clone(),
                deployed_at_ms: edgeloop_monitor::ingest::now_ms(),
            },
            history: vec![v1.version],
            reference_store: rel(stores.0),
            field_store: rel(stores.1),
            drift_window,
            assistant: None,
        }
    }

    /// Records that `classifier` / `deployment` replaced the deployed model.
    pub fn deploy(&mut self, ctx: &Ctx, classifier: &Classifier, deployment: &Deployment) {
        self.deployed = Deployed {
            classifier_dir: relative(&ctx.out, &classifier.model_dir),
            onnx: relative(&ctx.out, &classifier.onnx),
            deployment: deployment.clone(),
            deployed_at_ms: edgeloop_monitor::ingest::now_ms(),
        };
        self.history.push(deployment.version);
    }

    /// Writes `out/state.json`.
    pub fn write(&self, out: &Path) -> anyhow::Result<()> {
        write_json(&out.join(STATE_FILE), self)
    }

    /// Reads `out/state.json`.
    pub fn read(out: &Path) -> anyhow::Result<Self> {
        let path = out.join(STATE_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "reading {} (made by `edgeloop demo --out {}`)",
                path.display(),
                out.display()
            )
        })?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// The run context for `out`, training on `device` (`cpu`, `cuda`, `cuda:N`).
    pub fn ctx(&self, out: &Path, progress: bool, device: &str) -> Ctx {
        Ctx {
            out: out.to_path_buf(),
            sizes: self.sizes.clone(),
            seed: self.seed,
            progress,
            device: device.to_string(),
        }
    }

    /// The data stage's files and tokenizer, checked to exist.
    pub fn data(&self, out: &Path) -> anyhow::Result<Data> {
        let f = &self.data;
        let path = |rel: &str| -> anyhow::Result<PathBuf> {
            let p = out.join(rel);
            anyhow::ensure!(
                p.exists(),
                "{} is missing (listed in {STATE_FILE})",
                p.display()
            );
            Ok(p)
        };
        let tokenizer_path = path(&f.tokenizer)?;
        Ok(Data {
            train: path(&f.train)?,
            val: path(&f.val)?,
            test: path(&f.test)?,
            pretrain: (path(&f.pretrain_train)?, path(&f.pretrain_val)?),
            field_stream: jobs::read_texts(&path(&f.field_stream)?)?,
            field_holdout: path(&f.field_holdout)?,
            tokenizer: Tokenizer::load(&tokenizer_path)
                .with_context(|| format!("loading {}", tokenizer_path.display()))?,
            summary: f.summary.clone(),
        })
    }

    /// The deployed classifier.
    pub fn classifier(&self, out: &Path) -> Classifier {
        let d = &self.deployed;
        Classifier {
            model_dir: out.join(&d.classifier_dir),
            onnx: out.join(&d.onnx),
            labels: d.deployment.labels.clone(),
            max_len: d.deployment.max_len,
        }
    }
}

/// The fleet's signing keys from `out/keys/`.
pub fn read_keys(out: &Path) -> anyhow::Result<Keys> {
    let dir = out.join("keys");
    let secret_path = dir.join(sign::SECRET_KEY_FILE);
    let public_path = dir.join(sign::PUBLIC_KEY_FILE);
    Ok(Keys {
        secret: sign::read_secret_key(&secret_path)
            .with_context(|| format!("reading the signing key {}", secret_path.display()))?,
        public: sign::read_public_key(&public_path)
            .with_context(|| format!("reading the public key {}", public_path.display()))?,
        public_path,
    })
}
