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
edgeloop eval lm --pred lm.jsonl --out eval/lm --json               # lines: {\"text\": \"..\", \"token_nll\": [..]}\n\n\
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

/// Runs `edgeloop eval`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let (report, out) = match args.task {
        Task::Classification(a) => {
            let out = a.common.out.clone();
            (classification(a)?, out)
        }
        Task::Generation(a) => (generation(&a)?, a.out),
        Task::Lm(a) => (lm(&a)?, a.out),
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
}
