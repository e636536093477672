//! The Porter stemmer in NLTK's default `NLTK_EXTENSIONS` mode (nltk 3.9/3.10), which is what
//! `rouge-score` uses when stemming is on. Written from the algorithm description and NLTK's
//! documented deviations (irregular forms, `ies`/`ied` on 4-letter words, the `y`→`i` rule
//! needing a consonant, extra `fulli` and `logi` rules, 2-letter cvc); it operates on lowercase
//! ASCII words, which is all rouge-score's tokenizer produces.

const VOWELS: &[u8] = b"aeiou";

fn is_vowel(c: u8) -> bool {
    VOWELS.contains(&c)
}

/// NLTK's `_is_consonant`: `y` counts as a consonant depending on the run of `y`s before it.
fn is_consonant(w: &[u8], mut i: usize) -> bool {
    if is_vowel(w[i]) {
        return false;
    }
    if w[i] == b'y' {
        let mut negate = false;
        while i > 0 && w[i] == b'y' {
            negate = !negate;
            i -= 1;
        }
        return is_vowel(w[i]) == negate;
    }
    true
}

/// NLTK's `_consonant_flags` (used by the measure and the vowel test).
fn consonant_flags(w: &[u8]) -> Vec<bool> {
    let mut flags: Vec<bool> = Vec::with_capacity(w.len());
    for (i, &c) in w.iter().enumerate() {
        let f = if is_vowel(c) {
            false
        } else if c == b'y' {
            i == 0 || !flags[i - 1]
        } else {
            true
        };
        flags.push(f);
    }
    flags
}

/// Number of vowel→consonant transitions ("VC" sequences).
fn measure(stem: &[u8]) -> usize {
    let f = consonant_flags(stem);
    f.windows(2).filter(|p| !p[0] && p[1]).count()
}

fn contains_vowel(stem: &[u8]) -> bool {
    !consonant_flags(stem).iter().all(|&c| c)
}

fn ends_double_consonant(w: &[u8]) -> bool {
    w.len() >= 2 && w[w.len() - 1] == w[w.len() - 2] && is_consonant(w, w.len() - 1)
}

fn ends_cvc(w: &[u8]) -> bool {
    let n = w.len();
    (n >= 3
        && is_consonant(w, n - 3)
        && !is_consonant(w, n - 2)
        && is_consonant(w, n - 1)
        && !matches!(w[n - 1], b'w' | b'x' | b'y'))
        || (n == 2 && !is_consonant(w, 0) && is_consonant(w, 1))
}

enum Cond<'a> {
    None,
    PositiveMeasure,
    MeasureGt1,
    Custom(&'a dyn Fn(&[u8]) -> bool),
}

impl Cond<'_> {
    fn holds(&self, stem: &[u8]) -> bool {
        match self {
            Cond::None => true,
            Cond::PositiveMeasure => measure(stem) > 0,
            Cond::MeasureGt1 => measure(stem) > 1,
            Cond::Custom(f) => f(stem),
        }
    }
}

/// NLTK's `_apply_rule_list`: the first rule whose suffix matches decides (applied or not).
/// The suffix `"*d"` means "ends in a double consonant".
fn apply_rules(word: &[u8], rules: &[(&str, &[u8], Cond)]) -> Vec<u8> {
    for (suffix, replacement, cond) in rules {
        if *suffix == "*d" && ends_double_consonant(word) {
            let stem = &word[..word.len() - 2];
            return if cond.holds(stem) {
                [stem, replacement].concat()
            } else {
                word.to_vec()
            };
        }
        if word.ends_with(suffix.as_bytes()) {
            let stem = &word[..word.len() - suffix.len()];
            return if cond.holds(stem) {
                [stem, replacement].concat()
            } else {
                word.to_vec()
            };
        }
    }
    word.to_vec()
}

fn replace_suffix(word: &[u8], suffix: &str, rep: &str) -> Vec<u8> {
    [&word[..word.len() - suffix.len()], rep.as_bytes()].concat()
}

fn step1a(w: &[u8]) -> Vec<u8> {
    if w.ends_with(b"ies") && w.len() == 4 {
        return replace_suffix(w, "ies", "ie");
    }
    apply_rules(
        w,
        &[
            ("sses", b"ss", Cond::None),
            ("ies", b"i", Cond::None),
            ("ss", b"ss", Cond::None),
            ("s", b"", Cond::None),
        ],
    )
}

fn step1b(w: &[u8]) -> Vec<u8> {
    if w.ends_with(b"ied") {
        return if w.len() == 4 {
            replace_suffix(w, "ied", "ie")
        } else {
            replace_suffix(w, "ied", "i")
        };
    }
    if w.ends_with(b"eed") {
        let stem = &w[..w.len() - 3];
        return if measure(stem) > 0 {
            [stem, b"ee"].concat()
        } else {
            w.to_vec()
        };
    }
    let mut inter: Option<&[u8]> = None;
    for suffix in ["ed", "ing"] {
        if w.ends_with(suffix.as_bytes()) {
            let stem = &w[..w.len() - suffix.len()];
            if contains_vowel(stem) {
                inter = Some(stem);
                break;
            }
        }
    }
    let Some(stem) = inter else {
        return w.to_vec();
    };
    let last = stem.last().copied();
    let last_rep = last.map(|c| vec![c]).unwrap_or_default();
    let not_lsz = move |_: &[u8]| !matches!(last, Some(b'l' | b's' | b'z'));
    let cvc1 = |s: &[u8]| measure(s) == 1 && ends_cvc(s);
    apply_rules(
        stem,
        &[
            ("at", b"ate", Cond::None),
            ("bl", b"ble", Cond::None),
            ("iz", b"ize", Cond::None),
            ("*d", &last_rep, Cond::Custom(&not_lsz)),
            ("", b"e", Cond::Custom(&cvc1)),
        ],
    )
}

