//! Differential tests against sacrebleu, rouge-score and nltk on random and tricky text.

use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::json;

use super::bleu::{corpus_bleu, sentence_bleu, BleuOptions};
use super::chrf::{corpus_chrf, sentence_chrf, ChrfOptions};
use super::porter::stem;
use super::rouge::{rouge, rouge_multi, RougeScore};
use super::tokenize_13a::tokenize_13a;
use crate::testing::{assert_close, python_reference, rng};

const WORDS: &[&str] = &[
    "the",
    "a",
    "cat",
    "cats",
    "sat",
    "on",
    "mat",
    "mats",
    "dog",
    "running",
    "runs",
    "ran",
    "happiness",
    "generalization",
    "relational",
    "conditional",
    "hopping",
    "filing",
    "agreed",
    "feed",
    "caresses",
    "ponies",
    "ties",
    "sky",
    "skies",
    "dying",
    "logically",
    "analogies",
    "fully",
    "probate",
    "rate",
    "cease",
    "controlling",
    "rolling",
    "sensibility",
    "electrical",
    "hopeful",
    "goodness",
    "adjustment",
    "adoption",
    "triplicate",
    "formalize",
    "Hello",
    "WORLD",
    "New-York",
    "don't",
    "it's",
    "e.g.",
    "U.S.",
    "3.14",
    "1,000",
    "2-3",
    "10.",
    ",5",
    "$5",
    "50%",
    "&amp;",
    "&lt;b&gt;",
    "&quot;",
    "<skipped>",
    "end.",
    "(paren)",
    "[bracket]",
    "{x}",
    "a/b",
    "C++",
    "@user",
    "#tag",
    "café",
    "naïve",
    "Zürich",
    "Straße",
    "İstanbul",
    "中文",
    "日本語",
    "Привет",
    "мир",
    "😀",
    "👍🏽",
    "ﬁne",
    "K",
    "x\u{00a0}y",
    "tab\there",
    "a\u{1c}b",
    "...",
    "!",
    "?",
    ";",
    ":",
    "--",
    "-",
    "'",
    "\"",
    "yyy",
    "syzygy",
    "by",
    "ayy",
    "quickly",
];

fn sentence(r: &mut impl Rng) -> String {
    if r.gen_bool(0.04) {
        return String::new();
    }
    let n = r.gen_range(1..14);
    let mut s = String::new();
    for i in 0..n {
        if i > 0 {
            s.push_str(match r.gen_range(0..20) {
                0 => "  ",
                1 => "\n",
                _ => " ",
            });
        }
        s.push_str(WORDS.choose(r).expect("non-empty"));
    }
    if r.gen_bool(0.3) {
        s.push_str(
            [".", " .", "!", "?", " ", "\n"]
                .choose(r)
                .expect("non-empty"),
        );
    }
    s
}

/// A hypothesis derived from a reference (so n-grams overlap) or drawn fresh.
fn hypothesis(r: &mut impl Rng, reference: &str) -> String {
    if r.gen_bool(0.2) {
        return sentence(r);
    }
    let mut toks: Vec<&str> = reference.split(' ').collect();
    for _ in 0..r.gen_range(0..4) {
        if toks.is_empty() {
            break;
        }
        let i = r.gen_range(0..toks.len());
        match r.gen_range(0..3) {
            0 => {
                toks.remove(i);
            }
            1 => toks.insert(i, WORDS.choose(r).expect("non-empty")),
            _ => {
                let j = r.gen_range(0..toks.len());
                toks.swap(i, j)
            }
        }
    }
    toks.join(" ")
}

#[test]
fn tokenize_13a_matches_sacrebleu() {
    let mut r = rng(11);
    let mut lines: Vec<String> = (0..300).map(|_| sentence(&mut r)).collect();
    lines.extend(
        [
            "",
            " ",
            "a-\nb",
            "x&amp;y&quot;",
            "1.5,2",
            "a.,b",
            "U.S.A.",
            "3-4-5",
            "end .",
            "\u{1c}a\u{1d}b\u{85}c\u{a0}d\u{2028}e",
            "a\u{200b}b",
        ]
        .map(String::from),
    );
    let want = python_reference(
        "eval_text.py",
        &json!({"task": "tokenize13a", "lines": lines}),
    );
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(
            tokenize_13a(line),
            want[i].as_str().expect("string"),
            "line {i}: {line:?}"
        );
    }
}

