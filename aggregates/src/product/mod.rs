//! Product (catalog): a SKU's details, price and publication status.
//!
//! Aggregate id: the SKU string. A discontinued product can never be republished or sold.

mod aggregate;
mod commands;
mod errors;
mod events;
#[cfg(test)]
mod tests;

pub use aggregate::{Product, ProductStatus};
pub use commands::{ProductCommand, ProductDetails};
pub use errors::ProductError;
pub use events::ProductEvent;
