//! `edgeloop serve` over real HTTP: servers on 127.0.0.1 (port 0) in this process, driven by a
//! real HTTP/1.1 client (hyper-util), with model images built in code by the runtime's image
//! writer (a bag-of-embeddings classifier with a reference class histogram, the tiny GPT),
//! a character tokenizer trained by the trainer, and images signed by the quantizer's signer.
//! One more test runs the `edgeloop serve` binary itself.
//!
//! The root package is a binary, so the serve module is compiled into this test crate directly.

#[allow(dead_code)]
#[path = "../src/serve/mod.rs"]
mod serve;

use std::path::PathBuf;
use std::time::Duration;

use edgeloop_quantize::sign::{generate_keypair, sign_image, SecretKey};
use edgeloop_runtime::image::layers::Activation;
use edgeloop_runtime::image::writer::{AlignedBytes, ImageWriter};
use edgeloop_runtime::image::DType;
use edgeloop_runtime::models::tiny_encoder::TinyEncoder;
use edgeloop_runtime::models::tiny_gpt::TinyGpt;
use edgeloop_runtime::models::Rng;
use edgeloop_runtime::telemetry::{InferenceSummary, InputSummary, ModelRef, Record, Recorder};
use edgeloop_runtime::{Interpreter, Model};
use edgeloop_trainer::tokenizer::{CharConfig, Tokenizer};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{HeaderMap, Method, Request};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use serve::{ModelSource, ServeConfig};

const ADMIN: &str = "admin-secret";
const INGEST: &str = "ingest-secret";
const LABELS: [&str; 3] = ["lights", "music", "weather"];
/// Token positions of the test classifier.
const T: usize = 16;
/// Reference class histogram stored in the classifier image.
const REFERENCE: [u32; 3] = [50, 30, 20];

const TEXTS: [&str; 6] = [
    "turn on the light",
    "switch off the lamp",
    "play some music",
    "next song please",
    "what is the weather",
    "will it rain today",
];

fn tokenizer() -> Tokenizer {
    Tokenizer::train_char(
        TEXTS.iter(),
        &CharConfig {
            max_vocab: 32,
            min_frequency: 1,
        },
    )
    .expect("char tokenizer")
}

/// A bag-of-embeddings classifier: ids `i32 [T]` → Gather (32 × 8) → mean over tokens
/// (GlobalAvgPool) → FullyConnected (3) → Softmax, f32, with a reference class histogram.
fn bag_classifier(seed: u64, version: u32, reference: Option<[u32; 3]>) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let (v, d, c) = (32, 8, 3);
    let mut w = ImageWriter::new("bag-classifier", version).unwrap();
    let ids = w.input(DType::I32, &[T], None).unwrap();
    let e = w.gather(&rng.vec(v * d, 1.0), v, d, ids, None).unwrap();
    let e4 = w.alias(e, &[1, T, 1, d]).unwrap();
    let pooled = w.global_avg_pool(e4, None).unwrap();
    let flat = w.alias(pooled, &[1, d]).unwrap();
    let logits = w
        .fully_connected(
            flat,
            &rng.vec(c * d, 2.0),
            Some(&rng.vec(c, 0.2)),
            c,
            Activation::None,
            None,
        )
        .unwrap();
    let probs = w.softmax(logits, 1.0).unwrap();
    w.output(probs).unwrap();
    if let Some(r) = reference {
        w.stats_entry(2, r.iter().flat_map(|x| x.to_le_bytes()).collect());
    }
    w.finish().unwrap().bytes
}

fn gpt_image() -> Vec<u8> {
    TinyGpt::random(11).image(1, None, false).unwrap().0.bytes
}

fn key() -> SecretKey {
    generate_keypair(Some([7; 32])).unwrap().0
}

fn store_dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("serve_http_{name}"));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A config serving the classifier and the GPT (both signed with [`key`]), tokens set, no
/// timed flushes.
fn config(name: &str) -> ServeConfig {
    let tok = tokenizer();
    let k = key();
    let mut c = ServeConfig::new(store_dir(name));
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.classifier = Some(ModelSource {
        image: sign_image(&bag_classifier(1, 1, Some(REFERENCE)), &k).unwrap(),
        tokenizer: Some(tok.clone()),
    });
    c.labels = Some(LABELS.iter().map(|s| s.to_string()).collect());
    c.generator = Some(ModelSource {
        image: sign_image(&gpt_image(), &k).unwrap(),
        tokenizer: Some(tok),
    });
    c.public_key = Some(k.public_key().0);
    c.admin_token = Some(ADMIN.into());
    c.ingest_token = Some(INGEST.into());
    c.flush_interval = None;
    c.max_body_bytes = 4096;
    c.max_new_tokens = 32;
    c
}

struct Resp {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts a 4xx status and a JSON `{"error": "<non-empty>"}` body; returns the message.
    fn error(&self, status: u16) -> String {
        assert_eq!(self.status, status, "body: {}", self.text());
        assert_eq!(
            self.headers
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "{}",
            self.text()
        );
        let msg = self.json()["error"].as_str().unwrap_or("").to_string();
        assert!(!msg.is_empty(), "no error message: {}", self.text());
        msg
    }
}

#[derive(Clone)]
struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

