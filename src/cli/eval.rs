//! `edgeloop eval`: score predictions from files and write a report (JSON, Markdown, HTML with
//! PNG plots) to `--out`.
//!
//! Input files are JSON Lines (one object per line, blank lines skipped). Every error names the
//! file and the 1-based line.
//!
//! - `classification --pred P.jsonl [--labels L.jsonl]`: each line of `P` has `"pred"` (class
//!   index or name) and optionally `"label"`, `"scores"` (one number per class, for top-k and
//!   calibration) and `"group"` (slice name); `--labels`, when given, supplies `"label"` (and
//!   optionally `"group"`) line by line instead.
//! - `generation --pred P.jsonl`: each line has `"hyp"` and `"refs"` (a string or a list).
//! - `lm --pred P.jsonl`: each line has `"text"` and `"token_nll"` (negative log-likelihood of
//!   each token in nats).
//! - `image --image M.edli --tokenizer T --texts L.jsonl --classes …`: runs a classifier model
//!   image on the host runtime over labelled texts (`"text"`, `"label"`, optional `"slice"`
//!   object, as `edgeloop data select` writes them) and reports the metrics, per-slice results,
//!   the robustness suite (accuracy under each perturbation and the prediction flip rate) and
//!   occlusion attributions of the first records.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use edgeloop_eval::calibration::calibration_from_probs;
use edgeloop_eval::classification::{ClassificationSummary, ZeroDivision};
use edgeloop_eval::fairness::{binary_fairness, per_slice, GapMethod};
use edgeloop_eval::lm::LmAccumulator;
use edgeloop_eval::report::{EvaluationReport, GenerationSummary};
use serde_json::Value;

/// Arguments of `edgeloop eval`.
#[derive(Debug, Parser)]
#[command(after_help = "Examples:\n  \
edgeloop eval classification --pred preds.jsonl --out eval/intent   # lines: {\"pred\": 3, \"label\": 3, \"scores\": [..], \"group\": \"region-b\"}\n  \
edgeloop eval generation --pred gen.jsonl --out eval/gen            # lines: {\"hyp\": \"..\", \"refs\": [\"..\"]}\n  \
edgeloop eval lm --pred lm.jsonl --out eval/lm --json               # lines: {\"text\": \"..\", \"token_nll\": [..]}\n  \
edgeloop eval image --image deploy/v1/intent.edli --tokenizer data/tokenizer.json --texts data/selected/test.jsonl \\\n    \
--classes @classifier/model/labels.json --slice region --out eval/robustness   # metrics, robustness suite, occlusion\n\n\
Writes report.json, report.md, report.html and PNG plots into --out.")]
pub struct Args {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Classification: accuracy, P/R/F1, confusion matrix, top-k, calibration, slices, fairness.
    Classification(ClassificationArgs),
    /// Generation: corpus BLEU and chrF (sacrebleu), ROUGE (rouge-score).
    Generation(CommonArgs),
    /// Language modelling: token perplexity, cross-entropy, bits per byte, word perplexity.
    Lm(CommonArgs),
    /// Run a classifier model image on labelled texts: metrics, slices, the robustness suite
    /// (accuracy under each perturbation, flip rate) and occlusion attributions.
    Image(ImageArgs),
}

#[derive(Debug, clap::Args)]
struct CommonArgs {
    /// Predictions (JSON Lines).
    #[arg(long)]
    pred: PathBuf,
    /// Output folder for report.json, report.md, report.html and plots/.
    #[arg(long)]
    out: PathBuf,
    /// Report title.
    #[arg(long, default_value = "Evaluation")]
    title: String,
    /// Model identifier shown in the report.
    #[arg(long, default_value = "")]
    model: String,
}

#[derive(Debug, clap::Args)]
struct ClassificationArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Labels (JSON Lines with "label", aligned line by line with --pred).
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Class names in index order (comma-separated). Default: indices, or the sorted names found.
    #[arg(long, value_delimiter = ',')]
    classes: Vec<String>,
    /// Top-k accuracies to report (needs "scores").
    #[arg(long, value_delimiter = ',', default_values_t = vec![1usize])]
    top_k: Vec<usize>,
    /// Calibration bins (needs "scores" that are probabilities).
    #[arg(long, default_value_t = 15)]
    bins: usize,
    /// Value of precision/recall/F1 when undefined: zero, one or nan.
    #[arg(long, default_value = "zero")]
    zero_division: String,
}

