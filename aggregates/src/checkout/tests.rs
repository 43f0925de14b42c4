use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Duration;
use proptest::prelude::*;
use uuid::Uuid;

use super::*;
use crate::money::Money;
use crate::order::{
    CancellationReason, NewOrderLine, Order, OrderCommand, OrderError, OrderStatus,
};
use crate::payment::{
    AuthorizationId, AuthorizationOutcome, AuthorizationRequest, CardBrand, CardLast4, CardSummary,
    DeclineReason, GatewayError, Payment, PaymentCommand, PaymentGateway, PaymentServices,
    PaymentStatus,
};
use crate::stock::{Stock, StockCommand};
use crate::test_support::execute;
use crate::test_support::fixtures::{address, at, customer_id, eur, order_id, qty, sku, token, wh};
use crate::values::{PaymentId, ProductName, Sku};

fn event_id(n: u128) -> Uuid {
    Uuid::from_u128(0xE000 + n)
}

fn input(n: u128, event: CheckoutEvent) -> CheckoutInput {
    CheckoutInput {
        event_id: event_id(n),
        event,
    }
}

fn placed_event() -> CheckoutEvent {
    CheckoutEvent::OrderPlaced {
        order_id: order_id(1),
        lines: vec![
            CheckoutLine {
                sku: sku("MUG"),
                quantity: qty(2),
            },
            CheckoutLine {
                sku: sku("PLATE"),
                quantity: qty(1),
            },
        ],
        total: eur(2500),
        payment_method: token(),
        placed_at: at(0),
    }
}

fn pid() -> PaymentId {
    CheckoutProcess::payment_id_for(order_id(1))
}

fn reserved(s: &str) -> CheckoutEvent {
    CheckoutEvent::StockReserved {
        order_id: order_id(1),
        sku: sku(s),
    }
}

fn released(s: &str) -> CheckoutEvent {
    CheckoutEvent::StockReleased {
        order_id: order_id(1),
        sku: sku(s),
    }
}

fn rejected(s: &str) -> CheckoutEvent {
    CheckoutEvent::StockRejected {
        order_id: order_id(1),
        sku: sku(s),
        requested: qty(1),
        available: 0,
    }
}

fn authorized() -> CheckoutEvent {
    CheckoutEvent::PaymentAuthorized {
        order_id: order_id(1),
        payment_id: pid(),
        amount: eur(2500),
    }
}

fn captured() -> CheckoutEvent {
    CheckoutEvent::PaymentCaptured {
        order_id: order_id(1),
        payment_id: pid(),
        amount: eur(2500),
    }
}

fn voided() -> CheckoutEvent {
    CheckoutEvent::PaymentVoided {
        order_id: order_id(1),
        payment_id: pid(),
    }
}

fn confirmed() -> CheckoutEvent {
    CheckoutEvent::OrderConfirmed {
        order_id: order_id(1),
    }
}

fn cancelled(reason: CancellationReason) -> CheckoutEvent {
    CheckoutEvent::OrderCancelled {
        order_id: order_id(1),
        reason,
    }
}

fn cancelled_by_customer() -> CheckoutEvent {
    cancelled(CancellationReason::CustomerRequest)
}

fn deadline() -> CheckoutEvent {
    CheckoutEvent::PaymentDeadlinePassed {
        order_id: order_id(1),
    }
}

/// Feeds inputs in order, returning the final state and the commands of the last input.
fn run(events: Vec<CheckoutEvent>) -> (CheckoutProcess, Vec<TargetedCommand>) {
    let mut process = CheckoutProcess::default();
    let mut last = Vec::new();
    for (n, event) in events.into_iter().enumerate() {
        let decision = process.handle(&input(n as u128, event), &CheckoutPolicy::default());
        process = decision.process;
        last = decision.commands.into_iter().map(|c| c.command).collect();
    }
    (process, last)
}

/// Given/when/then for the process: `given` feeds a history, `when` handles one more event
/// (checking it is deterministic and that its redelivery is a no-op), `then_*` check the
/// outcome.
struct Given {
    process: CheckoutProcess,
    next: u128,
}

fn given(history: Vec<CheckoutEvent>) -> Given {
    let mut process = CheckoutProcess::default();
    let mut next = 0;
    for event in history {
        process = process
            .handle(&input(next, event), &CheckoutPolicy::default())
            .process;
        next += 1;
    }
    Given { process, next }
}

struct Then {
    process: CheckoutProcess,
    commands: Vec<CheckoutCommand>,
}

impl Given {
    fn when(self, event: CheckoutEvent) -> Then {
        let policy = CheckoutPolicy::default();
        let input = input(self.next, event);
        let decision = self.process.handle(&input, &policy);
        assert_eq!(
            decision,
            self.process.handle(&input, &policy),
            "deterministic"
        );
        let ids: std::collections::BTreeSet<Uuid> =
            decision.commands.iter().map(|c| c.command_id).collect();
        assert_eq!(
            ids.len(),
            decision.commands.len(),
            "command ids are distinct"
        );
        let again = decision.process.handle(&input, &policy);
        assert!(again.commands.is_empty(), "redelivery sends nothing");
        assert_eq!(
            again.process, decision.process,
            "redelivery changes nothing"
        );
        Then {
            process: decision.process,
            commands: decision.commands,
        }
    }
}

