//! Orders: the customer's own history; a guest's order with its order token; the admin sees
//! all, and lists returns by status.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use mercato_web::{Caller, OrderAccess, Path, Problem, Query};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgRow;
use sqlx::Row;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{db, decode_cursor, encode_cursor, page_limit, MoneyDto, ReadHeaders};
use crate::consistency::{wait, Source};
use crate::respond::{cached, PERSONAL_DATA, PRIVATE_CACHE};
use crate::AppState;

const ORDERS: Source = Source::Tables(&["orders"]);

/// An order line and what became of its units.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OrderLineView {
    sku: String,
    name: String,
    /// Units ordered.
    quantity: i32,
    shipped_quantity: i32,
    delivered_quantity: i32,
    /// Units cancelled before they shipped.
    cancelled_quantity: i32,
    /// Units returned and received back.
    returned_quantity: i32,
    /// Units whose price was paid back (cancelled or returned, once refunded).
    refunded_quantity: i32,
    unit_price: MoneyDto,
    /// `unit_price * quantity`.
    line_total: MoneyDto,
    /// The promotions' share of the line.
    discount: MoneyDto,
    /// Tax on the line (inside `total` when prices include tax, added to it otherwise).
    tax: MoneyDto,
    /// What the customer pays for the line.
    total: MoneyDto,
}

/// A promotion applied to the order, as stored.
#[derive(Debug, Deserialize)]
struct StoredDiscount {
    promotion_id: Uuid,
    name: String,
    code: Option<String>,
    amount: i64,
    free_shipping: bool,
}

/// A promotion applied to the order.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DiscountView {
    promotion_id: Uuid,
    name: String,
    /// The coupon code; `null` for an automatic promotion.
    code: Option<String>,
    /// What it took off.
    amount: MoneyDto,
    /// It made shipping free.
    free_shipping: bool,
}

/// The shipping charged, as stored.
#[derive(Debug, Deserialize)]
struct StoredShipping {
    method_id: String,
    name: String,
    amount: i64,
    discount: i64,
    tax: i64,
    total: i64,
}

/// The shipping charged.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OrderShippingView {
    method_id: String,
    name: String,
    /// What the method charged.
    amount: MoneyDto,
    /// Taken off by a free-shipping promotion.
    discount: MoneyDto,
    /// Tax on the shipping.
    tax: MoneyDto,
    /// What the customer pays for shipping (part of `total`).
    total: MoneyDto,
}

/// The tax charged.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TaxView {
    /// Sum of the lines' tax, each rounded for its line.
    amount: MoneyDto,
    /// The rate in percent (`"19"`, `"8.875"`); `null` for an order placed before tax.
    rate: Option<String>,
    /// Whether the prices included it.
    prices_include_tax: Option<bool>,
}

/// Payment progress.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PaymentView {
    /// `pending`, `authorized`, `declined`, `voided`, `captured`, `partially_refunded`,
    /// `refunded`.
    state: String,
    payment_id: Option<Uuid>,
    decline_reason: Option<String>,
    captured: MoneyDto,
    refunded: MoneyDto,
    /// Refunds requested and not made yet.
    refund_pending: MoneyDto,
}

/// Shipment progress.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ShipmentView {
    /// `not_shipped`, `partially_shipped`, `shipped`, `delivered` (over the units to
    /// fulfil: ordered minus cancelled).
    state: String,
    tracking_numbers: Vec<String>,
    /// When the last unit to fulfil arrived.
    delivered_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Units of one line.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct UnitsView {
    sku: String,
    quantity: u32,
}

/// A parcel.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct ParcelView {
    tracking_number: String,
    carrier: Option<String>,
    shipped_at: chrono::DateTime<chrono::Utc>,
    delivered_at: Option<chrono::DateTime<chrono::Utc>>,
    lines: Vec<UnitsView>,
}

