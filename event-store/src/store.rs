//! Running commands against aggregates persisted in PostgreSQL.

use std::num::NonZeroUsize;

use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::{
    EventUpcaster, PersistedEventRepository, PersistenceError, SerializedEvent,
};
use cqrs_es::{Aggregate, DomainEvent};
use postgres_es::PostgresEventRepository;
use sqlx::{PgPool, Row as _};

use crate::error::EventStoreError;
use crate::metadata::EventMetadata;
use crate::position::Position;
use crate::privacy::{self, PrivacyError};
use crate::snapshots::{snapshot_due, SnapshotPolicy};

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
    /// The ids of the appended events, in order (empty when nothing was appended).
    pub event_ids: Vec<uuid::Uuid>,
}

/// A command's [`Committed`] and the events it appended, in order.
pub type Recorded<A> = (Committed, Vec<<A as Aggregate>::Event>);

/// Loads aggregates (from the latest snapshot plus later events), runs commands, and appends
/// the resulting events in one transaction.
///
/// Loading is one statement (the latest snapshot and the events after it), then one key query
/// that reveals their sealed personal data; the upcasters run and the events fold. Appending is
/// one statement of Mercato's own: every new event and, when one is due, the snapshot, sealed
/// and written atomically in a single round trip that also returns the log position (see
/// `docs/adr/0001-event-store.md` and `docs/adr/0013-crypto-shredding.md`).
pub struct AggregateStore<A: Aggregate> {
    repo: PostgresEventRepository,
    upcasters: Vec<Box<dyn EventUpcaster>>,
    services: A::Services,
    pool: PgPool,
    snapshot_every: Option<NonZeroUsize>,
}

