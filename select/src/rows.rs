//! What the rows of both selections (keyword and text) share: the survivors of the footprint
//! step, the point each row puts on the Pareto front, the table cells and the plot points.

use std::fmt::Write as _;

use crate::error::{Result, SelectError};
use crate::footprint::Footprint;
use crate::pareto::Point;
use crate::plot::PlotPoint;
use crate::search::Brief;

/// A candidate's row of a selection table.
pub(crate) trait RankedRow {
    /// The candidate's name.
    fn name(&self) -> &str;
    /// Its footprint (none when its image could not be built).
    fn footprint(&self) -> Option<&Footprint>;
    /// Its brief training (survivors only).
    fn brief(&self) -> Option<&Brief>;
    /// Why it was dropped before training (empty: it was trained).
    fn dropped(&self) -> &[String];
    /// Whether it is on the Pareto front.
    fn on_front(&self) -> bool;
}

/// Implements [`RankedRow`] for a row struct with the fields `candidate` (with a `name`),
/// `footprint`, `brief`, `dropped` and `on_front`.
macro_rules! ranked_row {
    ($row:ty) => {
        impl $crate::rows::RankedRow for $row {
            fn name(&self) -> &str {
                &self.candidate.name
            }
            fn footprint(&self) -> Option<&$crate::footprint::Footprint> {
                self.footprint.as_ref()
            }
            fn brief(&self) -> Option<&$crate::search::Brief> {
                self.brief.as_ref()
            }
            fn dropped(&self) -> &[String] {
                &self.dropped
            }
            fn on_front(&self) -> bool {
                self.on_front
            }
        }
    };
}
pub(crate) use ranked_row;

/// Indices of the rows nothing dropped; [`SelectError::NothingFits`] listing every candidate
/// with its reasons when there are none.
pub(crate) fn survivors<R: RankedRow>(rows: &[R]) -> Result<Vec<usize>> {
    let survivors: Vec<usize> = (0..rows.len())
        .filter(|&i| rows[i].dropped().is_empty())
        .collect();
    if survivors.is_empty() {
        let why: Vec<String> = rows
            .iter()
            .map(|r| format!("  {}: {}", r.name(), r.dropped().join("; ")))
            .collect();
        return Err(SelectError::NothingFits(why.join("\n")));
    }
    Ok(survivors)
}

/// The row's point on the front: brief validation accuracy, latency and RAM (NaN where
/// missing, which keeps it off the front).
pub(crate) fn point<R: RankedRow>(r: &R) -> Point {
    let f = r.footprint();
    Point {
        accuracy: r.brief().map_or(f64::NAN, |b| b.val_accuracy as f64),
        latency: f.map_or(f64::NAN, |f| f.latency_ms),
        ram: f.map_or(f64::NAN, |f| f.ram_total as f64),
    }
}

fn kib(b: u64) -> String {
    format!("{:.1}", b as f64 / 1024.0)
}

/// The table cells both selections end a row with: params, image flash, flash bound, arena,
/// RAM total, MACs, instructions, latency, accuracy (ranked and fp32), front and status, each
/// followed by ` |`.
pub(crate) fn table_cells<R: RankedRow>(r: &R, chosen: bool) -> String {
    let (img, fl, ar, ram, macs, ins, ms) = match r.footprint() {
        Some(f) => (
            f.image.total.to_string(),
            kib(f.flash_bound),
            f.arena.to_string(),
            kib(f.ram_total),
            f.macs.to_string(),
            format!("{:.0}", f.instructions),
            format!("{:.2}", f.latency_ms),
        ),
        None => Default::default(),
    };
    let (params, acc, facc) = match r.brief() {
        Some(b) => (
            b.params.to_string(),
            format!("{:.3}", b.val_accuracy),
            format!("{:.3}", b.fp32_val_accuracy),
        ),
        None => Default::default(),
    };
    let status = if chosen {
        "**chosen**".to_string()
    } else if r.dropped().is_empty() {
        "trained".to_string()
    } else {
        format!("dropped: {}", r.dropped().join("; "))
    };
    let front = if r.on_front() { "●" } else { "" };
    format!(
        "{params} | {img} | {fl} | {ar} | {ram} | {macs} | {ins} | {ms} | {acc} | {facc} | {front} | {status} |"
    )
}

/// The chosen image's paragraph of the report: flash by section, arena, RAM, flash, cost, the
/// check against the prediction, then the ops the bench did not measure (if any).
pub(crate) fn image_summary(f: &Footprint, as_predicted: bool) -> String {
    let mut out = format!(
        "Image {} B (header+graph {}, constants {}: weights {}, biases {}, requantization {}; \
statistics {}), arena {} B (lower bound {}), RAM total {} B, flash total {} B (bound before \
training {} B), {} MACs, ~{:.0} instructions ≈ {:.2} ms.\nFootprint of the trained image equals \
the one predicted before training: **{}**.\n\n",
        f.image.total,
        f.image.header_and_graph,
        f.image.constants,
        f.image.weights,
        f.image.biases,
        f.image.requant_and_tables,
        f.image.statistics,
        f.arena,
        f.arena_lower_bound,
        f.ram_total,
        f.flash_total,
        f.flash_bound,
        f.macs,
        f.instructions,
        f.latency_ms,
        if as_predicted { "yes" } else { "NO" },
    );
    if !f.unmeasured_ops.is_empty() {
        let _ = writeln!(
            out,
            "Ops the firmware bench did not measure (counted as 0 instructions): {}.",
            f.unmeasured_ops.join(", ")
        );
    }
    out
}

/// Plot points of the rows with a footprint and a brief training; `winner` indexes `rows`.
pub(crate) fn plot_points<R: RankedRow>(rows: &[R], winner: usize) -> Vec<PlotPoint> {
    rows.iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let f = r.footprint()?;
            let b = r.brief()?;
            Some(PlotPoint {
                label: r.name().to_string(),
                latency_ms: f.latency_ms,
                accuracy: b.val_accuracy as f64,
                ram: f.ram_total,
                on_front: r.on_front(),
                winner: i == winner,
            })
        })
        .collect()
}
