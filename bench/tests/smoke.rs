//! Smoke test of the bench (issue 11): every small model goes through every engine for a few
//! calls, the engines' outputs agree with their references, our runtime allocates nothing per
//! `invoke`, and the report renders. Times nothing against a threshold.
//!
//! Needs `ORT_DYLIB_PATH` (fails loudly when unset).

use edgeloop_bench::backends::Engine;
use edgeloop_bench::counting::Counting;
use edgeloop_bench::measure::{self, Config};
use edgeloop_bench::models::{small_models, BenchModel};
use edgeloop_bench::report::{self, Machine, ModelResult, Results};
use edgeloop_bench::{backends, check};

#[global_allocator]
static ALLOC: Counting = Counting;

/// int8 engines against ONNX Runtime Level1 on the same QDQ model: ours within 1 LSB (the
/// compiler's fidelity contract); ORT's fused default level rounds inside its fused kernels
/// (2 LSB measured on the transformer); tract's optimizer replaces `DQ → Softmax → Q` by its
/// own int8 softmax (23 LSB measured on the transformer), so it only gets a sanity bound.
const OURS_LSB: f64 = 1.0;
const ORT_LSB: f64 = 4.0;
const TRACT_LSB: f64 = 64.0;
/// fp32 engines against ONNX Runtime fp32, relative to the largest output.
const F32_REL: f64 = 1e-4;

#[test]
fn every_engine_runs_every_small_model_and_agrees() {
    let ort = backends::ort_build_info().expect("ONNX Runtime (set ORT_DYLIB_PATH)");
    let cfg = Config::smoke();
    let mut results = Vec::new();
    for (name, desc, onnx) in small_models() {
        let m = BenchModel::prepare(name, desc, onnx, 16).expect("quantize + compile");
        let (agreement, failures) = check::agreement(&m, &Engine::ALL);
        assert!(failures.is_empty(), "{name}: {failures:?}");
        assert_eq!(
            agreement.len(),
            Engine::ALL.len() - 2,
            "{name}: {agreement:?}"
        );
        for a in &agreement {
            println!(
                "{name}: {} vs {}: max |diff| {:.3e} ({:.2} {}), {}/{} identical",
                a.engine.label(),
                a.reference.label(),
                a.max_abs,
                a.distance(),
                if a.lsb.is_some() { "LSB" } else { "relative" },
                a.identical,
                a.elements
            );
            let lsb = match a.engine {
                Engine::OursInt8 => OURS_LSB,
                Engine::TractInt8 => TRACT_LSB,
                _ => ORT_LSB,
            };
            check::within(a, lsb, F32_REL).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let run = measure::run(&m, &Engine::ALL, 1, &cfg);
        for e in &run.engines {
            assert!(e.unavailable.is_none(), "{name}: {e:?}");
            let l = e.latency_us.expect("latency");
            assert_eq!(l.n, run.rounds, "{name}: {}", e.label);
            assert!(l.median > 0.0 && l.median.is_finite());
            if e.engine != Engine::OursInt8 {
                assert!(e.ratio_vs_ours_int8.is_some(), "{name}: {}", e.label);
            }
            if e.engine.is_ours() {
                assert_eq!(
                    e.rust_allocs_per_call,
                    Some(0.0),
                    "{name}: {} allocates during invoke",
                    e.label
                );
            }
        }
        let startup = measure::startup(m.image_i8.bytes(), 2, 1).expect("start-up");
        assert!(startup.first_us > 0.0);
        results.push(ModelResult {
            name: m.name.clone(),
            description: m.description.clone(),
            params: m.params,
            image_i8_bytes: m.image_i8.bytes().len(),
            image_f32_bytes: m.image_f32.bytes().len(),
            arena_i8_bytes: m.image_i8.report.arena_bytes,
            arena_f32_bytes: m.image_f32.report.arena_bytes,
            runs: vec![run],
            agreement,
            agreement_failures: failures,
            startup_i8: Ok(startup),
            startup_i8_threads: None,
            rss_i8: Err("not measured in the smoke test".into()),
        });
    }
    let res = Results {
        machine: Machine::detect(ort),
        config: cfg,
        threads: vec![1],
        goals: report::goals(&results),
        models: results,
        skipped: vec![],
        trainer: Some(Err("not measured in the smoke test".into())),
    };
    let md = report::markdown(&res);
    assert!(
        md.contains("## Trainer vs PyTorch eager"),
        "trainer section missing"
    );
    for (name, _, _) in small_models() {
        assert!(
            md.contains(&format!("### {name} (")),
            "{name} missing from the report"
        );
    }
    // Every model gets the ORT, tract, allocation and RSS goals.
    assert_eq!(res.goals.len(), res.models.len() * 5);
    serde_json::to_string(&res).expect("results serialize");
}

#[test]
fn a_model_an_engine_cannot_load_is_reported_not_hidden() {
    // An image whose bytes are corrupted: our runtime must refuse it with an error, which the
    // bench turns into an "unavailable" row rather than a number.
    let (name, desc, onnx) = small_models().remove(0);
    let mut m = BenchModel::prepare(name, desc, onnx, 8).expect("prepare");
    let n = m.image_i8.image.bytes.len();
    m.image_i8.image.bytes[n / 2] ^= 0x5a;
    let run = measure::run(
        &m,
        &[Engine::OursInt8, Engine::OursF32],
        1,
        &Config::smoke(),
    );
    let bad = run.get(Engine::OursInt8).expect("row");
    assert!(bad.unavailable.is_some(), "{bad:?}");
    assert!(bad.latency_us.is_none());
    let good = run.get(Engine::OursF32).expect("row");
    assert!(good.unavailable.is_none() && good.latency_us.is_some());
    // Without the base engine there is no ratio to take.
    assert!(good.ratio_vs_ours_int8.is_none());
}