impl Http {
    fn new(addr: std::net::SocketAddr) -> Http {
        Http {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: format!("http://{addr}"),
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Resp {
        let mut b = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b.body(Full::new(body.into())).unwrap();
        let resp = self.client.request(req).await.expect("HTTP request failed");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .expect("reading body")
            .to_bytes()
            .to_vec();
        Resp {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str) -> Resp {
        self.send(Method::GET, path, &[], Bytes::new()).await
    }

    async fn post_json(&self, path: &str, v: &Value, token: Option<&str>) -> Resp {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut h = vec![("content-type", "application/json")];
        if let Some(a) = &auth {
            h.push(("authorization", a));
        }
        self.send(Method::POST, path, &h, v.to_string()).await
    }

    async fn predict(&self, text: &str) -> Resp {
        self.post_json("/v1/predict", &json!({ "text": text }), None)
            .await
    }

    async fn swap(&self, task: &str, image: Vec<u8>, token: Option<&str>) -> Resp {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut h = vec![("content-type", "application/octet-stream")];
        if let Some(a) = &auth {
            h.push(("authorization", a));
        }
        self.send(
            Method::POST,
            &format!("/admin/model?task={task}"),
            &h,
            image,
        )
        .await
    }
}

/// The classifier's answer computed here, without the server: tokenizer → pad with [PAD] →
/// runtime interpreter → argmax of the softmax output.
fn expected_class(image: &[u8], text: &str) -> (usize, Vec<f32>) {
    let tok = tokenizer();
    let mut ids: Vec<i32> = tok
        .encode(text)
        .unwrap()
        .iter()
        .map(|&x| x as i32)
        .collect();
    ids.truncate(T);
    ids.resize(T, tok.specials().pad.unwrap() as i32);
    let bytes = AlignedBytes::new(image);
    let model = Model::parse(bytes.as_slice()).unwrap();
    let mut arena = AlignedBytes::zeroed(model.arena_bytes());
    let mut it = Interpreter::new(&model, arena.as_mut_slice()).unwrap();
    it.input_i32(0).unwrap().copy_from_slice(&ids);
    it.invoke().unwrap();
    let p = it.output_f32(0).unwrap().to_vec();
    let best = (0..p.len()).fold(0, |b, i| if p[i] > p[b] { i } else { b });
    (best, p)
}

/// Greedy decoding computed here: for each step, a fresh interpreter replays the whole
/// sequence through the KV cache, then the argmax of the last logits is appended.
fn expected_generation(image: &[u8], prompt: &[u32], n: usize) -> Vec<u32> {
    let bytes = AlignedBytes::new(image);
    let model = Model::parse(bytes.as_slice()).unwrap();
    let mut seq = prompt.to_vec();
    for _ in 0..n {
        let mut arena = AlignedBytes::zeroed(model.arena_bytes());
        let mut it = Interpreter::new(&model, arena.as_mut_slice()).unwrap();
        let mut logits = Vec::new();
        for (p, &t) in seq.iter().enumerate() {
            it.input_i32(0).unwrap()[0] = t as i32;
            it.input_i32(1).unwrap()[0] = p as i32;
            it.input_i32(2).unwrap()[0] = p as i32;
            it.invoke().unwrap();
            logits = it.output_f32(0).unwrap().to_vec();
        }
        let best = (0..logits.len()).fold(0, |b, i| if logits[i] > logits[b] { i } else { b });
        seq.push(best as u32);
    }
    seq[prompt.len()..].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predict_generate_and_healthz_answer_like_the_runtime() {
    let cfg = config("predict");
    let clf_image = cfg.classifier.as_ref().unwrap().image.clone();
    let gpt = cfg.generator.as_ref().unwrap().image.clone();
    let server = serve::spawn(cfg).await.unwrap();
    let http = Http::new(server.addr);

    let h = http.get("/healthz").await;
    assert_eq!(h.status, 200);
    let h = h.json();
    assert_eq!(h["status"], "ok");
    assert_eq!(h["classifier"]["model"]["name"], "bag-classifier");
    assert_eq!(h["classifier"]["model"]["verified"], true);
    assert_eq!(h["generator"]["context"], 16);
    assert_eq!(h["signature_required"], true);

    for text in TEXTS {
        let r = http.predict(text).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        let (want, probs) = expected_class(&clf_image, text);
        assert_eq!(v["class"], want, "{text}");
        assert_eq!(v["label"], LABELS[want]);
        let scores = v["scores"].as_array().unwrap();
        assert_eq!(scores.len(), 3);
        for (i, s) in scores.iter().enumerate() {
            assert_eq!(s["label"], LABELS[i]);
            assert!((s["score"].as_f64().unwrap() - probs[i] as f64).abs() < 1e-6);
        }
        let id = v["request_id"].as_str().unwrap();
        assert_eq!(r.headers["x-request-id"].to_str().unwrap(), id);
        assert!(v["latency_ms"].as_f64().unwrap() > 0.0);
        assert!(v["inference_us"].as_f64().unwrap() > 0.0);
        assert_eq!(v["model"]["version"], 1);
    }
    // Token ids instead of text; truncation past T positions is reported.
    let r = http
        .post_json("/v1/predict", &json!({"tokens": vec![7; 40]}), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["truncated"], true);
    assert_eq!(r.json()["tokens"], T);

    let tok = tokenizer();
    let prompt = tok.encode("turn on").unwrap();
    let r = http
        .post_json(
            "/v1/generate",
            &json!({"prompt": "turn on", "max_tokens": 5}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let got: Vec<u32> = v["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap() as u32)
        .collect();
    let eos = tok.specials().eos.unwrap();
    let mut want = expected_generation(&gpt, &prompt, 5);
    if let Some(p) = want.iter().position(|&t| t == eos) {
        want.truncate(p);
        assert_eq!(v["stop"], "end_of_text");
    } else {
        assert_eq!(v["stop"], "max_tokens");
    }
    assert_eq!(got, want);
    assert_eq!(v["text"], tok.decode(&got).unwrap());
    assert_eq!(v["prompt_tokens"], prompt.len());
    // A long prompt stops at the end of the context (16 positions).
    let r = http
        .post_json(
            "/v1/generate",
            &json!({"tokens": vec![6; 12], "max_tokens": 32}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let n = v["tokens"].as_array().unwrap().len();
    assert!(v["stop"] == "context_full" && n == 5 || v["stop"] == "end_of_text" && n < 5);

    let stats = server.shutdown().await.unwrap();
    assert_eq!(stats.written, 9, "6 + 1 predictions, 2 generations");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_needs_the_token_and_a_known_request_and_reaches_the_store() {
    let mut cfg = config("feedback");
    cfg.sample_inputs = true;
    let dir = cfg.store_dir.clone();
    let server = serve::spawn(cfg).await.unwrap();
    let http = Http::new(server.addr);
    let p = http.predict("play some music").await.json();
    let id = p["request_id"].as_str().unwrap().to_string();
    let g = http
        .post_json("/v1/generate", &json!({"prompt": "next"}), None)
        .await
        .json();
    let gen_id = g["request_id"].as_str().unwrap().to_string();

    let fb = json!({"request_id": id, "correction": "weather"});
    http.post_json("/v1/feedback", &fb, None).await.error(401);
    http.post_json("/v1/feedback", &fb, Some("wrong"))
        .await
        .error(401);
    http.post_json("/v1/feedback", &fb, Some(ADMIN))
        .await
        .error(401);
    // Auth comes before the body is looked at.
    http.send(Method::POST, "/v1/feedback", &[], "garbage")
        .await
        .error(401);

    let r = http.post_json("/v1/feedback", &fb, Some(INGEST)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["recorded"], true);
    let r = http
        .post_json(
            "/v1/feedback",
            &json!({"request_id": id, "correction": 0, "preference": "down"}),
            Some(INGEST),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = http
        .post_json(
            "/v1/feedback",
            &json!({"request_id": gen_id, "preference": "up"}),
            Some(INGEST),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // A generation corrected by the user, as text and as token ids.
    for correction in [json!("weather"), json!([1, 2])] {
        let r = http
            .post_json(
                "/v1/feedback",
                &json!({"request_id": gen_id, "correction": correction}),
                Some(INGEST),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }

    let m = http
        .post_json(
            "/v1/feedback",
            &json!({"request_id": "00000000-deadbeef", "preference": "up"}),
            Some(INGEST),
        )
        .await
        .error(404);
    assert!(m.contains("unknown request id"), "{m}");
    for (body, what) in [
        (
            json!({"request_id": id, "correction": "snow"}),
            "unknown label",
        ),
        (json!({"request_id": id, "correction": 3}), "out of range"),
        (json!({"request_id": id, "correction": -1}), "out of range"),
        (
            json!({"request_id": id, "correction": [1]}),
            "label name or a class index",
        ),
        (json!({"request_id": id}), "correction"),
        (
            json!({"request_id": id, "preference": "meh"}),
            "unknown variant",
        ),
        (
            json!({"request_id": gen_id, "correction": 4}),
            "the right response",
        ),
        (
            json!({"request_id": gen_id, "correction": []}),
            "non-empty array",
        ),
        (
            json!({"request_id": gen_id, "correction": [1_000_000]}),
            "outside the model's vocabulary",
        ),
        (
            json!({"request_id": gen_id, "correction": "weather ".repeat(40)}),
            "shorten the correction",
        ),
        (json!({"request_id": 5, "preference": "up"}), "invalid type"),
    ] {
        let m = http
            .post_json("/v1/feedback", &body, Some(INGEST))
            .await
            .error(422);
        assert!(m.contains(what), "{body}: {m}");
    }
    let stats = server.shutdown().await.unwrap();
    assert_eq!(stats.written, 7);

    let data = edgeloop_monitor::store::read(&dir).unwrap();
    assert_eq!(data.inferences.len(), 2);
    assert_eq!(data.feedback.len(), 5);
    let inf = data
        .inferences
        .iter()
        .find(|r| format!("{:08x}-{:08x}", r.common.boot, r.common.seq) == id)
        .expect("the prediction's record");
    let tok = tokenizer();
    let ids = tok.encode("play some music").unwrap();
    assert_eq!(inf.input_len as usize, ids.len());
    let about: Vec<_> = data
        .feedback
        .iter()
        .filter(|f| f.inference_seq == inf.common.seq)
        .collect();
    assert_eq!(about.len(), 2);
    assert!(about
        .iter()
        .any(|f| f.correction == Some(2) && f.thumbs_up.is_none()));
    assert!(about
        .iter()
        .any(|f| f.correction == Some(0) && f.thumbs_up == Some(false)));
    let want: Vec<i32> = ids.iter().map(|&x| x as i32).collect();
    assert!(about.iter().all(|f| f.sample == want));
    // The rated generation carries `prompt, -1, response`: a preference-pair candidate.
    let rated = data
        .feedback
        .iter()
        .find(|f| f.thumbs_up == Some(true))
        .expect("the generation's rating");
    let prompt: Vec<u32> = tok.encode("next").unwrap();
    let response: Vec<u32> = g["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap() as u32)
        .collect();
    // (An empty answer — end-of-text first — makes no pair.)
    let want = (!response.is_empty()).then_some((prompt.clone(), response.clone()));
    assert_eq!(
        edgeloop_monitor::preferences::split_sample(&rated.sample),
        want
    );
    // Each correction carries `prompt, -1, response, -2, correction` and is a pair on its own.
    let corrections: Vec<_> = data
        .feedback
        .iter()
        .filter_map(|f| edgeloop_monitor::preferences::parse_sample(&f.sample)?.correction)
        .collect();
    assert_eq!(
        corrections,
        vec![tok.encode("weather").unwrap(), vec![1, 2]]
    );
    let set = edgeloop_monitor::preferences::preference_pairs(&data, None, &Default::default(), 4);
    assert_eq!(set.from_corrections, 2);
    assert!(set
        .pairs
        .iter()
        .all(|p| p.prompt == prompt && p.rejected == response));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_mistyped_and_oversized_requests_get_4xx_json_errors() {
    let cfg = config("malformed");
    let server = serve::spawn(cfg).await.unwrap();
    let http = Http::new(server.addr);
    let json_ct = [("content-type", "application/json")];
    let post = |body: &'static str| {
        let http = http.clone();
        async move { http.send(Method::POST, "/v1/predict", &json_ct, body).await }
    };
    post("{\"text\": ").await.error(400);
    post("not json").await.error(400);
    post("").await.error(400);
    let deep = "[".repeat(100_000);
    http.send(Method::POST, "/v1/predict", &json_ct, deep)
        .await
        .error(413);
    // Deeply nested JSON within the size limit: refused by shape (422) or by serde_json's
    // recursion limit (400), never a crash.
    for deep in [
        "[".repeat(3000),
        format!("{{\"text\": \"a\", \"x\": {}", "[".repeat(3000)),
    ] {
        let r = http.send(Method::POST, "/v1/predict", &json_ct, deep).await;
        assert!(r.status == 400 || r.status == 422, "{}", r.status);
        r.error(r.status);
    }
    for (body, what) in [
        ("{\"text\": 5}", "invalid type"),
        ("{\"text\": \"hi\", \"extra\": 1}", "unknown field"),
        ("null", "invalid type"),
        ("[]", "invalid"),
        ("{}", "missing `text`"),
        ("{\"text\": \"   \"}", "empty"),
        ("{\"tokens\": []}", "no tokens"),
        ("{\"tokens\": [-3]}", "invalid value"),
        ("{\"tokens\": [99]}", "outside the model's vocabulary"),
        ("{\"text\": \"a\", \"tokens\": [1]}", "not both"),
    ] {
        let m = post(body).await.error(422);
        assert!(m.contains(what), "{body}: {m}");
    }
    http.send(Method::POST, "/v1/predict", &[], "{\"text\": \"hi\"}")
        .await
        .error(415);
    http.send(
        Method::POST,
        "/v1/predict",
        &[("content-type", "text/plain")],
        "{\"text\": \"hi\"}",
    )
    .await
    .error(415);
    let big = json!({ "text": "a".repeat(10_000) }).to_string();
    let m = http
        .send(Method::POST, "/v1/predict", &json_ct, big)
        .await
        .error(413);
    assert!(m.contains("limit"), "{m}");
    for (body, what) in [
        (
            json!({"prompt": "turn", "max_tokens": 33}),
            "above the server's limit",
        ),
        (json!({"tokens": vec![1; 17]}), "context is 16"),
        (json!({"tokens": [32]}), "outside the model's vocabulary"),
        (json!({"prompt": "x", "max_tokens": "many"}), "invalid type"),
    ] {
        let m = http.post_json("/v1/generate", &body, None).await.error(422);
        assert!(m.contains(what), "{body}: {m}");
    }
    let m = http.get("/v2/nothing").await.error(404);
    assert!(m.contains("no route"), "{m}");
    http.get("/v1/predict").await.error(405);
    http.send(Method::DELETE, "/healthz", &[], Bytes::new())
        .await
        .error(405);
    // Still serving.
    assert_eq!(http.predict("turn on the light").await.status, 200);
    server.shutdown().await.unwrap();
}

/// Sends `request` on one connection (from a writer thread, so a server that stops reading
/// cannot stall the test) and returns everything the server answered until it closed.
fn raw_exchange(addr: std::net::SocketAddr, request: Vec<u8>) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || w.write_all(&request).map_err(|e| e.to_string()));
    let mut got = Vec::new();
    // A reset ends the answer like a close does; what arrived before it is what counts.
    let _ = s.read_to_end(&mut got);
    let _ = writer.join();
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_is_answered_413_and_the_connection_stays_usable() {
    // The server reads the rest of a too-large body before answering, so a client still
    // sending gets its 413 (not a broken pipe) and the connection serves the next request.
    let server = serve::spawn(config("oversized")).await.unwrap();
    let addr = server.addr;
    for size in [4097, 100_000, 600_000] {
        let text = tokio::task::spawn_blocking(move || {
            let body = format!("{{\"text\": \"{}\"}}", "a".repeat(size));
            let mut req = format!(
                "POST /v1/predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes();
            let next = "{\"text\": \"turn on the light\"}";
            req.extend_from_slice(
                format!(
                    "POST /v1/predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{next}",
                    next.len()
                )
                .as_bytes(),
            );
            raw_exchange(addr, req)
        })
        .await
        .unwrap();
        let statuses: Vec<&str> = text
            .match_indices("HTTP/1.1 ")
            .map(|(i, _)| &text[i + 9..i + 12])
            .collect();
        assert_eq!(statuses, ["413", "200"], "{size}: {text}");
        assert!(text.contains("limit of 4096 bytes"), "{text}");
    }
    // A declared length far past the limit is refused from the head alone, no body sent.
    let text = tokio::task::spawn_blocking(move || {
        raw_exchange(
            addr,
            b"POST /v1/predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100000000\r\n\r\n".to_vec(),
        )
    })
    .await
    .unwrap();
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_stalls_is_answered_408_within_the_limit() {
    use std::io::{Read, Write};
    let mut cfg = config("timeout");
    cfg.request_timeout = Duration::from_millis(300);
    let server = serve::spawn(cfg).await.unwrap();
    let addr = server.addr;
    // Headers promise 100 bytes of body; 8 come, then the client stalls.
    let text = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(
            b"POST /v1/predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"text\":",
        )
        .unwrap();
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).expect("no answer within 10 s");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    })
    .await
    .unwrap();
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("{\"error\":"), "{text}");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_swap_under_concurrent_requests_drops_none_and_refuses_bad_images() {
    let cfg = config("swap");
    let server = serve::spawn(cfg).await.unwrap();
    let http = Http::new(server.addr);
    let k = key();
    let v1 = sign_image(&bag_classifier(1, 1, Some(REFERENCE)), &k).unwrap();
    let v2 = sign_image(&bag_classifier(2, 2, Some(REFERENCE)), &k).unwrap();

    const CLIENTS: usize = 16;
    const PER_CLIENT: usize = 25;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let http = http.clone();
            tokio::spawn(async move {
                let mut versions = Vec::new();
                for i in 0..PER_CLIENT {
                    let r = http.predict(TEXTS[(c + i) % TEXTS.len()]).await;
                    assert_eq!(r.status, 200, "request {c}/{i} failed: {}", r.text());
                    versions.push(r.json()["model"]["version"].as_u64().unwrap());
                }
                versions
            })
        })
        .collect();
    let mut swaps = 0;
    for i in 0..10 {
        // v2 -> v1 is a deliberate rollback: it needs `force=true`.
        let (task, img) = if i % 2 == 0 {
            ("classify", v2.clone())
        } else {
            ("classify&force=true", v1.clone())
        };
        let r = http.swap(task, img, Some(ADMIN)).await;
        assert_eq!(r.status, 200, "{}", r.text());
        swaps += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut seen = std::collections::BTreeSet::new();
    for c in clients {
        for v in c.await.expect("a client task panicked") {
            seen.insert(v);
        }
    }
    assert!(seen.iter().all(|v| *v == 1 || *v == 2), "{seen:?}");
    let r = http.swap("classify", v2.clone(), Some(ADMIN)).await;
    assert_eq!(r.json()["model"]["version"], 2);
    assert_eq!(r.json()["previous"]["version"], 1);
    assert_eq!(r.json()["model"]["verified"], true);
    swaps += 1;
    assert_eq!(http.predict("play").await.json()["model"]["version"], 2);

    // Refusals: each answered 4xx with a reason, and the served model stays v2.
    http.swap("classify", v1.clone(), None).await.error(401);
    http.swap("classify", v1.clone(), Some(INGEST))
        .await
        .error(401);
    let mut tampered = v1.clone();
    tampered[100] ^= 0x01;
    let m = http
        .swap("classify", tampered, Some(ADMIN))
        .await
        .error(422);
    assert!(m.contains("invalid") || m.contains("refused"), "{m}");
    // Altered after signing with the CRC fixed up: only the signature catches it.
    let resigned_other = {
        let other = generate_keypair(Some([9; 32])).unwrap().0;
        sign_image(&bag_classifier(1, 1, Some(REFERENCE)), &other).unwrap()
    };
    let m = http
        .swap("classify", resigned_other, Some(ADMIN))
        .await
        .error(422);
    assert!(m.contains("another key"), "{m}");
    let m = http
        .swap("classify", bag_classifier(3, 3, None), Some(ADMIN))
        .await
        .error(422);
    assert!(m.contains("not signed"), "{m}");
    let mut forged = v1.clone();
    let n = forged.len();
    forged[n - 1] ^= 0x80; // a bit of the signature itself
    let m = http.swap("classify", forged, Some(ADMIN)).await.error(422);
    assert!(m.contains("does not verify"), "{m}");
    let encoder = sign_image(
        &TinyEncoder::random(1).image(None, false).unwrap().0.bytes,
        &k,
    )
    .unwrap();
    let m = http.swap("classify", encoder, Some(ADMIN)).await.error(422);
    assert!(m.contains("4 classes but 3 labels"), "{m}");
    let m = http
        .swap("generate", v1.clone(), Some(ADMIN))
        .await
        .error(422);
    assert!(m.contains("generator"), "{m}");
    http.swap("classify", b"garbage".to_vec(), Some(ADMIN))
        .await
        .error(422);
    http.swap("sing", v1.clone(), Some(ADMIN)).await.error(422);
    http.send(
        Method::POST,
        "/admin/model",
        &[("authorization", "Bearer admin-secret")],
        v1.clone(),
    )
    .await
    .error(400);
    assert_eq!(http.predict("play").await.json()["model"]["version"], 2);

    // Downgrade protection: a valid, signed v1 is refused over v2 (409) unless forced.
    let m = http
        .swap("classify", v1.clone(), Some(ADMIN))
        .await
        .error(409);
    assert!(
        m.contains("downgrade") && m.contains("version 1") && m.contains("version 2"),
        "{m}"
    );
    assert_eq!(http.predict("play").await.json()["model"]["version"], 2);
    for bad in ["classify&force=maybe", "classify&force=true&x=1"] {
        http.swap(bad, v1.clone(), Some(ADMIN)).await.error(400);
    }
    let r = http
        .swap("classify&force=true", v1.clone(), Some(ADMIN))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["model"]["version"], 1);
    assert_eq!(http.predict("play").await.json()["model"]["version"], 1);
    // Same version again is not a downgrade; going up needs no flag.
    assert_eq!(
        http.swap("classify", v1.clone(), Some(ADMIN)).await.status,
        200
    );
    assert_eq!(
        http.swap("classify", v2.clone(), Some(ADMIN)).await.status,
        200
    );
    swaps += 3;

    let metrics = http.get("/metrics").await.text();
    assert!(
        metrics.contains(&format!(
            "edgeloop_model_swaps_total{{task=\"classify\",outcome=\"swapped\"}} {swaps}\n"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("edgeloop_model_swaps_total{task=\"classify\",outcome=\"refused\"} 7\n")
    );
    assert!(
        metrics.contains("edgeloop_model_swaps_total{task=\"generate\",outcome=\"refused\"} 1\n")
    );
    assert!(metrics.contains(
        "edgeloop_model_info{task=\"classify\",name=\"bag-classifier\",version=\"2\",signed=\"true\",verified=\"true\"} 1\n"
    ));
    let stats = server.shutdown().await.unwrap();
    assert_eq!(stats.written, (CLIENTS * PER_CLIENT + 4) as u64);
}

/// One parsed sample: metric name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

/// A minimal parser of the Prometheus text format: every line is a comment (`# HELP`,
/// `# TYPE`, or free text) or `name{labels} value`; returns (name, labels, value) samples and
/// checks that each sample belongs to a family declared with `# TYPE`.
fn parse_metrics(text: &str) -> Vec<Sample> {
    let mut types = std::collections::HashMap::new();
    let mut out = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE line");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            types.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (head, value) = line.rsplit_once(' ').expect("sample line");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        let (name, labels) = match head.split_once('{') {
            Some((n, l)) => {
                let l = l.strip_suffix('}').expect("closing brace");
                let mut labels = Vec::new();
                let mut rest = l;
                while !rest.is_empty() {
                    let (k, r) = rest.split_once("=\"").expect("label");
                    let mut v = String::new();
                    let mut chars = r.char_indices();
                    let mut end = None;
                    while let Some((i, c)) = chars.next() {
                        match c {
                            '\\' => {
                                let (_, e) = chars.next().expect("escape");
                                v.push(if e == 'n' { '\n' } else { e });
                            }
                            '"' => {
                                end = Some(i);
                                break;
                            }
                            c => v.push(c),
                        }
                    }
                    let end = end.expect("closing quote");
                    labels.push((k.to_string(), v));
                    rest = r[end + 1..].strip_prefix(',').unwrap_or(&r[end + 1..]);
                }
                (n.to_string(), labels)
            }
            None => (head.to_string(), Vec::new()),
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{name}"
        );
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).map(|k| k == "histogram").unwrap_or(false))
            })
            .unwrap_or(&name)
            .to_string();
        assert!(types.contains_key(&family), "no TYPE for {name}");
        out.push((name, labels, value));
    }
    out
}

fn sample(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.iter().any(|(a, b)| a == k && b == v))
        })
        .map(|s| s.2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_the_drift_gauge_is_the_psi_of_the_window() {
    let cfg = config("metrics");
    let clf_image = cfg.classifier.as_ref().unwrap().image.clone();
    let server = serve::spawn(cfg).await.unwrap();
    let http = Http::new(server.addr);
    let mut counts = [0u32; 3];
    for i in 0..12 {
        let text = TEXTS[i % TEXTS.len()];
        assert_eq!(http.predict(text).await.status, 200);
        counts[expected_class(&clf_image, text).0] += 1;
    }
    http.post_json("/v1/predict", &json!({"text": 1}), None)
        .await
        .error(422);
    let r = http.get("/metrics").await;
    assert_eq!(r.status, 200);
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let s = parse_metrics(&r.text());
    let req = |status: &str| {
        sample(
            &s,
            "edgeloop_http_requests_total",
            &[
                ("route", "/v1/predict"),
                ("method", "POST"),
                ("status", status),
            ],
        )
    };
    assert_eq!(req("200"), Some(12.0));
    assert_eq!(req("422"), Some(1.0));
    assert_eq!(
        sample(
            &s,
            "edgeloop_http_request_duration_seconds_count",
            &[("route", "/v1/predict")]
        ),
        Some(13.0)
    );
    // Buckets are cumulative and end with +Inf = count.
    let buckets: Vec<f64> = s
        .iter()
        .filter(|(n, l, _)| {
            n == "edgeloop_http_request_duration_seconds_bucket"
                && l.iter().any(|(k, v)| k == "route" && v == "/v1/predict")
        })
        .map(|x| x.2)
        .collect();
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
    assert_eq!(buckets.last(), Some(&13.0));
    assert_eq!(
        sample(
            &s,
            "edgeloop_inference_duration_seconds_count",
            &[("task", "classify")]
        ),
        Some(12.0)
    );
    for (i, l) in LABELS.iter().enumerate() {
        let got = sample(&s, "edgeloop_predictions_total", &[("label", l)]).unwrap_or(0.0);
        assert_eq!(got, counts[i] as f64, "{l}");
    }
    // PSI of the live counts against the image's reference, by the formula in f64 (empty
    // bins as 0.0001, as Evidently and the runtime do); the runtime's integer PSI is within 2e-4.
    let (te, ta) = (
        REFERENCE.iter().sum::<u32>() as f64,
        counts.iter().sum::<u32>() as f64,
    );
    let want: f64 = REFERENCE
        .iter()
        .zip(counts)
        .map(|(&e, a)| {
            let pe = if e == 0 { 1e-4 } else { e as f64 / te };
            let pa = if a == 0 { 1e-4 } else { a as f64 / ta };
            (pa - pe) * (pa / pe).ln()
        })
        .sum();
    let psi = sample(&s, "edgeloop_drift_psi", &[("source", "predicted_class")]).unwrap();
    assert!((psi - want).abs() < 2e-4, "{psi} vs {want}");
    assert_eq!(
        sample(&s, "edgeloop_drift_window_predictions", &[]),
        Some(12.0)
    );
    assert_eq!(
        sample(&s, "edgeloop_drift_reference_present", &[]),
        Some(1.0)
    );
    assert_eq!(
        sample(&s, "edgeloop_telemetry_buffered_records", &[]),
        Some(12.0)
    );
    server.shutdown().await.unwrap();

    // An image without a reference histogram: the gauge reads 0 and a comment says why.
    let mut cfg = config("metrics_noref");
    cfg.public_key = None;
    cfg.classifier.as_mut().unwrap().image = bag_classifier(1, 1, None);
    let server = serve::spawn(cfg).await.unwrap();
    let http = Http::new(server.addr);
    assert_eq!(http.predict("play some music").await.status, 200);
    let text = http.get("/metrics").await.text();
    let s = parse_metrics(&text);
    assert_eq!(sample(&s, "edgeloop_drift_psi", &[]), Some(0.0));
    assert_eq!(
        sample(&s, "edgeloop_drift_reference_present", &[]),
        Some(0.0)
    );
    assert!(text.contains("# edgeloop_drift_psi is 0: the image has no reference class histogram"));
    assert_eq!(
        http.get("/healthz").await.json()["classifier"]["model"]["verified"],
        false
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_describes_every_route() {
    let server = serve::spawn(config("openapi")).await.unwrap();
    let http = Http::new(server.addr);
    let r = http.get("/openapi.json").await;
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let routes = [
        ("post", "/v1/predict"),
        ("post", "/v1/generate"),
        ("post", "/v1/feedback"),
        ("post", "/v1/telemetry"),
        ("get", "/healthz"),
        ("get", "/metrics"),
        ("post", "/admin/model"),
        ("post", "/admin/flush"),
        ("get", "/openapi.json"),
    ];
    assert_eq!(paths.len(), routes.len());
    for (method, path) in routes {
        let op = &paths[path][method];
        assert!(op["summary"].is_string(), "{method} {path}");
        assert!(op["responses"]["200"].is_object(), "{method} {path}");
        // The route exists on the server (whatever it answers to an empty request, it is not
        // the unknown-route 404).
        let m = if method == "get" {
            Method::GET
        } else {
            Method::POST
        };
        let resp = http.send(m, path, &[], Bytes::new()).await;
        assert!(
            !(resp.status == 404 && resp.text().contains("no route")),
            "{method} {path} is documented but not served"
        );
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_telemetry_posted_over_http_reaches_the_store_once() {
    let cfg = config("telemetry");
    let dir = cfg.store_dir.clone();
    let server = serve::spawn(cfg).await.unwrap();
    let http = Http::new(server.addr);
    let mut rec = Recorder::<4096>::new(0xD00D, 3, ModelRef { id: 9, version: 4 });
    for i in 0..20u32 {
        rec.record(
            u64::from(i),
            Record::Inference(InferenceSummary {
                class: (i % 3) as u16,
                confidence_q16: 50_000,
                latency_ticks: 1000 + i,
                input: InputSummary::from_i8(&[1, 2, 3, i as i8]),
            }),
        )
        .unwrap();
    }
    let mut wire = Vec::new();
    let mut buf = [0u8; 2048];
    loop {
        let k = rec.drain(&mut buf).unwrap();
        if k == 0 {
            break;
        }
        wire.extend_from_slice(&buf[..k]);
    }
    let post = |body: Vec<u8>, token: &'static str| {
        let http = http.clone();
        async move {
            let auth = format!("Bearer {token}");
            http.send(
                Method::POST,
                "/v1/telemetry",
                &[
                    ("content-type", "application/octet-stream"),
                    ("authorization", &auth),
                ],
                body,
            )
            .await
        }
    };
    post(wire.clone(), ADMIN).await.error(401);
    let r = post(wire.clone(), INGEST).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"frames": 20, "duplicates": 0, "corrupt": 0})
    );
    let r = post(wire.clone(), INGEST).await;
    assert_eq!(
        r.json(),
        json!({"frames": 0, "duplicates": 20, "corrupt": 0})
    );
    // A corrupted stream: one damaged frame is skipped, the reader resynchronizes.
    let mut rec2 = Recorder::<4096>::new(0xD00D, 4, ModelRef { id: 9, version: 4 });
    for i in 0..3u64 {
        rec2.heartbeat(i, i * 10).unwrap();
    }
    let mut wire2 = vec![0u8; 2048];
    let n = rec2.drain(&mut wire2).unwrap();
    wire2.truncate(n);
    // Any other non-zero byte: the damage stays inside the first frame (0x00 delimits frames).
    wire2[2] = if wire2[2] == 1 { 2 } else { 1 };
    let r = post(wire2, INGEST).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["corrupt"], 1, "{v}");
    assert_eq!(v["frames"], 2, "{v}");
    post(b"\x01\x02\x03\x00".to_vec(), INGEST).await.error(422);

    let r = http
        .post_json("/admin/flush", &json!({}), Some(ADMIN))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["written"], 22);
    let data = edgeloop_monitor::store::read(&dir).unwrap();
    assert_eq!(data.inferences.len(), 20);
    assert_eq!(data.heartbeats, 2);
    assert!(data
        .inferences
        .iter()
        .all(|r| r.common.partition.device == 0xD00D && r.common.partition.model_version == 4));
    http.post_json("/admin/flush", &json!({}), None)
        .await
        .error(401);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_without_a_configured_token_or_model_are_refused() {
    let mut cfg = config("disabled");
    cfg.admin_token = None;
    cfg.ingest_token = None;
    cfg.generator = None;
    let server = serve::spawn(cfg).await.unwrap();
    let http = Http::new(server.addr);
    let id = http.predict("turn on").await.json()["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    http.post_json(
        "/v1/feedback",
        &json!({"request_id": id, "preference": "up"}),
        Some("anything"),
    )
    .await
    .error(403);
    http.swap("classify", vec![1, 2, 3], Some("anything"))
        .await
        .error(403);
    http.post_json("/v1/generate", &json!({"prompt": "a"}), None)
        .await
        .error(503);
    server.shutdown().await.unwrap();
    // A model that does not fit the configuration stops the start with a reason.
    let mut cfg = config("bad_labels");
    cfg.labels = Some(vec!["a".into(), "b".into()]);
    let e = serve::spawn(cfg).await.unwrap_err();
    assert!(format!("{e:#}").contains("3 classes but 2 labels"), "{e:#}");
    let mut cfg = config("unsigned");
    cfg.classifier.as_mut().unwrap().image = bag_classifier(1, 1, None);
    let e = serve::spawn(cfg).await.unwrap_err();
    assert!(format!("{e:#}").contains("not signed"), "{e:#}");
}

#[test]
fn the_cli_serves_until_sigterm_and_flushes_the_store() {
    use std::io::{BufRead, BufReader, Read, Write};
    let dir = store_dir("cli");
    std::fs::create_dir_all(&dir).unwrap();
    let k = key();
    let image = dir.join("clf.img");
    std::fs::write(
        &image,
        sign_image(&bag_classifier(1, 1, Some(REFERENCE)), &k).unwrap(),
    )
    .unwrap();
    let tok_path = dir.join("tokenizer.json");
    tokenizer().save(&tok_path).unwrap();
    let pub_path = dir.join("edgeloop.pub");
    std::fs::write(&pub_path, k.public_key().to_text()).unwrap();
    let store = dir.join("store");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_edgeloop"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--labels",
            "lights,music,weather",
        ])
        .arg("--classifier")
        .arg(&image)
        .arg("--tokenizer")
        .arg(&tok_path)
        .arg("--public-key")
        .arg(&pub_path)
        .arg("--store")
        .arg(&store)
        .env("EDGELOOP_INGEST_TOKEN", INGEST)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting edgeloop serve");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    // A plain HTTP/1.1 request over a TCP socket.
    let body = "{\"text\": \"play some music\"}";
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        s,
        "POST /v1/predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains("\"request_id\""), "{resp}");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(exit.success(), "exit {exit:?}: {err}");
    assert!(err.contains("stopped: 1 records written"), "{err}");
    let data = edgeloop_monitor::store::read(&store).unwrap();
    assert_eq!(data.inferences.len(), 1);
}
