//! The single wrapper for personal data (names, email addresses, phone numbers, postal
//! addresses) inside events.
//!
//! Every piece of personal data that an event carries is a `Personal<T>`, never a bare value,
//! so that GDPR erasure can be added in one place: crypto-shredding will encrypt the value
//! with a per-subject key in [`Personal`]'s `Serialize` impl and decrypt it in its
//! `Deserialize` impl (yielding an "erased" value once a forgotten customer's key has been
//! destroyed). Today the JSON is the plain inner value, so adding that later only needs an
//! upcaster for the stored plain values, not a change to any event type.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Personal data inside an event: serialized as the plain inner value today, redacted in
/// `Debug` so it never reaches logs.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Personal<T>(T);

impl<T> Personal<T> {
    /// Marks a value as personal data.
    pub fn new(value: T) -> Self {
        Personal(value)
    }

    /// Reads the personal data; call sites are the places that handle personal data.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// Unwraps the personal data.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> From<T> for Personal<T> {
    fn from(value: T) -> Self {
        Personal(value)
    }
}

impl<T> fmt::Debug for Personal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Personal(<redacted>)")
    }
}

// The crypto-shredding seam: encryption with the data subject's key goes here.
impl<T: Serialize> Serialize for Personal<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

// The crypto-shredding seam: decryption (or "erased" when the key is gone) goes here.
impl<'de, T: Deserialize<'de>> Deserialize<'de> for Personal<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Personal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::Email;

    #[test]
    fn serializes_as_the_plain_value_and_validates_on_read() {
        let email = Personal::new(Email::new("ada@example.com").unwrap());
        let json = serde_json::to_value(&email).unwrap();
        assert_eq!(json, serde_json::json!("ada@example.com"));
        let back: Personal<Email> = serde_json::from_value(json).unwrap();
        assert_eq!(back, email);
        assert!(serde_json::from_value::<Personal<Email>>(serde_json::json!("bad")).is_err());
    }

    #[test]
    fn debug_is_redacted() {
        let name = Personal::new("Ada Lovelace".to_owned());
        assert_eq!(format!("{name:?}"), "Personal(<redacted>)");
        assert_eq!(name.expose(), "Ada Lovelace");
        assert_eq!(name.into_inner(), "Ada Lovelace");
    }
}
