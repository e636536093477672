//! Dataset readers: any bytes, read as JSONL, CSV, text lines or paragraphs, give records or
//! per-record errors (never a panic), and each record's text survives the selection pipeline's
//! per-record steps (normalization, PII scrubbing, quality filters, shingling).

use std::io::{BufRead, Cursor};
use std::sync::Arc;

use edgeloop_trainer::data::filters::{check, QualityConfig};
use edgeloop_trainer::data::minhash::shingles;
use edgeloop_trainer::data::normalize::normalize;
use edgeloop_trainer::data::pii::scrub;
use edgeloop_trainer::data::source::{RecordReader, SourceInput};
use edgeloop_trainer::data::{FieldNames, Format, Normalization, SourceSpec};

/// The formats, indexed by the low two bits of the first byte.
pub const FORMATS: [Format; 4] = [
    Format::Jsonl,
    Format::Csv,
    Format::Lines,
    Format::Paragraphs,
];

/// First byte: bits 0-1 pick the format ([`FORMATS`]), bit 2 requires labels. The rest is the
/// file's content.
pub fn fuzz_dataset(data: &[u8]) {
    let Some((&mode, content)) = data.split_first() else {
        return;
    };
    let bytes: Arc<Vec<u8>> = Arc::new(content.to_vec());
    let spec = SourceSpec {
        input: SourceInput::Stream {
            name: "fuzz".into(),
            open: Arc::new(move || -> Box<dyn BufRead + Send> {
                Box::new(Cursor::new(bytes.as_ref().clone()))
            }),
        },
        weight: 1.0,
        format: FORMATS[usize::from(mode & 3)],
    };
    let fields = FieldNames {
        require_label: mode & 4 != 0,
        ..FieldNames::default()
    };
    // A malformed header is an error for the whole source; that is an answer too.
    let Ok(mut reader) = RecordReader::open(&spec, &fields) else {
        return;
    };
    let quality = QualityConfig::default();
    let mut items = 0usize;
    while let Ok(Some(item)) = reader.next_item() {
        items += 1;
        assert!(items <= content.len() + 1, "more records than bytes");
        if let Ok(record) = item.record {
            let text = normalize(&record.text, Normalization::Nfkc);
            let (clean, _) = scrub(&text);
            let _ = check(&clean, &quality);
            let _ = shingles(&clean, 5);
            let _ = record.slice_key();
        }
    }
}
