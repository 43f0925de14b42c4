//! The checkout end to end: HTTP, relay, order process, aggregates.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use mercato_aggregates::money::Money;
use mercato_aggregates::order::{CancellationReason, OrderStatus};
use mercato_aggregates::payment::{
    AuthorizationId, AuthorizationOutcome, AuthorizationRequest, DeclineReason, GatewayError,
    PaymentGateway,
};
use mercato_command_api::{CommandApiConfig, TestCardGateway};

use crate::harness::{checkout_body, Env};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_checkout_is_confirmed_with_stock_reserved_payment_captured_and_a_notification() {
    let env = Env::start().await;
    let admin = env.admin().await;
    env.product(&admin, "MUG-1", 10).await;
    let (_, ada) = env.customer("ada@example.com").await;
    let cart = env.cart_with(&ada, "MUG-1", 3).await;
    let order_id = env.checkout(&ada, &cart, "tok_visa").await;
    assert_eq!(
        env.pending_checkouts().await,
        0,
        "the recorded address and token are deleted once the order is placed"
    );

    let order = env.settled(&order_id).await;
    assert_eq!(order.status(), OrderStatus::Confirmed);
    assert_eq!(order.captured().unwrap().amount(), 3750);
    let (stock, _) = env.stock().load("MUG-1").await.unwrap();
    assert_eq!(stock.total_available(), 7);
    assert!(stock.reservation(&order.id().unwrap()).is_some());
    assert_eq!(env.count_events(&order_id, "OrderConfirmed").await, 1);

    // The confirmation email is recorded once (no SMTP configured).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let n = env
            .emails_to(&order_id, "order_confirmed", "ada@example.com")
            .await;
        if n == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no notification");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The process decides on what its own stock and payment commands appended as soon as they
/// are written, not a bus round trip later (ADR 0018): a process that hears only of orders
/// on the bus still takes one checkout to the capture and another, out of stock, to its
/// cancellation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_order_process_reacts_to_its_own_stock_and_payment_results_at_once() {
    let mut env = Env::with(CommandApiConfig::for_tests(), false).await;
    let orders_only = env.deps.nats.aggregate_type_wildcard("Order");
    env.start_process_hearing(
        Arc::new(TestCardGateway::new(env.config.payment_timeout)),
        Some(orders_only),
    );
    let admin = env.admin().await;
    env.product(&admin, "CUP-1", 3).await;
    let (_, ada) = env.customer("ada@example.com").await;
    let (_, bob) = env.customer("bob@example.com").await;

    let paid = env
        .checkout(&ada, &env.cart_with(&ada, "CUP-1", 2).await, "tok_visa")
        .await;
    let order = env.settled(&paid).await;
    assert_eq!(order.status(), OrderStatus::Confirmed);
    assert_eq!(order.captured().unwrap().amount(), 2 * 1250);

    let short = env
        .checkout(&bob, &env.cart_with(&bob, "CUP-1", 2).await, "tok_visa")
        .await;
    let order = env.settled(&short).await;
    assert_eq!(order.status(), OrderStatus::Cancelled);
    let (stock, _) = env.stock().load("CUP-1").await.unwrap();
    assert_eq!(
        stock.total_available(),
        1,
        "only the paid order's units are held"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_stock_declined_and_timed_out_payments_cancel_and_release_everything() {
    let env = Env::start().await;
    let admin = env.admin().await;
    env.product(&admin, "TEA-1", 5).await;
    let (_, ada) = env.customer("ada@example.com").await;

    let too_many = env.cart_with(&ada, "TEA-1", 6).await;
    let declined = env.cart_with(&ada, "TEA-1", 1).await;
    let poor = env.cart_with(&ada, "TEA-1", 1).await;
    let slow = env.cart_with(&ada, "TEA-1", 1).await;
    let cases = [
        (
            env.checkout(&ada, &too_many, "tok_visa").await,
            "out_of_stock",
        ),
        (
            env.checkout(&ada, &declined, "tok_decline").await,
            "card_declined",
        ),
        (
            env.checkout(&ada, &poor, "tok_insufficient_funds").await,
            "insufficient_funds",
        ),
        (env.checkout(&ada, &slow, "tok_timeout").await, "timeout"),
    ];
    for (order_id, expected) in cases {
        let order = env.settled(&order_id).await;
        assert_eq!(order.status(), OrderStatus::Cancelled, "{expected}");
        let reason: serde_json::Value = sqlx::query_scalar(
            "SELECT payload->'OrderCancelled'->'reason' FROM events WHERE aggregate_id = $1 AND event_type = 'OrderCancelled'",
        )
        .bind(&order_id)
        .fetch_one(&env.deps.pool)
        .await
        .unwrap();
        let reason: CancellationReason = serde_json::from_value(reason).unwrap();
        match (expected, reason) {
            ("out_of_stock", CancellationReason::OutOfStock { sku }) => {
                assert_eq!(sku.as_str(), "TEA-1")
            }
            (
                "card_declined",
                CancellationReason::PaymentDeclined {
                    reason: DeclineReason::CardDeclined,
                },
            )
            | (
                "insufficient_funds",
                CancellationReason::PaymentDeclined {
                    reason: DeclineReason::InsufficientFunds,
                },
            )
            | (
                "timeout",
                CancellationReason::PaymentDeclined {
                    reason: DeclineReason::Timeout,
                },
            ) => {}
            (e, r) => panic!("expected {e}, got {r:?}"),
        }
        assert!(order.captured().is_none());
    }
    let (stock, _) = env.stock().load("TEA-1").await.unwrap();
    assert_eq!(stock.total_available(), 5, "every reservation released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_buyers_of_fifty_units_confirm_exactly_fifty_orders() {
    let env = Env::start().await;
    let admin = env.admin().await;
    env.product(&admin, "HOT-1", 50).await;
    let buyers: Vec<(String, String)> = futures::stream::iter(0..200)
        .map(|i| {
            let env = &env;
            async move {
                let (_, token) = env.customer(&format!("buyer{i}@example.com")).await;
                let cart = env.cart_with(&token, "HOT-1", 1).await;
                (token, cart)
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let orders: Vec<String> = futures::stream::iter(buyers.iter())
        .map(|(token, cart)| env.checkout(token, cart, "tok_visa"))
        .buffer_unordered(16)
        .collect()
        .await;
    let mut confirmed = 0;
    for order_id in &orders {
        let order = env.settled(order_id).await;
        if order.status() == OrderStatus::Confirmed {
            confirmed += 1;
        }
    }
    assert_eq!(confirmed, 50);
    let (stock, _) = env.stock().load("HOT-1").await.unwrap();
    assert_eq!(stock.total_available(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_process_worker_killed_mid_checkout_and_restarted_completes_the_order_exactly_once(
) {
    let mut env = Env::start().await;
    let admin = env.admin().await;
    env.product(&admin, "BAG-1", 10).await;
    let (_, ada) = env.customer("ada@example.com").await;
    let cart = env.cart_with(&ada, "BAG-1", 2).await;
    let order_id = env.checkout(&ada, &cart, "tok_visa").await;
    // Kill as soon as the checkout has started (somewhere between placement and capture).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while env.checkout_phase(&order_id).await.is_none() {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    env.kill_process().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    env.start_process(env.config.payment_timeout);

    let order = env.settled(&order_id).await;
    assert_eq!(order.status(), OrderStatus::Confirmed);
    let payment_id =
        mercato_aggregates::order_process::OrderProcess::payment_id_for(order.id().unwrap())
            .to_string();
    for (id, ty) in [
        (order_id.as_str(), "OrderPlaced"),
        (order_id.as_str(), "OrderLineReserved"),
        (order_id.as_str(), "OrderConfirmed"),
        (order_id.as_str(), "OrderPaymentCaptured"),
        (payment_id.as_str(), "PaymentAuthorized"),
        (payment_id.as_str(), "PaymentCaptured"),
    ] {
        assert_eq!(env.count_events(id, ty).await, 1, "{ty}");
    }
    let reserved: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_id = 'BAG-1' AND event_type = 'StockReserved'",
    )
    .fetch_one(&env.deps.pool)
    .await
    .unwrap();
    assert_eq!(reserved, 1);
    let (stock, _) = env.stock().load("BAG-1").await.unwrap();
    assert_eq!(stock.total_available(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_payment_deadline_cancels_an_unpaid_order_across_an_order_process_restart() {
    let config = CommandApiConfig {
        reservation_ttl: Duration::from_secs(1),
        ..CommandApiConfig::for_tests()
    };
    let mut env = Env::with(config, false).await;
    // A processor that hangs far longer than the reservation lasts.
    env.start_process(Duration::from_secs(6));
    let admin = env.admin().await;
    env.product(&admin, "LATE-1", 3).await;
    let (_, ada) = env.customer("ada@example.com").await;
    let cart = env.cart_with(&ada, "LATE-1", 1).await;
    let order_id = env.checkout(&ada, &cart, "tok_timeout").await;
    // Wait until the authorization is under way, then crash.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while env.checkout_phase(&order_id).await.as_deref() != Some("authorizing") {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    env.kill_process().await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    env.start_process(Duration::from_secs(6));

    let order = env.settled(&order_id).await;
    assert_eq!(order.status(), OrderStatus::Cancelled);
    let reason: serde_json::Value = sqlx::query_scalar(
        "SELECT payload->'OrderCancelled'->'reason' FROM events WHERE aggregate_id = $1 AND event_type = 'OrderCancelled'",
    )
    .bind(&order_id)
    .fetch_one(&env.deps.pool)
    .await
    .unwrap();
    assert_eq!(reason, serde_json::json!("reservation_expired"));
    let (stock, _) = env.stock().load("LATE-1").await.unwrap();
    assert_eq!(stock.total_available(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_whose_request_dies_after_freezing_the_cart_is_finished_by_the_sweeper() {
    let env = Env::start().await;
    let admin = env.admin().await;
    env.product(&admin, "CUP-1", 4).await;
    let (_, ada) = env.customer("ada@example.com").await;
    let cart = env.cart_with(&ada, "CUP-1", 2).await;
    // The request dies between `CheckOutCart` and `PlaceOrder`: the database refuses the
    // order's first event, and the client never retries.
    sqlx::raw_sql(
        "CREATE FUNCTION crash_before_order() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF NEW.event_type = 'OrderPlaced' THEN RAISE EXCEPTION 'simulated crash'; END IF; \
         RETURN NEW; END $$; \
         CREATE TRIGGER crash_before_order BEFORE INSERT ON events FOR EACH ROW \
         EXECUTE FUNCTION crash_before_order();",
    )
    .execute(&env.deps.pool)
    .await
    .unwrap();
    let (status, body) = env
        .post(
            &format!("/v1/carts/{cart}/checkout"),
            Some(&ada),
            checkout_body("tok_visa"),
        )
        .await;
    assert_eq!(status, 500, "{body}");
    let cart_events: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_id = $1 AND event_type = 'CartCheckedOut'",
    )
    .bind(&cart)
    .fetch_one(&env.deps.pool)
    .await
    .unwrap();
    assert_eq!(cart_events, 1, "the cart is checked out");
    assert_eq!(env.pending_checkouts().await, 1, "the checkout is recorded");
    sqlx::raw_sql("DROP TRIGGER crash_before_order ON events")
        .execute(&env.deps.pool)
        .await
        .unwrap();

    // The checkout sweeper places the order after the grace period; the checkout then runs as usual.
    let order_id = order_id_for(&cart).to_string();
    let order = env.settled(&order_id).await;
    assert_eq!(order.status(), OrderStatus::Confirmed);
    assert_eq!(order.captured().unwrap().amount(), 2500);
    assert_eq!(env.count_events(&order_id, "OrderPlaced").await, 1);
    assert_eq!(env.pending_checkouts().await, 0, "personal data deleted");
    let (stock, _) = env.stock().load("CUP-1").await.unwrap();
    assert_eq!(stock.total_available(), 2);

    // A late retry by the client finds the order and appends nothing.
    let before = env.event_count().await;
    let again = env.checkout(&ada, &cart, "tok_visa").await;
    assert_eq!(again, order_id);
    assert_eq!(env.count_events(&order_id, "OrderPlaced").await, 1);
    assert_eq!(env.event_count().await, before);
}

/// A gateway whose first authorization panics (a bug in an adapter), then approves.
struct PanicsOnce {
    inner: TestCardGateway,
    panicked: AtomicBool,
}

#[async_trait::async_trait]
impl PaymentGateway for PanicsOnce {
    async fn authorize(&self, request: &AuthorizationRequest) -> AuthorizationOutcome {
        if !self.panicked.swap(true, Ordering::SeqCst) {
            panic!("gateway adapter bug");
        }
        self.inner.authorize(request).await
    }

    async fn capture(
        &self,
        authorization_id: &AuthorizationId,
        amount: Money,
        idempotency_key: &str,
    ) -> Result<(), GatewayError> {
        self.inner
            .capture(authorization_id, amount, idempotency_key)
            .await
    }

    async fn void(
        &self,
        authorization_id: &AuthorizationId,
        idempotency_key: &str,
    ) -> Result<(), GatewayError> {
        self.inner.void(authorization_id, idempotency_key).await
    }

    async fn refund(
        &self,
        authorization_id: &AuthorizationId,
        amount: Money,
        idempotency_key: &str,
    ) -> Result<(), GatewayError> {
        self.inner
            .refund(authorization_id, amount, idempotency_key)
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_the_order_process_is_retried_and_the_worker_keeps_running() {
    let mut env = Env::with(CommandApiConfig::for_tests(), false).await;
    let panicked = Arc::new(PanicsOnce {
        inner: TestCardGateway::new(Duration::from_millis(200)),
        panicked: AtomicBool::new(false),
    });
    env.start_process_with(panicked.clone());
    let admin = env.admin().await;
    env.product(&admin, "PEN-1", 5).await;
    let (_, ada) = env.customer("ada@example.com").await;
    let first = env.cart_with(&ada, "PEN-1", 1).await;
    let first = env.checkout(&ada, &first, "tok_visa").await;
    let order = env.settled(&first).await;
    assert_eq!(order.status(), OrderStatus::Confirmed);
    assert!(
        panicked.panicked.load(Ordering::SeqCst),
        "the gateway did panic"
    );
    let payment_id =
        mercato_aggregates::order_process::OrderProcess::payment_id_for(order.id().unwrap())
            .to_string();
    assert_eq!(env.count_events(&payment_id, "PaymentAuthorized").await, 1);

    // The same worker goes on with the next checkout.
    let second = env.cart_with(&ada, "PEN-1", 1).await;
    let second = env.checkout(&ada, &second, "tok_visa").await;
    assert_eq!(env.settled(&second).await.status(), OrderStatus::Confirmed);
    let (_, handle) = env.process.as_ref().unwrap();
    assert!(!handle.is_finished());
}

fn order_id_for(cart: &str) -> uuid::Uuid {
    mercato_command_api::order_id_for(cart.parse().unwrap())
}
