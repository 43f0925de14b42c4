//! Validated value types shared by the aggregates.
//!
//! Every type here validates when it is constructed and when it is deserialized, so an
//! invalid value cannot exist, even one read from JSON.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::pci;

/// Why a value could not be constructed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// Not a three-letter uppercase ISO 4217 code.
    #[error("currency must be a three-letter uppercase ISO 4217 code")]
    InvalidCurrency,
    /// Not 1-64 characters of `A-Z a-z 0-9 . _ -`.
    #[error("sku must be 1-64 characters of letters, digits, '.', '_' or '-'")]
    InvalidSku,
    /// Not 1-64 characters of `A-Z a-z 0-9 . _ -`.
    #[error("warehouse id must be 1-64 characters of letters, digits, '.', '_' or '-'")]
    InvalidWarehouseId,
    /// Outside `1..=Quantity::MAX`.
    #[error("quantity must be between 1 and {max}")]
    InvalidQuantity {
        /// The largest quantity allowed.
        max: u32,
    },
    /// Not a plausible email address.
    #[error("invalid email address")]
    InvalidEmail,
    /// Not a plausible phone number.
    #[error("phone number must hold 5-15 digits, optionally with a leading '+', spaces, dashes or parentheses")]
    InvalidPhoneNumber,
    /// Text that is blank, too long or holds control characters.
    #[error("{field} must be {min}-{max} characters without control characters")]
    InvalidText {
        /// Which field.
        field: &'static str,
        /// Minimum length in characters.
        min: usize,
        /// Maximum length in characters.
        max: usize,
    },
    /// Not a two-letter uppercase ISO 3166-1 country code.
    #[error("country must be a two-letter uppercase ISO 3166-1 code")]
    InvalidCountryCode,
    /// Not a PHC-format password hash.
    #[error("password hash must be a PHC-format hash string starting with '$'")]
    InvalidPasswordHash,
    /// Not 1-8 category segments of 1-64 characters without '/'.
    #[error("category path must have 1-8 segments of 1-64 characters without '/'")]
    InvalidCategoryPath,
    /// Not an https URL of at most 2048 characters.
    #[error("image url must be an https url of at most 2048 characters")]
    InvalidImageUrl,
    /// Too many attributes, or a key or value of the wrong size.
    #[error("attributes must be at most 50 entries with 1-64 character keys and values of at most 256 characters")]
    InvalidAttributes,
    /// Not 1-64 characters of letters, digits or '-'.
    #[error("tracking number must be 1-64 characters of letters, digits or '-'")]
    InvalidTrackingNumber,
    /// Not 1-128 characters of letters, digits, '_' or '-'.
    #[error("payment method token must be 1-128 characters of letters, digits, '_' or '-'")]
    InvalidPaymentToken,
    /// The value contains what looks like a card number, which must never be stored.
    #[error("card numbers must not be sent; use a payment method token")]
    PanNotAllowed,
    /// Not exactly four digits.
    #[error("card last four must be exactly four digits")]
    InvalidCardLast4,
    /// Not a UUID.
    #[error("invalid id")]
    InvalidId,
    /// Not 3-32 characters of uppercase letters, digits, '-' or '_'.
    #[error("coupon code must be 3-32 characters of letters, digits, '-' or '_'")]
    InvalidCouponCode,
    /// Not a percentage in (0, 100] with at most three decimals.
    #[error("percentage must be greater than 0 and at most 100, with at most three decimals")]
    InvalidPercentage,
    /// Not 1-64 characters of `A-Z a-z 0-9 . _ -`.
    #[error("shipping method id must be 1-64 characters of letters, digits, '.', '_' or '-'")]
    InvalidShippingMethodId,
    /// Not 1-16 characters of uppercase letters, digits, ' ' or '-'.
    #[error("postal code prefix must be 1-16 characters of letters, digits, ' ' or '-'")]
    InvalidPostalPrefix,
}

