//! Issue 13, text task: `edgeloop select` on a tiny labelled text set (four intents of the
//! demo's corpus) over encoder and GPT classifiers at two widths, int8 and mixed precision.
//! The candidates that do not fit the flash budget are dropped with the reason before any
//! training; every footprint is the compiled image's; the front is non-dominated; the mixed
//! candidates' images differ from their int8 twins'; the winner's trained image has the
//! footprint predicted before training and its config loads in the trainer.

use std::path::Path;

use edgeloop_runtime::image::writer::AlignedBytes;
use edgeloop_runtime::image::Model;
use edgeloop_select::pareto::Point;
use edgeloop_select::text::search::footprint;
use edgeloop_select::text::task::{calibration, tokenizers};
use edgeloop_select::text::{
    report, select_text, Family, Precision, TextSearchSpace, TextSelectConfig, TextTask,
};
use edgeloop_select::Budget;
use edgeloop_trainer::corpus::{generate, labels, CorpusConfig, Variant};
use edgeloop_trainer::data::Record;
use edgeloop_trainer::models::ModelSpec;
use edgeloop_trainer::train::jobs;

/// Four intents of the lab corpus, split 60/20/20 into `dir`.
fn write_task(dir: &Path) {
    let corpus = generate(&CorpusConfig {
        seed: 3,
        variant: Variant::Lab,
        n_labelled: 1600,
        pretrain_bytes: 0,
        n_instructions: 0,
        n_preferences: 0,
    });
    let keep: Vec<&str> = labels().into_iter().take(4).collect();
    let recs: Vec<&Record> = corpus
        .labelled
        .iter()
        .filter(|r| r.label.as_deref().is_some_and(|l| keep.contains(&l)))
        .collect();
    assert!(recs.len() >= 100, "{} records", recs.len());
    std::fs::create_dir_all(dir).unwrap();
    let n = recs.len();
    let cuts = [0, n * 6 / 10, n * 8 / 10, n];
    for (k, name) in ["train.jsonl", "val.jsonl", "test.jsonl"]
        .iter()
        .enumerate()
    {
        let mut s = String::new();
        for r in &recs[cuts[k]..cuts[k + 1]] {
            s.push_str(&serde_json::to_string(r).unwrap());
            s.push('\n');
        }
        std::fs::write(dir.join(name), s).unwrap();
    }
}

