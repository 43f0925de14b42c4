//! Personal data (names, email addresses, phone numbers, postal addresses) inside events and
//! aggregate state, and whose it is.
//!
//! Every piece of personal data is a [`Personal<T>`] that names its [`DataSubject`]: the
//! customer, or the guest order a guest's data came with. The event store seals each such
//! value with the subject's data key before anything is written, and erasure destroys that
//! key, after which every copy reads as erased (`docs/adr/0013-crypto-shredding.md`).
//!
//! The JSON form is the protocol shared with `mercato_event_store::privacy`:
//!
//! - `{"$subject": "customer:<uuid>", "$personal": <value>}`: in memory, never stored;
//! - `{"$subject": ..., "$sealed": "<base64>"}`: stored (events, snapshots, JetStream);
//! - `{"$subject": ..., "$erased": true}`: the subject's key is gone;
//! - `{"$subject": ..., "$redacted": true}`: withheld from an export.
//!
//! A sealed value must be revealed by the event store before it is decoded; decoding one
//! fails, so a reader that forgot to reveal cannot mistake data for erased.

use std::fmt;
use std::str::FromStr;

use serde::de::Error as _;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::values::{CustomerId, OrderId, ValueError};

/// The key naming a value's subject.
pub const SUBJECT: &str = "$subject";
/// The key of a revealed value.
pub const PERSONAL: &str = "$personal";
/// The key of a sealed value.
pub const SEALED: &str = "$sealed";
/// The key of an erased value.
pub const ERASED: &str = "$erased";
/// The key of a value withheld from an export.
pub const REDACTED: &str = "$redacted";

/// Whose personal data a value is: the unit of encryption and of erasure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataSubject {
    /// A registered customer (everything of theirs, their orders included).
    Customer(CustomerId),
    /// A guest's order: the email and address a guest gave with it.
    GuestOrder(OrderId),
}

impl fmt::Display for DataSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Customer(id) => write!(f, "customer:{id}"),
            Self::GuestOrder(id) => write!(f, "order:{id}"),
        }
    }
}

impl FromStr for DataSubject {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            Some(("customer", id)) => Ok(Self::Customer(id.parse()?)),
            Some(("order", id)) => Ok(Self::GuestOrder(id.parse()?)),
            _ => Err(ValueError::InvalidId),
        }
    }
}

impl Serialize for DataSubject {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DataSubject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse()
            .map_err(|_| D::Error::custom(format!("invalid data subject {s:?}")))
    }
}

/// Personal data of a [`DataSubject`]; `None` inside once the subject was erased. Redacted in
/// `Debug`, so it never reaches logs.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Personal<T> {
    subject: DataSubject,
    value: Option<T>,
}

impl<T> Personal<T> {
    /// `value`, personal data of `subject`.
    pub fn new(subject: DataSubject, value: T) -> Self {
        Self {
            subject,
            value: Some(value),
        }
    }

    /// A value of `subject` that was erased.
    pub fn erased(subject: DataSubject) -> Self {
        Self {
            subject,
            value: None,
        }
    }

    /// Whose it is.
    pub fn subject(&self) -> DataSubject {
        self.subject
    }

    /// The personal data, unless erased; call sites are the places that handle it.
    pub fn expose(&self) -> Option<&T> {
        self.value.as_ref()
    }

    /// Unwraps the personal data, unless erased.
    pub fn into_inner(self) -> Option<T> {
        self.value
    }

    /// Whether the subject's data was erased.
    pub fn is_erased(&self) -> bool {
        self.value.is_none()
    }
}

impl<T> fmt::Debug for Personal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.value {
            Some(_) => write!(f, "Personal({}, <redacted>)", self.subject),
            None => write!(f, "Personal({}, <erased>)", self.subject),
        }
    }
}

