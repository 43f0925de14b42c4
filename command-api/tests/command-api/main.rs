//! Integration tests of the command side: the real router on 127.0.0.1:0, the relay, the
//! order process and the notification worker, against real PostgreSQL and NATS JetStream.

mod abuse;
mod checkout;
mod guest;
mod harness;
mod http;
mod idempotency;
mod lifecycle;
