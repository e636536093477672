//! `edgeloop telemetry`: ingest device telemetry into the Parquet store, and report drift.

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;

use anyhow::{bail, Context};
use edgeloop_monitor::drift::{analyse, DriftConfig};
use edgeloop_monitor::ingest::Ingestor;
use edgeloop_monitor::{report, store};

/// Arguments of `edgeloop telemetry`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Read COBS-framed telemetry (runtime/TELEMETRY.md) and append it to a Parquet store.
    #[command(
        after_help = "INPUT is a file, `-` for stdin, or a serial device path (configure its baud rate \
first, e.g. `stty -F /dev/ttyACM0 115200 raw`); reading stops at end of input. Corrupt frames are skipped \
and counted; frames already in the store (same device, boot, seq) are dropped.\n\nExamples:\n  \
edgeloop telemetry ingest --input device-7.bin --store telemetry/field\n  \
cat /dev/ttyACM0 | edgeloop telemetry ingest --input - --store telemetry/field --json"
    )]
    Ingest(IngestArgs),
    /// Compare the store with a reference store window by window and write a drift report.
    #[command(
        after_help = "Writes drift_report.json, drift_report.md and PNG plots into --out. \
Defaults follow Evidently: KS / chi-square (p < 0.05) up to 1000 reference rows, normed Wasserstein / \
Jensen-Shannon (>= 0.1) above; PSI (0.1, 30 bins) reported for every feature.\n\nExample:\n  \
edgeloop telemetry drift --reference runs/demo/telemetry/reference --store runs/demo/telemetry/field --out drift --fail-on-drift"
    )]
    Drift(DriftArgs),
}

#[derive(Debug, clap::Args)]
struct IngestArgs {
    /// Input file, serial device or `-` for stdin (repeatable).
    #[arg(long, required = true)]
    input: Vec<String>,
    /// Store root directory (created if missing).
    #[arg(long)]
    store: PathBuf,
    /// Frames per Parquet file written while reading a long stream.
    #[arg(long, default_value_t = 50_000)]
    batch: usize,
}

#[derive(Debug, clap::Args)]
struct DriftArgs {
    /// Store with the current (field) telemetry.
    #[arg(long)]
    store: PathBuf,
    /// Store with the reference telemetry (for example from validation or the previous release).
    #[arg(long)]
    reference: PathBuf,
    /// Output directory for the report.
    #[arg(long)]
    out: PathBuf,
    /// Inference rows per window.
    #[arg(long, default_value_t = 500)]
    window: usize,
    /// Fewest labels for an accuracy or a per-device slice to be judged.
    #[arg(long, default_value_t = 20)]
    min_labels: usize,
    /// Exit with status 3 when any window shows dataset or performance drift.
    #[arg(long)]
    fail_on_drift: bool,
}

/// Runs `edgeloop telemetry …`. Returns exit code 3 when `--fail-on-drift` finds drift.
pub fn run(args: Args) -> anyhow::Result<std::process::ExitCode> {
    match args.command {
        Command::Ingest(a) => ingest(a).map(|()| std::process::ExitCode::SUCCESS),
        Command::Drift(a) => drift(a),
    }
}

fn ingest(args: IngestArgs) -> anyhow::Result<()> {
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let keys = store::keys(&args.store)
        .with_context(|| format!("reading keys of store {}", args.store.display()))?;
    let mut ing = Ingestor::with_seen(keys);
    let mut files = 0usize;
    for input in &args.input {
        let reader: Box<dyn Read> = if input == "-" {
            Box::new(std::io::stdin().lock())
        } else {
            Box::new(File::open(input).with_context(|| format!("opening {input}"))?)
        };
        ing.read_all(reader, input, args.batch, |rows| {
            files += store::write(&args.store, &rows)?.len();
            Ok(())
        })
        .with_context(|| format!("ingesting {input}"))?;
    }
    let s = ing.stats();
    crate::say!(
        "read {} bytes: {} new frames, {} duplicates, {} corrupt frames skipped ({}); {} Parquet files written under {}",
        s.bytes,
        s.frames,
        s.duplicates,
        s.corrupt.total(),
        serde_json::to_string(&s.corrupt)?,
        files,
        args.store.display()
    );
    super::output::summary(&serde_json::json!({
        "store": args.store,
        "bytes": s.bytes,
        "frames": s.frames,
        "duplicates": s.duplicates,
        "corrupt": s.corrupt.total(),
        "corrupt_by_kind": s.corrupt,
        "parquet_files": files,
    }))
}

fn drift(args: DriftArgs) -> anyhow::Result<std::process::ExitCode> {
    let cfg = DriftConfig {
        window: args.window,
        min_labels: args.min_labels,
        ..DriftConfig::default()
    };
    for (flag, dir) in [("--reference", &args.reference), ("--store", &args.store)] {
        if !dir.is_dir() {
            anyhow::bail!(
                "{flag} {}: no such folder; give a telemetry store written by `edgeloop telemetry \
                 ingest --store DIR` (or the demo's runs/demo/telemetry/field)",
                dir.display()
            );
        }
    }
    let reference = store::read(&args.reference)
        .with_context(|| format!("reading reference {}", args.reference.display()))?;
    let current = store::read(&args.store)
        .with_context(|| format!("reading store {}", args.store.display()))?;
    let rep = analyse(&reference, &current, &cfg).context("computing drift")?;
    let files = report::write(&rep, &args.out).context("writing the drift report")?;
    let perf = rep.windows.iter().filter(|w| w.performance_drift).count();
    crate::say!(
        "{} windows: {} with dataset drift, {} with performance drift; {} on-device alarms. Report: {}",
        rep.windows.len(),
        rep.drifted_windows(),
        perf,
        rep.device_alarms,
        files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")
    );
    super::output::summary(&serde_json::json!({
        "windows": rep.windows.len(),
        "drifted_windows": rep.drifted_windows(),
        "performance_drift_windows": perf,
        "device_alarms": rep.device_alarms,
        "report_files": files,
    }))?;
    if args.fail_on_drift && (rep.drifted_windows() > 0 || perf > 0) {
        return Ok(std::process::ExitCode::from(3));
    }
    Ok(std::process::ExitCode::SUCCESS)
}
