//! Running commands: versions, conflicts, snapshots, positions.

use std::num::NonZeroUsize;
use std::sync::Arc;

use mercato_event_store::testing::TestDatabase;
use mercato_event_store::{
    AggregateStore, EventMetadata, EventStoreError, LogReader, SnapshotPolicy,
};
use tokio::sync::Barrier;
use uuid::Uuid;

use mercato_event_store::testing::counter::{
    Counter, CounterCommand, CounterError, CounterServices,
};

fn store(db: &TestDatabase, policy: &SnapshotPolicy) -> AggregateStore<Counter> {
    AggregateStore::new(db.pool.clone(), CounterServices::default(), policy)
}

#[tokio::test]
async fn a_command_appends_and_reports_version_and_position() {
    let db = TestDatabase::new().await;
    let store = store(&db, &SnapshotPolicy::never());
    let meta = EventMetadata::for_actor("admin:ops@example.com");

    let first = store
        .execute("c1", CounterCommand::Add(5), &meta, None)
        .await
        .unwrap();
    let second = store
        .execute("c1", CounterCommand::Add(2), &meta, Some(1))
        .await
        .unwrap();

    assert_eq!((first.version, first.events_appended), (1, 1));
    assert_eq!((second.version, second.events_appended), (2, 1));
    let (counter, version) = store.load("c1").await.unwrap();
    assert_eq!((counter.value, version), (7, 2));

    // The returned position is the event's place in the log, and metadata is stored with it.
    let events = crate::wait_readable(&LogReader::new(db.pool.clone()), 2).await;
    assert_eq!(events.len(), 2);
    assert_eq!(Some(events[1].position), second.position);
    assert!(first.position < second.position);
    assert_eq!(events[0].metadata, meta);
    assert_eq!(
        events[0].payload,
        serde_json::json!({"Added": {"by": 5, "total": 5}})
    );
}

#[tokio::test]
async fn a_command_that_decides_nothing_appends_nothing() {
    let db = TestDatabase::new().await;
    let store = store(&db, &SnapshotPolicy::never());
    let meta = EventMetadata::default();
    store
        .execute("c1", CounterCommand::Add(1), &meta, None)
        .await
        .unwrap();

    let noop = store
        .execute("c1", CounterCommand::Nothing, &meta, None)
        .await
        .unwrap();

    assert_eq!(
        (noop.version, noop.events_appended, noop.position),
        (1, 0, None)
    );
}

#[tokio::test]
async fn a_refused_command_is_a_domain_error_and_changes_nothing() {
    let db = TestDatabase::new().await;
    let store = store(&db, &SnapshotPolicy::never());

    let err = store
        .execute(
            "c1",
            CounterCommand::Add(0),
            &EventMetadata::default(),
            None,
        )
        .await
        .unwrap_err();

    assert!(
        matches!(err, EventStoreError::Domain(CounterError::Zero)),
        "{err:?}"
    );
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(count, 0);
}

