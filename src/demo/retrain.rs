//! Demo stage 7: the retraining policy. Triggers (drift on the host or on devices, enough
//! corrections) → retraining set from the store's feedback (corrected and confirmed inputs,
//! decoded from the sampled token ids, oversampled 2×) plus a replay sample of the original
//! training data,
//! deduplicated and purged of anything in the held-out sets → fine-tune from the deployed
//! checkpoint → quantize, compile, sign as version + 1 → evaluation gate (must improve on the
//! held-out field set, must not regress on the lab test set beyond a tolerance) → rollout
//! manifest, or a rejection that says why.

use std::collections::HashSet;
use std::path::PathBuf;

use anyhow::{bail, Context};
use edgeloop_monitor::policy::{self, Evidence, GateScores, Policy};
use edgeloop_monitor::store;
use edgeloop_trainer::data::Record;
use edgeloop_trainer::train::jobs::{self, ClassifyOptions};
use serde::{Deserialize, Serialize};

use super::data::{write_records, Data};
use super::deploy::{self, Deployment, Keys};
use super::train::{self as train_stage, relative, Classifier};
use super::{write_json, Ctx};

/// The staged rollout every accepted candidate's manifest names: canary, half, all.
pub fn rollout_stages() -> serde_json::Value {
    serde_json::json!([
        {"stage": "canary", "share": 0.05},
        {"stage": "half", "share": 0.5},
        {"stage": "all", "share": 1.0}
    ])
}

/// The telemetry the policy looks at: where it is stored and what the drift analysis found.
#[derive(Debug, Clone)]
pub struct FieldEvidence {
    /// The telemetry store (Parquet).
    pub store: PathBuf,
    /// Drift windows, alarms and the deployed model's age; `corrections` is filled from the
    /// store by [`run`].
    pub evidence: Evidence,
}

/// What the retraining stage reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RetrainSummary {
    /// The version a candidate gets (deployed version + 1).
    pub version: u32,
    /// The policy's thresholds.
    pub policy: Policy,
    /// What the telemetry showed.
    pub evidence: Evidence,
    /// Why retraining ran (empty: it did not).
    pub triggers: Vec<String>,
    /// Examples from field feedback (after dedup and leak removal).
    pub feedback_examples: usize,
    /// Replayed original training examples.
    pub replay_examples: usize,
    /// Feedback examples dropped because their text is in a held-out set.
    pub leaks_removed: usize,
    /// Duplicates removed.
    pub duplicates_removed: usize,
    /// Feedback without a usable input or class.
    pub unusable_feedback: usize,
    /// The candidate, when one was built.
    pub v2: Option<Deployment>,
    /// Gate decision.
    pub accepted: bool,
    /// Why (both criteria with their numbers).
    pub gate: Vec<String>,
    /// Rollout manifest (when accepted), relative to the run folder.
    pub manifest: Option<String>,
    /// The candidate's classifier checkpoint (not in the JSON).
    #[serde(skip)]
    pub classifier: Option<Classifier>,
}

/// Image accuracy of `d` on the lab test set and the field hold-out.
fn image_scores(d: &Deployment) -> anyhow::Result<GateScores> {
    let row = d
        .forms
        .iter()
        .find(|r| r.form.starts_with("int8 image"))
        .context("the deployment has no image score")?;
    Ok(GateScores {
        lab: row.lab.accuracy,
        field: row.field.accuracy,
    })
}

