use cqrs_es::test::TestFramework;
use cqrs_es::{Aggregate, DomainEvent};
use proptest::prelude::*;

use super::*;
use crate::payment::DeclineReason;
use crate::personal::Personal;
use crate::test_support::execute;
use crate::test_support::fixtures::{
    address, at, customer_id, eur, order_id, payment_id, qty, sku, token, usd,
};
use crate::values::{ProductName, TrackingNumber};

fn fixture() -> TestFramework<Order> {
    TestFramework::with(())
}

fn new_line(s: &str, quantity: u32, price: i64) -> NewOrderLine {
    NewOrderLine {
        sku: sku(s),
        name: ProductName::new(s).unwrap(),
        quantity: qty(quantity),
        unit_price: eur(price),
    }
}

fn place(lines: Vec<NewOrderLine>) -> OrderCommand {
    OrderCommand::PlaceOrder {
        order_id: order_id(1),
        customer_id: customer_id(1),
        lines,
        shipping_address: address(),
        payment_method: token(),
        placed_at: at(0),
    }
}

fn place_default() -> OrderCommand {
    place(vec![new_line("MUG", 2, 1000), new_line("PLATE", 3, 500)])
}

fn order_line(s: &str, quantity: u32, price: i64) -> OrderLine {
    OrderLine {
        sku: sku(s),
        name: ProductName::new(s).unwrap(),
        quantity: qty(quantity),
        unit_price: eur(price),
        line_total: eur(price * i64::from(quantity)),
    }
}

fn placed() -> OrderEvent {
    OrderEvent::OrderPlaced {
        order_id: order_id(1),
        customer_id: customer_id(1),
        lines: vec![order_line("MUG", 2, 1000), order_line("PLATE", 3, 500)],
        total: eur(3500),
        shipping_address: Personal::new(address()),
        payment_method: token(),
        placed_at: at(0),
    }
}

fn line_reserved(s: &str, status: OrderStatus) -> OrderEvent {
    OrderEvent::OrderLineReserved {
        sku: sku(s),
        status,
    }
}

fn all_reserved() -> Vec<OrderEvent> {
    vec![
        placed(),
        line_reserved("MUG", OrderStatus::Placed),
        line_reserved("PLATE", OrderStatus::AwaitingPayment),
    ]
}

fn authorized() -> Vec<OrderEvent> {
    let mut events = all_reserved();
    events.push(OrderEvent::OrderPaymentAuthorized {
        payment_id: payment_id(1),
        amount: eur(3500),
    });
    events
}

fn confirmed() -> Vec<OrderEvent> {
    let mut events = authorized();
    events.push(OrderEvent::OrderConfirmed);
    events
}

fn captured() -> OrderEvent {
    OrderEvent::OrderPaymentCaptured {
        payment_id: payment_id(1),
        amount: eur(3500),
    }
}

fn tracking() -> TrackingNumber {
    TrackingNumber::new("1Z999").unwrap()
}

fn ship_line(s: &str, n: u32) -> ShipmentLine {
    ShipmentLine {
        sku: sku(s),
        quantity: qty(n),
    }
}

fn shipped_all() -> OrderEvent {
    OrderEvent::OrderShipped {
        tracking_number: tracking(),
        lines: vec![ship_line("MUG", 2), ship_line("PLATE", 3)],
        completed_lines: vec![sku("MUG"), sku("PLATE")],
        status: OrderStatus::Shipped,
    }
}

fn delivered() -> Vec<OrderEvent> {
    let mut events = confirmed();
    events.extend([captured(), shipped_all(), OrderEvent::OrderDelivered]);
    events
}

fn transition(status: OrderStatus, action: &'static str) -> OrderError {
    OrderError::InvalidTransition { status, action }
}

// ---- place ----

#[test]
fn place_order_derives_line_totals_and_total() {
    fixture()
        .given_no_previous_events()
        .when(place_default())
        .then_expect_events(vec![placed()]);
}

#[test]
fn place_twice_is_refused() {
    fixture()
        .given(vec![placed()])
        .when(place_default())
        .then_expect_error(OrderError::AlreadyExists);
}

#[test]
fn place_without_lines_is_refused() {
    fixture()
        .given_no_previous_events()
        .when(place(vec![]))
        .then_expect_error(OrderError::NoLines);
}