impl Then {
    fn then_commands(self, expected: Vec<TargetedCommand>) -> Self {
        let commands: Vec<TargetedCommand> =
            self.commands.iter().map(|c| c.command.clone()).collect();
        assert_eq!(commands, expected);
        self
    }

    fn then_phase(self, phase: CheckoutPhase) -> Self {
        assert_eq!(self.process.phase(), phase);
        self
    }

    fn then_payment(self, payment: PaymentProgress) -> Self {
        assert_eq!(self.process.payment(), payment);
        self
    }

    fn then_line(self, s: &str, state: LineReservation) -> Self {
        assert_eq!(self.process.lines()[&sku(s)], state, "line {s}");
        self
    }
}

fn capture() -> TargetedCommand {
    TargetedCommand::Payment {
        payment_id: pid(),
        command: PaymentCommand::CapturePayment,
    }
}

fn void() -> TargetedCommand {
    TargetedCommand::Payment {
        payment_id: pid(),
        command: PaymentCommand::VoidPayment,
    }
}

fn to_order(command: OrderCommand) -> TargetedCommand {
    TargetedCommand::Order {
        order_id: order_id(1),
        command,
    }
}

fn to_stock(s: &str, command: StockCommand) -> TargetedCommand {
    TargetedCommand::Stock {
        sku: sku(s),
        command,
    }
}

fn release(s: &str) -> TargetedCommand {
    to_stock(
        s,
        StockCommand::ReleaseReservation {
            sku: sku(s),
            order_id: order_id(1),
        },
    )
}

#[test]
fn order_placed_reserves_every_line_until_the_deadline() {
    let (process, commands) = run(vec![placed_event()]);
    let expires_at = at(15);
    assert_eq!(
        commands,
        vec![
            to_stock(
                "MUG",
                StockCommand::ReserveStock {
                    sku: sku("MUG"),
                    order_id: order_id(1),
                    quantity: qty(2),
                    expires_at
                }
            ),
            to_stock(
                "PLATE",
                StockCommand::ReserveStock {
                    sku: sku("PLATE"),
                    order_id: order_id(1),
                    quantity: qty(1),
                    expires_at
                }
            ),
        ]
    );
    assert_eq!(process.phase(), CheckoutPhase::Reserving);
    assert_eq!(process.deadline(), Some(expires_at));
}

#[test]
fn all_lines_reserved_authorizes_payment() {
    let (_, commands) = run(vec![placed_event(), reserved("MUG")]);
    assert_eq!(
        commands,
        vec![to_order(OrderCommand::RecordStockReserved {
            sku: sku("MUG")
        })]
    );
    let (process, commands) = run(vec![placed_event(), reserved("MUG"), reserved("PLATE")]);
    assert_eq!(
        commands,
        vec![
            to_order(OrderCommand::RecordStockReserved { sku: sku("PLATE") }),
            TargetedCommand::Payment {
                payment_id: pid(),
                command: PaymentCommand::AuthorizePayment {
                    payment_id: pid(),
                    order_id: order_id(1),
                    amount: eur(2500),
                    payment_method: token(),
                }
            },
        ]
    );
    assert_eq!(process.phase(), CheckoutPhase::Authorizing);
}

#[test]
fn authorized_confirms_without_capturing() {
    given(vec![placed_event(), reserved("MUG"), reserved("PLATE")])
        .when(authorized())
        .then_commands(vec![
            to_order(OrderCommand::RecordPaymentAuthorized {
                payment_id: pid(),
                amount: eur(2500),
            }),
            to_order(OrderCommand::ConfirmOrder),
        ])
        .then_phase(CheckoutPhase::Confirming)
        .then_payment(PaymentProgress::Authorized);
}

#[test]
fn confirmed_order_captures_then_records_capture() {
    let then = given(vec![
        placed_event(),
        reserved("MUG"),
        reserved("PLATE"),
        authorized(),
    ])
    .when(confirmed())
    .then_commands(vec![capture()])
    .then_phase(CheckoutPhase::Capturing);
    assert_eq!(then.process.deadline(), None);
    let then = given(vec![
        placed_event(),
        reserved("MUG"),
        reserved("PLATE"),
        authorized(),
        confirmed(),
    ])
    .when(captured())
    .then_commands(vec![to_order(OrderCommand::RecordPaymentCaptured {
        payment_id: pid(),
        amount: eur(2500),
    })])
    .then_phase(CheckoutPhase::Completed);
    assert!(then.process.is_finished());
    // Cancelling the confirmed, captured order later is fulfilment's (refund) job.
    given(vec![
        placed_event(),
        reserved("MUG"),
        reserved("PLATE"),
        authorized(),
        confirmed(),
        captured(),
    ])
    .when(cancelled_by_customer())
    .then_commands(vec![])
    .then_phase(CheckoutPhase::Completed);
}

