use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use mercato_event_store::testing::TestDatabase;
use mercato_nats::testing::TestNats;
use mercato_projections::search::SearchIndex;
use mercato_query_api::{router, QueryApiConfig};
use mercato_web::{JwtKeys, Role};
use secrecy::SecretString;
use tower::ServiceExt;

const SECRET: &str = "query-api-test-secret-0123456789";

struct Api {
    _db: TestDatabase,
    _nats: TestNats,
    router: Router,
    keys: JwtKeys,
    dir: std::path::PathBuf,
}

impl Drop for Api {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn api() -> Api {
    let db = TestDatabase::new().await;
    mercato_projections::migrate(&db.pool).await.unwrap();
    sqlx::query(
        "INSERT INTO read.products (sku, name, description, brand, category, price_amount, currency, status, created_at, updated_at) \
         SELECT 'SKU-' || lpad(i::text, 3, '0'), 'Product ' || i, 'd', 'Acme', ARRAY['audio'], 100 * i, 'EUR', \
           CASE WHEN i = 5 THEN 'draft' ELSE 'published' END, now(), now() FROM generate_series(1, 25) i",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO read.projection_status (name, version) VALUES ('catalog', 1), ('stock', 1)",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let nats = TestNats::new().await;
    let dir = std::env::temp_dir().join(format!("mercato-qapi-{}", uuid::Uuid::new_v4()));
    let search = SearchIndex::open(&dir).unwrap();
    let mut config = QueryApiConfig::new(SecretString::from(SECRET));
    config.min_position_wait = Duration::from_millis(200);
    let router = router(&config, db.pool.clone(), nats.client.clone(), search);
    Api {
        _db: db,
        _nats: nats,
        router,
        keys: JwtKeys::new(&SecretString::from(SECRET), Duration::from_secs(60)),
        dir,
    }
}

async fn send(
    api: &Api,
    req: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
    let response = api.router.clone().oneshot(req).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, headers, body)
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn products_page_with_cursors_etags_and_problems() {
    let api = api().await;
    let (status, headers, body) = send(&api, get("/v1/products?limit=10")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["items"].as_array().unwrap().len(), 10);
    assert_eq!(body["has_more"], true);
    assert_eq!(headers[header::CACHE_CONTROL], "public, max-age=30");
    let mut seen = 0;
    let mut cursor = String::new();
    loop {
        let uri = if cursor.is_empty() {
            "/v1/products?limit=10".to_owned()
        } else {
            format!("/v1/products?limit=10&cursor={cursor}")
        };
        let (_, _, page) = send(&api, get(&uri)).await;
        seen += page["items"].as_array().unwrap().len();
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, 24, "drafts are not listed");

    // ETag and 304.
    let etag = headers[header::ETAG].to_str().unwrap().to_owned();
    let req = Request::get("/v1/products?limit=10")
        .header(header::IF_NONE_MATCH, &etag)
        .body(Body::empty())
        .unwrap();
    let (status, _, _) = send(&api, req).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);

