//! Catalog search on this replica's index.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use mercato_projections::search::{SearchRequest, SearchSort};
use mercato_web::{Problem, Query};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

use super::{decode_cursor, encode_cursor, page_limit, price_range, MoneyDto, ReadHeaders};
use crate::consistency::{wait, Source};
use crate::respond::{cached, CATALOG_CACHE};
use crate::AppState;

/// Search parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct SearchParams {
    /// What the shopper typed; typos and an unfinished last word are fine.
    #[serde(default)]
    q: String,
    /// Category path (`a/b`).
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
    /// `relevance` (default), `price_asc` or `price_desc`.
    #[param(pattern = "^(relevance|price_asc|price_desc)$")]
    sort: Option<String>,
    /// 1-100, default 20.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// From the previous page's `next_cursor`.
    cursor: Option<String>,
}

/// Highlighted fragments (`<b>` marks matched words).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HighlightsDto {
    name: String,
    description: String,
}

/// One hit.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SearchHitDto {
    sku: String,
    name: String,
    brand: String,
    category: Vec<String>,
    price: MoneyDto,
    available: u64,
    score: f32,
    highlights: HighlightsDto,
}

/// Facet counts.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FacetsDto {
    category: BTreeMap<String, u64>,
    brand: BTreeMap<String, u64>,
}

/// Search results.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SearchResults {
    hits: Vec<SearchHitDto>,
    facets: FacetsDto,
    total: u64,
    next_cursor: Option<String>,
    has_more: bool,
}

/// Typo-tolerant, search-as-you-type catalog search with facets and filters.
#[utoipa::path(get, path = "/v1/search", tag = "catalog", params(SearchParams, ReadHeaders),
    responses((status = 200, body = SearchResults), (status = 304), (status = 400), (status = 503)))]
#[tracing::instrument(skip_all)]
pub(crate) async fn search(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<SearchParams>,
) -> Result<Response, Problem> {
    let limit = page_limit(params.limit)? as usize;
    let offset = match params.cursor.as_deref() {
        Some(c) => decode_cursor(c)?.parse::<usize>().map_err(|_| {
            Problem::bad_request("invalid_cursor", "cursor is not one this API returned")
        })?,
        None => 0,
    };
    let sort = match params.sort.as_deref() {
        None | Some("relevance") => SearchSort::Relevance,
        Some("price_asc") => SearchSort::PriceAsc,
        Some("price_desc") => SearchSort::PriceDesc,
        Some(_) => {
            return Err(Problem::bad_request(
                "invalid_sort",
                "sort must be relevance, price_asc or price_desc",
            ))
        }
    };
    if params.q.len() > 500 {
        return Err(Problem::bad_request(
            "invalid_query",
            "q is longer than 500 characters",
        ));
    }
    let (min_price, max_price) = price_range(params.min_price, params.max_price)?;
    wait(&state, &headers, Source::Search).await?;
    let request = SearchRequest {
        q: params.q,
        category: params.category.map(|c| {
            c.split('/')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        }),
        brand: params.brand,
        min_price,
        max_price,
        in_stock: params.in_stock.unwrap_or(false),
        sort,
        limit,
        offset,
    };
    let result = state
        .search
        .search(request)
        .await
        .map_err(Problem::internal)?;
    let has_more = (offset + result.hits.len()) < result.total as usize;
    let next_cursor = has_more.then(|| encode_cursor(&(offset + result.hits.len()).to_string()));
    let body = SearchResults {
        hits: result
            .hits
            .into_iter()
            .map(|h| SearchHitDto {
                price: MoneyDto::new(h.price, &h.currency),
                sku: h.sku,
                name: h.name,
                brand: h.brand,
                category: h.category,
                available: h.available,
                score: h.score,
                highlights: HighlightsDto {
                    name: h.highlights.name,
                    description: h.highlights.description,
                },
            })
            .collect(),
        facets: FacetsDto {
            category: result.facets.category,
            brand: result.facets.brand,
        },
        total: result.total,
        next_cursor,
        has_more,
    };
    cached(&headers, &body, CATALOG_CACHE)
}
