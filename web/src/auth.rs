//! JWT (HS256) bearer authentication and the two roles.

use std::time::Duration;

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts, OptionalFromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::problem::Problem;
use crate::MERCATO_ORDER_TOKEN;

/// Who may do what.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A registered shopper: their own carts, orders and profile.
    Customer,
    /// The back office: everything.
    Admin,
}

/// The claims of a Mercato access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Customer id for customers; the admin's email for the admin.
    pub sub: String,
    /// The role.
    pub role: Role,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expires at (Unix seconds).
    pub exp: i64,
    /// Always `mercato`.
    pub iss: String,
    /// A customer's session generation when the token was issued: a password change or an
    /// erasure moves it on, and every older token is refused (see [`Sessions`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gen: Option<i64>,
}

const ISSUER: &str = "mercato";

/// Why a token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// Expired.
    #[error("the access token has expired")]
    Expired,
    /// Bad signature, bad shape, wrong algorithm or issuer.
    #[error("the access token is invalid")]
    Invalid,
    /// Signing failed (never expected with HS256).
    #[error("cannot sign the access token: {0}")]
    Signing(String),
}

/// A freshly issued token.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The compact JWT.
    pub access_token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

/// Where a customer's current session generation is kept: the login table,
/// `command.customer_credentials` (its row is deleted when the customer is erased). Both
/// APIs look the generation up for every customer request, so a revoked token stops working
/// at once, everywhere.
#[derive(Clone, Debug)]
pub struct Sessions {
    pool: sqlx::PgPool,
}

impl Sessions {
    /// Sessions kept in `pool`'s database.
    pub fn new(pool: sqlx::PgPool) -> Self {
        Self { pool }
    }

    /// The customer's current generation; `None` once the login is gone (erased).
    pub async fn generation(&self, customer_id: Uuid) -> Result<Option<i64>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT token_generation FROM command.customer_credentials WHERE customer_id = $1",
        )
        .bind(customer_id)
        .fetch_optional(&self.pool)
        .await
    }

    /// Refuses a customer token whose generation is not the current one.
    async fn check(&self, claims: &Claims) -> Result<(), Problem> {
        let Ok(customer_id) = Uuid::parse_str(&claims.sub) else {
            return Err(Problem::unauthorized(AuthError::Invalid.to_string()));
        };
        match self.generation(customer_id).await {
            Ok(Some(current)) if Some(current) == claims.gen => Ok(()),
            Ok(_) => Err(Problem::unauthorized(
                "the access token was revoked (the password changed or the account was erased); sign in again",
            )),
            Err(e) => {
                tracing::warn!(error = %e, "cannot check a session");
                Err(Problem::unavailable(
                    "store_unavailable",
                    "the database is unavailable",
                    1,
                ))
            }
        }
    }
}

/// Signing and verification keys from the configured secret.
#[derive(Clone)]
pub struct JwtKeys {
    /// Behind an `Arc`: the keys are cloned with the handlers' state on every request.
    jwt: Arc<Jwt>,
    ttl: Duration,
    /// The key of guest order tokens, derived from the secret (never the secret itself).
    order_key: Arc<[u8]>,
    /// The key of request digests and throttle buckets, derived from the secret.
    digest_key: Arc<[u8]>,
    /// Where customer sessions are checked; `None` checks signatures only (unit tests).
    sessions: Option<Sessions>,
}

/// HS256 signing and verification.
struct Jwt {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl JwtKeys {
    /// Keys for HS256 with `secret`; issued tokens live `ttl`.
    pub fn new(secret: &SecretString, ttl: Duration) -> Self {
        let bytes = secret.expose_secret().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = 5;
        Self {
            jwt: Arc::new(Jwt {
                encoding: EncodingKey::from_secret(bytes),
                decoding: DecodingKey::from_secret(bytes),
                validation,
            }),
            ttl,
            order_key: mac(bytes, b"mercato order tokens v1").into(),
            digest_key: mac(bytes, b"mercato digests v1").into(),
            sessions: None,
        }
    }

    /// The same keys, checking every customer token against `sessions`.
    pub fn with_sessions(self, sessions: Sessions) -> Self {
        Self {
            sessions: Some(sessions),
            ..self
        }
    }

