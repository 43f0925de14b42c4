//! Schema evolution of stored events: upcasters read an old version of an event as the
//! current one.
//!
//! The pattern: an `event_type` never changes; when an event's shape changes, its
//! `event_version` is bumped and a [`SemanticVersionEventUpcaster`] for the new version
//! rewrites older payloads (cqrs-es applies it to every stored event of that type whose
//! version is lower). Upcast functions are total: a payload they do not recognise is passed
//! through unchanged, and deserialization then reports it. A version that only adds optional
//! fields (`OrderPlaced` 1.1) needs no upcaster: the older payload reads as it is.
//!
//! Every reader of stored events goes through this chain: aggregates load through the event
//! store (hand it [`upcasters`]); projections, the order process and notifications read
//! recorded events with [`decode`].
//!
//! Events written before personal data named its subject (`CustomerRegistered`,
//! `CustomerProfileChanged`, `CustomerAddressChanged` 1.0, `OrderPlaced` 1.x) hold it in
//! plain text; their upcasters wrap each value as a revealed [`crate::Personal`] of the
//! subject the aggregate id gives, drop `CustomerRegistered`'s password hash, and add
//! `OrderPlaced`'s `ship_to_country` (`mercato privacy seal-history` then rewrites such
//! events sealed, ADR 0013).

use std::sync::LazyLock;

use cqrs_es::persist::{
    EventUpcaster, SemanticVersion, SemanticVersionEventUpcaster, SerializedEvent,
};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::personal::{wrap, DataSubject};
use crate::values::{CustomerId, OrderId};

/// Every upcaster of the domain, to hand to the event store.
pub fn upcasters() -> Vec<Box<dyn EventUpcaster>> {
    vec![
        Box::new(SemanticVersionEventUpcaster::new(
            "ProductCreated",
            "2.0",
            Box::new(product_created_v1_to_v2),
        )),
        Box::new(SemanticVersionEventUpcaster::new(
            "OrderDelivered",
            "2.0",
            Box::new(order_delivered_v1_to_v2),
        )),
        Box::new(WithAggregateId::new(
            "CustomerRegistered",
            "2.0",
            customer_registered_v1_to_v2,
        )),
        Box::new(WithAggregateId::new(
            "CustomerProfileChanged",
            "2.0",
            customer_profile_changed_v1_to_v2,
        )),
        Box::new(WithAggregateId::new(
            "CustomerAddressChanged",
            "2.0",
            customer_address_changed_v1_to_v2,
        )),
        Box::new(WithAggregateId::new(
            "OrderPlaced",
            "2.0",
            order_placed_v1_to_v2,
        )),
    ]
}

/// An upcaster whose function also needs the aggregate id (cqrs-es's semantic-version
/// upcaster hands over only the payload).
struct WithAggregateId {
    event_type: &'static str,
    version: SemanticVersion,
    upcast: fn(&str, Value) -> Value,
}

impl WithAggregateId {
    fn new(event_type: &'static str, version: &str, upcast: fn(&str, Value) -> Value) -> Self {
        Self {
            event_type,
            version: version
                .parse()
                .unwrap_or_else(|_| unreachable!("{version}")),
            upcast,
        }
    }
}

impl EventUpcaster for WithAggregateId {
    fn can_upcast(&self, event_type: &str, event_version: &str) -> bool {
        event_type == self.event_type
            && event_version
                .parse::<SemanticVersion>()
                .is_ok_and(|v| self.version.supersedes(&v))
    }

    fn upcast(&self, mut event: SerializedEvent) -> SerializedEvent {
        event.payload = (self.upcast)(&event.aggregate_id, event.payload);
        event.event_version = self.version.to_string();
        event
    }
}

static CHAIN: LazyLock<Vec<Box<dyn EventUpcaster>>> = LazyLock::new(upcasters);

/// A stored payload of `event_type` at `event_version` of aggregate `aggregate_id` as the
/// current event type `E`, upcast first when it is an older version (the payload is only
/// copied then). Sealed personal data must have been revealed.
pub fn decode<E: DeserializeOwned>(
    aggregate_id: &str,
    event_type: &str,
    event_version: &str,
    payload: &Value,
) -> Result<E, serde_json::Error> {
    if !CHAIN
        .iter()
        .any(|u| u.can_upcast(event_type, event_version))
    {
        return E::deserialize(payload);
    }
    let mut event = SerializedEvent::new(
        aggregate_id.to_owned(),
        0,
        String::new(),
        event_type.to_owned(),
        event_version.to_owned(),
        payload.clone(),
        Value::Null,
    );
    for upcaster in CHAIN.iter() {
        if upcaster.can_upcast(&event.event_type, &event.event_version) {
            event = upcaster.upcast(event);
        }
    }
    serde_json::from_value(event.payload)
}