/// A refund as stored on the order.
#[derive(Debug, Deserialize)]
struct StoredRefund {
    refund_id: Option<Uuid>,
    amount: i64,
    #[serde(default)]
    tax: Option<i64>,
    reason: String,
    return_id: Option<Uuid>,
    status: String,
    lines: Vec<UnitsView>,
    requested_at: chrono::DateTime<chrono::Utc>,
    completed_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A refund.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RefundView {
    refund_id: Option<Uuid>,
    amount: MoneyDto,
    /// The tax inside `amount`; `null` for an order without tax and for a merchant's refund
    /// of an amount.
    tax: Option<MoneyDto>,
    /// `cancellation`, `return` or `merchant_request`.
    reason: String,
    return_id: Option<Uuid>,
    /// `requested`, `refunded` or `failed`.
    status: String,
    /// The units it pays back.
    lines: Vec<UnitsView>,
    requested_at: chrono::DateTime<chrono::Utc>,
    completed_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A line of a return.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct ReturnLineView {
    sku: String,
    /// Units announced.
    quantity: u32,
    /// Units that arrived.
    received: u32,
    /// Units put back on hand.
    restocked: u32,
}

/// A return.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ReturnView {
    return_id: Uuid,
    order_id: Uuid,
    /// `requested`, `received` (its refund is being made) or `refunded`.
    status: String,
    reason: String,
    lines: Vec<ReturnLineView>,
    warehouse: Option<String>,
    refund_id: Option<Uuid>,
    refund: Option<MoneyDto>,
    requested_at: chrono::DateTime<chrono::Utc>,
    received_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// An order.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OrderView {
    id: Uuid,
    /// `null` for a guest's order.
    customer_id: Option<Uuid>,
    guest: bool,
    status: String,
    lines: Vec<OrderLineView>,
    /// The lines at list prices.
    subtotal: MoneyDto,
    /// The promotions applied, each with what it took off.
    discounts: Vec<DiscountView>,
    /// Sum of the discounts.
    discount_total: MoneyDto,
    /// The tax charged (on the goods and the shipping).
    tax: TaxView,
    /// The shipping chosen; `null` when the shop charges none.
    shipping: Option<OrderShippingView>,
    /// What the customer pays: subtotal less discounts, plus shipping, plus tax when prices
    /// exclude it.
    total: MoneyDto,
    payment: PaymentView,
    shipment: ShipmentView,
    shipments: Vec<ParcelView>,
    returns: Vec<ReturnView>,
    refunds: Vec<RefundView>,
    /// Why it was cancelled (`{"out_of_stock": {"sku": ...}}`, `"customer_request"`, ...).
    #[schema(value_type = Option<Object>)]
    cancellation_reason: Option<serde_json::Value>,
    /// Where it ships (ISO 3166-1 alpha-2); kept when the personal data is erased.
    ship_to_country: Option<String>,
    /// The shipping address (`recipient`, `line1`, `line2`, `city`, `postal_code`,
    /// `country`); `null` once erased.
    #[schema(value_type = Option<Object>)]
    shipping_address: Option<serde_json::Value>,
    /// A guest's email; `null` for a customer's order (see the customer) and once erased.
    contact_email: Option<String>,
    /// The buyer's personal data on this order was erased.
    personal_data_erased: bool,
    placed_at: chrono::DateTime<chrono::Utc>,
    updated_at: chrono::DateTime<chrono::Utc>,
}

/// An order in a list.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OrderSummary {
    id: Uuid,
    customer_id: Option<Uuid>,
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

/// What an order's `status` may be (the order aggregate's states a client can see).
const ORDER_STATUSES: [&str; 12] = [
    "placed",
    "stock_rejected",
    "awaiting_payment",
    "payment_declined",
    "payment_authorized",
    "confirmed",
    "partially_shipped",
    "shipped",
    "delivered",
    "partially_refunded",
    "refunded",
    "cancelled",
];

/// Paging of the order list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct OrderListParams {
    /// Admin only: one customer's orders.
    customer_id: Option<Uuid>,
    /// Only orders in this status (`confirmed`, `shipped`, ...).
    #[param(
        pattern = "^(placed|stock_rejected|awaiting_payment|payment_declined|payment_authorized|confirmed|partially_shipped|shipped|delivered|partially_refunded|refunded|cancelled)$"
    )]
    status: Option<String>,
    /// 1-100, default 20.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// From the previous page's `next_cursor`.
    cursor: Option<String>,
}

