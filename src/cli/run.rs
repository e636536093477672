//! `edgeloop run`: parse a model image, run it on the host runtime, print outputs and timing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use edgeloop_quantize::OnnxModel;
use edgeloop_runtime::image::writer::AlignedBytes;
use edgeloop_runtime::image::{DType, TensorInfo};
use edgeloop_runtime::{Interpreter, Model};

/// Arguments of `edgeloop run`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  edgeloop run --image runs/demo/deploy/v1/intent.edli --input @ids.txt\n  \
edgeloop run --model runs/demo/deploy/v1/model-int8.onnx --backend all --input @ids.txt\n  \
edgeloop run --model model.onnx --backend ort --input-shape input_ids=1,24 --repeat 100 --json"
)]
pub struct Args {
    /// Model image to run on the host runtime.
    #[arg(long, required_unless_present = "model", conflicts_with = "model")]
    pub image: Option<PathBuf>,
    /// ONNX model to run through `--backend` (our runtime compiles it in memory).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Backend(s) for `--model`: runtime, ort (ONNX Runtime, from ORT_DYLIB_PATH), tract, or
    /// all three side by side with each one's largest difference from the runtime (default:
    /// runtime).
    #[arg(long, value_enum, requires = "model")]
    pub backend: Option<super::backends::Backend>,
    /// Static shape for an ONNX input with symbolic dims: NAME=D0,D1,... (repeatable).
    #[arg(long = "input-shape", value_name = "NAME=DIMS", requires = "model")]
    pub input_shape: Vec<String>,
    /// Values of one graph input (repeat the flag for several inputs, in order): numbers
    /// separated by commas or whitespace, or `@FILE` to read them from a file. Real values are
    /// quantized with the input's scale for int8 inputs (see `--raw`). Without `--input`, inputs
    /// are filled with a fixed pseudo-random pattern.
    #[arg(long)]
    pub input: Vec<String>,
    /// Take int8 input values as raw codes instead of real values.
    #[arg(long)]
    pub raw: bool,
    /// Number of timed invocations.
    #[arg(long, default_value_t = 10)]
    pub repeat: usize,
    /// Threads for the image's largest ops (FullyConnected, int8 BatchMatMul): this one and
    /// N - 1 workers (`Interpreter::set_threads`; `--image` only); the outputs are the same for
    /// every N.
    #[arg(long, default_value_t = 1, requires = "image", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
}

/// What one invocation of a model produced.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// Each output as real values (dequantized for int8).
    pub outputs: Vec<Vec<f64>>,
    /// Mean and minimum invoke time, in microseconds.
    pub invoke_us: (f64, f64),
}

fn parse_values(spec: &str) -> anyhow::Result<Vec<f64>> {
    let text = match spec.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("reading input file {path}"))?
        }
        None => spec.to_string(),
    };
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<f64>()
                .with_context(|| format!("not a number: {s:?}"))
        })
        .collect()
}

/// The first 16 values, for a status line.
fn show(v: &[f64]) -> String {
    let s: Vec<String> = v.iter().take(16).map(|x| format!("{x:.4}")).collect();
    format!(
        "[{}{}]",
        s.join(", "),
        if v.len() > 16 { ", …" } else { "" }
    )
}

fn describe(t: &TensorInfo) -> String {
    let q = if t.scale > 0.0 {
        format!(", scale {:.6}, zero point {}", t.scale, t.zero_point)
    } else {
        String::new()
    };
    format!("{:?} {:?}{q}", t.dtype, t.shape.dims())
}

/// Writes `values` (real or raw) into input `k`.
fn write_input(
    it: &mut Interpreter<'_, '_>,
    k: usize,
    values: &[f64],
    raw: bool,
) -> anyhow::Result<()> {
    let info = it.input_info(k)?;
    if values.len() != info.num_elements() {
        bail!(
            "input {k} needs {} values ({}), got {}",
            info.num_elements(),
            describe(&info),
            values.len()
        );
    }
    check_values(k, &info, values, raw)?;
    match info.dtype {
        DType::F32 => it
            .input_f32(k)?
            .iter_mut()
            .zip(values)
            .for_each(|(d, &v)| *d = v as f32),
        DType::I8 => {
            let (s, z) = (info.scale as f64, info.zero_point as f64);
            it.input_i8(k)?.iter_mut().zip(values).for_each(|(d, &v)| {
                let q = if raw || s == 0.0 {
                    v
                } else {
                    (v / s).round() + z
                };
                *d = q.clamp(-128.0, 127.0) as i8;
            })
        }
        DType::I32 => it
            .input_i32(k)?
            .iter_mut()
            .zip(values)
            .for_each(|(d, &v)| *d = v as i32),
        other => bail!("input {k}: element type {other:?} is not supported by `edgeloop run`"),
    }
    Ok(())
}

