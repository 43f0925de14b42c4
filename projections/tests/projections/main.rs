//! Integration tests of the projections (real PostgreSQL and NATS JetStream).

mod parking;
mod read_models;
mod rebuild;
mod recommendations;
mod restart;
mod search;
mod support;
