//! `edgeloop demo`: the whole loop on the data that ships with the project.
//!
//! Stages, each in its own module, each writing its artifacts under `runs/<name>/`:
//! [`data`] (generate the lab and field corpora, select, split, tokenizer) → [`train`] (pretrain a
//! tiny GPT and a tiny encoder, fine-tune the intent classifier, export fp32 ONNX) →
//! [`deploy`] (quantize to int8 QDQ ONNX, compile a signed model image, score fp32 / int8 ONNX /
//! image side by side) → [`explain`] (integrated gradients, occlusion) → [`cortex_m4`] (the image on the emulated Cortex-M4F in QEMU, when
//! installed) → [`fleet`] (simulated devices run the image on shifted field data; their
//! telemetry crosses the byte framing into the Parquet store; drift on device and on the host) →
//! [`retrain`] (corrections + replay, fine-tune from the deployed checkpoint, evaluation gate,
//! v2 image and rollout manifest) → [`assistant`] (the GPT instruction-tuned, deployed, rated in the
//! field; preference pairs → DPO → gate → v2) → [`report`] (`report.html`). [`state`] keeps what
//! `edgeloop retrain --run DIR` needs to run the policy again on later telemetry.

pub mod assistant;
pub mod cortex_m4;
pub mod data;
pub mod deploy;
pub mod device;
pub mod explain;
pub mod fleet;
pub mod report;
pub mod retrain;
pub mod state;
pub mod train;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use edgeloop_monitor::policy::{Evidence, Policy};
use serde::{Deserialize, Serialize};

/// Sizes of one demo run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sizes {
    /// Labelled lab examples generated (before selection).
    pub lab_labelled: usize,
    /// Labelled field examples generated.
    pub field_labelled: usize,
    /// Bytes of pretraining text (lab).
    pub pretrain_bytes: usize,
    /// BPE vocabulary size.
    pub vocab: usize,
    /// Encoder width.
    pub hidden: usize,
    /// Encoder layers.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// Tokens per classifier input (fixed length on the device).
    pub max_len: usize,
    /// Pretraining steps (each model).
    pub pretrain_steps: usize,
    /// Fine-tuning steps.
    pub finetune_steps: usize,
    /// Retraining steps.
    pub retrain_steps: usize,
    /// Sequences per batch.
    pub batch: usize,
    /// Calibration samples for the quantizer.
    pub calibration: usize,
    /// Simulated devices.
    pub devices: usize,
    /// Field inferences per device.
    pub per_device: usize,
    /// Share of field inferences that get a user correction (feedback record).
    pub feedback_rate: f64,
    /// Assistant: lab instruction pairs generated (SFT train / validation / test).
    #[serde(default)]
    pub assistant_lab: usize,
    /// Assistant: field prompts generated (answered by devices / held out).
    #[serde(default)]
    pub assistant_field: usize,
    /// Assistant: instruction-tuning steps.
    #[serde(default)]
    pub sft_steps: usize,
    /// Assistant: DPO steps on the field preference pairs.
    #[serde(default)]
    pub dpo_steps: usize,
    /// Assistant: preference pairs the policy needs before it retrains.
    #[serde(default)]
    pub min_preference_pairs: usize,
}

impl Sizes {
    /// The default run: minutes on a 2-core CPU.
    pub fn full() -> Self {
        Sizes {
            lab_labelled: 4000,
            field_labelled: 2400,
            pretrain_bytes: 300_000,
            vocab: 512,
            hidden: 64,
            layers: 2,
            heads: 4,
            max_len: 24,
            pretrain_steps: 250,
            finetune_steps: 1000,
            retrain_steps: 600,
            batch: 32,
            calibration: 64,
            devices: 4,
            per_device: 300,
            feedback_rate: 0.3,
            assistant_lab: 2500,
            assistant_field: 600,
            sft_steps: 600,
            dpo_steps: 150,
            min_preference_pairs: 20,
        }
    }

