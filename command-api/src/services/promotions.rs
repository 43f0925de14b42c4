//! Promotions at checkout (ADR 0021): which ones a buyer may have, and holding a use of each
//! limited one for the order before its cart is frozen.
//!
//! Also the owner of `command.promotions`, the lookup index of coupon codes and automatic
//! promotions (the Promotion aggregates stay the source of truth).

use chrono::{DateTime, Utc};
use mercato_aggregates::cart::{Cart, CheckoutPricing, ShippingChoice};
use mercato_aggregates::pricing::{self, PassedOverReason, PromotionRule};
use mercato_aggregates::promotion::{Promotion, PromotionCommand, PromotionError};
use mercato_aggregates::shipping::{ShippingMethod, ShippingMethodId, ShippingPolicy};
use mercato_aggregates::tax::TaxPolicy;
use mercato_aggregates::values::{CouponCode, CustomerId, OrderId, PostalAddress, PromotionId};
use mercato_aggregates::ErrorKind;
use mercato_event_store::EventStoreError;
use mercato_web::{FieldError, Problem};
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::{db_problem, refusal, store_problem};
use crate::exec::{execute, WriteContext};
use crate::stores::Stores;

/// What a checkout prices a cart with, and the limited promotions it must hold a use of.
pub(crate) struct Offer {
    pub pricing: CheckoutPricing,
    /// The limited promotions the pricing applied.
    pub limited: Vec<PromotionId>,
}

/// The pricing of `cart` for `customer` shipping to `address` by `shipping_method` at `now`:
/// its automatic promotions that apply now, its coupons (a coupon that cannot be used is
/// refused with a problem naming it), the destination's tax, and the shipping (required
/// when the shop has shipping methods).
pub(crate) async fn offer(
    stores: &Stores,
    cart: &Cart,
    customer: Option<CustomerId>,
    order_id: OrderId,
    address: &PostalAddress,
    shipping_method: Option<&ShippingMethodId>,
    now: DateTime<Utc>,
) -> Result<Offer, Problem> {
    let mut promotions: Vec<(Promotion, Option<CouponCode>)> = Vec::new();
    for id in automatic(&stores.pool, now).await.map_err(db_problem)? {
        let promotion = load(stores, id).await?;
        if promotion.refusal(Some(order_id), customer, now).is_none() {
            promotions.push((promotion, None));
        }
    }
    for (code, id) in cart.coupons() {
        let promotion = load(stores, *id).await?;
        if let Some(refused) = promotion.refusal(Some(order_id), customer, now) {
            return Err(coupon_problem(code, &refused));
        }
        promotions.push((promotion, Some(code.clone())));
    }
    let (policy, _) = stores
        .tax
        .load(TaxPolicy::ID)
        .await
        .map_err(store_problem)?;
    let tax = policy.rule_for(address.country(), address.postal_code());
    let rules: Vec<PromotionRule> = promotions.iter().filter_map(|(p, _)| p.rule()).collect();
    let priced = pricing::price(&cart.pricing_lines(), &rules, tax)
        .map_err(|e| refusal(ErrorKind::Invalid, "pricing_failed", e))?;
    if let Some(passed) = priced.passed_over.iter().find(|p| {
        p.code
            .as_ref()
            .is_some_and(|c| cart.coupons().contains_key(c))
            && p.reason != PassedOverReason::NotCombinable
    }) {
        let code = passed
            .code
            .clone()
            .unwrap_or_else(|| unreachable!("filtered on a code"));
        let detail = match passed.reason {
            PassedOverReason::MinimumSubtotal => "the cart is below its minimum subtotal",
            PassedOverReason::CurrencyMismatch => "it is for another currency",
            _ => "nothing in the cart qualifies",
        };
        return Err(refusal(
            ErrorKind::Invalid,
            "coupon_not_applicable",
            format!("coupon {code} does not apply: {detail}"),
        )
        .with("coupon", code.as_str()));
    }
    let limited = priced
        .discounts
        .iter()
        .map(|d| d.promotion_id)
        .filter(|id| {
            promotions
                .iter()
                .any(|(p, _)| p.id() == Some(*id) && p.is_limited())
        })
        .collect();
    let shipping = shipping(stores, cart, &priced, address, shipping_method).await?;
    Ok(Offer {
        pricing: CheckoutPricing {
            promotions: rules,
            tax,
            shipping,
        },
        limited,
    })
}