#[derive(Debug, clap::Args)]
struct ImageArgs {
    /// Classifier model image (token ids in, one score per class out).
    #[arg(long)]
    image: PathBuf,
    /// Refuse the image unless it carries a valid Ed25519 signature by this public key.
    #[arg(long)]
    public_key: Option<PathBuf>,
    /// The tokenizer the classifier was trained with (tokenizer.json or WordPiece vocab.txt).
    #[arg(long)]
    tokenizer: PathBuf,
    /// Labelled texts (JSON Lines with "text", "label" — a class name or index — and an
    /// optional "slice" object of tags).
    #[arg(long)]
    texts: PathBuf,
    /// Class names in the image's output order: comma-separated, or @FILE (a JSON list such as
    /// a classifier's labels.json, or one name per line).
    #[arg(long)]
    classes: String,
    /// Report per-slice metrics for this tag of each record's "slice" object (e.g. region).
    #[arg(long)]
    slice: Option<String>,
    /// Use only the first N records.
    #[arg(long)]
    limit: Option<usize>,
    /// Seed of the perturbation suite (the same seed gives the same perturbed texts).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Occlusion attributions for the first N records.
    #[arg(long, default_value_t = 3)]
    explain: usize,
    /// Output folder for report.json, report.md, report.html and plots/.
    #[arg(long)]
    out: PathBuf,
    /// Report title.
    #[arg(long, default_value = "Evaluation of a model image")]
    title: String,
}

/// Runs `edgeloop eval`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let (report, out) = match args.task {
        Task::Classification(a) => {
            let out = a.common.out.clone();
            (classification(a)?, out)
        }
        Task::Generation(a) => (generation(&a)?, a.out),
        Task::Lm(a) => (lm(&a)?, a.out),
        Task::Image(a) => (image(&a)?, a.out.clone()),
    };
    let written = report
        .write_all(&out)
        .with_context(|| format!("writing the report to {}", out.display()))?;
    crate::say!("wrote {}", written.json.display());
    crate::say!("wrote {}", written.markdown.display());
    crate::say!(
        "wrote {} ({} plots)",
        written.html.display(),
        written.plots.len()
    );
    super::output::summary(&serde_json::json!({
        "json": written.json,
        "markdown": written.markdown,
        "html": written.html,
        "plots": written.plots,
        "report": serde_json::from_str::<serde_json::Value>(
            &std::fs::read_to_string(&written.json)
                .with_context(|| format!("reading {}", written.json.display()))?
        )?,
    }))
}

/// One parsed JSON Lines record with its location.
struct Line {
    no: usize,
    value: Value,
}

fn read_jsonl(path: &Path) -> anyhow::Result<Vec<Line>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(raw)
            .with_context(|| format!("{}:{}: not valid JSON", path.display(), i + 1))?;
        if !value.is_object() {
            bail!("{}:{}: expected a JSON object", path.display(), i + 1);
        }
        out.push(Line { no: i + 1, value });
    }
    if out.is_empty() {
        bail!("{}: no records", path.display());
    }
    Ok(out)
}

fn at(path: &Path, line: &Line) -> String {
    format!("{}:{}", path.display(), line.no)
}

/// A class given as an index or a name.
#[derive(Debug, Clone, PartialEq)]
enum ClassRef {
    Index(usize),
    Name(String),
}

fn class_ref(path: &Path, line: &Line, key: &str) -> anyhow::Result<ClassRef> {
    match line.value.get(key) {
        Some(Value::Number(n)) => match n.as_u64() {
            Some(i) if i <= u32::MAX as u64 => Ok(ClassRef::Index(i as usize)),
            _ => bail!(
                "{}: \"{key}\" must be a non-negative integer or a string, got {n}",
                at(path, line)
            ),
        },
        Some(Value::String(s)) => Ok(ClassRef::Name(s.clone())),
        Some(Value::Bool(b)) => Ok(ClassRef::Index(*b as usize)),
        Some(other) => bail!(
            "{}: \"{key}\" must be a class index or name, got {other}",
            at(path, line)
        ),
        None => bail!("{}: missing \"{key}\"", at(path, line)),
    }
}

