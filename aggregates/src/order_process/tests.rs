use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Duration;
use proptest::prelude::*;
use uuid::Uuid;

use super::*;
use crate::money::Money;
use crate::order::{
    CancellationReason, LineUnits, NewOrderLine, Order, OrderCommand, OrderError, OrderStatus,
    ReceivedLine,
};
use crate::payment::{
    AuthorizationId, AuthorizationOutcome, AuthorizationRequest, CardBrand, CardLast4, CardSummary,
    DeclineReason, GatewayError, Payment, PaymentCommand, PaymentGateway, PaymentServices,
    PaymentStatus,
};
use crate::stock::{Stock, StockCommand};
use crate::test_support::execute;
use crate::test_support::fixtures::{address, at, customer_id, eur, order_id, qty, sku, token, wh};
use crate::values::{PaymentId, ProductName, RefundId, Sku};

fn event_id(n: u128) -> Uuid {
    Uuid::from_u128(0xE000 + n)
}

fn input(n: u128, event: ProcessEvent) -> ProcessInput {
    ProcessInput {
        event_id: event_id(n),
        event,
    }
}

fn placed_event() -> ProcessEvent {
    ProcessEvent::OrderPlaced {
        order_id: order_id(1),
        lines: vec![
            ProcessLine {
                sku: sku("MUG"),
                quantity: qty(2),
            },
            ProcessLine {
                sku: sku("PLATE"),
                quantity: qty(1),
            },
        ],
        total: eur(2500),
        payment_method: token(),
        promotions: vec![],
        placed_at: at(0),
    }
}

fn pid() -> PaymentId {
    OrderProcess::payment_id_for(order_id(1))
}

fn reserved(s: &str) -> ProcessEvent {
    ProcessEvent::StockReserved {
        order_id: order_id(1),
        sku: sku(s),
    }
}

fn released(s: &str) -> ProcessEvent {
    ProcessEvent::StockReleased {
        order_id: order_id(1),
        sku: sku(s),
    }
}

fn rejected(s: &str) -> ProcessEvent {
    ProcessEvent::StockRejected {
        order_id: order_id(1),
        sku: sku(s),
        requested: qty(1),
        available: 0,
    }
}

fn authorized() -> ProcessEvent {
    ProcessEvent::PaymentAuthorized {
        order_id: order_id(1),
        payment_id: pid(),
        amount: eur(2500),
    }
}

fn captured() -> ProcessEvent {
    ProcessEvent::PaymentCaptured {
        order_id: order_id(1),
        payment_id: pid(),
        amount: eur(2500),
    }
}

fn voided() -> ProcessEvent {
    ProcessEvent::PaymentVoided {
        order_id: order_id(1),
        payment_id: pid(),
    }
}

fn confirmed() -> ProcessEvent {
    ProcessEvent::OrderConfirmed {
        order_id: order_id(1),
    }
}

fn cancelled(reason: CancellationReason) -> ProcessEvent {
    ProcessEvent::OrderCancelled {
        order_id: order_id(1),
        reason,
    }
}

fn cancelled_by_customer() -> ProcessEvent {
    cancelled(CancellationReason::CustomerRequest)
}

fn deadline() -> ProcessEvent {
    ProcessEvent::PaymentDeadlinePassed {
        order_id: order_id(1),
    }
}

/// Feeds inputs in order, returning the final state and the commands of the last input.
fn run(events: Vec<ProcessEvent>) -> (OrderProcess, Vec<TargetedCommand>) {
    let mut process = OrderProcess::default();
    let mut last = Vec::new();
    for (n, event) in events.into_iter().enumerate() {
        let decision = process.handle(&input(n as u128, event), &ProcessPolicy::default());
        process = decision.process;
        last = decision.commands.into_iter().map(|c| c.command).collect();
    }
    (process, last)
}

/// Given/when/then for the process: `given` feeds a history, `when` handles one more event
/// (checking it is deterministic and that its redelivery is a no-op), `then_*` check the
/// outcome.
struct Given {
    process: OrderProcess,
    next: u128,
}

fn given(history: Vec<ProcessEvent>) -> Given {
    let mut process = OrderProcess::default();
    let mut next = 0;
    for event in history {
        process = process
            .handle(&input(next, event), &ProcessPolicy::default())
            .process;
        next += 1;
    }
    Given { process, next }
}

struct Then {
    process: OrderProcess,
    commands: Vec<ProcessCommand>,
}

