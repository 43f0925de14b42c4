use std::fmt;

use serde::{Deserialize, Serialize};

use crate::pci;
use crate::values::ValueError;

/// Why a payment was declined. A gateway timeout or outage during authorization is a
/// decline with a reason, not an error, so the checkout can cancel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeclineReason {
    /// The issuer declined the card.
    CardDeclined,
    /// Not enough funds.
    InsufficientFunds,
    /// The payment processor could not be reached.
    ProcessorUnavailable,
    /// The payment processor did not answer in time.
    Timeout,
}

/// Card network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CardBrand {
    /// Visa.
    Visa,
    /// Mastercard.
    Mastercard,
    /// American Express.
    Amex,
    /// Discover.
    Discover,
    /// Any other network.
    Other,
}

/// The last four digits of a card: the only digits of a card number ever stored.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CardLast4(String);

impl CardLast4 {
    /// Validates exactly four ASCII digits.
    pub fn new(value: impl Into<String>) -> Result<Self, ValueError> {
        let value = value.into();
        if value.len() == 4 && value.chars().all(|c| c.is_ascii_digit()) {
            Ok(CardLast4(value))
        } else {
            Err(ValueError::InvalidCardLast4)
        }
    }

    /// The four digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CardLast4 {
    type Error = ValueError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        CardLast4::new(value)
    }
}

impl From<CardLast4> for String {
    fn from(value: CardLast4) -> Self {
        value.0
    }
}

impl fmt::Debug for CardLast4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardLast4({})", self.0)
    }
}

/// The gateway's identifier of an authorization (never a card number).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AuthorizationId(String);

impl AuthorizationId {
    /// Validates 1-128 characters of letters, digits, '_' or '-' holding no card number.
    pub fn new(value: impl Into<String>) -> Result<Self, ValueError> {
        let value = value.into();
        if !(1..=128).contains(&value.len())
            || !value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(ValueError::InvalidPaymentToken);
        }
        if pci::contains_pan(&value) {
            return Err(ValueError::PanNotAllowed);
        }
        Ok(AuthorizationId(value))
    }

    /// The identifier.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AuthorizationId {
    type Error = ValueError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        AuthorizationId::new(value)
    }
}

impl From<AuthorizationId> for String {
    fn from(value: AuthorizationId) -> Self {
        value.0
    }
}

/// What may be kept about a card: its brand and last four digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CardSummary {
    /// Card network.
    pub brand: CardBrand,
    /// Last four digits.
    pub last4: CardLast4,
}