/// The shipping method chosen, checked: it must exist and ship the cart to the address. A
/// shop with no shipping methods charges none, and then none may be chosen.
async fn shipping(
    stores: &Stores,
    cart: &Cart,
    priced: &pricing::Priced,
    address: &PostalAddress,
    chosen: Option<&ShippingMethodId>,
) -> Result<Option<ShippingChoice>, Problem> {
    let (policy, _) = stores
        .shipping
        .load(ShippingPolicy::ID)
        .await
        .map_err(store_problem)?;
    let country = address.country().clone();
    let lines = cart.pricing_lines();
    let ships = |method: &ShippingMethod| {
        pricing::with_shipping(
            priced.clone(),
            &lines,
            ShippingMethodId::new("check").ok()?,
            method,
            &country,
        )
        .ok()
    };
    let Some(chosen) = chosen else {
        if policy.methods().is_empty() {
            return Ok(None);
        }
        let available: Vec<&str> = policy
            .methods()
            .iter()
            .filter(|(_, m)| ships(m).is_some())
            .map(|(id, _)| id.as_str())
            .collect();
        if available.is_empty() {
            return Err(refusal(
                ErrorKind::Invalid,
                "no_shipping_to_destination",
                format!("no shipping method ships this cart to {country}"),
            ));
        }
        return Err(Problem::validation([FieldError::new(
            "shipping_method",
            "required",
            format!("choose a shipping method: {}", available.join(", ")),
        )]));
    };
    let Some(method) = policy.methods().get(chosen) else {
        return Err(Problem::validation([FieldError::new(
            "shipping_method",
            "unknown_shipping_method",
            format!("no shipping method {chosen}"),
        )]));
    };
    if ships(method).is_none() {
        return Err(refusal(
            ErrorKind::Invalid,
            "shipping_unavailable",
            format!("{chosen} does not ship this cart to {country}"),
        ));
    }
    Ok(Some(ShippingChoice {
        method_id: chosen.clone(),
        method: method.clone(),
        country,
    }))
}

async fn load(stores: &Stores, id: PromotionId) -> Result<Promotion, Problem> {
    Ok(stores
        .promotions
        .load(&id.to_string())
        .await
        .map_err(store_problem)?
        .0)
}

fn coupon_problem(code: &CouponCode, refused: &PromotionError) -> Problem {
    refusal(
        refused.kind(),
        refused.code(),
        format!("coupon {code}: {refused}"),
    )
    .with("coupon", code.as_str())
}

/// Holds a use of each of `limited` for the order; if one is refused, gives back those this
/// call held and answers the refusal (409 `promotion_usage_limit_reached`, ...).
pub(crate) async fn reserve(
    stores: &Stores,
    limited: &[PromotionId],
    order_id: OrderId,
    customer: Option<CustomerId>,
    now: DateTime<Utc>,
    ctx: &WriteContext,
) -> Result<(), Problem> {
    for (i, id) in limited.iter().enumerate() {
        let command = PromotionCommand::ReserveRedemption {
            order_id,
            customer_id: customer,
            at: now,
        };
        let held = execute(&stores.promotions, &id.to_string(), command, ctx, None).await;
        if let Err(e) = held {
            release(stores, &limited[..i], order_id, ctx).await;
            return Err(match e {
                EventStoreError::Domain(refused) => refusal(
                    refused.kind(),
                    refused.code(),
                    format!("this order cannot have a promotion: {refused}"),
                )
                .with("promotion_id", id.to_string()),
                other => store_problem(other),
            });
        }
    }
    Ok(())
}

