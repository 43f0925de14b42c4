use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::money::Money;
use crate::order::{CancellationReason, OrderCommand, OrderEvent};
use crate::payment::{DeclineReason, PaymentCommand, PaymentEvent};
use crate::stock::{StockCommand, StockEvent};
use crate::values::{OrderId, PaymentId, PaymentMethodToken, Quantity, Sku};

/// A line the checkout must reserve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutLine {
    /// The SKU.
    pub sku: Sku,
    /// Units to reserve.
    pub quantity: Quantity,
}

/// The events the checkout reacts to, reduced to what it needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckoutEvent {
    /// `OrderPlaced` from the order.
    OrderPlaced {
        /// The order.
        order_id: OrderId,
        /// Its lines.
        lines: Vec<CheckoutLine>,
        /// Amount to authorize.
        total: Money,
        /// Token to pay with.
        payment_method: PaymentMethodToken,
        /// When it was placed (the payment deadline counts from here).
        placed_at: DateTime<Utc>,
    },
    /// `OrderConfirmed` from the order: the checkout captures only after it.
    OrderConfirmed {
        /// The order.
        order_id: OrderId,
    },
    /// `OrderCancelled` from the order, whoever sent the `CancelOrder` (the checkout
    /// itself, the customer or the merchant).
    OrderCancelled {
        /// The order.
        order_id: OrderId,
        /// The reason the order recorded.
        reason: CancellationReason,
    },
    /// `StockReserved` from a stock record.
    StockReserved {
        /// The order.
        order_id: OrderId,
        /// The line.
        sku: Sku,
    },
    /// `StockReservationRejected` from a stock record.
    StockRejected {
        /// The order.
        order_id: OrderId,
        /// The line.
        sku: Sku,
        /// Units wanted.
        requested: Quantity,
        /// Units that were available.
        available: u64,
    },
    /// `StockReservationReleased` from a stock record.
    StockReleased {
        /// The order.
        order_id: OrderId,
        /// The line.
        sku: Sku,
    },
    /// `PaymentAuthorized` from the payment.
    PaymentAuthorized {
        /// The order.
        order_id: OrderId,
        /// The payment.
        payment_id: PaymentId,
        /// Authorized amount.
        amount: Money,
    },
    /// `PaymentDeclined` from the payment.
    PaymentDeclined {
        /// The order.
        order_id: OrderId,
        /// The payment.
        payment_id: PaymentId,
        /// Why.
        reason: DeclineReason,
    },
    /// `PaymentCaptured` from the payment.
    PaymentCaptured {
        /// The order.
        order_id: OrderId,
        /// The payment.
        payment_id: PaymentId,
        /// Captured amount.
        amount: Money,
    },
    /// `PaymentVoided` from the payment.
    PaymentVoided {
        /// The order.
        order_id: OrderId,
        /// The payment.
        payment_id: PaymentId,
    },
    /// A timer tick: the deadline in [`super::CheckoutProcess::deadline`] has passed.
    PaymentDeadlinePassed {
        /// The order.
        order_id: OrderId,
    },
}

impl CheckoutEvent {
    /// The order the event concerns (the process instance key).
    pub fn order_id(&self) -> OrderId {
        match self {
            CheckoutEvent::OrderPlaced { order_id, .. }
            | CheckoutEvent::OrderConfirmed { order_id }
            | CheckoutEvent::OrderCancelled { order_id, .. }
            | CheckoutEvent::StockReserved { order_id, .. }
            | CheckoutEvent::StockRejected { order_id, .. }
            | CheckoutEvent::StockReleased { order_id, .. }
            | CheckoutEvent::PaymentAuthorized { order_id, .. }
            | CheckoutEvent::PaymentDeclined { order_id, .. }
            | CheckoutEvent::PaymentCaptured { order_id, .. }
            | CheckoutEvent::PaymentVoided { order_id, .. }
            | CheckoutEvent::PaymentDeadlinePassed { order_id } => *order_id,
        }
    }

