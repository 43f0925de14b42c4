use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use super::{CancellationReason, LineUnits, OrderStatus, ReceivedLine};
use crate::money::Money;
use crate::payment::DeclineReason;
use crate::personal::Personal;
use crate::pricing::{AppliedDiscount, PricedShipping, TaxRule};
use crate::values::{
    Carrier, CountryCode, CustomerId, Email, OrderId, PaymentId, PaymentMethodToken, PostalAddress,
    ProductName, Quantity, RefundId, ReturnId, ReturnReason, Sku, TrackingNumber, WarehouseId,
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
    /// The promotions' share of the line (version 2.1; absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discount: Option<Money>,
    /// Tax on the line (version 2.1; absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax: Option<Money>,
    /// What the customer pays for the line: after its discount, with its tax (version 2.1;
    /// absent: `line_total`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<Money>,
}

impl OrderLine {
    /// What the customer pays for this line (refunds of its units are shares of it).
    pub fn paid(&self) -> Money {
        self.total.unwrap_or(self.line_total)
    }
}

/// What a refund gives back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundReason {
    /// Units were cancelled (the whole order, or the unshipped rest).
    Cancellation,
    /// A return was received.
    Return {
        /// The return.
        return_id: ReturnId,
    },
    /// The merchant chose to refund an amount.
    MerchantRequest,
}

/// The part of a refund that pays back units of one line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundLine {
    /// The line's SKU.
    pub sku: Sku,
    /// Units paid back.
    pub quantity: Quantity,
    /// Money for them (their price, less any share a cap on the refund took off).
    pub amount: Money,
    /// The tax inside `amount`: the units' share of the line's tax (absent for a line
    /// without tax, and before version 1.1 of `OrderRefundRequested`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax: Option<Money>,
}

