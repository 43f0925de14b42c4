//! What prices a cart (admin only): promotions and coupons, the tax policy, and the shipping
//! methods.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use chrono::{DateTime, Utc};
use mercato_aggregates::money::Money;
use mercato_aggregates::pricing::{Discount, Rate, Stacking, Target};
use mercato_aggregates::promotion::{PromotionChanges, PromotionCommand, PromotionTerms};
use mercato_aggregates::shipping::{
    ShippingCommand, ShippingMethod, ShippingMethodId, ShippingPolicy, ShippingRate,
};
use mercato_aggregates::tax::{TaxCommand, TaxPolicy};
use mercato_aggregates::values::{
    CountryCode, CouponCode, PostalPrefix, ProductName, PromotionId, PromotionName,
};
use mercato_web::{Caller, Json, Path, Problem};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{context, parse_uuid, written, IfMatch, MoneyDto, Precondition, WriteResult};
use crate::error::{store_problem, Fields};
use crate::exec::execute;
use crate::idempotency::RequestContext;
use crate::services::promotions;
use crate::state::AppState;

/// Namespace of promotion ids derived from a request's write id.
const PROMOTION_NAMESPACE: Uuid = Uuid::from_u128(0x6d65_7263_6174_6f2d_7072_6f6d_0000_0001);

/// A new promotion.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreatePromotion {
    /// Shown to shoppers beside the discount (1-200 characters).
    name: String,
    /// A coupon code (3-32 letters, digits, `-`, `_`; case-insensitive); omit for a promotion
    /// that applies automatically.
    code: Option<String>,
    /// `{"percent": 10}` or `{"percent": "12.5"}` (0-100, at most three decimals),
    /// `{"amount": {"amount": 500, "currency": "EUR"}}`, `{"buy_x_get_y": {"buy": 2,
    /// "get": 1}}` or `{"free_shipping": {}}`.
    #[schema(value_type = Object)]
    discount: serde_json::Value,
    /// `"cart"` (default), `{"product": "SKU"}`, `{"category": ["kitchen", "teapots"]}` or
    /// `{"brand": "Kyusu"}`.
    #[schema(value_type = Option<Object>)]
    applies_to: Option<serde_json::Value>,
    /// The cart subtotal (list prices) needed.
    min_subtotal: Option<MoneyDto>,
    /// `combinable` (default) or `exclusive` (applies alone, when it gives more).
    #[schema(value_type = Option<String>, pattern = "^(combinable|exclusive)$")]
    stacking: Option<serde_json::Value>,
    starts_at: Option<DateTime<Utc>>,
    ends_at: Option<DateTime<Utc>>,
    /// Orders it may be used in, in total.
    #[schema(minimum = 1)]
    usage_limit: Option<u32>,
    /// Orders one signed-in customer may use it in (guests cannot use such a promotion).
    #[schema(minimum = 1)]
    per_customer_limit: Option<u32>,
    /// `false` creates it inactive; active by default.
    active: Option<bool>,
}

/// Changes to a promotion; a field left out stays, `null` clears an optional one. The code
/// cannot change.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdatePromotion {
    name: Option<String>,
    #[schema(value_type = Option<Object>)]
    discount: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    applies_to: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<MoneyDto>)]
    min_subtotal: Option<Option<MoneyDto>>,
    #[schema(value_type = Option<String>, pattern = "^(combinable|exclusive)$")]
    stacking: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    starts_at: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    ends_at: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>, minimum = 1)]
    usage_limit: Option<Option<u32>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>, minimum = 1)]
    per_customer_limit: Option<Option<u32>>,
}

/// A field that is present (possibly `null`) is `Some`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A created promotion.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PromotionCreated {
    id: String,
    #[serde(flatten)]
    write: WriteResult,
}

