//! An order's life after the checkout: cancellation (its customer, a guest with the order
//! token, or the admin), shipments, deliveries and refunds (admin), returns (its customer or
//! guest).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use chrono::{DateTime, Utc};
use mercato_aggregates::order::LineUnits;
use mercato_aggregates::values::{Carrier, Quantity, ReturnReason, Sku, TrackingNumber};
use mercato_web::{Caller, Json, OrderAccess, Path, Problem};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    context, optional_json, order_context, parse_uuid, written, IfMatch, MoneyDto, Precondition,
    WriteResult,
};
use crate::error::Fields;
use crate::idempotency::RequestContext;
use crate::services::orders::{self, ReturnRequest, Shipment};
use crate::state::AppState;

/// How far ahead of the server's clock a reported time may be (clock skew between systems).
const CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(5);

/// Units of one line.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LineDto {
    #[schema(value_type = mercato_web::schema::Sku)]
    sku: String,
    #[schema(value_type = mercato_web::schema::Quantity)]
    quantity: u32,
}

/// Checks `lines[i].sku` and `lines[i].quantity` of every line.
pub(crate) fn line_units(lines: &[LineDto], f: &mut Fields) -> Vec<LineUnits> {
    lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let sku = f.check(&format!("lines[{i}].sku"), Sku::new(&l.sku));
            let quantity = f.check(&format!("lines[{i}].quantity"), Quantity::new(l.quantity));
            Some(LineUnits {
                sku: sku?,
                quantity: quantity?,
            })
        })
        .collect()
}

/// A reported time: now when absent, and never in the future.
pub(crate) fn past_time(field: &str, at: Option<DateTime<Utc>>, f: &mut Fields) -> DateTime<Utc> {
    let now = Utc::now();
    match at {
        Some(at) if at > now + CLOCK_SKEW => {
            f.push(
                field,
                "time_in_future",
                format!("{field} cannot be in the future"),
            );
            now
        }
        Some(at) => at,
        None => now,
    }
}

/// A shipment.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Ship {
    /// The carrier's tracking number (unique per order).
    tracking_number: String,
    /// The carrier (`DHL`, `UPS`, ...).
    carrier: Option<String>,
    /// When the parcel left; now when omitted.
    shipped_at: Option<DateTime<Utc>>,
    lines: Vec<LineDto>,
}

/// A delivery.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Deliver {
    /// The parcel that arrived; every parcel not delivered yet when omitted.
    tracking_number: Option<String>,
    /// When it arrived; now when omitted.
    delivered_at: Option<DateTime<Utc>>,
}

/// A refund.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Refund {
    amount: MoneyDto,
}

/// A refund requested: the payment refunds it and the order records it shortly after.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RefundAccepted {
    refund_id: String,
    order_id: String,
    amount: MoneyDto,
    /// `requested`: the order shows `refunded` once the payment has made it.
    status: &'static str,
    #[serde(flatten)]
    write: WriteResult,
}

/// A return request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RequestReturn {
    lines: Vec<LineDto>,
    /// Why (1-500 characters).
    reason: String,
}

/// A return requested.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ReturnCreated {
    return_id: String,
    order_id: String,
    /// `requested`: send the units back; they are refunded when they arrive.
    status: &'static str,
    #[serde(flatten)]
    write: WriteResult,
}

