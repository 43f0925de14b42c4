//! A position in the global event log.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A place in the global log: the pair `(tx_id, global_position)` of the last event seen.
///
/// Positions are totally ordered exactly as the log reader returns events. Clients treat the
/// string form (`"<tx_id>.<global_position>"`) as an opaque token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    tx_id: u64,
    global_position: i64,
}

impl Position {
    /// The position before the first event.
    pub const START: Position = Position {
        tx_id: 0,
        global_position: 0,
    };

    /// A position from its two parts.
    pub fn new(tx_id: u64, global_position: i64) -> Self {
        Self {
            tx_id,
            global_position,
        }
    }

    /// The 64-bit id of the transaction that wrote the event (PostgreSQL `xid8`).
    pub fn tx_id(&self) -> u64 {
        self.tx_id
    }

    /// The event's `global_position` (insertion sequence; not itself a safe checkpoint).
    pub fn global_position(&self) -> i64 {
        self.global_position
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.tx_id, self.global_position)
    }
}

/// A string that is not a position token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid position token {0:?}: expected \"<tx_id>.<global_position>\"")]
pub struct PositionParseError(String);

impl FromStr for Position {
    type Err = PositionParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || PositionParseError(s.chars().take(64).collect());
        let (tx, gp) = s.split_once('.').ok_or_else(err)?;
        let tx_id: u64 = tx.parse().map_err(|_| err())?;
        let global_position: i64 = gp.parse().map_err(|_| err())?;
        if global_position < 0 {
            return Err(err());
        }
        Ok(Self::new(tx_id, global_position))
    }
}

impl Serialize for Position {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Position {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_its_token() {
        let p = Position::new(7_000_000_123, 42);
        assert_eq!(p.to_string(), "7000000123.42");
        assert_eq!("7000000123.42".parse::<Position>().unwrap(), p);
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<Position>(&json).unwrap(), p);
    }

    #[test]
    fn orders_by_transaction_then_insertion() {
        // A later-inserted event of an earlier transaction comes first.
        assert!(Position::new(10, 99) < Position::new(11, 5));
        assert!(Position::new(10, 5) < Position::new(10, 6));
        assert!(Position::START < Position::new(1, 1));
    }

    #[test]
    fn rejects_malformed_tokens() {
        for bad in ["", "1", "a.b", "1.-3", "1.2.3", "-1.2", " 1.2"] {
            assert!(bad.parse::<Position>().is_err(), "{bad:?} parsed");
        }
    }
}
