//! Registration, profile changes and erasure requests.

use argon2::password_hash::{PasswordHasher, SaltString};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use mercato_aggregates::customer::{Customer, CustomerCommand, CustomerStatus};
use mercato_aggregates::values::{
    CountryCode, CustomerId, Email, PasswordHash, PersonName, PhoneNumber, PostalAddress,
};
use mercato_aggregates::{DataSubject, ErrorKind, Personal};
use mercato_event_store::privacy;
use mercato_web::{Caller, Json, Path, Problem};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{context, parse_uuid, written, IfMatch, Precondition, WriteResult};
use crate::error::{db_problem, privacy_problem, refusal, store_problem, Fields};
use crate::exec::execute;
use crate::idempotency::RequestContext;
use crate::state::AppState;
use crate::throttle::{self, Bucket, ClientAddress};

/// Namespace of customer ids derived from a request's write id (retry-safe registration).
const CUSTOMER_NAMESPACE: Uuid = Uuid::from_u128(0x6d65_7263_6174_6f2d_6375_7374_6f6d_6572);

/// A new customer.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegisterCustomer {
    #[schema(value_type = mercato_web::schema::Email)]
    email: String,
    name: String,
    /// 10-256 characters.
    password: String,
}

/// A registered customer.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CustomerRegistered {
    /// The customer id.
    id: String,
    #[serde(flatten)]
    write: WriteResult,
}

/// A postal address.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddressDto {
    pub name: String,
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2.
    #[schema(value_type = mercato_web::schema::CountryCode)]
    pub country: String,
}

impl AddressDto {
    pub fn check(&self, field: &str, f: &mut Fields) -> Option<PostalAddress> {
        let name = f.check(&format!("{field}.name"), PersonName::new(&self.name));
        let country = f.check(&format!("{field}.country"), CountryCode::new(&self.country));
        let (name, country) = (name?, country?);
        f.check(
            field,
            PostalAddress::new(
                name,
                &self.line1,
                self.line2.clone(),
                &self.city,
                &self.postal_code,
                country,
            ),
        )
    }
}

/// Profile changes: an omitted field keeps its value; `"phone": null` (or `""`) removes the phone
/// number; `address` is the default shipping address.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateCustomer {
    name: Option<String>,
    #[schema(value_type = Option<mercato_web::schema::Email>)]
    email: Option<String>,
    /// Omitted: keep the number on file; `null`: remove it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    phone: Option<Option<String>>,
    address: Option<AddressDto>,
}

/// `Some(value)` for a field that is present, even as `null` (which serde's `Option` cannot
/// tell from a missing field).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Registers a customer (email unique, password hashed with argon2id). Throttled per client
/// address (429 with `Retry-After`); the admin is not.
#[utoipa::path(post, path = "/v1/customers", tag = "customers", request_body = RegisterCustomer,
    responses((status = 201, body = CustomerRegistered), (status = 409),
              (status = 422),
              (status = 429)))]
