//! The order's life after the checkout, through HTTP with the order process running:
//! shipments commit stock, cancellations give everything back, deliveries, returns and
//! refunds keep order and payment agreeing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mercato_aggregates::money::Money;
use mercato_aggregates::order::OrderStatus;
use mercato_aggregates::order_process::OrderProcess;
use mercato_aggregates::payment::{
    AuthorizationId, AuthorizationOutcome, AuthorizationRequest, GatewayError, PaymentGateway,
    PaymentStatus,
};
use mercato_command_api::TestCardGateway;
use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::Env;

fn lines(sku: &str, quantity: u32) -> Value {
    json!([{"sku": sku, "quantity": quantity}])
}

async fn ship(env: &Env, admin: &str, order: &str, tracking: &str, lines: Value) -> (u16, Value) {
    env.post(
        &format!("/v1/orders/{order}/shipments"),
        Some(admin),
        json!({"tracking_number": tracking, "carrier": "DHL", "lines": lines}),
    )
    .await
}

/// (on hand, reserved) of `sku` in `warehouse`, from the stock aggregate.
pub(crate) async fn level(env: &Env, sku: &str, warehouse: &str) -> (u64, u64) {
    let (stock, _) = env.stock().load(sku).await.unwrap();
    stock
        .levels()
        .iter()
        .find(|l| l.warehouse.as_str() == warehouse)
        .map_or((0, 0), |l| (l.on_hand, l.reserved))
}

async fn count(env: &Env, event_type: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = $1")
        .bind(event_type)
        .fetch_one(&env.deps.pool)
        .await
        .unwrap()
}

/// (captured, refunded) on the payment of `order`.
pub(crate) async fn payment_money(env: &Env, order: &str) -> (i64, i64) {
    let payment_id = OrderProcess::payment_id_for(order.parse().unwrap()).to_string();
    let (payment, _) = env.payments().load(&payment_id).await.unwrap();
    (
        payment.captured().map_or(0, |m| m.amount()),
        payment.refunded().map_or(0, |m| m.amount()),
    )
}

