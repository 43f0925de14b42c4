//! Process-level tests of the `mercato` binary: real processes, real PostgreSQL and NATS,
//! real signals (SIGKILL, SIGTERM).

mod events;
mod gateway;
#[path = "../common/guest.rs"]
mod guest;
mod privacy;
mod process;
mod relay;
mod shop;
