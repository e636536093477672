//! Reading a request body within a route's size limit.
//!
//! A body over the limit is answered 413, but not before the rest of it has been read and
//! dropped (up to [`DRAIN_MAX`] more bytes): a server that answers and closes while the client
//! is still sending makes the client's next write fail (`EPIPE`, or a reset that can also
//! destroy the 413 on its way), so the client sees a broken connection instead of the answer.
//! Reading the rest keeps the connection usable and the answer delivered. A body that says,
//! through its `Content-Length`, that it is larger than the limit plus [`DRAIN_MAX`] is
//! refused at once, without reading any of it. The time a slow body may take is bounded by the
//! request time limit of [`super::routes::router`].

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, HeaderMap, StatusCode};
use http_body_util::BodyExt;

use super::error::ApiError;

/// The largest body a route accepts, in bytes: a request extension, set per route with
/// `.layer(Extension(BodyLimit(n)))` (the innermost layer wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimit(pub usize);

/// How many bytes past the limit are read and dropped before a too-large body is answered.
pub const DRAIN_MAX: usize = 1 << 20;

/// The limit when a route sets none (axum's default).
pub const DEFAULT_LIMIT: usize = 2 << 20;

/// The 413 answer for a body larger than the route's limit.
pub fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body is larger than the server's limit of {limit} bytes"),
    )
}

/// The body's declared length, when `Content-Length` is present and a number.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The whole body of `req`, at most its route's [`BodyLimit`] bytes (413 otherwise, after
/// draining as the module says); a body that fails to arrive is 400.
pub async fn read_limited(req: Request) -> Result<Bytes, ApiError> {
    let limit = req
        .extensions()
        .get::<BodyLimit>()
        .map_or(DEFAULT_LIMIT, |l| l.0);
    if let Some(n) = declared_length(req.headers()) {
        if n > limit.saturating_add(DRAIN_MAX) as u64 {
            return Err(too_large(limit));
        }
    }
    read_body(req.into_body(), limit).await
}

async fn read_body(mut body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let mut kept: Vec<u8> = Vec::new();
    let mut dropped = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| ApiError::bad_request(format!("could not read the request body: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        if dropped == 0 && kept.len() + data.len() <= limit {
            kept.extend_from_slice(&data);
            continue;
        }
        // Over the limit: keep nothing more, read on (within DRAIN_MAX) so the answer arrives.
        dropped = dropped.saturating_add(kept.len() + data.len());
        kept = Vec::new();
        if dropped > DRAIN_MAX {
            break;
        }
    }
    if dropped > 0 {
        return Err(too_large(limit));
    }
    Ok(Bytes::from(kept))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: Vec<u8>, declared: Option<usize>, limit: Option<usize>) -> Request {
        let mut b = Request::builder().method("POST").uri("/");
        if let Some(n) = declared {
            b = b.header(header::CONTENT_LENGTH, n.to_string());
        }
        let mut r = b.body(Body::from(body)).unwrap();
        if let Some(l) = limit {
            r.extensions_mut().insert(BodyLimit(l));
        }
        r
    }

    fn run<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn bodies_within_the_limit_come_back_whole() {
        for n in [0, 1, 99, 100] {
            let body: Vec<u8> = (0..n).map(|i| (i * 7) as u8).collect();
            let got = run(read_limited(request(body.clone(), Some(n), Some(100)))).unwrap();
            assert_eq!(got.as_ref(), &body[..]);
        }
        // No Content-Length (chunked) is read the same way.
        let got = run(read_limited(request(vec![5; 100], None, Some(100)))).unwrap();
        assert_eq!(got.len(), 100);
    }

    #[test]
    fn bodies_over_the_limit_are_413_naming_the_limit() {
        for (n, declared) in [
            (101, Some(101)),
            (101, None),
            (5000, Some(5000)),
            (DRAIN_MAX + 500, None),
        ] {
            let e = run(read_limited(request(vec![1; n], declared, Some(100)))).unwrap_err();
            assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE, "{n}");
            assert!(e.message.contains("limit of 100 bytes"), "{}", e.message);
        }
        // Declared beyond limit + DRAIN_MAX: refused from the header alone.
        let declared = 100 + DRAIN_MAX + 1;
        let e = run(read_limited(request(Vec::new(), Some(declared), Some(100)))).unwrap_err();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[test]
    fn the_default_limit_applies_without_an_extension() {
        let ok = run(read_limited(request(vec![0; 1000], None, None))).unwrap();
        assert_eq!(ok.len(), 1000);
        let e = run(read_limited(request(
            vec![0; DEFAULT_LIMIT + 1],
            None,
            None,
        )))
        .unwrap_err();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
    }
}
