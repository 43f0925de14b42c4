//! The relay as a process: SIGKILL at any moment, standby takeover, graceful shutdown.

use std::time::Duration;

use mercato_event_store::testing::{server_url, TestDatabase};
use mercato_nats::testing::{append_to, assert_stream_is_log, counters, log, TestNats};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::process::{migrate, Mercato};

#[tokio::test]
async fn a_relay_killed_at_random_moments_still_publishes_every_event_exactly_once_in_order() {
    let db = TestDatabase::new().await;
    let nats = TestNats::new().await;
    let writer = {
        let store = counters(&db);
        tokio::spawn(async move {
            for round in 0..8 {
                append_to(&store, &format!("r{round}-"), 25).await;
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        })
    };
    // Kill the relay -9 three times while events keep coming, at different points.
    for pause in [150u64, 260, 90] {
        let relay = Mercato::start(&["relay"], &db, &nats);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        relay.kill9();
    }
    writer.await.unwrap();
    let relay = Mercato::start(&["relay"], &db, &nats);
    let stream = nats.wait_for_events(200).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(relay.terminate().code(), Some(0));

    assert_eq!(stream.len(), 200);
    assert_stream_is_log(&nats.stream_events().await, &log(&db).await);
}

#[tokio::test]
async fn a_standby_relay_process_takes_over_within_seconds_when_the_leader_is_killed() {
    let db = TestDatabase::new().await;
    let nats = TestNats::new().await;
    let store = counters(&db);
    let mut leader = Mercato::start(&["relay"], &db, &nats);
    leader.wait_for_log("relay is the leader", Duration::from_secs(10));
    let mut standby = Mercato::start(&["relay"], &db, &nats);
    append_to(&store, "a", 20).await;
    nats.wait_for_events(20).await;

    leader.kill9();
    let killed_at = std::time::Instant::now();
    standby.wait_for_log("relay is the leader", Duration::from_secs(10));
    let takeover = killed_at.elapsed();
    append_to(&store, "b", 20).await;
    let stream = nats.wait_for_events(40).await;
    assert_eq!(standby.terminate().code(), Some(0));

    assert!(
        takeover < Duration::from_secs(5),
        "takeover took {takeover:?}"
    );
    assert_stream_is_log(&stream, &log(&db).await);
}

#[tokio::test]
async fn serve_answers_metrics_and_stops_cleanly_on_sigterm() {
    let db = TestDatabase::new().await;
    let nats = TestNats::new().await;
    let serve = Mercato::start(&["serve"], &db, &nats);
    append_to(&counters(&db), "m", 5).await;
    nats.wait_for_events(5).await;

    let addr = serve.admin_addr.clone().unwrap();
    // The relay counts a publish once it has settled its ack, which may come a moment after
    // the message is on the stream.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let body = loop {
        let body = http_get(&addr, "/metrics").await;
        if body.contains("mercato_relay_published_total 5") || std::time::Instant::now() > deadline
        {
            break body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(body.contains("mercato_relay_published_total 5"), "{body}");
    assert!(
        body.contains("mercato_relay_commit_to_ack_seconds_bucket"),
        "{body}"
    );
    assert_eq!(http_get(&addr, "/healthz").await, "ok");

    assert_eq!(serve.terminate().code(), Some(0));
}

#[tokio::test]
async fn migrate_creates_a_missing_database_and_is_idempotent() {
    let name = format!("mercato_test_{}", Uuid::new_v4().simple());
    let base = server_url();
    let url = format!("{}/{}", base.rsplit_once('/').unwrap().0, name);

    assert!(migrate(&url));
    assert!(migrate(&url), "a second migrate must be a no-op");

    let mut conn = PgConnection::connect(&url).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    let mut admin = PgConnection::connect(&base).await.unwrap();
    sqlx::query(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
    for t in ["events", "log_checkpoints", "snapshots"] {
        assert!(tables.iter().any(|x| x == t), "{t} missing from {tables:?}");
    }
}

async fn http_get(addr: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.unwrap();
    let (head, body) = buf.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}
