//! Money: integer minor units plus an ISO 4217 currency code. Never floats.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::values::ValueError;

/// An ISO 4217 alphabetic currency code: exactly three ASCII uppercase letters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    /// Euro.
    pub const EUR: Currency = Currency(*b"EUR");
    /// US dollar.
    pub const USD: Currency = Currency(*b"USD");
    /// Pound sterling.
    pub const GBP: Currency = Currency(*b"GBP");

    /// Parses a currency code such as `"EUR"`; lowercase or any other shape is refused.
    pub fn new(code: &str) -> Result<Self, ValueError> {
        match code.as_bytes() {
            [a, b, c] if [a, b, c].iter().all(|byte| byte.is_ascii_uppercase()) => {
                Ok(Currency([*a, *b, *c]))
            }
            _ => Err(ValueError::InvalidCurrency),
        }
    }

    /// The three-letter code.
    pub fn as_str(&self) -> &str {
        // The bytes are ASCII uppercase by construction, so this never falls back.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Currency({})", self.as_str())
    }
}

impl FromStr for Currency {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::new(s)
    }
}

impl TryFrom<String> for Currency {
    type Error = ValueError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Currency::new(&value)
    }
}

impl From<Currency> for String {
    fn from(value: Currency) -> Self {
        value.as_str().to_owned()
    }
}

/// Why a money operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// The two operands are in different currencies.
    #[error("cannot combine amounts in {left} and {right}")]
    CurrencyMismatch {
        /// Currency of the left operand.
        left: Currency,
        /// Currency of the right operand.
        right: Currency,
    },
    /// The result does not fit in 64-bit minor units.
    #[error("amount overflow")]
    Overflow,
    /// The result (or the given amount) would be negative.
    #[error("amount cannot be negative")]
    Negative,
}

impl MoneyError {
    /// Stable machine code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            MoneyError::CurrencyMismatch { .. } => "currency_mismatch",
            MoneyError::Overflow => "amount_overflow",
            MoneyError::Negative => "negative_amount",
        }
    }
}
impl MoneyError {
    /// What kind of refusal this is.
    pub fn kind(&self) -> crate::ErrorKind {
        use crate::ErrorKind as K;
        let _ = self;
        K::Invalid
    }
}
crate::impl_error_code!(MoneyError);

/// A non-negative amount of money in minor units (cents for EUR) of one currency.
///
/// Serialized as `{"amount": 1999, "currency": "EUR"}`; a negative amount is refused on
/// construction and on deserialization, so every `Money` is a valid price or payment amount.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawMoney")]
pub struct Money {
    amount: i64,
    currency: Currency,
}

#[derive(Deserialize)]
struct RawMoney {
    amount: i64,
    currency: Currency,
}

impl TryFrom<RawMoney> for Money {
    type Error = MoneyError;

    fn try_from(raw: RawMoney) -> Result<Self, Self::Error> {
        Money::new(raw.amount, raw.currency)
    }
}

impl Money {
    /// An amount in minor units; negative amounts are refused.
    pub fn new(amount: i64, currency: Currency) -> Result<Self, MoneyError> {
        if amount < 0 {
            return Err(MoneyError::Negative);
        }
        Ok(Money { amount, currency })
    }

    /// Zero in the given currency.
    pub fn zero(currency: Currency) -> Self {
        Money {
            amount: 0,
            currency,
        }
    }

    /// The amount in minor units.
    pub fn amount(&self) -> i64 {
        self.amount
    }

    /// The currency.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// True when the amount is zero.
    pub fn is_zero(&self) -> bool {
        self.amount == 0
    }

    fn same_currency(&self, other: &Money) -> Result<(), MoneyError> {
        if self.currency != other.currency {
            return Err(MoneyError::CurrencyMismatch {
                left: self.currency,
                right: other.currency,
            });
        }
        Ok(())
    }