    /// `--fast`: seconds, tiny sizes (the test suite runs this end to end).
    pub fn fast() -> Self {
        Sizes {
            lab_labelled: 1000,
            field_labelled: 800,
            pretrain_bytes: 40_000,
            vocab: 512,
            hidden: 32,
            layers: 1,
            heads: 2,
            max_len: 20,
            pretrain_steps: 60,
            finetune_steps: 400,
            // 300 steps overfit the few hundred feedback examples: field +12.0 points but lab
            // -2.1, rejected; 80 steps: field +11.0, lab +3.2 (same run, same store)
            retrain_steps: 80,
            batch: 32,
            calibration: 16,
            devices: 3,
            per_device: 120,
            feedback_rate: 0.5,
            assistant_lab: 800,
            assistant_field: 240,
            sft_steps: 300,
            dpo_steps: 60,
            min_preference_pairs: 4,
        }
    }
}

impl Sizes {
    /// `base` with the fields of the JSON object in `path` replaced (a demo `--config`): e.g.
    /// `{"hidden": 96, "layers": 3, "finetune_steps": 2000}`. Unknown fields and wrong types
    /// are errors naming the file and the field.
    pub fn with_overrides(base: Sizes, path: &Path) -> anyhow::Result<Sizes> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading demo config {}", path.display()))?;
        Self::with_overrides_str(base, &text)
            .with_context(|| format!("demo config {}", path.display()))
    }

    /// [`Sizes::with_overrides`] on JSON text.
    pub fn with_overrides_str(base: Sizes, text: &str) -> anyhow::Result<Sizes> {
        let user: serde_json::Value = serde_json::from_str(text)
            .context("not JSON: expected an object such as {\"hidden\": 96, \"layers\": 3}")?;
        let serde_json::Value::Object(user) = user else {
            anyhow::bail!("expected a JSON object of sizes, such as {{\"hidden\": 96}}");
        };
        let mut merged = serde_json::to_value(&base)?;
        let fields = merged
            .as_object_mut()
            .context("sizes serialize to an object")?;
        for (key, value) in user {
            let Some(slot) = fields.get_mut(&key) else {
                let known: Vec<&str> = fields.keys().map(String::as_str).collect();
                anyhow::bail!(
                    "unknown field `{key}`: the demo's sizes are {}",
                    known.join(", ")
                );
            };
            // Each field alone, so a type error names it.
            let mut probe = serde_json::to_value(&base)?;
            if let Some(o) = probe.as_object_mut() {
                o.insert(key.clone(), value.clone());
            }
            serde_json::from_value::<Sizes>(probe)
                .with_context(|| format!("field `{key}`: {value} has the wrong type"))?;
            *slot = value;
        }
        let sizes: Sizes = serde_json::from_value(merged)?;
        sizes.validate()?;
        Ok(sizes)
    }

    /// Checks what the stages need: non-zero sizes, heads dividing the width, a rate in [0, 1].
    pub fn validate(&self) -> anyhow::Result<()> {
        let positive = [
            ("lab_labelled", self.lab_labelled),
            ("field_labelled", self.field_labelled),
            ("pretrain_bytes", self.pretrain_bytes),
            ("vocab", self.vocab),
            ("hidden", self.hidden),
            ("layers", self.layers),
            ("heads", self.heads),
            ("max_len", self.max_len),
            ("pretrain_steps", self.pretrain_steps),
            ("finetune_steps", self.finetune_steps),
            ("batch", self.batch),
            ("calibration", self.calibration),
            ("devices", self.devices),
            ("per_device", self.per_device),
        ];
        for (name, v) in positive {
            anyhow::ensure!(v > 0, "field `{name}` must be at least 1, got 0");
        }
        anyhow::ensure!(
            self.hidden.is_multiple_of(self.heads),
            "field `hidden` ({}) must be a multiple of `heads` ({})",
            self.hidden,
            self.heads
        );
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.feedback_rate),
            "field `feedback_rate` must be in [0, 1], got {}",
            self.feedback_rate
        );
        Ok(())
    }
}

