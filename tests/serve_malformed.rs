//! Malformed-input campaign against every route of `edgeloop serve` (issue 12, load): wrong
//! types, huge bodies (announced and chunked), invalid UTF-8, NaN/Infinity and out-of-range
//! numbers, missing or malformed authentication, broken HTTP, and slowloris-style clients
//! (slow request heads and slow bodies). Every request is answered with a 4xx — or, for slow
//! clients, the connection is closed (or answered 408) within the server's time limit — never
//! a 5xx, a hang or a crash; and the server answers a valid request after each group.
//!
//! Requests go over raw TCP so that anything (bytes that are not UTF-8, lying lengths, half
//! requests) can be sent. The serve module is compiled into this test crate (the root
//! package is a binary).

#[allow(dead_code)]
#[path = "../src/serve/mod.rs"]
mod serve;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use edgeloop_quantize::sign::{generate_keypair, sign_image};
use edgeloop_runtime::image::layers::Activation;
use edgeloop_runtime::image::writer::ImageWriter;
use edgeloop_runtime::image::DType;
use edgeloop_runtime::models::tiny_gpt::TinyGpt;
use edgeloop_runtime::models::Rng;
use edgeloop_trainer::tokenizer::{CharConfig, Tokenizer};
use serve::{ModelSource, ServeConfig};

const ADMIN: &str = "admin-secret";
const INGEST: &str = "ingest-secret";
const JSON_LIMIT: usize = 4096;
const UPLOAD_LIMIT: usize = 64 * 1024;
const TIME_LIMIT: Duration = Duration::from_millis(800);

/// A bag-of-embeddings classifier over 16 token ids with 3 classes.
fn classifier() -> Vec<u8> {
    let mut rng = Rng::new(5);
    let (t, v, d, c) = (16, 32, 8, 3);
    let mut w = ImageWriter::new("malformed-classifier", 1).unwrap();
    let ids = w.input(DType::I32, &[t], None).unwrap();
    let e = w.gather(&rng.vec(v * d, 1.0), v, d, ids, None).unwrap();
    let e4 = w.alias(e, &[1, t, 1, d]).unwrap();
    let pooled = w.global_avg_pool(e4, None).unwrap();
    let flat = w.alias(pooled, &[1, d]).unwrap();
    let logits = w
        .fully_connected(flat, &rng.vec(c * d, 2.0), None, c, Activation::None, None)
        .unwrap();
    let probs = w.softmax(logits, 1.0).unwrap();
    w.output(probs).unwrap();
    w.finish().unwrap().bytes
}

fn start() -> serve::BackgroundServer {
    let tok = Tokenizer::train_char(
        [
            "turn on the light",
            "play some music",
            "what is the weather",
        ]
        .iter(),
        &CharConfig {
            max_vocab: 32,
            min_frequency: 1,
        },
    )
    .unwrap();
    let key = generate_keypair(Some([3; 32])).unwrap().0;
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("serve_malformed");
    let _ = std::fs::remove_dir_all(&dir);
    let mut c = ServeConfig::new(dir);
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.classifier = Some(ModelSource {
        image: sign_image(&classifier(), &key).unwrap(),
        tokenizer: Some(tok.clone()),
    });
    c.generator = Some(ModelSource {
        image: sign_image(
            &TinyGpt::random(11).image(1, None, false).unwrap().0.bytes,
            &key,
        )
        .unwrap(),
        tokenizer: Some(tok),
    });
    c.public_key = Some(key.public_key().0);
    c.admin_token = Some(ADMIN.into());
    c.ingest_token = Some(INGEST.into());
    c.flush_interval = None;
    c.max_body_bytes = JSON_LIMIT;
    c.max_upload_bytes = UPLOAD_LIMIT;
    c.request_timeout = TIME_LIMIT;
    c.max_new_tokens = 8;
    serve::BackgroundServer::start(c).unwrap()
}

/// What came back on one connection.
#[derive(Debug)]
struct Reply {
    status: Option<u16>,
    head: String,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        format!("{} | {}", self.head, String::from_utf8_lossy(&self.body))
    }
}

