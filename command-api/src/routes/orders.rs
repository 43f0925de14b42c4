//! Cancellation (owner or admin), shipments and refunds (admin).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use mercato_aggregates::order_process::OrderProcess;
use mercato_aggregates::order::{CancellationReason, Order, OrderCommand, ShipmentLine};
use mercato_aggregates::payment::PaymentCommand;
use mercato_aggregates::values::{OrderId, Quantity, Sku, TrackingNumber};
use mercato_web::{Caller, Json, Path, Problem};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{context, parse_uuid, written, IfMatch, MoneyDto, WriteResult};
use crate::api::AppState;
use crate::error::{domain_problem, store_problem, Fields};
use crate::exec::execute;
use crate::idempotency::RequestContext;

/// A shipment.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Ship {
    tracking_number: String,
    lines: Vec<ShipLine>,
}

/// Units of one line shipped.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ShipLine {
    sku: String,
    quantity: u32,
}

/// A refund.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Refund {
    amount: MoneyDto,
}

/// A refund recorded on the order and made on the payment.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Refunded {
    payment_id: String,
    #[serde(flatten)]
    write: WriteResult,
}

async fn load(state: &AppState, id: Uuid) -> Result<Order, Problem> {
    let (order, _) = state
        .stores()
        .orders
        .load(&id.to_string())
        .await
        .map_err(store_problem)?;
    if order.id().is_none() {
        return Err(domain_problem("order_not_found", "no such order"));
    }
    Ok(order)
}

/// Cancels an order (its customer or the admin). The checkout releases stock and voids an
/// authorization; an order whose capture is pending answers 409 `payment_capture_pending`.
#[utoipa::path(post, path = "/v1/orders/{id}/cancel", tag = "orders",
    params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = WriteResult), (status = 401, body = mercato_web::problem::ProblemBody),
              (status = 403, body = mercato_web::problem::ProblemBody), (status = 404, body = mercato_web::problem::ProblemBody),
              (status = 409, body = mercato_web::problem::ProblemBody)))]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Extension(req): Extension<RequestContext>,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
) -> Result<Response, Problem> {
    let id = parse_uuid("id", &id)?;
    let order = load(&state, id).await?;
    let owner = order.customer_id().map(|c| c.as_uuid()).unwrap_or_default();
    caller.require_owner_or_admin(owner)?;
    let reason = if caller.is_admin() {
        CancellationReason::MerchantRequest
    } else {
        CancellationReason::CustomerRequest
    };
    let stores = state.stores();
    let w = execute(
        &stores.orders,
        &stores.pool,
        &id.to_string(),
        OrderCommand::CancelOrder { reason },
        &context(&req, Some(&caller)),
        expected,
    )
    .await
    .map_err(store_problem)?;
    Ok(written(StatusCode::OK, WriteResult::from(&w), &w))
}

/// Records a (possibly partial) shipment (admin).
#[utoipa::path(post, path = "/v1/orders/{id}/shipments", tag = "orders", request_body = Ship,
    params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = WriteResult), (status = 401, body = mercato_web::problem::ProblemBody),
              (status = 403, body = mercato_web::problem::ProblemBody), (status = 404, body = mercato_web::problem::ProblemBody),
              (status = 409, body = mercato_web::problem::ProblemBody), (status = 422, body = mercato_web::problem::ProblemBody)))]
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
    let tracking = f.check(
        "tracking_number",
        TrackingNumber::new(&body.tracking_number),
    );
    let lines: Vec<ShipmentLine> = body
        .lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let sku = f.check(&format!("lines[{i}].sku"), Sku::new(&l.sku));
            let quantity = f.check(&format!("lines[{i}].quantity"), Quantity::new(l.quantity));
            Some(ShipmentLine {
                sku: sku?,
                quantity: quantity?,
            })
        })
        .collect();
    f.finish()?;
    load(&state, id).await?;
    let command = OrderCommand::ShipOrder {
        tracking_number: tracking.unwrap(),
        lines,
    };
    let stores = state.stores();
    let w = execute(
        &stores.orders,
        &stores.pool,
        &id.to_string(),
        command,
        &context(&req, Some(&caller)),
        expected,
    )
    .await
    .map_err(store_problem)?;
    Ok(written(StatusCode::OK, WriteResult::from(&w), &w))
}

/// Refunds captured money (admin): recorded on the order first (which checks the amount),
/// then made on the payment.
#[utoipa::path(post, path = "/v1/orders/{id}/refunds", tag = "orders", request_body = Refund,
    params(("id" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = Refunded), (status = 401, body = mercato_web::problem::ProblemBody),
              (status = 403, body = mercato_web::problem::ProblemBody), (status = 404, body = mercato_web::problem::ProblemBody),
              (status = 409, body = mercato_web::problem::ProblemBody), (status = 422, body = mercato_web::problem::ProblemBody)))]
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
    let amount = body.amount.check("amount", &mut f);
    f.finish()?;
    let amount = amount.unwrap();
    load(&state, id).await?;
    let stores = state.stores();
    let ctx = context(&req, Some(&caller));
    let w = execute(
        &stores.orders,
        &stores.pool,
        &id.to_string(),
        OrderCommand::RefundOrder { amount },
        &ctx,
        expected,
    )
    .await
    .map_err(store_problem)?;
    let payment_id = OrderProcess::payment_id_for(OrderId::new(id));
    execute(
        &stores.payments,
        &stores.pool,
        &payment_id.to_string(),
        PaymentCommand::RefundPayment { amount },
        &ctx,
        None,
    )
    .await
    .map_err(store_problem)?;
    Ok(written(
        StatusCode::OK,
        Refunded {
            payment_id: payment_id.to_string(),
            write: WriteResult::from(&w),
        },
        &w,
    ))
}