fn step1c(w: &[u8]) -> Vec<u8> {
    let cond = |s: &[u8]| s.len() > 1 && is_consonant(s, s.len() - 1);
    apply_rules(w, &[("y", b"i", Cond::Custom(&cond))])
}

fn step2(w: &[u8]) -> Vec<u8> {
    if w.ends_with(b"alli") && measure(&w[..w.len() - 4]) > 0 {
        return step2(&replace_suffix(w, "alli", "al"));
    }
    let logi = |_: &[u8]| w.len() >= 3 && measure(&w[..w.len() - 3]) > 0;
    use Cond::PositiveMeasure as P;
    apply_rules(
        w,
        &[
            ("ational", b"ate", P),
            ("tional", b"tion", P),
            ("enci", b"ence", P),
            ("anci", b"ance", P),
            ("izer", b"ize", P),
            ("bli", b"ble", P),
            ("alli", b"al", P),
            ("entli", b"ent", P),
            ("eli", b"e", P),
            ("ousli", b"ous", P),
            ("ization", b"ize", P),
            ("ation", b"ate", P),
            ("ator", b"ate", P),
            ("alism", b"al", P),
            ("iveness", b"ive", P),
            ("fulness", b"ful", P),
            ("ousness", b"ous", P),
            ("aliti", b"al", P),
            ("iviti", b"ive", P),
            ("biliti", b"ble", P),
            ("fulli", b"ful", P),
            ("logi", b"log", Cond::Custom(&logi)),
        ],
    )
}

fn step3(w: &[u8]) -> Vec<u8> {
    use Cond::PositiveMeasure as P;
    apply_rules(
        w,
        &[
            ("icate", b"ic", P),
            ("ative", b"", P),
            ("alize", b"al", P),
            ("iciti", b"ic", P),
            ("ical", b"ic", P),
            ("ful", b"", P),
            ("ness", b"", P),
        ],
    )
}

fn step4(w: &[u8]) -> Vec<u8> {
    use Cond::MeasureGt1 as M;
    let ion = |s: &[u8]| measure(s) > 1 && matches!(s.last(), Some(b's' | b't'));
    apply_rules(
        w,
        &[
            ("al", b"", M),
            ("ance", b"", M),
            ("ence", b"", M),
            ("er", b"", M),
            ("ic", b"", M),
            ("able", b"", M),
            ("ible", b"", M),
            ("ant", b"", M),
            ("ement", b"", M),
            ("ment", b"", M),
            ("ent", b"", M),
            ("ion", b"", Cond::Custom(&ion)),
            ("ou", b"", M),
            ("ism", b"", M),
            ("ate", b"", M),
            ("iti", b"", M),
            ("ous", b"", M),
            ("ive", b"", M),
            ("ize", b"", M),
        ],
    )
}

fn step5a(w: &[u8]) -> Vec<u8> {
    if w.ends_with(b"e") {
        let stem = &w[..w.len() - 1];
        let m = measure(stem);
        if m > 1 || (m == 1 && !ends_cvc(stem)) {
            return stem.to_vec();
        }
    }
    w.to_vec()
}

fn step5b(w: &[u8]) -> Vec<u8> {
    let cond = |_: &[u8]| !w.is_empty() && measure(&w[..w.len() - 1]) > 1;
    apply_rules(w, &[("ll", b"l", Cond::Custom(&cond))])
}

fn irregular(word: &str) -> Option<&'static str> {
    Some(match word {
        "sky" | "skies" => "sky",
        "dying" => "die",
        "lying" => "lie",
        "tying" => "tie",
        "news" => "news",
        "innings" | "inning" => "inning",
        "outings" | "outing" => "outing",
        "cannings" | "canning" => "canning",
        "howe" => "howe",
        "proceed" => "proceed",
        "exceed" => "exceed",
        "succeed" => "succeed",
        _ => return None,
    })
}

/// Stems one word. Non-ASCII input is lowercased and returned unchanged (rouge-score never
/// passes any: its tokenizer keeps `[a-z0-9]` only).
pub fn stem(word: &str) -> String {
    let lower = word.to_lowercase();
    if let Some(s) = irregular(&lower) {
        return s.to_string();
    }
    if word.chars().count() <= 2 || !lower.is_ascii() {
        return lower;
    }
    let mut w = lower.into_bytes();
    for step in [step1a, step1b, step1c, step2, step3, step4, step5a, step5b] {
        w = step(&w);
    }
    // Only ASCII bytes were produced from ASCII input.
    String::from_utf8(w).unwrap_or_default()
}
