use super::PaymentStatus;
use crate::money::Money;

/// Why a payment command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    /// `AuthorizePayment` on an existing payment.
    #[error("payment already exists")]
    AlreadyExists,
    /// Any other command before `AuthorizePayment`.
    #[error("payment not found")]
    NotFound,
    /// An amount of zero.
    #[error("amount must be positive")]
    ZeroAmount,
    /// An amount in another currency than the payment's.
    #[error("amount must be in the payment's currency")]
    CurrencyMismatch,
    /// The command is not allowed in the payment's current status.
    #[error("cannot {action} a payment that is {status}")]
    InvalidTransition {
        /// Current status.
        status: PaymentStatus,
        /// What was attempted.
        action: &'static str,
    },
    /// A refund of more than is captured and not yet refunded.
    #[error("at most {refundable} can be refunded")]
    RefundExceedsCaptured {
        /// Captured minus already refunded.
        refundable: Money,
    },
    /// The gateway could not be reached; retry later.
    #[error("payment gateway unavailable")]
    GatewayUnavailable,
    /// The gateway refused the operation.
    #[error("payment gateway refused the operation")]
    GatewayRefused,
}

impl PaymentError {
    /// Stable machine code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            PaymentError::AlreadyExists => "payment_already_exists",
            PaymentError::NotFound => "payment_not_found",
            PaymentError::ZeroAmount => "amount_zero",
            PaymentError::CurrencyMismatch => "currency_mismatch",
            PaymentError::InvalidTransition { .. } => "invalid_transition",
            PaymentError::RefundExceedsCaptured { .. } => "refund_exceeds_captured",
            PaymentError::GatewayUnavailable => "payment_gateway_unavailable",
            PaymentError::GatewayRefused => "payment_gateway_refused",
        }
    }
}
impl PaymentError {
    /// What kind of refusal this is.
    pub fn kind(&self) -> crate::ErrorKind {
        use crate::ErrorKind as K;
        match self {
            PaymentError::NotFound => K::NotFound,
            PaymentError::AlreadyExists | PaymentError::InvalidTransition { .. } => K::Conflict,
            PaymentError::ZeroAmount
            | PaymentError::CurrencyMismatch
            | PaymentError::RefundExceedsCaptured { .. }
            | PaymentError::GatewayRefused => K::Invalid,
            PaymentError::GatewayUnavailable => K::Unavailable,
        }
    }
}
crate::impl_error_code!(PaymentError);

impl From<super::GatewayError> for PaymentError {
    fn from(error: super::GatewayError) -> Self {
        match error {
            super::GatewayError::Unavailable => PaymentError::GatewayUnavailable,
            super::GatewayError::Refused => PaymentError::GatewayRefused,
        }
    }
}
