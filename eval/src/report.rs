//! One evaluation as a report: JSON (stable schema, [`SCHEMA_VERSION`]), Markdown, and an HTML
//! page with PNG plots (confusion-matrix heatmap, reliability diagram, per-slice bars,
//! robustness bars, attribution highlights).
//!
//! [`EvaluationReport::write_all`] writes `report.json`, `report.md`, `report.html` and
//! `plots/*.png` into one folder; the Markdown and HTML reference the plots relatively.
//!
//! JSON schema rules: field names are stable within a schema version; sections that were not
//! computed are `null` (or empty lists); undefined numbers (NaN) are `null`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::calibration::Calibration;
use crate::classification::ClassificationSummary;
use crate::compare::{html_escape, md_escape, ComparisonTable};
use crate::error::{same_len, Error, Result};
use crate::explain::Attribution;
use crate::fairness::{FairnessReport, SliceMetrics};
use crate::lm::LmMetrics;
use crate::plot::{bar_chart_png, heatmap_png, ChartOptions};
use crate::robustness::RobustnessReport;
use crate::text::bleu::{corpus_bleu, BleuOptions, BleuScore};
use crate::text::chrf::{corpus_chrf, ChrfOptions};
use crate::text::rouge::{rouge_multi, RougeScore, RougeScores};

/// Version of the JSON layout; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// Generation metrics of a corpus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationSummary {
    /// Segments.
    pub n: u64,
    /// Corpus BLEU (sacrebleu defaults).
    pub bleu: BleuScore,
    /// Corpus chrF (sacrebleu defaults).
    pub chrf: f64,
    /// Mean ROUGE over segments (best reference per segment), without stemming.
    pub rouge: RougeScores,
    /// The same with Porter stemming.
    pub rouge_stemmed: RougeScores,
}

impl GenerationSummary {
    /// Computes every generation metric; `refs[i]` are the references of segment `i`.
    pub fn compute(hyps: &[String], refs: &[Vec<String>]) -> Result<Self> {
        same_len("hypotheses vs reference sets", hyps.len(), refs.len())?;
        let bleu = corpus_bleu(hyps, refs, &BleuOptions::default())?;
        let chrf = corpus_chrf(hyps, refs, &ChrfOptions::default())?;
        let mean = |stem: bool| -> Result<RougeScores> {
            let mut acc = [[0.0f64; 3]; 4];
            for (h, r) in hyps.iter().zip(refs) {
                let s = rouge_multi(r, h, stem)?;
                for (k, v) in [s.rouge1, s.rouge2, s.rouge_l, s.rouge_lsum]
                    .iter()
                    .enumerate()
                {
                    acc[k][0] += v.precision;
                    acc[k][1] += v.recall;
                    acc[k][2] += v.fmeasure;
                }
            }
            let n = hyps.len() as f64;
            let mk = |a: [f64; 3]| RougeScore {
                precision: a[0] / n,
                recall: a[1] / n,
                fmeasure: a[2] / n,
            };
            Ok(RougeScores {
                rouge1: mk(acc[0]),
                rouge2: mk(acc[1]),
                rouge_l: mk(acc[2]),
                rouge_lsum: mk(acc[3]),
            })
        };
        Ok(GenerationSummary {
            n: hyps.len() as u64,
            bleu,
            chrf,
            rouge: mean(false)?,
            rouge_stemmed: mean(true)?,
        })
    }
}

