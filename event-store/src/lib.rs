//! Mercato's source of truth: events in PostgreSQL.
//!
//! - [`AggregateStore`] runs commands against cqrs-es aggregates persisted by postgres-es,
//!   with snapshots and typed optimistic-concurrency conflicts.
//! - [`LogReader`] reads every committed event in one total, gap-safe order
//!   (`(tx_id, global_position)`, see `docs/adr/0002-gap-safe-global-log.md`).
//! - [`database`] creates the database and applies the embedded migrations.
#![forbid(unsafe_code)]

pub mod checkpoint;
pub mod database;
mod error;
mod metadata;
mod position;
pub mod privacy;
mod reader;
mod snapshots;
mod store;
#[cfg(feature = "test-support")]
pub mod testing;

pub use checkpoint::CheckpointStore;
pub use database::DatabaseConfig;
pub use error::{EventStoreError, StoreError};
pub use metadata::EventMetadata;
pub use position::{Position, PositionParseError};
pub use reader::{EncodedEvent, LogFilter, LogHealth, LogReader, PersonalData, RecordedEvent};
pub use snapshots::SnapshotPolicy;
pub use store::{AggregateStore, Committed, Recorded, MAX_EVENT_BYTES};

/// The PostgreSQL channel on which inserts into `events` are announced.
pub const EVENTS_CHANNEL: &str = "mercato_events";
