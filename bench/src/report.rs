//! The results file (`results.json`) and the Markdown tables (`RESULTS.md`).

use std::fmt::Write as _;

use serde::Serialize;

use crate::backends::Engine;
use crate::check::Agreement;
use crate::measure::{Config, EngineResult, Run, Startup};
use crate::stats::Summary;

/// The machine the numbers come from.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// Logical CPUs the process may use.
    pub logical_cpus: usize,
    /// ONNX Runtime build information.
    pub onnxruntime: String,
    /// tract version (the workspace's tract-onnx).
    pub tract: String,
}

impl Machine {
    /// Reads the CPU model; `ort` is ONNX Runtime's build string.
    pub fn detect(ort: String) -> Self {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .map(|r| r.trim_start_matches([' ', '\t', ':']).trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        Machine {
            cpu_model,
            logical_cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            onnxruntime: ort,
            tract: "tract-onnx 0.23 (built without multithread-mm: one thread)".into(),
        }
    }
}

/// Peak RSS of a process running one image ([`crate`]'s `rss-probe`).
#[derive(Debug, Clone, Serialize)]
pub struct Rss {
    /// VmHWM of the process running the model, KiB: the median over [`Rss::processes`] runs.
    pub vm_hwm_kib: u64,
    /// The smallest and largest VmHWM of those runs, KiB. The probe is a static-PIE binary whose
    /// load address moves every run, and the kernel maps its code in 64 KiB fault-around windows
    /// aligned to that address: the same run reads ~±80 KiB apart from one process to the next.
    pub vm_hwm_range_kib: (u64, u64),
    /// How many probe processes ran the model.
    pub processes: usize,
    /// VmHWM of the same binary when it loads no model, KiB (median of as many runs).
    pub baseline_hwm_kib: u64,
    /// Image bytes.
    pub image_bytes: usize,
    /// Arena bytes.
    pub arena_bytes: usize,
    /// How the probe was linked: `static musl, edge profile`, `static musl` or `dynamic glibc`.
    pub linkage: String,
}

/// How many probe processes each peak-RSS figure is the median of.
pub const RSS_PROCESSES: usize = 9;

impl Rss {
    /// arena + image + 1 MiB, KiB.
    pub fn budget_kib(&self) -> u64 {
        ((self.image_bytes + self.arena_bytes) as u64).div_ceil(1024) + 1024
    }
    /// Whether VmHWM is within the budget.
    pub fn met(&self) -> bool {
        self.vm_hwm_kib <= self.budget_kib()
    }
}

/// Everything measured on one model.
#[derive(Debug, Clone, Serialize)]
pub struct ModelResult {
    /// Short name.
    pub name: String,
    /// What it is.
    pub description: String,
    /// Parameters.
    pub params: usize,
    /// int8 image bytes.
    pub image_i8_bytes: usize,
    /// f32 image bytes.
    pub image_f32_bytes: usize,
    /// int8 image arena bytes.
    pub arena_i8_bytes: usize,
    /// f32 image arena bytes.
    pub arena_f32_bytes: usize,
    /// Timings per thread setting.
    pub runs: Vec<Run>,
    /// Outputs against their references.
    pub agreement: Vec<Agreement>,
    /// Engines whose output could not be compared, and why.
    pub agreement_failures: Vec<(Engine, String)>,
    /// Start-up of the int8 image, one thread.
    pub startup_i8: Result<Startup, String>,
    /// Start-up of the int8 image with the run's most threads (when more than one).
    pub startup_i8_threads: Option<Result<Startup, String>>,
    /// Peak RSS running the int8 image.
    pub rss_i8: Result<Rss, String>,
}

/// A model that could not be benchmarked at all.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    /// Model name.
    pub name: String,
    /// Why.
    pub reason: String,
}

/// One goal of issue 11 on one model.
#[derive(Debug, Clone, Serialize)]
pub struct Goal {
    /// Model.
    pub model: String,
    /// The goal.
    pub goal: String,
    /// What was measured.
    pub measured: String,
    /// Met, not met, or not measurable (`None`).
    pub met: Option<bool>,
}

