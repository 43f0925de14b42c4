//! Guest checkout through HTTP with the order process running: a guest checks out with an
//! email, reads and cancels the order with its order token; a signed-in buyer gives none.

use mercato_aggregates::order::OrderStatus;
use reqwest::Method;
use serde_json::json;

use crate::harness::{checkout_body, Env};
use crate::lifecycle::{level, payment_money};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_checks_out_reads_and_cancels_with_the_order_token() {
    let env = Env::start().await;
    let admin = env.admin().await;
    env.product(&admin, "HAT-1", 3).await;
    let (cart, cart_token) = env.anonymous_cart().await;
    let with_cart = [("mercato-cart-token", cart_token.as_str())];
    let (s, b) = env
        .request(
            Method::POST,
            &format!("/v1/carts/{cart}/items"),
            None,
            &with_cart,
            Some(json!({"sku": "HAT-1", "quantity": 2})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let mut body = checkout_body("tok_visa");
    body["email"] = json!("guest@example.com");
    // Storefront forms send empty strings for empty optional fields.
    body["shipping_address"]["line2"] = json!("");
    let (s, b) = env
        .request(
            Method::POST,
            &format!("/v1/carts/{cart}/checkout"),
            None,
            &with_cart,
            Some(body.clone()),
        )
        .await;
    assert_eq!(s, 202, "{b}");
    let order = b["order_id"].as_str().unwrap().to_owned();
    let order_token = b["order_token"].as_str().unwrap().to_owned();
    // A retry (the first answer lost) gets the same order and token.
    let (s, again) = env
        .request(
            Method::POST,
            &format!("/v1/carts/{cart}/checkout"),
            None,
            &with_cart,
            Some(body),
        )
        .await;
    assert_eq!(s, 202, "{again}");
    assert_eq!(
        (again["order_id"].as_str(), again["order_token"].as_str()),
        (Some(order.as_str()), Some(order_token.as_str()))
    );
    let confirmed = env.settled(&order).await;
    assert_eq!(confirmed.status(), OrderStatus::Confirmed);
    assert_eq!(confirmed.customer_id(), None);

    // The confirmation email goes to the guest.
    env.eventually("the guest is emailed", async || {
        env.emails_to(&order, "order_confirmed", "guest@example.com")
            .await
            == 1
    })
    .await;

    let cancel = format!("/v1/orders/{order}/cancel");
    let (s, _) = env.request(Method::POST, &cancel, None, &[], None).await;
    assert_eq!(s, 401);
    let (s, _) = env
        .request(
            Method::POST,
            &cancel,
            None,
            &[("mercato-order-token", "not-the-token")],
            None,
        )
        .await;
    assert_eq!(s, 403);
    let (_, eve) = env.customer("eve@example.com").await;
    let (s, _) = env
        .request(Method::POST, &cancel, Some(&eve), &[], None)
        .await;
    assert_eq!(s, 403);
    let (s, b) = env
        .request(
            Method::POST,
            &cancel,
            None,
            &[("mercato-order-token", &order_token)],
            None,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    env.eventually("the guest's money and stock come back", async || {
        payment_money(&env, &order).await == (2500, 2500)
            && level(&env, "HAT-1", "main").await == (3, 0)
    })
    .await;
    let actor: String = sqlx::query_scalar(
        "SELECT metadata ->> 'actor' FROM events WHERE aggregate_id = $1 AND event_type = 'OrderCancelled'",
    )
    .bind(&order)
    .fetch_one(&env.deps.pool)
    .await
    .unwrap();
    assert_eq!(actor, format!("guest:{order}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_in_checkout_takes_no_email_and_a_guest_needs_a_valid_one() {
    let env = Env::with(mercato_command_api::CommandApiConfig::for_tests(), false).await;
    let admin = env.admin().await;
    env.product(&admin, "CAP-1", 3).await;
    let (_, ada) = env.customer("ada@example.com").await;
    let cart = env.cart_with(&ada, "CAP-1", 1).await;
    let mut body = checkout_body("tok_visa");
    body["email"] = json!("other@example.com");
    let (s, b) = env
        .post(&format!("/v1/carts/{cart}/checkout"), Some(&ada), body)
        .await;
    assert_eq!(
        (s, b["errors"][0]["code"].as_str()),
        (422, Some("email_not_allowed")),
        "{b}"
    );
    let (s, b) = env.post("/v1/carts", None, json!({})).await;
    assert_eq!(s, 201, "{b}");
    let anon = b["id"].as_str().unwrap().to_owned();
    let token = b["cart_token"].as_str().unwrap().to_owned();
    let mut body = checkout_body("tok_visa");
    body["email"] = json!("not an email");
    let (s, b) = env
        .request(
            Method::POST,
            &format!("/v1/carts/{anon}/checkout"),
            None,
            &[("mercato-cart-token", &token)],
            Some(body),
        )
        .await;
    assert_eq!(
        (s, b["errors"][0]["field"].as_str()),
        (422, Some("email")),
        "{b}"
    );
    let (s, b) = env
        .post(
            &format!("/v1/carts/{cart}/checkout"),
            Some(&admin),
            checkout_body("tok_visa"),
        )
        .await;
    assert_eq!(s, 403, "{b}");
}
