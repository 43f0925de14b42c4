//! Header names of published events, and reading them back.

use async_nats::HeaderMap;

/// The event's schema type (`OrderPlaced`).
pub const EVENT_TYPE: &str = "Mercato-Event-Type";
/// The event's schema version.
pub const EVENT_VERSION: &str = "Mercato-Event-Version";
/// The event's position in the global log (the consistency token).
pub const POSITION: &str = "Mercato-Position";
/// The aggregate type.
pub const AGGREGATE_TYPE: &str = "Mercato-Aggregate-Type";
/// The aggregate id (unencoded).
pub const AGGREGATE_ID: &str = "Mercato-Aggregate-Id";
/// The correlation id.
pub const CORRELATION_ID: &str = "Mercato-Correlation-Id";
/// The causation id.
pub const CAUSATION_ID: &str = "Mercato-Causation-Id";
/// W3C trace context.
pub const TRACEPARENT: &str = "traceparent";
/// Why a message was dead-lettered.
pub const DLQ_ERROR: &str = "Mercato-Dlq-Error";
/// The worker that gave up on it.
pub const DLQ_WORKER: &str = "Mercato-Dlq-Worker";
/// Its sequence in the events stream.
pub const DLQ_STREAM_SEQUENCE: &str = "Mercato-Dlq-Stream-Sequence";
/// How often it had been delivered.
pub const DLQ_DELIVERIES: &str = "Mercato-Dlq-Deliveries";

/// The value of header `name`, if present.
pub fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.as_str())
}
