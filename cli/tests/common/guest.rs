//! A guest's checkout over HTTP, as a storefront does it: shared by the test binaries that
//! drive a whole shop (`cli`, `tracing`). Writes go to `command`, reads to `query` (the same
//! URL behind the gateway).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Where the APIs answer.
pub struct Shop {
    pub http: reqwest::Client,
    pub command: String,
    pub query: String,
}

/// A placed order and the guest's token for it.
pub struct Placed {
    pub order_id: String,
    pub order_token: String,
}

impl Shop {
    /// The test admin's token (`admin@mercato.test` / `admin-password`).
    pub async fn admin_token(&self) -> String {
        let answer: Value = self
            .http
            .post(format!("{}/v1/auth/token", self.command))
            .json(&json!({"email": "admin@mercato.test", "password": "admin-password"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["access_token"].as_str().expect("a token").to_owned()
    }

    /// A published product `sku` at 25.00 EUR with `quantity` units in warehouse `main`.
    pub async fn stock_product(&self, admin: &str, sku: &str, quantity: u32) {
        for (path, body) in [
            (
                "/v1/products".to_owned(),
                json!({"sku": sku, "name": "Teapot", "brand": "Acme", "category": ["kitchen"],
                       "price": {"amount": 2500, "currency": "EUR"}}),
            ),
            (format!("/v1/products/{sku}/publish"), json!({})),
            (
                format!("/v1/stock/{sku}/receipts"),
                json!({"warehouse": "main", "quantity": quantity}),
            ),
        ] {
            let resp = self
                .http
                .post(format!("{}{path}", self.command))
                .bearer_auth(admin)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert!(resp.status().is_success(), "{path}: {}", resp.status());
            assert!(resp.headers().contains_key("x-request-id"), "{path}");
        }
    }

    /// A guest buys `quantity` of `sku`; `headers` go with the checkout request.
    pub async fn guest_checkout(
        &self,
        sku: &str,
        quantity: u32,
        headers: &[(&str, &str)],
    ) -> Placed {
        let cart: Value = self
            .http
            .post(format!("{}/v1/carts", self.command))
            .json(&json!({"currency": "EUR"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let (cart_id, cart_token) = (
            cart["id"].as_str().unwrap().to_owned(),
            cart["cart_token"].as_str().unwrap().to_owned(),
        );
        let resp = self
            .http
            .post(format!("{}/v1/carts/{cart_id}/items", self.command))
            .header("mercato-cart-token", &cart_token)
            .json(&json!({"sku": sku, "quantity": quantity}))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
        let mut checkout = self
            .http
            .post(format!("{}/v1/carts/{cart_id}/checkout", self.command))
            .header("mercato-cart-token", &cart_token)
            .json(
                &json!({"email": "guest@example.com", "payment_token": "tok_visa",
                          "shipping_address": {"name": "Gus Guest", "line1": "1 Test Street",
                                               "city": "London", "postal_code": "N1 9GU",
                                               "country": "GB"}}),
            );
        for (name, value) in headers {
            checkout = checkout.header(*name, *value);
        }
        let placed: Value = checkout.send().await.unwrap().json().await.unwrap();
        Placed {
            order_id: placed["order_id"].as_str().expect("an order").to_owned(),
            order_token: placed["order_token"].as_str().unwrap().to_owned(),
        }
    }

    /// The order as the query API shows it once it is `confirmed` (within a minute).
    pub async fn wait_until_confirmed(&self, placed: &Placed) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let order: Value = self
                .http
                .get(format!("{}/v1/orders/{}", self.query, placed.order_id))
                .header("mercato-order-token", &placed.order_token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap_or_default();
            if order["status"] == "confirmed" {
                return order;
            }
            assert!(Instant::now() < deadline, "not confirmed: {order}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