/// What every stage sees.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Run folder.
    pub out: PathBuf,
    /// Sizes.
    pub sizes: Sizes,
    /// Seed of everything.
    pub seed: u64,
    /// Progress bars.
    pub progress: bool,
    /// Compute device of the training stages (`cpu`, `cuda`, `cuda:N`); evaluation, export,
    /// quantization and the runtime stay on the CPU.
    pub device: String,
}

impl Ctx {
    /// The candle device the training stages run on.
    pub fn train_device(&self) -> anyhow::Result<edgeloop_trainer::candle_core::Device> {
        edgeloop_trainer::train::jobs::device(&self.device)
            .with_context(|| format!("--device {}", self.device))
    }

    /// `out/<rel>`, created as a folder.
    pub fn dir(&self, rel: &str) -> anyhow::Result<PathBuf> {
        let d = self.out.join(rel);
        std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        Ok(d)
    }
}

/// Timing of one stage.
#[derive(Debug, Clone, Serialize)]
pub struct StageTime {
    /// Stage name.
    pub stage: String,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// Runs `f` as stage `name`, printing a header and recording its time.
pub fn stage<T>(
    times: &mut Vec<StageTime>,
    name: &str,
    f: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    crate::say!("\n== {name}");
    let t = Instant::now();
    let r = f().with_context(|| format!("stage {name}"))?;
    let seconds = t.elapsed().as_secs_f64();
    crate::say!("   ({seconds:.1} s)");
    times.push(StageTime {
        stage: name.to_string(),
        seconds,
    });
    Ok(r)
}

/// Writes `value` as pretty JSON to `path`.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    let s = serde_json::to_string_pretty(value)?;
    std::fs::write(path, s).with_context(|| format!("writing {}", path.display()))
}

/// Everything the run produced, written to `summary.json`.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Seed of the run.
    pub seed: u64,
    /// Sizes used.
    pub sizes: Sizes,
    /// Data stage.
    pub data: data::DataSummary,
    /// Training stage.
    pub train: train::TrainSummary,
    /// v1 deployment.
    pub v1: deploy::Deployment,
    /// Integrated gradients (fp32) and occlusion (int8 image) on a few lab test inputs.
    pub explained: Vec<explain::Explained>,
    /// v1 on the emulated Cortex-M4 (QEMU), when installed.
    pub cortex_m4: cortex_m4::CortexM4Summary,
    /// Field simulation.
    pub fleet: fleet::FleetSummary,
    /// Retraining and v2.
    pub retrain: retrain::RetrainSummary,
    /// The assistant: SFT, field ratings, preference pairs, DPO, gate.
    pub assistant: assistant::AssistantSummary,
    /// Stage times.
    pub times: Vec<StageTime>,
}