/// The caller's orders (the admin: everyone's, or one customer's), newest first.
#[utoipa::path(get, path = "/v1/orders", tag = "orders", params(OrderListParams, ReadHeaders), security(("bearer" = [])),
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
    let after = params
        .cursor
        .as_deref()
        .map(parse_page_cursor)
        .transpose()?;
    if let Some(status) = params.status.as_deref() {
        let known = ORDER_STATUSES.contains(&status);
        if !known {
            return Err(Problem::bad_request(
                "invalid_status",
                format!("status is one of {}", ORDER_STATUSES.join(", ")),
            ));
        }
    }
    wait(&state, &headers, ORDERS).await?;
    let rows = sqlx::query(
        "SELECT order_id, customer_id, status, currency, total_amount, placed_at FROM read.orders \
         WHERE ($1::uuid IS NULL OR customer_id = $1) \
           AND ($2::timestamptz IS NULL OR (placed_at, order_id) < ($2, $3)) \
           AND ($5::text IS NULL OR status = $5) \
         ORDER BY placed_at DESC, order_id DESC LIMIT $4",
    )
    .bind(customer)
    .bind(after.map(|a| a.0))
    .bind(after.map(|a| a.1))
    .bind(limit + 1)
    .bind(params.status.as_deref())
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
    let next_cursor = has_more
        .then(|| items.last().map(|o| page_cursor(o.placed_at, o.id)))
        .flatten();
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

/// One order: its customer, a guest with the order's `Mercato-Order-Token`, or the admin.
#[utoipa::path(get, path = "/v1/orders/{id}", tag = "orders",
    params(("id" = Uuid, Path), ("Mercato-Order-Token" = Option<String>, Header), ReadHeaders), security((), ("bearer" = [])),
    responses((status = 200, body = OrderView), (status = 304), (status = 401), (status = 403), (status = 404), (status = 503)))]
#[tracing::instrument(skip(state, headers, access))]
pub(crate) async fn get_order(
    State(state): State<AppState>,
    headers: HeaderMap,
    access: OrderAccess,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    if access.caller.is_none() && access.order_token.is_none() {
        // Whether the order exists is nobody's business without a credential.
        return Err(access.party(&state.keys, id, None).unwrap_err());
    }
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
    let customer_id: Option<Uuid> = row.try_get("customer_id").map_err(db)?;
    access.party(&state.keys, id, customer_id)?;
    let lines = sqlx::query("SELECT * FROM read.order_lines WHERE order_id = $1 ORDER BY line_no")
        .bind(id)
        .fetch_all(&state.pool)
        .await
        .map_err(db)?;
    let returns = sqlx::query(
        "SELECT * FROM read.order_returns WHERE order_id = $1 ORDER BY requested_at, return_id",
    )
    .bind(id)
    .fetch_all(&state.pool)
    .await
    .map_err(db)?;
    let view = order_view(&row, &lines, &returns).map_err(db)?;
    cached(&headers, &view, PERSONAL_DATA)
}

/// Paging and filter of the returns list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ReturnListParams {
    /// `requested`, `received` or `refunded`; all when omitted.
    #[param(pattern = "^(requested|received|refunded)$")]
    status: Option<String>,
    /// 1-100, default 20.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// From the previous page's `next_cursor`.
    cursor: Option<String>,
}

/// A page of returns, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ReturnPage {
    items: Vec<ReturnView>,
    next_cursor: Option<String>,
    has_more: bool,
}

/// Returns of every order, newest first, optionally of one status (admin).
#[utoipa::path(get, path = "/v1/admin/returns", tag = "admin", params(ReturnListParams, ReadHeaders), security(("bearer" = [])),
    responses((status = 200, body = ReturnPage), (status = 400), (status = 401), (status = 403), (status = 503)))]
