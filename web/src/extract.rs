//! Drop-in replacements for axum's `Json`, `Path` and `Query` whose rejections are problems.

use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::problem::{FieldError, Problem};

/// A JSON body. Rejections: 415 without a JSON content type, 413 over the body limit,
/// 400 `malformed_json` for broken syntax, 422 `validation_failed` naming the field for a
/// wrong type, a missing or unknown field, or a value a domain type refuses.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported media type",
            )
            .detail("send the body as JSON with `Content-Type: application/json`"));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_rejection)?;
        parse_json(&bytes).map(Json)
    }
}

/// Parses a JSON document into `T` with the same problems as the [`Json`] extractor. A NUL
/// character anywhere (`\u0000` in a string) is refused with 422 `invalid_text`: no field
/// accepts it, and PostgreSQL refuses it in text.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    if holds_escaped_nul(bytes) {
        return Err(Problem::unprocessable(
            "invalid_text",
            "text must not contain NUL characters (\\u0000)",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = match serde_path_to_error::deserialize(&mut de) {
        Ok(value) => value,
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            return Err(json_problem(path, &inner));
        }
    };
    de.end().map_err(|e| json_problem(String::new(), &e))?;
    Ok(value)
}

/// Whether a JSON document holds a `\u0000` escape (one whose backslash is not itself
/// escaped).
fn holds_escaped_nul(bytes: &[u8]) -> bool {
    let mut backslashes = 0usize;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\\' {
            backslashes += 1;
            continue;
        }
        if b == b'u' && backslashes % 2 == 1 && bytes.get(i + 1..i + 5) == Some(b"0000") {
            return true;
        }
        backslashes = 0;
    }
    false
}

fn json_problem(path: String, e: &serde_json::Error) -> Problem {
    use serde_json::error::Category;
    let message = strip_position(&e.to_string());
    match e.classify() {
        Category::Data => {
            let field = if path.is_empty() || path == "." {
                "body".to_owned()
            } else {
                path
            };
            let code = if message.starts_with("missing field") {
                "required"
            } else if message.starts_with("unknown field") {
                "unknown_field"
            } else if message.starts_with("invalid type") {
                "invalid_type"
            } else {
                "invalid_value"
            };
            Problem::validation([FieldError::new(field, code, message)])
        }
        Category::Syntax | Category::Eof | Category::Io => Problem::bad_request(
            "malformed_json",
            format!("the body is not valid JSON: {message}"),
        ),
    }
}

/// serde_json appends " at line L column C"; the field path says more, so drop it.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

fn body_rejection(rejection: BytesRejection) -> Problem {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "Payload too large",
        )
        .detail("the body exceeds the size limit");
    }
    Problem::bad_request("unreadable_body", rejection.body_text())
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Path parameters; a value that does not parse is a 400 `invalid_path_parameter`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) if rejection.status().is_server_error() => {
                Err(Problem::internal(rejection.body_text()))
            }
            Err(rejection) => Err(Problem::bad_request(
                "invalid_path_parameter",
                rejection.body_text(),
            )),
        }
    }
}

/// Query parameters; a missing, unknown or malformed one is a 400 `invalid_query`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse_query(parts.uri.query().unwrap_or_default()).map(Query)
    }
}

/// Parses a query string as [`Query`] does (for a handler that takes some parameters out
/// of the query string first); a missing, unknown or malformed one is a 400 `invalid_query`.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, Problem> {
    let de = serde_urlencoded_deserializer(query);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let message = e.into_inner().to_string();
        Problem::bad_request("invalid_query", &message).field_errors([FieldError::new(
            if field.is_empty() || field == "." {
                "query".to_owned()
            } else {
                field
            },
            "invalid_query",
            message,
        )])
    })
}

fn serde_urlencoded_deserializer(query: &str) -> serde_urlencoded::Deserializer<'_> {
    serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nul_anywhere_in_a_json_string_is_refused_but_an_escaped_backslash_is_text() {
        let nul = parse_json::<serde_json::Value>(br#"{"email": "a\u0000@b.c"}"#).unwrap_err();
        assert_eq!((nul.status().as_u16(), nul.code()), (422, "invalid_text"));
        // `\\u0000` is a backslash followed by the text `u0000`.
        assert!(parse_json::<serde_json::Value>(br#"{"note": "\\u0000"}"#).is_ok());
        assert!(parse_json::<serde_json::Value>(br#"{"note": "\\\u0000"}"#).is_err());
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        price: Price,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Price {
        amount: i64,
    }

    #[test]
    fn a_wrong_type_names_the_nested_field() {
        let p = parse_json::<Body>(br#"{"name":"x","price":{"amount":"ten"}}"#).unwrap_err();
        assert_eq!(p.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(p.errors()[0].field, "price.amount");
        assert_eq!(p.errors()[0].code, "invalid_type");
    }

    #[test]
    fn unknown_and_missing_fields_are_named() {
        let p = parse_json::<Body>(br#"{"name":"x","price":{"amount":1},"extra":1}"#).unwrap_err();
        assert_eq!(p.errors()[0].code, "unknown_field");
        let p = parse_json::<Body>(br#"{"price":{"amount":1}}"#).unwrap_err();
        assert_eq!(p.errors()[0].code, "required");
    }

    #[test]
    fn broken_syntax_and_trailing_garbage_are_malformed() {
        for body in [
            &br#"{"name":"#[..],
            br#"{"name":"x","price":{"amount":1}} x"#,
        ] {
            let p = parse_json::<Body>(body).unwrap_err();
            assert_eq!(p.status(), StatusCode::BAD_REQUEST);
            assert_eq!(p.code(), "malformed_json");
        }
    }
}