/// Gives back the order's uses of `promotions` (a failed or abandoned checkout). A failure is
/// logged: the use stays held until the order's cancellation or an operator releases it.
pub(crate) async fn release(
    stores: &Stores,
    promotions: &[PromotionId],
    order_id: OrderId,
    ctx: &WriteContext,
) {
    for id in promotions {
        let command = PromotionCommand::ReleaseRedemption { order_id };
        // Its own write id: the reservation's write id is already recorded on this stream.
        let ctx = WriteContext {
            write_id: Uuid::new_v5(&ctx.write_id, format!("release:{id}").as_bytes()),
            ..ctx.clone()
        };
        if let Err(e) = execute(&stores.promotions, &id.to_string(), command, &ctx, None).await {
            tracing::warn!(promotion_id = %id, order_id = %order_id, error = %e, "could not give back a promotion's use");
        }
    }
}

/// Automatic promotions whose window contains `now`.
async fn automatic(pool: &PgPool, now: DateTime<Utc>) -> Result<Vec<PromotionId>, sqlx::Error> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT promotion_id FROM command.promotions WHERE code IS NULL \
           AND (starts_at IS NULL OR starts_at <= $1) AND (ends_at IS NULL OR ends_at > $1) \
         ORDER BY promotion_id",
    )
    .bind(now)
    .fetch_all(pool)
    .await?;
    Ok(ids.into_iter().map(PromotionId::new).collect())
}

/// The promotion a code names at `now`: the one whose window contains it, else the next
/// one to start, else the last one that ran (so the refusal can say it is not running).
pub(crate) async fn by_code(
    pool: &PgPool,
    code: &CouponCode,
    now: DateTime<Utc>,
) -> Result<Option<PromotionId>, sqlx::Error> {
    let id: Option<Uuid> = sqlx::query_scalar(
        "SELECT promotion_id FROM command.promotions WHERE code = $1 \
         ORDER BY tstzrange(starts_at, ends_at, '[)') @> $2 DESC, \
           (starts_at > $2) DESC, starts_at, ends_at DESC NULLS FIRST LIMIT 1",
    )
    .bind(code.as_str())
    .bind(now)
    .fetch_optional(pool)
    .await?;
    Ok(id.map(PromotionId::new))
}

/// Why a code or window could not be claimed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClaimError {
    /// Another promotion uses the code in an overlapping window.
    #[error("another promotion uses this code in an overlapping window")]
    Overlap,
    /// PostgreSQL failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Claims (or moves) a promotion's code and window in the index before its event is
/// appended.
pub(crate) async fn claim(
    pool: &PgPool,
    id: PromotionId,
    code: Option<&CouponCode>,
    starts_at: Option<DateTime<Utc>>,
    ends_at: Option<DateTime<Utc>>,
) -> Result<(), ClaimError> {
    let claimed = sqlx::query(
        "INSERT INTO command.promotions (promotion_id, code, starts_at, ends_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (promotion_id) DO UPDATE \
           SET starts_at = EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at",
    )
    .bind(id.as_uuid())
    .bind(code.map(CouponCode::as_str))
    .bind(starts_at)
    .bind(ends_at)
    .execute(pool)
    .await;
    match claimed {
        Ok(_) => Ok(()),
        // exclusion_violation
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("23P01") => {
            Err(ClaimError::Overlap)
        }
        Err(e) => Err(e.into()),
    }
}

/// Drops a claim whose promotion was never created.
pub(crate) async fn unclaim(pool: &PgPool, id: PromotionId) {
    let dropped = sqlx::query("DELETE FROM command.promotions WHERE promotion_id = $1")
        .bind(id.as_uuid())
        .execute(pool)
        .await;
    if let Err(e) = dropped {
        tracing::warn!(promotion_id = %id, error = %e, "could not drop a promotion's claim");
    }
}

impl ClaimError {
    pub(crate) fn problem(self) -> Problem {
        match self {
            ClaimError::Overlap => refusal(
                ErrorKind::Conflict,
                "coupon_code_overlap",
                "another promotion uses this code in an overlapping window; end it first or choose another window",
            ),
            ClaimError::Database(e) => db_problem(e),
        }
    }
}
