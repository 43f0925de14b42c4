//! Idempotency-Key and If-Match through HTTP.

use serde_json::json;

use crate::harness::{send, Env};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_with_the_same_key_append_nothing_and_misuse_is_refused() {
    let env = Env::with(mercato_command_api::CommandApiConfig::for_tests(), false).await;
    let admin = env.admin().await;
    env.product(&admin, "KEY-1", 0).await;
    let receipt = |key: &str, qty: u32| {
        env.http
            .post(env.url("/v1/stock/KEY-1/receipts"))
            .bearer_auth(&admin)
            .header("Idempotency-Key", key)
            .json(&json!({"warehouse": "main", "quantity": qty}))
    };
    let (s, first) = send(receipt("k1", 5)).await;
    assert_eq!(s, 200, "{first}");
    let before = env.event_count().await;
    let resp = receipt("k1", 5).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["idempotent-replayed"], "true");
    assert_eq!(
        resp.headers()["mercato-position"],
        first["position"].as_str().unwrap()
    );
    let replayed: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(replayed, first);
    assert_eq!(env.event_count().await, before, "a replay appends nothing");

    // Same key, different body: 422.
    let (s, b) = send(receipt("k1", 6)).await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(b["code"], "idempotency_key_reused");

    // A request still in flight with that key: 409.
    sqlx::query(
        "INSERT INTO command.idempotency_keys (scope, key, request_hash, request_id, locked_until) \
         SELECT scope, 'k2', request_hash, gen_random_uuid(), now() + interval '1 minute' FROM command.idempotency_keys WHERE key = 'k1'",
    )
    .execute(&env.deps.pool)
    .await
    .unwrap();
    let (s, b) = send(receipt("k2", 5)).await;
    assert_eq!(s, 409, "{b}");
    assert_eq!(b["code"], "idempotency_key_in_use");

    // A crash after the append, before the answer was stored: the retry takes the key over
    // once its lock has lapsed and finds the earlier append instead of appending again.
    sqlx::query(
        "UPDATE command.idempotency_keys SET response_status = NULL, response_body = NULL, \
         locked_until = now() - interval '1 second' WHERE key = 'k1'",
    )
    .execute(&env.deps.pool)
    .await
    .unwrap();
    let (s, b) = send(receipt("k1", 5)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["version"], first["version"]);
    assert_eq!(
        env.event_count().await,
        before,
        "the recovered retry appends nothing"
    );
    let (stock, _) = env.stock().load("KEY-1").await.unwrap();
    assert_eq!(stock.total_available(), 5);

    // Keyed registration and checkout retries create nothing twice.
    let register = || {
        env.http
            .post(env.url("/v1/customers"))
            .header("Idempotency-Key", "reg-1")
            .json(&json!({"email": "bob@example.com", "name": "Bob", "password": "correct horse battery"}))
    };
    let (s, a) = send(register()).await;
    assert_eq!(s, 201, "{a}");
    let (s, b) = send(register()).await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(a["id"], b["id"]);
    let customers: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'CustomerRegistered'")
            .fetch_one(&env.deps.pool)
            .await
            .unwrap();
    assert_eq!(customers, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_match_makes_a_write_conditional_on_the_version() {
    let env = Env::with(mercato_command_api::CommandApiConfig::for_tests(), false).await;
    let admin = env.admin().await;
    env.product(&admin, "VER-1", 0).await;
    let price = |version: &str, amount: i64| {
        env.http
            .post(env.url("/v1/products/VER-1/price"))
            .bearer_auth(&admin)
            .header("If-Match", version)
            .json(&json!({"price": {"amount": amount, "currency": "EUR"}}))
    };
    let (s, b) = send(price("\"1\"", 900)).await;
    assert_eq!(s, 409, "{b}");
    assert_eq!(b["code"], "version_conflict");
    assert_eq!(b["current_version"], 2);
    let (s, b) = send(price("\"2\"", 900)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["version"], 3);
    let (s, b) = send(price("nonsense", 900)).await;
    assert_eq!(s, 400, "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_keys_do_not_share_one_scope_across_callers() {
    let env = Env::with(mercato_command_api::CommandApiConfig::for_tests(), false).await;
    // Opening an anonymous cart has no caller to scope a key to: the key is refused (a
    // replay would hand one stranger's cart token to another).
    let (s, b) = send(
        env.http
            .post(env.url("/v1/carts"))
            .header("Idempotency-Key", "same")
            .json(&json!({"currency": "EUR"})),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["code"], "idempotency_key_needs_caller");
    // A bearer token that is not valid does not make the request anonymous: 401.
    let (s, b) = send(
        env.http
            .post(env.url("/v1/carts"))
            .header("Idempotency-Key", "same")
            .bearer_auth("not-a-token")
            .json(&json!({"currency": "EUR"})),
    )
    .await;
    assert_eq!(s, 401, "{b}");
    // Registrations by two people with the same key are two registrations.
    let register = |email: &str| {
        env.http
            .post(env.url("/v1/customers"))
            .header("Idempotency-Key", "same")
            .json(&json!({"email": email, "name": "Someone", "password": "correct horse battery"}))
    };
    let (s, a) = send(register("one@example.com")).await;
    assert_eq!(s, 201, "{a}");
    let (s, b) = send(register("two@example.com")).await;
    assert_eq!(s, 201, "{b}");
    assert_ne!(a["id"], b["id"]);
    let (s, again) = send(register("one@example.com")).await;
    assert_eq!(s, 201, "{again}");
    assert_eq!(again["id"], a["id"], "the same caller's retry is replayed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_update_without_phone_keeps_the_phone_and_null_removes_it() {
    let env = Env::with(mercato_command_api::CommandApiConfig::for_tests(), false).await;
    let (id, token) = env.customer("ada@example.com").await;
    let patch = |body: serde_json::Value| {
        env.http
            .patch(env.url(&format!("/v1/customers/{id}")))
            .bearer_auth(&token)
            .json(&body)
    };
    let customers =
        mercato_event_store::AggregateStore::<mercato_aggregates::customer::Customer>::new(
            env.deps.pool.clone(),
            (),
            &mercato_event_store::SnapshotPolicy::never(),
        );
    let phone = |c: &mercato_aggregates::customer::Customer| {
        c.phone()
            .and_then(|p| p.expose())
            .map(|p| p.as_str().to_owned())
    };
    let (s, b) = send(patch(json!({"phone": "+44 20 7946 0958"}))).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = send(patch(json!({"name": "Ada King"}))).await;
    assert_eq!(s, 200, "{b}");
    let (c, _) = customers.load(&id).await.unwrap();
    assert_eq!(c.name().unwrap().expose().unwrap().as_str(), "Ada King");
    assert_eq!(phone(&c).as_deref(), Some("+44 20 7946 0958"));
    let (s, b) = send(patch(json!({"phone": null}))).await;
    assert_eq!(s, 200, "{b}");
    let (c, _) = customers.load(&id).await.unwrap();
    assert_eq!(phone(&c), None);
    // A form's empty field means the same as null.
    let (s, b) = send(patch(json!({"phone": "+44 20 7946 0958"}))).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = send(patch(json!({"phone": ""}))).await;
    assert_eq!(s, 200, "{b}");
    let (c, _) = customers.load(&id).await.unwrap();
    assert_eq!(phone(&c), None);
}
