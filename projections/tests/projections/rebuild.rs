//! Zero-downtime rebuilds: a rebuilt read model is identical to the one maintained live over
//! the same events, queries keep answering while a rebuild runs and after the switch, an
//! interrupted rebuild leaves the live version untouched and resumes, and events written
//! during a rebuild are neither lost nor applied twice after the switch.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mercato_projections::read_models::catalog::Catalog;
use mercato_projections::rebuild::{rebuild_all, RebuildOptions, RebuildPhase, RebuildProgress};
use mercato_projections::status::{status, ProjectionState};
use mercato_projections::{registry, Projection, ProjectionWorker};
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::support::{address, start_all, Shop};

const ALL: [&str; 8] = [
    "catalog",
    "stock",
    "carts",
    "orders",
    "customers",
    "sales",
    "recommendations",
    "pricing",
];

/// A realistic slice of shop life for shoppers `range`: products with price changes, stock
/// in two warehouses, customers (some forgotten), carts, and orders that are confirmed,
/// shipped, delivered, refunded or cancelled.
async fn history(shop: &Shop, range: std::ops::Range<usize>) {
    for i in range {
        let sku = format!("SKU-{i}");
        let brand = ["Sonix", "Aurora", "Kestrel"][i % 3];
        shop.product(
            &sku,
            &format!("Product {i}"),
            brand,
            &["audio", ["headphones", "speakers"][i % 2]],
            1_000 + i as i64 * 10,
            "A fine thing",
        )
        .await;
        if i % 2 == 0 {
            shop.product_cmd(
                &sku,
                json!({"ChangeProductPrice": {"price": {"amount": 900 + i as i64, "currency": "EUR"}}}),
            )
            .await;
        }
        shop.receive(&sku, "berlin", 10 + i as u32).await;
        shop.receive(&sku, "paris", 5).await;

        let customer = Uuid::new_v4();
        shop.customer_cmd(
            customer,
            json!({"RegisterCustomer": {"customer_id": customer,
            "email": format!("shopper{i}@example.com"), "name": format!("Shopper {i}"),
            "password_hash": "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"}}),
        )
        .await;
        shop.customer_cmd(
            customer,
            json!({"ChangeCustomerAddress": {"address": address()}}),
        )
        .await;

        let cart = Uuid::new_v4();
        shop.cart(cart, Some(customer), &[(&sku, 2), ("SKU-0", 1)])
            .await;
        shop.cart_cmd(
            cart,
            json!({"ChangeCartItemQuantity": {"sku": sku, "quantity": 3}}),
        )
        .await;

        let order = Uuid::new_v4();
        let placed_at = format!("2026-03-{:02}T10:00:00Z", 1 + i % 5);
        // Every fourth order also holds a SKU never created (bought together with it).
        let mut lines = vec![(sku.as_str(), 2, 1_000)];
        if i % 4 == 0 {
            lines.push(("SKU-EXTRA", 1, 500));
        }
        shop.place(order, customer, &lines, &placed_at).await;
        shop.reserve(&sku, order, 2).await;
        // Pricing: a promotion whose use the order holds (given back when it is cancelled),
        // a tax rate, the tax setting, and shipping methods (one of three retired).
        let promotion = Uuid::new_v4();
        shop.promotion_cmd(
            promotion,
            json!({"CreatePromotion": {"promotion_id": promotion,
            "terms": {"name": format!("Promotion {i}"), "code": format!("PROMO-{i}"),
                "discount": {"percent": "12.5"}, "applies_to": {"brand": brand},
                "usage_limit": 5}, "active": true}}),
        )
        .await;
        shop.promotion_cmd(
            promotion,
            json!({"ReserveRedemption": {"order_id": order,
            "customer_id": customer, "at": placed_at}}),
        )
        .await;
        if i % 4 == 3 {
            shop.promotion_cmd(promotion, json!({"ReleaseRedemption": {"order_id": order}}))
                .await;
        }
        if i % 5 == 4 {
            shop.promotion_cmd(promotion, json!("DeactivatePromotion"))
                .await;
        }
        let country = ["DE", "FR", "ES"][i % 3];
        shop.tax_cmd(
            json!({"SetTaxRate": {"country": country, "postal_prefix": null,
            "rate": format!("{}.5", 5 + i % 20)}}),
        )
        .await;
        shop.tax_cmd(json!({"SetPricesIncludeTax": {"prices_include_tax": i % 2 == 0}}))
            .await;
        let method = format!("method-{}", i % 3);
        shop.shipping_cmd(
            json!({"DefineShippingMethod": {"method_id": method, "method": {
            "name": "Parcel", "countries": [country],
            "rate": {"flat": {"amount": 100 + i, "currency": "EUR"}}, "free_above": null}}}),
        )
        .await;
        if i % 3 == 2 {
            shop.shipping_cmd(json!({"RetireShippingMethod": {"method_id": method}}))
                .await;
        }
        if i % 6 == 5 {
            // An order that stays placed (its lines wait for a confirmation).
            let waiting = Uuid::new_v4();
            shop.place(waiting, customer, &[(&sku, 1, 1_000)], &placed_at)
                .await;
        }
        match i % 4 {
            0..=2 => {
                let skus: Vec<&str> = lines.iter().map(|l| l.0).collect();
                let total = lines.iter().map(|l| i64::from(l.1) * l.2).sum();
                shop.confirm(order, &skus, total).await;
                if i % 4 != 0 {
                    shop.ship_and_deliver(
                        order,
                        &format!("TRK-{i}"),
                        json!([{"sku": sku, "quantity": 2}]),
                    )
                    .await;
                }
                if i % 4 == 2 {
                    shop.refund(order, 500).await;
                }
                if i % 4 == 1 {
                    // One unit comes back and is refunded.
                    let return_id = Uuid::new_v4();
                    shop.order_cmd(
                        order,
                        json!({"RequestReturn": {"return_id": return_id,
                               "lines": [{"sku": sku, "quantity": 1}], "reason": "too big",
                               "requested_at": "2026-03-05T10:00:00Z", "window_days": 30}}),
                    )
                    .await;
                    shop.order_cmd(
                        order,
                        json!({"ReceiveReturn": {"return_id": return_id, "warehouse": "main",
                               "lines": [{"sku": sku, "quantity": 1, "restock": true}],
                               "received_at": "2026-03-07T10:00:00Z"}}),
                    )
                    .await;
                    shop.settle_refunds(order).await;
                }
            }
            _ => {
                shop.order_cmd(
                    order,
                    json!({"CancelOrder": {"reason": "customer_request"}}),
                )
                .await;
                shop.customer_cmd(
                    customer,
                    json!({"ForgetCustomer": {"requested_at": "2026-03-09T00:00:00Z"}}),
                )
                .await;
            }
        }
    }
}

