//! Demo stages 3–5 for one model version: quantize the fp32 ONNX classifier to int8 QDQ ONNX
//! (calibrated on lab training inputs), compile it into a model image, sign the image, and score
//! the three forms side by side — fp32 ONNX and int8 ONNX in tract, the signed image on the host
//! runtime — on the lab test set and the held-out field set.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use edgeloop_eval::calibration::calibration_from_probs;
use edgeloop_eval::classification::{ClassificationSummary, ZeroDivision};
use edgeloop_eval::compare::{ComparisonTable, MetricColumn};
use edgeloop_eval::fairness::per_slice;
use edgeloop_eval::report::EvaluationReport;
use edgeloop_quantize::compile::reference::host_sample;
use edgeloop_quantize::compile::{self, CompileOptions};
use edgeloop_quantize::oracle::OrtModel;
use edgeloop_quantize::runner::{Sample, Tap};
use edgeloop_quantize::sign::{self, PublicKey, SecretKey};
use edgeloop_quantize::tensor::Tensor;
use edgeloop_quantize::{quantize, Dataset, Method, OnnxModel, QuantizeConfig};
use edgeloop_trainer::data::Record;
use edgeloop_trainer::tokenizer::Tokenizer;
use edgeloop_trainer::train::jobs;
use serde::Serialize;

use super::data::Data;
use super::device::{self, HostModel};
use super::train::{relative, Classifier};
use super::{write_json, Ctx};

/// The fleet's signing key pair.
#[derive(Debug, Clone)]
pub struct Keys {
    /// Secret key (signs images).
    pub secret: SecretKey,
    /// Public key (devices verify against it).
    pub public: PublicKey,
    /// `keys/edgeloop.pub`.
    pub public_path: PathBuf,
}

/// Generates the demo's key pair (seeded from the run seed, so runs are reproducible; real
/// fleets use `edgeloop keygen`, which draws from the OS).
pub fn keys(ctx: &Ctx) -> anyhow::Result<Keys> {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&ctx.seed.to_le_bytes());
    seed[8..16].copy_from_slice(b"edgeloop");
    let (secret, public) = sign::generate_keypair(Some(seed))?;
    let (_, public_path) = sign::write_keypair(&ctx.out.join("keys"), &secret, true)?;
    crate::say!(
        "signing key written to {} (public key {})",
        ctx.out.join("keys").display(),
        public_path.display()
    );
    Ok(Keys {
        secret,
        public,
        public_path,
    })
}

/// Scores of one model form on one data set.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Score {
    /// Accuracy.
    pub accuracy: f64,
    /// Macro-averaged F1.
    pub macro_f1: f64,
    /// Examples.
    pub n: u64,
}

/// One row of the fidelity table.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct FormRow {
    /// `fp32 ONNX (tract)`, `int8 QDQ ONNX (tract)`, `int8 image (edgeloop runtime)`.
    pub form: String,
    /// Lab test set.
    pub lab: Score,
    /// Held-out field set.
    pub field: Score,
}

/// One deployed model version.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Deployment {
    /// Model version (in the image header and every telemetry record).
    pub version: u32,
    /// fp32 ONNX, relative to the run folder.
    pub fp32_onnx: String,
    /// int8 QDQ ONNX.
    pub int8_onnx: String,
    /// Signed image.
    pub image: String,
    /// Image bytes (signed).
    pub image_bytes: usize,
    /// Planned arena bytes.
    pub arena_bytes: usize,
    /// Exact lower bound of the arena.
    pub arena_lower_bound: usize,
    /// Multiply-accumulates per inference.
    pub macs: u64,
    /// Compile report (text).
    pub compile_report: String,
    /// fp32 (candle) / fp32 ONNX / int8 ONNX / image scores.
    pub forms: Vec<FormRow>,
    /// The same scores as the eval crate's side-by-side table, with deltas against fp32 (candle).
    pub comparison: ComparisonTable,
    /// The eval crate's report on the int8 image (`eval/report.html`: confusion matrix, per-class
    /// and per-set metrics, calibration, the side-by-side table).
    pub eval_report: String,
    /// Top-1 agreement of the image with the int8 ONNX model (ONNX Runtime when installed,
    /// else tract), lab test set.
    pub image_vs_int8_onnx_top1: f64,
    /// Mean invoke time of the image on this host, microseconds.
    pub invoke_us: f64,
    /// Class names.
    pub labels: Vec<String>,
    /// Fixed input length.
    pub max_len: usize,
}