#[test]
fn place_with_too_many_lines_is_refused() {
    let lines = (0..=Order::MAX_LINES)
        .map(|i| new_line(&format!("SKU{i}"), 1, 1))
        .collect();
    fixture()
        .given_no_previous_events()
        .when(place(lines))
        .then_expect_error(OrderError::TooManyLines {
            max: Order::MAX_LINES,
        });
}

#[test]
fn place_with_duplicate_sku_is_refused() {
    fixture()
        .given_no_previous_events()
        .when(place(vec![new_line("MUG", 1, 1), new_line("MUG", 2, 1)]))
        .then_expect_error(OrderError::DuplicateLine(sku("MUG")));
}

#[test]
fn place_with_mixed_currencies_is_refused() {
    let mut dollar = new_line("PLATE", 1, 1);
    dollar.unit_price = usd(1);
    fixture()
        .given_no_previous_events()
        .when(place(vec![new_line("MUG", 1, 1), dollar]))
        .then_expect_error(OrderError::CurrencyMismatch);
}

#[test]
fn place_with_overflowing_total_is_refused() {
    fixture()
        .given_no_previous_events()
        .when(place(vec![
            new_line("MUG", 1, i64::MAX),
            new_line("PLATE", 1, 1),
        ]))
        .then_expect_error(OrderError::AmountOverflow);
    fixture()
        .given_no_previous_events()
        .when(place(vec![new_line("MUG", 2, i64::MAX)]))
        .then_expect_error(OrderError::AmountOverflow);
}

#[test]
fn commands_before_placement_are_refused() {
    fixture()
        .given_no_previous_events()
        .when(OrderCommand::ConfirmOrder)
        .then_expect_error(OrderError::NotFound);
}

// ---- stock ----

#[test]
fn record_stock_reserved_line_by_line() {
    fixture()
        .given(vec![placed()])
        .when(OrderCommand::RecordStockReserved { sku: sku("MUG") })
        .then_expect_events(vec![line_reserved("MUG", OrderStatus::Placed)]);
    fixture()
        .given(vec![placed(), line_reserved("MUG", OrderStatus::Placed)])
        .when(OrderCommand::RecordStockReserved { sku: sku("PLATE") })
        .then_expect_events(vec![line_reserved("PLATE", OrderStatus::AwaitingPayment)]);
}

#[test]
fn record_stock_reserved_twice_is_idempotent() {
    fixture()
        .given(vec![placed(), line_reserved("MUG", OrderStatus::Placed)])
        .when(OrderCommand::RecordStockReserved { sku: sku("MUG") })
        .then_expect_events(vec![]);
}

#[test]
fn record_stock_for_unknown_line_is_refused() {
    fixture()
        .given(vec![placed()])
        .when(OrderCommand::RecordStockReserved { sku: sku("SPOON") })
        .then_expect_error(OrderError::UnknownLine(sku("SPOON")));
}

#[test]
fn record_stock_reserved_after_cancel_is_refused() {
    fixture()
        .given(vec![
            placed(),
            OrderEvent::OrderCancelled {
                reason: CancellationReason::CustomerRequest,
            },
        ])
        .when(OrderCommand::RecordStockReserved { sku: sku("MUG") })
        .then_expect_error(transition(
            OrderStatus::Cancelled,
            "record stock reserved for",
        ));
}

fn rejected() -> OrderEvent {
    OrderEvent::OrderLineRejected {
        sku: sku("PLATE"),
        requested: qty(3),
        available: 1,
    }
}

#[test]
fn record_stock_rejected() {
    fixture()
        .given(vec![placed(), line_reserved("MUG", OrderStatus::Placed)])
        .when(OrderCommand::RecordStockRejected {
            sku: sku("PLATE"),
            requested: qty(3),
            available: 1,
        })
        .then_expect_events(vec![rejected()]);
}

#[test]
fn record_stock_rejected_for_reserved_line_is_refused() {
    fixture()
        .given(vec![placed(), line_reserved("MUG", OrderStatus::Placed)])
        .when(OrderCommand::RecordStockRejected {
            sku: sku("MUG"),
            requested: qty(2),
            available: 0,
        })
        .then_expect_error(transition(
            OrderStatus::Placed,
            "record stock rejected for a reserved line of",
        ));
    fixture()
        .given(all_reserved())
        .when(OrderCommand::RecordStockRejected {
            sku: sku("MUG"),
            requested: qty(2),
            available: 0,
        })
        .then_expect_error(transition(
            OrderStatus::AwaitingPayment,
            "record stock rejected for",
        ));
}

// ---- payment ----

