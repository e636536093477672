//! Counters and latency histograms, written in the Prometheus text exposition format (0.0.4).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Upper bounds (seconds) of the latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// A cumulative histogram over [`LATENCY_BUCKETS`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// Observations per bucket (not cumulative; the last slot is `+Inf`).
    buckets: [u64; LATENCY_BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

impl Histogram {
    /// Records one observation in seconds.
    pub fn observe(&mut self, seconds: f64) {
        let i = LATENCY_BUCKETS
            .iter()
            .position(|&b| seconds <= b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[i] += 1;
        self.sum += seconds;
        self.count += 1;
    }

    /// Number of observations.
    #[cfg(test)]
    pub fn count(&self) -> u64 {
        self.count
    }
}

/// Builds a text exposition: families with `# HELP` and `# TYPE`, then their samples.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

/// Escapes a label value (`\`, `"` and newlines).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        (if v > 0.0 { "+Inf" } else { "-Inf" }).into()
    } else {
        format!("{v}")
    }
}

impl Exposition {
    /// Starts a metric family.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {}", help.replace('\n', " "));
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    /// A comment line (for readers of the text; scrapers ignore it).
    pub fn comment(&mut self, text: &str) {
        let _ = writeln!(self.text, "# {}", text.replace('\n', " "));
    }

    /// One sample.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"{}\"", escape(v));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", number(value));
    }

    /// The samples of histogram `h` (family `name` must have been started as a histogram).
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram) {
        let mut cum = 0;
        let bucket = format!("{name}_bucket");
        for (i, n) in h.buckets.iter().enumerate() {
            cum += n;
            let le = LATENCY_BUCKETS
                .get(i)
                .map_or("+Inf".to_string(), |b| number(*b));
            let mut l = labels.to_vec();
            l.push(("le", &le));
            self.sample(&bucket, &l, cum as f64);
        }
        self.sample(&format!("{name}_sum"), labels, h.sum);
        self.sample(&format!("{name}_count"), labels, h.count as f64);
    }

    /// The finished text.
    pub fn finish(self) -> String {
        self.text
    }
}

#[derive(Debug, Default)]
struct Inner {
    requests: BTreeMap<(String, String, u16), u64>,
    request_seconds: BTreeMap<String, Histogram>,
    inference_seconds: BTreeMap<&'static str, Histogram>,
    predictions: BTreeMap<String, u64>,
    generated_tokens: u64,
    feedback: BTreeMap<&'static str, u64>,
    swaps: BTreeMap<(&'static str, &'static str), u64>,
}

