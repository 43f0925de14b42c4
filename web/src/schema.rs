//! OpenAPI schemas of the value grammars both APIs share (SKUs, warehouses, quantities,
//! currencies, countries, emails, ids), so that a generated client or a fuzzer knows what
//! the handlers accept. Use them as `#[schema(value_type = mercato_web::schema::Sku)]` on
//! a DTO field or as the type of a path parameter; [`crate::docs::Conventions`] registers
//! them in the document.
//!
//! The patterns are the regular-expression form of the validators in
//! `mercato_aggregates::values`; the command API's tests check that both accept the same
//! strings.

use std::borrow::Cow;

use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, SchemaType, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

/// `mercato_aggregates::Sku` and `WarehouseId`: 1-64 letters, digits, '.', '_' or '-'.
pub const CODE_PATTERN: &str = "^[A-Za-z0-9._-]{1,64}$";
/// `mercato_aggregates::Currency`: an ISO 4217 code.
pub const CURRENCY_PATTERN: &str = "^[A-Z]{3}$";
/// `mercato_aggregates::CountryCode`: an ISO 3166-1 alpha-2 code.
pub const COUNTRY_PATTERN: &str = "^[A-Z]{2}$";
/// The shape `mercato_aggregates::Email` accepts: a local part of 1-64 characters, one '@'
/// and a domain of at least two non-empty labels, no white space.
pub const EMAIL_PATTERN: &str = r"^[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+$";

fn text(description: &str, pattern: &str, max_length: usize, example: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .description(Some(description))
        .pattern(Some(pattern))
        .max_length(Some(max_length))
        .examples([example])
        .into()
}

macro_rules! schema {
    ($(#[$meta:meta])* $name:ident, $body:expr) => {
        $(#[$meta])*
        pub struct $name;

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                $body
            }
        }

        impl ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }
        }
    };
}

schema!(
    /// A stock keeping unit.
    Sku,
    text(
        "A stock keeping unit: 1-64 letters, digits, '.', '_' or '-'.",
        CODE_PATTERN,
        64,
        "SKU-000001"
    )
);

schema!(
    /// A warehouse id.
    WarehouseId,
    text(
        "A warehouse: 1-64 letters, digits, '.', '_' or '-'.",
        CODE_PATTERN,
        64,
        "main"
    )
);

schema!(
    /// A currency code.
    Currency,
    text(
        "An ISO 4217 currency code, upper case.",
        CURRENCY_PATTERN,
        3,
        "EUR"
    )
);

schema!(
    /// A country code.
    CountryCode,
    text(
        "An ISO 3166-1 alpha-2 country code, upper case.",
        COUNTRY_PATTERN,
        2,
        "DE"
    )
);

schema!(
    /// An email address.
    Email,
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
        .description(Some("An email address (at most 254 characters)."))
        .pattern(Some(EMAIL_PATTERN))
        .max_length(Some(254))
        .examples(["ada@example.com"])
        .into()
);

schema!(
    /// A count of units.
    Quantity,
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::Integer))
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
        .description(Some("A count of units, 1-10000."))
        .minimum(Some(1))
        .maximum(Some(10_000))
        .examples([1])
        .into()
);

/// Every schema of this module, by name, for the document's components.
pub(crate) fn all() -> Vec<(Cow<'static, str>, RefOr<Schema>)> {
    fn entry<S: ToSchema>() -> (Cow<'static, str>, RefOr<Schema>) {
        (S::name(), S::schema())
    }
    vec![
        entry::<Sku>(),
        entry::<WarehouseId>(),
        entry::<Currency>(),
        entry::<CountryCode>(),
        entry::<Email>(),
        entry::<Quantity>(),
    ]
}
