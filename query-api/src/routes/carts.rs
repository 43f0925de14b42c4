//! Carts.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use mercato_aggregates::pricing::Priced;
use mercato_web::{Caller, Path, Problem, Query, MERCATO_CART_TOKEN};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use super::pricing::{self, CartCoupon, CartLineRow, Destination};
use super::{db, MoneyDto, ReadHeaders};
use crate::consistency::{wait, Source};
use crate::respond::{cached, PRIVATE_CACHE};
use crate::AppState;

/// A cart line.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CartLineView {
    sku: String,
    name: String,
    quantity: i32,
    unit_price: MoneyDto,
    /// `unit_price * quantity`.
    line_total: MoneyDto,
    /// The promotions' share of the line.
    discount: MoneyDto,
    /// Tax on the line (zero until a destination is known).
    tax: MoneyDto,
    /// What the line costs after its discount (with its tax when prices exclude it).
    total: MoneyDto,
}

/// A coupon code in the cart.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CouponView {
    code: String,
    /// It takes money off (or makes shipping free) now.
    applied: bool,
    /// Why not: `promotion_not_running`, `promotion_usage_limit_reached`,
    /// `promotion_requires_sign_in`, `promotion_not_active`, `minimum_subtotal`,
    /// `currency_mismatch`, `no_eligible_lines` or `not_combinable`.
    reason: Option<String>,
}

/// A promotion applied to the cart.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CartDiscountView {
    promotion_id: Uuid,
    name: String,
    /// `null` for an automatic promotion.
    code: Option<String>,
    amount: MoneyDto,
    free_shipping: bool,
}

/// The tax in the cart's prices.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CartTaxView {
    amount: MoneyDto,
    /// Percent (`"19"`).
    rate: String,
    prices_include_tax: bool,
}

/// A cart, priced: its lines at list prices, the promotions that apply now (automatic ones
/// and its coupons), and the tax of the destination given as `?country=` (the checkout
/// prices it again, with the tax of the shipping address, and holds the promotions' uses).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CartView {
    id: Uuid,
    customer_id: Option<Uuid>,
    /// `open` or `checked_out`.
    status: String,
    lines: Vec<CartLineView>,
    coupons: Vec<CouponView>,
    /// The lines at list prices.
    subtotal: MoneyDto,
    discounts: Vec<CartDiscountView>,
    discount_total: MoneyDto,
    /// `null` on an open cart without `?country=`.
    tax: Option<CartTaxView>,
    /// What the cart costs: subtotal less discounts, plus tax when prices exclude it.
    total: MoneyDto,
    order_id: Option<Uuid>,
    updated_at: chrono::DateTime<chrono::Utc>,
}

/// A customer's cart (its owner or the admin), or an anonymous cart (its `Mercato-Cart-Token`).
#[utoipa::path(get, path = "/v1/carts/{id}", tag = "carts", params(("id" = Uuid, Path), Destination, ReadHeaders),
    security(("bearer" = [])),
    responses((status = 200, body = CartView), (status = 304), (status = 400), (status = 401), (status = 403), (status = 404), (status = 503)))]