#[test]
fn record_payment_authorized() {
    fixture()
        .given(all_reserved())
        .when(OrderCommand::RecordPaymentAuthorized {
            payment_id: payment_id(1),
            amount: eur(3500),
        })
        .then_expect_events(vec![OrderEvent::OrderPaymentAuthorized {
            payment_id: payment_id(1),
            amount: eur(3500),
        }]);
}

#[test]
fn record_payment_authorized_for_wrong_amount_is_refused() {
    fixture()
        .given(all_reserved())
        .when(OrderCommand::RecordPaymentAuthorized {
            payment_id: payment_id(1),
            amount: eur(3499),
        })
        .then_expect_error(OrderError::PaymentAmountMismatch {
            expected: eur(3500),
            actual: eur(3499),
        });
}

#[test]
fn record_payment_before_stock_is_reserved_is_refused() {
    fixture()
        .given(vec![placed()])
        .when(OrderCommand::RecordPaymentAuthorized {
            payment_id: payment_id(1),
            amount: eur(3500),
        })
        .then_expect_error(transition(
            OrderStatus::Placed,
            "record payment authorized for",
        ));
    fixture()
        .given(vec![placed()])
        .when(OrderCommand::RecordPaymentDeclined {
            payment_id: payment_id(1),
            reason: DeclineReason::CardDeclined,
        })
        .then_expect_error(transition(
            OrderStatus::Placed,
            "record payment declined for",
        ));
}

#[test]
fn record_payment_declined() {
    fixture()
        .given(all_reserved())
        .when(OrderCommand::RecordPaymentDeclined {
            payment_id: payment_id(1),
            reason: DeclineReason::InsufficientFunds,
        })
        .then_expect_events(vec![OrderEvent::OrderPaymentDeclined {
            payment_id: payment_id(1),
            reason: DeclineReason::InsufficientFunds,
        }]);
}

#[test]
fn confirm_order() {
    fixture()
        .given(authorized())
        .when(OrderCommand::ConfirmOrder)
        .then_expect_events(vec![OrderEvent::OrderConfirmed]);
}

#[test]
fn confirm_without_authorized_payment_is_refused() {
    fixture()
        .given(all_reserved())
        .when(OrderCommand::ConfirmOrder)
        .then_expect_error(transition(OrderStatus::AwaitingPayment, "confirm"));
    fixture()
        .given(confirmed())
        .when(OrderCommand::ConfirmOrder)
        .then_expect_error(transition(OrderStatus::Confirmed, "confirm"));
}

#[test]
fn record_payment_captured() {
    fixture()
        .given(confirmed())
        .when(OrderCommand::RecordPaymentCaptured {
            payment_id: payment_id(1),
            amount: eur(3500),
        })
        .then_expect_events(vec![captured()]);
    let mut history = confirmed();
    history.push(captured());
    fixture()
        .given(history)
        .when(OrderCommand::RecordPaymentCaptured {
            payment_id: payment_id(1),
            amount: eur(3500),
        })
        .then_expect_events(vec![]);
}

#[test]
fn record_payment_captured_needs_confirmation_and_matching_amount() {
    fixture()
        .given(authorized())
        .when(OrderCommand::RecordPaymentCaptured {
            payment_id: payment_id(1),
            amount: eur(3500),
        })
        .then_expect_error(transition(
            OrderStatus::PaymentAuthorized,
            "record payment captured for",
        ));
    fixture()
        .given(confirmed())
        .when(OrderCommand::RecordPaymentCaptured {
            payment_id: payment_id(1),
            amount: eur(1),
        })
        .then_expect_error(OrderError::PaymentAmountMismatch {
            expected: eur(3500),
            actual: eur(1),
        });
}

// ---- cancel ----

#[test]
fn cancel_before_shipment() {
    let reason = CancellationReason::OutOfStock { sku: sku("PLATE") };
    for history in [
        vec![placed()],
        vec![placed(), rejected()],
        all_reserved(),
        authorized(),
        [confirmed(), vec![captured()]].concat(),
    ] {
        fixture()
            .given(history)
            .when(OrderCommand::CancelOrder {
                reason: reason.clone(),
            })
            .then_expect_events(vec![OrderEvent::OrderCancelled {
                reason: reason.clone(),
            }]);
    }
}