#[test]
fn porter_matches_nltk() {
    let mut r = rng(12);
    let mut words: Vec<String> = WORDS
        .iter()
        .map(|w| w.to_lowercase())
        .filter(|w| w.bytes().all(|b| b.is_ascii_lowercase()))
        .collect();
    words.extend(
        [
            "generously",
            "abatement",
            "abilities",
            "ability",
            "ableness",
            "abominably",
            "allied",
            "ied",
            "pies",
            "dies",
            "feed",
            "bleed",
            "agreed",
            "plastered",
            "motoring",
            "sing",
            "conflated",
            "troubled",
            "sized",
            "hopping",
            "tanned",
            "falling",
            "hissing",
            "fizzed",
            "failing",
            "filing",
            "happy",
            "sky",
            "toy",
            "relational",
            "conditional",
            "rational",
            "valenci",
            "hesitanci",
            "digitizer",
            "conformabli",
            "radicalli",
            "differentli",
            "vileli",
            "analogousli",
            "vietnamization",
            "predication",
            "operator",
            "feudalism",
            "decisiveness",
            "hopefulness",
            "callousness",
            "formaliti",
            "sensitiviti",
            "sensibiliti",
            "triplicate",
            "formative",
            "formalize",
            "electriciti",
            "electrical",
            "hopeful",
            "goodness",
            "revival",
            "allowance",
            "inference",
            "airliner",
            "gyroscopic",
            "adjustable",
            "defensible",
            "irritant",
            "replacement",
            "adjustment",
            "dependent",
            "adoption",
            "homologou",
            "communism",
            "activate",
            "angulariti",
            "homologous",
            "effective",
            "bowdlerize",
            "probate",
            "rate",
            "cease",
            "controll",
            "roll",
            "generalli",
            "fulli",
            "analogi",
            "yyyy",
            "ayyy",
            "syzygy",
            "eeeed",
            "innings",
            "news",
            "howe",
            "proceed",
            "exceed",
            "succeed",
            "skies",
            "dying",
            "lying",
            "tying",
            "abc123ing",
            "12345",
            "ies",
            "ying",
        ]
        .map(String::from),
    );
    // Random letter strings biased towards suffixes and 'y'.
    let suffixes = [
        "ing", "ed", "ies", "ied", "s", "sses", "ational", "ness", "ful", "alli", "logi", "ion",
        "ement", "ize", "y", "e", "ll", "bli", "iveness", "ate",
    ];
    for _ in 0..1500 {
        let len = r.gen_range(1..8);
        let mut w: String = (0..len)
            .map(|_| {
                let alphabet = b"aeiouybcdlmnrstzwx";
                alphabet[r.gen_range(0..alphabet.len())] as char
            })
            .collect();
        if r.gen_bool(0.7) {
            w.push_str(suffixes.choose(&mut r).expect("non-empty"));
        }
        words.push(w);
    }
    let want = python_reference("eval_text.py", &json!({"task": "porter", "words": words}));
    let mut bad = Vec::new();
    for (i, w) in words.iter().enumerate() {
        let got = stem(w);
        if got != want[i].as_str().expect("string") {
            bad.push(format!("{w}: got {got}, nltk {}", want[i]));
        }
    }
    assert!(
        bad.is_empty(),
        "{} of {} stems differ:\n{}",
        bad.len(),
        words.len(),
        bad.join("\n")
    );
}

fn corpora(seed: u64, n_cases: usize) -> Vec<(Vec<String>, Vec<Vec<String>>)> {
    let mut r = rng(seed);
    (0..n_cases)
        .map(|case| {
            let n = if case % 5 == 0 { 1 } else { r.gen_range(2..12) };
            let mut hyps = Vec::new();
            let mut refs = Vec::new();
            for _ in 0..n {
                let k = if case % 3 == 0 { r.gen_range(1..4) } else { 1 };
                let rs: Vec<String> = (0..k).map(|_| sentence(&mut r)).collect();
                hyps.push(hypothesis(&mut r, &rs[0]));
                refs.push(rs);
            }
            (hyps, refs)
        })
        .collect()
}

#[test]
fn bleu_matches_sacrebleu() {
    let mut cases = corpora(13, 150);
    // Tricky fixed cases: empty hypothesis, empty reference, identical, no overlap, ties in
    // closest reference length, short sentences below order 4.
    for (h, rs) in [
        ("", vec!["a b c"]),
        ("a b c", vec![""]),
        ("", vec![""]),
        ("the cat sat on the mat", vec!["the cat sat on the mat"]),
        ("x y z", vec!["a b c"]),
        ("a b c d", vec!["a b c", "a b c d e"]),
        ("a b", vec!["a b"]),
        ("the the the the", vec!["the cat", "the dog the"]),
    ] {
        cases.push((
            vec![h.to_string()],
            vec![rs.iter().map(|s| s.to_string()).collect()],
        ));
    }
    let input: Vec<_> = cases
        .iter()
        .map(|(h, r)| json!({"hyps": h, "refs": r}))
        .collect();
    let want = python_reference("eval_text.py", &json!({"task": "bleu", "cases": input}));
    for (i, (hyps, refs)) in cases.iter().enumerate() {
        let ctx = format!("case {i}: {hyps:?} vs {refs:?}");
        let got = corpus_bleu(hyps, refs, &BleuOptions::default()).unwrap();
        let w = &want[i]["corpus"];
        assert_close(got.score, &w["score"], 1e-9, &format!("{ctx} corpus BLEU"));
        assert_close(got.bp, &w["bp"], 1e-9, &format!("{ctx} BP"));
        assert_eq!(Some(got.sys_len), w["sys_len"].as_u64(), "{ctx} sys_len");
        assert_eq!(Some(got.ref_len), w["ref_len"].as_u64(), "{ctx} ref_len");
        for n in 0..4 {
            assert_eq!(
                Some(got.counts[n]),
                w["counts"][n].as_u64(),
                "{ctx} counts[{n}]"
            );
            assert_eq!(
                Some(got.totals[n]),
                w["totals"][n].as_u64(),
                "{ctx} totals[{n}]"
            );
        }
        for (j, (h, r)) in hyps.iter().zip(refs).enumerate() {
            let s = sentence_bleu(h, r).unwrap();
            assert_close(
                s.score,
                &want[i]["sentence"][j],
                1e-9,
                &format!("{ctx} sentence {j}"),
            );
        }
    }
}

