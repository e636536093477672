//! Bearer-token checks for the routes that change state (feedback, telemetry, admin).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};

use super::error::ApiError;
use super::state::AppState;

/// Extractor: the request carries the ingest token (feedback, telemetry). As an extractor it
/// runs before the body is read, so an unauthenticated client cannot make the server buffer
/// a large body.
#[derive(Debug, Clone, Copy)]
pub struct IngestToken;

/// Extractor: the request carries the admin token (`/admin/*`), checked before the body is read.
#[derive(Debug, Clone, Copy)]
pub struct AdminToken;

fn route_name(parts: &Parts) -> String {
    format!("{} {}", parts.method, parts.uri.path())
}

impl FromRequestParts<Arc<AppState>> for IngestToken {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let what = route_name(parts);
        require_bearer(&parts.headers, state.config.ingest_token.as_deref(), &what)?;
        Ok(IngestToken)
    }
}

impl FromRequestParts<Arc<AppState>> for AdminToken {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let what = route_name(parts);
        require_bearer(&parts.headers, state.config.admin_token.as_deref(), &what)?;
        Ok(AdminToken)
    }
}

/// Compares two byte strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks `Authorization: Bearer <token>` against `expected`. No configured token: 403 (the
/// route is disabled); a missing, malformed or wrong header: 401.
pub fn require_bearer(
    headers: &HeaderMap,
    expected: Option<&str>,
    what: &str,
) -> Result<(), ApiError> {
    let Some(expected) = expected else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("{what} is disabled: the server was started without a token for it"),
        ));
    };
    let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, m.to_string());
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("missing `Authorization: Bearer <token>` header"))?;
    let value = value
        .to_str()
        .map_err(|_| unauthorized("the Authorization header is not ASCII"))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| unauthorized("the Authorization header is not `Bearer <token>`"))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(unauthorized(
            "the Authorization header is not `Bearer <token>`",
        ));
    }
    if !constant_time_eq(token.trim().as_bytes(), expected.as_bytes()) {
        return Err(unauthorized("invalid token"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn accepts_only_the_right_bearer_token() {
        assert!(require_bearer(&with("Bearer s3cret"), Some("s3cret"), "x").is_ok());
        assert!(require_bearer(&with("bearer s3cret"), Some("s3cret"), "x").is_ok());
        for bad in [
            "Bearer s3cre",
            "Bearer s3cret2",
            "Basic s3cret",
            "s3cret",
            "Bearer ",
        ] {
            let e = require_bearer(&with(bad), Some("s3cret"), "x").unwrap_err();
            assert_eq!(e.status, StatusCode::UNAUTHORIZED, "{bad}");
        }
        let e = require_bearer(&HeaderMap::new(), Some("s3cret"), "x").unwrap_err();
        assert_eq!(e.status, StatusCode::UNAUTHORIZED);
        let e = require_bearer(&with("Bearer s3cret"), None, "feedback").unwrap_err();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
    }
}
