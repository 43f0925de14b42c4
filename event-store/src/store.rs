//! Running commands against aggregates persisted in PostgreSQL.

use std::collections::HashMap;
use std::num::NonZeroUsize;

use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::{EventUpcaster, PersistedEventStore};
use cqrs_es::{Aggregate, AggregateError, EventStore as _};
use postgres_es::PostgresEventRepository;
use sqlx::PgPool;

use crate::error::EventStoreError;
use crate::metadata::EventMetadata;
use crate::position::Position;

/// How often each aggregate type writes a snapshot (every N events; `off` for never).
///
/// Parsed from `default=100,Stock=50,Order=off`: aggregates with long histories (a hot SKU's
/// stock) snapshot often, short-lived ones (orders) need none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotPolicy {
    default_every: Option<NonZeroUsize>,
    per_type: HashMap<String, Option<NonZeroUsize>>,
}

impl Default for SnapshotPolicy {
    fn default() -> Self {
        Self {
            default_every: NonZeroUsize::new(100),
            per_type: HashMap::new(),
        }
    }
}

impl SnapshotPolicy {
    /// No snapshots at all: every load replays the aggregate's whole history.
    pub fn never() -> Self {
        Self {
            default_every: None,
            per_type: HashMap::new(),
        }
    }

    /// Snapshot `aggregate_type` every `every` events (`None`: never).
    pub fn with(mut self, aggregate_type: &str, every: Option<NonZeroUsize>) -> Self {
        self.per_type.insert(aggregate_type.to_owned(), every);
        self
    }

    /// The interval for one aggregate type.
    pub fn every(&self, aggregate_type: &str) -> Option<NonZeroUsize> {
        self.per_type
            .get(aggregate_type)
            .copied()
            .unwrap_or(self.default_every)
    }
}

impl std::str::FromStr for SnapshotPolicy {
    type Err = crate::StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut policy = Self::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once('=').ok_or_else(|| {
                crate::StoreError::Config(format!(
                    "snapshot policy entry {part:?} is not key=value"
                ))
            })?;
            let every = match value.trim() {
                "off" | "never" => None,
                n => Some(n.parse::<NonZeroUsize>().map_err(|_| {
                    crate::StoreError::Config(format!(
                        "snapshot interval {n:?} for {key:?} must be a positive integer or \"off\""
                    ))
                })?),
            };
            match key.trim() {
                "default" => policy.default_every = every,
                ty => policy = policy.with(ty, every),
            }
        }
        Ok(policy)
    }
}

/// What a successful command left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The aggregate the command ran against.
    pub aggregate_id: String,
    /// The aggregate's version (sequence of its last event) after the command.
    pub version: u64,
    /// How many events the command appended (0 for an idempotent no-op).
    pub events_appended: usize,
    /// Position of the last appended event: the read-your-writes token. `None` when nothing was appended.
    pub position: Option<Position>,
}

/// Loads aggregates (from the latest snapshot plus later events), runs commands, and appends
/// the resulting events in one transaction.
pub struct AggregateStore<A: Aggregate> {
    inner: PersistedEventStore<PostgresEventRepository, A>,
    services: A::Services,
    pool: PgPool,
}

