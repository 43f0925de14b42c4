//! The gap-safe reader of the global event log.
//!
//! Events are read in `(tx_id, global_position)` order and only from transactions older than
//! the oldest transaction still running (`pg_snapshot_xmin(pg_current_snapshot())`). A
//! transaction below that horizon has ended, so no event can ever appear before a position
//! already handed out: live fan-out and replay see one and the same order, and an event whose
//! transaction commits late is never skipped. See `docs/adr/0002-gap-safe-global-log.md`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::error::StoreError;
use crate::metadata::EventMetadata;
use crate::position::Position;
use crate::privacy;

/// One committed event as it stands in the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    /// Unique id of the event (the relay's `Nats-Msg-Id`).
    pub event_id: Uuid,
    /// Where the event stands in the global log.
    pub position: Position,
    /// The aggregate type (`Order`, `Stock`, ...).
    pub aggregate_type: String,
    /// The aggregate instance.
    pub aggregate_id: String,
    /// The event's place in its aggregate's stream (1-based).
    pub sequence: i64,
    /// The stable event type (`OrderPlaced`).
    pub event_type: String,
    /// The event's schema version.
    pub event_version: String,
    /// The serialized domain event.
    pub payload: serde_json::Value,
    /// Correlation, causation, actor, trace context.
    pub metadata: EventMetadata,
    /// When the event was written.
    pub recorded_at: DateTime<Utc>,
}

/// An event as the relay publishes it: the fields its headers need, and the message body
/// (the JSON form of [`RecordedEvent`]) built by PostgreSQL, so the payload is never parsed
/// on the way through.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedEvent {
    /// Unique id of the event.
    pub event_id: Uuid,
    /// Where the event stands in the global log.
    pub position: Position,
    /// The aggregate type.
    pub aggregate_type: String,
    /// The aggregate instance.
    pub aggregate_id: String,
    /// The stable event type.
    pub event_type: String,
    /// The event's schema version.
    pub event_version: String,
    /// The correlation id, as stored.
    pub correlation_id: Option<String>,
    /// The causation id, as stored.
    pub causation_id: Option<String>,
    /// W3C trace context, as stored.
    pub traceparent: Option<String>,
    /// When the event was written.
    pub recorded_at: DateTime<Utc>,
    /// The JSON of the whole [`RecordedEvent`].
    pub body: String,
}

/// Which events to read. Every field narrows the result; the order never changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFilter {
    /// Only this aggregate type.
    pub aggregate_type: Option<String>,
    /// Only this aggregate id.
    pub aggregate_id: Option<String>,
    /// Only events recorded at or after this time.
    pub recorded_from: Option<DateTime<Utc>>,
    /// Only events recorded before this time.
    pub recorded_to: Option<DateTime<Utc>>,
    /// Only these event types (empty: every type).
    pub event_types: Vec<String>,
    /// Only events at or before this position.
    pub until: Option<Position>,
}

/// What a tailer needs to know about the log beyond its checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LogHealth {
    /// Committed-or-running events after the checkpoint (capped at 1,000,000).
    pub events_behind: i64,
    /// Age of the oldest event after the checkpoint, in seconds (0 when none).
    pub seconds_behind: f64,
    /// Events after the checkpoint that the horizon holds back (their transaction, or an
    /// older one, is still open).
    pub held_back: i64,
    /// Age in seconds of the oldest open transaction that holds an xid (it holds the horizon).
    pub oldest_open_transaction_seconds: f64,
}

/// What a reader does with the sealed personal data in the events it hands out
/// (`crate::privacy`, ADR 0013).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PersonalData {
    /// As stored: sealed (what the relay publishes).
    #[default]
    Sealed,
    /// Revealed with the subjects' keys; an erased subject's values read as erased (what the
    /// read models need).
    Revealed,
    /// Withheld: every personal value reads as redacted (exports without personal data).
    Redacted,
}

impl PersonalData {
    /// Applies this treatment to `events` (read on `executor`).
    pub async fn apply<'e, E: sqlx::PgExecutor<'e>>(
        self,
        executor: E,
        events: &mut [RecordedEvent],
    ) -> Result<(), StoreError> {
        match self {
            Self::Sealed => {}
            Self::Revealed => privacy::reveal_events(executor, events).await?,
            Self::Redacted => events
                .iter_mut()
                .for_each(|e| privacy::redact(&mut e.payload)),
        }
        Ok(())
    }
}