fn classification(a: ClassificationArgs) -> anyhow::Result<EvaluationReport> {
    let pred_path = &a.common.pred;
    let preds = read_jsonl(pred_path)?;
    let labels_src: Vec<(PathBuf, Line)> = match &a.labels {
        Some(p) => {
            let l = read_jsonl(p)?;
            if l.len() != preds.len() {
                bail!(
                    "{} has {} records but {} has {}",
                    p.display(),
                    l.len(),
                    pred_path.display(),
                    preds.len()
                );
            }
            l.into_iter().map(|x| (p.clone(), x)).collect()
        }
        None => Vec::new(),
    };
    let label_line = |i: usize| -> (&Path, &Line) {
        match labels_src.get(i) {
            Some((p, l)) => (p.as_path(), l),
            None => (pred_path.as_path(), &preds[i]),
        }
    };
    let mut raw_true = Vec::with_capacity(preds.len());
    let mut raw_pred = Vec::with_capacity(preds.len());
    let mut scores: Vec<Vec<f64>> = Vec::new();
    let mut groups: Vec<String> = Vec::new();
    for (i, line) in preds.iter().enumerate() {
        raw_pred.push(class_ref(pred_path, line, "pred")?);
        let (lp, ll) = label_line(i);
        raw_true.push(class_ref(lp, ll, "label")?);
        if let Some(s) = line.value.get("scores") {
            let row: Option<Vec<f64>> = s
                .as_array()
                .and_then(|v| v.iter().map(Value::as_f64).collect());
            match row {
                Some(r) if !r.is_empty() && r.iter().all(|x| x.is_finite()) => scores.push(r),
                _ => bail!(
                    "{}: \"scores\" must be a non-empty list of finite numbers",
                    at(pred_path, line)
                ),
            }
        } else if !scores.is_empty() {
            bail!(
                "{}: \"scores\" missing (earlier lines have it)",
                at(pred_path, line)
            );
        }
        let g = ll.value.get("group").or_else(|| line.value.get("group"));
        match g {
            Some(Value::String(s)) => groups.push(s.clone()),
            Some(Value::Number(n)) => groups.push(n.to_string()),
            Some(other) => bail!("{}: \"group\" must be a string, got {other}", at(lp, ll)),
            None if !groups.is_empty() => {
                bail!("{}: \"group\" missing (earlier lines have it)", at(lp, ll))
            }
            None => {}
        }
    }
    if !scores.is_empty() && scores.len() != preds.len() {
        bail!(
            "{}: \"scores\" must be on every line or none",
            pred_path.display()
        );
    }
    if !groups.is_empty() && groups.len() != preds.len() {
        bail!("\"group\" must be on every line or none");
    }

    // Resolve class names / indices.
    let any_names = raw_true
        .iter()
        .chain(&raw_pred)
        .any(|c| matches!(c, ClassRef::Name(_)));
    let mut classes = a.classes.clone();
    if classes.is_empty() {
        if any_names {
            let mut names: Vec<String> = raw_true
                .iter()
                .chain(&raw_pred)
                .filter_map(|c| match c {
                    ClassRef::Name(n) => Some(n.clone()),
                    ClassRef::Index(_) => None,
                })
                .collect();
            names.sort();
            names.dedup();
            classes = names;
        } else {
            let max = raw_true
                .iter()
                .chain(&raw_pred)
                .filter_map(|c| match c {
                    ClassRef::Index(i) => Some(*i),
                    ClassRef::Name(_) => None,
                })
                .max()
                .unwrap_or(0);
            let n = (max + 1).max(scores.first().map_or(0, Vec::len));
            classes = (0..n).map(|i| i.to_string()).collect();
        }
    }
    let resolve = |c: &ClassRef, path: &Path, line: &Line, key: &str| -> anyhow::Result<usize> {
        match c {
            ClassRef::Index(i) if *i < classes.len() => Ok(*i),
            ClassRef::Index(i) => bail!(
                "{}: \"{key}\" {i} is not below the {} classes",
                at(path, line),
                classes.len()
            ),
            ClassRef::Name(n) => classes.iter().position(|c| c == n).with_context(|| {
                format!(
                    "{}: \"{key}\" {n:?} is not one of the classes {classes:?}",
                    at(path, line)
                )
            }),
        }
    };
    let mut y_true = Vec::with_capacity(preds.len());
    let mut y_pred = Vec::with_capacity(preds.len());
    for (i, line) in preds.iter().enumerate() {
        y_pred.push(resolve(&raw_pred[i], pred_path, line, "pred")?);
        let (lp, ll) = label_line(i);
        y_true.push(resolve(&raw_true[i], lp, ll, "label")?);
        if let Some(s) = scores.get(i) {
            if s.len() != classes.len() {
                bail!(
                    "{}: {} scores for {} classes",
                    at(pred_path, line),
                    s.len(),
                    classes.len()
                );
            }
        }
    }
    let zero_division = match a.zero_division.as_str() {
        "zero" | "0" => ZeroDivision::Zero,
        "one" | "1" => ZeroDivision::One,
        "nan" => ZeroDivision::Nan,
        other => bail!("--zero-division must be zero, one or nan, got {other:?}"),
    };
    let has_scores = !scores.is_empty();
    let mut report = EvaluationReport::new(
        &a.common.title,
        &a.common.model,
        pred_path.display().to_string(),
    );
    report.classification = Some(
        ClassificationSummary::compute(
            &classes,
            &y_true,
            &y_pred,
            has_scores.then_some(scores.as_slice()),
            &a.top_k,
            zero_division,
        )
        .context("classification metrics")?,
    );
    if has_scores {
        let probabilities = scores.iter().all(|r| {
            r.iter().all(|v| (0.0..=1.0).contains(v)) && (r.iter().sum::<f64>() - 1.0).abs() < 1e-3
        });
        if probabilities {
            report.calibration =
                Some(calibration_from_probs(&y_true, &scores, a.bins).context("calibration")?);
        } else {
            eprintln!("note: \"scores\" are not probabilities (each row in [0,1] summing to 1): calibration skipped");
        }
    }
    if !groups.is_empty() {
        report.slices =
            per_slice(&y_true, &y_pred, &groups, classes.len()).context("per-slice metrics")?;
        if classes.len() == 2 {
            report.fairness = Some(
                binary_fairness(&y_true, &y_pred, &groups, GapMethod::BetweenGroups)
                    .context("fairness")?,
            );
        }
    }
    Ok(report)
}

