//! The state of every projection, as `mercato projections status` prints it: version,
//! position, lag, whether it is live, rebuilding or failed, and how many events it parked.
//!
//! Lag is computed now from the log (not the worker's last report), and `rebuilding` means a
//! rebuild holds the projection's lock right now; a shadow left by an interrupted rebuild is
//! reported beside a live state, with its position, so the operator knows a rerun resumes it.

use std::collections::HashMap;
use std::fmt;

use mercato_event_store::{LogReader, Position};
use sqlx::{PgPool, Row as _};
use uuid::Uuid;

use crate::error::ProjectionError;
use crate::parking::parked_counts;
use crate::projection::registry;
use crate::rebuild::{shadow_schema, REBUILD_LOCK_CLASS};

/// Whether a projection is serving and keeping up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectionState {
    /// Its worker applies new events to the live tables.
    Live,
    /// A rebuild is running (the live tables keep being served).
    Rebuilding,
    /// Its worker stopped on an event it cannot apply (see the error).
    Failed,
    /// No worker has run it yet.
    NotStarted,
}

impl fmt::Display for ProjectionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Live => "live",
            Self::Rebuilding => "rebuilding",
            Self::Failed => "failed",
            Self::NotStarted => "not started",
        })
    }
}

/// A rebuild's shadow: running, or left by an interrupted run (a rerun resumes it).
#[derive(Debug, Clone, PartialEq)]
pub struct ShadowState {
    /// The version being built.
    pub version: i32,
    /// How far the shadow has applied the log.
    pub position: Position,
    /// Log events after that position.
    pub lag_events: i64,
    /// Whether a rebuild is running now.
    pub running: bool,
}

/// One line of `mercato projections status`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectionOverview {
    /// The projection.
    pub name: &'static str,
    /// The version of the running code.
    pub code_version: i32,
    /// The version that wrote the live tables (`None` before the first run); when it differs
    /// from `code_version`, a worker rebuilds on start.
    pub version: Option<i32>,
    /// The live checkpoint.
    pub position: Position,
    /// Log events after the checkpoint (counted up to 1,000,000).
    pub lag_events: i64,
    /// Age in seconds of the oldest of them (0 when none).
    pub lag_seconds: f64,
    /// Live, rebuilding, failed or not started.
    pub state: ProjectionState,
    /// Why it failed.
    pub error: Option<String>,
    /// Events it could not apply and parked (`mercato projections parked`).
    pub parked: i64,
    /// A rebuild's shadow, if one exists.
    pub rebuild: Option<ShadowState>,
    /// When the live status row last changed.
    pub updated_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// version, tx_id, global_position, state, error, updated_at
type LiveRow = (
    i32,
    String,
    i64,
    String,
    Option<String>,
    chrono::DateTime<chrono::Utc>,
);

/// Every registered PostgreSQL projection's status, in registry order.
pub async fn status(pool: &PgPool) -> Result<Vec<ProjectionOverview>, ProjectionError> {
    let reader = LogReader::new(pool.clone());
    let parked = parked_counts(pool).await?;
    let mut out = Vec::new();
    for projection in registry() {
        let name = projection.name();
        let row: Option<LiveRow> = sqlx::query_as(
            "SELECT version, tx_id::text, global_position, state, error, updated_at \
                 FROM read.projection_status WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(pool)
        .await?;
        let running: bool = sqlx::query_scalar(
            // pg_locks spans the cluster; advisory locks are per database.
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted \
               AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
               AND classid = $1::int4::oid AND objid = hashtext($2)::oid AND objsubid = 2)",
        )
        .bind(REBUILD_LOCK_CLASS)
        .bind(name)
        .fetch_one(pool)
        .await?;
        let rebuild = shadow(pool, &reader, name, projection.version(), running).await?;
        let (version, position, stored_state, error, updated_at) = match row {
            Some((version, tx, gp, state, error, updated_at)) => (
                Some(version),
                Position::new(tx.parse().unwrap_or_default(), gp),
                state,
                error,
                Some(updated_at),
            ),
            None => (None, Position::START, String::new(), None, None),
        };
        let health = reader.health(position).await?;
        let state = if running {
            ProjectionState::Rebuilding
        } else if stored_state == "failed" {
            ProjectionState::Failed
        } else if version.is_none() {
            ProjectionState::NotStarted
        } else {
            // A `rebuilding` row without a running rebuild was interrupted: live as before.
            ProjectionState::Live
        };
        out.push(ProjectionOverview {
            name,
            code_version: projection.version(),
            version,
            position,
            lag_events: health.events_behind,
            lag_seconds: health.seconds_behind,
            state,
            error,
            parked: parked.get(name).copied().unwrap_or(0),
            rebuild,
            updated_at,
        });
    }
    Ok(out)
}

