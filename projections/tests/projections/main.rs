//! Integration tests of the projections (real PostgreSQL and NATS JetStream).

mod read_models;
mod restart;
mod search;
mod support;
