//! Data selection end to end: near-duplicate detection against brute-force Jaccard, the
//! leak-free split, bad input with and without `skip_bad`, mixtures, the card files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use edgeloop_trainer::corpus::{generate, CorpusConfig};
use edgeloop_trainer::data::minhash::{jaccard, shingles, LshIndex, LshParams, MinHasher};
use edgeloop_trainer::data::{read_jsonl, select, NearDupConfig, Record, SelectConfig, SourceSpec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("edgeloop-data-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Documents with planted near-duplicates at a spread of similarities: each base document
/// (a pretraining paragraph of the corpus) gets variants with 0..40% of its words replaced.
fn planted(seed: u64, bases: usize) -> Vec<String> {
    let c = generate(&CorpusConfig {
        n_labelled: 10,
        pretrain_bytes: bases * 400,
        n_instructions: 0,
        n_preferences: 0,
        ..CorpusConfig::lab(seed)
    });
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let vocab = [
        "lamp", "kitchen", "quickly", "timer", "blue", "garage", "seven", "now", "please", "fan",
    ];
    let mut docs = Vec::new();
    for base in c.pretrain.iter().filter(|d| d.len() > 150).take(bases) {
        docs.push(base.clone());
        for _ in 0..rng.gen_range(0..4) {
            let rate = rng.gen_range(0.0..0.4);
            let v: Vec<String> = base
                .split(' ')
                .map(|w| {
                    if rng.gen_bool(rate) {
                        vocab[rng.gen_range(0..vocab.len())].to_string()
                    } else {
                        w.to_string()
                    }
                })
                .collect();
            docs.push(v.join(" "));
        }
    }
    // Interleave so that duplicates are not adjacent.
    let mut order: Vec<usize> = (0..docs.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.gen_range(0..=i));
    }
    order.into_iter().map(|i| docs[i].clone()).collect()
}

#[test]
fn near_dup_recall_and_precision_against_brute_force() {
    let docs = planted(11, 300);
    let threshold = 0.8;
    let sets: Vec<Vec<u64>> = docs.iter().map(|d| shingles(d, 5)).collect();
    let mh = MinHasher::new(128, 5);
    let mut index = LshIndex::new(LshParams::optimal(threshold - 0.1, 128), 128);
    let (mut tp, mut fp, mut fn_, mut true_pairs) = (0, 0, 0, 0);
    for (i, s) in sets.iter().enumerate() {
        // Brute force: is document i a near-duplicate (J >= threshold) of an earlier one?
        let truth = (0..i).any(|j| jaccard(s, &sets[j]) >= threshold);
        true_pairs += (0..i)
            .filter(|&j| jaccard(s, &sets[j]) >= threshold)
            .count();
        let sig = mh.signature(s);
        let found = index
            .best_match(&sig)
            .is_some_and(|m| m.similarity >= threshold);
        match (truth, found) {
            (true, true) => tp += 1,
            (false, true) => fp += 1,
            (true, false) => fn_ += 1,
            _ => {}
        }
        index.insert(&sig, 0);
    }
    let recall = tp as f64 / (tp + fn_) as f64;
    let precision = tp as f64 / (tp + fp) as f64;
    println!(
        "{} docs, {true_pairs} pairs with J >= {threshold}: recall {recall:.3}, precision {precision:.3} (tp {tp}, fp {fp}, fn {fn_})",
        docs.len()
    );
    assert!(
        tp + fn_ >= 80,
        "the sample must contain enough near-duplicates"
    );
    assert!(recall >= 0.9, "recall {recall}");
    assert!(precision >= 0.9, "precision {precision}");
}

fn write_jsonl(path: &Path, recs: &[Record]) {
    let s: String = recs
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect();
    std::fs::write(path, s).unwrap();
}

fn outputs(dir: &Path) -> BTreeMap<&'static str, Vec<Record>> {
    ["train", "val", "test"]
        .into_iter()
        .map(|s| (s, read_jsonl(&dir.join(format!("{s}.jsonl"))).unwrap()))
        .collect()
}

