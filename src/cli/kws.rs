//! `edgeloop kws`: keyword spotting on WAV files with a compiled keyword model image (from
//! `edgeloop select`, or the quantize → compile path with the input pinned to the audio front
//! end's int8 quantization): every file goes through the runtime's integer log-mel front end,
//! the same code the firmware runs, then the image.

use std::path::PathBuf;

use anyhow::{bail, Context};
use edgeloop_runtime::audio::{CLIP_FEATURES, FEATURE_SCALE, FEATURE_ZERO_POINT, SAMPLE_RATE};
use edgeloop_runtime::image::writer::AlignedBytes;
use edgeloop_runtime::image::DType;
use edgeloop_runtime::{Interpreter, Model};
use edgeloop_trainer::audio::{features, wav};
use serde::Serialize;

/// Arguments of `edgeloop kws`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// What `edgeloop kws` does.
#[derive(Debug, clap::Subcommand)]
pub enum Cmd {
    /// Classifies 16 kHz 16-bit mono WAV files (one second each: shorter ones are padded with
    /// silence, longer ones truncated) with a keyword model image.
    #[command(after_help = "Examples:\n  \
edgeloop select --device cortex-m4 --out runs/select\n  \
edgeloop kws classify --image runs/select/model.edli --labels yes,no,up,down,left,right,_silence_,_unknown_ clip1.wav clip2.wav\n  \
edgeloop --json kws classify --image model.edli clips/*.wav")]
    Classify(ClassifyArgs),
}

/// Arguments of `edgeloop kws classify`.
#[derive(Debug, clap::Args)]
pub struct ClassifyArgs {
    /// The keyword model image (input: the front end's int8 log-mel features).
    #[arg(long)]
    pub image: PathBuf,
    /// Class names, comma-separated, in the model's output order (default: class indices).
    #[arg(long, value_delimiter = ',')]
    pub labels: Vec<String>,
    /// WAV files.
    #[arg(required = true)]
    pub wavs: Vec<PathBuf>,
}

/// One classified file.
#[derive(Debug, Serialize)]
pub struct Prediction {
    /// The WAV file.
    pub file: PathBuf,
    /// Top-1 class index.
    pub class: usize,
    /// Its name (from `--labels`, else the index).
    pub label: String,
    /// The model's output (logits).
    pub logits: Vec<f32>,
}

/// Runs `edgeloop kws`.
pub fn run(args: Args) -> anyhow::Result<()> {
    match args.cmd {
        Cmd::Classify(a) => classify(a),
    }
}

fn classify(args: ClassifyArgs) -> anyhow::Result<()> {
    let bytes = std::fs::read(&args.image)
        .with_context(|| format!("reading the image {}", args.image.display()))?;
    let aligned = AlignedBytes::new(&bytes);
    let model = Model::parse(aligned.as_slice())
        .map_err(|e| anyhow::anyhow!("{}: not a valid model image: {e}", args.image.display()))?;
    let mut arena = AlignedBytes::zeroed(model.arena_bytes());
    let mut it = Interpreter::new(&model, arena.as_mut_slice())?;
    if model.num_inputs() != 1 || model.num_outputs() != 1 {
        bail!(
            "{}: a keyword model has one input and one output, this image has {} and {}",
            args.image.display(),
            model.num_inputs(),
            model.num_outputs()
        );
    }
    let input = it.input_info(0)?;
    if input.dtype != DType::I8
        || input.num_elements() != CLIP_FEATURES
        || input.scale != FEATURE_SCALE
        || input.zero_point != FEATURE_ZERO_POINT
    {
        bail!(
            "{}: input 0 is {:?} {:?} (scale {}, zero point {}), not the audio front end's int8 \
             features ({CLIP_FEATURES} values, scale {FEATURE_SCALE}, zero point {FEATURE_ZERO_POINT})",
            args.image.display(),
            input.dtype,
            input.shape.dims(),
            input.scale,
            input.zero_point
        );
    }
    let output = it.output_info(0)?;
    let classes = output.num_elements();
    if output.dtype != DType::F32 && output.dtype != DType::I8 {
        bail!(
            "{}: output 0 is {:?}, expected f32 or int8 scores",
            args.image.display(),
            output.dtype
        );
    }
    if !args.labels.is_empty() && args.labels.len() != classes {
        bail!(
            "--labels names {} classes, the model has {classes}",
            args.labels.len()
        );
    }
    let mut out = Vec::with_capacity(args.wavs.len());
    for path in &args.wavs {
        let w = wav::read(path)?;
        if w.sample_rate != SAMPLE_RATE {
            bail!(
                "{}: sample rate {} Hz, the front end takes {SAMPLE_RATE} Hz",
                path.display(),
                w.sample_rate
            );
        }
        let x = features(&w.samples).with_context(|| format!("{}", path.display()))?;
        it.input_i8(0)?.copy_from_slice(&x);
        it.invoke()?;
        let logits: Vec<f32> = if output.dtype == DType::F32 {
            it.output_f32(0)?.to_vec()
        } else {
            it.output_i8(0)?
                .iter()
                .map(|&q| (q as i32 - output.zero_point) as f32 * output.scale)
                .collect()
        };
        let class = (0..logits.len())
            .max_by(|&a, &b| logits[a].total_cmp(&logits[b]).then(b.cmp(&a)))
            .unwrap_or(0);
        let label = args
            .labels
            .get(class)
            .cloned()
            .unwrap_or_else(|| class.to_string());
        crate::say!("{}: {label} (class {class})", path.display());
        out.push(Prediction {
            file: path.clone(),
            class,
            label,
            logits,
        });
    }
    crate::cli::output::summary(&out)
}
