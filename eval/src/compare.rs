//! Side-by-side comparison of backends on the same evaluation set: one row per backend
//! (fp32 candle, int8 ONNX in ONNX Runtime, int8 ONNX in tract, the model image on the runtime),
//! one column per metric, with deltas against a reference row. This is the table a user reads
//! before flashing a model.
//!
//! The table only holds numbers; filling it from the real backends is the caller's job (the
//! CLI / demo run each backend and add a row).

use serde::{Deserialize, Serialize};

use crate::classification::ClassificationSummary;
use crate::error::{Error, Result};

/// Conventional backend names.
pub mod backends {
    /// fp32 model run by candle.
    pub const FP32_CANDLE: &str = "fp32 (candle)";
    /// int8 QDQ ONNX run by ONNX Runtime.
    pub const INT8_ORT: &str = "int8 ONNX (ONNX Runtime)";
    /// int8 QDQ ONNX run by tract.
    pub const INT8_TRACT: &str = "int8 ONNX (tract)";
    /// Model image run by the edgeloop runtime.
    pub const IMAGE_RUNTIME: &str = "model image (runtime)";
}

/// A metric column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricColumn {
    /// Column title.
    pub name: String,
    /// Whether larger values are better (decides which deltas count as regressions).
    pub higher_is_better: bool,
}

/// One backend's values, aligned with the columns (`None` = not measured).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendRow {
    /// Backend name.
    pub backend: String,
    /// One value per column.
    pub values: Vec<Option<f64>>,
}

/// The side-by-side table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparisonTable {
    /// Columns.
    pub columns: Vec<MetricColumn>,
    /// Rows; deltas are taken against `rows[reference]`.
    pub rows: Vec<BackendRow>,
    /// Index of the reference row.
    pub reference: usize,
}

impl ComparisonTable {
    /// An empty table with these columns; the first row added becomes the reference.
    pub fn new(columns: Vec<MetricColumn>) -> Self {
        ComparisonTable {
            columns,
            rows: Vec::new(),
            reference: 0,
        }
    }

    /// Columns for classification: accuracy, macro F1, weighted F1, macro precision, macro recall.
    pub fn classification_columns() -> Vec<MetricColumn> {
        [
            "accuracy",
            "macro F1",
            "weighted F1",
            "macro precision",
            "macro recall",
        ]
        .iter()
        .map(|n| MetricColumn {
            name: n.to_string(),
            higher_is_better: true,
        })
        .collect()
    }

    /// Adds a row; its length must match the columns and values must be finite.
    pub fn add_row(&mut self, backend: impl Into<String>, values: Vec<Option<f64>>) -> Result<()> {
        let backend = backend.into();
        crate::error::same_len(
            &format!("row {backend:?} vs columns"),
            values.len(),
            self.columns.len(),
        )?;
        if let Some(i) = values
            .iter()
            .position(|v| v.is_some_and(|x| !x.is_finite()))
        {
            return Err(Error::InvalidValue {
                what: format!("row {backend:?}"),
                index: i,
                value: format!("{:?}", values[i]),
            });
        }
        self.rows.push(BackendRow { backend, values });
        Ok(())
    }

    /// Adds a row from a classification summary (with [`Self::classification_columns`]).
    pub fn add_classification(
        &mut self,
        backend: impl Into<String>,
        s: &ClassificationSummary,
    ) -> Result<()> {
        let f = |v: f64| v.is_finite().then_some(v);
        self.add_row(
            backend,
            vec![
                f(s.accuracy),
                f(s.macro_avg.f1),
                f(s.weighted_avg.f1),
                f(s.macro_avg.precision),
                f(s.macro_avg.recall),
            ],
        )
    }

    /// Sets the reference row by backend name.
    pub fn set_reference(&mut self, backend: &str) -> Result<()> {
        self.reference = self
            .rows
            .iter()
            .position(|r| r.backend == backend)
            .ok_or_else(|| Error::InvalidArgument(format!("no row named {backend:?}")))?;
        Ok(())
    }

    /// `value − reference value` per cell (`None` where either is missing; the reference row is
    /// all zeros where it has values).
    pub fn deltas(&self) -> Vec<Vec<Option<f64>>> {
        let Some(reference) = self.rows.get(self.reference) else {
            return Vec::new();
        };
        self.rows
            .iter()
            .map(|r| {
                r.values
                    .iter()
                    .zip(&reference.values)
                    .map(|(v, b)| Some((*v)? - (*b)?))
                    .collect()
            })
            .collect()
    }