/// A value of a JSON field, or its error in `f`.
fn typed<T: DeserializeOwned>(
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

fn money(
    f: &mut Fields,
    state: &AppState,
    field: &str,
    dto: Option<MoneyDto>,
) -> Option<Option<Money>> {
    match dto {
        None => Some(None),
        Some(m) => m.check(field, state.config().max_amount, f).map(Some),
    }
}

fn discount(f: &mut Fields, state: &AppState, value: serde_json::Value) -> Option<Discount> {
    let discount: Discount = typed(f, "discount", "invalid_discount", value)?;
    if let Discount::Amount(m) = &discount {
        let dto = MoneyDto {
            amount: m.amount(),
            currency: m.currency().to_string(),
        };
        dto.check("discount.amount", state.config().max_amount, f)?;
    }
    if let Discount::Percent(rate) = &discount {
        if rate.positive().is_err() {
            f.push(
                "discount.percent",
                "invalid_percentage",
                "a discount must be more than 0%",
            );
            return None;
        }
    }
    Some(discount)
}

/// Creates a promotion (admin). A code may be reused only by promotions whose windows do not
/// overlap (409 `coupon_code_overlap`).
#[utoipa::path(post, path = "/v1/promotions", tag = "promotions", request_body = CreatePromotion,
    security(("bearer" = [])),
    responses((status = 201, body = PromotionCreated), (status = 401), (status = 403), (status = 409), (status = 422)))]
pub(crate) async fn create_promotion(
    State(state): State<AppState>,
    caller: Caller,
    Extension(req): Extension<RequestContext>,
    Json(body): Json<CreatePromotion>,
) -> Result<Response, Problem> {
    caller.require_admin()?;
    let mut f = Fields::default();
    let name = f.check("name", PromotionName::new(body.name));
    let code = body
        .code
        .map(|c| f.check("code", CouponCode::normalize(&c)));
    let discount = discount(&mut f, &state, body.discount);
    let applies_to = body.applies_to.map_or(Some(Target::Cart), |v| {
        typed(&mut f, "applies_to", "invalid_target", v)
    });
    let stacking = body.stacking.map_or(Some(Stacking::Combinable), |v| {
        typed(&mut f, "stacking", "invalid_stacking", v)
    });
    let min_subtotal = money(&mut f, &state, "min_subtotal", body.min_subtotal);
    f.finish()?;
    let code = code.map(Option::unwrap);
    let terms = PromotionTerms {
        name: name.unwrap(),
        code: code.clone(),
        discount: discount.unwrap(),
        applies_to: applies_to.unwrap(),
        min_subtotal: min_subtotal.unwrap(),
        stacking: stacking.unwrap(),
        starts_at: body.starts_at,
        ends_at: body.ends_at,
        usage_limit: body.usage_limit,
        per_customer_limit: body.per_customer_limit,
    };
    let id = PromotionId::new(Uuid::new_v5(&PROMOTION_NAMESPACE, req.write_id.as_bytes()));
    let stores = state.stores();
    // Check the terms before claiming the code, so a refused promotion never holds it.
    let command = PromotionCommand::CreatePromotion {
        promotion_id: id,
        terms,
        active: body.active.unwrap_or(true),
    };
    if let Err(e) = mercato_aggregates::promotion::Promotion::default().check_command(&command) {
        return Err(crate::error::domain_problem(&e));
    }
    promotions::claim(
        &stores.pool,
        id,
        code.as_ref(),
        body.starts_at,
        body.ends_at,
    )
    .await
    .map_err(promotions::ClaimError::problem)?;
    match execute(
        &stores.promotions,
        &id.to_string(),
        command,
        &context(&req, Some(&caller)),
        None,
    )
    .await
    {
        Ok(w) => Ok(written(
            StatusCode::CREATED,
            PromotionCreated {
                id: id.to_string(),
                write: WriteResult::from(&w),
            },
            &w,
        )),
        Err(e) => {
            if matches!(e, mercato_event_store::EventStoreError::Domain(_)) {
                promotions::unclaim(&stores.pool, id).await;
            }
            Err(store_problem(e))
        }
    }
}

/// Changes a promotion (admin). Uses already held stay held; a lower limit only stops new
/// ones.
#[utoipa::path(patch, path = "/v1/promotions/{id}", tag = "promotions", request_body = UpdatePromotion,
    params(("id" = Uuid, Path), Precondition), security(("bearer" = [])),
    responses((status = 200, body = WriteResult), (status = 401), (status = 403), (status = 404), (status = 409), (status = 422)))]