#[tracing::instrument(skip(state, headers, caller))]
pub(crate) async fn get_cart(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Option<Caller>,
    Path(id): Path<Uuid>,
    Query(destination): Query<Destination>,
) -> Result<Response, Problem> {
    let country = destination.country()?;
    wait(&state, &headers, Source::Tables(&["carts"])).await?;
    let Some(row) = sqlx::query(
        "SELECT customer_id, status, currency, total_amount, order_id, updated_at, coupons, pricing \
         FROM read.carts WHERE cart_id = $1",
    )
    .bind(id)
    .fetch_optional(&state.pool)
    .await
    .map_err(db)?
    else {
        return Err(Problem::not_found("cart_not_found", format!("no cart {id}")));
    };
    let customer_id: Option<Uuid> = row.try_get("customer_id").map_err(db)?;
    authorize(&state, &headers, caller.as_ref(), id, customer_id).await?;
    let currency: String = row.try_get("currency").map_err(db)?;
    let money = |amount: i64| MoneyDto::new(amount, &currency);
    let rows = cart_lines(&state, id).await?;
    let coupons: Vec<CartCoupon> =
        serde_json::from_value(row.try_get("coupons").map_err(db)?).map_err(Problem::internal)?;
    let stored: Option<serde_json::Value> = row.try_get("pricing").map_err(db)?;
    let (priced, refused) = match stored {
        // A checked-out cart shows the pricing it was checked out with.
        Some(stored) => (
            Some(serde_json::from_value::<Priced>(stored).map_err(Problem::internal)?),
            Vec::new(),
        ),
        None => {
            let lines = pricing_rows(&rows)?;
            wait(&state, &headers, Source::Tables(&["pricing"])).await?;
            let postal = destination.postal_code.as_deref().unwrap_or("");
            let signed_in = customer_id.is_some();
            match pricing::price_cart(
                &state,
                &currency,
                &lines,
                &coupons,
                signed_in,
                country.as_ref(),
                postal,
            )
            .await?
            {
                Some(p) => (Some(p.priced), p.refused),
                None => (None, Vec::new()),
            }
        }
    };
    let lines = rows
        .iter()
        .map(|r| {
            let line_total: i64 = r.try_get("line_total_amount")?;
            let sku: String = r.try_get("sku")?;
            let p = priced
                .as_ref()
                .and_then(|p| p.lines.iter().find(|l| l.sku.as_str() == sku));
            Ok(CartLineView {
                name: r.try_get("name")?,
                quantity: r.try_get("quantity")?,
                unit_price: money(r.try_get("unit_price_amount")?),
                line_total: money(line_total),
                discount: money(p.map_or(0, |p| p.discount.amount())),
                tax: money(p.map_or(0, |p| p.tax.amount())),
                total: money(p.map_or(line_total, |p| p.total.amount())),
                sku,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(db)?;
    let coupons = coupons
        .iter()
        .map(|c| {
            let applied = priced.as_ref().is_some_and(|p| {
                p.discounts
                    .iter()
                    .any(|d| d.promotion_id.as_uuid() == c.promotion_id)
            });
            let passed = priced.as_ref().and_then(|p| {
                p.passed_over
                    .iter()
                    .find(|o| o.promotion_id.as_uuid() == c.promotion_id)
                    .and_then(|o| serde_json::to_value(o.reason).ok())
                    .and_then(|v| v.as_str().map(str::to_owned))
            });
            let refused = refused
                .iter()
                .find(|(code, _)| *code == c.code)
                .map(|(_, r)| (*r).to_owned());
            CouponView {
                code: c.code.clone(),
                applied,
                reason: refused.or(passed),
            }
        })
        .collect();
    let stored_total: i64 = row.try_get("total_amount").map_err(db)?;
    let status: String = row.try_get("status").map_err(db)?;
    let view = CartView {
        id,
        customer_id,
        lines,
        coupons,
        subtotal: money(
            priced
                .as_ref()
                .map_or(stored_total, |p| p.subtotal.amount()),
        ),
        discounts: priced
            .as_ref()
            .map(|p| {
                p.discounts
                    .iter()
                    .map(|d| CartDiscountView {
                        promotion_id: d.promotion_id.as_uuid(),
                        name: d.name.as_str().to_owned(),
                        code: d.code.as_ref().map(|c| c.as_str().to_owned()),
                        amount: money(d.amount.amount()),
                        free_shipping: d.free_shipping,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        discount_total: money(priced.as_ref().map_or(0, |p| p.discount_total.amount())),
        tax: priced
            .as_ref()
            .filter(|_| country.is_some() || status == "checked_out")
            .map(|p| CartTaxView {
                amount: money(p.tax.amount()),
                rate: p.tax_rule.rate.to_string(),
                prices_include_tax: p.tax_rule.prices_include_tax,
            }),
        total: money(priced.as_ref().map_or(stored_total, |p| p.total.amount())),
        status,
        order_id: row.try_get("order_id").map_err(db)?,
        updated_at: row.try_get("updated_at").map_err(db)?,
    };
    cached(&headers, &view, PRIVATE_CACHE)
}

/// The admin and the owning customer may read a customer's cart. An anonymous cart is read
/// with its secret token, whose SHA-256 the command API keeps in `command.cart_tokens` (the
/// token is not in the events).
async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    caller: Option<&Caller>,
    cart_id: Uuid,
    owner: Option<Uuid>,
) -> Result<(), Problem> {
    if let Some(caller) = caller {
        if caller.is_admin() {
            return Ok(());
        }
        if let Some(owner) = owner {
            return caller.require_owner_or_admin(owner);
        }
    }
    if let Some(token) = headers
        .get(MERCATO_CART_TOKEN)
        .and_then(|v| v.to_str().ok())
    {
        if owner.is_none() {
            let hash = hex::encode(Sha256::digest(token.as_bytes()));
            let known = sqlx::query(
                "SELECT 1 FROM command.cart_tokens WHERE cart_id = $1 AND token_hash = $2",
            )
            .bind(cart_id)
            .bind(hash)
            .fetch_optional(&state.pool)
            .await;
            match known {
                Ok(Some(_)) => return Ok(()),
                Ok(None) => {}
                // No command schema in this database: the token cannot be checked.
                Err(e) => tracing::warn!(error = %e, "cannot verify a cart token"),
            }
        }
        return Err(Problem::forbidden(
            "this cart token does not open this cart",
        ));
    }
    match caller {
        Some(_) => Err(Problem::forbidden("this cart belongs to someone else")),
        None => Err(Problem::unauthorized(
            "send `Authorization: Bearer <token>` or the cart's Mercato-Cart-Token",
        )),
    }
}

/// A cart's lines, as the view lists them.
async fn cart_lines(state: &AppState, id: Uuid) -> Result<Vec<sqlx::postgres::PgRow>, Problem> {
    sqlx::query(
        "SELECT sku, name, quantity, unit_price_amount, line_total_amount, category, brand, \
           weight_grams FROM read.cart_lines WHERE cart_id = $1 ORDER BY added_at, sku",
    )
    .bind(id)
    .fetch_all(&state.pool)
    .await
    .map_err(db)
}

/// The lines as the pricing reads them.
fn pricing_rows(rows: &[sqlx::postgres::PgRow]) -> Result<Vec<CartLineRow>, Problem> {
    rows.iter()
        .map(|r| {
            Ok(CartLineRow {
                sku: r.try_get("sku")?,
                quantity: r.try_get("quantity")?,
                unit_price_amount: r.try_get("unit_price_amount")?,
                category: r.try_get("category")?,
                brand: r.try_get("brand")?,
                weight_grams: r.try_get("weight_grams")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(db)
}

/// A way to ship a cart.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ShippingOptionView {
    method_id: String,
    name: String,
    /// What the method charges for this parcel.
    amount: MoneyDto,
    /// Taken off by a free-shipping promotion.
    discount: MoneyDto,
    /// Tax on the shipping.
    tax: MoneyDto,
    /// What the shipping costs the shopper.
    total: MoneyDto,
    /// What the whole cart costs with this method.
    cart_total: MoneyDto,
}

/// The ways a cart ships.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ShippingOptions {
    options: Vec<ShippingOptionView>,
}

/// The shipping methods that ship the cart to `country`, each priced for it (its weight,
/// its goods after discounts for a free-shipping threshold, free-shipping promotions, and
/// the destination's tax). The checkout takes one of them as `shipping_method`.
#[utoipa::path(get, path = "/v1/carts/{id}/shipping-options", tag = "carts", params(("id" = Uuid, Path), Destination, ReadHeaders),
    security(("bearer" = [])),
    responses((status = 200, body = ShippingOptions), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409), (status = 503)))]
#[tracing::instrument(skip(state, headers, caller))]
pub(crate) async fn shipping_options(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Option<Caller>,
    Path(id): Path<Uuid>,
    Query(destination): Query<Destination>,
) -> Result<Response, Problem> {
    let Some(country) = destination.country()? else {
        return Err(Problem::bad_request(
            "country_required",
            "send ?country= (ISO 3166-1 alpha-2), and ?postal_code= for a regional tax rate",
        ));
    };
    wait(&state, &headers, Source::Tables(&["carts", "pricing"])).await?;
    let Some(row) = sqlx::query(
        "SELECT customer_id, status, currency, coupons FROM read.carts WHERE cart_id = $1",
    )
    .bind(id)
    .fetch_optional(&state.pool)
    .await
    .map_err(db)?
    else {
        return Err(Problem::not_found(
            "cart_not_found",
            format!("no cart {id}"),
        ));
    };
    let customer_id: Option<Uuid> = row.try_get("customer_id").map_err(db)?;
    authorize(&state, &headers, caller.as_ref(), id, customer_id).await?;
    let status: String = row.try_get("status").map_err(db)?;
    if status != "open" {
        return Err(Problem::conflict(
            "cart_checked_out",
            "this cart was already checked out",
        ));
    }
    let currency: String = row.try_get("currency").map_err(db)?;
    let coupons: Vec<CartCoupon> =
        serde_json::from_value(row.try_get("coupons").map_err(db)?).map_err(Problem::internal)?;
    let lines = pricing_rows(&cart_lines(&state, id).await?)?;
    let postal = destination.postal_code.as_deref().unwrap_or("");
    let signed_in = customer_id.is_some();
    let options = match pricing::price_cart(
        &state,
        &currency,
        &lines,
        &coupons,
        signed_in,
        Some(&country),
        postal,
    )
    .await?
    {
        None => Vec::new(),
        Some(cart) => pricing::shipping_options(&state, &cart, &country).await?,
    };
    let money = |m: mercato_aggregates::Money| MoneyDto::new(m.amount(), m.currency().as_str());
    let options = options
        .into_iter()
        .filter_map(|p| {
            let s = p.shipping.as_ref()?;
            Some(ShippingOptionView {
                method_id: s.method_id.as_str().to_owned(),
                name: s.name.as_str().to_owned(),
                amount: money(s.amount),
                discount: money(s.discount),
                tax: money(s.tax),
                total: money(s.total),
                cart_total: money(p.total),
            })
        })
        .collect();
    cached(&headers, &ShippingOptions { options }, PRIVATE_CACHE)
}
