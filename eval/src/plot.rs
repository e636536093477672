//! Small PNG charts for reports: line charts, bar charts, histograms, heatmaps, reliability
//! diagrams and token highlights.
//!
//! Everything renders with plotters' bitmap backend and a font shipped in this crate
//! (`eval/assets/DejaVuSans.ttf`, Bitstream Vera license beside it), so no system fonts or
//! fontconfig are needed. Other crates (trainer loss curves, data-card histograms, monitor
//! drift plots) call these functions directly.
//!
//! ```no_run
//! use edgeloop_eval::plot::{line_chart_png, ChartOptions, Series};
//! let loss = Series::new("train", vec![(0.0, 2.3), (1.0, 1.7), (2.0, 1.2)]);
//! line_chart_png("loss.png", &ChartOptions::new("Loss").x_label("step").y_label("nats"), &[loss])?;
//! # Ok::<(), edgeloop_eval::Error>(())
//! ```

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::error::{Error, Result};

const FONT: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
static FONT_READY: OnceLock<bool> = OnceLock::new();

/// Registers the shipped font with plotters once per process.
fn ensure_font(name: &str) -> Result<()> {
    let ok = *FONT_READY.get_or_init(|| register_font(FONT, FontStyle::Normal, FONT_BYTES).is_ok());
    if ok {
        Ok(())
    } else {
        Err(Error::Plot {
            name: name.to_string(),
            message: "the shipped font could not be parsed".to_string(),
        })
    }
}

/// Series colours, in order (colour-blind friendly "tab10"-like palette).
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Title, axis labels and size of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartOptions {
    /// Caption drawn above the chart.
    pub title: String,
    /// Label of the horizontal axis.
    pub x_label: String,
    /// Label of the vertical axis.
    pub y_label: String,
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
}

impl ChartOptions {
    /// Options with a title, no axis labels and an 800x500 image.
    pub fn new(title: impl Into<String>) -> Self {
        ChartOptions {
            title: title.into(),
            x_label: String::new(),
            y_label: String::new(),
            width: 800,
            height: 500,
        }
    }
    /// Sets the horizontal axis label.
    pub fn x_label(mut self, label: impl Into<String>) -> Self {
        self.x_label = label.into();
        self
    }
    /// Sets the vertical axis label.
    pub fn y_label(mut self, label: impl Into<String>) -> Self {
        self.y_label = label.into();
        self
    }
    /// Sets the image size in pixels.
    pub fn size(mut self, width: u32, height: u32) -> Self {
        self.width = width;
        self.height = height;
        self
    }
}

/// One named line of a line chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend entry.
    pub name: String,
    /// `(x, y)` points, drawn in the given order.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// A named series.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series {
            name: name.into(),
            points,
        }
    }
}

fn plot_err<E: std::fmt::Display>(name: &Path) -> impl Fn(E) -> Error + '_ {
    move |e| Error::Plot {
        name: name.display().to_string(),
        message: e.to_string(),
    }
}

fn check_size(path: &Path, opts: &ChartOptions) -> Result<()> {
    if opts.width < 100 || opts.height < 100 || opts.width > 8000 || opts.height > 8000 {
        return Err(Error::Plot {
            name: path.display().to_string(),
            message: format!(
                "image size {}x{} outside 100..=8000 pixels",
                opts.width, opts.height
            ),
        });
    }
    Ok(())
}

fn check_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() && !p.is_dir() => Err(Error::io(
            p,
            std::io::Error::new(std::io::ErrorKind::NotFound, "folder does not exist"),
        )),
        _ => Ok(()),
    }
}

/// Pads a degenerate range so plotters gets a non-empty span.
fn padded(lo: f64, hi: f64) -> (f64, f64) {
    if hi > lo {
        let pad = (hi - lo) * 0.05;
        (lo - pad, hi + pad)
    } else {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        (lo - pad, hi + pad)
    }
}

fn prepare(path: &Path, opts: &ChartOptions) -> Result<()> {
    ensure_font(&path.display().to_string())?;
    check_size(path, opts)?;
    check_parent(path)
}

