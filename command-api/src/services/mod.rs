//! What the command side does beyond one command on one aggregate: each service drives one
//! use case (several aggregates, or SQL beside a command) for a handler, the order process's
//! sweeper, or both. Handlers parse and authorize, call one service, and shape the answer.

pub(crate) mod checkout;
pub(crate) mod orders;
pub(crate) mod promotions;
