use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use super::{CancellationReason, OrderStatus, ShipmentLine};
use crate::money::Money;
use crate::payment::DeclineReason;
use crate::personal::Personal;
use crate::values::{
    CustomerId, OrderId, PaymentId, PaymentMethodToken, PostalAddress, ProductName, Quantity, Sku,
    TrackingNumber,
};

/// A placed order line with its derived total.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    /// The SKU.
    pub sku: Sku,
    /// Captured name.
    pub name: ProductName,
    /// Units ordered.
    pub quantity: Quantity,
    /// Captured unit price.
    pub unit_price: Money,
    /// `unit_price * quantity`.
    pub line_total: Money,
}

/// Events of the [`super::Order`] aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderEvent {
    /// An order was placed.
    OrderPlaced {
        /// The order.
        order_id: OrderId,
        /// Who ordered.
        customer_id: CustomerId,
        /// Lines with totals.
        lines: Vec<OrderLine>,
        /// Sum of the line totals.
        total: Money,
        /// Where to ship (personal data).
        shipping_address: Personal<PostalAddress>,
        /// The payment provider's token (never a card number).
        payment_method: PaymentMethodToken,
        /// When it was placed.
        placed_at: DateTime<Utc>,
    },
    /// A line's stock was reserved.
    OrderLineReserved {
        /// The line.
        sku: Sku,
        /// Status after: `awaiting_payment` once every line is reserved.
        status: OrderStatus,
    },
    /// A line's stock could not be reserved.
    OrderLineRejected {
        /// The line.
        sku: Sku,
        /// Units wanted.
        requested: Quantity,
        /// Units that were available.
        available: u64,
    },
    /// The payment was authorized.
    OrderPaymentAuthorized {
        /// The payment.
        payment_id: PaymentId,
        /// Authorized amount.
        amount: Money,
    },
    /// The payment was declined.
    OrderPaymentDeclined {
        /// The payment.
        payment_id: PaymentId,
        /// Why.
        reason: DeclineReason,
    },
    /// The order was confirmed.
    OrderConfirmed,
    /// The authorized amount was captured.
    OrderPaymentCaptured {
        /// The payment.
        payment_id: PaymentId,
        /// Captured amount.
        amount: Money,
    },
    /// The order was cancelled.
    OrderCancelled {
        /// Why.
        reason: CancellationReason,
    },
    /// Units were shipped.
    OrderShipped {
        /// Carrier tracking number.
        tracking_number: TrackingNumber,
        /// Units per line in this shipment.
        lines: Vec<ShipmentLine>,
        /// Lines fully shipped by this shipment (their stock reservations can be committed).
        completed_lines: Vec<Sku>,
        /// Status after: `partially_shipped` or `shipped`.
        status: OrderStatus,
    },
    /// The order was delivered.
    OrderDelivered,
    /// Money was refunded.
    OrderRefunded {
        /// Amount refunded now.
        amount: Money,
        /// All refunds so far.
        total_refunded: Money,
        /// Status after: `partially_refunded` or `refunded` for a delivered order, else
        /// unchanged (the refund does not change fulfilment or a cancellation).
        status: OrderStatus,
    },
}

impl DomainEvent for OrderEvent {
    fn event_type(&self) -> String {
        match self {
            OrderEvent::OrderPlaced { .. } => "OrderPlaced",
            OrderEvent::OrderLineReserved { .. } => "OrderLineReserved",
            OrderEvent::OrderLineRejected { .. } => "OrderLineRejected",
            OrderEvent::OrderPaymentAuthorized { .. } => "OrderPaymentAuthorized",
            OrderEvent::OrderPaymentDeclined { .. } => "OrderPaymentDeclined",
            OrderEvent::OrderConfirmed => "OrderConfirmed",
            OrderEvent::OrderPaymentCaptured { .. } => "OrderPaymentCaptured",
            OrderEvent::OrderCancelled { .. } => "OrderCancelled",
            OrderEvent::OrderShipped { .. } => "OrderShipped",
            OrderEvent::OrderDelivered => "OrderDelivered",
            OrderEvent::OrderRefunded { .. } => "OrderRefunded",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}
