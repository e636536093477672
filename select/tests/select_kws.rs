//! Issue 13's proof for model selection: select → train → quantize → compile for the keyword
//! model under a 64 KiB RAM / 256 KiB flash budget; the chosen model fits (its trained image is
//! measured again) and beats a fixed baseline configuration's accuracy at equal or lower cost.
//! (The QEMU run of the chosen image is the firmware example's part of the proof.)

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
    // Equal or lower cost, higher accuracy of the deployed int8 image.
    assert!(w.footprint.instructions <= bfp.instructions);
    assert!(
        w.int8_test_accuracy > b_int8,
        "chosen {name} int8 {} vs baseline {b_int8}",
        w.int8_test_accuracy
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
}
