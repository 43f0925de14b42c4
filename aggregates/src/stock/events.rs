use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use super::AdjustmentReason;
use crate::values::{OrderId, Quantity, ReturnId, Sku, WarehouseId};

/// Units of a reservation taken from one warehouse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    /// The warehouse.
    pub warehouse: WarehouseId,
    /// Units held there.
    pub quantity: u32,
}

/// A warehouse's quantities after an event (for read models; never recomputed there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarehouseLevel {
    /// The warehouse.
    pub warehouse: WarehouseId,
    /// Units physically there.
    pub on_hand: u64,
    /// Units held for orders.
    pub reserved: u64,
    /// On hand minus reserved.
    pub available: u64,
}

/// Events of the [`super::Stock`] aggregate. Each carries the levels of the warehouses it
/// touched and the SKU's total available quantity after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StockEvent {
    /// Units were received into a warehouse.
    StockReceived {
        /// The SKU.
        sku: Sku,
        /// Units received.
        quantity: Quantity,
        /// The warehouse's quantities after.
        level: WarehouseLevel,
        /// Available across all warehouses after.
        total_available: u64,
    },
    /// A warehouse's on-hand count was corrected.
    StockAdjusted {
        /// The SKU.
        sku: Sku,
        /// Units added (positive) or removed (negative).
        delta: i64,
        /// Why.
        reason: AdjustmentReason,
        /// The warehouse's quantities after.
        level: WarehouseLevel,
        /// Available across all warehouses after.
        total_available: u64,
    },
    /// Units were reserved for an order.
    StockReserved {
        /// The SKU.
        sku: Sku,
        /// The order.
        order_id: OrderId,
        /// Units reserved.
        quantity: Quantity,
        /// When the hold lapses unless the order is paid.
        expires_at: DateTime<Utc>,
        /// Where the units are held.
        allocations: Vec<Allocation>,
        /// Quantities of the touched warehouses after.
        levels: Vec<WarehouseLevel>,
        /// Available across all warehouses after.
        total_available: u64,
    },
    /// Not enough units were available to reserve for an order; nothing was held.
    StockReservationRejected {
        /// The SKU.
        sku: Sku,
        /// The order.
        order_id: OrderId,
        /// Units wanted.
        requested: Quantity,
        /// Units available across all warehouses.
        available: u64,
    },
    /// An order's reserved units were given back.
    StockReservationReleased {
        /// The SKU.
        sku: Sku,
        /// The order.
        order_id: OrderId,
        /// Units given back.
        quantity: Quantity,
        /// Where they were held.
        allocations: Vec<Allocation>,
        /// Quantities of the touched warehouses after.
        levels: Vec<WarehouseLevel>,
        /// Available across all warehouses after.
        total_available: u64,
    },
    /// Returned units went back on hand.
    StockRestocked {
        /// The SKU.
        sku: Sku,
        /// The order they came back from.
        order_id: OrderId,
        /// The return.
        return_id: ReturnId,
        /// Units put back.
        quantity: Quantity,
        /// The warehouse's quantities after.
        level: WarehouseLevel,
        /// Available across all warehouses after.
        total_available: u64,
    },
    /// Reserved units of an order left stock (they shipped): all it held, or part of them
    /// (the reservation keeps the rest).
    StockReservationCommitted {
        /// The SKU.
        sku: Sku,
        /// The order.
        order_id: OrderId,
        /// Units taken out.
        quantity: Quantity,
        /// Where they were taken from.
        allocations: Vec<Allocation>,
        /// Quantities of the touched warehouses after.
        levels: Vec<WarehouseLevel>,
        /// Available across all warehouses after.
        total_available: u64,
    },
}

impl StockEvent {
    /// The SKU the event belongs to.
    pub fn sku(&self) -> &Sku {
        match self {
            StockEvent::StockReceived { sku, .. }
            | StockEvent::StockAdjusted { sku, .. }
            | StockEvent::StockReserved { sku, .. }
            | StockEvent::StockReservationRejected { sku, .. }
            | StockEvent::StockReservationReleased { sku, .. }
            | StockEvent::StockReservationCommitted { sku, .. }
            | StockEvent::StockRestocked { sku, .. } => sku,
        }
    }
}

impl DomainEvent for StockEvent {
    fn event_type(&self) -> String {
        match self {
            StockEvent::StockReceived { .. } => "StockReceived",
            StockEvent::StockAdjusted { .. } => "StockAdjusted",
            StockEvent::StockReserved { .. } => "StockReserved",
            StockEvent::StockReservationRejected { .. } => "StockReservationRejected",
            StockEvent::StockReservationReleased { .. } => "StockReservationReleased",
            StockEvent::StockReservationCommitted { .. } => "StockReservationCommitted",
            StockEvent::StockRestocked { .. } => "StockRestocked",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}
