//! The HTTP routes and the middleware around them (time limit, metrics, JSON fallbacks).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use edgeloop_runtime::telemetry::{
    Feedback, InferenceSummary, InputSummary, Record, Sample, Thumbs, CORRECTION_SEPARATOR,
    RESPONSE_SEPARATOR, SAMPLE_MAX,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::auth::{AdminToken, IngestToken};
use super::body::BodyLimit;
use super::error::{json_response, parse_json, ApiBytes, ApiError};
use super::metrics::Exposition;
use super::model::{self, ImageMeta};
use super::state::{AppState, Classifier, Generator, Task, Tracked};

type Shared = Arc<AppState>;

/// Every route: method, path, summary (the OpenAPI document lists the same).
pub const ROUTES: [(&str, &str, &str); 9] = [
    ("POST", "/v1/predict", "Classify a text"),
    (
        "POST",
        "/v1/generate",
        "Generate tokens greedily after a prompt",
    ),
    ("POST", "/v1/feedback", "Correct or rate an earlier answer"),
    (
        "POST",
        "/v1/telemetry",
        "Ingest COBS-framed device telemetry",
    ),
    ("GET", "/healthz", "Liveness and the models being served"),
    ("GET", "/metrics", "Prometheus metrics"),
    ("POST", "/admin/model", "Hot-swap a model image"),
    (
        "POST",
        "/admin/flush",
        "Write buffered records to the store now",
    ),
    ("GET", "/openapi.json", "This API's OpenAPI document"),
];

/// The router over `state`, with body limits, the request time limit and metrics.
pub fn router(state: Shared) -> Router {
    let json_limit = state.config.max_body_bytes;
    let upload_limit = state.config.max_upload_bytes;
    Router::new()
        .route("/v1/predict", post(predict))
        .route("/v1/generate", post(generate))
        .route("/v1/feedback", post(feedback))
        .route(
            "/v1/telemetry",
            post(telemetry).layer(Extension(BodyLimit(upload_limit))),
        )
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route(
            "/admin/model",
            post(swap_model).layer(Extension(BodyLimit(upload_limit))),
        )
        .route("/admin/flush", post(flush))
        .route("/openapi.json", get(openapi))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(Extension(BodyLimit(json_limit)))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Time limit and metrics for every request; adds `x-request-time-us`.
async fn observe(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().to_string();
    let limit = state.config.request_timeout;
    let resp = match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request took longer than the server's limit of {} ms",
                limit.as_millis()
            ),
        )
        .into_response(),
    };
    let secs = start.elapsed().as_secs_f64();
    state
        .metrics
        .request(&route, &method, resp.status().as_u16(), secs);
    resp
}

async fn not_found(method: Method, uri: axum::http::Uri) -> ApiError {
    let routes: Vec<String> = ROUTES.iter().map(|(m, p, _)| format!("{m} {p}")).collect();
    ApiError::not_found(format!(
        "no route for {method} {}; the routes are: {}",
        uri.path(),
        routes.join(", ")
    ))
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// Parses a JSON body after checking its content type (used where auth comes first).
fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    bytes: &[u8],
) -> Result<T, ApiError> {
    let ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().eq_ignore_ascii_case("application/json"))
        .unwrap_or(false);
    if !ok {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected `Content-Type: application/json`",
        ));
    }
    parse_json(bytes)
}

/// Model facts in responses.
#[derive(Debug, Serialize)]
struct ModelInfo {
    name: String,
    version: u32,
    signed: bool,
    verified: bool,
}

impl From<&ImageMeta> for ModelInfo {
    fn from(m: &ImageMeta) -> Self {
        ModelInfo {
            name: m.name.clone(),
            version: m.version,
            signed: m.signed,
            verified: m.verified,
        }
    }
}

/// Runs `f` on a blocking thread once an inference slot is free.
async fn run_model<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    let _permit = state
        .inference_slots
        .acquire()
        .await
        .map_err(|_| ApiError::unavailable("the server is shutting down"))?;
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(ApiError::unprocessable(format!(
            "the model could not run this input: {e:#}"
        ))),
        Err(e) => Err(ApiError::internal(format!("the model worker failed: {e}"))),
    }
}