impl<A> AggregateStore<A>
where
    A: Aggregate + Send + Sync,
{
    /// A store for aggregate type `A` with the snapshot interval `policy` gives it.
    pub fn new(pool: PgPool, services: A::Services, policy: &SnapshotPolicy) -> Self {
        Self {
            repo: PostgresEventRepository::new(pool.clone()),
            upcasters: Vec::new(),
            services,
            pool,
            snapshot_every: policy.every(A::TYPE),
        }
    }

    /// Upcasters applied, in order, to stored events of older versions when they are loaded.
    pub fn with_upcasters(self, upcasters: Vec<Box<dyn EventUpcaster>>) -> Self {
        Self { upcasters, ..self }
    }

    /// The aggregate's current state and version (0 for one that has no events).
    ///
    /// One statement reads the latest snapshot (when this type takes snapshots) and the
    /// events after it, so both come from one snapshot of the database and a load is one
    /// round trip; then one key query reveals their sealed personal data, if any.
    #[tracing::instrument(skip(self), fields(aggregate_type = A::TYPE))]
    pub async fn load(&self, aggregate_id: &str) -> Result<(A, u64), EventStoreError<A::Error>> {
        let (mut snapshot_state, mut events) = self.read_stream(aggregate_id).await?;
        {
            let mut payloads: Vec<&mut serde_json::Value> =
                events.iter_mut().map(|e| &mut e.payload).collect();
            if let Some((state, _)) = snapshot_state.as_mut() {
                payloads.push(state);
            }
            privacy::reveal(&self.pool, &mut payloads)
                .await
                .map_err(privacy_error)?;
        }
        let (mut aggregate, mut version) = match snapshot_state {
            Some((state, sequence)) => match serde_json::from_value::<A>(state) {
                Ok(aggregate) => (aggregate, sequence as u64),
                // A snapshot is a cache: one written by an older version of the aggregate is
                // ignored and the whole history replayed instead.
                Err(e) => {
                    tracing::warn!(aggregate_type = A::TYPE, aggregate_id, error = %e,
                        "snapshot unreadable; replaying the aggregate's events");
                    return self.replay(aggregate_id).await;
                }
            },
            None => (A::default(), 0),
        };
        for event in events {
            version = event.sequence as u64;
            aggregate.apply(self.decode(event)?);
        }
        Ok((aggregate, version))
    }

    /// The aggregate's latest snapshot (state and the sequence it stands at), if one is to
    /// be used, and its events after that snapshot, in order.
    async fn read_stream(
        &self,
        aggregate_id: &str,
    ) -> Result<(Option<(serde_json::Value, usize)>, Vec<SerializedEvent>), EventStoreError<A::Error>>
    {
        let rows = sqlx::query(
            "WITH snapshot AS ( \
               SELECT last_sequence, payload FROM snapshots \
               WHERE $3 AND aggregate_type = $1 AND aggregate_id = $2) \
             SELECT 0 AS part, last_sequence AS sequence, NULL::text AS event_type, \
                    NULL::text AS event_version, payload, NULL::jsonb AS metadata \
             FROM snapshot \
             UNION ALL \
             SELECT 1, sequence, event_type, event_version, payload, metadata FROM events \
             WHERE aggregate_type = $1 AND aggregate_id = $2 \
               AND sequence > coalesce((SELECT last_sequence FROM snapshot), 0) \
             ORDER BY part, sequence",
        )
        .bind(A::TYPE)
        .bind(aggregate_id)
        .bind(self.snapshot_every.is_some())
        .fetch_all(&self.pool)
        .await?;
        let mut snapshot = None;
        let mut events = Vec::with_capacity(rows.len());
        for row in rows {
            let sequence: i64 = row.try_get("sequence")?;
            let sequence =
                usize::try_from(sequence).map_err(|e| EventStoreError::Corrupt(Box::new(e)))?;
            let payload: serde_json::Value = row.try_get("payload")?;
            match row.try_get::<Option<String>, _>("event_type")? {
                None => snapshot = Some((payload, sequence)),
                Some(event_type) => events.push(SerializedEvent {
                    aggregate_id: aggregate_id.to_owned(),
                    sequence,
                    aggregate_type: A::TYPE.to_owned(),
                    event_type,
                    event_version: row.try_get("event_version")?,
                    payload,
                    metadata: row.try_get("metadata")?,
                }),
            }
        }
        Ok((snapshot, events))
    }

    /// The aggregate from its events alone.
    async fn replay(&self, aggregate_id: &str) -> Result<(A, u64), EventStoreError<A::Error>> {
        let mut events = self
            .repo
            .get_events::<A>(aggregate_id)
            .await
            .map_err(persistence_error)?;
        let mut payloads: Vec<&mut serde_json::Value> =
            events.iter_mut().map(|e| &mut e.payload).collect();
        privacy::reveal(&self.pool, &mut payloads)
            .await
            .map_err(privacy_error)?;
        let mut aggregate = A::default();
        let mut version = 0;
        for event in events {
            version = event.sequence as u64;
            aggregate.apply(self.decode(event)?);
        }
        Ok((aggregate, version))
    }

    /// A stored (revealed) event as the current event type, through the upcasters.
    fn decode(
        &self,
        mut event: cqrs_es::persist::SerializedEvent,
    ) -> Result<A::Event, EventStoreError<A::Error>> {
        for upcaster in &self.upcasters {
            if upcaster.can_upcast(&event.event_type, &event.event_version) {
                event = upcaster.upcast(event);
            }
        }
        serde_json::from_value(event.payload).map_err(|e| EventStoreError::Corrupt(Box::new(e)))
    }

    /// Runs `command` against the aggregate and appends what it decides.
    ///
    /// With `expected_version`, the command runs only if the aggregate is at that version.
    /// A concurrent writer that commits first turns this call into
    /// [`EventStoreError::Conflict`]; nothing is appended then.
    pub async fn execute(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: &EventMetadata,
        expected_version: Option<u64>,
    ) -> Result<Committed, EventStoreError<A::Error>> {
        self.execute_recorded(aggregate_id, command, metadata, expected_version)
            .await
            .map(|(committed, _)| committed)
    }

    /// [`Self::execute`], also handing back the appended events (in the order of
    /// `Committed::event_ids`), for a caller that reacts to its own write at once (the order
    /// process, ADR 0018).
    #[tracing::instrument(name = "execute", skip(self, command, metadata), fields(aggregate_type = A::TYPE))]
    pub async fn execute_recorded(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: &EventMetadata,
        expected_version: Option<u64>,
    ) -> Result<Recorded<A>, EventStoreError<A::Error>> {
        let (mut aggregate, version) = self.load(aggregate_id).await?;
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

        // The sink applies each event to the aggregate it is given, so after `handle` the
        // aggregate is the state the new events lead to: exactly what a snapshot must hold.
        let sink = EventSink::default();
        aggregate
            .handle(command, &self.services, &sink)
            .await
            .map_err(EventStoreError::Domain)?;
        let events = sink.collect().await;
        if events.is_empty() {
            let committed = Committed {
                aggregate_id: aggregate_id.to_owned(),
                version,
                events_appended: 0,
                position: None,
                event_ids: Vec::new(),
            };
            return Ok((committed, events));
        }
        let new_version = version + events.len() as u64;
        let snapshot = match self.snapshot_every {
            Some(every) if snapshot_due(version, new_version, every) => {
                let state = serde_json::to_value(&aggregate)
                    .map_err(|e| EventStoreError::Unexpected(Box::new(e)))?;
                Some((state, new_version / every.get() as u64))
            }
            _ => None,
        };
        let committed = self
            .append_at(aggregate_id, version, &events, metadata, snapshot)
            .await?;
        Ok((committed, events))
    }

    /// Appends `events` after `expected_version` without running a command (imports, tools,
    /// benchmarks). A concurrent append at the same version makes this a conflict.
    pub async fn append(
        &self,
        aggregate_id: &str,
        expected_version: u64,
        events: &[A::Event],
        metadata: &EventMetadata,
    ) -> Result<Committed, EventStoreError<A::Error>> {
        self.append_at(aggregate_id, expected_version, events, metadata, None)
            .await
    }

    /// The version and last position the write `write_id` left on the aggregate, if a write
    /// with that id appended to it (indexed; events older than `write_id` kept it as their
    /// correlation id): a retried request or process command finds its earlier attempt's
    /// effect here.
    pub async fn prior_write(
        &self,
        aggregate_id: &str,
        write_id: uuid::Uuid,
    ) -> Result<Option<(u64, Position)>, EventStoreError<A::Error>> {
        let row: Option<(i64, String, i64)> = sqlx::query_as(
            "SELECT sequence, tx_id::text, global_position FROM events \
             WHERE coalesce(metadata ->> 'write_id', correlation_id) = $1 \
               AND aggregate_type = $2 AND aggregate_id = $3 \
             ORDER BY sequence DESC LIMIT 1",
        )
        .bind(write_id.to_string())
        .bind(A::TYPE)
        .bind(aggregate_id)
        .fetch_optional(&self.pool)
        .await?;
        version_at(row)
    }

    /// The aggregate's version and the position of its latest event (`None` without events).
    pub async fn head(
        &self,
        aggregate_id: &str,
    ) -> Result<Option<(u64, Position)>, EventStoreError<A::Error>> {
        let row: Option<(i64, String, i64)> = sqlx::query_as(
            "SELECT sequence, tx_id::text, global_position FROM events \
             WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence DESC LIMIT 1",
        )
        .bind(A::TYPE)
        .bind(aggregate_id)
        .fetch_optional(&self.pool)
        .await?;
        version_at(row)
    }

    /// One statement: insert the events (the primary key on `(aggregate_type, aggregate_id,
    /// sequence)` is the optimistic-concurrency check), upsert the snapshot if one is given,
    /// and return the last event's position. Sequences are contiguous, so "the aggregate is at
    /// `version`" is: the row at `version` exists (a primary-key lookup) and the row at
    /// `version + 1` does not (the insert's own key check). No gap can be written.
    async fn append_at(
        &self,
        aggregate_id: &str,
        version: u64,
        events: &[A::Event],
        metadata: &EventMetadata,
        snapshot: Option<(serde_json::Value, u64)>,
    ) -> Result<Committed, EventStoreError<A::Error>> {
        if events.is_empty() {
            return Ok(Committed {
                aggregate_id: aggregate_id.to_owned(),
                version,
                events_appended: 0,
                position: None,
                event_ids: Vec::new(),
            });
        }
        validate_aggregate_id(aggregate_id)?;
        let mut sequences = Vec::with_capacity(events.len());
        let mut types = Vec::with_capacity(events.len());
        let mut versions = Vec::with_capacity(events.len());
        let mut payloads = Vec::with_capacity(events.len());
        for (i, event) in events.iter().enumerate() {
            sequences.push((version + 1 + i as u64) as i64);
            types.push(event.event_type());
            versions.push(event.event_version());
            let payload = serde_json::to_value(event)
                .map_err(|e| EventStoreError::Unexpected(Box::new(e)))?;
            payloads.push(payload);
        }
        let new_version = version + events.len() as u64;
        let metadata = serde_json::to_value(metadata.to_map())
            .map_err(|e| EventStoreError::Unexpected(Box::new(e)))?;
        let (mut snapshot_payload, snapshot_number) = match snapshot {
            Some((payload, n)) => (Some(payload), n as i64),
            None => (None, 0),
        };
        // Nothing personal is written in the clear (ADR 0013).
        {
            let mut sealed: Vec<&mut serde_json::Value> = payloads.iter_mut().collect();
            sealed.extend(snapshot_payload.as_mut());
            privacy::seal(&self.pool, &mut sealed)
                .await
                .map_err(privacy_error)?;
        }
        for (payload, event) in payloads.iter().zip(events) {
            let bytes = payload.to_string().len();
            if bytes > MAX_EVENT_BYTES {
                return Err(EventStoreError::EventTooLarge {
                    event_type: event.event_type(),
                    bytes,
                    limit: MAX_EVENT_BYTES,
                });
            }
        }
        let row: Result<Option<(String, i64, Vec<uuid::Uuid>)>, sqlx::Error> = sqlx::query_as(
            "WITH new_events AS ( \
               INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
               SELECT $1, $2, e.sequence, e.event_type, e.event_version, e.payload, $3 \
               FROM UNNEST($4::bigint[], $5::text[], $6::text[], $7::jsonb[]) \
                 AS e(sequence, event_type, event_version, payload) \
               WHERE $11 = 0 OR EXISTS (SELECT 1 FROM events \
                 WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence = $11) \
               RETURNING sequence, tx_id, global_position, event_id), \
             snapshot AS ( \
               INSERT INTO snapshots (aggregate_type, aggregate_id, last_sequence, current_snapshot, payload) \
               SELECT $1, $2, $8, $9, $10 WHERE $10::jsonb IS NOT NULL AND EXISTS (SELECT 1 FROM new_events) \
               ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE \
                 SET last_sequence = EXCLUDED.last_sequence, current_snapshot = EXCLUDED.current_snapshot, \
                     payload = EXCLUDED.payload, taken_at = now() \
                 WHERE snapshots.last_sequence < EXCLUDED.last_sequence) \
             SELECT tx_id::text AS tx_id_text, global_position, \
               ARRAY(SELECT event_id FROM new_events ORDER BY sequence) AS event_ids \
             FROM new_events ORDER BY sequence DESC LIMIT 1",
        )
        .bind(A::TYPE)
        .bind(aggregate_id)
        .bind(&metadata)
        .bind(&sequences)
        .bind(&types)
        .bind(&versions)
        .bind(&payloads)
        .bind(new_version as i64)
        .bind(snapshot_number)
        .bind(snapshot_payload)
        .bind(version as i64)
        .fetch_optional(&self.pool)
        .await;
        let (tx_id, global_position, event_ids) = match row {
            Ok(Some(r)) => r,
            // The aggregate is not at `version`: someone appended first (or, for `append`, the
            // caller's version is ahead, which would leave a gap in the sequence).
            Ok(None) => {
                return Err(EventStoreError::Conflict {
                    aggregate_type: A::TYPE,
                    aggregate_id: aggregate_id.to_owned(),
                    expected_version: version,
                    actual_version: None,
                });
            }
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("23505") => {
                return Err(EventStoreError::Conflict {
                    aggregate_type: A::TYPE,
                    aggregate_id: aggregate_id.to_owned(),
                    expected_version: version,
                    actual_version: None,
                });
            }
            Err(e) => return Err(e.into()),
        };
        metrics::counter!("mercato_events_appended_total", "aggregate_type" => A::TYPE)
            .increment(events.len() as u64);
        let tx_id = tx_id
            .parse()
            .map_err(|e| EventStoreError::Corrupt(Box::new(e)))?;
        Ok(Committed {
            aggregate_id: aggregate_id.to_owned(),
            version: new_version,
            events_appended: events.len(),
            position: Some(Position::new(tx_id, global_position)),
            event_ids,
        })
    }
}