#[test]
fn cancel_of_a_confirmed_order_waits_for_the_recorded_capture() {
    // Confirmed, capture not recorded: the checkout is taking the money right now.
    for reason in [
        CancellationReason::CustomerRequest,
        CancellationReason::MerchantRequest,
    ] {
        fixture()
            .given(confirmed())
            .when(OrderCommand::CancelOrder { reason })
            .then_expect_error(OrderError::CapturePending);
    }
    assert_eq!(OrderError::CapturePending.code(), "payment_capture_pending");
    // Once the capture is recorded the cancellation goes through (and the refund path opens).
    let mut history = confirmed();
    history.push(captured());
    fixture()
        .given(history)
        .when(OrderCommand::CancelOrder {
            reason: CancellationReason::CustomerRequest,
        })
        .then_expect_events(vec![cancelled_by_customer()]);
}

#[test]
fn cancel_twice_is_refused() {
    fixture()
        .given(vec![
            placed(),
            OrderEvent::OrderCancelled {
                reason: CancellationReason::ReservationExpired,
            },
        ])
        .when(OrderCommand::CancelOrder {
            reason: CancellationReason::CustomerRequest,
        })
        .then_expect_error(OrderError::AlreadyCancelled);
}

#[test]
fn cancel_after_shipment_is_refused() {
    let mut partially = confirmed();
    partially.push(OrderEvent::OrderShipped {
        tracking_number: tracking(),
        lines: vec![ship_line("MUG", 1)],
        completed_lines: vec![],
        status: OrderStatus::PartiallyShipped,
    });
    for history in [partially, delivered()] {
        fixture()
            .given(history)
            .when(OrderCommand::CancelOrder {
                reason: CancellationReason::CustomerRequest,
            })
            .then_expect_error(OrderError::CancelAfterShipment);
    }
}

// ---- ship ----

#[test]
fn partial_then_full_shipment() {
    fixture()
        .given(confirmed())
        .when(OrderCommand::ShipOrder {
            tracking_number: tracking(),
            lines: vec![ship_line("MUG", 2), ship_line("PLATE", 1)],
        })
        .then_expect_events(vec![OrderEvent::OrderShipped {
            tracking_number: tracking(),
            lines: vec![ship_line("MUG", 2), ship_line("PLATE", 1)],
            completed_lines: vec![sku("MUG")],
            status: OrderStatus::PartiallyShipped,
        }]);
    let mut history = confirmed();
    history.push(OrderEvent::OrderShipped {
        tracking_number: tracking(),
        lines: vec![ship_line("MUG", 2), ship_line("PLATE", 1)],
        completed_lines: vec![sku("MUG")],
        status: OrderStatus::PartiallyShipped,
    });
    fixture()
        .given(history)
        .when(OrderCommand::ShipOrder {
            tracking_number: tracking(),
            lines: vec![ship_line("PLATE", 1), ship_line("PLATE", 1)],
        })
        .then_expect_events(vec![OrderEvent::OrderShipped {
            tracking_number: tracking(),
            lines: vec![ship_line("PLATE", 2)],
            completed_lines: vec![sku("PLATE")],
            status: OrderStatus::Shipped,
        }]);
}

#[test]
fn ship_before_confirmation_is_refused() {
    fixture()
        .given(authorized())
        .when(OrderCommand::ShipOrder {
            tracking_number: tracking(),
            lines: vec![ship_line("MUG", 1)],
        })
        .then_expect_error(transition(OrderStatus::PaymentAuthorized, "ship"));
}

#[test]
fn empty_shipment_is_refused() {
    fixture()
        .given(confirmed())
        .when(OrderCommand::ShipOrder {
            tracking_number: tracking(),
            lines: vec![],
        })
        .then_expect_error(OrderError::EmptyShipment);
}

#[test]
fn shipping_unknown_line_is_refused() {
    fixture()
        .given(confirmed())
        .when(OrderCommand::ShipOrder {
            tracking_number: tracking(),
            lines: vec![ship_line("SPOON", 1)],
        })
        .then_expect_error(OrderError::UnknownLine(sku("SPOON")));
}

#[test]
fn shipping_more_than_ordered_is_refused() {
    fixture()
        .given(confirmed())
        .when(OrderCommand::ShipOrder {
            tracking_number: tracking(),
            lines: vec![ship_line("MUG", 1), ship_line("MUG", 2)],
        })
        .then_expect_error(OrderError::ShipmentExceedsOrdered {
            sku: sku("MUG"),
            remaining: 1,
        });
}

// ---- deliver and refund ----

#[test]
fn deliver_order() {
    let mut history = confirmed();
    history.push(shipped_all());
    fixture()
        .given(history)
        .when(OrderCommand::DeliverOrder)
        .then_expect_events(vec![OrderEvent::OrderDelivered]);
}

