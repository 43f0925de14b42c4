//! What happens to an order after the checkout, as the shop asks for it: cancellations,
//! shipments, deliveries, returns and refunds. Each is one command on the order; the order
//! decides what it means for stock and money (releases, commits, restocks and refunds follow
//! in the order process). See `docs/adr/0011-order-lifecycle.md`.

use chrono::{DateTime, Utc};
use mercato_aggregates::order::{
    CancellationReason, LineUnits, Order, OrderCommand, OrderError, ReceivedLine,
};
use mercato_aggregates::values::{
    Carrier, OrderId, RefundId, ReturnId, ReturnReason, TrackingNumber, WarehouseId,
};
use mercato_aggregates::{DataSubject, ErrorKind};
use mercato_event_store::privacy;
use mercato_event_store::EventStoreError;
use mercato_web::{OrderParty, Problem};
use uuid::Uuid;

use crate::error::{db_problem, privacy_problem, refusal, store_problem};
use crate::exec::{execute, WriteContext, Written};
use crate::stores::Stores;

/// Namespace of return ids derived from the request's write id (a retry requests the same
/// return).
const RETURN_NAMESPACE: Uuid = Uuid::from_u128(0x6d65_7263_6174_6f2d_7265_7475_726e_0001);

/// Namespace of merchant refund ids derived from the request's write id.
const REFUND_NAMESPACE: Uuid = Uuid::from_u128(0x6d65_7263_6174_6f2d_7265_6675_6e64_0001);

/// The order, or 404.
pub(crate) async fn load(stores: &Stores, order_id: Uuid) -> Result<Order, Problem> {
    let (order, _) = stores
        .orders
        .load(&order_id.to_string())
        .await
        .map_err(store_problem)?;
    if order.id().is_none() {
        return Err(refusal(
            ErrorKind::NotFound,
            "order_not_found",
            "no such order",
        ));
    }
    Ok(order)
}

async fn run(
    stores: &Stores,
    order_id: Uuid,
    command: OrderCommand,
    ctx: &WriteContext,
    expected: Option<u64>,
) -> Result<Written, Problem> {
    execute(
        &stores.orders,
        &order_id.to_string(),
        command,
        ctx,
        expected,
    )
    .await
    .map_err(store_problem)
}

/// Cancels what has not shipped, for `party`: the whole order before any shipment, the rest
/// after a partial one; `order_already_shipped` (409) once everything shipped.
pub(crate) async fn cancel(
    stores: &Stores,
    order_id: Uuid,
    party: OrderParty,
    ctx: &WriteContext,
    expected: Option<u64>,
) -> Result<Written, Problem> {
    let reason = match party {
        OrderParty::Merchant => CancellationReason::MerchantRequest,
        OrderParty::Customer(_) | OrderParty::Guest => CancellationReason::CustomerRequest,
    };
    run(
        stores,
        order_id,
        OrderCommand::CancelOrder { reason },
        ctx,
        expected,
    )
    .await
}

/// Erases a guest order's personal data: its data key first (from then on every copy of
/// the email and address reads as erased), its pending checkout, then the fact on the
/// order. Safe to repeat. A customer's order refuses (`customer_order`): erasing the
/// customer erases it.
pub(crate) async fn erase_personal_data(
    stores: &Stores,
    order_id: Uuid,
    ctx: &WriteContext,
) -> Result<Written, Problem> {
    let order = load(stores, order_id).await?;
    if order.customer_id().is_some() {
        return Err(store_problem(EventStoreError::Domain(
            OrderError::CustomerOrder,
        )));
    }
    let subject = DataSubject::GuestOrder(OrderId::new(order_id));
    privacy::shred(&stores.pool, &subject.to_string())
        .await
        .map_err(privacy_problem)?;
    sqlx::query("DELETE FROM command.pending_checkouts WHERE order_id = $1")
        .bind(order_id)
        .execute(&stores.pool)
        .await
        .map_err(db_problem)?;
    let command = OrderCommand::ErasePersonalData {
        requested_at: Utc::now(),
    };
    run(stores, order_id, command, ctx, None).await
}

/// A parcel to record.
pub(crate) struct Shipment {
    pub tracking_number: TrackingNumber,
    pub carrier: Option<Carrier>,
    pub lines: Vec<LineUnits>,
    pub shipped_at: DateTime<Utc>,
}

