//! The embedded default corpus: a deterministic, seeded generator of smart-home commands and
//! device status messages — the demo's edge task.
//!
//! 27 intents ([`intents::INTENTS`]) over devices, rooms, numbers, times and durations, with
//! plain, terse, polite, conversational and indirect phrasings, regional vocabulary, typos,
//! negations and corrections. Each labelled example carries slice tags `region`
//! (`us`/`uk`/`in`/`au`) and `style`. The same generator yields pretraining text (utterances,
//! device logs, dialogues), instruction pairs (prompt → response naming device and room) and
//! preference pairs (the chosen response names the right device and room; the rejected one a
//! wrong device, room, value or action).
//!
//! The [`Variant::Field`] variant is shifted: new phrasings, new device and room names, a
//! different label mix (more status reports and temperature complaints), many more indirect
//! requests and Indian-English speakers (both rare in the lab data), and more typos.
//!
//! Public API: [`generate`]`(&`[`CorpusConfig`]`) -> `[`Corpus`]; [`Corpus::write`] writes
//! `labelled.jsonl`, `pretrain.txt`, `instructions.jsonl`, `preferences.jsonl` and a card;
//! [`baseline_reports`] measures the bag-of-words baseline.
//!
//! ```
//! use edgeloop_trainer::corpus::{generate, CorpusConfig};
//! let c = generate(&CorpusConfig { n_labelled: 200, pretrain_bytes: 10_000, ..CorpusConfig::lab(7) });
//! assert_eq!(c.labelled.len(), 200);
//! assert_eq!(c, generate(&CorpusConfig { n_labelled: 200, pretrain_bytes: 10_000, ..CorpusConfig::lab(7) }));
//! ```

pub mod intents;
pub mod lexicon;

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::data::baseline::{self, BaselineConfig, BaselineReport};
use crate::data::error::{DataError, Result};
use crate::data::Record;
use intents::{IntentSpec, Target, INTENTS};
use lexicon::{Category, Device, DEVICES};

/// Lab (training-time) data or the shifted field data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// The distribution the first model is trained on.
    Lab,
    /// The shifted distribution the deployed fleet sees.
    Field,
}

/// Generator settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorpusConfig {
    /// Seed; the same config always gives the same corpus.
    pub seed: u64,
    /// Which distribution.
    pub variant: Variant,
    /// Labelled examples.
    pub n_labelled: usize,
    /// Minimum bytes of pretraining text.
    pub pretrain_bytes: usize,
    /// Instruction (prompt/response) pairs.
    pub n_instructions: usize,
    /// Preference pairs.
    pub n_preferences: usize,
}

impl CorpusConfig {
    /// The default lab corpus: 12,000 labelled examples, ≥ 1.2 MB of pretraining text.
    pub fn lab(seed: u64) -> Self {
        CorpusConfig {
            seed,
            variant: Variant::Lab,
            n_labelled: 12_000,
            pretrain_bytes: 1_200_000,
            n_instructions: 4_000,
            n_preferences: 2_000,
        }
    }

    /// The default field corpus: 4,000 labelled examples, ≥ 300 kB of text.
    pub fn field(seed: u64) -> Self {
        CorpusConfig {
            seed,
            variant: Variant::Field,
            n_labelled: 4_000,
            pretrain_bytes: 300_000,
            n_instructions: 1_000,
            n_preferences: 1_000,
        }
    }
}

/// A prompt and the assistant's response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstructionPair {
    /// User utterance.
    pub prompt: String,
    /// Response naming the action, device and room.
    pub response: String,
    /// Intent label.
    pub intent: String,
}

/// A prompt with a preferred and a dispreferred response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreferencePair {
    /// User utterance.
    pub prompt: String,
    /// Names the right device, room and value.
    pub chosen: String,
    /// Names a wrong device, room, value or action.
    pub rejected: String,
    /// Intent label.
    pub intent: String,
}

/// A generated corpus.
#[derive(Debug, Clone, PartialEq)]
pub struct Corpus {
    /// The settings it came from.
    pub config: CorpusConfig,
    /// Labelled examples (unique texts), with `region` and `style` slice tags.
    pub labelled: Vec<Record>,
    /// Pretraining documents (utterance lists, device logs, dialogues).
    pub pretrain: Vec<String>,
    /// Instruction pairs.
    pub instructions: Vec<InstructionPair>,
    /// Preference pairs.
    pub preferences: Vec<PreferencePair>,
}