/// `OrderDelivered` 1.0 -> 2.0.
///
/// 1.0 was a unit variant (`"OrderDelivered"`), allowed only once every unit had shipped, so
/// it meant "everything shipped arrived". 2.0 names the shipments and units delivered; an
/// upcast event has empty `tracking_numbers` and `lines`, which the order reads as every
/// shipped unit, no time, and the status `delivered`.
pub fn order_delivered_v1_to_v2(payload: Value) -> Value {
    match payload {
        Value::String(variant) if variant == "OrderDelivered" => serde_json::json!({
            "OrderDelivered": {
                "tracking_numbers": [],
                "lines": [],
                "delivered_at": null,
                "status": "delivered",
            }
        }),
        other => other,
    }
}

/// The fields of `{"<variant>": {...}}`, for an upcaster to change in place.
fn variant_fields<'a>(payload: &'a mut Value, variant: &str) -> Option<&'a mut Map<String, Value>> {
    payload.get_mut(variant)?.as_object_mut()
}

/// Wraps each present, non-null field of `fields` named in `names` as personal data of
/// `subject` (unless already wrapped).
fn wrap_fields(fields: &mut Map<String, Value>, names: &[&str], subject: DataSubject) {
    for name in names {
        if let Some(value) = fields.get_mut(*name) {
            let plain = !value.is_null()
                && value
                    .as_object()
                    .is_none_or(|o| !o.contains_key(crate::personal::SUBJECT));
            if plain {
                *value = wrap(value.take(), subject);
            }
        }
    }
}

/// The customer an aggregate id names (a malformed id stays unwrapped: decoding reports it).
fn customer(aggregate_id: &str) -> Option<DataSubject> {
    aggregate_id
        .parse::<CustomerId>()
        .ok()
        .map(DataSubject::Customer)
}

/// `CustomerRegistered` 1.0 -> 2.0: email and name wrapped, the password hash dropped (it
/// lives only with the login credentials).
pub fn customer_registered_v1_to_v2(aggregate_id: &str, mut payload: Value) -> Value {
    if let (Some(fields), Some(subject)) = (
        variant_fields(&mut payload, "CustomerRegistered"),
        customer(aggregate_id),
    ) {
        fields.remove("password_hash");
        wrap_fields(fields, &["email", "name"], subject);
    }
    payload
}

/// `CustomerProfileChanged` 1.0 -> 2.0: name, email and phone wrapped.
pub fn customer_profile_changed_v1_to_v2(aggregate_id: &str, mut payload: Value) -> Value {
    if let (Some(fields), Some(subject)) = (
        variant_fields(&mut payload, "CustomerProfileChanged"),
        customer(aggregate_id),
    ) {
        wrap_fields(fields, &["name", "email", "phone"], subject);
    }
    payload
}

/// `CustomerAddressChanged` 1.0 -> 2.0: the address wrapped.
pub fn customer_address_changed_v1_to_v2(aggregate_id: &str, mut payload: Value) -> Value {
    if let (Some(fields), Some(subject)) = (
        variant_fields(&mut payload, "CustomerAddressChanged"),
        customer(aggregate_id),
    ) {
        wrap_fields(fields, &["address"], subject);
    }
    payload
}

/// `OrderPlaced` 1.x -> 2.0: the shipping address and a guest's email wrapped as the
/// customer's data (the guest order's for a guest), and `ship_to_country` taken from the
/// address.
pub fn order_placed_v1_to_v2(aggregate_id: &str, mut payload: Value) -> Value {
    let Some(fields) = variant_fields(&mut payload, "OrderPlaced") else {
        return payload;
    };
    let customer_id = fields
        .get("customer_id")
        .and_then(Value::as_str)
        .and_then(|id| id.parse::<CustomerId>().ok());
    let subject = match customer_id {
        Some(id) => DataSubject::Customer(id),
        None => match aggregate_id.parse::<OrderId>() {
            Ok(id) => DataSubject::GuestOrder(id),
            Err(_) => return payload,
        },
    };
    if let Some(country) = fields
        .get("shipping_address")
        .and_then(|a| a.get("country"))
        .cloned()
    {
        fields.entry("ship_to_country").or_insert(country);
    }
    wrap_fields(fields, &["shipping_address", "guest_email"], subject);
    payload
}

