//! The PostgreSQL read models (schema `read`). Every `apply` runs inside the runtime's
//! transaction, after the sequence check, and writes values the events carry (totals,
//! levels) instead of recomputing business rules.

pub mod carts;
pub mod catalog;
pub mod customers;
pub mod orders;
pub mod sales;
pub mod stock;
