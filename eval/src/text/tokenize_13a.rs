//! The `13a` tokenizer of sacrebleu (equivalent to mteval-v13a.pl, used by WMT).

use std::sync::OnceLock;

use regex::Regex;

struct Rules {
    symbols: Regex,
    period_comma_after_non_digit: Regex,
    period_comma_before_non_digit: Regex,
    dash_after_digit: Regex,
}

fn rules() -> &'static Rules {
    static RULES: OnceLock<Rules> = OnceLock::new();
    RULES.get_or_init(|| Rules {
        // The same ASCII ranges as sacrebleu: {-~ [-` space-& (-+ :-@ /
        symbols: Regex::new(r"([\x7B-\x7E\x5B-\x60\x20-\x26\x28-\x2B\x3A-\x40\x2F])")
            .expect("valid regex"),
        period_comma_after_non_digit: Regex::new(r"([^0-9])([\.,])").expect("valid regex"),
        period_comma_before_non_digit: Regex::new(r"([\.,])([^0-9])").expect("valid regex"),
        dash_after_digit: Regex::new(r"([0-9])(-)").expect("valid regex"),
    })
}

/// Tokenizes one segment exactly as sacrebleu's `Tokenizer13a`, returning the tokens joined by
/// single spaces.
pub fn tokenize_13a(line: &str) -> String {
    let mut line = line
        .replace("<skipped>", "")
        .replace("-\n", "")
        .replace('\n', " ");
    if line.contains('&') {
        line = line
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
    }
    let line = format!(" {line} ");
    let r = rules();
    let line = r.symbols.replace_all(&line, " ${1} ");
    let line = r
        .period_comma_after_non_digit
        .replace_all(&line, "${1} ${2} ");
    let line = r
        .period_comma_before_non_digit
        .replace_all(&line, " ${1} ${2}");
    let line = r.dash_after_digit.replace_all(&line, "${1} ${2} ");
    super::py_split(&line).collect::<Vec<_>>().join(" ")
}