#[test]
fn rejected_line_releases_reserved_lines_and_cancels() {
    let (process, commands) = run(vec![placed_event(), reserved("MUG"), rejected("PLATE")]);
    assert_eq!(
        commands,
        vec![
            to_order(OrderCommand::RecordStockRejected {
                sku: sku("PLATE"),
                requested: qty(1),
                available: 0
            }),
            release("MUG"),
            to_order(OrderCommand::CancelOrder {
                reason: CancellationReason::OutOfStock { sku: sku("PLATE") }
            }),
        ]
    );
    assert_eq!(process.phase(), CheckoutPhase::Compensating);
    let (process, _) = run(vec![
        placed_event(),
        reserved("MUG"),
        rejected("PLATE"),
        released("MUG"),
    ]);
    assert_eq!(process.phase(), CheckoutPhase::Cancelled);
}

#[test]
fn late_reservation_after_rejection_is_released() {
    let (process, commands) = run(vec![placed_event(), rejected("PLATE"), reserved("MUG")]);
    assert_eq!(commands, vec![release("MUG")]);
    assert_eq!(process.phase(), CheckoutPhase::Compensating);
}

#[test]
fn declined_payment_releases_stock_and_cancels() {
    let (process, commands) = run(vec![
        placed_event(),
        reserved("MUG"),
        reserved("PLATE"),
        CheckoutEvent::PaymentDeclined {
            order_id: order_id(1),
            payment_id: pid(),
            reason: DeclineReason::Timeout,
        },
    ]);
    assert_eq!(
        commands,
        vec![
            to_order(OrderCommand::RecordPaymentDeclined {
                payment_id: pid(),
                reason: DeclineReason::Timeout
            }),
            release("MUG"),
            release("PLATE"),
            to_order(OrderCommand::CancelOrder {
                reason: CancellationReason::PaymentDeclined {
                    reason: DeclineReason::Timeout
                }
            }),
        ]
    );
    assert_eq!(process.phase(), CheckoutPhase::Compensating);
}

#[test]
fn deadline_before_payment_releases_and_cancels() {
    let (process, commands) = run(vec![placed_event(), reserved("MUG"), deadline()]);
    assert_eq!(
        commands,
        vec![
            release("MUG"),
            to_order(OrderCommand::CancelOrder {
                reason: CancellationReason::ReservationExpired
            }),
        ]
    );
    assert_eq!(
        process.cancel_reason(),
        Some(&CancellationReason::ReservationExpired)
    );
}

#[test]
fn authorization_after_deadline_is_voided() {
    let (process, commands) = run(vec![
        placed_event(),
        reserved("MUG"),
        reserved("PLATE"),
        deadline(),
        authorized(),
    ]);
    assert_eq!(
        commands,
        vec![TargetedCommand::Payment {
            payment_id: pid(),
            command: PaymentCommand::VoidPayment
        }]
    );
    assert_eq!(process.payment(), PaymentProgress::VoidRequested);
    let (process, _) = run(vec![
        placed_event(),
        reserved("MUG"),
        reserved("PLATE"),
        deadline(),
        authorized(),
        released("MUG"),
        released("PLATE"),
        CheckoutEvent::PaymentVoided {
            order_id: order_id(1),
            payment_id: pid(),
        },
    ]);
    assert_eq!(process.phase(), CheckoutPhase::Cancelled);
}

#[test]
fn deadline_after_authorization_is_ignored() {
    let (process, commands) = run(vec![
        placed_event(),
        reserved("MUG"),
        reserved("PLATE"),
        authorized(),
        deadline(),
    ]);
    assert!(commands.is_empty());
    assert_eq!(process.phase(), CheckoutPhase::Confirming);
}

// ---- cancelled by someone else (customer or merchant) ----

#[test]
fn outside_cancel_while_reserving_releases_held_and_pending_lines() {
    given(vec![placed_event(), reserved("MUG")])
        .when(cancelled_by_customer())
        // MUG is held; PLATE is still pending: its release queues behind its reservation
        // (or is a no-op in Stock). No CancelOrder of our own: the order is cancelled.
        .then_commands(vec![release("MUG"), release("PLATE")])
        .then_phase(CheckoutPhase::Compensating)
        .then_line("MUG", LineReservation::ReleaseRequested)
        .then_line("PLATE", LineReservation::Requested)
        .then_payment(PaymentProgress::NotRequested);
    let then = given(vec![placed_event(), reserved("MUG")])
        .when(cancelled(CancellationReason::MerchantRequest));
    assert_eq!(
        then.process.cancel_reason(),
        Some(&CancellationReason::MerchantRequest)
    );
}

#[test]
fn outside_cancel_before_any_outcome_releases_every_line() {
    given(vec![placed_event()])
        .when(cancelled_by_customer())
        .then_commands(vec![release("MUG"), release("PLATE")])
        .then_phase(CheckoutPhase::Compensating);
}

#[test]
fn reservation_landing_after_an_outside_cancel_is_released_not_recorded() {
    given(vec![
        placed_event(),
        reserved("MUG"),
        cancelled_by_customer(),
    ])
    .when(reserved("PLATE"))
    .then_commands(vec![release("PLATE")])
    .then_line("PLATE", LineReservation::ReleaseRequested)
    .then_phase(CheckoutPhase::Compensating);
    // A rejection after the cancellation settles its line without recording anything.
    given(vec![
        placed_event(),
        reserved("MUG"),
        cancelled_by_customer(),
        released("MUG"),
    ])
    .when(rejected("PLATE"))
    .then_commands(vec![])
    .then_phase(CheckoutPhase::Cancelled);
}

