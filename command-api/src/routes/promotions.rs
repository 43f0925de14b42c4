//! Promotions and coupons (admin only; ADR 0022).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use chrono::{DateTime, Utc};
use mercato_aggregates::pricing::{Discount, Stacking, Target};
use mercato_aggregates::promotion::{PromotionChanges, PromotionCommand, PromotionTerms};
use mercato_aggregates::values::{CouponCode, PromotionId, PromotionName};
use mercato_web::{Caller, Json, Path, Problem};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    admin_write, context, optional_money, parse_uuid, typed, written, IfMatch, MoneyDto,
    Precondition, WriteResult,
};
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

fn discount(f: &mut Fields, state: &AppState, value: serde_json::Value) -> Option<Discount> {
    let discount: Discount = typed(f, "discount", "invalid_discount", value)?;
    if let Discount::Amount(m) = &discount {
        MoneyDto::from(*m).check("discount.amount", state.config().max_amount, f)?;
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
    let min_subtotal = optional_money(&mut f, &state, "min_subtotal", body.min_subtotal);
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
        .map(|m| optional_money(&mut f, &state, "min_subtotal", m));
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

/// Activates a promotion (admin).
#[utoipa::path(post, path = "/v1/promotions/{id}/activate", tag = "promotions",
    params(("id" = Uuid, Path), Precondition), security(("bearer" = [])),
    responses((status = 200, body = WriteResult), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub(crate) async fn activate_promotion(
    State(state): State<AppState>,
    caller: Caller,
    Extension(req): Extension<RequestContext>,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
) -> Result<Response, Problem> {
    {
        caller.require_admin()?;
        let id = parse_uuid("id", &id)?.to_string();
        let store = &state.stores().promotions;
        admin_write(
            store,
            &id,
            PromotionCommand::ActivatePromotion,
            &req,
            &caller,
            expected,
        )
        .await
    }
}

/// Deactivates a promotion (admin); uses already held stay held.
#[utoipa::path(post, path = "/v1/promotions/{id}/deactivate", tag = "promotions",
    params(("id" = Uuid, Path), Precondition), security(("bearer" = [])),
    responses((status = 200, body = WriteResult), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub(crate) async fn deactivate_promotion(
    State(state): State<AppState>,
    caller: Caller,
    Extension(req): Extension<RequestContext>,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
) -> Result<Response, Problem> {
    {
        caller.require_admin()?;
        let id = parse_uuid("id", &id)?.to_string();
        let store = &state.stores().promotions;
        admin_write(
            store,
            &id,
            PromotionCommand::DeactivatePromotion,
            &req,
            &caller,
            expected,
        )
        .await
    }
}
