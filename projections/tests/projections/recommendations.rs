//! The recommendations read model: what counts (confirmed orders, once) and what does not
//! (orders cancelled before confirmation), with sales applied before a product's creation.

use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::{RunningProjection, Shop};

async fn pairs(pool: &PgPool) -> Vec<(String, String, i64)> {
    sqlx::query_as(
        "SELECT sku, other_sku, orders FROM read.recommendation_pairs ORDER BY sku, other_sku",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn products(pool: &PgPool) -> Vec<(String, Vec<String>, i64)> {
    sqlx::query_as("SELECT sku, category, units FROM read.recommendation_products ORDER BY sku")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn confirmed_orders_count_once_and_orders_cancelled_before_confirmation_never() {
    let shop = Shop::new().await;
    let customer = Uuid::new_v4();
    // A sale of A before A exists: its category arrives later.
    let first = Uuid::new_v4();
    shop.place(
        first,
        customer,
        &[("A", 3, 100), ("B", 1, 100)],
        "2026-05-01T10:00:00Z",
    )
    .await;
    shop.confirm(first, &["A", "B"], 400).await;
    shop.product("A", "Mug A", "Acme", &["kitchen", "mugs"], 100, "a mug")
        .await;
    shop.product("B", "Mug B", "Acme", &["kitchen", "mugs"], 100, "a mug")
        .await;
    // Cancelled after confirmation: left counted (the module documents why).
    shop.order_cmd(
        first,
        json!({"CancelOrder": {"reason": "customer_request"}}),
    )
    .await;
    shop.settle_refunds(first).await;
    // Cancelled before confirmation: nothing.
    let cancelled = Uuid::new_v4();
    shop.place(
        cancelled,
        customer,
        &[("A", 5, 100), ("C", 1, 100)],
        "2026-05-02T10:00:00Z",
    )
    .await;
    shop.order_cmd(
        cancelled,
        json!({"CancelOrder": {"reason": "customer_request"}}),
    )
    .await;
    // Placed, not confirmed yet: its lines wait.
    let waiting = Uuid::new_v4();
    shop.place(
        waiting,
        customer,
        &[("B", 1, 100), ("C", 1, 100)],
        "2026-05-03T10:00:00Z",
    )
    .await;

    let head = shop.head().await;
    let worker = RunningProjection::start(&shop, "recommendations", 3);
    shop.wait_for(&["recommendations"], head).await;
    let pool = &shop.db.pool;
    assert_eq!(
        pairs(pool).await,
        [("A".into(), "B".into(), 1), ("B".into(), "A".into(), 1)]
    );
    let mugs = vec!["kitchen".to_owned(), "mugs".to_owned()];
    assert_eq!(
        products(pool).await,
        [("A".into(), mugs.clone(), 3), ("B".into(), mugs, 1)]
    );
    let waiting_rows: Vec<Uuid> =
        sqlx::query_scalar("SELECT order_id FROM read.recommendation_pending_orders")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(waiting_rows, [waiting]);

    // Once confirmed, the waiting order counts, and only once.
    shop.confirm(waiting, &["B", "C"], 200).await;
    let head = shop.head().await;
    shop.wait_for(&["recommendations"], head).await;
    assert_eq!(
        pairs(pool).await,
        [
            ("A".into(), "B".into(), 1),
            ("B".into(), "A".into(), 1),
            ("B".into(), "C".into(), 1),
            ("C".into(), "B".into(), 1)
        ]
    );
    let units: Vec<i64> = products(pool).await.into_iter().map(|p| p.2).collect();
    assert_eq!(units, [3, 2, 1], "A, B, C (C never created: no category)");
    worker.stop().await;
}