/// Cancels what has not shipped: the whole order before any shipment (stock released, the
/// authorization voided or the capture refunded in full), the unshipped rest after a partial
/// shipment (its value refunded). 409 `order_already_shipped` once everything shipped: use a
/// return. The customer, a guest (with `Mercato-Order-Token`) or the admin.
#[utoipa::path(post, path = "/v1/orders/{id}/cancel", tag = "orders",
    params(("id" = Uuid, Path), ("Mercato-Order-Token" = Option<String>, Header), Precondition), security((), ("bearer" = [])),
    responses((status = 200, body = WriteResult), (status = 401),
              (status = 403), (status = 404),
              (status = 409)))]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    access: OrderAccess,
    Extension(req): Extension<RequestContext>,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
) -> Result<Response, Problem> {
    let id = parse_uuid("id", &id)?;
    let stores = state.stores();
    let order = orders::load(stores, id).await?;
    let owner = order.customer_id().map(|c| c.as_uuid());
    let party = access.party(state.keys(), id, owner)?;
    let ctx = order_context(&req, &access, party, id);
    let w = orders::cancel(stores, id, party, &ctx, expected).await?;
    Ok(written(StatusCode::OK, WriteResult::from(&w), &w))
}

/// Erases a guest order's personal data (admin, on the guest's request): its data key is
/// destroyed, so the email and address read as erased everywhere (the log, JetStream, read
/// models, exports); amounts, lines and the destination country stay. A customer's orders
/// are erased with the customer (`DELETE /v1/customers/{id}`): 409 `customer_order`.
#[utoipa::path(delete, path = "/v1/orders/{id}/personal-data", tag = "orders",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = WriteResult), (status = 401),
              (status = 403), (status = 404),
              (status = 409)))]
pub(crate) async fn erase_personal_data(
    State(state): State<AppState>,
    caller: Caller,
    Extension(req): Extension<RequestContext>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    caller.require_admin()?;
    let id = parse_uuid("id", &id)?;
    let ctx = context(&req, Some(&caller));
    let w = orders::erase_personal_data(state.stores(), id, &ctx).await?;
    Ok(written(StatusCode::OK, WriteResult::from(&w), &w))
}

/// Records a parcel (admin): its units' stock reservations are committed (on hand and
/// reserved fall by the shipped quantity in their warehouses).
#[utoipa::path(post, path = "/v1/orders/{id}/shipments", tag = "orders", request_body = Ship,
    params(("id" = Uuid, Path), Precondition), security(("bearer" = [])),
    responses((status = 200, body = WriteResult), (status = 401),
              (status = 403), (status = 404),
              (status = 409), (status = 422)))]
pub(crate) async fn ship(
    State(state): State<AppState>,
    caller: Caller,
    Extension(req): Extension<RequestContext>,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
    Json(body): Json<Ship>,
) -> Result<Response, Problem> {
    caller.require_admin()?;
    let id = parse_uuid("id", &id)?;
    let mut f = Fields::default();
    let tracking_number = f.check(
        "tracking_number",
        TrackingNumber::new(&body.tracking_number),
    );
    let carrier = match &body.carrier {
        Some(c) if !c.trim().is_empty() => f.check("carrier", Carrier::new(c.trim())),
        _ => None,
    };
    let lines = line_units(&body.lines, &mut f);
    let shipped_at = past_time("shipped_at", body.shipped_at, &mut f);
    f.finish()?;
    let stores = state.stores();
    let shipment = Shipment {
        tracking_number: tracking_number.unwrap(),
        carrier,
        lines,
        shipped_at,
    };
    let ctx = context(&req, Some(&caller));
    let w = orders::ship(stores, id, shipment, &ctx, expected).await?;
    Ok(written(StatusCode::OK, WriteResult::from(&w), &w))
}

/// Records the arrival of one parcel (`tracking_number`) or of every parcel not delivered
/// yet (admin). The order reads `delivered` once every unit to fulfil has arrived.
#[utoipa::path(post, path = "/v1/orders/{id}/deliveries", tag = "orders", request_body(content = Option<Deliver>, description = "optional"),
    params(("id" = Uuid, Path), Precondition), security(("bearer" = [])),
    responses((status = 200, body = WriteResult), (status = 401),
              (status = 403), (status = 404),
              (status = 409), (status = 422)))]
