//! The storefront is a client of Mercato's public HTTP contracts, like any other: JSON over
//! HTTP to the command API (writes) and the query API (reads), with the same headers a
//! mobile app or a partner's shop would send.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

tokio::task_local! {
    /// The address of the shopper whose request this task serves.
    static SHOPPER: String;
}

/// Remembers the shopper's address for the API calls made on their behalf: they carry it in
/// `X-Forwarded-For`, so an API that trusts this storefront's forwarding counts sign-in and
/// registration attempts per shopper, not per storefront (ADR 0019).
pub(crate) async fn shopper_address(req: Request, next: Next) -> Response {
    let address = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip().to_string())
        .unwrap_or_default();
    SHOPPER.scope(address, next.run(req)).await
}

/// A problem (RFC 9457) the API answered with.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Problem {
    #[serde(default)]
    pub status: u16,
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub detail: Option<String>,
    /// Per-field findings of a validation problem.
    #[serde(default)]
    pub errors: Vec<FieldProblem>,
}

/// What is wrong with one field.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct FieldProblem {
    #[serde(default)]
    pub field: String,
    #[serde(default)]
    pub message: String,
}

impl Problem {
    /// The sentence a shopper reads.
    pub(crate) fn message(&self) -> String {
        match &self.detail {
            Some(detail) if !detail.is_empty() => detail.clone(),
            _ if !self.title.is_empty() => self.title.clone(),
            _ => format!("the shop answered {}", self.status),
        }
    }

    /// The message about `field` (or one of its sub-fields), if any.
    pub(crate) fn field(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|e| {
                e.field == field
                    || e.field
                        .strip_prefix(field)
                        .is_some_and(|rest| rest.starts_with('.'))
            })
            .map(|e| e.message.as_str())
    }
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// The API refused it, and said why.
    #[error("{}", .0.message())]
    Problem(Problem),
    /// The API could not be reached or answered nonsense.
    #[error("the shop is unavailable: {0}")]
    Unavailable(String),
}

impl ApiError {
    /// The problem's HTTP status (503 when the API was unreachable).
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ApiError::Problem(p) => {
                StatusCode::from_u16(p.status).unwrap_or(StatusCode::BAD_GATEWAY)
            }
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The problem's code (`""` when unreachable).
    pub(crate) fn code(&self) -> &str {
        match self {
            ApiError::Problem(p) => &p.code,
            ApiError::Unavailable(_) => "",
        }
    }

    /// The message about `field`, if the API named it.
    pub(crate) fn field(&self, field: &str) -> Option<&str> {
        match self {
            ApiError::Problem(p) => p.field(field),
            ApiError::Unavailable(_) => None,
        }
    }
}

/// The credentials and headers of one call.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Auth<'a> {
    pub bearer: Option<&'a str>,
    pub cart_token: Option<&'a str>,
    pub order_token: Option<&'a str>,
    /// Wait for the read models to reach this position (`Mercato-Min-Position`).
    pub min_position: Option<&'a str>,
    /// `Idempotency-Key`: a form submitted twice acts once.
    pub idempotency_key: Option<&'a str>,
}

impl<'a> Auth<'a> {
    pub(crate) fn bearer(token: &'a str) -> Self {
        Self {
            bearer: Some(token),
            ..Self::default()
        }
    }
}

/// A successful write: the body and the consistency token of its events.
#[derive(Debug)]
pub(crate) struct Written<T> {
    pub body: T,
    pub position: Option<String>,
}

/// The two APIs.
#[derive(Clone)]
pub(crate) struct Api {
    http: reqwest::Client,
    command: String,
    query: String,
}

impl Api {
    pub(crate) fn new(command: &str, query: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Self {
            http,
            command: command.trim_end_matches('/').to_owned(),
            query: query.trim_end_matches('/').to_owned(),
        }
    }

    /// A read from the query API. When the read models have not reached the session's last
    /// write in time (503 `stale-read`), it asks once more, then reads what there is: a page
    /// a moment behind beats an error page.
    pub(crate) async fn read<T: DeserializeOwned>(
        &self,
        path: &str,
        auth: Auth<'_>,
    ) -> Result<T, ApiError> {
        let url = format!("{}{path}", self.query);
        for _ in 0..2 {
            match send(self.http.get(&url), auth).await {
                Err(e) if e.code() == "stale-read" => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                other => return other.map(|w| w.body),
            }
        }
        let behind = Auth {
            min_position: None,
            ..auth
        };
        Ok(send(self.http.get(&url), behind).await?.body)
    }

    /// A write to the command API.
    pub(crate) async fn write<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
        auth: Auth<'_>,
    ) -> Result<Written<T>, ApiError> {
        let method = reqwest::Method::from_bytes(method.as_str().as_bytes())
            .unwrap_or(reqwest::Method::POST);
        let mut request = self.http.request(method, format!("{}{path}", self.command));
        if let Some(body) = body {
            request = request.json(body);
        }
        send(request, auth).await
    }

    /// A write whose answer the page does not need.
    pub(crate) async fn post(
        &self,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
        auth: Auth<'_>,
    ) -> Result<Written<Value>, ApiError> {
        self.write(Method::POST, path, body, auth).await
    }
}

async fn send<T: DeserializeOwned>(
    mut request: reqwest::RequestBuilder,
    auth: Auth<'_>,
) -> Result<Written<T>, ApiError> {
    if let Some(token) = auth.bearer {
        request = request.bearer_auth(token);
    }
    if let Some(shopper) = SHOPPER
        .try_with(Clone::clone)
        .ok()
        .filter(|a| !a.is_empty())
    {
        request = request.header("X-Forwarded-For", shopper);
    }
    for (name, value) in [
        ("Mercato-Cart-Token", auth.cart_token),
        ("Mercato-Order-Token", auth.order_token),
        ("Mercato-Min-Position", auth.min_position),
        ("Idempotency-Key", auth.idempotency_key),
    ] {
        if let Some(value) = value {
            request = request.header(name, value);
        }
    }
    let response = request
        .send()
        .await
        .map_err(|e| ApiError::Unavailable(e.without_url().to_string()))?;
    let status = response.status();
    let position = response
        .headers()
        .get("Mercato-Position")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = response
        .bytes()
        .await
        .map_err(|e| ApiError::Unavailable(e.without_url().to_string()))?;
    if !status.is_success() {
        let mut problem: Problem = serde_json::from_slice(&bytes).unwrap_or_default();
        problem.status = status.as_u16();
        return Err(ApiError::Problem(problem));
    }
    // An empty answer (204) reads as JSON null.
    let body = if bytes.is_empty() {
        b"null".as_slice()
    } else {
        &bytes
    };
    let body = serde_json::from_slice(body)
        .map_err(|e| ApiError::Unavailable(format!("unexpected answer: {e}")))?;
    Ok(Written { body, position })
}
