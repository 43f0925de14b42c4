//! Orders: the customer's own history; the admin sees all.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use mercato_web::{Caller, Path, Problem, Query};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgRow;
use sqlx::Row;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{db, decode_cursor, encode_cursor, page_limit, MoneyDto};
use crate::consistency::{wait, Source};
use crate::respond::{cached, PRIVATE_CACHE};
use crate::AppState;

const ORDERS: Source = Source::Tables(&["orders"]);

/// An order line.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OrderLineView {
    sku: String,
    name: String,
    quantity: i32,
    shipped_quantity: i32,
    unit_price: MoneyDto,
    line_total: MoneyDto,
}

/// Payment progress.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PaymentView {
    /// `pending`, `authorized`, `declined`, `captured`, `partially_refunded`, `refunded`.
    state: String,
    payment_id: Option<Uuid>,
    decline_reason: Option<String>,
    captured: MoneyDto,
    refunded: MoneyDto,
}

/// Shipment progress.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ShipmentView {
    /// `not_shipped`, `partially_shipped`, `shipped`, `delivered`.
    state: String,
    tracking_numbers: Vec<String>,
}

/// An order.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OrderView {
    id: Uuid,
    customer_id: Uuid,
    status: String,
    lines: Vec<OrderLineView>,
    total: MoneyDto,
    payment: PaymentView,
    shipment: ShipmentView,
    /// Why it was cancelled (`{"out_of_stock": {"sku": ...}}`, `"customer_request"`, ...).
    #[schema(value_type = Option<Object>)]
    cancellation_reason: Option<serde_json::Value>,
    placed_at: chrono::DateTime<chrono::Utc>,
    updated_at: chrono::DateTime<chrono::Utc>,
}

/// An order in a list.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OrderSummary {
    id: Uuid,
    customer_id: Uuid,
    status: String,
    total: MoneyDto,
    placed_at: chrono::DateTime<chrono::Utc>,
}

/// A page of orders, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OrderPage {
    items: Vec<OrderSummary>,
    next_cursor: Option<String>,
    has_more: bool,
}

/// Paging of the order list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct OrderListParams {
    /// Admin only: one customer's orders.
    customer_id: Option<Uuid>,
    /// 1-100, default 20.
    limit: Option<i64>,
    /// From the previous page's `next_cursor`.
    cursor: Option<String>,
}

/// The caller's orders (the admin: everyone's, or one customer's), newest first.
#[utoipa::path(get, path = "/v1/orders", tag = "orders", params(OrderListParams), security(("bearer" = [])),
    responses((status = 200, body = OrderPage), (status = 400), (status = 401), (status = 403), (status = 503)))]
