//! The PostgreSQL read models (schema `read`). Every `apply` runs inside the runtime's
//! transaction, after the sequence check, and writes values the events carry (totals,
//! levels) instead of recomputing business rules. Each applies a whole batch with a few
//! set-based statements ([`rows`]): load the rows the batch touches, fold the events into
//! them in memory, write back what changed.

pub mod carts;
pub mod catalog;
pub mod customers;
pub mod orders;
pub mod pricing;
pub mod recommendations;
mod rows;
pub mod sales;
pub mod stock;

/// The distinct values of `values`, in first-seen order.
fn distinct(values: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    values
        .into_iter()
        .filter(|v| seen.insert(v.clone()))
        .collect()
}
