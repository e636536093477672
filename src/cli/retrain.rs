//! `edgeloop retrain`: the retraining policy on a run folder's deployed model and a telemetry
//! store — triggers (host drift, on-device alarms, corrections, schedule) → retraining set
//! (corrections and confirmations + replay, deduplicated, leak-free) → fine-tune from the
//! deployed checkpoint → quantize, compile, sign as version + 1 → evaluation gate → rollout
//! manifest, or a rejection that says why. The run folder's `state.json` (written by
//! `edgeloop demo`) names the data, the deployed model and the stores.

use std::path::PathBuf;

use anyhow::Context;
use edgeloop_monitor::drift;
use edgeloop_monitor::ingest::now_ms;
use edgeloop_monitor::policy::{Evidence, Policy};
use edgeloop_monitor::store;

use crate::demo::{assistant, fleet, retrain, state};

/// Arguments of `edgeloop retrain`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  edgeloop demo --out runs/demo\n  \
edgeloop telemetry ingest --input field.bin --store runs/demo/telemetry/field   # more field telemetry\n  \
edgeloop retrain --run runs/demo\n  \
edgeloop retrain --run runs/demo --store /data/fleet-telemetry --min-corrections 50 --json\n  \
edgeloop retrain --run runs/demo --every-days 30   # scheduled (cron)\n  \
edgeloop retrain --run runs/demo --model assistant  # DPO on the assistant's rated answers\n\n\
An accepted candidate becomes the deployed model in state.json (image deploy/v<N>/intent.edli, \
manifest retrain/v<N>/rollout.json); a rejected one is explained in retrain/v<N>/retrain.json. \
For the assistant: deploy/assistant-v<N>/, retrain/assistant-v<N>/.")]
pub struct Args {
    /// Run folder made by `edgeloop demo` (holds state.json).
    #[arg(long, default_value = "runs/demo")]
    pub run: PathBuf,
    /// Compute device of the retraining: `cpu`, `cuda` or `cuda:N` (a `cuda` build).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Which deployed model to retrain: the intent classifier (triggers: drift, alarms,
    /// corrections, schedule) or the assistant (preference pairs from rated answers → DPO).
    #[arg(long, value_enum, default_value_t = Model::Classifier)]
    pub model: Model,
    /// Telemetry store to judge (default: the run's field store).
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Corrections that trigger retraining on their own (0: never).
    #[arg(long, default_value_t = Policy::default().min_corrections)]
    pub min_corrections: usize,
    /// Host drift windows that trigger retraining (0: never).
    #[arg(long, default_value_t = Policy::default().min_drifted_windows)]
    pub min_drifted_windows: usize,
    /// On-device drift alarms that trigger retraining (0: never).
    #[arg(long, default_value_t = Policy::default().min_device_alarms)]
    pub min_device_alarms: usize,
    /// Schedule: retrain when the deployed model is at least this many days old.
    #[arg(long)]
    pub every_days: Option<f64>,
    /// Gate: largest allowed drop of lab test accuracy (fraction, e.g. 0.02).
    #[arg(long, default_value_t = Policy::default().lab_tolerance)]
    pub lab_tolerance: f64,
    /// Gate: the field hold-out accuracy must rise by more than this (fraction).
    #[arg(long, default_value_t = Policy::default().min_field_gain)]
    pub min_field_gain: f64,
}

/// The models `edgeloop retrain` retrains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Model {
    /// The intent classifier.
    Classifier,
    /// The generative assistant.
    Assistant,
}

