//! Poison events: an event a projection cannot apply (a value its tables cannot hold, a
//! payload that does not decode) is parked with its error, and the projection goes on with
//! the events after it, so one bad value never freezes a read model
//! (`docs/adr/0012-poison-events.md`).
//!
//! A batch is applied under a savepoint. If `apply` fails for a reason that will not go away
//! on a retry (a data error, not a lost connection), the batch is rolled back to the
//! savepoint and applied event by event, each under a savepoint of its own; an event that
//! still fails is recorded in `projection_parked` (the live table, or a rebuild shadow's) in
//! the same transaction that moves the checkpoint past it. Nothing is silently lost: the
//! event is listed by `mercato projections parked`, counted in `mercato projections status`
//! and the `projection_parked_events` gauge, and can be retried after a fix or skipped.

use mercato_event_store::{LogReader, PersonalData, Position, RecordedEvent};
use sqlx::{Connection, PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::error::ProjectionError;
use crate::projection::{find, Projection, READ_SCHEMA};

/// Applies `events` to `projection`'s tables on `conn` (inside the caller's transaction, with
/// `search_path` set to the target schema), parking the ones that cannot be applied. Returns
/// how many were parked. A transient failure (the database unreachable, a deadlock) is
/// returned as is, for the caller to retry.
pub(crate) async fn apply_or_park(
    conn: &mut PgConnection,
    projection: &dyn Projection,
    events: &[&RecordedEvent],
) -> Result<usize, ProjectionError> {
    if events.is_empty() {
        return Ok(0);
    }
    let mut batch = conn.begin().await?;
    match projection.apply(&mut batch, events).await {
        Ok(()) => {
            batch.commit().await?;
            return Ok(0);
        }
        Err(e) if !is_deterministic(&e) => return Err(e),
        Err(_) => batch.rollback().await?,
    }
    // One event at a time finds the ones at fault; the others apply as they would have.
    let mut parked = 0;
    for event in events {
        let mut one = conn.begin().await?;
        match projection.apply(&mut one, &[*event]).await {
            Ok(()) => one.commit().await?,
            Err(e) if !is_deterministic(&e) => return Err(e),
            Err(e) => {
                one.rollback().await?;
                park(conn, projection.name(), event, &e.to_string()).await?;
                parked += 1;
            }
        }
    }
    Ok(parked)
}

/// Whether retrying cannot help: the event's payload or values are at fault, not the
/// database's availability.
fn is_deterministic(error: &ProjectionError) -> bool {
    match error {
        ProjectionError::Decode { .. } | ProjectionError::Invalid { .. } => true,
        ProjectionError::Database(sqlx::Error::Database(e)) => {
            // SQLSTATE classes 22 (data exception: out of range, invalid text) and 23
            // (integrity constraint); 40 (deadlock, serialization), 53, 57 and 08 are
            // transient.
            e.code()
                .is_some_and(|c| c.starts_with("22") || c.starts_with("23"))
        }
        ProjectionError::Database(sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_)) => {
            true
        }
        _ => false,
    }
}