/// A pool of its own, so the rebuild and the readers never wait for the workers' connections.
async fn own_pool(shop: &Shop) -> PgPool {
    PgPoolOptions::new()
        .max_connections(4)
        .connect_with((*shop.db.pool.connect_options()).clone())
        .await
        .unwrap()
}

fn tables() -> Vec<&'static str> {
    registry()
        .iter()
        .flat_map(|p| p.tables().iter().copied())
        .collect()
}

/// Copies every read-model table into schema `into`.
async fn snapshot(pool: &PgPool, into: &str) {
    sqlx::query(&format!("CREATE SCHEMA {into}"))
        .execute(pool)
        .await
        .unwrap();
    for t in tables() {
        sqlx::query(&format!(
            "CREATE TABLE {into}.{t} AS SELECT * FROM read.{t}"
        ))
        .execute(pool)
        .await
        .unwrap();
    }
}

/// Asserts that every read-model table has the same rows (with duplicates) as in `expected`,
/// and that none is empty (so the comparison means something).
async fn assert_same_as(pool: &PgPool, expected: &str) {
    for t in tables() {
        let differing: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM ((SELECT * FROM read.{t} EXCEPT ALL SELECT * FROM {expected}.{t}) \
             UNION ALL (SELECT * FROM {expected}.{t} EXCEPT ALL SELECT * FROM read.{t})) d"
        ))
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(differing, 0, "table {t} differs from {expected}.{t}");
        let rows: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM read.{t}"))
            .fetch_one(pool)
            .await
            .unwrap();
        assert!(rows > 0, "table {t} is empty");
    }
}

