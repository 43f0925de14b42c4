use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cqrs_es::test::TestFramework;
use cqrs_es::{Aggregate, DomainEvent};
use proptest::prelude::*;

use super::*;
use crate::money::Money;
use crate::pci;
use crate::test_support::execute;
use crate::test_support::fixtures::{eur, order_id, payment_id, token, usd};
use crate::values::{PaymentMethodToken, RefundId};

/// A scripted gateway that records the idempotency keys it was given.
struct FakeGateway {
    authorization: AuthorizationOutcome,
    operations: Result<(), GatewayError>,
    keys: Mutex<Vec<String>>,
}

impl FakeGateway {
    fn approving() -> Self {
        FakeGateway {
            authorization: approved(),
            operations: Ok(()),
            keys: Mutex::new(Vec::new()),
        }
    }

    fn declining(reason: DeclineReason) -> Self {
        FakeGateway {
            authorization: AuthorizationOutcome::Declined { reason },
            ..FakeGateway::approving()
        }
    }

    fn failing(error: GatewayError) -> Self {
        FakeGateway {
            operations: Err(error),
            ..FakeGateway::approving()
        }
    }

    fn record(&self, key: &str) {
        if let Ok(mut keys) = self.keys.lock() {
            keys.push(key.to_owned());
        }
    }
}

#[async_trait]
impl PaymentGateway for FakeGateway {
    async fn authorize(&self, _request: &AuthorizationRequest) -> AuthorizationOutcome {
        self.authorization.clone()
    }

    async fn capture(
        &self,
        _authorization_id: &AuthorizationId,
        _amount: crate::Money,
        key: &str,
    ) -> Result<(), GatewayError> {
        self.record(key);
        self.operations
    }

    async fn void(
        &self,
        _authorization_id: &AuthorizationId,
        key: &str,
    ) -> Result<(), GatewayError> {
        self.record(key);
        self.operations
    }

    async fn refund(
        &self,
        _authorization_id: &AuthorizationId,
        _amount: crate::Money,
        key: &str,
    ) -> Result<(), GatewayError> {
        self.record(key);
        self.operations
    }
}

fn approved() -> AuthorizationOutcome {
    AuthorizationOutcome::Approved {
        authorization_id: AuthorizationId::new("auth_123").unwrap(),
        card: CardSummary {
            brand: CardBrand::Visa,
            last4: CardLast4::new("4242").unwrap(),
        },
    }
}

fn services(gateway: FakeGateway) -> PaymentServices {
    PaymentServices::new(Arc::new(gateway))
}

fn fixture() -> TestFramework<Payment> {
    TestFramework::with(services(FakeGateway::approving()))
}

fn authorize(amount: crate::Money) -> PaymentCommand {
    PaymentCommand::AuthorizePayment {
        payment_id: payment_id(1),
        order_id: order_id(1),
        amount,
        payment_method: token(),
    }
}

fn authorized() -> PaymentEvent {
    PaymentEvent::PaymentAuthorized {
        payment_id: payment_id(1),
        order_id: order_id(1),
        amount: eur(5000),
        payment_method: token(),
        authorization_id: AuthorizationId::new("auth_123").unwrap(),
        card_brand: CardBrand::Visa,
        card_last4: CardLast4::new("4242").unwrap(),
    }
}

fn declined(reason: DeclineReason) -> PaymentEvent {
    PaymentEvent::PaymentDeclined {
        payment_id: payment_id(1),
        order_id: order_id(1),
        amount: eur(5000),
        reason,
    }
}

fn captured() -> PaymentEvent {
    PaymentEvent::PaymentCaptured {
        order_id: order_id(1),
        amount: eur(5000),
    }
}

fn refund_id(n: u128) -> RefundId {
    RefundId::new(uuid::Uuid::from_u128(0xF000 + n))
}

fn refund(n: u128, amount: Money) -> PaymentCommand {
    PaymentCommand::RefundPayment {
        refund_id: refund_id(n),
        amount,
    }
}

/// The refund that brings the total to `total` (its id is numbered by that total).
fn refunded(amount: i64, total: i64) -> PaymentEvent {
    PaymentEvent::PaymentRefunded {
        order_id: order_id(1),
        refund_id: Some(refund_id(u128::try_from(total).unwrap())),
        amount: eur(amount),
        total_refunded: eur(total),
        refundable: eur(5000 - total),
    }
}

#[test]
fn authorize_payment() {
    fixture()
        .given_no_previous_events()
        .when(authorize(eur(5000)))
        .then_expect_events(vec![authorized()]);
}

#[test]
fn declines_and_timeouts_are_events_not_errors() {
    for reason in [
        DeclineReason::CardDeclined,
        DeclineReason::InsufficientFunds,
        DeclineReason::ProcessorUnavailable,
        DeclineReason::Timeout,
    ] {
        TestFramework::<Payment>::with(services(FakeGateway::declining(reason)))
            .given_no_previous_events()
            .when(authorize(eur(5000)))
            .then_expect_events(vec![declined(reason)]);
    }
}