pub(crate) async fn register(
    State(state): State<AppState>,
    caller: Option<Caller>,
    ClientAddress(client): ClientAddress,
    Extension(req): Extension<RequestContext>,
    Json(body): Json<RegisterCustomer>,
) -> Result<Response, Problem> {
    let mut f = Fields::default();
    let email = f.check("email", Email::new(body.email.trim()));
    let name = f.check("name", PersonName::new(&body.name));
    check_password(&mut f, "password", &body.password);
    f.finish()?;
    if !caller.as_ref().is_some_and(Caller::is_admin) {
        let limits = &state.config().throttle;
        let bucket = Bucket::new(
            state.keys(),
            "register:address",
            &client,
            limits.registrations_per_address,
            limits.registration_window,
        );
        throttle::attempt(&state.stores().pool, &[bucket]).await?;
    }
    let (email, name) = (email.unwrap(), name.unwrap());
    // Derived from the request's write id: a retry of a keyed request registers the same id.
    let customer_id = Uuid::new_v5(&CUSTOMER_NAMESPACE, req.write_id.as_bytes());
    let hash = hash_password(&state, body.password).await?;

    // Claim the email before the append; an earlier attempt of this request holds it already.
    let claimed = sqlx::query(
        "INSERT INTO command.customer_credentials (customer_id, email, password_hash) VALUES ($1, $2, $3) \
         ON CONFLICT (customer_id) DO UPDATE SET password_hash = EXCLUDED.password_hash",
    )
    .bind(customer_id)
    .bind(email.as_str())
    .bind(hash.as_str())
    .execute(&state.stores().pool)
    .await;
    match claimed {
        Ok(_) => {}
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("23505") => {
            return Err(refusal(
                ErrorKind::Conflict,
                "email_taken",
                "this email is already registered",
            ));
        }
        Err(e) => return Err(db_problem(e)),
    }
    let ctx = context(&req, None);
    let command = CustomerCommand::RegisterCustomer {
        customer_id: CustomerId::new(customer_id),
        email,
        name,
    };
    let stores = state.stores();
    match execute(
        &stores.customers,
        &customer_id.to_string(),
        command,
        &ctx,
        None,
    )
    .await
    {
        Ok(w) => Ok(written(
            StatusCode::CREATED,
            CustomerRegistered {
                id: customer_id.to_string(),
                write: WriteResult::from(&w),
            },
            &w,
        )),
        Err(e) => {
            if matches!(&e, mercato_event_store::EventStoreError::Domain(_)) {
                release_claim(&state, customer_id).await;
            }
            Err(store_problem(e))
        }
    }
}

/// A password is 10-256 characters.
fn check_password(f: &mut Fields, field: &str, password: &str) {
    if !(10..=256).contains(&password.chars().count()) {
        f.push(
            field,
            "invalid_password",
            "password must be 10-256 characters",
        );
    }
}

/// A new password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChangePassword {
    /// The password now; required of the customer, not of the admin.
    current_password: Option<String>,
    /// 10-256 characters.
    new_password: String,
}

/// Changes a customer's password (the customer, with the current one; or the admin). Every
/// access token issued before is revoked at once, on both APIs: sign in again with the new
/// password. A wrong current password counts as a failed sign-in (throttled alike).
#[utoipa::path(post, path = "/v1/customers/{id}/password", tag = "customers", request_body = ChangePassword,
    params(("id" = Uuid, Path, description = "customer id")), security(("bearer" = [])),
    responses((status = 204), (status = 401),
              (status = 403), (status = 404),
              (status = 422), (status = 429)))]