/// Reads the log in its one total order.
#[derive(Debug, Clone)]
pub struct LogReader {
    pool: PgPool,
    personal: PersonalData,
}

// The text form of `tx_id` must not be called `tx_id`: PostgreSQL resolves `ORDER BY tx_id` to an
// output column of that name first, and would sort the log as text ("10" < "9") without the index.
const SELECT_COLUMNS: &str =
    "event_id, tx_id::text AS tx_id_text, global_position, aggregate_type, \
     aggregate_id, sequence, event_type, event_version, payload, metadata, recorded_at";

// Binds $1..$9 (see `bind_filter`): the position, the horizon and every `LogFilter` field.
const FILTERED: &str = "(tx_id, global_position) > ($1::text::xid8, $2) \
     AND tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
     AND ($3::text IS NULL OR aggregate_type = $3) \
     AND ($4::text IS NULL OR aggregate_id = $4) \
     AND ($5::timestamptz IS NULL OR recorded_at >= $5) \
     AND ($6::timestamptz IS NULL OR recorded_at < $6) \
     AND ($7::text[] IS NULL OR event_type = ANY($7)) \
     AND ($8::text IS NULL OR (tx_id, global_position) <= ($8::text::xid8, $9))";

fn bind_filter<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    after: Position,
    filter: &'q LogFilter,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    query
        .bind(after.tx_id().to_string())
        .bind(after.global_position())
        .bind(filter.aggregate_type.as_deref())
        .bind(filter.aggregate_id.as_deref())
        .bind(filter.recorded_from)
        .bind(filter.recorded_to)
        .bind((!filter.event_types.is_empty()).then_some(&filter.event_types))
        .bind(filter.until.map(|p| p.tx_id().to_string()))
        .bind(filter.until.map(|p| p.global_position()))
}