/// Row counts of every read-model table, as one query a client would run.
async fn row_counts(pool: &PgPool) -> Result<Vec<i64>, sqlx::Error> {
    let sql = tables()
        .iter()
        .map(|t| format!("(SELECT count(*) FROM read.{t})"))
        .collect::<Vec<_>>()
        .join(", ");
    let row: Vec<i64> = sqlx::query_scalar(&format!("SELECT ARRAY[{sql}]"))
        .fetch_one(pool)
        .await?;
    Ok(row)
}

/// Queries the read models until `stop`; every answer must be `expected`. Returns how many
/// queries answered.
async fn keep_reading(pool: PgPool, expected: Vec<i64>, stop: CancellationToken) -> u64 {
    let mut answered = 0;
    while !stop.is_cancelled() {
        let counts = row_counts(&pool)
            .await
            .expect("a query failed during the rebuild");
        assert_eq!(
            counts, expected,
            "a query saw other rows during the rebuild"
        );
        answered += 1;
        tokio::task::yield_now().await;
    }
    answered
}

#[tokio::test]
async fn a_rebuilt_read_model_equals_the_live_one_and_queries_keep_answering() {
    let shop = Shop::new().await;
    let workers = start_all(&shop);
    history(&shop, 0..12).await;
    let head = shop.head().await;
    shop.wait_for(&ALL, head).await;
    let pool = own_pool(&shop).await;
    snapshot(&pool, "expected").await;
    let expected_counts = row_counts(&pool).await.unwrap();
    let options = RebuildOptions { batch_size: 20 };

    // Interrupt a rebuild after its first batch (its future dropped, as Ctrl-C does).
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let first = rebuild_all(&pool, &options, |p: &RebuildProgress| {
        let _ = tx.send(p.done);
    });
    tokio::select! {
        biased;
        _ = rx.recv() => {}
        r = first => panic!("the rebuild finished before it could be interrupted: {r:?}"),
    }
    assert_same_as(&pool, "expected").await;
    // The server ends the dropped rebuild's session (and its lock) once it sees the socket close.
    let interrupted = loop {
        let rows = status(&pool).await.unwrap();
        if rows.iter().all(|s| s.state != ProjectionState::Rebuilding) {
            break rows;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    for s in &interrupted {
        assert_eq!(s.state, ProjectionState::Live, "{s:?}");
        assert_eq!(s.version, Some(s.code_version));
        let shadow = s
            .rebuild
            .as_ref()
            .expect("the shadow stays for a resumed rebuild");
        assert!(!shadow.running);
    }
    let resumed_from = interrupted
        .iter()
        .filter_map(|s| s.rebuild.as_ref().map(|r| r.position))
        .min()
        .unwrap();
    assert!(resumed_from > mercato_event_store::Position::START);

    // Resume it while a client keeps querying.
    let stop = CancellationToken::new();
    let reader = tokio::spawn(keep_reading(
        own_pool(&shop).await,
        expected_counts.clone(),
        stop.clone(),
    ));
    let seen: Arc<Mutex<Vec<RebuildProgress>>> = Arc::default();
    let sink = seen.clone();
    let reports = rebuild_all(&pool, &options, move |p: &RebuildProgress| {
        sink.lock().unwrap().push(p.clone())
    })
    .await
    .unwrap();
    // And after the switch.
    assert_eq!(row_counts(&pool).await.unwrap(), expected_counts);
    stop.cancel();
    assert!(reader.await.unwrap() > 0);

    assert_eq!(reports.len(), ALL.len());
    assert_same_as(&pool, "expected").await;
    let seen = seen.lock().unwrap().clone();
    let replayed = seen
        .iter()
        .filter(|p| p.phase == RebuildPhase::Replaying)
        .collect::<Vec<_>>();
    let last = replayed.last().expect("progress while replaying");
    assert!(
        replayed[0].done > 20,
        "a resumed rebuild counts what it replayed before"
    );
    assert_eq!(last.done, last.total);
    assert_eq!(
        seen.iter()
            .filter(|p| p.phase == RebuildPhase::Done)
            .count(),
        ALL.len()
    );
    for s in status(&pool).await.unwrap() {
        assert_eq!(s.state, ProjectionState::Live);
        assert_eq!(s.rebuild, None, "the shadow is dropped after the switch");
        assert!(s.position >= head);
    }
    let leftovers: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'read\\_%\\_shadow' OR nspname LIKE 'read\\_%\\_retired'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(leftovers, 0);

    // The live workers carry on from the taken-over checkpoint.
    history(&shop, 12..14).await;
    let head = shop.head().await;
    shop.wait_for(&ALL, head).await;
    let sku: i64 = sqlx::query_scalar("SELECT count(*) FROM read.products WHERE sku = 'SKU-13'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(sku, 1);
    for w in workers {
        w.stop().await;
    }
}

#[tokio::test]
async fn events_written_during_a_rebuild_are_applied_exactly_once_after_the_switch() {
    let shop = Shop::new().await;
    let workers = start_all(&shop);
    history(&shop, 0..6).await;
    let pool = own_pool(&shop).await;
    let batches = AtomicU64::new(0);
    // Shoppers keep shopping while every projection is rebuilt and switched over.
    let (_, reports) = tokio::join!(
        history(&shop, 6..14),
        rebuild_all(&pool, &RebuildOptions { batch_size: 25 }, |_| {
            batches.fetch_add(1, Ordering::Relaxed);
        })
    );
    assert_eq!(reports.unwrap().len(), ALL.len());
    let head = shop.head().await;
    shop.wait_for(&ALL, head).await;

    // What the live workers made of it after the switch must be what the log says: a second
    // rebuild, over a quiet log, builds the same rows.
    snapshot(&pool, "after_switch").await;
    rebuild_all(&pool, &RebuildOptions::default(), |_| {})
        .await
        .unwrap();
    assert_same_as(&pool, "after_switch").await;
    let sales: i64 = sqlx::query_scalar("SELECT sum(orders)::bigint FROM read.sales_daily")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(sales, 11, "three of every four orders are confirmed, once");
    for w in workers {
        w.stop().await;
    }
}

/// The catalog projection as a deploy with a fixed `apply` would ship it: version 2.
struct CatalogV2;

#[async_trait::async_trait]
impl Projection for CatalogV2 {
    fn name(&self) -> &'static str {
        "catalog"
    }
    fn version(&self) -> i32 {
        2
    }
    fn aggregate_types(&self) -> &'static [&'static str] {
        Catalog.aggregate_types()
    }
    fn event_types(&self) -> &'static [&'static str] {
        Catalog.event_types()
    }
    fn tables(&self) -> &'static [&'static str] {
        Catalog.tables()
    }
    async fn apply(
        &self,
        conn: &mut sqlx::PgConnection,
        events: &[&mercato_event_store::RecordedEvent],
    ) -> Result<(), mercato_projections::ProjectionError> {
        Catalog.apply(conn, events).await
    }
}