impl<T: Serialize> Serialize for Personal<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry(SUBJECT, &self.subject)?;
        match &self.value {
            Some(value) => map.serialize_entry(PERSONAL, value)?,
            None => map.serialize_entry(ERASED, &true)?,
        }
        map.end()
    }
}

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for Personal<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let Value::Object(mut map) = Value::deserialize(deserializer)? else {
            return Err(D::Error::custom(
                "personal data must be an object with $subject",
            ));
        };
        let subject: DataSubject = match map.remove(SUBJECT) {
            Some(s) => serde_json::from_value(s).map_err(D::Error::custom)?,
            None => return Err(D::Error::custom("personal data without $subject")),
        };
        if let Some(value) = map.remove(PERSONAL) {
            let value = serde_json::from_value(value).map_err(D::Error::custom)?;
            return Ok(Self::new(subject, value));
        }
        if map.contains_key(ERASED) || map.contains_key(REDACTED) {
            return Ok(Self::erased(subject));
        }
        if map.contains_key(SEALED) {
            return Err(D::Error::custom(
                "personal data is still sealed (the event store reveals it before decoding)",
            ));
        }
        Err(D::Error::custom("personal data has no value"))
    }
}

/// `value` in the form of a revealed [`Personal`] of `subject` (for upcasters of events
/// written before personal data named its subject).
pub(crate) fn wrap(value: Value, subject: DataSubject) -> Value {
    serde_json::json!({ SUBJECT: subject.to_string(), PERSONAL: value })
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use uuid::Uuid;

    use super::*;
    use crate::values::Email;

    fn ada() -> DataSubject {
        DataSubject::Customer(CustomerId::new(Uuid::from_u128(7)))
    }

    #[test]
    fn serializes_with_its_subject_and_validates_on_read() {
        let email = Personal::new(ada(), Email::new("ada@example.com").unwrap());
        let json = serde_json::to_value(&email).unwrap();
        assert_eq!(
            json,
            json!({"$subject": "customer:00000000-0000-0000-0000-000000000007",
                   "$personal": "ada@example.com"})
        );
        let back: Personal<Email> = serde_json::from_value(json).unwrap();
        assert_eq!(back, email);
        let bad = json!({"$subject": ada().to_string(), "$personal": "bad"});
        assert!(serde_json::from_value::<Personal<Email>>(bad).is_err());
    }

    #[test]
    fn erased_and_redacted_values_read_as_erased_and_sealed_ones_fail() {
        let subject = ada().to_string();
        for marker in ["$erased", "$redacted"] {
            let v: Personal<Email> =
                serde_json::from_value(json!({"$subject": subject, marker: true})).unwrap();
            assert!(v.is_erased());
            assert_eq!(v.subject(), ada());
            assert_eq!(v.expose(), None);
        }
        let erased = Personal::<Email>::erased(ada());
        assert_eq!(
            serde_json::to_value(&erased).unwrap(),
            json!({"$subject": subject, "$erased": true})
        );
        let sealed = json!({"$subject": subject, "$sealed": "AAAA"});
        let err = serde_json::from_value::<Personal<Email>>(sealed).unwrap_err();
        assert!(err.to_string().contains("still sealed"), "{err}");
        assert!(serde_json::from_value::<Personal<Email>>(json!("ada@example.com")).is_err());
    }

    #[test]
    fn subjects_round_trip_as_text() {
        let order = DataSubject::GuestOrder(OrderId::new(Uuid::from_u128(9)));
        assert_eq!(
            order.to_string(),
            "order:00000000-0000-0000-0000-000000000009"
        );
        assert_eq!(order.to_string().parse::<DataSubject>().unwrap(), order);
        assert!("shop:1".parse::<DataSubject>().is_err());
        assert!("customer:nope".parse::<DataSubject>().is_err());
    }

    #[test]
    fn debug_is_redacted() {
        let name = Personal::new(ada(), "Ada Lovelace".to_owned());
        assert!(!format!("{name:?}").contains("Ada"));
        assert_eq!(name.expose().map(String::as_str), Some("Ada Lovelace"));
        assert_eq!(name.into_inner().as_deref(), Some("Ada Lovelace"));
    }
}
