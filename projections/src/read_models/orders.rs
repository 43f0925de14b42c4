//! Orders: the order view (status, lines, totals, payment and shipment state, cancellation
//! reason) and each customer's order history (`orders` by `customer_id`).

use mercato_aggregates::order::{OrderEvent, OrderStatus};
use mercato_event_store::RecordedEvent;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::decode::{decode, tag};
use crate::error::ProjectionError;
use crate::runtime::Projection;

/// Order view and history.
pub struct Orders;

#[async_trait::async_trait]
impl Projection for Orders {
    fn name(&self) -> &'static str {
        "orders"
    }
    fn version(&self) -> i32 {
        1
    }
    fn aggregate_types(&self) -> &'static [&'static str] {
        &["Order"]
    }
    fn event_types(&self) -> &'static [&'static str] {
        &[
            "OrderPlaced",
            "OrderLineReserved",
            "OrderLineRejected",
            "OrderPaymentAuthorized",
            "OrderPaymentDeclined",
            "OrderConfirmed",
            "OrderPaymentCaptured",
            "OrderCancelled",
            "OrderShipped",
            "OrderDelivered",
            "OrderRefunded",
        ]
    }
    fn tables(&self) -> &'static [&'static str] {
        &["orders", "order_lines"]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        let order_id =
            Uuid::parse_str(&event.aggregate_id).map_err(|e| ProjectionError::Invalid {
                event_id: event.event_id,
                reason: format!("order id: {e}"),
            })?;
        let at = event.recorded_at;
        let update = |sql: &'static str| sqlx::query(sql).bind(order_id).bind(at);
        match decode::<OrderEvent>(event)? {
            OrderEvent::OrderPlaced {
                customer_id,
                lines,
                total,
                placed_at,
                ..
            } => {
                sqlx::query(
                    "INSERT INTO orders (order_id, customer_id, status, currency, total_amount, placed_at, updated_at) \
                     VALUES ($1, $2, 'placed', $3, $4, $5, $6) ON CONFLICT (order_id) DO NOTHING",
                )
                .bind(order_id)
                .bind(customer_id.as_uuid())
                .bind(total.currency().as_str())
                .bind(total.amount())
                .bind(placed_at)
                .bind(at)
                .execute(&mut *conn)
                .await?;
                for (i, line) in lines.iter().enumerate() {
                    sqlx::query(
                        "INSERT INTO order_lines (order_id, line_no, sku, name, quantity, unit_price_amount, line_total_amount) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                    )
                    .bind(order_id)
                    .bind(i as i32 + 1)
                    .bind(line.sku.as_str())
                    .bind(line.name.as_str())
                    .bind(line.quantity.get() as i32)
                    .bind(line.unit_price.amount())
                    .bind(line.line_total.amount())
                    .execute(&mut *conn)
                    .await?;
                }
            }
            OrderEvent::OrderLineReserved { status, .. } => {
                update("UPDATE orders SET status = $3, updated_at = $2 WHERE order_id = $1")
                    .bind(tag(&status))
                    .execute(conn)
                    .await?;
            }
            OrderEvent::OrderLineRejected { .. } => {
                update("UPDATE orders SET status = 'stock_rejected', updated_at = $2 WHERE order_id = $1")
                    .execute(conn)
                    .await?;
            }
            OrderEvent::OrderPaymentAuthorized { payment_id, .. } => {
                update(
                    "UPDATE orders SET status = 'payment_authorized', payment_state = 'authorized', \
                       payment_id = $3, updated_at = $2 WHERE order_id = $1",
                )
                .bind(payment_id.as_uuid())
                .execute(conn)
                .await?;
            }
            OrderEvent::OrderPaymentDeclined { payment_id, reason } => {
                update(
                    "UPDATE orders SET status = 'payment_declined', payment_state = 'declined', \
                       payment_id = $3, payment_decline = $4, updated_at = $2 WHERE order_id = $1",
                )
                .bind(payment_id.as_uuid())
                .bind(tag(&reason))
                .execute(conn)
                .await?;
            }
            OrderEvent::OrderConfirmed => {
                update(
                    "UPDATE orders SET status = 'confirmed', updated_at = $2 WHERE order_id = $1",
                )
                .execute(conn)
                .await?;
            }
            OrderEvent::OrderPaymentCaptured { amount, .. } => {
                update(
                    "UPDATE orders SET payment_state = CASE WHEN refunded_amount > 0 THEN payment_state ELSE 'captured' END, \
                       captured_amount = $3, updated_at = $2 WHERE order_id = $1",
                )
                .bind(amount.amount())
                .execute(conn)
                .await?;
            }
            OrderEvent::OrderCancelled { reason } => {
                update(
                    "UPDATE orders SET status = 'cancelled', cancellation_reason = $3, updated_at = $2 WHERE order_id = $1",
                )
                .bind(serde_json::to_value(&reason).unwrap_or_default())
                .execute(conn)
                .await?;
            }
            OrderEvent::OrderShipped {
                tracking_number,
                lines,
                status,
                ..
            } => {
                for line in &lines {
                    sqlx::query(
                        "UPDATE order_lines SET shipped_quantity = shipped_quantity + $3 WHERE order_id = $1 AND sku = $2",
                    )
                    .bind(order_id)
                    .bind(line.sku.as_str())
                    .bind(line.quantity.get() as i32)
                    .execute(&mut *conn)
                    .await?;
                }
                let shipment = if status == OrderStatus::Shipped {
                    "shipped"
                } else {
                    "partially_shipped"
                };
                update(
                    "UPDATE orders SET status = $3, shipment_state = $4, \
                       tracking_numbers = array_append(tracking_numbers, $5), updated_at = $2 WHERE order_id = $1",
                )
                .bind(tag(&status))
                .bind(shipment)
                .bind(tracking_number.as_str())
                .execute(conn)
                .await?;
            }
            OrderEvent::OrderDelivered => {
                update(
                    "UPDATE orders SET status = 'delivered', shipment_state = 'delivered', updated_at = $2 WHERE order_id = $1",
                )
                .execute(conn)
                .await?;
            }
            OrderEvent::OrderRefunded {
                total_refunded,
                status,
                ..
            } => {
                update(
                    "UPDATE orders SET status = $3, refunded_amount = $4, \
                       payment_state = CASE WHEN $4 >= captured_amount THEN 'refunded' ELSE 'partially_refunded' END, \
                       updated_at = $2 WHERE order_id = $1",
                )
                .bind(tag(&status))
                .bind(total_refunded.amount())
                .execute(conn)
                .await?;
            }
        }
        Ok(())
    }
}
