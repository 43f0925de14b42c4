//! Responses with `ETag` (304 on a matching `If-None-Match`) and `Cache-Control`.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use mercato_web::Problem;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Catalog data may be cached briefly by browsers and CDNs.
pub(crate) const CATALOG_CACHE: &str = "public, max-age=30";
/// The caller's own data: no shared cache stores it, and the browser revalidates.
pub(crate) const PRIVATE_CACHE: &str = "private, no-cache";
/// Personal data (names, emails, addresses): stored by no cache at all, so nothing is left
/// behind on a shared computer or served after an erasure.
pub(crate) const PERSONAL_DATA: &str = "private, no-store";

/// `body` as JSON with a strong ETag of its bytes, or 304 when the client has it.
pub(crate) fn cached<T: Serialize>(
    request: &HeaderMap,
    body: &T,
    cache_control: &'static str,
) -> Result<Response, Problem> {
    let bytes = serde_json::to_vec(body).map_err(Problem::internal)?;
    let digest = Sha256::digest(&bytes);
    let etag = format!("\"{}\"", hex::encode(&digest[..16]));
    let matches = request
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == "*" || t == etag)
        });
    let etag_value = HeaderValue::from_str(&etag).map_err(Problem::internal)?;
    let cache = HeaderValue::from_static(cache_control);
    if matches {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [(ETAG, etag_value), (CACHE_CONTROL, cache)],
        )
            .into_response());
    }
    Ok((
        StatusCode::OK,
        [
            (CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (ETAG, etag_value),
            (CACHE_CONTROL, cache),
        ],
        bytes,
    )
        .into_response())
}