#[test]
fn chrf_matches_sacrebleu() {
    let mut cases = corpora(14, 120);
    for (h, rs) in [
        ("", vec!["abc"]),
        ("abc", vec![""]),
        ("", vec![""]),
        ("a", vec!["a"]),
        ("Hello, world!", vec!["Hello world!", "hello, World"]),
    ] {
        cases.push((
            vec![h.to_string()],
            vec![rs.iter().map(|s| s.to_string()).collect()],
        ));
    }
    let input: Vec<_> = cases
        .iter()
        .map(|(h, r)| json!({"hyps": h, "refs": r}))
        .collect();
    let want = python_reference("eval_text.py", &json!({"task": "chrf", "cases": input}));
    let pp = ChrfOptions {
        word_order: 2,
        ..ChrfOptions::default()
    };
    for (i, (hyps, refs)) in cases.iter().enumerate() {
        let ctx = format!("case {i}: {hyps:?} vs {refs:?}");
        for (name, opts) in [("chrf", ChrfOptions::default()), ("chrfpp", pp)] {
            let got = corpus_chrf(hyps, refs, &opts).unwrap();
            assert_close(got, &want[i][name], 1e-9, &format!("{ctx} {name}"));
            for (j, (h, r)) in hyps.iter().zip(refs).enumerate() {
                let s = sentence_chrf(h, r, &opts).unwrap();
                assert_close(
                    s,
                    &want[i][format!("{name}_sentence")][j],
                    1e-9,
                    &format!("{ctx} {name} sentence {j}"),
                );
            }
        }
    }
}

#[test]
fn rouge_matches_rouge_score() {
    let mut r = rng(15);
    let mut cases: Vec<(Vec<String>, String, bool)> = Vec::new();
    for i in 0..400 {
        let k = if i % 4 == 0 { r.gen_range(2..4) } else { 1 };
        let targets: Vec<String> = (0..k).map(|_| sentence(&mut r)).collect();
        let pred = hypothesis(&mut r, &targets[0]);
        cases.push((targets, pred, i % 2 == 0));
    }
    for (t, p) in [
        ("", ""),
        ("", "a"),
        ("a", ""),
        ("中文 日本語", "中文"),
        ("café naïve", "caf na ve"),
        ("one\n\ntwo three\nfour", "two\nthree one four"),
        ("the cat\nthe cat the", "the the cat\ncat"),
        ("İstanbul Kelvin", "i stanbul kelvin"),
    ] {
        for stem in [false, true] {
            cases.push((vec![t.to_string()], p.to_string(), stem));
        }
    }
    let input: Vec<_> = cases
        .iter()
        .map(|(t, p, s)| json!({"targets": t, "prediction": p, "stem": s}))
        .collect();
    let want = python_reference("eval_text.py", &json!({"task": "rouge", "cases": input}));
    for (i, (targets, pred, stem)) in cases.iter().enumerate() {
        let ctx = format!("case {i} (stem={stem}): {targets:?} vs {pred:?}");
        let got = if targets.len() == 1 {
            rouge(&targets[0], pred, *stem)
        } else {
            rouge_multi(targets, pred, *stem).unwrap()
        };
        let check = |name: &str, s: RougeScore| {
            let w = &want[i][name];
            assert_close(s.precision, &w[0], 1e-9, &format!("{ctx} {name} P"));
            assert_close(s.recall, &w[1], 1e-9, &format!("{ctx} {name} R"));
            assert_close(s.fmeasure, &w[2], 1e-9, &format!("{ctx} {name} F"));
        };
        check("rouge1", got.rouge1);
        check("rouge2", got.rouge2);
        check("rougeL", got.rouge_l);
        check("rougeLsum", got.rouge_lsum);
    }
}

#[test]
fn bleu_rejects_misaligned_input() {
    let h = vec!["a".to_string()];
    assert!(corpus_bleu(&h, &[], &BleuOptions::default()).is_err());
    assert!(corpus_bleu(&h, &[vec![]], &BleuOptions::default()).is_err());
    assert!(corpus_chrf(&h, &[vec![]], &ChrfOptions::default()).is_err());
}