#[test]
fn authorize_twice_is_refused() {
    for history in [
        vec![authorized()],
        vec![declined(DeclineReason::CardDeclined)],
    ] {
        fixture()
            .given(history)
            .when(authorize(eur(5000)))
            .then_expect_error(PaymentError::AlreadyExists);
    }
}

#[test]
fn zero_amount_is_refused() {
    fixture()
        .given_no_previous_events()
        .when(authorize(eur(0)))
        .then_expect_error(PaymentError::ZeroAmount);
    fixture()
        .given(vec![authorized(), captured()])
        .when(refund(0, eur(0)))
        .then_expect_error(PaymentError::ZeroAmount);
}

#[test]
fn commands_before_authorization_are_refused() {
    fixture()
        .given_no_previous_events()
        .when(PaymentCommand::CapturePayment)
        .then_expect_error(PaymentError::NotFound);
}

#[test]
fn capture_payment() {
    fixture()
        .given(vec![authorized()])
        .when(PaymentCommand::CapturePayment)
        .then_expect_events(vec![captured()]);
}

#[test]
fn capture_is_idempotent() {
    fixture()
        .given(vec![authorized(), captured()])
        .when(PaymentCommand::CapturePayment)
        .then_expect_events(vec![]);
}

#[test]
fn capture_of_declined_or_voided_payment_is_refused() {
    fixture()
        .given(vec![declined(DeclineReason::CardDeclined)])
        .when(PaymentCommand::CapturePayment)
        .then_expect_error(PaymentError::InvalidTransition {
            status: PaymentStatus::Declined,
            action: "capture",
        });
    fixture()
        .given(vec![
            authorized(),
            PaymentEvent::PaymentVoided {
                order_id: order_id(1),
                amount: eur(5000),
            },
        ])
        .when(PaymentCommand::CapturePayment)
        .then_expect_error(PaymentError::InvalidTransition {
            status: PaymentStatus::Voided,
            action: "capture",
        });
}

#[test]
fn gateway_failures_are_retryable_errors() {
    TestFramework::<Payment>::with(services(FakeGateway::failing(GatewayError::Unavailable)))
        .given(vec![authorized()])
        .when(PaymentCommand::CapturePayment)
        .then_expect_error(PaymentError::GatewayUnavailable);
    TestFramework::<Payment>::with(services(FakeGateway::failing(GatewayError::Refused)))
        .given(vec![authorized()])
        .when(PaymentCommand::VoidPayment)
        .then_expect_error(PaymentError::GatewayRefused);
}

#[test]
fn a_refused_refund_is_an_event_the_order_learns_of() {
    let failed = PaymentEvent::PaymentRefundFailed {
        order_id: order_id(1),
        refund_id: refund_id(1),
        amount: eur(100),
    };
    TestFramework::<Payment>::with(services(FakeGateway::failing(GatewayError::Refused)))
        .given(vec![authorized(), captured()])
        .when(refund(1, eur(100)))
        .then_expect_events(vec![failed.clone()]);
    // Asked again (a redelivery), it is not retried.
    TestFramework::<Payment>::with(services(FakeGateway::approving()))
        .given(vec![authorized(), captured(), failed])
        .when(refund(1, eur(100)))
        .then_expect_events(vec![]);
    // An unreachable gateway is a retryable error, not an outcome.
    TestFramework::<Payment>::with(services(FakeGateway::failing(GatewayError::Unavailable)))
        .given(vec![authorized(), captured()])
        .when(refund(1, eur(100)))
        .then_expect_error(PaymentError::GatewayUnavailable);
}

#[test]
fn void_payment() {
    fixture()
        .given(vec![authorized()])
        .when(PaymentCommand::VoidPayment)
        .then_expect_events(vec![PaymentEvent::PaymentVoided {
            order_id: order_id(1),
            amount: eur(5000),
        }]);
    fixture()
        .given(vec![
            authorized(),
            PaymentEvent::PaymentVoided {
                order_id: order_id(1),
                amount: eur(5000),
            },
        ])
        .when(PaymentCommand::VoidPayment)
        .then_expect_events(vec![]);
}

#[test]
fn void_after_capture_is_refused() {
    fixture()
        .given(vec![authorized(), captured()])
        .when(PaymentCommand::VoidPayment)
        .then_expect_error(PaymentError::InvalidTransition {
            status: PaymentStatus::Captured,
            action: "void",
        });
}

#[test]
fn refund_partially_then_fully() {
    fixture()
        .given(vec![authorized(), captured()])
        .when(refund(2000, eur(2000)))
        .then_expect_events(vec![refunded(2000, 2000)]);
    fixture()
        .given(vec![authorized(), captured(), refunded(2000, 2000)])
        .when(refund(5000, eur(3000)))
        .then_expect_events(vec![refunded(3000, 5000)]);
}

#[test]
fn refund_never_exceeds_captured() {
    fixture()
        .given(vec![authorized(), captured(), refunded(2000, 2000)])
        .when(refund(9, eur(3001)))
        .then_expect_error(PaymentError::RefundExceedsCaptured {
            refundable: eur(3000),
        });
}