#[tracing::instrument(skip_all)]
pub(crate) async fn list_orders(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
    Query(params): Query<OrderListParams>,
) -> Result<Response, Problem> {
    let limit = page_limit(params.limit)?;
    let customer = if caller.is_admin() {
        params.customer_id
    } else {
        let me = caller
            .customer_id()
            .ok_or_else(|| Problem::forbidden("only customers have orders"))?;
        if params.customer_id.is_some_and(|c| c != me) {
            return Err(Problem::forbidden("these orders belong to someone else"));
        }
        Some(me)
    };
    let after = match params.cursor.as_deref() {
        None => None,
        Some(c) => {
            let raw = decode_cursor(c)?;
            let invalid =
                || Problem::bad_request("invalid_cursor", "cursor is not one this API returned");
            let (at, id) = raw.split_once('|').ok_or_else(invalid)?;
            let at = chrono::DateTime::parse_from_rfc3339(at).map_err(|_| invalid())?;
            Some((
                at.with_timezone(&chrono::Utc),
                Uuid::parse_str(id).map_err(|_| invalid())?,
            ))
        }
    };
    wait(&state, &headers, ORDERS).await?;
    let rows = sqlx::query(
        "SELECT order_id, customer_id, status, currency, total_amount, placed_at FROM read.orders \
         WHERE ($1::uuid IS NULL OR customer_id = $1) \
           AND ($2::timestamptz IS NULL OR (placed_at, order_id) < ($2, $3)) \
         ORDER BY placed_at DESC, order_id DESC LIMIT $4",
    )
    .bind(customer)
    .bind(after.map(|a| a.0))
    .bind(after.map(|a| a.1))
    .bind(limit + 1)
    .fetch_all(&state.pool)
    .await
    .map_err(db)?;
    let has_more = rows.len() as i64 > limit;
    let items: Vec<OrderSummary> = rows
        .iter()
        .take(limit as usize)
        .map(|r| {
            let currency: String = r.try_get("currency")?;
            Ok(OrderSummary {
                id: r.try_get("order_id")?,
                customer_id: r.try_get("customer_id")?,
                status: r.try_get("status")?,
                total: MoneyDto::new(r.try_get("total_amount")?, &currency),
                placed_at: r.try_get("placed_at")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(db)?;
    let next_cursor = if has_more {
        items.last().map(|o| {
            encode_cursor(&format!(
                "{}|{}",
                o.placed_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                o.id
            ))
        })
    } else {
        None
    };
    cached(
        &headers,
        &OrderPage {
            items,
            next_cursor,
            has_more,
        },
        PRIVATE_CACHE,
    )
}

/// One order (its customer or the admin).
#[utoipa::path(get, path = "/v1/orders/{id}", tag = "orders", params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = OrderView), (status = 304), (status = 401), (status = 403), (status = 404), (status = 503)))]
#[tracing::instrument(skip(state, headers, caller))]
pub(crate) async fn get_order(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    wait(&state, &headers, ORDERS).await?;
    let Some(row) = sqlx::query("SELECT * FROM read.orders WHERE order_id = $1")
        .bind(id)
        .fetch_optional(&state.pool)
        .await
        .map_err(db)?
    else {
        return Err(Problem::not_found(
            "order_not_found",
            format!("no order {id}"),
        ));
    };
    let customer_id: Uuid = row.try_get("customer_id").map_err(db)?;
    caller.require_owner_or_admin(customer_id)?;
    let lines = sqlx::query("SELECT * FROM read.order_lines WHERE order_id = $1 ORDER BY line_no")
        .bind(id)
        .fetch_all(&state.pool)
        .await
        .map_err(db)?;
    let view = order_view(&row, &lines).map_err(db)?;
    cached(&headers, &view, PRIVATE_CACHE)
}

fn order_view(row: &PgRow, lines: &[PgRow]) -> Result<OrderView, sqlx::Error> {
    let currency: String = row.try_get("currency")?;
    let money = |amount: i64| MoneyDto::new(amount, &currency);
    Ok(OrderView {
        id: row.try_get("order_id")?,
        customer_id: row.try_get("customer_id")?,
        status: row.try_get("status")?,
        lines: lines
            .iter()
            .map(|l| {
                Ok(OrderLineView {
                    sku: l.try_get("sku")?,
                    name: l.try_get("name")?,
                    quantity: l.try_get("quantity")?,
                    shipped_quantity: l.try_get("shipped_quantity")?,
                    unit_price: money(l.try_get("unit_price_amount")?),
                    line_total: money(l.try_get("line_total_amount")?),
                })
            })
            .collect::<Result<_, sqlx::Error>>()?,
        total: money(row.try_get("total_amount")?),
        payment: PaymentView {
            state: row.try_get("payment_state")?,
            payment_id: row.try_get("payment_id")?,
            decline_reason: row.try_get("payment_decline")?,
            captured: money(row.try_get("captured_amount")?),
            refunded: money(row.try_get("refunded_amount")?),
        },
        shipment: ShipmentView {
            state: row.try_get("shipment_state")?,
            tracking_numbers: row.try_get("tracking_numbers")?,
        },
        cancellation_reason: row.try_get("cancellation_reason")?,
        placed_at: row.try_get("placed_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}