    // Product detail; a draft is hidden from the public but not from the admin.
    let (status, _, p) = send(&api, get("/v1/products/SKU-002")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        p["price"],
        serde_json::json!({"amount": 200, "currency": "EUR"})
    );
    let (status, headers, problem) = send(&api, get("/v1/products/SKU-005")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
    assert_eq!(problem["code"], "product_not_found");
    let admin = api
        .keys
        .issue("admin@example.com", Role::Admin, None)
        .unwrap()
        .access_token;
    let req = Request::get("/v1/products/SKU-005")
        .header(header::AUTHORIZATION, format!("Bearer {admin}"))
        .body(Body::empty())
        .unwrap();
    let (status, headers, _) = send(&api, req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers[header::CACHE_CONTROL],
        "private, no-cache",
        "what only the admin sees never sits in a shared cache"
    );

    // Bad input.
    let (status, _, problem) = send(&api, get("/v1/products?limit=0")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem["code"], "invalid_limit");
    assert_eq!(
        send(&api, get("/v1/products?cursor=%%%")).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        send(&api, get("/v1/search?sort=cheapest")).await.0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn products_newest_first_and_drafts_for_the_admin_only() {
    let api = api().await;
    // SKU-001 is the oldest, SKU-025 the newest; SKU-008 to SKU-016 were created in the same
    // instant, across a page boundary: SKU order breaks the tie, and paging neither repeats
    // nor skips one.
    sqlx::query(
        "UPDATE read.products SET created_at = now() - make_interval(mins => \
           100 - CASE WHEN substr(sku, 5)::int BETWEEN 8 AND 16 THEN 8 ELSE substr(sku, 5)::int END)",
    )
    .execute(&api._db.pool)
    .await
    .unwrap();
    let mut skus = Vec::new();
    let mut uri = "/v1/products?sort=newest&limit=7".to_owned();
    loop {
        let (status, _, page) = send(&api, get(&uri)).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for item in page["items"].as_array().unwrap() {
            skus.push(item["sku"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => uri = format!("/v1/products?sort=newest&limit=7&cursor={c}"),
            None => break,
        }
    }
    let expected: Vec<String> = (1..=25)
        .filter(|i| *i != 5)
        .rev()
        .map(|i| format!("SKU-{i:03}"))
        .collect();
    assert_eq!(skus, expected, "every published product once, newest first");

    let (status, _, problem) = send(&api, get("/v1/products?status=draft")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    let admin = api
        .keys
        .issue("admin@example.com", Role::Admin, None)
        .unwrap()
        .access_token;
    let req = Request::get("/v1/products?status=draft")
        .header(header::AUTHORIZATION, format!("Bearer {admin}"))
        .body(Body::empty())
        .unwrap();
    let (status, headers, drafts) = send(&api, req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(drafts["items"][0]["sku"], "SKU-005");
    assert_eq!(drafts["items"].as_array().unwrap().len(), 1);
    assert_eq!(headers[header::CACHE_CONTROL], "private, no-cache");
    for bad in ["/v1/products?sort=oldest", "/v1/products?status=gone"] {
        assert_eq!(
            send(&api, get(bad)).await.0,
            StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }
}

#[tokio::test]
async fn auth_and_read_your_writes() {
    let api = api().await;
    let (status, _, problem) = send(&api, get("/v1/orders")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(problem["status"], 401);
    let customer = crate::customer_token(&api._db.pool, &api.keys).await;
    let req = Request::get("/v1/admin/projections")
        .header(header::AUTHORIZATION, format!("Bearer {customer}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&api, req).await.0, StatusCode::FORBIDDEN);
    let req = Request::get("/v1/orders")
        .header(header::AUTHORIZATION, format!("Bearer {customer}"))
        .body(Body::empty())
        .unwrap();
    let (status, _, page) = send(&api, req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["items"], serde_json::json!([]));

    // A token of a past transaction the projections have not reached: 503 stale-read with
    // Retry-After.
    let (last_tx,): (String,) =
        sqlx::query_as("SELECT (pg_snapshot_xmax(pg_current_snapshot())::text::bigint - 1)::text")
            .fetch_one(&api._db.pool)
            .await
            .unwrap();
    let req = Request::get("/v1/products/SKU-001")
        .header("mercato-min-position", format!("{last_tx}.1"))
        .body(Body::empty())
        .unwrap();
    let (status, headers, problem) = send(&api, req).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(problem["code"], "stale-read");
    assert!(headers.contains_key(header::RETRY_AFTER));
    // A token of a transaction that has not happened was never issued: 400 at once.
    let req = Request::get("/v1/products/SKU-001")
        .header("mercato-min-position", "999999999999.1")
        .body(Body::empty())
        .unwrap();
    let (status, _, problem) = send(&api, req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem["code"], "unknown_min_position");
    // A reached token answers at once; a malformed one is a 400.
    let req = Request::get("/v1/products/SKU-001")
        .header("mercato-min-position", "0.0")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&api, req).await.0, StatusCode::OK);
    let req = Request::get("/v1/products/SKU-001")
        .header("mercato-min-position", "soon")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&api, req).await.0, StatusCode::BAD_REQUEST);

    // The OpenAPI document lists every route.
    let (status, _, spec) = send(&api, get("/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    for path in [
        "/v1/products",
        "/v1/products/{sku}",
        "/v1/products/{sku}/recommendations",
        "/v1/search",
        "/v1/stock/{sku}",
        "/v1/carts/{id}",
        "/v1/orders",
        "/v1/orders/{id}",
        "/v1/customers/me",
        "/v1/admin/sales",
        "/v1/admin/projections",
    ] {
        assert!(
            spec["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI document"
        );
    }
}

#[tokio::test]
async fn nul_characters_anywhere_are_a_4xx_problem_on_every_route_and_headers_are_safe() {
    let api = api().await;
    let (_, _, spec) = send(&api, get("/openapi.json")).await;
    let admin = api
        .keys
        .issue("admin@example.com", Role::Admin, None)
        .unwrap()
        .access_token;
    let paths = spec["paths"].as_object().unwrap();
    assert_eq!(paths.len(), 17, "every route of the query API");
    for (path, ops) in paths {
        let mut concrete = String::new();
        let mut rest = path.as_str();
        while let Some(start) = rest.find('{') {
            concrete.push_str(&rest[..start]);
            concrete.push_str("A%00");
            rest = &rest[rest.find('}').unwrap() + 1..];
        }
        concrete.push_str(rest);
        for method in ops.as_object().unwrap().keys() {
            let with_nul_query = format!(
                "{}?q=%00&category=%00&cursor=%00",
                path.replace(['{', '}'], "")
            );
            let uris = if concrete == *path {
                vec![with_nul_query]
            } else {
                vec![concrete.clone(), with_nul_query]
            };
            for uri in uris {
                let req = Request::builder()
                    .method(method.to_uppercase().as_str())
                    .uri(&uri)
                    .header(header::AUTHORIZATION, format!("Bearer {admin}"))
                    .body(Body::empty())
                    .unwrap();
                let (status, headers, body) = send(&api, req).await;
                assert!(status.is_client_error(), "{method} {uri}: {status} {body}");
                assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
                assert_eq!(headers["x-content-type-options"], "nosniff");
                assert_eq!(headers[header::CACHE_CONTROL], "no-store");
            }
        }
    }
    // A crafted cursor that decodes to a NUL is refused, not sent to the database.
    let cursor = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, "a\0b");
    let (status, _, problem) = send(&api, get(&format!("/v1/products?cursor={cursor}"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    // Public catalog answers vary by caller; the docs load under their own policy.
    let (_, headers, _) = send(&api, get("/v1/products?limit=1")).await;
    assert!(headers
        .get_all(header::VARY)
        .iter()
        .any(|v| v == "authorization"));
    let (status, headers, _) = send(&api, get("/docs/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .contains("script-src 'self'"));
}