/// An event row's `(sequence, tx_id as text, global_position)` as a version and position.
fn version_at<E: std::error::Error>(
    row: Option<(i64, String, i64)>,
) -> Result<Option<(u64, Position)>, EventStoreError<E>> {
    row.map(|(sequence, tx_id, global_position)| {
        let tx = tx_id
            .parse()
            .map_err(|e: std::num::ParseIntError| EventStoreError::Corrupt(Box::new(e)))?;
        Ok((sequence as u64, Position::new(tx, global_position)))
    })
    .transpose()
}

/// The largest serialized event payload accepted (NATS' default `max_payload` is 1 MiB, and
/// the published message adds an envelope).
pub const MAX_EVENT_BYTES: usize = 512 * 1024;

/// Aggregate ids end up in subjects, headers and URLs: non-empty, at most 256 bytes, no
/// control characters.
fn validate_aggregate_id<E: std::error::Error>(id: &str) -> Result<(), EventStoreError<E>> {
    let reason = if id.is_empty() {
        "it is empty"
    } else if id.len() > 256 {
        "it is longer than 256 bytes"
    } else if id.chars().any(char::is_control) {
        "it contains control characters"
    } else {
        return Ok(());
    };
    Err(EventStoreError::InvalidAggregateId { reason })
}

fn persistence_error<E: std::error::Error>(err: PersistenceError) -> EventStoreError<E> {
    match err {
        PersistenceError::ConnectionError(e) => EventStoreError::Unavailable(e),
        PersistenceError::DeserializationError(e) => EventStoreError::Corrupt(e),
        PersistenceError::OptimisticLockError => EventStoreError::Unexpected(Box::new(err)),
        PersistenceError::UnknownError(e) => EventStoreError::Unexpected(e),
    }
}

fn privacy_error<E: std::error::Error>(err: PrivacyError) -> EventStoreError<E> {
    match err {
        PrivacyError::Erased(subject) => EventStoreError::Erased { subject },
        PrivacyError::Database(e) => e.into(),
        PrivacyError::Corrupt { .. } => EventStoreError::Corrupt(Box::new(err)),
        other => EventStoreError::Unexpected(Box::new(other)),
    }
}