async fn park(
    conn: &mut PgConnection,
    projection: &str,
    event: &RecordedEvent,
    error: &str,
) -> Result<(), ProjectionError> {
    tracing::error!(projection, event_id = %event.event_id, event_type = %event.event_type,
        aggregate_type = %event.aggregate_type, aggregate_id = %event.aggregate_id,
        error, "event parked: the projection cannot apply it and goes on without it");
    metrics::counter!("projection_parked_total", "projection" => projection.to_owned())
        .increment(1);
    sqlx::query(
        "INSERT INTO projection_parked (projection, event_id, tx_id, global_position, \
           aggregate_type, aggregate_id, sequence, event_type, error) \
         VALUES ($1, $2, $3::text::xid8, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (projection, event_id) DO UPDATE SET error = EXCLUDED.error, parked_at = now()",
    )
    .bind(projection)
    .bind(event.event_id)
    .bind(event.position.tx_id().to_string())
    .bind(event.position.global_position())
    .bind(&event.aggregate_type)
    .bind(&event.aggregate_id)
    .bind(event.sequence)
    .bind(&event.event_type)
    .bind(error)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// An event a projection parked.
#[derive(Debug, Clone, PartialEq)]
pub struct ParkedEvent {
    /// The projection that could not apply it.
    pub projection: String,
    /// The event.
    pub event_id: Uuid,
    /// Its place in the log.
    pub position: Position,
    /// Its aggregate type.
    pub aggregate_type: String,
    /// Its aggregate.
    pub aggregate_id: String,
    /// Its sequence in the aggregate.
    pub sequence: i64,
    /// Its type.
    pub event_type: String,
    /// Why it could not be applied.
    pub error: String,
    /// When it was parked.
    pub parked_at: chrono::DateTime<chrono::Utc>,
}

/// The parked events of `projection` (of every projection when `None`), in log order.
pub async fn parked(
    pool: &PgPool,
    projection: Option<&str>,
) -> Result<Vec<ParkedEvent>, ProjectionError> {
    let rows = sqlx::query(
        "SELECT projection, event_id, tx_id::text AS tx, global_position, aggregate_type, \
           aggregate_id, sequence, event_type, error, parked_at \
         FROM read.projection_parked WHERE $1::text IS NULL OR projection = $1 \
         ORDER BY tx_id, global_position, projection",
    )
    .bind(projection)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            let tx: String = r.try_get("tx")?;
            Ok(ParkedEvent {
                projection: r.try_get("projection")?,
                event_id: r.try_get("event_id")?,
                position: Position::new(
                    tx.parse().unwrap_or_default(),
                    r.try_get("global_position")?,
                ),
                aggregate_type: r.try_get("aggregate_type")?,
                aggregate_id: r.try_get("aggregate_id")?,
                sequence: r.try_get("sequence")?,
                event_type: r.try_get("event_type")?,
                error: r.try_get("error")?,
                parked_at: r.try_get("parked_at")?,
            })
        })
        .collect()
}

/// Parked events per projection (for status and metrics).
pub async fn parked_counts(
    pool: &PgPool,
) -> Result<std::collections::HashMap<String, i64>, ProjectionError> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT projection, count(*) FROM read.projection_parked GROUP BY projection",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().collect())
}

/// What became of a parked event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// It applied now (after a fix) and is no longer parked.
    Applied,
    /// It is dropped from the list without being applied.
    Skipped,
}

/// Applies a parked event now, on the read model as it stands, and unparks it. Under the
/// projection's checkpoint row lock, like a live batch. It fails (and stays parked) if it
/// still cannot be applied. An event applied out of order like this is right for read
/// models that add up deltas (sales); for ones that fold state, rebuild instead
/// (`mercato projections rebuild <name>`), which applies the log in order.
pub async fn retry(
    pool: &PgPool,
    projection: &str,
    event_id: Uuid,
) -> Result<Resolution, ProjectionError> {
    let projection = find(projection)?;
    let event = LogReader::new(pool.clone())
        .with_personal_data(PersonalData::Revealed)
        .event(event_id)
        .await?
        .ok_or(ProjectionError::UnknownEvent(event_id))?;
    let mut tx = pool.begin().await?;
    sqlx::query(&format!(
        "SET LOCAL search_path TO \"{READ_SCHEMA}\", public"
    ))
    .execute(&mut *tx)
    .await?;
    sqlx::query("SELECT 1 FROM read.projection_status WHERE name = $1 FOR UPDATE")
        .bind(projection.name())
        .execute(&mut *tx)
        .await?;
    unpark(&mut tx, projection.name(), event_id).await?;
    projection.apply(&mut tx, &[&event]).await?;
    tx.commit().await?;
    tracing::info!(projection = projection.name(), %event_id, "parked event applied");
    Ok(Resolution::Applied)
}

/// Drops a parked event from the list without applying it (its effect stays missing from
/// the read model, on purpose).
pub async fn skip(
    pool: &PgPool,
    projection: &str,
    event_id: Uuid,
) -> Result<Resolution, ProjectionError> {
    let projection = find(projection)?;
    let mut tx = pool.begin().await?;
    unpark(&mut tx, projection.name(), event_id).await?;
    tx.commit().await?;
    tracing::warn!(projection = projection.name(), %event_id, "parked event skipped");
    Ok(Resolution::Skipped)
}

async fn unpark(
    conn: &mut PgConnection,
    projection: &str,
    event_id: Uuid,
) -> Result<(), ProjectionError> {
    let removed =
        sqlx::query("DELETE FROM read.projection_parked WHERE projection = $1 AND event_id = $2")
            .bind(projection)
            .bind(event_id)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    if removed == 0 {
        return Err(ProjectionError::NotParked {
            projection: projection.to_owned(),
            event_id,
        });
    }
    Ok(())
}
