//! The relay: every committed event reaches the stream exactly once, in log order.

use std::time::Duration;

use mercato_event_store::checkpoint::Checkpoint;
use mercato_event_store::testing::TestDatabase;
use mercato_event_store::CheckpointStore;
use mercato_nats::headers;

use mercato_nats::testing::*;

#[tokio::test]
async fn every_appended_event_reaches_the_stream_once_in_log_order_with_its_headers() {
    let db = TestDatabase::new().await;
    let nats = TestNats::new().await;
    let store = counters(&db);
    append(&store, 20).await;
    let relay = RunningRelay::start(&db, &nats, fast_relay());
    append(&store, 30).await;

    let stream = nats.wait_for_events(50).await;

    assert_stream_is_log(&stream, &log(&db).await);
    let first = &nats.messages(&nats.config.stream).await[0];
    let event = &stream[0];
    assert_eq!(
        headers::get(&first.headers, "Nats-Msg-Id"),
        Some(event.event_id.to_string().as_str())
    );
    assert_eq!(
        headers::get(&first.headers, headers::POSITION),
        Some(event.position.to_string().as_str())
    );
    assert_eq!(
        headers::get(&first.headers, headers::EVENT_TYPE),
        Some("Added")
    );
    assert_eq!(
        headers::get(&first.headers, headers::EVENT_VERSION),
        Some("1.0")
    );
    let correlation = event.metadata.correlation_id.unwrap().to_string();
    assert_eq!(
        headers::get(&first.headers, headers::CORRELATION_ID),
        Some(correlation.as_str())
    );
    assert_eq!(
        first.subject.as_str(),
        format!("{}.events.Counter.c0", nats.config.subject_prefix)
    );
    relay.stop().await;

    // The checkpoint moved to the last published event.
    let cp = CheckpointStore::new(db.pool.clone())
        .load("relay")
        .await
        .unwrap();
    assert_eq!(cp.position, stream.last().unwrap().position);
}

#[tokio::test]
async fn a_relay_that_died_between_publish_and_checkpoint_publishes_nothing_twice() {
    let db = TestDatabase::new().await;
    let nats = TestNats::new().await;
    let store = counters(&db);
    append(&store, 25).await;
    let relay = RunningRelay::start(&db, &nats, fast_relay());
    nats.wait_for_events(25).await;
    relay.handle.abort();
    let _ = relay.handle.await;

    // What a crash after the acks but before the checkpoint write leaves behind.
    CheckpointStore::new(db.pool.clone())
        .reset("relay", Checkpoint::START)
        .await
        .unwrap();
    append(&store, 15).await;
    let relay = RunningRelay::start(&db, &nats, fast_relay());
    let stream = nats.wait_for_events(40).await;
    // Give a wrongly re-publishing relay the time to do it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    relay.stop().await;

    assert_stream_is_log(&nats.stream_events().await, &log(&db).await);
    assert_eq!(stream.len(), 40);
}

#[tokio::test]
async fn a_standby_relay_takes_over_when_the_leader_dies() {
    let db = TestDatabase::new().await;
    let nats = TestNats::new().await;
    let store = counters(&db);
    let leader = RunningRelay::start(&db, &nats, fast_relay());
    append(&store, 10).await;
    nats.wait_for_events(10).await;
    let standby = RunningRelay::start(&db, &nats, fast_relay());
    append(&store, 10).await;
    nats.wait_for_events(20).await;

    // The leader's task dies without any clean-up; its lock session ends with it.
    leader.handle.abort();
    let _ = leader.handle.await;
    append(&store, 10).await;
    let stream = nats.wait_for_events(30).await;
    standby.stop().await;

    assert_stream_is_log(&stream, &log(&db).await);
}

#[tokio::test]
async fn two_relays_never_interleave_or_duplicate_while_both_run() {
    let db = TestDatabase::new().await;
    let nats = TestNats::new().await;
    let store = counters(&db);
    let a = RunningRelay::start(&db, &nats, fast_relay());
    let b = RunningRelay::start(&db, &nats, fast_relay());
    append_concurrently(&db, 4, 25).await;
    append(&store, 5).await;
    let stream = nats.wait_for_events(105).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.stop().await;
    b.stop().await;

    assert_eq!(stream.len(), 105);
    assert_stream_is_log(&nats.stream_events().await, &log(&db).await);
}

