//! Customers: profile data, erased on `CustomerForgotten` (GDPR).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use mercato_aggregates::customer::CustomerEvent;
use mercato_aggregates::Personal;
use mercato_event_store::RecordedEvent;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{distinct, rows};
use crate::decode::decode;
use crate::error::ProjectionError;
use crate::projection::Projection;

/// Customer profiles. Password hashes are never copied into a read model.
pub struct Customers;

#[async_trait::async_trait]
impl Projection for Customers {
    fn name(&self) -> &'static str {
        "customers"
    }
    fn version(&self) -> i32 {
        1
    }
    fn aggregate_types(&self) -> &'static [&'static str] {
        &["Customer"]
    }
    fn event_types(&self) -> &'static [&'static str] {
        &[
            "CustomerRegistered",
            "CustomerProfileChanged",
            "CustomerAddressChanged",
            "CustomerForgotten",
        ]
    }
    fn tables(&self) -> &'static [&'static str] {
        &["customers"]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[&RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let ids = distinct(events.iter().map(|e| e.aggregate_id.clone()));
        let mut customers: HashMap<Uuid, CustomerRow> =
            rows::load::<CustomerRow>(conn, "customers", "customer_id", "uuid", &ids)
                .await?
                .into_iter()
                .map(|c| (c.customer_id, c))
                .collect();
        let mut changed = HashSet::new();
        for event in events {
            let id =
                Uuid::parse_str(&event.aggregate_id).map_err(|e| ProjectionError::Invalid {
                    event_id: event.event_id,
                    reason: format!("customer id: {e}"),
                })?;
            let at = event.recorded_at;
            let decoded = decode::<CustomerEvent>(event)?;
            if let CustomerEvent::CustomerRegistered { email, name, .. } = &decoded {
                if let Entry::Vacant(slot) = customers.entry(id) {
                    slot.insert(CustomerRow {
                        customer_id: id,
                        email: email.expose().map(|e| e.as_str().to_owned()),
                        name: name.expose().map(|n| n.as_str().to_owned()),
                        phone: None,
                        address: None,
                        forgotten: false,
                        registered_at: at,
                        updated_at: at,
                    });
                    changed.insert(id);
                }
                continue;
            }
            let Some(c) = customers.get_mut(&id) else {
                continue;
            };
            match decoded {
                CustomerEvent::CustomerRegistered { .. } => continue,
                // A forgotten customer's personal data never comes back.
                CustomerEvent::CustomerProfileChanged { .. }
                | CustomerEvent::CustomerAddressChanged { .. }
                    if c.forgotten =>
                {
                    continue
                }
                CustomerEvent::CustomerProfileChanged { name, email, phone } => {
                    c.name = name.expose().map(|n| n.as_str().to_owned());
                    c.email = email.expose().map(|e| e.as_str().to_owned());
                    c.phone = phone
                        .as_ref()
                        .and_then(Personal::expose)
                        .map(|p| p.as_str().to_owned());
                }
                CustomerEvent::CustomerAddressChanged { address } => {
                    c.address = address
                        .expose()
                        .map(serde_json::to_value)
                        .transpose()
                        .map_err(|e| ProjectionError::Invalid {
                            event_id: event.event_id,
                            reason: format!("address: {e}"),
                        })?;
                }
                CustomerEvent::CustomerForgotten { .. } => {
                    c.email = None;
                    c.name = None;
                    c.phone = None;
                    c.address = None;
                    c.forgotten = true;
                }
            }
            c.updated_at = at;
            changed.insert(id);
        }
        let changed: Vec<&CustomerRow> =
            changed.iter().filter_map(|id| customers.get(id)).collect();
        rows::upsert(conn, "customers", &["customer_id"], &changed).await
    }
}

/// A row of `customers` (personal data as plain values: this is the place they are shown).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CustomerRow {
    customer_id: Uuid,
    email: Option<String>,
    name: Option<String>,
    phone: Option<String>,
    address: Option<serde_json::Value>,
    forgotten: bool,
    registered_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}