/// Refuses values that would not reach the model as typed: NaN or infinite values for any
/// input, and for integer inputs (int32 ids, or int8 codes under `--raw`) values that are not
/// whole numbers or do not fit the type. Real values for int8 inputs are quantized with the
/// input's scale and saturate, as quantization does.
fn check_values(k: usize, info: &TensorInfo, values: &[f64], raw: bool) -> anyhow::Result<()> {
    let (lo, hi, what) = match info.dtype {
        DType::I32 => (i32::MIN as f64, i32::MAX as f64, "int32 (token ids)"),
        DType::I8 if raw || info.scale == 0.0 => (-128.0, 127.0, "raw int8 codes"),
        _ => (f64::NEG_INFINITY, f64::INFINITY, ""),
    };
    for (i, &v) in values.iter().enumerate() {
        if !v.is_finite() {
            bail!("input {k}, value #{i}: {v} is not a finite number; give finite values");
        }
        if !what.is_empty() && (v.fract() != 0.0 || v < lo || v > hi) {
            bail!(
                "input {k}, value #{i}: {v} is not a valid {what} value: give whole numbers in \
                 [{lo}, {hi}]{}",
                if info.dtype == DType::I8 {
                    " (or drop --raw to give real values, quantized with the input's scale)"
                } else {
                    ""
                }
            );
        }
    }
    Ok(())
}

fn read_output(it: &Interpreter<'_, '_>, k: usize) -> anyhow::Result<(Vec<f64>, Option<Vec<i32>>)> {
    let info = it.output_info(k)?;
    Ok(match info.dtype {
        DType::F32 => (it.output_f32(k)?.iter().map(|&v| v as f64).collect(), None),
        DType::I8 => {
            let q = it.output_i8(k)?;
            let real = q
                .iter()
                .map(|&v| (v as i32 - info.zero_point) as f64 * info.scale as f64)
                .collect();
            (real, Some(q.iter().map(|&v| v as i32).collect()))
        }
        DType::I32 => {
            let v = it.output_i32(k)?.to_vec();
            (v.iter().map(|&x| x as f64).collect(), Some(v))
        }
        other => bail!("output {k}: element type {other:?} is not supported by `edgeloop run`"),
    })
}

/// [`run_image_threads`] on one thread (the tests' shorthand).
#[cfg(test)]
pub fn run_image(
    image: &[u8],
    inputs: &[Option<Vec<f64>>],
    raw: bool,
    repeat: usize,
) -> anyhow::Result<RunReport> {
    run_image_threads(image, inputs, raw, repeat, 1)
}