#[tokio::test]
async fn an_event_whose_transaction_commits_late_is_published_in_log_order() {
    let db = TestDatabase::new().await;
    let nats = TestNats::new().await;
    let store = counters(&db);
    let relay = RunningRelay::start(&db, &nats, fast_relay());
    append(&store, 3).await;
    nats.wait_for_events(3).await;

    let mut late = db.pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload) \
         VALUES ('Raw', 'late', 1, 'Happened', '1.0', '{}')",
    )
    .execute(&mut *late)
    .await
    .unwrap();
    append(&store, 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        nats.stream_count(&nats.config.stream).await,
        3,
        "events behind an open transaction were published"
    );
    late.commit().await.unwrap();

    let stream = nats.wait_for_events(7).await;
    relay.stop().await;
    assert_stream_is_log(&stream, &log(&db).await);
    assert_eq!(stream[3].aggregate_id, "late");
}

#[tokio::test]
async fn a_nats_restart_loses_and_duplicates_nothing() {
    let db = TestDatabase::new().await;
    let mut server = PrivateNats::start();
    let nats = TestNats::on(&server.url).await;
    let store = counters(&db);
    let relay = RunningRelay::start(&db, &nats, fast_relay());
    append(&store, 20).await;
    nats.wait_for_events(20).await;

    server.kill();
    // Events committed while NATS is down wait in the outbox.
    append(&store, 20).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.restart();
    append(&store, 10).await;

    let stream = nats.wait_for_events(50).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    relay.stop().await;
    assert_eq!(stream.len(), 50);
    assert_stream_is_log(&nats.stream_events().await, &log(&db).await);
}

#[tokio::test]
async fn a_postgresql_crash_and_restart_loses_and_duplicates_nothing() {
    let server = mercato_event_store::testing::PrivatePostgres::start();
    let db = TestDatabase::on(&server.url).await;
    let nats = TestNats::new().await;
    let store = counters(&db);
    let relay = RunningRelay::start(&db, &nats, fast_relay());
    append_to(&store, "before", 20).await;
    nats.wait_for_events(20).await;

    server.crash_and_restart();
    // The pool reconnects; commands fail until the server is back, then succeed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut appended = 0;
    while appended < 20 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "postgresql did not come back"
        );
        let cmd = mercato_event_store::testing::counter::CounterCommand::Add(1);
        let meta = mercato_event_store::EventMetadata::default();
        match store
            .execute(&format!("after{}", appended % 5), cmd, &meta, None)
            .await
        {
            Ok(_) => appended += 1,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }

    let stream = nats.wait_for_events(40).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    relay.stop().await;
    // A command cut off by the crash may have committed before its answer was lost, and was
    // then retried: the log may hold more than 40 events, and the stream must hold the same.
    assert!(stream.len() >= 40);
    assert_stream_is_log(&nats.stream_events().await, &log(&db).await);
}

#[tokio::test]
async fn writers_that_do_not_notify_are_still_relayed_by_polling() {
    let db = TestDatabase::new().await;
    let nats = TestNats::new().await;
    let quiet_pool = mercato_event_store::database::connect(&mercato_event_store::DatabaseConfig {
        notify: false,
        ..db.config.clone()
    })
    .await
    .unwrap();
    let quiet = mercato_event_store::AggregateStore::new(
        quiet_pool,
        mercato_event_store::testing::counter::CounterServices::default(),
        &mercato_event_store::SnapshotPolicy::never(),
    );
    let relay = RunningRelay::start(
        &db,
        &nats,
        mercato_nats::RelayConfig {
            idle_poll: Duration::from_millis(20),
            ..fast_relay()
        },
    );
    append_to(&quiet, "q", 30).await;

    let stream = nats.wait_for_events(30).await;
    relay.stop().await;
    assert_stream_is_log(&stream, &log(&db).await);
}

#[tokio::test]
async fn relays_with_separate_locks_are_fenced_by_the_stream_sequence() {
    // Two leaders at once (as after a split brain): each publish is conditional on the stream's
    // last sequence, so the stream still holds every event once, in log order.
    let db = TestDatabase::new().await;
    let nats = TestNats::new().await;
    let named = |name: &str| mercato_nats::RelayConfig {
        name: name.into(),
        retry_delay: Duration::from_millis(20),
        ..fast_relay()
    };
    let a = RunningRelay::start(&db, &nats, named("relay-a"));
    let b = RunningRelay::start(&db, &nats, named("relay-b"));
    append_concurrently(&db, 4, 50).await;
    let stream = nats.wait_for_events(200).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    a.stop().await;
    b.stop().await;

    assert_eq!(stream.len(), 200);
    assert_stream_is_log(&nats.stream_events().await, &log(&db).await);
}

