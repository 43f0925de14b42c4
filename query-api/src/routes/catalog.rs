//! Products and stock.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use mercato_web::{Caller, Path, Problem, Query};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgRow;
use sqlx::Row;
use utoipa::{IntoParams, ToSchema};

use super::{db, decode_cursor, encode_cursor, page_limit, price_range, MoneyDto, ReadHeaders};
use crate::consistency::{wait, Source};
use crate::respond::{cached, CATALOG_CACHE, PRIVATE_CACHE};
use crate::AppState;

const CATALOG: Source = Source::Tables(&["catalog", "stock"]);
const STOCK: Source = Source::Tables(&["stock"]);

/// A product as the storefront shows it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProductView {
    sku: String,
    name: String,
    description: String,
    brand: String,
    /// Category path, root first.
    category: Vec<String>,
    #[schema(value_type = Object)]
    attributes: serde_json::Value,
    #[schema(value_type = Vec<String>)]
    images: serde_json::Value,
    price: MoneyDto,
    /// `draft`, `published`, `unpublished` or `discontinued`.
    status: String,
    /// Units available over all warehouses.
    available: i64,
    /// When the product was created.
    created_at: chrono::DateTime<chrono::Utc>,
    updated_at: chrono::DateTime<chrono::Utc>,
}

fn product(row: &PgRow) -> Result<ProductView, sqlx::Error> {
    let currency: String = row.try_get("currency")?;
    Ok(ProductView {
        sku: row.try_get("sku")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        brand: row.try_get("brand")?,
        category: row.try_get("category")?,
        attributes: row.try_get("attributes")?,
        images: row.try_get("images")?,
        price: MoneyDto::new(row.try_get("price_amount")?, &currency),
        status: row.try_get("status")?,
        available: row.try_get("available")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

const PRODUCT_COLUMNS: &str = "p.sku, p.name, p.description, p.brand, p.category, p.attributes, p.images, \
     p.price_amount, p.currency, p.status, coalesce(s.total_available, 0) AS available, p.created_at, p.updated_at";

/// Filters of the product list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ProductFilter {
    /// Category path (`a/b`): this category and below.
    category: Option<String>,
    /// Exact brand.
    brand: Option<String>,
    /// Lowest price (minor units).
    #[param(minimum = 0)]
    min_price: Option<i64>,
    /// Highest price (minor units).
    #[param(minimum = 0)]
    max_price: Option<i64>,
    /// Only products with units available.
    in_stock: Option<bool>,
    /// Admin only: products in this state (`draft`, `published`, `unpublished`,
    /// `discontinued`) instead of the published ones.
    #[param(pattern = "^(draft|published|unpublished|discontinued)$")]
    status: Option<String>,
    /// `sku` (the default) or `newest` (the latest created first).
    #[param(pattern = "^(sku|newest)$")]
    sort: Option<String>,
    /// 1-100, default 20.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// From the previous page's `next_cursor`.
    cursor: Option<String>,
}

/// A page of products.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProductPage {
    items: Vec<ProductView>,
    /// Pass as `cursor` for the next page.
    next_cursor: Option<String>,
    has_more: bool,
}

/// Published products by SKU, with filters and cursor pagination; the admin may list
/// products in another state (drafts, say).
#[utoipa::path(get, path = "/v1/products", tag = "catalog", params(ProductFilter, ReadHeaders),
    security((), ("bearer" = [])),
    responses((status = 200, body = ProductPage), (status = 400, description = "bad filter or cursor"),
              (status = 401), (status = 403, description = "a status filter without the admin's token"),
              (status = 503, description = "stale-read")))]
