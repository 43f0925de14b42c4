use super::OrderStatus;
use crate::money::Money;
use crate::values::Sku;

/// Why an order command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    /// `PlaceOrder` on an existing order.
    #[error("order already exists")]
    AlreadyExists,
    /// Any other command before `PlaceOrder`.
    #[error("order not found")]
    NotFound,
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
    /// `CancelOrder` on a confirmed order whose capture is not recorded yet: the checkout is
    /// taking the money; cancel (and refund) once it is recorded.
    #[error("order cannot be cancelled while its payment capture is pending")]
    CapturePending,
    /// `CancelOrder` once any unit has shipped.
    #[error("an order cannot be cancelled once shipped")]
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
        /// Units not shipped yet.
        remaining: u32,
    },
    /// A payment amount other than the order total.
    #[error("payment of {actual} does not match the order total {expected}")]
    PaymentAmountMismatch {
        /// The order total.
        expected: Money,
        /// The amount reported.
        actual: Money,
    },
    /// `RefundOrder` of zero.
    #[error("refund amount must be positive")]
    RefundAmountZero,
    /// `RefundOrder` of more than is captured and not yet refunded.
    #[error("at most {refundable} can be refunded")]
    RefundExceedsCaptured {
        /// Captured minus already refunded.
        refundable: Money,
    },
}

impl OrderError {
    /// Stable machine code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            OrderError::AlreadyExists => "order_already_exists",
            OrderError::NotFound => "order_not_found",
            OrderError::NoLines => "order_has_no_lines",
            OrderError::TooManyLines { .. } => "too_many_lines",
            OrderError::DuplicateLine(_) => "duplicate_line",
            OrderError::CurrencyMismatch => "currency_mismatch",
            OrderError::AmountOverflow => "amount_overflow",
            OrderError::InvalidTransition { .. } => "invalid_transition",
            OrderError::AlreadyCancelled => "order_already_cancelled",
            OrderError::CapturePending => "payment_capture_pending",
            OrderError::CancelAfterShipment => "order_already_shipped",
            OrderError::UnknownLine(_) => "unknown_line",
            OrderError::EmptyShipment => "empty_shipment",
            OrderError::ShipmentExceedsOrdered { .. } => "shipment_exceeds_ordered",
            OrderError::PaymentAmountMismatch { .. } => "payment_amount_mismatch",
            OrderError::RefundAmountZero => "refund_amount_zero",
            OrderError::RefundExceedsCaptured { .. } => "refund_exceeds_captured",
        }
    }
}
crate::impl_error_code!(OrderError);