pub(crate) async fn change_password(
    State(state): State<AppState>,
    caller: Caller,
    ClientAddress(client): ClientAddress,
    Path(id): Path<String>,
    Json(body): Json<ChangePassword>,
) -> Result<Response, Problem> {
    let id = parse_uuid("id", &id)?;
    caller.require_owner_or_admin(id)?;
    let mut f = Fields::default();
    check_password(&mut f, "new_password", &body.new_password);
    if !caller.is_admin() && body.current_password.is_none() {
        f.push("current_password", "required", "give the current password");
    }
    f.finish()?;
    let pool = &state.stores().pool;
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT lower(email), password_hash FROM command.customer_credentials WHERE customer_id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
    .map_err(db_problem)?;
    let Some((email, hash)) = row else {
        return Err(refusal(
            ErrorKind::NotFound,
            "customer_not_found",
            "no such customer (or it was erased)",
        ));
    };
    if let (false, Some(current)) = (caller.is_admin(), body.current_password) {
        let buckets = throttle::sign_in(&state, &email, &client);
        throttle::attempt(pool, &buckets).await?;
        if !crate::routes::auth::verify(&state, hash, current).await {
            return Err(Problem::validation([mercato_web::FieldError::new(
                "current_password",
                "wrong_password",
                "the current password is wrong",
            )]));
        }
        throttle::forgive(pool, &buckets).await?;
    }
    let hash = hash_password(&state, body.new_password).await?;
    sqlx::query(
        "UPDATE command.customer_credentials SET password_hash = $2, \
           token_generation = token_generation + 1 WHERE customer_id = $1",
    )
    .bind(id)
    .bind(hash.as_str())
    .execute(pool)
    .await
    .map_err(db_problem)?;
    tracing::info!(customer_id = %id, by = %caller.subject, "password changed; earlier tokens revoked");
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn release_claim(state: &AppState, customer_id: Uuid) {
    let _ = sqlx::query("DELETE FROM command.customer_credentials WHERE customer_id = $1")
        .bind(customer_id)
        .execute(&state.stores().pool)
        .await;
}

async fn hash_password(state: &AppState, password: String) -> Result<PasswordHash, Problem> {
    let argon2 = state.argon2().clone();
    let phc = tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
        argon2
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(Problem::internal)?
    .map_err(Problem::internal)?;
    PasswordHash::new(phc).map_err(Problem::internal)
}

/// Changes a customer's profile or default address (the customer or the admin).
#[utoipa::path(patch, path = "/v1/customers/{id}", operation_id = "update_customer", tag = "customers", request_body = UpdateCustomer,
    params(("id" = Uuid, Path, description = "customer id"), Precondition), security(("bearer" = [])),
    responses((status = 200, body = WriteResult), (status = 401),
              (status = 403), (status = 404)))]
pub(crate) async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Extension(req): Extension<RequestContext>,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
    Json(body): Json<UpdateCustomer>,
) -> Result<Response, Problem> {
    let id = parse_uuid("id", &id)?;
    caller.require_owner_or_admin(id)?;
    let mut f = Fields::default();
    let name = body
        .name
        .as_deref()
        .and_then(|n| f.check("name", PersonName::new(n)));
    let email = body
        .email
        .as_deref()
        .and_then(|e| f.check("email", Email::new(e.trim())));
    // `None`: keep the stored number; `Some(None)` (`null` or a blank string, as forms send
    // an empty field): remove it.
    let phone = match body.phone.as_ref().map(|p| p.as_deref().map(str::trim)) {
        None => None,
        Some(None | Some("")) => Some(None),
        Some(Some(p)) => Some(f.check("phone", PhoneNumber::new(p))),
    };
    let address = body
        .address
        .as_ref()
        .and_then(|a| a.check("address", &mut f));
    f.finish()?;
    let stores = state.stores();
    let (customer, _) = load_active(stores, id).await?;
    let ctx = context(&req, Some(&caller));
    let mut last = None;
    let mut expected = expected;
    if body.name.is_some() || body.email.is_some() || body.phone.is_some() {
        let name = name.or_else(|| customer.name().and_then(Personal::expose).cloned());
        let email = email.or_else(|| customer.email().and_then(Personal::expose).cloned());
        let phone = phone.unwrap_or_else(|| customer.phone().and_then(Personal::expose).cloned());
        let (Some(name), Some(email)) = (name, email) else {
            return Err(refusal(
                ErrorKind::Conflict,
                "customer_forgotten",
                "this customer has no profile",
            ));
        };
        if let Some(new_email) = &body.email {
            let moved = sqlx::query(
                "UPDATE command.customer_credentials SET email = $2 WHERE customer_id = $1",
            )
            .bind(id)
            .bind(new_email.trim())
            .execute(&stores.pool)
            .await;
            match moved {
                Ok(_) => {}
                Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("23505") => {
                    return Err(refusal(
                        ErrorKind::Conflict,
                        "email_taken",
                        "this email is already registered",
                    ));
                }
                Err(e) => return Err(db_problem(e)),
            }
        }
        let command = CustomerCommand::ChangeCustomerProfile { name, email, phone };
        let w = execute(&stores.customers, &id.to_string(), command, &ctx, expected)
            .await
            .map_err(store_problem)?;
        expected = expected.map(|_| w.version);
        last = Some(w);
    }
    if let Some(address) = address {
        let command = CustomerCommand::ChangeCustomerAddress { address };
        let w = execute(&stores.customers, &id.to_string(), command, &ctx, expected)
            .await
            .map_err(store_problem)?;
        last = Some(w);
    }
    let Some(w) = last else {
        return Err(Problem::validation([mercato_web::FieldError::new(
            "body",
            "empty_update",
            "send at least one of name, email, phone, address",
        )]));
    };
    Ok(written(StatusCode::OK, WriteResult::from(&w), &w))
}

