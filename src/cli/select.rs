//! `edgeloop select`: device-aware model selection for the keyword-spotting model or a text
//! classifier (issue 13).

use std::path::PathBuf;

use anyhow::{bail, Context};
use edgeloop_select::text::{Family, Precision, TextSearchSpace, TextSelectConfig, TextTask};
use edgeloop_select::{profile, profiles, Budget, SearchSpace, SelectConfig};
use edgeloop_trainer::audio::speech_commands::{self, LoadOptions};
use edgeloop_trainer::audio::synth::{generate, SynthConfig};

/// Arguments of `edgeloop select`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Every candidate's int8 image is built with the compiler before any training: flash by \
section and the planned arena are exact; latency is the image's MACs times the instructions per MAC \
measured on our Cortex-M4 kernels (firmware-examples/BENCH.md) over the target's instructions per second. \
Candidates that do not fit are dropped with the reason; the survivors are trained briefly (same steps, same \
seed) and ranked on the Pareto front of validation accuracy vs latency vs RAM; the winner is trained fully.\n\
Tasks: --task kws (DS-CNN keyword spotting; --channels/--blocks/--strides; --precisions int8 by default, \
mixed-head keeps the fc head f32, mixed-first the first convolution; with either, every candidate \
is ranked on its image's validation accuracy) or --task text (a classifier \
on --data DIR with train.jsonl, val.jsonl, test.jsonl of {\"text\", \"label\"} records; --families, --widths, \
--depths, --heads, --contexts, --vocabs (a byte-level BPE retrained at each size) and --precisions int8,mixed-head \
(the classification head kept f32); ranked on the accuracy of each candidate's quantized image).\n\
Devices: cortex-m0plus, cortex-m4, cortex-m7, edge-linux (or --flash/--ram).\n\
Outputs in --out: select.md, select.json, front.png, chosen.json (the trainer's config: KwsTrainConfig, or the \
text model's config.json), model.onnx, model-int8.onnx, model.edli; text adds chosen-quantize.json, \
tokenizer.json and the trainer's model folder under jobs/winner/model.\n\nExamples:\n  \
edgeloop select --device cortex-m4 --latency-ms 100 --out runs/select\n  \
edgeloop select --flash 256K --ram 64K --channels 8,16,32 --blocks 1,2 --strides 2,3 --out runs/select\n  \
edgeloop select --device m7 --speech-commands data/speech_commands_v0.02 --keywords yes,no,up,down --out runs/select\n  \
edgeloop select --task text --data runs/demo/data/selected --device cortex-m4 --families encoder,gpt --widths 16,32 \
--depths 1,2 --vocabs 384,512 --precisions int8,mixed-head --out runs/select-text"
)]
pub struct Args {
    /// The task: `kws` (keyword spotting, synthetic or Speech Commands audio) or `text` (a
    /// classifier on --data).
    #[arg(long, default_value = "kws", value_parser = ["kws", "text"])]
    pub task: String,
    /// Text task: folder with train.jsonl, val.jsonl and test.jsonl (the data stage's output).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Text search space (boxed: keeps the command enum small).
    #[command(flatten)]
    pub text: Box<TextSpaceArgs>,
    /// Named device profile (cortex-m0plus, cortex-m4, cortex-m7, edge-linux).
    #[arg(long, conflicts_with_all = ["flash", "ram"])]
    pub device: Option<String>,
    /// Explicit flash budget (bytes; K/M suffixes, 1024-based), firmware included.
    #[arg(long, requires = "ram")]
    pub flash: Option<String>,
    /// Explicit RAM budget (bytes; K/M suffixes), firmware stack and front end included.
    #[arg(long, requires = "flash")]
    pub ram: Option<String>,
    /// Latency limit per inference (ms).
    #[arg(long)]
    pub latency_ms: Option<f64>,
    /// Don't add the firmware's measured flash/RAM overhead to the candidates (budgets for the
    /// model alone).
    #[arg(long)]
    pub no_firmware_overhead: bool,
    /// A Speech Commands folder (one folder of 16 kHz WAV files per word) instead of the
    /// synthetic corpus.
    #[arg(long, value_name = "DIR")]
    pub speech_commands: Option<PathBuf>,
    /// With --speech-commands: the keyword classes (comma separated; default: every word).
    #[arg(long, value_delimiter = ',')]
    pub keywords: Vec<String>,
    /// Synthetic corpus: clips per class.
    #[arg(long, default_value_t = 160)]
    pub clips_per_class: usize,
    /// DS-CNN channels to search (comma separated).
    #[arg(long, value_delimiter = ',', default_values_t = [8usize, 16, 24, 32, 64])]
    pub channels: Vec<usize>,
    /// DS-CNN block counts to search.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 2, 3, 4])]
    pub blocks: Vec<usize>,
    /// First-convolution strides to search.
    #[arg(long, value_delimiter = ',', default_values_t = [2usize, 3])]
    pub strides: Vec<usize>,
    /// Brief training steps per survivor.
    #[arg(long, default_value_t = 150)]
    pub brief_steps: usize,
    /// Full training steps of the winner (default: the trainer's).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Clips per step (default: the trainer's).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Peak learning rate (default: the trainer's).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Seed (data, weights, batch order).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Pick the fastest front member within this validation accuracy of the best.
    #[arg(long, default_value_t = 0.01)]
    pub tolerance: f64,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
}