/// Runs `edgeloop retrain`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.model == Model::Assistant {
        return run_assistant(&args);
    }
    for (name, v) in [
        ("--lab-tolerance", args.lab_tolerance),
        ("--min-field-gain", args.min_field_gain),
    ] {
        anyhow::ensure!(
            v.is_finite() && (0.0..1.0).contains(&v),
            "{name} must be a fraction in [0, 1), got {v}"
        );
    }
    if let Some(d) = args.every_days {
        anyhow::ensure!(
            d.is_finite() && d >= 0.0,
            "--every-days must be ≥ 0, got {d}"
        );
    }
    let out = &args.run;
    let mut st = state::RunState::read(out)?;
    let ctx = st.ctx(out, super::output::progress(), &args.device);
    let data = st.data(out)?;
    let classifier = st.classifier(out);
    let current = st.deployed.deployment.clone();
    let keys = state::read_keys(out)?;
    let store_root = args
        .store
        .clone()
        .unwrap_or_else(|| out.join(&st.field_store));
    anyhow::ensure!(
        store_root.is_dir(),
        "telemetry store {} does not exist (ingest telemetry with `edgeloop telemetry ingest`)",
        store_root.display()
    );

    // Host drift of the store against the reference window of the deployed image.
    let reference = store::read(&out.join(&st.reference_store))
        .with_context(|| format!("reading the reference store {}", st.reference_store))?;
    let current_rows = store::read(&store_root)
        .with_context(|| format!("reading the telemetry store {}", store_root.display()))?;
    let report = drift::analyse(
        &reference,
        &current_rows,
        &fleet::drift_config(st.drift_window),
    )
    .context("drift analysis")?;
    crate::say!(
        "telemetry {}: {} inferences, {} feedback records; host drift in {} of {} windows; {} on-device alarms",
        store_root.display(),
        current_rows.inferences.len(),
        current_rows.feedback.len(),
        report.drifted_windows(),
        report.windows.len(),
        report.device_alarms
    );
    let policy = Policy {
        min_corrections: args.min_corrections,
        min_drifted_windows: args.min_drifted_windows,
        min_device_alarms: args.min_device_alarms,
        max_age_days: args.every_days,
        lab_tolerance: args.lab_tolerance,
        min_field_gain: args.min_field_gain,
    };
    let field = retrain::FieldEvidence {
        store: store_root,
        evidence: Evidence {
            drifted_windows: report.drifted_windows(),
            windows: report.windows.len(),
            device_alarms: report.device_alarms,
            corrections: 0,
            deployed_age_days: Some(
                (now_ms() - st.deployed.deployed_at_ms).max(0) as f64 / 86_400_000.0,
            ),
        },
    };
    let summary = retrain::run(&ctx, &data, &classifier, &current, &field, &keys, &policy)?;
    if let (true, Some(v), Some(c)) = (
        summary.accepted,
        summary.v2.as_ref(),
        summary.classifier.as_ref(),
    ) {
        st.deploy(&ctx, c, v);
        st.write(out)?;
        crate::say!(
            "deployed v{} (state: {})",
            v.version,
            out.join(state::STATE_FILE).display()
        );
    }
    super::output::summary(&summary)
}

/// `edgeloop retrain --model assistant`: one DPO round of the deployed assistant on the rated
/// answers in its telemetry store, behind the same gate; an accepted candidate becomes the
/// deployed assistant in `state.json`.
fn run_assistant(args: &Args) -> anyhow::Result<()> {
    use edgeloop_trainer::models::ModelSpec;
    use edgeloop_trainer::train::jobs;

    let out = &args.run;
    let mut st = state::RunState::read(out)?;
    let deployed = st.assistant.clone().with_context(|| {
        format!(
            "{} records no deployed assistant (made by an `edgeloop demo` that predates it?)",
            out.join(state::STATE_FILE).display()
        )
    })?;
    let ctx = st.ctx(out, super::output::progress(), &args.device);
    let data = st.data(out)?;
    let keys = state::read_keys(out)?;
    let store_root = args
        .store
        .clone()
        .unwrap_or_else(|| out.join(&deployed.store));
    anyhow::ensure!(
        store_root.is_dir(),
        "telemetry store {} does not exist",
        store_root.display()
    );
    let model_dir = out.join(&deployed.model_dir);
    let base = jobs::load_base(&model_dir, &jobs::device("cpu")?)
        .with_context(|| format!("loading the deployed assistant {}", model_dir.display()))?;
    let context = match &base.spec {
        ModelSpec::Gpt(c) => c.block_size,
        _ => anyhow::bail!("{}: the assistant is not a GPT", model_dir.display()),
    };
    drop(base);
    let prompts = assistant::prompts(&ctx, &data.tokenizer, context)?;
    let policy = Policy {
        lab_tolerance: args.lab_tolerance,
        min_field_gain: args.min_field_gain,
        ..Policy::default()
    };
    let r = assistant::retrain(
        &ctx,
        &data.tokenizer,
        &prompts,
        &deployed,
        &store_root,
        &keys,
        &policy,
    )?;
    if let (true, Some(c), Some(dir)) = (r.accepted, &r.candidate, &r.candidate_model_dir) {
        let mut next = deployed.clone();
        next.model_dir = dir.clone();
        next.deployment = c.clone();
        next.history.push(c.version);
        st.assistant = Some(next);
        st.write(out)?;
        crate::say!(
            "deployed assistant v{} (state: {})",
            c.version,
            out.join(state::STATE_FILE).display()
        );
    }
    super::output::summary(&r)
}
