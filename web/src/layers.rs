//! The middleware stack every API router gets.

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, VARY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::problem::Problem;

/// Default limit for request bodies: 64 KiB is far above any legitimate command.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What the middleware stack is configured with.
#[derive(Debug, Clone, Default)]
pub struct HttpSettings {
    /// Largest request body in bytes.
    pub body_limit: usize,
    /// Browser origins allowed to call the API cross-origin (`https://shop.example`); none
    /// (no CORS headers at all) by default.
    pub cors_origins: Vec<HeaderValue>,
}

impl HttpSettings {
    /// The defaults: [`DEFAULT_BODY_LIMIT`], no CORS.
    pub fn new(body_limit: usize) -> Self {
        Self {
            body_limit,
            cors_origins: Vec::new(),
        }
    }
}

/// Adds to `router`: problem+json 404 and 405, a body limit, panics turned into a 500
/// problem, a 400 for text no handler could use (NUL and other control characters, invalid
/// UTF-8 in the path or query), security headers on every response, CORS for the configured
/// origins, per-route metrics (`http_requests_total`, `http_request_duration_seconds`,
/// labelled by route template), request ids (`x-request-id`) and request tracing.
pub fn finish(router: Router, settings: &HttpSettings) -> Router {
    let router = router
        .fallback(|| async {
            Problem::not_found("route_not_found", "no such route").into_response()
        })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
            )
            .detail("this route does not accept that method")
            .into_response()
        })
        .layer(DefaultBodyLimit::max(settings.body_limit))
        .layer(axum::middleware::from_fn(reject_invalid_text))
        .layer(axum::middleware::from_fn(mercato_telemetry::record_http))
        .layer(CatchPanicLayer::custom(|_: Box<dyn std::any::Any + Send>| {
            Problem::internal("a handler panicked").into_response()
        }))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let id = req
                .headers()
                .get(REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let span = tracing::info_span!("http", method = %req.method(), uri = %req.uri().path(), request_id = %id);
            // A client's W3C trace context makes this request part of its trace.
            let traceparent = req.headers().get("traceparent").and_then(|v| v.to_str().ok());
            mercato_telemetry::continue_trace(&span, traceparent);
            span
        }))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(axum::middleware::from_fn(security_headers));
    if settings.cors_origins.is_empty() {
        return router;
    }
    router.layer(cors(&settings.cors_origins))
}

/// CORS for `origins` only: the methods and headers the APIs use, and the response headers a
/// browser client needs to read.
fn cors(origins: &[HeaderValue]) -> CorsLayer {
    let names = |names: &[&'static str]| -> Vec<HeaderName> {
        names.iter().map(|n| HeaderName::from_static(n)).collect()
    };
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins.iter().cloned()))
        .allow_methods([
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers(names(&[
            "authorization",
            "content-type",
            "idempotency-key",
            "if-match",
            "if-none-match",
            crate::MERCATO_CART_TOKEN,
            crate::MERCATO_ORDER_TOKEN,
            crate::MERCATO_MIN_POSITION,
        ]))
        .expose_headers(names(&[
            crate::MERCATO_POSITION,
            "etag",
            "retry-after",
            "x-request-id",
        ]))
        .max_age(Duration::from_secs(600))
}

/// The Swagger UI page runs its own scripts and styles from this origin (one inline script
/// starts it); everything else is JSON that needs nothing.
const DOCS_CSP: &str = "default-src 'self'; script-src 'self' 'unsafe-inline'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
    frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
const API_CSP: &str =
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// Headers every response carries: no content sniffing, no framing, a CSP, no referrer, no
/// storing unless the handler chose a cache policy (responses with tokens and personal data
/// never are stored), and `Vary: Authorization` since what a caller sees may depend on who
/// they are.
async fn security_headers(req: Request, next: Next) -> Response {
    let docs = req.uri().path().starts_with("/docs");
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(if docs { DOCS_CSP } else { API_CSP }),
    );
    if !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    headers.append(VARY, HeaderValue::from_static("authorization"));
    response
}

/// 400 `invalid_text` for a path or query that decodes to invalid UTF-8 or holds control
/// characters (NUL above all, which PostgreSQL refuses in text): no handler could use it,
/// and it must never reach a query.
async fn reject_invalid_text(req: Request, next: Next) -> Response {
    let uri = req.uri();
    if !usable_text(uri.path().as_bytes()) || !uri.query().is_none_or(|q| usable_text(q.as_bytes()))
    {
        return Problem::bad_request(
            "invalid_text",
            "the path or query holds invalid UTF-8 or control characters",
        )
        .into_response();
    }
    next.run(req).await
}

/// Whether percent-decoded `raw` is UTF-8 without control characters.
fn usable_text(raw: &[u8]) -> bool {
    let mut decoded = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            raw[i],
            raw.get(i + 1).copied().and_then(hex),
            raw.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                decoded.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (byte, _, _) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    std::str::from_utf8(&decoded).is_ok_and(|text| !text.chars().any(char::is_control))
}

#[cfg(test)]
mod tests {
    use super::usable_text;

    #[test]
    fn control_characters_and_broken_utf8_are_not_usable_text() {
        assert!(usable_text(b"/v1/products/SKU-1"));
        assert!(usable_text(b"q=caf%C3%A9+cr%C3%A8me&limit=3"));
        assert!(!usable_text(b"/v1/products/SKU-1%00"));
        assert!(!usable_text(b"category=%00"));
        assert!(!usable_text(b"q=%0A"));
        assert!(!usable_text(b"q=%C3"));
        assert!(!usable_text(b"q=%FF%FE"));
    }
}
