//! The consumer runtime: ack after handling, redelivery on failure, dead letters, shutdown.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mercato_event_store::testing::TestDatabase;
use mercato_nats::dead_letters::dead_letters;
use mercato_nats::{headers, ConsumerConfig, Delivery, Handler, HandlerError, Worker};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use mercato_nats::testing::*;

/// Records what it applied; fails a chosen event on its first N deliveries (in a batch and
/// alone alike), like a handler whose dependency is down for a while.
#[derive(Default)]
struct Recorder {
    applied: Mutex<Vec<Uuid>>,
    fail_deliveries: Mutex<HashMap<Uuid, i64>>,
    calls: Mutex<u32>,
    batch_sizes: Mutex<Vec<usize>>,
    delay: Option<Duration>,
}

#[async_trait::async_trait]
impl Handler for Recorder {
    async fn handle(&self, batch: &[Delivery]) -> Result<(), HandlerError> {
        *self.calls.lock().unwrap() += 1;
        self.batch_sizes.lock().unwrap().push(batch.len());
        if let Some(d) = self.delay {
            tokio::time::sleep(d).await;
        }
        {
            let failures = self.fail_deliveries.lock().unwrap();
            for d in batch {
                if failures
                    .get(&d.event.event_id)
                    .is_some_and(|n| d.delivered <= *n)
                {
                    return Err(format!("cannot apply {}", d.event.event_id).into());
                }
            }
        }
        // All or nothing, like a handler that commits one transaction.
        self.applied
            .lock()
            .unwrap()
            .extend(batch.iter().map(|d| d.event.event_id));
        Ok(())
    }
}

fn quick(name: &str) -> ConsumerConfig {
    ConsumerConfig {
        retry_delay: Duration::from_millis(50),
        max_deliver: 3,
        ..ConsumerConfig::new(name)
    }
}

async fn bind(nats: &TestNats, config: ConsumerConfig) -> Worker {
    Worker::bind(nats.client.clone(), nats.js.clone(), &nats.config, config)
        .await
        .unwrap()
}

async fn run_until<F: Fn(&Recorder) -> bool>(worker: Worker, handler: Arc<Recorder>, done: F) {
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let h = handler.clone();
    let task = tokio::spawn(async move { worker.run(&*h, token).await.unwrap() });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done(&handler) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn a_failing_event_is_redelivered_and_a_poison_event_is_dead_lettered_without_blocking_others(
) {
    let db = TestDatabase::new().await;
    let nats = TestNats::new().await;
    append(&counters(&db), 30).await;
    let relay = RunningRelay::start(&db, &nats, fast_relay());
    let events = nats.wait_for_events(30).await;
    relay.stop().await;

    let transient = events[4].event_id;
    let poison = events[10].event_id;
    let handler = Arc::new(Recorder::default());
    handler
        .fail_deliveries
        .lock()
        .unwrap()
        .extend([(transient, 1), (poison, i64::MAX)]);
    let worker = bind(&nats, quick("projector")).await;
    let shutdown = CancellationToken::new();
    let (token, h) = (shutdown.clone(), handler.clone());
    let task = tokio::spawn(async move { worker.run(&*h, token).await.unwrap() });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let applied = handler
            .applied
            .lock()
            .unwrap()
            .iter()
            .collect::<HashSet<_>>()
            .len();
        let dead = nats.stream_count(&nats.config.dlq_stream()).await;
        if (applied >= 29 && dead >= 1) || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // A moment more: a wrongly repeated dead letter or redelivery would show.
    tokio::time::sleep(Duration::from_millis(300)).await;
    shutdown.cancel();
    task.await.unwrap();

    let applied_in_order = handler.applied.lock().unwrap().clone();
    // The transient event failed on its first delivery and was applied on a later one.
    assert!(applied_in_order.contains(&transient));
    let applied: HashSet<Uuid> = applied_in_order.iter().copied().collect();
    let expected: HashSet<Uuid> = events
        .iter()
        .map(|e| e.event_id)
        .filter(|id| *id != poison)
        .collect();
    assert_eq!(applied, expected);
    let dead = nats.messages(&nats.config.dlq_stream()).await;
    assert_eq!(dead.len(), 1);
    let dead_event: mercato_event_store::RecordedEvent =
        serde_json::from_slice(&dead[0].payload).unwrap();
    assert_eq!(dead_event.event_id, poison);
    assert_eq!(
        headers::get(&dead[0].headers, headers::DLQ_WORKER),
        Some("projector")
    );
    assert!(headers::get(&dead[0].headers, headers::DLQ_ERROR)
        .unwrap()
        .contains("cannot apply"));
    assert_eq!(
        headers::get(&dead[0].headers, headers::DLQ_DELIVERIES),
        Some("3")
    );
    // What `mercato projections dead-letters` lists, per worker.
    let listed = dead_letters(&nats.js, &nats.config, Some("projector"), 10)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].event.as_ref().map(|e| e.event_id), Some(poison));
    assert_eq!(
        (listed[0].worker.as_str(), listed[0].deliveries),
        ("projector", 3)
    );
    assert!(listed[0].error.contains("cannot apply"));
    assert_eq!(listed[0].stream_sequence, 11);
    let others = dead_letters(&nats.js, &nats.config, Some("mailer"), 10)
        .await
        .unwrap();
    assert!(others.is_empty());

    // Nothing is left pending: everything was acked, including the dead letter.
    let stream = nats.js.get_stream(&nats.config.stream).await.unwrap();
    let mut consumer: async_nats::jetstream::consumer::PullConsumer =
        stream.get_consumer("projector").await.unwrap();
    let info = consumer.info().await.unwrap();
    assert_eq!((info.num_pending, info.num_ack_pending), (0, 0), "{info:?}");
}

