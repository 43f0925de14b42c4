//! Tax policy: the shop's tax rates by destination, and whether its catalog prices include
//! tax (ADR 0020).
//!
//! One aggregate per shop (aggregate id [`TaxPolicy::ID`]). A rate applies to a country, or
//! to the postal codes of a country that start with a prefix (a region with its own rate,
//! such as the Canary Islands in Spain); the longest matching prefix wins, then the country's
//! own rate, then no tax.

use std::collections::BTreeMap;

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::pricing::{Rate, TaxRule};
use crate::values::{CountryCode, PostalPrefix};

/// Commands of the [`TaxPolicy`] aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaxCommand {
    /// Sets the rate of a country, or of a region of it.
    SetTaxRate {
        /// The country.
        country: CountryCode,
        /// The region's postal code prefix; `None`: the whole country.
        postal_prefix: Option<PostalPrefix>,
        /// The rate (0% is a rate: a zero-rated destination).
        rate: Rate,
    },
    /// Removes a rate (the destination falls back to its country's rate, or no tax).
    RemoveTaxRate {
        /// The country.
        country: CountryCode,
        /// The region's postal code prefix; `None`: the country's own rate.
        postal_prefix: Option<PostalPrefix>,
    },
    /// Says whether catalog prices include tax.
    SetPricesIncludeTax {
        /// They do.
        prices_include_tax: bool,
    },
}

/// Events of the [`TaxPolicy`] aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaxEvent {
    /// A rate was set.
    TaxRateSet {
        /// The country.
        country: CountryCode,
        /// The region's prefix, if any.
        postal_prefix: Option<PostalPrefix>,
        /// The rate.
        rate: Rate,
    },
    /// A rate was removed.
    TaxRateRemoved {
        /// The country.
        country: CountryCode,
        /// The region's prefix, if any.
        postal_prefix: Option<PostalPrefix>,
    },
    /// Whether catalog prices include tax changed.
    TaxInclusionSet {
        /// They do.
        prices_include_tax: bool,
    },
}

impl DomainEvent for TaxEvent {
    fn event_type(&self) -> String {
        match self {
            TaxEvent::TaxRateSet { .. } => "TaxRateSet",
            TaxEvent::TaxRateRemoved { .. } => "TaxRateRemoved",
            TaxEvent::TaxInclusionSet { .. } => "TaxInclusionSet",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

/// Why a tax command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaxError {
    /// `RemoveTaxRate` of a rate that is not set.
    #[error("no such tax rate")]
    RateNotFound,
}

impl TaxError {
    /// Stable machine code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            TaxError::RateNotFound => "tax_rate_not_found",
        }
    }

    /// What kind of refusal this is.
    pub fn kind(&self) -> crate::ErrorKind {
        crate::ErrorKind::NotFound
    }
}
crate::impl_error_code!(TaxError);

/// Where a rate applies: a country and, for a region, a postal code prefix.
pub type Destination = (CountryCode, Option<PostalPrefix>);

/// The shop's tax policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxPolicy {
    rates: BTreeMap<String, Rate>,
    prices_include_tax: bool,
}

impl Default for TaxPolicy {
    /// No rates, and prices that include tax: setting a rate later changes what the shop
    /// keeps, never what shoppers were shown.
    fn default() -> Self {
        TaxPolicy {
            rates: BTreeMap::new(),
            prices_include_tax: true,
        }
    }
}

fn key(country: &CountryCode, prefix: Option<&PostalPrefix>) -> String {
    match prefix {
        Some(prefix) => format!("{country}/{prefix}"),
        None => country.to_string(),
    }
}

impl TaxPolicy {
    /// The aggregate id of the shop's policy.
    pub const ID: &'static str = "shop";

    /// Whether catalog prices include tax.
    pub fn prices_include_tax(&self) -> bool {
        self.prices_include_tax
    }

    /// The rates, by `CC` or `CC/prefix`.
    pub fn rates(&self) -> &BTreeMap<String, Rate> {
        &self.rates
    }

