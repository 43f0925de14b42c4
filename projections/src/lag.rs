//! How far each read model trails the log: the `read.projection_status` row and the gauges
//! (`projection_lag_*`, `projection_state`, `projection_position`, parked events), refreshed
//! by every projection worker and by each query replica's search index.

use std::time::Duration;

use mercato_event_store::{LogHealth, LogReader};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::error::ProjectionError;
use crate::parking;
use crate::status::ProjectionState;
use crate::status::ProjectionStatus;

/// Refreshes projection `name`'s lag every `interval` until `shutdown`.
pub(crate) async fn report_lag(
    pool: PgPool,
    name: &'static str,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let reader = LogReader::new(pool.clone());
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        if let Err(e) = update_lag(&pool, &reader, name).await {
            tracing::warn!(projection = name, error = %e, "cannot update projection lag");
        }
    }
}

/// Recomputes a projection's lag from the log and stores it (status row and gauges).
async fn update_lag(pool: &PgPool, reader: &LogReader, name: &str) -> Result<(), ProjectionError> {
    let Some(position) = ProjectionStatus::positions(pool, &[name])
        .await?
        .remove(name)
    else {
        return Ok(());
    };
    let health = reader.health(position).await?;
    let state: Option<String> = sqlx::query_scalar(
        "UPDATE read.projection_status SET lag_events = $2, lag_seconds = $3 WHERE name = $1 \
         RETURNING state",
    )
    .bind(name)
    .bind(health.events_behind)
    .bind(health.seconds_behind)
    .fetch_optional(pool)
    .await?;
    let label = name.to_owned();
    // One series per state, 1 for the current one: `projection_state{state="failed"} == 1`.
    for candidate in [
        ProjectionState::Live,
        ProjectionState::Rebuilding,
        ProjectionState::Failed,
        ProjectionState::NotStarted,
    ] {
        let current = state.as_deref() == Some(candidate.to_string().as_str());
        metrics::gauge!("projection_state", "projection" => label.clone(), "state" => candidate.to_string().replace(' ', "_"))
            .set(if current { 1.0 } else { 0.0 });
    }
    set_lag(&label, &health);
    metrics::gauge!("projection_position", "projection" => label.clone())
        .set(position.global_position() as f64);
    let parked = parking::parked_counts(pool).await?;
    metrics::counter!("projection_parked_total", "projection" => label.clone()).increment(0);
    metrics::gauge!("projection_parked_events", "projection" => label)
        .set(parked.get(name).copied().unwrap_or(0) as f64);
    Ok(())
}

/// The lag gauges of `projection`.
pub(crate) fn set_lag(projection: &str, health: &LogHealth) {
    metrics::gauge!("projection_lag_events", "projection" => projection.to_owned())
        .set(health.events_behind as f64);
    metrics::gauge!("projection_lag_seconds", "projection" => projection.to_owned())
        .set(health.seconds_behind);
}
