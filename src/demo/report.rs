//! `report.html`: one page, read top to bottom, with the whole lifecycle of the run — data,
//! loss curves, the fp32 / int8 / image table, footprint, drift over time, v1 against v2.

use std::fmt::Write as _;
use std::path::PathBuf;

use edgeloop_eval::plot::{bar_chart_png, line_chart_png, ChartOptions, Series};

use super::deploy::Deployment;
use super::{Ctx, Summary};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

fn forms_table(html: &mut String, d: &Deployment) {
    let _ = writeln!(
        html,
        "<p>v{}: the same lab test and field hold-out sets through each backend; deltas against the first \
         row. The image's full evaluation (confusion matrix, per-class and per-set metrics, calibration): \
         <a href=\"{}\"><code>{}</code></a>.</p>{}",
        d.version,
        esc(&d.eval_report),
        esc(&d.eval_report),
        d.comparison.to_html()
    );
}

/// Writes the plots and `report.html`; returns the page's path.
pub fn write(ctx: &Ctx, s: &Summary) -> anyhow::Result<PathBuf> {
    let plots = ctx.dir("plots")?;
    // Loss curves.
    let curve = |name: &str, pts: &[(usize, f32)]| {
        Series::new(
            name,
            pts.iter().map(|&(x, y)| (x as f64, f64::from(y))).collect(),
        )
    };
    let mut series = Vec::new();
    for (name, j) in [
        ("GPT (causal LM)", &s.train.gpt),
        ("encoder (masked LM)", &s.train.encoder),
        ("classifier", &s.train.classifier),
    ] {
        if !j.eval_losses.is_empty() {
            series.push(curve(name, &j.eval_losses));
        }
    }
    if !series.is_empty() {
        line_chart_png(
            plots.join("losses.png"),
            &ChartOptions::new("validation loss")
                .x_label("step")
                .y_label("loss"),
            &series,
        )?;
    }
    // Drift over time.
    let w = &s.fleet.window_points;
    let mut drift_series = vec![Series::new(
        "share of drifting features",
        w.iter().map(|p| (p.index as f64, p.drift_share)).collect(),
    )];
    let acc: Vec<(f64, f64)> = w
        .iter()
        .filter_map(|p| p.accuracy.map(|a| (p.index as f64, a)))
        .collect();
    if !acc.is_empty() {
        drift_series.push(Series::new("v1 accuracy (from feedback)", acc));
    }
    if !w.is_empty() {
        line_chart_png(
            plots.join("drift.png"),
            &ChartOptions::new("field telemetry, window by window")
                .x_label("window")
                .y_label("share / accuracy"),
            &drift_series,
        )?;
    }
    // v1 vs v2.
    let mut names = Vec::new();
    let mut values = Vec::new();
    let image_row = |d: &Deployment| {
        d.forms
            .iter()
            .find(|r| r.form.starts_with("int8 image"))
            .map(|r| (r.lab.accuracy, r.field.accuracy))
    };
    if let Some((l, f)) = image_row(&s.v1) {
        names.extend(["v1 lab".to_string(), "v1 field".to_string()]);
        values.extend([l, f]);
    }
    if let Some(Some((l, f))) = s.retrain.v2.as_ref().map(image_row) {
        names.extend(["v2 lab".to_string(), "v2 field".to_string()]);
        values.extend([l, f]);
    }
    if !names.is_empty() {
        bar_chart_png(
            plots.join("v1_v2.png"),
            &ChartOptions::new("image accuracy, v1 vs v2").y_label("accuracy"),
            &names,
            &values,
        )?;
    }

    let mut h = String::new();
    let _ = writeln!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>edgeloop demo report</title>\
         <style>body{{font-family:sans-serif;max-width:960px;margin:2em auto;line-height:1.4}}\
         table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}\
         td:first-child,th:first-child{{text-align:left}}img{{max-width:100%}}pre{{background:#f6f6f6;padding:8px;overflow:auto}}</style>\
         </head><body><h1>edgeloop demo report</h1>"
    );
    let total: f64 = s.times.iter().map(|t| t.seconds).sum();
    let _ = writeln!(
        h,
        "<p>The whole loop on the data that ships with the project, in {total:.0} s: select data → pretrain → \
         fine-tune → evaluate → quantize → compile (signed) → run → field telemetry → drift → retrain → v2.</p>"
    );
    let d = &s.data;
    let _ = writeln!(
        h,
        "<h2>1. Data</h2><p>Lab corpus after selection: {} train / {} validation / {} test ({} records removed by \
         quality filters and deduplication). Shifted field corpus: {} records stream to the fleet, {} are held out \
         for the retraining gate. BPE vocabulary {}; {} intent classes. Cards: <code>data/selected/card.md</code>, \
         <code>data/lab/corpus_card.md</code>, <code>data/field/corpus_card.md</code>.</p>",
        d.lab_train, d.lab_val, d.lab_test, d.removed, d.field_stream, d.field_holdout, d.vocab, d.labels.len()
    );
    let t = &s.train;
    let _ = writeln!(
        h,
        "<h2>2. Training</h2><table><tr><th>job</th><th>parameters</th><th>steps</th><th>best val loss</th>\
         <th>val accuracy</th><th>seconds</th></tr>"
    );
    for (name, j) in [
        ("GPT pretraining (causal LM)", &t.gpt),
        ("encoder pretraining (masked LM)", &t.encoder),
        ("intent classifier fine-tuning", &t.classifier),
    ] {
        let _ = writeln!(
            h,
            "<tr><td>{name}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td></tr>",
            j.parameters,
            j.steps,
            j.best_eval_loss
                .map(|l| format!("{l:.3}"))
                .unwrap_or_else(|| "–".into()),
            j.val_accuracy
                .map(|a| pct(f64::from(a)))
                .unwrap_or_else(|| "–".into()),
            j.seconds
        );
    }
    let _ = writeln!(
        h,
        "</table><img src=\"plots/losses.png\" alt=\"loss curves\">"
    );
    let _ = writeln!(
        h,
        "<h2>3. Quantize, compile, run</h2><p>The fine-tuned fp32 model (candle), its ONNX export (tract), our \
         int8 QDQ ONNX (ONNX Runtime at Level1 when installed, and tract) and the signed model image on the \
         edgeloop runtime, scored on the same inputs:</p>"
    );
    forms_table(&mut h, &s.v1);
    let _ = writeln!(
        h,
        "<p>Image vs int8 ONNX top-1 agreement on the lab test set: {}. Footprint: image {} bytes (signed), \
         arena {} bytes (exact lower bound {}), {} MACs per inference, {:.0} µs per invoke on this host.</p>\
         <pre>{}</pre>",
        pct(s.v1.image_vs_int8_onnx_top1),
        s.v1.image_bytes,
        s.v1.arena_bytes,
        s.v1.arena_lower_bound,
        s.v1.macs,
        s.v1.invoke_us,
        esc(&s.v1.compile_report)
    );
    if !s.explained.is_empty() {
        let _ = writeln!(
            h,
            "<p><b>Why.</b> Integrated gradients on the fp32 model (64 steps from an all-pad input; the \
             attributions sum to the target logit's difference within the gap shown) and occlusion on the int8 \
             image (drop of the predicted class's probability when a word is removed):</p>"
        );
        for e in &s.explained {
            let _ = writeln!(
                h,
                "<p>\"{}\" — label <i>{}</i>, fp32 predicts <i>{}</i>; f(x) − f(pad) = {:.3}, completeness gap \
                 {:.1e}</p><img src=\"{}\" alt=\"integrated gradients\"><img src=\"{}\" alt=\"occlusion\">",
                esc(&e.text),
                esc(&e.label),
                esc(&e.predicted),
                e.ig_score_difference,
                e.ig_completeness_gap,
                esc(&e.ig_png),
                esc(&e.occlusion_png)
            );
        }
    }
    let m = &s.cortex_m4;
    if m.ran {
        let _ = writeln!(
            h,
            "<p><b>On the microcontroller.</b> The same signed image on an emulated Cortex-M4F (QEMU \
             <code>mps2-an386</code>, firmware <code>flashed</code>, image in a flash partition): {} of {} \
             lab test inputs gave output tensors byte-for-byte equal to the host runtime's, top-1 agreed on {}; \
             {} telemetry frames ({} corrupt) went into <code>{}</code>. RAM: arena {} bytes, stack high-water {} \
             bytes.</p>",
            m.bit_exact,
            m.inputs,
            m.top1_agree,
            m.frames,
            m.corrupt_frames,
            esc(m.store.as_deref().unwrap_or("")),
            m.arena_bytes,
            m.stack_high_water_bytes
                .map(|b| b.to_string())
                .unwrap_or_else(|| "?".into())
        );
    } else {
        let _ = writeln!(
            h,
            "<p><b>On the microcontroller:</b> skipped — {}.</p>",
            esc(m.skipped.as_deref().unwrap_or("not run"))
        );
    }
    let f = &s.fleet;
    let _ = writeln!(
        h,
        "<h2>4. The field</h2><p>{} simulated devices ran v1: {} inferences, {} feedback records ({} corrections), \
         {} on-device drift alarms (integer PSI of the predicted classes). The telemetry crossed the COBS framing \
         as bytes: {} frames ingested, {} corrupt, {} dropped by full rings, stored as Parquet under <code>{}</code>. \
         Host drift analysis: {} of {} windows drifted. v1's accuracy fell from {} on lab-like traffic to {} on \
         field traffic.</p><img src=\"plots/drift.png\" alt=\"drift over time\"><p>Drift report: <code>{}</code>.</p>",
        f.devices,
        f.inferences,
        f.feedback,
        f.corrections,
        f.device_alarms,
        f.frames_ingested,
        f.corrupt_frames,
        f.ring_drops,
        esc(&f.store),
        f.drifted_windows,
        f.windows,
        pct(f.lab_phase_accuracy),
        pct(f.field_phase_accuracy),
        esc(&f.drift_report)
    );
    let r = &s.retrain;
    let _ = writeln!(
        h,
        "<h2>5. Retraining</h2><p>Triggers: {}. Retraining set: {} examples from field feedback ({} removed \
         as leaks into held-out sets, {} duplicates) plus {} replayed lab examples.</p>",
        if r.triggers.is_empty() {
            "none".to_string()
        } else {
            esc(&r.triggers.join("; "))
        },
        r.feedback_examples,
        r.leaks_removed,
        r.duplicates_removed,
        r.replay_examples
    );
    if let Some(v2) = &r.v2 {
        forms_table(&mut h, v2);
    }
    let _ = writeln!(h, "<ul>");
    for g in &r.gate {
        let _ = writeln!(h, "<li>{}</li>", esc(g));
    }
    let _ = writeln!(
        h,
        "</ul><p><b>{}</b>{}</p><img src=\"plots/v1_v2.png\" alt=\"v1 vs v2\">",
        if r.accepted {
            "v2 accepted."
        } else {
            "v2 rejected; v1 stays deployed."
        },
        r.manifest
            .as_ref()
            .map(|m| format!(" Rollout manifest: <code>{}</code>.", esc(m)))
            .unwrap_or_default()
    );
    let a = &s.assistant;
    let _ = writeln!(
        h,
        "<h2>6. The assistant: preference feedback → DPO</h2><p>The pretrained GPT, instruction-tuned on {} lab \
         pairs ({} steps, validation loss {}), was quantized, compiled and signed as <code>{}</code> ({} bytes, \
         arena {} bytes). Devices answered {} field prompts with {} sampled answers each; users rated {} up and \
         {} down and corrected {}; the ratings, with their opt-in <code>prompt, -1, response</code> samples, and \
         the corrections (<code>prompt, -2, corrected</code>) crossed the telemetry \
         framing ({} frames, {} corrupt) into <code>{}</code>. The store gave {} preference pairs ({} from \
         corrections; {} prompts rated one way only, {} held-out prompts removed, {} repeats).</p>",
        a.sft_pairs,
        a.sft.steps,
        a.sft
            .best_eval_loss
            .map(|l| format!("{l:.3}"))
            .unwrap_or_else(|| "–".into()),
        esc(&a.v1.image),
        a.v1.image_bytes,
        a.v1.arena_bytes,
        a.field_prompts,
        a.answers_per_prompt,
        a.rated_up,
        a.rated_down,
        a.corrected,
        a.frames_ingested,
        a.corrupt_frames,
        esc(&a.store),
        a.pairs.pairs.len(),
        a.pairs.from_corrections,
        a.pairs.prompts_without_pair,
        a.pairs.leaks_removed,
        a.pairs.duplicates_removed
    );
    let _ = writeln!(
        h,
        "<table><tr><th>assistant</th><th>greedy answers right, lab test</th><th>held-out field</th>\
         <th>µs per token</th></tr>"
    );
    for d in std::iter::once(&a.v1).chain(a.v2.as_ref()) {
        let _ = writeln!(
            h,
            "<tr><td>v{} (int8 image)</td><td>{}</td><td>{}</td><td>{:.0}</td></tr>",
            d.version,
            pct(d.lab_right),
            pct(d.field_right),
            d.micros_per_token
        );
    }
    let _ = writeln!(h, "</table><ul>");
    if let (Some(d), Some(m)) = (&a.dpo, a.dpo_val_margin) {
        let _ = writeln!(
            h,
            "<li>DPO (β 0.1) from the deployed checkpoint: {} steps, validation reward margin {m:.3}</li>",
            d.steps
        );
    }
    for g in &a.gate {
        let _ = writeln!(h, "<li>{}</li>", esc(g));
    }
    let _ = writeln!(
        h,
        "</ul><p><b>{}</b>{}</p>",
        if a.accepted {
            "Assistant v2 accepted."
        } else {
            "Assistant v2 not shipped; v1 stays deployed."
        },
        a.manifest
            .as_ref()
            .map(|m| format!(" Rollout manifest: <code>{}</code>.", esc(m)))
            .unwrap_or_default()
    );
    let _ = writeln!(
        h,
        "<h2>Stage times</h2><table><tr><th>stage</th><th>seconds</th></tr>"
    );
    for st in &s.times {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{:.1}</td></tr>",
            esc(&st.stage),
            st.seconds
        );
    }
    // Records, once the page has loaded, how many images decoded (read by the headless test).
    let _ = writeln!(
        h,
        "</table><script>window.addEventListener('load',function(){{var i=document.images,n=0;\
         for(var k=0;k<i.length;k++){{if(i[k].complete&&i[k].naturalWidth>0)n++;}}\
         document.body.setAttribute('data-images-loaded',n+'/'+i.length);}});</script></body></html>"
    );
    let path = ctx.out.join("report.html");
    std::fs::write(&path, h)?;
    Ok(path)
}
