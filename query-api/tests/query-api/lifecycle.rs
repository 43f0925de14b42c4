//! The order's life as the read side shows it: the order view and the stock view after each
//! step (partial shipment, delivery, cancellation of the rest, return, refund), the returns
//! list, sales with refunds as negative revenue, and a guest reading their order with its
//! token.

use serde_json::{json, Value};

use crate::stack::{checkout_body, Stack};

const ORDER_TOKEN: &str = "Mercato-Order-Token";

/// (on hand, reserved, available) of `warehouse` in a stock view.
fn warehouse(stock: &Value, warehouse: &str) -> (i64, i64, i64) {
    let w = stock["warehouses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["warehouse"] == warehouse)
        .unwrap_or_else(|| panic!("no {warehouse} in {stock}"));
    (
        w["on_hand"].as_i64().unwrap(),
        w["reserved"].as_i64().unwrap(),
        w["available"].as_i64().unwrap(),
    )
}

fn line<'a>(order: &'a Value, sku: &str) -> &'a Value {
    order["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["sku"] == sku)
        .unwrap_or_else(|| panic!("no line {sku} in {order}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_order_and_stock_views_follow_every_step_of_the_orders_life() {
    let stack = Stack::start().await;
    let admin = stack.admin().await;
    stack
        .product(&admin, "LIFE-1", "Lamp", "Acme", &["home"], 1000, "A lamp")
        .await;
    stack
        .product(&admin, "LIFE-2", "Bulb", "Acme", &["home"], 500, "A bulb")
        .await;
    stack.receive(&admin, "LIFE-1", "main", 5).await;
    stack.receive(&admin, "LIFE-1", "east", 3).await;
    stack.receive(&admin, "LIFE-2", "main", 10).await;
    let (_, ada, _) = stack.customer("ada@example.com", "Ada Lovelace").await;

    let cart = stack.ok(201, "/v1/carts", Some(&ada), json!({})).await;
    let cart = cart.body["id"].as_str().unwrap().to_owned();
    for (sku, quantity) in [("LIFE-1", 2), ("LIFE-2", 4)] {
        stack
            .ok(
                200,
                &format!("/v1/carts/{cart}/items"),
                Some(&ada),
                json!({"sku": sku, "quantity": quantity}),
            )
            .await;
    }
    let placed = stack
        .ok(
            202,
            &format!("/v1/carts/{cart}/checkout"),
            Some(&ada),
            checkout_body("tok_visa"),
        )
        .await;
    let order = placed.body["order_id"].as_str().unwrap().to_owned();
    let path = format!("/v1/orders/{order}");
    stack
        .eventually(&path, Some(&ada), |o| o["payment"]["state"] == "captured")
        .await;
    let stock = stack
        .eventually("/v1/stock/LIFE-1", None, |s| s["available"] == 6)
        .await;
    assert_eq!(warehouse(&stock, "main"), (5, 2, 3));

    // A first parcel: both lamps and one bulb.
    let shipped = stack
        .ok(
            200,
            &format!("/v1/orders/{order}/shipments"),
            Some(&admin),
            json!({"tracking_number": "P1", "carrier": "DHL",
                   "lines": [{"sku": "LIFE-1", "quantity": 2}, {"sku": "LIFE-2", "quantity": 1}]}),
        )
        .await;
    let view = stack
        .read_after(&path, Some(&ada), &shipped.position())
        .await;
    assert_eq!(view["status"], "partially_shipped");
    assert_eq!(line(&view, "LIFE-1")["shipped_quantity"], 2);
    assert_eq!(line(&view, "LIFE-2")["shipped_quantity"], 1);
    assert_eq!(view["shipments"][0]["tracking_number"], "P1");
    assert_eq!(view["shipments"][0]["carrier"], "DHL");
    assert!(view["shipments"][0]["shipped_at"].is_string());
    let stock = stack
        .eventually("/v1/stock/LIFE-1", None, |s| warehouse(s, "main").0 == 3)
        .await;
    assert_eq!(warehouse(&stock, "main"), (3, 0, 3));
    assert_eq!(warehouse(&stock, "east"), (3, 0, 3));
    let stock = stack
        .eventually("/v1/stock/LIFE-2", None, |s| warehouse(s, "main").0 == 9)
        .await;
    assert_eq!(warehouse(&stock, "main"), (9, 3, 6));

    // The parcel arrives; three bulbs are still to ship.
    let delivered = stack
        .ok(
            200,
            &format!("/v1/orders/{order}/deliveries"),
            Some(&admin),
            json!({"tracking_number": "P1"}),
        )
        .await;
    let view = stack
        .read_after(&path, Some(&ada), &delivered.position())
        .await;
    assert_eq!(view["status"], "partially_shipped");
    assert_eq!(line(&view, "LIFE-1")["delivered_quantity"], 2);
    assert!(view["shipments"][0]["delivered_at"].is_string());

    // The customer cancels the rest: the three bulbs are released and refunded.
    stack
        .ok(
            200,
            &format!("/v1/orders/{order}/cancel"),
            Some(&ada),
            json!({}),
        )
        .await;
    let view = stack
        .eventually(&path, Some(&ada), |o| {
            o["payment"]["refunded"]["amount"] == 1500
        })
        .await;
    assert_eq!(view["status"], "partially_refunded", "{view}");
    assert_eq!(line(&view, "LIFE-2")["cancelled_quantity"], 3);
    assert_eq!(line(&view, "LIFE-2")["refunded_quantity"], 3);
    assert_eq!(view["refunds"][0]["reason"], "cancellation");
    assert_eq!(view["refunds"][0]["status"], "refunded");
    assert_eq!(view["payment"]["refund_pending"]["amount"], 0);
    let stock = stack
        .eventually("/v1/stock/LIFE-2", None, |s| warehouse(s, "main").1 == 0)
        .await;
    assert_eq!(warehouse(&stock, "main"), (9, 0, 9));

    // A lamp comes back, restocked in `east`.
    let returned = stack
        .ok(
            201,
            &format!("/v1/orders/{order}/returns"),
            Some(&ada),
            json!({"lines": [{"sku": "LIFE-1", "quantity": 1}], "reason": "too bright"}),
        )
        .await;
    let return_id = returned.body["return_id"].as_str().unwrap().to_owned();
    let view = stack
        .read_after(&path, Some(&ada), &returned.position())
        .await;
    assert_eq!(view["returns"][0]["status"], "requested");
    assert_eq!(view["returns"][0]["reason"], "too bright");
    let list = stack
        .read_after(
            "/v1/admin/returns?status=requested",
            Some(&admin),
            &returned.position(),
        )
        .await;
    assert_eq!(list["items"][0]["return_id"], return_id.as_str());
    assert_eq!(
        stack.get("/v1/admin/returns", Some(&ada), &[]).await.status,
        403
    );
    stack
        .ok(
            200,
            &format!("/v1/returns/{return_id}/receive"),
            Some(&admin),
            json!({"warehouse": "east", "lines": [{"sku": "LIFE-1", "quantity": 1, "restock": true}]}),
        )
        .await;
    let view = stack
        .eventually(&path, Some(&ada), |o| {
            o["returns"][0]["status"] == "refunded"
        })
        .await;
    assert_eq!(view["payment"]["refunded"]["amount"], 2500);
    assert_eq!(line(&view, "LIFE-1")["returned_quantity"], 1);
    assert_eq!(line(&view, "LIFE-1")["refunded_quantity"], 1);
    assert_eq!(view["returns"][0]["lines"][0]["restocked"], 1);
    assert_eq!(view["returns"][0]["refund"]["amount"], 1000);
    let stock = stack
        .eventually("/v1/stock/LIFE-1", None, |s| warehouse(s, "east").0 == 4)
        .await;
    assert_eq!(warehouse(&stock, "east"), (4, 0, 4));

    // And a goodwill gesture of 1.00.
    stack
        .ok(
            202,
            &format!("/v1/orders/{order}/refunds"),
            Some(&admin),
            json!({"amount": {"amount": 100, "currency": "EUR"}}),
        )
        .await;
    let view = stack
        .eventually(&path, Some(&ada), |o| {
            o["payment"]["refunded"]["amount"] == 2600
        })
        .await;
    assert_eq!(view["payment"]["state"], "partially_refunded");
    // What the customer keeps (a lamp and a bulb, less the gesture) is what they paid.
    let captured = view["payment"]["captured"]["amount"].as_i64().unwrap();
    assert_eq!(captured - 2600, 1000 + 500 - 100);

    // Sales: revenue on confirmation, refunds as negative revenue per day and per SKU.
    let today = chrono::Utc::now().date_naive();
    let sales = stack
        .eventually(
            &format!("/v1/admin/sales?from={today}&to={today}"),
            Some(&admin),
            |s| s["days"][0]["refunded"]["amount"] == 2600,
        )
        .await;
    assert_eq!(sales["days"][0]["revenue"]["amount"], 4000, "{sales}");
    assert_eq!(sales["days"][0]["net"]["amount"], 1400);
    let product = |sku: &str| -> Value {
        sales["top_products"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["sku"] == sku)
            .cloned()
            .unwrap_or_else(|| panic!("no {sku} in {sales}"))
    };
    assert_eq!(product("LIFE-2")["refunded_units"], 3);
    assert_eq!(product("LIFE-2")["refunded"]["amount"], 1500);
    assert_eq!(product("LIFE-1")["refunded_units"], 1);
    assert_eq!(product("LIFE-1")["net"]["amount"], 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_reads_their_order_with_its_token_and_nobody_else_does() {
    let stack = Stack::start().await;
    let admin = stack.admin().await;
    stack
        .product(&admin, "GUEST-1", "Scarf", "Acme", &["wear"], 2000, "Wool")
        .await;
    stack.receive(&admin, "GUEST-1", "main", 2).await;
    let cart = stack.ok(201, "/v1/carts", None, json!({})).await;
    let cart_id = cart.body["id"].as_str().unwrap().to_owned();
    let cart_token = cart.body["cart_token"].as_str().unwrap().to_owned();
    let a = stack
        .post_as_cart(
            &format!("/v1/carts/{cart_id}/items"),
            &cart_token,
            json!({"sku": "GUEST-1", "quantity": 1}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let mut body = checkout_body("tok_visa");
    body["email"] = json!("guest@example.com");
    let placed = stack
        .post_as_cart(&format!("/v1/carts/{cart_id}/checkout"), &cart_token, body)
        .await;
    assert_eq!(placed.status, 202, "{}", placed.body);
    let order = placed.body["order_id"].as_str().unwrap().to_owned();
    let token = placed.body["order_token"].as_str().unwrap().to_owned();
    let path = format!("/v1/orders/{order}");
    assert_eq!(stack.get(&path, None, &[]).await.status, 401);
    let a = stack
        .get(
            &path,
            None,
            &[
                (ORDER_TOKEN, &token),
                ("Mercato-Min-Position", &placed.position()),
            ],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["guest"], true);
    assert_eq!(a.body["customer_id"], Value::Null);
    assert_eq!(
        stack
            .get(&path, None, &[(ORDER_TOKEN, "forged")])
            .await
            .status,
        403
    );
    let (_, eve, _) = stack.customer("eve@example.com", "Eve").await;
    assert_eq!(stack.get(&path, Some(&eve), &[]).await.status, 403);
    assert_eq!(stack.get(&path, Some(&admin), &[]).await.status, 200);
}
