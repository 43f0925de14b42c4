//! Shipping policy: the shop's shipping methods, each for a zone of countries, with a flat or
//! weight-based rate and an optional free-shipping threshold (ADR 0021).
//!
//! One aggregate per shop (aggregate id [`ShippingPolicy::ID`]). A checkout quotes the
//! method the shopper chose for the destination and the cart, and the quote is priced into
//! the order after the promotions and the goods' tax: a free-shipping promotion takes it
//! off, and it is taxed at the destination's rate.

use std::collections::BTreeMap;

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::money::{Currency, Money};
use crate::values::{CountryCode, ProductName, ValueError};

/// A shipping method's id: 1-64 characters of letters, digits, '.', '_' or '-' (`standard`,
/// `express-eu`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ShippingMethodId(String);

impl ShippingMethodId {
    /// Validates the id.
    pub fn new(value: impl Into<String>) -> Result<Self, ValueError> {
        let value = value.into();
        let ok = (1..=64).contains(&value.len())
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if ok {
            Ok(ShippingMethodId(value))
        } else {
            Err(ValueError::InvalidShippingMethodId)
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ShippingMethodId {
    type Error = ValueError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        ShippingMethodId::new(value)
    }
}

impl From<ShippingMethodId> for String {
    fn from(value: ShippingMethodId) -> Self {
        value.0
    }
}

impl std::fmt::Display for ShippingMethodId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a method charges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShippingRate {
    /// The same amount for any parcel.
    Flat(Money),
    /// `base`, plus `per_kg` for every started kilogram of the parcel's weight.
    ByWeight {
        /// Charged for any parcel.
        base: Money,
        /// Charged per started kilogram.
        per_kg: Money,
    },
}

/// A shipping method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShippingMethod {
    /// Shown to shoppers (1-200 characters).
    pub name: ProductName,
    /// The countries it ships to (its zone; 1-250).
    pub countries: Vec<CountryCode>,
    /// What it charges.
    pub rate: ShippingRate,
    /// Free when the goods cost at least this much after discounts.
    pub free_above: Option<Money>,
}

impl ShippingMethod {
    /// The currency of its amounts (it is offered to carts in that currency only).
    pub fn currency(&self) -> Currency {
        match &self.rate {
            ShippingRate::Flat(m) | ShippingRate::ByWeight { base: m, .. } => m.currency(),
        }
    }

    /// What it charges to ship `weight_grams` to `country` for goods costing `goods` (after
    /// discounts), or `None` when it does not ship there or not in that currency.
    pub fn quote(&self, country: &CountryCode, weight_grams: u64, goods: Money) -> Option<Money> {
        if !self.countries.contains(country) || goods.currency() != self.currency() {
            return None;
        }
        if self
            .free_above
            .is_some_and(|f| goods.amount() >= f.amount())
        {
            return Some(Money::zero(goods.currency()));
        }
        match &self.rate {
            ShippingRate::Flat(amount) => Some(*amount),
            ShippingRate::ByWeight { base, per_kg } => {
                let kilograms = u32::try_from(weight_grams.div_ceil(1_000)).ok()?;
                per_kg.checked_mul(kilograms).ok()?.checked_add(*base).ok()
            }
        }
    }

    fn check(&self) -> Result<(), ShippingError> {
        if self.countries.is_empty() || self.countries.len() > 250 {
            return Err(ShippingError::InvalidZone);
        }
        let currency = self.currency();
        let amounts = match &self.rate {
            ShippingRate::Flat(m) => vec![*m],
            ShippingRate::ByWeight { base, per_kg } => vec![*base, *per_kg],
        };
        if amounts
            .iter()
            .chain(self.free_above.iter())
            .any(|m| m.currency() != currency)
        {
            return Err(ShippingError::CurrencyMismatch);
        }
        Ok(())
    }
}

/// Commands of the [`ShippingPolicy`] aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShippingCommand {
    /// Creates or replaces a method.
    DefineShippingMethod {
        /// Its id.
        method_id: ShippingMethodId,
        /// What it is.
        method: ShippingMethod,
    },
    /// Stops offering a method (orders that chose it keep their charge).
    RetireShippingMethod {
        /// Its id.
        method_id: ShippingMethodId,
    },
}

/// Events of the [`ShippingPolicy`] aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShippingEvent {
    /// A method was created or replaced.
    ShippingMethodDefined {
        /// Its id.
        method_id: ShippingMethodId,
        /// What it is.
        method: ShippingMethod,
    },
    /// A method is no longer offered.
    ShippingMethodRetired {
        /// Its id.
        method_id: ShippingMethodId,
    },
}

