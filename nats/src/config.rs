//! Where the events stream lives and how it is named.

use std::time::Duration;

use crate::subject::encode_token;

/// JetStream settings shared by the relay and every worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsConfig {
    /// `nats://host:port` (comma-separated for a cluster).
    pub url: String,
    /// Name of the events stream.
    pub stream: String,
    /// First subject token; events are `<prefix>.events.<aggregate_type>.<aggregate_id>`.
    pub subject_prefix: String,
    /// Stream replicas (1 on a laptop, 3 on a cluster).
    pub replicas: usize,
    /// How long JetStream remembers message ids to drop duplicates.
    pub duplicate_window: Duration,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".into(),
            stream: "MERCATO_EVENTS".into(),
            subject_prefix: "mercato".into(),
            replicas: 1,
            duplicate_window: Duration::from_secs(120),
        }
    }
}

impl NatsConfig {
    /// The subject an event of this aggregate is published on.
    pub fn event_subject(&self, aggregate_type: &str, aggregate_id: &str) -> String {
        format!(
            "{}.events.{}.{}",
            self.subject_prefix,
            encode_token(aggregate_type),
            encode_token(aggregate_id)
        )
    }

    /// Every event subject (the events stream's subject filter).
    pub fn events_wildcard(&self) -> String {
        format!("{}.events.>", self.subject_prefix)
    }

    /// Every event subject of one aggregate type.
    pub fn aggregate_type_wildcard(&self, aggregate_type: &str) -> String {
        format!(
            "{}.events.{}.>",
            self.subject_prefix,
            encode_token(aggregate_type)
        )
    }

    /// The dead-letter stream's name.
    pub fn dlq_stream(&self) -> String {
        format!("{}_DLQ", self.stream)
    }

    /// Where a worker's dead letters go.
    pub fn dlq_subject(&self, worker: &str) -> String {
        format!("{}.dlq.{}", self.subject_prefix, encode_token(worker))
    }

    /// Every dead-letter subject.
    pub fn dlq_wildcard(&self) -> String {
        format!("{}.dlq.>", self.subject_prefix)
    }
}
