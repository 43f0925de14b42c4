//! A running command side per test: its own database, stream, API, relay and workers.

use std::sync::Arc;
use std::time::Duration;

use mercato_aggregates::order::{Order, OrderStatus};
use mercato_aggregates::payment::{Payment, PaymentGateway, PaymentServices};
use mercato_aggregates::stock::Stock;
use mercato_command_api::{
    CommandApi, CommandApiConfig, Deps, NotificationWorker, OrderProcessWorker, ProcessConfig,
    Recorded, TestCardGateway,
};
use mercato_event_store::testing::TestDatabase;
use mercato_event_store::{database, AggregateStore, DatabaseConfig, SnapshotPolicy};
use mercato_nats::testing::{fast_relay, RunningRelay, TestNats};
use mercato_nats::ConsumerConfig;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub struct Env {
    _db: TestDatabase,
    _nats: TestNats,
    pub deps: Deps,
    pub config: CommandApiConfig,
    pub base: String,
    pub http: reqwest::Client,
    pub shutdown: CancellationToken,
    _relay: RunningRelay,
    pub process: Option<(CancellationToken, JoinHandle<()>)>,
}

impl Env {
    pub async fn start() -> Self {
        Self::with(CommandApiConfig::for_tests(), true).await
    }

    pub async fn with(config: CommandApiConfig, process: bool) -> Self {
        let db = TestDatabase::new().await;
        let pool = database::connect(&DatabaseConfig {
            max_connections: 16,
            ..db.config.clone()
        })
        .await
        .unwrap();
        mercato_command_api::migrate(&pool).await.unwrap();
        let nats = TestNats::new().await;
        let relay = RunningRelay::start(&db, &nats, fast_relay());
        let deps = Deps {
            pool,
            nats_client: nats.client.clone(),
            js: nats.js.clone(),
            nats: nats.config.clone(),
            snapshots: SnapshotPolicy::default(),
        };
        let api = CommandApi::build(config.clone(), deps.clone())
            .await
            .unwrap();
        let base = format!("http://127.0.0.1:{}", api.port());
        let shutdown = CancellationToken::new();
        tokio::spawn(api.run(shutdown.clone()));
        let notifier = NotificationWorker::new(&config, &deps)
            .unwrap()
            .with_consumer(fast_consumer(
                "notifications",
                Some(nats.config.aggregate_type_wildcard("Order")),
            ));
        tokio::spawn(notifier.run(shutdown.clone()));
        let mut env = Self {
            _db: db,
            _nats: nats,
            deps,
            config,
            base,
            http: reqwest::Client::new(),
            shutdown,
            _relay: relay,
            process: None,
        };
        if process {
            env.start_process(env.config.payment_timeout);
        }
        env
    }

    /// Starts an order process worker whose gateway times out after `payment_timeout`.
    pub fn start_process(&mut self, payment_timeout: Duration) {
        self.start_process_with(Arc::new(TestCardGateway::new(payment_timeout)));
    }

    /// Starts an order process worker over `gateway`.
    pub fn start_process_with(&mut self, gateway: Arc<dyn PaymentGateway>) {
        self.start_process_hearing(gateway, None);
    }

    /// Starts an order process worker over `gateway` whose consumer gets only the events
    /// `filter` selects (all by default).
    pub fn start_process_hearing(
        &mut self,
        gateway: Arc<dyn PaymentGateway>,
        filter: Option<String>,
    ) {
        let config = ProcessConfig {
            consumer: fast_consumer("checkout", filter),
            ..ProcessConfig::from_config(&self.config)
        };
        let worker = OrderProcessWorker::with_gateway(config, &self.deps, gateway);
        let token = CancellationToken::new();
        let t = token.clone();
        let handle = tokio::spawn(async move {
            worker.run(t).await.unwrap();
        });
        self.process = Some((token, handle));
    }

    /// Kills the order process worker abruptly (no graceful stop).
    pub async fn kill_process(&mut self) {
        if let Some((_, handle)) = self.process.take() {
            handle.abort();
            let _ = handle.await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut req = self.http.post(self.url(path)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        send(req).await
    }

    /// Any request, with an optional bearer token and extra headers.
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(path));
        if let Some(b) = body {
            req = req.json(&b);
        }
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        send(req).await
    }

