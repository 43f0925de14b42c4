//! Cart: a shopper's lines with prices captured from the catalog, until checkout.
//!
//! Aggregate id: the cart UUID. A cart cannot change after checkout.

mod aggregate;
mod commands;
mod errors;
mod events;
mod services;
#[cfg(test)]
mod tests;

pub use aggregate::{Cart, CartStatus};
pub use commands::{CartCommand, CheckoutPricing, ShippingChoice};
pub use errors::CartError;
pub use events::{CartEvent, CartLine};
pub use services::{CartServices, CatalogEntry, CatalogLookup, CatalogUnavailable};