fn generation(a: &CommonArgs) -> anyhow::Result<EvaluationReport> {
    let lines = read_jsonl(&a.pred)?;
    let mut hyps = Vec::with_capacity(lines.len());
    let mut refs = Vec::with_capacity(lines.len());
    for line in &lines {
        let hyp = match line.value.get("hyp") {
            Some(Value::String(s)) => s.clone(),
            _ => bail!("{}: \"hyp\" must be a string", at(&a.pred, line)),
        };
        let r: Vec<String> = match line.value.get("refs") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(v)) => v
                .iter()
                .map(|x| x.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .with_context(|| format!("{}: \"refs\" must hold strings", at(&a.pred, line)))?,
            _ => bail!(
                "{}: \"refs\" must be a string or a list of strings",
                at(&a.pred, line)
            ),
        };
        if r.is_empty() {
            bail!("{}: \"refs\" is empty", at(&a.pred, line));
        }
        hyps.push(hyp);
        refs.push(r);
    }
    let mut report = EvaluationReport::new(&a.title, &a.model, a.pred.display().to_string());
    report.generation =
        Some(GenerationSummary::compute(&hyps, &refs).context("generation metrics")?);
    Ok(report)
}

fn lm(a: &CommonArgs) -> anyhow::Result<EvaluationReport> {
    let lines = read_jsonl(&a.pred)?;
    let mut acc = LmAccumulator::default();
    for line in &lines {
        let text = match line.value.get("text") {
            Some(Value::String(s)) => s.as_str(),
            _ => bail!("{}: \"text\" must be a string", at(&a.pred, line)),
        };
        let nll: Vec<f64> = line
            .value
            .get("token_nll")
            .and_then(Value::as_array)
            .and_then(|v| v.iter().map(Value::as_f64).collect())
            .with_context(|| {
                format!(
                    "{}: \"token_nll\" must be a list of numbers",
                    at(&a.pred, line)
                )
            })?;
        acc.add_document(text, &nll)
            .with_context(|| at(&a.pred, line))?;
    }
    let mut report = EvaluationReport::new(&a.title, &a.model, a.pred.display().to_string());
    report.language_model = Some(acc.finish().context("language-model metrics")?);
    Ok(report)
}

