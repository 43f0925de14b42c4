//! Order: an explicit state machine from placement through payment, shipment, delivery
//! and refunds.
//!
//! Aggregate id: the order UUID. Every illegal transition is a typed error.

mod aggregate;
mod commands;
mod errors;
mod events;
#[cfg(test)]
mod tests;

pub use aggregate::{LineProgress, Order, OrderStatus};
pub use commands::{CancellationReason, NewOrderLine, OrderCommand, ShipmentLine};
pub use errors::OrderError;
pub use events::{OrderEvent, OrderLine};
