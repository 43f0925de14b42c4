//! The shop's tax and shipping policies (admin only; ADR 0021).

use axum::extract::State;
use axum::response::Response;
use axum::Extension;
use mercato_aggregates::pricing::Rate;
use mercato_aggregates::shipping::{
    ShippingCommand, ShippingMethod, ShippingMethodId, ShippingPolicy, ShippingRate,
};
use mercato_aggregates::tax::{TaxCommand, TaxPolicy};
use mercato_aggregates::values::{CountryCode, PostalPrefix, ProductName};
use mercato_web::{Caller, Json, Path, Problem};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{admin_write, optional_money, path_value, typed, MoneyDto, WriteResult};
use crate::error::Fields;
use crate::idempotency::RequestContext;
use crate::state::AppState;

/// A tax rate for a country, or for a region of it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetTaxRate {
    /// `19` or `"8.875"` (percent, 0-100, at most three decimals).
    #[schema(value_type = Object)]
    rate: serde_json::Value,
    /// The start of the region's postal codes (e.g. `35` for Las Palmas); omit for the
    /// whole country.
    postal_prefix: Option<String>,
}

/// Whether catalog prices include tax.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TaxSettings {
    prices_include_tax: bool,
}

/// Sets the tax rate of a destination (admin).
#[utoipa::path(put, path = "/v1/tax/rates/{country}", tag = "tax", request_body = SetTaxRate,
    params(("country" = String, Path, description = "ISO 3166-1 alpha-2")), security(("bearer" = [])),
    responses((status = 200, body = WriteResult), (status = 400), (status = 401), (status = 403), (status = 422)))]
pub(crate) async fn set_tax_rate(
    State(state): State<AppState>,
    caller: Caller,
    Extension(req): Extension<RequestContext>,
    Path(country): Path<String>,
    Json(body): Json<SetTaxRate>,
) -> Result<Response, Problem> {
    caller.require_admin()?;
    let country = path_value("country", CountryCode::new(&country))?;
    let mut f = Fields::default();
    let rate: Option<Rate> = typed(&mut f, "rate", "invalid_percentage", body.rate);
    let postal_prefix = body
        .postal_prefix
        .map(|p| f.check("postal_prefix", PostalPrefix::normalize(&p)));
    f.finish()?;
    let command = TaxCommand::SetTaxRate {
        country,
        postal_prefix: postal_prefix.map(Option::unwrap),
        rate: rate.unwrap(),
    };
    admin_write(
        &state.stores().tax,
        TaxPolicy::ID,
        command,
        &req,
        &caller,
        None,
    )
    .await
}

/// The postal prefix of a regional rate to remove.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct RateQuery {
    /// The region's postal code prefix; omit for the country's own rate.
    postal_prefix: Option<String>,
}

/// Removes the tax rate of a destination (admin).
#[utoipa::path(delete, path = "/v1/tax/rates/{country}", tag = "tax",
    params(("country" = String, Path), RateQuery), security(("bearer" = [])),
    responses((status = 200, body = WriteResult), (status = 400), (status = 401), (status = 403), (status = 404), (status = 422)))]
pub(crate) async fn remove_tax_rate(
    State(state): State<AppState>,
    caller: Caller,
    Extension(req): Extension<RequestContext>,
    Path(country): Path<String>,
    mercato_web::Query(query): mercato_web::Query<RateQuery>,
) -> Result<Response, Problem> {
    caller.require_admin()?;
    let country = path_value("country", CountryCode::new(&country))?;
    let mut f = Fields::default();
    let postal_prefix = query
        .postal_prefix
        .map(|p| f.check("postal_prefix", PostalPrefix::normalize(&p)));
    f.finish()?;
    let command = TaxCommand::RemoveTaxRate {
        country,
        postal_prefix: postal_prefix.map(Option::unwrap),
    };
    admin_write(
        &state.stores().tax,
        TaxPolicy::ID,
        command,
        &req,
        &caller,
        None,
    )
    .await
}