/// The text task's search space flags.
#[derive(Debug, clap::Args)]
pub struct TextSpaceArgs {
    /// Text: model families to search (encoder, gpt).
    #[arg(long, value_delimiter = ',', default_values_t = ["encoder".to_string(), "gpt".to_string()])]
    pub families: Vec<String>,
    /// Text: widths (hidden sizes).
    #[arg(long, value_delimiter = ',', default_values_t = [16usize, 32, 64])]
    pub widths: Vec<usize>,
    /// Text: depths (layers).
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 2])]
    pub depths: Vec<usize>,
    /// Text: attention heads.
    #[arg(long, value_delimiter = ',', default_values_t = [2usize])]
    pub heads: Vec<usize>,
    /// Text: contexts (fixed input lengths in tokens).
    #[arg(long, value_delimiter = ',', default_values_t = [16usize, 24])]
    pub contexts: Vec<usize>,
    /// Text: tokenizer vocabulary sizes (a byte-level BPE retrained on the training texts; at
    /// least 262).
    #[arg(long, value_delimiter = ',', default_values_t = [384usize, 512])]
    pub vocabs: Vec<usize>,
    /// Precisions (int8; mixed-head: the classification head kept f32; mixed-first, kws only:
    /// the first convolution kept f32). Default: int8 and mixed-head for text, int8 for kws.
    #[arg(long, value_delimiter = ',')]
    pub precisions: Vec<String>,
}

fn budget(args: &Args) -> anyhow::Result<Budget> {
    let mut b = match (&args.device, &args.flash, &args.ram) {
        (Some(d), _, _) => Budget::from_profile(&profile(d)?, args.latency_ms)?,
        (None, Some(f), Some(r)) => Budget::explicit(
            edgeloop_select::parse_bytes(f).context("--flash")?,
            edgeloop_select::parse_bytes(r).context("--ram")?,
            args.latency_ms,
        )?,
        _ => {
            let names: Vec<&str> = profiles().iter().map(|p| p.name).collect();
            bail!(
                "give a target: --device NAME ({}) or --flash BYTES --ram BYTES",
                names.join(", ")
            )
        }
    };
    if args.no_firmware_overhead {
        b.firmware_flash_bytes = 0;
        b.firmware_ram_bytes = 0;
    }
    Ok(b)
}