#[tracing::instrument(skip_all)]
pub(crate) async fn list_products(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Option<Caller>,
    Query(filter): Query<ProductFilter>,
) -> Result<Response, Problem> {
    let limit = page_limit(filter.limit)?;
    let status = filter.status.as_deref().unwrap_or("published");
    if !matches!(
        status,
        "draft" | "published" | "unpublished" | "discontinued"
    ) {
        return Err(Problem::bad_request(
            "invalid_status",
            "status is one of draft, published, unpublished, discontinued",
        ));
    }
    let is_admin = caller.as_ref().is_some_and(Caller::is_admin);
    if status != "published" && !is_admin {
        return Err(Problem::forbidden(
            "only the admin lists unpublished products",
        ));
    }
    price_range(filter.min_price, filter.max_price)?;
    let newest = match filter.sort.as_deref() {
        None | Some("sku") => false,
        Some("newest") => true,
        Some(_) => {
            return Err(Problem::bad_request(
                "invalid_sort",
                "sort is one of sku, newest",
            ))
        }
    };
    // Newest first pages by (created_at, sku): the cursor holds both.
    let (after, after_created) = match filter.cursor.as_deref().map(decode_cursor).transpose()? {
        None => (None, None),
        Some(cursor) if newest => {
            let (micros, sku) = cursor
                .split_once(':')
                .and_then(|(t, sku)| Some((t.parse::<i64>().ok()?, sku.to_owned())))
                .ok_or_else(|| {
                    Problem::bad_request("invalid_cursor", "cursor is not one this API returned")
                })?;
            let created = chrono::DateTime::from_timestamp_micros(micros).ok_or_else(|| {
                Problem::bad_request("invalid_cursor", "cursor is not one this API returned")
            })?;
            (Some(sku), Some(created))
        }
        Some(sku) => (Some(sku), None),
    };
    let (position, order) = if newest {
        (
            "($9::timestamptz IS NULL OR (p.created_at, p.sku) < ($9, $1::text))",
            "p.created_at DESC, p.sku DESC",
        )
    } else {
        // ($9 is always NULL here: named so both orders take the same parameters.)
        (
            "($1::text IS NULL OR p.sku > $1) AND $9::timestamptz IS NULL",
            "p.sku",
        )
    };
    let category: Option<Vec<String>> = filter.category.as_deref().map(|c| {
        c.split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    });
    wait(&state, &headers, CATALOG).await?;
    let rows = sqlx::query(&format!(
        "SELECT {PRODUCT_COLUMNS} FROM read.products p LEFT JOIN read.stock s ON s.sku = p.sku \
         WHERE p.status = $8 \
           AND {position} \
           AND ($2::text[] IS NULL OR p.category[1:cardinality($2::text[])] = $2) \
           AND ($3::text IS NULL OR p.brand = $3) \
           AND ($4::bigint IS NULL OR p.price_amount >= $4) \
           AND ($5::bigint IS NULL OR p.price_amount <= $5) \
           AND (NOT $6 OR coalesce(s.total_available, 0) > 0) \
         ORDER BY {order} LIMIT $7"
    ))
    .bind(after)
    .bind(category)
    .bind(filter.brand)
    .bind(filter.min_price)
    .bind(filter.max_price)
    .bind(filter.in_stock.unwrap_or(false))
    .bind(limit + 1)
    .bind(status)
    .bind(after_created)
    .fetch_all(&state.pool)
    .await
    .map_err(db)?;
    let has_more = rows.len() as i64 > limit;
    let items: Vec<ProductView> = rows
        .iter()
        .take(limit as usize)
        .map(product)
        .collect::<Result<_, _>>()
        .map_err(db)?;
    let next_cursor = match items.last() {
        Some(p) if has_more && newest => Some(encode_cursor(&format!(
            "{}:{}",
            p.created_at.timestamp_micros(),
            p.sku
        ))),
        Some(p) if has_more => Some(encode_cursor(&p.sku)),
        _ => None,
    };
    cached(
        &headers,
        &ProductPage {
            items,
            next_cursor,
            has_more,
        },
        // What only the admin sees must never sit in a shared cache.
        if status == "published" {
            CATALOG_CACHE
        } else {
            PRIVATE_CACHE
        },
    )
}

/// One product (unpublished ones only for the admin).
#[utoipa::path(get, path = "/v1/products/{sku}", tag = "catalog", params(("sku" = mercato_web::schema::Sku, Path), ReadHeaders),
    responses((status = 200, body = ProductView), (status = 304), (status = 404), (status = 503)))]
#[tracing::instrument(skip(state, headers, caller))]
pub(crate) async fn get_product(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Option<Caller>,
    Path(sku): Path<String>,
) -> Result<Response, Problem> {
    wait(&state, &headers, CATALOG).await?;
    let row = sqlx::query(&format!(
        "SELECT {PRODUCT_COLUMNS} FROM read.products p LEFT JOIN read.stock s ON s.sku = p.sku WHERE p.sku = $1"
    ))
    .bind(&sku)
    .fetch_optional(&state.pool)
    .await
    .map_err(db)?;
    let view = row.as_ref().map(product).transpose().map_err(db)?;
    let is_admin = caller.as_ref().is_some_and(Caller::is_admin);
    match view {
        Some(v) if v.status == "published" => cached(&headers, &v, CATALOG_CACHE),
        // What only the admin sees must never sit in a shared cache.
        Some(v) if is_admin => cached(&headers, &v, PRIVATE_CACHE),
        _ => Err(Problem::not_found(
            "product_not_found",
            format!("no product {sku}"),
        )),
    }
}

/// Stock of one warehouse.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WarehouseStock {
    warehouse: String,
    on_hand: i64,
    reserved: i64,
    available: i64,
}

fn warehouse_stock(r: &PgRow, warehouse: String) -> Result<WarehouseStock, sqlx::Error> {
    Ok(WarehouseStock {
        warehouse,
        on_hand: r.try_get("on_hand")?,
        reserved: r.try_get("reserved")?,
        available: r.try_get("available")?,
    })
}

/// Stock of a SKU.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct StockView {
    sku: String,
    available: i64,
    warehouses: Vec<WarehouseStock>,
}

/// Availability of a SKU, per warehouse and in total.
#[utoipa::path(get, path = "/v1/stock/{sku}", tag = "catalog", params(("sku" = mercato_web::schema::Sku, Path), ReadHeaders),
    responses((status = 200, body = StockView), (status = 304), (status = 404), (status = 503)))]
#[tracing::instrument(skip(state, headers))]
pub(crate) async fn get_stock(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(sku): Path<String>,
) -> Result<Response, Problem> {
    wait(&state, &headers, STOCK).await?;
    // One round trip: the total and its warehouses (none yet when nothing was received).
    let rows = sqlx::query(
        "SELECT s.total_available, l.warehouse, l.on_hand, l.reserved, l.available \
         FROM read.stock s LEFT JOIN read.stock_levels l ON l.sku = s.sku \
         WHERE s.sku = $1 ORDER BY l.warehouse",
    )
    .bind(&sku)
    .fetch_all(&state.pool)
    .await
    .map_err(db)?;
    let Some(first) = rows.first() else {
        return Err(Problem::not_found(
            "stock_not_found",
            format!("no stock recorded for {sku}"),
        ));
    };
    let available: i64 = first.try_get("total_available").map_err(db)?;
    let warehouses = rows
        .iter()
        .filter_map(|r| match r.try_get::<Option<String>, _>("warehouse") {
            Ok(Some(warehouse)) => Some(warehouse_stock(r, warehouse)),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(db)?;
    cached(
        &headers,
        &StockView {
            sku,
            available,
            warehouses,
        },
        CATALOG_CACHE,
    )
}