pub(crate) async fn update_promotion(
    State(state): State<AppState>,
    caller: Caller,
    Extension(req): Extension<RequestContext>,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
    Json(body): Json<UpdatePromotion>,
) -> Result<Response, Problem> {
    caller.require_admin()?;
    let id = PromotionId::new(parse_uuid("id", &id)?);
    let mut f = Fields::default();
    let name = body.name.map(|n| f.check("name", PromotionName::new(n)));
    let discount = body.discount.map(|d| discount(&mut f, &state, d));
    let applies_to = body
        .applies_to
        .map(|v| typed(&mut f, "applies_to", "invalid_target", v));
    let stacking = body
        .stacking
        .map(|v| typed(&mut f, "stacking", "invalid_stacking", v));
    let min_subtotal = body
        .min_subtotal
        .map(|m| money(&mut f, &state, "min_subtotal", m));
    f.finish()?;
    let changes = PromotionChanges {
        name: name.map(Option::unwrap),
        discount: discount.map(Option::unwrap),
        applies_to: applies_to.map(Option::unwrap),
        min_subtotal: min_subtotal.map(Option::unwrap),
        stacking: stacking.map(Option::unwrap),
        starts_at: body.starts_at,
        ends_at: body.ends_at,
        usage_limit: body.usage_limit,
        per_customer_limit: body.per_customer_limit,
    };
    let stores = state.stores();
    let (promotion, _) = stores
        .promotions
        .load(&id.to_string())
        .await
        .map_err(store_problem)?;
    let command = PromotionCommand::UpdatePromotion {
        changes: changes.clone(),
    };
    promotion
        .check_command(&command)
        .map_err(|e| crate::error::domain_problem(&e))?;
    let terms = promotion
        .terms()
        .cloned()
        .map(|t| mercato_aggregates::promotion::apply_changes(t, changes));
    let moved = terms.as_ref().filter(|t| {
        promotion
            .terms()
            .is_some_and(|old| (old.starts_at, old.ends_at) != (t.starts_at, t.ends_at))
    });
    if let Some(t) = moved {
        promotions::claim(&stores.pool, id, t.code.as_ref(), t.starts_at, t.ends_at)
            .await
            .map_err(promotions::ClaimError::problem)?;
    }
    let w = execute(
        &stores.promotions,
        &id.to_string(),
        command,
        &context(&req, Some(&caller)),
        expected,
    )
    .await
    .map_err(store_problem)?;
    Ok(written(StatusCode::OK, WriteResult::from(&w), &w))
}

async fn switch(
    state: &AppState,
    caller: &Caller,
    req: &RequestContext,
    id: &str,
    expected: Option<u64>,
    command: PromotionCommand,
) -> Result<Response, Problem> {
    caller.require_admin()?;
    let id = parse_uuid("id", id)?;
    let w = execute(
        &state.stores().promotions,
        &id.to_string(),
        command,
        &context(req, Some(caller)),
        expected,
    )
    .await
    .map_err(store_problem)?;
    Ok(written(StatusCode::OK, WriteResult::from(&w), &w))
}

/// Activates a promotion (admin).
#[utoipa::path(post, path = "/v1/promotions/{id}/activate", tag = "promotions",
    params(("id" = Uuid, Path), Precondition), security(("bearer" = [])),
    responses((status = 200, body = WriteResult), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub(crate) async fn activate_promotion(
    State(state): State<AppState>,
    caller: Caller,
    Extension(req): Extension<RequestContext>,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
) -> Result<Response, Problem> {
    switch(
        &state,
        &caller,
        &req,
        &id,
        expected,
        PromotionCommand::ActivatePromotion,
    )
    .await
}

/// Deactivates a promotion (admin); uses already held stay held.
#[utoipa::path(post, path = "/v1/promotions/{id}/deactivate", tag = "promotions",
    params(("id" = Uuid, Path), Precondition), security(("bearer" = [])),
    responses((status = 200, body = WriteResult), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub(crate) async fn deactivate_promotion(
    State(state): State<AppState>,
    caller: Caller,
    Extension(req): Extension<RequestContext>,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
) -> Result<Response, Problem> {
    switch(
        &state,
        &caller,
        &req,
        &id,
        expected,
        PromotionCommand::DeactivatePromotion,
    )
    .await
}

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
    let country = parse_country(&country)?;
    let mut f = Fields::default();
    let rate: Option<Rate> = typed(&mut f, "rate", "invalid_percentage", body.rate);
    let postal_prefix = body.postal_prefix.map(|p| {
        f.check(
            "postal_prefix",
            PostalPrefix::new(p.trim().to_ascii_uppercase()),
        )
    });
    f.finish()?;
    let command = TaxCommand::SetTaxRate {
        country,
        postal_prefix: postal_prefix.map(Option::unwrap),
        rate: rate.unwrap(),
    };
    tax(&state, &caller, &req, command).await
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
    responses((status = 200, body = WriteResult), (status = 400), (status = 401), (status = 403), (status = 404)))]
