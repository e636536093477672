//! `op-profile [--models a,b] [--ms N] [--rows N] [--dump DIR]`: where our runtime's time goes, per op.
//!
//! Prepares the bench models exactly as `edgeloop-bench` does (same quantizer, same images), runs
//! each image's `invoke_with_hook` for about N ms (default 300) after a warm-up, and prints, per
//! image, the time spent in every op (median over calls, from a monotonic clock read in the
//! hook), heaviest first, with the op's code and output shape (the 12 heaviest ops, or `--rows N`). With `--dump DIR` it also writes
//! each image to `DIR/<model>-<int8|f32>.elm` (for `perf record` on a plain run loop).
//! A profiling aid for issue 11; the bench's figures come from `edgeloop-bench`.

use std::time::Instant;

use edgeloop_bench::models;
use edgeloop_runtime::image::op::OpCode;
use edgeloop_runtime::image::writer::AlignedBytes;
use edgeloop_runtime::{Interpreter, Model};

fn op_name(code: u8) -> String {
    match OpCode::from_code(code) {
        Some(c) => format!("{c:?}"),
        None => format!("op{code}"),
    }
}

fn profile(
    name: &str,
    kind: &str,
    c: &edgeloop_quantize::compile::Compiled,
    ms: u64,
    show: usize,
) -> Result<(), String> {
    // Inputs stay zero (ids 0): int8 kernels' time does not depend on the values.
    let bytes = AlignedBytes::new(c.bytes());
    let model = Model::parse(bytes.as_slice()).map_err(|e| format!("{e:?}"))?;
    let mut arena = AlignedBytes::zeroed(model.arena_bytes());
    let mut it = Interpreter::new(&model, arena.as_mut_slice()).map_err(|e| format!("{e:?}"))?;
    // Graph inputs may be overwritten by `invoke`: keep their (zero) bytes and write them back
    // before every call.
    let n_in = model.num_inputs();
    let saved: Vec<Vec<u8>> = (0..n_in)
        .map(|k| it.input_bytes(k).map(|b| b.to_vec()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{e:?}"))?;
    let n_ops = model.num_ops();
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); n_ops];
    let start = Instant::now();
    let mut calls = 0usize;
    while start.elapsed().as_millis() < ms as u128 || calls < 3 {
        for (k, v) in saved.iter().enumerate() {
            it.input_bytes(k)
                .map_err(|e| format!("{e:?}"))?
                .copy_from_slice(v);
        }
        let mut t = Instant::now();
        let mut times = vec![0f64; n_ops];
        it.invoke_with_hook(|i, _| {
            let now = Instant::now();
            times[i] = (now - t).as_secs_f64() * 1e6;
            t = now;
        })
        .map_err(|e| format!("{e:?}"))?;
        if calls > 0 {
            for (s, v) in samples.iter_mut().zip(times) {
                s.push(v);
            }
        }
        calls += 1;
    }
    let mut rows: Vec<(f64, usize, String, String)> = Vec::new();
    for (i, rec) in model.ops().enumerate() {
        let rec = rec.map_err(|e| format!("{e:?}"))?;
        let s = &mut samples[i];
        s.sort_by(|a, b| a.total_cmp(b));
        let med = s[s.len() / 2];
        let y = model
            .tensor(rec.output(0) as usize)
            .map_err(|e| format!("{e:?}"))?;
        rows.push((
            med,
            i,
            op_name(rec.code),
            format!("{:?} {:?}", y.dtype, y.shape),
        ));
    }
    let total: f64 = rows.iter().map(|r| r.0).sum();
    println!(
        "== {name} {kind}: {n_ops} ops, {:.1} us per call (sum of op medians), {} calls",
        total,
        calls - 1
    );
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut by_op: Vec<(String, f64)> = Vec::new();
    for r in &rows {
        match by_op.iter_mut().find(|(n, _)| *n == r.2) {
            Some(e) => e.1 += r.0,
            None => by_op.push((r.2.clone(), r.0)),
        }
    }
    by_op.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (n, t) in &by_op {
        println!("   {n:<16} {t:>10.1} us  {:>5.1}%", 100.0 * t / total);
    }
    for r in rows.iter().take(show) {
        println!("   #{:<3} {:<16} {:>10.1} us  {}", r.1, r.2, r.0, r.3);
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut want: Option<Vec<String>> = None;
    let mut ms = 300u64;
    let mut show = 12usize;
    let mut dump: Option<std::path::PathBuf> = None;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--models" => {
                want = args
                    .get(i + 1)
                    .map(|v| v.split(',').map(str::to_string).collect());
                i += 1;
            }
            "--ms" => {
                ms = args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(ms);
                i += 1;
            }
            "--rows" => {
                show = args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(show);
                i += 1;
            }
            "--dump" => {
                dump = args.get(i + 1).map(std::path::PathBuf::from);
                i += 1;
            }
            other => {
                eprintln!("op-profile: unknown argument '{other}'");
                std::process::exit(2);
            }
        }
        i += 1;
    }
    let python = std::env::var_os("EDGELOOP_PYTHON").map(std::path::PathBuf::from);
    let minilm = match python {
        Some(p) => models::minilm_dir(&p).map_err(|e| format!("{e}")),
        None => Err("EDGELOOP_PYTHON not set".to_string()),
    };
    for spec in models::catalog(minilm) {
        if let Some(w) = &want {
            if !w.iter().any(|n| n == spec.name) {
                continue;
            }
        }
        let m = match spec.prepare() {
            Ok(m) => m,
            Err(e) => {
                eprintln!("{}: not prepared: {e}", spec.name);
                continue;
            }
        };
        for (kind, c) in [("int8", &m.image_i8), ("f32", &m.image_f32)] {
            if let Some(d) = &dump {
                let p = d.join(format!("{}-{kind}.elm", spec.name));
                if let Err(e) = std::fs::write(&p, c.bytes()) {
                    eprintln!("writing {}: {e}", p.display());
                }
            }
            if let Err(e) = profile(spec.name, kind, c, ms, show) {
                eprintln!("{} {kind}: {e}", spec.name);
            }
        }
    }
}
