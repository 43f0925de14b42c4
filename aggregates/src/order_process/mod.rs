//! The checkout process manager, as pure logic: given the event just seen and the process
//! state, it returns the next state and the commands to send.
//!
//! Flow: order placed -> reserve stock for every line; all lines reserved -> authorize the
//! payment; authorized -> confirm the order; confirmed -> capture; captured -> record it on
//! the order. Any line rejected, the payment declined, or the payment deadline (the
//! reservation expiry) passing first -> release what was reserved and cancel the order with
//! the reason (and void a payment authorized too late). The order cancelled by anyone else
//! before its confirmation -> release every line, held or pending, and void the
//! authorization instead of capturing. Every command carries a deterministic id derived
//! from the id of the event that caused it.

mod messages;
mod process;
#[cfg(test)]
mod tests;

pub use messages::{ProcessCommand, ProcessEvent, ProcessInput, ProcessLine, TargetedCommand};
pub use process::{
    LineReservation, OrderProcess, PaymentProgress, ProcessDecision, ProcessPhase, ProcessPolicy,
};
