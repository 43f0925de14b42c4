//! Tests of the query API: router tests against a real database (read models filled
//! directly), and end-to-end tests with the command API, relay, order process, projection workers and
//! search consumer running in-process.

mod e2e;
mod events;
mod http;
mod lifecycle;
mod stack;
