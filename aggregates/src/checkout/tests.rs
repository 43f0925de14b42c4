use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Duration;
use proptest::prelude::*;
use uuid::Uuid;

use super::*;
use crate::money::Money;
use crate::order::{CancellationReason, NewOrderLine, Order, OrderCommand, OrderStatus};
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
fn authorized_confirms_and_captures_then_records_capture() {
    let history = vec![
        placed_event(),
        reserved("MUG"),
        reserved("PLATE"),
        authorized(),
    ];
    let (process, commands) = run(history.clone());
    assert_eq!(
        commands,
        vec![
            to_order(OrderCommand::RecordPaymentAuthorized {
                payment_id: pid(),
                amount: eur(2500)
            }),
            to_order(OrderCommand::ConfirmOrder),
            TargetedCommand::Payment {
                payment_id: pid(),
                command: PaymentCommand::CapturePayment
            },
        ]
    );
    assert_eq!(process.phase(), CheckoutPhase::Capturing);
    assert_eq!(process.deadline(), None);
    let mut history = history;
    history.push(CheckoutEvent::PaymentCaptured {
        order_id: order_id(1),
        payment_id: pid(),
        amount: eur(2500),
    });
    let (process, commands) = run(history);
    assert_eq!(
        commands,
        vec![to_order(OrderCommand::RecordPaymentCaptured {
            payment_id: pid(),
            amount: eur(2500)
        })]
    );
    assert_eq!(process.phase(), CheckoutPhase::Completed);
    assert!(process.is_finished());
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
    assert_eq!(process.phase(), CheckoutPhase::Capturing);
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
            TargetedCommand::Order { command: c, .. } => {
                let events = execute(&mut self.order, c.clone(), &());
                prop_assert!(events.is_ok(), "order refused {:?}: {:?}", c, events);
                let events = events.unwrap_or_default();
                (
                    "order".to_owned(),
                    events
                        .iter()
                        .filter_map(CheckoutEvent::from_order_event)
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
                prop::collection::vec((any::<usize>(), prop::bool::weighted(0.1)), 200),
            )
        })
        .prop_map(|(lines, on_hand, approve, deadline_at, choices)| Scenario {
            lines,
            on_hand,
            approve,
            deadline_at,
            choices,
        })
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
        .find_map(CheckoutEvent::from_order_event)
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
            _ => {
                world.deadline_fired = true;
                world.deliver(CheckoutInput {
                    event_id: event_id(999),
                    event: deadline(),
                })?;
            }
        }
    }
    Ok(world)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever the stock levels, the payment outcome, the deadline and the interleaving
    /// (including redelivered events), the checkout ends either with the order confirmed,
    /// all stock reserved and the payment captured, or with the order cancelled, every
    /// reservation released and nothing captured; and every command it sent was accepted.
    #[test]
    fn every_interleaving_ends_completed_or_cleanly_cancelled(scenario in scenario()) {
        let world = simulate(&scenario)?;
        let order_id = order_id(1);
        match world.process.phase() {
            CheckoutPhase::Completed => {
                prop_assert_eq!(world.order.status(), OrderStatus::Confirmed);
                prop_assert_eq!(world.order.captured(), world.order.total());
                prop_assert_eq!(world.payment.status(), PaymentStatus::Captured);
                for (progress, (sku, stock)) in world.order.lines().iter().zip(&world.stocks) {
                    prop_assert_eq!(&progress.line.sku, sku);
                    let reservation = stock.reservation(&order_id);
                    prop_assert_eq!(reservation.map(|r| r.quantity), Some(progress.line.quantity));
                }
            }
            CheckoutPhase::Cancelled => {
                prop_assert_eq!(world.order.status(), OrderStatus::Cancelled);
                prop_assert!(world.order.captured().is_none());
                prop_assert!(matches!(
                    world.payment.status(),
                    PaymentStatus::Absent | PaymentStatus::Declined | PaymentStatus::Voided
                ), "payment {:?}", world.payment.status());
                for stock in world.stocks.values() {
                    prop_assert!(stock.reservation(&order_id).is_none());
                    prop_assert_eq!(stock.levels().iter().map(|l| l.reserved).sum::<u64>(), 0);
                }
            }
            other => prop_assert!(false, "checkout ended in {:?}", other),
        }
        // Enough stock, an approving gateway and no deadline always complete.
        let enough = scenario.lines.iter().zip(&scenario.on_hand).all(|(n, (a, b))| n <= &(a + b));
        if enough && scenario.approve && scenario.deadline_at.is_none() {
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
