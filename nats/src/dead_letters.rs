//! Reading the dead-letter stream back: what `mercato projections dead-letters` lists.
//!
//! A worker dead-letters a message after `max_deliver` failed deliveries (ADR 0004).
//! Projections park an event they cannot apply instead (ADR 0012), so their dead letters
//! come only from failures that outlasted every retry (PostgreSQL down for the whole
//! window); the watermark reads such an event from the log again with the next batch, so
//! the read model still gets it. For the order process and notifications, a dead letter is
//! the operator's to look at.

use async_nats::jetstream::stream::RawMessageErrorKind;
use mercato_event_store::RecordedEvent;

use crate::config::NatsConfig;
use crate::error::NatsError;
use crate::headers;

/// One message of the dead-letter stream.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// Its sequence in the dead-letter stream.
    pub sequence: u64,
    /// The worker that gave up on it.
    pub worker: String,
    /// Why.
    pub error: String,
    /// How often it had been delivered.
    pub deliveries: u64,
    /// Its sequence in the events stream.
    pub stream_sequence: u64,
    /// The event, when the payload is one.
    pub event: Option<RecordedEvent>,
}

/// The dead letters of `worker` (of every worker when `None`), oldest first, at most `limit`
/// of them from the oldest.
pub async fn dead_letters(
    js: &async_nats::jetstream::Context,
    config: &NatsConfig,
    worker: Option<&str>,
    limit: usize,
) -> Result<Vec<DeadLetter>, NatsError> {
    let stream = js
        .get_stream(config.dlq_stream())
        .await
        .map_err(|e| NatsError::js("get dead-letter stream", e))?;
    let subject = match worker {
        Some(w) => config.dlq_subject(w),
        None => config.dlq_wildcard(),
    };
    let mut out = Vec::new();
    let mut next = 1;
    while out.len() < limit {
        let message = match stream
            .get_first_raw_message_by_subject(&subject, next)
            .await
        {
            Ok(m) => m,
            Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => break,
            Err(e) => return Err(NatsError::js("read dead letter", e)),
        };
        next = message.sequence + 1;
        let header = |name: &str| headers::get(&message.headers, name).map(str::to_owned);
        out.push(DeadLetter {
            sequence: message.sequence,
            worker: header(headers::DLQ_WORKER).unwrap_or_default(),
            error: header(headers::DLQ_ERROR).unwrap_or_default(),
            deliveries: header(headers::DLQ_DELIVERIES)
                .and_then(|d| d.parse().ok())
                .unwrap_or(0),
            stream_sequence: header(headers::DLQ_STREAM_SEQUENCE)
                .and_then(|d| d.parse().ok())
                .unwrap_or(0),
            event: serde_json::from_slice(&message.payload).ok(),
        });
    }
    Ok(out)
}