#[test]
fn outside_cancel_finishes_once_every_line_is_released() {
    given(vec![
        placed_event(),
        reserved("MUG"),
        cancelled_by_customer(),
        reserved("PLATE"),
        released("MUG"),
    ])
    .when(released("PLATE"))
    .then_commands(vec![])
    .then_phase(CheckoutPhase::Cancelled);
}

#[test]
fn outside_cancel_while_authorizing_voids_the_late_authorization() {
    let history = vec![placed_event(), reserved("MUG"), reserved("PLATE")];
    given(history.clone())
        .when(cancelled_by_customer())
        .then_commands(vec![release("MUG"), release("PLATE")])
        .then_phase(CheckoutPhase::Compensating)
        .then_payment(PaymentProgress::Requested);
    // The authorization requested before the cancellation lands: void it, never capture.
    let mut history = history;
    history.push(cancelled_by_customer());
    given(history.clone())
        .when(authorized())
        .then_commands(vec![void()])
        .then_payment(PaymentProgress::VoidRequested);
    history.extend([authorized(), released("MUG"), released("PLATE")]);
    given(history)
        .when(voided())
        .then_commands(vec![])
        .then_phase(CheckoutPhase::Cancelled)
        .then_payment(PaymentProgress::Voided);
}

#[test]
fn outside_cancel_while_authorizing_then_decline_settles() {
    given(vec![
        placed_event(),
        reserved("MUG"),
        reserved("PLATE"),
        cancelled_by_customer(),
        released("MUG"),
        released("PLATE"),
    ])
    .when(CheckoutEvent::PaymentDeclined {
        order_id: order_id(1),
        payment_id: pid(),
        reason: DeclineReason::CardDeclined,
    })
    // Nothing to record on a cancelled order.
    .then_commands(vec![])
    .then_phase(CheckoutPhase::Cancelled);
}

#[test]
fn outside_cancel_winning_the_race_against_confirmation_voids_instead_of_capturing() {
    // ConfirmOrder was sent (and is refused by the cancelled order): void the
    // authorization and release everything.
    given(vec![
        placed_event(),
        reserved("MUG"),
        reserved("PLATE"),
        authorized(),
    ])
    .when(cancelled_by_customer())
    .then_commands(vec![release("MUG"), release("PLATE"), void()])
    .then_phase(CheckoutPhase::Compensating)
    .then_payment(PaymentProgress::VoidRequested);
    given(vec![
        placed_event(),
        reserved("MUG"),
        reserved("PLATE"),
        authorized(),
        cancelled_by_customer(),
        released("MUG"),
        voided(),
    ])
    .when(released("PLATE"))
    .then_phase(CheckoutPhase::Cancelled);
}

#[test]
fn outside_cancel_overtaking_our_own_cancel_keeps_the_recorded_reason() {
    // The deadline made the checkout send CancelOrder(reservation_expired), but the
    // customer's cancellation landed first: nothing new to send, and the reason is the one
    // the order recorded.
    let then = given(vec![placed_event(), reserved("MUG"), deadline()])
        .when(cancelled_by_customer())
        .then_commands(vec![])
        .then_phase(CheckoutPhase::Compensating);
    assert_eq!(
        then.process.cancel_reason(),
        Some(&CancellationReason::CustomerRequest)
    );
}

#[test]
fn order_events_map_with_the_aggregate_id() {
    use crate::order::OrderEvent;
    assert_eq!(
        CheckoutEvent::from_order_event(order_id(1), &OrderEvent::OrderConfirmed),
        Some(confirmed())
    );
    assert_eq!(
        CheckoutEvent::from_order_event(
            order_id(1),
            &OrderEvent::OrderCancelled {
                reason: CancellationReason::CustomerRequest
            }
        ),
        Some(cancelled_by_customer())
    );
    assert_eq!(
        CheckoutEvent::from_order_event(order_id(1), &OrderEvent::OrderDelivered),
        None
    );
}

#[test]
fn same_input_gives_same_commands_and_redelivery_gives_none() {
    let policy = CheckoutPolicy::default();
    let process = CheckoutProcess::default();
    let first = process.handle(&input(1, placed_event()), &policy);
    let again = process.handle(&input(1, placed_event()), &policy);
    assert_eq!(first, again);
    assert!(first.commands.iter().all(|c| c.command_id != Uuid::nil()));
    let ids: std::collections::BTreeSet<Uuid> =
        first.commands.iter().map(|c| c.command_id).collect();
    assert_eq!(ids.len(), first.commands.len(), "ids are distinct");
    let redelivered = first.process.handle(&input(1, placed_event()), &policy);
    assert!(redelivered.commands.is_empty());
    assert_eq!(redelivered.process, first.process);
    // Another event id gives other command ids.
    let other = process.handle(&input(2, placed_event()), &policy);
    assert_ne!(other.commands[0].command_id, first.commands[0].command_id);
}