/// Runs `image` with `inputs` (one vector per graph input, `None` for a fixed pattern) on
/// `threads` threads for the largest ops (`Interpreter::set_threads`), printing what it does;
/// returns the outputs and timing.
pub fn run_image_threads(
    image: &[u8],
    inputs: &[Option<Vec<f64>>],
    raw: bool,
    repeat: usize,
    threads: usize,
) -> anyhow::Result<RunReport> {
    let aligned = AlignedBytes::new(image);
    let model = Model::parse(aligned.as_slice()).context("parsing the model image")?;
    let (major, minor) = model.format_version();
    crate::say!(
        "model {:?} v{} (format {major}.{minor}): {} bytes, {} ops, {} tensors, constants {} bytes, arena {} bytes",
        model.name(),
        model.model_version(),
        model.image_len(),
        model.num_ops(),
        model.num_tensors(),
        model.constants_len(),
        model.arena_bytes()
    );
    let mut arena = AlignedBytes::zeroed(model.arena_bytes());
    let mut it = Interpreter::new(&model, arena.as_mut_slice())?;
    it.set_threads(threads)
        .with_context(|| format!("starting {threads} threads"))?;
    crate::say!(
        "interpreter: {} bytes (size_of), arena {} bytes, {} thread(s)",
        std::mem::size_of::<Interpreter<'_, '_>>(),
        model.arena_bytes(),
        it.threads()
    );
    let mut values = Vec::new();
    for k in 0..model.num_inputs() {
        let info = it.input_info(k)?;
        crate::say!("input {k}: {}", describe(&info));
        let v = match inputs.get(k).cloned().flatten() {
            Some(v) => v,
            // Small token ids for integer inputs, a spread of real values in [-1, 1] otherwise.
            None => (0..info.num_elements())
                .map(|i| match info.dtype {
                    DType::I32 => ((i * 7 + 3) % 11) as f64,
                    _ => ((i * 7919 % 201) as f64 - 100.0) / 100.0,
                })
                .collect(),
        };
        values.push(v);
    }
    if inputs.len() > model.num_inputs() {
        bail!(
            "{} inputs given, the model has {}",
            inputs.len(),
            model.num_inputs()
        );
    }
    let mut times = Vec::with_capacity(repeat.max(1));
    for _ in 0..repeat.max(1) {
        for (k, v) in values.iter().enumerate() {
            write_input(&mut it, k, v, raw)?;
        }
        let t = Instant::now();
        it.invoke().context("invoke")?;
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    let min = times.iter().cloned().fold(f64::INFINITY, f64::min);
    let mut outputs = Vec::new();
    for k in 0..model.num_outputs() {
        let info = it.output_info(k)?;
        let (real, codes) = read_output(&it, k)?;
        crate::say!("output {k}: {}", describe(&info));
        crate::say!("  values: {}", show(&real));
        if let Some(c) = codes {
            let s: Vec<String> = c.iter().take(16).map(|x| x.to_string()).collect();
            crate::say!(
                "  codes:  [{}{}]",
                s.join(", "),
                if c.len() > 16 { ", …" } else { "" }
            );
        }
        outputs.push(real);
    }
    crate::say!(
        "invoke: mean {mean:.1} µs, min {min:.1} µs over {} runs",
        times.len()
    );
    Ok(RunReport {
        outputs,
        invoke_us: (mean, min),
    })
}

/// Runs `edgeloop run`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let inputs = args
        .input
        .iter()
        .map(|s| parse_values(s).map(Some))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let Some(path) = &args.model {
        return run_model(path, &args, &inputs);
    }
    let Some(image) = &args.image else {
        bail!("give --image (a model image) or --model (an ONNX model)");
    };
    if args.backend.is_some() || !args.input_shape.is_empty() {
        bail!(
            "--backend and --input-shape apply to --model (an ONNX model); a model image \
             (--image) runs on the edgeloop runtime: drop them, or give the ONNX model with --model"
        );
    }
    let bytes = std::fs::read(image).with_context(|| format!("reading {}", image.display()))?;
    let r = run_image_threads(
        &bytes,
        &inputs,
        args.raw,
        args.repeat,
        args.threads as usize,
    )
    .with_context(|| format!("--image {}", image.display()))?;
    super::output::summary(&serde_json::json!({
        "outputs": r.outputs,
        "invoke_us_mean": r.invoke_us.0,
        "invoke_us_min": r.invoke_us.1,
    }))
}

/// `--model`: the ONNX model through each backend.
fn run_model(path: &Path, args: &Args, inputs: &[Option<Vec<f64>>]) -> anyhow::Result<()> {
    use super::backends::{self, Backend};
    if args.raw {
        bail!("--raw applies to int8 image inputs (--image), not to ONNX models");
    }
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let model = OnnxModel::from_bytes(&bytes)
        .with_context(|| format!("parsing {} as ONNX", path.display()))?;
    let mut shapes = HashMap::new();
    for s in &args.input_shape {
        let (n, d) = super::compile::parse_shape(s)?;
        shapes.insert(n, d);
    }
    let specs = model.inputs(&shapes)?;
    let sample = backends::sample(&specs, inputs)?;
    let which = match args.backend.unwrap_or(Backend::Runtime) {
        Backend::All => vec![Backend::Runtime, Backend::Ort, Backend::Tract],
        b => vec![b],
    };
    let runs = backends::run_all(&bytes, &model, &specs, &sample, &which, args.repeat)?;
    for r in &runs {
        crate::say!(
            "{:?}: mean {:.1} µs, min {:.1} µs over {} runs{}",
            r.backend,
            r.run_us_mean,
            r.run_us_min,
            args.repeat.max(1),
            r.max_abs_diff_vs_runtime
                .map(|d| format!("; largest difference from the runtime {d:.3e}"))
                .unwrap_or_default()
        );
        for (name, v) in &r.outputs {
            crate::say!("  {name}: {}", show(v));
        }
    }
    super::output::summary(&serde_json::json!({ "model": path, "runs": runs }))
}

#[cfg(test)]
mod tests {
    use edgeloop_runtime::models::{mlp::mlp, tiny_gpt::TinyGpt, Rng};

    use super::*;

    /// The int8 MLP (64 inputs, 10 outputs) and a random input in [-1, 1].
    fn mlp_image() -> (Vec<u8>, Vec<f64>) {
        let net = mlp(3, true);
        let mut rng = Rng::new(5);
        let calib: Vec<Vec<f32>> = (0..16).map(|_| rng.vec(net.input_len(), 1.0)).collect();
        let bytes = net.build_i8(&calib).expect("MLP image").0.bytes;
        let x = rng
            .vec(net.input_len(), 1.0)
            .iter()
            .map(|&v| v as f64)
            .collect();
        (bytes, x)
    }