/// c0's first event fails on its first delivery; c0's later event must not be applied before it.
async fn assert_aggregate_order_survives_a_failure(batch_size: usize, name: &str) {
    let db = TestDatabase::new().await;
    let nats = TestNats::new().await;
    append(&counters(&db), 10).await; // aggregates c0..c4, two events each
    let relay = RunningRelay::start(&db, &nats, fast_relay());
    let events = nats.wait_for_events(10).await;
    relay.stop().await;

    let first_of_c0 = events
        .iter()
        .find(|e| e.aggregate_id == "c0")
        .unwrap()
        .event_id;
    let handler = Arc::new(Recorder::default());
    handler
        .fail_deliveries
        .lock()
        .unwrap()
        .insert(first_of_c0, 1);
    let config = ConsumerConfig {
        batch_size,
        ..quick(name)
    };
    let worker = bind(&nats, config).await;
    run_until(worker, handler.clone(), |h| {
        h.applied.lock().unwrap().len() >= 10
    })
    .await;

    let applied = handler.applied.lock().unwrap().clone();
    let c0: Vec<i64> = applied
        .iter()
        .filter_map(|id| events.iter().find(|e| e.event_id == *id))
        .filter(|e| e.aggregate_id == "c0")
        .map(|e| e.sequence)
        .collect();
    assert_eq!(c0, vec![1, 2], "c0's events were applied out of order");
    assert_eq!(applied.len(), 10, "an event was lost or applied twice");
}

#[tokio::test]
async fn later_events_of_a_failing_aggregate_in_the_same_batch_wait_for_it() {
    assert_aggregate_order_survives_a_failure(256, "ordered-batch").await;
}

#[tokio::test]
async fn later_events_of_a_failing_aggregate_in_later_batches_wait_for_it() {
    // One message per pull: c0's second event arrives in a later batch than its failed first.
    assert_aggregate_order_survives_a_failure(1, "ordered-across-batches").await;
}

#[tokio::test]
async fn shutdown_finishes_the_batch_in_hand_and_hands_back_the_rest() {
    let db = TestDatabase::new().await;
    let nats = TestNats::new().await;
    append(&counters(&db), 20).await;
    let relay = RunningRelay::start(&db, &nats, fast_relay());
    let events = nats.wait_for_events(20).await;
    relay.stop().await;

    // An ack wait far beyond the test: whatever the first worker neither acknowledged nor
    // handed back would not reach the second one in time.
    let config = |batch_size| ConsumerConfig {
        batch_size,
        ack_wait: Duration::from_secs(600),
        ..quick("graceful")
    };
    let first = Arc::new(Recorder {
        delay: Some(Duration::from_millis(300)),
        ..Recorder::default()
    });
    let worker = bind(&nats, config(5)).await;
    // Stop as soon as the handler is inside its (slow) first batch, while the pull stream
    // holds messages it has not handed to the handler yet.
    run_until(worker, first.clone(), |h| *h.calls.lock().unwrap() >= 1).await;
    let handled_first = first.applied.lock().unwrap().clone();
    assert!(
        !handled_first.is_empty(),
        "the batch in hand was not finished"
    );
    assert!(handled_first.len() < 20, "the worker did not stop early");
    // The next worker on the same durable consumer gets exactly the rest, at once (not after
    // the ack wait: the first worker handed back what it held but had not handled).
    let second = Arc::new(Recorder::default());
    let worker = bind(&nats, config(20)).await;
    let rest = 20 - handled_first.len();
    run_until(worker, second.clone(), |h| {
        h.applied.lock().unwrap().len() >= rest
    })
    .await;
    let handled_second = second.applied.lock().unwrap().clone();
    let mut all: Vec<Uuid> = handled_first
        .iter()
        .chain(&handled_second)
        .copied()
        .collect();
    all.sort();
    let mut expected: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
    expected.sort();
    assert_eq!(all, expected, "an event was lost or handled twice");
}

#[tokio::test]
async fn a_worker_behind_takes_everything_that_has_arrived_in_one_batch() {
    let db = TestDatabase::new().await;
    let nats = TestNats::new().await;
    append_concurrently(&db, 4, 100).await;
    let relay = RunningRelay::start(&db, &nats, fast_relay());
    nats.wait_for_events(400).await;
    relay.stop().await;

    // The first batch is whatever had arrived when the worker started; while the handler is
    // busy with it, the rest of the 400 arrive, and all of them must come as the next batch
    // (cut at tokio's cooperative budget, they came in batches of 8 and 119).
    let handler = Arc::new(Recorder {
        delay: Some(Duration::from_millis(300)),
        ..Recorder::default()
    });
    let worker = bind(
        &nats,
        ConsumerConfig {
            batch_size: 1024,
            ..quick("behind")
        },
    )
    .await;
    run_until(worker, handler.clone(), |h| {
        h.applied.lock().unwrap().len() >= 400
    })
    .await;
    assert_eq!(handler.applied.lock().unwrap().len(), 400);
    let sizes = handler.batch_sizes.lock().unwrap().clone();
    assert!(
        sizes.len() <= 2,
        "400 waiting events came in batches of {sizes:?}"
    );
}
