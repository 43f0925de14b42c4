//! Catalog search on this replica's index.

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use mercato_projections::search::{SearchRequest, SearchSort};
use mercato_web::{FieldError, Problem};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

use super::{decode_cursor, encode_cursor, page_limit, price_range, MoneyDto, ReadHeaders};
use crate::consistency::{wait, Source};
use crate::respond::{cached, CATALOG_CACHE};
use crate::AppState;

/// Attribute filters are the query parameters named `attr.<key>`.
const ATTRIBUTE_PREFIX: &str = "attr.";
/// The most attribute filters (`attr.<key>=<value>` pairs) one search takes.
const MAX_ATTRIBUTE_FILTERS: usize = 50;

/// Search parameters (besides the attribute filters, `attr.<key>=<value>`).
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

/// Facet counts over every match (filters applied), not only the page.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FacetsDto {
    category: BTreeMap<String, u64>,
    brand: BTreeMap<String, u64>,
    /// Per attribute key, its values and how many matches have each (at most the 50 most
    /// frequent values of a key).
    attributes: BTreeMap<String, BTreeMap<String, u64>>,
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
///
/// Attribute filters: `attr.<key>=<value>` (e.g. `attr.colour=red&attr.size=M`). A product
/// matches when it has, for every key named, one of the values given for it: filters of
/// different keys must all hold, repeats of a key (`attr.colour=red&attr.colour=blue`) are
/// alternatives. Keys and values match exactly (case included).
#[utoipa::path(get, path = "/v1/search", tag = "catalog",
    params(SearchParams,
        ("attr.{key}" = Option<String>, Query,
         description = "Attribute filter, e.g. `attr.colour=red`: products whose attribute `key` \
                        has this value. Repeat a key for alternatives; different keys must all match."),
        ReadHeaders),
    responses((status = 200, body = SearchResults), (status = 304),
              (status = 400, description = "a bad parameter, cursor or attribute filter"), (status = 503)))]
#[tracing::instrument(skip_all)]
pub(crate) async fn search(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, Problem> {
    let (params, attributes) = parse(query.as_deref().unwrap_or_default())?;
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
        attributes,
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
            attributes: result.facets.attributes,
        },
        total: result.total,
        next_cursor,
        has_more,
    };
    cached(&headers, &body, CATALOG_CACHE)
}

/// The search parameters, and the attribute filters (key -> accepted values) taken out of
/// the query string first: a struct cannot name parameters whose names hold a key.
fn parse(query: &str) -> Result<(SearchParams, BTreeMap<String, Vec<String>>), Problem> {
    let mut rest = form_urlencoded::Serializer::new(String::new());
    let mut attributes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut filters = 0;
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let Some(key) = name.strip_prefix(ATTRIBUTE_PREFIX) else {
            rest.append_pair(&name, &value);
            continue;
        };
        let refuse = |message: &str| {
            Problem::bad_request("invalid_attribute_filter", message).field_errors([
                FieldError::new(name.as_ref(), "invalid_attribute_filter", message),
            ])
        };
        // The same limits as the attributes a product may have.
        let is_text = |text: &str, max: usize| {
            (1..=max).contains(&text.chars().count())
                && !text.trim().is_empty()
                && !text.chars().any(char::is_control)
        };
        if !is_text(key, 64) {
            return Err(refuse(
                "an attribute filter is attr.<key>=<value> with a key of 1-64 characters",
            ));
        }
        if !is_text(&value, 256) {
            return Err(refuse("an attribute filter's value is 1-256 characters"));
        }
        filters += 1;
        if filters > MAX_ATTRIBUTE_FILTERS {
            return Err(refuse("at most 50 attribute filters"));
        }
        let values = attributes.entry(key.to_owned()).or_default();
        if !values.iter().any(|v| *v == value) {
            values.push(value.into_owned());
        }
    }
    let params = mercato_web::parse_query(&rest.finish())?;
    Ok((params, attributes))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn attribute_filters_are_taken_out_of_the_query_and_grouped_by_key() {
        let (params, attributes) =
            parse("q=shirt&attr.colour=red&attr.size=M&attr.colour=blue&attr.colour=red&limit=5")
                .unwrap();
        assert_eq!(params.q, "shirt");
        assert_eq!(params.limit, Some(5));
        assert_eq!(attributes["colour"], ["red", "blue"]);
        assert_eq!(attributes["size"], ["M"]);
        let (_, attributes) = parse("attr.fit%20type=slim%2Fregular").unwrap();
        assert_eq!(attributes["fit type"], ["slim/regular"]);
    }

    #[test]
    fn a_bad_attribute_filter_or_an_unknown_parameter_is_a_400() {
        for query in [
            "attr.=red",
            "attr.colour=",
            "attr.colour=%20",
            "attrs.colour=red",
            "colour=red",
        ] {
            let problem = parse(query).unwrap_err();
            assert_eq!(problem.status().as_u16(), 400, "{query}");
        }
        assert_eq!(
            parse("attr.=red").unwrap_err().code(),
            "invalid_attribute_filter"
        );
        assert_eq!(parse("colour=red").unwrap_err().code(), "invalid_query");
        let many: Vec<String> = (0..51).map(|i| format!("attr.k{i}=v")).collect();
        assert_eq!(
            parse(&many.join("&")).unwrap_err().code(),
            "invalid_attribute_filter"
        );
    }
}
