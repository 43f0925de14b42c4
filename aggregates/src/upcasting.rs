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

use std::sync::LazyLock;

use cqrs_es::persist::{EventUpcaster, SemanticVersionEventUpcaster, SerializedEvent};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

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
    ]
}

static CHAIN: LazyLock<Vec<Box<dyn EventUpcaster>>> = LazyLock::new(upcasters);

/// A stored payload of `event_type` at `event_version` as the current event type `E`,
/// upcast first when it is an older version (the payload is only copied then).
pub fn decode<E: DeserializeOwned>(
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
        String::new(),
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
            },
            price: eur(1999),
        };
        assert_eq!(envelope.payload, expected);
        assert_eq!(expected.event_version(), "2.0");
    }

    #[test]
    fn every_reader_decodes_old_versions_through_the_same_chain() {
        let event: ProductEvent = decode("ProductCreated", "1.0", &v1_event().payload).unwrap();
        assert!(matches!(event, ProductEvent::ProductCreated { .. }));
        let delivered: crate::order::OrderEvent =
            decode("OrderDelivered", "1.0", &json!("OrderDelivered")).unwrap();
        assert!(matches!(
            delivered,
            crate::order::OrderEvent::OrderDelivered { ref lines, delivered_at: None, .. }
                if lines.is_empty()
        ));
        // A current version is read as it is.
        let current = serde_json::to_value(&delivered).unwrap();
        let again: crate::order::OrderEvent = decode("OrderDelivered", "2.0", &current).unwrap();
        assert_eq!(again, delivered);
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
