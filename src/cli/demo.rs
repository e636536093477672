//! `edgeloop demo`: the whole loop on the embedded default data (see `crate::demo`).

use std::path::PathBuf;

/// Arguments of `edgeloop demo`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  edgeloop demo --out runs/demo\n  edgeloop demo --fast --out /tmp/demo   # seconds, tiny sizes\n  edgeloop demo --json --quiet > summary.json\n\n\
Writes every artifact under --out: data cards, checkpoints, fp32 and int8 ONNX, the signed image, \
telemetry Parquet, the drift report, the v2 image with its rollout manifest, summary.json and report.html."
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
}

/// Runs the demo.
pub fn run(args: Args) -> anyhow::Result<()> {
    let summary = crate::demo::run(&args.out, args.fast, args.seed, super::output::progress())?;
    // --json: the run summary (as in summary.json) on stdout.
    super::output::summary(&summary)
}
