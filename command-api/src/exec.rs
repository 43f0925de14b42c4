//! Running one command the way every writer here must: at most once per request (or saga
//! command) id, with bounded jittered retries on lost optimistic-concurrency races, and
//! reporting where the aggregate stands afterwards.

use std::time::Duration;

use cqrs_es::Aggregate;
use mercato_event_store::{AggregateStore, EventMetadata, EventStoreError, Position};
use rand::Rng;
use sqlx::PgPool;
use uuid::Uuid;

/// How many times a write that lost a race is retried (without `If-Match`).
const CONFLICT_RETRIES: u32 = 8;

/// Who writes and under which id.
#[derive(Debug, Clone)]
pub(crate) struct WriteContext {
    /// Stored as the events' `correlation_id`: the id of the request (derived from its
    /// `Idempotency-Key`) or of the saga command. Indexed, so "did this id already append to
    /// that aggregate?" is one lookup.
    pub write_id: Uuid,
    /// Look for events of an earlier attempt with the same id first (keyed requests, saga).
    pub check_prior: bool,
    /// `customer:<id>`, `admin:<email>`, `anonymous`, `system:checkout`.
    pub actor: String,
    /// The event that caused this write (saga).
    pub causation_id: Option<Uuid>,
}

impl WriteContext {
    fn metadata(&self) -> EventMetadata {
        EventMetadata {
            correlation_id: Some(self.write_id),
            causation_id: self.causation_id,
            actor: Some(self.actor.clone()),
            traceparent: None,
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

/// Runs `command` on `aggregate_id` unless an earlier attempt with the same write id already
/// appended to it. `expected_version` (from `If-Match`) makes it conditional; without it a
/// lost race is retried with jitter.
pub(crate) async fn execute<A>(
    store: &AggregateStore<A>,
    pool: &PgPool,
    aggregate_id: &str,
    command: A::Command,
    ctx: &WriteContext,
    expected_version: Option<u64>,
) -> Result<Written, EventStoreError<A::Error>>
where
    A: Aggregate + Send + Sync,
    A::Command: Clone,
{
    if ctx.check_prior {
        if let Some(prior) = prior_write(pool, A::TYPE, aggregate_id, ctx.write_id).await? {
            return Ok(prior);
        }
    }
    let metadata = ctx.metadata();
    let mut attempt = 0;
    loop {
        attempt += 1;
        match store
            .execute(aggregate_id, command.clone(), &metadata, expected_version)
            .await
        {
            Ok(committed) => {
                let position = match committed.position {
                    Some(p) => Some(p),
                    None => latest_position(pool, A::TYPE, aggregate_id).await?,
                };
                return Ok(Written {
                    aggregate_id: committed.aggregate_id,
                    version: committed.version,
                    position,
                    appended: committed.events_appended,
                });
            }
            Err(EventStoreError::Conflict {
                aggregate_type,
                aggregate_id: id,
                expected_version: expected,
                actual_version: None,
            }) if expected_version.is_some() => {
                // An `If-Match` write raced and lost: report the version now current.
                let current = current_version(pool, A::TYPE, aggregate_id).await?;
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

async fn prior_write<E: std::error::Error>(
    pool: &PgPool,
    aggregate_type: &str,
    aggregate_id: &str,
    write_id: Uuid,
) -> Result<Option<Written>, EventStoreError<E>> {
    let row: Option<(i64, String, i64)> = sqlx::query_as(
        "SELECT sequence, tx_id::text, global_position FROM events \
         WHERE correlation_id = $1 AND aggregate_type = $2 AND aggregate_id = $3 \
         ORDER BY sequence DESC LIMIT 1",
    )
    .bind(write_id.to_string())
    .bind(aggregate_type)
    .bind(aggregate_id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(sequence, tx, gp)| Written {
        aggregate_id: aggregate_id.to_owned(),
        version: sequence as u64,
        position: tx.parse().ok().map(|tx| Position::new(tx, gp)),
        appended: 0,
    }))
}

async fn latest_position<E: std::error::Error>(
    pool: &PgPool,
    aggregate_type: &str,
    aggregate_id: &str,
) -> Result<Option<Position>, EventStoreError<E>> {
    let row: Option<(String, i64)> = sqlx::query_as(
        "SELECT tx_id::text, global_position FROM events \
         WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence DESC LIMIT 1",
    )
    .bind(aggregate_type)
    .bind(aggregate_id)
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(|(tx, gp)| tx.parse().ok().map(|tx| Position::new(tx, gp))))
}

async fn current_version<E: std::error::Error>(
    pool: &PgPool,
    aggregate_type: &str,
    aggregate_id: &str,
) -> Result<u64, EventStoreError<E>> {
    let v: Option<i64> = sqlx::query_scalar(
        "SELECT max(sequence) FROM events WHERE aggregate_type = $1 AND aggregate_id = $2",
    )
    .bind(aggregate_type)
    .bind(aggregate_id)
    .fetch_one(pool)
    .await?;
    Ok(v.unwrap_or(0) as u64)
}