#[test]
fn deliver_before_full_shipment_is_refused() {
    fixture()
        .given(confirmed())
        .when(OrderCommand::DeliverOrder)
        .then_expect_error(transition(OrderStatus::Confirmed, "deliver"));
}

#[test]
fn partial_then_full_refund() {
    fixture()
        .given(delivered())
        .when(OrderCommand::RefundOrder { amount: eur(1000) })
        .then_expect_events(vec![OrderEvent::OrderRefunded {
            amount: eur(1000),
            total_refunded: eur(1000),
            status: OrderStatus::PartiallyRefunded,
        }]);
    let mut history = delivered();
    history.push(OrderEvent::OrderRefunded {
        amount: eur(1000),
        total_refunded: eur(1000),
        status: OrderStatus::PartiallyRefunded,
    });
    fixture()
        .given(history)
        .when(OrderCommand::RefundOrder { amount: eur(2500) })
        .then_expect_events(vec![OrderEvent::OrderRefunded {
            amount: eur(2500),
            total_refunded: eur(3500),
            status: OrderStatus::Refunded,
        }]);
}

#[test]
fn refund_never_exceeds_captured() {
    fixture()
        .given(delivered())
        .when(OrderCommand::RefundOrder { amount: eur(3501) })
        .then_expect_error(OrderError::RefundExceedsCaptured {
            refundable: eur(3500),
        });
    // Delivered without a recorded capture: nothing can be refunded.
    let mut uncaptured = confirmed();
    uncaptured.extend([shipped_all(), OrderEvent::OrderDelivered]);
    fixture()
        .given(uncaptured)
        .when(OrderCommand::RefundOrder { amount: eur(1) })
        .then_expect_error(OrderError::RefundExceedsCaptured { refundable: eur(0) });
}

#[test]
fn refund_of_zero_or_other_currency_is_refused() {
    fixture()
        .given(delivered())
        .when(OrderCommand::RefundOrder { amount: eur(0) })
        .then_expect_error(OrderError::RefundAmountZero);
    fixture()
        .given(delivered())
        .when(OrderCommand::RefundOrder { amount: usd(1) })
        .then_expect_error(OrderError::CurrencyMismatch);
}

fn cancelled_by_customer() -> OrderEvent {
    OrderEvent::OrderCancelled {
        reason: CancellationReason::CustomerRequest,
    }
}

fn refunded(amount: i64, total: i64, status: OrderStatus) -> OrderEvent {
    OrderEvent::OrderRefunded {
        amount: eur(amount),
        total_refunded: eur(total),
        status,
    }
}

#[test]
fn refund_before_delivery_keeps_the_fulfilment_status() {
    let mut confirmed_captured = confirmed();
    confirmed_captured.push(captured());
    let mut partially = confirmed_captured.clone();
    partially.push(OrderEvent::OrderShipped {
        tracking_number: tracking(),
        lines: vec![ship_line("MUG", 1)],
        completed_lines: vec![],
        status: OrderStatus::PartiallyShipped,
    });
    let mut shipped = confirmed_captured.clone();
    shipped.push(shipped_all());
    for (history, status) in [
        (confirmed_captured, OrderStatus::Confirmed),
        (partially, OrderStatus::PartiallyShipped),
        (shipped, OrderStatus::Shipped),
    ] {
        fixture()
            .given(history.clone())
            .when(OrderCommand::RefundOrder { amount: eur(500) })
            .then_expect_events(vec![refunded(500, 500, status)]);
        // A full refund before delivery also leaves the status to fulfilment.
        fixture()
            .given(history)
            .when(OrderCommand::RefundOrder { amount: eur(3500) })
            .then_expect_events(vec![refunded(3500, 3500, status)]);
    }
}

#[test]
fn refund_before_delivery_never_exceeds_captured() {
    let mut history = confirmed();
    history.extend([captured(), refunded(3000, 3000, OrderStatus::Confirmed)]);
    fixture()
        .given(history.clone())
        .when(OrderCommand::RefundOrder { amount: eur(501) })
        .then_expect_error(OrderError::RefundExceedsCaptured {
            refundable: eur(500),
        });
    // Refunds made before delivery count against the captured amount after it.
    history.extend([shipped_all(), OrderEvent::OrderDelivered]);
    fixture()
        .given(history)
        .when(OrderCommand::RefundOrder { amount: eur(500) })
        .then_expect_events(vec![refunded(500, 3500, OrderStatus::Refunded)]);
    // Confirmed but not captured yet: nothing to refund.
    fixture()
        .given(confirmed())
        .when(OrderCommand::RefundOrder { amount: eur(1) })
        .then_expect_error(OrderError::RefundExceedsCaptured { refundable: eur(0) });
}

