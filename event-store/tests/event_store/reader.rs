//! The gap-safe log order: no event skipped, none read twice, one stable order.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use mercato_event_store::testing::TestDatabase;
use mercato_event_store::{
    AggregateStore, EventMetadata, LogFilter, LogReader, Position, RecordedEvent, SnapshotPolicy,
};
use sqlx::PgPool;
use uuid::Uuid;

use mercato_event_store::testing::counter::{Counter, CounterCommand, CounterServices};

async fn append_raw(conn: &mut sqlx::PgConnection, aggregate_id: &str) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload) \
         VALUES ('Raw', $1, 1, 'Happened', '1.0', '{}') RETURNING event_id",
    )
    .bind(aggregate_id)
    .fetch_one(conn)
    .await
    .unwrap()
}

async fn read_all(reader: &LogReader) -> Vec<RecordedEvent> {
    reader
        .read(Position::START, &LogFilter::default(), 1000)
        .await
        .unwrap()
}

/// Reads after `after` until at least `count` events are readable. The horizon is
/// cluster-wide, so a transaction that another test holds open (in its own database) may
/// delay visibility, and it may release committed events a prefix at a time (the earlier
/// ones first, never one past a hidden one).
async fn read_eventually(reader: &LogReader, after: Position, count: usize) -> Vec<RecordedEvent> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let events = reader
            .read(after, &LogFilter::default(), 1000)
            .await
            .unwrap();
        if events.len() >= count || tokio::time::Instant::now() > deadline {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn ids(events: &[RecordedEvent]) -> Vec<Uuid> {
    events.iter().map(|e| e.event_id).collect()
}

/// Transaction A appends first and stays open; B appends after it and commits.
async fn open_a_then_commit_b(
    pool: &PgPool,
) -> (sqlx::Transaction<'static, sqlx::Postgres>, Uuid, Uuid) {
    let mut a = pool.begin().await.unwrap();
    let a_id = append_raw(&mut a, "a").await;
    let mut b = pool.begin().await.unwrap();
    let b_id = append_raw(&mut b, "b").await;
    b.commit().await.unwrap();
    (a, a_id, b_id)
}

#[tokio::test]
async fn a_late_committing_transaction_holds_back_later_events_until_it_commits() {
    let db = TestDatabase::new().await;
    let reader = LogReader::new(db.pool.clone());
    let (a, a_id, b_id) = open_a_then_commit_b(&db.pool).await;

    // B committed, but A (older) is open: handing out B now would let A's event land behind a
    // checkpoint already past it.
    assert!(read_all(&reader).await.is_empty());
    // The read was empty, yet there is something to come back for.
    assert!(reader.has_unread(Position::START).await.unwrap());
    let health = reader.health(Position::START).await.unwrap();
    assert!(health.held_back >= 1, "{health:?}");

    a.commit().await.unwrap();

    let events = read_eventually(&reader, Position::START, 2).await;
    assert_eq!(ids(&events), vec![a_id, b_id]);
    assert!(!reader.has_unread(events[1].position).await.unwrap());
}

#[tokio::test]
async fn an_aborted_transaction_releases_the_events_behind_it() {
    let db = TestDatabase::new().await;
    let reader = LogReader::new(db.pool.clone());
    let (a, _a_id, b_id) = open_a_then_commit_b(&db.pool).await;
    assert!(read_all(&reader).await.is_empty());

    a.rollback().await.unwrap();

    assert_eq!(
        ids(&read_eventually(&reader, Position::START, 1).await),
        vec![b_id]
    );
}

#[tokio::test]
async fn a_checkpointed_reader_resumes_without_skipping_a_late_commit() {
    let db = TestDatabase::new().await;
    let reader = LogReader::new(db.pool.clone());
    let mut conn = db.pool.acquire().await.unwrap();
    let first = append_raw(&mut conn, "first").await;
    let batch = read_eventually(&reader, Position::START, 1).await;
    assert_eq!(ids(&batch), vec![first]);
    let checkpoint = batch[0].position;

    let (a, a_id, b_id) = open_a_then_commit_b(&db.pool).await;
    let during = reader
        .read(checkpoint, &LogFilter::default(), 100)
        .await
        .unwrap();
    a.commit().await.unwrap();
    let after = read_eventually(&reader, checkpoint, 2).await;

    assert!(during.is_empty());
    assert_eq!(ids(&after), vec![a_id, b_id]);
}

#[tokio::test]
async fn concurrent_writers_and_one_tailing_reader_see_every_event_exactly_once_in_a_stable_order()
{
    const WRITERS: usize = 12;
    const PER_WRITER: usize = 40;
    let db = TestDatabase::new().await;
    let store = Arc::new(AggregateStore::<Counter>::new(
        db.pool.clone(),
        CounterServices::default(),
        &SnapshotPolicy::never(),
    ));
    let reader = LogReader::new(db.pool.clone());

    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for _ in 0..PER_WRITER {
                // Half the writers share aggregates, so some commits conflict and retry.
                let id = if w % 2 == 0 {
                    format!("shared-{}", w % 4)
                } else {
                    format!("own-{w}")
                };
                loop {
                    match store
                        .execute(&id, CounterCommand::Add(1), &EventMetadata::default(), None)
                        .await
                    {
                        Ok(_) => break,
                        Err(e) if e.is_conflict() => tokio::task::yield_now().await,
                        Err(e) => panic!("{e:?}"),
                    }
                }
            }
        }));
    }

    // Tail the log while the writers run, in small batches, exactly as the relay does.
    let mut seen = Vec::new();
    let mut checkpoint = Position::START;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while seen.len() < WRITERS * PER_WRITER {
        assert!(
            tokio::time::Instant::now() < deadline,
            "reader stalled at {}",
            seen.len()
        );
        let batch = reader
            .read(checkpoint, &LogFilter::default(), 7)
            .await
            .unwrap();
        match batch.last() {
            Some(last) => checkpoint = last.position,
            None => tokio::time::sleep(Duration::from_millis(2)).await,
        }
        seen.extend(batch);
    }
    for w in writers {
        w.await.unwrap();
    }

    let unique: HashSet<Uuid> = seen.iter().map(|e| e.event_id).collect();
    if unique.len() != seen.len() {
        // Diagnostics: a duplicate means a batch was not in position order.
        let mut first_at = std::collections::HashMap::new();
        for (i, e) in seen.iter().enumerate() {
            if let Some(j) = first_at.insert(e.event_id, i) {
                eprintln!("event {} at {} seen at {j} and {i}", e.event_id, e.position);
            }
        }
    }
    assert_eq!(
        unique.len(),
        WRITERS * PER_WRITER,
        "an event was read twice"
    );
    assert!(reader
        .read(checkpoint, &LogFilter::default(), 10)
        .await
        .unwrap()
        .is_empty());
    // Replay from the start gives the very order the live tail saw.
    let replay = reader
        .read(Position::START, &LogFilter::default(), 10_000)
        .await
        .unwrap();
    assert_eq!(ids(&replay), ids(&seen));
    // Per aggregate, the log order is the aggregate's own sequence order.
    let mut last_seq = std::collections::HashMap::new();
    for e in &seen {
        let prev = last_seq
            .insert(e.aggregate_id.clone(), e.sequence)
            .unwrap_or(0);
        assert_eq!(e.sequence, prev + 1, "{} out of order", e.aggregate_id);
    }
}

