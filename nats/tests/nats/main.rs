//! Integration tests of the relay and the consumer runtime against real NATS JetStream and
//! PostgreSQL.

mod consumer;
mod relay;
