use std::fmt;

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use super::{
    AuthorizationId, AuthorizationOutcome, AuthorizationRequest, PaymentCommand, PaymentError,
    PaymentEvent, PaymentServices,
};
use crate::money::Money;
use crate::values::{OrderId, PaymentId, RefundId};

/// Where a payment is in its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Not requested yet.
    #[default]
    Absent,
    /// The amount is held.
    Authorized,
    /// Not authorized (final).
    Declined,
    /// The amount was captured.
    Captured,
    /// Part of the captured amount was refunded.
    PartiallyRefunded,
    /// The whole captured amount was refunded (final).
    Refunded,
    /// Released without capture (final).
    Voided,
}

impl PaymentStatus {
    /// The snake_case name used in JSON.
    pub fn as_str(&self) -> &'static str {
        match self {
            PaymentStatus::Absent => "absent",
            PaymentStatus::Authorized => "authorized",
            PaymentStatus::Declined => "declined",
            PaymentStatus::Captured => "captured",
            PaymentStatus::PartiallyRefunded => "partially_refunded",
            PaymentStatus::Refunded => "refunded",
            PaymentStatus::Voided => "voided",
        }
    }
}

impl fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A payment for one order (aggregate id: the payment UUID).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    id: Option<PaymentId>,
    order_id: Option<OrderId>,
    status: PaymentStatus,
    amount: Option<Money>,
    authorization_id: Option<AuthorizationId>,
    captured: Option<Money>,
    refunded: Option<Money>,
    refund_count: u32,
    /// Refunds made or refused, by the order's refund id (a repeated one is a no-op).
    #[serde(default)]
    settled_refunds: std::collections::BTreeSet<RefundId>,
}

impl Payment {
    /// Current status.
    pub fn status(&self) -> PaymentStatus {
        self.status
    }

    /// The order paid for.
    pub fn order_id(&self) -> Option<OrderId> {
        self.order_id
    }

    /// The amount authorized (or asked for, when declined).
    pub fn amount(&self) -> Option<Money> {
        self.amount
    }

    /// Captured amount, if captured.
    pub fn captured(&self) -> Option<Money> {
        self.captured
    }

    /// Refunded so far, if any refund happened.
    pub fn refunded(&self) -> Option<Money> {
        self.refunded
    }

    fn invalid(&self, action: &'static str) -> PaymentError {
        PaymentError::InvalidTransition {
            status: self.status,
            action,
        }
    }

    fn key(&self, operation: &str) -> String {
        let id = self.id.map(|id| id.to_string()).unwrap_or_default();
        format!("{id}:{operation}")
    }

    fn authorized_parts(&self) -> Result<(OrderId, Money, &AuthorizationId), PaymentError> {
        match (self.order_id, self.amount, self.authorization_id.as_ref()) {
            (Some(order_id), Some(amount), Some(authorization_id)) => {
                Ok((order_id, amount, authorization_id))
            }
            _ => Err(PaymentError::NotFound),
        }
    }

