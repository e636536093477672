//! `edgeloop data`: generate the default corpus, select data, tokenize.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use edgeloop_trainer::corpus::{self, CorpusConfig, Variant};
use edgeloop_trainer::data::{
    self, FieldNames, Format, NearDupConfig, Normalization, SelectConfig, SourceSpec, SplitConfig,
};
use edgeloop_trainer::tokenizer::tokenize::{tokenize, TokenizeConfig, TokenizerSource};
use edgeloop_trainer::tokenizer::{BpeConfig, CharConfig};

/// Arguments of `edgeloop data`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: DataCommand,
}

#[derive(Debug, Subcommand)]
enum DataCommand {
    /// Generate the embedded smart-home corpus (labelled examples, pretraining text,
    /// instruction and preference pairs, and a card with the bag-of-words baseline).
    #[command(
        after_help = "Examples:\n  edgeloop data generate --out runs/data/lab --seed 1\n  edgeloop data generate --out runs/data/field --seed 1 --field"
    )]
    Generate(GenerateArgs),
    /// Select data: normalize, scrub PII, filter, deduplicate (exact and MinHash near-duplicates),
    /// split train/val/test without leaks, and write a dataset card.
    #[command(
        after_help = "Examples:\n  edgeloop data select --input runs/data/lab/labelled.jsonl --out runs/data/sel\n  edgeloop data select --input a.jsonl:0.7 --input b.txt:0.3 --out sel --skip-bad --jaccard 0.85"
    )]
    Select(SelectArgs),
    /// Train (or load) a tokenizer and write compact token files (see trainer/TOKENS.md).
    #[command(
        after_help = "Examples:\n  edgeloop data tokenize --input sel/train.jsonl --input sel/val.jsonl --out tok --kind bpe --vocab-size 2048 --eos\n  edgeloop data tokenize --input sel/train.jsonl --out tok --tokenizer bert/vocab.txt"
    )]
    Tokenize(TokenizeArgs),
}