/// Draws one or more lines (for example training and validation loss against step).
pub fn line_chart_png(
    path: impl AsRef<Path>,
    opts: &ChartOptions,
    series: &[Series],
) -> Result<()> {
    let path = path.as_ref();
    prepare(path, opts)?;
    let err = plot_err(path);
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for s in series {
        for (i, &(x, y)) in s.points.iter().enumerate() {
            if !x.is_finite() || !y.is_finite() {
                return Err(Error::InvalidValue {
                    what: format!("series {:?}", s.name),
                    index: i,
                    value: format!("({x}, {y})"),
                });
            }
            xs.push(x);
            ys.push(y);
        }
    }
    if xs.is_empty() {
        return Err(Error::Empty(format!("line chart {}", path.display())));
    }
    let (x0, x1) = padded(fold_min(&xs), fold_max(&xs));
    let (y0, y1) = padded(fold_min(&ys), fold_max(&ys));
    let root = BitMapBackend::new(path, (opts.width, opts.height)).into_drawing_area();
    root.fill(&WHITE).map_err(&err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(&opts.title, (FONT, 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(&err)?;
    chart
        .configure_mesh()
        .x_desc(&opts.x_label)
        .y_desc(&opts.y_label)
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 16))
        .draw()
        .map_err(&err)?;
    for (i, s) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(
                s.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(&err)?
            .label(s.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    if series.iter().any(|s| !s.name.is_empty()) {
        chart
            .configure_series_labels()
            .label_font((FONT, 14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(&err)?;
    }
    root.present().map_err(&err)?;
    Ok(())
}

/// Draws one bar per label (values may be negative, for deltas).
pub fn bar_chart_png(
    path: impl AsRef<Path>,
    opts: &ChartOptions,
    labels: &[String],
    values: &[f64],
) -> Result<()> {
    let path = path.as_ref();
    prepare(path, opts)?;
    crate::error::same_len("bar chart labels vs values", labels.len(), values.len())?;
    crate::error::all_finite("bar chart values", values)?;
    if values.is_empty() {
        return Err(Error::Empty(format!("bar chart {}", path.display())));
    }
    let err = plot_err(path);
    let lo = fold_min(values).min(0.0);
    let hi = fold_max(values).max(0.0);
    let (mut y0, y1) = padded(lo, hi);
    if lo >= 0.0 {
        y0 = 0.0;
    }
    let n = values.len();
    let root = BitMapBackend::new(path, (opts.width, opts.height)).into_drawing_area();
    root.fill(&WHITE).map_err(&err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(&opts.title, (FONT, 22))
        .margin(12)
        .x_label_area_size(60)
        .y_label_area_size(70)
        .build_cartesian_2d((0..n - 1).into_segmented(), y0..y1)
        .map_err(&err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                labels.get(*i).cloned().unwrap_or_default()
            }
            SegmentValue::Last => String::new(),
        })
        .x_desc(&opts.x_label)
        .y_desc(&opts.y_label)
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 16))
        .draw()
        .map_err(&err)?;
    chart
        .draw_series(
            Histogram::vertical(&chart)
                .style(PALETTE[0].filled())
                .margin(8)
                .data(values.iter().enumerate().map(|(i, v)| (i, *v))),
        )
        .map_err(&err)?;
    root.present().map_err(&err)?;
    Ok(())
}

/// Draws a histogram of `values` with `bins` equal-width bins between their minimum and maximum.
pub fn histogram_png(
    path: impl AsRef<Path>,
    opts: &ChartOptions,
    values: &[f64],
    bins: usize,
) -> Result<()> {
    let path = path.as_ref();
    prepare(path, opts)?;
    crate::error::all_finite("histogram values", values)?;
    if values.is_empty() {
        return Err(Error::Empty(format!("histogram {}", path.display())));
    }
    if bins == 0 || bins > 10_000 {
        return Err(Error::InvalidArgument(format!(
            "histogram bins must be in 1..=10000, got {bins}"
        )));
    }
    let err = plot_err(path);
    let lo = fold_min(values);
    let mut hi = fold_max(values);
    if hi <= lo {
        hi = lo + 1.0;
    }
    let width = (hi - lo) / bins as f64;
    let mut counts = vec![0u64; bins];
    for &v in values {
        let b = (((v - lo) / width) as usize).min(bins - 1);
        counts[b] += 1;
    }
    let max_count = counts.iter().copied().max().unwrap_or(1).max(1) as f64;
    let root = BitMapBackend::new(path, (opts.width, opts.height)).into_drawing_area();
    root.fill(&WHITE).map_err(&err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(&opts.title, (FONT, 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(lo..hi, 0.0..max_count * 1.05)
        .map_err(&err)?;
    let y_label = if opts.y_label.is_empty() {
        "count"
    } else {
        opts.y_label.as_str()
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc(&opts.x_label)
        .y_desc(y_label)
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 16))
        .draw()
        .map_err(&err)?;
    chart
        .draw_series(counts.iter().enumerate().map(|(i, &c)| {
            let x0 = lo + width * i as f64;
            Rectangle::new([(x0, 0.0), (x0 + width, c as f64)], PALETTE[0].filled())
        }))
        .map_err(&err)?;
    chart
        .draw_series(counts.iter().enumerate().map(|(i, &c)| {
            let x0 = lo + width * i as f64;
            Rectangle::new([(x0, 0.0), (x0 + width, c as f64)], WHITE.stroke_width(1))
        }))
        .map_err(&err)?;
    root.present().map_err(&err)?;
    Ok(())
}

/// Draws a matrix as coloured cells with the value printed in each (for example a confusion
/// matrix: rows = true class, columns = predicted class). `values[r][c]`.
pub fn heatmap_png(
    path: impl AsRef<Path>,
    opts: &ChartOptions,
    row_labels: &[String],
    col_labels: &[String],
    values: &[Vec<f64>],
) -> Result<()> {
    let path = path.as_ref();
    prepare(path, opts)?;
    crate::error::same_len("heatmap rows vs row labels", values.len(), row_labels.len())?;
    if values.is_empty() || col_labels.is_empty() {
        return Err(Error::Empty(format!("heatmap {}", path.display())));
    }
    for (r, row) in values.iter().enumerate() {
        crate::error::same_len(
            &format!("heatmap row {r} vs column labels"),
            row.len(),
            col_labels.len(),
        )?;
        crate::error::all_finite(&format!("heatmap row {r}"), row)?;
    }
    let err = plot_err(path);
    let root = BitMapBackend::new(path, (opts.width, opts.height)).into_drawing_area();
    root.fill(&WHITE).map_err(&err)?;
    let (w, h) = (opts.width as i32, opts.height as i32);
    let title_h = 40;
    let left = 20 + max_text_width(&root, row_labels, 14)?.min(w / 3);
    let bottom = 30 + if opts.x_label.is_empty() { 0 } else { 22 };
    let top = title_h + 26;
    let right = 20;
    let rows = values.len() as i32;
    let cols = col_labels.len() as i32;
    let cell_w = ((w - left - right) / cols).max(1);
    let cell_h = ((h - top - bottom) / rows).max(1);
    root.draw(&Text::new(
        opts.title.clone(),
        (12, 10),
        (FONT, 22).into_font().color(&BLACK),
    ))
    .map_err(&err)?;
    let vmin = values
        .iter()
        .flatten()
        .copied()
        .fold(f64::INFINITY, f64::min);
    let vmax = values
        .iter()
        .flatten()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    let span = if vmax > vmin { vmax - vmin } else { 1.0 };
    let font_px = (cell_h / 3).clamp(9, 18);
    for (r, row) in values.iter().enumerate() {
        for (c, &v) in row.iter().enumerate() {
            let t = (v - vmin) / span;
            let color = RGBColor(
                (247.0 - t * (247.0 - 8.0)) as u8,
                (251.0 - t * (251.0 - 48.0)) as u8,
                (255.0 - t * (255.0 - 107.0)) as u8,
            );
            let x0 = left + c as i32 * cell_w;
            let y0 = top + r as i32 * cell_h;
            root.draw(&Rectangle::new(
                [(x0, y0), (x0 + cell_w, y0 + cell_h)],
                color.filled(),
            ))
            .map_err(&err)?;
            root.draw(&Rectangle::new(
                [(x0, y0), (x0 + cell_w, y0 + cell_h)],
                WHITE.stroke_width(1),
            ))
            .map_err(&err)?;
            let text = format_cell(v);
            let text_color = if t > 0.55 { WHITE } else { BLACK };
            let style = (FONT, font_px).into_font().color(&text_color);
            let (tw, th) = root.estimate_text_size(&text, &style).map_err(&err)?;
            root.draw(&Text::new(
                text,
                (x0 + (cell_w - tw as i32) / 2, y0 + (cell_h - th as i32) / 2),
                style,
            ))
            .map_err(&err)?;
        }
    }
    let label_style = (FONT, 14).into_font().color(&BLACK);
    for (r, label) in row_labels.iter().enumerate() {
        let (tw, th) = root.estimate_text_size(label, &label_style).map_err(&err)?;
        let y = top + r as i32 * cell_h + (cell_h - th as i32) / 2;
        root.draw(&Text::new(
            label.clone(),
            (left - 8 - tw as i32, y),
            label_style.clone(),
        ))
        .map_err(&err)?;
    }
    for (c, label) in col_labels.iter().enumerate() {
        let (tw, _) = root.estimate_text_size(label, &label_style).map_err(&err)?;
        let x = left + c as i32 * cell_w + (cell_w - tw as i32) / 2;
        root.draw(&Text::new(
            label.clone(),
            (x, top - 22),
            label_style.clone(),
        ))
        .map_err(&err)?;
    }
    let desc_style = (FONT, 16).into_font().color(&BLACK);
    if !opts.x_label.is_empty() {
        root.draw(&Text::new(
            opts.x_label.clone(),
            (left, top + rows * cell_h + 8),
            desc_style.clone(),
        ))
        .map_err(&err)?;
    }
    if !opts.y_label.is_empty() {
        root.draw(&Text::new(
            opts.y_label.clone(),
            (12, title_h + 4),
            desc_style,
        ))
        .map_err(&err)?;
    }
    root.present().map_err(&err)?;
    Ok(())
}

/// Draws a reliability diagram: per-bin accuracy as bars, mean confidence as points, and the
/// diagonal of perfect calibration. All slices have one entry per bin; `bin_edges` has one more.
/// Bins with `counts == 0` are left empty.
pub fn reliability_png(
    path: impl AsRef<Path>,
    opts: &ChartOptions,
    bin_edges: &[f64],
    accuracy: &[f64],
    confidence: &[f64],
    counts: &[u64],
) -> Result<()> {
    let path = path.as_ref();
    prepare(path, opts)?;
    let n = accuracy.len();
    crate::error::same_len("reliability bin edges vs bins + 1", bin_edges.len(), n + 1)?;
    crate::error::same_len("reliability accuracy vs confidence", n, confidence.len())?;
    crate::error::same_len("reliability accuracy vs counts", n, counts.len())?;
    crate::error::all_finite("reliability bin edges", bin_edges)?;
    let err = plot_err(path);
    let root = BitMapBackend::new(path, (opts.width, opts.height)).into_drawing_area();
    root.fill(&WHITE).map_err(&err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(&opts.title, (FONT, 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..1.0, 0.0..1.0)
        .map_err(&err)?;
    chart
        .configure_mesh()
        .x_desc(if opts.x_label.is_empty() {
            "confidence"
        } else {
            &opts.x_label
        })
        .y_desc(if opts.y_label.is_empty() {
            "accuracy"
        } else {
            &opts.y_label
        })
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 16))
        .draw()
        .map_err(&err)?;
    let filled = |i: usize| counts[i] > 0 && accuracy[i].is_finite() && confidence[i].is_finite();
    chart
        .draw_series((0..n).filter(|&i| filled(i)).map(|i| {
            Rectangle::new(
                [(bin_edges[i], 0.0), (bin_edges[i + 1], accuracy[i])],
                PALETTE[0].mix(0.75).filled(),
            )
        }))
        .map_err(&err)?
        .label("accuracy")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 18, y + 5)], PALETTE[0].filled()));
    chart
        .draw_series((0..n).filter(|&i| filled(i)).map(|i| {
            Rectangle::new(
                [(bin_edges[i], 0.0), (bin_edges[i + 1], accuracy[i])],
                WHITE.stroke_width(1),
            )
        }))
        .map_err(&err)?;
    chart
        .draw_series(LineSeries::new(
            vec![(0.0, 0.0), (1.0, 1.0)],
            BLACK.mix(0.6).stroke_width(1),
        ))
        .map_err(&err)?
        .label("perfect calibration")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK));
    chart
        .draw_series((0..n).filter(|&i| filled(i)).map(|i| {
            let mid = 0.5 * (bin_edges[i] + bin_edges[i + 1]);
            Circle::new((mid, confidence[i]), 4, PALETTE[1].filled())
        }))
        .map_err(&err)?
        .label("mean confidence")
        .legend(|(x, y)| Circle::new((x + 9, y), 4, PALETTE[1].filled()));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(&err)?;
    root.present().map_err(&err)?;
    Ok(())
}

