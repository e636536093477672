//! The front as a PNG: every trained candidate at (latency, validation accuracy), the front's
//! members joined in latency order, marker size growing with RAM, and the winner ringed.
//!
//! The eval crate's charts (line, bar, histogram, heatmap) have no scatter plot, so this one is
//! drawn here with plotters and the font the eval crate ships.

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::error::{Result, SelectError};

const FONT: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../../eval/assets/DejaVuSans.ttf");
static FONT_READY: OnceLock<bool> = OnceLock::new();

/// One point of the plot.
#[derive(Debug, Clone, PartialEq)]
pub struct PlotPoint {
    /// Label drawn beside the marker.
    pub label: String,
    /// Latency (ms).
    pub latency_ms: f64,
    /// Validation accuracy (0..1).
    pub accuracy: f64,
    /// RAM total (bytes).
    pub ram: u64,
    /// On the front.
    pub on_front: bool,
    /// The winner.
    pub winner: bool,
}

/// Draws the front to `path` (800 × 560 PNG).
pub fn front_png(path: &Path, title: &str, points: &[PlotPoint]) -> Result<()> {
    let err = |m: String| SelectError::Plot {
        path: path.to_path_buf(),
        message: m,
    };
    if points.is_empty() {
        return Err(err("no trained candidate to plot".into()));
    }
    if points
        .iter()
        .any(|p| !p.latency_ms.is_finite() || !p.accuracy.is_finite())
    {
        return Err(err("a point is not finite".into()));
    }
    if !*FONT_READY.get_or_init(|| register_font(FONT, FontStyle::Normal, FONT_BYTES).is_ok()) {
        return Err(err("the shipped font could not be parsed".into()));
    }
    let e = |x: &dyn std::fmt::Display| err(x.to_string());
    let lat_max = points.iter().map(|p| p.latency_ms).fold(0.0, f64::max) * 1.45 + 1e-3;
    let acc_lo = points.iter().map(|p| p.accuracy).fold(1.0, f64::min);
    let acc_hi = points.iter().map(|p| p.accuracy).fold(0.0, f64::max);
    let pad = ((acc_hi - acc_lo) * 0.1).max(0.02);
    let (y0, y1) = ((acc_lo - pad).max(0.0), (acc_hi + pad).min(1.0));
    let ram_max = points.iter().map(|p| p.ram).max().unwrap_or(1).max(1) as f64;
    let root = BitMapBackend::new(path, (800, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 20))
        .margin(14)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..lat_max, y0..y1)
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .x_desc("estimated latency per inference (ms)")
        .y_desc("validation accuracy (brief training)")
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 15))
        .draw()
        .map_err(|x| e(&x))?;
    let blue = RGBColor(31, 119, 180);
    let grey = RGBColor(150, 150, 150);
    let red = RGBColor(214, 39, 40);
    let mut fr: Vec<&PlotPoint> = points.iter().filter(|p| p.on_front).collect();
    fr.sort_by(|a, b| a.latency_ms.total_cmp(&b.latency_ms));
    chart
        .draw_series(LineSeries::new(
            fr.iter().map(|p| (p.latency_ms, p.accuracy)),
            blue.stroke_width(1),
        ))
        .map_err(|x| e(&x))?
        .label("Pareto front (accuracy, latency, RAM)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], blue.stroke_width(2)));
    let radius = |ram: u64| 3 + (7.0 * ram as f64 / ram_max).round() as i32;
    chart
        .draw_series(
            points
                .iter()
                .filter(|p| !p.on_front)
                .map(|p| Circle::new((p.latency_ms, p.accuracy), radius(p.ram), grey.filled())),
        )
        .map_err(|x| e(&x))?
        .label("dominated (marker size: RAM)")
        .legend(move |(x, y)| Circle::new((x + 10, y), 4, grey.filled()));
    chart
        .draw_series(
            fr.iter()
                .map(|p| Circle::new((p.latency_ms, p.accuracy), radius(p.ram), blue.filled())),
        )
        .map_err(|x| e(&x))?;
    chart
        .draw_series(points.iter().filter(|p| p.winner).map(|p| {
            Circle::new(
                (p.latency_ms, p.accuracy),
                radius(p.ram) + 4,
                red.stroke_width(2),
            )
        }))
        .map_err(|x| e(&x))?
        .label("chosen")
        .legend(move |(x, y)| Circle::new((x + 10, y), 6, red.stroke_width(2)));
    chart
        .draw_series(points.iter().map(|p| {
            EmptyElement::at((p.latency_ms, p.accuracy))
                + Text::new(
                    format!("{} ({} KiB)", p.label, p.ram.div_ceil(1024)),
                    (radius(p.ram) + 3, -5),
                    (FONT, 11).into_font(),
                )
        }))
        .map_err(|x| e(&x))?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_a_png_and_refuses_bad_points() {
        let dir = std::env::temp_dir().join(format!("edgeloop-select-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = |l: &str, lat, acc, ram, on_front, winner| PlotPoint {
            label: l.into(),
            latency_ms: lat,
            accuracy: acc,
            ram,
            on_front,
            winner,
        };
        let pts = vec![
            p("a", 10.0, 0.6, 30_000, true, false),
            p("b", 20.0, 0.8, 40_000, true, true),
            p("c", 25.0, 0.7, 50_000, false, false),
        ];
        let png = dir.join("front.png");
        front_png(&png, "test", &pts).unwrap();
        let bytes = std::fs::read(&png).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        assert!(front_png(&png, "t", &[]).is_err());
        assert!(front_png(&png, "t", &[p("x", f64::NAN, 0.5, 1, true, true)]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
