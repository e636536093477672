//! PII scrubbing: e-mail addresses, phone numbers, IPv4 addresses and payment-card-like
//! numbers (13–19 digits passing the Luhn check) are replaced by `[EMAIL]`, `[PHONE]`, `[IP]`
//! and `[CARD]`. Digit runs that fail the Luhn check are not treated as cards.

use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// What one scrub replaced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PiiCounts {
    /// E-mail addresses.
    pub email: u64,
    /// Phone numbers.
    pub phone: u64,
    /// IPv4 addresses.
    pub ip: u64,
    /// Card-like numbers passing the Luhn check.
    pub card: u64,
}

impl PiiCounts {
    /// Total replacements.
    pub fn total(&self) -> u64 {
        self.email + self.phone + self.ip + self.card
    }

    /// Adds another count.
    pub fn add(&mut self, o: &PiiCounts) {
        self.email += o.email;
        self.phone += o.phone;
        self.ip += o.ip;
        self.card += o.card;
    }
}

struct Patterns {
    email: Regex,
    card: Regex,
    ip: Regex,
    phone: Regex,
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| Patterns {
        // The patterns are constants; a failure here is a programming error caught by tests.
        email: Regex::new(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
            .expect("email regex"),
        card: Regex::new(r"\b\d(?:[ \-]?\d){12,18}\b").expect("card regex"),
        ip: Regex::new(
            r"\b(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\b",
        )
        .expect("ip regex"),
        phone: Regex::new(
            r"(?:\+\d{1,3}[ .\-]?)?(?:\(\d{2,4}\)[ .\-]?|\b\d{2,4}[ .\-])?\d{3,4}[ .\-]\d{3,4}\b",
        )
        .expect("phone regex"),
    })
}

/// Whether the digits of `s` (other characters ignored) pass the Luhn checksum.
pub fn luhn_valid(s: &str) -> bool {
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    if digits.len() < 2 {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Replaces PII in `text`; returns the scrubbed text and what was replaced.
pub fn scrub(text: &str) -> (String, PiiCounts) {
    let p = patterns();
    let mut counts = PiiCounts::default();
    let mut out = p
        .email
        .replace_all(text, |_: &regex::Captures| {
            counts.email += 1;
            "[EMAIL]"
        })
        .into_owned();
    out = p
        .card
        .replace_all(&out, |c: &regex::Captures| {
            let m = &c[0];
            let n = m.chars().filter(char::is_ascii_digit).count();
            if (13..=19).contains(&n) && luhn_valid(m) {
                counts.card += 1;
                "[CARD]".to_string()
            } else {
                m.to_string()
            }
        })
        .into_owned();
    out =
        p.ip.replace_all(&out, |_: &regex::Captures| {
            counts.ip += 1;
            "[IP]"
        })
        .into_owned();
    let src = out.clone();
    out = p
        .phone
        .replace_all(&src, |c: &regex::Captures| {
            let whole = c.get(0).map(|m| (m.start(), m.end())).unwrap_or((0, 0));
            let m = &c[0];
            // A digit run glued to more digits (a long number, e.g. a Luhn-invalid card
            // number) is not a phone number.
            let glued = src[..whole.0].ends_with(|ch: char| ch.is_ascii_digit() || ch == '-')
                || src[whole.1..].starts_with(|ch: char| ch.is_ascii_digit() || ch == '-');
            if !glued && m.chars().filter(char::is_ascii_digit).count() >= 7 {
                counts.phone += 1;
                "[PHONE]".to_string()
            } else {
                m.to_string()
            }
        })
        .into_owned();
    (out, counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn() {
        assert!(luhn_valid("4539 1488 0343 6467"));
        assert!(luhn_valid("79927398713"));
        assert!(!luhn_valid("4539 1488 0343 6468"));
    }

    #[test]
    fn scrubs_each_kind() {
        let (s, c) = scrub("mail bob.smith+x@example.co.uk or call +44 20 7946 0958 now");
        assert_eq!(s, "mail [EMAIL] or call [PHONE] now");
        assert_eq!((c.email, c.phone), (1, 1));
        let (s, c) = scrub("card 4539-1488-0343-6467 and 4539-1488-0343-6468 from 192.168.1.20");
        assert_eq!(s, "card [CARD] and 4539-1488-0343-6468 from [IP]");
        assert_eq!((c.card, c.ip), (1, 1));
        let (s, c) = scrub("set the heating to 21 degrees at 19:30 for 45 minutes, 2 rooms");
        assert_eq!(c.total(), 0, "{s}");
        let (s, c) = scrub("call me at (555) 123-4567");
        assert_eq!(s, "call me at [PHONE]");
        assert_eq!(c.phone, 1);
    }
}
