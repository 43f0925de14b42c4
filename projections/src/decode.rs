//! Typed events from recorded ones.

use mercato_event_store::RecordedEvent;
use serde::de::DeserializeOwned;

use crate::error::ProjectionError;

/// The event's payload as the aggregate's event type, upcasting older versions first.
pub(crate) fn decode<E: DeserializeOwned>(event: &RecordedEvent) -> Result<E, ProjectionError> {
    let decoded = if event.event_type == "ProductCreated" && event.event_version.starts_with("1.") {
        let payload =
            mercato_aggregates::upcasting::product_created_v1_to_v2(event.payload.clone());
        serde_json::from_value(payload)
    } else {
        // Straight from the borrowed payload: no copy of the JSON tree.
        E::deserialize(&event.payload)
    };
    decoded.map_err(|e| ProjectionError::Decode {
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
