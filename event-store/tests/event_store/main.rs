//! Integration tests of the event store against the real PostgreSQL.

mod privacy;
mod reader;
mod store;

use std::time::Duration;

use mercato_event_store::{LogFilter, LogReader, Position, RecordedEvent};

/// Waits until `n` events are readable from the start of the log and returns them. The
/// horizon is cluster-wide: a transaction that another test holds open in its own database
/// may delay visibility for a moment, never reorder or lose anything.
pub async fn wait_readable(reader: &LogReader, n: usize) -> Vec<RecordedEvent> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let events = reader
            .read(Position::START, &LogFilter::default(), 100_000)
            .await
            .unwrap();
        if events.len() >= n || tokio::time::Instant::now() > deadline {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