#[test]
fn refund_after_cancellation_of_a_captured_order() {
    let mut history = confirmed();
    history.extend([captured(), cancelled_by_customer()]);
    fixture()
        .given(history.clone())
        .when(OrderCommand::RefundOrder { amount: eur(3500) })
        .then_expect_events(vec![refunded(3500, 3500, OrderStatus::Cancelled)]);
    history.push(refunded(3500, 3500, OrderStatus::Cancelled));
    fixture()
        .given(history)
        .when(OrderCommand::RefundOrder { amount: eur(1) })
        .then_expect_error(OrderError::RefundExceedsCaptured { refundable: eur(0) });
}

#[test]
fn capture_overtaken_by_cancellation_is_still_recorded() {
    // A checkout of an earlier version sent ConfirmOrder and CapturePayment together, so
    // histories exist where a cancellation landed before the capture was recorded (after
    // confirmation, or even before it); the late capture is still recorded.
    for mut history in [confirmed(), authorized()] {
        history.push(cancelled_by_customer());
        fixture()
            .given(history.clone())
            .when(OrderCommand::RecordPaymentCaptured {
                payment_id: payment_id(1),
                amount: eur(3500),
            })
            .then_expect_events(vec![captured()]);
        history.push(captured());
        fixture()
            .given(history)
            .when(OrderCommand::RefundOrder { amount: eur(1000) })
            .then_expect_events(vec![refunded(1000, 1000, OrderStatus::Cancelled)]);
    }
}

#[test]
fn refund_without_capture_or_after_full_refund_is_refused() {
    // Cancelled before any payment was captured: there is nothing to refund.
    for mut history in [vec![placed()], authorized(), confirmed()] {
        history.push(cancelled_by_customer());
        fixture()
            .given(history)
            .when(OrderCommand::RefundOrder { amount: eur(1) })
            .then_expect_error(transition(OrderStatus::Cancelled, "refund"));
    }
    // A capture cannot be recorded for an order cancelled before any authorization.
    fixture()
        .given(vec![placed(), cancelled_by_customer()])
        .when(OrderCommand::RecordPaymentCaptured {
            payment_id: payment_id(1),
            amount: eur(3500),
        })
        .then_expect_error(transition(
            OrderStatus::Cancelled,
            "record payment captured for",
        ));
    for history in [all_reserved(), authorized()] {
        let status = if history.len() == all_reserved().len() {
            OrderStatus::AwaitingPayment
        } else {
            OrderStatus::PaymentAuthorized
        };
        fixture()
            .given(history)
            .when(OrderCommand::RefundOrder { amount: eur(1) })
            .then_expect_error(transition(status, "refund"));
    }
    let mut history = delivered();
    history.push(refunded(3500, 3500, OrderStatus::Refunded));
    fixture()
        .given(history)
        .when(OrderCommand::RefundOrder { amount: eur(1) })
        .then_expect_error(transition(OrderStatus::Refunded, "refund"));
}

#[test]
fn serialization_and_codes_are_stable() {
    assert_eq!(placed().event_type(), "OrderPlaced");
    assert_eq!(OrderEvent::OrderDelivered.event_version(), "1.0");
    assert_eq!(
        serde_json::to_value(OrderStatus::PartiallyShipped).unwrap(),
        serde_json::json!("partially_shipped")
    );
    assert_eq!(
        transition(OrderStatus::Placed, "confirm").to_string(),
        "cannot confirm an order that is placed"
    );
    assert_eq!(
        OrderError::CancelAfterShipment.code(),
        "order_already_shipped"
    );
    assert_eq!(Order::TYPE, "Order");
    let json = serde_json::to_value(placed()).unwrap();
    assert_eq!(
        json["OrderPlaced"]["total"],
        serde_json::json!({"amount": 3500, "currency": "EUR"})
    );
    assert_eq!(
        json["OrderPlaced"]["lines"][0]["line_total"]["amount"],
        2000
    );
    assert!(!format!("{:?}", placed()).contains("Main Street"));
}

// ---- state machine property ----

#[derive(Debug, Clone)]
enum Op {
    Place,
    Reserved(usize),
    Rejected(usize),
    Authorized(bool),
    Declined,
    Captured(bool),
    Confirm,
    Cancel,
    Ship(usize, u32),
    Deliver,
    Refund(i64),
}