/// Draws tokens as text with a background whose colour shows each token's score: red for
/// positive, blue for negative, white for zero, scaled by the largest absolute score.
/// Lines wrap at the image width; the height grows to fit.
pub fn token_highlight_png(
    path: impl AsRef<Path>,
    title: &str,
    tokens: &[String],
    scores: &[f64],
    width: u32,
) -> Result<()> {
    let path = path.as_ref();
    let err = plot_err(path);
    let opts = ChartOptions::new(title).size(width, 200);
    prepare(path, &opts)?;
    crate::error::same_len("highlight tokens vs scores", tokens.len(), scores.len())?;
    crate::error::all_finite("highlight scores", scores)?;
    let scale = scores.iter().fold(0.0f64, |m, s| m.max(s.abs()));
    let scale = if scale > 0.0 { scale } else { 1.0 };
    // Lay out first (with a throwaway area for text metrics), then draw.
    let font_px = 18;
    let line_h = 30;
    let pad = 12;
    let mut positions = Vec::with_capacity(tokens.len());
    {
        let mut scratch = [0u8; 3 * 16 * 16];
        let probe = BitMapBackend::with_buffer(&mut scratch, (16, 16)).into_drawing_area();
        let style = (FONT, font_px).into_font().color(&BLACK);
        let (mut x, mut y) = (pad, 50);
        for t in tokens {
            let (tw, _) = probe.estimate_text_size(t, &style).map_err(&err)?;
            let tw = tw as i32 + 8;
            if x + tw > width as i32 - pad && x > pad {
                x = pad;
                y += line_h + 6;
            }
            positions.push((x, y, tw));
            x += tw + 4;
        }
    }
    let height = positions
        .last()
        .map_or(100, |p| p.1 + line_h + pad)
        .max(100) as u32;
    let root: DrawingArea<BitMapBackend, Shift> =
        BitMapBackend::new(path, (width, height)).into_drawing_area();
    root.fill(&WHITE).map_err(&err)?;
    root.draw(&Text::new(
        title.to_string(),
        (pad, 10),
        (FONT, 20).into_font().color(&BLACK),
    ))
    .map_err(&err)?;
    for ((t, &s), &(x, y, tw)) in tokens.iter().zip(scores).zip(&positions) {
        let a = (s.abs() / scale).min(1.0);
        let base = if s >= 0.0 {
            RGBColor(214, 39, 40)
        } else {
            RGBColor(31, 119, 180)
        };
        let bg = RGBColor(
            (255.0 + (base.0 as f64 - 255.0) * a) as u8,
            (255.0 + (base.1 as f64 - 255.0) * a) as u8,
            (255.0 + (base.2 as f64 - 255.0) * a) as u8,
        );
        root.draw(&Rectangle::new([(x, y), (x + tw, y + line_h)], bg.filled()))
            .map_err(&err)?;
        let fg = if a > 0.6 { WHITE } else { BLACK };
        root.draw(&Text::new(
            t.clone(),
            (x + 4, y + 5),
            (FONT, font_px).into_font().color(&fg),
        ))
        .map_err(&err)?;
    }
    root.present().map_err(&err)?;
    Ok(())
}

