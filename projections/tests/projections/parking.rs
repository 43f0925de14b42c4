//! A poison event (a value a read model cannot hold, a payload that does not decode) is parked
//! with its error and the projection goes on with the events after it (ADR 0012): through
//! the live worker and through a rebuild, listed, counted, retried after a fix or skipped.

use mercato_nats::dead_letters::dead_letters;
use mercato_projections::parking::{self, Resolution};
use mercato_projections::rebuild::{rebuild, RebuildOptions};
use mercato_projections::status::status;
use mercato_projections::ProjectionError;
use serde_json::json;
use uuid::Uuid;

use crate::support::{RunningProjection, Shop};

const DAY: &str = "2026-05-04";
/// Two confirmed orders of this total on one day overflow the day's revenue (a bigint).
const HUGE: i64 = i64::MAX / 2 + 1;

async fn daily(shop: &Shop) -> (i64, i64) {
    sqlx::query_as("SELECT orders, revenue_amount FROM read.sales_daily WHERE day = $1::date")
        .bind(DAY)
        .fetch_one(&shop.db.pool)
        .await
        .unwrap()
}

async fn parked_count(shop: &Shop, name: &str) -> i64 {
    status(&shop.db.pool)
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap()
        .parked
}

#[tokio::test]
async fn an_overflowing_sum_is_parked_and_the_sales_projection_goes_on() {
    let shop = Shop::new().await;
    let customer = Uuid::new_v4();
    let at = format!("{DAY}T10:00:00Z");
    let (first, second, after) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    for order in [first, second] {
        shop.place(order, customer, &[("SKU-HUGE", 1, HUGE)], &at)
            .await;
        shop.confirm(order, &["SKU-HUGE"], HUGE).await;
    }
    // Events after the poison one, of another aggregate and of the same day.
    shop.place(after, customer, &[("SKU-A", 2, 500)], &at).await;
    shop.confirm(after, &["SKU-A"], 1_000).await;
    let head = shop.head().await;

    let worker = RunningProjection::start(&shop, "sales", 64);
    shop.wait_for(&["sales"], head).await;

    assert_eq!(daily(&shop).await, (2, HUGE + 1_000));
    let parked = parking::parked(&shop.db.pool, Some("sales")).await.unwrap();
    assert_eq!(parked.len(), 1, "{parked:?}");
    let poison = &parked[0];
    assert_eq!(poison.event_type, "OrderConfirmed");
    assert_eq!(poison.aggregate_id, second.to_string());
    assert!(
        poison.error.contains("out of range") || poison.error.contains("overflows"),
        "{}",
        poison.error
    );
    assert_eq!(parked_count(&shop, "sales").await, 1);
    // Nothing went to the dead-letter stream: the batch never failed.
    let letters = dead_letters(&shop.nats.js, &shop.nats.config, None, 10)
        .await
        .unwrap();
    assert!(letters.is_empty(), "{letters:?}");

    // The worker keeps applying new events.
    let later = Uuid::new_v4();
    shop.place(later, customer, &[("SKU-A", 1, 500)], &at).await;
    let head = shop.confirm(later, &["SKU-A"], 500).await.unwrap();
    shop.wait_for(&["sales"], head).await;
    assert_eq!(daily(&shop).await, (3, HUGE + 1_500));
    worker.stop().await;

    // A retry while the cause remains fails and leaves it parked.
    let err = parking::retry(&shop.db.pool, "sales", poison.event_id)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("out of range"), "{err}");
    assert_eq!(parked_count(&shop, "sales").await, 1);

    // A rebuild parks it again, in its shadow, and takes the list over with the tables.
    rebuild(&shop.db.pool, "sales", &RebuildOptions::default(), |_| {})
        .await
        .unwrap();
    assert_eq!(daily(&shop).await, (3, HUGE + 1_500));
    let again = parking::parked(&shop.db.pool, Some("sales")).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].event_id, poison.event_id);

    // After a fix (here: the operator moves the first huge order's revenue out of the way),
    // a retry applies it once and unparks it.
    for table in ["sales_daily", "sales_by_sku"] {
        sqlx::query(&format!(
            "UPDATE read.{table} SET revenue_amount = revenue_amount - $1 \
             WHERE day = $2::date AND revenue_amount >= $1"
        ))
        .bind(HUGE)
        .bind(DAY)
        .execute(&shop.db.pool)
        .await
        .unwrap();
    }
    let resolution = parking::retry(&shop.db.pool, "sales", poison.event_id)
        .await
        .unwrap();
    assert_eq!(resolution, Resolution::Applied);
    assert_eq!(daily(&shop).await, (4, HUGE + 1_500));
    assert_eq!(parked_count(&shop, "sales").await, 0);
    let err = parking::retry(&shop.db.pool, "sales", poison.event_id)
        .await
        .unwrap_err();
    assert!(matches!(err, ProjectionError::NotParked { .. }), "{err}");
}

#[tokio::test]
async fn an_undecodable_event_is_parked_and_can_be_skipped() {
    let shop = Shop::new().await;
    let customer = Uuid::new_v4();
    let (broken, fine) = (Uuid::new_v4(), Uuid::new_v4());
    let at = format!("{DAY}T10:00:00Z");
    shop.place(broken, customer, &[("SKU-A", 1, 500)], &at)
        .await;
    // An event no code can decode (written by hand, or by a bug fixed since).
    let poison: Uuid = sqlx::query_scalar(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload) \
         VALUES ('Order', $1, 2, 'OrderShipped', '1.1', $2) RETURNING event_id",
    )
    .bind(broken.to_string())
    .bind(json!({"OrderShipped": {"shipment_id": 42}}))
    .fetch_one(&shop.db.pool)
    .await
    .unwrap();
    shop.place(fine, customer, &[("SKU-B", 3, 700)], &at).await;
    let head = shop.head().await;

    let worker = RunningProjection::start(&shop, "orders", 64);
    shop.wait_for(&["orders"], head).await;
    worker.stop().await;

    let parked = parking::parked(&shop.db.pool, Some("orders"))
        .await
        .unwrap();
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!(parked[0].event_id, poison);
    assert!(
        parked[0].error.contains("cannot be decoded"),
        "{}",
        parked[0].error
    );
    // The events before and after it, of the same aggregate and of others, are applied.
    let orders: Vec<(Uuid, i64)> =
        sqlx::query_as("SELECT order_id, total_amount FROM read.orders ORDER BY total_amount")
            .fetch_all(&shop.db.pool)
            .await
            .unwrap();
    assert_eq!(orders, vec![(broken, 500), (fine, 2_100)]);

    assert_eq!(
        parking::skip(&shop.db.pool, "orders", poison)
            .await
            .unwrap(),
        Resolution::Skipped
    );
    assert_eq!(parked_count(&shop, "orders").await, 0);
    assert!(parking::skip(&shop.db.pool, "orders", poison)
        .await
        .is_err());
}