/// Runs `edgeloop select`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.task == "text" {
        return run_text(args);
    }
    if args.data.is_some() {
        bail!("--data is for --task text; the keyword task takes --speech-commands DIR or the synthetic corpus");
    }
    let mut cfg = SelectConfig::new(budget(&args)?);
    cfg.space = SearchSpace {
        channels: args.channels.clone(),
        blocks: args.blocks.clone(),
        strides: args.strides.clone(),
    };
    if let Some(p) = precisions(&args)? {
        cfg.precisions = p;
    }
    cfg.seed = args.seed;
    cfg.brief_steps = args.brief_steps;
    cfg.full_steps = args.steps.unwrap_or(cfg.full_steps);
    cfg.batch = args.batch.unwrap_or(cfg.batch);
    cfg.lr = args.lr.unwrap_or(cfg.lr);
    cfg.tolerance = args.tolerance;
    cfg.progress = super::output::progress();
    cfg.validate()?;
    let data = match &args.speech_commands {
        Some(dir) => {
            let opts = LoadOptions {
                keywords: args.keywords.clone(),
                seed: args.seed,
                ..LoadOptions::default()
            };
            speech_commands::load(dir, &opts)
                .with_context(|| format!("loading {}", dir.display()))?
        }
        None => {
            if args.clips_per_class < 10 {
                bail!("--clips-per-class must be at least 10");
            }
            generate(&SynthConfig::new(args.seed, args.clips_per_class))
        }
    };
    crate::say!(
        "{} clips, {} classes; {} candidates; target {}",
        data.clips.len(),
        data.labels.len(),
        cfg.space.channels.len()
            * cfg.space.blocks.len()
            * cfg.space.strides.len()
            * cfg.precisions.len(),
        cfg.budget.target
    );
    let s = edgeloop_select::select(&data, &cfg).context("selecting a model")?;
    let written = edgeloop_select::report::write(&s, &args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;
    let dropped = s.rows.iter().filter(|r| !r.dropped.is_empty()).count();
    let w = &s.winner;
    let name = &s.rows[w.row].candidate.name;
    crate::say!(
        "{} candidates, {dropped} dropped, {} on the front; chosen {name}: flash {} B, RAM {} B, ~{:.2} ms, \
int8 test accuracy {:.3} (fp32 {:.3}); footprint as predicted: {}",
        s.rows.len(),
        s.front.len(),
        w.footprint.flash_total,
        w.footprint.ram_total,
        w.footprint.latency_ms,
        w.int8_test_accuracy,
        w.test_accuracy,
        w.footprint_as_predicted
    );
    crate::say!("report: {}", written.markdown.display());
    super::output::summary(&serde_json::json!({
        "chosen": name,
        "train_config": w.train_config,
        "footprint": w.footprint,
        "footprint_as_predicted": w.footprint_as_predicted,
        "int8_test_accuracy": w.int8_test_accuracy,
        "test_accuracy": w.test_accuracy,
        "candidates": s.rows.len(),
        "dropped": dropped,
        "front": s.front.iter().map(|&i| &s.rows[i].candidate.name).collect::<Vec<_>>(),
        "files": written,
    }))
}

/// `--precisions`, parsed (`None`: not given).
fn precisions(args: &Args) -> anyhow::Result<Option<Vec<Precision>>> {
    if args.text.precisions.is_empty() {
        return Ok(None);
    }
    let p = args
        .text
        .precisions
        .iter()
        .map(|p| Precision::parse(p))
        .collect::<Result<Vec<_>, _>>()
        .context("--precisions")?;
    Ok(Some(p))
}

/// The text search space from the arguments.
fn text_space(args: &Args) -> anyhow::Result<TextSearchSpace> {
    let t = &args.text;
    let families = t
        .families
        .iter()
        .map(|f| Family::parse(f))
        .collect::<Result<Vec<_>, _>>()
        .context("--families")?;
    let precisions = match precisions(args)? {
        Some(p) => p,
        None => vec![Precision::Int8, Precision::MixedHead],
    };
    let space = TextSearchSpace {
        families,
        widths: t.widths.clone(),
        depths: t.depths.clone(),
        heads: t.heads.clone(),
        contexts: t.contexts.clone(),
        vocabs: t.vocabs.clone(),
        precisions,
    };
    space.validate()?;
    Ok(space)
}