#[test]
fn events_of_other_orders_and_before_placement_are_ignored() {
    let (process, commands) = run(vec![reserved("MUG")]);
    assert!(commands.is_empty());
    assert_eq!(process.phase(), CheckoutPhase::NotStarted);
    let (process, commands) = run(vec![
        placed_event(),
        CheckoutEvent::StockReserved {
            order_id: order_id(2),
            sku: sku("MUG"),
        },
    ]);
    assert!(commands.is_empty());
    assert_eq!(process.lines()[&sku("MUG")], LineReservation::Requested);
}

#[test]
fn state_round_trips_through_json() {
    let (process, _) = run(vec![placed_event(), reserved("MUG"), rejected("PLATE")]);
    let json = serde_json::to_string(&process).unwrap();
    let back: CheckoutProcess = serde_json::from_str(&json).unwrap();
    assert_eq!(back, process);
}

#[test]
fn targets_name_their_aggregate() {
    let command = release("MUG");
    assert_eq!(command.aggregate_type(), "Stock");
    assert_eq!(command.aggregate_id(), "MUG");
    assert_eq!(
        to_order(OrderCommand::ConfirmOrder).aggregate_type(),
        "Order"
    );
}

// ---- simulation: any interleaving ends confirmed-and-captured or cancelled-and-clean ----

struct ScriptedGateway {
    approve: bool,
}

#[async_trait]
impl PaymentGateway for ScriptedGateway {
    async fn authorize(&self, _request: &AuthorizationRequest) -> AuthorizationOutcome {
        if self.approve {
            AuthorizationOutcome::Approved {
                authorization_id: AuthorizationId::new("auth_1").unwrap(),
                card: CardSummary {
                    brand: CardBrand::Visa,
                    last4: CardLast4::new("4242").unwrap(),
                },
            }
        } else {
            AuthorizationOutcome::Declined {
                reason: DeclineReason::InsufficientFunds,
            }
        }
    }

    async fn capture(&self, _: &AuthorizationId, _: Money, _: &str) -> Result<(), GatewayError> {
        Ok(())
    }

    async fn void(&self, _: &AuthorizationId, _: &str) -> Result<(), GatewayError> {
        Ok(())
    }

    async fn refund(&self, _: &AuthorizationId, _: Money, _: &str) -> Result<(), GatewayError> {
        Ok(())
    }
}

/// The aggregates of one checkout, with per-aggregate FIFO command queues and per-stream
/// FIFO event queues, as the runtime will have them.
struct World {
    order: Order,
    stocks: BTreeMap<Sku, Stock>,
    payment: Payment,
    services: PaymentServices,
    process: CheckoutProcess,
    command_queues: BTreeMap<String, VecDeque<CheckoutCommand>>,
    event_queues: BTreeMap<String, VecDeque<CheckoutInput>>,
    delivered: Vec<CheckoutInput>,
    deadline_fired: bool,
    /// Outside cancellations attempted so far, with the order status and checkout phase
    /// they met and whether the order accepted them.
    cancels: Vec<CancelAttempt>,
}

#[derive(Debug, Clone)]
struct CancelAttempt {
    status: OrderStatus,
    phase: CheckoutPhase,
    accepted: bool,
}

impl World {
    fn cancelled_from_outside(&self) -> bool {
        self.cancels.iter().any(|c| c.accepted)
    }

    /// A customer or the merchant cancels the order, outside the checkout.
    fn cancel_from_outside(&mut self, reason: CancellationReason) -> Result<(), TestCaseError> {
        let status = self.order.status();
        let phase = self.process.phase();
        let result = execute(&mut self.order, OrderCommand::CancelOrder { reason }, &());
        match &result {
            Ok(_) => {}
            // Lost the race against our own cancellation, or the checkout is capturing.
            Err(OrderError::AlreadyCancelled) => {
                prop_assert_eq!(status, OrderStatus::Cancelled)
            }
            Err(OrderError::CapturePending) => prop_assert_eq!(status, OrderStatus::Confirmed),
            Err(other) => prop_assert!(false, "outside cancel refused: {:?}", other),
        }
        let n = self.cancels.len() as u128;
        self.cancels.push(CancelAttempt {
            status,
            phase,
            accepted: result.is_ok(),
        });
        let queue = self.event_queues.entry("order".to_owned()).or_default();
        for (i, event) in result.unwrap_or_default().iter().enumerate() {
            if let Some(event) = CheckoutEvent::from_order_event(order_id(1), event) {
                queue.push_back(CheckoutInput {
                    event_id: Uuid::from_u128(0xCA00_0000 + (n << 8) + i as u128),
                    event,
                });
            }
        }
        Ok(())
    }
}

impl World {
    fn dispatch(&mut self, commands: Vec<CheckoutCommand>) {
        for command in commands {
            let key = format!(
                "{}/{}",
                command.command.aggregate_type(),
                command.command.aggregate_id()
            );
            self.command_queues
                .entry(key)
                .or_default()
                .push_back(command);
        }
    }

