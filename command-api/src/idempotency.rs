//! `Idempotency-Key` (Stripe semantics), the PAN guard and the per-request write id, as one
//! middleware in front of every write route. See `docs/adr/0007-command-api-idempotency.md`.

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use mercato_web::{
    Problem, IDEMPOTENCY_KEY, MERCATO_CART_TOKEN, MERCATO_ORDER_TOKEN, MERCATO_POSITION,
};
use uuid::Uuid;

use crate::error::db_problem;
use crate::state::AppState;

/// Namespace of request ids derived from idempotency keys.
const KEY_NAMESPACE: Uuid = Uuid::from_u128(0x6d65_7263_6174_6f2d_6964_656d_706f_7400);

/// What a handler learns from the middleware.
#[derive(Debug, Clone)]
pub(crate) struct RequestContext {
    /// The id every event of this request carries (`correlation_id`).
    pub write_id: Uuid,
    /// Whether an earlier attempt with the same key may have written already.
    pub keyed: bool,
}

/// Response header set on a replayed response.
const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

pub(crate) async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match run(state, req, next).await {
        Ok(r) => r,
        Err(p) => p.into_response(),
    }
}

async fn run(state: AppState, req: Request, next: Next) -> Result<Response, Problem> {
    let (mut parts, body) = req.into_parts();
    let bytes = to_bytes(body, state.config().body_limit)
        .await
        .map_err(|_| {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Payload too large",
            )
            .detail("the body exceeds the size limit")
        })?;
    // No card number may enter the system, wherever it hides (body, path or query).
    let text = String::from_utf8_lossy(&bytes);
    if mercato_aggregates::pci::contains_pan(&text)
        || path_has_pan(parts.uri.path(), parts.uri.query())
    {
        return Err(Problem::unprocessable(
            "pan_not_allowed",
            "the request contains what looks like a card number; send a payment token instead",
        ));
    }
    let key = match parts.headers.get(IDEMPOTENCY_KEY) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .filter(|k| (1..=255).contains(&k.len()))
                .ok_or_else(|| {
                    Problem::bad_request(
                        "invalid_idempotency_key",
                        "Idempotency-Key must be 1-255 visible ASCII characters",
                    )
                })?
                .to_owned(),
        ),
    };
    // A sign-in is safe to repeat as it is, and its answer is a secret: never recorded.
    let key = key.filter(|_| parts.uri.path() != "/v1/auth/token");
    let Some(key) = key else {
        parts.extensions.insert(RequestContext {
            write_id: Uuid::new_v4(),
            keyed: false,
        });
        return Ok(next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await);
    };
    if parts.method == Method::GET {
        return Ok(next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await);
    }

    // A keyed digest, not a plain hash: a registration's body holds a password.
    let mut request = Vec::with_capacity(bytes.len() + 64);
    request.extend_from_slice(parts.method.as_str().as_bytes());
    request.push(b'\n');
    request.extend_from_slice(parts.uri.path().as_bytes());
    request.push(b'\n');
    request.extend_from_slice(&bytes);
    let request_hash = state.keys().digest("idempotency request", &request);
    let scope = match caller_scope(&state, &parts.headers)? {
        Some(scope) => scope,
        None => anonymous_scope(parts.uri.path(), &request_hash)?,
    };
    let write_id = Uuid::new_v5(&KEY_NAMESPACE, format!("{scope}\n{key}").as_bytes());
    let pool = &state.stores().pool;
    let lock_secs = state.config().idempotency_lock.as_secs_f64();

    let inserted = sqlx::query(
        "INSERT INTO command.idempotency_keys (scope, key, request_hash, request_id, locked_until) \
         VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5)) ON CONFLICT DO NOTHING",
    )
    .bind(&scope)
    .bind(&key)
    .bind(&request_hash)
    .bind(write_id)
    .bind(lock_secs)
    .execute(pool)
    .await
    .map_err(db_problem)?
    .rows_affected()
        == 1;
    if !inserted {
        type Row = (
            String,
            Option<i32>,
            Option<serde_json::Value>,
            Option<Vec<u8>>,
            bool,
        );
        let row: Option<Row> = sqlx::query_as(
            "SELECT request_hash, response_status, response_headers, response_body, \
                    coalesce(locked_until < now(), true) \
             FROM command.idempotency_keys WHERE scope = $1 AND key = $2",
        )
        .bind(&scope)
        .bind(&key)
        .fetch_optional(pool)
        .await
        .map_err(db_problem)?;
        let Some((hash, status, headers, body, expired)) = row else {
            return Err(Problem::conflict(
                "idempotency_key_in_use",
                "a request with this Idempotency-Key is being processed; retry shortly",
            ));
        };
        if hash != request_hash {
            return Err(Problem::unprocessable(
                "idempotency_key_reused",
                "this Idempotency-Key was used with a different request",
            ));
        }
        if let Some(status) = status {
            return Ok(replay(&state, status, headers, body.unwrap_or_default()));
        }
        if !expired {
            return Err(Problem::conflict(
                "idempotency_key_in_use",
                "a request with this Idempotency-Key is being processed; retry shortly",
            ));
        }
        // The earlier attempt died without an answer: take the key over. Its writes carry
        // the same write id, so the handler finds them instead of appending again.
        let taken = sqlx::query(
            "UPDATE command.idempotency_keys SET locked_until = now() + make_interval(secs => $3) \
             WHERE scope = $1 AND key = $2 AND response_status IS NULL \
               AND (locked_until IS NULL OR locked_until < now())",
        )
        .bind(&scope)
        .bind(&key)
        .bind(lock_secs)
        .execute(pool)
        .await
        .map_err(db_problem)?
        .rows_affected()
            == 1;
        if !taken {
            return Err(Problem::conflict(
                "idempotency_key_in_use",
                "a request with this Idempotency-Key is being processed; retry shortly",
            ));
        }
    }

    parts.extensions.insert(RequestContext {
        write_id,
        keyed: true,
    });
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let status = response.status();
    if status.is_server_error()
        || status == StatusCode::UNAUTHORIZED
        || status == StatusCode::FORBIDDEN
    {
        // Nothing final to remember: release the key so a retry runs again.
        let _ = sqlx::query("DELETE FROM command.idempotency_keys WHERE scope = $1 AND key = $2")
            .bind(&scope)
            .bind(&key)
            .execute(pool)
            .await;
        return Ok(response);
    }
    let (resp_parts, body) = response.into_parts();
    let body = to_bytes(body, usize::MAX)
        .await
        .map_err(|e| Problem::internal(format!("buffering a response failed: {e}")))?;
    let mut kept = serde_json::Map::new();
    for name in [
        CONTENT_TYPE,
        LOCATION,
        HeaderName::from_static(MERCATO_POSITION),
    ] {
        if let Some(v) = resp_parts.headers.get(&name).and_then(|v| v.to_str().ok()) {
            kept.insert(name.as_str().to_owned(), v.into());
        }
    }
    let (stored, withheld) = withhold_secrets(&body);
    if !withheld.is_empty() {
        kept.insert(WITHHELD.to_owned(), withheld.into());
    }
    sqlx::query(
        "UPDATE command.idempotency_keys SET response_status = $3, response_headers = $4, \
         response_body = $5, locked_until = NULL WHERE scope = $1 AND key = $2",
    )
    .bind(&scope)
    .bind(&key)
    .bind(i32::from(status.as_u16()))
    .bind(serde_json::Value::Object(kept))
    .bind(stored)
    .execute(pool)
    .await
    .map_err(db_problem)?;
    Ok(Response::from_parts(resp_parts, Body::from(body)))
}