impl ValueError {
    /// Stable machine code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            ValueError::InvalidCurrency => "invalid_currency",
            ValueError::InvalidSku => "invalid_sku",
            ValueError::InvalidWarehouseId => "invalid_warehouse_id",
            ValueError::InvalidQuantity { .. } => "invalid_quantity",
            ValueError::InvalidEmail => "invalid_email",
            ValueError::InvalidPhoneNumber => "invalid_phone_number",
            ValueError::InvalidText { .. } => "invalid_text",
            ValueError::InvalidCountryCode => "invalid_country_code",
            ValueError::InvalidPasswordHash => "invalid_password_hash",
            ValueError::InvalidCategoryPath => "invalid_category_path",
            ValueError::InvalidImageUrl => "invalid_image_url",
            ValueError::InvalidAttributes => "invalid_attributes",
            ValueError::InvalidTrackingNumber => "invalid_tracking_number",
            ValueError::InvalidPaymentToken => "invalid_payment_token",
            ValueError::PanNotAllowed => "pan_not_allowed",
            ValueError::InvalidCardLast4 => "invalid_card_last4",
            ValueError::InvalidId => "invalid_id",
            ValueError::InvalidCouponCode => "invalid_coupon_code",
            ValueError::InvalidPercentage => "invalid_percentage",
            ValueError::InvalidPostalPrefix => "invalid_postal_prefix",
            ValueError::InvalidShippingMethodId => "invalid_shipping_method_id",
        }
    }
}
impl ValueError {
    /// What kind of refusal this is.
    pub fn kind(&self) -> crate::ErrorKind {
        use crate::ErrorKind as K;
        let _ = self;
        K::Invalid
    }
}
crate::impl_error_code!(ValueError);

/// Checks length (in characters) and the absence of control characters; blank text counts
/// as empty.
fn check_text(
    value: &str,
    field: &'static str,
    min: usize,
    max: usize,
    allow_newlines: bool,
) -> Result<(), ValueError> {
    let len = value.chars().count();
    let blank = value.trim().is_empty();
    let bad_char = value
        .chars()
        .any(|c| c.is_control() && !(allow_newlines && (c == '\n' || c == '\r' || c == '\t')));
    if len < min || len > max || (min > 0 && blank) || bad_char {
        return Err(ValueError::InvalidText { field, min, max });
    }
    Ok(())
}

fn is_code_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-'
}

/// Declares a validated string newtype with serde, `Display`, `FromStr` and `AsRef<str>`.
/// `redacted` types hide their value in `Debug` because they are personal or secret.
macro_rules! validated_string {
    ($(#[$meta:meta])* $name:ident, $check:expr, debug = $debug:ident) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps the value.
            pub fn new(value: impl Into<String>) -> Result<Self, ValueError> {
                let value = value.into();
                let check: fn(&str) -> Result<(), ValueError> = $check;
                check(&value)?;
                Ok(Self(value))
            }

            /// The validated text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        validated_string!(@debug $name, $debug);

        impl FromStr for $name {
            type Err = ValueError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValueError;

            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::new(value)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = ValueError;

            fn try_from(value: &str) -> Result<Self, Self::Error> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
    (@debug $name:ident, plain) => {
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }
    };
    (@debug $name:ident, redacted) => {
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}(<redacted>)", stringify!($name))
            }
        }
    };
}

validated_string!(
    /// A stock keeping unit: 1-64 characters of letters, digits, '.', '_' or '-'.
    Sku,
    |v| {
        if (1..=64).contains(&v.len()) && v.chars().all(is_code_char) {
            Ok(())
        } else {
            Err(ValueError::InvalidSku)
        }
    },
    debug = plain
);

validated_string!(
    /// A warehouse identifier: 1-64 characters of letters, digits, '.', '_' or '-'.
    WarehouseId,
    |v| {
        if (1..=64).contains(&v.len()) && v.chars().all(is_code_char) {
            Ok(())
        } else {
            Err(ValueError::InvalidWarehouseId)
        }
    },
    debug = plain
);

validated_string!(
    /// A product's display name (1-200 characters).
    ProductName,
    |v| check_text(v, "name", 1, 200, false),
    debug = plain
);

validated_string!(
    /// A product description (up to 10,000 characters; newlines allowed).
    Description,
    |v| check_text(v, "description", 0, 10_000, true),
    debug = plain
);

validated_string!(
    /// A product's brand (1-100 characters).
    Brand,
    |v| check_text(v, "brand", 1, 100, false),
    debug = plain
);

validated_string!(
    /// A promotion's name, shown to shoppers beside its discount (1-200 characters).
    PromotionName,
    |v| check_text(v, "promotion name", 1, 200, false),
    debug = plain
);