/// `ProductCreated` 1.0 -> 2.0.
///
/// 1.0 (the prototype catalog) had flat fields and the category as one slash-separated
/// string: `{"ProductCreated": {"sku", "name", "description", "brand", "category": "a/b",
/// "price"}}`. 2.0 nests the descriptive fields in `details`, holds the category as an array
/// and adds `attributes` and `images` (empty for old products).
pub fn product_created_v1_to_v2(payload: Value) -> Value {
    let Value::Object(mut outer) = payload else {
        return payload;
    };
    let Some(Value::Object(old)) = outer.remove("ProductCreated") else {
        return Value::Object(outer);
    };
    let mut old = old;
    let mut details = Map::new();
    for field in ["name", "description", "brand"] {
        if let Some(value) = old.remove(field) {
            details.insert(field.to_owned(), value);
        }
    }
    let category = match old.remove("category") {
        Some(Value::String(path)) => Value::Array(
            path.split('/')
                .map(|segment| Value::String(segment.to_owned()))
                .collect(),
        ),
        Some(other) => other,
        None => Value::Null,
    };
    details.insert("category".to_owned(), category);
    details.insert("attributes".to_owned(), Value::Object(Map::new()));
    details.insert("images".to_owned(), Value::Array(Vec::new()));
    old.insert("details".to_owned(), Value::Object(details));
    outer.insert("ProductCreated".to_owned(), Value::Object(old));
    Value::Object(outer)
}

#[cfg(test)]
mod tests {
    use cqrs_es::persist::SerializedEvent;
    use cqrs_es::{DomainEvent, EventEnvelope};
    use serde_json::json;

    use super::*;
    use crate::product::{Product, ProductDetails, ProductEvent};
    use crate::test_support::fixtures::{eur, sku};
    use crate::values::{Attributes, Brand, CategoryPath, Description, ProductName};

    fn v1_event() -> SerializedEvent {
        SerializedEvent::new(
            "TSHIRT-RED".to_owned(),
            1,
            "Product".to_owned(),
            "ProductCreated".to_owned(),
            "1.0".to_owned(),
            json!({"ProductCreated": {
                "sku": "TSHIRT-RED",
                "name": "Red T-shirt",
                "description": "Soft cotton",
                "brand": "Acme",
                "category": "apparel/shirts",
                "price": {"amount": 1999, "currency": "EUR"}
            }}),
            json!({}),
        )
    }

    #[test]
    fn product_created_v1_is_read_as_v2() {
        let upcasters = upcasters();
        let mut event = v1_event();
        for upcaster in &upcasters {
            if upcaster.can_upcast(&event.event_type, &event.event_version) {
                event = upcaster.upcast(event);
            }
        }
        // cqrs-es writes the upcast version in full semantic form.
        assert_eq!(event.event_version, "2.0.0");
        let envelope = EventEnvelope::<Product>::try_from(event).unwrap();
        let expected = ProductEvent::ProductCreated {
            sku: sku("TSHIRT-RED"),
            details: ProductDetails {
                name: ProductName::new("Red T-shirt").unwrap(),
                description: Description::new("Soft cotton").unwrap(),
                brand: Brand::new("Acme").unwrap(),
                category: CategoryPath::parse("apparel/shirts").unwrap(),
                attributes: Attributes::default(),
                images: vec![],
                weight_grams: None,
            },
            price: eur(1999),
        };
        assert_eq!(envelope.payload, expected);
        assert_eq!(expected.event_version(), "2.1");
    }

    #[test]
    fn every_reader_decodes_old_versions_through_the_same_chain() {
        let event: ProductEvent =
            decode("TSHIRT-RED", "ProductCreated", "1.0", &v1_event().payload).unwrap();
        assert!(matches!(event, ProductEvent::ProductCreated { .. }));
        let delivered: crate::order::OrderEvent =
            decode("o", "OrderDelivered", "1.0", &json!("OrderDelivered")).unwrap();
        assert!(matches!(
            delivered,
            crate::order::OrderEvent::OrderDelivered { ref lines, delivered_at: None, .. }
                if lines.is_empty()
        ));
        // A current version is read as it is.
        let current = serde_json::to_value(&delivered).unwrap();
        let again: crate::order::OrderEvent =
            decode("o", "OrderDelivered", "2.0", &current).unwrap();
        assert_eq!(again, delivered);
    }

