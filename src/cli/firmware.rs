//! `edgeloop firmware-assets`: writes what the `classify` firmware example embeds — a model
//! image, test inputs, and the host runtime's output tensors for them (which the firmware must
//! reproduce bit for bit on the Cortex-M4).
//!
//! Until the trainer and the compiler produce the demo's intent classifier, the image is the
//! keyword-spotting-sized DS-CNN built in code with the image writer, calibrated on seeded random
//! inputs. `--image` takes any int8 model image instead (for example one from `edgeloop compile`).

use std::path::PathBuf;

use anyhow::Context;
use edgeloop_runtime::image::writer::AlignedBytes;
use edgeloop_runtime::models::{self, Rng};
use edgeloop_runtime::{Interpreter, Model};

/// Arguments of `edgeloop firmware-assets`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder to write `classify.img`, `classify.inputs` and `classify.expected` into.
    #[arg(long)]
    pub out: PathBuf,
    /// Number of test inputs.
    #[arg(long, default_value_t = 16)]
    pub count: usize,
    /// Seed of the inputs (and of the built-in model's weights).
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// An int8 model image to use instead of the built-in DS-CNN.
    #[arg(long)]
    pub image: Option<PathBuf>,
}

/// Writes the assets.
pub fn run(args: Args) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut rng = Rng::new(args.seed ^ 0x5EED);
    let bytes = match &args.image {
        Some(path) => std::fs::read(path)
            .with_context(|| format!("reading model image {}", path.display()))?,
        None => {
            let net = models::ds_cnn::ds_cnn(args.seed, true);
            let calib: Vec<Vec<f32>> = (0..32).map(|_| rng.vec(net.input_len(), 1.0)).collect();
            net.build_i8(&calib)
                .context("building the DS-CNN image")?
                .0
                .bytes
        }
    };
    let image = AlignedBytes::new(&bytes);
    let model = Model::parse(image.as_slice())
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("parsing the model image")?;
    let mut arena = AlignedBytes::zeroed(model.arena_bytes());
    let mut it =
        Interpreter::new(&model, arena.as_mut_slice()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let rt = |e: edgeloop_runtime::Error| anyhow::anyhow!("{e}");
    let in_len = it
        .input_i8(0)
        .map_err(rt)
        .context("the image's first input must be int8")?
        .len();
    let (mut inputs, mut expected) = (Vec::new(), Vec::new());
    for _ in 0..args.count {
        let x: Vec<i8> = (0..in_len)
            .map(|_| (rng.next_u64() >> 56) as u8 as i8)
            .collect();
        it.input_i8(0).map_err(rt)?.copy_from_slice(&x);
        it.invoke().map_err(rt)?;
        inputs.extend(x.iter().map(|&v| v as u8));
        expected.extend(it.output_i8(0).map_err(rt)?.iter().map(|&v| v as u8));
    }
    for (name, data) in [
        ("classify.img", &bytes),
        ("classify.inputs", &inputs),
        ("classify.expected", &expected),
    ] {
        let path = args.out.join(name);
        std::fs::write(&path, data).with_context(|| format!("writing {}", path.display()))?;
    }
    println!(
        "wrote {}: model '{}' ({} image bytes, arena {} bytes), {} inputs",
        args.out.display(),
        model.name(),
        bytes.len(),
        model.arena_bytes(),
        args.count
    );
    Ok(())
}
