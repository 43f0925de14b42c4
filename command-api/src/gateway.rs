//! A stand-in for a card processor with documented test tokens.
//!
//! | token | outcome |
//! | --- | --- |
//! | `tok_visa` (or any other `tok_...` not below) | approved (Visa ending 4242) |
//! | `tok_mastercard` | approved (Mastercard ending 4444) |
//! | `tok_decline` | declined, `card_declined` |
//! | `tok_insufficient_funds` | declined, `insufficient_funds` |
//! | `tok_timeout` | the processor never answers; after the configured timeout: declined, `timeout` |
//! | `tok_unavailable` | declined, `processor_unavailable` |

use std::time::Duration;

use async_trait::async_trait;
use mercato_aggregates::money::Money;
use mercato_aggregates::payment::{
    AuthorizationId, AuthorizationOutcome, AuthorizationRequest, CardBrand, CardLast4, CardSummary,
    DeclineReason, GatewayError, PaymentGateway,
};

/// The test card processor.
#[derive(Debug, Clone)]
pub struct TestCardGateway {
    timeout: Duration,
}

impl TestCardGateway {
    /// A gateway whose adapter gives up on an unanswered authorization after `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self { timeout }
    }

    /// What the "processor" answers; `None` is never (it hangs).
    async fn processor(request: &AuthorizationRequest) -> AuthorizationOutcome {
        let declined = |reason| AuthorizationOutcome::Declined { reason };
        let approved = |brand, last4: &str| {
            // Groups of four hex digits joined by `x`: no run of digits can look like a card
            // number (which the authorization id type refuses).
            let hex = request.payment_id.as_uuid().simple().to_string();
            let groups: Vec<&str> = hex
                .as_bytes()
                .chunks(4)
                .filter_map(|c| std::str::from_utf8(c).ok())
                .collect();
            match (
                AuthorizationId::new(format!("auth_{}", groups.join("x"))),
                CardLast4::new(last4),
            ) {
                (Ok(authorization_id), Ok(last4)) => AuthorizationOutcome::Approved {
                    authorization_id,
                    card: CardSummary { brand, last4 },
                },
                _ => declined(DeclineReason::ProcessorUnavailable),
            }
        };
        match request.payment_method.as_str() {
            "tok_decline" => declined(DeclineReason::CardDeclined),
            "tok_insufficient_funds" => declined(DeclineReason::InsufficientFunds),
            "tok_unavailable" => declined(DeclineReason::ProcessorUnavailable),
            "tok_timeout" => std::future::pending().await,
            "tok_mastercard" => approved(CardBrand::Mastercard, "4444"),
            t if t.starts_with("tok_") => approved(CardBrand::Visa, "4242"),
            _ => declined(DeclineReason::CardDeclined),
        }
    }
}

#[async_trait]
impl PaymentGateway for TestCardGateway {
    async fn authorize(&self, request: &AuthorizationRequest) -> AuthorizationOutcome {
        match tokio::time::timeout(self.timeout, Self::processor(request)).await {
            Ok(outcome) => outcome,
            Err(_) => AuthorizationOutcome::Declined {
                reason: DeclineReason::Timeout,
            },
        }
    }

    async fn capture(
        &self,
        _authorization_id: &AuthorizationId,
        _amount: Money,
        _idempotency_key: &str,
    ) -> Result<(), GatewayError> {
        Ok(())
    }

    async fn void(
        &self,
        _authorization_id: &AuthorizationId,
        _idempotency_key: &str,
    ) -> Result<(), GatewayError> {
        Ok(())
    }

    async fn refund(
        &self,
        _authorization_id: &AuthorizationId,
        _amount: Money,
        _idempotency_key: &str,
    ) -> Result<(), GatewayError> {
        Ok(())
    }
}
