use chrono::{DateTime, Utc};

use super::OrderStatus;
use crate::money::Money;
use crate::values::{Sku, TrackingNumber};

/// Why an order command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    /// `PlaceOrder` on an existing order.
    #[error("order already exists")]
    AlreadyExists,
    /// Any other command before `PlaceOrder`.
    #[error("order not found")]
    NotFound,
    /// `PlaceOrder` with neither a customer nor a guest email (or with both).
    #[error("an order needs either a customer or a guest's email")]
    CustomerRequired,
    /// `PlaceOrder` without lines.
    #[error("an order needs at least one line")]
    NoLines,
    /// `PlaceOrder` with more than [`super::Order::MAX_LINES`] lines.
    #[error("an order may have at most {max} lines")]
    TooManyLines {
        /// The limit.
        max: usize,
    },
    /// `PlaceOrder` with two lines for one SKU.
    #[error("sku {0} appears on more than one line")]
    DuplicateLine(Sku),
    /// Amounts in different currencies.
    #[error("amounts must all be in the order's currency")]
    CurrencyMismatch,
    /// The pricing given does not match the lines, or does not add up.
    #[error("the pricing does not match the order's lines")]
    PricingMismatch,
    /// A total does not fit in 64-bit minor units.
    #[error("amount overflow")]
    AmountOverflow,
    /// The command is not allowed in the order's current status.
    #[error("cannot {action} an order that is {status}")]
    InvalidTransition {
        /// The current status.
        status: OrderStatus,
        /// What was attempted.
        action: &'static str,
    },
    /// `CancelOrder` on a cancelled order.
    #[error("order is already cancelled")]
    AlreadyCancelled,
    /// `CancelOrder` once every unit has shipped: use a return.
    #[error("every unit of this order has shipped; request a return instead")]
    CancelAfterShipment,
    /// The SKU is not a line of this order.
    #[error("sku {0} is not on this order")]
    UnknownLine(Sku),
    /// `ShipOrder` without lines.
    #[error("a shipment needs at least one line")]
    EmptyShipment,
    /// A shipment of more units than remain to ship on a line.
    #[error("only {remaining} units of {sku} remain to ship")]
    ShipmentExceedsOrdered {
        /// The line.
        sku: Sku,
        /// Units not shipped (nor cancelled) yet.
        remaining: u32,
    },
    /// `ShipOrder` with a tracking number this order already shipped under.
    #[error("a shipment with tracking number {0} already exists")]
    DuplicateTrackingNumber(TrackingNumber),
    /// `DeliverOrder` naming a shipment this order does not have.
    #[error("no shipment with tracking number {0}")]
    UnknownShipment(TrackingNumber),
    /// `DeliverOrder` when every shipment (or the one named) is delivered already.
    #[error("nothing shipped is waiting for delivery")]
    NothingToDeliver,
    /// `DeliverOrder` dated before the shipment left.
    #[error("a delivery cannot be before its shipment ({shipped_at})")]
    DeliveryBeforeShipment {
        /// When the shipment left.
        shipped_at: DateTime<Utc>,
    },
    /// A payment amount other than the order total.
    #[error("payment of {actual} does not match the order total {expected}")]
    PaymentAmountMismatch {
        /// The order total.
        expected: Money,
        /// The amount reported.
        actual: Money,
    },
    /// A refund of zero.
    #[error("refund amount must be positive")]
    RefundAmountZero,
    /// A refund of more than is captured and not yet refunded (or being refunded).
    #[error("at most {refundable} can be refunded")]
    RefundExceedsCaptured {
        /// Captured minus refunded and pending refunds.
        refundable: Money,
    },
    /// `RequestRefund` with an id already used.
    #[error("refund already exists")]
    RefundAlreadyExists,
    /// `RecordRefund`/`RecordRefundFailed` for a refund this order never requested.
    #[error("no such refund on this order")]
    RefundNotFound,
    /// `RecordRefund` of another amount than requested.
    #[error("refund of {actual} does not match the requested {expected}")]
    RefundAmountMismatch {
        /// The requested amount.
        expected: Money,
        /// The amount reported.
        actual: Money,
    },
    /// A return (or receipt) without lines.
    #[error("a return needs at least one line")]
    EmptyReturn,
    /// A return of more units than were delivered and not yet returned.
    #[error("only {returnable} units of {sku} can be returned")]
    ReturnExceedsDelivered {
        /// The line.
        sku: Sku,
        /// Delivered units not yet in a return.
        returnable: u32,
    },
    /// A return requested after the window.
    #[error("the return window for {sku} closed at {closed_at}")]
    ReturnWindowClosed {
        /// The line.
        sku: Sku,
        /// When its window closed.
        closed_at: DateTime<Utc>,
    },
    /// `RequestReturn` with an id already used.
    #[error("return already exists")]
    ReturnAlreadyExists,
    /// `ReceiveReturn` for a return this order does not have.
    #[error("return not found")]
    ReturnNotFound,
    /// `ReceiveReturn` of a return already received.
    #[error("return already received")]
    ReturnAlreadyReceived,
    /// `ErasePersonalData` on a customer's order (erasing the customer erases it).
    #[error("this order belongs to a customer account: erase the customer instead")]
    CustomerOrder,
    /// A receipt of more units than the return announced.
    #[error("the return announced only {requested} units of {sku}")]
    ReceiptExceedsReturn {
        /// The line.
        sku: Sku,
        /// Units announced.
        requested: u32,
    },
}

