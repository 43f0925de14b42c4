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

/// Exchanges email and password for a JWT (customers; the admin with the configured credentials).
#[utoipa::path(post, path = "/v1/auth/token", tag = "auth", request_body = TokenRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = mercato_web::problem::ProblemBody),
              (status = 422, body = mercato_web::problem::ProblemBody)))]
pub(crate) async fn token(
    State(state): State<AppState>,
    Json(req): Json<TokenRequest>,
) -> Result<Response, Problem> {
    let config = state.config();
    if let (Some(email), Some(password)) = (&config.admin_email, &config.admin_password) {
        let email_ok: bool = email
            .to_lowercase()
            .as_bytes()
            .ct_eq(req.email.to_lowercase().as_bytes())
            .into();
        let password_ok: bool = password
            .expose_secret()
            .as_bytes()
            .ct_eq(req.password.as_bytes())
            .into();
        if email_ok && password_ok {
            return issue(&state, email, Role::Admin, None);
        }
        if email_ok {
            return Err(bad_credentials());
        }
    }
    let row: Option<(uuid::Uuid, String)> = sqlx::query_as(
        "SELECT customer_id, password_hash FROM command.customer_credentials WHERE lower(email) = lower($1)",
    )
    .bind(&req.email)
    .fetch_optional(&state.stores().pool)
    .await
    .map_err(db_problem)?;
    let Some((customer_id, hash)) = row else {
        return Err(bad_credentials());
    };
    let argon2 = state.argon2().clone();
    let password = req.password;
    let ok = tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|parsed| argon2.verify_password(password.as_bytes(), &parsed).is_ok())
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false);
    if !ok {
        return Err(bad_credentials());
    }
    let id = customer_id.to_string();
    issue(&state, &id, Role::Customer, Some(id.clone()))
}

fn issue(
    state: &AppState,
    subject: &str,
    role: Role,
    customer_id: Option<String>,
) -> Result<Response, Problem> {
    let issued = state
        .keys()
        .issue(subject, role)
        .map_err(Problem::internal)?;
    Ok(axum::Json(TokenResponse {
        access_token: issued.access_token,
        token_type: "Bearer",
        expires_in: issued.expires_in,
        role,
        customer_id,
    })
    .into_response())
}
