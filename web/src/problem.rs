//! RFC 9457 `application/problem+json` answers.

use std::borrow::Cow;
use std::fmt::Display;

use axum::http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One rejected field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// Where the field is: a JSON path (`price.amount`, `lines[2].sku`), or a header or
    /// parameter name.
    pub field: String,
    /// Stable machine-readable reason (`invalid_sku`, `required`, ...).
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

impl FieldError {
    /// A field error.
    pub fn new(
        field: impl Into<String>,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            code: code.into(),
            message: message.into(),
        }
    }
}

/// An RFC 9457 problem: the single error shape of the APIs.
///
/// `type` is `urn:mercato:problem:<code>`; `code` is the same stable string on its own, for
/// clients that switch on it. Build it with the constructors, add detail, field errors or
/// extension members, and return it from a handler.
#[derive(Debug, Clone)]
#[must_use]
pub struct Problem(Box<Inner>);

#[derive(Debug, Clone)]
struct Inner {
    status: StatusCode,
    code: Cow<'static, str>,
    title: Cow<'static, str>,
    detail: Option<String>,
    errors: Vec<FieldError>,
    extensions: serde_json::Map<String, serde_json::Value>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// The body of a problem, as documented in the OpenAPI schemas.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemBody {
    /// `urn:mercato:problem:<code>`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Short summary of the problem type.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// Explanation of this occurrence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Stable machine-readable code.
    pub code: String,
    /// Rejected fields, for validation problems.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl Problem {
    /// A problem with a status, a stable code and a title.
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        title: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self(Box::new(Inner {
            status,
            code: code.into(),
            title: title.into(),
            detail: None,
            errors: Vec::new(),
            extensions: serde_json::Map::new(),
            headers: Vec::new(),
        }))
    }

    /// Adds the explanation of this occurrence.
    pub fn detail(mut self, detail: impl Display) -> Self {
        self.0.detail = Some(detail.to_string());
        self
    }

    /// Adds rejected fields.
    pub fn field_errors(mut self, errors: impl IntoIterator<Item = FieldError>) -> Self {
        self.0.errors.extend(errors);
        self
    }

    /// Adds an extension member (`current_version`, `retry_after`, ...).
    pub fn with(mut self, key: &str, value: impl Serialize) -> Self {
        if let Ok(value) = serde_json::to_value(value) {
            self.0.extensions.insert(key.to_owned(), value);
        }
        self
    }

    /// Adds a response header.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.0.headers.push((name, value));
        self
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// The stable code.
    pub fn code(&self) -> &str {
        &self.0.code
    }

    /// The field errors.
    pub fn errors(&self) -> &[FieldError] {
        &self.0.errors
    }

    /// 400 with a code and explanation.
    pub fn bad_request(code: impl Into<Cow<'static, str>>, detail: impl Display) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, "Bad request").detail(detail)
    }

    /// 422 `validation_failed` naming each bad field.
    pub fn validation(errors: impl IntoIterator<Item = FieldError>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "Request validation failed",
        )
        .detail("one or more fields are invalid")
        .field_errors(errors)
    }

    /// 401 with a `WWW-Authenticate: Bearer` challenge.
    pub fn unauthorized(detail: impl Display) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Authentication required",
        )
        .detail(detail)
        .header(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
    }

    /// 403: authenticated, but not allowed.
    pub fn forbidden(detail: impl Display) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden").detail(detail)
    }

    /// 404 for a resource.
    pub fn not_found(code: impl Into<Cow<'static, str>>, detail: impl Display) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, "Not found").detail(detail)
    }

    /// 409 for a state conflict.
    pub fn conflict(code: impl Into<Cow<'static, str>>, detail: impl Display) -> Self {
        Self::new(StatusCode::CONFLICT, code, "Conflict").detail(detail)
    }

    /// 422 for a request that is well-formed but breaks a rule.
    pub fn unprocessable(code: impl Into<Cow<'static, str>>, detail: impl Display) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
            "Unprocessable request",
        )
        .detail(detail)
    }

    /// 503 with `Retry-After` (seconds).
    pub fn unavailable(
        code: impl Into<Cow<'static, str>>,
        detail: impl Display,
        retry_after_secs: u64,
    ) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, "Service unavailable")
            .detail(detail)
            .header(RETRY_AFTER, HeaderValue::from(retry_after_secs))
    }

    /// 429 with `Retry-After`.
    pub fn too_many_requests(
        code: impl Into<Cow<'static, str>>,
        detail: impl Display,
        retry_after_secs: u64,
    ) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, code, "Too many requests")
            .detail(detail)
            .header(RETRY_AFTER, HeaderValue::from(retry_after_secs))
            .with("retry_after", retry_after_secs)
    }

    /// 500 whose body reveals nothing; the cause is logged here, once.
    pub fn internal(cause: impl Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "Internal server error",
        )
        .detail("the request could not be completed; retry it later")
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        let this = &self.0;
        let mut body = serde_json::Map::new();
        body.insert(
            "type".into(),
            format!("urn:mercato:problem:{}", this.code).into(),
        );
        body.insert("title".into(), this.title.as_ref().into());
        body.insert("status".into(), this.status.as_u16().into());
        if let Some(detail) = &this.detail {
            body.insert("detail".into(), detail.as_str().into());
        }
        body.insert("code".into(), this.code.as_ref().into());
        if !this.errors.is_empty() {
            body.insert(
                "errors".into(),
                serde_json::to_value(&this.errors).unwrap_or_default(),
            );
        }
        for (k, v) in &this.extensions {
            body.entry(k.clone()).or_insert_with(|| v.clone());
        }
        serde_json::Value::Object(body)
    }
}

impl Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.0.status.as_u16(), self.0.code)?;
        if let Some(d) = &self.0.detail {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut response = (self.0.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        for (name, value) in self.0.headers {
            headers.insert(name, value);
        }
        response
    }
}