#[test]
fn refund_before_capture_or_after_full_refund_is_refused() {
    fixture()
        .given(vec![authorized()])
        .when(refund(9, eur(1)))
        .then_expect_error(PaymentError::InvalidTransition {
            status: PaymentStatus::Authorized,
            action: "refund",
        });
    fixture()
        .given(vec![authorized(), captured(), refunded(5000, 5000)])
        .when(refund(9, eur(1)))
        .then_expect_error(PaymentError::InvalidTransition {
            status: PaymentStatus::Refunded,
            action: "refund",
        });
}

#[test]
fn refund_in_other_currency_is_refused() {
    fixture()
        .given(vec![authorized(), captured()])
        .when(refund(9, usd(1)))
        .then_expect_error(PaymentError::CurrencyMismatch);
}

#[test]
fn gateway_gets_stable_idempotency_keys() {
    let gateway = Arc::new(FakeGateway::approving());
    let services = PaymentServices::new(gateway.clone());
    let mut payment = Payment::default();
    execute(&mut payment, authorize(eur(5000)), &services).unwrap();
    execute(&mut payment, PaymentCommand::CapturePayment, &services).unwrap();
    for (n, amount) in [(1, 1000), (2, 500)] {
        execute(&mut payment, refund(n, eur(amount)), &services).unwrap();
    }
    // The same refund again changes nothing and asks the gateway nothing.
    assert_eq!(
        execute(&mut payment, refund(1, eur(1000)), &services),
        Ok(vec![])
    );
    let id = payment_id(1);
    assert_eq!(
        *gateway.keys.lock().unwrap(),
        vec![
            format!("{id}:capture"),
            format!("{id}:refund:{}", refund_id(1)),
            format!("{id}:refund:{}", refund_id(2))
        ]
    );
    assert_eq!(payment.status(), PaymentStatus::PartiallyRefunded);
    assert_eq!(payment.refunded(), Some(eur(1500)));
    assert_eq!(payment.captured(), Some(eur(5000)));
    assert_eq!(payment.order_id(), Some(order_id(1)));
}

#[test]
fn card_values_refuse_card_numbers() {
    assert!(CardLast4::new("424").is_err());
    assert!(CardLast4::new("42a2").is_err());
    assert!(AuthorizationId::new("4242424242424242").is_err());
    assert!(serde_json::from_value::<CardLast4>(serde_json::json!("4242424242424242")).is_err());
    assert!(
        serde_json::from_value::<AuthorizationId>(serde_json::json!("ch_4242424242424242"))
            .is_err()
    );
}

#[test]
fn event_types_and_codes_are_stable() {
    assert_eq!(authorized().event_type(), "PaymentAuthorized");
    assert_eq!(captured().event_version(), "1.0");
    assert_eq!(
        PaymentError::GatewayUnavailable.code(),
        "payment_gateway_unavailable"
    );
    assert_eq!(Payment::TYPE, "Payment");
    let json = serde_json::to_value(declined(DeclineReason::Timeout)).unwrap();
    assert_eq!(json["PaymentDeclined"]["reason"], "timeout");
}

proptest! {
    /// Whatever token and gateway answer, no payment event serializes a card number.
    #[test]
    fn no_event_ever_holds_a_card_number(
        token in "tok_[A-Za-z0-9]{1,24}",
        last4 in "[0-9]{4}",
        auth in "auth_[A-Za-z0-9]{1,24}",
        amount in 1i64..1_000_000_000,
        refund in 1i64..1_000_000_000,
        approve in any::<bool>(),
    ) {
        let (Ok(token), Ok(authorization_id)) =
            (PaymentMethodToken::new(token), AuthorizationId::new(auth))
        else {
            // Generated strings that embed a Luhn-valid run are refused; nothing to check.
            return Ok(());
        };
        let gateway = FakeGateway {
            authorization: if approve {
                AuthorizationOutcome::Approved {
                    authorization_id,
                    card: CardSummary { brand: CardBrand::Mastercard, last4: CardLast4::new(last4).unwrap() },
                }
            } else {
                AuthorizationOutcome::Declined { reason: DeclineReason::CardDeclined }
            },
            operations: Ok(()),
            keys: Mutex::new(Vec::new()),
        };
        let services = PaymentServices::new(Arc::new(gateway));
        let mut payment = Payment::default();
        let mut events = execute(
            &mut payment,
            PaymentCommand::AuthorizePayment {
                payment_id: payment_id(1),
                order_id: order_id(1),
                amount: eur(amount),
                payment_method: token,
            },
            &services,
        )
        .unwrap();
        for command in [
            PaymentCommand::CapturePayment,
            PaymentCommand::RefundPayment { refund_id: refund_id(1), amount: eur(refund.min(amount)) },
        ] {
            if let Ok(more) = execute(&mut payment, command, &services) {
                events.extend(more);
            }
        }
        for event in events {
            let json = serde_json::to_string(&event).unwrap();
            prop_assert!(!pci::contains_pan(&json), "{}", json);
        }
    }
}