/// Events of the [`super::Order`] aggregate.
// `OrderPlaced` is the large one and happens once per order; boxing it would only make every
// match on it clumsier.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderEvent {
    /// An order was placed. Version 1.1: `customer_id` is `null` for a guest, who gives
    /// `guest_email`. Version 2.0: the email and address name their data subject (sealed in
    /// the store), and `ship_to_country` keeps the destination for accounting when they are
    /// erased; `crate::upcasting` reads older payloads. Version 2.1 adds the pricing
    /// (`subtotal`, `discounts`, `tax`, `tax_rule`, and each line's discount, tax and total);
    /// `total` is then what the customer pays. Older orders read as undiscounted and untaxed.
    OrderPlaced {
        /// The order.
        order_id: OrderId,
        /// Who ordered; `None` for a guest.
        customer_id: Option<CustomerId>,
        /// A guest's email (personal data).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        guest_email: Option<Personal<Email>>,
        /// Lines with totals.
        lines: Vec<OrderLine>,
        /// What the customer pays: the sum of the lines' totals (after discounts, with tax).
        total: Money,
        /// Sum of the lines at list prices (version 2.1).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subtotal: Option<Money>,
        /// The promotions applied (version 2.1).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        discounts: Vec<AppliedDiscount>,
        /// Sum of the lines' tax (version 2.1).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tax: Option<Money>,
        /// The tax rate charged and whether prices included it (version 2.1).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tax_rule: Option<TaxRule>,
        /// The shipping charged, included in `total` (version 2.1).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shipping: Option<PricedShipping>,
        /// Where to ship (personal data).
        shipping_address: Personal<PostalAddress>,
        /// The shipping address's country (not personal data: tax and sales reports).
        ship_to_country: CountryCode,
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
    /// The authorization was released without capture.
    OrderPaymentVoided {
        /// The payment.
        payment_id: PaymentId,
        /// The amount that had been authorized.
        amount: Money,
    },
    /// The whole order was cancelled before any unit shipped.
    OrderCancelled {
        /// Why.
        reason: CancellationReason,
    },
    /// After a partial shipment, the units not shipped were cancelled; the shipped ones go on
    /// to delivery.
    OrderRemainderCancelled {
        /// Why.
        reason: CancellationReason,
        /// Units cancelled per line.
        lines: Vec<LineUnits>,
        /// Their value.
        value: Money,
        /// Status after (`shipped`, or `delivered` when every shipped unit has arrived).
        status: OrderStatus,
    },
    /// Units were shipped (version 1.1 adds the carrier and the time; 1.0 lacks them).
    OrderShipped {
        /// Carrier tracking number.
        tracking_number: TrackingNumber,
        /// The carrier.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        carrier: Option<Carrier>,
        /// When the parcel left.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shipped_at: Option<DateTime<Utc>>,
        /// Units per line in this shipment: their stock reservations are committed.
        lines: Vec<LineUnits>,
        /// Lines fully shipped by this shipment.
        completed_lines: Vec<Sku>,
        /// Status after: `partially_shipped` or `shipped`.
        status: OrderStatus,
    },
    /// Shipped units arrived (version 2.0; a 1.0 event, a unit variant meaning "everything
    /// shipped arrived", is upcast to empty `lines` and `tracking_numbers`).
    OrderDelivered {
        /// The shipments delivered.
        tracking_numbers: Vec<TrackingNumber>,
        /// Units delivered per line; empty only in an upcast 1.0 event, where it means every
        /// shipped unit.
        lines: Vec<LineUnits>,
        /// When they arrived (`None` in an upcast 1.0 event).
        delivered_at: Option<DateTime<Utc>>,
        /// Status after: `delivered` once every unit to fulfil arrived, else unchanged.
        status: OrderStatus,
    },
    /// The customer asked to return delivered units.
    OrderReturnRequested {
        /// The return.
        return_id: ReturnId,
        /// Units per line.
        lines: Vec<LineUnits>,
        /// Why.
        reason: ReturnReason,
        /// When asked.
        requested_at: DateTime<Utc>,
    },
    /// A return's units reached the warehouse; its refund is requested with it (or when the
    /// payment is captured, if it is not yet).
    OrderReturnReceived {
        /// The return.
        return_id: ReturnId,
        /// Where the units arrived.
        warehouse: WarehouseId,
        /// Units received per line, and whether each goes back on hand.
        lines: Vec<ReceivedLine>,
        /// Their value.
        value: Money,
        /// When they arrived.
        received_at: DateTime<Utc>,
    },
    /// A refund was decided; the order process makes it on the payment.
    OrderRefundRequested {
        /// The refund.
        refund_id: RefundId,
        /// Amount to refund.
        amount: Money,
        /// What it pays back.
        reason: RefundReason,
        /// The units it pays back (empty for a merchant's refund of an amount).
        lines: Vec<RefundLine>,
        /// The shipping it pays back (a whole order cancelled before it shipped; version
        /// 1.1, absent before).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shipping: Option<Money>,
        /// The tax inside `amount` (its lines' and its shipping's; version 1.1, absent for an
        /// order without tax and for a merchant's refund of an amount).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tax: Option<Money>,
    },
    /// Money was refunded (version 1.1 names the refund and its lines; a 1.0 event, written
    /// by the admin's refund before refunds were requested, has neither).
    OrderRefunded {
        /// The refund.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refund_id: Option<RefundId>,
        /// Amount refunded now.
        amount: Money,
        /// All refunds so far.
        total_refunded: Money,
        /// Status after: `partially_refunded` or `refunded` for a delivered order, else
        /// unchanged (the refund does not change fulfilment or a cancellation).
        status: OrderStatus,
        /// The units it paid back.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        lines: Vec<RefundLine>,
    },
    /// The gateway refused a requested refund; nothing was refunded.
    OrderRefundFailed {
        /// The refund.
        refund_id: RefundId,
        /// Its amount.
        amount: Money,
    },
    /// A guest's personal data on this order was erased (its data key destroyed just
    /// before); amounts, SKUs and the destination country stay.
    OrderPersonalDataErased {
        /// When the request was made.
        requested_at: DateTime<Utc>,
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
            OrderEvent::OrderPaymentVoided { .. } => "OrderPaymentVoided",
            OrderEvent::OrderCancelled { .. } => "OrderCancelled",
            OrderEvent::OrderRemainderCancelled { .. } => "OrderRemainderCancelled",
            OrderEvent::OrderShipped { .. } => "OrderShipped",
            OrderEvent::OrderDelivered { .. } => "OrderDelivered",
            OrderEvent::OrderReturnRequested { .. } => "OrderReturnRequested",
            OrderEvent::OrderReturnReceived { .. } => "OrderReturnReceived",
            OrderEvent::OrderRefundRequested { .. } => "OrderRefundRequested",
            OrderEvent::OrderRefunded { .. } => "OrderRefunded",
            OrderEvent::OrderRefundFailed { .. } => "OrderRefundFailed",
            OrderEvent::OrderPersonalDataErased { .. } => "OrderPersonalDataErased",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        match self {
            OrderEvent::OrderShipped { .. }
            | OrderEvent::OrderRefunded { .. }
            | OrderEvent::OrderRefundRequested { .. } => "1.1",
            OrderEvent::OrderPlaced { .. } => "2.1",
            OrderEvent::OrderDelivered { .. } => "2.0",
            _ => "1.0",
        }
        .to_owned()
    }
}