/// Encodes labelled records into fixed-length ids and class indices.
pub fn encode_records(
    tok: &Tokenizer,
    records: &[Record],
    labels: &[String],
    max_len: usize,
) -> anyhow::Result<(Vec<Vec<i32>>, Vec<usize>)> {
    let mut xs = Vec::with_capacity(records.len());
    let mut ys = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        let label = r
            .label
            .as_deref()
            .with_context(|| format!("record {} has no label", i + 1))?;
        let y = labels
            .iter()
            .position(|l| l == label)
            .with_context(|| format!("record {}: label `{label}` unknown to the model", i + 1))?;
        xs.push(device::encode(tok, &r.text, max_len)?);
        ys.push(y);
    }
    Ok((xs, ys))
}

fn sample(row: &[i32]) -> anyhow::Result<Sample> {
    let mut s = HashMap::new();
    s.insert(
        "input_ids".to_string(),
        Tensor::i64(
            vec![1, row.len()],
            row.iter().map(|&v| i64::from(v)).collect(),
        )?,
    );
    Ok(s)
}

/// The top-1 class of a run's float `logits` output.
fn top1(out: &HashMap<String, Tensor>) -> anyhow::Result<usize> {
    let logits = out
        .get("logits")
        .and_then(|t| t.as_f32())
        .context("the model has no float `logits` output")?;
    let l: Vec<f64> = logits.iter().map(|&v| f64::from(v)).collect();
    Ok(device::argmax(&l))
}

/// Top-1 classes of an ONNX model run in ONNX Runtime (graph optimization Level1).
pub fn ort_predict(bytes: &[u8], rows: &[Vec<i32>]) -> anyhow::Result<Vec<usize>> {
    let mut m = OrtModel::new(bytes)?;
    rows.iter().map(|r| top1(&m.run(&sample(r)?)?)).collect()
}

/// Top-1 classes of an ONNX model run in tract.
pub fn onnx_predict(model: &OnnxModel, rows: &[Vec<i32>]) -> anyhow::Result<Vec<usize>> {
    let inputs = model.inputs(&HashMap::new())?;
    let tap = Tap::optimized(model, &inputs)?;
    rows.iter().map(|r| top1(&tap.run(&sample(r)?)?)).collect()
}

/// Accuracy and macro F1.
pub fn score(labels: &[String], y: &[usize], pred: &[usize]) -> anyhow::Result<Score> {
    let s = ClassificationSummary::compute(labels, y, pred, None, &[], ZeroDivision::Zero)?;
    Ok(Score {
        accuracy: s.accuracy,
        macro_f1: s.macro_avg.f1,
        n: s.n,
    })
}

