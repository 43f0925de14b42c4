use cqrs_es::test::TestFramework;
use cqrs_es::{Aggregate, DomainEvent};
use proptest::prelude::*;

use super::*;
use crate::payment::DeclineReason;
use crate::personal::{DataSubject, Personal};
use crate::test_support::execute;
use crate::test_support::fixtures::{
    address, at, customer_id, eur, order_id, payment_id, qty, sku, token, usd,
};
use crate::values::{
    Email, ProductName, RefundId, ReturnId, ReturnReason, TrackingNumber, WarehouseId,
};

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
        customer_id: Some(customer_id(1)),
        guest_email: None,
        lines,
        pricing: None,
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
        discount: None,
        tax: None,
        total: None,
    }
}

fn placed() -> OrderEvent {
    OrderEvent::OrderPlaced {
        order_id: order_id(1),
        customer_id: Some(customer_id(1)),
        guest_email: None,
        lines: vec![order_line("MUG", 2, 1000), order_line("PLATE", 3, 500)],
        total: eur(3500),
        subtotal: Some(eur(3500)),
        discounts: vec![],
        tax: None,
        tax_rule: None,
        shipping: None,
        ship_to_country: address().country().clone(),
        shipping_address: Personal::new(DataSubject::Customer(customer_id(1)), address()),
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

fn units(s: &str, n: u32) -> LineUnits {
    LineUnits {
        sku: sku(s),
        quantity: qty(n),
    }
}

fn ship(number: &str, lines: Vec<LineUnits>) -> OrderCommand {
    OrderCommand::ShipOrder {
        tracking_number: TrackingNumber::new(number).unwrap(),
        carrier: None,
        lines,
        shipped_at: at(10),
    }
}

fn shipped(
    number: &str,
    lines: Vec<LineUnits>,
    completed: &[&str],
    status: OrderStatus,
) -> OrderEvent {
    OrderEvent::OrderShipped {
        tracking_number: TrackingNumber::new(number).unwrap(),
        carrier: None,
        shipped_at: Some(at(10)),
        lines,
        completed_lines: completed.iter().map(|s| sku(s)).collect(),
        status,
    }
}

fn shipped_all() -> OrderEvent {
    shipped(
        "1Z999",
        vec![units("MUG", 2), units("PLATE", 3)],
        &["MUG", "PLATE"],
        OrderStatus::Shipped,
    )
}

fn deliver_all() -> OrderCommand {
    OrderCommand::DeliverOrder {
        tracking_number: None,
        delivered_at: at(30),
    }
}

fn delivered_all() -> OrderEvent {
    OrderEvent::OrderDelivered {
        tracking_numbers: vec![tracking()],
        lines: vec![units("MUG", 2), units("PLATE", 3)],
        delivered_at: Some(at(30)),
        status: OrderStatus::Delivered,
    }
}

fn delivered() -> Vec<OrderEvent> {
    let mut events = confirmed();
    events.extend([captured(), shipped_all(), delivered_all()]);
    events
}

fn refund_id(n: usize) -> RefundId {
    RefundId::new(uuid::Uuid::new_v5(
        &order_id(1).as_uuid(),
        format!("refund-{n}").as_bytes(),
    ))
}

fn refund_line(s: &str, n: u32, amount: i64) -> RefundLine {
    RefundLine {
        tax: None,
        sku: sku(s),
        quantity: qty(n),
        amount: eur(amount),
    }
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

// ---- guests ----

#[test]
fn a_guest_order_has_an_email_and_no_customer() {
    let email = Email::new("guest@example.com").unwrap();
    let guest = OrderCommand::PlaceOrder {
        order_id: order_id(1),
        customer_id: None,
        guest_email: Some(email.clone()),
        lines: vec![new_line("MUG", 1, 1000)],
        pricing: None,
        shipping_address: address(),
        payment_method: token(),
        placed_at: at(0),
    };
    let mut order = Order::default();
    execute(&mut order, guest, &()).unwrap();
    assert_eq!(order.customer_id(), None);
    let subject = DataSubject::GuestOrder(order_id(1));
    assert_eq!(order.guest_email().map(Personal::subject), Some(subject));
    assert_eq!(order.guest_email().and_then(|e| e.expose()), Some(&email));
    // Erasing a guest's data records it once; a customer's order is erased with the customer.
    let erase = || OrderCommand::ErasePersonalData {
        requested_at: at(1),
    };
    let events = execute(&mut order, erase(), &()).unwrap();
    assert_eq!(
        events,
        vec![OrderEvent::OrderPersonalDataErased {
            requested_at: at(1)
        }]
    );
    assert!(order.personal_data_erased());
    assert!(order.guest_email().is_some_and(Personal::is_erased));
    assert!(execute(&mut order, erase(), &()).unwrap().is_empty());
    fixture()
        .given(vec![placed()])
        .when(erase())
        .then_expect_error(OrderError::CustomerOrder);
    // Neither, or both, is refused.
    for (customer_id, guest_email) in [(None, None), (Some(customer_id(1)), Some(email))] {
        fixture()
            .given_no_previous_events()
            .when(OrderCommand::PlaceOrder {
                order_id: order_id(1),
                customer_id,
                guest_email,
                lines: vec![new_line("MUG", 1, 1000)],
                pricing: None,
                shipping_address: address(),
                payment_method: token(),
                placed_at: at(0),
            })
            .then_expect_error(OrderError::CustomerRequired);
    }
}

#[test]
fn an_order_placed_before_guests_existed_reads_as_a_customers_order() {
    let mut json = serde_json::to_value(placed()).unwrap();
    json["OrderPlaced"]
        .as_object_mut()
        .unwrap()
        .remove("guest_email");
    assert!(json["OrderPlaced"]["customer_id"].is_string());
    let read: OrderEvent = serde_json::from_value(json).unwrap();
    assert_eq!(read, placed());
}

// ---- cancel ----

fn cancelled_by_customer() -> OrderEvent {
    OrderEvent::OrderCancelled {
        reason: CancellationReason::CustomerRequest,
    }
}

fn cancel_by_customer() -> OrderCommand {
    OrderCommand::CancelOrder {
        reason: CancellationReason::CustomerRequest,
    }
}

#[test]
fn cancel_before_any_capture_is_a_cancellation_alone() {
    let reason = CancellationReason::OutOfStock { sku: sku("PLATE") };
    for history in [
        vec![placed()],
        vec![placed(), rejected()],
        all_reserved(),
        authorized(),
        // Confirmed, capture not recorded yet: the capture in flight is refunded when the
        // order records it.
        confirmed(),
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
fn cancel_of_a_captured_order_requests_a_full_refund() {
    let mut history = confirmed();
    history.push(captured());
    fixture()
        .given(history)
        .when(cancel_by_customer())
        .then_expect_events(vec![
            cancelled_by_customer(),
            OrderEvent::OrderRefundRequested {
                refund_id: refund_id(1),
                amount: eur(3500),
                reason: RefundReason::Cancellation,
                lines: vec![refund_line("MUG", 2, 2000), refund_line("PLATE", 3, 1500)],
                shipping: None,
                tax: None,
            },
        ]);
}

#[test]
fn a_capture_recorded_after_the_cancellation_is_refunded_in_full() {
    for mut history in [confirmed(), authorized()] {
        history.push(cancelled_by_customer());
        fixture()
            .given(history)
            .when(OrderCommand::RecordPaymentCaptured {
                payment_id: payment_id(1),
                amount: eur(3500),
            })
            .then_expect_events(vec![
                captured(),
                OrderEvent::OrderRefundRequested {
                    refund_id: refund_id(1),
                    amount: eur(3500),
                    reason: RefundReason::Cancellation,
                    lines: vec![refund_line("MUG", 2, 2000), refund_line("PLATE", 3, 1500)],
                    shipping: None,
                    tax: None,
                },
            ]);
    }
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
        .when(cancel_by_customer())
        .then_expect_error(OrderError::AlreadyCancelled);
}

#[test]
fn cancel_after_a_partial_shipment_cancels_and_refunds_the_rest() {
    let mut history = confirmed();
    history.extend([
        captured(),
        shipped(
            "1Z1",
            vec![units("MUG", 1)],
            &[],
            OrderStatus::PartiallyShipped,
        ),
    ]);
    fixture()
        .given(history)
        .when(cancel_by_customer())
        .then_expect_events(vec![
            OrderEvent::OrderRemainderCancelled {
                reason: CancellationReason::CustomerRequest,
                lines: vec![units("MUG", 1), units("PLATE", 3)],
                value: eur(2500),
                status: OrderStatus::Shipped,
            },
            OrderEvent::OrderRefundRequested {
                refund_id: refund_id(1),
                amount: eur(2500),
                reason: RefundReason::Cancellation,
                lines: vec![refund_line("MUG", 1, 1000), refund_line("PLATE", 3, 1500)],
                shipping: None,
                tax: None,
            },
        ]);
}

#[test]
fn cancel_after_full_shipment_is_refused_with_a_pointer_to_returns() {
    let mut shipped_history = confirmed();
    shipped_history.extend([captured(), shipped_all()]);
    for history in [shipped_history, delivered()] {
        fixture()
            .given(history)
            .when(cancel_by_customer())
            .then_expect_error(OrderError::CancelAfterShipment);
    }
    assert!(OrderError::CancelAfterShipment
        .to_string()
        .contains("return"));
}

// ---- ship ----

#[test]
fn partial_then_full_shipment() {
    fixture()
        .given(confirmed())
        .when(ship("1Z1", vec![units("MUG", 2), units("PLATE", 1)]))
        .then_expect_events(vec![shipped(
            "1Z1",
            vec![units("MUG", 2), units("PLATE", 1)],
            &["MUG"],
            OrderStatus::PartiallyShipped,
        )]);
    let mut history = confirmed();
    history.push(shipped(
        "1Z1",
        vec![units("MUG", 2), units("PLATE", 1)],
        &["MUG"],
        OrderStatus::PartiallyShipped,
    ));
    fixture()
        .given(history.clone())
        .when(ship("1Z2", vec![units("PLATE", 1), units("PLATE", 1)]))
        .then_expect_events(vec![shipped(
            "1Z2",
            vec![units("PLATE", 2)],
            &["PLATE"],
            OrderStatus::Shipped,
        )]);
    fixture()
        .given(history)
        .when(ship("1Z1", vec![units("PLATE", 1)]))
        .then_expect_error(OrderError::DuplicateTrackingNumber(
            TrackingNumber::new("1Z1").unwrap(),
        ));
}

#[test]
fn ship_before_confirmation_is_refused() {
    fixture()
        .given(authorized())
        .when(ship("1Z1", vec![units("MUG", 1)]))
        .then_expect_error(transition(OrderStatus::PaymentAuthorized, "ship"));
}

#[test]
fn shipments_are_checked_against_what_remains() {
    fixture()
        .given(confirmed())
        .when(ship("1Z1", vec![]))
        .then_expect_error(OrderError::EmptyShipment);
    fixture()
        .given(confirmed())
        .when(ship("1Z1", vec![units("SPOON", 1)]))
        .then_expect_error(OrderError::UnknownLine(sku("SPOON")));
    fixture()
        .given(confirmed())
        .when(ship("1Z1", vec![units("MUG", 1), units("MUG", 2)]))
        .then_expect_error(OrderError::ShipmentExceedsOrdered {
            sku: sku("MUG"),
            remaining: 2,
        });
}

// ---- deliver ----

#[test]
fn delivery_of_everything_shipped() {
    let mut history = confirmed();
    history.push(shipped_all());
    fixture()
        .given(history)
        .when(deliver_all())
        .then_expect_events(vec![delivered_all()]);
}

#[test]
fn delivery_of_one_parcel_of_two() {
    let mut history = confirmed();
    history.extend([
        shipped(
            "1Z1",
            vec![units("MUG", 2)],
            &["MUG"],
            OrderStatus::PartiallyShipped,
        ),
        shipped(
            "1Z2",
            vec![units("PLATE", 3)],
            &["PLATE"],
            OrderStatus::Shipped,
        ),
    ]);
    let first = OrderEvent::OrderDelivered {
        tracking_numbers: vec![TrackingNumber::new("1Z1").unwrap()],
        lines: vec![units("MUG", 2)],
        delivered_at: Some(at(30)),
        status: OrderStatus::Shipped,
    };
    fixture()
        .given(history.clone())
        .when(OrderCommand::DeliverOrder {
            tracking_number: Some(TrackingNumber::new("1Z1").unwrap()),
            delivered_at: at(30),
        })
        .then_expect_events(vec![first.clone()]);
    history.push(first);
    fixture()
        .given(history.clone())
        .when(OrderCommand::DeliverOrder {
            tracking_number: Some(TrackingNumber::new("1Z1").unwrap()),
            delivered_at: at(31),
        })
        .then_expect_error(OrderError::NothingToDeliver);
    fixture()
        .given(history)
        .when(deliver_all())
        .then_expect_events(vec![OrderEvent::OrderDelivered {
            tracking_numbers: vec![TrackingNumber::new("1Z2").unwrap()],
            lines: vec![units("PLATE", 3)],
            delivered_at: Some(at(30)),
            status: OrderStatus::Delivered,
        }]);
}

#[test]
fn deliveries_are_checked() {
    fixture()
        .given(confirmed())
        .when(deliver_all())
        .then_expect_error(OrderError::NothingToDeliver);
    let mut history = confirmed();
    history.push(shipped_all());
    fixture()
        .given(history.clone())
        .when(OrderCommand::DeliverOrder {
            tracking_number: Some(TrackingNumber::new("NOPE").unwrap()),
            delivered_at: at(30),
        })
        .then_expect_error(OrderError::UnknownShipment(
            TrackingNumber::new("NOPE").unwrap(),
        ));
    fixture()
        .given(history)
        .when(OrderCommand::DeliverOrder {
            tracking_number: None,
            delivered_at: at(9),
        })
        .then_expect_error(OrderError::DeliveryBeforeShipment { shipped_at: at(10) });
}

#[test]
fn a_delivery_recorded_before_version_2_means_everything_shipped_arrived() {
    let upcast = crate::upcasting::order_delivered_v1_to_v2(serde_json::json!("OrderDelivered"));
    let event: OrderEvent = serde_json::from_value(upcast).unwrap();
    let mut order = Order::default();
    for e in confirmed().into_iter().chain([shipped_all(), event]) {
        order.apply(e);
    }
    assert_eq!(order.status(), OrderStatus::Delivered);
    assert!(order.lines().iter().all(|l| l.delivered == l.shipped));
    assert!(order.shipments().iter().all(|s| s.delivered));
}

// ---- returns ----

fn return_id(n: u128) -> ReturnId {
    ReturnId::new(uuid::Uuid::from_u128(0xA000 + n))
}

fn request_return(n: u128, lines: Vec<LineUnits>, days_after: i64) -> OrderCommand {
    OrderCommand::RequestReturn {
        return_id: return_id(n),
        lines,
        reason: ReturnReason::new("too small").unwrap(),
        requested_at: at(30) + chrono::Duration::days(days_after),
        window_days: 30,
    }
}

fn receive(n: u128, lines: Vec<ReceivedLine>) -> OrderCommand {
    OrderCommand::ReceiveReturn {
        return_id: return_id(n),
        warehouse: WarehouseId::new("main").unwrap(),
        lines,
        received_at: at(50),
    }
}

fn received(s: &str, n: u32, restock: bool) -> ReceivedLine {
    ReceivedLine {
        sku: sku(s),
        quantity: qty(n),
        restock,
    }
}

#[test]
fn a_return_within_the_window_is_received_and_refunded() {
    let mut order = Order::default();
    for event in delivered() {
        order.apply(event);
    }
    let events = execute(
        &mut order,
        request_return(1, vec![units("MUG", 1)], 29),
        &(),
    )
    .unwrap();
    assert!(matches!(
        events[..],
        [OrderEvent::OrderReturnRequested { .. }]
    ));
    assert_eq!(order.lines()[0].returnable(), 1);
    let events = execute(&mut order, receive(1, vec![received("MUG", 1, true)]), &()).unwrap();
    assert_eq!(
        events,
        vec![
            OrderEvent::OrderReturnReceived {
                return_id: return_id(1),
                warehouse: WarehouseId::new("main").unwrap(),
                lines: vec![received("MUG", 1, true)],
                value: eur(1000),
                received_at: at(50),
            },
            OrderEvent::OrderRefundRequested {
                refund_id: refund_id(1),
                amount: eur(1000),
                reason: RefundReason::Return {
                    return_id: return_id(1)
                },
                lines: vec![refund_line("MUG", 1, 1000)],
                shipping: None,
                tax: None,
            },
        ]
    );
    let events = execute(
        &mut order,
        OrderCommand::RecordRefund {
            refund_id: refund_id(1),
            amount: eur(1000),
        },
        &(),
    )
    .unwrap();
    assert!(matches!(
        events[..],
        [OrderEvent::OrderRefunded {
            status: OrderStatus::PartiallyRefunded,
            ..
        }]
    ));
    assert_eq!(order.lines()[0].returned, 1);
    // Recording it again changes nothing.
    let again = OrderCommand::RecordRefund {
        refund_id: refund_id(1),
        amount: eur(1000),
    };
    assert_eq!(execute(&mut order, again, &()), Ok(vec![]));
}

#[test]
fn returns_are_checked() {
    fixture()
        .given(delivered())
        .when(request_return(1, vec![units("MUG", 1)], 31))
        .then_expect_error(OrderError::ReturnWindowClosed {
            sku: sku("MUG"),
            closed_at: at(30) + chrono::Duration::days(30),
        });
    fixture()
        .given(delivered())
        .when(request_return(1, vec![units("MUG", 2), units("MUG", 1)], 1))
        .then_expect_error(OrderError::ReturnExceedsDelivered {
            sku: sku("MUG"),
            returnable: 2,
        });
    fixture()
        .given(delivered())
        .when(request_return(1, vec![], 1))
        .then_expect_error(OrderError::EmptyReturn);
    let mut shipped_only = confirmed();
    shipped_only.extend([captured(), shipped_all()]);
    fixture()
        .given(shipped_only)
        .when(request_return(1, vec![units("MUG", 1)], 1))
        .then_expect_error(OrderError::ReturnExceedsDelivered {
            sku: sku("MUG"),
            returnable: 0,
        });
    let mut requested = delivered();
    requested.push(OrderEvent::OrderReturnRequested {
        return_id: return_id(1),
        lines: vec![units("MUG", 1)],
        reason: ReturnReason::new("too small").unwrap(),
        requested_at: at(40),
    });
    fixture()
        .given(requested.clone())
        .when(request_return(1, vec![units("PLATE", 1)], 1))
        .then_expect_error(OrderError::ReturnAlreadyExists);
    fixture()
        .given(requested.clone())
        .when(receive(1, vec![received("MUG", 2, true)]))
        .then_expect_error(OrderError::ReceiptExceedsReturn {
            sku: sku("MUG"),
            requested: 1,
        });
    fixture()
        .given(requested.clone())
        .when(receive(1, vec![received("PLATE", 1, true)]))
        .then_expect_error(OrderError::UnknownLine(sku("PLATE")));
    fixture()
        .given(requested)
        .when(receive(2, vec![received("MUG", 1, true)]))
        .then_expect_error(OrderError::ReturnNotFound);
}

#[test]
fn units_announced_but_not_received_can_be_returned_again() {
    let mut order = Order::default();
    for event in delivered() {
        order.apply(event);
    }
    execute(
        &mut order,
        request_return(1, vec![units("PLATE", 3)], 1),
        &(),
    )
    .unwrap();
    assert_eq!(order.lines()[1].returnable(), 0);
    execute(
        &mut order,
        receive(1, vec![received("PLATE", 1, false)]),
        &(),
    )
    .unwrap();
    assert_eq!(order.lines()[1].returned, 1);
    assert_eq!(order.lines()[1].returnable(), 2);
    assert_eq!(
        execute(
            &mut order,
            receive(1, vec![received("PLATE", 1, false)]),
            &()
        ),
        Err(OrderError::ReturnAlreadyReceived)
    );
}

// ---- refunds ----

#[test]
fn a_merchant_refund_is_requested_then_recorded() {
    fixture()
        .given(delivered())
        .when(OrderCommand::RequestRefund {
            refund_id: refund_id(1),
            amount: eur(1000),
        })
        .then_expect_events(vec![OrderEvent::OrderRefundRequested {
            refund_id: refund_id(1),
            amount: eur(1000),
            reason: RefundReason::MerchantRequest,
            lines: vec![],
            shipping: None,
            tax: None,
        }]);
    let mut history = delivered();
    history.push(OrderEvent::OrderRefundRequested {
        refund_id: refund_id(1),
        amount: eur(1000),
        reason: RefundReason::MerchantRequest,
        lines: vec![],
        shipping: None,
        tax: None,
    });
    // Pending refunds count against what can still be refunded.
    fixture()
        .given(history.clone())
        .when(OrderCommand::RequestRefund {
            refund_id: refund_id(2),
            amount: eur(2501),
        })
        .then_expect_error(OrderError::RefundExceedsCaptured {
            refundable: eur(2500),
        });
    fixture()
        .given(history.clone())
        .when(OrderCommand::RecordRefund {
            refund_id: refund_id(1),
            amount: eur(999),
        })
        .then_expect_error(OrderError::RefundAmountMismatch {
            expected: eur(1000),
            actual: eur(999),
        });
    fixture()
        .given(history)
        .when(OrderCommand::RecordRefund {
            refund_id: refund_id(1),
            amount: eur(1000),
        })
        .then_expect_events(vec![OrderEvent::OrderRefunded {
            refund_id: Some(refund_id(1)),
            amount: eur(1000),
            total_refunded: eur(1000),
            status: OrderStatus::PartiallyRefunded,
            lines: vec![],
        }]);
}

#[test]
fn a_failed_refund_frees_its_amount() {
    let mut order = Order::default();
    for event in delivered() {
        order.apply(event);
    }
    execute(
        &mut order,
        OrderCommand::RequestRefund {
            refund_id: refund_id(1),
            amount: eur(3500),
        },
        &(),
    )
    .unwrap();
    assert_eq!(order.refundable(), eur(0));
    let events = execute(
        &mut order,
        OrderCommand::RecordRefundFailed {
            refund_id: refund_id(1),
        },
        &(),
    )
    .unwrap();
    assert_eq!(
        events,
        vec![OrderEvent::OrderRefundFailed {
            refund_id: refund_id(1),
            amount: eur(3500)
        }]
    );
    assert_eq!(order.refundable(), eur(3500));
    assert_eq!(order.refunded(), None);
}

#[test]
fn refunds_need_captured_money_in_the_orders_currency() {
    for history in [vec![placed()], authorized(), confirmed()] {
        fixture()
            .given(history)
            .when(OrderCommand::RequestRefund {
                refund_id: refund_id(9),
                amount: eur(1),
            })
            .then_expect_error(OrderError::RefundExceedsCaptured { refundable: eur(0) });
    }
    fixture()
        .given(delivered())
        .when(OrderCommand::RequestRefund {
            refund_id: refund_id(9),
            amount: eur(0),
        })
        .then_expect_error(OrderError::RefundAmountZero);
    fixture()
        .given(delivered())
        .when(OrderCommand::RequestRefund {
            refund_id: refund_id(9),
            amount: usd(1),
        })
        .then_expect_error(OrderError::CurrencyMismatch);
    fixture()
        .given(delivered())
        .when(OrderCommand::RecordRefund {
            refund_id: refund_id(7),
            amount: eur(1),
        })
        .then_expect_error(OrderError::RefundNotFound);
}

#[test]
fn a_legacy_refund_without_id_still_counts() {
    let mut history = delivered();
    history.push(OrderEvent::OrderRefunded {
        refund_id: None,
        amount: eur(3000),
        total_refunded: eur(3000),
        status: OrderStatus::PartiallyRefunded,
        lines: vec![],
    });
    fixture()
        .given(history)
        .when(OrderCommand::RequestRefund {
            refund_id: refund_id(9),
            amount: eur(501),
        })
        .then_expect_error(OrderError::RefundExceedsCaptured {
            refundable: eur(500),
        });
}

#[test]
fn a_void_is_recorded_once() {
    let mut history = authorized();
    history.push(cancelled_by_customer());
    let voided = OrderEvent::OrderPaymentVoided {
        payment_id: payment_id(1),
        amount: eur(3500),
    };
    fixture()
        .given(history.clone())
        .when(OrderCommand::RecordPaymentVoided {
            payment_id: payment_id(1),
        })
        .then_expect_events(vec![voided.clone()]);
    history.push(voided);
    fixture()
        .given(history)
        .when(OrderCommand::RecordPaymentVoided {
            payment_id: payment_id(1),
        })
        .then_expect_events(vec![]);
}

#[test]
fn serialization_and_codes_are_stable() {
    assert_eq!(placed().event_type(), "OrderPlaced");
    assert_eq!(placed().event_version(), "2.1");
    assert_eq!(delivered_all().event_version(), "2.0");
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
    assert!(json["OrderPlaced"].get("guest_email").is_none());
    assert!(!format!("{:?}", placed()).contains("Main Street"));
}

// ---- the whole life, as a property ----

#[derive(Debug, Clone)]
enum Op {
    Place,
    Reserved(usize),
    Rejected(usize),
    Authorized(bool),
    Declined,
    Captured(bool),
    Voided,
    Confirm,
    Cancel,
    Ship(usize, u32),
    Deliver(Option<usize>),
    Return(usize, u32, i64),
    Receive(usize, u32, bool),
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
        Just(Op::Voided),
        Just(Op::Confirm),
        Just(Op::Cancel),
        (0..2usize, 1..4u32).prop_map(|(l, n)| Op::Ship(l, n)),
        prop::option::of(0..3usize).prop_map(Op::Deliver),
        (0..2usize, 1..4u32, 0..40i64).prop_map(|(l, n, d)| Op::Return(l, n, d)),
        (0..3usize, 1..4u32, any::<bool>()).prop_map(|(r, n, s)| Op::Receive(r, n, s)),
        (0..4000i64).prop_map(Op::Refund),
    ]
}

fn command(op: &Op, order: &Order, step: usize) -> OrderCommand {
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
        Op::Voided => OrderCommand::RecordPaymentVoided {
            payment_id: payment_id(1),
        },
        Op::Confirm => OrderCommand::ConfirmOrder,
        Op::Cancel => cancel_by_customer(),
        Op::Ship(l, n) => ship(&format!("T{step}"), vec![units(SKUS[l], n)]),
        Op::Deliver(parcel) => OrderCommand::DeliverOrder {
            tracking_number: parcel
                .and_then(|i| order.shipments().get(i))
                .map(|s| s.tracking_number.clone()),
            delivered_at: at(30),
        },
        Op::Return(l, n, days) => OrderCommand::RequestReturn {
            return_id: return_id(step as u128),
            lines: vec![units(SKUS[l], n)],
            reason: ReturnReason::new("changed my mind").unwrap(),
            requested_at: at(30) + chrono::Duration::days(days),
            window_days: 30,
        },
        Op::Receive(r, n, restock) => {
            let (return_id, lines) = order
                .returns()
                .iter()
                .nth(r)
                .map(|(id, ret)| (*id, ret.lines.clone()))
                .unwrap_or((return_id(999), vec![units("MUG", 1)]));
            OrderCommand::ReceiveReturn {
                return_id,
                warehouse: WarehouseId::new("main").unwrap(),
                lines: lines
                    .iter()
                    .map(|u| received(u.sku.as_str(), n.min(u.quantity.get()), restock))
                    .collect(),
                received_at: at(50),
            }
        }
        Op::Refund(amount) => OrderCommand::RequestRefund {
            refund_id: RefundId::new(uuid::Uuid::from_u128(0xD000 + step as u128)),
            amount: eur(amount),
        },
    }
}

fn rank(status: OrderStatus) -> u8 {
    use OrderStatus as S;
    match status {
        S::Confirmed => 1,
        S::PartiallyShipped => 2,
        S::Shipped => 3,
        S::Delivered => 4,
        S::PartiallyRefunded => 5,
        S::Refunded => 6,
        _ => 0,
    }
}

fn allowed(from: OrderStatus, to: OrderStatus) -> bool {
    use OrderStatus as S;
    from == to
        // Fulfilment and refunds only move forward.
        || (rank(from) > 0 && rank(to) > rank(from))
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

fn value(units: impl Fn(&LineProgress) -> u32, order: &Order) -> i64 {
    order
        .lines()
        .iter()
        .map(|l| i64::from(units(l)) * l.line.unit_price.amount())
        .sum()
}

fn check_state(order: &Order, goodwill: i64) -> Result<(), TestCaseError> {
    use OrderStatus as S;
    let status = order.status();
    for line in order.lines() {
        let ordered = line.line.quantity.get();
        prop_assert!(line.shipped + line.cancelled <= ordered, "{:?}", line);
        prop_assert!(line.delivered <= line.shipped);
        prop_assert!(line.returned <= line.in_returns && line.in_returns <= line.delivered);
    }
    if status == S::AwaitingPayment || status == S::PaymentAuthorized || status == S::Confirmed {
        prop_assert!(order.lines().iter().all(|l| l.reserved));
    }
    if let Some(captured) = order.captured() {
        prop_assert_eq!(Some(captured), order.authorized());
        // Every refund is recorded as soon as it is requested here (the process's job), so
        // the money is settled: the customer keeps what they pay for, less goodwill.
        let refunded = order.refunded().map_or(0, |r| r.amount());
        let kept = value(|l| l.line.quantity.get() - l.cancelled - l.returned, order);
        prop_assert_eq!(captured.amount() - refunded, (kept - goodwill).max(0));
        prop_assert!(order.owed.is_empty());
    } else {
        prop_assert_eq!(order.refunded(), None);
        let owed: i64 = order
            .owed
            .iter()
            .flat_map(|o| o.lines.iter())
            .map(|l| l.amount.amount())
            .sum();
        prop_assert_eq!(owed, value(|l| l.cancelled + l.returned, order));
    }
    // Nothing is paid back twice: refunded units are cancelled or returned ones.
    for line in order.lines() {
        let paid_back: u32 = order
            .refunds()
            .values()
            .flat_map(|r| r.lines.iter())
            .filter(|r| r.sku == line.line.sku)
            .map(|r| r.quantity.get())
            .sum();
        prop_assert!(paid_back <= line.cancelled + line.returned);
    }
    if matches!(status, S::Delivered | S::PartiallyRefunded | S::Refunded) {
        prop_assert!(order.lines().iter().all(|l| l.delivered == l.to_fulfil()));
    }
    if status == S::Cancelled {
        prop_assert!(order.lines().iter().all(|l| l.shipped == 0));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// No sequence of commands reaches an illegal state: refused commands change nothing,
    /// accepted ones only take allowed transitions, units are never shipped, delivered or
    /// returned beyond what the order holds, and money reconciles after every step.
    #[test]
    fn the_order_life_keeps_units_and_money_exact(
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let mut order = Order::default();
        let mut history = Vec::new();
        let mut goodwill = 0;
        for (step, op) in ops.iter().enumerate() {
            let before = order.clone();
            let result = execute(&mut order, command(op, &before, step), &());
            match result {
                Ok(events) => {
                    prop_assert!(
                        allowed(before.status(), order.status()),
                        "{} -> {} via {:?}", before.status(), order.status(), op
                    );
                    if let Op::Refund(amount) = op {
                        if !events.is_empty() {
                            goodwill += amount;
                        }
                    }
                    history.extend(events.iter().cloned());
                    for event in events {
                        if let OrderEvent::OrderRefundRequested { refund_id, amount, .. } = event {
                            let recorded = execute(
                                &mut order,
                                OrderCommand::RecordRefund { refund_id, amount },
                                &(),
                            );
                            prop_assert!(recorded.is_ok(), "{:?}", recorded);
                            history.extend(recorded.unwrap_or_default());
                        }
                    }
                }
                Err(_) => prop_assert_eq!(&order, &before),
            }
            check_state(&order, goodwill)?;
        }
        // Replaying the recorded events rebuilds the same state.
        let mut replayed = Order::default();
        for event in history {
            replayed.apply(event);
        }
        prop_assert_eq!(replayed, order);
    }

    /// The whole happy life is reachable through the same operations.
    #[test]
    fn happy_path_reaches_refunded(refund in 1i64..=3500) {
        let mut order = Order::default();
        for (step, op) in [
            Op::Place, Op::Reserved(0), Op::Reserved(1), Op::Authorized(true), Op::Confirm,
            Op::Captured(true), Op::Ship(0, 2), Op::Ship(1, 3), Op::Deliver(None), Op::Refund(refund),
        ].iter().enumerate() {
            let command = command(op, &order, step);
            execute(&mut order, command, &()).unwrap();
        }
        let refund_id = RefundId::new(uuid::Uuid::from_u128(0xD000 + 9));
        let refund = OrderCommand::RecordRefund { refund_id, amount: eur(refund) };
        execute(&mut order, refund, &()).unwrap();
        let expected = if refund_amount_is_all(&order) { OrderStatus::Refunded } else { OrderStatus::PartiallyRefunded };
        prop_assert_eq!(order.status(), expected);
    }
}

fn refund_amount_is_all(order: &Order) -> bool {
    order.refunded() == order.captured()
}

// ---- priced orders: refunds are shares of what each line cost ----

fn priced_place(percent: u32, tax: u32, inclusive: bool, quantities: [u32; 2]) -> OrderCommand {
    use crate::pricing::{self, Discount, PromotionRule, Rate, Stacking, Target, TaxRule};
    use crate::values::{PromotionId, PromotionName};
    let lines = vec![
        new_line("MUG", quantities[0], 999),
        new_line("PLATE", quantities[1], 333),
    ];
    let pricing_lines: Vec<_> = lines
        .iter()
        .map(|l| pricing::PricingLine {
            sku: l.sku.clone(),
            quantity: l.quantity,
            unit_price: l.unit_price,
            category: None,
            brand: None,
            weight_grams: None,
        })
        .collect();
    let rule = PromotionRule {
        id: PromotionId::new(uuid::Uuid::from_u128(1)),
        name: PromotionName::new("Sale").unwrap(),
        code: None,
        discount: Discount::Percent(Rate::from_thousandths(percent).unwrap()),
        applies_to: Target::Cart,
        min_subtotal: None,
        stacking: Stacking::Combinable,
    };
    let tax = TaxRule {
        rate: Rate::from_thousandths(tax).unwrap(),
        prices_include_tax: inclusive,
    };
    let priced = pricing::price(&pricing_lines, &[rule], tax).unwrap();
    let OrderCommand::PlaceOrder {
        order_id,
        customer_id,
        guest_email,
        shipping_address,
        payment_method,
        placed_at,
        ..
    } = place(vec![])
    else {
        unreachable!()
    };
    OrderCommand::PlaceOrder {
        order_id,
        customer_id,
        guest_email,
        lines,
        pricing: Some(Box::new(priced)),
        shipping_address,
        payment_method,
        placed_at,
    }
}

#[test]
fn a_priced_order_records_its_discounts_and_tax_and_refuses_a_pricing_of_other_lines() {
    let mut order = Order::default();
    let events = execute(&mut order, priced_place(10_000, 19_000, false, [2, 3]), &()).unwrap();
    let OrderEvent::OrderPlaced {
        total,
        subtotal,
        tax,
        discounts,
        lines,
        ..
    } = &events[0]
    else {
        panic!("{events:?}")
    };
    // 19.98 + 9.99 = 29.97; less 10% (3.00: 2.00 + 1.00); 19% tax per line on 17.98 and
    // 8.99: 3.42 + 1.71.
    assert_eq!(*subtotal, Some(eur(2997)));
    assert_eq!(discounts[0].amount, eur(300));
    assert_eq!(*tax, Some(eur(513)));
    assert_eq!(*total, eur(2997 - 300 + 513));
    assert_eq!(
        lines.iter().map(|l| l.paid().amount()).sum::<i64>(),
        total.amount()
    );
    let OrderCommand::PlaceOrder { pricing, .. } = priced_place(10_000, 19_000, false, [2, 3])
    else {
        unreachable!()
    };
    let mut other = place(vec![new_line("MUG", 1, 999), new_line("PLATE", 3, 333)]);
    if let OrderCommand::PlaceOrder { pricing: p, .. } = &mut other {
        *p = pricing;
    }
    assert_eq!(
        execute(&mut Order::default(), other, &()),
        Err(OrderError::PricingMismatch)
    );
}

proptest! {
    /// For random promotions, tax rates and returns in random steps: no refund gives back
    /// more than was captured, and returning (or cancelling) every unit gives back exactly
    /// the order's total and, inside it, exactly the order's tax.
    #[test]
    fn refunds_of_a_priced_order_never_exceed_what_was_paid(
        percent in 0u32..=100_000,
        tax in 0u32..=30_000,
        inclusive in any::<bool>(),
        quantities in [1u32..6, 1u32..6],
        shipped in [0u32..6, 0u32..6],
        steps in prop::collection::vec((0usize..2, 1u32..4), 0..8),
    ) {
        let mut order = Order::default();
        // `execute` applies the events to the order, as the framework does.
        let run = |order: &mut Order, command| execute(order, command, &());
        run(&mut order, priced_place(percent, tax, inclusive, quantities)).unwrap();
        let total = order.total().unwrap();
        for s in SKUS.iter().take(2) {
            run(&mut order, OrderCommand::RecordStockReserved { sku: sku(s) }).unwrap();
        }
        run(&mut order, OrderCommand::RecordPaymentAuthorized { payment_id: payment_id(1), amount: total }).unwrap();
        run(&mut order, OrderCommand::ConfirmOrder).unwrap();
        run(&mut order, OrderCommand::RecordPaymentCaptured { payment_id: payment_id(1), amount: total }).unwrap();
        let parcel: Vec<LineUnits> = (0..2)
            .filter(|&i| shipped[i].min(quantities[i]) > 0)
            .map(|i| units(SKUS[i], shipped[i].min(quantities[i])))
            .collect();
        let mut requested = 0i64;
        // Cancel what is not shipped, ship the rest, then return it in steps.
        if parcel.is_empty() {
            requested += refund_requested(&run(&mut order, cancel_by_customer()).unwrap());
        } else {
            run(&mut order, ship("T1", parcel)).unwrap();
            if order.lines().iter().any(|l| l.unshipped() > 0) {
                requested += refund_requested(&run(&mut order, cancel_by_customer()).unwrap());
            }
            run(&mut order, OrderCommand::DeliverOrder { tracking_number: None, delivered_at: at(30) }).unwrap();
            let mut step = 0u128;
            let mut return_units = |order: &mut Order, i: usize, n: u32| -> i64 {
                let line = &order.lines()[i];
                let n = n.min(line.returnable());
                if n == 0 { return 0; }
                step += 1;
                let sku_i = line.line.sku.clone();
                run(order, OrderCommand::RequestReturn { return_id: return_id(step), lines: vec![units(sku_i.as_str(), n)], reason: ReturnReason::new("too big").unwrap(), requested_at: at(40), window_days: 30 }).unwrap();
                let events = run(order, OrderCommand::ReceiveReturn { return_id: return_id(step), warehouse: WarehouseId::new("main").unwrap(), lines: vec![received(sku_i.as_str(), n, true)], received_at: at(50) }).unwrap();
                refund_requested(&events)
            };
            for (i, n) in steps {
                requested += return_units(&mut order, i, n);
                prop_assert!(requested <= total.amount());
            }
            for i in 0..2 {
                requested += return_units(&mut order, i, u32::MAX);
            }
        }
        prop_assert_eq!(requested, total.amount());
        // The refunds' tax is the order's tax, to the minor unit.
        let refunded_tax: i64 = order
            .refunds()
            .values()
            .flat_map(|r| &r.lines)
            .filter_map(|l| l.tax)
            .map(|t| t.amount())
            .sum();
        let order_tax: i64 = order.lines().iter().filter_map(|l| l.line.tax).map(|t| t.amount()).sum();
        prop_assert_eq!(refunded_tax, order_tax);
    }
}

fn refund_requested(events: &[OrderEvent]) -> i64 {
    events
        .iter()
        .map(|e| match e {
            OrderEvent::OrderRefundRequested { amount, .. } => amount.amount(),
            _ => 0,
        })
        .sum()
}

#[test]
fn a_whole_order_cancelled_before_it_shipped_gives_its_shipping_back_and_a_partial_one_not() {
    use crate::pricing::{self, PricingLine, TaxRule};
    use crate::shipping::{ShippingMethod, ShippingMethodId, ShippingRate};
    let lines = vec![new_line("MUG", 2, 1000), new_line("PLATE", 1, 500)];
    let pricing_lines: Vec<PricingLine> = lines
        .iter()
        .map(|l| PricingLine {
            sku: l.sku.clone(),
            quantity: l.quantity,
            unit_price: l.unit_price,
            category: None,
            brand: None,
            weight_grams: Some(600),
        })
        .collect();
    let method = ShippingMethod {
        name: ProductName::new("Parcel").unwrap(),
        countries: vec![address().country().clone()],
        rate: ShippingRate::ByWeight {
            base: eur(300),
            per_kg: eur(100),
        },
        free_above: None,
    };
    let priced = pricing::price(&pricing_lines, &[], TaxRule::none(true)).unwrap();
    let priced = pricing::with_shipping(
        priced,
        &pricing_lines,
        ShippingMethodId::new("parcel").unwrap(),
        &method,
        address().country(),
    )
    .unwrap();
    // 1.8 kg: 3.00 + 2 x 1.00.
    assert_eq!(priced.shipping.as_ref().unwrap().total, eur(500));
    assert!(priced.reconciles());
    let OrderCommand::PlaceOrder {
        order_id,
        customer_id,
        guest_email,
        shipping_address,
        payment_method,
        placed_at,
        ..
    } = place(vec![])
    else {
        unreachable!()
    };
    let placed = OrderCommand::PlaceOrder {
        order_id,
        customer_id,
        guest_email,
        lines,
        pricing: Some(Box::new(priced)),
        shipping_address,
        payment_method,
        placed_at,
    };
    let run = |order: &mut Order, command| execute(order, command, &()).unwrap();
    let paid = |cancel_after_shipping: bool| {
        let mut order = Order::default();
        run(&mut order, placed.clone());
        assert_eq!(order.total(), Some(eur(3000)));
        for s in ["MUG", "PLATE"] {
            run(
                &mut order,
                OrderCommand::RecordStockReserved { sku: sku(s) },
            );
        }
        run(
            &mut order,
            OrderCommand::RecordPaymentAuthorized {
                payment_id: payment_id(1),
                amount: eur(3000),
            },
        );
        run(&mut order, OrderCommand::ConfirmOrder);
        run(
            &mut order,
            OrderCommand::RecordPaymentCaptured {
                payment_id: payment_id(1),
                amount: eur(3000),
            },
        );
        if cancel_after_shipping {
            run(&mut order, ship("T1", vec![units("MUG", 1)]));
        }
        refund_requested(&run(&mut order, cancel_by_customer()))
    };
    assert_eq!(paid(false), 3000);
    // One mug left: the rest (a mug and the plate) is refunded, the parcel's shipping not.
    assert_eq!(paid(true), 1500);
}