impl Given {
    fn when(self, event: ProcessEvent) -> Then {
        let policy = ProcessPolicy::default();
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

    fn then_phase(self, phase: ProcessPhase) -> Self {
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
    assert_eq!(process.phase(), ProcessPhase::Reserving);
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
    assert_eq!(process.phase(), ProcessPhase::Authorizing);
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
        .then_phase(ProcessPhase::Confirming)
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
    .then_phase(ProcessPhase::Capturing);
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
    .then_phase(ProcessPhase::Completed);
    assert_eq!(then.process.payment(), PaymentProgress::Captured);
}

fn checkout_completed() -> Vec<ProcessEvent> {
    vec![
        placed_event(),
        reserved("MUG"),
        reserved("PLATE"),
        authorized(),
        confirmed(),
        captured(),
    ]
}

fn refund_id(n: u128) -> RefundId {
    RefundId::new(Uuid::from_u128(0xF000 + n))
}

fn refund_requested(n: u128, amount: i64) -> ProcessEvent {
    ProcessEvent::RefundRequested {
        order_id: order_id(1),
        refund_id: refund_id(n),
        amount: eur(amount),
    }
}

fn payment_refunded(n: u128, amount: i64, total: i64) -> ProcessEvent {
    ProcessEvent::PaymentRefunded {
        order_id: order_id(1),
        payment_id: pid(),
        refund_id: refund_id(n),
        amount: eur(amount),
        total_refunded: eur(total),
    }
}

fn refund_payment(n: u128, amount: i64) -> TargetedCommand {
    TargetedCommand::Payment {
        payment_id: pid(),
        command: PaymentCommand::RefundPayment {
            refund_id: refund_id(n),
            amount: eur(amount),
        },
    }
}

#[test]
fn a_cancellation_after_the_capture_releases_every_line_and_ends_once_refunded() {
    let mut history = checkout_completed();
    given(history.clone())
        .when(cancelled_by_customer())
        .then_commands(vec![release("MUG"), release("PLATE")])
        .then_phase(ProcessPhase::Compensating);
    // The order requested the refund with its cancellation.
    history.push(cancelled_by_customer());
    given(history.clone())
        .when(refund_requested(1, 2500))
        .then_commands(vec![refund_payment(1, 2500)]);
    history.extend([
        refund_requested(1, 2500),
        released("MUG"),
        released("PLATE"),
    ]);
    given(history.clone())
        .when(payment_refunded(1, 2500, 2500))
        .then_commands(vec![to_order(OrderCommand::RecordRefund {
            refund_id: refund_id(1),
            amount: eur(2500),
        })])
        .then_phase(ProcessPhase::Cancelled);
}

#[test]
fn a_cancellation_while_the_capture_is_in_flight_refunds_it_once_recorded() {
    let mut history = checkout_completed();
    history.pop();
    given(history.clone())
        .when(cancelled_by_customer())
        .then_commands(vec![release("MUG"), release("PLATE")])
        .then_phase(ProcessPhase::Compensating);
    history.extend([cancelled_by_customer(), released("MUG"), released("PLATE")]);
    // The capture lands after the cancellation: record it (the order then asks for the
    // refund), and stay compensating until the money is back.
    given(history.clone())
        .when(captured())
        .then_commands(vec![to_order(OrderCommand::RecordPaymentCaptured {
            payment_id: pid(),
            amount: eur(2500),
        })])
        .then_phase(ProcessPhase::Compensating)
        .then_payment(PaymentProgress::Captured);
    history.extend([captured(), refund_requested(1, 2500)]);
    given(history)
        .when(payment_refunded(1, 2500, 2500))
        .then_phase(ProcessPhase::Cancelled);
}

#[test]
fn shipments_commit_exactly_the_shipped_units() {
    given(checkout_completed())
        .when(ProcessEvent::OrderShipped {
            order_id: order_id(1),
            lines: vec![ProcessLine {
                sku: sku("MUG"),
                quantity: qty(1),
            }],
        })
        .then_commands(vec![to_stock(
            "MUG",
            StockCommand::CommitReservation {
                sku: sku("MUG"),
                order_id: order_id(1),
                quantity: Some(qty(1)),
            },
        )])
        .then_phase(ProcessPhase::Completed);
}

#[test]
fn a_cancelled_remainder_is_released_and_returns_are_restocked() {
    given(checkout_completed())
        .when(ProcessEvent::OrderRemainderCancelled {
            order_id: order_id(1),
            skus: vec![sku("PLATE")],
        })
        .then_commands(vec![release("PLATE")])
        .then_phase(ProcessPhase::Completed);
    let return_id = crate::values::ReturnId::new(Uuid::from_u128(5));
    given(checkout_completed())
        .when(ProcessEvent::ReturnReceived {
            order_id: order_id(1),
            return_id,
            warehouse: wh("main"),
            restock: vec![ProcessLine {
                sku: sku("MUG"),
                quantity: qty(1),
            }],
        })
        .then_commands(vec![to_stock(
            "MUG",
            StockCommand::RestockReturn {
                sku: sku("MUG"),
                warehouse: wh("main"),
                quantity: qty(1),
                order_id: order_id(1),
                return_id,
            },
        )]);
}

#[test]
fn a_refused_refund_is_recorded_as_failed() {
    let mut history = checkout_completed();
    history.push(refund_requested(1, 100));
    given(history)
        .when(ProcessEvent::PaymentRefundFailed {
            order_id: order_id(1),
            payment_id: pid(),
            refund_id: refund_id(1),
        })
        .then_commands(vec![to_order(OrderCommand::RecordRefundFailed {
            refund_id: refund_id(1),
        })]);
}

#[test]
fn a_refund_requested_twice_is_made_once() {
    let mut history = checkout_completed();
    history.push(refund_requested(1, 100));
    given(history)
        .when(refund_requested(1, 100))
        .then_commands(vec![]);
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
    assert_eq!(process.phase(), ProcessPhase::Compensating);
    let (process, _) = run(vec![
        placed_event(),
        reserved("MUG"),
        rejected("PLATE"),
        released("MUG"),
    ]);
    assert_eq!(process.phase(), ProcessPhase::Cancelled);
}

#[test]
fn late_reservation_after_rejection_is_released() {
    let (process, commands) = run(vec![placed_event(), rejected("PLATE"), reserved("MUG")]);
    assert_eq!(commands, vec![release("MUG")]);
    assert_eq!(process.phase(), ProcessPhase::Compensating);
}

#[test]
fn declined_payment_releases_stock_and_cancels() {
    let (process, commands) = run(vec![
        placed_event(),
        reserved("MUG"),
        reserved("PLATE"),
        ProcessEvent::PaymentDeclined {
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
    assert_eq!(process.phase(), ProcessPhase::Compensating);
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
        ProcessEvent::PaymentVoided {
            order_id: order_id(1),
            payment_id: pid(),
        },
    ]);
    assert_eq!(process.phase(), ProcessPhase::Cancelled);
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
    assert_eq!(process.phase(), ProcessPhase::Confirming);
}

// ---- cancelled by someone else (customer or merchant) ----

#[test]
fn outside_cancel_while_reserving_releases_held_and_pending_lines() {
    given(vec![placed_event(), reserved("MUG")])
        .when(cancelled_by_customer())
        // MUG is held; PLATE is still pending: its release queues behind its reservation
        // (or is a no-op in Stock). No CancelOrder of our own: the order is cancelled.
        .then_commands(vec![release("MUG"), release("PLATE")])
        .then_phase(ProcessPhase::Compensating)
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
        .then_phase(ProcessPhase::Compensating);
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
    .then_phase(ProcessPhase::Compensating);
    // A rejection after the cancellation settles its line without recording anything.
    given(vec![
        placed_event(),
        reserved("MUG"),
        cancelled_by_customer(),
        released("MUG"),
    ])
    .when(rejected("PLATE"))
    .then_commands(vec![])
    .then_phase(ProcessPhase::Cancelled);
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
    .then_phase(ProcessPhase::Cancelled);
}

#[test]
fn outside_cancel_while_authorizing_voids_the_late_authorization() {
    let history = vec![placed_event(), reserved("MUG"), reserved("PLATE")];
    given(history.clone())
        .when(cancelled_by_customer())
        .then_commands(vec![release("MUG"), release("PLATE")])
        .then_phase(ProcessPhase::Compensating)
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
        .then_phase(ProcessPhase::Cancelled)
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
    .when(ProcessEvent::PaymentDeclined {
        order_id: order_id(1),
        payment_id: pid(),
        reason: DeclineReason::CardDeclined,
    })
    // Nothing to record on a cancelled order.
    .then_commands(vec![])
    .then_phase(ProcessPhase::Cancelled);
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
    .then_phase(ProcessPhase::Compensating)
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
    .then_phase(ProcessPhase::Cancelled);
}

#[test]
fn outside_cancel_overtaking_our_own_cancel_keeps_the_recorded_reason() {
    // The deadline made the checkout send CancelOrder(reservation_expired), but the
    // customer's cancellation landed first: nothing new to send, and the reason is the one
    // the order recorded.
    let then = given(vec![placed_event(), reserved("MUG"), deadline()])
        .when(cancelled_by_customer())
        .then_commands(vec![])
        .then_phase(ProcessPhase::Compensating);
    assert_eq!(
        then.process.cancel_reason(),
        Some(&CancellationReason::CustomerRequest)
    );
}

#[test]
fn order_events_map_with_the_aggregate_id() {
    use crate::order::OrderEvent;
    assert_eq!(
        ProcessEvent::from_order_event(order_id(1), &OrderEvent::OrderConfirmed),
        Some(confirmed())
    );
    assert_eq!(
        ProcessEvent::from_order_event(
            order_id(1),
            &OrderEvent::OrderCancelled {
                reason: CancellationReason::CustomerRequest
            }
        ),
        Some(cancelled_by_customer())
    );
    let delivered = OrderEvent::OrderDelivered {
        tracking_numbers: vec![],
        lines: vec![],
        delivered_at: None,
        status: OrderStatus::Delivered,
    };
    assert_eq!(
        ProcessEvent::from_order_event(order_id(1), &delivered),
        None
    );
}

#[test]
fn same_input_gives_same_commands_and_redelivery_gives_none() {
    let policy = ProcessPolicy::default();
    let process = OrderProcess::default();
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
    assert_eq!(process.phase(), ProcessPhase::NotStarted);
    let (process, commands) = run(vec![
        placed_event(),
        ProcessEvent::StockReserved {
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
    let back: OrderProcess = serde_json::from_str(&json).unwrap();
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

// ---- simulation: the whole life over the real aggregates, in any interleaving ----

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

/// What the shop does to the order from outside the process (through the API).
#[derive(Debug, Clone)]
enum Action {
    /// The customer (first) or the merchant cancels.
    Cancel,
    /// The merchant ships units of a line.
    Ship(usize, u32),
    /// The carrier delivers everything shipped.
    Deliver,
    /// The customer returns units of a line.
    Return(usize, u32),
    /// The merchant receives the oldest open return, restocking or not.
    Receive(bool),
    /// The merchant refunds an amount.
    Refund(i64),
}

/// The aggregates of one order, with per-aggregate FIFO command queues and per-stream
/// FIFO event queues, as the runtime has them.
struct World {
    order: Order,
    stocks: BTreeMap<Sku, Stock>,
    received: BTreeMap<Sku, u64>,
    payment: Payment,
    services: PaymentServices,
    process: OrderProcess,
    command_queues: BTreeMap<String, VecDeque<ProcessCommand>>,
    event_queues: BTreeMap<String, VecDeque<ProcessInput>>,
    delivered: Vec<ProcessInput>,
    deadline_fired: bool,
    /// Cancellations attempted so far, with the order status and process phase they met and
    /// whether the order accepted them.
    cancels: Vec<CancelAttempt>,
    /// Money the merchant refunded by choice.
    goodwill: i64,
    /// Units the merchant received back to restock, and units the stock put back, per SKU.
    to_restock: BTreeMap<Sku, u64>,
    restocked: BTreeMap<Sku, u64>,
    outside: u128,
}

#[derive(Debug, Clone)]
struct CancelAttempt {
    phase: ProcessPhase,
    accepted: bool,
}

impl World {
    fn cancelled_from_outside(&self) -> bool {
        self.cancels.iter().any(|c| c.accepted)
    }

    /// Runs `action` on the order as the API would; a refusal changes nothing.
    fn act(&mut self, action: &Action, skus: &[Sku]) -> Result<(), TestCaseError> {
        let status = self.order.status();
        let phase = self.process.phase();
        let n = self.outside;
        self.outside += 1;
        let command = match action {
            Action::Cancel => OrderCommand::CancelOrder {
                reason: if self.cancels.is_empty() {
                    CancellationReason::CustomerRequest
                } else {
                    CancellationReason::MerchantRequest
                },
            },
            Action::Ship(line, units) => {
                let sku = skus[line % skus.len()].clone();
                let left = self.order.lines().iter().find(|l| l.line.sku == sku);
                let units = (*units).min(left.map_or(1, |l| l.unshipped().max(1)));
                OrderCommand::ShipOrder {
                    tracking_number: crate::values::TrackingNumber::new(format!("T{n}")).unwrap(),
                    carrier: None,
                    lines: vec![LineUnits {
                        sku,
                        quantity: qty(units),
                    }],
                    shipped_at: at(20),
                }
            }
            Action::Deliver => OrderCommand::DeliverOrder {
                tracking_number: None,
                delivered_at: at(30),
            },
            Action::Return(line, units) => OrderCommand::RequestReturn {
                return_id: crate::values::ReturnId::new(Uuid::from_u128(0xAE00 + n)),
                lines: vec![LineUnits {
                    sku: skus[line % skus.len()].clone(),
                    quantity: qty(*units),
                }],
                reason: crate::values::ReturnReason::new("wrong size").unwrap(),
                requested_at: at(40),
                window_days: 30,
            },
            Action::Receive(restock) => {
                let Some((return_id, ret)) = self.order.returns().iter().find(|(_, r)| !r.received)
                else {
                    return Ok(());
                };
                OrderCommand::ReceiveReturn {
                    return_id: *return_id,
                    warehouse: wh("w1"),
                    lines: ret
                        .lines
                        .iter()
                        .map(|l| ReceivedLine {
                            sku: l.sku.clone(),
                            quantity: l.quantity,
                            restock: *restock,
                        })
                        .collect(),
                    received_at: at(50),
                }
            }
            Action::Refund(amount) => OrderCommand::RequestRefund {
                refund_id: RefundId::new(Uuid::from_u128(0xDE00 + n)),
                amount: eur(*amount),
            },
        };
        let before = self.order.clone();
        let result = execute(&mut self.order, command, &());
        if let Action::Cancel = action {
            match &result {
                Ok(_) => {}
                Err(OrderError::AlreadyCancelled) => {
                    prop_assert_eq!(status, OrderStatus::Cancelled)
                }
                Err(OrderError::CancelAfterShipment) => {
                    prop_assert!(before.lines().iter().all(|l| l.unshipped() == 0))
                }
                Err(other) => prop_assert!(false, "cancel refused: {:?}", other),
            }
            self.cancels.push(CancelAttempt {
                phase,
                accepted: result.is_ok(),
            });
        }
        if let (Action::Refund(amount), Ok(events)) = (action, &result) {
            if !events.is_empty() {
                self.goodwill += amount;
            }
        }
        for event in result.as_deref().unwrap_or_default() {
            if let crate::order::OrderEvent::OrderReturnReceived { lines, .. } = event {
                for line in lines.iter().filter(|l| l.restock) {
                    *self.to_restock.entry(line.sku.clone()).or_default() +=
                        u64::from(line.quantity.get());
                }
            }
        }
        if result.is_err() {
            prop_assert_eq!(&self.order, &before, "a refused command changed the order");
        }
        let queue = self.event_queues.entry("order".to_owned()).or_default();
        for (i, event) in result.unwrap_or_default().iter().enumerate() {
            if let Some(event) = ProcessEvent::from_order_event(order_id(1), event) {
                queue.push_back(ProcessInput {
                    event_id: Uuid::from_u128(0xCA00_0000 + (n << 8) + i as u128),
                    event,
                });
            }
        }
        Ok(())
    }

    fn dispatch(&mut self, commands: Vec<ProcessCommand>) {
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

    fn deliver(&mut self, input: ProcessInput) -> Result<(), TestCaseError> {
        let policy = ProcessPolicy::default();
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
        let decision = self.process.handle(&input, &ProcessPolicy::default());
        prop_assert!(decision.commands.is_empty(), "redelivery produced commands");
        prop_assert_eq!(&decision.process, &self.process);
        Ok(())
    }

    /// A worker restart: the process state is read back from what the runtime stored.
    fn restart(&mut self) -> Result<(), TestCaseError> {
        let stored =
            serde_json::to_value(&self.process).map_err(|e| TestCaseError::fail(e.to_string()))?;
        self.process =
            serde_json::from_value(stored).map_err(|e| TestCaseError::fail(e.to_string()))?;
        Ok(())
    }

    fn execute(&mut self, command: ProcessCommand) -> Result<(), TestCaseError> {
        let (stream, inputs): (String, Vec<ProcessEvent>) = match command.command {
            TargetedCommand::Stock { sku, command: c } => {
                let stock = self.stocks.entry(sku.clone()).or_default();
                let events = execute(stock, c, &());
                prop_assert!(events.is_ok(), "stock refused: {:?}", events);
                let events = events.unwrap_or_default();
                for event in &events {
                    if let crate::stock::StockEvent::StockRestocked { quantity, .. } = event {
                        *self.restocked.entry(sku.clone()).or_default() +=
                            u64::from(quantity.get());
                    }
                }
                (
                    format!("stock/{sku}"),
                    events
                        .iter()
                        .filter_map(ProcessEvent::from_stock_event)
                        .collect(),
                )
            }
            TargetedCommand::Order {
                order_id,
                command: c,
            } => {
                let events = execute(&mut self.order, c.clone(), &());
                if let Err(error) = &events {
                    // Only a cancellation may turn down what the process sent before it
                    // saw that cancellation; the runtime drops such a command.
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
                        .filter_map(|e| ProcessEvent::from_order_event(order_id, e))
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
                        .filter_map(|e| ProcessEvent::from_payment_event(payment_id, e))
                        .collect(),
                )
            }
            TargetedCommand::Promotion { .. } => {
                prop_assert!(false, "the simulated orders apply no promotion");
                return Ok(());
            }
        };
        let queue = self.event_queues.entry(stream).or_default();
        for (i, event) in inputs.into_iter().enumerate() {
            queue.push_back(ProcessInput {
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
    /// Outside actions, each due from a step on, in order.
    actions: Vec<(usize, Action)>,
    /// Per step: which option to take, whether to redeliver an old event first, and
    /// whether the worker restarts.
    choices: Vec<(usize, bool, bool)>,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        1 => Just(Action::Cancel),
        3 => (0..3usize, 1..=4u32).prop_map(|(l, n)| Action::Ship(l, n)),
        2 => Just(Action::Deliver),
        2 => (0..3usize, 1..=3u32).prop_map(|(l, n)| Action::Return(l, n)),
        2 => any::<bool>().prop_map(Action::Receive),
        1 => (1..3000i64).prop_map(Action::Refund),
    ]
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (1..=3usize)
        .prop_flat_map(|n| {
            (
                prop::collection::vec(1..=4u32, n),
                prop::collection::vec((0..=4u32, 0..=2u32), n),
                prop::bool::weighted(0.8),
                prop::option::of(0..40usize),
                prop::collection::vec((0..60usize, action()), 0..=8),
                prop::collection::vec(
                    (
                        any::<usize>(),
                        prop::bool::weighted(0.1),
                        prop::bool::weighted(0.05),
                    ),
                    200,
                ),
            )
        })
        .prop_map(
            |(lines, on_hand, approve, deadline_at, mut actions, choices)| {
                actions.sort_by_key(|(at, _)| *at);
                Scenario {
                    lines,
                    on_hand,
                    approve,
                    deadline_at,
                    actions,
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
        received: BTreeMap::new(),
        payment: Payment::default(),
        services: PaymentServices::new(Arc::new(ScriptedGateway {
            approve: scenario.approve,
        })),
        process: OrderProcess::default(),
        command_queues: BTreeMap::new(),
        event_queues: BTreeMap::new(),
        delivered: Vec::new(),
        deadline_fired: false,
        cancels: Vec::new(),
        goodwill: 0,
        to_restock: BTreeMap::new(),
        restocked: BTreeMap::new(),
        outside: 0,
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
        world.received.insert(sku.clone(), u64::from(a + b));
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
            customer_id: Some(customer_id(1)),
            guest_email: None,
            lines,
            pricing: None,
            shipping_address: address(),
            payment_method: token(),
            placed_at: at(0),
        },
        &(),
    )
    .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let first = placed
        .iter()
        .find_map(|e| ProcessEvent::from_order_event(order_id(1), e))
        .ok_or_else(|| TestCaseError::fail("no OrderPlaced"))?;
    world.deliver(ProcessInput {
        event_id: event_id(0),
        event: first,
    })?;

    let mut step = 0;
    let mut next_action = 0;
    loop {
        // What could happen next: head of any command queue, head of any event stream, the
        // deadline tick (scheduled by the runtime while the state has a deadline), or the
        // next outside action once it is due.
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
        let action_due = scenario.actions.get(next_action);
        if let Some((at, _)) = action_due {
            // Past its step, or nothing else is left to do.
            if step >= *at || options.is_empty() {
                options.push((3, String::new()));
            }
        }
        if options.is_empty() {
            break;
        }
        prop_assert!(step < 2_000, "the order did not settle");
        let (pick, duplicate, restart) = scenario.choices[step % scenario.choices.len()];
        step += 1;
        if duplicate {
            world.redeliver(pick)?;
        }
        if restart {
            world.restart()?;
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
                world.deliver(ProcessInput {
                    event_id: event_id(999),
                    event: deadline(),
                })?;
            }
            _ => {
                let (_, action) = scenario.actions[next_action].clone();
                next_action += 1;
                world.act(&action, &skus)?;
            }
        }
    }
    Ok(world)
}

/// Units of the order held by a stock record, in total.
fn held(stock: &Stock) -> u64 {
    stock
        .reservation(&order_id(1))
        .map_or(0, |r| u64::from(r.quantity.get()))
}

fn value_of(order: &Order, units: impl Fn(&crate::order::LineProgress) -> u32) -> i64 {
    order
        .lines()
        .iter()
        .map(|l| i64::from(units(l)) * l.line.unit_price.amount())
        .sum()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever the stock levels, the payment outcome, the deadline, the interleaving
    /// (including redelivered events and worker restarts), and whatever the shop does from
    /// outside (cancel at any point, ship in parts, deliver, return, receive returns,
    /// refund), once everything has settled:
    /// - the process ends `completed` (the order lives on in fulfilment) or `cancelled`;
    /// - stock is exact: per SKU, on hand = received - shipped + restocked, and the order
    ///   holds exactly its units not yet shipped (none once cancelled);
    /// - money is exact: the order and the payment agree on captured and refunded, and the
    ///   customer pays for exactly what they keep (less any merchant refund), never less
    ///   than nothing;
    /// - every stock and payment command the process sent was accepted, and an order
    ///   command was refused only because a cancellation overtook it.
    #[test]
    fn every_order_life_ends_with_stock_and_money_exact(scenario in scenario()) {
        let world = simulate(&scenario)?;
        let order = &world.order;
        let payment_refunded = world.payment.refunded().map_or(0, |m| m.amount());
        let order_refunded = order.refunded().map_or(0, |m| m.amount());
        prop_assert_eq!(payment_refunded, order_refunded, "order and payment agree");
        prop_assert_eq!(world.payment.captured(), order.captured());
        prop_assert_eq!(order.pending_refunds(), 0);
        prop_assert_eq!(&world.restocked, &world.to_restock, "returns restocked exactly once");
        for progress in order.lines() {
            let stock = &world.stocks[&progress.line.sku];
            let restocked = world.restocked.get(&progress.line.sku).copied().unwrap_or(0);
            prop_assert!(restocked <= u64::from(progress.returned));
            let on_hand: u64 = stock.levels().iter().map(|l| l.on_hand).sum();
            prop_assert_eq!(
                on_hand,
                world.received[&progress.line.sku] - u64::from(progress.shipped) + restocked
            );
            let reserved: u64 = stock.levels().iter().map(|l| l.reserved).sum();
            prop_assert_eq!(reserved, held(stock));
            if order.status() != OrderStatus::Cancelled && !order.status().in_checkout() {
                prop_assert_eq!(held(stock), u64::from(progress.unshipped()));
            } else {
                prop_assert_eq!(held(stock), 0);
            }
        }
        match world.process.phase() {
            ProcessPhase::Completed => {
                prop_assert!(!order.status().in_checkout());
                prop_assert_ne!(order.status(), OrderStatus::Cancelled);
                prop_assert_eq!(order.captured(), order.total());
                let kept = value_of(order, |l| l.line.quantity.get() - l.cancelled - l.returned);
                let captured = order.captured().map_or(0, |m| m.amount());
                prop_assert_eq!(captured - order_refunded, (kept - world.goodwill).max(0));
            }
            ProcessPhase::Cancelled => {
                prop_assert_eq!(order.status(), OrderStatus::Cancelled);
                prop_assert!(order.lines().iter().all(|l| l.shipped == 0));
                // Nothing kept: never captured, or refunded in full.
                let captured = world.payment.captured().map_or(0, |m| m.amount());
                prop_assert_eq!(captured, payment_refunded);
                prop_assert!(matches!(
                    world.payment.status(),
                    PaymentStatus::Absent
                        | PaymentStatus::Declined
                        | PaymentStatus::Voided
                        | PaymentStatus::Refunded
                ), "payment {:?}", world.payment.status());
                if let Some(n) = world.cancels.iter().position(|c| c.accepted) {
                    let reason = if n == 0 {
                        CancellationReason::CustomerRequest
                    } else {
                        CancellationReason::MerchantRequest
                    };
                    prop_assert_eq!(world.process.cancel_reason(), Some(&reason));
                }
            }
            other => prop_assert!(false, "the process ended in {:?}", other),
        }
        // Enough stock, an approving gateway, no deadline and nobody acting always complete.
        let enough = scenario.lines.iter().zip(&scenario.on_hand).all(|(n, (a, b))| n <= &(a + b));
        if enough && scenario.approve && scenario.deadline_at.is_none() && scenario.actions.is_empty() {
            prop_assert_eq!(world.process.phase(), ProcessPhase::Completed);
            prop_assert_eq!(order.status(), OrderStatus::Confirmed);
        }
    }
}

#[test]
fn policy_sets_the_deadline() {
    let policy = ProcessPolicy {
        reservation_ttl: Duration::minutes(5),
    };
    let decision = OrderProcess::default().handle(&input(1, placed_event()), &policy);
    assert_eq!(decision.process.deadline(), Some(at(5)));
}

fn base_scenario() -> Scenario {
    Scenario {
        lines: vec![2, 1],
        on_hand: vec![(1, 1), (1, 0)],
        approve: true,
        deadline_at: None,
        actions: vec![],
        choices: (0..200)
            .map(|i| (i * 7 + 3, i % 5 == 0, i % 11 == 0))
            .collect(),
    }
}

#[test]
fn simulation_reaches_every_outcome() {
    let world = simulate(&base_scenario()).unwrap();
    assert_eq!(world.process.phase(), ProcessPhase::Completed);
    assert_eq!(world.order.status(), OrderStatus::Confirmed);
    assert_eq!(world.payment.status(), PaymentStatus::Captured);

    let short = Scenario {
        on_hand: vec![(1, 0), (1, 0)],
        ..base_scenario()
    };
    let world = simulate(&short).unwrap();
    assert_eq!(world.process.phase(), ProcessPhase::Cancelled);
    assert_eq!(world.order.status(), OrderStatus::Cancelled);

    let declined = Scenario {
        approve: false,
        ..base_scenario()
    };
    let world = simulate(&declined).unwrap();
    assert_eq!(world.process.phase(), ProcessPhase::Cancelled);
    assert_eq!(world.payment.status(), PaymentStatus::Declined);

    let expired = Scenario {
        deadline_at: Some(0),
        ..base_scenario()
    };
    let world = simulate(&expired).unwrap();
    assert_eq!(world.process.phase(), ProcessPhase::Cancelled);
    assert_eq!(
        world.process.cancel_reason(),
        Some(&CancellationReason::ReservationExpired)
    );

    // Shipped in two parcels, delivered, one unit returned and restocked.
    let life = Scenario {
        actions: vec![
            (60, Action::Ship(0, 1)),
            (60, Action::Ship(0, 1)),
            (60, Action::Ship(1, 1)),
            (60, Action::Deliver),
            (60, Action::Return(0, 1)),
            (60, Action::Receive(true)),
        ],
        ..base_scenario()
    };
    let world = simulate(&life).unwrap();
    assert_eq!(world.order.status(), OrderStatus::PartiallyRefunded);
    assert_eq!(world.payment.refunded(), Some(eur(700)));
    assert_eq!(world.payment.status(), PaymentStatus::PartiallyRefunded);
    let on_hand: u64 = world.stocks[&sku("SKU0")]
        .levels()
        .iter()
        .map(|l| l.on_hand)
        .sum();
    assert_eq!(on_hand, 1, "2 received, 2 shipped, 1 restocked");

    // Cancelled after one unit of three shipped: the rest is released and refunded.
    let partial = Scenario {
        actions: vec![(60, Action::Ship(0, 1)), (60, Action::Cancel)],
        ..base_scenario()
    };
    let world = simulate(&partial).unwrap();
    assert_eq!(world.order.status(), OrderStatus::Shipped);
    assert_eq!(world.payment.refunded(), Some(eur(1400)));
    assert!(world
        .stocks
        .values()
        .all(|s| s.reservation(&order_id(1)).is_none()));
}

#[test]
fn simulation_cancels_from_outside_in_every_phase() {
    // Sweep the point of a cancellation over a whole checkout and beyond: it is accepted in
    // every phase before a unit ships, and every run ends with everything given back
    // (checked by the same simulation as the property).
    let mut accepted_in = std::collections::BTreeSet::new();
    for at in 0..40 {
        let world = simulate(&Scenario {
            actions: vec![(at, Action::Cancel)],
            ..base_scenario()
        })
        .unwrap();
        let attempt = world.cancels.first().expect("the cancel ran");
        assert!(attempt.accepted, "{attempt:?}");
        accepted_in.insert(format!("{:?}", attempt.phase));
        assert_eq!(world.process.phase(), ProcessPhase::Cancelled);
        assert_eq!(world.order.status(), OrderStatus::Cancelled);
        let captured = world.payment.captured().map_or(0, |m| m.amount());
        assert_eq!(captured, world.payment.refunded().map_or(0, |m| m.amount()));
        assert!(world
            .stocks
            .values()
            .all(|s| s.reservation(&order_id(1)).is_none()));
    }
    for phase in [
        "Reserving",
        "Authorizing",
        "Confirming",
        "Capturing",
        "Completed",
    ] {
        assert!(accepted_in.contains(phase), "accepted in {accepted_in:?}");
    }
}

#[test]
fn a_cancelled_order_gives_back_its_promotions_uses_once_per_cancellation_event() {
    use crate::promotion::PromotionCommand;
    use crate::values::PromotionId;
    let promotion_id = PromotionId::new(Uuid::from_u128(0x9000));
    let ProcessEvent::OrderPlaced {
        order_id,
        lines,
        total,
        payment_method,
        placed_at,
        ..
    } = placed_event()
    else {
        unreachable!()
    };
    let placed = ProcessEvent::OrderPlaced {
        order_id,
        lines,
        total,
        payment_method,
        placed_at,
        promotions: vec![promotion_id],
    };
    let policy = ProcessPolicy::default();
    let started = OrderProcess::default()
        .handle(&input(1, placed), &policy)
        .process;
    let cancelled = ProcessEvent::OrderCancelled {
        order_id,
        reason: CancellationReason::CustomerRequest,
    };
    let decision = started.handle(&input(2, cancelled.clone()), &policy);
    let releases: Vec<_> = decision
        .commands
        .iter()
        .filter(|c| matches!(c.command, TargetedCommand::Promotion { .. }))
        .collect();
    assert_eq!(releases.len(), 1);
    assert_eq!(
        releases[0].command,
        TargetedCommand::Promotion {
            promotion_id,
            command: PromotionCommand::ReleaseRedemption { order_id }
        }
    );
    // A redelivery of the same event sends nothing again.
    assert!(decision
        .process
        .handle(&input(2, cancelled), &policy)
        .commands
        .is_empty());
}