/// (captured, refunded) on the order.
async fn order_money(env: &Env, order: &str) -> (i64, i64) {
    let (o, _) = env.orders().load(order).await.unwrap();
    (
        o.captured().map_or(0, |m| m.amount()),
        o.refunded().map_or(0, |m| m.amount()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipments_commit_exactly_the_shipped_units_warehouse_by_warehouse() {
    let env = Env::start().await;
    let admin = env.admin().await;
    env.product(&admin, "MUG-1", 3).await;
    let (s, b) = env
        .post(
            "/v1/stock/MUG-1/receipts",
            Some(&admin),
            json!({"warehouse": "east", "quantity": 2}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (_, ada) = env.customer("ada@example.com").await;
    // 4 units: 3 held in `main`, 1 in `east`.
    let order = env.paid_order(&ada, "MUG-1", 4).await;
    assert_eq!(level(&env, "MUG-1", "main").await, (3, 3));
    assert_eq!(level(&env, "MUG-1", "east").await, (2, 1));

    let (s, b) = ship(&env, &admin, &order, "1Z1", lines("MUG-1", 2)).await;
    assert_eq!(s, 200, "{b}");
    env.eventually("the first parcel's units leave stock", async || {
        level(&env, "MUG-1", "main").await == (1, 1)
    })
    .await;
    assert_eq!(level(&env, "MUG-1", "east").await, (2, 1));
    let (o, _) = env.orders().load(&order).await.unwrap();
    assert_eq!(o.status(), OrderStatus::PartiallyShipped);

    let (s, b) = ship(&env, &admin, &order, "1Z2", lines("MUG-1", 2)).await;
    assert_eq!(s, 200, "{b}");
    env.eventually("the second parcel's units leave stock", async || {
        level(&env, "MUG-1", "main").await == (0, 0) && level(&env, "MUG-1", "east").await == (1, 0)
    })
    .await;
    let (stock, _) = env.stock().load("MUG-1").await.unwrap();
    assert!(stock.reservations().is_empty());
    assert_eq!(count(&env, "StockReservationCommitted").await, 2);
    // Nothing is left to ship, and a tracking number is used once.
    let (s, b) = ship(&env, &admin, &order, "1Z3", lines("MUG-1", 1)).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (409, Some("invalid_transition")),
        "{b}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_paid_order_releases_its_stock_and_refunds_it_in_full() {
    let env = Env::start().await;
    let admin = env.admin().await;
    env.product(&admin, "TEA-1", 5).await;
    let (_, ada) = env.customer("ada@example.com").await;
    let order = env.paid_order(&ada, "TEA-1", 2).await;
    assert_eq!(level(&env, "TEA-1", "main").await, (5, 2));

    let (s, b) = env
        .post(&format!("/v1/orders/{order}/cancel"), Some(&ada), json!({}))
        .await;
    assert_eq!(s, 200, "{b}");
    env.eventually(
        "the capture is refunded and the stock released",
        async || {
            payment_money(&env, &order).await == (2500, 2500)
                && order_money(&env, &order).await == (2500, 2500)
                && level(&env, "TEA-1", "main").await == (5, 0)
                && env.checkout_phase(&order).await.as_deref() == Some("cancelled")
        },
    )
    .await;
    let (o, _) = env.orders().load(&order).await.unwrap();
    assert_eq!(o.status(), OrderStatus::Cancelled);
    let payment_id = OrderProcess::payment_id_for(order.parse().unwrap()).to_string();
    let (payment, _) = env.payments().load(&payment_id).await.unwrap();
    assert_eq!(payment.status(), PaymentStatus::Refunded);
    assert_eq!(count(&env, "PaymentRefunded").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_after_a_partial_shipment_cancels_and_refunds_only_the_rest() {
    let env = Env::start().await;
    let admin = env.admin().await;
    env.product(&admin, "PEN-1", 10).await;
    let (_, ada) = env.customer("ada@example.com").await;
    let order = env.paid_order(&ada, "PEN-1", 3).await;
    let (s, b) = ship(&env, &admin, &order, "1Z1", lines("PEN-1", 1)).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = env
        .post(&format!("/v1/orders/{order}/cancel"), Some(&ada), json!({}))
        .await;
    assert_eq!(s, 200, "{b}");
    env.eventually("two of three units are refunded and released", async || {
        order_money(&env, &order).await == (3750, 2500)
            && payment_money(&env, &order).await == (3750, 2500)
            && level(&env, "PEN-1", "main").await == (9, 0)
    })
    .await;
    let (o, _) = env.orders().load(&order).await.unwrap();
    assert_eq!(o.status(), OrderStatus::Shipped);
    // Once everything left has shipped, a cancellation is refused: use a return.
    let (s, b) = env
        .post(&format!("/v1/orders/{order}/cancel"), Some(&ada), json!({}))
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (409, Some("order_already_shipped")),
        "{b}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_return_and_receipt_refund_and_restock_the_returned_units() {
    let env = Env::start().await;
    let admin = env.admin().await;
    env.product(&admin, "CUP-1", 4).await;
    let (_, ada) = env.customer("ada@example.com").await;
    let (_, eve) = env.customer("eve@example.com").await;
    let order = env.paid_order(&ada, "CUP-1", 2).await;
    // Nothing delivered yet: nothing to return.
    let request = json!({"lines": lines("CUP-1", 1), "reason": "too small"});
    let (s, b) = env
        .post(
            &format!("/v1/orders/{order}/returns"),
            Some(&ada),
            request.clone(),
        )
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (422, Some("return_exceeds_delivered")),
        "{b}"
    );

    let (s, b) = ship(&env, &admin, &order, "1Z1", lines("CUP-1", 2)).await;
    assert_eq!(s, 200, "{b}");
    // A delivery in the future is refused; one without a body means now.
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    let (s, b) = env
        .post(
            &format!("/v1/orders/{order}/deliveries"),
            Some(&admin),
            json!({"delivered_at": tomorrow}),
        )
        .await;
    assert_eq!(s, 422, "{b}");
    let (s, b) = env
        .request(
            Method::POST,
            &format!("/v1/orders/{order}/deliveries"),
            Some(&admin),
            &[],
            None,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (o, _) = env.orders().load(&order).await.unwrap();
    assert_eq!(o.status(), OrderStatus::Delivered);

    // Someone else cannot return it; the customer can.
    let (s, _) = env
        .post(
            &format!("/v1/orders/{order}/returns"),
            Some(&eve),
            request.clone(),
        )
        .await;
    assert_eq!(s, 403);
    let (s, b) = env
        .post(&format!("/v1/orders/{order}/returns"), Some(&ada), request)
        .await;
    assert_eq!(s, 201, "{b}");
    let return_id = b["return_id"].as_str().unwrap().to_owned();
    assert_eq!(b["status"], "requested");

    let receipt = json!({"warehouse": "returns", "lines": [{"sku": "CUP-1", "quantity": 1, "restock": true}]});
    let (s, _) = env
        .post(
            &format!("/v1/returns/{return_id}/receive"),
            Some(&ada),
            receipt.clone(),
        )
        .await;
    assert_eq!(s, 403, "only the admin receives returns");
    let (s, b) = env
        .post(
            &format!("/v1/returns/{return_id}/receive"),
            Some(&admin),
            receipt.clone(),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["order_id"], order.as_str());
    env.eventually(
        "the returned unit is refunded and back on hand",
        async || {
            order_money(&env, &order).await == (2500, 1250)
                && payment_money(&env, &order).await == (2500, 1250)
                && level(&env, "CUP-1", "returns").await == (1, 0)
        },
    )
    .await;
    let (o, _) = env.orders().load(&order).await.unwrap();
    assert_eq!(o.status(), OrderStatus::PartiallyRefunded);
    assert_eq!(
        level(&env, "CUP-1", "main").await,
        (2, 0),
        "4 received, 2 shipped"
    );
    // A return is received once.
    let (s, b) = env
        .post(
            &format!("/v1/returns/{return_id}/receive"),
            Some(&admin),
            receipt,
        )
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (409, Some("return_already_received")),
        "{b}"
    );
    let (s, b) = env
        .post(
            &format!("/v1/returns/{}/receive", uuid::Uuid::new_v4()),
            Some(&admin),
            json!({"warehouse": "returns", "lines": lines("CUP-1", 1)}),
        )
        .await;
    assert_eq!(s, 422, "restock is required: {b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merchant_refund_is_made_on_the_payment_and_recorded_on_the_order() {
    let env = Env::start().await;
    let admin = env.admin().await;
    env.product(&admin, "BAG-1", 2).await;
    let (_, ada) = env.customer("ada@example.com").await;
    let order = env.paid_order(&ada, "BAG-1", 1).await;
    let refund = |amount: i64| json!({"amount": {"amount": amount, "currency": "EUR"}});
    let (s, b) = env
        .post(
            &format!("/v1/orders/{order}/refunds"),
            Some(&admin),
            refund(1251),
        )
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (422, Some("refund_exceeds_captured")),
        "{b}"
    );
    let (s, b) = env
        .post(
            &format!("/v1/orders/{order}/refunds"),
            Some(&admin),
            refund(250),
        )
        .await;
    assert_eq!(s, 202, "{b}");
    assert_eq!(b["status"], "requested");
    // The pending refund counts at once: 1,000 more is too much.
    let (s, b) = env
        .post(
            &format!("/v1/orders/{order}/refunds"),
            Some(&admin),
            refund(1001),
        )
        .await;
    assert_eq!(s, 422, "{b}");
    env.eventually("order and payment agree on the refund", async || {
        order_money(&env, &order).await == (1250, 250)
            && payment_money(&env, &order).await == (1250, 250)
    })
    .await;
}

/// A gateway that refunds through the test gateway but counts the distinct refund
/// idempotency keys it was asked for, and fails the first `refusals` refunds as unreachable.
struct CountingGateway {
    inner: TestCardGateway,
    keys: Mutex<Vec<String>>,
    unreachable: AtomicUsize,
}

#[async_trait::async_trait]
impl PaymentGateway for CountingGateway {
    async fn authorize(&self, request: &AuthorizationRequest) -> AuthorizationOutcome {
        self.inner.authorize(request).await
    }

    async fn capture(
        &self,
        id: &AuthorizationId,
        amount: Money,
        key: &str,
    ) -> Result<(), GatewayError> {
        self.inner.capture(id, amount, key).await
    }

    async fn void(&self, id: &AuthorizationId, key: &str) -> Result<(), GatewayError> {
        self.inner.void(id, key).await
    }

    async fn refund(
        &self,
        id: &AuthorizationId,
        amount: Money,
        key: &str,
    ) -> Result<(), GatewayError> {
        self.keys.lock().unwrap().push(key.to_owned());
        if self
            .unreachable
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(GatewayError::Unavailable);
        }
        self.inner.refund(id, amount, key).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_a_shipment_and_its_commit_or_a_refunds_writes_settles_once() {
    let mut env = Env::with(mercato_command_api::CommandApiConfig::for_tests(), false).await;
    let gateway = Arc::new(CountingGateway {
        inner: TestCardGateway::new(Duration::from_millis(200)),
        keys: Mutex::new(Vec::new()),
        unreachable: AtomicUsize::new(2),
    });
    env.start_process_with(gateway.clone());
    let admin = env.admin().await;
    env.product(&admin, "LAMP-1", 5).await;
    let (_, ada) = env.customer("ada@example.com").await;
    let order = env.paid_order(&ada, "LAMP-1", 2).await;

    // The worker dies; the shipment and a refund are recorded while nobody carries them out.
    env.kill_process().await;
    let (s, b) = ship(&env, &admin, &order, "1Z1", lines("LAMP-1", 1)).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = env
        .post(
            &format!("/v1/orders/{order}/refunds"),
            Some(&admin),
            json!({"amount": {"amount": 500, "currency": "EUR"}}),
        )
        .await;
    assert_eq!(s, 202, "{b}");
    // The database also fails the stock commit's first write, as a crash in the middle of it
    // would leave it: no event, and the command still pending (a sequence counts the
    // attempts: it is not rolled back with the failed transaction).
    sqlx::raw_sql(
        "CREATE SEQUENCE commit_attempts; \
         CREATE FUNCTION crash_commit() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF NEW.event_type = 'StockReservationCommitted' AND nextval('commit_attempts') = 1 THEN \
           RAISE EXCEPTION 'simulated crash'; END IF; \
         RETURN NEW; END $$; \
         CREATE TRIGGER crash_commit BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION crash_commit();",
    )
    .execute(&env.deps.pool)
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        level(&env, "LAMP-1", "main").await,
        (5, 2),
        "nothing committed yet"
    );

    // A new worker (a refund the gateway cannot take twice, then takes) finishes both once.
    env.start_process_with(gateway.clone());
    env.eventually(
        "the shipment is committed and the refund made and recorded",
        async || {
            level(&env, "LAMP-1", "main").await == (4, 1)
                && order_money(&env, &order).await == (2500, 500)
                && payment_money(&env, &order).await == (2500, 500)
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let attempts: i64 = sqlx::query_scalar("SELECT last_value FROM commit_attempts")
        .fetch_one(&env.deps.pool)
        .await
        .unwrap();
    assert!(attempts >= 2, "the first commit crashed and was retried");
    assert_eq!(count(&env, "StockReservationCommitted").await, 1);
    assert_eq!(count(&env, "PaymentRefunded").await, 1);
    assert_eq!(count(&env, "OrderRefunded").await, 1);
    let keys = gateway.keys.lock().unwrap().clone();
    assert_eq!(
        keys.len(),
        3,
        "two unreachable attempts, then the refund: {keys:?}"
    );
    assert!(
        keys.iter().all(|k| k == &keys[0]),
        "one idempotency key: {keys:?}"
    );
}