validated_string!(
    /// A coupon code: 3-32 characters of uppercase letters, digits, '-' or '_'. Codes are
    /// case-insensitive for shoppers: [`CouponCode::normalize`] uppercases what they type.
    CouponCode,
    |v| {
        let ok = (3..=32).contains(&v.len())
            && v
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if ok {
            Ok(())
        } else {
            Err(ValueError::InvalidCouponCode)
        }
    },
    debug = plain
);

impl CouponCode {
    /// The code a shopper typed, trimmed and uppercased.
    pub fn normalize(typed: &str) -> Result<Self, ValueError> {
        CouponCode::new(typed.trim().to_ascii_uppercase())
    }
}

validated_string!(
    /// The start of postal codes a tax rate applies to (a region inside a country, such as
    /// `35` and `38` for the Canary Islands in Spain).
    PostalPrefix,
    |v| {
        let ok = (1..=16).contains(&v.len())
            && v
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == ' ' || c == '-');
        if ok {
            Ok(())
        } else {
            Err(ValueError::InvalidPostalPrefix)
        }
    },
    debug = plain
);

impl PostalPrefix {
    /// A prefix as an admin typed it, trimmed and uppercased.
    pub fn normalize(typed: &str) -> Result<Self, ValueError> {
        PostalPrefix::new(typed.trim().to_ascii_uppercase())
    }
}

validated_string!(
    /// An https URL of a product image.
    ImageUrl,
    |v| {
        let host = v.strip_prefix("https://").unwrap_or("");
        let ok = v.len() <= 2048
            && !host.is_empty()
            && !host.starts_with('/')
            && !v.chars().any(|c| c.is_whitespace() || c.is_control());
        if ok {
            Ok(())
        } else {
            Err(ValueError::InvalidImageUrl)
        }
    },
    debug = plain
);

validated_string!(
    /// A carrier's tracking number: 1-64 characters of letters, digits or '-'.
    TrackingNumber,
    |v| {
        if (1..=64).contains(&v.len()) && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            Ok(())
        } else {
            Err(ValueError::InvalidTrackingNumber)
        }
    },
    debug = plain
);

validated_string!(
    /// The carrier that takes a shipment (`DHL`, `La Poste`): 1-64 characters without control
    /// characters.
    Carrier,
    |v| check_text(v, "carrier", 1, 64, false),
    debug = plain
);

validated_string!(
    /// Why a customer sends units back: 1-500 characters, newlines allowed.
    ReturnReason,
    |v| check_text(v, "return reason", 1, 500, true),
    debug = plain
);

validated_string!(
    /// A payment method token issued by the payment provider (e.g. `tok_visa`); never a card
    /// number.
    PaymentMethodToken,
    |v| {
        if !(1..=128).contains(&v.len())
            || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(ValueError::InvalidPaymentToken);
        }
        if pci::contains_pan(v) {
            return Err(ValueError::PanNotAllowed);
        }
        Ok(())
    },
    debug = plain
);

validated_string!(
    /// An email address. Personal data: wrap it in [`crate::Personal`] inside events.
    Email,
    |v| {
        let Some((local, domain)) = v.split_once('@') else {
            return Err(ValueError::InvalidEmail);
        };
        let ok = v.len() <= 254
            && (1..=64).contains(&local.len())
            && !domain.contains('@')
            && domain.contains('.')
            && domain.split('.').all(|label| !label.is_empty())
            && !v.chars().any(|c| c.is_whitespace() || c.is_control());
        if ok {
            Ok(())
        } else {
            Err(ValueError::InvalidEmail)
        }
    },
    debug = redacted
);

validated_string!(
    /// A person's name (1-200 characters). Personal data.
    PersonName,
    |v| check_text(v, "name", 1, 200, false),
    debug = redacted
);

validated_string!(
    /// A phone number: 5-15 digits, optionally a leading '+', spaces, dashes, parentheses.
    /// Personal data.
    PhoneNumber,
    |v| {
        let body = v.strip_prefix('+').unwrap_or(v);
        let digits = body.chars().filter(char::is_ascii_digit).count();
        let ok = (5..=15).contains(&digits)
            && v.len() <= 32
            && body
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '(' | ')'));
        if ok {
            Ok(())
        } else {
            Err(ValueError::InvalidPhoneNumber)
        }
    },
    debug = redacted
);

