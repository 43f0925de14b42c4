//! Filling the search index's gaps from the PostgreSQL log, as the SQL projections do.
//!
//! The consumer runtime retries a failing event *after* later events of other aggregates and
//! redelivers after a crash, so a batch can miss events between the index's position and its
//! own last event. Applied as delivered, the index would either fail the batch until the
//! event is dead-lettered (a gap of the same aggregate) or move its position past an event it
//! never saw (read-your-writes would then be untruthful). Instead a batch that does not cover
//! the log range after the index's position is replaced by that range read from the log.

use mercato_event_store::{LogFilter, LogReader, Position, RecordedEvent};
use sqlx::PgPool;

use crate::error::ProjectionError;

const CHUNK: usize = 1000;

/// The events to apply after `position` for a delivered `batch`: the batch's own events after
/// `position` in log order when they are every log event up to the batch's last one, otherwise
/// that whole range read from the log. Events at or before `position` are already applied.
pub(crate) async fn complete(
    pool: &PgPool,
    position: Position,
    batch: Vec<RecordedEvent>,
) -> Result<Vec<RecordedEvent>, ProjectionError> {
    let mut fresh: Vec<RecordedEvent> = batch
        .into_iter()
        .filter(|e| e.position > position)
        .collect();
    fresh.sort_by_key(|e| e.position);
    fresh.dedup_by_key(|e| e.event_id);
    let Some(last) = fresh.last().map(|e| e.position) else {
        return Ok(fresh);
    };
    let in_log = LogReader::count_between(pool, position, last).await?;
    if in_log == fresh.len() as i64 {
        return Ok(fresh);
    }
    let range = read_range(pool, position, last).await?;
    tracing::info!(
        from = %position,
        to = %last,
        delivered = fresh.len(),
        from_log = range.len(),
        "search index: filled a gap in the delivered events from the log"
    );
    metrics::counter!("search_gaps_filled_total").increment(1);
    Ok(range)
}

/// The log's events in `(after, to]`.
async fn read_range(
    pool: &PgPool,
    after: Position,
    to: Position,
) -> Result<Vec<RecordedEvent>, ProjectionError> {
    let reader = LogReader::new(pool.clone());
    let mut out = Vec::new();
    let mut from = after;
    loop {
        let chunk = reader.read(from, &LogFilter::default(), CHUNK).await?;
        let Some(end) = chunk.last().map(|e| e.position) else {
            return Ok(out);
        };
        from = end;
        out.extend(chunk.into_iter().filter(|e| e.position <= to));
        if from >= to {
            return Ok(out);
        }
    }
}
