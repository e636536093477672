//! Writes a [`DriftReport`] as `drift_report.json`, `drift_report.md` and PNG plots.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use edgeloop_eval::plot::{bar_chart_png, line_chart_png, ChartOptions, Series};

use crate::drift::DriftReport;
use crate::store::utc_date;
use crate::{Error, Result};

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_string(), |v| format!("{v:.3}"))
}

/// Writes the report into `out` (created if needed) and returns the files written.
pub fn write(report: &DriftReport, out: &Path) -> Result<Vec<PathBuf>> {
    let rerr = |path: &Path, e: &dyn std::fmt::Display| Error::Report {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    fs::create_dir_all(out).map_err(|e| rerr(out, &e))?;
    let mut files = Vec::new();

    let json_path = out.join("drift_report.json");
    let json = serde_json::to_string_pretty(report).map_err(|e| rerr(&json_path, &e))?;
    fs::write(&json_path, json).map_err(|e| rerr(&json_path, &e))?;
    files.push(json_path);

    // Plots.
    let xs = |f: &dyn Fn(&crate::drift::WindowDrift) -> Option<f64>| -> Vec<(f64, f64)> {
        report
            .windows
            .iter()
            .filter_map(|w| f(w).map(|y| (w.index as f64, y)))
            .collect()
    };
    let mut psi_series = Vec::new();
    if let Some(first) = report.windows.first() {
        for (k, feat) in first.features.iter().enumerate() {
            psi_series.push(Series::new(
                feat.name.clone(),
                xs(&|w| w.features.get(k).map(|f| f.psi)),
            ));
        }
    }
    let psi_png = out.join("psi_by_window.png");
    line_chart_png(
        &psi_png,
        &ChartOptions::new(format!(
            "PSI by window (threshold {})",
            report.config.psi_threshold
        ))
        .x_label("window")
        .y_label("PSI"),
        &psi_series,
    )?;
    files.push(psi_png);

    let acc_points = xs(&|w| w.accuracy.accuracy);
    if !acc_points.is_empty() {
        let mut series = vec![Series::new("window accuracy", acc_points.clone())];
        if let Some(ra) = report.reference_accuracy.accuracy {
            let (x0, x1) = (acc_points[0].0, acc_points[acc_points.len() - 1].0);
            series.push(Series::new(
                "reference",
                vec![(x0, ra), (x1.max(x0 + 1.0), ra)],
            ));
        }
        let p = out.join("accuracy_by_window.png");
        line_chart_png(
            &p,
            &ChartOptions::new("Labelled accuracy (from feedback)")
                .x_label("window")
                .y_label("accuracy"),
            &series,
        )?;
        files.push(p);
    }
    let gap_points = xs(&|w| w.slice_gap);
    if !gap_points.is_empty() {
        let p = out.join("slice_gap_by_window.png");
        line_chart_png(
            &p,
            &ChartOptions::new("Accuracy gap between devices")
                .x_label("window")
                .y_label("best − worst"),
            &[Series::new("gap", gap_points)],
        )?;
        files.push(p);
    }
    if let Some(last) = report.windows.last() {
        let class = last.features.iter().find(|f| f.name == "class");
        if class.is_some() && !report.reference_classes.is_empty() {
            let p = out.join("class_share_reference.png");
            let labels: Vec<String> = report
                .reference_classes
                .iter()
                .map(|(k, _)| k.to_string())
                .collect();
            let values: Vec<f64> = report.reference_classes.iter().map(|(_, v)| *v).collect();
            bar_chart_png(
                &p,
                &ChartOptions::new("Reference predicted-class shares")
                    .x_label("class")
                    .y_label("share"),
                &labels,
                &values,
            )?;
            files.push(p);
        }
    }

    // Markdown.
    let mut md = String::new();
    let _ = writeln!(md, "# Drift report\n");
    let _ = writeln!(
        md,
        "Reference: {} inferences, labelled accuracy {} ({} labels). Current: {} inferences in {} windows of {} rows; {} on-device drift alarms; {} feedback rows without their inference.\n",
        report.reference_rows,
        fmt_opt(report.reference_accuracy.accuracy),
        report.reference_accuracy.labels,
        report.current_rows,
        report.windows.len(),
        report.config.window,
        report.device_alarms,
        report.unmatched_feedback,
    );
    let _ = writeln!(
        md,
        "Defaults (Evidently's): KS (p < {p}) / chi-square (p < {p}) up to {n} reference rows, normed Wasserstein (≥ {w}) / Jensen–Shannon (≥ {j}) above; dataset drift when ≥ {s} of features drift; PSI (threshold {psi}, {b} bins) reported for all.\n",
        p = report.config.p_value,
        n = report.config.large_sample,
        w = report.config.wasserstein_threshold,
        j = report.config.js_threshold,
        s = report.config.drift_share,
        psi = report.config.psi_threshold,
        b = report.config.bins,
    );
    let _ = writeln!(md, "## Windows\n");
    let _ = writeln!(md, "| window | received (UTC date) | rows | drifting features | dataset drift | accuracy (labels) | performance drift | slice gap |");
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|");
    for w in &report.windows {
        let drifting: Vec<&str> = w
            .features
            .iter()
            .filter(|f| f.drift)
            .map(|f| f.name.as_str())
            .collect();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} ({}) | {} | {} |",
            w.index,
            utc_date(w.received_ms.0),
            w.rows,
            if drifting.is_empty() {
                "none".to_string()
            } else {
                drifting.join(", ")
            },
            if w.dataset_drift { "**yes**" } else { "no" },
            fmt_opt(w.accuracy.accuracy),
            w.accuracy.labels,
            if w.performance_drift { "**yes**" } else { "no" },
            fmt_opt(w.slice_gap),
        );
    }
    if let Some(last) = report.windows.last() {
        let _ = writeln!(md, "\n## Last window, per feature\n");
        let _ = writeln!(md, "| feature | test | score | threshold | drift | PSI | Jensen–Shannon | KS | Wasserstein (normed) | chi² |");
        let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|");
        for f in &last.features {
            let _ = writeln!(
                md,
                "| {} | {} | {:.4} | {} | {} | {:.4} | {:.4} | {} | {} | {} |",
                f.name,
                f.test,
                f.score,
                f.threshold,
                if f.drift { "**yes**" } else { "no" },
                f.psi,
                f.jensen_shannon,
                fmt_opt(f.ks),
                fmt_opt(f.wasserstein_normed),
                fmt_opt(f.chi2),
            );
        }
    }
    let _ = writeln!(md, "\n## Plots\n");
    for f in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "png"))
    {
        if let Some(name) = f.file_name().and_then(|n| n.to_str()) {
            let _ = writeln!(md, "![{name}]({name})");
        }
    }
    let md_path = out.join("drift_report.md");
    fs::write(&md_path, md).map_err(|e| rerr(&md_path, &e))?;
    files.push(md_path);
    Ok(files)
}
