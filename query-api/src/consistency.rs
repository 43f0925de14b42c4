//! Read-your-writes: `Mercato-Min-Position` makes a request wait until the projections behind
//! its route have reached the client's consistency token.

use std::time::Duration;

use axum::http::HeaderMap;
use mercato_event_store::Position;
use mercato_projections::ProjectionStatus;
use mercato_web::{Problem, MERCATO_MIN_POSITION};

use crate::AppState;

const POLL: Duration = Duration::from_millis(5);

/// What a route reads.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source {
    /// PostgreSQL projections, by name.
    Tables(&'static [&'static str]),
    /// This replica's search index.
    Search,
}

/// Waits until `source` reached the request's `Mercato-Min-Position` (if any), up to the
/// configured limit; then 503 `stale-read` with `Retry-After`.
pub(crate) async fn wait(
    state: &AppState,
    headers: &HeaderMap,
    source: Source,
) -> Result<(), Problem> {
    let Some(value) = headers.get(MERCATO_MIN_POSITION) else {
        return Ok(());
    };
    let wanted: Position = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| {
            Problem::bad_request(
                "invalid_min_position",
                "Mercato-Min-Position must be a consistency token returned by the command API",
            )
        })?;
    let deadline = tokio::time::Instant::now() + state.min_position_wait;
    let mut checked_issued = false;
    loop {
        let reached = match source {
            Source::Search => state.search.position().0 >= wanted,
            Source::Tables(names) => {
                let positions = ProjectionStatus::positions(&state.pool, names)
                    .await
                    .map_err(Problem::internal)?;
                names
                    .iter()
                    .all(|n| positions.get(*n).is_some_and(|p| *p >= wanted))
            }
        };
        if reached {
            return Ok(());
        }
        if !checked_issued {
            check_issued(state, wanted).await?;
            checked_issued = true;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Problem::unavailable(
                "stale-read",
                "the read model has not caught up with your last write yet; retry shortly",
                1,
            )
            .with("min_position", wanted.to_string()));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Refuses a token no write can have returned: one of a transaction that has not happened
/// yet (at or past the server's next transaction id). Waiting for it would only end in 503.
async fn check_issued(state: &AppState, wanted: Position) -> Result<(), Problem> {
    let (next_tx,): (String,) =
        sqlx::query_as("SELECT pg_snapshot_xmax(pg_current_snapshot())::text")
            .fetch_one(&state.pool)
            .await
            .map_err(Problem::internal)?;
    let next_tx: u64 = next_tx.parse().map_err(Problem::internal)?;
    if wanted.tx_id() >= next_tx {
        return Err(Problem::bad_request(
            "unknown_min_position",
            "Mercato-Min-Position is ahead of every write: pass a consistency token returned \
             by the command API",
        ));
    }
    Ok(())
}