    #[test]
    fn plaintext_customer_events_read_as_personal_data_of_the_customer_without_the_hash() {
        use crate::customer::CustomerEvent;
        let id = "00000000-0000-0000-0000-000000000007";
        let subject: DataSubject = format!("customer:{id}").parse().unwrap();
        let registered: CustomerEvent = decode(
            id,
            "CustomerRegistered",
            "1.0",
            &json!({"CustomerRegistered": {"customer_id": id, "email": "ada@example.com",
                "name": "Ada Lovelace", "password_hash": "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"}}),
        )
        .unwrap();
        let CustomerEvent::CustomerRegistered { email, name, .. } = &registered else {
            panic!("{registered:?}");
        };
        assert_eq!((email.subject(), name.subject()), (subject, subject));
        assert_eq!(email.expose().unwrap().as_str(), "ada@example.com");
        assert!(!serde_json::to_string(&registered)
            .unwrap()
            .contains("argon2"));

        let changed: CustomerEvent = decode(
            id,
            "CustomerProfileChanged",
            "1.0",
            &json!({"CustomerProfileChanged": {"name": "Ada King", "email": "ada@example.org", "phone": null}}),
        )
        .unwrap();
        assert!(
            matches!(changed, CustomerEvent::CustomerProfileChanged { phone: None, ref name, .. }
                if name.expose().unwrap().as_str() == "Ada King")
        );
        let address = json!({"recipient": "Ada", "line1": "1 Main St", "line2": null,
            "city": "London", "postal_code": "N1", "country": "GB"});
        let moved: CustomerEvent = decode(
            id,
            "CustomerAddressChanged",
            "1.0",
            &json!({"CustomerAddressChanged": {"address": address}}),
        )
        .unwrap();
        assert!(
            matches!(moved, CustomerEvent::CustomerAddressChanged { ref address } if address.subject() == subject)
        );
    }

    #[test]
    fn plaintext_orders_read_as_the_customers_or_the_guest_orders_data_with_their_country() {
        use crate::order::OrderEvent;
        let order = "00000000-0000-0000-0000-000000000009";
        let customer = "00000000-0000-0000-0000-000000000007";
        let placed = |customer_id: Value, guest_email: Value| {
            json!({"OrderPlaced": {"order_id": order, "customer_id": customer_id,
                "guest_email": guest_email, "lines": [{"sku": "SKU-1", "name": "Thing",
                "quantity": 1, "unit_price": {"amount": 500, "currency": "EUR"},
                "line_total": {"amount": 500, "currency": "EUR"}}],
                "total": {"amount": 500, "currency": "EUR"},
                "shipping_address": {"recipient": "Ada", "line1": "1 Main St", "line2": null,
                    "city": "Paris", "postal_code": "75001", "country": "FR"},
                "payment_method": "tok_visa", "placed_at": "2026-01-01T00:00:00Z"}})
        };
        let mut legacy = placed(json!(customer), Value::Null);
        legacy["OrderPlaced"]
            .as_object_mut()
            .unwrap()
            .remove("guest_email");
        let OrderEvent::OrderPlaced {
            shipping_address,
            ship_to_country,
            guest_email: None,
            ..
        } = decode(order, "OrderPlaced", "1.0", &legacy).unwrap()
        else {
            panic!("not placed");
        };
        assert_eq!(
            shipping_address.subject().to_string(),
            format!("customer:{customer}")
        );
        assert_eq!(ship_to_country.as_str(), "FR");

        let guest = placed(Value::Null, json!("guest@example.com"));
        let OrderEvent::OrderPlaced {
            shipping_address,
            guest_email: Some(email),
            ..
        } = decode(order, "OrderPlaced", "1.1", &guest).unwrap()
        else {
            panic!("not a guest order");
        };
        let subject = format!("order:{order}");
        assert_eq!(shipping_address.subject().to_string(), subject);
        assert_eq!(email.subject().to_string(), subject);
        assert_eq!(email.expose().unwrap().as_str(), "guest@example.com");
    }

    #[test]
    fn current_version_is_not_upcast() {
        let upcasters = upcasters();
        assert!(!upcasters[0].can_upcast("ProductCreated", "2.0"));
        assert!(!upcasters[0].can_upcast("ProductPublished", "1.0"));
        assert!(upcasters[0].can_upcast("ProductCreated", "1.0"));
    }

    #[test]
    fn unrecognised_payloads_pass_through() {
        assert_eq!(product_created_v1_to_v2(json!("x")), json!("x"));
        assert_eq!(
            product_created_v1_to_v2(json!({"Other": {}})),
            json!({"Other": {}})
        );
    }
}