/// <https://example.invalid/edgeloop/issues/13>
#[test]
fn issue_13_text_select_drops_misfits_ranks_int8_and_mixed_and_trains_the_winner() {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("select-text");
    let _ = std::fs::remove_dir_all(&root);
    write_task(&root.join("data"));
    let task = TextTask::load(&root.join("data")).unwrap();
    assert_eq!(task.labels.len(), 4);

    let space = TextSearchSpace {
        families: vec![Family::Encoder, Family::Gpt],
        widths: vec![16, 32],
        depths: vec![1],
        heads: vec![2],
        contexts: vec![12],
        vocabs: vec![300],
        precisions: vec![Precision::Int8, Precision::MixedHead],
    };
    let candidates = space.candidates().unwrap();
    assert_eq!(candidates.len(), 8);

    // The budget: flash for the largest width-16 candidate, not more (measured here with the
    // same footprint builds under an open budget, so no byte count is hard-coded).
    let open = Budget::explicit(64 << 20, 64 << 20, None)
        .unwrap()
        .for_text();
    let toks = tokenizers(&task, &[300]).unwrap();
    let tok = &toks[&300];
    let calib = calibration(&task.encode(tok, &task.train, 12).unwrap(), 16).unwrap();
    let mut w16_bound = 0;
    let mut w32_min = u64::MAX;
    for c in &candidates {
        let spec = c.spec(tok.vocab_size(), 4).unwrap();
        let f = footprint(c, &spec, &calib, &open, 1).unwrap();
        if c.width == 16 {
            w16_bound = w16_bound.max(f.flash_bound);
        } else {
            w32_min = w32_min.min(f.flash_bound);
        }
    }
    assert!(w16_bound < w32_min, "{w16_bound} vs {w32_min}");
    let budget = Budget::explicit(w16_bound, 64 << 20, None).unwrap();

    let mut cfg = TextSelectConfig::new(budget, root.join("jobs"));
    cfg.space = space;
    cfg.brief_steps = 150;
    cfg.full_steps = 400;
    cfg.batch = 16;
    cfg.lr = 3e-3;
    cfg.calibration_texts = 16;
    cfg.tolerance = 0.0;
    let s = select_text(&task, &cfg).unwrap();
    println!("{}", report::markdown(&s));

    // Misfits (every width-32 candidate) dropped with the reason, before any training.
    for r in &s.rows {
        let f = r
            .footprint
            .as_ref()
            .expect("every candidate's image is built");
        if r.candidate.width == 32 {
            assert!(r.brief.is_none(), "{} was trained", r.candidate.name);
            assert!(
                !f.fits() && r.dropped[0].starts_with("flash"),
                "{:?}",
                r.dropped
            );
            assert!(r.dropped[0].contains(&f.flash_bound.to_string()));
        } else {
            assert!(
                r.dropped.is_empty(),
                "{}: {:?}",
                r.candidate.name,
                r.dropped
            );
            let b = r.brief.as_ref().unwrap();
            assert!((0.0..=1.0).contains(&b.val_accuracy));
        }
    }

    // Mixed-precision candidates are present, with footprints and costs of their own: the f32
    // head stores float weights instead of int8 ones and their requantization, and runs f32 ops.
    for r in s
        .rows
        .iter()
        .filter(|r| r.candidate.precision == Precision::MixedHead)
    {
        let twin = s
            .rows
            .iter()
            .find(|t| {
                t.candidate.arch() == r.candidate.arch() && t.candidate.precision == Precision::Int8
            })
            .unwrap();
        let (m, i) = (
            r.footprint.as_ref().unwrap(),
            twin.footprint.as_ref().unwrap(),
        );
        assert_ne!(m.image, i.image);
        assert_ne!(m.flash_bound, i.flash_bound);
        assert_ne!(m.instructions, i.instructions);
        assert_eq!(m.macs, i.macs);
    }

    // The front is non-dominated and covers every trained candidate.
    let pt = |i: usize| {
        let r = &s.rows[i];
        let f = r.footprint.as_ref().unwrap();
        Point {
            accuracy: r.brief.as_ref().unwrap().val_accuracy as f64,
            latency: f.latency_ms,
            ram: f.ram_total as f64,
        }
    };
    let trained: Vec<usize> = (0..s.rows.len())
        .filter(|&i| s.rows[i].brief.is_some())
        .collect();
    assert!(!s.front.is_empty());
    for &i in &s.front {
        assert!(trained.contains(&i));
        for &j in &trained {
            assert!(!pt(j).dominates(&pt(i)), "{j} dominates front member {i}");
        }
    }
    for &j in trained.iter().filter(|j| !s.front.contains(j)) {
        assert!(s.front.iter().any(|&i| pt(i).dominates(&pt(j))));
    }

    // The winner: on the front, fits, and its trained image is the footprint predicted before
    // training, which is the compiled image's own numbers.
    let w = &s.winner;
    assert!(s.front.contains(&w.row));
    assert!(
        w.footprint.fits() && w.footprint_as_predicted,
        "{:?}",
        w.footprint
    );
    let built = s.built.as_ref().unwrap();
    assert_eq!(w.footprint.image, built.compiled.report.flash);
    assert_eq!(w.footprint.arena, built.compiled.report.arena_bytes as u64);
    let written = report::write(&s, &root.join("out")).unwrap();
    let image = std::fs::read(&written.image).unwrap();
    assert_eq!(image.len() as u64, w.footprint.image.total as u64);
    let aligned = AlignedBytes::new(&image);
    let model = Model::parse(aligned.as_slice()).unwrap();
    assert_eq!(model.arena_bytes() as u64, w.footprint.arena);
    let predicted = s.rows[w.row].footprint.as_ref().unwrap();
    assert_eq!(
        (predicted.arena, predicted.macs),
        (w.footprint.arena, w.footprint.macs)
    );
    println!(
        "winner {}: image val {:.3} test {:.3} (fp32 val {:.3})",
        s.rows[w.row].candidate.name, w.val_accuracy, w.test_accuracy, w.fp32_val_accuracy
    );

    // The chosen config is the trainer's: it parses as a model config, and the winner's model
    // folder loads as a classifier with the task's labels.
    let chosen: ModelSpec =
        serde_json::from_str(&std::fs::read_to_string(&written.chosen).unwrap()).unwrap();
    assert_eq!(chosen, w.spec);
    assert_eq!(chosen.context(), 12);
    let loaded = jobs::load_classifier(&written.model_dir, &jobs::device("cpu").unwrap()).unwrap();
    assert_eq!(loaded.labels, task.labels);
    assert_eq!(loaded.tokenizer.vocab_size(), chosen.vocab_size());
    assert!(std::fs::metadata(&written.plot).unwrap().len() > 1000);
    let _ = std::fs::remove_dir_all(&root);
}
