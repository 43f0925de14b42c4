//! Promotions, coupons and tax over HTTP, end to end: the admin sets them up through the
//! command API, shoppers see them priced in the cart view, the checkout records them on the
//! order and holds each limited promotion's use, and a cancellation gives it back.

use futures::future::join_all;
use reqwest::Method;
use serde_json::{json, Value};

use crate::stack::{checkout_body, Stack};

/// An anonymous cart in `currency` holding `items`: (id, cart token).
async fn guest_cart(s: &Stack, currency: &str, items: &[(&str, u32)]) -> (String, String) {
    let cart = s
        .ok(201, "/v1/carts", None, json!({"currency": currency}))
        .await;
    let id = cart.body["id"].as_str().unwrap().to_owned();
    let token = cart.body["cart_token"].as_str().unwrap().to_owned();
    for (sku, quantity) in items {
        let a = s
            .post_as_cart(
                &format!("/v1/carts/{id}/items"),
                &token,
                json!({"sku": sku, "quantity": quantity}),
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
    }
    (id, token)
}

async fn apply_coupon(s: &Stack, cart: &str, token: &str, code: &str) -> crate::stack::Answer {
    s.post_as_cart(
        &format!("/v1/carts/{cart}/coupons"),
        token,
        json!({"code": code}),
    )
    .await
}

async fn guest_checkout(s: &Stack, cart: &str, token: &str, email: &str) -> crate::stack::Answer {
    let mut body = checkout_body("tok_visa");
    body["email"] = json!(email);
    s.post_as_cart(&format!("/v1/carts/{cart}/checkout"), token, body)
        .await
}

async fn promotion(s: &Stack, admin: &str, body: Value) -> String {
    let a = s.ok(201, "/v1/promotions", Some(admin), body).await;
    a.body["id"].as_str().unwrap().to_owned()
}

fn amount(v: &Value) -> i64 {
    v["amount"]
        .as_i64()
        .unwrap_or_else(|| panic!("no amount in {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coupon_limited_to_50_uses_is_on_exactly_50_of_200_concurrent_checkouts() {
    let s = Stack::start().await;
    let admin = s.admin().await;
    s.product(
        &admin,
        "POT",
        "Teapot",
        "Kyusu",
        &["kitchen", "teapots"],
        5_000,
        "Cast iron",
    )
    .await;
    s.receive(&admin, "POT", "main", 1_000).await;
    let id = promotion(
        &s,
        &admin,
        json!({"name": "Spring", "code": "spring50", "discount": {"percent": 10}, "usage_limit": 50}),
    )
    .await;

    let mut carts = Vec::new();
    for _ in 0..200 {
        let (cart, token) = guest_cart(&s, "EUR", &[("POT", 1)]).await;
        let a = apply_coupon(&s, &cart, &token, " Spring50 ").await;
        assert_eq!(a.status, 200, "{}", a.body);
        carts.push((cart, token));
    }
    let answers = join_all(carts.iter().enumerate().map(|(i, (cart, token))| {
        guest_checkout(
            &s,
            cart,
            token,
            Box::leak(format!("shopper{i}@example.com").into_boxed_str()),
        )
    }))
    .await;
    let placed: Vec<&crate::stack::Answer> = answers.iter().filter(|a| a.status == 202).collect();
    let refused: Vec<&crate::stack::Answer> = answers.iter().filter(|a| a.status == 409).collect();
    assert_eq!(
        placed.len(),
        50,
        "{:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    assert_eq!(refused.len(), 150);
    for a in &refused {
        assert_eq!(
            a.body["code"], "promotion_usage_limit_reached",
            "{}",
            a.body
        );
        assert_eq!(a.headers["content-type"], "application/problem+json");
    }
    // Every placed order carries the discount and charges 45.00 instead of 50.00.
    let orders: Vec<String> = placed
        .iter()
        .map(|a| a.body["order_id"].as_str().unwrap().to_owned())
        .collect();
    for order in &orders {
        let o = s
            .eventually(&format!("/v1/orders/{order}"), Some(&admin), |o| {
                o["payment"]["state"] == "captured"
            })
            .await;
        assert_eq!(o["status"], "confirmed");
        assert_eq!(o["discounts"][0]["code"], "SPRING50");
        assert_eq!(amount(&o["discounts"][0]["amount"]), 500);
        assert_eq!(amount(&o["total"]), 4_500);
        assert_eq!(amount(&o["payment"]["captured"]), 4_500);
    }
    let path = format!("/v1/promotions/{id}");
    s.eventually(&path, Some(&admin), |p| p["uses"] == 50).await;

    // A refused shopper's cart is still open: without the coupon it checks out at full price.
    let (cart, token) = &carts[answers.iter().position(|a| a.status == 409).unwrap()];
    let removed = s
        .command(
            Method::DELETE,
            &format!("/v1/carts/{cart}/coupons/spring50"),
            None,
            Some(token),
            None,
        )
        .await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    let full = guest_checkout(&s, cart, token, "late@example.com").await;
    assert_eq!(full.status, 202, "{}", full.body);

    // A cancelled order gives its use back, and the next shopper gets it.
    let cancel = s
        .post(
            &format!("/v1/orders/{}/cancel", orders[0]),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(cancel.status, 200, "{}", cancel.body);
    s.eventually(&path, Some(&admin), |p| p["uses"] == 49).await;
    let (cart, token) = guest_cart(&s, "EUR", &[("POT", 1)]).await;
    assert_eq!(
        apply_coupon(&s, &cart, &token, "SPRING50").await.status,
        200
    );
    let again = guest_checkout(&s, &cart, &token, "next@example.com").await;
    assert_eq!(again.status, 202, "{}", again.body);
    s.eventually(&path, Some(&admin), |p| p["uses"] == 50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_of_promotion_prices_the_cart_view_and_the_order_alike() {
    let s = Stack::start().await;
    let admin = s.admin().await;
    s.product(
        &admin,
        "POT",
        "Teapot",
        "Kyusu",
        &["kitchen", "teapots"],
        3_000,
        "Cast iron",
    )
    .await;
    s.product(
        &admin,
        "CUP",
        "Cup",
        "Other",
        &["kitchen", "cups"],
        1_000,
        "Porcelain",
    )
    .await;
    for sku in ["POT", "CUP"] {
        s.receive(&admin, sku, "main", 100).await;
    }
    // Automatic: buy 2 cups, get 1 free; 10% off the Kyusu brand.
    promotion(
        &s,
        &admin,
        json!({"name": "Cups 3 for 2", "discount": {"buy_x_get_y": {"buy": 2, "get": 1}},
        "applies_to": {"product": "CUP"}}),
    )
    .await;
    promotion(&s, &admin, json!({"name": "Kyusu week", "discount": {"percent": "10"}, "applies_to": {"brand": "Kyusu"}})).await;
    // A coupon: 5.00 off from 50.00 of list prices.
    promotion(&s, &admin, json!({"name": "Five off", "code": "FIVE", "discount": {"amount": {"amount": 500, "currency": "EUR"}},
        "min_subtotal": {"amount": 5000, "currency": "EUR"}})).await;
    // An exclusive 50% that is inactive: it must not apply.
    promotion(
        &s,
        &admin,
        json!({"name": "Half", "code": "HALF", "discount": {"percent": 50},
        "stacking": "exclusive", "active": false}),
    )
    .await;
    // VAT in GB, added to prices.
    let settings = s
        .command(
            Method::PUT,
            "/v1/tax/settings",
            Some(&admin),
            None,
            Some(json!({"prices_include_tax": false})),
        )
        .await;
    assert_eq!(settings.status, 200, "{}", settings.body);
    let rate = s
        .command(
            Method::PUT,
            "/v1/tax/rates/GB",
            Some(&admin),
            None,
            Some(json!({"rate": 20})),
        )
        .await;
    assert_eq!(rate.status, 200, "{}", rate.body);

    let (cart, token) = guest_cart(&s, "EUR", &[("POT", 1), ("CUP", 3)]).await;
    let inactive = apply_coupon(&s, &cart, &token, "half").await;
    assert_eq!(
        (inactive.status, inactive.body["code"].as_str()),
        (409, Some("promotion_not_active"))
    );
    // 60.00 of list prices: the coupon's minimum is met.
    let applied = apply_coupon(&s, &cart, &token, "five").await;
    assert_eq!(applied.status, 200, "{}", applied.body);
    let view = s
        .get(
            &format!("/v1/carts/{cart}?country=GB&postal_code=N1%209GU"),
            None,
            &[
                ("Mercato-Cart-Token", &token),
                ("Mercato-Min-Position", &applied.position()),
            ],
        )
        .await;
    assert_eq!(view.status, 200, "{}", view.body);
    let v = &view.body;
    // Cups: one of three free (10.00). Teapot: 10% (3.00). Then 5.00 off what is left
    // (47.00), spread 27/47 and 20/47: 2.87 off the teapot, 2.13 off the cups. Tax 20% per
    // line: on 24.13 (4.83) and on 17.87 (3.57).
    assert_eq!(amount(&v["subtotal"]), 6_000);
    assert_eq!(amount(&v["discount_total"]), 1_800);
    let priced = |lines: &Value| -> Vec<(String, i64, i64, i64)> {
        let mut lines: Vec<_> = lines
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l["sku"].as_str().unwrap().to_owned(),
                    amount(&l["discount"]),
                    amount(&l["tax"]),
                    amount(&l["total"]),
                )
            })
            .collect();
        lines.sort();
        lines
    };
    let lines = priced(&v["lines"]);
    assert_eq!(
        lines,
        vec![
            ("CUP".into(), 1_213, 357, 2_144),
            ("POT".into(), 587, 483, 2_896)
        ]
    );
    assert_eq!(amount(&v["tax"]["amount"]), 840);
    assert_eq!(v["tax"]["rate"], "20");
    assert_eq!(amount(&v["total"]), 6_000 - 1_800 + 840);
    assert_eq!(
        v["coupons"],
        json!([{"code": "FIVE", "applied": true, "reason": null}])
    );
    let names: Vec<&str> = v["discounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Cups 3 for 2", "Kyusu week", "Five off"]);

    let placed = guest_checkout(&s, &cart, &token, "grace@example.com").await;
    assert_eq!(placed.status, 202, "{}", placed.body);
    let order = placed.body["order_id"].as_str().unwrap();
    let o = s
        .eventually(&format!("/v1/orders/{order}"), Some(&admin), |o| {
            o["payment"]["state"] == "captured"
        })
        .await;
    assert_eq!(amount(&o["subtotal"]), 6_000);
    assert_eq!(amount(&o["discount_total"]), 1_800);
    assert_eq!(amount(&o["tax"]["amount"]), 840);
    assert_eq!(o["tax"]["prices_include_tax"], false);
    assert_eq!(amount(&o["total"]), 5_040);
    assert_eq!(amount(&o["payment"]["captured"]), 5_040);
    assert_eq!(priced(&o["lines"]), lines);
    // The day's sales show the discounts and the tax inside the revenue.
    let today = chrono::Utc::now().date_naive();
    let sales = s
        .eventually(
            &format!("/v1/admin/sales?from={today}&to={today}"),
            Some(&admin),
            |r| r["days"][0]["orders"] == 1,
        )
        .await;
    let day = &sales["days"][0];
    assert_eq!(
        (
            amount(&day["revenue"]),
            amount(&day["discounts"]),
            amount(&day["tax"])
        ),
        (5_040, 1_800, 840)
    );

    // Cancelled after capture: the refund is what was paid, so captured - refunded = 0.
    s.ok(
        200,
        &format!("/v1/orders/{order}/cancel"),
        Some(&admin),
        json!({}),
    )
    .await;
    let o = s
        .eventually(&format!("/v1/orders/{order}"), Some(&admin), |o| {
            o["payment"]["state"] == "refunded"
        })
        .await;
    assert_eq!(amount(&o["payment"]["refunded"]), 5_040);
    // The refund gives the tax back too: the order's 8.40.
    assert_eq!(amount(&o["refunds"][0]["tax"]), 840);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tax_reconciles_in_currencies_with_zero_two_and_three_decimals() {
    let s = Stack::start().await;
    let admin = s.admin().await;
    // Prices include tax (the default): 19% in DE, 7% for postal codes starting 35 in ES.
    for (country, body) in [
        ("DE", json!({"rate": 19})),
        ("ES", json!({"rate": "21"})),
        ("ES", json!({"rate": "7", "postal_prefix": "35"})),
    ] {
        let a = s
            .command(
                Method::PUT,
                &format!("/v1/tax/rates/{country}"),
                Some(&admin),
                None,
                Some(body),
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
    }
    let rates = s
        .eventually("/v1/tax/rates", None, |r| {
            r["rates"].as_array().is_some_and(|a| a.len() == 3)
        })
        .await;
    assert_eq!(rates["prices_include_tax"], true);
    // 1,999 yen, 19.99 EUR and 19.999 KWD: each shown in its own minor units.
    for (sku, currency, price) in [
        ("TEA-JPY", "JPY", 1_999),
        ("TEA-EUR", "EUR", 1_999),
        ("TEA-KWD", "KWD", 19_999),
    ] {
        s.product_in(
            &admin,
            sku,
            "Tea",
            "Leaf",
            &["tea"],
            json!({"amount": price, "currency": currency}),
            "Green",
            json!({}),
        )
        .await;
        s.receive(&admin, sku, "main", 10).await;
    }
    // (currency, sku, country, postal code, expected tax of 3 units)
    let cases = [
        ("JPY", "TEA-JPY", "DE", "10115", 958), // 5,997 yen hold 957.5 yen of 19%: 958
        ("EUR", "TEA-EUR", "ES", "35001", 392), // 59.97 EUR hold 3.923 EUR of 7%: 3.92
        ("KWD", "TEA-KWD", "ES", "28001", 10_413), // 59.997 KWD hold 10.4127 KWD of 21%: 10.413
    ];
    for (currency, sku, country, postal, tax) in cases {
        let (cart, token) = guest_cart(&s, currency, &[(sku, 3)]).await;
        let mut body = checkout_body("tok_visa");
        body["email"] = json!("tea@example.com");
        body["shipping_address"]["country"] = json!(country);
        body["shipping_address"]["postal_code"] = json!(postal);
        let placed = s
            .post_as_cart(&format!("/v1/carts/{cart}/checkout"), &token, body)
            .await;
        assert_eq!(placed.status, 202, "{}", placed.body);
        let order = placed.body["order_id"].as_str().unwrap();
        let o = s
            .eventually(&format!("/v1/orders/{order}"), Some(&admin), |o| {
                o["status"] == "confirmed"
            })
            .await;
        let total = 3 * match currency {
            "KWD" => 19_999,
            _ => 1_999,
        };
        assert_eq!(amount(&o["tax"]["amount"]), tax, "{currency}");
        assert_eq!(o["tax"]["amount"]["currency"], currency);
        // Prices include tax: the customer pays the list price, the tax is inside it.
        assert_eq!(amount(&o["total"]), total, "{currency}");
        let line_tax: i64 = o["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| amount(&l["tax"]))
            .sum();
        assert_eq!(line_tax, tax);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_promotion_and_tax_input_gets_a_problem_and_changes_nothing() {
    let s = Stack::start().await;
    let admin = s.admin().await;
    let (_, ada, _) = s.customer("ada@example.com", "Ada Lovelace").await;
    let base = json!({"name": "Sale", "code": "SALE", "discount": {"percent": 10},
        "starts_at": "2030-01-01T00:00:00Z", "ends_at": "2030-02-01T00:00:00Z"});
    let with = |patch: Value| {
        let mut body = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    for (body, status, code) in [
        (
            with(json!({"discount": {"percent": -5}})),
            422,
            "validation_failed",
        ),
        (
            with(json!({"discount": {"percent": 0}})),
            422,
            "validation_failed",
        ),
        (
            with(json!({"discount": {"percent": 101}})),
            422,
            "validation_failed",
        ),
        (
            with(json!({"discount": {"percent": 12.5}})),
            422,
            "validation_failed",
        ),
        (
            with(json!({"discount": {"amount": {"amount": -100, "currency": "EUR"}}})),
            422,
            "validation_failed",
        ),
        (
            with(json!({"discount": {"buy_x_get_y": {"buy": 0, "get": 1}}})),
            422,
            "invalid_buy_x_get_y",
        ),
        (
            with(json!({"ends_at": "2029-12-01T00:00:00Z"})),
            422,
            "invalid_window",
        ),
        (with(json!({"usage_limit": 0})), 422, "invalid_usage_limit"),
        (with(json!({"code": "no spaces"})), 422, "validation_failed"),
        (
            with(json!({"applies_to": {"aisle": 3}})),
            422,
            "validation_failed",
        ),
    ] {
        let a = s.post("/v1/promotions", Some(&admin), body.clone()).await;
        assert_eq!(
            (a.status, a.body["code"].as_str()),
            (status, Some(code)),
            "{body}: {}",
            a.body
        );
        assert_eq!(a.headers["content-type"], "application/problem+json");
    }
    assert_eq!(
        s.post("/v1/promotions", Some(&ada), base.clone())
            .await
            .status,
        403
    );
    assert_eq!(
        s.post("/v1/promotions", None, base.clone()).await.status,
        401
    );
    // Nothing was created, and the code is still free.
    let first = s
        .ok(201, "/v1/promotions", Some(&admin), base.clone())
        .await;
    // The same code in an overlapping window is refused; after it ends, it may be reused.
    let overlap = s
        .post(
            "/v1/promotions",
            Some(&admin),
            with(json!({"starts_at": "2030-01-31T00:00:00Z", "ends_at": null})),
        )
        .await;
    assert_eq!(
        (overlap.status, overlap.body["code"].as_str()),
        (409, Some("coupon_code_overlap")),
        "{}",
        overlap.body
    );
    s.ok(
        201,
        "/v1/promotions",
        Some(&admin),
        with(json!({"starts_at": "2030-02-01T00:00:00Z", "ends_at": null})),
    )
    .await;
    let first = first.body["id"].as_str().unwrap();
    let moved = s
        .command(
            Method::PATCH,
            &format!("/v1/promotions/{first}"),
            Some(&admin),
            None,
            Some(json!({"ends_at": "2030-03-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(
        (moved.status, moved.body["code"].as_str()),
        (409, Some("coupon_code_overlap")),
        "{}",
        moved.body
    );

    // Coupons: unknown, not running yet, malformed.
    s.product(
        &admin,
        "POT",
        "Teapot",
        "Kyusu",
        &["kitchen"],
        3_000,
        "Iron",
    )
    .await;
    let (cart, token) = guest_cart(&s, "EUR", &[("POT", 1)]).await;
    for (code, status, problem) in [
        ("NOPE", 422, "unknown_coupon"),
        ("SALE", 409, "promotion_not_running"),
        ("x", 422, "validation_failed"),
    ] {
        let a = apply_coupon(&s, &cart, &token, code).await;
        assert_eq!(
            (a.status, a.body["code"].as_str()),
            (status, Some(problem)),
            "{code}: {}",
            a.body
        );
    }
    let missing = s
        .command(
            Method::DELETE,
            &format!("/v1/carts/{cart}/coupons/NOPE"),
            None,
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        (missing.status, missing.body["code"].as_str()),
        (404, Some("coupon_not_in_cart"))
    );

    // Tax: a bad rate, country or prefix.
    for (path, body, status) in [
        ("/v1/tax/rates/DE", json!({"rate": "19.1234"}), 422),
        ("/v1/tax/rates/DE", json!({"rate": 8.5}), 422),
        ("/v1/tax/rates/DE", json!({"rate": "abc"}), 422),
        ("/v1/tax/rates/germany", json!({"rate": 19}), 400),
        (
            "/v1/tax/rates/ES",
            json!({"rate": 7, "postal_prefix": "35/"}),
            422,
        ),
    ] {
        let a = s
            .command(Method::PUT, path, Some(&admin), None, Some(body.clone()))
            .await;
        assert_eq!(a.status, status, "{path} {body}: {}", a.body);
    }
    let unknown = s
        .command(Method::DELETE, "/v1/tax/rates/FR", Some(&admin), None, None)
        .await;
    assert_eq!(
        (unknown.status, unknown.body["code"].as_str()),
        (404, Some("tax_rate_not_found"))
    );
    assert_eq!(
        s.command(
            Method::PUT,
            "/v1/tax/rates/DE",
            Some(&ada),
            None,
            Some(json!({"rate": 19}))
        )
        .await
        .status,
        403
    );
    let rates = s.get("/v1/tax/rates", None, &[]).await;
    assert_eq!(rates.body["rates"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipping_is_listed_for_a_cart_chosen_at_checkout_priced_into_the_order_and_refunded_on_cancellation(
) {
    let s = Stack::start().await;
    let admin = s.admin().await;
    let put = |path: String, body: Value| {
        let admin = admin.clone();
        let s = &s;
        async move {
            s.command(Method::PUT, &path, Some(&admin), None, Some(body))
                .await
        }
    };
    // A teapot of 1.2 kg at 40.00; cups of 300 g at 10.00.
    s.ok(201, "/v1/products", Some(&admin), json!({"sku": "POT", "name": "Teapot", "brand": "Kyusu",
        "category": ["kitchen"], "price": {"amount": 4000, "currency": "EUR"}, "weight_grams": 1200})).await;
    s.ok(200, "/v1/products/POT/publish", Some(&admin), json!({}))
        .await;
    s.receive(&admin, "POT", "main", 10).await;
    for (path, body, status) in [
        (
            "/v1/shipping-methods/standard".to_owned(),
            json!({"name": "Standard", "countries": ["GB", "DE"],
            "rate": {"flat": {"amount": 490, "currency": "EUR"}}, "free_above": {"amount": 10000, "currency": "EUR"}}),
            200,
        ),
        (
            "/v1/shipping-methods/express".to_owned(),
            json!({"name": "Express", "countries": ["GB"],
            "rate": {"by_weight": {"base": {"amount": 900, "currency": "EUR"}, "per_kg": {"amount": 200, "currency": "EUR"}}}}),
            200,
        ),
        // Bad input: no country, mixed currencies, a bad id, a negative rate.
        (
            "/v1/shipping-methods/nowhere".to_owned(),
            json!({"name": "X", "countries": [], "rate": {"flat": {"amount": 1, "currency": "EUR"}}}),
            422,
        ),
        (
            "/v1/shipping-methods/mixed".to_owned(),
            json!({"name": "X", "countries": ["GB"], "rate": {"flat": {"amount": 1, "currency": "EUR"}},
            "free_above": {"amount": 1, "currency": "USD"}}),
            422,
        ),
        (
            "/v1/shipping-methods/bad%20id".to_owned(),
            json!({"name": "X", "countries": ["GB"], "rate": {"flat": {"amount": 1, "currency": "EUR"}}}),
            400,
        ),
        (
            "/v1/shipping-methods/neg".to_owned(),
            json!({"name": "X", "countries": ["GB"], "rate": {"flat": {"amount": -1, "currency": "EUR"}}}),
            422,
        ),
    ] {
        let a = put(path.clone(), body).await;
        assert_eq!(a.status, status, "{path}: {}", a.body);
    }

    let (cart, token) = guest_cart(&s, "EUR", &[("POT", 2)]).await;
    // 2.4 kg: express is 9.00 + 3 x 2.00 = 15.00; standard 4.90. DE has standard only.
    let options = |country: &'static str| {
        let (s, cart, token) = (&s, cart.clone(), token.clone());
        async move {
            let a = s
                .get(
                    &format!("/v1/carts/{cart}/shipping-options?country={country}"),
                    None,
                    &[("Mercato-Cart-Token", &token)],
                )
                .await;
            if a.status == 404 {
                return Vec::new(); // not in the read model yet
            }
            assert_eq!(a.status, 200, "{}", a.body);
            a.body["options"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| {
                    (
                        o["method_id"].as_str().unwrap().to_owned(),
                        amount(&o["total"]),
                        amount(&o["cart_total"]),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    let gb = loop {
        let gb = options("GB").await;
        if gb.len() == 2 {
            break gb;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(
        gb,
        vec![
            ("standard".into(), 490, 8_490),
            ("express".into(), 1_500, 9_500)
        ]
    );
    assert_eq!(options("DE").await, vec![("standard".into(), 490, 8_490)]);
    assert_eq!(options("US").await, vec![]);
    let no_country = s
        .get(
            &format!("/v1/carts/{cart}/shipping-options"),
            None,
            &[("Mercato-Cart-Token", &token)],
        )
        .await;
    assert_eq!(
        (no_country.status, no_country.body["code"].as_str()),
        (400, Some("country_required"))
    );

    let checkout = |method: Option<&str>, country: &str| {
        let mut body = checkout_body("tok_visa");
        body["email"] = json!("ship@example.com");
        body["shipping_address"]["country"] = json!(country);
        if let Some(m) = method {
            body["shipping_method"] = json!(m);
        }
        let (s, cart, token) = (&s, cart.clone(), token.clone());
        async move {
            s.post_as_cart(&format!("/v1/carts/{cart}/checkout"), &token, body)
                .await
        }
    };
    for (method, country, status, code) in [
        (None, "GB", 422, "validation_failed"),
        (Some("drone"), "GB", 422, "validation_failed"),
        (Some("express"), "DE", 422, "shipping_unavailable"),
        (Some("standard"), "US", 422, "shipping_unavailable"),
        (None, "US", 422, "no_shipping_to_destination"),
    ] {
        let a = checkout(method, country).await;
        assert_eq!(
            (a.status, a.body["code"].as_str()),
            (status, Some(code)),
            "{method:?} {country}: {}",
            a.body
        );
    }
    let placed = checkout(Some("express"), "GB").await;
    assert_eq!(placed.status, 202, "{}", placed.body);
    let order = placed.body["order_id"].as_str().unwrap();
    let path = format!("/v1/orders/{order}");
    let o = s
        .eventually(&path, Some(&admin), |o| o["payment"]["state"] == "captured")
        .await;
    assert_eq!(o["shipping"]["method_id"], "express");
    assert_eq!(amount(&o["shipping"]["total"]), 1_500);
    assert_eq!(amount(&o["total"]), 9_500);
    assert_eq!(amount(&o["payment"]["captured"]), 9_500);
    // Cancelled before it shipped: the shipping comes back with the goods.
    s.ok(
        200,
        &format!("/v1/orders/{order}/cancel"),
        Some(&admin),
        json!({}),
    )
    .await;
    let o = s
        .eventually(&path, Some(&admin), |o| o["payment"]["state"] == "refunded")
        .await;
    assert_eq!(amount(&o["payment"]["refunded"]), 9_500);

    // A free-shipping coupon takes the charge off.
    promotion(
        &s,
        &admin,
        json!({"name": "Ships free", "code": "SHIPFREE", "discount": {"free_shipping": {}}}),
    )
    .await;
    let (cart, token) = guest_cart(&s, "EUR", &[("POT", 1)]).await;
    assert_eq!(
        apply_coupon(&s, &cart, &token, "shipfree").await.status,
        200
    );
    let mut body = checkout_body("tok_visa");
    body["email"] = json!("free@example.com");
    body["shipping_method"] = json!("express");
    let placed = s
        .post_as_cart(&format!("/v1/carts/{cart}/checkout"), &token, body)
        .await;
    assert_eq!(placed.status, 202, "{}", placed.body);
    let order = placed.body["order_id"].as_str().unwrap();
    let o = s
        .eventually(&format!("/v1/orders/{order}"), Some(&admin), |o| {
            o["payment"]["state"] == "captured"
        })
        .await;
    // 1.2 kg: 9.00 + 2 x 2.00 = 13.00, all of it taken off.
    assert_eq!(amount(&o["shipping"]["amount"]), 1_300);
    assert_eq!(amount(&o["shipping"]["discount"]), 1_300);
    assert_eq!(amount(&o["total"]), 4_000);
    assert_eq!(o["discounts"][0]["free_shipping"], true);
}
