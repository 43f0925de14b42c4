//! When aggregates write snapshots: the per-type policy and the rule that makes one due.

use std::collections::HashMap;
use std::num::NonZeroUsize;

/// How often each aggregate type writes a snapshot (every N events; `off` for never).
///
/// Parsed from `default=100,Stock=50,Order=off`: aggregates with long histories (a hot SKU's
/// stock) snapshot often, short-lived ones (orders) need none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotPolicy {
    default_every: Option<NonZeroUsize>,
    per_type: HashMap<String, Option<NonZeroUsize>>,
}

impl Default for SnapshotPolicy {
    fn default() -> Self {
        Self {
            default_every: NonZeroUsize::new(100),
            per_type: HashMap::new(),
        }
    }
}

impl SnapshotPolicy {
    /// No snapshots at all: every load replays the aggregate's whole history.
    pub fn never() -> Self {
        Self {
            default_every: None,
            per_type: HashMap::new(),
        }
    }

    /// Snapshot `aggregate_type` every `every` events (`None`: never).
    pub fn with(mut self, aggregate_type: &str, every: Option<NonZeroUsize>) -> Self {
        self.per_type.insert(aggregate_type.to_owned(), every);
        self
    }

    /// The interval for one aggregate type.
    pub fn every(&self, aggregate_type: &str) -> Option<NonZeroUsize> {
        self.per_type
            .get(aggregate_type)
            .copied()
            .unwrap_or(self.default_every)
    }
}

impl std::str::FromStr for SnapshotPolicy {
    type Err = crate::StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut policy = Self::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once('=').ok_or_else(|| {
                crate::StoreError::Config(format!(
                    "snapshot policy entry {part:?} is not key=value"
                ))
            })?;
            let every = match value.trim() {
                "off" | "never" => None,
                n => Some(n.parse::<NonZeroUsize>().map_err(|_| {
                    crate::StoreError::Config(format!(
                        "snapshot interval {n:?} for {key:?} must be a positive integer or \"off\""
                    ))
                })?),
            };
            match key.trim() {
                "default" => policy.default_every = every,
                ty => policy = policy.with(ty, every),
            }
        }
        Ok(policy)
    }
}

/// Whether appending from `from` to `to` crosses a multiple of the snapshot interval.
pub(crate) fn snapshot_due(from: u64, to: u64, every: NonZeroUsize) -> bool {
    let every = every.get() as u64;
    to / every > from / every
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_per_type_snapshot_intervals() {
        let p: SnapshotPolicy = "default=off, Stock=50,Order=off".parse().unwrap();
        assert_eq!(p.every("Stock"), NonZeroUsize::new(50));
        assert_eq!(p.every("Order"), None);
        assert_eq!(p.every("Cart"), None);
        let d = SnapshotPolicy::default();
        assert_eq!(d.every("Cart"), NonZeroUsize::new(100));
    }

    #[test]
    fn a_snapshot_is_due_when_an_append_crosses_a_multiple_of_the_interval() {
        let three = NonZeroUsize::new(3).unwrap();
        assert!(!snapshot_due(0, 2, three));
        assert!(snapshot_due(2, 3, three));
        assert!(snapshot_due(2, 7, three));
        assert!(!snapshot_due(3, 5, three));
        assert!(snapshot_due(5, 6, three));
    }

    #[test]
    fn rejects_zero_and_garbage_intervals() {
        // Zero would make cqrs-es divide by zero on the first commit.
        assert!("Stock=0".parse::<SnapshotPolicy>().is_err());
        assert!("Stock".parse::<SnapshotPolicy>().is_err());
        assert!("Stock=-3".parse::<SnapshotPolicy>().is_err());
    }
}