/// Everything one evaluation produced. Unused sections stay `None` / empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationReport {
    /// [`SCHEMA_VERSION`] at writing time.
    pub schema_version: u32,
    /// Report title.
    pub title: String,
    /// Model identifier (name, version, path).
    pub model: String,
    /// Dataset identifier.
    pub dataset: String,
    /// Classification metrics.
    pub classification: Option<ClassificationSummary>,
    /// Calibration.
    pub calibration: Option<Calibration>,
    /// Metrics per slice.
    pub slices: Vec<SliceMetrics>,
    /// Binary fairness gaps.
    pub fairness: Option<FairnessReport>,
    /// Generation metrics.
    pub generation: Option<GenerationSummary>,
    /// Language-model metrics.
    pub language_model: Option<LmMetrics>,
    /// Robustness suite results.
    pub robustness: Option<RobustnessReport>,
    /// Attributions of selected examples.
    pub attributions: Vec<Attribution>,
    /// Side-by-side backend comparison.
    pub comparison: Option<ComparisonTable>,
}

/// Paths written by [`EvaluationReport::write_all`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenReport {
    /// `report.json`.
    pub json: PathBuf,
    /// `report.md`.
    pub markdown: PathBuf,
    /// `report.html`.
    pub html: PathBuf,
    /// Every PNG plot.
    pub plots: Vec<PathBuf>,
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
}

fn f4(v: f64) -> String {
    if v.is_nan() {
        "n/a".to_string()
    } else {
        format!("{v:.4}")
    }
}

/// A plot file relative to the report folder, with its caption.
struct Plot {
    rel: String,
    caption: String,
}

