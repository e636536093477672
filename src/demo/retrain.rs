//! Demo stage 7: the retraining policy. Triggers (drift on the host or on devices, enough
//! corrections) → retraining set from the store's feedback (corrected and confirmed inputs,
//! decoded from the sampled token ids, oversampled 2×) plus a replay sample of the original
//! training data,
//! deduplicated and purged of anything in the held-out sets → fine-tune from the deployed
//! checkpoint → quantize, compile, sign as version + 1 → evaluation gate (must improve on the
//! held-out field set, must not regress on the lab test set beyond a tolerance) → rollout
//! manifest, or a rejection that says why.

use std::collections::{HashMap, HashSet};

use anyhow::{bail, Context};
use edgeloop_monitor::store;
use edgeloop_trainer::data::Record;
use edgeloop_trainer::train::jobs::{self, ClassifyOptions};
use serde::Serialize;

use super::data::{write_records, Data};
use super::deploy::{self, Deployment, Keys};
use super::fleet::Fleet;
use super::train::{self as train_stage, relative, Classifier};
use super::{write_json, Ctx};

/// Gate tolerance: the lab test accuracy may drop at most this much.
pub const LAB_TOLERANCE: f64 = 0.02;
/// Gate: the field accuracy must rise at least this much.
pub const MIN_FIELD_GAIN: f64 = 0.0;
/// Corrections that trigger retraining on their own.
pub const MIN_CORRECTIONS: usize = 20;

/// What the retraining stage reports.
#[derive(Debug, Clone, Serialize)]
pub struct RetrainSummary {
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
    /// The candidate, when one was built.
    pub v2: Option<Deployment>,
    /// Gate decision.
    pub accepted: bool,
    /// Why (both criteria with their numbers).
    pub gate: Vec<String>,
    /// Rollout manifest (when accepted), relative to the run folder.
    pub manifest: Option<String>,
}

/// Image accuracy of `d` on (lab test, field hold-out).
fn image_scores(d: &Deployment) -> anyhow::Result<(f64, f64)> {
    let row = d
        .forms
        .iter()
        .find(|r| r.form.starts_with("int8 image"))
        .context("the deployment has no image score")?;
    Ok((row.lab.accuracy, row.field.accuracy))
}