/// Path segments (and the query) are checked whole: the digit groups of a UUID can pass the
/// Luhn check by chance.
fn path_has_pan(path: &str, query: Option<&str>) -> bool {
    path.split('/')
        .chain(query)
        .any(|segment| mercato_aggregates::pci::looks_like_pan(&segment.replace("%20", " ")))
}

/// Secret fields of a response: never stored with it.
const SECRETS: &[&str] = &["access_token", "cart_token", "order_token"];
/// The stored "header" listing the secret fields taken out of a stored response.
const WITHHELD: &str = "mercato-withheld";

/// The response body to store, without its secret fields, and the names of those taken out.
fn withhold_secrets(body: &[u8]) -> (Vec<u8>, Vec<String>) {
    let Ok(serde_json::Value::Object(mut map)) = serde_json::from_slice(body) else {
        return (body.to_vec(), Vec::new());
    };
    let withheld: Vec<String> = SECRETS
        .iter()
        .filter(|name| map.remove(**name).is_some())
        .map(|name| (*name).to_owned())
        .collect();
    if withheld.is_empty() {
        return (body.to_vec(), withheld);
    }
    let stored = serde_json::to_vec(&map).unwrap_or_else(|_| body.to_vec());
    (stored, withheld)
}

/// A guest's order token again, for a replayed checkout: it is derived from the order id, so
/// the replay needs nothing stored. Other secrets are not replayed.
fn restore_secrets(state: &AppState, body: Vec<u8>, withheld: &[String]) -> Vec<u8> {
    if !withheld.iter().any(|w| w == "order_token") {
        return body;
    }
    let Ok(serde_json::Value::Object(mut map)) = serde_json::from_slice(&body) else {
        return body;
    };
    let Some(order_id) = map
        .get("order_id")
        .and_then(|v| v.as_str())
        .and_then(|id| Uuid::parse_str(id).ok())
    else {
        return body;
    };
    map.insert(
        "order_token".to_owned(),
        state.keys().order_token(order_id).into(),
    );
    serde_json::to_vec(&map).unwrap_or(body)
}

