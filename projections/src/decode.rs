//! Typed events from recorded ones.

use mercato_event_store::RecordedEvent;
use serde::de::DeserializeOwned;

use crate::error::ProjectionError;

/// The event's payload as the aggregate's event type, through the domain's upcaster chain
/// (a current version is read straight from the borrowed payload, without a copy).
pub(crate) fn decode<E: DeserializeOwned>(event: &RecordedEvent) -> Result<E, ProjectionError> {
    mercato_aggregates::upcasting::decode(
        &event.aggregate_id,
        &event.event_type,
        &event.event_version,
        &event.payload,
    )
    .map_err(|e| ProjectionError::Decode {
        event_id: event.event_id,
        event_type: event.event_type.clone(),
        reason: e.to_string(),
    })
}

/// A serde enum value's JSON string (`OrderStatus::AwaitingPayment` -> `awaiting_payment`).
pub(crate) fn tag<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// An unsigned quantity as PostgreSQL bigint.
pub(crate) fn big(event: &RecordedEvent, value: u64) -> Result<i64, ProjectionError> {
    i64::try_from(value).map_err(|_| ProjectionError::Invalid {
        event_id: event.event_id,
        reason: format!("{value} does not fit a bigint"),
    })
}
