//! A projection worker killed mid-batch and restarted leaves its read model exactly as if it
//! had never stopped: no double counting, nothing skipped.

use std::time::Duration;

use uuid::Uuid;

use crate::support::{RunningProjection, Shop};

#[tokio::test]
async fn sales_stay_exact_across_a_killed_worker() {
    let shop = Shop::new().await;
    let customer = Uuid::new_v4();
    let mut expected_revenue = 0i64;
    let mut expected_units = 0i64;
    for i in 0..30i64 {
        let order = Uuid::new_v4();
        let q = (i % 3 + 1) as u32;
        let price = 1_000 + i;
        shop.place(
            order,
            customer,
            &[("SKU-A", q, price)],
            "2026-04-01T09:00:00Z",
        )
        .await;
        shop.confirm(order, &["SKU-A"], price * i64::from(q)).await;
        expected_revenue += price * i64::from(q);
        expected_units += i64::from(q);
    }
    let head = shop.head().await;

    // Small batches; abort the worker after it made some progress, several times.
    for _ in 0..3 {
        let worker = RunningProjection::start(&shop, "sales", 7);
        tokio::time::sleep(Duration::from_millis(150)).await;
        worker.handle.abort();
        let _ = worker.handle.await;
    }
    let worker = RunningProjection::start(&shop, "sales", 7);
    shop.wait_for(&["sales"], head).await;
    worker.stop().await;

    let (orders, units, revenue): (i64, i64, i64) = sqlx::query_as(
        "SELECT orders, units, revenue_amount FROM read.sales_daily WHERE day = '2026-04-01'",
    )
    .fetch_one(&shop.db.pool)
    .await
    .unwrap();
    assert_eq!(orders, 30);
    assert_eq!(units, expected_units);
    assert_eq!(revenue, expected_revenue);
    let sku: (i64, i64) =
        sqlx::query_as("SELECT units, revenue_amount FROM read.sales_by_sku WHERE sku = 'SKU-A'")
            .fetch_one(&shop.db.pool)
            .await
            .unwrap();
    assert_eq!(sku, (expected_units, expected_revenue));
}

#[tokio::test]
async fn redelivered_batches_and_catch_up_apply_nothing_twice() {
    let shop = Shop::new().await;
    let customer = Uuid::new_v4();
    for _ in 0..5 {
        let order = Uuid::new_v4();
        shop.place(
            order,
            customer,
            &[("SKU-B", 2, 500)],
            "2026-04-02T09:00:00Z",
        )
        .await;
        shop.confirm(order, &["SKU-B"], 1_000).await;
    }
    let pool = &shop.db.pool;
    let sales = mercato_projections::projection::find("sales").unwrap();
    shop.settled_log(mercato_event_store::Position::START).await;
    // The same log applied three times (catch-up from the log, then a full "redelivery").
    mercato_projections::catch_up(pool, &*sales, "read", 4)
        .await
        .unwrap();
    let events = mercato_event_store::LogReader::new(pool.clone())
        .read(
            mercato_event_store::Position::START,
            &Default::default(),
            10_000,
        )
        .await
        .unwrap();
    let again = mercato_projections::apply_batch(pool, &*sales, "read", &events)
        .await
        .unwrap();
    assert_eq!(again.applied, 0);
    let revenue: i64 =
        sqlx::query_scalar("SELECT revenue_amount FROM read.sales_daily WHERE day = '2026-04-02'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(revenue, 5_000);

    let order = Uuid::new_v4();
    shop.place(
        order,
        customer,
        &[("SKU-B", 1, 500)],
        "2026-04-02T10:00:00Z",
    )
    .await;
    shop.order_cmd(
        order,
        serde_json::json!({"RecordStockReserved": {"sku": "SKU-B"}}),
    )
    .await;
    let tail = shop.settled_log(events.last().unwrap().position).await;
    assert_eq!(tail.len(), 2);
    // An event whose predecessor was not delivered: the predecessor comes from the log.
    let healed = mercato_projections::apply_batch(pool, &*sales, "read", &tail[1..])
        .await
        .unwrap();
    assert_eq!(healed.applied, 2);
    let again = mercato_projections::apply_batch(pool, &*sales, "read", &tail)
        .await
        .unwrap();
    assert_eq!(again.applied, 0);
}