/// Runs the whole loop with `sizes` (see [`Sizes::full`], [`Sizes::fast`],
/// [`Sizes::with_overrides`]), training on `device`.
pub fn run(
    out: &Path,
    sizes: Sizes,
    seed: u64,
    progress: bool,
    device: &str,
) -> anyhow::Result<Summary> {
    sizes.validate()?;
    let ctx = Ctx {
        out: out.to_path_buf(),
        sizes,
        seed,
        progress,
        device: device.to_string(),
    };
    // Fail before any work when the device is not there (no CUDA build, no GPU).
    ctx.train_device()?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let t0 = Instant::now();
    let mut times = Vec::new();
    let data = stage(
        &mut times,
        "data: generate, select, split, tokenizer",
        || data::run(&ctx),
    )?;
    let trained = stage(
        &mut times,
        "train: pretrain GPT + encoder, fine-tune the classifier",
        || train::run(&ctx, &data),
    )?;
    let keys = stage(&mut times, "keys: Ed25519 signing key", || {
        deploy::keys(&ctx)
    })?;
    let v1 = stage(
        &mut times,
        "deploy v1: quantize, compile (signed), evaluate fp32 / int8 / image",
        || deploy::deploy(&ctx, &data, &trained.classifier, &keys, 1),
    )?;
    let explained = stage(
        &mut times,
        "explain: integrated gradients (fp32) and occlusion (int8 image)",
        || explain::run(&ctx, &data, &trained.classifier, &v1, &keys),
    )?;
    let m4 = stage(
        &mut times,
        "device: v1 on the emulated Cortex-M4 (QEMU), bit-exact check, telemetry",
        || cortex_m4::run(&ctx, &data, &v1),
    )?;
    let fleet = stage(
        &mut times,
        "field: devices on shifted data, telemetry, drift",
        || fleet::simulate(&ctx, &data, &v1, &keys),
    )?;
    let mut state = state::RunState::new(
        &ctx,
        &data,
        &trained.classifier,
        &v1,
        (&fleet.reference_store, &fleet.store),
        fleet.drift_window,
    );
    let field = retrain::FieldEvidence {
        store: fleet.store.clone(),
        evidence: Evidence {
            drifted_windows: fleet.report.drifted_windows(),
            windows: fleet.report.windows.len(),
            device_alarms: fleet.report.device_alarms,
            ..Evidence::default()
        },
    };
    let retrained = stage(
        &mut times,
        "retrain: corrections + replay, gate, v2 image",
        || {
            retrain::run(
                &ctx,
                &data,
                &trained.classifier,
                &v1,
                &field,
                &keys,
                &Policy::default(),
            )
        },
    )?;
    if let (true, Some(v2), Some(c)) = (
        retrained.accepted,
        retrained.v2.as_ref(),
        retrained.classifier.as_ref(),
    ) {
        state.deploy(&ctx, c, v2);
    }
    state.write(out)?;
    let assistant = stage(
        &mut times,
        "assistant: SFT, field ratings → preference pairs → DPO, gate, v2 image",
        || {
            assistant::run(
                &ctx,
                &data.tokenizer,
                &trained.gpt_dir,
                &keys,
                &Policy::default(),
            )
        },
    )?;
    state.assistant = Some(assistant.state.clone());
    state.write(out)?;
    let summary = Summary {
        seed,
        sizes: ctx.sizes.clone(),
        data: data.summary.clone(),
        train: trained.summary.clone(),
        v1: v1.clone(),
        explained,
        cortex_m4: m4,
        fleet: fleet.summary.clone(),
        retrain: retrained,
        assistant,
        times,
    };
    write_json(&out.join("summary.json"), &summary)?;
    let html = report::write(&ctx, &summary)?;
    crate::say!(
        "\nedgeloop demo finished in {:.0} s: {}",
        t0.elapsed().as_secs_f64(),
        html.display()
    );
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::Sizes;

    #[test]
    fn overrides_replace_only_the_named_sizes() {
        let s = Sizes::with_overrides_str(
            Sizes::fast(),
            r#"{"hidden": 48, "heads": 3, "finetune_steps": 5}"#,
        )
        .expect("valid overrides");
        assert_eq!((s.hidden, s.heads, s.finetune_steps), (48, 3, 5));
        let f = Sizes::fast();
        assert_eq!((s.layers, s.vocab, s.batch), (f.layers, f.vocab, f.batch));
    }

    #[test]
    fn bad_overrides_name_the_field() {
        let err = |text: &str| {
            format!(
                "{:#}",
                Sizes::with_overrides_str(Sizes::full(), text).expect_err(text)
            )
        };
        assert!(err(r#"{"widht": 3}"#).contains("unknown field `widht`"));
        assert!(err(r#"{"layers": -1}"#).contains("field `layers`"));
        assert!(err(r#"{"batch": 0}"#).contains("field `batch` must be at least 1"));
        assert!(err(r#"{"feedback_rate": 2.0}"#).contains("feedback_rate"));
        assert!(err(r#"{"hidden": 50}"#).contains("multiple of `heads`"));
        assert!(err("[1, 2]").contains("JSON object"));
        assert!(err("{").contains("not JSON"));
    }

    #[test]
    fn the_shipped_sizes_are_valid() {
        Sizes::full().validate().expect("full");
        Sizes::fast().validate().expect("fast");
    }
}
