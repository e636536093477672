//! Issue 13's proof for model selection: select → train → quantize → compile → QEMU for the
//! keyword model under a 64 KiB RAM / 256 KiB flash budget. The chosen model fits (its trained
//! image is measured again), beats a fixed baseline configuration's accuracy at equal or lower
//! cost, and its image runs on the emulated Cortex-M4F (QEMU `mps2-an386`) behind the integer
//! front end, every feature map and output bit-exact with the host, with its instructions per
//! inference counted by the TCG plugin next to the selector's estimate. Needs QEMU, a C compiler
//! and the thumbv7em target (scripts/test.sh installs them); fails, never skips, without them.

#[path = "support/kws_firmware.rs"]
mod kws_firmware;

use std::time::Instant;

use edgeloop_select::footprint::{build, calibration, image_accuracy, Footprint};
use edgeloop_select::search::{footprint, SelectConfig};
use edgeloop_select::{report, select, Budget, Candidate, SearchSpace};
use edgeloop_trainer::audio::synth::{generate, SynthConfig};
use edgeloop_trainer::audio::train::{train, FeatureSet, KwsTrainConfig};
use edgeloop_trainer::audio::Split;
use edgeloop_trainer::models::ds_cnn::DsCnnConfig;

const KIB: u64 = 1024;

