//! Writes the seed corpus of `parse_invoke`: the example models (MLP, DS-CNN; int8 and f32) and
//! a few small graphs, as valid images, under `corpus/parse_invoke/`. With `--smoke N`, also
//! runs the fuzzed property on N seeded single-byte mutations of each seed (with the CRC
//! recomputed so the mutations reach the structural checks) — a stable-toolchain smoke test.

use std::path::PathBuf;

use edgeloop_runtime::image::layers::Activation;
use edgeloop_runtime::image::writer::{fix_crc, ImageWriter};
use edgeloop_runtime::image::DType;
use edgeloop_runtime::models::{ds_cnn, mlp, Rng};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let smoke: usize = match args.iter().position(|a| a == "--smoke") {
        Some(i) => args.get(i + 1).ok_or("--smoke needs a count")?.parse()?,
        None => 0,
    };
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus/parse_invoke");
    std::fs::create_dir_all(&dir)?;
    let mut seeds: Vec<(String, Vec<u8>)> = Vec::new();
    let mut rng = Rng::new(9);
    for seq in [mlp::mlp(2, true), ds_cnn::ds_cnn(2, true)] {
        let calib: Vec<Vec<f32>> = (0..8).map(|_| rng.vec(seq.input_len(), 1.0)).collect();
        seeds.push((format!("{}-f32", seq.name), seq.build_f32()?.bytes));
        seeds.push((format!("{}-int8", seq.name), seq.build_i8(&calib)?.0.bytes));
    }
    // A small graph with every elementwise/edge op, so mutations reach each binding quickly.
    let mut w = ImageWriter::new("ops-mix", 1)?;
    let x = w.input(DType::F32, &[1, 2, 2, 4], None)?;
    let q = w.quantize(x, (0.02, 3))?;
    let r = w.relu(q, false)?;
    let p = w.pool2d(
        r,
        [2, 2],
        edgeloop_runtime::image::layers::Window::VALID,
        true,
    )?;
    let s = w.binary(p, p, true, Activation::None, Some((0.04, 0)))?;
    let m = w.binary(s, p, false, Activation::Relu, Some((0.05, -10)))?;
    let c = w.concat(&[m, s], 3, Some((0.05, 0)))?;
    let flat = w.alias(c, &[1, 8])?;
    let sm = w.softmax(flat, 1.0)?;
    let am = w.argmax(sm, 1)?;
    let d = w.dequantize(sm)?;
    w.output(am)?;
    w.output(d)?;
    seeds.push(("ops-mix".into(), w.finish()?.bytes));
    for (name, bytes) in &seeds {
        std::fs::write(dir.join(format!("{name}.edli")), bytes)?;
        edgeloop_fuzz::parse_and_invoke(bytes);
    }
    println!("wrote {} seeds to {}", seeds.len(), dir.display());
    if smoke > 0 {
        let mut s = 0x5EED_u64;
        for (name, good) in &seeds {
            for _ in 0..smoke {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let mut b = good.clone();
                let i = (s >> 8) as usize % b.len();
                b[i] ^= 1 << (s >> 60 & 7);
                fix_crc(&mut b);
                edgeloop_fuzz::parse_and_invoke(&b);
            }
            println!("smoke: {smoke} mutations of {name}: no panic");
        }
    }
    Ok(())
}