#[tokio::test]
async fn a_backlog_larger_than_a_batch_and_the_ack_window_is_relayed_in_order() {
    let db = TestDatabase::new().await;
    let nats = TestNats::new().await;
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload) \
         SELECT 'Bulk', 'b' || (g / 10), (g % 10) + 1, 'Loaded', '1.0', jsonb_build_object('n', g) \
         FROM generate_series(0, 1499) g",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let relay = RunningRelay::start(&db, &nats, fast_relay());
    append(&counters(&db), 20).await;

    let stream = nats.wait_for_events(1520).await;
    relay.stop().await;
    assert_stream_is_log(&stream, &log(&db).await);
}

#[tokio::test]
async fn a_relay_back_after_the_duplicate_window_still_publishes_nothing_twice() {
    let db = TestDatabase::new().await;
    let nats = TestNats::with_duplicate_window(Duration::from_secs(1)).await;
    let store = counters(&db);
    append(&store, 25).await;
    let relay = RunningRelay::start(&db, &nats, fast_relay());
    nats.wait_for_events(25).await;
    relay.handle.abort();
    let _ = relay.handle.await;
    CheckpointStore::new(db.pool.clone())
        .reset("relay", Checkpoint::START)
        .await
        .unwrap();
    // JetStream no longer remembers the message ids: only the stream's tail prevents duplicates.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    append(&store, 15).await;

    let relay = RunningRelay::start(&db, &nats, fast_relay());
    nats.wait_for_events(40).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    relay.stop().await;
    assert_stream_is_log(&nats.stream_events().await, &log(&db).await);
}

#[tokio::test]
async fn an_aggregate_id_with_a_line_break_is_published_not_fatal() {
    let db = TestDatabase::new().await;
    let nats = TestNats::new().await;
    // Written around the store's validation, as an import tool might.
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('Raw', E'a\\r\\nb', 1, 'Happened', '1.0', '{}', jsonb_build_object('traceparent', E'x\\ny'))",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let relay = RunningRelay::start(&db, &nats, fast_relay());
    append(&counters(&db), 3).await;

    let stream = nats.wait_for_events(4).await;
    relay.stop().await;
    assert_stream_is_log(&stream, &log(&db).await);
    assert_eq!(stream[0].aggregate_id, "a\r\nb");
    let first = &nats.messages(&nats.config.stream).await[0];
    assert_eq!(
        headers::get(&first.headers, headers::AGGREGATE_ID),
        Some("a%0D%0Ab")
    );
}

#[tokio::test]
async fn a_stream_whose_end_is_not_in_this_log_stops_the_relay() {
    let nats = TestNats::new().await;
    let first = TestDatabase::new().await;
    append(&counters(&first), 5).await;
    let relay = RunningRelay::start(&first, &nats, fast_relay());
    nats.wait_for_events(5).await;
    relay.stop().await;

    // Another database (another deployment, or a restore to an earlier point) on the same stream.
    let other = TestDatabase::new().await;
    append(&counters(&other), 5).await;
    let relay = mercato_nats::Relay::new(
        other.pool.clone(),
        other.config.clone(),
        nats.js.clone(),
        nats.config.clone(),
        fast_relay(),
    );
    let result = tokio::time::timeout(
        Duration::from_secs(20),
        relay.run(tokio_util::sync::CancellationToken::new()),
    )
    .await
    .expect("the relay must stop by itself");

    assert!(
        matches!(result, Err(mercato_nats::NatsError::Inconsistent { .. })),
        "{result:?}"
    );
    assert_eq!(
        nats.stream_count(&nats.config.stream).await,
        5,
        "it published into a foreign stream"
    );
}

#[tokio::test]
async fn a_replicated_stream_loses_and_duplicates_nothing_when_a_node_is_killed() {
    let mut cluster = PrivateNatsCluster::start();
    let nats = TestNats::replicated(&cluster.url, 3).await;
    let db = TestDatabase::new().await;
    let store = counters(&db);
    let relay = RunningRelay::start(&db, &nats, fast_relay());
    append_to(&store, "a", 30).await;
    nats.wait_for_events(30).await;

    // Kill one node (maybe the stream's leader): the other two keep a quorum.
    cluster.nodes[0].kill();
    append_to(&store, "b", 30).await;
    nats.wait_for_events(60).await;
    cluster.nodes[0].restart();
    append_to(&store, "c", 10).await;

    let stream = nats.wait_for_events(70).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    relay.stop().await;
    assert_eq!(stream.len(), 70);
    assert_stream_is_log(&nats.stream_events().await, &log(&db).await);
    let mut s = nats.js.get_stream(&nats.config.stream).await.unwrap();
    assert_eq!(s.info().await.unwrap().config.num_replicas, 3);
}
