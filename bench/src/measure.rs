//! Timing in interleaved rounds: in every round each loaded engine runs a batch of calls, in an
//! order rotated from round to round, so that a ratio is always taken between two batches of
//! the same round (this machine is shared and noisy). Also: allocations per call, start-up time.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use edgeloop_runtime::image::writer::AlignedBytes;
use edgeloop_runtime::{Interpreter, Model};
use serde::Serialize;

use crate::backends::{Backend, Engine};
use crate::counting;
use crate::models::BenchModel;
use crate::stats::{summarize, Summary};
use crate::{Error, Result};

/// How long to measure.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Config {
    /// Interleaved rounds (samples per engine).
    pub rounds: usize,
    /// Wall time of one engine's batch in one round.
    pub batch_time: Duration,
    /// Warm-up per engine before the rounds.
    pub warmup: Duration,
    /// Rounds are cut (down to `min_rounds`) so that one thread setting of one model takes
    /// about this long.
    pub max_run: Duration,
    /// Fewest rounds.
    pub min_rounds: usize,
}

impl Config {
    /// The full bench.
    pub fn full() -> Self {
        Config {
            rounds: 31,
            batch_time: Duration::from_millis(20),
            warmup: Duration::from_millis(200),
            max_run: Duration::from_secs(60),
            min_rounds: 9,
        }
    }
    /// A few iterations (smoke test).
    pub fn smoke() -> Self {
        Config {
            rounds: 3,
            batch_time: Duration::from_micros(500),
            warmup: Duration::from_micros(500),
            max_run: Duration::from_secs(5),
            min_rounds: 3,
        }
    }
}

/// One engine's result for one model at one thread setting.
#[derive(Debug, Clone, Serialize)]
pub struct EngineResult {
    /// Which engine.
    pub engine: Engine,
    /// Its label.
    pub label: String,
    /// Threads the engine used.
    pub threads_used: usize,
    /// Why it could not run (then nothing else is set).
    pub unavailable: Option<String>,
    /// Latency per call in microseconds (one sample per round: the batch mean).
    pub latency_us: Option<Summary>,
    /// Per-round ratio this engine / edgeloop int8 (> 1: ours is faster).
    pub ratio_vs_ours_int8: Option<Summary>,
    /// Per-round ratio this engine / edgeloop f32 (fp32 engines only).
    pub ratio_vs_ours_f32: Option<Summary>,
    /// Calls per batch.
    pub calls_per_batch: usize,
    /// Rust-heap allocations per call (allocations inside ONNX Runtime's C++ are not seen).
    pub rust_allocs_per_call: Option<f64>,
}

/// All engines on one model at one thread setting.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// Threads asked for.
    pub threads: usize,
    /// Rounds measured.
    pub rounds: usize,
    /// Per engine.
    pub engines: Vec<EngineResult>,
}

impl Run {
    /// The result of `e`.
    pub fn get(&self, e: Engine) -> Option<&EngineResult> {
        self.engines.iter().find(|r| r.engine == e)
    }
}

fn time_batch(b: &mut dyn Backend, n: usize) -> Result<f64> {
    let t = Instant::now();
    for _ in 0..n {
        b.run()?;
    }
    Ok(t.elapsed().as_secs_f64() * 1e6 / n as f64)
}

