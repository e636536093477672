//! `edgeloop quantize`: fp32 ONNX + calibration files → int8 QDQ ONNX (and a sensitivity report).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use anyhow::{bail, Context};
use edgeloop_quantize::{Dataset, Method, OnnxModel, QuantizeConfig, DEFAULT_OP_TYPES};

/// Arguments of `edgeloop quantize`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "The output is a standard QDQ int8 ONNX model that keeps the input's opset (17 to 22): \
weights symmetric int8 per channel, biases int32, activations asymmetric int8 per tensor.\n\
Calibration files: .npz with one array per model input (named after it), or .npy for single-input models; \
an array [k*B, ...] for an input [B, ...] gives k samples. Or a token file (the trainer's dataset format, \
from `edgeloop data tokenize`) for a token-id model [B, L]: B documents per sample, each cut or padded to L.\n\nExamples:\n  \
edgeloop quantize --model model-fp32.onnx --calib calib/ --out model-int8.onnx\n  \
edgeloop quantize --model classifier.onnx --calib train.tokens --pad-id 0 --out classifier-int8.onnx\n  \
edgeloop quantize --model model-fp32.onnx --calib calib/ --method entropy --smoothquant 0.5 --report sensitivity/ --out model-int8.onnx"
)]
pub struct Args {
    /// The fp32 ONNX model.
    #[arg(long)]
    pub model: PathBuf,
    /// Calibration data: a folder of .npy / .npz files, or a token file (`*.tokens`, the
    /// trainer's dataset format from `edgeloop data tokenize`) for a model whose only input is
    /// token ids [B, L] (documents cut or padded to L with --pad-id).
    #[arg(long)]
    pub calib: PathBuf,
    /// Padding id for token-file calibration (the tokenizer's [PAD]; 0 for trained tokenizers).
    #[arg(long, default_value_t = 0)]
    pub pad_id: u32,
    /// Calibration method: minmax, percentile, entropy or mse.
    #[arg(long, default_value = "minmax")]
    pub method: String,
    /// --method percentile: keep this percentage of the calibration values, cutting half the rest from each tail (as ONNX Runtime does).
    #[arg(long, default_value_t = 99.99)]
    pub percentile: f64,
    /// Where to write the QDQ model.
    #[arg(long)]
    pub out: PathBuf,
    /// One scale per weight tensor instead of per output channel.
    #[arg(long)]
    pub per_tensor: bool,
    /// Keep this node float (repeatable).
    #[arg(long = "exclude", value_name = "NODE")]
    pub exclude: Vec<String>,
    /// Op types to quantize, comma separated (default: a standard set, see --help).
    #[arg(long, value_delimiter = ',')]
    pub op_types: Vec<String>,
    /// SmoothQuant migration strength for MatMuls with constant weights (0..1, e.g. 0.5).
    #[arg(long)]
    pub smoothquant: Option<f32>,
    /// Static shape for an input with symbolic dims: NAME=D0,D1,... (repeatable).
    #[arg(long = "input-shape", value_name = "NAME=DIMS")]
    pub input_shape: Vec<String>,
    /// Write sensitivity.json and sensitivity.md (per-layer SQNR vs fp32) into this folder.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Calibration samples compared in the sensitivity report.
    #[arg(long, default_value_t = 32)]
    pub report_samples: usize,
}

fn parse_shape(s: &str) -> anyhow::Result<(String, Vec<usize>)> {
    let (name, dims) = s
        .split_once('=')
        .with_context(|| format!("--input-shape '{s}': expected NAME=D0,D1,..."))?;
    let dims = dims
        .split(',')
        .map(|d| d.trim().parse::<usize>())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| {
            format!("--input-shape '{s}': dimensions must be non-negative integers")
        })?;
    Ok((name.to_string(), dims))
}

/// Turns the arguments into the library's configuration (all validation happens here).
fn config(args: &Args) -> anyhow::Result<QuantizeConfig> {
    let input_shapes: HashMap<String, Vec<usize>> = args
        .input_shape
        .iter()
        .map(|s| parse_shape(s))
        .collect::<anyhow::Result<_>>()?;
    let op_types: HashSet<String> = if args.op_types.is_empty() {
        DEFAULT_OP_TYPES.iter().map(|s| s.to_string()).collect()
    } else {
        args.op_types.iter().map(|s| s.trim().to_string()).collect()
    };
    let cfg = QuantizeConfig {
        method: Method::parse(&args.method, args.percentile)?,
        per_channel: !args.per_tensor,
        op_types,
        exclude: args.exclude.iter().cloned().collect(),
        smoothquant_alpha: args.smoothquant,
        input_shapes,
        progress: super::output::progress(),
    };
    cfg.validate()?;
    Ok(cfg)
}

/// The calibration set at `path`: a token file (`*.tokens`), else a folder of .npy / .npz files.
fn load_calibration(
    path: &std::path::Path,
    inputs: &[edgeloop_quantize::InputSpec],
    pad: u32,
) -> anyhow::Result<Dataset> {
    if path.extension().and_then(|e| e.to_str()) != Some("tokens") {
        if path.is_file() {
            bail!(
                "{} is a file: --calib takes a folder of .npy / .npz files or a token file (*.tokens, from `edgeloop data tokenize`)",
                path.display()
            );
        }
        return Ok(Dataset::load_dir(path, inputs)?);
    }
    let tf = edgeloop_trainer::tokenizer::token_file::TokenFile::open(path)?;
    tf.verify()?;
    let docs: Vec<Vec<u32>> = (0..tf.num_docs()).filter_map(|d| tf.doc(d)).collect();
    let ds = Dataset::from_token_documents(&docs, inputs, pad, &path.display().to_string())?;
    let used = ds.samples.len() * inputs[0].shape[0];
    if used < docs.len() {
        crate::say!(
            "token file: {} of {} documents used ({} make no full batch)",
            used,
            docs.len(),
            docs.len() - used
        );
    }
    Ok(ds)
}

