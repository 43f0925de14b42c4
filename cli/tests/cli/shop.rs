//! The whole shop through the real binary: `mercato serve` in one process, and the same parts
//! as separate processes with the worker killed -9 in the middle of checkouts.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mercato_event_store::testing::TestDatabase;
use mercato_nats::testing::TestNats;
use serde_json::{json, Value};

use crate::guest::Shop;
use crate::process::{database_url, Mercato};

/// Starts `mercato seed` against `command_api` (host:port) with the test's settings.
fn seed(db: &TestDatabase, nats: &TestNats, command_api: &str, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_mercato"))
        .arg("seed")
        .args(args)
        .args(["--api-url", &format!("http://{command_api}")])
        .env("MERCATO_DATABASE_URL", database_url(db))
        .env(
            "MERCATO_DATA_KEY",
            mercato_event_store::testing::TEST_DATA_KEY,
        )
        .env("MERCATO_NATS_URL", &nats.config.url)
        .env("MERCATO_ADMIN_EMAIL", "admin@mercato.test")
        .env("MERCATO_ADMIN_PASSWORD", "admin-password")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("mercato seed runs")
}

async fn admin_token(http: &reqwest::Client, command_api: &str) -> String {
    Shop {
        http: http.clone(),
        command: format!("http://{command_api}"),
        query: String::new(),
    }
    .admin_token()
    .await
}