    pub async fn admin(&self) -> String {
        let (s, b) = self
            .post(
                "/v1/auth/token",
                None,
                json!({"email": "admin@mercato.test", "password": "admin-password"}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        b["access_token"].as_str().unwrap().to_owned()
    }

    /// Registers and logs in a customer: (id, token).
    pub async fn customer(&self, email: &str) -> (String, String) {
        let (s, b) = self
            .post(
                "/v1/customers",
                None,
                json!({"email": email, "name": "Ada Lovelace", "password": "correct horse battery"}),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        let id = b["id"].as_str().unwrap().to_owned();
        let (s, b) = self
            .post(
                "/v1/auth/token",
                None,
                json!({"email": email, "password": "correct horse battery"}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        (id, b["access_token"].as_str().unwrap().to_owned())
    }

    /// A published product with `units` in stock at 12.50 EUR.
    pub async fn product(&self, admin: &str, sku: &str, units: u32) {
        let (s, b) = self
            .post(
                "/v1/products",
                Some(admin),
                json!({"sku": sku, "name": "Mug", "description": "A mug", "brand": "Acme",
                       "category": ["kitchen", "mugs"], "price": {"amount": 1250, "currency": "EUR"},
                       "attributes": {"colour": "blue"}, "images": []}),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        let (s, b) = self
            .post(
                &format!("/v1/products/{sku}/publish"),
                Some(admin),
                json!({}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        if units > 0 {
            let (s, b) = self
                .post(
                    &format!("/v1/stock/{sku}/receipts"),
                    Some(admin),
                    json!({"warehouse": "main", "quantity": units}),
                )
                .await;
            assert_eq!(s, 200, "{b}");
        }
    }

    /// An anonymous cart in EUR: its id and its cart token.
    pub async fn anonymous_cart(&self) -> (String, String) {
        let (s, b) = self
            .post("/v1/carts", None, json!({"currency": "EUR"}))
            .await;
        assert_eq!(s, 201, "{b}");
        (
            b["id"].as_str().unwrap().to_owned(),
            b["cart_token"].as_str().unwrap().to_owned(),
        )
    }

    /// A customer's cart with `quantity` of `sku`: the cart id.
    pub async fn cart_with(&self, token: &str, sku: &str, quantity: u32) -> String {
        let (s, b) = self
            .post("/v1/carts", Some(token), json!({"currency": "EUR"}))
            .await;
        assert_eq!(s, 201, "{b}");
        let cart = b["id"].as_str().unwrap().to_owned();
        let (s, b) = self
            .post(
                &format!("/v1/carts/{cart}/items"),
                Some(token),
                json!({"sku": sku, "quantity": quantity}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        cart
    }

    /// Checks the cart out with `payment_token`: the order id.
    pub async fn checkout(&self, token: &str, cart: &str, payment_token: &str) -> String {
        let (s, b) = self
            .post(
                &format!("/v1/carts/{cart}/checkout"),
                Some(token),
                checkout_body(payment_token),
            )
            .await;
        assert_eq!(s, 202, "{b}");
        b["order_id"].as_str().unwrap().to_owned()
    }

    /// A customer's confirmed and captured order of `quantity` units of `sku`.
    pub async fn paid_order(&self, token: &str, sku: &str, quantity: u32) -> String {
        let cart = self.cart_with(token, sku, quantity).await;
        let order_id = self.checkout(token, &cart, "tok_visa").await;
        let order = self.settled(&order_id).await;
        assert_eq!(order.status(), OrderStatus::Confirmed);
        order_id
    }

    pub fn payments(&self) -> AggregateStore<Payment> {
        let gateway: Arc<dyn PaymentGateway> =
            Arc::new(TestCardGateway::new(Duration::from_millis(200)));
        AggregateStore::new(
            self.deps.pool.clone(),
            PaymentServices::new(gateway),
            &SnapshotPolicy::never(),
        )
    }

    /// Polls `check` on the order's stock, order and payment until it holds (60 s at most).
    pub async fn eventually<F>(&self, what: &str, check: F)
    where
        F: AsyncFn() -> bool,
    {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while !check().await {
            assert!(tokio::time::Instant::now() < deadline, "never: {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn orders(&self) -> AggregateStore<Order> {
        AggregateStore::new(self.deps.pool.clone(), (), &SnapshotPolicy::never())
    }

    pub fn stock(&self) -> AggregateStore<Stock> {
        AggregateStore::new(self.deps.pool.clone(), (), &SnapshotPolicy::never())
    }

    /// Waits until the order reaches a final checkout outcome (confirmed with the capture
    /// recorded, or cancelled).
    pub async fn settled(&self, order_id: &str) -> Order {
        let orders = self.orders();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let (order, _) = orders.load(order_id).await.unwrap();
            let done = match order.status() {
                OrderStatus::Cancelled => {
                    self.checkout_phase(order_id).await.as_deref() == Some("cancelled")
                }
                OrderStatus::Confirmed => order.captured().is_some(),
                _ => false,
            };
            if done {
                return order;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "order {order_id} did not settle: {:?} / {:?}",
                order.status(),
                self.checkout_phase(order_id).await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn checkout_phase(&self, order_id: &str) -> Option<String> {
        sqlx::query_scalar("SELECT phase FROM command.checkout_processes WHERE order_id = $1::uuid")
            .bind(order_id)
            .fetch_optional(&self.deps.pool)
            .await
            .unwrap()
    }

    /// Rows in `command.pending_checkouts` (checkouts whose order is not placed yet).
    pub async fn pending_checkouts(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM command.pending_checkouts")
            .fetch_one(&self.deps.pool)
            .await
            .unwrap()
    }

    pub async fn event_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&self.deps.pool)
            .await
            .unwrap()
    }

    /// The emails of `kind` recorded for `order_id`, revealed (`None` for an erased one).
    pub async fn emails(&self, order_id: &str, kind: &str) -> Vec<Option<Recorded>> {
        let mut messages: Vec<Value> = sqlx::query_scalar(
            "SELECT message FROM command.notifications WHERE order_id = $1::uuid AND kind = $2",
        )
        .bind(order_id)
        .bind(kind)
        .fetch_all(&self.deps.pool)
        .await
        .unwrap();
        let mut refs: Vec<&mut Value> = messages.iter_mut().collect();
        mercato_event_store::privacy::reveal(&self.deps.pool, &mut refs)
            .await
            .unwrap();
        messages
            .into_iter()
            .map(|m| {
                serde_json::from_value::<mercato_aggregates::Personal<Recorded>>(m)
                    .unwrap()
                    .into_inner()
            })
            .collect()
    }

    /// How many emails of `kind` went to `to` about `order_id`.
    pub async fn emails_to(&self, order_id: &str, kind: &str, to: &str) -> usize {
        self.emails(order_id, kind)
            .await
            .iter()
            .filter(|m| m.as_ref().is_some_and(|m| m.to == to))
            .count()
    }

    pub async fn count_events(&self, aggregate_id: &str, event_type: &str) -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE aggregate_id = $1 AND event_type = $2",
        )
        .bind(aggregate_id)
        .bind(event_type)
        .fetch_one(&self.deps.pool)
        .await
        .unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some((t, h)) = self.process.take() {
            t.cancel();
            h.abort();
        }
    }
}

pub fn checkout_body(payment_token: &str) -> Value {
    json!({"shipping_address": {"name": "Ada Lovelace", "line1": "1 Main St", "line2": null,
           "city": "London", "postal_code": "N1 9GU", "country": "GB"},
           "payment_token": payment_token})
}

pub fn fast_consumer(name: &str, filter: Option<String>) -> ConsumerConfig {
    let mut c = ConsumerConfig::new(format!("test-{name}"));
    c.filter_subject = filter;
    c.ack_wait = Duration::from_secs(3);
    c.retry_delay = Duration::from_millis(200);
    c
}

pub async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}