/// Runs the stage.
pub fn run(
    ctx: &Ctx,
    data: &Data,
    deployed: &Classifier,
    v1: &Deployment,
    fleet: &Fleet,
    keys: &Keys,
) -> anyhow::Result<RetrainSummary> {
    let dir = ctx.dir("retrain")?;
    let tok = &data.tokenizer;
    let pad = tok.specials().pad.unwrap_or(0);

    // Triggers.
    let mut triggers = Vec::new();
    if fleet.report.drifted_windows() > 0 {
        triggers.push(format!(
            "host drift: {} of {} windows",
            fleet.report.drifted_windows(),
            fleet.report.windows.len()
        ));
    }
    if fleet.report.device_alarms > 0 {
        triggers.push(format!(
            "on-device drift alarms: {}",
            fleet.report.device_alarms
        ));
    }
    let stored = store::read(&fleet.store)?;
    let corrections = stored
        .feedback
        .iter()
        .filter(|f| f.correction.is_some())
        .count();
    if corrections >= MIN_CORRECTIONS {
        triggers.push(format!("{corrections} user corrections"));
    }
    let mut summary = RetrainSummary {
        triggers: triggers.clone(),
        feedback_examples: 0,
        replay_examples: 0,
        leaks_removed: 0,
        duplicates_removed: 0,
        v2: None,
        accepted: false,
        gate: Vec::new(),
        manifest: None,
    };
    if triggers.is_empty() {
        println!("no trigger fired: v1 stays deployed");
        summary
            .gate
            .push("no retraining: no drift and too few corrections".into());
        write_json(&dir.join("retrain.json"), &summary)?;
        return Ok(summary);
    }
    println!("retraining triggered by: {}", triggers.join("; "));

    // Feedback → labelled examples: a correction gives the right class; a thumbs-up confirms
    // the predicted class (looked up from the inference row).
    let predicted: HashMap<(u64, u32, u32), u16> = stored
        .inferences
        .iter()
        .map(|r| {
            (
                (r.common.partition.device, r.common.boot, r.common.seq),
                r.class,
            )
        })
        .collect();
    let held_out: HashSet<String> = jobs::read_texts(&data.test)?
        .into_iter()
        .chain(jobs::read_texts(&data.field_holdout)?)
        .map(|r| {
            Ok(format!(
                "{:?}",
                super::device::encode(tok, &r.text, deployed.max_len)?
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    let mut seen: HashSet<String> = HashSet::new();
    let mut examples = Vec::new();
    for f in &stored.feedback {
        let class = match (f.correction, f.thumbs_up) {
            (Some(c), _) => Some(c),
            (None, Some(true)) => predicted
                .get(&(f.common.partition.device, f.common.boot, f.inference_seq))
                .copied(),
            _ => None,
        };
        let (Some(class), false) = (class, f.sample.is_empty()) else {
            continue;
        };
        let Some(label) = v1.labels.get(usize::from(class)) else {
            continue;
        };
        if held_out.contains(&format!("{:?}", f.sample)) {
            summary.leaks_removed += 1;
            continue;
        }
        if !seen.insert(format!("{:?}", f.sample)) {
            summary.duplicates_removed += 1;
            continue;
        }
        let ids: Vec<u32> = f
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
    println!(
        "retraining set: {} from field feedback ({} leaks into held-out sets removed, {} duplicates), {} replayed lab examples",
        summary.feedback_examples, summary.leaks_removed, summary.duplicates_removed, replay
    );

    // Fine-tune from the deployed checkpoint (its encoder; a fresh head on the same labels).
    let base = jobs::load_base(&deployed.model_dir, &jobs::device("cpu")?)?;
    let c = jobs::finetune_classifier(
        base,
        &retrain_train,
        &data.val,
        &ClassifyOptions {
            lora: None,
            qat: false,
            max_len: deployed.max_len,
            fixed_length: true,
        },
        &train_stage::common(
            ctx,
            ctx.out.join("classifier-v2"),
            ctx.sizes.retrain_steps,
            2e-3,
            true,
        )?,
    )
    .context("fine-tuning the v2 classifier")?;
    let labels = train_stage::read_labels(&c.model_dir)?;
    if labels != v1.labels {
        bail!(
            "the retraining set's labels differ from v1's ({} vs {}): the rollout would change the output layout",
            labels.len(),
            v1.labels.len()
        );
    }
    let v2_classifier = Classifier {
        model_dir: c.model_dir.clone(),
        onnx: c.onnx.clone().context("no ONNX export of v2")?,
        labels,
        max_len: deployed.max_len,
    };
    let v2 = deploy::deploy(ctx, data, &v2_classifier, keys, v1.version + 1)?;

    // The gate.
    let (v1_lab, v1_field) = image_scores(v1)?;
    let (v2_lab, v2_field) = image_scores(&v2)?;
    let field_ok = v2_field - v1_field > MIN_FIELD_GAIN;
    let lab_ok = v1_lab - v2_lab <= LAB_TOLERANCE;
    summary.gate.push(format!(
        "field hold-out accuracy {:.1}% → {:.1}% ({:+.1} points; must rise): {}",
        100.0 * v1_field,
        100.0 * v2_field,
        100.0 * (v2_field - v1_field),
        if field_ok { "pass" } else { "FAIL" }
    ));
    summary.gate.push(format!(
        "lab test accuracy {:.1}% → {:.1}% ({:+.1} points; may drop at most {:.0}): {}",
        100.0 * v1_lab,
        100.0 * v2_lab,
        100.0 * (v2_lab - v1_lab),
        100.0 * LAB_TOLERANCE,
        if lab_ok { "pass" } else { "FAIL" }
    ));
    summary.accepted = field_ok && lab_ok;
    for g in &summary.gate {
        println!("gate: {g}");
    }
    if summary.accepted {
        let manifest = serde_json::json!({
            "model": "intent-classifier",
            "version": v2.version,
            "replaces": v1.version,
            "image": v2.image,
            "image_bytes": v2.image_bytes,
            "arena_bytes": v2.arena_bytes,
            "signed_by": relative(&ctx.out, &keys.public_path),
            "key_id": keys.public.key_id().iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "gate": summary.gate,
            "rollout": [
                {"stage": "canary", "share": 0.05},
                {"stage": "half", "share": 0.5},
                {"stage": "all", "share": 1.0}
            ],
            "rollback_to": v1.image,
        });
        let path = dir.join("rollout.json");
        write_json(&path, &manifest)?;
        summary.manifest = Some(relative(&ctx.out, &path));
        println!("v2 accepted: rollout manifest {}", path.display());
    } else {
        println!("v2 rejected: v1 stays deployed (see the gate lines above)");
    }
    summary.v2 = Some(v2);
    write_json(&dir.join("retrain.json"), &summary)?;
    Ok(summary)
}
