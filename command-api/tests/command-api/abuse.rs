//! Abuse resistance (ADR 0014): throttled sign-ins and registrations, the same work for
//! unknown and known emails, tokens revoked by a password change or an erasure, and
//! idempotency records that keep no secret.

use std::time::Instant;

use mercato_command_api::{CommandApiConfig, ThrottleConfig};
use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{checkout_body, Env};

const PASSWORD: &str = "correct horse battery";

fn throttled(per_account: u32, per_address: u32, registrations: u32) -> CommandApiConfig {
    CommandApiConfig {
        throttle: ThrottleConfig {
            login_per_account: per_account,
            login_per_address: per_address,
            registrations_per_address: registrations,
            trust_forwarded_for: true,
            ..ThrottleConfig::default()
        },
        ..CommandApiConfig::for_tests()
    }
}

/// A sign-in from client address `from`: status, body and `Retry-After`.
async fn sign_in(env: &Env, from: &str, email: &str, password: &str) -> (u16, Value, Option<u64>) {
    let resp = env
        .http
        .post(env.url("/v1/auth/token"))
        .header("x-forwarded-for", from)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    (status, resp.json().await.unwrap_or(Value::Null), retry)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ins_are_throttled_per_account_and_per_client_address() {
    let env = Env::with(throttled(3, 6, 100), false).await;
    env.customer("ada@example.com").await;

    // Three wrong passwords for one account, then even the right one waits.
    for _ in 0..3 {
        let (s, _, _) = sign_in(&env, "203.0.113.1", "ada@example.com", "wrong password!").await;
        assert_eq!(s, 401);
    }
    let (s, b, retry) = sign_in(&env, "203.0.113.2", "ADA@example.com ", PASSWORD).await;
    assert_eq!(s, 429, "{b}");
    assert_eq!(b["code"], "too_many_attempts");
    let retry = retry.expect("Retry-After");
    assert!((1..=15 * 60).contains(&retry), "{retry}");
    assert_eq!(b["retry_after"], retry);

    // An unknown email is throttled the same way (nothing tells it apart).
    for _ in 0..3 {
        let (s, _, _) = sign_in(&env, "203.0.113.3", "nobody@example.com", "whatever123").await;
        assert_eq!(s, 401);
    }
    let (s, _, _) = sign_in(&env, "203.0.113.3", "nobody@example.com", "whatever123").await;
    assert_eq!(s, 429);

    // One address guessing many accounts is stopped too: .3 has failed 4 times already.
    let (s, _, _) = sign_in(&env, "203.0.113.3", "carol@example.com", "guess-0001").await;
    assert_eq!(s, 401);
    let (s, _, _) = sign_in(&env, "203.0.113.3", "dave@example.com", "guess-0002").await;
    assert_eq!(s, 401);
    let (s, _, _) = sign_in(&env, "203.0.113.3", "erin@example.com", "guess-0003").await;
    assert_eq!(s, 429, "the address is over its limit");
    // Other clients and accounts are not affected, and a success takes its attempt back.
    env.customer("bob@example.com").await;
    for _ in 0..5 {
        let (s, b, _) = sign_in(&env, "198.51.100.9", "bob@example.com", PASSWORD).await;
        assert_eq!(s, 200, "{b}");
    }
    // The throttle table keeps no email or address in the clear.
    let buckets: Vec<String> = sqlx::query_scalar("SELECT bucket FROM command.throttles")
        .fetch_all(&env.deps.pool)
        .await
        .unwrap();
    assert!(!buckets.is_empty());
    assert!(
        buckets
            .iter()
            .all(|b| !b.contains('@') && !b.contains("203.0")),
        "{buckets:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_email_costs_the_same_work_as_a_wrong_password() {
    // Production hashing cost, so the password check dominates the answer time.
    let config = CommandApiConfig {
        argon2_memory_kib: 19 * 1024,
        ..throttled(1000, 1000, 1000)
    };
    let env = Env::with(config, false).await;
    env.customer("ada@example.com").await;
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for i in 0..7 {
        let started = Instant::now();
        let (s, b, _) = sign_in(&env, "192.0.2.1", "ada@example.com", "wrong password!").await;
        known.push(started.elapsed());
        let started = Instant::now();
        let (s2, b2, _) = sign_in(
            &env,
            "192.0.2.1",
            &format!("ghost{i}@example.com"),
            "wrong password!",
        )
        .await;
        unknown.push(started.elapsed());
        // The same answer, too.
        assert_eq!((s, &b["detail"]), (s2, &b2["detail"]));
    }
    known.sort();
    unknown.sort();
    let (k, u) = (known[3], unknown[3]);
    // Without the dummy hash an unknown email answered in a few percent of the time.
    assert!(
        u.as_secs_f64() > 0.5 * k.as_secs_f64(),
        "median unknown {u:?} vs known {k:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_are_throttled_per_client_address_but_not_for_the_admin() {
    let env = Env::with(throttled(100, 100, 2), false).await;
    let register = |from: &'static str, email: String| {
        let env = &env;
        async move {
            env.http
                .post(env.url("/v1/customers"))
                .header("x-forwarded-for", from)
                .json(&json!({"email": email, "name": "Someone", "password": PASSWORD}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(register("203.0.113.5", "a1@example.com".into()).await, 201);
    assert_eq!(register("203.0.113.5", "a2@example.com".into()).await, 201);
    assert_eq!(register("203.0.113.5", "a3@example.com".into()).await, 429);
    assert_eq!(register("203.0.113.6", "a4@example.com".into()).await, 201);
    let admin = env.admin().await;
    for i in 0..3 {
        let s = env
            .http
            .post(env.url("/v1/customers"))
            .header("x-forwarded-for", "203.0.113.5")
            .bearer_auth(&admin)
            .json(&json!({"email": format!("b{i}@example.com"), "name": "Someone", "password": PASSWORD}))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(s, 201, "the back office registers customers unthrottled");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_revokes_every_earlier_token() {
    let env = Env::with(CommandApiConfig::for_tests(), false).await;
    let (id, first) = env.customer("ada@example.com").await;
    let (_, second) = env
        .post(
            "/v1/auth/token",
            None,
            json!({"email": "ada@example.com", "password": PASSWORD}),
        )
        .await;
    let second = second["access_token"].as_str().unwrap().to_owned();
    let profile = format!("/v1/customers/{id}");
    let touch = |token: String| {
        let env = &env;
        let profile = profile.clone();
        async move {
            env.request(
                Method::PATCH,
                &profile,
                Some(&token),
                &[],
                Some(json!({"name": "Ada King"})),
            )
            .await
        }
    };
    assert_eq!(touch(second.clone()).await.0, 200);

    let change = format!("/v1/customers/{id}/password");
    let (s, b) = env
        .post(
            &change,
            Some(&first),
            json!({"current_password": "not it at all", "new_password": "a new secret phrase"}),
        )
        .await;
    assert_eq!(
        (s, b["errors"][0]["code"].as_str()),
        (422, Some("wrong_password")),
        "{b}"
    );
    let (s, b) = env
        .post(
            &change,
            Some(&first),
            json!({"new_password": "a new secret phrase"}),
        )
        .await;
    assert_eq!(s, 422, "the customer must give the current password: {b}");
    let (_, bob) = env.customer("bob@example.com").await;
    let (s, _) = env
        .post(
            &change,
            Some(&bob),
            json!({"current_password": PASSWORD, "new_password": "bob owns this now"}),
        )
        .await;
    assert_eq!(s, 403, "no one changes another customer's password");
    let (s, b) = env
        .post(
            &change,
            Some(&first),
            json!({"current_password": PASSWORD, "new_password": "a new secret phrase"}),
        )
        .await;
    assert_eq!(s, 204, "{b}");

    // Both earlier tokens are refused at once; the old password no longer signs in.
    for token in [first, second] {
        let (s, b) = touch(token).await;
        assert_eq!(s, 401, "{b}");
        assert!(b["detail"].as_str().unwrap().contains("revoked"), "{b}");
    }
    let (s, _) = env
        .post(
            "/v1/auth/token",
            None,
            json!({"email": "ada@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(s, 401);
    let (s, b) = env
        .post(
            "/v1/auth/token",
            None,
            json!({"email": "ada@example.com", "password": "a new secret phrase"}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let fresh = b["access_token"].as_str().unwrap().to_owned();
    assert_eq!(touch(fresh.clone()).await.0, 200);

    // The admin may set one without the current password (and revokes the customer's too).
    let admin = env.admin().await;
    let (s, b) = env
        .post(
            &change,
            Some(&admin),
            json!({"new_password": "set by the back office"}),
        )
        .await;
    assert_eq!(s, 204, "{b}");
    assert_eq!(touch(fresh).await.0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_customers_tokens_and_keyed_sign_ins_stop_working_at_once() {
    let env = Env::with(CommandApiConfig::for_tests(), false).await;
    let (id, token) = env.customer("ada@example.com").await;
    // A sign-in with an Idempotency-Key is not recorded: no token is ever stored.
    let login = json!({"email": "ada@example.com", "password": PASSWORD});
    for _ in 0..2 {
        let (s, b) = env
            .request(
                Method::POST,
                "/v1/auth/token",
                None,
                &[("idempotency-key", "login-1")],
                Some(login.clone()),
            )
            .await;
        assert_eq!(s, 200, "{b}");
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM command.idempotency_keys")
        .fetch_one(&env.deps.pool)
        .await
        .unwrap();
    assert_eq!(stored, 0);

    let (s, b) = env
        .request(
            Method::DELETE,
            &format!("/v1/customers/{id}"),
            Some(&token),
            &[],
            None,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = env
        .request(
            Method::PATCH,
            &format!("/v1/customers/{id}"),
            Some(&token),
            &[],
            Some(json!({"name": "X"})),
        )
        .await;
    assert_eq!(s, 401, "{b}");
    let (s, _) = env
        .request(
            Method::POST,
            "/v1/auth/token",
            None,
            &[("idempotency-key", "login-1")],
            Some(login),
        )
        .await;
    assert_eq!(
        s, 401,
        "a replay never hands out a token of an erased account"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_records_keep_no_secret_and_a_replay_still_hands_the_guest_its_token() {
    let env = Env::start().await;
    let admin = env.admin().await;
    env.product(&admin, "HAT-1", 3).await;
    let (cart, cart_token) = env.anonymous_cart().await;
    let headers = [
        ("mercato-cart-token", cart_token.as_str()),
        ("idempotency-key", "checkout-1"),
    ];
    let (s, b) = env
        .request(
            Method::POST,
            &format!("/v1/carts/{cart}/items"),
            None,
            &headers[..1],
            Some(json!({"sku": "HAT-1", "quantity": 1})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let mut body = checkout_body("tok_visa");
    body["email"] = json!("guest@example.com");
    let checkout = format!("/v1/carts/{cart}/checkout");
    let (s, first) = env
        .request(Method::POST, &checkout, None, &headers, Some(body.clone()))
        .await;
    assert_eq!(s, 202, "{first}");
    let order_token = first["order_token"].as_str().unwrap().to_owned();
    let (s, again) = env
        .request(Method::POST, &checkout, None, &headers, Some(body))
        .await;
    assert_eq!(s, 202, "{again}");
    assert_eq!(again["order_token"].as_str(), Some(order_token.as_str()));
    let stored: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT response_body FROM command.idempotency_keys WHERE response_body IS NOT NULL",
    )
    .fetch_all(&env.deps.pool)
    .await
    .unwrap();
    assert!(!stored.is_empty());
    for body in stored {
        let text = String::from_utf8_lossy(&body);
        assert!(
            !text.contains(&order_token) && !text.contains("order_token"),
            "{text}"
        );
    }
    // A customer's cart has no token to leak: their access token opens it.
    let (_, ada) = env.customer("ada@example.com").await;
    let (s, b) = env
        .post("/v1/carts", Some(&ada), json!({"currency": "EUR"}))
        .await;
    assert_eq!(s, 201, "{b}");
    assert!(b.get("cart_token").is_none(), "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_guesses_cannot_slip_past_the_limit() {
    let env = Env::with(throttled(5, 1000, 1000), false).await;
    env.customer("ada@example.com").await;
    // Twenty guesses at once: at most the limit are checked, the rest wait.
    let guesses: Vec<_> = (0..20)
        .map(|i| {
            let env = &env;
            async move {
                sign_in(
                    env,
                    "203.0.113.20",
                    "ada@example.com",
                    &format!("guess-{i:04}"),
                )
                .await
                .0
            }
        })
        .collect();
    let answers = futures::future::join_all(guesses).await;
    let checked = answers.iter().filter(|s| **s == 401).count();
    let throttled = answers.iter().filter(|s| **s == 429).count();
    assert_eq!((checked, throttled), (5, 15), "{answers:?}");
}