/// Class names from `--classes`: comma-separated, or `@FILE` holding a JSON list or one name
/// per line.
fn parse_classes(spec: &str) -> anyhow::Result<Vec<String>> {
    let names: Vec<String> = match spec.strip_prefix('@') {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--classes: reading {path}"))?;
            if text.trim_start().starts_with('[') {
                serde_json::from_str(&text)
                    .with_context(|| format!("--classes: {path} is not a JSON list of names"))?
            } else {
                text.lines().map(|l| l.trim().to_string()).collect()
            }
        }
        None => spec.split(',').map(|l| l.trim().to_string()).collect(),
    };
    let names: Vec<String> = names.into_iter().filter(|n| !n.is_empty()).collect();
    if names.len() < 2 {
        bail!("--classes: give at least two class names");
    }
    for (i, n) in names.iter().enumerate() {
        if names[..i].contains(n) {
            bail!("--classes: {n:?} is listed twice");
        }
    }
    Ok(names)
}

fn image(a: &ImageArgs) -> anyhow::Result<EvaluationReport> {
    use crate::serve::model::{classify, ClassifierSpec, Image};
    use edgeloop_eval::explain::occlusion;
    use edgeloop_eval::robustness::{run_suite, Perturbation};
    use std::cell::RefCell;

    let classes = parse_classes(&a.classes)?;
    let bytes =
        std::fs::read(&a.image).with_context(|| format!("reading {}", a.image.display()))?;
    let key = match &a.public_key {
        Some(p) => Some(
            edgeloop_quantize::sign::read_public_key(p)
                .with_context(|| format!("--public-key {}", p.display()))?
                .0,
        ),
        None => None,
    };
    let img = Image::open(&bytes, key.as_ref())
        .with_context(|| format!("opening {}", a.image.display()))?;
    let spec = ClassifierSpec::of(&img.model().context("parsing the model image")?)
        .with_context(|| format!("{} is not a text classifier", a.image.display()))?;
    if spec.classes != classes.len() {
        bail!(
            "the image scores {} classes but --classes names {}",
            spec.classes,
            classes.len()
        );
    }
    let tok = edgeloop_trainer::tokenizer::Tokenizer::load(&a.tokenizer)
        .with_context(|| format!("loading the tokenizer {}", a.tokenizer.display()))?;
    if let Some(v) = spec.vocab {
        if tok.vocab_size() > v {
            bail!(
                "the tokenizer has {} ids but the image's embedding table has {v} rows: not the tokenizer this model was trained with",
                tok.vocab_size()
            );
        }
    }

    // Records.
    let mut lines = read_jsonl(&a.texts)?;
    if let Some(n) = a.limit {
        lines.truncate(n);
    }
    let mut texts = Vec::with_capacity(lines.len());
    let mut labels = Vec::with_capacity(lines.len());
    let mut groups = Vec::new();
    for line in &lines {
        let text = match line.value.get("text") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(Value::String(_)) => bail!("{}: \"text\" is empty", at(&a.texts, line)),
            _ => bail!("{}: \"text\" must be a string", at(&a.texts, line)),
        };
        let label = match class_ref(&a.texts, line, "label")? {
            ClassRef::Index(i) if i < classes.len() => i,
            ClassRef::Index(i) => bail!(
                "{}: \"label\" {i} is not below the {} classes",
                at(&a.texts, line),
                classes.len()
            ),
            ClassRef::Name(n) => classes.iter().position(|c| *c == n).with_context(|| {
                format!(
                    "{}: \"label\" {n:?} is not one of --classes",
                    at(&a.texts, line)
                )
            })?,
        };
        if let Some(key) = &a.slice {
            match line.value.get("slice").and_then(|s| s.get(key)) {
                Some(Value::String(g)) => groups.push(g.clone()),
                _ => bail!(
                    "{}: no string \"slice\".{key:?} (asked for by --slice)",
                    at(&a.texts, line)
                ),
            }
        }
        texts.push(text);
        labels.push(label);
    }

    // The model as the eval crate sees it: text -> (class, probabilities). The closure cannot
    // return an error, so the first one is kept and the command fails after the run.
    let failure: RefCell<Option<anyhow::Error>> = RefCell::new(None);
    let model = |text: &str| -> (usize, Vec<f64>) {
        let run = || -> anyhow::Result<(usize, Vec<f64>)> {
            let ids = crate::demo::device::encode(&tok, text, spec.tokens)?;
            let c = classify(&img, &spec, &ids)?;
            Ok((c.class, c.scores.iter().map(|&v| f64::from(v)).collect()))
        };
        match run() {
            Ok(r) => r,
            Err(e) => {
                failure
                    .borrow_mut()
                    .get_or_insert(e.context(format!("classifying {text:?}")));
                (0, vec![f64::NAN; spec.classes])
            }
        }
    };
    let check = || -> anyhow::Result<()> {
        match failure.borrow_mut().take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    };

    // Calls of the model: clean texts, each perturbation, occlusion (1 + words per text).
    let calls = texts.len() * (1 + Perturbation::default_suite().len() + 1)
        + texts
            .iter()
            .take(a.explain)
            .map(|t| 1 + t.split_whitespace().count())
            .sum::<usize>();
    let bar = super::output::bar(
        super::output::progress(),
        calls as u64,
        "eval",
        "model calls",
    );
    let mut y_pred = Vec::with_capacity(texts.len());
    let mut scores = Vec::with_capacity(texts.len());
    for t in &texts {
        let (c, s) = model(t);
        y_pred.push(c);
        scores.push(s);
        bar.inc(1);
    }
    check()?;
    let suite = Perturbation::default_suite();
    let robustness = run_suite(
        |t: &str| {
            bar.inc(1);
            model(t)
        },
        &texts,
        &labels,
        &suite,
        a.seed,
    )
    .context("robustness suite")?;
    check()?;
    let mut attributions = Vec::new();
    for t in texts.iter().take(a.explain) {
        let at = occlusion(
            |x: &str| {
                bar.inc(1);
                model(x)
            },
            t,
            None,
            None,
        );
        check()?;
        attributions.push(at.with_context(|| format!("occlusion of {t:?}"))?);
    }
    bar.finish_and_clear();

    let mut report = EvaluationReport::new(
        &a.title,
        format!(
            "{} ({} v{}, int8 runtime)",
            a.image.display(),
            img.meta.name,
            img.meta.version
        ),
        a.texts.display().to_string(),
    );
    report.classification = Some(
        ClassificationSummary::compute(
            &classes,
            &labels,
            &y_pred,
            Some(scores.as_slice()),
            &[1, 3.min(classes.len())],
            ZeroDivision::Zero,
        )
        .context("classification metrics")?,
    );
    report.calibration = Some(calibration_from_probs(&labels, &scores, 15).context("calibration")?);
    if !groups.is_empty() {
        report.slices =
            per_slice(&labels, &y_pred, &groups, classes.len()).context("per-slice metrics")?;
    }
    for r in &robustness.results {
        crate::say!(
            "{:<14} accuracy {:.1}% ({:+.1})  flip rate {:.1}%  texts changed {:.0}%",
            r.name,
            100.0 * r.accuracy,
            100.0 * r.accuracy_delta,
            100.0 * r.flip_rate,
            100.0 * r.changed_fraction
        );
    }
    report.robustness = Some(robustness);
    report.attributions = attributions;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("edgeloop-cli-eval-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    }

    #[test]
    fn classification_from_jsonl_writes_a_report() {
        let d = tmp("cls");
        let pred = d.join("preds.jsonl");
        std::fs::write(
            &pred,
            "{\"pred\":\"pos\",\"label\":\"pos\",\"scores\":[0.2,0.8],\"group\":\"a\"}\n\
             {\"pred\":\"neg\",\"label\":\"pos\",\"scores\":[0.6,0.4],\"group\":\"b\"}\n\
             \n\
             {\"pred\":\"neg\",\"label\":\"neg\",\"scores\":[0.9,0.1],\"group\":\"a\"}\n",
        )
        .unwrap();
        let out = d.join("out");
        let cli = Args::parse_from([
            "eval",
            "classification",
            "--pred",
            pred.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--classes",
            "neg,pos",
            "--bins",
            "5",
        ]);
        run(cli).unwrap();
        let json = std::fs::read_to_string(out.join("report.json")).unwrap();
        let r = EvaluationReport::from_json(&json).unwrap();
        let c = r.classification.unwrap();
        assert_eq!(c.confusion.counts, vec![vec![1, 0], vec![1, 1]]);
        assert!(r.calibration.is_some() && r.fairness.is_some());
        assert!(out.join("report.html").is_file() && out.join("plots/confusion.png").is_file());
    }

    #[test]
    fn errors_name_file_and_line() {
        let d = tmp("bad");
        let pred = d.join("preds.jsonl");
        std::fs::write(
            &pred,
            "{\"pred\":0,\"label\":1}\n{\"pred\":0,\"label\":-3}\n",
        )
        .unwrap();
        let cli = Args::parse_from([
            "eval",
            "classification",
            "--pred",
            pred.to_str().unwrap(),
            "--out",
            "x",
        ]);
        let err = format!("{:#}", run(cli).unwrap_err());
        assert!(
            err.contains("preds.jsonl:2") && err.contains("label"),
            "{err}"
        );
        std::fs::write(&pred, "{\"pred\":0,\"label\":1}\nnot json\n").unwrap();
        let cli = Args::parse_from([
            "eval",
            "classification",
            "--pred",
            pred.to_str().unwrap(),
            "--out",
            "x",
        ]);
        let err = format!("{:#}", run(cli).unwrap_err());
        assert!(err.contains("preds.jsonl:2: not valid JSON"), "{err}");
        let gen = d.join("gen.jsonl");
        std::fs::write(
            &gen,
            "{\"hyp\":\"a b\",\"refs\":[\"a b\"]}\n{\"hyp\":3,\"refs\":\"x\"}\n",
        )
        .unwrap();
        let cli = Args::parse_from([
            "eval",
            "generation",
            "--pred",
            gen.to_str().unwrap(),
            "--out",
            "x",
        ]);
        let err = format!("{:#}", run(cli).unwrap_err());
        assert!(err.contains("gen.jsonl:2") && err.contains("hyp"), "{err}");
    }

    #[test]
    fn generation_and_lm_reports() {
        let d = tmp("gen");
        let gen = d.join("gen.jsonl");
        std::fs::write(
            &gen,
            "{\"hyp\":\"the cat sat on the mat\",\"refs\":[\"the cat sat on a mat\"]}\n",
        )
        .unwrap();
        let out = d.join("g");
        run(Args::parse_from([
            "eval",
            "generation",
            "--pred",
            gen.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]))
        .unwrap();
        let r =
            EvaluationReport::from_json(&std::fs::read_to_string(out.join("report.json")).unwrap())
                .unwrap();
        assert!(r.generation.unwrap().bleu.score > 0.0);
        let lmf = d.join("lm.jsonl");
        std::fs::write(&lmf, "{\"text\":\"ab cd\",\"token_nll\":[1.0,2.0]}\n").unwrap();
        let out = d.join("l");
        run(Args::parse_from([
            "eval",
            "lm",
            "--pred",
            lmf.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]))
        .unwrap();
        let r =
            EvaluationReport::from_json(&std::fs::read_to_string(out.join("report.json")).unwrap())
                .unwrap();
        assert!((r.language_model.unwrap().token_cross_entropy - 1.5).abs() < 1e-12);
    }

    /// `eval image` on a real model image run by the runtime: a seeded tiny encoder with a
    /// character tokenizer. The labels are the image's own clean predictions, so the clean
    /// accuracy is 1 and, under each perturbation, accuracy = 1 − flip rate exactly.
    #[test]
    fn image_runs_the_robustness_suite_and_occlusion_on_the_runtime() {
        use crate::serve::model::{classify, ClassifierSpec, Image};
        use edgeloop_runtime::models::tiny_encoder::TinyEncoder;
        use edgeloop_trainer::tokenizer::{CharConfig, Tokenizer};

        let d = tmp("image");
        let (built, _) = TinyEncoder::random(7).image(None, false).unwrap();
        let img_path = d.join("m.edli");
        std::fs::write(&img_path, &built.bytes).unwrap();
        let words = [
            "ab", "cd", "bad", "fe", "dab", "ace", "bed", "fad", "cab", "2",
        ];
        // A fixed linear congruential sequence picks the words (the root package has no rand).
        let mut state = 3u64;
        let mut next = |n: usize| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as usize % n
        };
        let texts: Vec<String> = (0..40)
            .map(|_| {
                (0..1 + next(3))
                    .map(|_| words[next(words.len())])
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        let tok = Tokenizer::train_char(
            texts.iter(),
            &CharConfig {
                max_vocab: 32,
                min_frequency: 1,
            },
        )
        .unwrap();
        let tok_path = d.join("tokenizer.json");
        tok.save(&tok_path).unwrap();
        let img = Image::open(&built.bytes, None).unwrap();
        let spec = ClassifierSpec::of(&img.model().unwrap()).unwrap();
        let classes = ["w", "x", "y", "z"];
        let mut lines = String::new();
        for (i, t) in texts.iter().enumerate() {
            let ids = crate::demo::device::encode(&tok, t, spec.tokens).unwrap();
            let c = classify(&img, &spec, &ids).unwrap().class;
            let region = ["us", "uk"][i % 2];
            lines.push_str(
                &serde_json::json!({"text": t, "label": classes[c], "slice": {"region": region}})
                    .to_string(),
            );
            lines.push('\n');
        }
        let texts_path = d.join("texts.jsonl");
        std::fs::write(&texts_path, &lines).unwrap();
        let out = d.join("report");
        let argv = |classes: &str, texts: &Path| {
            vec![
                "eval".to_string(),
                "image".into(),
                "--image".into(),
                img_path.display().to_string(),
                "--tokenizer".into(),
                tok_path.display().to_string(),
                "--texts".into(),
                texts.display().to_string(),
                "--classes".into(),
                classes.into(),
                "--slice".into(),
                "region".into(),
                "--seed".into(),
                "5".into(),
                "--out".into(),
                out.display().to_string(),
            ]
        };
        run(Args::parse_from(argv("w,x,y,z", &texts_path))).unwrap();
        let r =
            EvaluationReport::from_json(&std::fs::read_to_string(out.join("report.json")).unwrap())
                .unwrap();
        assert_eq!(r.classification.as_ref().unwrap().accuracy, 1.0);
        let rob = r.robustness.as_ref().expect("robustness section");
        assert_eq!(rob.clean_accuracy, 1.0);
        assert_eq!(rob.n, 40);
        let names: Vec<&str> = rob.results.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "keyboard_typo",
                "char_swap",
                "char_drop",
                "case",
                "whitespace",
                "punctuation",
                "synonym",
                "number"
            ]
        );
        for p in &rob.results {
            assert!(
                (p.accuracy - (1.0 - p.flip_rate)).abs() < 1e-12,
                "{}: accuracy {} flip rate {}",
                p.name,
                p.accuracy,
                p.flip_rate
            );
        }
        let typo = &rob.results[0];
        assert!(typo.changed_fraction > 0.5, "{typo:?}");
        assert!(
            rob.results.iter().any(|p| p.flip_rate > 0.0),
            "a random encoder should flip somewhere: {rob:?}"
        );
        assert_eq!(r.attributions.len(), 3);
        for at in &r.attributions {
            assert_eq!(at.tokens.len(), at.text.split_whitespace().count());
        }
        assert_eq!(r.slices.len(), 2);
        assert!(r.calibration.is_some());
        assert!(out.join("plots/robustness.png").is_file());
        assert!(out.join("plots/attribution_0.png").is_file());
        // Seeded: the same run gives the same report.
        run(Args::parse_from(argv("w,x,y,z", &texts_path))).unwrap();
        let again =
            EvaluationReport::from_json(&std::fs::read_to_string(out.join("report.json")).unwrap())
                .unwrap();
        assert_eq!(again.robustness, r.robustness);
        assert_eq!(again.attributions, r.attributions);

        // Errors name what is wrong.
        let err = format!(
            "{:#}",
            run(Args::parse_from(argv("w,x,y", &texts_path))).unwrap_err()
        );
        assert!(
            err.contains("4 classes") && err.contains("names 3"),
            "{err}"
        );
        let bad = d.join("bad.jsonl");
        std::fs::write(
            &bad,
            format!(
                "{}{{\"text\":\"ab\",\"label\":\"q\",\"slice\":{{\"region\":\"us\"}}}}\n",
                lines.lines().next().unwrap().to_string() + "\n"
            ),
        )
        .unwrap();
        let err = format!(
            "{:#}",
            run(Args::parse_from(argv("w,x,y,z", &bad))).unwrap_err()
        );
        assert!(
            err.contains("bad.jsonl:2") && err.contains("\"q\""),
            "{err}"
        );
        let mut tampered = built.bytes.clone();
        tampered.truncate(tampered.len() / 2);
        std::fs::write(&img_path, &tampered).unwrap();
        let err = format!(
            "{:#}",
            run(Args::parse_from(argv("w,x,y,z", &texts_path))).unwrap_err()
        );
        assert!(err.contains("m.edli"), "{err}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
