//! Customer: registration, profile, address, and the GDPR erasure request.
//!
//! Aggregate id: the customer UUID. All personal data in its events is [`crate::Personal`].

mod aggregate;
mod commands;
mod errors;
mod events;
#[cfg(test)]
mod tests;

pub use aggregate::{Customer, CustomerStatus};
pub use commands::CustomerCommand;
pub use errors::CustomerError;
pub use events::CustomerEvent;
