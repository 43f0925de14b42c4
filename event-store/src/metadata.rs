//! Event metadata: who caused an event and the trace it belongs to.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Metadata stored beside every event (the `metadata` jsonb column) and sent as NATS headers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    /// Ties together everything one user action caused (a checkout and all its process steps).
    pub correlation_id: Option<Uuid>,
    /// The write that appended the event (a request's, from its Idempotency-Key, or a process
    /// command's id): a retry finds its earlier attempt by it ([`crate::AggregateStore::prior_write`]).
    pub write_id: Option<Uuid>,
    /// The command or event that directly caused this event.
    pub causation_id: Option<Uuid>,
    /// Who acted: `customer:<id>`, `admin:<email>`, `system:<component>`.
    pub actor: Option<String>,
    /// W3C trace context (`00-<trace-id>-<span-id>-<flags>`).
    pub traceparent: Option<String>,
}

const CORRELATION_ID: &str = "correlation_id";
const WRITE_ID: &str = "write_id";
const CAUSATION_ID: &str = "causation_id";
const ACTOR: &str = "actor";
const TRACEPARENT: &str = "traceparent";

impl EventMetadata {
    /// Metadata for a new user action: a fresh correlation id and the acting principal.
    pub fn for_actor(actor: impl Into<String>) -> Self {
        Self {
            correlation_id: Some(Uuid::new_v4()),
            actor: Some(actor.into()),
            ..Self::default()
        }
    }

    /// The cqrs-es representation (a flat string map).
    pub fn to_map(&self) -> HashMap<String, String> {
        let mut map = HashMap::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                map.insert(k.to_owned(), v);
            }
        };
        put(CORRELATION_ID, self.correlation_id.map(|u| u.to_string()));
        put(WRITE_ID, self.write_id.map(|u| u.to_string()));
        put(CAUSATION_ID, self.causation_id.map(|u| u.to_string()));
        put(ACTOR, self.actor.clone());
        put(TRACEPARENT, self.traceparent.clone());
        map
    }

    /// Reads metadata back from the stored map; unknown keys and malformed ids are ignored.
    pub fn from_map(map: &HashMap<String, String>) -> Self {
        let uuid = |k: &str| map.get(k).and_then(|v| Uuid::parse_str(v).ok());
        Self {
            correlation_id: uuid(CORRELATION_ID),
            write_id: uuid(WRITE_ID),
            causation_id: uuid(CAUSATION_ID),
            actor: map.get(ACTOR).cloned(),
            traceparent: map.get(TRACEPARENT).cloned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_the_cqrs_es_map() {
        let m = EventMetadata {
            correlation_id: Some(Uuid::new_v4()),
            write_id: Some(Uuid::new_v4()),
            causation_id: Some(Uuid::new_v4()),
            actor: Some("customer:42".into()),
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
        };
        assert_eq!(EventMetadata::from_map(&m.to_map()), m);
        assert_eq!(
            EventMetadata::from_map(&HashMap::new()),
            EventMetadata::default()
        );
    }
}