#[tokio::test]
async fn a_stale_expected_version_is_a_typed_conflict() {
    let db = TestDatabase::new().await;
    let store = store(&db, &SnapshotPolicy::never());
    let meta = EventMetadata::default();
    store
        .execute("c1", CounterCommand::Add(1), &meta, None)
        .await
        .unwrap();

    let err = store
        .execute("c1", CounterCommand::Add(1), &meta, Some(0))
        .await
        .unwrap_err();

    match err {
        EventStoreError::Conflict {
            aggregate_type,
            aggregate_id,
            expected_version,
            actual_version,
        } => {
            assert_eq!(aggregate_type, "Counter");
            assert_eq!(aggregate_id, "c1");
            assert_eq!(expected_version, 0);
            assert_eq!(actual_version, Some(1));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(store.load("c1").await.unwrap().0.value, 1);
}

#[tokio::test]
async fn two_writers_racing_on_one_aggregate_get_one_success_and_one_typed_conflict() {
    let db = TestDatabase::new().await;
    let services = CounterServices {
        barrier: Some(Arc::new(Barrier::new(2))),
    };
    let store = Arc::new(AggregateStore::<Counter>::new(
        db.pool.clone(),
        services,
        &SnapshotPolicy::never(),
    ));
    let run = |by| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .execute(
                    "hot",
                    CounterCommand::Add(by),
                    &EventMetadata::default(),
                    None,
                )
                .await
        })
    };
    let (a, b) = (run(1), run(10));
    let results = [a.await.unwrap(), b.await.unwrap()];

    let ok: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    let conflicts: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(ok.len(), 1, "{results:?}");
    assert_eq!(conflicts.len(), 1);
    match conflicts[0] {
        EventStoreError::Conflict {
            aggregate_id,
            expected_version,
            ..
        } => assert_eq!((aggregate_id.as_str(), *expected_version), ("hot", 0)),
        other => panic!("expected a conflict, got {other:?}"),
    }
    // The loser changed nothing: the state is the winner's alone.
    let plain = AggregateStore::<Counter>::new(
        db.pool.clone(),
        CounterServices::default(),
        &SnapshotPolicy::never(),
    );
    let (counter, version) = plain.load("hot").await.unwrap();
    assert_eq!(version, 1);
    assert!(counter.value == 1 || counter.value == 10);
}

#[tokio::test]
async fn loading_from_a_snapshot_gives_the_same_state_as_replaying_every_event() {
    let db = TestDatabase::new().await;
    let policy = SnapshotPolicy::never().with("Counter", NonZeroUsize::new(3));
    let snapshotting = store(&db, &policy);
    let meta = EventMetadata::default();
    for i in 1..=10 {
        snapshotting
            .execute("c1", CounterCommand::Add(i), &meta, None)
            .await
            .unwrap();
    }

    let (from_snapshot, v1) = snapshotting.load("c1").await.unwrap();
    let (from_events, v2) = store(&db, &SnapshotPolicy::never())
        .load("c1")
        .await
        .unwrap();

    assert_eq!(
        from_events,
        Counter {
            value: 55,
            applied: 10
        }
    );
    assert_eq!((&from_snapshot, v1), (&from_events, v2));
    let (last_sequence, payload): (i64, serde_json::Value) = sqlx::query_as(
        "SELECT last_sequence, payload FROM snapshots WHERE aggregate_type = 'Counter' AND aggregate_id = 'c1'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    // The snapshot holds exactly the events up to its sequence, each applied once.
    assert_eq!(last_sequence, 9);
    assert_eq!(payload, serde_json::json!({"value": 45, "applied": 9}));

    // A snapshot this version cannot read (an older aggregate's, say) is only a cache: the
    // whole history is replayed instead.
    sqlx::query("UPDATE snapshots SET payload = '\"not a counter\"' WHERE aggregate_id = 'c1'")
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(snapshotting.load("c1").await.unwrap(), (from_events, v2));
}

#[tokio::test]
async fn many_concurrent_writers_on_distinct_aggregates_all_commit() {
    let db = TestDatabase::new().await;
    let store = Arc::new(store(&db, &SnapshotPolicy::default()));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let id = Uuid::new_v4().to_string();
            for _ in 0..10 {
                store
                    .execute(&id, CounterCommand::Add(1), &EventMetadata::default(), None)
                    .await
                    .unwrap();
            }
            id
        }));
    }
    for t in tasks {
        let id = t.await.unwrap();
        assert_eq!(store.load(&id).await.unwrap().0.value, 10);
    }
}

