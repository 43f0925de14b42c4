//! Errors of the NATS side.

use mercato_event_store::StoreError;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A failure talking to JetStream or to the log behind it.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    /// The NATS server cannot be reached.
    #[error("cannot connect to nats")]
    Connect(#[source] BoxError),
    /// A JetStream API call (stream or consumer management, publish, fetch) failed.
    #[error("jetstream {operation} failed")]
    JetStream {
        /// What was being done.
        operation: &'static str,
        /// Why it failed.
        #[source]
        source: BoxError,
    },
    /// The event store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stream holds something the relay did not write.
    #[error("stream {stream} is inconsistent: {reason}")]
    Inconsistent {
        /// The stream.
        stream: String,
        /// What is wrong.
        reason: String,
    },
}

impl NatsError {
    /// Wraps a JetStream error.
    pub fn js(operation: &'static str, source: impl Into<BoxError>) -> Self {
        Self::JetStream {
            operation,
            source: source.into(),
        }
    }
}
