//! The `/v1` handlers, one module per resource.

pub(crate) mod auth;
pub(crate) mod carts;
pub(crate) mod customers;
pub(crate) mod orders;
pub(crate) mod policies;
pub(crate) mod products;
pub(crate) mod promotions;
pub(crate) mod returns;
pub(crate) mod stock;

use axum::extract::FromRequestParts;
use axum::http::header::IF_MATCH;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use mercato_aggregates::money::{Currency, Money};
use mercato_web::{Caller, Problem, MERCATO_POSITION};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::Fields;
use crate::exec::{WriteContext, Written};
use crate::idempotency::RequestContext;

/// What every successful write answers.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WriteResult {
    /// The aggregate written to.
    pub aggregate_id: String,
    /// Its version after the write.
    pub version: u64,
    /// Consistency token: position of the write's last event (of the aggregate's latest
    /// event when the write changed nothing). Also in the `Mercato-Position` header.
    pub position: Option<String>,
}

impl From<&Written> for WriteResult {
    fn from(w: &Written) -> Self {
        Self {
            aggregate_id: w.aggregate_id.clone(),
            version: w.version,
            position: w.position.map(|p| p.to_string()),
        }
    }
}

/// Money in minor units.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MoneyDto {
    /// Minor units (cents).
    #[schema(minimum = 0)]
    pub amount: i64,
    /// ISO 4217 code, e.g. `EUR`.
    #[schema(value_type = mercato_web::schema::Currency)]
    pub currency: String,
}

impl MoneyDto {
    /// The amount as money, at most `max` minor units (`MERCATO_MAX_AMOUNT`): no accepted
    /// price or refund can overflow a total a read model sums.
    pub fn check(&self, field: &str, max: i64, f: &mut Fields) -> Option<Money> {
        let currency = f.check(&format!("{field}.currency"), Currency::new(&self.currency))?;
        if self.amount > max {
            f.push(
                &format!("{field}.amount"),
                "amount_too_large",
                format!("amounts are limited to {max} minor units"),
            );
            return None;
        }
        match Money::new(self.amount, currency) {
            Ok(m) => Some(m),
            Err(e) => {
                f.push(&format!("{field}.amount"), e.code(), e.to_string());
                None
            }
        }
    }
}

/// A JSON answer with the write's position in the `Mercato-Position` header.
pub(crate) fn written(status: StatusCode, body: impl Serialize, w: &Written) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    if let Some(p) = w
        .position
        .and_then(|p| HeaderValue::from_str(&p.to_string()).ok())
    {
        response.headers_mut().insert(MERCATO_POSITION, p);
    }
    response
}

/// The `actor` recorded in event metadata.
pub(crate) fn actor(caller: Option<&Caller>) -> String {
    match caller {
        Some(c) if c.is_admin() => format!("admin:{}", c.subject),
        Some(c) => format!("customer:{}", c.subject),
        None => "anonymous".to_owned(),
    }
}

/// The write context of this request.
pub(crate) fn context(req: &RequestContext, caller: Option<&Caller>) -> WriteContext {
    WriteContext {
        write_id: req.write_id,
        check_prior: req.keyed,
        actor: actor(caller),
        causation_id: None,
        correlation_id: None,
    }
}

/// The write context of a request on an order made for `party` (a guest has no caller; the
/// events name the order they hold the token of).
pub(crate) fn order_context(
    req: &RequestContext,
    access: &mercato_web::OrderAccess,
    party: mercato_web::OrderParty,
    order_id: uuid::Uuid,
) -> WriteContext {
    let mut ctx = context(req, access.caller.as_ref());
    if party == mercato_web::OrderParty::Guest {
        ctx.actor = format!("guest:{order_id}");
    }
    ctx
}

/// The optimistic-concurrency header of a write on an existing aggregate, as documented.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // documentation only: [`IfMatch`] reads the header
pub(crate) struct Precondition {
    /// `"<version>"` (the aggregate version of an earlier answer): the write is refused
    /// with 409 `version_conflict` unless the aggregate is still at that version.
    #[param(rename = "If-Match", pattern = "^(W/)?\"?[0-9]{1,19}\"?$")]
    if_match: Option<String>,
}