    fn deliver(&mut self, input: CheckoutInput) -> Result<(), TestCaseError> {
        let policy = CheckoutPolicy::default();
        let decision = self.process.handle(&input, &policy);
        // Determinism: the same state and input give the same decision.
        prop_assert_eq!(&decision, &self.process.handle(&input, &policy));
        self.process = decision.process;
        self.delivered.push(input);
        self.dispatch(decision.commands);
        Ok(())
    }

    fn redeliver(&mut self, pick: usize) -> Result<(), TestCaseError> {
        if self.delivered.is_empty() {
            return Ok(());
        }
        let input = self.delivered[pick % self.delivered.len()].clone();
        let decision = self.process.handle(&input, &CheckoutPolicy::default());
        prop_assert!(decision.commands.is_empty(), "redelivery produced commands");
        prop_assert_eq!(&decision.process, &self.process);
        Ok(())
    }

    fn execute(&mut self, command: CheckoutCommand) -> Result<(), TestCaseError> {
        let (stream, inputs): (String, Vec<CheckoutEvent>) = match command.command {
            TargetedCommand::Stock { sku, command: c } => {
                let stock = self.stocks.entry(sku.clone()).or_default();
                let events = execute(stock, c, &());
                prop_assert!(events.is_ok(), "stock refused: {:?}", events);
                let events = events.unwrap_or_default();
                (
                    format!("stock/{sku}"),
                    events
                        .iter()
                        .filter_map(CheckoutEvent::from_stock_event)
                        .collect(),
                )
            }
            TargetedCommand::Order {
                order_id,
                command: c,
            } => {
                let events = execute(&mut self.order, c.clone(), &());
                if let Err(error) = &events {
                    // Only an outside cancellation may turn down what the checkout sent
                    // before it saw that cancellation; the runtime drops such a command.
                    let overtaken = self.cancelled_from_outside()
                        && self.order.status() == OrderStatus::Cancelled
                        && matches!(
                            error,
                            OrderError::AlreadyCancelled
                                | OrderError::InvalidTransition {
                                    status: OrderStatus::Cancelled,
                                    ..
                                }
                        );
                    prop_assert!(overtaken, "order refused {:?}: {:?}", c, error);
                }
                let events = events.unwrap_or_default();
                (
                    "order".to_owned(),
                    events
                        .iter()
                        .filter_map(|e| CheckoutEvent::from_order_event(order_id, e))
                        .collect(),
                )
            }
            TargetedCommand::Payment {
                payment_id,
                command: c,
            } => {
                let events = execute(&mut self.payment, c, &self.services);
                prop_assert!(events.is_ok(), "payment refused: {:?}", events);
                let events = events.unwrap_or_default();
                (
                    "payment".to_owned(),
                    events
                        .iter()
                        .filter_map(|e| CheckoutEvent::from_payment_event(payment_id, e))
                        .collect(),
                )
            }
        };
        let queue = self.event_queues.entry(stream).or_default();
        for (i, event) in inputs.into_iter().enumerate() {
            queue.push_back(CheckoutInput {
                event_id: Uuid::new_v5(&command.command_id, &i.to_le_bytes()),
                event,
            });
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct Scenario {
    lines: Vec<u32>,
    on_hand: Vec<(u32, u32)>,
    approve: bool,
    deadline_at: Option<usize>,
    /// Steps from which an outside cancellation (customer, merchant) is due, in order.
    cancel_at: Vec<usize>,
    choices: Vec<(usize, bool)>,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (1..=3usize)
        .prop_flat_map(|n| {
            (
                prop::collection::vec(1..=4u32, n),
                prop::collection::vec((0..=4u32, 0..=2u32), n),
                any::<bool>(),
                prop::option::of(0..40usize),
                prop::collection::vec(0..40usize, 0..=2),
                prop::collection::vec((any::<usize>(), prop::bool::weighted(0.1)), 200),
            )
        })
        .prop_map(
            |(lines, on_hand, approve, deadline_at, mut cancel_at, choices)| {
                cancel_at.sort_unstable();
                Scenario {
                    lines,
                    on_hand,
                    approve,
                    deadline_at,
                    cancel_at,
                    choices,
                }
            },
        )
}

fn simulate(scenario: &Scenario) -> Result<World, TestCaseError> {
    let skus: Vec<Sku> = (0..scenario.lines.len())
        .map(|i| sku(&format!("SKU{i}")))
        .collect();
    let mut world = World {
        order: Order::default(),
        stocks: BTreeMap::new(),
        payment: Payment::default(),
        services: PaymentServices::new(Arc::new(ScriptedGateway {
            approve: scenario.approve,
        })),
        process: CheckoutProcess::default(),
        command_queues: BTreeMap::new(),
        event_queues: BTreeMap::new(),
        delivered: Vec::new(),
        deadline_fired: false,
        cancels: Vec::new(),
    };
    // Stock on hand, split over two warehouses so allocation spans them.
    for (sku, (a, b)) in skus.iter().zip(&scenario.on_hand) {
        let stock = world.stocks.entry(sku.clone()).or_default();
        for (warehouse, units) in [("w1", *a), ("w2", *b)] {
            if units > 0 {
                let receive = StockCommand::ReceiveStock {
                    sku: sku.clone(),
                    warehouse: wh(warehouse),
                    quantity: qty(units),
                };
                execute(stock, receive, &()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
        }
    }
    let lines = skus
        .iter()
        .zip(&scenario.lines)
        .map(|(sku, n)| NewOrderLine {
            sku: sku.clone(),
            name: ProductName::new("Thing").unwrap(),
            quantity: qty(*n),
            unit_price: eur(700),
        })
        .collect();
    let placed = execute(
        &mut world.order,
        OrderCommand::PlaceOrder {
            order_id: order_id(1),
            customer_id: customer_id(1),
            lines,
            shipping_address: address(),
            payment_method: token(),
            placed_at: at(0),
        },
        &(),
    )
    .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let first = placed
        .iter()
        .find_map(|e| CheckoutEvent::from_order_event(order_id(1), e))
        .ok_or_else(|| TestCaseError::fail("no OrderPlaced"))?;
    world.deliver(CheckoutInput {
        event_id: event_id(0),
        event: first,
    })?;

    let mut step = 0;
    loop {
        // What could happen next: head of any command queue, head of any event stream, or
        // the deadline tick (scheduled by the runtime while the state has a deadline).
        let mut options: Vec<(u8, String)> = Vec::new();
        for (key, queue) in &world.command_queues {
            if !queue.is_empty() {
                options.push((0, key.clone()));
            }
        }
        for (key, queue) in &world.event_queues {
            if !queue.is_empty() {
                options.push((1, key.clone()));
            }
        }
        let deadline_due = scenario.deadline_at.is_some_and(|at| step >= at)
            && !world.deadline_fired
            && world.process.deadline().is_some();
        if deadline_due {
            options.push((2, String::new()));
        }
        // An outside cancellation, at any point while the checkout runs (once it has
        // finished, cancelling and refunding is fulfilment's job).
        let cancel_due = scenario
            .cancel_at
            .get(world.cancels.len())
            .is_some_and(|at| step >= *at)
            && !world.process.is_finished();
        if cancel_due {
            options.push((3, String::new()));
        }
        if options.is_empty() {
            break;
        }
        prop_assert!(step < 1_000, "checkout did not settle");
        let (pick, duplicate) = scenario.choices[step % scenario.choices.len()];
        step += 1;
        if duplicate {
            world.redeliver(pick)?;
        }
        let (kind, key) = options[pick % options.len()].clone();
        match kind {
            0 => {
                if let Some(command) = world
                    .command_queues
                    .get_mut(&key)
                    .and_then(VecDeque::pop_front)
                {
                    world.execute(command)?;
                }
            }
            1 => {
                if let Some(input) = world
                    .event_queues
                    .get_mut(&key)
                    .and_then(VecDeque::pop_front)
                {
                    world.deliver(input)?;
                }
            }
            2 => {
                world.deadline_fired = true;
                world.deliver(CheckoutInput {
                    event_id: event_id(999),
                    event: deadline(),
                })?;
            }
            _ => {
                let reason = if world.cancels.is_empty() {
                    CancellationReason::CustomerRequest
                } else {
                    CancellationReason::MerchantRequest
                };
                world.cancel_from_outside(reason)?;
            }
        }
    }
    Ok(world)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever the stock levels, the payment outcome, the deadline, outside cancellations
    /// (customer, merchant) at any point of the checkout, and the interleaving (including
    /// redelivered events), the checkout ends either with the order confirmed, all stock
    /// reserved and the payment captured, or with the order cancelled, every reservation
    /// released and nothing captured; every stock and payment command it sent was accepted,
    /// and an order command was refused only because an outside cancellation overtook it.
    #[test]
    fn every_interleaving_ends_completed_or_cleanly_cancelled(scenario in scenario()) {
        let world = simulate(&scenario)?;
        let order_id = order_id(1);
        match world.process.phase() {
            CheckoutPhase::Completed => {
                prop_assert!(!world.cancelled_from_outside());
                prop_assert_eq!(world.order.status(), OrderStatus::Confirmed);
                prop_assert_eq!(world.order.captured(), world.order.total());
                prop_assert!(world.order.refunded().is_none());
                prop_assert_eq!(world.payment.status(), PaymentStatus::Captured);
                prop_assert_eq!(world.payment.captured(), world.order.total());
                prop_assert_eq!(world.order.lines().len(), world.stocks.len());
                for (progress, (sku, stock)) in world.order.lines().iter().zip(&world.stocks) {
                    prop_assert_eq!(&progress.line.sku, sku);
                    prop_assert!(progress.reserved);
                    // Held, and held once: nothing was released behind the checkout's back.
                    let reservation = stock.reservation(&order_id);
                    prop_assert_eq!(reservation.map(|r| r.quantity), Some(progress.line.quantity));
                    let reserved: u64 = stock.levels().iter().map(|l| l.reserved).sum();
                    prop_assert_eq!(reserved, u64::from(progress.line.quantity.get()));
                }
            }
            CheckoutPhase::Cancelled => {
                prop_assert_eq!(world.order.status(), OrderStatus::Cancelled);
                prop_assert!(world.order.captured().is_none());
                prop_assert!(world.payment.captured().is_none());
                prop_assert!(matches!(
                    world.payment.status(),
                    PaymentStatus::Absent | PaymentStatus::Declined | PaymentStatus::Voided
                ), "payment {:?}", world.payment.status());
                for stock in world.stocks.values() {
                    prop_assert!(stock.reservation(&order_id).is_none());
                    prop_assert_eq!(stock.levels().iter().map(|l| l.reserved).sum::<u64>(), 0);
                }
                if let Some(n) = world.cancels.iter().position(|c| c.accepted) {
                    let reason = if n == 0 {
                        CancellationReason::CustomerRequest
                    } else {
                        CancellationReason::MerchantRequest
                    };
                    prop_assert_eq!(world.process.cancel_reason(), Some(&reason));
                }
            }
            other => prop_assert!(false, "checkout ended in {:?}", other),
        }
        // A cancellation is refused only if the order is already cancelled or its capture
        // is under way.
        for attempt in world.cancels.iter().filter(|c| !c.accepted) {
            prop_assert!(
                matches!(attempt.status, OrderStatus::Cancelled | OrderStatus::Confirmed),
                "{:?}", attempt
            );
        }
        // Enough stock, an approving gateway, no deadline and nobody cancelling always
        // complete.
        let enough = scenario.lines.iter().zip(&scenario.on_hand).all(|(n, (a, b))| n <= &(a + b));
        if enough && scenario.approve && scenario.deadline_at.is_none() && scenario.cancel_at.is_empty() {
            prop_assert_eq!(world.process.phase(), CheckoutPhase::Completed);
        }
    }
}

#[test]
fn policy_sets_the_deadline() {
    let policy = CheckoutPolicy {
        reservation_ttl: Duration::minutes(5),
    };
    let decision = CheckoutProcess::default().handle(&input(1, placed_event()), &policy);
    assert_eq!(decision.process.deadline(), Some(at(5)));
}

#[test]
fn simulation_reaches_both_outcomes() {
    let base = Scenario {
        lines: vec![2, 1],
        on_hand: vec![(1, 1), (1, 0)],
        approve: true,
        deadline_at: None,
        cancel_at: vec![],
        choices: (0..200).map(|i| (i * 7 + 3, i % 5 == 0)).collect(),
    };
    let world = simulate(&base).unwrap();
    assert_eq!(world.process.phase(), CheckoutPhase::Completed);
    assert_eq!(world.order.status(), OrderStatus::Confirmed);
    assert_eq!(world.payment.status(), PaymentStatus::Captured);

    let short = Scenario {
        on_hand: vec![(1, 0), (1, 0)],
        ..base.clone()
    };
    let world = simulate(&short).unwrap();
    assert_eq!(world.process.phase(), CheckoutPhase::Cancelled);
    assert_eq!(world.order.status(), OrderStatus::Cancelled);

    let declined = Scenario {
        approve: false,
        ..base.clone()
    };
    let world = simulate(&declined).unwrap();
    assert_eq!(world.process.phase(), CheckoutPhase::Cancelled);
    assert_eq!(world.payment.status(), PaymentStatus::Declined);

    let expired = Scenario {
        deadline_at: Some(0),
        ..base
    };
    let world = simulate(&expired).unwrap();
    assert_eq!(world.process.phase(), CheckoutPhase::Cancelled);
    assert_eq!(
        world.process.cancel_reason(),
        Some(&CancellationReason::ReservationExpired)
    );
}

#[test]
fn simulation_cancels_from_outside_in_every_phase() {
    // Sweep the point of an outside cancellation over a whole checkout: it lands while
    // reserving, authorizing, confirming and capturing, is refused only while the capture
    // is pending, and every run ends clean (checked by the same simulation as the property).
    let base = Scenario {
        lines: vec![2, 1],
        on_hand: vec![(1, 1), (1, 0)],
        approve: true,
        deadline_at: None,
        cancel_at: vec![],
        choices: (0..200).map(|i| (i * 7 + 3, i % 5 == 0)).collect(),
    };
    let mut accepted_in = std::collections::BTreeSet::new();
    let mut refused_in = std::collections::BTreeSet::new();
    for at in 0..40 {
        let world = simulate(&Scenario {
            cancel_at: vec![at],
            ..base.clone()
        })
        .unwrap();
        let Some(attempt) = world.cancels.first() else {
            // The checkout had finished before this point.
            continue;
        };
        if attempt.accepted {
            accepted_in.insert(format!("{:?}", attempt.phase));
            assert_eq!(world.process.phase(), CheckoutPhase::Cancelled);
            assert_eq!(world.order.status(), OrderStatus::Cancelled);
            assert!(world.order.captured().is_none());
            assert!(world
                .stocks
                .values()
                .all(|s| s.reservation(&order_id(1)).is_none()));
        } else {
            refused_in.insert(format!("{:?}", attempt.status));
            assert_eq!(world.process.phase(), CheckoutPhase::Completed);
        }
    }
    for phase in ["Reserving", "Authorizing", "Confirming"] {
        assert!(accepted_in.contains(phase), "accepted in {accepted_in:?}");
    }
    assert!(
        refused_in.contains("Confirmed"),
        "refused in {refused_in:?}"
    );
}