impl DomainEvent for ShippingEvent {
    fn event_type(&self) -> String {
        match self {
            ShippingEvent::ShippingMethodDefined { .. } => "ShippingMethodDefined",
            ShippingEvent::ShippingMethodRetired { .. } => "ShippingMethodRetired",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

/// Why a shipping command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShippingError {
    /// No such method.
    #[error("no such shipping method")]
    NotFound,
    /// No countries, or too many.
    #[error("a shipping method ships to 1-250 countries")]
    InvalidZone,
    /// Amounts in more than one currency.
    #[error("a shipping method's amounts must all be in one currency")]
    CurrencyMismatch,
}

impl ShippingError {
    /// Stable machine code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            ShippingError::NotFound => "shipping_method_not_found",
            ShippingError::InvalidZone => "invalid_shipping_zone",
            ShippingError::CurrencyMismatch => "currency_mismatch",
        }
    }

    /// What kind of refusal this is.
    pub fn kind(&self) -> crate::ErrorKind {
        match self {
            ShippingError::NotFound => crate::ErrorKind::NotFound,
            _ => crate::ErrorKind::Invalid,
        }
    }
}
crate::impl_error_code!(ShippingError);

/// The shop's shipping methods.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShippingPolicy {
    methods: BTreeMap<ShippingMethodId, ShippingMethod>,
}

impl ShippingPolicy {
    /// The aggregate id of the shop's policy.
    pub const ID: &'static str = "shop";

    /// The methods offered, by id.
    pub fn methods(&self) -> &BTreeMap<ShippingMethodId, ShippingMethod> {
        &self.methods
    }
}

impl Aggregate for ShippingPolicy {
    const TYPE: &'static str = "ShippingPolicy";
    type Command = ShippingCommand;
    type Event = ShippingEvent;
    type Error = ShippingError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let event = match command {
            ShippingCommand::DefineShippingMethod { method_id, method } => {
                method.check()?;
                if self.methods.get(&method_id) == Some(&method) {
                    return Ok(());
                }
                ShippingEvent::ShippingMethodDefined { method_id, method }
            }
            ShippingCommand::RetireShippingMethod { method_id } => {
                if !self.methods.contains_key(&method_id) {
                    return Err(ShippingError::NotFound);
                }
                ShippingEvent::ShippingMethodRetired { method_id }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            ShippingEvent::ShippingMethodDefined { method_id, method } => {
                self.methods.insert(method_id, method);
            }
            ShippingEvent::ShippingMethodRetired { method_id } => {
                self.methods.remove(&method_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::fixtures::{eur, usd};

    fn method(rate: ShippingRate, free_above: Option<Money>) -> ShippingMethod {
        ShippingMethod {
            name: ProductName::new("Standard").unwrap(),
            countries: vec![
                CountryCode::new("DE").unwrap(),
                CountryCode::new("FR").unwrap(),
            ],
            rate,
            free_above,
        }
    }

    #[test]
    fn quotes_are_flat_by_started_kilogram_or_free_above_a_threshold() {
        let de = CountryCode::new("DE").unwrap();
        let flat = method(ShippingRate::Flat(eur(490)), Some(eur(5000)));
        assert_eq!(flat.quote(&de, 0, eur(4999)), Some(eur(490)));
        assert_eq!(flat.quote(&de, 0, eur(5000)), Some(eur(0)));
        assert_eq!(
            flat.quote(&CountryCode::new("US").unwrap(), 0, eur(100)),
            None
        );
        assert_eq!(flat.quote(&de, 0, usd(100)), None);
        let weight = method(
            ShippingRate::ByWeight {
                base: eur(300),
                per_kg: eur(150),
            },
            None,
        );
        assert_eq!(weight.quote(&de, 0, eur(100)), Some(eur(300)));
        assert_eq!(weight.quote(&de, 1_000, eur(100)), Some(eur(450)));
        assert_eq!(weight.quote(&de, 1_001, eur(100)), Some(eur(600)));
    }

    #[test]
    fn a_method_is_in_one_currency_and_ships_somewhere() {
        let mut policy = ShippingPolicy::default();
        let define = |method| ShippingCommand::DefineShippingMethod {
            method_id: ShippingMethodId::new("standard").unwrap(),
            method,
        };
        let mixed = method(ShippingRate::Flat(eur(490)), Some(usd(5000)));
        let run = |policy: &mut ShippingPolicy, command| {
            crate::test_support::execute(policy, command, &())
        };
        assert_eq!(
            run(&mut policy, define(mixed)),
            Err(ShippingError::CurrencyMismatch)
        );
        let nowhere = ShippingMethod {
            countries: vec![],
            ..method(ShippingRate::Flat(eur(490)), None)
        };
        assert_eq!(
            run(&mut policy, define(nowhere)),
            Err(ShippingError::InvalidZone)
        );
        run(
            &mut policy,
            define(method(ShippingRate::Flat(eur(490)), None)),
        )
        .unwrap();
        assert_eq!(policy.methods().len(), 1);
        let retire = ShippingCommand::RetireShippingMethod {
            method_id: ShippingMethodId::new("standard").unwrap(),
        };
        run(&mut policy, retire.clone()).unwrap();
        assert_eq!(run(&mut policy, retire), Err(ShippingError::NotFound));
        assert!(ShippingMethodId::new("no spaces").is_err());
    }
}
