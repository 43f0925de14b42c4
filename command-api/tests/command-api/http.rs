//! The auth matrix and bad input on every endpoint: always a 4xx problem, never a 5xx.

use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{checkout_body, Env};

struct Call {
    method: Method,
    path: String,
    body: Option<Value>,
}

fn call(method: Method, path: impl Into<String>, body: Option<Value>) -> Call {
    Call {
        method,
        path: path.into(),
        body,
    }
}

async fn status(
    env: &Env,
    c: &Call,
    token: Option<&str>,
    extra: &[(&str, &str)],
) -> (u16, Value, String) {
    let mut req = env.http.request(c.method.clone(), env.url(&c.path));
    if let Some(b) = &c.body {
        req = req.json(b);
    }
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let s = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = resp.text().await.unwrap();
    (
        s,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ct,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_enforces_who_may_call_it() {
    let env = Env::with(mercato_command_api::CommandApiConfig::for_tests(), false).await;
    let admin = env.admin().await;
    env.product(&admin, "AUTH-1", 20).await;
    let (ada_id, ada) = env.customer("ada@example.com").await;
    let (_, eve) = env.customer("eve@example.com").await;
    let cart = env.cart_with(&ada, "AUTH-1", 1).await;
    let other_cart = env.cart_with(&ada, "AUTH-1", 1).await;
    let order = env.checkout(&ada, &other_cart, "tok_visa").await;

    let product = json!({"sku": "AUTH-2", "name": "N", "brand": "B", "category": ["c"], "price": {"amount": 1, "currency": "EUR"}});
    // Admin-only endpoints: no token 401, a customer 403, the admin 2xx.
    let admin_calls = [
        call(Method::POST, "/v1/products", Some(product)),
        call(
            Method::PATCH,
            "/v1/products/AUTH-1",
            Some(json!({"name": "Renamed"})),
        ),
        call(
            Method::POST,
            "/v1/products/AUTH-1/price",
            Some(json!({"price": {"amount": 1300, "currency": "EUR"}})),
        ),
        call(Method::POST, "/v1/products/AUTH-1/unpublish", None),
        call(Method::POST, "/v1/products/AUTH-1/publish", None),
        call(
            Method::POST,
            "/v1/stock/AUTH-1/receipts",
            Some(json!({"warehouse": "w2", "quantity": 3})),
        ),
        call(
            Method::POST,
            "/v1/stock/AUTH-1/adjustments",
            Some(json!({"warehouse": "w2", "delta": -1, "reason": "damaged"})),
        ),
    ];
    for c in &admin_calls {
        assert_eq!(status(&env, c, None, &[]).await.0, 401, "{}", c.path);
        assert_eq!(status(&env, c, Some(&ada), &[]).await.0, 403, "{}", c.path);
        let (s, b, _) = status(&env, c, Some(&admin), &[]).await;
        assert!((200..300).contains(&s), "{} {s} {b}", c.path);
    }
    // Owner-or-admin endpoints: no token 401, someone else 403, the owner 2xx.
    let owned = [
        call(
            Method::POST,
            format!("/v1/carts/{cart}/items"),
            Some(json!({"sku": "AUTH-1", "quantity": 1})),
        ),
        call(
            Method::PATCH,
            format!("/v1/carts/{cart}/items/AUTH-1"),
            Some(json!({"quantity": 3})),
        ),
        call(
            Method::DELETE,
            format!("/v1/carts/{cart}/items/AUTH-1"),
            None,
        ),
        call(
            Method::PATCH,
            format!("/v1/customers/{ada_id}"),
            Some(json!({"name": "Ada King"})),
        ),
        call(Method::POST, format!("/v1/orders/{order}/cancel"), None),
    ];
    for c in &owned {
        assert_eq!(status(&env, c, None, &[]).await.0, 401, "{}", c.path);
        assert_eq!(status(&env, c, Some(&eve), &[]).await.0, 403, "{}", c.path);
        let (s, b, _) = status(&env, c, Some(&ada), &[]).await;
        assert!((200..300).contains(&s) || s == 409, "{} {s} {b}", c.path);
    }
    // Shipments, deliveries, refunds and receiving returns are the admin's.
    for c in [
        call(
            Method::POST,
            format!("/v1/orders/{order}/shipments"),
            Some(json!({"tracking_number": "T1", "lines": [{"sku": "AUTH-1", "quantity": 1}]})),
        ),
        call(Method::POST, format!("/v1/orders/{order}/deliveries"), None),
        call(
            Method::POST,
            format!("/v1/orders/{order}/refunds"),
            Some(json!({"amount": {"amount": 100, "currency": "EUR"}})),
        ),
        call(
            Method::POST,
            format!("/v1/returns/{}/receive", uuid::Uuid::new_v4()),
            Some(
                json!({"warehouse": "main", "lines": [{"sku": "AUTH-1", "quantity": 1, "restock": true}]}),
            ),
        ),
    ] {
        assert_eq!(status(&env, &c, None, &[]).await.0, 401, "{}", c.path);
        assert_eq!(status(&env, &c, Some(&ada), &[]).await.0, 403, "{}", c.path);
    }
    // Returns are the order's customer's (or a guest's with the order token).
    let ret = call(
        Method::POST,
        format!("/v1/orders/{order}/returns"),
        Some(json!({"lines": [{"sku": "AUTH-1", "quantity": 1}], "reason": "too big"})),
    );
    assert_eq!(status(&env, &ret, None, &[]).await.0, 401);
    assert_eq!(status(&env, &ret, Some(&eve), &[]).await.0, 403);
    assert_eq!(
        status(&env, &ret, None, &[("mercato-order-token", "forged")])
            .await
            .0,
        403,
        "an order token never opens a customer's order"
    );
    // Anonymous carts: bound to their token.
    let (s, b, _) = status(&env, &call(Method::POST, "/v1/carts", None), None, &[]).await;
    assert_eq!(s, 201, "{b}");
    let anon = b["id"].as_str().unwrap().to_owned();
    let cart_token = b["cart_token"].as_str().unwrap().to_owned();
    let add = call(
        Method::POST,
        format!("/v1/carts/{anon}/items"),
        Some(json!({"sku": "AUTH-1", "quantity": 1})),
    );
    assert_eq!(status(&env, &add, None, &[]).await.0, 401);
    assert_eq!(
        status(&env, &add, None, &[("mercato-cart-token", "wrong")])
            .await
            .0,
        403
    );
    assert_eq!(
        status(&env, &add, None, &[("mercato-cart-token", &cart_token)])
            .await
            .0,
        200
    );
    let checkout = call(
        Method::POST,
        format!("/v1/carts/{anon}/checkout"),
        Some(checkout_body("tok_visa")),
    );
    assert_eq!(status(&env, &checkout, None, &[]).await.0, 401);
    // With its token and no account, it is a guest's checkout, which needs an email.
    let (s, b, _) = status(
        &env,
        &checkout,
        None,
        &[("mercato-cart-token", &cart_token)],
    )
    .await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(b["errors"][0]["field"], "email", "{b}");
    assert_eq!(
        status(&env, &checkout, Some(&eve), &[]).await.0,
        401,
        "an anonymous cart needs its token"
    );
    let (s, b, _) = status(
        &env,
        &checkout,
        Some(&eve),
        &[("mercato-cart-token", &cart_token)],
    )
    .await;
    assert_eq!(s, 202, "{b}");
    // Erasure: someone else 403, the customer 200, and the login is gone.
    let forget = call(Method::DELETE, format!("/v1/customers/{ada_id}"), None);
    assert_eq!(status(&env, &forget, None, &[]).await.0, 401);
    assert_eq!(status(&env, &forget, Some(&eve), &[]).await.0, 403);
    assert_eq!(status(&env, &forget, Some(&ada), &[]).await.0, 200);
    let login = call(
        Method::POST,
        "/v1/auth/token",
        Some(json!({"email": "ada@example.com", "password": "correct horse battery"})),
    );
    assert_eq!(status(&env, &login, None, &[]).await.0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_on_every_endpoint_is_a_4xx_problem_never_a_5xx() {
    let env = Env::with(mercato_command_api::CommandApiConfig::for_tests(), false).await;
    let admin = env.admin().await;
    env.product(&admin, "BAD-1", 5).await;
    let (ada_id, ada) = env.customer("ada@example.com").await;
    let cart = env.cart_with(&ada, "BAD-1", 1).await;
    let order = uuid::Uuid::new_v4();
    let endpoints = [
        (Method::POST, "/v1/auth/token".to_owned(), None),
        (Method::POST, "/v1/customers".to_owned(), None),
        (Method::PATCH, format!("/v1/customers/{ada_id}"), Some(&ada)),
        (Method::POST, "/v1/products".to_owned(), Some(&admin)),
        (Method::PATCH, "/v1/products/BAD-1".to_owned(), Some(&admin)),
        (
            Method::POST,
            "/v1/products/BAD-1/price".to_owned(),
            Some(&admin),
        ),
        (
            Method::POST,
            "/v1/stock/BAD-1/receipts".to_owned(),
            Some(&admin),
        ),
        (
            Method::POST,
            "/v1/stock/BAD-1/adjustments".to_owned(),
            Some(&admin),
        ),
        (Method::POST, "/v1/carts".to_owned(), Some(&ada)),
        (Method::POST, format!("/v1/carts/{cart}/items"), Some(&ada)),
        (
            Method::PATCH,
            format!("/v1/carts/{cart}/items/BAD-1"),
            Some(&ada),
        ),
        (
            Method::POST,
            format!("/v1/carts/{cart}/checkout"),
            Some(&ada),
        ),
        (
            Method::POST,
            format!("/v1/orders/{order}/shipments"),
            Some(&admin),
        ),
        (
            Method::POST,
            format!("/v1/orders/{order}/refunds"),
            Some(&admin),
        ),
        (
            Method::POST,
            format!("/v1/orders/{order}/deliveries"),
            Some(&admin),
        ),
        (
            Method::POST,
            format!("/v1/orders/{order}/returns"),
            Some(&ada),
        ),
        (
            Method::POST,
            format!("/v1/returns/{order}/receive"),
            Some(&admin),
        ),
        (
            Method::POST,
            format!("/v1/carts/{cart}/coupons"),
            Some(&ada),
        ),
        (Method::POST, "/v1/promotions".to_owned(), Some(&admin)),
        (
            Method::PATCH,
            format!("/v1/promotions/{order}"),
            Some(&admin),
        ),
        (Method::PUT, "/v1/tax/rates/DE".to_owned(), Some(&admin)),
        (Method::PUT, "/v1/tax/settings".to_owned(), Some(&admin)),
        (
            Method::PUT,
            "/v1/shipping-methods/standard".to_owned(),
            Some(&admin),
        ),
    ];
    let big = "x".repeat(70 * 1024);
    let bodies: Vec<(&str, String)> = vec![
        ("malformed", "{\"a\": ".to_owned()),
        ("unknown field", "{\"surprise\": 1}".to_owned()),
        ("wrong types", "{\"sku\": 1, \"quantity\": \"many\", \"email\": [], \"price\": 3, \"currency\": 5, \"warehouse\": false}".to_owned()),
        ("oversized", format!("{{\"name\": \"{big}\"}}")),
        ("pan", "{\"payment_token\": \"4111 1111 1111 1111\", \"name\": \"4111111111111111\"}".to_owned()),
        ("array", "[1,2,3]".to_owned()),
        ("negative", "{\"quantity\": -1, \"amount\": {\"amount\": -5, \"currency\": \"eur\"}}".to_owned()),
    ];
    for (method, path, token) in &endpoints {
        for (what, body) in &bodies {
            let mut req = env
                .http
                .request(method.clone(), env.url(path))
                .header("content-type", "application/json")
                .body(body.clone());
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let resp = req.send().await.unwrap();
            let s = resp.status().as_u16();
            let ct = resp
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned());
            let text = resp.text().await.unwrap();
            assert!(
                (400..500).contains(&s),
                "{method} {path} {what}: {s} {text}"
            );
            assert_eq!(
                ct.as_deref(),
                Some("application/problem+json"),
                "{method} {path} {what}: {text}"
            );
            if *what == "pan" {
                assert_eq!(s, 422, "{method} {path}: {text}");
                assert!(text.contains("pan_not_allowed"), "{text}");
            }
        }
    }
    // Bad path parameters.
    for (method, path) in [
        (Method::POST, "/v1/carts/not-a-uuid/items"),
        (Method::PATCH, "/v1/customers/42"),
        (Method::POST, "/v1/products/bad%20sku/publish"),
        (Method::POST, "/v1/orders/xyz/cancel"),
        (
            Method::DELETE,
            "/v1/carts/00000000-0000-0000-0000-000000000000/items/BAD-1",
        ),
    ] {
        let c = call(method.clone(), path, Some(json!({"quantity": 1})));
        let (s, b, ct) = status(&env, &c, Some(&admin), &[]).await;
        assert!((400..500).contains(&s), "{method} {path}: {s} {b}");
        assert_eq!(ct, "application/problem+json");
    }
    // The OpenAPI document names every route.
    let spec: Value = env
        .http
        .get(env.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    assert_eq!(spec["paths"].as_object().unwrap().len(), 32);
}

/// Every route of the OpenAPI document, with every path parameter set to `value`.
async fn every_route(env: &Env, value: &str) -> Vec<(Method, String)> {
    let spec: Value = env
        .http
        .get(env.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut routes = Vec::new();
    for (path, ops) in spec["paths"].as_object().unwrap() {
        let mut concrete = String::new();
        let mut rest = path.as_str();
        while let Some(start) = rest.find('{') {
            let end = rest.find('}').unwrap();
            concrete.push_str(&rest[..start]);
            concrete.push_str(value);
            rest = &rest[end + 1..];
        }
        concrete.push_str(rest);
        for method in ops.as_object().unwrap().keys() {
            routes.push((method.to_uppercase().parse().unwrap(), concrete.clone()));
        }
    }
    routes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_characters_anywhere_are_a_4xx_problem_on_every_route() {
    let env = Env::with(mercato_command_api::CommandApiConfig::for_tests(), false).await;
    let admin = env.admin().await;
    let routes = every_route(&env, "A%00").await;
    assert_eq!(routes.len(), 36, "every route of the command API");
    let plain = every_route(&env, "00000000-0000-0000-0000-000000000000").await;
    for (method, path) in routes.iter().chain(&plain) {
        for (query, body) in [
            ("", r#"{"email": "ada@example.com", "password": "x"}"#),
            ("?q=%00", "{}"),
            (
                "",
                r#"{"email": "ada\u0000@example.com", "name": "\u0000", "sku": "A\u0000"}"#,
            ),
        ] {
            let resp = env
                .http
                .request(method.clone(), env.url(&format!("{path}{query}")))
                .bearer_auth(&admin)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let ct = resp
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            let text = resp.text().await.unwrap();
            let nul = path.contains("%00") || !query.is_empty() || body.contains("\\u0000");
            if nul {
                assert!(
                    (400..500).contains(&status),
                    "{method} {path}{query} {body}: {status} {text}"
                );
                assert_eq!(ct, "application/problem+json", "{method} {path}: {text}");
            } else {
                assert!(status < 500, "{method} {path} {body}: {status} {text}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_security_headers_and_tokens_are_never_stored() {
    let env = Env::with(mercato_command_api::CommandApiConfig::for_tests(), false).await;
    let resp = env
        .http
        .post(env.url("/v1/auth/token"))
        .json(&json!({"email": "admin@mercato.test", "password": "admin-password"}))
        .send()
        .await
        .unwrap();
    let headers = resp.headers().clone();
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert!(headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    // The interactive docs still load under their own policy.
    let docs = env.http.get(env.url("/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    let csp = docs.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    // Problems too.
    let missing = env.http.get(env.url("/v1/nothing")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.headers()["x-content-type-options"], "nosniff");
    // No CORS unless origins are configured.
    let preflight = env
        .http
        .request(Method::OPTIONS, env.url("/v1/carts"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(preflight
        .headers()
        .get("access-control-allow-origin")
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_answers_only_the_configured_origins() {
    let mut config = mercato_command_api::CommandApiConfig::for_tests();
    config.cors_origins = vec!["https://shop.example".parse().unwrap()];
    let env = Env::with(config, false).await;
    let preflight = |origin: &'static str| {
        env.http
            .request(Method::OPTIONS, env.url("/v1/carts"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,idempotency-key",
            )
            .send()
    };
    let ok = preflight("https://shop.example").await.unwrap();
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://shop.example"
    );
    let other = preflight("https://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prices_and_refunds_above_the_ceiling_are_refused() {
    let env = Env::with(mercato_command_api::CommandApiConfig::for_tests(), false).await;
    let admin = env.admin().await;
    let (s, b) = env
        .post(
            "/v1/products",
            Some(&admin),
            json!({"sku": "BIG-1", "name": "Yacht", "brand": "B", "category": ["c"],
                   "price": {"amount": 9_223_372_036_854_775_807i64, "currency": "EUR"}}),
        )
        .await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(b["errors"][0]["code"], "amount_too_large", "{b}");
    env.product(&admin, "BIG-2", 1).await;
    let (s, b) = env
        .post(
            "/v1/products/BIG-2/price",
            Some(&admin),
            json!({"price": {"amount": mercato_command_api::DEFAULT_MAX_AMOUNT + 1, "currency": "EUR"}}),
        )
        .await;
    assert_eq!(
        (s, b["errors"][0]["code"].as_str()),
        (422, Some("amount_too_large")),
        "{b}"
    );
}
