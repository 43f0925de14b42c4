//! Mercato's domain: every business rule, as pure cqrs-es aggregates and the checkout
//! process manager. No database, HTTP or NATS code lives here; outside calls go through
//! the `Services` traits of the aggregates that need them ([`cart::CatalogLookup`],
//! [`payment::PaymentGateway`]).
//!
//! See `README.md` beside this crate for the commands, events, invariants and error codes
//! of every aggregate.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cart;
pub mod customer;
pub mod money;
pub mod order;
pub mod order_process;
pub mod payment;
pub mod pci;
pub mod personal;
pub mod pricing;
pub mod product;
pub mod promotion;
pub mod shipping;
pub mod stock;
pub mod tax;
pub mod upcasting;
pub mod values;

#[cfg(test)]
mod test_support;

pub use money::{Currency, Money, MoneyError};
pub use personal::{DataSubject, Personal};
pub use values::ValueError;

/// What kind of refusal a domain error is; an API maps each kind to one status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The command's target (or something it names by id) does not exist.
    NotFound,
    /// The target's current state forbids the command (an illegal transition, a duplicate,
    /// an exhausted quantity); the same command may succeed in another state.
    Conflict,
    /// The command itself breaks a rule, whatever the state (bad amounts, limits, shapes).
    Invalid,
    /// An outside dependency failed; the same command may be retried.
    Unavailable,
}

/// A domain error with a stable machine-readable code (the RFC 9457 problem `code`).
pub trait ErrorCode {
    /// The stable snake_case code of this error; it never changes once shipped.
    fn code(&self) -> &'static str;
    /// What kind of refusal it is.
    fn kind(&self) -> ErrorKind;
}

/// Implements [`ErrorCode`] by delegating to the type's inherent `code()` and `kind()`.
macro_rules! impl_error_code {
    ($ty:ty) => {
        impl $crate::ErrorCode for $ty {
            fn code(&self) -> &'static str {
                <$ty>::code(self)
            }
            fn kind(&self) -> $crate::ErrorKind {
                <$ty>::kind(self)
            }
        }
    };
}
pub(crate) use impl_error_code;
