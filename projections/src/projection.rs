//! What a projection is, and the projections there are.

use std::sync::Arc;

use mercato_event_store::RecordedEvent;
use sqlx::PgConnection;

use crate::error::ProjectionError;
use crate::read_models;

/// The schema the live read models are in.
pub const READ_SCHEMA: &str = "read";

/// A read model fed by events.
#[async_trait::async_trait]
pub trait Projection: Send + Sync + 'static {
    /// Stable name (status row, consumer name, metrics label).
    fn name(&self) -> &'static str;
    /// Bumped whenever `apply` changes what it writes (a rebuild is then due).
    fn version(&self) -> i32;
    /// Aggregate types whose every event is sequence-checked (the ones `apply` reads).
    fn aggregate_types(&self) -> &'static [&'static str];
    /// Event types `apply` is called for.
    fn event_types(&self) -> &'static [&'static str];
    /// The tables (unqualified) this projection owns; a rebuild builds them in a shadow schema.
    fn tables(&self) -> &'static [&'static str];
    /// DDL creating [`Projection::tables`] with unqualified names (run with `search_path` set
    /// to a rebuild's shadow schema), for a version whose tables differ from the live ones.
    /// `None`: the shadow copies the live tables' shape (columns, keys, indexes).
    fn shadow_ddl(&self) -> Option<&'static str> {
        None
    }
    /// Updates the read model for `events`: only events of [`Projection::event_types`], each
    /// exactly once, every aggregate's in sequence order. Runs in the runtime's transaction
    /// with `search_path` set to the target schema, so SQL uses unqualified table names. A
    /// batch is a few statements, whatever its size (load the rows it touches, fold, write
    /// back; `read_models::rows`): live batches and a rebuild's large ones alike.
    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[&RecordedEvent],
    ) -> Result<(), ProjectionError>;
}

/// Name and version of a registered projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProjectionInfo {
    /// The projection's name.
    pub name: &'static str,
    /// Its code version.
    pub version: i32,
}

/// Every PostgreSQL projection, in a stable order.
pub fn registry() -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(read_models::catalog::Catalog),
        Arc::new(read_models::stock::StockLevels),
        Arc::new(read_models::carts::Carts),
        Arc::new(read_models::orders::Orders),
        Arc::new(read_models::customers::Customers),
        Arc::new(read_models::sales::Sales),
        Arc::new(read_models::pricing::Pricing),
        Arc::new(read_models::recommendations::Recommendations),
    ]
}

/// The registered projection called `name`.
pub fn find(name: &str) -> Result<Arc<dyn Projection>, ProjectionError> {
    registry()
        .into_iter()
        .find(|p| p.name() == name)
        .ok_or_else(|| ProjectionError::UnknownProjection(name.to_owned()))
}

/// Name and version of every registered projection.
pub fn infos() -> Vec<ProjectionInfo> {
    registry()
        .iter()
        .map(|p| ProjectionInfo {
            name: p.name(),
            version: p.version(),
        })
        .collect()
}