    /// The tax for a destination: the rate of the longest matching postal prefix of the
    /// country, else the country's rate, else none.
    pub fn rule_for(&self, country: &CountryCode, postal_code: &str) -> TaxRule {
        let postal = postal_code.trim().to_ascii_uppercase();
        let regional = self
            .rates
            .range(format!("{country}/")..)
            .take_while(|(k, _)| k.starts_with(&format!("{country}/")))
            .filter(|(k, _)| postal.starts_with(&k[country.as_str().len() + 1..]))
            .max_by_key(|(k, _)| k.len())
            .map(|(_, rate)| *rate);
        match regional.or_else(|| self.rates.get(country.as_str()).copied()) {
            Some(rate) => TaxRule {
                rate,
                prices_include_tax: self.prices_include_tax,
            },
            None => TaxRule::none(self.prices_include_tax),
        }
    }
}

impl Aggregate for TaxPolicy {
    const TYPE: &'static str = "TaxPolicy";
    type Command = TaxCommand;
    type Event = TaxEvent;
    type Error = TaxError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let event = match command {
            TaxCommand::SetTaxRate {
                country,
                postal_prefix,
                rate,
            } => {
                if self.rates.get(&key(&country, postal_prefix.as_ref())) == Some(&rate) {
                    return Ok(());
                }
                TaxEvent::TaxRateSet {
                    country,
                    postal_prefix,
                    rate,
                }
            }
            TaxCommand::RemoveTaxRate {
                country,
                postal_prefix,
            } => {
                if !self
                    .rates
                    .contains_key(&key(&country, postal_prefix.as_ref()))
                {
                    return Err(TaxError::RateNotFound);
                }
                TaxEvent::TaxRateRemoved {
                    country,
                    postal_prefix,
                }
            }
            TaxCommand::SetPricesIncludeTax { prices_include_tax } => {
                if self.prices_include_tax == prices_include_tax {
                    return Ok(());
                }
                TaxEvent::TaxInclusionSet { prices_include_tax }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            TaxEvent::TaxRateSet {
                country,
                postal_prefix,
                rate,
            } => {
                self.rates
                    .insert(key(&country, postal_prefix.as_ref()), rate);
            }
            TaxEvent::TaxRateRemoved {
                country,
                postal_prefix,
            } => {
                self.rates.remove(&key(&country, postal_prefix.as_ref()));
            }
            TaxEvent::TaxInclusionSet { prices_include_tax } => {
                self.prices_include_tax = prices_include_tax;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::execute;

    fn set(policy: &mut TaxPolicy, country: &str, prefix: Option<&str>, rate: &str) {
        let command = TaxCommand::SetTaxRate {
            country: CountryCode::new(country).unwrap(),
            postal_prefix: prefix.map(|p| PostalPrefix::new(p).unwrap()),
            rate: Rate::parse(rate).unwrap(),
        };
        execute(policy, command, &()).unwrap();
    }

    #[test]
    fn the_longest_postal_prefix_wins_then_the_country_then_no_tax() {
        let mut policy = TaxPolicy::default();
        set(&mut policy, "ES", None, "21");
        set(&mut policy, "ES", Some("35"), "7");
        set(&mut policy, "ES", Some("350"), "3");
        let es = CountryCode::new("ES").unwrap();
        let rate = |postal| policy.rule_for(&es, postal).rate.to_string();
        assert_eq!(rate("28001"), "21");
        assert_eq!(rate("35100"), "7");
        assert_eq!(rate("35012"), "3");
        let fr = CountryCode::new("FR").unwrap();
        assert_eq!(policy.rule_for(&fr, "75001").rate.thousandths(), 0);
        assert!(policy.rule_for(&fr, "75001").prices_include_tax);
    }

    #[test]
    fn removing_a_rate_that_is_not_set_is_refused() {
        let mut policy = TaxPolicy::default();
        let command = TaxCommand::RemoveTaxRate {
            country: CountryCode::new("DE").unwrap(),
            postal_prefix: None,
        };
        assert_eq!(
            execute(&mut policy, command, &()),
            Err(TaxError::RateNotFound)
        );
    }
}