/// Erases a customer's personal data (GDPR; the customer or the admin): their data key is
/// destroyed first, so their name, email, phone and addresses read as erased everywhere
/// (events, snapshots, JetStream, read models, notifications, exports), then the login and
/// the tokens go and `CustomerForgotten` is recorded. Orders keep their amounts, lines and
/// destination country.
#[utoipa::path(delete, path = "/v1/customers/{id}", tag = "customers",
    params(("id" = Uuid, Path, description = "customer id"), Precondition), security(("bearer" = [])),
    responses((status = 200, body = WriteResult), (status = 401),
              (status = 403), (status = 404)))]
pub(crate) async fn forget(
    State(state): State<AppState>,
    caller: Caller,
    Extension(req): Extension<RequestContext>,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
) -> Result<Response, Problem> {
    let id = parse_uuid("id", &id)?;
    caller.require_owner_or_admin(id)?;
    let stores = state.stores();
    let (_, version) = load_active(stores, id).await?;
    if let Some(expected) = expected.filter(|e| *e != version) {
        return Err(store_problem(mercato_event_store::EventStoreError::<
            mercato_aggregates::customer::CustomerError,
        >::Conflict {
            aggregate_type: "Customer",
            aggregate_id: id.to_string(),
            expected_version: expected,
            actual_version: Some(version),
        }));
    }
    // The key first: a crash after it leaves the data erased and the request safe to repeat.
    let subject = DataSubject::Customer(CustomerId::new(id));
    privacy::shred(&stores.pool, &subject.to_string())
        .await
        .map_err(privacy_problem)?;
    sqlx::query("DELETE FROM command.pending_checkouts WHERE customer_id = $1")
        .bind(id)
        .execute(&stores.pool)
        .await
        .map_err(db_problem)?;
    // The login goes, and with it every access token (their session is checked).
    release_claim(&state, id).await;
    sqlx::query("DELETE FROM command.idempotency_keys WHERE scope = $1")
        .bind(format!("customer:{id}"))
        .execute(&stores.pool)
        .await
        .map_err(db_problem)?;
    let ctx = context(&req, Some(&caller));
    let command = CustomerCommand::ForgetCustomer {
        requested_at: chrono::Utc::now(),
    };
    let w = execute(&stores.customers, &id.to_string(), command, &ctx, expected)
        .await
        .map_err(store_problem)?;
    Ok(written(StatusCode::OK, WriteResult::from(&w), &w))
}

/// The customer `id` and its version: 404 when there is none, 409 once forgotten.
async fn load_active(stores: &crate::stores::Stores, id: Uuid) -> Result<(Customer, u64), Problem> {
    let (customer, version) = stores
        .customers
        .load(&id.to_string())
        .await
        .map_err(store_problem)?;
    match customer.status() {
        CustomerStatus::Absent => Err(refusal(
            ErrorKind::NotFound,
            "customer_not_found",
            "no such customer",
        )),
        CustomerStatus::Forgotten => Err(refusal(
            ErrorKind::Conflict,
            "customer_forgotten",
            "this customer was forgotten",
        )),
        CustomerStatus::Active => Ok((customer, version)),
    }
}
