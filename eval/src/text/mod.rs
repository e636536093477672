//! Generation metrics that reproduce the reference implementations people report with:
//! sacrebleu's BLEU and chrF, and Google's `rouge-score` ROUGE-N/L/Lsum (with its Porter stemmer).

pub mod bleu;
pub mod chrf;
pub mod porter;
pub mod rouge;
pub mod tokenize_13a;

/// Python's `str.isspace` for one character: Unicode `White_Space` plus the information
/// separators U+001C..U+001F, which Python also treats as whitespace.
pub(crate) fn py_is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.split()` with no argument.
pub(crate) fn py_split(s: &str) -> impl Iterator<Item = &str> {
    s.split(py_is_space).filter(|t| !t.is_empty())
}

/// Python's `str.rstrip()` with no argument.
pub(crate) fn py_rstrip(s: &str) -> &str {
    s.trim_end_matches(py_is_space)
}

#[cfg(test)]
mod tests;
