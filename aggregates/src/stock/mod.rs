//! Stock: quantities of one SKU per warehouse, and the reservations orders hold on them.
//!
//! Aggregate id: the SKU string. Invariant: in every warehouse, on hand minus reserved is
//! never negative.

mod aggregate;
mod commands;
mod errors;
mod events;
#[cfg(test)]
mod tests;

pub use aggregate::{Reservation, Stock};
pub use commands::{AdjustmentReason, StockCommand};
pub use errors::StockError;
pub use events::{Allocation, StockEvent, WarehouseLevel};