fn max_text_width<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    labels: &[String],
    px: u32,
) -> Result<i32> {
    let style = (FONT, px).into_font().color(&BLACK);
    let mut widest = 0;
    for l in labels {
        let (w, _) = area
            .estimate_text_size(l, &style)
            .map_err(|e| Error::Plot {
                name: "text metrics".to_string(),
                message: e.to_string(),
            })?;
        widest = widest.max(w as i32);
    }
    Ok(widest)
}

fn format_cell(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e9 {
        format!("{}", v as i64)
    } else {
        format!("{v:.2}")
    }
}

fn fold_min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn fold_max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out_dir(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("edgeloop-eval-plot-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    /// Decodes a PNG and counts the distinct colours, to show something was drawn.
    fn distinct_colours(path: &Path) -> usize {
        let bytes = std::fs::read(path).expect("png written");
        assert_eq!(
            &bytes[..8],
            b"\x89PNG\r\n\x1a\n",
            "{} is not a PNG",
            path.display()
        );
        let img = image::load_from_memory(&bytes)
            .expect("decodable png")
            .to_rgb8()
            .into_raw();
        let mut set = std::collections::HashSet::new();
        for px in img.chunks(3) {
            set.insert((px[0], px[1], px[2]));
        }
        set.len()
    }

    #[test]
    fn every_chart_kind_draws_a_non_trivial_png() {
        let dir = out_dir("kinds");
        let opts = ChartOptions::new("Loss").x_label("step").y_label("nats");
        let line = dir.join("line.png");
        line_chart_png(
            &line,
            &opts,
            &[
                Series::new(
                    "train",
                    (0..50)
                        .map(|i| (i as f64, 3.0 / (1.0 + i as f64)))
                        .collect(),
                ),
                Series::new(
                    "valid",
                    (0..50)
                        .map(|i| (i as f64, 3.5 / (1.0 + 0.8 * i as f64)))
                        .collect(),
                ),
            ],
        )
        .unwrap();
        let bar = dir.join("bar.png");
        bar_chart_png(
            &bar,
            &ChartOptions::new("Accuracy by slice"),
            &["a".into(), "b".into(), "c".into()],
            &[0.9, -0.2, 0.5],
        )
        .unwrap();
        let hist = dir.join("hist.png");
        histogram_png(
            &hist,
            &ChartOptions::new("Lengths").x_label("tokens"),
            &[1.0, 2.0, 2.5, 7.0, 9.0],
            4,
        )
        .unwrap();
        let heat = dir.join("heat.png");
        heatmap_png(
            &heat,
            &ChartOptions::new("Confusion")
                .x_label("predicted")
                .y_label("true"),
            &["cat".into(), "dog".into()],
            &["cat".into(), "dog".into()],
            &[vec![5.0, 1.0], vec![2.0, 7.0]],
        )
        .unwrap();
        let rel = dir.join("rel.png");
        reliability_png(
            &rel,
            &ChartOptions::new("Reliability"),
            &[0.0, 0.5, 1.0],
            &[0.4, 0.8],
            &[0.3, 0.9],
            &[3, 5],
        )
        .unwrap();
        let tok = dir.join("tok.png");
        token_highlight_png(
            &tok,
            "Attributions",
            &["the".into(), "film".into(), "was".into(), "great".into()],
            &[0.0, 0.1, -0.3, 0.9],
            600,
        )
        .unwrap();
        for p in [line, bar, hist, heat, rel, tok] {
            let n = distinct_colours(&p);
            assert!(
                n > 10,
                "{} has only {n} colours: nothing drawn?",
                p.display()
            );
        }
    }

    #[test]
    fn bad_inputs_are_errors_not_panics() {
        let dir = out_dir("bad");
        let opts = ChartOptions::new("x");
        assert!(line_chart_png(dir.join("a.png"), &opts, &[]).is_err());
        assert!(line_chart_png(
            dir.join("a.png"),
            &opts,
            &[Series::new("s", vec![(0.0, f64::NAN)])]
        )
        .is_err());
        assert!(bar_chart_png(dir.join("b.png"), &opts, &["a".into()], &[]).is_err());
        assert!(histogram_png(dir.join("c.png"), &opts, &[1.0], 0).is_err());
        assert!(heatmap_png(
            dir.join("d.png"),
            &opts,
            &["r".into()],
            &["c".into()],
            &[vec![1.0, 2.0]]
        )
        .is_err());
        assert!(line_chart_png(
            dir.join("no/such/dir/a.png"),
            &opts,
            &[Series::new("s", vec![(0.0, 1.0)])]
        )
        .is_err());
        assert!(line_chart_png(
            dir.join("a.png"),
            &opts.clone().size(10, 10),
            &[Series::new("s", vec![(0.0, 1.0)])]
        )
        .is_err());
    }

    #[test]
    fn degenerate_ranges_still_draw() {
        let dir = out_dir("degenerate");
        let opts = ChartOptions::new("flat");
        line_chart_png(
            dir.join("flat.png"),
            &opts,
            &[Series::new("s", vec![(1.0, 2.0)])],
        )
        .unwrap();
        histogram_png(dir.join("same.png"), &opts, &[3.0, 3.0, 3.0], 5).unwrap();
        bar_chart_png(dir.join("zero.png"), &opts, &["z".into()], &[0.0]).unwrap();
    }
}