impl OrderError {
    /// Stable machine code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            OrderError::AlreadyExists => "order_already_exists",
            OrderError::NotFound => "order_not_found",
            OrderError::CustomerRequired => "customer_required",
            OrderError::NoLines => "order_has_no_lines",
            OrderError::TooManyLines { .. } => "too_many_lines",
            OrderError::DuplicateLine(_) => "duplicate_line",
            OrderError::CurrencyMismatch => "currency_mismatch",
            OrderError::PricingMismatch => "pricing_mismatch",
            OrderError::AmountOverflow => "amount_overflow",
            OrderError::InvalidTransition { .. } => "invalid_transition",
            OrderError::AlreadyCancelled => "order_already_cancelled",
            OrderError::CancelAfterShipment => "order_already_shipped",
            OrderError::UnknownLine(_) => "unknown_line",
            OrderError::EmptyShipment => "empty_shipment",
            OrderError::ShipmentExceedsOrdered { .. } => "shipment_exceeds_ordered",
            OrderError::DuplicateTrackingNumber(_) => "duplicate_tracking_number",
            OrderError::UnknownShipment(_) => "unknown_shipment",
            OrderError::NothingToDeliver => "nothing_to_deliver",
            OrderError::DeliveryBeforeShipment { .. } => "delivery_before_shipment",
            OrderError::PaymentAmountMismatch { .. } => "payment_amount_mismatch",
            OrderError::RefundAmountZero => "refund_amount_zero",
            OrderError::RefundExceedsCaptured { .. } => "refund_exceeds_captured",
            OrderError::RefundAlreadyExists => "refund_already_exists",
            OrderError::RefundNotFound => "refund_not_found",
            OrderError::RefundAmountMismatch { .. } => "refund_amount_mismatch",
            OrderError::EmptyReturn => "empty_return",
            OrderError::ReturnExceedsDelivered { .. } => "return_exceeds_delivered",
            OrderError::ReturnWindowClosed { .. } => "return_window_closed",
            OrderError::ReturnAlreadyExists => "return_already_exists",
            OrderError::ReturnNotFound => "return_not_found",
            OrderError::ReturnAlreadyReceived => "return_already_received",
            OrderError::ReceiptExceedsReturn { .. } => "receipt_exceeds_return",
            OrderError::CustomerOrder => "customer_order",
        }
    }

    /// What kind of refusal this is.
    pub fn kind(&self) -> crate::ErrorKind {
        use crate::ErrorKind as K;
        match self {
            OrderError::NotFound | OrderError::ReturnNotFound | OrderError::RefundNotFound => {
                K::NotFound
            }
            OrderError::AlreadyExists
            | OrderError::InvalidTransition { .. }
            | OrderError::AlreadyCancelled
            | OrderError::CancelAfterShipment
            | OrderError::DuplicateTrackingNumber(_)
            | OrderError::NothingToDeliver
            | OrderError::ReturnWindowClosed { .. }
            | OrderError::ReturnAlreadyExists
            | OrderError::ReturnAlreadyReceived
            | OrderError::RefundAlreadyExists
            | OrderError::CustomerOrder => K::Conflict,
            OrderError::CustomerRequired
            | OrderError::NoLines
            | OrderError::TooManyLines { .. }
            | OrderError::DuplicateLine(_)
            | OrderError::CurrencyMismatch
            | OrderError::PricingMismatch
            | OrderError::AmountOverflow
            | OrderError::UnknownLine(_)
            | OrderError::EmptyShipment
            | OrderError::ShipmentExceedsOrdered { .. }
            | OrderError::UnknownShipment(_)
            | OrderError::DeliveryBeforeShipment { .. }
            | OrderError::PaymentAmountMismatch { .. }
            | OrderError::RefundAmountZero
            | OrderError::RefundExceedsCaptured { .. }
            | OrderError::RefundAmountMismatch { .. }
            | OrderError::EmptyReturn
            | OrderError::ReturnExceedsDelivered { .. }
            | OrderError::ReceiptExceedsReturn { .. } => K::Invalid,
        }
    }
}
crate::impl_error_code!(OrderError);