validated_string!(
    /// A PHC-format password hash (`$argon2id$v=19$...`); never a plain password.
    PasswordHash,
    |v| {
        let ok = v.starts_with('$')
            && (20..=512).contains(&v.len())
            && !v.chars().any(|c| c.is_whitespace() || c.is_control());
        if ok {
            Ok(())
        } else {
            Err(ValueError::InvalidPasswordHash)
        }
    },
    debug = redacted
);

validated_string!(
    /// A two-letter uppercase ISO 3166-1 alpha-2 country code.
    CountryCode,
    |v| {
        if v.len() == 2 && v.chars().all(|c| c.is_ascii_uppercase()) {
            Ok(())
        } else {
            Err(ValueError::InvalidCountryCode)
        }
    },
    debug = plain
);

/// A positive, bounded count of units (`1..=Quantity::MAX`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Quantity(u32);

impl Quantity {
    /// The largest quantity a single command may carry.
    pub const MAX: u32 = 10_000;

    /// Validates `1..=Quantity::MAX`.
    pub fn new(value: u32) -> Result<Self, ValueError> {
        if (1..=Self::MAX).contains(&value) {
            Ok(Quantity(value))
        } else {
            Err(ValueError::InvalidQuantity { max: Self::MAX })
        }
    }

    /// The count.
    pub fn get(&self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for Quantity {
    type Error = ValueError;

    fn try_from(value: u32) -> Result<Self, Self::Error> {
        Quantity::new(value)
    }
}

impl From<Quantity> for u32 {
    fn from(value: Quantity) -> Self {
        value.0
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A catalog category path such as `["electronics", "phones"]` (1-8 segments).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct CategoryPath(Vec<String>);

impl CategoryPath {
    /// Validates 1-8 segments of 1-64 characters, none blank or containing '/'.
    pub fn new<I, S>(segments: I) -> Result<Self, ValueError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let segments: Vec<String> = segments.into_iter().map(Into::into).collect();
        let ok = (1..=8).contains(&segments.len())
            && segments
                .iter()
                .all(|s| check_text(s, "category", 1, 64, false).is_ok() && !s.contains('/'));
        if ok {
            Ok(CategoryPath(segments))
        } else {
            Err(ValueError::InvalidCategoryPath)
        }
    }

    /// Parses `"electronics/phones"`.
    pub fn parse(path: &str) -> Result<Self, ValueError> {
        CategoryPath::new(path.split('/'))
    }

    /// The segments, root first.
    pub fn segments(&self) -> &[String] {
        &self.0
    }
}

impl TryFrom<Vec<String>> for CategoryPath {
    type Error = ValueError;

    fn try_from(value: Vec<String>) -> Result<Self, Self::Error> {
        CategoryPath::new(value)
    }
}

impl From<CategoryPath> for Vec<String> {
    fn from(value: CategoryPath) -> Self {
        value.0
    }
}

impl fmt::Display for CategoryPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("/"))
    }
}

/// Free-form product attributes (`"colour" -> "red"`), at most 50, sorted by key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(
    try_from = "BTreeMap<String, String>",
    into = "BTreeMap<String, String>"
)]
pub struct Attributes(BTreeMap<String, String>);

impl Attributes {
    /// The most attributes a product may have.
    pub const MAX_ENTRIES: usize = 50;

    /// Validates the entry count and the key and value sizes.
    pub fn new(entries: BTreeMap<String, String>) -> Result<Self, ValueError> {
        let ok = entries.len() <= Self::MAX_ENTRIES
            && entries.iter().all(|(k, v)| {
                check_text(k, "attribute key", 1, 64, false).is_ok()
                    && check_text(v, "attribute value", 0, 256, false).is_ok()
            });
        if ok {
            Ok(Attributes(entries))
        } else {
            Err(ValueError::InvalidAttributes)
        }
    }

    /// The entries, sorted by key.
    pub fn entries(&self) -> &BTreeMap<String, String> {
        &self.0
    }
}

impl TryFrom<BTreeMap<String, String>> for Attributes {
    type Error = ValueError;

    fn try_from(value: BTreeMap<String, String>) -> Result<Self, Self::Error> {
        Attributes::new(value)
    }
}

impl From<Attributes> for BTreeMap<String, String> {
    fn from(value: Attributes) -> Self {
        value.0
    }
}

