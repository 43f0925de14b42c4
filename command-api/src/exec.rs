//! Running one command the way every writer here must: at most once per request (or process
//! command) id, with bounded jittered retries on lost optimistic-concurrency races, and
//! reporting where the aggregate stands afterwards.

use std::time::Duration;
use tracing::Instrument as _;

use cqrs_es::Aggregate;
use mercato_event_store::{AggregateStore, EventMetadata, EventStoreError, Position};
use rand::Rng;
use uuid::Uuid;

/// How many times a write that lost a race is retried (without `If-Match`).
const CONFLICT_RETRIES: u32 = 8;

/// Who writes and under which id.
#[derive(Debug, Clone)]
pub(crate) struct WriteContext {
    /// Stored as the events' `correlation_id`: the id of the request (derived from its
    /// `Idempotency-Key`) or of the process command. Indexed, so "did this id already append to
    /// that aggregate?" is one lookup.
    pub write_id: Uuid,
    /// Look for events of an earlier attempt with the same id first (keyed requests, the
    /// process).
    pub check_prior: bool,
    /// `customer:<id>`, `admin:<email>`, `guest:<order id>`, `anonymous`, `system:process`.
    pub actor: String,
    /// The event that caused this write (the order process).
    pub causation_id: Option<Uuid>,
    /// The flow this write belongs to: the request that started it (the order process passes
    /// on its event's); `None` for a write that starts a flow (its correlation id is then its
    /// write id).
    pub correlation_id: Option<Uuid>,
}

impl WriteContext {
    /// The metadata of the events this write appends, in the trace of the current span.
    fn metadata(&self) -> EventMetadata {
        EventMetadata {
            correlation_id: Some(self.correlation_id.unwrap_or(self.write_id)),
            write_id: Some(self.write_id),
            causation_id: self.causation_id,
            actor: Some(self.actor.clone()),
            traceparent: mercato_telemetry::traceparent(),
        }
    }
}

/// Where an aggregate stands after a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Written {
    pub aggregate_id: String,
    /// Its version after the write.
    pub version: u64,
    /// Position of the write's last event, or (when the write appended nothing) of the
    /// aggregate's latest event; `None` for an aggregate without events.
    pub position: Option<Position>,
    /// Events this call appended (0 for a no-op or an earlier attempt's write).
    pub appended: usize,
}

/// A write and the events it appended, each with its id.
pub(crate) type WrittenEvents<E> = (Written, Vec<(Uuid, E)>);

/// Runs `command` on `aggregate_id` unless an earlier attempt with the same write id already
/// appended to it. `expected_version` (from `If-Match`) makes it conditional; without it a
/// lost race is retried with jitter.
pub(crate) async fn execute<A>(
    store: &AggregateStore<A>,
    aggregate_id: &str,
    command: A::Command,
    ctx: &WriteContext,
    expected_version: Option<u64>,
) -> Result<Written, EventStoreError<A::Error>>
where
    A: Aggregate + Send + Sync,
    A::Command: Clone,
{
    execute_recorded(store, aggregate_id, command, ctx, expected_version)
        .await
        .map(|(written, _)| written)
}

