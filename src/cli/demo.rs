//! `edgeloop demo`: the whole loop on the embedded default data (see `crate::demo`).

use std::path::PathBuf;

/// Arguments of `edgeloop demo`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  edgeloop demo --out runs/demo\n  edgeloop demo --fast --out /tmp/demo   # seconds, tiny sizes\n  edgeloop demo --json --quiet > summary.json\n  echo '{\"hidden\": 96, \"layers\": 3}' > sizes.json && edgeloop demo --config sizes.json\n  edgeloop demo --device cuda:0           # training stages on a GPU (a `cuda` build)\n\n\
Writes every artifact under --out: data cards, checkpoints, fp32 and int8 ONNX, the signed image, \
telemetry Parquet, the drift report, the v2 image with its rollout manifest, summary.json and report.html.\n\n\
--config is a JSON object replacing some of the run's sizes (the default run's, or --fast's); the \
names are those under \"sizes\" in summary.json (lab_labelled, vocab, hidden, layers, heads, \
max_len, pretrain_steps, finetune_steps, retrain_steps, batch, calibration, devices, per_device, ...)."
)]
pub struct Args {
    /// Folder for every artifact of the run.
    #[arg(long, default_value = "runs/demo")]
    pub out: PathBuf,
    /// Tiny sizes, seconds instead of minutes (used by the tests).
    #[arg(long)]
    pub fast: bool,
    /// Seed of everything (data, initialization, sampling).
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// JSON object of sizes replacing the defaults (e.g. `{"hidden": 96, "layers": 3}`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Compute device of the training stages: `cpu`, `cuda` or `cuda:N` (a `cuda` build).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// Runs the demo.
pub fn run(args: Args) -> anyhow::Result<()> {
    let base = if args.fast {
        crate::demo::Sizes::fast()
    } else {
        crate::demo::Sizes::full()
    };
    let sizes = match &args.config {
        Some(path) => crate::demo::Sizes::with_overrides(base, path)?,
        None => base,
    };
    let summary = crate::demo::run(
        &args.out,
        sizes,
        args.seed,
        super::output::progress(),
        &args.device,
    )?;
    // --json: the run summary (as in summary.json) on stdout.
    super::output::summary(&summary)
}
