//! `POST /v1/auth/token`.

use argon2::{PasswordHash, PasswordVerifier};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use mercato_web::auth::Role;
use mercato_web::{Json, Problem};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

use crate::error::db_problem;
use crate::state::AppState;
use crate::throttle::{self, ClientAddress};

/// Login.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenRequest {
    email: String,
    password: String,
}

/// An access token.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TokenResponse {
    access_token: String,
    /// Always `Bearer`.
    token_type: &'static str,
    /// Seconds until it expires.
    expires_in: u64,
    /// `customer` or `admin`.
    role: Role,
    /// The customer id (customers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    customer_id: Option<String>,
}

fn bad_credentials() -> Problem {
    Problem::unauthorized("unknown email or wrong password")
}

/// Exchanges email and password for a JWT (customers; the admin with the configured
/// credentials). Throttled per account and per client address: past the limit, 429 with
/// `Retry-After`. An unknown email costs the same work as a wrong password, and the answer is
/// the same. Not idempotent by key: a retry simply signs in again (no token is ever stored).
#[utoipa::path(post, path = "/v1/auth/token", tag = "auth", request_body = TokenRequest,
    responses((status = 200, body = TokenResponse), (status = 401),
              (status = 422),
              (status = 429)))]
pub(crate) async fn token(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    Json(req): Json<TokenRequest>,
) -> Result<Response, Problem> {
    let config = state.config();
    let pool = &state.stores().pool;
    let email = req.email.trim().to_lowercase();
    let buckets = throttle::sign_in(&state, &email, &client);
    throttle::attempt(pool, &buckets).await?;
    if let (Some(admin_email), Some(password)) = (&config.admin_email, &config.admin_password) {
        let email_ok: bool = admin_email
            .to_lowercase()
            .as_bytes()
            .ct_eq(email.as_bytes())
            .into();
        let password_ok: bool = password
            .expose_secret()
            .as_bytes()
            .ct_eq(req.password.as_bytes())
            .into();
        if email_ok && password_ok {
            throttle::forgive(pool, &buckets).await?;
            return issue(&state, admin_email, Role::Admin, None);
        }
        if email_ok {
            // As long as a customer's wrong password takes.
            verify(&state, state.dummy_hash().to_owned(), req.password).await;
            return Err(bad_credentials());
        }
    }
    let row: Option<(uuid::Uuid, String, i64)> = sqlx::query_as(
        "SELECT customer_id, password_hash, token_generation FROM command.customer_credentials \
         WHERE lower(email) = $1",
    )
    .bind(&email)
    .fetch_optional(pool)
    .await
    .map_err(db_problem)?;
    let hash = row
        .as_ref()
        .map_or_else(|| state.dummy_hash().to_owned(), |(_, h, _)| h.clone());
    let matches = verify(&state, hash, req.password).await;
    let Some((customer_id, _, generation)) = row.filter(|_| matches) else {
        return Err(bad_credentials());
    };
    throttle::forgive(pool, &buckets).await?;
    let id = customer_id.to_string();
    issue(&state, &id, Role::Customer, Some(generation))
}

/// Whether `password` matches the PHC `hash` (argon2 off the async threads).
pub(crate) async fn verify(state: &AppState, hash: String, password: String) -> bool {
    let argon2 = state.argon2().clone();
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|parsed| argon2.verify_password(password.as_bytes(), &parsed).is_ok())
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

fn issue(
    state: &AppState,
    subject: &str,
    role: Role,
    generation: Option<i64>,
) -> Result<Response, Problem> {
    let issued = state
        .keys()
        .issue(subject, role, generation)
        .map_err(Problem::internal)?;
    let mut response = axum::Json(TokenResponse {
        access_token: issued.access_token,
        token_type: "Bearer",
        expires_in: issued.expires_in,
        role,
        customer_id: (role == Role::Customer).then(|| subject.to_owned()),
    })
    .into_response();
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}
