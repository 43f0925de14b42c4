//! Promotion: a discount rule with its window, its usage limits and the redemptions that
//! hold them (ADR 0021).
//!
//! Aggregate id: the promotion UUID. Invariant: the redemptions held (reserved by a checkout
//! and not released by a cancellation) never exceed the usage limit, in total or per
//! customer. A checkout reserves its redemption before its cart is frozen, keyed by the
//! order id, so a retry holds the same one; a cancelled order releases it.

mod aggregate;
mod commands;
mod errors;
mod events;
#[cfg(test)]
mod tests;

pub use aggregate::{apply_changes, Promotion};
pub use commands::{PromotionChanges, PromotionCommand, PromotionTerms};
pub use errors::PromotionError;
pub use events::PromotionEvent;
