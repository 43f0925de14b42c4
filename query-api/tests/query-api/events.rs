//! `GET /v1/admin/events`: the event log as NDJSON, the same JSON as `RecordedEvent`, in log
//! order, with filters and a limit; admins only.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use mercato_aggregates::product::{Product, ProductCommand};
use mercato_event_store::testing::TestDatabase;
use mercato_event_store::{AggregateStore, EventMetadata, LogReader, Position, SnapshotPolicy};
use mercato_nats::testing::TestNats;
use mercato_projections::search::SearchIndex;
use mercato_query_api::{router, QueryApiConfig};
use mercato_web::{JwtKeys, Role};
use secrecy::SecretString;
use serde_json::{json, Value};
use tower::ServiceExt;

const SECRET: &str = "query-api-events-test-secret-0123";

async fn ndjson(
    router: &axum::Router,
    uri: &str,
    token: &str,
) -> (StatusCode, Option<String>, Vec<Value>) {
    let req = Request::get(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let response = router.clone().oneshot(req).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let lines = if status == StatusCode::OK {
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    } else {
        vec![serde_json::from_str(&text).unwrap()]
    };
    (status, content_type, lines)
}

#[tokio::test]
async fn admins_stream_the_log_as_ndjson_with_filters_and_a_limit() {
    let db = TestDatabase::new().await;
    mercato_projections::migrate(&db.pool).await.unwrap();
    let products: AggregateStore<Product> =
        AggregateStore::new(db.pool.clone(), (), &SnapshotPolicy::never())
            .with_upcasters(mercato_aggregates::upcasting::upcasters());
    let meta = EventMetadata::for_actor("test");
    for i in 0..3 {
        let sku = format!("SKU-{i}");
        let create: ProductCommand = serde_json::from_value(json!({"CreateProduct": {
            "sku": sku, "price": {"amount": 1000, "currency": "EUR"},
            "details": {"name": format!("Product {i}"), "description": "d", "brand": "Acme",
                        "category": ["audio"], "attributes": {}, "images": []}}}))
        .unwrap();
        products.execute(&sku, create, &meta, None).await.unwrap();
        products
            .execute(&sku, ProductCommand::PublishProduct, &meta, None)
            .await
            .unwrap();
    }
    // Every event the log hands out (the horizon may hold the newest back for a moment).
    let log = loop {
        let log = LogReader::new(db.pool.clone())
            .read(Position::START, &Default::default(), 100)
            .await
            .unwrap();
        if log.len() == 6 {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let expected: Vec<Value> = log
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();

    let nats = TestNats::new().await;
    let dir = std::env::temp_dir().join(format!("mercato-qapi-events-{}", uuid::Uuid::new_v4()));
    let search = SearchIndex::open(&dir).unwrap();
    let config = QueryApiConfig::new(SecretString::from(SECRET));
    let router = router(&config, db.pool.clone(), nats.client.clone(), search);
    let keys = JwtKeys::new(&SecretString::from(SECRET), Duration::from_secs(60));
    let admin = keys.issue("ops", Role::Admin, None).unwrap().access_token;
    let customer = crate::customer_token(&db.pool, &keys).await;

    let (status, content_type, all) = ndjson(&router, "/v1/admin/events", &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type.as_deref(), Some("application/x-ndjson"));
    assert_eq!(all, expected);

    let uri = format!("/v1/admin/events?after={}", log[2].position);
    assert_eq!(ndjson(&router, &uri, &admin).await.2, expected[3..]);

    let (_, _, published) = ndjson(
        &router,
        "/v1/admin/events?type=ProductPublished,ProductPriceChanged&limit=2",
        &admin,
    )
    .await;
    assert_eq!(published.len(), 2);
    assert!(published
        .iter()
        .all(|e| e["event_type"] == "ProductPublished"));
    assert_eq!(published[0], expected[1]);

    let (_, _, one) = ndjson(&router, "/v1/admin/events?aggregate_id=SKU-1", &admin).await;
    assert_eq!(one, expected[2..4]);

    let (status, _, problem) = ndjson(&router, "/v1/admin/events?after=soon", &admin).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem[0]["code"], "invalid_position");
    assert_eq!(
        ndjson(&router, "/v1/admin/events", &customer).await.0,
        StatusCode::FORBIDDEN
    );
    let _ = std::fs::remove_dir_all(&dir);
}
