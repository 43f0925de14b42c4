//! Payment: authorization, capture, void and refunds through a [`PaymentGateway`].
//!
//! Aggregate id: the payment UUID. Only a payment method token, the card brand and the last
//! four digits are ever stored; no card number can appear in any event (PCI DSS).

mod aggregate;
mod card;
mod commands;
mod errors;
mod events;
mod services;
#[cfg(test)]
mod tests;

pub use aggregate::{Payment, PaymentStatus};
pub use card::{AuthorizationId, CardBrand, CardLast4, CardSummary, DeclineReason};
pub use commands::PaymentCommand;
pub use errors::PaymentError;
pub use events::PaymentEvent;
pub use services::{
    AuthorizationOutcome, AuthorizationRequest, GatewayError, PaymentGateway, PaymentServices,
};
