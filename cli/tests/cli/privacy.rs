//! Erasure through the real binary: after a customer and a guest are erased, none of their
//! personal data is anywhere (every PostgreSQL table, snapshots included, the JetStream store
//! files, exports, the admin event stream), a rebuild gives the same read models, and the
//! orders keep their amounts (ADR 0013).

use std::time::{Duration, Instant};

use mercato_event_store::testing::TestDatabase;
use mercato_nats::testing::TestNats;
use reqwest::Method;
use serde_json::{json, Value};

use crate::process::{database_url, Mercato};

struct Api {
    http: reqwest::Client,
    command: String,
    query: String,
}

impl Api {
    async fn call(
        &self,
        method: Method,
        url: String,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn write(&self, method: Method, path: &str, token: Option<&str>, body: Value) -> Value {
        self.write_with(method, path, token, &[], body).await
    }

    async fn write_with(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Value,
    ) -> Value {
        let url = format!("http://{}{path}", self.command);
        let (s, b) = self
            .call(method.clone(), url, token, headers, Some(body))
            .await;
        assert!((200..300).contains(&s), "{method} {path}: {s} {b}");
        b
    }

    async fn read(&self, path: &str, token: &str) -> (u16, Value) {
        let url = format!("http://{}{path}", self.query);
        self.call(Method::GET, url, Some(token), &[], None).await
    }

    /// Polls `path` until `done` holds (60 s at most).
    async fn read_until(&self, path: &str, token: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (s, b) = self.read(path, token).await;
            if s == 200 && done(&b) {
                return b;
            }
            assert!(Instant::now() < deadline, "{path}: {s} {b}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn login(&self, email: &str, password: &str) -> String {
        let b = self
            .write(
                Method::POST,
                "/v1/auth/token",
                None,
                json!({"email": email, "password": password}),
            )
            .await;
        b["access_token"].as_str().unwrap().to_owned()
    }
}

/// Personal data of the test, each value unique enough to be found by a plain search.
struct Person {
    email: String,
    name: String,
    phone: String,
    street: String,
}

impl Person {
    fn new(tag: &str) -> Self {
        let n = uuid::Uuid::new_v4().simple().to_string();
        Self {
            email: format!("{tag}.{}@example.com", &n[..10]),
            name: format!("Quentin Zeb{}", &n[10..16]),
            phone: format!(
                "+44 20 7946 {}",
                1000 + u32::from_str_radix(&n[16..19], 16).unwrap() % 9000
            ),
            street: format!("{} Marrowbone Xq{} Lane", 7, &n[19..25]),
        }
    }

    fn markers(&self) -> Vec<String> {
        let local = self.email.split('@').next().unwrap().to_owned();
        let surname = self.name.split(' ').nth(1).unwrap().to_owned();
        let street = self.street.split(' ').nth(2).unwrap().to_owned();
        let digits: String = self.phone.chars().filter(char::is_ascii_digit).collect();
        vec![local, surname, street, self.phone.clone(), digits]
    }

    fn address(&self) -> Value {
        json!({"name": self.name, "line1": self.street, "line2": null, "city": "London",
               "postal_code": "N1 9GU", "country": "GB"})
    }
}

/// Every row of every table of Mercato's schemas, as text.
async fn every_table(db: &TestDatabase) -> String {
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_schema::text, table_name::text FROM information_schema.tables \
         WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(tables.len() > 15, "{tables:?}");
    let mut text = String::new();
    for (schema, table) in tables {
        let rows: Option<String> = sqlx::query_scalar(&format!(
            "SELECT string_agg(t::text, E'\\n') FROM \"{schema}\".\"{table}\" t"
        ))
        .fetch_one(&db.pool)
        .await
        .unwrap();
        text.push_str(&format!(
            "== {schema}.{table}\n{}\n",
            rows.unwrap_or_default()
        ));
    }
    text
}

/// Every byte JetStream stored for the test's streams.
fn jetstream_files(nats: &TestNats) -> Vec<u8> {
    let root = std::env::var("MERCATO_TEST_NATS_STORE_DIR")
        .unwrap_or_else(|_| "/var/lib/nats-server".to_owned());
    let mut bytes = Vec::new();
    let mut found = 0;
    let mut stack = vec![std::path::PathBuf::from(&root)];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.map_while(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.components().any(|c| {
                c.as_os_str()
                    .to_string_lossy()
                    .starts_with(&nats.config.stream)
            }) {
                found += 1;
                bytes.extend(std::fs::read(&path).unwrap_or_default());
            }
        }
    }
    assert!(
        found > 0,
        "no JetStream files of stream {} under {root} (set MERCATO_TEST_NATS_STORE_DIR)",
        nats.config.stream
    );
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

fn assert_absent(place: &str, haystack: &[u8], people: &[&Person]) {
    for person in people {
        for marker in person.markers() {
            assert!(
                !contains(haystack, &marker),
                "{place} still holds {marker:?}"
            );
        }
    }
}

/// Runs `mercato <args>` with the test's settings; returns stdout.
fn mercato(db: &TestDatabase, nats: &TestNats, args: &[&str]) -> Vec<u8> {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mercato"))
        .args(args)
        .env("MERCATO_DATABASE_URL", database_url(db))
        .env(
            "MERCATO_DATA_KEY",
            mercato_event_store::testing::TEST_DATA_KEY,
        )
        .env("MERCATO_DATABASE_MAX_CONNECTIONS", "4")
        .env("MERCATO_NATS_URL", &nats.config.url)
        .env("MERCATO_STREAM", &nats.config.stream)
        .env("MERCATO_SUBJECT_PREFIX", &nats.config.subject_prefix)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "mercato {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

#[tokio::test]
async fn erased_customers_and_guests_leave_no_personal_data_anywhere() {
    let db = TestDatabase::new().await;
    let nats = TestNats::new().await;
    // Snapshots of customers after every event, so they are checked too.
    let serve = Mercato::start_with(
        &["serve"],
        &db,
        &nats,
        &[("MERCATO_SNAPSHOT_EVERY", "default=100,Customer=1")],
    );
    let api = Api {
        http: reqwest::Client::new(),
        command: serve.command_api_addr.clone().unwrap(),
        query: serve.query_api_addr.clone().unwrap(),
    };
    let admin = api.login("admin@mercato.test", "admin-password").await;
    let sku = format!("TEAPOT-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]).to_uppercase();
    api.write(
        Method::POST,
        "/v1/products",
        Some(&admin),
        json!({"sku": sku, "name": "Teapot", "description": "A teapot", "brand": "Acme",
               "category": ["kitchen"], "price": {"amount": 2500, "currency": "EUR"},
               "attributes": {}, "images": []}),
    )
    .await;
    api.write(
        Method::POST,
        &format!("/v1/products/{sku}/publish"),
        Some(&admin),
        json!({}),
    )
    .await;
    api.write(
        Method::POST,
        &format!("/v1/stock/{sku}/receipts"),
        Some(&admin),
        json!({"warehouse": "main", "quantity": 10}),
    )
    .await;

    // A customer registers, changes profile, phone and address, and orders.
    let erin = Person::new("erin");
    let registered = api
        .write(
            Method::POST,
            "/v1/customers",
            None,
            json!({"email": erin.email, "name": "Erin Early", "password": "correct horse battery"}),
        )
        .await;
    let customer = registered["id"].as_str().unwrap().to_owned();
    let token = api.login(&erin.email, "correct horse battery").await;
    api.write(
        Method::PATCH,
        &format!("/v1/customers/{customer}"),
        Some(&token),
        json!({"name": erin.name, "phone": erin.phone, "address": erin.address()}),
    )
    .await;
    let cart = api
        .write(
            Method::POST,
            "/v1/carts",
            Some(&token),
            json!({"currency": "EUR"}),
        )
        .await;
    let cart = cart["id"].as_str().unwrap().to_owned();
    api.write(
        Method::POST,
        &format!("/v1/carts/{cart}/items"),
        Some(&token),
        json!({"sku": sku, "quantity": 2}),
    )
    .await;
    let placed = api
        .write(
            Method::POST,
            &format!("/v1/carts/{cart}/checkout"),
            Some(&token),
            json!({"shipping_address": erin.address(), "payment_token": "tok_visa"}),
        )
        .await;
    let order = placed["order_id"].as_str().unwrap().to_owned();

    // A guest orders too.
    let gus = Person::new("gus");
    let guest_cart = api
        .write(Method::POST, "/v1/carts", None, json!({"currency": "EUR"}))
        .await;
    let guest_cart_id = guest_cart["id"].as_str().unwrap().to_owned();
    let cart_token = guest_cart["cart_token"].as_str().unwrap().to_owned();
    let with_cart = [("mercato-cart-token", cart_token.as_str())];
    api.write_with(
        Method::POST,
        &format!("/v1/carts/{guest_cart_id}/items"),
        None,
        &with_cart,
        json!({"sku": sku, "quantity": 1}),
    )
    .await;
    let guest_order = api
        .write_with(
            Method::POST,
            &format!("/v1/carts/{guest_cart_id}/checkout"),
            None,
            &with_cart,
            json!({"shipping_address": gus.address(), "payment_token": "tok_visa",
                   "email": gus.email}),
        )
        .await;
    let guest_order = guest_order["order_id"].as_str().unwrap().to_owned();

    // Both are confirmed and emailed; the merchant sees where to ship.
    for id in [&order, &guest_order] {
        let view = api
            .read_until(&format!("/v1/orders/{id}"), &admin, |o| {
                o["status"] == "confirmed"
            })
            .await;
        assert_eq!(view["ship_to_country"], "GB");
        assert!(view["shipping_address"]["line1"].is_string(), "{view}");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while sqlx::query_scalar::<_, i64>("SELECT count(*) FROM command.notifications")
        .fetch_one(&db.pool)
        .await
        .unwrap()
        < 2
    {
        assert!(Instant::now() < deadline, "no emails recorded");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let tables = every_table(&db).await;
    assert!(
        tables.contains(&erin.email),
        "the customers read model shows the email"
    );

    // Erasure: the customer asks for it; the merchant erases the guest on request.
    api.write(
        Method::DELETE,
        &format!("/v1/customers/{customer}"),
        Some(&token),
        json!(null),
    )
    .await;
    api.write(
        Method::DELETE,
        &format!("/v1/orders/{guest_order}/personal-data"),
        Some(&admin),
        json!(null),
    )
    .await;
    for id in [&order, &guest_order] {
        let view = api
            .read_until(&format!("/v1/orders/{id}"), &admin, |o| {
                o["personal_data_erased"] == true
            })
            .await;
        assert!(
            view["shipping_address"].is_null() && view["contact_email"].is_null(),
            "{view}"
        );
        assert_eq!(view["ship_to_country"], "GB");
        assert_eq!(view["status"], "confirmed");
    }
    let erin_order = api
        .read_until(&format!("/v1/orders/{order}"), &admin, |_| true)
        .await;
    assert_eq!(erin_order["total"]["amount"], 5000);
    assert_eq!(erin_order["payment"]["captured"]["amount"], 5000);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !sqlx::query_scalar::<_, bool>(
        "SELECT forgotten FROM read.customers WHERE customer_id = $1::uuid",
    )
    .bind(&customer)
    .fetch_one(&db.pool)
    .await
    .unwrap()
    {
        assert!(Instant::now() < deadline, "the customer is not forgotten");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Nowhere in PostgreSQL.
    let people = [&erin, &gus];
    let before_rebuild = every_table(&db).await;
    assert_absent("PostgreSQL", before_rebuild.as_bytes(), &people);
    assert!(
        before_rebuild.contains(&sku),
        "the scan sees the shop's data"
    );
    // Nowhere in JetStream's files, which do hold the shop's events.
    let stored = jetstream_files(&nats);
    assert!(
        contains(&stored, &sku),
        "the stream's files hold its events"
    );
    assert_absent("the JetStream store", &stored, &people);
    // Nowhere in an export, with or without personal data, nor in the admin event stream.
    let export = mercato(&db, &nats, &["events", "export"]);
    assert!(contains(&export, "$redacted") && contains(&export, &sku));
    assert_absent("an export", &export, &people);
    let full = mercato(&db, &nats, &["events", "export", "--include-personal-data"]);
    assert!(contains(&full, "$erased"));
    assert_absent("an export with personal data", &full, &people);
    for query in ["", "?include_personal_data=true"] {
        let resp = api
            .http
            .get(format!("http://{}/v1/admin/events{query}", api.query))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.bytes().await.unwrap();
        assert!(contains(&body, &sku));
        assert_absent("the admin event stream", &body, &people);
    }
    // The erased customer's token stops working on both APIs, and they can no longer sign in.
    let (s, b) = api.read("/v1/customers/me", &token).await;
    assert_eq!(s, 401, "{b}");
    let (s, b) = api
        .call(
            Method::GET,
            format!("http://{}/v1/orders/{order}", api.query),
            Some(&token),
            &[],
            None,
        )
        .await;
    assert_eq!(s, 401, "{b}");
    let (s, _) = api
        .call(
            Method::POST,
            format!("http://{}/v1/auth/token", api.command),
            None,
            &[],
            Some(json!({"email": erin.email, "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(s, 401);

    // A rebuild from the log gives the same read models.
    let read_models = || async {
        let orders: Vec<Value> = sqlx::query_scalar(
            "SELECT to_jsonb(o) - 'updated_at' FROM read.orders o ORDER BY order_id",
        )
        .fetch_all(&db.pool)
        .await
        .unwrap();
        let customers: Vec<Value> = sqlx::query_scalar(
            "SELECT to_jsonb(c) - 'updated_at' FROM read.customers c ORDER BY customer_id",
        )
        .fetch_all(&db.pool)
        .await
        .unwrap();
        (orders, customers)
    };
    let before = read_models().await;
    mercato(&db, &nats, &["projections", "rebuild", "--all"]);
    assert_eq!(read_models().await, before);
    assert_absent(
        "PostgreSQL after a rebuild",
        every_table(&db).await.as_bytes(),
        &people,
    );
    drop(serve);
}
