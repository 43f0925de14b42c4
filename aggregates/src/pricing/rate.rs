//! Percentages without floats: thousandths of a percent, with half-up rounding to minor units.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::values::ValueError;

/// A percentage in thousandths of a percent: 19% is `19_000`, 8.875% is `8_875`. In JSON it
/// is an integer (`19`) or a decimal string (`"8.875"`); a JSON fraction (`8.875`) is refused,
/// because it would have gone through a float.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "RawRate", into = "String")]
pub struct Rate(u32);

#[derive(Deserialize)]
#[serde(untagged)]
enum RawRate {
    Whole(u64),
    Text(String),
}

impl TryFrom<RawRate> for Rate {
    type Error = ValueError;

    fn try_from(raw: RawRate) -> Result<Self, Self::Error> {
        match raw {
            RawRate::Whole(whole) => u32::try_from(whole)
                .ok()
                .and_then(|w| w.checked_mul(1_000))
                .ok_or(ValueError::InvalidPercentage)
                .and_then(Rate::from_thousandths),
            RawRate::Text(text) => Rate::parse(&text),
        }
    }
}

impl From<Rate> for String {
    fn from(rate: Rate) -> Self {
        rate.to_string()
    }
}

impl Rate {
    /// 100% in thousandths of a percent.
    pub const WHOLE: u32 = 100_000;

    /// A rate from thousandths of a percent, 0 to 100% (a zero rate is a valid tax rate, not
    /// a valid discount: [`Rate::positive`]).
    pub fn from_thousandths(thousandths: u32) -> Result<Self, ValueError> {
        if thousandths > Self::WHOLE {
            return Err(ValueError::InvalidPercentage);
        }
        Ok(Rate(thousandths))
    }

    /// Parses `"19"`, `"8.875"` or `"0.5"`: digits, at most three decimals, at most 100.
    pub fn parse(text: &str) -> Result<Self, ValueError> {
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
        if whole.is_empty() || whole.len() > 3 || fraction.len() > 3 || !digits(whole) {
            return Err(ValueError::InvalidPercentage);
        }
        if !digits(fraction) || (text.contains('.') && fraction.is_empty()) {
            return Err(ValueError::InvalidPercentage);
        }
        let whole: u32 = whole.parse().map_err(|_| ValueError::InvalidPercentage)?;
        let padded = format!("{fraction:0<3}");
        let fraction: u32 = padded.parse().map_err(|_| ValueError::InvalidPercentage)?;
        Rate::from_thousandths(whole * 1_000 + fraction)
    }

    /// The rate, refused when it is zero (a 0% discount is a mistake, not a promotion).
    pub fn positive(self) -> Result<Self, ValueError> {
        if self.0 == 0 {
            return Err(ValueError::InvalidPercentage);
        }
        Ok(self)
    }

    /// Thousandths of a percent.
    pub fn thousandths(&self) -> u32 {
        self.0
    }

    /// `amount * rate`, rounded half up to a whole minor unit.
    pub fn of(&self, amount: i64) -> i64 {
        mul_div_half_up(amount, i64::from(self.0), i64::from(Self::WHOLE))
    }

    /// The tax inside a tax-inclusive `gross` amount at this rate: `gross` less the net
    /// `gross / (1 + rate)`, the net rounded half up.
    pub fn included_in(&self, gross: i64) -> i64 {
        let whole = i64::from(Self::WHOLE);
        gross - mul_div_half_up(gross, whole, whole + i64::from(self.0))
    }
}

/// `value * numerator / denominator` for non-negative operands, rounded half up, computed in
/// 128 bits so it cannot overflow for any `i64` amount and rate.
pub(crate) fn mul_div_half_up(value: i64, numerator: i64, denominator: i64) -> i64 {
    let (v, n, d) = (
        i128::from(value),
        i128::from(numerator),
        i128::from(denominator),
    );
    let rounded = (2 * v * n + d) / (2 * d);
    i64::try_from(rounded).unwrap_or(i64::MAX)
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, fraction) = (self.0 / 1_000, self.0 % 1_000);
        if fraction == 0 {
            return write!(f, "{whole}");
        }
        let fraction = format!("{fraction:03}");
        write!(f, "{whole}.{}", fraction.trim_end_matches('0'))
    }
}

impl fmt::Debug for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Rate({self}%)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_from_integers_and_decimal_strings_only() {
        let rate = |json: &str| serde_json::from_str::<Rate>(json).map(|r| r.thousandths());
        assert_eq!(rate("19").unwrap(), 19_000);
        assert_eq!(rate("\"8.875\"").unwrap(), 8_875);
        assert_eq!(rate("\"0.5\"").unwrap(), 500);
        assert_eq!(rate("\"100\"").unwrap(), 100_000);
        for bad in [
            "8.875",
            "-5",
            "101",
            "\"100.001\"",
            "\"1.2345\"",
            "\"1.\"",
            "\".5\"",
            "\"1e2\"",
            "\"\"",
            "\" 5\"",
        ] {
            assert!(rate(bad).is_err(), "{bad}");
        }
        assert_eq!(
            serde_json::to_string(&Rate::parse("8.875").unwrap()).unwrap(),
            "\"8.875\""
        );
        assert_eq!(Rate::parse("20.50").unwrap().to_string(), "20.5");
        assert!(Rate::parse("0").unwrap().positive().is_err());
    }

    #[test]
    fn rounding_is_half_up_to_whole_minor_units() {
        let pct = |s| Rate::parse(s).unwrap();
        // 10% of 1.05 EUR is 10.5 cents: 11.
        assert_eq!(pct("10").of(105), 11);
        assert_eq!(pct("10").of(104), 10);
        // 19% VAT inside 1.19 EUR is 19 cents; inside 1.00 EUR, 15.97 cents: 16.
        assert_eq!(pct("19").included_in(119), 19);
        assert_eq!(pct("19").included_in(100), 16);
        assert_eq!(pct("100").of(i64::MAX), i64::MAX);
        assert_eq!(pct("0").included_in(500), 0);
    }
}
