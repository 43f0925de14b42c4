//! Promotions and tax rates, and the pricing of a cart's view (ADR 0021): the same pure
//! pricing the checkout runs, fed from the `pricing` read model instead of the aggregates.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::{DateTime, Utc};
use mercato_aggregates::money::{Currency, Money};
use mercato_aggregates::pricing::{self, Priced, PricingLine, PromotionRule, Rate, TaxRule};
use mercato_aggregates::promotion::PromotionTerms;
use mercato_aggregates::shipping::{ShippingMethod, ShippingMethodId};
use mercato_aggregates::values::{Brand, CategoryPath, CountryCode, PromotionId, Quantity, Sku};
use mercato_web::{Caller, Path, Problem, Query};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{db, page_limit, ReadHeaders};
use crate::consistency::{wait, Source};
use crate::respond::{cached, CATALOG_CACHE, PRIVATE_CACHE};
use crate::AppState;

const PRICING: Source = Source::Tables(&["pricing"]);

/// A promotion, with the uses it holds.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PromotionView {
    id: Uuid,
    /// Its terms: `name`, `code`, `discount`, `applies_to`, `min_subtotal`, `stacking`,
    /// `starts_at`, `ends_at`, `usage_limit`, `per_customer_limit`.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    terms: serde_json::Value,
    active: bool,
    /// Orders holding a use now (cancelled orders give theirs back).
    uses: i32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// Filter of the promotions list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PromotionListParams {
    /// Only active (`true`) or inactive (`false`) ones.
    active: Option<bool>,
    /// 1-100, default 20.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
}

/// Promotions.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PromotionPage {
    items: Vec<PromotionView>,
}

fn promotion_view(r: &sqlx::postgres::PgRow) -> Result<PromotionView, sqlx::Error> {
    Ok(PromotionView {
        id: r.try_get("promotion_id")?,
        terms: r.try_get("terms")?,
        active: r.try_get("active")?,
        uses: r.try_get("uses")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// Promotions, newest first (admin).
#[utoipa::path(get, path = "/v1/promotions", tag = "promotions", params(PromotionListParams, ReadHeaders),
    security(("bearer" = [])),
    responses((status = 200, body = PromotionPage), (status = 400), (status = 401), (status = 403), (status = 503)))]
#[tracing::instrument(skip_all)]
pub(crate) async fn list_promotions(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
    Query(params): Query<PromotionListParams>,
) -> Result<Response, Problem> {
    caller.require_admin()?;
    let limit = page_limit(params.limit)?;
    wait(&state, &headers, PRICING).await?;
    let items = sqlx::query(
        "SELECT * FROM read.promotions WHERE ($1::boolean IS NULL OR active = $1) \
         ORDER BY created_at DESC, promotion_id DESC LIMIT $2",
    )
    .bind(params.active)
    .bind(limit)
    .fetch_all(&state.pool)
    .await
    .map_err(db)?
    .iter()
    .map(promotion_view)
    .collect::<Result<_, _>>()
    .map_err(db)?;
    cached(&headers, &PromotionPage { items }, PRIVATE_CACHE)
}

/// One promotion (admin).
#[utoipa::path(get, path = "/v1/promotions/{id}", tag = "promotions", params(("id" = Uuid, Path), ReadHeaders),
    security(("bearer" = [])),
    responses((status = 200, body = PromotionView), (status = 400), (status = 401), (status = 403), (status = 404), (status = 503)))]
#[tracing::instrument(skip_all)]
pub(crate) async fn get_promotion(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    caller.require_admin()?;
    wait(&state, &headers, PRICING).await?;
    let Some(row) = sqlx::query("SELECT * FROM read.promotions WHERE promotion_id = $1")
        .bind(id)
        .fetch_optional(&state.pool)
        .await
        .map_err(db)?
    else {
        return Err(Problem::not_found(
            "promotion_not_found",
            format!("no promotion {id}"),
        ));
    };
    cached(&headers, &promotion_view(&row).map_err(db)?, PRIVATE_CACHE)
}

/// A tax rate.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TaxRateView {
    country: String,
    /// The region's postal code prefix; `null` for the country's own rate.
    postal_prefix: Option<String>,
    /// Percent (`"19"`, `"8.875"`).
    rate: String,
}

/// The shop's tax policy.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TaxRatesView {
    /// Whether catalog prices include tax (they do until the shop says otherwise).
    prices_include_tax: bool,
    rates: Vec<TaxRateView>,
}

