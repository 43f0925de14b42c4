use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::money::Money;
use crate::order::{CancellationReason, LineUnits, OrderCommand, OrderEvent};
use crate::payment::{DeclineReason, PaymentCommand, PaymentEvent};
use crate::promotion::PromotionCommand;
use crate::stock::{StockCommand, StockEvent};
use crate::values::{
    OrderId, PaymentId, PaymentMethodToken, PromotionId, Quantity, RefundId, ReturnId, Sku,
    WarehouseId,
};

/// Units of one line the process acts on (reserve, commit, restock).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessLine {
    /// The SKU.
    pub sku: Sku,
    /// Units.
    pub quantity: Quantity,
}

impl From<&LineUnits> for ProcessLine {
    fn from(units: &LineUnits) -> Self {
        ProcessLine {
            sku: units.sku.clone(),
            quantity: units.quantity,
        }
    }
}

/// The events the order process reacts to, reduced to what it needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProcessEvent {
    /// `OrderPlaced` from the order.
    OrderPlaced {
        /// The order.
        order_id: OrderId,
        /// Its lines.
        lines: Vec<ProcessLine>,
        /// Amount to authorize.
        total: Money,
        /// Token to pay with.
        payment_method: PaymentMethodToken,
        /// When it was placed (the payment deadline counts from here).
        placed_at: DateTime<Utc>,
        /// The promotions applied: a cancellation gives their uses back.
        #[serde(default)]
        promotions: Vec<PromotionId>,
    },
    /// `OrderConfirmed` from the order: the process captures only after it.
    OrderConfirmed {
        /// The order.
        order_id: OrderId,
    },
    /// `OrderCancelled` from the order, whoever sent the `CancelOrder` (the process
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
    /// A timer tick: the deadline in [`super::OrderProcess::deadline`] has passed.
    PaymentDeadlinePassed {
        /// The order.
        order_id: OrderId,
    },
    /// `OrderShipped`: the shipped units' reservations are committed.
    OrderShipped {
        /// The order.
        order_id: OrderId,
        /// Units shipped per line.
        lines: Vec<ProcessLine>,
    },
    /// `OrderRemainderCancelled`: the cancelled lines' reservations are released.
    OrderRemainderCancelled {
        /// The order.
        order_id: OrderId,
        /// The lines with cancelled units.
        skus: Vec<Sku>,
    },
    /// `OrderReturnReceived`: units marked for restocking go back on hand.
    ReturnReceived {
        /// The order.
        order_id: OrderId,
        /// The return.
        return_id: ReturnId,
        /// Where they arrived.
        warehouse: WarehouseId,
        /// Units to put back on hand per line.
        restock: Vec<ProcessLine>,
    },
    /// `OrderRefundRequested`: the refund is made on the payment.
    RefundRequested {
        /// The order.
        order_id: OrderId,
        /// The refund.
        refund_id: RefundId,
        /// Its amount.
        amount: Money,
    },
    /// `PaymentRefunded` of a refund the order requested.
    PaymentRefunded {
        /// The order.
        order_id: OrderId,
        /// The payment.
        payment_id: PaymentId,
        /// The refund.
        refund_id: RefundId,
        /// Amount refunded.
        amount: Money,
        /// All refunds of the payment so far.
        total_refunded: Money,
    },
    /// `PaymentRefundFailed`: the gateway refused a refund.
    PaymentRefundFailed {
        /// The order.
        order_id: OrderId,
        /// The payment.
        payment_id: PaymentId,
        /// The refund.
        refund_id: RefundId,
    },
}

impl ProcessEvent {
    /// The order the event concerns (the process instance key).
    pub fn order_id(&self) -> OrderId {
        match self {
            ProcessEvent::OrderPlaced { order_id, .. }
            | ProcessEvent::OrderConfirmed { order_id }
            | ProcessEvent::OrderCancelled { order_id, .. }
            | ProcessEvent::StockReserved { order_id, .. }
            | ProcessEvent::StockRejected { order_id, .. }
            | ProcessEvent::StockReleased { order_id, .. }
            | ProcessEvent::PaymentAuthorized { order_id, .. }
            | ProcessEvent::PaymentDeclined { order_id, .. }
            | ProcessEvent::PaymentCaptured { order_id, .. }
            | ProcessEvent::PaymentVoided { order_id, .. }
            | ProcessEvent::PaymentDeadlinePassed { order_id }
            | ProcessEvent::OrderShipped { order_id, .. }
            | ProcessEvent::OrderRemainderCancelled { order_id, .. }
            | ProcessEvent::ReturnReceived { order_id, .. }
            | ProcessEvent::RefundRequested { order_id, .. }
            | ProcessEvent::PaymentRefunded { order_id, .. }
            | ProcessEvent::PaymentRefundFailed { order_id, .. } => *order_id,
        }
    }