/// Starts a store write in the background when one is due.
fn maybe_flush(state: &Shared, due: bool) {
    if due {
        let sink = state.sink.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = sink.flush_blocking() {
                eprintln!("edgeloop serve: {e}");
            }
        });
    }
}

fn sample_of(state: &AppState, ids: &[u32]) -> Vec<i32> {
    if state.config.sample_inputs {
        ids.iter().take(SAMPLE_MAX).map(|&t| t as i32).collect()
    } else {
        Vec::new()
    }
}

/// The opt-in sample of a generation: `prompt ids, -1, response ids` when they fit (what
/// `edgeloop_monitor::preferences` pairs rated answers from), else the prompt ids alone.
fn generation_sample(state: &AppState, prompt: &[u32], response: &[u32]) -> Vec<i32> {
    if state.config.sample_inputs && prompt.len() + 1 + response.len() <= SAMPLE_MAX {
        let mut s: Vec<i32> = prompt.iter().map(|&t| t as i32).collect();
        s.push(RESPONSE_SEPARATOR);
        s.extend(response.iter().map(|&t| t as i32));
        s
    } else {
        sample_of(state, prompt)
    }
}

/// The sample of a corrected generation: the tracked `prompt, -1, response` followed by `-2` and
/// the corrected response's ids (`correction` is its text, or its token ids), which
/// `edgeloop_monitor::preferences` turns into a pair on its own.
fn corrected_generation_sample(
    state: &AppState,
    tracked: &[i32],
    correction: &Value,
) -> Result<Vec<i32>, ApiError> {
    if !tracked.contains(&RESPONSE_SEPARATOR) {
        return Err(ApiError::unprocessable(if state.config.sample_inputs {
            "this generation's prompt and response did not fit the telemetry sample, so a correction cannot be paired with it; rate it with `preference`"
        } else {
            "the server does not sample inputs (`sample_inputs` is off), so a correction of a generation cannot be recorded; rate it with `preference`"
        }));
    }
    let gen = state
        .generator()
        .ok_or_else(|| ApiError::unavailable("no generator is loaded"))?;
    let ids: Vec<u32> = match correction {
        Value::String(text) => input_ids(
            Some(text.clone()),
            None,
            gen.tokenizer.as_deref(),
            "correction",
        )?,
        Value::Array(items) => {
            let ids: Option<Vec<u32>> = items
                .iter()
                .map(|v| v.as_u64().and_then(|x| u32::try_from(x).ok()))
                .collect();
            ids.filter(|ids| !ids.is_empty()).ok_or_else(|| {
                ApiError::unprocessable(
                    "a generation's `correction` as tokens must be a non-empty array of token ids",
                )
            })?
        }
        _ => {
            return Err(ApiError::unprocessable(
                "a generation's `correction` is the right response: its text, or its token ids",
            ))
        }
    };
    if let Some(&bad) = ids.iter().find(|&&t| t as usize >= gen.spec.vocab) {
        return Err(ApiError::unprocessable(format!(
            "token id {bad} in `correction` is outside the model's vocabulary of {}",
            gen.spec.vocab
        )));
    }
    let len = tracked.len() + 1 + ids.len();
    if len > SAMPLE_MAX {
        return Err(ApiError::unprocessable(format!(
            "prompt, response and correction take {len} values; a telemetry sample holds {SAMPLE_MAX}: shorten the correction"
        )));
    }
    let mut s = tracked.to_vec();
    s.push(CORRECTION_SEPARATOR);
    s.extend(ids.iter().map(|&t| t as i32));
    Ok(s)
}

