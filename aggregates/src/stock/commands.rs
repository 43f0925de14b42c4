use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::values::{OrderId, Quantity, ReturnId, Sku, WarehouseId};

/// Why stock was adjusted by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdjustmentReason {
    /// Units found damaged.
    Damaged,
    /// Units lost or stolen.
    Lost,
    /// Units found that were not on record.
    Found,
    /// A physical count corrected the record.
    CycleCount,
    /// Customer returns put back on the shelf.
    Returned,
    /// A booking error was corrected.
    Correction,
}

/// Commands of the [`super::Stock`] aggregate. Each carries the SKU, which must match the
/// aggregate's, so the first event of a new stock record knows its SKU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StockCommand {
    /// Books received units into a warehouse (creating the warehouse record if new).
    ReceiveStock {
        /// The SKU (aggregate id).
        sku: Sku,
        /// Receiving warehouse.
        warehouse: WarehouseId,
        /// Units received.
        quantity: Quantity,
    },
    /// Corrects the on-hand count of a known warehouse by a signed, non-zero delta.
    AdjustStock {
        /// The SKU (aggregate id).
        sku: Sku,
        /// The warehouse to correct.
        warehouse: WarehouseId,
        /// Units added (positive) or removed (negative).
        delta: i64,
        /// Why.
        reason: AdjustmentReason,
    },
    /// Reserves units for an order; idempotent per order. Not enough available is a fact
    /// (`StockReservationRejected`), not an error.
    ReserveStock {
        /// The SKU (aggregate id).
        sku: Sku,
        /// The order the units are held for.
        order_id: OrderId,
        /// Units wanted.
        quantity: Quantity,
        /// When the hold lapses unless the order is paid (enforced by the checkout process).
        expires_at: DateTime<Utc>,
    },
    /// Gives an order's reserved units back; a no-op if there is no active reservation.
    ReleaseReservation {
        /// The SKU (aggregate id).
        sku: Sku,
        /// Whose reservation.
        order_id: OrderId,
    },
    /// Takes an order's reserved units out of stock when they ship: `quantity` of them (a
    /// partial shipment), or all it still holds.
    CommitReservation {
        /// The SKU (aggregate id).
        sku: Sku,
        /// Whose reservation.
        order_id: OrderId,
        /// Units shipped; `None`: every unit still held.
        #[serde(default)]
        quantity: Option<Quantity>,
    },
    /// Puts returned units back on hand (creating the warehouse record if new).
    RestockReturn {
        /// The SKU (aggregate id).
        sku: Sku,
        /// Where they arrived.
        warehouse: WarehouseId,
        /// Units put back.
        quantity: Quantity,
        /// The order they were returned from.
        order_id: OrderId,
        /// The return.
        return_id: ReturnId,
    },
}

impl StockCommand {
    /// The SKU the command is addressed to.
    pub fn sku(&self) -> &Sku {
        match self {
            StockCommand::ReceiveStock { sku, .. }
            | StockCommand::AdjustStock { sku, .. }
            | StockCommand::ReserveStock { sku, .. }
            | StockCommand::ReleaseReservation { sku, .. }
            | StockCommand::CommitReservation { sku, .. }
            | StockCommand::RestockReturn { sku, .. } => sku,
        }
    }
}