/// The whole results file.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    /// Machine.
    pub machine: Machine,
    /// Measurement settings.
    pub config: Config,
    /// Thread settings measured.
    pub threads: Vec<usize>,
    /// Per model.
    pub models: Vec<ModelResult>,
    /// Models not benchmarked.
    pub skipped: Vec<Skipped>,
    /// Goals.
    pub goals: Vec<Goal>,
    /// The trainer against PyTorch eager, when asked for (`--trainer-text`); the error says why
    /// it could not be measured.
    pub trainer: Option<Result<crate::trainer::TrainerResult, String>>,
}

/// The engine picked by `pick` with the lowest median latency over all runs, with its run.
fn best<'a>(
    m: &'a ModelResult,
    pick: &dyn Fn(Engine) -> bool,
) -> Option<(&'a Run, &'a EngineResult, f64, Summary)> {
    let mut out: Option<(&Run, &EngineResult, f64, Summary)> = None;
    for run in &m.runs {
        for e in &run.engines {
            if !pick(e.engine) {
                continue;
            }
            let (Some(l), Some(r)) = (e.latency_us, e.ratio_vs_ours_int8) else {
                continue;
            };
            if out.as_ref().is_none_or(|o| l.median < o.2) {
                out = Some((run, e, l.median, r));
            }
        }
    }
    out
}

fn ours_median(run: &Run) -> f64 {
    run.get(Engine::OursInt8)
        .and_then(|e| e.latency_us)
        .map(|l| l.median)
        .unwrap_or(f64::NAN)
}

/// The goals of issue 11, evaluated on `models`.
pub fn goals(models: &[ModelResult]) -> Vec<Goal> {
    let mut g = Vec::new();
    let is_ort = |e: Engine| {
        matches!(
            e,
            Engine::OrtInt8Default | Engine::OrtInt8Level1 | Engine::OrtF32
        )
    };
    let is_ort_int8 = |e: Engine| matches!(e, Engine::OrtInt8Default | Engine::OrtInt8Level1);
    let is_tract = |e: Engine| matches!(e, Engine::TractInt8 | Engine::TractF32);
    for m in models {
        let minilm = m.name.contains("minilm");
        let cmp = |goal: &str, pick: &dyn Fn(Engine) -> bool, need: f64| -> Goal {
            match best(m, pick) {
                Some((run, e, lat, r)) => Goal {
                    model: m.name.clone(),
                    goal: goal.into(),
                    measured: format!(
                        "best: {} with {} thread(s), {:.1} us vs ours {:.1} us; peer/ours {:.2} (p10-p90 {:.2}-{:.2})",
                        e.label,
                        e.threads_used,
                        lat,
                        ours_median(run),
                        r.median,
                        r.p10,
                        r.p90
                    ),
                    met: Some(r.median >= need),
                },
                None => Goal {
                    model: m.name.clone(),
                    goal: goal.into(),
                    measured: "peer could not run this model".into(),
                    met: None,
                },
            }
        };
        if minilm {
            g.push(cmp(
                "int8 latency within 1.2x of ORT int8 (peer/ours >= 0.83)",
                &is_ort_int8,
                1.0 / 1.2,
            ));
        } else if m.params <= 5_000_000 {
            g.push(cmp(
                "faster than ORT's best configuration (peer/ours > 1)",
                &is_ort,
                1.0 + f64::EPSILON,
            ));
        }
        g.push(cmp(
            "at least 2x faster than tract (best tract config; peer/ours >= 2)",
            &is_tract,
            2.0,
        ));
        let allocs: Vec<f64> = m
            .runs
            .iter()
            .flat_map(|r| r.engines.iter())
            .filter(|e| e.engine.is_ours())
            .filter_map(|e| e.rust_allocs_per_call)
            .collect();
        g.push(Goal {
            model: m.name.clone(),
            goal: "zero heap allocations per invoke".into(),
            measured: format!(
                "max {} allocations per call over the int8 and f32 images",
                allocs.iter().copied().fold(0.0, f64::max)
            ),
            met: (!allocs.is_empty()).then(|| allocs.iter().all(|&a| a == 0.0)),
        });
        g.push(match &m.rss_i8 {
            Ok(r) => Goal {
                model: m.name.clone(),
                goal: "peak RSS <= arena + image + 1 MiB".into(),
                measured: format!(
                    "VmHWM {} KiB (median of {} processes, {}–{}) vs budget {} KiB (same binary without a model: {} KiB)",
                    r.vm_hwm_kib,
                    r.processes,
                    r.vm_hwm_range_kib.0,
                    r.vm_hwm_range_kib.1,
                    r.budget_kib(),
                    r.baseline_hwm_kib
                ),
                met: Some(r.met()),
            },
            Err(e) => Goal {
                model: m.name.clone(),
                goal: "peak RSS <= arena + image + 1 MiB".into(),
                measured: format!("not measured: {e}"),
                met: None,
            },
        });
        if m.params <= 1_000_000 {
            for st in std::iter::once(&m.startup_i8).chain(m.startup_i8_threads.as_ref()) {
                g.push(match st {
                    Ok(s) => Goal {
                        model: m.name.clone(),
                        goal: format!(
                            "image bytes to first result < 1 ms ({} thread{})",
                            s.threads,
                            if s.threads == 1 { "" } else { "s" }
                        ),
                        measured: format!(
                            "first {:.1} us, then median {:.1} us",
                            s.first_us, s.repeated_us.median
                        ),
                        met: Some(s.first_us < 1000.0 && s.repeated_us.median < 1000.0),
                    },
                    Err(e) => Goal {
                        model: m.name.clone(),
                        goal: "image bytes to first result < 1 ms".into(),
                        measured: format!("not measured: {e}"),
                        met: None,
                    },
                });
            }
        }
    }
    g
}