/// Text or token ids → ids.
fn input_ids(
    text: Option<String>,
    tokens: Option<Vec<u32>>,
    tokenizer: Option<&edgeloop_trainer::tokenizer::Tokenizer>,
    text_field: &str,
) -> Result<Vec<u32>, ApiError> {
    let ids = match (text, tokens) {
        (Some(_), Some(_)) => {
            return Err(ApiError::unprocessable(format!(
                "give either `{text_field}` or `tokens`, not both"
            )))
        }
        (None, None) => {
            return Err(ApiError::unprocessable(format!(
                "missing `{text_field}` (or `tokens`)"
            )))
        }
        (Some(text), None) => {
            if text.trim().is_empty() {
                return Err(ApiError::unprocessable(format!("`{text_field}` is empty")));
            }
            let tok = tokenizer.ok_or_else(|| {
                ApiError::unprocessable(format!(
                    "this model was started without a tokenizer: send `tokens` instead of `{text_field}`"
                ))
            })?;
            tok.encode(&text)
                .map_err(|e| ApiError::unprocessable(format!("tokenizing `{text_field}`: {e}")))?
        }
        (None, Some(tokens)) => tokens,
    };
    if ids.is_empty() {
        return Err(ApiError::unprocessable("the input has no tokens"));
    }
    Ok(ids)
}

/// `POST /v1/predict` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PredictRequest {
    text: Option<String>,
    tokens: Option<Vec<u32>>,
}

#[derive(Debug, Serialize)]
struct Score {
    label: String,
    score: f32,
}

async fn predict(
    State(state): State<Shared>,
    super::error::ApiJson(req): super::error::ApiJson<PredictRequest>,
) -> Result<Response, ApiError> {
    let start = Instant::now();
    let clf: Arc<Classifier> = state
        .classifier()
        .ok_or_else(|| ApiError::unavailable("no classifier is loaded"))?;
    let ids = input_ids(req.text, req.tokens, clf.tokenizer.as_deref(), "text")?;
    if let Some(v) = clf.spec.vocab {
        if let Some(&bad) = ids.iter().find(|&&t| t as usize >= v) {
            return Err(ApiError::unprocessable(format!(
                "token id {bad} is outside the model's vocabulary of {v}"
            )));
        }
    }
    let t = clf.spec.tokens;
    let used = ids.len().min(t);
    let pad = clf
        .tokenizer
        .as_ref()
        .and_then(|k| k.specials().pad)
        .unwrap_or(0) as i32;
    let mut padded: Vec<i32> = ids[..used].iter().map(|&x| x as i32).collect();
    padded.resize(t, pad);
    let job = clf.clone();
    let r = run_model(&state, move || {
        model::classify(&job.image, &job.spec, &padded)
    })
    .await?;
    let label = clf.labels[r.class].clone();
    let confidence = r.scores[r.class];
    let meta = &clf.image.meta;
    let used_ids: Vec<i32> = ids[..used].iter().map(|&x| x as i32).collect();
    let (seq, due) = state.sink.record(
        meta.model_ref(),
        Record::Inference(InferenceSummary {
            class: r.class as u16,
            confidence_q16: (confidence.clamp(0.0, 1.0) * 65535.0).round() as u16,
            latency_ticks: r.invoke_us.round().min(u32::MAX as f64) as u32,
            input: InputSummary::from_i32(&used_ids),
        }),
    );
    let request_id = state.request_id(seq);
    state.track(
        request_id.clone(),
        Tracked {
            task: Task::Classify,
            seq,
            model: meta.model_ref(),
            classes: clf.spec.classes,
            sample: sample_of(&state, &ids),
        },
    );
    clf.window
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .observe(r.class);
    state.metrics.prediction(&label);
    state.metrics.inference("classify", r.invoke_us / 1e6);
    maybe_flush(&state, due);
    let scores: Vec<Score> = clf
        .labels
        .iter()
        .zip(&r.scores)
        .map(|(l, &s)| Score {
            label: l.clone(),
            score: s,
        })
        .collect();
    let body = json!({
        "request_id": request_id,
        "label": label,
        "class": r.class,
        "confidence": confidence,
        "scores": scores,
        "tokens": used,
        "truncated": ids.len() > t,
        "model": ModelInfo::from(meta),
        "inference_us": r.invoke_us,
        "latency_ms": start.elapsed().as_secs_f64() * 1e3,
    });
    Ok(with_request_id(Json(body).into_response(), &request_id))
}