#[tokio::test]
async fn a_worker_rebuilds_its_projection_when_the_code_version_changed() {
    let shop = Shop::new().await;
    let workers = start_all(&shop);
    history(&shop, 0..6).await;
    let head = shop.head().await;
    shop.wait_for(&ALL, head).await;
    for w in workers {
        w.stop().await;
    }
    let pool = own_pool(&shop).await;
    snapshot(&pool, "expected").await;

    // Deploy version 2 of the catalog: its worker rebuilds before it consumes.
    let worker = ProjectionWorker::new(Arc::new(CatalogV2), shop.deps()).with_consumer(|c| {
        c.batch_size = 64;
        c.retry_delay = Duration::from_millis(100);
        c.ack_wait = Duration::from_secs(2);
    });
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(worker.run(shutdown.clone()));
    history(&shop, 6..8).await;
    let head = shop.head().await;
    shop.wait_for(&["catalog"], head).await;
    let catalog = status(&pool)
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.name == "catalog")
        .unwrap();
    assert_eq!(catalog.version, Some(2));
    assert_eq!(catalog.state, ProjectionState::Live);
    let products: i64 = sqlx::query_scalar("SELECT count(*) FROM read.products")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(products, 8);
    let same: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT * FROM expected.products EXCEPT ALL SELECT * FROM read.products) d",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        same, 0,
        "the products of the first six shoppers are as before"
    );
    shutdown.cancel();
    running.await.unwrap().unwrap();
}