impl EvaluationReport {
    /// An empty report.
    pub fn new(
        title: impl Into<String>,
        model: impl Into<String>,
        dataset: impl Into<String>,
    ) -> Self {
        EvaluationReport {
            schema_version: SCHEMA_VERSION,
            title: title.into(),
            model: model.into(),
            dataset: dataset.into(),
            classification: None,
            calibration: None,
            slices: Vec::new(),
            fairness: None,
            generation: None,
            language_model: None,
            robustness: None,
            attributions: Vec::new(),
            comparison: None,
        }
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    /// Parses a report, refusing other schema versions.
    pub fn from_json(s: &str) -> Result<Self> {
        let r: EvaluationReport = serde_json::from_str(s)?;
        if r.schema_version != SCHEMA_VERSION {
            return Err(Error::InvalidArgument(format!(
                "report schema version {} (this build reads {SCHEMA_VERSION})",
                r.schema_version
            )));
        }
        Ok(r)
    }

    /// Draws every plot the report has into `dir/plots/`.
    fn write_plots(&self, dir: &Path) -> Result<Vec<(&'static str, Plot)>> {
        let plots_dir = dir.join("plots");
        std::fs::create_dir_all(&plots_dir).map_err(|e| Error::io(&plots_dir, e))?;
        let mut out = Vec::new();
        if let Some(c) = &self.classification {
            let counts: Vec<Vec<f64>> = c
                .confusion
                .counts
                .iter()
                .map(|r| r.iter().map(|&v| v as f64).collect())
                .collect();
            let side = (160 + 90 * c.class_names.len() as u32).clamp(400, 1600);
            heatmap_png(
                plots_dir.join("confusion.png"),
                &ChartOptions::new("Confusion matrix")
                    .x_label("predicted class")
                    .y_label("true class")
                    .size(side, side),
                &c.class_names,
                &c.class_names,
                &counts,
            )?;
            out.push((
                "classification",
                Plot {
                    rel: "plots/confusion.png".into(),
                    caption: "Confusion matrix (rows: true class, columns: predicted class)".into(),
                },
            ));
        }
        if let Some(cal) = &self.calibration {
            cal.plot_png(plots_dir.join("reliability.png"), "Reliability diagram")?;
            out.push((
                "calibration",
                Plot {
                    rel: "plots/reliability.png".into(),
                    caption: format!("Reliability diagram (ECE {})", f4(cal.ece)),
                },
            ));
        }
        if !self.slices.is_empty() {
            let labels: Vec<String> = self.slices.iter().map(|s| s.slice.clone()).collect();
            let values: Vec<f64> = self
                .slices
                .iter()
                .map(|s| {
                    if s.accuracy.is_finite() {
                        s.accuracy
                    } else {
                        0.0
                    }
                })
                .collect();
            bar_chart_png(
                plots_dir.join("slices.png"),
                &ChartOptions::new("Accuracy per slice").y_label("accuracy"),
                &labels,
                &values,
            )?;
            out.push((
                "slices",
                Plot {
                    rel: "plots/slices.png".into(),
                    caption: "Accuracy per slice".into(),
                },
            ));
        }
        if let Some(r) = &self.robustness {
            if !r.results.is_empty() {
                let mut labels = vec!["clean".to_string()];
                labels.extend(r.results.iter().map(|p| p.name.clone()));
                let mut values = vec![r.clean_accuracy];
                values.extend(r.results.iter().map(|p| p.accuracy));
                bar_chart_png(
                    plots_dir.join("robustness.png"),
                    &ChartOptions::new("Accuracy under perturbation")
                        .y_label("accuracy")
                        .size(1000, 500),
                    &labels,
                    &values,
                )?;
                out.push((
                    "robustness",
                    Plot {
                        rel: "plots/robustness.png".into(),
                        caption: "Accuracy on clean and perturbed inputs".into(),
                    },
                ));
            }
        }
        for (i, a) in self.attributions.iter().enumerate() {
            let rel = format!("plots/attribution_{i}.png");
            a.plot_png(
                dir.join(&rel),
                &format!("Attribution to class {} (example {i})", a.target_class),
            )?;
            out.push((
                "attributions",
                Plot {
                    rel,
                    caption: format!("Example {i}: red supports the class, blue opposes it"),
                },
            ));
        }
        Ok(out)
    }

    /// Markdown text (plots referenced as `plots/*.png`, present after [`Self::write_all`]).
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# {}\n", md_escape(&self.title));
        let _ = writeln!(s, "- model: `{}`", self.model.replace('`', "'"));
        let _ = writeln!(s, "- dataset: `{}`", self.dataset.replace('`', "'"));
        let _ = writeln!(s, "- schema version: {}\n", self.schema_version);
        if let Some(c) = &self.comparison {
            let _ = writeln!(s, "## Backends side by side\n\n{}", c.to_markdown());
        }
        if let Some(c) = &self.classification {
            let _ = writeln!(s, "## Classification\n");
            let _ = writeln!(s, "| metric | value |\n|---|---:|");
            let _ = writeln!(s, "| examples | {} |", c.n);
            let _ = writeln!(s, "| accuracy | {} |", f4(c.accuracy));
            for (name, v) in [
                ("macro", &c.macro_avg),
                ("micro", &c.micro_avg),
                ("weighted", &c.weighted_avg),
            ] {
                let _ = writeln!(
                    s,
                    "| {name} precision / recall / F1 | {} / {} / {} |",
                    f4(v.precision),
                    f4(v.recall),
                    f4(v.f1)
                );
            }
            for (k, v) in &c.top_k {
                let _ = writeln!(s, "| top-{k} accuracy | {} |", f4(*v));
            }
            let _ = writeln!(
                s,
                "\n| class | precision | recall | F1 | support |\n|---|---:|---:|---:|---:|"
            );
            for (name, p) in c.class_names.iter().zip(&c.per_class) {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} |",
                    md_escape(name),
                    f4(p.precision),
                    f4(p.recall),
                    f4(p.f1),
                    p.support
                );
            }
            let _ = writeln!(s, "\n![confusion matrix](plots/confusion.png)\n");
        }
        if let Some(cal) = &self.calibration {
            let _ = writeln!(
                s,
                "## Calibration\n\nECE {} · MCE {} ({} bins)\n\n![reliability diagram](plots/reliability.png)\n",
                f4(cal.ece),
                f4(cal.mce),
                cal.bins.len()
            );
        }
        if !self.slices.is_empty() {
            let _ = writeln!(
                s,
                "## Slices\n\n| slice | examples | accuracy | macro F1 |\n|---|---:|---:|---:|"
            );
            for sl in &self.slices {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} |",
                    md_escape(&sl.slice),
                    sl.count,
                    f4(sl.accuracy),
                    f4(sl.macro_f1)
                );
            }
            let _ = writeln!(s, "\n![accuracy per slice](plots/slices.png)\n");
        }
        if let Some(f) = &self.fairness {
            let _ = writeln!(s, "## Fairness ({:?})\n", f.method);
            let _ = writeln!(s, "| measure | value |\n|---|---:|");
            let _ = writeln!(
                s,
                "| demographic parity difference | {} |",
                f4(f.demographic_parity_difference)
            );
            let _ = writeln!(
                s,
                "| demographic parity ratio | {} |",
                f4(f.demographic_parity_ratio)
            );
            let _ = writeln!(
                s,
                "| equalized odds difference | {} |",
                f4(f.equalized_odds_difference)
            );
            let _ = writeln!(
                s,
                "| equalized odds ratio | {} |",
                f4(f.equalized_odds_ratio)
            );
            let _ = writeln!(s, "\n| group | examples | accuracy | selection rate | TPR | FPR |\n|---|---:|---:|---:|---:|---:|");
            for g in f.groups.iter().chain(std::iter::once(&f.overall)) {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} |",
                    md_escape(&g.group),
                    g.count,
                    f4(g.accuracy),
                    f4(g.selection_rate),
                    f4(g.tpr),
                    f4(g.fpr)
                );
            }
            s.push('\n');
        }
        if let Some(g) = &self.generation {
            let _ = writeln!(s, "## Generation ({} segments)\n", g.n);
            let _ = writeln!(s, "| metric | value |\n|---|---:|");
            let _ = writeln!(s, "| BLEU (sacrebleu 13a) | {:.2} |", g.bleu.score);
            let _ = writeln!(s, "| chrF | {:.2} |", g.chrf);
            for (name, r) in [("", &g.rouge), (" (stemmed)", &g.rouge_stemmed)] {
                let _ = writeln!(s, "| ROUGE-1 F{name} | {} |", f4(r.rouge1.fmeasure));
                let _ = writeln!(s, "| ROUGE-2 F{name} | {} |", f4(r.rouge2.fmeasure));
                let _ = writeln!(s, "| ROUGE-L F{name} | {} |", f4(r.rouge_l.fmeasure));
                let _ = writeln!(s, "| ROUGE-Lsum F{name} | {} |", f4(r.rouge_lsum.fmeasure));
            }
            s.push('\n');
        }
        if let Some(l) = &self.language_model {
            let _ = writeln!(s, "## Language modelling\n");
            let _ = writeln!(s, "| metric | value |\n|---|---:|");
            let _ = writeln!(
                s,
                "| token cross-entropy (nats) | {} |",
                f4(l.token_cross_entropy)
            );
            let _ = writeln!(s, "| token perplexity | {} |", f4(l.token_perplexity));
            let _ = writeln!(s, "| bits per byte | {} |", f4(l.bits_per_byte));
            let _ = writeln!(s, "| word perplexity | {} |", f4(l.word_perplexity));
            let _ = writeln!(
                s,
                "| tokens / bytes / words | {} / {} / {} |\n",
                l.totals.tokens, l.totals.bytes, l.totals.words
            );
        }
        if let Some(r) = &self.robustness {
            let _ = writeln!(
                s,
                "## Robustness (seed {}, {} examples, clean accuracy {})\n",
                r.seed,
                r.n,
                f4(r.clean_accuracy)
            );
            let _ = writeln!(s, "| perturbation | accuracy | Δ accuracy | flip rate | texts changed |\n|---|---:|---:|---:|---:|");
            for p in &r.results {
                let _ = writeln!(
                    s,
                    "| {} | {} | {:+.4} | {} | {} |",
                    p.name,
                    f4(p.accuracy),
                    p.accuracy_delta,
                    f4(p.flip_rate),
                    f4(p.changed_fraction)
                );
            }
            let _ = writeln!(s, "\n![robustness](plots/robustness.png)\n");
        }
        if !self.attributions.is_empty() {
            let _ = writeln!(s, "## Attributions\n");
            for (i, a) in self.attributions.iter().enumerate() {
                let top: Vec<String> = a
                    .top(5)
                    .iter()
                    .map(|t| format!("`{}` {:+.3}", t.token.replace('`', "'"), t.score))
                    .collect();
                let _ = writeln!(
                    s,
                    "- example {i} (class {}): {}",
                    a.target_class,
                    top.join(", ")
                );
                let _ = writeln!(s, "\n  ![attribution {i}](plots/attribution_{i}.png)\n");
            }
        }
        s
    }

    fn to_html(&self, plots: &[(&'static str, Plot)]) -> String {
        let img = |section: &str| -> String {
            plots
                .iter()
                .filter(|(s, _)| *s == section)
                .map(|(_, p)| {
                    format!(
                        "<figure><img src=\"{}\" alt=\"{}\"><figcaption>{}</figcaption></figure>",
                        html_escape(&p.rel),
                        html_escape(&p.caption),
                        html_escape(&p.caption)
                    )
                })
                .collect()
        };
        let mut b = String::new();
        let _ = write!(
            b,
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
             <style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}}\
             table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}\
             td:first-child,th:first-child{{text-align:left}}th{{background:#f0f4f8}}.worse{{background:#fde2e2}}\
             figure{{margin:1em 0}}img{{max-width:100%;border:1px solid #ddd}}figcaption{{color:#555;font-size:90%}}\
             .tok{{padding:1px 3px;margin:1px;border-radius:3px;display:inline-block}}</style></head><body>\
             <h1>{title}</h1><p>model: <code>{model}</code> · dataset: <code>{dataset}</code> · schema version {v}</p>",
            title = html_escape(&self.title),
            model = html_escape(&self.model),
            dataset = html_escape(&self.dataset),
            v = self.schema_version
        );
        if let Some(c) = &self.comparison {
            let _ = write!(b, "<h2>Backends side by side</h2>{}", c.to_html());
        }
        if let Some(c) = &self.classification {
            let _ = write!(
                b,
                "<h2>Classification</h2><table><tr><th>metric</th><th>value</th></tr>"
            );
            let _ = write!(
                b,
                "<tr><td>examples</td><td>{}</td></tr><tr><td>accuracy</td><td>{}</td></tr>",
                c.n,
                f4(c.accuracy)
            );
            for (name, v) in [
                ("macro", &c.macro_avg),
                ("micro", &c.micro_avg),
                ("weighted", &c.weighted_avg),
            ] {
                let _ = write!(
                    b,
                    "<tr><td>{name} precision / recall / F1</td><td>{} / {} / {}</td></tr>",
                    f4(v.precision),
                    f4(v.recall),
                    f4(v.f1)
                );
            }
            for (k, v) in &c.top_k {
                let _ = write!(b, "<tr><td>top-{k} accuracy</td><td>{}</td></tr>", f4(*v));
            }
            let _ = write!(b, "</table><table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>");
            for (name, p) in c.class_names.iter().zip(&c.per_class) {
                let _ = write!(
                    b,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    html_escape(name),
                    f4(p.precision),
                    f4(p.recall),
                    f4(p.f1),
                    p.support
                );
            }
            let _ = write!(b, "</table>{}", img("classification"));
        }
        if let Some(cal) = &self.calibration {
            let _ = write!(
                b,
                "<h2>Calibration</h2><p>ECE {} · MCE {} ({} bins)</p>{}",
                f4(cal.ece),
                f4(cal.mce),
                cal.bins.len(),
                img("calibration")
            );
        }
        if !self.slices.is_empty() {
            let _ = write!(b, "<h2>Slices</h2><table><tr><th>slice</th><th>examples</th><th>accuracy</th><th>macro F1</th></tr>");
            for sl in &self.slices {
                let _ = write!(
                    b,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    html_escape(&sl.slice),
                    sl.count,
                    f4(sl.accuracy),
                    f4(sl.macro_f1)
                );
            }
            let _ = write!(b, "</table>{}", img("slices"));
        }
        if let Some(f) = &self.fairness {
            let _ = write!(
                b,
                "<h2>Fairness ({:?})</h2><table><tr><th>measure</th><th>value</th></tr>",
                f.method
            );
            for (n, v) in [
                (
                    "demographic parity difference",
                    f.demographic_parity_difference,
                ),
                ("demographic parity ratio", f.demographic_parity_ratio),
                ("equalized odds difference", f.equalized_odds_difference),
                ("equalized odds ratio", f.equalized_odds_ratio),
            ] {
                let _ = write!(b, "<tr><td>{n}</td><td>{}</td></tr>", f4(v));
            }
            let _ = write!(b, "</table><table><tr><th>group</th><th>examples</th><th>accuracy</th><th>selection rate</th><th>TPR</th><th>FPR</th></tr>");
            for g in f.groups.iter().chain(std::iter::once(&f.overall)) {
                let _ = write!(
                    b,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    html_escape(&g.group),
                    g.count,
                    f4(g.accuracy),
                    f4(g.selection_rate),
                    f4(g.tpr),
                    f4(g.fpr)
                );
            }
            b.push_str("</table>");
        }
        if let Some(g) = &self.generation {
            let _ = write!(
                b,
                "<h2>Generation ({} segments)</h2><table><tr><th>metric</th><th>value</th></tr>\
                 <tr><td>BLEU (sacrebleu 13a)</td><td>{:.2}</td></tr><tr><td>chrF</td><td>{:.2}</td></tr>",
                g.n, g.bleu.score, g.chrf
            );
            for (name, r) in [("", &g.rouge), (" (stemmed)", &g.rouge_stemmed)] {
                for (m, v) in [
                    ("ROUGE-1", r.rouge1),
                    ("ROUGE-2", r.rouge2),
                    ("ROUGE-L", r.rouge_l),
                    ("ROUGE-Lsum", r.rouge_lsum),
                ] {
                    let _ = write!(
                        b,
                        "<tr><td>{m} F{name}</td><td>{}</td></tr>",
                        f4(v.fmeasure)
                    );
                }
            }
            b.push_str("</table>");
        }
        if let Some(l) = &self.language_model {
            let _ = write!(
                b,
                "<h2>Language modelling</h2><table><tr><th>metric</th><th>value</th></tr>\
                 <tr><td>token cross-entropy (nats)</td><td>{}</td></tr><tr><td>token perplexity</td><td>{}</td></tr>\
                 <tr><td>bits per byte</td><td>{}</td></tr><tr><td>word perplexity</td><td>{}</td></tr></table>",
                f4(l.token_cross_entropy),
                f4(l.token_perplexity),
                f4(l.bits_per_byte),
                f4(l.word_perplexity)
            );
        }
        if let Some(r) = &self.robustness {
            let _ = write!(
                b,
                "<h2>Robustness</h2><p>seed {}, {} examples, clean accuracy {}</p><table><tr><th>perturbation</th>\
                 <th>accuracy</th><th>Δ accuracy</th><th>flip rate</th><th>texts changed</th></tr>",
                r.seed,
                r.n,
                f4(r.clean_accuracy)
            );
            for p in &r.results {
                let _ = write!(
                    b,
                    "<tr><td>{}</td><td>{}</td><td>{:+.4}</td><td>{}</td><td>{}</td></tr>",
                    html_escape(&p.name),
                    f4(p.accuracy),
                    p.accuracy_delta,
                    f4(p.flip_rate),
                    f4(p.changed_fraction)
                );
            }
            let _ = write!(b, "</table>{}", img("robustness"));
        }
        if !self.attributions.is_empty() {
            b.push_str("<h2>Attributions</h2>");
            for a in &self.attributions {
                let scale = a.tokens.iter().fold(0.0f64, |m, t| m.max(t.score.abs()));
                let scale = if scale > 0.0 { scale } else { 1.0 };
                b.push_str("<p>");
                for t in &a.tokens {
                    let alpha = (t.score.abs() / scale).min(1.0);
                    let rgb = if t.score >= 0.0 {
                        "214,39,40"
                    } else {
                        "31,119,180"
                    };
                    let _ = write!(
                        b,
                        "<span class=\"tok\" style=\"background:rgba({rgb},{alpha:.3})\" title=\"{:+.4}\">{}</span>",
                        t.score,
                        html_escape(&t.token)
                    );
                }
                b.push_str("</p>");
            }
            b.push_str(&img("attributions"));
        }
        // Records, once the page has loaded, how many images decoded (read by the headless test).
        b.push_str(
            "<script>window.addEventListener('load',function(){var i=document.images,n=0;\
             for(var k=0;k<i.length;k++){if(i[k].complete&&i[k].naturalWidth>0)n++;}\
             document.body.setAttribute('data-images-loaded',n+'/'+i.length);});</script></body></html>\n",
        );
        b
    }

    /// Writes `report.json`, `report.md`, `report.html` and `plots/*.png` into `dir`
    /// (created if missing).
    pub fn write_all(&self, dir: impl AsRef<Path>) -> Result<WrittenReport> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let plots = self.write_plots(dir)?;
        let json = dir.join("report.json");
        write_file(&json, self.to_json()?.as_bytes())?;
        let markdown = dir.join("report.md");
        write_file(&markdown, self.to_markdown().as_bytes())?;
        let html = dir.join("report.html");
        write_file(&html, self.to_html(&plots).as_bytes())?;
        Ok(WrittenReport {
            json,
            markdown,
            html,
            plots: plots.iter().map(|(_, p)| dir.join(&p.rel)).collect(),
        })
    }
}

/// A report with every section filled from small synthetic data, used by tests and examples.
pub fn sample_report() -> Result<EvaluationReport> {
    use crate::calibration::calibration_from_probs;
    use crate::classification::ZeroDivision;
    use crate::compare::{backends, ComparisonTable};
    use crate::explain::occlusion;
    use crate::fairness::{binary_fairness, per_slice, GapMethod};
    use crate::lm::LmAccumulator;
    use crate::robustness::{run_suite, Perturbation};

    let names: Vec<String> = ["negative", "positive"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let texts: Vec<String> = [
        "a great film with a good story",
        "terrible acting and a boring plot",
        "good value, works fine",
        "bad battery, broken after 2 days",
        "great sound and a nice screen",
        "awful support, very slow",
        "not bad at all",
        "the best purchase of 2024",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let labels = vec![1, 0, 1, 0, 1, 0, 1, 1];
    let model = |t: &str| -> (usize, Vec<f64>) {
        let s: f64 = t
            .split(|c: char| !c.is_alphanumeric())
            .map(|w| match w {
                "great" | "good" | "nice" | "best" | "fine" => 1.0,
                "terrible" | "bad" | "awful" | "boring" | "broken" | "slow" => -1.0,
                _ => 0.0,
            })
            .sum();
        let p = 1.0 / (1.0 + (-1.5 * s).exp());
        ((p >= 0.5) as usize, vec![1.0 - p, p])
    };
    let preds: Vec<(usize, Vec<f64>)> = texts.iter().map(|t| model(t)).collect();
    let y_pred: Vec<usize> = preds.iter().map(|p| p.0).collect();
    let probs: Vec<Vec<f64>> = preds.iter().map(|p| p.1.clone()).collect();
    let groups: Vec<String> = [
        "film", "film", "device", "device", "device", "service", "film", "device",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut r = EvaluationReport::new("Sample evaluation", "keyword-sentiment v0", "eight reviews");
    r.classification = Some(ClassificationSummary::compute(
        &names,
        &labels,
        &y_pred,
        Some(&probs),
        &[1],
        ZeroDivision::Zero,
    )?);
    r.calibration = Some(calibration_from_probs(&labels, &probs, 5)?);
    r.slices = per_slice(&labels, &y_pred, &groups, 2)?;
    r.fairness = Some(binary_fairness(
        &labels,
        &y_pred,
        &groups,
        GapMethod::BetweenGroups,
    )?);
    r.generation = Some(GenerationSummary::compute(
        &[
            "the cat sat on the mat".to_string(),
            "a dog barked".to_string(),
        ],
        &[
            vec!["the cat sat on a mat".to_string()],
            vec![
                "the dog barked".to_string(),
                "a dog was barking".to_string(),
            ],
        ],
    )?);
    let mut lm = LmAccumulator::default();
    lm.add_document("the cat sat", &[2.0, 1.5, 0.7])?;
    lm.add_document("on the mat", &[1.1, 0.4, 0.9])?;
    r.language_model = Some(lm.finish()?);
    r.robustness = Some(run_suite(
        model,
        &texts,
        &labels,
        &Perturbation::default_suite(),
        7,
    )?);
    r.attributions = vec![
        occlusion(model, &texts[0], None, None)?,
        occlusion(model, &texts[3], None, None)?,
    ];
    let mut table = ComparisonTable::new(ComparisonTable::classification_columns());
    let base = r
        .classification
        .as_ref()
        .ok_or_else(|| Error::Empty("classification".into()))?;
    table.add_classification(backends::FP32_CANDLE, base)?;
    table.add_classification(backends::INT8_ORT, base)?;
    r.comparison = Some(table);
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_including_nan() {
        let mut r = sample_report().unwrap();
        if let Some(c) = r.classification.as_mut() {
            c.per_class[0].precision = f64::NAN;
        }
        let j = r.to_json().unwrap();
        assert!(
            j.contains("\"precision\": null"),
            "NaN must serialize as null"
        );
        let back = EvaluationReport::from_json(&j).unwrap();
        assert!(back.classification.as_ref().unwrap().per_class[0]
            .precision
            .is_nan());
        // Everything else identical (compare re-serialized forms, NaN != NaN in PartialEq).
        assert_eq!(back.to_json().unwrap(), j);
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        for key in [
            "schema_version",
            "title",
            "model",
            "dataset",
            "classification",
            "calibration",
            "slices",
            "fairness",
            "generation",
            "language_model",
            "robustness",
            "attributions",
            "comparison",
        ] {
            assert!(v.get(key).is_some(), "schema key {key} missing");
        }
        assert!(EvaluationReport::from_json(
            &j.replace("\"schema_version\": 1", "\"schema_version\": 99")
        )
        .is_err());
    }

    #[test]
    fn writes_all_formats() {
        let dir = std::env::temp_dir().join(format!("edgeloop-eval-report-{}", std::process::id()));
        let w = sample_report().unwrap().write_all(&dir).unwrap();
        let md = std::fs::read_to_string(&w.markdown).unwrap();
        assert!(md.contains("## Classification") && md.contains("plots/confusion.png"));
        let html = std::fs::read_to_string(&w.html).unwrap();
        for p in &w.plots {
            assert!(p.exists(), "{} missing", p.display());
            let rel = p.strip_prefix(&dir).unwrap().to_string_lossy().to_string();
            assert!(html.contains(&rel), "{rel} not referenced by the HTML");
        }
        assert_eq!(w.plots.len(), 6);
    }
}