fn with_request_id(mut r: Response, id: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(id) {
        r.headers_mut().insert("x-request-id", v);
    }
    r
}

/// `POST /v1/generate` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GenerateRequest {
    prompt: Option<String>,
    tokens: Option<Vec<u32>>,
    max_tokens: Option<usize>,
}

/// Default number of new tokens.
const DEFAULT_MAX_TOKENS: usize = 16;

async fn generate(
    State(state): State<Shared>,
    super::error::ApiJson(req): super::error::ApiJson<GenerateRequest>,
) -> Result<Response, ApiError> {
    let start = Instant::now();
    let gen: Arc<Generator> = state
        .generator()
        .ok_or_else(|| ApiError::unavailable("no generator is loaded"))?;
    let ids = input_ids(req.prompt, req.tokens, gen.tokenizer.as_deref(), "prompt")?;
    let max_tokens = req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
    if max_tokens > state.config.max_new_tokens {
        return Err(ApiError::unprocessable(format!(
            "max_tokens {max_tokens} is above the server's limit of {}",
            state.config.max_new_tokens
        )));
    }
    if ids.len() > gen.spec.context {
        return Err(ApiError::unprocessable(format!(
            "the prompt has {} tokens; the model's context is {}",
            ids.len(),
            gen.spec.context
        )));
    }
    if let Some(&bad) = ids.iter().find(|&&t| t as usize >= gen.spec.vocab) {
        return Err(ApiError::unprocessable(format!(
            "token id {bad} is outside the model's vocabulary of {}",
            gen.spec.vocab
        )));
    }
    let eos = gen.tokenizer.as_ref().and_then(|t| t.specials().eos);
    let job = gen.clone();
    let prompt = ids.clone();
    let g = run_model(&state, move || {
        model::generate(&job.image, &job.spec, &prompt, max_tokens, eos)
    })
    .await?;
    let text = match &gen.tokenizer {
        Some(t) => Some(
            t.decode(&g.tokens)
                .map_err(|e| ApiError::internal(format!("decoding the generated tokens: {e}")))?,
        ),
        None => None,
    };
    let meta = &gen.image.meta;
    let prompt_i32: Vec<i32> = ids.iter().map(|&x| x as i32).collect();
    let (seq, due) = state.sink.record(
        meta.model_ref(),
        Record::Inference(InferenceSummary {
            // For generation the record's class is the first new token (0 when none).
            class: g.tokens.first().copied().unwrap_or(0).min(u16::MAX as u32) as u16,
            confidence_q16: (g.first_probability.clamp(0.0, 1.0) * 65535.0).round() as u16,
            latency_ticks: g.invoke_us.round().min(u32::MAX as f64) as u32,
            input: InputSummary::from_i32(&prompt_i32),
        }),
    );
    let request_id = state.request_id(seq);
    state.track(
        request_id.clone(),
        Tracked {
            task: Task::Generate,
            seq,
            model: meta.model_ref(),
            classes: 0,
            sample: generation_sample(&state, &ids, &g.tokens),
        },
    );
    state.metrics.generated(g.tokens.len());
    state.metrics.inference("generate", g.invoke_us / 1e6);
    maybe_flush(&state, due);
    let body = json!({
        "request_id": request_id,
        "tokens": g.tokens,
        "text": text,
        "stop": g.stop.as_str(),
        "prompt_tokens": ids.len(),
        "model": ModelInfo::from(meta),
        "inference_us": g.invoke_us,
        "latency_ms": start.elapsed().as_secs_f64() * 1e3,
    });
    Ok(with_request_id(Json(body).into_response(), &request_id))
}

/// `POST /v1/feedback` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedbackRequest {
    request_id: String,
    /// Classification: the right label, its name or its class index. Generation: the right
    /// response, its text or its token ids.
    correction: Option<Value>,
    /// Thumbs: `up` or `down`.
    preference: Option<Preference>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Preference {
    Up,
    Down,
}