#[tokio::test]
async fn filters_narrow_the_log_without_changing_its_order() {
    let db = TestDatabase::new().await;
    let store = AggregateStore::<Counter>::new(
        db.pool.clone(),
        CounterServices::default(),
        &SnapshotPolicy::never(),
    );
    let meta = EventMetadata::default();
    let before = Utc::now();
    for id in ["x", "y", "x", "y", "x"] {
        store
            .execute(id, CounterCommand::Add(1), &meta, None)
            .await
            .unwrap();
    }
    let mut conn = db.pool.acquire().await.unwrap();
    append_raw(&mut conn, "x").await;
    let reader = LogReader::new(db.pool.clone());
    crate::wait_readable(&reader, 6).await;

    let by_id = LogFilter {
        aggregate_id: Some("x".into()),
        ..LogFilter::default()
    };
    let xs = reader.read(Position::START, &by_id, 100).await.unwrap();
    assert_eq!(xs.len(), 4);

    let by_type_and_id = LogFilter {
        aggregate_type: Some("Counter".into()),
        aggregate_id: Some("x".into()),
        ..LogFilter::default()
    };
    let counter_xs = reader
        .read(Position::START, &by_type_and_id, 100)
        .await
        .unwrap();
    assert_eq!(
        counter_xs.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );

    let limited = reader
        .read(Position::START, &LogFilter::default(), 2)
        .await
        .unwrap();
    assert_eq!(limited.len(), 2);
    let rest = reader
        .read(limited[1].position, &LogFilter::default(), 100)
        .await
        .unwrap();
    assert_eq!(rest.len(), 4);

    let none_yet = LogFilter {
        recorded_to: Some(before),
        ..LogFilter::default()
    };
    assert!(reader
        .read(Position::START, &none_yet, 100)
        .await
        .unwrap()
        .is_empty());
    let since = LogFilter {
        recorded_from: Some(before),
        ..LogFilter::default()
    };
    assert_eq!(
        reader
            .read(Position::START, &since, 100)
            .await
            .unwrap()
            .len(),
        6
    );

    assert_eq!(reader.head().await.unwrap(), Some(rest[3].position));

    let raw_type = xs.last().unwrap().event_type.clone();
    let by_event_type = LogFilter {
        event_types: vec![raw_type.clone()],
        ..LogFilter::default()
    };
    let raw = reader
        .read(Position::START, &by_event_type, 100)
        .await
        .unwrap();
    assert!(!raw.is_empty() && raw.iter().all(|e| e.event_type == raw_type));
    assert!(raw.len() < 6, "the type filter must narrow the log");
    assert_eq!(
        reader.count(Position::START, &by_event_type).await.unwrap(),
        i64::try_from(raw.len()).unwrap()
    );

    let until_second = LogFilter {
        until: Some(limited[1].position),
        ..LogFilter::default()
    };
    assert_eq!(
        reader
            .read(Position::START, &until_second, 100)
            .await
            .unwrap(),
        limited,
        "`until` is inclusive and keeps the log order"
    );
}

