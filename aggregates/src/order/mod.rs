//! Order: an explicit state machine from placement through payment, shipment, delivery,
//! cancellation, returns and refunds, keeping the order's units and money exact.
//!
//! Aggregate id: the order UUID. Every illegal transition is a typed error.

mod aggregate;
mod commands;
mod decide;
mod errors;
mod events;
#[cfg(test)]
mod tests;

pub use aggregate::{
    LineProgress, Order, OrderStatus, OwedRefund, Refund, RefundState, Return, Shipment,
};
pub use commands::{CancellationReason, LineUnits, NewOrderLine, OrderCommand, ReceivedLine};
pub use errors::OrderError;
pub use events::{OrderEvent, OrderLine, RefundLine, RefundReason};