async fn shadow(
    pool: &PgPool,
    reader: &LogReader,
    name: &str,
    version: i32,
    running: bool,
) -> Result<Option<ShadowState>, ProjectionError> {
    let schema = shadow_schema(name, version);
    // The status table is created in the same transaction as the schema.
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(format!("\"{schema}\".projection_status"))
        .fetch_one(pool)
        .await?;
    if !exists {
        return Ok(None);
    }
    let row: Option<(String, i64)> = sqlx::query_as(&format!(
        "SELECT tx_id::text, global_position FROM \"{schema}\".projection_status WHERE name = $1"
    ))
    .bind(name)
    .fetch_optional(pool)
    .await
    // Switched over and dropped between the two queries.
    .or_else(|e| match &e {
        sqlx::Error::Database(d) if d.code().as_deref() == Some("42P01") => Ok(None),
        _ => Err(e),
    })?;
    let Some((tx, gp)) = row else {
        return Ok(None);
    };
    let position = Position::new(tx.parse().unwrap_or_default(), gp);
    let health = reader.health(position).await?;
    Ok(Some(ShadowState {
        version,
        position,
        lag_events: health.events_behind,
        running,
    }))
}

/// A projection's row of `read.projection_status`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectionStatus {
    /// The projection.
    pub name: String,
    /// The version that wrote it.
    pub version: i32,
    /// Position of the last event handled.
    pub position: Position,
    /// Id of that event.
    pub last_event_id: Option<Uuid>,
    /// Events in the log after the position.
    pub lag_events: i64,
    /// Age of the oldest of those events.
    pub lag_seconds: f64,
    /// `live`, `rebuilding` or `failed`.
    pub state: String,
    /// The last error, while failing.
    pub error: Option<String>,
    /// When the row last changed.
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl ProjectionStatus {
    /// Every projection's status, by name.
    pub async fn all(pool: &PgPool) -> Result<Vec<ProjectionStatus>, ProjectionError> {
        let rows = sqlx::query(
            "SELECT name, version, tx_id::text AS tx, global_position, last_event_id, lag_events, \
               lag_seconds, state, error, updated_at FROM read.projection_status ORDER BY name",
        )
        .fetch_all(pool)
        .await?;
        rows.iter()
            .map(|row| {
                let tx: String = row.try_get("tx")?;
                Ok(ProjectionStatus {
                    name: row.try_get("name")?,
                    version: row.try_get("version")?,
                    position: Position::new(
                        tx.parse().unwrap_or_default(),
                        row.try_get("global_position")?,
                    ),
                    last_event_id: row.try_get("last_event_id")?,
                    lag_events: row.try_get("lag_events")?,
                    lag_seconds: row.try_get("lag_seconds")?,
                    state: row.try_get("state")?,
                    error: row.try_get("error")?,
                    updated_at: row.try_get("updated_at")?,
                })
            })
            .collect()
    }

    /// The positions of the named projections (`None` for one that never ran).
    pub async fn positions(
        pool: &PgPool,
        names: &[&str],
    ) -> Result<HashMap<String, Position>, ProjectionError> {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT name, tx_id::text, global_position FROM read.projection_status WHERE name = ANY($1)",
        )
        .bind(&names)
        .fetch_all(pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(name, tx, gp)| (name, Position::new(tx.parse().unwrap_or_default(), gp)))
            .collect())
    }
}
