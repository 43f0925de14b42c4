use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use super::{AuthorizationId, CardBrand, CardLast4, DeclineReason};
use crate::money::Money;
use crate::values::{OrderId, PaymentId, PaymentMethodToken, RefundId};

/// Events of the [`super::Payment`] aggregate. None can hold a card number: every string in
/// them is a validated type that refuses one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentEvent {
    /// The amount is held on the card.
    PaymentAuthorized {
        /// The payment.
        payment_id: PaymentId,
        /// The order paid for.
        order_id: OrderId,
        /// Amount held.
        amount: Money,
        /// The provider's token.
        payment_method: PaymentMethodToken,
        /// The gateway's authorization id.
        authorization_id: AuthorizationId,
        /// Card network.
        card_brand: CardBrand,
        /// Last four digits.
        card_last4: CardLast4,
    },
    /// The authorization was declined (including gateway timeouts and outages).
    PaymentDeclined {
        /// The payment.
        payment_id: PaymentId,
        /// The order paid for.
        order_id: OrderId,
        /// Amount asked for.
        amount: Money,
        /// Why.
        reason: DeclineReason,
    },
    /// The authorized amount was captured.
    PaymentCaptured {
        /// The order paid for.
        order_id: OrderId,
        /// Amount captured.
        amount: Money,
    },
    /// The authorization was released without capture.
    PaymentVoided {
        /// The order paid for.
        order_id: OrderId,
        /// Amount released.
        amount: Money,
    },
    /// Part or all of the captured amount was refunded (version 1.1 names the order's
    /// refund; 1.0 events, from refunds made before the order requested them, do not).
    PaymentRefunded {
        /// The order paid for.
        order_id: OrderId,
        /// The order's refund.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refund_id: Option<RefundId>,
        /// Amount refunded now.
        amount: Money,
        /// All refunds so far.
        total_refunded: Money,
        /// Captured minus all refunds.
        refundable: Money,
    },
    /// The gateway refused a refund; nothing was refunded.
    PaymentRefundFailed {
        /// The order paid for.
        order_id: OrderId,
        /// The order's refund.
        refund_id: RefundId,
        /// Amount asked for.
        amount: Money,
    },
}

impl PaymentEvent {
    /// The order the payment belongs to.
    pub fn order_id(&self) -> OrderId {
        match self {
            PaymentEvent::PaymentAuthorized { order_id, .. }
            | PaymentEvent::PaymentDeclined { order_id, .. }
            | PaymentEvent::PaymentCaptured { order_id, .. }
            | PaymentEvent::PaymentVoided { order_id, .. }
            | PaymentEvent::PaymentRefunded { order_id, .. }
            | PaymentEvent::PaymentRefundFailed { order_id, .. } => *order_id,
        }
    }
}

impl DomainEvent for PaymentEvent {
    fn event_type(&self) -> String {
        match self {
            PaymentEvent::PaymentAuthorized { .. } => "PaymentAuthorized",
            PaymentEvent::PaymentDeclined { .. } => "PaymentDeclined",
            PaymentEvent::PaymentCaptured { .. } => "PaymentCaptured",
            PaymentEvent::PaymentVoided { .. } => "PaymentVoided",
            PaymentEvent::PaymentRefunded { .. } => "PaymentRefunded",
            PaymentEvent::PaymentRefundFailed { .. } => "PaymentRefundFailed",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        match self {
            PaymentEvent::PaymentRefunded { .. } => "1.1",
            _ => "1.0",
        }
        .to_owned()
    }
}