/// Runs `edgeloop quantize`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = config(&args)?;
    if args.out == args.model {
        bail!("--out must differ from --model");
    }
    let model = OnnxModel::from_path(&args.model)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let inputs = model.inputs(&cfg.input_shapes)?;
    let data = load_calibration(&args.calib, &inputs, args.pad_id)
        .with_context(|| format!("reading calibration data from {}", args.calib.display()))?;
    crate::say!(
        "calibrating {} with {} sample(s), method {}",
        args.model.display(),
        data.samples.len(),
        cfg.method.name()
    );
    let q = edgeloop_quantize::quantize(&model, &data, &cfg).context("quantizing")?;
    std::fs::write(&args.out, q.model.to_bytes())
        .with_context(|| format!("writing {}", args.out.display()))?;
    let total = q.plan.quantized.len();
    let nq = q.plan.quantized.iter().filter(|&&b| b).count();
    crate::say!(
        "wrote {} ({nq}/{total} nodes quantized, {} activation tensors, opset {})",
        args.out.display(),
        q.plan.activations.len(),
        q.model.opset("")
    );
    if q.smoothed_groups > 0 {
        crate::say!(
            "SmoothQuant: {} MatMul group(s) smoothed",
            q.smoothed_groups
        );
    }
    for (node, why) in &q.plan.kept_float {
        crate::say!("kept float: {node} ({why})");
    }
    let mut outputs = Vec::new();
    if let Some(dir) = &args.report {
        let rep = q
            .sensitivity(&data, args.report_samples, cfg.method.name())
            .context("sensitivity report")?;
        rep.write(dir)?;
        for o in &rep.outputs {
            let sq = o
                .sqnr_db
                .map(|v| format!("{v:.2} dB"))
                .unwrap_or("exact".into());
            crate::say!("output {}: SQNR {sq}, cosine {:.5}", o.tensor, o.cosine);
            outputs.push(serde_json::json!({
                "tensor": o.tensor, "sqnr_db": o.sqnr_db, "cosine": o.cosine,
            }));
        }
        crate::say!("report: {}", dir.join("sensitivity.md").display());
    }
    super::output::summary(&serde_json::json!({
        "out": args.out,
        "calibration_samples": data.samples.len(),
        "method": cfg.method.name(),
        "nodes_quantized": nq,
        "nodes": total,
        "activation_tensors": q.plan.activations.len(),
        "opset": q.model.opset(""),
        "smoothquant_groups": q.smoothed_groups,
        "kept_float": q.plan.kept_float.iter().map(|(n, w)| serde_json::json!({"node": n, "why": w})).collect::<Vec<_>>(),
        "report_outputs": outputs,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole command on the test MLP: model, calibration files, QDQ output, report.
    #[test]
    fn quantizes_a_model_end_to_end_with_a_report() {
        use edgeloop_quantize::{npy, testmodels};
        let dir =
            std::env::temp_dir().join(format!("edgeloop-cli-quantize-{}", std::process::id()));
        let calib = dir.join("calib");
        std::fs::create_dir_all(&calib).unwrap();
        let model = testmodels::mlp();
        std::fs::write(dir.join("mlp.onnx"), model.to_bytes()).unwrap();
        let inputs = model.inputs(&HashMap::new()).unwrap();
        for (i, s) in testmodels::samples(&inputs, 8, 1).iter().enumerate() {
            let t = &s["x"];
            std::fs::write(
                calib.join(format!("{i}.npy")),
                npy::write_npy_f32(&t.shape, t.as_f32().unwrap()),
            )
            .unwrap();
        }
        let args = Args {
            model: dir.join("mlp.onnx"),
            calib: calib.clone(),
            pad_id: 0,
            method: "percentile".into(),
            percentile: 99.9,
            out: dir.join("mlp.int8.onnx"),
            per_tensor: false,
            exclude: vec!["fc3".into()],
            op_types: vec![],
            smoothquant: None,
            input_shape: vec![],
            report: Some(dir.join("report")),
            report_samples: 4,
        };
        run(args).unwrap();
        let q = OnnxModel::from_path(&dir.join("mlp.int8.onnx")).unwrap();
        assert!(q.graph().node.iter().any(|n| n.op_type == "QuantizeLinear"));
        assert!(dir.join("report/sensitivity.md").is_file());
        let bad = Args {
            model: dir.join("mlp.onnx"),
            calib,
            pad_id: 0,
            method: "magic".into(),
            percentile: 99.99,
            out: dir.join("x.onnx"),
            per_tensor: false,
            exclude: vec![],
            op_types: vec![],
            smoothquant: None,
            input_shape: vec![],
            report: None,
            report_samples: 1,
        };
        assert!(format!("{:#}", run(bad).unwrap_err()).contains("magic"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn input_shapes_parse_and_bad_ones_are_rejected() {
        assert_eq!(
            parse_shape("x=1,3,32,32").unwrap(),
            ("x".into(), vec![1, 3, 32, 32])
        );
        assert!(parse_shape("x").is_err());
        assert!(parse_shape("x=1,-3").is_err());
    }
}