/// `If-Match: "<version>"`: the version the write expects.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IfMatch(pub Option<u64>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(IF_MATCH) else {
            return Ok(IfMatch(None));
        };
        value
            .to_str()
            .ok()
            .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
            .and_then(|v| v.parse::<u64>().ok())
            .map(|v| IfMatch(Some(v)))
            .ok_or_else(|| {
                Problem::bad_request(
                    "invalid_if_match",
                    "If-Match must be a quoted aggregate version, e.g. \"3\"",
                )
            })
    }
}

/// A body that may be left out: its default when empty, else JSON (415 without a JSON
/// content type).
pub(crate) fn optional_json<T: Default + serde::de::DeserializeOwned>(
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Result<T, Problem> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Unsupported media type",
        )
        .detail("send the body as JSON with `Content-Type: application/json`"));
    }
    mercato_web::extract::parse_json(body)
}

/// A UUID path parameter, refused with a 400 problem naming it.
pub(crate) fn parse_uuid(name: &str, raw: &str) -> Result<uuid::Uuid, Problem> {
    uuid::Uuid::parse_str(raw).map_err(|_| {
        Problem::bad_request("invalid_path_parameter", format!("{name} must be a UUID"))
            .field_errors([mercato_web::FieldError::new(
                name,
                "invalid_id",
                "not a UUID",
            )])
    })
}

/// A SKU path parameter.
pub(crate) fn parse_sku(raw: &str) -> Result<mercato_aggregates::values::Sku, Problem> {
    path_value("sku", mercato_aggregates::values::Sku::new(raw))
}

impl From<Money> for MoneyDto {
    fn from(m: Money) -> Self {
        MoneyDto {
            amount: m.amount(),
            currency: m.currency().to_string(),
        }
    }
}

/// An optional amount checked like [`MoneyDto::check`]: `Some(None)` when absent, `None` when
/// invalid (the error is in `f`).
pub(crate) fn optional_money(
    f: &mut Fields,
    state: &crate::state::AppState,
    field: &str,
    dto: Option<MoneyDto>,
) -> Option<Option<Money>> {
    match dto {
        None => Some(None),
        Some(m) => m.check(field, state.config().max_amount, f).map(Some),
    }
}

/// A JSON field read as `T` (a tagged enum such as a discount or a rate), or its error in
/// `f` under `code`.
pub(crate) fn typed<T: serde::de::DeserializeOwned>(
    f: &mut Fields,
    field: &str,
    code: &str,
    value: serde_json::Value,
) -> Option<T> {
    match serde_json::from_value(value) {
        Ok(v) => Some(v),
        Err(e) => {
            f.push(field, code, e.to_string());
            None
        }
    }
}

/// A path parameter's value, or a 400 problem naming it.
pub(crate) fn path_value<T>(
    name: &str,
    value: Result<T, mercato_aggregates::ValueError>,
) -> Result<T, Problem> {
    value.map_err(|e| {
        Problem::bad_request("invalid_path_parameter", e.to_string())
            .field_errors([mercato_web::FieldError::new(name, e.code(), e.to_string())])
    })
}

/// An admin's command on aggregate `id` of `store`, answered as every write is.
pub(crate) async fn admin_write<A>(
    store: &mercato_event_store::AggregateStore<A>,
    id: &str,
    command: A::Command,
    req: &RequestContext,
    caller: &Caller,
    expected: Option<u64>,
) -> Result<Response, Problem>
where
    A: cqrs_es::Aggregate + Send + Sync,
    A::Command: Clone,
    A::Error: mercato_aggregates::ErrorCode,
{
    let w = crate::exec::execute(store, id, command, &context(req, Some(caller)), expected)
        .await
        .map_err(crate::error::store_problem)?;
    Ok(written(StatusCode::OK, WriteResult::from(&w), &w))
}
