//! Unicode normalization and whitespace clean-up, applied before hashing and filtering.

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

/// Which Unicode normal form to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Normalization {
    /// Leave code points as they are (whitespace is still cleaned).
    None,
    /// Canonical composition (NFC): visually identical strings get identical bytes.
    Nfc,
    /// Compatibility composition (NFKC): also folds full-width forms, ligatures, superscripts.
    #[default]
    Nfkc,
}

/// Normalizes `text`: the Unicode form, then `\r\n` → `\n`, control characters other than
/// `\n`/`\t` removed, runs of spaces and tabs collapsed to one space, each line trimmed, blank
/// lines at both ends removed. Returns the new text.
pub fn normalize(text: &str, form: Normalization) -> String {
    let composed: String = match form {
        Normalization::None => text.to_string(),
        Normalization::Nfc => text.nfc().collect(),
        Normalization::Nfkc => text.nfkc().collect(),
    };
    let mut out = String::with_capacity(composed.len());
    for (i, line) in composed.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let mut pending_space = false;
        let mut wrote = false;
        for c in line.chars() {
            if c == ' ' || c == '\t' || c == '\u{a0}' || (c.is_whitespace() && c != '\n') {
                pending_space = wrote;
            } else if c.is_control() {
                continue;
            } else {
                if pending_space {
                    out.push(' ');
                    pending_space = false;
                }
                out.push(c);
                wrote = true;
            }
        }
    }
    out.trim_matches('\n').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composes_and_cleans_whitespace() {
        // "é" as e + combining acute, full-width "Ａ", a tab run, CRLF and a control char.
        let s = "  cafe\u{301}\t\t ｔｖ\r\n\u{7}on  \n\n";
        assert_eq!(normalize(s, Normalization::Nfkc), "caf\u{e9} tv\non");
        assert_eq!(normalize(s, Normalization::Nfc), "caf\u{e9} ｔｖ\non");
        assert_eq!(normalize("a\u{301}", Normalization::None), "a\u{301}");
    }

    #[test]
    fn idempotent() {
        let s = "Turn  ON the\u{a0}Lamp\n\n  please ";
        let once = normalize(s, Normalization::Nfkc);
        assert_eq!(normalize(&once, Normalization::Nfkc), once);
    }
}