/// <https://example.invalid/edgeloop/issues/13>
#[test]
fn issue_13_select_beats_the_baseline_under_64k_ram_256k_flash() {
    let t0 = Instant::now();
    let data = generate(&SynthConfig::new(7, 200));
    let classes = data.labels.len();
    let train_set = FeatureSet::of(&data, Split::Train).unwrap();
    let test_set = FeatureSet::of(&data, Split::Test).unwrap();
    let calib = calibration(&train_set, 32).unwrap();

    // The fixed baseline: the trainer's default keyword model (24 channels, 2 blocks, stride 2).
    let baseline = KwsTrainConfig::new(classes, 1).model;
    let open = Budget::explicit(256 * KIB, 64 * KIB, None).unwrap();
    let base_fp = footprint(&Candidate::new(baseline.clone()), &calib, &open, 1).unwrap();
    assert!(base_fp.fits(), "{:?}", base_fp.over_budget);

    // Select under 256 KiB flash / 64 KiB RAM and no more latency than the baseline's.
    let budget = Budget::explicit(256 * KIB, 64 * KIB, Some(base_fp.latency_ms)).unwrap();
    let mut cfg = SelectConfig::new(budget.clone());
    cfg.space = SearchSpace {
        channels: vec![16, 32, 64],
        blocks: vec![1, 3],
        strides: vec![3],
    };
    cfg.brief_steps = 150;
    cfg.full_steps = 300;
    cfg.batch = 16;
    cfg.lr = 3e-2;
    cfg.tolerance = 0.0;
    let s = select(&data, &cfg).unwrap();
    let w = &s.winner;
    let name = &s.rows[w.row].candidate.name;
    println!("{}", report::markdown(&s));

    // Some candidates are dropped, with the reason, before any training.
    let dropped: Vec<_> = s.rows.iter().filter(|r| !r.dropped.is_empty()).collect();
    assert!(!dropped.is_empty());
    for r in &dropped {
        assert!(r.brief.is_none(), "{} was trained", r.candidate.name);
        let f = r.footprint.as_ref().unwrap();
        assert!(!f.fits());
    }
    // The winner is on the front, fits, and its trained image is the footprint predicted before
    // training.
    assert!(s.front.contains(&w.row));
    assert!(w.footprint.fits(), "{:?}", w.footprint.over_budget);
    assert!(w.footprint_as_predicted, "{:?}", w.footprint);
    assert!(w.footprint.flash_total <= 256 * KIB && w.footprint.ram_total <= 64 * KIB);
    assert!(w.footprint.latency_ms <= base_fp.latency_ms);

    // The baseline, trained exactly like the winner, quantized and compiled the same way.
    let mut tc = cfg.train_config(&baseline, cfg.full_steps);
    tc.progress = false;
    let (bm, brep) = train(&data, &tc).unwrap();
    let bbuilt = build(&bm, &calib, "baseline").unwrap();
    let bfp = Footprint::of(&bbuilt.compiled, &budget).unwrap();
    let b_int8 = image_accuracy(&bbuilt.compiled, &test_set).unwrap();

    let dir = std::env::temp_dir().join(format!("edgeloop-select-kws-{}", std::process::id()));
    let written = report::write(&s, &dir).unwrap();
    println!(
        "baseline c24-b2-s2: flash {} B, RAM {} B, ~{:.2} ms; test fp32 {:.3}, int8 {:.3}",
        bfp.flash_total, bfp.ram_total, bfp.latency_ms, brep.test_accuracy, b_int8
    );
    println!(
        "chosen {name}: flash {} B, RAM {} B, ~{:.2} ms; test fp32 {:.3}, int8 {:.3}; {:.0} s in all",
        w.footprint.flash_total,
        w.footprint.ram_total,
        w.footprint.latency_ms,
        w.test_accuracy,
        w.int8_test_accuracy,
        t0.elapsed().as_secs_f64()
    );
    // Equal or lower cost, higher accuracy of the deployed int8 image, as a mean over three
    // training seeds: with 160 test clips and 300 steps, one seed's int8 accuracies move by a
    // few clips with the training's randomness (at one seed the baseline was ahead, 0.875 vs
    // 0.838, after a change to the front end's rounding moved a few features by one step).
    assert!(w.footprint.instructions <= bfp.instructions);
    let (mut w_int8, mut b_int8s) = (vec![w.int8_test_accuracy], vec![b_int8]);
    for seed in [cfg.seed + 1, cfg.seed + 2] {
        for (model, accs) in [
            (&w.train_config.model, &mut w_int8),
            (&baseline, &mut b_int8s),
        ] {
            let mut tc = cfg.train_config(model, cfg.full_steps);
            tc.seed = seed;
            let (m, _) = train(&data, &tc).unwrap();
            let built = build(&m, &calib, "seed").unwrap();
            accs.push(image_accuracy(&built.compiled, &test_set).unwrap());
        }
    }
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    println!(
        "int8 test accuracy over seeds {}..={}: chosen {name} {w_int8:?} (mean {:.3}), baseline \
         {b_int8s:?} (mean {:.3})",
        cfg.seed,
        cfg.seed + 2,
        mean(&w_int8),
        mean(&b_int8s)
    );
    assert!(
        mean(&w_int8) > mean(&b_int8s),
        "chosen {name} int8 {w_int8:?} vs baseline {b_int8s:?}"
    );

    // The outputs: table, JSON, plot, and the chosen config in the trainer's format.
    let md = std::fs::read_to_string(&written.markdown).unwrap();
    assert!(md.contains("**chosen**") && md.contains("dropped: latency"));
    let png = std::fs::read(&written.plot).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let chosen: KwsTrainConfig =
        serde_json::from_slice(&std::fs::read(&written.chosen).unwrap()).unwrap();
    assert_eq!(chosen, w.train_config);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&written.json).unwrap()).unwrap();
    assert_eq!(json["rows"].as_array().unwrap().len(), s.rows.len());
    let image = std::fs::read(&written.image).unwrap();
    assert_eq!(image.len() as u64, w.footprint.image.total as u64);
    std::fs::remove_dir_all(&dir).unwrap();
    let _: DsCnnConfig = chosen.model;

    // QEMU: the chosen image behind the device's front end, on raw held-out clips.
    let work = kws_firmware::tmp("select_kws_qemu");
    let assets = work.join("assets");
    std::fs::create_dir_all(&assets).unwrap();
    let clips = 8;
    let host_right = kws_firmware::write_assets(&assets, &image, &data, clips);
    let run = kws_firmware::run_kws(&assets, &work, clips);
    // The device's interpreter used the arena the selector planned (RAM is exact, not estimated).
    assert_eq!(run.arena_bytes, Some(w.footprint.arena), "{}", run.log);
    assert_eq!(run.model.macs, w.footprint.macs);
    let stack = run.stack_bytes.expect("stack high-water mark in the log");
    let measured = run.front_end.mean + run.model.mean;
    // The baseline's image on the device too: the chosen model costs no more, measured.
    let base_work = work.join("baseline");
    let base_assets = base_work.join("assets");
    std::fs::create_dir_all(&base_assets).unwrap();
    kws_firmware::write_assets(&base_assets, bbuilt.compiled.bytes(), &data, clips);
    let base_run = kws_firmware::run_kws(&base_assets, &base_work, clips);
    assert!(
        run.model.mean <= base_run.model.mean,
        "chosen {name}: {} instructions per inference on the device, baseline {}",
        run.model.mean,
        base_run.model.mean
    );
    let md = format!(
        "# Chosen keyword model {name} on Cortex-M4 (QEMU mps2-an386, TCG plugin count)\n\n\
         {clips} held-out clips, features and outputs bit-exact with the host ({host_right} of \
         {clips} right on the host).\n\n\
         | | estimated by the selector | measured on the device |\n|---|---:|---:|\n\
         | model instructions per inference | {:.0} | {} (min {}, max {}) |\n\
         | baseline c24-b2-s2 model instructions per inference | {:.0} | {} |\n\
         | front end instructions per clip | - | {} |\n\
         | model MACs | {} | {} |\n\
         | instructions per MAC (model) | {:.2} | {:.2} |\n\
         | arena bytes | {} | {} |\n\
         | stack high-water bytes | - | {stack} |\n\
         | front end + model instructions | - | {measured} |\n",
        w.footprint.instructions,
        run.model.mean,
        run.model.min,
        run.model.max,
        bfp.instructions,
        base_run.model.mean,
        run.front_end.mean,
        w.footprint.macs,
        run.model.macs,
        w.footprint.instructions / w.footprint.macs.max(1) as f64,
        run.model.mean as f64 / run.model.macs.max(1) as f64,
        w.footprint.arena,
        run.arena_bytes.unwrap_or(0),
    );
    println!("{md}");
    std::fs::write(work.join("select_kws_qemu.md"), &md).unwrap();
    // The cost model holds out of its sample on both images (narrower than the bench's DS-CNN):
    // 1.22x and 1.38x low with one figure per MAC, 0.98x and 0.98x with the per-position and
    // per-output terms when this check was written.
    for (what, measured, estimated) in [
        ("chosen", run.model.mean, w.footprint.instructions),
        ("baseline", base_run.model.mean, bfp.instructions),
    ] {
        let ratio = measured as f64 / estimated.max(1.0);
        assert!(
            (0.8..=1.25).contains(&ratio),
            "{what}: measured {measured} vs estimated {estimated:.0} instructions ({ratio:.2}x)"
        );
    }
}
