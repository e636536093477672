//! Input sources: plain text, JSONL and CSV, read as a stream of records with their line.
//!
//! A reader never drops input silently: every line or row becomes either a [`Record`] or a
//! [`BadRecordKind`] with its 1-based line number, and the pipeline decides whether a bad
//! record is an error or is skipped and counted (`skip_bad`). Blank lines carry no record and
//! are counted separately.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::{BadRecordKind, DataError, Result};
use super::record::{parse_slice_string, Record};

/// The layout of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Plain text, one record per non-blank line.
    Lines,
    /// Plain text, one record per blank-line-separated paragraph.
    Paragraphs,
    /// One JSON object per line with named text/label/slice fields.
    Jsonl,
    /// CSV with a header row naming the text/label/slice columns.
    Csv,
}

impl Format {
    /// Guesses the format from a file extension: `.jsonl`/`.json` JSONL, `.csv` CSV, anything
    /// else plain text lines.
    pub fn from_path(path: &Path) -> Format {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .as_deref()
        {
            Some("jsonl") | Some("json") | Some("ndjson") => Format::Jsonl,
            Some("csv") => Format::Csv,
            _ => Format::Lines,
        }
    }
}

/// Names of the fields (JSONL keys, CSV header columns) that hold text, label and slice tags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldNames {
    /// Field holding the text (required in every record).
    pub text: String,
    /// Field holding the label (optional unless `require_label`).
    pub label: String,
    /// Field holding slice tags: a JSON object of strings, or a string `k=v;k2=v2`.
    pub slice: String,
    /// Whether a record without a label is bad.
    pub require_label: bool,
}

impl Default for FieldNames {
    fn default() -> Self {
        FieldNames {
            text: "text".into(),
            label: "label".into(),
            slice: "slice".into(),
            require_label: false,
        }
    }
}

/// Opens a fresh reader over a generated (not file-backed) source; called once per pass.
pub type OpenFn = Arc<dyn Fn() -> Box<dyn BufRead + Send> + Send + Sync>;

/// Where a source's bytes come from.
#[derive(Clone)]
pub enum SourceInput {
    /// A file on disk.
    Path(PathBuf),
    /// A generated stream (tests, pipes): a name for reports and a function opening it.
    Stream {
        /// Name shown in errors and the card.
        name: String,
        /// Opens the stream from its beginning.
        open: OpenFn,
    },
}

impl fmt::Debug for SourceInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceInput::Path(p) => write!(f, "Path({})", p.display()),
            SourceInput::Stream { name, .. } => write!(f, "Stream({name})"),
        }
    }
}

impl SourceInput {
    /// The path or stream name, for errors and reports.
    pub fn name(&self) -> PathBuf {
        match self {
            SourceInput::Path(p) => p.clone(),
            SourceInput::Stream { name, .. } => PathBuf::from(name),
        }
    }

    fn open(&self) -> Result<Box<dyn BufRead + Send>> {
        match self {
            SourceInput::Path(p) => {
                let f = File::open(p).map_err(|e| DataError::io(p, e))?;
                Ok(Box::new(BufReader::with_capacity(1 << 16, f)))
            }
            SourceInput::Stream { open, .. } => Ok(open()),
        }
    }
}

/// One input with its mixture weight.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    /// The bytes.
    pub input: SourceInput,
    /// Mixture weight (relative; weights are normalized over all sources).
    pub weight: f64,
    /// Layout.
    pub format: Format,
}

impl SourceSpec {
    /// A file source with weight 1 and the format guessed from its extension.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        SourceSpec {
            format: Format::from_path(&path),
            input: SourceInput::Path(path),
            weight: 1.0,
        }
    }

    /// Parses `PATH[:WEIGHT]` as given on the command line (`data/a.jsonl:0.7`).
    pub fn parse(spec: &str) -> Result<Self> {
        let (path, weight) = match spec.rsplit_once(':') {
            Some((p, w)) if !p.is_empty() && w.parse::<f64>().is_ok() => {
                (p, w.parse::<f64>().unwrap_or(1.0))
            }
            _ => (spec, 1.0),
        };
        if !(weight.is_finite() && weight > 0.0) {
            return Err(DataError::config(
                "input",
                format!("`{spec}`: the weight after `:` must be a positive number"),
            ));
        }
        if path.is_empty() {
            return Err(DataError::config("input", "empty path"));
        }
        let mut s = SourceSpec::file(path);
        s.weight = weight;
        Ok(s)
    }
}

/// One item read from a source: a record or a bad-record reason, with its 1-based line.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Line (JSONL, text; first line of a paragraph) or line of the CSV row.
    pub line: u64,
    /// The record, or why it is bad.
    pub record: std::result::Result<Record, BadRecordKind>,
}