impl<A> AggregateStore<A>
where
    A: Aggregate + Clone + Send + Sync,
{
    /// A store for aggregate type `A` with the snapshot interval `policy` gives it.
    pub fn new(pool: PgPool, services: A::Services, policy: &SnapshotPolicy) -> Self {
        let repo = PostgresEventRepository::new(pool.clone());
        let inner = match policy.every(A::TYPE) {
            Some(n) => PersistedEventStore::new_snapshot_store(repo, n.get()),
            None => PersistedEventStore::new_event_store(repo),
        };
        Self {
            inner,
            services,
            pool,
        }
    }

    /// Upcasters applied, in order, to stored events of older versions when they are loaded.
    pub fn with_upcasters(self, upcasters: Vec<Box<dyn EventUpcaster>>) -> Self {
        Self {
            inner: self.inner.with_upcasters(upcasters),
            ..self
        }
    }

    /// The aggregate's current state and version (0 for one that has no events).
    #[tracing::instrument(skip(self), fields(aggregate_type = A::TYPE))]
    pub async fn load(&self, aggregate_id: &str) -> Result<(A, u64), EventStoreError<A::Error>> {
        let ctx = self
            .inner
            .load_aggregate(aggregate_id)
            .await
            .map_err(|e| map_aggregate_error::<A>(e, aggregate_id, 0))?;
        Ok((ctx.aggregate, ctx.current_sequence as u64))
    }

    /// Runs `command` against the aggregate and appends what it decides.
    ///
    /// With `expected_version`, the command runs only if the aggregate is at that version.
    /// A concurrent writer that commits first turns this call into
    /// [`EventStoreError::Conflict`]; nothing is appended then.
    #[tracing::instrument(skip(self, command, metadata), fields(aggregate_type = A::TYPE))]
    pub async fn execute(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: &EventMetadata,
        expected_version: Option<u64>,
    ) -> Result<Committed, EventStoreError<A::Error>> {
        let ctx = self
            .inner
            .load_aggregate(aggregate_id)
            .await
            .map_err(|e| map_aggregate_error::<A>(e, aggregate_id, 0))?;
        let version = ctx.current_sequence as u64;
        if let Some(expected) = expected_version {
            if expected != version {
                return Err(EventStoreError::Conflict {
                    aggregate_type: A::TYPE,
                    aggregate_id: aggregate_id.to_owned(),
                    expected_version: expected,
                    actual_version: Some(version),
                });
            }
        }

        // cqrs-es 0.5's EventSink applies events to the aggregate it is handed, and the snapshot
        // store applies them again when it writes a snapshot. Deciding on a copy keeps the
        // context pristine so a snapshot holds each event exactly once.
        let mut working = ctx.aggregate.clone();
        let sink = EventSink::default();
        working
            .handle(command, &self.services, &sink)
            .await
            .map_err(EventStoreError::Domain)?;
        let events = sink.collect().await;
        if events.is_empty() {
            return Ok(Committed {
                aggregate_id: aggregate_id.to_owned(),
                version,
                events_appended: 0,
                position: None,
            });
        }
        let appended = events.len();
        let committed = self
            .inner
            .commit(events, ctx, metadata.to_map())
            .await
            .map_err(|e| map_aggregate_error::<A>(e, aggregate_id, version))?;
        let last_sequence = committed.last().map_or(version, |e| e.sequence as u64);
        metrics::counter!("mercato_events_appended_total", "aggregate_type" => A::TYPE)
            .increment(appended as u64);

        let position = self.position_of(aggregate_id, last_sequence).await?;
        Ok(Committed {
            aggregate_id: aggregate_id.to_owned(),
            version: last_sequence,
            events_appended: appended,
            position: Some(position),
        })
    }

    async fn position_of(
        &self,
        aggregate_id: &str,
        sequence: u64,
    ) -> Result<Position, EventStoreError<A::Error>> {
        let (tx_id, global_position): (String, i64) = sqlx::query_as(
            "SELECT tx_id::text, global_position FROM events \
             WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence = $3",
        )
        .bind(A::TYPE)
        .bind(aggregate_id)
        .bind(sequence as i64)
        .fetch_one(&self.pool)
        .await?;
        let tx_id = tx_id
            .parse()
            .map_err(|e| EventStoreError::Corrupt(Box::new(e)))?;
        Ok(Position::new(tx_id, global_position))
    }
}

fn map_aggregate_error<A: Aggregate>(
    err: AggregateError<A::Error>,
    aggregate_id: &str,
    expected_version: u64,
) -> EventStoreError<A::Error> {
    match err {
        AggregateError::UserError(e) => EventStoreError::Domain(e),
        AggregateError::AggregateConflict => EventStoreError::Conflict {
            aggregate_type: A::TYPE,
            aggregate_id: aggregate_id.to_owned(),
            expected_version,
            actual_version: None,
        },
        AggregateError::DatabaseConnectionError(e) => EventStoreError::Unavailable(e),
        AggregateError::DeserializationError(e) => EventStoreError::Corrupt(e),
        AggregateError::UnexpectedError(e) => EventStoreError::Unexpected(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_per_type_snapshot_intervals() {
        let p: SnapshotPolicy = "default=off, Stock=50,Order=off".parse().unwrap();
        assert_eq!(p.every("Stock"), NonZeroUsize::new(50));
        assert_eq!(p.every("Order"), None);
        assert_eq!(p.every("Cart"), None);
        let d = SnapshotPolicy::default();
        assert_eq!(d.every("Cart"), NonZeroUsize::new(100));
    }

    #[test]
    fn rejects_zero_and_garbage_intervals() {
        // Zero would make cqrs-es divide by zero on the first commit.
        assert!("Stock=0".parse::<SnapshotPolicy>().is_err());
        assert!("Stock".parse::<SnapshotPolicy>().is_err());
        assert!("Stock=-3".parse::<SnapshotPolicy>().is_err());
    }
}