fn replay(
    state: &AppState,
    status: i32,
    headers: Option<serde_json::Value>,
    body: Vec<u8>,
) -> Response {
    let status = u16::try_from(status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let withheld: Vec<String> = headers
        .as_ref()
        .and_then(|h| h.get(WITHHELD))
        .and_then(|w| serde_json::from_value(w.clone()).ok())
        .unwrap_or_default();
    let body = restore_secrets(state, body, &withheld);
    let mut response = (status, body).into_response();
    if let Some(serde_json::Value::Object(map)) = headers {
        for (name, value) in map.into_iter().filter(|(n, _)| n != WITHHELD) {
            if let (Ok(name), Some(Ok(value))) = (
                HeaderName::try_from(name.as_str()),
                value.as_str().map(HeaderValue::from_str),
            ) {
                response.headers_mut().insert(name, value);
            }
        }
    }
    response
        .headers_mut()
        .insert(REPLAYED, HeaderValue::from_static("true"));
    response
}

/// Keys belong to the verified caller (role and subject), or to the holder of a guest order's
/// token or an anonymous cart's token, so one caller can never replay another's response;
/// `None` for a caller who is none of these; 401 for a bearer token that is not valid (the
/// handler would refuse it too).
fn caller_scope(state: &AppState, headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    if let Some(token) = bearer {
        let claims = state
            .keys()
            .verify(token)
            .map_err(|e| Problem::unauthorized(e.to_string()))?;
        return Ok(Some(
            format!("{:?}:{}", claims.role, claims.sub).to_lowercase(),
        ));
    }
    if let Some(token) = headers
        .get(MERCATO_ORDER_TOKEN)
        .and_then(|v| v.to_str().ok())
    {
        return Ok(Some(format!(
            "guest-order:{}",
            crate::cart_tokens::hash(token)
        )));
    }
    Ok(headers
        .get(MERCATO_CART_TOKEN)
        .and_then(|v| v.to_str().ok())
        .map(|token| format!("anonymous:{}", crate::cart_tokens::hash(token))))
}

/// Anonymous writes whose body carries the caller's own secret (a password) are scoped by
/// the request itself: only someone who sends the same password shares the key. Any other
/// anonymous write (opening an anonymous cart) has no caller to scope a key to, and the
/// replay would hand one stranger's cart token to another, so the key is refused.
fn anonymous_scope(path: &str, request_hash: &str) -> Result<String, Problem> {
    if path == "/v1/customers" {
        return Ok(format!("anonymous-request:{request_hash}"));
    }
    Err(Problem::bad_request(
        "idempotency_key_needs_caller",
        "an anonymous request without a cart token cannot use an Idempotency-Key; \
         log in, or send it without the key",
    ))
}

/// Deletes answered keys older than `ttl` (and abandoned ones).
pub(crate) async fn expire(
    pool: &sqlx::PgPool,
    ttl: std::time::Duration,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "DELETE FROM command.idempotency_keys WHERE created_at < now() - make_interval(secs => $1)",
    )
    .bind(ttl.as_secs_f64())
    .execute(pool)
    .await?
    .rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_paths_are_not_card_numbers() {
        let hits: Vec<String> = (0..20_000)
            .map(|_| format!("/v1/carts/{}/items", Uuid::new_v4()))
            .filter(|p| path_has_pan(p, None))
            .collect();
        assert!(hits.is_empty(), "{hits:?}");
        assert!(path_has_pan("/v1/products/4111111111111111/publish", None));
        assert!(path_has_pan("/v1/products/4111%201111%201111%201111", None));
    }
}
