use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::money::Money;
use crate::payment::DeclineReason;
use crate::pricing::Priced;
use crate::values::{
    Carrier, CustomerId, Email, OrderId, PaymentId, PaymentMethodToken, PostalAddress, ProductName,
    Quantity, RefundId, ReturnId, ReturnReason, Sku, TrackingNumber, WarehouseId,
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

/// Units of one line: shipped, delivered, cancelled or returned together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineUnits {
    /// The line's SKU.
    pub sku: Sku,
    /// Units.
    pub quantity: Quantity,
}

/// Units of a return that reached the warehouse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedLine {
    /// The line's SKU.
    pub sku: Sku,
    /// Units received.
    pub quantity: Quantity,
    /// Whether they go back on hand (sellable); otherwise they are written off.
    pub restock: bool,
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
    /// Places an order; the order process then reserves stock and takes payment.
    PlaceOrder {
        /// The order id (aggregate id).
        order_id: OrderId,
        /// Who ordered; `None` for a guest, who must give `guest_email`.
        customer_id: Option<CustomerId>,
        /// A guest's email (order updates go there); `None` for a customer's order.
        guest_email: Option<Email>,
        /// Lines with captured prices, one per SKU.
        lines: Vec<NewOrderLine>,
        /// The checkout's pricing of those lines (promotions, tax and shipping); `None`: list
        /// prices, no tax, no shipping. Boxed: it is most of the command's size.
        pricing: Option<Box<Priced>>,
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
    /// Records that the authorized amount was captured. On an order that owes money back
    /// (cancelled, or units cancelled or returned before the capture), it also requests the
    /// refund of what is owed.
    RecordPaymentCaptured {
        /// The payment.
        payment_id: PaymentId,
        /// Captured amount; must equal the authorized amount.
        amount: Money,
    },
    /// Records that the authorization was released without capture.
    RecordPaymentVoided {
        /// The payment.
        payment_id: PaymentId,
    },
    /// Confirms an order whose stock is reserved and payment authorized.
    ConfirmOrder,
    /// Cancels what has not shipped: the whole order before any shipment, the unshipped rest
    /// after a partial one. Captured money for the cancelled units is refunded.
    CancelOrder {
        /// Why.
        reason: CancellationReason,
    },
    /// Ships some or all of the remaining units.
    ShipOrder {
        /// Carrier tracking number (unique per order).
        tracking_number: TrackingNumber,
        /// The carrier, if known.
        carrier: Option<Carrier>,
        /// Units per line in this shipment.
        lines: Vec<LineUnits>,
        /// When the parcel left.
        shipped_at: DateTime<Utc>,
    },
    /// Records the delivery of one shipment (`tracking_number`) or of every shipment not yet
    /// delivered.
    DeliverOrder {
        /// The shipment delivered; `None`: all undelivered shipments.
        tracking_number: Option<TrackingNumber>,
        /// When it arrived.
        delivered_at: DateTime<Utc>,
    },
    /// The customer asks to send delivered units back.
    RequestReturn {
        /// The new return's id.
        return_id: ReturnId,
        /// Units per line to return.
        lines: Vec<LineUnits>,
        /// Why.
        reason: ReturnReason,
        /// When asked (the return window is checked against it).
        requested_at: DateTime<Utc>,
        /// Days after a line's delivery within which it may be returned.
        window_days: u32,
    },
    /// The merchant received a return's units (some or all of those announced); their value
    /// is refunded.
    ReceiveReturn {
        /// The return.
        return_id: ReturnId,
        /// Where the units arrived.
        warehouse: WarehouseId,
        /// Units received per line, and whether each goes back on hand.
        lines: Vec<ReceivedLine>,
        /// When they arrived.
        received_at: DateTime<Utc>,
    },
    /// The merchant refunds an amount of its choice (a goodwill gesture, a price
    /// correction); the order process makes the refund on the payment.
    RequestRefund {
        /// The new refund's id.
        refund_id: RefundId,
        /// Amount to refund (at most captured minus refunded and pending refunds).
        amount: Money,
    },
    /// Records that the payment made a requested refund.
    RecordRefund {
        /// The refund.
        refund_id: RefundId,
        /// Amount refunded; must equal the requested amount.
        amount: Money,
    },
    /// Records that the gateway refused a requested refund.
    RecordRefundFailed {
        /// The refund.
        refund_id: RefundId,
    },
    /// Records the erasure of a guest order's personal data (after its data key was
    /// destroyed). A customer's orders are erased with the customer.
    ErasePersonalData {
        /// When the request was made.
        requested_at: DateTime<Utc>,
    },
}