/// The intent labels, in a fixed order (the classifier's class order).
pub fn labels() -> Vec<&'static str> {
    intents::intent_names()
}

#[derive(Debug, Clone)]
struct Utterance {
    text: String,
    intent: &'static IntentSpec,
    region: &'static str,
    style: &'static str,
    device: Option<Device>,
    room: Option<String>,
    values: BTreeMap<&'static str, String>,
}

struct Gen {
    rng: ChaCha8Rng,
    variant: Variant,
}

fn weighted<'a, T>(rng: &mut ChaCha8Rng, items: &'a [(T, f64)]) -> &'a T {
    let total: f64 = items.iter().map(|i| i.1).sum();
    let mut x = rng.gen::<f64>() * total;
    for (v, w) in items {
        if x < *w {
            return v;
        }
        x -= w;
    }
    &items[items.len() - 1].0
}

fn fill(template: &str, vals: &BTreeMap<&'static str, String>) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        match rest[start..].find('}') {
            Some(end) => {
                let key = &rest[start + 1..start + end];
                match vals.get(key) {
                    Some(v) => out.push_str(v),
                    None => out.push_str(&rest[start..start + end + 1]),
                }
                rest = &rest[start + end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

// Removing the derefs that clippy flags here breaks the inference of `T` in `pick`/`weighted`.
#[allow(clippy::explicit_auto_deref)]
impl Gen {
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.rng.gen_range(0..items.len())]
    }

    fn field(&self) -> bool {
        self.variant == Variant::Field
    }

    fn intent(&mut self) -> &'static IntentSpec {
        let field = self.field();
        let w: Vec<(usize, f64)> = INTENTS
            .iter()
            .enumerate()
            .map(|(i, s)| (i, if field { s.field_weight } else { s.lab_weight }))
            .collect();
        &INTENTS[*weighted(&mut self.rng, &w)]
    }

    fn region(&mut self) -> &'static str {
        let w: &[(&str, f64)] = if self.field() {
            &[("us", 0.30), ("uk", 0.20), ("in", 0.35), ("au", 0.15)]
        } else {
            &[("us", 0.55), ("uk", 0.25), ("in", 0.04), ("au", 0.16)]
        };
        *weighted(&mut self.rng, w)
    }

    fn style(&mut self, spec: &IntentSpec) -> &'static str {
        if spec.report {
            return if self.rng.gen_bool(0.25) {
                "terse"
            } else {
                "report"
            };
        }
        let w: &[(&str, f64)] = if self.field() {
            &[
                ("plain", 0.25),
                ("polite", 0.15),
                ("conversational", 0.15),
                ("terse", 0.13),
                ("indirect", 0.32),
            ]
        } else {
            &[
                ("plain", 0.38),
                ("polite", 0.25),
                ("conversational", 0.2),
                ("terse", 0.13),
                ("indirect", 0.04),
            ]
        };
        *weighted(&mut self.rng, w)
    }

    fn device(&mut self, target: Target, pin: Option<Category>, region: &str) -> Option<Device> {
        if target == Target::None {
            return None;
        }
        let ok = |d: &&Device| {
            target.accepts(d.category)
                && pin.is_none_or(|c| c == d.category)
                && (d.regions.is_empty() || d.regions.contains(&region))
        };
        let lab: Vec<Device> = DEVICES
            .iter()
            .filter(|d| !d.field_only)
            .filter(ok)
            .copied()
            .collect();
        let new: Vec<Device> = DEVICES
            .iter()
            .filter(|d| d.field_only)
            .filter(ok)
            .copied()
            .collect();
        if self.field() && !new.is_empty() && self.rng.gen_bool(0.4) {
            return Some(*self.pick(&new));
        }
        if lab.is_empty() {
            return new.first().copied();
        }
        Some(*self.pick(&lab))
    }

    fn room(&mut self, region: &str) -> String {
        if self.field() && self.rng.gen_bool(0.3) {
            return self.pick(lexicon::FIELD_ROOMS).to_string();
        }
        let regional: Vec<&str> = lexicon::REGIONAL_ROOMS
            .iter()
            .filter(|(r, _)| *r == region)
            .map(|(_, n)| *n)
            .collect();
        if !regional.is_empty() && self.rng.gen_bool(0.3) {
            return self.pick(&regional).to_string();
        }
        self.pick(lexicon::ROOMS).to_string()
    }

    fn typo(&mut self, word: &str) -> String {
        let mut c: Vec<char> = word.chars().collect();
        let i = self.rng.gen_range(0..c.len() - 1);
        match self.rng.gen_range(0..3) {
            0 => c.swap(i, i + 1),
            1 => {
                c.remove(i);
            }
            _ => {
                let x = c[i];
                c.insert(i, x);
            }
        }
        c.into_iter().collect()
    }

    fn utterance(&mut self) -> Utterance {
        let intent = self.intent();
        let region = self.region();
        let style = self.style(intent);
        let field = self.field();
        // Template choice.
        let mut pin = None;
        let template: &str = if style == "indirect" && !intent.indirect.is_empty() {
            let (p, t) = *self.pick(intent.indirect);
            pin = p;
            t
        } else if style == "terse" {
            *self.pick(intent.terse)
        } else {
            let hard_p = if field { 0.22 } else { 0.16 };
            if self.rng.gen_bool(hard_p) {
                *self.pick(intent.hard)
            } else if field && self.rng.gen_bool(0.45) {
                *self.pick(intent.field)
            } else {
                *self.pick(intent.base)
            }
        };
        let style = if style == "indirect" && intent.indirect.is_empty() {
            "plain"
        } else {
            style
        };
        let device = self.device(intent.target, pin, region);
        let room = self.room(region);
        let mut values: BTreeMap<&'static str, String> = BTreeMap::new();
        if let Some(d) = &device {
            values.insert("d", d.name.to_string());
        }
        values.insert("r", room.clone());
        let p = self.pick(lexicon::PERCENTS).to_string();
        let mut p2 = self.pick(lexicon::PERCENTS).to_string();
        while p2 == p {
            p2 = self.pick(lexicon::PERCENTS).to_string();
        }
        let t = self.pick(lexicon::TEMPERATURES).to_string();
        let mut t2 = self.pick(lexicon::TEMPERATURES).to_string();
        while t2 == t {
            t2 = self.pick(lexicon::TEMPERATURES).to_string();
        }
        values.insert("p", p);
        values.insert("p2", p2);
        values.insert("t", t);
        values.insert("t2", t2);
        values.insert("time", self.pick(lexicon::TIMES).to_string());
        values.insert("dur", self.pick(lexicon::DURATIONS).to_string());
        let room_used = template.contains("{r}");
        let mut core = fill(template, &values);
        // Wrappers.
        core = match style {
            "polite" => {
                let w: &str = *self.pick(lexicon::polite_wrappers(region));
                fill(w, &[("c", core)].into_iter().collect())
            }
            "conversational" => {
                let w: &str = if field && self.rng.gen_bool(0.3) {
                    *self.pick(lexicon::FIELD_CONVERSATIONAL)
                } else {
                    *self.pick(lexicon::CONVERSATIONAL)
                };
                fill(w, &[("c", core)].into_iter().collect())
            }
            _ => core,
        };
        // Typos on alphabetic words of 4+ letters.
        let rate = if field { 0.05 } else { 0.02 };
        let words: Vec<String> = core
            .split(' ')
            .map(|w| {
                if w.len() >= 4
                    && w.chars().all(|c| c.is_ascii_alphabetic())
                    && self.rng.gen_bool(rate)
                {
                    self.typo(w)
                } else {
                    w.to_string()
                }
            })
            .collect();
        let mut text = words.join(" ");
        if intent.question {
            if self.rng.gen_bool(0.5) {
                text.push('?');
            }
        } else if self.rng.gen_bool(if intent.report { 0.3 } else { 0.12 }) {
            text.push('.');
        }
        if self.rng.gen_bool(0.3) {
            let mut c = text.chars();
            if let Some(f) = c.next() {
                text = f.to_uppercase().chain(c).collect();
            }
        }
        Utterance {
            text,
            intent,
            region,
            style,
            device,
            room: room_used.then_some(room),
            values,
        }
    }

    fn response(&self, u: &Utterance) -> String {
        let mut v = u.values.clone();
        v.insert(
            "loc",
            u.room
                .as_ref()
                .map(|r| format!(" in the {r}"))
                .unwrap_or_default(),
        );
        fill(u.intent.response, &v)
    }

    fn rejected(&mut self, u: &Utterance) -> String {
        let mut w = u.clone();
        let can_room = u.room.is_some() && u.intent.response.contains("{loc}");
        let can_dev = u.device.is_some() && u.intent.response.contains("{d}");
        let choice = self.rng.gen_range(0..2);
        if can_room && (choice == 0 || !can_dev) {
            let cur = u.room.clone().unwrap_or_default();
            let mut r = self.room(u.region);
            while r == cur {
                r = self.room(u.region);
            }
            w.room = Some(r);
        } else if can_dev {
            let cur = u.device.map(|d| d.name).unwrap_or("");
            let mut tries = 0;
            loop {
                let d = self.device(u.intent.target, None, u.region);
                tries += 1;
                if let Some(d) = d {
                    if d.name != cur {
                        w.values.insert("d", d.name.to_string());
                        break;
                    }
                }
                if tries > 50 {
                    w.values.insert("d", "doorbell".to_string());
                    break;
                }
            }
        } else {
            for key in ["dur", "time", "p", "t"] {
                if u.intent.response.contains(&format!("{{{key}}}")) {
                    let pool: &[&str] = match key {
                        "dur" => lexicon::DURATIONS,
                        "time" => lexicon::TIMES,
                        "p" => lexicon::PERCENTS,
                        _ => lexicon::TEMPERATURES,
                    };
                    let cur = u.values.get(key).cloned().unwrap_or_default();
                    let mut x = self.pick(pool).to_string();
                    while x == cur {
                        x = self.pick(pool).to_string();
                    }
                    w.values.insert(key, x);
                    return self.response(&w);
                }
            }
            // No slot to corrupt: answer with a different intent's action.
            let other = INTENTS
                .iter()
                .find(|i| i.target == Target::None && i.name != u.intent.name)
                .unwrap_or(&INTENTS[0]);
            w.intent = other;
        }
        self.response(&w)
    }

    fn log_line(&mut self) -> String {
        let d = self.pick(DEVICES);
        let region = self.region();
        let room = self.room(region);
        let time = self.pick(lexicon::TIMES);
        let p = self.pick(lexicon::PERCENTS);
        let t = self.pick(lexicon::TEMPERATURES);
        let events: Vec<String> = match d.category {
            Category::Door => vec![
                "locked".into(),
                "unlocked".into(),
                "opened".into(),
                "left open".into(),
            ],
            Category::Cover => vec!["opened".into(), "closed".into(), format!("at {p}%")],
            Category::Vacuum => vec![
                "started cleaning".into(),
                "docked".into(),
                "stuck".into(),
                "bin full".into(),
            ],
            Category::Thermostat | Category::Heater | Category::Cooling => {
                vec![
                    format!("set to {t} degrees"),
                    format!("reading {t} degrees"),
                    "switched on".into(),
                    "switched off".into(),
                ]
            }
            _ => vec![
                "switched on".into(),
                "switched off".into(),
                format!("set to {p}%"),
                "offline".into(),
                "back online".into(),
            ],
        };
        let e = self.pick(&events).clone();
        format!("[{time}] {room} {}: {e}", d.name)
    }
}

