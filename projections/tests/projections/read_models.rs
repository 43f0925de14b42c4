//! Events from real aggregate commands, relayed through JetStream, show up in every read
//! model with the values they carry.

use serde_json::json;
use sqlx::Row;
use uuid::Uuid;

use crate::support::{address, start_all, Shop};

#[tokio::test]
async fn every_read_model_reflects_the_commands() {
    let shop = Shop::new().await;
    let workers = start_all(&shop);

    shop.product(
        "HP-1",
        "Wireless Headphones",
        "Sonix",
        &["audio", "headphones"],
        9_999,
        "Noise cancelling",
    )
    .await;
    shop.product_cmd(
        "HP-1",
        json!({"ChangeProductPrice": {"price": {"amount": 8_999, "currency": "EUR"}}}),
    )
    .await;
    shop.product(
        "SP-1",
        "Bluetooth Speaker",
        "Sonix",
        &["audio", "speakers"],
        4_999,
        "Loud",
    )
    .await;
    shop.receive("HP-1", "berlin", 10).await;
    shop.receive("HP-1", "paris", 5).await;

    let customer = Uuid::new_v4();
    shop.customer_cmd(customer, json!({"RegisterCustomer": {"customer_id": customer, "email": "ada@example.com",
        "name": "Ada Lovelace", "password_hash": "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"}})).await;
    shop.customer_cmd(
        customer,
        json!({"ChangeCustomerAddress": {"address": address()}}),
    )
    .await;

    let cart = Uuid::new_v4();
    shop.cart(cart, Some(customer), &[("HP-1", 2), ("SP-1", 1)])
        .await;
    shop.cart_cmd(
        cart,
        json!({"ChangeCartItemQuantity": {"sku": "SP-1", "quantity": 3}}),
    )
    .await;
    // An anonymous cart whose shopper removes a line, then adds it back, then removes another.
    let second = Uuid::new_v4();
    shop.cart(second, None, &[("HP-1", 1), ("SP-1", 2)]).await;
    shop.cart_cmd(second, json!({"RemoveCartItem": {"sku": "SP-1"}}))
        .await;
    shop.cart_cmd(
        second,
        json!({"AddCartItem": {"sku": "SP-1", "quantity": 1}}),
    )
    .await;
    shop.cart_cmd(second, json!({"RemoveCartItem": {"sku": "HP-1"}}))
        .await;

    // A confirmed, shipped and partly refunded order, and a cancelled one.
    let o1 = Uuid::new_v4();
    shop.place(
        o1,
        customer,
        &[("HP-1", 2, 8_999), ("SP-1", 1, 4_999)],
        "2026-03-01T10:00:00Z",
    )
    .await;
    shop.reserve("HP-1", o1, 2).await;
    shop.confirm(o1, &["HP-1", "SP-1"], 22_997).await;
    shop.ship_and_deliver(
        o1,
        "TRK-1",
        json!([{"sku": "HP-1", "quantity": 2}, {"sku": "SP-1", "quantity": 1}]),
    )
    .await;
    shop.refund(o1, 4_999).await;
    let o2 = Uuid::new_v4();
    shop.place(o2, customer, &[("SP-1", 4, 4_999)], "2026-03-01T11:00:00Z")
        .await;
    shop.order_cmd(o2, json!({"CancelOrder": {"reason": "customer_request"}}))
        .await;
    // Confirmed on another day, then cancelled: its refund pays both units back.
    let o3 = Uuid::new_v4();
    shop.place(o3, customer, &[("SP-1", 2, 4_999)], "2026-03-03T09:00:00Z")
        .await;
    shop.confirm(o3, &["SP-1"], 9_998).await;
    shop.order_cmd(o3, json!({"CancelOrder": {"reason": "customer_request"}}))
        .await;
    shop.settle_refunds(o3).await;

    shop.customer_cmd(
        customer,
        json!({"ForgetCustomer": {"requested_at": "2026-03-02T00:00:00Z"}}),
    )
    .await;
    let head = shop.head().await;
    shop.wait_for(
        &["catalog", "stock", "carts", "orders", "customers", "sales"],
        head,
    )
    .await;
    let pool = &shop.db.pool;

    // Catalog and stock.
    let p = sqlx::query(
        "SELECT name, brand, category, price_amount, status FROM read.products WHERE sku = 'HP-1'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(p.get::<String, _>("name"), "Wireless Headphones");
    assert_eq!(
        p.get::<Vec<String>, _>("category"),
        vec!["audio", "headphones"]
    );
    assert_eq!(p.get::<i64, _>("price_amount"), 8_999);
    assert_eq!(p.get::<String, _>("status"), "published");
    let total: i64 =
        sqlx::query_scalar("SELECT total_available FROM read.stock WHERE sku = 'HP-1'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(total, 13, "15 received, 2 reserved");
    let levels: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT warehouse, on_hand, reserved, available FROM read.stock_levels WHERE sku = 'HP-1' ORDER BY warehouse")
        .fetch_all(pool).await.unwrap();
    assert_eq!(
        levels,
        vec![("berlin".into(), 10, 2, 8), ("paris".into(), 5, 0, 5)]
    );

    // Cart.
    let c =
        sqlx::query("SELECT status, total_amount, customer_id FROM read.carts WHERE cart_id = $1")
            .bind(cart)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(c.get::<String, _>("status"), "open");
    assert_eq!(c.get::<i64, _>("total_amount"), 2 * 1000 + 3 * 1000);
    let lines: Vec<(String, i32, i64)> = sqlx::query_as(
        "SELECT sku, quantity, line_total_amount FROM read.cart_lines WHERE cart_id = $1 ORDER BY sku")
        .bind(cart).fetch_all(pool).await.unwrap();
    assert_eq!(
        lines,
        vec![("HP-1".into(), 2, 2000), ("SP-1".into(), 3, 3000)]
    );
    let lines: Vec<(String, i32, i64)> = sqlx::query_as(
        "SELECT sku, quantity, line_total_amount FROM read.cart_lines WHERE cart_id = $1 ORDER BY sku")
        .bind(second).fetch_all(pool).await.unwrap();
    assert_eq!(lines, vec![("SP-1".into(), 1, 1000)]);
    let total: i64 = sqlx::query_scalar("SELECT total_amount FROM read.carts WHERE cart_id = $1")
        .bind(second)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(total, 1000);

    // Orders.
    let o = sqlx::query("SELECT * FROM read.orders WHERE order_id = $1")
        .bind(o1)
        .fetch_one(pool)
        .await
        .unwrap();
    // A refund after delivery is a status of its own.
    assert_eq!(o.get::<String, _>("status"), "partially_refunded");
    assert_eq!(o.get::<i64, _>("total_amount"), 22_997);
    assert_eq!(o.get::<String, _>("payment_state"), "partially_refunded");
    assert_eq!(o.get::<i64, _>("captured_amount"), 22_997);
    assert_eq!(o.get::<i64, _>("refunded_amount"), 4_999);
    assert_eq!(o.get::<String, _>("shipment_state"), "delivered");
    assert_eq!(o.get::<Vec<String>, _>("tracking_numbers"), vec!["TRK-1"]);
    let o = sqlx::query("SELECT status, cancellation_reason FROM read.orders WHERE order_id = $1")
        .bind(o2)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(o.get::<String, _>("status"), "cancelled");
    assert_eq!(
        o.get::<serde_json::Value, _>("cancellation_reason"),
        json!("customer_request")
    );
    let history: i64 =
        sqlx::query_scalar("SELECT count(*) FROM read.orders WHERE customer_id = $1")
            .bind(customer)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(history, 3);
    let o = sqlx::query("SELECT status, payment_state, refunded_amount, refunds FROM read.orders WHERE order_id = $1")
        .bind(o3)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(o.get::<String, _>("status"), "cancelled");
    assert_eq!(o.get::<String, _>("payment_state"), "refunded");
    assert_eq!(o.get::<i64, _>("refunded_amount"), 9_998);
    let refunds = o.get::<serde_json::Value, _>("refunds");
    assert_eq!(refunds[0]["reason"], "cancellation");
    assert_eq!(refunds[0]["status"], "refunded");
    assert_eq!(refunds[0]["lines"], json!([{"sku": "SP-1", "quantity": 2}]));
    let units: (i32, i32, i32) = sqlx::query_as(
        "SELECT shipped_quantity, cancelled_quantity, refunded_quantity FROM read.order_lines WHERE order_id = $1")
        .bind(o3).fetch_one(pool).await.unwrap();
    assert_eq!(units, (0, 2, 2));

    // Customer erased.
    let cu = sqlx::query(
        "SELECT email, name, address, forgotten FROM read.customers WHERE customer_id = $1",
    )
    .bind(customer)
    .fetch_one(pool)
    .await
    .unwrap();
    assert!(cu.get::<bool, _>("forgotten"));
    assert_eq!(cu.get::<Option<String>, _>("email"), None);
    assert_eq!(cu.get::<Option<String>, _>("name"), None);
    assert_eq!(cu.get::<Option<serde_json::Value>, _>("address"), None);

    let shipped: Vec<(i32, String, i32, i32, i32)> = sqlx::query_as(
        "SELECT line_no, sku, quantity, shipped_quantity, delivered_quantity FROM read.order_lines WHERE order_id = $1 ORDER BY line_no")
        .bind(o1).fetch_all(pool).await.unwrap();
    assert_eq!(
        shipped,
        vec![(1, "HP-1".into(), 2, 2, 2), (2, "SP-1".into(), 1, 1, 1)]
    );

    // Sales: revenue of confirmed orders on their day; refunds as negative revenue on the day
    // they were made, per SKU for the units they pay back (the merchant's 49.99 has none).
    let today = chrono::Utc::now().date_naive();
    let days: Vec<(chrono::NaiveDate, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT day, orders, units, revenue_amount, refunded_amount FROM read.sales_daily ORDER BY day")
        .fetch_all(pool).await.unwrap();
    let day = |d: &str| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
    assert_eq!(
        days,
        vec![
            (day("2026-03-01"), 1, 3, 22_997, 0),
            (day("2026-03-03"), 1, 2, 9_998, 0),
            (today, 0, 0, 0, 4_999 + 9_998),
        ]
    );
    let by_sku: Vec<(chrono::NaiveDate, String, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT day, sku, units, revenue_amount, refunded_units, refunded_amount FROM read.sales_by_sku ORDER BY day, sku")
        .fetch_all(pool).await.unwrap();
    assert_eq!(
        by_sku,
        vec![
            (day("2026-03-01"), "HP-1".into(), 2, 17_998, 0, 0),
            (day("2026-03-01"), "SP-1".into(), 1, 4_999, 0, 0),
            (day("2026-03-03"), "SP-1".into(), 2, 9_998, 0, 0),
            (today, "SP-1".into(), 0, 0, 2, 9_998),
        ]
    );
    let statuses: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, count(*) FROM read.sales_orders GROUP BY status ORDER BY status",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(
        statuses,
        vec![("cancelled".into(), 2), ("partially_refunded".into(), 1)]
    );

    // Status rows are live and carry the checkpoint.
    let states: Vec<(String, String)> =
        sqlx::query_as("SELECT name, state FROM read.projection_status ORDER BY name")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(states.len(), 8);
    assert!(states.iter().all(|(_, s)| s == "live"), "{states:?}");

    for w in workers {
        w.stop().await;
    }
}
