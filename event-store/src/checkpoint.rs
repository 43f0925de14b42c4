//! Durable checkpoints of log tailers, kept in PostgreSQL.

use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use crate::error::StoreError;
use crate::position::Position;

/// A tailer's saved place in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// The position of the last event fully handled.
    pub position: Position,
    /// The id of that event, where known.
    pub last_event_id: Option<Uuid>,
}

impl Checkpoint {
    /// Before the first event.
    pub const START: Checkpoint = Checkpoint {
        position: Position::START,
        last_event_id: None,
    };
}

/// Reads and writes rows of `log_checkpoints`.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    pool: PgPool,
}

impl CheckpointStore {
    /// Checkpoints in `pool`'s database.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The checkpoint called `name` ([`Checkpoint::START`] when it was never saved).
    pub async fn load(&self, name: &str) -> Result<Checkpoint, StoreError> {
        let row: Option<(String, i64, Option<Uuid>)> = sqlx::query_as(
            "SELECT tx_id::text, global_position, last_event_id FROM log_checkpoints WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        let Some((tx, gp, last_event_id)) = row else {
            return Ok(Checkpoint::START);
        };
        let tx_id = tx.parse().map_err(|_| StoreError::Corrupt {
            global_position: gp,
            reason: format!("checkpoint {name:?} has a malformed tx_id"),
        })?;
        Ok(Checkpoint {
            position: Position::new(tx_id, gp),
            last_event_id,
        })
    }

    /// Saves `checkpoint` as `name`; it only ever moves forward, so a late writer cannot move it back.
    pub async fn save(&self, name: &str, checkpoint: Checkpoint) -> Result<(), StoreError> {
        Self::save_with(&self.pool, name, checkpoint).await
    }

    /// Saves inside the caller's transaction (a read model that commits with its checkpoint).
    pub async fn save_with<'e>(
        executor: impl PgExecutor<'e>,
        name: &str,
        checkpoint: Checkpoint,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO log_checkpoints (name, tx_id, global_position, last_event_id, updated_at) \
             VALUES ($1, $2::text::xid8, $3, $4, now()) \
             ON CONFLICT (name) DO UPDATE \
               SET tx_id = EXCLUDED.tx_id, global_position = EXCLUDED.global_position, \
                   last_event_id = EXCLUDED.last_event_id, updated_at = now() \
             WHERE (log_checkpoints.tx_id, log_checkpoints.global_position) \
                 < (EXCLUDED.tx_id, EXCLUDED.global_position)",
        )
        .bind(name)
        .bind(checkpoint.position.tx_id().to_string())
        .bind(checkpoint.position.global_position())
        .bind(checkpoint.last_event_id)
        .execute(executor)
        .await?;
        Ok(())
    }

    /// Moves `name` to `checkpoint` even if that is backwards (an operator's reset, or a
    /// relay re-syncing with the stream).
    pub async fn reset(&self, name: &str, checkpoint: Checkpoint) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO log_checkpoints (name, tx_id, global_position, last_event_id, updated_at) \
             VALUES ($1, $2::text::xid8, $3, $4, now()) \
             ON CONFLICT (name) DO UPDATE \
               SET tx_id = EXCLUDED.tx_id, global_position = EXCLUDED.global_position, \
                   last_event_id = EXCLUDED.last_event_id, updated_at = now()",
        )
        .bind(name)
        .bind(checkpoint.position.tx_id().to_string())
        .bind(checkpoint.position.global_position())
        .bind(checkpoint.last_event_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
