//! Back office: sales analytics and projection status.

use std::collections::{BTreeMap, HashMap};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::NaiveDate;
use mercato_projections::ProjectionStatus;
use mercato_web::{Caller, Problem, Query};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::{IntoParams, ToSchema};

use super::{db, MoneyDto, ReadHeaders};
use crate::consistency::{wait, Source};
use crate::respond::{cached, PRIVATE_CACHE};
use crate::AppState;

/// Period of the sales report.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct SalesParams {
    /// First day (inclusive, `YYYY-MM-DD`, UTC).
    from: NaiveDate,
    /// Last day (inclusive).
    to: NaiveDate,
    /// Only `day`.
    #[param(pattern = "^day$")]
    granularity: Option<String>,
}

/// Sales of one day in one currency.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DaySales {
    day: NaiveDate,
    /// Confirmed orders placed that day.
    orders: i64,
    units: i64,
    /// The totals of those orders.
    revenue: MoneyDto,
    /// Refunds made that day (of orders of any day): negative revenue.
    refunded: MoneyDto,
    net: MoneyDto,
    /// The promotions' amounts taken off those orders (not in `revenue`).
    discounts: MoneyDto,
    /// The tax inside `revenue` (owed to the tax authorities).
    tax: MoneyDto,
    /// The shipping inside `revenue`.
    shipping: MoneyDto,
}

/// Sales of one SKU over the period.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SkuSales {
    sku: String,
    name: String,
    /// Units of confirmed orders.
    units: i64,
    revenue: MoneyDto,
    /// Units paid back (cancelled after payment, or returned).
    refunded_units: i64,
    /// What was paid back for them: negative revenue, on the day of the refund.
    refunded: MoneyDto,
    net: MoneyDto,
}

/// The sales report.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SalesReport {
    from: NaiveDate,
    to: NaiveDate,
    granularity: String,
    days: Vec<DaySales>,
    /// Per SKU, best sellers (by net revenue) first.
    top_products: Vec<SkuSales>,
    /// Orders placed in the period, by current status.
    orders_by_status: BTreeMap<String, i64>,
}

/// Revenue and units per day and per SKU, top products and orders by status.
#[utoipa::path(get, path = "/v1/admin/sales", tag = "admin", params(SalesParams, ReadHeaders), security(("bearer" = [])),
    responses((status = 200, body = SalesReport), (status = 400), (status = 401), (status = 403), (status = 503)))]
#[tracing::instrument(skip_all)]
pub(crate) async fn sales(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
    Query(params): Query<SalesParams>,
) -> Result<Response, Problem> {
    caller.require_admin()?;
    if params.granularity.as_deref().is_some_and(|g| g != "day") {
        return Err(Problem::bad_request(
            "invalid_granularity",
            "granularity must be day",
        ));
    }
    if params.from > params.to {
        return Err(Problem::bad_request("invalid_period", "from is after to"));
    }
    if (params.to - params.from).num_days() > 366 * 5 {
        return Err(Problem::bad_request(
            "invalid_period",
            "the period is longer than five years",
        ));
    }
    wait(&state, &headers, Source::Tables(&["sales"])).await?;
    let days = sqlx::query(
        "SELECT day, currency, orders, units, revenue_amount, refunded_amount, discount_amount, \
           tax_amount, shipping_amount FROM read.sales_daily \
         WHERE day BETWEEN $1 AND $2 ORDER BY day, currency",
    )
    .bind(params.from)
    .bind(params.to)
    .fetch_all(&state.pool)
    .await
    .map_err(db)?
    .iter()
    .map(|r| {
        let currency: String = r.try_get("currency")?;
        let revenue: i64 = r.try_get("revenue_amount")?;
        let refunded: i64 = r.try_get("refunded_amount")?;
        Ok(DaySales {
            day: r.try_get("day")?,
            orders: r.try_get("orders")?,
            units: r.try_get("units")?,
            revenue: MoneyDto::new(revenue, &currency),
            refunded: MoneyDto::new(refunded, &currency),
            net: MoneyDto::new(revenue - refunded, &currency),
            discounts: MoneyDto::new(r.try_get("discount_amount")?, &currency),
            tax: MoneyDto::new(r.try_get("tax_amount")?, &currency),
            shipping: MoneyDto::new(r.try_get("shipping_amount")?, &currency),
        })
    })
    .collect::<Result<_, sqlx::Error>>()
    .map_err(db)?;
    let top_products = sqlx::query(
        "SELECT sku, currency, max(name) AS name, sum(units)::bigint AS units, \
           sum(revenue_amount)::bigint AS revenue, sum(refunded_units)::bigint AS refunded_units, \
           sum(refunded_amount)::bigint AS refunded \
         FROM read.sales_by_sku WHERE day BETWEEN $1 AND $2 GROUP BY sku, currency \
         ORDER BY sum(revenue_amount) - sum(refunded_amount) DESC, sku LIMIT 20",
    )
    .bind(params.from)
    .bind(params.to)
    .fetch_all(&state.pool)
    .await
    .map_err(db)?
    .iter()
    .map(|r| {
        let currency: String = r.try_get("currency")?;
        let revenue: i64 = r.try_get("revenue")?;
        let refunded: i64 = r.try_get("refunded")?;
        Ok(SkuSales {
            sku: r.try_get("sku")?,
            name: r.try_get("name")?,
            units: r.try_get("units")?,
            revenue: MoneyDto::new(revenue, &currency),
            refunded_units: r.try_get("refunded_units")?,
            refunded: MoneyDto::new(refunded, &currency),
            net: MoneyDto::new(revenue - refunded, &currency),
        })
    })
    .collect::<Result<_, sqlx::Error>>()
    .map_err(db)?;
    let orders_by_status: BTreeMap<String, i64> = sqlx::query_as(
        "SELECT status, count(*) FROM read.sales_orders WHERE day BETWEEN $1 AND $2 GROUP BY status",
    )
    .bind(params.from)
    .bind(params.to)
    .fetch_all(&state.pool)
    .await
    .map_err(db)?
    .into_iter()
    .collect();
    let report = SalesReport {
        from: params.from,
        to: params.to,
        granularity: "day".into(),
        days,
        top_products,
        orders_by_status,
    };
    cached(&headers, &report, PRIVATE_CACHE)
}