async fn feedback(
    State(state): State<Shared>,
    _auth: IngestToken,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> Result<Response, ApiError> {
    let req: FeedbackRequest = json_body(&headers, &body)?;
    if req.correction.is_none() && req.preference.is_none() {
        return Err(ApiError::unprocessable(
            "give a `correction` (label or class index; for a generation, the right response as text or token ids), a `preference` (`up`/`down`), or both",
        ));
    }
    let tracked = state.tracked(&req.request_id).ok_or_else(|| {
        ApiError::not_found(format!(
            "unknown request id `{}` (never answered here, or forgotten)",
            req.request_id
        ))
    })?;
    let mut sample_values = tracked.sample.clone();
    let mut corrected_generation = false;
    let correction = match req.correction {
        None => None,
        Some(v) if tracked.task == Task::Generate => {
            sample_values = corrected_generation_sample(&state, &tracked.sample, &v)?;
            corrected_generation = true;
            None
        }
        Some(v) => {
            // The labels of the model now served (a swap keeps the configured labels).
            let labels = state.classifier().map(|c| c.labels.clone());
            let class = match &v {
                Value::String(s) => labels
                    .as_ref()
                    .and_then(|l| l.iter().position(|x| x == s))
                    .ok_or_else(|| {
                        ApiError::unprocessable(format!(
                            "unknown label `{s}`; the labels are {}",
                            labels.as_ref().map(|l| l.join(", ")).unwrap_or_default()
                        ))
                    })?,
                Value::Number(n) => n
                    .as_u64()
                    .filter(|&c| (c as usize) < tracked.classes)
                    .ok_or_else(|| {
                        ApiError::unprocessable(format!(
                            "class index {n} is out of range (the model has {} classes)",
                            tracked.classes
                        ))
                    })? as usize,
                _ => {
                    return Err(ApiError::unprocessable(
                        "`correction` must be a label name or a class index",
                    ))
                }
            };
            Some(class as u16)
        }
    };
    let sample = Sample::from_i32(&sample_values)
        .map_err(|e| ApiError::internal(format!("sampling the input: {e}")))?;
    let thumbs = req.preference.map(|p| match p {
        Preference::Up => Thumbs::Up,
        Preference::Down => Thumbs::Down,
    });
    let (seq, due) = state.sink.record(
        tracked.model,
        Record::Feedback(Feedback {
            inference_seq: tracked.seq,
            correction,
            thumbs,
            sample,
        }),
    );
    if correction.is_some() || corrected_generation {
        state.metrics.feedback("correction");
    }
    if thumbs.is_some() {
        state.metrics.feedback("preference");
    }
    maybe_flush(&state, due);
    Ok(Json(json!({
        "request_id": req.request_id,
        "recorded": true,
        "feedback_seq": seq,
    }))
    .into_response())
}

async fn telemetry(
    State(state): State<Shared>,
    _auth: IngestToken,
    ApiBytes(body): ApiBytes,
) -> Result<Response, ApiError> {
    let mut rows = Vec::new();
    let (before, after) = {
        let mut ing = state.ingestor.lock().unwrap_or_else(|p| p.into_inner());
        let before = ing.stats();
        ing.feed(&body, edgeloop_monitor::ingest::now_ms(), &mut rows);
        // Each body is a whole stream: bytes after its last delimiter are a truncated frame.
        ing.finish();
        (before, ing.stats())
    };
    let frames = after.frames - before.frames;
    let duplicates = after.duplicates - before.duplicates;
    let corrupt = after.corrupt.total() - before.corrupt.total();
    if !body.is_empty() && frames == 0 && duplicates == 0 {
        return Err(ApiError::unprocessable(format!(
            "no valid telemetry frame in the body ({corrupt} corrupt); frames are COBS-encoded and 0x00-delimited (runtime/TELEMETRY.md)"
        )));
    }
    let due = state.sink.push(rows);
    maybe_flush(&state, due);
    Ok(Json(json!({
        "frames": frames,
        "duplicates": duplicates,
        "corrupt": corrupt,
    }))
    .into_response())
}

async fn healthz(State(state): State<Shared>) -> Response {
    let clf = state.classifier().map(|c| {
        json!({
            "model": ModelInfo::from(&c.image.meta),
            "labels": c.labels,
            "tokens": c.spec.tokens,
        })
    });
    let gen = state.generator().map(|g| {
        json!({
            "model": ModelInfo::from(&g.image.meta),
            "context": g.spec.context,
            "vocab": g.spec.vocab,
        })
    });
    Json(json!({
        "status": "ok",
        "uptime_s": state.started.elapsed().as_secs_f64(),
        "classifier": clf,
        "generator": gen,
        "signature_required": state.config.public_key.is_some(),
        "store": {
            "dir": state.sink.store_dir().display().to_string(),
            "last_error": state.sink.last_error(),
        },
    }))
    .into_response()
}

async fn metrics(State(state): State<Shared>) -> Response {
    let mut out = Exposition::default();
    state.metrics.write(&mut out);
    out.family(
        "edgeloop_model_info",
        "gauge",
        "The models being served (value 1), by task, name, version and signature state.",
    );
    let mut info = |task: &str, m: &ImageMeta| {
        let version = m.version.to_string();
        out.sample(
            "edgeloop_model_info",
            &[
                ("task", task),
                ("name", &m.name),
                ("version", &version),
                ("signed", if m.signed { "true" } else { "false" }),
                ("verified", if m.verified { "true" } else { "false" }),
            ],
            1.0,
        );
    };
    let clf = state.classifier();
    if let Some(c) = &clf {
        info("classify", &c.image.meta);
    }
    if let Some(g) = state.generator() {
        info("generate", &g.image.meta);
    }
    out.family(
        "edgeloop_drift_psi",
        "gauge",
        "PSI of the predicted-class distribution over the live window against the image's reference histogram (integer PSI of the runtime).",
    );
    out.family(
        "edgeloop_drift_window_predictions",
        "gauge",
        "Predictions in the live drift window.",
    );
    out.family(
        "edgeloop_drift_reference_present",
        "gauge",
        "1 when the served image carries a usable reference class histogram, else 0.",
    );
    match &clf {
        Some(c) => {
            let r = c.window.lock().unwrap_or_else(|p| p.into_inner()).reading();
            if let Some(note) = &r.note {
                out.comment(&format!("edgeloop_drift_psi is 0: {note}"));
            }
            let l = [("task", "classify"), ("source", "predicted_class")];
            out.sample("edgeloop_drift_psi", &l, r.psi);
            out.sample("edgeloop_drift_window_predictions", &l, r.window as f64);
            out.sample(
                "edgeloop_drift_reference_present",
                &l,
                if r.has_reference { 1.0 } else { 0.0 },
            );
        }
        None => out.comment("no classifier loaded: no drift gauge"),
    }
    let s = state.sink.stats();
    out.family(
        "edgeloop_telemetry_buffered_records",
        "gauge",
        "Records waiting to be written to the store.",
    );
    out.sample(
        "edgeloop_telemetry_buffered_records",
        &[],
        s.buffered as f64,
    );
    out.family(
        "edgeloop_telemetry_written_records_total",
        "counter",
        "Records written to the Parquet store.",
    );
    out.sample(
        "edgeloop_telemetry_written_records_total",
        &[],
        s.written as f64,
    );
    out.family(
        "edgeloop_telemetry_write_errors_total",
        "counter",
        "Failed store writes (records are kept and retried).",
    );
    out.sample(
        "edgeloop_telemetry_write_errors_total",
        &[],
        s.write_errors as f64,
    );
    out.family(
        "edgeloop_telemetry_dropped_total",
        "counter",
        "Records dropped because the buffer was full while the store could not be written.",
    );
    out.sample("edgeloop_telemetry_dropped_total", &[], s.dropped as f64);
    let ing = state
        .ingestor
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .stats();
    out.family(
        "edgeloop_ingest_frames_total",
        "counter",
        "Device telemetry frames received on /v1/telemetry, by outcome.",
    );
    out.sample(
        "edgeloop_ingest_frames_total",
        &[("outcome", "accepted")],
        ing.frames as f64,
    );
    out.sample(
        "edgeloop_ingest_frames_total",
        &[("outcome", "duplicate")],
        ing.duplicates as f64,
    );
    out.sample(
        "edgeloop_ingest_frames_total",
        &[("outcome", "corrupt")],
        ing.corrupt.total() as f64,
    );
    let mut r = out.finish().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

/// `POST /admin/model` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SwapQuery {
    /// `classify` or `generate`.
    task: String,
    /// Install even when the image's model version is lower than the served one's.
    #[serde(default)]
    force: bool,
}

async fn swap_model(
    State(state): State<Shared>,
    _auth: AdminToken,
    query: Result<Query<SwapQuery>, axum::extract::rejection::QueryRejection>,
    ApiBytes(body): ApiBytes,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| {
        ApiError::bad_request(format!(
            "expected `?task=classify` or `?task=generate` (and optionally `&force=true`): {}",
            e.body_text()
        ))
    })?;
    let task = match q.task.as_str() {
        "classify" => Task::Classify,
        "generate" => Task::Generate,
        other => {
            return Err(ApiError::unprocessable(format!(
                "unknown task `{other}`: use `classify` or `generate`"
            )))
        }
    };
    if body.is_empty() {
        return Err(ApiError::unprocessable(
            "the body must be the model image bytes (`Content-Type: application/octet-stream`)",
        ));
    }
    let key = state.config.public_key;
    let metrics = &state.metrics;
    let refuse = |e: String| {
        metrics.swap(task.as_str(), "refused");
        ApiError::unprocessable(e)
    };
    // Parsing and signature checks are CPU work: keep them off the async workers.
    let loaded = match task {
        Task::Classify => {
            let tokenizer = state.classifier_tokenizer.clone();
            let labels = state.config.labels.clone();
            let window = state.config.drift_window;
            tokio::task::spawn_blocking(move || {
                Classifier::load(&body, tokenizer, labels.as_deref(), key.as_ref(), window)
                    .map(Loaded::Classifier)
            })
            .await
        }
        Task::Generate => {
            let tokenizer = state.generator_tokenizer.clone();
            tokio::task::spawn_blocking(move || {
                Generator::load(&body, tokenizer, key.as_ref()).map(Loaded::Generator)
            })
            .await
        }
    }
    .map_err(|e| ApiError::internal(format!("the loader failed: {e}")))?
    .map_err(|e| refuse(format!("{e:#}")))?;
    // Rollback protection: a lower model version than the served one needs `force=true`.
    let downgrade = |d: super::state::Downgrade| {
        metrics.swap(task.as_str(), "refused");
        ApiError::new(StatusCode::CONFLICT, d.to_string())
    };
    let (new, old) = match loaded {
        Loaded::Classifier(c) => {
            let c = Arc::new(c);
            let new = ModelInfo::from(&c.image.meta);
            let old = state
                .upgrade_classifier(c, q.force)
                .map_err(downgrade)?
                .map(|o| ModelInfo::from(&o.image.meta));
            (new, old)
        }
        Loaded::Generator(g) => {
            let g = Arc::new(g);
            let new = ModelInfo::from(&g.image.meta);
            let old = state
                .upgrade_generator(g, q.force)
                .map_err(downgrade)?
                .map(|o| ModelInfo::from(&o.image.meta));
            (new, old)
        }
    };
    state.metrics.swap(task.as_str(), "swapped");
    Ok(Json(json!({ "task": task.as_str(), "model": new, "previous": old })).into_response())
}

enum Loaded {
    Classifier(Classifier),
    Generator(Generator),
}

async fn flush(State(state): State<Shared>, _auth: AdminToken) -> Result<Response, ApiError> {
    let sink = state.sink.clone();
    let written = tokio::task::spawn_blocking(move || sink.flush_blocking())
        .await
        .map_err(|e| ApiError::internal(format!("the store writer failed: {e}")))?
        .map_err(ApiError::internal)?;
    Ok(Json(json!({
        "written": written,
        "store": state.sink.store_dir().display().to_string(),
    }))
    .into_response())
}

async fn openapi() -> Response {
    json_response(StatusCode::OK, super::openapi::document().to_string())
}