#[test]
fn split_is_leak_free_and_deterministic() {
    let dir = tmp("leak");
    let docs = planted(12, 250);
    let recs: Vec<Record> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            Record::labelled(
                d.clone(),
                format!("l{}", i % 3),
                [("region".to_string(), ["us", "uk"][i % 2].to_string())],
            )
        })
        .collect();
    let input = dir.join("in.jsonl");
    write_jsonl(&input, &recs);
    // Keep near-duplicates: they must still never straddle two splits.
    let mut cfg = SelectConfig::new(vec![SourceSpec::file(&input)], dir.join("out"));
    cfg.near_dup = Some(NearDupConfig {
        remove: false,
        ..NearDupConfig::default()
    });
    cfg.split = edgeloop_trainer::data::SplitConfig {
        train: 0.5,
        val: 0.25,
        test: 0.25,
    };
    let report = select(&cfg).unwrap();
    let out = outputs(&dir.join("out"));
    let mut all: Vec<(usize, Vec<u64>)> = Vec::new();
    for (si, (_, recs)) in out.iter().enumerate() {
        for r in recs {
            all.push((si, shingles(&r.text, 5)));
            assert!(
                r.slice.contains_key("region"),
                "slice tags are carried through"
            );
        }
    }
    let mut cross = 0;
    let mut within = 0;
    for i in 0..all.len() {
        for j in i + 1..all.len() {
            if jaccard(&all[i].1, &all[j].1) >= 0.8 {
                if all[i].0 != all[j].0 {
                    cross += 1;
                } else {
                    within += 1;
                }
            }
        }
    }
    println!(
        "near-duplicate pairs kept within one split: {within}; across splits: {cross}; card: {:?}",
        report.card.near_dup
    );
    assert!(within > 50, "the test must keep near-duplicates ({within})");
    assert_eq!(cross, 0, "near-duplicate pairs across splits");
    // Deterministic: a second run gives the same files.
    let mut cfg2 = cfg.clone();
    cfg2.out_dir = dir.join("out2");
    select(&cfg2).unwrap();
    for s in ["train", "val", "test"] {
        assert_eq!(
            std::fs::read(dir.join(format!("out/{s}.jsonl"))).unwrap(),
            std::fs::read(dir.join(format!("out2/{s}.jsonl"))).unwrap()
        );
    }
    // With removal (the default), near-duplicates are counted as removed.
    let mut cfg3 = cfg.clone();
    cfg3.out_dir = dir.join("out3");
    cfg3.near_dup = Some(NearDupConfig::default());
    let r3 = select(&cfg3).unwrap();
    let nd = r3
        .card
        .steps
        .iter()
        .find(|s| s.name == "near_dedup")
        .unwrap();
    assert!(nd.removed > 50, "{nd:?}");
    assert_eq!(nd.input, nd.removed + nd.output);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_input_fails_with_file_and_line_or_is_counted() {
    let dir = tmp("bad");
    let input = dir.join("in.jsonl");
    std::fs::write(
        &input,
        b"{\"text\":\"turn on the kitchen light\",\"label\":\"on\"}\n{\"text\": broken\n{\"label\":\"off\"}\n\xff\xfe\n{\"text\":\"switch off the hall fan\",\"label\":\"off\"}\n",
    )
    .unwrap();
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let cfg = SelectConfig::new(vec![SourceSpec::file(&input)], dir.join("out"));
    let e = select(&cfg).unwrap_err().to_string();
    assert!(
        e.contains("in.jsonl:2") && e.contains("malformed JSON"),
        "{e}"
    );
    let cfg_e = SelectConfig::new(vec![SourceSpec::file(&empty)], dir.join("out"));
    let e = select(&cfg_e).unwrap_err().to_string();
    assert!(e.contains("empty.txt:0") && e.contains("no records"), "{e}");
    let missing = SelectConfig::new(
        vec![SourceSpec::file(dir.join("nope.jsonl"))],
        dir.join("out"),
    );
    assert!(select(&missing)
        .unwrap_err()
        .to_string()
        .contains("nope.jsonl"));

    let mut cfg = SelectConfig::new(
        vec![SourceSpec::file(&input), SourceSpec::file(&empty)],
        dir.join("out"),
    );
    cfg.skip_bad = true;
    let r = select(&cfg).unwrap();
    let b = &r.card.bad_records;
    assert_eq!(b.total, 4);
    assert_eq!(b.by_kind["malformed_json"], 1);
    assert_eq!(b.by_kind["missing_field"], 1);
    assert_eq!(b.by_kind["invalid_utf8"], 1);
    assert_eq!(b.by_kind["empty_file"], 1);
    assert!(
        b.examples
            .iter()
            .any(|e| e.contains("in.jsonl:4: invalid UTF-8")),
        "{:?}",
        b.examples
    );
    let read = &r.card.steps[0];
    assert_eq!((read.input, read.removed, read.output), (6, 4, 2));
    let total: u64 = r.card.splits.values().map(|s| s.records).sum();
    assert_eq!(total, 2);
    let md = std::fs::read_to_string(dir.join("out/card.md")).unwrap();
    assert!(md.contains("4 bad records skipped"), "{md}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn mixture_weights_csv_text_and_card_files() {
    let dir = tmp("mix");
    let a = dir.join("a.txt");
    let b = dir.join("b.csv");
    let mut ta = String::new();
    for i in 0..2000 {
        ta.push_str(&format!(
            "plain text document number {i} about the {} room\n",
            ["red", "green", "blue"][i % 3]
        ));
    }
    std::fs::write(&a, ta).unwrap();
    let mut tb = String::from("text,label,slice\n");
    for i in 0..1000 {
        tb.push_str(&format!(
            "\"csv row {i}, with a comma and mail x{i}@example.com\",lab{},region=uk\n",
            i % 2
        ));
    }
    std::fs::write(&b, tb).unwrap();
    let mut cfg = SelectConfig::new(
        vec![
            SourceSpec::parse(&format!("{}:0.5", a.display())).unwrap(),
            SourceSpec::parse(&format!("{}:0.5", b.display())).unwrap(),
        ],
        dir.join("out"),
    );
    cfg.near_dup = None; // the rows are near-identical on purpose; this test is about mixing
    let r = select(&cfg).unwrap();
    let s = &r.card.sources;
    assert!((s[0].sampling_rate - 0.5).abs() < 1e-9, "{s:?}");
    assert_eq!(s[1].sampling_rate, 1.0);
    assert!((s[0].achieved_share - 0.5).abs() < 0.05, "{s:?}");
    assert_eq!(r.card.pii.email, 1000);
    for f in [
        "card.json",
        "card.md",
        "length_hist.png",
        "train.jsonl",
        "val.jsonl",
        "test.jsonl",
    ] {
        let p = dir.join("out").join(f);
        assert!(
            std::fs::metadata(&p).map(|m| m.len() > 0).unwrap_or(false),
            "{f}"
        );
    }
    let png = std::fs::read(dir.join("out/length_hist.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("out/card.json")).unwrap()).unwrap();
    assert_eq!(card["steps"].as_array().unwrap().len(), r.card.steps.len());
    let out = outputs(&dir.join("out"));
    assert!(out
        .values()
        .flatten()
        .all(|r| !r.text.contains("@example.com")));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn selecting_the_generated_corpus_reports_a_baseline() {
    let dir = tmp("corpus");
    let c = generate(&CorpusConfig {
        n_labelled: 3000,
        pretrain_bytes: 1000,
        n_instructions: 0,
        n_preferences: 0,
        ..CorpusConfig::lab(21)
    });
    c.write(&dir.join("gen"), None).unwrap();
    let cfg = SelectConfig::new(
        vec![SourceSpec::file(dir.join("gen/labelled.jsonl"))],
        dir.join("sel"),
    );
    let r = select(&cfg).unwrap();
    let b = r
        .card
        .baseline
        .as_ref()
        .expect("labelled data gets a baseline");
    println!("{:?}", r.card.steps);
    println!("{b:?}");
    assert!(b.eval_accuracy > 0.5 && b.eval_accuracy < 0.97, "{b:?}");
    let train = &r.card.splits["train"];
    assert!(train.slices.keys().any(|k| k.starts_with("region=")));
    assert!(train.labels.len() >= 20);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn exact_duplicates_are_removed_after_normalization_and_pii_scrubbing() {
    let dir = tmp("exact");
    let input = dir.join("in.txt");
    // 40 distinct records; each appears again verbatim, as a compatibility-form twin that
    // NFKC folds to the same text ("ﬁ" → "fi", full-width digits), and with another e-mail
    // address that scrubbing replaces with the same placeholder.
    let mut lines = Vec::new();
    for i in 0..40 {
        let base = format!("please fix the fan number {i} in room {} today", i * 7);
        lines.push(base.clone());
        lines.push(base.clone());
        lines.push(base.replace("fix", "ﬁx").replace('1', "\u{ff11}"));
        lines.push(format!("{base} mail a{i}@example.com"));
        lines.push(format!("{base} mail b{i}@example.org"));
    }
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let mut cfg = SelectConfig::new(vec![SourceSpec::file(&input)], dir.join("out"));
    cfg.near_dup = None; // only the exact step decides here
    let r = select(&cfg).unwrap();
    let exact = r
        .card
        .steps
        .iter()
        .find(|s| s.name == "exact_dedup")
        .expect("exact_dedup step in the card");
    assert_eq!(
        (exact.input, exact.removed, exact.output),
        (200, 120, 80),
        "{exact:?}"
    );
    let kept: u64 = r.card.splits.values().map(|s| s.records).sum();
    assert_eq!(kept, 80);
    let texts: std::collections::HashSet<String> = outputs(&dir.join("out"))
        .into_values()
        .flatten()
        .map(|r| r.text)
        .collect();
    assert_eq!(texts.len(), 80, "kept records are unique");
    // With exact dedup off, every record is kept.
    let mut off = cfg.clone();
    off.exact_dedup = false;
    off.out_dir = dir.join("out_off");
    let r = select(&off).unwrap();
    assert!(r.card.steps.iter().all(|s| s.name != "exact_dedup"));
    assert_eq!(r.card.splits.values().map(|s| s.records).sum::<u64>(), 200);
    std::fs::remove_dir_all(&dir).unwrap();
}
