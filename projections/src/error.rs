//! Errors of the projections crate.

use mercato_event_store::{Position, StoreError};

/// Why a batch could not be applied (the transaction is rolled back; nothing is half done).
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// PostgreSQL failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Reading the log failed.
    #[error("event log error: {0}")]
    Log(#[from] StoreError),
    /// The consumer runtime failed.
    #[error("nats error: {0}")]
    Nats(#[from] mercato_nats::NatsError),
    /// An event's payload does not match its type.
    #[error("event {event_id} ({event_type}) cannot be decoded: {reason}")]
    Decode {
        /// The event.
        event_id: uuid::Uuid,
        /// Its type.
        event_type: String,
        /// The serde error.
        reason: String,
    },
    /// An earlier event of the aggregate has not been applied yet: retry, never skip.
    #[error("{aggregate_type} {aggregate_id}: event {sequence} arrived before event {expected}")]
    SequenceGap {
        /// The aggregate type.
        aggregate_type: String,
        /// The aggregate id.
        aggregate_id: String,
        /// The sequence that arrived.
        sequence: i64,
        /// The sequence that is missing.
        expected: i64,
    },
    /// An event holds a value the read model cannot store.
    #[error("event {event_id}: {reason}")]
    Invalid {
        /// The event.
        event_id: uuid::Uuid,
        /// What is wrong.
        reason: String,
    },
    /// The search index failed.
    #[error("search index error: {0}")]
    Search(#[from] tantivy::TantivyError),
    /// The search index directory cannot be used.
    #[error("search index directory: {0}")]
    Io(#[from] std::io::Error),
    /// The search index's commit payload is not ours.
    #[error("search index commit payload is malformed: {0}")]
    Payload(String),
    /// No projection has this name.
    #[error("unknown projection {0:?}")]
    UnknownProjection(String),
    /// Another rebuild of the projection is running (it holds the rebuild lock).
    #[error("a rebuild of projection {0:?} is already running")]
    RebuildRunning(String),
    /// A position that cannot be stored.
    #[error("position {0} cannot be stored")]
    Position(Position),
    /// No event has this id in the log.
    #[error("no event {0} in the log")]
    UnknownEvent(uuid::Uuid),
    /// The projection has not parked this event.
    #[error("projection {projection:?} has no parked event {event_id}")]
    NotParked {
        /// The projection.
        projection: String,
        /// The event.
        event_id: uuid::Uuid,
    },
}
