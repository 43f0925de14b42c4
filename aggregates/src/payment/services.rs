use std::sync::Arc;

use async_trait::async_trait;

use super::{AuthorizationId, CardSummary, DeclineReason};
use crate::money::Money;
use crate::values::{OrderId, PaymentId, PaymentMethodToken};

/// What the gateway is asked to authorize.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationRequest {
    /// The payment (also the idempotency key for the gateway).
    pub payment_id: PaymentId,
    /// The order paid for.
    pub order_id: OrderId,
    /// Amount to hold.
    pub amount: Money,
    /// The provider's token for the payment method.
    pub payment_method: PaymentMethodToken,
}

/// The gateway's answer to an authorization request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizationOutcome {
    /// The amount is held on the card.
    Approved {
        /// The gateway's authorization id.
        authorization_id: AuthorizationId,
        /// Brand and last four digits.
        card: CardSummary,
    },
    /// Not authorized. Adapters map timeouts and outages here too
    /// ([`DeclineReason::Timeout`], [`DeclineReason::ProcessorUnavailable`]).
    Declined {
        /// Why.
        reason: DeclineReason,
    },
}

/// A capture, void or refund the gateway did not carry out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// The gateway could not be reached or timed out; the command may be retried with the
    /// same idempotency key.
    #[error("payment gateway unavailable")]
    Unavailable,
    /// The gateway refused the operation (e.g. the authorization has lapsed).
    #[error("payment gateway refused the operation")]
    Refused,
}

/// The payment provider. Implementations must be idempotent per `idempotency_key` (the
/// aggregate derives it from the payment id and the operation).
#[async_trait]
pub trait PaymentGateway: Send + Sync {
    /// Holds the amount on the payment method.
    async fn authorize(&self, request: &AuthorizationRequest) -> AuthorizationOutcome;
    /// Captures an authorized amount.
    async fn capture(
        &self,
        authorization_id: &AuthorizationId,
        amount: Money,
        idempotency_key: &str,
    ) -> Result<(), GatewayError>;
    /// Releases an authorization without capturing.
    async fn void(
        &self,
        authorization_id: &AuthorizationId,
        idempotency_key: &str,
    ) -> Result<(), GatewayError>;
    /// Refunds part or all of a captured amount.
    async fn refund(
        &self,
        authorization_id: &AuthorizationId,
        amount: Money,
        idempotency_key: &str,
    ) -> Result<(), GatewayError>;
}

/// The services the [`super::Payment`] aggregate needs.
#[derive(Clone)]
pub struct PaymentServices {
    gateway: Arc<dyn PaymentGateway>,
}

impl PaymentServices {
    /// Services backed by the given gateway.
    pub fn new(gateway: Arc<dyn PaymentGateway>) -> Self {
        PaymentServices { gateway }
    }

    /// The gateway.
    pub fn gateway(&self) -> &dyn PaymentGateway {
        self.gateway.as_ref()
    }
}
