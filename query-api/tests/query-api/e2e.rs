//! End to end over HTTP: writes through the command API, reads through the query API, with
//! the relay, the order process, every projection worker and the search consumer running.

use chrono::{Duration as Days, Utc};
use mercato_event_store::Position;
use serde_json::{json, Value};

use crate::stack::{checkout_body, Stack, CART_TOKEN};

fn sum(days: &Value, field: &str) -> i64 {
    days.as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let v = &d[field];
            v["amount"].as_i64().or_else(|| v.as_i64()).unwrap()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_model_serves_what_the_command_api_wrote() {
    let s = Stack::start().await;
    let admin = s.admin().await;

    // Catalog and stock.
    let published = s
        .product(
            &admin,
            "MUG-1",
            "Ceramic Mug",
            "Acme",
            &["kitchen", "mugs"],
            1250,
            "A mug",
        )
        .await;
    let p = s.read_after("/v1/products/MUG-1", None, &published).await;
    assert_eq!(p["name"], "Ceramic Mug");
    assert_eq!(p["brand"], "Acme");
    assert_eq!(p["category"], json!(["kitchen", "mugs"]));
    assert_eq!(p["price"], json!({"amount": 1250, "currency": "EUR"}));
    assert_eq!(p["status"], "published");
    assert_eq!(p["available"], 0);
    s.product(
        &admin,
        "TEA-1",
        "Green Tea",
        "Leaf",
        &["kitchen", "tea"],
        800,
        "Loose leaf",
    )
    .await;
    s.receive(&admin, "MUG-1", "main", 10).await;
    s.receive(&admin, "MUG-1", "berlin", 5).await;
    let received = s.receive(&admin, "TEA-1", "main", 20).await;
    let stock = s.read_after("/v1/stock/MUG-1", None, &received).await;
    assert_eq!(stock["sku"], "MUG-1");
    assert_eq!(stock["available"], 15);
    assert_eq!(
        stock["warehouses"],
        json!([
            {"warehouse": "berlin", "on_hand": 5, "reserved": 0, "available": 5},
            {"warehouse": "main", "on_hand": 10, "reserved": 0, "available": 10}
        ])
    );
    let p = s.read_after("/v1/products/MUG-1", None, &received).await;
    assert_eq!(p["available"], 15);
    let list = s.read_after("/v1/products?limit=10", None, &received).await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let tea = items.iter().find(|i| i["sku"] == "TEA-1").unwrap();
    assert_eq!(tea["price"], json!({"amount": 800, "currency": "EUR"}));
    assert_eq!(tea["available"], 20);
    let kitchen = s
        .read_after("/v1/products?brand=Acme&in_stock=true", None, &received)
        .await;
    assert_eq!(kitchen["items"].as_array().unwrap().len(), 1);

    // Customers.
    let (ada_id, ada, registered) = s.customer("ada@example.com", "Ada Lovelace").await;
    let (_bob_id, bob, _) = s.customer("bob@example.com", "Bob Babbage").await;
    let me = s
        .read_after("/v1/customers/me", Some(&ada), &registered)
        .await;
    assert_eq!(me["id"], ada_id.as_str());
    assert_eq!(me["email"], "ada@example.com");
    assert_eq!(me["name"], "Ada Lovelace");
    assert_eq!(s.get("/v1/customers/me", None, &[]).await.status, 401);

    // A customer's cart, by JWT.
    let cart = s
        .ok(201, "/v1/carts", Some(&ada), json!({"currency": "EUR"}))
        .await;
    let cart_id = cart.body["id"].as_str().unwrap().to_owned();
    s.ok(
        200,
        &format!("/v1/carts/{cart_id}/items"),
        Some(&ada),
        json!({"sku": "MUG-1", "quantity": 3}),
    )
    .await;
    let added = s
        .ok(
            200,
            &format!("/v1/carts/{cart_id}/items"),
            Some(&ada),
            json!({"sku": "TEA-1", "quantity": 1}),
        )
        .await
        .position();
    let view = s
        .read_after(&format!("/v1/carts/{cart_id}"), Some(&ada), &added)
        .await;
    assert_eq!(view["status"], "open");
    assert_eq!(view["customer_id"], ada_id.as_str());
    assert_eq!(view["total"], json!({"amount": 4550, "currency": "EUR"}));
    let mug = view["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["sku"] == "MUG-1")
        .unwrap();
    assert_eq!(mug["quantity"], 3);
    assert_eq!(
        mug["unit_price"],
        json!({"amount": 1250, "currency": "EUR"})
    );
    assert_eq!(
        mug["line_total"],
        json!({"amount": 3750, "currency": "EUR"})
    );
    let cart_path = format!("/v1/carts/{cart_id}");
    assert_eq!(s.get(&cart_path, Some(&bob), &[]).await.status, 403);
    assert_eq!(s.get(&cart_path, None, &[]).await.status, 401);
    assert_eq!(s.get(&cart_path, Some(&admin), &[]).await.status, 200);

    // An anonymous cart, by its Mercato-Cart-Token.
    let anon = s.ok(201, "/v1/carts", None, json!({})).await;
    let anon_id = anon.body["id"].as_str().unwrap().to_owned();
    let anon_token = anon.body["cart_token"].as_str().unwrap().to_owned();
    let a = s
        .post_as_cart(
            &format!("/v1/carts/{anon_id}/items"),
            &anon_token,
            json!({"sku": "TEA-1", "quantity": 2}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let anon_path = format!("/v1/carts/{anon_id}");
    let view = s
        .get(
            &anon_path,
            None,
            &[
                (CART_TOKEN, &anon_token),
                (crate::stack::MIN_POSITION, &a.position()),
            ],
        )
        .await;
    assert_eq!(view.status, 200, "{}", view.body);
    assert_eq!(view.body["customer_id"], Value::Null);
    assert_eq!(
        view.body["total"],
        json!({"amount": 1600, "currency": "EUR"})
    );
    assert_eq!(view.body["lines"][0]["quantity"], 2);
    assert_eq!(s.get(&anon_path, None, &[]).await.status, 401);
    let wrong = s
        .get(&anon_path, None, &[(CART_TOKEN, "not-the-token")])
        .await;
    assert_eq!(wrong.status, 403);

    // A paid checkout: confirmed, captured, stock committed, cart checked out.
    let placed = s
        .ok(
            202,
            &format!("/v1/carts/{cart_id}/checkout"),
            Some(&ada),
            checkout_body("tok_visa"),
        )
        .await;
    let order_id = placed.body["order_id"].as_str().unwrap().to_owned();
    let order_path = format!("/v1/orders/{order_id}");
    let order = s
        .read_after(&order_path, Some(&ada), &placed.position())
        .await;
    assert_eq!(order["id"], order_id.as_str());
    assert_eq!(order["total"], json!({"amount": 4550, "currency": "EUR"}));
    let order = s
        .eventually(&order_path, Some(&ada), |o| {
            o["status"] == "confirmed" && o["payment"]["state"] == "captured"
        })
        .await;
    assert_eq!(order["customer_id"], ada_id.as_str());
    assert_eq!(order["lines"].as_array().unwrap().len(), 2);
    assert_eq!(
        order["payment"]["captured"],
        json!({"amount": 4550, "currency": "EUR"})
    );
    assert_eq!(order["cancellation_reason"], Value::Null);
    assert_eq!(order["shipment"]["state"], "not_shipped");
    let cart = s
        .eventually(&cart_path, Some(&ada), |c| c["status"] == "checked_out")
        .await;
    assert_eq!(cart["order_id"], order_id.as_str());
    let stock = s
        .eventually("/v1/stock/MUG-1", None, |st| st["available"] == 12)
        .await;
    let by_warehouse: i64 = stock["warehouses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["available"].as_i64().unwrap())
        .sum();
    assert_eq!(by_warehouse, 12);

    // A declined checkout: cancelled with its reason, stock released.
    let declined_cart = s.ok(201, "/v1/carts", Some(&ada), json!({})).await;
    let declined_cart = declined_cart.body["id"].as_str().unwrap().to_owned();
    s.ok(
        200,
        &format!("/v1/carts/{declined_cart}/items"),
        Some(&ada),
        json!({"sku": "TEA-1", "quantity": 4}),
    )
    .await;
    let placed = s
        .ok(
            202,
            &format!("/v1/carts/{declined_cart}/checkout"),
            Some(&ada),
            checkout_body("tok_decline"),
        )
        .await;
    let declined_id = placed.body["order_id"].as_str().unwrap().to_owned();
    let declined = s
        .eventually(&format!("/v1/orders/{declined_id}"), Some(&ada), |o| {
            o["status"] == "cancelled"
        })
        .await;
    assert_eq!(declined["payment"]["state"], "declined");
    assert!(
        declined["cancellation_reason"]
            .to_string()
            .contains("card_declined"),
        "{}",
        declined["cancellation_reason"]
    );
    s.eventually("/v1/stock/TEA-1", None, |st| st["available"] == 19)
        .await;

    // Shipment and a partial refund, read back with their tokens.
    let shipped = s
        .ok(
            200,
            &format!("/v1/orders/{order_id}/shipments"),
            Some(&admin),
            json!({"tracking_number": "TRACK-1",
                   "lines": [{"sku": "MUG-1", "quantity": 3}, {"sku": "TEA-1", "quantity": 1}]}),
        )
        .await
        .position();
    let order = s.read_after(&order_path, Some(&ada), &shipped).await;
    assert_eq!(order["status"], "shipped");
    assert_eq!(order["shipment"]["state"], "shipped");
    assert_eq!(order["shipment"]["tracking_numbers"], json!(["TRACK-1"]));
    assert!(order["lines"]
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l["shipped_quantity"] == l["quantity"]));
    // A refund is requested on the order, made on the payment by the order process, then
    // recorded on the order: no consistency token covers the last step.
    let refunded = s
        .ok(
            202,
            &format!("/v1/orders/{order_id}/refunds"),
            Some(&admin),
            json!({"amount": {"amount": 1000, "currency": "EUR"}}),
        )
        .await
        .position();
    let order = s
        .eventually(&order_path, Some(&ada), |o| {
            o["payment"]["state"] == "partially_refunded"
        })
        .await;
    assert_eq!(
        order["payment"]["refunded"],
        json!({"amount": 1000, "currency": "EUR"})
    );

    // Order lists: own orders; the admin sees all; another customer sees none of Ada's.
    let mine = s.read_after("/v1/orders", Some(&ada), &refunded).await;
    let mut ids: Vec<&str> = mine["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let mut expected = vec![order_id.as_str(), declined_id.as_str()];
    expected.sort_unstable();
    assert_eq!(ids, expected);
    let bobs = s.read_after("/v1/orders", Some(&bob), &refunded).await;
    assert_eq!(bobs["items"], json!([]));
    let forbidden = s.get(&order_path, Some(&bob), &[]).await;
    assert!(
        [403, 404].contains(&forbidden.status),
        "{}",
        forbidden.status
    );
    assert_eq!(
        forbidden.headers["content-type"],
        "application/problem+json"
    );
    let all = s.read_after("/v1/orders", Some(&admin), &refunded).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    let one = s
        .read_after(
            &format!("/v1/orders?customer_id={ada_id}"),
            Some(&admin),
            &refunded,
        )
        .await;
    assert_eq!(one["items"].as_array().unwrap().len(), 2);
    // By status: the back office's lists.
    let cancelled = s
        .read_after("/v1/orders?status=cancelled", Some(&admin), &refunded)
        .await;
    assert_eq!(
        cancelled["items"].as_array().unwrap().len(),
        1,
        "{cancelled}"
    );
    assert_eq!(cancelled["items"][0]["id"], declined_id.as_str());
    assert_eq!(
        s.get("/v1/orders?status=lost", Some(&admin), &[])
            .await
            .status,
        400
    );
    assert_eq!(
        s.get(&format!("/v1/orders?customer_id={ada_id}"), Some(&bob), &[])
            .await
            .status,
        403
    );

    // Sales: exactly the confirmed order, its refund, and both orders by status.
    let today = Utc::now().date_naive();
    let sales_path = format!(
        "/v1/admin/sales?from={}&to={}&granularity=day",
        today - Days::days(1),
        today + Days::days(1)
    );
    let sales = s
        .eventually(&sales_path, Some(&admin), |v| {
            sum(&v["days"], "refunded") == 1000
        })
        .await;
    assert_eq!(sum(&sales["days"], "orders"), 1, "{sales}");
    assert_eq!(sum(&sales["days"], "units"), 4);
    assert_eq!(sum(&sales["days"], "revenue"), 4550);
    assert_eq!(sum(&sales["days"], "refunded"), 1000);
    assert_eq!(sum(&sales["days"], "net"), 3550);
    let top = sales["top_products"].as_array().unwrap();
    assert_eq!(top[0]["sku"], "MUG-1");
    assert_eq!(top[0]["units"], 3);
    assert_eq!(
        top[0]["revenue"],
        json!({"amount": 3750, "currency": "EUR"})
    );
    assert_eq!(top[1]["sku"], "TEA-1");
    assert_eq!(top[1]["units"], 1);
    assert_eq!(top[1]["revenue"], json!({"amount": 800, "currency": "EUR"}));
    let by_status = sales["orders_by_status"].as_object().unwrap();
    assert_eq!(by_status.values().filter_map(Value::as_i64).sum::<i64>(), 2);
    assert_eq!(by_status["cancelled"], 1);
    assert_eq!(s.get(&sales_path, Some(&ada), &[]).await.status, 403);

    // Projections: every one live and past the last write.
    let last: Position = refunded.parse().unwrap();
    let statuses = s
        .eventually("/v1/admin/projections", Some(&admin), |v| {
            v.as_array().unwrap().iter().all(|p| {
                p["state"] == "live"
                    && p["position"]
                        .as_str()
                        .and_then(|t| t.parse::<Position>().ok())
                        .is_some_and(|p| p >= last)
            })
        })
        .await;
    let mut names: Vec<&str> = statuses
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "carts",
            "catalog",
            "customers",
            "orders",
            "pricing",
            "recommendations",
            "sales",
            "search",
            "stock"
        ]
    );
    assert_eq!(
        s.get("/v1/admin/projections", Some(&ada), &[]).await.status,
        403
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_with_the_writes_consistency_token_always_sees_the_write() {
    let s = Stack::start().await;
    let admin = s.admin().await;
    s.product(
        &admin,
        "LAMP-1",
        "Desk Lamp",
        "Lumo",
        &["home", "lighting"],
        3_000,
        "Adjustable desk lamp",
    )
    .await;
    let (_, ada, _) = s.customer("ada@example.com", "Ada Lovelace").await;
    let cart = s.ok(201, "/v1/carts", Some(&ada), json!({})).await;
    let cart_id = cart.body["id"].as_str().unwrap().to_owned();

    // No sleeps: each read goes out right after its write, carrying the write's token.
    for i in 1..=15_i64 {
        let price = 3_000 + i;
        let changed = s
            .ok(
                200,
                "/v1/products/LAMP-1/price",
                Some(&admin),
                json!({"price": {"amount": price, "currency": "EUR"}}),
            )
            .await
            .position();
        let p = s.read_after("/v1/products/LAMP-1", None, &changed).await;
        assert_eq!(p["price"]["amount"], price, "iteration {i}");
        let hits = s
            .read_after("/v1/search?q=desk%20lamp", None, &changed)
            .await;
        assert_eq!(hits["hits"][0]["price"]["amount"], price, "iteration {i}");

        let received = s.receive(&admin, "LAMP-1", "main", 1).await;
        let stock = s.read_after("/v1/stock/LAMP-1", None, &received).await;
        assert_eq!(stock["available"], i, "iteration {i}");

        let added = s
            .ok(
                200,
                &format!("/v1/carts/{cart_id}/items"),
                Some(&ada),
                json!({"sku": "LAMP-1", "quantity": 1}),
            )
            .await
            .position();
        let view = s
            .read_after(&format!("/v1/carts/{cart_id}"), Some(&ada), &added)
            .await;
        assert_eq!(view["lines"][0]["quantity"], i, "iteration {i}");
    }
}