/// The shop's tax rates (public: shoppers may see what they will be charged).
#[utoipa::path(get, path = "/v1/tax/rates", tag = "tax", params(ReadHeaders),
    responses((status = 200, body = TaxRatesView), (status = 503)))]
#[tracing::instrument(skip_all)]
pub(crate) async fn tax_rates(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    wait(&state, &headers, PRICING).await?;
    let view = TaxRatesView {
        prices_include_tax: prices_include_tax(&state).await?,
        rates: sqlx::query("SELECT country, postal_prefix, rate FROM read.tax_rates ORDER BY key")
            .fetch_all(&state.pool)
            .await
            .map_err(db)?
            .iter()
            .map(|r| {
                Ok(TaxRateView {
                    country: r.try_get("country")?,
                    postal_prefix: r.try_get("postal_prefix")?,
                    rate: r.try_get("rate")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db)?,
    };
    cached(&headers, &view, CATALOG_CACHE)
}

async fn prices_include_tax(state: &AppState) -> Result<bool, Problem> {
    let setting: Option<bool> =
        sqlx::query_scalar("SELECT prices_include_tax FROM read.tax_settings WHERE shop = 'shop'")
            .fetch_optional(&state.pool)
            .await
            .map_err(db)?;
    Ok(setting.unwrap_or(true))
}

/// Where a cart would ship, for its tax.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct Destination {
    /// ISO 3166-1 alpha-2: prices the cart with this country's tax (the checkout charges the
    /// tax of the shipping address).
    country: Option<String>,
    /// The postal code, for a region with its own rate.
    pub(crate) postal_code: Option<String>,
}

impl Destination {
    /// The country, checked.
    pub(crate) fn country(&self) -> Result<Option<CountryCode>, Problem> {
        self.country
            .as_deref()
            .map(|c| {
                CountryCode::new(c.trim().to_ascii_uppercase())
                    .map_err(|e| Problem::bad_request("invalid_country_code", e.to_string()))
            })
            .transpose()
    }
}

/// A line of a cart to price, as the cart read model holds it.
pub(crate) struct CartLineRow {
    pub sku: String,
    pub quantity: i32,
    pub unit_price_amount: i64,
    pub category: Option<Vec<String>>,
    pub brand: Option<String>,
    pub weight_grams: Option<i32>,
}

/// A coupon in a cart, as the cart read model holds it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct CartCoupon {
    pub code: String,
    pub promotion_id: Uuid,
}

/// The pricing of an open cart now: its automatic promotions that apply, its coupons (those
/// that cannot apply are passed over, with the reason the checkout would give), and the
/// destination's tax (none when no country is given).
pub(crate) async fn price_cart(
    state: &AppState,
    currency: &str,
    lines: &[CartLineRow],
    coupons: &[CartCoupon],
    signed_in: bool,
    country: Option<&CountryCode>,
    postal_code: &str,
) -> Result<Option<CartPricing>, Problem> {
    let invalid = |e: String| {
        tracing::warn!(error = %e, "a cart row does not hold valid values");
        Problem::internal(e)
    };
    let currency = Currency::new(currency).map_err(|e| invalid(e.to_string()))?;
    let pricing_lines = lines
        .iter()
        .map(|l| {
            Ok(PricingLine {
                sku: Sku::new(&l.sku)?,
                quantity: Quantity::new(u32::try_from(l.quantity).unwrap_or(0))?,
                unit_price: Money::new(l.unit_price_amount, currency)
                    .map_err(|_| mercato_aggregates::ValueError::InvalidCurrency)?,
                category: l.category.clone().map(CategoryPath::new).transpose()?,
                brand: l.brand.clone().map(Brand::new).transpose()?,
                weight_grams: l.weight_grams.and_then(|w| u32::try_from(w).ok()),
            })
        })
        .collect::<Result<Vec<_>, mercato_aggregates::ValueError>>()
        .map_err(|e| invalid(e.to_string()))?;
    if pricing_lines.is_empty() {
        return Ok(None);
    }
    // In SKU order, as the cart aggregate prices them at checkout (ties in spreading a
    // discount go to the earlier line).
    let mut pricing_lines = pricing_lines;
    pricing_lines.sort_by(|a, b| a.sku.cmp(&b.sku));
    let coupon_ids: Vec<Uuid> = coupons.iter().map(|c| c.promotion_id).collect();
    let rows = sqlx::query(
        "SELECT promotion_id, terms, active, uses FROM read.promotions \
         WHERE active AND (code IS NULL OR promotion_id = ANY($1))",
    )
    .bind(&coupon_ids)
    .fetch_all(&state.pool)
    .await
    .map_err(db)?;
    let now = Utc::now();
    let mut rules = Vec::new();
    let mut refused = Vec::new();
    for row in rows {
        let id: Uuid = row.try_get("promotion_id").map_err(db)?;
        let terms: PromotionTerms = serde_json::from_value(row.try_get("terms").map_err(db)?)
            .map_err(|e| invalid(e.to_string()))?;
        let uses: i32 = row.try_get("uses").map_err(db)?;
        // Inactive promotions are not selected; the rules are the aggregate's own.
        let uses = u32::try_from(uses).unwrap_or(0);
        let reason = terms.refusal(true, uses, signed_in, now).map(|e| e.code());
        match (reason, &terms.code) {
            (Some(reason), Some(code)) => refused.push((code.as_str().to_owned(), reason)),
            (Some(_), None) => {}
            (None, _) => rules.push(rule(id, terms)),
        }
    }
    // A coupon whose promotion is inactive (or gone from the read model) is not offered.
    for coupon in coupons {
        let offered = rules.iter().any(|r| r.id.as_uuid() == coupon.promotion_id);
        let known = refused.iter().any(|(code, _)| *code == coupon.code);
        if !offered && !known {
            refused.push((coupon.code.clone(), "promotion_not_active"));
        }
    }
    let (rate, inclusive) = tax_of(state, country, postal_code).await?;
    let tax = TaxRule {
        rate,
        prices_include_tax: inclusive,
    };
    let priced = pricing::price(&pricing_lines, &rules, tax).map_err(|e| invalid(e.to_string()))?;
    Ok(Some(CartPricing {
        priced,
        refused,
        lines: pricing_lines,
    }))
}

/// An open cart priced now.
pub(crate) struct CartPricing {
    pub priced: Priced,
    /// Coupons that cannot apply, with the reason.
    pub refused: Vec<(String, &'static str)>,
    /// The lines as priced (in SKU order).
    pub lines: Vec<PricingLine>,
}

fn rule(id: Uuid, terms: PromotionTerms) -> PromotionRule {
    PromotionRule {
        id: PromotionId::new(id),
        name: terms.name,
        code: terms.code,
        discount: terms.discount,
        applies_to: terms.applies_to,
        min_subtotal: terms.min_subtotal,
        stacking: terms.stacking,
    }
}

/// The rate for a destination (longest matching postal prefix, then the country; none
/// without a country) and whether prices include tax.
async fn tax_of(
    state: &AppState,
    country: Option<&CountryCode>,
    postal_code: &str,
) -> Result<(Rate, bool), Problem> {
    let inclusive = prices_include_tax(state).await?;
    let zero = Rate::from_thousandths(0).map_err(|e| Problem::internal(e.to_string()))?;
    let Some(country) = country else {
        return Ok((zero, inclusive));
    };
    let postal = postal_code.trim().to_ascii_uppercase();
    let thousandths: Option<i32> = sqlx::query_scalar(
        "SELECT rate_thousandths FROM read.tax_rates WHERE country = $1 \
           AND (postal_prefix IS NULL OR starts_with($2, postal_prefix)) \
         ORDER BY length(coalesce(postal_prefix, '')) DESC LIMIT 1",
    )
    .bind(country.as_str())
    .bind(postal)
    .fetch_optional(&state.pool)
    .await
    .map_err(db)?;
    let rate = thousandths
        .map(|t| Rate::from_thousandths(u32::try_from(t).unwrap_or(0)))
        .transpose()
        .map_err(|e| Problem::internal(e.to_string()))?
        .unwrap_or(zero);
    Ok((rate, inclusive))
}

/// The cart priced with each shipping method that ships it to `country`, cheapest first.
pub(crate) async fn shipping_options(
    state: &AppState,
    cart: &CartPricing,
    country: &CountryCode,
) -> Result<Vec<Priced>, Problem> {
    let rows =
        sqlx::query("SELECT method_id, method FROM read.shipping_methods ORDER BY method_id")
            .fetch_all(&state.pool)
            .await
            .map_err(db)?;
    let mut options = Vec::new();
    for row in rows {
        let id: String = row.try_get("method_id").map_err(db)?;
        let method: ShippingMethod = serde_json::from_value(row.try_get("method").map_err(db)?)
            .map_err(Problem::internal)?;
        let id = ShippingMethodId::new(id).map_err(Problem::internal)?;
        if let Ok(priced) =
            pricing::with_shipping(cart.priced.clone(), &cart.lines, id, &method, country)
        {
            options.push(priced);
        }
    }
    options.sort_by_key(|p| p.total.amount());
    Ok(options)
}
