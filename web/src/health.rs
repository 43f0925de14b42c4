//! `GET /healthz` (the process is up) and `GET /readyz` (its dependencies answer).

use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;
use sqlx::PgPool;

use crate::problem::Problem;

/// What readiness checks.
#[derive(Clone)]
pub struct Dependencies {
    /// The PostgreSQL pool.
    pub pool: PgPool,
    /// The NATS connection.
    pub nats: async_nats::Client,
}

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// `/healthz` and `/readyz` for `deps`.
pub fn router(deps: Dependencies) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(json!({"status": "ok"})) }),
        )
        .route("/readyz", get(readyz))
        .with_state(deps)
}

async fn readyz(State(deps): State<Dependencies>) -> Response {
    let postgres = matches!(
        tokio::time::timeout(CHECK_TIMEOUT, sqlx::query("SELECT 1").execute(&deps.pool)).await,
        Ok(Ok(_))
    );
    let nats = matches!(
        deps.nats.connection_state(),
        async_nats::connection::State::Connected
    );
    if postgres && nats {
        return axum::Json(json!({"status": "ready", "postgres": "up", "nats": "up"}))
            .into_response();
    }
    let down: Vec<&str> = [("postgres", postgres), ("nats", nats)]
        .into_iter()
        .filter(|(_, up)| !up)
        .map(|(name, _)| name)
        .collect();
    Problem::unavailable("not_ready", format!("unreachable: {}", down.join(", ")), 1)
        .with("postgres", if postgres { "up" } else { "down" })
        .with("nats", if nats { "up" } else { "down" })
        .into_response()
}
