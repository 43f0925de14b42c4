//! The whole system in-process per test: its own database and stream, the command API with
//! its relay and order process, every projection worker, and the query API with its search
//! consumer, all talking HTTP on 127.0.0.1.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mercato_command_api::{
    CommandApi, CommandApiConfig, Deps, OrderProcessWorker, ProcessConfig, TestCardGateway,
};
use mercato_event_store::testing::TestDatabase;
use mercato_event_store::{database, DatabaseConfig, SnapshotPolicy};
use mercato_nats::testing::{fast_relay, RunningRelay, TestNats};
use mercato_nats::ConsumerConfig;
use mercato_projections::{run_projections, ProjectionDeps};
use mercato_query_api::{QueryApi, QueryApiConfig};
use reqwest::header::HeaderMap;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

pub const MIN_POSITION: &str = "Mercato-Min-Position";
pub const POSITION: &str = "Mercato-Position";
pub const CART_TOKEN: &str = "Mercato-Cart-Token";

/// A response: status, headers, JSON body (a string when it is not JSON).
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    /// The write's consistency token (`Mercato-Position`).
    pub fn position(&self) -> String {
        self.headers
            .get(POSITION)
            .unwrap_or_else(|| panic!("no {POSITION} header: {}", self.body))
            .to_str()
            .unwrap()
            .to_owned()
    }
}

pub struct Stack {
    db: TestDatabase,
    _nats: TestNats,
    _relay: RunningRelay,
    command: String,
    query: String,
    http: reqwest::Client,
    shutdown: CancellationToken,
    index_dir: PathBuf,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.shutdown.cancel();
        let _ = std::fs::remove_dir_all(&self.index_dir);
    }
}

fn fast_consumer(name: &str) -> ConsumerConfig {
    let mut c = ConsumerConfig::new(format!("e2e-{name}"));
    c.ack_wait = Duration::from_secs(5);
    c.retry_delay = Duration::from_millis(200);
    c
}

impl Stack {
    pub async fn start() -> Self {
        let db = TestDatabase::new().await;
        let pool = database::connect(&DatabaseConfig {
            max_connections: 12,
            ..db.config.clone()
        })
        .await
        .unwrap();
        mercato_command_api::migrate(&pool).await.unwrap();
        mercato_projections::migrate(&pool).await.unwrap();
        let nats = TestNats::new().await;
        let relay = RunningRelay::start(&db, &nats, fast_relay());
        let shutdown = CancellationToken::new();

        let config = CommandApiConfig::for_tests();
        let deps = Deps {
            pool: pool.clone(),
            nats_client: nats.client.clone(),
            js: nats.js.clone(),
            nats: nats.config.clone(),
            snapshots: SnapshotPolicy::default(),
        };
        let command = CommandApi::build(config.clone(), deps.clone())
            .await
            .unwrap();
        let command_base = format!("http://127.0.0.1:{}", command.port());
        tokio::spawn(command.run(shutdown.clone()));
        let process = OrderProcessWorker::with_gateway(
            ProcessConfig {
                consumer: fast_consumer("checkout"),
                ..ProcessConfig::from_config(&config)
            },
            &deps,
            Arc::new(TestCardGateway::new(config.payment_timeout)),
        );
        tokio::spawn(process.run(shutdown.clone()));

        let projection_deps = ProjectionDeps {
            pool: pool.clone(),
            client: nats.client.clone(),
            js: nats.js.clone(),
            nats: nats.config.clone(),
        };
        tokio::spawn(run_projections(
            &[],
            projection_deps.clone(),
            shutdown.clone(),
        ));

        let index_dir = std::env::temp_dir().join(format!("mercato-e2e-{}", uuid::Uuid::new_v4()));
        let mut query_config = QueryApiConfig::new(config.jwt_secret.clone());
        query_config.addr = ([127, 0, 0, 1], 0).into();
        query_config.index_dir = index_dir.clone();
        query_config.replica_id = "e2e".into();
        // Generous on a loaded 2-core machine: the property under test is that the token is
        // honoured, not how fast the projections are (that is the projection-lag benchmark).
        query_config.min_position_wait = Duration::from_secs(15);
        let query = QueryApi::build(query_config, projection_deps)
            .await
            .unwrap();
        let query_base = format!("http://127.0.0.1:{}", query.port());
        tokio::spawn(query.run(shutdown.clone()));

        Self {
            db,
            _nats: nats,
            _relay: relay,
            command: command_base,
            query: query_base,
            http: reqwest::Client::new(),
            shutdown,
            index_dir,
        }
    }

    async fn send(req: reqwest::RequestBuilder) -> Answer {
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        Answer {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        }
    }

    /// A command: POST to the command API.
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Answer {
        let mut req = self
            .http
            .post(format!("{}{path}", self.command))
            .json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        Self::send(req).await
    }

    /// A command on an anonymous cart: POST with its `Mercato-Cart-Token`.
    pub async fn post_as_cart(&self, path: &str, cart_token: &str, body: Value) -> Answer {
        let req = self
            .http
            .post(format!("{}{path}", self.command))
            .header(CART_TOKEN, cart_token)
            .json(&body);
        Self::send(req).await
    }

