//! Recommendations for a product page: what was bought with it, then what sells best in
//! its category (the `recommendations` read model, joined with the catalog).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use mercato_web::{Caller, Path, Problem, Query};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::{IntoParams, ToSchema};

use super::{db, MoneyDto, ReadHeaders};
use crate::consistency::{wait, Source};
use crate::respond::{cached, CATALOG_CACHE, PRIVATE_CACHE};
use crate::AppState;

const RECOMMENDATIONS: Source = Source::Tables(&["recommendations", "catalog"]);

/// How many recommendations without a `limit`.
const DEFAULT_LIMIT: i64 = 8;
/// The most recommendations one answer holds.
const MAX_LIMIT: i64 = 50;

/// Parameters of the recommendations.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct RecommendationParams {
    /// 1-50, default 8.
    #[param(minimum = 1, maximum = 50)]
    limit: Option<i64>,
}

/// Why a product is recommended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Reason {
    /// Confirmed orders held both products.
    BoughtTogether,
    /// Among the best sellers of the product's category.
    PopularInCategory,
}

/// A recommended product.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RecommendationView {
    sku: String,
    name: String,
    price: MoneyDto,
    reason: Reason,
    /// Confirmed orders that held both products (`bought_together`), or units of this
    /// product sold in confirmed orders (`popular_in_category`).
    score: i64,
}

/// Recommendations for a product.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Recommendations {
    /// The product they are for.
    sku: String,
    /// Bought together first (most orders first, then by SKU), then popular in the
    /// product's category (most units first, then by SKU); only published products, never
    /// the product itself.
    items: Vec<RecommendationView>,
}

/// What shoppers bought with a product, topped up with the best sellers of its category.
#[utoipa::path(get, path = "/v1/products/{sku}/recommendations", tag = "catalog",
    params(("sku" = mercato_web::schema::Sku, Path), RecommendationParams, ReadHeaders),
    security((), ("bearer" = [])),
    responses((status = 200, body = Recommendations),
              (status = 400, description = "a malformed SKU or a limit outside 1-50"),
              (status = 404, description = "no such published product"),
              (status = 503, description = "stale-read")))]
#[tracing::instrument(skip(state, headers, caller))]
pub(crate) async fn recommendations(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Option<Caller>,
    Path(sku): Path<String>,
    Query(params): Query<RecommendationParams>,
) -> Result<Response, Problem> {
    if !is_sku(&sku) {
        return Err(Problem::bad_request(
            "invalid_sku",
            "a SKU is 1-64 letters, digits, '.', '_' or '-'",
        ));
    }
    let limit = match params.limit {
        None => DEFAULT_LIMIT,
        Some(l) if (1..=MAX_LIMIT).contains(&l) => l,
        Some(_) => {
            return Err(Problem::bad_request(
                "invalid_limit",
                "limit must be between 1 and 50",
            ))
        }
    };
    wait(&state, &headers, RECOMMENDATIONS).await?;
    let status: Option<String> =
        sqlx::query_scalar("SELECT status FROM read.products WHERE sku = $1")
            .bind(&sku)
            .fetch_optional(&state.pool)
            .await
            .map_err(db)?;
    let is_admin = caller.as_ref().is_some_and(Caller::is_admin);
    let cache = match status.as_deref() {
        Some("published") => CATALOG_CACHE,
        // What only the admin sees must never sit in a shared cache.
        Some(_) if is_admin => PRIVATE_CACHE,
        _ => {
            return Err(Problem::not_found(
                "product_not_found",
                format!("no product {sku}"),
            ))
        }
    };
    // Each list is cut at `limit` after the published filter, and the category's list
    // leaves out what was bought together, so the two never hold the same SKU.
    let rows = sqlx::query(
        "WITH together AS ( \
             SELECT r.other_sku AS sku, r.orders AS score \
             FROM read.recommendation_pairs r \
             JOIN read.products p ON p.sku = r.other_sku AND p.status = 'published' \
             WHERE r.sku = $1 AND r.other_sku <> $1 \
             ORDER BY r.orders DESC, r.other_sku LIMIT $2), \
         popular AS ( \
             SELECT r.sku, r.units AS score \
             FROM read.recommendation_products me \
             JOIN read.recommendation_products r ON r.category = me.category \
             JOIN read.products p ON p.sku = r.sku AND p.status = 'published' \
             WHERE me.sku = $1 AND cardinality(me.category) > 0 AND r.sku <> $1 AND r.units > 0 \
               AND r.sku NOT IN (SELECT sku FROM together) \
             ORDER BY r.units DESC, r.sku LIMIT $2) \
         SELECT c.sku, p.name, p.price_amount, p.currency, c.reason, c.score FROM ( \
             SELECT sku, score, 'bought_together' AS reason, 0 AS tier FROM together \
             UNION ALL SELECT sku, score, 'popular_in_category', 1 FROM popular) c \
         JOIN read.products p ON p.sku = c.sku \
         ORDER BY c.tier, c.score DESC, c.sku LIMIT $2",
    )
    .bind(&sku)
    .bind(limit)
    .fetch_all(&state.pool)
    .await
    .map_err(db)?;
    let items = rows
        .iter()
        .map(|row| {
            let currency: String = row.try_get("currency")?;
            let reason: String = row.try_get("reason")?;
            Ok(RecommendationView {
                sku: row.try_get("sku")?,
                name: row.try_get("name")?,
                price: MoneyDto::new(row.try_get("price_amount")?, &currency),
                reason: if reason == "bought_together" {
                    Reason::BoughtTogether
                } else {
                    Reason::PopularInCategory
                },
                score: row.try_get("score")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(db)?;
    cached(&headers, &Recommendations { sku, items }, cache)
}

/// Whether `sku` has the shape of a SKU (`mercato_web::schema::CODE_PATTERN`): a malformed
/// one is a 400, not a product that does not exist.
fn is_sku(sku: &str) -> bool {
    (1..=64).contains(&sku.len())
        && sku
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}
