//! How events leave PostgreSQL: the JetStream topology, the outbox relay that publishes the
//! log in order and exactly once in effect, and the consumer runtime workers build on.
#![forbid(unsafe_code)]

mod config;
pub mod consumer;
pub mod dead_letters;
mod error;
pub mod headers;
pub mod relay;
mod subject;
#[cfg(feature = "test-support")]
pub mod testing;
mod topology;

pub use config::NatsConfig;
pub use consumer::{ConsumerConfig, Delivery, Handler, HandlerError, Worker};
pub use error::NatsError;
pub use relay::{Relay, RelayConfig};
pub use subject::encode_token;
pub use topology::{connect, ensure_topology};