pub(crate) async fn remove_tax_rate(
    State(state): State<AppState>,
    caller: Caller,
    Extension(req): Extension<RequestContext>,
    Path(country): Path<String>,
    mercato_web::Query(query): mercato_web::Query<RateQuery>,
) -> Result<Response, Problem> {
    caller.require_admin()?;
    let country = parse_country(&country)?;
    let mut f = Fields::default();
    let postal_prefix = query.postal_prefix.map(|p| {
        f.check(
            "postal_prefix",
            PostalPrefix::new(p.trim().to_ascii_uppercase()),
        )
    });
    f.finish()?;
    let command = TaxCommand::RemoveTaxRate {
        country,
        postal_prefix: postal_prefix.map(Option::unwrap),
    };
    tax(&state, &caller, &req, command).await
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
    tax(&state, &caller, &req, command).await
}

async fn tax(
    state: &AppState,
    caller: &Caller,
    req: &RequestContext,
    command: TaxCommand,
) -> Result<Response, Problem> {
    let w = execute(
        &state.stores().tax,
        TaxPolicy::ID,
        command,
        &context(req, Some(caller)),
        None,
    )
    .await
    .map_err(store_problem)?;
    Ok(written(StatusCode::OK, WriteResult::from(&w), &w))
}

fn parse_country(raw: &str) -> Result<CountryCode, Problem> {
    CountryCode::new(raw).map_err(|e| {
        Problem::bad_request("invalid_path_parameter", e.to_string()).field_errors([
            mercato_web::FieldError::new("country", e.code(), e.to_string()),
        ])
    })
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
    let method_id = parse_method(&id)?;
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
            let dto = MoneyDto {
                amount: m.amount(),
                currency: m.currency().to_string(),
            };
            dto.check(field, state.config().max_amount, &mut f);
        }
    }
    let free_above = money(&mut f, &state, "free_above", body.free_above);
    f.finish()?;
    let method = ShippingMethod {
        name: name.unwrap(),
        countries: countries.into_iter().map(Option::unwrap).collect(),
        rate: rate.unwrap(),
        free_above: free_above.unwrap(),
    };
    let command = ShippingCommand::DefineShippingMethod { method_id, method };
    shipping(&state, &caller, &req, command).await
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
    let method_id = parse_method(&id)?;
    shipping(
        &state,
        &caller,
        &req,
        ShippingCommand::RetireShippingMethod { method_id },
    )
    .await
}

async fn shipping(
    state: &AppState,
    caller: &Caller,
    req: &RequestContext,
    command: ShippingCommand,
) -> Result<Response, Problem> {
    let w = execute(
        &state.stores().shipping,
        ShippingPolicy::ID,
        command,
        &context(req, Some(caller)),
        None,
    )
    .await
    .map_err(store_problem)?;
    Ok(written(StatusCode::OK, WriteResult::from(&w), &w))
}

fn parse_method(raw: &str) -> Result<ShippingMethodId, Problem> {
    ShippingMethodId::new(raw).map_err(|e| {
        Problem::bad_request("invalid_path_parameter", e.to_string())
            .field_errors([mercato_web::FieldError::new("id", e.code(), e.to_string())])
    })
}
