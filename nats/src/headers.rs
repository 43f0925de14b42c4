//! Header names of published events, writing them and reading them back.

use async_nats::HeaderMap;
use mercato_event_store::EncodedEvent;

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

/// A header value: CR and LF (which NATS headers cannot carry) percent-encoded. The message
/// body holds the exact values.
fn header_safe(value: &str) -> std::borrow::Cow<'_, str> {
    if value.contains(['\r', '\n']) {
        value.replace('\r', "%0D").replace('\n', "%0A").into()
    } else {
        value.into()
    }
}

/// The headers of a published event.
pub(crate) fn of_event(event: &EncodedEvent) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        async_nats::header::NATS_MESSAGE_ID,
        event.event_id.to_string().as_str(),
    );
    h.insert(EVENT_TYPE, header_safe(event.event_type.as_str()).as_ref());
    h.insert(
        EVENT_VERSION,
        header_safe(event.event_version.as_str()).as_ref(),
    );
    h.insert(POSITION, event.position.to_string().as_str());
    h.insert(
        AGGREGATE_TYPE,
        header_safe(event.aggregate_type.as_str()).as_ref(),
    );
    h.insert(
        AGGREGATE_ID,
        header_safe(event.aggregate_id.as_str()).as_ref(),
    );
    if let Some(id) = &event.correlation_id {
        h.insert(CORRELATION_ID, header_safe(id.as_str()).as_ref());
    }
    if let Some(id) = &event.causation_id {
        h.insert(CAUSATION_ID, header_safe(id.as_str()).as_ref());
    }
    if let Some(tp) = &event.traceparent {
        h.insert(TRACEPARENT, header_safe(tp.as_str()).as_ref());
    }
    h
}