/// [`execute`], also handing back the events this call appended, each with its id (none when
/// an earlier attempt had written, or the command was a no-op).
pub(crate) async fn execute_recorded<A>(
    store: &AggregateStore<A>,
    aggregate_id: &str,
    command: A::Command,
    ctx: &WriteContext,
    expected_version: Option<u64>,
) -> Result<WrittenEvents<A::Event>, EventStoreError<A::Error>>
where
    A: Aggregate + Send + Sync,
    A::Command: Clone,
{
    // One writer at a time per aggregate in this process: writes to a hot aggregate queue
    // instead of racing each other into conflicts and retries (ADR 0017).
    let _turn = turns::take(A::TYPE, aggregate_id).await;
    if ctx.check_prior {
        if let Some((version, position)) = store.prior_write(aggregate_id, ctx.write_id).await? {
            let written = Written {
                aggregate_id: aggregate_id.to_owned(),
                version,
                position: Some(position),
                appended: 0,
            };
            return Ok((written, Vec::new()));
        }
    }
    let append = tracing::info_span!("append", aggregate_type = A::TYPE, aggregate_id);
    let metadata = append.in_scope(|| ctx.metadata());
    async move {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match store
                .execute_recorded(aggregate_id, command.clone(), &metadata, expected_version)
                .await
            {
                Ok((committed, events)) => {
                    let position = match committed.position {
                        Some(p) => Some(p),
                        None => store.head(aggregate_id).await?.map(|(_, p)| p),
                    };
                    let written = Written {
                        aggregate_id: committed.aggregate_id,
                        version: committed.version,
                        position,
                        appended: committed.events_appended,
                    };
                    return Ok((written, committed.event_ids.into_iter().zip(events).collect()));
                }
                Err(EventStoreError::Conflict {
                    aggregate_type,
                    aggregate_id: id,
                    expected_version: expected,
                    actual_version: None,
                }) if expected_version.is_some() => {
                    // An `If-Match` write raced and lost: report the version now current.
                    let current = store.head(aggregate_id).await?.map_or(0, |(v, _)| v);
                    return Err(EventStoreError::Conflict {
                        aggregate_type,
                        aggregate_id: id,
                        expected_version: expected,
                        actual_version: Some(current),
                    });
                }
                Err(e)
                    if e.is_conflict() && expected_version.is_none() && attempt <= CONFLICT_RETRIES =>
                {
                    metrics::counter!("mercato_command_conflict_retries_total", "aggregate_type" => A::TYPE)
                        .increment(1);
                    let cap = 5 * u64::from(attempt * attempt);
                    let wait = rand::rng().random_range(1..=cap);
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
    .instrument(append)
    .await
}

/// Per-aggregate turns: a FIFO queue of the writers of each aggregate in this process.
mod turns {
    use std::collections::HashMap;
    use std::sync::{Arc, LazyLock, Mutex, Weak};

    use tokio::sync::OwnedMutexGuard;

    type Queue = tokio::sync::Mutex<()>;

    /// Aggregates with a writer, by `type/id`. Entries die with their last writer and are
    /// swept when the map grows.
    static QUEUES: LazyLock<Mutex<HashMap<String, Weak<Queue>>>> =
        LazyLock::new(|| Mutex::new(HashMap::new()));

    /// Waits for this aggregate's turn (in arrival order) and holds it until dropped.
    pub(super) async fn take(aggregate_type: &str, aggregate_id: &str) -> OwnedMutexGuard<()> {
        let queue = {
            let mut queues = QUEUES.lock().unwrap_or_else(|e| e.into_inner());
            let key = format!("{aggregate_type}/{aggregate_id}");
            match queues.get(&key).and_then(Weak::upgrade) {
                Some(queue) => queue,
                None => {
                    if queues.len() >= 4_096 {
                        queues.retain(|_, q| q.strong_count() > 0);
                    }
                    let queue = Arc::new(Queue::new(()));
                    queues.insert(key, Arc::downgrade(&queue));
                    queue
                }
            }
        };
        queue.lock_owned().await
    }

    #[cfg(test)]
    mod tests {
        use std::time::Duration;

        use super::*;

        #[tokio::test]
        async fn writers_of_one_aggregate_take_turns_and_others_do_not_wait() {
            let first = take("Stock", "A").await;
            let waiting = tokio::spawn(async { take("Stock", "A").await });
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert!(!waiting.is_finished(), "a second writer of A waits");
            let other = tokio::time::timeout(Duration::from_secs(1), take("Stock", "B")).await;
            assert!(other.is_ok(), "a writer of B does not wait for A");
            drop(first);
            tokio::time::timeout(Duration::from_secs(1), waiting)
                .await
                .expect("the second writer gets its turn")
                .unwrap();
        }
    }
}
