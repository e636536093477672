//! `edgeloop compile`: ONNX (int8 QDQ or fp32) → edgeloop model image, with an optional report.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Context;
use edgeloop_quantize::compile::reference::host_sample;
use edgeloop_quantize::compile::{compile_file, CompileOptions};
use edgeloop_quantize::{Dataset, OnnxModel};

/// Arguments of `edgeloop compile`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "QDQ patterns (DequantizeLinear → op → QuantizeLinear) become int8 ops with \
precomputed requantization constants; other nodes run in f32. Unsupported nodes are all listed at once.\n\
The report (--report) gives flash bytes by section, the planned arena vs its exact lower bound, MACs per \
op and in total, and the ops used (so firmware links only those kernels).\n\nExamples:\n  \
edgeloop compile model-int8.onnx --out model.edli --report\n  \
edgeloop compile model-int8.onnx --out model.edli --sign keys/edgeloop.key --reference calib/ --model-version 2 --json"
)]
pub struct Args {
    /// The ONNX model (QDQ int8, e.g. from `edgeloop quantize` or onnxruntime's quantize_static, or fp32).
    pub model: PathBuf,
    /// Where to write the model image.
    #[arg(long)]
    pub out: PathBuf,
    /// Print the image report.
    #[arg(long)]
    pub report: bool,
    /// Model name stored in the image (≤ 24 ASCII bytes; default: the ONNX graph name).
    #[arg(long)]
    pub name: Option<String>,
    /// Model version stored in the image.
    #[arg(long, default_value_t = 1)]
    pub model_version: u32,
    /// Static shape for an input with symbolic dims: NAME=D0,D1,... (repeatable).
    #[arg(long = "input-shape", value_name = "NAME=DIMS")]
    pub input_shape: Vec<String>,
    /// Use the runtime's integer-only LayerNorm for quantized LayerNormalization (default: f32
    /// between Dequantize and Quantize, which agrees with ONNX Runtime).
    #[arg(long)]
    pub int8_layer_norm: bool,
    /// Pre-pack the int8 FullyConnected weights for x86-64 hosts (the layout of the runtime's
    /// AVX-512 VNNI kernel; FullyConnected version 2, image format 1.2): same outputs, no
    /// packing during `invoke`. Other CPUs run such ops through a slow reference loop: leave it
    /// off for microcontroller images.
    #[arg(long)]
    pub prepack: bool,
    /// Keep each attention-score chain (Dequantize, Mul, Add of a mask, Softmax, Quantize) and
    /// each Dequantize, LayerNorm, Quantize as separate ops instead of fusing them into one int8
    /// Softmax or LayerNorm (version 2, image format 1.3), for runtimes older than format 1.3.
    /// The fused ops give the same bytes with a smaller arena.
    #[arg(long)]
    pub no_fuse: bool,
    /// Sign the image with this Ed25519 secret key file (from `edgeloop keygen`): sets the
    /// header's signed flag and appends the 80-byte signature trailer.
    #[arg(long, value_name = "KEY")]
    pub sign: Option<PathBuf>,
    /// Reference inputs (a folder of `.npy` / `.npz` files, as for `edgeloop quantize --calib`):
    /// the image runs on them and stores the histograms of its input values and predicted
    /// classes, against which devices check drift (statistics tags 1 and 2).
    #[arg(long, value_name = "DIR")]
    pub reference: Option<PathBuf>,
}

/// Parses `NAME=D0,D1,...` (`--input-shape`).
pub fn parse_shape(s: &str) -> anyhow::Result<(String, Vec<usize>)> {
    let (name, dims) = s
        .split_once('=')
        .with_context(|| format!("--input-shape '{s}': expected NAME=D0,D1,..."))?;
    let dims = dims
        .split(',')
        .map(|d| {
            d.trim()
                .parse::<usize>()
                .ok()
                .filter(|&v| v > 0)
                .with_context(|| format!("--input-shape '{s}': '{d}' is not a positive integer"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((name.to_string(), dims))
}

/// Runs `edgeloop compile`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let mut input_shapes = HashMap::new();
    for s in &args.input_shape {
        let (n, d) = parse_shape(s)?;
        input_shapes.insert(n, d);
    }
    let reference = match &args.reference {
        Some(dir) => {
            let model = OnnxModel::from_path(&args.model)
                .with_context(|| format!("loading {}", args.model.display()))?;
            let inputs = model.inputs(&input_shapes)?;
            let data = Dataset::load_dir(dir, &inputs)
                .with_context(|| format!("reading reference inputs from {}", dir.display()))?;
            data.samples.iter().map(host_sample).collect()
        }
        None => Vec::new(),
    };
    let opts = CompileOptions {
        name: args.name.clone(),
        model_version: args.model_version,
        input_shapes,
        int8_layer_norm: args.int8_layer_norm,
        prepack: args.prepack,
        unfused: args.no_fuse,
        reference,
    };
    let c = compile_file(&args.model, &opts)
        .with_context(|| format!("compiling {}", args.model.display()))?;
    let bytes = match &args.sign {
        Some(key) => {
            let secret = edgeloop_quantize::sign::read_secret_key(key)?;
            edgeloop_quantize::sign::sign_image(c.bytes(), &secret)
                .with_context(|| format!("signing with {}", key.display()))?
        }
        None => c.bytes().to_vec(),
    };
    std::fs::write(&args.out, &bytes).with_context(|| format!("writing {}", args.out.display()))?;
    if super::output::json() {
        println!("{}", c.report.to_json());
    } else if args.report {
        print!("{}", c.report);
    } else {
        crate::say!(
            "wrote {} ({} bytes{}, arena {} bytes, {} ops)",
            args.out.display(),
            bytes.len(),
            if args.sign.is_some() { ", signed" } else { "" },
            c.report.arena_bytes,
            c.report.ops.len()
        );
    }
    Ok(())
}