    /// The process view of an event of order `order_id` (the aggregate id), if the
    /// process reacts to it.
    pub fn from_order_event(order_id: OrderId, event: &OrderEvent) -> Option<Self> {
        match event {
            OrderEvent::OrderPlaced {
                order_id,
                lines,
                total,
                payment_method,
                placed_at,
                discounts,
                ..
            } => Some(ProcessEvent::OrderPlaced {
                order_id: *order_id,
                lines: lines
                    .iter()
                    .map(|line| ProcessLine {
                        sku: line.sku.clone(),
                        quantity: line.quantity,
                    })
                    .collect(),
                total: *total,
                payment_method: payment_method.clone(),
                placed_at: *placed_at,
                promotions: discounts.iter().map(|d| d.promotion_id).collect(),
            }),
            OrderEvent::OrderConfirmed => Some(ProcessEvent::OrderConfirmed { order_id }),
            OrderEvent::OrderCancelled { reason } => Some(ProcessEvent::OrderCancelled {
                order_id,
                reason: reason.clone(),
            }),
            OrderEvent::OrderShipped { lines, .. } => Some(ProcessEvent::OrderShipped {
                order_id,
                lines: lines.iter().map(ProcessLine::from).collect(),
            }),
            OrderEvent::OrderRemainderCancelled { lines, .. } => {
                Some(ProcessEvent::OrderRemainderCancelled {
                    order_id,
                    skus: lines.iter().map(|l| l.sku.clone()).collect(),
                })
            }
            OrderEvent::OrderReturnReceived {
                return_id,
                warehouse,
                lines,
                ..
            } => Some(ProcessEvent::ReturnReceived {
                order_id,
                return_id: *return_id,
                warehouse: warehouse.clone(),
                restock: lines
                    .iter()
                    .filter(|l| l.restock)
                    .map(|l| ProcessLine {
                        sku: l.sku.clone(),
                        quantity: l.quantity,
                    })
                    .collect(),
            }),
            OrderEvent::OrderRefundRequested {
                refund_id, amount, ..
            } => Some(ProcessEvent::RefundRequested {
                order_id,
                refund_id: *refund_id,
                amount: *amount,
            }),
            _ => None,
        }
    }

    /// The process view of a stock event, if the process reacts to it.
    pub fn from_stock_event(event: &StockEvent) -> Option<Self> {
        match event {
            StockEvent::StockReserved { sku, order_id, .. } => Some(ProcessEvent::StockReserved {
                order_id: *order_id,
                sku: sku.clone(),
            }),
            StockEvent::StockReservationRejected {
                sku,
                order_id,
                requested,
                available,
            } => Some(ProcessEvent::StockRejected {
                order_id: *order_id,
                sku: sku.clone(),
                requested: *requested,
                available: *available,
            }),
            StockEvent::StockReservationReleased { sku, order_id, .. } => {
                Some(ProcessEvent::StockReleased {
                    order_id: *order_id,
                    sku: sku.clone(),
                })
            }
            _ => None,
        }
    }

    /// The process view of an event of payment `payment_id` (the aggregate id), if the
    /// process reacts to it.
    pub fn from_payment_event(payment_id: PaymentId, event: &PaymentEvent) -> Option<Self> {
        let order_id = event.order_id();
        match event {
            PaymentEvent::PaymentAuthorized { amount, .. } => {
                Some(ProcessEvent::PaymentAuthorized {
                    order_id,
                    payment_id,
                    amount: *amount,
                })
            }
            PaymentEvent::PaymentDeclined { reason, .. } => Some(ProcessEvent::PaymentDeclined {
                order_id,
                payment_id,
                reason: *reason,
            }),
            PaymentEvent::PaymentCaptured { amount, .. } => Some(ProcessEvent::PaymentCaptured {
                order_id,
                payment_id,
                amount: *amount,
            }),
            PaymentEvent::PaymentVoided { .. } => Some(ProcessEvent::PaymentVoided {
                order_id,
                payment_id,
            }),
            PaymentEvent::PaymentRefunded {
                refund_id: Some(refund_id),
                amount,
                total_refunded,
                ..
            } => Some(ProcessEvent::PaymentRefunded {
                order_id,
                payment_id,
                refund_id: *refund_id,
                amount: *amount,
                total_refunded: *total_refunded,
            }),
            // Made by an admin before refunds were the order's to request; nothing follows.
            PaymentEvent::PaymentRefunded {
                refund_id: None, ..
            } => None,
            PaymentEvent::PaymentRefundFailed { refund_id, .. } => {
                Some(ProcessEvent::PaymentRefundFailed {
                    order_id,
                    payment_id,
                    refund_id: *refund_id,
                })
            }
        }
    }
}

/// One event handed to the process manager, with the id of the stored event (or timer tick)
/// it came from; command ids are derived from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInput {
    /// Unique id of the causing event.
    pub event_id: Uuid,
    /// The event.
    pub event: ProcessEvent,
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
    /// For the promotion `promotion_id`.
    Promotion {
        /// Aggregate id.
        promotion_id: PromotionId,
        /// The command.
        command: PromotionCommand,
    },
}

impl TargetedCommand {
    /// The target's `Aggregate::TYPE`.
    pub fn aggregate_type(&self) -> &'static str {
        match self {
            TargetedCommand::Stock { .. } => "Stock",
            TargetedCommand::Order { .. } => "Order",
            TargetedCommand::Payment { .. } => "Payment",
            TargetedCommand::Promotion { .. } => "Promotion",
        }
    }

    /// The target's aggregate id.
    pub fn aggregate_id(&self) -> String {
        match self {
            TargetedCommand::Stock { sku, .. } => sku.to_string(),
            TargetedCommand::Order { order_id, .. } => order_id.to_string(),
            TargetedCommand::Payment { payment_id, .. } => payment_id.to_string(),
            TargetedCommand::Promotion { promotion_id, .. } => promotion_id.to_string(),
        }
    }
}

/// A command the process manager wants sent, with its deterministic id. Commands for one
/// aggregate must be dispatched in the order they are returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessCommand {
    /// UUID v5 of the causing event id and a discriminator: the same input always yields
    /// the same id, so the runtime can deduplicate.
    pub command_id: Uuid,
    /// What to send where.
    pub command: TargetedCommand,
}