#[derive(Debug, clap::Args)]
struct GenerateArgs {
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
    /// Seed (the same seed gives the same corpus).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Generate the shifted field variant instead of the lab data.
    #[arg(long)]
    field: bool,
    /// Number of labelled examples (default 12000 lab, 4000 field).
    #[arg(long)]
    n_labelled: Option<usize>,
    /// Minimum bytes of pretraining text (default 1200000 lab, 300000 field).
    #[arg(long)]
    pretrain_bytes: Option<usize>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum NormArg {
    Nfkc,
    Nfc,
    None,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TextFormat {
    Lines,
    Paragraphs,
}

#[derive(Debug, clap::Args)]
struct SelectArgs {
    /// Input `PATH[:WEIGHT]` (repeatable): `.jsonl`, `.csv`, or plain text.
    #[arg(long = "input", required = true)]
    inputs: Vec<String>,
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
    /// Skip malformed records and count them in the card instead of failing.
    #[arg(long)]
    skip_bad: bool,
    /// Near-duplicate threshold (estimated Jaccard of 5-character shingles).
    #[arg(long, default_value_t = 0.8)]
    jaccard: f64,
    /// Similarity at which a record joins its match's split (≤ --jaccard).
    #[arg(long, default_value_t = 0.6)]
    split_jaccard: f64,
    /// Keep near-duplicates (they still stay within one split).
    #[arg(long)]
    keep_near_dups: bool,
    /// Skip MinHash entirely (split by content hash only).
    #[arg(long)]
    no_near_dedup: bool,
    /// Keep exact duplicates.
    #[arg(long)]
    no_exact_dedup: bool,
    /// Do not scrub PII.
    #[arg(long)]
    no_pii: bool,
    /// Unicode normal form.
    #[arg(long, value_enum, default_value_t = NormArg::Nfkc)]
    normalization: NormArg,
    /// Split fractions train,val,test.
    #[arg(long, default_value = "0.8,0.1,0.1")]
    split: String,
    /// Seed for sampling, MinHash and split hashing.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// JSONL key / CSV column of the text.
    #[arg(long, default_value = "text")]
    text_field: String,
    /// JSONL key / CSV column of the label.
    #[arg(long, default_value = "label")]
    label_field: String,
    /// JSONL key / CSV column of the slice tags.
    #[arg(long, default_value = "slice")]
    slice_field: String,
    /// A record without a label is bad.
    #[arg(long)]
    require_label: bool,
    /// How plain-text inputs are cut into records.
    #[arg(long, value_enum, default_value_t = TextFormat::Lines)]
    text_format: TextFormat,
    /// Minimum characters per record.
    #[arg(long, default_value_t = 3)]
    min_chars: usize,
    /// Maximum characters per record.
    #[arg(long, default_value_t = 100_000)]
    max_chars: usize,
    /// Minimum words per record.
    #[arg(long, default_value_t = 1)]
    min_words: usize,
    /// Dataset name for the card.
    #[arg(long, default_value = "selection")]
    name: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TokKind {
    Bpe,
    Char,
}

#[derive(Debug, clap::Args)]
struct TokenizeArgs {
    /// Input files (repeatable); the first trains the tokenizer.
    #[arg(long = "input", required = true)]
    inputs: Vec<PathBuf>,
    /// Output folder (tokenizer.json and one .tokens per input).
    #[arg(long)]
    out: PathBuf,
    /// Tokenizer to train.
    #[arg(long, value_enum, default_value_t = TokKind::Bpe)]
    kind: TokKind,
    /// Vocabulary size (BPE target; char maximum).
    #[arg(long, default_value_t = 2048)]
    vocab_size: usize,
    /// Minimum frequency of a merge (BPE) or a character (char).
    #[arg(long, default_value_t = 2)]
    min_frequency: u64,
    /// Load this tokenizer.json or WordPiece vocab.txt instead of training.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Append <|endoftext|> after each document.
    #[arg(long)]
    eos: bool,
    /// JSONL key / CSV column of the text.
    #[arg(long, default_value = "text")]
    text_field: String,
}

/// Runs `edgeloop data …`.
pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        DataCommand::Generate(a) => generate(a),
        DataCommand::Select(a) => select(a),
        DataCommand::Tokenize(a) => tokenize_cmd(a),
    }
}

fn generate(a: GenerateArgs) -> anyhow::Result<()> {
    let mut cfg = if a.field {
        CorpusConfig::field(a.seed)
    } else {
        CorpusConfig::lab(a.seed)
    };
    if let Some(n) = a.n_labelled {
        cfg.n_labelled = n;
    }
    if let Some(b) = a.pretrain_bytes {
        cfg.pretrain_bytes = b;
    }
    let c = corpus::generate(&cfg);
    // A field corpus is measured against the lab corpus of the same seed (the shift).
    let reference = (cfg.variant == Variant::Field).then(|| {
        corpus::generate(&CorpusConfig {
            n_labelled: cfg.n_labelled.max(4000),
            pretrain_bytes: 0,
            n_instructions: 0,
            n_preferences: 0,
            ..CorpusConfig::lab(a.seed)
        })
    });
    let (files, card) = c
        .write(&a.out, reference.as_ref())
        .with_context(|| format!("writing the corpus to {}", a.out.display()))?;
    if super::output::json() {
        println!("{}", serde_json::to_string_pretty(&card)?);
    } else {
        crate::say!(
            "wrote {} labelled examples ({} intents), {} bytes of pretraining text, {} instruction and {} preference pairs to {}",
            card.labelled,
            card.labels.len(),
            card.pretrain_bytes,
            card.instructions,
            card.preferences,
            a.out.display()
        );
        for b in &card.baselines {
            crate::say!(
                "bag-of-words baseline, {}: {:.1}%",
                b.description,
                100.0 * b.eval_accuracy
            );
        }
        crate::say!("card: {}", files.card_md.display());
    }
    Ok(())
}

fn select(a: SelectArgs) -> anyhow::Result<()> {
    let mut sources = Vec::new();
    for s in &a.inputs {
        let mut spec = SourceSpec::parse(s).with_context(|| format!("--input {s}"))?;
        if spec.format == Format::Lines && matches!(a.text_format, TextFormat::Paragraphs) {
            spec.format = Format::Paragraphs;
        }
        sources.push(spec);
    }
    let mut cfg = SelectConfig::new(sources, &a.out);
    cfg.name = a.name.clone();
    cfg.fields = FieldNames {
        text: a.text_field.clone(),
        label: a.label_field.clone(),
        slice: a.slice_field.clone(),
        require_label: a.require_label,
    };
    cfg.skip_bad = a.skip_bad;
    cfg.normalization = match a.normalization {
        NormArg::Nfkc => Normalization::Nfkc,
        NormArg::Nfc => Normalization::Nfc,
        NormArg::None => Normalization::None,
    };
    cfg.pii = !a.no_pii;
    cfg.exact_dedup = !a.no_exact_dedup;
    cfg.near_dup = (!a.no_near_dedup).then_some(NearDupConfig {
        remove: !a.keep_near_dups,
        threshold: a.jaccard,
        split_threshold: a.split_jaccard.min(a.jaccard),
        ..NearDupConfig::default()
    });
    cfg.split = SplitConfig::parse(&a.split).context("--split")?;
    cfg.seed = a.seed;
    cfg.quality.min_chars = a.min_chars;
    cfg.quality.max_chars = a.max_chars;
    cfg.quality.min_words = a.min_words;
    cfg.progress = super::output::progress();
    let report = data::select(&cfg).context("data selection failed")?;
    if super::output::json() {
        println!("{}", serde_json::to_string_pretty(&report.card)?);
    } else {
        for st in &report.card.steps {
            crate::say!(
                "{:<22} in {:>9}  removed {:>8}  modified {:>8}  out {:>9}",
                st.name,
                st.input,
                st.removed,
                st.modified,
                st.output
            );
        }
        for (name, sp) in &report.card.splits {
            crate::say!(
                "{name}: {} records -> {}",
                sp.records,
                a.out.join(&sp.file).display()
            );
        }
        if let Some(b) = &report.card.baseline {
            crate::say!(
                "bag-of-words baseline ({}): {:.1}%",
                b.description,
                100.0 * b.eval_accuracy
            );
        }
        crate::say!("card: {}", a.out.join("card.md").display());
    }
    Ok(())
}

fn tokenize_cmd(a: TokenizeArgs) -> anyhow::Result<()> {
    let tokenizer = match (&a.tokenizer, a.kind) {
        (Some(p), _) => TokenizerSource::Load(p.clone()),
        (None, TokKind::Bpe) => TokenizerSource::TrainBpe(BpeConfig {
            vocab_size: a.vocab_size,
            min_frequency: a.min_frequency,
        }),
        (None, TokKind::Char) => TokenizerSource::TrainChar(CharConfig {
            max_vocab: a.vocab_size,
            min_frequency: a.min_frequency,
        }),
    };
    let cfg = TokenizeConfig {
        inputs: a.inputs.iter().map(SourceSpec::file).collect(),
        fields: FieldNames {
            text: a.text_field.clone(),
            ..FieldNames::default()
        },
        tokenizer,
        out_dir: a.out.clone(),
        append_eos: a.eos,
    };
    let r = tokenize(&cfg).context("tokenization failed")?;
    if super::output::json() {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        crate::say!(
            "tokenizer ({:?}, {} ids): {}",
            r.kind,
            r.vocab_size,
            r.tokenizer
        );
        for f in &r.files {
            crate::say!(
                "{} -> {}: {} documents, {} tokens ({:.2} chars/token)",
                f.input,
                f.output,
                f.documents,
                f.tokens,
                f.chars as f64 / f.tokens.max(1) as f64
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use edgeloop_trainer::data::DatasetCard;
    use edgeloop_trainer::tokenizer::token_file::TokenFile;
    use edgeloop_trainer::tokenizer::Tokenizer;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn data(argv: &[&str]) -> anyhow::Result<()> {
        let mut v = vec!["data"];
        v.extend_from_slice(argv);
        run(Cli::try_parse_from(v)?.args)
    }

    /// `edgeloop data generate → select → tokenize` as a user runs it: the flags reach the
    /// library, bad records fail with file and line or are counted with `--skip-bad`, and the
    /// token files read back.
    #[test]
    fn generate_select_tokenize_through_the_cli() {
        let d = std::env::temp_dir().join(format!("edgeloop-cli-data-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let p = |rel: &str| d.join(rel).display().to_string();
        data(&[
            "generate",
            "--out",
            &p("field"),
            "--field",
            "--seed",
            "4",
            "--n-labelled",
            "800",
            "--pretrain-bytes",
            "5000",
        ])
        .unwrap();
        let card: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join("field/corpus_card.json")).unwrap())
                .unwrap();
        assert_eq!(card["labelled"], 800);
        // In-distribution and lab → field baselines, both below 100%.
        let b = card["baselines"].as_array().unwrap();
        assert_eq!(b.len(), 2);
        assert!(b
            .iter()
            .all(|b| b["eval_accuracy"].as_f64().unwrap() < 0.97));

        // The generated records with one malformed line after the first 400.
        let text = std::fs::read_to_string(d.join("field/labelled.jsonl")).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines.insert(400, "{\"text\": \"unterminated");
        let input = d.join("mixed.jsonl");
        std::fs::write(&input, lines.join("\n") + "\n").unwrap();
        let input = input.display().to_string();
        let select = |out: &str, extra: &[&str]| {
            let mut v = vec![
                "select",
                "--input",
                input.as_str(),
                "--out",
                out,
                "--jaccard",
                "0.9",
                "--split",
                "0.7,0.15,0.15",
                "--name",
                "cli-test",
            ];
            v.extend_from_slice(extra);
            data(&v)
        };
        let err = format!("{:#}", select(&p("sel"), &[]).unwrap_err());
        assert!(err.contains("mixed.jsonl:401"), "{err}");
        select(&p("sel"), &["--skip-bad"]).unwrap();
        let card: DatasetCard =
            serde_json::from_slice(&std::fs::read(d.join("sel/card.json")).unwrap()).unwrap();
        assert_eq!(card.name, "cli-test");
        assert_eq!(card.bad_records.total, 1);
        assert_eq!(card.bad_records.by_kind["malformed_json"], 1);
        assert_eq!(card.near_dup.threshold, 0.9);
        let n: u64 = card.splits.values().map(|s| s.records).sum();
        let train = card.splits["train"].records as f64 / n as f64;
        assert!((0.6..0.8).contains(&train), "train share {train}");
        assert!(
            card.baseline.is_some(),
            "labelled selection gets a baseline"
        );
        assert!(d.join("sel/length_hist.png").is_file());

        // Tokenize: train a char tokenizer, then load it back for another file.
        data(&[
            "tokenize",
            "--input",
            &p("sel/train.jsonl"),
            "--input",
            &p("sel/val.jsonl"),
            "--out",
            &p("tok"),
            "--kind",
            "char",
            "--eos",
        ])
        .unwrap();
        let tok = Tokenizer::load(&d.join("tok/tokenizer.json")).unwrap();
        let f = TokenFile::open(&d.join("tok/train.tokens")).unwrap();
        f.verify().unwrap();
        assert_eq!(f.num_docs() as u64, card.splits["train"].records);
        let d0 = f.doc(0).unwrap();
        assert_eq!(*d0.last().unwrap(), tok.specials().eos.unwrap());
        data(&[
            "tokenize",
            "--input",
            &p("sel/test.jsonl"),
            "--out",
            &p("tok2"),
            "--tokenizer",
            &p("tok/tokenizer.json"),
        ])
        .unwrap();
        let t = TokenFile::open(&d.join("tok2/test.tokens")).unwrap();
        assert_eq!(t.num_docs() as u64, card.splits["test"].records);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