/// A postal address. Personal data: wrap it in [`crate::Personal`] inside events.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawPostalAddress")]
pub struct PostalAddress {
    recipient: PersonName,
    line1: String,
    line2: Option<String>,
    city: String,
    postal_code: String,
    country: CountryCode,
}

#[derive(Deserialize)]
struct RawPostalAddress {
    recipient: PersonName,
    line1: String,
    line2: Option<String>,
    city: String,
    postal_code: String,
    country: CountryCode,
}

impl TryFrom<RawPostalAddress> for PostalAddress {
    type Error = ValueError;

    fn try_from(raw: RawPostalAddress) -> Result<Self, Self::Error> {
        PostalAddress::new(
            raw.recipient,
            raw.line1,
            raw.line2,
            raw.city,
            raw.postal_code,
            raw.country,
        )
    }
}

impl PostalAddress {
    /// Validates each line (1-100 characters; `line2` optional, 1-100 when given; a blank
    /// `line2` is the same as none, since forms send empty strings for empty fields).
    pub fn new(
        recipient: PersonName,
        line1: impl Into<String>,
        line2: Option<String>,
        city: impl Into<String>,
        postal_code: impl Into<String>,
        country: CountryCode,
    ) -> Result<Self, ValueError> {
        let line1 = line1.into();
        let city = city.into();
        let postal_code = postal_code.into();
        let line2 = line2.filter(|l| !l.trim().is_empty());
        check_text(&line1, "address line 1", 1, 100, false)?;
        if let Some(line2) = &line2 {
            check_text(line2, "address line 2", 1, 100, false)?;
        }
        check_text(&city, "city", 1, 100, false)?;
        check_text(&postal_code, "postal code", 1, 16, false)?;
        Ok(PostalAddress {
            recipient,
            line1,
            line2,
            city,
            postal_code,
            country,
        })
    }

    /// Who receives deliveries at this address.
    pub fn recipient(&self) -> &PersonName {
        &self.recipient
    }

    /// First address line.
    pub fn line1(&self) -> &str {
        &self.line1
    }

    /// Optional second address line.
    pub fn line2(&self) -> Option<&str> {
        self.line2.as_deref()
    }

    /// City.
    pub fn city(&self) -> &str {
        &self.city
    }

    /// Postal code.
    pub fn postal_code(&self) -> &str {
        &self.postal_code
    }

    /// Country.
    pub fn country(&self) -> &CountryCode {
        &self.country
    }
}

impl fmt::Debug for PostalAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PostalAddress(<redacted>)")
    }
}

/// Declares a UUID identifier newtype (serialized as the plain UUID string).
macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// Wraps a UUID.
            pub const fn new(id: Uuid) -> Self {
                Self(id)
            }

            /// The UUID.
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = ValueError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self).map_err(|_| ValueError::InvalidId)
            }
        }
    };
}

uuid_id!(
    /// Identifies an order (aggregate id of [`crate::order::Order`]).
    OrderId
);
uuid_id!(
    /// Identifies a promotion (aggregate id of [`crate::promotion::Promotion`]).
    PromotionId
);

