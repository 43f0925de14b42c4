//! The whole shop through the real binary: `mercato serve` in one process, and the same parts
//! as separate processes with the worker killed -9 in the middle of checkouts.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mercato_event_store::testing::TestDatabase;
use mercato_nats::testing::TestNats;
use serde_json::{json, Value};

use crate::process::{database_url, Mercato};

/// Starts `mercato seed` against `command_api` (host:port) with the test's settings.
fn seed(db: &TestDatabase, nats: &TestNats, command_api: &str, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_mercato"))
        .arg("seed")
        .args(args)
        .args(["--api-url", &format!("http://{command_api}")])
        .env("MERCATO_DATABASE_URL", database_url(db))
        .env("MERCATO_NATS_URL", &nats.config.url)
        .env("MERCATO_ADMIN_EMAIL", "admin@mercato.test")
        .env("MERCATO_ADMIN_PASSWORD", "admin-password")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("mercato seed runs")
}

async fn admin_token(http: &reqwest::Client, command_api: &str) -> String {
    let answer: Value = http
        .post(format!("http://{command_api}/v1/auth/token"))
        .json(&json!({"email": "admin@mercato.test", "password": "admin-password"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["access_token"].as_str().unwrap().to_owned()
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
fn ops(db: &TestDatabase, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_mercato"))
        .args(args)
        .env("MERCATO_DATABASE_URL", database_url(db))
        .env("MERCATO_DATABASE_MAX_CONNECTIONS", "4")
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
    let status = ops(&db, &["projections", "status"]);
    for name in ["catalog", "stock", "carts", "orders", "customers", "sales"] {
        assert!(
            status
                .lines()
                .any(|l| l.starts_with(name) && l.contains("live")),
            "{name} is listed as live:\n{status}"
        );
    }
    let rebuilt = ops(&db, &["projections", "rebuild", "--all"]);
    assert_eq!(
        rebuilt.lines().filter(|l| l.contains("live at")).count(),
        6,
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

#[tokio::test]
async fn separate_processes_confirm_every_order_exactly_once_across_a_killed_worker() {
    let db = TestDatabase::new().await;
    let nats = TestNats::new().await;
    let _relay = Mercato::start(&["relay"], &db, &nats);
    let api = Mercato::start(&["command-api"], &db, &nats);
    let reads = Mercato::start(&["query-api"], &db, &nats);
    let worker = Mercato::start(&["worker"], &db, &nats);
    let command_api = api.command_api_addr.clone().unwrap();
    let query_api = reads.query_api_addr.clone().unwrap();

    let catalog = seed(
        &db,
        &nats,
        &command_api,
        &["--products", "8", "--customers", "2", "--orders", "0"],
    );
    assert!(catalog.wait_with_output().unwrap().status.success());

    // Checkouts keep coming while the worker (saga, projections, notifications) dies.
    let mut orders = seed(
        &db,
        &nats,
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
    worker.kill9();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _worker = Mercato::start(&["worker"], &db, &nats);
    assert!(orders.wait().unwrap().success());

    // The demo catalog of seed 42 has one product without stock (SKU-000006): the two orders
    // that want it are cancelled as out of stock; the other four are confirmed.
    let http = reqwest::Client::new();
    let token = admin_token(&http, &command_api).await;
    wait_until_confirmed(&http, &query_api, &token, 4).await;
    let cancelled: Vec<String> = sqlx::query_scalar(
        "SELECT payload -> 'OrderCancelled' -> 'reason' ->> 'out_of_stock' FROM events \
         WHERE event_type = 'OrderCancelled'",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        cancelled.len(),
        2,
        "two orders cancelled, for a product without stock"
    );
    // The capture follows the confirmation and the emails follow both: wait for the last.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let recorded = count_events(&db, "OrderPaymentCaptured").await.1;
        if recorded == 4 && emails(&db).await >= 6 {
            break;
        }
        assert!(Instant::now() < deadline, "captures or emails missing");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Exactly once in effect: one confirmation and one capture per confirmed order, one email
    // (confirmed or cancelled) per order.
    assert_eq!(count_events(&db, "OrderPlaced").await, (6, 6));
    assert_eq!(count_events(&db, "OrderConfirmed").await, (4, 4));
    assert_eq!(count_events(&db, "PaymentCaptured").await, (4, 4));
    assert_eq!(count_events(&db, "OrderPaymentCaptured").await, (4, 4));
    assert_eq!(emails(&db).await, 6, "one email per order");
}