const SKUS: [&str; 2] = ["MUG", "PLATE"];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::Place),
        (0..2usize).prop_map(Op::Reserved),
        (0..2usize).prop_map(Op::Rejected),
        any::<bool>().prop_map(Op::Authorized),
        Just(Op::Declined),
        any::<bool>().prop_map(Op::Captured),
        Just(Op::Confirm),
        Just(Op::Cancel),
        (0..2usize, 1..4u32).prop_map(|(l, n)| Op::Ship(l, n)),
        Just(Op::Deliver),
        (0..4000i64).prop_map(Op::Refund),
    ]
}

fn command(op: &Op) -> OrderCommand {
    match *op {
        Op::Place => place_default(),
        Op::Reserved(l) => OrderCommand::RecordStockReserved { sku: sku(SKUS[l]) },
        Op::Rejected(l) => OrderCommand::RecordStockRejected {
            sku: sku(SKUS[l]),
            requested: qty(1),
            available: 0,
        },
        Op::Authorized(right) => OrderCommand::RecordPaymentAuthorized {
            payment_id: payment_id(1),
            amount: eur(if right { 3500 } else { 1 }),
        },
        Op::Declined => OrderCommand::RecordPaymentDeclined {
            payment_id: payment_id(1),
            reason: DeclineReason::CardDeclined,
        },
        Op::Captured(right) => OrderCommand::RecordPaymentCaptured {
            payment_id: payment_id(1),
            amount: eur(if right { 3500 } else { 1 }),
        },
        Op::Confirm => OrderCommand::ConfirmOrder,
        Op::Cancel => OrderCommand::CancelOrder {
            reason: CancellationReason::CustomerRequest,
        },
        Op::Ship(l, n) => OrderCommand::ShipOrder {
            tracking_number: tracking(),
            lines: vec![ship_line(SKUS[l], n)],
        },
        Op::Deliver => OrderCommand::DeliverOrder,
        Op::Refund(amount) => OrderCommand::RefundOrder {
            amount: eur(amount),
        },
    }
}

fn allowed(from: OrderStatus, to: OrderStatus) -> bool {
    use OrderStatus as S;
    from == to
        || matches!(
            (from, to),
            (S::Absent, S::Placed)
                | (S::Placed, S::AwaitingPayment | S::StockRejected)
                | (
                    S::AwaitingPayment,
                    S::PaymentAuthorized | S::PaymentDeclined
                )
                | (S::PaymentAuthorized, S::Confirmed)
                | (
                    S::Confirmed | S::PartiallyShipped,
                    S::PartiallyShipped | S::Shipped
                )
                | (S::Shipped, S::Delivered)
                | (
                    S::Delivered | S::PartiallyRefunded,
                    S::PartiallyRefunded | S::Refunded
                )
                | (
                    S::Placed
                        | S::StockRejected
                        | S::AwaitingPayment
                        | S::PaymentDeclined
                        | S::PaymentAuthorized
                        | S::Confirmed,
                    S::Cancelled
                )
        )
}

/// The refund rule: money captured and not fully refunded, in any status from confirmation
/// on (a cancelled order counts once captured), never more than remains.
fn refund_accepted(order: &Order, amount: i64) -> bool {
    use OrderStatus as S;
    let Some(captured) = order.captured() else {
        return false;
    };
    let refunded = order.refunded().map_or(0, |r| r.amount());
    let status_ok = matches!(
        order.status(),
        S::Confirmed
            | S::PartiallyShipped
            | S::Shipped
            | S::Delivered
            | S::PartiallyRefunded
            | S::Cancelled
    );
    status_ok && amount > 0 && amount <= captured.amount() - refunded
}