    /// A keyed digest (HMAC-SHA256, hex) of `value` in `domain`: what Mercato stores instead
    /// of a value it must recognise but not keep (a request that holds a password, a client
    /// address), unguessable without the secret.
    pub fn digest(&self, domain: &str, value: &[u8]) -> String {
        let mut input = Vec::with_capacity(domain.len() + 1 + value.len());
        input.extend_from_slice(domain.as_bytes());
        input.push(0);
        input.extend_from_slice(value);
        mac(&self.digest_key, &input)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The token that lets a guest read and act on their order: an HMAC of the order id, so
    /// any API replica with the same secret checks it without storing anything, and a retried
    /// checkout hands out the same token.
    pub fn order_token(&self, order_id: Uuid) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(mac(&self.order_key, order_id.as_bytes()))
    }

    /// Whether `token` is the order token of `order_id` (compared in constant time).
    pub fn verify_order_token(&self, order_id: Uuid, token: &str) -> bool {
        bool::from(
            self.order_token(order_id)
                .as_bytes()
                .ct_eq(token.trim().as_bytes()),
        )
    }

    /// Issues a token for `subject` with `role` (a customer's carries their session
    /// generation `gen`).
    pub fn issue(
        &self,
        subject: &str,
        role: Role,
        gen: Option<i64>,
    ) -> Result<IssuedToken, AuthError> {
        let now = chrono::Utc::now().timestamp();
        let ttl = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let claims = Claims {
            sub: subject.to_owned(),
            role,
            iat: now,
            exp: now.saturating_add(ttl),
            iss: ISSUER.to_owned(),
            gen,
        };
        self.sign(&claims).map(|access_token| IssuedToken {
            access_token,
            expires_in: self.ttl.as_secs(),
        })
    }

    /// Signs arbitrary claims (tests use it for expired tokens).
    pub fn sign(&self, claims: &Claims) -> Result<String, AuthError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.jwt.encoding)
            .map_err(|e| AuthError::Signing(e.to_string()))
    }

    /// Verifies signature, algorithm, issuer and expiry.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        jsonwebtoken::decode::<Claims>(token, &self.jwt.decoding, &self.jwt.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid,
            })
    }
}

/// The authenticated caller. As an extractor it answers 401 (problem+json, with a
/// `WWW-Authenticate: Bearer` challenge) without a valid bearer token; `Option<Caller>`
/// allows anonymous requests but still refuses a bad token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's subject.
    pub subject: String,
    /// The token's role.
    pub role: Role,
}

impl Caller {
    /// Whether the caller is the back office.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// The customer id, for a customer.
    pub fn customer_id(&self) -> Option<Uuid> {
        match self.role {
            Role::Customer => Uuid::parse_str(&self.subject).ok(),
            Role::Admin => None,
        }
    }

    /// 403 unless the caller is the admin.
    pub fn require_admin(&self) -> Result<(), Problem> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(Problem::forbidden("this action needs the admin role"))
        }
    }

    /// 403 unless the caller is the admin or the customer `owner`.
    pub fn require_owner_or_admin(&self, owner: Uuid) -> Result<(), Problem> {
        if self.is_admin() || self.customer_id() == Some(owner) {
            Ok(())
        } else {
            Err(Problem::forbidden("this resource belongs to someone else"))
        }
    }
}

fn mac(key: &[u8], message: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("hmac accepts any key");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// Who is asking about one order: the bearer caller (if any) and the `Mercato-Order-Token`
/// header (if any). [`OrderAccess::party`] decides against the order's owner.
#[derive(Debug, Clone)]
pub struct OrderAccess {
    /// The authenticated caller.
    pub caller: Option<Caller>,
    /// The guest's order token, as sent.
    pub order_token: Option<String>,
}

/// Who may act on an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderParty {
    /// The back office.
    Merchant,
    /// The customer who placed it.
    Customer(Uuid),
    /// The guest holding its order token.
    Guest,
}

impl OrderAccess {
    /// The party the request speaks for on order `order_id` placed by `owner` (`None` for a
    /// guest's order): 401 without a credential, 403 with one that does not fit.
    pub fn party(
        &self,
        keys: &JwtKeys,
        order_id: Uuid,
        owner: Option<Uuid>,
    ) -> Result<OrderParty, Problem> {
        if let Some(caller) = &self.caller {
            if caller.is_admin() {
                return Ok(OrderParty::Merchant);
            }
            if caller.customer_id().is_some() && caller.customer_id() == owner {
                return Ok(OrderParty::Customer(
                    caller.customer_id().unwrap_or_default(),
                ));
            }
        }
        match (&self.order_token, owner) {
            (Some(token), None) if keys.verify_order_token(order_id, token) => {
                Ok(OrderParty::Guest)
            }
            (Some(_), _) => Err(Problem::forbidden(
                "the order token does not match this order",
            )),
            (None, _) if self.caller.is_some() => {
                Err(Problem::forbidden("this order belongs to someone else"))
            }
            (None, _) => Err(Problem::unauthorized(
                "send `Authorization: Bearer <token>`, or a guest order's `Mercato-Order-Token`",
            )),
        }
    }
}

