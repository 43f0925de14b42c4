use serde::{Deserialize, Serialize};

use crate::money::Money;
use crate::values::{OrderId, PaymentId, PaymentMethodToken, RefundId};

/// Commands of the [`super::Payment`] aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentCommand {
    /// Asks the gateway to hold an amount; approval or decline are both recorded as events.
    AuthorizePayment {
        /// The payment id (aggregate id).
        payment_id: PaymentId,
        /// The order paid for.
        order_id: OrderId,
        /// Amount to hold (positive).
        amount: Money,
        /// The provider's token for the payment method (never a card number).
        payment_method: PaymentMethodToken,
    },
    /// Captures the whole authorized amount; a no-op once captured.
    CapturePayment,
    /// Releases the authorization; a no-op once voided.
    VoidPayment,
    /// Refunds part or all of the captured amount; a no-op for a refund id already made
    /// (or refused).
    RefundPayment {
        /// The order's refund (also the gateway's idempotency key).
        refund_id: RefundId,
        /// Amount to refund (positive, at most captured minus refunded).
        amount: Money,
    },
}