fn check_state(order: &Order) -> Result<(), TestCaseError> {
    use OrderStatus as S;
    let status = order.status();
    let shipped_any = order.lines().iter().any(|l| l.shipped > 0);
    let shipped_all = order
        .lines()
        .iter()
        .all(|l| l.shipped == l.line.quantity.get());
    for line in order.lines() {
        prop_assert!(line.shipped <= line.line.quantity.get());
    }
    if status == S::AwaitingPayment || status == S::PaymentAuthorized || status == S::Confirmed {
        prop_assert!(order.lines().iter().all(|l| l.reserved));
    }
    if matches!(status, S::PaymentAuthorized | S::Confirmed) || shipped_any {
        prop_assert_eq!(order.authorized(), order.total());
    }
    if let Some(captured) = order.captured() {
        prop_assert_eq!(Some(captured), order.authorized());
    }
    if let Some(refunded) = order.refunded() {
        let captured = order.captured().map_or(0, |c| c.amount());
        prop_assert!(refunded.amount() <= captured);
        prop_assert!(refunded.amount() > 0);
    }
    match status {
        S::Cancelled | S::Confirmed => prop_assert!(!shipped_any),
        S::PartiallyShipped => prop_assert!(shipped_any && !shipped_all),
        S::Shipped | S::Delivered | S::PartiallyRefunded | S::Refunded => {
            prop_assert!(shipped_all)
        }
        _ => {}
    }
    if status == S::Refunded {
        prop_assert_eq!(order.refunded(), order.captured());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// No sequence of commands reaches an illegal state: refused commands change nothing,
    /// accepted ones only take allowed transitions, and the state stays consistent.
    #[test]
    fn order_state_machine_never_reaches_an_illegal_state(
        ops in prop::collection::vec(op(), 1..40),
    ) {
        let mut order = Order::default();
        let mut history = Vec::new();
        for op in &ops {
            let before = order.clone();
            let result = execute(&mut order, command(op), &());
            if matches!(op, Op::Cancel)
                && before.status() == OrderStatus::Confirmed
                && before.captured().is_none()
            {
                prop_assert_eq!(&result, &Err(OrderError::CapturePending));
            }
            if let Op::Refund(amount) = op {
                prop_assert_eq!(
                    result.is_ok(),
                    refund_accepted(&before, *amount),
                    "refund of {} in {:?}", amount, before
                );
            }
            match result {
                Ok(events) => {
                    prop_assert!(
                        allowed(before.status(), order.status()),
                        "{} -> {} via {:?}", before.status(), order.status(), op
                    );
                    if before.status() == OrderStatus::Cancelled {
                        // Only money can still move: a late capture and its refunds.
                        let money_only = events.iter().all(|e| {
                            matches!(
                                e,
                                OrderEvent::OrderPaymentCaptured { .. }
                                    | OrderEvent::OrderRefunded { .. }
                            )
                        });
                        prop_assert!(money_only, "{:?}", events);
                    }
                    history.extend(events);
                }
                Err(_) => prop_assert_eq!(&order, &before),
            }
            check_state(&order)?;
        }
        // Replaying the recorded events rebuilds the same state.
        let mut replayed = Order::default();
        for event in history {
            replayed.apply(event);
        }
        prop_assert_eq!(replayed, order);
    }

    /// The happy path is reachable through the same operations the property explores.
    #[test]
    fn happy_path_reaches_refunded(refund in 1i64..=3500) {
        let mut order = Order::default();
        for op in [
            Op::Place, Op::Reserved(0), Op::Reserved(1), Op::Authorized(true), Op::Confirm,
            Op::Captured(true), Op::Ship(0, 2), Op::Ship(1, 3), Op::Deliver, Op::Refund(refund),
        ] {
            execute(&mut order, command(&op), &()).unwrap();
        }
        let expected = if refund == 3500 { OrderStatus::Refunded } else { OrderStatus::PartiallyRefunded };
        prop_assert_eq!(order.status(), expected);
    }

    /// A confirmed, captured order can be refunded before shipment and after cancellation,
    /// in parts, up to the captured amount and no further.
    #[test]
    fn captured_money_is_refundable_until_fully_refunded(
        first in 1i64..=3500,
        cancel in any::<bool>(),
    ) {
        let mut order = Order::default();
        for op in [
            Op::Place, Op::Reserved(0), Op::Reserved(1), Op::Authorized(true), Op::Confirm,
            Op::Captured(true), Op::Refund(first),
        ] {
            execute(&mut order, command(&op), &()).unwrap();
        }
        if cancel {
            execute(&mut order, command(&Op::Cancel), &()).unwrap();
        }
        let rest = 3500 - first;
        if rest > 0 {
            prop_assert!(execute(&mut order, command(&Op::Refund(rest + 1)), &()).is_err());
            execute(&mut order, command(&Op::Refund(rest)), &()).unwrap();
        }
        prop_assert_eq!(order.refunded(), Some(eur(3500)));
        prop_assert!(execute(&mut order, command(&Op::Refund(1)), &()).is_err());
        let expected = if cancel { OrderStatus::Cancelled } else { OrderStatus::Confirmed };
        prop_assert_eq!(order.status(), expected);
    }
}