impl<S> FromRequestParts<S> for OrderAccess
where
    JwtKeys: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller =
            <Caller as OptionalFromRequestParts<S>>::from_request_parts(parts, state).await?;
        let order_token = match parts.headers.get(MERCATO_ORDER_TOKEN) {
            None => None,
            Some(v) => Some(
                v.to_str()
                    .map_err(|_| {
                        Problem::unauthorized("the Mercato-Order-Token header is not valid text")
                    })?
                    .to_owned(),
            ),
        };
        Ok(Self {
            caller,
            order_token,
        })
    }
}

fn bearer(parts: &Parts) -> Result<Option<&str>, Problem> {
    let Some(value) = parts.headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| Problem::unauthorized("the Authorization header is not valid text"))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(Problem::unauthorized(
            "the Authorization header must be `Bearer <token>`",
        )),
    }
}

async fn caller_from(keys: &JwtKeys, token: &str) -> Result<Caller, Problem> {
    let claims = keys
        .verify(token)
        .map_err(|e| Problem::unauthorized(e.to_string()))?;
    if claims.role == Role::Customer {
        if Uuid::parse_str(&claims.sub).is_err() {
            return Err(Problem::unauthorized(AuthError::Invalid.to_string()));
        }
        if let Some(sessions) = &keys.sessions {
            sessions.check(&claims).await?;
        }
    }
    Ok(Caller {
        subject: claims.sub,
        role: claims.role,
    })
}

impl<S> FromRequestParts<S> for Caller
where
    JwtKeys: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let keys = JwtKeys::from_ref(state);
        match bearer(parts)? {
            Some(token) => caller_from(&keys, token).await,
            None => Err(Problem::unauthorized(
                "send `Authorization: Bearer <token>`",
            )),
        }
    }
}

impl<S> OptionalFromRequestParts<S> for Caller
where
    JwtKeys: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        let keys = JwtKeys::from_ref(state);
        match bearer(parts)? {
            Some(token) => caller_from(&keys, token).await.map(Some),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &str) -> JwtKeys {
        JwtKeys::new(&SecretString::from(secret), Duration::from_secs(60))
    }

    #[test]
    fn an_issued_token_verifies_with_the_same_secret_only() {
        let token = keys("s3cret-s3cret-s3cret-s3cret-0001")
            .issue("a@b", Role::Admin, None)
            .unwrap();
        let claims = keys("s3cret-s3cret-s3cret-s3cret-0001")
            .verify(&token.access_token)
            .unwrap();
        assert_eq!(claims.role, Role::Admin);
        assert_eq!(
            keys("another-secret-another-secret-01").verify(&token.access_token),
            Err(AuthError::Invalid)
        );
    }

    #[test]
    fn order_tokens_fit_their_order_and_secret_only() {
        let k = keys("s3cret-s3cret-s3cret-s3cret-0001");
        let order = Uuid::from_u128(1);
        let token = k.order_token(order);
        assert_eq!(token, k.order_token(order), "deterministic");
        assert!(k.verify_order_token(order, &token));
        assert!(!k.verify_order_token(Uuid::from_u128(2), &token));
        assert!(!keys("another-secret-another-secret-01").verify_order_token(order, &token));
        assert!(!k.verify_order_token(order, ""));
        let access = OrderAccess {
            caller: None,
            order_token: Some(token.clone()),
        };
        assert_eq!(access.party(&k, order, None).unwrap(), OrderParty::Guest);
        // A token never opens a customer's order.
        let customer = Some(Uuid::from_u128(9));
        assert_eq!(access.party(&k, order, customer).unwrap_err().status(), 403);
        let nobody = OrderAccess {
            caller: None,
            order_token: None,
        };
        assert_eq!(nobody.party(&k, order, None).unwrap_err().status(), 401);
    }

    #[test]
    fn an_expired_token_is_refused() {
        let k = keys("s3cret-s3cret-s3cret-s3cret-0001");
        let now = chrono::Utc::now().timestamp();
        let token = k
            .sign(&Claims {
                sub: Uuid::nil().to_string(),
                role: Role::Customer,
                iat: now - 120,
                exp: now - 60,
                iss: ISSUER.into(),
                gen: Some(1),
            })
            .unwrap();
        assert_eq!(k.verify(&token), Err(AuthError::Expired));
    }
}