    /// Any command: `method` on the command API, with a bearer token or a cart token.
    pub async fn command(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        cart_token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut req = self.http.request(method, format!("{}{path}", self.command));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(t) = cart_token {
            req = req.header(CART_TOKEN, t);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        Self::send(req).await
    }

    /// A POST that must succeed with `status`.
    pub async fn ok(&self, status: u16, path: &str, token: Option<&str>, body: Value) -> Answer {
        let a = self.post(path, token, body).await;
        assert_eq!(a.status, status, "POST {path}: {}", a.body);
        a
    }

    /// A query: GET on the query API with optional bearer token and extra headers.
    pub async fn get(&self, path: &str, token: Option<&str>, headers: &[(&str, &str)]) -> Answer {
        let mut req = self.http.get(format!("{}{path}", self.query));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Self::send(req).await
    }

    /// A GET after the write that returned `position`: must see it (200).
    pub async fn read_after(&self, path: &str, token: Option<&str>, position: &str) -> Value {
        let a = self.get(path, token, &[(MIN_POSITION, position)]).await;
        assert_eq!(a.status, 200, "GET {path} after {position}: {}", a.body);
        a.body
    }

    /// Polls `path` until `done` holds (outcomes the order process produces asynchronously, so no
    /// consistency token exists for them); fails after a minute.
    pub async fn eventually(
        &self,
        path: &str,
        token: Option<&str>,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let a = self.get(path, token, &[]).await;
            if a.status == 200 && done(&a.body) {
                return a.body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "GET {path} never reached the expected state: {} {}",
                a.status,
                a.body
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn admin(&self) -> String {
        let a = self
            .ok(
                200,
                "/v1/auth/token",
                None,
                json!({"email": "admin@mercato.test", "password": "admin-password"}),
            )
            .await;
        a.body["access_token"].as_str().unwrap().to_owned()
    }

    /// Registers and logs in a customer: (id, token, registration position).
    pub async fn customer(&self, email: &str, name: &str) -> (String, String, String) {
        let a = self
            .ok(
                201,
                "/v1/customers",
                None,
                json!({"email": email, "name": name, "password": "correct horse battery"}),
            )
            .await;
        let id = a.body["id"].as_str().unwrap().to_owned();
        let position = a.position();
        let t = self
            .ok(
                200,
                "/v1/auth/token",
                None,
                json!({"email": email, "password": "correct horse battery"}),
            )
            .await;
        (
            id,
            t.body["access_token"].as_str().unwrap().to_owned(),
            position,
        )
    }

    /// The test's database.
    pub fn pool(&self) -> &sqlx::PgPool {
        &self.db.pool
    }

    /// Creates and publishes a product: the publication's position.
    #[allow(clippy::too_many_arguments)]
    pub async fn product(
        &self,
        admin: &str,
        sku: &str,
        name: &str,
        brand: &str,
        category: &[&str],
        price: i64,
        description: &str,
    ) -> String {
        let attributes = json!({"colour": "black"});
        self.product_with(
            admin,
            sku,
            name,
            brand,
            category,
            price,
            description,
            attributes,
        )
        .await
    }

    /// Creates and publishes a product with `attributes`: the publication's position.
    #[allow(clippy::too_many_arguments)]
    pub async fn product_with(
        &self,
        admin: &str,
        sku: &str,
        name: &str,
        brand: &str,
        category: &[&str],
        price: i64,
        description: &str,
        attributes: Value,
    ) -> String {
        let price = json!({"amount": price, "currency": "EUR"});
        self.product_in(
            admin,
            sku,
            name,
            brand,
            category,
            price,
            description,
            attributes,
        )
        .await
    }

    /// Creates and publishes a product priced `price` (`{"amount", "currency"}`): the
    /// publication's position.
    #[allow(clippy::too_many_arguments)]
    pub async fn product_in(
        &self,
        admin: &str,
        sku: &str,
        name: &str,
        brand: &str,
        category: &[&str],
        price: Value,
        description: &str,
        attributes: Value,
    ) -> String {
        self.ok(
            201,
            "/v1/products",
            Some(admin),
            json!({"sku": sku, "name": name, "description": description, "brand": brand,
                   "category": category, "price": price,
                   "attributes": attributes, "images": []}),
        )
        .await;
        self.ok(
            200,
            &format!("/v1/products/{sku}/publish"),
            Some(admin),
            json!({}),
        )
        .await
        .position()
    }

    /// Receives `quantity` of `sku` into `warehouse`: the position.
    pub async fn receive(&self, admin: &str, sku: &str, warehouse: &str, quantity: u32) -> String {
        self.ok(
            200,
            &format!("/v1/stock/{sku}/receipts"),
            Some(admin),
            json!({"warehouse": warehouse, "quantity": quantity}),
        )
        .await
        .position()
    }
}

impl Stack {
    /// A customer's checkout of `items` (sku, quantity) in a cart of its own: the order id.
    pub async fn checkout(
        &self,
        token: &str,
        items: &[(&str, u32)],
        payment_token: &str,
    ) -> String {
        let cart = self
            .ok(201, "/v1/carts", Some(token), json!({"currency": "EUR"}))
            .await;
        let cart = cart.body["id"].as_str().unwrap().to_owned();
        for (sku, quantity) in items {
            self.ok(
                200,
                &format!("/v1/carts/{cart}/items"),
                Some(token),
                json!({"sku": sku, "quantity": quantity}),
            )
            .await;
        }
        let placed = self
            .ok(
                202,
                &format!("/v1/carts/{cart}/checkout"),
                Some(token),
                checkout_body(payment_token),
            )
            .await;
        placed.body["order_id"].as_str().unwrap().to_owned()
    }
}

pub fn checkout_body(payment_token: &str) -> Value {
    json!({"shipping_address": {"name": "Ada Lovelace", "line1": "1 Main St", "line2": null,
           "city": "London", "postal_code": "N1 9GU", "country": "GB"},
           "payment_token": payment_token})
}