    /// Adds two amounts of the same currency.
    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(&other)?;
        let amount = self
            .amount
            .checked_add(other.amount)
            .ok_or(MoneyError::Overflow)?;
        Money::new(amount, self.currency)
    }

    /// Subtracts an amount of the same currency; a negative result is refused.
    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(&other)?;
        let amount = self
            .amount
            .checked_sub(other.amount)
            .ok_or(MoneyError::Overflow)?;
        Money::new(amount, self.currency)
    }

    /// Multiplies by a count (a line total is `unit price * quantity`).
    pub fn checked_mul(self, factor: u32) -> Result<Money, MoneyError> {
        let amount = self
            .amount
            .checked_mul(i64::from(factor))
            .ok_or(MoneyError::Overflow)?;
        Money::new(amount, self.currency)
    }

    /// Sums amounts that must all be in `currency`.
    pub fn sum<I: IntoIterator<Item = Money>>(
        currency: Currency,
        amounts: I,
    ) -> Result<Money, MoneyError> {
        amounts
            .into_iter()
            .try_fold(Money::zero(currency), Money::checked_add)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn eur(amount: i64) -> Money {
        Money::new(amount, Currency::EUR).unwrap()
    }

    #[test]
    fn currency_accepts_three_uppercase_letters_only() {
        assert_eq!(Currency::new("EUR").unwrap(), Currency::EUR);
        for bad in ["eur", "EU", "EURO", "E1R", "", "€UR"] {
            assert_eq!(
                Currency::new(bad),
                Err(ValueError::InvalidCurrency),
                "{bad}"
            );
        }
    }

    #[test]
    fn money_serializes_as_amount_and_currency() {
        let json = serde_json::to_value(eur(1999)).unwrap();
        assert_eq!(json, serde_json::json!({"amount": 1999, "currency": "EUR"}));
        let back: Money = serde_json::from_value(json).unwrap();
        assert_eq!(back, eur(1999));
    }

    #[test]
    fn invalid_money_cannot_be_deserialized() {
        let negative = serde_json::json!({"amount": -1, "currency": "EUR"});
        assert!(serde_json::from_value::<Money>(negative).is_err());
        let bad_currency = serde_json::json!({"amount": 1, "currency": "eur"});
        assert!(serde_json::from_value::<Money>(bad_currency).is_err());
        let float = serde_json::json!({"amount": 1.5, "currency": "EUR"});
        assert!(serde_json::from_value::<Money>(float).is_err());
    }

    #[test]
    fn arithmetic_refuses_mixed_currencies() {
        let usd = Money::new(5, Currency::USD).unwrap();
        let err = eur(5).checked_add(usd).unwrap_err();
        assert_eq!(
            err,
            MoneyError::CurrencyMismatch {
                left: Currency::EUR,
                right: Currency::USD
            }
        );
        assert_eq!(err.code(), "currency_mismatch");
        assert!(eur(5).checked_sub(usd).is_err());
        assert!(Money::sum(Currency::EUR, [eur(1), usd]).is_err());
    }

    #[test]
    fn arithmetic_refuses_overflow_and_negative_results() {
        assert_eq!(eur(i64::MAX).checked_add(eur(1)), Err(MoneyError::Overflow));
        assert_eq!(eur(i64::MAX).checked_mul(2), Err(MoneyError::Overflow));
        assert_eq!(eur(1).checked_sub(eur(2)), Err(MoneyError::Negative));
        assert_eq!(Money::new(-1, Currency::EUR), Err(MoneyError::Negative));
        assert_eq!(MoneyError::Overflow.code(), "amount_overflow");
        assert_eq!(MoneyError::Negative.code(), "negative_amount");
    }

    #[test]
    fn arithmetic_works_in_one_currency() {
        assert_eq!(eur(1999).checked_mul(3).unwrap(), eur(5997));
        assert_eq!(eur(10).checked_sub(eur(4)).unwrap(), eur(6));
        assert_eq!(Money::sum(Currency::EUR, [eur(1), eur(2)]).unwrap(), eur(3));
        assert_eq!(eur(0), Money::zero(Currency::EUR));
        assert_eq!(eur(1999).to_string(), "1999 EUR");
    }

    proptest! {
        #[test]
        fn add_then_sub_round_trips(a in 0i64..1_000_000_000_000, b in 0i64..1_000_000_000_000) {
            let sum = eur(a).checked_add(eur(b)).unwrap();
            prop_assert_eq!(sum.checked_sub(eur(b)).unwrap(), eur(a));
        }
    }
}