fn us(x: f64) -> String {
    if x >= 1000.0 {
        format!("{:.0}", x)
    } else if x >= 10.0 {
        format!("{:.1}", x)
    } else {
        format!("{:.2}", x)
    }
}

fn ratio(s: &Option<Summary>) -> String {
    match s {
        Some(r) => format!("{:.2} ({:.2}-{:.2})", r.median, r.p10, r.p90),
        None => "-".into(),
    }
}

fn cell(s: &str) -> String {
    s.replace('|', "/").replace('\n', " ")
}

/// The trainer's goal (issue 6, reported here by issue 11): tokens/s at least PyTorch eager's.
pub fn trainer_goal(t: &Result<crate::trainer::TrainerResult, String>) -> Goal {
    let goal = "trainer tokens/s >= 1.0x PyTorch eager (nanoGPT CPU recipe)".to_string();
    match t {
        Ok(t) => Goal {
            model: "trainer (char GPT)".into(),
            goal,
            measured: format!(
                "ours {:.0} vs PyTorch {} {:.0} tokens/s, {} thread(s); ours/PyTorch {:.2} (p10-p90 {:.2}-{:.2}, {} pairs of {} iterations)",
                t.ours_tokens_per_s.median,
                t.torch,
                t.torch_tokens_per_s.median,
                t.threads,
                t.ratio.median,
                t.ratio.p10,
                t.ratio.p90,
                t.ratio.n,
                t.iters
            ),
            met: Some(t.ratio.median >= 1.0),
        },
        Err(e) => Goal {
            model: "trainer (char GPT)".into(),
            goal,
            measured: format!("not measured: {e}"),
            met: None,
        },
    }
}

fn trainer_section(s: &mut String, t: &Result<crate::trainer::TrainerResult, String>) {
    let _ = writeln!(s, "\n## Trainer vs PyTorch eager (nanoGPT CPU recipe)\n");
    let t = match t {
        Ok(t) => t,
        Err(e) => {
            let _ = writeln!(s, "Not measured: {}", cell(e));
            return;
        }
    };
    let _ = writeln!(
        s,
        "Char-level GPT, 4 layers, 4 heads, width 128, context 64, batch 12, AdamW; {} pairs of \
         {}-iteration runs, {} thread(s) each, the two engines one after the other in alternating \
         order; ratio = ours / PyTorch within a pair. Validation loss here is after only {} \
         iterations (the 2000-iteration quality check is in `bench/nanogpt/README.md`). Load \
         average before: {}.\n",
        t.ratio.n,
        t.iters,
        t.threads,
        t.iters,
        t.load_before
            .map(|l| format!("{l:.2}"))
            .unwrap_or_else(|| "unknown".into())
    );
    let _ = writeln!(
        s,
        "| engine | median tokens/s | p10-p90 | val loss (median) |\n|---|---|---|---|"
    );
    let med = |v: &[crate::trainer::TrainRun]| {
        crate::stats::summarize(&v.iter().map(|r| r.val_loss).collect::<Vec<_>>()).median
    };
    let _ = writeln!(
        s,
        "| edgeloop trainer (candle) | {:.0} | {:.0}-{:.0} | {:.4} |",
        t.ours_tokens_per_s.median,
        t.ours_tokens_per_s.p10,
        t.ours_tokens_per_s.p90,
        med(&t.ours)
    );
    let _ = writeln!(
        s,
        "| PyTorch {} eager | {:.0} | {:.0}-{:.0} | {:.4} |",
        t.torch,
        t.torch_tokens_per_s.median,
        t.torch_tokens_per_s.p10,
        t.torch_tokens_per_s.p90,
        med(&t.torch_runs)
    );
    let _ = writeln!(
        s,
        "| **ours / PyTorch** | **{:.2}** | {:.2}-{:.2} | |",
        t.ratio.median, t.ratio.p10, t.ratio.p90
    );
}

