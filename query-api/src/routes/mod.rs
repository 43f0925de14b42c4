//! The `/v1` routes.

pub(crate) mod admin;
pub(crate) mod carts;
pub(crate) mod catalog;
pub(crate) mod customers;
pub(crate) mod events;
pub(crate) mod orders;
pub(crate) mod pricing;
pub(crate) mod recommendations;
pub(crate) mod search;

use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use mercato_web::Problem;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/products", get(catalog::list_products))
        .route("/v1/products/{sku}", get(catalog::get_product))
        .route(
            "/v1/products/{sku}/recommendations",
            get(recommendations::recommendations),
        )
        .route("/v1/stock/{sku}", get(catalog::get_stock))
        .route("/v1/search", get(search::search))
        .route("/v1/carts/{id}", get(carts::get_cart))
        .route(
            "/v1/carts/{id}/shipping-options",
            get(carts::shipping_options),
        )
        .route("/v1/orders", get(orders::list_orders))
        .route("/v1/orders/{id}", get(orders::get_order))
        .route("/v1/customers/me", get(customers::me))
        .route("/v1/admin/sales", get(admin::sales))
        .route("/v1/admin/returns", get(orders::list_returns))
        .route("/v1/admin/projections", get(admin::projections))
        .route("/v1/admin/events", get(events::events))
        .route("/v1/promotions", get(pricing::list_promotions))
        .route("/v1/promotions/{id}", get(pricing::get_promotion))
        .route("/v1/tax/rates", get(pricing::tax_rates))
}

/// An amount of money in minor units.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct MoneyDto {
    /// Minor units (cents).
    pub amount: i64,
    /// ISO 4217 code.
    pub currency: String,
}

impl MoneyDto {
    pub(crate) fn new(amount: i64, currency: &str) -> Self {
        Self {
            amount,
            currency: currency.to_owned(),
        }
    }
}

/// The request headers of every read of a read model: read-your-writes and revalidation.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // documentation only: the handlers read the headers themselves
pub(crate) struct ReadHeaders {
    /// A consistency token (a write's `Mercato-Position`): the answer waits until the read
    /// model has reached it, up to a limit, then 503 `stale-read`.
    #[param(
        rename = "Mercato-Min-Position",
        pattern = "^[0-9]{1,19}\\.[0-9]{1,18}$"
    )]
    min_position: Option<String>,
    /// The `ETag` of an earlier answer: 304 when it is still current.
    #[param(rename = "If-None-Match")]
    if_none_match: Option<String>,
}

/// `limit` within 1-100 (default 20).
pub(crate) fn page_limit(limit: Option<i64>) -> Result<i64, Problem> {
    match limit {
        None => Ok(20),
        Some(l) if (1..=100).contains(&l) => Ok(l),
        Some(_) => Err(Problem::bad_request(
            "invalid_limit",
            "limit must be between 1 and 100",
        )),
    }
}

/// A `min_price`/`max_price` filter pair: neither negative, the lower not above the upper.
pub(crate) fn price_range(
    min: Option<i64>,
    max: Option<i64>,
) -> Result<(Option<u64>, Option<u64>), Problem> {
    let bound = |value: Option<i64>, name: &str| {
        value
            .map(u64::try_from)
            .transpose()
            .map_err(|_| Problem::bad_request("invalid_price", format!("{name} is negative")))
    };
    let (min, max) = (bound(min, "min_price")?, bound(max, "max_price")?);
    if let (Some(min), Some(max)) = (min, max) {
        if min > max {
            return Err(Problem::bad_request(
                "invalid_price_range",
                "min_price is above max_price",
            ));
        }
    }
    Ok((min, max))
}

/// An opaque cursor for `value`.
pub(crate) fn encode_cursor(value: &str) -> String {
    URL_SAFE_NO_PAD.encode(value.as_bytes())
}

/// The value inside a cursor (text without control characters: a crafted one must never
/// reach a query).
pub(crate) fn decode_cursor(cursor: &str) -> Result<String, Problem> {
    URL_SAFE_NO_PAD
        .decode(cursor.as_bytes())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|text| !text.chars().any(char::is_control))
        .ok_or_else(|| {
            Problem::bad_request("invalid_cursor", "cursor is not one this API returned")
        })
}

pub(crate) fn db(e: sqlx::Error) -> Problem {
    Problem::internal(e)
}