/// Records a parcel; the order process commits its units' reservations.
pub(crate) async fn ship(
    stores: &Stores,
    order_id: Uuid,
    shipment: Shipment,
    ctx: &WriteContext,
    expected: Option<u64>,
) -> Result<Written, Problem> {
    let command = OrderCommand::ShipOrder {
        tracking_number: shipment.tracking_number,
        carrier: shipment.carrier,
        lines: shipment.lines,
        shipped_at: shipment.shipped_at,
    };
    run(stores, order_id, command, ctx, expected).await
}

/// Records the arrival of one parcel, or of every parcel not delivered yet.
pub(crate) async fn deliver(
    stores: &Stores,
    order_id: Uuid,
    tracking_number: Option<TrackingNumber>,
    delivered_at: DateTime<Utc>,
    ctx: &WriteContext,
    expected: Option<u64>,
) -> Result<Written, Problem> {
    let command = OrderCommand::DeliverOrder {
        tracking_number,
        delivered_at,
    };
    run(stores, order_id, command, ctx, expected).await
}

/// Requests a refund of `amount` (the merchant's choice); the order process makes it on the
/// payment and records it on the order. Returns the refund's id (derived from the request,
/// so a retry names the same refund).
pub(crate) async fn refund(
    stores: &Stores,
    order_id: Uuid,
    amount: mercato_aggregates::Money,
    ctx: &WriteContext,
    expected: Option<u64>,
) -> Result<(Written, RefundId), Problem> {
    let refund_id = RefundId::new(Uuid::new_v5(&REFUND_NAMESPACE, ctx.write_id.as_bytes()));
    let command = OrderCommand::RequestRefund { refund_id, amount };
    let written = run(stores, order_id, command, ctx, expected).await?;
    Ok((written, refund_id))
}

/// A return the customer announces.
pub(crate) struct ReturnRequest {
    pub lines: Vec<LineUnits>,
    pub reason: ReturnReason,
    pub window_days: u32,
}

/// Requests a return of delivered units (within the window); returns its id.
pub(crate) async fn request_return(
    stores: &Stores,
    order_id: Uuid,
    request: ReturnRequest,
    ctx: &WriteContext,
) -> Result<(Written, ReturnId), Problem> {
    let return_id = ReturnId::new(Uuid::new_v5(&RETURN_NAMESPACE, ctx.write_id.as_bytes()));
    // The receiving request names only the return: remember its order first.
    sqlx::query(
        "INSERT INTO command.order_returns (return_id, order_id) VALUES ($1, $2) \
         ON CONFLICT (return_id) DO NOTHING",
    )
    .bind(return_id.as_uuid())
    .bind(order_id)
    .execute(&stores.pool)
    .await
    .map_err(db_problem)?;
    let command = OrderCommand::RequestReturn {
        return_id,
        lines: request.lines,
        reason: request.reason,
        requested_at: Utc::now(),
        window_days: request.window_days,
    };
    let written = run(stores, order_id, command, ctx, None).await?;
    Ok((written, return_id))
}

/// The order a return belongs to, or 404.
pub(crate) async fn order_of_return(stores: &Stores, return_id: Uuid) -> Result<OrderId, Problem> {
    let order_id: Option<Uuid> =
        sqlx::query_scalar("SELECT order_id FROM command.order_returns WHERE return_id = $1")
            .bind(return_id)
            .fetch_optional(&stores.pool)
            .await
            .map_err(db_problem)?;
    order_id
        .map(OrderId::new)
        .ok_or_else(|| refusal(ErrorKind::NotFound, "return_not_found", "no such return"))
}

/// Records the units of a return that arrived; the order requests their refund and the order
/// process puts the ones marked `restock` back on hand in `warehouse`.
pub(crate) async fn receive_return(
    stores: &Stores,
    return_id: Uuid,
    warehouse: WarehouseId,
    lines: Vec<ReceivedLine>,
    ctx: &WriteContext,
    expected: Option<u64>,
) -> Result<(Written, OrderId), Problem> {
    let order_id = order_of_return(stores, return_id).await?;
    let command = OrderCommand::ReceiveReturn {
        return_id: ReturnId::new(return_id),
        warehouse,
        lines,
        received_at: Utc::now(),
    };
    let written = run(stores, order_id.as_uuid(), command, ctx, expected).await?;
    Ok((written, order_id))
}