    /// The checkout view of an event of order `order_id` (the aggregate id), if the
    /// checkout reacts to it.
    pub fn from_order_event(order_id: OrderId, event: &OrderEvent) -> Option<Self> {
        match event {
            OrderEvent::OrderPlaced {
                order_id,
                lines,
                total,
                payment_method,
                placed_at,
                ..
            } => Some(CheckoutEvent::OrderPlaced {
                order_id: *order_id,
                lines: lines
                    .iter()
                    .map(|line| CheckoutLine {
                        sku: line.sku.clone(),
                        quantity: line.quantity,
                    })
                    .collect(),
                total: *total,
                payment_method: payment_method.clone(),
                placed_at: *placed_at,
            }),
            OrderEvent::OrderConfirmed => Some(CheckoutEvent::OrderConfirmed { order_id }),
            OrderEvent::OrderCancelled { reason } => Some(CheckoutEvent::OrderCancelled {
                order_id,
                reason: reason.clone(),
            }),
            _ => None,
        }
    }

    /// The checkout view of a stock event, if the checkout reacts to it.
    pub fn from_stock_event(event: &StockEvent) -> Option<Self> {
        match event {
            StockEvent::StockReserved { sku, order_id, .. } => Some(CheckoutEvent::StockReserved {
                order_id: *order_id,
                sku: sku.clone(),
            }),
            StockEvent::StockReservationRejected {
                sku,
                order_id,
                requested,
                available,
            } => Some(CheckoutEvent::StockRejected {
                order_id: *order_id,
                sku: sku.clone(),
                requested: *requested,
                available: *available,
            }),
            StockEvent::StockReservationReleased { sku, order_id, .. } => {
                Some(CheckoutEvent::StockReleased {
                    order_id: *order_id,
                    sku: sku.clone(),
                })
            }
            _ => None,
        }
    }

    /// The checkout view of an event of payment `payment_id` (the aggregate id), if the
    /// checkout reacts to it.
    pub fn from_payment_event(payment_id: PaymentId, event: &PaymentEvent) -> Option<Self> {
        let order_id = event.order_id();
        match event {
            PaymentEvent::PaymentAuthorized { amount, .. } => {
                Some(CheckoutEvent::PaymentAuthorized {
                    order_id,
                    payment_id,
                    amount: *amount,
                })
            }
            PaymentEvent::PaymentDeclined { reason, .. } => Some(CheckoutEvent::PaymentDeclined {
                order_id,
                payment_id,
                reason: *reason,
            }),
            PaymentEvent::PaymentCaptured { amount, .. } => Some(CheckoutEvent::PaymentCaptured {
                order_id,
                payment_id,
                amount: *amount,
            }),
            PaymentEvent::PaymentVoided { .. } => Some(CheckoutEvent::PaymentVoided {
                order_id,
                payment_id,
            }),
            PaymentEvent::PaymentRefunded { .. } => None,
        }
    }
}

/// One event handed to the process manager, with the id of the stored event (or timer tick)
/// it came from; command ids are derived from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutInput {
    /// Unique id of the causing event.
    pub event_id: Uuid,
    /// The event.
    pub event: CheckoutEvent,
}

/// A command addressed to one aggregate instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TargetedCommand {
    /// For the stock record of `sku`.
    Stock {
        /// Aggregate id.
        sku: Sku,
        /// The command.
        command: StockCommand,
    },
    /// For the order `order_id`.
    Order {
        /// Aggregate id.
        order_id: OrderId,
        /// The command.
        command: OrderCommand,
    },
    /// For the payment `payment_id`.
    Payment {
        /// Aggregate id.
        payment_id: PaymentId,
        /// The command.
        command: PaymentCommand,
    },
}

impl TargetedCommand {
    /// The target's `Aggregate::TYPE`.
    pub fn aggregate_type(&self) -> &'static str {
        match self {
            TargetedCommand::Stock { .. } => "Stock",
            TargetedCommand::Order { .. } => "Order",
            TargetedCommand::Payment { .. } => "Payment",
        }
    }

    /// The target's aggregate id.
    pub fn aggregate_id(&self) -> String {
        match self {
            TargetedCommand::Stock { sku, .. } => sku.to_string(),
            TargetedCommand::Order { order_id, .. } => order_id.to_string(),
            TargetedCommand::Payment { payment_id, .. } => payment_id.to_string(),
        }
    }
}

/// A command the process manager wants sent, with its deterministic id. Commands for one
/// aggregate must be dispatched in the order they are returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutCommand {
    /// UUID v5 of the causing event id and a discriminator: the same input always yields
    /// the same id, so the runtime can deduplicate.
    pub command_id: Uuid,
    /// What to send where.
    pub command: TargetedCommand,
}