#[tracing::instrument(skip_all)]
pub(crate) async fn list_returns(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
    Query(params): Query<ReturnListParams>,
) -> Result<Response, Problem> {
    caller.require_admin()?;
    let limit = page_limit(params.limit)?;
    if let Some(status) = params.status.as_deref() {
        if !matches!(status, "requested" | "received" | "refunded") {
            return Err(Problem::bad_request(
                "invalid_status",
                "status must be requested, received or refunded",
            ));
        }
    }
    let after = params
        .cursor
        .as_deref()
        .map(parse_page_cursor)
        .transpose()?;
    wait(&state, &headers, ORDERS).await?;
    let rows = sqlx::query(
        "SELECT * FROM read.order_returns \
         WHERE ($1::text IS NULL OR status = $1) \
           AND ($2::timestamptz IS NULL OR (requested_at, return_id) < ($2, $3)) \
         ORDER BY requested_at DESC, return_id DESC LIMIT $4",
    )
    .bind(params.status.as_deref())
    .bind(after.map(|a| a.0))
    .bind(after.map(|a| a.1))
    .bind(limit + 1)
    .fetch_all(&state.pool)
    .await
    .map_err(db)?;
    let has_more = rows.len() as i64 > limit;
    let items: Vec<ReturnView> = rows
        .iter()
        .take(limit as usize)
        .map(return_view)
        .collect::<Result<_, sqlx::Error>>()
        .map_err(db)?;
    let next_cursor = has_more
        .then(|| {
            items
                .last()
                .map(|r| page_cursor(r.requested_at, r.return_id))
        })
        .flatten();
    cached(
        &headers,
        &ReturnPage {
            items,
            next_cursor,
            has_more,
        },
        PRIVATE_CACHE,
    )
}

/// The cursor after an item of a newest-first list.
fn page_cursor(at: chrono::DateTime<chrono::Utc>, id: Uuid) -> String {
    encode_cursor(&format!(
        "{}|{id}",
        at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    ))
}

/// The item a cursor points after.
fn parse_page_cursor(cursor: &str) -> Result<(chrono::DateTime<chrono::Utc>, Uuid), Problem> {
    let raw = decode_cursor(cursor)?;
    let invalid = || Problem::bad_request("invalid_cursor", "cursor is not one this API returned");
    let (at, id) = raw.split_once('|').ok_or_else(invalid)?;
    let at = chrono::DateTime::parse_from_rfc3339(at).map_err(|_| invalid())?;
    Ok((
        at.with_timezone(&chrono::Utc),
        Uuid::parse_str(id).map_err(|_| invalid())?,
    ))
}

fn return_view(r: &PgRow) -> Result<ReturnView, sqlx::Error> {
    let currency: String = r.try_get("currency")?;
    let lines: serde_json::Value = r.try_get("lines")?;
    Ok(ReturnView {
        return_id: r.try_get("return_id")?,
        order_id: r.try_get("order_id")?,
        status: r.try_get("status")?,
        reason: r.try_get("reason")?,
        lines: json_column("lines", lines)?,
        warehouse: r.try_get("warehouse")?,
        refund_id: r.try_get("refund_id")?,
        refund: r
            .try_get::<Option<i64>, _>("refund_amount")?
            .map(|a| MoneyDto::new(a, &currency)),
        requested_at: r.try_get("requested_at")?,
        received_at: r.try_get("received_at")?,
    })
}

/// A JSON column as its view type.
fn json_column<T: serde::de::DeserializeOwned>(
    name: &str,
    value: serde_json::Value,
) -> Result<T, sqlx::Error> {
    serde_json::from_value(value).map_err(|e| sqlx::Error::ColumnDecode {
        index: name.to_owned(),
        source: Box::new(e),
    })
}