pub(crate) async fn deliver(
    State(state): State<AppState>,
    caller: Caller,
    Extension(req): Extension<RequestContext>,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    caller.require_admin()?;
    let id = parse_uuid("id", &id)?;
    let body: Deliver = optional_json(&headers, &body)?;
    let mut f = Fields::default();
    let tracking_number = match &body.tracking_number {
        Some(t) => f.check("tracking_number", TrackingNumber::new(t)),
        None => None,
    };
    let delivered_at = past_time("delivered_at", body.delivered_at, &mut f);
    f.finish()?;
    let stores = state.stores();
    let ctx = context(&req, Some(&caller));
    let w = orders::deliver(stores, id, tracking_number, delivered_at, &ctx, expected).await?;
    Ok(written(StatusCode::OK, WriteResult::from(&w), &w))
}

/// Refunds an amount of the captured money (admin): requested on the order (which checks it
/// against what was captured and not yet refunded), made on the payment by the order
/// process, and recorded on the order once made. Answers 202.
#[utoipa::path(post, path = "/v1/orders/{id}/refunds", tag = "orders", request_body = Refund,
    params(("id" = Uuid, Path), Precondition), security(("bearer" = [])),
    responses((status = 202, body = RefundAccepted), (status = 401),
              (status = 403), (status = 404),
              (status = 409), (status = 422)))]
pub(crate) async fn refund(
    State(state): State<AppState>,
    caller: Caller,
    Extension(req): Extension<RequestContext>,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
    Json(body): Json<Refund>,
) -> Result<Response, Problem> {
    caller.require_admin()?;
    let id = parse_uuid("id", &id)?;
    let mut f = Fields::default();
    let amount = body
        .amount
        .check("amount", state.config().max_amount, &mut f);
    f.finish()?;
    let amount = amount.unwrap();
    let stores = state.stores();
    let ctx = context(&req, Some(&caller));
    let (w, refund_id) = orders::refund(stores, id, amount, &ctx, expected).await?;
    Ok(written(
        StatusCode::ACCEPTED,
        RefundAccepted {
            refund_id: refund_id.to_string(),
            order_id: id.to_string(),
            amount: body.amount,
            status: "requested",
            write: WriteResult::from(&w),
        },
        &w,
    ))
}

/// Asks to send delivered units back, within the return window after their delivery (the
/// order's customer, a guest with `Mercato-Order-Token`, or the admin). Answers 201 with the
/// return's id; the units are refunded when the merchant receives them.
#[utoipa::path(post, path = "/v1/orders/{id}/returns", tag = "returns", request_body = RequestReturn,
    params(("id" = Uuid, Path), ("Mercato-Order-Token" = Option<String>, Header)), security((), ("bearer" = [])),
    responses((status = 201, body = ReturnCreated), (status = 401),
              (status = 403), (status = 404),
              (status = 409), (status = 422)))]
pub(crate) async fn request_return(
    State(state): State<AppState>,
    access: OrderAccess,
    Extension(req): Extension<RequestContext>,
    Path(id): Path<String>,
    Json(body): Json<RequestReturn>,
) -> Result<Response, Problem> {
    let id = parse_uuid("id", &id)?;
    let mut f = Fields::default();
    let lines = line_units(&body.lines, &mut f);
    let reason = f.check("reason", ReturnReason::new(body.reason.trim()));
    f.finish()?;
    let stores = state.stores();
    let order = orders::load(stores, id).await?;
    let party = access.party(state.keys(), id, order.customer_id().map(|c| c.as_uuid()))?;
    let ctx = order_context(&req, &access, party, id);
    let request = ReturnRequest {
        lines,
        reason: reason.unwrap(),
        window_days: state.config().return_window_days,
    };
    let (w, return_id) = orders::request_return(stores, id, request, &ctx).await?;
    Ok(written(
        StatusCode::CREATED,
        ReturnCreated {
            return_id: return_id.to_string(),
            order_id: id.to_string(),
            status: "requested",
            write: WriteResult::from(&w),
        },
        &w,
    ))
}