/// Polls the query API's order list until `expected` orders are all `confirmed`.
async fn wait_until_confirmed(
    http: &reqwest::Client,
    query_api: &str,
    token: &str,
    expected: usize,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let page: Value = http
            .get(format!("http://{query_api}/v1/orders?limit=100"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let orders = page["items"].as_array().cloned().unwrap_or_default();
        let confirmed = orders.iter().filter(|o| o["status"] == "confirmed").count();
        if confirmed == expected {
            return orders;
        }
        if Instant::now() > deadline {
            let mut details = Vec::new();
            for order in orders.iter().filter(|o| o["status"] != "confirmed") {
                let detail: Value = http
                    .get(format!(
                        "http://{query_api}/v1/orders/{}",
                        order["id"].as_str().unwrap()
                    ))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                details.push(detail);
            }
            panic!("{confirmed} of {expected} orders confirmed; the others: {details:#?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn count_events(db: &TestDatabase, event_type: &str) -> (i64, i64) {
    sqlx::query_as(
        "SELECT count(*), count(DISTINCT aggregate_id) FROM events WHERE event_type = $1",
    )
    .bind(event_type)
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

/// Runs an ops command of `mercato` against the test database; returns its stdout.
fn ops(db: &TestDatabase, nats: &TestNats, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_mercato"))
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
    String::from_utf8(output.stdout).unwrap()
}

async fn emails(db: &TestDatabase) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM command.notifications")
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn serve_runs_the_whole_shop_in_one_process() {
    let db = TestDatabase::new().await;
    let nats = TestNats::new().await;
    let serve = Mercato::start(&["serve"], &db, &nats);
    let command_api = serve
        .command_api_addr
        .clone()
        .expect("serve runs the command api");
    let query_api = serve
        .query_api_addr
        .clone()
        .expect("serve runs the query api");

    let status = seed(
        &db,
        &nats,
        &command_api,
        &["--products", "12", "--customers", "2", "--orders", "4"],
    )
    .wait()
    .unwrap();
    assert!(status.success(), "mercato seed failed");

    let http = reqwest::Client::new();
    let token = admin_token(&http, &command_api).await;
    let orders = wait_until_confirmed(&http, &query_api, &token, 4).await;
    assert_eq!(orders.len(), 4);

    // The seeded catalog is searchable, with a typo, through the same process.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found: Value = http
            .get(format!("http://{query_api}/v1/search?q=headphnes"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if found["total"].as_u64().unwrap_or(0) > 0 {
            assert!(found["hits"][0]["name"].as_str().unwrap().contains("Head"));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "search never found the seeded product: {found}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Ops: the status table, and a rebuild of every projection while the shop keeps running.
    let status = ops(&db, &nats, &["projections", "status"]);
    for name in [
        "catalog",
        "stock",
        "carts",
        "orders",
        "customers",
        "sales",
        "recommendations",
        "pricing",
    ] {
        assert!(
            status
                .lines()
                .any(|l| l.starts_with(name) && l.contains("live")),
            "{name} is listed as live:\n{status}"
        );
    }
    // Nothing parked, nothing dead-lettered in a healthy shop.
    assert!(
        status.lines().next().unwrap().contains("PARKED"),
        "{status}"
    );
    assert!(ops(&db, &nats, &["projections", "parked"]).ends_with("\n0 parked\n"));
    let letters = ops(&db, &nats, &["projections", "dead-letters"]);
    assert!(letters.ends_with("\n0 dead letters\n"), "{letters}");
    let rebuilt = ops(&db, &nats, &["projections", "rebuild", "--all"]);
    assert_eq!(
        rebuilt.lines().filter(|l| l.contains("live at")).count(),
        8,
        "{rebuilt}"
    );
    let after: Value = http
        .get(format!("http://{query_api}/v1/orders?limit=100"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        after["items"].as_array().unwrap().len(),
        4,
        "orders served after the switch"
    );

    assert_eq!(
        serve.terminate().code(),
        Some(0),
        "Ctrl-C/SIGTERM stops every part cleanly"
    );
}

/// The shop as separate processes: a relay, a command API, a query API and a worker.
struct Separate {
    db: TestDatabase,
    nats: TestNats,
    _relay: Mercato,
    _api: Mercato,
    _reads: Mercato,
    worker: Option<Mercato>,
    command_api: String,
    query_api: String,
}

impl Separate {
    async fn start() -> Self {
        let db = TestDatabase::new().await;
        let nats = TestNats::new().await;
        let relay = Mercato::start(&["relay"], &db, &nats);
        let api = Mercato::start(&["command-api"], &db, &nats);
        let reads = Mercato::start(&["query-api"], &db, &nats);
        let worker = Mercato::start(&["worker"], &db, &nats);
        let command_api = api.command_api_addr.clone().unwrap();
        let query_api = reads.query_api_addr.clone().unwrap();
        Self {
            db,
            nats,
            _relay: relay,
            _api: api,
            _reads: reads,
            worker: Some(worker),
            command_api,
            query_api,
        }
    }

    /// Kills the worker with SIGKILL (in the middle of whatever it does) and starts a new one.
    async fn kill_and_restart_worker(&mut self) {
        if let Some(worker) = self.worker.take() {
            worker.kill9();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.worker = Some(Mercato::start(&["worker"], &self.db, &self.nats));
    }
}

#[tokio::test]
async fn separate_processes_confirm_every_order_exactly_once_across_a_killed_worker() {
    let mut shop = Separate::start().await;
    let (db, nats) = (&shop.db, &shop.nats);
    let (command_api, query_api) = (shop.command_api.clone(), shop.query_api.clone());

    let catalog = seed(
        db,
        nats,
        &command_api,
        &["--products", "8", "--customers", "2", "--orders", "0"],
    );
    assert!(catalog.wait_with_output().unwrap().status.success());

    // Checkouts keep coming while the worker (order process, projections, notifications) dies.
    let mut orders = seed(
        db,
        nats,
        &command_api,
        &[
            "--products",
            "8",
            "--customers",
            "2",
            "--orders",
            "6",
            "--concurrency",
            "2",
        ],
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    shop.kill_and_restart_worker().await;
    assert!(orders.wait().unwrap().success());
    let db = &shop.db;

    // The demo catalog of seed 42 has one product without stock (SKU-000006): the two orders
    // that want it are cancelled as out of stock; the other four are confirmed.
    let http = reqwest::Client::new();
    let token = admin_token(&http, &command_api).await;
    wait_until_confirmed(&http, &query_api, &token, 4).await;
    // The cancellations may still be on their way (one may wait for the killed worker's
    // messages to be redelivered): nothing orders them before the confirmations.
    let deadline = Instant::now() + Duration::from_secs(60);
    let cancelled = loop {
        let cancelled: Vec<Option<String>> = sqlx::query_scalar(
            "SELECT payload -> 'OrderCancelled' -> 'reason' ->> 'out_of_stock' FROM events \
             WHERE event_type = 'OrderCancelled'",
        )
        .fetch_all(&db.pool)
        .await
        .unwrap();
        if cancelled.len() >= 2 || Instant::now() > deadline {
            break cancelled;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        cancelled.len() == 2
            && cancelled
                .iter()
                .all(|reason| reason.as_deref().is_some_and(|r| r.contains("SKU-000006"))),
        "two orders cancelled, for a product without stock: {cancelled:?}"
    );
    // The capture follows the confirmation and the emails follow both: wait for the last.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let recorded = count_events(db, "OrderPaymentCaptured").await.1;
        if recorded == 4 && emails(db).await >= 6 {
            break;
        }
        assert!(Instant::now() < deadline, "captures or emails missing");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Exactly once in effect: one confirmation and one capture per confirmed order, one email
    // (confirmed or cancelled) per order.
    assert_eq!(count_events(db, "OrderPlaced").await, (6, 6));
    assert_eq!(count_events(db, "OrderConfirmed").await, (4, 4));
    assert_eq!(count_events(db, "PaymentCaptured").await, (4, 4));
    assert_eq!(count_events(db, "OrderPaymentCaptured").await, (4, 4));
    assert_eq!(emails(db).await, 6, "one email per order");
}

/// Units on hand and reserved over every SKU, from the stock aggregates themselves.
async fn stock_totals(db: &TestDatabase) -> (u64, u64) {
    let store: mercato_event_store::AggregateStore<mercato_aggregates::stock::Stock> =
        mercato_event_store::AggregateStore::new(
            db.pool.clone(),
            (),
            &mercato_event_store::SnapshotPolicy::never(),
        );
    let skus: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT aggregate_id FROM events WHERE aggregate_type = 'Stock'",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let (mut on_hand, mut reserved) = (0, 0);
    for sku in skus {
        let (stock, _) = store.load(&sku).await.unwrap();
        for level in stock.levels() {
            on_hand += level.on_hand;
            reserved += level.reserved;
        }
    }
    (on_hand, reserved)
}

/// Sums `sql` (one bigint per row) over the test database.
async fn sum(db: &TestDatabase, sql: &str) -> i64 {
    sqlx::query_scalar::<_, Option<i64>>(sql)
        .fetch_one(&db.pool)
        .await
        .unwrap()
        .unwrap_or(0)
}

#[tokio::test]
async fn shipments_cancellations_and_refunds_settle_exactly_once_across_a_killed_worker() {
    let mut shop = Separate::start().await;
    let (command_api, query_api) = (shop.command_api.clone(), shop.query_api.clone());
    let orders = seed(
        &shop.db,
        &shop.nats,
        &command_api,
        &["--products", "8", "--customers", "2", "--orders", "6"],
    );
    assert!(orders.wait_with_output().unwrap().status.success());
    let http = reqwest::Client::new();
    let token = admin_token(&http, &command_api).await;
    // A refund needs captured money, and the capture follows the confirmation: wait for it,
    // as a merchant refunds a paid order.
    let deadline = Instant::now() + Duration::from_secs(60);
    while count_events(&shop.db, "OrderPaymentCaptured").await.1 < 4 {
        assert!(Instant::now() < deadline, "captures missing");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let confirmed: Vec<String> = wait_until_confirmed(&http, &query_api, &token, 4)
        .await
        .iter()
        .filter(|o| o["status"] == "confirmed")
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect();
    let mut views = Vec::new();
    for id in &confirmed {
        let view: Value = http
            .get(format!("http://{query_api}/v1/orders/{id}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        views.push(view);
    }
    let post = |path: String, body: Value| {
        let http = http.clone();
        let token = token.clone();
        let command_api = command_api.clone();
        async move {
            let resp = http
                .post(format!("http://{command_api}{path}"))
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            assert!(
                (200..300).contains(&status),
                "{path}: {status} {}",
                resp.text().await.unwrap()
            );
        }
    };
    let all_lines = |view: &Value| -> Value {
        Value::Array(
            view["lines"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| json!({"sku": l["sku"], "quantity": l["quantity"]}))
                .collect(),
        )
    };
    // Four lives at once: shipped whole; refunded 1.00 then shipped; cancelled; one unit
    // shipped and the rest cancelled. The worker is killed while it carries them out.
    let (a, b, c, d) = (&views[0], &views[1], &views[2], &views[3]);
    let id = |v: &Value| v["id"].as_str().unwrap().to_owned();
    post(
        format!("/v1/orders/{}/shipments", id(a)),
        json!({"tracking_number": "A1", "lines": all_lines(a)}),
    )
    .await;
    post(
        format!("/v1/orders/{}/refunds", id(b)),
        json!({"amount": {"amount": 100, "currency": "EUR"}}),
    )
    .await;
    post(
        format!("/v1/orders/{}/shipments", id(b)),
        json!({"tracking_number": "B1", "lines": all_lines(b)}),
    )
    .await;
    post(format!("/v1/orders/{}/cancel", id(c)), json!({})).await;
    let first = &d["lines"][0];
    post(
        format!("/v1/orders/{}/shipments", id(d)),
        json!({"tracking_number": "D1", "lines": [{"sku": first["sku"], "quantity": 1}]}),
    )
    .await;
    post(format!("/v1/orders/{}/cancel", id(d)), json!({})).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    shop.kill_and_restart_worker().await;
    let db = &shop.db;

    // Everything settles: no unit of these orders is held any more, and every refund is made
    // on the payment and recorded on the order.
    let total = |v: &Value| v["total"]["amount"].as_i64().unwrap();
    let first_price = first["unit_price"]["amount"].as_i64().unwrap();
    let expected_refunds = 100 + total(c) + (total(d) - first_price);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, reserved) = stock_totals(db).await;
        let on_order = sum(db, "SELECT sum((payload -> 'OrderRefunded' -> 'amount' ->> 'amount')::bigint)::bigint FROM events WHERE event_type = 'OrderRefunded'").await;
        let on_payment = sum(db, "SELECT sum((payload -> 'PaymentRefunded' -> 'amount' ->> 'amount')::bigint)::bigint FROM events WHERE event_type = 'PaymentRefunded'").await;
        if reserved == 0 && on_order == expected_refunds && on_payment == expected_refunds {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not settled: {reserved} units held, refunded {on_order} on orders and {on_payment} on payments of {expected_refunds}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Exactly once: one commit per shipped line, one refund per request, each recorded once,
    // and on hand = received - shipped.
    let shipped_lines =
        a["lines"].as_array().unwrap().len() + b["lines"].as_array().unwrap().len() + 1;
    assert_eq!(
        count_events(db, "StockReservationCommitted").await.0,
        shipped_lines as i64
    );
    assert_eq!(count_events(db, "PaymentRefunded").await.0, 3);
    assert_eq!(count_events(db, "OrderRefunded").await.0, 3);
    let received = sum(db, "SELECT sum((payload -> 'StockReceived' ->> 'quantity')::bigint)::bigint FROM events WHERE event_type = 'StockReceived'").await;
    let shipped = sum(db, "SELECT sum((payload -> 'StockReservationCommitted' ->> 'quantity')::bigint)::bigint FROM events WHERE event_type = 'StockReservationCommitted'").await;
    let units = |v: &Value| -> i64 {
        v["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["quantity"].as_i64().unwrap())
            .sum()
    };
    assert_eq!(shipped, units(a) + units(b) + 1);
    let (on_hand, _) = stock_totals(db).await;
    assert_eq!(i64::try_from(on_hand).unwrap(), received - shipped);
}