/// Says whether catalog prices include tax (admin; they do until set).
#[utoipa::path(put, path = "/v1/tax/settings", tag = "tax", request_body = TaxSettings,
    security(("bearer" = [])),
    responses((status = 200, body = WriteResult), (status = 401), (status = 403), (status = 422)))]
pub(crate) async fn set_tax_settings(
    State(state): State<AppState>,
    caller: Caller,
    Extension(req): Extension<RequestContext>,
    Json(body): Json<TaxSettings>,
) -> Result<Response, Problem> {
    caller.require_admin()?;
    let command = TaxCommand::SetPricesIncludeTax {
        prices_include_tax: body.prices_include_tax,
    };
    admin_write(
        &state.stores().tax,
        TaxPolicy::ID,
        command,
        &req,
        &caller,
        None,
    )
    .await
}

/// A shipping method.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DefineShippingMethod {
    /// Shown to shoppers (1-200 characters).
    name: String,
    /// ISO 3166-1 alpha-2 codes of the countries it ships to.
    countries: Vec<String>,
    /// `{"flat": {"amount": 490, "currency": "EUR"}}` or `{"by_weight": {"base": {...},
    /// "per_kg": {...}}}` (per started kilogram).
    #[schema(value_type = Object)]
    rate: serde_json::Value,
    /// Free when the goods cost at least this much after discounts.
    free_above: Option<MoneyDto>,
}

/// Creates or replaces a shipping method (admin).
#[utoipa::path(put, path = "/v1/shipping-methods/{id}", tag = "shipping", request_body = DefineShippingMethod,
    params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = WriteResult), (status = 400), (status = 401), (status = 403), (status = 422)))]
pub(crate) async fn define_shipping_method(
    State(state): State<AppState>,
    caller: Caller,
    Extension(req): Extension<RequestContext>,
    Path(id): Path<String>,
    Json(body): Json<DefineShippingMethod>,
) -> Result<Response, Problem> {
    caller.require_admin()?;
    let method_id = path_value("id", ShippingMethodId::new(id))?;
    let mut f = Fields::default();
    let name = f.check("name", ProductName::new(body.name));
    let countries: Vec<Option<CountryCode>> = body
        .countries
        .iter()
        .enumerate()
        .map(|(i, c)| f.check(&format!("countries[{i}]"), CountryCode::new(c.trim())))
        .collect();
    let rate: Option<ShippingRate> = typed(&mut f, "rate", "invalid_rate", body.rate);
    if let Some(rate) = &rate {
        let amounts = match rate {
            ShippingRate::Flat(m) => vec![("rate.flat", *m)],
            ShippingRate::ByWeight { base, per_kg } => {
                vec![
                    ("rate.by_weight.base", *base),
                    ("rate.by_weight.per_kg", *per_kg),
                ]
            }
        };
        for (field, m) in amounts {
            MoneyDto::from(m).check(field, state.config().max_amount, &mut f);
        }
    }
    let free_above = optional_money(&mut f, &state, "free_above", body.free_above);
    f.finish()?;
    let method = ShippingMethod {
        name: name.unwrap(),
        countries: countries.into_iter().map(Option::unwrap).collect(),
        rate: rate.unwrap(),
        free_above: free_above.unwrap(),
    };
    let command = ShippingCommand::DefineShippingMethod { method_id, method };
    admin_write(
        &state.stores().shipping,
        ShippingPolicy::ID,
        command,
        &req,
        &caller,
        None,
    )
    .await
}

/// Stops offering a shipping method (admin); orders that chose it keep their charge.
#[utoipa::path(delete, path = "/v1/shipping-methods/{id}", tag = "shipping",
    params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = WriteResult), (status = 400), (status = 401), (status = 403), (status = 404)))]
pub(crate) async fn retire_shipping_method(
    State(state): State<AppState>,
    caller: Caller,
    Extension(req): Extension<RequestContext>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    caller.require_admin()?;
    let method_id = path_value("id", ShippingMethodId::new(id))?;
    let command = ShippingCommand::RetireShippingMethod { method_id };
    admin_write(
        &state.stores().shipping,
        ShippingPolicy::ID,
        command,
        &req,
        &caller,
        None,
    )
    .await
}
