//! Stock: availability per warehouse and in total, per SKU.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use mercato_aggregates::stock::{StockEvent, WarehouseLevel};
use mercato_event_store::RecordedEvent;
use serde::Serialize;
use sqlx::PgConnection;

use super::rows;
use crate::decode::{big, decode};
use crate::error::ProjectionError;
use crate::projection::Projection;

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
            "StockRestocked",
        ]
    }
    fn tables(&self) -> &'static [&'static str] {
        &["stock", "stock_levels"]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[&RecordedEvent],
    ) -> Result<(), ProjectionError> {
        // Every stock event carries the levels it touched and the total after it: the last
        // event of a SKU (and of a warehouse) in the batch has the values to store.
        let mut totals: HashMap<&str, StockRow> = HashMap::new();
        let mut warehouses: HashMap<(&str, String), LevelRow> = HashMap::new();
        for event in events {
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
                }
                | StockEvent::StockRestocked {
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
                StockEvent::StockReservationRejected { .. } => continue,
            };
            let sku = event.aggregate_id.as_str();
            totals.insert(
                sku,
                StockRow {
                    sku: sku.to_owned(),
                    total_available: big(event, total)?,
                    updated_at: event.recorded_at,
                },
            );
            for WarehouseLevel {
                warehouse,
                on_hand,
                reserved,
                available,
            } in levels
            {
                let warehouse = warehouse.as_str().to_owned();
                warehouses.insert(
                    (sku, warehouse.clone()),
                    LevelRow {
                        sku: sku.to_owned(),
                        warehouse,
                        on_hand: big(event, on_hand)?,
                        reserved: big(event, reserved)?,
                        available: big(event, available)?,
                    },
                );
            }
        }
        let totals: Vec<StockRow> = totals.into_values().collect();
        rows::upsert(conn, "stock", &["sku"], &totals).await?;
        let levels: Vec<LevelRow> = warehouses.into_values().collect();
        rows::upsert(conn, "stock_levels", &["sku", "warehouse"], &levels).await
    }
}

/// A row of `stock`.
#[derive(Debug, Serialize)]
struct StockRow {
    sku: String,
    total_available: i64,
    updated_at: DateTime<Utc>,
}

/// A row of `stock_levels`.
#[derive(Debug, Serialize)]
struct LevelRow {
    sku: String,
    warehouse: String,
    on_hand: i64,
    reserved: i64,
    available: i64,
}