impl LogReader {
    /// A reader over the `events` table of `pool`'s database, handing out personal data
    /// sealed, as stored.
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            personal: PersonalData::Sealed,
        }
    }

    /// The same reader, treating personal data as `personal` says.
    pub fn with_personal_data(self, personal: PersonalData) -> Self {
        Self { personal, ..self }
    }

    /// Up to `limit` events after `after`, in log order, from transactions that have ended.
    pub async fn read(
        &self,
        after: Position,
        filter: &LogFilter,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut events = read_with(&self.pool, after, filter, limit).await?;
        self.personal.apply(&self.pool, &mut events).await?;
        Ok(events)
    }

    /// [`LogReader::read`] on a connection the caller holds (inside its transaction), so a
    /// caller that already holds a pooled connection never waits for a second one.
    pub async fn read_on(
        conn: &mut PgConnection,
        after: Position,
        filter: &LogFilter,
        limit: usize,
        personal: PersonalData,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut events = read_with(&mut *conn, after, filter, limit).await?;
        personal.apply(&mut *conn, &mut events).await?;
        Ok(events)
    }

    /// How many readable events [`LogReader::read`] would return after `after` without a limit
    /// (for progress bars).
    pub async fn count(&self, after: Position, filter: &LogFilter) -> Result<i64, StoreError> {
        let sql = format!("SELECT count(*) FROM events WHERE {FILTERED}");
        let row = bind_filter(sqlx::query(&sql), after, filter)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Like [`LogReader::read`] with no filter, but returns each event ready to publish.
    pub async fn read_encoded(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<EncodedEvent>, StoreError> {
        let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
        let rows = sqlx::query(
            "SELECT event_id, tx_id::text AS tx_id_text, global_position, aggregate_type, aggregate_id, \
               event_type, event_version, recorded_at, \
               metadata ->> 'correlation_id' AS correlation_id, \
               metadata ->> 'causation_id' AS causation_id, \
               metadata ->> 'traceparent' AS traceparent, \
               json_build_object( \
                 'event_id', event_id, 'position', tx_id::text || '.' || global_position, \
                 'aggregate_type', aggregate_type, 'aggregate_id', aggregate_id, \
                 'sequence', sequence, 'event_type', event_type, 'event_version', event_version, \
                 'payload', payload, 'metadata', metadata, 'recorded_at', recorded_at)::text AS body \
             FROM events \
             WHERE (tx_id, global_position) > ($1::text::xid8, $2) \
               AND tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
             ORDER BY events.tx_id, events.global_position \
             LIMIT $3",
        )
        .bind(after.tx_id().to_string())
        .bind(after.global_position())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let global_position: i64 = row.try_get("global_position")?;
                let tx_id: String = row.try_get("tx_id_text")?;
                Ok(EncodedEvent {
                    event_id: row.try_get("event_id")?,
                    position: parse_position(&tx_id, global_position)?,
                    aggregate_type: row.try_get("aggregate_type")?,
                    aggregate_id: row.try_get("aggregate_id")?,
                    event_type: row.try_get("event_type")?,
                    event_version: row.try_get("event_version")?,
                    correlation_id: row.try_get("correlation_id")?,
                    causation_id: row.try_get("causation_id")?,
                    traceparent: row.try_get("traceparent")?,
                    recorded_at: row.try_get("recorded_at")?,
                    body: row.try_get("body")?,
                })
            })
            .collect()
    }

    /// The position of the last event that is readable now (`None` for an empty log).
    pub async fn head(&self) -> Result<Option<Position>, StoreError> {
        let row: Option<(String, i64)> = sqlx::query_as(
            "SELECT tx_id::text AS tx_id_text, global_position FROM events \
             WHERE tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
             ORDER BY events.tx_id DESC, events.global_position DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        row.map(|(tx, gp)| parse_position(&tx, gp)).transpose()
    }

    /// Lag and stall information for a tailer at `checkpoint` (for metrics and status).
    pub async fn health(&self, checkpoint: Position) -> Result<LogHealth, StoreError> {
        let row = sqlx::query(
            "WITH horizon AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin), \
             behind AS ( \
               SELECT tx_id, recorded_at FROM events \
               WHERE (tx_id, global_position) > ($1::text::xid8, $2) \
               ORDER BY tx_id, global_position LIMIT 1000000) \
             SELECT \
               (SELECT count(*) FROM behind) AS events_behind, \
               (SELECT coalesce(extract(epoch FROM now() - min(recorded_at)), 0)::float8 FROM behind) AS seconds_behind, \
               (SELECT count(*) FROM behind, horizon WHERE behind.tx_id >= horizon.xmin) AS held_back, \
               greatest( \
                 (SELECT coalesce(extract(epoch FROM max(now() - xact_start)), 0)::float8 \
                    FROM pg_stat_activity WHERE backend_xid IS NOT NULL), \
                 (SELECT coalesce(extract(epoch FROM max(now() - prepared)), 0)::float8 \
                    FROM pg_prepared_xacts)) AS oldest_open",
        )
        .bind(checkpoint.tx_id().to_string())
        .bind(checkpoint.global_position())
        .fetch_one(&self.pool)
        .await?;
        Ok(LogHealth {
            events_behind: row.try_get("events_behind")?,
            seconds_behind: row.try_get::<f64, _>("seconds_behind")?.max(0.0),
            held_back: row.try_get("held_back")?,
            oldest_open_transaction_seconds: row.try_get::<f64, _>("oldest_open")?.max(0.0),
        })
    }

    /// How many events lie in `(after, to]` (ended or not), on `executor`: a tailer whose
    /// delivered batch holds fewer than this is missing some and reads the range instead.
    pub async fn count_between<'e>(
        executor: impl sqlx::PgExecutor<'e>,
        after: Position,
        to: Position,
    ) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE (tx_id, global_position) > ($1::text::xid8, $2) \
               AND (tx_id, global_position) <= ($3::text::xid8, $4)",
        )
        .bind(after.tx_id().to_string())
        .bind(after.global_position())
        .bind(to.tx_id().to_string())
        .bind(to.global_position())
        .fetch_one(executor)
        .await?)
    }

    /// Whether any event of `aggregate_types` lies in `(after, to]`.
    pub async fn any_of_types_between(
        &self,
        after: Position,
        to: Position,
        aggregate_types: &[&str],
    ) -> Result<bool, StoreError> {
        let types: Vec<String> = aggregate_types.iter().map(|t| (*t).to_owned()).collect();
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM events \
               WHERE (tx_id, global_position) > ($1::text::xid8, $2) \
                 AND (tx_id, global_position) <= ($3::text::xid8, $4) \
                 AND aggregate_type = ANY($5))",
        )
        .bind(after.tx_id().to_string())
        .bind(after.global_position())
        .bind(to.tx_id().to_string())
        .bind(to.global_position())
        .bind(&types)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Whether the log holds event `event_id` at `position` (a relay checks that a stream's
    /// last message is an event of this database).
    pub async fn contains(&self, event_id: Uuid, position: Position) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM events WHERE event_id = $1 \
               AND tx_id = $2::text::xid8 AND global_position = $3)",
        )
        .bind(event_id)
        .bind(position.tx_id().to_string())
        .bind(position.global_position())
        .fetch_one(&self.pool)
        .await?)
    }

    /// The event `event_id`, if the log holds it.
    pub async fn event(&self, event_id: Uuid) -> Result<Option<RecordedEvent>, StoreError> {
        let sql = format!("SELECT {SELECT_COLUMNS} FROM events WHERE event_id = $1");
        let row = sqlx::query(&sql)
            .bind(event_id)
            .fetch_optional(&self.pool)
            .await?;
        let mut events: Vec<RecordedEvent> = row
            .as_ref()
            .map(decode_row)
            .transpose()?
            .into_iter()
            .collect();
        self.personal.apply(&self.pool, &mut events).await?;
        Ok(events.pop())
    }

    /// Whether any aggregate of `aggregate_type` has events.
    pub async fn has_aggregate_type(&self, aggregate_type: &str) -> Result<bool, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM events WHERE aggregate_type = $1)")
                .bind(aggregate_type)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Whether the log holds any event after `after`, readable or still held back by the
    /// horizon. A tailer asks this right after a read from `after` came back empty or short:
    /// then such an event is held back, or it became readable since that read without a
    /// notification (the transaction holding the horizon ended without writing events), and
    /// either way the tailer should look again soon.
    ///
    /// Written as an ordered `LIMIT 1`, so that even the generic plan of the prepared
    /// statement walks the log's index from `after`: an `EXISTS` with the horizon condition
    /// was planned as a scan of the whole table, on every idle turn of the relay.
    pub async fn has_unread(&self, after: Position) -> Result<bool, StoreError> {
        let unread: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM events WHERE (tx_id, global_position) > ($1::text::xid8, $2) \
             ORDER BY tx_id, global_position LIMIT 1",
        )
        .bind(after.tx_id().to_string())
        .bind(after.global_position())
        .fetch_optional(&self.pool)
        .await?;
        Ok(unread.is_some())
    }
}