/// The server's counters and histograms (gauges are read from the state when rendering).
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        // A poisoned lock only means a panic elsewhere; the counters are still consistent.
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    /// One answered request: route template (or `unmatched`), method, status, seconds.
    pub fn request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.with(|m| {
            *m.requests
                .entry((route.to_string(), method.to_string(), status))
                .or_default() += 1;
            m.request_seconds
                .entry(route.to_string())
                .or_default()
                .observe(seconds);
        });
    }

    /// Time spent in the model (`invoke` calls) for one request of `task`.
    pub fn inference(&self, task: &'static str, seconds: f64) {
        self.with(|m| {
            m.inference_seconds
                .entry(task)
                .or_default()
                .observe(seconds)
        });
    }

    /// One prediction of class `label`.
    pub fn prediction(&self, label: &str) {
        self.with(|m| *m.predictions.entry(label.to_string()).or_default() += 1);
    }

    /// Tokens generated.
    pub fn generated(&self, tokens: usize) {
        self.with(|m| m.generated_tokens += tokens as u64);
    }

    /// One feedback of `kind` (`correction`, `preference`).
    pub fn feedback(&self, kind: &'static str) {
        self.with(|m| *m.feedback.entry(kind).or_default() += 1);
    }

    /// One hot-swap attempt of `task`, with `outcome` `swapped` or `refused`.
    pub fn swap(&self, task: &'static str, outcome: &'static str) {
        self.with(|m| *m.swaps.entry((task, outcome)).or_default() += 1);
    }

    /// Writes the counters and histograms.
    pub fn write(&self, out: &mut Exposition) {
        self.with(|m| {
            out.family(
                "edgeloop_http_requests_total",
                "counter",
                "HTTP requests answered, by route template, method and status code.",
            );
            for ((route, method, status), n) in &m.requests {
                out.sample(
                    "edgeloop_http_requests_total",
                    &[
                        ("route", route),
                        ("method", method),
                        ("status", &status.to_string()),
                    ],
                    *n as f64,
                );
            }
            out.family(
                "edgeloop_http_request_duration_seconds",
                "histogram",
                "Time from request headers to response, by route template.",
            );
            for (route, h) in &m.request_seconds {
                out.histogram(
                    "edgeloop_http_request_duration_seconds",
                    &[("route", route)],
                    h,
                );
            }
            out.family(
                "edgeloop_inference_duration_seconds",
                "histogram",
                "Time inside the model (interpreter invoke calls) per request, by task.",
            );
            for (task, h) in &m.inference_seconds {
                out.histogram("edgeloop_inference_duration_seconds", &[("task", task)], h);
            }
            out.family(
                "edgeloop_predictions_total",
                "counter",
                "Classifier predictions, by predicted label.",
            );
            for (label, n) in &m.predictions {
                out.sample("edgeloop_predictions_total", &[("label", label)], *n as f64);
            }
            out.family(
                "edgeloop_generated_tokens_total",
                "counter",
                "Tokens produced by the generator.",
            );
            out.sample(
                "edgeloop_generated_tokens_total",
                &[],
                m.generated_tokens as f64,
            );
            out.family(
                "edgeloop_feedback_total",
                "counter",
                "Feedback accepted, by kind (correction, preference).",
            );
            for (kind, n) in &m.feedback {
                out.sample("edgeloop_feedback_total", &[("kind", kind)], *n as f64);
            }
            out.family(
                "edgeloop_model_swaps_total",
                "counter",
                "Hot-swap attempts, by task and outcome (swapped, refused).",
            );
            for ((task, outcome), n) in &m.swaps {
                out.sample(
                    "edgeloop_model_swaps_total",
                    &[("task", task), ("outcome", outcome)],
                    *n as f64,
                );
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_inf() {
        let mut h = Histogram::default();
        for s in [0.00005, 0.0003, 0.0003, 3.0] {
            h.observe(s);
        }
        let mut e = Exposition::default();
        e.family("x_seconds", "histogram", "test");
        e.histogram("x_seconds", &[("route", "/a\"b")], &h);
        let text = e.finish();
        assert!(text.contains("x_seconds_bucket{route=\"/a\\\"b\",le=\"0.0001\"} 1\n"));
        assert!(text.contains("x_seconds_bucket{route=\"/a\\\"b\",le=\"0.0005\"} 3\n"));
        assert!(text.contains("x_seconds_bucket{route=\"/a\\\"b\",le=\"2.5\"} 3\n"));
        assert!(text.contains("x_seconds_bucket{route=\"/a\\\"b\",le=\"+Inf\"} 4\n"));
        assert!(text.contains("x_seconds_count{route=\"/a\\\"b\"} 4\n"));
        assert_eq!(h.count(), 4);
    }

    #[test]
    fn counters_render_with_labels() {
        let m = Metrics::default();
        m.request("/v1/predict", "POST", 200, 0.002);
        m.request("/v1/predict", "POST", 200, 0.004);
        m.request("/v1/predict", "POST", 422, 0.001);
        let mut e = Exposition::default();
        m.write(&mut e);
        let t = e.finish();
        assert!(t.contains(
            "edgeloop_http_requests_total{route=\"/v1/predict\",method=\"POST\",status=\"200\"} 2\n"
        ));
        assert!(t.contains("# TYPE edgeloop_http_request_duration_seconds histogram\n"));
    }
}