fn order_view(row: &PgRow, lines: &[PgRow], returns: &[PgRow]) -> Result<OrderView, sqlx::Error> {
    let currency: String = row.try_get("currency")?;
    let money = |amount: i64| MoneyDto::new(amount, &currency);
    let refunds: Vec<StoredRefund> = json_column("refunds", row.try_get("refunds")?)?;
    Ok(OrderView {
        id: row.try_get("order_id")?,
        customer_id: row.try_get("customer_id")?,
        guest: row.try_get("guest")?,
        status: row.try_get("status")?,
        lines: lines
            .iter()
            .map(|l| {
                Ok(OrderLineView {
                    sku: l.try_get("sku")?,
                    name: l.try_get("name")?,
                    quantity: l.try_get("quantity")?,
                    shipped_quantity: l.try_get("shipped_quantity")?,
                    delivered_quantity: l.try_get("delivered_quantity")?,
                    cancelled_quantity: l.try_get("cancelled_quantity")?,
                    returned_quantity: l.try_get("returned_quantity")?,
                    refunded_quantity: l.try_get("refunded_quantity")?,
                    unit_price: money(l.try_get("unit_price_amount")?),
                    line_total: money(l.try_get("line_total_amount")?),
                    discount: money(l.try_get("discount_amount")?),
                    tax: money(l.try_get("tax_amount")?),
                    total: money(
                        l.try_get::<Option<i64>, _>("total_amount")?
                            .map_or_else(|| l.try_get("line_total_amount"), Ok)?,
                    ),
                })
            })
            .collect::<Result<_, sqlx::Error>>()?,
        subtotal: money(
            row.try_get::<Option<i64>, _>("subtotal_amount")?
                .map_or_else(|| row.try_get("total_amount"), Ok)?,
        ),
        discounts: json_column::<Vec<StoredDiscount>>("discounts", row.try_get("discounts")?)?
            .into_iter()
            .map(|d| DiscountView {
                promotion_id: d.promotion_id,
                name: d.name,
                code: d.code,
                amount: money(d.amount),
                free_shipping: d.free_shipping,
            })
            .collect(),
        discount_total: money(row.try_get("discount_amount")?),
        tax: TaxView {
            amount: money(row.try_get("tax_amount")?),
            rate: row.try_get("tax_rate")?,
            prices_include_tax: row.try_get("prices_include_tax")?,
        },
        shipping: row
            .try_get::<Option<serde_json::Value>, _>("shipping")?
            .map(|v| json_column::<StoredShipping>("shipping", v))
            .transpose()?
            .map(|s| OrderShippingView {
                method_id: s.method_id,
                name: s.name,
                amount: money(s.amount),
                discount: money(s.discount),
                tax: money(s.tax),
                total: money(s.total),
            }),
        total: money(row.try_get("total_amount")?),
        payment: PaymentView {
            state: row.try_get("payment_state")?,
            payment_id: row.try_get("payment_id")?,
            decline_reason: row.try_get("payment_decline")?,
            captured: money(row.try_get("captured_amount")?),
            refunded: money(row.try_get("refunded_amount")?),
            refund_pending: money(row.try_get("refund_pending_amount")?),
        },
        shipment: ShipmentView {
            state: row.try_get("shipment_state")?,
            tracking_numbers: row.try_get("tracking_numbers")?,
            delivered_at: row.try_get("delivered_at")?,
        },
        shipments: json_column("shipments", row.try_get("shipments")?)?,
        returns: returns.iter().map(return_view).collect::<Result<_, _>>()?,
        refunds: refunds
            .into_iter()
            .map(|r| RefundView {
                refund_id: r.refund_id,
                amount: money(r.amount),
                tax: r.tax.map(money),
                reason: r.reason,
                return_id: r.return_id,
                status: r.status,
                lines: r.lines,
                requested_at: r.requested_at,
                completed_at: r.completed_at,
            })
            .collect(),
        cancellation_reason: row.try_get("cancellation_reason")?,
        ship_to_country: row.try_get("ship_to_country")?,
        shipping_address: row.try_get("shipping_address")?,
        contact_email: row.try_get("contact_email")?,
        personal_data_erased: row.try_get("personal_data_erased")?,
        placed_at: row.try_get("placed_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}