async fn read_with<'e, E: sqlx::PgExecutor<'e>>(
    executor: E,
    after: Position,
    filter: &LogFilter,
    limit: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let sql = format!(
        "SELECT {SELECT_COLUMNS} FROM events WHERE {FILTERED} \
         ORDER BY events.tx_id, events.global_position LIMIT $10"
    );
    let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
    let rows = bind_filter(sqlx::query(&sql), after, filter)
        .bind(limit)
        .fetch_all(executor)
        .await?;
    rows.iter().map(decode_row).collect()
}

fn parse_position(tx_id: &str, global_position: i64) -> Result<Position, StoreError> {
    let tx_id = tx_id.parse().map_err(|_| StoreError::Corrupt {
        global_position,
        reason: format!("tx_id {tx_id:?} is not a 64-bit transaction id"),
    })?;
    Ok(Position::new(tx_id, global_position))
}

fn decode_row(row: &PgRow) -> Result<RecordedEvent, StoreError> {
    let global_position: i64 = row.try_get("global_position")?;
    let tx_id: String = row.try_get("tx_id_text")?;
    let metadata: serde_json::Value = row.try_get("metadata")?;
    let metadata: HashMap<String, String> = match metadata {
        serde_json::Value::Object(map) => map
            .into_iter()
            .filter_map(|(k, v)| match v {
                serde_json::Value::String(s) => Some((k, s)),
                _ => None,
            })
            .collect(),
        _ => HashMap::new(),
    };
    Ok(RecordedEvent {
        event_id: row.try_get("event_id")?,
        position: parse_position(&tx_id, global_position)?,
        aggregate_type: row.try_get("aggregate_type")?,
        aggregate_id: row.try_get("aggregate_id")?,
        sequence: row.try_get("sequence")?,
        event_type: row.try_get("event_type")?,
        event_version: row.try_get("event_version")?,
        payload: row.try_get("payload")?,
        metadata: EventMetadata::from_map(&metadata),
        recorded_at: row.try_get("recorded_at")?,
    })
}