/// `edgeloop select --task text`.
fn run_text(args: Args) -> anyhow::Result<()> {
    let Some(dir) = &args.data else {
        bail!("--task text needs --data DIR (a folder with train.jsonl, val.jsonl, test.jsonl)");
    };
    if args.speech_commands.is_some() {
        bail!("--speech-commands is for --task kws");
    }
    let mut cfg = TextSelectConfig::new(budget(&args)?, args.out.join("jobs"));
    cfg.space = text_space(&args)?;
    cfg.seed = args.seed;
    cfg.brief_steps = args.brief_steps;
    cfg.full_steps = args.steps.unwrap_or(cfg.full_steps);
    cfg.batch = args.batch.unwrap_or(cfg.batch);
    cfg.lr = args.lr.unwrap_or(cfg.lr);
    cfg.tolerance = args.tolerance;
    cfg.progress = super::output::progress();
    cfg.validate()?;
    let task = TextTask::load(dir).with_context(|| format!("loading {}", dir.display()))?;
    let n = cfg.space.candidates()?.len();
    crate::say!(
        "{} training / {} validation / {} test texts, {} classes; {n} candidates; target {}",
        task.train.len(),
        task.val.len(),
        task.test.len(),
        task.labels.len(),
        cfg.budget.target
    );
    let s = edgeloop_select::text::select_text(&task, &cfg).context("selecting a text model")?;
    let written = edgeloop_select::text::report::write(&s, &args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;
    let dropped = s.rows.iter().filter(|r| !r.dropped.is_empty()).count();
    let w = &s.winner;
    let name = &s.rows[w.row].candidate.name;
    crate::say!(
        "{} candidates, {dropped} dropped, {} on the front; chosen {name}: flash {} B, RAM {} B, ~{:.2} ms, \
image test accuracy {:.3} (validation {:.3}, fp32 {:.3}); footprint as predicted: {}",
        s.rows.len(),
        s.front.len(),
        w.footprint.flash_total,
        w.footprint.ram_total,
        w.footprint.latency_ms,
        w.test_accuracy,
        w.val_accuracy,
        w.fp32_val_accuracy,
        w.footprint_as_predicted
    );
    crate::say!("report: {}", written.markdown.display());
    super::output::summary(&serde_json::json!({
        "chosen": name,
        "model_config": w.spec,
        "precision": w.precision,
        "float_nodes": w.float_nodes,
        "footprint": w.footprint,
        "footprint_as_predicted": w.footprint_as_predicted,
        "test_accuracy": w.test_accuracy,
        "candidates": s.rows.len(),
        "dropped": dropped,
        "front": s.front.iter().map(|&i| &s.rows[i].candidate.name).collect::<Vec<_>>(),
        "files": written,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct T {
        #[command(flatten)]
        a: Args,
    }

    #[test]
    fn a_target_is_required_and_checked() {
        let parse = |v: &[&str]| T::try_parse_from(v).map(|t| t.a);
        let a = parse(&["x", "--out", "o"]).unwrap();
        assert!(budget(&a).is_err());
        let a = parse(&["x", "--device", "m4", "--out", "o"]).unwrap();
        assert_eq!(budget(&a).unwrap().target, "cortex-m4");
        let a = parse(&["x", "--device", "nope", "--out", "o"]).unwrap();
        assert!(budget(&a).unwrap_err().to_string().contains("nope"));
        let a = parse(&["x", "--flash", "256K", "--ram", "64K", "--out", "o"]).unwrap();
        let b = budget(&a).unwrap();
        assert_eq!((b.flash_bytes, b.ram_bytes), (262144, 65536));
        let a = parse(&["x", "--flash", "lots", "--ram", "64K", "--out", "o"]).unwrap();
        assert!(budget(&a).is_err());
        assert!(parse(&["x", "--flash", "256K", "--out", "o"]).is_err());
        assert!(
            parse(&["x", "--device", "m4", "--flash", "1K", "--ram", "1K", "--out", "o"]).is_err()
        );
    }

    #[test]
    fn text_space_flags_are_parsed_and_checked() {
        let parse = |v: &[&str]| T::try_parse_from(v).map(|t| t.a);
        let a = parse(&["x", "--task", "text", "--out", "o"]).unwrap();
        assert_eq!(text_space(&a).unwrap(), TextSearchSpace::default());
        assert!(precisions(&a).unwrap().is_none());
        let a = parse(&["x", "--precisions", "int8,mixed", "--out", "o"]).unwrap();
        assert_eq!(
            precisions(&a).unwrap(),
            Some(vec![Precision::Int8, Precision::MixedHead])
        );
        let a = parse(&[
            "x",
            "--task",
            "text",
            "--families",
            "gpt",
            "--widths",
            "8,16",
            "--precisions",
            "mixed-head",
            "--out",
            "o",
        ])
        .unwrap();
        let s = text_space(&a).unwrap();
        assert_eq!(s.families, vec![Family::Gpt]);
        assert_eq!(s.precisions, vec![Precision::MixedHead]);
        for bad in [
            vec!["x", "--task", "text", "--families", "rnn", "--out", "o"],
            vec!["x", "--task", "text", "--precisions", "fp16", "--out", "o"],
            vec!["x", "--task", "text", "--vocabs", "100", "--out", "o"],
        ] {
            let a = parse(&bad).unwrap();
            assert!(text_space(&a).is_err(), "{bad:?}");
        }
        assert!(parse(&["x", "--task", "audio", "--out", "o"]).is_err());
        // Text needs --data.
        let a = parse(&["x", "--task", "text", "--device", "m4", "--out", "o"]).unwrap();
        assert!(run(a).unwrap_err().to_string().contains("--data"));
    }
}