/// Generates a corpus; deterministic in `cfg`.
pub fn generate(cfg: &CorpusConfig) -> Corpus {
    let variant_salt: u64 = match cfg.variant {
        Variant::Lab => 0x1ab0_1ab0,
        Variant::Field => 0xf1e1_df1e,
    };
    let mut g = Gen {
        rng: ChaCha8Rng::seed_from_u64(cfg.seed ^ variant_salt),
        variant: cfg.variant,
    };
    let mut seen = HashSet::new();
    let mut labelled = Vec::with_capacity(cfg.n_labelled);
    while labelled.len() < cfg.n_labelled {
        let mut u = g.utterance();
        let mut tries = 0;
        while !seen.insert(u.text.clone()) && tries < 50 {
            u = g.utterance();
            tries += 1;
        }
        labelled.push(Record::labelled(
            u.text,
            u.intent.name,
            [
                ("region".to_string(), u.region.to_string()),
                ("style".to_string(), u.style.to_string()),
            ],
        ));
    }
    let mut pretrain = Vec::new();
    let mut bytes = 0usize;
    while bytes < cfg.pretrain_bytes {
        let doc = match g.rng.gen_range(0..3) {
            0 => {
                let n = g.rng.gen_range(4..11);
                (0..n)
                    .map(|_| g.utterance().text)
                    .collect::<Vec<_>>()
                    .join("\n")
            }
            1 => {
                let n = g.rng.gen_range(5..13);
                (0..n).map(|_| g.log_line()).collect::<Vec<_>>().join("\n")
            }
            _ => {
                let n = g.rng.gen_range(2..5);
                (0..n)
                    .map(|_| {
                        let u = g.utterance();
                        format!("user: {}\nassistant: {}", u.text, g.response(&u))
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        };
        bytes += doc.len() + 2;
        pretrain.push(doc);
    }
    let instructions = (0..cfg.n_instructions)
        .map(|_| {
            let u = g.utterance();
            InstructionPair {
                response: g.response(&u),
                prompt: u.text,
                intent: u.intent.name.to_string(),
            }
        })
        .collect();
    let preferences = (0..cfg.n_preferences)
        .map(|_| {
            let u = g.utterance();
            let chosen = g.response(&u);
            let mut rejected = g.rejected(&u);
            let mut tries = 0;
            while rejected == chosen && tries < 20 {
                rejected = g.rejected(&u);
                tries += 1;
            }
            PreferencePair {
                prompt: u.text,
                chosen,
                rejected,
                intent: u.intent.name.to_string(),
            }
        })
        .collect();
    Corpus {
        config: cfg.clone(),
        labelled,
        pretrain,
        instructions,
        preferences,
    }
}

/// Bag-of-words baselines for the card: in-distribution (80/20 split by text hash) on
/// `corpus`, and, when `reference` (the lab corpus) is given, trained on it and evaluated on
/// `corpus` (the field shift).
pub fn baseline_reports(
    corpus: &Corpus,
    reference: Option<&Corpus>,
    seed: u64,
) -> Vec<BaselineReport> {
    type Pairs = Vec<(String, String)>;
    let split = |c: &Corpus| -> (Pairs, Pairs) {
        let mut tr = Vec::new();
        let mut te = Vec::new();
        for r in &c.labelled {
            let pair = (r.text.clone(), r.label.clone().unwrap_or_default());
            if xxh3_64(r.text.as_bytes()).is_multiple_of(5) {
                te.push(pair);
            } else {
                tr.push(pair);
            }
        }
        (tr, te)
    };
    let refs = |v: &[(String, String)]| -> Vec<(String, String)> { v.to_vec() };
    fn as_ref(v: &[(String, String)]) -> Vec<(&str, &str)> {
        v.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
    }
    let cfg = BaselineConfig {
        seed,
        ..BaselineConfig::default()
    };
    let name = match corpus.config.variant {
        Variant::Lab => "lab",
        Variant::Field => "field",
    };
    let (tr, te) = split(corpus);
    let mut out = vec![baseline::evaluate(
        format!(
            "{name}: trained on 80% of {name}, evaluated on the other 20% (split by text hash)"
        ),
        &as_ref(&tr),
        &as_ref(&te),
        &cfg,
    )];
    if let Some(r) = reference {
        let (rtr, _) = split(r);
        let all: Vec<(String, String)> = refs(&tr).into_iter().chain(te).collect();
        out.push(baseline::evaluate(
            format!("lab → {name}: trained on 80% of lab, evaluated on all of {name}"),
            &as_ref(&rtr),
            &as_ref(&all),
            &cfg,
        ));
    }
    out
}

/// The corpus card (`corpus_card.json`, `corpus_card.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorpusCard {
    /// Settings.
    pub config: CorpusConfig,
    /// Labelled examples.
    pub labelled: usize,
    /// Pretraining documents and bytes.
    pub pretrain_documents: usize,
    /// Pretraining bytes (UTF-8, as written with blank-line separators).
    pub pretrain_bytes: usize,
    /// Instruction pairs.
    pub instructions: usize,
    /// Preference pairs.
    pub preferences: usize,
    /// Examples per label.
    pub labels: BTreeMap<String, usize>,
    /// Examples per slice tag value.
    pub slices: BTreeMap<String, usize>,
    /// Bag-of-words baselines.
    pub baselines: Vec<BaselineReport>,
    /// Files written.
    pub files: Vec<String>,
}

impl CorpusCard {
    /// Markdown rendering.
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let v = match self.config.variant {
            Variant::Lab => "lab",
            Variant::Field => "field",
        };
        let _ = writeln!(
            s,
            "# Corpus card: smart-home commands ({v} variant, seed {})\n",
            self.config.seed
        );
        let _ = writeln!(
            s,
            "Generated by `edgeloop-trainer` `corpus::generate` — deterministic in the seed.\n\n- {} labelled examples, {} intents\n- {} pretraining documents, {} bytes\n- {} instruction pairs, {} preference pairs\n",
            self.labelled,
            self.labels.len(),
            self.pretrain_documents,
            self.pretrain_bytes,
            self.instructions,
            self.preferences
        );
        s.push_str("## Bag-of-words baseline\n\nLogistic regression on word presence. It must stay clearly below 100%: queries and status reports share their words, negations and corrections mirror each other, indirect requests name no action.\n\n| setting | train acc | eval acc | majority | eval examples |\n|---|---:|---:|---:|---:|\n");
        for b in &self.baselines {
            let _ = writeln!(
                s,
                "| {} | {:.1}% | **{:.1}%** | {:.1}% | {} |",
                b.description,
                100.0 * b.train_accuracy,
                100.0 * b.eval_accuracy,
                100.0 * b.majority_accuracy,
                b.eval_examples
            );
        }
        s.push_str("\n## Labels\n\n| label | examples |\n|---|---:|\n");
        for (l, c) in &self.labels {
            let _ = writeln!(s, "| {l} | {c} |");
        }
        s.push_str("\n## Slices\n\n| slice | examples |\n|---|---:|\n");
        for (l, c) in &self.slices {
            let _ = writeln!(s, "| {l} | {c} |");
        }
        s.push_str("\n## Files\n\n");
        for f in &self.files {
            let _ = writeln!(s, "- `{f}`");
        }
        s
    }
}

/// Paths written by [`Corpus::write`].
#[derive(Debug, Clone, PartialEq)]
pub struct CorpusFiles {
    /// `labelled.jsonl`: `{text, label, slice: {region, style}}` per line.
    pub labelled: PathBuf,
    /// `pretrain.txt`: documents separated by blank lines.
    pub pretrain: PathBuf,
    /// `instructions.jsonl`: `{prompt, response, intent}`.
    pub instructions: PathBuf,
    /// `preferences.jsonl`: `{prompt, chosen, rejected, intent}`.
    pub preferences: PathBuf,
    /// `corpus_card.json`.
    pub card_json: PathBuf,
    /// `corpus_card.md`.
    pub card_md: PathBuf,
}

fn write_lines<T: Serialize>(path: &Path, items: &[T]) -> Result<()> {
    let f = std::fs::File::create(path).map_err(|e| DataError::io(path, e))?;
    let mut w = std::io::BufWriter::new(f);
    for it in items {
        let line = serde_json::to_string(it).map_err(|e| DataError::Report {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        writeln!(w, "{line}").map_err(|e| DataError::io(path, e))?;
    }
    w.flush().map_err(|e| DataError::io(path, e))
}

impl Corpus {
    /// The card, with baselines (pass the lab corpus as `reference` for a field corpus).
    pub fn card(&self, reference: Option<&Corpus>) -> CorpusCard {
        let mut labels = BTreeMap::new();
        let mut slices = BTreeMap::new();
        for r in &self.labelled {
            *labels
                .entry(r.label.clone().unwrap_or_default())
                .or_insert(0) += 1;
            for (k, v) in &r.slice {
                *slices.entry(format!("{k}={v}")).or_insert(0) += 1;
            }
        }
        CorpusCard {
            config: self.config.clone(),
            labelled: self.labelled.len(),
            pretrain_documents: self.pretrain.len(),
            pretrain_bytes: self.pretrain.iter().map(|d| d.len() + 2).sum(),
            instructions: self.instructions.len(),
            preferences: self.preferences.len(),
            labels,
            slices,
            baselines: baseline_reports(self, reference, self.config.seed),
            files: vec![
                "labelled.jsonl".into(),
                "pretrain.txt".into(),
                "instructions.jsonl".into(),
                "preferences.jsonl".into(),
            ],
        }
    }

    /// Writes the corpus and its card into `dir` (created).
    pub fn write(
        &self,
        dir: &Path,
        reference: Option<&Corpus>,
    ) -> Result<(CorpusFiles, CorpusCard)> {
        std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
        let files = CorpusFiles {
            labelled: dir.join("labelled.jsonl"),
            pretrain: dir.join("pretrain.txt"),
            instructions: dir.join("instructions.jsonl"),
            preferences: dir.join("preferences.jsonl"),
            card_json: dir.join("corpus_card.json"),
            card_md: dir.join("corpus_card.md"),
        };
        write_lines(&files.labelled, &self.labelled)?;
        write_lines(&files.instructions, &self.instructions)?;
        write_lines(&files.preferences, &self.preferences)?;
        let mut text = String::new();
        for d in &self.pretrain {
            text.push_str(d);
            text.push_str("\n\n");
        }
        std::fs::write(&files.pretrain, text).map_err(|e| DataError::io(&files.pretrain, e))?;
        let card = self.card(reference);
        let json = serde_json::to_string_pretty(&card).map_err(|e| DataError::Report {
            path: files.card_json.clone(),
            message: e.to_string(),
        })?;
        std::fs::write(&files.card_json, json).map_err(|e| DataError::io(&files.card_json, e))?;
        std::fs::write(&files.card_md, card.to_markdown())
            .map_err(|e| DataError::io(&files.card_md, e))?;
        Ok((files, card))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(variant: Variant, seed: u64) -> CorpusConfig {
        CorpusConfig {
            seed,
            variant,
            n_labelled: 3000,
            pretrain_bytes: 50_000,
            n_instructions: 200,
            n_preferences: 200,
        }
    }

    #[test]
    fn deterministic_and_seed_dependent() {
        let a = generate(&small(Variant::Lab, 1));
        assert_eq!(a, generate(&small(Variant::Lab, 1)));
        assert_ne!(a.labelled, generate(&small(Variant::Lab, 2)).labelled);
        assert_ne!(a.labelled, generate(&small(Variant::Field, 1)).labelled);
    }

    #[test]
    fn covers_every_intent_with_unique_texts_and_slices() {
        let c = generate(&small(Variant::Lab, 3));
        let labels: HashSet<&str> = c
            .labelled
            .iter()
            .filter_map(|r| r.label.as_deref())
            .collect();
        assert_eq!(labels.len(), INTENTS.len());
        assert!(INTENTS.len() >= 20);
        let texts: HashSet<&str> = c.labelled.iter().map(|r| r.text.as_str()).collect();
        assert_eq!(texts.len(), c.labelled.len());
        assert!(c
            .labelled
            .iter()
            .all(|r| r.slice.contains_key("region") && r.slice.contains_key("style")));
        assert!(c.pretrain.iter().map(|d| d.len() + 2).sum::<usize>() >= 50_000);
        assert!(
            c.labelled.iter().all(|r| !r.text.contains('{')),
            "unfilled slot"
        );
        assert!(c.instructions.iter().all(|p| !p.response.contains('{')));
    }

    #[test]
    fn preferences_differ_and_chosen_names_the_device() {
        let c = generate(&small(Variant::Lab, 4));
        for p in &c.preferences {
            assert_ne!(p.chosen, p.rejected, "{p:?}");
        }
        let c2 = generate(&small(Variant::Lab, 4));
        assert_eq!(c.preferences, c2.preferences);
    }

    #[test]
    fn field_is_shifted() {
        let lab = generate(&small(Variant::Lab, 5));
        let field = generate(&small(Variant::Field, 5));
        let share = |c: &Corpus, k: &str, v: &str| {
            c.labelled
                .iter()
                .filter(|r| r.slice.get(k).map(String::as_str) == Some(v))
                .count() as f64
                / c.labelled.len() as f64
        };
        assert!(share(&lab, "region", "in") < 0.08);
        assert!(share(&field, "region", "in") > 0.25);
        assert!(share(&field, "style", "indirect") > 2.0 * share(&lab, "style", "indirect"));
        let field_words = [
            "air purifier",
            "heat pump",
            "soundbar",
            "nursery",
            "attic",
            "projector",
        ];
        assert!(!lab
            .labelled
            .iter()
            .any(|r| field_words.iter().any(|w| r.text.contains(w))));
        assert!(field
            .labelled
            .iter()
            .any(|r| field_words.iter().any(|w| r.text.contains(w))));

        // A different label mix: total variation distance between the label distributions.
        let mix = |c: &Corpus| {
            let mut m: BTreeMap<String, f64> = BTreeMap::new();
            for r in &c.labelled {
                *m.entry(r.label.clone().unwrap_or_default()).or_default() +=
                    1.0 / c.labelled.len() as f64;
            }
            m
        };
        let (lm, fm) = (mix(&lab), mix(&field));
        let tv: f64 = INTENTS
            .iter()
            .map(|i| {
                (lm.get(i.name).copied().unwrap_or(0.0) - fm.get(i.name).copied().unwrap_or(0.0))
                    .abs()
            })
            .sum::<f64>()
            / 2.0;
        assert!(
            tv > 0.08,
            "label mixes too similar: total variation {tv:.3}"
        );

        // New phrasings: the literal word runs of the field-only templates that no lab template
        // contains appear in the field data and never in the lab data.
        let lab_templates: Vec<&str> = INTENTS
            .iter()
            .flat_map(|i| {
                i.base
                    .iter()
                    .chain(i.terse)
                    .chain(i.hard)
                    .copied()
                    .chain(i.indirect.iter().map(|(_, t)| *t))
            })
            .collect();
        let phrases: Vec<&str> = INTENTS
            .iter()
            .flat_map(|i| i.field.iter())
            .flat_map(|t| t.split(['{', '}']))
            .map(str::trim)
            .filter(|p| p.split(' ').count() >= 2 && p.len() >= 8)
            .filter(|p| !lab_templates.iter().any(|t| t.contains(p)))
            .collect();
        assert!(phrases.len() >= 20, "{phrases:?}");
        let with_new = |c: &Corpus| {
            c.labelled
                .iter()
                .filter(|r| phrases.iter().any(|p| r.text.contains(p)))
                .count() as f64
                / c.labelled.len() as f64
        };
        let (lab_new, field_new) = (with_new(&lab), with_new(&field));
        assert!(lab_new < 0.01, "lab uses field phrasings: {lab_new:.3}");
        assert!(field_new > 0.05, "field phrasings are rare: {field_new:.3}");
        println!(
            "label-mix total variation {tv:.3}; field-only phrasings in lab {:.1}%, in field {:.1}%",
            100.0 * lab_new,
            100.0 * field_new
        );
    }

    /// The default configurations meet the issue's sizes: ≥ 10k labelled examples and ≥ 1 MB
    /// of pretraining text (as written to `pretrain.txt`), every intent present.
    #[test]
    fn default_lab_corpus_has_the_promised_size() {
        let cfg = CorpusConfig::lab(0);
        let c = generate(&cfg);
        assert!(c.labelled.len() >= 10_000, "{}", c.labelled.len());
        let bytes: usize = c.pretrain.iter().map(|d| d.len() + 2).sum();
        assert!(bytes >= 1_000_000, "{bytes} bytes of pretraining text");
        assert!(bytes >= cfg.pretrain_bytes);
        let labels: HashSet<&str> = c
            .labelled
            .iter()
            .filter_map(|r| r.label.as_deref())
            .collect();
        assert_eq!(labels.len(), INTENTS.len());
        assert_eq!(c.instructions.len(), cfg.n_instructions);
        assert_eq!(c.preferences.len(), cfg.n_preferences);
    }

    #[test]
    fn bag_of_words_baseline_is_clearly_below_100_percent() {
        let lab = generate(&small(Variant::Lab, 6));
        let field = generate(&small(Variant::Field, 6));
        let r = baseline_reports(&field, Some(&lab), 6);
        assert_eq!(r.len(), 2);
        // In-distribution field and lab → field transfer both stay clearly below 100%.
        assert!(r[0].eval_accuracy < 0.95, "{:?}", r[0]);
        assert!(r[1].eval_accuracy < 0.90, "{:?}", r[1]);
        // ...and well above chance, so the task is learnable.
        assert!(r[0].eval_accuracy > 0.5, "{:?}", r[0]);
    }
}
