//! The dataset record shared by every stage: text, optional label, slice tags.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One example. Written as one JSONL line: `{"text": .., "label": .., "slice": {..}}`.
///
/// `slice` carries tags such as `region` or `style` through selection and splitting so that
/// evaluation can report per-slice metrics (fairness gaps).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Record {
    /// The text.
    pub text: String,
    /// Class label, when the dataset is labelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Slice tags (`tag -> value`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub slice: BTreeMap<String, String>,
}

impl Record {
    /// An unlabelled record without slice tags.
    pub fn text(text: impl Into<String>) -> Self {
        Record {
            text: text.into(),
            ..Record::default()
        }
    }

    /// A labelled record with slice tags.
    pub fn labelled(
        text: impl Into<String>,
        label: impl Into<String>,
        slice: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        Record {
            text: text.into(),
            label: Some(label.into()),
            slice: slice.into_iter().collect(),
        }
    }

    /// The slice tags as one `k=v;k=v` string (empty when there are none).
    pub fn slice_key(&self) -> String {
        self.slice
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";")
    }
}

/// Parses a slice given as one string: `k=v;k2=v2` becomes a map; a plain value `v` becomes
/// `{"slice": v}`; an empty string gives no tags.
pub fn parse_slice_string(s: &str) -> BTreeMap<String, String> {
    let s = s.trim();
    let mut out = BTreeMap::new();
    if s.is_empty() {
        return out;
    }
    if s.contains('=') {
        for part in s.split(';').filter(|p| !p.trim().is_empty()) {
            match part.split_once('=') {
                Some((k, v)) => out.insert(k.trim().to_string(), v.trim().to_string()),
                None => out.insert("slice".to_string(), part.trim().to_string()),
            };
        }
    } else {
        out.insert("slice".to_string(), s.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_json_round_trip_omits_empty_fields() {
        let r = Record::text("hello");
        let j = serde_json::to_string(&r).unwrap();
        assert_eq!(j, r#"{"text":"hello"}"#);
        let l = Record::labelled("x", "on", [("region".to_string(), "uk".to_string())]);
        let back: Record = serde_json::from_str(&serde_json::to_string(&l).unwrap()).unwrap();
        assert_eq!(back, l);
        assert_eq!(l.slice_key(), "region=uk");
    }

    #[test]
    fn slice_strings() {
        assert!(parse_slice_string(" ").is_empty());
        assert_eq!(parse_slice_string("uk")["slice"], "uk");
        let m = parse_slice_string("region=uk; style=terse");
        assert_eq!(m["region"], "uk");
        assert_eq!(m["style"], "terse");
    }
}