/// The Markdown report.
pub fn markdown(r: &Results) -> String {
    let mut s = String::new();
    let m = &r.machine;
    let _ = writeln!(s, "# Speed vs peers\n");
    let _ = writeln!(
        s,
        "Generated by `scripts/bench.sh` (the `edgeloop-bench` binary, release build). Machine: \
         **{}**, {} logical CPUs, shared with other work. ONNX Runtime: {}. {}.\n",
        m.cpu_model,
        m.logical_cpus,
        m.onnxruntime.lines().next().unwrap_or(""),
        m.tract
    );
    let _ = writeln!(
        s,
        "Method: every engine runs the same ONNX artifact (our quantizer's int8 QDQ model, or the \
         fp32 model; our runtime runs the images compiled from them) on one fixed input, batch 1. \
         After a {:.1} ms warm-up per engine, {} rounds (fewer, at least {}, where they would take \
         over {} s: the MiniLM); in each round every engine runs a batch \
         of calls lasting about {:.1} ms, in an order rotated from round to round. A latency \
         sample is one batch's mean; a ratio sample is peer / ours on the same round. Tables give \
         medians with p10-p90. `peer / ours` > 1 means our runtime is faster. A run asks every \
         engine for N threads (\"N thr\"); our runtime and this tract build are single-threaded, \
         so only ONNX Runtime (intra-op threads) uses more than one. Timings are not asserted \
         anywhere in tests.\n",
        r.config.warmup.as_secs_f64() * 1e3,
        r.config.rounds,
        r.config.min_rounds,
        r.config.max_run.as_secs(),
        r.config.batch_time.as_secs_f64() * 1e3
    );
    let _ = writeln!(s, "## Goals (issue 11)\n");
    let _ = writeln!(s, "| model | goal | measured | met |\n|---|---|---|---|");
    for g in &r.goals {
        let met = match g.met {
            Some(true) => "met",
            Some(false) => "**not met**",
            None => "not measured",
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {met} |",
            g.model,
            g.goal,
            cell(&g.measured)
        );
    }
    let _ = writeln!(s, "\n## Latency, batch 1\n");
    for mr in &r.models {
        let rounds: Vec<String> = mr.runs.iter().map(|r| r.rounds.to_string()).collect();
        let _ = writeln!(
            s,
            "### {} ({} parameters; {}; rounds {})\n",
            mr.name,
            mr.params,
            mr.description,
            rounds.join("/")
        );
        let _ = writeln!(
            s,
            "| run | engine | threads used | median us | p10-p90 us | peer / ours int8 | peer / ours f32 |\n|---|---|---|---|---|---|---|"
        );
        for run in &mr.runs {
            for e in &run.engines {
                match (&e.unavailable, &e.latency_us) {
                    (Some(why), _) => {
                        let _ = writeln!(
                            s,
                            "| {} thr | {} | - | n/a | cannot run: {} | - | - |",
                            run.threads,
                            e.label,
                            cell(why)
                        );
                    }
                    (None, Some(l)) => {
                        let _ = writeln!(
                            s,
                            "| {} thr | {} | {} | {} | {}-{} | {} | {} |",
                            run.threads,
                            e.label,
                            e.threads_used,
                            us(l.median),
                            us(l.p10),
                            us(l.p90),
                            ratio(&e.ratio_vs_ours_int8),
                            ratio(&e.ratio_vs_ours_f32)
                        );
                    }
                    _ => {}
                }
            }
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(
        s,
        "## Memory, allocations and start-up (our runtime, int8 image)\n"
    );
    let _ = writeln!(
        s,
        "| model | image B | arena B | f32 image B | f32 arena B | VmHWM KiB [range] (budget) | same binary, no model KiB | allocations / invoke | start-up first / median us (of which parse) | start-up, most threads: first / median us |\n|---|---|---|---|---|---|---|---|---|---|"
    );
    for mr in &r.models {
        let rss = match &mr.rss_i8 {
            Ok(x) => (
                format!(
                    "{} [{}–{}] ({})",
                    x.vm_hwm_kib,
                    x.vm_hwm_range_kib.0,
                    x.vm_hwm_range_kib.1,
                    x.budget_kib()
                ),
                x.baseline_hwm_kib.to_string(),
            ),
            Err(e) => (format!("not measured: {}", cell(e)), "-".into()),
        };
        let allocs = mr
            .runs
            .iter()
            .flat_map(|r| r.engines.iter())
            .filter(|e| e.engine.is_ours())
            .filter_map(|e| e.rust_allocs_per_call)
            .fold(None, |a: Option<f64>, x| Some(a.map_or(x, |a| a.max(x))));
        let st = match &mr.startup_i8 {
            Ok(x) => format!(
                "{} / {} (parse {})",
                us(x.first_us),
                us(x.repeated_us.median),
                us(x.parse_us.median)
            ),
            Err(e) => format!("not measured: {}", cell(e)),
        };
        let st_threads = match &mr.startup_i8_threads {
            Some(Ok(x)) => format!(
                "{} threads: {} / {}",
                x.threads,
                us(x.first_us),
                us(x.repeated_us.median)
            ),
            Some(Err(e)) => format!("not measured: {}", cell(e)),
            None => "-".into(),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            mr.name,
            mr.image_i8_bytes,
            mr.arena_i8_bytes,
            mr.image_f32_bytes,
            mr.arena_f32_bytes,
            rss.0,
            rss.1,
            allocs.map_or("-".into(), |a| format!("{a}")),
            st,
            st_threads
        );
    }
    let linkage = r
        .models
        .iter()
        .find_map(|m| m.rss_i8.as_ref().ok().map(|r| r.linkage.clone()))
        .unwrap_or_else(|| "unknown".into());
    let _ = writeln!(
        s,
        "\nVmHWM is read from /proc/self/status by `rss-probe` ({linkage} build; scripts/bench.sh \
         builds it static with musl and the `edge` profile — fat LTO, one codegen unit, \
         panic=abort —, as an edge Linux deployment ships a runtime, and falls back to glibc), a separate small binary linking only the runtime, that reads \
         the image file into one aligned buffer, allocates the arena and invokes 100 times; \
         \"same binary, no model\" is its VmHWM when it loads nothing (the process's own floor). \
         Before each model the probe's binary is evicted from the page cache (fsync and \
         posix_fadvise DONTNEED) and one uncounted process reads it back: a freshly linked binary \
         sits in the cache in large folios that the kernel maps whole, which made up to all of its \
         text resident, where an installed binary is read back by exec and page faults. \
         Each figure is the median of {RSS_PROCESSES} processes, with their range in brackets: \
         the probe's load address moves every run and the kernel maps its code in 64 KiB \
         fault-around windows aligned to it, so resident code differs from one process to the next. \
         Allocations are counted by a counting global allocator in the bench binary.\n"
    );
    let _ = writeln!(s, "## Do the engines agree? (bench input)\n");
    let _ = writeln!(
        s,
        "| model | engine | reference | max abs diff | in LSB / relative | identical |\n|---|---|---|---|---|---|"
    );
    for mr in &r.models {
        for a in &mr.agreement {
            let d = match a.lsb {
                Some(_) => format!("{:.1} LSB", a.distance()),
                None => format!("{:.1e}", a.distance()),
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.3e} | {} | {}/{} |",
                mr.name,
                a.engine.label(),
                a.reference.label(),
                a.max_abs,
                d,
                a.identical,
                a.elements
            );
        }
        for (e, why) in &mr.agreement_failures {
            let _ = writeln!(
                s,
                "| {} | {} | - | cannot run: {} | - | - |",
                mr.name,
                e.label(),
                cell(why)
            );
        }
    }
    if let Some(t) = &r.trainer {
        trainer_section(&mut s, t);
    }
    if !r.skipped.is_empty() {
        let _ = writeln!(s, "\n## Not benchmarked\n");
        for k in &r.skipped {
            let _ = writeln!(s, "- **{}**: {}", k.name, cell(&k.reason));
        }
    }
    s
}