/// Streaming reader over one source. Holds one line/paragraph/row in memory at a time.
pub struct RecordReader {
    name: PathBuf,
    fields: FieldNames,
    inner: Inner,
    /// Blank lines seen so far (they carry no record).
    pub blank_lines: u64,
    /// Bytes consumed so far (for progress reporting).
    pub bytes_read: u64,
    yielded: u64,
    finished: bool,
}

enum Inner {
    Text {
        reader: Box<dyn BufRead + Send>,
        line: u64,
        buf: Vec<u8>,
        paragraphs: bool,
        jsonl: bool,
    },
    Csv {
        reader: Box<csv::Reader<Box<dyn BufRead + Send>>>,
        text_col: Option<usize>,
        label_col: Option<usize>,
        slice_col: Option<usize>,
        row: csv::ByteRecord,
    },
}

impl RecordReader {
    /// Opens `spec` for one pass.
    pub fn open(spec: &SourceSpec, fields: &FieldNames) -> Result<Self> {
        let name = spec.input.name();
        let reader = spec.input.open()?;
        let inner = match spec.format {
            Format::Lines | Format::Paragraphs | Format::Jsonl => Inner::Text {
                reader,
                line: 0,
                buf: Vec::new(),
                paragraphs: spec.format == Format::Paragraphs,
                jsonl: spec.format == Format::Jsonl,
            },
            Format::Csv => {
                let mut r = csv::ReaderBuilder::new()
                    .has_headers(true)
                    .flexible(false)
                    .from_reader(reader);
                let headers = r.byte_headers().map_err(|e| csv_fatal(&name, e))?.clone();
                let find = |n: &str| headers.iter().position(|h| h == n.as_bytes());
                Inner::Csv {
                    text_col: find(&fields.text),
                    label_col: find(&fields.label),
                    slice_col: find(&fields.slice),
                    reader: Box::new(r),
                    row: csv::ByteRecord::new(),
                }
            }
        };
        Ok(RecordReader {
            name,
            fields: fields.clone(),
            inner,
            blank_lines: 0,
            bytes_read: 0,
            yielded: 0,
            finished: false,
        })
    }

    /// The source's name.
    pub fn name(&self) -> &Path {
        &self.name
    }

    /// Reads the next item; `Ok(None)` at the end. An empty source yields one
    /// [`BadRecordKind::EmptyFile`] item at line 0.
    pub fn next_item(&mut self) -> Result<Option<Item>> {
        if self.finished {
            return Ok(None);
        }
        let item = match &mut self.inner {
            Inner::Text {
                reader,
                line,
                buf,
                paragraphs,
                jsonl,
            } => {
                if *paragraphs {
                    read_paragraph(
                        &self.name,
                        reader,
                        line,
                        buf,
                        &mut self.blank_lines,
                        &mut self.bytes_read,
                    )?
                } else {
                    loop {
                        buf.clear();
                        let n = reader
                            .read_until(b'\n', buf)
                            .map_err(|e| DataError::io(&self.name, e))?;
                        if n == 0 {
                            break None;
                        }
                        self.bytes_read += n as u64;
                        *line += 1;
                        let bytes = trim_newline(buf);
                        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
                            self.blank_lines += 1;
                            continue;
                        }
                        let record = match std::str::from_utf8(bytes) {
                            Err(_) => Err(BadRecordKind::InvalidUtf8),
                            Ok(s) if *jsonl => parse_json_record(s, &self.fields),
                            Ok(s) => Ok(Record::text(s.trim_end())),
                        };
                        break Some(Item {
                            line: *line,
                            record,
                        });
                    }
                }
            }
            Inner::Csv {
                reader,
                text_col,
                label_col,
                slice_col,
                row,
            } => {
                match reader.read_byte_record(row) {
                    Ok(false) => None,
                    Ok(true) => {
                        let line = row.position().map(|p| p.line()).unwrap_or(0);
                        self.bytes_read = reader.position().byte();
                        Some(Item {
                            line,
                            record: csv_record(
                                row,
                                *text_col,
                                *label_col,
                                *slice_col,
                                &self.fields,
                            ),
                        })
                    }
                    Err(e) => {
                        // A malformed row (unequal field count): report it and go on.
                        let line = e.position().map(|p| p.line()).unwrap_or(0);
                        match e.kind() {
                            csv::ErrorKind::Io(_) => return Err(csv_fatal(&self.name, e)),
                            _ => Some(Item {
                                line,
                                record: Err(BadRecordKind::Csv(e.to_string())),
                            }),
                        }
                    }
                }
            }
        };
        match item {
            Some(it) => {
                self.yielded += 1;
                Ok(Some(it))
            }
            None => {
                self.finished = true;
                if self.yielded == 0 {
                    self.yielded = 1;
                    Ok(Some(Item {
                        line: 0,
                        record: Err(BadRecordKind::EmptyFile),
                    }))
                } else {
                    Ok(None)
                }
            }
        }
    }
}

