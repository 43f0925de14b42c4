//! The customer's own profile.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use mercato_web::{Caller, Problem};
use serde::Serialize;
use sqlx::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{db, ReadHeaders};
use crate::consistency::{wait, Source};
use crate::respond::{cached, PERSONAL_DATA};
use crate::AppState;

/// A customer profile. After an erasure request every personal field is gone.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CustomerView {
    id: Uuid,
    email: Option<String>,
    name: Option<String>,
    phone: Option<String>,
    #[schema(value_type = Option<Object>)]
    address: Option<serde_json::Value>,
    forgotten: bool,
    registered_at: chrono::DateTime<chrono::Utc>,
}

/// The calling customer's profile.
#[utoipa::path(get, path = "/v1/customers/me", tag = "customers", params(ReadHeaders), security(("bearer" = [])),
    responses((status = 200, body = CustomerView), (status = 304), (status = 401), (status = 403), (status = 404), (status = 503)))]
#[tracing::instrument(skip_all)]
pub(crate) async fn me(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
) -> Result<Response, Problem> {
    let id = caller
        .customer_id()
        .ok_or_else(|| Problem::forbidden("only customers have a profile"))?;
    wait(&state, &headers, Source::Tables(&["customers"])).await?;
    let Some(row) = sqlx::query("SELECT * FROM read.customers WHERE customer_id = $1")
        .bind(id)
        .fetch_optional(&state.pool)
        .await
        .map_err(db)?
    else {
        return Err(Problem::not_found(
            "customer_not_found",
            "no profile for this customer",
        ));
    };
    let view = (|| -> Result<CustomerView, sqlx::Error> {
        Ok(CustomerView {
            id,
            email: row.try_get("email")?,
            name: row.try_get("name")?,
            phone: row.try_get("phone")?,
            address: row.try_get("address")?,
            forgotten: row.try_get("forgotten")?,
            registered_at: row.try_get("registered_at")?,
        })
    })()
    .map_err(db)?;
    cached(&headers, &view, PERSONAL_DATA)
}
