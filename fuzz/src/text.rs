//! The text half of `edgeloop serve`'s `/v1/predict` and `/v1/generate` requests: the `text`
//! field goes through the model's tokenizer (`Tokenizer::encode`). Any UTF-8 text tokenizes
//! into ids inside the vocabulary, and those ids decode, without a panic.

use std::sync::OnceLock;

use edgeloop_trainer::corpus::{generate, CorpusConfig};
use edgeloop_trainer::tokenizer::{BpeConfig, CharConfig, Tokenizer};

/// A byte-level BPE and a character tokenizer trained on a small lab corpus (the two kinds
/// `edgeloop train` makes), built once per fuzzing process.
pub fn tokenizers() -> &'static [Tokenizer; 2] {
    static TOK: OnceLock<[Tokenizer; 2]> = OnceLock::new();
    TOK.get_or_init(|| {
        let mut cfg = CorpusConfig::lab(1);
        cfg.n_labelled = 300;
        cfg.pretrain_bytes = 0;
        cfg.n_instructions = 0;
        cfg.n_preferences = 0;
        let corpus = generate(&cfg);
        let texts: Vec<String> = corpus.labelled.iter().map(|r| r.text.clone()).collect();
        let bpe = Tokenizer::train_bpe(
            texts.iter(),
            &BpeConfig {
                vocab_size: 400,
                min_frequency: 2,
            },
        )
        .expect("training the fuzz BPE tokenizer");
        let chars = Tokenizer::train_char(texts.iter(), &CharConfig::default())
            .expect("building the fuzz char tokenizer");
        [bpe, chars]
    })
}

/// Tokenizes `data` (when it is UTF-8) with both tokenizers and decodes the ids.
pub fn fuzz_text(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for tok in tokenizers() {
        let Ok(ids) = tok.encode(text) else {
            continue;
        };
        let vocab = tok.vocab_size();
        if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab) {
            panic!("token id {bad} outside the vocabulary of {vocab}");
        }
        let _ = tok.decode(&ids);
    }
}