/// A projection's progress.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProjectionView {
    name: String,
    /// The version that wrote the live tables (the code's version before the first run).
    version: i32,
    /// Consistency token of the last event handled.
    position: String,
    last_event_id: Option<uuid::Uuid>,
    lag_events: i64,
    lag_seconds: f64,
    /// `live`, `rebuilding` (a rebuild is running now), `failed` or `not started`.
    state: String,
    error: Option<String>,
    /// Events it could not apply and parked (`mercato projections parked` lists them).
    parked: i64,
    updated_at: Option<chrono::DateTime<chrono::Utc>>,
    /// A rebuild's shadow: running, or left by an interrupted rebuild (a rerun resumes it).
    #[serde(skip_serializing_if = "Option::is_none")]
    rebuild: Option<RebuildView>,
}

/// A rebuild's shadow version.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RebuildView {
    version: i32,
    /// How far the shadow has applied the log.
    position: String,
    lag_events: i64,
    /// Whether a rebuild is running now (otherwise it was interrupted).
    running: bool,
}

/// Every projection's position, lag and state (the search index of this replica included).
#[utoipa::path(get, path = "/v1/admin/projections", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Vec<ProjectionView>), (status = 401), (status = 403)))]
#[tracing::instrument(skip_all)]
pub(crate) async fn projections(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
) -> Result<Response, Problem> {
    caller.require_admin()?;
    // The stored state column still says `rebuilding` after an interrupted rebuild; `status`
    // tells a running rebuild (its lock is held) from a stopped one.
    let last_events: HashMap<String, Option<uuid::Uuid>> = ProjectionStatus::all(&state.pool)
        .await
        .map_err(Problem::internal)?
        .into_iter()
        .map(|s| (s.name, s.last_event_id))
        .collect();
    let mut views: Vec<ProjectionView> = mercato_projections::status::status(&state.pool)
        .await
        .map_err(Problem::internal)?
        .into_iter()
        .map(|s| ProjectionView {
            name: s.name.to_owned(),
            version: s.version.unwrap_or(s.code_version),
            position: s.position.to_string(),
            last_event_id: last_events.get(s.name).copied().flatten(),
            lag_events: s.lag_events,
            lag_seconds: s.lag_seconds,
            state: s.state.to_string(),
            error: s.error,
            parked: s.parked,
            updated_at: s.updated_at,
            rebuild: s.rebuild.map(|r| RebuildView {
                version: r.version,
                position: r.position.to_string(),
                lag_events: r.lag_events,
                running: r.running,
            }),
        })
        .collect();
    let (position, last_event_id) = state.search.position();
    let lag = mercato_event_store::LogReader::new(state.pool.clone())
        .health(position)
        .await
        .map_err(Problem::internal)?;
    views.push(ProjectionView {
        name: "search".into(),
        version: mercato_projections::search::SEARCH_VERSION as i32,
        position: position.to_string(),
        last_event_id,
        lag_events: lag.events_behind,
        lag_seconds: lag.seconds_behind,
        state: "live".into(),
        error: None,
        parked: 0,
        updated_at: None,
        rebuild: None,
    });
    cached(&headers, &views, PRIVATE_CACHE)
}