    #[test]
    fn threads_give_the_same_outputs() {
        let (bytes, x) = mlp_image();
        let one = run_image(&bytes, &[Some(x.clone())], false, 2).expect("runs");
        for threads in [2, 3] {
            let r = run_image_threads(&bytes, &[Some(x.clone())], false, 2, threads).expect("runs");
            assert_eq!(r.outputs, one.outputs, "{threads} threads");
        }
    }

    #[test]
    fn image_outputs_equal_the_interpreters() {
        let (bytes, x) = mlp_image();
        let r = run_image(&bytes, &[Some(x.clone())], false, 3).expect("runs");
        // The same input quantized by hand and run directly on the interpreter.
        let aligned = AlignedBytes::new(&bytes);
        let model = Model::parse(aligned.as_slice()).unwrap();
        let mut arena = AlignedBytes::zeroed(model.arena_bytes());
        let mut it = Interpreter::new(&model, arena.as_mut_slice()).unwrap();
        let (qi, qo) = (it.input_info(0).unwrap(), it.output_info(0).unwrap());
        for (d, &v) in it.input_i8(0).unwrap().iter_mut().zip(&x) {
            *d = ((v / qi.scale as f64).round() + qi.zero_point as f64).clamp(-128.0, 127.0) as i8;
        }
        it.invoke().unwrap();
        let want: Vec<f64> = it
            .output_i8(0)
            .unwrap()
            .iter()
            .map(|&c| (c as i32 - qo.zero_point) as f64 * qo.scale as f64)
            .collect();
        assert_eq!(r.outputs, vec![want]);
        assert!(r.invoke_us.1 > 0.0 && r.invoke_us.1 <= r.invoke_us.0);
        // Raw codes: the same bytes as the quantized input give the same outputs.
        let codes: Vec<f64> = x
            .iter()
            .map(|&v| ((v / qi.scale as f64).round() + qi.zero_point as f64).clamp(-128.0, 127.0))
            .collect();
        let raw = run_image(&bytes, &[Some(codes)], true, 1).expect("raw runs");
        assert_eq!(raw.outputs, r.outputs);
    }

    #[test]
    fn inputs_that_would_not_reach_the_model_as_typed_are_refused() {
        let (bytes, x) = mlp_image();
        let err = |inputs: Vec<f64>, raw: bool| {
            run_image(&bytes, &[Some(inputs)], raw, 1)
                .map(|_| ())
                .expect_err("refused")
                .to_string()
        };
        let mut nan = x.clone();
        nan[7] = f64::NAN;
        assert!(err(nan, false).contains("value #7: NaN is not a finite number"));
        let mut inf = x.clone();
        inf[0] = f64::INFINITY;
        assert!(err(inf, false).contains("not a finite number"));
        let mut big = vec![0.0; x.len()];
        big[3] = 1e9;
        let e = err(big.clone(), true);
        assert!(
            e.contains("value #3") && e.contains("raw int8 codes"),
            "{e}"
        );
        assert!(e.contains("drop --raw"), "{e}");
        big[3] = 1.5;
        assert!(err(big, true).contains("not a valid raw int8 codes value"));
        assert!(err(x[..10].to_vec(), false).contains("needs 64 values"));
        // Real values saturate as quantization does: not an error.
        assert!(run_image(&bytes, &[Some(vec![1e9; x.len()])], false, 1).is_ok());
        // Too many inputs.
        let two = [Some(x.clone()), Some(x)];
        assert!(run_image(&bytes, &two, false, 1).is_err());
    }

    #[test]
    fn token_ids_must_be_whole_int32_numbers() {
        let gpt = TinyGpt::random(1);
        let bytes = gpt.image(1, None, false).expect("GPT image").0.bytes;
        let aligned = AlignedBytes::new(&bytes);
        let model = Model::parse(aligned.as_slice()).unwrap();
        let n = model.num_inputs();
        let ok: Vec<Option<Vec<f64>>> = (0..n).map(|_| Some(vec![1.0])).collect();
        run_image(&bytes, &ok, false, 1).expect("whole ids run");
        // Without --input, integer inputs get valid ids.
        run_image(&bytes, &[], false, 1).expect("the default pattern runs");
        for bad in [1.5, 3e9, -3e9] {
            let mut inputs = ok.clone();
            inputs[0] = Some(vec![bad]);
            let e = run_image(&bytes, &inputs, false, 1)
                .map(|_| ())
                .expect_err("refused")
                .to_string();
            assert!(e.contains("int32 (token ids)"), "{bad}: {e}");
        }
    }
}
