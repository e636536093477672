//! `edgeloop demo`: the whole loop on the embedded default data.
//!
//! Today it runs the stage that exists end to end — the runtime: it builds the example models
//! (an MLP and a keyword-spotting DS-CNN) in code with the image writer, in f32 and calibrated
//! int8, writes the images under `--out`, parses them back, runs them, and compares the int8
//! outputs with an f64 computation of the same network. It says which stages are not there yet.

use std::path::PathBuf;

use anyhow::Context;
use edgeloop_runtime::models::{self, Rng, Sequential};

/// Arguments of `edgeloop demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder for every artifact of the run.
    #[arg(long, default_value = "runs/demo")]
    pub out: PathBuf,
    /// Tiny sizes, seconds instead of minutes (used by the tests).
    #[arg(long)]
    pub fast: bool,
}

fn demo_model(seq: &Sequential, out: &std::path::Path, repeat: usize) -> anyhow::Result<()> {
    println!("\n== {} ({} parameters)", seq.name, seq.num_params());
    let mut rng = Rng::new(42);
    let calibration: Vec<Vec<f32>> = (0..32).map(|_| rng.vec(seq.input_len(), 1.0)).collect();
    let f32_image = seq.build_f32().context("writing the f32 image")?;
    let (i8_image, q) = seq
        .build_i8(&calibration)
        .context("writing the int8 image")?;
    for (kind, built) in [("f32", &f32_image), ("int8", &i8_image)] {
        let st = &built.stats;
        let raw = st.weight_bytes + st.bias_bytes;
        let path = out.join(format!("{}-{kind}.edli", seq.name));
        std::fs::write(&path, &built.bytes)
            .with_context(|| format!("writing {}", path.display()))?;
        println!(
            "{kind}: {} -> {} bytes (weights+biases {} bytes: {:.3}x; with requantization constants {:.3}x); \
             arena {} bytes, lower bound {} ({})",
            path.display(),
            st.image_bytes,
            raw,
            st.image_bytes as f64 / raw as f64,
            st.image_bytes as f64 / (raw + st.other_constant_bytes) as f64,
            st.plan.arena_bytes,
            st.plan.lower_bound,
            st.plan.method
        );
    }
    let x = rng.vec(seq.input_len(), 1.0);
    let want = seq.forward_f64(&x).pop().unwrap_or_default();
    println!("-- f32 image on the runtime");
    let xs: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let f = super::run::run_image(&f32_image.bytes, &[Some(xs.clone())], false, repeat)?;
    println!(
        "-- int8 image on the runtime (input quantized with scale {:.5}, zero point {})",
        q.input.0, q.input.1
    );
    let i = super::run::run_image(&i8_image.bytes, &[Some(xs)], false, repeat)?;
    let max_diff = |got: &[f64]| {
        got.iter()
            .zip(&want)
            .map(|(g, w)| (g - w).abs())
            .fold(0.0, f64::max)
    };
    println!(
        "f64 reference: f32 max |diff| {:.2e}; int8 max |diff| {:.4} ({:.2} output LSB)",
        max_diff(&f.outputs[0]),
        max_diff(&i.outputs[0]),
        max_diff(&i.outputs[0]) / q.output.0 as f64
    );
    println!(
        "invoke (min): f32 {:.1} µs, int8 {:.1} µs",
        f.invoke_us.1, i.invoke_us.1
    );
    Ok(())
}

/// Runs the demo.
pub fn run(args: Args) -> anyhow::Result<()> {
    println!(
        "edgeloop demo (out: {}, fast: {})",
        args.out.display(),
        args.fast
    );
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let repeat = if args.fast { 3 } else { 50 };
    println!(
        "stage runtime: example models built in code, written as images, run on the host runtime"
    );
    demo_model(&models::mlp::mlp(1, true), &args.out, repeat)?;
    demo_model(&models::ds_cnn::ds_cnn(1, true), &args.out, repeat)?;
    println!(
        "\nNot wired into the demo yet: data selection, training, evaluation, quantization of a trained \
         ONNX model, compilation from ONNX, firmware in QEMU, telemetry and retraining. The models above \
         have random weights; they show the image format, the arena planner and the runtime, not accuracy."
    );
    Ok(())
}
