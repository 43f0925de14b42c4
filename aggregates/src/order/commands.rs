use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::money::Money;
use crate::payment::DeclineReason;
use crate::values::{
    CustomerId, OrderId, PaymentId, PaymentMethodToken, PostalAddress, ProductName, Quantity, Sku,
    TrackingNumber,
};

/// A line of a new order, with the price captured by the cart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewOrderLine {
    /// The SKU (one line per SKU).
    pub sku: Sku,
    /// Captured name.
    pub name: ProductName,
    /// Units ordered.
    pub quantity: Quantity,
    /// Captured unit price.
    pub unit_price: Money,
}

/// Units of one line in a shipment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipmentLine {
    /// The line's SKU.
    pub sku: Sku,
    /// Units shipped now.
    pub quantity: Quantity,
}

/// Why an order was cancelled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancellationReason {
    /// A line could not be reserved.
    OutOfStock {
        /// The first line found short.
        sku: Sku,
    },
    /// The payment was declined.
    PaymentDeclined {
        /// The gateway's reason.
        reason: DeclineReason,
    },
    /// The stock reservation expired before the payment was authorized.
    ReservationExpired,
    /// The customer asked.
    CustomerRequest,
    /// The merchant decided.
    MerchantRequest,
}

/// Commands of the [`super::Order`] aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderCommand {
    /// Places an order; the checkout process then reserves stock and takes payment.
    PlaceOrder {
        /// The order id (aggregate id).
        order_id: OrderId,
        /// Who ordered.
        customer_id: CustomerId,
        /// Lines with captured prices, one per SKU.
        lines: Vec<NewOrderLine>,
        /// Where to ship.
        shipping_address: PostalAddress,
        /// The payment provider's token for the customer's payment method.
        payment_method: PaymentMethodToken,
        /// When the order was placed (time comes in commands; aggregates read no clock).
        placed_at: DateTime<Utc>,
    },
    /// Records that a line's stock is reserved.
    RecordStockReserved {
        /// The line.
        sku: Sku,
    },
    /// Records that a line's stock could not be reserved.
    RecordStockRejected {
        /// The line.
        sku: Sku,
        /// Units wanted.
        requested: Quantity,
        /// Units that were available.
        available: u64,
    },
    /// Records that the payment for the order total was authorized.
    RecordPaymentAuthorized {
        /// The payment.
        payment_id: PaymentId,
        /// Authorized amount; must equal the order total.
        amount: Money,
    },
    /// Records that the payment was declined.
    RecordPaymentDeclined {
        /// The payment.
        payment_id: PaymentId,
        /// Why.
        reason: DeclineReason,
    },
    /// Records that the authorized amount was captured.
    RecordPaymentCaptured {
        /// The payment.
        payment_id: PaymentId,
        /// Captured amount; must equal the authorized amount.
        amount: Money,
    },
    /// Confirms an order whose stock is reserved and payment authorized.
    ConfirmOrder,
    /// Cancels an order that has not shipped (a confirmed one only once its capture is
    /// recorded).
    CancelOrder {
        /// Why.
        reason: CancellationReason,
    },
    /// Ships some or all of the remaining units.
    ShipOrder {
        /// Carrier tracking number.
        tracking_number: TrackingNumber,
        /// Units per line in this shipment.
        lines: Vec<ShipmentLine>,
    },
    /// Records delivery of a fully shipped order.
    DeliverOrder,
    /// Refunds part or all of the captured, not yet refunded amount (confirmed, shipping,
    /// shipped, delivered, or cancelled after capture).
    RefundOrder {
        /// Amount to refund.
        amount: Money,
    },
}