/// Quantizes, compiles, signs and scores `classifier` as model version `version`.
pub fn deploy(
    ctx: &Ctx,
    data: &Data,
    classifier: &Classifier,
    keys: &Keys,
    version: u32,
) -> anyhow::Result<Deployment> {
    let dir = ctx.dir(&format!("deploy/v{version}"))?;
    let tok = &data.tokenizer;
    let labels = &classifier.labels;
    let max_len = classifier.max_len;
    let fp32_bytes = std::fs::read(&classifier.onnx)
        .with_context(|| format!("reading {}", classifier.onnx.display()))?;
    let fp32 = OnnxModel::from_bytes(&fp32_bytes)?;
    let fp32_path = dir.join("model-fp32.onnx");
    std::fs::write(&fp32_path, &fp32_bytes)?;

    // Quantize with calibration inputs drawn from the lab training split.
    let train = jobs::read_texts(&data.train)?;
    let mut calib = Dataset::default();
    for r in train.iter().take(ctx.sizes.calibration) {
        calib
            .samples
            .push(sample(&device::encode(tok, &r.text, max_len)?)?);
    }
    let cfg = QuantizeConfig {
        method: Method::Percentile(99.99),
        progress: false,
        ..QuantizeConfig::default()
    };
    let q = quantize(&fp32, &calib, &cfg).context("quantizing the classifier")?;
    let int8_path = dir.join("model-int8.onnx");
    std::fs::write(&int8_path, q.model.to_bytes())?;

    // Compile with the lab validation split as reference inputs (the image stores the
    // histograms of their token ids and predicted classes: the devices' drift reference), sign.
    let mut reference = Vec::new();
    for r in jobs::read_texts(&data.val)? {
        reference.push(host_sample(&sample(&device::encode(
            tok, &r.text, max_len,
        )?)?));
    }
    let compiled = compile::compile(
        &q.model.proto,
        &CompileOptions {
            name: Some("intent-classifier".into()),
            model_version: version,
            reference,
            ..CompileOptions::default()
        },
    )
    .context("compiling the int8 model into an image")?;
    let signed = sign::sign_image(compiled.bytes(), &keys.secret)?;
    let image_path = dir.join("intent.edli");
    std::fs::write(&image_path, &signed)?;
    let report_text = compiled.report.to_string();
    std::fs::write(dir.join("compile-report.txt"), &report_text)?;
    crate::say!(
        "v{version}: int8 ONNX {} bytes; signed image {} bytes, arena {} bytes (lower bound {}), {} MACs per inference",
        q.model.to_bytes().len(),
        signed.len(),
        compiled.report.arena_bytes,
        compiled.report.lower_bound,
        compiled.report.total_macs
    );

    // Score fp32 ONNX, int8 ONNX and the image side by side.
    let lab_test = jobs::read_texts(&data.test)?;
    let field = jobs::read_texts(&data.field_holdout)?;
    let (lab_x, lab_y) = encode_records(tok, &lab_test, labels, max_len)?;
    let (field_x, field_y) = encode_records(tok, &field, labels, max_len)?;
    let host = HostModel::load(&signed, &keys.public.0)?;
    let mut forms = Vec::new();
    let mut int8_lab = Vec::new();
    let mut image_lab = Vec::new();
    let mut invoke = Vec::new();
    // ONNX Runtime is the int8 reference when it is installed (ORT_DYLIB_PATH, as the test
    // script sets); tract otherwise.
    let int8_bytes = q.model.to_bytes();
    let ort = std::env::var_os("ORT_DYLIB_PATH").is_some();
    let int8_form = if ort {
        "int8 QDQ ONNX (ONNX Runtime)"
    } else {
        "int8 QDQ ONNX (tract)"
    };
    // The fine-tuned fp32 model itself (candle), the reference row of the side-by-side table.
    let candle = jobs::load_classifier(&classifier.model_dir, &jobs::device("cpu")?)
        .context("loading the fp32 classifier")?;
    let mut form_names = vec!["fp32 (candle)", "fp32 ONNX (tract)", int8_form];
    if ort {
        form_names.push("int8 QDQ ONNX (tract)");
    }
    form_names.push("int8 image (edgeloop runtime)");
    for form in form_names {
        let mut run = |xs: &[Vec<i32>]| -> anyhow::Result<Vec<usize>> {
            match form {
                "fp32 (candle)" => {
                    let rows: Vec<Vec<u32>> = xs
                        .iter()
                        .map(|r| r.iter().map(|&v| v as u32).collect())
                        .collect();
                    Ok(candle
                        .task
                        .predict(&rows)?
                        .into_iter()
                        .map(|c| c as usize)
                        .collect())
                }
                "fp32 ONNX (tract)" => onnx_predict(&fp32, xs),
                "int8 QDQ ONNX (ONNX Runtime)" => ort_predict(&int8_bytes, xs),
                "int8 QDQ ONNX (tract)" => onnx_predict(&q.model, xs),
                _ => {
                    let p = host.predict(xs)?;
                    invoke.extend(p.iter().map(|p| p.micros));
                    Ok(p.iter().map(|p| p.class).collect())
                }
            }
        };
        let lp = run(&lab_x)?;
        let fp = run(&field_x)?;
        match form {
            f if f == int8_form => int8_lab = lp.clone(),
            "int8 image (edgeloop runtime)" => image_lab = lp.clone(),
            _ => {}
        }
        let row = FormRow {
            form: form.to_string(),
            lab: score(labels, &lab_y, &lp)?,
            field: score(labels, &field_y, &fp)?,
        };
        crate::say!(
            "  {:<32} lab accuracy {:.1}% (macro F1 {:.3}) | field accuracy {:.1}% (macro F1 {:.3})",
            row.form,
            100.0 * row.lab.accuracy,
            row.lab.macro_f1,
            100.0 * row.field.accuracy,
            row.field.macro_f1
        );
        forms.push(row);
    }
    let agree = int8_lab
        .iter()
        .zip(&image_lab)
        .filter(|(a, b)| a == b)
        .count() as f64
        / int8_lab.len().max(1) as f64;
    let invoke_us = invoke.iter().sum::<f64>() / invoke.len().max(1) as f64;
    crate::say!(
        "  image vs int8 ONNX top-1 agreement {:.2}%; invoke {:.0} µs on this host",
        100.0 * agree,
        invoke_us
    );
    let comparison = comparison_table(&forms)?;
    std::fs::write(dir.join("backends.md"), comparison.to_markdown())?;
    let eval_report = eval_report(
        &dir,
        version,
        labels,
        &host,
        [
            (&lab_x, &lab_y, "lab test"),
            (&field_x, &field_y, "field hold-out"),
        ],
        &comparison,
    )?;
    let d = Deployment {
        version,
        fp32_onnx: relative(&ctx.out, &fp32_path),
        int8_onnx: relative(&ctx.out, &int8_path),
        image: relative(&ctx.out, &image_path),
        image_bytes: signed.len(),
        arena_bytes: compiled.report.arena_bytes,
        arena_lower_bound: compiled.report.lower_bound,
        macs: compiled.report.total_macs,
        compile_report: report_text,
        forms,
        comparison,
        eval_report: relative(&ctx.out, &eval_report),
        image_vs_int8_onnx_top1: agree,
        invoke_us,
        labels: labels.clone(),
        max_len,
    };
    write_json(&dir.join("deployment.json"), &d)?;
    Ok(d)
}

