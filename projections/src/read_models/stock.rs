//! Stock: availability per warehouse and in total, per SKU.

use mercato_aggregates::stock::{StockEvent, WarehouseLevel};
use mercato_event_store::RecordedEvent;
use sqlx::PgConnection;

use crate::decode::{big, decode};
use crate::error::ProjectionError;
use crate::runtime::Projection;

/// Stock levels as the stock events report them.
pub struct StockLevels;

#[async_trait::async_trait]
impl Projection for StockLevels {
    fn name(&self) -> &'static str {
        "stock"
    }
    fn version(&self) -> i32 {
        1
    }
    fn aggregate_types(&self) -> &'static [&'static str] {
        &["Stock"]
    }
    fn event_types(&self) -> &'static [&'static str] {
        &[
            "StockReceived",
            "StockAdjusted",
            "StockReserved",
            "StockReservationReleased",
            "StockReservationCommitted",
        ]
    }
    fn tables(&self) -> &'static [&'static str] {
        &["stock", "stock_levels"]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        let (levels, total) = match decode::<StockEvent>(event)? {
            StockEvent::StockReceived {
                level,
                total_available,
                ..
            }
            | StockEvent::StockAdjusted {
                level,
                total_available,
                ..
            } => (vec![level], total_available),
            StockEvent::StockReserved {
                levels,
                total_available,
                ..
            }
            | StockEvent::StockReservationReleased {
                levels,
                total_available,
                ..
            }
            | StockEvent::StockReservationCommitted {
                levels,
                total_available,
                ..
            } => (levels, total_available),
            StockEvent::StockReservationRejected { .. } => return Ok(()),
        };
        let sku = &event.aggregate_id;
        sqlx::query(
            "INSERT INTO stock (sku, total_available, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (sku) DO UPDATE SET total_available = EXCLUDED.total_available, updated_at = EXCLUDED.updated_at",
        )
        .bind(sku)
        .bind(big(event, total)?)
        .bind(event.recorded_at)
        .execute(&mut *conn)
        .await?;
        for WarehouseLevel {
            warehouse,
            on_hand,
            reserved,
            available,
        } in levels
        {
            sqlx::query(
                "INSERT INTO stock_levels (sku, warehouse, on_hand, reserved, available) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (sku, warehouse) DO UPDATE SET on_hand = EXCLUDED.on_hand, \
                   reserved = EXCLUDED.reserved, available = EXCLUDED.available",
            )
            .bind(sku)
            .bind(warehouse.as_str())
            .bind(big(event, on_hand)?)
            .bind(big(event, reserved)?)
            .bind(big(event, available)?)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}
