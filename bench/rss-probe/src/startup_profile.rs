//! `startup-profile IMAGE [--reps N] [--threads N] [--no-invoke]`: where the start-up time of one image goes (a profiling
//! aid for the bench's start-up goal). Each repetition times, from image bytes already in
//! memory: `Model::parse` (validation and CRC), the zeroed arena, `Interpreter::new`, the input
//! fill and the first `invoke`. Prints the median and minimum of each phase in microseconds.
//! Run it under `perf record` to see the functions inside each phase (`--no-invoke` leaves the
//! invoke out, to look at parsing and binding alone).

use std::time::Instant;

use edgeloop_runtime::image::writer::AlignedBytes;
use edgeloop_runtime::{Interpreter, Model};

/// Phases timed per repetition.
const PHASES: [&str; 5] = ["parse", "arena", "new", "inputs", "invoke"];

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("startup-profile: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut path = None;
    let mut reps = 200usize;
    let mut invoke = true;
    let mut threads = 1usize;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--reps" => {
                reps = args
                    .get(i + 1)
                    .and_then(|v| v.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or("--reps takes a positive count")?;
                i += 1;
            }
            "--threads" => {
                threads = args
                    .get(i + 1)
                    .and_then(|v| v.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or("--threads takes a positive count")?;
                i += 1;
            }
            "--no-invoke" => invoke = false,
            p if path.is_none() && !p.starts_with("--") => path = Some(p.to_string()),
            other => return Err(format!("unexpected argument {other:?}")),
        }
        i += 1;
    }
    let path = path.ok_or("usage: startup-profile IMAGE [--reps N] [--threads N] [--no-invoke]")?;
    let raw = std::fs::read(&path).map_err(|e| format!("reading {path}: {e}"))?;
    let img = AlignedBytes::new(&raw);
    let err = |e: edgeloop_runtime::Error| format!("{path}: {e:?}");
    let mut times: Vec<[f64; 5]> = Vec::with_capacity(reps);
    for _ in 0..reps {
        let mut t = [0f64; 5];
        let t0 = Instant::now();
        let model = Model::parse(std::hint::black_box(img.as_slice())).map_err(err)?;
        t[0] = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let mut arena = AlignedBytes::zeroed(model.arena_bytes());
        t[1] = t1.elapsed().as_secs_f64();
        let t2 = Instant::now();
        let mut it = Interpreter::new(&model, arena.as_mut_slice()).map_err(err)?;
        // The worker threads start inside the timed "new" phase: they are part of start-up.
        it.set_threads(threads)
            .map_err(|e| format!("starting {threads} threads: {e}"))?;
        t[2] = t2.elapsed().as_secs_f64();
        let t3 = Instant::now();
        for k in 0..model.num_inputs() {
            it.input_bytes(k).map_err(err)?.fill(0);
        }
        t[3] = t3.elapsed().as_secs_f64();
        let t4 = Instant::now();
        if invoke {
            it.invoke().map_err(err)?;
            std::hint::black_box(it.output_bytes(0).map_err(err)?);
        }
        t[4] = t4.elapsed().as_secs_f64();
        times.push(t);
    }
    println!("{path}: {reps} start-ups (first one included), microseconds");
    println!(
        "{:>8} {:>10} {:>10} {:>10}",
        "phase", "median", "min", "first"
    );
    let mut total_med = 0.0;
    for (p, name) in PHASES.iter().enumerate() {
        let mut v: Vec<f64> = times.iter().map(|t| t[p] * 1e6).collect();
        let first = v[0];
        v.sort_by(f64::total_cmp);
        let med = v[v.len() / 2];
        total_med += med;
        println!("{name:>8} {med:>10.1} {:>10.1} {first:>10.1}", v[0]);
    }
    let mut tot: Vec<f64> = times.iter().map(|t| t.iter().sum::<f64>() * 1e6).collect();
    let first = tot[0];
    tot.sort_by(f64::total_cmp);
    println!(
        "{:>8} {:>10.1} {:>10.1} {first:>10.1}   (sum of phase medians {total_med:.1})",
        "total",
        tot[tot.len() / 2],
        tot[0]
    );
    Ok(())
}