/// One evaluation set: token-id rows, labels, the set's name (its slice in the report).
type EvalSet<'a> = (&'a [Vec<i32>], &'a [usize], &'a str);

/// The eval crate's report on the int8 image over the given sets (each a slice), written to
/// `dir/eval/`; returns the HTML page's path.
fn eval_report(
    dir: &Path,
    version: u32,
    labels: &[String],
    host: &HostModel,
    sets: [EvalSet<'_>; 2],
    comparison: &ComparisonTable,
) -> anyhow::Result<PathBuf> {
    let (mut y_true, mut y_pred, mut probs, mut groups) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (xs, ys, name) in sets {
        for (p, &y) in host.predict(xs)?.into_iter().zip(ys) {
            y_true.push(y);
            y_pred.push(p.class);
            probs.push(p.probs);
            groups.push(name.to_string());
        }
    }
    let mut r = EvaluationReport::new(
        format!("intent classifier v{version}: the int8 image"),
        "int8 image (edgeloop runtime)",
        "lab test + field hold-out",
    );
    r.classification = Some(ClassificationSummary::compute(
        labels,
        &y_true,
        &y_pred,
        Some(&probs),
        &[1, 3],
        ZeroDivision::Zero,
    )?);
    r.calibration = Some(calibration_from_probs(&y_true, &probs, 10)?);
    r.slices = per_slice(&y_true, &y_pred, &groups, labels.len())?;
    r.comparison = Some(comparison.clone());
    let written = r
        .write_all(dir.join("eval"))
        .context("writing the evaluation report")?;
    Ok(written.html)
}

/// The side-by-side table of `forms` (first row = reference).
fn comparison_table(forms: &[FormRow]) -> anyhow::Result<ComparisonTable> {
    let col = |name: &str| MetricColumn {
        name: name.to_string(),
        higher_is_better: true,
    };
    let mut t = ComparisonTable::new(vec![
        col("lab accuracy"),
        col("lab macro F1"),
        col("field accuracy"),
        col("field macro F1"),
    ]);
    for f in forms {
        t.add_row(
            f.form.clone(),
            vec![
                Some(f.lab.accuracy),
                Some(f.lab.macro_f1),
                Some(f.field.accuracy),
                Some(f.field.macro_f1),
            ],
        )?;
    }
    Ok(t)
}

/// Reads a deployment's signed image back.
pub fn image_bytes(ctx: &Ctx, d: &Deployment) -> anyhow::Result<Vec<u8>> {
    let p: &Path = &ctx.out.join(&d.image);
    std::fs::read(p).with_context(|| format!("reading {}", p.display()))
}