uuid_id!(
    /// Identifies a cart (aggregate id of [`crate::cart::Cart`]).
    CartId
);
uuid_id!(
    /// Identifies a customer (aggregate id of [`crate::customer::Customer`]).
    CustomerId
);
uuid_id!(
    /// Identifies a payment (aggregate id of [`crate::payment::Payment`]).
    PaymentId
);
uuid_id!(
    /// Identifies one refund of an order (the order derives it; the payment and the gateway
    /// use it as the refund's idempotency key).
    RefundId
);
uuid_id!(
    /// Identifies a return (merchandise authorization) of an order.
    ReturnId
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn sku_validation() {
        assert_eq!(
            Sku::new("TSHIRT-RED_L.v2").unwrap().as_str(),
            "TSHIRT-RED_L.v2"
        );
        for bad in ["", "has space", "é", &"x".repeat(65), "a/b"] {
            assert_eq!(Sku::new(bad), Err(ValueError::InvalidSku), "{bad:?}");
        }
        assert!(serde_json::from_value::<Sku>(json!("bad sku")).is_err());
        assert_eq!(
            serde_json::to_value(Sku::new("A1").unwrap()).unwrap(),
            json!("A1")
        );
    }

    #[test]
    fn quantity_is_positive_and_bounded() {
        assert_eq!(Quantity::new(1).unwrap().get(), 1);
        assert_eq!(Quantity::new(Quantity::MAX).unwrap().get(), Quantity::MAX);
        assert!(Quantity::new(0).is_err());
        assert!(Quantity::new(Quantity::MAX + 1).is_err());
        assert!(serde_json::from_value::<Quantity>(json!(0)).is_err());
        assert!(serde_json::from_value::<Quantity>(json!(-3)).is_err());
        assert_eq!(
            serde_json::from_value::<Quantity>(json!(7)).unwrap().get(),
            7
        );
        assert_eq!(Quantity::new(0).unwrap_err().code(), "invalid_quantity");
    }

    #[test]
    fn email_validation() {
        assert!(Email::new("ada@example.com").is_ok());
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a da@example.com",
            "a@b@c.d",
            "ada@example..com",
        ] {
            assert_eq!(Email::new(bad), Err(ValueError::InvalidEmail), "{bad:?}");
        }
        assert!(serde_json::from_value::<Email>(json!("nope")).is_err());
    }

    #[test]
    fn personal_and_secret_values_are_redacted_in_debug() {
        let email = Email::new("ada@example.com").unwrap();
        assert!(!format!("{email:?}").contains("ada"));
        let hash = PasswordHash::new("$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA").unwrap();
        assert!(!format!("{hash:?}").contains("argon"));
        assert!(!format!("{:?}", address()).contains("Main"));
    }

    #[test]
    fn password_hash_refuses_plain_passwords() {
        assert_eq!(
            PasswordHash::new("hunter2"),
            Err(ValueError::InvalidPasswordHash)
        );
        assert_eq!(
            PasswordHash::new("$argon2id$ with spaces in it"),
            Err(ValueError::InvalidPasswordHash)
        );
    }

    #[test]
    fn phone_number_validation() {
        assert!(PhoneNumber::new("+49 (30) 123-4567").is_ok());
        for bad in ["", "123", "+49 30 12a", &"1".repeat(16)] {
            assert_eq!(
                PhoneNumber::new(bad),
                Err(ValueError::InvalidPhoneNumber),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn text_fields_refuse_blank_long_and_control_text() {
        assert!(ProductName::new("Red T-shirt").is_ok());
        assert!(ProductName::new("   ").is_err());
        assert!(ProductName::new("x".repeat(201)).is_err());
        assert!(ProductName::new("a\u{0}b").is_err());
        assert!(Description::new("").is_ok());
        assert!(Description::new("line one\nline two").is_ok());
        assert!(Brand::new("").is_err());
        assert_eq!(
            Brand::new("").unwrap_err(),
            ValueError::InvalidText {
                field: "brand",
                min: 1,
                max: 100
            }
        );
    }

    #[test]
    fn category_path_validation() {
        let path = CategoryPath::parse("electronics/phones").unwrap();
        assert_eq!(path.segments(), ["electronics", "phones"]);
        assert_eq!(path.to_string(), "electronics/phones");
        assert_eq!(
            serde_json::to_value(&path).unwrap(),
            json!(["electronics", "phones"])
        );
        assert!(CategoryPath::parse("").is_err());
        assert!(CategoryPath::parse("a//b").is_err());
        assert!(CategoryPath::new(Vec::<String>::new()).is_err());
        assert!(CategoryPath::new(vec!["a/b"]).is_err());
        assert!(CategoryPath::parse("a/b/c/d/e/f/g/h/i").is_err());
        assert!(serde_json::from_value::<CategoryPath>(json!([])).is_err());
    }

    #[test]
    fn image_url_validation() {
        assert!(ImageUrl::new("https://cdn.example.com/a.png").is_ok());
        for bad in [
            "http://cdn.example.com/a.png",
            "https://",
            "https:///x",
            "https://a b",
            "ftp://x",
        ] {
            assert_eq!(
                ImageUrl::new(bad),
                Err(ValueError::InvalidImageUrl),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn attributes_validation() {
        let ok: BTreeMap<String, String> = [("colour".to_owned(), "red".to_owned())].into();
        assert!(Attributes::new(ok).is_ok());
        let too_many: BTreeMap<String, String> =
            (0..51).map(|i| (format!("k{i}"), "v".to_owned())).collect();
        assert_eq!(
            Attributes::new(too_many),
            Err(ValueError::InvalidAttributes)
        );
        let empty_key: BTreeMap<String, String> = [(String::new(), "v".to_owned())].into();
        assert!(Attributes::new(empty_key).is_err());
        assert!(serde_json::from_value::<Attributes>(json!({"": "x"})).is_err());
    }

    #[test]
    fn payment_tokens_refuse_card_numbers() {
        assert!(PaymentMethodToken::new("tok_visa").is_ok());
        assert!(PaymentMethodToken::new("pm_1Nx2yZ").is_ok());
        assert_eq!(
            PaymentMethodToken::new("4242424242424242"),
            Err(ValueError::PanNotAllowed)
        );
        assert_eq!(
            PaymentMethodToken::new("tok_4242424242424242"),
            Err(ValueError::PanNotAllowed)
        );
        assert_eq!(
            PaymentMethodToken::new("4242-4242-4242-4242"),
            Err(ValueError::PanNotAllowed)
        );
        assert_eq!(
            PaymentMethodToken::new("tok visa"),
            Err(ValueError::InvalidPaymentToken)
        );
        assert!(serde_json::from_value::<PaymentMethodToken>(json!("4242424242424242")).is_err());
        assert_eq!(ValueError::PanNotAllowed.code(), "pan_not_allowed");
    }

    #[test]
    fn tracking_numbers_and_country_codes() {
        assert!(TrackingNumber::new("1Z999AA10123456784").is_ok());
        assert!(TrackingNumber::new("").is_err());
        assert!(TrackingNumber::new("has space").is_err());
        assert!(CountryCode::new("DE").is_ok());
        assert_eq!(CountryCode::new("de"), Err(ValueError::InvalidCountryCode));
    }

    fn address() -> PostalAddress {
        PostalAddress::new(
            PersonName::new("Ada Lovelace").unwrap(),
            "1 Main Street",
            None,
            "London",
            "N1 9GU",
            CountryCode::new("GB").unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn postal_address_validation_and_serde() {
        let address = address();
        let json = serde_json::to_value(&address).unwrap();
        let back: PostalAddress = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, address);
        let mut bad = json;
        bad["city"] = json!("");
        assert!(serde_json::from_value::<PostalAddress>(bad).is_err());
        assert!(PostalAddress::new(
            PersonName::new("A").unwrap(),
            "",
            None,
            "x",
            "1",
            CountryCode::new("GB").unwrap()
        )
        .is_err());
    }

    #[test]
    fn a_blank_second_address_line_is_no_second_line() {
        for blank in ["", "   "] {
            let address = PostalAddress::new(
                PersonName::new("Ada Lovelace").unwrap(),
                "1 Main Street",
                Some(blank.to_owned()),
                "London",
                "N1 9GU",
                CountryCode::new("GB").unwrap(),
            )
            .unwrap();
            assert_eq!(address.line2(), None, "{blank:?}");
        }
        let mut json = serde_json::to_value(address()).unwrap();
        json["line2"] = json!("");
        let read: PostalAddress = serde_json::from_value(json).unwrap();
        assert_eq!(read, address());
    }

    #[test]
    fn ids_parse_and_serialize_as_plain_uuids() {
        let uuid = Uuid::from_u128(7);
        let id = OrderId::new(uuid);
        assert_eq!(serde_json::to_value(id).unwrap(), json!(uuid.to_string()));
        assert_eq!(uuid.to_string().parse::<OrderId>().unwrap(), id);
        assert_eq!("nope".parse::<OrderId>(), Err(ValueError::InvalidId));
    }

    proptest! {
        #[test]
        fn value_constructors_never_panic(text in "\\PC{0,80}", n in any::<u32>()) {
            let _ = Sku::new(text.as_str());
            let _ = Email::new(text.as_str());
            let _ = PhoneNumber::new(text.as_str());
            let _ = PaymentMethodToken::new(text.as_str());
            let _ = ImageUrl::new(text.as_str());
            let _ = CategoryPath::parse(&text);
            let _ = Quantity::new(n);
        }

        #[test]
        fn valid_skus_round_trip_through_json(sku in "[A-Za-z0-9._-]{1,64}") {
            let sku = Sku::new(sku).unwrap();
            let json = serde_json::to_string(&sku).unwrap();
            prop_assert_eq!(serde_json::from_str::<Sku>(&json).unwrap(), sku);
        }
    }
}