    async fn decide(
        &self,
        command: PaymentCommand,
        services: &PaymentServices,
    ) -> Result<Vec<PaymentEvent>, PaymentError> {
        use PaymentStatus as S;
        if let PaymentCommand::AuthorizePayment {
            payment_id,
            order_id,
            amount,
            payment_method,
        } = command
        {
            if self.status != S::Absent {
                return Err(PaymentError::AlreadyExists);
            }
            if amount.is_zero() {
                return Err(PaymentError::ZeroAmount);
            }
            let request = AuthorizationRequest {
                payment_id,
                order_id,
                amount,
                payment_method,
            };
            let event = match services.gateway().authorize(&request).await {
                AuthorizationOutcome::Approved {
                    authorization_id,
                    card,
                } => PaymentEvent::PaymentAuthorized {
                    payment_id,
                    order_id,
                    amount,
                    payment_method: request.payment_method,
                    authorization_id,
                    card_brand: card.brand,
                    card_last4: card.last4,
                },
                AuthorizationOutcome::Declined { reason } => PaymentEvent::PaymentDeclined {
                    payment_id,
                    order_id,
                    amount,
                    reason,
                },
            };
            return Ok(vec![event]);
        }
        if self.status == S::Absent {
            return Err(PaymentError::NotFound);
        }
        match command {
            PaymentCommand::AuthorizePayment { .. } => Err(PaymentError::AlreadyExists),
            PaymentCommand::CapturePayment => {
                if matches!(
                    self.status,
                    S::Captured | S::PartiallyRefunded | S::Refunded
                ) {
                    return Ok(vec![]);
                }
                if self.status != S::Authorized {
                    return Err(self.invalid("capture"));
                }
                let (order_id, amount, authorization_id) = self.authorized_parts()?;
                services
                    .gateway()
                    .capture(authorization_id, amount, &self.key("capture"))
                    .await?;
                Ok(vec![PaymentEvent::PaymentCaptured { order_id, amount }])
            }
            PaymentCommand::VoidPayment => {
                if self.status == S::Voided {
                    return Ok(vec![]);
                }
                if self.status != S::Authorized {
                    return Err(self.invalid("void"));
                }
                let (order_id, amount, authorization_id) = self.authorized_parts()?;
                services
                    .gateway()
                    .void(authorization_id, &self.key("void"))
                    .await?;
                Ok(vec![PaymentEvent::PaymentVoided { order_id, amount }])
            }
            PaymentCommand::RefundPayment { refund_id, amount } => {
                if self.settled_refunds.contains(&refund_id) {
                    return Ok(vec![]);
                }
                if !matches!(self.status, S::Captured | S::PartiallyRefunded) {
                    return Err(self.invalid("refund"));
                }
                let (order_id, _, authorization_id) = self.authorized_parts()?;
                let captured = self.captured.ok_or_else(|| self.invalid("refund"))?;
                if amount.currency() != captured.currency() {
                    return Err(PaymentError::CurrencyMismatch);
                }
                if amount.is_zero() {
                    return Err(PaymentError::ZeroAmount);
                }
                let refunded = self.refunded.unwrap_or(Money::zero(captured.currency()));
                let refundable = captured
                    .checked_sub(refunded)
                    .unwrap_or(Money::zero(captured.currency()));
                let Ok(remaining) = refundable.checked_sub(amount) else {
                    return Err(PaymentError::RefundExceedsCaptured { refundable });
                };
                let total_refunded = refunded
                    .checked_add(amount)
                    .map_err(|_| PaymentError::RefundExceedsCaptured { refundable })?;
                let key = self.key(&format!("refund:{refund_id}"));
                match services
                    .gateway()
                    .refund(authorization_id, amount, &key)
                    .await
                {
                    Ok(()) => Ok(vec![PaymentEvent::PaymentRefunded {
                        order_id,
                        refund_id: Some(refund_id),
                        amount,
                        total_refunded,
                        refundable: remaining,
                    }]),
                    // A refusal is an outcome the order must learn of, not a retry.
                    Err(super::GatewayError::Refused) => {
                        Ok(vec![PaymentEvent::PaymentRefundFailed {
                            order_id,
                            refund_id,
                            amount,
                        }])
                    }
                    Err(e) => Err(e.into()),
                }
            }
        }
    }
}

impl Aggregate for Payment {
    const TYPE: &'static str = "Payment";
    type Command = PaymentCommand;
    type Event = PaymentEvent;
    type Error = PaymentError;
    type Services = PaymentServices;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command, services).await? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            PaymentEvent::PaymentAuthorized {
                payment_id,
                order_id,
                amount,
                authorization_id,
                ..
            } => {
                self.id = Some(payment_id);
                self.order_id = Some(order_id);
                self.amount = Some(amount);
                self.authorization_id = Some(authorization_id);
                self.status = PaymentStatus::Authorized;
            }
            PaymentEvent::PaymentDeclined {
                payment_id,
                order_id,
                amount,
                ..
            } => {
                self.id = Some(payment_id);
                self.order_id = Some(order_id);
                self.amount = Some(amount);
                self.status = PaymentStatus::Declined;
            }
            PaymentEvent::PaymentCaptured { amount, .. } => {
                self.captured = Some(amount);
                self.status = PaymentStatus::Captured;
            }
            PaymentEvent::PaymentVoided { .. } => self.status = PaymentStatus::Voided,
            PaymentEvent::PaymentRefundFailed { refund_id, .. } => {
                self.settled_refunds.insert(refund_id);
            }
            PaymentEvent::PaymentRefunded {
                refund_id,
                total_refunded,
                refundable,
                ..
            } => {
                self.settled_refunds.extend(refund_id);
                self.refunded = Some(total_refunded);
                self.refund_count = self.refund_count.saturating_add(1);
                self.status = if refundable.is_zero() {
                    PaymentStatus::Refunded
                } else {
                    PaymentStatus::PartiallyRefunded
                };
            }
        }
    }
}
