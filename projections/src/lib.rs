//! Projections: the read models of Mercato and the catalog's search index, fed from the
//! events stream.
//!
//! - [`Projection`]: a name, a version, the aggregates and event types it follows and an
//!   `apply` that updates its tables inside the runtime's PostgreSQL transaction.
//! - [`runtime`]: applies batches exactly once in effect (read-model changes, per-aggregate
//!   sequences and the checkpoint commit together), reports lag, runs one durable JetStream
//!   consumer per projection, and can catch up straight from the PostgreSQL log.
//! - [`rebuild`]: zero-downtime rebuilds in shadow tables from the PostgreSQL log, with an
//!   atomic switch-over; [`status`]: what `mercato projections status` prints.
//! - [`read_models`]: catalog, stock, carts, orders, customers, sales analytics and
//!   recommendations, in the `read` schema.
//! - [`search`]: the tantivy index of the catalog, owned by each query-api replica.
//!
//! See `docs/adr/0008-projections-and-search.md`.
#![forbid(unsafe_code)]

mod decode;
mod error;
mod lag;
pub mod parking;
pub mod projection;
pub mod read_models;
pub mod rebuild;
pub mod runtime;
pub mod search;
pub mod status;

pub use error::ProjectionError;
pub use projection::{registry, Projection, ProjectionInfo, READ_SCHEMA};
pub use runtime::{apply_batch, catch_up, run_projections, ProjectionDeps, ProjectionWorker};
pub use status::ProjectionStatus;

/// The embedded migrations (`projections/migrations`), sharing `_sqlx_migrations` with the
/// other crates, so versions of other crates are ignored.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate::Migrator {
    ignore_missing: true,
    ..sqlx::migrate!()
};

/// Applies the read-model migrations (after the event store's).
pub async fn migrate(pool: &sqlx::PgPool) -> Result<(), ProjectionError> {
    MIGRATOR.run(pool).await?;
    Ok(())
}
