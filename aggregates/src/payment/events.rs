use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use super::{AuthorizationId, CardBrand, CardLast4, DeclineReason};
use crate::money::Money;
use crate::values::{OrderId, PaymentId, PaymentMethodToken};

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
    /// Part or all of the captured amount was refunded.
    PaymentRefunded {
        /// The order paid for.
        order_id: OrderId,
        /// Amount refunded now.
        amount: Money,
        /// All refunds so far.
        total_refunded: Money,
        /// Captured minus all refunds.
        refundable: Money,
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
            | PaymentEvent::PaymentRefunded { order_id, .. } => *order_id,
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
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}
