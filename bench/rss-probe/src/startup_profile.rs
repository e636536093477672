//! `startup-profile IMAGE [--reps N] [--threads N] [--no-invoke] [--ops N]`: where the start-up time of one image goes (a profiling
//! aid for the bench's start-up goal). Each repetition times, from image bytes already in
//! memory: `Model::parse` (validation and CRC), the zeroed arena, `Interpreter::new`, the input
//! fill and the first `invoke`. Prints the median and minimum of each phase in microseconds.
//! Run it under `perf record` to see the functions inside each phase (`--no-invoke` leaves the
//! invoke out, to look at parsing and binding alone). `--ops N` then times every op of the
//! image's `invoke` (median over N calls after one warm-up, read from a monotonic clock in the
//! invoke hook) and prints the totals per op kind and the 24 heaviest ops: the per-op view of
//! the bench's `op-profile` for an image file, without building the bench's peers.

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
    let mut op_calls = 0usize;
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
            "--ops" => {
                op_calls = args
                    .get(i + 1)
                    .and_then(|v| v.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or("--ops takes a positive count")?;
                i += 1;
            }
            "--no-invoke" => invoke = false,
            p if path.is_none() && !p.starts_with("--") => path = Some(p.to_string()),
            other => return Err(format!("unexpected argument {other:?}")),
        }
        i += 1;
    }
    let path = path
        .ok_or("usage: startup-profile IMAGE [--reps N] [--threads N] [--no-invoke] [--ops N]")?;
    let raw = std::fs::read(&path).map_err(|e| format!("reading {path}: {e}"))?;
    let img = AlignedBytes::new(&raw);
    let err = |e: edgeloop_runtime::Error| format!("{path}: {e:?}");
    let mut times: Vec<[f64; 5]> = Vec::with_capacity(reps);
    // Minor page faults of each phase of the first start-up (read from /proc; `None` elsewhere).
    let mut first_faults: [Option<u64>; 5] = [None; 5];
    for rep in 0..reps {
        let mut t = [0f64; 5];
        // Read only around the first start-up (the reads are system calls).
        let first = rep == 0;
        let faults = || if first { minor_faults() } else { None };
        let mut f = [faults(); 6];
        let t0 = Instant::now();
        let model = Model::parse(std::hint::black_box(img.as_slice())).map_err(err)?;
        t[0] = t0.elapsed().as_secs_f64();
        f[1] = faults();
        let t1 = Instant::now();
        let mut arena = AlignedBytes::zeroed(model.arena_bytes());
        t[1] = t1.elapsed().as_secs_f64();
        f[2] = faults();
        let t2 = Instant::now();
        let mut it = Interpreter::new(&model, arena.as_mut_slice()).map_err(err)?;
        // The worker threads start inside the timed "new" phase: they are part of start-up.
        it.set_threads(threads)
            .map_err(|e| format!("starting {threads} threads: {e}"))?;
        t[2] = t2.elapsed().as_secs_f64();
        f[3] = faults();
        let t3 = Instant::now();
        for k in 0..model.num_inputs() {
            it.input_bytes(k).map_err(err)?.fill(0);
        }
        t[3] = t3.elapsed().as_secs_f64();
        f[4] = faults();
        let t4 = Instant::now();
        if invoke {
            it.invoke().map_err(err)?;
            std::hint::black_box(it.output_bytes(0).map_err(err)?);
        }
        t[4] = t4.elapsed().as_secs_f64();
        f[5] = faults();
        if first {
            for (p, ff) in first_faults.iter_mut().enumerate() {
                *ff = f[p + 1].zip(f[p]).map(|(b, a)| b.saturating_sub(a));
            }
        }
        times.push(t);
    }
    println!("{path}: {reps} start-ups (first one included), microseconds");
    println!(
        "{:>8} {:>10} {:>10} {:>10} {:>13}",
        "phase", "median", "min", "first", "first faults"
    );
    let mut total_med = 0.0;
    for (p, name) in PHASES.iter().enumerate() {
        let mut v: Vec<f64> = times.iter().map(|t| t[p] * 1e6).collect();
        let first = v[0];
        v.sort_by(f64::total_cmp);
        let med = v[v.len() / 2];
        total_med += med;
        let faults = first_faults[p].map_or("-".to_string(), |n| n.to_string());
        println!(
            "{name:>8} {med:>10.1} {:>10.1} {first:>10.1} {faults:>13}",
            v[0]
        );
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
    if op_calls > 0 {
        per_op(&path, img.as_slice(), op_calls, threads)?;
    }
    Ok(())
}

/// This process's minor page faults so far (field 10 of `/proc/self/stat`), where readable.
fn minor_faults() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(7)?.parse().ok()
}

/// Times every op of `invoke` over `calls` calls (after one warm-up) and prints the medians.
fn per_op(path: &str, bytes: &[u8], calls: usize, threads: usize) -> Result<(), String> {
    let err = |e: edgeloop_runtime::Error| format!("{path}: {e:?}");
    let model = Model::parse(bytes).map_err(err)?;
    let mut arena = AlignedBytes::zeroed(model.arena_bytes());
    let mut it = Interpreter::new(&model, arena.as_mut_slice()).map_err(err)?;
    it.set_threads(threads)
        .map_err(|e| format!("starting {threads} threads: {e}"))?;
    let n_ops = model.num_ops();
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(calls); n_ops];
    for call in 0..=calls {
        for k in 0..model.num_inputs() {
            it.input_bytes(k).map_err(err)?.fill(0);
        }
        let mut times = vec![0f64; n_ops];
        let mut t = Instant::now();
        it.invoke_with_hook(|i, _| {
            let now = Instant::now();
            times[i] = (now - t).as_secs_f64() * 1e6;
            t = now;
        })
        .map_err(err)?;
        if call > 0 {
            samples.iter_mut().zip(times).for_each(|(s, v)| s.push(v));
        }
    }
    let mut rows = Vec::with_capacity(n_ops);
    for (i, rec) in model.ops().enumerate() {
        let rec = rec.map_err(err)?;
        let s = &mut samples[i];
        s.sort_by(f64::total_cmp);
        let name = match edgeloop_runtime::image::op::OpCode::from_code(rec.code) {
            Some(c) => format!("{c:?}"),
            None => format!("op{}", rec.code),
        };
        let y = model.tensor(rec.output(0) as usize).map_err(err)?;
        rows.push((
            s[s.len() / 2],
            i,
            name,
            format!("{:?} {:?}", y.dtype, y.shape.dims()),
        ));
    }
    let total: f64 = rows.iter().map(|r| r.0).sum();
    println!(
        "per op: {n_ops} ops, {total:.1} us per invoke (sum of op medians over {calls} calls)"
    );
    let mut kinds: Vec<(String, f64, usize)> = Vec::new();
    for r in &rows {
        match kinds.iter_mut().find(|k| k.0 == r.2) {
            Some(k) => {
                k.1 += r.0;
                k.2 += 1;
            }
            None => kinds.push((r.2.clone(), r.0, 1)),
        }
    }
    kinds.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (name, t, n) in &kinds {
        println!(
            "  {name:<16} {t:>9.1} us {:>5.1}%  ({n} ops)",
            100.0 * t / total
        );
    }
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (t, i, name, shape) in rows.iter().take(24) {
        println!("  #{i:<3} {name:<16} {t:>8.1} us  {shape}");
    }
    Ok(())
}