fn parse_reply(raw: &[u8]) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = raw.get(split + 4..).unwrap_or_default().to_vec();
    let status = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|s| s.parse().ok());
    Reply { status, head, body }
}

/// Sends `request` (written by a second thread, so that an early answer is read while the
/// body is still going out) and reads until the server closes or `wait` passes.
fn exchange(addr: SocketAddr, request: Vec<u8>, wait: Duration) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(wait)).unwrap();
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        // The server may answer (413) and close before the whole body is sent.
        let _ = w.write_all(&request);
    });
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if raw.is_empty() => panic!("no answer: {e}"),
            Err(_) => break,
        }
    }
    let _ = writer.join();
    parse_reply(&raw)
}

fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n");
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    let mut bytes = r.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

const JSON: (&str, &str) = ("content-type", "application/json");
const ADMIN_AUTH: (&str, &str) = ("authorization", "Bearer admin-secret");
const INGEST_AUTH: (&str, &str) = ("authorization", "Bearer ingest-secret");

/// Asserts a 4xx answer from the application: the expected status and a JSON error body.
fn expect(addr: SocketAddr, what: &str, status: u16, req: Vec<u8>) {
    let r = exchange(addr, req, Duration::from_secs(10));
    assert_eq!(r.status, Some(status), "{what}: {}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("{what}: error body is not JSON ({e}): {}", r.text()));
    assert!(
        v["error"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {}",
        r.text()
    );
}

/// Asserts any 4xx (errors hyper answers itself, before the application, have no JSON body).
fn expect_4xx(addr: SocketAddr, what: &str, req: Vec<u8>) -> u16 {
    let r = exchange(addr, req, Duration::from_secs(10));
    let s = r
        .status
        .unwrap_or_else(|| panic!("{what}: no status: {}", r.text()));
    assert!((400..500).contains(&s), "{what}: {}", r.text());
    s
}

/// A valid prediction still answers 200.
fn still_serving(addr: SocketAddr, after: &str) {
    let r = exchange(
        addr,
        request(
            "POST",
            "/v1/predict",
            &[JSON],
            br#"{"text": "turn on the light"}"#,
        ),
        Duration::from_secs(10),
    );
    assert_eq!(r.status, Some(200), "after {after}: {}", r.text());
}

#[test]
fn every_route_answers_malformed_input_with_4xx_and_keeps_serving() {
    let server = start();
    let addr = server.addr();
    still_serving(addr, "start-up");

    // --- JSON routes: wrong types, NaN/Infinity, out-of-range numbers, invalid UTF-8.
    let bad_json: [(&str, &str, u16, &[u8]); 24] = [
        ("/v1/predict", "text is a number", 422, br#"{"text": 5}"#),
        (
            "/v1/predict",
            "tokens is a string",
            422,
            br#"{"tokens": "1 2"}"#,
        ),
        (
            "/v1/predict",
            "fractional token",
            422,
            br#"{"tokens": [1.5]}"#,
        ),
        ("/v1/predict", "NaN token", 400, br#"{"tokens": [NaN]}"#),
        (
            "/v1/predict",
            "Infinity token",
            400,
            br#"{"tokens": [Infinity]}"#,
        ),
        ("/v1/predict", "1e999 token", 400, br#"{"tokens": [1e999]}"#),
        (
            "/v1/predict",
            "token above u32",
            422,
            br#"{"tokens": [4294967296]}"#,
        ),
        ("/v1/predict", "negative token", 422, br#"{"tokens": [-1]}"#),
        (
            "/v1/predict",
            "invalid UTF-8 text",
            400,
            b"{\"text\": \"\xff\xfe\"}",
        ),
        (
            "/v1/predict",
            "invalid UTF-8 body",
            400,
            b"\xff\xfe\xfd\xfc",
        ),
        (
            "/v1/predict",
            "lone surrogate",
            400,
            br#"{"text": "\ud800"}"#,
        ),
        ("/v1/predict", "truncated JSON", 400, br#"{"text": "tur"#),
        (
            "/v1/predict",
            "top-level string",
            422,
            br#""turn on the light""#,
        ),
        (
            "/v1/generate",
            "prompt is a number",
            422,
            br#"{"prompt": 1}"#,
        ),
        (
            "/v1/generate",
            "negative max_tokens",
            422,
            br#"{"prompt": "x", "max_tokens": -1}"#,
        ),
        (
            "/v1/generate",
            "huge max_tokens",
            422,
            br#"{"prompt": "x", "max_tokens": 1e308}"#,
        ),
        (
            "/v1/generate",
            "NaN max_tokens",
            400,
            br#"{"prompt": "x", "max_tokens": NaN}"#,
        ),
        (
            "/v1/generate",
            "invalid UTF-8 prompt",
            400,
            b"{\"prompt\": \"a\xc3\x28\"}",
        ),
        (
            "/v1/generate",
            "unknown field",
            422,
            br#"{"prompt": "x", "temperature": "hot"}"#,
        ),
        ("/v1/generate", "array body", 422, b"[1, 2, 3]"),
        (
            "/v1/feedback",
            "request_id is a number",
            422,
            br#"{"request_id": 5, "preference": "up"}"#,
        ),
        (
            "/v1/feedback",
            "NaN correction",
            400,
            br#"{"request_id": "x", "correction": NaN}"#,
        ),
        (
            "/v1/feedback",
            "bad preference",
            422,
            br#"{"request_id": "x", "preference": "sideways"}"#,
        ),
        (
            "/v1/feedback",
            "invalid UTF-8 id",
            400,
            b"{\"request_id\": \"\xff\", \"preference\": \"up\"}",
        ),
    ];
    for (path, what, status, body) in bad_json {
        let auth: &[(&str, &str)] = if path == "/v1/feedback" {
            &[JSON, INGEST_AUTH]
        } else {
            &[JSON]
        };
        expect(
            addr,
            &format!("{path}: {what}"),
            status,
            request("POST", path, auth, body),
        );
    }
    expect(
        addr,
        "feedback for an unknown request",
        404,
        request(
            "POST",
            "/v1/feedback",
            &[JSON, INGEST_AUTH],
            br#"{"request_id": "ffffffff-00000000", "preference": "up"}"#,
        ),
    );
    for path in ["/v1/predict", "/v1/generate"] {
        expect(
            addr,
            "no content type",
            415,
            request("POST", path, &[], b"{}"),
        );
        expect(
            addr,
            "wrong content type",
            415,
            request("POST", path, &[("content-type", "text/plain")], b"{}"),
        );
    }
    still_serving(addr, "mistyped JSON");

    // --- Authentication: missing, wrong, malformed, the other route's token, not UTF-8.
    let guarded: [(&str, &[u8], (&str, &str)); 4] = [
        (
            "/v1/feedback",
            br#"{"request_id": "x", "preference": "up"}"#,
            JSON,
        ),
        (
            "/v1/telemetry",
            b"\x01\x02\x00",
            ("content-type", "application/octet-stream"),
        ),
        (
            "/admin/model?task=classify",
            b"\x00\x01",
            ("content-type", "application/octet-stream"),
        ),
        ("/admin/flush", b"", JSON),
    ];
    for (path, body, ct) in guarded {
        let wrong_token = if path.starts_with("/admin") {
            "Bearer ingest-secret"
        } else {
            "Bearer admin-secret"
        };
        for auth in [
            None,
            Some(wrong_token),
            Some("Bearer"),
            Some("Bearer "),
            Some("Basic YWRtaW46YWRtaW4="),
            Some("bearer  admin-secret  x"),
        ] {
            let mut h = vec![ct];
            if let Some(a) = auth {
                h.push(("authorization", a));
            }
            expect(
                addr,
                &format!("{path} auth {auth:?}"),
                401,
                request("POST", path, &h, body),
            );
        }
        // A header value with bytes that are not UTF-8.
        let mut raw =
            format!("POST {path} HTTP/1.1\r\nhost: t\r\nconnection: close\r\n").into_bytes();
        raw.extend_from_slice(b"authorization: Bearer \xff\xfe\r\n");
        raw.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
        raw.extend_from_slice(body);
        expect_4xx(addr, &format!("{path} non-UTF-8 token"), raw);
    }
    still_serving(addr, "authentication");

    // --- Bodies the binary routes cannot use.
    let oct = ("content-type", "application/octet-stream");
    for (what, body) in [
        ("garbage", b"not a frame at all".to_vec()),
        ("zeros", vec![0u8; 64]),
        ("invalid UTF-8", b"\xff\xfe\x00\xff".to_vec()),
    ] {
        expect(
            addr,
            &format!("telemetry {what}"),
            422,
            request("POST", "/v1/telemetry", &[oct, INGEST_AUTH], &body),
        );
        expect(
            addr,
            &format!("image {what}"),
            422,
            request(
                "POST",
                "/admin/model?task=classify",
                &[oct, ADMIN_AUTH],
                &body,
            ),
        );
    }
    let truncated = {
        let img = classifier();
        img[..img.len() / 2].to_vec()
    };
    expect(
        addr,
        "truncated image",
        422,
        request(
            "POST",
            "/admin/model?task=classify",
            &[oct, ADMIN_AUTH],
            &truncated,
        ),
    );
    expect(
        addr,
        "empty image",
        422,
        request(
            "POST",
            "/admin/model?task=classify",
            &[oct, ADMIN_AUTH],
            b"",
        ),
    );
    for q in [
        "",
        "?task=",
        "?task=classify&force=2",
        "?task=classify&task=generate",
        "?task=%ff%fe",
        "?tusk=classify",
    ] {
        let s = expect_4xx(
            addr,
            &format!("swap query {q:?}"),
            request(
                "POST",
                &format!("/admin/model{q}"),
                &[oct, ADMIN_AUTH],
                &classifier(),
            ),
        );
        assert!(s == 400 || s == 422, "swap query {q:?}: {s}");
    }
    still_serving(addr, "binary bodies");

    // --- Huge bodies: announced by content-length, and chunked without a length.
    for (path, limit, auth) in [
        ("/v1/predict", JSON_LIMIT, None),
        ("/v1/generate", JSON_LIMIT, None),
        ("/v1/feedback", JSON_LIMIT, Some(INGEST_AUTH)),
        ("/v1/telemetry", UPLOAD_LIMIT, Some(INGEST_AUTH)),
        ("/admin/model?task=classify", UPLOAD_LIMIT, Some(ADMIN_AUTH)),
    ] {
        let mut h = vec![JSON];
        h.extend(auth);
        // A 1 GiB promise: refused from the header, before any byte of body is read.
        let mut head = format!("POST {path} HTTP/1.1\r\nhost: t\r\nconnection: close\r\n");
        for (k, v) in &h {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        let announced = format!("{head}content-length: 1073741824\r\n\r\n");
        if auth.is_some() {
            // Without the token: refused before the body (401, not 413).
            let anon = announced.replace("authorization: Bearer ingest-secret\r\n", "");
            let anon = anon.replace("authorization: Bearer admin-secret\r\n", "");
            expect(
                addr,
                &format!("{path}: 1 GiB without a token"),
                401,
                anon.into_bytes(),
            );
        }
        // Only announced, never sent: every route refuses from the header (413) and closes.
        let r = exchange(
            addr,
            announced.clone().into_bytes(),
            Duration::from_secs(10),
        );
        assert!(
            r.status == Some(413),
            "{path}: 1 GiB announced: {}",
            r.text()
        );
        // Really sent, just over the limit.
        let body = vec![b'a'; limit + 1];
        expect(
            addr,
            &format!("{path}: {} bytes", limit + 1),
            413,
            request("POST", path, &h, &body),
        );
        // Chunked, no length: counted while read.
        let mut chunked = format!("{head}transfer-encoding: chunked\r\n\r\n").into_bytes();
        for _ in 0..(limit / 1024 + 2) {
            chunked.extend_from_slice(b"400\r\n");
            chunked.extend_from_slice(&[b'a'; 1024]);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        expect(
            addr,
            &format!("{path}: chunked over the limit"),
            413,
            chunked,
        );
    }
    still_serving(addr, "huge bodies");

    // --- Routes, methods and broken HTTP.
    for (method, path, status) in [
        ("GET", "/v1/predict", 405),
        ("PUT", "/v1/generate", 405),
        ("DELETE", "/v1/feedback", 405),
        ("GET", "/v1/telemetry", 405),
        ("POST", "/healthz", 405),
        ("POST", "/metrics", 405),
        ("GET", "/admin/model", 405),
        ("GET", "/admin/flush", 405),
        ("POST", "/openapi.json", 405),
        ("GET", "/v2/anything", 404),
        ("GET", "/v1/%ff%fe", 404),
        ("GET", "/../../etc/passwd", 404),
    ] {
        expect(
            addr,
            &format!("{method} {path}"),
            status,
            request(method, path, &[], b""),
        );
    }
    let long_path = format!("/v1/{}", "a".repeat(100_000));
    for (what, raw) in [
        ("garbage request line", b"GARBAGE\r\n\r\n".to_vec()),
        ("header without colon", b"GET /healthz HTTP/1.1\r\nhost t\r\n\r\n".to_vec()),
        ("two content-lengths", b"POST /v1/predict HTTP/1.1\r\nhost: t\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n{}".to_vec()),
        ("bad chunk size", b"POST /v1/predict HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n".to_vec()),
        ("100 KB path", request("GET", &long_path, &[], b"")),
        ("500 KB header", request("GET", "/healthz", &[("x-big", &"b".repeat(500_000))], b"")),
    ] {
        expect_4xx(addr, what, raw);
    }
    // An HTTP version hyper does not speak: hyper itself answers 505 (RFC 9110 15.6.6) before
    // any route runs; the one 5xx of the campaign, and the standard answer.
    let r = exchange(
        addr,
        b"GET /healthz HTTP/9.9\r\nhost: t\r\n\r\n".to_vec(),
        Duration::from_secs(10),
    );
    assert!(
        r.status == Some(505) || r.status.is_some_and(|s| (400..500).contains(&s)),
        "HTTP/9.9: {}",
        r.text()
    );
    still_serving(addr, "broken HTTP");

    // --- Slow clients. A body that trickles in is answered 408 (or the connection closed)
    // within the time limit; a request head that trickles in gets the connection closed.
    let slow = |head: &'static [u8], trickle: &'static [u8]| {
        std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
            let start = Instant::now();
            let _ = s.write_all(head);
            let mut raw = Vec::new();
            let mut buf = [0u8; 4096];
            for &b in trickle.iter().cycle() {
                if start.elapsed() > Duration::from_secs(20) {
                    panic!("a slow client was held for 20 s");
                }
                if s.write_all(&[b]).is_err() {
                    break;
                }
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => raw.extend_from_slice(&buf[..n]),
                    Err(e)
                        if e.kind() == std::io::ErrorKind::WouldBlock
                            || e.kind() == std::io::ErrorKind::TimedOut => {}
                    Err(_) => break,
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            (start.elapsed(), parse_reply(&raw))
        })
    };
    let mut clients = Vec::new();
    for _ in 0..16 {
        clients.push(("slow body", slow(
            b"POST /v1/predict HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{\"text\": \"",
            b"a",
        )));
        clients.push((
            "slow head",
            slow(b"POST /v1/predict HTTP/1.1\r\nhost: t\r\n", b"x-slow: y"),
        ));
    }
    // While they trickle, the server answers others.
    still_serving(addr, "slow clients started");
    for (what, c) in clients {
        let (took, reply) = c.join().expect("slow client thread");
        assert!(
            took < TIME_LIMIT + Duration::from_secs(3),
            "{what}: held for {took:?}"
        );
        if let Some(s) = reply.status {
            assert_eq!(s, 408, "{what}: {}", reply.text());
        }
    }
    still_serving(addr, "slow clients");
    server.stop().unwrap();
}
