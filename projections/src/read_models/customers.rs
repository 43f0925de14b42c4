//! Customers: profile data, erased on `CustomerForgotten` (GDPR).

use mercato_aggregates::customer::CustomerEvent;
use mercato_event_store::RecordedEvent;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::decode::decode;
use crate::error::ProjectionError;
use crate::runtime::Projection;

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
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        let id = Uuid::parse_str(&event.aggregate_id).map_err(|e| ProjectionError::Invalid {
            event_id: event.event_id,
            reason: format!("customer id: {e}"),
        })?;
        let at = event.recorded_at;
        match decode::<CustomerEvent>(event)? {
            CustomerEvent::CustomerRegistered { email, name, .. } => {
                sqlx::query(
                    "INSERT INTO customers (customer_id, email, name, registered_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $4) ON CONFLICT (customer_id) DO NOTHING",
                )
                .bind(id)
                .bind(email.expose().as_str())
                .bind(name.expose().as_str())
                .bind(at)
                .execute(conn)
                .await?;
            }
            CustomerEvent::CustomerProfileChanged { name, email, phone } => {
                sqlx::query(
                    "UPDATE customers SET name = $2, email = $3, phone = $4, updated_at = $5 \
                     WHERE customer_id = $1 AND NOT forgotten",
                )
                .bind(id)
                .bind(name.expose().as_str())
                .bind(email.expose().as_str())
                .bind(phone.as_ref().map(|p| p.expose().as_str().to_owned()))
                .bind(at)
                .execute(conn)
                .await?;
            }
            CustomerEvent::CustomerAddressChanged { address } => {
                sqlx::query(
                    "UPDATE customers SET address = $2, updated_at = $3 WHERE customer_id = $1 AND NOT forgotten",
                )
                .bind(id)
                .bind(serde_json::to_value(address.expose()).unwrap_or_default())
                .bind(at)
                .execute(conn)
                .await?;
            }
            CustomerEvent::CustomerForgotten { .. } => {
                sqlx::query(
                    "UPDATE customers SET email = NULL, name = NULL, phone = NULL, address = NULL, \
                       forgotten = true, updated_at = $2 WHERE customer_id = $1",
                )
                .bind(id)
                .bind(at)
                .execute(conn)
                .await?;
            }
        }
        Ok(())
    }
}
