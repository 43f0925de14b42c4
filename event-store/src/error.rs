//! Errors of the event store.

use std::error::Error as StdError;

type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// A failure of the event store's own machinery (database, migrations, stored data).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// PostgreSQL could not be reached or refused a statement.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// The embedded migrations could not be applied.
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored row does not have the shape the code expects.
    #[error("stored event at global position {global_position} is malformed: {reason}")]
    Corrupt {
        /// Where the row is.
        global_position: i64,
        /// What is wrong with it.
        reason: String,
    },
    /// A setting cannot be used.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Personal data could not be revealed (keys, configuration).
    #[error(transparent)]
    Privacy(#[from] crate::privacy::PrivacyError),
}

/// Why a command against an aggregate did not commit.
#[derive(Debug, thiserror::Error)]
pub enum EventStoreError<E: StdError> {
    /// The aggregate refused the command (a business rule).
    #[error(transparent)]
    Domain(E),
    /// Another writer changed the aggregate first (optimistic concurrency).
    #[error("{aggregate_type} {aggregate_id} was changed concurrently: expected version {expected_version}")]
    Conflict {
        /// The aggregate's type.
        aggregate_type: &'static str,
        /// The aggregate's id.
        aggregate_id: String,
        /// The version the command was decided against.
        expected_version: u64,
        /// The version found, where it is known.
        actual_version: Option<u64>,
    },
    /// The aggregate id is empty, too long, or contains control characters.
    #[error("invalid aggregate id: {reason}")]
    InvalidAggregateId {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An event is larger than the store accepts (the message broker could not carry it).
    #[error("event {event_type} is {bytes} bytes; the limit is {limit}")]
    EventTooLarge {
        /// The event's type.
        event_type: String,
        /// Its serialized size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// The command would write personal data of a subject whose data was erased.
    #[error("the personal data of {subject} was erased")]
    Erased {
        /// The erased data subject.
        subject: String,
    },
    /// PostgreSQL could not be reached.
    #[error("event store unavailable")]
    Unavailable(#[source] BoxError),
    /// Stored events or snapshots cannot be read back.
    #[error("stored events cannot be read")]
    Corrupt(#[source] BoxError),
    /// Anything else; logged, never shown to clients.
    #[error("unexpected event store failure")]
    Unexpected(#[source] BoxError),
}

impl<E: StdError> EventStoreError<E> {
    /// Whether retrying the same command may succeed (a lost race, not a rule).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }
}

impl<E: StdError> From<sqlx::Error> for EventStoreError<E> {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed => Self::Unavailable(Box::new(err)),
            other => Self::Unexpected(Box::new(other)),
        }
    }
}