#[tokio::test]
async fn transaction_ids_order_as_numbers_not_as_text() {
    let db = TestDatabase::new().await;
    // Plant events as if written by transactions 9, 10 and 100 (long finished, so readable):
    // as text they would sort 10, 100, 9.
    for (tx, id) in [("100", "c"), ("9", "a"), ("10", "b")] {
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, tx_id) \
             VALUES ('Raw', $1, 1, 'Happened', '1.0', '{}', $2::text::xid8)",
        )
        .bind(id)
        .bind(tx)
        .execute(&db.pool)
        .await
        .unwrap();
    }
    let reader = LogReader::new(db.pool.clone());

    let all = read_eventually(&reader, Position::START, 3).await;
    let order: Vec<u64> = all.iter().map(|e| e.position.tx_id()).collect();
    assert_eq!(order, vec![9, 10, 100]);
    let after_nine = reader
        .read(all[0].position, &LogFilter::default(), 1)
        .await
        .unwrap();
    assert_eq!(after_nine[0].position.tx_id(), 10);
    assert_eq!(reader.head().await.unwrap().map(|p| p.tx_id()), Some(100));
}

#[tokio::test]
async fn encoded_events_decode_to_exactly_the_recorded_events() {
    let db = TestDatabase::new().await;
    let store = AggregateStore::<Counter>::new(
        db.pool.clone(),
        CounterServices::default(),
        &SnapshotPolicy::never(),
    );
    let full = EventMetadata {
        correlation_id: Some(Uuid::new_v4()),
        write_id: None,
        causation_id: Some(Uuid::new_v4()),
        actor: Some("customer:7".into()),
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
    };
    store
        .execute("x.1", CounterCommand::Add(3), &full, None)
        .await
        .unwrap();
    store
        .execute(
            "x.1",
            CounterCommand::Add(-1),
            &EventMetadata::default(),
            None,
        )
        .await
        .unwrap();
    let mut conn = db.pool.acquire().await.unwrap();
    append_raw(&mut conn, "raw").await;
    let reader = LogReader::new(db.pool.clone());
    let recorded = crate::wait_readable(&reader, 3).await;

    let encoded = reader.read_encoded(Position::START, 100).await.unwrap();

    let decoded: Vec<RecordedEvent> = encoded
        .iter()
        .map(|e| serde_json::from_str(&e.body).unwrap())
        .collect();
    assert_eq!(decoded, recorded);
    assert_eq!(
        encoded[0].correlation_id,
        full.correlation_id.map(|u| u.to_string())
    );
    assert_eq!(encoded[0].traceparent, full.traceparent);
    assert_eq!(encoded[2].correlation_id, None);
    let later = reader.read_encoded(encoded[0].position, 100).await.unwrap();
    assert_eq!(later.len(), 2);
}
