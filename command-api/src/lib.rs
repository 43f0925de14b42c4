//! Mercato's command side: the HTTP command API (the only way anything changes), the order
//! process runtime and the notification worker.
//!
//! - [`CommandApi`] serves `/v1/...` writes with JWT auth, `Idempotency-Key`, `If-Match` and
//!   RFC 9457 problems (see `docs/adr/0007-command-api-idempotency.md`). Handlers parse and
//!   authorize, call a service (`services`), and shape the answer.
//! - [`OrderProcessWorker`] drives the domain's `OrderProcess` (checkout, then the order's
//!   whole life) from a durable JetStream consumer, with its state, an outbox of commands and
//!   payment deadlines in PostgreSQL (`docs/adr/0011-order-lifecycle.md`).
//! - [`NotificationWorker`] emails customers and guests about their orders (or records the
//!   message).
#![forbid(unsafe_code)]

mod api;
mod cart_tokens;
mod catalog;
mod config;
mod error;
mod exec;
mod gateway;
mod idempotency;
mod notify;
mod panics;
mod pending;
mod process;
mod routes;
mod services;
mod state;
mod stores;
mod throttle;

pub use api::{test_router, ApiDoc, CommandApi};
pub use catalog::StoreCatalog;
pub use config::{CommandApiConfig, PaymentGatewayKind, DEFAULT_MAX_AMOUNT};
pub use gateway::TestCardGateway;
pub use notify::{NotificationWorker, Recorded};
pub use process::{OrderProcessWorker, ProcessConfig};
pub use services::checkout::order_id_for;
pub use state::Deps;
pub use throttle::ThrottleConfig;

/// The command side's migrations (`command-api/migrations`, schema `command`).
///
/// All crates share `_sqlx_migrations`, each in its own version range, so versions of other
/// crates are ignored.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate::Migrator {
    ignore_missing: true,
    ..sqlx::migrate!()
};

/// Applies the command side's pending migrations (after the event store's).
pub async fn migrate(pool: &sqlx::PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}