/// Measures `engines` on `m` with `threads` threads.
pub fn run(m: &BenchModel, engines: &[Engine], threads: usize, cfg: &Config) -> Run {
    let mut loaded: Vec<(Engine, Box<dyn Backend>, usize)> = Vec::new();
    let mut failed: HashMap<Engine, String> = HashMap::new();
    let mut per_call: Vec<f64> = Vec::new();
    for &e in engines {
        match e.load(m, threads).and_then(|mut b| {
            // Warm-up, and the batch size from its mean.
            let t = Instant::now();
            let mut calls = 0usize;
            while calls < 3 || t.elapsed() < cfg.warmup {
                b.run()?;
                calls += 1;
            }
            let per = t.elapsed().as_secs_f64() / calls as f64;
            let n = ((cfg.batch_time.as_secs_f64() / per).round() as usize).max(1);
            Ok((b, n, per))
        }) {
            Ok((b, n, per)) => {
                loaded.push((e, b, n));
                per_call.push(per);
            }
            Err(err) => {
                failed.insert(e, err.to_string());
            }
        }
    }
    // Slow models (a round of single calls longer than `max_run / rounds`) get fewer rounds,
    // never fewer than `min_rounds`.
    let round_s: f64 = loaded
        .iter()
        .map(|(_, _, n)| *n as f64)
        .zip(&per_call)
        .map(|(n, p)| n * p)
        .sum();
    let rounds = if round_s * cfg.rounds as f64 > cfg.max_run.as_secs_f64() {
        ((cfg.max_run.as_secs_f64() / round_s) as usize)
            .clamp(cfg.min_rounds.min(cfg.rounds), cfg.rounds)
    } else {
        cfg.rounds
    };
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); loaded.len()];
    for r in 0..rounds {
        let k = loaded.len().max(1);
        for j in 0..loaded.len() {
            let i = (j + r) % k;
            let (e, b, n) = &mut loaded[i];
            match time_batch(b.as_mut(), *n) {
                Ok(t) => samples[i].push(t),
                Err(err) => {
                    failed.insert(*e, err.to_string());
                    samples[i].push(f64::NAN);
                }
            }
        }
    }
    let order: Vec<Engine> = loaded.iter().map(|(e, _, _)| *e).collect();
    let idx = |e: Engine| order.iter().position(|x| *x == e);
    let ratio = |i: usize, base: Option<usize>| -> Option<Summary> {
        let b = base?;
        let v: Vec<f64> = samples[i]
            .iter()
            .zip(&samples[b])
            .map(|(p, o)| p / o)
            .collect();
        Some(summarize(&v))
    };
    let (oi, of) = (idx(Engine::OursInt8), idx(Engine::OursF32));
    let mut out = Vec::new();
    for &e in engines {
        let base = EngineResult {
            engine: e,
            label: e.label().into(),
            threads_used: e.effective_threads(threads),
            unavailable: None,
            latency_us: None,
            ratio_vs_ours_int8: None,
            ratio_vs_ours_f32: None,
            calls_per_batch: 0,
            rust_allocs_per_call: None,
        };
        if let Some(why) = failed.get(&e) {
            out.push(EngineResult {
                unavailable: Some(why.clone()),
                ..base
            });
            continue;
        }
        let Some(i) = idx(e) else { continue };
        let n = loaded[i].2;
        let b = &mut loaded[i].1;
        let calls = 100;
        let (res, allocs, _) = counting::count(|| -> Result<()> {
            for _ in 0..calls {
                b.run()?;
            }
            Ok(())
        });
        out.push(EngineResult {
            latency_us: Some(summarize(&samples[i])),
            ratio_vs_ours_int8: if e == Engine::OursInt8 {
                None
            } else {
                ratio(i, oi)
            },
            ratio_vs_ours_f32: if e.is_int8() || e.is_ours() {
                None
            } else {
                ratio(i, of)
            },
            calls_per_batch: n,
            rust_allocs_per_call: res.ok().map(|_| allocs as f64 / calls as f64),
            ..base
        });
    }
    Run {
        threads,
        rounds,
        engines: out,
    }
}

/// Start-up of our runtime: from image bytes (already in memory, as in flash) to the first
/// result: `Model::parse` (validation, CRC), the arena, `Interpreter::new` (and, with more than
/// one thread, starting the workers: `Interpreter::set_threads`), the input copy and one
/// `invoke`.
#[derive(Debug, Clone, Serialize)]
pub struct Startup {
    /// Threads `invoke` used.
    pub threads: usize,
    /// The very first start-up in this process (cold caches), microseconds.
    pub first_us: f64,
    /// Repeated start-ups, microseconds.
    pub repeated_us: Summary,
    /// The `Model::parse` part of the repeated start-ups (validation and CRC), microseconds.
    pub parse_us: Summary,
}

/// Measures [`Startup`] for the image `bytes` (zero inputs) with `threads` threads, then up to
/// `reps` more times (at least 3, stopping after about 2 s).
pub fn startup(bytes: &[u8], reps: usize, threads: usize) -> Result<Startup> {
    let img = AlignedBytes::new(bytes);
    let rt = |e: edgeloop_runtime::Error| Error::Runtime(format!("{e:?}"));
    let once = || -> Result<(f64, f64)> {
        let t = Instant::now();
        let model = Model::parse(std::hint::black_box(img.as_slice())).map_err(rt)?;
        let parse = t.elapsed().as_secs_f64() * 1e6;
        let mut arena = AlignedBytes::zeroed(model.arena_bytes());
        let mut it = Interpreter::new(&model, arena.as_mut_slice()).map_err(rt)?;
        it.set_threads(threads)
            .map_err(|e| Error::Runtime(format!("starting {threads} threads: {e}")))?;
        for k in 0..model.num_inputs() {
            it.input_bytes(k).map_err(rt)?.fill(0);
        }
        it.invoke().map_err(rt)?;
        std::hint::black_box(it.output_bytes(0).map_err(rt)?);
        Ok((t.elapsed().as_secs_f64() * 1e6, parse))
    };
    let first_us = once()?.0;
    // At most `reps` more, stopping after about 2 s (at least 3).
    let t = Instant::now();
    let mut v = Vec::new();
    while v.len() < reps && (v.len() < 3 || t.elapsed() < Duration::from_secs(2)) {
        v.push(once()?);
    }
    let total: Vec<f64> = v.iter().map(|x| x.0).collect();
    let parse: Vec<f64> = v.iter().map(|x| x.1).collect();
    Ok(Startup {
        threads,
        first_us,
        repeated_us: summarize(&total),
        parse_us: summarize(&parse),
    })
}