    fn cell_text(&self, row: usize, col: usize, deltas: &[Vec<Option<f64>>]) -> String {
        match self.rows[row].values[col] {
            None => "—".to_string(),
            Some(v) if row == self.reference => format!("{v:.4}"),
            Some(v) => match deltas[row][col] {
                Some(d) => format!("{v:.4} ({d:+.4})"),
                None => format!("{v:.4}"),
            },
        }
    }

    /// Markdown table; non-reference cells show the delta in parentheses.
    pub fn to_markdown(&self) -> String {
        let deltas = self.deltas();
        let mut s = String::from("| backend |");
        for c in &self.columns {
            s.push_str(&format!(" {} |", md_escape(&c.name)));
        }
        s.push_str("\n|---|");
        s.push_str(&"---:|".repeat(self.columns.len()));
        s.push('\n');
        for (i, r) in self.rows.iter().enumerate() {
            let name = if i == self.reference {
                format!("{} (reference)", md_escape(&r.backend))
            } else {
                md_escape(&r.backend)
            };
            s.push_str(&format!("| {name} |"));
            for c in 0..self.columns.len() {
                s.push_str(&format!(" {} |", self.cell_text(i, c, &deltas)));
            }
            s.push('\n');
        }
        s
    }

    /// HTML table; regressions (worse than the reference) are marked with class `worse`.
    pub fn to_html(&self) -> String {
        let deltas = self.deltas();
        let mut s = String::from("<table class=\"compare\"><thead><tr><th>backend</th>");
        for c in &self.columns {
            s.push_str(&format!("<th>{}</th>", html_escape(&c.name)));
        }
        s.push_str("</tr></thead><tbody>");
        for (i, r) in self.rows.iter().enumerate() {
            let name = if i == self.reference {
                format!("{} <em>(reference)</em>", html_escape(&r.backend))
            } else {
                html_escape(&r.backend)
            };
            s.push_str(&format!("<tr><td>{name}</td>"));
            for (c, col) in self.columns.iter().enumerate() {
                let worse = deltas[i][c].is_some_and(|d| {
                    if col.higher_is_better {
                        d < 0.0
                    } else {
                        d > 0.0
                    }
                });
                let class = if worse { " class=\"worse\"" } else { "" };
                s.push_str(&format!(
                    "<td{class}>{}</td>",
                    html_escape(&self.cell_text(i, c, &deltas))
                ));
            }
            s.push_str("</tr>");
        }
        s.push_str("</tbody></table>");
        s
    }
}

/// Escapes text for HTML.
pub(crate) fn html_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

/// Escapes text for a Markdown table cell.
pub(crate) fn md_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_and_rendering() {
        let mut t = ComparisonTable::new(vec![
            MetricColumn {
                name: "accuracy".into(),
                higher_is_better: true,
            },
            MetricColumn {
                name: "latency ms".into(),
                higher_is_better: false,
            },
        ]);
        t.add_row(backends::FP32_CANDLE, vec![Some(0.9), Some(10.0)])
            .unwrap();
        t.add_row(backends::INT8_ORT, vec![Some(0.88), Some(4.0)])
            .unwrap();
        t.add_row(backends::IMAGE_RUNTIME, vec![Some(0.88), None])
            .unwrap();
        let d = t.deltas();
        assert!((d[1][0].unwrap() + 0.02).abs() < 1e-12);
        assert_eq!(d[1][1], Some(-6.0));
        assert_eq!(d[2][1], None);
        let md = t.to_markdown();
        assert!(
            md.contains("| fp32 (candle) (reference) | 0.9000 | 10.0000 |"),
            "{md}"
        );
        assert!(md.contains("0.8800 (-0.0200)"), "{md}");
        let html = t.to_html();
        assert_eq!(html.matches("class=\"worse\"").count(), 2, "{html}");
        assert!(t.add_row("x", vec![Some(1.0)]).is_err());
        assert!(t.add_row("x", vec![Some(f64::NAN), None]).is_err());
        t.set_reference(backends::INT8_ORT).unwrap();
        assert_eq!(t.deltas()[1][0], Some(0.0));
        assert!(t.set_reference("nope").is_err());
    }
}