fn csv_fatal(name: &Path, e: csv::Error) -> DataError {
    let line = e.position().map(|p| p.line()).unwrap_or(0);
    match e.into_kind() {
        csv::ErrorKind::Io(io) => DataError::io(name, io),
        other => DataError::BadRecord {
            path: name.to_path_buf(),
            line,
            kind: BadRecordKind::Csv(format!("{other:?}")),
        },
    }
}

fn trim_newline(buf: &[u8]) -> &[u8] {
    let mut end = buf.len();
    while end > 0 && (buf[end - 1] == b'\n' || buf[end - 1] == b'\r') {
        end -= 1;
    }
    &buf[..end]
}

fn read_paragraph(
    name: &Path,
    reader: &mut Box<dyn BufRead + Send>,
    line: &mut u64,
    buf: &mut Vec<u8>,
    blank_lines: &mut u64,
    bytes_read: &mut u64,
) -> Result<Option<Item>> {
    let mut para: Vec<u8> = Vec::new();
    let mut first_line = 0;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', buf)
            .map_err(|e| DataError::io(name, e))?;
        if n == 0 {
            break;
        }
        *bytes_read += n as u64;
        *line += 1;
        let bytes = trim_newline(buf);
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            *blank_lines += 1;
            if para.is_empty() {
                continue;
            }
            break;
        }
        if para.is_empty() {
            first_line = *line;
        } else {
            para.push(b'\n');
        }
        para.extend_from_slice(bytes);
    }
    if para.is_empty() {
        return Ok(None);
    }
    let record = match String::from_utf8(para) {
        Ok(s) => Ok(Record::text(s)),
        Err(_) => Err(BadRecordKind::InvalidUtf8),
    };
    Ok(Some(Item {
        line: first_line,
        record,
    }))
}

fn slice_from_value(
    v: &Value,
    field: &str,
) -> std::result::Result<BTreeMap<String, String>, BadRecordKind> {
    match v {
        Value::Null => Ok(BTreeMap::new()),
        Value::String(s) => Ok(parse_slice_string(s)),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                Value::Number(n) => Ok((k.clone(), n.to_string())),
                Value::Bool(b) => Ok((k.clone(), b.to_string())),
                _ => Err(BadRecordKind::WrongType {
                    field: format!("{field}.{k}"),
                    expected: "a string".into(),
                }),
            })
            .collect(),
        _ => Err(BadRecordKind::WrongType {
            field: field.into(),
            expected: "an object of strings or a `k=v;k=v` string".into(),
        }),
    }
}

/// Parses one JSONL line into a record.
pub fn parse_json_record(
    line: &str,
    fields: &FieldNames,
) -> std::result::Result<Record, BadRecordKind> {
    let v: Value = serde_json::from_str(line).map_err(|e| BadRecordKind::Json(e.to_string()))?;
    let Value::Object(obj) = v else {
        return Err(BadRecordKind::Json("the line is not a JSON object".into()));
    };
    let text = match obj.get(&fields.text) {
        None | Some(Value::Null) => return Err(BadRecordKind::MissingField(fields.text.clone())),
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(BadRecordKind::WrongType {
                field: fields.text.clone(),
                expected: "a string".into(),
            })
        }
    };
    let label = match obj.get(&fields.label) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::Bool(b)) => Some(b.to_string()),
        Some(_) => {
            return Err(BadRecordKind::WrongType {
                field: fields.label.clone(),
                expected: "a string or a number".into(),
            })
        }
    };
    if label.is_none() && fields.require_label {
        return Err(BadRecordKind::MissingField(fields.label.clone()));
    }
    let slice = match obj.get(&fields.slice) {
        None => BTreeMap::new(),
        Some(v) => slice_from_value(v, &fields.slice)?,
    };
    Ok(Record { text, label, slice })
}