/// Runs the stage: the policy on `field`, and when a trigger fires, a candidate fine-tuned from
/// the `deployed` classifier (its encoder and head), deployed as version + 1 under
/// `retrain/v<N>/` and `deploy/v<N>/`, and the gate.
#[allow(clippy::too_many_arguments)]
pub fn run(
    ctx: &Ctx,
    data: &Data,
    deployed: &Classifier,
    current: &Deployment,
    field: &FieldEvidence,
    keys: &Keys,
    policy: &Policy,
) -> anyhow::Result<RetrainSummary> {
    let version = current.version + 1;
    let dir = ctx.dir(&format!("retrain/v{version}"))?;
    let tok = &data.tokenizer;
    let pad = tok.specials().pad.unwrap_or(0);

    let stored = store::read(&field.store)
        .with_context(|| format!("reading the telemetry store {}", field.store.display()))?;
    let mut evidence = field.evidence.clone();
    evidence.corrections = stored
        .feedback
        .iter()
        .filter(|f| f.correction.is_some())
        .count();
    let triggers = policy.triggers(&evidence);
    let mut summary = RetrainSummary {
        version,
        policy: policy.clone(),
        evidence,
        triggers: triggers.clone(),
        feedback_examples: 0,
        replay_examples: 0,
        leaks_removed: 0,
        duplicates_removed: 0,
        unusable_feedback: 0,
        v2: None,
        accepted: false,
        gate: Vec::new(),
        manifest: None,
        classifier: None,
    };
    if triggers.is_empty() {
        crate::say!("no trigger fired: v{} stays deployed", current.version);
        summary.gate.push(format!(
            "no retraining: no trigger fired ({} drifted windows, {} device alarms, {} corrections)",
            summary.evidence.drifted_windows,
            summary.evidence.device_alarms,
            summary.evidence.corrections
        ));
        write_json(&dir.join("retrain.json"), &summary)?;
        return Ok(summary);
    }
    crate::say!("retraining triggered by: {}", triggers.join("; "));

    // Feedback → labelled examples, minus anything in the held-out sets (compared as the
    // token ids the devices sample) and repeats.
    let held_out: HashSet<Vec<i32>> = jobs::read_texts(&data.test)?
        .into_iter()
        .chain(jobs::read_texts(&data.field_holdout)?)
        .map(|r| super::device::encode(tok, &r.text, deployed.max_len))
        .collect::<anyhow::Result<_>>()?;
    let set = policy::feedback_examples(&stored, &held_out);
    summary.leaks_removed = set.leaks_removed;
    summary.duplicates_removed = set.duplicates_removed;
    summary.unusable_feedback = set.unusable;
    let mut examples = Vec::new();
    for ex in &set.examples {
        let Some(label) = current.labels.get(usize::from(ex.class)) else {
            summary.unusable_feedback += 1;
            continue;
        };
        let ids: Vec<u32> = ex
            .sample
            .iter()
            .filter(|&&v| v >= 0 && v as u32 != pad)
            .map(|&v| v as u32)
            .collect();
        let text = tok.decode(&ids)?;
        examples.push(Record::labelled(
            text,
            label.clone(),
            [("source".to_string(), "field-feedback".to_string())],
        ));
    }
    summary.feedback_examples = examples.len();
    // Field examples are few next to the replay: each appears twice (oversampling).
    let field_examples = examples.clone();
    examples.extend(field_examples);
    // Replay: as many original training examples as feedback examples (at least 1×), so the
    // model keeps what it knew.
    let train = jobs::read_texts(&data.train)?;
    let replay_n = summary
        .feedback_examples
        .max(train.len() / 2)
        .min(train.len());
    let step = (train.len() / replay_n.max(1)).max(1);
    let mut replay = 0;
    for r in train.iter().step_by(step).take(replay_n) {
        examples.push(r.clone());
        replay += 1;
    }
    summary.replay_examples = replay;
    let retrain_train = dir.join("train.jsonl");
    write_records(&retrain_train, &examples)?;
    crate::say!(
        "retraining set: {} from field feedback ({} leaks into held-out sets removed, {} duplicates), {} replayed lab examples",
        summary.feedback_examples, summary.leaks_removed, summary.duplicates_removed, replay
    );

    // Fine-tune from the deployed checkpoint: its encoder and its classification head.
    let base = jobs::load_base(&deployed.model_dir, &ctx.train_device()?)?;
    let c = jobs::finetune_classifier(
        base,
        &retrain_train,
        &data.val,
        &ClassifyOptions {
            lora: None,
            qat: false,
            max_len: deployed.max_len,
            fixed_length: true,
            keep_head: true,
        },
        &train_stage::common(
            ctx,
            ctx.out.join(format!("classifier-v{version}")),
            ctx.sizes.retrain_steps,
            2e-3,
            true,
        )?,
    )
    .context("fine-tuning the v2 classifier")?;
    let labels = train_stage::read_labels(&c.model_dir)?;
    if labels != current.labels {
        bail!(
            "the retraining set's labels differ from the deployed model's ({} vs {}): the rollout would change the output layout",
            labels.len(),
            current.labels.len()
        );
    }
    let v2_classifier = Classifier {
        model_dir: c.model_dir.clone(),
        onnx: c.onnx.clone().context("no ONNX export of the candidate")?,
        labels,
        max_len: deployed.max_len,
    };
    let v2 = deploy::deploy(ctx, data, &v2_classifier, keys, version)?;

    // The gate.
    let decision = policy.gate(image_scores(current)?, image_scores(&v2)?);
    summary.accepted = decision.accepted;
    summary.gate = decision.lines;
    for g in &summary.gate {
        crate::say!("gate: {g}");
    }
    if summary.accepted {
        let manifest = serde_json::json!({
            "model": "intent-classifier",
            "version": v2.version,
            "replaces": current.version,
            "image": v2.image,
            "image_bytes": v2.image_bytes,
            "arena_bytes": v2.arena_bytes,
            "signed_by": relative(&ctx.out, &keys.public_path),
            "key_id": keys.public.key_id().iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "gate": summary.gate,
            "rollout": rollout_stages(),
            "rollback_to": current.image,
        });
        let path = dir.join("rollout.json");
        write_json(&path, &manifest)?;
        summary.manifest = Some(relative(&ctx.out, &path));
        crate::say!("v{version} accepted: rollout manifest {}", path.display());
    } else {
        crate::say!(
            "v{version} rejected: v{} stays deployed (see the gate lines above)",
            current.version
        );
    }
    summary.v2 = Some(v2);
    summary.classifier = Some(v2_classifier);
    write_json(&dir.join("retrain.json"), &summary)?;
    Ok(summary)
}
