//! Carts: lines and totals of every cart.

use mercato_aggregates::cart::CartEvent;
use mercato_event_store::RecordedEvent;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::decode::decode;
use crate::error::ProjectionError;
use crate::runtime::Projection;

/// Cart view.
pub struct Carts;

#[async_trait::async_trait]
impl Projection for Carts {
    fn name(&self) -> &'static str {
        "carts"
    }
    fn version(&self) -> i32 {
        1
    }
    fn aggregate_types(&self) -> &'static [&'static str] {
        &["Cart"]
    }
    fn event_types(&self) -> &'static [&'static str] {
        &[
            "CartOpened",
            "CartItemAdded",
            "CartItemQuantityChanged",
            "CartItemRemoved",
            "CartCheckedOut",
        ]
    }
    fn tables(&self) -> &'static [&'static str] {
        &["carts", "cart_lines"]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        let cart_id =
            Uuid::parse_str(&event.aggregate_id).map_err(|e| ProjectionError::Invalid {
                event_id: event.event_id,
                reason: format!("cart id: {e}"),
            })?;
        let at = event.recorded_at;
        match decode::<CartEvent>(event)? {
            CartEvent::CartOpened {
                customer_id,
                currency,
                ..
            } => {
                sqlx::query(
                    "INSERT INTO carts (cart_id, customer_id, currency, status, total_amount, opened_at, updated_at) \
                     VALUES ($1, $2, $3, 'open', 0, $4, $4) ON CONFLICT (cart_id) DO NOTHING",
                )
                .bind(cart_id)
                .bind(customer_id.map(|c| c.as_uuid()))
                .bind(currency.as_str())
                .bind(at)
                .execute(conn)
                .await?;
            }
            CartEvent::CartItemAdded {
                sku,
                name,
                unit_price,
                line_quantity,
                line_total,
                cart_total,
                ..
            } => {
                sqlx::query(
                    "INSERT INTO cart_lines (cart_id, sku, name, quantity, unit_price_amount, line_total_amount, added_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (cart_id, sku) DO UPDATE SET name = EXCLUDED.name, quantity = EXCLUDED.quantity, \
                       unit_price_amount = EXCLUDED.unit_price_amount, line_total_amount = EXCLUDED.line_total_amount",
                )
                .bind(cart_id)
                .bind(sku.as_str())
                .bind(name.as_str())
                .bind(line_quantity.get() as i32)
                .bind(unit_price.amount())
                .bind(line_total.amount())
                .bind(at)
                .execute(&mut *conn)
                .await?;
                set_total(conn, cart_id, cart_total.amount(), at).await?;
            }
            CartEvent::CartItemQuantityChanged {
                sku,
                quantity,
                line_total,
                cart_total,
            } => {
                sqlx::query(
                    "UPDATE cart_lines SET quantity = $3, line_total_amount = $4 WHERE cart_id = $1 AND sku = $2",
                )
                .bind(cart_id)
                .bind(sku.as_str())
                .bind(quantity.get() as i32)
                .bind(line_total.amount())
                .execute(&mut *conn)
                .await?;
                set_total(conn, cart_id, cart_total.amount(), at).await?;
            }
            CartEvent::CartItemRemoved { sku, cart_total } => {
                sqlx::query("DELETE FROM cart_lines WHERE cart_id = $1 AND sku = $2")
                    .bind(cart_id)
                    .bind(sku.as_str())
                    .execute(&mut *conn)
                    .await?;
                set_total(conn, cart_id, cart_total.amount(), at).await?;
            }
            CartEvent::CartCheckedOut {
                order_id,
                customer_id,
                total,
                ..
            } => {
                sqlx::query(
                    "UPDATE carts SET status = 'checked_out', order_id = $2, customer_id = $3, \
                       total_amount = $4, updated_at = $5 WHERE cart_id = $1",
                )
                .bind(cart_id)
                .bind(order_id.as_uuid())
                .bind(customer_id.as_uuid())
                .bind(total.amount())
                .bind(at)
                .execute(conn)
                .await?;
            }
        }
        Ok(())
    }
}

async fn set_total(
    conn: &mut PgConnection,
    cart_id: Uuid,
    total: i64,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), ProjectionError> {
    sqlx::query("UPDATE carts SET total_amount = $2, updated_at = $3 WHERE cart_id = $1")
        .bind(cart_id)
        .bind(total)
        .bind(at)
        .execute(conn)
        .await?;
    Ok(())
}