#[tokio::test]
async fn append_writes_all_events_atomically_or_none_on_a_version_clash() {
    use mercato_event_store::testing::counter::CounterEvent;
    let db = TestDatabase::new().await;
    let store = store(&db, &SnapshotPolicy::never());
    let meta = EventMetadata::for_actor("import");
    let batch = [
        CounterEvent::Added { by: 1, total: 1 },
        CounterEvent::Added { by: 2, total: 3 },
    ];

    let first = store.append("c1", 0, &batch, &meta).await.unwrap();
    let clash = store.append("c1", 1, &batch, &meta).await.unwrap_err();

    assert_eq!((first.version, first.events_appended), (2, 2));
    // Version 1 is taken: the first of the two rows clashes, so neither is written.
    assert!(clash.is_conflict(), "{clash:?}");
    let (counter, version) = store.load("c1").await.unwrap();
    assert_eq!((counter.value, version), (3, 2));
    let events = crate::wait_readable(&LogReader::new(db.pool.clone()), 2).await;
    assert_eq!(events.len(), 2);
    assert_eq!(Some(events[1].position), first.position);
    assert_eq!(events[0].metadata, meta);
}

#[tokio::test]
async fn appends_notify_listeners_unless_the_session_turned_notify_off() {
    use mercato_event_store::{DatabaseConfig, EVENTS_CHANNEL};
    use sqlx::postgres::PgListener;
    use std::time::Duration;

    let db = TestDatabase::new().await;
    let mut listener = PgListener::connect_with(&db.pool).await.unwrap();
    listener.listen(EVENTS_CHANNEL).await.unwrap();
    let quiet_pool = mercato_event_store::database::connect(&DatabaseConfig {
        notify: false,
        ..db.config.clone()
    })
    .await
    .unwrap();
    let quiet = AggregateStore::<Counter>::new(
        quiet_pool,
        CounterServices::default(),
        &SnapshotPolicy::never(),
    );
    let loud = store(&db, &SnapshotPolicy::never());
    let meta = EventMetadata::default();

    quiet
        .execute("q", CounterCommand::Add(1), &meta, None)
        .await
        .unwrap();
    let silent = tokio::time::timeout(Duration::from_millis(300), listener.recv()).await;
    loud.execute("l", CounterCommand::Add(1), &meta, None)
        .await
        .unwrap();
    let woken = tokio::time::timeout(Duration::from_secs(5), listener.recv()).await;

    assert!(silent.is_err(), "a notify=off session notified");
    assert!(woken.is_ok(), "an append did not notify");
}

#[tokio::test]
async fn an_append_ahead_of_the_aggregate_is_a_conflict_not_a_gap() {
    use mercato_event_store::testing::counter::CounterEvent;
    let db = TestDatabase::new().await;
    let store = store(&db, &SnapshotPolicy::never());
    let meta = EventMetadata::default();
    store
        .execute("c1", CounterCommand::Add(1), &meta, None)
        .await
        .unwrap();

    let ahead = [CounterEvent::Added { by: 1, total: 9 }];
    let err = store.append("c1", 5, &ahead, &meta).await.unwrap_err();

    assert!(err.is_conflict(), "{err:?}");
    let sequences: Vec<i64> = sqlx::query_scalar("SELECT sequence FROM events ORDER BY sequence")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(sequences, vec![1]);
}

#[tokio::test]
async fn ids_that_cannot_travel_and_events_too_large_to_publish_are_refused() {
    let db = TestDatabase::new().await;
    let store = store(&db, &SnapshotPolicy::never());
    let meta = EventMetadata::default();

    for bad in ["", "line\nbreak", "tab\there", &"x".repeat(257)] {
        let err = store
            .execute(bad, CounterCommand::Add(1), &meta, None)
            .await
            .unwrap_err();
        assert!(
            matches!(err, EventStoreError::InvalidAggregateId { .. }),
            "{bad:?}: {err:?}"
        );
    }
    let huge = "n".repeat(mercato_event_store::MAX_EVENT_BYTES + 1);
    let err = store
        .execute("c1", CounterCommand::Note(huge), &meta, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, EventStoreError::EventTooLarge { .. }),
        "{err:?}"
    );
    store
        .execute("c1", CounterCommand::Note("fits".into()), &meta, None)
        .await
        .unwrap();

    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(count, 1);
}