fn csv_record(
    row: &csv::ByteRecord,
    text_col: Option<usize>,
    label_col: Option<usize>,
    slice_col: Option<usize>,
    fields: &FieldNames,
) -> std::result::Result<Record, BadRecordKind> {
    let get = |col: Option<usize>| -> std::result::Result<Option<String>, BadRecordKind> {
        match col.and_then(|c| row.get(c)) {
            None => Ok(None),
            Some(b) => std::str::from_utf8(b)
                .map(|s| Some(s.to_string()))
                .map_err(|_| BadRecordKind::InvalidUtf8),
        }
    };
    let text = get(text_col)?.ok_or_else(|| BadRecordKind::MissingField(fields.text.clone()))?;
    let label = get(label_col)?.filter(|s| !s.is_empty());
    if label.is_none() && fields.require_label {
        return Err(BadRecordKind::MissingField(fields.label.clone()));
    }
    let slice = get(slice_col)?
        .map(|s| parse_slice_string(&s))
        .unwrap_or_default();
    Ok(Record { text, label, slice })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(name: &str, bytes: &'static [u8], format: Format) -> SourceSpec {
        SourceSpec {
            input: SourceInput::Stream {
                name: name.into(),
                open: Arc::new(move || Box::new(std::io::Cursor::new(bytes))),
            },
            weight: 1.0,
            format,
        }
    }

    fn all(spec: &SourceSpec, fields: &FieldNames) -> Vec<Item> {
        let mut r = RecordReader::open(spec, fields).unwrap();
        let mut v = Vec::new();
        while let Some(it) = r.next_item().unwrap() {
            v.push(it);
        }
        v
    }

    #[test]
    fn jsonl_good_and_bad_lines_keep_their_line_numbers() {
        let src = stream(
            "a.jsonl",
            b"{\"text\":\"hi\",\"label\":\"x\",\"slice\":{\"region\":\"uk\"}}\n\n{bad\n{\"label\":\"y\"}\n{\"text\":5}\n\xff\xfe\n[1]\n{\"text\":\"t\",\"slice\":\"a=b\"}\n",
            Format::Jsonl,
        );
        let items = all(&src, &FieldNames::default());
        let lines: Vec<u64> = items.iter().map(|i| i.line).collect();
        assert_eq!(lines, vec![1, 3, 4, 5, 6, 7, 8]);
        assert_eq!(items[0].record.as_ref().unwrap().slice["region"], "uk");
        assert!(matches!(items[1].record, Err(BadRecordKind::Json(_))));
        assert_eq!(
            items[2].record,
            Err(BadRecordKind::MissingField("text".into()))
        );
        assert!(matches!(
            items[3].record,
            Err(BadRecordKind::WrongType { .. })
        ));
        assert_eq!(items[4].record, Err(BadRecordKind::InvalidUtf8));
        assert!(matches!(items[5].record, Err(BadRecordKind::Json(_))));
        assert_eq!(items[6].record.as_ref().unwrap().slice["a"], "b");
    }

    #[test]
    fn empty_file_is_reported() {
        let src = stream("e.txt", b"\n  \n", Format::Lines);
        let items = all(&src, &FieldNames::default());
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].record, Err(BadRecordKind::EmptyFile));
    }

    #[test]
    fn paragraphs_and_lines() {
        let src = stream("p.txt", b"a\nb\n\n\nc\n", Format::Paragraphs);
        let items = all(&src, &FieldNames::default());
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].record.as_ref().unwrap().text, "a\nb");
        assert_eq!(items[1].line, 5);
        let src = stream("l.txt", b"a\r\nb\n", Format::Lines);
        assert_eq!(all(&src, &FieldNames::default()).len(), 2);
    }

    #[test]
    fn csv_rows() {
        let src = stream(
            "c.csv",
            b"text,label,slice\n\"hello, you\",greet,region=us\nbad row\nno label,,\n",
            Format::Csv,
        );
        let items = all(&src, &FieldNames::default());
        assert_eq!(items.len(), 3);
        let r = items[0].record.as_ref().unwrap();
        assert_eq!(r.text, "hello, you");
        assert_eq!(r.slice["region"], "us");
        assert!(matches!(items[1].record, Err(BadRecordKind::Csv(_))));
        assert_eq!(items[1].line, 3);
        assert_eq!(items[2].record.as_ref().unwrap().label, None);
        let f = FieldNames {
            require_label: true,
            ..FieldNames::default()
        };
        let items = all(&src, &f);
        assert_eq!(
            items[2].record,
            Err(BadRecordKind::MissingField("label".into()))
        );
    }

    #[test]
    fn parse_spec_weights() {
        let s = SourceSpec::parse("data/a.jsonl:0.7").unwrap();
        assert_eq!(s.weight, 0.7);
        assert_eq!(s.format, Format::Jsonl);
        let s = SourceSpec::parse("b.txt").unwrap();
        assert_eq!(s.weight, 1.0);
        assert!(SourceSpec::parse("b.txt:-1").is_err());
    }
}
